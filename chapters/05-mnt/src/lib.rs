//! Chapter 5: a mount namespace and a root filesystem of its own.
//!
//! `CLONE_NEWNS` gives the child a copy of the host's mount table. Three
//! things turn that copy into a container's filesystem:
//! 1. make every mount private (`MS_REC|MS_PRIVATE`), so that nothing the
//!    container mounts propagates back to the host (systemd makes `/` shared);
//! 2. pivot_root(2) into the rootfs and detach the old root, so that no path
//!    leads back to the host's files (chroot(2) alone can be escaped);
//! 3. mount a /proc of the new pid namespace (now `ps` shows only the
//!    container), a read-only /sys and a minimal /dev.

mod dev;
pub mod mounts;
mod rootfs;

pub use rootfs::{check_rootfs, mount_point, resolve_in_root};

use ch01_process::{Chapter, Context, Ctx, Error, Result, Step, Steps};
use clap::Args;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::unistd::{chdir, pivot_root};
use rootfs::NO_ROOTFS_HINT;
use std::path::{Path, PathBuf};
use std::sync::Arc;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch04_ipc::Opts,
    /// The directory to use as the container's root filesystem (build the
    /// default one with `cargo xtask rootfs`).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch05-mnt";
    const ABOUT: &'static str =
        "Run COMMAND in new pid, network, IPC and mount namespaces, in its own root filesystem.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
            rootfs: self.rootfs.clone(),
            ..Config::default()
        }
    }
}

/// Chapter 5's part of the configuration: the root filesystem.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch04_ipc::Config,
    /// The directory the container pivot_root(2)s into; None: a later
    /// chapter makes one (chapter 8's overlay), or the start is refused.
    pub rootfs: Option<PathBuf>,
    /// Mounts after /proc, /sys and /dev (chapter 12's `config.json`).
    pub mounts: Vec<mounts::Mount>,
    /// The root filesystem read-only (docker's `--read-only`).
    pub readonly: bool,
    /// The command's working directory, made if missing; None: `/`.
    pub workdir: Option<PathBuf>,
    /// Run in the container's process once its mounts are made, before
    /// pivot_root(2) takes the host's files away (chapter 12's
    /// `createContainer` hooks: the spec runs them in the container's
    /// namespaces, with paths of the host's).
    pub before_pivot_root: Option<BeforePivotRoot>,
}

/// See [`Config::before_pivot_root`].
#[derive(Clone)]
pub struct BeforePivotRoot(pub Arc<InTheContainer>);

/// What [`BeforePivotRoot`] runs, in the container's process.
pub type InTheContainer = dyn Fn(&Ctx) -> Result<()> + Send + Sync;

impl std::fmt::Debug for BeforePivotRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforePivotRoot(..)")
    }
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(MountNamespace {
            rootfs: self.rootfs.clone(),
            mounts: self.mounts.clone(),
            readonly: self.readonly,
            workdir: self.workdir.clone(),
            before_pivot_root: self.before_pivot_root.clone(),
        }));
        steps
    }
}
// ANCHOR_END: opts

struct MountNamespace {
    rootfs: Option<PathBuf>,
    mounts: Vec<mounts::Mount>,
    readonly: bool,
    workdir: Option<PathBuf>,
    before_pivot_root: Option<BeforePivotRoot>,
}

