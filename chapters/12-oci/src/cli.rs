//! runc's command line, which engines call: `create`, `start`, `state`,
//! `kill`, `delete`, and `run`, `list`, `spec`, `features` for people.

use crate::container::{self, Dir, Saved, Status};
use crate::spec;
use ch01_process::error::{one_line, EXIT_RUNTIME};
use ch01_process::state::Process;
use ch01_process::{Container, Ctx, Steps};
use clap::{Parser, Subcommand};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

const NAME: &str = "ch12-oci";

#[derive(Parser, Debug)]
#[command(name = NAME, version, about = "An OCI runtime: chapters 1 to 11 driven by a bundle's \
                                         config.json, with runc's command line.")]
struct Cli {
    /// Where the containers' state is kept [default: /run/ch12-oci; for
    /// anyone but the host's root, $XDG_RUNTIME_DIR/ch12-oci].
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Also write errors (and, with --debug, each step) to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// `text` or `json` (one `{"level","msg","time"}` object per line, as engines read it).
    #[arg(long, global = true, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Print each kernel step (chapter 1's -v).
    #[arg(long, global = true)]
    debug: bool,
    /// Manage cgroups through systemd (refused: this runtime writes cgroupfs).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set up a container from a bundle; its process waits for `start`.
    Create {
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Run the command of a created container.
    Start { id: String },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's process.
    Kill {
        /// Every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a stopped (or created) container; --force also a running one.
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// create, start, wait, delete: in the foreground.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// create and start, then return.
        #[arg(short, long)]
        detach: bool,
    },
    /// List the containers under --root.
    List {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a config.json for a bundle with a `rootfs` directory; with
    /// chapter 11's flags, the config those flags mean.
    Spec {
        #[arg(short, long, value_name = "DIR", default_value = ".")]
        bundle: PathBuf,
        /// Print it instead of writing BUNDLE/config.json.
        #[arg(long)]
        stdout: bool,
        /// The root filesystem read-only (docker's --read-only).
        #[arg(long)]
        read_only: bool,
        #[command(flatten)]
        flags: Box<ch11_userns::Opts>,
        /// The container's command (default: sh).
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<std::ffi::OsString>,
    },
    /// What this runtime supports, as JSON (the runtime spec's features).
    Features,
    /// Run another process in a running container.
    Exec {
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// Freeze every process of the container (the cgroup freezer).
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// The container's processes: `ps`'s lines for them, or their pids as JSON.
    Ps {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        id: String,
        /// ps(1)'s options (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change a running container's memory, pids or CPU limits.
    Update {
        /// linux.resources as JSON (`-`: stdin); the flags below override it.
        #[arg(short, long, value_name = "FILE")]
        resources: Option<PathBuf>,
        /// Bytes.
        #[arg(short, long)]
        memory: Option<i64>,
        #[arg(long)]
        pids_limit: Option<i64>,
        #[arg(long)]
        cpu_quota: Option<i64>,
        #[arg(long)]
        cpu_period: Option<u64>,
        #[arg(long)]
        cpu_shares: Option<u64>,
        id: String,
    },
    /// The container's resource usage and OOMs, as JSON lines (`--stats`:
    /// the usage once).
    Events {
        /// Print the stats once and exit (without it: every --interval,
        /// with an `oom` line for each OOM, until the container ends).
        #[arg(long)]
        stats: bool,
        /// `5s`, `500ms`, `1m`, or a number of seconds.
        #[arg(long, value_name = "DURATION", default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Anything else runc has: refused by name.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    bundle: PathBuf,
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Refused: chapter 5 always pivots.
    #[arg(long)]
    no_pivot: bool,
    /// Accepted: this runtime never makes a session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

#[derive(clap::Args, Debug)]
struct ExecArgs {
    /// The process, as config.json's `process` (what engines pass).
    #[arg(short, long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Return once the process runs; it is not waited for.
    #[arg(short, long)]
    detach: bool,
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    #[arg(short, long)]
    tty: bool,
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    #[arg(short, long, value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// UID[:GID].
    #[arg(short, long, value_name = "UID[:GID]")]
    user: Option<String>,
    #[arg(short = 'g', long, value_name = "GID")]
    additional_gids: Vec<u32>,
    /// Add a capability (CAP_NAME) to the config's set.
    #[arg(short, long, value_name = "CAP")]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    id: String,
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// An error: its line, and the exit status (125: the runtime's own).
type Fail = (i32, String);

fn fail(msg: impl Into<String>) -> Fail {
    (EXIT_RUNTIME, msg.into())
}

pub fn main() -> ! {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let first = e.render().to_string();
            let line = first
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            let _ = writeln!(
                std::io::stderr(),
                "{NAME}: {} (see {NAME} --help)",
                one_line(line)
            );
            std::process::exit(EXIT_RUNTIME);
        }
    };
    let log = Log::of(&cli);
    // Commands that make a process that is this binary until its exec run
    // from a copy of it no one can write (see sealed.rs).
    let makes_process = matches!(
        cli.command,
        Command::Create { .. } | Command::Run { .. } | Command::Exec { .. }
    );
    if makes_process && !crate::sealed::is_sealed() {
        let e = crate::sealed::reexec();
        let msg =
            format!("re-executing from a read-only copy of the runtime (open_tree, memfd_create, fexecve): {e}");
        let _ = writeln!(std::io::stderr(), "{NAME}: {msg}");
        log.error(&msg);
        std::process::exit(EXIT_RUNTIME);
    }
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err((code, msg)) => {
            let msg = one_line(&msg);
            let _ = writeln!(std::io::stderr(), "{NAME}: {msg}");
            log.error(&msg);
            code
        }
    };
    std::process::exit(code)
}

#[derive(Clone)]
struct Log {
    file: Option<PathBuf>,
    json: bool,
}

impl Log {
    fn of(cli: &Cli) -> Log {
        Log {
            file: cli.log.clone(),
            json: cli.log_format == "json",
        }
    }

    fn error(&self, msg: &str) {
        self.write("error", msg)
    }

    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let line = match self.json {
            true => {
                json!({"level": level, "msg": msg, "time": container::now_rfc3339()}).to_string()
            }
            false => format!("{} {level}: {msg}", container::now_rfc3339()),
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn dispatch(cli: &Cli) -> Result<i32, Fail> {
    if cli.systemd_cgroup {
        return Err(fail(match Path::new("/run/systemd/system").exists() {
            false => {
                "--systemd-cgroup: this host does not run systemd; without the flag the \
                      cgroups are made in the cgroup filesystem"
            }
            true => {
                "--systemd-cgroup is not supported: chapter 7 writes the cgroup filesystem \
                     itself (podman: --cgroup-manager cgroupfs)"
            }
        }));
    }
    let root = absolute(&cli.root.clone().unwrap_or_else(default_root))?;
    match &cli.command {
        Command::Create { create } => create_cmd(cli, &root, create).map(|_| 0),
        Command::Start { id } => start(cli, &root, id).map(|_| 0),
        Command::State { id } => state(&root, id).map(|_| 0),
        Command::Kill { all, id, signal } => kill(&root, id, signal, *all).map(|_| 0),
        Command::Delete { force, id } => delete(cli, &root, id, *force).map(|_| 0),
        Command::Run { create, detach } => run(cli, &root, create, *detach),
        Command::Exec { exec } => exec_cmd(cli, &root, exec),
        Command::Pause { id } => freeze(&root, id, true).map(|_| 0),
        Command::Resume { id } => freeze(&root, id, false).map(|_| 0),
        Command::Events {
            stats,
            interval,
            id,
        } => events(&root, id, *stats, interval).map(|_| 0),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(&root, id, format, ps_args).map(|_| 0),
        Command::Update {
            resources,
            memory,
            pids_limit,
            cpu_quota,
            cpu_period,
            cpu_shares,
            id,
        } => {
            let mut r = match resources {
                Some(path) if path == Path::new("-") => {
                    serde_json::from_reader(std::io::stdin())
                        .map_err(|e| fail(format!("--resources -: {e}")))?
                }
                Some(path) => {
                    let text = std::fs::read(path)
                        .map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
                    serde_json::from_slice(&text)
                        .map_err(|e| fail(format!("{}: {e}", path.display())))?
                }
                None => json!({}),
            };
            for (obj, key, v) in [
                ("memory", "limit", memory.map(|v| json!(v))),
                ("pids", "limit", pids_limit.map(|v| json!(v))),
                ("cpu", "quota", cpu_quota.map(|v| json!(v))),
                ("cpu", "period", cpu_period.map(|v| json!(v))),
                ("cpu", "shares", cpu_shares.map(|v| json!(v))),
            ] {
                if let Some(v) = v {
                    r[obj][key] = v;
                }
            }
            update(cli, &root, id, r).map(|_| 0)
        }
        Command::List { format, quiet } => list(&root, format, *quiet).map(|_| 0),
        Command::Spec {
            bundle,
            stdout,
            read_only,
            flags,
            command,
        } => {
            use ch01_process::Chapter;
            let mut config = flags.config();
            // As runc's spec: no user namespace unless a map is asked for.
            if flags.uidmap.is_empty() && flags.gidmap.is_empty() && flags.userns_remap.is_none() {
                config.userns = ch11_userns::UserNs::Host;
            }
            config.prev.prev.prev.prev.prev.prev.readonly = *read_only;
            let mut json = crate::flags::to_json(&config, command).map_err(fail)?;
            json["root"]["readonly"] = json!(*read_only);
            write_spec(bundle, &json, *stdout).map(|_| 0)
        }
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&features()).expect("json")
            );
            Ok(0)
        }
        Command::Other(args) => Err(fail(match args.first().map(String::as_str) {
            Some(c @ ("checkpoint" | "restore")) => {
                format!("{c}: not supported (runc does it with CRIU)")
            }
            c => format!("{}: no such command (see {NAME} --help)", c.unwrap_or("?")),
        })),
    }
}

/// runc's rule: the host's root keeps state in /run; anyone else, and
/// root of a user namespace someone else made (rootless podman runs its
/// runtime in one, with its own XDG_RUNTIME_DIR), in their runtime
/// directory.
fn default_root() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() && !ch01_process::step::host_root() => {
            PathBuf::from(dir).join(NAME)
        }
        _ => PathBuf::from("/run").join(NAME),
    }
}

fn absolute(p: &Path) -> Result<PathBuf, Fail> {
    std::path::absolute(p).map_err(|e| fail(format!("{}: {e}", p.display())))
}

/// The context chapter 1's runtime gets for container `record`.
/// Opens the namespaces a config gives by path, for chapter 1's runtime
/// to join.
fn open_joins(ctx: &mut Ctx, joins: &[(nix::sched::CloneFlags, PathBuf)]) -> Result<(), Fail> {
    for (flag, path) in joins {
        let file = std::fs::File::open(path)
            .map_err(|e| fail(format!("opening the namespace {}: {e}", path.display())))?;
        ctx.join.push((*flag, OwnedFd::from(file)));
    }
    Ok(())
}

fn context(cli: &Cli, root: &Path) -> Ctx {
    let mut ctx = Ctx::new(NAME, cli.debug);
    // Tests name what a container makes on the host, as every chapter's
    // binary lets them (chapter 1's main), so that their final sweep
    // finds it.
    if let Ok(id) = std::env::var("STEPBOX_CONTAINER_ID") {
        if ch01_process::state::valid_id(&id) {
            ctx.id = id;
        }
    }
    ctx.run_dir = root.to_owned();
    // Exactly the config's environment (plus HOME, which chapter 9 sets
    // from the user's passwd entry unless the config gives one).
    ctx.env = vec![("HOME".into(), ch01_process::step::default_home())];
    ctx
}

/// Reads the bundle and checks the flags against it.
fn bundle_of(args: &CreateArgs) -> Result<spec::Bundle, Fail> {
    if args.no_pivot {
        return Err(fail(
            "--no-pivot is not supported: chapter 5 always uses pivot_root(2)",
        ));
    }
    // --preserve-fds N: descriptors 3 to 3+N-1 go on to the command (an
    // engine's socket activation), checked to be open here.
    for fd in 3..3 + args.preserve_fds as i32 {
        // SAFETY: F_GETFD reads a descriptor's flags and touches no memory.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(fail(format!(
                "--preserve-fds {}: descriptor {fd} is not open",
                args.preserve_fds
            )));
        }
    }
    let dir = absolute(&args.bundle)?;
    let mut bundle = spec::load(&dir).map_err(fail)?;
    match (bundle.terminal, &args.console_socket) {
        (true, None) => {
            return Err(fail(
                "process.terminal is true but no --console-socket was given to send it to",
            ))
        }
        (false, Some(_)) => {
            return Err(fail(
                "--console-socket needs process.terminal true in config.json",
            ))
        }
        _ => {}
    }
    bundle.config.oci_id = args.id.clone();
    Ok(bundle)
}

