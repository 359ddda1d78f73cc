//! Capabilities: root's power cut into about forty pieces (capabilities(7)).
//!
//! A process has five sets of them. *Effective* is what the kernel checks;
//! *permitted* is what effective may be raised to; *inheritable* and
//! *ambient* are what may pass through execve(2); the *bounding* set is a
//! ceiling on what an execve(2) can ever grant (to root, it grants exactly
//! the bounding set). A container's runtime therefore does two things:
//! it lowers the bounding set (prctl(2) `PR_CAPBSET_DROP`, one capability
//! at a time), and it sets the other sets with capset(2), so that the
//! command starts with what docker would give it and can never get more.
//!
//! Everything here calls the kernel directly, the way a reader can look it
//! up in the man pages: capget(2)/capset(2) through syscall(2), with the
//! version 3 header (two 32-bit words per set, for capabilities 0–63), and
//! prctl(2) for the bounding set, the ambient set, `PR_SET_KEEPCAPS` and
//! `PR_SET_NO_NEW_PRIVS`.

use ch01_process::{Context, Ctx, Error, Result};
use nix::errno::Errno;
use std::fmt;

// ANCHOR: table
/// Every capability the kernel had when this was written (Linux 5.9 added
/// the last one), by number. The comments say what each of docker's
/// default set allows; [`DOCKER_DEFAULT`] says why the others are left out.
#[rustfmt::skip]
pub const TABLE: &[(u32, &str)] = &[
    (0, "CAP_CHOWN"),             // chown(2) any file to any user and group
    (1, "CAP_DAC_OVERRIDE"),      // read, write, search any file whatever its mode
    (2, "CAP_DAC_READ_SEARCH"),
    (3, "CAP_FOWNER"),            // act as any file's owner: chmod(2), utimes(2), ACLs
    (4, "CAP_FSETID"),            // keep setuid/setgid bits on a file it changes
    (5, "CAP_KILL"),              // send any signal to any process it can see
    (6, "CAP_SETGID"),            // setgid(2), setgroups(2) to any group
    (7, "CAP_SETUID"),            // setuid(2) to any user
    (8, "CAP_SETPCAP"),           // drop from the bounding set; add inheritable ones
    (9, "CAP_LINUX_IMMUTABLE"),
    (10, "CAP_NET_BIND_SERVICE"), // bind(2) ports below 1024
    (11, "CAP_NET_BROADCAST"),
    (12, "CAP_NET_ADMIN"),
    (13, "CAP_NET_RAW"),          // raw and packet sockets: ping, and forged packets
    (14, "CAP_IPC_LOCK"),
    (15, "CAP_IPC_OWNER"),
    (16, "CAP_SYS_MODULE"),
    (17, "CAP_SYS_RAWIO"),
    (18, "CAP_SYS_CHROOT"),       // chroot(2)
    (19, "CAP_SYS_PTRACE"),
    (20, "CAP_SYS_PACCT"),
    (21, "CAP_SYS_ADMIN"),
    (22, "CAP_SYS_BOOT"),
    (23, "CAP_SYS_NICE"),
    (24, "CAP_SYS_RESOURCE"),
    (25, "CAP_SYS_TIME"),
    (26, "CAP_SYS_TTY_CONFIG"),
    (27, "CAP_MKNOD"),            // mknod(2) device files (opening them: the devices cgroup)
    (28, "CAP_LEASE"),
    (29, "CAP_AUDIT_WRITE"),      // write to the audit log (login, sshd and su do)
    (30, "CAP_AUDIT_CONTROL"),
    (31, "CAP_SETFCAP"),          // give files capabilities (setcap); map uid 0 in a userns
    (32, "CAP_MAC_OVERRIDE"),
    (33, "CAP_MAC_ADMIN"),
    (34, "CAP_SYSLOG"),
    (35, "CAP_WAKE_ALARM"),
    (36, "CAP_BLOCK_SUSPEND"),
    (37, "CAP_AUDIT_READ"),
    (38, "CAP_PERFMON"),
    (39, "CAP_BPF"),
    (40, "CAP_CHECKPOINT_RESTORE"),
];
// ANCHOR_END: table

