//! Chapter 1: a process.
//!
//! Not a container yet: the command runs as an ordinary child of the runtime.
//! What this chapter builds is what every later chapter extends: clone(2) the
//! child, let each [`Step`] set it up, execve(2) the command, pass signals on,
//! wait(2) for it, and exit with its status.

pub mod error;
pub mod protocol;
pub mod runtime;
pub mod state;
pub mod step;

pub use error::{Context, Error, Result};
pub use runtime::Container;
pub use step::{Ctx, Step};

use clap::{Args, CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

// ANCHOR: chapter
/// A container's configuration, as far as one chapter goes: the chapter's
/// own part (its feature's share of what the OCI chapter will read from a
/// `config.json`) and every earlier chapter's, in `prev`. The steps are
/// built from it alone, so a flag, a `config.json` or an engine's request
/// all start the same container.
pub trait Steps {
    /// Every step a container with this configuration goes through, in order.
    fn steps(&self) -> Vec<Box<dyn Step>>;
}

/// A chapter's binary: its flags (which include every earlier chapter's,
/// through `#[command(flatten)]`), whose only job is to fill its [`Steps`] configuration.
pub trait Chapter: Args + FromArgMatches {
    /// The binary's name, e.g. "ch05-mnt".
    const NAME: &'static str;
    /// One line for --help.
    const ABOUT: &'static str;
    type Config: Steps;
    /// Chapter 1's flags, reached through the chain of `prev` fields.
    fn base(&self) -> &Opts;
    /// The configuration the flags describe.
    fn config(&self) -> Self::Config;
}
// ANCHOR_END: chapter

// ANCHOR: opts
/// Chapter 1's part of the configuration: the command's environment, on top
/// of docker's defaults (see [`Ctx::env`]).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `NAME=value` pairs, in order; a later one replaces an earlier one.
    pub env: Vec<(String, String)>,
    /// Leave out the two `STEPBOX_HOST_*` variables (see [`HostFacts`]):
    /// a container an engine runs (chapter 12) gets exactly its config's
    /// environment.
    pub no_host_facts: bool,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let env: Box<dyn Step> = Box::new(Env(self.env.clone()));
        match self.no_host_facts {
            true => vec![env],
            false => vec![Box::new(HostFacts), env],
        }
    }
}

/// Chapter 1's flags.
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    /// Print each kernel step (the syscall and its arguments) as it happens.
    #[arg(short, long)]
    pub verbose: bool,
    /// Set NAME to VALUE in the container's environment; a bare NAME takes
    /// the caller's value, if it has one (docker's -e).
    #[arg(short, long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    pub env: Vec<EnvArg>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch01-process";
    const ABOUT: &'static str = "Run COMMAND as a plain child process: no isolation yet.";
    type Config = Config;
    fn base(&self) -> &Opts {
        self
    }
    fn config(&self) -> Config {
        Config {
            env: self
                .env
                .iter()
                .filter_map(|e| match e {
                    EnvArg::Set(name, value) => Some((name.clone(), value.clone())),
                    // Read here, in the binary's flags, never in the library.
                    EnvArg::Inherit(name) => std::env::var(name).ok().map(|v| (name.clone(), v)),
                })
                .collect(),
            no_host_facts: false,
        }
    }
}
// ANCHOR_END: opts

/// One `-e`: `NAME=VALUE`, or a bare `NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvArg {
    Set(String, String),
    Inherit(String),
}

/// A name is what a shell can export: letters, digits and `_`, not
/// starting with a digit; the value anything but a NUL byte.
fn parse_env(arg: &str) -> std::result::Result<EnvArg, String> {
    let (name, value) = match arg.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (arg, None),
    };
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    if value.is_some_and(|v| v.contains('\0')) {
        return Err(format!("the value of {name} contains a NUL byte"));
    }
    Ok(match value {
        Some(v) => EnvArg::Set(name.to_owned(), v.to_owned()),
        None => EnvArg::Inherit(name.to_owned()),
    })
}

/// `-e`: the configuration's variables, over docker's defaults.
struct Env(Vec<(String, String)>);

impl Step for Env {
    fn check(&mut self, ctx: &mut Ctx) -> Result<()> {
        for (name, value) in &self.0 {
            if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
                return Err(Error::runtime(format!(
                    "environment variable {name:?}: a name is not empty and holds no = or NUL, \
                     a value no NUL"
                )));
            }
            ctx.set_env(name, value.clone());
        }
        Ok(())
    }
}

// ANCHOR: hostfacts
/// Tells the probe (the report program in the default rootfs) what the host's
/// namespaces and root directory are, through two variables in the
/// container's environment, so that it can print "own" or "host" for each
/// instead of raw numbers. They are the one thing of the host that the
/// runtime puts in every container's environment on purpose: a teaching aid,
/// which a production runtime would not have.
struct HostFacts;

