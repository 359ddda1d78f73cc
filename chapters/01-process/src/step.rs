//! The one abstraction every chapter plugs into.
//!
//! A container start is a fixed sequence of stages that the runtime owns;
//! each chapter adds a [`Step`] that hooks into the stages it needs (see
//! book/src/architecture.md for which chapter uses which):
//!
//! ```text
//!  runtime (on the host)                          container's process
//!  ─────────────────────                          ───────────────────
//!  check()        every step: refuse bad input,
//!                 before anything exists
//!  prepare()      every step, in order: make what
//!                 the container needs on the host
//!  clone(2) with every clone_flags() ──────────►  waits for Go
//!  after_clone(pid) every step, in order
//!  Go ──────────────────────────────────────────►  identity()    become the container's user
//!                                                  setup()       namespaces, mounts, hostname
//!                                                  privileges()  give up what it must not keep
//!                                                  (runtime) find the executable in $PATH
//!     ◄────────────────────────────────────────── Ready
//!  ── create() returns here; start(): ──
//!  Start ───────────────────────────────────────►  (runtime) default signal state
//!                                                  last()        chapter 10's filter
//!                                                  before_exec() chapter 2's --init forks
//!     ◄──── end-of-file at execve(2), or an Error  execve(2)
//!  wait (pidfd), cleanup() in reverse order for every step whose
//!  prepare() succeeded, whether or not the container ever started
//! ```
//!
//! Each child stage runs for every step before the next stage begins, so a
//! step hooks in where its work belongs, not where its chapter comes.
//! What a step makes on the host it first writes down in the container's
//! state record ([`Ctx::record`], see state.rs), so that if the runtime is
//! killed, another process can remove it with the step's [`Step::undo`].

use crate::error::Result;
use crate::runtime::Outcome;
use crate::state::{Record, Undo};
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use std::fmt;
use std::io::Write;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Mutex;

/// What the steps share about one container.
pub struct Ctx {
    /// The binary's name, used in messages.
    pub prog: &'static str,
    /// A short random id (8 hex digits), unique per container: names of cgroups,
    /// veths and overlay dirs are made from it so containers can run in parallel.
    /// A caller may set its own (1 to 12 hex digits, see
    /// [`state::valid_id`](crate::state::valid_id)); the binaries take
    /// `STEPBOX_CONTAINER_ID`, for tests.
    pub id: String,
    /// Print each kernel step as it happens (`-v`).
    pub verbose: bool,
    /// The directory the child will pivot_root(2) into (chapter 5 on).
    pub rootfs: Option<PathBuf>,
    /// The image's layers, lowest first (chapter 8), for steps that read
    /// the image's files on the host before the rootfs is mounted: a
    /// rootless overlay is mounted by the container's process only.
    pub layers: Vec<PathBuf>,
    /// In the child: its end of the channel to the runtime (see
    /// protocol.rs). A step that forks in the child (chapter 2's init) must
    /// close it in the process that does not exec, or the runtime would
    /// never see the end-of-file that says execve(2) succeeded.
    pub report_fd: RawFd,
    /// How the container ended; set before cleanup() runs, None if it never ran.
    pub outcome: Option<Outcome>,
    /// The command the container runs (argv), for steps whose checks depend
    /// on it (chapter 5 looks for its executable in the rootfs).
    pub command: Vec<std::ffi::OsString>,
    /// The command's whole environment, `NAME=value` by name: nothing of the
    /// runtime's own environment reaches the container unless it is here.
    /// [`Ctx::new`] puts docker's defaults in; steps add to it
    /// ([`Ctx::set_env`]); `HOSTNAME` is added in the child, last.
    pub env: Vec<(String, String)>,
    /// Where the state records of live containers are kept
    /// (`RUN_DIR/containers/<id>.json`); `/run/stepbox` by default.
    pub run_dir: PathBuf,
    /// How to remove each kind of resource, from every step (set by
    /// `runtime::run`), for the sweep of what dead runtimes left.
    pub undo: Undo,
    /// Chapter 12's detached containers: the container waits for Start not
    /// on the channel, whose runtime end goes away when `create` exits, but
    /// by opening this FIFO for writing, which blocks until `start` opens
    /// it for reading (runc's `exec.fifo`). None: on the channel.
    pub start_fifo: Option<PathBuf>,
    /// Namespaces to join instead of creating (chapter 12: a namespace a
    /// config gives by path, and `exec`, which joins all of a container's):
    /// the flag, and a descriptor of the namespace (`/proc/PID/ns/net`).
    /// setns(2) into a pid namespace moves only the caller's future
    /// children, so the runtime joins them in a forked intermediate, which
    /// then clones the container's process.
    pub join: Vec<(CloneFlags, std::os::fd::OwnedFd)>,
    /// Descriptors not closed at the clone, as every other is: those a
    /// step opened in prepare() for the container's process to use before
    /// its exec (chapter 12's console socket, close-on-exec, so the
    /// command never gets them), and those the caller passes on to the
    /// command (chapter 12's `--preserve-fds`).
    pub keep_fds: Vec<RawFd>,
    /// This container's state record, once a step has recorded something.
    pub(crate) record: Mutex<Option<Record>>,
    /// Where [`tell`](Self::tell) writes instead of stderr: chapter 12's
    /// `--log`. An engine gives `create` the container's own stdio, so a
    /// warning on stderr would land in the container's log.
    pub tell_to: Option<TellTo>,
}

