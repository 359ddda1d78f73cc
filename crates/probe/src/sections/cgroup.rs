//! Control groups: which cgroup this process is in, and its limits.
//!
//! The runtime gives the container a cgroup of its own, then a cgroup
//! namespace rooted at it, and mounts the cgroup filesystem read-only on
//! /sys/fs/cgroup. Seen from inside, the container's cgroup is then "/"
//! and its limit files sit right in the mount: no path to find first.
//!
//! The two cgroup versions name the same limits differently, so each line
//! is read from whichever file the version has and printed in one form;
//! only the `version:` line tells a v1 host from a v2 one.
//!
//! ```text
//!            v2 (one tree)              v1 (one tree per controller)
//!  memory    memory.max                 memory/memory.limit_in_bytes
//!  pids      pids.max                   pids/pids.max
//!  cpu       cpu.max "QUOTA PERIOD"     cpu/cpu.cfs_quota_us, cpu/cpu.cfs_period_us
//! ```
//!
//! The limits are read at the mount's root, which is this process's cgroup
//! only inside a cgroup namespace; on the host it is the root cgroup, which
//! has no limit files at all (v2) or no limits (v1).

use std::fs;
use std::path::Path;

use crate::report::path_reason;
use crate::Report;

const ROOT: &str = "/sys/fs/cgroup";

/// The controllers whose limits are shown; in v1, their hierarchies are the
/// ones the runtime moves the container into.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// v1 stores "no memory limit" as the largest page-aligned counter value
/// (9223372036854771712 on 4 KiB pages); anything this large is no limit.
const V1_NO_LIMIT: u64 = 1 << 62;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

pub fn run(r: &mut Report) {
    r.header("cgroup");
    let version = detect();
    match version {
        Some(Version::V2) => r.kv("version", "v2"),
        Some(Version::V1) => r.kv("version", "v1"),
        None => r.unavailable(
            "version",
            format_args!("no cgroup filesystem mounted at {ROOT}"),
        ),
    }
    own_cgroup_line(r, version);
    let Some(version) = version else {
        for key in ["memory limit", "pids limit", "cpu limit"] {
            r.unavailable(key, "no cgroup filesystem mounted");
        }
        return;
    };
    let line = |r: &mut Report, key: &str, value: Result<String, String>| match value {
        Ok(v) => r.kv(key, v),
        Err(why) => r.unavailable(key, why),
    };
    line(r, "memory limit", memory_limit(version));
    line(r, "pids limit", pids_limit(version));
    line(r, "cpu limit", cpu_limit(version));
}

/// v2 if /sys/fs/cgroup is a cgroup2 mount (every cgroup2 directory has
/// cgroup.controllers); v1 if it holds a hierarchy per controller (every v1
/// cgroup directory has cgroup.procs). v2 is asked first: a hybrid host,
/// with v1 hierarchies and an extra cgroup2 at /sys/fs/cgroup/unified,
/// keeps its controllers in v1.
fn detect() -> Option<Version> {
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        return Some(Version::V2);
    }
    CONTROLLERS
        .iter()
        .any(|c| root.join(c).join("cgroup.procs").exists())
        .then_some(Version::V1)
}

/// Whether this process's cgroup is "/", i.e. the root of its cgroup
/// namespace. Only the hierarchies that carry the limits count: on a v1
/// host the runtime moves the container in those alone, and in the others
/// (devices, freezer, name=systemd, ...) a cgroup namespace shows wherever
/// the runtime happened to be, which varies between machines. The actual
/// paths are not printed for the same reason.
fn own_cgroup_line(r: &mut Report, version: Option<Version>) {
    let key = "/proc/self/cgroup";
    let text = match fs::read_to_string(key) {
        Ok(t) => t,
        Err(e) => return r.unavailable(key, path_reason(key, &e)),
    };
    let Some(paths) = relevant_paths(&text, version) else {
        return r.unavailable(key, format_args!("{key}: no line for memory, pids or cpu"));
    };
    if paths.iter().any(|p| *p != "/") {
        r.kv(key, "not / (this process sees the host's cgroup hierarchy)");
    } else if host_cgroup_ns() {
        // "/" without a namespace of its own: the process simply runs in the
        // host's root cgroup (a runtime started from it, without ch07).
        r.kv(
            key,
            "/ (the host's root cgroup: no cgroup namespace of its own)",
        );
    } else {
        r.kv(key, "/ (the root of a cgroup namespace of its own)");
    }
}

