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
//!
//! A request with `NLM_F_DUMP` (`ip addr show`, `ip route show table all`)
//! is answered instead by a stream of messages of the same layout, one per
//! address or route, in as many datagrams as it takes, ended by an
//! `NLMSG_DONE` message (see [`Socket::dump`]).

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
const NLM_F_DUMP: u16 = 0x300; // NLM_F_ROOT|NLM_F_MATCH: every object there is
pub const NLM_F_EXCL: u16 = 0x200; // fail with EEXIST if it exists already
pub const NLM_F_CREATE: u16 = 0x400; // create it if it does not exist
const NLMSG_ERROR: u16 = 2; // the type of an ack or of an error
const NLMSG_DONE: u16 = 3; // the end of a dump
const NLM_F_CAPPED: u16 = 0x100; // in an ack: our request is not echoed back
const NLM_F_ACK_TLVS: u16 = 0x200; // in an ack: attributes (NLMSGERR_ATTR_*) follow
const NLM_F_DUMP_INTR: u16 = 0x10; // in a dump: the table changed meanwhile, answer inconsistent
const NLMSGERR_ATTR_MSG: u16 = 1; // the kernel's explanation, a string
const NETLINK_CAP_ACK: libc::c_int = 10; // socket option: don't echo the request in acks
const NETLINK_EXT_ACK: libc::c_int = 11; // socket option: explain errors in acks

// <linux/rtnetlink.h>: message types, and the fields of struct rtmsg.
pub const RTM_NEWLINK: u16 = 16; // create a link, or change one
pub const RTM_DELLINK: u16 = 17;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_GETADDR: u16 = 22; // with NLM_F_DUMP: every address, as RTM_NEWADDR messages
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_GETROUTE: u16 = 26; // with NLM_F_DUMP: every route, as RTM_NEWROUTE messages
pub const RTA_DST: u16 = 1; // a route's destination (an address; absent: 0.0.0.0)
pub const RTA_OIF: u16 = 4; // a route's output interface (u32 index)
pub const RTA_GATEWAY: u16 = 5; // a route's next hop (an address)
pub const RTA_TABLE: u16 = 15; // u32: the table, when it does not fit rtm_table's u8
pub const RT_TABLE_MAIN: u8 = 254; // the table `ip route` shows
pub const RT_TABLE_LOCAL: u8 = 255; // the kernel's own: local and broadcast addresses
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
pub const IFA_LABEL: u16 = 3; // the interface's name (or alias, "eth0:1"), NUL-terminated

/// The type bits of rta_type: the top two are flags (NLA_F_NESTED,
/// NLA_F_NET_BYTEORDER) that some kernels set on nests.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// Bigger than any datagram the kernel sends us (dumps stay under 32 KiB).
const RECV_BUF: usize = 64 * 1024;

