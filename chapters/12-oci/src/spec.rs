//! A bundle's `config.json`, read into the configuration of chapters 1 to
//! 11. Every field an engine writes is either honoured or refused with the
//! field's name: a runtime that ignored `readonlyPaths` would start the
//! container a user thinks is protected.
//!
//! The file is parsed twice, on purpose: once into the `oci-spec` crate's
//! types, which checks every field's type against the runtime spec, and
//! once as plain JSON, whose every present field must be one this chapter
//! knows ([`SUPPORTED`]).

use ch05_mnt::mounts::{Mount, What};
use ch09_privileges::devices::{Access, Device, Kind};
use ch09_privileges::{caps, paths, rlimit};
use ch11_userns::UserNs;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
#[cfg(test)]
use nix::sys::signal::Signal;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Every field chapter 12 reads, as a path in the JSON (`[]`: each element
/// of an array, `*`: any key of an object). A field not here, when present
/// and not empty, is refused.
pub const SUPPORTED: &[&str] = &[
    "ociVersion",
    "root.path",
    "root.readonly",
    "process.terminal",
    "process.consoleSize.height",
    "process.consoleSize.width",
    "process.user.uid",
    "process.user.gid",
    "process.user.umask",
    "process.user.additionalGids",
    "process.args",
    "process.env",
    "process.cwd",
    "process.capabilities.bounding",
    "process.capabilities.effective",
    "process.capabilities.permitted",
    "process.capabilities.inheritable",
    "process.capabilities.ambient",
    "process.rlimits[].type",
    "process.rlimits[].hard",
    "process.rlimits[].soft",
    "process.noNewPrivileges",
    "process.oomScoreAdj",
    "hostname",
    "domainname",
    "mounts[].destination",
    "mounts[].type",
    "mounts[].source",
    "mounts[].options",
    "hooks.prestart[].path",
    "hooks.prestart[].args",
    "hooks.prestart[].env",
    "hooks.prestart[].timeout",
    "hooks.createRuntime[].path",
    "hooks.createRuntime[].args",
    "hooks.createRuntime[].env",
    "hooks.createRuntime[].timeout",
    "hooks.createContainer[].path",
    "hooks.createContainer[].args",
    "hooks.createContainer[].env",
    "hooks.createContainer[].timeout",
    "hooks.startContainer[].path",
    "hooks.startContainer[].args",
    "hooks.startContainer[].env",
    "hooks.startContainer[].timeout",
    "hooks.poststart[].path",
    "hooks.poststart[].args",
    "hooks.poststart[].env",
    "hooks.poststart[].timeout",
    "hooks.poststop[].path",
    "hooks.poststop[].args",
    "hooks.poststop[].env",
    "hooks.poststop[].timeout",
    "annotations.*",
    "linux.namespaces[].type",
    "linux.namespaces[].path",
    "linux.uidMappings[].containerID",
    "linux.uidMappings[].hostID",
    "linux.uidMappings[].size",
    "linux.gidMappings[].containerID",
    "linux.gidMappings[].hostID",
    "linux.gidMappings[].size",
    "linux.sysctl.*",
    "linux.resources.memory.limit",
    "linux.resources.memory.swap",
    "linux.resources.blockIO.weight",
    "linux.resources.memory.disableOOMKiller",
    "linux.resources.cpu.shares",
    "linux.resources.cpu.quota",
    "linux.resources.cpu.period",
    "linux.resources.pids.limit",
    "linux.resources.devices[].allow",
    "linux.resources.devices[].type",
    "linux.resources.devices[].major",
    "linux.resources.devices[].minor",
    "linux.resources.devices[].access",
    "linux.devices[].path",
    "linux.devices[].type",
    "linux.devices[].major",
    "linux.devices[].minor",
    "linux.devices[].fileMode",
    "linux.devices[].uid",
    "linux.devices[].gid",
    "linux.cgroupsPath",
    "linux.seccomp",
    "linux.rootfsPropagation",
    "linux.maskedPaths",
    "linux.readonlyPaths",
];

/// Where docker's flags and runc's `spec` put the same container: what
/// chapter 12 needs to run one, from `config.json`.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub config: crate::Config,
    /// `process.args`.
    pub command: Vec<OsString>,
    /// `process.terminal`: the command gets a terminal (`--console-socket`).
    pub terminal: bool,
    /// `process.consoleSize`: rows, columns.
    pub console_size: Option<(u16, u16)>,
}

