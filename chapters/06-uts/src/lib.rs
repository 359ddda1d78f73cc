//! Chapter 6: a UTS namespace.
//!
//! `CLONE_NEWUTS` gives the child its own hostname and NIS domain name,
//! starting as copies of the host's. sethostname(2) in it changes only the
//! container's; the host's hostname never changes.

use ch01_process::{Chapter, Context, Ctx, Error, Result, Step};
use clap::Args;
use nix::sched::CloneFlags;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch05_mnt::Opts,
    /// The container's hostname (default: its id, as docker does).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch06-uts";
    const ABOUT: &'static str = "Run COMMAND in new pid, network, IPC, mount and UTS namespaces.";
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(UtsNamespace {
            hostname: self.hostname.clone(),
        }));
        steps
    }
}
// ANCHOR_END: opts

// ANCHOR: step
struct UtsNamespace {
    hostname: Option<String>,
}

/// HOST_NAME_MAX on Linux; sethostname(2) fails with EINVAL beyond it.
const HOST_NAME_MAX: usize = 64;

impl Step for UtsNamespace {
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWUTS
    }

    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        // Checked before anything is created, for a clear message.
        let name = self.hostname.get_or_insert_with(|| ctx.id.clone());
        if name.is_empty() || name.len() > HOST_NAME_MAX {
            return Err(Error::runtime(format!(
                "hostname {name:?} is {} bytes long: it must be 1 to {HOST_NAME_MAX}",
                name.len()
            )));
        }
        Ok(())
    }

    fn in_child(&self, ctx: &Ctx) -> Result<()> {
        let name = self.hostname.as_deref().unwrap_or_default();
        ctx.say(format_args!("sethostname(2) {name:?}"));
        nix::unistd::sethostname(name).context(format!("sethostname(2) {name:?}"))
    }
}
// ANCHOR_END: step
