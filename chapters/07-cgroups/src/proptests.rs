//! Property tests of the flag parsers (`size::parse`, `--cpus`,
//! `--pids-limit`, `--cpu-shares`, `--cgroup-parent`): whatever the input,
//! they never panic, every error is one line, and an accepted value is the
//! exact one, computed here another way: slow decimal-string arithmetic, or
//! u128 checked arithmetic on a whole numerator. 256 cases each, about
//! a second in all in a debug build on an idle machine.

use super::*;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // A failure is printed with its minimal input; the cases worth
        // keeping go into the unit tests next to each parser.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One line that a terminal shows as it is: no newline, no escape sequence.
fn one_line(e: &str) -> bool {
    !e.chars().any(char::is_control)
}

/// Inputs that look like numbers, sizes and paths, and break them in every way.
fn numberish() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ +-]?[0-9]{0,45}(\\.[0-9]{0,45})?[ ]?([kKmMgGtTbB]|[kmgtKMGT][iI]?[bB])?[ ]?",
        "[0-9.eE+-]{0,12}",
        "(inf|nan|NaN|-inf|0x1[fF]|1e400|1_000|١٢)",
    ]
}

/// floor(WHOLE.FRACTION × 2^shift) if it is at most size::MAX: the digits
/// doubled `shift` times, as on paper.
fn size_oracle(whole: &str, fraction: &str, shift: u32) -> Option<u64> {
    let mut digits: Vec<u8> = whole
        .bytes()
        .chain(fraction.bytes())
        .map(|b| b - b'0')
        .collect();
    let mut whole_len = whole.len();
    for _ in 0..shift {
        let mut carry = 0;
        for d in digits.iter_mut().rev() {
            let v = *d * 2 + carry;
            *d = v % 10;
            carry = v / 10;
        }
        if carry > 0 {
            digits.insert(0, carry);
            whole_len += 1;
        }
    }
    let int: String = digits[..whole_len]
        .iter()
        .map(|d| char::from(b'0' + d))
        .collect();
    let int = int.trim_start_matches('0');
    let max = size::MAX.to_string();
    if int.len() > max.len() || (int.len() == max.len() && int > max.as_str()) {
        None
    } else {
        Some(int.parse().unwrap_or(0))
    }
}

/// 1 to `max` digits: short ones, ones with leading zeros, long ones.
fn digits(max: usize) -> impl Strategy<Value = String> {
    let re = |r: String| proptest::string::string_regex(&r).unwrap();
    prop_oneof![
        re(format!("[0-9]{{1,{}}}", max.min(6))),
        re(format!("0{{0,20}}[0-9]{{1,{}}}", max.min(19))),
        re(format!("[0-9]{{1,{max}}}")),
    ]
}

