//! What every demo test shares: finding the binaries and the rootfs, running a
//! chapter binary as a transcript, failing as NOT RUN without root,
//! and checking that the host is left as it was.
#![allow(dead_code)]

pub mod demo;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Workspace root (this package is the root package).
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A test that cannot run here (no root, a kernel feature missing) fails,
/// with "NOT RUN" and the reason: libtest has no "skipped", and a test
/// that returned early would print "ok" for a demo nobody saw. It never
/// returns; its type lets callers write `cond || common::skip(..)`.
pub fn skip(reason: &str) -> bool {
    panic!("NOT RUN: {reason} (a test that cannot run here fails rather than print \"ok\")");
}

/// `if !common::root() { return; }` at the top of every privileged test.
pub fn root() -> bool {
    // In a live demo, Ctrl-C from here on stops the test by a panic.
    demo::get();
    nix::unistd::geteuid().is_root()
        || skip("needs root (namespaces, mounts, cgroups); run the suite as root")
}

/// The directory holding the chapter binaries: `STEPBOX_BIN_DIR` (the v2 VM sets
/// it), else this test executable's target dir, after one `cargo build` of the default members so the
/// binaries are never stale.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("STEPBOX_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bins"])
            .current_dir(workspace())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build --workspace --bins failed");
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().to_path_buf() // target/debug/deps -> target/debug
    })
}

/// The default rootfs (busybox + the probe), built once by the project's own code.
pub fn rootfs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("STEPBOX_ROOTFS") {
            return PathBuf::from(dir);
        }
        xtask::rootfs::ensure(&xtask::paths::default_rootfs()).expect("building the default rootfs")
    })
}

/// The variable scripts/test.sh sets to 4 hex digits, the same for every
/// test process of one run, so that its final sweep (tests/zz_leftovers.rs)
/// can tell this run's containers from another run's on the same host.
pub const RUN_VAR: &str = "STEPBOX_TEST_RUN";

/// This run's 4 hex digits: `STEPBOX_TEST_RUN`, else random for this
/// process (a run nobody sweeps). A malformed value fails loudly: ids made
/// from a guess would not be the ones the sweep looks for.
pub fn run_prefix() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| match std::env::var(RUN_VAR) {
        Ok(run) if is_hex(&run, 4) => run.to_ascii_lowercase(),
        Ok(run) => panic!("{RUN_VAR}={run:?}: must be 4 hex digits"),
        Err(_) => random_hex(4),
    })
}

/// A container id unique to this test process and call, 12 hex digits (the
/// most the runtime takes): this run's 4 ([`run_prefix`]), 5 random ones
/// for this process (several test processes of one run may run at once), a
/// 3-digit counter. Runtimes not started by the tests choose 8 digits, so
/// an id of another run or of a user never looks like this run's.
pub fn unique_id() -> String {
    static PROCESS: OnceLock<String> = OnceLock::new();
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    assert!(
        n < 0x1000,
        "more than 4096 container ids in one test process"
    );
    let process = PROCESS.get_or_init(|| random_hex(5));
    format!("{}{process}{n:03x}", run_prefix())
}

/// Whether `id` is one [`unique_id`] made in this run (in any of its test processes).
pub fn is_this_runs_id(id: &str) -> bool {
    is_hex(id, 12) && id.starts_with(run_prefix())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn random_hex(digits: usize) -> String {
    let mut b = [0u8; 8];
    getrandom(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    hex[..digits].to_owned()
}

fn getrandom(buf: &mut [u8]) {
    // SAFETY: the pointer and length describe `buf`, which outlives the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    assert_eq!(n, buf.len() as isize, "getrandom(2)");
}

/// One run of a chapter binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// `$ chNN-name ARGS` then stdout, stderr and a non-zero exit status: what the book shows.
    pub transcript: String,
}

/// Runs `bin args...` with `id` as its container id (`bin`: a chapter
/// binary's name, or a program's absolute path), as [`run_command`] does.
pub fn run_id(id: &str, bin: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin_dir().join(bin));
    cmd.args(args).env("STEPBOX_CONTAINER_ID", id);
    run_command(cmd, bin, args)
}

