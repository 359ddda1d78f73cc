//! Chapter 7's demos. They run on the host (cgroup v1 on the project's CI
//! machine, v2 on most readers') and, through `cgroup_v2_vm.rs`, in a VM with
//! cgroup v2: snapshots whose text differs between the two carry the version
//! in their name.

mod common;

use common::{root, rootfs, run_clean, Run, SCRATCH};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    // The same on the host and in the VM: no cgroup filesystem inside.
    crate::snapshot!("ch07_before", &before.transcript);
    crate::snapshot!(format!("ch07_after_{}", version()), &after.transcript);
}

#[test]
fn ch07_memory_hog_is_oom_killed() {
    if !root() || !cgroups_available() {
        return;
    }
    // The shell doubles a string 26 times, to 64 MiB: far over 16 MiB. It
    // does so alone, with builtins: the OOM killer kills the largest process
    // of the cgroup, not all of it, and a pipeline (head | tr) gave it a
    // second candidate whose death the shell reported ("Killed") before it
    // was killed itself, now and then.
    let hog = r#"x=x; for i in $(seq 26); do x=$x$x; done; echo survived"#;
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
    // Each `sleep` lives until the container ends (a shorter one could end
    // before the last fork on a slow machine, and free its slot): the shell,
    // PID 1, gives up at the first fork that fails, or ends after the 40th
    // if none does, and the kernel then kills the rest of the namespace.
    let bomb = "for i in $(seq 40); do sleep 60 & done";
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

    // SIGTERM to the runtime: forwarded to init, which passes it on. The
    // container says "ready" once it runs (so its cgroup exists): no sleep.
    let id = common::unique_id();
    let r = rootfs().to_string_lossy().into_owned();
    let mut child = std::process::Command::new(common::bin_dir().join("ch07-cgroups"))
        .args([
            "--rootfs",
            &r,
            "--init",
            "--memory",
            "32m",
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 60",
        ])
        .env("STEPBOX_CONTAINER_ID", &id)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready, "ready\n");
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

/// The v2 VM starts this test binary the way a systemd login starts a shell:
/// in a session scope, a cgroup other than the root that holds processes
/// (`scripts/v2vm/run.sh -s`). Every test here then runs the runtime from
/// there, which the no-internal-process rule makes the hard case.
/// `STEPBOX_EXPECT_SESSION` (set by the VM test) asks for the check.
#[test]
fn runs_from_a_session_scope_when_asked() {
    let Ok(expected) = std::env::var("STEPBOX_EXPECT_SESSION") else {
        return; // on the host: wherever the suite was started
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line in /proc/self/cgroup");
    assert_ne!(path, "/", "the tests run in the root cgroup:\n{own}");
    assert_eq!(path, expected, "{own}");
    // Another process in the same cgroup, as a login's shell and its jobs.
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cgroup.procs")).unwrap();
    let me = std::process::id().to_string();
    assert!(
        procs.lines().any(|p| p != me),
        "no other process in {path}: {procs:?}"
    );
}

/// The cgroup roots on this host, each with whether the runtime makes the
/// container's cgroup there: /sys/fs/cgroup (v2), or the mount point of every
/// v1 hierarchy, used if it has one of memory, pids, cpu or cpuacct.
fn hierarchy_roots() -> Vec<(PathBuf, bool)> {
    if version() == "v2" {
        return vec![(PathBuf::from("/sys/fs/cgroup"), true)];
    }
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - cgroup ")?;
            let options = right.split(' ').nth(1)?;
            let used = options
                .split(',')
                .any(|o| ["memory", "pids", "cpu", "cpuacct"].contains(&o));
            Some((PathBuf::from(left.split(' ').nth(4)?), used))
        })
        .collect()
}

/// A `--cgroup-parent` of the test's own, `/sbtest-<id>/nested`, removed
/// from every hierarchy when dropped (the runtime keeps parents).
struct Parent(String);

