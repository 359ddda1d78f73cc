//! Processes: which /proc this is and which processes it shows.
//!
//! /proc is not "the processes of this machine": it is a view of one pid
//! namespace, fixed when that procfs instance was mounted. A process that
//! enters a new pid namespace but keeps the old /proc sees the parent
//! namespace's processes and pids, and `/proc/self` (which the kernel
//! resolves to the reader's pid *in the /proc's namespace*) then disagrees
//! with getpid() (which answers in the process's own namespace). Mounting a
//! fresh procfs from inside the namespace makes the two agree.

use std::fs;
use std::io;

use crate::report::{path_reason, reason};
use crate::{sys, Report};

pub fn run(r: &mut Report) {
    r.header("processes");
    self_line(r);
    match visible() {
        Ok(procs) => {
            r.kv("visible", procs.len());
            r.own_items(
                own_proc(),
                procs.iter().map(|(pid, comm)| format!("{pid} {comm}")),
            );
        }
        Err(e) => r.unavailable("visible", path_reason("/proc", &e)),
    }
}

fn self_line(r: &mut Report) {
    let me = sys::getpid();
    match fs::read_link("/proc/self") {
        Ok(target) => match target.to_string_lossy().parse::<i32>() {
            Ok(pid) if pid == me => r.kv(
                "/proc/self",
                format_args!("{pid} (this /proc is my pid namespace's)"),
            ),
            Ok(pid) => r.kv(
                "/proc/self",
                format_args!(
                    "{pid}, but I am pid {me}: this /proc belongs to another pid namespace"
                ),
            ),
            Err(_) => r.unavailable("/proc/self", format_args!("unexpected link {target:?}")),
        },
        // The kernel answers ENOENT both when nothing is mounted on /proc and
        // when this process has no pid in the /proc's namespace (a /proc of a
        // child or sibling namespace); telling them apart helps the reader.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let why = match visible() {
                Ok(procs) if !procs.is_empty() => {
                    "this /proc belongs to a pid namespace in which I have no pid"
                }
                _ => "nothing is mounted on /proc",
            };
            r.unavailable("/proc/self", why)
        }
        Err(e) => r.unavailable("/proc/self", reason(&e)),
    }
}

/// A /proc of this process's own pid namespace (and not the host's).
fn own_proc() -> bool {
    let me = sys::getpid();
    let self_pid = fs::read_link("/proc/self")
        .ok()
        .and_then(|t| t.to_string_lossy().parse::<i32>().ok());
    self_pid == Some(me) && super::ns::is_own("pid")
}

/// Numeric entries of /proc, sorted by pid, each with its command name.
fn visible() -> io::Result<Vec<(u32, String)>> {
    let mut procs = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between readdir and this read; it is still
        // counted, with `?` for its name, rather than failing the section.
        let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end_matches('\n').to_string())
            .unwrap_or_else(|_| "?".to_string());
        procs.push((pid, comm));
    }
    procs.sort();
    Ok(procs)
}
