//! Chapter 11's demos, started by root with a range map: uid 0 in the
//! container is an unprivileged uid on the host. Each is asserted with
//! chapter 10 ("before": root is root) and chapter 11 ("after").

mod common;

use common::{bin_dir, root, Runtime, Sandbox};
use std::io::Write;
use std::process::{Command, Stdio};

const CH10: &str = "ch10-seccomp";
const CH11: &str = "ch11-userns";
/// The demos' map: container ids 0-65535 are host ids 100000-165535.
const MAP: [&str; 2] = ["--uidmap", "0:100000:65536"];

/// `BIN --state-dir STATE --layer ... EXTRA -- sh -c SCRIPT`, started with
/// its stdin and stdout piped, for a demo that talks to the container.
fn start(sb: &Sandbox, bin: &str, extra: &[&str], script: &str) -> Runtime {
    let mut cmd = Command::new(bin_dir().join(bin));
    cmd.arg("--state-dir")
        .arg(sb.state_dir())
        .args(common::image_args())
        .args(extra)
        .args(["--", "sh", "-c", script])
        .env("STEPBOX_RUN_DIR", sb.run_dir())
        .env("STEPBOX_CONTAINER_ID", sb.id())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Runtime::start(cmd)
}

/// The container's first process: the runtime's only child.
fn container_pid(rt: &Runtime) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", rt.pid()))
        .expect("the runtime's children");
    children
        .split_whitespace()
        .next()
        .expect("a container process")
        .parse()
        .unwrap()
}

/// The `Uid:` line of /proc/PID/status, as the host sees it.
fn host_uids(pid: i32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes a line to the container, then waits for the runtime's exit.
fn finish(mut rt: Runtime, line: &str) -> (i32, String, String) {
    let mut stdin = rt.child.stdin.take().unwrap();
    writeln!(stdin, "{line}").unwrap();
    drop(stdin);
    let mut out = String::new();
    std::io::Read::read_to_string(rt.stdout.as_mut().unwrap(), &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(rt.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = rt.child.wait().unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// uid 0 inside, and what the host's /proc says of the same process.
#[test]
fn ch11_root_in_the_container_is_an_unprivileged_uid_on_the_host() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch11");
    let script = "id -u; echo ready; read x";
    let mut transcript = String::new();
    for (bin, extra, want) in [
        (CH10, &[][..], "0 0 0 0"),
        (CH11, &MAP[..], "100000 100000 100000 100000"),
    ] {
        let mut rt = start(&sb, bin, extra, script);
        let mut first = String::new();
        std::io::BufRead::read_line(rt.stdout.as_mut().unwrap(), &mut first).unwrap();
        assert_eq!(first, "0\n", "{bin}: id -u in the container");
        rt.wait_ready();
        let uids = host_uids(container_pid(&rt));
        assert_eq!(uids, want, "{bin}: Uid: in the host's /proc/PID/status");
        let (code, _, err) = finish(rt, "");
        assert_eq!(code, 0, "{bin}: {err}");
        // Put together after the step ran; a live demo shows it then.
        transcript += &common::demo::shown(format!(
            "$ {} -- sh -c 'id -u'\n0\n$ grep Uid: /proc/CONTAINER/status   # on the host\nUid:\t{}\n",
            [&[bin][..], extra].concat().join(" "),
            uids.replace(' ', "\t")
        ));
    }
    // The probe's view from inside.
    let run = sb.sh(CH11, &MAP, "/bin/probe userns");
    assert_eq!(run.code, 0, "{}", run.transcript);
    assert!(
        run.stdout
            .contains("root: uid 0 here only: uid 100000 outside"),
        "{}",
        run.transcript
    );
    transcript += &run.transcript;
    crate::snapshot!("ch11_uids", transcript);
}

/// Without --uidmap root gets a range that no /etc/subuid entry holds.
#[test]
fn roots_default_range_is_nobodys() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch11");
    let run = sb.sh(CH11, &[], "cat /proc/self/uid_map");
    assert_eq!(run.code, 0, "{}", run.transcript);
    let f: Vec<u64> = run
        .stdout
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let [inside, outside, count] = f[..] else {
        panic!("{}", run.transcript)
    };
    assert_eq!((inside, count), (0, 65536), "{}", run.transcript);
    assert!(outside >= 100_000, "{}", run.transcript);
    for file in ["/etc/subuid", "/etc/subgid"] {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let [_, start, n] = f[..] {
                let (s, n): (u64, u64) = (start.parse().unwrap(), n.parse().unwrap());
                assert!(
                    outside + count <= s || s + n <= outside,
                    "{outside} overlaps {file}'s {line}"
                );
            }
        }
    }
}

/// What the container's root writes belongs to its host uid: files in the
/// container's upper layer (kept with --keep, to look at afterwards).
#[test]
fn files_the_container_makes_belong_to_its_host_uids() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch11");
    let script =
        "mkdir /data && echo x > /data/root && echo y > /data/app && chown 1000:1000 /data/app";
    let mut owners = Vec::new();
    for (bin, extra) in [(CH10, &[][..]), (CH11, &MAP[..])] {
        let mut args = vec!["--keep"];
        args.extend_from_slice(extra);
        let run = sb.sh(bin, &args, script);
        assert_eq!(run.code, 0, "{}", run.transcript);
        let upper = find_upper(&sb.state_dir());
        let owner = |name: &str| {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(upper.join("data").join(name)).unwrap();
            (m.uid(), m.gid())
        };
        owners.push((owner("root"), owner("app")));
        // --keep's cleanup line, as chapter 8's page gives it.
        ch08_overlay::remove::remove_all(upper.parent().unwrap()).unwrap();
    }
    assert_eq!(owners[0], ((0, 0), (1000, 1000)), "chapter 10");
    assert_eq!(
        owners[1],
        ((100_000, 100_000), (101_000, 101_000)),
        "chapter 11"
    );
}

