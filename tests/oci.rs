//! Chapter 12 as an engine drives it: every step of the lifecycle and
//! every step it must refuse, a runtime killed in the middle of `create`,
//! fifty containers at once, configs it must refuse before making
//! anything, the config fields it honours as the container sees them,
//! and the same bundles under runc and crun.
//!
//! Every container has an id of its own (`common::unique_id`) and a
//! `--root` under the test's own directory (tests/oci/lab.rs). What it
//! makes on the host is named after chapter 1's id for it, which chapter
//! 12 chooses (`ROOT/ID/state.json`'s `record`: cgroups `stepbox-REC`,
//! `ROOT/containers/REC.json`): the lab reads it, to check those are gone.
//! A test's `Lab` deletes its containers with `delete --force` when it is
//! dropped, panicking or not, then whatever a killed runtime left.
//! Each test compares the host before and after (`common::HostState`).

mod common;
#[path = "oci/lab.rs"]
mod lab;

use common::{root, HostState};
use lab::{alive, processes_with, read_config, wait_for, Lab, Rt};
use serde_json::{json, Value};
use std::path::Path;

const CH12: Rt = Rt::Ch12;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// What a container's process is until its execve(2), as /proc/PID/exe
/// names it: the runtime's binary on the detached read-only mount that
/// create re-executed from (the CVE-2019-5736 defence), whose root is
/// the file itself.
fn ch12_exe() -> std::path::PathBuf {
    std::path::PathBuf::from("/")
}

/// A process blocked before its execve(2): asleep, in the runtime's
/// binary. create may return while it is still on its way to the FIFO's
/// open (runc's too: its init goes on after it said it was ready), so
/// "asleep" is waited for; "in the runtime's binary" holds all along.
fn assert_waiting_to_start(pid: i32) {
    let exe = || std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let asleep = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let state = status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .unwrap()
            .trim()
            .to_owned();
        assert_eq!(exe(), ch12_exe(), "{pid} has exec'd before start");
        state.starts_with('S')
    };
    wait_for(&format!("{pid} to block"), asleep);
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    // The kernel's fifo_open() waits in wait_for_partner().
    assert_eq!(wchan, "wait_for_partner", "{pid} is asleep elsewhere");
    assert_eq!(exe(), ch12_exe(), "{pid} has exec'd before start");
}

// ---------------------------------------------------------------------
// 1. The lifecycle
// ---------------------------------------------------------------------

/// create → created, start → running, kill → stopped, delete → gone, and
/// what each refuses on the way.
#[test]
fn lifecycle_every_transition_and_every_refusal() {
    if !root() {
        return;
    }
    let lab = Lab::new("life");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sh", "-c", "echo started; exec sleep 1000"], |_| {});
    let b = bundle.to_str().unwrap();
    let pid_file = lab.dir.join("pid");
    let root_dir = lab.root(CH12);

    // create
    let create = lab.oci(
        &id,
        &[
            "create",
            "--bundle",
            b,
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ],
    );
    create.ok("create");
    let state = lab.state(CH12, &id).expect("state after create");
    assert_eq!(s(&state["status"]), "created", "{state}");
    assert_eq!(s(&state["id"]), id);
    assert_eq!(s(&state["bundle"]), b);
    let pid = state["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "{state}");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string(),
        "the pid file"
    );
    assert!(alive(pid));
    assert_waiting_to_start(pid);
    assert_eq!(create.output(), "", "the command ran before start");
    assert!(root_dir.join(&id).is_dir());
    let record = lab.record(&id);
    assert!(
        root_dir.join(format!("containers/{record}.json")).exists(),
        "no state record"
    );
    assert!(!common::find_cgroups(&record).is_empty(), "no cgroup");

    // a second create of the same id fails; the first is untouched
    let other = lab.bundle(&["true"], |_| {});
    lab.oci(&id, &["create", "--bundle", other.to_str().unwrap(), &id])
        .refused("create of an existing id", "already exists");
    let again = lab.state(CH12, &id).unwrap();
    assert_eq!(
        (s(&again["status"]), &again["pid"]),
        ("created", &state["pid"])
    );
    assert_eq!(s(&again["bundle"]), b);

    // start
    lab.oci(&id, &["start", &id]).ok("start");
    wait_for("the command's output", || create.output() == "started\n");
    assert_eq!(lab.status(CH12, &id), "running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("busybox"), "{}", exe.display());

    // refused while running
    lab.oci(&id, &["start", &id])
        .refused("start on running", "is running");
    lab.oci(&id, &["delete", &id])
        .refused("delete on running", "is running");
    assert_eq!(lab.status(CH12, &id), "running");
    assert!(alive(pid));

    // kill
    lab.oci(&id, &["kill", &id, "KILL"]).ok("kill");
    lab.wait_status(CH12, &id, "stopped");
    let stopped = lab.state(CH12, &id).unwrap();
    assert_eq!(stopped["pid"], 0, "{stopped}");

    // refused once stopped
    lab.oci(&id, &["start", &id])
        .refused("start on stopped", "is stopped");
    lab.oci(&id, &["kill", &id, "KILL"])
        .refused("kill on stopped", "not running");

    // delete
    lab.oci(&id, &["delete", &id]).ok("delete");
    lab.oci(&id, &["state", &id])
        .refused("state after delete", "does not exist");
    lab.assert_gone(&id, &record, &before);
}

/// runc deletes a created container without --force: its process has run
/// nothing of the config's yet.
#[test]
fn delete_of_a_created_container() {
    if !root() {
        return;
    }
    let lab = Lab::new("delcreated");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["true"], |_| {});
    lab.oci(&id, &["create", "--bundle", bundle.to_str().unwrap(), &id])
        .ok("create");
    let pid = lab.state(CH12, &id).unwrap()["pid"].as_i64().unwrap() as i32;
    let record = lab.record(&id);
    lab.oci(&id, &["delete", &id]).ok("delete of created");
    wait_for("the process to go", || !alive(pid));
    lab.assert_gone(&id, &record, &before);
}

#[test]
fn delete_force_of_a_running_container() {
    if !root() {
        return;
    }
    let lab = Lab::new("delforce");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sleep", "1000"], |_| {});
    lab.oci(
        &id,
        &["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id],
    )
    .ok("run --detach");
    assert_eq!(lab.status(CH12, &id), "running");
    let pid = lab.state(CH12, &id).unwrap()["pid"].as_i64().unwrap() as i32;
    let record = lab.record(&id);
    lab.oci(&id, &["delete", &id])
        .refused("delete without --force", "delete --force");
    assert!(alive(pid));
    lab.oci(&id, &["delete", "--force", &id])
        .ok("delete --force");
    assert!(!alive(pid), "the process outlived delete --force");
    lab.oci(&id, &["state", &id])
        .refused("state after delete", "does not exist");
    lab.assert_gone(&id, &record, &before);
}

/// state, kill and delete of an id nobody created; ids that are paths.
#[test]
fn unknown_and_bad_ids_are_refused() {
    if !root() {
        return;
    }
    let lab = Lab::new("badid");
    let id = lab.id(CH12);
    let bundle = lab.bundle(&["true"], |_| {});
    let b = bundle.to_str().unwrap();
    lab.oci(&id, &["state", &id])
        .refused("state unknown", "does not exist");
    lab.oci(&id, &["kill", &id])
        .refused("kill unknown", "does not exist");
    lab.oci(&id, &["kill", &id, "KILL"])
        .refused("kill unknown", "does not exist");
    lab.oci(&id, &["delete", &id])
        .refused("delete unknown", "does not exist");
    lab.oci(&id, &["start", &id])
        .refused("start unknown", "does not exist");
    // runc's: an engine cleaning up after a failed create finds nothing.
    lab.oci(&id, &["delete", "--force", &id])
        .ok("delete --force unknown");

    let root_dir = lab.root(CH12);
    for bad in ["../x", "a/b", "..", "", "a b"] {
        for args in [
            vec!["create", "--bundle", b, bad],
            vec!["state", bad],
            vec!["start", bad],
            vec!["kill", bad, "KILL"],
            vec!["delete", bad],
            vec!["delete", "--force", bad],
        ] {
            lab.oci(&id, &args)
                .refused(&format!("{args:?}"), "is not a container id");
        }
    }
    assert!(!lab.dir.join("x").exists(), "create ../x made a directory");
    assert!(!root_dir.join("a").exists());
    assert_eq!(lab.records_in_root(), Vec::<String>::new());
}

/// `kill ID SIG` takes a name with or without SIG, any case, or a number.
#[test]
fn signals_by_name_and_number() {
    if !root() {
        return;
    }
    let lab = Lab::new("signals");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    // pid 1 of a pid namespace gets only the signals it handles.
    let script = "trap 'echo got USR1' USR1; trap 'echo got HUP' HUP; echo ready; \
                  while :; do sleep 0.05; done";
    let bundle = lab.bundle(&["sh", "-c", script], |_| {});
    let create = lab.oci(&id, &["create", "--bundle", bundle.to_str().unwrap(), &id]);
    create.ok("create");
    let record = lab.record(&id);
    lab.oci(&id, &["start", &id]).ok("start");
    wait_for("ready", || create.output() == "ready\n");
    let mut expected = String::from("ready\n");
    for (sig, name) in [
        ("USR1", "USR1"),
        ("SIGUSR1", "USR1"),
        ("usr1", "USR1"),
        ("10", "USR1"),
        ("SIGHUP", "HUP"),
        ("1", "HUP"),
    ] {
        lab.oci(&id, &["kill", &id, sig]).ok(&format!("kill {sig}"));
        expected.push_str(&format!("got {name}\n"));
        wait_for(&format!("the trap of {sig}"), || {
            create.output() == expected
        });
    }
    for bad in ["NOPE", "SIGNOPE", "0x10", "999", "-1"] {
        lab.oci(&id, &["kill", &id, bad])
            .refused(&format!("kill {bad}"), bad.trim_start_matches('-'));
    }
    assert_eq!(lab.status(CH12, &id), "running");
    lab.oci(&id, &["kill", &id, "9"]).ok("kill 9");
    lab.wait_status(CH12, &id, "stopped");
    lab.oci(&id, &["delete", &id]).ok("delete");
    lab.assert_gone(&id, &record, &before);
}

/// `run` exits with the command's status, and with 128 + N when a signal
/// killed it.
#[test]
fn run_passes_the_exit_status_through() {
    if !root() {
        return;
    }
    let lab = Lab::new("runexit");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sh", "-c", "exit 3"], |_| {});
    let run = lab.oci(&id, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!((run.code, run.stderr.as_str()), (3, ""));
    assert_eq!(
        lab.records_in_root(),
        Vec::<String>::new(),
        "a record is left"
    );
    lab.assert_gone(&id, "", &before);

    // Killed by SIGKILL (from the host, by its pid: see the next test).
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sleep", "1000"], |_| {});
    let b = bundle.to_str().unwrap().to_owned();
    let state = lab.root(CH12).join(&id).join("state.json");
    let run = std::thread::scope(|scope| {
        let running = scope.spawn(|| lab.oci(&id, &["run", "--bundle", &b, &id]));
        wait_for("run's container", || state.exists());
        let _ = lab.record(&id);
        let pid = saved_pid(&state);
        wait_for("the command's execve", || {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e.ends_with("busybox"))
        });
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
        running.join().unwrap()
    });
    assert_eq!((run.code, run.stderr.as_str()), (137, ""));
    assert_eq!(
        lab.records_in_root(),
        Vec::<String>::new(),
        "a record is left"
    );
    lab.assert_gone(&id, "", &before);
}

fn saved_pid(state_json: &Path) -> i32 {
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(state_json).unwrap()).unwrap();
    saved["pid"].as_i64().unwrap() as i32
}

