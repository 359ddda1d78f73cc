//! The container's environment is explicit, as docker's is: PATH, HOME,
//! HOSTNAME (TERM with a terminal), the probe's two host facts, and nothing
//! of the caller's.

mod common;

use std::process::{Command, Stdio};

/// `env` in the container, run by a caller that has a secret exported.
fn env_inside(bin: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(common::bin_dir().join(bin))
        .args(args)
        .env("STEPBOX_CONTAINER_ID", common::unique_id())
        .env("STEPBOX_TEST_SECRET", "hunter2")
        .env("PATH", "/caller/only/bin:/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("running the chapter binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn names(env: &str) -> Vec<&str> {
    let mut names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort();
    names
}

#[test]
fn the_callers_environment_stays_outside() {
    // Chapter 1 runs the host's env(1): no root needed.
    let (code, env) = env_inside("ch01-process", &["--", "env"]);
    assert_eq!(code, 0, "{env}");
    assert!(
        !env.contains("hunter2"),
        "the caller's secret reached the container:\n{env}"
    );
    assert!(!env.contains("/caller/only/bin"), "{env}");
    assert!(
        env.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{env}"
    );
    assert_eq!(
        names(&env),
        [
            "HOME",
            "HOSTNAME",
            "PATH",
            "STEPBOX_HOST_NS",
            "STEPBOX_HOST_ROOT"
        ],
        "{env}"
    );
}

#[test]
fn hostname_is_the_containers() {
    if !common::root() {
        return;
    }
    let r = common::rootfs().to_string_lossy().into_owned();
    let (code, env) = env_inside(
        "ch06-uts",
        &["--rootfs", &r, "--hostname", "box", "--", "env"],
    );
    assert_eq!(code, 0, "{env}");
    assert!(env.contains("HOSTNAME=box\n"), "{env}");
    assert!(env.contains("HOME=/root\n"), "{env}");
    assert!(!env.contains("hunter2"), "{env}");
}
