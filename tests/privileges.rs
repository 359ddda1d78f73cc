//! Chapter 9's demos: each attack works in chapter 8's container (root
//! with every capability) and fails in chapter 9's (docker's defaults).
//! Every run is `run_clean`: the host is checked before and after.

mod common;

use common::{attempts, root, Run, Sandbox};

fn sh(sb: &Sandbox, bin: &str, extra: &[&str], script: &str) -> Run {
    sb.sh(bin, extra, script)
}

/// The value of `key` in the container's /proc/self/status.
fn status_field(sb: &Sandbox, bin: &str, extra: &[&str], key: &str) -> String {
    let run = sh(sb, bin, extra, &format!("grep '^{key}:' /proc/self/status"));
    assert_eq!(run.code, 0, "{}", run.transcript);
    run.stdout
        .trim()
        .strip_prefix(&format!("{key}:"))
        .unwrap_or_else(|| panic!("no {key} in {}", run.stdout))
        .trim()
        .to_owned()
}

const CH08: &str = "ch08-overlay";
const CH09: &str = "ch09-privileges";

/// docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
/// SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE
/// SETFCAP, as a mask.
const DOCKER_DEFAULT: &str = "00000000a80425fb";

#[test]
fn capabilities_are_dockers_default_set() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let all = status_field(&sb, CH08, &[], "CapEff");
    assert_ne!(all, DOCKER_DEFAULT);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_field(&sb, CH09, &[], set), DOCKER_DEFAULT, "{set}");
    }
    assert_eq!(status_field(&sb, CH09, &[], "CapInh"), "0000000000000000");
    assert_eq!(status_field(&sb, CH09, &[], "CapAmb"), "0000000000000000");
    // Only NET_BIND_SERVICE (10): 1 << 10.
    let only = ["--cap-drop", "ALL", "--cap-add", "net_bind_service"];
    assert_eq!(status_field(&sb, CH09, &only, "CapEff"), "0000000000000400");
    // --privileged: what chapter 8 had.
    assert_eq!(status_field(&sb, CH09, &["--privileged"], "CapEff"), all);
}

/// The attacks of the book's "Before and after", one transcript: each
/// works in chapter 8 and fails in chapter 9.
#[test]
fn ch09_attacks() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let mut transcript = String::new();
    // A mount: needs CAP_SYS_ADMIN. (/mnt is made in the container's own
    // upper dir.)
    let script = "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted";
    let before = sh(&sb, CH08, &[], script);
    assert_eq!(
        (before.code, before.stdout.as_str()),
        (0, "mounted\n"),
        "{}",
        before.transcript
    );
    let after = sh(&sb, CH09, &[], script);
    assert_ne!(after.code, 0, "{}", after.transcript);
    assert!(
        after.stderr.contains("permission denied") || after.stderr.contains("not permitted"),
        "{}",
        after.transcript
    );
    transcript += &before.transcript;
    transcript += &after.transcript;
    // The kernel's settings: /proc/sys/kernel/hostname is the container's
    // own UTS namespace's, so chapter 8 renames only the container.
    let script = "echo changed > /proc/sys/kernel/hostname && hostname";
    let before = sh(&sb, CH08, &[], script);
    assert_eq!(
        (before.code, before.stdout.as_str()),
        (0, "changed\n"),
        "{}",
        before.transcript
    );
    let after = sh(&sb, CH09, &[], script);
    assert_ne!(after.code, 0, "{}", after.transcript);
    assert!(
        after.stderr.contains("Read-only file system"),
        "{}",
        after.transcript
    );
    transcript += &before.transcript;
    transcript += &after.transcript;
    // What is left, as the probe names it. (Chapter 8's list is the
    // host's, different on every machine; "14 of 41" depends on the
    // kernel's count, which the transcript leaves out.)
    let after = sh(&sb, CH09, &[], "/bin/probe caps");
    assert_eq!(after.code, 0, "{}", after.transcript);
    assert!(
        after.stdout.contains("effective: 14 of "),
        "{}",
        after.transcript
    );
    let count = regex::Regex::new(r" of [0-9]+\n").unwrap();
    transcript += &count.replace_all(&after.transcript, "\n");
    crate::snapshot!("ch09_attacks", &transcript);
}

