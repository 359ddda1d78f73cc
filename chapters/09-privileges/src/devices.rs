//! Devices: which device nodes the container may use.
//!
//! A device node is a file that names a driver by a type (`c` character,
//! `b` block) and two numbers, major:minor; opening it talks to that
//! driver, whatever directory the node is in. Chapter 5 gave the container
//! a /dev with six harmless nodes, but root in the container keeps
//! CAP_MKNOD (docker keeps it, so that images can make /dev/null and the
//! like): `mknod /tmp/disk b 8 0` makes the host's first disk readable.
//! Capabilities cannot tell a harmless node from a dangerous one; the
//! devices cgroup can. It checks every open(2) and mknod(2) of a device
//! node against an allow list, whoever asks: what is not on it fails with
//! EPERM ("Operation not permitted").
//!
//! The list is docker's ([`DOCKER_DEFAULT`]), plus one rule per `--device`.
//! Chapter 7's cgroup enforces it ([`ch07_cgroups::DevicePolicy`]): in
//! cgroup v1 as lines in `devices.allow` ([`Rule::v1_line`]); in cgroup v2,
//! which has no such file, as an eBPF program ([`program`]) that the kernel
//! runs at each open(2) and mknod(2) of a device node.

use ch01_process::{Context, Ctx, Error, Result};
use ch07_cgroups::{BpfInsn, DevicePolicy};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// A device node's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Char,
    Block,
}

impl Kind {
    /// How `devices.allow` and `mknod` spell it.
    pub fn letter(self) -> char {
        match self {
            Kind::Char => 'c',
            Kind::Block => 'b',
        }
    }

    /// How the kernel tells it to an eBPF device program
    /// (`BPF_DEVCG_DEV_BLOCK`, `BPF_DEVCG_DEV_CHAR`).
    fn bpf_type(self) -> i32 {
        match self {
            Kind::Block => 1,
            Kind::Char => 2,
        }
    }
}

/// What a rule allows: any of read, write, mknod. The bits are the
/// kernel's `BPF_DEVCG_ACC_*`: mknod 1, read 2, write 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access(u8);

impl Access {
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);

    /// `rwm`, `r`, `mw`...: each letter at most once, at least one.
    pub fn parse(s: &str) -> std::result::Result<Access, String> {
        let mut bits = 0;
        for c in s.chars() {
            let bit = match c {
                'r' => Access::READ.0,
                'w' => Access::WRITE.0,
                'm' => Access::MKNOD.0,
                _ => return Err(format!("{s:?} is not a device permission: only the letters r, w and m (read, write, mknod)")),
            };
            if bits & bit != 0 {
                return Err(format!("{s:?} is not a device permission: {c:?} twice"));
            }
            bits |= bit;
        }
        match bits {
            0 => Err(
                "an empty device permission allows nothing (expected letters among r, w, m)".into(),
            ),
            _ => Ok(Access(bits)),
        }
    }

    /// `rwm`, in that order, as `devices.allow` reads it.
    pub fn letters(self) -> String {
        [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ]
        .iter()
        .filter(|(a, _)| self.0 & a.0 != 0)
        .map(|(_, c)| c)
        .collect()
    }
}

// ANCHOR: rule
/// One entry of the allow list: devices of `kind` with these numbers
/// (None: any, `*`) may be used as `access` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl Rule {
    /// The rule as cgroup v1's `devices.allow` reads it: `c 1:3 rwm`, `c 136:* rwm`.
    pub fn v1_line(&self) -> String {
        let n = |n: Option<u32>| n.map_or("*".to_owned(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            n(self.major),
            n(self.minor),
            self.access.letters()
        )
    }
}

const fn rule(kind: Kind, major: Option<u32>, minor: Option<u32>, access: Access) -> Rule {
    Rule {
        kind,
        major,
        minor,
        access,
    }
}