/// Runs `cmd`, which is `bin args...`, as a transcript: stdin closed,
/// under a time limit (a hung container must fail the test, not the CI
/// run). In a live demo ([`demo`]), the command is shown before it runs
/// and its output as it comes.
pub fn run_command(mut cmd: Command, bin: &str, args: &[&str]) -> Run {
    let demo = demo::get();
    if let Some(demo) = demo {
        demo.command(bin, args);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
    let tees = demo.map(|demo| {
        let out = demo.tee(child.stdout.take().unwrap());
        (out, demo.tee(child.stderr.take().unwrap()))
    });
    let pid = child.id();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::SIGKILL,
            );
            panic!("{bin} {args:?} did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stderr) = match tees {
        Some((out, err)) => (out.join().unwrap(), err.join().unwrap()),
        None => {
            let out = child.wait_with_output().unwrap();
            (out.stdout, out.stderr)
        }
    };
    let code = std::os::unix::process::ExitStatusExt::signal(&status)
        .map_or_else(|| status.code().unwrap(), |s| 128 + s);
    if let Some(demo) = demo {
        demo.status(code);
    }
    Run::new(bin, args, code, &stdout, &stderr)
}

/// `$ bin ARGS`, each argument as a reader would type it.
fn command_line(bin: &str, args: &[&str]) -> String {
    let shown: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!("$ {bin} {}", shown.join(" "))
}

impl Run {
    /// `$ bin ARGS` then stdout, stderr and a non-zero exit status, redacted.
    pub fn new(bin: &str, args: &[&str], code: i32, stdout: &[u8], stderr: &[u8]) -> Run {
        let stdout = String::from_utf8_lossy(stdout).into_owned();
        let stderr = String::from_utf8_lossy(stderr).into_owned();
        let mut transcript = format!("{}\n{stdout}{stderr}", command_line(bin, args));
        if code != 0 {
            transcript.push_str(&format!("[exit status {code}]\n"));
        }
        Run {
            code,
            stdout,
            stderr,
            transcript: redact(&transcript),
        }
    }
}

pub fn run(bin: &str, args: &[&str]) -> Run {
    run_id(&unique_id(), bin, args)
}

/// An argument as a reader would type it in a shell.
fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.,:=+@%".contains(&b))
    {
        arg.to_owned()
    } else if !arg.contains('\'') {
        format!("'{arg}'")
    } else if !arg.contains(['"', '$', '`', '\\', '!']) {
        format!("\"{arg}\"")
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// Replaces what differs between runs and machines, and nothing else.
pub fn redact(text: &str) -> String {
    let mut out = text.replace(&rootfs_str(), "ROOTFS");
    out = out.replace(
        &format!("hostname: {}\n", hostname()),
        "hostname: [the host's]\n",
    );
    for (re, with) in redactions() {
        out = re.replace_all(&out, *with).into_owned();
    }
    out
}

fn rootfs_str() -> String {
    rootfs().to_string_lossy().into_owned()
}

fn redactions() -> &'static [(regex::Regex, &'static str)] {
    static R: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    R.get_or_init(|| {
        [
            // Host pids: a container's own pids are small; the host's are not.
            (
                r"(?m)^(pid|ppid|/proc/self): [1-9][0-9]{2,}",
                "$1: [host pid]",
            ),
            // Counts of host-wide things, shown only when the probe does not list them.
            (
                r"(?m)^(\w[\w ]*): [0-9]+\n(  \(not listed: the host)",
                "$1: [n]\n$2",
            ),
            // Per-test state dirs (chapter 8).
            (r"/tmp/stepbox-tests/state-[0-9a-f]{12}", "STATE"),
            // The filesystem the rootfs directory lives on.
            (
                r"(?m)^  / (ext[234]|xfs|btrfs|zfs|f2fs|tmpfs) ",
                "  / [the host's fs type] ",
            ),
            // System V IPC ids count up across the machine's lifetime.
            (r"(key 0x[0-9a-f]{8}) id [0-9]+", "$1 id N"),
            // Container ids chosen by unique_id() (12 hex digits) or by the runtime (8).
            (r"\bsb(?:[0-9a-f]{4}){2,3}\b", "sbID"),
            (r"\bstepbox-(?:[0-9a-f]{4}){2,3}\b", "stepbox-ID"),
        ]
        .into_iter()
        .map(|(re, with)| (regex::Regex::new(re).unwrap(), with))
        .collect()
    })
}

