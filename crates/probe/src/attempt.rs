//! `probe attempt NAME...`: one system call per NAME, each one that a
//! capability guards, made so that it cannot change anything even when the
//! kernel lets it through. Then one line per NAME: `NAME: ok`, or the
//! errno's name and meaning, `NAME: EPERM (Operation not permitted)`.
//!
//! Two ways to be harmless. Either the call is refused anyway, after the
//! capability check, because of an argument the kernel checks later
//! (`reboot` with a wrong magic number, `adjtimex` with a tick out of
//! range, `init_module` with 16 bytes that are no ELF file): then EPERM
//! means "no capability" and EINVAL or ENOEXEC means "the capability was
//! there". Or the call succeeds on something made for it and gone
//! afterwards (`unshare` in a child that exits, `ptrace` of a child that is
//! killed, a device node that is unlinked, a socket that is closed).
//!
//! The order of the checks in the kernel is what makes the first kind
//! safe; each function below says where it was read (torvalds/linux).
//! `sethostname` is left out on purpose: it would rename the container.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;

use crate::report::reason;

/// One system call to try.
pub struct Attempt {
    pub name: &'static str,
    /// The capability that guards it, for the usage text.
    pub needs: &'static str,
    run: fn() -> Outcome,
}

impl Attempt {
    pub fn run(&self) -> Outcome {
        (self.run)()
    }
}

/// Every attempt, in the order of the usage text.
pub const ALL: &[Attempt] = &[
    Attempt {
        name: "reboot",
        needs: "CAP_SYS_BOOT",
        run: reboot,
    },
    Attempt {
        name: "init_module",
        needs: "CAP_SYS_MODULE",
        run: init_module,
    },
    Attempt {
        name: "adjtimex",
        needs: "CAP_SYS_TIME",
        run: adjtimex,
    },
    Attempt {
        name: "settimeofday",
        needs: "CAP_SYS_TIME",
        run: settimeofday,
    },
    Attempt {
        name: "unshare",
        needs: "CAP_SYS_ADMIN",
        run: unshare,
    },
    Attempt {
        name: "ptrace",
        needs: "CAP_SYS_PTRACE",
        run: ptrace,
    },
    Attempt {
        name: "mknod",
        needs: "CAP_MKNOD",
        run: mknod,
    },
    Attempt {
        name: "raw-socket",
        needs: "CAP_NET_RAW",
        run: raw_socket,
    },
    Attempt {
        name: "tiocsti",
        needs: "CAP_SYS_ADMIN, unless the terminal is the caller's own",
        run: tiocsti,
    },
    Attempt {
        name: "release-agent",
        needs: "CAP_SYS_ADMIN (CVE-2022-0492)",
        run: release_agent,
    },
    // No capability guards the ones below: in docker, its seccomp profile
    // does (chapter 10). They reach the kernel in chapter 9.
    Attempt {
        name: "keyctl",
        needs: "seccomp (keyrings are not namespaced)",
        run: keyctl,
    },
    Attempt {
        name: "bpf",
        needs: "seccomp (CAP_BPF only for maps and programs)",
        run: bpf,
    },
    Attempt {
        name: "userfaultfd",
        needs: "seccomp (it can hold the kernel at a page fault)",
        run: userfaultfd,
    },
    Attempt {
        name: "perf_event_open",
        needs: "seccomp (kernel.perf_event_paranoid only)",
        run: perf_event_open,
    },
    Attempt {
        name: "personality",
        needs: "seccomp (old ABIs, little tested)",
        run: personality,
    },
    Attempt {
        name: "clone-newuser",
        needs: "seccomp (a user namespace has every capability in it)",
        run: clone_newuser,
    },
    Attempt {
        name: "unshare-user",
        needs: "seccomp (a user namespace has every capability in it)",
        run: unshare_user,
    },
];

pub fn find(name: &str) -> Option<&'static Attempt> {
    ALL.iter().find(|a| a.name == name)
}

/// What the kernel answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Errno(i32),
    /// The call went through, but cleaning up after it did not.
    OkBut(String),
    /// The call was never made: getting ready for it failed.
    NotMade(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Errno(errno) => f.write_str(&describe_errno(*errno)),
            Outcome::OkBut(what) => write!(f, "ok, but {what}"),
            Outcome::NotMade(why) => write!(f, "not attempted ({why})"),
        }
    }
}

/// `EPERM (Operation not permitted)`; `errno 200 (Unknown error 200)` for
/// one the table does not name.
pub fn describe_errno(errno: i32) -> String {
    let meaning = reason(&io::Error::from_raw_os_error(errno));
    match errno_name(errno) {
        Some(name) => format!("{name} ({meaning})"),
        None => format!("errno {errno} ({meaning})"),
    }
}

