//! Chapter 8: image layers, stacked with overlayfs.
//!
//! An image is a stack of read-only layers, each a tar file of the files it
//! adds, changes or deletes. The runtime unpacks each layer once into a
//! directory of its own (shared by every container: see [`store`]) and
//! asks overlayfs to show them as one directory, `merged`, on top of which
//! writes go to a directory of the container's own, `upper`. The layers
//! never change; two containers of the same image do not see each other's
//! writes; and removing `upper` removes all trace of a container.
//! Chapter 5 then pivot_root(2)s into `merged`.

pub mod ids;
pub mod layer;
pub mod remove;
pub mod rootless;
pub mod store;
pub mod testdata;

use ch01_process::state::{Resource, Undo};
use ch01_process::{Chapter, Context, Ctx, Error, Result, Step, Steps};
use clap::Args;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use store::Store;

// ANCHOR: opts
#[derive(Args, Debug, Clone)]
#[group(skip)] // every chapter's Opts would otherwise claim the group id "Opts"
pub struct Opts {
    #[command(flatten)]
    pub prev: ch07_cgroups::Opts,
    /// An image layer: a tar file (OCI layer, plain or gzip-compressed).
    /// Repeat it for each layer, bottom layer first. Instead of --rootfs.
    #[arg(long = "layer", value_name = "TAR", conflicts_with = "rootfs")]
    pub layers: Vec<PathBuf>,
    /// Keep the container's writable layer (its upper dir) after it exits,
    /// and print where it is.
    #[arg(long, requires = "layers", conflicts_with = "rootfs")]
    pub keep: bool,
    /// Where unpacked layers and the containers' directories are kept
    /// [default: /var/lib/stepbox; not root: $XDG_DATA_HOME/stepbox or
    /// ~/.local/share/stepbox].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The most file data one layer may unpack to (a unit k, m, g or t
    /// allowed): a small compressed layer can expand to fill the disk.
    #[arg(long, value_name = "SIZE", value_parser = parse_layer_size,
          default_value_t = Size(layer::Limits::default().max_bytes))]
    pub max_layer_size: Size,
    /// The most entries (files, directories, links…) one layer may hold.
    #[arg(long, value_name = "N", value_parser = parse_layer_entries,
          default_value_t = layer::Limits::default().max_entries)]
    pub max_layer_entries: u64,
}

impl Chapter for Opts {
    const NAME: &'static str = "ch08-overlay";
    const ABOUT: &'static str =
        "Run COMMAND in new namespaces, in a root filesystem made of image layers (overlayfs).";
    type Config = Config;
    fn base(&self) -> &ch01_process::Opts {
        self.prev.base()
    }
    fn config(&self) -> Config {
        Config {
            prev: self.prev.config(),
            layers: self.layers.clone(),
            keep: self.keep,
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(rootless::default_state_dir),
            limits: layer::Limits {
                max_bytes: self.max_layer_size.0,
                max_entries: self.max_layer_entries,
            },
            owners: ids::Owners::default(),
        }
    }
}

/// Chapter 8's part of the configuration: the image's layers.
#[derive(Debug, Clone)]
pub struct Config {
    pub prev: ch07_cgroups::Config,
    /// Tar files, bottom layer first; none: chapter 5's rootfs.
    pub layers: Vec<PathBuf>,
    /// Keep the container's upper dir after it exits.
    pub keep: bool,
    /// Where the layer store and the containers' directories are (empty:
    /// none could be found, an error once there are layers; see
    /// [`rootless::default_state_dir`]).
    pub state_dir: PathBuf,
    pub limits: layer::Limits,
    /// Who owns the layers' files on the host: chapter 11's id maps
    /// (empty: no user namespace).
    pub owners: ids::Owners,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prev: Default::default(),
            layers: Vec::new(),
            keep: false,
            state_dir: rootless::default_state_dir(),
            limits: layer::Limits::default(),
            owners: ids::Owners::default(),
        }
    }
}

impl Steps for Config {
    fn steps(&self) -> Vec<Box<dyn Step>> {
        let mut steps = self.prev.steps();
        steps.push(Box::new(Overlay {
            config: self.clone_own(),
            lowers: Vec::new(),
            home: PathBuf::new(),
            dir: None,
            mounted: false,
            rootless: false,
        }));
        steps
    }
}
// ANCHOR_END: opts

/// The default `--state-dir` for root (for anyone else, see
/// [`rootless::default_state_dir`]).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/stepbox";

