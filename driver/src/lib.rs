//! Storage drivers: layer directories, mounts, apply and diff of layer tars.
//!
//! A driver owns layer directories under `<root>/<driver-name>/` and knows
//! how to stack them. Layers are named by an opaque *cache id* chosen by the
//! caller (the store), and each names its parent layer (the one below it)
//! at creation. Three drivers share this API and a conformance suite:
//! `fuse-overlay` (default; mounts strata-fs), `overlay` (kernel overlayfs)
//! and `vfs` (full copies).
//!
//! Contracts shared by every driver:
//! - [`Driver::apply_diff`] consumes an *uncompressed* tar stream to its end
//!   (the caller hashes the same bytes for the diff-id) and records a
//!   [tar-split](Driver::apply_diff) so [`Driver::assemble`] can reproduce
//!   the exact bytes later without a second copy of the layer.
//! - Nothing outside the layer directory is ever created, changed or deleted
//!   by an apply, whatever the tar holds.
//! - A failed apply leaves no partial layer content that a later mount or
//!   diff would show (the caller removes the layer; the overlay drivers
//!   also empty the layer's `diff/` themselves).
//!
//! Modules: `apply` (safe streaming untar + tar-split recording),
//! `tarsplit` (the split format and `assemble`), `tarfmt` (header parsing
//! and Docker-style header writing), `changes` (A/C/D items behind
//! `changes`, `diff` and `diff_size`), `stack` (merged view of layer
//! directories, for `export` and lower lookups), `emit` (files to tar
//! entries), `overlay`/`vfs` (the drivers), `mount` (kernel and FUSE
//! mounting), `refcount` and `mountinfo` (cross-process mount state),
//! `home` (layer directories and parents).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;

mod apply;
mod changes;
mod emit;
mod home;
mod mount;
mod mountinfo;
mod overlay;
mod refcount;
mod stack;
mod sys;
mod tarfmt;
mod tarsplit;
mod vfs;

pub use mount::fuse::{find_binary as find_overlayfs_binary, BIN_ENV as OVERLAYFS_BIN_ENV};
pub use vfs::copy_tree;

/// The drivers this crate provides, default first.
pub const DRIVERS: &[&str] = &["fuse-overlay", "overlay", "vfs"];

/// The driver used when none is chosen.
pub const DEFAULT_DRIVER: &str = "fuse-overlay";

/// Open the driver `name` (one of [`DRIVERS`]), keeping its layers under
/// `<root>/<name>/` (created if missing).
pub fn open(root: &Path, name: &str) -> Result<Box<dyn Driver>> {
    open_with(root, name, &[])
}

/// Open the driver `name` with the layers of other stores' roots
/// (`extra`, read-only image stores) usable as parents and lower layers:
/// a layer id not found under `<root>/<name>/` is looked up under each
/// `<extra>/<name>/`. Layers are only ever created or removed under `root`.
pub fn open_with(root: &Path, name: &str, extra: &[std::path::PathBuf]) -> Result<Box<dyn Driver>> {
    let home = |n: &str| home::Home::open_with(root, n, extra);
    match name {
        "fuse-overlay" => Ok(Box::new(overlay::OverlayDriver::open(home(name)?, "fuse-overlay", mount::Mounter::Fuse))),
        "overlay" => Ok(Box::new(overlay::OverlayDriver::open(home(name)?, "overlay", mount::Mounter::Kernel))),
        "vfs" => Ok(Box::new(vfs::VfsDriver::open(home(name)?))),
        other => Err(Error::UnknownDriver(other.to_string())),
    }
}

/// The filesystem type under `path`, for `status`.
#[allow(clippy::unnecessary_cast)] // f_type's type differs between targets
fn backing_fs(path: &Path) -> String {
    match rustix::fs::statfs(path).map(|s| s.f_type as i64) {
        Ok(0xEF53) => "extfs".into(),
        Ok(0x5846_5342) => "xfs".into(),
        Ok(0x9123_683E) => "btrfs".into(),
        Ok(0x0102_1994) => "tmpfs".into(),
        Ok(0x794C_7630) => "overlayfs".into(),
        Ok(0x6573_5546) => "fuse".into(),
        Ok(0x2FC1_2FC1) => "zfs".into(),
        Ok(t) => format!("0x{t:x}"),
        Err(e) => format!("unknown ({e})"),
    }
}

/// What happened to a path in a layer, relative to its parent stack
/// (Docker's `A`/`C`/`D`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    /// Modified (content, metadata, or a directory whose children changed).
    Modified,
    /// Added.
    Added,
    /// Deleted.
    Deleted,
}

/// One change: a path (absolute, starting with `/`, as bytes) and its kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Absolute path inside the root filesystem, e.g. `/etc/passwd`.
    pub path: OsString,
    /// `A`, `C` or `D`.
    pub kind: ChangeKind,
}

/// The result of applying a layer tar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Bytes of file content the layer holds (Docker's layer "size").
    pub size: u64,
    /// Uncompressed tar bytes consumed.
    pub tar_bytes: u64,
}

/// A storage driver. Layer ids are opaque names chosen by the caller
/// (letters, digits, `-`, `_`; anything else is rejected with
/// [`Error::BadId`]). Implementations are safe to call from several
/// processes at once for *different* layers; the store serialises writers
/// of the same layer with its own lock.
pub trait Driver: Send + Sync {
    /// The driver's name as users give it: `fuse-overlay`, `overlay`, `vfs`.
    fn name(&self) -> &'static str;

    /// Create the empty layer `id` on top of `parent` (`None`: a base layer).
    /// Fails if `id` exists or `parent` does not.
    fn create(&self, id: &str, parent: Option<&str>) -> Result<()>;

