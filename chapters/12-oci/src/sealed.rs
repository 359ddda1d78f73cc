//! The CVE-2019-5736 defence. The container's first process, and every
//! process `exec` makes, is a copy of this runtime until its execve(2):
//! `/proc/PID/exe` is the runtime's binary on the host. A container that
//! makes its command a script starting `#!/proc/self/exe` has the kernel
//! run that very binary in the container, as its root; the process can
//! then keep a descriptor of the file and, once the runtime has exited
//! (a running binary cannot be written: ETXTBSY), open it for writing
//! through `/proc/self/fd` and replace the host's runtime with its own.
//!
//! So the runtime re-executes itself, before anything else, from a file
//! that no one can write:
//!
//! - a read-only mount of its own binary that is in no mount namespace:
//!   open_tree(2) with `OPEN_TREE_CLONE` makes a detached bind mount of
//!   the file, mount_setattr(2) makes it read-only, and execveat(2) runs
//!   the binary through it. A write through `/proc/PID/exe` then fails
//!   with EROFS, and the mount cannot be made writable again: it is in
//!   no one's namespace once the descriptor is closed (runc 1.2 does the
//!   same with an overlayfs mount). It needs `CAP_SYS_ADMIN`.
//! - else, a copy in a memfd (memfd_create(2)), sealed against every
//!   change (F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_SEAL), as
//!   runc did first. It costs a copy of the binary (4 MB, 3 ms) in memory
//!   for every command that makes a process (create, run, exec).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether this process runs from a file no one can write already: a
/// binary on a read-only mount, or a sealed memfd.
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    if nix::sys::statvfs::fstatvfs(&exe)
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    {
        return true;
    }
    // SAFETY: F_GET_SEALS takes no argument; on a file that is not a memfd
    // it fails with EINVAL.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

// ANCHOR: reexec
/// Re-executes this process from a read-only mount of its binary, or a
/// sealed copy of it, with the same arguments and environment; returns
/// only on failure.
pub fn reexec() -> io::Error {
    let exe = match read_only_mount().or_else(|_| copy()) {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    // fexecve(3): execveat(2) of the descriptor itself (AT_EMPTY_PATH).
    match nix::unistd::fexecve(exe.as_raw_fd(), &args, &env) {
        Err(e) => io::Error::from(e),
        Ok(never) => match never {},
    }
}

/// A detached, read-only bind mount of this process's binary: the
/// descriptor open_tree(2) returns is the file, on that mount.
fn read_only_mount() -> io::Result<OwnedFd> {
    let path = std::fs::read_link("/proc/self/exe")?;
    let path = CString::new(path.as_os_str().as_bytes())?;
    let tree = detached_read_only(&path)?;
    // The path was looked up after this process started: it must still
    // be the binary this process runs.
    let (running, mounted) = (
        std::fs::metadata("/proc/self/exe")?,
        File::from(tree.try_clone()?).metadata()?,
    );
    if (running.dev(), running.ino()) != (mounted.dev(), mounted.ino()) {
        return Err(io::Error::other("the binary was replaced since it started"));
    }
    Ok(tree)
}

fn detached_read_only(path: &CString) -> io::Result<OwnedFd> {
    // lab: begin open_tree(2) `path` (OPEN_TREE_CLONE), mount_setattr(2) MOUNT_ATTR_RDONLY
    let flags = libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: a valid C string and flags; the kernel returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree(2) just returned this descriptor; nothing else owns it.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the kernel reads `attr`, of the size given, and nothing else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
    // lab: end
}

fn copy() -> io::Result<OwnedFd> {
    let name = c"ch12-oci";
    // SAFETY: a valid C string and flags; the kernel returns a new fd.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create(2) just returned this descriptor; nothing else owns it.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut exe = File::open("/proc/self/exe")?;
    let mut out = File::from(memfd.try_clone()?);
    io::copy(&mut exe, &mut out)?;
    // SAFETY: F_ADD_SEALS takes an int of seal bits.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(memfd)
}
// ANCHOR_END: reexec

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The fallback, which needs no privilege: the copy is this binary,
    /// and it cannot be written, grown or shrunk.
    #[test]
    fn the_memfd_copy_is_sealed_against_writes() {
        let memfd = copy().unwrap();
        let copied = File::from(memfd.try_clone().unwrap()).metadata().unwrap();
        assert_eq!(
            copied.len(),
            std::fs::metadata("/proc/self/exe").unwrap().len()
        );
        // SAFETY: F_GET_SEALS takes no argument.
        let seals = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_eq!(seals & SEALS, SEALS);
        let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        let wrote = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"x"));
        assert_eq!(wrote.unwrap_err().raw_os_error(), Some(libc::EPERM));
    }
}
