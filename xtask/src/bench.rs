//! `cargo xtask bench`: what each chapter costs, side by side with the floor
//! (util-linux's `unshare` + `chroot` doing the same namespaces by hand).
//!
//! Each case runs `/bin/true` from the default rootfs. The cases are run in
//! turns (case 1, case 2, ..., case 1, ...) so that background load hits all
//! of them alike; medians are reported, and the ratio to the floor. Wall time
//! doubles on a loaded machine while CPU time stays put: compare within one run.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod oci;

struct Case {
    name: String,
    /// The `--against` build's run of the case before it.
    twin: bool,
    argv: Vec<String>,
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    max_rss_kb: i64,
}

impl Case {
    fn new(name: &str, argv: Vec<String>) -> Case {
        Case {
            name: name.into(),
            twin: false,
            argv,
            wall: vec![],
            cpu: vec![],
            max_rss_kb: 0,
        }
    }
}

/// Chapter binaries in `dir`, sorted: ch01-process, ch02-pid, ...
fn chapters(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with("ch")
                && n.as_bytes()
                    .get(2..4)
                    .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        })
        .filter(|n| !n.contains('.') && !n.ends_with(".d"))
        .collect();
    names.sort();
    Ok(names)
}

/// Extra arguments a chapter needs to run `/bin/true` from the rootfs (or,
/// from chapter 8 on, from the default image), by chapter number.
fn chapter_args(number: u32, rootfs: &Path, layers: &[PathBuf]) -> Vec<String> {
    let r = rootfs.display().to_string();
    match number {
        1..=4 => vec!["--".into(), format!("{r}/bin/true")],
        5..=7 => vec!["--rootfs".into(), r, "--".into(), "/bin/true".into()],
        _ => {
            let mut args = Vec::new();
            for l in layers {
                args.push("--layer".into());
                args.push(l.display().to_string());
            }
            args.extend(["--".into(), "/bin/true".into()]);
            args
        }
    }
}

/// The chapters whose binary runs a command given after `--` (chapter 12
/// is an OCI runtime instead: [`oci`]).
const LAST_COMMAND_LINE_CHAPTER: u32 = 11;

/// What `--only` can measure by itself.
pub const SECTIONS: &[&str] = &["oci"];

