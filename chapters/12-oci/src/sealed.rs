//! The CVE-2019-5736 defence. The container's first process, and every
//! process `exec` makes, is a copy of this runtime until its execve(2):
//! `/proc/PID/exe` is the runtime's binary on the host. A container that
//! makes its command a script starting `#!/proc/self/exe` has the kernel
//! run that very binary in the container, as its root; the process can
//! then keep a descriptor of the file and, once the runtime has exited
//! (a running binary cannot be written: ETXTBSY), open it for writing
//! through `/proc/self/fd` and replace the host's runtime with its own.
//!
//! So, as runc does, the runtime runs from a copy: before anything else,
//! it copies its binary into a memfd (memfd_create(2)), seals it against
//! every change (F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK, F_SEAL_SEAL),
//! and re-executes itself from it with fexecve(2). `/proc/self/exe` is then
//! a sealed memory file, which no one can write, and the binary on disk is
//! never in view. The cost is one copy of the binary per command that
//! makes a process (create, run, exec), about a millisecond.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Whether this process runs from a sealed memfd already.
pub fn is_sealed() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS takes no argument; on a file that is not a memfd
    // it fails with EINVAL.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

// ANCHOR: reexec
/// Re-executes this process from a sealed copy of its binary, with the same
/// arguments and environment; returns only on failure.
pub fn reexec() -> io::Error {
    match copy() {
        Ok(memfd) => {
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
            match nix::unistd::fexecve(memfd.as_raw_fd(), &args, &env) {
                Err(e) => io::Error::from(e),
                Ok(never) => match never {},
            }
        }
        Err(e) => e,
    }
}

fn copy() -> io::Result<OwnedFd> {
    // lab: begin memfd_create(2) "ch12-oci", copy /proc/self/exe into it, then F_ADD_SEALS SEALS
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
    // lab: end
}
// ANCHOR_END: reexec