// ANCHOR: create
fn create_cmd(cli: &Cli, root: &Path, args: &CreateArgs) -> Result<(), Fail> {
    let bundle = bundle_of(args)?;
    let dir = Dir::create(root, &args.id).map_err(fail)?;
    let made = create_in(cli, root, &dir, args, bundle);
    if made.is_err() {
        // The spec's rule: a create that fails leaves nothing.
        let _ = dir.remove();
    }
    made
}

fn create_in(
    cli: &Cli,
    root: &Path,
    dir: &Dir,
    args: &CreateArgs,
    bundle: spec::Bundle,
) -> Result<(), Fail> {
    // The FIFO the container's process opens for writing before its
    // execve(2): that open blocks until `start` opens it for reading.
    // Mode 0622, so that the container's root in a user namespace (an
    // unprivileged id on the host) can open it too.
    let fifo = dir.fifo();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| fail(format!("mkfifo {}: {e}", fifo.display())))?;
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .map_err(|e| fail(format!("chmod {}: {e}", fifo.display())))?;
    let mut ctx = context(cli, root);
    // An engine gives create the container's own stdio: a warning on
    // stderr would be the first line of the container's log. It goes to
    // --log, where the engine reads the runtime's messages, or nowhere.
    // Anything else (what a failed create could not remove) goes to
    // stderr too: the engine reports it with the error.
    let log = Log::of(cli);
    ctx.tell_to = Some(std::sync::Arc::new(move |msg| {
        match msg.strip_prefix("warning: ") {
            Some(warning) => log.write("warning", warning),
            None => {
                let _ = writeln!(std::io::stderr(), "{NAME}: {msg}");
                log.error(msg);
            }
        }
    }));
    // Before anything is made on the host: a create killed from here on
    // leaves a state record that `delete --force` finds through this file.
    std::fs::write(dir.path.join("record"), &ctx.id)
        .map_err(|e| fail(format!("writing {}/record: {e}", dir.path.display())))?;
    ctx.start_fifo = Some(fifo);
    ctx.keep_fds.extend(3..3 + args.preserve_fds as i32);
    open_joins(&mut ctx, &bundle.config.joins)?;
    let record = ctx.id.clone();
    let steps = with_console(bundle.config.steps(), &bundle, &args.console_socket);
    let container = Container::create(ctx, steps, &bundle.command).map_err(|e| (e.code, e.msg))?;
    let pid = container.pid().as_raw();
    let process = Process::of(pid)
        .ok_or_else(|| fail(format!("the container's process {pid} ended during create")))?;
    let saved = Saved {
        id: args.id.clone(),
        pid,
        start: process.start,
        bundle: bundle.config.bundle.clone(),
        created: container::now_rfc3339(),
        annotations: bundle.config.annotations.clone(),
        record,
        hooks: bundle.config.hooks.clone(),
        cgroups: cgroups_of(pid),
    };
    dir.save(&saved).map_err(fail)?;
    // exec reads the config as it was at create, whatever the bundle becomes.
    std::fs::copy(
        saved.bundle.join("config.json"),
        dir.path.join("config.json"),
    )
    .map_err(|e| fail(format!("saving config.json in {}: {e}", dir.path.display())))?;
    if let Some(path) = &args.pid_file {
        write_pid_file(path, pid)?;
    }
    // From here the container outlives this process; a failure above
    // dropped `container`, which removed everything.
    container.detach().map_err(|e| (e.code, e.msg))?;
    Ok(())
}
// ANCHOR_END: create

