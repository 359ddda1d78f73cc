//! `cargo xtask demo NN`: a chapter's demo, live, for an audience. The
//! demo is the chapter's snapshot tests, run one at a time with
//! `STEPBOX_DEMO=1` (tests/common/demo.rs): each command is shown before it
//! runs, with a pause, then its output as it comes, and each snapshot's
//! verdict says whether the transcript matches the tested one (insta's
//! comparison, `INSTA_UPDATE=no`: nothing is written). The same commands as
//! the tests, because they are the tests. At the end, the suite's own sweep
//! (tests/zz_leftovers.rs) checks that nothing the demo made is left.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Context, Result};

/// One chapter's demo: what it shows, and the tests (test file, test name)
/// whose snapshots the chapter's book page includes, in the order shown.
pub struct Chapter {
    pub number: u32,
    pub shows: &'static str,
    pub tests: &'static [(&'static str, &'static str)],
    /// The snapshots the page includes that no test of the demo makes,
    /// and why (tests/live_demo.rs checks that these are all).
    pub left_out: &'static [(&'static str, &'static str)],
}

/// Every chapter's demo.
pub const CHAPTERS: &[Chapter] = &[
    Chapter {
        number: 1,
        shows: "the probe from the shell, then as chapter 1's child: nothing \
                isolated; exit statuses passed through",
        tests: &[("demos", "ch01_a_process")],
        left_out: &[],
    },
    Chapter {
        number: 2,
        shows: "PID 1 in a pid namespace of its own, which SIGTERM does not \
                kill; a zombie that --init reaps",
        tests: &[
            ("demos", "ch02_pid_namespace"),
            ("demos", "ch02_init_reaps_orphans"),
        ],
        left_out: &[],
    },
    Chapter {
        number: 3,
        shows: "a network namespace with only lo; a veth that reaches the host \
                (a stand-in namespace); subnets in use refused",
        tests: &[
            ("demos", "ch03_net_namespace"),
            ("demos", "ch03_veth_reaches_the_host_and_is_removed"),
            ("demos", "ch03_veth_refuses_a_subnet_the_host_uses"),
        ],
        left_out: &[],
    },
    Chapter {
        number: 4,
        shows: "a host message queue that the container's IPC namespace \
                does not see",
        tests: &[("demos", "ch04_ipc_namespace")],
        left_out: &[],
    },
    Chapter {
        number: 5,
        shows: "a root and a /proc of the container's own, step by step (-v); \
                a chroot escaped, a pivot_root not",
        tests: &[
            ("demos", "ch05_mnt_namespace"),
            ("demos", "ch05_chroot_can_be_escaped_pivot_root_cannot"),
        ],
        left_out: &[],
    },
    Chapter {
        number: 6,
        shows: "a hostname of the container's own, which it may change \
                and the host's stays",
        tests: &[("demos", "ch06_uts_namespace")],
        left_out: &[
            ("errors__bad_input", "error messages, not the namespace"),
            ("errors__usage", "error messages, not the namespace"),
        ],
    },
    Chapter {
        number: 7,
        shows: "limits seen inside; a memory hog OOM-killed, a fork bomb \
                stopped, a busy loop throttled; where the cgroups go (-v)",
        tests: &[
            ("cgroups", "ch07_limits_are_visible_inside"),
            ("cgroups", "ch07_memory_hog_is_oom_killed"),
            ("cgroups", "ch07_fork_bomb_stops_at_the_pids_limit"),
            ("cgroups", "ch07_busy_loop_is_throttled"),
            ("cgroups", "ch07_verbose_placement"),
        ],
        left_out: &[],
    },
    Chapter {
        number: 8,
        shows: "a root made of three image layers, with whiteouts; writes \
                that go to the container's upper dir only",
        tests: &[
            ("overlay", "ch08_layers_and_whiteouts"),
            ("overlay", "ch08_writes_go_to_the_upper_dir"),
        ],
        left_out: &[
            (
                "overlay__ch08_bad_layers",
                "malicious layers, for the unpacker",
            ),
            (
                "overlay__ch08_not_a_file",
                "error cases, by the test's own runner",
            ),
            (
                "overlay__ch08_teardown_fails",
                "error cases, by the test's own runner",
            ),
        ],
    },
    Chapter {
        number: 9,
        shows: "attacks that work in chapter 8's container and fail in \
                chapter 9's; system calls stopped at the capability check",
        tests: &[
            ("privileges", "ch09_attacks"),
            ("privileges", "ch09_system_calls"),
            ("privileges", "ch09_release_agent"),
        ],
        left_out: &[],
    },
    Chapter {
        number: 10,
        shows: "system calls that docker's seccomp profile refuses even to \
                root with CAP_SYS_ADMIN; a hand-written tiny filter",
        tests: &[
            ("seccomp", "ch10_system_calls"),
            ("seccomp", "the_tiny_filter_refuses_two_calls"),
        ],
        left_out: &[(
            "seccomp__ch10_small_profile",
            "the compiler's output: no command runs",
        )],
    },
    Chapter {
        number: 11,
        shows: "root in the container is uid 100000 on the host, and cannot \
                kill a host process",
        tests: &[
            (
                "userns",
                "ch11_root_in_the_container_is_an_unprivileged_uid_on_the_host",
            ),
            ("userns", "root_in_the_container_cannot_kill_a_host_process"),
        ],
        left_out: &[(
            "rootless__rootless_ids",
            "as an ordinary user, by the test's own runner",
        )],
    },
    Chapter {
        number: 12,
        shows: "podman, containerd and dockerd driving chapter 12's runtime: \
                the calls each makes, the probe under podman, docker exec, \
                a terminal; events reporting an OOM",
        tests: &[
            ("engines", "podman_calls"),
            ("engines", "containerd_calls"),
            ("engines", "podman_run_rm"),
            ("engines", "docker_exec"),
            ("engines", "podman_tty"),
            ("oci", "events_report_an_oom_and_end_with_the_container"),
        ],
        left_out: &[],
    },
];

