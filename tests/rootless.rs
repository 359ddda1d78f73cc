//! Chapter 11 started by an ordinary user: a user the test makes for
//! itself (useradd, with a range of subordinate ids) and removes
//! afterwards, whatever happens. The user's copy of the binary and the
//! image sit in a directory of the test's own, readable by that user (the
//! project may be cloned where the user cannot read, such as under /root).

mod common;

use common::{bin_dir, root, Sandbox};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A user of the test's own, removed (with its home, its subordinate ids
/// and its runtime directory) when dropped.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    /// The binary and the image, where the user can read them.
    dir: PathBuf,
}

impl TestUser {
    /// None (a skip, a failure under CI) without useradd.
    fn new(sb: &Sandbox) -> Option<TestUser> {
        let name = format!("sbt{}", common::unique_id());
        let made = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", &name])
            .status();
        if !made.is_ok_and(|s| s.success()) {
            common::skip("useradd failed (scripts/install-deps.sh installs passwd)");
            return None;
        }
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        let dir = sb.dir.join(format!("for-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut me = TestUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            dir,
        };
        me.ensure_subordinate_ids();
        me.copy_in();
        Some(me)
    }

    /// useradd gives a new user subordinate ids on Debian (SUB_UID_COUNT);
    /// where it did not, a range of the test's choosing.
    fn ensure_subordinate_ids(&mut self) {
        let has = |file: &str| {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with(&format!("{}:", self.name)))
        };
        if !(has("/etc/subuid") && has("/etc/subgid")) {
            let start = 3_000_000 + (self.uid % 1000) * 65_536;
            let range = format!("{start}-{}", start + 65_535);
            let ok = Command::new("usermod")
                .args(["--add-subuids", &range, "--add-subgids", &range, &self.name])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "usermod --add-subuids {range} {}", self.name);
        }
    }

    /// The binary and the image's layers, readable by the user. The
    /// sandbox's directories are root's and 0700 on the way: open them up
    /// to be passed through.
    fn copy_in(&self) {
        use std::os::unix::fs::PermissionsExt;
        let mut d = self.dir.clone();
        loop {
            let _ = std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755));
            if d == Path::new(common::SCRATCH) || !d.pop() {
                break;
            }
        }
        std::fs::copy(bin_dir().join("ch11-userns"), self.dir.join("ch11-userns")).unwrap();
        for layer in xtask::image::ensure().expect("the default image") {
            let to = self.dir.join(layer.file_name().unwrap());
            std::fs::copy(&layer, &to).unwrap();
        }
    }

    fn layers(&self) -> Vec<String> {
        xtask::image::LAYERS
            .iter()
            .flat_map(|l| {
                [
                    "--layer".to_string(),
                    self.dir.join(l).to_string_lossy().into_owned(),
                ]
            })
            .collect()
    }

    /// `program` as this user, in their home, stdin closed, with a clean
    /// environment: HOME, USER, LOGNAME, PATH, and no XDG_RUNTIME_DIR.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(&self.home)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null());
        cmd
    }

    /// `ch11-userns --layer ... EXTRA -- sh -c SCRIPT` as this user, with
    /// a clean environment (HOME, USER, PATH, no XDG_RUNTIME_DIR).
    fn sh(&self, extra: &[&str], script: &str) -> common::Run {
        let mut args: Vec<String> = self.layers();
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.sh_layers(&args, script)
    }

    /// [`TestUser::sh`] with the `--layer` arguments given in `args`.
    fn sh_layers(&self, args: &[&str], script: &str) -> common::Run {
        let extra = args;
        let mut cmd = self.command(self.dir.join("ch11-userns"));
        cmd.args(extra).args(["--", "sh", "-c", script]);
        let out = cmd.output().expect("running ch11-userns as the test user");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap_or(-1);
        // The uid as a whole number only: 1000 is also in 100000.
        let uid = regex::Regex::new(&format!(r"\b{}\b", self.uid)).unwrap();
        let shown = |s: &str| {
            let s = s
                .replace(&self.dir.to_string_lossy().into_owned(), "IMAGE")
                .replace(&self.name, "USER");
            uid.replace_all(&s, "UID").into_owned()
        };
        // The warning that a cgroup v1 host (this project's machines) gives
        // every rootless run is the host's, not the demo's: a v2 host with
        // a delegated subtree gives none. Tests assert it where they mean to.
        let stderr_shown: String = stderr
            .lines()
            .filter(|l| !l.contains("warning: no cgroup"))
            .map(|l| format!("{l}\n"))
            .collect();
        let command: Vec<&str> = std::iter::once("ch11-userns")
            .chain(extra.iter().copied())
            .collect();
        let mut transcript = format!(
            "$ {} -- sh -c '{script}'   # as USER\n{}{}",
            shown(&command.join(" ")),
            shown(&stdout),
            shown(&stderr_shown)
        );
        if code != 0 {
            transcript += &format!("[exit status {code}]\n");
        }
        common::Run {
            code,
            stdout,
            stderr,
            transcript,
        }
    }

    /// The first range of the user's /etc/subuid entry.
    fn subuid(&self) -> (u32, u32) {
        let text = std::fs::read_to_string("/etc/subuid").unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{}:", self.name)))
            .unwrap();
        let f: Vec<&str> = line.split(':').collect();
        (f[1].parse().unwrap(), f[2].parse().unwrap())
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Anything still running as the user goes first, or userdel refuses.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.uid.to_string()])
            .status();
        let run_dir = format!("/tmp/stepbox-{}", self.uid);
        let _ = ch08_overlay::remove::remove_all(Path::new(&run_dir));
        let _ = ch08_overlay::remove::remove_all(&self.dir);
        let removed = Command::new("userdel")
            .args(["--remove", &self.name])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // The home holds the user's layer store: files of its subordinate
        // ids, which userdel removes as root.
        let _ = ch08_overlay::remove::remove_all(&self.home);
        if !std::thread::panicking() {
            assert!(removed, "userdel --remove {}", self.name);
            for file in ["/etc/passwd", "/etc/subuid", "/etc/subgid"] {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                assert!(
                    !text
                        .lines()
                        .any(|l| l.starts_with(&format!("{}:", self.name))),
                    "{} is still in {file}",
                    self.name
                );
            }
        }
    }
}

