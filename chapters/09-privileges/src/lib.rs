//! Chapter 9: privileges.
//!
//! Until now root in the container is root on the host in all but its
//! view: it holds every capability. This chapter gives the container what
//! docker gives by default: a reduced set of capabilities in all five sets
//! ([`caps`]), no way to gain privileges back through a setuid program
//! (`no_new_privs`), optionally a user of its own ([`user`]), the kernel's
//! sensitive files masked or read-only ([`paths`]), only the standard
//! device nodes ([`devices`]: an allow list that chapter 7's cgroup
//! enforces), a session of its own (so that it cannot type into the
//! caller's terminal), and resource limits ([`rlimit`]). `--privileged`
//! turns the confinement off, as docker's does.
//!
//! ```text
//!  steps()       put the device allow list into chapter 7's limits
//!  check()       parse the capability names, the user, the limits
//!  prepare()     find the user's ids in the rootfs's /etc/passwd and /etc/group
//!  setup()       mknod the --device nodes; mask and protect /proc and /sys
//!                paths                                   (after chapter 5's mounts)
//!  privileges()  setsid, rlimits, bounding set, setgroups/setgid/setuid,
//!                capset, no_new_privs                    (after every setup())
//! ```

pub mod caps;
pub mod devices;
pub mod paths;
pub mod rlimit;
pub mod user;

use ch01_process::{Chapter, Context, Ctx, Error, Result, Step, Steps};
use clap::Args;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch08_overlay::Opts,
    /// Add a capability to docker's default set (a name, with or without
    /// CAP_, or ALL). Repeatable.
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from the set (a name, or ALL). Repeatable.
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// `no-new-privileges`: setuid programs and file capabilities no longer
    /// raise privileges (prctl PR_SET_NO_NEW_PRIVS). From chapter 10 on,
    /// also `seccomp=unconfined` or `seccomp=FILE`. Repeatable.
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Run the command as UID[:GID] or NAME[:GROUP], looked up in the
    /// rootfs's /etc/passwd and /etc/group.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// An extra group for the user (a name from the rootfs's /etc/group, or
    /// a number). Repeatable.
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// A resource limit, as docker spells it: NAME=SOFT[:HARD] (e.g.
    /// nofile=1024:2048, nproc=64, core=0). Repeatable.
    #[arg(long, value_name = "NAME=SOFT[:HARD]", value_parser = rlimit::parse)]
    pub ulimit: Vec<rlimit::Ulimit>,
    /// Make the host's device node HOST in the container, at CONTAINER (by
    /// default the same path), and allow it: r read, w write, m mknod
    /// (default rwm). Repeatable.
    #[arg(long, value_name = "HOST[:CONTAINER][:rwm]", value_parser = devices::parse)]
    pub device: Vec<devices::Device>,
    /// Turn off every confinement of this chapter: all capabilities, no
    /// masked paths, every device, the caller's session (as docker's
    /// --privileged).
    #[arg(long)]
    pub privileged: bool,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch09-privileges";
    const ABOUT: &'static str = "Run COMMAND in a container (chapter 8) with docker's \
                                 default privileges: fewer capabilities, masked paths, \
                                 its own session.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            security_opt: self.security_opt.clone(),
            user: self.user.clone(),
            group_add: self.group_add.clone(),
            ulimits: self.ulimit.clone(),
            devices: self.device.clone(),
            privileged: self.privileged,
            ..Config::default()
        }
    }
}

/// Chapter 9's part of the configuration: the privileges.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch08_overlay::Config,
    /// Added to docker's default set ([`caps::DOCKER_DEFAULT`]).
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `no-new-privileges` (also `no-new-privileges=true`).
    pub security_opt: Vec<String>,
    /// None: root, uid 0.
    pub user: Option<String>,
    pub group_add: Vec<String>,
    pub ulimits: Vec<rlimit::Ulimit>,
    /// `--device`: made in the container and added to docker's allow list
    /// ([`devices::DOCKER_DEFAULT`]).
    pub devices: Vec<devices::Device>,
    pub privileged: bool,
    /// Exactly these capabilities, instead of docker's default with
    /// `cap_add` and `cap_drop` (chapter 12's `config.json`).
    pub caps: Option<caps::CapSet>,
    /// These paths masked and read-only, instead of docker's lists
    /// ([`paths::MASKED`], [`paths::READONLY`]).
    pub paths: Option<paths::Paths>,
    /// The command's umask; None: the runtime's own.
    pub umask: Option<u32>,
    /// Exactly these supplementary groups (chapter 12's `additionalGids`),
    /// instead of docker's: the primary group, the user's groups in the
    /// image's /etc/group, and `group_add`.
    pub exact_groups: Option<Vec<u32>>,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        // The device allow list is enforced by chapter 7's cgroup, made
        // before this chapter's step runs: it goes into chapter 7's part of
        // the configuration. --privileged: no list, every device.
        let mut prev = self.prev.clone();
        if !self.privileged {
            let mut rules = devices::DOCKER_DEFAULT.to_vec();
            rules.extend(self.devices.iter().map(devices::Device::rule));
            prev.prev.limits.devices = Some(devices::policy(&rules));
        }
        let mut steps = prev.steps();
        steps.extend(self.own_steps());
        steps
    }
}