/// Snapshots are stored without insta's expression line, so that every
/// `.snap` has a 3-line header and the book can include it from line 4,
/// and with their command lines as the book shows them ([`for_the_book`]).
/// A macro so that the file is named after the calling test file
/// (`tests/snapshots/demos__ch02_after.snap`).
#[macro_export]
macro_rules! snapshot {
    ($name:expr, $text:expr) => {{
        let text = $crate::common::for_the_book(&$text);
        let name = $name;
        let shown = ::std::string::ToString::to_string(&name);
        let mut settings = insta::Settings::clone_current();
        settings.set_omit_expression(true);
        // In a live demo, also the verdict the audience sees.
        $crate::common::demo::verdict(&shown, || {
            settings.bind(|| insta::assert_snapshot!(name, text))
        });
    }};
}

/// The widest a transcript's command line may be: a terminal's 80 columns,
/// which the book's code blocks hold with room to spare (tests/book.rs
/// checks them in a browser).
pub const COMMAND_WIDTH: usize = 80;

/// What the default image's `--layer` arguments are shown as: the book says
/// so where they first appear, and `LAYERS='--layer IMAGE/...'` makes the
/// line runnable as shown (the shell splits `$LAYERS` into words).
pub const LAYERS: &str = "$LAYERS";

/// A transcript as the book shows it: in every `$ ` line, the default
/// image's three `--layer IMAGE/...` arguments become [`LAYERS`], and a
/// line wider than [`COMMAND_WIDTH`] is broken between arguments with ` \`
/// continuations indented by 4 spaces, an option kept with its value. A
/// quoted `sh -c` script too wide for a line of its own is broken inside,
/// outside its own quotes: after a `;`, `&&`, `||`, `|` or `&`, where sh
/// reads a newline as it reads the space, else between two words with a
/// ` \` that the script's sh reads as a continuation; so the lines shown
/// still run as they are. Output lines are left as printed.
pub fn for_the_book(text: &str) -> String {
    let layers: Vec<String> = xtask::image::LAYERS
        .iter()
        .map(|l| format!("--layer IMAGE/{l}"))
        .collect();
    let layers = layers.join(" ");
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        match body.strip_prefix("$ ") {
            Some(command) => {
                let command = replace_words(command, &layers, LAYERS);
                let (command, comment) = split_comment(&command);
                out.push_str(&fold_command_with(command, comment, COMMAND_WIDTH));
            }
            None => out.push_str(body),
        }
        out.push_str(end);
    }
    out
}

/// `text` with `from` replaced where it stands as whole words.
fn replace_words(text: &str, from: &str, to: &str) -> String {
    let padded = format!(" {text} ").replace(&format!(" {from} "), &format!(" {to} "));
    padded[1..padded.len() - 1].to_owned()
}

/// A command line and its `# comment` (a word that starts with `#`,
/// outside quotes, to the end of the line), with the blanks before it.
fn split_comment(line: &str) -> (&str, &str) {
    let (inside, _) = quoted(line);
    let mut prev = ' ';
    for ((i, c), inside) in line.char_indices().zip(inside) {
        if c == '#' && prev == ' ' && !inside {
            let command = line[..i].trim_end();
            return (command, &line[command.len()..]);
        }
        prev = c;
    }
    (line, "")
}

/// `$ COMMAND` folded to `width` columns (see [`for_the_book`]).
pub fn fold_command(command: &str, width: usize) -> String {
    fold_command_with(command, "", width)
}

