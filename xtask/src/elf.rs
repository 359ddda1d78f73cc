//! Just enough ELF parsing to tell whether an executable is static.
//!
//! A dynamically linked executable names its loader (ld-linux.so) in a
//! PT_INTERP program header; a static one (including glibc's static-pie)
//! has none. Inside a container rootfs without /lib, only the latter runs.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

const PT_INTERP: u32 = 3;

/// True when `path` is a 64-bit little-endian ELF file without PT_INTERP.
pub fn is_static(path: &Path) -> Result<bool> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    is_static_elf(&data).with_context(|| format!("{} is not a 64-bit ELF file", path.display()))
}

fn is_static_elf(data: &[u8]) -> Result<bool> {
    // e_ident: magic, class 2 (64-bit), data 1 (little-endian).
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        bail!("bad ELF header");
    }
    let u16_at = |at: usize| u16::from_le_bytes([data[at], data[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into()?) as usize;
    let phentsize = u16_at(0x36);
    let phnum = u16_at(0x38);
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let Some(p_type) = data.get(at..at + 4) else {
            bail!("truncated program headers");
        };
        if u32::from_le_bytes(p_type.try_into()?) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_shell_is_dynamic() {
        // Debian's /bin/sh (dash) is dynamically linked.
        if Path::new("/bin/dash").exists() {
            assert!(!is_static(Path::new("/bin/dash")).unwrap());
        }
    }

    #[test]
    fn rejects_non_elf() {
        assert!(is_static_elf(b"#!/bin/sh\n").is_err());
    }
}
