//! Chapter 3: a network namespace.
//!
//! `CLONE_NEWNET` gives the child its own network stack: its own interfaces,
//! routes, firewall and sockets. A new one holds only `lo`, and down at that.
//!
//! With `--veth` the container also gets a cable to the host: a veth pair,
//! two interfaces joined back to back, one end on the host and the other
//! (`eth0`) in the container, made and configured with rtnetlink messages
//! (see [`netlink`]). That needs root; `--network slirp4netns` does not
//! (see [`slirp`]).

pub mod netlink;
pub mod slirp;

use ch01_process::state::{Resource, Undo};
use ch01_process::{Chapter, Context, Ctx, Error, Result, Step, Steps};
use clap::Args;
use netlink::Message;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use std::fmt;
use std::fs::File;
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
    /// via the host side. CIDR's subnet must not overlap any address or route
    /// on the host. Without CIDR: the first free /30 in 10.200.0.0/16.
    #[arg(long, value_name = "CIDR")]
    pub veth: Option<Option<Cidr>>,
    /// `slirp4netns`: connect the container through slirp4netns(1), a
    /// TCP/IP stack in user space on the host, as the caller: it needs no
    /// root. The container's tap0 is 10.0.2.100/24, with a default route
    /// via 10.0.2.2 and DNS at 10.0.2.3; the host's 127.0.0.1 is not
    /// reachable.
    #[arg(long, value_name = "MODE", value_parser = ["slirp4netns"], conflicts_with = "veth")]
    pub network: Option<String>,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch03-net";
    const ABOUT: &'static str = "Run COMMAND in new pid and network namespaces.";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
            veth: self
                .veth
                .map(|cidr| cidr.map_or(Subnet::FirstFree, Subnet::Given)),
            slirp4netns: self.network.is_some(),
        }
    }
}

/// Chapter 3's part of the configuration: the network.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub prev: ch02_pid::Config,
    /// A veth pair to the host, in this subnet; None: only `lo`.
    pub veth: Option<Subnet>,
    /// A tap device served by slirp4netns on the host (`--network slirp4netns`).
    pub slirp4netns: bool,
}

/// Where a veth pair's addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subnet {
    /// The first /30 of 10.200.0.0/16 that nothing on the host uses.
    FirstFree,
    /// The host side's address; the container's is the next one.
    Given(Cidr),
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(NetNamespace));
        if let Some(subnet) = self.veth {
            steps.push(Box::new(Veth::new(subnet)));
        }
        if self.slirp4netns {
            steps.push(Box::new(slirp::Slirp::default()));
        }
        steps
    }
}
// ANCHOR_END: opts

// ANCHOR: step
struct NetNamespace;

impl Step for NetNamespace {
    fn clone_flags(&self) -> CloneFlags {
        // lab: begin the clone(2) flag that gives the child a network stack of its own
        CloneFlags::CLONE_NEWNET
        // lab: end
    }

    fn setup(&self, ctx: &Ctx) -> Result<()> {
        ctx.say(format_args!("ioctl(2) SIOCSIFFLAGS lo IFF_UP"));
        set_up("lo")
    }

    // Here rather than in Veth, which exists only with --veth: a sweep by a
    // run without it must still remove the veth of a killed run with it.
    fn undo(&self, undo: &mut Undo) {
        undo.link = Some(undo_link);
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
    // SAFETY: an all-zero ifreq is valid: an empty name, zero flags.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // lab: begin ioctl(2) SIOCGIFFLAGS, add IFF_UP to ifru_flags, ioctl(2) SIOCSIFFLAGS
    let fd = sock.as_raw_fd();
    // `name` (lo, eth0) is shorter than IFNAMSIZ: the zeroed tail ends it.
    // SAFETY: SIOCGIFFLAGS reads the name from and writes into `req`, a valid ifreq.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(nix::errno::Errno::last()).context(format!("ioctl(2) SIOCGIFFLAGS {name}"));
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags member.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as for SIOCGIFFLAGS; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(nix::errno::Errno::last()).context(format!("ioctl(2) SIOCSIFFLAGS {name} up"));
    }
    Ok(())
    // lab: end
}
// ANCHOR_END: up

