//! What changes when the runtime is not root (chapter 11's rootless
//! containers, run by an ordinary user inside a user namespace of the
//! container's own).
//!
//! - The state directory is the user's own ([`default_state_dir`]): root's
//!   is not theirs to write, and a layer unpacked without root (owners not
//!   given away, `user.` xattrs instead of `trusted.`, see layer.rs) must
//!   not be shared with root's runs.
//! - The overlay is mounted by the container's process, in its own user and
//!   mount namespaces (see lib.rs): nothing is mounted on the host.
//! - Removing a container's directory may need more than the user's own
//!   rights ([`in_own_user_namespace`]): what the container chowned to its
//!   other ids belongs to the user's subordinate ids on the host, and
//!   overlayfs leaves `work/work` mode 0.
//! - With maps of more ids than the user's own (its subordinate ids), a
//!   layer is unpacked by root of a user namespace with the container's
//!   maps ([`in_user_namespace`], see store.rs), so that its files get the
//!   owners the tar gives them, as the container sees them; with the
//!   user's own id alone, every file is the user's (root's, inside).

use crate::ids::{IdRange, Owners};
use nix::unistd::{getegid, geteuid};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The default `--state-dir` of the caller: root's [`crate::DEFAULT_STATE_DIR`],
/// anyone else's own (see [`state_dir_for`]); empty if it has no home at all.
pub fn default_state_dir() -> PathBuf {
    let uid = nix::unistd::geteuid();
    let passwd_home = || {
        nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.dir)
    };
    state_dir_for(
        uid.is_root(),
        std::env::var_os("XDG_DATA_HOME").as_deref(),
        std::env::var_os("HOME").as_deref(),
        passwd_home,
    )
    .unwrap_or_default()
}

// ANCHOR: state_dir
/// Root's state directory is /var/lib/stepbox; an ordinary user's is in
/// their own data directory, as the XDG base directory spec places it:
/// `$XDG_DATA_HOME/stepbox`, else `$HOME/.local/share/stepbox`, with HOME
/// from the environment, else from the password database. The spec says
/// a relative path in these variables is to be ignored, and so is an
/// empty one. None: no home to put it in.
pub fn state_dir_for(
    root: bool,
    xdg_data_home: Option<&OsStr>,
    home: Option<&OsStr>,
    passwd_home: impl FnOnce() -> Option<PathBuf>,
) -> Option<PathBuf> {
    if root {
        return Some(PathBuf::from(crate::DEFAULT_STATE_DIR));
    }
    let absolute = |p: &Path| p.is_absolute().then(|| p.to_path_buf());
    if let Some(data) = xdg_data_home.map(Path::new).and_then(absolute) {
        return Some(data.join("stepbox"));
    }
    let home = home
        .map(Path::new)
        .and_then(absolute)
        .or_else(|| passwd_home().as_deref().and_then(absolute))?;
    Some(home.join(".local/share/stepbox"))
}
// ANCHOR_END: state_dir

/// The ranges of the user `name` (or uid `id`) in an /etc/subuid or
/// /etc/subgid text, `NAME:START:COUNT` lines, as newuidmap(1) reads them.
pub fn subordinate(text: &str, name: &str, id: u32) -> Vec<(u32, u32)> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let ours = (!name.is_empty() && who == name) || who.parse::<u32>() == Ok(id);
            let (start, count): (u32, u32) = (start.parse().ok()?, count.parse().ok()?);
            (ours && count > 0).then_some((start, count))
        })
        .collect()
}

/// The caller's own id as 0, then each of its subordinate ranges, one
/// after the other, from 1 (chapter 11's default map is the first two of
/// these lines). At most 340 lines, the kernel's limit.
pub fn own_and_subordinate(own: u32, ranges: &[(u32, u32)]) -> Vec<IdRange> {
    let mut map = vec![IdRange {
        inside: 0,
        outside: own,
        count: 1,
    }];
    let mut inside: u64 = 1;
    for &(start, count) in ranges.iter().take(339) {
        if inside + u64::from(count) > u64::from(u32::MAX) {
            break;
        }
        map.push(IdRange {
            inside: inside as u32,
            outside: start,
            count,
        });
        inside += u64::from(count);
    }
    map
}

/// `newuidmap PID` (or `newgidmap`) arguments for `map`: `inside outside
/// count`, a line at a time.
pub fn helper_args(map: &[IdRange]) -> Vec<u32> {
    map.iter()
        .flat_map(|r| [r.inside, r.outside, r.count])
        .collect()
}

/// `newuidmap PID` arguments: the caller's own id as 0, then each of its
/// subordinate ranges (see [`own_and_subordinate`]).
pub fn map_args(own: u32, ranges: &[(u32, u32)]) -> Vec<u32> {
    helper_args(&own_and_subordinate(own, ranges))
}

