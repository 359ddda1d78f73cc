//! `cargo xtask lab`: self-grading labs, one per chapter.
//!
//! A lab is its chapter's own source with the essential bodies cut out.
//! Nothing is written twice: the solution marks what a starter leaves out,
//!
//! ```text
//! // lab: begin HINT
//! ...the solution's lines...
//! // lab: end
//! ```
//!
//! and [`starter`] replaces each marked region, markers included, with
//! `todo!("HINT");` at the begin marker's indentation. The markers are
//! comments, so the solution compiles and rustfmt leaves them alone; a
//! region is a run of whole statements ending a block (a function body's
//! tail, a match arm's block), where a diverging `todo!()` typechecks.
//!
//! `lab check` builds the student's copy in place of the solution: a
//! generated workspace under `<target>/lab/` holds one package per lab,
//! whose manifest is the chapter's own with another package name and
//! `[lib]`/`[[bin]]` paths into the student's `src/`, while every earlier
//! chapter it depends on is the solution's (path dependencies into
//! `chapters/`). The library keeps the chapter's crate name, so the
//! student's `main.rs` is unchanged. All labs share one target directory,
//! `<target>/lab/target`, so the registry crates and earlier chapters are
//! built once.
//!
//! The checks are properties, not transcripts: each one runs the built
//! binary with the default image's probe and reads what the probe answers
//! (see `checks()`); chapter 12's, an OCI runtime's, are sh scripts that
//! drive it as an engine does (create, state, start, exec, delete) and
//! look at its container from outside, in `/proc`. Every run is inside
//! throwaway mount, UTS, IPC and pid namespaces (`unshare(1)`): a mount
//! the student's code leaks, a hostname it sets, an IPC object or a
//! process it leaves, dies with them. The wrapper's `/` is made shared,
//! as systemd makes the host's, so a leak shows there (and fails the
//! check) without reaching the host, whose mounts, hostname and cgroups
//! are compared around each run too.

use std::fmt::Write as _;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The first line of a marked region; the rest of the line is the hint.
pub const BEGIN: &str = "// lab: begin";
/// The last line of a marked region.
pub const END: &str = "// lab: end";

/// What the kernel's todo!() prints before its message, in a panic.
const TODO_PANIC: &str = "not yet implemented: ";

/// The file in a lab's directory that says which chapter it is.
const LAB_FILE: &str = ".lab";
/// The file in a lab's directory that holds its last check's result.
const LAST_CHECK: &str = ".lab-last-check";

/// `src` with every marked region replaced by `todo!("HINT");`, and the
/// hints, in order. A begin without an end, an end without a begin, a
/// begin inside a region or an empty hint is an error.
pub fn starter(src: &str) -> std::result::Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(src.len());
    let mut hints = Vec::new();
    let mut open: Option<usize> = None;
    for (i, line) in src.split_inclusive('\n').enumerate() {
        let trimmed = line.trim();
        if let Some(hint) = trimmed.strip_prefix(BEGIN) {
            if let Some(at) = open {
                return Err(format!(
                    "line {}: `{BEGIN}` inside the region begun on line {}",
                    i + 1,
                    at + 1
                ));
            }
            let hint = hint.trim();
            if hint.is_empty() {
                return Err(format!("line {}: `{BEGIN}` without a hint", i + 1));
            }
            let indent = &line[..line.len() - line.trim_start().len()];
            writeln!(out, "{indent}todo!({hint:?});").unwrap();
            hints.push(hint.to_owned());
            open = Some(i);
        } else if trimmed == END {
            if open.take().is_none() {
                return Err(format!("line {}: `{END}` without a begin", i + 1));
            }
        } else if trimmed.starts_with("// lab:") {
            return Err(format!(
                "line {}: a `// lab:` comment is `{BEGIN} HINT` or `{END}`",
                i + 1
            ));
        } else if open.is_none() {
            out.push_str(line);
        }
    }
    match open {
        Some(at) => Err(format!("line {}: `{BEGIN}` never ended", at + 1)),
        None => Ok((out, hints)),
    }
}

/// A chapter crate: `chapters/NN-name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    pub number: u32,
    /// `NN-name`, the directory's name, and the lab's.
    pub name: String,
    pub dir: PathBuf,
}

impl Chapter {
    /// The package and binary: `chNN-name`.
    pub fn package(&self) -> String {
        format!("ch{}", self.name)
    }
    /// The library's crate name: `chNN_name`.
    pub fn lib_name(&self) -> String {
        self.package().replace('-', "_")
    }
    /// The solution's source directory.
    pub fn src(&self) -> PathBuf {
        self.dir.join("src")
    }
}

/// Every chapter in `root/chapters`, in order.
pub fn chapters(root: &Path) -> Result<Vec<Chapter>> {
    let dir = root.join("chapters");
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((nn, _)) = name.split_once('-') else {
            continue;
        };
        if let (Ok(number), true) = (nn.parse(), entry.path().join("Cargo.toml").is_file()) {
            found.push(Chapter {
                number,
                name,
                dir: entry.path(),
            });
        }
    }
    found.sort_by_key(|c| c.number);
    Ok(found)
}

/// The chapter `nn` ("6", "06") names.
pub fn chapter(root: &Path, nn: &str) -> Result<Chapter> {
    let number: u32 = nn
        .parse()
        .with_context(|| format!("{nn:?}: a chapter is a number, e.g. 06"))?;
    chapters(root)?
        .into_iter()
        .find(|c| c.number == number)
        .with_context(|| format!("there is no chapter {number:02} in chapters/"))
}

/// Writes the starter of `chapter` into `dest/src` (which must not exist):
/// its `src/` tree with every `.rs` file through [`starter`]. Returns the
/// hints. A chapter with no marked region has no lab.
pub fn write_starter(chapter: &Chapter, dest: &Path) -> Result<Vec<String>> {
    let mut hints = Vec::new();
    copy_tree(&chapter.src(), &dest.join("src"), &mut hints)?;
    if hints.is_empty() {
        bail!(
            "chapter {:02} has no lab yet: no `{BEGIN} HINT` in {}",
            chapter.number,
            chapter.src().display()
        );
    }
    Ok(hints)
}

fn copy_tree(from: &Path, to: &Path, hints: &mut Vec<String>) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("mkdir {}", to.display()))?;
    let mut entries: Vec<_> = fs::read_dir(from)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst, hints)?;
        } else if src.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&src)?;
            let (out, found) =
                starter(&text).map_err(|e| anyhow::anyhow!("{}: {e}", src.display()))?;
            hints.extend(found);
            fs::write(&dst, out)?;
        } else {
            fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
    }
    Ok(())
}