fn refused(errno: Errno) -> Refused {
    Refused { errno, why: None }
}

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

    /// A dump request: every object of the kind `header` selects (its
    /// family), answered by many messages and no ack (see [`Socket::dump`]).
    pub fn dump(kind: u16, header: &[u8]) -> Self {
        let mut m = Message::new(kind, 0, header);
        m.buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        m
    }

    /// The bytes as they will be sent (nlmsg_len and nlmsg_seq are filled
    /// in by [`Socket`]); for tests.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
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
            // SAFETY: the option value is a valid c_int of the size given.
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
    pub fn request(&mut self, msg: Message) -> Result<(), Refused> {
        self.send(msg)?;
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let n = self.recv(&mut buf)?;
            // One datagram may hold several messages, each nlmsg_len long.
            for m in messages(&buf[..n]) {
                let m = m?;
                if m.kind == NLMSG_ERROR && m.seq == self.seq && m.bytes.len() >= 20 {
                    return ack(m.bytes, m.flags);
                }
            }
        }
    }

    /// Sends a dump request ([`Message::dump`]) and collects the answer:
    /// every message up to NLMSG_DONE, whole (nlmsghdr included), in the
    /// order the kernel sent them. A dump that the kernel could not finish
    /// (its table changed under it: EINTR in NLMSG_DONE, or NLM_F_DUMP_INTR
    /// on a message) is an error, not a partial answer.
    pub fn dump(&mut self, msg: Message) -> Result<Vec<Vec<u8>>, Refused> {
        self.send(msg)?;
        let mut buf = vec![0u8; RECV_BUF];
        let mut found = Vec::new();
        loop {
            let n = self.recv(&mut buf)?;
            for m in messages(&buf[..n]) {
                let m = m?;
                if m.seq != self.seq {
                    continue; // an answer to an earlier request of ours
                }
                if m.flags & NLM_F_DUMP_INTR != 0 {
                    return Err(Refused {
                        errno: Errno::EINTR,
                        why: Some("the table changed during the dump".into()),
                    });
                }
                match m.kind {
                    // NLMSG_DONE carries an int: 0, or a negative errno.
                    NLMSG_DONE => match m.bytes.get(16..20).map(|e| i32_at(e, 0)) {
                        Some(e) if e < 0 => return Err(refused(Errno::from_raw(-e))),
                        _ => return Ok(found),
                    },
                    NLMSG_ERROR if m.bytes.len() >= 20 => ack(m.bytes, m.flags)?,
                    _ => found.push(m.bytes.to_vec()),
                }
            }
        }
    }

    fn send(&mut self, mut msg: Message) -> Result<(), Refused> {
        self.seq += 1;
        let len = msg.buf.len() as u32;
        msg.buf[0..4].copy_from_slice(&len.to_ne_bytes()); // nlmsg_len
        msg.buf[8..12].copy_from_slice(&self.seq.to_ne_bytes()); // nlmsg_seq
        let kernel = NetlinkAddr::new(0, 0); // port 0: the kernel
        sendto(self.fd.as_raw_fd(), &msg.buf, &kernel, MsgFlags::empty()).map_err(refused)?;
        Ok(())
    }

    /// One datagram. MSG_TRUNC makes recv(2) return the datagram's real
    /// length, so that one too big for `buf` is an error instead of
    /// silently cut (the kernel keeps dump datagrams under 32 KiB).
    fn recv(&self, buf: &mut [u8]) -> Result<usize, Refused> {
        loop {
            match recv(self.fd.as_raw_fd(), buf, MsgFlags::MSG_TRUNC) {
                Ok(n) if n > buf.len() => return Err(refused(Errno::EMSGSIZE)),
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(refused(e)),
            }
        }
    }
}
// ANCHOR_END: socket

/// Reads an NLMSG_ERROR message: nlmsghdr, `int error`, the nlmsghdr of our
/// request (all of the request unless NLM_F_CAPPED), then with NLM_F_ACK_TLVS
/// attributes, of which NLMSGERR_ATTR_MSG is the explanation.
fn ack(m: &[u8], flags: u16) -> Result<(), Refused> {
    let error = i32_at(m, 16);
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
        let tlvs = m.get(align(20 + echoed)..).unwrap_or_default();
        for (kind, text) in attrs(tlvs) {
            if kind == NLMSGERR_ATTR_MSG {
                why = Some(c_string(text));
            }
        }
    }
    Err(Refused { errno, why })
}

// ANCHOR: parse
/// One message of a datagram: its nlmsghdr fields, and all of its bytes
/// (nlmsghdr included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub bytes: &'a [u8],
}

/// Splits a datagram into its messages. The lengths come from the kernel
/// but are checked anyway: a length shorter than a header or running past
/// the datagram is EBADMSG, never a panic or an endless loop.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Received<'_>, Refused>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 16 > buf.len() {
            return None;
        }
        let m = &buf[off..];
        let len = u32_at(m, 0) as usize;
        if len < 16 || len > m.len() {
            off = buf.len(); // stop after this error
            return Some(Err(refused(Errno::EBADMSG)));
        }
        off += align(len);
        Some(Ok(Received {
            kind: u16_at(m, 4),
            flags: u16_at(m, 6),
            seq: u32_at(m, 8),
            bytes: &m[..len],
        }))
    })
}

