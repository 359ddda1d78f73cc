//! A container's lifecycle: create (every stage up to the exec, the pid
//! known), start, wait, kill, delete; and `run`, the foreground composition
//! of them that every chapter's binary is.

use crate::error::{Context, Error, Result, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, EXIT_RUNTIME};
use crate::protocol::{Channel, Msg};
use crate::step::{Ctx, Step};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{execve, geteuid, Pid};
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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
/// plus SIGCHLD, which tells an init (chapter 2) that a child has exited.
/// A foreground run blocks them from the start and reads them from a
/// signalfd(2) while it waits, so no handler races with setup.
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

/// Runs `command` in the foreground: create, start, wait while passing
/// signals on, delete. The container dies with the runtime
/// (`PR_SET_PDEATHSIG`), and the host is cleaned up whatever happens.
pub fn run(ctx: Ctx, steps: Vec<Box<dyn Step>>, command: &[OsString]) -> Result<Outcome> {
    run_with(ctx, steps, command, |_| Ok(()))
}

/// [`run`], calling `created` once the container waits to start (chapter
/// 12 writes its state file there, for `state` to read during the run).
pub fn run_with(
    ctx: Ctx,
    steps: Vec<Box<dyn Step>>,
    command: &[OsString],
    created: impl FnOnce(&Container) -> Result<()>,
) -> Result<Outcome> {
    // Blocked before anything is created: a Ctrl-C during setup must not kill
    // the runtime half-way and leave a cgroup or a veth behind. They are
    // collected later, and passed on.
    forwarded_signals()
        .thread_block()
        .context("sigprocmask(2)")?;
    let mut container = Container::create_with(ctx, steps, command, true)?;
    let result = created(&container)
        .and_then(|_| interrupted())
        .and_then(|_| container.start())
        .and_then(|_| container.wait_forwarding());
    let cleaned = container.delete();
    match (result, cleaned) {
        (result, Ok(())) => result,
        (Ok(outcome), Err(left)) => Err(Error::runtime(format!(
            "the container exited with status {}, but {}",
            outcome.code(),
            left.msg
        ))),
        (Err(e), Err(left)) => Err(Error::with_code(
            EXIT_RUNTIME,
            format!("{}; then {}", e.msg, left.msg),
        )),
    }
}

// ANCHOR: lifecycle
/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Set up, blocked before execve(2), waiting for start().
    Created,
    /// The command runs.
    Running,
    /// It has exited (or never ran its command), and has been reaped.
    Stopped(Option<Outcome>),
}

/// One container, from create() to delete(). It owns its context and its
/// steps, so several can live in one program, on several threads: the
/// process that becomes the container is always cloned by a
/// single-threaded process, the caller itself or a fork of it (see
/// `spawn`).
pub struct Container {
    pub ctx: Ctx,
    steps: Vec<Box<dyn Step>>,
    /// How many steps' prepare() succeeded: only they are cleaned up.
    prepared: usize,
    pid: Pid,
    pidfd: Option<OwnedFd>,
    channel: Option<Channel>,
    status: Status,
    deleted: bool,
}

impl Container {
    /// Checks every step's input, prepares the host, and makes the
    /// container's process, which goes through every child stage up to the
    /// exec and waits there for start(). It does not die with the caller:
    /// until start() it waits on the channel, and ends if the caller is
    /// gone. On failure, whatever was made is removed again.
    pub fn create(ctx: Ctx, steps: Vec<Box<dyn Step>>, command: &[OsString]) -> Result<Container> {
        Container::create_with(ctx, steps, command, false)
    }