impl Config {
    /// This chapter's own step, without the earlier chapters': what a
    /// process that joins a running container (chapter 12's `exec`) goes
    /// through.
    pub fn own_steps(&self) -> Vec<Box<dyn Step>> {
        vec![Box::new(Privileges {
            config: Own {
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                security_opt: self.security_opt.clone(),
                user: self.user.clone(),
                group_add: self.group_add.clone(),
                ulimits: self.ulimits.clone(),
                devices: self.devices.clone(),
                privileged: self.privileged,
                caps: self.caps,
                paths: self.paths.clone(),
                umask: self.umask,
                exact_groups: self.exact_groups.clone(),
            },
            caps: caps::CapSet::default(),
            no_new_privs: false,
            user: None,
            ids: None,
        })]
    }
}
// ANCHOR_END: opts

struct Own {
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    security_opt: Vec<String>,
    user: Option<String>,
    group_add: Vec<String>,
    ulimits: Vec<rlimit::Ulimit>,
    devices: Vec<devices::Device>,
    privileged: bool,
    caps: Option<caps::CapSet>,
    paths: Option<paths::Paths>,
    umask: Option<u32>,
    exact_groups: Option<Vec<u32>>,
}

// ANCHOR: step
struct Privileges {
    config: Own,
    /// Found by check().
    caps: caps::CapSet,
    no_new_privs: bool,
    user: Option<user::UserSpec>,
    /// Found by prepare(), in the rootfs's /etc/passwd and /etc/group.
    ids: Option<user::Ids>,
}

impl Step for Privileges {
    fn check(&mut self, _ctx: &mut Ctx) -> Result<()> {
        self.caps = match (self.config.caps, self.config.privileged) {
            (Some(set), _) => set,
            (None, true) => caps::CapSet::available(),
            (None, false) => caps::resolve(&self.config.cap_add, &self.config.cap_drop)
                .map_err(Error::runtime)?,
        };
        self.no_new_privs = no_new_privs(&self.config.security_opt).map_err(Error::runtime)?;
        self.user = match &self.config.user {
            Some(spec) => Some(user::parse(spec).map_err(Error::runtime)?),
            None => None,
        };
        // --device was checked when the flag was read; a Config built by
        // a program is checked here.
        for d in &self.config.devices {
            devices::check_container_path(&d.container)
                .map_err(|e| Error::runtime(format!("--device {:?}: {e}", d.host)))?;
        }
        Ok(())
    }

    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        // Chapter 8 has mounted the overlay by now (its prepare() came
        // first): the rootfs's files are there to read. Without --user the
        // command is root, but with root's groups from the image, not the
        // runtime's own supplementary groups (as docker does).
        let root = user::UserSpec {
            user: "0".into(),
            group: None,
        };
        let ids = user::resolve(
            self.user.as_ref().unwrap_or(&root),
            &self.config.group_add,
            &read_etc(ctx, "passwd")?,
            &read_etc(ctx, "group")?,
        )
        .map_err(Error::runtime)?;
        // The user's home, unless `-e HOME=…` chose one: chapter 1's default
        // (root's, or a rootless caller's own, a host path) is still there
        // only if nobody did. (`-e HOME=` the same value is taken for the
        // default: a corner left.)
        if ctx.env_var("HOME") == Some(ch01_process::step::default_home().as_str()) {
            ctx.set_env("HOME", ids.home.clone());
        }
        let mut ids = ids;
        if let Some(groups) = &self.config.exact_groups {
            ids.groups = groups.clone();
        }
        self.ids = Some(ids);
        Ok(())
    }

    fn setup(&self, ctx: &Ctx) -> Result<()> {
        // Chapter 5's setup() made /dev (and pivoted into the rootfs):
        // the paths are the container's.
        devices::make_nodes(ctx, &self.config.devices)?;
        if self.config.privileged {
            return Ok(());
        }
        match &self.config.paths {
            Some(paths) => paths::mask_and_protect_these(ctx, paths),
            None => paths::mask_and_protect(ctx),
        }
    }

    fn privileges(&self, ctx: &Ctx) -> Result<()> {
        // Order matters, and each step needs what the next one takes away.
        // A session of its own, first: the container's process is no
        // longer in the caller's terminal's session, so it cannot use it
        // (ioctl TIOCSTI) against the caller.
        if !self.config.privileged {
            ctx.say(format_args!("setsid(2)"));
            nix::unistd::setsid().context("setsid(2)")?;
        }
        if let Some(mask) = self.config.umask {
            ctx.say(format_args!("umask(2) {mask:04o}"));
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        // Raising a hard limit needs CAP_SYS_RESOURCE, which goes below.
        rlimit::apply(ctx, &self.config.ulimits)?;
        // Dropping from the bounding set needs CAP_SETPCAP, which may go too.
        caps::drop_bounding(ctx, self.caps)?;
        if let Some(ids) = &self.ids {
            // setuid(2) away from 0 clears the permitted and effective sets,
            // unless PR_SET_KEEPCAPS asks to keep permitted; capset(2) below
            // then sets them as they should be.
            caps::keep_caps(ctx, true)?;
            user::switch(ctx, ids)?;
            caps::keep_caps(ctx, false)?;
        }
        caps::set(ctx, self.caps)?;
        if self.no_new_privs {
            ctx.say(format_args!("prctl(2) PR_SET_NO_NEW_PRIVS 1"));
            caps::no_new_privs()?;
        }
        Ok(())
    }
}
// ANCHOR_END: step

