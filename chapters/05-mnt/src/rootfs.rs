//! Checking a rootfs before any namespace exists, as the container will see it.
//!
//! From the host, a path inside the rootfs is not what it is in the
//! container: an absolute symlink `bin -> /realbin` in the rootfs points, on
//! the host, to the host's `/realbin`, and in the container, after
//! pivot_root(2), to the rootfs's own. So the checks below never let the
//! host resolve a path inside the rootfs: they walk it one name at a time
//! ([`resolve_in_root`]), treating the rootfs's top as `/`.

use ch01_process::error::EXIT_NOT_FOUND;
use ch01_process::{Context, Error, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const NO_ROOTFS_HINT: &str = "build the default one with `cargo xtask rootfs`";

/// Where the kernel mounts filesystems of the container's own (see
/// setup): each must be a real directory of the rootfs, or missing.
const MOUNT_POINTS: [&str; 3] = ["proc", "sys", "dev"];

/// How many symlinks one lookup follows before giving up with ELOOP, as the
/// kernel does (MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

// ANCHOR: check_rootfs
/// Catches the typical mistakes (a typo, the tarball instead of the
/// unpacked directory, the host's own `/`, a command the rootfs does not
/// have) before any namespace exists, each with one line that says which.
/// `path` is the container's `PATH`, where a bare command name is looked up.
pub fn check_rootfs(dir: &Path, command: &[OsString], path: &str) -> Result<PathBuf> {
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::runtime(format!(
            "rootfs {dir:?}: no such directory ({NO_ROOTFS_HINT})"
        )),
        _ => Error::runtime(format!("rootfs {dir:?}: {e}")),
    })?;
    if !meta.is_dir() {
        return Err(Error::runtime(format!("rootfs {dir:?}: not a directory")));
    }
    // The same directory as the host's / (by any path: "/", "/proc/1/root",
    // a bind mount of /): pivot_root(2) would refuse it, and a container
    // with the host's files as its own isolates nothing.
    let host_root = std::fs::metadata("/").context("stat(2) /")?;
    if (meta.dev(), meta.ino()) == (host_root.dev(), host_root.ino()) {
        return Err(Error::runtime(format!(
            "rootfs {dir:?} is the host's own root directory: a container needs a root \
             filesystem of its own ({NO_ROOTFS_HINT})"
        )));
    }
    let dir = dir.canonicalize().context(format!("rootfs {dir:?}"))?;
    let root = open_root(&dir)?;
    for name in MOUNT_POINTS {
        mount_point(
            Some(&root),
            Path::new(name),
            &format!("/{name} in rootfs {dir:?}"),
        )?;
    }
    if let Some(program) = command.first() {
        find_command(&root, &dir, program, OsStr::new(path))?;
    }
    Ok(dir)
}
// ANCHOR_END: check_rootfs