const UNITS: [(&str, u32); 12] = [
    ("", 0),
    ("b", 0),
    ("k", 10),
    ("KiB", 10),
    ("kb", 10),
    ("m", 20),
    ("MB", 20),
    ("g", 30),
    ("GiB", 30),
    ("t", 40),
    ("T", 40),
    ("tib", 40),
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn size_never_panics(s in numberish()) {
        if let Err(e) = size::parse(&s) {
            prop_assert!(one_line(&e), "{e}");
        }
        let _ = parse_memory(&s);
    }

    #[test]
    fn size_is_exact(
        whole in digits(45),
        fraction in proptest::option::of("[0-9]{0,45}"),
        unit in proptest::sample::select(UNITS.to_vec()),
    ) {
        let text = match &fraction {
            Some(f) => format!("{whole}.{f}{}", unit.0),
            None => format!("{whole}{}", unit.0),
        };
        let expected = size_oracle(&whole, fraction.as_deref().unwrap_or(""), unit.1);
        match (size::parse(&text), expected) {
            (Ok(got), Some(want)) => prop_assert_eq!(got, want, "{}", text),
            (Err(e), None) => prop_assert!(e.contains("too large"), "{text}: {e}"),
            (got, want) => prop_assert!(false, "{text}: got {got:?}, the exact value is {want:?}"),
        }
    }

    #[test]
    fn cpus_never_panic(s in numberish()) {
        if let Err(e) = parse_cpus(&s) {
            prop_assert!(one_line(&e), "{e}");
        }
    }

    #[test]
    fn cpus_are_exact(whole in digits(13), fraction in "[0-9]{0,20}") {
        let text = format!("{whole}.{fraction}");
        // WHOLE.FRACTION = n / 10^d; the quota is n × 10^5 / 10^d, rounded half up.
        let d = fraction.len() as u32;
        let n: u128 = format!("{whole}{fraction}").parse().unwrap();
        let scale = 10u128.pow(d);
        let quota = n
            .checked_mul(2 * u128::from(CPU_PERIOD))
            .and_then(|x| x.checked_add(scale))
            .map(|x| x / (2 * scale));
        let Some(quota) = quota else {
            return Err(TestCaseError::reject("beyond u128"));
        };
        let got = parse_cpus(&text);
        if n == 0 {
            prop_assert!(got.unwrap_err().contains("more than 0"));
        } else if quota > u128::from(MAX_QUOTA) {
            prop_assert!(got.unwrap_err().contains("too large"), "{}", text);
        } else if quota < 1000 {
            prop_assert!(got.unwrap_err().contains("at least 0.01"), "{}", text);
        } else {
            prop_assert_eq!(got, Ok(quota as u64), "{}", text);
        }
    }

    #[test]
    fn whole_numbers_never_panic(s in numberish()) {
        for parse in [parse_pids, parse_shares] {
            if let Err(e) = parse(&s) {
                prop_assert!(one_line(&e), "{e}");
            }
        }
    }

    #[test]
    fn whole_numbers_are_exact(sign in "[+-]?", number in digits(45)) {
        let text = format!("{sign}{number}");
        // Beyond u128 (39 digits and more, after the zeros) counts as huge.
        let value = number.trim_start_matches('0').parse::<u128>().ok();
        let value = if number.trim_start_matches('0').is_empty() { Some(0) } else { value };
        for (parse, min, max) in [(parse_pids as fn(&str) -> _, 1u64, MAX_PIDS), (parse_shares, 2, 262144)] {
            let got = parse(&text);
            match value {
                Some(v) if sign != "-" && (u128::from(min)..=u128::from(max)).contains(&v) => {
                    prop_assert_eq!(got, Ok(v as u64), "{}", text)
                }
                Some(v) if sign == "-" || v < u128::from(min) => {
                    let e = got.unwrap_err();
                    prop_assert!(!e.contains("too large") && !e.contains("not a whole"), "{text}: {e}");
                }
                None if sign == "-" => prop_assert!(!got.unwrap_err().contains("too large")),
                _ => prop_assert!(got.unwrap_err().contains("too large"), "{}", text),
            }
        }
    }

    #[test]
    fn cgroup_parent_never_panics(s in prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                "[a-z]{1,4}",
                Just(String::new()),
                Just(".".to_string()),
                Just("..".to_string()),
                Just("cgroup.procs".to_string()),
                Just("a\nb".to_string()),
                Just("\u{1b}[2J".to_string()),
                "\\PC{0,3}",
                "[a-z]{250,260}",
            ],
            0..8,
        )
        .prop_map(|parts| parts.join("/")),
        "/?/?[a-z./]{0,12}",
    ]) {
        match parse_cgroup_parent(&s) {
            Err(e) => prop_assert!(one_line(&e), "{e}"),
            // Accepted: exactly the path given, relative, plain names only,
            // so that ROOT.join(it) stays below ROOT.
            Ok(p) => {
                let rel = s.strip_prefix('/').unwrap_or(&s);
                prop_assert_eq!(p.to_str(), Some(rel));
                prop_assert!(p.is_relative());
                prop_assert!(!rel.is_empty() && rel.len() <= MAX_PARENT_LEN);
                prop_assert_eq!(p.components().count(), rel.split('/').count());
                for c in p.components() {
                    let std::path::Component::Normal(name) = c else {
                        return Err(TestCaseError::fail(format!("{s:?}: component {c:?}")));
                    };
                    let name = name.to_str().unwrap();
                    prop_assert!(one_line(name) && name.len() <= 255 && !is_interface_file(name));
                }
            }
        }
    }

    #[test]
    fn cgroup_parent_takes_plain_names(
        lead in "/?",
        parts in proptest::collection::vec("[a-zA-Z0-9_ -][a-zA-Z0-9_. @:-]{0,30}", 1..6),
    ) {
        let path = format!("{lead}{}", parts.join("/"));
        let expected = parts.iter().all(|p| !is_interface_file(p)) && path.len() <= MAX_PARENT_LEN;
        match parse_cgroup_parent(&path) {
            Ok(p) => prop_assert!(expected && p == Path::new(&parts.join("/")), "{path:?}"),
            Err(e) => prop_assert!(!expected, "{path:?}: {e}"),
        }
    }
}