/// The symbolic names of the errors these calls can return.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EBADMSG => "EBADMSG",
        libc::EUSERS => "EUSERS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENOPKG => "ENOPKG",
        libc::EDQUOT => "EDQUOT",
        libc::ENOKEY => "ENOKEY",
        libc::EKEYEXPIRED => "EKEYEXPIRED",
        libc::EKEYREVOKED => "EKEYREVOKED",
        libc::EKEYREJECTED => "EKEYREJECTED",
        _ => return None,
    })
}

/// A raw system call's result: -1 and errno, or anything else.
fn outcome(ret: libc::c_long) -> Outcome {
    if ret == -1 {
        Outcome::Errno(last_errno())
    } else {
        Outcome::Ok
    }
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Commands reboot(2) knows: RESTART, HALT, CAD_ON, CAD_OFF, POWER_OFF,
/// RESTART2, SW_SUSPEND, KEXEC. `BAD_CMD` is none of them.
const BAD_CMD: u32 = 0xffff_ffff;

/// kernel/reboot.c, SYSCALL_DEFINE4(reboot): `ns_capable(pid_ns->user_ns,
/// CAP_SYS_BOOT)` → EPERM comes first; then magic1 must be
/// LINUX_REBOOT_MAGIC1 and magic2 one of MAGIC2/2A/2B/2C, else EINVAL,
/// before reboot_pid_ns() or any command is looked at. magic2 is 0 here,
/// and the command is not one of the known ones either (it would be
/// EINVAL a second time over), so nothing can reboot, halt, or flip
/// Ctrl-Alt-Del. The raw system call: glibc's reboot() fills in the right
/// magic numbers itself.
fn reboot() -> Outcome {
    // SAFETY: integer arguments only; `arg` is NULL and, with a wrong
    // magic number, never read.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_reboot,
            libc::LINUX_REBOOT_MAGIC1 as libc::c_long,
            0 as libc::c_long,
            BAD_CMD as libc::c_long,
            std::ptr::null::<libc::c_void>(),
        )
    };
    outcome(ret)
}

/// kernel/module/main.c, SYSCALL_DEFINE3(init_module): may_init_module()
/// (`!capable(CAP_SYS_MODULE) || modules_disabled` → EPERM) comes first;
/// then copy_module_from_user() returns ENOEXEC for anything shorter than
/// an ELF header (64 bytes) before it even copies it in. 16 bytes: never
/// loaded. A kernel built without modules has no init_module at all
/// (ENOSYS, with or without the capability); one with modules_disabled=1
/// or under lockdown says EPERM to everybody.
fn init_module() -> Outcome {
    let image = [0u8; 16];
    let params = c"";
    // SAFETY: `image` and `params` are valid for the lengths given and
    // outlive the call; the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_init_module,
            image.as_ptr(),
            image.len() as libc::c_ulong,
            params.as_ptr(),
        )
    };
    outcome(ret)
}

/// kernel/time/time.c, do_sys_settimeofday64(): with no time given,
/// `security_settime64()` (`capable(CAP_SYS_TIME)` → EPERM) comes first;
/// then a time zone more than 15 hours from UTC is EINVAL, before
/// `sys_tz` is set or the clock warped (the first call with a time zone
/// can shift the clock by it). 16 hours west: nothing is ever set.
fn settimeofday() -> Outcome {
    /// `struct timezone` (libc's is opaque).
    #[repr(C)]
    struct Timezone {
        minuteswest: libc::c_int,
        dsttime: libc::c_int,
    }
    let tz = Timezone {
        minuteswest: 16 * 60,
        dsttime: 0,
    };
    // SAFETY: no time (NULL); `tz` is a valid timezone that outlives the
    // call, which only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_settimeofday,
            std::ptr::null::<libc::timeval>(),
            &tz as *const Timezone,
        )
    };
    outcome(ret)
}

/// kernel/time/timekeeping.c, timekeeping_validate_timex() (called by
/// do_adjtimex() before anything is changed): for modes without
/// ADJ_ADJTIME, `txc->modes && !capable(CAP_SYS_TIME)` → EPERM comes
/// first, then `ADJ_TICK` with a tick outside 900000/USER_HZ ..
/// 1100000/USER_HZ (9000 .. 11000 at USER_HZ 100) → EINVAL. A tick of 1:
/// the clock is never touched.
fn adjtimex() -> Outcome {
    // SAFETY: timex is plain old data; all zeros is a valid value.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = libc::ADJ_TICK;
    tx.tick = 1;
    // SAFETY: `tx` is a valid timex, readable and writable, for the call.
    let ret = unsafe { libc::syscall(libc::SYS_adjtimex, &mut tx as *mut libc::timex) };
    outcome(ret)
}