/// `<target>/lab`: the generated workspaces, their target dir, the runs.
pub fn lab_dir() -> PathBuf {
    crate::paths::target_dir().join("lab")
}

/// Where `lab start` puts labs by default: `<workspace>/labs`.
pub fn default_labs() -> PathBuf {
    crate::paths::workspace_root().join("labs")
}

/// `lab start NN`: the starter of chapter `nn` in `labs/NN-name`. An
/// existing lab is never overwritten.
pub fn start(nn: &str, labs: &Path) -> Result<PathBuf> {
    let root = crate::paths::workspace_root();
    let chapter = chapter(&root, nn)?;
    let dest = labs.join(&chapter.name);
    if dest.exists() {
        bail!(
            "{} exists: a lab is never overwritten (move it away to start again)",
            dest.display()
        );
    }
    // Made beside it and renamed: a failure leaves no half-written lab.
    fs::create_dir_all(labs).with_context(|| format!("mkdir {}", labs.display()))?;
    let tmp = labs.join(format!(".{}.new", chapter.name));
    let _ = fs::remove_dir_all(&tmp);
    let hints = write_starter(&chapter, &tmp)?;
    fs::write(tmp.join(LAB_FILE), format!("chapter {}\n", chapter.name))?;
    fs::rename(&tmp, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
    println!(
        "lab {}: {} in {}; fill in the todo!()s:",
        chapter.name,
        chapter.package(),
        dest.join("src").display()
    );
    for hint in hints {
        println!("  - {hint}");
    }
    println!("then, as root: cargo xtask lab check {:02}", chapter.number);
    Ok(dest)
}

/// One package of a generated workspace: `chapter` built from `src`.
#[derive(Debug, Clone)]
pub struct Variant {
    pub chapter: Chapter,
    /// The `src/` directory to build from (a student's, or a starter's).
    pub src: PathBuf,
    /// The package and binary name, unique in the workspace (`lab-ch06-uts`).
    pub package: String,
}

impl Variant {
    /// The binary, once [`build`] has run.
    pub fn binary(&self) -> PathBuf {
        lab_dir().join("target/debug").join(&self.package)
    }
}

/// Writes a workspace in `ws` with one package per variant, and builds
/// their binaries into `<target>/lab/target`. Cargo's own messages (the
/// student's compile errors) go to stderr.
pub fn build(ws: &Path, variants: &[Variant]) -> Result<()> {
    let root = crate::paths::workspace_root();
    let manifest = fs::read_to_string(root.join("Cargo.toml"))?;
    let mut text = String::from(
        "# Generated by `cargo xtask lab`: the labs, built in place of their\n\
         # chapters. Rewritten at every check.\n[workspace]\nresolver = \"2\"\nmembers = [",
    );
    let members: Vec<String> = variants
        .iter()
        .map(|v| format!("{:?}", v.package))
        .collect();
    text.push_str(&members.join(", "));
    text.push_str("]\n\n");
    for section in ["[workspace.package]", "[workspace.dependencies]"] {
        let body = toml_section(&manifest, section)
            .with_context(|| format!("no {section} in {}/Cargo.toml", root.display()))?;
        writeln!(text, "{section}").unwrap();
        // Path dependencies (the solution's chapters) from the workspace root.
        let absolute = format!("path = \"{}/", root.display());
        text.push_str(&body.replace("path = \"", &absolute));
        text.push('\n');
    }
    fs::create_dir_all(ws)?;
    write_if_changed(&ws.join("Cargo.toml"), &text)?;
    let lock = ws.join("Cargo.lock");
    if !lock.exists() {
        // The same versions as the solution, and no need of the network.
        fs::copy(root.join("Cargo.lock"), &lock)?;
    }
    for v in variants {
        let own = fs::read_to_string(v.chapter.dir.join("Cargo.toml"))?;
        let src = fs::canonicalize(&v.src)
            .with_context(|| format!("the lab's sources: {}", v.src.display()))?;
        write_if_changed(
            &ws.join(&v.package).join("Cargo.toml"),
            &package_manifest(&own, v, &src)?,
        )?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(lab_dir().join("target"))
        .arg("--bins");
    for v in variants {
        cmd.args(["-p", &v.package]);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("does not build: see cargo's errors above");
    }
    Ok(())
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The lines of `[section]` in a manifest, up to the next section.
fn toml_section(manifest: &str, section: &str) -> Option<String> {
    let mut lines = manifest.lines().skip_while(|l| l.trim() != section);
    lines.next()?;
    let body: Vec<&str> = lines
        .take_while(|l| !l.trim_start().starts_with('['))
        .collect();
    Some(body.join("\n"))
}

/// The chapter's manifest with the variant's package name and sources.
fn package_manifest(own: &str, v: &Variant, src: &Path) -> Result<String> {
    let old = format!("name = \"{}\"", v.chapter.package());
    if !own.contains(&old) {
        bail!("{}/Cargo.toml has no {old}", v.chapter.dir.display());
    }
    let renamed = own.replacen(
        &old,
        &format!(
            "name = \"{}\"\nautotests = false\nautoexamples = false\nautobenches = false",
            v.package
        ),
        1,
    );
    Ok(format!(
        "# Generated by `cargo xtask lab`: {} built from {}.\n{renamed}\n\
         [lib]\nname = \"{}\"\npath = \"{}/lib.rs\"\n\n\
         [[bin]]\nname = \"{}\"\npath = \"{}/main.rs\"\n",
        v.chapter.package(),
        src.display(),
        v.chapter.lib_name(),
        src.display(),
        v.package,
        src.display()
    ))
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// One line: what the student should look at.
    Fail(String),
}

/// One row of a check table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub property: String,
    pub verdict: Verdict,
}

/// The table `lab check` prints for `name`'s outcomes.
pub fn table(name: &str, outcomes: &[Outcome]) -> String {
    let passed = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Pass)
        .count();
    let mut out = format!("lab {name}: {passed} of {} checks pass\n", outcomes.len());
    for o in outcomes {
        match &o.verdict {
            Verdict::Pass => writeln!(out, "  pass  {}", o.property).unwrap(),
            Verdict::Fail(why) => {
                writeln!(out, "  FAIL  {}\n        -> {why}", o.property).unwrap()
            }
        }
    }
    out
}

/// Whether every outcome passed (and there was at least one).
pub fn all_pass(outcomes: &[Outcome]) -> bool {
    !outcomes.is_empty() && outcomes.iter().all(|o| o.verdict == Verdict::Pass)
}

/// What a chapter's binary is run with besides its command: where its
/// root file system comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    /// Chapters 1-4: the host's; the probe is run by its host path.
    Host,
    /// Chapters 5-7: `--rootfs` the default rootfs.
    Rootfs,
    /// Chapters 8-11: `--state-dir` and the default image's `--layer`s.
    Image,
    /// Chapter 12 on, an OCI runtime: `--root` a directory of the run, and
    /// a bundle per check, whose rootfs is the default one (see [`Check::bundle`]).
    Bundle,
}

