//! Build helpers for stepbox, usable both from `cargo xtask` and from
//! integration tests (`xtask::rootfs::ensure`).
//!
//! The root file system is assembled from independent pieces, each laid out
//! into a given directory by its own function, so that the same pieces can
//! later become separate image layers:
//!
//! - [`busybox::layout`]: /bin/busybox and one symlink per applet;
//! - [`probe::layout`]: /bin/probe and /bin/chroot-escape;
//! - [`rootfs::layout_base`]: the directory skeleton and /etc files.

pub mod bench;
pub mod busybox;
pub mod demo;
pub mod elf;
pub mod image;
pub mod lab;
pub mod paths;
pub mod probe;
pub mod rootfs;

/// Report one build step on stderr, as `xtask: <message>`.
pub fn step(message: impl std::fmt::Display) {
    eprintln!("xtask: {message}");
}