/// kernel/nsproxy.c, unshare_nsproxy_namespaces(): any namespace flag
/// needs `ns_capable(user_ns, CAP_SYS_ADMIN)`, else EPERM, before a
/// namespace is made. Done in a child that exits at once: this process
/// keeps its own UTS namespace, and the new one dies with the child.
fn unshare() -> Outcome {
    in_a_child(|| {
        // SAFETY: integer argument only; unshare is async-signal-safe.
        unsafe { libc::unshare(libc::CLONE_NEWUTS) as libc::c_long }
    })
}

/// Runs `call` in a child that exits at once, for calls that change the
/// process that makes them (its namespaces, its personality): the change
/// dies with the child. The child's exit status carries the errno (at
/// most 133, it fits), 0 for success. `call` must make only
/// async-signal-safe calls (the parent may have other threads: the unit
/// tests' harness does).
fn in_a_child(call: fn() -> libc::c_long) -> Outcome {
    // SAFETY: fork has no preconditions here; the child below runs only
    // `call` (async-signal-safe, see above) and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Outcome::NotMade(format!("fork: {}", reason(&io::Error::last_os_error())));
    }
    if pid == 0 {
        let ret = call();
        // SAFETY: reading errno and _exit are async-signal-safe; _exit
        // never returns, so no destructor of the parent's runs here.
        unsafe {
            let code = if ret == -1 {
                *libc::__errno_location()
            } else {
                0
            };
            libc::_exit(code);
        }
    }
    child_outcome(reap(pid))
}

/// The answer a child reported in its exit status (see [`in_a_child`]).
fn child_outcome(ended: Result<Ended, String>) -> Outcome {
    match ended {
        Ok(Ended::Exited(0)) => Outcome::Ok,
        Ok(Ended::Exited(errno)) => Outcome::Errno(errno),
        Ok(Ended::Signaled(signal)) => {
            Outcome::NotMade(format!("the child was killed by signal {signal}"))
        }
        Ok(Ended::Lost) => Outcome::NotMade("SIGCHLD is ignored: no exit status".to_string()),
        Err(why) => Outcome::NotMade(why),
    }
}

/// How a child ended.
enum Ended {
    Exited(i32),
    Signaled(i32),
    /// ECHILD: SIGCHLD is ignored, so the kernel reaped it, status unknown.
    Lost,
}

/// Wait for child `pid` to end (a traced child reports its stops too:
/// they are waited past).
fn reap(pid: libc::pid_t) -> Result<Ended, String> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid int to write; `pid` is our child.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(Ended::Lost),
                _ => return Err(format!("waitpid: {}", reason(&err))),
            }
        }
        if libc::WIFEXITED(status) {
            return Ok(Ended::Exited(libc::WEXITSTATUS(status)));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(Ended::Signaled(libc::WTERMSIG(status)));
        }
    }
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are open descriptors owned by nobody
    // else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// kernel/ptrace.c, __ptrace_may_access() (from ptrace_attach(), for
/// PTRACE_ATTACH and PTRACE_SEIZE alike): a tracer with the target's uids
/// and gids passes the first check without any capability (so attaching
/// to one's own child, or to PID 1 run as the same root, proves nothing);
/// but then a target whose mm is not dumpable (`get_dumpable(mm) !=
/// SUID_DUMP_USER`) needs `ptrace_has_cap(mm->user_ns)`, CAP_SYS_PTRACE,
/// else EPERM. So: a child of our own that makes itself non-dumpable
/// (prctl PR_SET_DUMPABLE 0), then PTRACE_SEIZE, which (unlike ATTACH)
/// does not stop it. Yama, if loaded, is asked after that (its scope 3
/// refuses everybody). The child is then killed and reaped: nothing is
/// left stopped or running.
fn ptrace() -> Outcome {
    let pipes = pipe().and_then(|ready| Ok((ready, pipe()?)));
    let ((ready_r, ready_w), (hold_r, hold_w)) = match pipes {
        Ok(pipes) => pipes,
        Err(e) => return Outcome::NotMade(format!("pipe: {}", reason(&e))),
    };
    // SAFETY: fork has no preconditions here; the child below calls only
    // async-signal-safe functions (prctl, write, read, _exit).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Outcome::NotMade(format!("fork: {}", reason(&io::Error::last_os_error())));
    }
    if pid == 0 {
        use std::os::fd::AsRawFd;
        let (ready, hold) = (ready_w.as_raw_fd(), hold_r.as_raw_fd());
        let (theirs_r, theirs_w) = (ready_r.as_raw_fd(), hold_w.as_raw_fd());
        // _exit never returns, so no destructor runs in the child. Its copy
        // of the parent's ends is closed: EOF comes when the parent's goes.
        // SAFETY: close, prctl, write, read and _exit are
        // async-signal-safe; the buffers are valid bytes on this stack.
        unsafe {
            libc::close(theirs_r);
            libc::close(theirs_w);
            let byte: u8 = if libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 {
                b'r'
            } else {
                b'x'
            };
            libc::write(ready, (&byte as *const u8).cast(), 1);
            // Until the parent closes its end, or is gone.
            let mut buf = 0u8;
            loop {
                let n = libc::read(hold, (&mut buf as *mut u8).cast(), 1);
                if n == 0 || (n < 0 && *libc::__errno_location() != libc::EINTR) {
                    break;
                }
            }
            libc::_exit(0);
        }
    }
    drop(ready_w);
    drop(hold_r);
    let mut byte = [0u8];
    let ready = File::from(ready_r).read(&mut byte);
    let result = match ready {
        Ok(1) if byte[0] == b'r' => {
            // SAFETY: integer arguments only; PTRACE_SEIZE reads no memory
            // when addr and data are 0.
            let ret = unsafe {
                libc::ptrace(
                    libc::PTRACE_SEIZE,
                    pid,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            outcome(ret)
        }
        Ok(1) => Outcome::NotMade("prctl(PR_SET_DUMPABLE) failed in the child".to_string()),
        Ok(_) => Outcome::NotMade("the child ended before it was ready".to_string()),
        Err(e) => Outcome::NotMade(format!("reading from the child: {}", reason(&e))),
    };
    drop(hold_w);
    // SIGKILL ends a tracee too, from any state. The child is ours and not
    // reaped yet, so `pid` cannot name anybody else.
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Killed by that SIGKILL, or gone on the closed pipe first: either way
    // gone. Only a waitpid that fails could leave it behind.
    match (result, reap(pid)) {
        (Outcome::Ok, Err(why)) => Outcome::OkBut(why),
        (result, _) => result,
    }
}

/// Random hex digits, for a name nobody else uses.
fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 8];
    // SAFETY: `bytes` is valid for writing its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// fs/namei.c, vfs_mknod(): a character or block device needs
