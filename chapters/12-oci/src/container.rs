//! A container between the runtime's invocations: its directory under
//! `--root`, and the status read from it and from the kernel.
//!
//! ```text
//! ROOT/ID/            mode 0700, made by create (mkdir(2) is atomic: a second
//!                     create of the same id fails there)
//! ROOT/ID/state.json  what state prints, and what create made (the record id)
//! ROOT/ID/exec.fifo   while it exists, the container waits to start
//! ROOT/containers/    chapter 1's state records, by record id
//! ```
//!
//! Every command takes a flock(2) on `ROOT/ID` for its whole run, so two
//! commands on the same container (a `start` and a `delete`) never
//! interleave.

use ch01_process::state::Process;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What `ROOT/ID/state.json` holds.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Saved {
    pub id: String,
    /// The container's first process, told apart from a later one with
    /// the same pid by its start time: "stopped" is reliable even after
    /// the pid is reused.
    pub pid: i32,
    pub start: u64,
    pub bundle: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Chapter 1's id: names the state record and what it lists.
    pub record: String,
    /// The config's hooks, for `start` and `delete`.
    #[serde(default)]
    pub hooks: Value,
    /// The container's cgroup, for `pause`, `ps` and `kill --all`.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// One container's directory, locked.
pub struct Dir {
    pub path: PathBuf,
    /// Never read: holding it holds the flock(2).
    lock: Option<File>,
}

/// A container id, as runc takes them: letters, digits and `_+-.`, not
/// `.` or `..` (it names a directory).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
}

impl Dir {
    /// Makes `ROOT/ID` and locks it; fails if it exists.
    pub fn create(root: &Path, id: &str) -> Result<Dir, String> {
        check_id(id)?;
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(root)
            .map_err(|e| format!("mkdir {}: {e}", root.display()))?;
        let path = root.join(id);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!("container {id} already exists"),
                _ => format!("mkdir {}: {e}", path.display()),
            })?;
        Dir::lock(path)
    }

    /// Opens and locks `ROOT/ID`, waiting for another command on it.
    pub fn open(root: &Path, id: &str) -> Result<Dir, String> {
        check_id(id)?;
        let path = root.join(id);
        if !path.join("state.json").exists() && !path.is_dir() {
            return Err(format!("container {id} does not exist"));
        }
        Dir::lock(path)
    }

    fn lock(path: PathBuf) -> Result<Dir, String> {
        let file = File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("flock(2) {}: {e}", path.display()))?;
        Ok(Dir {
            path,
            lock: Some(file),
        })
    }

    /// Lets other commands at the container (`run`, while its command
    /// runs: `state`, `kill`, `exec` must not wait for it to end).
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    /// Takes the lock again.
    pub fn relock(&mut self) -> Result<(), String> {
        if self.lock.is_none() {
            self.lock = Dir::lock(self.path.clone())?.lock.take();
        }
        Ok(())
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join("exec.fifo")
    }

    pub fn save(&self, saved: &Saved) -> Result<(), String> {
        let tmp = self.path.join("state.json.tmp");
        let json = serde_json::to_vec_pretty(saved).expect("a state serialises");
        fs::write(&tmp, json)
            .and_then(|_| fs::rename(&tmp, self.path.join("state.json")))
            .map_err(|e| format!("writing {}/state.json: {e}", self.path.display()))
    }

    /// None: create has not got as far as writing it (it failed, or a
    /// `delete` removed the rest).
    pub fn load(&self) -> Result<Option<Saved>, String> {
        let path = self.path.join("state.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    pub fn status(&self, saved: &Saved) -> Status {
        let process = Process {
            pid: saved.pid,
            start: saved.start,
        };
        if !process.alive() {
            return Status::Stopped;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if frozen(&saved.cgroups) {
            return Status::Paused;
        }
        Status::Running
    }

    /// Removes the directory (the lock goes with the last reference).
    pub fn remove(self) -> Result<(), String> {
        fs::remove_dir_all(&self.path).map_err(|e| format!("removing {}: {e}", self.path.display()))
    }
}

fn check_id(id: &str) -> Result<(), String> {
    match valid_id(id) {
        true => Ok(()),
        false => Err(format!(
            "{id:?} is not a container id (letters, digits and _+-., at most 1024)"
        )),
    }
}

/// Whether the container's cgroup is frozen (v1 `freezer.state`, v2
/// `cgroup.freeze`).
pub fn frozen(cgroups: &[PathBuf]) -> bool {
    cgroups.iter().any(|c| {
        fs::read_to_string(c.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || fs::read_to_string(c.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    })
}

/// The state the spec defines, as `state` prints it and hooks read it.
pub fn oci_state(saved: &Saved, status: Status) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "id": saved.id,
        "status": status.name(),
        "pid": if status == Status::Stopped { 0 } else { saved.pid },
        "bundle": saved.bundle,
        "annotations": saved.annotations,
        "created": saved.created,
    })
}

/// The state a hook reads while create runs.
pub fn hook_state(config: &crate::Config, status: &str, pid: i32) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "id": config.oci_id,
        "status": status,
        "pid": pid,
        "bundle": config.bundle,
        "annotations": config.annotations,
    })
}

/// Now, as RFC 3339 in UTC with nanoseconds, as runc writes `created`.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days`.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_what_runc_takes() {
        for ok in ["a", "web-1", "f00.bar_baz+2", &"x".repeat(1024)] {
            assert!(super::valid_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(1025)] {
            assert!(!super::valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(19_723), (2024, 1, 1));
        assert_eq!(super::civil(20_424), (2025, 12, 2));
        assert_eq!(super::civil(-1), (1969, 12, 31));
    }
}
