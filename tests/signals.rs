//! The command starts with every signal at its default action and nothing
//! blocked, whatever the runtime (Rust ignores SIGPIPE) or its caller
//! (`nohup` ignores SIGHUP; a caller may block signals) had.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Runs `bin args` with SIGHUP ignored and SIGUSR1 blocked, as a caller
/// under `nohup` with an odd mask would; returns (status, stdout).
fn run_from_a_hostile_caller(bin: &str, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(common::bin_dir().join(bin));
    cmd.args(args)
        .env("STEPBOX_CONTAINER_ID", common::unique_id())
        .stdin(Stdio::null());
    // SAFETY: signal(2) and sigprocmask(2) are async-signal-safe, as code
    // between fork and exec must be.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let out = cmd.output().expect("running the chapter binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

#[test]
fn the_command_starts_with_default_signals() {
    // Chapter 1 needs no root: it makes no namespace.
    let (code, out) = run_from_a_hostile_caller(
        "ch01-process",
        &["--", "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
    assert!(out.contains("SigIgn:\t0000000000000000"), "{out}");
}

#[test]
fn a_pipeline_into_head_ends() {
    if !common::root() {
        return;
    }
    // With SIGPIPE ignored, `yes` would get EPIPE forever instead of dying.
    let r = common::rootfs().to_string_lossy().into_owned();
    let run = common::run_clean(
        "ch06-uts",
        &[
            "--rootfs",
            &r,
            "--",
            "sh",
            "-c",
            "yes | head -n1; echo done",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.transcript);
    assert_eq!(run.stdout, "y\ndone\n", "{}", run.transcript);
    assert!(!run.stderr.contains("Broken pipe"), "{}", run.transcript);
}
