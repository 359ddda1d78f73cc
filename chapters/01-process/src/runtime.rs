//! Starting the child, handing it over to the steps, waiting for it.

use crate::error::{Context, Error, Result, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, EXIT_RUNTIME};
use crate::step::{Ctx, Step};
use nix::errno::Errno;
use nix::sched::{clone, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execve, geteuid, Pid};
use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

/// How the container's command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signaled(Signal),
}

impl Outcome {
    /// The runtime's own exit status: the command's, or 128+N for signal N, as a shell reports it.
    pub fn code(self) -> i32 {
        match self {
            Outcome::Exited(c) => c,
            Outcome::Signaled(s) => 128 + s as i32,
        }
    }
}

// ANCHOR: forwarded
/// Signals the runtime passes on to the container instead of dying from them,
/// plus SIGCHLD, which tells it the child has exited. They are blocked for the
/// whole run and collected with sigwait(2), so no handler races with setup.
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD,
    ] {
        set.add(s);
    }
    set
}
// ANCHOR_END: forwarded

/// Runs `command` in a child set up by `steps`; cleans up whatever happens.
pub fn run(ctx: &mut Ctx, steps: &mut [Box<dyn Step>], command: &[OsString]) -> Result<Outcome> {
    let argv = command
        .iter()
        .map(|a| {
            CString::new(a.as_bytes()).map_err(|_| Error::runtime("command contains a NUL byte"))
        })
        .collect::<Result<Vec<_>>>()?;
    if argv.is_empty() {
        return Err(Error::runtime("no command given"));
    }
    ctx.command = command.to_vec();
    ctx.undo = crate::state::Undo::of(steps);

    // Blocked before anything is created: a Ctrl-C during setup must not kill
    // the runtime half-way and leave a cgroup or a veth behind.
    forwarded_signals()
        .thread_block()
        .context("sigprocmask(2)")?;

    let mut prepared = 0;
    let mut result = Ok(Outcome::Exited(0));
    for step in steps.iter_mut() {
        if let Err(e) = step.prepare(ctx) {
            result = Err(e);
            break;
        }
        prepared += 1;
    }
    if prepared == steps.len() {
        result = interrupted().and_then(|_| launch(ctx, steps, &argv));
    }
    ctx.outcome = result.as_ref().ok().copied();
    // Every step is cleaned up, even after one failed: each failure is one
    // thing left on the host, and all of them are reported.
    let mut left = Vec::new();
    for step in steps[..prepared].iter_mut().rev() {
        if let Err(e) = step.cleanup(ctx) {
            left.push(e.msg);
        }
    }
    // The state record goes once what it lists has; otherwise it stays, for --gc.
    crate::state::finish(ctx, &mut left);
    if left.is_empty() {
        return result;
    }
    let left = left.join("; ");
    // A cleanup that failed is a runtime error, whatever the command did: a
    // caller that sees 0 would assume the host is as it was.
    Err(Error::runtime(match result {
        Ok(outcome) => format!(
            "the container exited with status {}, but cleaning up failed: {left}",
            outcome.code()
        ),
        Err(e) => format!("{}; then cleaning up failed too: {left}", e.msg),
    }))
}

/// Whether SIGINT, SIGTERM, SIGHUP or SIGQUIT is pending: they are blocked
/// for the whole run (see [`run`]), so a Ctrl-C during setup waits here
/// instead of killing the runtime half-way. A long prepare() (unpacking a
/// big layer) calls it between units of work to stop early; the signal stays
/// pending, so the check before clone(2) sees it too.
pub fn interrupted() -> Result<()> {
    // SAFETY: an all-zero sigset_t is a valid (empty) set, filled by sigpending.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `pending` is a valid sigset_t to write to.
    if unsafe { libc::sigpending(&mut pending) } != 0 {
        return Err(Errno::last()).context("sigpending(2)");
    }
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: `pending` is an initialised sigset_t; `s` a valid signal number.
        if unsafe { libc::sigismember(&pending, s as i32) } == 1 {
            return Err(Error::with_code(
                128 + s as i32,
                format!("interrupted by {s} before the container started"),
            ));
        }
    }
    Ok(())
}

