//! Chapter 7: cgroups.
//!
//! Namespaces decide what a container can *see*; control groups decide how
//! much it can *use*. Every process sits in one cgroup (per hierarchy, in
//! cgroup v1); a cgroup's files set its limits (`memory.max`, `pids.max`,
//! `cpu.max`) and count its use. The container gets a cgroup of its own,
//! `stepbox-<id>`, under a parent cgroup that belongs to stepbox, reached
//! from the cgroup root (`/sys/fs/cgroup/stepbox/stepbox-<id>`, or
//! `--cgroup-parent`), not under the runtime's own cgroup: see
//! `make_parent` for why. A runtime that is not root (chapter 11) makes it
//! only where a cgroup v2 subtree was delegated to its caller, or runs the
//! container without one (see `rootless.rs`).
//!
//! ```text
//!  check()       find the cgroup version and the controllers the limits need
//!  prepare()     mkdir the parent if missing, then the cgroup; write its limits
//!                                                          (before clone: nothing runs yet)
//!  after_clone() write the child's pid to cgroup.procs     (the child still waits for Go)
//!  setup()       unshare(CLONE_NEWCGROUP), mount the cgroup filesystem read-only
//!  cleanup()     report an OOM kill, rmdir the cgroup       (kill what lingers, retry)
//! ```
//!
//! Two versions of the interface exist and both are in use: v2 (one unified
//! tree at /sys/fs/cgroup, see `v2.rs`) and v1 (one tree per controller at
//! /sys/fs/cgroup/<controller>, see `v1.rs`). The runtime detects which one the
//! host uses; both implement [`Cgroup`].

#[cfg(test)]
mod proptests;
mod rootless;
pub mod size;
mod v1;
mod v2;

use ch01_process::runtime::Outcome;
use ch01_process::state::Undo;
use ch01_process::{Chapter, Context, Ctx, Error, Result, Step, Steps};
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
    /// The cgroup under which the container's cgroup is made, as a path from
    /// the cgroup root (a leading / is allowed; v1: in every hierarchy). It is
    /// created if missing and kept, like docker's /docker. With cgroup v2 no
    /// cgroup on that path may hold processes. Default: stepbox; for a
    /// caller who is not root, the cgroup that holds the caller's own, if
    /// it is theirs.
    #[arg(long, value_name = "PATH", value_parser = parse_cgroup_parent)]
    pub cgroup_parent: Option<PathBuf>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch07-cgroups";
    const ABOUT: &'static str = "Run COMMAND in new pid, network, IPC, mount, UTS and cgroup \
                                 namespaces, with memory, process and CPU limits.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
            limits: Limits {
                memory: self.memory,
                memory_swap: None,
                pids: self.pids_limit,
                cpu_quota: self.cpus,
                cpu_shares: self.cpu_shares,
                devices: None,
                freezer: false,
            },
            cgroup_parent: self.cgroup_parent.clone(),
            cgroup_name: None,
            no_cgroupns: false,
        }
    }
}

/// Chapter 7's part of the configuration: the resources.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch06_uts::Config,
    pub limits: Limits,
    /// Relative to the cgroup root (see [`parse_cgroup_parent`]); None:
    /// [`DEFAULT_PARENT`] (root), beside the caller's cgroup (anyone else).
    pub cgroup_parent: Option<PathBuf>,
    /// The cgroup's own name, below the parent; None: `stepbox-<id>`
    /// (chapter 12 takes both from a `config.json`'s `cgroupsPath`).
    pub cgroup_name: Option<String>,
    /// No cgroup namespace of its own (a `config.json` that lists none):
    /// the container is still placed and limited, and the cgroup
    /// filesystem is mounted read-only as the host's cgroup namespace
    /// shows it, from the root.
    pub no_cgroupns: bool,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(Cgroups {
            limits: self.limits.clone(),
            parent: self.cgroup_parent.clone(),
            name: self.cgroup_name.clone(),
            cgroupns: !self.no_cgroupns,
            cgroup: None,
            created: false,
            rootless: false,
            own: false,
            without: None,
        }));
        steps
    }
}
// ANCHOR_END: opts

