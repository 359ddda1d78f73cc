//! Masked and read-only paths, as docker lists them and runc applies them.
//!
//! /proc and /sys are the kernel's own filesystems, and most of what they
//! show is not namespaced: a container that reads /proc/kcore reads the
//! host's memory, and a container that writes /proc/sysrq-trigger reboots
//! the host. Docker hides some of these paths ("masked": an empty file or
//! directory mounted over them) and makes others read-only.
//!
//! The lists are moby's (`defaultLinuxMaskedPaths` and `ReadonlyPaths` in
//! `daemon/pkg/oci/defaults.go`, moby master of August 2026, commit
//! b985e2313a86); how they are applied is runc's (`readonlyPath` and
//! `maskPaths` in `libcontainer/rootfs_linux.go`, called from
//! `standard_init_linux.go`, runc master of August 2026, commit
//! 76d9cf5da568): read-only paths first, then masks.
//!
//! What runc does that this file does not: runc opens each masked path
//! `O_PATH` and mounts onto `/proc/self/fd/N`, so that the file it looked
//! at is the file it mounts on, and it bind-mounts the first masking tmpfs
//! over the next masked directories instead of making one tmpfs each. Here
//! the paths are named: the container's process is the only one in its
//! mount namespace and nothing of the image has run yet, so no one can
//! swap a path between the stat(2) and the mount(2) (see
//! [`mask_and_protect`]); and docker's lists have at most three
//! directories.

// ANCHOR: lists
/// docker's masked paths (moby `defaultLinuxMaskedPaths`, in moby's
/// order), each with what it would give the container. To these, moby
/// adds every CPU's `thermal_throttle` directory ([`thermal_throttle`]).
pub const MASKED: &[&str] = &[
    // ACPI state of the host's hardware, and on old kernels controls (wakeup, video).
    "/proc/acpi",
    // The host's sound cards and their state: what plays and records, host-wide.
    "/proc/asound",
    // Per-CPU interrupt counts of the whole host: a side channel (GHSA-6fw5-f8r9-fgfm).
    "/proc/interrupts",
    // The host's physical memory as an ELF core file (readable with CAP_SYS_RAWIO).
    "/proc/kcore",
    // Keys in the kernel's keyrings: keyrings are not namespaced.
    "/proc/keys",
    // Latency records of every process on the host (LATENCYTOP); a write clears them.
    "/proc/latency_stats",
    // The scheduler's state: every task on the host, its name and pid.
    "/proc/sched_debug",
    // The host's SCSI devices, and on old kernels a write that adds or removes one.
    "/proc/scsi",
    // Every pending timer on the host, with the kernel function that set it.
    "/proc/timer_list",
    // Who sets timers, host-wide, with pids and commands (kernels before 4.11).
    "/proc/timer_stats",
    // RAPL energy counters: the CPU's power use, a side channel (CVE-2020-8694, GHSA-jq35-85cj-fj4p).
    "/sys/devices/virtual/powercap",
    // The host's firmware: ACPI tables, DMI data, EFI variables (some writable).
    "/sys/firmware",
];

/// docker's read-only paths (moby `ReadonlyPaths`), each with what writing
/// it would give the container.
pub const READONLY: &[&str] = &[
    // PCI and USB devices of the host: a write changes a device's config space.
    "/proc/bus",
    // Filesystem tunables, host-wide (nfsd's exports, ext4, xfs, jbd2).
    "/proc/fs",
    // Which CPUs serve each of the host's interrupts (smp_affinity).
    "/proc/irq",
    // Sysctls, most of them host-wide: kernel.core_pattern runs a program as host root.
    "/proc/sys",
    // One write reboots, crashes or freezes the host (magic SysRq).
    "/proc/sysrq-trigger",
];
// ANCHOR_END: lists

use ch01_process::{Context, Ctx, Error, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, stat, FileStat, SFlag};
use nix::sys::statvfs::{statvfs, FsFlags};

