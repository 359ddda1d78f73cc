//! Chapter 7: cgroups.
//!
//! Namespaces decide what a container can *see*; control groups decide how
//! much it can *use*. Every process sits in one cgroup (per hierarchy, in
//! cgroup v1); a cgroup's files set its limits (`memory.max`, `pids.max`,
//! `cpu.max`) and count its use. The container gets a cgroup of its own,
//! `stepbox-<id>`, created under the runtime's own cgroup:
//!
//! ```text
//!  prepare()     mkdir the cgroup, write its limits        (before clone: nothing runs yet)
//!  after_clone() write the child's pid to cgroup.procs     (the child still waits for "go")
//!  in_child()    unshare(CLONE_NEWCGROUP), mount the cgroup filesystem read-only
//!  cleanup()     report an OOM kill, rmdir the cgroup       (kill what lingers, retry)
//! ```
//!
//! Two versions of the interface exist and both are in use: v2 (one unified
//! tree at /sys/fs/cgroup, see `v2.rs`) and v1 (one tree per controller at
//! /sys/fs/cgroup/<controller>, see `v1.rs`). The runtime detects which one the
//! host uses; both implement [`Cgroup`].

pub mod size;
mod v1;
mod v2;

use ch01_process::runtime::Outcome;
use ch01_process::{Chapter, Context, Ctx, Error, Result, Step};
use clap::Args;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch06_uts::Opts,
    /// Memory limit: bytes, or with a unit k, m, g (e.g. 64m). Swap is disabled
    /// in the container: the limit covers memory and swap together (there is
    /// no --memory-swap). A container that exceeds it is killed (exit 137).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, allow_negative_numbers = true)]
    pub memory: Option<u64>,
    /// Maximum number of processes (and threads) in the container; fork(2)
    /// fails with EAGAIN beyond it.
    #[arg(long, value_name = "N", value_parser = parse_pids, allow_negative_numbers = true)]
    pub pids_limit: Option<u64>,
    /// How many CPUs' worth of time the container may use, e.g. 0.5: it gets
    /// 50 ms of CPU time per 100 ms period, then waits (is throttled).
    #[arg(long, value_name = "DECIMAL", value_parser = parse_cpus, allow_negative_numbers = true)]
    pub cpus: Option<u64>,
    /// Relative CPU weight against other cgroups (default 1024), used only
    /// when CPUs are busy (v2: converted to cpu.weight).
    #[arg(long, value_name = "N", value_parser = parse_shares, allow_negative_numbers = true)]
    pub cpu_shares: Option<u64>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch07-cgroups";
    const ABOUT: &'static str = "Run COMMAND in new pid, network, IPC, mount, UTS and cgroup \
                                 namespaces, with memory, process and CPU limits.";
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(Cgroups {
            limits: Limits {
                memory: self.memory,
                pids: self.pids_limit,
                cpu_quota: self.cpus,
                cpu_shares: self.cpu_shares,
            },
            cgroup: None,
        }));
        steps
    }
}
// ANCHOR_END: opts

/// The limits to write, all optional (None: unlimited, the kernel's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    /// Microseconds of CPU time per [`CPU_PERIOD`].
    pub cpu_quota: Option<u64>,
    pub cpu_shares: Option<u64>,
}

/// The CFS bandwidth period, in microseconds (100 ms, the kernel's default):
/// `--cpus 0.5` is a quota of 50000 µs per period.
pub const CPU_PERIOD: u64 = 100_000;

// ANCHOR: trait
/// One container's cgroup, whichever cgroup version the host uses.
pub trait Cgroup {
    /// Parent, before clone(2): make the cgroup's directory (directories, in v1).
    fn create(&mut self, ctx: &Ctx) -> Result<()>;
    /// Parent, before clone(2): write the limits into the cgroup's files.
    fn set_limits(&self, ctx: &Ctx, limits: &Limits) -> Result<()>;
    /// Parent, after clone(2): move the (still waiting) child into the cgroup.
    fn add(&self, ctx: &Ctx, pid: Pid) -> Result<()>;
    /// Child, in its new cgroup namespace: mount the cgroup filesystem on
    /// /sys/fs/cgroup, read-only.
    fn mount_inside(&self, ctx: &Ctx) -> Result<()>;
    /// Parent, after the container exited: how often the OOM killer struck.
    fn oom_kills(&self) -> u64;
    /// Parent, last: remove whatever create() made, killing what lingers.
    /// Returns the first failure; never panics.
    fn remove(&mut self, ctx: &Ctx) -> Result<()>;
}
// ANCHOR_END: trait

struct Cgroups {
    limits: Limits,
    cgroup: Option<Box<dyn Cgroup>>,
}