    fn create_with(
        mut ctx: Ctx,
        mut steps: Vec<Box<dyn Step>>,
        command: &[OsString],
        foreground: bool,
    ) -> Result<Container> {
        let argv = command
            .iter()
            .map(|a| {
                CString::new(a.as_bytes())
                    .map_err(|_| Error::runtime("command contains a NUL byte"))
            })
            .collect::<Result<Vec<_>>>()?;
        if argv.is_empty() {
            return Err(Error::runtime("no command given"));
        }
        ctx.command = command.to_vec();
        ctx.undo = crate::state::Undo::of(&steps);
        // A namespace that is joined is not created.
        let joined = ctx
            .join
            .iter()
            .fold(CloneFlags::empty(), |f, (flag, _)| f | *flag);
        let flags = steps
            .iter()
            .fold(CloneFlags::empty(), |f, s| f | s.clone_flags())
            & !joined;
        // Anyone may create a user namespace, and in it the others
        // (chapter 11); without one, namespaces need CAP_SYS_ADMIN.
        if !flags.is_empty() && !flags.contains(CloneFlags::CLONE_NEWUSER) && !geteuid().is_root() {
            return Err(Error::runtime(format!(
                "creating namespaces needs root (CAP_SYS_ADMIN); run it as root: sudo {} ...",
                ctx.prog
            )));
        }
        // Nothing is made before every step has accepted its input.
        for step in steps.iter_mut() {
            step.check(&mut ctx)?;
        }
        let mut container = Container {
            ctx,
            steps,
            prepared: 0,
            pid: Pid::from_raw(0),
            pidfd: None,
            channel: None,
            status: Status::Stopped(None),
            deleted: false,
        };
        match container.set_up(flags, &argv, foreground) {
            Ok(()) => Ok(container),
            Err(e) => Err(match container.delete() {
                Ok(()) => e,
                Err(left) => Error::with_code(e.code, format!("{}; then {}", e.msg, left.msg)),
            }),
        }
    }

