//! The error type of the filesystem library.
//!
//! Every operation of the union API fails with an [`Error`] that carries the
//! errno the kernel should see and a short context saying what was being done.

use std::path::PathBuf;

use rustix::io::Errno;

/// An error of the union filesystem: an errno plus context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall on a layer failed.
    #[error("{op}: {errno}")]
    Sys {
        /// What was being done ("copy-up", "lookup", …).
        op: &'static str,
        /// The errno to report.
        errno: Errno,
    },
    /// The mount configuration is unusable.
    #[error("{0}")]
    Config(String),
    /// The daemon failed and already told the user why (on the shared stderr).
    #[error("the mount daemon failed")]
    Reported,
    /// A layer directory cannot be used.
    #[error("{path}: {reason}")]
    Layer {
        /// The layer directory.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
}

impl Error {
    /// The errno to return to the kernel for this error.
    pub fn errno(&self) -> Errno {
        match self {
            Error::Sys { errno, .. } => *errno,
            Error::Config(_) | Error::Layer { .. } | Error::Reported => Errno::INVAL,
        }
    }

    /// A plain errno with no syscall context (ENOENT from a lookup, …).
    pub fn errno_only(op: &'static str, errno: Errno) -> Self {
        Error::Sys { op, errno }
    }
}

/// Result alias of the fs crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach an operation name to a rustix result.
pub(crate) trait Context<T> {
    fn ctx(self, op: &'static str) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn ctx(self, op: &'static str) -> Result<T> {
        self.map_err(|errno| Error::Sys { op, errno })
    }
}
