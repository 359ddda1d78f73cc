//! The state record: what a container has made on the host, written down
//! as it is made, so that another process can remove it all if the runtime
//! dies (kill -9, a crash, an abort) before its own cleanup could.
//!
//! ```text
//! /run/stepbox/containers/<id>.lock          flock(2)ed by the live runtime, for its whole run
//! /run/stepbox/containers/<id>.json          the record: the resources, in the order they were made
//! /run/stepbox/containers/<id>.tmp-<random>  the record's next version, being written
//! ```
//!
//! A step calls [`Ctx::record`] *before* it makes a resource (a cgroup, a
//! mount, a directory, a veth): a runtime killed between the two leaves a
//! record of something that does not exist, which the sweep finds already
//! gone, rather than something that exists and is in no record. The record
//! is replaced whole each time (written to a temp file, then renamed over
//! it), so a reader sees the old version or the new one, never half of one.
//!
//! The lock is on a file of its own because the record is replaced: a lock
//! on `<id>.json` would stay on the old file, and the name would lead to a
//! new, unlocked one, which a sweep would take for a dead runtime's.
//!
//! [`sweep`] removes what dead runtimes left: every record whose lock it can
//! take without waiting (the kernel drops a lock when its holder dies,
//! however it dies) has its resources removed, last made first, and is
//! deleted. It runs before a runtime records its first resource, and by
//! itself with `--gc`.

use crate::error::{Context, Error, Result};
use crate::step::{Ctx, Step};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

// ANCHOR: resource
/// One thing on the host that a container's start makes and its cleanup
/// removes. Chapter 1 names the kinds; the chapter that makes one knows how
/// to remove it (see [`Undo`]).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resource {
    /// A cgroup directory (chapter 7): rmdir(2), after killing what is in it.
    Cgroup { path: PathBuf },
    /// A directory tree (chapter 8's container directory): removed with
    /// everything below it.
    Dir { path: PathBuf },
    /// A mount point (chapter 8's overlay on `merged`): umount2(2).
    Mount { path: PathBuf },
    /// A network interface on the host (chapter 3's end of the veth pair).
    Link { name: String },
}
// ANCHOR_END: resource

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Cgroup { path } => write!(f, "cgroup {}", path.display()),
            Resource::Dir { path } => write!(f, "dir {}", path.display()),
            Resource::Mount { path } => write!(f, "mount {}", path.display()),
            Resource::Link { name } => write!(f, "link {name}"),
        }
    }
}

// ANCHOR: undo
/// How to remove each kind of [`Resource`] from what the record says alone:
/// no step's memory, no flag. Chapter 1 fills in none; each step fills in
/// the kinds it makes ([`Step::undo`]), so a chapter's binary can remove
/// the kinds of its own chapter and of every earlier one.
///
/// Each function must be idempotent and count "already gone" as success:
/// the sweep may call it on a resource that the dead runtime had recorded
/// but not yet made, had already removed, or that an earlier sweep, killed
/// in turn, removed in part.
#[derive(Clone, Copy, Default)]
pub struct Undo {
    pub cgroup: Option<fn(&Ctx, &Path) -> Result<()>>,
    pub dir: Option<fn(&Ctx, &Path) -> Result<()>>,
    pub mount: Option<fn(&Ctx, &Path) -> Result<()>>,
    pub link: Option<fn(&Ctx, &str) -> Result<()>>,
}

impl Undo {
    /// What `steps` know how to remove.
    pub fn of(steps: &[Box<dyn Step>]) -> Undo {
        let mut undo = Undo::default();
        for step in steps {
            step.undo(&mut undo);
        }
        undo
    }

    /// Removes `r`; None if no step of this binary knows how.
    pub fn remove(&self, ctx: &Ctx, r: &Resource) -> Option<Result<()>> {
        match r {
            Resource::Cgroup { path } => self.cgroup.map(|f| f(ctx, path)),
            Resource::Dir { path } => self.dir.map(|f| f(ctx, path)),
            Resource::Mount { path } => self.mount.map(|f| f(ctx, path)),
            Resource::Link { name } => self.link.map(|f| f(ctx, name)),
        }
    }

    fn knows(&self, r: &Resource) -> bool {
        match r {
            Resource::Cgroup { .. } => self.cgroup.is_some(),
            Resource::Dir { .. } => self.dir.is_some(),
            Resource::Mount { .. } => self.mount.is_some(),
            Resource::Link { .. } => self.link.is_some(),
        }
    }
}
// ANCHOR_END: undo

