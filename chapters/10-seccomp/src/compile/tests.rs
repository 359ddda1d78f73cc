//! The compiler checked against [`decide`]: the profile's semantics read
//! straight from the OCI format, rule after rule, with 64-bit arguments,
//! and nothing of the compiler's (no sections, no binary search, no
//! halves). Random profiles and calls run through both (the compiled
//! program on [`bpf::run`]); then the cases that matter by hand: jumps too
//! long for 8 bits, profiles the compiler must refuse, and docker's
//! default profile, call by call, from both numberings of an x86_64 kernel.
//!
//! x86_64 only: the reading of `architectures` below is this machine's
//! (x86_64 and i386 run here, aarch64 does not).
#![cfg(target_arch = "x86_64")]

use super::{compile, Table};
use crate::bpf::{self, Data};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator as Op, LinuxSyscall, LinuxSyscallBuilder,
};
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};

const EPERM: u32 = libc::EPERM as u32;

// ---------------------------------------------------------------------------
// The reference: what the profile says, the slow and obvious way.

/// The numbering a call from `arch` uses, if the profile lets `arch` run:
/// on x86_64, x86_64 itself (SCMP_ARCH_NATIVE, or no list at all) and
/// i386; any other architecture never makes a call here.
fn table_for(profile: &LinuxSeccomp, arch: u32) -> Option<Table> {
    let listed = profile.architectures().clone().unwrap_or_default();
    let listed = match listed.is_empty() {
        true => vec![Arch::ScmpArchNative],
        false => listed,
    };
    listed.iter().find_map(|a| match a {
        Arch::ScmpArchX86_64 | Arch::ScmpArchNative if arch == bpf::AUDIT_ARCH_X86_64 => {
            Some(Table::X86_64)
        }
        Arch::ScmpArchX86 if arch == bpf::AUDIT_ARCH_I386 => Some(Table::I386),
        _ => None,
    })
}

fn verdict(action: Action, errno: Option<u32>) -> u32 {
    match action {
        Action::ScmpActAllow => bpf::RET_ALLOW,
        Action::ScmpActErrno => bpf::RET_ERRNO | errno.unwrap_or(EPERM),
        Action::ScmpActKill | Action::ScmpActKillThread => bpf::RET_KILL_THREAD,
        Action::ScmpActKillProcess => bpf::RET_KILL_PROCESS,
        Action::ScmpActTrap => bpf::RET_TRAP | errno.unwrap_or(0),
        Action::ScmpActTrace => bpf::RET_TRACE | errno.unwrap_or(EPERM),
        Action::ScmpActLog => bpf::RET_LOG,
        Action::ScmpActNotify => panic!("the compiler refuses SCMP_ACT_NOTIFY"),
    }
}

fn holds(cond: &LinuxSeccompArg, data: &Data) -> bool {
    let (arg, value) = (data.args[cond.index()], cond.value());
    match cond.op() {
        Op::ScmpCmpNe => arg != value,
        Op::ScmpCmpLt => arg < value,
        Op::ScmpCmpLe => arg <= value,
        Op::ScmpCmpEq => arg == value,
        Op::ScmpCmpGe => arg >= value,
        Op::ScmpCmpGt => arg > value,
        Op::ScmpCmpMaskedEq => arg & value == cond.value_two().unwrap_or(0),
    }
}

/// The verdict `profile` gives the call `data`.
fn decide(profile: &LinuxSeccomp, data: &Data) -> u32 {
    let Some(table) = table_for(profile, data.arch) else {
        return bpf::RET_KILL_PROCESS;
    };
    if table == Table::X86_64 && data.nr & bpf::X32_SYSCALL_BIT != 0 {
        return bpf::RET_KILL_PROCESS;
    }
    for call in profile.syscalls().iter().flatten() {
        let named = call
            .names()
            .iter()
            .any(|n| table.number(n) == Some(data.nr));
        if named && call.args().iter().flatten().all(|c| holds(c, data)) {
            return verdict(call.action(), call.errno_ret());
        }
    }
    verdict(profile.default_action(), profile.default_errno_ret())
}