/// The last capability in [`TABLE`], for kernels that do not say theirs.
pub const LAST_KNOWN: u32 = 40;

/// The number of a capability, by name: `CAP_SYS_ADMIN`, `SYS_ADMIN`,
/// `sys_admin` and `cap_sys_admin` all name 21, as they do for docker.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    TABLE
        .iter()
        .find(|(_, n)| &n[4..] == bare)
        .map(|&(number, _)| number)
}

/// The name of capability `number` (`CAP_...`), if it is in [`TABLE`].
pub fn name(number: u32) -> Option<&'static str> {
    TABLE.get(number as usize).map(|&(_, name)| name)
}

/// The last capability the running kernel knows:
/// /proc/sys/kernel/cap_last_cap, or (in a container whose /proc hides it)
/// the last number prctl(2) `PR_CAPBSET_READ` accepts, or [`LAST_KNOWN`].
pub fn last_cap() -> u32 {
    if let Some(last) = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
    {
        return last.min(63);
    }
    // PR_CAPBSET_READ answers EINVAL for a number the kernel does not know.
    match (0..64u32).rev().find(|&n| bounding_has(n).is_ok()) {
        Some(last) => last,
        None => LAST_KNOWN,
    }
}

/// A set of capabilities, bit N for capability number N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    /// Every capability the running kernel knows (0 to [`last_cap`]).
    pub fn all() -> CapSet {
        CapSet::upto(last_cap())
    }

    /// Capabilities 0 to `last`.
    pub fn upto(last: u32) -> CapSet {
        match last {
            63.. => CapSet(u64::MAX),
            _ => CapSet((1u64 << (last + 1)) - 1),
        }
    }

    /// What docker calls all capabilities: every one the kernel knows that
    /// this process has in its effective set (moby's `GetAllCapabilities`,
    /// which asks containerd's `cap.Current()`, which reads `CapEff`). A
    /// runtime cannot give what it does not hold: capset(2) refuses it.
    pub fn available() -> CapSet {
        match get() {
            Ok(sets) => CapSet(CapSet::all().0 & sets.effective.0),
            Err(_) => CapSet::all(),
        }
    }

    /// docker's default set, [`DOCKER_DEFAULT`].
    pub fn docker_default() -> CapSet {
        let mut set = CapSet::EMPTY;
        for name in DOCKER_DEFAULT {
            set.insert(number(name).expect("DOCKER_DEFAULT holds names from TABLE"));
        }
        set
    }

    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn insert(&mut self, cap: u32) {
        if cap < 64 {
            self.0 |= 1 << cap;
        }
    }

    pub fn remove(&mut self, cap: u32) {
        if cap < 64 {
            self.0 &= !(1 << cap);
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// The capabilities in `self` but not in `other`.
    pub fn without(self, other: CapSet) -> CapSet {
        CapSet(self.0 & !other.0)
    }

    /// The numbers in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        (0..64).filter(move |&cap| self.contains(cap))
    }

    /// The names in the set, lowest number first; a number the table does
    /// not know (a kernel newer than it) is shown as the number.
    pub fn names(self) -> Vec<String> {
        self.iter()
            .map(|cap| match name(cap) {
                Some(name) => name.to_string(),
                None => cap.to_string(),
            })
            .collect()
    }
}

/// `CAP_CHOWN,CAP_KILL`, or `none`.
impl fmt::Display for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.names().join(","))
    }
}