fn root_of(number: u32) -> Root {
    match number {
        1..=4 => Root::Host,
        5..=7 => Root::Rootfs,
        8..=11 => Root::Image,
        _ => Root::Bundle,
    }
}

/// What a run inside the throwaway namespaces saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The output of the check's `after` script, run in the wrapper
    /// ("the host" of the container) once the runtime has exited.
    pub after: String,
    /// The wrapper's mount points before and after.
    pub mounts: (String, String),
    /// The wrapper's hostname before and after.
    pub hostname: (String, String),
    /// The runtime's pid, in the wrapper's pid namespace.
    pub runtime_pid: String,
    /// Killed after [`TIME_LIMIT`].
    pub timed_out: bool,
}

impl Seen {
    /// The value of `key: value` in the probe's `# section`.
    pub fn probe(&self, section: &str, key: &str) -> Option<String> {
        let header = format!("# {section}");
        let mut lines = self.stdout.lines().skip_while(|l| *l != header);
        lines.next()?;
        lines
            .take_while(|l| !l.starts_with("# "))
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .map(str::to_owned)
    }
    /// The probe's `NAME: answer` line of `probe attempt NAME`.
    pub fn attempt(&self, name: &str) -> Option<String> {
        self.line(name)
    }
    /// The rest of the first line of stdout that starts `KEY: `.
    pub fn line(&self, key: &str) -> Option<String> {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .map(str::to_owned)
    }
}