pub fn run(
    runs: usize,
    write: Option<PathBuf>,
    against: Option<PathBuf>,
    only: Option<String>,
) -> Result<()> {
    let root = crate::paths::workspace_root();
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--release", "--quiet"])
        .current_dir(&root);
    match only.as_deref() {
        Some("oci") => {
            crate::step("building chapter 12 (release)");
            cargo.args(["--package", "ch12-oci", "--bins"]);
        }
        Some(other) => bail!("--only {other}: the sections are {}", SECTIONS.join(", ")),
        None => {
            crate::step("building the chapters (release)");
            // chapter 10's measurements of seccomp itself
            cargo.args(["--workspace", "--bins", "--example", "filter_cost"]);
        }
    }
    if !cargo.status()?.success() {
        bail!("cargo build --release failed");
    }
    let rootfs = crate::rootfs::ensure(&crate::paths::default_rootfs())?;
    let release = crate::paths::target_dir().join("release");
    if only.is_some() {
        // Only chapter 12's section, put in place of its old self in FILE.
        let section = oci::section(&release, &rootfs, runs)?;
        print!("{}", oci::block(&section));
        if let Some(path) = write {
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            std::fs::write(&path, oci::splice(&old, &section))
                .with_context(|| format!("writing {}", path.display()))?;
            crate::step(format!("wrote the section into {}", path.display()));
        }
        return Ok(());
    }
    let image = crate::image::ensure()?;
    // Chapter 8 keeps unpacked layers in a state dir: a fresh one, whose
    // cache the warm-up rounds fill.
    let state = tempdir("stepbox-bench-state")?;
    let r = rootfs.display().to_string();

    let mut cases = vec![Case::new(
        "floor: `unshare --fork --pid --net --ipc --mount --uts --mount-proc chroot ROOTFS /bin/true`",
        ["unshare", "--fork", "--pid", "--net", "--ipc", "--mount", "--uts", "--mount-proc", "chroot", &r, "/bin/true"]
            .map(String::from)
            .to_vec(),
    )];
    let old = match &against {
        Some(dir) => chapters(dir)?,
        None => Vec::new(),
    };
    for name in chapters(&release)? {
        let number: u32 = name[2..4].parse()?;
        if number > LAST_COMMAND_LINE_CHAPTER {
            continue;
        }
        let mut args = Vec::new();
        if number >= 8 {
            args.extend(["--state-dir".to_string(), state.display().to_string()]);
        }
        args.extend(chapter_args(number, &rootfs, &image));
        let mut argv = vec![release.join(&name).display().to_string()];
        argv.extend(args.iter().cloned());
        cases.push(Case::new(&format!("`{name}`"), argv));
        // The same chapter from the other build, in the same rounds: a
        // comparison that a busy machine skews for both alike.
        if let (Some(dir), true) = (&against, old.contains(&name)) {
            let mut argv = vec![dir.join(&name).display().to_string()];
            argv.extend(args);
            let mut twin = Case::new(&format!("`{name}` (`--against`)"), argv);
            twin.twin = true;
            cases.push(twin);
        }
    }

    crate::step(format!(
        "running {} cases x {runs} runs, in turns",
        cases.len()
    ));
    for round in 0..runs + 3 {
        for i in run_order(&cases, round) {
            let case = &mut cases[i];
            let (wall, cpu) = measure(&case.argv)?;
            if round >= 3 {
                // the first rounds warm the page cache
                case.wall.push(wall);
                case.cpu.push(cpu);
            }
        }
    }

    // Peak RSS in a pass of its own, through GNU time: wait4(2) from this
    // process would count the pages of the fork(2)ed copy of the xtask itself.
    for case in cases.iter_mut() {
        for _ in 0..3 {
            case.max_rss_kb = case.max_rss_kb.max(peak_rss_kb(&case.argv)?);
        }
    }

    let rows: Vec<Row> = cases
        .iter_mut()
        .map(|case| Row {
            name: case.name.clone(),
            twin: case.twin,
            wall_ms: ms(median(&mut case.wall)),
            cpu_ms: ms(median(&mut case.cpu)),
            rss_mb: case.max_rss_kb as f64 / 1024.0,
        })
        .collect();
    let mut table = main_table(&rows);
    table.push_str(&layer_table(&release, &image, runs)?);
    if release.join("ch10-seccomp").exists() {
        let mut args = vec!["--state-dir".to_string(), state.display().to_string()];
        args.extend(chapter_args(10, &rootfs, &image));
        table.push_str(&seccomp_table(&release, &args, runs)?);
    }
    let _ = std::fs::remove_dir_all(&state);
    if release.join("ch12-oci").exists() {
        table.push('\n');
        table.push_str(&oci::block(&oci::section(&release, &rootfs, runs)?));
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    table.push_str(&format!(
        "\nMeasured with `cargo xtask bench --runs {runs}{}`: Linux {}, {cpus} CPUs, release build, medians of {runs} runs.\n",
        against.as_ref().map_or(String::new(), |d| format!(" --against {}", d.display())),
        kernel.trim()
    ));
    print!("{table}");
    if let Some(path) = write {
        std::fs::write(&path, &table).with_context(|| format!("writing {}", path.display()))?;
        crate::step(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// One case's medians, for the main table.
struct Row {
    name: String,
    twin: bool,
    wall_ms: f64,
    cpu_ms: f64,
    rss_mb: f64,
}

/// The main table, the floor first. Each chapter's Δ columns are what it
/// adds to the chapter before it, in the same build (an `--against` twin
/// against the twin before it): the cost of the one step it adds.
fn main_table(rows: &[Row]) -> String {
    let mut table = String::from(
        "| `/bin/true` in a container | median wall | Δ wall | median CPU | Δ CPU | peak RSS | wall ÷ floor |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    let delta = |now: f64, before: Option<&Row>, of: fn(&Row) -> f64| match before {
        Some(b) => {
            // The difference of the two medians as shown, in tenths of a
            // millisecond: a reader who subtracts them finds the same.
            let tenths = (now * 10.0).round() as i64 - (of(b) * 10.0).round() as i64;
            let shown = format!("{}.{} ms", tenths.abs() / 10, tenths.abs() % 10);
            match tenths {
                t if t > 0 => format!("+{shown}"),
                t if t < 0 => format!("−{shown}"),
                _ => shown,
            }
        }
        None => String::new(),
    };
    let floor = rows.first().map_or(f64::NAN, |r| r.wall_ms);
    for (i, row) in rows.iter().enumerate() {
        // The floor (row 0) and the first chapter have nothing before them.
        let before = rows[1..i.max(1)].iter().rev().find(|r| r.twin == row.twin);
        table.push_str(&format!(
            "| {} | {:.1} ms | {} | {:.1} ms | {} | {:.1} MB | {:.2}× |\n",
            row.name,
            row.wall_ms,
            delta(row.wall_ms, before, |r| r.wall_ms),
            row.cpu_ms,
            delta(row.cpu_ms, before, |r| r.cpu_ms),
            row.rss_mb,
            row.wall_ms / floor
        ));
    }
    table
}

/// The order of the cases in `round`: as listed, except that a case and its
/// `--against` twin swap places every other round. The second of two runs
/// in a row can be the faster for the first one's sake (a cgroup write
/// after another skips the kernel's wait for an RCU grace period), and
/// each build must get that as often as the other.
fn run_order(cases: &[Case], round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cases.len()).collect();
    if round % 2 == 1 {
        for (i, case) in cases.iter().enumerate().skip(1) {
            if case.twin {
                order.swap(i - 1, i);
            }
        }
    }
    order
}

/// A new empty directory under the system's temp dir.
fn tempdir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Chapter 8's costs: unpacking a layer, and stacks of 1, 10 and 50 layers.
fn layer_table(release: &Path, image: &[PathBuf], runs: usize) -> Result<String> {
    let ch08 = release.join("ch08-overlay").display().to_string();
    let work = tempdir("stepbox-bench-layers")?;
    // 49 tiny layers of one file each, to stack on the busybox layer.
    let mut tiny = Vec::new();
    for i in 1..50 {
        let dir = work.join(format!("tiny-{i}"));
        std::fs::create_dir_all(dir.join("etc"))?;
        std::fs::write(dir.join(format!("etc/layer-{i}")), format!("{i}\n"))?;
        let tar = work.join(format!("tiny-{i}.tar"));
        crate::image::tar_dir(&dir, &tar)?;
        tiny.push(tar);
    }
    let run_with = |layers: &[PathBuf], state: &Path| -> Vec<String> {
        let mut argv = vec![
            ch08.clone(),
            "--state-dir".into(),
            state.display().to_string(),
        ];
        for l in layers {
            argv.extend(["--layer".to_string(), l.display().to_string()]);
        }
        argv.extend(["--".into(), "/bin/true".into()]);
        argv
    };
    let mut out =
        String::from("\n| chapter 8, layers | median wall | median CPU |\n|---|---:|---:|\n");
    // Unpacking: a run with an empty layer cache, less a run with a full one.
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for i in 0..runs.min(10) {
        let state = work.join(format!("state-cold-{i}"));
        let argv = run_with(&image[..1], &state);
        cold.push(measure(&argv)?.0);
        warm.push(measure(&argv)?.0);
        std::fs::remove_dir_all(&state)?;
    }
    let unpack = median(&mut cold).saturating_sub(median(&mut warm));
    out.push_str(&format!(
        "| unpack the busybox layer (first run − cached run) | {:.1} ms | |\n",
        ms(unpack)
    ));
    let state = work.join("state");
    for n in [1usize, 10, 50] {
        let mut layers = vec![image[0].clone()];
        layers.extend(tiny.iter().take(n - 1).cloned());
        let argv = run_with(&layers, &state);
        measure(&argv)?; // fills the cache
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (w, c) = measure(&argv)?;
            wall.push(w);
            cpu.push(c);
        }
        out.push_str(&format!(
            "| `ch08-overlay` with a stack of {n} layer{} (cached) | {:.1} ms | {:.1} ms |\n",
            if n == 1 { "" } else { "s" },
            ms(median(&mut wall)),
            ms(median(&mut cpu))
        ));
    }
    std::fs::remove_dir_all(&work)?;
    Ok(out)
}

/// Chapter 10's costs: compiling and loading a filter, a system call
/// under one (the `filter_cost` example measures them: a filter cannot be
/// taken off a process, and this one has a benchmark to finish), and a
/// start with docker's profile against one without a filter.
fn seccomp_table(release: &Path, args: &[String], runs: usize) -> Result<String> {
    let example = release.join("examples/filter_cost");
    let out = command(&[example.display().to_string()])
        .args(["--runs", &runs.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", example.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", example.display(), out.status);
    }
    let costs = parse_costs(&String::from_utf8_lossy(&out.stdout));
    let cost = |key: &str| {
        costs
            .get(key)
            .copied()
            .with_context(|| format!("filter_cost printed no {key}"))
    };

    // The same start with and without the filter, in turns that swap
    // their order every other round (run_order), after warm-up rounds.
    let ch10 = release.join("ch10-seccomp").display().to_string();
    let mut docker = vec![ch10.clone()];
    docker.extend(args.iter().cloned());
    let mut unconfined = vec![ch10, "--security-opt".into(), "seccomp=unconfined".into()];
    unconfined.extend(args.iter().cloned());
    let mut cases = vec![
        Case::new("docker's profile", docker),
        Case::new("unconfined", unconfined),
    ];
    cases[1].twin = true;
    for round in 0..runs + 3 {
        for i in run_order(&cases, round) {
            let (wall, cpu) = measure(&cases[i].argv)?;
            if round >= 3 {
                cases[i].wall.push(wall);
                cases[i].cpu.push(cpu);
            }
        }
    }
    let [(dw, dc), (uw, uc)] = [0, 1].map(|i| {
        let case = &mut cases[i];
        (median(&mut case.wall), median(&mut case.cpu))
    });

    let mut t = String::from("\n| chapter 10, seccomp | median |\n|---|---:|\n");
    t.push_str(&format!(
        "| compile docker's default profile ({} instructions) | {:.0} µs |\n",
        cost("insns")?,
        cost("compile_us")?
    ));
    t.push_str(&format!(
        "| load it (seccomp(2)) | {:.0} µs |\n",
        cost("load_default_us")?
    ));
    t.push_str(&format!(
        "| load the tiny filter ({} instructions) | {:.0} µs |\n",
        cost("tiny_insns")?,
        cost("load_tiny_us")?
    ));
    for (call, key) in [
        ("getppid(2)", "getppid"),
        ("personality(0xffffffff)", "personality"),
    ] {
        for (under, filter) in [
            ("without a filter", "none"),
            ("under the tiny filter", "tiny"),
            ("under docker's profile", "default"),
        ] {
            t.push_str(&format!(
                "| {call} {under} | {:.0} ns |\n",
                cost(&format!("{key}_{filter}_ns"))?
            ));
        }
    }
    t.push_str(&format!(
        "| `ch10-seccomp` (docker's profile) | {:.1} ms wall, {:.1} ms CPU |\n",
        ms(dw),
        ms(dc)
    ));
    t.push_str(&format!(
        "| `ch10-seccomp --security-opt seccomp=unconfined` | {:.1} ms wall, {:.1} ms CPU |\n",
        ms(uw),
        ms(uc)
    ));
    // The kernel's mitigation of speculative store bypass, which a filter
    // can turn on for its process (the book's benchmark page).
    let ssb = std::fs::read_to_string("/sys/devices/system/cpu/vulnerabilities/spec_store_bypass")
        .unwrap_or_else(|_| "unknown".into());
    t.push_str(&format!(
        "\nSpeculative store bypass (`/sys/devices/system/cpu/vulnerabilities/spec_store_bypass`): {}.\n",
        ssb.trim()
    ));
    Ok(t)
}

/// `key value` lines, as the `filter_cost` example prints them.
fn parse_costs(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `/usr/bin/time -f %M`: the largest RSS of the process and its descendants, in KiB.
/// Its report goes to a file, not a pipe: a container's process that
/// outlives the runtime (chapter 12's `create`) would hold a pipe open.
fn peak_rss_kb(argv: &[String]) -> Result<i64> {
    let report = std::env::temp_dir().join(format!("stepbox-bench-rss-{}", std::process::id()));
    let status = command(&["/usr/bin/time".to_string()])
        .arg("-o")
        .arg(&report)
        .arg("-f")
        .arg("%M")
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("running /usr/bin/time, which measures peak memory: use scripts/bench.sh, which installs it (or apt-get install time)")?;
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    if !status.success() {
        bail!("{} failed under /usr/bin/time ({status})", argv.join(" "));
    }
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("unexpected output of /usr/bin/time: {text}"))
}

/// `argv` as a command to measure. Without `cargo run`'s LD_LIBRARY_PATH
/// (target/debug/deps, the toolchain's lib), which would have the dynamic
/// loader look for each shared library in those directories first.
fn command(argv: &[String]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Wall time and CPU time (user + system, the whole process tree) of one run.
fn measure(argv: &[String]) -> Result<(Duration, Duration)> {
    measure_split(argv).map(|(wall, user, system)| (wall, user + system))
}

/// Wall time, user and system time (the whole process tree) of one run.
fn measure_split(argv: &[String]) -> Result<(Duration, Duration, Duration)> {
    let start = Instant::now();
    let child = command(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", argv[0]))?;
    let pid = child.id() as libc::pid_t;
    // A watchdog: a hung case must not hang the benchmark.
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        // SAFETY: kill(2) takes integers only; at worst the pid is gone.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    drop(watchdog); // detached; harmless once the pid is reaped and the run is over
    let mut status = 0;
    // SAFETY: rusage is plain old data; all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4(2) returns the child's resource usage, including its reaped descendants.
    // SAFETY: `status` and `usage` are valid for writing for the call.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let wall = start.elapsed();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{} failed (wait status {status:#x})", argv.join(" "));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((wall, tv(usage.ru_utime), tv(usage.ru_stime)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_cost_lines_are_keys_and_numbers() {
        let costs = parse_costs("insns 1838\nflags 0x0\ncompile_us 361.0\n\nbad\n");
        assert_eq!(costs.get("insns"), Some(&1838.0));
        assert_eq!(costs.get("compile_us"), Some(&361.0));
        assert_eq!(
            costs.len(),
            2,
            "0x0 and a line without a value are no numbers"
        );
    }

    #[test]
    fn each_chapter_is_compared_with_the_one_before_in_its_own_build() {
        let row = |name: &str, twin, wall_ms, cpu_ms| Row {
            name: name.into(),
            twin,
            wall_ms,
            cpu_ms,
            rss_mb: 2.0,
        };
        let rows = [
            row("floor", false, 4.0, 3.0),
            row("ch01", false, 2.0, 1.5),
            row("ch01 old", true, 2.5, 1.5),
            row("ch02", false, 2.6, 1.44),
            row("ch02 old", true, 2.4, 1.5),
        ];
        let table = main_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "| floor | 4.0 ms |  | 3.0 ms |  | 2.0 MB | 1.00× |"
        );
        assert_eq!(
            lines[3],
            "| ch01 | 2.0 ms |  | 1.5 ms |  | 2.0 MB | 0.50× |"
        );
        assert_eq!(
            lines[4],
            "| ch01 old | 2.5 ms |  | 1.5 ms |  | 2.0 MB | 0.62× |"
        );
        assert_eq!(
            lines[5],
            "| ch02 | 2.6 ms | +0.6 ms | 1.4 ms | −0.1 ms | 2.0 MB | 0.65× |"
        );
        assert_eq!(
            lines[6],
            "| ch02 old | 2.4 ms | −0.1 ms | 1.5 ms | 0.0 ms | 2.0 MB | 0.60× |"
        );
    }

    #[test]
    fn twins_swap_places_every_other_round() {
        let mut cases: Vec<Case> = ["floor", "a", "a-old", "b", "c", "c-old"]
            .iter()
            .map(|n| Case::new(n, vec![]))
            .collect();
        cases[2].twin = true;
        cases[5].twin = true;
        assert_eq!(run_order(&cases, 0), [0, 1, 2, 3, 4, 5]);
        assert_eq!(run_order(&cases, 1), [0, 2, 1, 3, 5, 4]);
        assert_eq!(run_order(&cases, 2), [0, 1, 2, 3, 4, 5]);
    }
}
