//! A runtime that is not root (chapter 11's rootless containers): where,
//! if anywhere, it may make the container's cgroup.
//!
//! Every cgroup file is root's unless someone gave it away. cgroup v1 has
//! no way to give a subtree away safely (a v1 hierarchy's files can be
//! chowned, but nothing keeps a cgroup's owner from moving any of their
//! processes anywhere, or from raising limits the administrator set above),
//! so an ordinary user gets no cgroup there. cgroup v2 was designed for
//! delegation (Documentation/admin-guide/cgroup-v2.rst, "Delegation"):
//! the administrator chowns a cgroup's directory and its `cgroup.procs`,
//! `cgroup.subtree_control` and `cgroup.threads` to a user, who may then
//! make cgroups below it, hand them the controllers it was given, set their
//! limits and move processes between them, but never raise what is set
//! above. systemd does this for every user at login: `user@UID.service`
//! (with `Delegate=yes`) is the user's, and so are the cgroups their user
//! manager makes below it (`app.slice/...scope`).
//!
//! Moving a process is the part with a rule of its own: the writer needs
//! write access to `cgroup.procs` of the destination *and* of the common
//! ancestor of the source and destination cgroups
//! (cgroup_procs_write_permission() in kernel/cgroup/cgroup.c). Otherwise
//! a user given two unrelated subtrees could pull a process out of a cgroup
//! above one of them. So the container's cgroup goes where both hold: below
//! a cgroup the caller owns that also holds the caller's own cgroup (by
//! default, beside it), never merely somewhere writable.
//!
//! The functions here take the facts (the cgroup the runtime is in, which
//! cgroups exist and are the caller's) as arguments, so that each decision
//! is a unit test; lib.rs gathers the facts.

use std::path::{Path, PathBuf};

/// What the caller may do with one cgroup (a path from the cgroup root).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    pub exists: bool,
    /// The directory: mkdir(2) and rmdir(2) of cgroups in it.
    pub dir: bool,
    /// Its `cgroup.procs`: moving processes in, or across it.
    pub procs: bool,
}

/// Where a rootless container's cgroup is made: `ROOT/base/parent/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// An existing cgroup that is the caller's (they may mkdir in it).
    pub base: PathBuf,
    /// Cgroups to make below `base`, kept afterwards (empty for the
    /// default: the container's cgroup goes right into `base`).
    pub parent: PathBuf,
}

/// The runtime's own cgroup v2, from /proc/self/cgroup's text: the path
/// of its `0::` line, relative to the root ("" for the root itself).
pub fn own_cgroup(proc_self_cgroup: &str) -> Option<PathBuf> {
    proc_self_cgroup.lines().find_map(|line| {
        let path = line.strip_prefix("0::")?;
        let rel = path.trim_end().strip_prefix('/')?;
        // "(deleted)" and the like: not a path to build on.
        (!rel.contains(' ')).then(|| PathBuf::from(rel))
    })
}

/// `/` + a relative cgroup path, for messages.
fn show(rel: &Path) -> String {
    format!("/{}", rel.display())
}

/// Where the container's cgroup may go, for a caller in the cgroup `own`
/// that gave `--cgroup-parent wanted` (or none): or why nowhere.
///
/// Without `--cgroup-parent`, beside the caller's own cgroup, in its
/// parent: for a shell that systemd put in `user@UID.service/app.slice/
/// x.scope`, that is `app.slice`, the user's. A login shell sits in a
/// session scope, `user-UID.slice/session-N.scope`, whose parent is root's:
/// no place, as with podman there (`systemd-run --user --scope` moves a
/// shell into the user's subtree).
pub fn find_place(
    own: &Path,
    wanted: Option<&Path>,
    access: &dyn Fn(&Path) -> Access,
) -> Result<Place, String> {
    let target = match wanted {
        Some(p) => p.to_path_buf(),
        None => match own.parent() {
            Some(p) => p.to_path_buf(),
            None => {
                return Err("the runtime runs in the root cgroup, which is root's".into());
            }
        },
    };
    // The deepest cgroup of the path that exists: the rest is made in it.
    let mut base = PathBuf::new();
    let mut rest = PathBuf::new();
    for part in target.components() {
        if rest.as_os_str().is_empty() && access(&base.join(part)).exists {
            base.push(part);
        } else {
            rest.push(part);
        }
    }
    if !access(&base).dir {
        let what = match rest.as_os_str().is_empty() {
            true => format!("the cgroup {}", show(&base)),
            false => format!(
                "{}, the cgroup {} would be made in,",
                show(&base),
                show(&target)
            ),
        };
        let whose = match wanted {
            Some(_) => "",
            None => " (the parent of yours)",
        };
        return Err(format!("{what}{whose} is not yours"));
    }
    // The common ancestor of the caller's cgroup and the container's.
    let ancestor: PathBuf = own
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    if !access(&ancestor).procs {
        return Err(format!(
            "moving the container from your cgroup {} to {} needs write access to \
             cgroup.procs in {}, the cgroup both are in, and it is not yours",
            show(own),
            show(&target),
            show(&ancestor)
        ));
    }
    Ok(Place { base, parent: rest })
}

