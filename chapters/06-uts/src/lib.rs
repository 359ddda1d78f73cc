//! Chapter 6: a UTS namespace.
//!
//! `CLONE_NEWUTS` gives the child its own hostname and NIS domain name,
//! starting as copies of the host's. sethostname(2) in it changes only the
//! container's; the host's hostname never changes.

use ch01_process::{Chapter, Context, Ctx, Error, Result, Step, Steps};
use clap::Args;
use nix::sched::CloneFlags;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch05_mnt::Opts,
    /// The container's hostname (default: its id, as docker does).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch06-uts";
    const ABOUT: &'static str = "Run COMMAND in new pid, network, IPC, mount and UTS namespaces.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
            hostname: self.hostname.clone(),
        }
    }
}

/// Chapter 6's part of the configuration: the hostname.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch05_mnt::Config,
    /// None: the container's id, as docker does.
    pub hostname: Option<String>,
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(UtsNamespace {
            hostname: self.hostname.clone(),
        }));
        steps
    }
}
// ANCHOR_END: opts

// ANCHOR: step
struct UtsNamespace {
    hostname: Option<String>,
}

impl Step for UtsNamespace {
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWUTS
    }

    fn check(&mut self, ctx: &mut Ctx) -> Result<()> {
        let name = self.hostname.get_or_insert_with(|| ctx.id.clone());
        check_hostname(name).map_err(Error::runtime)
    }

    fn setup(&self, ctx: &Ctx) -> Result<()> {
        let name = self.hostname.as_deref().unwrap_or_default();
        // lab: begin sethostname(2) the name, in the child's own UTS namespace
        ctx.say(format_args!("sethostname(2) {name:?}"));
        nix::unistd::sethostname(name).context(format!("sethostname(2) {name:?}"))
        // lab: end
    }
}
// ANCHOR_END: step

// ANCHOR: check_hostname
/// HOST_NAME_MAX on Linux; sethostname(2) fails with EINVAL beyond it.
pub const HOST_NAME_MAX: usize = 64;

/// The longest label (RFC 1035, section 2.3.4).
const LABEL_MAX: usize = 63;

