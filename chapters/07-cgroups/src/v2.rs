//! cgroup v2: one tree, mounted at /sys/fs/cgroup, every controller in it.
//!
//! A controller is available to a cgroup's children only once the parent
//! lists it in its `cgroup.subtree_control`. And the "no internal processes"
//! rule: a cgroup (other than the root) cannot both hold processes and hand
//! controllers to its children; a process lives in a leaf. Hence the parent
//! cgroup reached from the root (see `make_parent` in lib.rs): the
//! controllers are handed down from the root, one level at a time, through
//! cgroups that hold no process.

use crate::{
    flag_for, keyed_value, kill_all, remove_dir, write, BpfInsn, Cgroup, DevicePolicy, Limits,
    CPU_PERIOD,
};
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

/// What the caller may do with the cgroup `rel` (a path from the root),
/// as access(2) answers with the caller's ids: for a caller who is not
/// root, whether it is theirs (rootless.rs).
pub fn access(rel: &Path) -> crate::rootless::Access {
    use nix::fcntl::AtFlags;
    use nix::unistd::{faccessat, AccessFlags};
    let dir = Path::new(ROOT).join(rel);
    let writable = |p: &Path| faccessat(None, p, AccessFlags::W_OK, AtFlags::AT_EACCESS).is_ok();
    crate::rootless::Access {
        exists: dir.join("cgroup.procs").exists(),
        dir: writable(&dir),
        procs: writable(&dir.join("cgroup.procs")),
    }
}

pub struct Unified {
    /// Where the cgroup2 filesystem is mounted: the cgroup root.
    root: PathBuf,
    /// Relative to the root: where making cgroups starts. The root itself
    /// for root; for anyone else, a cgroup delegated to them (rootless.rs).
    base: PathBuf,
    /// `--cgroup-parent`, relative to `base`.
    parent: PathBuf,
    /// /sys/fs/cgroup/BASE/PARENT/stepbox-<id>
    dir: PathBuf,
    limits: Limits,
    created: bool,
}

/// The controllers every container gets, limited or not (so that it can
/// read its own memory.current, pids.current, cpu.stat).
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

