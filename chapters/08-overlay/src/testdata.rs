//! Layer tarballs for tests: bad ones, which the runtime must refuse
//! without writing anything outside the layer's directory, and a good one
//! with every kind of entry.
//!
//! The `tar` crate refuses to write `..` or absolute paths, so the headers
//! are filled in by hand.
//!
//! [`corpus`] is every nasty case with what the unpacker must do with it;
//! `tests/corpus/layers/` holds it as files (written by the ignored test
//! `write_corpus` in `tests/fuzz_unpack.rs`, which also checks that the
//! files are up to date and replays them).

use crate::layer::Limits;
use std::io::Write;
use tar::Header;

/// The kinds of entries, for building tarballs (tests/fuzz_unpack.rs).
pub use tar::EntryType;

/// A file that a broken unpacker would create on the host: the symlink
/// escape cases aim at it. Tests check that it does not exist.
pub const ESCAPE_TARGET: &str = "/tmp/stepbox-escaped";

/// What the runtime must do with a tarball.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Refuse the layer, with this text in the error.
    Reject(&'static str),
    /// Accept it: everything lands inside the layer.
    Accept,
}

pub struct Case {
    pub name: &'static str,
    pub tar: Vec<u8>,
    pub expect: Expect,
}

/// One entry, header filled in by hand.
pub struct Entry<'a> {
    pub kind: EntryType,
    pub path: &'a [u8],
    pub link: &'a [u8],
    pub data: &'a [u8],
    pub mode: u32,
    pub dev: (u32, u32),
    /// The size written in the header, if not the data's: a header that lies.
    pub size: Option<u64>,
    /// uid and gid (0:0 unless said).
    pub owner: (u64, u64),
}

impl<'a> Entry<'a> {
    pub fn new(kind: EntryType, path: &'a [u8]) -> Self {
        let mode = if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        };
        Entry {
            kind,
            path,
            link: b"",
            data: b"",
            mode,
            dev: (0, 0),
            size: None,
            owner: (0, 0),
        }
    }
    pub fn file(path: &'a [u8], data: &'a [u8]) -> Self {
        Entry {
            data,
            ..Entry::new(EntryType::Regular, path)
        }
    }
    pub fn link(kind: EntryType, path: &'a [u8], target: &'a [u8]) -> Self {
        Entry {
            link: target,
            ..Entry::new(kind, path)
        }
    }
}

/// A tar file of `entries`, paths and link targets taken byte for byte
/// (longer than 100 bytes: in a GNU long name or long link record before
/// the entry, as GNU tar writes them).
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        for (long, kind) in [
            (e.path, EntryType::GNULongName),
            (e.link, EntryType::GNULongLink),
        ] {
            if long.len() > 100 {
                let mut h = Header::new_gnu();
                h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                h.set_entry_type(kind);
                h.set_mode(0o644);
                h.set_size(long.len() as u64 + 1);
                h.set_cksum();
                b.append(&h, [long, b"\0"].concat().as_slice()).unwrap();
            }
        }
        let mut h = Header::new_gnu();
        let (path, link) = (
            &e.path[..e.path.len().min(100)],
            &e.link[..e.link.len().min(100)],
        );
        h.as_old_mut().name[..path.len()].copy_from_slice(path);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.owner.0);
        h.set_gid(e.owner.1);
        h.set_mtime(1_000_000_000);
        h.set_size(e.size.unwrap_or(e.data.len() as u64));
        h.set_device_major(e.dev.0).unwrap();
        h.set_device_minor(e.dev.1).unwrap();
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A tar file of one GNU sparse file `path`, `size` bytes long once
/// unpacked: a hole, then `data` (a multiple of 512 bytes) at its end.
pub fn sparse(path: &[u8], size: u64, data: &[u8]) -> Vec<u8> {
    assert!(path.len() <= 100 && data.len().is_multiple_of(512));
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..path.len()].copy_from_slice(path);
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000_000);
    h.set_size(data.len() as u64);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.sparse[0].set_offset(size - data.len() as u64);
    gnu.sparse[0].set_length(data.len() as u64);
    gnu.set_real_size(size);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