/// Written whole, then renamed: an engine polling for the file never reads half of it.
fn write_pid_file(path: &Path, pid: i32) -> Result<(), Fail> {
    let path = absolute(path)?;
    let tmp = path.with_extension("tmp-ch12");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| fail(format!("writing the pid file {}: {e}", path.display())))
}

/// The container's cgroup directories, from /proc/PID/cgroup as the host
/// sees it (v1: one per hierarchy; v2: one). Its parent's are not listed.
fn cgroups_of(pid: i32) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return Vec::new();
    };
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if path == "/" {
            continue;
        }
        let base = match (controllers, unified) {
            ("", true) => PathBuf::from("/sys/fs/cgroup"),
            ("", false) => PathBuf::from("/sys/fs/cgroup/unified"),
            (c, _) => PathBuf::from("/sys/fs/cgroup").join(c.trim_start_matches("name=")),
        };
        let dir = base.join(path.trim_start_matches('/'));
        if dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The steps, with the console's after chapter 12's own (after the mounts,
/// before chapter 9's privileges), if the config asks for a terminal.
fn with_console(
    mut steps: Vec<Box<dyn ch01_process::Step>>,
    bundle: &spec::Bundle,
    socket: &Option<PathBuf>,
) -> Vec<Box<dyn ch01_process::Step>> {
    if let (true, Some(path)) = (bundle.terminal, socket) {
        let at = steps.len().saturating_sub(2);
        steps.insert(
            at,
            Box::new(crate::console::Console::new(
                path.clone(),
                bundle.console_size,
            )),
        );
    }
    steps
}

fn open_existing(root: &Path, id: &str) -> Result<(Dir, Saved), Fail> {
    let dir = Dir::open(root, id).map_err(fail)?;
    let saved = dir
        .load()
        .map_err(fail)?
        .ok_or_else(|| fail(format!("container {id} does not exist")))?;
    Ok((dir, saved))
}

/// A pidfd for the container's process, checked to be that process and
/// not a later one with its pid: pidfd_open(2) first, then the start time.
fn pidfd_of(saved: &Saved) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, saved.pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just made this descriptor, for us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let process = Process {
        pid: saved.pid,
        start: saved.start,
    };
    process.alive().then_some(fd)
}

