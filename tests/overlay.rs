//! Chapter 8's demos: a root filesystem made of image layers with overlayfs.

mod common;

use ch08_overlay::testdata::{self, Expect, ESCAPE_TARGET};
use common::{names, root, rootfs, run_clean, Run, SCRATCH};
use std::path::{Path, PathBuf};

/// A state dir of the test's own, removed when dropped (also on panic).
struct State(PathBuf);

impl State {
    fn new() -> State {
        let dir = Path::new(SCRATCH).join(format!("state-{}", common::unique_id()));
        std::fs::create_dir_all(&dir).unwrap();
        State(dir)
    }
    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
    /// The container dirs in the state dir.
    fn containers(&self) -> Vec<String> {
        match std::fs::read_dir(self.0.join("containers")) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ch08-overlay --state-dir STATE --layer ... ARGS`, with the paths redacted.
fn ch08(state: &State, extra: &[&str], command: &[&str]) -> Run {
    let image = common::image_args();
    let state_arg = state.arg();
    let mut args: Vec<&str> = vec!["--state-dir", &state_arg];
    args.extend(image.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    let id = common::unique_id();
    let mut run = common::run_clean_as(&id, "ch08-overlay", &args);
    let image_dir = xtask::paths::default_image().to_string_lossy().into_owned();
    run.transcript = run
        .transcript
        .replace(&image_dir, "IMAGE")
        .replace(&state_arg, "STATE");
    // Gone after exit; with --keep, only the upper dir stays.
    let dir = state.0.join("containers").join(&id);
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let allowed: &[&str] = if extra.contains(&"--keep") {
        &["upper"]
    } else {
        &[]
    };
    assert_eq!(left, allowed, "left in the container dir {}", dir.display());
    run
}

#[test]
fn ch08_layers_and_whiteouts() {
    if !root() || !common::overlay_available() {
        return;
    }
    let state = State::new();
    let show = "cat /etc/motd; ls /srv /srv/docs; cat /srv/hello.txt";
    let r = rootfs().to_string_lossy().into_owned();
    let before = run_clean("ch07-cgroups", &["--rootfs", &r, "--", "sh", "-c", show]);
    let after = ch08(&state, &[], &["sh", "-c", show]);
    // Layer 2's /srv/hello.txt is hidden by layer 3's whiteout; /srv/docs is
    // opaque in layer 3, so only its own c.txt shows.
    assert!(
        after.stderr.contains("can't open '/srv/hello.txt'"),
        "{}",
        after.transcript
    );
    assert!(
        after.stdout.contains("/srv/docs:\nc.txt\n"),
        "{}",
        after.transcript
    );
    assert!(
        after.stdout.starts_with("This / is three image layers"),
        "{}",
        after.transcript
    );
    // The root is the overlay, its lower layers reached through short links.
    let probe = ch08(&state, &[], &["sh", "-c", "/bin/probe fs | grep -e root: -e ' / '; grep -o 'lowerdir=[^,]*,upperdir=[^,]*,workdir=[^,]*' /proc/mounts"]);
    assert!(
        probe.stdout.contains("  / overlay rw"),
        "{}",
        probe.transcript
    );
    assert!(
        probe
            .stdout
            .contains("lowerdir=l/2:l/1:l/0,upperdir=upper,workdir=work"),
        "{}",
        probe.transcript
    );
    crate::snapshot!("ch08_before", &before.transcript);
    crate::snapshot!("ch08_whiteout", &after.transcript);
    crate::snapshot!("ch08_after", &probe.transcript);
}

/// Every file under `dir` with its size and mode: enough to see a change.
fn fingerprint(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            out.push(format!(
                "{} {} {:o}",
                e.path().display(),
                m.len(),
                std::os::unix::fs::PermissionsExt::mode(&m.permissions())
            ));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn ch08_writes_go_to_the_upper_dir() {
    if !root() || !common::overlay_available() {
        return;
    }
    let state = State::new();
    // Unpack the layers once, then fingerprint them.
    ch08(&state, &[], &["true"]);
    let layers = state.0.join("layers");
    let before = fingerprint(&layers);
    let run = ch08(
        &state,
        &["--keep"],
        &[
            "sh",
            "-c",
            "echo written > /root/note; rm /etc/motd; ls /root /etc/motd",
        ],
    );
    assert_eq!(fingerprint(&layers), before, "a container changed a layer");
    let kept = run
        .stderr
        .lines()
        .find_map(|l| l.split("upper dir: ").nth(1))
        .expect("--keep prints the upper dir");
    let kept = Path::new(kept.trim());
    assert_eq!(
        std::fs::read_to_string(kept.join("root/note")).unwrap(),
        "written\n"
    );
    // The deleted lower file is a whiteout in upper: a character device 0/0.
    let motd = std::fs::symlink_metadata(kept.join("etc/motd")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &motd.file_type()
    ));
    assert_eq!(std::os::unix::fs::MetadataExt::rdev(&motd), 0);
    let _ = std::fs::remove_dir_all(kept.parent().unwrap());
    let redacted = regex::Regex::new(r"containers/[0-9a-f]+/")
        .unwrap()
        .replace_all(&run.transcript, "containers/ID/")
        .into_owned();
    crate::snapshot!("ch08_upper", &redacted);
}

#[test]
fn ch08_containers_do_not_see_each_others_writes() {
    if !root() || !common::overlay_available() {
        return;
    }
    let state = State::new();
    ch08(&state, &[], &["true"]); // unpack once
                                  // Both write before either reads: each says "written", then waits for
                                  // its stdin to close, which the test does once it has both lines.
    let (image, state_arg) = (common::image_args(), state.arg());
    let mut runs: Vec<Runtime> = ["first", "second"]
        .into_iter()
        .map(|name| {
            let cmd =
                format!("echo {name} > /root/mark; echo written; read x; cat /root/mark; ls /root");
            let mut args = vec!["--state-dir", &state_arg];
            args.extend(image.iter().map(String::as_str));
            args.extend(["--", "sh", "-c", &cmd]);
            Runtime::start(&args, &state.0.join("run"), None)
        })
        .collect();
    for rt in &mut runs {
        assert!(rt.wait_line(false, "written"), "{}", rt.stderr);
    }
    for rt in &mut runs {
        assert_eq!(rt.finish(), 0, "{}", rt.stderr);
        rt.assert_host_clean();
    }
    let outputs: Vec<&str> = runs.iter().map(|r| r.stdout.as_str()).collect();
    assert_eq!(
        outputs,
        ["written\nfirst\nmark\n", "written\nsecond\nmark\n"]
    );
    assert_eq!(state.containers(), Vec::<String>::new());
}

#[test]
fn ch08_bad_layers_are_refused() {
    if !root() || !common::overlay_available() {
        return;
    }
    let _ = std::fs::remove_file(ESCAPE_TARGET);
    let state = State::new();
    let image = xtask::image::ensure().unwrap();
    let (s, bottom) = (state.arg(), image[0].to_string_lossy().into_owned());
    // A layer in the cache before the first case: every case must leave it,
    // and every layer cached since, as it was.
    let warm = run_clean(
        "ch08-overlay",
        &["--state-dir", &s, "--layer", &bottom, "--", "true"],
    );
    assert_eq!(warm.code, 0, "{}", warm.transcript);
    let layers = state.0.join("layers");
    // The layer (a directory of layers/ named by a sha256) that a line of
    // `fingerprint` is about, if it is about one.
    let layer_of = |line: &str| -> Option<String> {
        let path = line.rsplitn(3, ' ').nth(2)?;
        let rel = Path::new(path).strip_prefix(&layers).ok()?;
        let top = rel.components().next()?.as_os_str().to_string_lossy();
        let is_layer = top.len() == 64 && top.bytes().all(|b| b.is_ascii_hexdigit());
        is_layer.then(|| top.into_owned())
    };
    let mut transcript = String::new();
    for case in testdata::malicious() {
        let tar = state.0.join(format!("{}.tar", case.name));
        std::fs::write(&tar, &case.tar).unwrap();
        let t = tar.to_string_lossy().into_owned();
        let before = fingerprint(&layers);
        let cached: Vec<String> = before.iter().filter_map(|l| layer_of(l)).collect();
        let run = run_clean(
            "ch08-overlay",
            &[
                "--state-dir",
                &s,
                "--layer",
                &bottom,
                "--layer",
                &t,
                "--",
                "true",
            ],
        );
        match case.expect {
            Expect::Reject(why) => {
                assert_eq!(run.code, 125, "{}: {}", case.name, run.transcript);
                assert_eq!(
                    run.stderr.lines().count(),
                    1,
                    "{}: {}",
                    case.name,
                    run.transcript
                );
                assert!(
                    run.stderr.contains(why),
                    "{}: {}",
                    case.name,
                    run.transcript
                );
                // The command, then the error (every case exits with 125,
                // as the book says: its `[exit status 125]` is left out).
                let shown = run.transcript.replace(&bottom, "IMAGE/1-busybox.tar");
                let (shown, status) = shown.rsplit_once("[exit status").unwrap();
                assert_eq!(status, " 125]\n", "{}", run.transcript);
                transcript.push_str(shown);
            }
            Expect::Accept => assert_eq!(run.code, 0, "{}: {}", case.name, run.transcript),
        }
        assert!(
            !Path::new(ESCAPE_TARGET).exists(),
            "{} wrote outside its layer",
            case.name
        );
        assert!(
            state.containers().is_empty(),
            "{} left a container dir",
            case.name
        );
        // The cache's other layers are intact: every entry of every layer
        // that was cached is there unchanged, and none has new entries. (A
        // whiteout of ".." once deleted them all.) Only a new layer's
        // directory, this case's own, may appear.
        assert!(layers.is_dir(), "{} deleted the layer cache", case.name);
        let after = fingerprint(&layers);
        let gone: Vec<&String> = before
            .iter()
            .filter(|l| layer_of(l).is_some() && !after.contains(l))
            .collect();
        let new: Vec<&String> = after
            .iter()
            .filter(|l| layer_of(l).is_some_and(|layer| cached.contains(&layer)))
            .filter(|l| !before.contains(l))
            .collect();
        assert!(
            gone.is_empty() && new.is_empty(),
            "{} changed the cached layers: was {gone:?}, is {new:?}",
            case.name
        );
        // A refused layer leaves no partial unpack behind in the cache.
        let leftovers: Vec<_> = std::fs::read_dir(&layers)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{} left {leftovers:?}", case.name);
    }
    let sha = regex::Regex::new(r"sha256:[0-9a-f]{12,64}").unwrap();
    crate::snapshot!(
        "ch08_bad_layers",
        &sha.replace_all(&common::redact(&transcript), "sha256:…")
            .into_owned()
    );
}

// ---- The layer store and the overlay's teardown, against hostile input ----
//
// These tests start the runtime themselves (not through run_clean) when they
// need to talk to it while it runs: a resource limit, a pipe on stdin, a
// signal at a chosen moment. Each has a scratch dir of its own, removed with
// the runtime's own remove_all (it may be deeper than std's remove_dir_all
// can reach), and checks the host like run_clean does.

use ch08_overlay::remove::remove_all;
use common::HostState;
use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A scratch dir with a state dir in it, removed when dropped (also on panic).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = Path::new(SCRATCH).join(format!("store-{}", common::unique_id()));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        Scratch(dir)
    }
    fn state(&self) -> PathBuf {
        self.0.join("state")
    }
    fn state_arg(&self) -> String {
        self.state().to_string_lossy().into_owned()
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// What the layer cache holds besides its lock and its memos: unpacked
    /// layers and temporary dirs (also temporary memos).
    fn cached(&self) -> Vec<String> {
        let layers = self.state().join("layers");
        let mut out = names(&layers);
        out.retain(|n| n != "lock" && n != "by-file");
        out.extend(
            names(&layers.join("by-file"))
                .into_iter()
                .filter(|n| n.starts_with(".tmp-"))
                .map(|n| format!("by-file/{n}")),
        );
        out.sort();
        out
    }
    fn temps(&self) -> Vec<String> {
        let mut t = self.cached();
        t.retain(|n| n.contains(".tmp-"));
        t
    }
    fn containers(&self) -> Vec<String> {
        names(&self.state().join("containers"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = remove_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// A tmpfs mounted by the test, unmounted when dropped (also on panic).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .unwrap_or_else(|e| panic!("mounting a tmpfs on {}: {e}", at.display()));
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("umount {}: {e}", self.0.display());
        }
    }
}

/// One ch08-overlay process, started by the test, talked to while it runs.
struct Runtime {
    id: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines as they come: (from stderr?, the line, or None at the end).
    lines: mpsc::Receiver<(bool, Option<String>)>,
    ended: u32,
    stdout: String,
    stderr: String,
    code: Option<i32>,
    before: HostState,
    args: Vec<String>,
}

impl Runtime {
    /// `ch08-overlay ARGS` with stdin a pipe; `nofile` sets its soft
    /// open-file limit. Its state records go to `run_dir`, the test's own:
    /// those of a killed run or a failed teardown are then swept by this
    /// test's next start, not by another test's at any moment.
    fn start(args: &[&str], run_dir: &Path, nofile: Option<u64>) -> Runtime {
        let id = common::unique_id();
        let before = HostState::capture(&id);
        let mut cmd = Command::new(common::bin_dir().join("ch08-overlay"));
        cmd.args(args)
            .env("STEPBOX_CONTAINER_ID", &id)
            .env("STEPBOX_RUN_DIR", run_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            // SAFETY: between fork and exec only async-signal-safe calls:
            // getrlimit(2) and setrlimit(2) are system calls.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                    let mut lim: libc::rlimit = std::mem::zeroed();
                    if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    lim.rlim_cur = n;
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("starting ch08-overlay");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        fn pump(
            r: impl std::io::Read + Send + 'static,
            is_err: bool,
            tx: mpsc::Sender<(bool, Option<String>)>,
        ) {
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send((is_err, Some(line)));
                }
                let _ = tx.send((is_err, None));
            });
        }
        pump(out, false, tx.clone());
        pump(err, true, tx);
        Runtime {
            id,
            stdin: child.stdin.take(),
            child,
            lines,
            ended: 0,
            stdout: String::new(),
            stderr: String::new(),
            code: None,
            before,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Takes one line (false when both streams ended); panics after 120 s.
    fn next_line(&mut self, deadline: Instant) -> Option<(bool, String)> {
        while self.ended < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((is_err, Some(line))) => {
                    let to = if is_err {
                        &mut self.stderr
                    } else {
                        &mut self.stdout
                    };
                    to.push_str(&line);
                    to.push('\n');
                    return Some((is_err, line));
                }
                Ok((_, None)) => self.ended += 1,
                Err(_) => panic!("ch08-overlay did not finish in 120 s:\n{}", self.stderr),
            }
        }
        None
    }

    /// Waits for a line containing `needle` on stdout or stderr (a
    /// readiness handshake); false if the runtime ended without one.
    fn wait_line(&mut self, on_stderr: bool, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Some((is_err, line)) = self.next_line(deadline) {
            if is_err == on_stderr && line.contains(needle) {
                return true;
            }
        }
        false
    }

    /// With `-v`: waits until the runtime has made and locked the temp dir
    /// it unpacks a layer into (it says so: a handshake, not a poll).
    fn wait_unpacking(&mut self) {
        assert!(
            self.wait_line(true, "flock(2) it"),
            "the runtime ended before it unpacked a layer:\n{}",
            self.stderr
        );
    }

    /// Its stderr without `-v`'s lines.
    fn errors(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.starts_with("+ "))
            .collect()
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), sig).unwrap();
    }

    /// Closes stdin, waits for the exit and the end of the output; returns the exit status.
    fn finish(&mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.next_line(deadline).is_some() {}
        if self.code.is_none() {
            let status = loop {
                if let Some(s) = self.child.try_wait().unwrap() {
                    break s;
                }
                assert!(
                    Instant::now() < deadline,
                    "ch08-overlay did not exit in 120 s"
                );
                std::thread::sleep(Duration::from_millis(5));
            };
            self.code = Some(
                std::os::unix::process::ExitStatusExt::signal(&status)
                    .map_or_else(|| status.code().unwrap(), |s| 128 + s),
            );
        }
        self.code.unwrap()
    }

    /// `$ ch08-overlay ARGS`, the output and the exit status, as the book
    /// shows them: the scratch dir, the image and the container id redacted.
    fn transcript(&self, scratch: &Scratch) -> String {
        let shown: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                if a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.,:=+@%".contains(&b))
                {
                    a.clone()
                } else {
                    format!("'{a}'")
                }
            })
            .collect();
        let mut t = format!(
            "$ ch08-overlay {}\n{}{}",
            shown.join(" "),
            self.stdout,
            self.stderr
        );
        if let Some(code) = self.code.filter(|&c| c != 0) {
            t.push_str(&format!("[exit status {code}]\n"));
        }
        let image = xtask::paths::default_image().to_string_lossy().into_owned();
        t.replace(&scratch.state_arg(), "STATE")
            .replace(&scratch.0.to_string_lossy().into_owned(), "SCRATCH")
            .replace(&image, "IMAGE")
            .replace(&self.id, "ID")
    }

    /// The host's mounts, links and cgroups for this container are as before.
    fn assert_host_clean(&self) {
        assert_eq!(
            self.before,
            HostState::capture(&self.id),
            "the runtime changed the host\n{}",
            self.stderr
        );
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.code.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            // A test that failed half-way: a runtime killed now cannot
            // clean up after itself, so its cgroups are removed here.
            let _ = self.child.kill();
            let _ = self.child.wait();
            let mut cgroups = common::find_cgroups(&self.id);
            cgroups.sort_by_key(|c| std::cmp::Reverse(c.len()));
            for c in cgroups {
                let _ = std::fs::remove_dir(&c);
            }
        }
    }
}

/// `--state-dir STATE --layer BUSYBOX [--layer L]... EXTRA -- COMMAND`
fn args_for(scratch: &Scratch, layers: &[&Path], extra: &[&str], command: &[&str]) -> Vec<String> {
    let image = xtask::image::ensure().unwrap();
    let mut args = vec!["--state-dir".to_string(), scratch.state_arg()];
    for l in std::iter::once(&image[0].as_path()).chain(layers) {
        args.push("--layer".into());
        args.push(l.to_string_lossy().into_owned());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--".into());
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

fn start(
    scratch: &Scratch,
    layers: &[&Path],
    extra: &[&str],
    command: &[&str],
    nofile: Option<u64>,
) -> Runtime {
    let args = args_for(scratch, layers, extra, command);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Runtime::start(&args, &scratch.file("run"), nofile)
}

/// One tar header (GNU format, as the tar crate reads long names only from those).
fn tar_header(name: &[u8], kind: u8, size: u64) -> [u8; 512] {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{:0w$o}\0", v, w = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    }
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], if kind == b'5' { 0o755 } else { 0o644 });
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_000_000_000);
    h[156] = kind;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// An entry whose name may be longer than a header holds (a GNU long name).
fn tar_entry(out: &mut Vec<u8>, name: &[u8], kind: u8, data: &[u8]) {
    if name.len() > 100 {
        out.extend_from_slice(&tar_header(b"././@LongLink", b'L', name.len() as u64 + 1));
        out.extend_from_slice(name);
        out.push(0);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend_from_slice(&tar_header(name, kind, data.len() as u64));
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

/// A plain tar of one file of `size` zero bytes, written as a sparse file:
/// large to read, free to make.
fn zeros_tar(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&tar_header(b"zeros", b'0', size)).unwrap();
    f.set_len(512 + size.next_multiple_of(512) + 1024).unwrap();
}

/// The same, gzip-compressed: a few hundred bytes per MiB of data (gzip
/// members one after another are one gzip stream).
fn zeros_tar_gz(path: &Path, size: u64) {
    assert_eq!(size % (1 << 20), 0);
    let mib = testdata::gzip(&vec![0u8; 1 << 20]);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&testdata::gzip(&tar_header(b"zeros", b'0', size)))
        .unwrap();
    for _ in 0..size >> 20 {
        f.write_all(&mib).unwrap();
    }
    f.write_all(&testdata::gzip(&[0u8; 1024])).unwrap();
    f.flush().unwrap();
}

/// Nothing in the layer cache but the bottom layer (busybox), unpacked:
/// no temp dir, no other layer.
fn only_busybox_is_cached(scratch: &Scratch) {
    let cached = scratch.cached();
    assert!(
        cached.len() == 1 && cached[0].len() == 64,
        "left in the cache: {cached:?}"
    );
}

/// The one line of an error, checked to be one line.
fn one_line(rt: &Runtime) -> &str {
    assert_eq!(rt.stderr.lines().count(), 1, "not one line:\n{}", rt.stderr);
    rt.stderr.trim_end()
}

#[test]
fn ch08_a_container_deeper_than_the_runtimes_file_limit_is_removed() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    // 1500 levels under `ulimit -n 1024`: std's remove_dir_all needs one
    // descriptor per level, and failed here with EMFILE.
    let chain =
        "i=0; while [ $i -lt 1500 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; exit 7";
    let mut rt = start(&scratch, &[], &[], &["sh", "-c", chain], Some(1024));
    assert_eq!(rt.finish(), 7, "{}", rt.stderr);
    assert_eq!(rt.stderr, "");
    assert!(
        scratch.containers().is_empty(),
        "left {:?}",
        scratch.containers()
    );
    rt.assert_host_clean();
}

#[test]
fn ch08_a_teardown_that_fails_is_reported() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let mut rt = start(
        &scratch,
        &[],
        &[],
        &["sh", "-c", "mkdir /m && echo ready && read x; exit 3"],
        None,
    );
    assert!(rt.wait_line(false, "ready"), "{}", rt.stderr);
    // From the host, a mount inside the container's upper dir: the
    // runtime cannot remove that directory, and must say so.
    let container = scratch.state().join("containers").join(&rt.id);
    let mount = Tmpfs::mount(&container.join("upper/m"), "1m");
    writeln!(rt.stdin.as_ref().unwrap(), "go").unwrap();
    let code = rt.finish();
    drop(mount);
    assert_eq!(code, 125, "{}", rt.stderr);
    let line = one_line(&rt);
    assert!(line.contains("exited with status 3"), "{line}");
    assert!(
        line.contains(&format!("left {:?}", container.display().to_string())),
        "{line}"
    );
    assert!(container.exists());
    remove_all(&container).unwrap();
    rt.assert_host_clean();
    crate::snapshot!("ch08_teardown_fails", &rt.transcript(&scratch));
}

#[test]
fn ch08_a_refused_deep_layer_leaves_no_temp_dir() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    // A directory 1500 levels deep, then an entry the unpacker refuses:
    // the temp dir must then be removed at that depth, with `ulimit -n 1024`.
    let mut tar = Vec::new();
    tar_entry(&mut tar, "d/".repeat(1500).as_bytes(), b'5', b"");
    tar_entry(&mut tar, b"../escape", b'0', b"x");
    tar.extend_from_slice(&[0; 1024]);
    let layer = scratch.file("deep.tar");
    std::fs::write(&layer, &tar).unwrap();
    let mut rt = start(&scratch, &[&layer], &[], &["true"], Some(1024));
    assert_eq!(rt.finish(), 125, "{}", rt.stderr);
    let line = one_line(&rt);
    assert!(line.contains("escape"), "{line}");
    assert!(!line.contains("left"), "{line}");
    only_busybox_is_cached(&scratch);
    assert!(scratch.containers().is_empty());
    rt.assert_host_clean();
}

/// Unpacks the bottom layer into the cache, so that the next run's only
/// temp dir and hash are those of the layer under test.
fn warm(scratch: &Scratch) {
    let mut rt = start(scratch, &[], &[], &["true"], None);
    assert_eq!(rt.finish(), 0, "{}", rt.stderr);
    only_busybox_is_cached(scratch);
}

#[test]
fn ch08_temp_dirs_of_a_killed_run_are_reclaimed() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let big = scratch.file("big.tar.gz");
    zeros_tar_gz(&big, 256 << 20);
    warm(&scratch);
    let mut killed = start(&scratch, &[&big], &["-v"], &["true"], None);
    killed.wait_unpacking();
    killed.signal(nix::sys::signal::Signal::SIGKILL);
    assert_eq!(killed.finish(), 137);
    // The layers are checked (unpacked) before any step makes anything: no
    // cgroup of the killed run exists.
    assert_eq!(common::find_cgroups(&killed.id), Vec::<String>::new());
    killed.assert_host_clean();
    let stale = scratch.temps();
    assert_eq!(stale.len(), 1, "{stale:?}");

    // The next start, of another image, removes it: nobody holds its lock.
    let mut next = start(&scratch, &[], &[], &["true"], None);
    assert_eq!(next.finish(), 0, "{}", next.stderr);
    assert_eq!(next.stderr, "");
    assert_eq!(scratch.temps(), Vec::<String>::new());
    next.assert_host_clean();
}

#[test]
fn ch08_a_live_unpack_is_not_reclaimed_by_another_run() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let big = scratch.file("big.tar.gz");
    zeros_tar_gz(&big, 256 << 20);
    warm(&scratch);
    let mut first = start(&scratch, &[&big], &["-v"], &["true"], None);
    first.wait_unpacking();
    let live = scratch.temps();
    // Started while the first one unpacks the same layer: its reclaim
    // (in Store::open, before it hashes the layer) finds the first one's
    // temp dir locked, and leaves it.
    let mut second = start(&scratch, &[&big], &["-v"], &["true"], None);
    let hashing = format!("+ sha256 {}", big.display());
    assert!(second.wait_line(true, &hashing), "{}", second.stderr);
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the first run ended before the second one's reclaim: make the layer bigger"
    );
    let now = scratch.temps();
    assert!(
        live.iter().all(|t| now.contains(t)),
        "{live:?} became {now:?}"
    );
    assert_eq!(first.finish(), 0, "{}", first.stderr);
    assert_eq!(first.errors(), Vec::<&str>::new());
    assert_eq!(second.finish(), 0, "{}", second.stderr);
    assert!(!second.stderr.contains("warning"), "{}", second.stderr);
    let cached = scratch.cached();
    assert_eq!(cached.len(), 2, "{cached:?}"); // the two layers, no temp dir
    assert!(cached.iter().all(|n| n.len() == 64), "{cached:?}");
    first.assert_host_clean();
    second.assert_host_clean();
}

#[test]
fn ch08_a_layer_rewritten_in_place_is_unpacked_again() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let layer = scratch.file("v.tar");
    let version = |v: &[u8]| testdata::tar(&[testdata::Entry::file(b"srv/v.txt", v)]);
    std::fs::write(&layer, version(b"one\n")).unwrap();
    let mut rt = start(&scratch, &[&layer], &[], &["cat", "/srv/v.txt"], None);
    assert_eq!(
        (rt.finish(), rt.stdout.as_str()),
        (0, "one\n"),
        "{}",
        rt.stderr
    );

    // Same inode, same size, and the old mtime put back (what `touch -r`,
    // `cp -p` and `rsync -t` do): only the ctime tells it changed.
    let before = std::fs::metadata(&layer).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&layer)
        .unwrap();
    f.write_all(&version(b"two\n")).unwrap();
    drop(f);
    use std::os::unix::fs::MetadataExt;
    nix::sys::stat::utimensat(
        None,
        &layer,
        &nix::sys::time::TimeSpec::new(before.atime(), before.atime_nsec()),
        &nix::sys::time::TimeSpec::new(before.mtime(), before.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .unwrap();
    let after = std::fs::metadata(&layer).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    let mut rt = start(&scratch, &[&layer], &[], &["cat", "/srv/v.txt"], None);
    assert_eq!(
        (rt.finish(), rt.stdout.as_str()),
        (0, "two\n"),
        "{}",
        rt.stderr
    );
    rt.assert_host_clean();
}

#[test]
fn ch08_layer_limits_refuse_a_gzip_bomb_and_too_many_entries() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    // 64 MiB of data in a 70 KB file.
    let bomb = scratch.file("bomb.tar.gz");
    zeros_tar_gz(&bomb, 64 << 20);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    // The limits apply to every layer: the bottom one (2 MB) is unpacked
    // first, without them.
    warm(&scratch);
    let mut rt = start(
        &scratch,
        &[&bomb],
        &["--max-layer-size", "1m"],
        &["true"],
        None,
    );
    assert_eq!(rt.finish(), 125, "{}", rt.stderr);
    let line = one_line(&rt);
    assert!(line.contains("--max-layer-size"), "{line}");
    only_busybox_is_cached(&scratch);
    assert!(scratch.containers().is_empty());
    rt.assert_host_clean();

    let names: Vec<String> = (0..2000).map(|i| format!("f{i}")).collect();
    let entries: Vec<testdata::Entry> = names
        .iter()
        .map(|n| testdata::Entry::file(n.as_bytes(), b""))
        .collect();
    let many = scratch.file("many.tar");
    std::fs::write(&many, testdata::tar(&entries)).unwrap();
    let mut rt = start(
        &scratch,
        &[&many],
        &["--max-layer-entries", "1000"],
        &["true"],
        None,
    );
    assert_eq!(rt.finish(), 125, "{}", rt.stderr);
    let line = one_line(&rt);
    assert!(line.contains("--max-layer-entries"), "{line}");
    only_busybox_is_cached(&scratch);
    assert!(scratch.containers().is_empty());
    rt.assert_host_clean();

    // Raised, the same layer is accepted.
    let mut rt = start(
        &scratch,
        &[&many],
        &["--max-layer-entries", "2001"],
        &["true"],
        None,
    );
    assert_eq!(rt.finish(), 0, "{}", rt.stderr);
}

#[test]
fn ch08_a_layer_must_be_a_regular_file() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let fifo = scratch.file("layer.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Opening a FIFO waits for a writer: the runtime must not get that far.
    let mut transcript = String::new();
    for (path, what) in [
        (fifo.as_path(), "is a FIFO"),
        (Path::new("/dev/null"), "is a character device"),
        (scratch.0.as_path(), "is a directory"),
    ] {
        let mut rt = start(&scratch, &[path], &[], &["true"], None);
        assert_eq!(rt.finish(), 125, "{}", rt.stderr);
        let line = one_line(&rt);
        assert!(line.contains(what), "{line}");
        assert!(
            line.contains(&format!("{:?}", path.display().to_string())),
            "{line}"
        );
        rt.assert_host_clean();
        transcript.push_str(&rt.transcript(&scratch));
    }
    crate::snapshot!("ch08_not_a_file", &transcript);
}

#[test]
fn ch08_ctrl_c_while_hashing_a_layer_stops_it() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let big = scratch.file("big.tar");
    zeros_tar(&big, 512 << 20);
    warm(&scratch);
    let mut rt = start(&scratch, &[&big], &["-v"], &["true"], None);
    let hashing = format!("+ sha256 {}", big.display());
    assert!(rt.wait_line(true, &hashing), "{}", rt.stderr);
    rt.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(rt.finish(), 130, "{}", rt.stderr);
    // Stopped within the hash: it never got to unpacking.
    assert!(!rt.stderr.contains(".tmp-"), "{}", rt.stderr);
    assert!(rt.stderr.contains("interrupted by SIGINT"), "{}", rt.stderr);
    only_busybox_is_cached(&scratch);
    assert!(scratch.containers().is_empty());
    rt.assert_host_clean();
}

#[test]
fn ch08_ctrl_c_while_unpacking_a_layer_stops_it() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let big = scratch.file("big.tar.gz");
    zeros_tar_gz(&big, 512 << 20);
    warm(&scratch);
    let mut rt = start(&scratch, &[&big], &["-v"], &["true"], None);
    rt.wait_unpacking();
    rt.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(rt.finish(), 130, "{}", rt.stderr);
    let errors = rt.errors();
    assert_eq!(errors.len(), 1, "not one line:\n{}", rt.stderr);
    assert!(errors[0].contains("interrupted by SIGINT"), "{}", errors[0]);
    // Neither a finished layer nor its temp dir: the unpack stopped half-way.
    only_busybox_is_cached(&scratch);
    assert!(scratch.containers().is_empty());
    rt.assert_host_clean();
}

#[test]
fn ch08_a_full_state_dir_is_named_and_cleaned_up() {
    if !root() || !common::overlay_available() {
        return;
    }
    let scratch = Scratch::new();
    let _tmpfs = Tmpfs::mount(&scratch.state(), "8m");
    // The busybox layer fits; 16 MiB of data does not.
    let big = scratch.file("big.tar.gz");
    zeros_tar_gz(&big, 16 << 20);
    let mut rt = start(&scratch, &[&big], &[], &["true"], None);
    assert_eq!(rt.finish(), 125, "{}", rt.stderr);
    let line = one_line(&rt);
    assert!(line.to_lowercase().contains("no space left"), "{line}");
    assert!(!line.contains("truncated"), "{line}");
    only_busybox_is_cached(&scratch);
    assert!(scratch.containers().is_empty());
    rt.assert_host_clean();
}