/// The limits to write, all optional (None: unlimited, the kernel's default).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Memory plus swap, in bytes, as docker's `--memory-swap` (podman
    /// writes twice the memory); None: no swap beyond `memory`. Only with
    /// `memory`.
    pub memory_swap: Option<u64>,
    pub pids: Option<u64>,
    /// Microseconds of CPU time per [`CPU_PERIOD`].
    pub cpu_quota: Option<u64>,
    pub cpu_shares: Option<u64>,
    /// Which device nodes the container may use; None: every one, as in
    /// chapters 7 and 8. No flag of this chapter sets it: chapter 9 fills it.
    pub devices: Option<DevicePolicy>,
    /// The container may be frozen (chapter 12's `pause`): cgroup v2 has
    /// `cgroup.freeze` in every cgroup; v1 needs one in the freezer
    /// hierarchy too.
    pub freezer: bool,
}

// ANCHOR: device_policy
/// A device allow list, in the two forms the two cgroup versions take.
/// Everything not on it is denied: opening a device node (read, write) or
/// making one with mknod(2) fails with EPERM, whatever the file's mode and
/// the process's capabilities. Chapter 9 makes both forms from one list of
/// rules; this chapter only hands them to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePolicy {
    /// cgroup v1: the lines written one by one to `devices.allow` (`c 1:3
    /// rwm`, `c 136:* rwm`), after `a` to `devices.deny` has emptied the list.
    pub allow: Vec<String>,
    /// cgroup v2, which has no device files: an eBPF program of type
    /// `BPF_PROG_TYPE_CGROUP_DEVICE`, run by the kernel at each open(2) and
    /// mknod(2) of a device node; it returns 1 to allow, 0 to deny.
    pub program: Vec<BpfInsn>,
}

/// One eBPF instruction, the kernel's `struct bpf_insn` (8 bytes): an
/// opcode, two 4-bit register numbers, a signed 16-bit offset (of a jump, or
/// of a memory access) and a signed 32-bit immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    /// The 8 bytes the kernel reads. The two registers share a byte as C
    /// bit-fields (`dst_reg:4, src_reg:4`), whose order follows the
    /// machine's byte order.
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = match cfg!(target_endian = "little") {
            true => (self.src << 4) | (self.dst & 0xf),
            false => (self.dst << 4) | (self.src & 0xf),
        };
        let mut b = [0; 8];
        b[0] = self.code;
        b[1] = regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}
// ANCHOR_END: device_policy

impl Limits {
    /// Is `controller` limited by a flag (then it must be available)?
    pub fn needs(&self, controller: &str) -> bool {
        match controller {
            "memory" => self.memory.is_some(),
            "pids" => self.pids.is_some(),
            "cpu" => self.cpu_quota.is_some() || self.cpu_shares.is_some(),
            "devices" => self.devices.is_some(),
            "freezer" => self.freezer,
            _ => false,
        }
    }

    /// The flags that set a limit, for messages (the device policy is no
    /// flag of this chapter's).
    fn flags(&self) -> Vec<&'static str> {
        [
            (self.memory.is_some(), "--memory"),
            (self.pids.is_some(), "--pids-limit"),
            (self.cpu_quota.is_some(), "--cpus"),
            (self.cpu_shares.is_some(), "--cpu-shares"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect()
    }
}

/// What needs `controller`, for messages: "so --memory cannot be applied".
fn flag_for(controller: &str) -> &'static str {
    match controller {
        "memory" => "--memory",
        "pids" => "--pids-limit",
        "devices" => "the device policy",
        "freezer" => "pausing the container",
        _ => "--cpus",
    }
}

/// The CFS bandwidth period, in microseconds (100 ms, the kernel's default):
/// `--cpus 0.5` is a quota of 50000 µs per period.
pub const CPU_PERIOD: u64 = 100_000;

// ANCHOR: trait
/// One container's cgroup, whichever cgroup version the host uses.
pub trait Cgroup: Send {
    /// Parent, before clone(2): make the cgroup's directory (directories, in v1).
    fn create(&mut self, ctx: &Ctx) -> Result<()>;
    /// Parent, before clone(2): write the limits into the cgroup's files.
    fn set_limits(&self, ctx: &Ctx, limits: &Limits) -> Result<()>;
    /// Parent, before clone(2): let the container use only the devices
    /// `policy` allows (v1: devices.deny and devices.allow; v2: attach its
    /// eBPF program to the cgroup).
    fn set_devices(&self, ctx: &Ctx, policy: &DevicePolicy) -> Result<()>;
    /// Parent, after clone(2): move the (still waiting) child into the cgroup.
    fn add(&self, ctx: &Ctx, pid: Pid) -> Result<()>;
    /// Child, in its new cgroup namespace: mount the cgroup filesystem on
    /// /sys/fs/cgroup, read-only.
    /// Without a cgroup namespace of its own (`own_namespace` false), v1
    /// shows each hierarchy's container cgroup alone, as runc binds it; v2
    /// the whole tree, as runc mounts it.
    fn mount_inside(&self, ctx: &Ctx, own_namespace: bool) -> Result<()>;
    /// Parent, after the container exited: how often the OOM killer struck.
    fn oom_kills(&self) -> u64;
    /// Parent, last: remove whatever create() made, killing what lingers.
    /// Returns the first failure; never panics.
    fn remove(&mut self, ctx: &Ctx) -> Result<()>;
}
// ANCHOR_END: trait

