//! How the overlay drivers mount a stack: the kernel's overlayfs or the
//! `strata-overlayfs` FUSE daemon. Both take the same layer directories.

use std::path::{Path, PathBuf};

use crate::Result;

pub(crate) mod fuse;
pub(crate) mod kernel;

/// The directories of one overlay mount.
pub(crate) struct Spec<'a> {
    /// The layer id (for errors).
    pub id: &'a str,
    /// Lower directories, top first (never empty).
    pub lowers: Vec<PathBuf>,
    pub upper: &'a Path,
    pub work: &'a Path,
    pub target: &'a Path,
}

/// A way of mounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mounter {
    Kernel,
    Fuse,
}

impl Mounter {
    /// Mount `spec` (the target is not mounted).
    pub(crate) fn mount(self, spec: &Spec) -> Result<()> {
        match self {
            Mounter::Kernel => kernel::mount(spec),
            Mounter::Fuse => fuse::mount(spec),
        }
    }
}
