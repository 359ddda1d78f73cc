//! The output format shared by all sections.

use std::fmt::Display;
use std::io;

/// Lists longer than this are summarised by one line instead of printed, so
/// that a probe run on a busy host stays short (and the book shows the
/// summary rather than hundreds of host processes).
pub const MAX_LISTED: usize = 20;

/// Collects the report in memory; `main` writes it out in one go.
///
/// Building a `String` instead of using `println!` means a closed stdout
/// can never turn into a panic halfway through a section.
#[derive(Debug, Default)]
pub struct Report {
    text: String,
}

impl Report {
    pub fn new() -> Self {
        Self::default()
    }

    /// `# name`
    pub fn header(&mut self, name: &str) {
        self.line(format_args!("# {name}"));
    }

    /// `key: value`
    pub fn kv(&mut self, key: &str, value: impl Display) {
        self.line(format_args!("{key}: {value}"));
    }

    /// `key: unavailable (reason)`
    pub fn unavailable(&mut self, key: &str, reason: impl Display) {
        self.line(format_args!("{key}: unavailable ({reason})"));
    }

    /// A bare line, for the few that do not fit `key: value`.
    pub fn line(&mut self, text: impl Display) {
        use std::fmt::Write;
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, "{text}");
    }

    /// Indented item lines (`  item`), or a single
    /// `  (not listed: more than 20)` when there are too many of them.
    pub fn items<I, T>(&mut self, items: I)
    where
        I: IntoIterator<Item = T>,
        T: Display,
    {
        let items: Vec<T> = items.into_iter().collect();
        if items.len() > MAX_LISTED {
            self.line(format_args!("  (not listed: more than {MAX_LISTED})"));
            return;
        }
        for item in items {
            self.line(format_args!("  {item}"));
        }
    }

    /// Like [`Report::items`], but only when the list is this container's own:
    /// the host's processes, interfaces or mounts differ from one machine and
    /// one moment to the next, so they are summarised by one line.
    pub fn own_items<I, T>(&mut self, own: bool, items: I)
    where
        I: IntoIterator<Item = T>,
        T: Display,
    {
        if own {
            self.items(items);
        } else {
            self.line("  (not listed: the host's)");
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

/// The human part of an I/O error, without Rust's ` (os error N)` suffix:
/// `No such file or directory` reads better in a report than
/// `No such file or directory (os error 2)`.
pub fn reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// `path: reason`, for errors that come from reading a file.
pub fn path_reason(path: &str, err: &io::Error) -> String {
    format!("{path}: {}", reason(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_capped() {
        let mut r = Report::new();
        r.items(1..=MAX_LISTED);
        assert_eq!(r.as_str().lines().count(), MAX_LISTED);
        let mut r = Report::new();
        r.items(0..=MAX_LISTED);
        assert_eq!(r.as_str(), "  (not listed: more than 20)\n");
    }

    #[test]
    fn reason_drops_os_error_suffix() {
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(reason(&err), "No such file or directory");
        assert_eq!(
            path_reason("/proc/x", &err),
            "/proc/x: No such file or directory"
        );
    }
}
