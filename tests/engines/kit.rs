//! What the engine tests share: a scratch directory per test, commands run
//! under a time limit as transcripts, the default rootfs as images the
//! engines import offline, the call log wrapper, and the host checks.

use crate::common::{self, HostState, Run};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one engine command may take: a hung engine (or a runtime
/// that never answers it) fails the test instead of the CI run.
pub const LIMIT: Duration = Duration::from_secs(90);

/// The image's name, as the engines are given it on import.
pub const IMAGE: &str = "stepbox:test";

/// chapter 12's runtime, as the engines are given it.
pub fn ch12() -> PathBuf {
    common::bin_dir().join("ch12-oci")
}

/// One engine test at a time on this host: the host checks look at
/// host-wide things (links, firewall rules, the engines' default dirs and
/// parent cgroups), which another engine test running meanwhile would
/// change; in this test binary whatever `--test-threads` says (a mutex),
/// and across test processes (another checkout's run: flock(2) on a file
/// in SCRATCH). Held until the test's cleanup is done: the last field of
/// each engine's struct.
pub struct Serial {
    _file: std::fs::File,
    _guard: std::sync::MutexGuard<'static, ()>,
}

pub fn serial() -> Serial {
    use std::os::fd::AsRawFd;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(common::SCRATCH).unwrap();
    let file = std::fs::File::create(Path::new(common::SCRATCH).join("engines.lock")).unwrap();
    // SAFETY: flock(2) on a descriptor that `file` owns and keeps open;
    // the lock goes with the descriptor, when `file` is dropped.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(r, 0, "flock(2): {}", std::io::Error::last_os_error());
    Serial {
        _file: file,
        _guard: guard,
    }
}

/// A directory of the test's own under SCRATCH, named after a
/// [`common::unique_id`], so that the host checks see every mount under it
/// and no other test's; short (`what` is 2 letters), since podman refuses
/// a runroot path longer than 50 characters. Dropped (also on a panic):
/// whatever is still mounted under it is unmounted, deepest first, then
/// it is removed.
pub struct Scratch {
    pub dir: PathBuf,
    pub id: String,
}

impl Scratch {
    pub fn new(what: &str) -> Scratch {
        let id = common::unique_id();
        let dir = Path::new(common::SCRATCH).join(format!("{what}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch { dir, id }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn str(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    /// Unmounts what is mounted under the directory (an engine's storage
    /// keeps a bind mount of its own overlay dir, and a killed one its
    /// containers' roots).
    pub fn unmount_all(&self) {
        let mut mounts = common::mounts_under(&self.dir.to_string_lossy());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.unmount_all();
        if let Err(e) = ch08_overlay::remove::remove_all(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}

/// One engine command: its exit status, output, and a transcript
/// (`$ NAME ARGS`, output, `[exit status N]`) with what differs between
/// runs replaced ([`Redact`]).
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub transcript: String,
}

impl Out {
    /// Asserts exit status 0.
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{}\n{}", self.transcript, self.stderr);
        self
    }
}

/// Runs `cmd` with its output to anonymous files, killing it after
/// [`LIMIT`]: no pipe fills up while it runs, and none is held open by
/// what it leaves running (`podman run -d`'s conmon, `ctr run -d`'s shim)
/// for the test to wait on.
pub fn output(cmd: &mut Command) -> (i32, Vec<u8>, Vec<u8>) {
    use std::io::{Read, Seek};
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    cmd.stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            let mut so = String::new();
            out.rewind().unwrap();
            let _ = out.read_to_string(&mut so);
            panic!("{cmd:?} did not finish in {LIMIT:?}; its output so far:\n{so}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let code = std::os::unix::process::ExitStatusExt::signal(&status)
        .map_or_else(|| status.code().unwrap(), |s| 128 + s);
    let (mut so, mut se) = (Vec::new(), Vec::new());
    out.rewind().unwrap();
    out.read_to_end(&mut so).unwrap();
    err.rewind().unwrap();
    err.read_to_end(&mut se).unwrap();
    (code, so, se)
}

/// Runs `program args` (shown as `name args`) with `env` added.
pub fn run(redact: &Redact, name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(program);
    // In the scratch dir: what the engine's runtime calls inherit as
    // their working directory is the test's, not the workspace.
    cmd.args(args).stdin(Stdio::null()).current_dir(&redact.tmp);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // `cargo xtask demo 12`: each engine command shown, then what it printed.
    let demo = common::demo::get();
    if let Some(d) = demo {
        d.command(name, args);
    }
    let (code, stdout, stderr) = output(&mut cmd);
    if let Some(d) = demo {
        d.output(&stdout);
        d.output(&stderr);
        d.status(code);
    }
    let run = Run::new(name, args, code, &stdout, &stderr);
    Out {
        code,
        transcript: redact.text(&run.transcript),
        stdout: run.stdout,
        stderr: run.stderr,
    }
}

/// Runs `program args` with a new pseudo-terminal as its stdin, stdout and
/// stderr (`ctr run -t` refuses to start without one), reading the
/// terminal's other end until the program exits.
pub fn run_on_pty(redact: &Redact, name: &str, program: &str, args: &[&str]) -> Out {
    use std::io::Read;
    let pty = nix::pty::openpty(None, None).expect("openpty(3)");
    let mut cmd = Command::new(program);
    let slave = || Stdio::from(pty.slave.try_clone().unwrap());
    cmd.args(args)
        .current_dir(&redact.tmp)
        .stdin(slave())
        .stdout(slave())
        .stderr(slave());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid(2) is a plain syscall, safe between fork and exec;
        // a session of its own lets the terminal become its controlling one.
        unsafe {
            cmd.pre_exec(|| match libc::setsid() {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            })
        };
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    drop(pty.slave);
    // The reader ends at EIO, once every holder of the slave has closed it.
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish in {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let all = reader.join().unwrap();
    let code = status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(&all).replace("\r\n", "\n");
    let run = Run::new(name, args, code, text.as_bytes(), b"");
    Out {
        code,
        transcript: redact.text(&run.transcript),
        stdout: run.stdout,
        stderr: String::new(),
    }
}

/// What differs between runs in an engine's transcript, beyond what
/// [`common::redact`] replaces: the test's scratch dir (TMP), the binaries'
/// dir (BIN), the engines' 64-digit ids (CID) and their 12-digit short
/// forms, digests, and the few numbers that count up.
pub struct Redact {
    pub tmp: String,
}

impl Redact {
    pub fn new(scratch: &Scratch) -> Redact {
        Redact {
            tmp: scratch.dir.to_string_lossy().into_owned(),
        }
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = common::redact(text).replace(&self.tmp, "TMP");
        out = out.replace(&common::bin_dir().to_string_lossy().into_owned(), "BIN");
        for (re, with) in redactions() {
            out = re.replace_all(&out, *with).into_owned();
        }
        out
    }
}

fn redactions() -> &'static [(regex::Regex, &'static str)] {
    static R: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    R.get_or_init(|| {
        [
            (r"sha256:[0-9a-f]{64}\b", "sha256:DIGEST"),
            (r"\b[0-9a-f]{64}\b", "CID"),
            // The container's hostname: its short id (podman, docker) or
            // the runtime's record id (ctr gives none).
            (
                r"(?m)^hostname: [0-9a-f]{8,12}$",
                "hostname: [the container's id]",
            ),
            (r"\b[0-9a-f]{12}\b", "CID12"),
            // Another process's namespaces, as a config gives them.
            (r"/proc/[0-9]+/ns/", "/proc/PID/ns/"),
            // containerd's shim writes an exec's process.json to a temp file.
            (r"/tmp/runc-process[0-9]+", "/tmp/runc-processN"),
            // `ctr tasks ls`: the host's pid of the container's process.
            (r"(?m)^(sbID +)[0-9]+( +[A-Z]+)$", "${1}PID$2"),
        ]
        .into_iter()
        .map(|(re, with)| (regex::Regex::new(re).unwrap(), with))
        .collect()
    })
}

/// `STEPBOX_HOST_NS`, as chapter 1 sets it: the host's namespaces, so that
/// the probe can say "own" or "host" for each. Chapter 12 passes exactly
/// the config's environment, so the tests give it through the engine.
pub fn host_ns() -> String {
    let mut ns = Vec::new();
    for name in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        let link = std::fs::read_link(format!("/proc/self/ns/{name}")).unwrap();
        let inode: String = link
            .to_string_lossy()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        ns.push(format!("{name}:{inode}"));
    }
    ns.join(" ")
}

/// The probe's `KEY: VALUE` line for `key`, if printed.
pub fn value<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

/// The default rootfs as a plain tar (for `podman import`) and as a
/// docker archive (`docker save`'s format, which `docker load` and
/// `ctr images import` both read): one layer, a config, a manifest.
pub struct Images {
    pub rootfs_tar: PathBuf,
    pub docker_archive: PathBuf,
}

pub fn images(scratch: &Scratch) -> Images {
    use sha2::Digest;
    let rootfs_tar = scratch.path("rootfs.tar");
    tar(common::rootfs(), &rootfs_tar);
    let dir = scratch.path("archive");
    let layer = std::fs::read(&rootfs_tar).unwrap();
    let layer_digest = hex(&sha2::Sha256::digest(&layer));
    std::fs::create_dir_all(dir.join(&layer_digest)).unwrap();
    std::fs::write(dir.join(&layer_digest).join("layer.tar"), &layer).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    })
    .to_string();
    let config_name = format!("{}.json", hex(&sha2::Sha256::digest(config.as_bytes())));
    std::fs::write(dir.join(&config_name), &config).unwrap();
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [IMAGE],
        "Layers": [format!("{layer_digest}/layer.tar")],
    }]);
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let docker_archive = scratch.path("image.tar");
    tar(&dir, &docker_archive);
    Images {
        rootfs_tar,
        docker_archive,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `tar -cf OUT -C DIR .`, owners as numbers (the rootfs's are root's).
fn tar(dir: &Path, out: &Path) {
    let mut cmd = Command::new("tar");
    cmd.arg("--numeric-owner")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".");
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "tar: {}", String::from_utf8_lossy(&err));
}