/// A property of a chapter, and how it is checked.
struct Check {
    property: &'static str,
    /// The container's options and command; `PROBE` is the probe's path.
    args: Vec<String>,
    /// sh run in the wrapper before the container (e.g. make an object
    /// the container must not see).
    before: &'static str,
    /// sh run in the wrapper after it; its output is [`Seen::after`].
    after: &'static str,
    /// Chapter 12: the container's command, `sh -c` this. The binary's own
    /// `spec` writes it into a new bundle's config.json first (the bundle is
    /// `$BUNDLE`), and `args` is then a command run with the binary and its
    /// options after it (see [`oci_check`]).
    bundle: Option<&'static str>,
    /// Ok, or what the student should look at.
    judge: fn(&Seen) -> std::result::Result<(), String>,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn check(
    property: &'static str,
    args: &str,
    judge: fn(&Seen) -> std::result::Result<(), String>,
) -> Check {
    Check {
        property,
        args: words(args),
        before: "",
        after: "",
        bundle: None,
        judge,
    }
}

/// `check` with a `sh -c SCRIPT` command (after the options in `opts`).
fn sh_check(
    property: &'static str,
    opts: &str,
    script: &str,
    judge: fn(&Seen) -> std::result::Result<(), String>,
) -> Check {
    let mut args = words(opts);
    args.extend(["--".into(), "sh".into(), "-c".into(), script.into()]);
    Check {
        property,
        args,
        before: "",
        after: "",
        bundle: None,
        judge,
    }
}

/// What every chapter 12 driver begins with: the container's id; `create
/// RUNTIME...`, which says `create: STATUS` and ends the driver unless it
/// is 0 (the container's output goes to `$BUNDLE/out`); and the two fields
/// of `state`'s JSON it reads, from stdin.
const OCI_PRELUDE: &str = r#"ID=$STEPBOX_CONTAINER_ID
create() {
  timeout 20 "$@" create --bundle "$BUNDLE" "$ID" > "$BUNDLE/out"; c=$?
  echo "create: $c"
  [ $c = 0 ] || { "$@" delete --force "$ID" 2> /dev/null; exit $c; }
}
status() { sed -n 's/^ *"status": "\([a-z]*\)".*/\1/p'; }
pid() { sed -n 's/^ *"pid": \([0-9]*\).*/\1/p'; }
"#;

/// A chapter 12 check: a bundle whose container runs `sh -c command`, and
/// `driver`, sh run in the wrapper with `"$@"` the runtime and its options
/// (`create "$@"`, then `"$@" start "$ID"`). The driver prints `KEY: value`
/// lines for the judge ([`Seen::line`]), and ends with `delete --force`,
/// whose status is the run's.
fn oci_check(
    property: &'static str,
    command: &'static str,
    driver: &str,
    judge: fn(&Seen) -> std::result::Result<(), String>,
) -> Check {
    Check {
        property,
        args: vec![
            "sh".into(),
            "-c".into(),
            format!("{OCI_PRELUDE}{driver}"),
            "sh".into(),
        ],
        before: "",
        after: "",
        bundle: Some(command),
        judge,
    }
}

/// A chapter 12 driver's `create` returned (`create: STATUS` is not
/// timeout(1)'s 124): a copy that is not read-only re-executes itself for
/// ever.
fn returned(seen: &Seen) -> std::result::Result<(), String> {
    match seen.line("create").as_deref() {
        Some("124") => Err(
            "read_only_mount() in sealed.rs: create never returned; is_sealed() needs \
                 a read-only mount"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// The run ended with status 0, else why not, in one line.
fn ran(seen: &Seen) -> std::result::Result<(), String> {
    if seen.code == 0 {
        return Ok(());
    }
    Err(format!("exit {}{}", seen.code, said(seen)))
}

/// `: "the runtime's first line of stderr"`, if it said anything.
fn said(seen: &Seen) -> String {
    match seen.stderr.lines().find(|l| !l.trim().is_empty()) {
        Some(line) => {
            // One line of the table: the start of what it said is enough.
            let mut short: String = line.chars().take(72).collect();
            if short.len() < line.len() {
                short.push('…');
            }
            format!(": {short}")
        }
        None => String::new(),
    }
}

fn expect(seen: &Seen, ok: bool, look_at: &str) -> std::result::Result<(), String> {
    ran(seen).map_err(|e| format!("{look_at}; {e}"))?;
    if ok {
        Ok(())
    } else {
        Err(look_at.to_owned())
    }
}

/// The checks of chapter `number`: empty for a chapter without a lab.
/// (A new chapter's lab: markers in its source, and an arm here.)
fn checks(number: u32) -> Vec<Check> {
    match number {
        1 => vec![
            sh_check(
                "the command runs, and its exit status comes back",
                "",
                "exit 3",
                |s| {
                    if s.code == 3 {
                        Ok(())
                    } else {
                        Err(format!(
                            "clone_pidfd() in runtime.rs: status {} for `exit 3`{}",
                            s.code,
                            said(s)
                        ))
                    }
                },
            ),
            sh_check(
                "-e NAME=VALUE is in the command's environment",
                "-e LAB_WORD=hello",
                "echo $LAB_WORD",
                |s| {
                    expect(
                        s,
                        s.stdout == "hello\n",
                        "clone_pidfd() in runtime.rs: the child goes on to execve(2)",
                    )
                },
            ),
            check(
                "the command is a new process, the runtime's child",
                "-- PROBE identity",
                |s| {
                    let ppid = s.probe("identity", "ppid").unwrap_or_default();
                    expect(
                        s,
                        !s.runtime_pid.is_empty() && ppid == s.runtime_pid,
                        "clone_pidfd() in runtime.rs: the command's parent must be the runtime",
                    )
                },
            ),
        ],
        2 => vec![
            check("the command is PID 1 inside", "-- PROBE identity", |s| {
                expect(
                    s,
                    s.probe("identity", "pid").as_deref() == Some("1"),
                    "clone_flags() in lib.rs: which flag makes a new pid namespace?",
                )
            }),
            check(
                "its parent is outside its pid namespace (ppid 0)",
                "-- PROBE identity",
                |s| {
                    expect(
                        s,
                        s.probe("identity", "ppid").as_deref() == Some("0"),
                        "clone_flags() in lib.rs: the runtime must be outside the namespace",
                    )
                },
            ),
            sh_check(
                "with --init, the command is PID 2",
                "--init",
                "echo $$",
                |s| {
                    expect(
                        s,
                        s.stdout == "2\n",
                        "clone_flags() in lib.rs: --init forks in the new namespace",
                    )
                },
            ),
        ],
        3 => vec![
            check(
                "the network namespace is the container's own",
                "-- PROBE ns",
                |s| {
                    expect(
                        s,
                        s.probe("namespaces", "net").as_deref() == Some("own"),
                        "clone_flags() in lib.rs: which flag makes a new network namespace?",
                    )
                },
            ),
            check(
                "the host's interfaces are absent: only lo",
                "-- PROBE net",
                |s| {
                    expect(
                        s,
                        s.probe("network", "interfaces").as_deref() == Some("1"),
                        "clone_flags() in lib.rs: the host's interfaces are still there",
                    )
                },
            ),
            check("lo is up, with 127.0.0.1", "-- PROBE net", |s| {
                expect(
                    s,
                    s.stdout.lines().any(|l| l.trim() == "lo up 127.0.0.1/8"),
                    "set_up() in lib.rs: IFF_UP, through SIOCGIFFLAGS then SIOCSIFFLAGS",
                )
            }),
        ],
        4 => vec![
            check(
                "the IPC namespace is the container's own",
                "-- PROBE ns",
                |s| {
                    expect(
                        s,
                        s.probe("namespaces", "ipc").as_deref() == Some("own"),
                        "clone_flags() in lib.rs: which flag makes a new IPC namespace?",
                    )
                },
            ),
            Check {
                before: "\"$PROBE\" ipc-create 0x1ab0c0de",
                ..check(
                    "a message queue of the host's is not seen inside",
                    "-- PROBE ipc",
                    |s| {
                        expect(
                            s,
                            s.probe("ipc", "message queues").as_deref() == Some("0"),
                            "clone_flags() in lib.rs: the host's System V objects are visible",
                        )
                    },
                )
            },
        ],
        5 => vec![
            check(
                "the root is the rootfs, not the host's /",
                "-- /bin/probe fs",
                |s| {
                    expect(
                        s,
                        s.probe("filesystem", "root").as_deref() == Some("own"),
                        "setup() in lib.rs: pivot_root(2) into the rootfs",
                    )
                },
            ),
            check(
                "the old root is gone: no host mount is left inside",
                "-- /bin/probe fs",
                |s| {
                    let mounts: Vec<&str> = s
                        .stdout
                        .lines()
                        .skip_while(|l| !l.starts_with("mounts: "))
                        .skip(1)
                        .collect();
                    expect(
                        s,
                        !mounts.is_empty()
                            && mounts.iter().all(|m| {
                                let path = m.split_whitespace().next().unwrap_or("");
                                ["/", "/proc", "/sys", "/dev"]
                                    .iter()
                                    .any(|p| path == *p || path.starts_with("/dev/"))
                            }),
                        "setup() in lib.rs: umount2(2) the old root with MNT_DETACH",
                    )
                },
            ),
            sh_check(
                "the host's mount table is unchanged after",
                "",
                "mount -t tmpfs lab /tmp && echo mounted",
                |s| {
                    expect(
                        s,
                        s.stdout == "mounted\n"
                            && !s.mounts.0.is_empty()
                            && s.mounts.0 == s.mounts.1,
                        "setup() in lib.rs: mounts must not reach the host (MS_PRIVATE first)",
                    )
                },
            ),
        ],
        6 => vec![
            check(
                "the hostname inside is the one given",
                "--hostname labbox -- /bin/probe identity",
                |s| {
                    expect(
                        s,
                        s.probe("identity", "hostname").as_deref() == Some("labbox"),
                        "setup() in lib.rs: sethostname(2) in the child",
                    )
                },
            ),
            sh_check(
                "the host's hostname is unchanged",
                "--hostname labbox",
                "hostname renamed && hostname",
                |s| {
                    expect(
                        s,
                        s.stdout == "renamed\n"
                            && !s.hostname.0.is_empty()
                            && s.hostname.0 == s.hostname.1,
                        "clone_flags() and setup() in lib.rs: only the UTS namespace's name",
                    )
                },
            ),
        ],
        7 => vec![
            check(
                "the memory limit is seen inside",
                "--memory 64m -- /bin/probe cgroup",
                |s| {
                    expect(
                        s,
                        s.probe("cgroup", "memory limit").as_deref() == Some("64 MiB"),
                        "add() in v1.rs/v2.rs: the child must be moved into its cgroup",
                    )
                },
            ),
            check(
                "the pids limit is seen inside",
                "--pids-limit 20 -- /bin/probe cgroup",
                |s| {
                    expect(
                        s,
                        s.probe("cgroup", "pids limit").as_deref() == Some("20"),
                        "add() in v1.rs/v2.rs: the pid goes into cgroup.procs",
                    )
                },
            ),
            sh_check(
                "a fork past the pids limit fails",
                "--pids-limit 3",
                "for i in 1 2 3 4 5; do sleep 1 & done; wait",
                |s| {
                    // sh's own words for fork(2)'s EAGAIN; sh then exits 2.
                    if s.stderr
                        .contains("can't fork: Resource temporarily unavailable")
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "add() in v1.rs/v2.rs: pids.max counts only the cgroup's members \
                             (status {}{})",
                            s.code,
                            said(s)
                        ))
                    }
                },
            ),
        ],
        8 => {
            vec![
                sh_check(
                    "the root is an overlay of the image's layers",
                    "",
                    "awk '$2 == \"/\" { print $3 }' /proc/mounts",
                    |s| {
                        expect(
                            s,
                            s.stdout == "overlay\n",
                            "mount_overlay() in lib.rs: mount(2) type overlay on merged",
                        )
                    },
                ),
                sh_check(
                    "the image's files are there, and writable",
                    "",
                    "test -x /bin/probe && echo x > /lab-file && cat /lab-file",
                    |s| {
                        expect(
                            s,
                            s.stdout == "x\n",
                            "mount_overlay() in lib.rs: lowerdir, upperdir and workdir in `data`",
                        )
                    },
                ),
                Check {
                    after: "find \"$STATE\" -name lab-file -path '*/layers/*'",
                    ..sh_check(
                        "a write does not change the layers, nor the host's mounts",
                        "",
                        "echo x > /bin/lab-file",
                        |s| {
                            expect(
                            s,
                            s.after.is_empty() && !s.mounts.0.is_empty() && s.mounts.0 == s.mounts.1,
                            "mount_overlay() in lib.rs: writes go to upperdir, and it is unmounted",
                        )
                        },
                    )
                },
            ]
        }
        9 => vec![
            check(
                "CAP_SYS_ADMIN is gone: unshare(2) gets EPERM",
                "-- /bin/probe attempt unshare",
                |s| {
                    expect(
                        s,
                        s.attempt("unshare").is_some_and(|a| a.starts_with("EPERM")),
                        "set() in caps.rs: capset(2) the effective and permitted sets",
                    )
                },
            ),
            sh_check(
                "the bounding set is docker's default",
                "",
                "grep CapBnd /proc/self/status",
                |s| {
                    expect(
                        s,
                        s.stdout.trim_end().ends_with("00000000a80425fb"),
                        "drop_bounding() in caps.rs: PR_CAPBSET_DROP what is not kept",
                    )
                },
            ),
            sh_check(
                "the mount attack fails",
                "",
                "mount -t tmpfs none /tmp 2>/dev/null && echo mounted; true",
                |s| {
                    expect(
                        s,
                        s.stdout.is_empty(),
                        "set() in caps.rs: a mount needs CAP_SYS_ADMIN, which must be gone",
                    )
                },
            ),
        ],
        10 => vec![
            check(
                "calls the profile forbids get EPERM: keyctl(2), personality(2)",
                "-- /bin/probe attempt keyctl personality",
                |s| {
                    let eperm = |n: &str| s.attempt(n).is_some_and(|a| a.starts_with("EPERM"));
                    expect(
                        s,
                        eperm("keyctl") && eperm("personality"),
                        "Filter::load() in compile.rs: seccomp(2) SECCOMP_SET_MODE_FILTER",
                    )
                },
            ),
            sh_check(
                "the kernel says a filter is on (Seccomp: 2)",
                "",
                "grep '^Seccomp:' /proc/self/status",
                |s| {
                    expect(
                        s,
                        s.stdout.split_whitespace().nth(1) == Some("2"),
                        "Filter::load() in compile.rs: the filter must be loaded",
                    )
                },
            ),
        ],
        11 => vec![
            sh_check(
                "the command is uid 0 inside",
                "--uidmap 0:100000:65536",
                "id -u",
                |s| {
                    expect(
                        s,
                        s.stdout == "0\n",
                        "write_maps() in lib.rs: write uid_map before the child goes on",
                    )
                },
            ),
            sh_check(
                "uid 0 inside is not 0 outside: it is 100000",
                "--uidmap 0:100000:65536",
                "cat /proc/self/uid_map",
                |s| {
                    expect(
                        s,
                        words(&s.stdout) == ["0", "100000", "65536"],
                        "write_maps() in lib.rs: uid_map lines are INSIDE OUTSIDE COUNT",
                    )
                },
            ),
            sh_check(
                "gid 0 inside is 100000 outside",
                "--uidmap 0:100000:65536",
                "id -g && cat /proc/self/gid_map",
                |s| {
                    expect(
                        s,
                        words(&s.stdout) == ["0", "0", "100000", "65536"],
                        "write_maps() in lib.rs: the gid_map too, after the uid_map",
                    )
                },
            ),
        ],
        12 => vec![
            oci_check(
                "create stops before the command; start runs it",
                "echo ran",
                r#"create "$@"
echo "created: $("$@" state "$ID" | status)"
sleep 0.2
echo "output before start: $(cat "$BUNDLE/out")"
"$@" start "$ID"
i=0; while [ ! -s "$BUNDLE/out" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
echo "output after start: $(cat "$BUNDLE/out")"
echo "started: $("$@" state "$ID" | status)"
"$@" delete --force "$ID""#,
                |s| {
                    returned(s)?;
                    let line = |k: &str| s.line(k).unwrap_or_default();
                    expect(
                        s,
                        line("created") == "created" && line("output before start").is_empty(),
                        "create: the command ran before start, or state is not `created`",
                    )?;
                    expect(
                        s,
                        line("output after start") == "ran"
                            && ["running", "stopped"].contains(&line("started").as_str()),
                        "start() in cli.rs: the process waits in open(2) of exec.fifo for a reader",
                    )
                },
            ),
            oci_check(
                "exec's process is in the container's namespaces",
                "sleep 60",
                r#"create "$@"
"$@" start "$ID"
pid=$("$@" state "$ID" | pid)
ns='for n in net pid mnt; do readlink /proc/$1/ns/$n; done'
echo "host: $(sh -c "$ns" sh self | tr '\n' ' ')"
echo "container: $(sh -c "$ns" sh "$pid" | tr '\n' ' ')"
echo "exec: $("$@" exec "$ID" sh -c "$ns" sh self | tr '\n' ' ')"
"$@" delete --force "$ID""#,
                |s| {
                    returned(s)?;
                    let (host, container, exec) = (
                        s.line("host").unwrap_or_default(),
                        s.line("container").unwrap_or_default(),
                        s.line("exec").unwrap_or_default(),
                    );
                    let first = |l: &str| l.split(' ').next().unwrap_or("").to_owned();
                    expect(
                        s,
                        words(&container).len() == 3
                            && exec == container
                            && first(&host) != first(&container),
                        "namespaces_of() in exec.rs: setns(2) into each of the first process's",
                    )
                },
            ),
            oci_check(
                "a created container's process runs from a read-only mount of the runtime",
                "true",
                r#"create "$@"
pid=$("$@" state "$ID" | pid)
echo "exe: $(readlink /proc/$pid/exe)"
exec 3</proc/$pid/exe
"$@" start "$ID"
"$@" delete --force "$ID"
echo "write: $( (: >>/proc/self/fd/3) 2>&1 | sed 's/.*: //')""#,
                |s| {
                    returned(s)?;
                    expect(
                        s,
                        s.line("exe").as_deref() == Some("/")
                            && s.line("write").as_deref() == Some("Read-only file system"),
                        "read_only_mount() in sealed.rs: /proc/PID/exe must be the binary on a \
                         read-only mount of its own",
                    )
                },
            ),
        ],
        _ => Vec::new(),
    }
}

/// The properties chapter `number`'s lab checks, in order.
pub fn properties(number: u32) -> Vec<&'static str> {
    checks(number).iter().map(|c| c.property).collect()
}

/// Why nothing can run here, if so.
fn cannot_run(number: u32) -> Option<String> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (namespaces, mounts, cgroups): run it with sudo".into());
    }
    if !Path::new("/usr/bin/unshare").exists() && !Path::new("/bin/unshare").exists() {
        return Some("needs unshare(1) (util-linux) for the throwaway namespaces".into());
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if number >= 8 && !filesystems.contains("overlay") {
        return Some("needs overlayfs, which this kernel lacks (modprobe overlay)".into());
    }
    None
}

