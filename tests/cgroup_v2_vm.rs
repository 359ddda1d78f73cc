//! Chapter 7 on cgroup v2, when the host has v1: runs the `cgroups` test
//! binary inside a throwaway qemu guest with Debian's kernel and the unified
//! hierarchy (scripts/v2vm), with the chapter binaries, the default rootfs,
//! the default image and the snapshots baked in at the same paths as on the
//! host. The tests run from a session scope, as after a systemd login
//! (`run.sh -s`): a cgroup other than the root, holding processes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `cgroups` test executable, as cargo built it.
fn cgroups_test_exe() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "test",
            "--quiet",
            "--test",
            "cgroups",
            "--no-run",
            "--message-format=json",
        ])
        .current_dir(common::workspace())
        .output()
        .expect("cargo test --no-run");
    assert!(out.status.success(), "building the cgroups tests failed");
    let json = String::from_utf8_lossy(&out.stdout);
    let exe =
        regex::Regex::new(r#""name":"cgroups","src_path":[^\n]*?"executable":"([^"]+)""#).unwrap();
    let found = json
        .lines()
        .find_map(|l| exe.captures(l).map(|c| PathBuf::from(&c[1])));
    found.expect("no executable for the cgroups test in cargo's output")
}

#[test]
fn cgroup_v2_in_a_vm() {
    if !common::root() {
        return;
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("this host has cgroup v2: the cgroups tests already ran on it; no VM needed");
        return;
    }
    let exe = cgroups_test_exe();
    let bins = common::bin_dir();
    let rootfs = common::rootfs();
    let image_layers = xtask::image::ensure().expect("building the default image");
    let image = image_layers[0].parent().unwrap().to_path_buf();
    let snapshots = common::workspace().join("tests/snapshots");
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut cmd = Command::new(common::workspace().join("scripts/v2vm/run.sh"));
    cmd.args(["-m", "1024", "-t", "600", "-s"]);
    for file in [
        exe.clone(),
        bins.join("ch06-uts"),
        bins.join("ch07-cgroups"),
        bins.join("ch08-overlay"),
        rootfs.to_path_buf(),
        image.clone(),
        snapshots,
    ] {
        cmd.arg("-f").arg(&file);
    }
    for (var, value) in [
        ("STEPBOX_BIN_DIR", path(bins)),
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
    cmd.arg("--").arg(&exe);
    let out = cmd.output().expect("running scripts/v2vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    match out.status.code() {
        Some(0) => {}
        Some(125) if stderr.contains("setup") && std::env::var("CI").as_deref() != Ok("true") => {
            common::skip(&format!("the v2 VM could not be set up:\n{stderr}"));
            return;
        }
        code => {
            panic!("the cgroups tests failed in the v2 VM (exit {code:?}):\n{stdout}\n{stderr}")
        }
    }
    assert!(
        stdout.contains("test result: ok. 12 passed; 0 failed"),
        "{stdout}"
    );
}
