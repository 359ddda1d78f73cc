//! The runtime as a library: `Container::{create, start, wait, kill,
//! delete}` called from a test program, not through a chapter's binary.
//!
//! What a caller can rely on: create() returns with the container set up
//! (in its cgroup, its namespaces made) but its command not yet run; a
//! created container outlives the thread that made it; several threads
//! may run containers at once; and whatever happens (delete, drop, a
//! panic), the host is left as it was. Every container runs with a run
//! directory (state records) and a state directory (layers) of the
//! test's own: the host's records are never read or swept.

mod common;

use ch01_process::runtime::{Outcome, Status};
use ch01_process::{Container, Ctx, Steps};
use common::{find_cgroups, root, HostState, Sandbox};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

/// The memory limit of the tests' containers.
const MEMORY: u64 = 64 << 20;

/// What these tests ask of their sandbox beyond what every test's has.
impl Sandbox {
    fn ctx(&self, id: &str) -> Ctx {
        let mut ctx = Ctx::new("library-test", false);
        ctx.id = id.to_owned();
        ctx.run_dir = self.run_dir();
        ctx
    }

    /// Chapter 8: the default image, with `hostname` and the memory limit.
    fn config(&self, hostname: &str) -> ch08_overlay::Config {
        ch08_overlay::Config {
            prev: ch07_cgroups::Config {
                prev: ch06_uts::Config {
                    prev: ch05_mnt::Config::default(),
                    hostname: Some(hostname.to_owned()),
                },
                limits: ch07_cgroups::Limits {
                    memory: Some(MEMORY),
                    ..Default::default()
                },
                ..Default::default()
            },
            layers: image().to_vec(),
            state_dir: self.state_dir(),
            ..Default::default()
        }
    }

    /// Creates a chapter 8 container named `hostname` that runs `command`.
    fn create(&self, id: &str, hostname: &str, command: &[&str]) -> Container {
        let command: Vec<OsString> = command.iter().map(OsString::from).collect();
        Container::create(self.ctx(id), self.config(hostname).steps(), &command)
            .unwrap_or_else(|e| panic!("create {id}: {}", e.msg))
    }

    /// Container `id` left nothing behind: no cgroup, mount, state record
    /// or container directory, and the host looks as it did before.
    fn assert_gone(&self, id: &str, before: &HostState) {
        assert_eq!(&HostState::capture(id), before, "container {id}");
        assert_eq!(find_cgroups(id), Vec::<String>::new(), "cgroups of {id}");
        assert_eq!(
            self.record_files(id),
            Vec::<String>::new(),
            "state record of {id}"
        );
        let home = self.container_dir(id);
        assert!(!home.exists(), "{} is left", home.display());
    }
}

/// The default image's layers, built once.
fn image() -> &'static [PathBuf] {
    static LAYERS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    LAYERS.get_or_init(|| xtask::image::ensure().expect("building the default image"))
}

fn available() -> bool {
    root()
        && (std::fs::read_to_string("/proc/filesystems")
            .unwrap_or_default()
            .contains("overlay")
            || common::skip("the kernel has no overlay filesystem (modprobe overlay)"))
        && (Path::new("/sys/fs/cgroup").is_dir()
            || common::skip("no cgroup filesystem at /sys/fs/cgroup"))
}

/// A pidfd of our own for `pid`, opened while it is our unreaped child (so
/// it cannot be another process): it tells whether that very process is
/// still there after the container is gone, whatever pid is reused.
fn pidfd_open(pid: Pid) -> OwnedFd {
    // SAFETY: pidfd_open(2) takes a pid and flags and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    assert!(fd >= 0, "pidfd_open({pid}): {}", nix::errno::Errno::last());
    // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Whether the process of `pidfd` has not been reaped yet (signal 0 is
/// delivered to a zombie too: ESRCH only once it is reaped).
fn not_reaped(pidfd: &OwnedFd) -> bool {
    // SAFETY: signal 0 with a null siginfo: the kernel only checks the target.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match r {
        0 => true,
        _ => {
            assert_eq!(nix::errno::Errno::last(), nix::errno::Errno::ESRCH);
            false
        }
    }
}

/// /proc/PID/stat's state letter (R, S, Z, …).
fn proc_state(pid: Pid) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // "PID (COMM) S ...": COMM may hold spaces and parentheses.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

