//! Chapter 11: user namespaces.
//!
//! Until now uid 0 in the container is uid 0 on the host: whatever it
//! reaches (a file through a bind mount, a host process it can see, a
//! kernel bug that lets it out) it reaches as root. A user namespace
//! (`CLONE_NEWUSER`, user_namespaces(7)) gives the container ids of its
//! own: uid 0 inside is, say, uid 100000 on the host, an id that owns
//! nothing there. Inside, it is root over what its namespace owns (the
//! other namespaces, made in the same clone(2), and the files its ids own),
//! and nobody over the rest.
//!
//! ```text
//!  check()        the maps: from the flags, /etc/subuid and /etc/subgid
//!  clone(2)       CLONE_NEWUSER with the other namespaces: the child's
//!                 ids are unmapped (it is nobody) until the maps are written
//!  after_clone()  write /proc/PID/uid_map and gid_map (or have newuidmap(1)
//!                 and newgidmap(1) write them), while the child waits for Go
//!  identity()     setresgid(2), setresuid(2) to 0: root in its namespace,
//!                 before any other stage makes anything
//! ```

pub mod idmap;

use ch01_process::{Chapter, Context, Ctx, Error, Result, Step, Steps};
use ch08_overlay::ids::{IdRange, Owners};
// newuidmap(1) and newgidmap(1) in the usual places (chapter 8 runs them too).
use ch08_overlay::rootless::helper;
use clap::Args;
use idmap::{Plan, Writer};
use nix::sched::CloneFlags;
use nix::unistd::Pid;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch10_seccomp::Opts,
    /// Container uids CONTAINER.. are host uids HOST.. (COUNT of them), as
    /// podman's --uidmap. Repeatable.
    #[arg(long, value_name = "CONTAINER:HOST:COUNT", value_parser = idmap::parse_range)]
    pub uidmap: Vec<IdRange>,
    /// The same for gids (default: as --uidmap).
    #[arg(long, value_name = "CONTAINER:HOST:COUNT", value_parser = idmap::parse_range)]
    pub gidmap: Vec<IdRange>,
    /// Map the container's ids to USER's subordinate ids (/etc/subuid,
    /// /etc/subgid), as docker's --userns-remap. Root only.
    #[arg(long, value_name = "USER", conflicts_with_all = ["uidmap", "gidmap"])]
    pub userns_remap: Option<String>,
    /// `host`: no user namespace of its own (chapter 10's container).
    #[arg(long, value_name = "MODE", value_parser = ["host"])]
    pub userns: Option<String>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch11-userns";
    const ABOUT: &'static str = "Run COMMAND in a container (chapter 10) with a user namespace \
                                 of its own: root inside, an unprivileged id on the host.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        let userns = match (&self.userns, &self.userns_remap) {
            (Some(_), _) => UserNs::Host,
            (None, Some(user)) => UserNs::Remap(user.clone()),
            (None, None) if self.uidmap.is_empty() && self.gidmap.is_empty() => UserNs::Default,
            (None, None) => UserNs::Maps {
                uids: self.uidmap.clone(),
                gids: self.gidmap.clone(),
            },
        };
        Config {
            prev: self.prev.config(),
            userns,
        }
    }
}

/// Chapter 11's part of the configuration: the user namespace.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch10_seccomp::Config,
    pub userns: UserNs,
}

#[derive(Debug, Clone, Default)]
pub enum UserNs {
    /// Root: 65536 ids from 100000 (or root's in /etc/subuid); anyone
    /// else: their own id, and their subordinate ids if they have some.
    #[default]
    Default,
    /// A user's subordinate ids.
    Remap(String),
    /// These maps (`--uidmap`, `--gidmap`; `uidMappings` in config.json).
    Maps {
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
    },
    /// A namespace the runtime joins before clone(2) (chapter 12's
    /// `linux.namespaces` path): its maps are written already; these, if
    /// any, must be the ones it has.
    Joined {
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
    },
    /// No user namespace.
    Host,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        match &self.userns {
            UserNs::Host => return self.prev.steps(),
            UserNs::Joined { uids, gids } => {
                let mut steps = self.prev.steps();
                steps.insert(
                    0,
                    Box::new(JoinedUserNamespace {
                        uids: uids.clone(),
                        gids: gids.clone(),
                    }),
                );
                return steps;
            }
            _ => {}
        }
        let plan = self.plan();
        // Chapter 8 unpacks the layers with their owners shifted through
        // the maps, into a store of their own.
        let mut prev = self.prev.clone();
        if let Ok(plan) = &plan {
            prev.prev.prev.owners = plan.owners.clone();
        }
        let mut steps = prev.steps();
        // First of all steps: its check() refuses a bad map before chapter
        // 8 unpacks anything for it, and its identity() is the child's
        // first act.
        steps.insert(0, Box::new(UserNamespace { plan }));
        steps
    }
}

impl Config {
    /// The maps this configuration asks for, for the caller running it.
    pub fn plan(&self) -> std::result::Result<Plan, String> {
        let caller = idmap::Caller::here();
        let helpers = helper("newuidmap").is_some() && helper("newgidmap").is_some();
        match &self.userns {
            UserNs::Default => idmap::plan(&caller, &[], &[], None, helpers),
            UserNs::Remap(user) => idmap::plan(&caller, &[], &[], Some(user), helpers),
            UserNs::Maps { uids, gids } => idmap::plan(&caller, uids, gids, None, helpers),
            UserNs::Host => Err("no user namespace".into()),
            UserNs::Joined { .. } => Err("a user namespace that exists already".into()),
        }
    }
}
// ANCHOR_END: opts