/// As runc's: `state` and `kill` work on a container that `run` runs in
/// the foreground (an engine's or a user's `kill` of it).
#[test]
fn state_and_kill_of_a_container_run_runs() {
    if !root() {
        return;
    }
    let lab = Lab::new("runkill");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sleep", "1000"], |_| {});
    let b = bundle.to_str().unwrap().to_owned();
    let state = lab.root(CH12).join(&id).join("state.json");
    let run = std::thread::scope(|scope| {
        let running = scope.spawn(|| lab.oci(&id, &["run", "--bundle", &b, &id]));
        wait_for("run's container", || state.exists());
        let _ = lab.record(&id);
        let pid = saved_pid(&state);
        // A command that waits for `run` to end would wait forever: 20 s
        // is plenty for one that does not.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let shown = lab.oci_within(20, &id, &["state", &id]);
            shown.ok("state of run's container");
            assert!(shown.stdout.contains("\"running\""), "{}", shown.stdout);
            lab.oci_within(20, &id, &["kill", &id, "KILL"]).ok("kill");
        }));
        if let Err(panic) = checked {
            // The container by hand, so that `run` ends and the test reports.
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            let _ = running.join();
            std::panic::resume_unwind(panic);
        }
        running.join().unwrap()
    });
    assert_eq!((run.code, run.stderr.as_str()), (137, ""));
    assert_eq!(
        lab.records_in_root(),
        Vec::<String>::new(),
        "a record is left"
    );
    lab.assert_gone(&id, "", &before);
}

/// The container's process is known by its pid and its start time: with a
/// start time that is not its own (as a reused pid's would be), the
/// container is stopped, and kill signals nothing.
#[test]
fn stopped_is_detected_even_if_the_pid_is_reused() {
    if !root() {
        return;
    }
    let lab = Lab::new("pidreuse");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sleep", "1000"], |_| {});
    lab.oci(
        &id,
        &["run", "--detach", "--bundle", bundle.to_str().unwrap(), &id],
    )
    .ok("run --detach");
    let pid = lab.state(CH12, &id).unwrap()["pid"].as_i64().unwrap() as i32;
    let record = lab.record(&id);
    let path = lab.root(CH12).join(&id).join("state.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut saved: Value = serde_json::from_str(&text).unwrap();
    let start = saved["start"]
        .as_u64()
        .expect("state.json has the start time");
    saved["start"] = json!(start + 1);
    std::fs::write(&path, saved.to_string()).unwrap();

    let state = lab.state(CH12, &id).unwrap();
    assert_eq!(s(&state["status"]), "stopped", "{state}");
    lab.oci(&id, &["kill", &id, "KILL"])
        .refused("kill of a reused pid", "not running");
    assert!(alive(pid), "kill signalled the process of a reused pid");

    std::fs::write(&path, text).unwrap();
    assert_eq!(lab.status(CH12, &id), "running");
    lab.oci(&id, &["delete", "--force", &id])
        .ok("delete --force");
    assert!(!alive(pid));
    lab.assert_gone(&id, &record, &before);
}

/// `ch12-oci spec`'s capability names are the ones runc and crun know:
/// `CAP_CHOWN`, not `CAP_CAP_CHOWN` (runc ignores those with a warning, and
/// the container then has no capability at all).
#[test]
fn spec_writes_capability_names_runc_knows() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin_dir().join("ch12-oci"))
        .args(["spec", "--bundle"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let config = read_config(dir.path());
    for set in ["bounding", "effective", "permitted"] {
        let caps = config["process"]["capabilities"][set].as_array().unwrap();
        assert!(caps.iter().any(|c| c == "CAP_CHOWN"), "{set}: {caps:?}");
        for cap in caps {
            assert!(
                !s(cap).starts_with("CAP_CAP_"),
                "{set}: {cap} is not a capability name"
            );
        }
    }
}

// ---------------------------------------------------------------------
// 2. A runtime killed in the middle of create
// ---------------------------------------------------------------------

/// strace(1), which scripts/install-deps.sh installs.
fn strace_available() -> bool {
    std::process::Command::new("strace")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        || common::skip("no strace(1): the exact kill points need it (scripts/install-deps.sh)")
}

/// Where strace(1) stops `create` (the runtime's own process, not its
/// children: `-f` would wait for the container's process, which outlives
/// it) and kills it with SIGKILL, before the system call runs.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// mkfifo(3) of ROOT/ID/exec.fifo: only ROOT/ID exists.
    Fifo,
    /// clone(2) of the container's process: its record and cgroups exist.
    Clone,
    /// The open of ROOT/ID/state.json.tmp: the container's process exists,
    /// waiting on the FIFO, and nothing says so under ROOT/ID.
    StateJson,
    /// The open of the pid file's temp file: state.json is written.
    PidFile,
}

fn create_killed_at(point: Point) {
    if !root() || !strace_available() {
        return;
    }
    let lab = Lab::new("kill9");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["true"], |_| {});
    let pid_file = lab.dir.join("pid");
    let root_dir = lab.root(CH12);
    let args = [
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ];
    let state_tmp = root_dir.join(&id).join("state.json.tmp");
    let pid_tmp = lab.dir.join("pid.tmp-ch12");
    let filter: Vec<String> = match point {
        Point::Fifo => vec!["-e".into(), "inject=mknodat:signal=SIGKILL:when=1".into()],
        Point::Clone => vec![
            "-e".into(),
            "inject=clone,clone3:signal=SIGKILL:when=1".into(),
        ],
        Point::StateJson => vec![
            "-P".into(),
            state_tmp.display().to_string(),
            "-e".into(),
            "trace=openat".into(),
            "-e".into(),
            "inject=openat:signal=SIGKILL".into(),
        ],
        Point::PidFile => vec![
            "-P".into(),
            pid_tmp.display().to_string(),
            "-e".into(),
            "trace=openat".into(),
            "-e".into(),
            "inject=openat:signal=SIGKILL".into(),
        ],
    };
    let runtime = lab.command(CH12, &id, &args);
    let mut strace = lab.command(CH12, &id, &[]);
    strace.cmd = std::process::Command::new("strace");
    strace
        .cmd
        .args(["-qq", "-o", "/dev/null"])
        .args(&filter)
        .arg("--")
        .arg(runtime.cmd.get_program())
        .args(runtime.cmd.get_args())
        .env("STEPBOX_CONTAINER_ID", &id)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&strace.out).unwrap())
        .stderr(std::fs::File::create(&strace.err).unwrap());
    let out = lab.finish(strace);
    assert_eq!(out.code, 137, "{point:?}: not killed: {}", out.stderr);

    // What the kill left, so that delete has something to do.
    let records = lab.records_in_root();
    let lab_dir = lab.dir.to_string_lossy().into_owned();
    assert!(root_dir.join(&id).is_dir(), "{point:?}: no ROOT/ID");
    match point {
        Point::Fifo => assert_eq!(records, Vec::<String>::new(), "{point:?}"),
        Point::Clone | Point::StateJson | Point::PidFile => {
            assert_eq!(records.len(), 1, "{point:?}: {records:?}");
            assert!(!common::find_cgroups(&records[0]).is_empty(), "{point:?}");
        }
    }
    match point {
        Point::Fifo | Point::Clone => {
            assert_eq!(processes_with(&lab_dir), Vec::<String>::new(), "{point:?}")
        }
        Point::StateJson | Point::PidFile => {
            assert_eq!(
                processes_with(&lab_dir).len(),
                1,
                "{point:?}: the container's process"
            )
        }
    }
    assert_eq!(
        root_dir.join(&id).join("state.json").exists(),
        matches!(point, Point::PidFile),
        "{point:?}"
    );

    lab.oci(&id, &["delete", "--force", &id])
        .ok(&format!("{point:?}: delete --force"));
    assert_eq!(
        processes_with(&lab_dir),
        Vec::<String>::new(),
        "{point:?}: a process is left after delete --force"
    );
    for record in records.iter().map(String::as_str).chain([""]) {
        assert_eq!(
            lab.leftovers(CH12, &id, record),
            Vec::<String>::new(),
            "{point:?}: left after delete --force"
        );
    }
    assert_eq!(lab.records_in_root(), Vec::<String>::new(), "{point:?}");
    lab.oci(&id, &["state", &id])
        .refused("state after delete", "does not exist");
    assert_eq!(HostState::capture(&id), before);
}