// ANCHOR: default
/// docker's default set (moby `oci/caps/defaults.go`,
/// `DefaultCapabilities`), in moby's order: what a root process needs to
/// install packages, own files, switch users, bind port 80 and signal its
/// own processes, and nothing that reaches past the container.
///
/// podman's default (containers/common, `default_capabilities` in
/// containers.conf(5)) is docker's without `NET_RAW`, `MKNOD` and
/// `AUDIT_WRITE`: 11. Fedora and RHEL shipped that list in their
/// containers.conf from 2020 (containers/common PR #319); it became the
/// built-in default in containers/common PR #1240 (November 2022), which
/// podman picked up in 4.4 (podman issue #17504). The maintainers'
/// reason (podman issue #15626): almost no container needs them, and
/// each is a way to attack the host or its neighbours.
///
/// Left out, one line each (all of them are what makes root on the host
/// more than root in a container):
/// - `SYS_ADMIN`: mount(2), most namespaces, and a hundred more; with it a
///   cgroup v1 `release_agent` or a fresh mount of the host's disk escapes.
/// - `SYS_MODULE`: load a kernel module, i.e. run any code in the kernel.
/// - `SYS_PTRACE`: ptrace(2) and read the memory of any process it sees.
/// - `SYS_TIME`: set the clock, which is one for the whole machine.
/// - `SYS_BOOT`: reboot(2) and kexec_load(2), the host's.
/// - `SYS_RAWIO`: iopl(2), /dev/mem, raw block and port I/O: the hardware.
/// - `NET_ADMIN`: interfaces, routes, firewall rules (of the host, with
///   `--network host`).
/// - `DAC_READ_SEARCH`: open_by_handle_at(2) opens any file of a mounted
///   filesystem by its handle, outside the container's root (the 2014
///   "shocker" escape).
/// - `SYS_RESOURCE`: exceed rlimits, quotas and the disk's reserved space.
/// - `SYS_NICE`, `IPC_LOCK`: starve the host (real-time priority, locked
///   memory).
/// - `SYSLOG`: the kernel log and the kernel addresses it prints.
/// - `MAC_ADMIN`, `MAC_OVERRIDE`: change or bypass AppArmor and SELinux.
/// - `AUDIT_CONTROL`, `AUDIT_READ`: configure or read the host's audit log.
/// - `BPF`, `PERFMON`: load BPF programs, watch the whole machine's events.
/// - `LINUX_IMMUTABLE`, `LEASE`, `IPC_OWNER`, `NET_BROADCAST`, `SYS_PACCT`,
///   `SYS_TTY_CONFIG`, `WAKE_ALARM`, `BLOCK_SUSPEND`, `CHECKPOINT_RESTORE`:
///   rarely needed, each a privilege over files, processes or the machine
///   that a container has no need for.
pub const DOCKER_DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
// ANCHOR_END: default

/// docker's default set with `add` added and `drop` dropped.
pub fn resolve(add: &[String], drop: &[String]) -> std::result::Result<CapSet, String> {
    resolve_with(add, drop, CapSet::available())
}

// ANCHOR: resolve
/// [`resolve`], with `available` as what `ALL` means. The rules are moby's
/// (`oci/caps/utils.go`, `TweakCapabilities`), which the docker CLI's
/// `EffectiveCapAddCapDrop` (docker/cli `opts/capabilities.go`) states as
/// "CapAdd takes precedence over CapDrop":
/// 1. `ALL` added: every capability, but the ones dropped by name
///    (an `ALL` in the drops then means nothing).
/// 2. else `ALL` dropped: only the ones added.
/// 3. else the default set, without the drops, with the adds: a capability
///    both added and dropped is kept, whatever the order of the flags.
///
/// Names are checked first, all of them: a misspelt one is an error even
/// where it would change nothing. Adding one that the kernel or this
/// runtime does not have is an error too, as in moby; dropping it is not
/// (there is nothing to drop).
pub fn resolve_with(
    add: &[String],
    drop: &[String],
    available: CapSet,
) -> std::result::Result<CapSet, String> {
    let (add_all, adds) = parse_list("--cap-add", add)?;
    let (drop_all, drops) = parse_list("--cap-drop", drop)?;
    let missing = adds.without(available);
    if !missing.is_empty() {
        return Err(format!(
            "--cap-add {missing}: not available (the kernel or this runtime \
             does not have it; available: {} capabilities)",
            available.len()
        ));
    }
    Ok(if add_all {
        available.without(drops)
    } else if drop_all {
        adds
    } else {
        CapSet(CapSet::docker_default().without(drops).0 | adds.0)
    })
}
// ANCHOR_END: resolve

/// The names of one flag: whether `ALL` is among them, and the others.
fn parse_list(flag: &str, names: &[String]) -> std::result::Result<(bool, CapSet), String> {
    let mut all = false;
    let mut set = CapSet::EMPTY;
    for name in names {
        if name.eq_ignore_ascii_case("ALL") {
            all = true;
            continue;
        }
        match number(name) {
            Some(cap) => set.insert(cap),
            None => {
                return Err(format!(
                    "{flag} {name:?}: unknown capability (a name from \
                     capabilities(7), as CAP_SYS_ADMIN or sys_admin, or ALL)"
                ))
            }
        }
    }
    Ok((all, set))
}

