//! Sizes as docker writes them: `67108864`, `512k`, `64m`, `1.5g`, `64MiB`.
//! Units are binary (k = 1024), as in docker and in the kernel's own files.

// ANCHOR: parse
/// Parses `64m` into 67108864: a number (a fraction is allowed), then an
/// optional unit b, k, m, g or t, in either case, optionally followed by
/// `b` or `ib` (`64mb`, `64MiB`).
pub fn parse(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("{text:?} is not a size: expected bytes, or a number with a unit k, m, g or t (e.g. 64m)")
    };
    let s = text.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u128 = whole.parse().map_err(|_| bad())?;
    // 1.5g: the fraction's digits, scaled by the unit, rounded down to a byte.
    let mut bytes = whole << shift;
    if !fraction.is_empty() {
        let digits = &fraction[..fraction.len().min(12)];
        let num: u128 = digits.parse().map_err(|_| bad())?;
        bytes += (num << shift) / 10u128.pow(digits.len() as u32);
    }
    u64::try_from(bytes)
        .ok()
        .filter(|&b| b <= i64::MAX as u64) // the kernel's files hold a signed 64-bit number
        .ok_or_else(|| format!("{text:?} is too large"))
}
// ANCHOR_END: parse

/// 67108864 -> "64 MiB", for messages.
pub fn human(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_sizes() {
        assert_eq!(parse("67108864"), Ok(67108864));
        assert_eq!(parse("64m"), Ok(64 << 20));
        assert_eq!(parse("64M"), Ok(64 << 20));
        assert_eq!(parse("64MiB"), Ok(64 << 20));
        assert_eq!(parse("64mb"), Ok(64 << 20));
        assert_eq!(parse("512k"), Ok(512 << 10));
        assert_eq!(parse("1.5g"), Ok(3 << 29));
        assert_eq!(parse("2b"), Ok(2));
    }

    #[test]
    fn rejects_nonsense() {
        for s in [
            "",
            "m",
            "12x",
            "-1",
            "1.2.3m",
            "64 mm",
            ".5",
            "99999999999t",
        ] {
            assert!(parse(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn prints_sizes() {
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(1 << 30), "1 GiB");
        assert_eq!(human(512 << 10), "512 KiB");
        assert_eq!(human(3 << 19), "1536 KiB");
        assert_eq!(human(1000), "1000 bytes");
    }
}
