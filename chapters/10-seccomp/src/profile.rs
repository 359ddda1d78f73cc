//! Profiles as docker reads them (`--security-opt seccomp=FILE`): the OCI
//! format plus docker's own fields, which say which rules apply to this
//! machine and this container, and which docker resolves before it writes
//! `linux.seccomp` into config.json:
//!
//! - `archMap`: the architectures to list for each kind of machine;
//! - a rule's `includes` / `excludes`: only with (or without) these
//!   capabilities in the bounding set, on these architectures, from this
//!   kernel version on.
//!
//! So a container given `--cap-add SYS_ADMIN` gets mount(2) back from
//! seccomp as well as from the capabilities. [`resolve`] does what docker's
//! `setupSeccomp` does; the result is the plain OCI format that
//! [`crate::compile`] takes, and that chapter 12 reads from config.json.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscallBuilder,
};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub default_action: LinuxSeccompAction,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<Vec<Arch>>,
    #[serde(default)]
    pub arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    pub flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    pub listener_path: Option<PathBuf>,
    #[serde(default)]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    pub syscalls: Option<Vec<Syscall>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default)]
    pub sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Syscall {
    /// docker's older spelling of a one-name `names`.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Option<Vec<String>>,
    pub action: LinuxSeccompAction,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Option<Vec<Arg>>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Option<Filter>,
    #[serde(default)]
    pub excludes: Option<Filter>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arg {
    pub index: usize,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: LinuxSeccompOperator,
}

/// When a rule applies (`includes`: all of it holds; `excludes`: any of it).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    /// Capability names, `CAP_SYS_ADMIN`.
    #[serde(default)]
    pub caps: Option<Vec<String>>,
    /// docker's (Go's) names for machines: `amd64`, `x86`, `arm64`, ...
    #[serde(default)]
    pub arches: Option<Vec<String>>,
    /// `4.8`: from this kernel version on.
    #[serde(default)]
    pub min_kernel: Option<String>,
}

/// What a rule's includes and excludes are checked against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The container's bounding set, as `CAP_NAME`s.
    pub caps: Vec<String>,
    /// docker's name for this machine: `amd64` or `arm64`.
    pub arch: &'static str,
    /// The running kernel, `(major, minor)`.
    pub kernel: (u32, u32),
}

impl Target {
    /// This machine and kernel, for a container with bounding set `caps`.
    pub fn here(caps: Vec<String>) -> Target {
        let kernel = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| parse_version(&u.release().to_string_lossy()))
            .unwrap_or((0, 0));
        Target {
            caps,
            arch: if cfg!(target_arch = "aarch64") {
                "arm64"
            } else {
                "amd64"
            },
            kernel,
        }
    }
}

/// docker's architecture for this machine in an archMap.
fn native_arch(arch: &str) -> Arch {
    match arch {
        "arm64" => Arch::ScmpArchAarch64,
        _ => Arch::ScmpArchX86_64,
    }
}

/// `5.10.0-26-amd64` → (5, 10).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().unwrap_or("0").parse().unwrap_or(0);
    Some((major, minor))
}

