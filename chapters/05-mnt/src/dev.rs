//! A minimal /dev, as docker and the OCI runtime spec give every container.

use crate::mount_fs;
use ch01_process::{Context, Ctx, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, umask, Mode, SFlag};
use std::os::unix::fs::symlink;
use std::path::Path;

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
/// Fills `root`/dev, before pivot_root(2) (see lib.rs's setup()).
/// `shm`: mount a /dev/shm (false: the configuration has one of its own).
pub fn populate(ctx: &Ctx, root: &Path, shm: bool) -> Result<()> {
    let dev = |name: &str| root.join("dev").join(name).to_string_lossy().into_owned();
    // A tmpfs, not the host's /dev: only the nodes made here exist.
    mount_fs(
        ctx,
        "tmpfs",
        &dev(""),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    let old = umask(Mode::empty()); // the modes below are meant exactly
    for (name, major, minor) in DEVICES {
        let path = dev(name);
        ctx.say(format_args!("mknod(2) {path} c {major} {minor}"));
        let made = mknod(
            path.as_str(),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        );
        match made {
            Ok(()) => {}
            // In a user namespace (chapter 11) no one may make a device
            // node: the host's own is bound onto an empty file instead.
            Err(Errno::EPERM) => bind_host_node(ctx, name, &path)?,
            Err(e) => {
                umask(old);
                return Err(e).context(format!("mknod(2) {path}"));
            }
        }
    }
    umask(old);
    // A devpts of its own (newinstance): the host's terminals stay invisible.
    mount_fs(
        ctx,
        "devpts",
        &dev("pts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    if shm {
        mount_fs(
            ctx,
            "tmpfs",
            &dev("shm"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777,size=65536k"),
        )?;
    }
    mount_fs(
        ctx,
        "mqueue",
        &dev("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = dev(link);
        symlink(target, &link).context(format!("symlink {link} -> {target}"))?;
    }
    Ok(())
}

/// `mount --bind /dev/NAME PATH`, onto an empty file made for it.
fn bind_host_node(ctx: &Ctx, name: &str, path: &str) -> Result<()> {
    let host = format!("/dev/{name}");
    std::fs::File::create(path).context(format!("creating {path}"))?;
    ctx.say(format_args!("mount(2) {host} on {path}, MS_BIND"));
    mount(
        Some(host.as_str()),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .context(format!("bind-mounting {host} on {path}"))
}
// ANCHOR_END: populate