const EPERM: &str = "EPERM (Operation not permitted)";
const EINVAL: &str = "EINVAL (Invalid argument)";

/// System calls that capabilities guard, each made so that it changes
/// nothing even when it is let through (see crates/probe/src/attempt.rs):
/// chapter 8 gets past the capability check (`ok`, or the EINVAL that a
/// bad argument earns only after the check), chapter 9 is stopped at it
/// (EPERM). mknod and raw sockets are in docker's default set: ok in both.
/// `--privileged` gives chapter 8's answers back.
#[test]
fn ch09_system_calls() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    // Yama's scope 3 forbids every attach, capability or not.
    let yama_forbids = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .is_ok_and(|scope| scope.trim() == "3");
    let with_cap_ptrace = if yama_forbids { EPERM } else { "ok" };
    let expected: &[(&str, &str, &str)] = &[
        ("reboot", EINVAL, EPERM),
        ("adjtimex", EINVAL, EPERM),
        ("settimeofday", EINVAL, EPERM),
        ("unshare", "ok", EPERM),
        ("ptrace", with_cap_ptrace, EPERM),
        ("mknod", "ok", "ok"),
        ("raw-socket", "ok", "ok"),
    ];
    let names: Vec<&str> = expected.iter().map(|&(name, _, _)| name).collect();
    let script = format!("/bin/probe attempt {}", names.join(" "));
    let before = sh(&sb, CH08, &[], &script);
    let after = sh(&sb, CH09, &[], &script);
    let privileged = sh(&sb, CH09, &["--privileged"], &script);
    let owned = |name: &str, answer: &str| (name.to_owned(), answer.to_owned());
    let want_before: Vec<_> = expected.iter().map(|&(n, b, _)| owned(n, b)).collect();
    let want_after: Vec<_> = expected.iter().map(|&(n, _, a)| owned(n, a)).collect();
    assert_eq!(attempts(&before), want_before, "{}", before.transcript);
    assert_eq!(attempts(&after), want_after, "{}", after.transcript);
    assert_eq!(
        privileged.stdout, before.stdout,
        "{}",
        privileged.transcript
    );
    let transcript = format!("{}{}", before.transcript, after.transcript);

    // init_module depends on how the kernel was built, so it stays out of
    // the snapshot: with module support, ENOEXEC (16 bytes are no ELF
    // file) after the capability check, EPERM without the capability; with
    // modules_disabled=1 or lockdown, EPERM for everybody; without module
    // support (CONFIG_MODULES=n, this VM's kernel), no such system call:
    // ENOSYS for everybody.
    let init_module = |bin: &str, extra: &[&str]| -> String {
        let run = sh(&sb, bin, extra, "/bin/probe attempt init_module");
        match &attempts(&run)[..] {
            [(name, answer)] if name == "init_module" => answer.clone(),
            _ => panic!("{}", run.transcript),
        }
    };
    let before = init_module(CH08, &[]);
    let enosys = "ENOSYS (Function not implemented)";
    let expected_after = match before.as_str() {
        "ENOEXEC (Exec format error)" | EPERM => EPERM,
        answer if answer == enosys => enosys,
        other => panic!("init_module in chapter 8: {other}"),
    };
    assert_eq!(init_module(CH09, &[]), expected_after);
    assert_eq!(init_module(CH09, &["--privileged"]), before);

    crate::snapshot!("ch09_system_calls", transcript);
}