/// What docker allows every container: moby's default spec (null, zero,
/// urandom, random, tty, console) and what runc adds to every container
/// (full, ptmx, the pseudo-terminals, tun/tap, and mknod(2) of any node:
/// making a node is harmless when opening it is refused).
pub const DOCKER_DEFAULT: [Rule; 12] = {
    use Kind::{Block, Char};
    let (any, all) = (None, Access::ALL);
    [
        rule(Char, any, any, Access::MKNOD),
        rule(Block, any, any, Access::MKNOD),
        rule(Char, Some(1), Some(3), all),    // /dev/null
        rule(Char, Some(1), Some(5), all),    // /dev/zero
        rule(Char, Some(1), Some(7), all),    // /dev/full
        rule(Char, Some(1), Some(8), all),    // /dev/random
        rule(Char, Some(1), Some(9), all),    // /dev/urandom
        rule(Char, Some(5), Some(0), all),    // /dev/tty
        rule(Char, Some(5), Some(1), all),    // /dev/console
        rule(Char, Some(5), Some(2), all),    // /dev/ptmx
        rule(Char, Some(136), any, all),      // /dev/pts/*
        rule(Char, Some(10), Some(200), all), // /dev/net/tun
    ]
};
// ANCHOR_END: rule

/// The policy chapter 7 enforces: `rules`, in both forms.
pub fn policy(rules: &[Rule]) -> DevicePolicy {
    DevicePolicy {
        allow: rules.iter().map(Rule::v1_line).collect(),
        program: program(rules),
    }
}

// ---- the eBPF program ----

// Opcodes: an instruction class in the low 3 bits, then an operation and
// where the operand comes from (K: the immediate; X: the source register).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W: load 32 bits
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// A conditional jump whose offset is not known yet: to the next rule.
const NEXT: i16 = i16::MIN;

// ANCHOR: devices_program
/// The allow list as an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE,
/// the shape runc's devicefilter.go and crun's ebpf.c emit. The kernel runs
/// it at each open(2) and mknod(2) of a device node in the cgroup, with r1
/// pointing to a `struct bpf_cgroup_dev_ctx`:
///
/// ```text
///  offset 0  u32 access_type   low 16 bits: the type (block 1, char 2)
///                              high 16 bits: the access (mknod 1, read 2, write 4)
///  offset 4  u32 major
///  offset 8  u32 minor
/// ```
///
/// It returns (in r0) 1 to allow, 0 to deny. r0 to r5 are 64-bit
/// registers; `wN` names the low 32 bits of `rN` (an operation on `wN`
/// zeroes the high half), and loading a u32 zero-extends it. There are no
/// loops in it: the verifier, which checks every program before the kernel
/// accepts it, follows every path and wants each to end in `exit` with r0
/// set, and each read of the context to be within it and as wide as the
/// field.
///
/// The jumps compare all 64 bits with the immediate, sign-extended: exact
/// for every real number (majors are 12 bits, minors 20), and a rule with
/// a number above `i32::MAX` never matches, which denies, never allows.
pub fn program(rules: &[Rule]) -> Vec<BpfInsn> {
    let mut p = vec![
        // r2 = the type: the low half of access_type...
        insn(LDX_MEM_W, 2, 1, 0, 0),        // r2 = *(u32 *)(r1 + 0)
        insn(ALU32_AND_K, 2, 0, 0, 0xffff), // w2 &= 0xffff
        // ... r3 = the access asked for: its high half.
        insn(LDX_MEM_W, 3, 1, 0, 0),    // r3 = *(u32 *)(r1 + 0)
        insn(ALU32_RSH_K, 3, 0, 0, 16), // w3 >>= 16
        insn(LDX_MEM_W, 4, 1, 4, 0),    // r4 = major: *(u32 *)(r1 + 4)
        insn(LDX_MEM_W, 5, 1, 8, 0),    // r5 = minor: *(u32 *)(r1 + 8)
    ];
    // One block per rule, tried in order. Each test that fails jumps to
    // the next block (its offset counts the instructions to skip, from the
    // one after the jump); a block whose tests all pass allows.
    for rule in rules {
        let start = p.len();
        // if r2 != TYPE goto next rule
        p.push(insn(JMP_JNE_K, 2, 0, NEXT, rule.kind.bpf_type()));
        if rule.access != Access::ALL {
            // Allowed only if every bit asked for is in the rule's access:
            // (asked & allowed) == asked.
            p.push(insn(ALU32_MOV_X, 1, 3, 0, 0)); // w1 = w3 (r1, the context, is no longer needed)
            p.push(insn(ALU32_AND_K, 1, 0, 0, i32::from(rule.access.0))); // w1 &= ACCESS
            p.push(insn(JMP_JNE_X, 1, 3, NEXT, 0)); // if r1 != r3 goto next rule
        }
        if let Some(major) = rule.major {
            p.push(insn(JMP_JNE_K, 4, 0, NEXT, major as i32)); // if r4 != MAJOR goto next rule
        }
        if let Some(minor) = rule.minor {
            p.push(insn(JMP_JNE_K, 5, 0, NEXT, minor as i32)); // if r5 != MINOR goto next rule
        }
        p.push(insn(ALU32_MOV_K, 0, 0, 0, 1)); // w0 = 1: allow
        p.push(insn(JMP_EXIT, 0, 0, 0, 0)); // exit
        let next = p.len();
        for (i, ins) in p.iter_mut().enumerate().skip(start) {
            if ins.off == NEXT {
                ins.off = (next - (i + 1)) as i16;
            }
        }
    }
    // No rule matched: deny.
    p.push(insn(ALU32_MOV_K, 0, 0, 0, 0)); // w0 = 0: deny
    p.push(insn(JMP_EXIT, 0, 0, 0, 0)); // exit
    p
}
// ANCHOR_END: devices_program