/// The source of every file mask.
const DEV_NULL: &str = "/dev/null";

/// The data of the tmpfs over a masked directory, as runc gives it (since
/// runc commit e57a7a4c8): one block and one inode at most, so that even a
/// writable one could not use the host's memory. Some kernels (Ubuntu's
/// 5.4) refuse `nr_inodes=1` with EINVAL; runc then tries
/// [`MASK_TMPFS_FALLBACK`].
const MASK_TMPFS: &str = "nr_blocks=1,nr_inodes=1";
const MASK_TMPFS_FALLBACK: &str = "nr_blocks=1,nr_inodes=2";

// ANCHOR: mask_and_protect
/// In the container, after chapter 5's mounts: a read-only bind over the
/// read-only paths, then /dev/null over the masked files and an empty
/// read-only tmpfs over the masked directories. A path this kernel does
/// not have is skipped.
///
/// The paths are resolved in the container's own root: "/" is the
/// container's by now (chapter 5's pivot_root(2)), and so are its /proc
/// and /sys. A symlink planted by the image cannot redirect a mount here,
/// as it could under a path of the rootfs: /proc and /sys are the fresh
/// proc and sysfs that chapter 5 mounted, the kernel's own filesystems,
/// which nothing from the image can write into.
pub fn mask_and_protect(ctx: &Ctx) -> Result<()> {
    for path in READONLY {
        read_only(ctx, path)?;
    }
    check_dev_null()?;
    for path in MASKED {
        mask(ctx, path)?;
    }
    for path in thermal_throttle() {
        mask(ctx, &path)?;
    }
    Ok(())
}
// ANCHOR_END: mask_and_protect

/// Paths to mask and to make read-only, given by a configuration
/// (chapter 12's `maskedPaths` and `readonlyPaths`) instead of docker's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paths {
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
}

/// [`mask_and_protect`] with these lists.
pub fn mask_and_protect_these(ctx: &Ctx, paths: &Paths) -> Result<()> {
    for path in &paths.readonly {
        read_only(ctx, path)?;
    }
    check_dev_null()?;
    for path in &paths.masked {
        mask(ctx, path)?;
    }
    Ok(())
}

// ANCHOR: read_only
/// runc's `readonlyPath`: bind the path onto itself, which makes it a
/// mount of its own, then remount that bind read-only.
fn read_only(ctx: &Ctx, path: &str) -> Result<()> {
    match stat(path) {
        Ok(_) => {}
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e).context(format!("making {path} read-only: stat(2) {path}")),
    }
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    ctx.say(format_args!("mount(2) {path} on itself, {}", names(bind)));
    mount(Some(path), path, None::<&str>, bind, None::<&str>).context(format!(
        "making {path} read-only: mount(2) {path} on itself, {}",
        names(bind)
    ))?;
    // The remount sets the mount's flags to exactly these: whatever of
    // nosuid, nodev, noexec the mount had and is left out is cleared, or
    // refused (EPERM) where the kernel locked it (a mount inherited by a
    // user namespace). So read them from the mount, as runc does. The
    // atime flags need no such care: a remount that names none keeps the
    // mount's own.
    let have = statvfs(path).context(format!("making {path} read-only: statvfs(2) {path}"))?;
    let flags = remount_read_only(have.flags());
    ctx.say(format_args!("mount(2) {path} again, {}", names(flags)));
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>).context(format!(
        "making {path} read-only: mount(2) {path}, {}",
        names(flags)
    ))
    // MS_REMOUNT changes the top mount only: a mount below the path (as
    // binfmt_misc on the host's /proc/sys/fs/binfmt_misc) would stay
    // writable. Chapter 5's /proc is fresh and has none; runc has the
    // same limit (mount_setattr(2) AT_RECURSIVE would lift it).
}

