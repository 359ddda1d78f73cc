//! Chapter 4: an IPC namespace.
//!
//! System V message queues, shared memory segments and semaphore sets, and
//! POSIX message queues, are named by keys that are global to an IPC
//! namespace. `CLONE_NEWIPC` gives the child an empty set of its own: it can
//! neither see nor attach to the host's, and the host cannot see its.

use ch01_process::{Chapter, Step, Steps};
use clap::Args;
use nix::sched::CloneFlags;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch03_net::Opts,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch04-ipc";
    const ABOUT: &'static str = "Run COMMAND in new pid, network and IPC namespaces.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
        }
    }
}

/// Chapter 4 adds no setting: an IPC namespace has nothing to configure.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch03_net::Config,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(IpcNamespace));
        steps
    }
}
// ANCHOR_END: opts

// ANCHOR: step
struct IpcNamespace;

impl Step for IpcNamespace {
    fn clone_flags(&self) -> CloneFlags {
        // Nothing else to do: the new namespace starts empty, and the objects
        // in it die with it.
        // lab: begin the clone(2) flag that gives the child IPC objects of its own
        CloneFlags::CLONE_NEWIPC
        // lab: end
    }
}
// ANCHOR_END: step

#[cfg(test)]
mod tests {
    use super::*;
    use ch01_process::runtime::flag_names;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Opts,
    }

    fn flags(steps: &[Box<dyn Step>]) -> CloneFlags {
        steps
            .iter()
            .fold(CloneFlags::empty(), |f, s| f | s.clone_flags())
    }

    #[test]
    fn chapter_3_plus_an_ipc_namespace() {
        let opts = Cli::try_parse_from(["ch04-ipc"]).unwrap().opts;
        let (steps, before) = (opts.config().steps(), opts.prev.config().steps());
        assert_eq!(steps.len(), before.len() + 1);
        assert_eq!(flags(&steps), flags(&before) | CloneFlags::CLONE_NEWIPC);
        assert_eq!(
            flag_names(flags(&steps)),
            "CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET"
        );
    }

    #[test]
    fn earlier_chapters_flags_still_parse() {
        let opts = Cli::try_parse_from(["ch04-ipc", "--init", "-v"])
            .unwrap()
            .opts;
        assert!(opts.prev.prev.init);
        assert!(opts.base().verbose);
    }
}