/// Reads a profile in docker's format (of which the OCI format is a part).
pub fn parse(text: &str) -> Result<Profile, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// docker's setupSeccomp: the rules that apply to `target`, in the OCI format.
pub fn resolve(profile: &Profile, target: &Target) -> Result<LinuxSeccomp, String> {
    let mut architectures = profile.architectures.clone().unwrap_or_default();
    if let Some(map) = &profile.arch_map {
        if !architectures.is_empty() {
            return Err("a profile has either architectures or archMap, not both".into());
        }
        let native = native_arch(target.arch);
        if let Some(entry) = map.iter().find(|m| m.architecture == native) {
            architectures.push(entry.architecture);
            architectures.extend(entry.sub_architectures.iter().flatten());
        }
    }
    let mut syscalls = Vec::new();
    for (i, call) in profile.syscalls.iter().flatten().enumerate() {
        let what = format!("syscalls[{i}]");
        let excluded = match &call.excludes {
            Some(f) => {
                f.arches.iter().flatten().any(|a| a == target.arch)
                    || f.caps.iter().flatten().any(|c| target.caps.contains(c))
                    || at_least(&f.min_kernel, target, &what)?.unwrap_or(false)
            }
            None => false,
        };
        let included = match &call.includes {
            Some(f) => {
                f.arches
                    .as_ref()
                    .is_none_or(|a| a.is_empty() || a.iter().any(|a| a == target.arch))
                    && f.caps.iter().flatten().all(|c| target.caps.contains(c))
                    && at_least(&f.min_kernel, target, &what)?.unwrap_or(true)
            }
            None => true,
        };
        if excluded || !included {
            continue;
        }
        let names = match (&call.name, &call.names) {
            (Some(_), Some(names)) if !names.is_empty() => {
                return Err(format!("{what}: either name or names, not both"))
            }
            (Some(name), _) => vec![name.clone()],
            (None, names) => names.clone().unwrap_or_default(),
        };
        let mut args = Vec::new();
        for arg in call.args.iter().flatten() {
            args.push(
                LinuxSeccompArgBuilder::default()
                    .index(arg.index)
                    .value(arg.value)
                    .value_two(arg.value_two)
                    .op(arg.op)
                    .build()
                    .map_err(|e| format!("{what}: {e}"))?,
            );
        }
        let mut rule = LinuxSyscallBuilder::default()
            .names(names)
            .action(call.action)
            .args(args);
        if let Some(errno) = call.errno_ret {
            rule = rule.errno_ret(errno);
        }
        syscalls.push(rule.build().map_err(|e| format!("{what}: {e}"))?);
    }
    let mut out = LinuxSeccompBuilder::default()
        .default_action(profile.default_action)
        .architectures(architectures)
        .syscalls(syscalls);
    if let Some(errno) = profile.default_errno_ret {
        out = out.default_errno_ret(errno);
    }
    if let Some(flags) = &profile.flags {
        out = out.flags(flags.clone());
    }
    if let Some(path) = &profile.listener_path {
        out = out.listener_path(path.clone());
    }
    if let Some(meta) = &profile.listener_metadata {
        out = out.listener_metadata(meta.clone());
    }
    out.build().map_err(|e| e.to_string())
}

/// Whether the kernel is at least `min` (None without one).
fn at_least(min: &Option<String>, target: &Target, what: &str) -> Result<Option<bool>, String> {
    let Some(min) = min else { return Ok(None) };
    let want =
        parse_version(min).ok_or_else(|| format!("{what}: minKernel {min:?} is no version"))?;
    Ok(Some(target.kernel >= want))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(caps: &[&str]) -> Target {
        Target {
            caps: caps.iter().map(|c| c.to_string()).collect(),
            arch: "amd64",
            kernel: (6, 1),
        }
    }

    const PROFILE: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}, "comment": ""},
            {"name": "arch_prctl", "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "6.2"}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ]
    }"#;

    fn names(seccomp: &LinuxSeccomp) -> Vec<String> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    #[test]
    fn docker_fields_are_resolved_for_the_container() {
        let profile = parse(PROFILE).unwrap();
        let plain = resolve(&profile, &target(&["CAP_CHOWN"])).unwrap();
        assert_eq!(
            plain.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        assert_eq!(
            names(&plain),
            ["read", "write", "clone", "arch_prctl", "clone3"]
        );
        let admin = resolve(&profile, &target(&["CAP_SYS_ADMIN"])).unwrap();
        assert_eq!(
            names(&admin),
            ["read", "write", "mount", "arch_prctl", "clone3"]
        );
        let newer = Target {
            kernel: (6, 2),
            ..target(&[])
        };
        assert!(names(&resolve(&profile, &newer).unwrap()).contains(&"ptrace".to_string()));
        let clone3 = plain.syscalls().as_ref().unwrap().last().unwrap();
        assert_eq!(clone3.errno_ret(), Some(38));
    }

    #[test]
    fn bad_profiles_are_one_line() {
        for (text, want) in [
            (
                r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
                "unknown variant `SCMP_ACT_NOPE`",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
                "SCMP_ARCH_Z80",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscals": []}"#,
                "unknown field `syscals`",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#,
                "SCMP_CMP_ABOUT",
            ),
            (r#"{"defaultAction": "SCMP_ACT_ALLOW""#, "EOF"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let both = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                       "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#;
        assert!(resolve(&parse(both).unwrap(), &target(&[])).is_err());
        let version = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                          "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "new"}}]}"#;
        assert!(resolve(&parse(version).unwrap(), &target(&[])).is_err());
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_version("6.18.44-fc-v1098"), Some((6, 18)));
        assert_eq!(parse_version("5.10.0-26-amd64"), Some((5, 10)));
        assert_eq!(parse_version("4.8"), Some((4, 8)));
        assert_eq!(parse_version("6"), Some((6, 0)));
        assert_eq!(parse_version("x"), None);
    }
}