/// The one container directory under STATE (or STATE/userns-*): its upper.
fn find_upper(state: &std::path::Path) -> std::path::PathBuf {
    let mut found = Vec::new();
    for store in std::iter::once(state.to_path_buf()).chain(
        std::fs::read_dir(state)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("userns-")
            }),
    ) {
        if let Ok(dirs) = std::fs::read_dir(store.join("containers")) {
            found.extend(dirs.flatten().map(|e| e.path().join("upper")));
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

/// A process the host's root started in the container's pid namespace
/// (as an admin's `nsenter` would): chapter 10's root kills it; chapter
/// 11's "root" is refused, since the process is not in its user namespace.
#[test]
fn root_in_the_container_cannot_kill_a_host_process() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch11");
    // The container answers, then waits: its end would end its pid
    // namespace, and with it every process in it, the host's too.
    let script = "echo ready; read pid; kill -9 $pid && echo killed || echo refused; read x";
    let mut transcript = String::new();
    for (bin, extra) in [(CH10, &[][..]), (CH11, &MAP[..])] {
        let mut rt = start(&sb, bin, extra, script);
        rt.wait_ready();
        let target = container_pid(&rt);
        let mut intruder = Command::new("nsenter")
            .args([
                "--target",
                &target.to_string(),
                "--pid",
                "--",
                "sleep",
                "1000",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("nsenter (util-linux)");
        // nsenter forks the sleep in the container's pid namespace: its pid
        // there is the last of its NSpid: line, once it exists.
        let sleep = wait_for_child(intruder.id() as i32);
        let ns_pid = std::fs::read_to_string(format!("/proc/{sleep}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("NSpid:"))
            .and_then(|l| l.split_whitespace().last().map(str::to_owned))
            .unwrap();
        let mut stdin = rt.child.stdin.take().unwrap();
        writeln!(stdin, "{ns_pid}").unwrap();
        let mut answer = String::new();
        std::io::BufRead::read_line(rt.stdout.as_mut().unwrap(), &mut answer).unwrap();
        match bin {
            CH10 => {
                assert_eq!(answer, "killed\n");
                // nsenter dies of its child's signal.
                let status = intruder.wait().unwrap();
                use std::os::unix::process::ExitStatusExt;
                assert!(
                    status.signal() == Some(9) || status.code() == Some(137),
                    "chapter 10 did not kill it: {status}"
                );
            }
            _ => {
                assert_eq!(answer, "refused\n");
                let alive = intruder.try_wait().unwrap().is_none();
                let _ = intruder.kill();
                let _ = intruder.wait();
                assert!(alive, "chapter 11's root killed a host process");
            }
        }
        rt.child.stdin = Some(stdin);
        let (code, out, err) = finish(rt, "");
        assert_eq!(code, 0, "{out}{err}");
        let out = format!("{answer}{out}");
        if bin == CH11 {
            assert!(err.contains("Operation not permitted"), "{err}");
        }
        // Put together after the step ran; a live demo shows it then.
        transcript += &common::demo::shown(format!(
            "$ {} -- sh -c 'kill -9 PID'   # PID: a process of the host's root\n{out}{err}",
            [&[bin][..], extra].concat().join(" ")
        ));
    }
    crate::snapshot!("ch11_kill", transcript);
}

/// The child of nsenter (the process in the container's pid namespace).
fn wait_for_child(pid: i32) -> i32 {
    let start = std::time::Instant::now();
    loop {
        let path = format!("/proc/{pid}/task/{pid}/children");
        if let Some(child) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        {
            return child.parse().unwrap();
        }
        assert!(start.elapsed().as_secs() < 30, "nsenter forked nothing");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A map that cannot be used is refused in one line, exit 125, before
/// anything is made (Sandbox::sh checks the host before and after).
#[test]
fn bad_maps_are_refused_before_anything_is_made() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch11");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--uidmap", "0:100000:10", "--uidmap", "5:200000:10"],
            "0:100000:10 and 5:200000:10 overlap in the container",
        ),
        (
            &["--uidmap", "0:100000:10", "--uidmap", "10:100005:10"],
            "overlap on the host",
        ),
        (&["--uidmap", "1:100000:10"], "does not map uid 0"),
        (&["--uidmap", "0:100000:0"], "a range of 0 ids"),
        (&["--uidmap", "0:4294967295:1"], "past the last id"),
        (
            &["--userns-remap", "no-such-user-here"],
            "no entry for no-such-user-here",
        ),
    ];
    for &(args, want) in cases {
        let run = sb.sh(CH11, args, "echo ran");
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (125, ""),
            "{}",
            run.transcript
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript);
        assert!(run.stderr.contains(want), "{want}: {}", run.transcript);
    }
    // A flag's own form is clap's to refuse (usage errors exit 125 too).
    let run = sb.sh(CH11, &["--uidmap", "0:abc:1"], "echo ran");
    assert_eq!(run.code, 125, "{}", run.transcript);
    assert!(run.stderr.contains("HOST \"abc\""), "{}", run.transcript);
}