/// What `<id>.json` holds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Contents {
    id: String,
    /// The binary that made it (`ch08-overlay`): its `--gc` knows every kind it lists.
    runtime: String,
    /// The runtime's cgroup, mount and network namespaces (their inodes):
    /// a path or an interface name means something only in those, so a
    /// sweep elsewhere leaves the record alone.
    namespaces: BTreeMap<String, u64>,
    resources: Vec<Resource>,
    /// Why removing them failed, once it has: each failure is reported once
    /// by itself; `--gc` reports it every time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<String>,
    /// A detached container's process (chapter 12's `create`, whose
    /// runtime exits while the container lives on): while it runs, its
    /// record's lock is free but its resources are in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<Process>,
}

/// A process, told apart from a later one given the same pid by its start
/// time (field 22 of `/proc/PID/stat`, in clock ticks since boot).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: i32,
    pub start: u64,
}

impl Process {
    /// `pid` as it is now; None if there is no such process.
    pub fn of(pid: i32) -> Option<Process> {
        let (_, start) = stat(pid)?;
        Some(Process { pid, start })
    }

    /// Whether this very process still runs: same pid, same start time,
    /// and not a zombie (it has exited, and its parent has not reaped it).
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start && state != 'Z' && state != 'X')
    }
}

/// The state letter and start time in `/proc/PID/stat`. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses itself:
/// the fields are counted after its last `)`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 3 (state) to 22 (starttime): 19 more after the state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The live runtime's record: its lock, held until the record is removed
/// or the process ends.
pub struct Record {
    dir: PathBuf,
    /// Never read: holding it open holds the flock(2).
    _lock: File,
    contents: Contents,
}

/// `<dir>/<id>.json`.
fn json_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

impl Ctx {
    // ANCHOR: record
    /// Adds `r` to the container's state record, before the step makes
    /// it. The first call creates the record, after sweeping what dead
    /// runtimes left. An error (the record cannot be written) must stop
    /// the start: what is made from then on could not be found again.
    pub fn record(&self, r: Resource) -> Result<()> {
        let mut slot = self.record.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(Record::create(self)?);
        }
        let record = slot.as_mut().expect("created above");
        self.say(format_args!("record {r}"));
        record.contents.resources.push(r);
        let written = record.write();
        if written.is_err() {
            record.contents.resources.pop();
        }
        written
    }
    // ANCHOR_END: record
}

impl Record {
    fn create(ctx: &Ctx) -> Result<Record> {
        let dir = records_dir(ctx);
        make_dir(&ctx.run_dir)?;
        make_dir(&dir)?;
        check_dir(&dir)?;
        // Before this runtime makes anything: what dead ones left goes
        // first, so that a name this one is about to use is free.
        for line in sweep(ctx, &ctx.undo, false)?.kept {
            ctx.tell(format_args!("warning: {line}"));
        }
        let lock_path = dir.join(format!("{}.lock", ctx.id));
        ctx.say(format_args!(
            "flock(2) {} LOCK_EX|LOCK_NB, record in {}.json",
            lock_path.display(),
            ctx.id
        ));
        let lock = new_lock(&dir, &ctx.id, &lock_path)?.ok_or_else(|| {
            Error::runtime(format!(
                "container id {} is in use: another runtime holds {lock_path:?}",
                ctx.id
            ))
        })?;
        Ok(Record {
            dir,
            _lock: lock,
            contents: Contents {
                id: ctx.id.clone(),
                runtime: ctx.prog.to_owned(),
                namespaces: namespaces()?,
                resources: Vec::new(),
                failed: None,
                process: None,
            },
        })
    }

    fn path(&self) -> PathBuf {
        json_path(&self.dir, &self.contents.id)
    }

    /// Replaces `<id>.json` with the current contents, in one rename(2).
    fn write(&self) -> Result<()> {
        write_json(&self.dir, &self.contents)
    }

    /// Deletes the record, then its lock file, last and still locked: as
    /// long as the lock file is there, no sweep reads the record.
    fn remove(self) -> io::Result<()> {
        remove_file(&self.path())?;
        remove_file(&self.dir.join(format!("{}.lock", self.contents.id)))
    }
}

