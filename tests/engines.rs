//! Real container engines drive chapter 12's runtime: podman (through
//! conmon), containerd (`ctr`, through its runc shim) and dockerd (through
//! its own containerd). Each test starts the engine with every dir of its
//! own under a scratch dir (storage, state, sockets), imports the default
//! rootfs as an image offline, runs its cases, and checks afterwards that
//! nothing is left: no container, process, mount, cgroup, link, firewall
//! rule or chapter 12 state record.
//!
//! One test per case rather than one per engine: an engine's setup takes
//! a second or two (podman's import; containerd's and dockerd's start), so
//! each case gets its own, and a case that needs what chapter 12 does not
//! do yet (marked `// needs ch12 ...`) fails alone, as its own test.
//!
//! Run with `cargo test --test engines -- --test-threads=1`.

mod common;
#[path = "engines/containerd.rs"]
mod containerd;
#[path = "engines/docker.rs"]
mod docker;
#[path = "engines/kit.rs"]
mod kit;
#[path = "engines/podman.rs"]
mod podman;

use common::root;
use kit::{value, IMAGE};
use podman::Podman;

/// Whether `program` runs here; else the test fails as NOT RUN.
fn have(program: &str, why: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        || common::skip(&format!(
            "no {program} ({why}; scripts/install-deps.sh installs it)"
        ))
}

fn podman_here() -> bool {
    root() && common::overlay_available() && have("podman", "podman") && have("conmon", "conmon")
}

/// The namespaces the probe's `ns` section says are the container's own.
fn own_namespaces(probe: &str) -> Vec<&str> {
    let ns = probe.split("# namespaces\n").nth(1).unwrap_or("");
    ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]
        .into_iter()
        .filter(|name| value(ns, name) == Some("own"))
        .collect()
}

/// `podman run --rm`: the probe is pid 1 in namespaces of its own, the
/// container is gone afterwards, and so is chapter 12's state of it.
#[test]
fn podman_run_rm() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let out = p.run(&[
        "--rm",
        "-e",
        "STEPBOX_HOST_NS",
        IMAGE,
        "/bin/probe",
        "identity",
        "ns",
    ]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    assert_eq!(value(&out.stdout, "pid"), Some("1"), "{}", out.transcript);
    // The five podman's config.json asks for (podman_calls shows them);
    // the cgroup namespace is the next test's.
    let own = own_namespaces(&out.stdout);
    for ns in ["ipc", "mnt", "net", "pid", "uts"] {
        assert!(own.contains(&ns), "{ns}: {}", out.transcript);
    }
    let ps = p.ps().ok();
    assert_eq!(ps.stdout, "", "podman still lists it:\n{}", ps.transcript);
    crate::snapshot!(
        "podman_run_rm",
        format!("{}{}", out.transcript, ps.transcript)
    );
    p.finish();
}

/// A namespace that config.json does not list is the runtime's (the
/// runtime spec: "the container MUST inherit the runtime namespace of
/// that type"): podman asks for no cgroup namespace on a v1 host unless
/// told `--cgroupns private`.
// needs ch12: a cgroup namespace only when config.json lists one
#[test]
fn podman_cgroup_namespace_as_asked() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let mut transcript = String::new();
    for (extra, want) in [(&[][..], "host"), (&["--cgroupns", "private"], "own")] {
        let mut args = vec!["--rm", "-e", "STEPBOX_HOST_NS"];
        args.extend_from_slice(extra);
        args.extend([IMAGE, "/bin/probe", "ns"]);
        let out = p.run(&args);
        transcript += &out.transcript;
        assert_eq!(out.code, 0, "{transcript}");
        assert_eq!(value(&out.stdout, "cgroup"), Some(want), "{transcript}");
    }
    crate::snapshot!("podman_cgroup_namespace_as_asked", transcript);
    p.finish();
}

