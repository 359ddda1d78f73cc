//! Chapter 3's network for a runtime that is not root (chapter 11):
//! `--veth` is refused, `--network slirp4netns` connects the container
//! through slirp4netns(1) on the host, running as the caller.
//!
//! The caller is the test user `sbtry` if the machine has one, else
//! nobody (65534). slirp4netns opens /dev/net/tun as the caller, which
//! needs the device's usual mode, 0666 (udev's); on a host whose devtmpfs
//! left it 0600, each run gets a mount namespace of its own in which a
//! node of the test's (on a tmpfs, mode 0666 or 0600) is bound over
//! /dev/net/tun: the host's is left as it is.

mod common;

use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// The test user: `sbtry`'s uid and gid, or nobody's.
fn user() -> (u32, u32) {
    match nix::unistd::User::from_name("sbtry") {
        Ok(Some(u)) => (u.uid.as_raw(), u.gid.as_raw()),
        _ => (65534, 65534),
    }
}

/// `ch11-userns ARGS` as the test user, in a mount namespace of its own
/// where /dev/net/tun has mode `tun_mode`; with the container id `id`.
fn as_user(id: &str, tun_mode: u32, args: &[&str]) -> Output {
    // The user may not reach the checkout (under /root, mode 0700, for a
    // root user who cloned it there): a copy in /tmp.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("ch11-userns");
    std::fs::copy(common::bin_dir().join("ch11-userns"), &bin).unwrap();
    // The rootfs too, for the same reason: `--rootfs ROOTFS` is given the copy.
    let rootfs = dir.path().join("rootfs");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(common::rootfs())
        .arg(&rootfs)
        .status()
        .is_ok_and(|s| s.success());
    assert!(copied, "cp -a {}", common::rootfs().display());
    let original = common::rootfs().to_string_lossy().into_owned();
    let args: Vec<String> = args
        .iter()
        .map(|a| match *a == original {
            true => rootfs.to_string_lossy().into_owned(),
            false => a.to_string(),
        })
        .collect();
    let (uid, gid) = user();
    let script = r#"dir=$1 mode=$2 uid=$3 gid=$4; shift 4
mkdir "$dir/dev" && mount -t tmpfs -o mode=755 tmpfs "$dir/dev" &&
mknod -m "$mode" "$dir/dev/tun" c 10 200 && mount --bind "$dir/dev/tun" /dev/net/tun &&
exec setpriv --reuid "$uid" --regid "$gid" --clear-groups "$@""#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(dir.path())
        .args([format!("{tun_mode:o}"), uid.to_string(), gid.to_string()])
        .arg(&bin)
        .args(args)
        .env("STEPBOX_CONTAINER_ID", id)
        .current_dir("/")
        .output()
        .expect("running unshare(1)");
    drop(dir);
    out
}

/// An address of this host's other than loopback: the one it would send
/// from to the outside (no packet is sent).
fn host_address() -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    match socket.local_addr().ok()?.ip() {
        std::net::IpAddr::V4(a) if !a.is_loopback() && !a.is_unspecified() => Some(a),
        _ => None,
    }
}

fn needs() -> bool {
    if !common::root() {
        return false;
    }
    for tool in [
        "/usr/bin/slirp4netns",
        "/usr/bin/setpriv",
        "/usr/bin/unshare",
    ] {
        if !Path::new(tool).exists() {
            return common::skip(&format!("no {tool} (Debian: slirp4netns, util-linux)"));
        }
    }
    true
}

#[test]
fn rootless_veth_is_refused() {
    if !needs() {
        return;
    }
    let r = common::rootfs().to_str().unwrap();
    let out = as_user(
        &common::unique_id(),
        0o666,
        &["--rootfs", r, "--veth", "--", "/bin/true"],
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ch11-userns: --veth needs root: a veth pair has an end on the host, and only root may \
         make an interface there; without root, a network stack in user space connects a \
         container instead (slirp4netns, or pasta): use --network slirp4netns\n"
    );
}

#[test]
fn rootless_slirp4netns_needs_the_tun_device() {
    if !needs() {
        return;
    }
    let r = common::rootfs().to_str().unwrap();
    let args = ["--rootfs", r, "--network", "slirp4netns", "--", "/bin/true"];
    let out = as_user(&common::unique_id(), 0o600, &args);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ch11-userns: --network slirp4netns: slirp4netns opens /dev/net/tun as you, and you may \
         not (its mode is 0600; it is usually 0666, as udev makes it)\n"
    );
}

/// The container has tap0, reaches slirp's gateway and a TCP port on the
/// host's address, but not the host's loopback; slirp4netns is gone
/// afterwards.
#[test]
fn rootless_slirp4netns_reaches_the_host() {
    if !needs() {
        return;
    }
    let Some(host) = host_address() else {
        common::skip("this host has no address other than loopback");
        return;
    };
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (conn, from) = listener.accept().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(&conn).read_line(&mut line).unwrap();
        writeln!(&conn, "the host got {:?}", line.trim()).unwrap();
        from
    });
    let r = common::rootfs().to_str().unwrap();
    let script = format!(
        "probe net | grep tap0; ping -c1 -W5 10.0.2.2 | grep received; \
         echo hello | busybox nc {host} {port}; \
         busybox nc 10.0.2.2 {port} </dev/null; echo loopback: $?"
    );
    let args = [
        "-v",
        "--rootfs",
        r,
        "--network",
        "slirp4netns",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ];
    let out = as_user(&common::unique_id(), 0o666, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        "  tap0 up 10.0.2.100/24\n\
         1 packets transmitted, 1 packets received, 0% packet loss\n\
         the host got \"hello\"\n\
         loopback: 1\n",
        "{stderr}"
    );
    // libslirp answers with an ICMP "network unreachable".
    assert!(
        stderr.contains("nc: can't connect to remote host (10.0.2.2): Network is unreachable"),
        "{stderr}"
    );
    // slirp4netns connects from the host, as the caller.
    let from = server.join().unwrap();
    assert_eq!(from.ip(), std::net::IpAddr::V4(host));
    // Stopped and reaped by the runtime's cleanup.
    let pid = regex::Regex::new(r"wait\(2\) for pid ([0-9]+)")
        .unwrap()
        .captures(&stderr)
        .unwrap_or_else(|| panic!("no slirp4netns pid in:\n{stderr}"))[1]
        .to_string();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_ne!(comm.trim(), "slirp4netns", "slirp4netns {pid} still runs");
}
