//! Chapter 12 side by side with crun and runc: the same bundle (the default
//! rootfs and a config.json written here: `runc spec`'s, running
//! `/bin/true` without a terminal), the same rounds, in turns.
//!
//! Two ways to run it: `run ID`, and `create`, `start`, the wait for the
//! container's process to exit, `delete` (what an engine does). The bench is
//! the child subreaper while it runs them: a container's process, orphaned
//! when `create` exits, becomes its child, so that its exit is waited for
//! with a pidfd (no polling of `state`) and its CPU time and peak memory,
//! which are the runtime's own setup before `execve`, are counted. With
//! `run`, the runtime reaps it itself and wait4(2) counts it the same way.

use super::{command, measure, measure_split, median, ms, peak_rss_kb, tempdir};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The markers around this section in results.md: `--only oci` rewrites
/// what is between them and leaves the rest of the file alone.
/// The section's bounds, which are also mdBook anchors: chapter 12's page
/// includes the section alone.
pub const BEGIN: &str = "<!-- ANCHOR: oci (`cargo xtask bench --only oci` rewrites from here) -->";
pub const END: &str = "<!-- ANCHOR_END: oci -->";

/// The issue's targets: wall and CPU at most crun's and 0.4× runc's, peak
/// memory at most crun's.
const VS_CRUN: f64 = 1.0;
const VS_RUNC: f64 = 0.4;