/// `capable(CAP_MKNOD)`. In docker's default set, so a control: ok in
/// both chapters. The node has /dev/null's numbers (1:3) and no
/// permission bits, under a random name in /tmp, and is unlinked at once.
fn mknod() -> Outcome {
    let hex = match random_hex() {
        Ok(hex) => hex,
        Err(e) => return Outcome::NotMade(format!("getrandom: {}", reason(&e))),
    };
    let path = format!("/tmp/.probe-mknod-{hex}");
    let Ok(c_path) = CString::new(path.clone()) else {
        return Outcome::NotMade(format!("{path:?}: NUL in the path"));
    };
    // SAFETY: `c_path` is a valid NUL-terminated path for the call.
    let ret = unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR, libc::makedev(1, 3)) };
    if ret != 0 {
        return Outcome::Errno(last_errno());
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Outcome::Ok,
        Err(e) => Outcome::OkBut(format!("{path}: unlink: {}", reason(&e))),
    }
}

/// net/ipv4/af_inet.c, inet_create(): SOCK_RAW needs
/// `ns_capable(net->user_ns, CAP_NET_RAW)`, else EPERM. In docker's
/// default set, so a control: ok in both chapters. Closed at once.
fn raw_socket() -> Outcome {
    // SAFETY: integer arguments only.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Outcome::Errno(last_errno());
    }
    // SAFETY: socket succeeded: `fd` is open and owned by nobody else;
    // dropping it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Outcome::Ok
}

/// drivers/tty/tty_io.c, tiocsti(): pushing a character into a terminal's
/// input, as if typed, is allowed on the caller's controlling terminal, or
/// with CAP_SYS_ADMIN (else EPERM); kernels since 6.2 can turn it off for
/// everybody without CAP_SYS_ADMIN (`dev.tty.legacy_tiocsti = 0`: EIO).
/// On standard input, with a newline: a shell that reads it runs an empty
/// command. Standard input that is no terminal answers ENOTTY.
fn tiocsti() -> Outcome {
    let newline: libc::c_char = b'\n' as libc::c_char;
    // SAFETY: TIOCSTI reads one byte at the pointer, which is valid.
    let ret = unsafe { libc::ioctl(0, libc::TIOCSTI, &newline as *const libc::c_char) };
    outcome(ret as libc::c_long)
}

/// The cgroup v1 hierarchies in /proc/self/cgroup's text, as the
/// controller lists that name them ("cpu,cpuacct", "name=systemd"), in
/// its order. Each line is `ID:CONTROLLERS:PATH`; cgroup v2's line is
/// `0::PATH`, with no controllers, and is left out. PATH may itself hold
/// colons: only the first two split.
fn v1_hierarchies(proc_self_cgroup: &str) -> Vec<String> {
    proc_self_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_id, controllers, _path) = (fields.next()?, fields.next()?, fields.next()?);
            (!controllers.is_empty()).then(|| controllers.to_owned())
        })
        .collect()
}

