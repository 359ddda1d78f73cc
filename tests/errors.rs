//! Bad input: each mistake a student makes gets one clear line, the exit code
//! docker would give, and leaves the host as it was.

mod common;

use common::{root, rootfs, run_clean, Run};

fn one_line_error(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "{}", run.transcript);
    assert!(run.stdout.is_empty(), "{}", run.transcript);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr:\n{}",
        run.transcript
    );
    assert!(
        lines[0].starts_with("ch06-uts: ") && lines[0].contains(needle),
        "{}",
        run.transcript
    );
}

#[test]
fn bad_input() {
    if !root() {
        return;
    }
    let r = rootfs().to_string_lossy().into_owned();
    let scratch = tempfile::tempdir().unwrap();
    let no_shell = scratch.path().join("empty");
    std::fs::create_dir(&no_shell).unwrap();
    let no_shell = no_shell.to_string_lossy().into_owned();
    let long_name = "x".repeat(65);
    let cases: [(&[&str], i32, &str); 7] = [
        (
            &["--rootfs", "/nonexistent", "--", "true"],
            125,
            "rootfs /nonexistent: no such directory",
        ),
        (
            &["--rootfs", "/etc/passwd", "--", "true"],
            125,
            "not a directory",
        ),
        (
            &["--rootfs", &no_shell, "--", "true"],
            125,
            "has no /bin/sh",
        ),
        (
            &["--rootfs", &r, "--", "no-such-command"],
            127,
            "no-such-command: command not found",
        ),
        (
            &["--rootfs", &r, "--", "/etc/passwd"],
            126,
            "/etc/passwd: cannot execute: permission denied",
        ),
        (
            &["--rootfs", &r, "--hostname", &long_name, "--", "true"],
            125,
            "must be 1 to 64",
        ),
        (
            &["--", "true"],
            125,
            "no root filesystem: give --rootfs DIR",
        ),
    ];
    let mut transcript = String::new();
    for (args, code, needle) in cases {
        let run = run_clean("ch06-uts", args);
        one_line_error(&run, code, needle);
        transcript.push_str(&run.transcript.replace(&no_shell, "EMPTY_DIR"));
    }
    crate::snapshot!("bad_input", &transcript);
}

#[test]
fn not_root() {
    if !root() {
        return; // needs root to become someone else
    }
    use std::os::unix::process::CommandExt;
    let bin = common::bin_dir().join("ch06-uts");
    let out = std::process::Command::new(&bin)
        .args(["--rootfs", "/", "--", "true"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert_eq!(
        stderr,
        "ch06-uts: creating namespaces needs root (CAP_SYS_ADMIN); run it as root: sudo ch06-uts ...\n"
    );
}
