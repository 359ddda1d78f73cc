//! The container's id maps: which host ids its ids are, and who may write
//! them.
//!
//! `/proc/PID/uid_map` takes lines `INSIDE OUTSIDE COUNT`, written once,
//! by a process with `CAP_SETUID` over the parent user namespace, before
//! the child does anything that needs an id. Root may write any map. An
//! ordinary user may write one line only, mapping one id to itself, and
//! for the gid map only after writing `deny` to `/proc/PID/setgroups` (so
//! that the container cannot drop a group that denies access,
//! user_namespaces(7)). For more ids, an ordinary user asks the setuid
//! helpers `newuidmap(1)` and `newgidmap(1)` (Debian's `uidmap` package),
//! which check the ranges against `/etc/subuid` and `/etc/subgid`.

use ch08_overlay::ids::{IdRange, Owners};

/// The kernel takes at most 340 lines per map (since Linux 4.15).
pub const MAX_LINES: usize = 340;

/// How the runtime writes the maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Root: straight into /proc/PID/{uid,gid}_map.
    Direct,
    /// An ordinary user, one id: `deny` into /proc/PID/setgroups first.
    Single,
    /// An ordinary user, ranges: through newuidmap(1) and newgidmap(1).
    Helper,
}

/// What the container's user namespace will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub owners: Owners,
    pub writer: Writer,
}

/// `CONTAINER:HOST:COUNT`, as podman's `--uidmap` spells it.
pub fn parse_range(text: &str) -> Result<IdRange, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [inside, outside, count] = parts[..] else {
        return Err(format!("{text:?}: expected CONTAINER:HOST:COUNT"));
    };
    let num = |s: &str, what: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{text:?}: {what} {s:?} is not a number from 0 to 4294967295"))
    };
    Ok(IdRange {
        inside: num(inside, "CONTAINER")?,
        outside: num(outside, "HOST")?,
        count: num(count, "COUNT")?,
    })
}

/// The ranges of a user (by name, or by uid as a number) in an
/// /etc/subuid or /etc/subgid text: chapter 8's reading of the files, which
/// it needs too (to remove what a rootless container gave its other ids).
pub use ch08_overlay::rootless::subordinate;

/// What the kernel would refuse (and some of what it would take but make
/// no sense): empty or zero-length ranges, ids past 2^32-2 (uid -1 is no
/// id), ranges that overlap inside or outside, too many lines, and a map
/// without the container's root.
pub fn check(ranges: &[IdRange], what: &str) -> Result<(), String> {
    if ranges.is_empty() {
        return Err(format!("the {what} map is empty"));
    }
    if ranges.len() > MAX_LINES {
        return Err(format!(
            "the {what} map has {} lines; the kernel takes at most {MAX_LINES}",
            ranges.len()
        ));
    }
    let end = |start: u32, r: &IdRange| u64::from(start) + u64::from(r.count);
    for (i, r) in ranges.iter().enumerate() {
        if r.count == 0 {
            return Err(format!("{what} map {}: a range of 0 ids", show(r)));
        }
        if end(r.inside, r).max(end(r.outside, r)) > u64::from(u32::MAX) {
            return Err(format!(
                "{what} map {}: past the last id, 4294967294",
                show(r)
            ));
        }
        for o in &ranges[..i] {
            let overlap = |a: u32, b: u32| u64::from(a) < end(b, o) && u64::from(b) < end(a, r);
            if overlap(r.inside, o.inside) {
                return Err(format!(
                    "{what} map: {} and {} overlap in the container",
                    show(o),
                    show(r)
                ));
            }
            if overlap(r.outside, o.outside) {
                return Err(format!(
                    "{what} map: {} and {} overlap on the host",
                    show(o),
                    show(r)
                ));
            }
        }
    }
    if ch08_overlay::ids::to_host(ranges, 0).is_none() {
        return Err(format!(
            "the {what} map does not map {what} 0: the container needs a root"
        ));
    }
    Ok(())
}

/// `0:100000:65536`.
pub fn show(r: &IdRange) -> String {
    format!("{}:{}:{}", r.inside, r.outside, r.count)
}

