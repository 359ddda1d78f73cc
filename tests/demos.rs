//! Every chapter's demo, run with the previous chapter's binary ("before") and
//! with the chapter's own ("after"). The snapshots are the transcripts the book
//! shows; the assertions are the property each chapter promises.

mod common;

use common::{root, rootfs, run, run_clean, Run};

/// The probe, seen from the host (chapters 1 to 4 have no rootfs of their own).
fn host_probe() -> String {
    rootfs().join("bin/probe").to_string_lossy().into_owned()
}

fn line<'a>(run: &'a Run, key: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no `{key}:` line in\n{}", run.transcript))
}

/// The `key: value` line of one section, e.g. `ns_line(run, "# namespaces", "pid")`.
fn section_line<'a>(run: &'a Run, section: &str, key: &str) -> &'a str {
    let body = run
        .stdout
        .split(section)
        .nth(1)
        .unwrap_or_else(|| panic!("no {section} in\n{}", run.transcript));
    body.lines()
        .take_while(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no `{key}:` in {section} of\n{}", run.transcript))
}

/// Reads the "ready" line a started container prints once its command runs
/// (the readiness handshake of the signal tests: no guess of how long the
/// runtime takes to start).
fn wait_ready(child: &mut std::process::Child) {
    use std::io::BufRead;
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the container did not start");
}

#[test]
fn ch01_a_process() {
    if !root() {
        return;
    }
    let probe = host_probe();
    // Before: the probe run straight from the shell; after: as chapter 1's child.
    let before = run(&probe, &["identity", "ns"]);
    assert_eq!(before.code, 0, "{}", before.transcript);
    let after = run_clean("ch01-process", &["--", &probe, "identity", "ns"]);
    assert_eq!(after.code, 0, "{}", after.transcript);
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
        assert_eq!(
            section_line(&after, "# namespaces", ns),
            "host",
            "chapter 1 isolates nothing"
        );
    }
    crate::snapshot!("ch01_before", &before.transcript);
    crate::snapshot!("ch01_after", &after.transcript);

    // The command's exit status passes through; a signal death becomes 128+N.
    let exits = [
        run("ch01-process", &["--", "sh", "-c", "exit 3"]),
        run("ch01-process", &["--", "sh", "-c", "kill -TERM $$"]),
        run("ch01-process", &["no-such-command"]),
        run("ch01-process", &["/etc/passwd"]),
    ];
    let codes: Vec<i32> = exits.iter().map(|r| r.code).collect();
    assert_eq!(codes, [3, 143, 127, 126]);
    crate::snapshot!("ch01_exit", &exits.map(|r| r.transcript).concat());
}

#[test]
fn ch01_forwards_signals() {
    use nix::sys::signal::{kill, Signal};
    // The runtime does not die of these: it passes them on, and exits with
    // the status the command got (128 + N).
    // The command says "ready" once it runs: by then the runtime blocks
    // these signals and waits to pass them on (a signal sent earlier, while
    // it starts, could kill the runtime itself).
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let mut child = std::process::Command::new(common::bin_dir().join("ch01-process"))
            .args(["--", "sh", "-c", "echo ready; exec sleep 60"])
            .env("STEPBOX_CONTAINER_ID", common::unique_id())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&mut child);
        kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        assert_eq!(
            child.wait().unwrap().code(),
            Some(128 + sig as i32),
            "{sig}"
        );
    }
}

