//! Unpacking one image layer (an OCI layer tarball) into a directory, safely.
//!
//! A layer comes from somewhere else: its tar file may try to write outside
//! the directory it is unpacked into, with `../` in a path, or through a
//! symlink that an earlier entry of the same tarball created (`link -> /`,
//! then `link/etc/cron.d/x`). So nothing here opens a path as a whole: every
//! entry's parent directory is reached one name at a time from the layer's
//! root, refusing symlinks (see [`open_dir`]), and the entry is then created
//! relative to that directory's file descriptor. Symlinks themselves are
//! created as they are: they only mean something later, inside the
//! container, where "/" is the container's root.
//!
//! OCI whiteouts become overlayfs whiteouts (see [`whiteout`]).

use ch01_process::{Context, Error, Result};
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Statistics, for `-v`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
}

/// How much one layer may hold once unpacked. A layer is hostile input: a
/// 1.5 MB gzip file can expand to gigabytes, or to millions of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file data (`--max-layer-size`).
    pub max_bytes: u64,
    /// Entries of any kind (`--max-layer-entries`).
    pub max_entries: u64,
}

impl Default for Limits {
    /// Far above any ordinary image's layer (a large one holds a few GB and
    /// some tens of thousands of files), far below what fills a disk by surprise.
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// Unpacks the tar stream `src` into `dest`, an existing empty directory,
/// within `limits`; `cancel` is called between entries (and within large
/// files) and stops the unpack with its error (a Ctrl-C).
/// On error, `dest` may hold part of the layer (the caller removes it), but
/// nothing has been written outside it.
pub fn unpack(
    src: impl Read,
    dest: &Path,
    limits: &Limits,
    cancel: &dyn Fn() -> Result<()>,
) -> Result<Unpacked> {
    let _ = (limits, cancel);
    let root = open_root(dest)?;
    let mut archive = tar::Archive::new(src);
    let mut stats = Unpacked::default();
    // Directory mtimes are set at the end: creating an entry in a directory
    // changes the directory's mtime.
    let mut dir_times: Vec<(Vec<Vec<u8>>, u64)> = Vec::new();
    // Ownership can be given away only by root (tar does the same: it
    // keeps the owner only when run as root).
    let chown = unsafe { libc::geteuid() } == 0;

    let entries = archive
        .entries()
        .map_err(|e| Error::runtime(format!("not a tar file: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            // The tar crate may quote the bad header bytes: keep the words only.
            let e = e.to_string();
            let why = match e.find(|c: char| !(c.is_ascii_graphic() || c == ' ')) {
                Some(i) => e[..i].rsplit_once(':').map_or(&e[..i], |(w, _)| w),
                None => &e,
            };
            let why = why.trim();
            match stats.entries {
                0 => Error::runtime(format!(
                    "not a tar file (no valid header at its start: {why})"
                )),
                n => Error::runtime(format!(
                    "corrupt or truncated tar file after {n} entries: {why}"
                )),
            }
        })?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let n = extract(&root, &mut entry, &raw_path, chown, &mut dir_times)
            .map_err(|e| Error::runtime(format!("entry {shown:?}: {}", e.msg)))?;
        stats.entries += 1;
        stats.bytes += n;
    }

    // Deepest first, so that setting a child's time does not touch its parent's.
    dir_times.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    for (path, mtime) in dir_times {
        let names: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
        // The directory may have been replaced by a later entry: then its time does not matter.
        if let Ok(dir) = open_dir(&root, &names, false) {
            let _ = set_times(dir.as_raw_fd(), None, mtime, 0);
        }
    }
    Ok(stats)
}

/// Turns a tar path into its components: a leading "/" and "./" are dropped
/// (as docker does: a layer's paths are relative to the layer's root), and
/// so are empty and "." components; ".." is refused anywhere.
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for name in path.split(|&b| b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => return Err(Error::runtime("\"..\" in a path is not allowed in a layer")),
            _ if name.contains(&0) => return Err(Error::runtime("NUL byte in a path")),
            _ => out.push(name),
        }
    }
    Ok(out)
}

/// The OCI marker that makes its directory opaque (image-spec layer.md).
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of OCI whiteout files: `.wh.NAME` deletes NAME.
const WH_PREFIX: &[u8] = b".wh.";