impl Parent {
    fn new() -> Parent {
        Parent(format!("sbtest-{}", common::unique_id()))
    }
    fn arg(&self) -> String {
        format!("/{}/nested", self.0)
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        for (root, _) in hierarchy_roots() {
            let _ = std::fs::remove_dir(root.join(&self.0).join("nested"));
            let _ = std::fs::remove_dir(root.join(&self.0));
        }
    }
}

/// Where the container's cgroup is while it runs, with the default parent
/// and with `--cgroup-parent`: below the parent, reached from the root of
/// each hierarchy, whichever cgroup the runtime is in; the container's
/// processes are in it, its limit is there; afterwards only the parent stays.
#[test]
fn ch07_cgroup_goes_under_the_parent() {
    if !root() || !cgroups_available() {
        return;
    }
    let custom = Parent::new();
    for parent in [None, Some(custom.arg())] {
        let id = common::unique_id();
        let r = rootfs().to_string_lossy().into_owned();
        let mut args = vec!["--rootfs".to_string(), r, "--memory".into(), "64m".into()];
        if let Some(p) = &parent {
            args.extend(["--cgroup-parent".to_string(), p.clone()]);
        }
        // The container says "ready" and waits for its stdin to close: no
        // sleep. (A failed assert drops the pipe: the container ends too.)
        args.extend(["--", "sh", "-c", "echo ready; read x; echo bye"].map(String::from));
        let mut child = Command::new(common::bin_dir().join("ch07-cgroups"))
            .args(&args)
            .env("STEPBOX_CONTAINER_ID", &id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let rel = parent
            .as_deref()
            .unwrap_or("stepbox")
            .trim_start_matches('/');
        assert_eq!(line, "ready\n", "the container did not start");
        for (root, used) in hierarchy_roots() {
            let dir = root.join(rel).join(format!("stepbox-{id}"));
            if !used {
                assert!(!dir.exists(), "{} made", dir.display());
                continue;
            }
            let procs = std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let pid = procs.lines().next().expect("a process in the cgroup");
            let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            assert!(
                theirs.contains(&format!(":/{rel}/stepbox-{id}\n")),
                "{theirs}"
            );
            let limit = ["memory.max", "memory.limit_in_bytes"]
                .iter()
                .find_map(|f| std::fs::read_to_string(dir.join(f)).ok());
            if limit.is_some() {
                assert_eq!(limit.as_deref(), Some("67108864\n"), "{}", dir.display());
            }
        }
        if parent.is_none() {
            // --gc removes the default parent only when no container is in
            // it: this one is, so the parent and its cgroup stay.
            let gc = Command::new(common::bin_dir().join("ch07-cgroups"))
                .arg("--gc")
                .output()
                .unwrap();
            assert!(
                gc.status.success(),
                "{}",
                String::from_utf8_lossy(&gc.stderr)
            );
            for (root, used) in hierarchy_roots() {
                let dir = root.join(rel).join(format!("stepbox-{id}"));
                assert!(!used || dir.is_dir(), "--gc removed {}", dir.display());
            }
        }
        drop(child.stdin.take()); // "read x" returns: the container exits
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
        let status = child.wait_with_output().unwrap();
        assert_eq!(
            status.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        assert_eq!(rest, "bye\n");
        assert_eq!(common::find_cgroups(&id), Vec::<String>::new());
        for (root, used) in hierarchy_roots() {
            assert!(
                !used || root.join(rel).is_dir(),
                "the parent {rel} was removed from {}",
                root.display()
            );
        }
    }
}

/// `-v`, the cgroup lines only: every cgroup on the way from the root is
/// made if missing, and in v2 handed the controllers, before the container's.
#[test]
fn ch07_verbose_placement() {
    if !root() || !cgroups_available() {
        return;
    }
    // A parent of the test's own: a fresh one, so the transcript is the same
    // on every run (an existing one with its controllers needs no write).
    let parent = Parent::new();
    let r = rootfs().to_string_lossy().into_owned();
    let run = ch07(&[
        "-v",
        "--cgroup-parent",
        &parent.arg(),
        "--memory",
        "64m",
        "--",
        "true",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript);
    let pid = regex::Regex::new(r"cgroup\.procs = [0-9]+").unwrap();
    let mut lines = vec![];
    for line in run.transcript.lines() {
        if line.starts_with("$ ")
            || line.to_lowercase().contains("cgroup")
            || line.starts_with("+ write")
        {
            lines.push(pid.replace(line, "cgroup.procs = [host pid]").into_owned());
        }
    }
    let text = (lines.join("\n") + "\n").replace(&parent.0, "sbtest-ID");
    let text = text.replace(&r, "ROOTFS");
    let made = |dir: &str| text.contains(&format!("+ mkdir /sys/fs/cgroup/{dir}"));
    assert!(
        made("sbtest-ID/nested (if missing; kept)")
            || made("memory/sbtest-ID/nested (if missing; kept)"),
        "{text}"
    );
    if version() == "v2" {
        for dir in ["sbtest-ID", "sbtest-ID/nested"] {
            assert!(
                text.contains(&format!(
                    "cgroup.subtree_control = +memory +pids +cpu (in /sys/fs/cgroup/{dir})"
                )),
                "{text}"
            );
        }
    }
    crate::snapshot!(format!("ch07_verbose_{}", version()), &text);
}

/// A `--cgroup-parent` that could lead out of the cgroup tree, or split an
/// error line, is refused before anything is made; on v2, so is a parent
/// holding processes (here the runtime's own cgroup, the VM's session
/// scope), with one line naming it, and nothing changed in it.
#[test]
fn ch07_bad_cgroup_parents_are_refused() {
    if !root() || !cgroups_available() {
        return;
    }
    for bad in ["../../escape", "a//b", "a/./b", "x\ny", "/", "cgroup.procs"] {
        let run = ch07(&["--cgroup-parent", bad, "--", "true"]);
        assert_eq!(run.code, 125, "{}", run.transcript);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript);
        assert!(
            run.stderr.contains("--cgroup-parent") && run.stderr.contains("is not a cgroup path"),
            "{}",
            run.transcript
        );
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/");
    if version() != "v2" || own == "/" {
        return; // v1 has no no-internal-process rule
    }
    let dir = format!("/sys/fs/cgroup{own}");
    let subtree = std::fs::read_to_string(format!("{dir}/cgroup.subtree_control")).unwrap();
    let run = ch07(&["--cgroup-parent", own, "--memory", "64m", "--", "true"]);
    assert_eq!(run.code, 125, "{}", run.transcript);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript);
    assert!(
        run.stderr.contains(&format!(
            "cannot make container cgroups below {dir:?}: it holds processes itself"
        )),
        "{}",
        run.transcript
    );
    assert!(!run.stderr.contains("cgroup.procs"), "{}", run.transcript);
    assert_eq!(
        std::fs::read_to_string(format!("{dir}/cgroup.subtree_control")).unwrap(),
        subtree
    );
}

/// The CPUs this process may run on (its affinity mask), as the runtime counts them.
fn usable_cpus() -> usize {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap())
        .count()
}

/// docker's check: `--cpus` up to the number of CPUs the runtime may run
/// on, not the machine's (a taskset narrows it).
#[test]
fn ch07_cpus_beyond_the_cpus_available() {
    if !root() || !cgroups_available() {
        return;
    }
    let n = usable_cpus();
    let more = (n + 1).to_string();
    let run = ch07(&["--cpus", &more, "--", "true"]);
    assert_eq!(run.code, 125, "{}", run.transcript);
    let (verb, s) = if n == 1 { ("is", "") } else { ("are", "s") };
    assert_eq!(
        run.stderr,
        format!(
            "ch07-cgroups: --cpus {more}: range of CPUs is from 0.01 to {n}.00, as there {verb} only {n} CPU{s} available\n"
        )
    );
    assert_eq!(ch07(&["--cpus", &n.to_string(), "--", "true"]).code, 0);

    // Pinned to one CPU (its first), the runtime may use only that one.
    let first = (0..nix::sched::CpuSet::count())
        .find(|&i| {
            nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
                .unwrap()
                .is_set(i)
                .unwrap()
        })
        .unwrap();
    let pinned = |cpus: &str| {
        let id = common::unique_id();
        let r = rootfs().to_string_lossy().into_owned();
        let mut cmd = Command::new(common::bin_dir().join("ch07-cgroups"));
        cmd.args(["--rootfs", &r, "--cpus", cpus, "--", "true"])
            .env("STEPBOX_CONTAINER_ID", &id)
            .stdin(Stdio::null());
        let mut one = nix::sched::CpuSet::new();
        one.set(first).unwrap();
        // SAFETY: between fork and exec only sched_setaffinity(2) runs, a
        // plain system call on a CpuSet built before the fork.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &one)
                    .map_err(std::io::Error::from)
            });
        }
        let out = cmd.output().unwrap();
        assert_eq!(common::find_cgroups(&id), Vec::<String>::new());
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(pinned("1"), (Some(0), String::new()));
    let (code, stderr) = pinned("1.5");
    assert_eq!(code, Some(125));
    assert!(
        stderr.ends_with("range of CPUs is from 0.01 to 1.00, as there is only 1 CPU available\n"),
        "{stderr}"
    );
}

