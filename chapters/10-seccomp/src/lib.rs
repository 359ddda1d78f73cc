//! Chapter 10: seccomp.
//!
//! After chapter 9 the container is root without most capabilities, but it
//! can still call every system call the kernel has, and each one is code
//! of the kernel's that it reaches: keyctl(2) on keyrings that are not
//! namespaced, userfaultfd(2), bpf(2), perf_event_open(2), personality(2),
//! new user namespaces through unshare(2) and clone(2). A seccomp filter
//! ([`bpf`]) is a small program the kernel runs at every system call,
//! which decides whether the call happens. This chapter loads docker's
//! default profile ([`default`], resolved for the container's capabilities
//! by [`profile`], compiled by [`compile`]), or a profile of the user's
//! (`--security-opt seccomp=FILE`), or none (`seccomp=unconfined`, or
//! `--privileged`).
//!
//! ```text
//!  check()       read the profile, resolve it, compile it: a bad one is
//!                refused before anything exists
//!  privileges()  seccomp(2), before chapter 9 drops CAP_SYS_ADMIN
//!                (without no_new_privs, loading a filter needs it)
//!  last()        seccomp(2), with no_new_privs: as late as possible
//! ```

pub mod bpf;
pub mod compile;
pub mod default;
pub mod profile;

use ch01_process::{Chapter, Ctx, Error, Result, Step, Steps};
use clap::Args;
/// The OCI runtime spec's types, for callers that build a [`Seccomp::Oci`].
pub use oci_spec;
use oci_spec::runtime::LinuxSeccomp;
use std::path::PathBuf;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch09_privileges::Opts,
    /// Load chapter 10's hand-written example filter (unshare and keyctl
    /// refused with EPERM) instead of a profile.
    #[arg(long)]
    pub tiny_filter: bool,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch10-seccomp";
    const ABOUT: &'static str = "Run COMMAND in a container (chapter 9) under docker's \
                                 default seccomp profile (--security-opt seccomp=FILE or \
                                 seccomp=unconfined to change it).";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        // `--security-opt` is chapter 9's flag; its `seccomp=` options
        // are this chapter's, and chapter 9 never sees them.
        let mut prev = self.prev.config();
        let mut seccomp = Seccomp::Default;
        prev.security_opt
            .retain(|opt| match opt.strip_prefix("seccomp=") {
                Some(value) => {
                    seccomp = match value {
                        "unconfined" => Seccomp::Unconfined,
                        "builtin" => Seccomp::Default,
                        file => Seccomp::File(PathBuf::from(file)),
                    };
                    false
                }
                None => true,
            });
        if self.tiny_filter {
            seccomp = Seccomp::Tiny;
        }
        Config { prev, seccomp }
    }
}

/// Chapter 10's part of the configuration: which filter.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch09_privileges::Config,
    pub seccomp: Seccomp,
}

#[derive(Debug, Clone, Default)]
pub enum Seccomp {
    /// docker's default profile, for the container's capabilities.
    #[default]
    Default,
    /// No filter (`--privileged` too, as docker's).
    Unconfined,
    /// A profile in docker's format, read at check().
    File(PathBuf),
    /// `linux.seccomp` of an OCI config.json, as it is.
    Oci(LinuxSeccomp),
    /// The hand-written filter of [`bpf::tiny`].
    Tiny,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        let filter = Box::new(Filter {
            seccomp: self.seccomp.clone(),
            privileges: self.prev.clone(),
            no_new_privs: false,
            filter: None,
        });
        // Chapter 9's step is the last of its steps, and in the privileges
        // stage it drops CAP_SYS_ADMIN: this one goes before it, so that
        // without no_new_privs it can still load the filter there.
        let at = steps.len().saturating_sub(1);
        steps.insert(at, filter);
        steps
    }
}

impl Config {
    /// The filter and chapter 9's step alone: what a process that joins a
    /// running container (chapter 12's `exec`) goes through.
    pub fn process_steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps: Vec<Box<dyn Step>> = vec![Box::new(Filter {
            seccomp: self.seccomp.clone(),
            privileges: self.prev.clone(),
            no_new_privs: false,
            filter: None,
        })];
        steps.extend(self.prev.own_steps());
        steps
    }
}
// ANCHOR_END: opts

