//! The final sweep: after the whole suite, the host must hold nothing this
//! run's containers made: no cgroup, veth, mount, scratch dir or process.
//!
//! Every privileged test already compares the host before and after its own
//! containers (`common::run_clean`); this catches what outlives a test: a
//! process still running, a cgroup removed late. It is ignored by plain
//! `cargo test`, so that it never depends on the order cargo runs test
//! binaries in: scripts/test.sh runs it explicitly once the suite is done
//! (`cargo test --test zz_leftovers -- --ignored`), with the run's
//! `STEPBOX_TEST_RUN`. Other runs on the same host (another checkout's
//! tests, a user's containers) are not looked at: only ids of this run
//! (`common::is_this_runs_id`) count.

mod common;

use std::path::Path;

/// The id in `name` if it is `{prefix}{id}` with an id of this run.
fn this_runs<'a>(name: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes
        .iter()
        .filter_map(|p| name.strip_prefix(p))
        .find(|id| common::is_this_runs_id(id))
}

/// The ids of this run a mount point's path names in one of its components
/// (`state-ID`, `store-ID`, `containers/ID`; tests/engines.rs's scratch
/// dirs for podman, containerd and dockerd: `pm-ID`, `ct-ID`, `dk-ID`).
fn names_this_runs_id(path: &str) -> bool {
    path.split('/')
        .any(|c| this_runs(c, &["", "state-", "store-", "pm-", "ct-", "dk-"]).is_some())
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// This run's processes: runtimes (and `--init`, a fork of one) carry the
/// id the test gave them in `STEPBOX_CONTAINER_ID`; commands in a UTS
/// namespace have it as `HOSTNAME`; commands in a cgroup are in
/// `stepbox-ID`. (A chapter 1 to 5 command that outlived its runtime has
/// none of these: the runtime's own tests check that it does not.)
fn leftover_processes() -> Vec<String> {
    let mut left = Vec::new();
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = proc.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let environ = read_lossy(&proc.path().join("environ"));
        let by_env = environ.split('\0').find_map(|var| {
            this_runs(var, &["STEPBOX_CONTAINER_ID=", "HOSTNAME="]).map(|_| var.to_owned())
        });
        let cgroups = read_lossy(&proc.path().join("cgroup"));
        let by_cgroup = cgroups.lines().find_map(|l| {
            l.rsplit('/')
                .next()
                .and_then(|dir| this_runs(dir, &["stepbox-"]))
                .map(|_| format!("cgroup {}", l.split(':').nth(2).unwrap_or(l)))
        });
        if let Some(why) = by_env.or(by_cgroup) {
            let comm = read_lossy(&proc.path().join("comm"));
            let exe = std::fs::read_link(proc.path().join("exe"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("({e})"));
            left.push(format!("process {pid} {} ({exe}; {why})", comm.trim()));
        }
    }
    left
}

#[test]
#[ignore = "run by scripts/test.sh after the suite"]
fn the_suite_left_nothing_behind() {
    if !common::root() {
        return;
    }
    if std::env::var_os(common::RUN_VAR).is_none() {
        panic!(
            "{} is not set: this sweep checks one run's containers; \
             run it as scripts/test.sh does, with the suite's {0}",
            common::RUN_VAR
        );
    }
    let mut left = Vec::new();
    left.extend(
        common::find_cgroups(&format!("-{}", common::run_prefix()))
            .into_iter()
            .filter(|c| {
                let name = c.rsplit('/').next().unwrap();
                this_runs(name, &["stepbox-", "sbtest-"]).is_some()
            })
            .map(|c| format!("cgroup {c}")),
    );
    for link in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let name = link.file_name().to_string_lossy().into_owned();
        if this_runs(&name, &["sb"]).is_some() {
            left.push(format!("network link {name}"));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for mount in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        if names_this_runs_id(mount) {
            left.push(format!("mount {mount}"));
        }
    }
    if let Ok(entries) = std::fs::read_dir(common::SCRATCH) {
        for e in entries.flatten() {
            if names_this_runs_id(&e.file_name().to_string_lossy()) {
                left.push(format!("scratch dir {}", e.path().display()));
            }
        }
    }
    // The users tests/rootless.rs makes (`sbt` and an id of this run),
    // with their subordinate ids.
    for file in ["/etc/passwd", "/etc/subuid", "/etc/subgid"] {
        for line in read_lossy(Path::new(file)).lines() {
            let name = line.split(':').next().unwrap_or("");
            if this_runs(name, &["sbt"]).is_some() {
                left.push(format!("user {name} in {file}"));
            }
        }
    }
    // Named after no run: no run's layer may ever write it.
    if Path::new(ch08_overlay::testdata::ESCAPE_TARGET).exists() {
        left.push(format!("file {}", ch08_overlay::testdata::ESCAPE_TARGET));
    }
    left.extend(leftover_processes());
    assert!(
        left.is_empty(),
        "left behind by the test suite's run {}:\n{}",
        common::run_prefix(),
        left.join("\n")
    );
}

/// Kills and reaps the runtime a test started, also when the test fails.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_sweep_sees_a_runtime_of_this_run() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    // Chapter 1 needs no root. The command says "ready" once it runs and
    // ends when its stdin closes.
    let id = common::unique_id();
    let mut rt = Reaped(
        Command::new(common::bin_dir().join("ch01-process"))
            .args(["--", "sh", "-c", "echo ready; exec cat"])
            .env("STEPBOX_CONTAINER_ID", &id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    std::io::BufReader::new(rt.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    let pid = rt.0.id().to_string();
    let left = leftover_processes();
    assert!(
        left.iter()
            .any(|l| l.starts_with(&format!("process {pid} ch01-process ")) && l.contains(&id)),
        "{left:?}"
    );
    drop(rt.0.stdin.take());
    assert!(rt.0.wait().unwrap().success());
    let left = leftover_processes();
    assert!(!left.iter().any(|l| l.contains(&id)), "{left:?}");
}

#[test]
fn this_runs_names_are_recognised() {
    // Runs without root: pure name matching.
    let id = common::unique_id();
    assert!(common::is_this_runs_id(&id), "{id}");
    assert_eq!(this_runs(&format!("sb{id}"), &["sb"]), Some(id.as_str()));
    assert!(names_this_runs_id(&format!(
        "/tmp/stepbox-tests/store-{id}/state/containers/{id}/merged"
    )));
    // Another run's 12 digits, a runtime's own 8, a longer name.
    let other = format!(
        "{:04x}{}",
        (u16::from_str_radix(&id[..4], 16).unwrap() ^ 1),
        &id[4..]
    );
    assert!(!common::is_this_runs_id(&other));
    assert!(!common::is_this_runs_id(&id[..8]));
    assert_eq!(this_runs(&format!("sb{id}0"), &["sb"]), None);
    assert!(!names_this_runs_id(&format!(
        "/var/lib/stepbox/containers/{other}"
    )));
}
