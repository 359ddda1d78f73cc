//! `probe [SECTION...]`: print what this process sees, one section per
//! kernel feature. See the crate documentation for the format.

use std::io::Write;
use std::process::ExitCode;

use stepbox_probe::sections::{self, Section};
use stepbox_probe::Report;

fn usage() -> String {
    let names: Vec<&str> = sections::ALL.iter().map(|s| s.name).collect();
    format!(
        "usage: probe [SECTION...]\n\
         sections: {}\n\
         default: {}\n",
        names.join(" "),
        sections::DEFAULT.join(" ")
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
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
    let mut out = std::io::stdout().lock();
    match out.write_all(report.as_str().as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