/// [`fold_command`], with a comment that ends the last line, as it was
/// written: a ` \` inside it would be part of the comment, so the command's
/// last argument moves to a line of its own where that leaves it room.
fn fold_command_with(command: &str, comment: &str, width: usize) -> String {
    // Room on a line for its ` \` continuation.
    let room = width - 2;
    let mut lines = vec![String::from("$")];
    let place = |lines: &mut Vec<String>, unit: &str| {
        let last = lines.last_mut().unwrap();
        if last == "$" || last.chars().count() + 1 + unit.chars().count() <= room {
            last.push(' ');
            last.push_str(unit);
        } else {
            lines.push(format!("    {unit}"));
        }
    };
    let mut last_unit = String::new();
    for unit in units(&shell_words(command)) {
        if 4 + unit.chars().count() > room && !is_quoted(&unit) {
            // An option and a value too wide for one line: a line each.
            for word in shell_words(&unit) {
                place(&mut lines, &word);
            }
        } else {
            place(&mut lines, &unit);
        }
        last_unit = unit;
    }
    let last = lines.last_mut().unwrap();
    let too_wide = last.chars().count() + comment.chars().count() > width;
    if let Some(rest) = last.strip_suffix(&format!(" {last_unit}")) {
        if too_wide && rest != "$" && rest.trim() != "" {
            *last = rest.to_owned();
            lines.push(format!("    {last_unit}"));
        }
    }
    lines.last_mut().unwrap().push_str(comment);
    let mut out = String::new();
    for line in lines.iter().flat_map(|l| break_script(l, width)) {
        if !out.is_empty() {
            // A backslash inside the script's quotes is the script's own.
            out.push_str(if in_quotes(&out) { "\n" } else { " \\\n" });
        }
        out.push_str(&line);
    }
    out
}

/// Whether `word` is quoted whole: `'...'` or `"..."`.
fn is_quoted(word: &str) -> bool {
    let (inside, open) = quoted(word);
    let n = inside.len();
    !open && n >= 2 && word.starts_with(['\'', '"']) && inside[1..n - 1].iter().all(|&i| i)
}

/// A line of 4 spaces and a quoted script, wider than `width`, broken
/// inside the script so that each piece fits where it can: after an
/// operator (`;`, `&&`, `||`, `|`, `&`), where a newline does what the
/// space did, else between words with a ` \` that the script's shell
/// reads as a continuation; never inside the script's own quotes. Pieces
/// after the first are indented by 4 spaces, inside the quotes (sh skips
/// them). Other lines as they are.
fn break_script(line: &str, width: usize) -> Vec<String> {
    let Some(word) = line.strip_prefix("    ").filter(|w| is_quoted(w)) else {
        return vec![line.to_owned()];
    };
    if line.chars().count() <= width {
        return vec![line.to_owned()];
    }
    let chars: Vec<char> = word.chars().collect();
    let script: String = chars[1..chars.len() - 1].iter().collect();
    let (inside, _) = quoted(&script);
    // (index in `chars` of a space, whether an operator ends before it)
    let mut breaks = Vec::new();
    let mut token = String::new();
    for (i, c) in script.chars().enumerate() {
        if c != ' ' || inside[i] {
            token.push(c);
            continue;
        }
        // `\;` is find's argument, not an operator.
        let operator = matches!(token.as_str(), "&&" | "||" | "|" | "&")
            || (token.ends_with(';') && !token.ends_with("\\;"));
        if !token.is_empty() {
            breaks.push((i + 1, operator));
        }
        token.clear();
    }
    let mut pieces = Vec::new();
    let mut start = 0;
    loop {
        // Each piece is 4 columns of indent; the last also has the closing
        // quote and room for a ` \`, the others a ` \` if between words.
        let len = |end: usize| 4 + end - start;
        if len(chars.len()) + 2 <= width {
            break;
        }
        let after = || breaks.iter().copied().filter(|&(b, _)| b > start);
        let fit = |&(b, operator): &(usize, bool)| len(b) + if operator { 0 } else { 2 } <= width;
        let best = after()
            .filter(|b| b.1)
            .take_while(|b| fit(b))
            .last()
            .or_else(|| after().take_while(|b| fit(b)).last())
            .or_else(|| after().next());
        let Some((end, operator)) = best else { break };
        let piece: String = chars[start..end].iter().collect();
        pieces.push(match operator {
            true => format!("    {piece}"),
            false => format!("    {piece} \\"),
        });
        start = end + 1;
    }
    pieces.push(format!("    {}", chars[start..].iter().collect::<String>()));
    pieces
}

/// For each character of `text`, whether it stands inside shell quotes
/// (the quotes themselves do not), and whether the text ends inside them.
fn quoted(text: &str) -> (Vec<bool>, bool) {
    let mut inside = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        let was = quote.is_some();
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some('\''), '\'') => quote = None,
            (Some('\''), _) => {}
            (_, '\\') => escaped = true,
            (Some('"'), '"') => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            _ => {}
        }
        inside.push(was && quote.is_some());
    }
    (inside, quote.is_some())
}

