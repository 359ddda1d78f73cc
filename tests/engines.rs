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
//! each case gets its own engine, torn down by its own guard whatever
//! happens, and a case that fails, fails alone. The tests run one at
//! a time on the host whatever `--test-threads` says (`kit::serial`): the
//! host checks look at host-wide things.
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
use containerd::Containerd;
use docker::Docker;
use kit::{value, IMAGE};
use podman::Podman;

/// Whether `program` is in PATH; else the test fails as NOT RUN.
fn have(program: &str, package: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    }) || common::skip(&format!(
        "no {program} (Debian's {package}: scripts/install-deps.sh installs it)"
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

/// [`SERVICE`] without its output: `ctr run -d` hands the container's
/// stdout to the shim and exits, so what it printed of it would be a race.
const QUIET_SERVICE: &str = "trap 'exit 0' TERM; sleep 1000 & wait";

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

/// `--device`: podman writes the node into `linux.devices` (its mode with
/// the type bits) and an allow rule for it; the container can open it.
#[test]
fn podman_device() {
    if !podman_here() {
        return;
    }
    if !std::path::Path::new("/dev/fuse").exists() {
        common::skip("no /dev/fuse on this host to give the container");
        return;
    }
    let mut p = Podman::new(false);
    let out = p.run(&[
        "--rm",
        "--device",
        "/dev/fuse",
        IMAGE,
        "sh",
        "-c",
        "stat -c '%F %t:%T' /dev/fuse; (exec 3<>/dev/fuse) && echo opened",
    ]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    assert!(
        out.stdout
            .ends_with("character special file a:e5\nopened\n"),
        "{}",
        out.transcript
    );
    crate::snapshot!("podman_device", out.transcript);
    p.finish();
}

/// `--memory 64m` alone: podman's config asks for 128 MiB of memory and
/// swap together (linux.resources.memory.swap), as runc sets it.
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

/// `--network container:NAME`, `--ipc container:NAME`: podman's config
/// gives the other container's namespaces by path (/proc/PID/ns/...),
/// for the runtime to join with setns(2).
#[test]
fn podman_join_namespaces() {
    if !podman_here() {
        return;
    }
    let mut p = Podman::new(false);
    let name = format!("sb{}", common::unique_id());
    let run = p.run_detached(&["--name", &name, IMAGE, "sh", "-c", SERVICE]);
    assert_eq!(run.code, 0, "{}", run.transcript);
    let mut transcript = run.transcript;
    let pid = p
        .podman(&["inspect", "--format", "{{.State.Pid}}", &name])
        .ok();
    let pid = pid.stdout.trim().to_owned();
    let theirs: Vec<String> = ["net", "ipc"]
        .iter()
        .map(|ns| {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            link.to_string_lossy().into_owned()
        })
        .collect();
    // Not RUN's `--network none`: podman takes one network mode.
    let net = format!("container:{name}");
    let join = p.podman(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--network",
        &net,
        "--ipc",
        &net,
        IMAGE,
        "sh",
        "-c",
        // busybox's readlink takes one file.
        "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc",
    ]);
    let inode = regex::Regex::new(r"(net|ipc):\[[0-9]+\]").unwrap();
    transcript += &inode.replace_all(&join.transcript, "$1:[N]");
    transcript += &p.podman(&["rm", "-f", "-t", "1", &name]).ok().transcript;
    assert_eq!(join.code, 0, "{transcript}");
    assert_eq!(
        join.stdout,
        format!("{}\n{}\n", theirs[0], theirs[1]),
        "{transcript}"
    );
    crate::snapshot!("podman_join_namespaces", transcript);
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

fn containerd_here() -> bool {
    root()
        && common::overlay_available()
        && have("containerd", "containerd")
        && have("ctr", "containerd")
        && have("containerd-shim-runc-v2", "containerd")
}

/// `--env STEPBOX_HOST_NS=...` for ctr (which has no `-e NAME` that
/// takes the value from its own environment), and the transcript with the
/// host's inode numbers shown as the variable.
fn ctr_env() -> (String, impl Fn(&str) -> String) {
    let env = format!("STEPBOX_HOST_NS={}", kit::host_ns());
    let quoted = format!("'{env}'");
    (env, move |t: &str| {
        t.replace(&quoted, "\"STEPBOX_HOST_NS=$STEPBOX_HOST_NS\"")
    })
}

/// `ctr run --rm`: pid 1 in namespaces of its own, exit statuses passed
/// through, and containerd knows no container afterwards.
#[test]
fn containerd_run_rm() {
    if !containerd_here() {
        return;
    }
    let c = Containerd::new(false);
    let (env, shown) = ctr_env();
    let id = format!("sb{}", common::unique_id());
    let out = c.run(&[
        "--rm",
        "--env",
        &env,
        containerd::IMAGE,
        &id,
        "/bin/probe",
        "identity",
        "ns",
    ]);
    let mut transcript = shown(&out.transcript);
    assert_eq!(out.code, 0, "{transcript}");
    assert_eq!(value(&out.stdout, "pid"), Some("1"), "{transcript}");
    let own = own_namespaces(&out.stdout);
    for ns in ["ipc", "mnt", "net", "pid", "uts"] {
        assert!(own.contains(&ns), "{ns}: {transcript}");
    }
    for (script, want) in [("exit 0", 0), ("exit 3", 3)] {
        let id = format!("sb{}", common::unique_id());
        let out = c.run(&["--rm", containerd::IMAGE, &id, "sh", "-c", script]);
        transcript += &out.transcript;
        assert_eq!(out.code, want, "{transcript}");
    }
    let ls = c.ctr(&["containers", "ls", "-q"]).ok();
    assert_eq!(ls.stdout, "", "{}", ls.transcript);
    transcript += &ls.transcript;
    crate::snapshot!("containerd_run_rm", transcript);
    c.finish();
}

/// The status `ctr task ls` gives task `id` (RUNNING, STOPPED, ...).
fn task_status(c: &Containerd, id: &str) -> String {
    let ls = c.tasks_ls();
    ls.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_owned()
}

/// `ctr run -d`, `ctr task ls`, `ctr task kill` (SIGTERM, which the
/// container's script answers), `ctr task delete` (its exit status),
/// `ctr container delete`: nothing of the container is left after.
#[test]
fn containerd_detached() {
    if !containerd_here() {
        return;
    }
    let c = Containerd::new(false);
    let id = format!("sb{}", common::unique_id());
    let run = c.run(&["-d", containerd::IMAGE, &id, "sh", "-c", QUIET_SERVICE]);
    let mut transcript = run.transcript.clone();
    assert_eq!(run.code, 0, "{transcript}");
    assert_eq!(task_status(&c, &id), "RUNNING");
    transcript += &c.tasks_ls().transcript;
    transcript += &c.ctr(&["tasks", "kill", &id]).ok().transcript;
    kit::wait_until("the task's end", || task_status(&c, &id) == "STOPPED");
    transcript += &c.tasks_ls().transcript;
    let delete = c.ctr(&["tasks", "delete", &id]).ok();
    transcript += &delete.transcript;
    transcript += &c.ctr(&["containers", "delete", &id]).ok().transcript;
    let ls = c.ctr(&["containers", "ls", "-q"]).ok();
    assert_eq!(ls.stdout, "", "{}", ls.transcript);
    transcript += &ls.transcript;
    crate::snapshot!("containerd_detached", transcript);
    c.finish();
}

/// `ctr task exec` in a running container: its output and exit status.
#[test]
fn containerd_exec() {
    if !containerd_here() {
        return;
    }
    let c = Containerd::new(false);
    let id = format!("sb{}", common::unique_id());
    let run = c.run(&["-d", containerd::IMAGE, &id, "sh", "-c", QUIET_SERVICE]);
    let mut transcript = run.transcript.clone();
    assert_eq!(run.code, 0, "{transcript}");
    let fifo = c.fifo_dir();
    let exec = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "--fifo-dir",
        &fifo,
        &id,
        "/bin/probe",
        "identity",
    ]);
    transcript += &exec.transcript;
    let exec_code = exec.code;
    let exec_pid = value(&exec.stdout, "pid").map(str::to_owned);
    let exit4 = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e2",
        "--fifo-dir",
        &fifo,
        &id,
        "sh",
        "-c",
        "exit 4",
    ]);
    transcript += &exit4.transcript;
    // Stopped and removed whatever the execs did, then the asserts.
    c.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]).ok();
    kit::wait_until("the task's end", || task_status(&c, &id) == "STOPPED");
    c.ctr(&["tasks", "delete", &id]);
    c.ctr(&["containers", "delete", &id]).ok();
    assert_eq!(exec_code, 0, "{transcript}");
    assert_ne!(exec_pid.as_deref(), Some("1"), "{transcript}");
    assert_eq!(exit4.code, 4, "{transcript}");
    crate::snapshot!("containerd_exec", transcript);
    c.finish();
}

