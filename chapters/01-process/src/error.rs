//! Errors that end the runtime, with the exit codes docker and podman use.

use std::fmt;

/// 125: the runtime itself failed (bad flag, a syscall refused, a bad rootfs).
pub const EXIT_RUNTIME: i32 = 125;
/// 126: the command exists but cannot be executed.
pub const EXIT_CANNOT_EXEC: i32 = 126;
/// 127: the command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, Clone)]
pub struct Error {
    pub code: i32,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error {
            code: EXIT_RUNTIME,
            msg: msg.into(),
        }
    }
    pub fn with_code(code: i32, msg: impl Into<String>) -> Self {
        Error {
            code,
            msg: msg.into(),
        }
    }
}

/// What kind of failure an [`Error`] is, for a program that maps it to
/// something else than an exit status (an engine: an HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 125: the runtime itself failed (bad input, a refused syscall).
    Runtime,
    /// 126: the command exists but cannot be executed.
    CannotExecute,
    /// 127: the command was not found.
    NotFound,
    /// 128+N: stopped by signal N (a Ctrl-C before the container started).
    Interrupted(i32),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self.code {
            EXIT_CANNOT_EXEC => ErrorKind::CannotExecute,
            EXIT_NOT_FOUND => ErrorKind::NotFound,
            c if c > 128 => ErrorKind::Interrupted(c - 128),
            _ => ErrorKind::Runtime,
        }
    }
}

impl std::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// A message as one line that a terminal shows as it is: newlines, escape
/// sequences and other control characters (from a file name, a hostname, a
/// layer's entry) are written as `\n`, `\u{1b}`. Every error is printed
/// through it, so that nothing the user or an image supplied can split the
/// line or rewrite the terminal.
pub fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Turns an errno into one line that says what failed, on what, and why,
/// with a hint for the errors students meet most.
pub fn describe(errno: nix::errno::Errno) -> String {
    describe_as(errno, nix::unistd::geteuid().is_root())
}

/// [`describe`], for a caller who is root or not.
pub fn describe_as(errno: nix::errno::Errno, root: bool) -> String {
    use nix::errno::Errno::*;
    let why = errno.desc().to_lowercase();
    match errno {
        // Root meets EPERM too (a capability it dropped, a seccomp
        // filter): the hint is only for whom it can help.
        EPERM if !root => format!("{why} (are you root? try sudo)"),
        _ => why,
    }
}

/// `.context("pivot_root(2) into /x")` on any nix or io result.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::runtime(format!("{what}: {}", describe(e))))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| match e.raw_os_error() {
            Some(n) => Error::runtime(format!(
                "{what}: {}",
                describe(nix::errno::Errno::from_raw(n))
            )),
            None => Error::runtime(format!("{what}: {e}")),
        })
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn kinds_follow_the_exit_codes() {
        assert_eq!(Error::runtime("x").kind(), ErrorKind::Runtime);
        assert_eq!(Error::with_code(126, "x").kind(), ErrorKind::CannotExecute);
        assert_eq!(Error::with_code(127, "x").kind(), ErrorKind::NotFound);
        assert_eq!(Error::with_code(130, "x").kind(), ErrorKind::Interrupted(2));
        let e: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::runtime("a: b"));
        assert_eq!(e.to_string(), "a: b");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    #[test]
    fn exit_codes_are_dockers() {
        assert_eq!(
            (EXIT_RUNTIME, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND),
            (125, 126, 127)
        );
        let e = Error::runtime("no command given");
        assert_eq!((e.code, e.to_string().as_str()), (125, "no command given"));
        let e = Error::with_code(130, "interrupted");
        assert_eq!((e.code, e.msg.as_str()), (130, "interrupted"));
    }

    #[test]
    fn errnos_are_described_in_lower_case() {
        assert_eq!(describe(Errno::ENOENT), "no such file or directory");
        assert_eq!(describe(Errno::EBUSY), "device or resource busy");
        assert_eq!(describe(Errno::EACCES), "permission denied");
        assert_eq!(describe(Errno::EINVAL), "invalid argument");
    }

    #[test]
    fn only_eperm_hints_at_root() {
        assert_eq!(
            describe_as(Errno::EPERM, false),
            "operation not permitted (are you root? try sudo)"
        );
        assert_eq!(describe_as(Errno::EPERM, true), "operation not permitted");
        // EACCES is a file's permissions, not a missing capability.
        assert!(!describe_as(Errno::EACCES, false).contains("sudo"));
    }

    #[test]
    fn every_errno_is_one_line_of_words() {
        for n in 1..134 {
            let why = describe(Errno::from_raw(n));
            assert!(!why.is_empty(), "errno {n}");
            assert_eq!(one_line(&why), why, "errno {n}: {why:?}");
            assert_eq!(why, why.to_lowercase(), "errno {n}");
        }
    }

    #[test]
    fn nix_errors_get_what_failed_then_why() {
        let e = Err::<(), _>(Errno::EBUSY)
            .context("umount2(2) \"/x\"")
            .unwrap_err();
        assert_eq!(e.code, EXIT_RUNTIME);
        assert_eq!(e.msg, "umount2(2) \"/x\": device or resource busy");
        let e = Err::<(), _>(Errno::EPERM)
            .context(format_args!("mount(2) {}", "proc"))
            .unwrap_err();
        assert_eq!(e.msg, format!("mount(2) proc: {}", describe(Errno::EPERM)));
        assert_eq!(Ok::<_, Errno>(7).context("unused").unwrap(), 7);
    }

    #[test]
    fn io_errors_get_the_same_shape() {
        // An OS error reads as nix's does: the same errno, the same words.
        let os = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = Err::<(), _>(os).context("opening \"/x\"").unwrap_err();
        assert_eq!(e.code, EXIT_RUNTIME);
        assert_eq!(e.msg, "opening \"/x\": no such file or directory");
        let os = std::io::Error::from_raw_os_error(libc::EPERM);
        let e = Err::<(), _>(os).context("write").unwrap_err();
        assert_eq!(e.msg, format!("write: {}", describe(Errno::EPERM)));
        // Not an OS error: its own message, after what failed.
        let other = std::io::Error::new(std::io::ErrorKind::InvalidData, "bad header");
        let e = Err::<(), _>(other)
            .context("reading the layer")
            .unwrap_err();
        assert_eq!(e.msg, "reading the layer: bad header");
        assert_eq!(Ok::<_, std::io::Error>("x").context("unused").unwrap(), "x");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::one_line("a\nb\x1b[2Jc\té"), "a\\nb\\u{1b}[2Jc\\té");
        assert_eq!(super::one_line("plain: words"), "plain: words");
    }
}