/// Whether capability `cap` is in this process's bounding set
/// (prctl(2) `PR_CAPBSET_READ`); EINVAL if the kernel does not know it.
pub fn bounding_has(cap: u32) -> nix::Result<bool> {
    // SAFETY: PR_CAPBSET_READ takes an integer and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
    Errno::result(r).map(|r| r == 1)
}

/// This process's bounding set, read with `PR_CAPBSET_READ`.
pub fn bounding() -> CapSet {
    let mut set = CapSet::EMPTY;
    for cap in 0..=last_cap() {
        if bounding_has(cap) == Ok(true) {
            set.insert(cap);
        }
    }
    set
}

// ANCHOR: bounding
/// PR_CAPBSET_DROP every capability not in `keep`.
///
/// The bounding set is what an execve(2) can grant at most: root's
/// permitted set after execve(2) is the bounding set, so this is the step
/// that keeps the command from getting the dropped capabilities back.
/// It needs `CAP_SETPCAP`, so it comes before capset(2) (which may drop
/// that too). Only what is there is dropped, one call per capability.
pub fn drop_bounding(ctx: &Ctx, keep: CapSet) -> Result<()> {
    let last = last_cap();
    let present = bounding();
    let dropping = present.without(keep);
    match dropping.len() {
        0 => ctx.say(format_args!(
            "prctl(2) PR_CAPBSET_DROP: nothing to drop, the bounding set holds only what is kept"
        )),
        n => ctx.say(format_args!(
            "prctl(2) PR_CAPBSET_DROP {n} capabilities, keeping {}",
            CapSet(present.0 & keep.0)
        )),
    }
    // lab: begin prctl(2) PR_CAPBSET_DROP each capability of `dropping` up to `last`
    for cap in dropping.iter().filter(|&cap| cap <= last) {
        // SAFETY: PR_CAPBSET_DROP takes an integer and touches no memory of ours.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        match Errno::result(r) {
            Ok(_) => {}
            // A capability this kernel does not know is not in its bounding set.
            Err(Errno::EINVAL) => {}
            Err(e) => {
                return Err(e).context(format!("prctl(2) PR_CAPBSET_DROP {}", CapSet(1 << cap)))
            }
        }
    }
    Ok(())
    // lab: end
}
// ANCHOR_END: bounding

/// PR_SET_KEEPCAPS.
///
/// setuid(2) from uid 0 to another clears the permitted and effective
/// sets; with `PR_SET_KEEPCAPS` 1 the permitted set is kept (effective is
/// cleared anyway), so that capset(2) can set them afterwards.
pub fn keep_caps(ctx: &Ctx, on: bool) -> Result<()> {
    ctx.say(format_args!("prctl(2) PR_SET_KEEPCAPS {}", on as u8));
    // SAFETY: PR_SET_KEEPCAPS takes an integer and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, on as libc::c_ulong, 0, 0, 0) };
    Errno::result(r)
        .map(|_| ())
        .context(format!("prctl(2) PR_SET_KEEPCAPS {}", on as u8))
}

