//! Containers: a writable driver layer on top of an image, with metadata in
//! `containers/<id>/config.json` (written atomically).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;

/// A container's metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The image it was created from.
    pub image: Digest,
    /// What the user called the image.
    pub image_name: String,
    /// The image's top layer (none for an image without layers).
    pub image_top_layer: Option<Digest>,
    /// The driver's id of the writable layer.
    pub layer: String,
    /// The driver's id of the hidden init layer between the image and the
    /// writable layer (mount points and files the runtime needs), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_layer: Option<String>,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Command and arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The container table.
pub struct Containers {
    dir: PathBuf,
}

impl Containers {
    /// Containers under `root`.
    pub fn new(root: &Path) -> Containers {
        Containers { dir: root.join("containers") }
    }

    /// Every container, oldest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at("list containers", &self.dir),
        };
        for e in rd {
            let e = e.at("list containers", &self.dir)?;
            let p = e.path().join("config.json");
            match fs::read(&p) {
                Ok(b) => out.push(
                    serde_json::from_slice(&b)
                        .map_err(|source| Error::Json { what: p.display().to_string(), source })?,
                ),
                // A container directory without config is an interrupted create.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at("read", &p),
            }
        }
        out.sort_by(|a: &Container, b: &Container| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Write a container's metadata.
    pub fn put(&self, c: &Container) -> Result<()> {
        let b = serde_json::to_vec_pretty(c).map_err(|source| Error::Json { what: "container".into(), source })?;
        write_atomic(&self.dir.join(&c.id).join("config.json"), &b)
    }

    /// The directory of container `id` (its metadata and run files).
    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Remove a container's metadata.
    pub fn remove(&self, id: &str) -> Result<()> {
        let d = self.dir.join(id);
        match fs::remove_dir_all(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", &d),
            _ => Ok(()),
        }
    }

    /// Find a container by full ID, unique ID prefix or name.
    pub fn find(&self, key: &str) -> Result<Container> {
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.name == key || c.id == key) {
            return Ok(c.clone());
        }
        let m: Vec<_> = all.iter().filter(|c| !key.is_empty() && c.id.starts_with(key)).collect();
        match m.len() {
            1 => Ok(m[0].clone()),
            0 => Err(Error::Invalid(format!("No such container: {key}"))),
            _ => Err(Error::Invalid(format!("multiple IDs found with provided prefix: {key}"))),
        }
    }
}