impl Unified {
    pub fn new(base: &Path, parent: &Path, name: &str, limits: &Limits) -> Result<Self> {
        let mounts = crate::mountinfo()?;
        mounts
            .iter()
            .rev() // the last mount on a path is the visible one
            .find(|m| m.fstype == "cgroup2" && m.mount_point == Path::new(ROOT))
            .ok_or_else(|| Error::runtime(format!("no cgroup2 filesystem is mounted on {ROOT}")))?;
        let root = PathBuf::from(ROOT);
        Ok(Unified {
            // Component by component: join("") would add a trailing "/".
            dir: root
                .iter()
                .chain(base)
                .chain(parent)
                .chain([name.as_ref()])
                .collect(),
            root,
            base: base.to_path_buf(),
            parent: parent.to_path_buf(),
            limits: limits.clone(),
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
        for part in self.base.components().chain(self.parent.components()) {
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
                // In a delegated subtree: whoever owns the cgroups above
                // did not hand this controller down.
                let hint = match self.base.as_os_str().is_empty() {
                    true => "",
                    false => " (it must be in cgroup.subtree_control of every cgroup above)",
                };
                return Err(Error::runtime(format!(
                    "the {c} controller is not available in {dir:?} (its cgroup.controllers \
                     lists: {}), so {} cannot be applied{hint}",
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
            // Not the caller's (rootless.rs): fine for the controllers
            // that only count, not for one that a flag needs.
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let needed: Vec<&str> = CONTROLLERS
                    .into_iter()
                    .filter(|c| self.limits.needs(c) && missing.contains(&format!("+{c}")))
                    .collect();
                match needed.first() {
                    None => Ok(()),
                    Some(c) => Err(Error::runtime(format!(
                        "the {c} controller is not enabled in {file:?}, which is not yours, \
                         so {} cannot be applied; its owner can enable it (+{c})",
                        flag_for(c)
                    ))),
                }
            }
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
        let base: PathBuf = self.root.iter().chain(&self.base).collect();
        crate::make_in_parent(ctx, &base, &self.parent, &self.dir, &mut |dir| {
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
            // No swap: the limit is the container's whole memory (unless
            // `memory_swap` gives more: v2 limits swap alone, the rest).
            // The file exists only if the kernel accounts swap.
            if dir.join("memory.swap.max").exists() {
                let swap = limits
                    .memory_swap
                    .map_or(0, |total| total.saturating_sub(bytes));
                write(ctx, dir, "memory.swap.max", &swap.to_string(), None)?;
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

    // ANCHOR: v2_devices
    fn set_devices(&self, ctx: &Ctx, policy: &DevicePolicy) -> Result<()> {
        // cgroup v2 has no devices.allow: the kernel runs the eBPF programs
        // attached to the cgroup (and to its ancestors: all must allow).
        let program = load_device_program(ctx, &policy.program)?;
        let dir = std::fs::File::open(&self.dir)
            .context(format!("opening the cgroup {}", self.dir.display()))?;
        ctx.say(format_args!(
            "bpf(2) BPF_PROG_ATTACH BPF_CGROUP_DEVICE BPF_F_ALLOW_MULTI (to {})",
            self.dir.display()
        ));
        // BPF_F_ALLOW_MULTI, as runc: a cgroup below this one (the
        // container's own) may add programs of its own, which can only deny
        // more, never allow more. The attachment holds a reference to the
        // program: its fd is closed on return, and rmdir(2) of the cgroup
        // detaches and frees it. Nothing to undo, nothing to record.
        let attr = ProgAttach {
            target_fd: fd_u32(&dir),
            attach_bpf_fd: fd_u32(&program),
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: BPF_F_ALLOW_MULTI,
            replace_bpf_fd: 0,
        };
        bpf(BPF_PROG_ATTACH, &attr).context(format!(
            "attaching the device program to the cgroup {} (bpf(2) BPF_PROG_ATTACH)",
            self.dir.display()
        ))?;
        Ok(())
    }
    // ANCHOR_END: v2_devices

    fn add(&self, ctx: &Ctx, pid: Pid) -> Result<()> {
        // lab: begin write the pid into the container cgroup's cgroup.procs (v2)
        write(ctx, &self.dir, "cgroup.procs", &pid.to_string(), None)
        // lab: end
    }

    fn mount_inside(&self, ctx: &Ctx, _own_namespace: bool) -> Result<()> {
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

// ---- bpf(2), by hand: the two commands chapter 9's device program needs ----

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// `union bpf_attr` for BPF_PROG_LOAD, up to the fields used here. A
/// shorter attr than the kernel's is fine: it reads the rest as zeros.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn fd_u32(fd: &impl std::os::fd::AsRawFd) -> u32 {
    fd.as_raw_fd() as u32
}

/// bpf(2): `cmd` with `attr`; the kernel's return value (a new fd for
/// BPF_PROG_LOAD, 0 for BPF_PROG_ATTACH).
fn bpf<T>(cmd: libc::c_int, attr: &T) -> std::result::Result<libc::c_long, Errno> {
    // SAFETY: `attr`, a #[repr(C)] prefix of union bpf_attr for `cmd`, is valid for
    // size_of::<T>() bytes, and the pointers in it to memory that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    match r {
        -1 => Err(Errno::last()),
        n => Ok(n),
    }
}

/// BPF_PROG_LOAD: the verifier checks `insns` (every path ends in exit, r0
/// is set there, the context is read only where and as wide as allowed)
/// and the kernel returns a file descriptor for the program. If it refuses,
/// the program is loaded again with the verifier's log, whose last line
/// says why.
fn load_device_program(ctx: &Ctx, insns: &[BpfInsn]) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    ctx.say(format_args!(
        "bpf(2) BPF_PROG_LOAD BPF_PROG_TYPE_CGROUP_DEVICE ({} instructions)",
        insns.len()
    ));
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    // The license matters only to helpers reserved to GPL programs; this
    // program calls no helper.
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"stepbox_dev");
    let load = |log: &mut [u8]| {
        let attr = ProgLoad {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            // No log: no pointer at all (the kernel refuses a buffer
            // without a level).
            log_buf: match log.is_empty() {
                true => 0,
                false => log.as_mut_ptr() as u64,
            },
            kern_version: 0,
            prog_flags: 0,
            prog_name: name,
        };
        bpf(BPF_PROG_LOAD, &attr)
    };
    let fd = match load(&mut []) {
        Ok(fd) => fd,
        Err(e) => {
            let mut log = vec![0u8; 1 << 16];
            let _ = load(&mut log);
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let log = String::from_utf8_lossy(&log[..end]);
            let why = log.lines().rev().find(|l| !l.trim().is_empty());
            return Err(Error::runtime(format!(
                "loading the device program (bpf(2) BPF_PROG_LOAD): {}{}",
                e.desc(),
                why.map(|w| format!("; the verifier says: {}", w.trim()))
                    .unwrap_or_default()
            )));
        }
    };
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}