impl Step for Cgroups {
    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::runtime(format!(
                "creating a cgroup needs root; run it as root: sudo {} ...",
                ctx.prog
            )));
        }
        let name = format!("stepbox-{}", ctx.id);
        let mut cgroup: Box<dyn Cgroup> = if v2::is_unified() {
            Box::new(v2::Unified::new(&name, &self.limits)?)
        } else {
            Box::new(v1::Hierarchies::new(&name, &self.limits)?)
        };
        // Created before clone(2): a limit the kernel refuses stops the start
        // before any process exists. Cleanup runs only for steps whose prepare
        // succeeded, so a half-made cgroup is removed here.
        let made = cgroup
            .create(ctx)
            .and_then(|_| cgroup.set_limits(ctx, &self.limits));
        if let Err(e) = made {
            let _ = cgroup.remove(ctx);
            return Err(e);
        }
        self.cgroup = Some(cgroup);
        Ok(())
    }

    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        // The child is blocked on the "go" pipe: it is placed before it runs
        // a single instruction of the command. Every page it touches from now
        // on is charged to the container, every fork(2) counted against
        // pids.max, and the command's children are born inside. Placed after
        // execve(2) instead, the command would run unlimited for a while, and
        // whatever it forked by then would stay outside for good.
        match &self.cgroup {
            Some(cgroup) => cgroup.add(ctx, child),
            None => Ok(()),
        }
    }

    // ANCHOR: namespace
    fn in_child(&self, ctx: &Ctx) -> Result<()> {
        let Some(cgroup) = &self.cgroup else {
            return Ok(());
        };
        // A cgroup namespace is rooted at the cgroup its creator is in *when
        // it is created*. The parent has already moved this process into the
        // container's cgroup (after_clone runs before "go"), so here that
        // cgroup becomes the namespace's "/": /proc/self/cgroup shows "/",
        // and the cgroup filesystem mounted below shows only the container's
        // subtree, not the host's. That is also why CLONE_NEWCGROUP is not a
        // clone(2) flag: at clone(2) the child is still in the runtime's cgroup.
        ctx.say(format_args!("unshare(2) CLONE_NEWCGROUP"));
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .context("unshare(2) CLONE_NEWCGROUP")?;
        // ch05's in_child ran before this one: "/" is the container's rootfs,
        // /sys its read-only sysfs.
        cgroup.mount_inside(ctx)
    }
    // ANCHOR_END: namespace

    fn cleanup(&mut self, ctx: &Ctx) -> Result<()> {
        let Some(mut cgroup) = self.cgroup.take() else {
            return Ok(());
        };
        report_oom(ctx, cgroup.as_ref(), self.limits.memory);
        cgroup.remove(ctx)
    }
}

// ANCHOR: oom
/// The OOM killer sends SIGKILL, which looks like any other `kill -9`: the
/// cgroup's count of OOM kills tells the two apart. Read before rmdir(2),
/// which throws the count away.
fn report_oom(ctx: &Ctx, cgroup: &dyn Cgroup, memory: Option<u64>) {
    if ctx.outcome != Some(Outcome::Signaled(Signal::SIGKILL)) || cgroup.oom_kills() == 0 {
        return;
    }
    match memory {
        Some(bytes) => ctx.tell(format_args!(
            "the container was killed: it hit its memory limit ({})",
            size::human(bytes)
        )),
        None => ctx.tell(format_args!(
            "the container was killed: it ran out of memory"
        )),
    }
    // The exit status stays 137 (128 + SIGKILL), as in docker.
}
// ANCHOR_END: oom

// ---- helpers shared by v1.rs and v2.rs ----

/// Writes `value` to `dir/file`, as `echo VALUE > FILE` would; `-v` shows it.
/// `label` names the v1 hierarchy, where the same file exists in several.
fn write(ctx: &Ctx, dir: &Path, file: &str, value: &str, label: Option<&str>) -> Result<()> {
    ctx.say(format_args!(
        "write {file} = {value}{}",
        label
            .map(|l| format!(" ({l} hierarchy)"))
            .unwrap_or_default()
    ));
    let path = dir.join(file);
    // One write(2) of the whole value: cgroup files parse each write on its own.
    std::fs::write(&path, value).context(format!("writing {value:?} to {}", path.display()))
}

/// mkdir(2) a cgroup; `-v` shows it.
fn mkdir(ctx: &Ctx, dir: &Path) -> Result<()> {
    ctx.say(format_args!("mkdir {}", dir.display()));
    std::fs::create_dir(dir).context(format!("mkdir {}", dir.display()))
}

/// The number after `key ` in a flat-keyed file such as memory.events.
fn keyed_value(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// SIGKILL each process listed in `dir/cgroup.procs`.
fn kill_listed(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// rmdir(2) a cgroup. It fails with EBUSY while processes are in it: that
/// happens when something outlived the container's PID 1 for a moment, or
/// escaped it. Then `kill_all` is called and the rmdir retried, for up to a
/// second. Child cgroups (the container may have made some) go first.
fn remove_dir(ctx: &Ctx, dir: &Path, kill_all: &dyn Fn(&Path)) -> Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dir(ctx, &entry.path(), kill_all)?;
            }
        }
    }
    ctx.say(format_args!("rmdir {}", dir.display()));
    for _ in 0..50 {
        match nix::unistd::unlinkat(None, dir, nix::unistd::UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => {
                kill_all(dir);
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e).context(format!("removing cgroup {} (rmdir)", dir.display())),
        }
    }
    Err(Error::runtime(format!(
        "removing cgroup {} (rmdir): device or resource busy: processes are still in it",
        dir.display()
    )))
}