/// uid 0 in the container is the user's own uid on the host, and uids
/// from 1 on are the user's subordinate ids (newuidmap).
#[test]
fn an_ordinary_users_container_maps_its_own_ids() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("rootless");
    let Some(user) = TestUser::new(&sb) else {
        return;
    };
    let (sub, count) = user.subuid();
    let run = user.sh(&[], "/bin/probe userns; id -u");
    assert_eq!(run.code, 0, "{}", run.transcript);
    let want = format!(
        "uid_map: 0 -> {}, 1-{count} -> {sub}-{}",
        user.uid,
        sub + count - 1
    );
    assert!(run.stdout.contains(&want), "{want}\n{}", run.transcript);
    assert!(
        run.stdout
            .contains(&format!("root: uid 0 here only: uid {} outside", user.uid)),
        "{}",
        run.transcript
    );
    // This project's machines have cgroup v1: no cgroup for an ordinary
    // user, and one line that says so.
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert!(run.stderr.contains("warning: no cgroup"), "{}", run.stderr);
    }
    let single = user.sh(
        &["--uidmap", &format!("0:{}:1", user.uid)],
        "/bin/probe userns",
    );
    assert_eq!(single.code, 0, "{}", single.transcript);
    assert!(
        single.stdout.contains("setgroups: deny"),
        "{}",
        single.transcript
    );
    let transcript = format!("{}{}", run.transcript, single.transcript)
        .replace(&sub.to_string(), "SUBUID")
        .replace(&(sub + count - 1).to_string(), "SUBUID_END");
    crate::snapshot!("rootless_ids", transcript);
}

