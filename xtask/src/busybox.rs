//! The busybox piece: one static binary that provides a shell and the usual
//! tools, each applet reached through a symlink named after it.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::{elf, step};

/// Debian's busybox-static installs its binary here.
pub const HOST_BUSYBOX: &str = "/bin/busybox";
pub const DEBIAN_PACKAGE: &str = "busybox-static";

/// The host's static busybox, installed with apt-get when missing.
pub fn host_busybox() -> Result<PathBuf> {
    let path = PathBuf::from(HOST_BUSYBOX);
    if !path.exists() {
        install()?;
    }
    ensure!(
        path.exists(),
        "{HOST_BUSYBOX} still missing after installing {DEBIAN_PACKAGE}"
    );
    // Debian's plain `busybox` package is dynamically linked and would not
    // run in a rootfs without /lib. Replacing it is left to a human, since
    // apt would remove the package (and maybe what depends on it).
    ensure!(
        elf::is_static(&path)?,
        "{HOST_BUSYBOX} is dynamically linked; install the static one: apt-get install {DEBIAN_PACKAGE}"
    );
    Ok(path)
}

/// `apt-get install -y busybox-static`, with an `apt-get update` and a
/// second try when the first fails (typically a fresh machine whose package
/// lists are empty or stale).
fn install() -> Result<()> {
    step(format_args!(
        "{HOST_BUSYBOX} missing: apt-get install -y {DEBIAN_PACKAGE}"
    ));
    if apt(&["install", "-y", DEBIAN_PACKAGE])? {
        return Ok(());
    }
    step("apt-get install failed: running apt-get update, then trying again");
    if !apt(&["update"])? {
        bail!("apt-get update failed");
    }
    if !apt(&["install", "-y", DEBIAN_PACKAGE])? {
        bail!("apt-get install -y {DEBIAN_PACKAGE} failed");
    }
    Ok(())
}

fn apt(args: &[&str]) -> Result<bool> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        // apt's progress goes to stderr: stdout is reserved for results.
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .context("running apt-get")?;
    Ok(status.success())
}

/// The applets the host busybox provides, as paths relative to "/", e.g.
/// `bin/sh`, `usr/bin/awk`.
pub fn applets(busybox: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", busybox.display()))?;
    ensure!(
        output.status.success(),
        "{} --list-full failed",
        busybox.display()
    );
    let list = String::from_utf8(output.stdout).context("busybox --list-full is not UTF-8")?;
    let mut applets: Vec<PathBuf> = list
        .lines()
        .map(str::trim)
        // `bin/busybox` is the binary itself; top-level entries (`linuxrc`,
        // for booting an initrd) have no business in a container's "/".
        .filter(|l| l.contains('/') && *l != "bin/busybox")
        .map(PathBuf::from)
        .collect();
    applets.sort();
    applets.dedup();
    Ok(applets)
}

/// The symlink target for an applet, relative so that the link also
/// resolves when the rootfs is looked at from the host: `bin/sh` ->
/// `busybox`, `usr/bin/awk` -> `../../bin/busybox`.
pub fn link_target(applet: &Path) -> PathBuf {
    let parent = applet.parent().unwrap_or(Path::new(""));
    if parent == Path::new("bin") {
        return PathBuf::from("busybox");
    }
    let mut target = PathBuf::new();
    for _ in parent.components() {
        target.push("..");
    }
    target.join("bin/busybox")
}

/// Lay out `dir/bin/busybox` and its applet links (creating bin, sbin,
/// usr/bin, usr/sbin as needed). Returns the number of links.
pub fn layout(dir: &Path) -> Result<usize> {
    let busybox = host_busybox()?;
    let applets = applets(&busybox)?;
    step(format_args!(
        "busybox: copying {} and {} applet links",
        busybox.display(),
        applets.len()
    ));
    let bin = dir.join("bin");
    crate::rootfs::create_dir(&bin, 0o755)?;
    let dest = bin.join("busybox");
    fs::copy(&busybox, &dest).with_context(|| format!("copying {}", busybox.display()))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;

    // Parent directories (bin, sbin, usr, usr/bin, usr/sbin), all 0755;
    // sorted, so that usr comes before usr/bin.
    let parents: BTreeSet<&Path> = applets
        .iter()
        .flat_map(|a| a.ancestors().skip(1))
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    for parent in parents {
        crate::rootfs::create_dir(&dir.join(parent), 0o755)?;
    }
    for applet in &applets {
        let link = dir.join(applet);
        symlink(link_target(applet), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    ensure!(
        dir.join("bin/sh").exists(),
        "busybox provides no bin/sh applet"
    );
    Ok(applets.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_are_relative() {
        assert_eq!(link_target(Path::new("bin/sh")), Path::new("busybox"));
        assert_eq!(
            link_target(Path::new("sbin/ip")),
            Path::new("../bin/busybox")
        );
        assert_eq!(
            link_target(Path::new("usr/bin/awk")),
            Path::new("../../bin/busybox")
        );
    }
}