impl Step for HostFacts {
    // In check, before `-e` (the next step): an explicit -e wins.
    fn check(&mut self, ctx: &mut Ctx) -> Result<()> {
        let mut ns = Vec::new();
        for name in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
            if let Ok(link) = std::fs::read_link(format!("/proc/self/ns/{name}")) {
                // "pid:[4026531836]" -> "pid:4026531836"
                let inode: String = link
                    .to_string_lossy()
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                ns.push(format!("{name}:{inode}"));
            }
        }
        let root = std::fs::metadata("/").context("stat(2) /")?;
        ctx.set_env("STEPBOX_HOST_NS", ns.join(" "));
        ctx.set_env(
            "STEPBOX_HOST_ROOT",
            format!("{}:{}", root.dev(), root.ino()),
        );
        Ok(())
    }
}
// ANCHOR_END: hostfacts

/// `chNN-name [OPTIONS] [--] COMMAND [ARGS]...`
#[derive(Parser, Debug)]
struct Cli<O: Args> {
    #[command(flatten)]
    opts: O,
    /// Instead of running a container: remove what runtimes that were
    /// killed left on the host (cgroups, mounts, directories, veths), from
    /// their state records in /run/stepbox/containers. Every start does it
    /// too, before it makes anything.
    #[arg(long, conflicts_with = "command")]
    gc: bool,
    /// The command to run in the container, and its arguments.
    #[arg(
        required_unless_present = "gc",
        trailing_var_arg = true,
        value_name = "COMMAND"
    )]
    command: Vec<OsString>,
}

/// The whole `main` of every chapter's binary.
pub fn main<C: Chapter>() -> ! {
    let cmd = Cli::<C>::command()
        .name(C::NAME)
        .bin_name(C::NAME)
        .about(C::ABOUT)
        .override_usage(format!(
            "{0} [OPTIONS] -- COMMAND [ARGS]...\n       {0} [OPTIONS] --gc",
            C::NAME
        ));
    let cli = match cmd
        .try_get_matches()
        .and_then(|m| Cli::<C>::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "{}: {} (see {} --help)",
                C::NAME,
                error::one_line(&usage_error(&e.render().to_string())),
                C::NAME
            );
            // Bad usage is a runtime error (125), as in docker, not clap's 2,
            // which the command itself could have returned.
            std::process::exit(error::EXIT_RUNTIME);
        }
    };
    let mut ctx = Ctx::new(C::NAME, cli.opts.base().verbose);
    // Tests name their containers, to find what each one created on the host;
    // read here, not in the library, which takes the id as a value.
    if let Ok(id) = std::env::var("STEPBOX_CONTAINER_ID") {
        if !state::valid_id(&id) {
            let _ = writeln!(
                std::io::stderr(),
                "{}: STEPBOX_CONTAINER_ID {}: a container id is 1 to 12 hex digits",
                C::NAME,
                error::one_line(&format!("{id:?}"))
            );
            std::process::exit(error::EXIT_RUNTIME);
        }
        ctx.id = id;
    }
    // Tests keep their state records apart from the host's.
    if let Some(dir) = std::env::var_os("STEPBOX_RUN_DIR") {
        ctx.run_dir = dir.into();
    }
    let steps = cli.opts.config().steps();
    let result = match cli.gc {
        true => state::gc(&ctx, &steps),
        false => runtime::run(ctx, steps, &cli.command).map(|o| o.code()),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "{}: {}",
                C::NAME,
                error::one_line(&e.msg)
            );
            std::process::exit(e.code)
        }
    }
}

/// clap's message without its usage block and tips, on one line:
/// "error: unexpected argument '--x' found\n\n  tip: …\n\nUsage: …" becomes
/// "unexpected argument '--x' found".
fn usage_error(rendered: &str) -> String {
    let mut words = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() || line.starts_with("tip:") {
            continue;
        }
        words.push(line.strip_prefix("error: ").unwrap_or(line));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::{parse_env, EnvArg};

    #[test]
    fn env_flags_parse_as_docker_spells_them() {
        assert_eq!(parse_env("A=1"), Ok(EnvArg::Set("A".into(), "1".into())));
        assert_eq!(
            parse_env("A_2=x=y"),
            Ok(EnvArg::Set("A_2".into(), "x=y".into()))
        );
        assert_eq!(
            parse_env("EMPTY="),
            Ok(EnvArg::Set("EMPTY".into(), "".into()))
        );
        assert_eq!(parse_env("HOME"), Ok(EnvArg::Inherit("HOME".into())));
        for bad in ["", "=x", "1A=x", "A-B=x", "A B", "A=\0"] {
            assert!(parse_env(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usage_errors_become_one_line() {
        let clap = "error: the following required arguments were not provided:\n  <COMMAND>...\n\nUsage: ch01-process [OPTIONS] -- COMMAND [ARGS]...\n\nFor more information, try '--help'.\n";
        assert_eq!(
            super::usage_error(clap),
            "the following required arguments were not provided: <COMMAND>..."
        );
        let clap = "error: unexpected argument '--x' found\n\n  tip: to pass '--x' as a value, use '-- --x'\n\nUsage: x\n";
        assert_eq!(super::usage_error(clap), "unexpected argument '--x' found");
    }
}
