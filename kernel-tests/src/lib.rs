//! Differential testing of `strata-overlayfs` against the Linux kernel's
//! overlayfs.
//!
//! The harness builds the same layer stack twice (the kernel's on-disk
//! format for the kernel mount, a random mix of kernel and aufs/OCI
//! whiteouts and opaque markers for strata), mounts both, applies the same
//! operations through both mounts and compares what a program sees: errno
//! values, names, types, modes, owners, sizes, contents, link counts, inode
//! sharing, mtimes and xattrs. Then it unmounts, compares the upper
//! directories on disk, remounts, and cross-mounts each upper with the other
//! implementation.
//!
//! - [`spec`]: the layer model ([`LayerSpec`], [`Stack`]) and [`materialize`].
//! - [`mount`]: [`mount_kernel`], [`mount_strata`], the [`Mount`] guard.
//! - [`snapshot`]: [`snapshot`](snapshot::snapshot) / [`snapshot_upper`] and [`Tree::diff`].
//! - [`ops`]: the operation model [`Op`] and [`OpResult`].
//! - [`runner`]: [`run_case`] returning a [`Mismatch`] report.
//! - [`strategy`]: proptest strategies for random cases.
//!
//! Everything needs root and `/dev/fuse` ([`skip_reason`]).

pub mod errno;
pub mod mount;
pub mod ops;
pub mod path;
pub mod runner;
pub mod snapshot;
pub mod spec;
pub mod strategy;

pub use errno::errno_name;
pub use mount::{
    can_run, is_mounted, kernel_opts, mount, mount_kernel, mount_kernel_with, mount_strata, mount_strata_with,
    skip_reason, step_timeout, strata_bin, Impl, Mount, DEFAULT_KERNEL_OPTS, KERNEL_OPTS_INDEX_OFF,
};
pub use ops::{show_result, Op, OpResult, RenameHow, WriteHow, XattrHow};
pub use path::RelPath;
pub use runner::{run_case, Case, DiffOptions, Mismatch, Phase, Report};
pub use snapshot::{snapshot, snapshot_upper, CompareOptions, FType, MTime, Node, Tree, Xattrs};
pub use spec::{materialize, pattern, Entry, Format, Kind, LayerSpec, Layout, Stack};

/// A process-wide lock: mounts of one test binary run one at a time.
/// Poisoning (a failed test) is ignored.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