/// mount(2)'s data for the hierarchy `controllers` names: the same list,
/// so that the kernel finds that hierarchy again. A list that matches no
/// hierarchy exactly is refused (EBUSY, if it shares a controller with
/// one) or makes a new hierarchy (only from the initial cgroup namespace).
/// A hierarchy with a name and no controller is mounted as
/// `none,name=...`.
fn mount_data(controllers: &str) -> String {
    if controllers.split(',').all(|c| c.starts_with("name=")) {
        format!("none,{controllers}")
    } else {
        controllers.to_owned()
    }
}

/// Controllers that runtimes rarely give a container a cgroup of its own
/// in (the published CVE-2022-0492 exploit used rdma, where docker made
/// none): in their hierarchies the container's cgroup namespace is rooted
/// at the root cgroup, which is where release_agent is.
const RARELY_GIVEN: [&str; 6] = [
    "rdma",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
];

/// Controllers runtimes move a container into (chapter 7: memory, pids,
/// cpu, cpuacct; chapter 9 adds devices): their release_agent is out of
/// its sight.
const ALWAYS_GIVEN: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "devices"];

/// The hierarchies in the order to try them: the ones whose root the
/// container most likely sees first, and otherwise as listed.
fn by_likelihood(mut hierarchies: Vec<String>) -> Vec<String> {
    let rank = |controllers: &String| {
        let has = |list: &[&str]| controllers.split(',').any(|c| list.contains(&c));
        if has(&RARELY_GIVEN) {
            0
        } else if has(&ALWAYS_GIVEN) {
            2
        } else {
            1
        }
    };
    hierarchies.sort_by_key(rank);
    hierarchies
}

/// CVE-2022-0492, the first steps of it, without the step that does harm.
/// In cgroup v1 a hierarchy's root cgroup has a file `release_agent`: the
/// path of a program that the kernel runs, as root on the host, with every
/// capability, whenever a cgroup of that hierarchy with
/// `notify_on_release` set loses its last process. Whoever can write it
/// runs a program of their choosing on the host. The bug: that write
/// checked only the file's mode, and a user namespace of one's own makes
/// one root over a cgroup mount of one's own, so anybody who could
/// unshare a user and a cgroup namespace (an unprivileged user on the
/// host, or a container whose seccomp profile let unshare(2) through)
/// could set it. The fix (24f6008564183, "cgroup-v1: Require capabilities
/// to set release_agent", 5.17; later made to use the opener's
/// credentials): cgroup_release_agent_write() in kernel/cgroup/cgroup-v1.c
/// refuses (EPERM) unless the cgroup namespace's user namespace is the
/// initial one and the file was opened with CAP_SYS_ADMIN in it. That is
/// what chapter 8's root has: it may still write it (that is no bug, that
/// is root), which is why nothing here ever writes.
///
/// The order of checks: fs/namespace.c, path_mount(): after the LSM hook,
/// `may_mount()` (CAP_SYS_ADMIN over the mount namespace's user
/// namespace) → EPERM, before the file system is looked at; then
/// cgroup1_get_tree() asks again for CAP_SYS_ADMIN over the cgroup
/// namespace's user namespace, and reuses the hierarchy the options name
/// (a new one may only be made in the initial cgroup namespace: EPERM in
/// chapter 8's own). So: each v1 hierarchy of /proc/self/cgroup in turn,
/// mounted on a fresh directory in /tmp (in the container's own mount
/// namespace, private: nothing propagates to the host), where
/// `release_agent` is looked for at the mount's root and opened for
/// writing, then closed unwritten; the mount is detached and the
/// directory removed.
///
/// `ok`: release_agent could be opened for writing (a write would choose
/// the program the host runs). The mount's errno: the mount was refused (EPERM without
/// CAP_SYS_ADMIN). `ok, but`: mounted, but no mount had release_agent at
/// its root (the container's cgroup namespace starts below the root in
/// every hierarchy), or the cleanup failed. Not attempted: a host with
/// cgroup v2 alone (v2 has no release_agent).
fn release_agent() -> Outcome {
    let listed = match std::fs::read_to_string("/proc/self/cgroup") {
        Ok(text) => text,
        Err(e) => return Outcome::NotMade(format!("/proc/self/cgroup: {}", reason(&e))),
    };
    let hierarchies = by_likelihood(v1_hierarchies(&listed));
    if hierarchies.is_empty() {
        return Outcome::NotMade("no cgroup v1 hierarchy: cgroup v2 only".to_string());
    }
    let hex = match random_hex() {
        Ok(hex) => hex,
        Err(e) => return Outcome::NotMade(format!("getrandom: {}", reason(&e))),
    };
    let dir = format!("/tmp/.probe-cgroup-{hex}");
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        return Outcome::NotMade(format!("{dir}: mkdir: {}", reason(&e)));
    }
    let Ok(c_dir) = CString::new(dir.clone()) else {
        return Outcome::NotMade(format!("{dir:?}: NUL in the path"));
    };
    let mut refused = None;
    let mut mounted = Vec::new();
    let mut found = None;
    for controllers in &hierarchies {
        let Ok(data) = CString::new(mount_data(controllers)) else {
            continue;
        };
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // SAFETY: every pointer is a valid NUL-terminated string that
        // outlives the call.
        let ret = unsafe {
            libc::mount(
                c"cgroup".as_ptr(),
                c_dir.as_ptr(),
                c"cgroup".as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
        };
        if ret != 0 {
            refused.get_or_insert(last_errno());
            continue;
        }
        mounted.push(controllers.as_str());
        let agent = format!("{dir}/release_agent");
        let opened = match std::fs::symlink_metadata(&agent) {
            Ok(_) => Some(open_for_writing(&agent)),
            Err(_) => None,
        };
        // SAFETY: `c_dir` is a valid NUL-terminated path.
        if unsafe { libc::umount2(c_dir.as_ptr(), libc::MNT_DETACH) } != 0 {
            // Still mounted: the directory cannot go, and no other
            // hierarchy can be mounted there. The mount is in the
            // container's mount namespace, and goes with it.
            let e = io::Error::last_os_error();
            return Outcome::OkBut(format!("{dir}: umount2: {}", reason(&e)));
        }
        if let Some(opened) = opened {
            found = Some(opened);
            break;
        }
    }
    let removed = std::fs::remove_dir(&dir);
    match (found, removed) {
        (Some(Ok(())), Ok(())) => Outcome::Ok,
        (Some(Err(e)), Ok(())) => Outcome::OkBut(format!(
            "release_agent would not open for writing: {}",
            reason(&e)
        )),
        (Some(_), Err(e)) => Outcome::OkBut(format!("{dir}: rmdir: {}", reason(&e))),
        (None, removed) if !mounted.is_empty() => Outcome::OkBut(format!(
            "no release_agent at the root of {}: the container's cgroup is not the root{}",
            mounted.join(" "),
            match removed {
                Ok(()) => String::new(),
                Err(e) => format!("; {dir}: rmdir: {}", reason(&e)),
            }
        )),
        // Nothing was mounted: the answer is the mount's. An empty
        // directory left in the container's /tmp would be its own.
        (None, _) => match refused {
            Some(errno) => Outcome::Errno(errno),
            None => Outcome::NotMade("no hierarchy could be named to mount(2)".to_string()),
        },
    }
}