fn in_quotes(text: &str) -> bool {
    quoted(text).1
}

/// The words of a command line as [`Run::new`] quoted them.
fn shell_words(command: &str) -> Vec<String> {
    let (inside, _) = quoted(command);
    let mut words = vec![String::new()];
    for (c, inside) in command.chars().zip(inside) {
        match c {
            ' ' if !inside && !words.last().unwrap().ends_with('\\') => words.push(String::new()),
            c => words.last_mut().unwrap().push(c),
        }
    }
    words.retain(|w| !w.is_empty());
    words
}

/// Words grouped as they are best kept on one line: an option with its
/// value (`--rootfs ROOTFS`), `--` with the command's name (and `sh -c`
/// with `-c`, so that a script too long to share a line starts a new one).
fn units(words: &[String]) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    let mut words = words.iter().peekable();
    while let Some(word) = words.next() {
        let mut unit = word.clone();
        match words.peek() {
            Some(next) if word == "--" && *next == "sh" => {
                unit = format!("-- {}", words.next().unwrap());
                if words.peek().is_some_and(|w| *w == "-c") {
                    unit.push_str(" -c");
                    words.next();
                }
            }
            Some(next) if word.starts_with('-') && !next.starts_with('-') => {
                unit = format!("{word} {next}");
                words.next();
            }
            _ => {}
        }
        units.push(unit);
    }
    units
}

/// `probe attempt NAME...`'s output as `NAME: answer` pairs, in order;
/// the run must have succeeded.
pub fn attempts(run: &Run) -> Vec<(String, String)> {
    assert_eq!(run.code, 0, "{}", run.transcript);
    run.stdout
        .lines()
        .map(|line| match line.split_once(": ") {
            Some((name, answer)) => (name.to_owned(), answer.to_owned()),
            None => panic!("not an attempt's line: {line:?}\n{}", run.transcript),
        })
        .collect()
}

/// What a container may leave behind on the host, for the container `id`.
#[derive(Debug, PartialEq, Eq)]
pub struct HostState {
    pub mounts: Vec<String>,
    pub links: Vec<String>,
    pub cgroups: Vec<String>,
    pub hostname: String,
}

impl HostState {
    /// The host's mount points, network links and cgroups named after `id`,
    /// and the hostname: what a container with that id could leak. Mounts
    /// that other tests running in parallel make in their own scratch dirs
    /// are left out, and so are other containers' overlays (anyone's, with
    /// any state dir: `.../containers/ID/merged`).
    pub fn capture(id: &str) -> HostState {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| !m.starts_with(SCRATCH) || m.contains(id))
            .filter(|m| other_containers_overlay(m, id).is_none())
            .map(str::to_owned)
            .collect();
        let links = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(id))
            .collect();
        HostState {
            mounts,
            links,
            cgroups: find_cgroups(id),
            hostname: hostname(),
        }
    }
}