/// Runs chapter `number`'s checks against `bin`, each in throwaway
/// namespaces. A check that cannot run fails, and says why.
pub fn grade(number: u32, bin: &Path) -> Vec<Outcome> {
    let checks = checks(number);
    if let Some(why) = cannot_run(number) {
        return checks
            .iter()
            .map(|c| Outcome {
                property: c.property.into(),
                verdict: Verdict::Fail(format!("not run: {why}")),
            })
            .collect();
    }
    // In /tmp, not the workspace: a container's root in a user namespace
    // (chapter 11) is an unprivileged id on the host, which must reach its
    // files, and a clone in /root (mode 700) would hide them.
    let scratch = std::env::temp_dir()
        .join("stepbox-lab-run")
        .join(format!("{number:02}-{}", random_hex(8)));
    let outcomes = match Env::new(number, bin, &scratch) {
        Ok(env) => checks.iter().map(|c| env.run(c)).collect(),
        Err(e) => checks
            .iter()
            .map(|c| Outcome {
                property: c.property.into(),
                verdict: Verdict::Fail(format!("not run: {e:#}")),
            })
            .collect(),
    };
    remove_scratch(&scratch);
    outcomes
}

/// What every run of one chapter's checks shares.
struct Env {
    bin: PathBuf,
    probe: String,
    base: Vec<String>,
    scratch: PathBuf,
    /// The default rootfs, a bundle's `rootfs` (read-only in it).
    rootfs: PathBuf,
}

