//! rtnetlink by hand: the messages `ip link`, `ip addr` and `ip route` send.
//!
//! A netlink socket (`socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)`) carries
//! datagrams between a process and the kernel's routing subsystem. Every
//! request is one message, laid out as `man 7 netlink` and `man 7 rtnetlink`
//! describe, in host byte order, each part padded to a multiple of 4 bytes:
//!
//! ```text
//!  ┌───────────────┬─────────────────────────┬────────┬────────┬───
//!  │ struct        │ the type's fixed header │ rtattr │ rtattr │ ...
//!  │ nlmsghdr (16) │ ifinfomsg, ifaddrmsg,   │        │        │
//!  │               │ rtmsg ...               │        │        │
//!  └───────────────┴─────────────────────────┴────────┴────────┴───
//!
//!  struct nlmsghdr { u32 nlmsg_len;   // the whole message, header included
//!                    u16 nlmsg_type;  // RTM_NEWLINK, RTM_NEWADDR, ...
//!                    u16 nlmsg_flags; // NLM_F_REQUEST | NLM_F_ACK | ...
//!                    u32 nlmsg_seq;   // ours, echoed in the answer
//!                    u32 nlmsg_pid; } // the sender's port: 0, the kernel fills it in
//!
//!  struct rtattr   { u16 rta_len;     // 4 + payload (before padding)
//!                    u16 rta_type; }  // IFLA_IFNAME, IFA_LOCAL, ...
//!                    followed by the payload, padded to 4 bytes
//! ```
//!
//! An attribute's payload may itself be a list of attributes (a "nest"):
//! that is how `IFLA_LINKINFO` carries the link kind and its kind-specific data.
//!
//! With `NLM_F_ACK` the kernel answers every request with an `NLMSG_ERROR`
//! message: `struct nlmsgerr { int error; struct nlmsghdr msg; }`, where
//! `error` is 0 for success or a negative errno, the same errno the
//! equivalent ioctl(2) or syscall would return.

use nix::errno::Errno;
use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

// The numbers below come from the kernel's uapi headers (they are ABI: they
// never change). The header each comes from is named above it.

// <linux/netlink.h>
const NLM_F_REQUEST: u16 = 0x01; // a request (every message we send)
const NLM_F_ACK: u16 = 0x04; // answer with an NLMSG_ERROR, even on success
pub const NLM_F_EXCL: u16 = 0x200; // fail with EEXIST if it exists already
pub const NLM_F_CREATE: u16 = 0x400; // create it if it does not exist
const NLMSG_ERROR: u16 = 2; // the type of an ack or of an error
const NLM_F_CAPPED: u16 = 0x100; // in an ack: our request is not echoed back
const NLM_F_ACK_TLVS: u16 = 0x200; // in an ack: attributes (NLMSGERR_ATTR_*) follow
const NLMSGERR_ATTR_MSG: u16 = 1; // the kernel's explanation, a string
const NETLINK_CAP_ACK: libc::c_int = 10; // socket option: don't echo the request in acks
const NETLINK_EXT_ACK: libc::c_int = 11; // socket option: explain errors in acks

// <linux/rtnetlink.h>: message types, and the fields of struct rtmsg.
pub const RTM_NEWLINK: u16 = 16; // create a link, or change one
pub const RTM_DELLINK: u16 = 17;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTA_OIF: u16 = 4; // a route's output interface (u32 index)
pub const RTA_GATEWAY: u16 = 5; // a route's next hop (an address)
const RT_TABLE_MAIN: u8 = 254; // the table `ip route` shows
const RTPROT_BOOT: u8 = 3; // "added by a tool", what `ip route add` uses
const RT_SCOPE_UNIVERSE: u8 = 0; // a route to anywhere
const RTN_UNICAST: u8 = 1; // a plain route via a gateway or a link

// <linux/if_link.h>: the attributes of RTM_NEWLINK.
pub const IFLA_IFNAME: u16 = 3; // the interface's name, NUL-terminated
pub const IFLA_LINKINFO: u16 = 18; // nest: what kind of virtual device
pub const IFLA_NET_NS_PID: u16 = 19; // u32: create it in this process's netns
pub const IFLA_INFO_KIND: u16 = 1; // in IFLA_LINKINFO: "veth", "bridge", ...
pub const IFLA_INFO_DATA: u16 = 2; // in IFLA_LINKINFO: nest, the kind's own attributes

