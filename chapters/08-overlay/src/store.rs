//! The state directory (`--state-dir`, default /var/lib/stepbox):
//!
//! ```text
//! layers/<sha256 of the tar file>/     one unpacked layer, shared by every container
//! layers/by-file/<identity>            a layer file's digest, remembered (see Store::digest)
//! layers/lock                          taken by unpacks and by the reclaim of stale temp dirs
//! layers/.tmp-<sha256>-<random>/       an unpack in progress, or left by a killed run
//! containers/<id>/{upper,work,merged}  one container's writable layer and mount point
//! containers/<id>/l/0, l/1, …          short symlinks to its layers (see lib.rs)
//! ```
//!
//! A layer is unpacked once: its directory is named after the hash of its
//! tar file, so the same file is found again next time, whatever its name.
//! It is unpacked into a temporary directory that is renamed into place in
//! one step, so that a directory under its final name is always complete,
//! even when two runs unpack the same layer at once.

use crate::{layer, remove};
use ch01_process::{Context, Ctx, Error, Result};
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub struct Store {
    pub root: PathBuf,
    /// How much one layer may hold once unpacked (`--max-layer-size`,
    /// `--max-layer-entries`); a layer beyond them is refused.
    pub limits: layer::Limits,
    /// Who owns the files on the host (chapter 11's id maps): a store holds
    /// layers unpacked for one set of maps only (see ids.rs).
    pub owners: crate::ids::Owners,
    /// What [`Store::open`] found left by killed runs and could not
    /// remove, one line each (saying what is left, and where).
    pub stale: Vec<String>,
}

impl Store {
    /// Creates the state directory and its two subdirectories if needed,
    /// then removes the temporary directories that killed runs left (see
    /// [`Store::reclaim`]).
    /// They are mode 0700: an unpacked layer may hold setuid-root programs,
    /// which must not be reachable by the host's other users.
    pub fn open(root: &Path) -> Result<Store> {
        for dir in [
            root.to_path_buf(),
            root.join("layers"),
            root.join("containers"),
        ] {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(e).context(format!("mkdir {}", dir.display())),
            }
        }
        let root = root
            .canonicalize()
            .context(format!("state dir {}", root.display()))?;
        let mut store = Store {
            root,
            limits: layer::Limits::default(),
            owners: crate::ids::Owners::default(),
            stale: Vec::new(),
        };
        store.stale = store.reclaim()?;
        Ok(store)
    }

    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub fn container(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn memo_dir(&self) -> PathBuf {
        self.layers().join("by-file")
    }

    /// The unpacked directory of the layer `tar`: from the cache, or unpacked now.
    pub fn layer(&self, ctx: &Ctx, tar: &Path) -> Result<PathBuf> {
        let (mut file, meta) = open_layer(tar)?;
        let digest = self.digest(ctx, tar, &mut file, &meta)?;
        let short = &digest[..12];
        let dir = self.layers().join(&digest);
        if dir.is_dir() {
            ctx.say(format_args!(
                "unpack layer sha256:{short}… from {} (cached)",
                tar.display()
            ));
            return Ok(dir);
        }

        // `_held` keeps the temp dir locked until this function returns:
        // while it is, no other run's reclaim() touches it.
        let (tmp, _held) = self.temp(&self.layers(), &format!("{digest}-"), mkdir_open)?;
        ctx.say(format_args!("mkdir {}, flock(2) it", tmp.display()));
        let unpacked = file
            .rewind()
            .context(format!("rewinding {tar:?}"))
            .and_then(|()| unpack_verified(file, &digest, &tmp, &self.limits, &self.owners));
        let unpacked = match unpacked {
            Ok(u) => u,
            Err(e) => {
                // The unpack's own error is what the user needs first; a
                // temp dir that cannot be removed is said too, never dropped.
                let msg = format!("layer {}: {}", tar.display(), e.msg);
                return Err(Error::with_code(
                    e.code,
                    match remove::remove_tree(&tmp) {
                        Ok(()) => msg,
                        Err(r) => format!(
                            "{msg}; then removing its temporary directory failed, \
                             left {tmp:?}: {r}"
                        ),
                    },
                ));
            }
        };
        // RENAME_NOREPLACE: if another run finished first, keep its copy.
        match rename_noreplace(&tmp, &dir) {
            Ok(()) => ctx.say(format_args!(
                "unpack layer sha256:{short}… from {} ({} entries, {} KiB)",
                tar.display(),
                unpacked.entries,
                unpacked.bytes / 1024,
            )),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                remove::remove_tree(&tmp).map_err(|r| {
                    Error::runtime(format!(
                        "layer {}: unpacked meanwhile by another run, but removing our \
                         copy failed, left {tmp:?}: {r}",
                        tar.display()
                    ))
                })?;
                ctx.say(format_args!(
                    "unpack layer sha256:{short}… from {} (unpacked meanwhile by another run)",
                    tar.display()
                ));
            }
            Err(e) => {
                let msg = format!("renaming {} to {}: {e}", tmp.display(), dir.display());
                return Err(Error::runtime(match remove::remove_tree(&tmp) {
                    Ok(()) => msg,
                    Err(r) => format!("{msg}; then removing it failed, left {tmp:?}: {r}"),
                }));
            }
        }
        Ok(dir)
    }
}