#[test]
fn create_killed_at_the_fifo_then_delete_force_cleans() {
    create_killed_at(Point::Fifo);
}

#[test]
fn create_killed_at_the_clone_then_delete_force_cleans() {
    create_killed_at(Point::Clone);
}

#[test]
fn create_killed_at_the_state_json_then_delete_force_cleans() {
    create_killed_at(Point::StateJson);
}

#[test]
fn create_killed_at_the_pid_file_then_delete_force_cleans() {
    create_killed_at(Point::PidFile);
}

// ---------------------------------------------------------------------
// 3. Many at once
// ---------------------------------------------------------------------

/// Fifty containers created and started from 50 threads at once (on a
/// 2-core machine: each `create` waits for the others' CPU), every one
/// running; then all deleted, from 50 threads again; nothing left.
#[test]
fn fifty_containers_in_parallel() {
    if !root() {
        return;
    }
    const N: usize = 50;
    let lab = Lab::new("fifty");
    let probe = lab.id(CH12);
    let before = HostState::capture(&probe);
    let bundle = lab.bundle(&["sh", "-c", "echo up; exec sleep 1000"], |_| {});
    let b = bundle.to_str().unwrap();
    let ids: Vec<String> = (0..N).map(|_| lab.id(CH12)).collect();
    let outputs: Vec<Result<lab::Out, String>> = std::thread::scope(|scope| {
        let threads: Vec<_> = ids
            .iter()
            .map(|id| {
                let lab = &lab;
                scope.spawn(move || {
                    let create = lab.oci(id, &["create", "--bundle", b, id]);
                    if create.code != 0 {
                        return Err(format!("create {id}: {}", create.stderr));
                    }
                    let start = lab.oci(id, &["start", id]);
                    if start.code != 0 {
                        return Err(format!("start {id}: {}", start.stderr));
                    }
                    Ok(create)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let failed: Vec<&String> = outputs.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(failed, Vec::<&String>::new(), "failures among {N}");
    let mut records = Vec::new();
    for (id, out) in ids.iter().zip(&outputs) {
        let out = out.as_ref().unwrap();
        wait_for(&format!("{id}'s output"), || out.output() == "up\n");
        assert_eq!(lab.status(CH12, id), "running", "{id}");
        records.push(lab.record(id));
    }
    let mut distinct = records.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), N, "two containers share a record id");
    let list = lab.oci(&probe, &["list", "--quiet"]);
    list.ok("list");
    assert_eq!(list.stdout.lines().count(), N, "{}", list.stdout);

    let deleted: Vec<lab::Out> = std::thread::scope(|scope| {
        let threads: Vec<_> = ids
            .iter()
            .map(|id| {
                let lab = &lab;
                scope.spawn(move || lab.oci(id, &["delete", "--force", id]))
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (id, out) in ids.iter().zip(&deleted) {
        out.ok(&format!("delete --force {id}"));
    }
    for (id, record) in ids.iter().zip(&records) {
        lab.assert_gone(id, record, &before);
    }
    assert_eq!(lab.records_in_root(), Vec::<String>::new());
    assert_eq!(
        common::names(&lab.root(CH12)),
        vec!["containers".to_owned()]
    );
    assert_eq!(
        processes_with(&lab.dir.to_string_lossy()),
        Vec::<String>::new()
    );
    assert_eq!(HostState::capture(&probe), before);
}

// ---------------------------------------------------------------------
// 4. Bad input: refused in one line, before anything exists
// ---------------------------------------------------------------------

/// A bundle or a command line the runtime must refuse.
struct Bad {
    what: &'static str,
    /// Flags before the command (global) and after `create`.
    global: &'static [&'static str],
    flags: &'static [&'static str],
    /// What `config.json` is: the spec's default, edited; or a text.
    config: Config,
    /// A word the one line must have.
    says: &'static str,
}

enum Config {
    Edit(fn(&mut Value)),
    Text(&'static str),
    Missing,
}

fn bad_inputs() -> Vec<Bad> {
    use Config::*;
    fn none(_: &mut Value) {}
    vec![
        Bad {
            what: "no config.json",
            global: &[],
            flags: &[],
            config: Missing,
            says: "config.json",
        },
        Bad {
            what: "not JSON",
            global: &[],
            flags: &[],
            config: Text("{\"ociVersion\": "),
            says: "not JSON",
        },
        Bad {
            what: "ociVersion 2.0.0",
            global: &[],
            flags: &[],
            config: Edit(|c| c["ociVersion"] = json!("2.0.0")),
            says: "ociVersion",
        },
        Bad {
            what: "an unknown field",
            global: &[],
            flags: &[],
            config: Edit(|c| c["linux"]["intelRdt"] = json!({"closID": "guaranteed_group"})),
            says: "linux.intelRdt",
        },
        Bad {
            what: "no args",
            global: &[],
            flags: &[],
            config: Edit(|c| c["process"]["args"] = json!([])),
            says: "process.args",
        },
        Bad {
            what: "a relative cwd",
            global: &[],
            flags: &[],
            config: Edit(|c| c["process"]["cwd"] = json!("tmp")),
            says: "process.cwd",
        },
        Bad {
            what: "no ipc namespace",
            global: &[],
            flags: &[],
            config: Edit(|c| {
                let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
                ns.retain(|n| n["type"] != "ipc");
            }),
            says: "ipc",
        },
        Bad {
            what: "joining a mount namespace",
            global: &[],
            flags: &[],
            config: Edit(|c| {
                for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
                    if n["type"] == "mount" {
                        n["path"] = json!("/proc/1/ns/mnt");
                    }
                }
            }),
            says: "/proc/1/ns/mnt",
        },
        Bad {
            what: "a bad capability",
            global: &[],
            flags: &[],
            config: Edit(|c| {
                for set in ["bounding", "effective", "permitted"] {
                    c["process"]["capabilities"][set] = json!(["CAP_CHOWN", "CAP_NOPE"]);
                }
            }),
            says: "CAP_NOPE",
        },
        Bad {
            what: "an unknown mount option",
            global: &[],
            flags: &[],
            config: Edit(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "frobnicate"]
                }))
            }),
            says: "frobnicate",
        },
        Bad {
            what: "a systemd cgroupsPath",
            global: &[],
            flags: &[],
            config: Edit(|c| c["linux"]["cgroupsPath"] = json!("system.slice:stepbox:x")),
            says: "cgroupsPath",
        },
        Bad {
            what: "a sysctl of the host",
            global: &[],
            flags: &[],
            config: Edit(|c| c["linux"]["sysctl"] = json!({"kernel.panic": "1"})),
            says: "kernel.panic",
        },
        Bad {
            what: "--no-pivot",
            global: &[],
            flags: &["--no-pivot"],
            config: Edit(none),
            says: "--no-pivot",
        },
        Bad {
            what: "--preserve-fds 1",
            global: &[],
            flags: &["--preserve-fds", "1"],
            config: Edit(none),
            says: "--preserve-fds",
        },
        Bad {
            what: "--systemd-cgroup",
            global: &["--systemd-cgroup"],
            flags: &[],
            config: Edit(none),
            says: "--systemd-cgroup",
        },
    ]
}

/// Runs `bad`: the one line it is refused with, paths and id replaced.
fn refuse(lab: &Lab, bad: &Bad) -> String {
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["true"], |_| {});
    match bad.config {
        Config::Edit(edit) => {
            let mut config = read_config(&bundle);
            edit(&mut config);
            lab::write_config(&bundle, &config);
        }
        Config::Text(text) => std::fs::write(bundle.join("config.json"), text).unwrap(),
        Config::Missing => std::fs::remove_file(bundle.join("config.json")).unwrap(),
    }
    let b = bundle.to_str().unwrap();
    let mut args: Vec<&str> = bad.global.to_vec();
    args.extend(["create", "--bundle", b]);
    args.extend(bad.flags);
    args.push(&id);
    let line = lab.oci(&id, &args).refused(bad.what, bad.says);
    assert!(
        !lab.root(CH12).join(&id).exists(),
        "{}: ROOT/ID left",
        bad.what
    );
    assert_eq!(lab.records_in_root(), Vec::<String>::new(), "{}", bad.what);
    assert_eq!(HostState::capture(&id), before, "{}", bad.what);
    line.replace(b, "BUNDLE").replace(&id, "ID")
}

#[test]
fn bad_input_is_refused_in_one_line_before_anything_exists() {
    if !root() {
        return;
    }
    let lab = Lab::new("bad");
    let mut shown = String::new();
    let mut failed = Vec::new();
    for bad in bad_inputs() {
        // Every case runs, so that one report lists every failure.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| refuse(&lab, &bad))) {
            Ok(line) => shown.push_str(&format!("# {}\n{line}\n", bad.what)),
            Err(e) => failed.push(match e.downcast::<String>() {
                Ok(msg) => *msg,
                Err(_) => bad.what.to_owned(),
            }),
        }
    }
    assert_eq!(failed, Vec::<String>::new());
    snapshot!("bad_input", shown);
}

/// `CAP_CAP_CHOWN` is not a capability (runc ignores it with a warning;
/// chapter 12 must refuse it, as it refuses `CAP_NOPE`).
#[test]
fn a_capability_named_with_cap_twice_is_refused() {
    if !root() {
        return;
    }
    let lab = Lab::new("badcap");
    let bad = Bad {
        what: "a capability named twice over",
        global: &[],
        flags: &[],
        config: Config::Edit(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set] = json!(["CAP_CAP_CHOWN"]);
            }
        }),
        says: "CAP_CAP_CHOWN",
    };
    refuse(&lab, &bad);
}

// ---------------------------------------------------------------------
// 5. Config fields, as the container sees them
// ---------------------------------------------------------------------

/// `ch12-oci run` of a bundle with `args` and `edit`, to its end; the
/// host must be as it was, and nothing left under the root.
fn run_config(args: &[&str], edit: impl FnOnce(&mut Value)) -> lab::Out {
    let lab = Lab::new("field");
    run_in(&lab, args, edit)
}