fn open_root(dir: &Path) -> Result<OwnedFd> {
    let fd = openat(
        None,
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context(format!("opening rootfs {dir:?}"))?;
    // SAFETY: openat(2) just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ANCHOR: mount_point
/// A mount point must be a directory of its own: mount(2) follows a
/// symlink, so `proc -> /somewhere` would put the container's /proc
/// elsewhere (or fail with a baffling EEXIST from mkdir). Checked without
/// following links: `name` relative to `dir` (None: the current root, in the
/// child). Returns whether it exists; missing ones are created by mkdir.
pub fn mount_point(dir: Option<&OwnedFd>, name: &Path, shown: &str) -> Result<bool> {
    let dirfd = dir.map(|d| d.as_raw_fd());
    let st = match fstatat(dirfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e).context(format!("stat(2) {shown}")),
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => Ok(true),
        libc::S_IFLNK => {
            let target = readlinkat(dirfd, name).unwrap_or_default();
            Err(Error::runtime(format!(
                "{shown} is a symlink (to {target:?}): mount points must be real \
                 directories inside the rootfs"
            )))
        }
        _ => Err(Error::runtime(format!(
            "{shown} is not a directory: mount points must be real directories \
             inside the rootfs"
        ))),
    }
}
// ANCHOR_END: mount_point

// ANCHOR: find_command
/// The command's executable must exist in the rootfs, or the container
/// could only fail. A path (`/bin/probe`) is looked up in the rootfs; a bare
/// name (`sh`) in each directory of $PATH, in the rootfs, as execvp(3) will
/// search it in the container's `PATH` (chapter 1's [`exec`](ch01_process::runtime::exec)).
/// Whether it can be executed is left to execve(2), which says so
/// precisely (exit 126).
fn find_command(root: &OwnedFd, dir: &Path, program: &OsStr, path: &OsStr) -> Result<()> {
    let name = program.as_bytes();
    let not_found = |what: String| {
        // No /bin and no /usr/bin: not a root filesystem at all, most likely.
        let bare = ["bin", "usr/bin"]
            .iter()
            .all(|d| resolve_in_root(root, d.as_bytes()) != Ok(libc::S_IFDIR));
        let hint = match bare {
            true => format!(": is it a root filesystem? ({NO_ROOTFS_HINT})"),
            false => String::new(),
        };
        Err(Error::with_code(
            EXIT_NOT_FOUND,
            format!("{program:?}: {what} in rootfs {dir:?}{hint}"),
        ))
    };
    if name.contains(&b'/') {
        // The container starts in its /: a relative path is relative to it.
        return match resolve_in_root(root, name) {
            Err(Errno::ENOENT | Errno::ENOTDIR) => not_found("no such file".into()),
            _ => Ok(()),
        };
    }
    for d in path.as_bytes().split(|&b| b == b':') {
        // An empty entry is the working directory: the container's /.
        let candidate = [d, b"/", name].concat();
        if resolve_in_root(root, &candidate).is_ok() {
            return Ok(());
        }
    }
    not_found("command not found in $PATH".into())
}
// ANCHOR_END: find_command

// ANCHOR: resolve_in_root
/// The file type (`S_IFMT` bits) of what `path` names in the directory
/// `root`, looked up as it will be in the container once `root` is its `/`:
/// one name at a time, each opened with O_NOFOLLOW relative to the directory
/// before it, a symlink's target read and walked in turn, an absolute one
/// from `root` again, and `..` at the top staying at the top. That is what
/// openat2(2) does with RESOLVE_IN_ROOT (Linux 5.6 and later); done by hand
/// here, it works on any kernel and shows what a lookup is. A final symlink
/// is followed too, as execve(2) does.
pub fn resolve_in_root(root: &OwnedFd, path: &[u8]) -> nix::Result<libc::mode_t> {
    // The directories walked into below `root`, so that ".." can go back
    // without asking the host (whose ".." of the top would leave it).
    let mut dirs: Vec<OwnedFd> = Vec::new();
    let mut kind = libc::S_IFDIR;
    // Names still to look up, the next one last.
    let mut todo: Vec<Vec<u8>> = path
        .split(|&b| b == b'/')
        .rev()
        .map(<[u8]>::to_vec)
        .collect();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if kind != libc::S_IFDIR {
            return Err(Errno::ENOTDIR); // "file/more", "file/", "file/.."
        }
        match &name[..] {
            b"" | b"." => continue,
            b".." => {
                dirs.pop();
                continue;
            }
            _ => {}
        }
        let here = dirs.last().unwrap_or(root).as_raw_fd();
        let name = OsStr::from_bytes(&name);
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        // SAFETY: openat(2) just returned this descriptor; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(openat(Some(here), name, flags, Mode::empty())?) };
        match fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                let target = readlinkat(Some(here), name)?;
                if target.as_bytes().starts_with(b"/") {
                    dirs.clear(); // absolute: from the rootfs's top, not the host's
                }
                todo.extend(
                    target
                        .as_bytes()
                        .split(|&b| b == b'/')
                        .rev()
                        .map(<[u8]>::to_vec),
                );
            }
            k => {
                kind = k;
                dirs.push(fd);
            }
        }
    }
    Ok(kind)
}
// ANCHOR_END: resolve_in_root

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, OwnedFd) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        for d in ["realbin", "usr/bin", "etc", "loop"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        std::fs::write(p.join("realbin/busybox"), b"").unwrap();
        symlink("busybox", p.join("realbin/sh")).unwrap();
        symlink("/realbin", p.join("bin")).unwrap();
        symlink("../../realbin/busybox", p.join("usr/bin/env")).unwrap();
        symlink("../../../../realbin/busybox", p.join("usr/bin/up")).unwrap();
        symlink("/etc/../../../realbin/sh", p.join("etc/abs")).unwrap();
        symlink("/usr/bin/sh", p.join("etc/hostsh")).unwrap(); // the host has one; the rootfs not
        symlink("a", p.join("loop/b")).unwrap();
        symlink("b", p.join("loop/a")).unwrap();
        let root = open_root(p).unwrap();
        (t, root)
    }

    #[test]
    fn absolute_symlinks_resolve_in_the_rootfs() {
        let (_t, root) = tree();
        let r = |p: &str| resolve_in_root(&root, p.as_bytes());
        assert_eq!(r("/bin/sh"), Ok(libc::S_IFREG));
        assert_eq!(r("bin/sh"), Ok(libc::S_IFREG));
        assert_eq!(r("/bin"), Ok(libc::S_IFDIR));
        assert_eq!(r("/usr/bin/env"), Ok(libc::S_IFREG));
        // ".." never climbs above the rootfs's top, in a path or a link.
        assert_eq!(r("/../../bin/sh"), Ok(libc::S_IFREG));
        assert_eq!(r("/usr/bin/up"), Ok(libc::S_IFREG));
        assert_eq!(r("/etc/abs"), Ok(libc::S_IFREG));
        // Links are read, never followed on the host.
        assert_eq!(r("/etc/hostsh"), Err(Errno::ENOENT));
        assert_eq!(r("/nothing"), Err(Errno::ENOENT));
        assert_eq!(r("/bin/sh/x"), Err(Errno::ENOTDIR));
        assert_eq!(r("/bin/sh/.."), Err(Errno::ENOTDIR));
        assert_eq!(r("/loop/a"), Err(Errno::ELOOP));
    }

    #[test]
    fn commands_are_looked_up_in_the_rootfs() {
        let (t, root) = tree();
        let path = OsStr::new("/usr/local/bin:/bin");
        let find = |c: &str| find_command(&root, t.path(), OsStr::new(c), path);
        assert!(find("/bin/sh").is_ok());
        assert!(find("bin/sh").is_ok());
        assert!(find("sh").is_ok(), "in /bin, a link to /realbin");
        let in_usr = find_command(&root, t.path(), OsStr::new("sh"), OsStr::new("/usr/bin"));
        assert!(in_usr.is_err(), "not in /usr/bin");
        let in_cwd = find_command(&root, t.path(), OsStr::new("realbin"), OsStr::new(""));
        assert!(in_cwd.is_ok(), "an empty PATH entry is the container's /");
        let err = find("/etc/hostsh").unwrap_err();
        assert_eq!(err.code, EXIT_NOT_FOUND);
        assert!(
            err.msg
                .starts_with("\"/etc/hostsh\": no such file in rootfs "),
            "{}",
            err.msg
        );
        assert!(!err.msg.contains("is it a root filesystem"), "{}", err.msg);
        let err = find("no-such-command").unwrap_err();
        assert_eq!(err.code, EXIT_NOT_FOUND);
        assert!(
            err.msg.contains("command not found in $PATH"),
            "{}",
            err.msg
        );

        // An empty directory: not a rootfs at all, most likely.
        let empty = tempfile::tempdir().unwrap();
        let root = open_root(empty.path()).unwrap();
        let err = find_command(&root, empty.path(), OsStr::new("/bin/sh"), path).unwrap_err();
        assert!(err
            .msg
            .ends_with(&format!("is it a root filesystem? ({NO_ROOTFS_HINT})")));
    }

    #[test]
    fn mount_points_must_be_real_directories() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        std::fs::create_dir(p.join("proc")).unwrap();
        symlink("/tmp", p.join("sys")).unwrap();
        std::fs::write(p.join("dev"), b"").unwrap();
        let root = open_root(p).unwrap();
        let check = |n: &str| mount_point(Some(&root), Path::new(n), &format!("/{n}"));
        assert!(check("proc").unwrap());
        assert!(!check("missing").unwrap());
        let err = check("sys").unwrap_err();
        assert_eq!(
            err.msg,
            "/sys is a symlink (to \"/tmp\"): mount points must be real directories inside the rootfs"
        );
        let err = check("dev").unwrap_err();
        assert!(
            err.msg.starts_with("/dev is not a directory"),
            "{}",
            err.msg
        );
    }

    #[test]
    fn the_hosts_root_is_refused() {
        for dir in ["/", "/proc/self/root", "/proc/self/root/."] {
            let err = check_rootfs(Path::new(dir), &[], "").unwrap_err();
            assert!(
                err.msg.contains("is the host's own root directory"),
                "{}",
                err.msg
            );
        }
    }
}
