//! `cargo xtask <command>`: build helpers for stepbox.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  rootfs [--out DIR] [--force]
      build the default root file system (busybox, probe, /etc) into DIR,
      default <target>/stepbox/rootfs; skipped when already up to date
      unless --force. Prints the rootfs path on stdout.
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("rootfs") => rootfs(args),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
        None => bail!("no command given\n{USAGE}"),
    }
}

fn rootfs(mut args: impl Iterator<Item = String>) -> Result<()> {
    let mut out = xtask::paths::default_rootfs();
    let mut force = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => match args.next() {
                Some(dir) => out = PathBuf::from(dir),
                None => bail!("--out needs a directory"),
            },
            "--force" => force = true,
            other => bail!("rootfs: unknown argument {other:?}\n{USAGE}"),
        }
    }
    let path = if force {
        xtask::rootfs::build(&out)?
    } else {
        xtask::rootfs::ensure(&out)?
    };
    println!("{}", path.display());
    Ok(())
}