/// Whether `--security-opt` asks for no_new_privs (the last of
/// `no-new-privileges[=true|false]` wins); an option it does not know is
/// an error.
pub fn no_new_privs(security_opt: &[String]) -> std::result::Result<bool, String> {
    let mut on = false;
    for opt in security_opt {
        on = match opt.as_str() {
            "no-new-privileges" | "no-new-privileges=true" => true,
            "no-new-privileges=false" => false,
            other => {
                return Err(format!(
                    "--security-opt {other:?}: chapter 9 knows only no-new-privileges"
                ))
            }
        };
    }
    Ok(on)
}

/// The rootfs's /etc/NAME, looked up with openat2(2) `RESOLVE_IN_ROOT`,
/// as if the rootfs were `/`: a symlink in it cannot lead to the host's
/// files. Empty if the rootfs has none. A rootless overlay is not mounted
/// yet (the container's process mounts it, chapter 8): then the file is
/// read from the image's layers, the top one first, as overlayfs would
/// find it.
fn read_etc(ctx: &Ctx, name: &str) -> Result<String> {
    let Some(root) = &ctx.rootfs else {
        return Err(Error::runtime(
            "--user and --group-add need a root filesystem (--rootfs or --layer)",
        ));
    };
    let path = format!("etc/{name}");
    if let Some(text) = read_in(root, &path, name)? {
        return Ok(text);
    }
    for layer in ctx.layers.iter().rev() {
        match read_in(layer, &path, name)? {
            Some(text) => return Ok(text),
            // A whiteout of the file or of /etc, or an opaque /etc: the
            // layers below are hidden.
            None if hidden(layer, "etc") || hidden(layer, &path) || opaque(layer, "etc") => {
                return Ok(String::new())
            }
            None => {}
        }
    }
    Ok(String::new())
}

/// `dir`/`path`, read through openat2(2) `RESOLVE_IN_ROOT`: None if it is
/// missing or is no regular file (a whiteout is a character device).
fn read_in(dir: &std::path::Path, path: &str, name: &str) -> Result<Option<String>> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let dirfd = std::fs::File::open(dir).context(format!("opening the rootfs {dir:?}"))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(std::os::fd::AsRawFd::as_raw_fd(&dirfd), path, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ENXIO) => return Ok(None),
        Err(e) => return Err(e).context(format!("openat2(2) /etc/{name} in the rootfs")),
    };
    // SAFETY: openat2(2) just returned this descriptor; nothing else owns it.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let mut text = String::new();
    // /etc/passwd is a few KiB; a rootfs's file is hostile input, so read
    // at most 1 MiB of it.
    (&mut file)
        .take(1 << 20)
        .read_to_string(&mut text)
        .context(format!("reading /etc/{name} in the rootfs"))?;
    Ok(Some(text))
}

/// Whether `layer`/`path` is an overlayfs whiteout (a character device 0:0).
fn hidden(layer: &std::path::Path, path: &str) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    std::fs::symlink_metadata(layer.join(path))
        .is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// Whether `layer`/`dir` is opaque: its lower layers' entries are hidden.
fn opaque(layer: &std::path::Path, dir: &str) -> bool {
    let path = layer.join(dir);
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|attr| xattr_is_y(&path, attr))
}

fn xattr_is_y(path: &std::path::Path, attr: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(p), Ok(a)) = (
        std::ffi::CString::new(path.as_os_str().as_bytes()),
        std::ffi::CString::new(attr),
    ) else {
        return false;
    };
    let mut buf = [0u8; 2];
    // SAFETY: both strings are NUL-terminated and outlive the call; `buf`
    // is valid for writing buf.len() bytes.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), a.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    n == 1 && buf[0] == b'y'
}
