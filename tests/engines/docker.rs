//! dockerd (Debian's docker.io 20.10), started by the test with every dir
//! of its own under the scratch dir and no networking of its own on the
//! host, chapter 12 added as the runtime `stepbox`.

use super::kit::{self, HostSnap, Out, Redact, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The client: Debian's, of the daemon's version, if installed (a newer
/// one elsewhere in PATH negotiates the API down, and prints more).
fn client() -> &'static str {
    match Path::new("/usr/bin/docker").exists() {
        true => "/usr/bin/docker",
        false => "docker",
    }
}

pub struct Docker {
    pub scratch: Scratch,
    pub redact: Redact,
    daemon: Option<Child>,
    host: String,
    before: HostSnap,
    pub log: Option<PathBuf>,
    /// Last: dropped after everything else is cleaned up.
    _serial: kit::Serial,
}

impl Docker {
    /// Starts dockerd, waits until it answers, loads the image. With
    /// `logged`, chapter 12 is called through [`kit::call_logger`].
    pub fn new(logged: bool) -> Docker {
        let serial = kit::serial();
        let scratch = Scratch::new("dk");
        let before = HostSnap::capture(&scratch);
        let redact = Redact::new(&scratch);
        let host = format!("unix://{}", scratch.str("d.sock"));
        let (runtime, log) = match logged {
            true => {
                let log = scratch.path("calls.log");
                (kit::call_logger(&scratch, &log), Some(log))
            }
            false => (kit::ch12(), None),
        };
        // Its own config file (not the host's /etc/docker/daemon.json).
        std::fs::write(scratch.path("daemon.json"), "{}\n").unwrap();
        let log_file = std::fs::File::create(scratch.path("dockerd.log")).unwrap();
        let daemon = Command::new("dockerd")
            .arg(format!("--add-runtime=stepbox={}", runtime.display()))
            .args(["--config-file", &scratch.str("daemon.json")])
            .args(["--data-root", &scratch.str("data")])
            .args(["--exec-root", &scratch.str("exec")])
            .args(["--pidfile", &scratch.str("docker.pid")])
            .args(["-H", &host])
            // No docker0 bridge, no firewall rules, no forwarding, no
            // masquerading, no userland proxies: nothing of the host's
            // network is touched (containers here run with --network none).
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args([
                "--ip-forward=false",
                "--ip-masq=false",
                "--userland-proxy=false",
            ])
            .args(["--storage-driver", "overlay2"])
            // No systemd here; chapter 12 refuses --systemd-cgroup.
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("starting dockerd");
        let mut d = Docker {
            scratch,
            redact,
            daemon: Some(daemon),
            host,
            before,
            log,
            _serial: serial,
        };
        let host = d.host.clone();
        let dockerd_log = d.scratch.path("dockerd.log");
        let daemon = d.daemon.as_mut().unwrap();
        // Ready once it answers: `docker version` asks the daemon.
        kit::wait_until("answer from dockerd", || {
            if let Some(status) = daemon.try_wait().unwrap() {
                let log = std::fs::read_to_string(&dockerd_log).unwrap_or_default();
                panic!("dockerd exited ({status}):\n{log}");
            }
            Command::new(client())
                .args(["-H", &host, "version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let archive = kit::images(&d.scratch).docker_archive;
        d.docker(&["load", "-i", &archive.to_string_lossy()]).ok();
        d
    }

    /// `docker -H unix://SOCK ARGS`.
    pub fn docker(&self, args: &[&str]) -> Out {
        self.docker_env(args, &[])
    }

    fn docker_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut all = vec!["-H", self.host.as_str()];
        all.extend_from_slice(args);
        kit::run(&self.redact, "docker", client(), &all, env)
    }

    /// `docker run --runtime stepbox --network none ARGS`: `none`, since
    /// the daemon has no bridge (and chapter 12 cannot join a network
    /// namespace that an engine made).
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    /// [`Docker::run`] with `env` added to the client's environment (for
    /// `-e NAME`, which passes the client's value).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut all = vec!["run", "--runtime", "stepbox", "--network", "none"];
        all.extend_from_slice(args);
        self.docker_env(&all, env)
    }

    /// Chapter 12's root as dockerd's containerd shim gives it.
    fn ch12_root(&self) -> PathBuf {
        self.scratch.path("exec/runtime-runc/moby")
    }

    /// Checks that dockerd lists no container and chapter 12 keeps no
    /// state, stops dockerd (and with it its containerd), checks that no
    /// process of theirs is left, and compares the host with before.
    pub fn finish(mut self) {
        let mut problems = Vec::new();
        let ps = self.docker(&["ps", "-a", "-q"]);
        if ps.code != 0 || !ps.stdout.is_empty() {
            problems.push(format!("docker ps -a: {}{}", ps.stdout, ps.stderr));
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
        assert_eq!(self.before, after, "dockerd changed the host");
    }

    fn stop(&mut self) -> Result<(), String> {
        let Some(mut daemon) = self.daemon.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM);
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = daemon.try_wait().unwrap() {
                return match status.success() {
                    true => Ok(()),
                    false => Err(format!("dockerd exited {status}")),
                };
            }
            if start.elapsed() > kit::LIMIT {
                let _ = daemon.kill();
                let _ = daemon.wait();
                return Err("dockerd did not stop on SIGTERM".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// What dockerd 20.10 makes on the host whatever it is told: its
    /// identity key, /etc/docker/key.json (the flag that moved it is gone
    /// from this build); /run/docker/plugins, where it looks for plugins'
    /// sockets; and its containerd's shims' /run/containerd/s (a path built
    /// into containerd 1.6); and the parent cgroup `/docker` of the
    /// containers' cgroups. Each is removed if the test made it.
    fn remove_host_dirs(&self) {
        kit::remove_new_cgroup_parents(&self.before, "docker");
        kit::remove_if_new(&self.before, "/etc/docker", &["/etc/docker/key.json"], &[]);
        kit::remove_if_new(&self.before, "/run/docker", &[], &["/run/docker/plugins"]);
        kit::remove_if_new(&self.before, "/run/containerd", &[], &["/run/containerd/s"]);
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // After a failed test: its containers, then dockerd, then anything
        // of its left (its containerd, shims), then the host's dirs.
        if self.daemon.is_some() {
            let ps = self.docker(&["ps", "-a", "-q"]);
            for id in ps.stdout.lines() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        for id in crate::common::names(&self.ch12_root()) {
            if id != "containers" {
                let _ = Command::new(kit::ch12())
                    .arg("--root")
                    .arg(self.ch12_root())
                    .args(["delete", "--force", &id])
                    .output();
            }
        }
        let state = self.scratch.path("exec/containerd/daemon");
        let tasks = kit::task_ids(&state, "moby");
        let _ = self.stop();
        kit::kill_all(&kit::processes_with(&self.redact.tmp));
        let address = self.scratch.str("exec/containerd/containerd.sock");
        kit::remove_shim_sockets(&address, "moby", &tasks);
        self.remove_host_dirs();
    }
}