/// See [`Ctx::tell_to`].
pub type TellTo = std::sync::Arc<dyn Fn(&str) + Send + Sync + std::panic::RefUnwindSafe>;

/// The host's root: uid 0 in the initial user namespace. Root in a user
/// namespace someone else made (rootless podman runs its runtime in one,
/// as uid 0) has none of the host's privileges: to the host's `/run`,
/// its cgroup tree and its devices, it is the ordinary user who made it.
pub fn host_root() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/self/uid_map").map_or(true, |m| is_identity_map(&m))
}

/// The initial user namespace's map: every id to itself.
fn is_identity_map(text: &str) -> bool {
    text.split_whitespace().eq(["0", "0", "4294967295"])
}

/// Where the state records of live containers go: `/run/stepbox` for
/// the host's root; for anyone else (chapter 11's rootless containers)
/// their own runtime directory, `$XDG_RUNTIME_DIR/stepbox` (systemd makes
/// it, mode 0700), or `/tmp/stepbox-UID` without one.
pub fn default_run_dir() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if host_root() {
        return PathBuf::from("/run/stepbox");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("stepbox"),
        _ => PathBuf::from(format!("/tmp/stepbox-{uid}")),
    }
}

/// docker's `PATH` for a container whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Ctx {
    pub fn new(prog: &'static str, verbose: bool) -> Self {
        Ctx {
            prog,
            id: random_id(),
            verbose,
            rootfs: None,
            layers: Vec::new(),
            report_fd: -1,
            outcome: None,
            command: Vec::new(),
            env: default_env(),
            run_dir: default_run_dir(),
            undo: Undo::default(),
            start_fifo: None,
            join: Vec::new(),
            keep_fds: Vec::new(),
            record: Mutex::new(None),
            tell_to: None,
        }
    }

    /// A context for the same runtime, without `-v`.
    pub fn quiet(&self) -> Ctx {
        let mut quiet = Ctx::new(self.prog, false);
        quiet.id = self.id.clone();
        quiet.run_dir = self.run_dir.clone();
        quiet.undo = self.undo;
        quiet
    }

    /// Sets `name` in the container's environment, replacing an earlier value.
    pub fn set_env(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.env.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => self.env.push((name.to_owned(), value)),
        }
    }

    /// The value of `name` in the container's environment.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `-v`: one line per kernel step, on stderr, in the order they happen.
    pub fn say(&self, what: fmt::Arguments) {
        if self.verbose {
            // One write(2) of the whole line, not through std's stderr
            // handle: the child of a fork(2) in a multi-threaded caller must
            // not wait for a lock that another thread held at the fork.
            let line = format!("+ {what}\n");
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
        }
    }

    /// A line for the user on stderr, `PROG: what`. Unlike eprintln!, it
    /// never panics: a closed stderr (`... 2>&1 | head`) must not stop a
    /// cleanup half-way.
    pub fn tell(&self, what: fmt::Arguments) {
        match &self.tell_to {
            Some(to) => to(&what.to_string()),
            None => {
                let _ = writeln!(std::io::stderr(), "{}: {what}", self.prog);
            }
        }
    }
}