// ANCHOR: reclaim
impl Store {
    /// Removes what runs killed half-way (kill -9, a crash, a power cut)
    /// left: every `.tmp-*` entry of `layers/` and `layers/by-file/` that
    /// is not in use. Whether it is in use is not guessed from a pid in its
    /// name (pids are reused, and threads of one process share one): each
    /// run holds an flock(2) on its temporary entry for as long as it works
    /// on it, and the kernel drops that lock when the run ends, however it
    /// ends. So an entry whose lock can be taken without waiting is stale.
    ///
    /// Between creating its entry and locking it, a run holds `layers/lock`
    /// shared; the scan holds it exclusive, so it never sees an entry that
    /// exists but is not locked yet. The stale entries are removed after
    /// that lock is released (they stay locked by us meanwhile): removing
    /// a large one takes a while, and other runs need not wait for it.
    ///
    /// Returns a line for each one that could not be removed.
    pub fn reclaim(&self) -> Result<Vec<String>> {
        let mut failed = Vec::new();
        let mut stale = Vec::new();
        {
            let _scan = self.lock_store(true)?;
            for dir in [self.layers(), self.memo_dir()] {
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).context(format!("reading {dir:?}")),
                };
                for entry in entries {
                    let entry = entry.context(format!("reading {dir:?}"))?;
                    if !entry.file_name().as_bytes().starts_with(b".tmp-") {
                        continue;
                    }
                    let path = entry.path();
                    // O_NOFOLLOW: what we did not make (a symlink) is not ours
                    // to lock or remove. O_NONBLOCK: nor is a FIFO to wait on.
                    let file = match OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                        .open(&path)
                    {
                        Ok(file) => file,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue,
                        Err(e) => {
                            failed.push(format!("left {path:?}: opening it failed: {e}"));
                            continue;
                        }
                    };
                    match file.try_lock() {
                        Ok(()) => stale.push((path, file)),
                        Err(fs::TryLockError::WouldBlock) => {} // a live run's
                        Err(fs::TryLockError::Error(e)) => {
                            failed.push(format!("left {path:?}: flock(2) failed: {e}"))
                        }
                    }
                }
            }
        }
        for (path, _locked) in stale {
            if let Err(e) = remove::remove_tree(&path) {
                failed.push(format!(
                    "left {path:?} (from a run that was killed): removing it failed: {e}"
                ));
            }
        }
        Ok(failed)
    }

    /// `layers/lock`, flock(2)ed shared or exclusive until the file is dropped.
    fn lock_store(&self, exclusive: bool) -> Result<File> {
        let path = self.layers().join("lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .context(format!("opening {path:?}"))?;
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.context(format!("flock(2) {path:?}"))?;
        Ok(file)
    }

    /// A new entry `dir/.tmp-PREFIX<random>`, made by `make` and locked
    /// (see [`Store::reclaim`]) until the returned file is dropped. The name
    /// is random, so that two runs, or two threads of one, never share one.
    fn temp(
        &self,
        dir: &Path,
        prefix: &str,
        make: fn(&Path) -> io::Result<File>,
    ) -> Result<(PathBuf, File)> {
        let _creating = self.lock_store(false)?;
        let path = dir.join(format!(".tmp-{prefix}{}", random_hex()?));
        let file = make(&path).context(format!("creating {}", path.display()))?;
        // Nobody else knows the name yet: the lock is free.
        if let Err(e) = file.try_lock() {
            let e = match e {
                fs::TryLockError::Error(e) => e,
                fs::TryLockError::WouldBlock => io::Error::from_raw_os_error(libc::EWOULDBLOCK),
            };
            let _ = remove::remove_all(&path);
            return Err(e).context(format!("flock(2) {}", path.display()));
        }
        Ok((path, file))
    }
}
// ANCHOR_END: reclaim

