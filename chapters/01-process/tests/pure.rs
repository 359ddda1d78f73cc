//! The runtime's pure functions, through its public API: the names `-v`
//! and the book print for clone(2) flags, which signals are passed on, and
//! how a pending signal becomes the exit status of a run that never started.

use ch01_process::runtime::{flag_names, forwarded_signals, interrupted};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

#[test]
fn no_flags_is_said_in_words() {
    assert_eq!(
        flag_names(CloneFlags::empty()),
        "0 (no new namespaces: like fork(2))"
    );
}

#[test]
fn flags_are_named_as_in_clone_2() {
    assert_eq!(flag_names(CloneFlags::CLONE_NEWPID), "CLONE_NEWPID");
    // In the kernel's bit order, whatever order they were given in.
    assert_eq!(
        flag_names(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID),
        "CLONE_NEWPID|CLONE_NEWNET"
    );
    let chapter_7 = CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    assert_eq!(
        flag_names(chapter_7),
        "CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET"
    );
}

#[test]
fn what_a_user_or_a_terminal_sends_is_passed_on() {
    let set = forwarded_signals();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
        Signal::SIGCHLD, // not passed on: it says the child exited
    ] {
        assert!(set.contains(s), "{s}");
    }
    // Job control stays the kernel's (a stopped runtime stops its
    // terminal's job); SIGKILL and SIGSTOP cannot be blocked at all; a
    // fault (SIGSEGV, SIGPIPE) is the runtime's own.
    for s in [
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGCONT,
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGPIPE,
    ] {
        assert!(!set.contains(s), "{s}");
    }
}

/// Sends `sig` to this thread alone (it must be blocked here).
fn raise_here(sig: Signal) {
    // pthread_self() is this live thread; pthread_kill(3) only queues the signal.
    assert_eq!(
        // SAFETY: see above.
        unsafe { libc::pthread_kill(libc::pthread_self(), sig as i32) },
        0
    );
}

#[test]
fn a_pending_interrupt_is_an_exit_status() {
    // Pending for this thread only, while blocked in it: nothing reaches
    // the other tests' threads, and it is taken back before the mask is
    // restored.
    assert!(interrupted().is_ok());
    for (sig, code) in [
        (Signal::SIGINT, 130),
        (Signal::SIGHUP, 129),
        (Signal::SIGQUIT, 131),
        (Signal::SIGTERM, 143),
    ] {
        let mut one = SigSet::empty();
        one.add(sig);
        let mut old = SigSet::empty();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&one), Some(&mut old))
            .unwrap();
        raise_here(sig);
        let err = interrupted().unwrap_err();
        assert_eq!(one.wait().unwrap(), sig); // taken back: no longer pending
        let still = interrupted();
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None).unwrap();
        assert_eq!(err.code, code, "{sig}");
        assert_eq!(
            err.msg,
            format!("interrupted by {sig} before the container started")
        );
        assert!(still.is_ok(), "{sig}");
    }
}

#[test]
fn other_pending_signals_do_not_interrupt() {
    let mut one = SigSet::empty();
    one.add(Signal::SIGUSR1);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&one), Some(&mut old)).unwrap();
    raise_here(Signal::SIGUSR1);
    let result = interrupted();
    assert_eq!(one.wait().unwrap(), Signal::SIGUSR1);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None).unwrap();
    assert!(result.is_ok());
}
