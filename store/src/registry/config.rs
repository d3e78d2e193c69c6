//! The user's registry configuration and credentials, in one JSON file
//! (`$STRATA_CONFIG`, else `$XDG_CONFIG_HOME/strata/config.json`, else
//! `~/.config/strata/config.json`), written with mode 0600:
//!
//! ```json
//! {"registry-mirrors": ["https://mirror.example"],
//!  "insecure-registries": ["myregistry:5000"],
//!  "auths": {"127.0.0.1:5000": {"auth": "<base64 user:password>"}}}
//! ```
//!
//! `STRATA_REGISTRY_TIMEOUT` (seconds, default 30) bounds every network
//! wait: connecting, and each read or write that makes no progress.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// One stored credential.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AuthEntry {
    /// base64 of `user:password`.
    pub auth: String,
}

/// The configuration file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// Mirrors tried first for docker.io.
    #[serde(rename = "registry-mirrors", default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<String>,
    /// Registries reached over plain HTTP (loopback ones always are).
    #[serde(rename = "insecure-registries", default, skip_serializing_if = "Vec::is_empty")]
    pub insecure: Vec<String>,
    /// Credentials by registry host.
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
    /// How long any network wait may last without progress (not stored
    /// in the file: `STRATA_REGISTRY_TIMEOUT`, see [`RegistryConfig::load`]).
    #[serde(skip)]
    pub timeout: Option<Duration>,
}

/// Default for [`RegistryConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl RegistryConfig {
    /// Where the file is.
    pub fn path() -> PathBuf {
        if let Some(p) = std::env::var_os("STRATA_CONFIG") {
            return PathBuf::from(p);
        }
        let base = match std::env::var_os("XDG_CONFIG_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root")).join(".config"),
        };
        base.join("strata").join("config.json")
    }

    /// Load the file at [`RegistryConfig::path`] (missing file = defaults)
    /// and take the timeout from `STRATA_REGISTRY_TIMEOUT` (whole or
    /// fractional seconds; unset or unparsable = [`DEFAULT_TIMEOUT`]).
    pub fn load() -> Result<RegistryConfig> {
        let p = Self::path();
        let mut cfg: RegistryConfig = match std::fs::read(&p) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|source| Error::Json { what: p.display().to_string(), source })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryConfig::default(),
            Err(e) => return Err(e).at("read", &p),
        };
        cfg.timeout = std::env::var("STRATA_REGISTRY_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64);
        Ok(cfg)
    }

    /// The timeout in force.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Write atomically, readable by the owner only.
    pub fn save(&self) -> Result<()> {
        let p = Self::path();
        let dir = p.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).at("create", dir)?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| Error::Json { what: "config".into(), source })?;
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .at("create", &tmp)?;
            f.write_all(&bytes).at("write", &tmp)?;
            f.sync_all().at("fsync", &tmp)?;
        }
        std::fs::rename(&tmp, &p).at("rename into place", &p)?;
        crate::fsutil::sync_dir(dir)
    }

    /// Forget the credentials of `registry`; true if there were any.
    pub fn remove_credentials(&mut self, registry: &str) -> bool {
        self.auths.remove(registry).is_some()
    }

    /// Stored (user, password) for a registry.
    pub fn credentials(&self, registry: &str) -> Option<(String, String)> {
        let e = self.auths.get(registry)?;
        let raw = base64::engine::general_purpose::STANDARD.decode(&e.auth).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (u, p) = s.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    /// Store credentials for a registry.
    pub fn set_credentials(&mut self, registry: &str, user: &str, password: &str) {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.auths.insert(registry.to_string(), AuthEntry { auth });
    }

    /// Whether `registry` is reached over plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        let host = registry
            .rsplit_once(':')
            .map(|(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { registry })
            .unwrap_or(registry);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            || self.insecure.iter().any(|r| r == registry || r == host)
    }
}