// <linux/veth.h>
pub const VETH_INFO_PEER: u16 = 1; // in IFLA_INFO_DATA: the other end (see create_veth)

// <linux/if_addr.h>: the attributes of RTM_NEWADDR.
pub const IFA_ADDRESS: u16 = 1; // the address (the peer's, on point-to-point links)
pub const IFA_LOCAL: u16 = 2; // the address of this end

/// Rounds up to the 4-byte boundary every part of a message starts on
/// (NLMSG_ALIGN and RTA_ALIGN in the C headers).
fn align(len: usize) -> usize {
    (len + 3) & !3
}

// ANCHOR: headers
/// `struct ifinfomsg`, the fixed header of RTM_*LINK (16 bytes): which
/// interface (index 0: none yet, or named by IFLA_IFNAME), and which of its
/// flags to change (`change` is the mask, `flags` the new values).
pub fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut h = vec![libc::AF_UNSPEC as u8, 0]; // ifi_family, padding
    h.extend(0u16.to_ne_bytes()); // ifi_type (ARPHRD_*): the kernel's to set
    h.extend(index.to_ne_bytes()); // ifi_index
    h.extend(flags.to_ne_bytes()); // ifi_flags: IFF_UP, ...
    h.extend(change.to_ne_bytes()); // ifi_change
    h
}

/// `struct ifaddrmsg`, the fixed header of RTM_*ADDR (8 bytes).
pub fn ifaddrmsg(prefix_len: u8, index: u32) -> Vec<u8> {
    let mut h = vec![
        libc::AF_INET as u8, // ifa_family
        prefix_len,          // ifa_prefixlen: the /N
        0,                   // ifa_flags
        RT_SCOPE_UNIVERSE,   // ifa_scope: reachable from anywhere ("scope global")
    ];
    h.extend(index.to_ne_bytes()); // ifa_index: the interface
    h
}

/// `struct rtmsg`, the fixed header of RTM_*ROUTE (12 bytes), for an IPv4
/// unicast route to `dst_len` bits of destination (0: the default route).
pub fn rtmsg(dst_len: u8) -> Vec<u8> {
    let mut h = vec![
        libc::AF_INET as u8, // rtm_family
        dst_len,             // rtm_dst_len
        0,                   // rtm_src_len
        0,                   // rtm_tos
        RT_TABLE_MAIN,       // rtm_table
        RTPROT_BOOT,         // rtm_protocol: who added it
        RT_SCOPE_UNIVERSE,   // rtm_scope
        RTN_UNICAST,         // rtm_type
    ];
    h.extend(0u32.to_ne_bytes()); // rtm_flags
    h
}
// ANCHOR_END: headers

// ANCHOR: message
/// One request being built: nlmsghdr, fixed header, attributes.
pub struct Message {
    buf: Vec<u8>,
}

impl Message {
    /// A request of type `kind` with `header` (ifinfomsg, ...) after the
    /// nlmsghdr. NLM_F_REQUEST and NLM_F_ACK are always set.
    pub fn new(kind: u16, flags: u16, header: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend(0u32.to_ne_bytes()); // nlmsg_len: known when sent
        buf.extend(kind.to_ne_bytes()); // nlmsg_type
        buf.extend((NLM_F_REQUEST | NLM_F_ACK | flags).to_ne_bytes()); // nlmsg_flags
        buf.extend(0u32.to_ne_bytes()); // nlmsg_seq: set by Socket::request
        buf.extend(0u32.to_ne_bytes()); // nlmsg_pid
        let mut m = Message { buf };
        m.raw(header);
        m
    }