// ANCHOR: pick_free
/// Where a bare `--veth` takes its subnet from: 10.200.0.0/16 holds
/// 65536 / 4 = 16384 subnets of 4 addresses (/30: network, host side,
/// container, broadcast).
const POOL: Cidr = Cidr {
    addr: Ipv4Addr::new(10, 200, 0, 0),
    prefix: 16,
};

/// The subnet of a bare `--veth`: the first /30 of [`POOL`] that overlaps
/// nothing in `in_use`, as its host side's address (`10.200.0.1/30`).
/// Called with the veth lock held, so that two runtimes never pick the same.
pub fn pick_free(in_use: &[InUse]) -> Option<Cidr> {
    let first = u32::from(POOL.addr);
    (0..1u32 << (30 - POOL.prefix))
        .map(|i| Cidr {
            addr: Ipv4Addr::from(first + i * 4),
            prefix: 30,
        })
        .find(|subnet| first_overlap(*subnet, in_use).is_none())
        .map(|subnet| Cidr {
            addr: Ipv4Addr::from(u32::from(subnet.addr) + 1),
            prefix: 30,
        })
}
// ANCHOR_END: pick_free

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
    /// The subnet itself, `10.200.7.0/30` for `10.200.7.1/30`.
    pub fn subnet(self) -> Cidr {
        Cidr {
            addr: self.network(),
            prefix: self.prefix,
        }
    }
    /// Whether the two subnets share an address: then one contains the
    /// other (10.9.9.4/30 is inside 10.9.9.0/24, and the other way round).
    pub fn overlaps(self, other: Cidr) -> bool {
        let wider = if self.prefix < other.prefix {
            self
        } else {
            other
        };
        wider.contains(self.addr) && wider.contains(other.addr)
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
    wanted: Subnet,
    /// The host side's address (set by prepare()); the container's is the next one.
    host: Cidr,
    /// The host side's name, from the container's id (set by prepare()).
    host_if: String,
    /// Whether we created the pair, so that cleanup() deletes it (and no
    /// interface of the same name that was there before us).
    created: bool,
    /// Held from the check in prepare() until the host side has its address:
    /// until then the subnet is chosen but nobody else can see it.
    lock: Option<Flock<File>>,
}

impl Veth {
    fn new(wanted: Subnet) -> Self {
        Veth {
            wanted,
            host: POOL,
            host_if: String::new(),
            created: false,
            lock: None,
        }
    }
}

impl Step for Veth {
    fn check(&mut self, ctx: &mut Ctx) -> Result<()> {
        // The host end lives in the host's network namespace, where only
        // CAP_NET_ADMIN over it (root) may make an interface: a caller in
        // a user namespace of their own (chapter 11) has it only over the
        // container's. What connects them instead is a program of theirs
        // on the host that speaks TCP/IP to the container through a tap
        // device inside and makes ordinary sockets outside.
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::runtime(
                "--veth needs root: a veth pair has an end on the host, and only root may \
                 make an interface there; without root, a network stack in user space \
                 connects a container instead (slirp4netns, or pasta): use --network slirp4netns",
            ));
        }
        // "sb" + the id (8 hex digits; up to 12 when a test sets it): at most
        // 14 bytes, within IFNAMSIZ (15 and a NUL).
        self.host_if = format!("sb{}", ctx.id);
        if self.host_if.len() > 15 {
            return Err(Error::runtime(format!(
                "veth name {:?} is longer than 15 bytes",
                self.host_if
            )));
        }
        Ok(())
    }

    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        // Checking that a subnet is free and taking it are two steps; the
        // lock makes them one for every runtime on the machine, so that two
        // containers started together cannot both find the same subnet free.
        let lock = lock_subnets(ctx)?;
        let in_use = in_use(ctx)?;
        self.host = match self.wanted {
            Subnet::Given(host) => {
                check_free(host, &in_use)?;
                host
            }
            Subnet::FirstFree => pick_free(&in_use).ok_or_else(|| {
                Error::runtime(format!(
                    "--veth: no free /30 left in {POOL}: each overlaps an address or a \
                     route on the host; choose a subnet with --veth ADDRESS/PREFIX"
                ))
            })?,
        };
        ctx.say(format_args!("--veth: {} is free", self.host.subnet()));
        self.lock = Some(lock);
        Ok(())
    }

    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        let host_if = &self.host_if;
        let mut nl = netlink::Socket::open().context("socket(2) AF_NETLINK NETLINK_ROUTE")?;
        // The veth usually dies with the container's netns, but not while
        // anything else holds that netns: recorded, for a sweep.
        ctx.record(Resource::Link {
            name: host_if.clone(),
        })?;
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
        // The subnet now shows in every other runtime's check: let them in.
        ctx.say(format_args!("flock(2) {LOCK_FILE} LOCK_UN"));
        self.lock = None;
        Ok(())
    }

    fn setup(&self, ctx: &Ctx) -> Result<()> {
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
        // Still held if setup failed before the host side was configured.
        self.lock = None;
        if !self.created {
            return Ok(());
        }
        undo_link(ctx, &self.host_if)
    }
}
// ANCHOR_END: veth