/// Every bad (or suspicious) tarball, with what must happen to it.
pub fn malicious() -> Vec<Case> {
    use EntryType as T;
    use Expect::*;
    let escape_via_root = format!("link{ESCAPE_TARGET}");
    let big = vec![b'x'; 10_000];
    let mut truncated = tar(&[Entry::file(b"big", &big)]);
    truncated.truncate(512 + 3000);
    // Deterministic noise, not starting like gzip or zstd.
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8 | 0x40
        })
        .collect();
    vec![
        Case {
            name: "dotdot",
            tar: tar(&[Entry::file(b"../stepbox-escaped", b"x")]),
            expect: Reject("\"..\""),
        },
        Case {
            name: "dotdot-inner",
            tar: tar(&[Entry::file(b"a/../../stepbox-escaped", b"x")]),
            expect: Reject("\"..\""),
        },
        // Like docker: a leading "/" is dropped, the file lands in the layer.
        Case {
            name: "absolute",
            tar: tar(&[Entry::file(ESCAPE_TARGET.as_bytes(), b"x")]),
            expect: Accept,
        },
        Case {
            name: "symlink-escape",
            tar: tar(&[
                Entry::link(T::Symlink, b"link", b"/"),
                Entry::file(escape_via_root.as_bytes(), b"x"),
            ]),
            expect: Reject("symlink"),
        },
        Case {
            name: "symlink-escape-relative",
            tar: tar(&[
                Entry::link(T::Symlink, b"up", b"../../../../../../../../tmp"),
                Entry::file(b"up/stepbox-escaped", b"x"),
            ]),
            expect: Reject("symlink"),
        },
        Case {
            name: "symlink-then-dir",
            tar: tar(&[
                Entry::link(T::Symlink, b"link", b"/tmp"),
                Entry::new(T::Directory, b"link/stepbox-escaped"),
            ]),
            expect: Reject("symlink"),
        },
        Case {
            name: "hardlink-dotdot",
            tar: tar(&[Entry::link(T::Link, b"passwd", b"../../../../etc/passwd")]),
            expect: Reject("\"..\""),
        },
        // An absolute target is a path in the layer, like every path: not the host's /etc/passwd.
        Case {
            name: "hardlink-absolute",
            tar: tar(&[Entry::link(T::Link, b"passwd", b"/etc/passwd")]),
            expect: Reject("in this layer"),
        },
        Case {
            name: "hardlink-via-symlink",
            tar: tar(&[
                Entry::link(T::Symlink, b"link", b"/"),
                Entry::link(T::Link, b"passwd", b"link/etc/passwd"),
            ]),
            expect: Reject("symlink"),
        },
        Case {
            name: "block-device",
            tar: tar(&[Entry {
                dev: (8, 0),
                ..Entry::new(T::Block, b"sda")
            }]),
            expect: Reject("device nodes"),
        },
        Case {
            name: "char-device",
            tar: tar(&[Entry {
                dev: (1, 1),
                ..Entry::new(T::Char, b"mem")
            }]),
            expect: Reject("device nodes"),
        },
        Case {
            name: "whiteout-through-symlink",
            tar: tar(&[
                Entry::link(T::Symlink, b"link", b"/tmp"),
                Entry::file(b"link/.wh.stepbox-escaped", b""),
            ]),
            expect: Reject("symlink"),
        },
        // A whiteout of ".." deleted the directory that holds the layer:
        // every cached layer of the state directory.
        Case {
            name: "whiteout-dotdot",
            tar: tar(&[Entry::file(b".wh...", b"")]),
            expect: Reject("whiteout of \"..\""),
        },
        Case {
            name: "whiteout-dotdot-below",
            tar: tar(&[
                Entry::new(T::Directory, b"a/b/"),
                Entry::file(b"a/b/.wh...", b""),
            ]),
            expect: Reject("whiteout of \"..\""),
        },
        // A whiteout of "." deleted its own directory.
        Case {
            name: "whiteout-dot",
            tar: tar(&[
                Entry::file(b"keep/file", b"x"),
                Entry::file(b"keep/.wh..", b""),
            ]),
            expect: Reject("whiteout of \".\""),
        },
        Case {
            name: "whiteout-empty",
            tar: tar(&[Entry::file(b"keep/.wh.", b"")]),
            expect: Reject("whiteout of an empty name"),
        },
        // The header says a terabyte follows: refused before a byte is written.
        Case {
            name: "huge-size",
            tar: tar(&[Entry {
                size: Some(1 << 40),
                ..Entry::file(b"huge", b"")
            }]),
            expect: Reject("--max-layer-size"),
        },
        // 20 GiB once unpacked, from 1.5 KiB of tar.
        Case {
            name: "sparse-bomb",
            tar: sparse(b"sparse", 20 << 30, &[b's'; 512]),
            expect: Reject("--max-layer-size"),
        },
        Case {
            name: "truncated",
            tar: truncated,
            expect: Reject("truncated"),
        },
        Case {
            name: "garbage",
            tar: garbage,
            expect: Reject("not a tar file"),
        },
        Case {
            name: "short-garbage",
            tar: b"this is not a tar file\n".to_vec(),
            expect: Reject("not a tar file"),
        },
    ]
}

/// The limits the corpus is unpacked with: small, so that its bombs are small.
pub const CORPUS_LIMITS: Limits = Limits {
    max_bytes: 1 << 20,
    max_entries: 1000,
};