// ANCHOR: launch
fn launch(ctx: &mut Ctx, steps: &mut [Box<dyn Step>], argv: &[CString]) -> Result<Outcome> {
    let flags = steps
        .iter()
        .fold(CloneFlags::empty(), |f, s| f | s.clone_flags());
    if !flags.is_empty() && !geteuid().is_root() {
        return Err(Error::runtime(format!(
            "creating namespaces needs root (CAP_SYS_ADMIN); run it as root: sudo {} ...",
            ctx.prog
        )));
    }
    // "go": the parent tells the child that it may start. "report": the child
    // tells the parent why it failed; it is close-on-exec, so a successful
    // execve(2) closes it and the parent reads end-of-file.
    let (go_rx, mut go_tx) = std::io::pipe().context("pipe(2)")?;
    let (mut report_rx, report_tx) = std::io::pipe().context("pipe(2)")?;
    ctx.report_fd = report_tx.as_raw_fd();

    ctx.say(format_args!("clone(2) flags={}", flag_names(flags)));
    let mut stack = vec![0u8; 1 << 20];
    let child_ctx: &Ctx = ctx;
    let child_steps: &[Box<dyn Step>] = steps;
    // SAFETY: clone(2) without CLONE_VM gives the child a copy of this
    // address space, as fork(2) does; the closure runs on `stack`, which
    // outlives the call in the parent and is the child's own copy. The child
    // may allocate and take locks: the runtime is single-threaded when it
    // clones (the binaries never start a thread), so no lock is held by a
    // thread that does not exist in the child. A multi-threaded caller must
    // not call run() (see book/src/architecture.md).
    // SAFETY: as above.
    let child = unsafe {
        clone(
            Box::new(|| {
                // In the child: a copy of the parent's memory, its own fd table.
                libc::close(go_tx.as_raw_fd());
                libc::close(report_rx.as_raw_fd());
                child_main(child_ctx, child_steps, argv, &go_rx)
            }),
            &mut stack,
            flags,
            Some(libc::SIGCHLD),
        )
    }
    .context("clone(2)")?;
    drop(go_rx);
    drop(report_tx);

    for step in steps.iter_mut() {
        if let Err(e) = step.after_clone(ctx, child) {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Err(e);
        }
    }
    // If the child already died, the write fails and the report says why.
    let _ = go_tx.write_all(b"g");
    drop(go_tx);

    let mut report = Vec::new();
    let _ = report_rx.read_to_end(&mut report);
    if let Some((&code, msg)) = report.split_first() {
        let _ = waitpid(child, None);
        return Err(Error::with_code(code as i32, String::from_utf8_lossy(msg)));
    }
    wait_forwarding(child, false)
}
// ANCHOR_END: launch

fn child_main(
    ctx: &Ctx,
    steps: &[Box<dyn Step>],
    argv: &[CString],
    go: &std::io::PipeReader,
) -> isize {
    // If the runtime dies (even by SIGKILL), take the container with it.
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The runtime's lock on its state record is not the container's to hold:
    // an init that outlived the runtime for a moment would make a sweep
    // take the runtime for alive. Closing our copy leaves the parent's lock.
    if let Some(fd) = ctx.record_fd() {
        // SAFETY: the fd is this process's copy of the record's lock file;
        // nothing in the child uses it (its File is never dropped here).
        unsafe { libc::close(fd) };
    }
    let mut byte = [0u8; 1];
    if !matches!((&*go).read(&mut byte), Ok(1)) {
        // The parent gave up before releasing us; it reports why.
        // SAFETY: _exit(2) ends this process at once, running nothing of ours.
        unsafe { libc::_exit(EXIT_RUNTIME) };
    }
    let err = (|| {
        for step in steps {
            step.in_child(ctx)?;
        }
        for step in steps {
            step.before_exec(ctx)?;
        }
        default_signals()?;
        exec(ctx, argv)
    })()
    .unwrap_err();
    report_failure(ctx, &err)
}

