//! The container's user: `--user UID[:GID]` or `NAME[:GROUP]`, and its
//! groups.
//!
//! The rules are docker's, which runc's `libcontainer/user` package
//! implements (`GetExecUser`, `GetAdditionalGroups`; moby's daemon calls
//! them in `getUser`, daemon/oci_linux.go):
//!
//! - A number is always an id, never a name, even if /etc/passwd has a user
//!   called `1000`. It need not be in /etc/passwd; if it is, the first entry
//!   with that uid gives the primary group, the home and the name the
//!   supplementary groups are found by. If not, the primary group is 0 and
//!   the home `/` (the defaults of runc's `setupUser`).
//! - A name must be in /etc/passwd; the first entry with it wins, as with
//!   getpwnam(3).
//! - An explicit GROUP (name from /etc/group, or number) replaces the primary
//!   group, and then, as in runc, the user's memberships in /etc/group are
//!   not looked up ("supplementary group ids only make sense if in the
//!   implicit form").
//! - Without GROUP, the supplementary groups are every group whose member
//!   list names the user, if the user has a passwd entry.
//! - `--group-add` adds groups by name (which must exist) or number.
//! - The primary gid comes first in the supplementary list: moby does so
//!   since CVE-2022-36109. A process that is not in its own primary group's
//!   list can leave that group (a setgid program, newgrp) and so escape a
//!   file's deny-the-group permissions (mode 0705).
//!
//! Where we differ from runc, we are stricter: `a:b:c` is refused (runc
//! ignores `:c`); an empty part is refused (runc takes the current user);
//! ids go up to 4294967294, as the kernel's (runc stops at 2^31-1, for
//! 32-bit Go ints; 4294967295 is `(uid_t)-1`, which setresuid(2) reads as
//! "unchanged"); a line of /etc/passwd or /etc/group with a field that is
//! not a number where one belongs is skipped (runc reads it as 0, i.e.
//! root), as are lines with the wrong number of fields, NUL bytes, or more
//! than [`MAX_LINE`] bytes; the supplementary list has no duplicates.

use ch01_process::{Context, Ctx, Result};

/// `--user` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
}

/// The ids the command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// From /etc/passwd, for `HOME`; `/` if the user has no entry.
    pub home: String,
}

/// The largest id: 4294967295 is `(uid_t)-1`, "leave unchanged" to
/// setresuid(2) and friends.
pub const MAX_ID: u32 = u32::MAX - 1;
/// A longer line of /etc/passwd or /etc/group is skipped, not read.
pub const MAX_LINE: usize = 64 * 1024;
/// LOGIN_NAME_MAX, for a name given to `--user` or found in the files.
const MAX_NAME: usize = 256;
/// PATH_MAX, for a home directory.
const MAX_HOME: usize = 4096;
/// The kernel's NGROUPS_MAX: setgroups(2) refuses a longer list.
pub const MAX_GROUPS: usize = 65536;

/// `UID`, `UID:GID`, `NAME`, `NAME:GROUP`, `UID:GROUP`, `NAME:GID`. Each part
/// is a number (0 to [`MAX_ID`]) or a name of letters, digits, `_`, `-`,
/// `.`, not starting with `-`.
pub fn parse(spec: &str) -> std::result::Result<UserSpec, String> {
    let mut parts = spec.split(':');
    let user = parts.next().unwrap_or_default();
    let group = parts.next();
    if parts.next().is_some() {
        return Err(format!("--user {spec:?}: expected USER[:GROUP]"));
    }
    part("--user", spec, "user", user)?;
    if let Some(group) = group {
        part("--user", spec, "group", group)?;
    }
    Ok(UserSpec {
        user: user.to_owned(),
        group: group.map(str::to_owned),
    })
}

/// A part of `--user` or a `--group-add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Id(u32),
    Name(&'a str),
}