/// The attributes in `buf` (what follows a fixed header, or a nest's
/// payload): (rta_type without its flag bits, payload). It stops at the
/// first attribute whose length does not fit, as the kernel's nla_ok() does.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let (len, kind) = (u16_at(buf, off) as usize, u16_at(buf, off + 2));
        if len < 4 || off + len > buf.len() {
            return None;
        }
        let payload = &buf[off + 4..off + len];
        off += align(len);
        Some((kind & NLA_TYPE_MASK, payload))
    })
}

/// An IPv4 route, from an RTM_NEWROUTE message of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination: 0.0.0.0/0 for a default route (it has no RTA_DST).
    pub dst: Ipv4Addr,
    pub dst_len: u8,
    /// RT_TABLE_MAIN, RT_TABLE_LOCAL, or any other table number.
    pub table: u32,
    /// rtm_type: RTN_UNICAST, RTN_LOCAL (2), RTN_BROADCAST (3), ...
    pub kind: u8,
}

/// `struct rtmsg` then attributes; None if it is not an IPv4 route.
pub fn parse_route(msg: &[u8]) -> Option<Route> {
    let h = msg.get(16..28)?;
    if h[0] != libc::AF_INET as u8 || h[1] > 32 {
        return None;
    }
    let mut route = Route {
        dst: Ipv4Addr::UNSPECIFIED,
        dst_len: h[1],
        table: h[4] as u32,
        kind: h[7],
    };
    for (kind, payload) in attrs(&msg[28..]) {
        match (kind, payload.len()) {
            (RTA_DST, 4) => route.dst = ipv4(payload),
            (RTA_TABLE, 4) => route.table = u32_at(payload, 0),
            _ => {}
        }
    }
    Some(route)
}

/// An IPv4 address of an interface, from an RTM_NEWADDR message of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// IFA_LOCAL, else IFA_ADDRESS: the interface's own address.
    pub local: Ipv4Addr,
    /// IFA_ADDRESS: the same, or on a point-to-point link the peer's.
    pub peer: Ipv4Addr,
    pub prefix_len: u8,
    pub index: u32,
    /// IFA_LABEL: the interface's name.
    pub label: String,
}