/// `runc spec`'s config.json with `terminal` false, `/bin/true` and the
/// rootfs by absolute path (runc refuses a symlink or a relative one).
fn config(rootfs: &Path) -> Result<String> {
    let root = rootfs.display().to_string();
    if root.contains(['"', '\\']) || !rootfs.is_absolute() {
        bail!("the rootfs path {root:?} cannot go into config.json as it is");
    }
    Ok(format!(
        r#"{{
  "ociVersion": "1.0.2-dev",
  "process": {{
    "terminal": false,
    "user": {{ "uid": 0, "gid": 0 }},
    "args": ["/bin/true"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/",
    "capabilities": {{
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    }},
    "rlimits": [{{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }}],
    "noNewPrivileges": true
  }},
  "root": {{ "path": "{root}", "readonly": true }},
  "hostname": "stepbox",
  "mounts": [
    {{ "destination": "/proc", "type": "proc", "source": "proc" }},
    {{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }},
    {{ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] }},
    {{ "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }},
    {{ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": ["nosuid", "noexec", "nodev"] }},
    {{ "destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": ["nosuid", "noexec", "nodev", "ro"] }},
    {{ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
      "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }}
  ],
  "linux": {{
    "resources": {{ "devices": [{{ "allow": false, "access": "rwm" }}] }},
    "namespaces": [
      {{ "type": "pid" }}, {{ "type": "network" }}, {{ "type": "ipc" }},
      {{ "type": "uts" }}, {{ "type": "mount" }}
    ],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
      "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
      "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
      "/proc/sysrq-trigger"]
  }}
}}
"#
    ))
}

/// One runtime's samples.
struct Runtime {
    name: &'static str,
    /// The program and its `--root`.
    base: Vec<String>,
    run_wall: Vec<Duration>,
    run_cpu: Vec<Duration>,
    run_sys: Vec<Duration>,
    run_rss_kb: i64,
    cycle: Vec<Cycle>,
    cycle_rss_kb: i64,
    /// Cycles whose container process was not ours to reap (its CPU time
    /// is then missing from the cycle's).
    unreaped: usize,
}

#[derive(Clone, Copy, Default)]
struct Cycle {
    create: Duration,
    start: Duration,
    wait: Duration,
    delete: Duration,
    cpu: Duration,
    /// The part of `cpu` spent in the kernel.
    sys: Duration,
    rss_kb: i64,
}

impl Cycle {
    fn wall(&self) -> Duration {
        self.create + self.start + self.wait + self.delete
    }
}

impl Runtime {
    fn new(name: &'static str, program: &str, root: String) -> Runtime {
        Runtime {
            name,
            base: vec![program.into(), "--root".into(), root],
            run_wall: vec![],
            run_cpu: vec![],
            run_sys: vec![],
            run_rss_kb: 0,
            cycle: vec![],
            cycle_rss_kb: 0,
            unreaped: 0,
        }
    }

    fn cmd(&self, args: &[&str]) -> Vec<String> {
        let mut argv = self.base.clone();
        argv.extend(args.iter().map(|s| s.to_string()));
        argv
    }
}

/// How one command of a cycle is run: timed (wall, CPU) or under GNU time
/// (peak RSS).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Time,
    PeakRss,
}

/// Wall, user and system time, or peak RSS, of one command.
struct One {
    wall: Duration,
    user: Duration,
    sys: Duration,
    rss_kb: i64,
}

fn one(mode: Mode, argv: &[String]) -> Result<One> {
    Ok(match mode {
        Mode::Time => {
            let (wall, user, sys) = measure_split(argv)?;
            One {
                wall,
                user,
                sys,
                rss_kb: 0,
            }
        }
        Mode::PeakRss => One {
            wall: Duration::ZERO,
            user: Duration::ZERO,
            sys: Duration::ZERO,
            rss_kb: peak_rss_kb(argv)?,
        },
    })
}

impl Cycle {
    fn add(&mut self, o: &One) -> Duration {
        self.cpu += o.user + o.sys;
        self.sys += o.sys;
        self.rss_kb = self.rss_kb.max(o.rss_kb);
        o.wall
    }
}

/// create, start, wait for the container's process, delete.
fn cycle(rt: &Runtime, mode: Mode, bundle: &Path, id: &str) -> Result<(Cycle, bool)> {
    let pid_file = bundle.join(format!("{id}.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let b = bundle.display().to_string();
    let p = pid_file.display().to_string();
    let mut c = Cycle::default();
    c.create = c.add(&one(
        mode,
        &rt.cmd(&["create", "--bundle", &b, "--pid-file", &p, id]),
    )?);
    let pid: libc::pid_t = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("{} create wrote no {p}", rt.name))?
        .trim()
        .parse()
        .with_context(|| format!("{} create: {p} holds no pid", rt.name))?;
    // SAFETY: pidfd_open(2) takes integers and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    if pidfd < 0 {
        bail!("pidfd_open({pid}): {}", std::io::Error::last_os_error());
    }
    // SAFETY: pidfd was just returned to us and nothing else owns it.
    let pidfd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    c.start = c.add(&one(mode, &rt.cmd(&["start", id]))?);
    let t = Instant::now();
    let mut poll = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&pidfd),
        events: libc::POLLIN,
        revents: 0,
    };
    // A pidfd polls readable once its process has exited.
    // SAFETY: one valid pollfd, for the duration of the call.
    let n = unsafe { libc::poll(&mut poll, 1, 10_000) };
    c.wait = t.elapsed();
    if n != 1 {
        bail!("{}: the container's process {pid} did not exit", rt.name);
    }
    let mut status = 0;
    // SAFETY: rusage is plain old data; all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // It is ours when the runtime left it to its parent's subreaper (us).
    // SAFETY: `status` and `usage` are valid for writing for the call.
    let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) } == pid;
    if reaped {
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        c.add(&One {
            wall: Duration::ZERO,
            user: tv(usage.ru_utime),
            sys: tv(usage.ru_stime),
            rss_kb: usage.ru_maxrss,
        });
    }
    c.delete = c.add(&one(mode, &rt.cmd(&["delete", id]))?);
    Ok((c, reaped))
}

/// [`cycle`], and on an error `delete --force` of what it may have left.
fn cycle_or_clean(rt: &Runtime, mode: Mode, bundle: &Path, id: &str) -> Result<(Cycle, bool)> {
    let result = cycle(rt, mode, bundle, id);
    if result.is_err() {
        let argv = rt.cmd(&["delete", "--force", id]);
        let _ = command(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    result
}

/// Reaps the zombies that were reparented to us and that nothing waits
/// for (a runtime's helper processes, if any).
fn reap_strays() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with WNOHANG; `status` is valid for writing.
        if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } <= 0 {
            break;
        }
    }
}

/// The bench as the child subreaper, for as long as it lives.
struct Subreaper;

