//! Settings resolved from flags and environment: where the store is and
//! which driver it uses.

use std::path::PathBuf;

use anyhow::Result;
use strata_store::Store;

use crate::cli::Cli;

/// Resolved global settings.
pub struct Settings {
    /// Store root.
    pub root: PathBuf,
    /// Storage driver name.
    pub driver: String,
    /// Read-only image stores (`--store-ro`).
    pub store_ro: Vec<PathBuf>,
}

impl Settings {
    /// Resolve from the parsed command line.
    pub fn resolve(cli: &Cli) -> Settings {
        let root = cli.root.clone().unwrap_or_else(default_root);
        // Docker's name of the kernel overlay driver is overlay2.
        let default = if crate::rootless::rootless_uid().is_some() { "vfs" } else { strata_driver::DEFAULT_DRIVER };
        let driver = cli
            .storage_driver
            .clone()
            .map(|d| if d == "overlay2" { "overlay".to_string() } else { d })
            .or_else(|| Store::recorded_driver(&root))
            .unwrap_or_else(|| default.to_string());
        Settings { root, driver, store_ro: cli.store_ro.clone() }
    }

    /// Open the store.
    pub fn store(&self) -> Result<Store> {
        if crate::rootless::rootless_uid().is_some() && self.driver != "vfs" {
            anyhow::bail!(
                "the {} storage driver does not work rootless yet (its overlay metadata lives in trusted.* extended attributes, which a user namespace cannot write): use --storage-driver vfs",
                self.driver
            );
        }
        Ok(Store::open_with(&self.root, &self.driver, &self.store_ro)?)
    }
}

fn default_root() -> PathBuf {
    if crate::rootless::rootless_uid().is_none() && rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/strata");
    }
    match std::env::var_os("XDG_DATA_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("strata"),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
            .join(".local/share/strata"),
    }
}
