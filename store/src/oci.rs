//! The manifest documents of the OCI image spec and Docker schema 2, as far
//! as loading and pulling read them (archives, layouts and registries share
//! these types), and the platform names they use.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;

/// A content descriptor.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the referenced bytes.
    pub digest: Digest,
    /// Their size (0 when absent).
    #[serde(default)]
    pub size: u64,
    /// Where foreign layers may be fetched from.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Annotations (`org.opencontainers.image.ref.name`…).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Platform of an index entry.
    #[serde(default)]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// Whether it points at an index / manifest list rather than a manifest.
    pub fn is_index(&self) -> bool {
        self.media_type.contains("index") || self.media_type.contains("manifest.list")
    }
}

/// The platform of an index entry.
#[derive(Clone, Debug, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`…).
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v8`…).
    #[serde(default)]
    pub variant: Option<String>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Deserialize)]
pub struct Index {
    /// The manifests it lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Deserialize)]
pub struct Manifest {
    /// The image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// This machine's architecture in the OCI spelling (`amd64`, `arm64`).
pub fn host_arch() -> String {
    std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")
}
