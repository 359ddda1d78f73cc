//! Bad input: each mistake a student makes gets one clear line, the exit code
//! docker would give, and leaves the host as it was.

mod common;

use common::{root, rootfs, run_clean, Run};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

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

/// `dir` as a string, and as the runtime names it (canonical).
fn shown(dir: &Path) -> (String, String) {
    (
        dir.to_string_lossy().into_owned(),
        dir.canonicalize().unwrap().to_string_lossy().into_owned(),
    )
}

/// Copies the default rootfs's `bin/probe`, a static binary, to `dir/to`.
fn copy_probe(dir: &Path, to: &str) {
    let to = dir.join(to);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    copy_executable(&rootfs().join("bin/probe"), &to);
}

/// A copy of a program that is about to be executed, made by cp(1), not
/// std::fs::copy: a test thread that forks while our descriptor for
/// writing the copy is open would hold it until its exec, and executing the
/// copy meanwhile fails with ETXTBSY. cp's descriptor is in cp's process,
/// closed when it exits.
fn copy_executable(from: &Path, to: &Path) {
    let copied = std::process::Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(copied.success(), "cp {from:?} {to:?} failed");
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
    // A rootfs whose /proc is a symlink: mounting there would follow it.
    let proc_link = scratch.path().join("proc-link");
    copy_probe(&proc_link, "bin/probe");
    symlink("/etc", proc_link.join("proc")).unwrap();
    let (no_shell, no_shell_real) = shown(&no_shell);
    let (proc_link, proc_link_real) = shown(&proc_link);
    let long_name = "x".repeat(65);
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--rootfs", "/nonexistent", "--", "true"],
            125,
            "rootfs \"/nonexistent\": no such directory",
        ),
        (
            &["--rootfs", "/etc/passwd", "--", "true"],
            125,
            "not a directory",
        ),
        (
            &["--rootfs", "/", "--", "true"],
            125,
            "rootfs \"/\" is the host's own root directory",
        ),
        (
            &["--rootfs", &no_shell, "--", "true"],
            127,
            "\"true\": command not found in $PATH in rootfs",
        ),
        (
            &["--rootfs", &no_shell, "--", "/bin/sh"],
            127,
            "\"/bin/sh\": no such file in rootfs",
        ),
        (
            &["--rootfs", &proc_link, "--", "/bin/probe"],
            125,
            "/proc in rootfs",
        ),
        (
            &["--rootfs", &r, "--", "no-such-command"],
            127,
            "\"no-such-command\": command not found in $PATH in rootfs",
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
            &["--rootfs", &r, "--hostname", "a b", "--", "true"],
            125,
            "' ' is not allowed",
        ),
        (
            &["--rootfs", &r, "--hostname", "box\nroot", "--", "true"],
            125,
            "'\\n' is not allowed",
        ),
        (
            &["--rootfs", &r, "--hostname", "\x1b[31mred", "--", "true"],
            125,
            "'\\u{1b}' is not allowed",
        ),
        (
            &["--rootfs", &r, "--hostname", "../etc", "--", "true"],
            125,
            "'/' is not allowed",
        ),
        (
            &["--rootfs", &r, "--hostname", "a..b", "--", "true"],
            125,
            ": empty label",
        ),
        (
            &["--rootfs", &r, "--hostname=box-", "--", "true"],
            125,
            "label \"box-\" ends with a hyphen",
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
        one_line_error(&run, *code, needle);
        transcript.push_str(
            &run.transcript
                // The escape sequence as a shell would take it, not raw.
                .replace("'\x1b", "$'\\e")
                .replace(&no_shell_real, "EMPTY_DIR")
                .replace(&no_shell, "EMPTY_DIR")
                .replace(&proc_link_real, "PROC_LINK")
                .replace(&proc_link, "PROC_LINK"),
        );
    }
    // The /proc symlink is named for what it is, and nothing was mounted
    // through it (run_clean checked the host's mounts).
    assert!(
        transcript.contains(
            "/proc in rootfs \"PROC_LINK\" is a symlink (to \"/etc\"): mount points must be real \
             directories inside the rootfs"
        ),
        "{transcript}"
    );
    crate::snapshot!("bad_input", &transcript);
}

