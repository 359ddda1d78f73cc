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
//! OCI whiteouts become overlayfs whiteouts (see [`whiteout`]); the name a
//! whiteout deletes is checked like every other name (see [`bad_name`]).
//!
//! A layer may also be a bomb: a small gzip file that expands to gigabytes,
//! or to millions of entries. [`Limits`] bounds both, checked before the
//! bytes are written, and `cancel` (Ctrl-C) is honoured between entries and
//! within large files.

use crate::ids::Owners;
use ch01_process::{Context, Error, Result};
use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Statistics, for `-v`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unpacked {
    pub entries: u64,
    pub bytes: u64,
}

// ANCHOR: limits
/// How much one layer may hold once unpacked. A layer is hostile input: a
/// 1.5 MB gzip file can expand to gigabytes, or to millions of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of data in the layer's entries, file contents as unpacked
    /// (a sparse file counts its holes), `--max-layer-size`.
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

/// The headers of one entry (its long name, long link target and pax
/// records, which the tar crate reads into memory) may hold this much: a
/// real one holds a few KiB, a hostile one a gigabyte of zeros.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// How often, in bytes of data, a long copy asks `cancel` whether to stop.
const CANCEL_EVERY: u64 = 4 << 20;
// ANCHOR_END: limits

/// Unpacks the tar stream `src` into `dest`, an existing empty directory,
/// within `limits`; `cancel` is called between entries (and within large
/// files) and stops the unpack with its error (a Ctrl-C), returned as it is.
/// On error, `dest` may hold part of the layer (the caller removes it), but
/// nothing has been written outside it.
pub fn unpack(
    src: impl Read,
    dest: &Path,
    limits: &Limits,
    cancel: &dyn Fn() -> Result<()>,
) -> Result<Unpacked> {
    unpack_as(src, dest, limits, &Owners::default(), cancel)
}

/// What the unpacking process may do that takes privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// Give each entry the tar's owner (through the [`Owners`]): chown(2)
    /// to another id takes CAP_CHOWN over it, which root has, and so does
    /// root of a user namespace over the ids mapped in it. Root's
    /// permission checks then pass whatever a directory's mode (see
    /// [`Later`]). Without it every file is the caller's.
    pub chown: bool,
    /// Mark opaque directories with `trusted.overlay.opaque`, which takes
    /// CAP_SYS_ADMIN in the host's user namespace, or else with
    /// `user.overlay.opaque` (see [`opaque_xattr`]).
    pub trusted_xattrs: bool,
}

impl Rights {
    /// Root on the host.
    pub const ROOT: Rights = Rights {
        chown: true,
        trusted_xattrs: true,
    };
    /// An ordinary user (tar does the same: it keeps the owner only when
    /// run as root).
    pub const USER: Rights = Rights {
        chown: false,
        trusted_xattrs: false,
    };
    /// Root of a user namespace with the container's maps, in which an
    /// ordinary user unpacks (see rootless.rs): it gives files away to the
    /// ids mapped in, but its xattrs are the user's.
    pub const USERNS_ROOT: Rights = Rights {
        chown: true,
        trusted_xattrs: false,
    };

    /// The calling process's, by its effective uid: [`Rights::ROOT`] or
    /// [`Rights::USER`]. A process that is root in a user namespace of its
    /// own must say so ([`Rights::USERNS_ROOT`]): its euid is 0 too.
    pub fn of_caller() -> Rights {
        match nix::unistd::geteuid().is_root() {
            true => Rights::ROOT,
            false => Rights::USER,
        }
    }
}

/// [`unpack`], with each entry's owner shifted through `owners` (chapter
/// 11's id maps): an owner they do not map is an error. As root on the
/// host or as an ordinary user, by the caller's euid (see [`unpack_with`]).
pub fn unpack_as(
    src: impl Read,
    dest: &Path,
    limits: &Limits,
    owners: &Owners,
    cancel: &dyn Fn() -> Result<()>,
) -> Result<Unpacked> {
    unpack_with(src, dest, limits, owners, Rights::of_caller(), cancel)
}

