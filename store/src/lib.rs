//! Content-addressed image store: blobs, layers, images, references,
//! archives (DESIGN.md "store").
//!
//! Layout under the root:
//! ```text
//! blobs/sha256/<hex>          configs and manifests, exactly the bytes received
//! layers/sha256/<chain-id>/   diff, parent, size, cache-id, tar-split
//! imagedb/<image-id>.json     images: added time, parent, repo digests
//! repositories.json           references → image ids
//! containers/<id>/            containers (see `containers`)
//! downloads/sha256/<hex>      verified blobs of a pull in progress (see `registry::pull`)
//! lock                        flock: exclusive for writers, shared for readers
//! tmp/                        scratch for loads (garbage after a crash)
//! ```
//!
//! Ordering makes every step crash-safe: layers, then config blob, then the
//! image's metadata file, then references; removal goes the other way.

pub mod archive;
pub mod build;
pub mod buildcache;
pub mod changes;
pub mod config;
pub mod containers;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod images;
pub mod layers;
pub mod load;
pub mod oci;
pub mod reference;
pub mod registry;
pub mod remove;
pub mod repositories;
pub mod save;

use std::path::{Path, PathBuf};

pub use config::{History, ImageConfig};
pub use digest::Digest;
pub use error::{Error, Result};
pub use images::{Image, ImageMeta};
pub use layers::Layer;
pub use reference::Reference;

use fsutil::StoreLock;
use images::{Blobs, ImageDb};
use layers::Layers;
use repositories::Repositories;

/// An opened store. Cheap to open; every method reads the disk afresh.
pub struct Store {
    root: PathBuf,
    driver: Box<dyn strata_driver::Driver>,
}