/// What RFC 1123 (section 2.1) allows in a host name: labels of letters,
/// digits and hyphens, 1 to 63 bytes each, that neither start nor end with a
/// hyphen, separated by dots; and what Linux allows, at most 64 bytes in
/// all. The kernel itself takes any bytes, newlines and escape sequences
/// included, and the hostname ends up in prompts, logs and terminals: the
/// runtime refuses what no resolver or log reader expects, with one line
/// naming the rule.
pub fn check_hostname(name: &str) -> std::result::Result<(), String> {
    const RULE: &str = "a hostname (RFC 1123) is labels of letters, digits and hyphens, \
                        separated by dots";
    if name.is_empty() || name.len() > HOST_NAME_MAX {
        return Err(format!(
            "hostname {name:?} is {} bytes long: it must be 1 to {HOST_NAME_MAX}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!("hostname {name:?}: {c:?} is not allowed: {RULE}"));
    }
    for label in name.split('.') {
        let why = if label.is_empty() {
            "empty label (a dot at either end, or two in a row)".to_string()
        } else if label.len() > LABEL_MAX {
            format!("label {label:?} is {} bytes long", label.len())
        } else if label.starts_with('-') {
            format!("label {label:?} starts with a hyphen")
        } else if label.ends_with('-') {
            format!("label {label:?} ends with a hyphen")
        } else {
            continue;
        };
        return Err(format!(
            "hostname {name:?}: {why}: {RULE}, each 1 to {LABEL_MAX} bytes, \
             starting and ending with a letter or a digit"
        ));
    }
    Ok(())
}
// ANCHOR_END: check_hostname

#[cfg(test)]
mod tests {
    use super::check_hostname;

    #[test]
    fn rfc_1123_names_are_accepted() {
        for ok in [
            "box",
            "a",
            "1a2b3c4d", // a container id
            "0123",     // all digits: RFC 1123 allows it
            "web-1.example.org",
            "XN--BCHER-KVA.example",
            &"x".repeat(63),
            &format!("{}.{}", "a".repeat(31), "b".repeat(32)), // 64 bytes
        ] {
            assert_eq!(check_hostname(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn everything_else_is_refused_with_the_rule() {
        for (bad, why) in [
            ("", "is 0 bytes long: it must be 1 to 64"),
            (&"x".repeat(65), "is 65 bytes long: it must be 1 to 64"),
            ("a\nb", "'\\n' is not allowed"),
            ("a\x1b[2Jb", "'\\u{1b}' is not allowed"),
            ("a/b", "'/' is not allowed"),
            ("a b", "' ' is not allowed"),
            ("a_b", "'_' is not allowed"),
            ("bücher", "'ü' is not allowed"),
            ("a..b", ": empty label"),
            (".a", ": empty label"),
            ("a.", ": empty label"),
            ("-a", ": label \"-a\" starts with a hyphen"),
            ("a.b-", ": label \"b-\" ends with a hyphen"),
            (&"a".repeat(64), "is 64 bytes long: a hostname (RFC 1123)"),
        ] {
            let err = check_hostname(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.starts_with("hostname \""), "{err}");
            assert!(!err.chars().any(char::is_control), "{err:?}");
        }
    }

    mod step {
        use super::super::*;
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            opts: Opts,
        }

        #[test]
        fn chapter_5_plus_a_uts_namespace() {
            let opts = Cli::try_parse_from(["ch06-uts", "--hostname", "box"])
                .unwrap()
                .opts;
            assert_eq!(opts.hostname.as_deref(), Some("box"));
            let (steps, before) = (opts.config().steps(), opts.prev.config().steps());
            assert_eq!(steps.len(), before.len() + 1);
            let flags = |s: &[Box<dyn Step>]| {
                s.iter()
                    .fold(CloneFlags::empty(), |f, s| f | s.clone_flags())
            };
            assert_eq!(flags(&steps), flags(&before) | CloneFlags::CLONE_NEWUTS);
        }

        #[test]
        fn the_default_hostname_is_the_id() {
            let mut ctx = Ctx::new(Opts::NAME, false);
            // 8 digits as the runtime picks them, 12 as the tests set them.
            for id in ["1a2b3c4d", "5b0c4a110123"] {
                ctx.id = id.to_owned();
                let mut step = UtsNamespace { hostname: None };
                step.check(&mut ctx).unwrap();
                assert_eq!(step.hostname.as_deref(), Some(id));
            }
        }

        #[test]
        fn a_bad_hostname_is_refused_before_anything_is_made() {
            let mut ctx = Ctx::new(Opts::NAME, false);
            let mut step = UtsNamespace {
                hostname: Some("a b".into()),
            };
            let err = step.check(&mut ctx).unwrap_err();
            assert_eq!(err.code, ch01_process::error::EXIT_RUNTIME);
            assert!(
                err.msg.starts_with("hostname \"a b\": ' ' is not allowed"),
                "{}",
                err.msg
            );
        }
    }

    mod fuzz {
        use super::check_hostname;
        use proptest::prelude::*;

        /// The rule, written independently of check_hostname.
        fn rule() -> regex::Regex {
            let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
            regex::Regex::new(&format!("^{label}(\\.{label})*$")).unwrap()
        }

        fn check(name: &str) -> std::result::Result<(), TestCaseError> {
            let expected = name.len() <= 64 && rule().is_match(name);
            match check_hostname(name) {
                Ok(()) => prop_assert!(expected, "accepted {name:?}"),
                Err(e) => {
                    prop_assert!(!expected, "refused {name:?}: {e}");
                    prop_assert!(!e.chars().any(char::is_control), "{e:?}");
                }
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn any_text(name in "\\PC{0,70}|[\\x00-\\x7f]{0,70}") {
                check(&name)?;
            }

            #[test]
            fn near_misses(name in "[a-z0-9.-]{0,70}") {
                check(&name)?;
            }

            #[test]
            fn valid_names(name in "[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?){0,3}") {
                check(&name)?;
            }
        }
    }
}
