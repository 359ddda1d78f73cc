//! Chapter 10's demos: system calls that no capability guards reach the
//! kernel from chapter 9's container and are refused by chapter 10's
//! filter. Every run is `run_clean`: the host is checked before and after.

mod common;

use common::{attempts, root, Run, Sandbox};

const CH09: &str = "ch09-privileges";
const CH10: &str = "ch10-seccomp";

const EPERM: &str = "EPERM (Operation not permitted)";
const EINVAL: &str = "EINVAL (Invalid argument)";
const E2BIG: &str = "E2BIG (Argument list too long)";
const ENOSYS: &str = "ENOSYS (Function not implemented)";

/// What perf_event_open(2) with a bad attribute size answers without a
/// filter: E2BIG from the kernel's first look at the attribute; but
/// Debian's and Ubuntu's kernels refuse every call first, with EACCES, when
/// kernel.perf_event_paranoid is above 2 (their patch; 3 is Debian's
/// default).
fn perf_event_open_unfiltered() -> &'static str {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    match paranoid {
        Some(level) if level > 2 => "EACCES (Permission denied)",
        _ => E2BIG,
    }
}

fn probe(sb: &Sandbox, bin: &str, extra: &[&str], names: &[&str]) -> Run {
    sb.sh(
        bin,
        extra,
        &format!("/bin/probe attempt {}", names.join(" ")),
    )
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(n, a)| (n.to_owned(), a.to_owned()))
        .collect()
}

/// The calls docker's profile refuses although no capability guards
/// them, each made harmless (crates/probe/src/attempt.rs): chapter 9 lets
/// them reach the kernel (`ok`, or the EINVAL or E2BIG that only the
/// kernel's own checks give), chapter 10 stops them at the filter with the
/// profile's errno, EPERM. `seccomp=unconfined` gives chapter 9's answers
/// back; `--cap-add SYS_ADMIN` gives back the calls docker ties to it.
#[test]
fn ch10_system_calls() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch10");
    let perf = perf_event_open_unfiltered();
    let expected: &[(&str, &str, &str)] = &[
        ("keyctl", "ok", EPERM),
        ("bpf", EINVAL, EPERM),
        ("userfaultfd", "ok", EPERM),
        ("perf_event_open", perf, EPERM),
        ("personality", "ok", EPERM),
        ("unshare-user", "ok", EPERM),
        ("clone-newuser", "ok", EPERM),
    ];
    let names: Vec<&str> = expected.iter().map(|&(name, _, _)| name).collect();
    let before = probe(&sb, CH09, &[], &names);
    let after = probe(&sb, CH10, &[], &names);
    let want_before: Vec<_> = expected.iter().map(|&(n, b, _)| (n, b)).collect();
    let want_after: Vec<_> = expected.iter().map(|&(n, _, a)| (n, a)).collect();
    assert_eq!(
        attempts(&before),
        owned(&want_before),
        "{}",
        before.transcript
    );
    assert_eq!(attempts(&after), owned(&want_after), "{}", after.transcript);

    let unconfined = probe(&sb, CH10, &["--security-opt", "seccomp=unconfined"], &names);
    assert_eq!(
        unconfined.stdout, before.stdout,
        "{}",
        unconfined.transcript
    );
    let privileged = probe(&sb, CH10, &["--privileged"], &names);
    assert_eq!(
        attempts(&privileged),
        owned(&want_before),
        "{}",
        privileged.transcript
    );

    // With CAP_SYS_ADMIN, docker's profile allows namespaces, bpf(2) and
    // perf_event_open(2) again; keyrings, userfaultfd and personas stay
    // refused, whatever the capabilities.
    let admin = probe(&sb, CH10, &["--cap-add", "SYS_ADMIN"], &names);
    let want_admin = [
        ("keyctl", EPERM),
        ("bpf", EINVAL),
        ("userfaultfd", EPERM),
        // Debian's patch lets CAP_SYS_ADMIN through.
        ("perf_event_open", E2BIG),
        ("personality", EPERM),
        ("unshare-user", "ok"),
        ("clone-newuser", "ok"),
    ];
    assert_eq!(attempts(&admin), owned(&want_admin), "{}", admin.transcript);

    let status = "/bin/probe caps | grep -i seccomp";
    let before_status = sb.sh(CH09, &[], status);
    let after_status = sb.sh(CH10, &[], status);
    assert!(
        before_status.stdout.contains("Seccomp: 0 (disabled)"),
        "{}",
        before_status.transcript
    );
    assert!(
        after_status.stdout.contains("Seccomp: 2 (filter)"),
        "{}",
        after_status.transcript
    );
    assert!(
        after_status.stdout.contains("Seccomp_filters: 1"),
        "{}",
        after_status.transcript
    );
    let transcript = [&before, &after, &before_status, &after_status]
        .map(|r| r.transcript.as_str())
        .concat();
    crate::snapshot!("ch10_system_calls", transcript);
}

