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

#[test]
fn env_flags_add_to_it_as_dockers_do() {
    // -e NAME=VALUE sets; a bare -e NAME takes the caller's value (the
    // secret, asked for by name), and is left out when the caller has none;
    // a later -e replaces an earlier one and the defaults.
    let (code, env) = env_inside(
        "ch01-process",
        &[
            "-e",
            "A=1",
            "-e",
            "STEPBOX_TEST_SECRET",
            "-e",
            "STEPBOX_TEST_UNSET",
            "-e",
            "A=x=2",
            "--env",
            "PATH=/bin",
            "--",
            "/usr/bin/env",
        ],
    );
    assert_eq!(code, 0, "{env}");
    assert!(env.contains("A=x=2\n") && !env.contains("A=1\n"), "{env}");
    assert!(env.contains("STEPBOX_TEST_SECRET=hunter2\n"), "{env}");
    assert!(env.contains("PATH=/bin\n"), "{env}");
    assert!(!env.contains("STEPBOX_TEST_UNSET"), "{env}");
    assert_eq!(env.matches("PATH=").count(), 1, "{env}");
    // A name a shell could not export is a usage error: one line, 125.
    let (code, err) = env_inside("ch01-process", &["-e", "A-B=1", "--", "true"]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ch01-process: "), "{err}");
}
