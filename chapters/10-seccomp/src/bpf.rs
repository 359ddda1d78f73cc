//! Classic BPF as seccomp(2) runs it: the instruction set, the smallest
//! useful filter written by hand, and an interpreter that the tests (and
//! the book's exercises) run filters with.
//!
//! A seccomp filter is a program of `struct sock_filter` (filter(2) calls
//! it classic BPF, the packet filter tcpdump compiles to):
//!
//! ```text
//!  struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
//! ```
//!
//! The kernel runs it at every system call the process makes, before the
//! call does anything, with `struct seccomp_data` as the packet it reads:
//!
//! ```text
//!  offset  0  int   nr                  the system call's number
//!          4  u32   arch                AUDIT_ARCH_*: which numbering
//!          8  u64   instruction_pointer
//!         16  u64   args[6]             the call's arguments
//! ```
//!
//! It has one register, A, that loads read into (`ld [0]`: A = nr), that
//! ALU instructions change (`and #k`), and that jumps compare with k; a
//! jump goes forward only (`jt`/`jf` instructions ahead, or `ja` with a
//! 32-bit offset), so every program ends. `ret #k` ends it with the
//! verdict: the top 16 bits say what happens to the call (`RET_*`), the
//! low 16 are data (the errno for `RET_ERRNO`). See seccomp(2),
//! Documentation/userspace-api/seccomp_filter.rst and
//! Documentation/networking/filter.rst in the kernel's source.

/// One instruction: `struct sock_filter` from linux/filter.h.
pub type Insn = libc::sock_filter;

// Instruction classes, sizes, modes and operations (linux/bpf_common.h).
// An opcode is their sum: `LD | W | ABS` is "load a 32-bit word from an
// absolute offset in the packet".
pub const LD: u16 = 0x00;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
/// A 32-bit word: seccomp_data is read only in words.
pub const W: u16 = 0x00;
pub const ABS: u16 = 0x20;
pub const AND: u16 = 0x50;
pub const JA: u16 = 0x00;
pub const JEQ: u16 = 0x10;
pub const JGT: u16 = 0x20;
pub const JGE: u16 = 0x30;
/// Jump if `A & k` is not zero.
pub const JSET: u16 = 0x40;
/// The operand is the constant k (not the register X).
pub const K: u16 = 0x00;

/// The longest program the kernel takes (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

// Offsets in struct seccomp_data.
pub const NR: u32 = 0;
pub const ARCH: u32 = 4;
/// `args[i]`'s lower and upper 32 bits: the program reads words, in the
/// machine's byte order, so which half comes first depends on it.
pub const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "little") { 0 } else { 4 }
}
pub const fn arg_hi(i: u32) -> u32 {
    16 + 8 * i + if cfg!(target_endian = "little") { 4 } else { 0 }
}
/// sizeof(struct seccomp_data): a load past it is refused by the kernel.
pub const DATA_LEN: u32 = 64;

// Return values (linux/seccomp.h), strongest first: when several filters
// are stacked, the kernel runs them all and the strongest verdict wins.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// The data part of a return value (the errno).
pub const RET_DATA: u32 = 0x0000_ffff;

// The architectures a call can come from (linux/audit.h, AUDIT_ARCH_*).
// An x86_64 kernel runs 32-bit programs too (int 0x80, arch I386), with
// other numbers: unshare is 272 for one and 310 for the other. A filter
// that looks at the number without the arch can be walked around.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
pub const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// x32 programs (32-bit pointers, x86_64's registers) share
/// AUDIT_ARCH_X86_64 and set this bit in the number instead.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The architecture of this build's own system calls.
#[cfg(target_arch = "x86_64")]
pub const NATIVE_ARCH: u32 = AUDIT_ARCH_X86_64;
#[cfg(target_arch = "aarch64")]
pub const NATIVE_ARCH: u32 = AUDIT_ARCH_AARCH64;

/// An instruction without a jump.
pub const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A conditional jump: `jt` instructions ahead if the test holds, `jf`
/// if not (0: the next instruction).
pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

