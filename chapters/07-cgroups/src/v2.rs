//! cgroup v2: one tree, mounted at /sys/fs/cgroup, every controller in it.
//!
//! A controller is available to a cgroup's children only once the parent
//! lists it in its `cgroup.subtree_control`. And the "no internal processes"
//! rule: a cgroup (other than the root) cannot both hold processes and hand
//! controllers to its children; a process lives in a leaf.

use crate::{keyed_value, kill_listed, mkdir, remove_dir, write, Cgroup, Limits, CPU_PERIOD};
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
    /// The runtime's own cgroup; the container's is made below it.
    parent: PathBuf,
    /// /sys/fs/cgroup/…/stepbox-<id>
    dir: PathBuf,
    limits: Limits,
    created: bool,
}

/// The controllers every container gets, limited or not (so that it can
/// read its own memory.current, pids.current, cpu.stat).
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

impl Unified {
    pub fn new(name: &str, limits: &Limits) -> Result<Self> {
        // "0::/user.slice/session-1.scope": the one line for the unified hierarchy.
        let own =
            std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| Error::runtime("/proc/self/cgroup has no cgroup v2 line (0::/…)"))?;
        let mounts = crate::mountinfo()?;
        let mount = mounts
            .iter()
            .rev() // the last mount on a path is the visible one
            .find(|m| m.fstype == "cgroup2" && m.mount_point == Path::new(ROOT))
            .ok_or_else(|| Error::runtime(format!("no cgroup2 filesystem is mounted on {ROOT}")))?;
        let parent = crate::cgroup_dir(mount, path)?;
        Ok(Unified {
            dir: parent.join(name),
            parent,
            limits: *limits,
            created: false,
        })
    }

    /// Is `controller` limited by a flag (then it must be available)?
    fn needed(&self, controller: &str) -> bool {
        match controller {
            "memory" => self.limits.memory.is_some(),
            "pids" => self.limits.pids.is_some(),
            "cpu" => self.limits.cpu_quota.is_some() || self.limits.cpu_shares.is_some(),
            _ => false,
        }
    }

    // ANCHOR: v2_enable
    /// Hands memory, pids and cpu down to the parent's children, if the
    /// parent does not already. This is where the no-internal-processes rule
    /// bites: the parent is the cgroup this runtime runs in, so it holds a
    /// process, and unless it is the root cgroup (which is exempt) the kernel
    /// refuses with EBUSY. Engines avoid it by never running in the cgroups
    /// they manage (systemd delegates a subtree; docker's daemon sits in its own).
    fn enable_controllers(&self, ctx: &Ctx) -> Result<()> {
        let read = |file: &str| std::fs::read_to_string(self.parent.join(file)).unwrap_or_default();
        let available = read("cgroup.controllers");
        let enabled = read("cgroup.subtree_control");
        let mut missing = Vec::new();
        for c in CONTROLLERS {
            if enabled.split_whitespace().any(|e| e == c) {
                continue;
            }
            if available.split_whitespace().any(|a| a == c) {
                missing.push(format!("+{c}"));
            } else if self.needed(c) {
                return Err(Error::runtime(format!(
                    "the {c} controller is not available in {} (its cgroup.controllers lists: {})",
                    self.parent.display(),
                    available.trim()
                )));
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let value = missing.join(" ");
        ctx.say(format_args!(
            "write cgroup.subtree_control = {value} (in {})",
            self.parent.display()
        ));
        let file = self.parent.join("cgroup.subtree_control");
        match std::fs::write(&file, &value) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) => {
                Err(Error::runtime(format!(
                    "writing {value:?} to {}: device or resource busy: cgroup v2's \
                 no-internal-processes rule lets a cgroup other than the root hand \
                 controllers to its children only while it holds no process itself, and this \
                 runtime is in that cgroup; run it from the root cgroup \
                 (echo $$ > /sys/fs/cgroup/cgroup.procs), which is exempt from the rule",
                    file.display()
                )))
            }
            Err(e) => Err(e).context(format!("writing {value:?} to {}", file.display())),
        }
    }
    // ANCHOR_END: v2_enable
}

/// docker's --cpu-shares (2..262144, default 1024) to cgroup v2's cpu.weight
/// (1..10000, default 100), with the formula runc and crun use.
pub fn cpu_weight(shares: u64) -> u64 {
    1 + ((shares - 2) * 9999) / 262142
}

impl Cgroup for Unified {
    fn create(&mut self, ctx: &Ctx) -> Result<()> {
        self.enable_controllers(ctx)?;
        mkdir(ctx, &self.dir)?;
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
        remove_dir(ctx, &self.dir, &|dir: &Path| {
            // cgroup.kill (Linux 5.14) kills the whole subtree at once, even
            // processes forking while it runs; without it, one by one.
            if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
                kill_listed(dir);
            }
        })
    }
}
