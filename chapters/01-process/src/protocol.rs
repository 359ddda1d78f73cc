//! The messages between the runtime and the process that becomes the
//! container, over a socketpair(2) of type `SOCK_SEQPACKET`: each send(2) is
//! one message, read whole by one recv(2), so no framing is needed, and a
//! message can carry file descriptors (`SCM_RIGHTS`, see unix(7)).
//!
//! A caller with several threads goes through an intermediate process (see
//! `runtime::spawn`), as drawn; a single-threaded one clones the container
//! itself and gets the pid and pidfd from clone(2), without Created.
//!
//! ```text
//!  runtime                  intermediate (fork)          container (clone)
//!  socketpair(2)
//!  fork(2) ───────────────►  clone(2) CLONE_PARENT ───►  waits for Go
//!          ◄──── Created{pid} + pidfd (SCM_RIGHTS)
//!  waitpid(2) the intermediate ◄── _exit(0)
//!  after_clone(pid): cgroup, veth, …
//!  Go ─────────────────────────────────────────────────►  identity, setup, privileges
//!                                                         find the executable
//!     ◄───────────────────────────────────────────────── Ready   (or Error)
//!  (create returns: the container waits, its pid known)
//!  Start ──────────────────────────────────────────────►  signals, last hook
//!     ◄─────────────────── end of file at execve(2), or Error{code, msg}
//! ```
//!
//! Both ends are close-on-exec, so a successful execve(2) closes the
//! container's end and the runtime reads end-of-file: the one message that
//! is not sent, because no code of ours runs after it.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// One message; see the diagram above for who sends which, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// Intermediate → runtime: the container exists, with this pid (in the
    /// runtime's pid namespace); its pidfd comes attached.
    Created { pid: i32 },
    /// Runtime → container: everything the runtime does from outside
    /// (after_clone: the cgroup joined, the veth moved in) is done; go on.
    Go,
    /// Container → runtime: every stage is done and the executable found;
    /// waiting for Start.
    Ready,
    /// Runtime → container: run the command.
    Start,
    /// Container → runtime: setup failed; `code` is the exit status to give
    /// (125, 126, 127), `msg` the one line saying why.
    Error { code: i32, msg: String },
}

/// The longest message: an Error's text is cut to fit.
pub const MAX_MSG: usize = 4096;

const CREATED: u8 = 1;
const GO: u8 = 2;
const READY: u8 = 3;
const START: u8 = 4;
const ERROR: u8 = 5;

impl Msg {
    /// The bytes on the wire: a tag, then the payload (integers little-endian).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Msg::Created { pid } => [&[CREATED][..], &pid.to_le_bytes()].concat(),
            Msg::Go => vec![GO],
            Msg::Ready => vec![READY],
            Msg::Start => vec![START],
            Msg::Error { code, msg } => {
                let mut out = vec![ERROR];
                out.extend_from_slice(&code.to_le_bytes());
                let room = MAX_MSG - out.len();
                let mut cut = msg.len().min(room);
                while !msg.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.extend_from_slice(&msg.as_bytes()[..cut]);
                out
            }
        }
    }

    /// The message in `bytes`, or None for anything malformed.
    pub fn decode(bytes: &[u8]) -> Option<Msg> {
        let (&tag, rest) = bytes.split_first()?;
        let int =
            |b: &[u8]| -> Option<i32> { Some(i32::from_le_bytes(b.get(..4)?.try_into().ok()?)) };
        match tag {
            CREATED if rest.len() == 4 => Some(Msg::Created { pid: int(rest)? }),
            GO if rest.is_empty() => Some(Msg::Go),
            READY if rest.is_empty() => Some(Msg::Ready),
            START if rest.is_empty() => Some(Msg::Start),
            ERROR if rest.len() >= 4 => Some(Msg::Error {
                code: int(rest)?,
                msg: String::from_utf8_lossy(&rest[4..]).into_owned(),
            }),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Msg::Created { .. } => "Created",
            Msg::Go => "Go",
            Msg::Ready => "Ready",
            Msg::Start => "Start",
            Msg::Error { .. } => "Error",
        }
    }
}