/// The flags of the read-only remount: MS_BIND|MS_REMOUNT|MS_RDONLY, and
/// those of nosuid, nodev, noexec that the mount already has (from
/// statvfs(2)'s `f_flag`).
pub fn remount_read_only(have: FsFlags) -> MsFlags {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if have.contains(st) {
            flags |= ms;
        }
    }
    flags
}
// ANCHOR_END: read_only

// ANCHOR: mask
/// runc's `maskPaths`: /dev/null over a file, an empty read-only tmpfs
/// over a directory; skipped if the path is not there.
fn mask(ctx: &Ctx, path: &str) -> Result<()> {
    let st = match stat(path) {
        Ok(st) => st,
        // ENOTDIR: a component of the path is a file on this kernel.
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e).context(format!("masking {path}: stat(2) {path}")),
    };
    if is_dir(&st) {
        let flags = MsFlags::MS_RDONLY;
        ctx.say(format_args!(
            "mount(2) tmpfs on {path}, {} ({MASK_TMPFS})",
            names(flags)
        ));
        let tmpfs = |data| mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some(data));
        match tmpfs(MASK_TMPFS) {
            Err(Errno::EINVAL) => {
                ctx.say(format_args!(
                    "mount(2) tmpfs on {path}, {} ({MASK_TMPFS_FALLBACK})",
                    names(flags)
                ));
                tmpfs(MASK_TMPFS_FALLBACK)
            }
            done => done,
        }
        .context(format!(
            "masking {path}: mount(2) tmpfs on {path}, {}",
            names(flags)
        ))
    } else {
        let flags = MsFlags::MS_BIND;
        ctx.say(format_args!(
            "mount(2) {DEV_NULL} on {path}, {}",
            names(flags)
        ));
        mount(Some(DEV_NULL), path, None::<&str>, flags, None::<&str>).context(format!(
            "masking {path}: mount(2) {DEV_NULL} on {path}, {}",
            names(flags)
        ))
    }
}
// ANCHOR_END: mask

/// runc checks that the container's /dev/null is the null device before it
/// mounts it over anything (since CVE-2025-31133): a /dev/null that is
/// really a symlink to, say, /proc/sys/kernel/core_pattern would put a
/// writable host file where a mask should be. Chapter 5 made this
/// /dev/null itself, in a tmpfs of its own, so the check always passes
/// here; it costs one stat(2).
fn check_dev_null() -> Result<()> {
    let st = stat(DEV_NULL).context(format!("masking paths: stat(2) {DEV_NULL}"))?;
    if !is_null_device(st.st_mode, st.st_rdev) {
        return Err(Error::runtime(format!(
            "masking paths: {DEV_NULL} is not the null device (character 1:3)"
        )));
    }
    Ok(())
}

/// A character device 1:3, from stat(2)'s `st_mode` and `st_rdev`.
pub fn is_null_device(mode: libc::mode_t, rdev: libc::dev_t) -> bool {
    mode & SFlag::S_IFMT.bits() == SFlag::S_IFCHR.bits() && rdev == makedev(1, 3)
}

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
}

/// moby's other masked paths: `/sys/devices/system/cpu/cpuN/thermal_throttle`
/// of every possible CPU (a thermal side channel, GHSA-6fw5-f8r9-fgfm). moby
/// reads /sys/devices/system/cpu/possible and, if it cannot, takes CPUs 0
/// to the number of CPUs; so does this. Those this machine does not have
/// are skipped by [`mask`], as moby keeps only those that exist.
pub fn thermal_throttle() -> Vec<String> {
    let cpus = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|text| possible_cpus(&text))
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..=n as u32).collect()
        });
    cpus.into_iter()
        .map(|cpu| format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"))
        .collect()
}