/// Reads `BUNDLE/config.json`.
pub fn load(bundle: &Path) -> Result<Bundle, String> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    serde_json::from_value::<oci_spec::runtime::Spec>(value.clone())
        .map_err(|e| format!("{}: not an OCI runtime config: {e}", path.display()))?;
    parse(&value, bundle).map_err(|e| format!("{}: {e}", path.display()))
}

/// The configuration `config` describes, for a bundle in `bundle`.
pub fn parse(config: &Value, bundle: &Path) -> Result<Bundle, String> {
    let mut unknown = Vec::new();
    walk(config, "", &mut unknown);
    if let Some(field) = unknown.first() {
        return Err(format!(
            "{field} is not supported by chapter 12 (the fields it honours are listed in \
             `ch12-oci features`)"
        ));
    }
    let version = str_at(config, "ociVersion").unwrap_or_default();
    if !version.starts_with("1.") {
        return Err(format!(
            "ociVersion {version:?}: chapter 12 runs version 1.x configs"
        ));
    }
    let mut c = crate::Config {
        bundle: bundle.to_owned(),
        ..crate::Config::default()
    };
    // What is below is written from chapter 11 down: `prev` 0 is chapter
    // 11's part, `prev.prev` chapter 10's, and so on.
    let ch11 = &mut c.prev;
    let ch10 = &mut ch11.prev;
    let ch09 = &mut ch10.prev;
    let ch08 = &mut ch09.prev;
    let ch07 = &mut ch08.prev;
    let ch06 = &mut ch07.prev;
    let ch05 = &mut ch06.prev;
    let ch01 = &mut ch05.prev.prev.prev.prev;

    // root
    let root = str_at(config, "root.path").ok_or("root.path is missing")?;
    let root = bundle.join(root);
    ch05.rootfs = Some(root);
    ch05.readonly = bool_at(config, "root.readonly");

    // process
    let process = config.get("process").ok_or("process is missing")?;
    let args: Vec<OsString> = strings(process.get("args"))
        .into_iter()
        .map(OsString::from)
        .collect();
    if args.is_empty() {
        return Err("process.args is empty: there is no command to run".into());
    }
    ch01.no_host_facts = true;
    for var in strings(process.get("env")) {
        let (name, value) = var
            .split_once('=')
            .ok_or_else(|| format!("process.env {var:?}: expected NAME=VALUE"))?;
        ch01.env.push((name.to_owned(), value.to_owned()));
    }
    let cwd = process.get("cwd").and_then(Value::as_str).unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(format!("process.cwd {cwd:?}: must be an absolute path"));
    }
    ch05.workdir = (cwd != "/").then(|| PathBuf::from(cwd));
    let uid = u64_at(config, "process.user.uid").unwrap_or(0);
    let gid = u64_at(config, "process.user.gid").unwrap_or(0);
    ch09.user = Some(format!("{uid}:{gid}"));
    // Exactly these, as the spec says: not the primary group, nor the
    // user's groups in the image's /etc/group (docker's flags add those).
    let gids = config
        .pointer("/process/user/additionalGids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| {
            g.as_u64()
                .and_then(|g| u32::try_from(g).ok())
                .ok_or_else(|| format!("process.user.additionalGids: {g} is not a gid"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    ch09.exact_groups = Some(gids);
    ch09.umask = u64_at(config, "process.user.umask").map(|m| m as u32);
    ch09.caps = Some(capabilities(process.get("capabilities"), uid)?);
    ch09.security_opt = match bool_at(config, "process.noNewPrivileges") {
        true => vec!["no-new-privileges".into()],
        false => Vec::new(),
    };
    for limit in process
        .get("rlimits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        ch09.ulimits.push(rlimit_of(limit)?);
    }
    c.oom_score_adj = process
        .get("oomScoreAdj")
        .and_then(Value::as_i64)
        .map(|v| v as i32);
    let terminal = bool_at(config, "process.terminal");
    let console_size = match (
        u64_at(config, "process.consoleSize.height"),
        u64_at(config, "process.consoleSize.width"),
    ) {
        (Some(h), Some(w)) if h > 0 && w > 0 => {
            Some((h.min(u16::MAX as u64) as u16, w.min(u16::MAX as u64) as u16))
        }
        _ => None,
    };

    // hostname, domainname
    ch06.hostname = str_at(config, "hostname").map(str::to_owned);
    c.domainname = str_at(config, "domainname").map(str::to_owned);

    // namespaces
    let linux = config.get("linux");
    let mut namespaces = BTreeMap::new();
    for ns in linux
        .and_then(|l| l.get("namespaces"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = ns.get("type").and_then(Value::as_str).unwrap_or_default();
        let path = ns
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        if let Some(path) = path {
            // Joined by the runtime before the clone (chapter 1's
            // intermediate), the user namespace last: the new ones are
            // then made in it.
            let flag = match kind {
                "user" => CloneFlags::CLONE_NEWUSER,
                "network" => CloneFlags::CLONE_NEWNET,
                "ipc" => CloneFlags::CLONE_NEWIPC,
                "uts" => CloneFlags::CLONE_NEWUTS,
                "pid" => CloneFlags::CLONE_NEWPID,
                "cgroup" => CloneFlags::CLONE_NEWCGROUP,
                _ => {
                    return Err(format!(
                        "linux.namespaces: joining a {kind} namespace ({path}) is not supported"
                    ))
                }
            };
            c.joins.push((flag, PathBuf::from(path)));
        }
        if namespaces.insert(kind.to_owned(), ()).is_some() {
            return Err(format!("linux.namespaces: {kind} is listed twice"));
        }
    }
    for kind in ["pid", "network", "ipc", "uts", "mount"] {
        if !namespaces.contains_key(kind) {
            return Err(format!(
                "linux.namespaces has no {kind} namespace: chapter 12 makes one of each kind \
                 chapters 2 to 6 add, and sharing the host's is not supported yet"
            ));
        }
    }
    for kind in namespaces.keys() {
        if !["pid", "network", "ipc", "uts", "mount", "cgroup", "user"].contains(&kind.as_str()) {
            return Err(format!(
                "linux.namespaces: {kind:?} namespaces are not supported"
            ));
        }
    }
    // The spec: a namespace not listed is the runtime's.
    ch07.no_cgroupns = !namespaces.contains_key("cgroup");
    let joins_user = c
        .joins
        .iter()
        .any(|(f, _)| f.contains(CloneFlags::CLONE_NEWUSER));
    ch11.userns = match (namespaces.contains_key("user"), joins_user) {
        (false, _) => UserNs::Host,
        // The maps, if the config gives them, are checked against the
        // namespace's own.
        (true, true) => UserNs::Joined {
            uids: id_maps(linux, "uidMappings")?,
            gids: id_maps(linux, "gidMappings")?,
        },
        (true, false) => UserNs::Maps {
            uids: id_maps(linux, "uidMappings")?,
            gids: id_maps(linux, "gidMappings")?,
        },
    };
    if let UserNs::Maps { uids, gids } = &ch11.userns {
        if uids.is_empty() || gids.is_empty() {
            return Err("a user namespace needs linux.uidMappings and linux.gidMappings".into());
        }
    }

    // mounts
    for (i, m) in config
        .get("mounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(extra) = mount_of(m).map_err(|e| format!("mounts[{i}]: {e}"))? {
            ch05.mounts.push(extra);
        }
    }
    if let Some(p) = linux
        .and_then(|l| l.get("rootfsPropagation"))
        .and_then(Value::as_str)
    {
        // Chapter 5 makes every mount private, the spec's default and
        // the only one that keeps the container's mounts off the host.
        if !matches!(p, "" | "private" | "rprivate") {
            return Err(format!(
                "linux.rootfsPropagation {p:?}: chapter 12 keeps the rootfs private"
            ));
        }
    }

    // resources, cgroupsPath
    ch07.limits.freezer = true; // for `pause`
    if let Some(r) = linux.and_then(|l| l.get("resources")) {
        let limits = &mut ch07.limits;
        limits.memory = positive(r.pointer("/memory/limit"));
        // Memory plus swap, as docker's --memory-swap: -1 is unlimited
        // swap, which chapter 7 does not give; equal to the limit, none.
        match r.pointer("/memory/swap").and_then(Value::as_i64) {
            None | Some(0) => {}
            Some(-1) => {
                return Err(
                    "linux.resources.memory.swap -1 (unlimited swap) is not supported: \
                            give memory plus swap in bytes"
                        .into(),
                )
            }
            Some(swap) if limits.memory.is_none() => {
                return Err(format!(
                    "linux.resources.memory.swap {swap} needs memory.limit too"
                ))
            }
            Some(swap) => limits.memory_swap = Some(swap as u64),
        }
        limits.pids = positive(r.pointer("/pids/limit"));
        // dockerd writes false, the default: the OOM killer acts.
        if r.pointer("/memory/disableOOMKiller")
            .and_then(Value::as_bool)
            == Some(true)
        {
            return Err("linux.resources.memory.disableOOMKiller true is not supported".into());
        }
        // dockerd writes a weight of 0, the default: no I/O weight.
        if let Some(w) = r
            .pointer("/blockIO/weight")
            .and_then(Value::as_u64)
            .filter(|&w| w != 0)
        {
            return Err(format!(
                "linux.resources.blockIO.weight {w} is not supported"
            ));
        }
        limits.cpu_shares = positive(r.pointer("/cpu/shares")).filter(|&s| s != 1024 && s != 0);
        if let Some(quota) = positive(r.pointer("/cpu/quota")) {
            let period = positive(r.pointer("/cpu/period")).unwrap_or(100_000);
            // Chapter 7 takes the quota per 100 ms period.
            limits.cpu_quota = Some(quota * 100_000 / period);
        }
    }
    let rules = linux.and_then(|l| l.pointer("/resources/devices"));
    let nodes = device_nodes(linux.and_then(|l| l.get("devices")), rules)?;
    if !nodes.is_empty() && namespaces.contains_key("user") {
        return Err(
            "linux.devices in a user namespace is not supported (the kernel refuses mknod(2) \
             there; runc binds the host's node instead)"
                .into(),
        );
    }
    device_rules(rules, &nodes)?;
    ch09.devices = nodes;
    if let Some(path) = str_at(config, "linux.cgroupsPath").filter(|p| !p.is_empty()) {
        let (parent, name) = cgroups_path(path)?;
        ch07.cgroup_parent = parent;
        ch07.cgroup_name = Some(name);
    }

    // seccomp, masked and read-only paths, sysctls
    ch10.seccomp = match linux.and_then(|l| l.get("seccomp")) {
        None | Some(Value::Null) => ch10_seccomp::Seccomp::Unconfined,
        Some(s) => ch10_seccomp::Seccomp::Oci(
            serde_json::from_value(s.clone()).map_err(|e| format!("linux.seccomp: {e}"))?,
        ),
    };
    ch09.paths = Some(paths::Paths {
        masked: strings(linux.and_then(|l| l.get("maskedPaths"))),
        readonly: strings(linux.and_then(|l| l.get("readonlyPaths"))),
    });
    for (key, value) in linux
        .and_then(|l| l.get("sysctl"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let value = value
            .as_str()
            .ok_or_else(|| format!("linux.sysctl {key}: not a string"))?;
        c.sysctl.push(crate::sysctl_check(key, value, &namespaces)?);
    }

    // hooks, annotations
    c.hooks = config.get("hooks").cloned().unwrap_or(Value::Null);
    for (key, value) in config
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let value = value
            .as_str()
            .ok_or_else(|| format!("annotations {key}: not a string"))?;
        c.annotations.insert(key.clone(), value.to_owned());
    }
    Ok(Bundle {
        config: c,
        command: args,
        terminal,
        console_size,
    })
}

/// Pushes onto `unknown` every field of `v` below `at` that is present,
/// not empty, and not in [`SUPPORTED`].
fn walk(v: &Value, at: &str, unknown: &mut Vec<String>) {
    let supported = |path: &str| SUPPORTED.contains(&path);
    match v {
        Value::Object(map) => {
            if supported(&format!("{at}.*")) || supported(at) {
                return;
            }
            for (key, value) in map {
                let path = match at {
                    "" => key.clone(),
                    _ => format!("{at}.{key}"),
                };
                if supported(&path) {
                    continue;
                }
                if empty(value) {
                    continue;
                }
                let prefix = format!("{path}.");
                let prefix_array = format!("{path}[]");
                if SUPPORTED
                    .iter()
                    .any(|s| s.starts_with(&prefix) || s.starts_with(&prefix_array))
                {
                    walk(value, &path, unknown);
                } else {
                    unknown.push(path);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, &format!("{at}[]"), unknown);
            }
        }
        _ => {}
    }
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(empty),
        _ => false,
    }
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(&format!("/{}", path.replace('.', "/")))
        .and_then(Value::as_str)
}

fn bool_at(v: &Value, path: &str) -> bool {
    v.pointer(&format!("/{}", path.replace('.', "/")))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn u64_at(v: &Value, path: &str) -> Option<u64> {
    v.pointer(&format!("/{}", path.replace('.', "/")))
        .and_then(Value::as_u64)
}

fn positive(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_i64)
        .filter(|&n| n > 0)
        .map(|n| n as u64)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

// ANCHOR: capabilities
/// `process.capabilities`, as chapter 9 gives them: one set that is the
/// bounding, permitted and effective set at once, as docker and podman
/// write. Inheritable and ambient may hold a part of it; for root they
/// change nothing at execve(2) (root's permitted set after an exec is its
/// bounding set, capabilities(7)), so they are refused only for another user.
fn capabilities(v: Option<&Value>, uid: u64) -> Result<caps::CapSet, String> {
    let set = |name: &str| -> Result<caps::CapSet, String> {
        let mut set = caps::CapSet::EMPTY;
        for cap in strings(v.and_then(|c| c.get(name))) {
            // The spec's names: CAP_ and the kernel's name, once.
            let n = cap
                .strip_prefix("CAP_")
                .filter(|short| !short.starts_with("CAP_"))
                .and_then(caps::number)
                .ok_or_else(|| {
                    format!("process.capabilities.{name}: {cap:?} is not a capability")
                })?;
            set.insert(n);
        }
        Ok(set)
    };
    let bounding = set("bounding")?;
    for name in ["effective", "permitted"] {
        if set(name)? != bounding {
            return Err(format!(
                "process.capabilities.{name} differs from bounding: chapter 9 gives one set \
                 to all three, as docker and podman do"
            ));
        }
    }
    for name in ["inheritable", "ambient"] {
        let s = set(name)?;
        if !s.is_empty() && (uid != 0 || !s.without(bounding).is_empty()) {
            return Err(format!(
                "process.capabilities.{name}: only root's, and within bounding, are supported"
            ));
        }
    }
    Ok(bounding)
}
// ANCHOR_END: capabilities

fn rlimit_of(limit: &Value) -> Result<rlimit::Ulimit, String> {
    let kind = limit
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = kind
        .strip_prefix("RLIMIT_")
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| format!("process.rlimits: {kind:?} is not an RLIMIT_ name"))?;
    let soft = limit.get("soft").and_then(Value::as_u64).unwrap_or(0);
    let hard = limit.get("hard").and_then(Value::as_u64).unwrap_or(0);
    rlimit::parse(&format!("{name}={soft}:{hard}")).map_err(|e| format!("process.rlimits: {e}"))
}

fn id_maps(linux: Option<&Value>, field: &str) -> Result<Vec<ch08_overlay::ids::IdRange>, String> {
    let mut out = Vec::new();
    for m in linux
        .and_then(|l| l.get(field))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let n = |k: &str| {
            m.get(k)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("linux.{field}: {k} is missing or not a 32-bit id"))
        };
        out.push(ch08_overlay::ids::IdRange {
            inside: n("containerID")?,
            outside: n("hostID")?,
            count: n("size")?,
        });
    }
    Ok(out)
}