// ANCHOR: tiny
/// The smallest useful filter, by hand: unshare(2) and keyctl(2) fail
/// with EPERM, every other call of this architecture goes through, and a
/// call of another architecture kills the process.
pub fn tiny() -> Vec<Insn> {
    let eperm = libc::EPERM as u32;
    vec![
        /* 0 */ stmt(LD | W | ABS, ARCH), // A = arch
        /* 1 */ jump(JMP | JEQ | K, NATIVE_ARCH, 1, 0), // A == native? skip 1
        /* 2 */ stmt(RET | K, RET_KILL_PROCESS), // another numbering: kill
        /* 3 */ stmt(LD | W | ABS, NR), // A = nr
        /* 4 */ jump(JMP | JSET | K, X32_SYSCALL_BIT, 3, 0), // x32: to 8
        /* 5 */ jump(JMP | JEQ | K, libc::SYS_unshare as u32, 3, 0), // to 9
        /* 6 */ jump(JMP | JEQ | K, libc::SYS_keyctl as u32, 2, 0), // to 9
        /* 7 */ stmt(RET | K, RET_ALLOW), // everything else
        /* 8 */ stmt(RET | K, RET_KILL_PROCESS),
        /* 9 */ stmt(RET | K, RET_ERRNO | eperm), // errno = EPERM
    ]
}
// ANCHOR_END: tiny

/// What a filter reads: `struct seccomp_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl Data {
    /// The 32-bit word at `offset`, as `ld [offset]` reads it.
    fn word(&self, offset: u32) -> Option<u32> {
        let mut bytes = [0u8; DATA_LEN as usize];
        bytes[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        bytes[8..16].copy_from_slice(&self.ip.to_ne_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            bytes[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
        }
        let at = offset as usize;
        let word = bytes.get(at..at + 4)?;
        Some(u32::from_ne_bytes(word.try_into().ok()?))
    }
}

/// What the kernel checks before it takes a filter (seccomp_check_filter
/// and bpf_check_classic): not empty, not too long, only the instructions
/// a seccomp filter may use, aligned loads inside seccomp_data, every jump
/// inside the program, and a `ret` at the end.
pub fn check(prog: &[Insn]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return Err(format!(
            "{} instructions: a filter has 1 to {MAX_INSNS}",
            prog.len()
        ));
    }
    for (pc, insn) in prog.iter().enumerate() {
        let left = prog.len() - pc - 1;
        match insn.code {
            c if c == LD | W | ABS => {
                if insn.k % 4 != 0 || insn.k >= DATA_LEN {
                    return Err(format!("{pc}: load from offset {}", insn.k));
                }
            }
            c if c == ALU | AND | K || c == RET | K => {}
            c if c == JMP | JA => {
                if insn.k as usize >= left {
                    return Err(format!("{pc}: ja {} leaves the program", insn.k));
                }
            }
            c if c == JMP | JEQ | K
                || c == JMP | JGT | K
                || c == JMP | JGE | K
                || c == JMP | JSET | K =>
            {
                if insn.jt as usize >= left || insn.jf as usize >= left {
                    return Err(format!("{pc}: a jump leaves the program"));
                }
            }
            code => {
                return Err(format!(
                    "{pc}: opcode {code:#x} is not one this filter uses"
                ))
            }
        }
    }
    match prog.last() {
        Some(insn) if insn.code == RET | K => Ok(()),
        _ => Err("the last instruction is not a ret".to_string()),
    }
}

/// Runs `prog` on `data` as the kernel would, and returns its verdict.
/// Only for programs that [`check`] accepts.
pub fn run(prog: &[Insn], data: &Data) -> Result<u32, String> {
    check(prog)?;
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = prog.get(pc) {
        pc += 1;
        let cond = match insn.code {
            c if c == LD | W | ABS => {
                a = data.word(insn.k).ok_or("load outside seccomp_data")?;
                continue;
            }
            c if c == ALU | AND | K => {
                a &= insn.k;
                continue;
            }
            c if c == RET | K => return Ok(insn.k),
            c if c == JMP | JA => {
                pc += insn.k as usize;
                continue;
            }
            c if c == JMP | JEQ | K => a == insn.k,
            c if c == JMP | JGT | K => a > insn.k,
            c if c == JMP | JGE | K => a >= insn.k,
            c if c == JMP | JSET | K => a & insn.k != 0,
            code => return Err(format!("opcode {code:#x}")),
        };
        pc += if cond { insn.jt } else { insn.jf } as usize;
    }
    Err("the program ran off its end".to_string())
}

/// The instruction as the kernel's bpf_dbg and the book print it.
pub fn disassemble(prog: &[Insn]) -> String {
    let mut out = String::new();
    for (pc, insn) in prog.iter().enumerate() {
        let target = |off: u32| pc as u32 + 1 + off;
        let line = match insn.code {
            c if c == LD | W | ABS => format!("ld  [{}]", insn.k),
            c if c == ALU | AND | K => format!("and #{:#x}", insn.k),
            c if c == RET | K => format!("ret #{}", ret_name(insn.k)),
            c if c == JMP | JA => format!("ja  {}", target(insn.k)),
            c => {
                let op = match c {
                    c if c == JMP | JEQ | K => "jeq",
                    c if c == JMP | JGT | K => "jgt",
                    c if c == JMP | JGE | K => "jge",
                    c if c == JMP | JSET | K => "jset",
                    _ => "???",
                };
                format!(
                    "{op} #{:#x}, {}, {}",
                    insn.k,
                    target(insn.jt as u32),
                    target(insn.jf as u32)
                )
            }
        };
        out += &format!("{pc:4}: {line}\n");
    }
    out
}

