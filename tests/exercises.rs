//! The book's exercises that could change the host do not: each one's
//! commands are read from its page, as the reader will copy them (the
//! inline code of the exercise that starts with `sudo `), and run as root;
//! the host's mounts, hostname and `/var/lib/stepbox` must be the same
//! afterwards. A command with a placeholder in capitals (`UPPER/etc`) is
//! for the reader to fill in and is not run.
//!
//! The pages define `R` (the default rootfs), and chapter 8's `L` (the
//! image's `--layer` flags) and `S` (a state directory of the exercises'
//! own); here they are the test's own, `S` inside a scratch directory.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin_dir, root, rootfs, workspace, HostState, Sandbox};

/// The numbered items of a page's `## Exercises` section (joined into one
/// line each), after the text that comes before item 1.
fn exercises(page: &str) -> (String, Vec<String>) {
    let section = page
        .split_once("\n## Exercises\n")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let section = section.split("\n## ").next().unwrap_or_default();
    let (mut preamble, mut items) = (String::new(), Vec::<String>::new());
    for line in section.lines() {
        let numbered = line
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let text = match numbered {
            true => {
                items.push(String::new());
                line.split_once(". ").unwrap().1
            }
            false => line.trim(),
        };
        let into = items.last_mut().unwrap_or(&mut preamble);
        if !into.is_empty() && !text.is_empty() {
            into.push(' ');
        }
        into.push_str(text);
    }
    (preamble, items)
}

/// The commands of one exercise's text: its inline code that starts with
/// `sudo `, without the `sudo` (the test is root), leaving out those with a
/// placeholder for the reader (a word in capitals, not a `$VARIABLE`).
fn commands(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| code.strip_prefix("sudo "))
        .filter(|code| !has_placeholder(code))
        .map(str::to_owned)
        .collect()
}