// ANCHOR: start
fn start(cli: &Cli, root: &Path, id: &str) -> Result<(), Fail> {
    use nix::fcntl::{open, OFlag};
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let (dir, saved) = open_existing(root, id)?;
    match dir.status(&saved) {
        Status::Created => {}
        s => {
            return Err(fail(format!(
                "container {id} is {}: only a created container starts",
                s.name()
            )))
        }
    }
    let pidfd = pidfd_of(&saved).ok_or_else(|| fail(format!("container {id} has stopped")))?;
    // O_NONBLOCK: opening for reading does not wait for a writer. The
    // container's process is blocked opening it for writing; this open
    // lets it go on, and it writes one byte.
    let fifo = dir.fifo();
    let fd = open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| fail(format!("opening {}: {e}", fifo.display())))?;
    // SAFETY: open(2) just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // lab: begin poll(2) the FIFO and the pidfd until the FIFO has the container's byte
    loop {
        let mut fds = [
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(fail(format!("poll(2): {e}"))),
        }
        let mut byte = [0u8; 1];
        if fds[0].any().unwrap_or(false) {
            match nix::unistd::read(fd.as_raw_fd(), &mut byte) {
                Ok(1) => break,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(fail(format!("reading {}: {e}", fifo.display()))),
            }
        }
        if fds[1].any().unwrap_or(false) {
            return Err(fail(format!(
                "container {id}'s process exited before it started"
            )));
        }
    }
    // lab: end
    let _ = std::fs::remove_file(&fifo);
    // The container's process keeps the FIFO open until its last steps
    // (startContainer hooks, the seccomp filter) are done: its end of
    // file, or its exit, comes before the poststart hooks, as the spec
    // orders them. A byte before it: one of those steps failed.
    let mut failed = false;
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(fail(format!("poll(2): {e}"))),
        }
        let mut rest = [0u8; 16];
        match nix::unistd::read(fd.as_raw_fd(), &mut rest) {
            Ok(0) => break,
            Ok(_) => failed = true,
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(fail(format!("reading {}: {e}", fifo.display()))),
        }
    }
    if failed {
        return Err(fail(format!(
            "container {id}'s process failed before its execve(2), in a startContainer hook \
             or the seccomp filter (its stderr says why)"
        )));
    }
    // The spec: a failing poststart hook is a warning; the container runs.
    let state = container::oci_state(&saved, Status::Running);
    if let Err(e) = crate::hooks::run_all(&context(cli, root), &saved.hooks, "poststart", &state) {
        let _ = writeln!(std::io::stderr(), "{NAME}: warning: {}", one_line(&e));
    }
    Ok(())
}
// ANCHOR_END: start

