//! The OCI distribution API: a client with token and basic auth, retries
//! and redirects ([`client`]), pull ([`pull`]) and push ([`push`]) against
//! the store, search ([`search`]) and the user's registry configuration
//! ([`config`]).

pub mod client;
pub mod config;
pub mod pull;
pub mod push;
pub mod search;

pub use client::{Client, RegistryError};
pub use config::RegistryConfig;

/// Media types.
pub mod media {
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// OCI manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// gzip layer (Docker).
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Foreign layer (Docker): not distributable.
    pub const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// Every manifest type we accept.
    pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
}
