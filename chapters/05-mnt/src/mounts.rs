//! Mounts a configuration adds to chapter 5's own (docker's `-v` and
//! `--tmpfs`, a `config.json`'s `mounts`), made in the rootfs before
//! pivot_root(2) like /proc and /dev, with the target looked up inside the
//! rootfs: a symlink in the image must not send a mount onto the host.

use ch01_process::{Context, Ctx, Error, Result};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mkdirat, Mode};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// One mount, as mount(2) takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute, inside the container.
    pub destination: PathBuf,
    pub what: What,
    /// MS_RDONLY, MS_NOSUID, …: for a bind, applied by a remount after it.
    pub flags: MsFlags,
    /// The filesystem's own options (`mode=755,size=65536k`).
    pub data: String,
    /// MS_SHARED, MS_PRIVATE, MS_SLAVE, MS_UNBINDABLE (with MS_REC), if asked.
    pub propagation: Option<MsFlags>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// A new filesystem of this type (tmpfs, proc, sysfs, mqueue, devpts…).
    Fs { fstype: String, source: String },
    /// A host path bound in; `recursive` takes its submounts too (rbind).
    Bind { source: PathBuf, recursive: bool },
}

// ANCHOR: mount_all
/// Makes `mounts` in `root`, in order (a later one may go on an earlier
/// one). Each target is opened inside `root` with openat2(2)
/// `RESOLVE_IN_ROOT`, made if missing (a file for a bind of a file), and
/// mounted on through `/proc/self/fd/N`: mount(2) then acts on that very
/// directory, not on whatever a path names by the time it looks.
pub fn mount_all(ctx: &Ctx, root: &Path, mounts: &[Mount]) -> Result<()> {
    let rootfd = open_dir(root)?;
    for m in mounts {
        let file = match &m.what {
            What::Bind { source, .. } => !std::fs::metadata(source)
                .context(format!("bind mount source {}", source.display()))?
                .is_dir(),
            What::Fs { .. } => false,
        };
        let target = make_target(&rootfd, &m.destination, file)?;
        let at = format!("/proc/self/fd/{}", target.as_raw_fd());
        let dest = m.destination.display();
        match &m.what {
            What::Fs { fstype, source } => {
                ctx.say(format_args!("mount(2) {fstype} on {dest} ({})", m.data));
                let data = (!m.data.is_empty()).then_some(m.data.as_str());
                mount(
                    Some(source.as_str()),
                    at.as_str(),
                    Some(fstype.as_str()),
                    m.flags,
                    data,
                )
                .context(format!("mount(2) {fstype} on {dest}"))?;
            }
            What::Bind { source, recursive } => {
                let rec = if *recursive {
                    MsFlags::MS_REC
                } else {
                    MsFlags::empty()
                };
                ctx.say(format_args!(
                    "mount(2) {} on {dest}, MS_BIND",
                    source.display()
                ));
                mount(
                    Some(source),
                    at.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | rec,
                    None::<&str>,
                )
                .context(format!("bind-mounting {} on {dest}", source.display()))?;
                // A bind takes its flags from its source: ro, nosuid and the
                // rest come with a second call, a remount of the bind.
                let flags = m.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
                if !flags.is_empty() {
                    // Reopened: the descriptor still names the directory
                    // below the new mount.
                    let target = make_target(&rootfd, &m.destination, file)?;
                    let at = format!("/proc/self/fd/{}", target.as_raw_fd());
                    let flags = flags | locked_flags(&at);
                    ctx.say(format_args!("mount(2) {dest} MS_REMOUNT|MS_BIND {flags:?}"));
                    mount(
                        None::<&str>,
                        at.as_str(),
                        None::<&str>,
                        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags,
                        None::<&str>,
                    )
                    .context(format!("remounting the bind on {dest} with {flags:?}"))?;
                }
            }
        }
        if let Some(propagation) = m.propagation {
            let target = make_target(&rootfd, &m.destination, file)?;
            let at = format!("/proc/self/fd/{}", target.as_raw_fd());
            mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                propagation,
                None::<&str>,
            )
            .context(format!("mount(2) {dest} {propagation:?}"))?;
        }
    }
    Ok(())
}
// ANCHOR_END: mount_all

/// The flags a remount must keep: in a user namespace (chapter 11) the
/// kernel locks nodev, nosuid, noexec and the atime flags that a mount
/// had when it was bound in, and refuses a remount that would clear them.
fn locked_flags(at: &str) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(at) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut keep = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            keep |= ms;
        }
    }
    keep
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(format!("opening {}", dir.display()))?;
    // SAFETY: open(2) just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `path` inside `root`, opened O_PATH, every missing directory on the way
/// made (mode 0755), and the last one a file if `file`.
fn make_target(root: &OwnedFd, path: &Path, file: bool) -> Result<OwnedFd> {
    let names: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(Error::runtime(format!(
            "mount destination {}: must be an absolute path without ..",
            path.display()
        )));
    }
    let shown = path.display();
    let open = |rel: &Path| -> nix::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // SAFETY: openat2(2) just returned this descriptor; nothing else owns it.
        openat2(root.as_raw_fd(), rel, how).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut parent = open(Path::new("")).context(format!("opening the rootfs for {shown}"))?;
    let mut rel = PathBuf::new();
    for (i, name) in names.iter().enumerate() {
        rel.push(name);
        let last = i + 1 == names.len();
        let fd = match open(&rel) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                match (last && file, parent.as_raw_fd()) {
                    (true, dir) => {
                        let fd = nix::fcntl::openat(
                            Some(dir),
                            *name,
                            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                            Mode::from_bits_truncate(0o644),
                        )
                        .context(format!("creating the mount point {shown}"))?;
                        let _ = nix::unistd::close(fd);
                    }
                    (false, dir) => mkdirat(Some(dir), *name, Mode::from_bits_truncate(0o755))
                        .context(format!("mkdir {} for the mount on {shown}", rel.display()))?,
                }
                open(&rel).context(format!("opening the mount point {shown}"))?
            }
            Err(e) => return Err(e).context(format!("opening the mount point {shown}")),
        };
        parent = fd;
    }
    Ok(parent)
}