/// Writes `limits` into a running container's cgroup (chapter 12's
/// `update`): the cgroup `name` under `parent` (None: the default parent),
/// as check() finds it, in the hierarchies the limits need. Only the
/// limits that are set are written.
pub fn update(ctx: &Ctx, parent: Option<&Path>, name: &str, limits: &Limits) -> Result<()> {
    let parent = parent.unwrap_or(Path::new(DEFAULT_PARENT));
    if let Some(quota) = limits.cpu_quota {
        check_cpus(quota)?;
    }
    let cgroup: Box<dyn Cgroup> = match v2::is_unified() {
        true => Box::new(v2::Unified::new(Path::new(""), parent, name, limits)?),
        false => Box::new(v1::Hierarchies::new(parent, name, limits)?),
    };
    cgroup.set_limits(ctx, limits)
}

struct Cgroups {
    limits: Limits,
    /// `--cgroup-parent`, relative to the cgroup root.
    parent: Option<PathBuf>,
    /// The cgroup's name; None: `stepbox-<id>`.
    name: Option<String>,
    /// A cgroup namespace of its own (always, but for chapter 12's configs
    /// that list none).
    cgroupns: bool,
    /// Found in check(), made in prepare(). Without a cgroup of the
    /// container's own (`own` false), only what setup() mounts.
    cgroup: Option<Box<dyn Cgroup>>,
    created: bool,
    /// The runtime's caller is not root (chapter 11): found in check(),
    /// in the parent, and so known to the child too.
    rootless: bool,
    /// The container gets a cgroup of its own. Only a rootless runtime
    /// goes without: the container then stays in the runtime's cgroup.
    own: bool,
    /// Why it goes without, for the warning in prepare().
    without: Option<String>,
}

impl Cgroups {
    /// check() for a caller who is not root: a cgroup where one was
    /// delegated to them, else none (a warning in prepare()) or, if a limit
    /// was asked for, a refusal.
    fn check_rootless(&mut self, name: &str) -> Result<()> {
        // No device policy: the devices cgroup (v1) and a device program
        // (v2: bpf(2), which needs CAP_SYS_ADMIN on the host) are root's
        // alone. Nor is one needed: in a user namespace mknod(2) of a
        // device node is refused whatever the capabilities, and chapter 5
        // binds only the standard nodes (null, zero, full, random, urandom,
        // tty), which the caller may open anyway. So chapter 9's allow list
        // (which it always hands over, unless --privileged) asks for no
        // cgroup here.
        self.limits.devices = None;
        let mut asked = self.limits.flags();
        if self.parent.is_some() {
            asked.push("--cgroup-parent");
        }
        let unified = v2::is_unified();
        let place = unified.then(|| {
            let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let own = rootless::own_cgroup(&text)
                .ok_or("/proc/self/cgroup has no cgroup v2 line for the runtime")?;
            rootless::find_place(&own, self.parent.as_deref(), &v2::access)
        });
        match rootless::decide(&asked, place) {
            rootless::Decision::Own(place) => {
                let cgroup = v2::Unified::new(&place.base, &place.parent, name, &self.limits)?;
                self.cgroup = Some(Box::new(cgroup));
                self.own = true;
            }
            rootless::Decision::Without(why) => {
                self.cgroup = Some(view(unified, name)?);
                self.own = false;
                self.without = Some(why);
            }
            rootless::Decision::Refuse(e) => return Err(Error::runtime(e)),
        }
        Ok(())
    }
}

/// The one line a rootless start without a cgroup prints.
fn warn_without(ctx: &Ctx, why: &str) {
    ctx.tell(format_args!(
        "warning: no cgroup: {why} ({})",
        rootless::HINT
    ));
}

