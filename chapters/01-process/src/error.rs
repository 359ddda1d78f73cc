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
    use nix::errno::Errno::*;
    let why = errno.desc().to_lowercase();
    match errno {
        EPERM => format!("{why} (are you root? try sudo)"),
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
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::one_line("a\nb\x1b[2Jc\té"), "a\\nb\\u{1b}[2Jc\\té");
        assert_eq!(super::one_line("plain: words"), "plain: words");
    }
}
