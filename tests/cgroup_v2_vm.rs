//! Chapter 7 on cgroup v2, when the host has v1: runs the `cgroups` test
//! binary inside a throwaway qemu guest with Debian's kernel and the unified
//! hierarchy (scripts/v2vm), with the chapter binaries, the default rootfs,
//! the default image and the snapshots baked in at the same paths as on the
//! host. The tests run from a session scope, as after a systemd login
//! (`run.sh -s`): a cgroup other than the root, holding processes. Chapter
//! 9's device test runs there too, in a guest of its own: on cgroup v2 the
//! device allow list is an eBPF program, which only a v2 kernel runs.
//! Chapter 12's lifecycle, limits and freezer run there too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The test executable `name` (tests/NAME.rs), as cargo built it.
fn test_exe(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "test",
            "--quiet",
            "--test",
            name,
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(common::workspace())
        .output()
        .expect("cargo test --no-run");
    assert!(out.status.success(), "building the {name} tests failed");
    let json = String::from_utf8_lossy(&out.stdout);
    let exe = regex::Regex::new(&format!(
        r#""name":"{name}","src_path":[^\n]*?"executable":"([^"]+)""#
    ))
    .unwrap();
    let found = json
        .lines()
        .find_map(|l| exe.captures(l).map(|c| PathBuf::from(&c[1])));
    found.unwrap_or_else(|| panic!("no executable for the {name} test in cargo's output"))
}

#[test]
fn cgroup_v2_in_a_vm() {
    let bins = ["ch06-uts", "ch07-cgroups", "ch08-overlay"];
    let Some(stdout) = in_a_vm("cgroups", &bins, &[]) else {
        return;
    };
    assert!(
        stdout.contains("test result: ok. 12 passed; 0 failed"),
        "{stdout}"
    );
}

/// Chapter 9's device allow list as an eBPF program attached to the
/// container's cgroup: the verifier accepts it, and it refuses and allows
/// what tests/privileges.rs expects.
#[test]
fn devices_on_cgroup_v2_in_a_vm() {
    let bins = ["ch08-overlay", "ch09-privileges"];
    let test = "only_the_standard_devices_can_be_opened";
    let Some(stdout) = in_a_vm("privileges", &bins, &["--exact", test]) else {
        return;
    };
    assert!(
        stdout.contains("test result: ok. 1 passed; 0 failed"),
        "{stdout}"
    );
}

/// Chapter 10 on Debian's kernel (its seccomp, and chapter 9's device
/// program under the filter). `ch10_system_calls` stays on the host: its
/// transcript shows chapter 9's answers, and Debian's perf_event_paranoid
/// patch answers EACCES where the host's kernel says E2BIG.
#[test]
fn seccomp_in_a_vm() {
    let bins = ["ch09-privileges", "ch10-seccomp"];
    let args = [
        "--skip",
        "ch10_system_calls",
        "--skip",
        "a_small_profile_compiled",
    ];
    let Some(stdout) = in_a_vm("seccomp", &bins, &args) else {
        return;
    };
    assert!(
        stdout.contains("test result: ok. 6 passed; 0 failed"),
        "{stdout}"
    );
}

/// Chapter 12 on cgroup v2: the lifecycle, the limits, `pause` and
/// `resume` (cgroup.freeze), `update`, `events` (an OOM through
/// memory.events), `exec` joining the container's cgroup, and a user
/// namespace, as tests/oci.rs runs them on the host's v1. The engines and the reference runtimes stay on the
/// host (the guest has only busybox).
#[test]
fn oci_on_cgroup_v2_in_a_vm() {
    let bins = ["ch12-oci"];
    let tests = [
        "lifecycle_every_transition_and_every_refusal",
        "delete_force_of_a_running_container",
        "run_passes_the_exit_status_through",
        "field_memory_and_pids_limits",
        "field_user_namespace_with_mappings",
        "field_hooks_in_order_with_the_state",
        "pause_resume_update_and_stats",
        "events_report_an_oom_and_end_with_the_container",
        "exec_joins_the_container",
    ];
    let mut args = vec!["--exact", "--test-threads", "1"];
    args.extend(tests);
    let Some(stdout) = in_a_vm("oci", &bins, &args) else {
        return;
    };
    let want = format!("test result: ok. {} passed; 0 failed", tests.len());
    assert!(stdout.contains(&want), "{stdout}");
}

