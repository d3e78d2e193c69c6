//! strata-fs: a userspace overlay filesystem with the semantics and on-disk
//! format of the kernel's overlayfs (`redirect_dir=on`).
//!
//! - [`overlay`]: the union as a plain typed API (lookup, readdir, create,
//!   rename, copy-up, …) over layer directories;
//! - [`fuse`]: the adapter serving that API through `fuser`;
//! - [`killpriv`]: which setuid/setgid bits a write or truncate clears;
//! - [`options`]: the fuse-overlayfs / mount.fuse command line;
//! - [`mount`]: mounting, in the foreground or as a daemon;
//! - [`sys`]: the one module with `unsafe` (`fork`).

pub mod copy_up;
pub mod error;
pub mod fuse;
pub mod ino;
pub mod killpriv;
pub mod layer;
pub mod mount;
pub mod options;
pub mod overlay;
pub mod sys;

pub use error::{Error, Result};
pub use overlay::{Overlay, OverlayConfig};
