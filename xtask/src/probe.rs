//! The probe piece: `stepbox-probe`'s binaries, linked statically so that
//! they run in any rootfs, even one without /lib.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::{elf, paths, step};

pub const PACKAGE: &str = "stepbox-probe";
/// The host triple, spelled out: with `--target`, RUSTFLAGS apply only to
/// the target's code and not to build scripts, which must stay dynamic.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
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

/// `RUSTFLAGS="-C target-feature=+crt-static" cargo build --release
/// -p stepbox-probe --target x86_64-unknown-linux-gnu`, in
/// `<target>/static`, then check that every binary is static.
pub fn build_static() -> Result<ProbeBinaries> {
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
            TARGET,
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
        dir: target_dir.join(TARGET).join("release"),
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
