//! Chapter 12: an OCI runtime.
//!
//! Every chapter so far took its configuration from flags, docker's
//! spelling of it. A container engine (podman, containerd, dockerd) does
//! not call a runtime with flags: it writes an OCI *bundle*, a directory
//! with the root filesystem and a `config.json` (the runtime spec's
//! format), and drives the container through a fixed lifecycle with
//! runc's command line:
//!
//! ```text
//!  create ID   set everything up; the container's process waits before
//!              execve(2); the runtime exits            status: created
//!  start ID    the process execs the command             status: running
//!  kill ID SIG                                          (exits) stopped
//!  delete ID   what create made on the host goes
//! ```
//!
//! Chapter 12 adds no kernel feature. It reads `config.json` into the
//! configuration of chapters 1 to 11 ([`spec`]), splits `run` into
//! separate processes for each step of the lifecycle ([`container`]), and
//! adds what only a config can ask for (sysctls, a domain name, the OOM
//! score, hooks) in one step of its own.

pub mod cli;
pub mod console;
pub mod container;
pub mod events;
pub mod exec;
pub mod flags;
pub mod hooks;
pub mod sealed;
pub mod spec;

use ch01_process::{Context, Ctx, Error, Result, Step, Steps};
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

// ANCHOR: config
/// Chapter 12's part of the configuration: what `config.json` asks for
/// that no earlier chapter has a flag for.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch11_userns::Config,
    /// The bundle directory (absolute), for the hooks' state.
    pub bundle: PathBuf,
    /// `linux.sysctl`, checked: only those of the container's namespaces.
    pub sysctl: Vec<(String, String)>,
    pub domainname: Option<String>,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// `hooks`, as the config has them.
    pub hooks: Value,
    pub annotations: BTreeMap<String, String>,
    /// The container's OCI id (chapter 1's id names what it makes on the host).
    pub oci_id: String,
    /// Namespaces the config gives by path, to join instead of making.
    pub joins: Vec<(nix::sched::CloneFlags, PathBuf)>,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut prev = self.prev.clone();
        if has_hooks(&self.hooks, "createContainer") {
            let config = self.clone();
            let ch05 = &mut prev.prev.prev.prev.prev.prev.prev;
            ch05.before_pivot_root = Some(ch05_mnt::BeforePivotRoot(Arc::new(move |ctx| {
                in_the_container(ctx, &config, "createContainer", "creating")
            })));
        }
        let mut steps = prev.steps();
        // Before chapter 10's filter and chapter 9's privileges, the last
        // two: its setup() writes /proc/sys, which chapter 9 makes read-only.
        let at = steps.len().saturating_sub(2);
        steps.insert(
            at,
            Box::new(Oci {
                config: self.clone(),
            }),
        );
        steps
    }
}
// ANCHOR_END: config

struct Oci {
    config: Config,
}

impl Step for Oci {
    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        if let Some(score) = self.config.oom_score_adj {
            let path = format!("/proc/{child}/oom_score_adj");
            ctx.say(format_args!("write {path} {score}"));
            std::fs::write(&path, score.to_string()).context(format!("writing {path}"))?;
        }
        // The runtime's hooks, in the runtime's namespaces, once the
        // container's exist (their paths are /proc/PID/ns/*).
        // "creating": the spec's status while create runs.
        let state = container::hook_state(&self.config, "creating", child.as_raw());
        for kind in ["prestart", "createRuntime"] {
            hooks::run_all(ctx, &self.config.hooks, kind, &state).map_err(Error::runtime)?;
        }
        Ok(())
    }

    fn setup(&self, ctx: &Ctx) -> Result<()> {
        if let Some(name) = &self.config.domainname {
            ctx.say(format_args!("setdomainname(2) {name:?}"));
            // SAFETY: the pointer and length describe `name`'s bytes, which
            // the kernel only reads.
            let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
            nix::errno::Errno::result(r).context(format!("setdomainname(2) {name:?}"))?;
        }
        for (key, value) in &self.config.sysctl {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            ctx.say(format_args!("write {path} {value:?}"));
            std::fs::write(&path, value).context(format!("setting sysctl {key} ({path})"))?;
        }
        Ok(())
    }

    fn last(&self, ctx: &Ctx) -> Result<()> {
        // After start, with chapter 9's privileges dropped already, and
        // before chapter 10's filter: the profile is written for the
        // command, not for the hook.
        in_the_container(ctx, &self.config, "startContainer", "created")
    }
}

fn has_hooks(hooks: &Value, kind: &str) -> bool {
    hooks
        .get(kind)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// The hooks that the spec runs in the container's namespaces, from its
/// process: `createContainer` before pivot_root(2), its path the host's;
/// `startContainer` before execve(2), its path the container's. The pid
/// in their state is the one the container sees, as the spec says.
fn in_the_container(ctx: &Ctx, config: &Config, kind: &str, status: &str) -> Result<()> {
    if !has_hooks(&config.hooks, kind) {
        return Ok(());
    }
    let state = container::hook_state(config, status, std::process::id() as i32);
    hooks::run_all(ctx, &config.hooks, kind, &state).map_err(Error::runtime)
}

/// A sysctl a container may set: one that belongs to a namespace of its
/// own (runc's list), never one of the host's kernel.
pub fn sysctl_check(
    key: &str,
    value: &str,
    namespaces: &BTreeMap<String, ()>,
) -> std::result::Result<(String, String), String> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let needs = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        "ipc"
    } else if key.starts_with("net.") {
        "network"
    } else {
        return Err(format!(
            "linux.sysctl {key}: not a sysctl of the container's namespaces (only IPC's and \
             the network's are)"
        ));
    };
    if !namespaces.contains_key(needs) {
        return Err(format!(
            "linux.sysctl {key}: needs a {needs} namespace of its own"
        ));
    }
    if key.contains("..") || key.contains('/') || value.contains('\n') {
        return Err(format!("linux.sysctl {key:?}: not a sysctl name"));
    }
    Ok((key.to_owned(), value.to_owned()))
}