/// The lines of /proc/PID/uid_map.
pub fn render(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Whether `text`, a uid_map or gid_map as the kernel prints it (three
/// numbers a line, padded with spaces), holds exactly `ranges`, in order.
pub fn same_maps(text: &str, ranges: &[IdRange]) -> bool {
    let lines: Vec<Vec<u32>> = text
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .filter(|l: &Vec<u32>| !l.is_empty())
        .collect();
    lines.len() == ranges.len()
        && lines
            .iter()
            .zip(ranges)
            .all(|(l, r)| l[..] == [r.inside, r.outside, r.count])
}

/// What the caller is: its ids and name, and its /etc/subuid and
/// /etc/subgid (empty if missing).
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub name: String,
    pub subuid: String,
    pub subgid: String,
}

impl Caller {
    pub fn here() -> Caller {
        let uid = nix::unistd::geteuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        Caller {
            uid: uid.as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            name,
            subuid: std::fs::read_to_string("/etc/subuid").unwrap_or_default(),
            subgid: std::fs::read_to_string("/etc/subgid").unwrap_or_default(),
        }
    }

    fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Root's default: 65536 ids, from the first multiple of 65536 (from
/// 100000 on, as useradd(8) hands them out) that no entry of /etc/subuid
/// or /etc/subgid holds: no user's own containers share them. (docker's
/// `--userns-remap default` also writes its choice into those files, for
/// a user `dockremap`; this runtime leaves the host's files alone, so a
/// user added later may get the same range: a dedicated user and
/// `--userns-remap USER` is the lasting setup.)
pub fn default_remap(subuid: &str, subgid: &str) -> IdRange {
    const COUNT: u32 = 65_536;
    let taken: Vec<(u64, u64)> = [subuid, subgid]
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|line| {
            let mut f = line.trim().split(':').skip(1);
            let start: u64 = f.next()?.parse().ok()?;
            let count: u64 = f.next()?.parse().ok()?;
            Some((start, start + count))
        })
        .collect();
    let mut start: u64 = 100_000;
    while taken
        .iter()
        .any(|&(s, e)| start < e && s < start + u64::from(COUNT))
    {
        start += u64::from(COUNT);
    }
    IdRange {
        inside: 0,
        outside: u32::try_from(start).unwrap_or(u32::MAX - COUNT),
        count: COUNT,
    }
}

/// The maps for the flags: `uids`/`gids` given, or `remap` (a user whose
/// subordinate ids to use), or neither (root: [`default_remap`], or
/// root's own subordinate ids; anyone else: their own id as root, plus
/// their subordinate ids as 1... when they have some and newuidmap(1)).
pub fn plan(
    caller: &Caller,
    uids: &[IdRange],
    gids: &[IdRange],
    remap: Option<&str>,
    helpers: bool,
) -> Result<Plan, String> {
    let range = |start: u32, count: u32| IdRange {
        inside: 0,
        outside: start,
        count,
    };
    let plan = if let Some(user) = remap {
        if !caller.is_root() {
            return Err(format!(
                "--userns-remap {user}: only root may map a container to another user's ids \
                 (without it, an ordinary user's container maps their own)"
            ));
        }
        let uid = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map_or(u32::MAX, |u| u.uid.as_raw());
        let (Some(&(us, uc)), Some(&(gs, gc))) = (
            subordinate(&caller.subuid, user, uid).first(),
            subordinate(&caller.subgid, user, uid).first(),
        ) else {
            return Err(format!(
                "--userns-remap {user}: no entry for {user} in /etc/subuid and /etc/subgid \
                 (add one: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user})"
            ));
        };
        Plan {
            owners: Owners {
                uids: vec![range(us, uc)],
                gids: vec![range(gs, gc)],
            },
            writer: Writer::Direct,
        }
    } else if !uids.is_empty() || !gids.is_empty() {
        // podman's rule: a uid map alone serves for the gids too.
        let gids = if gids.is_empty() { uids } else { gids };
        let uids = if uids.is_empty() { gids } else { uids };
        let owners = Owners {
            uids: uids.to_vec(),
            gids: gids.to_vec(),
        };
        let writer = if caller.is_root() {
            Writer::Direct
        } else {
            rootless_writer(caller, &owners, helpers)?
        };
        Plan { owners, writer }
    } else if caller.is_root() {
        let root_range = |text: &str| subordinate(text, "root", 0).first().copied();
        let free = default_remap(&caller.subuid, &caller.subgid);
        let uids = root_range(&caller.subuid).map_or(free, |(s, c)| range(s, c));
        let gids = root_range(&caller.subgid).map_or(free, |(s, c)| range(s, c));
        Plan {
            owners: Owners {
                uids: vec![uids],
                gids: vec![gids],
            },
            writer: Writer::Direct,
        }
    } else {
        let own = |id: u32| IdRange {
            inside: 0,
            outside: id,
            count: 1,
        };
        let sub_u = subordinate(&caller.subuid, &caller.name, caller.uid);
        let sub_g = subordinate(&caller.subgid, &caller.name, caller.uid);
        match (sub_u.first(), sub_g.first(), helpers) {
            (Some(&(us, uc)), Some(&(gs, gc)), true) => Plan {
                owners: Owners {
                    uids: vec![
                        own(caller.uid),
                        IdRange {
                            inside: 1,
                            outside: us,
                            count: uc,
                        },
                    ],
                    gids: vec![
                        own(caller.gid),
                        IdRange {
                            inside: 1,
                            outside: gs,
                            count: gc,
                        },
                    ],
                },
                writer: Writer::Helper,
            },
            _ => Plan {
                owners: Owners {
                    uids: vec![own(caller.uid)],
                    gids: vec![own(caller.gid)],
                },
                writer: Writer::Single,
            },
        }
    };
    check(&plan.owners.uids, "uid")?;
    check(&plan.owners.gids, "gid")?;
    Ok(plan)
}

/// An ordinary user's maps: their own id alone is theirs to write; any
/// other host id must be in their subordinate ranges, and takes the helpers.
fn rootless_writer(caller: &Caller, owners: &Owners, helpers: bool) -> Result<Writer, String> {
    let own_only =
        |ranges: &[IdRange], id: u32| matches!(ranges, [r] if r.outside == id && r.count == 1);
    if own_only(&owners.uids, caller.uid) && own_only(&owners.gids, caller.gid) {
        return Ok(Writer::Single);
    }
    for (ranges, sub, own, what, file) in [
        (
            &owners.uids,
            &caller.subuid,
            caller.uid,
            "uid",
            "/etc/subuid",
        ),
        (
            &owners.gids,
            &caller.subgid,
            caller.gid,
            "gid",
            "/etc/subgid",
        ),
    ] {
        let allowed = subordinate(sub, &caller.name, caller.uid);
        for r in ranges.iter() {
            let inside = |&(s, c): &(u32, u32)| {
                r.outside >= s
                    && u64::from(r.outside) + u64::from(r.count) <= u64::from(s) + u64::from(c)
            };
            let mine = r.outside == own && r.count == 1;
            if !mine && !allowed.iter().any(inside) {
                let have = match allowed.as_slice() {
                    [] => format!("{} has no entry in {file}", caller.name),
                    list => format!(
                        "{file} gives {} {}",
                        caller.name,
                        list.iter()
                            .map(|(s, c)| format!("{s}-{}", u64::from(*s) + u64::from(*c) - 1))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(format!(
                    "{what} map {}: host {what}s {}-{} are not yours to map ({have})",
                    show(r),
                    r.outside,
                    u64::from(r.outside) + u64::from(r.count) - 1
                ));
            }
        }
    }
    if !helpers {
        return Err(
            "a map of more than your own id needs newuidmap(1) and newgidmap(1): \
                    install Debian's uidmap package"
                .to_string(),
        );
    }
    Ok(Writer::Helper)
}

/// The settings that keep an ordinary user from making a user namespace,
/// as `(file, value)` read from /proc/sys (a missing file is None).
pub struct Sysctls {
    pub max_user_namespaces: Option<String>,
    /// Debian's and Ubuntu's older kernels (before Debian 11).
    pub unprivileged_userns_clone: Option<String>,
    /// Ubuntu 23.10 on: AppArmor decides, per program.
    pub apparmor_restrict: Option<String>,
}

impl Sysctls {
    pub fn here() -> Sysctls {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        Sysctls {
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        }
    }
}

/// Why an ordinary user could not make a user namespace here, if a
/// setting says so: a line that names the setting, said before clone(2)
/// would answer a bare EPERM (or ENOSPC).
pub fn forbidden(s: &Sysctls) -> Option<String> {
    if s.max_user_namespaces.as_deref() == Some("0") {
        return Some(
            "user namespaces are turned off: user.max_user_namespaces is 0 \
             (sysctl -w user.max_user_namespaces=15000, as root)"
                .into(),
        );
    }
    if s.unprivileged_userns_clone.as_deref() == Some("0") {
        return Some(
            "this kernel lets only root make user namespaces: \
             kernel.unprivileged_userns_clone is 0 \
             (sysctl -w kernel.unprivileged_userns_clone=1, as root)"
                .into(),
        );
    }
    if s.apparmor_restrict.as_deref() == Some("1") {
        return Some(
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns is 1): give this binary an AppArmor \
             profile with `userns,`, or set it to 0 (as root)"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_as_the_kernel_prints_them_compare() {
        let text = "         0     100000      65536\n     65536       1000          1\n";
        assert!(same_maps(text, &[r(0, 100000, 65536), r(65536, 1000, 1)]));
        assert!(!same_maps(text, &[r(0, 100000, 65536)]));
        assert!(!same_maps(text, &[r(65536, 1000, 1), r(0, 100000, 65536)]));
        assert!(!same_maps("", &[r(0, 0, 1)]));
        assert!(same_maps("", &[]));
    }

    fn r(inside: u32, outside: u32, count: u32) -> IdRange {
        IdRange {
            inside,
            outside,
            count,
        }
    }

    fn caller(uid: u32) -> Caller {
        Caller {
            uid,
            gid: uid,
            name: if uid == 0 {
                "root".into()
            } else {
                "ann".into()
            },
            subuid: "bob:200000:65536\nann:100000:65536\n".into(),
            subgid: "bob:200000:65536\n1000:100000:65536\n".into(),
        }
    }

    #[test]
    fn ranges_parse_as_podman_spells_them() {
        assert_eq!(parse_range("0:100000:65536"), Ok(r(0, 100_000, 65_536)));
        assert!(parse_range("0:100000")
            .unwrap_err()
            .contains("CONTAINER:HOST:COUNT"));
        assert!(parse_range("0:-1:1").unwrap_err().contains("HOST \"-1\""));
        assert!(parse_range("0:1:99999999999")
            .unwrap_err()
            .contains("COUNT"));
    }

    #[test]
    fn maps_the_kernel_would_refuse_are_refused() {
        assert!(check(&[], "uid").unwrap_err().contains("empty"));
        assert!(check(&[r(0, 1, 0)], "uid").unwrap_err().contains("0 ids"));
        assert!(check(&[r(0, u32::MAX, 1)], "uid")
            .unwrap_err()
            .contains("past the last id"));
        let both = [r(0, 100_000, 10), r(5, 200_000, 10)];
        assert!(check(&both, "uid")
            .unwrap_err()
            .contains("overlap in the container"));
        let host = [r(0, 100_000, 10), r(10, 100_005, 10)];
        assert!(check(&host, "gid")
            .unwrap_err()
            .contains("overlap on the host"));
        assert!(check(&[r(1, 100_000, 10)], "uid")
            .unwrap_err()
            .contains("does not map uid 0"));
        assert!(check(&vec![r(0, 0, 1); 341], "uid")
            .unwrap_err()
            .contains("340"));
        assert_eq!(
            check(&[r(0, 1000, 1), r(1, 100_000, 65_536)], "uid"),
            Ok(())
        );
    }

    #[test]
    fn subordinate_ids_by_name_or_number() {
        let text = "# c\nann:100000:65536\nbad line\n1000:300000:10\nann:0:0\n";
        assert_eq!(
            subordinate(text, "ann", 1000),
            [(100_000, 65_536), (300_000, 10)]
        );
        assert_eq!(subordinate(text, "bob", 1001), []);
    }

    #[test]
    fn root_remaps_by_default_and_users_map_themselves() {
        // 100000.. and 200000.. are ann's and bob's: the first block of
        // 65536 that overlaps neither starts at 100000 + 3 × 65536.
        let root = plan(&caller(0), &[], &[], None, true).unwrap();
        assert_eq!(root.owners.uids, [r(0, 296_608, 65_536)]);
        assert_eq!(default_remap("", ""), r(0, 100_000, 65_536));
        assert_eq!(root.writer, Writer::Direct);
        let bob = plan(&caller(0), &[], &[], Some("bob"), true).unwrap();
        assert_eq!(bob.owners.uids, [r(0, 200_000, 65_536)]);
        assert!(plan(&caller(0), &[], &[], Some("eve"), true)
            .unwrap_err()
            .contains("no entry for eve"));
        let ann = plan(&caller(1000), &[], &[], None, true).unwrap();
        assert_eq!(ann.owners.uids, [r(0, 1000, 1), r(1, 100_000, 65_536)]);
        assert_eq!(ann.owners.gids, [r(0, 1000, 1), r(1, 100_000, 65_536)]);
        assert_eq!(ann.writer, Writer::Helper);
        let alone = plan(&caller(1000), &[], &[], None, false).unwrap();
        assert_eq!(alone.owners.uids, [r(0, 1000, 1)]);
        assert_eq!(alone.writer, Writer::Single);
    }

    #[test]
    fn a_users_maps_stay_within_their_ranges() {
        let ann = caller(1000);
        let own = plan(&ann, &[r(0, 1000, 1)], &[], None, false).unwrap();
        assert_eq!(own.writer, Writer::Single);
        let sub = [r(0, 1000, 1), r(1, 100_000, 1000)];
        assert_eq!(
            plan(&ann, &sub, &[], None, true).unwrap().writer,
            Writer::Helper
        );
        let err = plan(&ann, &[r(0, 200_000, 10)], &[], None, true).unwrap_err();
        assert!(
            err.contains("host uids 200000-200009 are not yours"),
            "{err}"
        );
        assert!(err.contains("gives ann 100000-165535"), "{err}");
        let nohelper = plan(&ann, &sub, &[], None, false).unwrap_err();
        assert!(nohelper.contains("uidmap package"), "{nohelper}");
        let mut none = caller(1000);
        none.subuid.clear();
        let err = plan(&none, &sub, &[], None, true).unwrap_err();
        assert!(err.contains("ann has no entry in /etc/subuid"), "{err}");
        assert!(plan(&ann, &[], &[], Some("bob"), true)
            .unwrap_err()
            .contains("only root"));
    }

    #[test]
    fn maps_render_as_the_kernel_reads_them() {
        assert_eq!(
            render(&[r(0, 1000, 1), r(1, 100_000, 5)]),
            "0 1000 1\n1 100000 5\n"
        );
    }

    #[test]
    fn settings_that_forbid_user_namespaces_are_named() {
        let none = || Sysctls {
            max_user_namespaces: Some("15000".into()),
            unprivileged_userns_clone: None,
            apparmor_restrict: None,
        };
        assert_eq!(forbidden(&none()), None);
        let off = Sysctls {
            max_user_namespaces: Some("0".into()),
            ..none()
        };
        assert!(forbidden(&off)
            .unwrap()
            .contains("user.max_user_namespaces is 0"));
        let debian = Sysctls {
            unprivileged_userns_clone: Some("0".into()),
            ..none()
        };
        assert!(forbidden(&debian)
            .unwrap()
            .contains("kernel.unprivileged_userns_clone"));
        let ubuntu = Sysctls {
            apparmor_restrict: Some("1".into()),
            ..none()
        };
        assert!(forbidden(&ubuntu).unwrap().contains("AppArmor"));
        let open = Sysctls {
            apparmor_restrict: Some("0".into()),
            ..none()
        };
        assert_eq!(forbidden(&open), None);
    }
}
