//! Chapter 8's demos: a root filesystem made of image layers with overlayfs.

mod common;

use ch08_overlay::testdata::{self, Expect, ESCAPE_TARGET};
use common::{root, rootfs, run_clean, Run, SCRATCH};
use std::path::{Path, PathBuf};

/// A state dir of the test's own, removed when dropped (also on panic).
struct State(PathBuf);

impl State {
    fn new() -> State {
        let dir = Path::new(SCRATCH).join(format!("state-{}", common::unique_id()));
        std::fs::create_dir_all(&dir).unwrap();
        State(dir)
    }
    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
    /// The container dirs in the state dir.
    fn containers(&self) -> Vec<String> {
        match std::fs::read_dir(self.0.join("containers")) {
            Ok(d) => d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn overlay_available() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("overlay")
        || common::skip("the kernel has no overlay filesystem (modprobe overlay)")
}

fn image() -> Vec<String> {
    let layers = xtask::image::ensure().expect("building the default image");
    layers
        .iter()
        .flat_map(|l| ["--layer".to_string(), l.to_string_lossy().into_owned()])
        .collect()
}

/// `ch08-overlay --state-dir STATE --layer ... ARGS`, with the paths redacted.
fn ch08(state: &State, extra: &[&str], command: &[&str]) -> Run {
    let image = image();
    let state_arg = state.arg();
    let mut args: Vec<&str> = vec!["--state-dir", &state_arg];
    args.extend(image.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    let id = common::unique_id();
    let mut run = common::run_clean_as(&id, "ch08-overlay", &args);
    let image_dir = xtask::paths::default_image().to_string_lossy().into_owned();
    run.transcript = run
        .transcript
        .replace(&image_dir, "IMAGE")
        .replace(&state_arg, "STATE");
    // Gone after exit; with --keep, only the upper dir stays.
    let dir = state.0.join("containers").join(&id);
    let left: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let allowed: &[&str] = if extra.contains(&"--keep") {
        &["upper"]
    } else {
        &[]
    };
    assert_eq!(left, allowed, "left in the container dir {}", dir.display());
    run
}

#[test]
fn ch08_layers_and_whiteouts() {
    if !root() || !overlay_available() {
        return;
    }
    let state = State::new();
    let show = "cat /etc/motd; ls /srv /srv/docs; cat /srv/hello.txt";
    let r = rootfs().to_string_lossy().into_owned();
    let before = run_clean("ch07-cgroups", &["--rootfs", &r, "--", "sh", "-c", show]);
    let after = ch08(&state, &[], &["sh", "-c", show]);
    // Layer 2's /srv/hello.txt is hidden by layer 3's whiteout; /srv/docs is
    // opaque in layer 3, so only its own c.txt shows.
    assert!(
        after.stderr.contains("can't open '/srv/hello.txt'"),
        "{}",
        after.transcript
    );
    assert!(
        after.stdout.contains("/srv/docs:\nc.txt\n"),
        "{}",
        after.transcript
    );
    assert!(
        after.stdout.starts_with("This / is three image layers"),
        "{}",
        after.transcript
    );
    // The root is the overlay, its lower layers reached through short links.
    let probe = ch08(&state, &[], &["sh", "-c", "/bin/probe fs | grep -e root: -e ' / '; grep -o 'lowerdir=[^,]*,upperdir=[^,]*,workdir=[^,]*' /proc/mounts"]);
    assert!(
        probe.stdout.contains("  / overlay rw"),
        "{}",
        probe.transcript
    );
    assert!(
        probe
            .stdout
            .contains("lowerdir=l/2:l/1:l/0,upperdir=upper,workdir=work"),
        "{}",
        probe.transcript
    );
    crate::snapshot!("ch08_before", &before.transcript);
    crate::snapshot!("ch08_whiteout", &after.transcript);
    crate::snapshot!("ch08_after", &probe.transcript);
}

/// Every file under `dir` with its size and mode: enough to see a change.
fn fingerprint(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            out.push(format!(
                "{} {} {:o}",
                e.path().display(),
                m.len(),
                std::os::unix::fs::PermissionsExt::mode(&m.permissions())
            ));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn ch08_writes_go_to_the_upper_dir() {
    if !root() || !overlay_available() {
        return;
    }
    let state = State::new();
    // Unpack the layers once, then fingerprint them.
    ch08(&state, &[], &["true"]);
    let layers = state.0.join("layers");
    let before = fingerprint(&layers);
    let run = ch08(
        &state,
        &["--keep"],
        &[
            "sh",
            "-c",
            "echo written > /root/note; rm /etc/motd; ls /root /etc/motd",
        ],
    );
    assert_eq!(fingerprint(&layers), before, "a container changed a layer");
    let kept = run
        .stderr
        .lines()
        .find_map(|l| l.split("upper dir: ").nth(1))
        .expect("--keep prints the upper dir");
    let kept = Path::new(kept.trim());
    assert_eq!(
        std::fs::read_to_string(kept.join("root/note")).unwrap(),
        "written\n"
    );
    // The deleted lower file is a whiteout in upper: a character device 0/0.
    let motd = std::fs::symlink_metadata(kept.join("etc/motd")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &motd.file_type()
    ));
    assert_eq!(std::os::unix::fs::MetadataExt::rdev(&motd), 0);
    let _ = std::fs::remove_dir_all(kept.parent().unwrap());
    let redacted = regex::Regex::new(r"containers/[0-9a-f]+/")
        .unwrap()
        .replace_all(&run.transcript, "containers/ID/")
        .into_owned();
    crate::snapshot!("ch08_upper", &redacted);
}

#[test]
fn ch08_containers_do_not_see_each_others_writes() {
    if !root() || !overlay_available() {
        return;
    }
    let state = std::sync::Arc::new(State::new());
    ch08(&state, &[], &["true"]); // unpack once
    let script =
        |name: &str| format!("echo {name} > /root/mark; sleep 1; cat /root/mark; ls /root");
    let threads: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|name| {
            let state = state.clone();
            let cmd = script(name);
            std::thread::spawn(move || ch08(&state, &[], &["sh", "-c", &cmd]).stdout)
        })
        .collect();
    let outputs: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(outputs, ["first\nmark\n", "second\nmark\n"]);
}

#[test]
fn ch08_bad_layers_are_refused() {
    if !root() || !overlay_available() {
        return;
    }
    let _ = std::fs::remove_file(ESCAPE_TARGET);
    let state = State::new();
    let image = xtask::image::ensure().unwrap();
    let (s, bottom) = (state.arg(), image[0].to_string_lossy().into_owned());
    // A layer in the cache before the first case: every case must leave it,
    // and every layer cached since, as it was.
    let warm = run_clean(
        "ch08-overlay",
        &["--state-dir", &s, "--layer", &bottom, "--", "true"],
    );
    assert_eq!(warm.code, 0, "{}", warm.transcript);
    let layers = state.0.join("layers");
    // The layer (a directory of layers/ named by a sha256) that a line of
    // `fingerprint` is about, if it is about one.
    let layer_of = |line: &str| -> Option<String> {
        let path = line.rsplitn(3, ' ').nth(2)?;
        let rel = Path::new(path).strip_prefix(&layers).ok()?;
        let top = rel.components().next()?.as_os_str().to_string_lossy();
        let is_layer = top.len() == 64 && top.bytes().all(|b| b.is_ascii_hexdigit());
        is_layer.then(|| top.into_owned())
    };
    let mut transcript = String::new();
    for case in testdata::malicious() {
        let tar = state.0.join(format!("{}.tar", case.name));
        std::fs::write(&tar, &case.tar).unwrap();
        let t = tar.to_string_lossy().into_owned();
        let before = fingerprint(&layers);
        let cached: Vec<String> = before.iter().filter_map(|l| layer_of(l)).collect();
        let run = run_clean(
            "ch08-overlay",
            &[
                "--state-dir",
                &s,
                "--layer",
                &bottom,
                "--layer",
                &t,
                "--",
                "true",
            ],
        );
        match case.expect {
            Expect::Reject(why) => {
                assert_eq!(run.code, 125, "{}: {}", case.name, run.transcript);
                assert_eq!(
                    run.stderr.lines().count(),
                    1,
                    "{}: {}",
                    case.name,
                    run.transcript
                );
                assert!(
                    run.stderr.contains(why),
                    "{}: {}",
                    case.name,
                    run.transcript
                );
                transcript.push_str(&format!("{}: {}", case.name, run.stderr));
            }
            Expect::Accept => assert_eq!(run.code, 0, "{}: {}", case.name, run.transcript),
        }
        assert!(
            !Path::new(ESCAPE_TARGET).exists(),
            "{} wrote outside its layer",
            case.name
        );
        assert!(
            state.containers().is_empty(),
            "{} left a container dir",
            case.name
        );
        // The cache's other layers are intact: every entry of every layer
        // that was cached is there unchanged, and none has new entries. (A
        // whiteout of ".." once deleted them all.) Only a new layer's
        // directory, this case's own, may appear.
        assert!(layers.is_dir(), "{} deleted the layer cache", case.name);
        let after = fingerprint(&layers);
        let gone: Vec<&String> = before
            .iter()
            .filter(|l| layer_of(l).is_some() && !after.contains(l))
            .collect();
        let new: Vec<&String> = after
            .iter()
            .filter(|l| layer_of(l).is_some_and(|layer| cached.contains(&layer)))
            .filter(|l| !before.contains(l))
            .collect();
        assert!(
            gone.is_empty() && new.is_empty(),
            "{} changed the cached layers: was {gone:?}, is {new:?}",
            case.name
        );
        // A refused layer leaves no partial unpack behind in the cache.
        let leftovers: Vec<_> = std::fs::read_dir(&layers)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{} left {leftovers:?}", case.name);
    }
    let sha = regex::Regex::new(r"sha256:[0-9a-f]{12,64}").unwrap();
    crate::snapshot!(
        "ch08_bad_layers",
        &sha.replace_all(&common::redact(&transcript), "sha256:…")
            .into_owned()
    );
}