/// `ctr run -t`: the container's stdio is a terminal (ctr's own stdio
/// must be one too: the test gives it a pseudo-terminal).
#[test]
fn containerd_tty() {
    if !containerd_here() {
        return;
    }
    let c = Containerd::new(false);
    let id = format!("sb{}", common::unique_id());
    let out = c.run_on_pty(&[
        "--rm",
        "-t",
        containerd::IMAGE,
        &id,
        "sh",
        "-c",
        "tty; [ -t 1 ] && echo a terminal",
    ]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    assert!(out.stdout.starts_with("/dev/pts/"), "{}", out.transcript);
    // ctr leaves the terminal's last line end as it found it.
    assert!(
        out.stdout.trim_end().ends_with("a terminal"),
        "{}",
        out.transcript
    );
    crate::snapshot!("containerd_tty", out.transcript);
    c.finish();
}

/// How containerd's runc shim calls the runtime for one `ctr run --rm`.
#[test]
fn containerd_calls() {
    if !containerd_here() {
        return;
    }
    let c = Containerd::new(true);
    let id = format!("sb{}", common::unique_id());
    let out = c.run(&["--rm", containerd::IMAGE, &id, "true"]);
    assert_eq!(out.code, 0, "{}", out.transcript);
    let log = c.log.clone().unwrap();
    let (commands, shown) = kit::calls(&c.redact, &log, &[]);
    assert_eq!(commands, ["create", "start", "delete", "delete"], "{shown}");
    let ns = kit::config_namespaces(&log, &id);
    crate::snapshot!("containerd_calls", format!("{}{shown}{ns}", out.transcript));
    c.finish();
}

fn docker_here() -> bool {
    root()
        && common::overlay_available()
        && have("dockerd", "docker.io")
        && have("containerd-shim-runc-v2", "containerd")
}

/// `docker run --rm`: pid 1 in namespaces of its own, exit statuses
/// passed through, and dockerd lists no container afterwards.
#[test]
fn docker_run_rm() {
    if !docker_here() {
        return;
    }
    let d = Docker::new(false);
    let ns = kit::host_ns();
    let env = [("STEPBOX_HOST_NS", ns.as_str())];
    let out = d.run_env(
        &[
            "--rm",
            "-e",
            "STEPBOX_HOST_NS",
            IMAGE,
            "/bin/probe",
            "identity",
            "ns",
        ],
        &env,
    );
    let mut transcript = out.transcript.clone();
    assert_eq!(out.code, 0, "{transcript}");
    assert_eq!(value(&out.stdout, "pid"), Some("1"), "{transcript}");
    let own = own_namespaces(&out.stdout);
    for ns in ["ipc", "mnt", "net", "pid", "uts"] {
        assert!(own.contains(&ns), "{ns}: {transcript}");
    }
    for (script, want) in [("exit 0", 0), ("exit 3", 3)] {
        let out = d.run(&["--rm", IMAGE, "sh", "-c", script]);
        transcript += &out.transcript;
        assert_eq!(out.code, want, "{transcript}");
    }
    let ps = d.docker(&["ps", "-a", "-q"]).ok();
    assert_eq!(ps.stdout, "", "{}", ps.transcript);
    transcript += &ps.transcript;
    crate::snapshot!("docker_run_rm", transcript);
    d.finish();
}

/// `docker run -d`, `ps`, `logs`, `stop`, `rm`, as podman's.
#[test]
fn docker_detached() {
    if !docker_here() {
        return;
    }
    let d = Docker::new(false);
    let name = format!("sb{}", common::unique_id());
    let run = d.run(&["-d", "--name", &name, IMAGE, "sh", "-c", SERVICE]);
    let mut transcript = run.transcript.clone();
    assert_eq!(run.code, 0, "{transcript}");
    let ps = d.docker(&["ps", "--format", "{{.Names}}"]).ok();
    assert_eq!(ps.stdout, format!("{name}\n"), "{}", ps.transcript);
    transcript += &ps.transcript;
    let mut logs = d.docker(&["logs", &name]).ok();
    kit::wait_until("hello in the logs", || {
        logs = d.docker(&["logs", &name]);
        logs.stdout.contains("hello")
    });
    transcript += &logs.transcript;
    transcript += &d.docker(&["stop", &name]).ok().transcript;
    let state = d
        .docker(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            &name,
        ])
        .ok();
    assert_eq!(state.stdout, "exited 0\n", "{}", state.transcript);
    transcript += &state.transcript;
    let logs = d.docker(&["logs", &name]).ok();
    assert_eq!(logs.stdout, "hello\nstopping\n", "{}", logs.transcript);
    transcript += &logs.transcript;
    transcript += &d.docker(&["rm", &name]).ok().transcript;
    let ps = d.docker(&["ps", "-a", "-q"]).ok();
    assert_eq!(ps.stdout, "", "{}", ps.transcript);
    transcript += &ps.transcript;
    crate::snapshot!("docker_detached", transcript);
    d.finish();
}