/// The container's exit status is podman's: 0, 3; 127 for a command
/// that is not in the image. (Not a signal's 128+N: the container's sh is
/// pid 1 of its namespace, which no signal of its own kills.)
#[test]
fn podman_exit_codes() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let mut transcript = String::new();
    for (command, want) in [
        (&["sh", "-c", "exit 0"][..], 0),
        (&["sh", "-c", "exit 3"], 3),
        (&["/bin/no-such-command"], 127),
    ] {
        let mut args = vec!["--rm", IMAGE];
        args.extend_from_slice(command);
        let out = p.run(&args);
        assert_eq!(out.code, want, "{}\n{}", out.transcript, out.stderr);
        transcript += &out.transcript;
    }
    crate::snapshot!("podman_exit_codes", transcript);
    p.finish();
}

/// The script of a detached container: it says hello, waits, and on
/// SIGTERM says so and exits 0 (as pid 1 it would else ignore the signal).
const SERVICE: &str = "trap 'echo stopping; exit 0' TERM; echo hello; sleep 1000 & wait";

/// `run -d`, `ps`, `logs`, `stop`, `rm`: the container is listed while it
/// runs, its output kept, its exit status 0 after the stop, and nothing
/// of it is left once removed.
#[test]
fn podman_detached() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let name = format!("sb{}", common::unique_id());
    let run = p.run_detached(&["--name", &name, IMAGE, "sh", "-c", SERVICE]);
    assert_eq!(run.code, 0, "{}", run.transcript);
    let mut transcript = run.transcript.clone();
    let ps = p.ps().ok();
    assert_eq!(ps.stdout, format!("{name}\n"), "{}", ps.transcript);
    transcript += &ps.transcript;
    let state = p.state(&name).ok();
    assert_eq!(state.stdout, "running\n", "{}", state.transcript);
    transcript += &state.transcript;
    let mut logs = p.podman(&["logs", &name]).ok();
    kit::wait_until("hello in the logs", || {
        logs = p.podman(&["logs", &name]);
        logs.stdout.contains("hello")
    });
    transcript += &logs.transcript;
    let stop = p.podman(&["stop", &name]).ok();
    transcript += &stop.transcript;
    let state = p.state(&name).ok();
    assert_eq!(state.stdout, "exited\n", "{}", state.transcript);
    transcript += &state.transcript;
    let code = p
        .podman(&["inspect", "--format", "{{.State.ExitCode}}", &name])
        .ok();
    assert_eq!(code.stdout.trim(), "0", "{}", code.transcript);
    transcript += &code.transcript;
    let logs = p.podman(&["logs", &name]).ok();
    assert_eq!(logs.stdout, "hello\nstopping\n", "{}", logs.transcript);
    transcript += &logs.transcript;
    transcript += &p.podman(&["rm", &name]).ok().transcript;
    let ps = p.ps().ok();
    assert_eq!(ps.stdout, "", "{}", ps.transcript);
    transcript += &ps.transcript;
    crate::snapshot!("podman_detached", transcript);
    p.finish();
}

/// `--memory`, `--pids-limit` and `--ulimit` as the container sees them.
/// `--memory-swap 64m` too: podman asks for swap of twice the limit by
/// default, which chapter 7 does not do (see the next test).
#[test]
fn podman_limits() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let out = p.run(&[
        "--rm",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--pids-limit",
        "50",
        IMAGE,
        "sh",
        "-c",
        "/bin/probe cgroup; ulimit -n; ulimit -u",
    ]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    assert_eq!(
        value(&out.stdout, "memory limit"),
        Some("64 MiB"),
        "{}",
        out.transcript
    );
    assert_eq!(
        value(&out.stdout, "pids limit"),
        Some("50"),
        "{}",
        out.transcript
    );
    assert!(out.stdout.ends_with("1024\n1024\n"), "{}", out.transcript);
    crate::snapshot!("podman_limits", out.transcript);
    p.finish();
}