/// Every case of [`malicious`], and more that need a file of their own (a
/// gzip bomb, a deep chain) or are accepted, unpacked with [`CORPUS_LIMITS`].
/// The layer `good` needs root (its opaque directory is an xattr in the
/// `trusted` namespace).
pub fn corpus() -> Vec<Case> {
    use EntryType as T;
    use Expect::*;
    let deep: Vec<u8> = [&b"d/".repeat(1500)[..], b"f"].concat();
    let zeros = vec![0u8; 16 << 20];
    let many: Vec<Vec<u8>> = (0..=CORPUS_LIMITS.max_entries)
        .map(|i| format!("f{i}").into_bytes())
        .collect();
    let mut cases = malicious();
    cases.extend([
        Case {
            name: "good",
            tar: good(),
            expect: Accept,
        },
        // 1500 levels: deeper than the usual open-file limit, and a
        // path (3 KB) longer than the 100 bytes of a plain header.
        Case {
            name: "deep-chain",
            tar: tar(&[Entry::file(&deep, b"bottom\n")]),
            expect: Accept,
        },
        // 75 KiB of gzip, 16 MiB of file.
        Case {
            name: "gzip-bomb",
            tar: gzip(&tar(&[Entry::file(b"zeros", &zeros)])),
            expect: Reject("--max-layer-size"),
        },
        // Small files that add up past the limit.
        Case {
            name: "many-files-bomb",
            tar: gzip(&tar(&[
                Entry::file(b"a", &zeros[..600 << 10]),
                Entry::file(b"b", &zeros[..600 << 10]),
            ])),
            expect: Reject("--max-layer-size"),
        },
        Case {
            name: "entries-bomb",
            tar: gzip(&tar(&many
                .iter()
                .map(|n| Entry::file(n, b""))
                .collect::<Vec<_>>())),
            expect: Reject("--max-layer-entries"),
        },
        Case {
            name: "name-255",
            tar: tar(&[Entry::file(&[b'n'; 255], b"x")]),
            expect: Accept,
        },
        Case {
            name: "name-256",
            tar: tar(&[Entry::file(&[b'n'; 256], b"x")]),
            expect: Reject("longer than 255 bytes"),
        },
        // Names are bytes: a newline or an escape sequence is a valid name,
        // kept in the layer, and escaped whenever a message shows it.
        Case {
            name: "control-characters",
            tar: tar(&[
                Entry::file(b"new\nline", b"x"),
                Entry::file(b"\x1b[2Jclear", b"x"),
            ]),
            expect: Accept,
        },
        // A later entry replaces an earlier one, whatever their kinds.
        Case {
            name: "replace-kinds",
            tar: tar(&[
                Entry::file(b"a/b/c", b"x"),
                Entry::link(T::Symlink, b"a/b/l", b"/"),
                Entry::file(b"a", b"file now"),
                Entry::new(T::Directory, b"a/"),
                Entry::file(b"a/c", b"x"),
                Entry::link(T::Symlink, b"a", b".."),
                Entry::new(T::Fifo, b"a"),
                Entry::new(T::Char, b"a"),
                Entry::new(T::Directory, b"a/"),
            ]),
            expect: Accept,
        },
        // The AUFS markers are skipped; a whiteout of a symlink removes the link only.
        Case {
            name: "aufs-markers",
            tar: tar(&[
                Entry::link(T::Symlink, b"up", b"../../.."),
                Entry::file(b".wh.up", b""),
                Entry::file(b".wh..wh.plnk", b""),
                Entry::file(b".wh..wh..wh..", b""),
            ]),
            expect: Accept,
        },
        Case {
            name: "whiteout-through-dotdot",
            tar: tar(&[Entry::file(b"../.wh.other", b"")]),
            expect: Reject("\"..\""),
        },
    ]);
    cases
}

/// A good layer with one of each kind of entry, including OCI whiteouts:
/// srv/hello.txt deleted, srv/old made opaque.
pub fn good() -> Vec<u8> {
    use EntryType as T;
    tar(&[
        Entry::new(T::Directory, b"./"),
        Entry::new(T::Directory, b"./bin/"),
        Entry {
            mode: 0o4755,
            ..Entry::file(b"./bin/suid", b"#!/bin/sh\n")
        },
        Entry::link(T::Link, b"./bin/suid-link", b"bin/suid"),
        Entry::link(T::Symlink, b"./bin/sh", b"/bin/busybox"),
        Entry {
            mode: 0o1777,
            ..Entry::new(T::Directory, b"./tmp/")
        },
        Entry::new(T::Fifo, b"./run/fifo"), // parent not in the tar: made 0755
        Entry::file(b"./srv/.wh.hello.txt", b""),
        Entry::file(b"./srv/old/.wh..wh..opq", b""),
        Entry::file(b"./srv/old/new.txt", b"new\n"),
        Entry::new(T::Char, b"./srv/gone"), // 0:0: an overlayfs whiteout already
        Entry::file(b"./replaced", b"first\n"),
        Entry::file(b"./replaced", b"second\n"),
    ])
}