#[test]
fn ch02_pid_namespace() {
    if !root() {
        return;
    }
    let probe = host_probe();
    let before = run_clean("ch01-process", &["--", &probe, "identity", "proc"]);
    let after = run_clean("ch02-pid", &["--", &probe, "identity", "proc"]);
    assert_ne!(line(&before, "pid"), "1");
    assert_eq!(
        line(&after, "pid"),
        "1",
        "the command is PID 1 in its namespace"
    );
    assert_eq!(
        line(&after, "ppid"),
        "0",
        "its parent is outside the namespace"
    );
    // The host's /proc is still mounted: it knows the process by its host pid.
    assert!(
        line(&after, "/proc/self").contains("belongs to another pid namespace"),
        "{}",
        after.transcript
    );
    crate::snapshot!("ch02_before", &before.transcript);
    crate::snapshot!("ch02_after", &after.transcript);

    // PID 1 ignores signals it has no handler for: SIGTERM to itself does nothing.
    let script = ["--", "sh", "-c", "kill -TERM $$; echo survived SIGTERM"];
    let before = run("ch01-process", &script);
    let after = run("ch02-pid", &script);
    assert_eq!(before.code, 143);
    assert_eq!(
        (after.code, after.stdout.as_str()),
        (0, "survived SIGTERM\n")
    );
    crate::snapshot!(
        "ch02_sigterm",
        &[before.transcript, after.transcript].concat()
    );
}

#[test]
fn ch02_init_forwards_signals_and_passes_status() {
    if !root() {
        return;
    }
    let with_init = run("ch02-pid", &["--init", "--", &host_probe(), "identity"]);
    assert_eq!(
        line(&with_init, "pid"),
        "2",
        "under --init the command is PID 2"
    );
    assert_eq!(
        run("ch02-pid", &["--init", "--", "sh", "-c", "exit 7"]).code,
        7
    );

    // The runtime forwards SIGTERM; init passes it on to the command, which,
    // not being PID 1, dies of it. Once the command says "ready", init
    // runs, with the signals blocked until it waits for them.
    let bin = common::bin_dir().join("ch02-pid");
    let mut child = std::process::Command::new(bin)
        .args(["--init", "--", "sh", "-c", "echo ready; exec sleep 60"])
        .env("STEPBOX_CONTAINER_ID", common::unique_id())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut child);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(start.elapsed().as_secs() < 10);
    assert_eq!(status.code(), Some(143));
}

#[test]
fn ch02_init_reaps_orphans() {
    if !root() {
        return;
    }
    // An orphan is re-parented to PID 1, which must wait(2) for it. Here PID 1
    // is `cat`, which never does: the orphan stays a zombie (Z). Under
    // --init, init reaps it. (Chapter 5's binary, for a /proc of the container's own.)
    // No guess of how long anything takes: the background job opens the
    // FIFO only once PID 1 has it open (so the orphan is made after the
    // shell's exec: a shell would reap it); `$(…)` returns once the orphan
    // has exited (it holds the pipe); PID 1 ends when the job has written
    // what `ps` saw. That init has reaped the orphan shows only as its
    // absence, so the job gives PID 1 up to a second (100 checks) before
    // `ps`; without --init, the second passes with the zombie still there.
    let r = rootfs().to_string_lossy().into_owned();
    let script = "mkfifo /dev/shm/out; (exec >/dev/shm/out; o=$(sleep 0.1 & echo $!); \
                  for i in $(seq 100); do [ -e /proc/$o ] || break; sleep 0.01; done; \
                  ps -o stat,comm) & exec cat /dev/shm/out";
    let without = run_clean("ch05-mnt", &["--rootfs", &r, "--", "sh", "-c", script]);
    let with = run_clean(
        "ch05-mnt",
        &["--init", "--rootfs", &r, "--", "sh", "-c", script],
    );
    assert!(
        without.stdout.contains("Z    sleep"),
        "{}",
        without.transcript
    );
    assert!(
        !with.stdout.contains("Z ") && !with.stdout.contains("sleep"),
        "{}",
        with.transcript
    );
    crate::snapshot!(
        "ch02_zombie",
        &[without.transcript, with.transcript].concat()
    );
}

