//! Live demos (`cargo xtask demo NN`, book/src/demos.md). With
//! `STEPBOX_DEMO=1` the transcript runner ([`super::run_id`]) shows each
//! command as the book does before it runs, waits as the demo giver asked
//! (`STEPBOX_DEMO_PACE`), and shows the command's output as it comes;
//! `snapshot!` then says whether the transcript matches the tested one.
//! The commands are the tests' own: the demo is the test, run slowly.
//! Without `STEPBOX_DEMO` nothing here changes what a test does.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Set (to anything but `0`) by `cargo xtask demo`.
pub const VAR: &str = "STEPBOX_DEMO";
/// The file descriptor the demo is shown on (default 1): xtask gives the
/// audience's terminal as 3 and keeps libtest's own lines on 1.
pub const FD_VAR: &str = "STEPBOX_DEMO_FD";
/// `enter` (the default: Enter on /dev/tty runs each command; no wait
/// without a terminal), a number of seconds, or `0`.
pub const PACE_VAR: &str = "STEPBOX_DEMO_PACE";

/// How long to wait between showing a command and running it.
#[derive(Debug, PartialEq)]
pub enum Pace {
    Enter,
    Seconds(f64),
}

impl Pace {
    pub fn parse(text: &str) -> Option<Pace> {
        match text {
            "enter" => Some(Pace::Enter),
            _ => text
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Pace::Seconds),
        }
    }
}

pub struct Demo {
    out: Mutex<File>,
    colour: bool,
    pace: Pace,
    /// The terminal that Enter is read from, if the pace is Enter and
    /// the demo has one.
    tty: Option<File>,
}

/// Set by SIGINT: a Ctrl-C at a pause or during a command stops the demo
/// by a panic in the test, so that its cleanup (every `Drop`) runs; the
/// default action would kill the test with its containers' state left.
static STOPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOPPED.store(true, Ordering::SeqCst);
}

/// The demo this test process is part of, if any. The first call (from
/// `common::root()`, before a test makes anything) installs the SIGINT
/// handler.
pub fn get() -> Option<&'static Demo> {
    static DEMO: OnceLock<Option<Demo>> = OnceLock::new();
    DEMO.get_or_init(|| {
        std::env::var_os(VAR).filter(|v| !v.is_empty() && v != "0")?;
        Some(Demo::new())
    })
    .as_ref()
}

impl Demo {
    fn new() -> Demo {
        use std::os::fd::{FromRawFd, OwnedFd};
        let fd: i32 = match std::env::var(FD_VAR) {
            Ok(fd) => fd.parse().unwrap_or_else(|_| panic!("{FD_VAR}={fd:?}")),
            Err(_) => 1,
        };
        // SAFETY: fcntl(2) takes any number; one that is not an open
        // descriptor fails with EBADF.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            panic!("{FD_VAR}={fd}: {}", std::io::Error::last_os_error());
        }
        // SAFETY: `copy` is a new descriptor, owned by nothing else.
        let out = unsafe { OwnedFd::from_raw_fd(copy) };
        // SAFETY: isatty(3) only looks at the descriptor.
        let colour = unsafe { libc::isatty(fd) } == 1 && std::env::var_os("NO_COLOR").is_none();
        let pace = std::env::var(PACE_VAR).unwrap_or_else(|_| "enter".into());
        let pace = Pace::parse(&pace)
            .unwrap_or_else(|| panic!("{PACE_VAR}={pace:?}: `enter`, or seconds"));
        let tty = match pace {
            Pace::Enter => File::open("/dev/tty").ok(),
            Pace::Seconds(_) => None,
        };
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_sigint),
            // No SA_RESTART: a read of Enter returns EINTR at once.
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { nix::sys::signal::sigaction(nix::sys::signal::SIGINT, &action) }
            .expect("sigaction(SIGINT)");
        Demo {
            out: Mutex::new(File::from(out)),
            colour,
            pace,
            tty,
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // An audience that went away does not fail the test.
        let _ = out.write_all(bytes).and_then(|()| out.flush());
    }

    /// `text` in `style` (an SGR code) if the demo is shown on a terminal.
    fn styled(&self, style: &str, text: &str) -> String {
        match self.colour {
            true => format!("\x1b[{style}m{text}\x1b[0m"),
            false => text.to_owned(),
        }
    }

    /// Shows `$ bin args` as the transcript will (redacted, folded as
    /// the book folds it), then waits as the pace says.
    pub fn command(&self, bin: &str, args: &[&str]) {
        self.check();
        let line = super::for_the_book(&as_shown(&super::redact(&super::command_line(bin, args))));
        self.write(format!("{}\n", self.styled("1", &line)).as_bytes());
        self.pause();
        self.check();
    }

    /// What a command printed, for runners that collect it before showing
    /// it (tests/engines' kit).
    pub fn output(&self, bytes: &[u8]) {
        self.write(bytes);
    }

    /// After a command: its exit status, as the transcript says it.
    pub fn status(&self, code: i32) {
        if code != 0 {
            self.write(
                format!("{}\n", self.styled("2", &format!("[exit status {code}]"))).as_bytes(),
            );
        }
        self.check();
    }

    fn pause(&self) {
        match (&self.pace, &self.tty) {
            (Pace::Enter, Some(tty)) => read_enter(tty),
            (Pace::Enter, None) => {}
            (Pace::Seconds(s), _) => {
                let end = Instant::now() + Duration::from_secs_f64(*s);
                while Instant::now() < end && !STOPPED.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Panics if the demo giver pressed Ctrl-C: the test unwinds, and
    /// its `Drop`s clean up.
    pub fn check(&self) {
        if STOPPED.load(Ordering::SeqCst) {
            panic!("the demo was stopped (Ctrl-C); the test cleans up as it unwinds");
        }
    }

    /// Copies what `from` gives to the demo as it comes; the thread
    /// returns all of it, for the transcript.
    pub fn tee(
        &'static self,
        mut from: impl Read + Send + 'static,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.write(&buf[..n]);
                        all.extend_from_slice(&buf[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("reading a command's output: {e}"),
                }
            }
            all
        })
    }

    /// One snapshot's verdict.
    fn verdict(&self, name: &str, matches: bool) {
        let line = match matches {
            true => self.styled("32", &format!("✓ matches the tested transcript: {name}")),
            false => self.styled(
                "1;31",
                &format!("✗ DOES NOT MATCH the tested transcript: {name} (insta's diff shows how)"),
            ),
        };
        self.write(format!("{line}\n").as_bytes());
    }
}