/// One rule of `linux.resources.devices`: allow, `c 1:3` (`*` for any
/// number), its access letters.
fn device_rule(rule: &Value) -> (bool, String, String) {
    let allow = rule.get("allow").and_then(Value::as_bool).unwrap_or(false);
    let kind = rule.get("type").and_then(Value::as_str).unwrap_or("a");
    let n = |key: &str| match rule.get(key).and_then(Value::as_i64) {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_owned(),
    };
    let access = rule.get("access").and_then(Value::as_str).unwrap_or("rwm");
    (
        allow,
        format!("{kind} {}:{}", n("major"), n("minor")),
        access.to_owned(),
    )
}

/// A node as [`device_rule`] names it: `c 10:229`.
fn node_of(kind: Kind, major: u32, minor: u32) -> String {
    format!("{} {major}:{minor}", kind.letter())
}

/// `linux.resources.devices`: chapter 9's allow list is docker's default,
/// which is what podman, containerd and dockerd write (all denied, then
/// the standard nodes), plus the nodes of `linux.devices` (podman's and
/// docker's `--device`). A rule that would allow more is refused.
fn device_rules(v: Option<&Value>, nodes: &[Device]) -> Result<(), String> {
    for rule in v.and_then(Value::as_array).into_iter().flatten() {
        let (allow, what, access) = device_rule(rule);
        if !allow {
            continue;
        }
        let standard = ch09_privileges::devices::DOCKER_DEFAULT.iter().any(|r| {
            let line = r.v1_line();
            let (numbers, letters) = line.rsplit_once(' ').unwrap_or((&line, ""));
            numbers == what && access.chars().all(|c| letters.contains(c))
        });
        let listed = nodes
            .iter()
            .any(|d| node_of(d.kind, d.major, d.minor) == what);
        if !standard && !listed {
            return Err(format!(
                "linux.resources.devices: allowing {what} {access} is not supported (chapter 9 \
                 allows docker's standard nodes and those of linux.devices only)"
            ));
        }
    }
    Ok(())
}