// ---------------------------------------------------------------------------
// Building profiles and calls.

fn cond(index: usize, op: Op, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
    let mut arg = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(two) = value_two {
        arg = arg.value_two(two);
    }
    arg.build().unwrap()
}

fn rule(
    names: &[&str],
    (action, errno): (Action, Option<u32>),
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut rule = LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(action)
        .args(args);
    if let Some(errno) = errno {
        rule = rule.errno_ret(errno);
    }
    rule.build().unwrap()
}

fn profile(
    (action, errno): (Action, Option<u32>),
    arches: Option<Vec<Arch>>,
    syscalls: Vec<LinuxSyscall>,
) -> LinuxSeccomp {
    let mut p = LinuxSeccompBuilder::default()
        .default_action(action)
        .syscalls(syscalls);
    if let Some(errno) = errno {
        p = p.default_errno_ret(errno);
    }
    if let Some(arches) = arches {
        p = p.architectures(arches);
    }
    p.build().unwrap()
}

fn call(table: Table, name: &str, args: &[u64]) -> Data {
    let mut data = Data {
        nr: table
            .number(name)
            .unwrap_or_else(|| panic!("{name} on {table:?}")),
        arch: table.audit_arch(),
        ..Data::default()
    };
    data.args[..args.len()].copy_from_slice(args);
    data
}

fn run(filter: &super::Filter, data: &Data) -> u32 {
    bpf::run(&filter.insns, data).unwrap()
}

/// Runs `data` through the compiled program and the reference, and
/// returns the verdict they agree on.
fn agreed(profile: &LinuxSeccomp, filter: &super::Filter, data: &Data) -> u32 {
    let (got, want) = (run(filter, data), decide(profile, data));
    assert_eq!(
        got,
        want,
        "{} where the profile says {}: {data:x?}\n{}",
        bpf::ret_name(got),
        bpf::ret_name(want),
        bpf::disassemble(&filter.insns)
    );
    got
}

// ---------------------------------------------------------------------------
// Random profiles and calls.

/// Calls of i386 only (socketcall, _llseek), of x86_64 only (newfstatat;
/// arch_prctl, which i386 has too, under another number) and of both.
const POOL: &[&str] = &[
    "read",
    "write",
    "clone",
    "personality",
    "socket",
    "getpid",
    "openat",
    "socketcall",
    "_llseek",
    "arch_prctl",
    "newfstatat",
];

const OPS: &[Op] = &[
    Op::ScmpCmpNe,
    Op::ScmpCmpLt,
    Op::ScmpCmpLe,
    Op::ScmpCmpEq,
    Op::ScmpCmpGe,
    Op::ScmpCmpGt,
    Op::ScmpCmpMaskedEq,
];

/// Values at the edges of the words: compares of the upper word decide
/// unless it is equal, and then the lower one's do.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(0xffff_ffff),
        Just(0x1_0000_0000),
        Just(u64::MAX),
        Just(0x7e02_0000),
        any::<u32>().prop_map(u64::from),
        any::<u64>(),
    ]
}

fn arg() -> impl Strategy<Value = LinuxSeccompArg> {
    (0usize..6, select(OPS), value(), value(), 0..3u8).prop_map(|(index, op, value, other, two)| {
        // A MASKED_EQ whose valueTwo has bits outside the mask never holds:
        // often make it a part of the mask.
        let two = match two {
            0 => None,
            1 => Some(other),
            _ => Some(value & other),
        };
        cond(index, op, value, two)
    })
}

fn action() -> impl Strategy<Value = (Action, Option<u32>)> {
    let errno = || proptest::option::of(0u32..300);
    prop_oneof![
        Just((Action::ScmpActAllow, None)),
        errno().prop_map(|e| (Action::ScmpActErrno, e)),
        Just((Action::ScmpActKill, None)),
        Just((Action::ScmpActKillThread, None)),
        Just((Action::ScmpActKillProcess, None)),
        errno().prop_map(|e| (Action::ScmpActTrap, e)),
        errno().prop_map(|e| (Action::ScmpActTrace, e)),
        Just((Action::ScmpActLog, None)),
    ]
}

