//! A fuzzer for chapter 8's layer unpacker, and the corpus of nasty layers.
//!
//! `unpack_never_touches_anything_outside_its_layer` is a property test
//! (proptest): it builds tarballs from a grammar of hostile entries and
//! unpacks each with `ch08_overlay::layer::unpack` into `SANDBOX/layers/new`,
//! next to a cached layer `SANDBOX/layers/other` and canary files. After
//! every input: nothing outside `layers/new` changed, `/tmp/stepbox-escaped`
//! does not exist, an error is one non-empty line, a cancel's error comes
//! out as it is, and `layers/new` can be removed. 300 inputs by default (a
//! few seconds); `PROPTEST_CASES=N` for more. A failing input is shrunk and
//! saved in `tests/fuzz_unpack.proptest-regressions`, which every run
//! replays first: commit it with the fix.
//!
//! `corpus_replays` unpacks every file of `tests/corpus/layers/` as its
//! `MANIFEST` says, in the same sandbox; `corpus_is_up_to_date` checks that
//! the files are the ones `testdata::corpus()` makes, and the ignored test
//! `write_corpus` writes them:
//! `cargo test --test fuzz_unpack -- --ignored write_corpus`.

mod common;

use ch01_process::Error;
use ch08_overlay::layer::{self, Limits};
use ch08_overlay::remove::remove_all;
use ch08_overlay::testdata::{self, Entry, EntryType, Expect, CORPUS_LIMITS, ESCAPE_TARGET};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The fuzzer's limits: small, so that a bomb is found quickly and costs little.
const FUZZ_LIMITS: Limits = Limits {
    max_bytes: 64 << 10,
    max_entries: 24,
};

/// A scratch directory laid out like a state directory's cache: a layer
/// `layers/other` with one of each kind of entry, canary files, and
/// `layers/new`, where every input is unpacked. Removed on drop.
struct Sandbox {
    dir: tempfile::TempDir,
    /// Everything but `layers/new`, as it was laid out.
    before: RefCell<Vec<String>>,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("stepbox-fuzz-")
            .tempdir()
            .unwrap();
        let sandbox = Sandbox {
            dir,
            before: RefCell::new(Vec::new()),
        };
        sandbox.lay_out();
        sandbox
    }

    fn lay_out(&self) {
        let p = self.dir.path();
        let other = p.join("layers/other");
        fs::create_dir_all(other.join("bin")).unwrap();
        fs::create_dir_all(other.join("deep/a/b")).unwrap();
        fs::write(other.join("bin/sh"), "#!/bin/busybox\n").unwrap();
        fs::hard_link(other.join("bin/sh"), other.join("bin/sh-link")).unwrap();
        fs::write(other.join("deep/a/b/file"), "deep\n").unwrap();
        std::os::unix::fs::symlink("/", other.join("root-link")).unwrap();
        std::os::unix::fs::symlink("../other", other.join("self-link")).unwrap();
        nix::unistd::mkfifo(
            &other.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        fs::write(p.join("canary"), "canary\n").unwrap();
        fs::write(p.join("layers/canary"), "canary\n").unwrap();
        fs::create_dir(p.join("layers/new")).unwrap();
        *self.before.borrow_mut() = fingerprint(p);
    }

    fn new_layer(&self) -> PathBuf {
        self.dir.path().join("layers/new")
    }

    /// After an input: checks that nothing outside `layers/new` changed,
    /// then empties `layers/new` for the next one. After a change, the
    /// sandbox is laid out anew, so that the next input (and proptest's
    /// shrinking) starts from the same state.
    fn check_and_reset(&self) -> Result<(), String> {
        let escaped = Path::new(ESCAPE_TARGET).exists();
        let _ = fs::remove_file(ESCAPE_TARGET);
        let new = self.new_layer();
        let now = fingerprint(self.dir.path());
        let removed = remove_all(&new);
        let before = self.before.borrow().clone();
        if now == before && removed.is_ok() && !escaped {
            fs::create_dir(&new).unwrap();
            fs::set_permissions(&new, fs::Permissions::from_mode(0o755)).unwrap();
            return Ok(());
        }
        for e in fs::read_dir(self.dir.path()).unwrap() {
            remove_all(&e.unwrap().path()).unwrap();
        }
        self.lay_out();
        if escaped {
            return Err(format!("wrote {ESCAPE_TARGET}"));
        }
        if let Err(e) = removed {
            return Err(format!("removing layers/new: {e}"));
        }
        let gone: Vec<_> = before.iter().filter(|l| !now.contains(l)).collect();
        let came: Vec<_> = now.iter().filter(|l| !before.contains(l)).collect();
        Err(format!(
            "changed outside layers/new: was {gone:?}, is {came:?}"
        ))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // At any depth (TempDir's own removal is std's remove_dir_all).
        let _ = remove_all(self.dir.path());
    }
}