/// `what` (`user`, `group`) of `flag`'s value `spec`, checked.
fn part<'a>(
    flag: &str,
    spec: &str,
    what: &str,
    text: &'a str,
) -> std::result::Result<Part<'a>, String> {
    if text.is_empty() {
        return Err(format!("{flag} {spec:?}: empty {what}"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u64>() {
            Ok(n) if n <= u64::from(MAX_ID) => Ok(Part::Id(n as u32)),
            _ => Err(format!(
                "{flag} {spec:?}: {what} {text} is out of range (0 to {MAX_ID})"
            )),
        };
    }
    if let Some(digits) = text.strip_prefix('-') {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{flag} {spec:?}: {what} {text} is negative (ids are 0 to {MAX_ID})"
            ));
        }
    }
    let sane = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    if text.starts_with('-') || text.len() > MAX_NAME || !text.bytes().all(sane) {
        return Err(format!(
            "{flag} {spec:?}: {what} {text:?} is not a name (letters, digits, _ - . \
             and not starting with -, at most {MAX_NAME} bytes) or a number"
        ));
    }
    Ok(Part::Name(text))
}

/// The ids of `spec`, from the text of the rootfs's /etc/passwd and /etc/group
/// (see the module's comment for the rules).
pub fn resolve(
    spec: &UserSpec,
    group_add: &[String],
    passwd: &str,
    group: &str,
) -> std::result::Result<Ids, String> {
    // Checked again: a UserSpec may be made without parse().
    let user = part("--user", &spec.user, "user", &spec.user)?;
    let explicit = match &spec.group {
        Some(g) => Some(part("--user", g, "group", g)?),
        None => None,
    };
    let users = parse_passwd(passwd);
    let groups = parse_group(group);
    let entry = match user {
        Part::Id(uid) => users.iter().find(|u| u.uid == uid),
        Part::Name(name) => users.iter().find(|u| u.name == name),
    };
    let (uid, mut gid, home) = match (entry, user) {
        (Some(u), _) => (u.uid, u.gid, u.home.to_owned()),
        (None, Part::Id(uid)) => (uid, 0, "/".to_owned()),
        (None, Part::Name(name)) => {
            return Err(format!(
                "--user {name:?}: no such user in the rootfs's /etc/passwd"
            ))
        }
    };
    match explicit {
        Some(Part::Id(g)) => gid = g,
        Some(Part::Name(name)) => {
            gid = groups
                .iter()
                .find(|g| g.name == name)
                .ok_or_else(|| {
                    format!(
                        "--user {:?}: no such group {name:?} in the rootfs's /etc/group",
                        spec_text(spec)
                    )
                })?
                .gid
        }
        None => {}
    }
    let mut list = GroupList::new(gid);
    if let (None, Some(u)) = (explicit, entry) {
        for g in groups.iter().filter(|g| g.members.contains(&u.name)) {
            list.push(g.gid)?;
        }
    }
    for g in group_add {
        list.push(additional(g, &groups)?)?;
    }
    Ok(Ids {
        uid,
        gid,
        groups: list.gids,
        home,
    })
}

fn spec_text(spec: &UserSpec) -> String {
    match &spec.group {
        Some(g) => format!("{}:{g}", spec.user),
        None => spec.user.clone(),
    }
}

/// One `--group-add`: a number as it is, a name from /etc/group (first
/// entry wins), as runc's `GetAdditionalGroups` (there, a name that does
/// not exist is an error too).
fn additional(g: &str, groups: &[GroupEntry]) -> std::result::Result<u32, String> {
    match part("--group-add", g, "group", g)? {
        Part::Id(gid) => Ok(gid),
        Part::Name(name) => groups
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.gid)
            .ok_or_else(|| {
                format!("--group-add {name:?}: no such group in the rootfs's /etc/group")
            }),
    }
}

/// The supplementary list: the primary gid first, then each group once, in
/// the order found, at most [`MAX_GROUPS`].
struct GroupList {
    gids: Vec<u32>,
    seen: std::collections::HashSet<u32>,
}

impl GroupList {
    fn new(primary: u32) -> GroupList {
        GroupList {
            gids: vec![primary],
            seen: [primary].into(),
        }
    }

    fn push(&mut self, gid: u32) -> std::result::Result<(), String> {
        if self.seen.insert(gid) {
            if self.gids.len() == MAX_GROUPS {
                return Err(format!(
                    "the container's user would be in more than {MAX_GROUPS} groups, \
                     the kernel's NGROUPS_MAX"
                ));
            }
            self.gids.push(gid);
        }
        Ok(())
    }
}