/// mkdir(2) `path` mode 0755 (the layer's root, unless the tar says
/// otherwise; not reduced by the umask) and open it, for its lock.
fn mkdir_open(path: &Path) -> io::Result<File> {
    fs::DirBuilder::new().mode(0o755).create(path)?;
    let opened = fs::set_permissions(path, fs::Permissions::from_mode(0o755)).and_then(|()| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
    });
    if opened.is_err() {
        let _ = fs::remove_dir(path); // still empty
    }
    opened
}

/// 16 random hex digits, from getrandom(2).
fn random_hex() -> Result<String> {
    let mut b = [0u8; 8];
    // SAFETY: `b` is a valid buffer of b.len() bytes.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        return Err(io::Error::last_os_error()).context("getrandom(2)");
    }
    Ok(hex(&b))
}

// ANCHOR: digest
impl Store {
    /// The sha256 of the layer file `tar` (open as `file`, with `meta`),
    /// remembered by the file's identity. An engine hashes a layer once,
    /// when it pulls it; here the tar file is the pull, so its digest is
    /// kept under `layers/by-file/DEV-INO-SIZE-MTIME-CTIME` and a start with
    /// cached layers reads no layer data at all.
    ///
    /// What this guarantees: the memo is used only for a file whose device,
    /// inode, size, mtime and ctime (to the nanosecond) are those it had
    /// when it was hashed. The mtime alone proves nothing: utimensat(2)
    /// sets it to any value, and `touch -r`, `cp -p` and `rsync -t` do. The
    /// ctime cannot be set by any system call: the kernel sets it to the
    /// current time whenever the file's data or metadata change (setting
    /// the mtime included). But the time it uses advances in clock ticks,
    /// and a filesystem may keep it only to the second (or two): a change
    /// made in the same tick as the one the memo recorded would keep the
    /// same ctime. So, as git does for its index ("racy git"), a memo is
    /// written only once the file's ctime is at least [`SETTLED`] old, and
    /// only if the file did not change while it was hashed; a file younger
    /// than that is hashed again at each start. Any change after that has a
    /// later ctime, and the file is hashed again. Not detected: a system
    /// clock set back to the old ctime before the change, or a filesystem
    /// written behind the kernel's back (a raw block device, debugfs). Even
    /// then, what the memo names is a layer unpacked earlier and verified
    /// against its digest then: old content, never unverified content.
    fn digest(&self, ctx: &Ctx, tar: &Path, file: &mut File, meta: &Metadata) -> Result<String> {
        let memo = self.memo_dir().join(memo_name(meta));
        if let Ok(digest) = fs::read_to_string(&memo) {
            if is_digest(&digest) && self.layers().join(&digest).is_dir() {
                return Ok(digest);
            }
        }
        ctx.say(format_args!("sha256 {}", tar.display()));
        let digest = sha256(file, &ch01_process::runtime::interrupted)
            .map_err(|e| Error::with_code(e.code, format!("layer {tar:?}: {}", e.msg)))?;
        let unchanged = file
            .metadata()
            .is_ok_and(|m| memo_name(&m) == memo_name(meta));
        if unchanged && settled(meta, SystemTime::now()) {
            // Best effort: a memo that cannot be written only costs a hash next time.
            let _ = self.write_memo(&memo, &digest);
        }
        Ok(digest)
    }
}
// ANCHOR_END: digest