/// Whether SIGKILL is pending for `pid` (its thread's or its process's set).
fn sigkill_pending(pid: Pid) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter_map(|l| l.strip_prefix("SigPnd:").or(l.strip_prefix("ShdPnd:")))
        .any(|mask| u64::from_str_radix(mask.trim(), 16).unwrap() & (1 << (libc::SIGKILL - 1)) != 0)
}

/// Alive and not dying: neither a zombie nor killed with a SIGKILL that has
/// not taken effect yet.
fn assert_alive(pid: Pid) {
    nix::sys::signal::kill(pid, None).unwrap_or_else(|e| panic!("kill({pid}, 0): {e}"));
    let state = proc_state(pid);
    assert!(!matches!(state, 'Z' | 'X'), "{pid} is in state {state}");
    assert!(!sigkill_pending(pid), "{pid} has a SIGKILL pending");
}

/// (device, inode) of a file, following a /proc magic link.
fn file_id(path: &str) -> (u64, u64) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}"));
    (m.dev(), m.ino())
}

/// Whether `pid` still runs this test's own program: it has not exec'd.
fn runs_this_program(pid: Pid) -> bool {
    let same_exe = file_id(&format!("/proc/{pid}/exe")) == file_id("/proc/self/exe");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    same_exe && cmdline == std::fs::read("/proc/self/cmdline").unwrap()
}

/// The lines of /proc/PID/cgroup that put it in container `id`'s cgroup.
fn cgroup_lines(pid: Pid, id: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(&format!("/stepbox-{id}")))
        .map(str::to_owned)
        .collect()
}

/// The memory limit written in container `id`'s cgroup (v1 or v2).
fn memory_limit(id: &str) -> u64 {
    let found: Vec<u64> = find_cgroups(id)
        .iter()
        .flat_map(|c| ["memory.limit_in_bytes", "memory.max"].map(|f| Path::new(c).join(f)))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "memory limits of {id}: {found:?}");
    found[0]
}

/// `sh -c CHECK`: exits `code` if the container's hostname is `hostname`.
fn exits_if_named(hostname: &str, code: i32) -> [String; 3] {
    [
        "sh".into(),
        "-c".into(),
        format!("test \"$(hostname)\" = {hostname} && exit {code}"),
    ]
}

#[test]
fn lifecycle_create_start_wait_delete() {
    if !available() {
        return;
    }
    let sb = Sandbox::new("lib");
    let id = sb.id();
    let before = HostState::capture(&id);
    let command = exits_if_named("lib", 7);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let mut c = sb.create(&id, "lib", &command);

    // Created: set up, waiting before its exec.
    assert_eq!(c.status(), Status::Created);
    let pid = c.pid();
    assert!(pid.as_raw() > 0, "{pid}");
    let pidfd = pidfd_open(pid);
    assert_alive(pid);
    assert!(runs_this_program(pid), "{pid} has exec'd already");
    let lines = cgroup_lines(pid, &id);
    assert!(
        !lines.is_empty(),
        "{pid} is not in stepbox-{id}: {}",
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
    );
    assert_eq!(memory_limit(&id), MEMORY);
    assert_ne!(
        file_id(&format!("/proc/{pid}/ns/uts")),
        file_id("/proc/self/ns/uts"),
        "no UTS namespace of its own yet"
    );
    // Its overlay is mounted and its record written.
    assert_ne!(HostState::capture(&id), before);

    c.start().unwrap_or_else(|e| panic!("start: {}", e.msg));
    assert_eq!(c.status(), Status::Running);
    let outcome = c.wait().unwrap_or_else(|e| panic!("wait: {}", e.msg));
    assert_eq!(outcome, Outcome::Exited(7), "the hostname is not \"lib\"");
    assert_eq!(c.status(), Status::Stopped(Some(Outcome::Exited(7))));
    // Waiting again gives the same outcome; nothing else works any more.
    assert_eq!(c.wait().unwrap(), Outcome::Exited(7));
    let e = c.kill(Signal::SIGTERM).unwrap_err();
    assert!(e.msg.contains("has stopped"), "{}", e.msg);
    let e = c.start().unwrap_err();
    assert!(e.msg.contains("is not waiting to start"), "{}", e.msg);
    assert!(!not_reaped(&pidfd), "wait() did not reap {pid}");

    c.delete().unwrap_or_else(|e| panic!("delete: {}", e.msg));
    sb.assert_gone(&id, &before);
}