/// The hand-written filter of the book's first section: unshare(2) and
/// keyctl(2) refused, everything else let through.
#[test]
fn the_tiny_filter_refuses_two_calls() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch10");
    let names = ["unshare-user", "keyctl", "personality", "userfaultfd"];
    let run = probe(&sb, CH10, &["--tiny-filter"], &names);
    let want = [
        ("unshare-user", EPERM),
        ("keyctl", EPERM),
        ("personality", "ok"),
        ("userfaultfd", "ok"),
    ];
    assert_eq!(attempts(&run), owned(&want), "{}", run.transcript);
    crate::snapshot!("ch10_tiny_filter", run.transcript);
}

/// The order of the stages, from `-v`: without no_new_privs the filter
/// is loaded while CAP_SYS_ADMIN is still held (before chapter 9's
/// capset); with it, after no_new_privs is set, as late as it can be.
#[test]
fn the_filter_is_loaded_before_capset_or_last_with_no_new_privs() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch10");
    let position = |run: &Run, what: &str| -> usize {
        run.stderr
            .lines()
            .position(|l| l.starts_with(&format!("+ {what}")))
            .unwrap_or_else(|| panic!("no `{what}` line\n{}", run.transcript))
    };
    let plain = sb.sh(CH10, &["-v"], "grep Seccomp: /proc/self/status");
    assert_eq!(plain.stdout, "Seccomp:\t2\n", "{}", plain.transcript);
    assert!(position(&plain, "seccomp(2)") < position(&plain, "capset(2)"));

    let nnp = ["-v", "--security-opt", "no-new-privileges"];
    let late = sb.sh(
        CH10,
        &nnp,
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    );
    assert_eq!(
        late.stdout, "NoNewPrivs:\t1\nSeccomp:\t2\n",
        "{}",
        late.transcript
    );
    assert!(position(&late, "prctl(2) PR_SET_NO_NEW_PRIVS") < position(&late, "seccomp(2)"));
    assert!(position(&late, "capset(2)") < position(&late, "seccomp(2)"));
}

/// `--init` forks after the filter is loaded: the init is under it too.
#[test]
fn an_init_is_under_the_filter_too() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch10");
    let run = sb.sh(
        CH10,
        &["--init"],
        "grep Seccomp: /proc/1/status /proc/self/status",
    );
    assert_eq!(
        run.stdout, "/proc/1/status:Seccomp:\t2\n/proc/self/status:Seccomp:\t2\n",
        "{}",
        run.transcript
    );
}

/// A profile file in docker's format: its own errno, and a rule that
/// depends on the container's capabilities (`excludes.caps`).
#[test]
fn a_profile_of_ones_own() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch10");
    let profile = sb.dir.join("profile.json");
    std::fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
            "syscalls": [
                {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}, "comment": "ENOSYS, unless SYS_ADMIN"},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 4194304, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 4194304}]}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let names = ["keyctl", "personality", "unshare-user"];
    let run = probe(&sb, CH10, &["--security-opt", &opt], &names);
    let want = [
        ("keyctl", ENOSYS),
        ("personality", EPERM),
        ("unshare-user", "ok"),
    ];
    assert_eq!(attempts(&run), owned(&want), "{}", run.transcript);
    let admin = probe(
        &sb,
        CH10,
        &["--security-opt", &opt, "--cap-add", "SYS_ADMIN"],
        &names,
    );
    let want = [
        ("keyctl", "ok"),
        ("personality", EPERM),
        ("unshare-user", "ok"),
    ];
    assert_eq!(attempts(&admin), owned(&want), "{}", admin.transcript);
}

