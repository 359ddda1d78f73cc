//! `--network slirp4netns`: a network for a container whose runtime is not
//! root (chapter 11), where `--veth` cannot be made.
//!
//! slirp4netns(1) joins the container's user and network namespaces just
//! long enough to make a tap device there (`tap0`), which it keeps open,
//! and goes back to the host's. Every frame the container sends on tap0
//! arrives on that file descriptor; libslirp, a TCP/IP stack in user space
//! (QEMU's user networking), answers it and turns each connection into an
//! ordinary socket of the caller's on the host. So the container reaches
//! whatever the caller could reach, and needs no privilege on the host:
//!
//! ```text
//!  container: tap0 10.0.2.100/24, default via 10.0.2.2, DNS 10.0.2.3
//!     │ frames (read(2) and write(2) on the tap's fd)
//!  slirp4netns, on the host as the caller: connect(2), sendto(2), ...
//! ```
//!
//! 10.0.2.2 is slirp's gateway and, without `--disable-host-loopback`,
//! also the host's 127.0.0.1: a container could then talk to every service
//! on the host that trusts a local caller. Refused here, as podman does.

use ch01_process::{Context, Ctx, Error, Result, Step};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The interface slirp4netns makes in the container.
pub const TAP: &str = "tap0";

/// The tun driver's clone device: opening it makes a tap device.
const TUN: &str = "/dev/net/tun";

/// How long slirp4netns may take to say the container's network is up.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The arguments after the program's name; `ready` and `exit` are the
/// numbers of the two descriptors it inherits. The MTU is the largest
/// that leaves room for the frame's header in libslirp's 64 KiB buffers,
/// as podman sets it: fewer, larger frames, as each costs a read(2) and a
/// write(2) in slirp4netns.
pub fn args(ready: i32, exit: i32, child: Pid) -> Vec<String> {
    vec![
        "--configure".into(),
        "--mtu=65520".into(),
        "--disable-host-loopback".into(),
        format!("--ready-fd={ready}"),
        format!("--exit-fd={exit}"),
        child.to_string(),
        TAP.into(),
    ]
}

/// `slirp4netns` in the runtime's `PATH`, or in the usual places.
fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join("slirp4netns"))
        .find(|p| p.is_file())
}

#[derive(Default)]
pub struct Slirp {
    program: PathBuf,
    process: Option<Child>,
    /// The write end of the pipe slirp4netns watches with `--exit-fd`.
    exit: Option<OwnedFd>,
}

impl Step for Slirp {
    fn check(&mut self, _ctx: &mut Ctx) -> Result<()> {
        self.program = find().ok_or_else(|| {
            Error::runtime(
                "--network slirp4netns: no slirp4netns program in PATH (Debian: apt install \
                 slirp4netns)",
            )
        })?;
        // slirp4netns opens the tap device's clone file as the caller. Any
        // user may (the tun driver then asks for CAP_NET_ADMIN over the
        // network namespace, which the caller has over the container's),
        // but only if the file's mode says so: udev makes it 0666, a bare
        // devtmpfs 0600.
        use nix::fcntl::AtFlags;
        use nix::unistd::{faccessat, AccessFlags};
        let rw = AccessFlags::R_OK | AccessFlags::W_OK;
        if faccessat(None, TUN, rw, AtFlags::AT_EACCESS).is_err() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(TUN)
                .map(|m| format!("its mode is {:04o}", m.permissions().mode() & 0o7777))
                .unwrap_or_else(|e| e.to_string());
            return Err(Error::runtime(format!(
                "--network slirp4netns: slirp4netns opens {TUN} as you, and you may not \
                 ({mode}; it is usually 0666, as udev makes it)"
            )));
        }
        Ok(())
    }

    // ANCHOR: slirp_start
    fn after_clone(&mut self, ctx: &Ctx, child: Pid) -> Result<()> {
        use nix::fcntl::OFlag;
        // Both pipes are close-on-exec, so that no other program the
        // runtime starts inherits them; slirp4netns gets its two ends
        // below. The container's process was cloned before: it has neither.
        let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2(2)")?;
        let (exit_r, exit_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2(2)")?;
        // Its messages, kept in memory for an error: a pipe that nobody
        // reads would block it once full.
        let log = nix::sys::memfd::memfd_create(
            c"slirp4netns",
            nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
        )
        .context("memfd_create(2)")?;
        let (ready, exit) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
        let args = args(ready, exit, child);
        ctx.say(format_args!(
            "{} {} (until its --ready-fd says 1)",
            self.program.display(),
            args.join(" ")
        ));
        let mut command = Command::new(&self.program);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::from(log.try_clone().context("dup(2)")?))
            // A process group of its own: Ctrl-C at a terminal is for the
            // container (the runtime forwards it), not for its network.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before execve(2) and
        // calls only fcntl(2), which is async-signal-safe, on two
        // descriptors that this process keeps open until spawn() returns.
        unsafe {
            command.pre_exec(move || {
                for fd in [ready, exit] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let process = command
            .spawn()
            .context(format!("running {}", self.program.display()))?;
        drop((ready_w, exit_r));
        self.process = Some(process);
        // Nothing to record for a sweep: slirp4netns exits when its
        // --exit-fd reports a hang-up, and only this runtime holds the
        // other end. When the runtime dies, even of SIGKILL, the kernel
        // closes it, and slirp4netns follows.
        self.exit = Some(exit_w);
        match wait_ready(&ready_r) {
            Ok(()) => Ok(()),
            Err(why) => {
                self.stop(ctx);
                Err(Error::runtime(format!(
                    "{} {}: {why}{}",
                    self.program.display(),
                    args.join(" "),
                    last_line(log).map(|l| format!(": {l}")).unwrap_or_default()
                )))
            }
        }
    }
    // ANCHOR_END: slirp_start

    fn cleanup(&mut self, ctx: &Ctx) -> Result<()> {
        self.stop(ctx);
        Ok(())
    }
}

impl Slirp {
    /// Closes the --exit-fd pipe, then waits for slirp4netns to exit (a
    /// second at most, then SIGKILL) and reaps it.
    fn stop(&mut self, ctx: &Ctx) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        ctx.say(format_args!(
            "close slirp4netns's --exit-fd, wait(2) for pid {}",
            process.id()
        ));
        self.exit = None;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) {
            if let Ok(Some(_)) = process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = process.kill();
        let _ = process.wait();
    }
}

/// Reads `ready` until slirp4netns writes "1" there: the tap device is up,
/// with its address and default route. End of file is slirp4netns gone.
fn wait_ready(ready: &OwnedFd) -> std::result::Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut file = std::fs::File::from(ready.try_clone().map_err(|e| e.to_string())?);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("not ready after {} s", READY_TIMEOUT.as_secs()));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll(2): {}", e.desc())),
        }
        let mut byte = [0u8; 1];
        return match file.read(&mut byte) {
            Ok(1) if byte[0] == b'1' => Ok(()),
            Ok(1) => Err(format!("its --ready-fd said {:?}, not 1", byte[0] as char)),
            Ok(_) => Err("it exited before its --ready-fd said it was ready".into()),
            Err(e) => Err(format!("reading its --ready-fd: {e}")),
        };
    }
}

/// The last line slirp4netns wrote to stderr.
fn last_line(log: OwnedFd) -> Option<String> {
    let mut file = std::fs::File::from(log);
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(
            args(5, 7, Pid::from_raw(1234)).join(" "),
            "--configure --mtu=65520 --disable-host-loopback --ready-fd=5 --exit-fd=7 1234 tap0"
        );
    }
}