/// `newuidmap` or `newgidmap` in the usual places (chapter 11 uses it too).
pub fn helper(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Whether `path` is the root of a mount in this mount namespace
/// (statx(2) `STATX_ATTR_MOUNT_ROOT`, Linux 5.8).
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let cpath = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: an all-zero statx is a valid value, filled in by the kernel.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `cpath` is NUL-terminated and `stx` a valid buffer.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            cpath.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let flag = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if stx.stx_attributes_mask & flag == 0 {
        return Err(io::Error::other("statx(2) does not say (Linux before 5.8)"));
    }
    Ok(stx.stx_attributes & flag != 0)
}

// ANCHOR: unshare
/// Runs `work` in a child process inside a new user namespace in which
/// the caller's uid and gid are 0 and its subordinate ids are 1 and up, as
/// `podman unshare` does. Root there has CAP_DAC_OVERRIDE and CAP_FOWNER
/// over every file whose owner and group are mapped in (capabilities(7)):
/// over the files the container's root made (the caller's own, even those
/// of mode 0) and over those it gave to its other ids (the caller's
/// subordinate ids on the host). Without the helpers or an /etc/subuid
/// entry, the caller's own ids alone are mapped.
/// Err: why `work` could not run, or its own error.
pub fn in_own_user_namespace(work: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    let name = nix::unistd::User::from_uid(geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let read = |file: &str| std::fs::read_to_string(file).unwrap_or_default();
    let sub_u = subordinate(&read("/etc/subuid"), &name, uid);
    let sub_g = subordinate(&read("/etc/subgid"), &name, uid);
    let helpers = helper("newuidmap").is_some() && helper("newgidmap").is_some();
    let maps = match helpers && !sub_u.is_empty() && !sub_g.is_empty() {
        true => Owners {
            uids: own_and_subordinate(uid, &sub_u),
            gids: own_and_subordinate(gid, &sub_g),
        },
        false => Owners {
            uids: own_and_subordinate(uid, &[]),
            gids: own_and_subordinate(gid, &[]),
        },
    };
    in_user_namespace(&maps, work)
}

/// Runs `work` in a child process inside a new user namespace with the
/// id maps `maps`, as root there (uid 0 must be mapped for that). Only
/// newuidmap(1) and newgidmap(1) may map other ids than the caller's own,
/// from outside and after the unshare(2): so the child unshares, says so
/// on a pipe, and waits on another one until the parent has written its
/// maps. The caller's own ids alone are written directly (as chapter 11
/// does). Err: why `work` could not run, or its own error (what it wrote
/// on the pipe).
pub fn in_user_namespace(
    maps: &Owners,
    work: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    use nix::unistd::{fork, ForkResult};
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    let helpers = match maps.own_only(uid, gid) {
        true => None,
        false => Some(
            helper("newuidmap")
                .zip(helper("newgidmap"))
                .ok_or("mapping other ids than your own needs newuidmap and newgidmap")?,
        ),
    };

    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string());
    let (from_child, to_parent) = pipe()?;
    let (from_parent, to_child) = pipe()?;
    // The child runs only unshare(2), read(2), write(2), _exit(2) and
    // `work`, which allocates: glibc's malloc keeps its locks consistent
    // across fork(2) (its atfork handlers). Whatever else `work` does must
    // not take a lock that a thread of the parent could have held at the
    // fork (std's stdout and stderr locks among them: see its callers).
    // SAFETY: so the child is sound, and it never returns into the caller.
    match unsafe { fork() }.map_err(|e| format!("fork(2): {e}"))? {
        ForkResult::Child => {
            drop((from_child, to_child));
            let code = child(to_parent, from_parent, work);
            // SAFETY: _exit(2), not exit(3): this is a copy of the caller,
            // whose atexit handlers and stdio buffers are not ours to run.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop((to_parent, from_parent));
            let mut said = [0u8; 1];
            let unshared = match nix::unistd::read(from_child.as_raw_fd(), &mut said) {
                Ok(1) if said[0] == b'u' => Ok(()),
                _ => Err(format!(
                    "unshare(2) CLONE_NEWUSER: {}",
                    read_all(&from_child)
                )),
            };
            let mapped = unshared.and_then(|()| match &helpers {
                Some((newuidmap, newgidmap)) => {
                    run_helper(newuidmap, child, &helper_args(&maps.uids))?;
                    run_helper(newgidmap, child, &helper_args(&maps.gids))
                }
                None => write_own_maps(child, maps),
            });
            // Go, or (dropping the pipe unwritten) stop.
            let go = mapped.and_then(|()| {
                nix::unistd::write(&to_child, b"g")
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
            drop(to_child);
            let said = read_all(&from_child);
            let status = loop {
                match nix::sys::wait::waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            go?;
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ if !said.is_empty() => Err(said),
                other => Err(format!("the helper process ended with {other:?}")),
            }
        }
    }
}
// ANCHOR_END: unshare

/// The helper's child: unshare(2), wait for the maps, work. Returns the exit code.
fn child(
    to_parent: OwnedFd,
    from_parent: OwnedFd,
    work: impl FnOnce() -> Result<(), String>,
) -> i32 {
    let say = |text: &[u8]| {
        let _ = nix::unistd::write(&to_parent, text);
    };
    // The first byte says how the unshare went: `u`, or `e` and why.
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        say(format!("e{}", e.desc()).as_bytes());
        return 1;
    }
    say(b"u");
    let mut go = [0u8; 1];
    loop {
        match nix::unistd::read(from_parent.as_raw_fd(), &mut go) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(1) => break,
            _ => return 1, // the parent could not map us: it says why
        }
    }
    // A panic must not unwind out of here: above is the caller's code, in
    // a copy of the caller.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            say(e.as_bytes());
            1
        }
        Err(_) => {
            say(b"the work in the user namespace panicked");
            1
        }
    }
}