/// CVE-2022-0492: a cgroup v1 hierarchy mounted from inside the
/// container shows its root cgroup's `release_agent`, a program the kernel
/// runs as root on the host. Chapter 8's root may mount it and open the
/// file for writing (the probe never writes); chapter 9's may not mount
/// (no CAP_SYS_ADMIN). A host with cgroup v2 alone has no release_agent.
#[test]
fn ch09_release_agent() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let script = "/bin/probe attempt release-agent";
    let answer = |run: &Run| -> String {
        match &attempts(run)[..] {
            [(name, answer)] if name == "release-agent" => answer.clone(),
            _ => panic!("{}", run.transcript),
        }
    };
    let before = sh(&sb, CH08, &[], script);
    if answer(&before).starts_with("not attempted (no cgroup v1 hierarchy") {
        common::skip("no cgroup v1 hierarchy on this host: no release_agent to reach");
        return;
    }
    assert_eq!(answer(&before), "ok", "{}", before.transcript);
    let after = sh(&sb, CH09, &[], script);
    assert_eq!(answer(&after), EPERM, "{}", after.transcript);
    let privileged = sh(&sb, CH09, &["--privileged"], script);
    assert_eq!(answer(&privileged), "ok", "{}", privileged.transcript);
    let transcript = format!("{}{}", before.transcript, after.transcript);
    crate::snapshot!("ch09_release_agent", transcript);
}

/// /proc/interrupts (masked by docker since 2025: a side channel) is on
/// every kernel; /proc/kcore, the kernel's memory, only on some.
#[test]
fn masked_files_read_nothing() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let mut files = vec!["/proc/interrupts"];
    if std::path::Path::new("/proc/kcore").exists() {
        files.push("/proc/kcore");
    }
    for file in files {
        let script = format!("head -c 64 {file} | wc -c");
        let before = sh(&sb, CH08, &[], &script);
        assert_eq!(before.stdout.trim(), "64", "{}", before.transcript);
        let after = sh(&sb, CH09, &[], &script);
        assert_eq!(after.stdout.trim(), "0", "{}", after.transcript);
        let privileged = sh(&sb, CH09, &["--privileged"], &script);
        assert_eq!(privileged.stdout.trim(), "64", "{}", privileged.transcript);
    }
}

#[test]
fn the_container_has_a_session_of_its_own() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    // Field 6 of /proc/self/stat is the session id, as this pid namespace
    // sees it: 0 when the session's leader is outside (the caller's), 1
    // when PID 1 made a session of its own.
    let script = "cut -d' ' -f6 /proc/self/stat";
    let before = sh(&sb, CH08, &[], script);
    assert_eq!(before.stdout.trim(), "0", "{}", before.transcript);
    let after = sh(&sb, CH09, &[], script);
    assert_ne!(after.stdout.trim(), "0", "{}", after.transcript);
}

#[test]
fn a_user_of_its_own_has_no_capabilities() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let run = sh(
        &sb,
        CH09,
        &["--user", "1000:1000", "--group-add", "20"],
        "id; echo $HOME; grep CapEff /proc/self/status",
    );
    assert_eq!(run.code, 0, "{}", run.transcript);
    assert!(
        run.stdout.starts_with("uid=1000 gid=1000"),
        "{}",
        run.transcript
    );
    assert!(
        run.stdout.contains("groups=20") || run.stdout.contains(",20"),
        "{}",
        run.transcript
    );
    assert!(
        run.stdout.contains("CapEff:\t0000000000000000"),
        "{}",
        run.transcript
    );
    let run = sh(&sb, CH09, &["--user", "nobody"], "id -u; echo $HOME");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "65534\n/nonexistent\n"),
        "{}",
        run.transcript
    );
    // An explicit -e HOME wins over the user's.
    let run = sh(
        &sb,
        CH09,
        &["--user", "nobody", "-e", "HOME=/tmp"],
        "echo $HOME",
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "/tmp\n"),
        "{}",
        run.transcript
    );
}