/// open(2) O_WRONLY, then close without a write.
fn open_for_writing(path: &str) -> io::Result<()> {
    std::fs::OpenOptions::new().write(true).open(path).map(drop)
}

/// keyctl(2) commands and special keyring ids, from
/// include/uapi/linux/keyctl.h.
const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
const KEY_SPEC_USER_KEYRING: libc::c_long = -4;

/// security/keys/keyctl.c, keyctl_get_keyring_ID(): no capability is
/// asked; lookup_user_key() finds the caller's user keyring (made on
/// first use, empty), whose serial number is returned. Keyrings belong to
/// a uid in a user namespace, and the container is root in the initial
/// one: this is the host root's own user keyring, the one its logins and
/// services keep keys in. Nothing is read from it or added to it; create
/// (the third argument) is 0.
fn keyctl() -> Outcome {
    // SAFETY: integer arguments only.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_USER_KEYRING,
            0 as libc::c_long,
        )
    };
    outcome(ret)
}

/// No bpf(2) command has this number (there are about 40, and proposed
/// flag bits start at 1 << 16).
const BAD_BPF_CMD: libc::c_long = 1000;

/// kernel/bpf/syscall.c, __sys_bpf(): the attribute size is checked
/// (bpf_check_uarg_tail_zero: a short one is fine), the attributes are
/// copied in, the LSM hook is asked, and the command switch answers
/// EINVAL for a number it does not know. kernel.unprivileged_bpf_disabled
/// is no longer asked there: until 5.19 it was, first, for every command
/// (EPERM without CAP_BPF or CAP_SYS_ADMIN); then only for BPF_MAP_CREATE
/// and BPF_PROG_LOAD; since 6.5 (1d28635abcf1, "bpf: Move unprivileged
/// checks into map_create() and bpf_prog_load()") inside those two. So
/// without any capability the call reaches the switch, and nothing is
/// made.
fn bpf() -> Outcome {
    let mut attr = [0u8; 16];
    // SAFETY: `attr` is valid for its length, which is what is passed;
    // the kernel only reads it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BAD_BPF_CMD,
            attr.as_mut_ptr(),
            attr.len() as libc::c_ulong,
        )
    };
    outcome(ret)
}

/// include/uapi/linux/userfaultfd.h: handle faults in user mode only.
const UFFD_USER_MODE_ONLY: libc::c_int = 1;