/// Only for setup() to mount, made nowhere: the cgroup filesystem as the
/// host has it (v1: the hierarchies of memory, pids and cpu).
fn view(unified: bool, name: &str) -> Result<Box<dyn Cgroup>> {
    let none = Limits::default();
    Ok(match unified {
        true => Box::new(v2::Unified::new(Path::new(""), Path::new(""), name, &none)?),
        false => Box::new(v1::Hierarchies::new(Path::new(""), name, &none)?),
    })
}

impl Step for Cgroups {
    fn check(&mut self, ctx: &mut Ctx) -> Result<()> {
        if let Some(quota) = self.limits.cpu_quota {
            check_cpus(quota)?;
        }
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("stepbox-{}", ctx.id));
        // Root of a user namespace made by someone else (rootless podman's)
        // is that someone to the cgroup tree.
        self.rootless = !ch01_process::step::host_root();
        if self.rootless {
            return self.check_rootless(&name);
        }
        let parent = self.parent.as_deref().unwrap_or(Path::new(DEFAULT_PARENT));
        self.cgroup = Some(if v2::is_unified() {
            Box::new(v2::Unified::new(
                Path::new(""),
                parent,
                &name,
                &self.limits,
            )?)
        } else {
            Box::new(v1::Hierarchies::new(parent, &name, &self.limits)?)
        });
        self.own = true;
        Ok(())
    }

    // ANCHOR: placement
    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        if !self.own {
            warn_without(ctx, self.without.as_deref().unwrap_or(""));
            return Ok(());
        }
        let mut cgroup = self.cgroup.take().expect("found by check()");
        // Created before clone(2): a limit the kernel refuses stops the start
        // before any process exists. Cleanup runs only for steps whose prepare
        // succeeded, so a half-made cgroup is removed here.
        let made = cgroup.create(ctx).and_then(|_| {
            cgroup.set_limits(ctx, &self.limits)?;
            match &self.limits.devices {
                Some(policy) => cgroup.set_devices(ctx, policy),
                None => Ok(()),
            }
        });
        if let Err(e) = made {
            let removed = cgroup.remove(ctx);
            // A rootless start that asked for no limit needs no cgroup: if
            // the delegated subtree would not take one (a controller it
            // lacks, a cgroup that holds processes), it runs without.
            if self.rootless && self.limits.flags().is_empty() && removed.is_ok() {
                warn_without(ctx, &e.msg);
                self.cgroup = Some(cgroup);
                self.own = false;
                return Ok(());
            }
            return Err(match removed {
                Ok(()) => e,
                Err(left) => Error::with_code(e.code, format!("{}; then {}", e.msg, left.msg)),
            });
        }
        self.cgroup = Some(cgroup);
        self.created = true;
        Ok(())
    }

    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        // The child waits for the runtime's Go: it is placed before it runs
        // a single instruction of the command. Every page it touches from now
        // on is charged to the container, every fork(2) counted against
        // pids.max, and the command's children are born inside. Placed after
        // execve(2) instead, the command would run unlimited for a while, and
        // whatever it forked by then would stay outside for good.
        match &self.cgroup {
            Some(cgroup) if self.own => cgroup.add(ctx, child),
            _ => Ok(()),
        }
    }
    // ANCHOR_END: placement

    // ANCHOR: namespace
    fn setup(&self, ctx: &Ctx) -> Result<()> {
        let Some(cgroup) = &self.cgroup else {
            return Ok(());
        };
        // A cgroup namespace is rooted at the cgroup its creator is in *when
        // it is created*. The parent has already moved this process into the
        // container's cgroup (after_clone runs before Go), so here that
        // cgroup becomes the namespace's "/": /proc/self/cgroup shows "/",
        // and the cgroup filesystem mounted below shows only the container's
        // subtree, not the host's. That is also why CLONE_NEWCGROUP is not a
        // clone(2) flag: at clone(2) the child is still in the runtime's cgroup.
        //
        // A rootless container without a cgroup of its own (`own` false) is
        // still in the runtime's: the namespace is rooted there and the
        // mount shows that cgroup, the one whose limits and counts (shared
        // with the caller's other processes) do apply to it. The kernel
        // lets the user namespace's root make both: the cgroup namespace is
        // then its own, and cgroup and cgroup2 may be mounted by whoever has
        // CAP_SYS_ADMIN over the cgroup namespace's user namespace
        // (cgroup_get_tree(), cgroup1_get_tree() in kernel/cgroup/). Nothing
        // in it is writable: the files are root's, or the caller's for a
        // delegated cgroup (then the container has one of its own), and
        // the mount is read-only anyway.
        if self.rootless && !self.cgroupns {
            // Without a cgroup namespace of its own, the kernel mounts a
            // cgroup filesystem only for CAP_SYS_ADMIN over the user
            // namespace that owns the current cgroup namespace: here the
            // host's. Root of a user namespace someone else made (rootless
            // podman's, on a config that lists no cgroup namespace) is
            // refused, so the container gets an empty, read-only directory.
            let flags = nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC
                | nix::mount::MsFlags::MS_RDONLY;
            return mount_inside(ctx, "tmpfs", "/sys/fs/cgroup", flags, Some("mode=755"));
        }
        if self.cgroupns {
            ctx.say(format_args!("unshare(2) CLONE_NEWCGROUP"));
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
                .context("unshare(2) CLONE_NEWCGROUP")?;
        }
        // ch05's setup() ran before this one: "/" is the container's rootfs,
        // /sys its read-only sysfs.
        cgroup.mount_inside(ctx, self.cgroupns)
    }
    // ANCHOR_END: namespace

    // ANCHOR: cleanup
    fn cleanup(&mut self, ctx: &Ctx) -> Result<()> {
        let Some(mut cgroup) = self.cgroup.take().filter(|_| self.created) else {
            return Ok(());
        };
        report_oom(ctx, cgroup.as_ref(), self.limits.memory);
        cgroup.remove(ctx)
    }
    // ANCHOR_END: cleanup

    fn undo(&self, undo: &mut Undo) {
        undo.cgroup = Some(undo_cgroup);
    }

    /// `--gc` also removes the default parent, `stepbox`, when no container
    /// is in it: it is stepbox's own, made by the first start, and kept
    /// meanwhile so that parallel starts never race to make and remove it.
    /// rmdir(2) refuses a cgroup that has children (EBUSY), so a parent in
    /// use stays. A parent given with --cgroup-parent may be someone else's:
    /// it is left alone.
    ///
    /// A caller who is not root has no default parent to remove: theirs is
    /// the cgroup that holds their own, and root's `stepbox` is root's.
    fn gc(&self, ctx: &Ctx) -> Result<Vec<String>> {
        let parent = self.parent.as_deref().unwrap_or(Path::new(DEFAULT_PARENT));
        if parent != Path::new(DEFAULT_PARENT) || !ch01_process::step::host_root() {
            return Ok(Vec::new());
        }
        let mut roots = Vec::new();
        if v2::is_unified() {
            roots.push(PathBuf::from("/sys/fs/cgroup"));
        } else {
            for m in mountinfo()?.into_iter().filter(|m| m.fstype == "cgroup") {
                roots.push(m.mount_point);
            }
        }
        let mut left = Vec::new();
        for dir in roots.iter().map(|r| r.join(parent)) {
            if !dir.is_dir() {
                continue;
            }
            ctx.say(format_args!(
                "rmdir {} (if no container is in it)",
                dir.display()
            ));
            match nix::unistd::unlinkat(None, &dir, nix::unistd::UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT | Errno::EBUSY | Errno::ENOTEMPTY) => {}
                Err(e) => left.push(format!("left the parent cgroup {dir:?}: rmdir(2): {e}")),
            }
        }
        Ok(left)
    }
}