/// `ip link del NAME`, for cleanup() and for a sweep of a killed run's
/// record. Deleting one end deletes both. When the container's netns goes,
/// so does the pair, so it may be gone already: ENODEV is fine.
fn undo_link(ctx: &Ctx, name: &str) -> Result<()> {
    ctx.say(format_args!("netlink RTM_DELLINK {name}"));
    let result = netlink::Socket::open()
        .map_err(|errno| netlink::Refused { errno, why: None })
        .and_then(|mut nl| nl.request(del_link(name)));
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.errno == Errno::ENODEV => Ok(()),
        Err(e) => Err(Error::runtime(format!(
            "netlink RTM_DELLINK {name}: {e}; the veth {name} is left on the host (ip link del {name})"
        ))),
    }
}

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

// ANCHOR: in_use
/// Where runtimes serialise their choice of subnet (see [`Veth`]'s prepare).
const LOCK_DIR: &str = "/run/stepbox";
const LOCK_FILE: &str = "/run/stepbox/veth.lock";

/// An exclusive flock(2) on [`LOCK_FILE`], released by dropping it. Two
/// runtimes in different network namespaces share it too: needless for
/// them, but harmless, as it is held only for a moment.
fn lock_subnets(ctx: &Ctx) -> Result<Flock<File>> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(LOCK_DIR) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(e).context(format!("mkdir {LOCK_DIR}"));
        }
        _ => {}
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(LOCK_FILE)
        .context(format!("open {LOCK_FILE}"))?;
    ctx.say(format_args!("flock(2) {LOCK_FILE} LOCK_EX"));
    // Blocks while another runtime chooses its subnet (a moment). The
    // forwarded signals are blocked, so a Ctrl-C meanwhile waits for it.
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .context(format!("flock(2) {LOCK_FILE}"))
}

/// A subnet that is taken on the host, and by what, for the message.
#[derive(Debug, Clone)]
pub struct InUse {
    pub net: Cidr,
    pub what: String,
}