// ANCHOR: default_signals
/// The command starts as a process started by init would: every signal's
/// action at its default and nothing blocked. execve(2) keeps an ignored
/// signal ignored and the mask as it is, so without this the command would
/// inherit the runtime's blocked signals, and what the runtime was given
/// ignored: Rust ignores SIGPIPE at start (a `yes | head -n1` in the
/// container would then never end), and `nohup` ignores SIGHUP.
pub fn default_signals() -> Result<()> {
    /// The kernel's `struct sigaction` (not glibc's, whose mask is 128 bytes).
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue; // their actions cannot be changed
        }
        // The raw system call, because glibc's sigaction(3) refuses 32 and
        // 33, which it keeps for its threads, and a caller may have left them
        // ignored.
        // SIG_DFL installs no handler, so no code of ours can run in signal
        // context; the struct has the kernel's layout and the size argument
        // is its mask's (8 bytes).
        // SAFETY: see above.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &dfl as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    SigSet::empty()
        .thread_set_mask()
        .context("sigprocmask(2) SIG_SETMASK {}")
}
// ANCHOR_END: default_signals

/// Sends `err` up the report pipe and exits; for code that runs in the child.
pub fn report_failure(ctx: &Ctx, err: &Error) -> ! {
    let mut msg = vec![err.code as u8];
    msg.extend_from_slice(err.msg.as_bytes());
    // SAFETY: `msg` is valid for `msg.len()` bytes; a closed or bad report_fd
    // only makes write(2) fail. _exit(2) rather than exit(3): this is a copy
    // of the parent, whose stdio buffers and atexit handlers are not ours.
    // SAFETY: as above.
    unsafe {
        libc::write(ctx.report_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(err.code)
    }
}

// ANCHOR: exec
/// execve(2) the command with the container's environment (`ctx.env`, and
/// `HOSTNAME`), looking a bare name up in the container's `PATH` as a shell
/// would: not in the runtime's `PATH`, which is the host's, and not through
/// execvp(3), which would read it from the runtime's environment. Returns
/// only on failure, with a shell's exit code: 127 not found, 126 cannot
/// execute.
pub fn exec(ctx: &Ctx, argv: &[CString]) -> Result<std::convert::Infallible> {
    let mut env = ctx.env.clone();
    if !env.iter().any(|(n, _)| n == "HOSTNAME") {
        // After chapter 6's sethostname(2): the container's own name, as docker sets it.
        if let Ok(name) = nix::unistd::gethostname() {
            env.push(("HOSTNAME".into(), name.to_string_lossy().into_owned()));
        }
    }
    let envp = env
        .iter()
        .map(|(n, v)| CString::new(format!("{n}={v}")))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::runtime("an environment variable contains a NUL byte"))?;
    let name = argv[0].to_string_lossy();
    let program = if argv[0].as_bytes().contains(&b'/') {
        argv[0].clone()
    } else {
        find_in_path(argv[0].as_bytes(), ctx.env_var("PATH").unwrap_or("")).ok_or_else(|| {
            Error::with_code(
                EXIT_NOT_FOUND,
                format!("{name}: command not found in $PATH"),
            )
        })?
    };
    let errno = execve(&program, argv, &envp).unwrap_err();
    Err(match errno {
        Errno::ENOENT | Errno::ENOTDIR => {
            Error::with_code(EXIT_NOT_FOUND, format!("{name}: no such file"))
        }
        _ => Error::with_code(
            EXIT_CANNOT_EXEC,
            format!("{name}: cannot execute: {}", crate::error::describe(errno)),
        ),
    })
}

/// The first `DIR/NAME`, for DIR in `path` (`:`-separated; an empty entry
/// is the current directory), that is an executable regular file: what
/// execvp(3) looks for. Failing that, the first one that exists but is not
/// executable, so that execve(2) reports why (126), as a shell does.
pub fn find_in_path(name: &[u8], path: &str) -> Option<CString> {
    use nix::sys::stat::{stat, SFlag};
    use nix::unistd::{access, AccessFlags};
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let mut full = dir.as_bytes().to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let Ok(full) = CString::new(full) else {
            continue;
        };
        let regular = stat(full.as_c_str()).is_ok_and(|st| {
            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
        });
        if !regular {
            continue;
        }
        if access(full.as_c_str(), AccessFlags::X_OK).is_ok() {
            return Some(full);
        }
        denied.get_or_insert(full);
    }
    denied
}
// ANCHOR_END: exec

