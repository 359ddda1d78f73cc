//! The probe piece: `stepbox-probe`'s binaries, linked statically so that
//! they run in any rootfs, even one without /lib.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::{elf, paths, step};

pub const PACKAGE: &str = "stepbox-probe";
/// glibc can be linked statically (there is no musl target here). Static
/// glibc cannot load NSS modules, so the probe must not look up users or
/// host names by name; it does not.
pub const RUSTFLAGS: &str = "-C target-feature=+crt-static";
/// The binaries, as named in the rootfs's /bin.
pub const BINARIES: &[&str] = &["probe", "chroot-escape"];

/// The probe crate's directory.
pub fn crate_dir() -> PathBuf {
    paths::workspace_root().join("crates/probe")
}

/// Paths of the built static binaries.
#[derive(Debug, Clone)]
pub struct ProbeBinaries {
    pub dir: PathBuf,
}

impl ProbeBinaries {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The host's target triple (`x86_64-unknown-linux-gnu`,
/// `aarch64-unknown-linux-gnu`...), from the `host:` line of `rustc -vV`.
/// It is given to cargo with `--target` although it is the default: with
/// `--target`, RUSTFLAGS apply only to the target's code and not to build
/// scripts, which must stay dynamic.
pub fn host_target() -> Result<String> {
    // The rustc cargo would use: $RUSTC, else the one on PATH (under rustup,
    // the toolchain cargo runs with, since rustup exports it to children).
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .current_dir(paths::workspace_root())
        .output()
        .with_context(|| format!("running {} -vV", rustc.to_string_lossy()))?;
    ensure!(
        output.status.success(),
        "{} -vV failed: {}",
        rustc.to_string_lossy(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    parse_host(&text)
        .map(str::to_owned)
        .with_context(|| format!("no `host:` line in {} -vV", rustc.to_string_lossy()))
}

/// The triple on the `host: TRIPLE` line of `rustc -vV`'s output.
fn parse_host(rustc_vv: &str) -> Option<&str> {
    rustc_vv
        .lines()
        .find_map(|line| line.strip_prefix("host:"))
        .map(str::trim)
        .filter(|triple| !triple.is_empty() && !triple.contains(char::is_whitespace))
}

/// `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release
/// -p stepbox-probe --target HOST`, in `<target>/static`, then check that
/// every binary is static. HOST is [`host_target`].
pub fn build_static() -> Result<ProbeBinaries> {
    let target = host_target()?;
    let target_dir = paths::static_target_dir();
    step(format_args!(
        "probe: cargo build --release (static) into {}",
        target_dir.display()
    ));
    // `cargo xtask` and `cargo test` set CARGO to the cargo that runs them.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            &target,
            "-p",
            PACKAGE,
        ])
        .arg("--manifest-path")
        .arg(crate_dir().join("Cargo.toml"))
        .current_dir(paths::workspace_root())
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        // Would take precedence over RUSTFLAGS if inherited.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .context("running cargo")?;
    ensure!(
        output.status.success(),
        "building {PACKAGE} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bins = ProbeBinaries {
        dir: target_dir.join(&target).join("release"),
    };
    for name in BINARIES {
        let path = bins.path(name);
        ensure!(
            elf::is_static(&path)?,
            "{} is dynamically linked despite {RUSTFLAGS}",
            path.display()
        );
    }
    Ok(bins)
}

/// Copy the binaries into `dir/bin` (which is created if needed).
pub fn layout(dir: &Path, bins: &ProbeBinaries) -> Result<()> {
    step(format_args!(
        "probe: copying {} into /bin",
        BINARIES.join(", ")
    ));
    let bin = dir.join("bin");
    crate::rootfs::create_dir(&bin, 0o755)?;
    for name in BINARIES {
        let (from, to) = (bins.path(name), bin.join(name));
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_host;

    #[test]
    fn host_line_of_rustc_vv() {
        let x86 = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
                   commit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\n\
                   host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(parse_host(x86), Some("x86_64-unknown-linux-gnu"));
        let arm = "rustc 1.89.0\nhost: aarch64-unknown-linux-gnu\n";
        assert_eq!(parse_host(arm), Some("aarch64-unknown-linux-gnu"));
        assert_eq!(parse_host("rustc 1.89.0\nrelease: 1.89.0\n"), None);
        assert_eq!(parse_host("host: \n"), None);
    }
}
