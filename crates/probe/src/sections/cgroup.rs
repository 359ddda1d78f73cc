//! Control groups: a placeholder until the cgroup chapter fills it in.
//!
//! It exists already so that the section name is stable for scripts and
//! snapshot tests written before that chapter.

use crate::Report;

pub fn run(r: &mut Report) {
    r.header("cgroup");
    r.line("not implemented yet");
}
