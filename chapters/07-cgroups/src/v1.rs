//! cgroup v1: one tree (a "hierarchy") per controller, each a separate
//! filesystem, usually at /sys/fs/cgroup/<controller>. Some controllers are
//! mounted together in one hierarchy (`cpu,cpuacct` is common); a process has
//! one cgroup in each hierarchy, so the container's cgroup is really one
//! directory per hierarchy, and the child must be written into each.

use crate::{
    flag_for, keyed_value, kill_listed, remove_dir, write, Cgroup, DevicePolicy, Limits, MountInfo,
    CPU_PERIOD,
};
use ch01_process::state::Resource;
use ch01_process::{Context, Ctx, Error, Result};
use nix::mount::MsFlags;
use nix::unistd::Pid;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The controllers every container gets, limited or not: memory, pids and
/// cpu for the limits, cpuacct for the CPU usage it reports (and because it
/// is often mounted with cpu anyway). Plus `devices` when there is a device
/// policy ([`Limits::devices`]): without one, the container stays in the
/// runtime's devices cgroup, as in chapters 7 and 8.
const CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "cpuacct"];

/// Every v1 controller the kernel knows, to tell them apart from other
/// mount options (rw, noprefix, clone_children, name=…).
const KNOWN: [&str; 14] = [
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

struct Hierarchy {
    /// The controllers mounted together in it, e.g. ["cpu", "cpuacct"].
    controllers: Vec<String>,
    /// What mounts this hierarchy again: its controllers, plus its name= if it has one.
    mount_data: String,
    /// Its mount point, the root of the hierarchy: /sys/fs/cgroup/memory
    root: PathBuf,
    /// The container's cgroup in it: /sys/fs/cgroup/memory/PARENT/stepbox-<id>
    dir: PathBuf,
    created: bool,
}

impl Hierarchy {
    /// "cpu,cpuacct": how mounts, /proc/self/cgroup and -v name it.
    fn label(&self) -> String {
        self.controllers.join(",")
    }
}

pub struct Hierarchies {
    list: Vec<Hierarchy>,
    /// `--cgroup-parent`, relative to each hierarchy's root.
    parent: PathBuf,
}

impl Hierarchies {
    pub fn new(parent: &Path, name: &str, limits: &Limits) -> Result<Self> {
        let mounts = crate::mountinfo()?;
        let mut list: Vec<Hierarchy> = Vec::new();
        let devices = limits.devices.is_some().then_some("devices");
        let freezer = limits.freezer.then_some("freezer");
        for want in CONTROLLERS.into_iter().chain(devices).chain(freezer) {
            if list.iter().any(|h| h.controllers.iter().any(|c| c == want)) {
                continue; // co-mounted with one already found (cpu,cpuacct)
            }
            let mount = mounts
                .iter()
                .filter(|m| m.fstype == "cgroup")
                .find(|m| controllers(m).iter().any(|c| c == want));
            let Some(mount) = mount else {
                if limits.needs(want) {
                    return Err(Error::runtime(format!(
                        "no cgroup v1 hierarchy with the {want} controller is mounted \
                         (none in /proc/self/mountinfo), so {} cannot be applied",
                        flag_for(want)
                    )));
                }
                continue; // nothing to limit; accounting for it is not available
            };
            let mut data = controllers(mount);
            data.extend(
                mount
                    .super_options
                    .split(',')
                    .filter(|o| o.starts_with("name="))
                    .map(String::from),
            );
            list.push(Hierarchy {
                controllers: controllers(mount),
                mount_data: data.join(","),
                // From the hierarchy's root, whichever cgroup the runtime is
                // in there (which need not be the root: on this project's
                // machines memory's is nested). There is no
                // no-internal-process rule in v1, but one parent in every
                // hierarchy keeps the layout the same as in v2.
                root: mount.mount_point.clone(),
                dir: mount.mount_point.join(parent).join(name),
                created: false,
            });
        }
        Ok(Hierarchies {
            list,
            parent: parent.to_path_buf(),
        })
    }

    /// Without a cgroup namespace the hierarchy's root would be the host's:
    /// it is mounted at a scratch point, the container's own cgroup in it
    /// bound onto `target` (read-only), and the scratch mount taken away,
    /// as runc binds it. Programs that read their limit at
    /// /sys/fs/cgroup/memory/memory.limit_in_bytes (a JVM) find theirs.
    fn bind_own(&self, ctx: &Ctx, h: &Hierarchy, target: &str, flags: MsFlags) -> Result<()> {
        use nix::mount::{mount, umount2, MntFlags};
        let scratch = format!("{ROOT}/.{}", h.label());
        std::fs::create_dir(&scratch).context(format!("mkdir {scratch}"))?;
        crate::mount_inside(
            ctx,
            "cgroup",
            &scratch,
            flags | MsFlags::MS_RDONLY,
            Some(&h.mount_data),
        )?;
        let own = h.dir.strip_prefix(&h.root).unwrap_or(&h.dir);
        let source = Path::new(&scratch).join(own);
        ctx.say(format_args!(
            "mount(2) {} on {target}, MS_BIND, then read-only",
            source.display()
        ));
        let bound = mount(
            Some(&source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .and_then(|_| {
            mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | flags,
                None::<&str>,
            )
        })
        .context(format!("binding {} on {target}", source.display()));
        let _ = umount2(scratch.as_str(), MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&scratch);
        bound
    }

    fn dir(&self, controller: &str) -> &Path {
        let h = self
            .list
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller));
        // new() returned an error if a limited controller has no hierarchy.
        &h.expect("a hierarchy for every limited controller").dir
    }
}