/// fs/userfaultfd.c, userfaultfd_syscall_allowed(): UFFD_USER_MODE_ONLY
/// (since 5.11) is allowed to everybody, whatever
/// vm.unprivileged_userfaultfd says; that sysctl, and CAP_SYS_PTRACE,
/// only decide who may handle faults the kernel itself takes (in a
/// copy_from_user(): the way exploits hold the kernel still in the
/// middle of a race). The new descriptor has no memory registered and is
/// closed at once. Kernels before 5.11 refuse the flag (EINVAL), or, with
/// the sysctl at 0, refuse anybody without CAP_SYS_PTRACE first (EPERM);
/// one built without userfaultfd says ENOSYS.
fn userfaultfd() -> Outcome {
    // SAFETY: integer argument only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, UFFD_USER_MODE_ONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Outcome::Errno(last_errno());
    }
    // SAFETY: the call succeeded: `fd` is open and owned by nobody else;
    // dropping it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
    Outcome::Ok
}

/// kernel/events/core.c, SYSCALL_DEFINE5(perf_event_open): unknown flags
/// → EINVAL, then perf_copy_attr(), which reads the attribute's `size`
/// (the second u32) and refuses one below PERF_ATTR_SIZE_VER0 (64 bytes):
/// E2BIG, after writing the size it wants back into `size`. Only then come
/// the LSM hook (since 6.2; before, it came first, and answers nothing
/// without an LSM that cares) and kernel.perf_event_paranoid with
/// CAP_PERFMON. Size 1: no counter is ever opened. (Debian's and
/// Android's kernels take paranoid level 3, "nobody without
/// CAP_SYS_ADMIN", before perf_copy_attr(): EACCES there.)
fn perf_event_open() -> Outcome {
    let mut attr = [0u32; 32];
    attr[1] = 1;
    // SAFETY: `attr` is 128 bytes, valid to read and to write (the kernel
    // writes `size` back), for the call; the rest are integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_mut_ptr(),
            0 as libc::pid_t,
            -1 as libc::c_int,
            -1 as libc::c_int,
            0 as libc::c_ulong,
        )
    };
    if fd < 0 {
        return Outcome::Errno(last_errno());
    }
    // SAFETY: the call succeeded (it cannot, with size 1): `fd` is open
    // and owned by nobody else; dropping it closes it.
    drop(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
    Outcome::Ok
}

/// include/uapi/linux/personality.h: PROT_READ implies PROT_EXEC.
const READ_IMPLIES_EXEC: libc::c_ulong = 0x040_0000;

/// kernel/exec_domain.c, SYSCALL_DEFINE1(personality): no check at all;
/// the persona is set and the old one returned. docker's profile allows
/// only 0 (PER_LINUX), 8 (PER_LINUX32), 0x20000 (UNAME26), 0x20008 and
/// 0xffffffff (query): the others switch on old ABIs, little tested.
/// READ_IMPLIES_EXEC makes every readable mapping executable, from the
/// next execve(2) on; set in a child that exits at once.
fn personality() -> Outcome {
    in_a_child(|| {
        // SAFETY: integer argument only; personality is a plain system
        // call, async-signal-safe.
        unsafe { libc::syscall(libc::SYS_personality, READ_IMPLIES_EXEC) }
    })
}

/// kernel/fork.c, copy_process() → copy_creds() → create_user_ns() in
/// kernel/user_namespace.c: no capability is asked (a user namespace
/// is how an unprivileged process gets capabilities, over what it owns);
/// the checks are the nesting depth (32), user.max_user_namespaces
/// (ENOSPC), a chroot (EPERM), the caller's uid and gid having a mapping,
/// and the LSM hook. docker's seccomp profile refuses clone(2) with
/// CLONE_NEWUSER, as with the other namespace flags, to all without
/// CAP_SYS_ADMIN. The raw system call, without a new stack: the child
/// runs on a copy of this one, like fork(2), and _exits at once, taking
/// the new namespace with it; it is reaped.
fn clone_newuser() -> Outcome {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
    // Without CLONE_*TID or CLONE_SETTLS the null pointers are never used.
    // SAFETY: with a null stack the child continues on a copy of this
    // one, as after fork(2); it calls only _exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    if pid == -1 {
        return Outcome::Errno(last_errno());
    }
    if pid == 0 {
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(0) };
    }
    child_outcome(reap(pid as libc::pid_t))
}