/// `linux.devices`: nodes chapter 9 makes in the container, as its
/// `--device` does, each with the access the allow rules for exactly that
/// node give it. A node no rule allows is refused: chapter 9 adds every
/// node it makes to the allow list.
fn device_nodes(v: Option<&Value>, rules: Option<&Value>) -> Result<Vec<Device>, String> {
    let mut nodes = Vec::new();
    for (i, d) in v
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = |what: String| format!("linux.devices[{i}]: {what}");
        let path = d.get("path").and_then(Value::as_str).unwrap_or_default();
        if !path.starts_with("/dev/") || path.split('/').any(|c| c == "..") {
            return Err(at(format!("path {path:?} is not a path under /dev")));
        }
        let kind = match d.get("type").and_then(Value::as_str).unwrap_or_default() {
            "c" | "u" => Kind::Char,
            "b" => Kind::Block,
            t => {
                return Err(at(format!(
                    "type {t:?}: chapter 9 makes character (c, u) and block (b) nodes"
                )))
            }
        };
        let number = |key: &str| {
            d.get(key)
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| at(format!("{key} is missing or not a device number")))
        };
        let (major, minor) = (number("major")?, number("minor")?);
        let id = |key: &str| d.get(key).and_then(Value::as_u64).unwrap_or(0) as u32;
        let what = node_of(kind, major, minor);
        let mut letters = String::new();
        for rule in rules.and_then(Value::as_array).into_iter().flatten() {
            let (allow, rule_what, access) = device_rule(rule);
            if allow && rule_what == what {
                for c in access.chars() {
                    if !letters.contains(c) {
                        letters.push(c);
                    }
                }
            }
        }
        let access = Access::parse(&letters).map_err(|_| {
            at(format!(
                "{path} ({what}): no linux.resources.devices rule allows it (chapter 9 allows \
                 every node it makes)"
            ))
        })?;
        nodes.push(Device {
            host: PathBuf::from(path),
            container: PathBuf::from(path),
            access,
            kind,
            major,
            minor,
            // podman writes the node's type bits too (0o20666).
            mode: d.get("fileMode").and_then(Value::as_u64).unwrap_or(0o666) as u32 & 0o7777,
            uid: id("uid"),
            gid: id("gid"),
        });
    }
    Ok(nodes)
}

