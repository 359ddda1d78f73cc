//! Chapter 7's demos. They run on the host (cgroup v1 on the project's CI
//! machine, v2 on most readers') and, through `cgroup_v2_vm.rs`, in a VM with
//! cgroup v2: snapshots whose text differs between the two carry the version
//! in their name.

mod common;

use common::{root, rootfs, run_clean, Run};

/// "v1" or "v2", as the runtime will detect it. `STEPBOX_EXPECT_CGROUP` (set
/// by the VM test) makes sure the version under test is the one intended.
fn version() -> &'static str {
    let v = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else {
        "v1"
    };
    if let Ok(expected) = std::env::var("STEPBOX_EXPECT_CGROUP") {
        assert_eq!(
            v, expected,
            "this machine's cgroup version is not the one the test was meant for"
        );
    }
    v
}

fn cgroups_available() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        || std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        || common::skip("no cgroup filesystem with a memory controller at /sys/fs/cgroup")
}

fn ch07(args: &[&str]) -> Run {
    let r = rootfs().to_string_lossy().into_owned();
    let mut all = vec!["--rootfs", r.as_str()];
    all.extend_from_slice(args);
    run_clean("ch07-cgroups", &all)
}

#[test]
fn ch07_limits_are_visible_inside() {
    if !root() || !cgroups_available() {
        return;
    }
    let r = rootfs().to_string_lossy().into_owned();
    let before = run_clean("ch06-uts", &["--rootfs", &r, "--", "/bin/probe", "cgroup"]);
    let after = ch07(&[
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "--",
        "/bin/probe",
        "cgroup",
    ]);
    assert_eq!(after.code, 0, "{}", after.transcript);
    for expected in [
        "/proc/self/cgroup: / (the root of a cgroup namespace of its own)",
        "memory limit: 64 MiB",
        "pids limit: 20",
        "cpu limit: 0.5 CPUs",
    ] {
        assert!(
            after.stdout.contains(expected),
            "no `{expected}` in\n{}",
            after.transcript
        );
    }
    assert!(
        !before
            .stdout
            .contains("the root of a cgroup namespace of its own"),
        "{}",
        before.transcript
    );
    // In the test VM the runtime itself sits in the root cgroup, which no
    // reader's machine does: the "before" transcript is the host's only.
    if std::env::var("STEPBOX_EXPECT_CGROUP").is_err() {
        crate::snapshot!("ch07_before", &before.transcript);
    }
    crate::snapshot!(format!("ch07_after_{}", version()), &after.transcript);
}

#[test]
fn ch07_memory_hog_is_oom_killed() {
    if !root() || !cgroups_available() {
        return;
    }
    // The shell keeps 50 MB of x's in a variable: far over 16 MiB.
    let hog = r#"x=$(head -c 50000000 /dev/zero | tr "\0" x 2>/dev/null); echo survived"#;
    let run = ch07(&["--memory", "16m", "--", "sh", "-c", hog]);
    assert_eq!(run.code, 137, "{}", run.transcript);
    assert!(!run.stdout.contains("survived"));
    assert!(
        run.stderr
            .contains("the container was killed: it hit its memory limit (16 MiB)"),
        "{}",
        run.transcript
    );
    crate::snapshot!("ch07_oom", &run.transcript);
}

#[test]
fn ch07_fork_bomb_stops_at_the_pids_limit() {
    if !root() || !cgroups_available() {
        return;
    }
    let bomb = "for i in $(seq 40); do sleep 1 & done; wait";
    let run = ch07(&["--pids-limit", "20", "--", "sh", "-c", bomb]);
    assert_ne!(run.code, 0, "{}", run.transcript);
    assert!(
        run.stderr
            .contains("can't fork: Resource temporarily unavailable"),
        "{}",
        run.transcript
    );
    // The host is unaffected: it can still start processes.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
    crate::snapshot!("ch07_pids", &run.transcript);
}

#[test]
fn ch07_busy_loop_is_throttled() {
    if !root() || !cgroups_available() {
        return;
    }
    // The kernel's own accounting, not wall time: how many 100 ms periods the
    // cgroup ran out of quota in.
    let busy = r#"timeout 2 sh -c "while :; do :; done"; cat /sys/fs/cgroup/cpu.stat /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null | grep -E "^nr_(periods|throttled)""#;
    let run = ch07(&["--cpus", "0.2", "--", "sh", "-c", busy]);
    let stat = |key: &str| -> u64 {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}:\n{}", run.transcript));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let (periods, throttled) = (stat("nr_periods"), stat("nr_throttled"));
    assert!(
        periods >= 5 && throttled * 2 >= periods,
        "not throttled: {periods} periods, {throttled} throttled"
    );
    let numbers = regex::Regex::new(r"(nr_\w+) \d+").unwrap();
    crate::snapshot!(
        "ch07_cpu",
        &numbers.replace_all(&run.transcript, "$1 N").into_owned()
    );
}

#[test]
fn ch07_cgroup_is_removed_whatever_happens() {
    if !root() || !cgroups_available() {
        return;
    }
    // run_clean asserts that no cgroup named after the container is left.
    assert_eq!(ch07(&["--memory", "32m", "--", "/nonexistent"]).code, 127);
    // (With --init: a PID 1 ignores even SIGKILL sent from inside its namespace.)
    assert_eq!(
        ch07(&[
            "--init",
            "--pids-limit",
            "5",
            "--",
            "sh",
            "-c",
            "kill -KILL $$"
        ])
        .code,
        137
    );
    assert_eq!(ch07(&["--memory", "12x", "--", "true"]).code, 125);
    assert_eq!(ch07(&["--cpus", "0", "--", "true"]).code, 125);

    // A closed stderr (`-v 2>&1 | head -1`) must not stop the cleanup half-way.
    let id = common::unique_id();
    let r = rootfs().to_string_lossy().into_owned();
    let mut child = std::process::Command::new(common::bin_dir().join("ch07-cgroups"))
        .args(["-v", "--rootfs", &r, "--memory", "32m", "--", "true"])
        .env("STEPBOX_CONTAINER_ID", &id)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    child.wait().unwrap();
    assert_eq!(
        common::find_cgroups(&id),
        Vec::<String>::new(),
        "a closed stderr left the cgroup behind"
    );

    // SIGTERM to the runtime: forwarded to init, which passes it on.
    let id = common::unique_id();
    let r = rootfs().to_string_lossy().into_owned();
    let mut child = std::process::Command::new(common::bin_dir().join("ch07-cgroups"))
        .args([
            "--rootfs", &r, "--init", "--memory", "32m", "--", "sleep", "60",
        ])
        .env("STEPBOX_CONTAINER_ID", &id)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !common::find_cgroups(&id).is_empty(),
        "the container's cgroup should exist while it runs"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert_eq!(common::find_cgroups(&id), Vec::<String>::new());
}
