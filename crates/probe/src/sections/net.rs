//! Network: the interfaces of this process's network namespace.
//!
//! Interfaces belong to exactly one network namespace, so a fresh namespace
//! starts with nothing but a loopback device, and that one is down until
//! somebody brings it up. getifaddrs() asks the kernel over netlink, which
//! always answers for the caller's namespace (unlike /proc/net, which
//! follows whichever /proc is mounted), and works in a static binary since
//! it needs no NSS.
//!
//! Only IPv4 addresses are shown: IPv6 link-local addresses are derived
//! from MAC addresses, which are random for virtual devices, so they would
//! change on every run.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

use crate::report::reason;
use crate::Report;

#[derive(Debug, Default, PartialEq)]
pub struct Interface {
    pub up: bool,
    /// (address, prefix length), sorted.
    pub ipv4: Vec<(Ipv4Addr, u32)>,
}

impl Interface {
    /// `up 127.0.0.1/8`
    pub fn describe(&self) -> String {
        let mut text = if self.up { "up" } else { "down" }.to_string();
        for (addr, prefix) in &self.ipv4 {
            text.push_str(&format!(" {addr}/{prefix}"));
        }
        text
    }
}

pub fn run(r: &mut Report) {
    r.header("network");
    match interfaces() {
        Ok(ifaces) => {
            r.kv("interfaces", ifaces.len());
            r.own_items(
                super::ns::is_own("net"),
                ifaces
                    .iter()
                    .map(|(name, i)| format!("{name} {}", i.describe())),
            );
        }
        Err(e) => r.unavailable("interfaces", format_args!("getifaddrs: {}", reason(&e))),
    }
}

/// All interfaces of this network namespace, by name.
pub fn interfaces() -> io::Result<BTreeMap<String, Interface>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs stores a list it allocated in `list`; it is freed
    // below with freeifaddrs, and not used afterwards.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut ifaces: BTreeMap<String, Interface> = BTreeMap::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // One entry per (interface, address); the AF_PACKET entry makes
        // sure interfaces without any address are listed too.
        let iface = ifaces.entry(name).or_default();
        iface.up |= ifa.ifa_flags & libc::IFF_UP as u32 != 0;
        // SAFETY: ifa_addr and ifa_netmask are null or valid sockaddrs
        // whose real type is given by sa_family.
        if let Some(addr) = unsafe { ipv4(ifa.ifa_addr) } {
            // SAFETY: as above, for ifa_netmask.
            let prefix = unsafe { ipv4(ifa.ifa_netmask) }
                .map(|mask| u32::from(mask).count_ones())
                .unwrap_or(32);
            iface.ipv4.push((addr, prefix));
        }
    }
    // SAFETY: list came from getifaddrs and nothing points into it any more.
    unsafe { libc::freeifaddrs(list) };
    for iface in ifaces.values_mut() {
        iface.ipv4.sort();
    }
    Ok(ifaces)
}

/// The IPv4 address in `sa`, if it is one.
///
/// # Safety
/// `sa` must be null or point to a valid sockaddr of the size its family
/// implies.
unsafe fn ipv4(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() || (*sa).sa_family as i32 != libc::AF_INET {
        return None;
    }
    let sin = &*(sa as *const libc::sockaddr_in);
    Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_interfaces() {
        let lo = Interface {
            up: true,
            ipv4: vec![(Ipv4Addr::LOCALHOST, 8)],
        };
        assert_eq!(lo.describe(), "up 127.0.0.1/8");
        assert_eq!(Interface::default().describe(), "down");
    }

    #[test]
    fn host_has_loopback() {
        let ifaces = interfaces().unwrap();
        assert!(ifaces.contains_key("lo"));
    }
}