impl Config {
    /// This chapter's own part, without the earlier chapters'.
    fn clone_own(&self) -> Own {
        Own {
            layers: self.layers.clone(),
            keep: self.keep,
            state_dir: self.state_dir.clone(),
            limits: self.limits,
            owners: self.owners.clone(),
        }
    }
}

struct Own {
    layers: Vec<PathBuf>,
    keep: bool,
    state_dir: PathBuf,
    limits: layer::Limits,
    owners: ids::Owners,
}

struct Overlay {
    config: Own,
    /// The unpacked layers, bottom first, and the container's directory
    /// (found by check()).
    lowers: Vec<PathBuf>,
    home: PathBuf,
    /// What prepare() has made so far, for undoing it: the container's
    /// directory, and whether `merged` is mounted.
    dir: Option<PathBuf>,
    mounted: bool,
    /// The runtime is not root (found by check(), in the runtime, and so
    /// known in the container's process too): the overlay is mounted by the
    /// container's process, see identity().
    rootless: bool,
}

// ANCHOR: step
impl Step for Overlay {
    fn check(&mut self, ctx: &mut Ctx) -> Result<()> {
        if self.config.layers.is_empty() {
            return Ok(()); // chapter 5's --rootfs, or no rootfs at all
        }
        if ctx.rootfs.is_some() {
            return Err(Error::runtime(
                "--layer and --rootfs cannot be used together",
            ));
        }
        self.rootless = !nix::unistd::geteuid().is_root();
        if self.config.state_dir.as_os_str().is_empty() {
            return Err(Error::runtime(
                "no home directory to keep the layers in: give --state-dir DIR",
            ));
        }
        self.unpack(ctx)
    }

    fn prepare(&mut self, ctx: &mut Ctx) -> Result<()> {
        if self.config.layers.is_empty() {
            return Ok(());
        }
        // cleanup() runs only for steps whose prepare() succeeded: a
        // prepare() that fails half-way must undo its own work, and say
        // what it could not undo.
        self.make(ctx).map_err(|e| match self.teardown(ctx, false) {
            Ok(()) => e,
            Err(left) => Error::with_code(
                e.code,
                format!("{}; then cleaning up failed too: {left}", e.msg),
            ),
        })
    }

    // ANCHOR: identity
    /// Rootless, the overlay is mounted here, in the container's process:
    /// an ordinary user cannot mount on the host, but the container's root
    /// may mount overlayfs in the mount namespace its user namespace owns
    /// (Linux 5.11). identity() is the first child stage, and the first
    /// moment it can: the maps are written (chapter 11's after_clone()),
    /// and chapter 11's identity(), first of all, has made the process root
    /// in its namespace, whose credentials overlayfs keeps as the mounter's
    /// and creates the files of `upper` with; and chapter 5's setup(), in
    /// the next stage, bind-mounts `merged` and pivots into it. The mount never
    /// reaches the host: it is made before chapter 5 makes `/` private, but
    /// a mount namespace made with a new user namespace receives the host's
    /// mounts as slaves, which propagate nothing back; and it ends with the
    /// container's mount namespace.
    fn identity(&self, ctx: &Ctx) -> Result<()> {
        if !self.rootless || self.config.layers.is_empty() {
            return Ok(());
        }
        mount_overlay(ctx, &self.home, self.lowers.len(), true)
    }
    // ANCHOR_END: identity

    fn cleanup(&mut self, ctx: &Ctx) -> Result<()> {
        self.teardown(ctx, self.config.keep).map_err(Error::runtime)
    }
    // ANCHOR_END: step

    fn undo(&self, undo: &mut Undo) {
        undo.mount = Some(undo_mount);
        undo.dir = Some(undo_dir);
    }

    /// The layer store's temp dirs of runs killed while unpacking are the
    /// store's, in no container's record: opening the store reclaims them
    /// (see store.rs), as every start does.
    /// Every store: the state dir's own, and chapter 11's `userns-*` ones.
    fn gc(&self, ctx: &Ctx) -> Result<Vec<String>> {
        let state_dir = &self.config.state_dir;
        let mut stores = vec![state_dir.clone()];
        if let Ok(entries) = fs::read_dir(state_dir) {
            stores.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("userns-"))
                    .map(|e| e.path()),
            );
        }
        let mut left = Vec::new();
        for store in stores.iter().filter(|s| s.join("layers").is_dir()) {
            ctx.say(format_args!(
                "reclaim the stale temp dirs in {}",
                store.join("layers").display()
            ));
            left.extend(Store::open(store)?.stale);
        }
        Ok(left)
    }
}