/// [`unpack_as`], with the caller's `rights` given (see [`Rights`]).
pub fn unpack_with(
    src: impl Read,
    dest: &Path,
    limits: &Limits,
    owners: &Owners,
    rights: Rights,
    cancel: &dyn Fn() -> Result<()>,
) -> Result<Unpacked> {
    let root = open_root(dest)?;
    // The layer's root directory is the runtime's making, owned by root;
    // with shifted owners it must be the container's root's, as the tar
    // would say if it had a `./` entry (which then sets it again).
    if !owners.is_identity() && rights.chown {
        let (uid, gid) = owners.host(0, 0).map_err(Error::runtime)?;
        nix::unistd::fchown(
            root.as_raw_fd(),
            Some((uid as u32).into()),
            Some((gid as u32).into()),
        )
        .context("fchown(2) the layer's root directory")?;
    }
    let headers = HeaderBudget::default();
    let mut archive = tar::Archive::new(Metered {
        inner: src,
        headers: &headers,
    });
    // A cancel's error goes out as it is, without the name of the entry.
    let cancelled = Cell::new(false);
    let cancel = || cancel().inspect_err(|_| cancelled.set(true));
    let mut data = Data {
        used: 0,
        max: limits.max_bytes,
        since_cancel: 0,
        cancel: &cancel,
        buf: vec![0; 1 << 17],
    };
    let mut stats = Unpacked::default();
    let mut later: Vec<Later> = Vec::new();

    let mut entries = archive
        .entries()
        .map_err(|e| Error::runtime(format!("not a tar file: {e}")))?;
    loop {
        cancel()?;
        headers.left.set(Some(MAX_HEADER_BYTES));
        let next = entries.next();
        headers.left.set(None);
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|e| {
            if headers.exceeded.get() {
                return Error::runtime(format!(
                    "the headers of entry {} hold more than {} (long names, pax records): refused",
                    stats.entries + 1,
                    human(MAX_HEADER_BYTES)
                ));
            }
            header_error(&e, stats.entries)
        })?;
        if stats.entries >= limits.max_entries {
            return Err(Error::runtime(format!(
                "more than {} entries in the layer, its limit (--max-layer-entries N raises it)",
                limits.max_entries
            )));
        }
        stats.entries += 1;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let in_entry = |e: Error| {
            if cancelled.get() {
                e
            } else {
                Error::with_code(e.code, format!("entry {shown:?}: {}", e.msg))
            }
        };
        // Refused before a byte of it is written: the header says how much
        // follows (for a sparse file, its size with the holes).
        data.fits(entry.size()).map_err(in_entry)?;
        let n = extract(
            &root,
            dest,
            &mut entry,
            &raw_path,
            (owners, rights),
            &mut later,
            &mut data,
        )
        .map_err(in_entry)?;
        // What extract did not read (the data of a link or a directory,
        // which should have none) is read here, and counted, not skipped.
        data.copy(&mut entry, None).map_err(in_entry)?;
        stats.bytes += n;
    }

    // Deepest first, so that setting a child's time does not touch its
    // parent's, and a mode set on a child does not bar the way to another;
    // a directory that several entries made gets the last one's.
    later.sort_by(|a, b| {
        (b.path.len().cmp(&a.path.len()))
            .then_with(|| a.path.cmp(&b.path))
            .then(b.seq.cmp(&a.seq))
    });
    later.dedup_by(|a, b| a.path == b.path);
    for (i, dir) in later.into_iter().enumerate() {
        if i % 1024 == 1023 {
            cancel()?; // a million directories take a while
        }
        let names: Vec<&[u8]> = dir.path.iter().map(Vec::as_slice).collect();
        // The directory may have been replaced by a later entry: then its time does not matter.
        if let Ok(fd) = open_dir(&root, &names, false) {
            let _ = set_times(fd.as_raw_fd(), None, dir.mtime, 0);
            if let Some(mode) = dir.mode {
                // SAFETY: a plain syscall on a descriptor we own.
                cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).context(format!(
                    "fchmod(2) {:?}",
                    String::from_utf8_lossy(&dir.path.join(&b'/'))
                ))?;
            }
        }
    }
    Ok(stats)
}

/// A header the tar crate could not parse, in words: its message may go on
/// with the bad header bytes and the entry's path ("numeric field was not a
/// number: BYTES when getting cksum for PATH"), which are left out.
fn header_error(e: &io::Error, entries: u64) -> Error {
    let e = e.to_string();
    let why = e.split(':').next().unwrap_or_default();
    let why = match why.find(|c: char| !(c.is_ascii_graphic() || c == ' ')) {
        Some(i) => &why[..i],
        None => why,
    };
    let why = why.trim();
    match entries {
        0 => Error::runtime(format!(
            "not a tar file (no valid header at its start: {why})"
        )),
        n => Error::runtime(format!(
            "corrupt or truncated tar file after {n} entries: {why}"
        )),
    }
}

// ANCHOR: names
/// Why `name` cannot be the name of one entry in a directory, if it cannot.
/// Every name the unpacker creates, replaces or deletes goes through this:
/// the components of each path, and the name a whiteout deletes.
fn bad_name(name: &[u8]) -> Option<&'static str> {
    match name {
        b"" => Some("an empty name"),
        b"." => Some("\".\""),
        b".." => Some("\"..\""),
        _ if name.contains(&0) => Some("a NUL byte"),
        _ if name.contains(&b'/') => Some("a \"/\" in a name"),
        _ if name.len() > 255 => Some("a name longer than 255 bytes"),
        _ => None,
    }
}

/// Turns a tar path into its components: a leading "/" and "./" are dropped
/// (as docker does: a layer's paths are relative to the layer's root), and
/// so are empty and "." components; ".." is refused anywhere, and so is
/// every other name that [`bad_name`] refuses.
pub fn components(path: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    for name in path.split(|&b| b == b'/') {
        match name {
            b"" | b"." => {}
            _ => match bad_name(name) {
                Some(why) => {
                    return Err(Error::runtime(format!(
                        "{why} in a path is not allowed in a layer"
                    )))
                }
                None => out.push(name),
            },
        }
    }
    Ok(out)
}
// ANCHOR_END: names

/// The OCI marker that makes its directory opaque (image-spec layer.md).
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of OCI whiteout files: `.wh.NAME` deletes NAME.
const WH_PREFIX: &[u8] = b".wh.";

// ANCHOR: later
/// What is set on a directory once the whole layer is in: its mtime
/// (creating an entry in a directory changes the directory's), and for a
/// caller who is not root its mode. Root's permission checks pass whatever
/// a directory's mode; an ordinary user's do not, and a directory of mode
/// 0555 (Fedora's /usr/bin) would refuse the entries after it. So while
/// the layer is unpacked the user's directories are u+rwx, and get their
/// own mode at the end, as GNU tar does when not run by root.
struct Later {
    path: Vec<Vec<u8>>,
    /// The order of the entries, for the last one's mode to win.
    seq: usize,
    mtime: u64,
    /// None: set already (root).
    mode: Option<u32>,
}

