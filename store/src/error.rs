//! The store's error type.

use std::path::PathBuf;

/// Errors of the image store. Messages follow Docker's where users see them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// I/O on a store or input file, with what was being done.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// I/O on a stream (stdin, a tar member) with what was being done.
    #[error("{op}: {source}")]
    Stream {
        /// What was being done.
        op: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Bytes whose digest is not the one they were announced with.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified.
        what: String,
        /// The announced digest.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// A malformed digest string.
    #[error("invalid digest {0:?}")]
    BadDigest(String),
    /// A malformed reference (Docker's wording).
    #[error("invalid reference format: {0}")]
    BadReference(String),
    /// A repository name Docker refuses outright (an image ID as a name).
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    IdAsRepositoryName(String),
    /// No image by that name, ID or digest.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// A reference that exists nowhere.
    #[error("reference does not exist")]
    NoSuchReference(String),
    /// An image archive or layout that cannot be understood.
    #[error("invalid image archive: {0}")]
    BadArchive(String),
    /// An input stream that is not a tar at all (Docker's wording).
    #[error("Error processing tar file(exit status 1): {0}")]
    NotATar(String),
    /// A JSON document (config, manifest, store metadata) that cannot be parsed.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The store on disk holds something unexpected.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A conflict that stops a removal (Docker's messages).
    #[error("{0}")]
    Conflict(String),
    /// A storage-driver failure.
    #[error(transparent)]
    Driver(#[from] strata_driver::Error),
    /// A registry refused or failed a request (message as Docker words it).
    #[error("{0}")]
    Registry(String),
    /// A change to a store that cannot be written.
    #[error("the store at {} cannot be written ({source}): only commands that read it work", root.display())]
    ReadOnly {
        /// The store root.
        root: PathBuf,
        /// Why (read-only filesystem, permission denied).
        #[source]
        source: std::io::Error,
    },
    /// Anything else the user asked for that cannot be done, in Docker's words.
    #[error("{0}")]
    Invalid(String),
}

/// Result with the store [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Attach context to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Context of a file operation.
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
    /// Context of a stream operation.
    fn during(self, op: impl Into<String>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io { op, path: path.into(), source })
    }
    fn during(self, op: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Stream { op: op.into(), source })
    }
}
