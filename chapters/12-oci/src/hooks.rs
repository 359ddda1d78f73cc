//! The spec's hooks: programs the runtime runs at points of the lifecycle,
//! with the container's state as JSON on their stdin. An engine uses them
//! to set up what the runtime does not (podman's network setup was once a
//! prestart hook).

use ch01_process::Ctx;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::Value;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs every hook of `kind` (`prestart`, `createRuntime`,
/// `createContainer`, `startContainer`, `poststart`, `poststop`), in
/// order; the first that fails or outlives its `timeout` stops the rest.
pub fn run_all(ctx: &Ctx, hooks: &Value, kind: &str, state: &Value) -> Result<(), String> {
    for hook in hooks
        .get(kind)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        run(ctx, kind, hook, state)?;
    }
    Ok(())
}

fn run(ctx: &Ctx, kind: &str, hook: &Value, state: &Value) -> Result<(), String> {
    let path = hook.get("path").and_then(Value::as_str).unwrap_or_default();
    let strings = |k: &str| -> Vec<String> {
        hook.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let args = strings("args");
    ctx.say(format_args!("{kind} hook {path} {args:?}"));
    let mut cmd = Command::new(path);
    // args[0] is the hook's argv[0], as execve(2) takes it.
    if let Some((first, rest)) = args.split_first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, first);
        cmd.args(rest);
    }
    cmd.env_clear();
    for var in strings("env") {
        if let Some((n, v)) = var.split_once('=') {
            cmd.env(n, v);
        }
    }
    // A process group of its own: a hook killed at its timeout takes
    // what it started with it (a shell's `sleep`).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{kind} hook {path}: {e}"))?;
    let json = serde_json::to_vec(state).expect("a Value serialises");
    // A hook that does not read its stdin gets EPIPE, not us a SIGPIPE.
    let _ = child.stdin.take().expect("piped").write_all(&json);
    let timeout = hook
        .get("timeout")
        .and_then(Value::as_u64)
        .map(Duration::from_secs);
    // The hook is our child, not reaped yet: its pid cannot be another
    // process's, and its pidfd becomes readable when it exits.
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        kill_group(&mut child);
        return Err(format!("{kind} hook {path}: pidfd_open(2): {e}"));
    }
    // SAFETY: the kernel just made this descriptor, for us alone.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let started = Instant::now();
    loop {
        let left = match timeout {
            None => PollTimeout::NONE,
            Some(t) => {
                let ms = t.saturating_sub(started.elapsed()).as_millis();
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, left) {
            Ok(0) => {
                kill_group(&mut child);
                return Err(format!(
                    "{kind} hook {path}: still running after its timeout of {} s: killed",
                    timeout.unwrap_or_default().as_secs()
                ));
            }
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("{kind} hook {path}: poll(2): {e}"));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("{kind} hook {path}: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("{kind} hook {path} failed: {status}")),
    }
}

/// SIGKILL to the hook's process group, then reaps the hook.
fn kill_group(child: &mut std::process::Child) {
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}
