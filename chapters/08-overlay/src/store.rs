//! The state directory (`--state-dir`, default /var/lib/stepbox):
//!
//! ```text
//! layers/<sha256 of the tar file>/     one unpacked layer, shared by every container
//! containers/<id>/{upper,work,merged}  one container's writable layer and mount point
//! containers/<id>/l/0, l/1, …          short symlinks to its layers (see lib.rs)
//! ```
//!
//! A layer is unpacked once: its directory is named after the hash of its
//! tar file, so the same file is found again next time, whatever its name.
//! It is unpacked into a temporary directory that is renamed into place in
//! one step, so that a directory under its final name is always complete,
//! even when two runs unpack the same layer at once.

use crate::layer;
use ch01_process::{Context, Ctx, Error, Result};
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Store {
    pub root: PathBuf,
}

impl Store {
    /// Creates the state directory and its two subdirectories if needed.
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
        Ok(Store { root })
    }

    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub fn container(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The unpacked directory of the layer `tar`: from the cache, or unpacked now.
    pub fn layer(&self, ctx: &Ctx, tar: &Path) -> Result<PathBuf> {
        let digest = self.digest(tar)?;
        let short = &digest[..12];
        let dir = self.layers().join(&digest);
        if dir.is_dir() {
            ctx.say(format_args!(
                "unpack layer sha256:{short}… from {} (cached)",
                tar.display()
            ));
            return Ok(dir);
        }

        let tmp = self
            .layers()
            .join(format!(".tmp-{digest}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp); // left by a killed run with our pid
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .context(format!("mkdir {}", tmp.display()))?;
        // The layer's root, unless the tar says otherwise; not reduced by the umask.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .context(format!("chmod {}", tmp.display()))?;
        let unpacked = match unpack_verified(tar, &digest, &tmp) {
            Ok(u) => u,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(Error::runtime(format!(
                    "layer {}: {}",
                    tar.display(),
                    e.msg
                )));
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
                let _ = fs::remove_dir_all(&tmp);
                ctx.say(format_args!(
                    "unpack layer sha256:{short}… from {} (unpacked meanwhile by another run)",
                    tar.display()
                ));
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e).context(format!("renaming {} to {}", tmp.display(), dir.display()));
            }
        }
        Ok(dir)
    }
}

// ANCHOR: digest
impl Store {
    /// The sha256 of `tar`, remembered by the file's identity. An engine
    /// hashes a layer once, when it pulls it; here the tar file is the pull,
    /// so its digest is kept under `layers/by-file/DEV-INO-SIZE-MTIME` and a
    /// start with cached layers reads no layer data at all. A rewritten file
    /// has a new mtime (or inode) and is hashed again.
    fn digest(&self, tar: &Path) -> Result<String> {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(tar).context(format!("layer {}", tar.display()))?;
        let memo_dir = self.layers().join("by-file");
        let memo = memo_dir.join(format!(
            "{}-{}-{}-{}.{}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        ));
        if let Ok(digest) = fs::read_to_string(&memo) {
            if digest.len() == 64 && self.layers().join(&digest).is_dir() {
                return Ok(digest);
            }
        }
        let digest = sha256_file(tar)?;
        // Best effort: a memo that cannot be written only costs a hash next time.
        let _ = fs::create_dir_all(&memo_dir);
        let tmp = memo_dir.join(format!(".tmp-{}", std::process::id()));
        if fs::write(&tmp, &digest).is_ok() && fs::rename(&tmp, &memo).is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(digest)
    }
}
// ANCHOR_END: digest

/// Unpacks `tar` (plain or gzip-compressed) into `dest`, hashing the bytes
/// as they are read: if they are not the ones that gave the layer its name
/// (the file changed since it was hashed), the layer is refused.
fn unpack_verified(tar: &Path, digest: &str, dest: &Path) -> Result<layer::Unpacked> {
    let file = File::open(tar).context(format!("opening {}", tar.display()))?;
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
        layer::unpack(
            src,
            dest,
            &layer::Limits::default(),
            &ch01_process::runtime::interrupted,
        )?
    };
    // tar stops at its end marker; the rest of the file counts too.
    io::copy(&mut hashed, &mut io::sink()).context("reading")?;
    if hex(&hashed.hasher.finalize()) != digest {
        return Err(Error::runtime(
            "the file changed while it was being unpacked",
        ));
    }
    Ok(unpacked)
}

/// The sha256 of a file, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).context(format!("layer {}", path.display()))?;
    let meta = file
        .metadata()
        .context(format!("layer {}", path.display()))?;
    if meta.is_dir() {
        return Err(Error::runtime(format!(
            "layer {}: is a directory, not a tar file (for a directory, use --rootfs)",
            path.display()
        )));
    }
    if meta.len() == 0 {
        return Err(Error::runtime(format!(
            "layer {}: empty file, not a tar file",
            path.display()
        )));
    }
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).context(format!("reading {}", path.display()))?;
    Ok(hex(&hasher.finalize()))
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