    /// Remove layer `id` and everything it holds (unmounting it first if a
    /// mount of it is live). Removing a missing layer is not an error.
    fn remove(&self, id: &str) -> Result<()>;

    /// Remove layer `id` and whatever this process has begun of it (an
    /// interrupted create). Not for layers another process may be making.
    fn abandon(&self, id: &str) -> Result<()>;

    /// Whether layer `id` exists (fully created).
    fn exists(&self, id: &str) -> bool;

    /// Every layer id the driver holds, sorted.
    fn list(&self) -> Result<Vec<String>>;

    /// The parent given to [`Driver::create`].
    fn parent(&self, id: &str) -> Result<Option<String>>;

    /// Mount the merged tree of `id` and its ancestors (writable: `id` is
    /// the upper layer) and return its path. Reference counted across
    /// processes: each call adds one, [`Driver::unmount`] drops one and the
    /// last one unmounts. The mount outlives the calling process (for
    /// `fuse-overlay`, a daemon per mount). A stale mount (daemon gone) is
    /// detected, cleaned up and mounted afresh, never returned as live.
    fn mount(&self, id: &str) -> Result<std::path::PathBuf>;

    /// Drop one reference taken by [`Driver::mount`]; unmount at zero.
    fn unmount(&self, id: &str) -> Result<()>;

    /// Whether `id` is mounted and the mount answers (not stale).
    fn is_mounted(&self, id: &str) -> Result<bool>;

    /// The number of references [`Driver::mount`] holds on `id` (as seen by
    /// every process; 0 when not mounted).
    fn mount_count(&self, id: &str) -> Result<u64>;

    /// Apply the uncompressed layer tar `tar` (OCI layer format: `.wh.NAME`
    /// whiteouts, `.wh..wh..opq` opaque markers) to the empty layer `id`,
    /// reading it to its very end (the caller digests the same bytes).
    /// Writes to `split` a description of the tar without file contents
    /// (a "tar-split": headers, padding, trailer, and which file each
    /// content run came from) so [`Driver::assemble`] can reproduce the
    /// exact bytes later. Entries are checked as DESIGN.md requires;
    /// a bad entry fails the whole apply with [`Error::Unsafe`] or
    /// [`Error::Malformed`].
    fn apply_diff(&self, id: &str, tar: &mut dyn Read, split: &mut dyn Write) -> Result<Applied>;

    /// Reproduce, byte for byte, the tar that was applied to `id`, from the
    /// tar-split written by [`Driver::apply_diff`] and the layer's files.
    /// Returns the number of bytes written. Fails with
    /// [`Error::Malformed`] if the layer's files no longer match the split
    /// (e.g. a size changed).
    fn assemble(&self, id: &str, split: &mut dyn Read, out: &mut dyn Write) -> Result<u64>;

    /// The changes of `id` relative to its parent stack as a deterministic
    /// OCI layer tar (sorted entries, stable headers, no invented times,
    /// no overlay-private xattrs). Returns bytes written.
    fn diff(&self, id: &str, out: &mut dyn Write) -> Result<u64>;

    /// The changes of `id` relative to its parent stack, sorted by path.
    fn changes(&self, id: &str) -> Result<Vec<Change>>;

    /// Bytes of file content in the layer's own changes.
    fn diff_size(&self, id: &str) -> Result<u64>;

    /// The merged tree of `id` and its ancestors as one tar (for `export`),
    /// produced without mounting anything. Returns bytes written.
    fn export(&self, id: &str, out: &mut dyn Write) -> Result<u64>;

    /// [`Driver::export`] of `id` as if its ancestor `hidden` (a
    /// container's init layer) were not in its stack: what only `hidden`
    /// holds is left out. Drivers that cannot separate layers (`vfs`, whose
    /// layers are full copies) export everything.
    fn export_hiding(&self, id: &str, hidden: &str, out: &mut dyn Write) -> Result<u64> {
        let _ = hidden;
        self.export(id, out)
    }

    /// The directory holding layer `id`'s own files (an overlay layer's
    /// upper `diff/`, a vfs layer's whole tree), for writers that resolve
    /// paths through a mount and write the files directly (the build's
    /// COPY). `None` when the driver has no such directory.
    fn upper_dir(&self, id: &str) -> Result<Option<std::path::PathBuf>> {
        let _ = id;
        Ok(None)
    }

    /// Facts for `strata info`: (key, value) pairs.
    fn status(&self) -> Vec<(String, String)>;
}

/// Errors of the storage drivers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer id with characters outside `[A-Za-z0-9_-]` or empty.
    #[error("invalid layer id {0:?}")]
    BadId(String),
    /// No such layer.
    #[error("layer {0} does not exist")]
    NotFound(String),
    /// The layer exists already.
    #[error("layer {0} already exists")]
    Exists(String),
    /// An unknown driver name.
    #[error("unknown storage driver {0:?} (known: fuse-overlay, overlay, vfs)")]
    UnknownDriver(String),
    /// A tar entry that would touch something outside the layer.
    #[error("unsafe layer entry {path:?}: {why}")]
    Unsafe {
        /// The entry's name as in the tar.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A tar (or tar-split) that cannot be read.
    #[error("malformed layer: {0}")]
    Malformed(String),
    /// A system call or I/O failure, with what was being done.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Mounting or unmounting failed.
    #[error("mount of layer {id}: {why}")]
    Mount {
        /// The layer.
        id: String,
        /// What went wrong.
        why: String,
    },
}

/// Result with the driver [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
