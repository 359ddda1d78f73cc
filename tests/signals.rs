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

/// The process group (and session) a test started, killed whole if the
/// test fails before its leader has been reaped.
struct Group {
    leader: std::process::Child,
    reaped: bool,
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.reaped {
            let pgid = nix::unistd::Pid::from_raw(self.leader.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::SIGKILL);
            let _ = self.leader.wait();
        }
    }
}

/// A terminal sends SIGINT for ^C to its whole foreground process group:
/// the runtime and the command (chapter 1's child shares the runtime's
/// group) both get it, and the runtime must not send the command a second.
#[test]
fn ctrl_c_from_a_terminal_reaches_the_command_once() {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use std::io::{Read, Write};
    use std::sync::mpsc;
    use std::time::Duration;
    // The runtime on a terminal of its own, as from an interactive shell:
    // the session leader, its process group in the foreground. Chapter 1
    // needs no root.
    let pty = nix::pty::openpty(None, None).expect("openpty(3)");
    let slave = std::fs::File::from(pty.slave);
    // The command counts its SIGINTs and says how many it got on SIGUSR2.
    // (Each SIGINT interrupts `read`, which the loop starts again.)
    let script = r#"n=0; trap 'n=$((n+1)); echo "INT $n"' INT; trap 'echo "total $n"; exit 0' USR2; echo ready; while :; do read x; done"#;
    let mut cmd = Command::new(common::bin_dir().join("ch01-process"));
    cmd.args(["--", "sh", "-c", script])
        .env("STEPBOX_CONTAINER_ID", common::unique_id())
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: setsid(2) and ioctl(2) are async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut rt = Group {
        leader: cmd.spawn().expect("starting ch01-process"),
        reaped: false,
    };
    drop(cmd); // its copies of the slave
    let pid = nix::unistd::Pid::from_raw(rt.leader.id() as i32);
    let mut master = std::fs::File::from(pty.master);
    let (tx, lines) = mpsc::channel();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut line = Vec::new();
        // Ends with EIO once every slave fd is closed.
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            for &b in &buf[..n] {
                if b == b'\n' {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    if tx.send(text).is_err() {
                        return;
                    }
                    line.clear();
                } else {
                    line.push(b);
                }
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |prefix: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    panic!("no {prefix:?} line in 60 s; the terminal showed:\n{seen}")
                });
            seen.push_str(&line);
            seen.push('\n');
            if let Some(i) = line.find(prefix) {
                return line[i..].to_owned();
            }
        }
    };
    wait_for("ready");
    // Stopped, the runtime cannot pass anything on: the first SIGINT the
    // command counts is the terminal's own.
    kill(pid, Signal::SIGSTOP).unwrap();
    assert!(matches!(
        waitpid(pid, Some(WaitPidFlag::WUNTRACED)).unwrap(),
        WaitStatus::Stopped(_, Signal::SIGSTOP)
    ));
    master.write_all(&[0x03]).unwrap(); // ^C (VINTR)
    assert_eq!(wait_for("INT "), "INT 1");
    // The terminal's SIGINT is pending in the runtime since before the
    // command counted it; SIGUSR2 comes after, and sigwait(2) takes the
    // lower-numbered signal first: whatever the runtime does with the
    // SIGINT, it does before it forwards SIGUSR2.
    kill(pid, Signal::SIGCONT).unwrap();
    kill(pid, Signal::SIGUSR2).unwrap();
    let total = wait_for("total ");
    let status = waitpid(pid, None).unwrap();
    rt.reaped = true;
    assert_eq!(status, WaitStatus::Exited(pid, 0), "{seen}");
    assert_eq!(
        total, "total 1",
        "one Ctrl-C, counted by the command as:\n{seen}"
    );
}
