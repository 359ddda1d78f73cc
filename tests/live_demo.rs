//! `cargo xtask demo NN` (xtask/src/demo.rs), as a demo giver with no
//! terminal runs it: it shows the commands the tests run, ends with a
//! verdict, and the verdict is a real comparison (a snapshot made wrong on
//! purpose is reported, with exit status 1).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `cargo xtask demo ARGS` in a session of its own (no controlling
/// terminal: no pause waits, whatever the pace), stdin closed.
fn xtask_demo(args: &[&str], env: &[(&str, &Path)]) -> Output {
    use std::os::unix::process::CommandExt;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["xtask", "demo"])
        .args(args)
        .current_dir(common::workspace())
        .env_remove("INSTA_UPDATE")
        .env_remove("INSTA_WORKSPACE_ROOT")
        .env_remove(common::RUN_VAR)
        .stdin(Stdio::null());
    for (var, value) in env {
        cmd.env(var, value);
    }
    // SAFETY: setsid(2) is a plain syscall, safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| match libc::setsid() {
            -1 => Err(std::io::Error::last_os_error()),
            _ => Ok(()),
        })
    };
    cmd.output().expect("running cargo xtask demo")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_demo_shows_the_tests_commands_and_says_they_match() {
    if !common::root() {
        return;
    }
    // The default pace, Enter: with no terminal to read it from, no wait.
    let out = xtask_demo(&["06"], &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    // The commands as the transcript shows them, each before its output.
    for (command, output) in [
        (
            "$ ch05-mnt --rootfs ROOTFS -- /bin/probe identity\n",
            "# identity\n",
        ),
        (
            "$ ch06-uts --rootfs ROOTFS --hostname box -- /bin/probe identity\n",
            "# identity\npid: 1\nppid: 0\nuid: 0\ngid: 0\nhostname: box\n",
        ),
        (
            "$ ch06-uts --rootfs ROOTFS -- sh -c 'hostname renamed && hostname'\n",
            "renamed\n",
        ),
    ] {
        assert!(
            stdout.contains(&format!("{command}{output}")),
            "no {command:?} then {output:?} in\n{stdout}"
        );
    }
    for name in ["ch06_before", "ch06_after"] {
        assert!(
            stdout.contains(&format!("✓ matches the tested transcript: {name}\n")),
            "{stdout}"
        );
    }
    // Not a terminal: no colours.
    assert!(!stdout.contains('\x1b'), "{stdout}");
    // What the audience sees, for the book (book/src/demos.md).
    crate::snapshot!("demo_06", common::redact(&stdout));
    assert!(
        stdout.ends_with(
            "✓ the host is clean: nothing the demo made is left\n\
             Chapter 6's demo matches the tested transcripts (1 test).\n"
        ),
        "{stdout}"
    );
}

/// The same demo against a copy of its snapshots with one line changed
/// (`INSTA_WORKSPACE_ROOT` tells insta where the snapshots are): the
/// transcript the audience saw no longer matches, and the demo says so.
#[test]
fn a_demo_that_differs_from_its_snapshot_says_so() {
    if !common::root() {
        return;
    }
    let copy = tempfile::tempdir().unwrap();
    let snapshots = copy.path().join("tests/snapshots");
    std::fs::create_dir_all(&snapshots).unwrap();
    for name in ["demos__ch06_before.snap", "demos__ch06_after.snap"] {
        let text = std::fs::read_to_string(common::workspace().join("tests/snapshots").join(name))
            .unwrap();
        let text = match name {
            "demos__ch06_after.snap" => {
                assert!(text.contains("hostname: box\n"), "{text}");
                text.replace("hostname: box\n", "hostname: b0x\n")
            }
            _ => text,
        };
        std::fs::write(snapshots.join(name), text).unwrap();
    }
    let out = xtask_demo(
        &["06", "--pace", "0"],
        &[("INSTA_WORKSPACE_ROOT", copy.path())],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("✓ matches the tested transcript: ch06_before\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✗ DOES NOT MATCH the tested transcript: ch06_after"),
        "{stdout}"
    );
    // insta's diff, with the line the audience saw and the one expected.
    assert!(
        stdout.contains("hostname: b0x") && stdout.contains("hostname: box"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(
            "Chapter 6's demo FAILED: demos::ch06_uts_namespace \
             (above: what differs, or what the test said).\n"
        ),
        "{stdout}"
    );
    // Nothing was written: not the copy, not the project's snapshots.
    assert_eq!(common::names(&snapshots).len(), 2);
    assert!(common::names(&common::workspace().join("tests/snapshots"))
        .iter()
        .all(|n| !n.ends_with(".snap.new")));
}

#[test]
fn a_demo_without_root_is_one_line() {
    // As nobody: the same command, before anything is built or run.
    if !common::root() {
        return;
    }
    // A copy nobody can run: a clone in /root (mode 700) hides the build.
    let dir = tempfile::Builder::new()
        .prefix("stepbox-demo-nobody-")
        .tempdir()
        .unwrap();
    let xtask = dir.path().join("xtask");
    std::fs::copy(common::bin_dir().join("xtask"), &xtask).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    use std::os::unix::process::CommandExt;
    let out = Command::new(&xtask)
        .current_dir("/")
        .args(["demo", "06"])
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
}

/// Each chapter's demo in xtask/src/demo.rs against the chapter's page:
/// every snapshot the page includes is made by one of the demo's tests,
/// or is one the table says it leaves out; and every test exists.
#[test]
fn every_chapters_demo_makes_the_snapshots_its_page_shows() {
    let root = common::workspace();
    let pages: Vec<String> = common::names(&root.join("book/src"));
    for chapter in xtask::demo::CHAPTERS {
        let prefix = format!("ch{:02}-", chapter.number);
        let page = pages
            .iter()
            .find(|p| p.starts_with(&prefix) && p.ends_with(".md"))
            .unwrap_or_else(|| panic!("no book/src/{prefix}*.md"));
        let text = std::fs::read_to_string(root.join("book/src").join(page)).unwrap();
        let included: Vec<&str> = text
            .split("tests/snapshots/")
            .skip(1)
            .filter_map(|rest| rest.split(".snap").next())
            .collect();
        assert!(!included.is_empty(), "{page} includes no snapshot");
        let bodies: Vec<(&str, String)> = chapter
            .tests
            .iter()
            .map(|&(file, test)| (file, test_body(&root, file, test)))
            .collect();
        for snap in included {
            let (file, name) = snap.split_once("__").unwrap();
            // `format!("ch07_after_{}", version())` makes ch07_after_v1 and _v2.
            let pattern = match name.rsplit_once('_') {
                Some((stem, "v1" | "v2")) => format!("\"{stem}_{{}}\""),
                _ => format!("\"{name}\""),
            };
            let made = bodies
                .iter()
                .any(|(f, body)| *f == file && body.contains(&pattern));
            let left_out = chapter.left_out.iter().any(|&(s, _)| s == snap);
            assert!(
                made != left_out,
                "{page} includes {snap}: {}",
                match made {
                    true => "made by the demo, and listed as left out",
                    false => "no test of the demo makes it, nor is it listed as left out",
                }
            );
        }
    }
}

/// The text of `fn test` in tests/FILE.rs, to the next `#[test]`.
fn test_body(root: &Path, file: &str, test: &str) -> String {
    let source = std::fs::read_to_string(root.join("tests").join(format!("{file}.rs"))).unwrap();
    let start = source
        .find(&format!("\nfn {test}() {{"))
        .unwrap_or_else(|| panic!("no test {test} in tests/{file}.rs"));
    let rest = &source[start..];
    let end = rest.find("#[test]").unwrap_or(rest.len());
    rest[..end].to_owned()
}
