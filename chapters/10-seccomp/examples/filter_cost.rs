//! What a seccomp filter costs, for `cargo xtask bench`: compiling docker's
//! default profile, loading it (and the tiny filter) with seccomp(2), and
//! system calls under each.
//!
//! ```text
//! cargo run --release -q -p ch10-seccomp --example filter_cost -- --runs 30
//! ```
//!
//! Prints one `key value` line per result, medians: µs for compiling and
//! loading, ns for one system call. A filter stays on a process for good,
//! so every measurement that loads one runs in a forked child, which sends
//! its numbers back through a pipe and exits.

use ch10_seccomp::{bpf, compile, default, profile};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

/// System calls in one timed loop.
const CALLS: u32 = 1_000_000;
/// Timed loops per filter: each in a child of its own, in turns.
const LOOPS: usize = 5;

fn main() {
    if let Err(e) = run() {
        eprintln!("filter_cost: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let runs = runs()?;
    // What chapter 10's check() does at every start with docker's profile.
    let mut times = Vec::new();
    let mut docker = docker_filter()?; // faults the code in: not counted
    for _ in 0..runs {
        let start = Instant::now();
        docker = docker_filter()?;
        times.push(start.elapsed());
    }
    let tiny = compile::Filter {
        insns: bpf::tiny(),
        flags: 0,
    };
    println!("insns {}", docker.insns.len());
    // SECCOMP_FILTER_FLAG_*: docker's profile has none
    println!("flags {}", docker.flags);
    println!("tiny_insns {}", tiny.insns.len());
    println!("compile_us {:.1}", us(median(&mut times)));

    // Loading, in turns: docker's profile, then the tiny filter.
    let (mut load_docker, mut load_tiny) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        load_docker.push(in_child(|| Ok([time_load(&docker)?]))?[0]);
        load_tiny.push(in_child(|| Ok([time_load(&tiny)?]))?[0]);
    }
    println!("load_default_us {:.1}", us(median(&mut load_docker)));
    println!("load_tiny_us {:.1}", us(median(&mut load_tiny)));

    // System calls under no filter, the tiny filter, docker's profile, in
    // turns. getppid(2) is about the cheapest call there is (no argument,
    // no lock), so that its loop times the way into the kernel and out,
    // and the filter's part of it. personality(0xffffffff) only reads the
    // process's persona; docker's profile allows personality(2) for a
    // few values of its argument, a rule that no cache can decide from
    // the call's number alone (see the book's benchmark page).
    let filters = [
        ("none", None),
        ("tiny", Some(&tiny)),
        ("default", Some(&docker)),
    ];
    let mut per_call = vec![[Vec::new(), Vec::new()]; filters.len()];
    for _ in 0..LOOPS {
        for ((_, filter), times) in filters.iter().zip(per_call.iter_mut()) {
            let [getppid, personality] = in_child(|| {
                if let Some(f) = filter {
                    no_new_privs()?;
                    load(f)?;
                }
                Ok([
                    time_calls("getppid", || {
                        // SAFETY: getppid(2) has no arguments and cannot fail.
                        unsafe { libc::syscall(libc::SYS_getppid) }
                    })?,
                    time_calls("personality", || {
                        // SAFETY: personality(0xffffffff) changes nothing:
                        // it returns the persona.
                        unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffff_u64) }
                    })?,
                ])
            })?;
            times[0].push(getppid);
            times[1].push(personality);
        }
    }
    for ((name, _), [getppid, personality]) in filters.iter().zip(per_call.iter_mut()) {
        println!("getppid_{name}_ns {:.1}", per_call_ns(getppid));
        println!("personality_{name}_ns {:.1}", per_call_ns(personality));
    }
    Ok(())
}

/// The median loop's time, per call.
fn per_call_ns(loops: &mut [Duration]) -> f64 {
    median(loops).as_secs_f64() * 1e9 / f64::from(CALLS)
}

/// `--runs N` (30 if not given).
fn runs() -> Result<usize, String> {
    let mut args = std::env::args().skip(1);
    let mut runs = 30;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--runs wants a number above 0")?;
            }
            other => return Err(format!("unknown argument {other:?} (usage: --runs N)")),
        }
    }
    Ok(runs)
}

/// docker's default profile for docker's default capabilities, compiled
/// for this machine: as chapter 10 does it.
fn docker_filter() -> Result<compile::Filter, String> {
    let caps = ch09_privileges::caps::resolve(&[], &[])?;
    let oci = profile::resolve(&default::profile(), &profile::Target::here(caps.names()))?;
    compile::compile(&oci)
}

/// seccomp(2) SECCOMP_SET_MODE_FILTER, as chapter 10 loads it.
fn load(filter: &compile::Filter) -> Result<(), String> {
    filter.load().map_err(|e| format!("seccomp(2): {e}"))
}

/// The time of the seccomp(2) call alone: no_new_privs first, so that
/// loading needs no CAP_SYS_ADMIN and the time is the filter's.
fn time_load(filter: &compile::Filter) -> Result<Duration, String> {
    no_new_privs()?;
    let start = Instant::now();
    load(filter)?;
    Ok(start.elapsed())
}

fn no_new_privs() -> Result<(), String> {
    // SAFETY: prctl(2) with integer arguments only; it changes this
    // process's flag, nothing in memory.
    match unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(format!(
            "prctl(PR_SET_NO_NEW_PRIVS): {}",
            std::io::Error::last_os_error()
        )),
    }
}

/// The time of `CALLS` calls of `call`, after a few to warm up. A call the
/// filter refuses would time the refusal: it must succeed.
fn time_calls(what: &str, call: impl Fn() -> libc::c_long) -> Result<Duration, String> {
    if call() < 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    for _ in 0..10_000 {
        black_box(call());
    }
    let start = Instant::now();
    for _ in 0..CALLS {
        black_box(call());
    }
    Ok(start.elapsed())
}

/// Runs `f` in a forked child and returns what it measured. The child
/// sends nanoseconds through a pipe (none if it failed, with a message on
/// stderr), and leaves by _exit(2): this process's exit code is not its.
fn in_child<const N: usize>(
    f: impl FnOnce() -> Result<[Duration; N], String>,
) -> Result<[Duration; N], String> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2(2) writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2(2) has just opened both, and nothing else owns them.
    let (mut read_end, mut write_end) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: this program has one thread, so the child is a whole copy
    // of it and may allocate; it leaves by _exit(2) only.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = match f() {
            Ok(times) => {
                let bytes: Vec<u8> = times
                    .iter()
                    .flat_map(|d| (d.as_nanos() as u64).to_ne_bytes())
                    .collect();
                i32::from(write_end.write_all(&bytes).is_err())
            }
            Err(e) => {
                eprintln!("filter_cost (child): {e}");
                1
            }
        };
        // SAFETY: ends the child at once, without unwinding into the
        // parent's code or running its atexit handlers.
        unsafe { libc::_exit(code) }
    }
    // Our copy of the write end closed, the read ends when the child does.
    drop(write_end);
    let mut bytes = Vec::new();
    let read = read_end.read_to_end(&mut bytes);
    let mut status = 0;
    // SAFETY: waits for our own child, writing its status into `status`.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    if read.is_err() || bytes.len() != 8 * N || status != 0 {
        return Err(format!("the child failed (wait status {status:#x})"));
    }
    let mut times = [Duration::ZERO; N];
    for (t, b) in times.iter_mut().zip(bytes.chunks_exact(8)) {
        *t = Duration::from_nanos(u64::from_ne_bytes(b.try_into().unwrap()));
    }
    Ok(times)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