/// A runtime for the engine that logs each call, for the book: a script
/// that appends its working directory and arguments to `log` (one line a
/// call) and then execs chapter 12's runtime with them unchanged.
pub fn call_logger(scratch: &Scratch, log: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch.path("ch12-oci");
    // The bundle's config.json is kept too, as config-ID.json next to the
    // log, from each create's --bundle (or the working directory).
    let script = format!(
        r#"#!/bin/sh
printf '%s\t%s\n' "$(pwd)" "$*" >> '{log}'
bundle=.
prev=
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle=$a ;; esac
  case "$a" in --bundle=*) bundle=${{a#--bundle=}} ;; esac
  prev=$a
  last=$a
done
case " $* " in *" create "*) cp "$bundle/config.json" '{dir}/config-'"$last"'.json' ;; esac
exec '{runtime}' "$@"
"#,
        log = log.display(),
        dir = log.parent().unwrap().display(),
        runtime = ch12().display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The call log as a transcript: `$ cd DIR` where the directory changes,
/// then `$ ch12-oci ARGS` for each call. The calls of `skip` (an engine's
/// probes of the runtime's version or features) are left out.
pub fn calls(redact: &Redact, log: &Path, skip: &[&str]) -> (Vec<String>, String) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut commands = Vec::new();
    let mut shown = String::new();
    let mut cwd = String::new();
    for line in text.lines() {
        let (dir, args) = line.split_once('\t').unwrap();
        let args: Vec<&str> = args.split(' ').filter(|a| !a.is_empty()).collect();
        // The first word that is neither a global option nor its value.
        let mut command = "";
        let mut words = args.iter();
        while let Some(&word) = words.next() {
            if ["--root", "--log", "--log-format", "--criu"].contains(&word) {
                words.next();
            } else if !word.starts_with('-') {
                command = word;
                break;
            }
        }
        if skip.contains(&command) {
            continue;
        }
        commands.push(command.to_owned());
        if dir != cwd {
            shown += &format!("$ cd {dir}\n");
            cwd = dir.to_owned();
        }
        shown += &format!("$ ch12-oci {}\n", args.join(" "));
    }
    (commands, redact.text(&shown))
}

/// What an engine could leave on the host: [`HostState`] for the test's
/// scratch id (every mount under its dir), and, engine-wide, every network
/// interface and named network namespace, the firewall's rules, IP
/// forwarding, and whether the host dirs the engines use by default exist.
#[derive(Debug, PartialEq, Eq)]
pub struct HostSnap {
    state: HostState,
    links: Vec<String>,
    netns: Vec<String>,
    ip_forward: String,
    iptables: String,
    dirs: Vec<(&'static str, bool)>,
    cgroup_parents: Vec<(String, bool)>,
}

/// The parent cgroups the engines put their containers in (as
/// `linux.cgroupsPath`, `/PARENT/ID`): podman's, containerd's (its
/// namespace's name) and dockerd's. The runtime makes a parent that is
/// missing and, as runc, leaves it when the container goes; each test
/// removes the ones it caused ([`remove_new_cgroup_parents`]).
pub const CGROUP_PARENTS: &[&str] = &["libpod_parent", "default", "docker"];

/// Each of [`CGROUP_PARENTS`] in each cgroup hierarchy.
fn cgroup_parents() -> Vec<String> {
    let root = Path::new("/sys/fs/cgroup");
    let mut hierarchies = vec![root.to_path_buf()];
    hierarchies.extend(
        common::names(root)
            .into_iter()
            .map(|n| root.join(n))
            .filter(|p| p.join("cgroup.procs").exists()),
    );
    hierarchies.sort();
    hierarchies
        .iter()
        .flat_map(|h| CGROUP_PARENTS.iter().map(move |p| h.join(p)))
        .map(|p| p.display().to_string())
        .collect()
}

/// The engines' default dirs on the host: each test gives its engine
/// dirs of its own instead, and removes the few that an engine makes
/// whatever it is told ([`remove_if_new`]).
pub const ENGINE_DIRS: &[&str] = &[
    "/run/containerd",
    "/var/lib/containerd",
    "/run/docker",
    "/var/lib/docker",
    "/etc/docker",
    "/var/lib/cni",
    "/run/netns",
];

impl HostSnap {
    pub fn capture(scratch: &Scratch) -> HostSnap {
        let mut links = common::names(Path::new("/sys/class/net"));
        links.sort();
        let mut netns = common::names(Path::new("/run/netns"));
        netns.sort();
        let iptables = ["filter", "nat"]
            .iter()
            .map(
                |t| match Command::new("iptables").args(["-t", t, "-S"]).output() {
                    Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
                    Err(_) => String::new(),
                },
            )
            .collect();
        HostSnap {
            state: HostState::capture(&scratch.id),
            links,
            netns,
            ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
            iptables,
            dirs: ENGINE_DIRS
                .iter()
                .map(|&d| (d, Path::new(d).exists()))
                .collect(),
            cgroup_parents: cgroup_parents()
                .into_iter()
                .map(|p| {
                    let exists = Path::new(&p).exists();
                    (p, exists)
                })
                .collect(),
        }
    }

    pub fn existed(&self, dir: &str) -> bool {
        self.dirs.iter().any(|&(d, e)| d == dir && e)
    }
}

/// Removes `dirs` (deepest first, each only if empty) and `files` that an
/// engine made although told to use the test's own dirs, if `top` did not
/// exist before the test: a dir someone else uses is left alone.
pub fn remove_if_new(before: &HostSnap, top: &str, files: &[&str], dirs: &[&str]) {
    if before.existed(top) {
        return;
    }
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    for d in dirs.iter().chain([&top]) {
        let _ = std::fs::remove_dir(d);
    }
}

/// Removes the parent cgroups named `name` ([`CGROUP_PARENTS`]) that did
/// not exist before the test, with the cgroups in them (podman's
/// `libpod_parent/conmon`), deepest first; rmdir(2) refuses a cgroup with
/// a process or a cgroup in it, so one in use stays.
pub fn remove_new_cgroup_parents(before: &HostSnap, name: &str) {
    for (path, existed) in &before.cgroup_parents {
        if !existed && path.ends_with(&format!("/{name}")) {
            let mut dirs = common::find_cgroups("");
            dirs.retain(|d| d.starts_with(&format!("{path}/")));
            dirs.sort_by_key(|d| std::cmp::Reverse(d.len()));
            for d in dirs {
                let _ = std::fs::remove_dir(d);
            }
            let _ = std::fs::remove_dir(path);
        }
    }
}

/// What chapter 12 may have left of the containers `cids`: their cgroups
/// (any dir named after them under /sys/fs/cgroup), their state dirs under
/// the runtime's `root`, and chapter 1's records there that name them.
pub fn ch12_leftovers(root: &Path, cids: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    for cid in cids {
        left.extend(common::find_cgroups(cid));
        if root.join(cid).exists() {
            left.push(root.join(cid).display().to_string());
        }
        for record in common::names(&root.join("containers")) {
            let path = root.join("containers").join(&record);
            if std::fs::read_to_string(&path).is_ok_and(|t| t.contains(cid.as_str())) {
                left.push(path.display().to_string());
            }
        }
    }
    left
}

/// What is under a runtime root that the test gave the engine: nothing,
/// once every container is gone, but the empty `containers` dir of records.
pub fn root_entries(root: &Path) -> Vec<String> {
    let mut left: Vec<String> = common::names(root)
        .into_iter()
        .filter(|n| n != "containers")
        .collect();
    left.extend(
        common::names(&root.join("containers"))
            .into_iter()
            .map(|n| format!("containers/{n}")),
    );
    left
}

/// The processes (not zombies) whose command line mentions `needle`: an
/// engine's daemons and shims are started with the test's socket path.
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for pid in common::names(Path::new("/proc")) {
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == std::process::id().to_string() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{pid} {cmdline}"));
        }
    }
    found
}