/// The controllers among a cgroup mount's options: "rw,cpu,cpuacct" -> [cpu, cpuacct].
fn controllers(mount: &MountInfo) -> Vec<String> {
    mount
        .super_options
        .split(',')
        .filter(|o| KNOWN.contains(o))
        .map(String::from)
        .collect()
}

impl Cgroup for Hierarchies {
    fn create(&mut self, ctx: &Ctx) -> Result<()> {
        for h in &mut self.list {
            ctx.record(Resource::Cgroup {
                path: h.dir.clone(),
            })?;
            crate::make_in_parent(ctx, &h.root, &self.parent, &h.dir, &mut |_| Ok(()))?;
            h.created = true;
        }
        Ok(())
    }

    // ANCHOR: v1_limits
    fn set_limits(&self, ctx: &Ctx, limits: &Limits) -> Result<()> {
        if let Some(bytes) = limits.memory {
            let dir = self.dir("memory");
            let memsw = dir.join("memory.memsw.limit_in_bytes").exists();
            // No swap: memory+swap gets the same limit as memory alone. The
            // file exists only if the kernel accounts swap, and may never be
            // below memory.limit_in_bytes: it goes second when the limit
            // comes down (a new cgroup's is unlimited), first when it goes
            // up (chapter 12's update of a running container).
            let now = std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            // v1 limits memory plus swap together.
            let total = limits.memory_swap.unwrap_or(bytes).max(bytes).to_string();
            let bytes_s = bytes.to_string();
            if memsw && bytes > now {
                write(ctx, dir, "memory.memsw.limit_in_bytes", &total, None)?;
            }
            write(ctx, dir, "memory.limit_in_bytes", &bytes_s, None)?;
            if memsw && bytes <= now {
                write(ctx, dir, "memory.memsw.limit_in_bytes", &total, None)?;
            }
        }
        if let Some(n) = limits.pids {
            write(ctx, self.dir("pids"), "pids.max", &n.to_string(), None)?;
        }
        if let Some(quota) = limits.cpu_quota {
            // QUOTA µs of CPU time in every PERIOD µs; two files in v1.
            let dir = self.dir("cpu");
            write(ctx, dir, "cpu.cfs_period_us", &CPU_PERIOD.to_string(), None)?;
            write(ctx, dir, "cpu.cfs_quota_us", &quota.to_string(), None)?;
        }
        if let Some(shares) = limits.cpu_shares {
            write(
                ctx,
                self.dir("cpu"),
                "cpu.shares",
                &shares.to_string(),
                None,
            )?;
        }
        Ok(())
    }
    // ANCHOR_END: v1_limits