/// Numbers too large for what the flag sets are refused, never wrapped
/// around to a smaller limit (these two became 64 MiB and 1 TiB).
#[test]
fn ch07_numbers_too_large_are_refused() {
    if !root() || !cgroups_available() {
        return;
    }
    for (flag, value) in [
        ("--memory", "324518553658426726783156020576320m"),
        ("--memory", "309485009821345068724781057t"),
        ("--pids-limit", "99999999999999999999999"),
        ("--cpu-shares", "18446744073709551617"),
        ("--cpus", "1000000000000000000000"),
    ] {
        let run = ch07(&[flag, value, "--", "true"]);
        assert_eq!(run.code, 125, "{}", run.transcript);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript);
        assert!(run.stderr.contains("is too large"), "{}", run.transcript);
    }
}

/// A state dir of the test's own under SCRATCH, removed when dropped.
struct State(PathBuf);

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The default image's layers: baked into the VM at `STEPBOX_IMAGE`, built
/// on the host.
fn image_layers() -> Vec<PathBuf> {
    match std::env::var("STEPBOX_IMAGE") {
        Ok(dir) => xtask::image::LAYERS
            .iter()
            .map(|l| Path::new(&dir).join(l))
            .collect(),
        Err(_) => xtask::image::ensure().expect("building the default image"),
    }
}