/// Creates one entry; returns the number of bytes of file data written.
fn extract<R: Read>(
    root: &OwnedFd,
    entry: &mut tar::Entry<R>,
    raw_path: &[u8],
    chown: bool,
    dir_times: &mut Vec<(Vec<Vec<u8>>, u64)>,
) -> Result<u64> {
    let header = entry.header();
    let mut kind = header.entry_type();
    let mode = header.mode().context("bad mode field")? & 0o7777;
    let (uid, gid) = (
        header.uid().context("bad uid field")?,
        header.gid().context("bad gid field")?,
    );
    let mtime = header.mtime().context("bad mtime field")?;
    if kind == tar::EntryType::XGlobalHeader {
        return Ok(0); // pax global header: nothing to create
    }
    // Pre-POSIX tar marks directories by a trailing slash only.
    if kind == tar::EntryType::Regular && raw_path.ends_with(b"/") {
        kind = tar::EntryType::Directory;
    }

    let path = components(raw_path)?;
    let Some((&name, parents)) = path.split_last() else {
        // "." or "/": the layer's root directory itself.
        if !kind.is_dir() {
            return Err(Error::runtime("the layer's root must be a directory"));
        }
        set_owner_mode(root.as_raw_fd(), None, uid, gid, mode, chown)?;
        dir_times.push((Vec::new(), mtime));
        return Ok(0);
    };

    if name.starts_with(WH_PREFIX) {
        let parent = open_dir(root, parents, true)?;
        whiteout(&parent, name)?;
        return Ok(0);
    }

    let parent = open_dir(root, parents, true)?;
    let pfd = parent.as_raw_fd();
    let cname = cstring(name)?;
    let mut written = 0;
    match kind {
        tar::EntryType::Directory => {
            if !remove_existing(pfd, name, true)? {
                cvt(unsafe { libc::mkdirat(pfd, cname.as_ptr(), 0o700) }).context("mkdirat(2)")?;
            }
            let dir = openat(
                pfd,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            )
            .context("opening the new directory")?;
            set_owner_mode(dir.as_raw_fd(), None, uid, gid, mode, chown)?;
            let mut full: Vec<Vec<u8>> = parents.iter().map(|p| p.to_vec()).collect();
            full.push(name.to_vec());
            dir_times.push((full, mtime));
            return Ok(0);
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            remove_existing(pfd, name, false)?;
            // O_EXCL|O_NOFOLLOW: a new file, never one reached through a link.
            let fd = openat(
                pfd,
                name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            )
            .context("creating the file")?;
            let mut file = std::fs::File::from(fd);
            let expected = entry.size();
            written = io::copy(entry, &mut file).map_err(|e| {
                Error::runtime(format!("reading its data (truncated tar file?): {e}"))
            })?;
            if written != expected {
                return Err(Error::runtime(format!(
                    "truncated tar file: {written} of {expected} bytes of data"
                )));
            }
            // chown(2) before chmod(2): chown clears the setuid and setgid bits.
            set_owner_mode(file.as_raw_fd(), None, uid, gid, mode, chown)?;
            set_times(file.as_raw_fd(), None, mtime, 0)?;
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| Error::runtime("symlink without a target"))?;
            remove_existing(pfd, name, false)?;
            let ctarget = cstring(&target)?;
            cvt(unsafe { libc::symlinkat(ctarget.as_ptr(), pfd, cname.as_ptr()) })
                .context("symlinkat(2)")?;
            if chown {
                cvt(unsafe {
                    libc::fchownat(
                        pfd,
                        cname.as_ptr(),
                        uid as u32,
                        gid as u32,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
                .context("lchown(2)")?;
            }
            set_times(pfd, Some(&cname), mtime, libc::AT_SYMLINK_NOFOLLOW)?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Error::runtime("hard link without a target"))?;
            let shown = String::from_utf8_lossy(&target).into_owned();
            // The target is a path in the layer, found the same safe way.
            let tpath = components(&target)
                .map_err(|e| Error::runtime(format!("hard link to {shown:?}: {}", e.msg)))?;
            let Some((&tname, tparents)) = tpath.split_last() else {
                return Err(Error::runtime("hard link to the layer's root"));
            };
            let tdir = open_dir(root, tparents, false)
                .map_err(|e| Error::runtime(format!("hard link to {shown:?}: {}", e.msg)))?;
            if tparents == parents && tname == name {
                return Ok(0); // a link to itself: nothing to do
            }
            remove_existing(pfd, name, false)?;
            let ctname = cstring(tname)?;
            // flags 0: if the target is a symlink, link the symlink itself.
            cvt(unsafe { libc::linkat(tdir.as_raw_fd(), ctname.as_ptr(), pfd, cname.as_ptr(), 0) })
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOENT) => Error::runtime(format!(
                        "hard link to {shown:?}, which is not (yet) in this layer"
                    )),
                    _ => Error::runtime(format!("hard link to {shown:?}: linkat(2): {e}")),
                })?;
        }
        tar::EntryType::Fifo => {
            remove_existing(pfd, name, false)?;
            cvt(unsafe { libc::mknodat(pfd, cname.as_ptr(), libc::S_IFIFO | 0o600, 0) })
                .context("mknodat(2) a FIFO")?;
            set_owner_mode(pfd, Some(&cname), uid, gid, mode, chown)?;
            set_times(pfd, Some(&cname), mtime, libc::AT_SYMLINK_NOFOLLOW)?;
        }
        tar::EntryType::Char
            if header.device_major().ok().flatten() == Some(0)
                && header.device_minor().ok().flatten() == Some(0) =>
        {
            // A character device 0:0 is an overlayfs whiteout already (a layer
            // made by tarring an overlay upper dir): harmless, keep it.
            remove_existing(pfd, name, false)?;
            mknod_whiteout(pfd, &cname)?;
        }
        tar::EntryType::Char | tar::EntryType::Block => {
            // A device node in an image would give the container access to a
            // host device. The runtime makes /dev itself (chapter 5).
            return Err(Error::runtime(
                "device nodes are not allowed in a layer (only FIFOs and 0:0 whiteouts)",
            ));
        }
        other => {
            return Err(Error::runtime(format!(
                "unsupported tar entry type {:?}",
                other.as_byte() as char
            )))
        }
    }
    Ok(written)
}