/// The mode to give a new directory now, and the one left for the end.
fn dir_mode(mode: u32, privileged: bool) -> (u32, Option<u32>) {
    match privileged {
        true => (mode, None),
        false => (mode | 0o700, Some(mode)),
    }
}
// ANCHOR_END: later

/// Creates one entry; returns the number of bytes of file data written.
fn extract<R: Read>(
    root: &OwnedFd,
    dest: &Path,
    entry: &mut tar::Entry<R>,
    raw_path: &[u8],
    (owners, rights): (&Owners, Rights),
    later: &mut Vec<Later>,
    data: &mut Data,
) -> Result<u64> {
    let chown = rights.chown;
    // Root, of the host or of a user namespace in which every owner is
    // mapped: its permission checks pass whatever a directory's mode.
    let privileged = chown;
    let header = entry.header();
    let mut kind = header.entry_type();
    // The tar crate's message quotes the field's bytes and the entry's path
    // as they are: the name of the field says enough.
    let bad =
        |what: &'static str| move |_| Error::runtime(format!("bad {what} field in its header"));
    let mode = header.mode().map_err(bad("mode"))? & 0o7777;
    // Without the right to give files away, the owners are not set at all.
    let identity = Owners::default();
    let owners = if chown { owners } else { &identity };
    let (uid, gid) = owners
        .host(
            header.uid().map_err(bad("uid"))?,
            header.gid().map_err(bad("gid"))?,
        )
        .map_err(Error::runtime)?;
    let mtime = header.mtime().map_err(bad("mtime"))?;
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
        let (now, mode) = dir_mode(mode, privileged);
        set_owner_mode(root.as_raw_fd(), None, uid, gid, now, chown)?;
        later.push(Later {
            path: Vec::new(),
            seq: later.len(),
            mtime,
            mode,
        });
        return Ok(0);
    };

    if name.starts_with(WH_PREFIX) {
        let marker = marker(name)?; // checked before anything is made or removed
        let parent = open_dir(root, parents, true)?;
        whiteout(&parent, marker, rights.trusted_xattrs)?;
        return Ok(0);
    }

    let parent = open_dir(root, parents, true)?;
    let pfd = parent.as_raw_fd();
    let cname = cstring(name)?;
    let mut written = 0;
    match kind {
        tar::EntryType::Directory => {
            if !remove_existing(pfd, name, true)? {
                // SAFETY: `cname` is NUL-terminated; `pfd` is open while `parent` lives.
                cvt(unsafe { libc::mkdirat(pfd, cname.as_ptr(), 0o700) }).context("mkdirat(2)")?;
            }
            let dir = openat(
                pfd,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            )
            .context("opening the new directory")?;
            let (now, mode) = dir_mode(mode, privileged);
            set_owner_mode(dir.as_raw_fd(), None, uid, gid, now, chown)?;
            let mut path: Vec<Vec<u8>> = parents.iter().map(|p| p.to_vec()).collect();
            path.push(name.to_vec());
            later.push(Later {
                path,
                seq: later.len(),
                mtime,
                mode,
            });
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
            let mut file = File::from(fd);
            let expected = entry.size();
            let host_path: PathBuf = path
                .iter()
                .fold(dest.to_path_buf(), |p, c| p.join(bytes_path(c)));
            written = data.copy(entry, Some((&mut file, &host_path)))?;
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
            // SAFETY: both strings are NUL-terminated; `pfd` is open.
            cvt(unsafe { libc::symlinkat(ctarget.as_ptr(), pfd, cname.as_ptr()) })
                .context("symlinkat(2)")?;
            if chown {
                // SAFETY: as above; AT_SYMLINK_NOFOLLOW changes the link itself.
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
            // SAFETY: both names are NUL-terminated; both descriptors are open.
            cvt(unsafe { libc::linkat(tdir.as_raw_fd(), ctname.as_ptr(), pfd, cname.as_ptr(), 0) })
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ENOENT) => Error::runtime(format!(
                        "hard link to {shown:?}, which is not (yet) in this layer"
                    )),
                    Some(libc::EPERM)
                        if lstat_kind(tdir.as_raw_fd(), tname) == Some(libc::S_IFDIR) =>
                    {
                        Error::runtime(format!("hard link to {shown:?}, a directory: not allowed"))
                    }
                    _ => Error::runtime(format!("hard link to {shown:?}: linkat(2): {e}")),
                })?;
        }
        tar::EntryType::Fifo => {
            remove_existing(pfd, name, false)?;
            // SAFETY: `cname` is NUL-terminated; `pfd` is open.
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

// ANCHOR: copy
/// The layer's data so far, against its limit, and the copy loop that every
/// byte of it goes through.
struct Data<'a> {
    used: u64,
    max: u64,
    since_cancel: u64,
    cancel: &'a dyn Fn() -> Result<()>,
    buf: Vec<u8>,
}