/// Runs the test binary `name` (with `args`) in the v2 VM, with the
/// chapter binaries `bins`; its output, or None when skipped.
fn in_a_vm(name: &str, bins: &[&str], args: &[&str]) -> Option<String> {
    let mut cmd = vm_command(name, bins, &[])?;
    let exe = test_exe(name);
    cmd.arg("-f").arg(&exe);
    cmd.arg("--").arg(&exe).args(args);
    run_vm(name, cmd)
}

/// scripts/v2vm/run.sh, in a session scope (`-s`), with the chapter
/// binaries `bins`, the default rootfs, image and snapshots and `files`
/// baked in, and the environment the tests expect: the command still to
/// add (`-f` and `--`). None when there is no need or no way to run it.
fn vm_command(name: &str, bins: &[&str], files: &[PathBuf]) -> Option<Command> {
    if !common::root() {
        return None;
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("this host has cgroup v2: the {name} tests already ran on it; no VM needed");
        return None;
    }
    let bin_dir = common::bin_dir();
    let rootfs = common::rootfs();
    let image_layers = xtask::image::ensure().expect("building the default image");
    let image = image_layers[0].parent().unwrap().to_path_buf();
    let snapshots = common::workspace().join("tests/snapshots");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut cmd = Command::new(common::workspace().join("scripts/v2vm/run.sh"));
    cmd.args(["-m", "1024", "-t", "600", "-s"]);
    let baked = [rootfs.to_path_buf(), image.clone(), snapshots];
    for file in baked
        .into_iter()
        .chain(files.iter().cloned())
        .chain(bins.iter().map(|b| bin_dir.join(b)))
    {
        cmd.arg("-f").arg(&file);
    }
    for (var, value) in [
        ("STEPBOX_BIN_DIR", path(bin_dir)),
        ("STEPBOX_ROOTFS", path(rootfs)),
        ("STEPBOX_IMAGE", path(&image)),
        ("STEPBOX_EXPECT_CGROUP", "v2".into()),
        (
            "STEPBOX_EXPECT_SESSION",
            "/user.slice/user-0.slice/session-1.scope".into(),
        ),
        ("CI", "true".into()),
        ("INSTA_UPDATE", "no".into()),
    ] {
        cmd.arg("-e").arg(format!("{var}={value}"));
    }
    cmd.arg("-C").arg(common::workspace());
    Some(cmd)
}

/// Runs `cmd` (from [`vm_command`]); the guest's output, or None when the
/// VM could not be set up (a skip, outside CI).
fn run_vm(name: &str, mut cmd: Command) -> Option<String> {
    let out = cmd.output().expect("running scripts/v2vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    match out.status.code() {
        Some(0) => Some(stdout),
        Some(125) if stderr.contains("setup") && std::env::var("CI").as_deref() != Ok("true") => {
            common::skip(&format!("the v2 VM could not be set up:\n{stderr}"));
            None
        }
        code => {
            panic!("the {name} tests failed in the v2 VM (exit {code:?}):\n{stdout}\n{stderr}")
        }
    }
}