fn run_helper(path: &Path, child: nix::unistd::Pid, args: &[u32]) -> Result<(), String> {
    let mut all = vec![child.to_string()];
    all.extend(args.iter().map(u32::to_string));
    let out = std::process::Command::new(path)
        .args(&all)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}",
            path.display(),
            all.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The caller's own ids (see [`Owners::own_only`]): the one map an
/// ordinary user may write (setgroups(2) denied first, for the gid map,
/// user_namespaces(7)).
fn write_own_maps(child: nix::unistd::Pid, maps: &Owners) -> Result<(), String> {
    let line = |r: &IdRange| format!("{} {} {}\n", r.inside, r.outside, r.count);
    for (file, text) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", maps.uids.iter().map(line).collect()),
        ("gid_map", maps.gids.iter().map(line).collect()),
    ] {
        let path = format!("/proc/{child}/{file}");
        std::fs::write(&path, text).map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(())
}

fn read_all(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_keeps_var_lib_and_a_user_gets_their_own() {
        let none = || None;
        let os = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(
            state_dir_for(true, os("/x"), os("/home/ann"), none),
            Some(PathBuf::from("/var/lib/stepbox"))
        );
        assert_eq!(
            state_dir_for(false, os("/data"), os("/home/ann"), none),
            Some(PathBuf::from("/data/stepbox"))
        );
        assert_eq!(
            state_dir_for(false, None, os("/home/ann"), none),
            Some(PathBuf::from("/home/ann/.local/share/stepbox"))
        );
        // Relative or empty: ignored, as the XDG spec says.
        assert_eq!(
            state_dir_for(false, os("data"), os(""), || Some("/home/pw".into())),
            Some(PathBuf::from("/home/pw/.local/share/stepbox"))
        );
        assert_eq!(state_dir_for(false, None, None, none), None);
        assert_eq!(state_dir_for(false, None, None, || Some("".into())), None);
    }

    #[test]
    fn the_helpers_map_the_callers_id_and_every_subordinate_range() {
        let text = "ann:100000:65536\n# c\n1000:300000:10\nbob:1:1\nann:5:0\n";
        let ranges = subordinate(text, "ann", 1000);
        assert_eq!(ranges, [(100_000, 65_536), (300_000, 10)]);
        assert_eq!(subordinate(text, "", 7), []);
        assert_eq!(
            map_args(1000, &ranges),
            [0, 1000, 1, 1, 100_000, 65_536, 65_537, 300_000, 10]
        );
        // A container's maps, as chapter 11 plans them, line by line.
        let map = own_and_subordinate(1001, &[(100_000, 65_536)]);
        assert_eq!(
            map,
            [
                IdRange {
                    inside: 0,
                    outside: 1001,
                    count: 1
                },
                IdRange {
                    inside: 1,
                    outside: 100_000,
                    count: 65_536
                }
            ]
        );
        assert_eq!(helper_args(&map), [0, 1001, 1, 1, 100_000, 65_536]);
        assert_eq!(helper_args(&[]), Vec::<u32>::new());
        let many = vec![(1, 1); 500];
        assert_eq!(map_args(1000, &many).len(), 340 * 3);
    }

    #[test]
    fn mount_points_are_told_apart() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        let scratch = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(scratch.path()).unwrap());
        assert!(is_mount_point(&scratch.path().join("missing")).is_err());
    }
}
