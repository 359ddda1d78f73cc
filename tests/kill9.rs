//! `kill -9` of the runtime at several points of a start, then the sweep
//! (the next start's, or `--gc`) removes everything the killed run made,
//! from its state record alone: no cgroup, mount, container directory,
//! veth or record is left.
//!
//! Each test first shows that the kill did leave things on the host (so
//! that the sweep has something to do), then sweeps both ways: once with
//! a new start, once with `--gc`. Every run uses a run directory (for the
//! records) and a state directory of the test's own, under SCRATCH:
//! the host's own records are never read or swept.

mod common;

use common::{bin_dir, find_cgroups, mounts_under, names, root, rootfs, Runtime, Sandbox};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// How the killed run's leftovers are swept.
#[derive(Debug, Clone, Copy)]
enum Sweep {
    /// By the next start of a container (another id), before it makes anything.
    NextStart,
    /// By `chNN-name --gc`.
    Gc,
}

const SWEEPS: [Sweep; 2] = [Sweep::NextStart, Sweep::Gc];

/// What these tests ask of their sandbox beyond what every test's has.
impl Sandbox {
    fn state(&self) -> String {
        self.state_dir().to_string_lossy().into_owned()
    }
    /// `bin args`, with this sandbox's run dir and the container id `id`.
    fn command(&self, bin: &str, id: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin_dir().join(bin));
        cmd.args(args)
            .env("STEPBOX_RUN_DIR", self.run_dir())
            .env("STEPBOX_CONTAINER_ID", id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
    /// The kinds of resource container `id`'s record lists, in order.
    fn recorded(&self, id: &str) -> Vec<String> {
        let path = self.run_dir().join(format!("containers/{id}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no record {}: {e}", path.display()));
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(record["id"], id, "{text}");
        record["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_owned())
            .collect()
    }
    /// The temp dirs of the layer store (half-unpacked layers).
    fn temps(&self) -> Vec<String> {
        names(&self.dir.join("state/layers"))
            .into_iter()
            .filter(|n| n.starts_with(".tmp-"))
            .collect()
    }
}

/// Runs `cmd` to its end, stdin closed; (status, stdout, stderr).
fn finish(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cgroups_available() -> bool {
    Path::new("/sys/fs/cgroup").is_dir() || common::skip("no cgroup filesystem at /sys/fs/cgroup")
}

/// The default image's bottom layer (busybox).
fn busybox_layer() -> String {
    let image = xtask::image::ensure().expect("building the default image");
    image[0].to_string_lossy().into_owned()
}

/// A tar.gz of one file of `size` zero bytes: large to unpack, small to
/// make (gzip members one after another are one gzip stream).
fn zeros_tar_gz(path: &Path, size: u64) {
    let mut header = [0u8; 512];
    header[..5].copy_from_slice(b"zeros");
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{:0w$o}\0", v, w = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], size);
    octal(&mut header[136..148], 1_000_000_000);
    header[156] = b'0';
    header[257..265].copy_from_slice(b"ustar  \0");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let gzip = ch08_overlay::testdata::gzip;
    let mib = gzip(&vec![0u8; 1 << 20]);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&gzip(&header)).unwrap();
    for _ in 0..size >> 20 {
        f.write_all(&mib).unwrap();
    }
    f.write_all(&gzip(&[0u8; 1024])).unwrap();
    f.flush().unwrap();
}

/// What the killed run of `id` left is gone: cgroups, mounts, its
/// container directory, its record, the store's temp dirs.
fn assert_gone(sb: &Sandbox, id: &str) {
    assert_eq!(
        find_cgroups(id),
        Vec::<String>::new(),
        "cgroups of {id} left"
    );
    assert_eq!(
        mounts_under(id),
        Vec::<String>::new(),
        "mounts of {id} left"
    );
    assert!(
        !sb.container_dir(id).exists(),
        "{} left",
        sb.container_dir(id).display()
    );
    assert_eq!(
        sb.record_files(id),
        Vec::<String>::new(),
        "record of {id} left"
    );
    assert_eq!(
        sb.temps(),
        Vec::<String>::new(),
        "temp dirs left in the store"
    );
}

/// Sweeps `sb` the way `how` says, with chapter 8's binary; `gone` is the
/// killed container, whose leftovers the `--gc` line must name.
fn sweep_ch08(sb: &Sandbox, how: Sweep, gone: &str, layer: &str) {
    let state = sb.state();
    match how {
        Sweep::NextStart => {
            let id = sb.id();
            let (code, _, err) = finish(sb.command(
                "ch08-overlay",
                &id,
                &["--state-dir", &state, "--layer", layer, "--", "true"],
            ));
            assert_eq!((code, err.as_str()), (0, ""), "the next start");
            assert_gone(sb, &id);
        }
        Sweep::Gc => {
            let (code, out, err) =
                finish(sb.command("ch08-overlay", "0", &["--gc", "--state-dir", &state]));
            assert_eq!(code, 0, "--gc: {err}");
            assert_eq!(out, "");
            assert!(
                err.contains(&format!(
                    "container {gone} (ch08-overlay, no longer running): removed "
                )),
                "--gc: {err}"
            );
        }
    }
}

// ANCHOR: before_overlay
/// Killed while it unpacks a big layer, in the check stage: before
/// anything of the container exists (no record, no cgroup), only the
/// store's temp dir, which the next start (or `--gc`) reclaims.
#[test]
fn ch08_killed_while_unpacking_before_anything_exists() {
    if !root() || !common::overlay_available() || !cgroups_available() {
        return;
    }
    let sb = Sandbox::new("kill9");
    let busybox = busybox_layer();
    let big = sb.dir.join("big.tar.gz");
    zeros_tar_gz(&big, 256 << 20);
    let big = big.to_string_lossy().into_owned();
    let state = sb.state();
    // The bottom layer cached first: the only temp dir is then the big one's.
    let (code, _, err) = finish(sb.command(
        "ch08-overlay",
        &sb.id(),
        &["--state-dir", &state, "--layer", &busybox, "--", "true"],
    ));
    assert_eq!(code, 0, "{err}");
    for how in SWEEPS {
        let id = sb.id();
        let mut rt = Runtime::start(sb.command(
            "ch08-overlay",
            &id,
            &[
                "--state-dir",
                &state,
                "--memory",
                "64m",
                "--layer",
                &busybox,
                "--layer",
                &big,
                "--",
                "true",
            ],
        ));
        rt.wait_until("the big layer's temp dir", || !sb.temps().is_empty());
        rt.kill9();
        // The layers are checked (unpacked) before any step makes anything.
        assert_eq!(find_cgroups(&id), Vec::<String>::new(), "{how:?}");
        assert_eq!(sb.record_files(&id), Vec::<String>::new(), "{how:?}");
        assert!(!sb.container_dir(&id).exists());
        assert_eq!(sb.temps().len(), 1);
        match how {
            Sweep::NextStart => sweep_ch08(&sb, how, &id, &busybox),
            Sweep::Gc => {
                let (code, _, err) =
                    finish(sb.command("ch08-overlay", "0", &["--gc", "--state-dir", &state]));
                assert_eq!(code, 0, "--gc: {err}");
            }
        }
        assert_gone(&sb, &id);
    }
}

/// Killed after its cgroup exists, at the overlay's mount(2): strace(1)
/// stops the runtime at that system call and kills it there, so the
/// point is exact, not a race with a poll.
#[test]
fn ch08_killed_after_the_cgroup_before_the_overlay() {
    if !root() || !common::overlay_available() || !cgroups_available() || !strace_available() {
        return;
    }
    let sb = Sandbox::new("kill9");
    let busybox = busybox_layer();
    let state = sb.state();
    for how in SWEEPS {
        let id = sb.id();
        let runtime = sb.command(
            "ch08-overlay",
            &id,
            &[
                "--state-dir",
                &state,
                "--memory",
                "64m",
                "--layer",
                &busybox,
                "--",
                "true",
            ],
        );
        // The first mount(2) is the overlay's (the container's own come
        // after the fork): it fails, and SIGKILL is delivered before the
        // runtime runs another instruction.
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=mount"])
            .args(["-e", "inject=mount:error=EPERM:signal=SIGKILL:when=1", "--"])
            .arg(runtime.get_program())
            .args(runtime.get_args())
            .envs(runtime.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{how:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Left: its cgroups and its directory; recorded: those, and the
        // mount point it was about to mount on.
        assert!(!find_cgroups(&id).is_empty(), "{how:?}: no cgroup");
        assert!(sb.container_dir(&id).exists());
        assert_eq!(mounts_under(&id), Vec::<String>::new());
        let kinds = sb.recorded(&id);
        assert!(
            kinds.starts_with(&["cgroup".to_owned()]),
            "{how:?}: {kinds:?}"
        );
        assert!(
            kinds.ends_with(&["dir".to_owned(), "mount".to_owned()]),
            "{kinds:?}"
        );

        sweep_ch08(&sb, how, &id, &busybox);
        assert_gone(&sb, &id);
    }
}

/// strace(1), which scripts/install-deps.sh installs.
fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        || common::skip("no strace(1): the exact kill points need it (scripts/install-deps.sh)")
}
// ANCHOR_END: before_overlay

/// Killed as soon as the overlay is mounted: between the mount and the
/// command, or just after the command started.
#[test]
fn ch08_killed_after_the_overlay_is_mounted() {
    if !root() || !common::overlay_available() || !cgroups_available() {
        return;
    }
    let sb = Sandbox::new("kill9");
    let busybox = busybox_layer();
    let state = sb.state();
    for how in SWEEPS {
        let id = sb.id();
        let merged = sb.container_dir(&id).join("merged");
        let merged = merged.to_string_lossy().into_owned();
        let mut rt = Runtime::start(sb.command(
            "ch08-overlay",
            &id,
            &[
                "--state-dir",
                &state,
                "--layer",
                &busybox,
                "--",
                "sh",
                "-c",
                "read x",
            ],
        ));
        rt.wait_until("the overlay mount", || {
            mounts_under(&merged).contains(&merged)
        });
        rt.kill9();
        assert_eq!(mounts_under(&merged), vec![merged.clone()], "{how:?}");
        assert!(sb.container_dir(&id).join("upper").is_dir());
        assert!(!find_cgroups(&id).is_empty());
        let kinds = sb.recorded(&id);
        assert_eq!(kinds.last().map(String::as_str), Some("mount"), "{kinds:?}");
        assert!(kinds.contains(&"dir".to_owned()), "{kinds:?}");

        sweep_ch08(&sb, how, &id, &busybox);
        assert_gone(&sb, &id);
    }
}

/// Killed while the command runs: what it wrote in its upper dir goes too.
#[test]
fn ch08_killed_while_the_command_runs() {
    if !root() || !common::overlay_available() || !cgroups_available() {
        return;
    }
    let sb = Sandbox::new("kill9");
    let busybox = busybox_layer();
    let state = sb.state();
    for how in SWEEPS {
        let id = sb.id();
        let mut rt = Runtime::start(sb.command(
            "ch08-overlay",
            &id,
            &[
                "--state-dir",
                &state,
                "--memory",
                "64m",
                "--layer",
                &busybox,
                "--",
                "sh",
                "-c",
                "echo data > /file && echo ready && read x",
            ],
        ));
        rt.wait_ready();
        rt.kill9();
        let upper = sb.container_dir(&id).join("upper/file");
        assert!(upper.exists(), "{how:?}: {} is not there", upper.display());
        assert_eq!(mounts_under(&id).len(), 1, "{how:?}");
        assert!(!find_cgroups(&id).is_empty());
        assert_eq!(sb.recorded(&id).len(), find_cgroups(&id).len() + 2);

        sweep_ch08(&sb, how, &id, &busybox);
        assert_gone(&sb, &id);
    }
}

/// Chapter 7: killed while the command runs, its cgroups are left; a
/// `--gc` while it is alive leaves them alone (its runtime holds the
/// record's lock), the sweep after the kill removes them.
#[test]
fn ch07_killed_while_the_command_runs() {
    if !root() || !cgroups_available() {
        return;
    }
    let sb = Sandbox::new("kill9");
    let r = rootfs().to_string_lossy().into_owned();
    for how in SWEEPS {
        let id = sb.id();
        let mut rt = Runtime::start(sb.command(
            "ch07-cgroups",
            &id,
            &[
                "--rootfs",
                &r,
                "--init",
                "--pids-limit",
                "20",
                "--",
                "sh",
                "-c",
                "echo ready && read x",
            ],
        ));
        rt.wait_ready();
        let cgroups = find_cgroups(&id);
        assert!(!cgroups.is_empty());
        let (code, out, err) = finish(sb.command("ch07-cgroups", "0", &["--gc"]));
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "", ""),
            "a live container's --gc"
        );
        assert_eq!(
            find_cgroups(&id),
            cgroups,
            "--gc removed a live container's cgroups"
        );
        assert_eq!(sb.recorded(&id).len(), cgroups.len());

        rt.kill9();
        assert_eq!(find_cgroups(&id), cgroups, "{how:?}");
        assert_eq!(sb.record_files(&id).len(), 2, "{:?}", sb.record_files(&id));

        match how {
            Sweep::NextStart => {
                let next = sb.id();
                let (code, _, err) =
                    finish(sb.command("ch07-cgroups", &next, &["--rootfs", &r, "--", "true"]));
                assert_eq!((code, err.as_str()), (0, ""));
                assert_gone(&sb, &next);
            }
            Sweep::Gc => {
                let (code, _, err) = finish(sb.command("ch07-cgroups", "0", &["--gc"]));
                assert_eq!(code, 0, "{err}");
                for c in &cgroups {
                    assert!(err.contains(&format!("cgroup {c}")), "{c}: {err}");
                }
            }
        }
        assert_gone(&sb, &id);
    }
}

/// Chapter 3: killed while the command runs. Its veth usually dies with
/// the container's netns; here the test holds that netns open (as anything
/// else could), so the host side stays, and the sweep must delete it.
#[test]
fn ch03_veth_killed_while_the_command_runs() {
    if !root() {
        return;
    }
    let Some(ns) = common::NetNs::new() else {
        return;
    };
    let sb = Sandbox::new("kill9");
    let inode = regex::Regex::new(r#"": [0-9]+"#).unwrap();
    for how in SWEEPS {
        let id = sb.id();
        let veth = format!("sb{id}");
        let mut rt = Runtime::start(ns.enter(sb.command(
            "ch03-net",
            &id,
            &["--veth", "--", "sh", "-c", "echo ready && read x"],
        )));
        rt.wait_ready();
        // The container: the runtime's only child.
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", rt.pid())).unwrap();
        let child: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
        let held = std::fs::File::open(format!("/proc/{child}/ns/net")).unwrap();
        rt.kill9();
        assert!(ns.has_link(&veth), "{how:?}: {veth} died with the runtime");
        assert_eq!(sb.recorded(&id), ["link"]);
        let record = sb.run_dir().join(format!("containers/{id}.json"));
        let shown = |text: &str| {
            inode
                .replace_all(&text.replace(&id, "ID"), r#"": N"#)
                .into_owned()
        };
        if let Sweep::Gc = how {
            crate::snapshot!(
                "ch03_record",
                shown(&std::fs::read_to_string(&record).unwrap())
            );
        }

        let (code, _, err) = match how {
            Sweep::NextStart => {
                finish(ns.enter(sb.command("ch03-net", &sb.id(), &["--veth", "--", "true"])))
            }
            Sweep::Gc => finish(ns.enter(sb.command("ch03-net", "0", &["--gc"]))),
        };
        assert_eq!(code, 0, "{how:?}: {err}");
        match how {
            Sweep::NextStart => assert_eq!(err, ""),
            Sweep::Gc => {
                assert!(err.contains(&format!("link {veth}")), "{err}");
                crate::snapshot!("ch03_gc", format!("$ ch03-net --gc\n{}", shown(&err)));
            }
        }
        assert!(!ns.has_link(&veth), "{how:?}: {veth} is left");
        assert_eq!(sb.record_files(&id), Vec::<String>::new());
        drop(held);
    }
}

/// A teardown that fails keeps the record, and the error says where; the
/// next start's sweep retries it without saying it again; `--gc` says it
/// every time, and removes it all once what stopped it is gone.
#[test]
fn ch08_a_failed_cleanup_keeps_the_record_for_gc() {
    if !root() || !common::overlay_available() || !cgroups_available() {
        return;
    }
    let sb = Sandbox::new("kill9");
    let busybox = busybox_layer();
    let state = sb.state();
    let id = sb.id();
    let mut rt = Runtime::start(sb.command(
        "ch08-overlay",
        &id,
        &[
            "--state-dir",
            &state,
            "--layer",
            &busybox,
            "--",
            "sh",
            "-c",
            "mkdir /m && echo ready && read x",
        ],
    ));
    rt.wait_ready();
    // From the host, a mount in the container's upper dir: neither the
    // runtime nor a sweep can remove that directory while it is there.
    let m = sb.container_dir(&id).join("upper/m");
    nix::mount::mount(
        Some("tmpfs"),
        &m,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    drop(rt.child.stdin.take()); // `read x` ends
    let status = rt.child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(rt.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(125), "{err}");
    let record = sb.run_dir().join(format!("containers/{id}.json"));
    assert!(
        err.contains(&format!("kept the state record {record:?}")),
        "{err}"
    );
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("\"failed\""));

    // The next start: its own container runs and goes; the old record is
    // retried, fails again, and is not reported a second time.
    let next = sb.id();
    let (code, _, err) = finish(sb.command(
        "ch08-overlay",
        &next,
        &["--state-dir", &state, "--layer", &busybox, "--", "true"],
    ));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_gone(&sb, &next);
    assert!(record.exists());
    let (code, _, err) = finish(sb.command("ch08-overlay", "0", &["--gc", "--state-dir", &state]));
    assert_eq!(code, 125, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "container {id} (ch08-overlay, no longer running): could not remove what it left"
        )),
        "{err}"
    );

    nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH).unwrap();
    let (code, _, err) = finish(sb.command("ch08-overlay", "0", &["--gc", "--state-dir", &state]));
    assert_eq!(code, 0, "{err}");
    assert_gone(&sb, &id);
}
