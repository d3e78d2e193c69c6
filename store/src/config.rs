//! Image configuration documents (the JSON whose digest is the image ID).
//! Parsed loosely: the bytes are kept as received, fields read as needed.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The fields of an image config strata reads. Unknown fields are ignored
/// here; the exact bytes are what the store keeps.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ImageConfig {
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Variant (arm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Runtime config (Env, Cmd, Labels…), kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// The layers.
    #[serde(default)]
    pub rootfs: RootFs,
    /// Build history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Docker's extra fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Docker version that built it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    /// Container the image was committed from (Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Config of that container (Docker, legacy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<serde_json::Value>,
}

/// `rootfs` of a config.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Diff IDs, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// One `history` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct History {
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether this step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// Parse config bytes; `what` names them in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<ImageConfig> {
        let c: ImageConfig =
            serde_json::from_slice(bytes).map_err(|source| Error::Json { what: what.to_string(), source })?;
        Ok(c)
    }

    /// Creation time, if present and valid.
    pub fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.created.as_deref().and_then(parse_time)
    }
}

/// Parse an RFC 3339 time (Docker's, with nanoseconds).
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Format a time as Go's RFC3339Nano (fraction with trailing zeros trimmed).
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let ns = t.timestamp_subsec_nanos();
    if ns == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{ns:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}