// ANCHOR: undo
/// Detaches the overlay a killed runtime's record lists, as teardown()
/// does. Not a mount point (EINVAL: never mounted, or unmounted already)
/// or gone (ENOENT) is success. The sweep removes the directories only
/// after this succeeded: they are recorded first, so undone last.
fn undo_mount(ctx: &Ctx, path: &Path) -> Result<()> {
    ctx.say(format_args!("umount2(2) {}, MNT_DETACH", path.display()));
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        // A caller who is not root is refused before the kernel looks at
        // the path (may_mount()). It cannot have mounted anything here: a
        // rootless container's overlay was in the container's own mount
        // namespace, gone with it (and is not recorded). Something mounted
        // here all the same is someone else's, and the directory must not
        // be removed through it.
        Err(nix::errno::Errno::EPERM) if !nix::unistd::geteuid().is_root() => {
            match rootless::is_mount_point(path) {
                Ok(false) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Ok(true) => Err(Error::runtime(format!(
                    "{path:?} is a mount point, not one this user made: unmount it as root"
                ))),
                Err(e) => Err(e).context(format!("statx(2) {path:?}")),
            }
        }
        Err(e) => Err(e).context(format!("umount2(2) {path:?}")),
    }
}

/// Removes a directory a killed runtime's record lists, at any depth (see
/// remove.rs); one already gone is success.
fn undo_dir(ctx: &Ctx, path: &Path) -> Result<()> {
    ctx.say(format_args!("rm -r {}", path.display()));
    remove::remove_tree(path).map_err(|e| {
        Error::runtime(format!(
            "left {path:?} on the host: removing it failed: {e}"
        ))
    })
}
// ANCHOR_END: undo