/// Every subnet the host uses: its interfaces' addresses with their
/// prefixes (an RTM_GETADDR dump), and the destinations of every route in
/// every routing table (an RTM_GETROUTE dump: `ip route show table all`,
/// which includes the kernel's `local` and `broadcast` routes of each
/// address). Default routes are left out, as docker does: they contain
/// every subnet, and a more specific route is what a veth is for.
fn in_use(ctx: &Ctx) -> Result<Vec<InUse>> {
    let mut nl = netlink::Socket::open().context("socket(2) AF_NETLINK NETLINK_ROUTE")?;
    let mut found = Vec::new();
    ctx.say(format_args!("netlink RTM_GETADDR dump"));
    let addrs = nl
        .dump(Message::dump(
            netlink::RTM_GETADDR,
            &netlink::ifaddrmsg(0, 0),
        ))
        .map_err(failed("netlink RTM_GETADDR dump (ip addr show)".into()))?;
    for a in addrs.iter().filter_map(|m| netlink::parse_address(m)) {
        for addr in [a.local, a.peer] {
            // An address /0 would claim everything: count it as itself only.
            let prefix = if a.prefix_len == 0 { 32 } else { a.prefix_len };
            found.push(InUse {
                net: Cidr { addr, prefix },
                what: format!("the host's address {addr}/{} on {}", a.prefix_len, a.label),
            });
        }
    }
    ctx.say(format_args!("netlink RTM_GETROUTE dump"));
    let routes = nl
        // Of the header, a dump request only reads the family (unless the
        // socket asked for strict checking, which this one does not).
        .dump(Message::dump(netlink::RTM_GETROUTE, &netlink::rtmsg(0)))
        .map_err(failed(
            "netlink RTM_GETROUTE dump (ip route show table all)".into(),
        ))?;
    for r in routes.iter().filter_map(|m| netlink::parse_route(m)) {
        if r.dst_len == 0 {
            continue;
        }
        let table = match r.table {
            t if t == netlink::RT_TABLE_MAIN as u32 => "main".to_string(),
            t if t == netlink::RT_TABLE_LOCAL as u32 => "local".to_string(),
            t => t.to_string(),
        };
        found.push(InUse {
            net: Cidr {
                addr: r.dst,
                prefix: r.dst_len,
            },
            what: format!(
                "the host's route to {}/{} in table {table}",
                r.dst, r.dst_len
            ),
        });
    }
    Ok(found)
}

/// The first subnet of `in_use` that shares an address with `subnet`.
pub fn first_overlap(subnet: Cidr, in_use: &[InUse]) -> Option<&InUse> {
    in_use.iter().find(|u| u.net.overlaps(subnet))
}