// ---- --device ----

// ANCHOR: device
/// `--device HOST[:CONTAINER][:PERMISSIONS]`: the host's device node
/// `host`, made in the container at `container` and allowed as `access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub host: PathBuf,
    pub container: PathBuf,
    pub access: Access,
    /// Found by stat(2) of `host`, when the flag is read.
    pub kind: Kind,
    pub major: u32,
    pub minor: u32,
    /// The host node's permission bits, owner and group, given to the
    /// container's node (as docker does).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Device {
    /// Its entry in the allow list.
    pub fn rule(&self) -> Rule {
        rule(self.kind, Some(self.major), Some(self.minor), self.access)
    }
}

/// clap's value parser for `--device`: [`split`], then stat(2) of the
/// host's node, which must be a character or block device. The numbers are
/// read now, as docker's daemon does before it hands the container to runc.
pub fn parse(s: &str) -> std::result::Result<Device, String> {
    let (host, container, access) = split(s)?;
    let meta = std::fs::metadata(&host).map_err(|e| format!("{host:?}: {e}"))?;
    let kind = match meta.file_type() {
        t if t.is_char_device() => Kind::Char,
        t if t.is_block_device() => Kind::Block,
        _ => {
            return Err(format!(
                "{host:?} is not a device node (not a character or block device)"
            ))
        }
    };
    let rdev = meta.rdev();
    Ok(Device {
        host,
        container,
        access,
        kind,
        major: libc::major(rdev),
        minor: libc::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// `HOST[:CONTAINER][:PERMISSIONS]`, as docker splits it: with two parts,
/// the second is the permissions if it reads as such, else the container's
/// path. The container's path defaults to the host's, the permissions to
/// `rwm`.
pub fn split(s: &str) -> std::result::Result<(PathBuf, PathBuf, Access), String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, access) = match parts[..] {
        [host] => (host, host, "rwm"),
        [host, second] if Access::parse(second).is_ok() => (host, host, second),
        [host, container] => (host, container, "rwm"),
        [host, container, access] => (host, container, access),
        _ => {
            return Err(format!(
                "{s:?}: expected HOST[:CONTAINER][:PERMISSIONS], e.g. /dev/sdb:/dev/xvdb:r"
            ))
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?}: no host path"));
    }
    let container = PathBuf::from(container);
    check_container_path(&container)?;
    Ok((PathBuf::from(host), container, Access::parse(access)?))
}

/// The container's path: absolute, no `.` or `..` (nothing to resolve
/// against the host's view), not the root itself.
pub fn check_container_path(path: &Path) -> std::result::Result<(), String> {
    if !path.is_absolute() {
        return Err(format!("the container's path {path:?} is not absolute"));
    }
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
    {
        return Err(format!(
            "the container's path {path:?} has a . or .. component"
        ));
    }
    if path.parent().is_none() {
        return Err("the container's path is the root directory".into());
    }
    Ok(())
}
// ANCHOR_END: device

// ANCHOR: make_nodes
/// In the container, after chapter 5 made its /dev: mknod(2) each
/// `--device` node (a directory on the way is made; a file already there,
/// such as chapter 5's /dev/null, is replaced).
pub fn make_nodes(ctx: &Ctx, devices: &[Device]) -> Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    for d in devices {
        let path = &d.container;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).context(format!("mkdir -p {dir:?}"))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(Error::runtime(format!(
                    "--device {:?}: {path:?} is a directory in the container",
                    d.host
                )))
            }
            Ok(_) => std::fs::remove_file(path).context(format!("replacing {path:?}"))?,
            Err(_) => {}
        }
        let kind = match d.kind {
            Kind::Char => SFlag::S_IFCHR,
            Kind::Block => SFlag::S_IFBLK,
        };
        ctx.say(format_args!(
            "mknod(2) {} {} {} {}",
            path.display(),
            d.kind.letter(),
            d.major,
            d.minor
        ));
        let dev = makedev(u64::from(d.major), u64::from(d.minor));
        mknod(path, kind, Mode::empty(), dev).context(format!("mknod(2) {path:?}"))?;
        // The mode after mknod(2), not through it: the umask would narrow it.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(d.mode))
            .context(format!("chmod {path:?}"))?;
        std::os::unix::fs::lchown(path, Some(d.uid), Some(d.gid))
            .context(format!("chown {path:?}"))?;
    }
    Ok(())
}
// ANCHOR_END: make_nodes