/// One line of /proc/self/mountinfo, the fields this chapter needs.
struct MountInfo {
    /// The directory of the filesystem that is mounted ("/" unless a subtree was bind-mounted).
    root: PathBuf,
    mount_point: PathBuf,
    fstype: String,
    super_options: String,
}

fn mountinfo() -> Result<Vec<MountInfo>> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    // "36 25 0:32 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory"
    Ok(text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(MountInfo {
                root: unescape(left.get(3)?).into(),
                mount_point: unescape(left.get(4)?).into(),
                fstype: right.first()?.to_string(),
                super_options: right.get(2)?.to_string(),
            })
        })
        .collect())
}

/// mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        match u8::from_str_radix(rest.get(i + 1..i + 4).unwrap_or(""), 8) {
            Ok(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            Err(_) => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the cgroup at `path` (as /proc/self/cgroup names it) lives on the
/// host: below the mount point, minus the part of the path the mount hides.
fn cgroup_dir(mount: &MountInfo, path: &str) -> Result<PathBuf> {
    let rel = Path::new(path).strip_prefix(&mount.root).map_err(|_| {
        Error::runtime(format!(
            "this process's cgroup {path} is outside the cgroup filesystem mounted on {} (which shows {})",
            mount.mount_point.display(),
            mount.root.display()
        ))
    })?;
    Ok(mount.mount_point.join(rel))
}

/// mount(2) for the cgroup filesystems inside the container; `-v` shows it.
fn mount_inside(
    ctx: &Ctx,
    fstype: &str,
    target: &str,
    flags: nix::mount::MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let ro = flags.contains(nix::mount::MsFlags::MS_RDONLY);
    let opts: Vec<&str> = ro.then_some("ro").into_iter().chain(data).collect();
    ctx.say(format_args!(
        "mount(2) {fstype} on {target} ({})",
        opts.join(",")
    ));
    nix::mount::mount(Some(fstype), target, Some(fstype), flags, data)
        .context(format!("mount(2) {fstype} on {target}"))
}

// ---- value parsers for the flags (clap prints "invalid value 'X' for '--flag': MSG") ----

/// docker's minimum: below a few MiB even a shell is killed before it starts.
const MIN_MEMORY: u64 = 6 << 20;

fn parse_memory(s: &str) -> std::result::Result<u64, String> {
    let bytes = size::parse(s)?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "the smallest memory limit allowed is {} ({s} is {})",
            size::human(MIN_MEMORY),
            size::human(bytes)
        ));
    }
    Ok(bytes)
}

fn parse_pids(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n as u64),
        Ok(_) => Err("must be at least 1 (leave --pids-limit out for no limit)".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

/// "0.5" -> 50000 (µs of CPU time per 100000 µs period).
fn parse_cpus(s: &str) -> std::result::Result<u64, String> {
    let cpus: f64 = s
        .trim()
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite())
        .ok_or_else(|| format!("{s:?} is not a decimal number (e.g. 0.5 or 2)"))?;
    if cpus <= 0.0 {
        return Err("must be more than 0 (leave --cpus out for no limit)".into());
    }
    // The kernel refuses quotas below 1 ms per period.
    let quota = (cpus * CPU_PERIOD as f64).round();
    if quota < 1000.0 {
        return Err("must be at least 0.01".into());
    }
    if quota > 1e12 {
        return Err("is too large".into());
    }
    Ok(quota as u64)
}

fn parse_shares(s: &str) -> std::result::Result<u64, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if (2..=262144).contains(&n) => Ok(n as u64),
        Ok(_) => Err("must be between 2 and 262144 (the default is 1024)".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert_eq!(parse_cpus("0.5"), Ok(50000));
        assert_eq!(parse_cpus("2"), Ok(200000));
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("-1").is_err());
        assert!(parse_cpus("0.001").is_err());
        assert!(parse_cpus("nan").is_err());
        assert_eq!(parse_pids("20"), Ok(20));
        assert!(parse_pids("0").is_err());
        assert!(parse_pids("-1").is_err());
        assert_eq!(parse_memory("64m"), Ok(64 << 20));
        assert!(parse_memory("12x").is_err());
        assert!(parse_memory("1m").is_err());
        assert!(parse_shares("1").is_err());
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/a\\b"), r"/a\\b");
    }

    #[test]
    fn shares_to_weight() {
        assert_eq!(v2::cpu_weight(2), 1);
        assert_eq!(v2::cpu_weight(1024), 39);
        assert_eq!(v2::cpu_weight(262144), 10000);
    }
}