impl Overlay {
    /// The store for the container's id maps: the state dir itself, or
    /// with chapter 11's maps `STATE/userns-MAPS/`, whose layers belong to
    /// the container's ids on the host. The container's root (say uid
    /// 100000) must get through the state dir to its own directory, for
    /// pivot_root(2): the state dir and the store's containers/ become
    /// 0711 (no listing; layers/ stays 0700) and the container's directory
    /// is its root's (see make()).
    ///
    /// Rootless, the state dir is the user's, in their home: its missing
    /// parents are made too (0700, as the XDG spec asks), and it stays
    /// 0700, as the container's root is the user.
    fn store_dir(&self) -> Result<PathBuf> {
        let owners = &self.config.owners;
        let state = &self.config.state_dir;
        if self.rootless {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state)
                .context(format!("mkdir {}", state.display()))?;
        }
        if owners.is_identity() {
            return Ok(state.clone());
        }
        if self.rootless {
            return Ok(state.join(format!("userns-{}", owners.key())));
        }
        let dir = state.join(format!("userns-{}", owners.key()));
        for d in [state.clone(), dir.clone(), dir.join("containers")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&d)
                .context(format!("mkdir {}", d.display()))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o711))
                .context(format!("chmod 0711 {}", d.display()))?;
        }
        Ok(dir)
    }

    /// Unpacks the layers into the store, or finds them there: the check
    /// stage, before anything of the container exists (not even a
    /// cgroup), because unpacking is how a bad layer is found out. A
    /// refused layer leaves the store as it was.
    fn unpack(&mut self, ctx: &mut Ctx) -> Result<()> {
        let mut store = Store::open(&self.store_dir()?)?;
        for stale in &store.stale {
            warn(ctx, format_args!("{stale}"));
        }
        store.limits = self.config.limits;
        store.owners = self.config.owners.clone();
        // Rootless, maps of more ids than the user's own: only root of a
        // user namespace with those maps can give the files their owners.
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        store.in_userns = self.rootless
            && !store.owners.is_identity()
            && !store.owners.own_only(uid.as_raw(), gid.as_raw());
        let lowers = self
            .config
            .layers
            .iter()
            .map(|tar| store.layer(ctx, tar))
            .collect::<Result<Vec<_>>>()?;
        let lowers = dedup_keep_top(lowers);
        if lowers.len() > OVL_MAX_STACK {
            return Err(Error::runtime(format!(
                "{} layers: overlayfs stacks at most {OVL_MAX_STACK}",
                lowers.len()
            )));
        }
        self.lowers = lowers;
        self.home = store.container(&ctx.id);
        Ok(())
    }

    /// The container's directories and its overlay mount.
    fn make(&mut self, ctx: &mut Ctx) -> Result<()> {
        let lowers = &self.lowers;
        let dir = self.home.clone();
        // Recorded before they are made, for a sweep if the runtime is
        // killed: the whole directory, or with --keep what is not kept.
        let made = match self.config.keep {
            false => vec![dir.clone()],
            true => ["work", "merged", "l"].map(|d| dir.join(d)).to_vec(),
        };
        for path in made {
            ctx.record(Resource::Dir { path })?;
        }
        ctx.say(format_args!(
            "mkdir {}/{{upper,work,merged,l}}",
            dir.display()
        ));
        mkdir(&dir, 0o700)?;
        self.dir = Some(dir.clone());
        if let Ok((uid, gid)) = self.config.owners.host(0, 0) {
            if !self.config.owners.is_identity() {
                std::os::unix::fs::chown(&dir, Some(uid as u32), Some(gid as u32))
                    .context(format!("chown(2) {}", dir.display()))?;
            }
        }
        // upper is the root directory of the merged tree: give it the top
        // layer's mode and owner (usually 0755 root:root).
        let top = fs::metadata(lowers.last().expect("at least one layer"))
            .context("stat(2) the top layer")?;
        mkdir(&dir.join("upper"), top.mode() & 0o7777)?;
        std::os::unix::fs::chown(dir.join("upper"), Some(top.uid()), Some(top.gid()))
            .context("chown(2) upper")?;
        mkdir(&dir.join("work"), 0o700)?;
        mkdir(&dir.join("merged"), 0o755)?;
        mkdir(&dir.join("l"), 0o700)?;
        for (i, lower) in lowers.iter().enumerate() {
            let link = dir.join("l").join(i.to_string());
            ctx.say(format_args!("symlink(2) l/{i} -> {}", lower.display()));
            std::os::unix::fs::symlink(lower, &link)
                .context(format!("symlink(2) {}", link.display()))?;
        }

        // Rootless: the container's process mounts it (see identity()),
        // in a mount namespace that ends with it: nothing on the host to record.
        if !self.rootless {
            ctx.record(Resource::Mount {
                path: dir.join("merged"),
            })?;
            mount_overlay(ctx, &dir, lowers.len(), false)?;
            self.mounted = true;
        }
        ctx.rootfs = Some(dir.join("merged"));
        ctx.layers = lowers.clone();
        Ok(())
    }

    /// Undoes setup(), as far as it got. Err says what is left on the host
    /// and where: a container's upper dir is its data, and a failure to
    /// remove it must not pass for a clean exit.
    fn teardown(&mut self, ctx: &Ctx, keep_upper: bool) -> std::result::Result<(), String> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        let merged = dir.join("merged");
        if self.mounted {
            ctx.say(format_args!("umount2(2) {}, MNT_DETACH", merged.display()));
            if let Err(e) = umount2(&merged, MntFlags::MNT_DETACH) {
                // Removing files through a mounted merged dir would remove
                // them from upper: leave everything for a human.
                return Err(format!(
                    "left {dir:?} on the host, with the overlay still mounted on {merged:?}: \
                     umount2(2) failed: {}",
                    ch01_process::error::describe(e)
                ));
            }
            self.mounted = false;
        }
        // remove_tree, not fs::remove_dir_all: the upper dir is the
        // container's own making, and may be deeper than the runtime has
        // file descriptors (see remove.rs); rootless, it may hold files of
        // the user's subordinate ids (see rootless.rs).
        if keep_upper {
            let mut left = Vec::new();
            for sub in ["merged", "work", "l"] {
                let path = dir.join(sub);
                if let Err(e) = remove::remove_tree(&path) {
                    left.push(format!(
                        "left {path:?} on the host: removing it failed: {e}"
                    ));
                }
            }
            ctx.tell(format_args!(
                "kept the container's upper dir: {}",
                dir.join("upper").display()
            ));
            if !left.is_empty() {
                return Err(left.join("; "));
            }
        } else {
            ctx.say(format_args!("rm -r {}", dir.display()));
            remove::remove_tree(&dir)
                .map_err(|e| format!("left {dir:?} on the host: removing it failed: {e}"))?;
        }
        Ok(())
    }
}

/// The most lower layers overlayfs accepts (OVL_MAX_STACK in the kernel).
const OVL_MAX_STACK: usize = 500;