/// How old a file's ctime must be before its digest is remembered: more
/// than a clock tick, and more than the 1 s or 2 s granularity of
/// filesystems that keep timestamps coarsely.
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// The memo's name: the file's identity, down to its ctime.
fn memo_name(meta: &Metadata) -> String {
    format!(
        "{}-{}-{}-{}.{:09}-{}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

/// Whether a file's ctime is far enough in the past (see [`SETTLED`]) for
/// any later change to give it another one. A ctime in the future (a clock
/// set back) is not.
fn settled(meta: &Metadata, now: SystemTime) -> bool {
    let ctime = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
    settled_at(ctime, now)
}

fn settled_at(ctime_ns: i128, now: SystemTime) -> bool {
    let now = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(_) => return false,
    };
    now - ctime_ns >= SETTLED.as_nanos() as i128
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// Writes the memo under a temporary name, then renames it into place,
    /// so that a memo is never seen half-written.
    fn write_memo(&self, memo: &Path, digest: &str) -> Result<()> {
        let dir = self.memo_dir();
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(e).context(format!("mkdir {dir:?}"))
            }
            _ => {}
        }
        let (tmp, mut file) = self.temp(&dir, "", |path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        })?;
        let written = file
            .write_all(digest.as_bytes())
            .and_then(|()| fs::rename(&tmp, memo));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.context(format!("writing {memo:?}"))
    }
}

/// Opens the layer file `tar`, refusing anything but a regular file by its
/// type before opening it: open(2) of a FIFO waits until something writes
/// to it, and a directory, a device or a socket is no tar file. A layer is
/// read twice (hashed to name it, then unpacked), which only a file allows.
fn open_layer(tar: &Path) -> Result<(File, Metadata)> {
    let meta = fs::metadata(tar).context(format!("layer {tar:?}"))?;
    check_type(tar, &meta)?;
    // The path may be replaced by a FIFO after the stat: O_NONBLOCK makes
    // open(2) return at once then (the type is checked again below). On a
    // regular file it changes nothing.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(tar)
        .context(format!("opening the layer {tar:?}"))?;
    let meta = file.metadata().context(format!("layer {tar:?}"))?;
    check_type(tar, &meta)?;
    if meta.len() == 0 {
        return Err(Error::runtime(format!(
            "layer {tar:?}: empty file, not a tar file"
        )));
    }
    Ok((file, meta))
}

fn check_type(tar: &Path, meta: &Metadata) -> Result<()> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "is a directory, not a tar file (for a directory, use --rootfs)"
    } else if t.is_fifo() {
        "is a FIFO (named pipe), not a tar file: a layer is read twice \
         (hashed, then unpacked), so it must be a regular file"
    } else if t.is_char_device() {
        "is a character device, not a tar file"
    } else if t.is_block_device() {
        "is a block device, not a tar file"
    } else if t.is_socket() {
        "is a socket, not a tar file"
    } else {
        "is not a regular file, not a tar file"
    };
    Err(Error::runtime(format!("layer {tar:?}: {what}")))
}

