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
//! lock                        the publish lock (see `locks`)
//! tmp/                        scratch for loads (garbage once its creator is gone)
//! ```
//!
//! Ordering makes every step crash-safe: layers, then config blob, then the
//! image's metadata file, then references; removal goes the other way.
//! Many processes share a store at once: readers take no lock, writers
//! take the publish lock only to publish (see [`locks`]).

pub mod archive;
pub mod build;
pub mod buildcache;
pub mod changes;
pub mod check;
pub mod cleanup;
pub mod config;
pub mod containers;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod images;
pub mod layers;
pub mod load;
pub mod locks;
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

use images::{Blobs, ImageDb};
use layers::Layers;
use locks::PublishLock;
use repositories::Repositories;

/// The environment variable naming read-only image stores (`:`-separated).
pub const STORE_RO_ENV: &str = "STRATA_STORE_RO";

/// An opened store. Cheap to open; every method reads the disk afresh.
///
/// A `Store` value owns the pins it takes ([`Store::pin_layer`]) and its
/// publish lock ([`Store::publish`]); both are released when it is dropped.
pub struct Store {
    root: PathBuf,
    /// Roots of read-only image stores: their images are listed, run and
    /// used as bases, never changed.
    additional: Vec<PathBuf>,
    driver: Box<dyn strata_driver::Driver>,
    pins: locks::Pins,
    publishing: std::sync::Mutex<(usize, Option<PublishLock>)>,
}

/// The publish lock as held through a [`Store`]; nested holds in one
/// process are counted, the lock is released when the outermost one drops.
pub struct Publishing<'a> {
    store: &'a Store,
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        let mut g = self.store.publishing.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            g.1 = None;
        }
    }
}

