//! The user namespace: which host ids this process's ids are.
//!
//! `/proc/self/uid_map` and `gid_map` say it, one line per range,
//! `INSIDE OUTSIDE COUNT` (OUTSIDE as the parent namespace counts). The
//! host's own namespace maps every id to itself (`0 0 4294967295`): there
//! uid 0 is root over the whole machine. In a user namespace of its own
//! (chapter 11), uid 0 is root over what the namespace owns, and on the
//! host it is whatever id the map says.

use std::fs;

use crate::report::path_reason;
use crate::Report;

pub fn run(r: &mut Report) {
    r.header("userns");
    let uid_map = fs::read_to_string("/proc/self/uid_map");
    for (key, path) in [
        ("uid_map", "/proc/self/uid_map"),
        ("gid_map", "/proc/self/gid_map"),
    ] {
        match fs::read_to_string(path) {
            Ok(text) => r.kv(key, ranges(&text)),
            Err(e) => r.unavailable(key, path_reason(path, &e)),
        }
    }
    if let Ok(text) = fs::read_to_string("/proc/self/setgroups") {
        r.kv("setgroups", text.trim());
    }
    if let Ok(text) = uid_map {
        r.kv("root", root(&text, crate::sys::getuid()));
    }
}

/// `0-65535 -> 100000-165535`, ranges joined by `, `; the host's own map
/// as `all -> all`.
pub fn ranges(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<u64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            let [inside, outside, count] = f[..] else {
                return None;
            };
            if inside == 0 && outside == 0 && count == 4_294_967_295 {
                return Some("all -> all (the host's own)".to_string());
            }
            let span = |start: u64| match count {
                1 => start.to_string(),
                _ => format!("{start}-{}", start + count - 1),
            };
            Some(format!("{} -> {}", span(inside), span(outside)))
        })
        .collect();
    match lines.is_empty() {
        true => "none (no id is mapped yet)".to_string(),
        false => lines.join(", "),
    }
}

/// What uid 0 (or this process's uid) is on the outside.
pub fn root(uid_map: &str, uid: u32) -> String {
    let outside = uid_map.lines().find_map(|line| {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let uid = u64::from(uid);
        (uid >= inside && uid < inside + count).then(|| outside + uid - inside)
    });
    let host_map = uid_map.split_whitespace().eq(["0", "0", "4294967295"]);
    match (host_map, uid, outside) {
        (true, 0, _) => "uid 0 is root on the host".to_string(),
        (true, _, _) => format!("uid {uid} is not root"),
        (false, 0, Some(host)) => format!("uid 0 here only: uid {host} outside"),
        (false, _, Some(host)) => format!("uid {uid} here, uid {host} outside"),
        (false, _, None) => format!("uid {uid} is not mapped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_read_as_ranges() {
        assert_eq!(
            ranges("         0          0 4294967295\n"),
            "all -> all (the host's own)"
        );
        assert_eq!(ranges("0 100000 65536\n"), "0-65535 -> 100000-165535");
        assert_eq!(
            ranges("0 1000 1\n1 100000 65536\n"),
            "0 -> 1000, 1-65536 -> 100000-165535"
        );
        assert_eq!(ranges(""), "none (no id is mapped yet)");
    }

    #[test]
    fn root_is_said_for_what_it_is() {
        assert_eq!(root("0 0 4294967295\n", 0), "uid 0 is root on the host");
        assert_eq!(
            root("0 100000 65536\n", 0),
            "uid 0 here only: uid 100000 outside"
        );
        assert_eq!(root("0 1000 1\n", 0), "uid 0 here only: uid 1000 outside");
        assert_eq!(root("0 1000 1\n", 5), "uid 5 is not mapped");
    }
}