/// `--cgroup-parent`'s default: a cgroup of stepbox's own, below the root.
const DEFAULT_PARENT: &str = "stepbox";

// ANCHOR: undo
/// Removes a cgroup that a killed runtime's record lists (in v1, one of
/// its directories), as [`Cgroup::remove`] would: its child cgroups first,
/// killing what lingers. Only on a cgroup filesystem: a record is root's,
/// but a damaged one must not send rmdir(2) and kill(2) elsewhere.
fn undo_cgroup(ctx: &Ctx, path: &Path) -> Result<()> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    match statfs(path) {
        Err(Errno::ENOENT) => return Ok(()), // never made, or removed already
        Err(e) => return Err(e).context(format!("statfs(2) {path:?}")),
        Ok(fs) if ![CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC].contains(&fs.filesystem_type()) => {
            return Err(Error::runtime(format!(
                "refusing to remove {path:?} as a cgroup: it is not on a cgroup filesystem"
            )))
        }
        Ok(_) => {}
    }
    remove_dir(ctx, path, &kill_all)
}
// ANCHOR_END: undo

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

// ANCHOR: cpus
/// `--cpus` beyond the CPUs this process may run on is refused, as docker
/// does: a quota of 3 CPUs on 2 cannot be used, and is most likely a typo.
fn check_cpus(quota: u64) -> Result<()> {
    let n = usable_cpus()?;
    if quota <= n * CPU_PERIOD {
        return Ok(());
    }
    let cpus = format!("{}.{:05}", quota / CPU_PERIOD, quota % CPU_PERIOD);
    let cpus = cpus.trim_end_matches('0').trim_end_matches('.');
    Err(Error::runtime(format!(
        "--cpus {cpus}: range of CPUs is from 0.01 to {n}.00, as there {} only {n} CPU{} available",
        if n == 1 { "is" } else { "are" },
        if n == 1 { "" } else { "s" },
    )))
}