fn run_in(lab: &Lab, args: &[&str], edit: impl FnOnce(&mut Value)) -> lab::Out {
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(args, edit);
    let out = lab.oci(&id, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(
        lab.records_in_root(),
        Vec::<String>::new(),
        "a record is left"
    );
    lab.assert_gone(&id, "", &before);
    out
}

/// The run succeeded; its stdout.
fn stdout_of(out: &lab::Out) -> &str {
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, ""),
        "stdout: {:?}",
        out.stdout
    );
    &out.stdout
}

fn set_caps(c: &mut Value, caps: &[&str]) {
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set] = json!(caps);
    }
}

const TOUCH_ROOT: &str = "touch /file 2>&1; echo status $?";

#[test]
fn field_root_readonly() {
    if !root() {
        return;
    }
    let ro = run_config(&["sh", "-c", TOUCH_ROOT], |c| {
        c["root"]["readonly"] = json!(true)
    });
    assert_eq!(
        stdout_of(&ro),
        "touch: /file: Read-only file system\nstatus 1\n"
    );
    let rw = run_config(&["sh", "-c", TOUCH_ROOT], |c| {
        c["root"]["readonly"] = json!(false)
    });
    assert_eq!(stdout_of(&rw), "status 0\n");
}

#[test]
fn field_hostname() {
    if !root() {
        return;
    }
    let out = run_config(&["probe", "identity"], |c| c["hostname"] = json!("box-12"));
    assert!(
        stdout_of(&out).contains("\nhostname: box-12\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn field_user_uid_gid_and_additional_gids() {
    if !root() {
        return;
    }
    let out = run_config(&["probe", "caps"], |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [20, 30]});
    });
    let text = stdout_of(&out);
    // The supplementary groups are additionalGids alone, as runc sets
    // them: the primary gid is not added to them.
    for line in [
        "uids: real 1000, effective 1000, saved 1000, fs 1000\n",
        "gids: real 1001, effective 1001, saved 1001, fs 1001\n",
        "groups: 20 30\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    // A user other than root has no capability left (capabilities(7):
    // the permitted and effective sets are cleared at the uid change).
    assert!(text.contains("effective: none\n"), "{text}");
}

#[test]
fn field_capabilities() {
    if !root() {
        return;
    }
    // A writable root: on a read-only one mknod(2) fails with EROFS
    // before the kernel looks at CAP_MKNOD.
    let out = run_config(
        &["sh", "-c", "probe caps; probe attempt mknod raw-socket"],
        |c| {
            c["root"]["readonly"] = json!(false);
            set_caps(c, &["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]);
        },
    );
    let text = stdout_of(&out);
    for set in ["effective", "permitted", "bounding"] {
        let want = format!("{set}: 3 of 41\n  chown kill net_raw\n");
        assert!(text.contains(&want), "no {want:?} in\n{text}");
    }
    assert!(text.contains("inheritable: none\nbounding"), "{text}");
    assert!(text.contains("ambient: none\n"), "{text}");
    assert!(text.contains("mknod: EPERM"), "{text}");
    assert!(text.contains("raw-socket: ok"), "{text}");
}

#[test]
fn field_no_new_privileges() {
    if !root() {
        return;
    }
    for (nnp, want) in [(true, "NoNewPrivs: 1\n"), (false, "NoNewPrivs: 0\n")] {
        let out = run_config(&["probe", "caps"], |c| {
            c["process"]["noNewPrivileges"] = json!(nnp)
        });
        assert!(stdout_of(&out).contains(want), "{nnp}: {}", out.stdout);
    }
}

#[test]
fn field_rlimits() {
    if !root() {
        return;
    }
    let out = run_config(
        &["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu"],
        |c| {
            c["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
                {"type": "RLIMIT_NPROC", "soft": 111, "hard": 222},
            ]);
        },
    );
    assert_eq!(stdout_of(&out), "321\n654\n111\n222\n");
}

#[test]
fn field_cwd() {
    if !root() {
        return;
    }
    let out = run_config(&["pwd"], |c| c["process"]["cwd"] = json!("/tmp"));
    assert_eq!(stdout_of(&out), "/tmp\n");
}

/// Exactly the config's environment: nothing of the runtime's own
/// (`STEPBOX_*`, what the engine ran it with), only HOME added (from the
/// user's passwd entry, as runc adds it when the config has none) and
/// HOSTNAME (chapter 6's, as docker sets it; runc does not: on purpose).
#[test]
fn field_env_exactly() {
    if !root() {
        return;
    }
    let lab = Lab::new("env");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["env"], |c| {
        c["process"]["env"] = json!(["PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY="]);
    });
    let mut cmd = lab.command(
        CH12,
        &id,
        &["run", "--bundle", bundle.to_str().unwrap(), &id],
    );
    cmd.cmd.env("LEAKED_FROM_THE_ENGINE", "1");
    let out = lab.finish(cmd);
    let mut env: Vec<&str> = stdout_of(&out).lines().collect();
    env.sort();
    assert_eq!(
        env,
        [
            "EMPTY=",
            "FOO=bar baz",
            "HOME=/root",
            "HOSTNAME=stepbox",
            "PATH=/usr/bin:/bin"
        ],
        "{}",
        out.stdout
    );
    lab.assert_gone(&id, "", &before);

    // A HOME of the config's own is kept as it is.
    let out = run_in(&lab, &["env"], |c| {
        c["process"]["env"] = json!(["PATH=/usr/bin:/bin", "HOME=/tmp"]);
    });
    let mut env: Vec<&str> = stdout_of(&out).lines().collect();
    env.sort();
    assert_eq!(env, ["HOME=/tmp", "HOSTNAME=stepbox", "PATH=/usr/bin:/bin"]);
}

#[test]
fn field_masked_and_readonly_paths() {
    if !root() {
        return;
    }
    let lab = Lab::new("paths");
    let script = "wc -c < /etc/group; ls -A /home; touch /tmp/x 2>&1; touch /x && echo rw";
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sh", "-c", script], |c| {
        c["root"]["readonly"] = json!(false);
        c["linux"]["maskedPaths"] = json!(["/etc/group", "/home"]);
        c["linux"]["readonlyPaths"] = json!(["/tmp"]);
    });
    std::fs::write(bundle.join("rootfs/home/secret"), "s").unwrap();
    let out = lab.oci(&id, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(
        stdout_of(&out),
        "0\ntouch: /tmp/x: Read-only file system\nrw\n"
    );
    lab.assert_gone(&id, "", &before);
    // The default config's: /proc/keys masked (this kernel has no
    // /proc/kcore), /proc/sys read-only.
    assert!(Path::new("/proc/keys").exists());
    let out = run_in(
        &lab,
        &[
            "sh",
            "-c",
            "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/ns_last_pid",
        ],
        |_| {},
    );
    assert_eq!(out.stdout, "0\n", "{out:?}");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
}

#[test]
fn field_bind_mount_read_only() {
    if !root() {
        return;
    }
    let lab = Lab::new("bind");
    let share = lab.dir.join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("hello"), "hi from the host\n").unwrap();
    let source = share.to_str().unwrap().to_owned();
    let out = run_in(
        &lab,
        &["sh", "-c", "cat /mnt/share/hello; touch /mnt/share/x 2>&1"],
        |c| {
            c["root"]["readonly"] = json!(false);
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt/share", "type": "bind", "source": source,
                "options": ["rbind", "ro", "nosuid", "nodev"]
            }));
        },
    );
    assert_eq!(
        out.stdout, "hi from the host\ntouch: /mnt/share/x: Read-only file system\n",
        "{out:?}"
    );
    assert!(!share.join("x").exists());
}

#[test]
fn field_tmpfs_mount() {
    if !root() {
        return;
    }
    let out = run_config(
        &[
            "sh",
            "-c",
            "grep ' /run ' /proc/self/mounts; touch /run/x && echo written",
        ],
        |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/run", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "size=1m", "mode=1770"]
            }));
        },
    );
    assert_eq!(
        stdout_of(&out),
        "tmpfs /run tmpfs rw,nosuid,nodev,relatime,size=1024k,mode=1770 0 0\nwritten\n"
    );
}

/// `linux.devices` as podman's `--device /dev/fuse` writes it: the node
/// is made with its mode, and the allow list lets it be opened, while a
/// node the container makes itself (it may: mknod is allowed for any
/// node, as docker allows it) cannot be opened.
#[test]
fn field_devices() {
    if !root() {
        return;
    }
    let script = "stat -c '%A %t:%T' /dev/fuse; \
                  (exec 3<>/dev/fuse) 2>/dev/null && echo fuse opened; \
                  mknod /dev/lc c 10 237 && (exec 3</dev/lc) 2>&1 | grep -o 'Operation not permitted'";
    let out = run_config(&["sh", "-c", script], |c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
            "fileMode": 0o20620, "uid": 0, "gid": 0
        }]);
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}));
    });
    assert_eq!(
        stdout_of(&out),
        "crw--w---- a:e5\nfuse opened\nOperation not permitted\n"
    );
}

#[test]
fn field_sysctl_of_the_network_namespace() {
    if !root() {
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let out = run_config(&["cat", "/proc/sys/net/ipv4/ping_group_range"], |c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "100 200"});
    });
    assert_eq!(stdout_of(&out), "100\t200\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap(),
        host,
        "the host's changed"
    );
}

#[test]
fn field_oom_score_adj() {
    if !root() {
        return;
    }
    let out = run_config(&["cat", "/proc/self/oom_score_adj"], |c| {
        c["process"]["oomScoreAdj"] = json!(500)
    });
    assert_eq!(stdout_of(&out), "500\n");
}

#[test]
fn field_memory_and_pids_limits() {
    if !root() {
        return;
    }
    let out = run_config(&["probe", "cgroup"], |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        c["linux"]["resources"]["pids"] = json!({"limit": 20});
    });
    let text = stdout_of(&out);
    assert!(text.contains("memory limit: 64 MiB\n"), "{text}");
    assert!(text.contains("pids limit: 20\n"), "{text}");
}

/// A profile of the config's own: everything allowed but keyctl(2).
fn keyctl_profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })
}