#[test]
fn ulimits_apply_and_a_hard_limit_that_cannot_be_raised_is_one_line() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let run = sh(
        &sb,
        CH09,
        &["--ulimit", "nofile=100:200"],
        "ulimit -n; ulimit -Hn",
    );
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "100\n200\n"),
        "{}",
        run.transcript
    );
    // Above the runtime's own hard limit: raising it needs CAP_SYS_RESOURCE.
    // SAFETY: an all-zero rlimit is valid; getrlimit(2) fills it in.
    let mut now: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is a valid rlimit to write.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) };
    if now.rlim_max != libc::RLIM_INFINITY {
        let limit = format!("nofile={}:{}", now.rlim_max + 1, now.rlim_max + 1);
        let with_sys_resource = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap() & (1 << 24) != 0)
            .unwrap();
        let run = sh(&sb, CH09, &["--ulimit", &limit], "true");
        if !with_sys_resource {
            assert_eq!(run.code, 125, "{}", run.transcript);
            assert_eq!(run.stderr.lines().count(), 1, "{}", run.transcript);
            assert!(
                run.stderr.contains("CAP_SYS_RESOURCE"),
                "{}",
                run.transcript
            );
        }
    }
}

#[test]
fn bad_flags_are_refused_before_anything_is_made() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    for (extra, says) in [
        (&["--cap-add", "CAP_FLY"][..], "CAP_FLY"),
        (&["--security-opt", "seccomp=x"][..], "seccomp=x"),
        (&["--user", "a:b:c"][..], "a:b:c"),
        (&["--user", "nosuchuser"][..], "nosuchuser"),
        (&["--ulimit", "files=1"][..], "files"),
        (&["--device", "/etc/passwd"][..], "not a device node"),
        (&["--device", "/dev/null:dev/null"][..], "not absolute"),
        (&["--device", "/dev/null:/dev/../x"][..], ".."),
        (&["--device", "/dev/null:/dev/mine:rwx"][..], "r, w and m"),
        (&["--device", "/nonexistent\n:/x"][..], "nonexistent"),
    ] {
        let run = sh(&sb, CH09, extra, "true");
        assert_eq!(run.code, 125, "{extra:?}: {}", run.transcript);
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "{extra:?}: {}",
            run.transcript
        );
        assert!(run.stderr.contains(says), "{extra:?}: {}", run.transcript);
    }
}

/// A setuid-root program run by `--user 1000`: without no_new_privs it
/// runs with euid 0 (and, for uid 0, every capability of the bounding set);
/// with `--security-opt no-new-privileges` the setuid bit is ignored.
#[test]
fn no_new_privileges_stops_a_setuid_program() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    // A fourth layer: the probe, setuid root, as /bin/probe-suid.
    let dir = sb.dir.join("suid-layer");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let suid = dir.join("bin/probe-suid");
    std::fs::copy(common::rootfs().join("bin/probe"), &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    let layer = sb.dir.join("suid.tar");
    let status = std::process::Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(&layer)
        .arg("-C")
        .arg(&dir)
        .arg("bin")
        .status()
        .unwrap();
    assert!(status.success());
    let layer = layer.to_string_lossy().into_owned();
    let euid = |extra: &[&str]| -> String {
        let mut args = vec!["--layer", &layer, "--user", "1000"];
        args.extend_from_slice(extra);
        let run = sh(
            &sb,
            CH09,
            &args,
            "/bin/probe-suid caps | grep -e '^uids:' -e '^NoNewPrivs:'",
        );
        assert_eq!(run.code, 0, "{}", run.transcript);
        run.stdout
    };
    let without = euid(&[]);
    assert!(
        without.contains("uids: real 1000, effective 0,"),
        "{without}"
    );
    assert!(without.contains("NoNewPrivs: 0"), "{without}");
    let with = euid(&["--security-opt", "no-new-privileges"]);
    assert!(with.contains("uids: real 1000, effective 1000,"), "{with}");
    assert!(with.contains("NoNewPrivs: 1"), "{with}");
}

/// Only stdin, stdout and stderr reach the command: no descriptor of the
/// runtime's (its state record's lock, a directory it had open) that
/// could lead back to the host through /proc/self/fd (CVE-2024-21626).
#[test]
fn only_stdio_reaches_the_command() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    // ls's own directory descriptor shows as the 4th entry (3).
    let run = sh(&sb, CH09, &[], "ls /proc/self/fd | tr '\\n' ' '");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "0 1 2 3 "),
        "{}",
        run.transcript
    );
}