/// overlayfs refuses the same directory twice in lowerdir. A layer that
/// appears twice (bottom first: A, B, A) may keep only its top occurrence:
/// every path of the lower copy is covered by the same path in the upper one.
fn dedup_keep_top(lowers: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut top_first: Vec<PathBuf> = lowers
        .into_iter()
        .rev()
        .filter(|l| seen.insert(l.clone()))
        .collect();
    top_first.reverse();
    top_first
}

// ANCHOR: mount
/// mount(2) an overlay of the layers `dir/l/0` (bottom) … `dir/l/N-1` (top),
/// with `dir/upper` for writes, on `dir/merged`: by the runtime on the host,
/// or `rootless`, by the container's process in its own namespaces.
fn mount_overlay(ctx: &Ctx, dir: &Path, layers: usize, rootless: bool) -> Result<()> {
    let data = overlay_options(layers, rootless)?;
    let merged = dir.join("merged");
    ctx.say(format_args!(
        "mount(2) overlay on {} ({data}) in {}",
        merged.display(),
        dir.display()
    ));
    // The return type written out: in the lab's starter a todo!() stands for
    // the mount, which leaves nothing to infer it from.
    let mount_here = || -> nix::Result<()> {
        // lab: begin mount(2) an "overlay" on "merged", with `data` as its options
        mount(
            Some("overlay"),
            "merged",
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        // lab: end
    };
    // The relative paths need the container's directory as the current
    // one, but the runtime's current directory is not ours to change (a
    // program may run other work on other threads). A thread that leaves
    // the process's fs_struct with unshare(CLONE_FS) has a current
    // directory of its own: it chdir(2)s and mounts, and nobody else moves.
    // The container's process has no other threads, and chapter 5's
    // setup() chdir(2)s into the rootfs later: it chdir(2)s itself, and
    // back, so that no later stage depends on where this one left it.
    let result = if rootless {
        let back = nix::fcntl::open(
            ".",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context("opening the current directory")?;
        // SAFETY: `back` was just opened and nothing else owns it.
        let back = unsafe { std::os::fd::OwnedFd::from_raw_fd(back) };
        nix::unistd::chdir(dir).context(format!("chdir(2) {}", dir.display()))?;
        let result = mount_here();
        nix::unistd::fchdir(back.as_raw_fd()).context("fchdir(2) back")?;
        result
    } else {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)
                        .context("unshare(2) CLONE_FS")?;
                    nix::unistd::chdir(dir).context(format!("chdir(2) {}", dir.display()))?;
                    Ok::<_, Error>(mount_here())
                })
                .join()
                .map_err(|_| Error::runtime("the thread that mounts the overlay panicked"))
        })??
    };
    result.map_err(|e| {
        let why = match e {
            nix::errno::Errno::ENODEV => "overlayfs is not available: modprobe overlay".to_string(),
            e if rootless => format!(
                "{} (in a user namespace, overlayfs needs Linux 5.11 and user xattrs \
                 on the state dir's file system)",
                ch01_process::error::describe(e)
            ),
            e => format!(
                "{} (the kernel says why in dmesg)",
                ch01_process::error::describe(e)
            ),
        };
        Error::runtime(format!("mount(2) overlay on {}: {why}", merged.display()))
    })
}

/// The overlay's mount options for `layers` layers, relative to the
/// container's directory. `userxattr` (rootless): overlayfs keeps its
/// marks (opaque directories, see layer.rs) in `user.overlay.*` xattrs,
/// which an ordinary user may set, instead of `trusted.overlay.*`.
fn overlay_options(layers: usize, userxattr: bool) -> Result<String> {
    // lowerdir lists the layers TOP FIRST: a file in a layer hides the same
    // path in every layer after it in the list. --layer is bottom first.
    let lowerdir: Vec<String> = (0..layers).rev().map(|i| format!("l/{i}")).collect();
    let mut data = format!(
        "lowerdir={},upperdir=upper,workdir=work",
        lowerdir.join(":")
    );
    if userxattr {
        data.push_str(",userxattr");
    }
    // mount(2) copies at most one page (4096 bytes) of options: with
    // absolute paths, /var/lib/stepbox/layers/<64 hex digits> is 88 bytes a
    // layer, and 50 layers would not fit. So the paths are relative to the
    // container's directory, through the
    // short symlinks l/0, l/1, … (docker's overlay2 does the same with its
    // l/ directory): about 5 bytes a layer. Relative to what: see
    // mount_overlay().
    if data.len() >= 4096 {
        return Err(Error::runtime(format!(
            "{layers} layers: the overlay options exceed one page (4096 bytes)"
        )));
    }
    Ok(data)
}
// ANCHOR_END: mount

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .context(format!("mkdir {}", path.display()))?;
    // The mode given to mkdir(2) is reduced by the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .context(format!("chmod {}", path.display()))
}