/// What docker gives a container: `PATH`, `HOME` (root's, as the command
/// runs as root; chapter 1, which can run as anyone, gives the caller's
/// home from the password database), and `TERM` only when there is a
/// terminal. A secret exported in the caller's shell stays there.
fn default_env() -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
        ("HOME".to_owned(), default_home()),
    ];
    if nix::unistd::isatty(0).unwrap_or(false) {
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_owned());
        env.push(("TERM".to_owned(), term));
    }
    env
}

/// `HOME` unless `-e HOME=...` says otherwise: root's, or the caller's
/// own from the password database. A later chapter that knows the
/// container's user (chapter 9) replaces it while it is still this.
pub fn default_home() -> String {
    let uid = nix::unistd::geteuid();
    match uid.is_root() {
        true => "/root".to_owned(),
        false => nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.dir.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".to_owned()),
    }
}

fn random_id() -> String {
    let mut b = [0u8; 4];
    // getrandom(2) cannot fail for 4 bytes once the pool is initialised.
    // SAFETY: `b` is valid for writing b.len() bytes.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One chapter's contribution to starting a container. Every method has a
/// default that does nothing, so a step implements only the stages it needs.
pub trait Step: Send {
    /// Namespaces to create with clone(2).
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::empty()
    }
    /// Runtime, first, for every step before any prepare(): refuse bad
    /// input with one line, so that a bad rootfs or layer is refused before
    /// a cgroup or a veth exists. It makes nothing of the container's on the
    /// host (chapter 8 fills its layer cache here: unpacking is how a layer
    /// is checked, and the cache is shared, not the container's).
    fn check(&mut self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }
    /// Runtime, before clone(2): create what the container needs on the host.
    fn prepare(&mut self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }
    /// Runtime, after clone(2), while the child waits for Go: configure it
    /// from outside.
    fn after_clone(&mut self, _ctx: &Ctx, _child: Pid) -> Result<()> {
        Ok(())
    }
    /// Child stage 1: become the container's identity (chapter 11: the
    /// user namespace's ids), before anything is made inside.
    fn identity(&self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
    /// Child stage 2, inside the new namespaces: mounts, interfaces, hostname.
    fn setup(&self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
    /// Child stage 3: give up what the command must not keep (chapter 9's
    /// capabilities), once nothing else needs them.
    fn privileges(&self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
    /// Child, in the runtime's tail, after start(): the last hook before
    /// execve(2) (chapter 10 loads its filter here). The executable is
    /// found and the environment built already, so after it the runtime
    /// only calls execve(2) and, if that fails, reports why.
    fn last(&self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
    /// Child, after every step's last(): a step that stays behind as the
    /// container's PID 1 (chapter 2's --init) forks here, so that the init
    /// has been through every stage the command has.
    fn before_exec(&self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
    /// Runtime, after the container exited or setup failed; called only if
    /// this step's prepare() succeeded (a failing prepare() undoes its own
    /// partial work). It must try everything it can, and return an error
    /// only for what it could not undo, saying what is left on the host and
    /// where: the runtime then exits 125 even if the command succeeded,
    /// because the host is not as it was.
    fn cleanup(&mut self, _ctx: &Ctx) -> Result<()> {
        Ok(())
    }
    /// Fills in how to remove the kinds of resource this step records, from
    /// the record alone: for a sweep of what a killed runtime left.
    fn undo(&self, _undo: &mut Undo) {}
    /// `--gc`, after the records: remove what killed runs left that is in
    /// no container's record but in a store of the step's own (chapter 8's
    /// half-unpacked layers). Returns a line for each thing left.
    fn gc(&self, _ctx: &Ctx) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::is_identity_map;

    #[test]
    fn only_the_initial_namespaces_map_is_the_identity() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("         0       1001          1\n"));
        assert!(!is_identity_map("0 1001 1\n1 100000 65536\n"));
        assert!(!is_identity_map("0 0 65536\n"));
        assert!(!is_identity_map(""));
    }
}