impl Data<'_> {
    /// Whether `size` more bytes fit in the limit.
    fn fits(&self, size: u64) -> Result<()> {
        match self.used.checked_add(size) {
            Some(total) if total <= self.max => Ok(()),
            _ => Err(Error::runtime(format!(
                "more than {} of data in the layer, its limit (--max-layer-size SIZE raises it)",
                human(self.max)
            ))),
        }
    }

    /// Copies `src` to `out` (a file being written, and its path for the
    /// messages), or reads it to its end if there is no `out`. Every chunk is
    /// counted before it is written: a header that lies about its size, or a
    /// sparse file, cannot pass the limit. A failure says which side failed:
    /// reading the layer, or writing the file.
    fn copy(&mut self, src: &mut dyn Read, mut out: Option<(&mut File, &Path)>) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = match src.read(&mut self.buf) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(&e)),
            };
            self.fits(n as u64)?;
            self.used += n as u64;
            if let Some((file, path)) = out.as_mut() {
                file.write_all(&self.buf[..n])
                    .map_err(|e| write_error(path, &e))?;
            }
            total += n as u64;
            self.since_cancel += n as u64;
            if self.since_cancel >= CANCEL_EVERY {
                self.since_cancel = 0;
                (self.cancel)()?;
            }
        }
    }
}

fn read_error(e: &io::Error) -> Error {
    let why = match e.raw_os_error() {
        Some(n) => ch01_process::error::describe(nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    };
    Error::runtime(format!(
        "the layer could not be read (truncated or corrupt): {why}"
    ))
}

fn write_error(path: &Path, e: &io::Error) -> Error {
    let Some(errno) = e.raw_os_error() else {
        return Error::runtime(format!("writing {path:?}: {e}"));
    };
    let why = ch01_process::error::describe(nix::errno::Errno::from_raw(errno));
    let full = match errno {
        libc::ENOSPC => ": the file system of the state directory is full",
        libc::EDQUOT => ": the state directory's disk quota is used up",
        _ => "",
    };
    Error::runtime(format!("writing {path:?}: {why}{full}"))
}
// ANCHOR_END: copy

/// Counts what the tar crate reads while it looks for the next entry (its
/// headers, long names, pax records), so that one entry's headers cannot
/// make it read a gigabyte into memory. `left` is `None` while an entry's
/// data is read: that is counted by [`Data`].
#[derive(Default)]
struct HeaderBudget {
    left: Cell<Option<u64>>,
    exceeded: Cell<bool>,
}

struct Metered<'a, R> {
    inner: R,
    headers: &'a HeaderBudget,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.headers.left.get() else {
            return self.inner.read(buf);
        };
        if left == 0 && !buf.is_empty() {
            self.headers.exceeded.set(true);
            return Err(io::Error::other("the headers of an entry are too large"));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.headers.left.set(Some(left - n as u64));
        Ok(n)
    }
}

/// 16 GiB, 1 MiB, 1000 bytes: a limit as it is best read.
fn human(n: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

fn bytes_path(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

// ANCHOR: whiteout
/// OCI marks deletions with files named `.wh.NAME`, overlayfs with a
/// character device 0:0 named NAME; an opaque directory (whose lower
/// contents are hidden) is `DIR/.wh..wh..opq` in OCI and the xattr
/// `trusted.overlay.opaque=y` on DIR for overlayfs. The markers themselves
/// are not extracted.
enum Marker<'a> {
    Opaque,
    Delete(&'a [u8]),
    /// `.wh..wh.plnk` and the like: AUFS bookkeeping, meaningless here
    /// (docker skips them too).
    Ignore,
}

/// What the marker `.wh.NAME` means. NAME is checked like every other name
/// before anything is made or removed: `.wh...` would delete "..", the
/// directory that holds every cached layer, and `.wh..` the layer's own
/// directory.
fn marker(file_name: &[u8]) -> Result<Marker<'_>> {
    if file_name == OPAQUE {
        return Ok(Marker::Opaque);
    }
    let name = &file_name[WH_PREFIX.len()..];
    if name.starts_with(WH_PREFIX) {
        return Ok(Marker::Ignore);
    }
    match bad_name(name) {
        Some(why) => Err(Error::runtime(format!(
            "whiteout of {why}: not allowed in a layer \
             (a whiteout deletes one entry of its directory)"
        ))),
        None => Ok(Marker::Delete(name)),
    }
}

/// The xattr that marks an opaque directory: overlayfs reads
/// `trusted.overlay.*`, which only CAP_SYS_ADMIN (on the host) may set;
/// mounted with `userxattr`, as a rootless overlay must be, it reads
/// `user.overlay.*` instead (Linux 5.11), which a file's owner may set.
pub fn opaque_xattr(trusted: bool) -> &'static CStr {
    match trusted {
        true => c"trusted.overlay.opaque",
        false => c"user.overlay.opaque",
    }
}

fn whiteout(parent: &OwnedFd, marker: Marker, trusted: bool) -> Result<()> {
    match marker {
        Marker::Ignore => Ok(()),
        Marker::Opaque => {
            let (name, value) = (opaque_xattr(trusted), b"y");
            // SAFETY: `name` is NUL-terminated, `value` is 1 byte long, and
            // the descriptor is open while `parent` lives.
            let rc = unsafe {
                libc::fsetxattr(
                    parent.as_raw_fd(),
                    name.as_ptr(),
                    value.as_ptr().cast(),
                    1,
                    0,
                )
            };
            cvt(rc).map(drop).context(format!(
                "setxattr(2) {}=y (on a file system with {} xattrs)",
                name.to_string_lossy(),
                if trusted { "trusted" } else { "user" }
            ))
        }
        Marker::Delete(name) => {
            remove_existing(parent.as_raw_fd(), name, false)?;
            mknod_whiteout(parent.as_raw_fd(), &cstring(name)?)
        }
    }
}

