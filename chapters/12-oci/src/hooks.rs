//! The spec's hooks: programs the runtime runs at points of the lifecycle,
//! with the container's state as JSON on their stdin. An engine uses them
//! to set up what the runtime does not (podman's network setup was once a
//! prestart hook).

use ch01_process::Ctx;
use serde_json::Value;
use std::io::Write;
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
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("{kind} hook {path}: {e}")),
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{kind} hook {path}: still running after its timeout of {} s: killed",
                timeout.unwrap_or_default().as_secs()
            ));
        }
        // A hook has no pidfd to poll here without more plumbing; 10 ms
        // steps are fine for programs that run once per container.
        std::thread::sleep(Duration::from_millis(10));
    };
    match status.success() {
        true => Ok(()),
        false => Err(format!("{kind} hook {path} failed: {status}")),
    }
}
