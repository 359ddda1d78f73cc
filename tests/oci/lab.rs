//! A test's own corner of the host for chapter 12 and the reference
//! runtimes: bundles (a copy of the default rootfs each, and a config.json
//! that `ch12-oci spec` wrote and the test edited), a private `--root` per
//! runtime, and a cleanup that runs even when the test panics.

use crate::common::{
    self, bin_dir, find_cgroups, mounts_under, names, unique_id, HostState, SCRATCH,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The runtimes these tests drive with runc's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Ch12,
    Runc,
    Crun,
}

impl Rt {
    pub fn name(self) -> &'static str {
        match self {
            Rt::Ch12 => "ch12-oci",
            Rt::Runc => "runc",
            Rt::Crun => "crun",
        }
    }
    fn program(self) -> PathBuf {
        match self {
            Rt::Ch12 => bin_dir().join("ch12-oci"),
            Rt::Runc => PathBuf::from("runc"),
            Rt::Crun => PathBuf::from("crun"),
        }
    }
}

/// A runtime's command line, not started, and the files its stdout and
/// stderr go to.
pub struct Cmd {
    pub cmd: Command,
    pub out: PathBuf,
    pub err: PathBuf,
    /// How long it may take before the test fails (it is killed then).
    pub timeout: Duration,
}

/// One run of a runtime's command.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Where the command's stdout went: a `create`'s is the container's too.
    pub stdout_path: PathBuf,
}

impl Out {
    /// Asserts the command succeeded and said nothing on stderr.
    pub fn ok(&self, what: &str) -> &Out {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (0, ""),
            "{what}: stdout {:?}",
            self.stdout
        );
        self
    }
    /// Asserts the runtime refused: exit status 125 and one line on stderr
    /// that contains `needle`; returns that line.
    pub fn refused(&self, what: &str, needle: &str) -> String {
        assert_eq!(
            self.code, 125,
            "{what}: {:?} {:?}",
            self.stdout, self.stderr
        );
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "{what}: not one line: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.starts_with("ch12-oci: "),
            "{what}: {:?}",
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "{what}: {:?} does not say {needle:?}",
            self.stderr
        );
        self.stderr.trim_end().to_owned()
    }
    /// What the container wrote so far, for a `create` or `run`.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }
}

pub struct Lab {
    pub dir: PathBuf,
    /// (runtime, id): what the cleanup deletes.
    ids: Mutex<Vec<(Rt, String)>>,
    /// Chapter 1's ids of chapter 12's containers (see [`Lab::record`]).
    records: Mutex<Vec<String>>,
    n: AtomicU32,
}

impl Lab {
    pub fn new(what: &str) -> Lab {
        let dir = Path::new(SCRATCH).join(format!("oci-{what}-{}", unique_id()));
        std::fs::create_dir_all(dir.join("log")).unwrap();
        Lab {
            dir,
            ids: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
            n: AtomicU32::new(0),
        }
    }

    /// A runtime's private `--root`.
    pub fn root(&self, rt: Rt) -> PathBuf {
        self.dir.join(format!("root-{}", rt.name()))
    }

    /// A new container id (12 hex digits, this run's: the leftovers sweep
    /// knows it), deleted with `delete --force` by the cleanup.
    pub fn id(&self, rt: Rt) -> String {
        let id = unique_id();
        self.ids.lock().unwrap().push((rt, id.clone()));
        id
    }

