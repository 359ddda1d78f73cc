//! File system: which root this process has and what is mounted in it.
//!
//! `root:` tells whether "/" is the host's root directory. The runtime
//! passes the host's (st_dev, st_ino) of "/" in `STEPBOX_HOST_ROOT`; a
//! chroot or pivot_root to another directory gives a different pair.
//!
//! `mounts:` reads /proc/self/mountinfo, which lists the mounts of this
//! process's mount namespace that are reachable from its root, with paths
//! relative to that root. (It needs a mounted /proc, of course.)

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::report::path_reason;
use crate::Report;

/// The environment variable the runtime sets: `DEV:INO` of the host's "/",
/// both decimal.
pub const HOST_ROOT_VAR: &str = "STEPBOX_HOST_ROOT";

pub fn run(r: &mut Report) {
    r.header("filesystem");
    root_line(r);
    let path = "/proc/self/mountinfo";
    match fs::read_to_string(path) {
        Ok(text) => {
            let mounts: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            r.kv("mounts", mounts.len());
            r.own_items(
                super::ns::is_own("mnt"),
                mounts.iter().map(|line| {
                    parse_mountinfo_line(line).unwrap_or_else(|| format!("(unparsable: {line})"))
                }),
            );
        }
        Err(e) => r.unavailable("mounts", path_reason(path, &e)),
    }
}

fn root_line(r: &mut Report) {
    let meta = match fs::metadata("/") {
        Ok(m) => m,
        Err(e) => return r.unavailable("root", path_reason("/", &e)),
    };
    let mine = (meta.dev(), meta.ino());
    match std::env::var(HOST_ROOT_VAR) {
        Err(_) => r.kv("root", format_args!("unknown ({HOST_ROOT_VAR} not set)")),
        Ok(value) => match parse_dev_ino(&value) {
            Some(host) if host == mine => r.kv("root", "host"),
            Some(_) => r.kv("root", "own"),
            None => r.kv(
                "root",
                format_args!("unknown ({HOST_ROOT_VAR} is not DEV:INO)"),
            ),
        },
    }
}

/// `2049:2` -> (2049, 2)
pub fn parse_dev_ino(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// One mountinfo line as `MOUNTPOINT FSTYPE OPTS`.
///
/// mountinfo fields: `id parent major:minor root MOUNTPOINT OPTS
/// [optional...] - FSTYPE source superopts`. The optional fields vary in
/// number, so FSTYPE is found after the `-` separator. Mount points keep the
/// kernel's octal escapes (`\040` for a space), which keeps lines splittable.
pub fn parse_mountinfo_line(line: &str) -> Option<String> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount_point = fields.get(4)?;
    let opts = fields.get(5)?;
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let fstype = fields.get(sep + 1)?;
    Some(format!("{mount_point} {fstype} {}", stable_options(opts)))
}

/// Per-mount options without the ones that differ between otherwise equal
/// hosts: the atime policy (`relatime` is a distribution default) and any
/// `key=value` option (sizes, inode counts, ...).
pub fn stable_options(opts: &str) -> String {
    opts.split(',')
        .filter(|o| !matches!(*o, "relatime" | "noatime") && !o.contains('='))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo() {
        let line = "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw";
        assert_eq!(
            parse_mountinfo_line(line).unwrap(),
            "/proc proc rw,nosuid,nodev,noexec"
        );
        let line = "24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12k,mode=755";
        assert_eq!(parse_mountinfo_line(line).unwrap(), "/dev devtmpfs rw");
        assert_eq!(parse_mountinfo_line("1 2 3"), None);
        assert_eq!(stable_options("ro,noatime,size=1k,nosuid"), "ro,nosuid");
    }

    #[test]
    fn parses_dev_ino() {
        assert_eq!(parse_dev_ino("2049:2"), Some((2049, 2)));
        assert_eq!(parse_dev_ino("2049"), None);
    }
}