impl Env {
    fn new(number: u32, bin: &Path, scratch: &Path) -> Result<Env> {
        if !bin.is_file() {
            bail!("no binary {}", bin.display());
        }
        let rootfs = crate::rootfs::ensure(&crate::paths::default_rootfs())?;
        let state = scratch.join("state");
        fs::create_dir_all(&state)?;
        let (probe, base) = match root_of(number) {
            Root::Host => (rootfs.join("bin/probe").display().to_string(), Vec::new()),
            Root::Rootfs => (
                "/bin/probe".into(),
                vec!["--rootfs".into(), rootfs.display().to_string()],
            ),
            Root::Image => {
                let mut base = vec!["--state-dir".into(), state.display().to_string()];
                for layer in crate::image::ensure()? {
                    base.extend(["--layer".into(), layer.display().to_string()]);
                }
                ("/bin/probe".into(), base)
            }
            Root::Bundle => (
                "/bin/probe".into(),
                vec![
                    "--root".into(),
                    scratch.join("oci-root").display().to_string(),
                ],
            ),
        };
        Ok(Env {
            bin: bin.to_path_buf(),
            probe,
            base,
            scratch: scratch.to_path_buf(),
            rootfs,
        })
    }

    fn run(&self, check: &Check) -> Outcome {
        let verdict = match self.observe(check) {
            Err(e) => Verdict::Fail(format!("not run: {e:#}")),
            Ok((seen, host)) => {
                // A leak first: it must never hide behind another failure.
                if let Some(changed) = host {
                    Verdict::Fail(format!("the host changed: {changed}"))
                } else if let Some(hint) = todo_hint(&seen.stderr) {
                    Verdict::Fail(format!("todo!() reached: {hint}"))
                } else if seen.timed_out {
                    Verdict::Fail(format!(
                        "killed after {} s: what does it wait for?",
                        TIME_LIMIT.as_secs()
                    ))
                } else {
                    match (check.judge)(&seen) {
                        Ok(()) => Verdict::Pass,
                        Err(look_at) => Verdict::Fail(look_at),
                    }
                }
            }
        };
        Outcome {
            property: check.property.into(),
            verdict,
        }
    }