impl Subreaper {
    fn new() -> Result<Subreaper> {
        // SAFETY: prctl(2) with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            bail!(
                "PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(Subreaper)
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        reap_strays();
        // SAFETY: prctl(2) with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    }
}

/// The controllers the cgroup2 hierarchy holds on a hybrid host, which
/// make crun refuse to run ("cgroups in hybrid mode not supported").
fn unified_controllers() -> Vec<String> {
    std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// While it lives, the cgroup2 controllers of a hybrid host are bound to
/// v1 hierarchies of their own instead: each mounted by a process in a
/// mount namespace of its own, so that no mount shows in the host's table,
/// and the kernel hands the controller back to cgroup2 once the last mount
/// of its (empty) hierarchy goes with that namespace.
struct Rebind {
    holder: Child,
    dir: PathBuf,
    moved: Vec<String>,
}

impl Rebind {
    fn new(controllers: Vec<String>) -> Result<Rebind> {
        let dir = tempdir("stepbox-bench-cgroup-v1")?;
        let script = r#"set -e; d=$1; shift
for c; do mkdir -p "$d/$c"; mount -t cgroup -o "$c" stepbox-bench "$d/$c"; done
echo ready; exec sleep 3600"#;
        let mut holder = Command::new("unshare");
        holder
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(&dir)
            .args(&controllers)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // The holder dies with the bench: the controllers come back even
        // when the bench is killed.
        // SAFETY: prctl(2) is async-signal-safe and touches no memory.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut holder, || {
                match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let mut holder = holder
            .spawn()
            .context("starting unshare, to mount v1 cgroup hierarchies")?;
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let rebind = Rebind {
            holder,
            dir,
            moved: controllers,
        };
        if line.trim() != "ready" {
            bail!(
                "could not mount v1 hierarchies for {}",
                rebind.moved.join(" ")
            );
        }
        Ok(rebind)
    }

    /// Ends the holder and waits (up to 5 s) for cgroup2 to get its
    /// controllers back; true if it did.
    fn undo(mut self) -> bool {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            let now = unified_controllers();
            if self.moved.iter().all(|c| now.contains(c)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// The section: the side-by-side table and where chapter 12's time goes.
pub fn section(release: &Path, rootfs: &Path, runs: usize) -> Result<String> {
    let work = tempdir("stepbox-bench-oci")?;
    let result = section_in(release, rootfs, runs, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn section_in(release: &Path, rootfs: &Path, runs: usize, work: &Path) -> Result<String> {
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle)?;
    std::fs::write(bundle.join("config.json"), config(rootfs)?)?;
    let state = |name: &str| work.join(format!("root-{name}")).display().to_string();
    let mut notes = Vec::new();
    let ch12 = release.join("ch12-oci").display().to_string();
    let mut runtimes = vec![Runtime::new("ch12-oci", &ch12, state("ch12"))];
    for name in ["crun", "runc"] {
        if on_path(name) {
            runtimes.push(Runtime::new(name, name, state(name)));
        } else {
            notes.push(format!(
                "`{name}` is not installed (scripts/install-deps.sh installs it): no column."
            ));
        }
    }

    // crun refuses a hybrid host whose cgroup2 holds a controller.
    let mut rebind = None;
    let held = unified_controllers();
    let listed = held
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(" ");
    if runtimes.iter().any(|r| r.name == "crun") && !held.is_empty() {
        crate::step(format!(
            "cgroup2 holds {}: bound to v1 hierarchies of their own while the runtimes run (crun needs it)",
            held.join(" ")
        ));
        match Rebind::new(held.clone()) {
            Ok(r) => rebind = Some(r),
            Err(e) => {
                runtimes.retain(|r| r.name != "crun");
                notes.push(format!(
                    "No crun column: crun refuses a hybrid host whose cgroup2 holds a controller, \
                     and this one's {listed} could not be bound to a v1 hierarchy ({e:#})."
                ));
            }
        }
    }
    let result = rounds(&mut runtimes, &bundle, runs);
    if let Some(rebind) = rebind {
        let back = rebind.undo();
        if !back {
            crate::step("cgroup2 did not get its controllers back within 5 s");
        }
        notes.push(format!(
            "crun refuses a hybrid host whose cgroup2 holds a controller, and this one's held \
             {listed}: during the runs (of all three runtimes alike) it was bound to a v1 \
             hierarchy of its own, mounted in a private mount namespace; cgroup2 {}.",
            match back {
                true => "had it back after",
                false => "did NOT have it back 5 s after (see /sys/fs/cgroup/unified/cgroup.controllers)",
            }
        ));
    }
    result?;
    let trace = strace_table(&runtimes[0], &bundle)?;

    let mut t = String::new();
    t.push_str(&side_by_side(&runtimes, runs));
    for rt in &runtimes {
        if rt.unreaped > 0 {
            notes.push(format!(
                "{}: in {} of the cycles the container's process was not the bench's to reap; \
                 its CPU time is missing from those.",
                rt.name, rt.unreaped
            ));
        }
    }
    for note in notes {
        t.push_str(&format!("\n{note}\n"));
    }
    t.push_str(&trace);
    Ok(t)
}

fn rounds(runtimes: &mut [Runtime], bundle: &Path, runs: usize) -> Result<()> {
    let _subreaper = Subreaper::new()?;
    let b = bundle.display().to_string();
    crate::step(format!(
        "OCI runtimes: {} x {runs} runs of `run` and of create+start+delete, in turns",
        runtimes
            .iter()
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let n = runtimes.len();
    for round in 0..runs + 3 {
        // Each runtime first, middle and last as often as the others.
        for k in 0..n {
            let rt = &mut runtimes[(k + round) % n];
            let id = format!("stepbox-bench-{round}");
            let run = |rt: &Runtime| measure_split(&rt.cmd(&["run", "--bundle", &b, &id]));
            let cyc = |rt: &Runtime| cycle_or_clean(rt, Mode::Time, bundle, &format!("{id}-c"));
            // `run` and the cycle take turns to go first too: a cgroup
            // write just after another one is the faster (see run_order).
            let ((wall, user, sys), (c, reaped)) = match round % 2 {
                0 => (run(rt)?, cyc(rt)?),
                _ => {
                    let c = cyc(rt)?;
                    (run(rt)?, c)
                }
            };
            reap_strays();
            if round >= 3 {
                rt.run_wall.push(wall);
                rt.run_cpu.push(user + sys);
                rt.run_sys.push(sys);
                rt.cycle.push(c);
                rt.unreaped += usize::from(!reaped);
                rt.cycle_rss_kb = rt.cycle_rss_kb.max(c.rss_kb);
            }
        }
    }
    // Peak RSS through GNU time, as the chapters' (see `peak_rss_kb`).
    for rt in runtimes.iter_mut() {
        for i in 0..3 {
            let id = format!("stepbox-bench-rss-{i}");
            rt.run_rss_kb = rt
                .run_rss_kb
                .max(peak_rss_kb(&rt.cmd(&["run", "--bundle", &b, &id]))?);
            let (c, _) = cycle_or_clean(rt, Mode::PeakRss, bundle, &format!("{id}-c"))?;
            rt.cycle_rss_kb = rt.cycle_rss_kb.max(c.rss_kb);
            reap_strays();
        }
    }
    Ok(())
}

/// `value ÷ crun's` and `÷ runc's`, and whether the targets are met.
fn verdict(
    ours: f64,
    crun: Option<f64>,
    runc: Option<f64>,
    runc_target: bool,
) -> (String, String, String) {
    let ratio = |other: Option<f64>| other.map_or("–".into(), |o| format!("{:.2}×", ours / o));
    let mut misses = Vec::new();
    if let Some(c) = crun {
        if ours > VS_CRUN * c {
            misses.push(format!("> {VS_CRUN:.1}× crun"));
        }
    }
    if let (Some(r), true) = (runc, runc_target) {
        if ours > VS_RUNC * r {
            misses.push(format!("> {VS_RUNC:.1}× runc"));
        }
    }
    let met = if crun.is_none() && (runc.is_none() || !runc_target) {
        "–".to_string()
    } else if misses.is_empty() {
        "yes".to_string()
    } else {
        format!("no ({})", misses.join(", "))
    };
    (ratio(crun), ratio(runc), met)
}

/// Which of the issue's targets a row has.
#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// At most crun's and 0.4× runc's.
    Both,
    /// At most crun's (peak memory).
    Crun,
    None,
}

fn side_by_side(runtimes: &[Runtime], runs: usize) -> String {
    let names: Vec<&str> = runtimes.iter().map(|r| r.name).collect();
    let col = |name: &str| runtimes.iter().position(|r| r.name == name);
    let (ci, ri) = (col("crun"), col("runc"));
    let mut t = format!(
        "\n| chapter 12, OCI runtimes (same bundle) | {} | ÷ crun | ÷ runc | target met |\n|---|{}---:|---:|---|\n",
        names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" | "),
        "---:|".repeat(names.len())
    );
    // Medians per runtime, one per row.
    let mut rows: Vec<(String, Vec<f64>, &str, Target)> = Vec::new();
    let med = |mut v: Vec<Duration>| ms(median(&mut v));
    let per = |f: &dyn Fn(&Runtime) -> f64| runtimes.iter().map(f).collect::<Vec<f64>>();
    rows.push((
        "`run`: wall".into(),
        per(&|r| med(r.run_wall.clone())),
        "ms",
        Target::Both,
    ));
    rows.push((
        "`run`: CPU".into(),
        per(&|r| med(r.run_cpu.clone())),
        "ms",
        Target::Both,
    ));
    rows.push((
        "… of which system time".into(),
        per(&|r| med(r.run_sys.clone())),
        "ms",
        Target::None,
    ));
    rows.push((
        "`run`: peak RSS".into(),
        per(&|r| r.run_rss_kb as f64 / 1024.0),
        "MB",
        Target::Crun,
    ));
    rows.push((
        "create+start+wait+delete: wall".into(),
        per(&|r| med(r.cycle.iter().map(Cycle::wall).collect())),
        "ms",
        Target::Both,
    ));
    rows.push((
        "create+start+wait+delete: CPU".into(),
        per(&|r| med(r.cycle.iter().map(|c| c.cpu).collect())),
        "ms",
        Target::Both,
    ));
    rows.push((
        "… of which system time".into(),
        per(&|r| med(r.cycle.iter().map(|c| c.sys).collect())),
        "ms",
        Target::None,
    ));
    rows.push((
        "create+start+wait+delete: peak RSS".into(),
        per(&|r| r.cycle_rss_kb as f64 / 1024.0),
        "MB",
        Target::Crun,
    ));
    type Part = fn(&Cycle) -> Duration;
    let parts: [(&str, Part); 4] = [
        ("`create`", |c| c.create),
        ("`start`", |c| c.start),
        ("wait for the exit", |c| c.wait),
        ("`delete`", |c| c.delete),
    ];
    for (label, part) in parts {
        rows.push((
            format!("… of which {label}: wall"),
            per(&|r| med(r.cycle.iter().map(part).collect())),
            "ms",
            Target::None,
        ));
    }
    for (label, values, unit, target) in &rows {
        let cells: Vec<String> = values.iter().map(|v| format!("{v:.1} {unit}")).collect();
        let (vc, vr, met) = verdict(
            values[0],
            ci.map(|i| values[i]),
            ri.map(|i| values[i]),
            *target == Target::Both,
        );
        let met = if *target == Target::None {
            String::new()
        } else {
            met
        };
        t.push_str(&format!(
            "| {label} | {} | {vc} | {vr} | {met} |\n",
            cells.join(" | ")
        ));
    }
    t.push_str(&format!(
        "\nTargets: wall and CPU at most {VS_CRUN:.1}× crun's and {VS_RUNC:.1}× runc's, peak RSS at most crun's. \
         Medians of {runs} runs each, in turns; CPU is user + system of the runtime's processes, \
         the container's process included (its setup before `execve`); the wait is from `start`'s \
         exit to the container's, on a pidfd.\n"
    ));
    t
}

/// One system call of an `strace -f -T` log.
#[derive(Debug, PartialEq)]
struct Call {
    name: String,
    /// The call as strace shows it, a descriptor's path after it (`→ PATH`)
    /// when the log opened it.
    text: String,
    secs: f64,
    /// Made by a process the runtime forked (the container's), not by it.
    child: bool,
    /// Still under way when the runtime's own process exited: the
    /// container's process waiting for `start`.
    outlived: bool,
}

/// The calls of an `strace -f -T -q -o FILE RUNTIME ...` log; its first
/// line's process is the runtime's. A call that another process's lines
/// interrupt is split in two lines, `NAME(ARGS <unfinished ...>` and
/// `<... NAME resumed>REST`.
fn parse_strace(text: &str) -> Vec<Call> {
    use std::collections::HashMap;
    let mut calls = Vec::new();
    let mut first = None;
    // Per process: the unfinished call's text, and whether it outlived the runtime.
    let mut pending: HashMap<&str, (String, bool)> = HashMap::new();
    let mut fds: HashMap<(&str, String), String> = HashMap::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let runtime = *first.get_or_insert(pid);
        if rest.starts_with("+++") {
            if pid == runtime {
                for call in pending.values_mut() {
                    call.1 = true;
                }
            }
            continue;
        }
        if rest.starts_with("---") {
            continue;
        }
        let (whole, outlived) = match rest.strip_prefix("<... ") {
            Some(resumed) => {
                let Some((_, tail)) = resumed.split_once(" resumed>") else {
                    continue;
                };
                let (head, outlived) = pending.remove(pid).unwrap_or_default();
                (format!("{head}{tail}"), outlived)
            }
            None => match rest.strip_suffix(" <unfinished ...>") {
                Some(head) => {
                    pending.insert(pid, (head.to_string(), false));
                    continue;
                }
                None => (rest.to_string(), false),
            },
        };
        let Some(open) = whole.find('(') else {
            continue;
        };
        let name = whole[..open].to_string();
        // `... = RET <SECONDS>`; exit_group's `= ?` has no time.
        let Some(lt) = whole
            .trim_end()
            .strip_suffix('>')
            .and_then(|w| w.rfind('<').map(|i| (w, i)))
        else {
            continue;
        };
        let Ok(secs) = lt.0[lt.1 + 1..].parse::<f64>() else {
            continue;
        };
        let call = whole[..lt.1].trim_end();
        let ret = call
            .rsplit_once(" = ")
            .map_or("", |(_, r)| r.split(' ').next().unwrap_or(""));
        let arg = |i: usize| {
            call[open + 1..]
                .split(", ")
                .nth(i)
                .unwrap_or("")
                .trim_matches('"')
        };
        let mut text = call
            .rsplit_once(" = ")
            .map_or(call, |(c, _)| c.trim_end())
            .to_string();
        if name == "openat" && ret.parse::<i32>().is_ok() {
            fds.insert((pid, ret.to_string()), arg(1).to_string());
        } else if let Some(path) = fds.get(&(pid, arg(0).to_string())) {
            if ["write", "read", "close"].contains(&name.as_str()) {
                text.push_str(&format!(" → {path}"));
            }
        }
        calls.push(Call {
            name,
            text,
            secs,
            child: pid != runtime,
            outlived,
        });
    }
    calls
}

/// System calls that wait for another process rather than do work.
const WAITS: &[&str] = &[
    "recvmsg",
    "recvfrom",
    "wait4",
    "waitid",
    "poll",
    "ppoll",
    "epoll_wait",
    "epoll_pwait",
    "futex",
];

/// Where chapter 12's time goes: `strace -f -T` of one create, start and
/// delete, per system call, the waits apart.
fn strace_table(rt: &Runtime, bundle: &Path) -> Result<String> {
    if !on_path("strace") {
        return Ok("\nstrace is not installed: no breakdown of chapter 12's time.\n".into());
    }
    let _subreaper = Subreaper::new()?;
    let id = "stepbox-bench-strace";
    let out = |phase: &str| bundle.join(format!("strace-{phase}.txt"));
    let strace = |phase: &str| -> Vec<String> {
        let mut v: Vec<String> = ["strace", "-f", "-T", "-q", "-o"]
            .map(String::from)
            .to_vec();
        v.push(out(phase).display().to_string());
        v
    };
    // create under strace -f follows the container's process too, so
    // strace returns only after it has run: wait instead for create
    // itself, strace's child, to be gone.
    let pid_file = bundle.join(format!("{id}.pid"));
    let mut argv = strace("create");
    argv.extend(rt.cmd(&[
        "create",
        "--bundle",
        &bundle.display().to_string(),
        "--pid-file",
        &pid_file.display().to_string(),
        id,
    ]));
    let mut tracer = command(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting strace")?;
    let children = format!("/proc/{0}/task/{0}/children", tracer.id());
    let t = Instant::now();
    loop {
        let kids = std::fs::read_to_string(&children).unwrap_or_default();
        if kids.trim().is_empty() && pid_file.exists() {
            break;
        }
        if let Some(status) = tracer.try_wait()? {
            bail!("strace of {} create ended early ({status})", rt.name);
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = tracer.kill();
            bail!("strace of {} create: no container after 10 s", rt.name);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut argv = strace("start");
    argv.extend(rt.cmd(&["start", id]));
    measure(&argv)?;
    let status = tracer.wait()?;
    if !status.success() {
        bail!("{} create under strace failed ({status})", rt.name);
    }
    reap_strays();
    let mut argv = strace("delete");
    argv.extend(rt.cmd(&["delete", id]));
    measure(&argv)?;

    #[derive(Default)]
    struct Sum {
        calls: [u64; 3],
        secs: f64,
        child: f64,
        longest: f64,
    }
    impl Sum {
        fn add(&mut self, phase: usize, c: &Call) {
            self.calls[phase] += 1;
            self.secs += c.secs;
            if c.child {
                self.child += c.secs;
            }
            self.longest = self.longest.max(c.secs);
        }
        fn row(&self, label: &str) -> String {
            let [c, s, d] = self.calls;
            format!(
                "| {label} | {c} + {s} + {d} | {:.2} ms | {:.2} ms | {:.2} ms |\n",
                self.secs * 1e3,
                self.child * 1e3,
                self.longest * 1e3
            )
        }
    }
    let mut work: std::collections::BTreeMap<String, Sum> = Default::default();
    let (mut for_start, mut waits, mut all) = (Sum::default(), Sum::default(), Sum::default());
    let mut wait_names = std::collections::BTreeSet::new();
    let mut longest: Vec<(f64, String, bool)> = Vec::new();
    for (phase, name) in ["create", "start", "delete"].into_iter().enumerate() {
        let log = std::fs::read_to_string(out(name))?;
        for c in parse_strace(&log) {
            all.add(phase, &c);
            if c.outlived {
                for_start.add(phase, &c);
            } else if WAITS.contains(&c.name.as_str()) {
                waits.add(phase, &c);
                wait_names.insert(c.name.clone());
            } else {
                work.entry(c.name.clone()).or_default().add(phase, &c);
                longest.push((c.secs, c.text.clone(), c.child));
            }
        }
    }
    let mut rows: Vec<(String, Sum)> = work.into_iter().collect();
    rows.sort_by(|a, b| b.1.secs.total_cmp(&a.1.secs));
    let mut t = String::from(
        "\n| where `ch12-oci`'s time goes: `strace -f -T` | calls: create + start + delete | in the calls | of which the container's process | longest call |\n|---|---:|---:|---:|---:|\n",
    );
    let shown = 12;
    let mut rest = Sum::default();
    for (i, (name, s)) in rows.iter().enumerate() {
        if i < shown {
            t.push_str(&s.row(&format!("`{name}`")));
        } else {
            for p in 0..3 {
                rest.calls[p] += s.calls[p];
            }
            rest.secs += s.secs;
            rest.child += s.child;
            rest.longest = rest.longest.max(s.longest);
        }
    }
    if rows.len() > shown {
        t.push_str(&rest.row(&format!("{} other system calls", rows.len() - shown)));
    }
    t.push_str(&waits.row(&format!(
        "waiting for the other process ({})",
        wait_names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    )));
    t.push_str(&for_start.row("the container's process waiting for `start`"));
    t.push_str(&all.row("all"));
    longest.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut top = String::new();
    for (secs, text, child) in longest.iter().take(3) {
        let mut text = text.clone();
        if text.chars().count() > 90 {
            text = text.chars().take(90).collect::<String>() + "…";
        }
        top.push_str(&format!(
            "\n- {:.2} ms: `{text}`{}",
            secs * 1e3,
            if *child {
                " (the container's process)"
            } else {
                ""
            }
        ));
    }
    t.push_str(&format!(
        "\nOne create+start+delete of the same bundle under `strace -f -T` (the time in each call, \
         the container's process followed until `/bin/true` exits). strace slows every call \
         down: compare the rows with one another, not with the table above. The waits are \
         apart: the runtime waiting for its container's process and back, and the container's \
         process blocked in the exec FIFO until `start` (which the bench runs as soon as \
         `create` has exited). The longest calls:\n{top}\n"
    ));
    Ok(t)
}

/// The section between its markers.
pub fn block(section: &str) -> String {
    format!("{BEGIN}\n\n{}\n\n{END}\n", section.trim_matches('\n'))
}

/// `text` with the OCI section (between [`BEGIN`] and [`END`]) replaced by
/// `section`, or, if it has none, with it inserted before the last
/// paragraph (the "Measured with" line).
pub fn splice(text: &str, section: &str) -> String {
    let block = block(section);
    if let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) {
        if b < e {
            let after = &text[e + END.len()..];
            return format!(
                "{}{block}{}",
                &text[..b],
                after.strip_prefix('\n').unwrap_or(after)
            );
        }
    }
    match text.trim_end().rfind("\n\n") {
        Some(i) => format!("{}\n\n{block}\n{}", &text[..i], text[i + 2..].trim_start()),
        None => format!("{}\n\n{block}", text.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_calls_resumed_descriptors_named_waits_for_start() {
        let log = "100 openat(AT_FDCWD, \"/sys/fs/cgroup/pids/x/cgroup.procs\", O_WRONLY) = 6 <0.000073>\n\
                   100 write(6, \"101\", 3 <unfinished ...>\n\
                   101 openat(AT_FDCWD, \"/proc/self/fd/3\", O_WRONLY|O_CLOEXEC <unfinished ...>\n\
                   100 <... write resumed>)              = 3 <0.009564>\n\
                   100 exit_group(0)                     = ?\n\
                   100 +++ exited with 0 +++\n\
                   101 <... openat resumed>)             = 4 <0.432016>\n\
                   101 --- SIGCHLD {si_signo=SIGCHLD} ---\n";
        let calls = parse_strace(log);
        assert_eq!(calls.len(), 3, "{calls:#?}");
        assert_eq!(calls[1].name, "write");
        assert_eq!(
            calls[1].text,
            "write(6, \"101\", 3) → /sys/fs/cgroup/pids/x/cgroup.procs"
        );
        assert_eq!(calls[1].secs, 0.009564);
        assert!(!calls[1].child && !calls[1].outlived);
        assert_eq!(calls[2].name, "openat");
        assert!(calls[2].child && calls[2].outlived, "{:?}", calls[2]);
    }

    #[test]
    fn the_section_replaces_its_old_self_or_goes_before_the_last_line() {
        let fresh = splice("| a |\n\n| b |\n\nMeasured with x.\n", "| oci |\n");
        assert_eq!(
            fresh,
            format!("| a |\n\n| b |\n\n{BEGIN}\n\n| oci |\n\n{END}\n\nMeasured with x.\n")
        );
        let again = splice(&fresh, "\n| oci 2 |\n");
        assert_eq!(
            again,
            format!("| a |\n\n| b |\n\n{BEGIN}\n\n| oci 2 |\n\n{END}\n\nMeasured with x.\n")
        );
    }

    #[test]
    fn targets_against_crun_and_runc() {
        assert_eq!(verdict(1.0, Some(2.0), Some(3.0), true).2, "yes");
        assert_eq!(
            verdict(2.0, Some(1.0), Some(3.0), true).2,
            "no (> 1.0× crun, > 0.4× runc)"
        );
        assert_eq!(verdict(2.0, Some(3.0), Some(3.0), false).2, "yes");
        assert_eq!(verdict(2.0, None, None, true).2, "–");
        assert_eq!(verdict(1.0, Some(4.0), None, true).0, "0.25×");
    }
}