/// Hands the record over to the container's `process`, which outlives
/// this runtime (chapter 12's `create`): the record stays, and sweeps
/// leave it alone while that process runs. Whoever deletes the container
/// later removes its resources with [`remove_detached`].
pub fn detach(ctx: &Ctx, process: Process) -> Result<()> {
    let mut slot = ctx.record.lock().unwrap_or_else(|e| e.into_inner());
    let Some(record) = slot.as_mut() else {
        return Ok(()); // nothing on the host to hand over
    };
    record.contents.process = Some(process);
    record.write()?;
    // Dropping the record drops its lock, not the file.
    *slot = None;
    Ok(())
}

/// After the cleanup: with nothing `left` on the host, the record goes; if
/// something is, the record stays, marked with why, for `--gc`, and a line
/// saying so is added to `left`.
pub fn finish(ctx: &Ctx, left: &mut Vec<String>) {
    let mut slot = ctx.record.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut record) = slot.take() else {
        return;
    };
    let path = record.path();
    if left.is_empty() {
        ctx.say(format_args!("rm {}", path.display()));
        if let Err(e) = record.remove() {
            left.push(format!(
                "left the state record {path:?}: removing it failed: {e}"
            ));
        }
        return;
    }
    record.contents.failed = Some(left.join("; "));
    let _ = record.write();
    left.push(format!(
        "kept the state record {path:?}, from which `{} --gc` removes what is left",
        ctx.prog
    ));
}

/// What a [`sweep`] did, one line per record.
#[derive(Debug, Default)]
pub struct Swept {
    /// Records whose resources are all gone now, and so are they.
    pub removed: Vec<String>,
    /// Records of dead runtimes that are kept, and why. Without
    /// `explicit`, only failures not reported before.
    pub kept: Vec<String>,
}

// ANCHOR: sweep
/// Removes what runtimes that died left: for every record in the run
/// directory whose lock can be taken without waiting, its resources, last
/// made first, then the record. A record is left alone (and, if
/// `explicit`, said so) when it lists a kind this binary cannot remove or
/// was made in other namespaces. Removal stops at the first resource that
/// will not go, since a resource made earlier may hold it (the container
/// directory holds the mount point): the record is kept and marked.
///
/// `explicit` is `--gc`: it shows the steps with `-v` and reports every
/// record. Otherwise it is the sweep at a start, which stays quiet unless
/// something could not be removed, and then says so once.
pub fn sweep(ctx: &Ctx, undo: &Undo, explicit: bool) -> Result<Swept> {
    sweep_ids(ctx, undo, explicit, None)
}

/// Removes what the detached container `id` made, once its process has
/// ended (chapter 12's `delete`): the sweep, for its record alone. Ok with
/// nothing removed if there is no record (it made nothing, or a sweep
/// took it already); an error if its process still runs or a runtime
/// holds its lock.
pub fn remove_detached(ctx: &Ctx, undo: &Undo, id: &str) -> Result<Swept> {
    let swept = sweep_ids(ctx, undo, true, Some(id))?;
    match swept.kept.first() {
        Some(why) => Err(Error::runtime(why.clone())),
        None => Ok(swept),
    }
}