/// `--memory 64m` alone: podman's config asks for 128 MiB of memory and
/// swap together (linux.resources.memory.swap), as runc sets it.
// needs ch12 memory.swap
#[test]
fn podman_memory_with_default_swap() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let out = p.run(&["--rm", "--memory", "64m", IMAGE, "/bin/probe", "cgroup"]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    assert_eq!(
        value(&out.stdout, "memory limit"),
        Some("64 MiB"),
        "{}",
        out.transcript
    );
    crate::snapshot!("podman_memory_with_default_swap", out.transcript);
    p.finish();
}

/// `podman exec` in a running container: its output, its exit status.
// needs ch12 exec
#[test]
fn podman_exec() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let name = format!("sb{}", common::unique_id());
    let run = p.run_detached(&["--name", &name, IMAGE, "sh", "-c", SERVICE]);
    assert_eq!(run.code, 0, "{}", run.transcript);
    let mut transcript = run.transcript;
    let exec = p.podman(&["exec", &name, "/bin/probe", "identity"]);
    transcript += &exec.transcript;
    assert_eq!(exec.code, 0, "{transcript}");
    // Not pid 1: the container's first process is.
    assert_ne!(value(&exec.stdout, "pid"), Some("1"), "{transcript}");
    let exec = p.podman(&["exec", &name, "sh", "-c", "exit 4"]);
    transcript += &exec.transcript;
    assert_eq!(exec.code, 4, "{transcript}");
    transcript += &p.podman(&["rm", "-f", "-t", "1", &name]).ok().transcript;
    crate::snapshot!("podman_exec", transcript);
    p.finish();
}

/// `podman run -t`: the container's stdin and stdout are a terminal.
// needs ch12 console-socket
#[test]
fn podman_tty() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let out = p.run(&[
        "--rm",
        "-t",
        IMAGE,
        "sh",
        "-c",
        "tty; [ -t 1 ] && echo a terminal",
    ]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    let text = out.stdout.replace("\r\n", "\n");
    assert!(text.starts_with("/dev/pts/"), "{}", out.transcript);
    assert!(text.ends_with("a terminal\n"), "{}", out.transcript);
    crate::snapshot!("podman_tty", out.transcript.replace('\r', ""));
    p.finish();
}

/// `podman pause` and `unpause`: the state podman shows in between.
// needs ch12 pause
#[test]
fn podman_pause() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let name = format!("sb{}", common::unique_id());
    let run = p.run_detached(&["--name", &name, IMAGE, "sh", "-c", SERVICE]);
    assert_eq!(run.code, 0, "{}", run.transcript);
    let mut transcript = run.transcript;
    let pause = p.podman(&["pause", &name]);
    transcript += &pause.transcript;
    assert_eq!(pause.code, 0, "{transcript}");
    let state = p.state(&name);
    transcript += &state.transcript;
    assert_eq!(state.stdout, "paused\n", "{transcript}");
    let unpause = p.podman(&["unpause", &name]);
    transcript += &unpause.transcript;
    assert_eq!(unpause.code, 0, "{transcript}");
    let state = p.state(&name);
    transcript += &state.transcript;
    assert_eq!(state.stdout, "running\n", "{transcript}");
    transcript += &p.podman(&["stop", &name]).ok().transcript;
    transcript += &p.podman(&["rm", &name]).ok().transcript;
    crate::snapshot!("podman_pause", transcript);
    p.finish();
}

/// How podman (through conmon) calls the runtime for one `run --rm`.
#[test]
fn podman_calls() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(true);
    let out = p.run(&["--rm", IMAGE, "true"]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    let log = p.scratch.path("calls.log");
    let (commands, shown) = kit::calls(&p.redact, &log, &[]);
    assert_eq!(commands, ["create", "start", "delete"], "{shown}");
    let ns = kit::config_namespaces(&log, &kit::created_id(&log));
    crate::snapshot!("podman_calls", format!("{}{shown}{ns}", out.transcript));
    p.finish();
}