#[test]
fn ch03_net_namespace() {
    if !root() {
        return;
    }
    let probe = host_probe();
    let before = run_clean("ch02-pid", &["--", &probe, "ns", "net"]);
    let after = run_clean("ch03-net", &["--", &probe, "ns", "net"]);
    assert_eq!(section_line(&before, "# namespaces", "net"), "host");
    assert_eq!(section_line(&after, "# namespaces", "net"), "own");
    // Only lo, and up.
    let net = after.stdout.split("# network").nth(1).unwrap();
    assert_eq!(
        net.trim(),
        "interfaces: 1\n  lo up 127.0.0.1/8",
        "{}",
        after.transcript
    );
    crate::snapshot!("ch03_before", &before.transcript);
    crate::snapshot!("ch03_after", &after.transcript);
}

#[test]
fn ch03_veth_reaches_the_host_and_is_removed() {
    if !root() {
        return;
    }
    // In a network namespace of the test's own, standing in for the host:
    // the test never adds an address or a route to the host's networks.
    let Some(ns) = common::NetNs::new() else {
        return;
    };
    let probe = host_probe();
    // Traffic only ever goes between the two addresses this veth pair creates.
    let busybox = rootfs().join("bin/busybox").to_string_lossy().into_owned();
    let cmd = format!(
        "{probe} net && {busybox} ping -c 1 -W 2 10.200.250.1 >/dev/null && echo host reachable"
    );
    let run = ns.run_bin(
        "ch03-net",
        &["--veth", "10.200.250.1/30", "--", "sh", "-c", &cmd],
    );
    assert_eq!(run.code, 0, "{}", run.transcript);
    assert!(
        run.stdout.contains("eth0 up 10.200.250.2/30"),
        "{}",
        run.transcript
    );
    assert!(
        run.stdout.ends_with("host reachable\n"),
        "{}",
        run.transcript
    );
    assert!(!ns.run(&["-o", "link"]).contains("sb"), "a veth is left");
    crate::snapshot!("ch03_veth", &run.transcript);
}

/// A System V message queue key only this test uses.
const HOST_KEY: libc::key_t = 0x5b0c_4a11;
const CONTAINER_KEY: &str = "0x5b0c4a12";