fn sweep_ids(ctx: &Ctx, undo: &Undo, explicit: bool, only: Option<&str>) -> Result<Swept> {
    let dir = records_dir(ctx);
    let mut swept = Swept::default();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
        Err(e) => return Err(e).context(format!("reading {dir:?}")),
    };
    check_dir(&dir)?;
    // Every id with a file: a record, a lock file, a temp file.
    let mut ids = BTreeSet::new();
    let mut temps = Vec::new();
    for entry in entries {
        let name = entry.context(format!("reading {dir:?}"))?.file_name();
        let Some((id, rest)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if !valid_id(id) || !(rest == "json" || rest == "lock" || rest.starts_with("tmp-")) {
            continue;
        }
        if only.is_some_and(|only| only != id) {
            continue;
        }
        if rest.starts_with("tmp-") {
            temps.push((id.to_owned(), name.clone()));
        }
        ids.insert(id.to_owned());
    }
    // Without -v for the sweep at a start: its lines would interleave with
    // this container's, and vary with what other runs left.
    let quiet;
    let uctx = if explicit {
        ctx
    } else {
        quiet = ctx.quiet();
        &quiet
    };
    let here = namespaces()?;
    for id in ids {
        let Some(_lock) = try_lock(&dir.join(format!("{id}.lock")))? else {
            if only.is_some() {
                swept
                    .kept
                    .push(format!("container {id}: a runtime holds its lock"));
            }
            continue; // a live runtime's
        };
        let path = json_path(&dir, &id);
        let contents = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Contents>(&bytes) {
                Ok(c) if c.id == id => Some(c),
                // Neither can be left by a runtime (the record is replaced
                // whole, under the name of its own id): said by --gc only,
                // not at every start.
                Ok(c) => {
                    if explicit {
                        swept.kept.push(format!(
                            "kept {path:?}: it is the record of container {:?}, not {id}",
                            c.id
                        ));
                    }
                    continue;
                }
                Err(e) => {
                    if explicit {
                        swept
                            .kept
                            .push(format!("kept {path:?}: it is not a state record: {e}"));
                    }
                    continue;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                swept
                    .kept
                    .push(format!("kept {path:?}: reading it failed: {e}"));
                continue;
            }
        };
        if let Some(mut c) = contents {
            if let Some(p) = c.process.filter(Process::alive) {
                // Not a dead runtime's: `--gc` says nothing of it.
                if only.is_some() {
                    swept.kept.push(format!(
                        "container {id} ({}) runs detached, as pid {}: kept its record",
                        c.runtime, p.pid
                    ));
                }
                continue;
            }
            if let Some(why) = cannot_remove(&c, undo, &here, ctx.prog) {
                if explicit {
                    swept.kept.push(format!("kept {path:?}: {why}"));
                }
                continue;
            }
            let mut done = Vec::new();
            let mut failed = None;
            for r in c.resources.iter().rev() {
                match undo.remove(uctx, r).expect("cannot_remove() checked") {
                    Ok(()) => done.push(r.to_string()),
                    Err(e) => {
                        failed = Some(e.msg);
                        break;
                    }
                }
            }
            if let Some(why) = failed {
                let first = c.failed.is_none();
                c.failed = Some(why.clone());
                let _ = write_json(&dir, &c);
                if explicit || first {
                    swept.kept.push(format!(
                        "container {id} ({}, no longer running): could not remove what it \
                         left: {why}; kept its record {path:?}",
                        c.runtime
                    ));
                }
                continue;
            }
            swept.removed.push(format!(
                "container {id} ({}, no longer running): removed {}",
                c.runtime,
                match done.is_empty() {
                    true => "its record (it had made nothing)".to_owned(),
                    false => done.join(", "),
                }
            ));
        }
        let mut remove = vec![path];
        remove.extend(
            temps
                .iter()
                .filter(|(of, _)| *of == id)
                .map(|(_, name)| dir.join(name)),
        );
        // The lock file last: while it is there, locked, no other sweep
        // reads the record.
        remove.push(dir.join(format!("{id}.lock")));
        for file in remove {
            if let Err(e) = remove_file(&file) {
                swept
                    .kept
                    .push(format!("left {file:?}: removing it failed: {e}"));
            }
        }
    }
    Ok(swept)
}
// ANCHOR_END: sweep

/// Why this binary, here, must leave the record `c` alone; None if it can
/// remove everything it lists.
fn cannot_remove(
    c: &Contents,
    undo: &Undo,
    here: &BTreeMap<String, u64>,
    prog: &str,
) -> Option<String> {
    if c.namespaces != *here {
        return Some(format!(
            "it was made in other namespaces ({}; here {}): run `{} --gc` there",
            show_ns(&c.namespaces),
            show_ns(here),
            c.runtime
        ));
    }
    if let Some(r) = c.resources.iter().find(|r| !undo.knows(r)) {
        return Some(format!(
            "it lists a {}, which {prog} cannot remove: `{} --gc` can",
            r.to_string().split(' ').next().unwrap_or("resource"),
            c.runtime
        ));
    }
    if let Some(r) = c.resources.iter().find(|r| !is_absolute(r)) {
        return Some(format!("it lists {r}, which is not an absolute path"));
    }
    None
}

fn is_absolute(r: &Resource) -> bool {
    match r {
        Resource::Cgroup { path } | Resource::Dir { path } | Resource::Mount { path } => {
            path.is_absolute()
        }
        Resource::Link { name } => !name.is_empty(),
    }
}

fn show_ns(ns: &BTreeMap<String, u64>) -> String {
    let shown: Vec<String> = ns.iter().map(|(n, ino)| format!("{n}:[{ino}]")).collect();
    shown.join(" ")
}

