//! Sizes as docker writes them: `67108864`, `512k`, `64m`, `1.5g`, `64MiB`.
//! Units are binary (k = 1024), as in docker and in the kernel's own files.

// ANCHOR: parse
/// The largest value the kernel's limit files hold: a signed 64-bit number.
pub const MAX: u64 = i64::MAX as u64;

/// Parses `64m` into 67108864: a number (a fraction is allowed), then an
/// optional unit b, k, m, g or t, in either case, optionally followed by
/// `b` or `ib` (`64mb`, `64MiB`). A fraction is rounded down to a byte. The
/// arithmetic is exact and checked: a size beyond [`MAX`] is an error, never
/// a wrapped-around smaller one.
pub fn parse(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("{text:?} is not a size: expected bytes, or a number with a unit k, m, g or t (e.g. 64m)")
    };
    let too_large = || format!("{text:?} is too large: a limit is at most {MAX} bytes (8 EiB)");
    let s = text.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let shift: u32 = match unit.trim_start().to_ascii_lowercase().as_str() {
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
    // Leading zeros say nothing; past 19 digits the number alone is over MAX.
    let whole = whole.trim_start_matches('0');
    if whole.len() > 19 {
        return Err(too_large());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let bytes = (whole << shift)
        .checked_add(fraction_bytes(fraction, shift))
        .ok_or_else(too_large)?;
    u64::try_from(bytes)
        .ok()
        .filter(|&b| b <= MAX)
        .ok_or_else(too_large)
}

/// floor(0.FRACTION × 2^shift), exactly, for any number of digits.
///
/// 0.FRACTION × 2^shift = F / 10^d × 2^shift. Keeping exactly `shift`
/// digits (cut or padded with zeros) loses nothing: every multiple of
/// 2^-shift has at most `shift` decimal digits, so cutting the fraction there
/// never crosses one. With d = shift the value is F / 5^shift, a long
/// division done one digit at a time, so nothing overflows (5^40 < 2^94).
fn fraction_bytes(fraction: &str, shift: u32) -> u128 {
    let divisor = 5u128.pow(shift);
    let digits = fraction
        .bytes()
        .map(|b| u128::from(b - b'0'))
        .chain(std::iter::repeat(0))
        .take(shift as usize);
    let (mut quotient, mut rest) = (0u128, 0u128);
    for digit in digits {
        rest = rest * 10 + digit;
        quotient = quotient * 10 + rest / divisor;
        rest %= divisor;
    }
    quotient
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
    fn exact_fractions() {
        assert_eq!(parse("0.5k"), Ok(512));
        assert_eq!(parse("1.0009765625k"), Ok(1025));
        assert_eq!(parse("0.0009765625k"), Ok(1));
        assert_eq!(parse("0.0009765624k"), Ok(0));
        // Past 12 digits still counts: 0.999999999999999 TiB is 1 byte more
        // than 0.999999999999 TiB.
        assert_eq!(parse("0.999999999999999t"), Ok(1099511627775));
        assert_eq!(parse("0.999999999999t"), Ok(1099511627774));
        assert_eq!(parse("1.5"), Ok(1));
        assert_eq!(parse("0007m"), Ok(7 << 20));
    }

    #[test]
    fn overflow_is_too_large() {
        // These used to wrap around in a u128 shift: 64 MiB and 1 TiB.
        for s in [
            "324518553658426726783156020576320m",
            "309485009821345068724781057t",
            "9223372036854775808",
            "8388608t",
            "99999999999999999999999999999999999999999999999999",
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.contains("too large"), "{s}: {e}");
        }
        assert_eq!(parse("9223372036854775807"), Ok(MAX));
        assert_eq!(parse("8388607.999999999999t"), Ok(MAX - 1));
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