/// One line of /etc/passwd: `name:password:uid:gid:gecos:home:shell`.
#[derive(Debug)]
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// One line of /etc/group: `name:password:gid:member,member`.
#[derive(Debug)]
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// The lines worth reading: as runc (and glibc), surrounding white space is
/// trimmed and blank lines and `#` comments skipped; lines that are too
/// long or hold a NUL byte are skipped.
fn lines(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.split('\n')
        .filter(|l| l.len() <= MAX_LINE && !l.contains('\0'))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// An id field: decimal, 0 to [`MAX_ID`]; anything else makes the line
/// malformed.
fn id(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse::<u32>().ok().filter(|n| *n <= MAX_ID)
}

fn name(field: &str) -> Option<&str> {
    Some(field).filter(|n| !n.is_empty() && n.len() <= MAX_NAME)
}

/// The well-formed entries of /etc/passwd, in the file's order.
fn parse_passwd(text: &str) -> Vec<PasswdEntry<'_>> {
    lines(text)
        .filter_map(|f| match f[..] {
            [n, _, uid, gid, _, home, _] if home.len() <= MAX_HOME => Some(PasswdEntry {
                name: name(n)?,
                uid: id(uid)?,
                gid: id(gid)?,
                home: if home.is_empty() { "/" } else { home },
            }),
            _ => None,
        })
        .collect()
}

/// The well-formed entries of /etc/group, in the file's order.
fn parse_group(text: &str) -> Vec<GroupEntry<'_>> {
    lines(text)
        .filter_map(|f| match f[..] {
            [n, _, gid, members] => Some(GroupEntry {
                name: name(n)?,
                gid: id(gid)?,
                members: members.split(',').filter(|m| !m.is_empty()).collect(),
            }),
            _ => None,
        })
        .collect()
}