impl Step for MountNamespace {
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNS
    }

    fn check(&mut self, ctx: &mut Ctx) -> Result<()> {
        // A later chapter may set ctx.rootfs itself (an overlay of image layers).
        if let Some(dir) = &self.rootfs {
            let path = ctx.env_var("PATH").unwrap_or_default().to_owned();
            ctx.rootfs = Some(check_rootfs(dir, &ctx.command, &path)?);
        }
        Ok(())
    }

    // ANCHOR: setup
    fn setup(&self, ctx: &Ctx) -> Result<()> {
        let root = ctx.rootfs.as_deref().ok_or_else(|| {
            Error::runtime(format!(
                "no root filesystem: give --rootfs DIR ({NO_ROOTFS_HINT})"
            ))
        })?;

        // 1. Nothing below may propagate to the host's mount namespace.
        ctx.say(format_args!("mount(2) / MS_REC|MS_PRIVATE"));
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("making / private (mount(2) MS_REC|MS_PRIVATE)")?;

        // 2. pivot_root(2) needs the new root to be a mount point: bind it onto itself.
        ctx.say(format_args!(
            "mount(2) {} on itself, MS_BIND|MS_REC",
            root.display()
        ));
        mount(
            Some(root),
            root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .context(format!("bind-mounting the rootfs {}", root.display()))?;

        // 3. The container's own /proc, /sys and /dev, mounted in the
        // rootfs before pivot_root(2), as runc does: in a user namespace
        // (chapter 11) the kernel lets proc and sysfs be mounted only where
        // a full one is already in view (mount_too_revealing()), which the
        // host's is until the old root goes; and it refuses mknod(2), so
        // the device nodes are bound from the host's /dev, still in view.
        let at = |dir: &str| root.join(dir).to_string_lossy().into_owned();
        let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount_fs(ctx, "proc", &at("proc"), nosuid_nodev_noexec, None)?;
        mount_fs(
            ctx,
            "sysfs",
            &at("sys"),
            nosuid_nodev_noexec | MsFlags::MS_RDONLY,
            None,
        )?;
        let own_shm = self
            .mounts
            .iter()
            .any(|m| m.destination == Path::new("/dev/shm"));
        dev::populate(ctx, root, !own_shm)?;
        mounts::mount_all(ctx, root, &self.mounts)?;
        if let Some(BeforePivotRoot(run)) = &self.before_pivot_root {
            run(ctx)?;
        }

        // lab: begin chdir(2) root, pivot_root(2) ".", ".", umount2(2) the old root, chdir(2) /
        chdir(root).context(format!("chdir(2) {}", root.display()))?;
        // pivot_root(".", ".") stacks the old root on top of the new one, at
        // the same place; it needs no directory for the old root inside the
        // rootfs (runc does the same). Unmounting "." then takes the old root
        // away, and with it every path back to the host.
        ctx.say(format_args!("pivot_root(2) \".\", \".\""));
        pivot_root(".", ".").context(format!(
            "pivot_root(2) into {} (is / shared in a parent mount namespace? see chapter 5)",
            root.display()
        ))?;
        ctx.say(format_args!("umount2(2) the old root, MNT_DETACH"));
        umount2(".", MntFlags::MNT_DETACH).context("detaching the old root (umount2(2))")?;
        chdir("/").context("chdir(2) /")?;
        // lab: end
        if self.readonly {
            read_only_root(ctx)?;
        }
        if let Some(dir) = &self.workdir {
            std::fs::create_dir_all(dir).context(format!("mkdir -p {}", dir.display()))?;
            chdir(dir).context(format!("chdir(2) {}", dir.display()))?;
        }
        Ok(())
    }
    // ANCHOR_END: setup
}

/// `/` read-only: a remount of the rootfs's bind, keeping the flags it
/// has (in a user namespace the kernel refuses to clear a locked nodev or
/// nosuid that came with it).
fn read_only_root(ctx: &Ctx) -> Result<()> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs("/").context("statvfs(2) /")?;
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if st.flags().contains(fs) {
            flags |= ms;
        }
    }
    ctx.say(format_args!("mount(2) / MS_REMOUNT|MS_BIND|MS_RDONLY"));
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).context("remounting / read-only")
}

/// `mount -t FSTYPE FSTYPE TARGET -o FLAGS,DATA`, creating TARGET if needed.
/// TARGET is checked again here, in the container's own root: a rootfs that
/// a later chapter assembles (chapter 8's overlay) was not checked by
/// [`check_rootfs`].
pub fn mount_fs(
    ctx: &Ctx,
    fstype: &str,
    target: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    if !mount_point(None, Path::new(target), target)? {
        std::fs::create_dir(target).context(format!("mkdir {target}"))?;
    }
    ctx.say(format_args!(
        "mount(2) {fstype} on {target}{}",
        data.map(|d| format!(" ({d})")).unwrap_or_default()
    ));
    mount(Some(fstype), target, Some(fstype), flags, data)
        .context(format!("mount(2) {fstype} on {target}"))
}