/// The chapter `arg` names: `6`, `06`.
pub fn chapter(arg: &str) -> Option<&'static Chapter> {
    let n: u32 = arg.parse().ok()?;
    CHAPTERS.iter().find(|c| c.number == n)
}

/// A pace as tests/common/demo.rs reads it: `enter`, or seconds.
pub fn valid_pace(pace: &str) -> bool {
    pace == "enter" || pace.parse::<f64>().is_ok_and(|s| s.is_finite() && s >= 0.0)
}

/// `demo list` | `demo NN [--pace enter|SECONDS]`.
pub fn main(mut args: impl Iterator<Item = String>) -> Result<()> {
    let (mut which, mut pace) = (None, String::from("enter"));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pace" => pace = args.next().ok_or_else(|| anyhow!("--pace needs a value"))?,
            _ if which.is_none() => which = Some(arg),
            other => bail!("demo: unexpected argument {other:?}"),
        }
    }
    if !valid_pace(&pace) {
        bail!("--pace {pace:?}: `enter` (the default), or seconds (0: no pause)");
    }
    let which = which.ok_or_else(|| anyhow!("demo: which chapter? (`cargo xtask demo list`)"))?;
    if which == "list" {
        for c in CHAPTERS {
            let first = format!("{:02}  ", c.number);
            print!("{}", wrap(&first, c.shows, 80, "    "));
            for (snapshot, why) in c.left_out {
                let text = format!("{snapshot} ({why})");
                print!("{}", wrap("    not live: ", &text, 80, "      "));
            }
        }
        return Ok(());
    }
    let chapter = chapter(&which)
        .ok_or_else(|| anyhow!("demo: no chapter {which:?} (`cargo xtask demo list`)"))?;
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "demo {which} needs root (namespaces, mounts, cgroups): run it as root, as the tests are"
        );
    }
    if run(chapter, &pace)? {
        Ok(())
    } else {
        // The verdict was the last line; no second one.
        std::process::exit(1)
    }
}

