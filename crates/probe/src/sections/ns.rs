//! Namespaces: which of them this process shares with the host.
//!
//! Every namespace is a kernel object with an inode number on the internal
//! `nsfs` file system; `readlink /proc/self/ns/net` shows it as
//! `net:[4026531840]`. Two processes are in the same namespace exactly when
//! these numbers match. A process cannot know the host's numbers by itself
//! (after the runtime's setup it may no longer see any host process), so the
//! runtime hands them over in `STEPBOX_HOST_NS` before it creates anything.
//!
//! Strictly, namespaces are identified by (device, inode), but all of them
//! live on the one nsfs device, so the inode is enough here.

use std::collections::BTreeMap;
use std::fs;

use crate::report::reason;
use crate::Report;

/// The environment variable the runtime sets: `name:inode` pairs separated
/// by spaces, read from the host's `/proc/self/ns/*` before any unshare.
pub const HOST_NS_VAR: &str = "STEPBOX_HOST_NS";

/// Namespace kinds, sorted by name. `pid` (not `pid_for_children`) because
/// the question is which namespace *this* process is in.
pub const NAMES: &[&str] = &["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

pub fn run(r: &mut Report) {
    r.header("namespaces");
    let host = std::env::var(HOST_NS_VAR).ok().map(|v| parse_host_ns(&v));
    for &name in NAMES {
        let mine = match own_ns_inode(name) {
            Ok(ino) => ino,
            Err(why) => {
                r.unavailable(name, why);
                continue;
            }
        };
        match host.as_ref().and_then(|h| h.get(name)) {
            Some(&host_ino) if host_ino == mine => r.kv(name, "host"),
            Some(_) => r.kv(name, "own"),
            None => r.kv(name, format_args!("unknown ({HOST_NS_VAR} not set)")),
        }
    }
}

/// Whether this process has a namespace of kind `name` of its own; false
/// when it shares the host's, or when that cannot be told.
pub fn is_own(name: &str) -> bool {
    let host = std::env::var(HOST_NS_VAR).ok().map(|v| parse_host_ns(&v));
    match (host.as_ref().and_then(|h| h.get(name)), own_ns_inode(name)) {
        (Some(&host_ino), Ok(mine)) => host_ino != mine,
        _ => false,
    }
}

/// The inode number of this process's namespace of kind `name`.
fn own_ns_inode(name: &str) -> Result<u64, String> {
    let path = format!("/proc/self/ns/{name}");
    let link = fs::read_link(&path).map_err(|e| format!("{path}: {}", reason(&e)))?;
    let link = link.to_string_lossy();
    parse_ns_link(&link).ok_or_else(|| format!("{path}: unexpected link {link:?}"))
}

/// `net:[4026531840]` -> 4026531840
pub fn parse_ns_link(link: &str) -> Option<u64> {
    let (_, rest) = link.split_once(":[")?;
    rest.strip_suffix(']')?.parse().ok()
}

/// `cgroup:4026531835 ipc:4026531839 ...` -> {cgroup: 4026531835, ...}.
/// Malformed pairs are skipped: their namespace then reads as unknown.
pub fn parse_host_ns(value: &str) -> BTreeMap<String, u64> {
    value
        .split_whitespace()
        .filter_map(|pair| {
            let (name, ino) = pair.split_once(':')?;
            Some((name.to_string(), ino.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_links_and_env() {
        assert_eq!(parse_ns_link("net:[4026531840]"), Some(4026531840));
        assert_eq!(parse_ns_link("garbage"), None);
        let host = parse_host_ns("ipc:1 net:2 bogus uts:x mnt:3");
        assert_eq!(host.len(), 3);
        assert_eq!(host["net"], 2);
        assert!(!host.contains_key("uts"));
    }
}