/// Every entry below `root` except `layers/new`, with everything about it
/// that an unpacker going astray could change: identity, kind, mode,
/// owner, links, size, times, contents, link target, the opaque xattr.
fn fingerprint(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new("layers/new") {
                continue;
            }
            let m = fs::symlink_metadata(&path).unwrap();
            let mut line = format!(
                "{rel:?} ino={} mode={:o} uid={} gid={} nlink={} size={}",
                m.ino(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.nlink(),
                m.len()
            );
            // `layers` itself changes times when `layers/new` is made again.
            if rel != Path::new("layers") {
                line += &format!(" mtime={}.{}", m.mtime(), m.mtime_nsec());
            }
            let t = m.file_type();
            if t.is_file() {
                line += &format!(" data={:?}", fs::read(&path).unwrap());
            } else if t.is_symlink() {
                line += &format!(" -> {:?}", fs::read_link(&path).unwrap());
            } else if t.is_dir() {
                line += &format!(" opaque={}", opaque(&path));
                stack.push(path);
            } else if t.is_char_device() || t.is_block_device() {
                line += &format!(" rdev={}", m.rdev());
            }
            out.push(line);
        }
    }
    out.sort();
    out
}

fn opaque(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut value = [0u8; 4];
    // SAFETY: both strings are NUL-terminated and `value` is a buffer of its length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n > 0
}

/// A byte string, shown as text when proptest prints a failing input.
#[derive(Clone, PartialEq)]
struct Name(Vec<u8>);

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

#[derive(Debug, Clone)]
enum Kind {
    /// `data` bytes of data, and the size the header says if it lies.
    File {
        data: usize,
        size: Option<u64>,
    },
    Dir,
    Symlink(&'static str),
    HardLink(Name),
    Fifo,
    Char(u32, u32),
    Block(u32, u32),
}

#[derive(Debug, Clone)]
struct Input {
    entries: Vec<(Name, Kind, u32)>,
    gzip: bool,
    /// Where to cut the tarball (or its gzip stream), if it is cut.
    cut: Option<prop::sample::Index>,
    /// The call of `cancel` from which it says "stop", if any.
    cancel_after: Option<u32>,
}

const COMPONENTS: &[&[u8]] = &[
    b"a",
    b"b",
    b"c",
    b"..",
    b".",
    b"",
    b".wh.",
    b".wh..",
    b".wh...",
    b".wh..wh..opq",
    b".wh..wh.plnk",
    b".wh.a",
    b".wh.b",
    b"new\nline",
    b"\x1b[2J\x1b]0;title\x07",
    b"other",
    b"layers",
    b"canary",
];

const SYMLINK_TARGETS: &[&str] = &[
    "/",
    "..",
    "../..",
    "../../x",
    "../../../../../../../../tmp",
    ESCAPE_TARGET,
    "../other",
    "../../canary",
    "/layers/other",
    ".",
    "a",
    "a/b",
];

fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // The plain names most often, so that paths meet: a symlink `a`,
        // then `a/b`; a directory `a`, then a file `a`.
        60 => prop::sample::select(&COMPONENTS[..3]).prop_map(|c| c.to_vec()),
        10 => prop::sample::select(&COMPONENTS[3..]).prop_map(|c| c.to_vec()),
        1 => prop::sample::select(vec![255, 256]).prop_map(|n| vec![b'x'; n]),
    ]
}

fn path() -> impl Strategy<Value = Name> {
    (
        prop::bool::weighted(0.2),
        prop::collection::vec(component(), 1..=3),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(leading, names, trailing)| {
            let mut p = if leading { b"/".to_vec() } else { Vec::new() };
            p.extend(names.join(&b'/'));
            if trailing {
                p.push(b'/');
            }
            Name(p)
        })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        8 => (0usize..100).prop_map(|data| Kind::File { data, size: None }),
        // Past the fuzzer's byte limit.
        1 => Just(Kind::File { data: 70 << 10, size: None }),
        // Headers that lie: a terabyte, or a size that is not the data's.
        1 => prop_oneof![
            prop::sample::select(vec![1u64 << 40, u64::MAX >> 2, (64 << 10) + 1])
                .prop_map(|s| Kind::File { data: 0, size: Some(s) }),
            (0usize..2000, 0u64..4096).prop_map(|(data, s)| Kind::File { data, size: Some(s) }),
        ],
        5 => Just(Kind::Dir),
        4 => prop::sample::select(SYMLINK_TARGETS).prop_map(Kind::Symlink),
        // Hard links to anywhere, but often to an earlier entry.
        3 => path().prop_map(Kind::HardLink),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::Char(0, 0)),
        1 => prop_oneof![Just(Kind::Char(1, 3)), Just(Kind::Block(8, 0))],
    ]
}