/// The cgroup paths (third field of `ID:CONTROLLERS:PATH`) that matter:
/// v2's `0::` line, or the v1 lines whose hierarchy holds memory, pids or
/// cpu. Without a mounted cgroup filesystem the version is unknown, so the
/// v1 lines are used if there are any, else the `0::` line. None if there
/// is no such line.
fn relevant_paths(text: &str, version: Option<Version>) -> Option<Vec<&str>> {
    let lines: Vec<(&str, &str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            Some((f.next()?, f.next()?, f.next()?))
        })
        .collect();
    let v1: Vec<&str> = lines
        .iter()
        .filter(|(_, cs, _)| cs.split(',').any(|c| CONTROLLERS.contains(&c)))
        .map(|&(_, _, path)| path)
        .collect();
    let v2: Vec<&str> = lines
        .iter()
        .filter(|(id, cs, _)| *id == "0" && cs.is_empty())
        .map(|&(_, _, path)| path)
        .collect();
    let paths = match version {
        Some(Version::V2) => v2,
        Some(Version::V1) => v1,
        None if !v1.is_empty() => v1,
        None => v2,
    };
    (!paths.is_empty()).then_some(paths)
}

/// True only when the runtime said (in STEPBOX_HOST_NS) which cgroup
/// namespace the host has, and this process is in that one.
fn host_cgroup_ns() -> bool {
    std::env::var(super::ns::HOST_NS_VAR).is_ok() && !super::ns::is_own("cgroup")
}

/// The trimmed content of a file below /sys/fs/cgroup, or `path: reason`.
fn read(rel: &str) -> Result<String, String> {
    let path = format!("{ROOT}/{rel}");
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| path_reason(&path, &e))
}

/// `path: unexpected value "…"`, for a file that holds something else than
/// the kernel documents.
fn unexpected(rel: &str, value: &str) -> String {
    format!("{ROOT}/{rel}: unexpected value {value:?}")
}

fn memory_limit(version: Version) -> Result<String, String> {
    let rel = match version {
        Version::V2 => "memory.max",
        Version::V1 => "memory/memory.limit_in_bytes",
    };
    let value = read(rel)?;
    if value == "max" {
        return Ok("none".into());
    }
    let bytes: u64 = value.parse().map_err(|_| unexpected(rel, &value))?;
    Ok(if bytes >= V1_NO_LIMIT {
        "none".into()
    } else {
        human_size(bytes)
    })
}

fn pids_limit(version: Version) -> Result<String, String> {
    let rel = match version {
        Version::V2 => "pids.max",
        Version::V1 => "pids/pids.max",
    };
    let value = read(rel)?;
    if value == "max" {
        return Ok("none".into());
    }
    let n: u64 = value.parse().map_err(|_| unexpected(rel, &value))?;
    Ok(n.to_string())
}