/// Enter on the terminal, read without echo (the command line shown
/// already ends the line), or a Ctrl-C, which interrupts the read.
fn read_enter(tty: &File) {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let saved = tcgetattr(tty).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(tty, SetArg::TCSANOW, &quiet);
    }
    let mut byte = [0u8; 1];
    loop {
        match (&mut &*tty).read(&mut byte) {
            Ok(1) if byte[0] != b'\n' => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                if STOPPED.load(Ordering::SeqCst) {
                    break;
                }
            }
            _ => break,
        }
    }
    if let Some(saved) = &saved {
        let _ = tcsetattr(tty, SetArg::TCSANOW, saved);
    }
}

/// A command line as its transcript will show it: the default image's
/// directory as IMAGE and a [`super::Sandbox`]'s state dir as STATE,
/// which `Sandbox::sh` replaces once the command has run.
fn as_shown(line: &str) -> String {
    static SANDBOX_STATE: OnceLock<regex::Regex> = OnceLock::new();
    let state = SANDBOX_STATE.get_or_init(|| {
        regex::Regex::new(&format!(
            "{}/[a-z0-9]+-[0-9a-f]{{12}}/state",
            regex::escape(super::SCRATCH)
        ))
        .unwrap()
    });
    let image = xtask::paths::default_image().to_string_lossy().into_owned();
    state
        .replace_all(&line.replace(&image, "IMAGE"), "STATE")
        .into_owned()
}

/// A piece of transcript that a test put together itself, from a runtime
/// it drives (chapter 11's): in a live demo, shown as [`super::run_id`]'s
/// are, a command line then a pause then the rest, once the step has run.
pub fn shown(text: String) -> String {
    if let Some(demo) = get() {
        for line in text.split_inclusive('\n') {
            match line.strip_prefix("$ ") {
                Some(_) => {
                    demo.check();
                    let line = super::for_the_book(line.trim_end_matches('\n'));
                    demo.write(format!("{}\n", demo.styled("1", &line)).as_bytes());
                    demo.pause();
                    demo.check();
                }
                None => demo.write(line.as_bytes()),
            }
        }
    }
    text
}

/// Runs `check` (insta's assertion of snapshot `name`); in a demo, says
/// whether it matched, and a mismatch still fails the test.
pub fn verdict(name: &str, check: impl FnOnce()) {
    let Some(demo) = get() else {
        return check();
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
        Ok(()) => demo.verdict(name, true),
        Err(panic) => {
            demo.verdict(name, false);
            std::panic::resume_unwind(panic);
        }
    }
}