/// `linux.cgroupsPath`: `/parent/.../name` (cgroupfs), relative to the
/// cgroup root; a relative path is below the runtime's default parent.
/// systemd's `slice:prefix:name` form needs `--systemd-cgroup`, refused
/// at the command line already.
pub fn cgroups_path(path: &str) -> Result<(Option<PathBuf>, String), String> {
    if path.contains(':') {
        return Err(format!(
            "linux.cgroupsPath {path:?} is systemd's slice:prefix:name form: this host has no \
             systemd to ask; give a cgroupfs path (podman: --cgroup-manager cgroupfs)"
        ));
    }
    let valid =
        ch07_cgroups::parse_cgroup_parent(path).map_err(|e| format!("linux.cgroupsPath {e}"))?;
    let name = valid
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("linux.cgroupsPath {path:?}: no name"))?;
    let parent = valid
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && *p != Path::new("/"));
    Ok((parent.map(Path::to_owned), name))
}

// ANCHOR: mounts
/// One of `mounts`: None if it is one of those chapters 5 and 7 make
/// anyway (/proc, /dev, /dev/pts, /dev/mqueue, /sys, /sys/fs/cgroup), with
/// the options runc's and podman's defaults give them; otherwise the mount
/// for chapter 5 to add. /dev/shm is mounted as the config says, on top of
/// chapter 5's (engines differ in its options, and podman binds one of its
/// own). An IPC namespace has one mqueue filesystem: a second mount of it on
/// the same point is refused (EBUSY).
fn mount_of(m: &Value) -> Result<Option<Mount>, String> {
    let dest = m
        .get("destination")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !dest.starts_with('/') {
        return Err(format!("destination {dest:?} is not an absolute path"));
    }
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
    let source = m.get("source").and_then(Value::as_str).unwrap_or("");
    let options = strings(m.get("options"));
    let own = matches!(
        (dest.trim_end_matches('/'), kind),
        ("/proc", "proc")
            | ("/dev", "tmpfs")
            | ("/dev/pts", "devpts")
            | ("/dev/mqueue", "mqueue")
            | ("/sys", "sysfs")
            | ("/sys/fs/cgroup", "cgroup" | "cgroup2")
    );
    if own {
        return Ok(None);
    }
    let parsed = options_of(&options)?;
    let what = match (kind, parsed.bind) {
        (_, Some(_)) | ("bind", None) if !source.is_empty() => What::Bind {
            source: PathBuf::from(source),
            recursive: parsed.bind.unwrap_or(false),
        },
        ("bind", _) | (_, Some(_)) => return Err(format!("bind mount on {dest} has no source")),
        ("", None) => return Err(format!("mount on {dest} has no type")),
        (fstype, None) => What::Fs {
            fstype: fstype.to_owned(),
            source: if source.is_empty() {
                fstype.to_owned()
            } else {
                source.to_owned()
            },
        },
    };
    Ok(Some(Mount {
        destination: PathBuf::from(dest),
        what,
        flags: parsed.flags,
        data: parsed.data.join(","),
        propagation: parsed.propagation,
    }))
}
// ANCHOR_END: mounts

