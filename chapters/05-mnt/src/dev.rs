//! A minimal /dev, as docker and the OCI runtime spec give every container.

use crate::mount_fs;
use ch01_process::{Context, Ctx, Result};
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, umask, Mode, SFlag};
use std::os::unix::fs::symlink;

// ANCHOR: devices
/// (name, major, minor): the character devices every program may expect.
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
// ANCHOR_END: devices

// ANCHOR: populate
pub fn populate(ctx: &Ctx) -> Result<()> {
    // A tmpfs, not the host's /dev: only the nodes made here exist.
    mount_fs(
        ctx,
        "tmpfs",
        "/dev",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let old = umask(Mode::empty()); // the modes below are meant exactly
    for (name, major, minor) in DEVICES {
        let path = format!("/dev/{name}");
        ctx.say(format_args!("mknod(2) {path} c {major} {minor}"));
        mknod(
            path.as_str(),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .context(format!("mknod(2) {path}"))?;
    }
    umask(old);
    // A devpts of its own (newinstance): the host's terminals stay invisible.
    mount_fs(
        ctx,
        "devpts",
        "/dev/pts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    mount_fs(
        ctx,
        "tmpfs",
        "/dev/shm",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    mount_fs(
        ctx,
        "mqueue",
        "/dev/mqueue",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, link).context(format!("symlink {link} -> {target}"))?;
    }
    Ok(())
}
// ANCHOR_END: populate