/// What a rootless runtime does about the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Makes one there.
    Own(Place),
    /// Runs the container in the runtime's own cgroup, with a warning
    /// saying why.
    Without(String),
    /// Refuses to start (a limit was asked for): one line.
    Refuse(String),
}

/// The hint that ends every warning and refusal.
pub const HINT: &str = "limits need root, or a cgroup v2 subtree delegated to you";

/// `asked`: the flags that need a cgroup (--memory, ..., --cgroup-parent);
/// `place`: [`find_place`]'s answer, on cgroup v2 (None: cgroup v1).
pub fn decide(asked: &[&str], place: Option<Result<Place, String>>) -> Decision {
    let (why, instead) = match place {
        Some(Ok(place)) => return Decision::Own(place),
        Some(Err(why)) => (
            why,
            "from a cgroup v2 subtree delegated to you (e.g. in systemd-run --user --scope), \
             or give one with --cgroup-parent",
        ),
        None => (
            "the host uses cgroup v1, whose hierarchies cannot be delegated to an ordinary user"
                .to_string(),
            "on a cgroup v2 host, from a subtree delegated to you",
        ),
    };
    if asked.is_empty() {
        return Decision::Without(why);
    }
    let flags = match asked {
        [one] => format!("{one} needs"),
        [init @ .., last] => format!("{} and {last} need", init.join(", ")),
        [] => unreachable!(),
    };
    Decision::Refuse(format!(
        "{flags} a cgroup of the container's own, and a caller who is not root gets none \
         here: {why}; run it as root, or {instead}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host where the cgroups in `mine` (and everything below them) are
    /// the caller's and `exist` lists what exists.
    fn host<'a>(exist: &'a [&'a str], mine: &'a [&'a str]) -> impl Fn(&Path) -> Access + 'a {
        move |p: &Path| {
            let p = p.to_str().unwrap();
            let exists = p.is_empty() || exist.contains(&p);
            let owned = mine
                .iter()
                .any(|m| p == *m || p.starts_with(&format!("{m}/")));
            Access {
                exists,
                dir: exists && owned,
                procs: exists && owned,
            }
        }
    }

    const SYSTEMD: [&str; 6] = [
        "user.slice",
        "user.slice/user-1001.slice",
        "user.slice/user-1001.slice/session-3.scope",
        "user.slice/user-1001.slice/user@1001.service",
        "user.slice/user-1001.slice/user@1001.service/app.slice",
        "user.slice/user-1001.slice/user@1001.service/app.slice/run-u7.scope",
    ];
    const DELEGATED: &str = "user.slice/user-1001.slice/user@1001.service";

    #[test]
    fn own_cgroup_is_the_v2_line() {
        let text = "9:name=systemd:/\n4:memory:/x\n0::/user.slice/a b\n";
        assert_eq!(own_cgroup(text), None);
        assert_eq!(own_cgroup("1:cpu:/\n0::/\n"), Some(PathBuf::new()));
        assert_eq!(
            own_cgroup("0::/a/b.scope\n"),
            Some(PathBuf::from("a/b.scope"))
        );
        assert_eq!(own_cgroup("4:memory:/x\n"), None);
    }

    #[test]
    fn beside_the_callers_cgroup_when_its_parent_is_theirs() {
        let access = host(&SYSTEMD, &[DELEGATED]);
        let own = Path::new(SYSTEMD[5]);
        let place = find_place(own, None, &access).unwrap();
        assert_eq!(place.base, Path::new(SYSTEMD[4]));
        assert_eq!(place.parent, Path::new(""));
    }

    #[test]
    fn a_login_session_scope_has_no_place() {
        let access = host(&SYSTEMD, &[DELEGATED]);
        let e = find_place(Path::new(SYSTEMD[2]), None, &access).unwrap_err();
        assert_eq!(
            e,
            "the cgroup /user.slice/user-1001.slice (the parent of yours) is not yours"
        );
        let e = find_place(Path::new(""), None, &access).unwrap_err();
        assert!(e.contains("root cgroup"), "{e}");
    }

    #[test]
    fn a_given_parent_is_made_below_the_deepest_cgroup_that_exists() {
        let access = host(&SYSTEMD, &[DELEGATED]);
        let own = Path::new(SYSTEMD[5]);
        let wanted = PathBuf::from(DELEGATED).join("stepbox.slice/ci");
        let place = find_place(own, Some(&wanted), &access).unwrap();
        assert_eq!(place.base, Path::new(DELEGATED));
        assert_eq!(place.parent, Path::new("stepbox.slice/ci"));
        // Root's, or made in a cgroup that is root's: refused.
        let e = find_place(own, Some(Path::new("stepbox")), &access).unwrap_err();
        assert_eq!(
            e, "/, the cgroup /stepbox would be made in, is not yours",
            "{e}"
        );
        let e = find_place(own, Some(Path::new(SYSTEMD[1])), &access).unwrap_err();
        assert_eq!(e, "the cgroup /user.slice/user-1001.slice is not yours");
    }

    #[test]
    fn the_common_ancestor_must_be_theirs() {
        // Two subtrees of the caller's, in different places: moving from
        // one to the other crosses the root's cgroup.procs.
        let exist = ["mine-a", "mine-a/leaf", "mine-b"];
        let access = host(&exist, &["mine-a", "mine-b"]);
        let e =
            find_place(Path::new("mine-a/leaf"), Some(Path::new("mine-b")), &access).unwrap_err();
        assert!(
            e.contains("cgroup.procs in /, the cgroup both are in"),
            "{e}"
        );
        let ok = find_place(Path::new("mine-a/leaf"), Some(Path::new("mine-a")), &access);
        assert_eq!(ok.unwrap().base, Path::new("mine-a"));
    }

    #[test]
    fn decisions() {
        let place = Place {
            base: PathBuf::from("a"),
            parent: PathBuf::new(),
        };
        assert_eq!(
            decide(&["--memory"], Some(Ok(place.clone()))),
            Decision::Own(place.clone())
        );
        assert_eq!(decide(&[], Some(Ok(place.clone()))), Decision::Own(place));
        // Nothing asked: without a cgroup, whatever the reason.
        let Decision::Without(why) = decide(&[], None) else {
            panic!("v1 without limits")
        };
        assert!(why.contains("cgroup v1"), "{why}");
        assert_eq!(
            decide(&[], Some(Err("x is not yours".into()))),
            Decision::Without("x is not yours".into())
        );
        // A limit asked: refused, in one line that says why.
        let Decision::Refuse(e) = decide(&["--memory", "--pids-limit", "--cpus"], None) else {
            panic!("v1 with limits")
        };
        assert!(
            e.starts_with("--memory, --pids-limit and --cpus need a cgroup"),
            "{e}"
        );
        assert!(e.contains("cannot be delegated"), "{e}");
        assert!(e.ends_with("or on a cgroup v2 host, from a subtree delegated to you"));
        assert!(!e.contains('\n'));
        let Decision::Refuse(e) = decide(&["--memory"], Some(Err("x is not yours".into()))) else {
            panic!("v2 with a limit, no place")
        };
        assert!(e.starts_with("--memory needs a cgroup"), "{e}");
        assert!(
            e.contains(": x is not yours; run it as root, or from"),
            "{e}"
        );
        assert!(e.ends_with("or give one with --cgroup-parent"), "{e}");
    }
}
