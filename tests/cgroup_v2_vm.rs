//! Chapter 7 on cgroup v2, when the host has v1: runs the `cgroups` test
//! binary inside a throwaway qemu guest with Debian's kernel and the unified
//! hierarchy (scripts/v2vm), with the chapter binaries, the default rootfs,
//! the default image and the snapshots baked in at the same paths as on the
//! host. The tests run from a session scope, as after a systemd login
//! (`run.sh -s`): a cgroup other than the root, holding processes. Chapter
//! 9's device test runs there too, in a guest of its own: on cgroup v2 the
//! device allow list is an eBPF program, which only a v2 kernel runs.

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

/// Runs the test binary `name` (with `args`) in the v2 VM, with the
/// chapter binaries `bins`; its output, or None when skipped.
fn in_a_vm(name: &str, bins: &[&str], args: &[&str]) -> Option<String> {
    if !common::root() {
        return None;
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("this host has cgroup v2: the {name} tests already ran on it; no VM needed");
        return None;
    }
    let exe = test_exe(name);
    let bin_dir = common::bin_dir();
    let rootfs = common::rootfs();
    let image_layers = xtask::image::ensure().expect("building the default image");
    let image = image_layers[0].parent().unwrap().to_path_buf();
    let snapshots = common::workspace().join("tests/snapshots");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut cmd = Command::new(common::workspace().join("scripts/v2vm/run.sh"));
    cmd.args(["-m", "1024", "-t", "600", "-s"]);
    let files = [exe.clone(), rootfs.to_path_buf(), image.clone(), snapshots];
    for file in files
        .into_iter()
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
    cmd.arg("--").arg(&exe).args(args);
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