/// The kernel accepts the same IPv4 address on two interfaces, and a route
/// to a subnet inside another one, so an overlapping subnet would not fail:
/// the host would send part of its traffic to the container. Refuse a
/// subnet that overlaps anything the host uses, in either direction.
fn check_free(host: Cidr, in_use: &[InUse]) -> Result<()> {
    let subnet = host.subnet();
    match first_overlap(subnet, in_use) {
        None => Ok(()),
        Some(u) => Err(Error::runtime(format!(
            "--veth {host}: subnet {subnet} overlaps {}; choose a free \
             subnet with --veth ADDRESS/PREFIX, or let a bare --veth pick one",
            u.what
        ))),
    }
}
// ANCHOR_END: in_use

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Cidr {
        let (a, p) = s.split_once('/').unwrap();
        Cidr {
            addr: a.parse().unwrap(),
            prefix: p.parse().unwrap(),
        }
    }

    fn used(nets: &[&str]) -> Vec<InUse> {
        nets.iter()
            .map(|n| InUse {
                net: net(n),
                what: format!("the host's route to {n}"),
            })
            .collect()
    }

    #[test]
    fn overlap_is_checked_both_ways() {
        // A /30 carved out of an on-link /24: the old check asked only
        // whether a host address lay inside the /30, and 10.9.9.1 does not.
        assert!(net("10.9.9.4/30").overlaps(net("10.9.9.0/24")));
        assert!(net("10.9.9.0/24").overlaps(net("10.9.9.4/30")));
        assert!(net("10.9.9.4/30").overlaps(net("10.9.9.5/32")));
        assert!(!net("10.9.9.4/30").overlaps(net("10.9.9.8/30")));
        assert!(!net("10.9.9.4/30").overlaps(net("10.9.10.0/24")));
        assert!(net("10.0.0.0/8").overlaps(net("10.200.3.0/30")));
        let err = check_free(cidr("10.9.9.5/30"), &used(&["10.9.9.0/24"])).unwrap_err();
        assert_eq!(
            err.msg,
            "--veth 10.9.9.5/30: subnet 10.9.9.4/30 overlaps the host's route to \
             10.9.9.0/24; choose a free subnet with --veth ADDRESS/PREFIX, or let a bare \
             --veth pick one"
        );
        assert!(check_free(cidr("10.9.8.1/30"), &used(&["10.9.9.0/24"])).is_ok());
    }

    #[test]
    fn a_bare_veth_takes_the_first_free_30() {
        assert_eq!(pick_free(&[]), Some(cidr("10.200.0.1/30")));
        // Another container's subnet, and the kernel's local route of it.
        let taken = used(&["10.200.0.0/30", "10.200.0.1/32", "10.200.0.8/29"]);
        assert_eq!(pick_free(&taken), Some(cidr("10.200.0.5/30")));
        let taken = used(&["10.200.0.0/29", "10.200.0.12/32", "10.200.0.14/31"]);
        assert_eq!(pick_free(&taken), Some(cidr("10.200.0.9/30")));
        // The whole pool taken, by one route or by a wider one.
        assert_eq!(pick_free(&used(&["10.200.0.0/16"])), None);
        assert_eq!(pick_free(&used(&["10.0.0.0/8"])), None);
        // Routes elsewhere do not matter.
        assert_eq!(
            pick_free(&used(&["10.201.0.0/16", "192.168.0.0/16"])),
            Some(cidr("10.200.0.1/30"))
        );
    }

    #[test]
    fn cidrs_are_parsed() {
        assert_eq!(cidr("10.200.7.1/30"), net("10.200.7.1/30"));
        assert_eq!(cidr("10.200.7.0/31"), net("10.200.7.0/31"));
        for bad in [
            "10.200.7.1",
            "10.200.7.1/33",
            "10.200.7.1/",
            "300.1.1.1/30",
            "127.0.0.1/8",
            "224.0.0.1/30",
            "0.1.2.3/30",
            "10.200.7.0/30", // the network's own address
            "10.200.7.2/30", // the next one would be the broadcast address
            "10.200.7.1/31", // in a /31 the host side must be the first
            "10.200.7.1/32", // no room for the container
            "10.2.3.4/30\n", // trailing garbage, quoted in the message
        ] {
            let err = bad.parse::<Cidr>().unwrap_err();
            assert!(!err.contains('\n'), "{bad:?}: {err}");
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn check(s: &str) -> std::result::Result<(), TestCaseError> {
            match s.parse::<Cidr>() {
                Err(e) => {
                    prop_assert!(!e.is_empty() && !e.chars().any(char::is_control), "{e:?}");
                }
                Ok(c) => {
                    let subnet = c.subnet();
                    let next = c.next();
                    prop_assert!(subnet.contains(c.addr) && subnet.contains(next.addr));
                    prop_assert_eq!(next.subnet(), subnet);
                    prop_assert!(c.prefix <= 31);
                    let network = u32::from(subnet.addr);
                    let broadcast = network | !subnet.mask();
                    if c.prefix == 31 {
                        // RFC 3021: both addresses are hosts, in order.
                        prop_assert_eq!(u32::from(c.addr), network);
                        prop_assert_eq!(u32::from(next.addr), broadcast);
                    } else {
                        prop_assert!(u32::from(c.addr) != network);
                        prop_assert!(u32::from(next.addr) != broadcast);
                    }
                    // It prints as it was given, and parses back.
                    prop_assert_eq!(c.to_string().parse::<Cidr>(), Ok(c));
                }
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn any_text(s in "\\PC{0,24}") {
                check(&s)?;
            }

            #[test]
            fn near_misses(s in "[0-9]{1,4}(\\.[0-9]{1,4}){0,4}(/[0-9+-]{0,3})?[ \n/x]?") {
                check(&s)?;
            }

            #[test]
            fn any_address(a in any::<u32>(), prefix in 0u8..=33) {
                check(&format!("{}/{prefix}", Ipv4Addr::from(a)))?;
            }
        }
    }
}