/// The runtime on a terminal of the test's own (a pty whose slave is its
/// controlling terminal and standard input), `probe attempt tiocsti` in
/// the container: (what the probe said, what arrived in the terminal's
/// input queue).
fn tiocsti_on_a_pty(sb: &Sandbox, bin: &str) -> (String, Vec<u8>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let pty = nix::pty::openpty(None, None).expect("openpty(3)");
    let slave = pty.slave.as_raw_fd();
    let id = common::unique_id();
    let before = common::HostState::capture(&id);
    let state = sb.state_dir();
    let mut cmd = std::process::Command::new(common::bin_dir().join(bin));
    cmd.arg("--state-dir")
        .arg(&state)
        .args(common::image_args())
        .args(["--", "/bin/probe", "attempt", "tiocsti"])
        .env("STEPBOX_CONTAINER_ID", &id)
        .env("STEPBOX_RUN_DIR", sb.run_dir())
        .stdin(std::fs::File::from(pty.slave.try_clone().unwrap()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: between fork and exec the child only makes two system calls.
    unsafe {
        cmd.pre_exec(move || {
            // A session of its own, with the pty as its controlling
            // terminal: the runtime is where a user's shell would put it.
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("running the runtime");
    assert_eq!(common::HostState::capture(&id), before, "the host changed");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Whatever the container pushed is waiting in the input queue.
    nix::fcntl::fcntl(
        slave,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut queued = vec![0u8; 64];
    let n = nix::unistd::read(slave, &mut queued).unwrap_or(0);
    queued.truncate(n);
    (said, queued)
}

/// A container in the caller's session types into the caller's terminal
/// (ioctl TIOCSTI): the caller's shell would read it as typed. Chapter 9's
/// own session stops it, whatever its capabilities.
#[test]
fn the_callers_terminal_cannot_be_typed_into() {
    if !root() || !common::overlay_available() {
        return;
    }
    let legacy = std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti");
    if legacy.is_ok_and(|v| v.trim() == "0") {
        common::skip("this kernel refuses TIOCSTI to all (dev.tty.legacy_tiocsti = 0)");
        return;
    }
    let sb = Sandbox::new("ch09");
    let (said, queued) = tiocsti_on_a_pty(&sb, CH08);
    assert_eq!(
        (said.as_str(), queued.as_slice()),
        ("tiocsti: ok\n", &b"\n"[..])
    );
    let (said, queued) = tiocsti_on_a_pty(&sb, CH09);
    assert_eq!(said, "tiocsti: EPERM (Operation not permitted)\n");
    assert!(queued.is_empty(), "{queued:?}");
}

/// A device the container may not use by default, harmless to read, with
/// the flags every run gets: a block device of the host that this test
/// can open (the one that holds / first; some machines refuse even root
/// that one, then an empty loop or zram device will do), or, where there is
/// none (the v2 VM boots from memory), /dev/kmsg (c 1:11), the kernel's
/// log, whose reading needs CAP_SYSLOG when kernel.dmesg_restrict is set:
/// every run of chapter 9 then gets it (chapter 8's has every capability),
/// so that only the device policy differs.
struct TestDevice {
    path: String,
    kind: char,
    major: u32,
    minor: u32,
    extra: Vec<&'static str>,
}

fn test_device() -> TestDevice {
    let block = |dev: &str| {
        let uevent = std::fs::read_to_string(format!("/sys/dev/block/{dev}/uevent")).ok()?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        let (major, minor) = dev.split_once(':')?;
        let path = format!("/dev/{name}");
        use std::os::unix::fs::FileTypeExt;
        if !std::fs::metadata(&path).ok()?.file_type().is_block_device() {
            return None;
        }
        // Read-only: opening a block device so changes nothing.
        std::fs::File::open(&path).ok()?;
        Some(TestDevice {
            path,
            kind: 'b',
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
            extra: Vec::new(),
        })
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = mountinfo
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .rfind(|f| f.get(4) == Some(&"/"))
        .map(|f| f[2].to_owned());
    let any = common::names(std::path::Path::new("/sys/dev/block"));
    root.iter()
        .chain(any.iter())
        .find_map(|d| block(d))
        .unwrap_or(TestDevice {
            path: "/dev/kmsg".into(),
            kind: 'c',
            major: 1,
            minor: 11,
            extra: vec!["--cap-add", "SYSLOG"],
        })
}

/// `mknod` a node for `dev` in the container's /tmp and read one block of
/// it (an empty device has none: then the open is what counts); "opened"
/// on stdout, or dd's complaint on stderr.
fn read_script(dev: &TestDevice) -> String {
    format!(
        "mknod /tmp/node {} {} {} && dd if=/tmp/node bs=4096 count=1 of=/dev/null && echo opened",
        dev.kind, dev.major, dev.minor
    )
}

/// The devices cgroup (v1: devices.allow; v2: the eBPF program). Root in
/// chapter 8 makes a node for a disk and reads it; chapter 9's root still
/// makes the node (CAP_MKNOD), but opening it is refused: EPERM,
/// "Operation not permitted". `--device` allows it again. Nothing is ever
/// written to a device: one block is read, no more; the nodes are made in
/// the container's upper dir and its /dev, gone with it.
#[test]
fn only_the_standard_devices_can_be_opened() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let dev = test_device();
    let with = |more: &[&str]| -> Vec<String> {
        dev.extra
            .iter()
            .chain(more)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |bin: &str, extra: &[String], script: &str| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        sh(&sb, bin, &extra, script)
    };
    let opened = |run: &Run| run.code == 0 && run.stdout.ends_with("opened\n");
    let refused = |run: &Run| {
        run.code != 0
            && !run.stdout.contains("opened")
            && run.stderr.contains("Operation not permitted")
    };
    let before = run(CH08, &[], &read_script(&dev));
    assert!(opened(&before), "{}", before.transcript);
    let after = run(CH09, &with(&[]), &read_script(&dev));
    assert!(
        refused(&after),
        "mknod works, open does not: {}",
        after.transcript
    );
    assert!(!after.stderr.contains("mknod"), "{}", after.transcript);
    // The standard ones still work.
    let std = run(
        CH09,
        &[],
        "head -c 4 /dev/zero | wc -c && echo ok > /dev/null",
    );
    assert_eq!(
        (std.code, std.stdout.trim()),
        (0, "4"),
        "{}",
        std.transcript
    );

    // --device: the host's node, made at a path of the container's, and
    // allowed to be read.
    let read = format!("{}:/dev/test/device:r", dev.path);
    let script = "ls -l /dev/test/device && dd if=/dev/test/device bs=4096 count=1 of=/dev/null && echo opened";
    let allowed = run(CH09, &with(&["--device", &read]), script);
    assert!(opened(&allowed), "{}", allowed.transcript);
    assert!(
        allowed.stdout.starts_with(dev.kind),
        "{}",
        allowed.transcript
    );
    // Allowed only to be made (m): reading is still refused.
    let mknod_only = format!("{}:/dev/test/device:m", dev.path);
    let not_read = run(CH09, &with(&["--device", &mknod_only]), script);
    assert!(refused(&not_read), "{}", not_read.transcript);

    // --privileged: no device policy at all.
    let all = run(CH09, &with(&["--privileged"]), &read_script(&dev));
    assert!(opened(&all), "{}", all.transcript);
}

/// The host's kernel log through a device node of the container's own
/// making (c 1:11, /dev/kmsg): chapter 8 reads it; chapter 9 can still make
/// the node (CAP_MKNOD is in docker's set) but not open it (the device
/// policy), and without CAP_SYSLOG. Only read, one byte.
#[test]
fn the_hosts_kernel_log_is_out_of_reach() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch09");
    let script = "mknod /kmsg c 1 11 && head -c 1 /kmsg | wc -c";
    let before = sh(&sb, CH08, &[], script);
    assert_eq!(
        (before.code, before.stdout.trim()),
        (0, "1"),
        "{}",
        before.transcript
    );
    let after = sh(&sb, CH09, &[], script);
    assert_eq!(after.stdout.trim(), "0", "{}", after.transcript);
    assert!(
        after.stderr.contains("Operation not permitted"),
        "{}",
        after.transcript
    );
}