// ANCHOR: switch
/// setgroups(2), setresgid(2), setresuid(2), in that order, as runc's
/// `setupUser`. The order is forced: once the uid is not 0, the process
/// can no longer change its groups or its gid (setuid(2) away from 0 clears
/// the effective capabilities, CAP_SETGID with them, even under
/// PR_SET_KEEPCAPS), so the uid goes last; setgroups(2) comes first because
/// setresgid(2) leaves the supplementary list alone: without it the
/// runtime's own groups (root's) would stay. The `res` calls set the saved
/// ids too, so that the command cannot switch back to 0 with setuid(2).
pub fn switch(ctx: &Ctx, ids: &Ids) -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let groups: Vec<Gid> = ids.groups.iter().copied().map(Gid::from_raw).collect();
    // In a user namespace whose gid map an ordinary user wrote (chapter
    // 11), setgroups(2) is off for good: the process keeps the groups it
    // had, which the namespace does not map (they show as 65534).
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if denied {
        ctx.say(format_args!(
            "setgroups(2) {:?}: not allowed in this user namespace, skipped",
            ids.groups
        ));
    } else {
        ctx.say(format_args!("setgroups(2) {:?}", ids.groups));
        setgroups(&groups).context(format_args!("setgroups(2) {:?}", ids.groups))?;
    }
    let (gid, uid) = (Gid::from_raw(ids.gid), Uid::from_raw(ids.uid));
    ctx.say(format_args!("setresgid(2) {gid} {gid} {gid}"));
    setresgid(gid, gid, gid).context(format_args!("setresgid(2) {gid} {gid} {gid}"))?;
    ctx.say(format_args!("setresuid(2) {uid} {uid} {uid}"));
    setresuid(uid, uid, uid).context(format_args!("setresuid(2) {uid} {uid} {uid}"))?;
    Ok(())
}
// ANCHOR_END: switch

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App,,,:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
    const GROUP: &str = "\
root:x:0:root
daemon:x:1:
wheel:x:10:root,app
audio:x:63:app
app:x:1000:
nogroup:x:65534:
";

    fn spec(s: &str) -> UserSpec {
        parse(s).unwrap()
    }

    fn ids(s: &str, add: &[&str]) -> std::result::Result<Ids, String> {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve(&spec(s), &add, PASSWD, GROUP)
    }

    fn with(s: &str, passwd: &str, group: &str) -> std::result::Result<Ids, String> {
        resolve(&spec(s), &[], passwd, group)
    }

    fn us(user: &str, group: Option<&str>) -> UserSpec {
        UserSpec {
            user: user.to_owned(),
            group: group.map(str::to_owned),
        }
    }

    #[test]
    fn parse_takes_every_form() {
        assert_eq!(parse("1000").unwrap(), us("1000", None));
        assert_eq!(parse("1000:1000").unwrap(), us("1000", Some("1000")));
        assert_eq!(parse("app").unwrap(), us("app", None));
        assert_eq!(parse("app:wheel").unwrap(), us("app", Some("wheel")));
        assert_eq!(parse("1000:wheel").unwrap(), us("1000", Some("wheel")));
        assert_eq!(parse("app:10").unwrap(), us("app", Some("10")));
        assert_eq!(parse("0").unwrap(), us("0", None));
        assert_eq!(parse("4294967294").unwrap(), us("4294967294", None));
        assert_eq!(parse("007").unwrap(), us("007", None));
        assert_eq!(parse("A.b_c-9").unwrap(), us("A.b_c-9", None));
        assert_eq!(parse(&"a".repeat(256)).unwrap().user.len(), 256);
    }

    #[test]
    fn parse_refuses_and_names_the_bad_part() {
        let cases: &[(&str, &str)] = &[
            ("", "empty user"),
            (":", "empty user"),
            (":wheel", "empty user"),
            ("app:", "empty group"),
            ("a:b:c", "\"a:b:c\": expected USER[:GROUP]"),
            ("a::", "expected USER[:GROUP]"),
            ("-1", "user -1 is negative"),
            ("app:-5", "group -5 is negative"),
            ("4294967295", "user 4294967295 is out of range"),
            (
                "1:99999999999999999999999",
                "group 99999999999999999999999 is out of range",
            ),
            ("-app", "user \"-app\" is not a name"),
            ("+1", "user \"+1\" is not a name"),
            ("a b", "user \"a b\" is not a name"),
            ("app:a/b", "group \"a/b\" is not a name"),
            ("é", "user \"é\" is not a name"),
            ("a\nb", "user \"a\\nb\" is not a name"),
            ("a\0b", "user \"a\\0b\" is not a name"),
        ];
        for (bad, want) in cases {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
            assert!(err.starts_with("--user "), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{bad:?}: {err}");
        }
        assert!(parse(&"a".repeat(257))
            .unwrap_err()
            .contains("is not a name"));
    }

    #[test]
    fn names_come_from_passwd_and_group_membership() {
        let app = ids("app", &[]).unwrap();
        assert_eq!(
            app,
            Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 10, 63],
                home: "/home/app".into()
            }
        );
        let root = ids("root", &[]).unwrap();
        assert_eq!((root.uid, root.gid, &root.groups[..]), (0, 0, &[0, 10][..]));
        assert_eq!(root.home, "/root");
        let daemon = ids("daemon", &[]).unwrap();
        assert_eq!(
            (daemon.uid, daemon.gid, &daemon.groups[..]),
            (1, 1, &[1][..])
        );
        assert_eq!(daemon.home, "/usr/sbin");
        assert_eq!(ids("nohome", &[]).unwrap().home, "/");
        assert_eq!(
            ids("ghost", &[]).unwrap_err(),
            "--user \"ghost\": no such user in the rootfs's /etc/passwd"
        );
    }

    #[test]
    fn numbers_need_no_entry() {
        // With an entry: the same as by name (runc matches the uid, then
        // uses the entry's name for the memberships).
        assert_eq!(ids("1000", &[]).unwrap(), ids("app", &[]).unwrap());
        // Without: gid 0 and home /, runc's defaults.
        assert_eq!(
            ids("4242", &[]).unwrap(),
            Ids {
                uid: 4242,
                gid: 0,
                groups: vec![0],
                home: "/".into()
            }
        );
        let both = ids("4242:4343", &[]).unwrap();
        assert_eq!(
            (both.uid, both.gid, &both.groups[..]),
            (4242, 4343, &[4343][..])
        );
        assert_eq!(ids("4294967294", &[]).unwrap().uid, MAX_ID);
        // No files at all (a rootfs without /etc): numbers still work.
        let bare = with("5:6", "", "").unwrap();
        assert_eq!((bare.uid, bare.gid, &bare.groups[..]), (5, 6, &[6][..]));
        assert!(with("app", "", "").is_err());
    }

    #[test]
    fn an_explicit_group_replaces_the_memberships() {
        let a = ids("app:wheel", &[]).unwrap();
        assert_eq!((a.uid, a.gid, &a.groups[..]), (1000, 10, &[10][..]));
        assert_eq!(a.home, "/home/app");
        let a = ids("app:4242", &[]).unwrap();
        assert_eq!((a.gid, &a.groups[..]), (4242, &[4242][..]));
        let a = ids("1000:audio", &[]).unwrap();
        assert_eq!((a.uid, a.gid, &a.groups[..]), (1000, 63, &[63][..]));
        let a = ids("4242:audio", &[]).unwrap();
        assert_eq!((a.uid, a.gid, a.home.as_str()), (4242, 63, "/"));
        let err = ids("app:nosuch", &[]).unwrap_err();
        assert_eq!(
            err,
            "--user \"app:nosuch\": no such group \"nosuch\" in the rootfs's /etc/group"
        );
    }

    #[test]
    fn group_add_by_name_or_number_without_duplicates() {
        let a = ids("app", &["audio", "20", "20", "1000", "nogroup", "010"]).unwrap();
        assert_eq!(a.groups, [1000, 10, 63, 20, 65534]);
        let a = ids("app:wheel", &["audio"]).unwrap();
        assert_eq!((a.gid, &a.groups[..]), (10, &[10, 63][..]));
        let a = ids("4242", &["wheel", "7"]).unwrap();
        assert_eq!(a.groups, [0, 10, 7]);
        assert_eq!(
            ids("app", &["nosuch"]).unwrap_err(),
            "--group-add \"nosuch\": no such group in the rootfs's /etc/group"
        );
        let err = ids("app", &["-5"]).unwrap_err();
        assert!(
            err.starts_with("--group-add \"-5\": group -5 is negative"),
            "{err}"
        );
        assert!(ids("app", &["4294967295"])
            .unwrap_err()
            .contains("out of range"));
        assert!(ids("app", &[""]).unwrap_err().contains("empty"));
        assert!(ids("app", &["a:b"]).unwrap_err().contains("is not a name"));
    }

    #[test]
    fn a_spec_made_by_hand_is_checked_too() {
        let err = resolve(&us("a:b", None), &[], PASSWD, GROUP).unwrap_err();
        assert!(err.contains("is not a name"), "{err}");
        assert!(resolve(&us("app", Some("")), &[], PASSWD, GROUP).is_err());
        assert!(resolve(&us("-1", None), &[], PASSWD, GROUP).is_err());
    }

    #[test]
    fn hostile_files_skip_bad_lines_and_first_entry_wins() {
        let big = "x".repeat(100 * 1024);
        let passwd = format!(
            "app:x\n\
             ghost:x\n\
             toor:x:abc:0::/root:/bin/sh\n\
             minus:x:4294967295:0::/:/bin/sh\n\
             evil\0:x:0:0::/:/bin/sh\n\
             app:x:1000:1000::/home/\0bad:/bin/sh\n\
             big:x:2000:2000::/home/{big}:/bin/sh\n\
             huge:x:2001:2001:{big}:/home/huge:/bin/sh\n\
             seven:x:7:7::/h:/bin/sh:extra\n\
             # app:x:1:1::/comment:/bin/sh\n\
             \x20\x20app:x:1000:1000::/home/app:/bin/sh\r\n\
             app:x:1001:1001::/home/second:/bin/sh\n\
             other:x:1000:5::/home/other:/bin/sh\n"
        );
        let group = format!(
            "wheel:x:10:root,app\n\
             wheel:x:11:app\n\
             short:x:12\n\
             bad:x:-1:app\n\
             nul:x:13:app\0\n\
             long:x:14:{big},app\n\
             audio:x:63:,app,\r\n"
        );
        let app = with("app", &passwd, &group).unwrap();
        assert_eq!(
            app,
            Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 10, 11, 63],
                home: "/home/app".into()
            }
        );
        // By uid, the first well-formed entry with it.
        assert_eq!(with("1000", &passwd, &group).unwrap().home, "/home/app");
        for gone in ["ghost", "toor", "minus", "evil", "big", "huge", "seven"] {
            assert!(with(gone, &passwd, &group).is_err(), "{gone}");
        }
        // runc reads "abc" as uid 0; here that line names nobody.
        assert_eq!(with("0", &passwd, &group).unwrap().home, "/");
        let a = resolve(&spec("app"), &["wheel".into()], &passwd, &group).unwrap();
        assert_eq!(a.groups, [1000, 10, 11, 63]);
        assert_eq!(with("app:wheel", &passwd, &group).unwrap().gid, 10);
        assert!(with("app:short", &passwd, &group).is_err());
        assert!(with("app:long", &passwd, &group).is_err());
        // Garbage only.
        let junk = "\0\0\0\n:::::::\n::\n\u{1b}[2J\n".repeat(1000);
        assert!(with("app", &junk, &junk).is_err());
        assert_eq!(with("3", &junk, &junk).unwrap().groups, [0]);
    }

    #[test]
    fn too_many_groups_is_an_error_not_a_failed_setgroups() {
        let group: String = (0..MAX_GROUPS as u32)
            .map(|g| format!("g{g}:x:{}:app\n", g + 2000))
            .collect();
        let err = with("app", PASSWD, &group).unwrap_err();
        assert!(err.contains("65536"), "{err}");
        let fits: String = (0..MAX_GROUPS as u32 - 1)
            .map(|g| format!("g{g}:x:{}:app\n", g + 2000))
            .collect();
        assert_eq!(with("app", PASSWD, &fits).unwrap().groups.len(), MAX_GROUPS);
    }

    /// Root only: switch() in a child of fork(2), which reports through its
    /// exit status alone (a panic there would run the test harness twice).
    #[test]
    fn switch_sets_groups_gid_and_uid() {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::{fork, ForkResult};
        if !nix::unistd::geteuid().is_root() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("switch_sets_groups_gid_and_uid needs root, and CI=true");
            }
            eprintln!("SKIPPED: switch_sets_groups_gid_and_uid needs root");
            return;
        }
        let ctx = Ctx::new("ch09-privileges", false);
        let target = Ids {
            uid: 1000,
            gid: 1000,
            groups: vec![10, 20],
            home: "/".into(),
        };
        // glibc's fork(2) leaves malloc usable in the child of a threaded
        // process.
        // SAFETY: the child calls switch() and get*id(2), then _exit(2)s.
        match unsafe { fork() }.expect("fork(2)") {
            ForkResult::Child => {
                let code = child_checks(&ctx, &target);
                // SAFETY: ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).expect("waitpid(2)");
                let why = match status {
                    WaitStatus::Exited(_, 0) => return,
                    WaitStatus::Exited(_, 1) => "switch() failed",
                    WaitStatus::Exited(_, 2) => "getresuid(2) is not 1000 1000 1000",
                    WaitStatus::Exited(_, 3) => "getresgid(2) is not 1000 1000 1000",
                    WaitStatus::Exited(_, 4) => "getgroups(2) is not [10, 20]",
                    WaitStatus::Exited(_, 5) => "setresuid(2) back to 0 succeeded",
                    _ => "the child did not exit",
                };
                panic!("{why} ({status:?})");
            }
        }
    }

    fn child_checks(ctx: &Ctx, target: &Ids) -> i32 {
        use nix::unistd::{getresgid, getresuid, Uid};
        if switch(ctx, target).is_err() {
            return 1;
        }
        match getresuid() {
            Ok(r)
                if [r.real, r.effective, r.saved]
                    .iter()
                    .all(|u| u.as_raw() == 1000) => {}
            _ => return 2,
        }
        match getresgid() {
            Ok(r)
                if [r.real, r.effective, r.saved]
                    .iter()
                    .all(|g| g.as_raw() == 1000) => {}
            _ => return 3,
        }
        let mut list = [0 as libc::gid_t; 8];
        // SAFETY: getgroups(2) writes at most list.len() gids into list.
        let n = unsafe { libc::getgroups(list.len() as libc::c_int, list.as_mut_ptr()) };
        if n != 2 || list[..2] != [10, 20] {
            return 4;
        }
        let root = Uid::from_raw(0);
        if nix::unistd::setresuid(root, root, root).is_ok() {
            return 5;
        }
        0
    }
}