/// One end of the socketpair.
#[derive(Debug)]
pub struct Channel(OwnedFd);

impl Channel {
    /// Both ends, close-on-exec.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("socketpair(2) AF_UNIX SOCK_SEQPACKET")?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Sends `msg`, with `fds` attached (SCM_RIGHTS: the receiver gets its
    /// own descriptors for the same open files).
    pub fn send(&self, msg: &Msg, fds: &[BorrowedFd]) -> Result<()> {
        let bytes = msg.encode();
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
        // MSG_NOSIGNAL: a peer that is gone is an EPIPE to report, not a
        // SIGPIPE that kills the sender.
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .context(format!("sending {} to the container's peer", msg.name()))?;
        Ok(())
    }

    /// The next message and the descriptors that came with it; None at
    /// end-of-file (the peer closed its end, or exec'd).
    pub fn recv(&self) -> Result<Option<(Msg, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let (len, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => {
                    let mut fds = Vec::new();
                    for c in m.cmsgs().context("recvmsg(2) control data")? {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            fds.extend(raw.into_iter().map(|fd| {
                                // SAFETY: the kernel just installed it in our
                                // table for this message; nothing else owns it.
                                unsafe { OwnedFd::from_raw_fd(fd) }
                            }));
                        }
                    }
                    break (m.bytes, fds);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("recvmsg(2) from the container's peer"),
            }
        };
        if len == 0 {
            return Ok(None);
        }
        let msg = Msg::decode(&buf[..len]).ok_or_else(|| {
            Error::runtime(format!(
                "a malformed message ({len} bytes) from the container's peer"
            ))
        })?;
        Ok(Some((msg, fds)))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        for msg in [
            Msg::Created { pid: 4_194_304 },
            Msg::Go,
            Msg::Ready,
            Msg::Start,
            Msg::Error {
                code: 127,
                msg: "sh: no such file".into(),
            },
            Msg::Error {
                code: -1,
                msg: String::new(),
            },
        ] {
            assert_eq!(Msg::decode(&msg.encode()), Some(msg));
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bytes in [
            &[][..],
            &[0],
            &[9],
            &[GO, 0],
            &[CREATED, 1, 2, 3],
            &[ERROR, 1, 2],
        ] {
            assert_eq!(Msg::decode(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn a_long_error_is_cut_at_a_character() {
        let msg = Msg::Error {
            code: 125,
            msg: "é".repeat(MAX_MSG),
        };
        let bytes = msg.encode();
        assert!(bytes.len() <= MAX_MSG);
        let Some(Msg::Error { msg, .. }) = Msg::decode(&bytes) else {
            panic!("not an error")
        };
        assert!(msg.chars().all(|c| c == 'é') && !msg.is_empty());
    }

    #[test]
    fn messages_and_descriptors_cross_the_socketpair() {
        let (a, b) = Channel::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        a.send(&Msg::Created { pid: 42 }, &[file.as_fd()]).unwrap();
        a.send(&Msg::Ready, &[]).unwrap();
        let (msg, fds) = b.recv().unwrap().unwrap();
        assert_eq!(msg, Msg::Created { pid: 42 });
        assert_eq!(fds.len(), 1);
        let (theirs, ours) = (
            nix::sys::stat::fstat(fds[0].as_raw_fd()).unwrap(),
            nix::sys::stat::fstat(file.as_raw_fd()).unwrap(),
        );
        assert_eq!((theirs.st_dev, theirs.st_ino), (ours.st_dev, ours.st_ino));
        assert_eq!(b.recv().unwrap().unwrap().0, Msg::Ready);
        drop(a);
        assert!(
            b.recv().unwrap().is_none(),
            "end-of-file once the peer is gone"
        );
    }
}