/// Chapter 8's demo (three layers, a whiteout, an opaque directory), as an
/// ordinary user: the same files as root sees.
#[test]
fn chapter_8s_demo_runs_as_an_ordinary_user() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("rootless");
    let Some(user) = TestUser::new(&sb) else {
        return;
    };
    let show = "cat /etc/motd; ls /srv /srv/docs; cat /srv/hello.txt";
    let as_root = sb.sh("ch11-userns", &[], show);
    let rootless = user.sh(&[], show);
    assert_eq!(rootless.stdout, as_root.stdout, "{}", rootless.transcript);
    assert!(
        rootless.stderr.contains("can't open '/srv/hello.txt'"),
        "{}",
        rootless.transcript
    );
    // Writes go to the user's own upper layer: a file of root's, and one
    // of uid 1000's, then removed with the container.
    let write = "echo x > /root-file && echo y > /app-file && chown 1000:1000 /app-file && ls -ln /root-file /app-file";
    let run = user.sh(&[], write);
    assert_eq!(run.code, 0, "{}", run.transcript);
    let store = user.home.join(".local/share/stepbox/containers");
    assert_eq!(
        common::names(&store),
        Vec::<String>::new(),
        "{}",
        run.transcript
    );

    // A layer with files of uid 1000: 1000's in the container, and on the
    // host the user's subordinate id that the map gives 1000 (the layer is
    // unpacked in a user namespace with the container's maps).
    use ch08_overlay::testdata::{tar, Entry, EntryType};
    let owned = |e: Entry<'static>| Entry {
        owner: (1000, 1000),
        ..e
    };
    let layer = tar(&[
        Entry::new(EntryType::Directory, b"home/"),
        owned(Entry::new(EntryType::Directory, b"home/app/")),
        owned(Entry::file(b"home/app/notes", b"mine\n")),
    ]);
    let path = user.dir.join("4-owned.tar");
    std::fs::write(&path, layer).unwrap();
    let busybox = user.dir.join(xtask::image::LAYERS[0]);
    let layers = [
        "--layer",
        &busybox.to_string_lossy(),
        "--layer",
        &path.to_string_lossy(),
    ]
    .map(str::to_owned);
    let layers: Vec<&str> = layers.iter().map(String::as_str).collect();
    let run = user.sh_layers(&layers, "stat -c '%u:%g %n' /home/app /home/app/notes");
    assert_eq!(
        run.stdout, "1000:1000 /home/app\n1000:1000 /home/app/notes\n",
        "{}",
        run.transcript
    );
    let (sub, _) = user.subuid();
    let on_host = find(&user.home.join(".local/share/stepbox"), "notes");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&on_host).unwrap();
    assert_eq!(meta.uid(), sub + 999, "{}", on_host.display());
}

/// The first file called `name` below `dir`.
fn find(dir: &Path, name: &str) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_name() == name {
                return path;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    panic!("no {name} below {}", dir.display())
}

/// What an ordinary user cannot have is refused in one line, before
/// anything is made.
#[test]
fn what_an_ordinary_user_cannot_have_is_refused() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("rootless");
    let Some(user) = TestUser::new(&sb) else {
        return;
    };
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--uidmap".into(), "0:5000000:10".into()],
            "are not yours to map",
        ),
        (
            vec!["--userns-remap".into(), "root".into()],
            "only root may map",
        ),
        (vec!["--veth".into()], "--veth"),
    ];
    // A limit needs a cgroup: on cgroup v1 an ordinary user can have none.
    let v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if v1 {
        cases.push((vec!["--memory".into(), "64m".into()], "cgroup v1"));
    }
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = user.sh(&args, "echo ran");
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (125, ""),
            "{}",
            run.transcript
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript);
        assert!(run.stderr.contains(want), "{want}: {}", run.transcript);
    }
}

/// `podman GLOBAL ARGS` as `user`, in a clean environment with a runtime
/// directory of the user's own (`XDG_RUNTIME_DIR`, which rootless podman
/// needs and hands on to the runtime).
fn podman_as(user: &TestUser, args: &[&str]) -> common::Run {
    let ch12 = user.dir.join("ch12-oci");
    let mut cmd = user.command("podman");
    cmd.args(["--runtime", &ch12.to_string_lossy()])
        // No systemd here, and a storage driver that needs no mount:
        // nothing of the test's outlives the user's home.
        .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
        .args(["--storage-driver", "vfs"])
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("XDG_RUNTIME_DIR", user.home.join("run"));
    let out = cmd.output().expect("running podman as the test user");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    let transcript = format!(
        "$ podman {}\n{stdout}{stderr}[exit {code}]\n",
        args.join(" ")
    );
    common::Run {
        code,
        stdout,
        stderr,
        transcript,
    }
}

