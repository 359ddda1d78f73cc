//! `events`: the container's resource usage every interval, and an `oom`
//! event each time the kernel reports that the container's memory cgroup
//! ran out, as runc prints them (one JSON object a line).
//!
//! The two cgroup versions tell a listener about an OOM in two ways:
//!
//! - v1: an eventfd(2), registered by writing "EVENTFD CONTROLFD" into
//!   the cgroup's `cgroup.event_control`, where CONTROLFD is an open
//!   `memory.oom_control`. The kernel adds one to the eventfd's counter at
//!   each OOM, before its OOM killer picks a process, and once more when
//!   the cgroup is removed.
//! - v2: the `oom` count in `memory.events`. Like every cgroup v2 file
//!   the kernel "notifies", a change of it makes poll(2) on an open
//!   descriptor report `POLLPRI` (at most every 10 ms, so a last change
//!   may come after the process has gone: it is read once more then).

use crate::container::Saved;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `events --stats`: runc's shape, from the cgroup files of either version.
pub fn stats(saved: &Saved) -> String {
    let read = |name: &str| -> Option<u64> {
        saved.cgroups.iter().find_map(|c| {
            std::fs::read_to_string(c.join(name))
                .ok()
                .and_then(|s| s.trim().parse().ok())
        })
    };
    let v2_cpu = saved.cgroups.iter().find_map(|c| {
        let stat = std::fs::read_to_string(c.join("cpu.stat")).ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map(|us| us * 1000)
    });
    let data = json!({
        "memory": {"usage": {"usage": read("memory.current").or(read("memory.usage_in_bytes"))}},
        "pids": {"current": read("pids.current")},
        "cpu": {"usage": {"total": v2_cpu.or(read("cpuacct.usage"))}},
    });
    event("stats", &saved.id, Some(data))
}

/// One line of `events`, its fields in runc's order (serde_json's maps
/// sort their keys).
fn event(kind: &str, id: &str, data: Option<Value>) -> String {
    let data = data.map_or(String::new(), |d| format!(",\"data\":{d}"));
    format!("{{\"type\":{},\"id\":{}{data}}}", json!(kind), json!(id))
}