/// `--gc`: the sweep by itself, every line shown. The exit status is 0 if
/// no dead runtime's record is left, 125 if one is.
pub fn gc(ctx: &Ctx, steps: &[Box<dyn Step>]) -> Result<i32> {
    let mut swept = sweep(ctx, &Undo::of(steps), true)?;
    for step in steps {
        swept.kept.extend(step.gc(ctx)?);
    }
    for line in &swept.removed {
        ctx.tell(format_args!("{line}"));
    }
    for line in &swept.kept {
        ctx.tell(format_args!("{}", crate::error::one_line(line)));
    }
    Ok(match swept.kept.is_empty() {
        true => 0,
        false => crate::error::EXIT_RUNTIME,
    })
}

/// `ctx.run_dir/containers`.
fn records_dir(ctx: &Ctx) -> PathBuf {
    ctx.run_dir.join("containers")
}

/// Container ids as `Ctx::new` makes them: 1 to 12 hex digits. Anything
/// else in the directory is not ours.
pub fn valid_id(id: &str) -> bool {
    (1..=12).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// mkdir(2) mode 0700, if missing.
fn make_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(e).context(format!("mkdir {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The records say what to remove and what to kill: a directory that
/// someone else could write to would let them choose. It must be ours,
/// and writable by nobody else.
fn check_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).context(format!("stat(2) {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::runtime(format!(
            "refusing the state records in {dir:?}: it must be a directory owned by uid {me} \
             that no one else can write to (it is owned by uid {}, mode {:o})",
            meta.uid(),
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The lock file of a new record, locked before anyone can see it: made
/// and locked under a temp name, then linked to `<id>.lock`. Opened under
/// its own name, another runtime's sweep could take the lock first (it
/// tries every lock file it finds) and this start would take itself for a
/// second runtime with its id. If `<id>.lock` exists already, it is a live
/// runtime's (None) or a dead one's, which [`try_lock`] takes.
fn new_lock(dir: &Path, id: &str, path: &Path) -> Result<Option<File>> {
    // Not `<id>.tmp-…`, whose lock file a sweep would make to take it.
    let tmp = dir.join(format!("{id}.newlock-{}", random_hex()?));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .context(format!("creating {}", tmp.display()))?;
    let locked = file
        .try_lock()
        .map_err(|e| Error::runtime(format!("flock(2) {}: {e:?}", tmp.display())));
    let linked = locked.and_then(|_| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).context(format!("link(2) {} to {}", tmp.display(), path.display())),
    });
    let _ = remove_file(&tmp);
    match linked? {
        true => Ok(Some(file)),
        false => try_lock(path),
    }
}

/// Opens `path` (creating it) and takes its flock(2) without waiting; None
/// if another process holds it. The descriptor is close-on-exec (as every
/// file std opens): the container's command never gets it.
fn try_lock(path: &Path) -> Result<Option<File>> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .context(format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).context(format!("flock(2) {}", path.display()))
            }
        }
        // A sweep that held it may have removed the file between our
        // open(2) and our flock(2): then this lock is on a file nobody can
        // find, and only the file the name leads to counts.
        let held = file
            .metadata()
            .context(format!("fstat(2) {}", path.display()))?;
        match fs::symlink_metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => return Ok(Some(file)),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).context(format!("stat(2) {}", path.display())),
        }
    }
}

/// Replaces `<dir>/<id>.json` with `c`: written to a temp file of a unique
/// name, then swapped with the old record in one renameat2(2)
/// RENAME_EXCHANGE (or renamed into place, the first time), and the old
/// contents, now under the temp name, unlinked. A reader finds the old
/// record or the new one, never half of one. Not a plain rename(2) over the
/// old record: ext4 (where /run is not a tmpfs) flushes a file's data to disk
/// when it replaces another by rename(2) (its `auto_da_alloc`), which cost
/// about a millisecond per record. No fsync(2): a power cut takes the
/// cgroups, mounts and veths the records describe with it.
fn write_json(dir: &Path, c: &Contents) -> Result<()> {
    let path = json_path(dir, &c.id);
    let what = || format!("writing the state record {}", path.display());
    let json =
        serde_json::to_vec_pretty(c).map_err(|e| Error::runtime(format!("{}: {e}", what())))?;
    let tmp = dir.join(format!("{}.tmp-{}", c.id, random_hex()?));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&json))
        .and_then(|()| match exchange(&tmp, &path) {
            Ok(()) => remove_file(&tmp),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => fs::rename(&tmp, &path),
            Err(e) => Err(e),
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).context(what());
    }
    Ok(())
}

