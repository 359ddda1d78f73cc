use super::*;
use nix::sched::CloneFlags;
use serde_json::json;

fn minimal() -> Value {
    let mut v = crate::cli::default_spec();
    v["root"]["readonly"] = json!(false);
    v
}

#[test]
fn the_default_spec_is_read_whole() {
    let b = parse(&minimal(), Path::new("/b")).unwrap();
    assert_eq!(b.command, vec![OsString::from("sh")]);
    let c = &b.config.prev;
    let ch05 = &c.prev.prev.prev.prev.prev.prev;
    assert_eq!(ch05.rootfs.as_deref(), Some(Path::new("/b/rootfs")));
    // /proc, /dev, /dev/pts, /dev/mqueue, /sys and /sys/fs/cgroup are
    // chapter 5's and 7's own; /dev/shm goes on top, as the config says.
    let extra: Vec<_> = ch05.mounts.iter().map(|m| m.destination.clone()).collect();
    assert_eq!(extra, [PathBuf::from("/dev/shm")]);
    assert!(ch05.mounts[0].flags.contains(MsFlags::MS_NOEXEC));
    assert!(matches!(c.userns, UserNs::Host));
    assert_eq!(c.prev.prev.caps, Some(caps::CapSet::docker_default()));
}

#[test]
fn unknown_fields_are_named() {
    let mut v = minimal();
    v["linux"]["intelRdt"] = json!({"closID": "x"});
    assert!(parse(&v, Path::new("/b"))
        .unwrap_err()
        .starts_with("linux.intelRdt "));
    let mut v = minimal();
    v["process"]["apparmorProfile"] = json!("docker-default");
    assert!(parse(&v, Path::new("/b"))
        .unwrap_err()
        .starts_with("process.apparmorProfile "));
    // Empty is absent.
    let mut v = minimal();
    v["process"]["apparmorProfile"] = json!("");
    v["linux"]["mountLabel"] = json!(null);
    assert!(parse(&v, Path::new("/b")).is_ok());
    let mut v = minimal();
    v["mounts"][0]["uidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 1}]);
    assert!(parse(&v, Path::new("/b"))
        .unwrap_err()
        .starts_with("mounts[].uidMappings "));
}

#[test]
fn missing_namespaces_are_refused_and_paths_joined() {
    let mut v = minimal();
    v["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}]);
    assert!(parse(&v, Path::new("/b"))
        .unwrap_err()
        .contains("no network namespace"));
    let mut v = minimal();
    v["linux"]["namespaces"][1] = json!({"type": "network", "path": "/run/netns/x"});
    let b = parse(&v, Path::new("/b")).unwrap();
    assert_eq!(
        b.config.joins,
        [(CloneFlags::CLONE_NEWNET, PathBuf::from("/run/netns/x"))]
    );
    v["linux"]["namespaces"][1] = json!({"type": "mount", "path": "/proc/1/ns/mnt"});
    assert!(parse(&v, Path::new("/b"))
        .unwrap_err()
        .contains("/proc/1/ns/mnt"));
}

#[test]
fn mount_options_split_into_flags_and_data() {
    let o = |v: &[&str]| options_of(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let got = o(&[
        "nosuid", "ro", "mode=755", "size=1m", "rw", "rbind", "rslave",
    ])
    .unwrap();
    assert_eq!(got.flags, MsFlags::MS_NOSUID);
    assert_eq!(got.bind, Some(true));
    assert_eq!(got.propagation, Some(MsFlags::MS_SLAVE | MsFlags::MS_REC));
    assert_eq!(got.data, ["mode=755", "size=1m"]);
    assert!(o(&["z"]).unwrap_err().contains("\"z\""));
    assert!(o(&["newinstance"]).is_ok());
}

#[test]
fn binds_and_tmpfs_become_chapter_5_mounts() {
    let mut v = minimal();
    v["mounts"] = json!([
        {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]},
    ]);
    let b = parse(&v, Path::new("/b")).unwrap();
    let m = &b.config.prev.prev.prev.prev.prev.prev.prev.mounts;
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0].what,
        What::Bind {
            source: "/srv".into(),
            recursive: true
        }
    );
    assert_eq!(m[0].flags, MsFlags::MS_RDONLY);
    assert_eq!(m[1].data, "mode=1777");
    v["mounts"][0]["source"] = json!("");
    assert!(parse(&v, Path::new("/b"))
        .unwrap_err()
        .contains("has no source"));
}