/// `--interval`: Go's duration syntax as runc takes it (`5s`, `500ms`,
/// `1m30s`), or a bare number of seconds.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("--interval {text:?}: {why}");
    if let Ok(secs) = text.parse::<u64>() {
        return match secs {
            0 => Err(bad("it must be more than 0")),
            s => Ok(Duration::from_secs(s)),
        };
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| bad("a number needs a unit (ns, us, ms, s, m, h)"))?;
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| bad("expected a number such as 5s or 500ms"))?;
        let tail = &rest[digits..];
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let scale = match &tail[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(bad(&format!("unknown unit {u:?} (ns, us, ms, s, m, h)"))),
        };
        total += number * scale;
        rest = &tail[unit_len..];
    }
    // Under a millisecond, poll(2)'s timeout would round it to nothing.
    if !(0.001..=1e9).contains(&total) {
        return Err(bad("it must be from 1ms to 1e9 s"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Where the kernel tells of the container's OOMs.
enum Oom {
    V1 {
        eventfd: OwnedFd,
        /// Gone when the cgroup is: the eventfd's last count is not an OOM.
        control: PathBuf,
    },
    V2 {
        events: File,
        seen: u64,
    },
}

impl Oom {
    /// The memory cgroup among the container's, on either version; None
    /// if it has none (no memory controller: no OOM to tell).
    fn watch(cgroups: &[PathBuf]) -> Result<Option<Oom>, String> {
        for dir in cgroups {
            let control = dir.join("memory.oom_control");
            if control.exists() {
                return Self::v1(dir, control).map(Some);
            }
            let path = dir.join("memory.events");
            if path.exists() {
                let mut events =
                    File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
                let seen = oom_count(&mut events)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                return Ok(Some(Oom::V2 { events, seen }));
            }
        }
        Ok(None)
    }

    // ANCHOR: v1
    fn v1(dir: &Path, control: PathBuf) -> Result<Oom, String> {
        // SAFETY: eventfd(2) takes a count and flags and returns a new fd.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(format!("eventfd(2): {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the kernel just made this descriptor, for us alone.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let file =
            File::open(&control).map_err(|e| format!("opening {}: {e}", control.display()))?;
        let line = format!(
            "{} {}",
            std::os::fd::AsRawFd::as_raw_fd(&eventfd),
            std::os::fd::AsRawFd::as_raw_fd(&file)
        );
        // The kernel reads the two numbers as descriptors of the writer's;
        // once registered, the control file may be closed.
        let register = dir.join("cgroup.event_control");
        std::fs::write(&register, &line)
            .map_err(|e| format!("writing {line:?} to {}: {e}", register.display()))?;
        Ok(Oom::V1 { eventfd, control })
    }
    // ANCHOR_END: v1

    fn poll_fd(&self) -> PollFd<'_> {
        match self {
            Oom::V1 { eventfd, .. } => PollFd::new(eventfd.as_fd(), PollFlags::POLLIN),
            Oom::V2 { events, .. } => PollFd::new(events.as_fd(), PollFlags::POLLPRI),
        }
    }

    /// How many OOMs since the last call (reading re-arms poll(2)); None
    /// once the cgroup is gone.
    fn take(&mut self) -> Option<u64> {
        match self {
            Oom::V1 { eventfd, control } => {
                let mut count = [0u8; 8];
                let n = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(eventfd), &mut count);
                let count = match n {
                    Ok(8) => u64::from_ne_bytes(count),
                    _ => 0,
                };
                match control.exists() {
                    true => Some(count),
                    // Its removal counted one: the rest were OOMs.
                    false if count > 1 => Some(count - 1),
                    false => None,
                }
            }
            Oom::V2 { events, seen } => {
                let now = oom_count(events).ok()?;
                let new = now.saturating_sub(*seen);
                *seen = now;
                Some(new)
            }
        }
    }
}

/// The `oom` line of `memory.events`, read again through the same open
/// file: a kernfs file's poll(2) is re-armed by reading it.
fn oom_count(events: &mut File) -> std::io::Result<u64> {
    let mut text = String::new();
    events.seek(SeekFrom::Start(0))?;
    events.read_to_string(&mut text)?;
    Ok(keyed(&text, "oom").unwrap_or(0))
}

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// `events` without `--stats`: the stats at once (the listener is then
/// registered: a caller may start the container), again every `interval`,
/// and an `oom` line for each OOM, until the container's process has
/// ended. `process` is a pidfd of it. A reader that goes away ends it.
pub fn follow(
    saved: &Saved,
    process: &OwnedFd,
    interval: Duration,
    out: &mut impl Write,
) -> Result<(), String> {
    let mut oom = Oom::watch(&saved.cgroups)?;
    let oom_line = event("oom", &saved.id, None);
    let mut say = |line: &str| -> Result<bool, String> {
        match writeln!(out, "{line}").and_then(|_| out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(format!("writing the events: {e}")),
        }
    };
    if !say(&stats(saved))? {
        return Ok(());
    }
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let (ended, told) = {
            let mut fds = vec![PollFd::new(process.as_fd(), PollFlags::POLLIN)];
            if let Some(o) = &oom {
                fds.push(o.poll_fd());
            }
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("poll(2) on the container's events: {e}")),
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        // The process has gone: the OOM that killed it was counted before.
        if told || ended {
            match oom.as_mut().map(Oom::take) {
                Some(Some(n)) => {
                    for _ in 0..n {
                        if !say(&oom_line)? {
                            return Ok(());
                        }
                    }
                }
                Some(None) => oom = None,
                None => {}
            }
        }
        if ended {
            return Ok(());
        }
        if Instant::now() >= next {
            if !say(&stats(saved))? {
                return Ok(());
            }
            next += interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_as_runc_takes_them() {
        let ok = |s: &str| parse_interval(s).unwrap();
        assert_eq!(ok("5"), Duration::from_secs(5));
        assert_eq!(ok("5s"), Duration::from_secs(5));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("2h"), Duration::from_secs(7200));
        for bad in ["", "0", "0s", "5x", "s", "1.2.3s", "10us", "-1s", "5 s"] {
            assert!(parse_interval(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_interval("5x").unwrap_err(),
            "--interval \"5x\": unknown unit \"x\" (ns, us, ms, s, m, h)"
        );
    }

    #[test]
    fn event_lines_in_runcs_order() {
        assert_eq!(event("oom", "a\"b", None), r#"{"type":"oom","id":"a\"b"}"#);
        assert_eq!(
            event("stats", "x", Some(json!({"pids": {"current": 1}}))),
            r#"{"type":"stats","id":"x","data":{"pids":{"current":1}}}"#
        );
    }

    #[test]
    fn the_oom_line_of_memory_events() {
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(v2, "oom"), Some(2));
        assert_eq!(keyed(v2, "oom_kill"), Some(1));
        assert_eq!(keyed(v2, "om"), None);
        assert_eq!(keyed("oom x\n", "oom"), None);
    }
}
