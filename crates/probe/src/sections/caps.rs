//! Privileges: the capabilities this process holds, `no_new_privs`,
//! seccomp, and every id it runs as.
//!
//! All of it comes from /proc/self/status, which is how `capsh --print` or
//! `grep Cap /proc/self/status` would see it. Each of the five capability
//! sets is shown by name (lowercase, without `cap_`, in the kernel's order),
//! or as `all N` when it holds every capability the kernel knows
//! (/proc/sys/kernel/cap_last_cap), `all N but ...` when it lacks only a
//! few, `none` when empty. Root on the host holds all of them; root in a
//! docker container holds 14.

use std::fs;

use crate::report::path_reason;
use crate::Report;

/// Capability names, by number (capabilities(7)), as far as Linux 5.9's
/// `CAP_CHECKPOINT_RESTORE` (40).
pub const NAMES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The five sets, as the report names them and as /proc/self/status does.
const SETS: &[(&str, &str)] = &[
    ("effective", "CapEff"),
    ("permitted", "CapPrm"),
    ("inheritable", "CapInh"),
    ("bounding", "CapBnd"),
    ("ambient", "CapAmb"),
];

/// Names per continuation line, so that a long set still reads in a
/// terminal (and in the book) without wrapping.
const LINE_WIDTH: usize = 64;

pub fn run(r: &mut Report) {
    r.header("caps");
    let last = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or((NAMES.len() - 1) as u32);
    match fs::read_to_string("/proc/self/status") {
        Ok(status) => report(r, &status, last),
        Err(e) => r.unavailable("status", path_reason("/proc/self/status", &e)),
    }
}

/// The section, from the text of /proc/self/status and the kernel's last
/// capability.
pub fn report(r: &mut Report, status: &str, last: u32) {
    for &(key, field_name) in SETS {
        match field(status, field_name).and_then(hex_set) {
            Some(bits) => {
                let (value, more) = describe_set(bits, last);
                r.kv(key, value);
                for line in more {
                    r.line(format_args!("  {line}"));
                }
            }
            None => r.unavailable(key, format_args!("no {field_name} line")),
        }
    }
    match field(status, "NoNewPrivs") {
        Some(value) => r.kv("NoNewPrivs", value),
        None => r.unavailable("NoNewPrivs", "no NoNewPrivs line"),
    }
    match field(status, "Seccomp") {
        Some(value) => r.kv("Seccomp", seccomp_mode(value)),
        None => r.unavailable("Seccomp", "no Seccomp line"),
    }
    // Linux 5.9 and later: how many filters are stacked.
    if let Some(value) = field(status, "Seccomp_filters") {
        r.kv("Seccomp_filters", value);
    }
    for (key, field_name) in [("uids", "Uid"), ("gids", "Gid")] {
        match field(status, field_name).and_then(ids) {
            Some(value) => r.kv(key, value),
            None => r.unavailable(key, format_args!("no {field_name} line")),
        }
    }
    match field(status, "Groups") {
        Some(value) => r.kv("groups", groups(value)),
        None => r.unavailable("groups", "no Groups line"),
    }
}

/// The value of `key` in /proc/self/status (`key:\tvalue`), trimmed.
pub fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim())
    })
}

/// A capability set as the kernel prints it: 16 hex digits.
pub fn hex_set(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 16 {
        return None;
    }
    u64::from_str_radix(value, 16).ok()
}

/// The name of capability `cap`, or its number for one newer than [`NAMES`].
fn cap_name(cap: u32) -> String {
    match NAMES.get(cap as usize) {
        Some(name) => name.to_string(),
        None => cap.to_string(),
    }
}

/// Names joined by spaces, in lines of at most [`LINE_WIDTH`] characters.
fn wrap(names: &[String]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for name in names {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + name.len() <= LINE_WIDTH => {
                line.push(' ');
                line.push_str(name);
            }
            _ => lines.push(name.clone()),
        }
    }
    lines
}

/// A set's value for its `key:` line, and the lines of names under it.
///
/// - `none`; `all 41` (every capability up to `last`);
/// - `40 of 41, all but sys_resource` when more than half are held;
/// - `14 of 41`, then the names, on lines of their own.
pub fn describe_set(bits: u64, last: u32) -> (String, Vec<String>) {
    let last = last.min(63);
    let all = match last {
        63 => u64::MAX,
        _ => (1u64 << (last + 1)) - 1,
    };
    let total = last + 1;
    let held: Vec<String> = (0..64)
        .filter(|cap| bits & (1 << cap) != 0)
        .map(cap_name)
        .collect();
    let count = held.len();
    if bits == 0 {
        return ("none".to_string(), Vec::new());
    }
    if bits == all {
        return (format!("all {total}"), Vec::new());
    }
    // Bits above `last` (a kernel that knows more than it said) are never
    // hidden behind "all but".
    if bits & !all == 0 && count as u32 * 2 > total {
        let missing: Vec<String> = (0..=last)
            .filter(|cap| bits & (1 << cap) == 0)
            .map(cap_name)
            .collect();
        let mut lines = wrap(&missing);
        let first = lines.remove(0);
        return (format!("{count} of {total}, all but {first}"), lines);
    }
    (format!("{count} of {total}"), wrap(&held))
}

/// `2 (filter)`: the mode with its meaning.
pub fn seccomp_mode(value: &str) -> String {
    let meaning = match value {
        "0" => "disabled",
        "1" => "strict",
        "2" => "filter",
        _ => return value.to_string(),
    };
    format!("{value} ({meaning})")
}