/// The kernel's CPU list format (`0`, `0-3`, `0-3,8-11`), as in
/// /sys/devices/system/cpu/possible. None if it is not one, or names more
/// CPUs than a kernel can have (CONFIG_NR_CPUS is at most 8192).
pub fn possible_cpus(text: &str) -> Option<Vec<u32>> {
    const MAX: usize = 8192;
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let n = part.parse::<u32>().ok()?;
                (n, n)
            }
        };
        if first > last || (last - first) as usize >= MAX - cpus.len() {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// `MS_BIND|MS_REC`: the names of the flags, what kind of mount first,
/// then what it sets; bits without a name here in hex.
pub fn names(flags: MsFlags) -> String {
    const NAMES: [(MsFlags, &str); 7] = [
        (MsFlags::MS_BIND, "MS_BIND"),
        (MsFlags::MS_REC, "MS_REC"),
        (MsFlags::MS_REMOUNT, "MS_REMOUNT"),
        (MsFlags::MS_RDONLY, "MS_RDONLY"),
        (MsFlags::MS_NOSUID, "MS_NOSUID"),
        (MsFlags::MS_NODEV, "MS_NODEV"),
        (MsFlags::MS_NOEXEC, "MS_NOEXEC"),
    ];
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, name)| name.to_string())
        .collect();
    let known = NAMES.iter().fold(MsFlags::empty(), |all, (f, _)| all | *f);
    let rest = flags.bits() & !known.bits();
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        out.push("0".into());
    }
    out.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn remount_keeps_the_flags_the_mount_has() {
        let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        assert_eq!(remount_read_only(FsFlags::empty()), base);
        // chapter 5's /proc: nosuid, nodev, noexec, relatime.
        let proc =
            FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC | FsFlags::ST_RELATIME;
        assert_eq!(
            remount_read_only(proc),
            base | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
        );
        // Only those three are carried over: atime is kept by the kernel,
        // and read-only is set anyway.
        let other = FsFlags::ST_RDONLY | FsFlags::ST_NOATIME | FsFlags::ST_SYNCHRONOUS;
        assert_eq!(remount_read_only(other), base);
        assert_eq!(
            remount_read_only(FsFlags::ST_NODEV),
            base | MsFlags::MS_NODEV
        );
    }

    #[test]
    fn flag_names() {
        assert_eq!(names(MsFlags::MS_BIND), "MS_BIND");
        assert_eq!(names(MsFlags::MS_REC | MsFlags::MS_BIND), "MS_BIND|MS_REC");
        assert_eq!(
            names(remount_read_only(FsFlags::ST_NOSUID | FsFlags::ST_NOEXEC)),
            "MS_BIND|MS_REMOUNT|MS_RDONLY|MS_NOSUID|MS_NOEXEC"
        );
        assert_eq!(names(MsFlags::empty()), "0");
        assert_eq!(
            names(MsFlags::MS_RDONLY | MsFlags::MS_SYNCHRONOUS),
            "MS_RDONLY|0x10"
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(possible_cpus("0\n"), Some(vec![0]));
        assert_eq!(possible_cpus("0-1\n"), Some(vec![0, 1]));
        assert_eq!(possible_cpus("0-2,8,10-11"), Some(vec![0, 1, 2, 8, 10, 11]));
        for bad in [
            "",
            "\n",
            "a",
            "0-",
            "-1",
            "3-1",
            "0,,1",
            "0-4294967295",
            "1 2",
        ] {
            assert_eq!(possible_cpus(bad), None, "{bad:?}");
        }
        assert_eq!(possible_cpus("0-8191").map(|v| v.len()), Some(8192));
        assert_eq!(possible_cpus("0-8191,9000"), None);
        assert_eq!(possible_cpus("0-8192"), None);
    }

    #[test]
    fn null_device() {
        let chr = SFlag::S_IFCHR.bits() | 0o666;
        assert!(is_null_device(chr, makedev(1, 3)));
        assert!(!is_null_device(chr, makedev(1, 5))); // /dev/zero
        assert!(!is_null_device(
            SFlag::S_IFBLK.bits() | 0o666,
            makedev(1, 3)
        ));
        assert!(!is_null_device(SFlag::S_IFREG.bits() | 0o666, 0));
    }

    #[test]
    fn lists_are_proc_and_sys_paths() {
        let all: Vec<&str> = MASKED.iter().chain(READONLY).copied().collect();
        let unique: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "a path is in both lists, or twice");
        for path in all {
            assert!(
                path.starts_with("/proc/") || path.starts_with("/sys/"),
                "{path}"
            );
            assert!(!path.ends_with('/') && !path.contains("/../"), "{path}");
        }
        assert!(thermal_throttle()
            .iter()
            .all(|p| p.starts_with("/sys/devices/system/cpu/cpu")
                && p.ends_with("/thermal_throttle")));
    }

    /// Mount points under /proc and /sys, from a mountinfo.
    fn proc_and_sys_mounts() -> Vec<String> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        info.lines()
            .filter_map(|line| line.split(' ').nth(4))
            .filter(|m| m.starts_with("/proc") || m.starts_with("/sys"))
            .map(String::from)
            .collect()
    }

    /// What each exit code of [`in_private_namespace`] means; and 30 + i:
    /// `MASKED[i]` was there and still shows something; 50 + i:
    /// `READONLY[i]` is not a read-only mount with nosuid, nodev, noexec.
    const CODES: &[(i32, &str)] = &[
        (1, "unshare(2) CLONE_NEWNS failed"),
        (2, "making / private failed"),
        (3, "mounting a fresh proc on /proc failed"),
        (10, "mask_and_protect returned an error"),
        (
            11,
            "no masked file and no masked directory exist on this kernel: nothing to check",
        ),
        (13, "/sys/firmware is writable"),
        (
            18,
            "opening /proc/sys/kernel/hostname for writing did not fail with EROFS",
        ),
        (
            19,
            "opening /proc/sysrq-trigger for writing did not fail with EROFS",
        ),
        (99, "the child panicked"),
    ];

    /// Runs in the forked child: a mount namespace of its own, private,
    /// with a fresh /proc; then mask_and_protect, then checks. Returns
    /// the exit code.
    fn in_private_namespace(ctx: &Ctx) -> i32 {
        use nix::fcntl::{open, OFlag};
        use nix::sched::{unshare, CloneFlags};
        use nix::sys::stat::Mode;
        use std::io::Read;

        if unshare(CloneFlags::CLONE_NEWNS).is_err() {
            return 1;
        }
        // Without this, every mount below would propagate to the host's
        // mount namespace wherever / is shared.
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        if mount(None::<&str>, "/", None::<&str>, private, None::<&str>).is_err() {
            return 2;
        }
        // A fresh proc, as chapter 5's (nosuid, nodev, noexec), with no
        // submounts. /sys stays the host's, seen from this namespace only.
        let nsn = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if mount(Some("proc"), "/proc", Some("proc"), nsn, None::<&str>).is_err() {
            return 3;
        }
        // The masked paths this kernel has (e.g. no /proc/kcore without
        // CONFIG_PROC_KCORE), and which of them are directories.
        let present: Vec<(usize, bool)> = MASKED
            .iter()
            .enumerate()
            .filter_map(|(i, p)| std::fs::metadata(p).ok().map(|m| (i, m.is_dir())))
            .collect();
        if !present.iter().any(|(_, dir)| *dir) || !present.iter().any(|(_, dir)| !*dir) {
            return 11;
        }

        if mask_and_protect(ctx).is_err() {
            return 10;
        }

        for &(i, dir) in &present {
            let hidden = if dir {
                std::fs::read_dir(MASKED[i]).is_ok_and(|mut d| d.next().is_none())
            } else {
                let mut byte = [0u8; 1];
                std::fs::File::open(MASKED[i])
                    .and_then(|mut f| f.read(&mut byte))
                    .is_ok_and(|n| n == 0)
            };
            if !hidden {
                return 30 + i as i32;
            }
        }
        if std::path::Path::new("/sys/firmware").is_dir() {
            // A tmpfs of our own, in our own namespace: creating a file
            // in it would touch nothing of the host even if it worked.
            let made = open(
                "/sys/firmware/x",
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            );
            match made {
                Err(Errno::EROFS) => {}
                Ok(fd) => {
                    let _ = nix::unistd::close(fd);
                    return 13;
                }
                Err(_) => return 13,
            }
        }

        // Before anything opens a /proc/sys file or sysrq-trigger for
        // writing, make sure their mounts are read-only: these are the
        // host's files (the same proc, in the same pid namespace).
        let kept = FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC;
        for (i, path) in READONLY.iter().enumerate() {
            match statvfs(*path) {
                Ok(s) if s.flags().contains(FsFlags::ST_RDONLY | kept) => {}
                Err(Errno::ENOENT) => {}
                _ => return 50 + i as i32,
            }
        }
        // Open only, never write: if an open succeeds, close it at once.
        // (No /proc/sysrq-trigger without CONFIG_MAGIC_SYSRQ: nothing to
        // protect then.)
        for (path, code) in [
            ("/proc/sys/kernel/hostname", 18),
            ("/proc/sysrq-trigger", 19),
        ] {
            // The file's own mount, once more: never open for writing a
            // file that is not on a read-only mount.
            match statvfs(path) {
                Ok(s) if s.flags().contains(FsFlags::ST_RDONLY) => {}
                Err(Errno::ENOENT) if code == 19 => continue,
                _ => return code,
            }
            match open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
                Err(Errno::EROFS) => {}
                Ok(fd) => {
                    let _ = nix::unistd::close(fd);
                    return code;
                }
                Err(_) => return code,
            }
        }
        0
    }

    #[test]
    fn masks_and_protects_in_a_mount_namespace_of_its_own() {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};

        if !nix::unistd::geteuid().is_root() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("this test needs root (CI=true: a skip is a failure)");
            }
            eprintln!("SKIPPED: masks_and_protects_in_a_mount_namespace_of_its_own needs root");
            return;
        }
        for path in MASKED.iter().chain(READONLY) {
            if !std::path::Path::new(path).exists() {
                eprintln!("note: {path} is not on this kernel: not checked");
            }
        }
        let ctx = Ctx::new("test", false);
        let before = proc_and_sys_mounts();
        // The child runs only in_private_namespace (syscalls, and
        // allocation, which glibc makes safe after fork(2) in a threaded
        // process) and ends with _exit(2).
        // SAFETY: it never returns into the test harness's code.
        let child = match unsafe { fork() }.expect("fork(2)") {
            ForkResult::Child => {
                let code = std::panic::catch_unwind(|| in_private_namespace(&ctx)).unwrap_or(99);
                // SAFETY: _exit(2) ends the child at once; see above.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => child,
        };
        let status = waitpid(child, None).expect("waitpid(2)");
        let after = proc_and_sys_mounts();
        assert_eq!(
            before, after,
            "a mount of the child reached the host's namespace"
        );
        match status {
            WaitStatus::Exited(_, 0) => {}
            WaitStatus::Exited(_, code) => {
                let why = match CODES.iter().find(|(c, _)| *c == code) {
                    Some((_, why)) => why.to_string(),
                    None if (30..50).contains(&code) => match MASKED.get(code as usize - 30) {
                        Some(path) => format!("{path} is still visible after masking"),
                        None => "unknown exit code".into(),
                    },
                    None => match READONLY.get((code as usize).wrapping_sub(50)) {
                        Some(path) => {
                            format!("{path} is not a read-only mount with nosuid, nodev, noexec")
                        }
                        None => "unknown exit code".into(),
                    },
                };
                panic!("child exited {code}: {why}");
            }
            other => panic!("child ended with {other:?}"),
        }
    }
}
