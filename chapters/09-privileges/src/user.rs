//! The container's user: `--user UID[:GID]` or `NAME[:GROUP]`, and its
//! groups. Helper-owned: see the brief. The API below is what lib.rs calls.

use ch01_process::{Ctx, Result};

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

impl Ids {
    /// Root (0:0) with `group_add`'s groups.
    pub fn root_with(_group_add: &[String], _group: &str) -> std::result::Result<Ids, String> {
        todo!()
    }
}

pub fn parse(_spec: &str) -> std::result::Result<UserSpec, String> {
    todo!()
}

/// The ids of `spec`, from the text of the rootfs's /etc/passwd and /etc/group.
pub fn resolve(
    _spec: &UserSpec,
    _group_add: &[String],
    _passwd: &str,
    _group: &str,
) -> std::result::Result<Ids, String> {
    todo!()
}

/// setgroups(2), setresgid(2), setresuid(2), in that order.
pub fn switch(_ctx: &Ctx, _ids: &Ids) -> Result<()> {
    todo!()
}