fn state(root: &Path, id: &str) -> Result<(), Fail> {
    let (dir, saved) = open_existing(root, id)?;
    let state = container::oci_state(&saved, dir.status(&saved));
    println!("{}", serde_json::to_string_pretty(&state).expect("json"));
    Ok(())
}

/// `TERM`, `SIGTERM`, `15`.
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("{s}: not a signal number"));
    }
    let upper = s.to_ascii_uppercase();
    let name = match upper.starts_with("SIG") {
        true => upper,
        false => format!("SIG{upper}"),
    };
    name.parse::<Signal>()
        .map_err(|_| format!("{s:?} is not a signal name"))
}

fn kill(root: &Path, id: &str, signal: &str, all: bool) -> Result<(), Fail> {
    let sig = parse_signal(signal).map_err(fail)?;
    let (dir, saved) = open_existing(root, id)?;
    if dir.status(&saved) == Status::Stopped {
        return Err(fail(format!("container {id} is not running")));
    }
    if all {
        for cgroup in &saved.cgroups {
            let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
            }
        }
    }
    let pidfd = pidfd_of(&saved).ok_or_else(|| fail(format!("container {id} is not running")))?;
    send(&pidfd, sig).map_err(|e| fail(format!("pidfd_send_signal(2) {sig}: {e}")))
}

fn send(pidfd: &OwnedFd, sig: Signal) -> nix::Result<()> {
    ch01_process::runtime::pidfd_send_signal(pidfd.as_fd(), sig)
}

// ANCHOR: delete
fn delete(cli: &Cli, root: &Path, id: &str, force: bool) -> Result<(), Fail> {
    let dir = match Dir::open(root, id) {
        Ok(dir) => dir,
        // As runc: an engine cleaning up after a failed create may find
        // nothing, which is what --force asks for.
        Err(_) if force && container::valid_id(id) && !root.join(id).exists() => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    let Some(saved) = dir.load().map_err(fail)? else {
        // A create that was killed before it wrote its state: what it made
        // is in the state record it named first.
        if let Ok(record) = std::fs::read_to_string(dir.path.join("record")) {
            let mut ctx = context(cli, root);
            ctx.id = record.trim().to_owned();
            let undo = ch01_process::state::Undo::of(&crate::Config::default().steps());
            ch01_process::state::remove_detached(&ctx, &undo, &ctx.id)
                .map_err(|e| (e.code, e.msg))?;
        }
        return dir.remove().map_err(fail);
    };
    let status = dir.status(&saved);
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(fail(format!(
            "container {id} is {}: stop it first, or delete --force",
            status.name()
        )));
    }
    if let Some(pidfd) = pidfd_of(&saved) {
        // A frozen process takes no signal until it thaws.
        for c in &saved.cgroups {
            let _ = std::fs::write(c.join("freezer.state"), "THAWED");
            let _ = std::fs::write(c.join("cgroup.freeze"), "0");
        }
        let _ = send(&pidfd, Signal::SIGKILL);
        let mut fds = [nix::poll::PollFd::new(
            pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        while !matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE), Ok(n) if n > 0) {}
    }
    // What create made on the host, from its state record: what a sweep
    // would remove, for this container alone.
    let mut ctx = context(cli, root);
    ctx.id = saved.record.clone();
    let undo = ch01_process::state::Undo::of(&crate::Config::default().steps());
    ch01_process::state::remove_detached(&ctx, &undo, &saved.record)
        .map_err(|e| (e.code, e.msg))?;
    let state = container::oci_state(&saved, Status::Stopped);
    if let Err(e) = crate::hooks::run_all(&ctx, &saved.hooks, "poststop", &state) {
        let _ = writeln!(std::io::stderr(), "{NAME}: warning: {}", one_line(&e));
    }
    dir.remove().map_err(fail)
}
// ANCHOR_END: delete