#[test]
fn created_but_never_started_is_removed() {
    if !available() {
        return;
    }
    let sb = Sandbox::new("lib");
    for how in ["delete", "drop"] {
        let id = sb.id();
        let before = HostState::capture(&id);
        let c = sb.create(&id, "never", &["sh", "-c", "exit 3"]);
        assert_eq!(c.status(), Status::Created, "{how}");
        let pid = c.pid();
        let pidfd = pidfd_open(pid);
        assert_alive(pid);
        assert!(!cgroup_lines(pid, &id).is_empty(), "{how}");
        match how {
            "delete" => c.delete().unwrap_or_else(|e| panic!("delete: {}", e.msg)),
            _ => drop(c),
        }
        assert!(!not_reaped(&pidfd), "{how}: {pid} is still there");
        sb.assert_gone(&id, &before);
    }
}

#[test]
fn a_created_container_outlives_the_thread_that_made_it() {
    if !available() {
        return;
    }
    let sb = Arc::new(Sandbox::new("lib"));
    let id = sb.id();
    let before = HostState::capture(&id);
    let maker = {
        let (sb, id) = (sb.clone(), id.clone());
        std::thread::spawn(move || {
            // SAFETY: gettid(2) takes nothing and cannot fail.
            let tid = unsafe { libc::gettid() };
            let mut c = sb.create(&id, "outlive", &["sleep", "60"]);
            c.start().unwrap_or_else(|e| panic!("start: {}", e.msg));
            (c, tid)
        })
    };
    let (mut c, tid): (Container, i32) = maker.join().unwrap();
    // pthread_join returns when the thread has left its code, before the
    // kernel is done with it: a parent-death signal would be sent later,
    // when the kernel reparents its children. Once its /proc entry is gone
    // (the kernel reaps a thread right after that), any such signal has
    // been sent.
    let task = format!("/proc/self/task/{tid}");
    let start = Instant::now();
    while Path::new(&task).exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "{task} stays");
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = c.pid();
    assert_eq!(c.status(), Status::Running);
    assert_alive(pid);
    assert!(!runs_this_program(pid), "{pid} has not exec'd sleep");
    // Running, so starting it again is refused, and leaves it running.
    let e = c.start().unwrap_err();
    assert!(e.msg.contains("is not waiting to start"), "{}", e.msg);
    assert_eq!(c.status(), Status::Running);
    assert_alive(pid);

    c.kill(Signal::SIGKILL).unwrap();
    let outcome = c.wait().unwrap();
    assert_eq!(outcome, Outcome::Signaled(Signal::SIGKILL));
    assert_eq!(outcome.code(), 137);
    assert!(c.kill(Signal::SIGKILL).is_err(), "kill after it stopped");
    c.delete().unwrap_or_else(|e| panic!("delete: {}", e.msg));
    sb.assert_gone(&id, &before);
}

/// Every thread's container answers to its own hostname: the fork before
/// clone(2) makes the library safe to call from several threads at once.
#[test]
fn concurrent_containers_from_one_process() {
    if !available() {
        return;
    }
    const THREADS: i32 = 8;
    let sb = Arc::new(Sandbox::new("lib"));
    for round in 0..3 {
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (1..=THREADS)
            .map(|n| {
                let (sb, barrier) = (sb.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let id = sb.id();
                    let hostname = format!("c{n}");
                    let before = HostState::capture(&id);
                    let command = exits_if_named(&hostname, n);
                    let command: Vec<&str> = command.iter().map(String::as_str).collect();
                    barrier.wait();
                    let mut c = sb.create(&id, &hostname, &command);
                    c.start()
                        .unwrap_or_else(|e| panic!("start {id}: {}", e.msg));
                    let outcome = c.wait().unwrap_or_else(|e| panic!("wait {id}: {}", e.msg));
                    c.delete()
                        .unwrap_or_else(|e| panic!("delete {id}: {}", e.msg));
                    sb.assert_gone(&id, &before);
                    outcome
                })
            })
            .collect();
        let outcomes: Vec<Outcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let expected: Vec<Outcome> = (1..=THREADS).map(Outcome::Exited).collect();
        assert_eq!(outcomes, expected, "round {round}");
    }
}

/// A Container can be handed to another thread.
#[allow(dead_code)]
fn container_is_send() {
    fn send<T: Send>() {}
    send::<Container>();
}
