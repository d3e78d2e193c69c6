//! The runtime's error type.

/// Errors of running containers. `Display` gives the text Docker prints
/// after `Error response from daemon: ` where Docker has one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] strata_store::Error),
    /// The storage driver failed.
    #[error(transparent)]
    Driver(#[from] strata_driver::Error),
    /// A system call or file operation failed.
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
    /// A user or group named by `-u` is not in the image.
    #[error("unable to find {kind} {name}: no matching entries in {file} file")]
    NoSuchUser {
        /// `user` or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// `passwd` or `group`.
        file: &'static str,
    },
    /// Neither the image nor the command line gives a command.
    #[error("No command specified")]
    NoCommand,
    /// A flag value that cannot be used (message as Docker's).
    #[error("{0}")]
    Invalid(String),
    /// The OCI runtime refused or failed; `message` is its own error text.
    #[error("OCI runtime {op} failed: {message}: unknown")]
    Runtime {
        /// `create`, `start`, `exec`, …
        op: &'static str,
        /// The runtime's message (e.g. `runc create failed: …`).
        message: String,
        /// The exit status Docker gives this failure (125, 126 or 127).
        status: u8,
    },
    /// The container is not in a state that allows the operation.
    #[error("{0}")]
    State(String),
    /// A JSON file of the runtime could not be read or written.
    #[error("{what}: {source}")]
    Json {
        /// Which file.
        what: String,
        /// The failure.
        #[source]
        source: serde_json::Error,
    },
    /// The OCI spec could not be built.
    #[error("OCI spec: {0}")]
    Spec(String),
    /// The seccomp profile could not be used.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

impl Error {
    /// The exit status `docker run` gives this error: the runtime's own
    /// mapping (126 not executable, 127 not found), 125 otherwise.
    pub fn exit_status(&self) -> u8 {
        match self {
            Error::Runtime { status, .. } => *status,
            _ => 125,
        }
    }
}

/// Result with the runtime [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Attach an operation and a path to I/O errors.
pub(crate) trait IoContext<T> {
    /// `op` on `path` failed.
    fn at(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io { op, path: path.display().to_string(), source })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn at(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::Io { op, path: path.display().to_string(), source: e.into() })
    }
}