// ANCHOR: wait
/// Waits for `child`, passing on every forwarded signal to it. With
/// `reap_all` (an init process) it also reaps any other child that exits.
pub fn wait_forwarding(child: Pid, reap_all: bool) -> Result<Outcome> {
    let signals = forwarded_signals();
    let who = if reap_all { None } else { Some(child) };
    loop {
        loop {
            match waitpid(who, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                    return Ok(Outcome::Exited(code))
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                    return Ok(Outcome::Signaled(sig))
                }
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waitpid(2)"),
            }
        }
        // A SIGCHLD that arrives between waitpid and here stays pending, so this never sleeps through an exit.
        // sigwaitinfo(2) rather than sigwait(2): it also says who sent the signal.
        // SAFETY: an all-zero siginfo_t is valid, and the kernel fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `signals` is a valid sigset_t and `info` a valid buffer.
        let n = unsafe { libc::sigwaitinfo(signals.as_ref(), &mut info) };
        if n < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e).context("sigwaitinfo(2)"),
            }
        }
        let Ok(sig) = Signal::try_from(n) else {
            continue;
        };
        if sig != Signal::SIGCHLD && !from_terminal(sig, &info, child) {
            let _ = kill(child, sig);
        }
    }
}

/// A terminal sends Ctrl-C (SIGINT), Ctrl-\ (SIGQUIT) and a resize
/// (SIGWINCH) to its whole foreground process group, as the kernel
/// (`SI_KERNEL`). The container's first process is in the runtime's process
/// group (clone(2) does not change it), so it got the same signal already:
/// passing it on would deliver it twice (a shell's trap ran twice per
/// Ctrl-C). Inside a pid namespace both group ids read as 0, which compares
/// equal too. A signal sent with kill(2) is always passed on.
fn from_terminal(sig: Signal, info: &libc::siginfo_t, child: Pid) -> bool {
    info.si_code == libc::SI_KERNEL
        && matches!(sig, Signal::SIGINT | Signal::SIGQUIT | Signal::SIGWINCH)
        && nix::unistd::getpgid(Some(child)) == Ok(nix::unistd::getpgrp())
}
// ANCHOR_END: wait

/// `CLONE_NEWPID|CLONE_NEWNET`, for `-v` and the book.
pub fn flag_names(flags: CloneFlags) -> String {
    if flags.is_empty() {
        return "0 (no new namespaces: like fork(2))".into();
    }
    let names: Vec<String> = flags.iter_names().map(|(n, _)| n.to_string()).collect();
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn find_in_path_takes_the_first_executable_file() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir(a.join("tool")).unwrap(); // a directory: skipped
        std::fs::write(b.join("tool"), "").unwrap(); // not executable
        std::fs::write(c.join("tool"), "").unwrap();
        std::fs::set_permissions(c.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}:{}", a.display(), b.display(), c.display());
        let found = find_in_path(b"tool", &path).unwrap();
        assert_eq!(found.to_str().unwrap(), c.join("tool").to_str().unwrap());
        // Without c: the non-executable one, for execve(2) to refuse (126).
        let path = format!("{}:{}", a.display(), b.display());
        let found = find_in_path(b"tool", &path).unwrap();
        assert_eq!(found.to_str().unwrap(), b.join("tool").to_str().unwrap());
        assert_eq!(find_in_path(b"tool", &a.display().to_string()), None);
        assert_eq!(find_in_path(b"tool", ""), None);
    }

    #[test]
    fn outcomes_map_to_shell_exit_codes() {
        assert_eq!(Outcome::Exited(3).code(), 3);
        assert_eq!(Outcome::Signaled(Signal::SIGKILL).code(), 137);
        assert_eq!(Outcome::Signaled(Signal::SIGINT).code(), 130);
    }
}
