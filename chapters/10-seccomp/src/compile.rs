//! The OCI seccomp format (`linux.seccomp` in config.json, what podman
//! and docker hand a runtime) compiled to a classic BPF program.
//!
//! What libseccomp does for runc, crun and youki, in a few hundred lines
//! that the tests check against a straightforward reading of the profile
//! (see `tests` below): the program is
//!
//! ```text
//!  ld [arch]; one jeq per architecture of the profile ─► its section;
//!  ret KILL_PROCESS                (a numbering the profile did not list)
//!  section:  ld [nr]
//!            (x86_64: the x32 bit set ─► ret KILL_PROCESS; ld [nr])
//!            a binary search over the numbers that have rules (jge)
//!            leaf:  jeq nr ─► the rules of that call, in profile order:
//!                             each rule: its conditions, then ret its action
//!                   ret the default action
//! ```
//!
//! Semantics, as libseccomp's: a call's rules are tried in the profile's
//! order and the first whose conditions all hold decides; conditions of one
//! rule are ANDed; a call with no rule that holds gets `defaultAction`. An
//! argument is compared as 64 bits, upper word first (classic BPF has only
//! 32-bit registers), unsigned.

use crate::bpf::{
    self, jump, stmt, Insn, ABS, ALU, AND, JA, JEQ, JGE, JGT, JMP, JSET, K, LD, RET, W,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};
use std::collections::BTreeMap;
use std::str::FromStr;

/// A compiled filter, ready for seccomp(2).
#[derive(Debug, Clone)]
pub struct Filter {
    pub insns: Vec<Insn>,
    /// `SECCOMP_FILTER_FLAG_*`, from the profile's `flags`.
    pub flags: u32,
}

// ANCHOR: seccomp
impl Filter {
    /// seccomp(2) `SECCOMP_SET_MODE_FILTER`: from now on the kernel runs
    /// the program at every system call of this thread (and of the
    /// processes it starts), for good.
    pub fn load(&self) -> nix::Result<()> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as u16,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        // lab: begin seccomp(2) SECCOMP_SET_MODE_FILTER with self.flags and &prog
        // SAFETY: `prog` points at `self.insns`, which outlives the call;
        // the kernel copies the program and only reads it.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match ret {
            0 => Ok(()),
            _ => Err(nix::errno::Errno::last()),
        }
        // lab: end
    }
}
// ANCHOR_END: seccomp

/// A numbering the kernel can hand a filter: one architecture's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    X86_64,
    I386,
    Aarch64,
    Arm,
}

impl Table {
    pub fn audit_arch(self) -> u32 {
        match self {
            Table::X86_64 => bpf::AUDIT_ARCH_X86_64,
            Table::I386 => bpf::AUDIT_ARCH_I386,
            Table::Aarch64 => bpf::AUDIT_ARCH_AARCH64,
            Table::Arm => bpf::AUDIT_ARCH_ARM,
        }
    }

    /// The system call's number in this table.
    pub fn number(self, name: &str) -> Option<u32> {
        let id = match self {
            Table::X86_64 => syscalls::x86_64::Sysno::from_str(name).ok()?.id(),
            Table::I386 => syscalls::x86::Sysno::from_str(name).ok()?.id(),
            Table::Aarch64 => syscalls::aarch64::Sysno::from_str(name).ok()?.id(),
            Table::Arm => match ARM_PRIVATE.iter().find(|&&(n, _)| n == name) {
                Some(&(_, nr)) => return Some(nr),
                None => syscalls::arm::Sysno::from_str(name).ok()?.id(),
            },
        };
        u32::try_from(id).ok()
    }

    /// This machine's own numbering, and the one its kernel also runs
    /// 32-bit programs with.
    pub fn native() -> (Table, Table) {
        if cfg!(target_arch = "aarch64") {
            (Table::Aarch64, Table::Arm)
        } else {
            (Table::X86_64, Table::I386)
        }
    }
}

/// Whether any architecture Linux has calls a system call `name`: a
/// profile for several machines names calls that this one has not
/// (`socketcall` is i386's, `cacheflush` arm's), and that is no error, but
/// a name no kernel knows is a typo.
pub fn known_anywhere(name: &str) -> bool {
    use syscalls::*;
    aarch64::Sysno::from_str(name).is_ok()
        || arm::Sysno::from_str(name).is_ok()
        || loongarch64::Sysno::from_str(name).is_ok()
        || mips::Sysno::from_str(name).is_ok()
        || mips64::Sysno::from_str(name).is_ok()
        || powerpc::Sysno::from_str(name).is_ok()
        || powerpc64::Sysno::from_str(name).is_ok()
        || riscv32::Sysno::from_str(name).is_ok()
        || riscv64::Sysno::from_str(name).is_ok()
        || s390x::Sysno::from_str(name).is_ok()
        || sparc::Sysno::from_str(name).is_ok()
        || sparc64::Sysno::from_str(name).is_ok()
        || x86::Sysno::from_str(name).is_ok()
        || x86_64::Sysno::from_str(name).is_ok()
        || ARM_PRIVATE.iter().any(|&(n, _)| n == name)
}