/// The tasks a containerd (its state dir `state`, namespace `ns`) has
/// bundles for: the ids of the containers it has shims for.
pub fn task_ids(state: &Path, ns: &str) -> Vec<String> {
    common::names(&state.join("io.containerd.runtime.v2.task").join(ns))
}

/// Removes the sockets that containerd 1.6's shims for `ids` left in
/// /run/containerd/s if they were killed (a shim that exits removes its
/// own): each is named after sha256 of ADDRESS/NAMESPACE/ID, ADDRESS
/// being containerd's socket.
pub fn remove_shim_sockets(address: &str, ns: &str, ids: &[String]) {
    use sha2::Digest;
    for id in ids {
        let name = hex(&sha2::Sha256::digest(
            format!("{address}/{ns}/{id}").as_bytes(),
        ));
        let _ = std::fs::remove_file(Path::new("/run/containerd/s").join(name));
    }
}

/// SIGKILL to each of [`processes_with`]'s answers (the test's own).
pub fn kill_all(processes: &[String]) {
    for p in processes {
        if let Some(pid) = p.split(' ').next().and_then(|p| p.parse().ok()) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

/// Polls `cond` until it holds: a handshake on what the engine answers,
/// not a guess of how long it takes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "no {what} in {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the config.json kept by [`call_logger`] for container `id` asks
/// of the runtime's namespaces: each type, and `=PATH` for one to join,
/// as a line for a transcript.
pub fn config_namespaces(log: &Path, id: &str) -> String {
    let path = log.parent().unwrap().join(format!("config-{id}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    let types: Vec<String> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| match ns["path"].as_str() {
            Some(p) => format!("{}={p}", ns["type"].as_str().unwrap()),
            None => ns["type"].as_str().unwrap().to_owned(),
        })
        .collect();
    format!("linux.namespaces: {}\n", types.join(" "))
}

/// The id of the first `create` in the call log (its last argument).
pub fn created_id(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().any(|a| a == "create"))
        .expect("a create call");
    line.rsplit(' ').next().unwrap().to_owned()
}
