//! containerd, started by the test with a config of its own (root, state
//! and sockets under the scratch dir), driven with `ctr`.

use super::kit::{self, HostSnap, Out, Redact, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The image as `ctr images import` names a docker archive's tag.
pub const IMAGE: &str = "docker.io/library/stepbox:test";

pub struct Containerd {
    pub scratch: Scratch,
    pub redact: Redact,
    daemon: Option<Child>,
    sock: String,
    /// What `ctr run` gets for the runtime: the shim (runc v2), chapter 12
    /// as its runc, and a runtime root of the test's own.
    runtime_flags: Vec<String>,
    before: HostSnap,
    pub log: Option<PathBuf>,
    /// Last: dropped after everything else is cleaned up.
    _serial: kit::Serial,
}

/// Plugins the tests do not use, not loaded: CRI (Kubernetes' API, which
/// would also set up CNI networking), the snapshotters for filesystems
/// this host does not have, /opt/containerd's plugin dir, tracing.
const DISABLED: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
];

impl Containerd {
    /// Starts containerd, waits until it answers, imports the image.
    /// With `logged`, chapter 12 is called through [`kit::call_logger`].
    pub fn new(logged: bool) -> Containerd {
        let serial = kit::serial();
        let scratch = Scratch::new("ct");
        let before = HostSnap::capture(&scratch);
        let redact = Redact::new(&scratch);
        let sock = scratch.str("c.sock");
        let disabled: Vec<String> = DISABLED.iter().map(|p| format!("{p:?}")).collect();
        let config = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\ndisabled_plugins = [{disabled}]\n\
             [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            root = scratch.str("root"),
            state = scratch.str("state"),
            disabled = disabled.join(", "),
        );
        std::fs::write(scratch.path("config.toml"), config).unwrap();
        let log = std::fs::File::create(scratch.path("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(scratch.path("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let (runtime, log) = match logged {
            true => {
                let log = scratch.path("calls.log");
                (kit::call_logger(&scratch, &log), Some(log))
            }
            false => (kit::ch12(), None),
        };
        let runtime_flags = [
            "--runtime",
            "io.containerd.runc.v2",
            "--runc-binary",
            &runtime.to_string_lossy(),
            "--runc-root",
            &scratch.str("ch12"),
            // The fifos for the container's stdio: ctr's default is the
            // host's /run/containerd/fifo.
            "--fifo-dir",
            &scratch.str("fifo"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut c = Containerd {
            scratch,
            redact,
            daemon: Some(daemon),
            sock,
            runtime_flags,
            before,
            log,
            _serial: serial,
        };
        // Ready once it answers on its socket: `ctr version` asks the daemon.
        let sock = c.sock.clone();
        let daemon = c.daemon.as_mut().unwrap();
        kit::wait_until("answer from containerd", || {
            if let Some(status) = daemon.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(Path::new(&sock).with_file_name("containerd.log"));
                panic!("containerd exited ({status}):\n{}", log.unwrap_or_default());
            }
            Command::new("ctr")
                .args(["-a", &sock, "version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let archive = kit::images(&c.scratch).docker_archive;
        c.ctr(&["images", "import", &archive.to_string_lossy()])
            .ok();
        c
    }

    /// `ctr -a SOCK ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Out {
        let mut all = vec!["-a", self.sock.as_str()];
        all.extend_from_slice(args);
        kit::run(&self.redact, "ctr", "ctr", &all, &[])
    }

    /// `ctr tasks ls`, its columns joined by two spaces in the transcript:
    /// ctr pads them to the widest value, and the pid's width varies.
    pub fn tasks_ls(&self) -> Out {
        let mut out = self.ctr(&["tasks", "ls"]).ok();
        out.transcript = out
            .transcript
            .lines()
            .map(|l| match l.starts_with("$ ") {
                true => format!("{l}\n"),
                false => format!("{}\n", l.split_whitespace().collect::<Vec<_>>().join("  ")),
            })
            .collect();
        out
    }

    /// `ctr run` with chapter 12 as the runtime, then `args`.
    pub fn run(&self, args: &[&str]) -> Out {
        let mut all = vec!["run"];
        all.extend(self.runtime_flags.iter().map(String::as_str));
        all.extend_from_slice(args);
        self.ctr(&all)
    }

    /// `ctr run -t ...` on a terminal of its own.
    pub fn run_on_pty(&self, args: &[&str]) -> Out {
        let mut all = vec!["-a", self.sock.as_str(), "run"];
        all.extend(self.runtime_flags.iter().map(String::as_str));
        all.extend_from_slice(args);
        kit::run_on_pty(&self.redact, "ctr", "ctr", &all)
    }

    /// The fifo dir, for `ctr task exec`.
    pub fn fifo_dir(&self) -> String {
        self.scratch.str("fifo")
    }

    /// Chapter 12's root as the shim gives it: `--runc-root`/NAMESPACE.
    fn ch12_root(&self) -> PathBuf {
        self.scratch.path("ch12").join("default")
    }

    /// Checks that containerd knows no container or task and chapter 12
    /// no state, stops containerd, checks that no shim is left, and
    /// compares the host with how it was before.
    pub fn finish(mut self) {
        let mut problems = Vec::new();
        for what in ["containers", "tasks"] {
            let ls = self.ctr(&[what, "ls", "-q"]);
            if ls.code != 0 || !ls.stdout.is_empty() {
                problems.push(format!("ctr {what} ls: {}{}", ls.stdout, ls.stderr));
            }
        }
        let left = kit::root_entries(&self.ch12_root());
        if !left.is_empty() {
            problems.push(format!("chapter 12's root holds {left:?}"));
        }
        if let Err(e) = self.stop() {
            problems.push(e);
        }
        let procs = kit::processes_with(&self.redact.tmp);
        if !procs.is_empty() {
            problems.push(format!("processes left: {procs:?}"));
        }
        self.remove_host_dirs();
        self.scratch.unmount_all();
        let after = HostSnap::capture(&self.scratch);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert_eq!(self.before, after, "containerd changed the host");
    }

    /// SIGTERM, and wait: containerd's shutdown, which leaves the shims
    /// (there should be none left).
    fn stop(&mut self) -> Result<(), String> {
        let Some(mut daemon) = self.daemon.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM);
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = daemon.try_wait().unwrap() {
                return match status.success() || status.code().is_none() {
                    true => Ok(()),
                    false => Err(format!("containerd exited {status}")),
                };
            }
            if start.elapsed() > kit::LIMIT {
                let _ = daemon.kill();
                let _ = daemon.wait();
                return Err("containerd did not stop on SIGTERM".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// containerd 1.6's shims put their sockets in /run/containerd/s
    /// whatever the config says (a path built into containerd); the test
    /// removes that dir if it made it, and the parent cgroup of the
    /// containers (`/default`, containerd's namespace) if it made that.
    fn remove_host_dirs(&self) {
        kit::remove_new_cgroup_parents(&self.before, "default");
        kit::remove_if_new(&self.before, "/run/containerd", &[], &["/run/containerd/s"]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // After a failed test: the containers (chapter 12's root is the
        // test's own), then containerd and its shims.
        for id in crate::common::names(&self.ch12_root()) {
            if id != "containers" {
                let _ = Command::new(kit::ch12())
                    .arg("--root")
                    .arg(self.ch12_root())
                    .args(["delete", "--force", &id])
                    .output();
            }
        }
        let tasks = kit::task_ids(&self.scratch.path("state"), "default");
        let _ = self.stop();
        kit::kill_all(&kit::processes_with(&self.redact.tmp));
        kit::remove_shim_sockets(&self.sock, "default", &tasks);
        self.remove_host_dirs();
    }
}