/// renameat2(2) RENAME_EXCHANGE: `a` and `b` swap names, atomically; ENOENT
/// if either does not exist.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (a, b) = (cstr(a)?, cstr(b)?);
    // SAFETY: both names are NUL-terminated and live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// unlink(2); a file already gone is fine.
fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The inodes of this process's cgroup, mount and network namespaces.
fn namespaces() -> Result<BTreeMap<String, u64>> {
    let mut ns = BTreeMap::new();
    for name in ["cgroup", "mnt", "net"] {
        let path = format!("/proc/self/ns/{name}");
        match fs::metadata(&path) {
            Ok(meta) => {
                ns.insert(name.to_owned(), meta.ino());
            }
            // A kernel without cgroup namespaces has no such file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context(format!("stat(2) {path}")),
        }
    }
    Ok(ns)
}

/// 16 random hex digits, from getrandom(2).
fn random_hex() -> Result<String> {
    let mut b = [0u8; 8];
    // SAFETY: the kernel writes at most b.len() bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(io::Error::last_os_error()).context("getrandom(2)");
    }
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 120 0 0 0 0 0 0 0 20 0 1 0 987654 4001792 200";
        assert_eq!(super::parse_stat(line), Some(('S', 987654)));
        assert_eq!(super::parse_stat("1 (init"), None);
        assert_eq!(super::parse_stat("1 (x) Z 0 0"), None);
        let me = super::Process::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
        let later = super::Process {
            start: me.start + 1,
            ..me
        };
        assert!(
            !later.alive(),
            "same pid, another start time: another process"
        );
    }

    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn resources_are_tagged_by_kind() {
        let r = Resource::Cgroup {
            path: "/sys/fs/cgroup/stepbox/stepbox-1".into(),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"cgroup","path":"/sys/fs/cgroup/stepbox/stepbox-1"}"#
        );
        assert_eq!(serde_json::from_str::<Resource>(&json).unwrap(), r);
        let link: Resource = serde_json::from_str(r#"{"kind":"link","name":"sb1"}"#).unwrap();
        assert_eq!(link.to_string(), "link sb1");
        assert!(serde_json::from_str::<Resource>(r#"{"kind":"tank","path":"/"}"#).is_err());
        // A path that is not UTF-8 cannot be written as JSON: the start stops.
        let bad = Resource::Dir {
            path: std::ffi::OsStr::from_bytes(b"/x\xff").into(),
        };
        assert!(serde_json::to_string(&bad).is_err());
    }

    #[test]
    fn ids_and_names() {
        assert!(valid_id("1a2b3c4d"));
        assert!(!valid_id(""));
        assert!(!valid_id("../x"));
        assert!(!valid_id("1234567890abc"));
    }

    /// Stands in for a chapter's undo: rmdir(2), which fails on a directory
    /// that is not empty, so that the order of removal shows.
    fn rmdir(_: &Ctx, path: &Path) -> Result<()> {
        match fs::remove_dir(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).context(format!("rmdir {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    fn ctx(run: &Path, id: &str) -> Ctx {
        let mut ctx = Ctx::new("ch01-process", false);
        ctx.id = id.into();
        ctx.run_dir = run.into();
        ctx.undo.dir = Some(rmdir);
        ctx
    }

    /// A record of `id` left by a dead runtime: written by a ctx whose
    /// record is then forgotten, as a killed process forgets it.
    fn dead(run: &Path, id: &str, dirs: &[&Path]) {
        let ctx = ctx(run, id);
        for d in dirs {
            ctx.record(Resource::Dir {
                path: d.to_path_buf(),
            })
            .unwrap();
            fs::create_dir(d).unwrap();
        }
        // Its lock is released as a dead process's is; the files stay.
        drop(ctx.record.lock().unwrap().take());
    }

    #[test]
    fn a_dead_runtimes_record_is_undone_last_made_first() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        let (a, b) = (t.path().join("a"), t.path().join("a/b"));
        dead(&run, "d1", &[&a, &b]);
        assert!(b.is_dir());
        let sweeper = ctx(&run, "5");
        let swept = sweep(&sweeper, &sweeper.undo, true).unwrap();
        assert!(swept.kept.is_empty(), "{:?}", swept.kept);
        assert_eq!(swept.removed.len(), 1);
        assert!(swept.removed[0].contains(&format!("dir {}, dir {}", b.display(), a.display())));
        assert!(!a.exists());
        assert_eq!(fs::read_dir(run.join("containers")).unwrap().count(), 0);
    }

    #[test]
    fn a_live_runtimes_record_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        let live = ctx(&run, "11");
        let a = t.path().join("a");
        live.record(Resource::Dir { path: a.clone() }).unwrap();
        fs::create_dir(&a).unwrap();
        let sweeper = ctx(&run, "5");
        let swept = sweep(&sweeper, &sweeper.undo, true).unwrap();
        assert!(swept.removed.is_empty() && swept.kept.is_empty());
        assert!(a.is_dir());
        // Its normal end removes the record and its lock file.
        let mut left = Vec::new();
        finish(&live, &mut left);
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(fs::read_dir(run.join("containers")).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_removal_stops_keeps_the_record_and_is_said_once() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        dead(&run, "d2", &[&a, &b]);
        fs::write(b.join("busy"), "").unwrap(); // b will not go
        let sweeper = ctx(&run, "5");
        let first = sweep(&sweeper, &sweeper.undo, false).unwrap();
        assert_eq!(first.kept.len(), 1, "{:?}", first.kept);
        assert!(first.kept[0].contains("rmdir"), "{}", first.kept[0]);
        // a was made first: it may hold b, so it is not touched.
        assert!(a.is_dir() && b.is_dir());
        let record = fs::read_to_string(run.join("containers/d2.json")).unwrap();
        assert!(record.contains("\"failed\""), "{record}");
        // The next start's sweep does not say it again; --gc does.
        assert!(sweep(&sweeper, &sweeper.undo, false)
            .unwrap()
            .kept
            .is_empty());
        assert_eq!(sweep(&sweeper, &sweeper.undo, true).unwrap().kept.len(), 1);
        fs::remove_file(b.join("busy")).unwrap();
        let swept = sweep(&sweeper, &sweeper.undo, false).unwrap();
        assert!(swept.kept.is_empty() && !a.exists() && !b.exists());
        assert_eq!(fs::read_dir(run.join("containers")).unwrap().count(), 0);
    }

    #[test]
    fn what_this_binary_cannot_remove_is_left_for_one_that_can() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        let a = t.path().join("a");
        dead(&run, "d3", &[&a]);
        let mut sweeper = ctx(&run, "5");
        sweeper.undo.dir = None;
        assert!(sweep(&sweeper, &sweeper.undo, false)
            .unwrap()
            .kept
            .is_empty());
        let kept = sweep(&sweeper, &sweeper.undo, true).unwrap().kept;
        assert!(
            kept[0].contains("lists a dir, which ch01-process cannot remove"),
            "{kept:?}"
        );
        assert!(a.is_dir());
        // Made in other namespaces: the paths may mean something else here.
        let path = run.join("containers/d3.json");
        let mut c: Contents = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        c.namespaces.insert("net".into(), 1);
        write_json(&run.join("containers"), &c).unwrap();
        let sweeper = ctx(&run, "5");
        let kept = sweep(&sweeper, &sweeper.undo, true).unwrap().kept;
        assert!(kept[0].contains("other namespaces"), "{kept:?}");
        assert!(a.is_dir() && path.exists());
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        fs::create_dir_all(run.join("containers")).unwrap();
        fs::set_permissions(run.join("containers"), fs::Permissions::from_mode(0o777)).unwrap();
        let ctx = ctx(&run, "5");
        let e = sweep(&ctx, &ctx.undo, true).unwrap_err();
        assert!(e.msg.contains("no one else can write"), "{}", e.msg);
        let e = ctx.record(Resource::Link { name: "x".into() }).unwrap_err();
        assert!(e.msg.contains("no one else can write"), "{}", e.msg);
    }

    #[test]
    fn an_id_in_use_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let run = t.path().join("run");
        let first = ctx(&run, "7");
        first.record(Resource::Link { name: "x".into() }).unwrap();
        let second = ctx(&run, "7");
        let e = second
            .record(Resource::Link { name: "y".into() })
            .unwrap_err();
        assert!(e.msg.contains("container id 7 is in use"), "{}", e.msg);
    }
}
