//! docker's default seccomp profile, rule for rule, written out here with
//! the reasons (moby's profiles/seccomp/default.json as of the version
//! with landlock(7) and futex_waitv(2), Linux 5.13 to 5.16's calls; later
//! versions add the calls of later kernels).
//!
//! It is an allow list: a call it does not name fails with EPERM
//! (`defaultErrnoRet` 1), so a call added to Linux next year is refused
//! until someone decides it is safe. The ~350 names allowed unconditionally are
//! the calls every program makes. The rest of the profile is about the calls that
//! capabilities guard too: they are allowed only when the container holds
//! the capability (so `--cap-add SYS_ADMIN` gives mount(2) back), because
//! seccomp is a second wall: a kernel bug behind a capability check is
//! still out of reach. And some calls are refused although no capability
//! guards them, because they reach parts of the kernel that are not
//! namespaced or have had many bugs: keyctl(2) (keyrings are per user, not
//! per container), userfaultfd(2) (a tool for winning kernel races), bpf(2)
//! and perf_event_open(2) (large, and a source of kernel addresses),
//! personality(2) but for the few personas programs use, and namespaces:
//! clone(2) only without namespace flags, unshare(2) not at all.

use crate::profile::{ArchMap, Arg, Filter, Profile, Syscall};
use oci_spec::runtime::{Arch, LinuxSeccompAction as Action, LinuxSeccompOperator as Op};

// ANCHOR: allowed
/// What every program may call: files, memory, processes, signals,
/// sockets, time, System V IPC, ids (setuid and friends are checked by the
/// kernel against the capabilities anyway).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];
// ANCHOR_END: allowed

/// Calls that a capability guards, allowed when the container has it.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Calls of one kind of machine, with docker's (Go's) names for them.
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["arm", "arm64"],
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    ),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (
        &["s390", "s390x"],
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
    ),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// The namespace flags of clone(2): CLONE_NEWNS | NEWCGROUP | NEWUTS |
/// NEWIPC | NEWUSER | NEWPID | NEWNET (0x7e020000). Without CAP_SYS_ADMIN,
/// clone(2) is allowed only if `flags & this == 0`: a thread or a fork.
pub const CLONE_NAMESPACES: u64 = 0x7e02_0000;

/// The personas personality(2) may set (personality(2)): PER_LINUX (0),
/// PER_LINUX with UNAME26 (8: a kernel version of 2.6.x, for old
/// programs), ADDR_NO_RANDOMIZE (0x20000: setarch -R, what debuggers use),
/// both, and 0xffffffff, which only asks for the current one. The others
/// (READ_IMPLIES_EXEC, MMAP_PAGE_ZERO) weaken the memory protections
/// exploits run into.
pub const PERSONAS: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// AF_VSOCK: sockets to the hypervisor, not namespaced.
pub const AF_VSOCK: u64 = 40;

fn allow(names: &[&str]) -> Syscall {
    Syscall {
        names: Some(names.iter().map(|n| n.to_string()).collect()),
        action: Action::ScmpActAllow,
        ..Syscall::default()
    }
}

fn arg(index: usize, op: Op, value: u64) -> Arg {
    Arg {
        index,
        value,
        value_two: 0,
        op,
    }
}

fn caps(names: &[&str]) -> Option<Vec<String>> {
    Some(names.iter().map(|n| n.to_string()).collect())
}

// ANCHOR: profile
/// docker's default profile, still with its includes and excludes: see
/// [`crate::profile::resolve`] for a container's share of it.
pub fn profile() -> Profile {
    let mut rules = vec![allow(ALLOWED)];
    // ptrace(2) of the container's own processes is safe since Linux 4.8,
    // which closed a way around seccomp through it.
    rules.push(Syscall {
        includes: Some(Filter {
            min_kernel: Some("4.8".into()),
            ..Filter::default()
        }),
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    rules.push(Syscall {
        args: Some(vec![arg(0, Op::ScmpCmpNe, AF_VSOCK)]),
        ..allow(&["socket"])
    });
    for &persona in PERSONAS {
        rules.push(Syscall {
            args: Some(vec![arg(0, Op::ScmpCmpEq, persona)]),
            ..allow(&["personality"])
        });
    }
    for &(arches, names) in BY_ARCH {
        rules.push(Syscall {
            includes: Some(Filter {
                arches: caps(arches),
                ..Filter::default()
            }),
            ..allow(names)
        });
    }
    for &(cap, names) in BY_CAPABILITY {
        rules.push(Syscall {
            includes: Some(Filter {
                caps: caps(&[cap]),
                ..Filter::default()
            }),
            ..allow(names)
        });
    }
    // Without CAP_SYS_ADMIN: clone(2) without namespace flags (s390 has
    // the flags in its second argument), and clone3(2) refused with
    // ENOSYS, not EPERM: its flags are in memory, where a filter cannot
    // look, and ENOSYS makes glibc fall back to clone(2), which it can.
    let masked = Arg {
        op: Op::ScmpCmpMaskedEq,
        value: CLONE_NAMESPACES,
        value_two: 0,
        index: 0,
    };
    rules.push(Syscall {
        args: Some(vec![masked.clone()]),
        excludes: Some(Filter {
            caps: caps(&["CAP_SYS_ADMIN"]),
            arches: caps(&["s390", "s390x"]),
            ..Filter::default()
        }),
        ..allow(&["clone"])
    });
    rules.push(Syscall {
        args: Some(vec![Arg { index: 1, ..masked }]),
        includes: Some(Filter {
            arches: caps(&["s390", "s390x"]),
            ..Filter::default()
        }),
        excludes: Some(Filter {
            caps: caps(&["CAP_SYS_ADMIN"]),
            ..Filter::default()
        }),
        ..allow(&["clone"])
    });
    rules.push(Syscall {
        names: Some(vec!["clone3".into()]),
        action: Action::ScmpActErrno,
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: Some(Filter {
            caps: caps(&["CAP_SYS_ADMIN"]),
            ..Filter::default()
        }),
        ..Syscall::default()
    });
    Profile {
        default_action: Action::ScmpActErrno,
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: Some(vec![
            ArchMap {
                architecture: Arch::ScmpArchX86_64,
                sub_architectures: Some(vec![Arch::ScmpArchX86, Arch::ScmpArchX32]),
            },
            ArchMap {
                architecture: Arch::ScmpArchAarch64,
                sub_architectures: Some(vec![Arch::ScmpArchArm]),
            },
        ]),
        syscalls: Some(rules),
        ..Profile::default()
    }
}
// ANCHOR_END: profile

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::known_anywhere;

    #[test]
    fn every_name_is_a_system_call() {
        let profile = profile();
        let unknown: Vec<&String> = (profile.syscalls.iter().flatten())
            .flat_map(|call| call.names.iter().flatten())
            .filter(|name| !known_anywhere(name))
            .collect();
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[test]
    fn no_name_is_allowed_twice_unconditionally() {
        let mut seen = std::collections::HashSet::new();
        for name in ALLOWED {
            assert!(seen.insert(*name), "{name} twice");
        }
    }
}