/// `docker exec` in a running container: its output and exit status.
#[test]
fn docker_exec() {
    if !docker_here() {
        return;
    }
    let d = Docker::new(false);
    let name = format!("sb{}", common::unique_id());
    let run = d.run(&["-d", "--name", &name, IMAGE, "sh", "-c", SERVICE]);
    let mut transcript = run.transcript.clone();
    assert_eq!(run.code, 0, "{transcript}");
    let exec = d.docker(&["exec", &name, "/bin/probe", "identity"]);
    transcript += &exec.transcript;
    assert_eq!(exec.code, 0, "{transcript}");
    assert_ne!(value(&exec.stdout, "pid"), Some("1"), "{transcript}");
    let exec = d.docker(&["exec", &name, "sh", "-c", "exit 4"]);
    transcript += &exec.transcript;
    assert_eq!(exec.code, 4, "{transcript}");
    transcript += &d.docker(&["rm", "-f", &name]).ok().transcript;
    crate::snapshot!("docker_exec", transcript);
    d.finish();
}

/// How dockerd (through its containerd's runc shim) calls the runtime
/// for one `docker run --rm`.
#[test]
fn docker_calls() {
    if !docker_here() {
        return;
    }
    let d = Docker::new(true);
    let out = d.run(&["--rm", IMAGE, "true"]);
    let log = d.log.clone().unwrap();
    let (commands, shown) = kit::calls(&d.redact, &log, &[]);
    let ns = match std::fs::read_to_string(&log) {
        Ok(_) => kit::config_namespaces(&log, &kit::created_id(&log)),
        Err(_) => String::new(),
    };
    let transcript = format!("{}{shown}{ns}", out.transcript);
    assert_eq!(out.code, 0, "{transcript}");
    assert_eq!(
        commands,
        ["create", "start", "delete", "delete"],
        "{transcript}"
    );
    crate::snapshot!("docker_calls", transcript);
    d.finish();
}