impl Store {
    /// Open (creating if needed) the store at `root` with storage driver `driver`.
    pub fn open(root: &Path, driver: &str) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|source| Error::Io {
            op: "create store root",
            path: root.into(),
            source,
        })?;
        // A store's layers belong to the driver that made them: record it
        // on first use, refuse another one later.
        let marker = root.join("driver");
        match std::fs::read_to_string(&marker) {
            Ok(recorded) if recorded.trim() != driver => {
                return Err(Error::Invalid(format!(
                    "the store at {} uses the {} storage driver, not {driver} (choose it with --storage-driver {})",
                    root.display(),
                    recorded.trim(),
                    recorded.trim()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                strata_driver::open(root, driver)?;
                fsutil::write_atomic(&marker, driver.as_bytes())?;
            }
            Err(source) => return Err(Error::Io { op: "read", path: marker, source }),
        }
        let driver = strata_driver::open(root, driver)?;
        Ok(Store { root: root.to_path_buf(), driver })
    }

    /// The driver a store at `root` was created with, if any.
    pub fn recorded_driver(root: &Path) -> Option<String> {
        std::fs::read_to_string(root.join("driver")).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The storage driver.
    pub fn driver(&self) -> &dyn strata_driver::Driver {
        self.driver.as_ref()
    }

    /// Take the store lock: `exclusive` for any change.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        let l = StoreLock::acquire(&self.root, exclusive)?;
        if exclusive {
            self.layers().collect_garbage()?;
            let _ = std::fs::remove_dir_all(self.root.join("tmp"));
        }
        Ok(l)
    }

    /// The layer store.
    pub fn layers(&self) -> Layers<'_> {
        Layers::new(&self.root, self.driver.as_ref())
    }

    /// Blobs.
    pub fn blobs(&self) -> Blobs {
        Blobs::new(&self.root)
    }

    /// Image metadata.
    pub fn imagedb(&self) -> ImageDb {
        ImageDb::new(&self.root)
    }

    /// The reference table.
    pub fn repositories(&self) -> Result<Repositories> {
        Repositories::load(&self.root)
    }

    /// A scratch directory inside the store (same filesystem), removed on drop.
    pub fn scratch(&self) -> Result<tempfile::TempDir> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io { op: "create", path: dir.clone(), source })?;
        tempfile::Builder::new().prefix("s-").tempdir_in(&dir).map_err(|source| Error::Io {
            op: "create scratch in",
            path: dir,
            source,
        })
    }

    /// Image `id`.
    pub fn image(&self, id: &Digest) -> Result<Image> {
        let meta = self.imagedb().get(id)?.ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
        let raw = self.blobs().get(id)?;
        let config = ImageConfig::parse(&raw, &format!("config of image {id}"))?;
        Ok(Image { id: id.clone(), config, raw, meta })
    }

    /// Every image.
    pub fn images(&self) -> Result<Vec<Image>> {
        self.imagedb().list()?.iter().map(|id| self.image(id)).collect()
    }

    /// Add an image whose layers are all stored: config blob, then metadata.
    /// Returns its ID. Adding an existing image keeps its metadata.
    pub fn add_image(&self, config: &[u8], meta: ImageMeta) -> Result<Digest> {
        let parsed = ImageConfig::parse(config, "image config")?;
        let layers = self.layers();
        let mut chain: Option<Digest> = None;
        for d in &parsed.rootfs.diff_ids {
            let c = Digest::chain(chain.as_ref(), d);
            layers.require(&c)?;
            chain = Some(c);
        }
        let id = self.blobs().put(config, None)?;
        if !self.imagedb().exists(&id) {
            self.imagedb().put(&id, &meta)?;
        }
        Ok(id)
    }

    /// Size of an image: its layers' content bytes.
    pub fn image_size(&self, image: &Image) -> Result<u64> {
        let layers = self.layers();
        let mut total = 0;
        for c in image.chain_ids() {
            total += layers.require(&c)?.size;
        }
        Ok(total)
    }

    /// Resolve what a user typed to an image ID, as Docker does: a
    /// reference (`repo[:tag]`, `repo@digest`), a full ID (with or without
    /// `sha256:`), or an unambiguous ID prefix.
    pub fn resolve(&self, name: &str) -> Result<Digest> {
        let repos = self.repositories()?;
        if let Ok(d) = Digest::parse(name) {
            if self.imagedb().exists(&d) {
                return Ok(d);
            }
            return Err(Error::NoSuchImage(name.to_string()));
        }
        // An ID prefix, bare or after `sha256:` (Docker's digest set).
        let prefix = name.strip_prefix("sha256:").unwrap_or(name);
        let is_hexish = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        let parsed = Reference::parse_tagged(name).ok();
        if let Some(id) = parsed.as_ref().and_then(|r| repos.get(r)) {
            return Ok(id.clone());
        }
        if is_hexish {
            let matches: Vec<Digest> =
                self.imagedb().list()?.into_iter().filter(|d| d.hex().starts_with(prefix)).collect();
            match matches.len() {
                1 => return Ok(matches[0].clone()),
                0 => {}
                _ => {
                    return Err(Error::Invalid(format!(
                        "Error response from daemon: multiple IDs found with provided prefix: {name}"
                    )))
                }
            }
        }
        // Docker names what it looked for: the reference with its default tag.
        Err(Error::NoSuchImage(parsed.map(|r| r.to_string()).unwrap_or_else(|| name.to_string())))
    }

    /// Chain IDs in use by any image or container (with all their parents).
    pub fn used_layers(&self) -> Result<std::collections::BTreeSet<Digest>> {
        let mut used = std::collections::BTreeSet::new();
        for img in self.images()? {
            used.extend(img.chain_ids());
        }
        Ok(used)
    }

    /// Remove every stored layer no image uses. Returns the removed chain IDs.
    pub fn prune_layers(&self) -> Result<Vec<Digest>> {
        let used = self.used_layers()?;
        let layers = self.layers();
        let mut removed = Vec::new();
        // Remove children before parents: repeat until nothing changes.
        loop {
            let all = layers.list()?;
            let parents: std::collections::BTreeSet<Digest> =
                all.iter().filter_map(|c| layers.get(c).ok().flatten().and_then(|l| l.parent)).collect();
            let mut changed = false;
            for c in all {
                if used.contains(&c) || parents.contains(&c) {
                    continue;
                }
                if let Some(l) = layers.get(&c)? {
                    if self.layer_in_use_by_container(&l)? {
                        continue;
                    }
                    layers.remove(&l)?;
                    removed.push(c);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(removed)
    }

    fn layer_in_use_by_container(&self, layer: &Layer) -> Result<bool> {
        for c in containers::Containers::new(&self.root).list()? {
            if c.image_top_layer.as_ref() == Some(&layer.chain_id) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