fn cpu_limit(version: Version) -> Result<String, String> {
    // (quota, period) in µs; None: no quota.
    let limit: Option<(u64, u64)> = match version {
        Version::V2 => {
            let rel = "cpu.max";
            let value = read(rel)?;
            let (quota, period) = value
                .split_once(' ')
                .ok_or_else(|| unexpected(rel, &value))?;
            let period: u64 = period.parse().map_err(|_| unexpected(rel, &value))?;
            match quota {
                "max" => None,
                q => Some((q.parse().map_err(|_| unexpected(rel, &value))?, period)),
            }
        }
        Version::V1 => {
            let rel = "cpu/cpu.cfs_quota_us";
            let value = read(rel)?;
            // -1 is v1's "no quota"; the period is only read when it matters.
            let quota: i64 = value.parse().map_err(|_| unexpected(rel, &value))?;
            if quota < 0 {
                None
            } else {
                let rel = "cpu/cpu.cfs_period_us";
                let value = read(rel)?;
                let period: u64 = value.parse().map_err(|_| unexpected(rel, &value))?;
                Some((quota as u64, period))
            }
        }
    };
    match limit {
        None => Ok("none".into()),
        Some((_, 0)) => Err(format!("{ROOT}: the CPU period is 0")),
        Some((quota, period)) => Ok(cpus(quota, period)),
    }
}

/// 67108864 -> "64 MiB": the largest binary unit the size is a whole
/// multiple of, so that the exact value can be read back (1.5 MiB is
/// printed as "1536 KiB", not rounded).
pub fn human_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// (50000, 100000) -> "0.5 CPUs": quota/period rounded to hundredths, as
/// `--cpus` takes it, without trailing zeros. Integer arithmetic (u128, so
/// nothing overflows), which rounds the same way on every machine.
pub fn cpus(quota: u64, period: u64) -> String {
    if period == 0 {
        return "unknown (period 0)".into();
    }
    let (q, p) = (quota as u128, period as u128);
    let hundredths = (q * 100 + p / 2) / p;
    if hundredths == 0 && quota > 0 {
        // The kernel allows 1 ms per 1 s period: 0.001 CPUs.
        return "less than 0.01 CPUs".into();
    }
    if hundredths == 100 {
        return "1 CPU".into();
    }
    let whole = hundredths / 100;
    let frac = hundredths % 100;
    let number = match frac {
        0 => format!("{whole}"),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    };
    format!("{number} CPUs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(1536 << 10), "1536 KiB");
        assert_eq!(human_size(2 << 40), "2 TiB");
        assert_eq!(human_size(1000), "1000 bytes");
        assert_eq!(human_size(0), "0 bytes");
    }

    #[test]
    fn cpu_fractions() {
        assert_eq!(cpus(50000, 100000), "0.5 CPUs");
        assert_eq!(cpus(100000, 100000), "1 CPU");
        assert_eq!(cpus(25000, 100000), "0.25 CPUs");
        assert_eq!(cpus(200000, 100000), "2 CPUs");
        assert_eq!(cpus(150000, 100000), "1.5 CPUs");
        assert_eq!(cpus(1000, 100000), "0.01 CPUs");
        assert_eq!(cpus(105000, 100000), "1.05 CPUs");
        assert_eq!(cpus(33333, 100000), "0.33 CPUs");
        assert_eq!(cpus(1000, 1000000), "less than 0.01 CPUs");
        assert_eq!(cpus(0, 100000), "0 CPUs");
        assert_eq!(cpus(u64::MAX, 1), format!("{} CPUs", u64::MAX));
    }

    #[test]
    fn picks_the_limited_hierarchies() {
        let v1 = "9:name=systemd:/x\n8:pids:/\n5:devices:/..\n4:memory:/\n1:cpu,cpuacct:/\n0::/y\n";
        assert_eq!(
            relevant_paths(v1, Some(Version::V1)),
            Some(vec!["/", "/", "/"])
        );
        assert_eq!(relevant_paths(v1, None), Some(vec!["/", "/", "/"]));
        assert_eq!(relevant_paths(v1, Some(Version::V2)), Some(vec!["/y"]));
        let v2 = "0::/user.slice/session-1.scope\n";
        assert_eq!(
            relevant_paths(v2, Some(Version::V2)),
            Some(vec!["/user.slice/session-1.scope"])
        );
        assert_eq!(
            relevant_paths(v2, None),
            Some(vec!["/user.slice/session-1.scope"])
        );
        assert_eq!(relevant_paths(v2, Some(Version::V1)), None);
        assert_eq!(relevant_paths("", None), None);
    }
}
