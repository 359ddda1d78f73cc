//! `spec` with chapter 11's flags: the `config.json` that a docker-style
//! command line means. What `docker run --memory 64m --cap-drop NET_RAW`
//! hands to its runtime is this file; the flags are a way to write it.
//!
//! The mapping is the inverse of [`crate::spec::parse`], and a test checks
//! it as such: flags → config.json → configuration gives the container
//! the flags gave.

use crate::cli::default_spec;
use ch11_userns::UserNs;
use serde_json::{json, Value};
use std::ffi::OsString;

// ANCHOR: to_json
/// The config.json for `config` running `command`; an error names a flag
/// whose meaning is not the runtime's but the engine's.
pub fn to_json(config: &ch11_userns::Config, command: &[OsString]) -> Result<Value, String> {
    let ch10 = &config.prev;
    let ch09 = &ch10.prev;
    let ch08 = &ch09.prev;
    let ch07 = &ch08.prev;
    let ch06 = &ch07.prev;
    let ch05 = &ch06.prev;
    let ch03 = &ch05.prev.prev;
    let ch02 = &ch03.prev;
    let ch01 = &ch02.prev;
    let engine =
        |flag: &str, why: &str| Err(format!("{flag}: {why}; config.json has no field for it"));
    if ch02.init {
        return engine(
            "--init",
            "an engine puts its own init in the image (docker's tini)",
        );
    }
    if ch03.veth.is_some() || ch03.slirp4netns {
        return engine(
            "--veth and --network",
            "the engine makes the network and gives its namespace by path",
        );
    }
    if !ch08.layers.is_empty() {
        return engine(
            "--layer",
            "the engine unpacks the image and gives the runtime its root",
        );
    }
    if ch07.cgroup_parent.is_some() {
        return engine(
            "--cgroup-parent",
            "linux.cgroupsPath names the container's own cgroup, which the engine chooses",
        );
    }
    if !ch09.devices.is_empty() {
        return Err("--device: not written into config.json by this chapter yet".into());
    }
    let mut v = default_spec();
    v["root"]["readonly"] = json!(false);
    if let Some(root) = &ch05.rootfs {
        v["root"]["path"] = json!(root);
    }
    if !command.is_empty() {
        v["process"]["args"] = json!(command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>());
    }
    let mut env = vec![format!("PATH={}", ch01_process::step::DEFAULT_PATH)];
    env.extend(ch01.env.iter().map(|(n, value)| format!("{n}={value}")));
    v["process"]["env"] = json!(env);
    match &ch06.hostname {
        Some(name) => v["hostname"] = json!(name),
        None => {
            v.as_object_mut().expect("an object").remove("hostname");
        }
    }
    // chapter 7
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let l = &ch07.limits;
    if let Some(m) = l.memory {
        resources["memory"] = json!({"limit": m, "swap": m});
    }
    if let Some(p) = l.pids {
        resources["pids"] = json!({"limit": p});
    }
    if let Some(q) = l.cpu_quota {
        resources["cpu"]["quota"] = json!(q);
        resources["cpu"]["period"] = json!(ch07_cgroups::CPU_PERIOD);
    }
    if let Some(s) = l.cpu_shares {
        resources["cpu"]["shares"] = json!(s);
    }
    v["linux"]["resources"] = resources;
    // chapter 9
    let caps = match (ch09.caps, ch09.privileged) {
        (Some(set), _) => set,
        (None, true) => ch09_privileges::caps::CapSet::all(),
        (None, false) => ch09_privileges::caps::resolve(&ch09.cap_add, &ch09.cap_drop)?,
    };
    let names: Vec<String> = caps.names().into_iter().collect();
    v["process"]["capabilities"] =
        json!({"bounding": names, "effective": names, "permitted": names});
    v["process"]["noNewPrivileges"] = json!(ch09_privileges::no_new_privs(&ch09.security_opt)?);
    if let Some(user) = &ch09.user {
        let (u, g) = user.split_once(':').unwrap_or((user, "0"));
        // A name is the engine's to look up, in the image's /etc/passwd.
        let n = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("--user {user}: config.json takes numeric ids"))
        };
        v["process"]["user"] = json!({"uid": n(u)?, "gid": n(g)?});
    }
    if !ch09.group_add.is_empty() {
        let gids = ch09
            .group_add
            .iter()
            .map(|g| {
                g.parse::<u32>()
                    .map_err(|_| format!("--group-add {g}: config.json takes numeric ids"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        v["process"]["user"]["additionalGids"] = json!(gids);
    }
    let rlimits: Vec<Value> = ch09
        .ulimits
        .iter()
        .map(|u| {
            json!({"type": format!("RLIMIT_{}", u.resource.name.to_ascii_uppercase()),
                   "soft": u.soft, "hard": u.hard})
        })
        .collect();
    v["process"]["rlimits"] = json!(rlimits);
    if ch09.privileged {
        v["linux"]["maskedPaths"] = json!([]);
        v["linux"]["readonlyPaths"] = json!([]);
    }
    // chapter 10: the profile, resolved for these capabilities and this
    // machine, as an engine writes it.
    match ch10_seccomp::oci_profile(&ch10.seccomp, ch09)? {
        Some(profile) => {
            v["linux"]["seccomp"] = serde_json::to_value(profile).map_err(|e| e.to_string())?
        }
        None if matches!(ch10.seccomp, ch10_seccomp::Seccomp::Tiny) => {
            return Err(
                "--tiny-filter: a hand-written filter is no profile config.json can hold".into(),
            )
        }
        None => {}
    }
    // chapter 11
    let userns = match &config.userns {
        UserNs::Host => None,
        UserNs::Joined { .. } => {
            return Err("a user namespace joined by path is no flag of chapter 11's".into())
        }
        UserNs::Default | UserNs::Remap(_) | UserNs::Maps { .. } => Some(config.plan()?),
    };
    if let Some(plan) = userns {
        let maps = |ranges: &[ch08_overlay::ids::IdRange]| -> Value {
            json!(ranges
                .iter()
                .map(|r| json!({"containerID": r.inside, "hostID": r.outside, "size": r.count}))
                .collect::<Vec<_>>())
        };
        v["linux"]["namespaces"]
            .as_array_mut()
            .expect("an array")
            .push(json!({"type": "user"}));
        v["linux"]["uidMappings"] = maps(&plan.owners.uids);
        v["linux"]["gidMappings"] = maps(&plan.owners.gids);
    }
    Ok(v)
}
// ANCHOR_END: to_json

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        opts: ch11_userns::Opts,
    }

    fn config(args: &[&str]) -> ch11_userns::Config {
        use ch01_process::Chapter;
        let mut argv = vec!["spec"];
        argv.extend(args);
        Flags::parse_from(argv).opts.config()
    }

    #[test]
    fn flags_become_the_config_that_reads_back_as_them() {
        let flags = [
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "--hostname",
            "web",
            "--cap-drop",
            "NET_RAW",
            "--cap-add",
            "SYS_PTRACE",
            "--user",
            "1000:1000",
            "--ulimit",
            "nofile=100:200",
            "--security-opt",
            "no-new-privileges",
            "--uidmap",
            "0:100000:65536",
            "-e",
            "A=1",
        ];
        let flags_config = config(&flags);
        let json = to_json(&flags_config, &["sh".into()]).unwrap();
        let back = crate::spec::parse(&json, std::path::Path::new("/b"))
            .unwrap()
            .config
            .prev;
        let (a, b) = (&flags_config, &back);
        let ch07 = |c: &ch11_userns::Config| c.prev.prev.prev.prev.limits.clone();
        assert_eq!(ch07(a).memory, ch07(b).memory);
        assert_eq!(ch07(a).pids, ch07(b).pids);
        assert_eq!(ch07(a).cpu_quota, ch07(b).cpu_quota);
        assert_eq!(
            a.prev.prev.prev.prev.prev.hostname,
            b.prev.prev.prev.prev.prev.hostname
        );
        let caps =
            ch09_privileges::caps::resolve(&a.prev.prev.cap_add, &a.prev.prev.cap_drop).unwrap();
        assert_eq!(b.prev.prev.caps, Some(caps));
        assert_eq!(b.prev.prev.user.as_deref(), Some("1000:1000"));
        assert_eq!(b.prev.prev.ulimits, a.prev.prev.ulimits);
        assert_eq!(b.prev.prev.security_opt, ["no-new-privileges"]);
        assert!(matches!(b.userns, UserNs::Maps { .. }));
        assert!(matches!(b.prev.seccomp, ch10_seccomp::Seccomp::Oci(_)));
        let env = &b.prev.prev.prev.prev.prev.prev.prev.prev.prev.prev.env;
        assert!(env.contains(&("A".to_owned(), "1".to_owned())));
        assert_eq!(json["linux"]["uidMappings"][0]["hostID"], 100000);
    }

    #[test]
    fn flags_of_the_engine_are_refused_with_why() {
        for (flags, says) in [
            (&["--init"][..], "--init"),
            (&["--veth"][..], "--veth"),
            (&["--layer", "/x.tar"][..], "--layer"),
            (&["--user", "nobody"][..], "numeric"),
        ] {
            let e = to_json(&config(flags), &[]).unwrap_err();
            assert!(e.contains(says), "{flags:?}: {e}");
        }
    }
}