fn warn(ctx: &Ctx, what: std::fmt::Arguments) {
    ctx.tell(format_args!("warning: {what}"));
}

/// A size in bytes, shown in --help as it would be typed (`16g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (shift, unit) in [(40, "t"), (30, "g"), (20, "m"), (10, "k")] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

fn parse_layer_size(s: &str) -> std::result::Result<Size, String> {
    // size::parse refuses what does not fit in 64 bits.
    match ch07_cgroups::size::parse(s)? {
        0 => Err("must be at least 1 byte (leave --max-layer-size out for the default)".into()),
        n => Ok(Size(n)),
    }
}

fn parse_layer_entries(s: &str) -> std::result::Result<u64, String> {
    use std::num::IntErrorKind::*;
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 (leave --max-layer-entries out for the default)".into()),
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == PosOverflow => Err(format!("{s:?} is too large")),
        Err(_) if s.trim().starts_with('-') => Err("must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long-running program (an engine) may prepare a container in one
    /// thread and hand it to another: every chapter's steps are Send.
    #[test]
    fn every_chapters_steps_can_move_to_another_thread() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            opts: Opts,
        }
        let cli = Cli::parse_from([
            "ch08-overlay",
            "--veth",
            "--memory",
            "64m",
            "--layer",
            "x.tar",
        ]);
        let steps = cli.opts.config().steps();
        let n = std::thread::spawn(move || steps.len()).join().unwrap();
        assert!(n >= 9, "{n} steps");
    }

    #[test]
    fn an_explicit_state_dir_wins_over_the_callers_default() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            opts: Opts,
        }
        let given = Cli::parse_from(["ch08-overlay", "--state-dir", "/srv/sb"]);
        assert_eq!(given.opts.config().state_dir, PathBuf::from("/srv/sb"));
        let default = Cli::parse_from(["ch08-overlay"]);
        assert_eq!(
            default.opts.config().state_dir,
            rootless::default_state_dir()
        );
    }

    #[test]
    fn a_rootless_overlay_reads_user_xattrs() {
        assert_eq!(
            overlay_options(3, false).unwrap(),
            "lowerdir=l/2:l/1:l/0,upperdir=upper,workdir=work"
        );
        assert_eq!(
            overlay_options(1, true).unwrap(),
            "lowerdir=l/0,upperdir=upper,workdir=work,userxattr"
        );
        assert!(overlay_options(OVL_MAX_STACK, true).is_ok());
        let e = overlay_options(2000, false).unwrap_err();
        assert!(e.msg.contains("one page"), "{}", e.msg);
    }

    #[test]
    fn layer_limits_parse_and_refuse_what_they_cannot_hold() {
        assert_eq!(parse_layer_size("1m"), Ok(Size(1 << 20)));
        assert_eq!(parse_layer_size("16 GiB"), Ok(Size(16 << 30)));
        assert!(parse_layer_size("0").is_err());
        let too_big = parse_layer_size("99999999999999999999999t").unwrap_err();
        assert!(too_big.contains("too large"), "{too_big}");
        assert!(parse_layer_size("lots").unwrap_err().contains("not a size"));

        assert_eq!(parse_layer_entries("1000"), Ok(1000));
        assert_eq!(parse_layer_entries(&u64::MAX.to_string()), Ok(u64::MAX));
        let too_big = parse_layer_entries("18446744073709551616").unwrap_err();
        assert!(too_big.contains("too large"), "{too_big}");
        assert!(parse_layer_entries("0").unwrap_err().contains("at least 1"));
        assert!(parse_layer_entries("-5")
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse_layer_entries("1e3")
            .unwrap_err()
            .contains("not a whole number"));
    }

    #[test]
    fn the_default_limits_are_shown_as_they_parse() {
        let d = layer::Limits::default();
        assert_eq!(Size(16 << 30).to_string(), "16g");
        assert_eq!(Size(1536).to_string(), "1536");
        assert_eq!(
            parse_layer_size(&Size(d.max_bytes).to_string()),
            Ok(Size(d.max_bytes))
        );
    }
}