#[test]
fn capabilities_are_one_set() {
    let mut v = minimal();
    v["process"]["capabilities"]["effective"] = json!(["CAP_KILL"]);
    assert!(parse(&v, Path::new("/b"))
        .unwrap_err()
        .contains("effective differs"));
    let mut v = minimal();
    v["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
    assert!(
        parse(&v, Path::new("/b")).is_ok(),
        "root's ambient within bounding"
    );
    v["process"]["user"]["uid"] = json!(1000);
    assert!(parse(&v, Path::new("/b")).is_err());
    let mut v = minimal();
    v["process"]["capabilities"]["bounding"] = json!(["CAP_NOPE"]);
    assert!(parse(&v, Path::new("/b")).unwrap_err().contains("CAP_NOPE"));
}

#[test]
fn cgroups_paths() {
    assert_eq!(
        cgroups_path("/libpod_parent/libpod-abc").unwrap(),
        (
            Some(PathBuf::from("libpod_parent")),
            "libpod-abc".to_owned()
        )
    );
    assert_eq!(cgroups_path("/x").unwrap(), (None, "x".to_owned()));
    assert!(cgroups_path("machine.slice:libpod:abc")
        .unwrap_err()
        .contains("systemd"));
    assert!(cgroups_path("/a/../b").is_err());
}

#[test]
fn sysctls_of_the_containers_namespaces_only() {
    let ns: BTreeMap<String, ()> = [("network".to_owned(), ()), ("ipc".to_owned(), ())].into();
    assert!(crate::sysctl_check("net.ipv4.ping_group_range", "0 0", &ns).is_ok());
    assert!(crate::sysctl_check("kernel.shmmax", "1", &ns).is_ok());
    assert!(crate::sysctl_check("kernel.panic", "1", &ns).is_err());
    assert!(crate::sysctl_check("net/../../kernel/panic", "1", &ns).is_err());
    let none = BTreeMap::new();
    assert!(crate::sysctl_check("net.core.somaxconn", "1", &none).is_err());
}

#[test]
fn signals_by_name_or_number() {
    use crate::cli::parse_signal;
    assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
    assert_eq!(parse_signal("sigkill"), Ok(Signal::SIGKILL));
    assert_eq!(parse_signal("9"), Ok(Signal::SIGKILL));
    assert!(parse_signal("SIGNOPE").is_err());
    assert!(parse_signal("99").is_err());
}

/// podman's `--device /dev/fuse`: the node (its fileMode with the type
/// bits, as podman writes it) and an allow rule for exactly that node.
fn with_fuse(rule: Option<Value>) -> Value {
    let mut v = minimal();
    v["linux"]["devices"] = json!([{
        "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
        "fileMode": 8630, "uid": 0, "gid": 0
    }]);
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    rules.extend(rule);
    v["linux"]["resources"]["devices"] = json!(rules);
    v
}

#[test]
fn devices_are_made_with_the_access_their_rules_give() {
    let rule = json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"});
    let b = parse(&with_fuse(Some(rule)), Path::new("/b")).unwrap();
    let ch09 = &b.config.prev.prev.prev;
    assert_eq!(ch09.devices.len(), 1);
    let d = &ch09.devices[0];
    assert_eq!(d.container, Path::new("/dev/fuse"));
    assert_eq!((d.kind.letter(), d.major, d.minor), ('c', 10, 229));
    assert_eq!(d.mode, 0o666);
    assert_eq!(d.access.letters(), "rw");
}

#[test]
fn devices_no_rule_allows_are_refused() {
    let e = parse(&with_fuse(None), Path::new("/b")).unwrap_err();
    assert!(
        e.contains("linux.devices[0]: /dev/fuse (c 10:229): no linux"),
        "{e}"
    );
    // A rule for a node that is neither standard nor listed.
    let mut v = with_fuse(Some(
        json!({"allow": true, "type": "c", "major": 10, "minor": 229}),
    ));
    v["linux"]["resources"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rw"}));
    let e = parse(&v, Path::new("/b")).unwrap_err();
    assert!(e.contains("allowing b 8:0 rw is not supported"), "{e}");
}

#[test]
fn devices_of_other_kinds_or_outside_dev_are_refused() {
    let rule = json!({"allow": true, "type": "c", "major": 10, "minor": 229});
    let mut v = with_fuse(Some(rule.clone()));
    v["linux"]["devices"][0]["type"] = json!("p");
    let e = parse(&v, Path::new("/b")).unwrap_err();
    assert!(e.contains("type \"p\""), "{e}");
    let mut v = with_fuse(Some(rule.clone()));
    v["linux"]["devices"][0]["path"] = json!("/dev/../etc/fuse");
    let e = parse(&v, Path::new("/b")).unwrap_err();
    assert!(e.contains("not a path under /dev"), "{e}");
    let mut v = with_fuse(Some(rule));
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let e = parse(&v, Path::new("/b")).unwrap_err();
    assert!(e.contains("linux.devices in a user namespace"), "{e}");
}