/// Set by SIGINT while a test runs: the test stops itself (a panic, its
/// cleanup runs) and xtask, which gets the same Ctrl-C, runs no further
/// test.
static STOPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOPPED.store(true, Ordering::SeqCst);
}

/// Colours, only on a terminal.
struct Style(bool);

impl Style {
    fn paint(&self, sgr: &str, text: &str) -> String {
        match self.0 {
            true => format!("\x1b[{sgr}m{text}\x1b[0m"),
            false => text.to_owned(),
        }
    }
}

/// Runs the chapter's demo; whether everything matched and the host is clean.
fn run(chapter: &Chapter, pace: &str) -> Result<bool> {
    // SAFETY: isatty(3) only looks at the descriptor.
    let tty = unsafe { libc::isatty(1) } == 1;
    let style = Style(tty && std::env::var_os("NO_COLOR").is_none());
    let mut files: Vec<&str> = chapter.tests.iter().map(|&(f, _)| f).collect();
    files.push("zz_leftovers");
    files.sort();
    files.dedup();
    let exes = build(&files)?;
    let run_id = run_id()?;
    // SAFETY: the handler only stores to an atomic (async-signal-safe);
    // SA_RESTART keeps our waits going, the test reacts to its own SIGINT.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut()) != 0 {
            bail!("sigaction(SIGINT): {}", std::io::Error::last_os_error());
        }
    }
    // As tests/common/demo.rs decides: Enter is read from /dev/tty, if any.
    let hint = match pace {
        "enter" if std::fs::File::open("/dev/tty").is_ok() => {
            "Enter runs each command shown; Ctrl-C stops the demo (and cleans up)"
        }
        "enter" => "no pauses: no terminal to press Enter on",
        _ if pace.parse::<f64>().is_ok_and(|s| s == 0.0) => "no pauses",
        _ => "a pause after each command shown; Ctrl-C stops the demo (and cleans up)",
    };
    let title = wrap(
        &format!("Chapter {}'s demo: ", chapter.number),
        chapter.shows,
        80,
        "  ",
    );
    println!("{}", style.paint("1", title.trim_end()));
    println!("{}\n", style.paint("2", &format!("({hint})")));
    let mut failed = Vec::new();
    for &(file, test) in chapter.tests {
        println!("{}", style.paint("1;36", &format!("── {file}::{test}")));
        let exe = &exes[file];
        let mut cmd = Command::new(exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("STEPBOX_DEMO", "1")
            .env("STEPBOX_DEMO_FD", "3")
            .env("STEPBOX_DEMO_PACE", pace)
            .env("INSTA_UPDATE", "no")
            // A panic's message is what the demo giver needs, not its stack.
            .env("RUST_BACKTRACE", "0")
            .env_remove("INSTA_FORCE_PASS");
        let out = run_test(cmd, exe, &run_id, true)?;
        if !out.ok {
            failed.push(format!("{file}::{test}"));
            if !STOPPED.load(Ordering::SeqCst) {
                println!("{}", style.paint("2", "what the test said:"));
                print!("{}", what_the_test_said(&out.text, test));
            }
        }
        println!();
        if STOPPED.load(Ordering::SeqCst) {
            break;
        }
    }
    // The sweep, also after a Ctrl-C: what the demo made must be gone.
    let sweep_exe = &exes["zz_leftovers"];
    let mut sweep = Command::new(sweep_exe);
    sweep.args([
        "the_suite_left_nothing_behind",
        "--exact",
        "--ignored",
        "--test-threads=1",
    ]);
    // Out of the terminal's reach: a Ctrl-C now would fail the sweep, not
    // stop anything that needs stopping.
    sweep.process_group(0);
    let mut sweep = run_test(sweep, sweep_exe, &run_id, false)?;
    let left = scratch_left(&run_id);
    if !left.is_empty() {
        sweep.ok = false;
        sweep
            .text
            .push_str(&format!("left in {SCRATCH}: {}\n", left.join(" ")));
    }
    let stopped = STOPPED.load(Ordering::SeqCst);
    if sweep.ok {
        println!(
            "{}",
            style.paint("32", "✓ the host is clean: nothing the demo made is left")
        );
    } else {
        println!(
            "{}",
            style.paint("1;31", "✗ the demo left something on the host:")
        );
        print!("{}", sweep.text);
    }
    let verdict = match (stopped, failed.is_empty()) {
        (true, _) => style.paint(
            "1;33",
            &format!("Chapter {}'s demo was stopped (Ctrl-C).", chapter.number),
        ),
        (false, true) => style.paint(
            "1;32",
            &format!(
                "Chapter {}'s demo matches the tested transcripts ({}).",
                chapter.number,
                match chapter.tests.len() {
                    1 => "1 test".to_owned(),
                    n => format!("{n} tests"),
                }
            ),
        ),
        (false, false) => style.paint(
            "1;31",
            &format!(
                "Chapter {}'s demo FAILED: {} (above: what differs, or what the test said).",
                chapter.number,
                failed.join(", ")
            ),
        ),
    };
    println!("{verdict}");
    let _ = std::io::stdout().flush();
    Ok(!stopped && failed.is_empty() && sweep.ok)
}