    /// A bundle in `dir`: the default rootfs, and the config.json the
    /// binary's own `spec` writes for `sh -c command`, read-only.
    fn write_bundle(&self, dir: &Path, command: &str) -> Result<()> {
        fs::create_dir_all(dir)?;
        let out = Command::new(&self.bin)
            .args(&self.base)
            .arg("spec")
            .arg("--bundle")
            .arg(dir)
            .arg("--rootfs")
            .arg(&self.rootfs)
            .args(["--read-only", "--", "sh", "-c", command])
            .stdin(Stdio::null())
            .output()
            .context("running the binary's spec")?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            bail!("spec: {}", err.lines().next().unwrap_or("failed"));
        }
        Ok(())
    }

    /// One run in the throwaway namespaces; with what changed on the
    /// host, if anything did (and was cleaned up).
    fn observe(&self, check: &Check) -> Result<(Seen, Option<String>)> {
        let id = format!("1ab{}", random_hex(9));
        let out = self.scratch.join(format!("out-{id}"));
        fs::create_dir_all(&out)?;
        let bundle = out.join("bundle");
        if let Some(command) = check.bundle {
            self.write_bundle(&bundle, command)?;
        }
        let before = HostState::capture(&id, &self.scratch);
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "sh",
            "-c",
            WRAPPER,
            "sh",
        ])
        .arg(&out);
        let args = check.args.iter().map(|a| a.replace("PROBE", &self.probe));
        if check.bundle.is_some() {
            // The driver first, the runtime as its "$@".
            cmd.args(args).arg(&self.bin).args(&self.base);
        } else {
            cmd.arg(&self.bin).args(&self.base).args(args);
        }
        cmd.env("STEPBOX_CONTAINER_ID", &id)
            .env("BUNDLE", &bundle)
            .env("STEPBOX_RUN_DIR", self.scratch.join("run"))
            .env("PROBE", &self.probe)
            .env("STATE", self.scratch.join("state"))
            .env("LAB_BEFORE", check.before)
            .env("LAB_AFTER", check.after)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("running unshare(1)")?;
        let start = Instant::now();
        let mut timed_out = false;
        while child.try_wait()?.is_none() {
            if start.elapsed() > TIME_LIMIT {
                // --kill-child: the wrapper's pid namespace goes with it.
                let _ = child.kill();
                let _ = child.wait();
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut wrapper_err = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut wrapper_err);
        }
        let read = |name: &str| fs::read_to_string(out.join(name)).unwrap_or_default();
        let code = read("code").trim().parse::<i32>();
        let seen = Seen {
            code: code.as_ref().map_or(-1, |c| *c),
            stdout: read("stdout"),
            stderr: read("stderr"),
            after: read("after.out"),
            mounts: (read("mounts.before"), read("mounts.after")),
            hostname: (read("hostname.before"), read("hostname.after")),
            runtime_pid: read("pid").trim().to_owned(),
            timed_out,
        };
        let after = HostState::capture(&id, &self.scratch);
        let changed = before.differences(&after);
        after.clean_up(&before);
        if code.is_err() && !timed_out {
            let why = wrapper_err.lines().next().unwrap_or("no status").to_owned();
            bail!("the throwaway namespaces did not run: {why}");
        }
        Ok((seen, changed))
    }
}

/// How long one container of a check may take.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs in the throwaway namespaces: `sh -c WRAPPER sh OUT BIN ARGS...`.
/// Its `/` is made shared first: unshare(1) made every mount private, so
/// the peer groups made here are new ones, joined by the container's
/// mount namespace and by nothing of the host's.
const WRAPPER: &str = r#"o=$1; shift
mount --make-rshared / || exit 99
cut -d' ' -f5 /proc/self/mountinfo > "$o/mounts.before"
cat /proc/sys/kernel/hostname > "$o/hostname.before"
eval "$LAB_BEFORE" > "$o/before.out" 2>&1
"$@" > "$o/stdout" 2> "$o/stderr" < /dev/null &
echo $! > "$o/pid"
wait $!
echo $? > "$o/code"
cut -d' ' -f5 /proc/self/mountinfo > "$o/mounts.after"
cat /proc/sys/kernel/hostname > "$o/hostname.after"
eval "$LAB_AFTER" > "$o/after.out" 2>/dev/null
exit 0
"#;

/// The hint of the todo!() a run reached, from its panic message.
fn todo_hint(stderr: &str) -> Option<String> {
    let at = stderr.find(TODO_PANIC)?;
    let rest = &stderr[at + TODO_PANIC.len()..];
    Some(rest.lines().next().unwrap_or("").trim().to_owned())
}

/// What a container could leave on the real host.
#[derive(Debug, PartialEq, Eq)]
struct HostState {
    mounts: Vec<String>,
    cgroups: Vec<String>,
    hostname: String,
}

impl HostState {
    fn capture(id: &str, scratch: &Path) -> HostState {
        let scratch = scratch.to_string_lossy();
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mounts = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.contains(id) || m.starts_with(scratch.as_ref()))
            .map(str::to_owned)
            .collect();
        let mut cgroups = Vec::new();
        find_dirs(Path::new("/sys/fs/cgroup"), id, 0, &mut cgroups);
        HostState {
            mounts,
            cgroups,
            hostname: fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
        }
    }

    fn differences(&self, after: &HostState) -> Option<String> {
        if self == after {
            return None;
        }
        let mut what = Vec::new();
        if self.mounts != after.mounts {
            what.push(format!("mounts left: {}", after.mounts.join(" ")));
        }
        if self.cgroups != after.cgroups {
            what.push(format!("cgroups left: {}", after.cgroups.join(" ")));
        }
        if self.hostname != after.hostname {
            what.push(format!("hostname now {:?}", after.hostname.trim()));
        }
        Some(what.join("; "))
    }

    /// Removes what a run left since `before`: cgroups, deepest first,
    /// and mounts, innermost first.
    fn clean_up(&self, before: &HostState) {
        let new = |now: &[String], then: &[String]| -> Vec<String> {
            let mut left: Vec<String> = now.iter().filter(|x| !then.contains(x)).cloned().collect();
            left.sort_by_key(|x| std::cmp::Reverse(x.len()));
            left
        };
        for c in new(&self.cgroups, &before.cgroups) {
            let _ = fs::remove_dir(&c);
        }
        for m in new(&self.mounts, &before.mounts) {
            if let Ok(path) = std::ffi::CString::new(m) {
                // SAFETY: `path` is a NUL-terminated string that outlives the call.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// Directories named after `id` under `dir`, a few levels deep.
fn find_dirs(dir: &Path, id: &str, depth: u32, found: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let p = e.path();
            if e.file_name().to_string_lossy().contains(id) {
                found.push(p.display().to_string());
            }
            if depth < 6 {
                find_dirs(&p, id, depth + 1, found);
            }
        }
    }
}

/// Removes a grading run's scratch directory, unless something is still
/// mounted under it (then removing would reach into the mount).
fn remove_scratch(scratch: &Path) {
    let s = scratch.to_string_lossy();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m.starts_with(s.as_ref()))
    {
        eprintln!(
            "xtask: {} still has mounts under it: left in place",
            scratch.display()
        );
        return;
    }
    let _ = fs::remove_dir_all(scratch);
}

fn random_hex(digits: usize) -> String {
    let mut b = [0u8; 8];
    // SAFETY: the pointer and length describe `b`, which outlives the call.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Unique enough for a directory or an id of one run.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        b = (t ^ u64::from(std::process::id())).to_le_bytes();
    }
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    hex[..digits].to_owned()
}

/// The workspace `lab check` builds a lab in: one per lab directory.
fn check_workspace(lab: &Path) -> PathBuf {
    // FNV-1a of the path: two students' labs/06-uts do not share one.
    let hash = lab
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let name = lab.file_name().unwrap_or_default().to_string_lossy();
    lab_dir()
        .join("check")
        .join(format!("{name}-{:08x}", hash as u32))
}

