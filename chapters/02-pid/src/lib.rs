//! Chapter 2: a pid namespace.
//!
//! `CLONE_NEWPID` gives the child a new pid namespace in which it is PID 1.
//! PID 1 has two duties the kernel gives no other process:
//! - signals it has no handler for are ignored (even SIGTERM and SIGINT from
//!   inside the namespace), so `kill` does not stop a PID 1 that never asked
//!   for them;
//! - orphaned processes are re-parented to it, and it must wait(2) for them,
//!   or they stay zombies.
//!
//! By default the command is PID 1, as in `docker run`. With `--init` a tiny
//! init (this process, after fork(2)) is PID 1 instead: it forwards signals to
//! the command, which becomes PID 2, reaps every orphan, and exits with the
//! command's status, as `docker run --init` does with tini.

use ch01_process::runtime::{default_signals, forwarded_signals, wait_as_init, Outcome};
use ch01_process::{Chapter, Context, Ctx, Result, Step, Steps};
use clap::Args;
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult};

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch01_process::Opts,
    /// Run a small init as PID 1 that forwards signals and reaps orphans; COMMAND becomes PID 2.
    #[arg(long)]
    pub init: bool,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch02-pid";
    const ABOUT: &'static str = "Run COMMAND in a new pid namespace, as PID 1.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
            init: self.init,
        }
    }
}

/// Chapter 2's part of the configuration: who is PID 1.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch01_process::Config,
    /// A small init is PID 1 and the command PID 2 (docker's `--init`).
    pub init: bool,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(PidNamespace { init: self.init }));
        steps
    }
}
// ANCHOR_END: opts

// ANCHOR: step
struct PidNamespace {
    init: bool,
}

impl Step for PidNamespace {
    fn clone_flags(&self) -> CloneFlags {
        // lab: begin the clone(2) flag that gives the child a pid namespace of its own
        CloneFlags::CLONE_NEWPID
        // lab: end
    }

    fn before_exec(&self, ctx: &Ctx) -> Result<()> {
        if !self.init {
            return Ok(());
        }
        // The last of the child's work, after the runtime's tail has run
        // every other step's last hook: the init has been through every
        // stage the command has (no reference to the host's root, the same
        // privileges and filter), as docker's init, a program in the
        // container, is.
        ctx.say(format_args!(
            "fork(2): init stays PID 1, COMMAND becomes PID 2"
        ));
        // The tail gave every signal its default action and unblocked it,
        // for the command. An init collects them with sigwaitinfo(2), so
        // they are blocked again first, before the fork: a SIGTERM for a
        // PID 1 whose action is the default is thrown away by the kernel,
        // but a blocked one waits.
        forwarded_signals()
            .thread_block()
            .context("sigprocmask(2)")?;
        // SAFETY: the child of clone(2) is single-threaded, so the forked
        // copy holds no lock another thread could have taken.
        match unsafe { fork() }.context("fork(2) for --init")? {
            // Goes on to execve(2) the command, with the signal state the
            // tail gave it.
            ForkResult::Child => default_signals(),
            ForkResult::Parent { child } => {
                // Only the command reports exec failures to the runtime.
                // SAFETY: report_fd is this process's copy of the channel's end.
                unsafe { libc::close(ctx.report_fd) };
                let code = match wait_as_init(child) {
                    Ok(outcome) => outcome.code(),
                    Err(_) => Outcome::Exited(ch01_process::error::EXIT_RUNTIME).code(),
                };
                // SAFETY: _exit(2), not exit(3): after fork(2), the stdio
                // buffers and atexit handlers are copies of the runtime's.
                unsafe { libc::_exit(code) }
            }
        }
    }
}
// ANCHOR_END: step

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Opts,
    }

    fn parse(args: &[&str]) -> Opts {
        Cli::try_parse_from(std::iter::once("ch02-pid").chain(args.iter().copied()))
            .unwrap()
            .opts
    }

    /// The namespaces a chapter's steps ask clone(2) for, together.
    fn flags(opts: &Opts) -> CloneFlags {
        opts.config()
            .steps()
            .iter()
            .fold(CloneFlags::empty(), |f, s| f | s.clone_flags())
    }

    #[test]
    fn chapter_1_plus_a_pid_namespace() {
        let opts = parse(&[]);
        assert!(!opts.init);
        assert_eq!(flags(&opts), CloneFlags::CLONE_NEWPID);
        assert_eq!(
            opts.config().steps().len(),
            opts.prev.config().steps().len() + 1
        );
    }

    #[test]
    fn init_and_chapter_1s_flags_parse() {
        let opts = parse(&["--init", "-v"]);
        assert!(opts.init);
        assert!(opts.base().verbose);
        assert!(Cli::try_parse_from(["ch02-pid", "--init=yes"]).is_err());
    }

    #[test]
    fn without_init_nothing_happens_before_exec() {
        let ctx = Ctx::new(Opts::NAME, false);
        assert!(PidNamespace { init: false }.before_exec(&ctx).is_ok());
    }
}