#[test]
fn field_seccomp_from_the_config() {
    if !root() {
        return;
    }
    let lab = Lab::new("seccomp");
    let with = run_in(&lab, &["probe", "attempt", "keyctl", "personality"], |c| {
        c["linux"]["seccomp"] = keyctl_profile()
    });
    assert_eq!(
        common::attempts(&common::Run::new(
            "ch12-oci",
            &[],
            with.code,
            with.stdout.as_bytes(),
            with.stderr.as_bytes()
        )),
        [
            (
                "keyctl".to_owned(),
                "EPERM (Operation not permitted)".to_owned()
            ),
            ("personality".to_owned(), "ok".to_owned()),
        ]
    );
    let without = run_in(&lab, &["probe", "attempt", "keyctl"], |_| {});
    assert_eq!(stdout_of(&without), "keyctl: ok\n");
}

#[test]
fn field_user_namespace_with_mappings() {
    if !root() {
        return;
    }
    let out = run_config(
        &[
            "sh",
            "-c",
            "probe identity userns; cat /proc/self/uid_map /proc/self/gid_map",
        ],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user"}));
            c["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
            c["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
        },
    );
    let text = stdout_of(&out);
    assert!(text.contains("\nuid: 0\ngid: 0\n"), "{text}");
    let maps: Vec<Vec<&str>> = text
        .lines()
        .rev()
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        maps,
        [vec!["0", "300000", "65536"], vec!["0", "200000", "65536"]],
        "{text}"
    );
    assert!(!text.contains("is root on the host"), "{text}");
}

/// Each hook appends its name and its stdin (the state) to one file:
/// the order they ran in, and what each was told. `startContainer` runs
/// in the container, after pivot_root(2): it reaches the file through a
/// bind mount, and its /bin/sh is the container's (a marker file in the
/// rootfs shows which /bin/sh ran it).
#[test]
fn field_hooks_in_order_with_the_state() {
    if !root() {
        return;
    }
    let lab = Lab::new("hooks");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let shared = lab.dir.join("hooks");
    std::fs::create_dir(&shared).unwrap();
    let hook_at = |kind: &str, log: &str| {
        let script = format!(
            "printf '{kind} ' >> {log}; cat >> {log}; echo >> {log}; \
             test -e /in-the-rootfs && echo {kind} >> {log}.inside; true"
        );
        json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
    };
    let log = shared.join("hooks.log");
    let hook = |kind: &str| hook_at(kind, log.to_str().unwrap());
    let bundle = lab.bundle(&["sh", "-c", "echo started; exec sleep 1000"], |c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "createContainer": [hook("createContainer")],
            "startContainer": [hook_at("startContainer", "/hooks/hooks.log")],
            "poststart": [hook("poststart")],
            "poststop": [hook("poststop")],
        });
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/hooks", "type": "bind",
            "source": shared, "options": ["rbind", "rw"],
        }));
    });
    std::fs::write(bundle.join("rootfs/in-the-rootfs"), "").unwrap();
    let create = lab.oci(&id, &["create", "--bundle", bundle.to_str().unwrap(), &id]);
    create.ok("create");
    let record = lab.record(&id);
    let pid = lab.state(CH12, &id).unwrap()["pid"].clone();
    lab.oci(&id, &["start", &id]).ok("start");
    wait_for("started", || create.output() == "started\n");
    lab.oci(&id, &["kill", &id, "KILL"]).ok("kill");
    lab.wait_status(CH12, &id, "stopped");
    lab.oci(&id, &["delete", &id]).ok("delete");
    lab.assert_gone(&id, &record, &before);

    let inside = std::fs::read_to_string(shared.join("hooks.log.inside")).unwrap();
    assert_eq!(inside, "startContainer\n", "hooks that ran in the rootfs");
    let text = std::fs::read_to_string(&log).unwrap();
    let ran: Vec<(&str, Value)> = text
        .lines()
        .map(|l| {
            let (kind, json) = l.split_once(' ').unwrap();
            (
                kind,
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{l}: {e}")),
            )
        })
        .collect();
    let kinds: Vec<&str> = ran.iter().map(|(k, _)| *k).collect();
    // The runtime spec's states: the hooks of create run while it is
    // "creating", as runc 1.1.5 tells them; startContainer's while it is
    // still "created"; poststart's once start has let it go (runc says
    // "created" there, chapter 12 "running": either is taken), poststop's
    // once it has stopped (runc leaves the pid out). The hooks run in the
    // container get its pid as the container sees it: 1.
    let want: [(&str, &[&str]); 6] = [
        ("prestart", &["creating"]),
        ("createRuntime", &["creating"]),
        ("createContainer", &["creating"]),
        ("startContainer", &["created"]),
        ("poststart", &["created", "running"]),
        ("poststop", &["stopped"]),
    ];
    let want_kinds: Vec<&str> = want.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, want_kinds, "{text}");
    for ((kind, state), (_, status)) in ran.iter().zip(want) {
        assert_eq!(s(&state["id"]), id, "{kind}: {state}");
        assert!(status.contains(&s(&state["status"])), "{kind}: {state}");
        assert_eq!(
            s(&state["bundle"]),
            bundle.to_str().unwrap(),
            "{kind}: {state}"
        );
        match *kind {
            "poststop" => {}
            "createContainer" | "startContainer" => {
                assert_eq!(state["pid"], 1, "{kind}: {state}")
            }
            _ => assert_eq!(state["pid"], pid, "{kind}: {state}"),
        }
    }
}

/// The spec: a startContainer hook that fails is an error of `start`,
/// and the container stops (its command never runs).
#[test]
fn a_failing_start_container_hook_fails_start() {
    if !root() {
        return;
    }
    let lab = Lab::new("hook-fails");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sh", "-c", "echo the command ran"], |c| {
        c["hooks"] = json!({
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}],
        });
    });
    let create = lab.oci(&id, &["create", "--bundle", bundle.to_str().unwrap(), &id]);
    create.ok("create");
    let record = lab.record(&id);
    let start = lab.oci(&id, &["start", &id]);
    assert_eq!(start.code, 125, "{start:?}");
    assert!(
        start
            .stderr
            .contains("failed before its execve(2), in a startContainer hook"),
        "{}",
        start.stderr
    );
    lab.wait_status(CH12, &id, "stopped");
    assert!(
        !create.output().contains("the command ran"),
        "{}",
        create.output()
    );
    lab.oci(&id, &["delete", &id]).ok("delete");
    lab.assert_gone(&id, &record, &before);
}

