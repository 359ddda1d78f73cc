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
        let mut cmd = Command::new(self.dir.join("ch11-userns"));
        cmd.args(extra)
            .args(["--", "sh", "-c", script])
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(&self.home)
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null());
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