    /// Appends bytes as they are, padded: a fixed header.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    /// Appends one attribute: rtattr { rta_len, rta_type }, payload, padding.
    pub fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf.extend((len as u16).to_ne_bytes());
        self.buf.extend(kind.to_ne_bytes());
        self.raw(payload)
    }

    /// A string attribute (an interface name): C strings end with a NUL.
    pub fn attr_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut payload = s.as_bytes().to_vec();
        payload.push(0);
        self.attr(kind, &payload)
    }

    pub fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// An IPv4 address attribute: 4 bytes in network order, as in sockaddr_in.
    pub fn attr_ipv4(&mut self, kind: u16, addr: Ipv4Addr) -> &mut Self {
        self.attr(kind, &addr.octets())
    }

    /// A nested attribute: its payload is whatever `inside` appends. Its
    /// rta_len is written once that is known.
    pub fn nest(&mut self, kind: u16, inside: impl FnOnce(&mut Self)) -> &mut Self {
        let start = self.buf.len();
        self.attr(kind, &[]);
        inside(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }
}
// ANCHOR_END: message

/// The kernel refused a request: the errno, and its explanation if it gave one
/// (extended acks, Linux 4.12+: "Invalid prefix for given prefix length", ...).
#[derive(Debug)]
pub struct Refused {
    pub errno: Errno,
    pub why: Option<String>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&ch01_process::error::describe(self.errno))?;
        match &self.why {
            Some(why) => write!(f, " (kernel: {why})"),
            None => Ok(()),
        }
    }
}

// ANCHOR: socket
/// A NETLINK_ROUTE socket, talking to the kernel of the network namespace
/// the process was in when it opened it.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    pub fn open() -> nix::Result<Self> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        // Best effort, for clearer errors: short acks that explain failures.
        for opt in [NETLINK_CAP_ACK, NETLINK_EXT_ACK] {
            let on: libc::c_int = 1;
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_NETLINK,
                    opt,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of_val(&on) as libc::socklen_t,
                )
            };
        }
        Ok(Socket { fd, seq: 0 })
    }

    /// Sends `msg` to the kernel and waits for its ack: Ok, or the errno
    /// (and explanation) it refused the request with.
    pub fn request(&mut self, mut msg: Message) -> Result<(), Refused> {
        let refused = |errno| Refused { errno, why: None };
        self.seq += 1;
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes()); // nlmsg_len
        msg.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes()); // nlmsg_seq
        let kernel = NetlinkAddr::new(0, 0); // port 0: the kernel
        sendto(self.fd.as_raw_fd(), &msg.buf, &kernel, MsgFlags::empty()).map_err(refused)?;

        let mut buf = vec![0u8; 8192];
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(refused(e)),
            };
            // One datagram may hold several messages, each nlmsg_len long.
            let mut off = 0;
            while off + 16 <= n {
                let m = &buf[off..n];
                let m_len = u32_at(m, 0) as usize;
                if m_len < 16 || m_len > m.len() {
                    return Err(refused(Errno::EBADMSG));
                }
                let (kind, flags, seq) = (u16_at(m, 4), u16_at(m, 6), u32_at(m, 8));
                if kind == NLMSG_ERROR && seq == self.seq && m_len >= 20 {
                    return ack(&m[..m_len], flags);
                }
                off += align(m_len);
            }
        }
    }
}
// ANCHOR_END: socket

/// Reads an NLMSG_ERROR message: nlmsghdr, `int error`, the nlmsghdr of our
/// request (all of the request unless NLM_F_CAPPED), then with NLM_F_ACK_TLVS
/// attributes, of which NLMSGERR_ATTR_MSG is the explanation.
fn ack(m: &[u8], flags: u16) -> Result<(), Refused> {
    let error = u32_at(m, 16) as i32;
    if error == 0 {
        return Ok(());
    }
    let errno = Errno::from_raw(-error);
    let mut why = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if flags & NLM_F_CAPPED != 0 || m.len() < 24 {
            16
        } else {
            u32_at(m, 20) as usize
        };
        let mut off = align(20 + echoed);
        while off + 4 <= m.len() {
            let (len, kind) = (u16_at(m, off) as usize, u16_at(m, off + 2));
            if len < 4 || off + len > m.len() {
                break;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let text = &m[off + 4..off + len];
                let text = text.split(|&b| b == 0).next().unwrap_or_default();
                why = Some(String::from_utf8_lossy(text).into_owned());
            }
            off += align(len);
        }
    }
    Err(Refused { errno, why })
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}