/// `ALLOW`, `ERRNO(1)`, `KILL_PROCESS`...
pub fn ret_name(ret: u32) -> String {
    let data = ret & RET_DATA;
    match ret & !RET_DATA {
        RET_KILL_PROCESS => "KILL_PROCESS".into(),
        RET_KILL_THREAD => "KILL_THREAD".into(),
        RET_TRAP => format!("TRAP({data})"),
        RET_ERRNO => format!("ERRNO({data})"),
        RET_USER_NOTIF => "USER_NOTIF".into(),
        RET_TRACE => format!("TRACE({data})"),
        RET_LOG => "LOG".into(),
        RET_ALLOW => "ALLOW".into(),
        other => format!("{other:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(nr: i64) -> Data {
        Data {
            nr: nr as u32,
            arch: NATIVE_ARCH,
            ..Data::default()
        }
    }

    #[test]
    fn the_constants_are_the_kernels() {
        assert_eq!(
            u32::from(LD | W | ABS),
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS
        );
        assert_eq!(
            u32::from(JMP | JGE | K),
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K
        );
        assert_eq!(u32::from(ALU | AND), libc::BPF_ALU | libc::BPF_AND);
        assert_eq!(RET_KILL_PROCESS, libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(RET_ERRNO, libc::SECCOMP_RET_ERRNO);
        assert_eq!(RET_LOG, libc::SECCOMP_RET_LOG);
        assert_eq!(RET_ALLOW, libc::SECCOMP_RET_ALLOW);
        assert_eq!(MAX_INSNS, libc::BPF_MAXINSNS as usize);
        assert_eq!(DATA_LEN as usize, std::mem::size_of::<libc::seccomp_data>());
        assert_eq!(
            arg_lo(0) as usize,
            std::mem::offset_of!(libc::seccomp_data, args)
        );
    }

    #[test]
    fn the_tiny_filter_refuses_two_calls_and_another_architecture() {
        let prog = tiny();
        check(&prog).unwrap();
        let eperm = RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run(&prog, &call(libc::SYS_unshare)), Ok(eperm));
        assert_eq!(run(&prog, &call(libc::SYS_keyctl)), Ok(eperm));
        assert_eq!(run(&prog, &call(libc::SYS_getpid)), Ok(RET_ALLOW));
        let x32 = call(libc::SYS_unshare | X32_SYSCALL_BIT as i64);
        assert_eq!(run(&prog, &x32), Ok(RET_KILL_PROCESS));
        let other = Data {
            arch: 0x1234,
            ..call(libc::SYS_getpid)
        };
        assert_eq!(run(&prog, &other), Ok(RET_KILL_PROCESS));
    }

    #[test]
    fn check_refuses_what_the_kernel_refuses() {
        assert!(check(&[]).is_err());
        assert!(check(&[stmt(LD | W | ABS, 2), stmt(RET | K, 0)]).is_err());
        assert!(check(&[stmt(LD | W | ABS, 64), stmt(RET | K, 0)]).is_err());
        assert!(check(&[jump(JMP | JEQ | K, 0, 1, 0)]).is_err());
        assert!(check(&[stmt(LD | W | ABS, 0)]).is_err());
        assert!(check(&[stmt(0x07, 0), stmt(RET | K, 0)]).is_err());
        assert!(check(&vec![stmt(RET | K, 0); MAX_INSNS + 1]).is_err());
    }

    #[test]
    fn arguments_are_read_by_halves() {
        let data = Data {
            args: [0x1111_2222_3333_4444, 0, 0, 0, 0, 0],
            ..Data::default()
        };
        assert_eq!(data.word(arg_lo(0)), Some(0x3333_4444));
        assert_eq!(data.word(arg_hi(0)), Some(0x1111_2222));
    }

    #[test]
    fn disassembly_names_targets_and_verdicts() {
        let text = disassemble(&tiny());
        assert!(
            text.contains("   1: jeq #0xc000003e, 3, 2\n") || NATIVE_ARCH != AUDIT_ARCH_X86_64,
            "{text}"
        );
        assert!(text.contains("   9: ret #ERRNO(1)\n"), "{text}");
    }
}
