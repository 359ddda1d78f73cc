//! Who am I: the ids the kernel gives this process, and the host name.
//!
//! Each value is the one seen *from inside* the process's own namespaces:
//! getpid() answers in the pid namespace the process lives in (so a
//! container's first process is pid 1), getppid() answers 0 when the parent
//! lives outside that namespace, and uname() reads the UTS namespace.

use crate::report::reason;
use crate::{sys, Report};

pub fn run(r: &mut Report) {
    r.header("identity");
    r.kv("pid", sys::getpid());
    r.kv("ppid", sys::getppid());
    r.kv("uid", sys::getuid());
    r.kv("gid", sys::getgid());
    match sys::nodename() {
        Ok(name) => r.kv("hostname", name),
        Err(e) => r.unavailable("hostname", reason(&e)),
    }
}