#[cfg(test)]
mod tests {
    use super::*;

    /// An instruction as a line of text, for the tests' expected programs.
    fn asm(i: &BpfInsn) -> String {
        match i.code {
            LDX_MEM_W => format!("r{} = *(u32 *)(r{} + {})", i.dst, i.src, i.off),
            ALU32_AND_K => format!("w{} &= {:#x}", i.dst, i.imm),
            ALU32_RSH_K => format!("w{} >>= {}", i.dst, i.imm),
            ALU32_MOV_K => format!("w{} = {}", i.dst, i.imm),
            ALU32_MOV_X => format!("w{} = w{}", i.dst, i.src),
            JMP_JNE_K => format!("if r{} != {} goto +{}", i.dst, i.imm, i.off),
            JMP_JNE_X => format!("if r{} != r{} goto +{}", i.dst, i.src, i.off),
            JMP_EXIT => "exit".into(),
            c => format!("unknown {c:#x}"),
        }
    }

    fn listing(p: &[BpfInsn]) -> Vec<String> {
        p.iter().map(asm).collect()
    }

    #[test]
    fn device_flags_split_as_docker_does() {
        let ok = |s: &str| {
            split(s).map(|(h, c, a)| {
                (
                    h.display().to_string(),
                    c.display().to_string(),
                    a.letters(),
                )
            })
        };
        let t = |h: &str, c: &str, a: &str| Ok((h.into(), c.into(), a.into()));
        assert_eq!(ok("/dev/sda"), t("/dev/sda", "/dev/sda", "rwm"));
        assert_eq!(ok("/dev/sda:r"), t("/dev/sda", "/dev/sda", "r"));
        assert_eq!(ok("/dev/sda:/dev/xvda"), t("/dev/sda", "/dev/xvda", "rwm"));
        assert_eq!(
            ok("/dev/sda:/dev/xvda:mr"),
            t("/dev/sda", "/dev/xvda", "rm")
        );
        for bad in [
            "",
            ":/dev/x",
            "/dev/sda:dev/xvda",
            "/dev/sda:xvda:r",
            "/dev/sda:/dev/../etc/x",
            "/dev/sda:/",
            "/dev/sda:/dev/xvda:rwx",
            "/dev/sda:/dev/xvda:rr",
            "/dev/sda:/dev/xvda:",
            "/dev/sda:/dev/xvda:r:w",
        ] {
            let e = split(bad).unwrap_err();
            assert!(!e.contains('\n'), "{bad:?}: {e}");
        }
        assert!(split("/dev/sda:rel").unwrap_err().contains("not absolute"));
    }

    #[test]
    fn device_flags_need_a_device_node() {
        let e = parse("/etc/passwd").unwrap_err();
        assert!(e.contains("not a device node"), "{e}");
        let e = parse("/nonexistent-device").unwrap_err();
        assert!(e.contains("No such file"), "{e}");
        let null = parse("/dev/null:/dev/mine:r").unwrap();
        assert_eq!((null.kind, null.major, null.minor), (Kind::Char, 1, 3));
        assert_eq!(null.rule().v1_line(), "c 1:3 r");
    }

    #[test]
    fn v1_lines() {
        let lines: Vec<String> = DOCKER_DEFAULT.iter().map(Rule::v1_line).collect();
        assert_eq!(lines[0], "c *:* m");
        assert_eq!(lines[1], "b *:* m");
        assert!(lines.contains(&"c 1:3 rwm".to_string()));
        assert!(lines.contains(&"c 136:* rwm".to_string()));
        let r = rule(Kind::Block, Some(8), Some(0), Access::parse("wr").unwrap());
        assert_eq!(r.v1_line(), "b 8:0 rw");
    }

