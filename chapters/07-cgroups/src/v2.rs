//! cgroup v2: one tree, mounted at /sys/fs/cgroup, every controller in it.
//!
//! A controller is available to a cgroup's children only once the parent
//! lists it in its `cgroup.subtree_control`. And the "no internal processes"
//! rule: a cgroup (other than the root) cannot both hold processes and hand
//! controllers to its children; a process lives in a leaf. Hence the parent
//! cgroup reached from the root (see `make_parent` in lib.rs): the
//! controllers are handed down from the root, one level at a time, through
//! cgroups that hold no process.

use crate::{flag_for, keyed_value, kill_all, remove_dir, write, Cgroup, Limits, CPU_PERIOD};
use ch01_process::state::Resource;
use ch01_process::{Context, Ctx, Error, Result};
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The host uses the unified hierarchy if /sys/fs/cgroup is itself cgroup2.
/// A hybrid host (v1 controllers plus an empty cgroup2 at
/// /sys/fs/cgroup/unified) counts as v1.
pub fn is_unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

pub struct Unified {
    /// Where the cgroup2 filesystem is mounted: the cgroup root.
    root: PathBuf,
    /// `--cgroup-parent`, relative to the root.
    parent: PathBuf,
    /// /sys/fs/cgroup/PARENT/stepbox-<id>
    dir: PathBuf,
    limits: Limits,
    created: bool,
}

/// The controllers every container gets, limited or not (so that it can
/// read its own memory.current, pids.current, cpu.stat).
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

impl Unified {
    pub fn new(parent: &Path, name: &str, limits: &Limits) -> Result<Self> {
        let mounts = crate::mountinfo()?;
        mounts
            .iter()
            .rev() // the last mount on a path is the visible one
            .find(|m| m.fstype == "cgroup2" && m.mount_point == Path::new(ROOT))
            .ok_or_else(|| Error::runtime(format!("no cgroup2 filesystem is mounted on {ROOT}")))?;
        let root = PathBuf::from(ROOT);
        Ok(Unified {
            dir: root.join(parent).join(name),
            root,
            parent: parent.to_path_buf(),
            limits: *limits,
            created: false,
        })
    }

    // ANCHOR: v2_enable
    /// Refuses a parent path with a cgroup (other than the root) that holds
    /// processes, before anything is written: the no-internal-process rule
    /// would refuse to hand it controllers for its children. The user's own
    /// session scope given as --cgroup-parent is the typical case.
    fn check_no_processes(&self) -> Result<()> {
        let mut dir = self.root.clone();
        for part in self.parent.components() {
            dir.push(part);
            // A cgroup that does not exist yet holds nothing: made below.
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                return Err(holds_processes(&dir));
            }
        }
        Ok(())
    }

    /// Hands memory, pids and cpu down to the children of `dir` (a cgroup
    /// on the way from the root to the parent), if it does not already.
    fn enable_controllers(&self, ctx: &Ctx, dir: &Path) -> Result<()> {
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let available = read("cgroup.controllers");
        let enabled = read("cgroup.subtree_control");
        let mut missing = Vec::new();
        for c in CONTROLLERS {
            if enabled.split_whitespace().any(|e| e == c) {
                continue;
            }
            if available.split_whitespace().any(|a| a == c) {
                missing.push(format!("+{c}"));
            } else if self.limits.needs(c) {
                return Err(Error::runtime(format!(
                    "the {c} controller is not available in {dir:?} (its cgroup.controllers \
                     lists: {}), so --{} cannot be applied",
                    available.trim(),
                    flag_for(c)
                )));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let value = missing.join(" ");
        ctx.say(format_args!(
            "write cgroup.subtree_control = {value} (in {})",
            dir.display()
        ));
        let file = dir.join("cgroup.subtree_control");
        match std::fs::write(&file, &value) {
            Ok(()) => Ok(()),
            // A process moved in since check_no_processes().
            Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) => Err(holds_processes(dir)),
            Err(e) => Err(e).context(format!("writing {value:?} to {file:?}")),
        }
    }
    // ANCHOR_END: v2_enable
}

fn holds_processes(dir: &Path) -> Error {
    Error::runtime(format!(
        "cannot make container cgroups below {dir:?}: it holds processes itself, and cgroup \
         v2's no-internal-process rule lets a cgroup other than the root hand controllers to \
         its children only while it holds none; give --cgroup-parent a path whose cgroups hold \
         no processes (the default, stepbox, is one of stepbox's own)"
    ))
}

/// docker's --cpu-shares (2..262144, default 1024) to cgroup v2's cpu.weight
/// (1..10000, default 100), with the formula runc and crun use.
pub fn cpu_weight(shares: u64) -> u64 {
    1 + ((shares - 2) * 9999) / 262142
}

impl Cgroup for Unified {
    fn create(&mut self, ctx: &Ctx) -> Result<()> {
        self.check_no_processes()?;
        ctx.record(Resource::Cgroup {
            path: self.dir.clone(),
        })?;
        crate::make_in_parent(ctx, &self.root, &self.parent, &self.dir, &mut |dir| {
            self.enable_controllers(ctx, dir)
        })?;
        self.created = true;
        Ok(())
    }

    // ANCHOR: v2_limits
    fn set_limits(&self, ctx: &Ctx, limits: &Limits) -> Result<()> {
        let dir = &self.dir;
        if let Some(bytes) = limits.memory {
            write(ctx, dir, "memory.max", &bytes.to_string(), None)?;
            // No swap: the limit is the container's whole memory. The file
            // exists only if the kernel accounts swap.
            if dir.join("memory.swap.max").exists() {
                write(ctx, dir, "memory.swap.max", "0", None)?;
            }
        }
        if let Some(n) = limits.pids {
            write(ctx, dir, "pids.max", &n.to_string(), None)?;
        }
        if let Some(quota) = limits.cpu_quota {
            // "QUOTA PERIOD": QUOTA µs of CPU time in every PERIOD µs.
            write(ctx, dir, "cpu.max", &format!("{quota} {CPU_PERIOD}"), None)?;
        }
        if let Some(shares) = limits.cpu_shares {
            write(
                ctx,
                dir,
                "cpu.weight",
                &cpu_weight(shares).to_string(),
                None,
            )?;
        }
        Ok(())
    }
    // ANCHOR_END: v2_limits

    fn add(&self, ctx: &Ctx, pid: Pid) -> Result<()> {
        write(ctx, &self.dir, "cgroup.procs", &pid.to_string(), None)
    }

    fn mount_inside(&self, ctx: &Ctx) -> Result<()> {
        // Read-only: the container sees its limits and usage but cannot raise them.
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        crate::mount_inside(ctx, "cgroup2", ROOT, flags, None)
    }

    fn oom_kills(&self) -> u64 {
        keyed_value(&self.dir.join("memory.events"), "oom_kill").unwrap_or(0)
    }

    fn remove(&mut self, ctx: &Ctx) -> Result<()> {
        if !std::mem::take(&mut self.created) {
            return Ok(());
        }
        remove_dir(ctx, &self.dir, &kill_all)
    }
}
