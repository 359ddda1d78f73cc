//! `probe [SECTION...]`: print what this process sees, one section per
//! kernel feature. See the crate documentation for the format.
//! `probe attempt NAME...`: try system calls that capabilities guard (see
//! `stepbox_probe::attempt`).

use std::io::Write;
use std::process::ExitCode;

use stepbox_probe::attempt;
use stepbox_probe::sections::{self, Section};
use stepbox_probe::Report;

fn usage() -> String {
    let names: Vec<&str> = sections::ALL.iter().map(|s| s.name).collect();
    format!(
        "usage: probe [SECTION...]\n\
         sections: {}\n\
         default: {}\n\
         {}",
        names.join(" "),
        sections::DEFAULT.join(" "),
        attempt_usage()
    )
}

fn attempt_usage() -> String {
    let width = attempt::ALL.iter().map(|a| a.name.len()).max().unwrap_or(0);
    let names: String = attempt::ALL
        .iter()
        .map(|a| format!("  {:width$}  {}\n", a.name, a.needs))
        .collect();
    format!(
        "usage: probe attempt NAME...   (one harmless system call each)\n\
         names, and what guards each:\n{names}"
    )
}

/// `probe attempt NAME...`: see [`attempt`]. Every name is checked before
/// any call is made; the exit status is 0 whatever the kernel answers.
fn run_attempts(names: &[String]) -> ExitCode {
    if names.is_empty() {
        eprint!("{}", attempt_usage());
        return ExitCode::from(2);
    }
    let mut chosen = Vec::new();
    for name in names {
        match attempt::find(name) {
            Some(a) => chosen.push(a),
            None => {
                eprint!("probe: unknown attempt {name:?}\n{}", attempt_usage());
                return ExitCode::from(2);
            }
        }
    }
    let mut report = Report::new();
    for a in chosen {
        report.kv(a.name, a.run());
    }
    write_out(&report)
}

fn write_out(report: &Report) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(report.as_str().as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `probe ipc-create KEY`: make a System V message queue, for the IPC
/// namespace demo (busybox has no `ipcmk`).
fn ipc_create(key: Option<&str>) -> ExitCode {
    let Some(key) = key.and_then(|k| i64::from_str_radix(k.trim_start_matches("0x"), 16).ok())
    else {
        eprintln!("usage: probe ipc-create KEY (hexadecimal, e.g. 0x5b0c4a12)");
        return ExitCode::from(2);
    };
    // SAFETY: msgget(2) takes integers only and touches no memory of ours.
    let id = unsafe { libc::msgget(key as libc::key_t, libc::IPC_CREAT | 0o600) };
    if id < 0 {
        eprintln!(
            "probe: msgget(2) key 0x{key:08x}: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::FAILURE;
    }
    println!("created message queue key 0x{key:08x} id {id}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }

    if args.first().map(String::as_str) == Some("ipc-create") {
        return ipc_create(args.get(1).map(String::as_str));
    }
    if args.first().map(String::as_str) == Some("attempt") {
        return run_attempts(&args[1..]);
    }

    // Check every name before printing anything, so that a typo does not
    // leave a half report behind.
    let names: Vec<&str> = if args.is_empty() {
        sections::DEFAULT.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let mut chosen: Vec<&Section> = Vec::new();
    for name in names {
        match sections::find(name) {
            Some(section) => chosen.push(section),
            None => {
                eprint!("probe: unknown section {name:?}\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }

    let mut report = Report::new();
    for section in chosen {
        (section.run)(&mut report);
    }
    write_out(&report)
}