fn remove_queue(key: libc::key_t) {
    // SAFETY: msgget(2) takes integers only.
    let id = unsafe { libc::msgget(key, 0) };
    if id >= 0 {
        // SAFETY: IPC_RMID reads no buffer: a null one is allowed.
        unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// The host's queue, removed when dropped: also when the test stops half
/// way (a failed run, a Ctrl-C in a live demo).
struct HostQueue;

impl Drop for HostQueue {
    fn drop(&mut self) {
        remove_queue(HOST_KEY);
    }
}

#[test]
fn ch04_ipc_namespace() {
    if !root() {
        return;
    }
    let probe = host_probe();
    remove_queue(HOST_KEY);
    // SAFETY: msgget(2) takes integers only.
    let id = unsafe { libc::msgget(HOST_KEY, libc::IPC_CREAT | 0o600) };
    assert!(id >= 0, "msgget on the host");
    let _queue = HostQueue;
    let before = run_clean("ch03-net", &["--", &probe, "ns", "ipc"]);
    let after = run_clean("ch04-ipc", &["--", &probe, "ns", "ipc"]);
    // Vice versa: a queue made in the container never reaches the host.
    let made_inside = run("ch04-ipc", &["--", &probe, "ipc-create", CONTAINER_KEY]);
    // SAFETY: msgget(2) takes integers only.
    let host_sees_inner = unsafe { libc::msgget(0x5b0c_4a12, 0) } >= 0;
    remove_queue(HOST_KEY);
    assert!(
        before.stdout.contains("key 0x5b0c4a11"),
        "{}",
        before.transcript
    );
    assert!(
        !after.stdout.contains("key 0x5b0c4a11"),
        "{}",
        after.transcript
    );
    assert_eq!(section_line(&after, "# ipc", "message queues"), "0");
    assert_eq!(made_inside.code, 0, "{}", made_inside.transcript);
    assert!(
        !host_sees_inner,
        "a queue made in the container is visible on the host"
    );
    crate::snapshot!("ch04_before", &before.transcript);
    crate::snapshot!("ch04_after", &after.transcript);
}

#[test]
fn ch05_mnt_namespace() {
    if !root() {
        return;
    }
    let r = rootfs().to_string_lossy().into_owned();
    let before = run_clean("ch04-ipc", &["--", &host_probe(), "proc", "fs"]);
    let after = run_clean(
        "ch05-mnt",
        &["--rootfs", &r, "--", "/bin/probe", "proc", "fs"],
    );
    assert_eq!(section_line(&before, "# filesystem", "root"), "host");
    assert_eq!(section_line(&after, "# filesystem", "root"), "own");
    // Its own /proc: only the container's processes, and ps agrees with getpid.
    assert_eq!(section_line(&after, "# processes", "visible"), "1");
    assert!(
        line(&after, "/proc/self").starts_with("1 "),
        "{}",
        after.transcript
    );
    for mount in [
        "  / ",
        "  /proc proc",
        "  /sys sysfs ro",
        "  /dev tmpfs",
        "  /dev/pts devpts",
    ] {
        assert!(
            after.stdout.contains(mount),
            "no `{mount}` in\n{}",
            after.transcript
        );
    }
    crate::snapshot!("ch05_before", &before.transcript);
    crate::snapshot!("ch05_after", &after.transcript);

    // -v: every kernel step, in order: private propagation before any mount,
    // the new /proc in the rootfs, then pivot_root and the old root gone.
    let steps = run("ch05-mnt", &["-v", "--rootfs", &r, "--", "true"]);
    let order: Vec<usize> = [
        "MS_REC|MS_PRIVATE",
        "mount(2) proc",
        "pivot_root(2)",
        "umount2(2)",
    ]
    .iter()
    .map(|step| {
        steps
            .stderr
            .find(step)
            .unwrap_or_else(|| panic!("no {step} in\n{}", steps.transcript))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "steps out of order:\n{}",
        steps.transcript
    );
    crate::snapshot!("ch05_verbose", &steps.transcript);

    // The standard devices are character devices, not files.
    let dev = run(
        "ch05-mnt",
        &[
            "--rootfs",
            &r,
            "--",
            "sh",
            "-c",
            r#"cd /dev && stat -c "%A %t,%T %N" * | sort -k3"#,
        ],
    );
    assert!(
        dev.stdout.contains("crw-rw-rw- 1,3 null"),
        "{}",
        dev.transcript
    );
    crate::snapshot!("ch05_dev", &dev.transcript);
}

#[test]
fn ch05_chroot_can_be_escaped_pivot_root_cannot() {
    if !root() {
        return;
    }
    // A host file that the default rootfs does not have.
    let marker = "/etc/os-release";
    if !std::path::Path::new(marker).exists() || rootfs().join("etc/os-release").exists() {
        common::skip("the host has no /etc/os-release, or the rootfs has one");
        return;
    }
    let r = rootfs().to_string_lossy().into_owned();
    let chroot = run_clean(
        "ch04-ipc",
        &["--", "chroot", &r, "/bin/chroot-escape", marker],
    );
    let pivot = run_clean(
        "ch05-mnt",
        &["--rootfs", &r, "--", "/bin/chroot-escape", marker],
    );
    assert_eq!(
        chroot.code, 0,
        "the chroot escape should work:\n{}",
        chroot.transcript
    );
    assert!(
        chroot.stdout.starts_with("escaped"),
        "{}",
        chroot.transcript
    );
    assert_eq!(
        pivot.code, 1,
        "pivot_root should contain it:\n{}",
        pivot.transcript
    );
    assert!(
        pivot.stdout.starts_with("contained"),
        "{}",
        pivot.transcript
    );
    crate::snapshot!("ch05_escape_chroot", &chroot.transcript);
    crate::snapshot!("ch05_escape_pivot", &pivot.transcript);
}

#[test]
fn ch06_uts_namespace() {
    if !root() {
        return;
    }
    let r = rootfs().to_string_lossy().into_owned();
    let host = common::hostname();
    let before = run_clean(
        "ch05-mnt",
        &["--rootfs", &r, "--", "/bin/probe", "identity"],
    );
    let after = run_clean(
        "ch06-uts",
        &[
            "--rootfs",
            &r,
            "--hostname",
            "box",
            "--",
            "/bin/probe",
            "identity",
        ],
    );
    assert_eq!(line(&before, "hostname"), host);
    assert_eq!(line(&after, "hostname"), "box");
    // The container may change its hostname; the host's stays.
    let renamed = run_clean(
        "ch06-uts",
        &[
            "--rootfs",
            &r,
            "--",
            "sh",
            "-c",
            "hostname renamed && hostname",
        ],
    );
    assert_eq!(renamed.stdout, "renamed\n");
    assert_eq!(common::hostname(), host);
    crate::snapshot!("ch06_before", &before.transcript);
    crate::snapshot!("ch06_after", &after.transcript);
}

/// Children that are killed and reaped if the test ends early.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What one of several parallel containers did: the lines it printed up to
/// `ready`, or, if it ended instead, its status and stderr.
#[derive(Debug)]
enum Started {
    Ready(String),
    Ended(i32, String),
}

/// Starts `n` containers with `args` in `ns` at once; each runs `PROBE net;
/// echo ready`, then waits for one byte on a FIFO. Returns what each did
/// once every one is either ready (so all the ready ones run at the same
/// time) or has ended, and then lets them finish.
fn start_together(ns: &common::NetNs, n: usize, veth: &[&str]) -> Vec<Started> {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Opened read-write, so that neither this open nor the containers'
    // wait for the other side, and no container sees end-of-file early.
    let mut go = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let busybox = rootfs().join("bin/busybox").to_string_lossy().into_owned();
    let script = format!(
        "{} net && echo ready && {busybox} dd if={} bs=1 count=1 2>/dev/null",
        host_probe(),
        fifo.display()
    );
    let mut args = veth.to_vec();
    args.extend(["--", "sh", "-c", &script]);
    let mut children = Children((0..n).map(|_| ns.spawn("ch03-net", &args)).collect());
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, child) in children.0.iter_mut().enumerate() {
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let line = line.unwrap_or_default();
                if line == "ready" {
                    let _ = tx.send((i, Some(seen.clone())));
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            let _ = tx.send((i, None)); // end of file: it exited
        });
    }
    let mut started: Vec<Option<Started>> = (0..n).map(|_| None).collect();
    while started.iter().any(Option::is_none) {
        let (i, event) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the containers neither got ready nor ended in 60 s");
        if started[i].is_some() {
            continue;
        }
        started[i] = Some(match event {
            Some(lines) => Started::Ready(lines),
            None => {
                let child = &mut children.0[i];
                let code = child.wait().unwrap().code().unwrap_or(-1);
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
                    .unwrap();
                Started::Ended(code, stderr)
            }
        });
    }
    // Every ready one is waiting: let them all go, and wait for them.
    go.write_all(&vec![b'g'; n]).unwrap();
    for (i, s) in started.iter().enumerate() {
        if let Some(Started::Ready(lines)) = s {
            let status = children.0[i].wait().unwrap();
            assert!(status.success(), "{lines}");
        }
    }
    started.into_iter().map(Option::unwrap).collect()
}

/// The eth0 line `probe net` printed: `  eth0 up 10.200.0.2/30`.
fn eth0(lines: &str) -> String {
    lines
        .lines()
        .find_map(|l| l.trim().strip_prefix("eth0 up "))
        .unwrap_or_else(|| panic!("no eth0 in\n{lines}"))
        .to_owned()
}

#[test]
fn ch03_veth_refuses_a_subnet_the_host_uses() {
    if !root() {
        return;
    }
    let Some(ns) = common::NetNs::new() else {
        return;
    };
    // An on-link /24 (and the kernel's local and broadcast routes of its
    // address), a route without an address, and one in another table.
    ns.run(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan1",
    ]);
    ns.run(&["addr", "add", "10.9.9.1/24", "dev", "lan0"]);
    ns.run(&["addr", "add", "10.6.6.6/32", "dev", "lan1"]);
    ns.run(&["link", "set", "lan0", "up"]);
    ns.run(&["link", "set", "lan1", "up"]);
    ns.run(&["route", "add", "blackhole", "10.8.0.0/16"]);
    ns.run(&["route", "add", "blackhole", "10.7.0.0/16", "table", "100"]);
    let cases = [
        // A /30 carved out of the /24: no address lies inside it.
        ("10.9.9.5/30", "the host's address 10.9.9.1/24 on lan0"),
        // A subnet around an address.
        ("10.6.6.5/30", "the host's address 10.6.6.6/32 on lan1"),
        (
            "10.8.3.1/30",
            "the host's route to 10.8.0.0/16 in table main",
        ),
        (
            "10.7.200.1/24",
            "the host's route to 10.7.0.0/16 in table 100",
        ),
        // A wider subnet, around the /24.
        ("10.9.0.1/16", "the host's address 10.9.9.1/24 on lan0"),
    ];
    let mut transcript = String::new();
    for (cidr, what) in cases {
        let run = ns.run_bin("ch03-net", &["--veth", cidr, "--", "true"]);
        assert_eq!(run.code, 125, "{}", run.transcript);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript);
        assert!(
            run.stderr
                .starts_with(&format!("ch03-net: --veth {cidr}: subnet "))
                && run.stderr.contains(&format!("overlaps {what}; ")),
            "{}",
            run.transcript
        );
        transcript.push_str(&run.transcript);
    }
    // Next to them, a free one works.
    let ok = ns.run_bin("ch03-net", &["--veth", "10.9.10.1/30", "--", "true"]);
    assert_eq!(ok.code, 0, "{}", ok.transcript);
    assert!(!ns.run(&["-o", "link"]).contains("sb"), "a veth is left");
    crate::snapshot!("ch03_veth_in_use", &transcript);
}