/// 32-bit arm's own calls, numbered from __ARM_NR_BASE (0x0f0000), apart
/// from the table (arch/arm/include/uapi/asm/unistd.h).
const ARM_PRIVATE: &[(&str, u32)] = &[
    ("breakpoint", 0x0f_0001),
    ("cacheflush", 0x0f_0002),
    ("usr26", 0x0f_0003),
    ("usr32", 0x0f_0004),
    ("set_tls", 0x0f_0005),
    ("get_tls", 0x0f_0006),
];

/// The verdict a rule's action returns.
fn verdict(action: Action, errno: Option<u32>, what: &str) -> Result<u32, String> {
    let data = |default: u32| -> Result<u32, String> {
        let n = errno.unwrap_or(default);
        // The kernel hands back at most MAX_ERRNO (4095) as an errno.
        match n {
            0..=4095 => Ok(n),
            _ => Err(format!("{what}: errnoRet {n}: an errno is 0 to 4095")),
        }
    };
    Ok(match action {
        Action::ScmpActAllow => bpf::RET_ALLOW,
        Action::ScmpActErrno => bpf::RET_ERRNO | data(libc::EPERM as u32)?,
        // libseccomp's SCMP_ACT_KILL is the thread's death: the kernel's
        // first and only verdict before 4.14 added KILL_PROCESS.
        Action::ScmpActKill | Action::ScmpActKillThread => bpf::RET_KILL_THREAD,
        Action::ScmpActKillProcess => bpf::RET_KILL_PROCESS,
        Action::ScmpActTrap => bpf::RET_TRAP | data(0)?,
        Action::ScmpActTrace => bpf::RET_TRACE | data(libc::EPERM as u32)?,
        Action::ScmpActLog => bpf::RET_LOG,
        Action::ScmpActNotify => {
            return Err(format!(
                "{what}: SCMP_ACT_NOTIFY needs a seccomp agent to answer it \
                 (listenerPath), which chapter 10 does not have"
            ))
        }
    })
}

/// One rule of one call: its conditions (ANDed) and its verdict.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    conds: Vec<Cond>,
    ret: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Cond {
    arg: u32,
    op: Op,
    value: u64,
    value_two: u64,
}

