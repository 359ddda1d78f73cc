//! One module per report section, in the order the book introduces them.

use crate::Report;

pub mod caps;
pub mod cgroup;
pub mod fs;
pub mod identity;
pub mod ipc;
pub mod net;
pub mod ns;
pub mod procs;
pub mod userns;

/// A section as named on the command line.
pub struct Section {
    pub name: &'static str,
    pub run: fn(&mut Report),
}

/// Every section, in the order `probe` prints them when given none.
pub const ALL: &[Section] = &[
    Section {
        name: "identity",
        run: identity::run,
    },
    Section {
        name: "ns",
        run: ns::run,
    },
    Section {
        name: "proc",
        run: procs::run,
    },
    Section {
        name: "net",
        run: net::run,
    },
    Section {
        name: "ipc",
        run: ipc::run,
    },
    Section {
        name: "fs",
        run: fs::run,
    },
    Section {
        name: "cgroup",
        run: cgroup::run,
    },
    Section {
        name: "caps",
        run: caps::run,
    },
    Section {
        name: "userns",
        run: userns::run,
    },
];

/// The sections printed when none are asked for. `cgroup` is asked for by
/// name: before chapter 7 it has nothing of the container's own to show.
/// So is `caps`: before chapter 9 the container's process holds what the
/// runtime holds, and leaving it out keeps the earlier chapters' reports
/// as they were.
pub const DEFAULT: &[&str] = &["identity", "ns", "proc", "net", "ipc", "fs"];

pub fn find(name: &str) -> Option<&'static Section> {
    ALL.iter().find(|s| s.name == name)
}