/// Paths inside the rootfs are looked up as the container will see them,
/// and only what the command needs is required.
#[test]
fn rootfs_paths_resolve_inside_the_rootfs() {
    if !root() {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();

    // /bin -> /realbin, an absolute link: on the host it would point to the
    // host's /realbin; in the container, to the rootfs's own.
    let linked = scratch.path().join("linked");
    std::fs::create_dir_all(linked.join("realbin")).unwrap();
    for entry in std::fs::read_dir(rootfs().join("bin")).unwrap() {
        let entry = entry.unwrap();
        let to = linked.join("realbin").join(entry.file_name());
        match std::fs::read_link(entry.path()) {
            Ok(target) => symlink(target, to).unwrap(),
            Err(_) => copy_executable(&entry.path(), &to),
        }
    }
    symlink("/realbin", linked.join("bin")).unwrap();
    let run = run_clean(
        "ch06-uts",
        &[
            "--rootfs",
            linked.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            "echo inside",
        ],
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "inside\n"),
        "{}",
        run.transcript
    );

    // No /bin/sh at all, and a command that does not need one.
    let bare = scratch.path().join("bare");
    copy_probe(&bare, "bin/probe");
    let run = run_clean(
        "ch06-uts",
        &[
            "--rootfs",
            bare.to_str().unwrap(),
            "--hostname",
            "bare",
            "--",
            "/bin/probe",
            "identity",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.transcript);
    assert!(
        run.stdout.contains("hostname: bare\n"),
        "{}",
        run.transcript
    );

    // The reverse: /bin -> /usr/bin, where the host has a sh and the rootfs
    // nothing at all. Resolved on the host, it would pass.
    let lying = scratch.path().join("lying");
    std::fs::create_dir(&lying).unwrap();
    symlink("/usr/bin", lying.join("bin")).unwrap();
    let run = run_clean(
        "ch06-uts",
        &[
            "--rootfs",
            lying.to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            "true",
        ],
    );
    one_line_error(&run, 127, "\"/bin/sh\": no such file in rootfs");
}

/// Usage errors and runtime errors alike: one line, the binary's name
/// first, whatever the user typed (a newline in a path included).
#[test]
fn usage_errors_are_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--no-such-flag", "--", "true"],
            "ch06-uts: unexpected argument '--no-such-flag' found (see ch06-uts --help)",
        ),
        (
            &["--rootfs", "/tmp"],
            "ch06-uts: the following required arguments were not provided: <COMMAND>... \
             (see ch06-uts --help)",
        ),
        (
            &["--veth", "10.1.2.3", "--", "true"],
            "ch06-uts: invalid value '10.1.2.3' for '--veth [<CIDR>]': expected ADDRESS/PREFIX, \
             e.g. 10.200.7.1/30 (see ch06-uts --help)",
        ),
        (
            &["--rootfs", "/no\nsuch", "--", "true"],
            "ch06-uts: rootfs \"/no\\nsuch\": no such directory (build the default one with \
             `cargo xtask rootfs`)",
        ),
    ];
    let mut transcript = String::new();
    for (args, line) in cases {
        let run = run_clean("ch06-uts", args);
        assert_eq!(run.code, 125, "{}", run.transcript);
        assert!(run.stdout.is_empty(), "{}", run.transcript);
        assert_eq!(run.stderr, format!("{line}\n"), "{}", run.transcript);
        transcript.push_str(&run.transcript);
    }
    crate::snapshot!("usage", &transcript);
}

#[test]
fn not_root() {
    if !root() {
        return; // needs root to become someone else
    }
    use std::os::unix::process::CommandExt;
    // uid 65534 may not reach the checkout (under /root, mode 0700, for a
    // root user who cloned it there): run a copy from a directory anyone
    // can read, in /tmp whatever $TMPDIR says. The binary needs nothing
    // else, and the directory doubles as a rootfs that holds the command.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("ch06-uts");
    copy_executable(&common::bin_dir().join("ch06-uts"), &bin);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&bin)
        .args(["--rootfs", dir.path().to_str().unwrap(), "--", "/ch06-uts"])
        .current_dir("/")
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

/// Chapter 8 unpacks its layers in the check stage, before any step makes
/// anything: a refused layer is one line, and the `-v` transcript shows
/// that no cgroup was made (not even for a moment) and no state record
/// written. The run has a run dir and a state dir of its own.
#[test]
fn check_refuses_a_bad_layer_before_any_cgroup_exists() {
    if !root() {
        return;
    }
    let corpus = common::workspace().join("tests/corpus/layers");
    let manifest = std::fs::read_to_string(corpus.join("MANIFEST")).unwrap();
    for layer in ["garbage.tar", "symlink-escape.tar", "dotdot.tar"] {
        // FILE, "refuse", TEXT that the error contains.
        let needle = manifest
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{layer}\trefuse\t")))
            .unwrap_or_else(|| panic!("{layer} is not refused in the MANIFEST"));
        let scratch = tempfile::tempdir().unwrap();
        let state = scratch.path().join("state");
        let id = common::unique_id();
        let before = common::HostState::capture(&id);
        let out = std::process::Command::new(common::bin_dir().join("ch08-overlay"))
            .arg("-v")
            .args(["--memory", "64m", "--state-dir"])
            .arg(&state)
            .arg("--layer")
            .arg(corpus.join(layer))
            .args(["--", "true"])
            .env("STEPBOX_CONTAINER_ID", &id)
            .env("STEPBOX_RUN_DIR", scratch.path().join("run"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(common::HostState::capture(&id), before, "{layer}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{layer}:\n{stderr}");
        assert!(out.stdout.is_empty(), "{layer}:\n{stderr}");
        let (steps, errors): (Vec<&str>, Vec<&str>) =
            stderr.lines().partition(|l| l.starts_with("+ "));
        assert_eq!(errors.len(), 1, "{layer}: one line expected:\n{stderr}");
        assert!(
            errors[0].starts_with("ch08-overlay: ") && errors[0].contains(needle),
            "{layer}:\n{stderr}"
        );
        // -v shows the check stage's own work (the unpack into the store)...
        assert!(
            steps.iter().any(|l| l.contains(".tmp-")),
            "{layer}: no unpack shown:\n{stderr}"
        );
        // ...and nothing of prepare's.
        for made in ["mkdir /sys/fs/cgroup", "record "] {
            assert!(
                !steps.iter().any(|l| l.contains(made)),
                "{layer}: {made:?} before the layer was checked:\n{stderr}"
            );
        }
        assert!(!scratch.path().join("run/containers").exists(), "{layer}");
    }
}