fn mknod_whiteout(dir: RawFd, name: &CString) -> Result<()> {
    // SAFETY: `name` is NUL-terminated; `dir` is an open directory descriptor.
    let rc = unsafe { libc::mknodat(dir, name.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    // Not root: allowed for 0:0 alone, since Linux 5.8 (vfs_mknod()).
    cvt(rc)
        .map(drop)
        .context("mknodat(2) a whiteout (character device 0:0; not root: Linux 5.8 or later)")
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
                // SAFETY: `cname` is NUL-terminated; `dir` is an open directory.
                // (The messages are made only on error: `here` is as long as the path.)
                cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o755) })
                    .or_else(|e| Err(e).context(format!("mkdirat(2) {}", here())))?;
                // mkdirat's mode is reduced by the umask: set it exactly.
                // SAFETY: as above; the directory was just made by us, not a symlink.
                cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), cname.as_ptr(), 0o755, 0) })
                    .or_else(|e| Err(e).context(format!("chmod {}", here())))?;
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
    // Callers pass checked names; this is the last line of defence: "."
    // or ".." here would remove a directory that is not in `dir`.
    if let Some(why) = bad_name(name) {
        return Err(Error::runtime(format!("cannot replace {why}")));
    }
    let Some(kind) = lstat_kind(dir, name) else {
        return Ok(false);
    };
    if kind == libc::S_IFDIR && new_is_dir {
        return Ok(true);
    }
    // One descriptor at any depth, and nothing below is followed: an
    // earlier entry of the layer may be a chain deeper than the open-file
    // limit, or hold symlinks to anywhere.
    crate::remove::remove_all_at(dir, name).context(match kind {
        libc::S_IFDIR => "replacing a directory",
        _ => "replacing an earlier entry",
    })?;
    Ok(false)
}

