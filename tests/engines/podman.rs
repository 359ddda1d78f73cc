//! podman, root, with every dir of its own under the test's scratch dir.

use super::kit::{self, HostSnap, Out, Redact, Scratch, IMAGE};
use std::path::{Path, PathBuf};

/// Where chapter 12 keeps its state when podman calls it: podman 4.3
/// gives a root runtime no `--root`, and `--runtime-flag root=DIR` does
/// not do instead: the `podman container cleanup` that conmon starts when
/// the container exits is not given the flag, so its `delete --force`
/// looks in the default root and the container's state stays in DIR.
pub const CH12_ROOT: &str = "/run/ch12-oci";

pub struct Podman {
    pub scratch: Scratch,
    pub redact: Redact,
    /// The flags every command gets, before its own.
    global: Vec<String>,
    env: Vec<(String, String)>,
    before: HostSnap,
    /// The ids of the containers the test made, for the leftover checks.
    pub cids: Vec<String>,
    /// Last: dropped after everything else is cleaned up.
    _serial: kit::Serial,
}

impl Podman {
    /// An engine with its own storage (`--root`, `--runroot`), its own
    /// temp dir (the default, /run/libpod, is the host's), chapter 12 as
    /// its runtime (with `logged`, through [`kit::call_logger`], logging
    /// to TMP/calls.log), and the image imported from the default rootfs.
    pub fn new(logged: bool) -> Podman {
        let serial = kit::serial();
        let scratch = Scratch::new("pm");
        let before = HostSnap::capture(&scratch);
        let redact = Redact::new(&scratch);
        let runtime = match logged {
            true => kit::call_logger(&scratch, &scratch.path("calls.log")),
            false => kit::ch12(),
        };
        // cgroupfs: no systemd here to ask for cgroups; chapter 12 refuses
        // `--systemd-cgroup`. No events log: the default, a journal or a
        // file under the host's /run/libpod, is not the test's.
        let global: Vec<String> = [
            "--root",
            &scratch.str("root"),
            "--runroot",
            &scratch.str("runroot"),
            "--tmpdir",
            &scratch.str("tmp"),
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
            "--runtime",
            &runtime.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A containers.conf of the test's own, instead of the host's: no
        // network namespace unless one is asked for (podman's default, a
        // CNI bridge, would add a bridge, firewall rules and IP forwarding
        // on the host), and network configs in the scratch dir.
        let conf = scratch.path("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[containers]\nnetns = \"none\"\n[network]\nnetwork_config_dir = \"{}\"\n",
                scratch.str("net")
            ),
        )
        .unwrap();
        let env = vec![
            (
                "CONTAINERS_CONF".into(),
                conf.to_string_lossy().into_owned(),
            ),
            ("STEPBOX_HOST_NS".into(), kit::host_ns()),
        ];
        let mut podman = Podman {
            scratch,
            redact,
            global,
            env,
            before,
            cids: Vec::new(),
            _serial: serial,
        };
        let tar = kit::images(&podman.scratch).rootfs_tar;
        podman
            .podman(&["import", &tar.to_string_lossy(), IMAGE])
            .ok();
        podman
    }

    /// `podman GLOBAL ARGS`, shown in full.
    pub fn podman(&mut self, args: &[&str]) -> Out {
        let mut all: Vec<&str> = self.global.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        kit::run(&self.redact, "podman", "podman", &all, &env)
    }

    /// `podman run ...` with what every run here needs: see [`RUN`].
    pub fn run(&mut self, args: &[&str]) -> Out {
        let mut all = RUN.to_vec();
        all.extend_from_slice(args);
        self.podman(&all)
    }

    /// `podman run -d ...`: the new container's id is remembered.
    pub fn run_detached(&mut self, args: &[&str]) -> Out {
        let mut all = vec!["-d"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        if out.code == 0 {
            self.cids.push(out.stdout.trim().to_owned());
        }
        out
    }

    /// The names of the containers podman knows, one a line.
    pub fn ps(&mut self) -> Out {
        self.podman(&["ps", "-a", "--format", "{{.Names}}"])
    }

    /// Container `name`'s state (created, running, paused, exited).
    pub fn state(&mut self, name: &str) -> Out {
        self.podman(&["inspect", "--format", "{{.State.Status}}", name])
    }

    /// Removes every container, checks that nothing is left on the host
    /// (mounts, cgroups, links, the runtime's state), then unmounts the
    /// storage and compares the host with how it was before the test.
    pub fn finish(mut self) {
        let out = self.podman(&["ps", "-a", "-q", "--no-trunc"]);
        self.cids.extend(out.stdout.lines().map(str::to_owned));
        self.cids.sort();
        self.cids.dedup();
        let rm = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        let mut problems = Vec::new();
        if rm.code != 0 {
            problems.push(format!("podman rm -af: {}", rm.stderr));
        }
        let procs = kit::processes_with(&self.redact.tmp);
        if !procs.is_empty() {
            problems.push(format!("processes left: {procs:?}"));
        }
        let left = kit::ch12_leftovers(Path::new(CH12_ROOT), &self.cids);
        if !left.is_empty() {
            problems.push(format!("chapter 12 left: {left:?}"));
        }
        let states = states_under(Path::new(CH12_ROOT), &self.redact.tmp);
        if !states.is_empty() {
            problems.push(format!(
                "chapter 12 state dirs of this test's containers: {states:?}"
            ));
        }
        kit::remove_new_cgroup_parents(&self.before, "libpod_parent");
        self.scratch.unmount_all();
        let after = HostSnap::capture(&self.scratch);
        // Drop's cleanup still runs, and finds nothing to do.
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert_eq!(self.before, after, "podman changed the host");
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // After a failed test, what it started goes before its dir does:
        // its containers (podman's, then chapter 12's of them that podman
        // lost), then any process still named after the dir (conmon).
        let _ = self.podman(&["rm", "-a", "-f", "-t", "0"]);
        for state in states_under(Path::new(CH12_ROOT), &self.redact.tmp) {
            let id = state.parent().unwrap().file_name().unwrap();
            let _ = std::process::Command::new(kit::ch12())
                .args(["--root", CH12_ROOT, "delete", "--force"])
                .arg(id)
                .output();
        }
        kit::kill_all(&kit::processes_with(&self.redact.tmp));
        kit::remove_new_cgroup_parents(&self.before, "libpod_parent");
    }
}

/// What every `podman run` here has:
/// - `--network none`: no network namespace of podman's making. Its
///   default (a CNI bridge) would change the host's links, firewall and
///   IP forwarding, and podman would make the namespace itself and pass
///   its path (/run/netns/...), which chapter 12 cannot join yet; with
///   `none` the runtime makes an empty one of its own.
/// - `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`: podman asks a
///   root container for 1048576 open files by default, above this host's
///   hard limit (20000); raising a hard limit needs CAP_SYS_RESOURCE,
///   which the runtime is not given here, and chapter 9 refuses a limit it
///   cannot set rather than start the container with another one.
pub const RUN: &[&str] = &[
    "run",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// Chapter 12's state dirs (ROOT/ID/state.json) whose bundle is under `tmp`.
fn states_under(root: &Path, tmp: &str) -> Vec<PathBuf> {
    crate::common::names(root)
        .into_iter()
        .map(|n| root.join(n).join("state.json"))
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(tmp)))
        .collect()
}