fn input(modes: Vec<u32>) -> impl Strategy<Value = Input> {
    (
        prop::collection::vec((path(), kind(), prop::sample::select(modes)), 1..12),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.1, any::<prop::sample::Index>()),
        prop::option::weighted(0.1, 1u32..8),
    )
        .prop_map(|(entries, gzip, cut, cancel_after)| Input {
            entries,
            gzip,
            cut,
            cancel_after,
        })
}

/// The tarball (or tar.gz) of an input.
fn bytes(input: &Input) -> Vec<u8> {
    let data: Vec<Vec<u8>> = input
        .entries
        .iter()
        .map(|(_, kind, _)| match kind {
            Kind::File { data, .. } => vec![b'z'; *data],
            _ => Vec::new(),
        })
        .collect();
    let entries: Vec<Entry> = input
        .entries
        .iter()
        .zip(&data)
        .map(|((name, kind, mode), data)| {
            let path = &name.0[..];
            let e = match kind {
                Kind::File { size, .. } => Entry {
                    size: *size,
                    ..Entry::file(path, data)
                },
                Kind::Dir => Entry::new(EntryType::Directory, path),
                Kind::Symlink(t) => Entry::link(EntryType::Symlink, path, t.as_bytes()),
                Kind::HardLink(t) => Entry::link(EntryType::Link, path, &t.0),
                Kind::Fifo => Entry::new(EntryType::Fifo, path),
                Kind::Char(a, b) => Entry {
                    dev: (*a, *b),
                    ..Entry::new(EntryType::Char, path)
                },
                Kind::Block(a, b) => Entry {
                    dev: (*a, *b),
                    ..Entry::new(EntryType::Block, path)
                },
            };
            Entry { mode: *mode, ..e }
        })
        .collect();
    let mut out = testdata::tar(&entries);
    if input.gzip {
        out = testdata::gzip(&out);
    }
    if let Some(cut) = &input.cut {
        out.truncate(cut.index(out.len()));
    }
    out
}

/// `bytes` as the store gives them to the unpacker: a gzip stream decompressed.
fn reader(bytes: &[u8]) -> Box<dyn Read + '_> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    }
}

fn one_line(e: &Error) -> Result<(), String> {
    if e.msg.is_empty() || e.msg.contains(['\n', '\r']) {
        return Err(format!("not one line: {:?}", e.msg));
    }
    Ok(())
}