/// How many CPUs this process may run on: the CPUs in its affinity mask
/// (sched_getaffinity(2)), as docker counts them, so that `taskset` or a
/// cpuset narrows it, rather than the CPUs the machine has.
pub fn usable_cpus() -> Result<u64> {
    // Room for 65536 CPUs: with glibc's cpu_set_t (1024) the call fails
    // with EINVAL on machines that have more.
    let mut mask = vec![0u64; 1024];
    // SAFETY: the kernel writes at most `size` bytes, the length of `mask`,
    // which outlives the call; pid 0 is the calling thread.
    let r = unsafe {
        libc::sched_getaffinity(
            0,
            std::mem::size_of_val(mask.as_slice()),
            mask.as_mut_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(Errno::last()).context("sched_getaffinity(2), to count the usable CPUs");
    }
    Ok(mask.iter().map(|w| u64::from(w.count_ones())).sum())
}
// ANCHOR_END: cpus

// ---- helpers shared by v1.rs and v2.rs ----

// ANCHOR: parent
/// Makes the parent cgroup `root/parent` if missing, and the cgroups on the
/// way to it, from the root down; returns its directory.
///
/// Why a parent of stepbox's own, not the runtime's cgroup: cgroup v2's
/// no-internal-process rule. A cgroup other than the root cannot both hold
/// processes and hand controllers to its children, and a login shell under
/// systemd sits in a session scope (a leaf holding processes), so a
/// container made below the runtime's cgroup could get no controller.
/// runc and crun (with the cgroupfs driver) and docker (`/docker`) place
/// containers from the root instead, in cgroups that hold no process.
///
/// `at_each` runs on the root and then on each cgroup of the path, before
/// the next one is made below it: v2 hands the controllers down there, one
/// level at a time. A cgroup that exists is fine (another runtime may be
/// making the same one at the same moment: EEXIST). Nothing made here is
/// removed afterwards: the parent is stepbox's, shared by its containers.
fn make_parent(
    ctx: &Ctx,
    root: &Path,
    parent: &Path,
    at_each: &mut dyn FnMut(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let mut dir = root.to_path_buf();
    at_each(&dir)?;
    for part in parent.components() {
        dir.push(part);
        ctx.say(format_args!("mkdir {} (if missing; kept)", dir.display()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if !dir.is_dir() {
                    return Err(Error::runtime(format!(
                        "the parent cgroup {:?} exists and is not a directory (a cgroup)",
                        dir
                    )));
                }
            }
            Err(e) => return Err(e).context(format!("making the parent cgroup {dir:?} (mkdir)")),
        }
        at_each(&dir)?;
    }
    Ok(dir)
}
// ANCHOR_END: parent

/// [`make_parent`], then mkdir(2) the container's cgroup `dir` in it. A
/// `--gc` at the same moment may remove the parent (it was empty) between
/// the two, and the mkdir fails with ENOENT: then both are made again.
fn make_in_parent(
    ctx: &Ctx,
    root: &Path,
    parent: &Path,
    dir: &Path,
    at_each: &mut dyn FnMut(&Path) -> Result<()>,
) -> Result<()> {
    let mut attempts = 0;
    loop {
        make_parent(ctx, root, parent, at_each)?;
        ctx.say(format_args!("mkdir {}", dir.display()));
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 5 => attempts += 1,
            made => return made.context(format!("mkdir {}", dir.display())),
        }
    }
}

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

/// The number after `key ` in a flat-keyed file such as memory.events.
fn keyed_value(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Kills everything in the cgroup `dir`. v2's cgroup.kill (Linux 5.14)
/// kills the whole subtree at once, even processes forking while it runs;
/// without it (or in v1, which has no such file), one by one.
fn kill_all(dir: &Path) {
    let killed = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.kill"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"1"));
    if killed.is_err() {
        kill_listed(dir);
    }
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

/// The kernel's largest `pids.max`: PID_MAX_LIMIT, 2^22 on 64-bit machines
/// (a larger value is EINVAL).
const MAX_PIDS: u64 = 1 << 22;

fn parse_pids(s: &str) -> std::result::Result<u64, String> {
    parse_whole(
        s,
        1..=MAX_PIDS,
        "must be at least 1 (leave --pids-limit out for no limit)",
        &format!("the kernel allows at most {MAX_PIDS} processes in a cgroup"),
    )
}

fn parse_shares(s: &str) -> std::result::Result<u64, String> {
    let range = "must be between 2 and 262144 (the default is 1024)";
    parse_whole(s, 2..=262144, range, range)
}

/// A whole number in `range`, with a sign or not. More digits than a u64
/// holds is "too large", like any other value above the range, not "not a
/// whole number".
fn parse_whole(
    s: &str,
    range: std::ops::RangeInclusive<u64>,
    too_small: &str,
    too_large: &str,
) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a whole number"));
    }
    match digits.parse::<u64>() {
        Ok(n) if !negative && range.contains(&n) => Ok(n),
        Ok(n) if negative || n < *range.start() => Err(too_small.to_string()),
        Err(_) if negative => Err(too_small.to_string()),
        _ => Err(format!("{s:?} is too large: {too_large}")),
    }
}

/// The largest `--cpus`, as a quota: ten million CPUs, far beyond any
/// machine (prepare() then refuses more than the CPUs there are).
const MAX_QUOTA: u64 = 10_000_000 * CPU_PERIOD;

/// "0.5" -> 50000 (µs of CPU time per 100000 µs period), rounded to the
/// nearest µs. Decimal digits, computed exactly: no floating point, so that
/// 0.000015 is 2 µs, not whatever its nearest binary fraction gives.
fn parse_cpus(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("{s:?} is not a decimal number (e.g. 0.5 or 2)");
    let t = s.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return Err(bad());
    }
    let zero = whole.bytes().chain(fraction.bytes()).all(|b| b == b'0');
    if negative || zero {
        return Err("must be more than 0 (leave --cpus out for no limit)".into());
    }
    let too_large = || {
        format!(
            "{s:?} is too large: at most {} CPUs",
            MAX_QUOTA / CPU_PERIOD
        )
    };
    let whole = whole.trim_start_matches('0');
    if whole.len() > 12 {
        return Err(too_large());
    }
    // µs: the whole part × 10^5, the first five decimals, and the sixth
    // rounds (half up).
    let whole: u64 = whole.parse().unwrap_or(0);
    let mut micros = fraction.bytes().chain(std::iter::repeat(b'0')).take(6);
    let mut part = 0;
    for b in micros.by_ref().take(5) {
        part = part * 10 + u64::from(b - b'0');
    }
    let round_up = micros.next().is_some_and(|b| b >= b'5');
    let quota = whole * CPU_PERIOD + part + u64::from(round_up);
    if quota > MAX_QUOTA {
        return Err(too_large());
    }
    // The kernel refuses quotas below 1 ms per period.
    if quota < 1000 {
        return Err("must be at least 0.01".into());
    }
    Ok(quota)
}