/// The profile, in the OCI format, that `seccomp` loads for a container
/// with chapter 9's configuration `p`: docker's default and a docker
/// profile resolved for its capabilities and this machine. None: no
/// filter (unconfined, `--privileged`, or the tiny one, which is no profile).
pub fn oci_profile(
    seccomp: &Seccomp,
    p: &ch09_privileges::Config,
) -> std::result::Result<Option<LinuxSeccomp>, String> {
    let caps = || match p.caps {
        Some(set) => Ok(set),
        None => ch09_privileges::caps::resolve(&p.cap_add, &p.cap_drop),
    };
    Ok(Some(match seccomp {
        Seccomp::Unconfined | Seccomp::Tiny => return Ok(None),
        _ if p.privileged => return Ok(None),
        Seccomp::Oci(oci) => oci.clone(),
        Seccomp::Default => {
            profile::resolve(&default::profile(), &profile::Target::here(caps()?.names()))
                .map_err(|e| format!("docker's default profile: {e}"))?
        }
        Seccomp::File(path) => {
            let what = format!("--security-opt seccomp={}", path.display());
            let text = std::fs::read_to_string(path).map_err(|e| {
                let why = match e.raw_os_error() {
                    Some(n) => ch01_process::error::describe(nix::errno::Errno::from_raw(n)),
                    None => e.to_string(),
                };
                format!("{what}: {why}")
            })?;
            let parsed = profile::parse(&text).map_err(|e| format!("{what}: {e}"))?;
            profile::resolve(&parsed, &profile::Target::here(caps()?.names()))
                .map_err(|e| format!("{what}: {e}"))?
        }
    }))
}

// ANCHOR: step
struct Filter {
    seccomp: Seccomp,
    /// Chapter 9's configuration: the capabilities that the default
    /// profile depends on, no_new_privs, --privileged.
    privileges: ch09_privileges::Config,
    no_new_privs: bool,
    /// Compiled by check(), loaded in the container's process.
    filter: Option<(compile::Filter, String)>,
}

impl Step for Filter {
    fn check(&mut self, _ctx: &mut Ctx) -> Result<()> {
        let p = &self.privileges;
        self.no_new_privs =
            ch09_privileges::no_new_privs(&p.security_opt).map_err(Error::runtime)?;
        if let Seccomp::Tiny = self.seccomp {
            if !p.privileged {
                let insns = bpf::tiny();
                self.filter = Some((
                    compile::Filter { insns, flags: 0 },
                    "the tiny filter".into(),
                ));
            }
            return Ok(());
        }
        let Some(oci) = oci_profile(&self.seccomp, p).map_err(Error::runtime)? else {
            return Ok(());
        };
        let what = match &self.seccomp {
            Seccomp::File(path) => format!("{}", path.display()),
            Seccomp::Oci(_) => "linux.seccomp".to_string(),
            _ => "docker's default profile".to_string(),
        };
        let filter = compile::compile(&oci)
            .map_err(|e| Error::runtime(format!("seccomp profile {what}: {e}")))?;
        self.filter = Some((filter, what));
        Ok(())
    }

    fn privileges(&self, ctx: &Ctx) -> Result<()> {
        // Without no_new_privs, seccomp(2) wants CAP_SYS_ADMIN, which
        // chapter 9's step (next in this stage) drops: the filter goes on
        // now, and chapter 9's own calls (capset, setuid...) run under it,
        // as in runc. docker's profile allows them.
        match self.no_new_privs {
            false => self.load(ctx),
            true => Ok(()),
        }
    }

    fn last(&self, ctx: &Ctx) -> Result<()> {
        // With no_new_privs (set by chapter 9's step), anyone may load a
        // filter: as late as possible, so that only execve(2) runs after it.
        match self.no_new_privs {
            true => self.load(ctx),
            false => Ok(()),
        }
    }
}
// ANCHOR_END: step

impl Filter {
    // ANCHOR: load
    fn load(&self, ctx: &Ctx) -> Result<()> {
        let Some((filter, what)) = &self.filter else {
            return Ok(());
        };
        ctx.say(format_args!(
            "seccomp(2) SECCOMP_SET_MODE_FILTER: {what}, {} instructions",
            filter.insns.len()
        ));
        if let Err(errno) = filter.load() {
            let why = match errno {
                nix::errno::Errno::EACCES => {
                    "no_new_privs is off and CAP_SYS_ADMIN is gone (EACCES)".to_string()
                }
                e => ch01_process::error::describe(e),
            };
            return Err(Error::runtime(format!("seccomp(2) {what}: {why}")));
        }
        Ok(())
    }
    // ANCHOR_END: load
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        opts: Opts,
    }

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["ch10"];
        argv.extend(args);
        Cli::parse_from(argv).opts.config()
    }

    #[test]
    fn seccomp_options_are_this_chapters_and_the_rest_chapter_9s() {
        let c = config(&[
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "no-new-privileges",
        ]);
        assert!(matches!(c.seccomp, Seccomp::Unconfined));
        assert_eq!(c.prev.security_opt, ["no-new-privileges"]);
        let c = config(&["--security-opt", "seccomp=/p.json"]);
        assert!(matches!(&c.seccomp, Seccomp::File(p) if p == std::path::Path::new("/p.json")));
        assert!(matches!(config(&[]).seccomp, Seccomp::Default));
        assert!(matches!(config(&["--tiny-filter"]).seccomp, Seccomp::Tiny));
    }
}