/// `struct ifaddrmsg` then attributes; None if it is not an IPv4 address.
pub fn parse_address(msg: &[u8]) -> Option<Address> {
    let h = msg.get(16..24)?;
    if h[0] != libc::AF_INET as u8 || h[1] > 32 {
        return None;
    }
    let (mut local, mut peer, mut label) = (None, None, String::new());
    for (kind, payload) in attrs(&msg[24..]) {
        match (kind, payload.len()) {
            (IFA_LOCAL, 4) => local = Some(ipv4(payload)),
            (IFA_ADDRESS, 4) => peer = Some(ipv4(payload)),
            (IFA_LABEL, _) => label = c_string(payload),
            _ => {}
        }
    }
    let local = local.or(peer)?;
    Some(Address {
        local,
        peer: peer.unwrap_or(local),
        prefix_len: h[1],
        index: u32_at(h, 4),
        label,
    })
}
// ANCHOR_END: parse

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// A NUL-terminated string attribute, as text (lossy: names are bytes).
fn c_string(b: &[u8]) -> String {
    let text = b.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    u32_at(b, off) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the kernel would send it: nlmsg_len filled in.
    fn sealed(m: Message) -> Vec<u8> {
        let mut b = m.bytes().to_vec();
        let len = b.len() as u32;
        b[0..4].copy_from_slice(&len.to_ne_bytes());
        b
    }

    #[test]
    fn dump_request_layout() {
        let m = Message::dump(RTM_GETROUTE, &rtmsg(0));
        let b = m.bytes();
        assert_eq!(b.len(), 16 + 12);
        assert_eq!(u16_at(b, 4), RTM_GETROUTE);
        // A dump asks for no ack: the kernel would not send one anyway.
        assert_eq!(u16_at(b, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(b[16], libc::AF_INET as u8);
    }

    #[test]
    fn attributes_are_padded_and_read_back() {
        let mut m = Message::new(RTM_NEWLINK, 0, &ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, "eth0"); // 4 + 5 bytes, padded to 12
        m.attr_u32(IFLA_NET_NS_PID, 7);
        m.nest(IFLA_LINKINFO, |m| {
            m.attr(IFLA_INFO_KIND, b"veth");
        });
        let b = sealed(m);
        assert_eq!(b.len(), 16 + 16 + 12 + 8 + 4 + 8);
        assert_eq!(&b[32..44], b"\x09\x00\x03\x00eth0\0\0\0\0");
        let found: Vec<(u16, &[u8])> = attrs(&b[32..]).collect();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0], (IFLA_IFNAME, &b"eth0\0"[..]));
        assert_eq!(found[1], (IFLA_NET_NS_PID, &7u32.to_ne_bytes()[..]));
        assert_eq!(found[2].0, IFLA_LINKINFO);
        let inner: Vec<_> = attrs(found[2].1).collect();
        assert_eq!(inner, [(IFLA_INFO_KIND, &b"veth"[..])]);
    }

    #[test]
    fn messages_splits_a_datagram_and_refuses_bad_lengths() {
        let one = sealed(Message::dump(RTM_GETADDR, &ifaddrmsg(0, 0)));
        let mut two = one.clone();
        two.extend(&one);
        let found: Vec<_> = messages(&two).map(Result::unwrap).collect();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].kind, RTM_GETADDR);
        assert_eq!(found[1].bytes, &one[..]);

        let mut short = one.clone();
        short[0..4].copy_from_slice(&8u32.to_ne_bytes()); // shorter than nlmsghdr
        assert!(messages(&short).next().unwrap().is_err());
        assert_eq!(messages(&short).count(), 1, "stops after the error");
        let mut long = one.clone();
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes()); // past the datagram
        assert_eq!(
            messages(&long).next().unwrap().unwrap_err().errno,
            Errno::EBADMSG
        );
        // A truncated attribute ends the list instead of reading past it.
        assert_eq!(attrs(&[8, 0, 1, 0, 1, 2]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
    }

    /// What the kernel sends for `local 10.9.9.1 dev dummy0 table local`.
    fn route_message(dst: Option<[u8; 4]>, dst_len: u8, table: u32, kind: u8) -> Vec<u8> {
        let mut h = rtmsg(dst_len);
        h[4] = table.min(252) as u8; // RT_TABLE_COMPAT when it does not fit
        h[7] = kind;
        let mut m = Message::new(RTM_NEWROUTE, 0, &h);
        m.attr_u32(RTA_TABLE, table);
        if let Some(dst) = dst {
            m.attr(RTA_DST, &dst);
        }
        m.attr_u32(RTA_OIF, 3);
        sealed(m)
    }

    #[test]
    fn routes_are_parsed() {
        let r = parse_route(&route_message(Some([10, 9, 9, 1]), 32, 255, 2)).unwrap();
        assert_eq!(
            r,
            Route {
                dst: Ipv4Addr::new(10, 9, 9, 1),
                dst_len: 32,
                table: 255,
                kind: 2
            }
        );
        // A default route has no RTA_DST; a table above 255 comes in RTA_TABLE.
        let r = parse_route(&route_message(None, 0, 1000, 1)).unwrap();
        assert_eq!(
            (r.dst, r.dst_len, r.table),
            (Ipv4Addr::UNSPECIFIED, 0, 1000)
        );
        // IPv6 and nonsense are skipped, not misread.
        let mut v6 = route_message(None, 64, 254, 1);
        v6[16] = libc::AF_INET6 as u8;
        assert_eq!(parse_route(&v6), None);
        assert_eq!(parse_route(&v6[..20]), None);
    }

    #[test]
    fn addresses_are_parsed() {
        let mut m = Message::new(RTM_NEWADDR, 0, &ifaddrmsg(24, 5));
        m.attr_ipv4(IFA_ADDRESS, Ipv4Addr::new(10, 9, 9, 1));
        m.attr_ipv4(IFA_LOCAL, Ipv4Addr::new(10, 9, 9, 1));
        m.attr_str(IFA_LABEL, "dummy0");
        let a = parse_address(&sealed(m)).unwrap();
        assert_eq!(
            a,
            Address {
                local: Ipv4Addr::new(10, 9, 9, 1),
                peer: Ipv4Addr::new(10, 9, 9, 1),
                prefix_len: 24,
                index: 5,
                label: "dummy0".into()
            }
        );
        // Point to point: the peer in IFA_ADDRESS, ours in IFA_LOCAL.
        let mut m = Message::new(RTM_NEWADDR, 0, &ifaddrmsg(32, 6));
        m.attr_ipv4(IFA_LOCAL, Ipv4Addr::new(10, 0, 0, 1));
        m.attr_ipv4(IFA_ADDRESS, Ipv4Addr::new(10, 0, 0, 2));
        let a = parse_address(&sealed(m)).unwrap();
        assert_eq!(
            (a.local, a.peer),
            (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2))
        );
        // No address at all: nothing to report.
        let m = Message::new(RTM_NEWADDR, 0, &ifaddrmsg(24, 5));
        assert_eq!(parse_address(&sealed(m)), None);
    }

    #[test]
    fn a_dump_of_this_namespace() {
        // Reading needs no privilege: every process may list its netns.
        let mut nl = Socket::open().unwrap();
        let routes = nl.dump(Message::dump(RTM_GETROUTE, &rtmsg(0))).unwrap();
        let addrs = nl
            .dump(Message::dump(RTM_GETADDR, &ifaddrmsg(0, 0)))
            .unwrap();
        // Every netns has lo, 127.0.0.1/8 once it is up; the host's is.
        let addrs: Vec<Address> = addrs.iter().filter_map(|m| parse_address(m)).collect();
        assert!(
            addrs
                .iter()
                .any(|a| a.local == Ipv4Addr::LOCALHOST && a.label == "lo"),
            "{addrs:?}"
        );
        let routes: Vec<Route> = routes.iter().filter_map(|m| parse_route(m)).collect();
        assert!(
            routes
                .iter()
                .any(|r| r.table == RT_TABLE_LOCAL as u32 && r.dst == Ipv4Addr::LOCALHOST),
            "{routes:?}"
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever attributes (and nests of them) a message is built
            /// from, reading it back gives the same ones, in order.
            #[test]
            fn attribute_round_trip(
                list in proptest::collection::vec((1u16..0x3fff, proptest::collection::vec(any::<u8>(), 0..40)), 0..12),
                nested in proptest::collection::vec((1u16..0x3fff, proptest::collection::vec(any::<u8>(), 0..20)), 0..6),
            ) {
                let mut m = Message::new(RTM_NEWLINK, 0, &ifinfomsg(0, 0, 0));
                for (kind, payload) in &list {
                    m.attr(*kind, payload);
                }
                m.nest(IFLA_LINKINFO, |m| {
                    for (kind, payload) in &nested {
                        m.attr(*kind, payload);
                    }
                });
                let b = sealed(m);
                prop_assert_eq!(b.len() % 4, 0);
                let found: Vec<(u16, Vec<u8>)> = attrs(&b[32..]).map(|(k, p)| (k, p.to_vec())).collect();
                prop_assert_eq!(found.len(), list.len() + 1);
                prop_assert_eq!(&found[..list.len()], &list[..]);
                let (kind, nest) = found.last().unwrap();
                prop_assert_eq!(*kind, IFLA_LINKINFO);
                let inner: Vec<(u16, Vec<u8>)> = attrs(nest).map(|(k, p)| (k, p.to_vec())).collect();
                prop_assert_eq!(inner, nested);
                let all: Vec<_> = messages(&b).collect();
                prop_assert_eq!(all.len(), 1);
            }

            /// Any bytes at all: the parsers answer or refuse, never panic
            /// and never loop.
            #[test]
            fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
                for m in messages(&buf).flatten() {
                    let _ = parse_route(m.bytes);
                    let _ = parse_address(m.bytes);
                    let _ = ack(m.bytes, m.flags);
                }
                let _ = parse_route(&buf);
                let _ = parse_address(&buf);
                prop_assert!(attrs(&buf).count() <= buf.len() / 4);
            }
        }
    }
}