fn syscall() -> impl Strategy<Value = LinuxSyscall> {
    (
        proptest::collection::vec(select(POOL), 1..4),
        action(),
        proptest::collection::vec(arg(), 0..4),
    )
        .prop_map(|(names, action, args)| rule(&names, action, args))
}

fn profiles() -> impl Strategy<Value = LinuxSeccomp> {
    let default = prop_oneof![
        Just((Action::ScmpActAllow, None)),
        (1u32..200).prop_map(|e| (Action::ScmpActErrno, Some(e))),
        Just((Action::ScmpActKillProcess, None)),
        Just((Action::ScmpActLog, None)),
        Just((Action::ScmpActTrap, None)),
    ];
    let all = vec![
        Arch::ScmpArchX86_64,
        Arch::ScmpArchX86,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchNative,
    ];
    let arches = proptest::option::of(subsequence(all, 0..=4).prop_shuffle());
    let syscalls = proptest::collection::vec(syscall(), 0..12);
    (default, arches, syscalls).prop_map(|(d, a, s)| profile(d, a, s))
}

/// The choices a call is made of; [`call_from`] makes it fit the profile.
#[derive(Debug, Clone)]
struct Seed {
    arch: u8,
    raw_arch: u32,
    nr: u8,
    pick: Index,
    raw_nr: u32,
    args: [(u8, Index, u64); 6],
}

fn seeds() -> impl Strategy<Value = Seed> {
    let arg = (0..10u8, any::<Index>(), any::<u64>());
    (
        0..10u8,
        any::<u32>(),
        0..12u8,
        any::<Index>(),
        any::<u32>(),
        proptest::array::uniform6(arg),
    )
        .prop_map(|(arch, raw_arch, nr, pick, raw_nr, args)| Seed {
            arch,
            raw_arch,
            nr,
            pick,
            raw_nr,
            args,
        })
}