/// The id of the container whose overlay is mounted at `mount`, if that
/// is a stepbox overlay (`.../containers/ID/merged`) of another container
/// than `id`'s.
fn other_containers_overlay<'a>(mount: &'a str, id: &str) -> Option<&'a str> {
    let rest = mount.strip_suffix("/merged")?;
    let (dirs, other) = rest.rsplit_once('/')?;
    let hex = !other.is_empty() && other.bytes().all(|b| b.is_ascii_hexdigit());
    (dirs.ends_with("/containers") && hex && other != id).then_some(other)
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Directories named after `id` anywhere under /sys/fs/cgroup.
pub fn find_cgroups(id: &str) -> Vec<String> {
    fn walk(dir: &Path, id: &str, depth: u32, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                if e.file_name().to_string_lossy().contains(id) {
                    found.push(p.display().to_string());
                }
                if depth < 6 {
                    walk(&p, id, depth + 1, found);
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 0, &mut found);
    found
}

/// Where tests that need a state dir make one, named after their container id.
pub const SCRATCH: &str = "/tmp/stepbox-tests";

/// Runs `bin args` and asserts that the host looks the same afterwards as
/// before: mounts, links, cgroups, hostname.
pub fn run_clean(bin: &str, args: &[&str]) -> Run {
    run_clean_as(&unique_id(), bin, args)
}

/// [`run_clean`] with a container id chosen by the caller.
pub fn run_clean_as(id: &str, bin: &str, args: &[&str]) -> Run {
    let id = id.to_owned();
    let before = HostState::capture(&id);
    let run = run_id(&id, bin, args);
    let after = HostState::capture(&id);
    assert_eq!(
        before, after,
        "{bin} {args:?} changed the host\n{}",
        run.transcript
    );
    run
}

/// A network namespace of the test's own, standing in for the host: the
/// `--veth` tests add addresses and routes, which must never touch the
/// host's own networks. It is held by a file descriptor, not by a name
/// (`ip netns add` bind-mounts one under /run/netns, a mount that the
/// host-state checks of tests running meanwhile would see), so it goes
/// away with the test process whatever happens: dropped, panicking or
/// killed.
pub struct NetNs {
    fd: std::os::fd::OwnedFd,
}

impl NetNs {
    /// None (a skip, or a failure under CI) if iproute2 is missing.
    pub fn new() -> Option<NetNs> {
        use std::os::unix::process::CommandExt;
        if std::process::Command::new("ip").arg("-V").output().is_err() {
            skip("no `ip` (iproute2: scripts/install-deps.sh installs it)");
            return None;
        }
        // A process that unshares a new netns and then waits on its stdin,
        // until the namespace has a descriptor of ours.
        let mut holder = std::process::Command::new("cat");
        holder
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        // SAFETY: unshare(2) is a plain syscall, safe between fork and exec.
        unsafe {
            holder.pre_exec(|| match libc::unshare(libc::CLONE_NEWNET) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            })
        };
        // spawn() returns once cat runs: after the unshare.
        let mut holder = holder.spawn().expect("starting cat in a new netns");
        let fd = std::fs::File::open(format!("/proc/{}/ns/net", holder.id()))
            .expect("opening the new netns")
            .into();
        drop(holder.stdin.take());
        holder.wait().unwrap();
        Some(NetNs { fd })
    }

    /// `program` to be run in the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        self.enter(std::process::Command::new(program))
    }

    /// `ip ARGS` in the namespace, which must succeed; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.command("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `chNN-name ARGS` in the namespace, not yet waited for.
    pub fn spawn(&self, bin: &str, args: &[&str]) -> std::process::Child {
        self.command(bin_dir().join(bin))
            .args(args)
            .env("STEPBOX_CONTAINER_ID", unique_id())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A run to its end, as a transcript ([`run_command`]).
    pub fn run_bin(&self, bin: &str, args: &[&str]) -> Run {
        let mut cmd = self.command(bin_dir().join(bin));
        cmd.args(args).env("STEPBOX_CONTAINER_ID", unique_id());
        run_command(cmd, bin, args)
    }

    /// `cmd`, to be run in the namespace.
    pub fn enter(&self, mut cmd: std::process::Command) -> std::process::Command {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.fd.as_raw_fd();
        // SAFETY: setns(2) is a plain syscall on a descriptor that the
        // forked child inherited from us; nothing else runs there.
        unsafe {
            cmd.pre_exec(move || match libc::setns(fd, libc::CLONE_NEWNET) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            })
        };
        cmd
    }

    /// Whether the interface `name` exists in the namespace.
    pub fn has_link(&self, name: &str) -> bool {
        let mut ip = std::process::Command::new("ip");
        ip.args(["link", "show", name])
            .stderr(std::process::Stdio::null());
        self.enter(ip).output().unwrap().status.success()
    }
}