/// What the guest does for [`rootless_delegated_cgroup_in_a_vm`], as root:
/// gives a test user a cgroup subtree as systemd gives `user@UID.service`
/// (the directory and its cgroup.procs, cgroup.subtree_control and
/// cgroup.threads chowned, memory and pids handed down to it and by it),
/// then runs chapter 11 as that user from a leaf of the subtree and from a
/// session scope of root's. Each case starts with a `== NAME` line and
/// ends with `rc=STATUS`; `$SB_UID` is the test user's uid.
const ROOTLESS_SCRIPT: &str = r#"
C=/sys/fs/cgroup U=$SB_UID N=sbrl$SB_UID
BIN=$STEPBOX_BIN_DIR/ch11-userns R=$STEPBOX_ROOTFS
S=user.slice/user-$U.slice
D=$S/user@$U.service
echo "$N:x:$U:$U::/tmp:/bin/sh" >>/etc/passwd
echo "$N:x:$U:" >>/etc/group
echo "$N:200000:65536" >>/etc/subuid
echo "$N:200000:65536" >>/etc/subgid
mkdir -p $C/$D $C/$S/session-9.scope || exit 1
echo "+memory +pids" >$C/$S/cgroup.subtree_control || exit 1
chown $U:$U $C/$D $C/$D/cgroup.procs $C/$D/cgroup.subtree_control $C/$D/cgroup.threads || exit 1
echo "+memory +pids" >$C/$D/cgroup.subtree_control || exit 1
mkdir $C/$D/shell.scope || exit 1
# sh -c "$user" CGROUP COMMAND...: COMMAND as the test user, moved into
# CGROUP first; the shell execs it, so $! of "... &" is COMMAND's pid.
user='echo $$ >"$0/cgroup.procs" && exec /usr/bin/setpriv --reuid '$U' --regid '$U' --clear-groups "$@"'
as_user() {
  cg=$C/$1; shift
  /bin/sh -c "$user" "$cg" "$@" 2>&1
}
as_user $D/shell.scope /bin/sh -c "test -r $R/bin/probe && test -x $BIN" || { echo "the rootfs or $BIN is not the test user's to read"; exit 1; }
show='echo cgroup: $(cat /proc/self/cgroup); echo memory.max: $(cat /sys/fs/cgroup/memory.max); echo pids.max: $(cat /sys/fs/cgroup/pids.max)'

echo "== delegated"
as_user $D/shell.scope env STEPBOX_CONTAINER_ID=c9a1 $BIN -v --rootfs $R --memory 64m --pids-limit 32 -- /bin/sh -c "$show" >/tmp/out
rc=$?
grep -v '^+ ' /tmp/out; grep -E '^\+ .*(stepbox-|cgroup)' /tmp/out
echo "left: $(ls -d $C/$D/stepbox-* 2>/dev/null)"
echo "rc=$rc"

echo "== parent"
as_user $D/shell.scope $BIN --rootfs $R --cgroup-parent /$D/stepbox.slice --pids-limit 20 -- /bin/sh -c "$show"
rc=$?
echo "kept: $(ls -d $C/$D/stepbox.slice) left: $(ls -d $C/$D/stepbox.slice/stepbox-* 2>/dev/null)"
echo "rc=$rc"

echo "== no limit"
as_user $D/shell.scope $BIN --rootfs $R -- /bin/sh -c "$show"
echo "rc=$?"

echo "== session scope"
as_user $S/session-9.scope $BIN --rootfs $R -- /bin/sh -c 'cat /proc/self/cgroup'
echo "rc=$?"

echo "== session scope, a limit"
as_user $S/session-9.scope $BIN --rootfs $R --memory 64m -- /bin/true
echo "rc=$?"

echo "== gc"
as_user $D/shell.scope $BIN --gc
echo "rc=$?"