/// A call that the profile is likely to have a rule for: a number of one
/// of its names (in the numbering of the call's architecture), arguments
/// equal to the values its conditions name or one off in either word.
fn call_from(profile: &LinuxSeccomp, seed: &Seed) -> Data {
    let arch = match seed.arch {
        0..=3 => bpf::AUDIT_ARCH_X86_64,
        4..=6 => bpf::AUDIT_ARCH_I386,
        7 => bpf::AUDIT_ARCH_AARCH64,
        _ => seed.raw_arch,
    };
    let tables: &[Table] = match arch {
        bpf::AUDIT_ARCH_X86_64 => &[Table::X86_64],
        bpf::AUDIT_ARCH_I386 => &[Table::I386],
        _ => &[Table::X86_64, Table::I386],
    };
    let calls = profile.syscalls().clone().unwrap_or_default();
    let numbers: Vec<u32> = (calls.iter().flat_map(|c| c.names()))
        .flat_map(|name| tables.iter().filter_map(|t| t.number(name)))
        .collect();
    let nr = match seed.nr {
        0..=6 if !numbers.is_empty() => *seed.pick.get(&numbers),
        7 if !numbers.is_empty() => *seed.pick.get(&numbers) | bpf::X32_SYSCALL_BIT,
        8 => seed.raw_nr | bpf::X32_SYSCALL_BIT,
        9 => seed.raw_nr,
        _ => seed.raw_nr % 512,
    };
    let mut values: Vec<u64> = (calls.iter().flat_map(|c| c.args().iter().flatten()))
        .flat_map(|c| [c.value(), c.value_two().unwrap_or(0)])
        .collect();
    values.extend([0, u64::MAX]);
    let mut args = [0u64; 6];
    for (arg, &(how, pick, raw)) in args.iter_mut().zip(&seed.args) {
        let v = *pick.get(&values);
        let (hi, lo) = ((v >> 32) as u32, v as u32);
        let word = |hi: u32, lo: u32| u64::from(hi) << 32 | u64::from(lo);
        *arg = match how {
            0 | 1 => v,
            2 => word(hi, lo.wrapping_add(1)),
            3 => word(hi, lo.wrapping_sub(1)),
            4 => word(hi.wrapping_add(1), lo),
            5 => word(hi.wrapping_sub(1), lo),
            6 => v ^ 1 << (raw % 64),
            7 => raw as u32 as u64,
            _ => raw,
        };
    }
    Data {
        nr,
        arch,
        ip: seed.raw_nr as u64,
        args,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_program_decides_as_the_profile_says(
        profile in profiles(),
        seeds in proptest::collection::vec(seeds(), 16),
    ) {
        let filter = compile(&profile).map_err(TestCaseError::fail)?;
        bpf::check(&filter.insns).map_err(TestCaseError::fail)?;
        for seed in &seeds {
            let data = call_from(&profile, seed);
            let got = bpf::run(&filter.insns, &data).map_err(TestCaseError::fail)?;
            let want = decide(&profile, &data);
            prop_assert_eq!(
                got,
                want,
                "{} where the profile says {}: {:x?}\n{}",
                bpf::ret_name(got),
                bpf::ret_name(want),
                data,
                bpf::disassemble(&filter.insns)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// By hand.

/// 300 calls, each with a rule on an argument: the binary search's jumps
/// over half the calls are longer than a jt/jf of 8 bits can say.
#[test]
fn jumps_longer_than_255_instructions_go_through_ja() {
    let names: Vec<&str> = syscalls::x86_64::Sysno::iter()
        .map(|s| s.name())
        .take(300)
        .collect();
    assert_eq!(names.len(), 300);
    let rules: Vec<LinuxSyscall> = (names.iter().enumerate())
        .map(|(i, &name)| {
            let i = i as u64;
            let arg = match i % 2 {
                0 => cond(0, Op::ScmpCmpEq, i, None),
                _ => cond(1, Op::ScmpCmpGt, i << 32 | 7, None),
            };
            rule(
                &[name],
                (Action::ScmpActErrno, Some(1 + i as u32)),
                vec![arg],
            )
        })
        .collect();
    let p = profile((Action::ScmpActAllow, None), None, rules);
    let filter = compile(&p).unwrap();
    let ja = (filter.insns.iter()).filter(|i| i.code == bpf::JMP | bpf::JA);
    assert!(ja.count() > 0, "{}", bpf::disassemble(&filter.insns));
    for (i, &name) in names.iter().enumerate() {
        let i = i as u64;
        for a0 in [i, i + 1, i | 1 << 32] {
            for a1 in [i << 32 | 7, i << 32 | 8, (i + 1) << 32] {
                agreed(&p, &filter, &call(Table::X86_64, name, &[a0, a1]));
            }
        }
        let hit = agreed(&p, &filter, &call(Table::X86_64, name, &[i, i << 32 | 8]));
        assert_eq!(hit, bpf::RET_ERRNO | (1 + i as u32), "{name}");
    }
}

#[test]
fn a_profile_too_big_for_the_kernel_is_an_error() {
    let rules = (0..1000)
        .map(|i| {
            let args = vec![cond(0, Op::ScmpCmpEq, i, None)];
            rule(&["read"], (Action::ScmpActErrno, None), args)
        })
        .collect();
    let err = compile(&profile((Action::ScmpActAllow, None), None, rules)).unwrap_err();
    assert!(err.contains("4096"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn bad_profiles_are_refused_with_what_is_wrong() {
    let allow = (Action::ScmpActAllow, None);
    let one = |r: LinuxSyscall| profile(allow, None, vec![r]);
    for (p, want) in [
        (one(rule(&["read", "raed"], allow, vec![])), "\"raed\""),
        (
            one(rule(
                &["read"],
                allow,
                vec![cond(6, Op::ScmpCmpEq, 0, None)],
            )),
            "argument index 6",
        ),
        (
            one(rule(&["read"], (Action::ScmpActErrno, Some(5000)), vec![])),
            "errnoRet 5000",
        ),
        (
            profile((Action::ScmpActErrno, Some(5000)), None, vec![]),
            "errnoRet 5000",
        ),
        (
            one(rule(&["read"], (Action::ScmpActNotify, None), vec![])),
            "SCMP_ACT_NOTIFY",
        ),
        (
            profile((Action::ScmpActNotify, None), None, vec![]),
            "SCMP_ACT_NOTIFY",
        ),
        (one(rule(&[], allow, vec![])), "no names"),
    ] {
        let err = compile(&p).unwrap_err();
        assert!(err.contains(want), "{want}: {err}");
        assert!(!err.contains('\n'), "{err}");
    }
    // A name of another machine's is no error: it has no number here.
    compile(&one(rule(&["cacheflush"], allow, vec![]))).unwrap();
}

// ---------------------------------------------------------------------------
// docker's default profile.

fn docker(more: &[&str]) -> (LinuxSeccomp, super::Filter) {
    let caps = (ch09_privileges::caps::DOCKER_DEFAULT.iter().chain(more))
        .map(|c| c.to_string())
        .collect();
    let target = crate::profile::Target {
        caps,
        arch: "amd64",
        kernel: (6, 1),
    };
    let p = crate::profile::resolve(&crate::default::profile(), &target).unwrap();
    let filter = compile(&p).unwrap();
    (p, filter)
}

const CLONE_NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
/// What glibc's pthread_create passes: CLONE_VM | FS | FILES | SIGHAND |
/// THREAD | SYSVSEM | SETTLS | PARENT_SETTID | CHILD_CLEARTID.
const CLONE_THREAD_FLAGS: u64 = 0x3d_0f00;
const READ_IMPLIES_EXEC: u64 = 0x040_0000;

#[test]
fn dockers_default_profile_compiles_small_enough() {
    let (_, filter) = docker(&[]);
    let n = filter.insns.len();
    println!("docker's default profile: {n} instructions");
    assert!(
        n <= bpf::MAX_INSNS,
        "{n} instructions: too many for the kernel"
    );
    // Some 650 numbers with rules in the two sections (x86_64's and
    // i386's): about 3 instructions each.
    assert!(
        n < 2500,
        "{n} instructions: more than a profile this size needs"
    );
    let (_, admin) = docker(&["CAP_SYS_ADMIN"]);
    println!("with CAP_SYS_ADMIN: {} instructions", admin.insns.len());
    assert!(admin.insns.len() < 2500);
}

#[test]
fn dockers_default_profile_from_both_numberings() {
    let (p, filter) = docker(&[]);
    let eperm = bpf::RET_ERRNO | EPERM;
    for table in [Table::X86_64, Table::I386] {
        let verdict = |name: &str, args: &[u64]| agreed(&p, &filter, &call(table, name, args));
        for name in ["read", "write", "execve", "getpid", "mmap", "socketcall"] {
            if table.number(name).is_some() {
                assert_eq!(verdict(name, &[]), bpf::RET_ALLOW, "{table:?} {name}");
            }
        }
        for name in [
            "unshare",
            "keyctl",
            "bpf",
            "userfaultfd",
            "perf_event_open",
            "mount",
            "setns",
        ] {
            assert_eq!(verdict(name, &[]), eperm, "{table:?} {name}");
        }
        assert_eq!(verdict("clone", &[CLONE_NEWUSER]), eperm, "{table:?}");
        assert_eq!(verdict("clone", &[CLONE_THREAD_FLAGS]), bpf::RET_ALLOW);
        assert_eq!(verdict("clone", &[libc::SIGCHLD as u64]), bpf::RET_ALLOW);
        let enosys = bpf::RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(verdict("clone3", &[]), enosys, "{table:?}");
        assert_eq!(verdict("personality", &[READ_IMPLIES_EXEC]), eperm);
        assert_eq!(verdict("personality", &[0xffff_ffff]), bpf::RET_ALLOW);
        assert_eq!(verdict("personality", &[8]), bpf::RET_ALLOW);
        assert_eq!(verdict("socket", &[40]), eperm, "{table:?} AF_VSOCK");
        let af_inet = libc::AF_INET as u64;
        assert_eq!(verdict("socket", &[af_inet]), bpf::RET_ALLOW);
    }
    // aarch64's read(2), which this machine never makes; and x32's.
    let aarch64 = call(Table::Aarch64, "read", &[]);
    assert_eq!(agreed(&p, &filter, &aarch64), bpf::RET_KILL_PROCESS);
    let mut x32 = call(Table::X86_64, "read", &[]);
    x32.nr |= bpf::X32_SYSCALL_BIT;
    assert_eq!(agreed(&p, &filter, &x32), bpf::RET_KILL_PROCESS);
}

#[test]
fn cap_sys_admin_gives_namespaces_and_mounts_back() {
    let (p, filter) = docker(&["CAP_SYS_ADMIN"]);
    for table in [Table::X86_64, Table::I386] {
        let verdict = |name: &str, args: &[u64]| agreed(&p, &filter, &call(table, name, args));
        for name in ["unshare", "mount", "setns", "clone3"] {
            assert_eq!(verdict(name, &[]), bpf::RET_ALLOW, "{table:?} {name}");
        }
        assert_eq!(verdict("clone", &[CLONE_NEWUSER]), bpf::RET_ALLOW);
        // What CAP_SYS_ADMIN does not give back.
        let eperm = bpf::RET_ERRNO | EPERM;
        assert_eq!(verdict("keyctl", &[]), eperm, "{table:?}");
        assert_eq!(verdict("socket", &[40]), eperm, "{table:?}");
    }
}

/// Every number either table has (and some beyond) against the
/// reference, and the calls with conditions with the arguments they turn on.
#[test]
fn dockers_default_profile_agrees_with_the_reference_on_every_number() {
    let interesting = [
        0,
        1,
        2,
        8,
        40,
        CLONE_NEWUSER,
        CLONE_THREAD_FLAGS,
        READ_IMPLIES_EXEC,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0028,
        u64::MAX,
    ];
    for caps in [&[][..], &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]] {
        let (p, filter) = docker(caps);
        let rules = p.syscalls().clone().unwrap_or_default();
        for table in [Table::X86_64, Table::I386] {
            let with_args: Vec<u32> = (rules.iter().filter(|r| r.args().is_some()))
                .flat_map(|r| r.names().iter().filter_map(|n| table.number(n)))
                .collect();
            assert!(with_args.len() >= 3, "{table:?}: {with_args:?}");
            for nr in 0..480 {
                let args: &[u64] = match with_args.contains(&nr) {
                    true => &interesting,
                    false => &[0],
                };
                for &a0 in args {
                    let data = Data {
                        nr,
                        arch: table.audit_arch(),
                        args: [a0, 0, 0, 0, 0, 0],
                        ..Data::default()
                    };
                    agreed(&p, &filter, &data);
                }
            }
        }
    }
}

/// Found by the property above: the compiler killed every number from
/// X32_SYSCALL_BIT up, and 0x8000_0000 has bit 31, not bit 30 (an x32 call
/// has bit 30; the kernel answers this one ENOSYS). It gets the profile's
/// verdict.
#[test]
fn only_numbers_with_the_x32_bit_are_x32_calls() {
    let p = profile((Action::ScmpActAllow, None), None, vec![]);
    let filter = compile(&p).unwrap();
    for (nr, want) in [
        (0x8000_0000, bpf::RET_ALLOW),
        (0xbfff_ffff, bpf::RET_ALLOW),
        (0x4000_0000, bpf::RET_KILL_PROCESS),
        (0xc000_0000, bpf::RET_KILL_PROCESS),
        (0xffff_ffff, bpf::RET_KILL_PROCESS),
    ] {
        let data = Data {
            nr,
            arch: bpf::AUDIT_ARCH_X86_64,
            ..Data::default()
        };
        assert_eq!(agreed(&p, &filter, &data), want, "{nr:#x}");
    }
}