/// Rootless podman drives chapter 12. Podman makes the user namespace
/// (the user's own uid as 0, and their subordinate ids) and calls the
/// runtime inside it, as uid 0 without the host's privileges: the
/// runtime keeps its state in `$XDG_RUNTIME_DIR/ch12-oci`, the container
/// stays in the runtime's cgroup (cgroup v1 cannot be delegated), and
/// `run`, `exec`, `logs` (nothing of the runtime's in them), exit codes
/// and `rm` work.
#[test]
fn rootless_podman_drives_chapter_12() {
    if !root() {
        return;
    }
    for tool in ["podman", "conmon", "newuidmap"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            common::skip(&format!(
                "{tool} is missing (scripts/install-deps.sh installs it)"
            ));
        }
    }
    let sb = Sandbox::new("rlpodman");
    let Some(user) = TestUser::new(&sb) else {
        return;
    };
    std::fs::copy(bin_dir().join("ch12-oci"), user.dir.join("ch12-oci")).unwrap();
    let run_dir = user.home.join("run");
    std::fs::create_dir(&run_dir).unwrap();
    std::os::unix::fs::chown(&run_dir, Some(user.uid), Some(user.gid)).unwrap();
    let image = user.dir.join(xtask::image::LAYERS[0]);
    let import = podman_as(
        &user,
        &["import", &image.to_string_lossy(), "localhost/sb:1"],
    );
    assert_eq!(import.code, 0, "{}", import.transcript);
    let opts = ["--network", "none", "--ulimit", "nofile=1024:1024"];
    let run = |user: &TestUser, extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["run"];
        args.extend(opts);
        args.extend(extra);
        args.push("localhost/sb:1");
        args.extend(cmd);
        podman_as(user, &args)
    };
    let ids = run(
        &user,
        &["--rm"],
        &["sh", "-c", "id -u; cat /proc/self/uid_map"],
    );
    assert_eq!(ids.code, 0, "{}", ids.transcript);
    let lines: Vec<Vec<&str>> = ids
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0"], "{}", ids.transcript);
    let uid = user.uid.to_string();
    assert_eq!(lines[1], ["0", uid.as_str(), "1"], "{}", ids.transcript);
    let (sub, count) = user.subuid();
    let (sub, count) = (sub.to_string(), count.to_string());
    assert_eq!(
        lines[2],
        ["1", sub.as_str(), count.as_str()],
        "{}",
        ids.transcript
    );

    let started = run(
        &user,
        &["-d", "--name", "c1"],
        &["sh", "-c", "echo hello; exec sleep 1000"],
    );
    assert_eq!(started.code, 0, "{}", started.transcript);
    let cid = started.stdout.trim().to_owned();
    let state = run_dir.join("ch12-oci").join(&cid).join("state.json");
    assert!(state.exists(), "no {}", state.display());
    let exec = podman_as(
        &user,
        &[
            "exec",
            "c1",
            "sh",
            "-c",
            "[ $(readlink /proc/1/ns/pid) = $(readlink /proc/self/ns/pid) ] && echo joined",
        ],
    );
    assert_eq!(exec.stdout, "joined\n", "{}", exec.transcript);
    // The runtime's warnings (no cgroup, here) go to its --log, never into
    // the container's stdio, which create shares.
    let logs = podman_as(&user, &["logs", "c1"]);
    assert_eq!(logs.stdout, "hello\n", "{}", logs.transcript);
    assert_eq!(logs.stderr, "", "{}", logs.transcript);
    let rm = podman_as(&user, &["rm", "-f", "-t", "0", "c1"]);
    assert_eq!(rm.code, 0, "{}", rm.transcript);
    assert!(!state.exists(), "{} is left", state.display());

    let status = run(&user, &["--rm"], &["sh", "-c", "exit 7"]);
    assert_eq!(status.code, 7, "{}", status.transcript);
    let left: Vec<_> = std::fs::read_dir(run_dir.join("ch12-oci"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "containers")
        .collect();
    assert!(left.is_empty(), "chapter 12 left {left:?}");
}

