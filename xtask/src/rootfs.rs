//! The default root file system: busybox + probe + a minimal skeleton.
//!
//! [`ensure`] is what tests call: it builds the rootfs only when it is
//! missing or older than the sources it is made from, and is safe to call
//! from several processes at once (`cargo test` runs test binaries in
//! parallel): builders serialise on an flock, and a new tree is built in a
//! temporary sibling directory and swapped in with one atomic rename, so
//! nobody ever sees a half-built rootfs.

use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::{busybox, paths, probe, step};

/// Empty directories of the skeleton, with their modes. /proc and /sys are
/// mount points only (0555, as on Debian); /tmp is world-writable with the
/// sticky bit; /dev stays empty because the runtime creates its nodes.
pub const DIRS: &[(&str, u32)] = &[
    ("dev", 0o755),
    ("etc", 0o755),
    ("home", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("run", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("var", 0o755),
];

/// The hostname the runtime gives containers by default.
pub const HOSTNAME: &str = "stepbox";

/// Files of the skeleton (path, contents), all mode 0644.
pub const FILES: &[(&str, &str)] = &[
    (
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    ),
    ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ("etc/hostname", "stepbox\n"),
    (
        "etc/hosts",
        "127.0.0.1\tlocalhost stepbox\n::1\tlocalhost\n",
    ),
];

/// Build `out` unless it is up to date; returns its absolute path.
pub fn ensure(out: &Path) -> Result<PathBuf> {
    let out = absolute(out)?;
    let _lock = lock()?;
    if is_fresh(&out)? {
        step(format_args!("rootfs: up to date: {}", out.display()));
        return Ok(out);
    }
    build_locked(&out)?;
    Ok(out)
}

/// Build `out` whether or not it is up to date; returns its absolute path.
pub fn build(out: &Path) -> Result<PathBuf> {
    let out = absolute(out)?;
    let _lock = lock()?;
    build_locked(&out)?;
    Ok(out)
}

/// Lay out the whole rootfs into `dir`, an existing empty directory.
pub fn layout(dir: &Path, bins: &probe::ProbeBinaries) -> Result<()> {
    layout_base(dir)?;
    busybox::layout(dir)?;
    probe::layout(dir, bins)?;
    Ok(())
}

/// Lay out the skeleton: the empty directories and the /etc files.
pub fn layout_base(dir: &Path) -> Result<()> {
    step("rootfs: creating directories and /etc files");
    for &(name, mode) in DIRS {
        create_dir(&dir.join(name), mode)?;
    }
    for &(name, contents) in FILES {
        write_file(&dir.join(name), contents, 0o644)?;
    }
    Ok(())
}

/// mkdir with an exact mode (not subject to the umask); an existing
/// directory is left as it is.
pub fn create_dir(path: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("mkdir {}", path.display())),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Write a file with an exact mode.
pub fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// The sources the rootfs is made from: the probe crate and this crate
/// (whose code decides the layout).
pub fn sources() -> Vec<PathBuf> {
    let root = paths::workspace_root();
    let mut files = Vec::new();
    for dir in ["crates/probe", "xtask"] {
        let dir = root.join(dir);
        files.push(dir.join("Cargo.toml"));
        collect_files(&dir.join("src"), &mut files);
    }
    files
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// `<parent>/<name>.stamp`: its mtime is when the build of `out` started.
/// Kept outside the rootfs so that containers do not see it.
fn stamp_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".stamp");
    out.with_file_name(name)
}

fn is_fresh(out: &Path) -> Result<bool> {
    let Ok(stamp) = fs::metadata(stamp_path(out)).and_then(|m| m.modified()) else {
        return Ok(false);
    };
    if !out.join("bin/probe").exists() || !out.join("bin/sh").exists() {
        return Ok(false);
    }
    let newest = sources()
        .iter()
        .filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .max();
    Ok(newest.is_none_or(|newest| newest <= stamp))
}

fn build_locked(out: &Path) -> Result<()> {
    let started = SystemTime::now();
    let parent = out.parent().context("rootfs path has no parent")?;
    let name = out.file_name().context("rootfs path has no file name")?;
    fs::create_dir_all(parent).with_context(|| format!("mkdir -p {}", parent.display()))?;
    remove_leftovers(parent, name.as_bytes())?;

    // What can fail for outside reasons (apt-get, cargo) happens before
    // the temporary directory exists.
    busybox::host_busybox()?;
    let bins = probe::build_static()?;

    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = parent.join(tmp_name);
    step(format_args!("rootfs: assembling in {}", tmp.display()));
    create_dir(&tmp, 0o755)?;
    if let Err(e) = layout(&tmp, &bins) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }

    if out.exists() {
        // Swap old and new in one step, then delete the old tree (now at
        // `tmp`): there is no moment without a complete rootfs at `out`.
        exchange(&tmp, out)?;
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    } else {
        fs::rename(&tmp, out)
            .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    }
    // The default image (chapter 8) is made of the same pieces: it is
    // rebuilt whenever the rootfs is, before the stamp says both are fresh.
    if out == paths::default_rootfs() {
        crate::image::build_default_image(&paths::default_image(), &bins)?;
    }
    let stamp = File::create(stamp_path(out))?;
    stamp.set_modified(started)?;
    step(format_args!("rootfs: ready: {}", out.display()));
    Ok(())
}

/// Remove `.<name>.tmp-*` directories left by builds that were killed.
/// Only called with the lock held, so none of them is in use.
fn remove_leftovers(parent: &Path, name: &[u8]) -> Result<()> {
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name);
    prefix.extend_from_slice(b".tmp-");
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().as_bytes().starts_with(&prefix) {
            step(format_args!(
                "rootfs: removing leftover {}",
                entry.path().display()
            ));
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// renameat2(RENAME_EXCHANGE): atomically swap two directories.
fn exchange(a: &Path, b: &Path) -> Result<()> {
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD is allowed.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        bail!("swapping {} and {}: {e}", a.display(), b.display());
    }
    Ok(())
}

/// An exclusive flock on `<target>/stepbox/rootfs.lock`, released when the
/// returned file is dropped (or the process dies).
fn lock() -> Result<File> {
    let dir = paths::stepbox_dir();
    fs::create_dir_all(&dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
    let path = dir.join("rootfs.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e).with_context(|| format!("flock {}", path.display()));
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}