/// Chapter 8 (the image's layers on overlayfs) with chapter 7's limits,
/// run from wherever the suite runs: in the VM, a session scope.
#[test]
fn ch08_limits_apply_to_an_image_container() {
    if !root() || !cgroups_available() {
        return;
    }
    if !std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("overlay")
    {
        common::skip("the kernel has no overlay filesystem (modprobe overlay)");
        return;
    }
    let id = common::unique_id();
    let state = State(Path::new(SCRATCH).join(format!("state-{id}")));
    std::fs::create_dir_all(&state.0).unwrap();
    let state_arg = state.0.to_string_lossy().into_owned();
    let mut args = vec!["--state-dir".to_string(), state_arg];
    for layer in image_layers() {
        args.extend(["--layer".to_string(), layer.to_string_lossy().into_owned()]);
    }
    args.extend(
        [
            "--memory",
            "64m",
            "--pids-limit",
            "20",
            "--",
            "/bin/probe",
            "cgroup",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = common::run_clean_as(&id, "ch08-overlay", &args);
    assert_eq!(run.code, 0, "{}", run.transcript);
    for expected in [
        "/proc/self/cgroup: / (the root of a cgroup namespace of its own)",
        "memory limit: 64 MiB",
        "pids limit: 20",
    ] {
        assert!(
            run.stdout.contains(expected),
            "no `{expected}` in\n{}",
            run.transcript
        );
    }
}
