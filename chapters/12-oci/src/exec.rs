//! `exec`: a new process in a running container. It is made as the
//! container's first process was, through chapter 1's runtime, but its
//! namespaces are joined, not created: setns(2) into each of the first
//! process's (`/proc/PID/ns/*`), then into its cgroup. It gets what the
//! container's config gives a process (capabilities, seccomp profile,
//! no_new_privs, user, rlimits), from the config saved at create, with
//! `--process` or the flags in place of its `process`.

use ch01_process::{Context, Ctx, Result, Step};
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

// ANCHOR: namespaces
/// The namespaces of `pid` that are not this process's own, to join, each
/// with its flag: `/proc/PID/ns/NAME` opened, so that what is joined is
/// what was checked, even if `pid` exits meanwhile.
pub fn namespaces_of(pid: i32) -> std::result::Result<Vec<(CloneFlags, OwnedFd)>, String> {
    use std::os::unix::fs::MetadataExt;
    let mut join = Vec::new();
    for (name, flag) in [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ] {
        // lab: begin open /proc/PID/ns/NAME; keep it, with its flag, unless it is our own
        let theirs = format!("/proc/{pid}/ns/{name}");
        let file = std::fs::File::open(&theirs).map_err(|e| format!("opening {theirs}: {e}"))?;
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .map_err(|e| format!("stat(2) /proc/self/ns/{name}: {e}"))?;
        let same = file
            .metadata()
            .is_ok_and(|m| m.ino() == ours.ino() && m.dev() == ours.dev());
        if !same {
            join.push((flag, OwnedFd::from(file)));
        }
        // lab: end
    }
    Ok(join)
}
// ANCHOR_END: namespaces

/// The one step of `exec`'s own: into the container's cgroups, its ids
/// in its user namespace, its working directory.
pub struct Join {
    pub cgroups: Vec<PathBuf>,
    pub userns: bool,
    pub cwd: PathBuf,
}

impl Step for Join {
    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        // Before Go, as chapter 7 places a container's first process: the
        // process is charged and counted from its first instruction.
        let rootless = !ch01_process::step::host_root();
        for cgroup in &self.cgroups {
            let procs = cgroup.join("cgroup.procs");
            ctx.say(format_args!("write {} {child}", procs.display()));
            match std::fs::write(&procs, child.to_string()) {
                // A rootless container without a cgroup of its own (chapter
                // 7 went without) is in its runtime's, which the caller of
                // exec may not write: the exec'd process stays in the
                // caller's, as with runc.
                Err(e) if rootless && e.kind() == std::io::ErrorKind::PermissionDenied => {
                    ctx.say(format_args!("  not ours to join: {e}"));
                }
                r => r.context(format!("joining the cgroup {}", cgroup.display()))?,
            }
        }
        Ok(())
    }

    fn identity(&self, ctx: &Ctx) -> Result<()> {
        if self.userns {
            use nix::unistd::{setresgid, setresuid, Gid, Uid};
            ctx.say(format_args!("setresgid(2) 0 0 0, setresuid(2) 0 0 0"));
            let (u, g) = (Uid::from_raw(0), Gid::from_raw(0));
            setresgid(g, g, g).context("setresgid(2) 0 in the user namespace")?;
            setresuid(u, u, u).context("setresuid(2) 0 in the user namespace")?;
        }
        Ok(())
    }

    fn setup(&self, ctx: &Ctx) -> Result<()> {
        // setns(2) into the mount namespace put this process at its root.
        ctx.say(format_args!("chdir(2) {}", self.cwd.display()));
        nix::unistd::chdir(&self.cwd).context(format!("chdir(2) {}", self.cwd.display()))
    }
}
