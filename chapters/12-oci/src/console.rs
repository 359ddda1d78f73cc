//! `process.terminal` with `--console-socket`: the command gets a terminal
//! of its own, whose other end the engine holds (podman's and ctr's `-t`).
//!
//! ```text
//!  runtime   connect(2) to the engine's socket (prepare: the path is the host's)
//!  child     open /dev/ptmx in the container's own devpts (setup, after
//!            pivot_root), unlockpt, send the master to the engine over the
//!            socket (SCM_RIGHTS), bind the slave onto /dev/console
//!            and make it stdin, stdout and stderr
//!  child     (last, after start) TIOCSCTTY: the slave becomes the
//!            controlling terminal of the session chapter 9 made
//! ```
//!
//! The slave replaces the process's stdio already in setup, before
//! `create` returns: the descriptors it had were `create`'s, and an engine
//! that reads `create`'s output to its end (containerd's shim) would
//! otherwise wait for a container that waits for `start`.

use ch01_process::{Context, Ctx, Error, Result, Step};
use nix::fcntl::{open, OFlag};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Console {
    pub socket_path: PathBuf,
    /// `process.consoleSize`: rows, columns.
    pub size: Option<(u16, u16)>,
    socket: Option<UnixStream>,
    /// The slave's number (`/dev/pts/N`), from setup() to last(), in the
    /// container's process.
    pts: AtomicU32,
}

impl Console {
    pub fn new(socket_path: PathBuf, size: Option<(u16, u16)>) -> Console {
        Console {
            socket_path,
            size,
            socket: None,
            pts: AtomicU32::new(u32::MAX),
        }
    }
}

nix::ioctl_read!(tiocgptn, b'T', 0x30, libc::c_uint);

// ANCHOR: console
impl Step for Console {
    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        let socket = UnixStream::connect(&self.socket_path).context(format!(
            "connecting to the console socket {}",
            self.socket_path.display()
        ))?;
        ctx.keep_fds.push(socket.as_raw_fd());
        self.socket = Some(socket);
        Ok(())
    }

    fn setup(&self, ctx: &Ctx) -> Result<()> {
        let socket = self
            .socket
            .as_ref()
            .ok_or_else(|| Error::runtime("no console socket"))?;
        ctx.say(format_args!("open(2) /dev/ptmx, unlockpt, TIOCGPTN"));
        let master = open(
            "/dev/ptmx",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .context("opening /dev/ptmx in the container")?;
        // SAFETY: open(2) just returned this descriptor; nothing else owns it.
        let master = unsafe { OwnedFd::from_raw_fd(master) };
        let mut n: libc::c_uint = 0;
        // SAFETY: TIOCGPTN writes one unsigned int, into `n`.
        unsafe { tiocgptn(master.as_raw_fd(), &mut n) }.context("ioctl(2) TIOCGPTN")?;
        let unlock: libc::c_int = 0;
        // SAFETY: TIOCSPTLCK reads one int, `unlock`.
        let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
        nix::errno::Errno::result(r).context("ioctl(2) TIOCSPTLCK (unlockpt)")?;
        if let Some((rows, cols)) = self.size {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCSWINSZ reads one struct winsize.
            unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
        let slave = format!("/dev/pts/{n}");
        // /dev/console: what programs that want "the" terminal open.
        let console = "/dev/console";
        if std::fs::symlink_metadata(console).is_err() {
            std::fs::File::create(console).context("creating /dev/console")?;
        }
        ctx.say(format_args!("mount(2) {slave} on {console}, MS_BIND"));
        nix::mount::mount(
            Some(slave.as_str()),
            console,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .context(format!("bind-mounting {slave} on {console}"))?;
        ctx.say(format_args!("sendmsg(2) the terminal's master, SCM_RIGHTS"));
        let fds = [master.as_raw_fd()];
        sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(slave.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .context(format!(
            "sending the terminal to {}",
            self.socket_path.display()
        ))?;
        self.pts.store(n, Ordering::Relaxed);
        drop(master);
        // O_NOCTTY: it becomes the controlling terminal only in last(),
        // once this process leads a session of its own.
        ctx.say(format_args!("open(2) {slave}, dup2(2) onto 0, 1, 2"));
        let fd = open(
            slave.as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY,
            Mode::empty(),
        )
        .context(format!("opening {slave}"))?;
        for target in 0..3 {
            // SAFETY: dup2(2) on descriptors; `fd` is open.
            nix::errno::Errno::result(unsafe { libc::dup2(fd, target) })
                .context(format!("dup2(2) {slave} onto {target}"))?;
        }
        if fd > 2 {
            let _ = nix::unistd::close(fd);
        }
        Ok(())
    }

    fn last(&self, ctx: &Ctx) -> Result<()> {
        // A controlling terminal is given to a session leader only
        // (chapter 9 makes one; not with --privileged).
        if nix::unistd::getsid(None).ok() != Some(nix::unistd::getpid()) {
            nix::unistd::setsid().context("setsid(2)")?;
        }
        let slave = format!("/dev/pts/{}", self.pts.load(Ordering::Relaxed));
        ctx.say(format_args!("ioctl(2) {slave} TIOCSCTTY"));
        // SAFETY: TIOCSCTTY takes an int argument (0: do not steal it).
        let r = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        nix::errno::Errno::result(r).context(format!("ioctl(2) TIOCSCTTY {slave}"))?;
        Ok(())
    }
}
// ANCHOR_END: console
