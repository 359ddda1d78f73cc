//! Capabilities: root's power cut into about forty pieces (capabilities(7)).
//! Helper-owned: see the brief. The API below is what lib.rs calls.

use ch01_process::{Ctx, Result};

/// A set of capabilities, bit N for capability number N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    /// Every capability the running kernel knows.
    pub fn all() -> CapSet {
        todo!()
    }
}

/// docker's default set.
pub const DOCKER_DEFAULT: &[&str] = &[];

/// docker's default set with `add` added and `drop` dropped.
pub fn resolve(_add: &[String], _drop: &[String]) -> std::result::Result<CapSet, String> {
    todo!()
}

/// PR_CAPBSET_DROP every capability not in `keep`.
pub fn drop_bounding(_ctx: &Ctx, _keep: CapSet) -> Result<()> {
    todo!()
}

/// PR_SET_KEEPCAPS.
pub fn keep_caps(_ctx: &Ctx, _on: bool) -> Result<()> {
    todo!()
}

/// capset(2): effective = permitted = `set`, inheritable empty; ambient cleared.
pub fn set(_ctx: &Ctx, _set: CapSet) -> Result<()> {
    todo!()
}

/// prctl(PR_SET_NO_NEW_PRIVS, 1).
pub fn no_new_privs() -> Result<()> {
    todo!()
}