/// An execve(2) that the filter refuses is still reported, as any exec
/// failure: one line, exit 126.
#[test]
fn an_exec_refused_by_the_filter_is_reported() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch10");
    let profile = sb.dir.join("noexec.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execve", "execveat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let run = sb.sh(CH10, &["--security-opt", &opt], "true");
    assert_eq!(run.code, 126, "{}", run.transcript);
    assert_eq!(run.stdout, "", "{}", run.transcript);
    assert_eq!(
        run.stderr, "ch10-seccomp: sh: cannot execute: operation not permitted\n",
        "{}",
        run.transcript
    );
}

/// A profile that cannot be used is refused in one line that says what is
/// wrong, exit 125, before anything is made on the host (run_clean checks).
#[test]
fn bad_profiles_are_refused_before_anything_is_made() {
    if !root() || !common::overlay_available() {
        return;
    }
    let sb = Sandbox::new("ch10");
    let cases: &[(&str, &str, &str)] = &[
        (
            "malformed",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ["#,
            "EOF while parsing",
        ),
        (
            "unknown-call",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid", "exceve"], "action": "SCMP_ACT_ERRNO"}]}"#,
            r#"syscalls[0]: no system call is called "exceve""#,
        ),
        (
            "unknown-action",
            r#"{"defaultAction": "SCMP_ACT_ALOW"}"#,
            "unknown variant `SCMP_ACT_ALOW`",
        ),
        (
            "unknown-arch",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
            "unknown variant `SCMP_ARCH_Z80`",
        ),
        (
            "unknown-field",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscals": []}"#,
            "unknown field `syscals`",
        ),
        (
            "argument-index",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
            "argument index 6",
        ),
        (
            "notify",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#,
            "SCMP_ACT_NOTIFY",
        ),
        (
            "errno",
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#,
            "errnoRet 70000",
        ),
    ];
    for &(name, text, want) in cases {
        let path = sb.dir.join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        let opt = format!("seccomp={}", path.display());
        let run = sb.sh(CH10, &["--security-opt", &opt], "echo ran");
        assert_eq!(run.code, 125, "{name}: {}", run.transcript);
        assert_eq!(run.stdout, "", "{name}: {}", run.transcript);
        assert_eq!(run.stderr.lines().count(), 1, "{name}: {}", run.transcript);
        assert!(run.stderr.contains(want), "{name}: {}", run.transcript);
        assert!(
            run.stderr.contains(&path.display().to_string()),
            "{name}: {}",
            run.transcript
        );
    }
    let missing = sb.dir.join("missing.json");
    let opt = format!("seccomp={}", missing.display());
    let run = sb.sh(CH10, &["--security-opt", &opt], "echo ran");
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (125, ""),
        "{}",
        run.transcript
    );
    assert!(run.stderr.contains("no such file"), "{}", run.transcript);
}

/// What the compiler makes of a small profile, for the book: the
/// architecture dispatch, x32 refused, the search over numbers, and a
/// 64-bit comparison of an argument, word by word.
#[test]
#[cfg(target_arch = "x86_64")]
fn a_small_profile_compiled() {
    let profile: ch10_seccomp::oci_spec::runtime::LinuxSeccomp =
        serde_json::from_str(SMALL).unwrap();
    let filter = ch10_seccomp::compile::compile(&profile).unwrap();
    let text = ch10_seccomp::bpf::disassemble(&filter.insns);
    crate::snapshot!("ch10_small_profile", text);
}

/// Allow getpid(2), and personality(2) with PER_LINUX only; EPERM for
/// the rest (the book shows it).
#[cfg(target_arch = "x86_64")]
const SMALL: &str = include_str!("data/small-seccomp-profile.json");
