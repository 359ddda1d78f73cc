//! The default image for chapter 8: the default rootfs's pieces as three
//! OCI layer tarballs, stacked bottom first:
//!
//! 1. `1-busybox.tar`: the skeleton (directories, /etc files), busybox and
//!    its applet links;
//! 2. `2-probe.tar`: /bin/probe, /bin/chroot-escape and some demo files:
//!    /etc/motd, /srv/hello.txt, /srv/docs/{a,b}.txt;
//! 3. `3-cleanup.tar`: deletes /srv/hello.txt (a whiteout, `.wh.hello.txt`)
//!    and replaces the contents of /srv/docs (an opaque directory,
//!    `.wh..wh..opq`, and a new c.txt).
//!
//! Each layer is laid out into a directory, then tarred deterministically
//! (sorted names, mtime 0, owner 0:0), so that building it again gives the
//! same bytes, the same sha256, and a hit in the runtime's layer cache.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::{busybox, paths, probe, rootfs, step};

/// The layers' file names, bottom first.
pub const LAYERS: [&str; 3] = ["1-busybox.tar", "2-probe.tar", "3-cleanup.tar"];

/// Demo files of layer 2 (path, contents), mode 0644.
pub const DEMO_FILES: &[(&str, &str)] = &[
    (
        "etc/motd",
        "This / is three image layers, merged by overlayfs (chapter 8).\n",
    ),
    ("srv/hello.txt", "hello from layer 2 (layer 3 deletes me)\n"),
    (
        "srv/docs/a.txt",
        "a, from layer 2 (hidden: layer 3 makes /srv/docs opaque)\n",
    ),
    (
        "srv/docs/b.txt",
        "b, from layer 2 (hidden: layer 3 makes /srv/docs opaque)\n",
    ),
];

/// What layer 3 deletes (whiteouts), makes opaque, and adds.
pub const DELETED: &[&str] = &["srv/hello.txt"];
pub const OPAQUE: &[&str] = &["srv/docs"];
pub const LAYER3_FILES: &[(&str, &str)] = &[(
    "srv/docs/c.txt",
    "c, from layer 3: the only file left in /srv/docs\n",
)];

/// The default image's layers, bottom first, built with the default rootfs
/// if missing or out of date.
pub fn ensure() -> Result<Vec<PathBuf>> {
    let rootfs = paths::default_rootfs();
    crate::rootfs::ensure(&rootfs)?;
    let layers: Vec<PathBuf> = LAYERS
        .iter()
        .map(|l| paths::default_image().join(l))
        .collect();
    if !layers.iter().all(|l| l.exists()) {
        crate::rootfs::build(&rootfs)?;
    }
    Ok(layers)
}

/// Write the default image's layers into `out_dir` (created if needed);
/// returns their paths, bottom first (the order of `--layer`).
pub fn build_default_image(out_dir: &Path, bins: &probe::ProbeBinaries) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(out_dir).with_context(|| format!("mkdir -p {}", out_dir.display()))?;
    let work = out_dir.join(format!(".image-tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    rootfs::create_dir(&work, 0o700)?;
    let result = build_in(&work, out_dir, bins);
    let _ = fs::remove_dir_all(&work);
    result
}

fn build_in(work: &Path, out_dir: &Path, bins: &probe::ProbeBinaries) -> Result<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = (1..=LAYERS.len())
        .map(|i| work.join(i.to_string()))
        .collect();
    for dir in &dirs {
        rootfs::create_dir(dir, 0o755)?;
    }

    rootfs::layout_base(&dirs[0])?;
    busybox::layout(&dirs[0])?;

    probe::layout(&dirs[1], bins)?;
    for &(path, contents) in DEMO_FILES {
        write_file(&dirs[1], path, contents)?;
    }

    layout_whiteouts(&dirs[2], DELETED, OPAQUE)?;
    for &(path, contents) in LAYER3_FILES {
        write_file(&dirs[2], path, contents)?;
    }

    let mut tars = Vec::new();
    for (dir, name) in dirs.iter().zip(LAYERS) {
        let out = out_dir.join(name);
        step(format_args!("image: writing {}", out.display()));
        tar_dir(dir, &out)?;
        tars.push(out);
    }
    Ok(tars)
}

/// Lay out OCI whiteout markers into `dir`: an empty `.wh.NAME` next to
/// each deleted path, and `.wh..wh..opq` in each opaque directory
/// (image-spec layer.md). Parent directories are created 0755.
pub fn layout_whiteouts(dir: &Path, deleted: &[&str], opaque: &[&str]) -> Result<()> {
    for path in deleted {
        let path = Path::new(path);
        let name = path
            .file_name()
            .with_context(|| format!("whiteout of {path:?}: no file name"))?;
        let mut marker = std::ffi::OsString::from(".wh.");
        marker.push(name);
        let parent = path.parent().unwrap_or(Path::new(""));
        write_file(dir, &parent.join(marker).to_string_lossy(), "")?;
    }
    for path in opaque {
        write_file(
            dir,
            &Path::new(path).join(".wh..wh..opq").to_string_lossy(),
            "",
        )?;
    }
    Ok(())
}

/// `dir/path` with `contents`, mode 0644, creating parents 0755.
fn write_file(dir: &Path, path: &str, contents: &str) -> Result<()> {
    let full = dir.join(path);
    let mut parents: Vec<&Path> = Path::new(path)
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    parents.reverse();
    for p in parents {
        rootfs::create_dir(&dir.join(p), 0o755)?;
    }
    rootfs::write_file(&full, contents, 0o644)
}

/// Tar the contents of `dir` (not `dir` itself) into `out` as an image
/// layer: names sorted bytewise, relative and without "./", mtime 0, owner
/// 0:0, modes kept. Directories, regular files and symlinks only (a hard
/// link would be stored as a copy). Written to a temporary file renamed
/// into place, so a layer under its final name is always complete.
pub fn tar_dir(dir: &Path, out: &Path) -> Result<()> {
    let mut tmp_name = out
        .file_name()
        .context("layer path has no file name")?
        .to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = out.with_file_name(tmp_name);
    let result = (|| -> Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut builder = tar::Builder::new(BufWriter::new(file));
        append_tree(&mut builder, dir, Path::new(""))?;
        let mut writer = builder.into_inner().context("finishing the tar file")?;
        writer.flush()?;
        writer.get_ref().sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing layer {}", out.display()));
    }
    fs::rename(&tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))
}

fn append_tree<W: Write>(builder: &mut tar::Builder<W>, root: &Path, rel: &Path) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta =
            fs::symlink_metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        let kind = meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        let what = || format!("adding {} to the layer", path.display());
        if kind.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            builder
                .append_data(&mut header, &rel, io::empty())
                .with_context(what)?;
            append_tree(builder, root, &rel)?;
        } else if kind.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(&path).with_context(what)?;
            builder
                .append_link(&mut header, &rel, &target)
                .with_context(what)?;
        } else if kind.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            let file = File::open(&path).with_context(what)?;
            builder
                .append_data(&mut header, &rel, file)
                .with_context(what)?;
        } else if kind.is_fifo()
            || kind.is_char_device()
            || kind.is_block_device()
            || kind.is_socket()
        {
            bail!(
                "{}: only directories, files and symlinks go into a layer",
                path.display()
            );
        }
    }
    Ok(())
}