/// Longest `--cgroup-parent`, in bytes: far more than any real one, far less
/// than PATH_MAX once /sys/fs/cgroup/<hierarchy>/ and the container's name
/// are added.
const MAX_PARENT_LEN: usize = 1024;

// ANCHOR: parse_parent
/// `--cgroup-parent`: a path from the cgroup root (a leading / is allowed),
/// returned relative to it. Only plain names: no `.`, `..` or empty
/// component (nothing may lead outside the cgroup tree, or back up it), no
/// control character, no cgroup interface file's name (`cgroup.procs`,
/// `memory.max`: those exist in every cgroup, or appear when a controller
/// is enabled).
pub fn parse_cgroup_parent(s: &str) -> std::result::Result<PathBuf, String> {
    if s.len() > MAX_PARENT_LEN {
        return Err(format!(
            "is too long: {} bytes, at most {MAX_PARENT_LEN}",
            s.len()
        ));
    }
    let bad = |why: String| {
        format!(
            "{s:?} is not a cgroup path: {why} \
             (expected names separated by /, e.g. stepbox or /ci/stepbox)"
        )
    };
    if s.chars().any(char::is_control) {
        return Err(bad("it holds a control character".into()));
    }
    let rel = s.strip_prefix('/').unwrap_or(s);
    if rel.is_empty() {
        return Err(bad("it names the root itself, not a cgroup below it".into()));
    }
    for part in rel.split('/') {
        match part {
            "" => return Err(bad("it has an empty component (// or a trailing /)".into())),
            "." | ".." => return Err(bad(format!("it has a {part:?} component"))),
            _ if part.len() > 255 => {
                return Err(bad(format!(
                    "a component is {} bytes long, at most 255",
                    part.len()
                )))
            }
            _ if is_interface_file(part) => {
                return Err(bad(format!(
                    "{part:?} is the name of a cgroup interface file"
                )))
            }
            _ => {}
        }
    }
    Ok(PathBuf::from(rel))
}
// ANCHOR_END: parse_parent