#[test]
fn ch03_veth_parallel_starts_never_share_a_subnet() {
    if !root() {
        return;
    }
    let Some(ns) = common::NetNs::new() else {
        return;
    };
    // Three at once with the same subnet: one gets it, the others are told
    // it is in use (by the first one's veth).
    let same = start_together(&ns, 3, &["--veth", "10.9.7.1/30"]);
    let ready: Vec<&String> = same
        .iter()
        .filter_map(|s| match s {
            Started::Ready(lines) => Some(lines),
            _ => None,
        })
        .collect();
    assert_eq!(ready.len(), 1, "{same:?}");
    assert_eq!(eth0(ready[0]), "10.9.7.2/30");
    for s in &same {
        if let Started::Ended(code, stderr) = s {
            assert_eq!(*code, 125, "{same:?}");
            assert_eq!(stderr.lines().count(), 1, "{same:?}");
            assert!(
                stderr.contains("subnet 10.9.7.0/30 overlaps the host's address 10.9.7.1/30 on sb"),
                "{same:?}"
            );
        }
    }

    // Three bare --veth at once: three different subnets, the first free
    // ones, around a /30 that a route takes.
    ns.run(&["route", "add", "blackhole", "10.200.0.0/30"]);
    let bare = start_together(&ns, 3, &["--veth"]);
    let mut got: Vec<String> = bare
        .iter()
        .map(|s| match s {
            Started::Ready(lines) => eth0(lines),
            Started::Ended(..) => panic!("a bare --veth failed: {bare:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(got, ["10.200.0.10/30", "10.200.0.14/30", "10.200.0.6/30"]);
    assert!(!ns.run(&["-o", "link"]).contains("sb"), "a veth is left");
}
