//! Who owns a layer's files on the host.
//!
//! Without a user namespace, uid 0 in the container is uid 0 on the host,
//! and a layer is unpacked with the owners its tar says. With one
//! (chapter 11), uid 0 in the container is some other uid on the host
//! (100000, say), and a file the tar gives to root must belong to 100000
//! on the host for the container's root to own it: the layer is unpacked
//! with its owners shifted through the container's id maps, into a store
//! of its own for those maps (as docker's `--userns-remap` keeps
//! `/var/lib/docker/100000.100000/`).

use std::fmt::Write;

/// One line of `/proc/PID/uid_map`: ids `inside..inside+count` in the
/// container are `outside..outside+count` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The container's uid and gid maps; empty: no user namespace, every id
/// is itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Owners {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

/// The host's id for container id `id`, through `ranges` (None: not mapped).
pub fn to_host(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let offset = id.checked_sub(r.inside)?;
        (offset < r.count).then(|| r.outside + offset)
    })
}

impl Owners {
    pub fn is_identity(&self) -> bool {
        self.uids.is_empty() && self.gids.is_empty()
    }

    /// The host's owner of a file the container sees owned by `uid:gid`.
    pub fn host(&self, uid: u64, gid: u64) -> Result<(u64, u64), String> {
        if self.is_identity() {
            return Ok((uid, gid));
        }
        let map = |ranges: &[IdRange], id: u64, what: &str| {
            u32::try_from(id)
                .ok()
                .and_then(|id| to_host(ranges, id))
                .map(u64::from)
                .ok_or_else(|| {
                    format!("owned by {what} {id}, which the container's {what} map does not map")
                })
        };
        Ok((map(&self.uids, uid, "uid")?, map(&self.gids, gid, "gid")?))
    }

    /// A name for these maps, for the store's directory: `u0-100000-65536_g0-100000-65536`.
    pub fn key(&self) -> String {
        let mut key = String::new();
        for (tag, ranges) in [("u", &self.uids), ("g", &self.gids)] {
            if !key.is_empty() {
                key.push('_');
            }
            key.push_str(tag);
            for (i, r) in ranges.iter().enumerate() {
                let sep = if i == 0 { "" } else { "." };
                let _ = write!(key, "{sep}{}-{}-{}", r.inside, r.outside, r.count);
            }
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remap() -> Owners {
        let r = IdRange {
            inside: 0,
            outside: 100_000,
            count: 65_536,
        };
        Owners {
            uids: vec![r],
            gids: vec![r],
        }
    }

    #[test]
    fn ids_shift_through_the_maps() {
        let o = remap();
        assert_eq!(o.host(0, 0), Ok((100_000, 100_000)));
        assert_eq!(o.host(65_535, 1), Ok((165_535, 100_001)));
        assert!(o.host(65_536, 0).unwrap_err().contains("uid 65536"));
        assert!(o.host(0, 1 << 40).unwrap_err().contains("gid"));
        assert_eq!(Owners::default().host(7, 8), Ok((7, 8)));
        assert_eq!(o.key(), "u0-100000-65536_g0-100000-65536");
    }

    #[test]
    fn several_ranges() {
        let ranges = [
            IdRange {
                inside: 0,
                outside: 1000,
                count: 1,
            },
            IdRange {
                inside: 1,
                outside: 100_000,
                count: 65_536,
            },
        ];
        assert_eq!(to_host(&ranges, 0), Some(1000));
        assert_eq!(to_host(&ranges, 1), Some(100_000));
        assert_eq!(to_host(&ranges, 65_536), Some(165_535));
        assert_eq!(to_host(&ranges, 65_537), None);
    }
}