/// Unpacks `file` (a tar, plain or gzip-compressed) into `dest`, hashing
/// the bytes as they are read: if they are not the ones that gave the layer
/// its name (the file changed since it was hashed), the layer is refused.
fn unpack_verified(
    file: File,
    digest: &str,
    dest: &Path,
    limits: &layer::Limits,
    owners: &crate::ids::Owners,
) -> Result<layer::Unpacked> {
    let cancel = &ch01_process::runtime::interrupted;
    let mut hashed = Hashing {
        inner: file,
        hasher: Sha256::new(),
    };
    let unpacked = {
        let mut buf = BufReader::with_capacity(1 << 17, &mut hashed);
        let head = buf.fill_buf().context("reading")?;
        let src: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(buf))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(Error::runtime(
                "zstd-compressed layers are not supported: decompress it first (zstd -d)",
            ));
        } else {
            Box::new(buf)
        };
        layer::unpack_as(src, dest, limits, owners, cancel)?
    };
    // tar stops at its end marker; the rest of the file counts too.
    drain(&mut hashed, cancel)?;
    if hex(&hashed.hasher.finalize()) != digest {
        return Err(Error::runtime(
            "the file changed while it was being unpacked",
        ));
    }
    Ok(unpacked)
}

/// The sha256 of the layer file at `path`, in hex; a pending Ctrl-C stops it.
pub fn sha256_file(path: &Path) -> Result<String> {
    let (mut file, _) = open_layer(path)?;
    sha256(&mut file, &ch01_process::runtime::interrupted)
        .map_err(|e| Error::with_code(e.code, format!("layer {path:?}: {}", e.msg)))
}

/// Bytes read between two calls of `cancel`: a few milliseconds of work.
const CHUNK: usize = 1 << 20;

/// The sha256 of everything `src` holds, in hex. `cancel` is called for
/// each megabyte, so that a Ctrl-C does not wait for a large file's end.
fn sha256(src: &mut impl Read, cancel: &dyn Fn() -> Result<()>) -> Result<String> {
    let mut hasher = Hashing {
        inner: src,
        hasher: Sha256::new(),
    };
    drain(&mut hasher, cancel)?;
    Ok(hex(&hasher.hasher.finalize()))
}