/// `tar` gzip-compressed.
pub fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(tar).unwrap();
    enc.finish().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use ch01_process::Ctx;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::{Path, PathBuf};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ch08-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Every file below `dir`, as relative paths.
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                out.push(e.path().strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(base, &e.path(), out);
                }
            }
        }
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    use crate::layer::tests::root;

    #[test]
    fn malicious_layers_are_refused_and_write_nothing_outside() {
        if !root() {
            return;
        }
        let base = scratch("malicious");
        let state = base.join("state");
        let store = Store::open(&state).unwrap();
        let ctx = Ctx::new("test", false);
        for case in malicious() {
            let tar = base.join(format!("{}.tar", case.name));
            std::fs::write(&tar, &case.tar).unwrap();
            let result = store.layer(&ctx, &tar);
            match (case.expect, &result) {
                (Expect::Reject(text), Err(e)) => {
                    assert!(
                        e.msg.contains(text),
                        "{}: {:?} lacks {text:?}",
                        case.name,
                        e.msg
                    );
                    assert!(
                        !e.msg.contains('\n'),
                        "{}: not one line: {:?}",
                        case.name,
                        e.msg
                    );
                    // The temp dir is gone: nothing but finished layers in layers/.
                    let tmp: Vec<_> = tree(&state.join("layers"))
                        .into_iter()
                        .filter(|p| p.starts_with(".tmp"))
                        .collect();
                    assert_eq!(tmp, Vec::<String>::new(), "{}", case.name);
                }
                (Expect::Accept, Ok(dir)) => assert!(dir.join(&ESCAPE_TARGET[1..]).is_file()),
                _ => panic!(
                    "{}: expected {:?}, got {:?}",
                    case.name,
                    case.expect,
                    result.map_err(|e| e.msg)
                ),
            }
            std::fs::remove_file(&tar).unwrap();
            assert!(
                !Path::new(ESCAPE_TARGET).exists(),
                "{}: wrote {ESCAPE_TARGET}",
                case.name
            );
            assert!(!base.join("stepbox-escaped").exists(), "{}", case.name);
        }
        // Outside the state dir, nothing appeared.
        assert_eq!(
            tree(&base)
                .iter()
                .filter(|p| !p.starts_with("state"))
                .count(),
            0
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn good_layer_keeps_everything_and_converts_whiteouts() {
        if !root() {
            return;
        }
        let base = scratch("good");
        let store = Store::open(&base.join("state")).unwrap();
        let ctx = Ctx::new("test", false);
        let tar = base.join("good.tar.gz");
        std::fs::write(&tar, gzip(&good())).unwrap();
        let dir = store.layer(&ctx, &tar).unwrap();
        let meta = |p: &str| std::fs::symlink_metadata(dir.join(p)).unwrap();

        assert_eq!(meta("bin/suid").mode() & 0o7777, 0o4755);
        assert_eq!(meta("bin/suid").ino(), meta("bin/suid-link").ino());
        assert_eq!(meta("bin/suid").mtime(), 1_000_000_000);
        assert_eq!(
            std::fs::read_link(dir.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
        assert_eq!(meta("tmp").mtime(), 1_000_000_000);
        assert!(meta("run/fifo").file_type().is_fifo());
        assert_eq!(meta("run").mode() & 0o7777, 0o755);
        for gone in ["srv/hello.txt", "srv/gone"] {
            let m = meta(gone);
            assert!(m.file_type().is_char_device() && m.rdev() == 0, "{gone}");
        }
        assert!(!dir.join("srv/.wh.hello.txt").exists());
        assert!(!dir.join("srv/old/.wh..wh..opq").exists());
        let mut value = [0u8; 4];
        // SAFETY: the path's CString lives until the end of this statement,
        // the name is a c"" literal, `value` is valid for its length.
        let n = unsafe {
            libc::lgetxattr(
                std::ffi::CString::new(dir.join("srv/old").into_os_string().into_encoded_bytes())
                    .unwrap()
                    .as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert_eq!(&value[..n.max(0) as usize], b"y");
        assert_eq!(
            std::fs::read_to_string(dir.join("replaced")).unwrap(),
            "second\n"
        );

        // The second time, the cached copy is used.
        assert_eq!(store.layer(&ctx, &tar).unwrap(), dir);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
