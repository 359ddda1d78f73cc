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
  image
      build the default image for chapter 8 (three layer tarballs, with
      the default rootfs); prints their paths, bottom layer first.
  bench [--runs N] [--write FILE] [--against DIR] [--only oci]
      time /bin/true in each chapter's container (release build) next to
      `unshare ... chroot` as the floor, and chapter 8's layer costs; prints
      markdown tables (and writes them to FILE). With --against, the chapter
      binaries in DIR (another build, e.g. an older commit's
      target/release) run in the same rounds, each row under the new one.
      Chapter 12 runs side by side with crun and runc; --only oci measures
      that section alone and puts it in place of its old self in FILE.
      Needs root.
  demo NN [--pace enter|SECONDS] | demo list
      chapter NN's demo, live: its snapshot tests, each command shown
      before it runs, then whether all matches (the book: Giving a demo).
  lab start NN [--dir D]
      copy chapter NN with its essential bodies cut out (todo!()s with a
      hint) into D/NN-name, default labs/NN-name; never overwrites one.
  lab check NN|all [--dir D]
      build the lab D/NN-name in place of chapter NN and check the
      chapter's properties against it, in throwaway namespaces; prints
      a table, one line of advice per failure. `all`: every started lab.
      Needs root. Exit status 1 if a check fails.
  lab status [--dir D]
      each lab started in D and its last check.
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
        Some("bench") => bench(args),
        Some("demo") => xtask::demo::main(args),
        Some("lab") => lab(args),
        Some("image") => {
            for layer in xtask::image::ensure()? {
                println!("{}", layer.display());
            }
            Ok(())
        }
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

fn bench(mut args: impl Iterator<Item = String>) -> Result<()> {
    let (mut runs, mut write, mut against, mut only) = (30, None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--runs" => runs = value()?.parse()?,
            "--write" => write = Some(PathBuf::from(value()?)),
            "--against" => against = Some(PathBuf::from(value()?)),
            "--only" => only = Some(value()?),
            other => bail!("bench: unknown argument {other:?}\n{USAGE}"),
        }
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    if only.is_some() && against.is_some() {
        bail!("--only and --against do not go together");
    }
    xtask::bench::run(runs, write, against, only)
}

fn lab(mut args: impl Iterator<Item = String>) -> Result<()> {
    let what = args.next();
    let mut nn = None;
    let mut dir = xtask::lab::default_labs();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => match args.next() {
                Some(d) => dir = PathBuf::from(d),
                None => bail!("--dir needs a directory"),
            },
            other if nn.is_none() && !other.starts_with('-') => nn = Some(other.to_owned()),
            other => bail!("lab: unknown argument {other:?}\n{USAGE}"),
        }
    }
    match (what.as_deref(), nn.as_deref()) {
        (Some("start"), Some(nn)) => xtask::lab::start(nn, &dir).map(drop),
        (Some("check"), Some("all")) => {
            let labs = xtask::lab::started(&dir);
            if labs.is_empty() {
                bail!("no lab started in {}", dir.display());
            }
            let mut failed = 0;
            for (name, _) in labs {
                let nn = name.split('-').next().unwrap_or_default().to_owned();
                if !xtask::lab::check_lab(&nn, &dir)? {
                    failed += 1;
                }
            }
            if failed > 0 {
                bail!("{failed} lab(s) with a failing check");
            }
            Ok(())
        }
        (Some("check"), Some(nn)) => {
            if !xtask::lab::check_lab(nn, &dir)? {
                std::process::exit(1);
            }
            Ok(())
        }
        (Some("status"), None) => {
            print!("{}", xtask::lab::status(&dir));
            Ok(())
        }
        _ => bail!("lab: start NN, check NN|all or status\n{USAGE}"),
    }
}