/// The tables the profile's `architectures` select on this machine. An
/// architecture of another kind of machine (s390x on x86_64) can never
/// make a call here: accepted, and left out. x32 shares x86_64's
/// AUDIT_ARCH and is told apart by a bit in the number: its calls get the
/// bad-architecture verdict whatever the profile says (Debian's kernels
/// turn x32 off).
fn tables(profile: &LinuxSeccomp) -> Vec<Table> {
    let (native, compat) = Table::native();
    let listed = match profile.architectures() {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![Arch::ScmpArchNative],
    };
    let mut out = Vec::new();
    for arch in listed {
        let table = match arch {
            Arch::ScmpArchNative => Some(native),
            Arch::ScmpArchX86_64 => Some(Table::X86_64),
            Arch::ScmpArchX86 => Some(Table::I386),
            Arch::ScmpArchAarch64 => Some(Table::Aarch64),
            Arch::ScmpArchArm => Some(Table::Arm),
            _ => None,
        };
        if let Some(t) = table.filter(|t| *t == native || *t == compat) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The flags seccomp(2) is called with.
fn flags(profile: &LinuxSeccomp) -> Result<u32, String> {
    let mut bits = 0;
    for flag in profile.flags().iter().flatten() {
        bits |= match flag {
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => {
                return Err("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: only for a \
                            filter with a listener (SCMP_ACT_NOTIFY)"
                    .to_string())
            }
        } as u32;
    }
    Ok(bits)
}

/// Checks the whole profile and compiles it for this machine.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, String> {
    if profile.listener_path().is_some() {
        return Err("listenerPath: a seccomp agent (SCMP_ACT_NOTIFY) is not \
                    something chapter 10 has"
            .to_string());
    }
    let default = verdict(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction",
    )?;
    let flags = flags(profile)?;
    // Check every rule once, whatever the architectures.
    let syscalls = profile.syscalls().clone().unwrap_or_default();
    let mut checked = Vec::new();
    for (i, call) in syscalls.iter().enumerate() {
        let what = format!("syscalls[{i}]");
        if call.names().is_empty() {
            return Err(format!("{what}: no names"));
        }
        for name in call.names() {
            if !known_anywhere(name) {
                return Err(format!("{what}: no system call is called {name:?}"));
            }
        }
        let ret = verdict(call.action(), call.errno_ret(), &what)?;
        let mut conds = Vec::new();
        for arg in call.args().iter().flatten() {
            if arg.index() > 5 {
                return Err(format!(
                    "{what}: argument index {}: a system call has 6 (0 to 5)",
                    arg.index()
                ));
            }
            conds.push(Cond {
                arg: arg.index() as u32,
                op: arg.op(),
                value: arg.value(),
                value_two: arg.value_two().unwrap_or(0),
            });
        }
        checked.push((call.names().clone(), Rule { conds, ret }));
    }
    let mut asm = Asm::default();
    let tables = tables(profile);
    let sections: Vec<Label> = tables.iter().map(|_| asm.label()).collect();
    asm.stmt(stmt(LD | W | ABS, bpf::ARCH));
    for (table, &section) in tables.iter().zip(&sections) {
        let next = asm.label();
        asm.jump(JEQ, table.audit_arch(), section, next);
        asm.mark(next);
    }
    asm.stmt(stmt(RET | K, bpf::RET_KILL_PROCESS));
    for (&table, &section) in tables.iter().zip(&sections) {
        asm.mark(section);
        let mut by_nr: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
        for (names, rule) in &checked {
            for name in names {
                if let Some(nr) = table.number(name) {
                    let rules = by_nr.entry(nr).or_default();
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
            }
        }
        asm.stmt(stmt(LD | W | ABS, bpf::NR));
        if table == Table::X86_64 {
            // The bit itself, not `nr >= X32_SYSCALL_BIT`: a number with
            // bit 31 set and bit 30 clear is no x32 call (the kernel
            // answers ENOSYS) and gets the profile's verdict.
            // (`jset`: jump if A & k is not zero; A keeps the number.)
            let x32 = asm.label();
            let native = asm.label();
            asm.jump(JSET, bpf::X32_SYSCALL_BIT, x32, native);
            asm.mark(x32);
            asm.stmt(stmt(RET | K, bpf::RET_KILL_PROCESS));
            asm.mark(native);
        }
        let calls: Vec<(u32, Vec<Rule>)> = by_nr.into_iter().collect();
        search(&mut asm, &calls, default);
    }
    let insns = asm.assemble()?;
    bpf::check(&insns).map_err(|e| format!("the compiled filter is wrong: {e}"))?;
    Ok(Filter { insns, flags })
}

/// A binary search over the calls (sorted by number), A holding the number.
fn search(asm: &mut Asm, calls: &[(u32, Vec<Rule>)], default: u32) {
    // A few jeq in a row cost less than another level of jge.
    if calls.len() <= 4 {
        for (nr, rules) in calls {
            let body = asm.label();
            let next = asm.label();
            asm.jump(JEQ, *nr, body, next);
            asm.mark(body);
            call_rules(asm, rules, default);
            asm.mark(next);
        }
        asm.stmt(stmt(RET | K, default));
        return;
    }
    let (low, high) = calls.split_at(calls.len() / 2);
    let upper = asm.label();
    let lower = asm.label();
    asm.jump(JGE, high[0].0, upper, lower);
    asm.mark(lower);
    search(asm, low, default);
    asm.mark(upper);
    search(asm, high, default);
}

/// One call's rules: the first whose conditions hold decides.
fn call_rules(asm: &mut Asm, rules: &[Rule], default: u32) {
    for rule in rules {
        let fail = asm.label();
        for cond in &rule.conds {
            let pass = asm.label();
            condition(asm, cond, pass, fail);
            asm.mark(pass);
        }
        asm.stmt(stmt(RET | K, rule.ret));
        asm.mark(fail);
        if rule.conds.is_empty() {
            // Nothing after an unconditional rule can be reached.
            return;
        }
    }
    asm.stmt(stmt(RET | K, default));
}

/// Jumps to `pass` if the condition holds, to `fail` if not. Clobbers A.
fn condition(asm: &mut Asm, c: &Cond, pass: Label, fail: Label) {
    let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
    let load_hi = stmt(LD | W | ABS, bpf::arg_hi(c.arg));
    let load_lo = stmt(LD | W | ABS, bpf::arg_lo(c.arg));
    let low = asm.label();
    match c.op {
        Op::ScmpCmpEq | Op::ScmpCmpNe => {
            let (yes, no) = match c.op {
                Op::ScmpCmpEq => (pass, fail),
                _ => (fail, pass),
            };
            asm.stmt(load_hi);
            asm.jump(JEQ, hi, low, no);
            asm.mark(low);
            asm.stmt(load_lo);
            asm.jump(JEQ, lo, yes, no);
        }
        Op::ScmpCmpGt | Op::ScmpCmpGe | Op::ScmpCmpLt | Op::ScmpCmpLe => {
            // a > v (or a >= v) on the upper word, then on the lower one when
            // the upper words are equal; LT and LE are their negations.
            let (strict, yes, no) = match c.op {
                Op::ScmpCmpGt => (true, pass, fail),
                Op::ScmpCmpGe => (false, pass, fail),
                Op::ScmpCmpLt => (false, fail, pass),
                _ => (true, fail, pass),
            };
            let not_greater = asm.label();
            asm.stmt(load_hi);
            asm.jump(JGT, hi, yes, not_greater);
            asm.mark(not_greater);
            asm.jump(JEQ, hi, low, no);
            asm.mark(low);
            asm.stmt(load_lo);
            asm.jump(if strict { JGT } else { JGE }, lo, yes, no);
        }
        Op::ScmpCmpMaskedEq => {
            let (two_hi, two_lo) = ((c.value_two >> 32) as u32, c.value_two as u32);
            asm.stmt(load_hi);
            asm.stmt(stmt(ALU | AND | K, hi));
            asm.jump(JEQ, two_hi, low, fail);
            asm.mark(low);
            asm.stmt(load_lo);
            asm.stmt(stmt(ALU | AND | K, lo));
            asm.jump(JEQ, two_lo, pass, fail);
        }
    }
}

/// A place in the program, known once it is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

enum Item {
    Stmt(Insn),
    /// `j<op> #k`: to `t` if it holds, else to `f`. One instruction when
    /// both are at most 255 ahead; else `j<op> k, 0, 1; ja t; ja f`.
    Jump {
        op: u16,
        k: u32,
        t: Label,
        f: Label,
        long: bool,
    },
    Mark(Label),
}

/// An assembler with labels: classic BPF jumps are 8-bit offsets, so a
/// jump further than 255 instructions goes through `ja` (32 bits).
#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }
    fn stmt(&mut self, insn: Insn) {
        self.items.push(Item::Stmt(insn));
    }
    fn jump(&mut self, op: u16, k: u32, t: Label, f: Label) {
        self.items.push(Item::Jump {
            op,
            k,
            t,
            f,
            long: false,
        });
    }
    fn mark(&mut self, label: Label) {
        self.items.push(Item::Mark(label));
    }

    /// Where each label is, with the jumps' current lengths.
    fn layout(&self) -> Result<Vec<usize>, String> {
        let mut at = vec![usize::MAX; self.labels];
        let mut pc = 0;
        for item in &self.items {
            match item {
                Item::Stmt(_) => pc += 1,
                Item::Jump { long, .. } => pc += if *long { 3 } else { 1 },
                Item::Mark(l) => at[l.0] = pc,
            }
        }
        match at.iter().position(|&a| a == usize::MAX) {
            Some(l) => Err(format!("label {l} is never placed")),
            None => Ok(at),
        }
    }

    fn assemble(mut self) -> Result<Vec<Insn>, String> {
        // Lengthen the jumps that do not reach until none is left: a jump
        // only ever grows, so this ends.
        let at = loop {
            let at = self.layout()?;
            let mut pc = 0;
            let mut grew = false;
            for item in &mut self.items {
                match item {
                    Item::Stmt(_) => pc += 1,
                    Item::Jump { long: true, .. } => pc += 3,
                    Item::Jump { t, f, long, .. } => {
                        let reach =
                            |l: &Label| at[l.0].checked_sub(pc + 1).is_some_and(|d| d <= 255);
                        if !(reach(t) && reach(f)) {
                            *long = true;
                            grew = true;
                        }
                        pc += 1;
                    }
                    Item::Mark(_) => {}
                }
            }
            if !grew {
                break at;
            }
        };
        let mut out = Vec::new();
        for item in &self.items {
            let pc = out.len();
            let off = |l: &Label, from: usize| -> Result<usize, String> {
                at[l.0]
                    .checked_sub(from + 1)
                    .ok_or_else(|| "a jump backwards".to_string())
            };
            match item {
                Item::Stmt(insn) => out.push(*insn),
                Item::Jump {
                    op,
                    k,
                    t,
                    f,
                    long: false,
                } => out.push(jump(JMP | op | K, *k, off(t, pc)? as u8, off(f, pc)? as u8)),
                Item::Jump { op, k, t, f, .. } => {
                    out.push(jump(JMP | op | K, *k, 0, 1));
                    out.push(stmt(JMP | JA, off(t, pc + 1)? as u32));
                    out.push(stmt(JMP | JA, off(f, pc + 2)? as u32));
                }
                Item::Mark(_) => {}
            }
        }
        if out.len() > bpf::MAX_INSNS {
            return Err(format!(
                "the profile compiles to {} instructions; the kernel takes at most {}",
                out.len(),
                bpf::MAX_INSNS
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
