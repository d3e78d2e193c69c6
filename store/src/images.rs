//! The image store: configs in `blobs/sha256/<id>` (the exact bytes; the
//! image ID is their digest) and one metadata file per image in
//! `imagedb/<id>.json` (when it was added, its parent image if committed).
//! An image exists once its metadata file does; it is written after its
//! layers and config, so a listed image is always complete.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;

/// Store-side facts about an image that are not in its config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImageMeta {
    /// When it entered the store (RFC 3339).
    #[serde(default)]
    pub added: String,
    /// The image it was committed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// Digests of manifests it was pulled or pushed by (`repo@sha256:…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_digests: Vec<String>,
    /// A step of a BuildKit-style build, kept as build cache: not listed by
    /// `images` (not even `-a`) while untagged, not removed by `image
    /// prune`, counted as Build Cache by `system df`, removed by `builder
    /// prune`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub build_cache: bool,
}

/// An image: ID, config (parsed and raw) and metadata.
#[derive(Clone, Debug)]
pub struct Image {
    /// sha256 of the config bytes.
    pub id: Digest,
    /// The config, parsed.
    pub config: ImageConfig,
    /// The config bytes.
    pub raw: Vec<u8>,
    /// Store metadata.
    pub meta: ImageMeta,
}

impl Image {
    /// Chain IDs of the image's layers, bottom first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::new();
        for d in &self.config.rootfs.diff_ids {
            let c = Digest::chain(out.last(), d);
            out.push(c);
        }
        out
    }

    /// The top chain ID (None for an image without layers).
    pub fn top_layer(&self) -> Option<Digest> {
        self.chain_ids().pop()
    }
}

/// Blobs (configs, manifests) by digest.
pub struct Blobs {
    dir: PathBuf,
    /// Blob directories of read-only image stores (read, never written).
    extra: Vec<PathBuf>,
}

impl Blobs {
    /// Blobs under `root`.
    pub fn new(root: &Path, extra: &[PathBuf]) -> Blobs {
        let dir = |r: &Path| r.join("blobs").join("sha256");
        Blobs { dir: dir(root), extra: extra.iter().map(|r| dir(r)).collect() }
    }

    /// Path of a blob.
    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    /// Store `bytes`; if `expected` is given it must be their digest.
    pub fn put(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let d = Digest::of(bytes);
        if let Some(e) = expected {
            if *e != d {
                return Err(Error::DigestMismatch {
                    what: "blob".into(),
                    expected: e.to_string(),
                    actual: d.to_string(),
                });
            }
        }
        let p = self.path(&d);
        if !p.exists() {
            write_atomic(&p, bytes)?;
        }
        Ok(d)
    }

    /// Read a blob, verifying its digest.
    pub fn get(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = crate::fsutil::first_found(&self.dir, &self.extra, d.hex(), Path::is_file);
        let b = fs::read(&p).at("read blob", &p)?;
        let got = Digest::of(&b);
        if got != *d {
            return Err(Error::Corrupt(format!("blob {d} has digest {got}")));
        }
        Ok(b)
    }

    /// Every stored blob's digest.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at("list blobs", &self.dir),
        };
        let mut out: Vec<Digest> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Remove a blob (missing is fine).
    pub fn remove(&self, d: &Digest) -> Result<()> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove blob", &p),
            _ => Ok(()),
        }
    }
}

/// Image metadata files.
pub struct ImageDb {
    dir: PathBuf,
    /// `imagedb/` of read-only image stores (read, never written).
    extra: Vec<PathBuf>,
}

impl ImageDb {
    /// The image db under `root`.
    pub fn new(root: &Path, extra: &[PathBuf]) -> ImageDb {
        ImageDb { dir: root.join("imagedb"), extra: extra.iter().map(|r| r.join("imagedb")).collect() }
    }

    fn path(&self, id: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", id.hex()))
    }

    /// Where image `id`'s metadata is read: here, else in the first
    /// read-only store that has it.
    fn found(&self, id: &Digest) -> PathBuf {
        crate::fsutil::first_found(&self.dir, &self.extra, &format!("{}.json", id.hex()), Path::is_file)
    }

    /// Whether image `id` exists (here or in a read-only store).
    pub fn exists(&self, id: &Digest) -> bool {
        self.found(id).is_file()
    }

    /// Whether image `id` is in this store's own (writable) metadata.
    pub fn is_own(&self, id: &Digest) -> bool {
        self.path(id).is_file()
    }

    /// Metadata of image `id`.
    pub fn get(&self, id: &Digest) -> Result<Option<ImageMeta>> {
        let p = self.found(id);
        match fs::read(&p) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).map_err(|source| Error::Json { what: p.display().to_string(), source })?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at("read", &p),
        }
    }

    /// Write metadata of image `id` atomically.
    pub fn put(&self, id: &Digest, meta: &ImageMeta) -> Result<()> {
        let b = serde_json::to_vec(meta).map_err(|source| Error::Json { what: "image metadata".into(), source })?;
        write_atomic(&self.path(id), &b)
    }

    /// Remove image `id`'s metadata.
    pub fn remove(&self, id: &Digest) -> Result<()> {
        let p = self.path(id);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", &p),
            _ => Ok(()),
        }
    }

    /// All image IDs (this store's and the read-only stores').
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for dir in std::iter::once(&self.dir).chain(&self.extra) {
            let rd = match fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).at("list images", dir),
            };
            for e in rd {
                let e = e.at("list images", dir)?;
                let name = e.file_name();
                if let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                    if let Ok(d) = Digest::from_hex(hex) {
                        out.push(d);
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