// ANCHOR: step
struct UserNamespace {
    plan: std::result::Result<Plan, String>,
}

impl Step for UserNamespace {
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWUSER
    }

    fn check(&mut self, _ctx: &mut Ctx) -> Result<()> {
        // Said before clone(2) would answer a bare EPERM or ENOSPC.
        if !nix::unistd::geteuid().is_root() {
            if let Some(why) = idmap::forbidden(&idmap::Sysctls::here()) {
                return Err(Error::runtime(why));
            }
        }
        self.plan
            .as_ref()
            .map(|_| ())
            .map_err(|e| Error::runtime(e.clone()))
    }

    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        let plan = self.plan.as_ref().map_err(|e| Error::runtime(e.clone()))?;
        write_maps(ctx, child, plan)
    }

    fn identity(&self, ctx: &Ctx) -> Result<()> {
        become_root(ctx)
    }
}

/// Until now the process is whoever it was on the host, an id its
/// namespace does not map (it shows as 65534): it has every capability in
/// the namespace, but no id to own a file with. Taking uid 0 keeps them
/// (from non-root to root, capabilities(7)).
fn become_root(ctx: &Ctx) -> Result<()> {
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    let root = (Uid::from_raw(0), Gid::from_raw(0));
    ctx.say(format_args!("setresgid(2) 0 0 0, setresuid(2) 0 0 0"));
    setresgid(root.1, root.1, root.1).context("setresgid(2) 0 in the user namespace")?;
    setresuid(root.0, root.0, root.0).context("setresuid(2) 0 in the user namespace")?;
    Ok(())
}
// ANCHOR_END: step

/// A user namespace chapter 1's runtime joined with setns(2) before the
/// clone: the new namespaces are made in it, owned by it.
struct JoinedUserNamespace {
    uids: Vec<IdRange>,
    gids: Vec<IdRange>,
}

impl Step for JoinedUserNamespace {
    fn identity(&self, ctx: &Ctx) -> Result<()> {
        // Read from inside the namespace, a map is the one to its parent.
        // /proc is still the host's here (chapter 5 mounts the
        // container's later), and /proc/self is this process.
        for (file, want) in [("uid_map", &self.uids), ("gid_map", &self.gids)] {
            if want.is_empty() {
                continue;
            }
            let path = format!("/proc/self/{file}");
            let text = std::fs::read_to_string(&path).context(format!("reading {path}"))?;
            if !idmap::same_maps(&text, want) {
                return Err(Error::runtime(format!(
                    "the joined user namespace's {file} is {:?}, not the {:?} the config gives",
                    text.split_whitespace().collect::<Vec<_>>().join(" "),
                    idmap::render(want).trim_end()
                )));
            }
        }
        become_root(ctx)
    }
}

// ANCHOR: write_maps
/// Writes the child's maps, from outside, while it waits for Go.
fn write_maps(ctx: &Ctx, child: Pid, plan: &Plan) -> Result<()> {
    let Owners { uids, gids } = &plan.owners;
    let proc = |file: &str| format!("/proc/{child}/{file}");
    let write = |file: &str, text: &str| -> Result<()> {
        ctx.say(format_args!("write {} {:?}", proc(file), text.trim_end()));
        // One write(2): the kernel takes a map in one write only.
        std::fs::write(proc(file), text).map_err(|e| {
            // Not "try sudo": what an ordinary user may write is the point.
            let why = match e.raw_os_error() {
                Some(libc::EPERM) if plan.writer == Writer::Single => {
                    "refused: an ordinary user may map only their own id, once, \
                     and a gid map only after setgroups is denied"
                        .to_string()
                }
                _ => e.to_string(),
            };
            Error::runtime(format!(
                "writing {} {:?}: {why}",
                proc(file),
                text.trim_end()
            ))
        })
    };
    match plan.writer {
        Writer::Direct => {
            // lab: begin write the child's uid_map, then its gid_map (idmap::render)
            write("uid_map", &idmap::render(uids))?;
            write("gid_map", &idmap::render(gids))?;
            // lab: end
        }
        Writer::Single => {
            // Without CAP_SETGID over the parent namespace, a gid map can
            // be written only once setgroups(2) is off for good.
            write("setgroups", "deny")?;
            write("uid_map", &idmap::render(uids))?;
            write("gid_map", &idmap::render(gids))?;
        }
        Writer::Helper => {
            for (tool, ranges) in [("newuidmap", uids), ("newgidmap", gids)] {
                let mut args = vec![child.to_string()];
                for r in ranges {
                    args.extend([r.inside, r.outside, r.count].map(|n| n.to_string()));
                }
                ctx.say(format_args!("{tool} {}", args.join(" ")));
                let path = helper(tool).ok_or_else(|| {
                    Error::runtime(format!("no {tool}: install Debian's uidmap package"))
                })?;
                let out = std::process::Command::new(&path)
                    .args(&args)
                    .stdin(std::process::Stdio::null())
                    .output()
                    .context(format!("running {}", path.display()))?;
                if !out.status.success() {
                    let why = String::from_utf8_lossy(&out.stderr);
                    return Err(Error::runtime(format!(
                        "{tool} {}: {}",
                        args.join(" "),
                        why.trim()
                    )));
                }
            }
        }
    }
    Ok(())
}
// ANCHOR_END: write_maps
