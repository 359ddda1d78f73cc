//! Chapter 3: a network namespace.
//!
//! `CLONE_NEWNET` gives the child its own network stack: its own interfaces,
//! routes, firewall and sockets. A new one holds only `lo`, and down at that.
//!
//! With `--veth` the container also gets a cable to the host: a veth pair,
//! two interfaces joined back to back, one end on the host and the other
//! (`eth0`) in the container, made and configured with rtnetlink messages
//! (see [`netlink`]).

pub mod netlink;

use ch01_process::{Chapter, Context, Ctx, Error, Result, Step};
use clap::Args;
use netlink::Message;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch02_pid::Opts,
    /// Connect the container to the host with a veth pair: the host side gets
    /// CIDR's address, the container's eth0 the next one and a default route
    /// via the host side. Without CIDR: a /30 in 10.200.0.0/16 picked from
    /// the runtime's pid.
    #[arg(long, value_name = "CIDR")]
    pub veth: Option<Option<Cidr>>,
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
        if let Some(cidr) = self.veth {
            let host = cidr.unwrap_or_else(|| default_subnet(std::process::id()));
            steps.push(Box::new(Veth::new(host)));
        }
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

// ANCHOR: default_subnet
/// The subnet of a bare `--veth`. 10.200.0.0/16 holds 65536 / 4 = 16384
/// subnets of 4 addresses (/30: network, host side, container, broadcast);
/// the runtime's pid picks one, index = pid % 16384. Containers running at
/// the same time have different pids, so they collide only when their pids
/// are 16384 apart; prepare() checks the host for that, and `--veth CIDR`
/// picks a subnet by hand.
pub fn default_subnet(pid: u32) -> Cidr {
    let index = pid % 16384;
    let network = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + index * 4;
    Cidr {
        addr: Ipv4Addr::from(network + 1),
        prefix: 30,
    }
}
// ANCHOR_END: default_subnet

/// An IPv4 address with its prefix length, `10.200.7.1/30`: the host side's
/// address in `--veth`. Parsing checks that the next address, the
/// container's, is in the same subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    fn mask(self) -> u32 {
        u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0)
    }
    /// The subnet's first address, `10.200.7.0` for `10.200.7.1/30`.
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) ^ u32::from(self.addr)) & self.mask() == 0
    }
    /// The next address, in the same subnet: the container's.
    pub fn next(self) -> Cidr {
        Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr).wrapping_add(1)),
            prefix: self.prefix,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| "expected ADDRESS/PREFIX, e.g. 10.200.7.1/30".to_string())?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{prefix:?} is not a prefix length (0 to 32)"))?;
        // 0/8 "this network", 127/8 loopback, 224/3 multicast, reserved and broadcast.
        let first = addr.octets()[0];
        if first == 0 || first == 127 || first >= 224 {
            return Err(format!(
                "{addr} is not an ordinary unicast address; try e.g. 10.200.7.1/30"
            ));
        }
        let cidr = Cidr { addr, prefix };
        let network = u32::from(cidr.network());
        let last = network | !cidr.mask();
        let host = u32::from(addr);
        let room = match prefix {
            32 => false,
            // RFC 3021: in a /31 both addresses are hosts.
            31 => host == network,
            // Otherwise the first is the network's and the last the broadcast
            // address: the host side and the next one must be in between.
            _ => host > network && host < last - 1,
        };
        if !room {
            return Err(format!(
                "{cidr} leaves no room for two addresses (host side, then container) \
                 in {}/{prefix}; try e.g. {}/30",
                cidr.network(),
                Ipv4Addr::from((host & !3) + 1),
            ));
        }
        Ok(cidr)
    }
}

// ANCHOR: veth
/// The container end's name. It is created in the container's netns
/// directly, so it cannot collide with the host's eth0.
const CONTAINER_IF: &str = "eth0";

/// `--veth`: a veth pair, `sb<id>` on the host and `eth0` in the container.
struct Veth {
    /// The host side's address; the container's is the next one.
    host: Cidr,
    /// The host side's name, from the container's id (set by prepare()).
    host_if: String,
    /// Whether we created the pair, so that cleanup() deletes it (and no
    /// interface of the same name that was there before us).
    created: bool,
}