// ANCHOR: exec
fn exec_cmd(cli: &Cli, root: &Path, args: &ExecArgs) -> Result<i32, Fail> {
    if args.tty != args.console_socket.is_some() && args.process.is_none() {
        return Err(fail("exec --tty and --console-socket go together"));
    }
    let (dir, saved) = open_existing(root, &args.id)?;
    match dir.status(&saved) {
        Status::Running | Status::Created => {}
        s => {
            return Err(fail(format!(
                "container {} is {}: cannot exec in it",
                args.id,
                s.name()
            )))
        }
    }
    let text = std::fs::read(dir.path.join("config.json"))
        .map_err(|e| fail(format!("reading {}/config.json: {e}", dir.path.display())))?;
    let mut config: Value = serde_json::from_slice(&text)
        .map_err(|e| fail(format!("{}/config.json: {e}", dir.path.display())))?;
    config["process"] = exec_process(&config["process"], args)?;
    let bundle = spec::parse(&config, &saved.bundle).map_err(fail)?;
    if bundle.terminal && args.console_socket.is_none() {
        return Err(fail(
            "the process has terminal true but no --console-socket was given",
        ));
    }
    let c = &bundle.config.prev;
    let userns = !matches!(c.userns, ch11_userns::UserNs::Host);
    let ch05 = &c.prev.prev.prev.prev.prev.prev;
    // The pidfd first, then the namespaces: they are the container's
    // process's, not those of a later process given its pid.
    let pidfd =
        pidfd_of(&saved).ok_or_else(|| fail(format!("container {} has stopped", args.id)))?;
    let join = crate::exec::namespaces_of(saved.pid).map_err(fail)?;
    if pidfd_of(&saved).is_none() {
        return Err(fail(format!("container {} has stopped", args.id)));
    }
    drop(pidfd);
    let mut ctx = context(cli, root);
    ctx.rootfs = ch05.rootfs.clone();
    ctx.join = join;
    let mut steps = ch01_process::Config {
        env: c
            .prev
            .prev
            .prev
            .prev
            .prev
            .prev
            .prev
            .prev
            .prev
            .prev
            .env
            .clone(),
        no_host_facts: true,
    }
    .steps();
    steps.push(Box::new(crate::exec::Join {
        cgroups: saved.cgroups.clone(),
        userns,
        cwd: ch05.workdir.clone().unwrap_or_else(|| PathBuf::from("/")),
    }));
    if let (true, Some(path)) = (bundle.terminal, &args.console_socket) {
        steps.push(Box::new(crate::console::Console::new(
            path.clone(),
            bundle.console_size,
        )));
    }
    steps.extend(c.prev.process_steps());
    if !args.detach {
        let pid_file = args.pid_file.clone();
        let outcome =
            ch01_process::runtime::run_with(ctx, steps, &bundle.command, |c| match &pid_file {
                Some(path) => write_pid_file(path, c.pid().as_raw())
                    .map_err(|(_, m)| ch01_process::Error::runtime(m)),
                None => Ok(()),
            });
        return outcome.map(|o| o.code()).map_err(|e| (e.code, e.msg));
    }
    let mut process =
        Container::create(ctx, steps, &bundle.command).map_err(|e| (e.code, e.msg))?;
    if let Some(path) = &args.pid_file {
        write_pid_file(path, process.pid().as_raw())?;
    }
    process.start().map_err(|e| (e.code, e.msg))?;
    process.detach().map_err(|e| (e.code, e.msg))?;
    Ok(0)
}

/// The exec'd process, as config.json's `process`: `--process`'s, or the
/// container's with the command and the flags' changes.
fn exec_process(container: &Value, args: &ExecArgs) -> Result<Value, Fail> {
    if let Some(path) = &args.process {
        let text =
            std::fs::read(path).map_err(|e| fail(format!("reading {}: {e}", path.display())))?;
        return serde_json::from_slice(&text).map_err(|e| fail(format!("{}: {e}", path.display())));
    }
    if args.command.is_empty() {
        return Err(fail("exec needs a command, or --process FILE"));
    }
    let mut p = container.clone();
    p["args"] = json!(args.command);
    p["terminal"] = json!(args.tty);
    if let Some(cwd) = &args.cwd {
        p["cwd"] = json!(cwd);
    }
    let env = p["env"].as_array().cloned().unwrap_or_default();
    let mut env: Vec<Value> = env;
    env.extend(args.env.iter().map(|e| json!(e)));
    p["env"] = Value::Array(env);
    if let Some(user) = &args.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let n = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| fail(format!("--user {user}: expected UID[:GID]")))
        };
        p["user"]["uid"] = json!(n(uid)?);
        p["user"]["gid"] = json!(n(gid)?);
    }
    if !args.additional_gids.is_empty() {
        p["user"]["additionalGids"] = json!(args.additional_gids);
    }
    for cap in &args.cap {
        for set in ["bounding", "effective", "permitted"] {
            if let Some(list) = p["capabilities"][set].as_array_mut() {
                if !list.iter().any(|c| c == cap) {
                    list.push(json!(cap));
                }
            }
        }
    }
    if args.no_new_privs {
        p["noNewPrivileges"] = json!(true);
    }
    Ok(p)
}
// ANCHOR_END: exec