/// What mount(8)-style options mean to mount(2).
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// None: not a bind; Some(true): rbind.
    pub bind: Option<bool>,
    pub propagation: Option<MsFlags>,
    /// Passed to the filesystem (`mode=755`, `size=64m`, `newinstance`).
    pub data: Vec<String>,
}

// ANCHOR: options
/// Splits mount options into mount(2)'s flags and the filesystem's own
/// data, as mount(8) does. A flag is removed by its opposite (`rw` after
/// `ro`).
pub fn options_of(options: &[String]) -> Result<Options, String> {
    use MsFlags as F;
    let mut o = Options {
        flags: F::empty(),
        bind: None,
        propagation: None,
        data: Vec::new(),
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (F::MS_RDONLY, F::empty()),
            "rw" => (F::empty(), F::MS_RDONLY),
            "nosuid" => (F::MS_NOSUID, F::empty()),
            "suid" => (F::empty(), F::MS_NOSUID),
            "nodev" => (F::MS_NODEV, F::empty()),
            "dev" => (F::empty(), F::MS_NODEV),
            "noexec" => (F::MS_NOEXEC, F::empty()),
            "exec" => (F::empty(), F::MS_NOEXEC),
            "sync" => (F::MS_SYNCHRONOUS, F::empty()),
            "async" => (F::empty(), F::MS_SYNCHRONOUS),
            "noatime" => (F::MS_NOATIME, F::empty()),
            "atime" => (F::empty(), F::MS_NOATIME),
            "nodiratime" => (F::MS_NODIRATIME, F::empty()),
            "diratime" => (F::empty(), F::MS_NODIRATIME),
            "relatime" => (F::MS_RELATIME, F::empty()),
            "norelatime" => (F::empty(), F::MS_RELATIME),
            "strictatime" => (F::MS_STRICTATIME, F::empty()),
            "nostrictatime" => (F::empty(), F::MS_STRICTATIME),
            "defaults" => (F::empty(), F::empty()),
            "bind" => {
                o.bind = Some(o.bind.unwrap_or(false));
                continue;
            }
            "rbind" => {
                o.bind = Some(true);
                continue;
            }
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                let rec = if p.starts_with('r') {
                    F::MS_REC
                } else {
                    F::empty()
                };
                let kind = match p.trim_start_matches('r') {
                    "private" => F::MS_PRIVATE,
                    "shared" => F::MS_SHARED,
                    "slave" => F::MS_SLAVE,
                    _ => F::MS_UNBINDABLE,
                };
                o.propagation = Some(kind | rec);
                continue;
            }
            // What engines add that is theirs, not mount(2)'s (SELinux
            // relabelling, idmapped mounts, crun's copy-up): refused.
            other if !other.contains('=') && !KNOWN_DATA.contains(&other) => {
                return Err(format!("mount option {other:?} is not supported"));
            }
            data => {
                o.data.push(data.to_owned());
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    Ok(o)
}
// ANCHOR_END: options

/// Filesystem options without `=` that engines write (devpts's).
const KNOWN_DATA: &[&str] = &["newinstance"];

#[cfg(test)]
mod tests;