/// Reads `src` to its end, calling `cancel` between chunks.
fn drain(src: &mut impl Read, cancel: &dyn Fn() -> Result<()>) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        cancel()?;
        let mut got = 0;
        while got < buf.len() {
            match src.read(&mut buf[got..]) {
                Ok(0) => return Ok(()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading"),
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// renameat2(2) with RENAME_NOREPLACE: fails with EEXIST instead of
/// replacing `to` (plain rename(2) replaces an empty directory).
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let f = CString::new(from.as_os_str().as_bytes())?;
    let t = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{self, Entry};
    use std::sync::{Arc, Barrier};

    /// A layer of `n` small files: enough work for concurrent unpacks to overlap.
    fn layer_file(dir: &Path, n: usize) -> PathBuf {
        let names: Vec<String> = (0..n).map(|i| format!("f{i}")).collect();
        let data = vec![b'x'; 4096];
        let entries: Vec<Entry> = names
            .iter()
            .map(|name| Entry::file(name.as_bytes(), &data))
            .collect();
        let tar = dir.join("layer.tar");
        fs::write(&tar, testdata::tar(&entries)).unwrap();
        tar
    }

    fn temps(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".tmp-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn concurrent_unpacks_of_one_layer_in_one_process_all_succeed() {
        let scratch = tempfile::tempdir().unwrap();
        let tar = layer_file(scratch.path(), 40);
        // With temp dirs named after the pid, threads of one process shared
        // one, and removed it under each other's feet (25 failures out of 40).
        for round in 0..4 {
            let state = scratch.path().join(format!("state{round}"));
            let start = Arc::new(Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (state, tar, start) = (state.clone(), tar.clone(), start.clone());
                    std::thread::spawn(move || {
                        let ctx = Ctx::new("test", false);
                        start.wait();
                        Store::open(&state)
                            .and_then(|store| store.layer(&ctx, &tar))
                            .map_err(|e| e.msg)
                    })
                })
                .collect();
            let dirs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let first = dirs[0].clone().unwrap();
            for dir in &dirs {
                assert_eq!(dir.as_ref(), Ok(&first), "round {round}");
            }
            assert_eq!(fs::read_dir(&first).unwrap().count(), 40);
            assert_eq!(temps(&state.join("layers")), Vec::<String>::new());
        }
    }

    #[test]
    fn open_reclaims_stale_temp_dirs_and_leaves_locked_ones() {
        let scratch = tempfile::tempdir().unwrap();
        let store = Store::open(scratch.path()).unwrap();
        let layers = store.layers();
        // Left by killed runs: nobody holds their lock.
        fs::create_dir_all(layers.join(".tmp-dead-1/a/b")).unwrap();
        fs::write(layers.join(".tmp-dead-1/a/b/f"), "x").unwrap();
        fs::create_dir_all(layers.join("by-file")).unwrap();
        fs::write(layers.join("by-file/.tmp-dead-2"), "x").unwrap();
        // A live run's, locked.
        let (live, _held) = store.temp(&layers, "live-", mkdir_open).unwrap();
        // Not ours: a symlink named like a temp dir, and a layer.
        std::os::unix::fs::symlink(scratch.path(), layers.join(".tmp-link")).unwrap();
        fs::create_dir(layers.join("0".repeat(64))).unwrap();

        let again = Store::open(scratch.path()).unwrap();
        assert_eq!(again.stale, Vec::<String>::new());
        let mut left = temps(&layers);
        left.sort();
        let live_name = live.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(left, [".tmp-link".to_string(), live_name]);
        assert!(temps(&layers.join("by-file")).is_empty());
        assert!(layers.join("0".repeat(64)).is_dir());
        assert!(
            scratch.path().join("layers").is_dir(),
            "followed the symlink"
        );
    }

    #[test]
    fn temp_names_are_unique_per_call() {
        let scratch = tempfile::tempdir().unwrap();
        let store = Store::open(scratch.path()).unwrap();
        let (a, _a) = store.temp(&store.layers(), "x-", mkdir_open).unwrap();
        let (b, _b) = store.temp(&store.layers(), "x-", mkdir_open).unwrap();
        assert_ne!(a, b);
        let pid = std::process::id().to_string();
        assert!(!a.to_string_lossy().ends_with(&pid));
    }

    #[test]
    fn a_memo_is_written_only_for_a_settled_ctime() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let ns = |s: i128| s * 1_000_000_000;
        assert!(settled_at(ns(1_000_000 - 3), now));
        assert!(settled_at(ns(1_000_000 - 2), now));
        // Changed within the last 2 s: a change in the same tick would keep this ctime.
        assert!(!settled_at(ns(1_000_000 - 1), now));
        assert!(!settled_at(ns(1_000_000), now));
        // In the future: the clock was set back.
        assert!(!settled_at(ns(1_000_010), now));
    }

    #[test]
    fn only_regular_files_are_opened_as_layers() {
        let scratch = tempfile::tempdir().unwrap();
        let fifo = scratch.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for (path, what) in [
            (fifo.as_path(), "is a FIFO"),
            (scratch.path(), "is a directory"),
            (Path::new("/dev/null"), "is a character device"),
        ] {
            let e = open_layer(path).unwrap_err();
            assert!(e.msg.contains(what), "{path:?}: {}", e.msg);
        }
        let empty = scratch.path().join("empty");
        fs::write(&empty, "").unwrap();
        assert!(open_layer(&empty).unwrap_err().msg.contains("empty file"));
    }

    #[test]
    fn hashing_stops_when_cancelled() {
        let calls = std::cell::Cell::new(0);
        let cancel = || {
            calls.set(calls.get() + 1);
            if calls.get() > 3 {
                Err(Error::with_code(130, "interrupted"))
            } else {
                Ok(())
            }
        };
        let mut zeros = io::repeat(0).take(100 * CHUNK as u64);
        let e = sha256(&mut zeros, &cancel).unwrap_err();
        assert_eq!((e.code, calls.get()), (130, 4));
        let mut small = io::repeat(0).take(10);
        assert_eq!(
            sha256(&mut small, &|| Ok(())).unwrap(),
            "01d448afd928065458cf670b60f5a594d735af0172c8d67f22a81680132681ca"
        );
    }
}