impl Veth {
    fn new(host: Cidr) -> Self {
        Veth {
            host,
            host_if: String::new(),
            created: false,
        }
    }
}

impl Step for Veth {
    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        // "sb" + the id (8 hex digits; up to 12 when a test sets it): at most
        // 14 bytes, within IFNAMSIZ (15 and a NUL).
        self.host_if = format!("sb{}", ctx.id);
        if self.host_if.len() > 15 {
            return Err(Error::runtime(format!(
                "veth name {:?} is longer than 15 bytes",
                self.host_if
            )));
        }
        check_free(self.host)
    }

    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        let host_if = &self.host_if;
        let mut nl = netlink::Socket::open().context("socket(2) AF_NETLINK NETLINK_ROUTE")?;
        ctx.say(format_args!(
            "netlink RTM_NEWLINK veth {host_if} <-> {CONTAINER_IF} (in pid {child}'s netns)"
        ));
        nl.request(new_veth(host_if, CONTAINER_IF, child))
            .map_err(failed(format!(
                "netlink RTM_NEWLINK veth {host_if} <-> {CONTAINER_IF} in pid {child}'s netns"
            )))?;
        // One message made both ends: from here on there is something to delete.
        self.created = true;
        configure(ctx, &mut nl, host_if, self.host)?;
        Ok(())
    }

    fn in_child(&self, ctx: &Ctx) -> Result<()> {
        // Opened in the child, the socket talks to the container's netns.
        let mut nl = netlink::Socket::open().context("socket(2) AF_NETLINK NETLINK_ROUTE")?;
        let index = configure(ctx, &mut nl, CONTAINER_IF, self.host.next())?;
        let gateway = self.host.addr;
        ctx.say(format_args!(
            "netlink RTM_NEWROUTE default via {gateway} dev {CONTAINER_IF}"
        ));
        nl.request(new_default_route(gateway, index))
            .map_err(failed(format!(
                "netlink RTM_NEWROUTE default via {gateway} dev {CONTAINER_IF}"
            )))
    }

    fn cleanup(&mut self, ctx: &Ctx) -> Result<()> {
        if !self.created {
            return Ok(());
        }
        // Deleting one end deletes both. When the container's netns goes, so
        // does the pair, so it may be gone already: ENODEV is fine.
        ctx.say(format_args!("netlink RTM_DELLINK {}", self.host_if));
        let result = netlink::Socket::open()
            .map_err(|errno| netlink::Refused { errno, why: None })
            .and_then(|mut nl| nl.request(del_link(&self.host_if)));
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.errno == Errno::ENODEV => Ok(()),
            Err(e) => Err(Error::runtime(format!(
                "netlink RTM_DELLINK {}: {e}; the veth {} is left on the host (ip link del {})",
                self.host_if, self.host_if, self.host_if
            ))),
        }
    }
}
// ANCHOR_END: veth

// ANCHOR: new_veth
/// `ip link add HOST type veth peer name PEER netns PID`, as one RTM_NEWLINK:
///
/// ```text
/// nlmsghdr   RTM_NEWLINK, NLM_F_CREATE|NLM_F_EXCL (fail if HOST exists)
/// ifinfomsg  all zero: a new interface
/// IFLA_IFNAME      "sb1a2b3c4d"
/// IFLA_LINKINFO    (nest)
///   IFLA_INFO_KIND   "veth"
///   IFLA_INFO_DATA   (nest: veth's own attributes)
///     VETH_INFO_PEER   (nest: the other end, described like a whole link)
///       ifinfomsg        all zero
///       IFLA_IFNAME      "eth0"
///       IFLA_NET_NS_PID  PID: created in that process's netns
/// ```
fn new_veth(host_if: &str, peer_if: &str, child: Pid) -> Message {
    let flags = netlink::NLM_F_CREATE | netlink::NLM_F_EXCL;
    let mut m = Message::new(netlink::RTM_NEWLINK, flags, &netlink::ifinfomsg(0, 0, 0));
    m.attr_str(netlink::IFLA_IFNAME, host_if);
    m.nest(netlink::IFLA_LINKINFO, |m| {
        m.attr(netlink::IFLA_INFO_KIND, b"veth");
        m.nest(netlink::IFLA_INFO_DATA, |m| {
            m.nest(netlink::VETH_INFO_PEER, |m| {
                m.raw(&netlink::ifinfomsg(0, 0, 0));
                m.attr_str(netlink::IFLA_IFNAME, peer_if);
                m.attr_u32(netlink::IFLA_NET_NS_PID, child.as_raw() as u32);
            });
        });
    });
    m
}
// ANCHOR_END: new_veth