/// `lab check NN`: builds `labs/NN-name` in place of chapter NN, runs its
/// checks, prints the table and records the result. Returns whether
/// every check passed.
pub fn check_lab(nn: &str, labs: &Path) -> Result<bool> {
    let root = crate::paths::workspace_root();
    let chapter = chapter(&root, nn)?;
    let lab = labs.join(&chapter.name);
    if !lab.join(LAB_FILE).is_file() {
        bail!(
            "no lab in {}: start it with `cargo xtask lab start {:02}`",
            lab.display(),
            chapter.number
        );
    }
    if properties(chapter.number).is_empty() {
        bail!("chapter {:02} has no checks yet", chapter.number);
    }
    let lab = fs::canonicalize(&lab)?;
    let variant = Variant {
        package: format!("lab-{}", chapter.package()),
        src: lab.join("src"),
        chapter: chapter.clone(),
    };
    let failing = |why: &str| -> Vec<Outcome> {
        properties(chapter.number)
            .into_iter()
            .map(|p| Outcome {
                property: p.into(),
                verdict: Verdict::Fail(why.to_owned()),
            })
            .collect()
    };
    // Said before a build that would fail for the same reason (the target
    // dir is root's) with a bare EACCES.
    let outcomes = if let Some(why) = cannot_run(chapter.number) {
        failing(&format!("not run: {why}"))
    } else {
        crate::step(format!(
            "building {} from {}",
            chapter.package(),
            variant.src.display()
        ));
        match build(&check_workspace(&lab), std::slice::from_ref(&variant)) {
            Ok(()) => grade(chapter.number, &variant.binary()),
            Err(e) => failing(&format!("{e:#}")),
        }
    };
    print!("{}", table(&chapter.name, &outcomes));
    let passed = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Pass)
        .count();
    let summary = format!(
        "{} of {} checks pass{}\n",
        passed,
        outcomes.len(),
        if all_pass(&outcomes) { " (done)" } else { "" }
    );
    fs::write(lab.join(LAST_CHECK), summary)?;
    Ok(all_pass(&outcomes))
}

/// The labs started in `labs`, as (chapter name, directory), in order.
pub fn started(labs: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = fs::read_dir(labs)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(LAB_FILE).is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    found.sort();
    found
}

/// `lab status`: each started lab and its last check.
pub fn status(labs: &Path) -> String {
    let labs_found = started(labs);
    if labs_found.is_empty() {
        return format!(
            "no lab started in {} (cargo xtask lab start NN)\n",
            labs.display()
        );
    }
    let mut out = String::new();
    for (name, dir) in labs_found {
        let last = fs::read_to_string(dir.join(LAST_CHECK))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "not checked yet".into());
        writeln!(out, "{name:<16} {last}").unwrap();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_becomes_a_todo_with_its_hint() {
        let src = "fn f() -> u32 {\n    let a = 1;\n    // lab: begin add \"one\"\n    a + 1\n    // lab: end\n}\n";
        let (out, hints) = starter(src).unwrap();
        assert_eq!(
            out,
            "fn f() -> u32 {\n    let a = 1;\n    todo!(\"add \\\"one\\\"\");\n}\n"
        );
        assert_eq!(hints, ["add \"one\""]);
    }

    #[test]
    fn a_file_without_markers_is_unchanged() {
        let src = "fn main() {}\n// a comment\n";
        assert_eq!(starter(src).unwrap(), (src.to_owned(), vec![]));
    }

    #[test]
    fn bad_markers_are_refused_with_their_line() {
        for (src, err) in [
            ("// lab: begin x\n", "line 1: `// lab: begin` never ended"),
            ("a\n// lab: end\n", "line 2: `// lab: end` without a begin"),
            (
                "// lab: begin\n// lab: end\n",
                "line 1: `// lab: begin` without a hint",
            ),
            (
                "// lab: begin a\n// lab: begin b\n",
                "line 2: `// lab: begin` inside the region begun on line 1",
            ),
            ("// lab: start x\n", "line 1: a `// lab:` comment is"),
        ] {
            let got = starter(src).unwrap_err();
            assert!(got.starts_with(err), "{src:?}: {got}");
        }
    }

    #[test]
    fn every_chapter_with_checks_has_a_lab_and_the_other_way_round() {
        let root = crate::paths::workspace_root();
        for c in chapters(&root).unwrap() {
            let mut hints = Vec::new();
            let tmp = std::env::temp_dir().join(format!("lab-unit-{}", random_hex(8)));
            let made = copy_tree(&c.src(), &tmp, &mut hints);
            let _ = fs::remove_dir_all(&tmp);
            made.unwrap();
            assert_eq!(
                hints.is_empty(),
                checks(c.number).is_empty(),
                "chapter {}: markers and checks go together",
                c.name
            );
        }
    }

    #[test]
    fn the_probes_sections_are_read_by_key() {
        let seen = Seen {
            stdout: "# identity\npid: 1\n# namespaces\npid: own\nnet: host\n".into(),
            ..Seen::default()
        };
        assert_eq!(seen.probe("identity", "pid").as_deref(), Some("1"));
        assert_eq!(seen.probe("namespaces", "pid").as_deref(), Some("own"));
        assert_eq!(seen.probe("namespaces", "uts"), None);
        assert_eq!(seen.probe("cgroup", "pid"), None);
    }

    #[test]
    fn a_todo_panic_gives_its_hint() {
        let child = "ch06-uts: a step panicked in the container's process: \
                     not yet implemented: sethostname(2) it\n";
        assert_eq!(todo_hint(child).as_deref(), Some("sethostname(2) it"));
        let parent = "thread 'main' panicked at src/lib.rs:3:5:\n\
                      not yet implemented: the flag\nnote: run with RUST_BACKTRACE=1\n";
        assert_eq!(todo_hint(parent).as_deref(), Some("the flag"));
        assert_eq!(todo_hint("ch06-uts: sethostname(2): EPERM\n"), None);
    }

    #[test]
    fn the_table_has_one_line_per_pass_and_two_per_failure() {
        let t = table(
            "06-uts",
            &[
                Outcome {
                    property: "a".into(),
                    verdict: Verdict::Pass,
                },
                Outcome {
                    property: "b".into(),
                    verdict: Verdict::Fail("look here".into()),
                },
            ],
        );
        assert_eq!(
            t,
            "lab 06-uts: 1 of 2 checks pass\n  pass  a\n  FAIL  b\n        -> look here\n"
        );
    }
}