/// `ch12-oci run` by an ordinary user, on a bundle whose config has a
/// user namespace mapped to the user's own uid and subordinate ids (what
/// runc's `spec --rootless` writes, with ranges): chapter 11 writes the
/// maps (newuidmap for the ranges), and a file chowned to uid 5 inside
/// belongs to the fifth subordinate id outside.
#[test]
fn an_ordinary_user_runs_a_bundle_with_a_user_namespace() {
    if !root() {
        return;
    }
    let sb = Sandbox::new("rlbundle");
    let Some(user) = TestUser::new(&sb) else {
        return;
    };
    let ch12 = user.dir.join("ch12-oci");
    std::fs::copy(bin_dir().join("ch12-oci"), &ch12).unwrap();
    let bundle = user.home.join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let image = user.dir.join(xtask::image::LAYERS[0]);
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(&image)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(untar.success());
    let spec = Command::new(&ch12)
        .arg("spec")
        .arg("--bundle")
        .arg(&bundle)
        .args([
            "--",
            "sh",
            "-c",
            "cat /proc/self/uid_map; touch /f; chown 5:5 /f",
        ])
        .status()
        .unwrap();
    assert!(spec.success());
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let (sub, count) = user.subuid();
    let maps = serde_json::json!([
        {"containerID": 0, "hostID": user.uid, "size": 1},
        {"containerID": 1, "hostID": sub, "size": count},
    ]);
    let linux = &mut config["linux"];
    linux["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    linux["uidMappings"] = maps.clone();
    linux["gidMappings"] = maps;
    // No limits: cgroup v1 gives an ordinary user no cgroup.
    linux.as_object_mut().unwrap().remove("resources");
    std::fs::write(&path, config.to_string()).unwrap();
    let chown = Command::new("chown")
        .args(["-R", &format!("{}:{}", user.uid, user.gid)])
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(chown.success());
    // Output to files: create's container holds its stdio open until it
    // runs, and output() would wait for it.
    let n = std::cell::Cell::new(0);
    let ch12_as_user = |args: &[&str]| {
        n.set(n.get() + 1);
        let (out, err) = (
            sb.dir.join(format!("{}.out", n.get())),
            sb.dir.join(format!("{}.err", n.get())),
        );
        let status = user
            .command(&ch12)
            .args(args)
            .env("XDG_RUNTIME_DIR", user.home.join("run"))
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        std::process::Output {
            status,
            stdout: std::fs::read(&out).unwrap(),
            stderr: std::fs::read(&err).unwrap(),
        }
    };
    let b = bundle.to_string_lossy().into_owned();
    let out = ch12_as_user(&["run", "--bundle", &b, &format!("rl{}", common::unique_id())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (uid, sub_s, count_s) = (user.uid.to_string(), sub.to_string(), count.to_string());
    assert_eq!(
        lines,
        [
            vec!["0", uid.as_str(), "1"],
            vec!["1", sub_s.as_str(), count_s.as_str()]
        ]
    );
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(rootfs.join("f")).unwrap());
    assert_eq!(owner, sub + 4, "uid 5 inside is the fifth subordinate id");
    // create's stdio is the container's (an engine's pipes): its warning
    // (no cgroup, on v1) goes to --log, not to stderr.
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let id = format!("rl{}", common::unique_id());
        let log = user.home.join("log.json");
        let log_s = log.to_string_lossy().into_owned();
        let create = ch12_as_user(&[
            "--log",
            &log_s,
            "--log-format",
            "json",
            "create",
            "--bundle",
            &b,
            &id,
        ]);
        let stderr = String::from_utf8_lossy(&create.stderr).into_owned();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let deleted = ch12_as_user(&["delete", "--force", &id]);
        assert!(create.status.success(), "{stderr}");
        assert_eq!(stderr, "", "create wrote to the container's stderr");
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "warning", "{text}");
        assert!(
            line["msg"].as_str().unwrap().starts_with("no cgroup: "),
            "{text}"
        );
        assert!(deleted.status.success());
    }
}