// ANCHOR: configure
/// `ip addr add ADDR dev NAME` then `ip link set NAME up`, in the netns the
/// socket was opened in; returns NAME's index.
fn configure(ctx: &Ctx, nl: &mut netlink::Socket, name: &str, addr: Cidr) -> Result<u32> {
    let index = nix::net::if_::if_nametoindex(name).context(format!("if_nametoindex(3) {name}"))?;

    // ifaddrmsg names the interface and the prefix length; IFA_LOCAL is this
    // end's address and IFA_ADDRESS the same again (they differ only on
    // point-to-point links, where IFA_ADDRESS is the peer's).
    ctx.say(format_args!("netlink RTM_NEWADDR {addr} dev {name}"));
    let flags = netlink::NLM_F_CREATE | netlink::NLM_F_EXCL;
    let mut m = Message::new(
        netlink::RTM_NEWADDR,
        flags,
        &netlink::ifaddrmsg(addr.prefix, index),
    );
    m.attr_ipv4(netlink::IFA_LOCAL, addr.addr);
    m.attr_ipv4(netlink::IFA_ADDRESS, addr.addr);
    nl.request(m)
        .map_err(failed(format!("netlink RTM_NEWADDR {addr} dev {name}")))?;

    // RTM_NEWLINK on an existing interface changes it: ifi_change says which
    // flags to touch, ifi_flags their new values.
    ctx.say(format_args!("netlink RTM_NEWLINK {name} IFF_UP"));
    let up = libc::IFF_UP as u32;
    let m = Message::new(netlink::RTM_NEWLINK, 0, &netlink::ifinfomsg(index, up, up));
    nl.request(m)
        .map_err(failed(format!("netlink RTM_NEWLINK {name} IFF_UP")))?;
    Ok(index)
}
// ANCHOR_END: configure

/// `ip route add default via GATEWAY dev INDEX`: a route to 0.0.0.0/0.
fn new_default_route(gateway: Ipv4Addr, index: u32) -> Message {
    let flags = netlink::NLM_F_CREATE | netlink::NLM_F_EXCL;
    let mut m = Message::new(netlink::RTM_NEWROUTE, flags, &netlink::rtmsg(0));
    m.attr_ipv4(netlink::RTA_GATEWAY, gateway);
    m.attr_u32(netlink::RTA_OIF, index);
    m
}

/// `ip link del NAME`: an RTM_DELLINK that names the interface instead of
/// giving its index.
fn del_link(name: &str) -> Message {
    let mut m = Message::new(netlink::RTM_DELLINK, 0, &netlink::ifinfomsg(0, 0, 0));
    m.attr_str(netlink::IFLA_IFNAME, name);
    m
}

/// For `.map_err()`: one line naming the request, then why the kernel refused it.
fn failed(what: String) -> impl FnOnce(netlink::Refused) -> Error {
    move |e| Error::runtime(format!("{what}: {e}"))
}

/// The kernel accepts the same IPv4 address on two interfaces (and two
/// routes to one subnet), so an address that is in use would not fail: the
/// host would route to one container or the other. Refuse a subnet in which
/// any of the host's interfaces has an address (another container's veth, say).
fn check_free(host: Cidr) -> Result<()> {
    let subnet = Cidr {
        addr: host.network(),
        prefix: host.prefix,
    };
    for ifa in nix::ifaddrs::getifaddrs().context("getifaddrs(3)")? {
        let Some(addr) = ifa.address.as_ref().and_then(|a| a.as_sockaddr_in()) else {
            continue;
        };
        if subnet.contains(addr.ip()) {
            return Err(Error::runtime(format!(
                "--veth {host}: {} is already in use on the host ({}), in subnet {subnet}; \
                 choose another subnet with --veth ADDRESS/PREFIX",
                addr.ip(),
                ifa.interface_name
            )));
        }
    }
    Ok(())
}