/// A hook that outlives its `timeout` is killed, with what it started,
/// and `create` fails saying so, leaving nothing.
#[test]
fn a_hook_past_its_timeout_is_killed() {
    if !root() {
        return;
    }
    let lab = Lab::new("hook-timeout");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let marker = format!("stepbox-hook-{id}");
    // The inner shell, which names the marker, stays as long as its sleep.
    let script = format!("sh -c 'sleep 1000; : {marker}' & wait");
    let bundle = lab.bundle(&["true"], |c| {
        c["hooks"] = json!({
            "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 1}],
        });
    });
    let started = std::time::Instant::now();
    let create = lab.oci(&id, &["create", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(create.code, 125, "{create:?}");
    assert!(
        create
            .stderr
            .contains("createRuntime hook /bin/sh: still running after its timeout of 1 s: killed"),
        "{}",
        create.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    wait_for("the hook's sleep to go", || {
        processes_with(&marker).is_empty()
    });
    lab.assert_gone(&id, "", &before);
}

// ---------------------------------------------------------------------
// 6. The same bundles under runc and crun
// ---------------------------------------------------------------------

/// Whether `program` runs (`--version`): Debian's runc and crun, which
/// scripts/install-deps.sh installs.
fn installed(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        || common::skip(&format!(
            "no {program}: the differential tests need it (scripts/install-deps.sh)"
        ))
}

/// crun 1.8.1 refuses a hybrid host whose cgroup2 hierarchy holds a
/// controller ("cgroups in hybrid mode not supported, drop all controllers
/// from cgroupv2"); here that is hugetlb, the one controller no v1
/// hierarchy has. Mounting a v1 hugetlb hierarchy moves it there, for the
/// whole machine: this process holds such a mount in a mount namespace of
/// its own (so that no host mount list sees it), for as long as it runs.
/// When it ends (dropped, or the test process killed: its stdin closes),
/// the namespace goes with its mount, the hierarchy has no cgroup left,
/// and the kernel hands hugetlb back to cgroup2.
struct HugetlbV1 {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl HugetlbV1 {
    /// Declared before the test's `Lab`, so that it is dropped after it:
    /// the lab's `crun delete --force` needs it too.
    fn hold() -> Option<HugetlbV1> {
        let dir = Path::new(common::SCRATCH).join(format!("hugetlb-{}", common::unique_id()));
        let controllers = "/sys/fs/cgroup/unified/cgroup.controllers";
        // Not a hybrid host: nothing to move.
        let held = std::fs::read_to_string(controllers).ok()?;
        // Another test's hold may have moved it already: this one mounts
        // all the same (the mount joins the same hierarchy), so that crun
        // keeps running here when that test ends first.
        assert!(
            matches!(held.trim(), "" | "hugetlb"),
            "{controllers}: {held:?}: more than hugetlb to move"
        );
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "mount -t cgroup -o hugetlb stepbox-hugetlb {} && echo ready && read x",
            dir.display()
        );
        let mut child = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("unshare(1)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        if line != "ready\n" {
            let out = child.wait_with_output().unwrap();
            panic!(
                "mounting a v1 hugetlb hierarchy: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        wait_for("hugetlb to leave cgroup2", || {
            std::fs::read_to_string(controllers).is_ok_and(|c| c.trim().is_empty())
        });
        Some(HugetlbV1 { child, dir })
    }
}

impl Drop for HugetlbV1 {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// What every container of the comparison reports, one section a line
/// group: the probe's sections, a few attempts, limits, writes, masked
/// paths, its mounts (point, type, and the flags that matter), its
/// environment.
const REPORT: &str = "probe identity ns proc net ipc fs cgroup caps userns; \
echo '# attempts'; probe attempt keyctl mknod raw-socket unshare; \
echo '# limits'; ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj; \
echo '# writes'; touch /x 2>&1 && echo '/ is writable'; touch /mnt/share/x 2>&1; \
echo '# masked'; wc -c < /proc/keys; ls -A /home; \
echo '# mounts'; awk '{f=\",\"$4\",\"; s=\"rw\"; if (f ~ /,ro,/) s=\"ro\"; \
if (f ~ /,nosuid,/) s=s\",nosuid\"; if (f ~ /,nodev,/) s=s\",nodev\"; \
if (f ~ /,noexec,/) s=s\",noexec\"; print $2, $3, s}' /proc/self/mounts | sort; \
echo '# env'; env | sort";

/// The configurations compared: the spec's default, and one field each.
type Edit = Box<dyn Fn(&mut Value)>;

fn differential_configs(share: &Path, netns: &str) -> Vec<(&'static str, Edit)> {
    let share = share.to_str().unwrap().to_owned();
    let netns = netns.to_owned();
    vec![
        ("default", Box::new(|_: &mut Value| {})),
        (
            "a joined network namespace",
            Box::new(move |c: &mut Value| join_namespace(c, "network", &netns)),
        ),
        (
            "writable root",
            Box::new(|c: &mut Value| c["root"]["readonly"] = json!(false)),
        ),
        (
            "user",
            Box::new(|c: &mut Value| {
                c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [20, 30]})
            }),
        ),
        (
            "capabilities",
            Box::new(|c: &mut Value| {
                for set in ["bounding", "effective", "permitted"] {
                    c["process"]["capabilities"][set] =
                        json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"]);
                }
            }),
        ),
        (
            "masked paths",
            Box::new(|c: &mut Value| {
                c["linux"]["maskedPaths"] = json!(["/proc/keys", "/home", "/etc/group"]);
                c["linux"]["readonlyPaths"] = json!(["/proc/sys", "/tmp"]);
            }),
        ),
        (
            "rlimits",
            Box::new(|c: &mut Value| {
                c["process"]["rlimits"] = json!([
                    {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
                    {"type": "RLIMIT_NPROC", "soft": 111, "hard": 222},
                ]);
                c["process"]["oomScoreAdj"] = json!(300);
            }),
        ),
        (
            "hostname",
            Box::new(|c: &mut Value| c["hostname"] = json!("other-name")),
        ),
        (
            "mounts",
            Box::new(move |c: &mut Value| {
                c["root"]["readonly"] = json!(false);
                let mounts = c["mounts"].as_array_mut().unwrap();
                mounts.push(json!({
                    "destination": "/mnt/share", "type": "bind", "source": share,
                    "options": ["rbind", "ro", "nosuid", "nodev"]
                }));
                mounts.push(json!({
                    "destination": "/run", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"]
                }));
            }),
        ),
        (
            "seccomp",
            Box::new(|c: &mut Value| c["linux"]["seccomp"] = keyctl_profile()),
        ),
    ]
}

/// A report with what differs on purpose between chapter 12 and the
/// others taken out, each for the reason its comment gives. `paths`:
/// the config's masked and read-only paths.
fn comparable(rt: Rt, report: &str, paths: &ConfigPaths) -> String {
    let mut out = Vec::new();
    let mut section = "";
    for line in report.lines() {
        if let Some(name) = line.strip_prefix("# ") {
            section = name;
        }
        // The probe's own pid: runc's init is a Go program whose threads
        // took the container's first pids before it exec'd the command.
        if section == "identity" && (line.starts_with("pid: ") || line.starts_with("ppid: "))
            || section == "processes" && line.starts_with("/proc/self: ")
        {
            let (key, rest) = line.split_once(": ").unwrap();
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            out.push(format!("{key}: N{rest}"));
            continue;
        }
        // The probe's count of mounts: chapter 7 mounts the hierarchies of
        // the controllers it uses in /sys/fs/cgroup, runc and crun every
        // one; the `# mounts` section compares the rest line by line.
        if section == "filesystem" && line.starts_with("mounts: ") {
            out.push("mounts: N".to_owned());
            continue;
        }
        if section == "mounts" {
            let words: Vec<&str> = line.split(' ').collect();
            let (point, fstype) = (words[0], words.get(1).copied().unwrap_or(""));
            // /sys/fs/cgroup: the tmpfs is read-only under chapter 12, as
            // the config's "ro" asks; runc 1.1.5 and crun 1.8.1 leave it
            // writable (their cgroup mounts in it are read-only). And the
            // hierarchies in it: see the count above.
            if point.starts_with("/sys/fs/cgroup") {
                continue;
            }
            // /: a bind of the bundle's rootfs, which keeps the flags of the
            // host's mount it lives on (nosuid,nodev for a tmpfs /tmp) under
            // runc and chapter 12; crun 1.8.1 clears them. Where the bundle
            // is, not the runtime: only rw or ro is compared.
            // The same for a read-only path outside /proc: a bind of a
            // directory of the rootfs, with the flags of the rootfs's bind.
            let read_only_path = paths.readonly.iter().any(|r| r == point);
            if point == "/" || (read_only_path && fstype != "proc") {
                let ro = words.get(2).and_then(|w| w.split(',').next()).unwrap_or("");
                out.push(format!("{point} {fstype} {ro}"));
                continue;
            }
            // /proc and the read-only binds in it: chapter 5 mounts proc
            // nosuid,nodev,noexec whatever the config's options (none in
            // runc's default): stricter than asked, on purpose.
            if fstype == "proc" {
                let ro = words[2].split(',').next().unwrap();
                out.push(format!("{point} proc {ro}"));
                continue;
            }
            // A masked file is a bind of a /dev/null: crun's is the host's
            // (devtmpfs, read-only), runc's and chapter 12's the
            // container's (on its /dev tmpfs). Either reads as empty.
            if paths.masked.iter().any(|m| m == point) {
                out.push(format!("{point} masked"));
                continue;
            }
        }
        // HOSTNAME: chapter 6 sets it, as docker does; runc and crun do not.
        if section == "env" && rt == Rt::Ch12 && line.starts_with("HOSTNAME=") {
            continue;
        }
        // HOME for a user without a passwd entry: runc and chapter 12 say
        // "/", crun 1.8.1 sets none.
        if section == "env" && line == "HOME=/" {
            continue;
        }
        out.push(line.to_owned());
    }
    out.join("\n") + "\n"
}

/// `RT --root ROOT run --bundle B ID` of the report, in a bundle of its
/// own; and the config's masked and read-only paths.
fn report_under(lab: &Lab, rt: Rt, edit: &dyn Fn(&mut Value)) -> (lab::Out, ConfigPaths) {
    let id = lab.id(rt);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sh", "-c", REPORT], |c| edit(c));
    std::fs::create_dir_all(bundle.join("rootfs/mnt/share")).unwrap();
    let out = lab.cmd(rt, &id, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    if rt == CH12 {
        assert_eq!(lab.records_in_root(), Vec::<String>::new());
    }
    assert_eq!(
        HostState::capture(&id),
        before,
        "{} changed the host",
        rt.name()
    );
    let config = read_config(&bundle);
    let list = |key: &str| {
        config["linux"][key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| s(m).to_owned())
            .collect()
    };
    let paths = ConfigPaths {
        masked: list("maskedPaths"),
        readonly: list("readonlyPaths"),
    };
    (out, paths)
}

/// A config's `maskedPaths` and `readonlyPaths`.
struct ConfigPaths {
    masked: Vec<String>,
    readonly: Vec<String>,
}

/// A network namespace for the runtimes to join, with interfaces of its
/// own (`diff0`, `diff1`) and `lo` up, so that joining it shows: a process
/// that holds it, killed when the test ends, panicking or not.
struct NetnsHolder(std::process::Child);

impl NetnsHolder {
    fn start(lab: &Lab) -> NetnsHolder {
        let ready = lab.dir.join("netns-ready");
        let script = format!(
            "ip link add diff0 type veth peer name diff1 && ip link set lo up && touch {} && \
             exec sleep 1000",
            ready.display()
        );
        let child = std::process::Command::new("unshare")
            .args(["--net", "sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("unshare(1)");
        let holder = NetnsHolder(child);
        let pid = holder.0.id();
        wait_for("the network namespace to hold", || {
            ready.exists() || !alive(pid as i32)
        });
        assert!(ready.exists(), "the network namespace's setup failed");
        holder
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.0.id())
    }
}

impl Drop for NetnsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The runtimes to compare chapter 12 with, and what keeps crun running.
fn references() -> (Vec<Rt>, Option<HugetlbV1>) {
    let mut rts = Vec::new();
    if installed("runc") {
        rts.push(Rt::Runc);
    }
    let hugetlb = match installed("crun") {
        true => {
            rts.push(Rt::Crun);
            HugetlbV1::hold()
        }
        false => None,
    };
    (rts, hugetlb)
}

#[test]
fn differential_the_container_seen_from_inside() {
    if !root() {
        return;
    }
    let (others, _hugetlb) = references();
    let lab = Lab::new("diff");
    let share = lab.dir.join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::write(share.join("hello"), "hi\n").unwrap();
    // A difference, and the configs and runtimes it was seen with.
    let mut differences: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen = |what: String, with: String| match differences.iter_mut().find(|d| d.0 == what) {
        Some(d) => d.1.push(with),
        None => differences.push((what, vec![with])),
    };
    let holder = NetnsHolder::start(&lab);
    for (name, edit) in differential_configs(&share, &holder.path()) {
        let (ours, paths) = report_under(&lab, CH12, &*edit);
        let ours_text = comparable(CH12, &ours.stdout, &paths);
        for &rt in &others {
            let (theirs, _) = report_under(&lab, rt, &*edit);
            let with = format!("{name} ({})", rt.name());
            if theirs.code != ours.code {
                seen(
                    format!(
                        "  exit status {} under ch12-oci, {} under {} ({})\n",
                        ours.code,
                        theirs.code,
                        rt.name(),
                        theirs.stderr.trim()
                    ),
                    with.clone(),
                );
            }
            let theirs_text = comparable(rt, &theirs.stdout, &paths);
            if theirs_text != ours_text {
                seen(diff(&ours_text, &theirs_text), with);
            }
        }
    }
    let shown: Vec<String> = differences
        .iter()
        .map(|(what, with)| {
            format!(
                "ch12-oci (-) and the others (+) differ in {}:\n{what}",
                with.join(", ")
            )
        })
        .collect();
    assert!(shown.is_empty(), "{}", shown.join("\n"));
}

/// The lines only one of `a` and `b` has, as `-` (a's) and `+` (b's), in
/// order: enough to read a difference of reports.
fn diff(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence, then the walk.
    let mut l = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            l[i][j] = match a[i] == b[j] {
                true => l[i + 1][j + 1] + 1,
                false => l[i + 1][j].max(l[i][j + 1]),
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || l[i][j + 1] >= l[i + 1][j]) {
            out.push_str(&format!("  + {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("  - {}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// The lifecycle as an engine sees it, under each runtime: the keys of
/// `state` and the statuses it says, and which refusals are refusals
/// (their exit statuses differ: 125 here, 1 in runc and crun).
#[test]
fn differential_the_lifecycle_seen_from_outside() {
    if !root() {
        return;
    }
    let (others, _hugetlb) = references();
    let lab = Lab::new("difflife");
    let ours = lifecycle_under(&lab, CH12);
    for rt in others {
        let theirs = lifecycle_under(&lab, rt);
        assert_eq!(ours, theirs, "ch12-oci (left) and {} (right)", rt.name());
    }
}

/// (step, what it showed) for one container's life under `rt`.
fn lifecycle_under(lab: &Lab, rt: Rt) -> Vec<(&'static str, String)> {
    let id = lab.id(rt);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sh", "-c", "echo started; exec sleep 1000"], |_| {});
    let b = bundle.to_str().unwrap();
    let mut seen = Vec::new();
    let code = |out: &lab::Out| match out.code {
        0 => "ok".to_owned(),
        _ => "refused".to_owned(),
    };
    let state = |step: &'static str, seen: &mut Vec<(&'static str, String)>| {
        let out = lab.cmd(rt, &id, &["state", &id]);
        if out.code != 0 {
            seen.push((step, "refused".to_owned()));
            return;
        }
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let mut keys: Vec<&str> = v
            .as_object()
            .unwrap()
            .iter()
            // runc's and crun's own: the rootfs's path and the owner, and
            // crun's systemd-scope (empty without systemd); chapter 12's
            // state has none of them. And annotations: runc leaves them
            // out when there are none, chapter 12 shows `{}`.
            .filter(|(k, v)| {
                let theirs = matches!(k.as_str(), "rootfs" | "owner" | "systemd-scope");
                let none =
                    k.as_str() == "annotations" && v.as_object().is_some_and(|o| o.is_empty());
                !theirs && !none
            })
            .map(|(k, _)| k.as_str())
            .collect();
        keys.sort();
        let pid = match v["pid"].as_i64() {
            Some(0) | None => "no pid",
            Some(_) => "a pid",
        };
        seen.push((
            step,
            format!("{} {pid} {}", s(&v["status"]), keys.join(",")),
        ));
    };
    let create = lab.cmd(rt, &id, &["create", "--bundle", b, &id]);
    seen.push(("create", code(&create)));
    state("state after create", &mut seen);
    seen.push(("start", code(&lab.cmd(rt, &id, &["start", &id]))));
    wait_for("the command's output", || create.output() == "started\n");
    state("state after start", &mut seen);
    seen.push((
        "start when running",
        code(&lab.cmd(rt, &id, &["start", &id])),
    ));
    seen.push((
        "delete when running",
        code(&lab.cmd(rt, &id, &["delete", &id])),
    ));
    state("state after the refusals", &mut seen);
    seen.push(("kill KILL", code(&lab.cmd(rt, &id, &["kill", &id, "KILL"]))));
    wait_for("stopped", || {
        let out = lab.cmd(rt, &id, &["state", &id]);
        out.stdout.contains("\"stopped\"")
    });
    state("state after kill", &mut seen);
    seen.push((
        "kill when stopped",
        code(&lab.cmd(rt, &id, &["kill", &id, "KILL"])),
    ));
    seen.push((
        "start when stopped",
        code(&lab.cmd(rt, &id, &["start", &id])),
    ));
    seen.push(("delete", code(&lab.cmd(rt, &id, &["delete", &id]))));
    state("state after delete", &mut seen);
    seen.push(("delete again", code(&lab.cmd(rt, &id, &["delete", &id]))));
    seen.push((
        "delete --force again",
        code(&lab.cmd(rt, &id, &["delete", "--force", &id])),
    ));
    assert_eq!(
        HostState::capture(&id),
        before,
        "{} changed the host",
        rt.name()
    );
    seen
}

/// A container that runs until it is killed, started; with its pid.
fn started(lab: &Lab, id: &str, edit: impl FnOnce(&mut Value)) -> i32 {
    let bundle = lab.bundle(&["sleep", "1000"], edit);
    lab.oci(id, &["create", "--bundle", bundle.to_str().unwrap(), id])
        .ok("create");
    lab.oci(id, &["start", id]).ok("start");
    lab.state(CH12, id).unwrap()["pid"].as_i64().unwrap() as i32
}

fn ns_of(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// exec: a new process in every namespace of the container and its cgroup,
/// with the config's privileges; its status passes through; --detach
/// leaves it running, and delete --force takes it too.
#[test]
fn exec_joins_the_container() {
    if !root() {
        return;
    }
    let lab = Lab::new("exec");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let pid = started(&lab, &id, |_| {});
    let script = "for n in mnt pid net ipc uts; do readlink /proc/self/ns/$n; done; \
                  grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /proc/self/cgroup";
    let out = lab.oci(&id, &["exec", &id, "sh", "-c", script]);
    out.ok("exec");
    for (i, ns) in ["mnt", "pid", "net", "ipc", "uts"].iter().enumerate() {
        assert_eq!(
            out.stdout.lines().nth(i),
            Some(ns_of(&pid.to_string(), ns).as_str()),
            "{ns}: {}",
            out.stdout
        );
        assert_ne!(ns_of(&pid.to_string(), ns), ns_of("self", ns));
    }
    let first = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for key in ["CapEff", "NoNewPrivs"] {
        let line = |text: &str| text.lines().find(|l| l.starts_with(key)).map(str::to_owned);
        assert_eq!(line(&out.stdout), line(&first), "{key}");
    }
    let status = lab.oci(&id, &["exec", &id, "sh", "-c", "exit 7"]);
    assert_eq!(status.code, 7, "{}", status.stderr);
    let pid_file = lab.dir.join("exec.pid");
    lab.oci(
        &id,
        &[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "1000",
        ],
    )
    .ok("exec --detach");
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(exec_pid), "the detached exec runs");
    // Every hierarchy's cgroup (v1) or the one (v2): the container's own,
    // seen from the host.
    let cgroups = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroups(pid).contains("/stepbox-"),
        "the container has a cgroup of its own: {}",
        cgroups(pid)
    );
    assert_eq!(cgroups(exec_pid), cgroups(pid), "exec joins the cgroups");
    let procs = lab.oci(&id, &["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_str(&procs.stdout).unwrap();
    assert!(
        pids.contains(&pid) && pids.contains(&exec_pid),
        "ps: {pids:?}"
    );
    let record = lab.record(&id);
    lab.oci(&id, &["delete", "--force", &id])
        .ok("delete --force");
    wait_for("the exec'd process to go", || !alive(exec_pid));
    lab.assert_gone(&id, &record, &before);
}

/// pause freezes every process; state says paused; a signal waits for
/// resume; update changes a limit the container sees; events --stats
/// reports its usage.
#[test]
fn pause_resume_update_and_stats() {
    if !root() {
        return;
    }
    let lab = Lab::new("pause");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let pid = started(&lab, &id, |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    });
    lab.oci(&id, &["pause", &id]).ok("pause");
    assert_eq!(lab.status(CH12, &id), "paused");
    let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let frozen = state.lines().find(|l| l.starts_with("State:")).unwrap();
    assert!(!frozen.contains("R (running)"), "{frozen}");
    assert!(lab.oci(&id, &["pause", &id]).code != 0, "pause twice");
    lab.oci(&id, &["resume", &id]).ok("resume");
    assert_eq!(lab.status(CH12, &id), "running");
    assert!(
        lab.oci(&id, &["resume", &id]).code != 0,
        "resume a running one"
    );
    let limit = |lab: &Lab| {
        let out = lab.oci(
            &id,
            &[
                "exec",
                &id,
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes \
                                        /sys/fs/cgroup/memory.max 2>/dev/null",
            ],
        );
        out.stdout.trim().to_owned()
    };
    assert_eq!(limit(&lab), "67108864");
    lab.oci(&id, &["update", "--memory", "134217728", &id])
        .ok("update");
    assert_eq!(limit(&lab), "134217728");
    let stats = lab.oci(&id, &["events", "--stats", &id]);
    stats.ok("events --stats");
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(stats["type"], "stats");
    assert!(stats["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(stats["data"]["pids"]["current"].as_u64().unwrap() >= 1);
    let record = lab.record(&id);
    lab.oci(&id, &["delete", "--force", &id])
        .ok("delete --force");
    lab.assert_gone(&id, &record, &before);
}

/// events without --stats: a stats line at once (the listener is then
/// registered, so the container may start), an `oom` line when the
/// container's memory cgroup runs out, and the end, status 0, when its
/// process has gone; on v1 through an eventfd, on v2 through memory.events.
#[test]
fn events_report_an_oom_and_end_with_the_container() {
    use std::io::BufRead;
    use std::time::Duration;
    if !root() {
        return;
    }
    let lab = Lab::new("events");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    // The transcript, built as it happens; in a live demo (`cargo xtask
    // demo 12`) each part is shown when it happens.
    let mut shown = String::new();
    let mut show = |text: String| {
        if let Some(d) = common::demo::get() {
            d.output(text.as_bytes());
        }
        shown.push_str(&text);
    };
    // The shell alone, doubling a string towards 64 MiB (tests/cgroups.rs).
    let hog = "x=x; for i in $(seq 26); do x=$x$x; done; echo survived";
    let bundle = lab.bundle(&["sh", "-c", hog], |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 16 << 20});
    });
    show("$ ch12-oci create --bundle BUNDLE ID\n".into());
    lab.oci(&id, &["create", "--bundle", bundle.to_str().unwrap(), &id])
        .ok("create");
    // An interval far longer than the test: every stats line but the
    // first would be one the test did not ask for.
    show("$ ch12-oci events --interval 1h ID &\n".into());
    let mut events = lab.command(CH12, &id, &["events", "--interval", "1h", &id]);
    events.cmd.stdout(std::process::Stdio::piped());
    let mut child = events.cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(60));
    let first: Value = serde_json::from_str(&next().expect("the first stats line")).unwrap();
    assert_eq!(first["type"], "stats", "{first}");
    assert_eq!(first["id"], id.as_str(), "{first}");
    // The stats' numbers differ from run to run: the book shows the keys.
    let data: Vec<String> = first["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| format!("\"{k}\":…"))
        .collect();
    show(format!(
        "{{\"type\":\"stats\",\"id\":\"ID\",\"data\":{{{}}}}}\n",
        data.join(",")
    ));
    show("$ ch12-oci start ID\n".into());
    lab.oci(&id, &["start", &id]).ok("start");
    let oom = next().expect("an oom line");
    assert_eq!(oom, format!(r#"{{"type":"oom","id":"{id}"}}"#));
    show(format!("{}\n", oom.replace(id.as_str(), "ID")));
    // The reader's end: events has exited.
    match next() {
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {}
        Err(e) => panic!("events did not end: {e}"),
        Ok(line) => panic!("events said more: {line}"),
    }
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&events.err).unwrap();
    assert!(status.success(), "events: {status}: {err}");
    show(format!(
        "[events: exit status {}]\n",
        status.code().unwrap()
    ));
    let state = lab.state(CH12, &id).unwrap();
    assert_eq!(state["status"], "stopped", "{state}");
    // A stopped container has no events to follow.
    let late = lab.oci(&id, &["events", &id]);
    assert_eq!(late.code, 125, "{}", late.stderr);
    assert_eq!(
        late.stderr.trim(),
        format!("ch12-oci: container {id} is not running")
    );
    let record = lab.record(&id);
    lab.oci(&id, &["delete", &id]).ok("delete");
    lab.assert_gone(&id, &record, &before);
    snapshot!("events_oom", shown);
}

/// process.terminal with --console-socket: the runtime sends the
/// terminal's master over the socket; the command's stdio is the slave,
/// its controlling terminal; create returns while start is to come.
#[test]
fn a_terminal_through_the_console_socket() {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    if !root() {
        return;
    }
    let lab = Lab::new("tty");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(
        &["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo a terminal"],
        |c| c["process"]["terminal"] = json!(true),
    );
    let socket = lab.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let create = lab.oci(
        &id,
        &[
            "create",
            "--console-socket",
            socket.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
            &id,
        ],
    );
    create.ok("create --console-socket");
    let (conn, _) = listener.accept().unwrap();
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut name = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let msg = nix::sys::socket::recvmsg::<()>(
        std::os::fd::AsRawFd::as_raw_fd(&conn),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("the master, with SCM_RIGHTS");
    // SAFETY: the kernel just installed this descriptor for us (SCM_RIGHTS).
    let mut master = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    lab.oci(&id, &["start", &id]).ok("start");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    // The reader ends at EIO once the command, the slave's last holder, exits.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen).replace("\r\n", "\n");
    assert!(seen.starts_with("/dev/pts/"), "{seen}");
    assert!(seen.ends_with("a terminal\n"), "{seen}");
    lab.wait_status(CH12, &id, "stopped");
    let record = lab.record(&id);
    lab.oci(&id, &["delete", &id]).ok("delete");
    lab.assert_gone(&id, &record, &before);
}

/// --preserve-fds 1: descriptor 3 reaches the command.
#[test]
fn preserve_fds_passes_descriptors_on() {
    use std::os::unix::process::CommandExt;
    if !root() {
        return;
    }
    let lab = Lab::new("fds");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["sh", "-c", "cat <&3"], |_| {});
    let input = lab.dir.join("input");
    std::fs::write(&input, "through fd 3\n").unwrap();
    let file = std::fs::File::open(&input).unwrap();
    let mut cmd = lab.command(
        CH12,
        &id,
        &[
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            bundle.to_str().unwrap(),
            &id,
        ],
    );
    let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
    // dup2 onto 3 clears close-on-exec, but not when the file is 3
    // already: F_SETFD does it then.
    // SAFETY: dup2(2) and fcntl(2) in the child before exec, on an open descriptor.
    unsafe {
        cmd.cmd.pre_exec(move || {
            if libc::dup2(raw, 3) == -1 || libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let out = lab.finish(cmd);
    assert_eq!(stdout_of(&out), "through fd 3\n");
    lab.assert_gone(&id, "", &before);
}

/// The config's namespace of `kind` given by `path`, to be joined.
fn join_namespace(c: &mut Value, kind: &str, path: &str) {
    for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == kind {
            n["path"] = json!(path);
        }
    }
}

/// A namespace given by path is joined, not made.
#[test]
fn a_network_namespace_by_path_is_joined() {
    if !root() {
        return;
    }
    let lab = Lab::new("netns");
    let id = lab.id(CH12);
    let other = lab.id(CH12);
    let before = HostState::capture(&id);
    let pid = started(&lab, &other, |_| {});
    let path = format!("/proc/{pid}/ns/net");
    let bundle = lab.bundle(&["readlink", "/proc/self/ns/net"], |c| {
        join_namespace(c, "network", &path)
    });
    let out = lab.oci(&id, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(stdout_of(&out).trim(), ns_of(&pid.to_string(), "net"));
    let record = lab.record(&other);
    lab.oci(&other, &["delete", "--force", &other]).ok("delete");
    lab.assert_gone(&other, &record, &before);
}

/// A user namespace given by path (podman's `--userns ns:PATH`, a pod's
/// shared one) is joined: the container's other namespaces are made in
/// it, its root is the namespace's root; maps the config gives with it
/// must be the namespace's, or create fails saying so.
#[test]
fn a_user_namespace_by_path_is_joined() {
    if !root() {
        return;
    }
    let lab = Lab::new("userns-join");
    let id = lab.id(CH12);
    let other = lab.id(CH12);
    let before = HostState::capture(&id);
    let maps = |c: &mut Value, uid: u32| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    };
    let pid = started(&lab, &other, |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        maps(c, 200000);
    });
    let path = format!("/proc/{pid}/ns/user");
    let joining = |uid: u32| {
        move |c: &mut Value| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
            maps(c, uid);
        }
    };
    let script = "readlink /proc/self/ns/user; readlink /proc/self/ns/pid; id -u; \
                  cat /proc/self/uid_map";
    let bundle = lab.bundle(&["sh", "-c", script], joining(200000));
    let out = lab.oci(&id, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    let lines: Vec<String> = stdout_of(&out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines[0], ns_of(&pid.to_string(), "user"), "{lines:?}");
    assert_ne!(
        lines[1],
        ns_of(&pid.to_string(), "pid"),
        "a pid namespace of its own"
    );
    assert_eq!(lines[2..], ["0", "0 200000 65536"], "{lines:?}");
    assert!(std::path::Path::new(&path).exists());

    let bundle = lab.bundle(&["true"], joining(400000));
    let out = lab.oci(&id, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(
        out.stderr.contains(
            "the joined user namespace's uid_map is \"0 200000 65536\", not the \"0 400000 65536\""
        ),
        "{}",
        out.stderr
    );
    let record = lab.record(&other);
    lab.oci(&other, &["delete", "--force", &other]).ok("delete");
    lab.assert_gone(&other, &record, &before);
}

/// CVE-2019-5736, the attack itself: a descriptor of the container's
/// process's /proc/PID/exe, kept until that process has gone (a running
/// binary cannot be written: ETXTBSY), then opened for writing. The
/// file is the runtime's binary on a read-only mount that is in no one's
/// mount namespace: the write fails with EROFS, and the binary on disk
/// is unchanged.
#[test]
fn the_runtime_binary_cannot_be_written_through_proc_pid_exe() {
    if !root() {
        return;
    }
    let lab = Lab::new("exe");
    let id = lab.id(CH12);
    let before = HostState::capture(&id);
    let bundle = lab.bundle(&["true"], |_| {});
    let pid_file = lab.dir.join("pid");
    lab.oci(
        &id,
        &[
            "create",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
            &id,
        ],
    )
    .ok("create");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let exe = format!("/proc/{}/exe", pid.trim());
    assert_eq!(std::fs::read_link(&exe).unwrap(), ch12_exe());
    let held = nix::fcntl::open(
        exe.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    // SAFETY: open(2) just returned this descriptor; nothing else owns it.
    let held = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(held) };
    let statvfs = nix::sys::statvfs::fstatvfs(&held).unwrap();
    assert!(statvfs
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    let on_disk = std::fs::read(common::bin_dir().join("ch12-oci")).unwrap();
    lab.oci(&id, &["start", &id]).ok("start");
    lab.wait_status(CH12, &id, "stopped");
    let record = lab.record(&id);
    lab.oci(&id, &["delete", &id]).ok("delete");
    let reopened = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(&reopened)
        .expect_err("the runtime's binary opened for writing");
    // EROFS, or ETXTBSY if another test runs ch12-oci at this moment
    // (the kernel checks that first): never a descriptor to write with.
    assert!(
        matches!(e.raw_os_error(), Some(libc::EROFS | libc::ETXTBSY)),
        "{e}"
    );
    assert!(std::fs::read(common::bin_dir().join("ch12-oci")).unwrap() == on_disk);
    lab.assert_gone(&id, &record, &before);
}