/// The names in `dir` (none if it does not exist).
pub fn names(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

/// The mount points of this mount namespace that contain `needle`.
pub fn mounts_under(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// A run dir (state records) and a state dir (layers, containers' dirs) of
/// the test's own, under SCRATCH, so that the host's records are never read
/// or swept. When dropped (also on panic): `ch08-overlay --gc` on them, then
/// whatever is still named after the test's containers (cgroups, mounts) is
/// removed by hand, then the directory.
pub struct Sandbox {
    pub dir: PathBuf,
    ids: std::sync::Mutex<Vec<String>>,
}

impl Sandbox {
    /// `what`: a word for the directory's name (`kill9`, `lib`).
    pub fn new(what: &str) -> Sandbox {
        let dir = Path::new(SCRATCH).join(format!("{what}-{}", unique_id()));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        Sandbox {
            dir,
            ids: std::sync::Mutex::new(Vec::new()),
        }
    }
    /// `BIN --state-dir STATE --layer ... EXTRA -- sh -c SCRIPT` on the
    /// default image, host checked before and after ([`run_clean`]); the
    /// transcript says IMAGE and STATE for the paths.
    pub fn sh(&self, bin: &str, extra: &[&str], script: &str) -> Run {
        let image = image_args();
        let state = self.state_dir().to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec!["--state-dir", &state];
        args.extend(image.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.extend(["--", "sh", "-c", script]);
        let mut run = run_clean(bin, &args);
        let image_dir = xtask::paths::default_image().to_string_lossy().into_owned();
        run.transcript = run
            .transcript
            .replace(&image_dir, "IMAGE")
            .replace(&state, "STATE");
        run
    }
    /// A new container id, remembered for the cleanup by hand.
    pub fn id(&self) -> String {
        let id = unique_id();
        self.ids.lock().unwrap().push(id.clone());
        id
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }
    /// The files in the run dir that belong to container `id`.
    pub fn record_files(&self, id: &str) -> Vec<String> {
        names(&self.run_dir().join("containers"))
            .into_iter()
            .filter(|n| n.starts_with(&format!("{id}.")))
            .collect()
    }
    /// Container `id`'s directory in the state dir (chapter 8).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.state_dir().join("containers").join(id)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new(bin_dir().join("ch08-overlay"))
            .arg("--gc")
            .arg("--state-dir")
            .arg(self.state_dir())
            .env("STEPBOX_RUN_DIR", self.run_dir())
            .stdin(Stdio::null())
            .output();
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids.iter() {
            let mut cgroups = find_cgroups(id);
            cgroups.sort_by_key(|c| std::cmp::Reverse(c.len()));
            for c in cgroups {
                let _ = std::fs::remove_dir(&c);
            }
        }
        let mut mounts = mounts_under(&self.dir.to_string_lossy());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        if let Err(e) = ch08_overlay::remove::remove_all(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Whether the kernel has overlayfs (chapter 8 on); a skip says why.
pub fn overlay_available() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("overlay")
        || skip("the kernel has no overlay filesystem (modprobe overlay)")
}

/// `--layer L` for each of the default image's layers, bottom first: the
/// ones baked into the v2 VM at `STEPBOX_IMAGE` (tests/cgroup_v2_vm.rs),
/// else built on the host.
pub fn image_args() -> Vec<String> {
    if let Ok(dir) = std::env::var("STEPBOX_IMAGE") {
        return xtask::image::LAYERS
            .iter()
            .flat_map(|l| ["--layer".to_string(), format!("{dir}/{l}")])
            .collect();
    }
    let layers = xtask::image::ensure().expect("building the default image");
    layers
        .iter()
        .flat_map(|l| ["--layer".to_string(), l.to_string_lossy().into_owned()])
        .collect()
}

/// A runtime started by the test, killed and reaped if the test ends early.
pub struct Runtime {
    pub child: std::process::Child,
    pub stdout: Option<std::io::BufReader<std::process::ChildStdout>>,
}

impl Runtime {
    pub fn start(mut cmd: std::process::Command) -> Runtime {
        let mut child = cmd.spawn().expect("starting the runtime");
        let stdout = child.stdout.take().map(std::io::BufReader::new);
        Runtime { child, stdout }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until `cond` holds, polling: a handshake on something the
    /// runtime makes, not a guess of how long it takes. Panics if the
    /// runtime exits first.
    pub fn wait_until(&mut self, what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                let _ =
                    std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err);
                panic!("the runtime exited ({status}) before {what}:\n{err}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no {what} in 120 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the container's "ready" line on stdout.
    pub fn wait_ready(&mut self) {
        let mut line = String::new();
        std::io::BufRead::read_line(self.stdout.as_mut().unwrap(), &mut line).unwrap();
        if line != "ready\n" {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err);
            panic!("expected \"ready\", got {line:?}:\n{err}");
        }
    }

    /// kill -9, and reap it: it was killed, it did not exit.
    pub fn kill9(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::SIGKILL,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status}"
        );
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