/// `_LINUX_CAPABILITY_VERSION_3` (linux/capability.h): 64-bit sets, as two
/// [`CapData`]. Versions 1 (32-bit) and 2 (deprecated) are older.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    /// 0: the calling thread.
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`: 32 capabilities of each set; [0] holds
/// 0–31, [1] holds 32–63.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three sets capget(2) and capset(2) deal with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sets {
    pub effective: CapSet,
    pub permitted: CapSet,
    pub inheritable: CapSet,
}

fn join(low: u32, high: u32) -> CapSet {
    CapSet(u64::from(high) << 32 | u64::from(low))
}

/// capget(2) of the calling thread.
pub fn get() -> Result<Sets> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid, writable, of the layout the v3
    // header asks for (two data structs); the kernel writes only into them.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    Errno::result(r).context("capget(2)")?;
    Ok(Sets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

// ANCHOR: set
/// capset(2): effective = permitted = `set`, inheritable empty; ambient cleared.
///
/// The ambient set is cleared first (`PR_CAP_AMBIENT_CLEAR_ALL`): it is
/// what a non-root execve(2) would keep, and it must hold nothing the
/// container is not given. The inheritable set is left empty, as moby does
/// since CVE-2022-24769 (docker 20.10.14): a non-empty one let a program
/// with inheritable file capabilities raise them into its permitted set on
/// execve(2), past what `--cap-add` gave.
pub fn set(ctx: &Ctx, set: CapSet) -> Result<()> {
    ctx.say(format_args!(
        "prctl(2) PR_CAP_AMBIENT PR_CAP_AMBIENT_CLEAR_ALL"
    ));
    // SAFETY: PR_CAP_AMBIENT takes integers and touches no memory of ours.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    match Errno::result(r) {
        // Kernels before 4.3 have no ambient set: nothing to clear.
        Ok(_) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(e).context("prctl(2) PR_CAP_AMBIENT_CLEAR_ALL"),
    }

    // capset(2) can only lower the permitted set: say which capability is
    // missing rather than a bare EPERM.
    let held = get()?.permitted;
    let missing = set.without(held);
    if !missing.is_empty() {
        return Err(Error::runtime(format!(
            "capset(2): this process does not hold {missing}, so it cannot give it"
        )));
    }

    ctx.say(format_args!(
        "capset(2) effective = permitted = {set}, inheritable = none"
    ));
    // lab: begin capset(2) effective = permitted = `set`, inheritable empty
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let halves = [set.0 as u32, (set.0 >> 32) as u32];
    let data = halves.map(|half| CapData {
        effective: half,
        permitted: half,
        inheritable: 0,
    });
    // SAFETY: header and data are valid and of the layout the v3 header
    // asks for (two data structs); the kernel only reads them.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    Errno::result(r)
        .map(|_| ())
        .context(format!("capset(2) effective = permitted = {set}"))
    // lab: end
}
// ANCHOR_END: set

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
///
/// From here on, for this process and everything it starts, execve(2)
/// never raises privileges: setuid and setgid bits and file capabilities
/// are ignored. It cannot be undone.
pub fn no_new_privs() -> Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(r)
        .map(|_| ())
        .context("prctl(2) PR_SET_NO_NEW_PRIVS 1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn set_of(names: &[&str]) -> CapSet {
        let mut set = CapSet::EMPTY;
        for name in names {
            set.insert(number(name).unwrap());
        }
        set
    }

    /// What the tests take `ALL` to be: every capability of Linux 5.9+.
    const ALL: CapSet = CapSet((1 << 41) - 1);

    fn resolve_all(add: &[&str], drop: &[&str]) -> std::result::Result<CapSet, String> {
        resolve_with(&s(add), &s(drop), ALL)
    }

    #[test]
    fn caps_table_is_by_number() {
        assert_eq!(TABLE.len(), LAST_KNOWN as usize + 1);
        for (i, &(number, name)) in TABLE.iter().enumerate() {
            assert_eq!(i as u32, number, "{name}");
            assert!(name.starts_with("CAP_"), "{name}");
        }
        assert_eq!(name(21), Some("CAP_SYS_ADMIN"));
        assert_eq!(name(40), Some("CAP_CHECKPOINT_RESTORE"));
        assert_eq!(name(41), None);
    }

    #[test]
    fn caps_names_parse_as_docker_does() {
        for spelling in [
            "CAP_SYS_ADMIN",
            "SYS_ADMIN",
            "sys_admin",
            "cap_sys_admin",
            "Sys_Admin",
        ] {
            assert_eq!(number(spelling), Some(21), "{spelling}");
        }
        assert_eq!(number("chown"), Some(0));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        for bad in [
            "",
            "CAP_",
            "ALL",
            "CAP_CAP_CHOWN",
            " chown",
            "chown ",
            "sys-admin",
            "CAP_FOO",
            "21",
        ] {
            assert_eq!(number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn caps_docker_default_is_fourteen_known_names() {
        let set = CapSet::docker_default();
        assert_eq!(set.len(), 14);
        assert_eq!(DOCKER_DEFAULT.len(), 14);
        for name in DOCKER_DEFAULT {
            assert!(set.contains(number(name).unwrap()), "{name}");
        }
        for dangerous in [
            "SYS_ADMIN",
            "SYS_MODULE",
            "SYS_PTRACE",
            "NET_ADMIN",
            "DAC_READ_SEARCH",
        ] {
            assert!(!set.contains(number(dangerous).unwrap()), "{dangerous}");
        }
    }

    #[test]
    fn caps_set_helpers() {
        let mut set = CapSet::EMPTY;
        assert!(set.is_empty());
        set.insert(5);
        set.insert(0);
        set.insert(40);
        set.insert(5);
        assert_eq!(set.len(), 3);
        assert!(set.contains(0) && set.contains(5) && set.contains(40));
        assert!(!set.contains(1) && !set.contains(64) && !set.contains(1000));
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 5, 40]);
        set.remove(5);
        set.remove(99);
        assert_eq!(set.iter().collect::<Vec<_>>(), [0, 40]);
        assert_eq!(CapSet::upto(0), CapSet(1));
        assert_eq!(CapSet::upto(40), ALL);
        assert_eq!(CapSet::upto(63), CapSet(u64::MAX));
        assert_eq!(CapSet::upto(200), CapSet(u64::MAX));
        assert_eq!(ALL.without(CapSet(1)).len(), 40);
    }

    #[test]
    fn caps_set_display() {
        assert_eq!(CapSet::EMPTY.to_string(), "none");
        assert_eq!(set_of(&["kill", "chown"]).to_string(), "CAP_CHOWN,CAP_KILL");
        // A capability newer than the table shows as its number.
        assert_eq!(CapSet(1 << 41 | 1 << 21).to_string(), "CAP_SYS_ADMIN,41");
        assert_eq!(set_of(&["kill"]).names(), ["CAP_KILL"]);
        assert!(CapSet::docker_default()
            .to_string()
            .starts_with("CAP_CHOWN,CAP_DAC_OVERRIDE,"));
    }

    #[test]
    fn caps_all_is_the_kernels() {
        let last = last_cap();
        assert!((36..64).contains(&last), "{last}");
        assert_eq!(CapSet::all().len(), last + 1);
        assert_eq!(CapSet::available().without(CapSet::all()), CapSet::EMPTY);
    }

    #[test]
    fn caps_resolve_nothing_is_the_default() {
        assert_eq!(resolve_all(&[], &[]), Ok(CapSet::docker_default()));
    }

    #[test]
    fn caps_resolve_drops_and_adds() {
        let got = resolve_all(&["sys_admin", "CAP_NET_ADMIN"], &["NET_RAW", "cap_mknod"]).unwrap();
        let want = CapSet(
            CapSet::docker_default()
                .without(set_of(&["NET_RAW", "MKNOD"]))
                .0
                | set_of(&["SYS_ADMIN", "NET_ADMIN"]).0,
        );
        assert_eq!(got, want);
        assert_eq!(got.len(), 14);
        // Dropping one that is not in the set changes nothing.
        assert_eq!(
            resolve_all(&[], &["SYS_ADMIN"]),
            Ok(CapSet::docker_default())
        );
        // Duplicates are harmless.
        assert_eq!(
            resolve_all(&["SYS_ADMIN", "sys_admin"], &[]).unwrap().len(),
            15
        );
    }

    #[test]
    fn caps_resolve_add_all_is_everything_but_the_named_drops() {
        assert_eq!(resolve_all(&["ALL"], &[]), Ok(ALL));
        assert_eq!(resolve_all(&["all"], &[]), Ok(ALL));
        assert_eq!(
            resolve_all(&["ALL"], &["SYS_ADMIN", "NET_RAW"]),
            Ok(ALL.without(set_of(&["SYS_ADMIN", "NET_RAW"])))
        );
        // An add by name beside ALL changes nothing, a drop by name wins over ALL.
        assert_eq!(
            resolve_all(&["ALL", "SYS_ADMIN"], &["SYS_ADMIN"]),
            Ok(ALL.without(set_of(&["SYS_ADMIN"])))
        );
        // moby: with ALL in the adds, an ALL in the drops drops nothing.
        assert_eq!(resolve_all(&["ALL"], &["ALL"]), Ok(ALL));
        // ALL is what is available, not what the kernel knows.
        let available = ALL.without(set_of(&["SYS_RESOURCE"]));
        assert_eq!(resolve_with(&s(&["ALL"]), &[], available), Ok(available));
    }

    #[test]
    fn caps_resolve_drop_all_leaves_only_the_adds() {
        assert_eq!(resolve_all(&[], &["ALL"]), Ok(CapSet::EMPTY));
        assert_eq!(resolve_all(&[], &["all"]), Ok(CapSet::EMPTY));
        assert_eq!(
            resolve_all(&["NET_BIND_SERVICE"], &["ALL"]),
            Ok(set_of(&["NET_BIND_SERVICE"]))
        );
        // A name dropped beside ALL is still given if it is added.
        assert_eq!(
            resolve_all(&["CHOWN", "sys_admin"], &["ALL", "CHOWN"]),
            Ok(set_of(&["CHOWN", "SYS_ADMIN"]))
        );
    }

    #[test]
    fn caps_resolve_added_and_dropped_is_kept() {
        // moby appends the adds after removing the drops: the add wins,
        // whether or not the capability is in the default set.
        assert_eq!(
            resolve_all(&["CHOWN"], &["CHOWN"]),
            Ok(CapSet::docker_default())
        );
        assert_eq!(
            resolve_all(&["SYS_ADMIN"], &["sys_admin"]),
            Ok(CapSet(
                CapSet::docker_default().0 | set_of(&["SYS_ADMIN"]).0
            ))
        );
    }

    #[test]
    fn caps_resolve_rejects_bad_names() {
        let err = resolve_all(&["SYS_ADMN"], &[]).unwrap_err();
        assert!(
            err.starts_with("--cap-add \"SYS_ADMN\": unknown capability"),
            "{err}"
        );
        assert!(err.contains("CAP_SYS_ADMIN or sys_admin"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = resolve_all(&[], &["ALL", "nope\n"]).unwrap_err();
        assert!(
            err.starts_with("--cap-drop \"nope\\n\": unknown capability"),
            "{err}"
        );
        // Every name is checked, even where it would change nothing.
        assert!(resolve_all(&["ALL", "bogus"], &[]).is_err());
        assert!(resolve_all(&[""], &[]).is_err());
        assert!(resolve_all(&[], &["CAP_"]).is_err());
    }

    #[test]
    fn caps_resolve_rejects_adding_what_is_not_available() {
        let available = ALL.without(set_of(&["SYS_RESOURCE"]));
        let err = resolve_with(&s(&["sys_resource"]), &[], available).unwrap_err();
        assert!(
            err.starts_with("--cap-add CAP_SYS_RESOURCE: not available"),
            "{err}"
        );
        // Dropping it is fine: there is nothing to drop.
        assert_eq!(
            resolve_with(&[], &s(&["SYS_RESOURCE"]), available),
            Ok(CapSet::docker_default())
        );
        // A kernel older than CAP_BPF (39).
        let old = CapSet::upto(37);
        assert!(resolve_with(&s(&["BPF"]), &[], old).is_err());
    }

    /// One field of /proc/self/status, e.g. `CapEff`, as text.
    fn status_field(status: &str, key: &str) -> Option<String> {
        status.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k == key).then(|| v.trim().to_string())
        })
    }

    fn status_set(status: &str, key: &str) -> Option<CapSet> {
        u64::from_str_radix(&status_field(status, key)?, 16)
            .ok()
            .map(CapSet)
    }

    /// Runs `child` in a fork(2) of this process (the capability calls are
    /// for good; the test process must keep its own) and returns its exit
    /// code. The child reports only through its exit code: it must not
    /// unwind into the test harness.
    fn in_child(child: impl FnOnce() -> i32) -> i32 {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        // glibc's fork(2) leaves malloc usable in the child.
        // SAFETY: the child only makes system calls, reads /proc and
        // allocates, then _exit(2)s without running the harness's code.
        match unsafe { fork() }.expect("fork(2)") {
            ForkResult::Child => {
                let code =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(99);
                // SAFETY: _exit(2) ends the child at once, without running
                // the atexit handlers or destructors that belong to the parent.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid(2)") {
                WaitStatus::Exited(_, code) => code,
                other => panic!("child: {other:?}"),
            },
        }
    }

    fn need_root(what: &str) -> bool {
        if !nix::unistd::geteuid().is_root() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{what} needs root, and CI=true");
            }
            eprintln!("SKIPPED: {what} needs root");
            return false;
        }
        true
    }

    #[test]
    fn caps_drop_bounding_and_set_leave_exactly_the_set() {
        if !need_root("caps_drop_bounding_and_set_leave_exactly_the_set") {
            return;
        }
        let ctx = Ctx::new("test", false);
        let want = set_of(&["CHOWN", "KILL"]);
        let code = in_child(|| {
            if drop_bounding(&ctx, want).is_err() {
                return 1;
            }
            if set(&ctx, want).is_err() {
                return 2;
            }
            let Ok(sets) = get() else { return 3 };
            if sets.effective != want || sets.permitted != want {
                return 4;
            }
            if sets.inheritable != CapSet::EMPTY {
                return 5;
            }
            if bounding() != want {
                return 6;
            }
            let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
                return 7;
            };
            for (key, expected, code) in [
                ("CapEff", want, 10),
                ("CapPrm", want, 11),
                ("CapBnd", want, 12),
                ("CapInh", CapSet::EMPTY, 13),
                ("CapAmb", CapSet::EMPTY, 14),
            ] {
                if status_set(&status, key) != Some(expected) {
                    return code;
                }
            }
            // What is gone is gone: capset(2) cannot raise it back.
            if set(&ctx, CapSet::docker_default()).is_ok() {
                return 20;
            }
            0
        });
        let why = match code {
            0 => return,
            1 => "drop_bounding failed",
            2 => "set failed",
            3 => "capget(2) failed",
            4 => "capget(2): effective or permitted is not CHOWN|KILL",
            5 => "capget(2): inheritable is not empty",
            6 => "PR_CAPBSET_READ: the bounding set is not CHOWN|KILL",
            7 => "reading /proc/self/status failed",
            10 => "CapEff is not CHOWN|KILL",
            11 => "CapPrm is not CHOWN|KILL",
            12 => "CapBnd is not CHOWN|KILL",
            13 => "CapInh is not empty",
            14 => "CapAmb is not empty",
            20 => "capset(2) raised capabilities that were dropped",
            99 => "the child panicked",
            _ => "unknown exit code",
        };
        panic!("child exited {code}: {why}");
    }

    #[test]
    fn caps_set_names_what_it_cannot_give() {
        if !need_root("caps_set_names_what_it_cannot_give") {
            return;
        }
        let ctx = Ctx::new("test", false);
        let code = in_child(|| {
            if set(&ctx, set_of(&["KILL"])).is_err() {
                return 1;
            }
            match set(&ctx, set_of(&["KILL", "SYS_ADMIN"])) {
                Err(e) if e.msg.contains("does not hold CAP_SYS_ADMIN") => 0,
                Err(_) => 2,
                Ok(()) => 3,
            }
        });
        assert_eq!(code, 0, "1: set failed, 2: wrong message, 3: no error");
    }

    #[test]
    fn caps_no_new_privs_shows_in_status() {
        // PR_SET_NO_NEW_PRIVS needs no privilege at all: no root check.
        let code = in_child(|| {
            let Ok(before) = std::fs::read_to_string("/proc/self/status") else {
                return 1;
            };
            if status_field(&before, "NoNewPrivs").as_deref() != Some("0") {
                return 2;
            }
            if no_new_privs().is_err() {
                return 3;
            }
            let Ok(after) = std::fs::read_to_string("/proc/self/status") else {
                return 1;
            };
            match status_field(&after, "NoNewPrivs").as_deref() {
                Some("1") => 0,
                _ => 4,
            }
        });
        assert_eq!(
            code, 0,
            "1: reading /proc/self/status failed, 2: NoNewPrivs was already set, \
             3: no_new_privs failed, 4: NoNewPrivs is not 1"
        );
    }
}