    /// Chapter 1's id of chapter 12's container `id`, which names its
    /// state record (`ROOT/containers/REC.json`) and its cgroups
    /// (`stepbox-REC`): `ROOT/ID/state.json`'s `record`. It is not the
    /// OCI id, and chapter 12 does not read `STEPBOX_CONTAINER_ID` (chapter
    /// 1's main does): the lab remembers it, for [`leftovers`](Self::leftovers)
    /// after a delete and for its own cleanup.
    pub fn record(&self, id: &str) -> String {
        let path = self.root(Rt::Ch12).join(id).join("state.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let saved: Value = serde_json::from_str(&text).unwrap();
        let record = saved["record"]
            .as_str()
            .expect("state.json's record")
            .to_owned();
        self.records.lock().unwrap().push(record.clone());
        record
    }

    /// The records in chapter 12's `ROOT/containers` (each as chapter 1's
    /// id), also remembered for the cleanup.
    pub fn records_in_root(&self) -> Vec<String> {
        let mut recs: Vec<String> = names(&self.root(Rt::Ch12).join("containers"))
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
            .collect();
        recs.sort();
        self.records.lock().unwrap().extend(recs.iter().cloned());
        recs
    }

    fn next(&self) -> u32 {
        self.n.fetch_add(1, Ordering::Relaxed)
    }

    /// A bundle: a copy of the default rootfs in `rootfs`, and the config
    /// `ch12-oci spec` writes, with `process.args` = `args`, then `edit`.
    pub fn bundle(&self, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let bundle = self.dir.join(format!("bundle-{}", self.next()));
        std::fs::create_dir(&bundle).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(common::rootfs())
            .arg(bundle.join("rootfs"))
            .status()
            .unwrap();
        assert!(status.success(), "cp -a rootfs");
        let out = Command::new(bin_dir().join("ch12-oci"))
            .arg("spec")
            .arg("--bundle")
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "ch12-oci spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config = read_config(&bundle);
        // `spec` writes what chapter 11's flags mean by default: docker's
        // seccomp profile, and no hostname (the container's id). The tests
        // start from runc's plainer default: a fixed hostname, no filter.
        if config.get("hostname").is_none() {
            config["hostname"] = Value::from("stepbox");
        }
        if let Some(linux) = config["linux"].as_object_mut() {
            linux.remove("seccomp");
        }
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        fix_capability_names(&mut config);
        edit(&mut config);
        write_config(&bundle, &config);
        bundle
    }

    /// `RT --root ROOT ARGS` to its end (at most 120 s), stdin closed,
    /// stdout and stderr in files: a `create`'s container keeps them open
    /// after the runtime exits. The runtime's environment has
    /// `STEPBOX_CONTAINER_ID=ID` (`id`: the container's), which the
    /// leftovers sweep (tests/zz_leftovers.rs) knows this run's processes by.
    pub fn cmd(&self, rt: Rt, id: &str, args: &[&str]) -> Out {
        self.finish(self.command(rt, id, args))
    }

    /// The command [`cmd`](Self::cmd) runs, not started; its stdout and
    /// stderr go to files of its own, which [`finish`](Self::finish) reads.
    pub fn command(&self, rt: Rt, id: &str, args: &[&str]) -> Cmd {
        let n = self.next();
        let out = self.dir.join(format!("log/{n}.out"));
        let err = self.dir.join(format!("log/{n}.err"));
        let mut cmd = Command::new(rt.program());
        cmd.arg("--root")
            .arg(self.root(rt))
            .args(args)
            .env("STEPBOX_CONTAINER_ID", id)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        Cmd {
            cmd,
            out,
            err,
            timeout: Duration::from_secs(120),
        }
    }

    /// Runs `cmd` (made by [`command`](Self::command)) to its end.
    pub fn finish(&self, cmd: Cmd) -> Out {
        let Cmd {
            mut cmd,
            out,
            err,
            timeout,
        } = cmd;
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not finish in {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let code = std::os::unix::process::ExitStatusExt::signal(&status)
            .map_or_else(|| status.code().unwrap(), |s| 128 + s);
        Out {
            code,
            stdout: std::fs::read_to_string(&out).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err).unwrap_or_default(),
            stdout_path: out,
        }
    }

    /// `ch12-oci ARGS` on this lab's root, with `STEPBOX_CONTAINER_ID` = `id`.
    pub fn oci(&self, id: &str, args: &[&str]) -> Out {
        self.cmd(Rt::Ch12, id, args)
    }

    /// [`oci`](Self::oci) that must end within `secs` seconds.
    pub fn oci_within(&self, secs: u64, id: &str, args: &[&str]) -> Out {
        let mut cmd = self.command(Rt::Ch12, id, args);
        cmd.timeout = Duration::from_secs(secs);
        self.finish(cmd)
    }

    /// `ch12-oci state ID`, parsed; None if the runtime refused.
    pub fn state(&self, rt: Rt, id: &str) -> Option<Value> {
        let out = self.cmd(rt, id, &["state", id]);
        (out.code == 0).then(|| {
            serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("state {id}: {e}: {:?}", out.stdout))
        })
    }