#[test]
fn unpack_never_touches_anything_outside_its_layer() {
    let _ = fs::remove_file(ESCAPE_TARGET);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    // Modes that take away root's own access to a directory only slow a
    // non-root run down with errors that say nothing new.
    let modes = match nix::unistd::geteuid().is_root() {
        true => vec![0o755, 0o644, 0o4755, 0o1777, 0o000, 0o7777],
        false => vec![0o755, 0o644],
    };
    let sandbox = Sandbox::new();
    let (accepted, refused, cancelled) = (Cell::new(0), Cell::new(0), Cell::new(0));
    let start = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&input(modes), |input| {
        let tar = bytes(&input);
        let (calls, fired) = (Cell::new(0u32), Cell::new(false));
        let cancel = || {
            calls.set(calls.get() + 1);
            match input.cancel_after {
                Some(n) if calls.get() >= n => {
                    fired.set(true);
                    Err(Error::with_code(130, "interrupted by SIGINT"))
                }
                _ => Ok(()),
            }
        };
        let result = layer::unpack(reader(&tar), &sandbox.new_layer(), &FUZZ_LIMITS, &cancel);
        sandbox.check_and_reset().map_err(TestCaseError::fail)?;
        match (&result, fired.get()) {
            (Ok(_), false) => accepted.set(accepted.get() + 1),
            (Err(e), true) => {
                prop_assert_eq!((e.code, e.msg.as_str()), (130, "interrupted by SIGINT"));
                cancelled.set(cancelled.get() + 1);
            }
            (Err(e), false) => {
                one_line(e).map_err(TestCaseError::fail)?;
                prop_assert_eq!(e.code, 125, "{}", e.msg);
                refused.set(refused.get() + 1);
            }
            (Ok(_), true) => prop_assert!(false, "cancelled, but the unpack went on"),
        }
        Ok(())
    });
    eprintln!(
        "fuzz_unpack: {} inputs in {:.1?}: {} unpacked, {} refused, {} cancelled",
        accepted.get() + refused.get() + cancelled.get(),
        start.elapsed(),
        accepted.get(),
        refused.get(),
        cancelled.get()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Where the corpus lives, in the repository.
fn corpus_dir() -> PathBuf {
    common::workspace().join("tests/corpus/layers")
}

const MANIFEST_HEAD: &str = "\
# Layer tarballs that chapter 8's unpacker must accept or refuse: the nasty
# cases of chapters/08-overlay/src/testdata.rs (corpus()). tests/fuzz_unpack.rs
# replays them (corpus_replays) with Limits { max_bytes: 1 MiB, max_entries: 1000 },
# and checks that they are up to date (corpus_is_up_to_date); they are written by
#   cargo test --test fuzz_unpack -- --ignored write_corpus
# One line each, separated by tabs: FILE accept, or FILE refuse TEXT (in the error).
";

/// The files of the corpus and its manifest, as `testdata::corpus()` makes them.
fn corpus_files() -> (Vec<(String, Vec<u8>)>, String) {
    let mut manifest = MANIFEST_HEAD.to_string();
    let files: Vec<(String, Vec<u8>)> = testdata::corpus()
        .into_iter()
        .map(|case| {
            let ext = match case.tar.starts_with(&[0x1f, 0x8b]) {
                true => "tar.gz",
                false => "tar",
            };
            let file = format!("{}.{ext}", case.name);
            manifest += &match case.expect {
                Expect::Accept => format!("{file}\taccept\n"),
                Expect::Reject(text) => format!("{file}\trefuse\t{text}\n"),
            };
            (file, case.tar)
        })
        .collect();
    (files, manifest)
}

#[test]
#[ignore = "writes tests/corpus/layers: run it after changing testdata::corpus()"]
fn write_corpus() {
    let dir = corpus_dir();
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let (files, manifest) = corpus_files();
    for (name, data) in files {
        fs::write(dir.join(name), data).unwrap();
    }
    fs::write(dir.join("MANIFEST"), manifest).unwrap();
}

#[test]
fn corpus_is_up_to_date() {
    let dir = corpus_dir();
    let (files, manifest) = corpus_files();
    let hint = "run: cargo test --test fuzz_unpack -- --ignored write_corpus";
    assert_eq!(
        fs::read_to_string(dir.join("MANIFEST")).unwrap_or_default(),
        manifest,
        "tests/corpus/layers/MANIFEST is stale: {hint}"
    );
    for (name, data) in &files {
        assert!(
            fs::read(dir.join(name)).ok().as_ref() == Some(data),
            "tests/corpus/layers/{name} is stale: {hint}"
        );
    }
    let mut on_disk: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "MANIFEST")
        .collect();
    on_disk.sort();
    let mut made: Vec<String> = files.into_iter().map(|(n, _)| n).collect();
    made.sort();
    assert_eq!(on_disk, made, "files in tests/corpus/layers: {hint}");
}

#[test]
fn corpus_replays() {
    // The layer `good` has an opaque directory: an xattr only root may set.
    if !common::root() {
        return;
    }
    let _ = fs::remove_file(ESCAPE_TARGET);
    let dir = corpus_dir();
    let manifest = fs::read_to_string(dir.join("MANIFEST")).unwrap();
    let sandbox = Sandbox::new();
    let mut replayed = 0;
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (file, expect) = match fields[..] {
            [file, "accept"] => (file, None),
            [file, "refuse", text] => (file, Some(text)),
            _ => panic!("bad line in MANIFEST: {line:?}"),
        };
        let tar = fs::read(dir.join(file)).unwrap();
        let never = || Ok(());
        let result = layer::unpack(reader(&tar), &sandbox.new_layer(), &CORPUS_LIMITS, &never);
        if file == "deep-chain.tar" {
            let f = sandbox.new_layer().join("d/".repeat(1500)).join("f");
            assert_eq!(fs::read(f).unwrap(), b"bottom\n");
        }
        sandbox
            .check_and_reset()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        match (result, expect) {
            (Ok(_), None) => {}
            (Err(e), Some(text)) => {
                one_line(&e).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(e.msg.contains(text), "{file}: {:?} lacks {text:?}", e.msg);
            }
            (result, _) => panic!(
                "{file}: expected {line:?}, got {:?}",
                result.map_err(|e| e.msg)
            ),
        }
        replayed += 1;
    }
    assert!(replayed >= 20, "only {replayed} cases in the MANIFEST");
}