fn has_placeholder(code: &str) -> bool {
    let b = code.as_bytes();
    (0..b.len()).any(|i| {
        let starts =
            i == 0 || !(b[i - 1] == b'$' || b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        starts && b[i..].iter().take_while(|c| c.is_ascii_uppercase()).count() >= 2
    })
}

fn page(name: &str) -> String {
    let path = workspace().join("book/src").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Exercise `n` (from 1) of `page`'s commands; there must be some.
fn exercise(page_name: &str, n: usize) -> Vec<String> {
    let (_, items) = exercises(&page(page_name));
    let item = items
        .get(n - 1)
        .unwrap_or_else(|| panic!("{page_name} has no exercise {n}"));
    let found = commands(item);
    assert!(
        !found.is_empty(),
        "{page_name} exercise {n}: no command in {item:?}"
    );
    found
}

/// What an exercise could change on the host: the mounts and hostname (as
/// `HostState` sees them for the container id `id`) and the names in the
/// default state directory.
#[derive(Debug, PartialEq, Eq)]
struct Host {
    state: HostState,
    var_lib: BTreeMap<String, Vec<String>>,
}

impl Host {
    fn capture(id: &str) -> Host {
        let dir = Path::new("/var/lib/stepbox");
        let var_lib = ["", "layers", "layers/by-file", "containers"]
            .into_iter()
            .map(|sub| {
                let mut names = common::names(&dir.join(sub));
                names.sort();
                (sub.to_owned(), names)
            })
            .collect();
        Host {
            state: HostState::capture(id),
            var_lib,
        }
    }
}

/// The tests of this file, one at a time: each compares the whole host
/// before and after its commands, which another one's would change.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A sandbox, and the part of its containers' ids that all of this
/// process's share ([`common::unique_id`]): what [`Host::capture`] looks
/// for.
fn sandbox() -> (std::sync::MutexGuard<'static, ()>, Sandbox, String) {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sandbox = Sandbox::new("exercises");
    let ours = sandbox.id()[..9].to_owned();
    (serial, sandbox, ours)
}

/// One command of a page, run by `sh -c` from the workspace, with `R`, `S`
/// and `L` set, under a container id of `sandbox`'s; stdout, stderr.
fn sh(cmd: &str, sandbox: &Sandbox, vars: &[(&str, String)]) -> (String, String) {
    let id = sandbox.id();
    let cmd = cmd.replace("target/debug/", &format!("{}/", bin_dir().display()));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .env("STEPBOX_CONTAINER_ID", &id)
        .current_dir(workspace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{cmd}: did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr))
}

fn rootfs_var() -> (&'static str, String) {
    ("R", rootfs().to_string_lossy().into_owned())
}

/// util-linux's unshare and findmnt, which the throwaway namespaces need.
fn util_linux() -> bool {
    let has = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    (has("unshare") && has("findmnt")) || common::skip("no unshare or findmnt (util-linux)")
}

#[test]
fn ch05_shared_root_exercise_stays_in_its_namespace() {
    if !root() || !util_linux() {
        return;
    }
    let (_serial, sandbox, ours) = sandbox();
    let before = Host::capture(&ours);
    let [cmd] = &exercise("ch05-mnt.md", 2)[..] else {
        panic!("chapter 5's exercise 2: expected one command");
    };
    assert!(
        cmd.starts_with("unshare -m "),
        "not in a throwaway mount namespace: {cmd}"
    );
    // The runtime as it is: nothing leaks, findmnt finds nothing.
    let (out, err) = sh(cmd, &sandbox, &[rootfs_var()]);
    assert_eq!(out, "", "{cmd}\n{err}");
    assert_eq!(
        before,
        Host::capture(&ours),
        "{cmd} changed the host\n{err}"
    );
    // The broken runtime's leak, stood in for by a bind mount made in a
    // mount namespace that shares `/`'s peer group: the throwaway
    // namespace gets it, the host does not.
    let ch05 = "target/debug/ch05-mnt --rootfs $R -- /bin/true";
    assert!(cmd.contains(ch05), "{cmd}");
    let leaky = cmd.replace(
        ch05,
        "unshare -m --propagation unchanged mount --bind $R $R",
    );
    let (out, err) = sh(&leaky, &sandbox, &[rootfs_var()]);
    assert!(
        out.contains(&*rootfs().to_string_lossy()),
        "the leak did not reach the throwaway namespace: {leaky}\n{out}{err}"
    );
    assert_eq!(
        before,
        Host::capture(&ours),
        "{leaky} changed the host\n{err}"
    );
}

#[test]
fn ch06_hostname_exercises_leave_the_hosts_name() {
    if !root() || !util_linux() {
        return;
    }
    let (_serial, sandbox, ours) = sandbox();
    let host = common::hostname();
    let before = Host::capture(&ours);
    for n in [1, 3] {
        for cmd in exercise("ch06-uts.md", n) {
            let (out, err) = sh(&cmd, &sandbox, &[rootfs_var()]);
            assert_eq!(out.lines().last(), Some("box"), "{cmd}\n{out}{err}");
            if n == 1 {
                // The container's own name first: its id, as docker does.
                let name = out.lines().next().unwrap_or_default();
                assert!(name.starts_with(&ours), "{cmd}: named {name:?}\n{err}");
            }
            assert_eq!(common::hostname(), host, "{cmd} renamed the host");
            assert_eq!(
                before,
                Host::capture(&ours),
                "{cmd} changed the host\n{err}"
            );
        }
    }
}

#[test]
fn ch08_exercises_keep_their_state_in_their_own_directory() {
    if !root() || !common::overlay_available() {
        return;
    }
    let (_serial, sandbox, ours) = sandbox();
    let before = Host::capture(&ours);
    let s = sandbox.dir.join("ex8");
    let vars = [
        rootfs_var(),
        ("S", s.to_string_lossy().into_owned()),
        ("L", common::image_args().join(" ")),
    ];
    let kept = |err: &str| -> PathBuf {
        let line = err
            .lines()
            .find_map(|l| l.split_once("kept the container's upper dir: "))
            .unwrap_or_else(|| panic!("no upper dir kept:\n{err}"));
        PathBuf::from(line.1)
    };

    let [one] = &exercise("ch08-overlay.md", 1)[..] else {
        panic!("chapter 8's exercise 1: expected one command");
    };
    let (_, err) = sh(one, &sandbox, &vars);
    let upper = kept(&err);
    assert!(
        upper.starts_with(&s),
        "{one} kept {} outside $S",
        upper.display()
    );
    let ls = std::fs::symlink_metadata(upper.join("bin/ls")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        ls.file_type().is_char_device() && ls.rdev() == 0,
        "{one}: no 0/0 whiteout"
    );
    assert_eq!(std::fs::read_to_string(upper.join("new")).unwrap(), "hi\n");

    let [two] = &exercise("ch08-overlay.md", 2)[..] else {
        panic!("chapter 8's exercise 2: expected one command");
    };
    let (_, err) = sh(two, &sandbox, &vars);
    let upper = kept(&err);
    assert!(
        upper.starts_with(&s),
        "{two} kept {} outside $S",
        upper.display()
    );
    assert_eq!(
        xattr(&upper.join("etc"), "trusted.overlay.opaque"),
        Some(b"y".to_vec()),
        "{two}: the upper etc is not opaque"
    );

    // Twice the same start with -v, then a look at the layers.
    let three = exercise("ch08-overlay.md", 3);
    assert_eq!(three.len(), 2, "chapter 8's exercise 3: {three:?}");
    let (_, first) = sh(&three[0], &sandbox, &vars);
    let (_, second) = sh(&three[0], &sandbox, &vars);
    let cached = |log: &str| log.lines().filter(|l| l.ends_with("(cached)")).count();
    assert_eq!(
        cached(&first),
        0,
        "the first start found layers cached:\n{first}"
    );
    assert_eq!(
        cached(&second),
        3,
        "the second start unpacked again:\n{second}"
    );
    let (layers, err) = sh(&three[1], &sandbox, &vars);
    assert!(layers.contains("by-file"), "{}: {layers}{err}", three[1]);

    // The page's last line removes everything the exercises made.
    let (preamble, _) = exercises(&page("ch08-overlay.md"));
    let [cleanup] = &commands(&preamble)[..] else {
        panic!("chapter 8's exercises: expected one cleanup command before them");
    };
    assert!(cleanup.starts_with("rm -rf $S"), "{cleanup}");
    sh(cleanup, &sandbox, &vars);
    let left: Vec<String> = common::names(&sandbox.dir)
        .into_iter()
        .filter(|n| n.starts_with("ex8"))
        .collect();
    assert!(left.is_empty(), "{cleanup} left {left:?}");
    assert_eq!(
        before,
        Host::capture(&ours),
        "chapter 8's exercises changed the host"
    );
}

/// The value of the extended attribute `name` of `path` (not following a
/// symlink), None if it has none.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (path, name) = (
        CString::new(path.as_os_str().as_bytes()).unwrap(),
        CString::new(name).unwrap(),
    );
    let mut value = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and outlive the call; the
    // kernel writes at most `value.len()` bytes into `value`.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    value.truncate(n);
    Some(value)
}

#[test]
fn the_commands_of_an_exercise() {
    let page = "# X\n\n## Exercises\n\nSet `S=/tmp/x`; `sudo rm -rf $S` at the end.\n\n\
                1. Run `sudo a --b $R`,\n   then `sudo ls -laR UPPER` and `cat /x`.\n\
                2. `sudo c -- sh -c 'd; e'`\n   and `sudo f $S-3`.\n\n## Next\n\n1. `sudo no`\n";
    let (preamble, items) = exercises(page);
    assert_eq!(commands(&preamble), ["rm -rf $S"]);
    assert_eq!(items.len(), 2);
    assert_eq!(commands(&items[0]), ["a --b $R"]);
    assert_eq!(commands(&items[1]), ["c -- sh -c 'd; e'", "f $S-3"]);
    assert!(has_placeholder("ls UPPER/etc") && has_placeholder("PID"));
    assert!(has_placeholder("--cap-add NET_ADMIN") && !has_placeholder("x $R $S-3 $L"));
    assert!(!has_placeholder(
        "ch08-overlay -v --state-dir $S-3 $L -- true"
    ));
}
