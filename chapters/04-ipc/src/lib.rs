//! Chapter 4: an IPC namespace.
//!
//! System V message queues, shared memory segments and semaphore sets, and
//! POSIX message queues, are named by keys that are global to an IPC
//! namespace. `CLONE_NEWIPC` gives the child an empty set of its own: it can
//! neither see nor attach to the host's, and the host cannot see its.

use ch01_process::{Chapter, Step};
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
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
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
        CloneFlags::CLONE_NEWIPC
    }
}
// ANCHOR_END: step