// ANCHOR: freeze
/// `pause` and `resume`: cgroup v1's `freezer.state` (FROZEN, THAWED) or
/// v2's `cgroup.freeze` (1, 0). Freezing takes effect task by task: the
/// command returns once the kernel says the whole cgroup is frozen.
fn freeze(root: &Path, id: &str, on: bool) -> Result<(), Fail> {
    let (dir, saved) = open_existing(root, id)?;
    let status = dir.status(&saved);
    match (on, status) {
        (true, Status::Running) | (false, Status::Paused) => {}
        (true, s) => {
            return Err(fail(format!(
                "container {id} is {}: only a running one pauses",
                s.name()
            )))
        }
        (false, s) => {
            return Err(fail(format!(
                "container {id} is {}: it is not paused",
                s.name()
            )))
        }
    }
    let cgroup = saved
        .cgroups
        .iter()
        .find(|c| c.join("freezer.state").exists() || c.join("cgroup.freeze").exists())
        .ok_or_else(|| fail(format!("container {id} has no cgroup with a freezer")))?;
    let (file, value, done) = match cgroup.join("freezer.state").exists() {
        true => ("freezer.state", if on { "FROZEN" } else { "THAWED" }, None),
        false => (
            "cgroup.freeze",
            if on { "1" } else { "0" },
            Some(if on { "frozen 1" } else { "frozen 0" }),
        ),
    };
    let path = cgroup.join(file);
    std::fs::write(&path, value)
        .map_err(|e| fail(format!("writing {value} to {}: {e}", path.display())))?;
    // v1 reads FREEZING until every task is frozen, and tells no one when
    // it is done: it is read again every millisecond, as runc does. v2 says
    // it in cgroup.events, which poll(2) reports as POLLPRI when it changes.
    let events = cgroup.join("cgroup.events");
    let watch = match done {
        Some(_) => Some(
            std::fs::File::open(&events)
                .map_err(|e| fail(format!("opening {}: {e}", events.display())))?,
        ),
        None => None,
    };
    loop {
        let frozen = match done {
            None => std::fs::read_to_string(&path).is_ok_and(|s| s.trim() == value),
            Some(line) => {
                std::fs::read_to_string(&events).is_ok_and(|s| s.lines().any(|l| l == line))
            }
        };
        if frozen {
            return Ok(());
        }
        match &watch {
            Some(file) => {
                let mut fds = [nix::poll::PollFd::new(
                    file.as_fd(),
                    nix::poll::PollFlags::POLLPRI,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            }
            None => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}
// ANCHOR_END: freeze

// ANCHOR: update
/// `update`: the new limits, read as create reads `linux.resources`, and
/// written by chapter 7 into the container's cgroup.
fn update(cli: &Cli, root: &Path, id: &str, resources: Value) -> Result<(), Fail> {
    let (dir, saved) = open_existing(root, id)?;
    if dir.status(&saved) == Status::Stopped {
        return Err(fail(format!("container {id} is not running")));
    }
    let text = std::fs::read(dir.path.join("config.json"))
        .map_err(|e| fail(format!("reading {}/config.json: {e}", dir.path.display())))?;
    let mut config: Value = serde_json::from_slice(&text)
        .map_err(|e| fail(format!("{}/config.json: {e}", dir.path.display())))?;
    config["linux"]["resources"] = resources;
    let bundle = spec::parse(&config, &saved.bundle).map_err(fail)?;
    let ch07 = &bundle.config.prev.prev.prev.prev.prev;
    let mut limits = ch07.limits.clone();
    limits.devices = None;
    let name = ch07
        .cgroup_name
        .clone()
        .unwrap_or_else(|| format!("stepbox-{}", saved.record));
    let mut ctx = context(cli, root);
    ctx.id = saved.record.clone();
    ch07_cgroups::update(&ctx, ch07.cgroup_parent.as_deref(), &name, &limits)
        .map_err(|e| (e.code, e.msg))
}
// ANCHOR_END: update

/// `events`: the stats once, or followed until the container ends.
fn events(root: &Path, id: &str, once: bool, interval: &str) -> Result<(), Fail> {
    let interval = crate::events::parse_interval(interval).map_err(fail)?;
    let (dir, saved) = open_existing(root, id)?;
    let process = match dir.status(&saved) {
        Status::Stopped => None,
        _ => pidfd_of(&saved),
    };
    // Other commands (start, above all) go on while this one listens.
    drop(dir);
    let process = process.ok_or_else(|| fail(format!("container {id} is not running")))?;
    let mut out = std::io::stdout().lock();
    match once {
        true => writeln!(out, "{}", crate::events::stats(&saved))
            .map_err(|e| fail(format!("writing the stats: {e}"))),
        false => crate::events::follow(&saved, &process, interval, &mut out).map_err(fail),
    }
}

fn ps(root: &Path, id: &str, format: &str, ps_args: &[String]) -> Result<(), Fail> {
    let (_dir, saved) = open_existing(root, id)?;
    let mut pids: Vec<i32> = Vec::new();
    for cgroup in &saved.cgroups {
        let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    pids.sort_unstable();
    if format == "json" {
        println!("{}", json!(pids));
        return Ok(());
    }
    let args: Vec<String> = match ps_args.is_empty() {
        true => vec!["-ef".into()],
        false => ps_args.to_vec(),
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| fail(format!("running ps: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| fail("ps's output has no PID column"))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

fn run(cli: &Cli, root: &Path, args: &CreateArgs, detach: bool) -> Result<i32, Fail> {
    if detach {
        create_cmd(cli, root, args)?;
        return start(cli, root, &args.id).map(|_| 0);
    }
    let bundle = bundle_of(args)?;
    let mut dir = Dir::create(root, &args.id).map_err(fail)?;
    let mut ctx = context(cli, root);
    ctx.keep_fds.extend(3..3 + args.preserve_fds as i32);
    if let Err(e) = open_joins(&mut ctx, &bundle.config.joins) {
        let _ = dir.remove();
        return Err(e);
    }
    let record = ctx.id.clone();
    let config = bundle.config.clone();
    let steps = with_console(config.steps(), &bundle, &args.console_socket);
    let outcome = ch01_process::runtime::run_with(ctx, steps, &bundle.command, |c| {
        let pid = c.pid().as_raw();
        let saved = Saved {
            id: args.id.clone(),
            pid,
            start: Process::of(pid).map_or(0, |p| p.start),
            bundle: config.bundle.clone(),
            created: container::now_rfc3339(),
            annotations: config.annotations.clone(),
            record: record.clone(),
            hooks: config.hooks.clone(),
            cgroups: cgroups_of(pid),
        };
        dir.save(&saved).map_err(ch01_process::Error::runtime)?;
        // Other commands may look at it while it runs.
        dir.unlock();
        match &args.pid_file {
            Some(path) => {
                write_pid_file(path, pid).map_err(|(_, m)| ch01_process::Error::runtime(m))
            }
            None => Ok(()),
        }
    });
    let removed = dir.relock().and_then(|_| dir.remove());
    let code = outcome.map_err(|e| (e.code, e.msg))?.code();
    removed.map_err(fail)?;
    Ok(code)
}

fn list(root: &Path, format: &str, quiet: bool) -> Result<(), Fail> {
    let mut rows = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e.flatten().collect::<Vec<_>>(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fail(format!("reading {}: {e}", root.display()))),
    };
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "containers" || !container::valid_id(&name) {
            continue;
        }
        let Ok(dir) = Dir::open(root, &name) else {
            continue;
        };
        let Ok(Some(saved)) = dir.load() else {
            continue;
        };
        let status = dir.status(&saved);
        rows.push(container::oci_state(&saved, status));
    }
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    match (format, quiet) {
        (_, true) => rows
            .iter()
            .for_each(|r| println!("{}", r["id"].as_str().unwrap_or(""))),
        ("json", _) => println!("{}", Value::Array(rows)),
        _ => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} CREATED",
                "ID", "PID", "STATUS", "BUNDLE"
            );
            for r in rows {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {}",
                    r["id"].as_str().unwrap_or(""),
                    r["pid"],
                    r["status"].as_str().unwrap_or(""),
                    r["bundle"].as_str().unwrap_or(""),
                    r["created"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// runc's default config, without a terminal: `sh` in `rootfs`, with
/// docker's capabilities, masked paths and namespaces.
pub fn default_spec() -> Value {
    let caps: Vec<String> = ch09_privileges::caps::CapSet::docker_default()
        .names()
        .into_iter()
        .collect();
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [format!("PATH={}", ch01_process::step::DEFAULT_PATH)],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "stepbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": ch09_privileges::paths::MASKED,
            "readonlyPaths": ch09_privileges::paths::READONLY
        }
    })
}

fn write_spec(bundle: &Path, json: &Value, stdout: bool) -> Result<(), Fail> {
    let path = bundle.join("config.json");
    let text = serde_json::to_string_pretty(json).expect("json") + "\n";
    if stdout {
        print!("{text}");
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| fail(format!("writing {}: {e}", path.display())))
}

fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
            "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
            "sync", "async", "noatime", "atime", "nodiratime", "diratime", "relatime",
            "norelatime", "strictatime", "nostrictatime", "bind", "rbind", "private",
            "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"],
        "linux": {
            "namespaces": ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"],
            "capabilities": ch09_privileges::caps::CapSet::all().names().iter()
                .collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": true},
        },
        "annotations": {"org.stepbox.fields": spec::SUPPORTED.join(" ")}
    })
}
