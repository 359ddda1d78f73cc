//! Removing a directory tree that a container (or a layer) built: at any
//! depth, with one file descriptor at a time.
//!
//! `std::fs::remove_dir_all` keeps a descriptor open for every level it is
//! in, so a container that makes a chain of directories deeper than the
//! runtime's open-file limit (`ulimit -n`, often 1024) makes it fail with
//! EMFILE, and its writable layer stays on the host. Here the walk keeps only
//! the *names* of the levels above it (memory, not descriptors): it goes
//! down with openat(2) and comes back up with openat(2) "..", checking that
//! ".." is the directory it came from (same device and inode), so that a
//! directory moved during the walk stops it instead of sending it elsewhere.
//! Nothing is ever reached through a symlink: entries are removed, not
//! followed.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `rm -rf PATH`: removes PATH and everything below it. A missing PATH is
/// not an error. The error names the entry that could not be removed.
pub fn remove_all(path: &Path) -> io::Result<()> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        ),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot remove /",
            ))
        }
    };
    let parent = match open_dir(libc::AT_FDCWD, &cstr(parent.as_os_str())?, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_all_at(parent.as_raw_fd(), name.as_bytes())
}

/// [`remove_all`]; and for a caller who is not root, if that is refused
/// (EACCES or EPERM), once more as root of a user namespace of the caller's
/// own ids (see [`crate::rootless::in_own_user_namespace`]): a rootless
/// container's directory holds files of the user's subordinate ids, and
/// overlayfs's `work/work`, mode 0, which its owner cannot read either.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    let first = match remove_all(path) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if first.kind() != io::ErrorKind::PermissionDenied || nix::unistd::geteuid().is_root() {
        return Err(first);
    }
    crate::rootless::in_own_user_namespace(|| remove_all(path).map_err(|e| e.to_string())).map_err(
        |again| {
            io::Error::new(
                first.kind(),
                format!(
                    "{first}; then in a user namespace of your own and subordinate ids: \
                     {again}; as root: rm -rf {}",
                    path.display()
                ),
            )
        },
    )
}

/// Removes the entry `name` of the directory `dir`, whatever it is, and if
/// it is a directory everything below it.
pub fn remove_all_at(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let cname = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    match stat_at(dir, &cname) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
            return unlink(dir, &cname, 0);
        }
        Ok(_) => {}
    }
    let top = fstat(dir)?;

    /// One level of the walk: a directory being emptied.
    struct Level {
        /// Its name in the level above.
        name: CString,
        /// The (device, inode) of the level above, to check ".." against.
        parent_id: (u64, u64),
        /// Subdirectories found by the scan, still to be removed.
        pending: Vec<CString>,
        /// Scans so far: a second one happens only if rmdir(2) found new entries.
        scans: u32,
    }
    let mut cur = open_dir(dir, &cname, libc::O_NOFOLLOW)?;
    let mut stack = vec![Level {
        name: cname,
        parent_id: (top.st_dev, top.st_ino),
        pending: Vec::new(),
        scans: 0,
    }];
    let at = |name: &CStr, depth: usize, e: io::Error| -> io::Error {
        io::Error::new(
            e.kind(),
            format!("{e} (in {:?}, {depth} levels down)", name.to_string_lossy()),
        )
    };

    while !stack.is_empty() {
        let depth = stack.len() - 1;
        let level = stack.last_mut().expect("not empty");
        if level.scans == 0 {
            level.scans += 1;
            level.pending = scan(&cur).map_err(|e| at(&level.name, depth, e))?;
            continue;
        }
        if let Some(sub) = level.pending.pop() {
            // Down one level: the descriptor of this level is closed, only its
            // identity is kept (for the check on the way back up).
            let here = fstat(cur.as_raw_fd()).map_err(|e| at(&level.name, depth, e))?;
            let next = match open_dir(cur.as_raw_fd(), &sub, libc::O_NOFOLLOW) {
                Ok(fd) => fd,
                // Gone meanwhile, or replaced by a non-directory: remove what is there.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    match unlink(cur.as_raw_fd(), &sub, 0) {
                        Ok(()) => continue,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                        Err(e) => return Err(at(&sub, depth + 1, e)),
                    }
                }
                Err(e) => return Err(at(&sub, depth + 1, e)),
            };
            cur = next;
            stack.push(Level {
                name: sub,
                parent_id: (here.st_dev, here.st_ino),
                pending: Vec::new(),
                scans: 0,
            });
            continue;
        }
        // This level is empty: up one level, then rmdir(2) it.
        let up = open_dir(cur.as_raw_fd(), c"..", 0).map_err(|e| at(&level.name, depth, e))?;
        let up_st = fstat(up.as_raw_fd()).map_err(|e| at(&level.name, depth, e))?;
        if (up_st.st_dev, up_st.st_ino) != level.parent_id {
            return Err(at(
                &level.name,
                depth,
                io::Error::other("the directory was moved while it was being removed"),
            ));
        }
        match unlink(up.as_raw_fd(), &level.name, libc::AT_REMOVEDIR) {
            Ok(()) => {}
            // Something was created in it after the scan: scan it again.
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && level.scans < 3 => {
                level.scans += 1;
                level.pending = scan(&cur).map_err(|e| at(&level.name, depth, e))?;
                continue;
            }
            Err(e) => return Err(at(&level.name, depth, e)),
        }
        stack.pop();
        cur = up;
    }
    Ok(())
}