/// Names the kernel uses for the files in a cgroup (v1 and v2): the
/// controller's name, a dot, a setting; plus three v1 files without a dot.
fn is_interface_file(name: &str) -> bool {
    const PREFIXES: [&str; 17] = [
        "cgroup",
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "memsw",
        "pids",
        "io",
        "blkio",
        "hugetlb",
        "rdma",
        "misc",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "perf_event",
    ];
    matches!(name, "tasks" | "notify_on_release" | "release_agent")
        || name
            .split_once('.')
            .is_some_and(|(prefix, _)| PREFIXES.contains(&prefix))
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
        assert_eq!(parse_shares("262144"), Ok(262144));
    }

    #[test]
    fn overflowing_numbers_are_too_large() {
        for s in ["99999999999999999999999", "18446744073709551616", "4194305"] {
            let e = parse_pids(s).unwrap_err();
            assert!(e.contains("too large"), "{s}: {e}");
        }
        assert_eq!(parse_pids("4194304"), Ok(4194304));
        assert!(parse_pids("-99999999999999999999999")
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse_pids("twenty")
            .unwrap_err()
            .contains("not a whole number"));
        for s in ["99999999999999999999999", "262145"] {
            let e = parse_shares(s).unwrap_err();
            assert!(e.contains("too large"), "{s}: {e}");
        }
        for s in ["1e400", "99999999999999999999", "10000000.00001"] {
            let e = parse_cpus(s).unwrap_err();
            assert!(
                e.contains("too large") || e.contains("not a decimal"),
                "{s}: {e}"
            );
        }
        assert!(parse_cpus("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(parse_cpus("10000000"), Ok(MAX_QUOTA));
    }

    #[test]
    fn cpus_are_exact_decimals() {
        assert_eq!(parse_cpus("0.012345"), Ok(1235));
        assert_eq!(parse_cpus("0.0123449999"), Ok(1234));
        assert_eq!(parse_cpus(".5"), Ok(50000));
        assert_eq!(parse_cpus("1."), Ok(100000));
        assert_eq!(parse_cpus("0.00999999"), Ok(1000));
        assert!(parse_cpus("0.000001")
            .unwrap_err()
            .contains("at least 0.01"));
        assert!(parse_cpus("-0").unwrap_err().contains("more than 0"));
        assert!(parse_cpus(".").is_err());
        assert!(parse_cpus("inf").is_err());
    }

    #[test]
    fn cgroup_parents() {
        let ok = |s: &str| parse_cgroup_parent(s).map(|p| p.display().to_string());
        assert_eq!(ok("stepbox"), Ok("stepbox".into()));
        assert_eq!(ok("/ci/stepbox"), Ok("ci/stepbox".into()));
        assert_eq!(ok("a b"), Ok("a b".into()));
        for s in [
            "",
            "/",
            "//x",
            "x/",
            "x//y",
            "..",
            "x/../y",
            "./x",
            "x\ny",
            "\u{1b}[31m",
            "cgroup.procs",
            "x/memory.max",
            "tasks",
        ] {
            let e = parse_cgroup_parent(s).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(parse_cgroup_parent(&"x".repeat(256)).is_err());
        assert!(parse_cgroup_parent(&"x/".repeat(600))
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn usable_cpus_is_the_affinity_mask() {
        let set = nix::sched::sched_getaffinity(Pid::from_raw(0)).unwrap();
        let n = (0..nix::sched::CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap())
            .count() as u64;
        assert_eq!(usable_cpus().unwrap(), n);
        assert!(check_cpus(n * CPU_PERIOD).is_ok());
        let e = check_cpus(n * CPU_PERIOD + 1).unwrap_err().msg;
        assert!(
            e.contains(&format!("range of CPUs is from 0.01 to {n}.00")),
            "{e}"
        );
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