// ANCHOR: whiteout
/// OCI marks deletions with files named `.wh.NAME`, overlayfs with a
/// character device 0:0 named NAME; an opaque directory (whose lower
/// contents are hidden) is `DIR/.wh..wh..opq` in OCI and the xattr
/// `trusted.overlay.opaque=y` on DIR for overlayfs. The markers themselves
/// are not extracted.
fn whiteout(parent: &OwnedFd, marker: &[u8]) -> Result<()> {
    if marker == OPAQUE {
        let (name, value) = (c"trusted.overlay.opaque", b"y");
        let rc = unsafe {
            libc::fsetxattr(
                parent.as_raw_fd(),
                name.as_ptr(),
                value.as_ptr().cast(),
                1,
                0,
            )
        };
        return cvt(rc).map(drop).context(
            "setxattr(2) trusted.overlay.opaque=y (needs root, on a file system with xattrs)",
        );
    }
    let name = &marker[WH_PREFIX.len()..];
    if name.starts_with(WH_PREFIX) {
        // `.wh..wh.plnk` and the like: AUFS bookkeeping, meaningless here (docker skips them too).
        return Ok(());
    }
    if name.is_empty() {
        return Err(Error::runtime("whiteout of an empty name"));
    }
    remove_existing(parent.as_raw_fd(), name, false)?;
    mknod_whiteout(parent.as_raw_fd(), &cstring(name)?)
}

fn mknod_whiteout(dir: RawFd, name: &CString) -> Result<()> {
    let rc = unsafe { libc::mknodat(dir, name.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    cvt(rc)
        .map(drop)
        .context("mknodat(2) a whiteout (character device 0:0)")
}
// ANCHOR_END: whiteout

// ANCHOR: resolve
/// Opens the directory `path` below `root` one name at a time: each
/// openat(2) looks up a single name (never "..", see [`components`])
/// relative to the directory opened before, with O_NOFOLLOW, so neither a
/// symlink nor ".." can lead the walk out of `root`. (openat2(2) with
/// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS does the same in one call, but
/// cannot create the missing directories on the way.) With `create`,
/// missing directories are made, mode 0755 as tar does.
pub fn open_dir(root: &OwnedFd, path: &[&[u8]], create: bool) -> Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let mut dir = openat(root.as_raw_fd(), b".", flags).context("opening the layer's root")?;
    for (i, &name) in path.iter().enumerate() {
        let here = || String::from_utf8_lossy(&path[..=i].join(&b'/')).into_owned();
        let next = match openat(dir.as_raw_fd(), name, flags) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                let cname = cstring(name)?;
                cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o755) })
                    .context(format!("mkdirat(2) {}", here()))?;
                // mkdirat's mode is reduced by the umask: set it exactly.
                cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), cname.as_ptr(), 0o755, 0) })
                    .context(format!("chmod {}", here()))?;
                openat(dir.as_raw_fd(), name, flags)
            }
            other => other,
        };
        dir = next.map_err(|e| match lstat_kind(dir.as_raw_fd(), name) {
            Some(libc::S_IFLNK) => Error::runtime(format!(
                "goes through the symlink {:?}: refused, it could lead outside the layer",
                here()
            )),
            Some(_) => Error::runtime(format!("{:?} is not a directory", here())),
            None if e.raw_os_error() == Some(libc::ENOENT) => {
                Error::runtime(format!("{:?} is not (yet) in this layer", here()))
            }
            None => Error::runtime(format!("opening {:?}: {e}", here())),
        })?;
    }
    Ok(dir)
}
// ANCHOR_END: resolve