    fn set_up(&mut self, flags: CloneFlags, argv: &[CString], foreground: bool) -> Result<()> {
        for i in 0..self.steps.len() {
            self.steps[i].prepare(&mut self.ctx)?;
            self.prepared += 1;
        }
        interrupted()?;
        let (ours, theirs) = Channel::pair()?;
        self.ctx.report_fd = theirs.fd();
        let (pid, pidfd) = spawn(
            &self.ctx,
            &self.steps,
            argv,
            (&ours, &theirs),
            flags,
            foreground,
        )?;
        drop(theirs);
        self.pid = pid;
        self.pidfd = Some(pidfd);
        self.channel = Some(ours);
        self.status = Status::Created;
        for i in 0..self.steps.len() {
            self.steps[i].after_clone(&self.ctx, pid)?;
        }
        let channel = self.channel.as_ref().expect("set above");
        // If the child died already, the send fails and its report says why.
        let sent = channel.send(&Msg::Go, &[]);
        match channel.recv() {
            Ok(Some((Msg::Ready, _))) => Ok(()),
            Ok(Some((Msg::Error { code, msg }, _))) => Err(Error::with_code(code, msg)),
            Ok(Some((other, _))) => Err(Error::runtime(format!(
                "the container's process sent {other:?} instead of Ready"
            ))),
            Ok(None) => {
                sent?;
                Err(Error::runtime(format!(
                    "the container's process (pid {pid}) ended during setup without a word"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// The container's first process, in the caller's pid namespace.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn status(&self) -> Status {
        self.status
    }

    /// Runs the command: the container leaves its wait, goes through the
    /// tail and execve(2)s. Returns once the exec has happened, or with
    /// the reason it failed (126 cannot execute, 127 not found).
    pub fn start(&mut self) -> Result<()> {
        if self.status != Status::Created {
            return Err(Error::runtime(format!(
                "container {} is not waiting to start ({:?})",
                self.ctx.id, self.status
            )));
        }
        let channel = self
            .channel
            .take()
            .expect("a created container has its channel");
        let sent = channel.send(&Msg::Start, &[]);
        let reply = channel.recv();
        self.status = Status::Running;
        match reply {
            // End-of-file: execve(2) closed the container's end (close-on-exec).
            Ok(None) if sent.is_ok() => Ok(()),
            Ok(Some((Msg::Error { code, msg }, _))) => {
                self.reap()?;
                Err(Error::with_code(code, msg))
            }
            other => {
                let outcome = self.reap()?;
                Err(Error::runtime(format!(
                    "starting the container failed ({}): its process ended with status {}",
                    match other {
                        Err(e) => e.msg,
                        Ok(m) => format!("{m:?}"),
                    },
                    outcome.map_or(-1, Outcome::code)
                )))
            }
        }
    }

    /// Sends `sig` to the container's first process, through its pidfd: the
    /// signal cannot reach another process that was given the same pid.
    pub fn kill(&self, sig: Signal) -> Result<()> {
        // The status first: reaping a stopped container dropped its pidfd too.
        if matches!(self.status, Status::Stopped(_)) {
            return Err(Error::runtime(format!(
                "container {} has stopped",
                self.ctx.id
            )));
        }
        let Some(pidfd) = &self.pidfd else {
            return Err(Error::runtime(format!(
                "container {} has no process",
                self.ctx.id
            )));
        };
        pidfd_send_signal(pidfd.as_fd(), sig).context(format!("pidfd_send_signal(2) {sig}"))
    }

    /// Waits for the command to end, without passing any signal on.
    pub fn wait(&mut self) -> Result<Outcome> {
        match self.status {
            Status::Stopped(Some(outcome)) => Ok(outcome),
            Status::Stopped(None) => Err(Error::runtime("the container never ran")),
            _ => self
                .reap()?
                .ok_or_else(|| Error::runtime("the container never ran")),
        }
    }

    // ANCHOR: wait
    /// Waits for the command to end, passing on every signal of
    /// [`forwarded_signals`] that reaches the runtime: `run`'s wait, which
    /// needs them blocked in the calling thread. The exit is seen on the
    /// pidfd, not through SIGCHLD, which in a program with several
    /// containers or threads may go to anyone.
    pub fn wait_forwarding(&mut self) -> Result<Outcome> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use nix::sys::signalfd::{SfdFlags, SignalFd};
        if self.status != Status::Running {
            return self.wait();
        }
        let signals = SignalFd::with_flags(
            &forwarded_signals(),
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )
        .context("signalfd(2)")?;
        let pidfd = self
            .pidfd
            .as_ref()
            .expect("a running container has a pidfd");
        loop {
            let mut fds = [
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e).context("poll(2)"),
            }
            if fds[0].any().unwrap_or(false) {
                break;
            }
            while let Ok(Some(info)) = signals.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                if sig != Signal::SIGCHLD && !from_terminal(sig, info.ssi_code, self.pid) {
                    let _ = pidfd_send_signal(pidfd.as_fd(), sig);
                }
            }
        }
        self.wait()
    }
    // ANCHOR_END: wait

    /// Reaps the container's process with waitid(2) on its pidfd.
    fn reap(&mut self) -> Result<Option<Outcome>> {
        let Some(pidfd) = &self.pidfd else {
            return Ok(None);
        };
        let outcome = loop {
            match nix::sys::wait::waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED) {
                Ok(WaitStatus::Exited(_, code)) => break Outcome::Exited(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => break Outcome::Signaled(sig),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waitid(2) P_PIDFD"),
            }
        };
        self.pidfd = None;
        self.channel = None;
        self.status = Status::Stopped(Some(outcome));
        self.ctx.outcome = Some(outcome);
        Ok(Some(outcome))
    }

    /// Removes the container: a process still there is killed (SIGKILL) and
    /// reaped, then every prepared step is cleaned up, in reverse order,
    /// even after one fails, and the state record goes once what it lists
    /// has. The error lists everything left on the host.
    pub fn delete(mut self) -> Result<()> {
        self.remove()
    }

    /// Leaves the created container to live on after this process
    /// (chapter 12's `create`, which exits and is asked to `start` it
    /// later): nothing is cleaned up, and the state record is handed to the
    /// container's process, so that no sweep takes its resources while it
    /// runs. Its start must then come through `ctx.start_fifo`.
    pub fn detach(mut self) -> Result<crate::state::Process> {
        let waits_on_fifo = self.status == Status::Created && self.ctx.start_fifo.is_some();
        if !waits_on_fifo && self.status != Status::Running {
            return Err(Error::runtime(format!(
                "container {} cannot be detached: only a running one, or a created one that \
                 waits on a start FIFO, can",
                self.ctx.id
            )));
        }
        let process = crate::state::Process::of(self.pid.as_raw()).ok_or_else(|| {
            Error::runtime(format!(
                "the container's process {} ended before it was detached",
                self.pid
            ))
        })?;
        crate::state::detach(&self.ctx, process)?;
        self.deleted = true;
        Ok(process)
    }

    fn remove(&mut self) -> Result<()> {
        self.deleted = true;
        let mut left = Vec::new();
        if let Some(pidfd) = &self.pidfd {
            let _ = pidfd_send_signal(pidfd.as_fd(), Signal::SIGKILL);
            if let Err(e) = self.reap() {
                left.push(format!("the container's process {}: {}", self.pid, e.msg));
            }
        }
        for step in self.steps[..self.prepared].iter_mut().rev() {
            if let Err(e) = step.cleanup(&self.ctx) {
                left.push(e.msg);
            }
        }
        self.prepared = 0;
        // The state record goes once what it lists has; otherwise it stays, for --gc.
        crate::state::finish(&self.ctx, &mut left);
        match left.is_empty() {
            true => Ok(()),
            false => Err(Error::runtime(format!(
                "cleaning up failed: {}",
                left.join("; ")
            ))),
        }
    }
}

impl Drop for Container {
    /// A container dropped without delete() (its owner panicked, say) is
    /// still removed: a long-running program must not leak cgroups.
    fn drop(&mut self) {
        if !self.deleted {
            if let Err(e) = self.remove() {
                self.ctx.tell(format_args!("{}", e.msg));
            }
        }
    }
}
// ANCHOR_END: lifecycle

/// pidfd_send_signal(2): `sig` to the process `pidfd` refers to, and to
/// no other that was given its pid since.
pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: Signal) -> std::result::Result<(), Errno> {
    // SAFETY: pidfd_send_signal(2) with a null siginfo reads no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

// ANCHOR: launch
/// Makes the container's process with clone(2), its namespaces' flags and
/// `CLONE_PIDFD` (the pidfd it is waited for and signalled through), and
/// returns once it waits for Go.
///
/// The child of clone(2) is a copy of the caller's memory with a single
/// thread, and it allocates and takes locks while it sets itself up. That
/// is safe only if the caller is single-threaded too, as a chapter's binary
/// is: a lock that another thread held at the clone would stay held for
/// ever in the copy. A caller with other threads (a program that runs
/// containers from several threads) goes through an intermediate: fork(2)
/// first, whose child is single-threaded and has malloc's locks reset by
/// glibc, and that child clones the container with `CLONE_PARENT`, so that
/// the container is still the caller's child, to be waited for, and passes
/// the pidfd up with `SCM_RIGHTS`.
fn spawn(
    ctx: &Ctx,
    steps: &[Box<dyn Step>],
    argv: &[CString],
    (ours, theirs): (&Channel, &Channel),
    flags: CloneFlags,
    foreground: bool,
) -> Result<(Pid, OwnedFd)> {
    if threads() == Some(1) && ctx.join.is_empty() {
        ctx.say(format_args!("clone(2) flags={}", flag_names(flags)));
        return match clone_pidfd(flags).context(format!("clone(2) {}", flag_names(flags)))? {
            Some(child) => Ok(child),
            None => {
                close_all_but(ctx, theirs.fd());
                container(ctx, steps, argv, theirs, foreground)
            }
        };
    }
    ctx.say(format_args!(
        "fork(2), {}then clone(2) flags=CLONE_PARENT|{}",
        ctx.join
            .iter()
            .map(|(f, _)| format!("setns(2) {}, ", flag_names(*f)))
            .collect::<String>(),
        flag_names(flags)
    ));
    // glibc's fork(2) leaves malloc usable in the child even when the
    // caller has other threads.
    // SAFETY: the child runs only intermediate(), which clones and _exit(2)s.
    let intermediate_pid = match unsafe { nix::unistd::fork() }.context("fork(2)")? {
        nix::unistd::ForkResult::Child => intermediate(ctx, steps, argv, theirs, flags, foreground),
        nix::unistd::ForkResult::Parent { child } => child,
    };
    let reply = ours.recv();
    // It exits right after its one message.
    let _ = waitpid(intermediate_pid, None);
    match reply? {
        Some((Msg::Created { pid }, mut fds)) if fds.len() == 1 => {
            Ok((Pid::from_raw(pid), fds.pop().expect("one fd")))
        }
        Some((Msg::Error { code, msg }, _)) => Err(Error::with_code(code, msg)),
        other => Err(Error::runtime(format!(
            "the intermediate process sent {other:?} instead of the container's pid"
        ))),
    }
}

/// How many threads this process has (`Threads:` in /proc/self/status).
/// While the caller is inside spawn() on its only thread, no other can
/// appear: a count of one cannot go stale.
fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// clone(2) as fork(2) makes it, with `flags` and `CLONE_PIDFD`: the raw
/// system call, without CLONE_VM and with no new stack, so the child goes
/// on from here on its own copy of this process's memory and stack.
/// Returns the child's pid and pidfd in the parent, None in the child.
fn clone_pidfd(flags: CloneFlags) -> std::result::Result<Option<(Pid, OwnedFd)>, Errno> {
    let mut pidfd: libc::c_int = -1;
    // lab: begin raw clone(2): flags, CLONE_PIDFD, SIGCHLD; None in the child
    let flags = flags | CloneFlags::from_bits_retain(libc::CLONE_PIDFD);
    // CLONE_PIDFD takes parent_tid's place: the kernel writes the pidfd
    // into `pidfd`. The callers make sure this process is single-threaded.
    // SAFETY: no CLONE_VM, so nothing is shared with the child.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    match pid {
        0 => Ok(None),
        -1 => Err(Errno::last()),
        // SAFETY: the kernel just made this descriptor, for us alone.
        pid => Ok(Some((Pid::from_raw(pid as i32), unsafe {
            OwnedFd::from_raw_fd(pidfd)
        }))),
    }
    // lab: end
}

/// The forked copy of a multi-threaded caller: clones the container and
/// reports its pid and pidfd.
fn intermediate(
    ctx: &Ctx,
    steps: &[Box<dyn Step>],
    argv: &[CString],
    channel: &Channel,
    flags: CloneFlags,
    foreground: bool,
) -> ! {
    // Every namespace but the user namespace first, while this process
    // still has the host's capabilities over them; the user namespace
    // last (a process in it has none over namespaces the host owns).
    let mut order: Vec<&(CloneFlags, OwnedFd)> = ctx.join.iter().collect();
    order.sort_by_key(|(f, _)| f.contains(CloneFlags::CLONE_NEWUSER));
    // The runtime reads one message from this process: the error, if any.
    let report = |what: String, e: Errno| {
        let msg = format!("{what}: {}", crate::error::describe(e));
        let _ = channel.send(
            &Msg::Error {
                code: EXIT_RUNTIME,
                msg,
            },
            &[],
        );
        EXIT_RUNTIME
    };
    for (flag, fd) in order {
        if let Err(e) = nix::sched::setns(fd, *flag) {
            let code = report(format!("setns(2) {}", flag_names(*flag)), e);
            // SAFETY: _exit(2) ends this copy of the runtime at once.
            unsafe { libc::_exit(code) }
        }
    }
    close_all_but(ctx, channel.fd());
    let code = match clone_pidfd(flags | CloneFlags::CLONE_PARENT) {
        Ok(None) => container(ctx, steps, argv, channel, foreground),
        Err(e) => report(format!("clone(2) CLONE_PARENT|{}", flag_names(flags)), e),
        Ok(Some((pid, pidfd))) => {
            let created = Msg::Created { pid: pid.as_raw() };
            match channel.send(&created, &[pidfd.as_fd()]) {
                Ok(()) => 0,
                Err(_) => EXIT_RUNTIME,
            }
        }
    };
    // SAFETY: _exit(2) rather than exit(3): this is a copy of the runtime,
    // whose stdio buffers and atexit handlers are not ours to run.
    unsafe { libc::_exit(code) }
}

/// close_range(2) of every descriptor but 0, 1, 2, the channel and
/// `ctx.keep_fds`: only stdin, stdout, stderr, the channel and what a step
/// asked for go on to the container. Not the runtime's own descriptors (its
/// state record's lock, whose holder a sweep takes for the runtime), nor
/// another thread's container's channel, whose end-of-file a copy here
/// would delay.
fn close_all_but(ctx: &Ctx, channel: libc::c_int) {
    let mut keep: Vec<libc::c_int> = ctx.keep_fds.iter().copied().filter(|&fd| fd > 2).collect();
    keep.push(channel);
    keep.sort_unstable();
    keep.dedup();
    // `channel` is below 3 only if the runtime was started with stdio closed.
    let mut first = 3;
    for fd in keep.into_iter().chain([libc::c_int::MAX]) {
        let last = if fd == libc::c_int::MAX { fd } else { fd - 1 };
        if first <= last {
            // Nothing of ours in this process (a child that never returns to
            // the caller's code) uses the closed ones again.
            // SAFETY: closes descriptors only.
            unsafe { libc::syscall(libc::SYS_close_range, first as u32, last as u32, 0u32) };
        }
        first = first.max(fd.saturating_add(1));
    }
}

/// The container's process: waits for Go, goes through every child stage,
/// says Ready, waits for Start, then the runtime's tail and execve(2).
fn container(
    ctx: &Ctx,
    steps: &[Box<dyn Step>],
    argv: &[CString],
    channel: &Channel,
    foreground: bool,
) -> ! {
    if foreground {
        // If the runtime dies (even by SIGKILL), take the container with it.
        // A runtime that died before this prctl(2) sends no signal, but it
        // closed its end of the channel: the wait for Go below ends.
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    }
    // A panic in a step's child code must not unwind into the caller's
    // frames, which this copy of the runtime shares: it is reported as an
    // error instead (with panic = "abort", the release build's, the process
    // just ends, and the runtime says so).
    let stages = std::panic::AssertUnwindSafe(|| {
        wait_for(channel, Msg::Go);
        // Opened now, on the host's path, before the mounts and the ids
        // change; reopened for writing through /proc/self/fd at start.
        let fifo = match &ctx.start_fifo {
            Some(path) => Some(
                nix::fcntl::open(
                    path,
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .context(format!("opening the start FIFO {}", path.display()))?,
            ),
            None => None,
        };
        for step in steps {
            step.identity(ctx)?;
        }
        for step in steps {
            step.setup(ctx)?;
        }
        for step in steps {
            step.privileges(ctx)?;
        }
        // The tail, which the runtime owns: what can fail is found out
        // before Ready, so that create() reports it.
        let command = Exec::resolve(ctx, argv)?;
        channel.send(&Msg::Ready, &[])?;
        let started = match fifo {
            None => {
                wait_for(channel, Msg::Start);
                None
            }
            Some(fd) => Some(wait_for_fifo(fd)?),
        };
        default_signals()?;
        let last = steps.iter().try_for_each(|step| step.last(ctx));
        // `start` waits for the FIFO's end of file: it returns once every
        // last() is done (chapter 12's startContainer hooks run there,
        // and the spec runs them before start's poststart hooks), and a
        // byte before it says one failed. Closed before before_exec(),
        // which may fork an init that stays.
        if let (Err(_), Some(fifo)) = (&last, &started) {
            let _ = nix::unistd::write(fifo, b"!");
        }
        drop(started);
        last?;
        for step in steps {
            step.before_exec(ctx)?;
        }
        Err::<std::convert::Infallible, _>(command.exec())
    });
    let err = match std::panic::catch_unwind(stages) {
        Ok(result) => result.unwrap_err(),
        Err(panic) => Error::runtime(format!(
            "a step panicked in the container's process: {}",
            panic
                .downcast_ref::<&str>()
                .copied()
                .or(panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)")
        )),
    };
    report_failure(ctx, &err)
}

// ANCHOR: fifo
/// Waits for `start` (chapter 12): opening the FIFO for writing blocks
/// until `start` opens it for reading; the byte written tells it the open
/// was ours. The O_PATH descriptor opened before pivot_root(2) is reopened
/// through /proc/self/fd, since the FIFO's path is gone from view. The
/// descriptor returned is the FIFO's open end: closing it tells `start`
/// the process is through its last steps.
fn wait_for_fifo(fd: std::os::fd::RawFd) -> Result<OwnedFd> {
    use nix::fcntl::OFlag;
    let path = format!("/proc/self/fd/{fd}");
    let file = nix::fcntl::open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("opening the start FIFO for writing")?;
    // SAFETY: open(2) just returned this descriptor; nothing else owns it.
    let file = unsafe { OwnedFd::from_raw_fd(file) };
    nix::unistd::write(&file, b"0").context("writing to the start FIFO")?;
    let _ = nix::unistd::close(fd);
    Ok(file)
}
// ANCHOR_END: fifo

/// Waits for `msg` from the runtime; anything else (end-of-file: the
/// runtime is gone or gave up) ends this process, which has nothing to
/// report to anyone.
fn wait_for(channel: &Channel, msg: Msg) {
    if !matches!(channel.recv(), Ok(Some((m, _))) if m == msg) {
        // SAFETY: _exit(2) ends this process at once, running nothing of ours.
        unsafe { libc::_exit(EXIT_RUNTIME) };
    }
}
// ANCHOR_END: launch

/// Sends `err` to the runtime as an Error message and exits; for code that
/// runs in the container's process, before the exec.
pub fn report_failure(ctx: &Ctx, err: &Error) -> ! {
    let msg = Msg::Error {
        code: err.code,
        msg: err.msg.clone(),
    }
    .encode();
    // _exit(2) rather than exit(3): this is a copy of the runtime, whose
    // stdio buffers and atexit handlers are not ours.
    // SAFETY: `msg` is valid for `msg.len()` bytes; a bad fd fails send(2).
    let sent = unsafe {
        libc::send(
            ctx.report_fd,
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        // A detached container's runtime is gone (chapter 12, after
        // start): its stderr is all that is left to tell (an engine's log).
        let line = format!("{}: {}\n", ctx.prog, crate::error::one_line(&err.msg));
        let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
    }
    // SAFETY: _exit(2) ends this process at once, running nothing of ours.
    unsafe { libc::_exit(err.code) }
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

// ANCHOR: exec
/// The command, ready for execve(2): its executable found in the
/// container's `PATH` as a shell would (not in the runtime's `PATH`, which
/// is the host's, and not by execvp(3), which would read the runtime's
/// environment), and its environment built (`ctx.env`, and `HOSTNAME`).
/// Made before the last hook, so that after it only execve(2) is left.
pub struct Exec {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl Exec {
    /// Fails as a shell does: 127 not found.
    pub fn resolve(ctx: &Ctx, argv: &[CString]) -> Result<Exec> {
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
        let program = if argv[0].as_bytes().contains(&b'/') {
            argv[0].clone()
        } else {
            find_in_path(argv[0].as_bytes(), ctx.env_var("PATH").unwrap_or("")).ok_or_else(
                || {
                    Error::with_code(
                        EXIT_NOT_FOUND,
                        format!("{}: command not found in $PATH", argv[0].to_string_lossy()),
                    )
                },
            )?
        };
        Ok(Exec {
            program,
            argv: argv.to_vec(),
            envp,
        })
    }

    /// execve(2); returns only on failure, with a shell's exit code: 127
    /// not found, 126 cannot execute.
    pub fn exec(&self) -> Error {
        let name = self.argv[0].to_string_lossy();
        match execve(&self.program, &self.argv, &self.envp).unwrap_err() {
            Errno::ENOENT | Errno::ENOTDIR => {
                Error::with_code(EXIT_NOT_FOUND, format!("{name}: no such file"))
            }
            errno => Error::with_code(
                EXIT_CANNOT_EXEC,
                format!("{name}: cannot execute: {}", crate::error::describe(errno)),
            ),
        }
    }
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

// ANCHOR: wait_as_init
/// An init's loop (chapter 2's --init): waits for `child`, passing on every
/// forwarded signal to it, and reaps every other process that exits (the
/// orphans the kernel gives to PID 1). sigwaitinfo(2) for SIGCHLD is
/// right here: this is a single-threaded process of its own.
pub fn wait_as_init(child: Pid) -> Result<Outcome> {
    let signals = forwarded_signals();
    let who = None;
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
        // A SIGCHLD that arrives between waitpid and here stays pending, so
        // this never sleeps through an exit.
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
        if sig != Signal::SIGCHLD && !from_terminal(sig, info.si_code, child) {
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
fn from_terminal(sig: Signal, si_code: i32, child: Pid) -> bool {
    si_code == libc::SI_KERNEL
        && matches!(sig, Signal::SIGINT | Signal::SIGQUIT | Signal::SIGWINCH)
        && nix::unistd::getpgid(Some(child)) == Ok(nix::unistd::getpgrp())
}
// ANCHOR_END: wait_as_init

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

    /// A step whose child stage fails, or panics: create() says so, with
    /// the step's code, and nothing is left (chapter 1 needs no root).
    struct Failing {
        panic: bool,
    }

    impl Step for Failing {
        fn setup(&self, _ctx: &Ctx) -> Result<()> {
            if self.panic {
                panic!("on purpose");
            }
            Err(Error::with_code(EXIT_CANNOT_EXEC, "no, on purpose"))
        }
    }

    #[test]
    fn a_failing_or_panicking_child_stage_is_reported_by_create() {
        let run_dir = tempfile::tempdir().unwrap();
        for (panic, code, says) in [
            (false, EXIT_CANNOT_EXEC, "no, on purpose"),
            (
                true,
                EXIT_RUNTIME,
                "a step panicked in the container's process: on purpose",
            ),
        ] {
            let mut ctx = Ctx::new("test", false);
            ctx.run_dir = run_dir.path().to_owned();
            let steps: Vec<Box<dyn Step>> = vec![Box::new(Failing { panic })];
            let err = Container::create(ctx, steps, &["true".into()])
                .err()
                .expect("create fails");
            assert_eq!((err.code, err.msg.as_str()), (code, says));
        }
    }

    #[test]
    fn outcomes_map_to_shell_exit_codes() {
        assert_eq!(Outcome::Exited(3).code(), 3);
        assert_eq!(Outcome::Signaled(Signal::SIGKILL).code(), 137);
        assert_eq!(Outcome::Signaled(Signal::SIGINT).code(), 130);
    }
}