/// Reads the directory `dir` once: unlinks every entry that is not a
/// directory, returns the names of the subdirectories.
fn scan(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // fdopendir(3) takes ownership of the descriptor it is given: give it a
    // copy, opened afresh on "." so that it reads from the start.
    let fd = open_dir(dir.as_raw_fd(), c".", 0)?;
    // SAFETY: `fd` is an open directory descriptor that we own; on success
    // the DIR stream owns it and closedir(3) below closes it.
    let stream = unsafe { libc::fdopendir(fd.as_raw_fd()) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let mut subdirs = Vec::new();
    let mut result = Ok(());
    loop {
        // readdir(3) returns NULL at the end and on error; errno tells them apart.
        // SAFETY: errno is thread-local; `stream` is a valid DIR stream until closedir.
        unsafe { *libc::__errno_location() = 0 };
        let entry = unsafe { libc::readdir64(stream) };
        if entry.is_null() {
            let errno = io::Error::last_os_error();
            if errno.raw_os_error() != Some(0) {
                result = Err(errno);
            }
            break;
        }
        // SAFETY: readdir64 returned a valid entry, valid until the next call
        // on the same stream; the name is copied out before that.
        let (name, kind) = unsafe {
            (
                CStr::from_ptr((*entry).d_name.as_ptr()).to_owned(),
                (*entry).d_type,
            )
        };
        if name.as_bytes() == b"." || name.as_bytes() == b".." {
            continue;
        }
        // SAFETY: dirfd(3) of a valid stream is its descriptor, open until closedir.
        let dfd = unsafe { libc::dirfd(stream) };
        let is_dir = match kind {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => match stat_at(dfd, &name) {
                Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFDIR,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            },
            _ => false,
        };
        if is_dir {
            subdirs.push(name);
        } else if let Err(e) = unlink(dfd, &name, 0) {
            if e.raw_os_error() != Some(libc::ENOENT) {
                result = Err(io::Error::new(
                    e.kind(),
                    format!("{e}: {:?}", name.to_string_lossy()),
                ));
                break;
            }
        }
    }
    // SAFETY: `stream` came from fdopendir and is closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| subdirs)
}

fn open_dir(dir: RawFd, name: &CStr, extra: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; the descriptor returned is new and ours.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | extra,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_at(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value, filled by the kernel on success.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` a valid buffer.
    let rc = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: as in stat_at.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid buffer; a bad fd only makes fstat fail.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

fn unlink(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A chain of `depth` directories below `top`, made with one descriptor
    /// at a time (mkdirat + openat, closing the previous level).
    // SAFETY (every unsafe block below): plain *at(2) calls with
    // NUL-terminated names from c"" literals and descriptors we own.
    fn deep_chain(top: &Path, depth: usize) {
        std::fs::create_dir(top).unwrap();
        let mut cur = open_dir(libc::AT_FDCWD, &cstr(top.as_os_str()).unwrap(), 0).unwrap();
        for i in 0..depth {
            // SAFETY: a c"" name and a descriptor we own.
            unsafe { libc::mkdirat(cur.as_raw_fd(), c"d".as_ptr(), 0o755) };
            if i % 7 == 0 {
                // SAFETY: a c"" name and a descriptor we own.
                let f = unsafe {
                    libc::openat(
                        cur.as_raw_fd(),
                        c"f".as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    )
                };
                // SAFETY: `f` was opened just above and is ours.
                unsafe { libc::close(f) };
                // SAFETY: c"" strings and a descriptor we own.
                unsafe { libc::symlinkat(c"/".as_ptr(), cur.as_raw_fd(), c"root".as_ptr()) };
            }
            cur = open_dir(cur.as_raw_fd(), c"d", 0).unwrap();
        }
    }

    /// Runs the ignored test `name` of this test binary in a child process
    /// whose open-file limit is `limit`: lowering the limit of this process
    /// would starve the other tests' threads. Fails if that test did not pass.
    pub(crate) fn run_with_nofile(name: &str, limit: u64) {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--exact", name, "--ignored", "--test-threads=1"]);
        // SAFETY: setrlimit(2) is async-signal-safe, all that runs between fork and exec.
        unsafe {
            child.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &lim) {
                    0 => Ok(()),
                    _ => Err(io::Error::last_os_error()),
                }
            })
        };
        let out = child.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    /// Runs the ignored test `name` of this test binary as `uid` (and gid
    /// the same): root can only test what an ordinary user may not do as
    /// someone else. Fails if that test did not pass.
    pub(crate) fn run_as(name: &str, uid: u32) {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        // A copy of this test binary where `uid` may run it: the project
        // may be cloned where only root can read (under /root, mode 0700).
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("tests");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        let out = std::process::Command::new(&exe)
            .args(["--exact", name, "--ignored", "--test-threads=1"])
            .current_dir(dir.path())
            .uid(uid)
            .gid(uid)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    fn removes_a_chain_deeper_than_the_open_file_limit() {
        run_with_nofile("remove::tests::deep_chain_with_a_low_limit", 256);
    }

    #[test]
    #[ignore = "run by removes_a_chain_deeper_than_the_open_file_limit, with a low limit"]
    fn deep_chain_with_a_low_limit() {
        let scratch = tempfile::tempdir().unwrap();
        let top = scratch.path().join("deep");
        deep_chain(&top, 3000);
        // std's remove_dir_all needs a descriptor per level here.
        assert!(std::fs::remove_dir_all(&top).is_err());
        remove_all(&top).unwrap();
        assert!(!top.exists());
    }

    #[test]
    fn removes_files_links_and_wide_directories_but_follows_nothing() {
        let scratch = tempfile::tempdir().unwrap();
        let outside = scratch.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let top = scratch.path().join("tree");
        std::fs::create_dir_all(top.join("a/b")).unwrap();
        for i in 0..300 {
            std::fs::create_dir(top.join(format!("w{i}"))).unwrap();
            std::fs::write(top.join(format!("w{i}/f")), "x").unwrap();
        }
        std::os::unix::fs::symlink(&outside, top.join("a/b/link")).unwrap();
        std::os::unix::fs::symlink(&outside, top.join("dirlink")).unwrap();
        remove_all(&top).unwrap();
        assert!(!top.exists());
        assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "x");
        // A file, and a missing path.
        std::fs::write(scratch.path().join("file"), "x").unwrap();
        remove_all(&scratch.path().join("file")).unwrap();
        remove_all(&scratch.path().join("missing")).unwrap();
    }
}