/// kernel/fork.c, ksys_unshare(): CLONE_NEWUSER brings CLONE_THREAD and
/// CLONE_FS with it (check_unshare_flags: EINVAL for a process with
/// threads, or one sharing its fs_struct), then unshare_userns() →
/// create_user_ns(), with the checks of `clone-newuser` and no capability.
/// docker's profile refuses unshare(2) altogether without CAP_SYS_ADMIN.
/// In a child that exits at once (which has no threads).
fn unshare_user() -> Outcome {
    in_a_child(|| {
        // SAFETY: integer argument only; unshare is async-signal-safe.
        unsafe { libc::unshare(libc::CLONE_NEWUSER) as libc::c_long }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_and_unique() {
        for attempt in ALL {
            assert_eq!(find(attempt.name).map(|a| a.name), Some(attempt.name));
            assert!(
                attempt.needs.starts_with("CAP_") || attempt.needs.starts_with("seccomp ("),
                "{}",
                attempt.name
            );
        }
        let mut names: Vec<&str> = ALL.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(find("sethostname").is_none());
        assert!(find("REBOOT").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn outcomes_read_as_errno_names_and_meanings() {
        assert_eq!(Outcome::Ok.to_string(), "ok");
        assert_eq!(
            Outcome::Errno(libc::EPERM).to_string(),
            "EPERM (Operation not permitted)"
        );
        assert_eq!(
            Outcome::Errno(libc::EINVAL).to_string(),
            "EINVAL (Invalid argument)"
        );
        assert_eq!(
            Outcome::Errno(libc::ENOEXEC).to_string(),
            "ENOEXEC (Exec format error)"
        );
        assert_eq!(
            Outcome::Errno(libc::ENOSYS).to_string(),
            "ENOSYS (Function not implemented)"
        );
        assert_eq!(
            Outcome::Errno(libc::E2BIG).to_string(),
            "E2BIG (Argument list too long)"
        );
        assert_eq!(describe_errno(4000), "errno 4000 (Unknown error 4000)");
        assert_eq!(
            Outcome::NotMade("fork: x".into()).to_string(),
            "not attempted (fork: x)"
        );
        assert_eq!(Outcome::OkBut("y".into()).to_string(), "ok, but y");
    }

    #[test]
    fn the_bad_reboot_command_is_no_command() {
        for known in [
            0x0123_4567u32, // RESTART
            0xcdef_0123,    // HALT
            0x89ab_cdef,    // CAD_ON
            0,              // CAD_OFF
            0x4321_fedc,    // POWER_OFF
            0xa1b2_c3d4,    // RESTART2
            0xd000_fce2,    // SW_SUSPEND
            0x4558_4543,    // KEXEC
        ] {
            assert_ne!(BAD_CMD, known);
        }
    }

    /// The attempts that fork reap their child, whatever the answer. (Run
    /// on the host: each changes only its child. A host may refuse user
    /// namespaces, with ENOSPC or EPERM.)
    #[test]
    fn forking_attempts_leave_no_child() {
        for outcome in [unshare(), ptrace()] {
            assert!(
                matches!(outcome, Outcome::Ok | Outcome::Errno(libc::EPERM)),
                "{outcome}"
            );
        }
        for outcome in [personality(), clone_newuser(), unshare_user()] {
            assert!(
                matches!(outcome, Outcome::Ok | Outcome::Errno(_)),
                "{outcome}"
            );
        }
        // SAFETY: a null status pointer is allowed.
        let ret = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(ret, -1);
        assert_eq!(last_errno(), libc::ECHILD);
    }

    #[test]
    fn v1_hierarchies_are_read_from_proc_self_cgroup() {
        let hybrid = "12:rdma:/\n\
                      9:name=systemd:/user.slice/x:y.scope\n\
                      4:memory:/stepbox/stepbox-1\n\
                      2:cpu,cpuacct:/\n\
                      0::/user.slice\n";
        assert_eq!(
            v1_hierarchies(hybrid),
            ["rdma", "name=systemd", "memory", "cpu,cpuacct"]
        );
        // Pure v2: one line, no controllers.
        assert!(v1_hierarchies("0::/\n").is_empty());
        assert!(v1_hierarchies("").is_empty());
        // Anything that is not ID:CONTROLLERS:PATH is no hierarchy.
        assert!(v1_hierarchies("garbage\n3:freezer\n").is_empty());
    }

    #[test]
    fn named_hierarchies_are_mounted_with_none() {
        assert_eq!(mount_data("rdma"), "rdma");
        assert_eq!(mount_data("cpu,cpuacct"), "cpu,cpuacct");
        assert_eq!(mount_data("name=systemd"), "none,name=systemd");
        assert_eq!(mount_data("cpu,name=x"), "cpu,name=x");
    }

    #[test]
    fn hierarchies_containers_seldom_get_come_first() {
        let listed = [
            "name=systemd",
            "pids",
            "memory",
            "net_cls,net_prio",
            "cpu,cpuacct",
            "freezer",
            "rdma",
        ];
        let order = by_likelihood(listed.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            order,
            [
                "net_cls,net_prio",
                "rdma",
                "name=systemd",
                "freezer",
                "pids",
                "memory",
                "cpu,cpuacct"
            ]
        );
    }

    #[test]
    fn the_bad_bpf_command_is_no_command_and_no_flag() {
        // The commands count up from 0, and were below 40 in 2025.
        assert!((100..1 << 16).contains(&BAD_BPF_CMD));
    }
}
