//! Thin safe wrappers around the few libc calls std does not offer.

use std::ffi::CStr;
use std::io;

pub fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

pub fn getppid() -> i32 {
    // SAFETY: as above.
    unsafe { libc::getppid() }
}

pub fn getuid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::getgid() }
}

pub fn geteuid() -> u32 {
    // SAFETY: as above.
    unsafe { libc::geteuid() }
}

/// The UTS namespace's host name, as `uname -n` shows it.
pub fn nodename() -> io::Result<String> {
    // SAFETY: utsname is plain old data; uname fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel NUL-terminates every utsname field, and the
    // buffer is zeroed anyway.
    let name = unsafe { CStr::from_ptr(uts.nodename.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}