/// Makes room for a new entry `name` in `dir`: a later entry replaces an
/// earlier one with the same path, as tar does. An existing directory is
/// kept when the new entry is a directory too (returns true then).
fn remove_existing(dir: RawFd, name: &[u8], new_is_dir: bool) -> Result<bool> {
    let Some(kind) = lstat_kind(dir, name) else {
        return Ok(false);
    };
    let cname = cstring(name)?;
    if kind == libc::S_IFDIR {
        if new_is_dir {
            return Ok(true);
        }
        // Reached through our own descriptor, never through a symlink in
        // the layer; remove_dir_all itself does not follow symlinks.
        let path = Path::new("/proc/self/fd")
            .join(dir.to_string())
            .join(std::ffi::OsStr::from_bytes(name));
        std::fs::remove_dir_all(path).context("replacing a directory")?;
        return Ok(false);
    }
    cvt(unsafe { libc::unlinkat(dir, cname.as_ptr(), 0) }).context("replacing an earlier entry")?;
    Ok(false)
}

/// The file type (S_IFMT bits) of `name` in `dir`, without following a symlink.
fn lstat_kind(dir: RawFd, name: &[u8]) -> Option<libc::mode_t> {
    let cname = cstring(name).ok()?;
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstatat(dir, cname.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    (rc == 0).then_some(st.st_mode & libc::S_IFMT)
}

/// chown then chmod (in that order: chown(2) clears setuid/setgid), on `fd`
/// itself or on `name` in the directory `fd`.
fn set_owner_mode(
    fd: RawFd,
    name: Option<&CString>,
    uid: u64,
    gid: u64,
    mode: u32,
    chown: bool,
) -> Result<()> {
    let (uid, gid) = (
        u32::try_from(uid).map_err(|_| Error::runtime(format!("uid {uid} out of range")))?,
        u32::try_from(gid).map_err(|_| Error::runtime(format!("gid {gid} out of range")))?,
    );
    match name {
        None => {
            if chown {
                cvt(unsafe { libc::fchown(fd, uid, gid) }).context("fchown(2)")?;
            }
            cvt(unsafe { libc::fchmod(fd, mode) }).context("fchmod(2)")?;
        }
        Some(name) => {
            if chown {
                let rc = unsafe {
                    libc::fchownat(fd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                };
                cvt(rc).context("lchown(2)")?;
            }
            // Only used on entries just created by mknodat(2): not symlinks.
            cvt(unsafe { libc::fchmodat(fd, name.as_ptr(), mode, 0) }).context("fchmodat(2)")?;
        }
    }
    Ok(())
}

/// Sets atime and mtime to `mtime`, on `fd` or on `name` in the directory `fd`.
fn set_times(fd: RawFd, name: Option<&CString>, mtime: u64, flags: libc::c_int) -> Result<()> {
    let t = libc::timespec {
        tv_sec: mtime.min(i64::MAX as u64) as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    let rc = match name {
        None => unsafe { libc::futimens(fd, times.as_ptr()) },
        Some(name) => unsafe { libc::utimensat(fd, name.as_ptr(), times.as_ptr(), flags) },
    };
    cvt(rc).map(drop).context("setting the modification time")
}

fn open_root(dest: &Path) -> Result<OwnedFd> {
    let c = cstring(dest.as_os_str().as_encoded_bytes())?;
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    cvt(fd).context(format!("opening {}", dest.display()))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat(dir: RawFd, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    cvt(fd)?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::runtime("NUL byte in a name"))
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}