impl Store {
    /// Open (creating if needed) the store at `root` with storage driver
    /// `driver`, with the read-only image stores named by the environment
    /// variable `STRATA_STORE_RO` (paths separated by `:`).
    pub fn open(root: &Path, driver: &str) -> Result<Store> {
        let extra: Vec<PathBuf> = std::env::var_os(STORE_RO_ENV)
            .map(|v| std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()).collect())
            .unwrap_or_default();
        Self::open_with(root, driver, &extra)
    }

    /// Open the store at `root` with the read-only image stores at `extra`
    /// (podman's additional image stores): each must be a store made with
    /// the same driver.
    pub fn open_with(root: &Path, driver: &str, extra: &[PathBuf]) -> Result<Store> {
        for r in extra {
            match Self::recorded_driver(r) {
                Some(d) if d == driver => {}
                Some(d) => {
                    return Err(Error::Invalid(format!(
                        "the read-only image store at {} uses the {d} storage driver, not {driver}",
                        r.display()
                    )))
                }
                None => {
                    return Err(Error::Invalid(format!("{} is not a strata store (no driver recorded)", r.display())))
                }
            }
        }
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
        let driver = strata_driver::open_with(root, driver, extra)?;
        let store = Store {
            root: root.to_path_buf(),
            additional: extra.to_vec(),
            driver,
            pins: locks::Pins::default(),
            publishing: std::sync::Mutex::new((0, None)),
        };
        store.sweep();
        Ok(store)
    }

    /// Remove what dead processes left: staging layers, scratch
    /// directories, spooled input, layers GC renamed away but did not
    /// finish removing. Never touches anything a live process holds.
    fn sweep(&self) {
        let layers = self.root.join("layers");
        locks::sweep(&layers, &["tmp-", "gone-"], &mut |path, id| {
            let _ = self.driver.remove(id);
            let _ = std::fs::remove_dir_all(path);
        });
        locks::sweep(&self.root.join("tmp"), &["s-"], &mut |path, _| {
            let _ = std::fs::remove_dir_all(path);
        });
        locks::sweep(&self.root, &[".spool-"], &mut |path, _| {
            let _ = std::fs::remove_file(path);
        });
    }

    /// The driver a store at `root` was created with, if any.
    pub fn recorded_driver(root: &Path) -> Option<String> {
        std::fs::read_to_string(root.join("driver")).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The roots of the read-only image stores in use.
    pub fn additional(&self) -> &[PathBuf] {
        &self.additional
    }

    /// The storage driver.
    pub fn driver(&self) -> &dyn strata_driver::Driver {
        self.driver.as_ref()
    }

    /// Hold the publish lock (see [`locks`]) until the returned value is
    /// dropped: for read-modify-write steps only (references, adding an
    /// image, GC's decision), never around slow work. Re-entrant within
    /// one `Store`. [`Error::ReadOnly`] if the store cannot be written.
    pub fn publish(&self) -> Result<Publishing<'_>> {
        let mut g = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            g.1 = Some(PublishLock::acquire(&self.root)?);
        }
        g.0 += 1;
        Ok(Publishing { store: self })
    }

    /// Check that the store can be written, before starting work that
    /// would be wasted otherwise; [`Error::ReadOnly`] says why not.
    pub fn check_writable(&self) -> Result<()> {
        locks::open_lock_file(&self.root).map(drop)
    }

    /// Pin layer `chain` (see [`locks`]) until this `Store` is dropped, so
    /// that no GC removes it. False if the layer is not stored.
    pub fn pin_layer(&self, chain: &Digest) -> bool {
        self.layers().pin(chain)
    }

    /// Release every pin this store holds.
    pub fn unpin_all(&self) {
        self.pins.clear();
    }

    /// Pin every layer of `image`; an error names a layer that is gone
    /// (the image was removed meanwhile).
    pub fn pin_image(&self, image: &Image) -> Result<()> {
        for c in image.chain_ids() {
            if !self.pin_layer(&c) {
                return Err(Error::NoSuchImage(image.id.to_string()));
            }
        }
        Ok(())
    }

    /// The layer store.
    pub fn layers(&self) -> Layers<'_> {
        Layers::new(&self.root, &self.additional, self.driver.as_ref(), &self.pins)
    }

    /// Blobs.
    pub fn blobs(&self) -> Blobs {
        Blobs::new(&self.root, &self.additional)
    }

    /// Image metadata.
    pub fn imagedb(&self) -> ImageDb {
        ImageDb::new(&self.root, &self.additional)
    }

    /// The reference table, without references to images that are gone
    /// (an `rmi` removes the image before it rewrites the table, so that it
    /// can free space first on a full disk). Load it under the publish lock
    /// to change it.
    pub fn repositories(&self) -> Result<Repositories> {
        let mut repos = Repositories::load(&self.root)?;
        for r in &self.additional {
            repos.add_read_only(&Repositories::load(r)?);
        }
        let db = self.imagedb();
        repos.retain(|id| db.exists(id));
        Ok(repos)
    }

    /// A scratch directory inside the store (same filesystem), removed on drop.
    pub fn scratch(&self) -> Result<locks::Scratch> {
        locks::Scratch::new(&self.root.join("tmp"))
    }

    /// Image `id`.
    pub fn image(&self, id: &Digest) -> Result<Image> {
        let meta = self.imagedb().get(id)?.ok_or_else(|| Error::NoSuchImage(id.to_string()))?;
        let raw = self.blobs().get(id)?;
        let config = ImageConfig::parse(&raw, &format!("config of image {id}"))?;
        Ok(Image { id: id.clone(), config, raw, meta })
    }

    /// Every image.
    /// An image removed while this listing runs is left out.
    pub fn images(&self) -> Result<Vec<Image>> {
        let mut out = Vec::new();
        for id in self.imagedb().list()? {
            match self.image(&id) {
                Ok(i) => out.push(i),
                Err(_) if !self.imagedb().exists(&id) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Add an image whose layers are all stored: config blob, then metadata.
    /// Returns its ID. Adding an existing image keeps its metadata.
    /// Takes the publish lock (re-entrant), so the caller may hold it
    /// around this and the references it then sets.
    pub fn add_image(&self, config: &[u8], meta: ImageMeta) -> Result<Digest> {
        let parsed = ImageConfig::parse(config, "image config")?;
        let _p = self.publish()?;
        let layers = self.layers();
        let mut chain: Option<Digest> = None;
        for d in &parsed.rootfs.diff_ids {
            let c = Digest::chain(chain.as_ref(), d);
            layers.require(&c)?;
            chain = Some(c);
        }
        let id = Digest::of(config);
        // An image a read-only store has is used from there.
        if !self.imagedb().exists(&id) {
            self.blobs().put(config, Some(&id))?;
            self.imagedb().put(&id, &meta)?;
        }
        Ok(id)
    }

    /// Point `r` at image `id` (under the publish lock, re-entrant).
    /// Returns the image it pointed to before, if another.
    pub fn tag(&self, r: &Reference, id: &Digest) -> Result<Option<Digest>> {
        let _p = self.publish()?;
        let mut repos = self.repositories()?;
        let old = repos.set(r, id);
        repos.save()?;
        Ok(old)
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

    /// Remove every stored layer no image or container uses and nobody
    /// has pinned. Returns the removed chain IDs.
    ///
    /// The decision is taken under the publish lock, where each doomed
    /// layer is renamed away (`layers/gone-*`) while GC holds its
    /// exclusive lock; the slow part, freeing the content, happens after
    /// the publish lock is released. A pinned layer is left for a later
    /// collection. Nothing here writes a new file: it works on a full disk.
    pub fn prune_layers(&self) -> Result<Vec<Digest>> {
        let doomed = {
            let _p = self.publish()?;
            self.unlist_unused_layers()?
        };
        self.free_layers(doomed)
    }

    /// GC's decision (the caller holds the publish lock): every layer no
    /// image or container uses, no other layer builds on and nobody has
    /// pinned is renamed away; [`Store::free_layers`] frees them.
    pub fn unlist_unused_layers(&self) -> Result<Vec<(Layer, layers::Gone)>> {
        let layers = self.layers();
        let used = self.used_layers()?;
        let mut doomed = Vec::new();
        // Children before parents: repeat until nothing changes.
        loop {
            let all = layers.list()?;
            let parents: std::collections::BTreeSet<Digest> =
                all.iter().filter_map(|c| layers.get(c).ok().flatten().and_then(|l| l.parent)).collect();
            let mut changed = false;
            for c in all {
                if used.contains(&c) || parents.contains(&c) {
                    continue;
                }
                let Some(l) = layers.get(&c)? else { continue };
                if self.layer_in_use_by_container(&l)? {
                    continue;
                }
                if let Some(gone) = layers.unlist(&l)? {
                    doomed.push((l, gone));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Ok(doomed)
    }

    /// Free the content of layers [`Store::unlist_unused_layers`] took
    /// away (slow; call without the publish lock). Returns their chain IDs.
    pub fn free_layers(&self, doomed: Vec<(Layer, layers::Gone)>) -> Result<Vec<Digest>> {
        let mut removed = Vec::new();
        let mut first_err = None;
        for (l, gone) in doomed {
            if let Err(e) = gone.free(self.driver.as_ref()) {
                first_err.get_or_insert(e);
            }
            removed.push(l.chain_id);
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(removed),
        }
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