    #[test]
    fn each_rule_compiles_to_its_tests() {
        let rules = [
            rule(Kind::Char, None, None, Access::MKNOD),
            rule(Kind::Char, Some(1), Some(3), Access::ALL),
            rule(Kind::Char, Some(136), None, Access::ALL),
            rule(Kind::Block, Some(8), Some(0), Access::parse("r").unwrap()),
        ];
        let p = listing(&program(&rules));
        let expected = [
            "r2 = *(u32 *)(r1 + 0)",
            "w2 &= 0xffff",
            "r3 = *(u32 *)(r1 + 0)",
            "w3 >>= 16",
            "r4 = *(u32 *)(r1 + 4)",
            "r5 = *(u32 *)(r1 + 8)",
            // c *:* m: type and access only
            "if r2 != 2 goto +5",
            "w1 = w3",
            "w1 &= 0x1",
            "if r1 != r3 goto +2",
            "w0 = 1",
            "exit",
            // c 1:3 rwm: no access test
            "if r2 != 2 goto +4",
            "if r4 != 1 goto +3",
            "if r5 != 3 goto +2",
            "w0 = 1",
            "exit",
            // c 136:* rwm
            "if r2 != 2 goto +3",
            "if r4 != 136 goto +2",
            "w0 = 1",
            "exit",
            // b 8:0 r
            "if r2 != 1 goto +7",
            "w1 = w3",
            "w1 &= 0x2",
            "if r1 != r3 goto +4",
            "if r4 != 8 goto +3",
            "if r5 != 0 goto +2",
            "w0 = 1",
            "exit",
            // nothing matched
            "w0 = 0",
            "exit",
        ];
        assert_eq!(p, expected);
    }

    #[test]
    fn docker_default_program_is_well_formed() {
        let p = program(&DOCKER_DEFAULT);
        // 6 to load the context; per rule: 1 type test, 3 for an access
        // other than rwm, 1 per number given, 2 to allow; 2 to deny.
        let per_rule: usize = DOCKER_DEFAULT
            .iter()
            .map(|r| {
                1 + 3 * usize::from(r.access != Access::ALL)
                    + usize::from(r.major.is_some())
                    + usize::from(r.minor.is_some())
                    + 2
            })
            .sum();
        assert_eq!(p.len(), 6 + per_rule + 2);
        assert_eq!(listing(&p[p.len() - 2..]), ["w0 = 0", "exit"]);
        // Every jump lands inside the program, forward, on the first
        // instruction of a block (a type test) or on the final deny.
        let starts: Vec<usize> = (0..p.len())
            .filter(|&i| (p[i].code == JMP_JNE_K && p[i].dst == 2) || i == p.len() - 2)
            .collect();
        for (i, ins) in p.iter().enumerate() {
            if matches!(ins.code, JMP_JNE_K | JMP_JNE_X) {
                assert!(ins.off > 0, "{i}: {}", asm(ins));
                let target = i + 1 + ins.off as usize;
                assert!(
                    starts.contains(&target),
                    "{i}: {} lands on {target}",
                    asm(ins)
                );
            }
        }
        // Each allow is "w0 = 1; exit", and nothing but the last exit
        // follows a deny.
        for (i, _) in p.iter().enumerate().filter(|(_, i)| i.code == JMP_EXIT) {
            assert_eq!(p[i - 1].code, ALU32_MOV_K, "{i}");
            assert_eq!(p[i - 1].dst, 0, "{i}");
        }
        assert_eq!(p.iter().filter(|i| i.code == JMP_EXIT).count(), 12 + 1);
    }

    #[test]
    fn instructions_are_the_kernels_bytes() {
        // r4 = *(u32 *)(r1 + 4): opcode, src in the high nibble, dst in the
        // low (on little-endian machines), offset, immediate.
        let b = insn(LDX_MEM_W, 4, 1, 4, 0).to_bytes();
        if cfg!(target_endian = "little") {
            assert_eq!(b, [0x61, 0x14, 4, 0, 0, 0, 0, 0]);
        }
        let b = insn(JMP_JNE_K, 5, 0, 2, 200).to_bytes();
        if cfg!(target_endian = "little") {
            assert_eq!(b, [0x55, 0x05, 2, 0, 200, 0, 0, 0]);
        }
    }
}