    // ANCHOR: v1_devices
    fn set_devices(&self, ctx: &Ctx, policy: &DevicePolicy) -> Result<()> {
        // A new cgroup starts with its parent's list, here everything
        // ("a *:* rwm"). "a" in devices.deny empties it; each line in
        // devices.allow then adds one rule. A rule may allow only what the
        // parent allows: the kernel refuses anything wider (EPERM).
        let dir = self.dir("devices");
        write(ctx, dir, "devices.deny", "a", None)?;
        for rule in &policy.allow {
            write(ctx, dir, "devices.allow", rule, None)?;
        }
        Ok(())
    }
    // ANCHOR_END: v1_devices

    fn add(&self, ctx: &Ctx, pid: Pid) -> Result<()> {
        // lab: begin write the pid into cgroup.procs of each hierarchy's directory (v1)
        for h in &self.list {
            write(
                ctx,
                &h.dir,
                "cgroup.procs",
                &pid.to_string(),
                Some(&h.label()),
            )?;
        }
        Ok(())
        // lab: end
    }

    // ANCHOR: v1_mount
    fn mount_inside(&self, ctx: &Ctx, own_namespace: bool) -> Result<()> {
        // The container's /sys is a read-only sysfs (chapter 5), whose
        // /sys/fs/cgroup is an empty directory: a tmpfs on it makes room for
        // one mount point per hierarchy.
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        crate::mount_inside(ctx, "tmpfs", ROOT, flags, Some("mode=755"))?;
        for h in &self.list {
            let label = h.label();
            let target = format!("{ROOT}/{label}");
            std::fs::create_dir(&target).context(format!("mkdir {target}"))?;
            // Same controllers as on the host, so the kernel mounts the same
            // hierarchy; in the new cgroup namespace its root is the container's cgroup.
            match own_namespace {
                true => crate::mount_inside(
                    ctx,
                    "cgroup",
                    &target,
                    flags | MsFlags::MS_RDONLY,
                    Some(&h.mount_data),
                )?,
                false => self.bind_own(ctx, h, &target, flags)?,
            }
            // cpu,cpuacct: also reachable as cpu and cpuacct, as on the host.
            if h.controllers.len() > 1 {
                for c in &h.controllers {
                    let link = format!("{ROOT}/{c}");
                    std::os::unix::fs::symlink(&label, &link).context(format!("symlink {link}"))?;
                }
            }
        }
        ctx.say(format_args!("mount(2) tmpfs on {ROOT} MS_REMOUNT (ro)"));
        nix::mount::mount(
            None::<&str>,
            ROOT,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
            Some("mode=755"),
        )
        .context(format!("remounting the tmpfs on {ROOT} read-only"))
    }
    // ANCHOR_END: v1_mount

    fn oom_kills(&self) -> u64 {
        let Some(h) = self
            .list
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == "memory"))
        else {
            return 0;
        };
        // memory.oom_control has an oom_kill line since Linux 4.13; before,
        // memory.failcnt (times the limit was hit) is the best hint there is.
        keyed_value(&h.dir.join("memory.oom_control"), "oom_kill").unwrap_or_else(|| {
            std::fs::read_to_string(h.dir.join("memory.failcnt"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        })
    }

    fn remove(&mut self, ctx: &Ctx) -> Result<()> {
        // Every hierarchy is tried, even after one failed; the first failure is returned.
        let mut result = Ok(());
        for h in self.list.iter_mut().rev() {
            if !std::mem::take(&mut h.created) {
                continue;
            }
            // v1 has no cgroup.kill: what lingers is killed one by one.
            let removed = remove_dir(ctx, &h.dir, &kill_listed);
            if result.is_ok() {
                result = removed;
            }
        }
        result
    }
}