/// The four ids of a `Uid:` or `Gid:` line.
pub fn ids(value: &str) -> Option<String> {
    let ids: Vec<&str> = value.split_whitespace().collect();
    let [real, effective, saved, fs] = ids[..] else {
        return None;
    };
    Some(format!(
        "real {real}, effective {effective}, saved {saved}, fs {fs}"
    ))
}

/// The supplementary groups, or `none`; a long list is summarised.
pub fn groups(value: &str) -> String {
    let groups: Vec<&str> = value.split_whitespace().collect();
    match groups.len() {
        0 => "none".to_string(),
        n if n > crate::report::MAX_LISTED => format!("{n} (not listed)"),
        _ => groups.join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_DEFAULT: u64 = 0x00000000a80425fb;

    #[test]
    fn names_are_by_number() {
        assert_eq!(NAMES.len(), 41);
        assert_eq!(NAMES[21], "sys_admin");
        assert_eq!(NAMES[31], "setfcap");
        assert_eq!(NAMES[40], "checkpoint_restore");
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tprobe\nUid:\t0\t0\t0\t0\nGroups:\t \nCapEff:\t000001ffffffffff\n\
                      Seccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(field(status, "Name"), Some("probe"));
        assert_eq!(field(status, "Groups"), Some(""));
        assert_eq!(field(status, "Seccomp"), Some("2"));
        assert_eq!(field(status, "Seccom"), None);
        assert_eq!(
            field(status, "CapEff").and_then(hex_set),
            Some((1 << 41) - 1)
        );
        assert_eq!(hex_set("0000000000000000"), Some(0));
        assert_eq!(hex_set(""), None);
        assert_eq!(hex_set("xyz"), None);
        assert_eq!(hex_set("10000000000000000"), None);
        assert_eq!(
            ids("0\t1000\t0\t1000").as_deref(),
            Some("real 0, effective 1000, saved 0, fs 1000")
        );
        assert_eq!(ids("0 0 0"), None);
        assert_eq!(groups(""), "none");
        assert_eq!(groups("0 10 27"), "0 10 27");
        let many: Vec<String> = (0..30).map(|g| g.to_string()).collect();
        assert_eq!(groups(&many.join(" ")), "30 (not listed)");
        assert_eq!(seccomp_mode("0"), "0 (disabled)");
        assert_eq!(seccomp_mode("2"), "2 (filter)");
        assert_eq!(seccomp_mode("7"), "7");
    }

    #[test]
    fn describes_sets() {
        assert_eq!(describe_set(0, 40), ("none".to_string(), vec![]));
        assert_eq!(
            describe_set((1 << 41) - 1, 40),
            ("all 41".to_string(), vec![])
        );
        assert_eq!(describe_set(u64::MAX, 63), ("all 64".to_string(), vec![]));
        // This VM's host: every capability but sys_resource (24).
        assert_eq!(
            describe_set(0x000001fffeffffff, 40),
            ("40 of 41, all but sys_resource".to_string(), vec![])
        );
        assert_eq!(
            describe_set(1 << 5 | 1, 40),
            ("2 of 41".to_string(), vec!["chown kill".to_string()])
        );
        let (value, lines) = describe_set(DOCKER_DEFAULT, 40);
        assert_eq!(value, "14 of 41");
        assert_eq!(
            lines,
            [
                "chown dac_override fowner fsetid kill setgid setuid setpcap",
                "net_bind_service net_raw sys_chroot mknod audit_write setfcap",
            ]
        );
        assert!(lines.iter().all(|l| l.len() <= LINE_WIDTH));
        // A kernel newer than the table: its capability shows as a number,
        // and is not hidden behind "all but".
        assert_eq!(describe_set(1 << 41 | 1, 41).1, ["chown 41"]);
        assert_eq!(describe_set(((1 << 41) - 1) | 1 << 45, 40).0, "42 of 41");
    }

    #[test]
    fn reports_the_whole_section() {
        let status = "Uid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\nGroups:\t100 27\n\
                      CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
                      CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n\
                      CapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\n\
                      Seccomp_filters:\t1\n";
        let mut r = Report::new();
        report(&mut r, status, 40);
        let set = "14 of 41\n  chown dac_override fowner fsetid kill setgid setuid setpcap\n  \
                   net_bind_service net_raw sys_chroot mknod audit_write setfcap\n";
        let want = format!(
            "effective: {set}permitted: {set}inheritable: none\nbounding: {set}ambient: none\n\
             NoNewPrivs: 1\nSeccomp: 2 (filter)\nSeccomp_filters: 1\n\
             uids: real 1000, effective 1000, saved 1000, fs 1000\n\
             gids: real 100, effective 100, saved 100, fs 100\ngroups: 100 27\n"
        );
        assert_eq!(r.as_str(), want);
        // An old kernel's status, with lines missing: said, not guessed.
        let mut r = Report::new();
        report(&mut r, "CapEff:\t0000000000000000\nSeccomp:\t0\n", 40);
        assert!(r.as_str().contains("effective: none\n"));
        assert!(r
            .as_str()
            .contains("ambient: unavailable (no CapAmb line)\n"));
        assert!(r
            .as_str()
            .contains("NoNewPrivs: unavailable (no NoNewPrivs line)\n"));
        assert!(!r.as_str().contains("Seccomp_filters"));
    }
}