/// A failed test's output without libtest's own lines (which test runs,
/// the summary), build steps, or insta's advice to use `cargo insta`:
/// insta's diff and the panic's message.
fn what_the_test_said(text: &str, test: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line
            .strip_prefix(&format!("test {test} ... "))
            .unwrap_or(line);
        let libtest = line.starts_with("running ")
            || line.starts_with("test result: ")
            || line == "failures:"
            || line == "FAILED"
            || line == format!("    {test}")
            || line.starts_with("xtask: ")
            || line.starts_with("Stopped on the first failure.")
            || line.starts_with("note: run with `RUST_BACKTRACE=1`");
        if !libtest && !(line.is_empty() && (out.is_empty() || out.ends_with("\n\n"))) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `text`'s words after `first`, in lines of at most `width` columns (a
/// longer word has one to itself), each line after the first starting
/// with `indent`.
fn wrap(first: &str, text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut start = line.len();
    for word in text.split_whitespace() {
        if line.len() > start && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
            start = line.len();
        } else if line.len() > start {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// Where the tests make their scratch dirs (tests/common `SCRATCH`).
const SCRATCH: &str = "/tmp/stepbox-tests";

/// The scratch dirs named after a container id of this run
/// (`ch09-ID`, `state-ID`): what the sweep does not look for by every name.
fn scratch_left(run_id: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(SCRATCH) else {
        return vec![];
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.rsplit('-').next().is_some_and(|id| {
                id.len() == 12
                    && id.starts_with(run_id)
                    && id.bytes().all(|b| b.is_ascii_hexdigit())
            })
        })
        .collect()
}

/// 4 hex digits for `STEPBOX_TEST_RUN`: the demo's containers' ids start
/// with them, and the sweep looks for them.
fn run_id() -> Result<String> {
    let mut b = [0u8; 2];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!("{:02x}{:02x}", b[0], b[1]))
}

/// The chapter binaries, and the test executables of `files` (by name),
/// built as `cargo test` builds them.
fn build(files: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    crate::step("demo: building the chapters and their tests (cargo build, cargo test --no-run)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = crate::paths::workspace_root();
    let status = Command::new(&cargo)
        .args(["build", "--quiet", "--bins"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --bins failed");
    }
    let mut test = Command::new(&cargo);
    test.args(["test", "--no-run", "--quiet", "--message-format=json"])
        .current_dir(&root)
        .stderr(Stdio::inherit());
    for f in files {
        test.args(["--test", f]);
    }
    let out = test.output().context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("cargo test --no-run failed");
    }
    let mut exes = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let kind_test = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(name), Some(exe)) = (
            kind_test,
            msg["target"]["name"].as_str(),
            msg["executable"].as_str(),
        ) {
            exes.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    for f in files {
        if !exes.contains_key(*f) {
            bail!("cargo test --no-run built no tests/{f}.rs");
        }
    }
    Ok(exes)
}

struct Outcome {
    ok: bool,
    /// What the test printed on its stdout and stderr: libtest's lines,
    /// insta's diff, a panic's message.
    text: String,
}

/// Runs one test executable with the demo's run id, the chapter binaries
/// next to it (`target/debug`), and, if `show`, the demo on descriptor 3:
/// our stdout, the audience's terminal.
fn run_test(mut cmd: Command, exe: &Path, run_id: &str, show: bool) -> Result<Outcome> {
    let bin_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("{}: not in target/*/deps", exe.display()))?;
    cmd.env("STEPBOX_BIN_DIR", bin_dir)
        .env("STEPBOX_TEST_RUN", run_id)
        .current_dir(crate::paths::workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !show {
        return collect(&mut cmd);
    }
    let _ = std::io::stdout().flush();
    // SAFETY: fcntl(2) on our own stdout: a copy, closed below.
    let ours = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 10) };
    if ours < 0 {
        bail!("dup(1): {}", std::io::Error::last_os_error());
    }
    // SAFETY: dup2(2) is async-signal-safe; `ours` stays open in the
    // parent until after the spawn, and dup2 clears its close-on-exec.
    unsafe {
        cmd.pre_exec(move || match libc::dup2(ours, 3) {
            3 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    let result = collect(&mut cmd);
    // SAFETY: `ours` is our own descriptor, closed once.
    unsafe { libc::close(ours) };
    result
}

/// Spawns `cmd`, keeps its stdout and stderr, waits for it.
fn collect(cmd: &mut Command) -> Result<Outcome> {
    let mut child = cmd.spawn().context("starting a test executable")?;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = err.read_to_end(&mut text);
        text
    });
    let mut text = Vec::new();
    let _ = out.read_to_end(&mut text);
    text.extend(errs.join().unwrap());
    let status = child.wait()?;
    Ok(Outcome {
        ok: status.success(),
        text: String::from_utf8_lossy(&text).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapters_are_numbered_in_order_with_tests() {
        for (i, c) in CHAPTERS.iter().enumerate() {
            assert_eq!(c.number as usize, i + 1);
            assert!(!c.tests.is_empty());
        }
        assert_eq!(chapter("06").unwrap().number, 6);
        assert_eq!(chapter("12").unwrap().number, 12);
        assert!(chapter("13").is_none() && chapter("x").is_none());
    }

    #[test]
    fn list_lines_fit_80_columns() {
        assert_eq!(wrap("01  ", "a b", 80, "    "), "01  a b\n");
        assert_eq!(
            wrap("01  ", "aaa bbb ccc", 8, "    "),
            "01  aaa\n    bbb\n    ccc\n"
        );
        for c in CHAPTERS {
            let text = wrap(&format!("{:02}  ", c.number), c.shows, 80, "    ");
            assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
            for (snapshot, why) in c.left_out {
                let text = format!("{snapshot} ({why})");
                let text = wrap("    not live: ", &text, 80, "      ");
                assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
            }
        }
    }

    #[test]
    fn a_failed_tests_output_without_libtests_lines() {
        let text = "\nrunning 1 test\ntest ch06_x ... ━━ Snapshot Summary ━━\n-old\n+new\n\
                    Stopped on the first failure. Run `cargo insta test` to run all snapshots.\n\
                    FAILED\n\nfailures:\n\nfailures:\n    ch06_x\n\n\
                    test result: FAILED. 0 passed; 1 failed\n\nxtask: rootfs: up to date\n\n\
                    thread 'ch06_x' panicked at x.rs:1:2:\nsnapshot assertion failed\n\
                    note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            what_the_test_said(text, "ch06_x"),
            "━━ Snapshot Summary ━━\n-old\n+new\n\n\
             thread 'ch06_x' panicked at x.rs:1:2:\nsnapshot assertion failed\n"
        );
    }

    #[test]
    fn paces() {
        for ok in ["enter", "0", "1.5", "3"] {
            assert!(valid_pace(ok), "{ok}");
        }
        for bad in ["", "-1", "inf", "NaN", "fast"] {
            assert!(!valid_pace(bad), "{bad}");
        }
    }
}