echo "== killed, then swept"
/bin/sh -c "$user" $C/$D/shell.scope env STEPBOX_CONTAINER_ID=c9a2 $BIN --rootfs $R --memory 64m -- /bin/sleep 60 &
runtime=$!
i=0; until [ -e $C/$D/stepbox-c9a2/cgroup.procs ] || [ $i -gt 100 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.5
kill -9 $runtime; wait $runtime
echo "left by the kill: $(ls -d $C/$D/stepbox-* 2>/dev/null)"
as_user $D/shell.scope $BIN --gc
rc=$?
echo "left after --gc: $(ls -d $C/$D/stepbox-* 2>/dev/null)"
echo "rc=$rc"

rmdir $C/$D/stepbox.slice $C/$D/shell.scope $C/$D $C/$S/session-9.scope $C/$S
sed -i "/^$N:/d" /etc/passwd /etc/group /etc/subuid /etc/subgid
"#;

/// Chapter 7 for a caller who is not root (chapter 11): in a cgroup v2
/// subtree delegated to them, the container gets a cgroup of its own with
/// its limits, beside the caller's cgroup or under --cgroup-parent; from a
/// session scope of root's, a warning and no cgroup, or a refusal if a
/// limit was asked for.
#[test]
fn rootless_delegated_cgroup_in_a_vm() {
    let tools = [
        "/usr/bin/setpriv",
        "/usr/bin/newuidmap",
        "/usr/bin/newgidmap",
    ];
    if let Some(missing) = tools.iter().find(|t| !Path::new(t).exists()) {
        common::skip(&format!(
            "no {missing} (util-linux, uidmap) to bake into the VM"
        ));
        return;
    }
    let tools: Vec<PathBuf> = tools.iter().map(PathBuf::from).collect();
    let Some(mut cmd) = vm_command("rootless", &["ch11-userns"], &tools) else {
        return;
    };
    // A uid of its own, never one of the guest's (it has only root).
    let uid = 20000 + std::process::id() % 10000;
    cmd.arg("-e").arg(format!("SB_UID={uid}"));
    cmd.args(["--", "/bin/sh", "-c", ROOTLESS_SCRIPT]);
    let Some(out) = run_vm("rootless", cmd) else {
        return;
    };
    // From "== NAME" to the next case.
    let case = |name: &str| -> &str {
        let start = out
            .find(&format!("== {name}\n"))
            .unwrap_or_else(|| panic!("no case {name}:\n{out}"));
        let rest = &out[start..];
        &rest[..rest[3..].find("\n== ").map_or(rest.len(), |i| i + 4)]
    };
    let d = format!("/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service");
    let warning = "ch11-userns: warning: no cgroup:";

    let c = case("delegated");
    assert!(c.contains("\nrc=0"), "{c}");
    for line in [
        "cgroup: 0::/\n",
        "memory.max: 67108864\n",
        "pids.max: 32\n",
        &format!("+ mkdir {d}/stepbox-c9a1\n"),
        "+ write cgroup.procs = ",
        &format!("+ rmdir {d}/stepbox-c9a1\n"),
        "left: \n",
    ] {
        assert!(c.contains(line), "no {line:?} in:\n{c}");
    }
    assert!(!c.contains(warning), "{c}");

    let c = case("parent");
    assert!(c.contains("\nrc=0"), "{c}");
    assert!(c.contains("pids.max: 20\n"), "{c}");
    assert!(
        c.contains(&format!("kept: {d}/stepbox.slice left: \n")),
        "{c}"
    );

    let c = case("no limit");
    assert!(c.contains("\nrc=0"), "{c}");
    assert!(c.contains("memory.max: max\n"), "{c}");
    assert!(!c.contains(warning), "{c}");

    let c = case("session scope");
    assert!(c.contains("\nrc=0"), "{c}");
    assert!(c.contains("0::/\n"), "{c}");
    let line = format!(
        "{warning} the cgroup /user.slice/user-{uid}.slice (the parent of yours) is not yours \
         (limits need root, or a cgroup v2 subtree delegated to you)\n"
    );
    assert!(c.contains(&line), "no {line:?} in:\n{c}");

    let c = case("session scope, a limit");
    assert!(c.contains("\nrc=125"), "{c}");
    assert!(
        c.contains("ch11-userns: --memory needs a cgroup of the container's own"),
        "{c}"
    );

    let c = case("gc");
    assert_eq!(c.trim_end(), "== gc\nrc=0", "{c}");

    // The record of a runtime killed with its container running is the
    // caller's, in their run directory: their --gc removes the cgroup
    // (killing what is in it), which is theirs too.
    let c = case("killed, then swept");
    let lines = format!(
        "left by the kill: {d}/stepbox-c9a2\n\
         ch11-userns: container c9a2 (ch11-userns, no longer running): removed cgroup \
         {d}/stepbox-c9a2\n\
         left after --gc: \nrc=0"
    );
    assert!(c.contains(&lines), "no {lines:?} in:\n{c}");
}