    pub fn status(&self, rt: Rt, id: &str) -> String {
        let state = self
            .state(rt, id)
            .unwrap_or_else(|| panic!("no state for {id}"));
        state["status"].as_str().unwrap().to_owned()
    }

    /// Polls until the state's status is `want` (at most 60 s).
    pub fn wait_status(&self, rt: Rt, id: &str, want: &str) {
        let start = Instant::now();
        loop {
            let s = self.status(rt, id);
            if s == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{id}: still {s}, not {want}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the container `id` (chapter 1's id `record`) made that
    /// outlives it: cgroups, mounts, its directory and its record under
    /// the root.
    pub fn leftovers(&self, rt: Rt, id: &str, record: &str) -> Vec<String> {
        let mut left = find_cgroups(id);
        left.extend(mounts_under(id));
        if !record.is_empty() {
            left.extend(find_cgroups(record));
            left.extend(mounts_under(record));
        }
        let root = self.root(rt);
        if root.join(id).exists() {
            left.push(root.join(id).display().to_string());
        }
        left.extend(
            names(&root.join("containers"))
                .into_iter()
                .filter(|n| !record.is_empty() && n.starts_with(&format!("{record}.")))
                .map(|n| format!("{}/containers/{n}", root.display())),
        );
        left
    }

    /// Asserts that nothing of `id` (chapter 1's id `record`) is left and
    /// that the host is as `before` (captured by the OCI id before create).
    pub fn assert_gone(&self, id: &str, record: &str, before: &HostState) {
        assert_eq!(
            self.leftovers(Rt::Ch12, id, record),
            Vec::<String>::new(),
            "{id} (record {record}) left these"
        );
        assert_eq!(&HostState::capture(id), before, "{id} changed the host");
        if !record.is_empty() {
            assert_eq!(
                &HostState::capture(record),
                before,
                "{record} changed the host"
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for (rt, id) in &ids {
            let _ = Command::new(rt.program())
                .arg("--root")
                .arg(self.root(*rt))
                .args(["delete", "--force", id])
                .env("STEPBOX_CONTAINER_ID", id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // What a killed runtime left running (a container's process
        // waiting on its FIFO, whose state.json was never written): by
        // the lab's directory in its command line.
        let dir = self.dir.to_string_lossy().into_owned();
        for p in processes_with(&dir) {
            if let Some(pid) = p.split(':').next().and_then(|p| p.parse().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
        let start = Instant::now();
        while !processes_with(&dir).is_empty() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let records = std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids.iter().map(|(_, id)| id).chain(&records) {
            let mut cgroups = find_cgroups(id);
            cgroups.sort_by_key(|c| std::cmp::Reverse(c.len()));
            for c in cgroups {
                let _ = std::fs::remove_dir(&c);
            }
        }
        let mut mounts = mounts_under(&self.dir.to_string_lossy());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}

pub fn read_config(bundle: &Path) -> Value {
    let text = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn write_config(bundle: &Path, config: &Value) {
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
}

/// `ch12-oci spec` writes `CAP_CAP_CHOWN` (see the test
/// `spec_writes_capability_names_runc_knows`): runc ignores those names,
/// so the bundles get the names the spec means, for the comparisons to
/// compare the same configuration.
fn fix_capability_names(config: &mut Value) {
    let Some(caps) = config
        .pointer_mut("/process/capabilities")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for set in caps.values_mut() {
        if let Some(list) = set.as_array_mut() {
            for cap in list {
                if let Some(s) = cap.as_str() {
                    let mut name = s;
                    while let Some(rest) = name.strip_prefix("CAP_") {
                        name = rest;
                    }
                    *cap = Value::from(format!("CAP_{name}"));
                }
            }
        }
    }
}

/// Whether `pid` is alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit_once(") ").map(|(_, r)| r.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        })
        .unwrap_or(false)
}

/// Polls `cond` for at most 60 s.
pub fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {what} in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The processes whose command line has `needle` (the lab's directory:
/// runtimes and containers' processes before their execve).
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && alive(name.parse().unwrap()) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}
