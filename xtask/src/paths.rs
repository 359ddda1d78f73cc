//! Where things are: the workspace and its target directory.

use std::path::{Path, PathBuf};

/// The workspace root: the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set (a relative value is
/// taken relative to the workspace root), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// `<target>/stepbox`: everything stepbox builds besides Rust code.
pub fn stepbox_dir() -> PathBuf {
    target_dir().join("stepbox")
}

/// `<target>/stepbox/rootfs`: the default root file system.
pub fn default_rootfs() -> PathBuf {
    stepbox_dir().join("rootfs")
}

/// `<target>/static`: the separate target directory for the statically
/// linked probe, so that its RUSTFLAGS do not invalidate the host build.
pub fn static_target_dir() -> PathBuf {
    target_dir().join("static")
}

/// `<target>/stepbox/image`: the default image's layer tarballs (chapter 8).
pub fn default_image() -> PathBuf {
    stepbox_dir().join("image")
}
