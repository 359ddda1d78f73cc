//! Chapter 3: a network namespace.
//!
//! `CLONE_NEWNET` gives the child its own network stack: its own interfaces,
//! routes, firewall and sockets. A new one holds only `lo`, and down at that.

use ch01_process::{Chapter, Context, Ctx, Result, Step};
use clap::Args;
use nix::sched::CloneFlags;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch02_pid::Opts,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch03-net";
    const ABOUT: &'static str = "Run COMMAND in new pid and network namespaces.";
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(NetNamespace));
        steps
    }
}
// ANCHOR_END: opts

// ANCHOR: step
struct NetNamespace;

impl Step for NetNamespace {
    fn clone_flags(&self) -> CloneFlags {
        CloneFlags::CLONE_NEWNET
    }

    fn in_child(&self, ctx: &Ctx) -> Result<()> {
        ctx.say(format_args!("ioctl(2) SIOCSIFFLAGS lo IFF_UP"));
        set_up("lo")
    }
}
// ANCHOR_END: step

// ANCHOR: up
/// `ip link set NAME up`, the old way: ioctl(2) SIOCGIFFLAGS/SIOCSIFFLAGS on any socket.
pub fn set_up(name: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket(2)")?;
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    let fd = sock.as_raw_fd();
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(nix::errno::Errno::last()).context(format!("ioctl(2) SIOCGIFFLAGS {name}"));
    }
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(nix::errno::Errno::last()).context(format!("ioctl(2) SIOCSIFFLAGS {name} up"));
    }
    Ok(())
}
// ANCHOR_END: up