/// The file type (S_IFMT bits) of `name` in `dir`, without following a symlink.
fn lstat_kind(dir: RawFd, name: &[u8]) -> Option<libc::mode_t> {
    let cname = cstring(name).ok()?;
    // SAFETY: an all-zero stat is a valid value, filled in by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `cname` is NUL-terminated and `st` a valid buffer.
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
            // SAFETY: plain syscalls on a descriptor; a bad one only makes them fail.
            if chown {
                cvt(unsafe { libc::fchown(fd, uid, gid) }).context("fchown(2)")?;
            }
            // SAFETY: as above.
            cvt(unsafe { libc::fchmod(fd, mode) }).context("fchmod(2)")?;
        }
        Some(name) => {
            if chown {
                // SAFETY: `name` is NUL-terminated; AT_SYMLINK_NOFOLLOW changes `name` itself.
                let rc = unsafe {
                    libc::fchownat(fd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
                };
                cvt(rc).context("lchown(2)")?;
            }
            // Only used on entries just created by mknodat(2): not symlinks.
            // SAFETY: `name` is NUL-terminated.
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
    // SAFETY: `times` holds the two timespecs both calls read; `name` is NUL-terminated.
    let rc = match name {
        None => unsafe { libc::futimens(fd, times.as_ptr()) },
        Some(name) => unsafe { libc::utimensat(fd, name.as_ptr(), times.as_ptr(), flags) },
    };
    cvt(rc).map(drop).context("setting the modification time")
}

fn open_root(dest: &Path) -> Result<OwnedFd> {
    let c = cstring(dest.as_os_str().as_encoded_bytes())?;
    // SAFETY: `c` is NUL-terminated.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    cvt(fd).context(format!("opening {}", dest.display()))?;
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn openat(dir: RawFd, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is NUL-terminated.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), flags | libc::O_CLOEXEC, 0o600) };
    cvt(fd)?;
    // SAFETY: `fd` was just opened and nothing else owns it.
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testdata::{self, Entry};
    use std::os::unix::fs::FileTypeExt;

    /// Root is needed to mount, to give files away and to make device
    /// nodes; under `CI=true` its absence is a failure, elsewhere the test
    /// is skipped.
    pub(crate) fn root() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "needs root (CI=true: not skipped)"
            );
            eprintln!("SKIPPED: needs root");
        }
        root
    }

    fn never() -> Result<()> {
        Ok(())
    }

    /// A scratch dir with `layers/other/file` (a cached layer) and an empty
    /// `layers/new` to unpack into.
    struct Cache {
        dir: tempfile::TempDir,
    }

    impl Cache {
        fn new() -> Cache {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("layers/other")).unwrap();
            std::fs::write(dir.path().join("layers/other/file"), "kept").unwrap();
            std::fs::create_dir(dir.path().join("layers/new")).unwrap();
            Cache { dir }
        }
        fn new_layer(&self) -> PathBuf {
            self.dir.path().join("layers/new")
        }
        fn unpack(&self, tar: &[u8], limits: &Limits) -> Result<Unpacked> {
            unpack(tar, &self.new_layer(), limits, &never)
        }
        fn other_is_intact(&self) -> bool {
            std::fs::read_to_string(self.dir.path().join("layers/other/file")).ok()
                == Some("kept".into())
        }
    }

    impl Drop for Cache {
        fn drop(&mut self) {
            // Deeper than std's remove_dir_all can go, for the deep tests.
            let _ = crate::remove::remove_all(self.dir.path());
        }
    }

    #[test]
    fn whiteouts_of_names_that_are_not_entries_are_refused_before_anything_is_removed() {
        for (marker, why) in [
            (&b".wh..."[..], "whiteout of \"..\""),
            (b"keep/.wh...", "whiteout of \"..\""),
            (b"keep/.wh..", "whiteout of \".\""),
            (b"keep/.wh.", "whiteout of an empty name"),
        ] {
            let cache = Cache::new();
            let tar = testdata::tar(&[Entry::file(b"keep/file", b"x"), Entry::file(marker, b"")]);
            let e = cache.unpack(&tar, &Limits::default()).unwrap_err();
            let shown = String::from_utf8_lossy(marker);
            assert!(e.msg.contains(why), "{shown}: {}", e.msg);
            assert!(cache.other_is_intact(), "{shown} deleted another layer");
            assert!(
                cache.new_layer().join("keep/file").is_file(),
                "{shown} deleted in its own layer"
            );
        }
        // The markers that delete nothing are still skipped, and a good whiteout works.
        let cache = Cache::new();
        let tar = testdata::tar(&[
            Entry::file(b"keep/file", b"x"),
            Entry::file(b"keep/.wh..wh.plnk", b""),
            Entry::file(b".wh..wh..wh..", b""),
            Entry::file(b"keep/.wh.file", b""),
        ]);
        cache.unpack(&tar, &Limits::default()).unwrap();
        let file = std::fs::symlink_metadata(cache.new_layer().join("keep/file"));
        assert!(file.unwrap().file_type().is_char_device());
        assert!(cache.other_is_intact());
    }

    #[test]
    fn root_and_an_ordinary_user_mark_opaque_directories_and_set_modes_differently() {
        assert_eq!(opaque_xattr(true), c"trusted.overlay.opaque");
        assert_eq!(opaque_xattr(false), c"user.overlay.opaque");
        assert_eq!(dir_mode(0o555, true), (0o555, None));
        assert_eq!(dir_mode(0o555, false), (0o755, Some(0o555)));
        assert_eq!(dir_mode(0o2000, false), (0o2700, Some(0o2000)));
    }

    /// Root of a user namespace with the container's maps (what a rootless
    /// unpack is, see store.rs) gives each file the tar's owner, refuses an
    /// owner the maps do not map, and marks opaque directories with user
    /// xattrs. Run as root on the host: the same system calls, unshifted.
    #[test]
    fn root_of_a_user_namespace_keeps_the_tars_owners_and_writes_user_xattrs() {
        if !root() {
            return;
        }
        let owned = |uid: u64, entries: &[(&str, tar::EntryType)]| {
            let mut b = tar::Builder::new(Vec::new());
            for &(path, kind) in entries {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(kind);
                h.set_uid(uid);
                h.set_gid(uid);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            b.into_inner().unwrap()
        };
        let maps = crate::ids::Owners {
            uids: crate::rootless::own_and_subordinate(1001, &[(100_000, 65_536)]),
            gids: crate::rootless::own_and_subordinate(1001, &[(100_000, 65_536)]),
        };
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("layer");
        std::fs::create_dir(&dest).unwrap();
        let tar = owned(
            1000,
            &[
                ("home/u", tar::EntryType::Directory),
                ("home/u/f", tar::EntryType::Regular),
                ("home/u/.wh..wh..opq", tar::EntryType::Regular),
            ],
        );
        let inside = maps.inside();
        unpack_with(
            &tar[..],
            &dest,
            &Limits::default(),
            &inside,
            Rights::USERNS_ROOT,
            &never,
        )
        .unwrap();
        use std::os::unix::fs::MetadataExt;
        for path in ["home/u", "home/u/f"] {
            let meta = std::fs::symlink_metadata(dest.join(path)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "{path}");
        }
        let u = dest.join("home/u");
        assert_eq!(xattr(&u, c"user.overlay.opaque"), Some(b"y".to_vec()));
        assert_eq!(xattr(&u, c"trusted.overlay.opaque"), None);

        let unmapped = owned(70_000, &[("f", tar::EntryType::Regular)]);
        let dest = scratch.path().join("unmapped");
        std::fs::create_dir(&dest).unwrap();
        let e = unpack_with(
            &unmapped[..],
            &dest,
            &Limits::default(),
            &inside,
            Rights::USERNS_ROOT,
            &never,
        )
        .unwrap_err();
        assert!(e.msg.contains("uid 70000"), "{}", e.msg);
    }

    /// The value of the xattr `name` of `path`, if it has one.
    fn xattr(path: &Path, name: &CStr) -> Option<Vec<u8>> {
        let c = cstring(path.as_os_str().as_encoded_bytes()).unwrap();
        let mut buf = [0u8; 64];
        // SAFETY: both strings are NUL-terminated, `buf` is valid for its length.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        (n >= 0).then(|| buf[..n as usize].to_vec())
    }

    /// What an ordinary user's unpack makes, for real: run by
    /// [`an_ordinary_user_unpacks_read_only_directories_whiteouts_and_opaque_ones`]
    /// as nobody.
    #[test]
    #[ignore = "run as nobody by an_ordinary_user_unpacks_read_only_directories_whiteouts_and_opaque_ones"]
    fn unpack_as_nobody() {
        assert!(!nix::unistd::geteuid().is_root());
        let scratch = tempfile::tempdir().unwrap();
        let dest = scratch.path().join("layer");
        std::fs::create_dir(&dest).unwrap();
        let entries = [
            Entry {
                mode: 0o555,
                ..Entry::new(tar::EntryType::Directory, b"ro")
            },
            Entry::file(b"ro/file", b"x"),
            Entry {
                mode: 0o500,
                ..Entry::new(tar::EntryType::Directory, b"ro/sub")
            },
            Entry::file(b"ro/sub/file", b"y"),
            Entry::new(tar::EntryType::Directory, b"twice"),
            Entry {
                mode: 0o750,
                ..Entry::new(tar::EntryType::Directory, b"twice")
            },
            Entry::file(b"op/.wh..wh..opq", b""),
            Entry::file(b"ro/.wh.gone", b""),
        ];
        let tar = testdata::tar(&entries);
        let limits = Limits::default();
        unpack_as(&tar[..], &dest, &limits, &Owners::default(), &never).unwrap();
        let mode = |p: &str| std::fs::metadata(dest.join(p)).unwrap().mode() & 0o7777;
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (mode("ro"), mode("ro/sub"), mode("twice")),
            (0o555, 0o500, 0o750)
        );
        let gone = std::fs::symlink_metadata(dest.join("ro/gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        assert_eq!(
            xattr(&dest.join("op"), c"user.overlay.opaque"),
            Some(b"y".to_vec())
        );
        assert_eq!(xattr(&dest.join("op"), c"trusted.overlay.opaque"), None);
        // Removing it takes u+w back (the owner's own namespace, see rootless.rs).
        assert!(crate::remove::remove_all(&dest).is_err());
        crate::remove::remove_tree(&dest).unwrap();
        assert!(!dest.exists());
    }

    #[test]
    fn an_ordinary_user_unpacks_read_only_directories_whiteouts_and_opaque_ones() {
        if !root() {
            return;
        }
        crate::remove::tests::run_as("layer::tests::unpack_as_nobody", 65534);
    }

    #[test]
    fn names_are_checked_like_single_components() {
        assert_eq!(components(b"/./a//b/.").unwrap(), [&b"a"[..], b"b"]);
        for (path, why) in [
            (&b"a/../b"[..], "\"..\""),
            (&[b'x'; 256][..], "longer than 255 bytes"),
        ] {
            let e = components(path).unwrap_err();
            assert!(e.msg.contains(why), "{}", e.msg);
        }
        assert!(components(&[b'x'; 255]).is_ok());
        for name in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
            assert!(bad_name(name).is_some(), "{name:?}");
        }
    }

    #[test]
    fn replacing_a_directory_deeper_than_the_open_file_limit() {
        // With a limit of 256 descriptors, so that the chain is short.
        crate::remove::tests::run_with_nofile("layer::tests::deep_replace", 256);
    }

    #[test]
    #[ignore = "run by replacing_a_directory_deeper_than_the_open_file_limit, with a low limit"]
    fn deep_replace() {
        // std's remove_dir_all holds a descriptor per level: past the
        // limit it fails with EMFILE (and an earlier version used it here).
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a valid buffer.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        let depth = (lim.rlim_cur as usize).saturating_add(64).min(5000);
        let deep: Vec<u8> = [&b"d/".repeat(depth)[..], b"f"].concat();
        let cache = Cache::new();
        let tar = testdata::tar(&[Entry::file(&deep, b"x"), Entry::file(b"d", b"a file now")]);
        cache.unpack(&tar, &Limits::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(cache.new_layer().join("d")).unwrap(),
            "a file now"
        );
    }

    #[test]
    fn entries_past_the_limit_are_refused() {
        let tar = testdata::tar(&[
            Entry::file(b"a", b""),
            Entry::new(tar::EntryType::Directory, b"b/"),
            Entry::file(b"c", b""),
        ]);
        let limits = |n| Limits {
            max_entries: n,
            ..Limits::default()
        };
        let cache = Cache::new();
        assert_eq!(cache.unpack(&tar, &limits(3)).unwrap().entries, 3);
        let cache = Cache::new();
        let e = cache.unpack(&tar, &limits(2)).unwrap_err();
        assert_eq!(
            e.msg,
            "more than 2 entries in the layer, its limit (--max-layer-entries N raises it)"
        );
        assert!(!cache.new_layer().join("c").exists());
    }

    #[test]
    fn data_past_the_limit_is_refused_before_it_is_written() {
        let limits = |n| Limits {
            max_bytes: n,
            ..Limits::default()
        };
        let tar = testdata::tar(&[
            Entry::file(b"a", &[b'a'; 600]),
            Entry::file(b"b", &[b'b'; 424]),
        ]);
        let cache = Cache::new();
        assert_eq!(cache.unpack(&tar, &limits(1024)).unwrap().bytes, 1024);
        let cache = Cache::new();
        let e = cache.unpack(&tar, &limits(1023)).unwrap_err();
        assert_eq!(
            e.msg,
            "entry \"b\": more than 1023 bytes of data in the layer, its limit (--max-layer-size SIZE raises it)"
        );
        assert!(
            !cache.new_layer().join("b").exists(),
            "written before the check"
        );

        // A header that says a terabyte follows; a sparse file of 20 GiB in 512 bytes.
        for tar in [
            testdata::tar(&[Entry {
                size: Some(1 << 40),
                ..Entry::file(b"huge", b"")
            }]),
            testdata::sparse(b"huge", 20 << 30, &[b's'; 512]),
        ] {
            let cache = Cache::new();
            let e = cache.unpack(&tar, &limits(1 << 20)).unwrap_err();
            assert!(e.msg.contains("more than 1 MiB of data"), "{}", e.msg);
            assert!(!cache.new_layer().join("huge").exists());
        }
        // Within the limit, the sparse file is unpacked, holes and all.
        let cache = Cache::new();
        let tar = testdata::sparse(b"sparse", 4096, &[b's'; 512]);
        cache.unpack(&tar, &limits(4096)).unwrap();
        let data = std::fs::read(cache.new_layer().join("sparse")).unwrap();
        assert_eq!((data.len(), data[0], data[4095]), (4096, 0, b's'));
    }

    #[test]
    fn the_copy_counts_what_it_copies_whatever_the_header_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut file = File::create(&path).unwrap();
        let mut data = Data {
            used: 0,
            max: 1000,
            since_cancel: 0,
            cancel: &never,
            buf: vec![0; 256],
        };
        let e = data
            .copy(&mut &[7u8; 4096][..], Some((&mut file, &path)))
            .unwrap_err();
        assert!(e.msg.contains("more than 1000 bytes"), "{}", e.msg);
        assert!(std::fs::metadata(&path).unwrap().len() <= 1000);
    }

    #[test]
    fn headers_cannot_fill_memory() {
        // A GNU long name of 2 MiB: the tar crate would read it all into memory.
        let name = vec![b'n'; 2 << 20];
        let tar = testdata::tar(&[Entry::file(&name, b"")]);
        let e = Cache::new().unpack(&tar, &Limits::default()).unwrap_err();
        assert_eq!(
            e.msg,
            "the headers of entry 1 hold more than 1 MiB (long names, pax records): refused"
        );
    }

    #[test]
    fn cancel_stops_between_entries_and_within_a_large_file() {
        let interrupted = || Error::with_code(130, "interrupted by SIGINT");
        // Between entries: the third call (before the third entry) fails.
        let calls = Cell::new(0);
        let cancel = || {
            calls.set(calls.get() + 1);
            match calls.get() {
                3 => Err(interrupted()),
                _ => Ok(()),
            }
        };
        let tar = testdata::tar(&[
            Entry::file(b"a", b""),
            Entry::file(b"b", b""),
            Entry::file(b"c", b""),
        ]);
        let cache = Cache::new();
        let e = unpack(&tar[..], &cache.new_layer(), &Limits::default(), &cancel).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (130, "interrupted by SIGINT"));
        assert!(cache.new_layer().join("b").exists() && !cache.new_layer().join("c").exists());

        // Within a file: every call after the first (before the entry) fails.
        let big = vec![b'x'; 32 << 20];
        let tar = testdata::tar(&[Entry::file(b"big", &big)]);
        let calls = Cell::new(0);
        let cancel = || {
            calls.set(calls.get() + 1);
            match calls.get() {
                1 => Ok(()),
                _ => Err(interrupted()),
            }
        };
        let cache = Cache::new();
        let e = unpack(&tar[..], &cache.new_layer(), &Limits::default(), &cancel).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (130, "interrupted by SIGINT"));
        let written = std::fs::metadata(cache.new_layer().join("big"))
            .unwrap()
            .len();
        assert!(written <= 2 * CANCEL_EVERY, "{written} bytes written first");
    }

    #[test]
    fn a_layer_that_cannot_be_read_is_not_a_full_disk_and_the_reverse() {
        // Incompressible data, cut in the middle of the gzip stream.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        let gz = testdata::gzip(&testdata::tar(&[Entry::file(b"noise", &noise)]));
        let cut = flate2::read::MultiGzDecoder::new(&gz[..gz.len() / 2]);
        let cache = Cache::new();
        let e = unpack(cut, &cache.new_layer(), &Limits::default(), &never).unwrap_err();
        assert!(
            e.msg.starts_with(
                "entry \"noise\": the layer could not be read (truncated or corrupt): "
            ),
            "{}",
            e.msg
        );
    }

    /// Unmounts on drop, also when the test panics.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn a_full_file_system_is_named_as_such() {
        if !root() {
            return;
        }
        use nix::mount::{mount, MsFlags};
        let scratch = tempfile::tempdir().unwrap();
        let fs = scratch.path().to_path_buf();
        // In a thread with a mount namespace of its own: the host never sees
        // the tmpfs, and it goes with the thread whatever happens.
        let result = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            let none = None::<&str>;
            mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
            mount(
                Some("tmpfs"),
                &fs,
                Some("tmpfs"),
                MsFlags::empty(),
                Some("size=1m"),
            )
            .unwrap();
            let _mounted = Unmount(fs.clone());
            let dest = fs.join("layer");
            std::fs::create_dir(&dest).unwrap();
            let tar = testdata::tar(&[Entry::file(b"big", &vec![7u8; 2 << 20])]);
            unpack(&tar[..], &dest, &Limits::default(), &never).map_err(|e| (e, dest))
        })
        .join()
        .unwrap();
        let (e, dest) = result.unwrap_err();
        assert_eq!(
            e.msg,
            format!(
                "entry \"big\": writing {:?}: no space left on device: the file system of the state directory is full",
                dest.join("big")
            )
        );
    }
}
