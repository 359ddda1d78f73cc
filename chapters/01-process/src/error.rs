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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
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
