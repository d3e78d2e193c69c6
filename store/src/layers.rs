//! The layer store: `layers/sha256/<chain-id>/` holding what is known about
//! each layer (diff-id, parent chain-id, size, the driver's cache id, the
//! tar-split that reproduces its exact tar). Content lives in the driver.
//!
//! A layer is staged in `layers/tmp-<cache-id>/` (held by its creator's
//! lock, see [`crate::locks`]) and appears by one rename once the driver
//! layer is complete, so a listed layer is always whole. It disappears by
//! one rename too (`layers/gone-<cache-id>/`) before its content is freed.
//! Staging and removal left by a dead process are swept by the next
//! command. Two processes that need the same layer (same chain ID) unpack
//! it once: the second waits on `layers/creating-<chain-id>`, not on the
//! store.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use strata_driver::Driver;

use crate::digest::{Digest, DigestReader};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::sync_dir;
use crate::locks::{ObjectLock, Pins};

/// What the store knows about a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Chain ID (identity of the layer with everything below it).
    pub chain_id: Digest,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Chain ID of the layer below.
    pub parent: Option<Digest>,
    /// Bytes of file content (Docker's layer size).
    pub size: u64,
    /// The driver's name for the layer's directory.
    pub cache_id: String,
    /// Length of the layer's uncompressed tar.
    pub tar_size: u64,
}

/// The layer store (see module doc). Layers it creates or finds for a
/// writer are pinned in `pins` until the owning store is dropped.
pub struct Layers<'a> {
    dir: PathBuf,
    /// `layers/` of read-only image stores: searched when reading.
    extra: Vec<PathBuf>,
    driver: &'a dyn Driver,
    pins: &'a Pins,
}

/// A layer GC has taken out of the listing (renamed to `gone-*`, still held
/// exclusively) whose content is yet to be freed.
pub struct Gone {
    path: PathBuf,
    cache_id: String,
    _held: ObjectLock,
}

impl Gone {
    /// Free the driver content, then the metadata. Needs no free space.
    pub fn free(self, driver: &dyn Driver) -> Result<()> {
        driver.remove(&self.cache_id)?;
        fs::remove_dir_all(&self.path).at("remove layer", &self.path)
    }
}

impl<'a> Layers<'a> {
    /// The layer store under `root`.
    pub fn new(root: &Path, extra: &[PathBuf], driver: &'a dyn Driver, pins: &'a Pins) -> Layers<'a> {
        Layers { dir: root.join("layers"), extra: extra.iter().map(|r| r.join("layers")).collect(), driver, pins }
    }

    /// Where layer `chain` is to be read: this store's directory, else the
    /// first read-only store's that has it (else this store's path).
    fn found(&self, chain: &Digest) -> PathBuf {
        crate::fsutil::first_found(&self.dir, &self.extra, &format!("sha256/{}", chain.hex()), Path::is_dir)
    }

    /// Pin layer `chain` (see [`crate::locks`]); false if it is not stored.
    pub fn pin(&self, chain: &Digest) -> bool {
        match ObjectLock::pin(&self.found(chain)) {
            Some(l) => {
                self.pins.hold(l);
                true
            }
            None => false,
        }
    }

    /// Take `layer` out of the listing if nobody pins it (GC; the caller
    /// holds the publish lock). `None` if it is pinned or already gone.
    pub fn unlist(&self, layer: &Layer) -> Result<Option<Gone>> {
        let dir = self.path(&layer.chain_id);
        let Some(held) = ObjectLock::try_exclusive(&dir) else { return Ok(None) };
        let gone = self.dir.join(format!("gone-{}", layer.cache_id));
        match fs::rename(&dir, &gone) {
            Ok(()) => Ok(Some(Gone { path: gone, cache_id: layer.cache_id.clone(), _held: held })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at("remove layer", &dir),
        }
    }

    /// The directory of layer `chain` (which may not exist; in a read-only
    /// store if only that one has it).
    pub fn dir_of(&self, chain: &Digest) -> PathBuf {
        self.found(chain)
    }

    fn path(&self, chain: &Digest) -> PathBuf {
        self.dir.join("sha256").join(chain.hex())
    }

    /// The layer with this chain ID, if stored.
    /// A layer GC takes away while this reads it is `None`, not an error.
    pub fn get(&self, chain: &Digest) -> Result<Option<Layer>> {
        let dir = self.found(chain);
        if !dir.is_dir() {
            return Ok(None);
        }
        match self.read_layer(chain, &dir) {
            Err(_) if !dir.is_dir() => Ok(None),
            r => r.map(Some),
        }
    }

    fn read_layer(&self, chain: &Digest, dir: &Path) -> Result<Layer> {
        let read = |name: &str| -> Result<String> {
            let p = dir.join(name);
            Ok(fs::read_to_string(&p).at("read layer metadata", &p)?.trim().to_string())
        };
        let parent = read("parent").ok().filter(|s| !s.is_empty()).map(|s| Digest::parse(&s)).transpose()?;
        let size = read("size")?.parse().map_err(|_| Error::Corrupt(format!("bad size of layer {chain}")))?;
        let tar_size =
            read("tar-size")?.parse().map_err(|_| Error::Corrupt(format!("bad tar size of layer {chain}")))?;
        Ok(Layer {
            chain_id: chain.clone(),
            diff_id: Digest::parse(&read("diff")?)?,
            parent,
            size,
            cache_id: read("cache-id")?,
            tar_size,
        })
    }

    /// The layer or an error saying the store lacks it.
    pub fn require(&self, chain: &Digest) -> Result<Layer> {
        self.get(chain)?.ok_or_else(|| Error::Corrupt(format!("layer {chain} is missing")))
    }

    /// Every stored chain ID.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.dir.join("sha256");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at("list layers", &dir),
        };
        for e in rd {
            let e = e.at("list layers", &dir)?;
            if let Some(d) = e.file_name().to_str().and_then(|n| Digest::from_hex(n).ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Apply the uncompressed layer tar `tar` on top of `parent` and record
    /// it; the layer returned is pinned. The whole stream is read and
    /// digested; if `expected` is given and differs, nothing is stored and
    /// [`Error::DigestMismatch`] is returned. If the resulting chain ID is
    /// already stored, the new copy is dropped and the stored one returned.
    ///
    /// With `expected` known, a layer another process is creating right
    /// now is waited for and reused, and `tar` is not read at all.
    pub fn register(&self, parent: Option<&Digest>, tar: &mut dyn Read, expected: Option<&Digest>) -> Result<Layer> {
        let parent_layer = parent.map(|p| self.require(p)).transpose()?;
        if let Some(p) = parent {
            if !self.pin(p) {
                return Err(Error::Corrupt(format!("layer {p} is missing")));
            }
        }
        let _creating = match expected {
            Some(diff) => {
                let chain = Digest::chain(parent, diff);
                let guard = self.creating(&chain)?;
                if self.pin(&chain) {
                    return self.require(&chain);
                }
                Some(guard)
            }
            None => None,
        };
        let cache_id = new_cache_id();
        let tmp = self.dir.join(format!("tmp-{cache_id}"));
        // The staging directory and the driver layer are made under the
        // interrupt registry's lock: after an interrupt began, nothing new
        // is created that its undo would miss.
        let (held, undo) = crate::cleanup::create_armed(|| {
            fs::create_dir_all(&tmp).at("create", &tmp)?;
            let held = ObjectLock::exclusive(&tmp)?;
            if let Err(e) = self.driver.create(&cache_id, parent_layer.as_ref().map(|p| p.cache_id.as_str())) {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
            let (tmp, cache_id) = (tmp.clone(), cache_id.clone());
            let root = self.dir.parent().map(Path::to_path_buf);
            let driver_name = self.driver.name();
            let undo: crate::cleanup::Undo = Box::new(move || {
                if let Some(d) = root.and_then(|r| strata_driver::open(&r, driver_name).ok()) {
                    let _ = d.abandon(&cache_id);
                }
                let _ = fs::remove_dir_all(&tmp);
            });
            Ok::<_, Error>((held, undo))
        })?;
        let result = self.register_in(&tmp, &cache_id, parent_layer.as_ref(), tar, expected, undo);
        match &result {
            Ok(l) if l.cache_id == cache_id => {
                // Published: our exclusive hold becomes a pin.
                held.downgrade();
                self.pins.hold(held);
            }
            _ => {
                let _ = self.driver.remove(&cache_id);
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        result
    }

    /// Wait until no other process is creating layer `chain`, and hold that
    /// right until the returned lock is dropped.
    fn creating(&self, chain: &Digest) -> Result<CreatingLock> {
        fs::create_dir_all(&self.dir).at("create", &self.dir)?;
        let path = self.dir.join(format!("creating-{}", chain.hex()));
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).at("create", &path)?;
        crate::locks::lock_file(&file);
        Ok(CreatingLock { path, _file: file })
    }

    fn register_in(
        &self,
        tmp: &Path,
        cache_id: &str,
        parent: Option<&Layer>,
        tar: &mut dyn Read,
        expected: Option<&Digest>,
        undo: crate::cleanup::Armed,
    ) -> Result<Layer> {
        // The tar-split is mostly tar headers: gzip makes it ~10x smaller.
        let split_path = tmp.join("tar-split.gz");
        let split_file = fs::File::create(&split_path).at("create", &split_path)?;
        let mut split =
            flate2::write::GzEncoder::new(std::io::BufWriter::new(split_file), flate2::Compression::default());
        let mut reader = DigestReader::new(tar);
        let applied = self.driver.apply_diff(cache_id, &mut reader, &mut split)?;
        let (diff_id, tar_size) = reader.finish().during("read layer")?;
        if let Some(want) = expected {
            if *want != diff_id {
                return Err(Error::DigestMismatch {
                    what: "layer".into(),
                    expected: want.to_string(),
                    actual: diff_id.to_string(),
                });
            }
        }
        let split_file = split
            .finish()
            .at("write", &split_path)?
            .into_inner()
            .map_err(|e| e.into_error())
            .at("write", &split_path)?;
        split_file.sync_all().at("fsync", &split_path)?;
        let chain = Digest::chain(parent.map(|p| &p.chain_id), &diff_id);
        if self.pin(&chain) {
            return self.require(&chain);
        }
        let files = [
            ("diff", diff_id.to_string()),
            ("parent", parent.map(|p| p.chain_id.to_string()).unwrap_or_default()),
            ("size", applied.size.to_string()),
            ("cache-id", cache_id.to_string()),
            ("tar-size", tar_size.to_string()),
        ];
        for (name, value) in files {
            let p = tmp.join(name);
            let mut f = fs::File::create(&p).at("create", &p)?;
            f.write_all(value.as_bytes()).at("write", &p)?;
            f.sync_all().at("fsync", &p)?;
        }
        sync_dir(tmp)?;
        let dest = self.path(&chain);
        fs::create_dir_all(dest.parent().unwrap()).at("create", &self.dir)?;
        match undo.disarm_after(|| fs::rename(tmp, &dest)) {
            Ok(()) => sync_dir(dest.parent().unwrap())?,
            // Another process published the same layer meanwhile.
            Err(e) if matches!(e.raw_os_error(), Some(c) if c == ENOTEMPTY || c == EEXIST) => {
                if self.pin(&chain) {
                    return self.require(&chain);
                }
                return Err(e).at("rename into place", &dest);
            }
            Err(e) => return Err(e).at("rename into place", &dest),
        }
        Ok(Layer {
            chain_id: chain,
            diff_id,
            parent: parent.map(|p| p.chain_id.clone()),
            size: applied.size,
            cache_id: cache_id.to_string(),
            tar_size,
        })
    }

    /// Write the layer's exact tar (same bytes as applied, same diff-id) to `out`.
    /// The bytes are verified against the diff-id as they go; a mismatch
    /// is an error (the caller must discard what was written).
    pub fn tar(&self, layer: &Layer, out: &mut dyn Write) -> Result<u64> {
        let p = self.found(&layer.chain_id).join("tar-split.gz");
        let mut split = flate2::read::GzDecoder::new(std::io::BufReader::new(fs::File::open(&p).at("open", &p)?));
        let mut w = crate::digest::DigestWriter::new(out);
        self.driver.assemble(&layer.cache_id, &mut split, &mut w)?;
        let (d, n, _) = w.finish();
        if d != layer.diff_id {
            return Err(Error::DigestMismatch {
                what: format!("layer {}", layer.chain_id),
                expected: layer.diff_id.to_string(),
                actual: d.to_string(),
            });
        }
        Ok(n)
    }

    /// The chain (bottom first) ending at `top`.
    pub fn chain(&self, top: &Digest) -> Result<Vec<Layer>> {
        let mut out = Vec::new();
        let mut cur = Some(top.clone());
        while let Some(c) = cur {
            let l = self.require(&c)?;
            cur = l.parent.clone();
            out.push(l);
            if out.len() > 10_000 {
                return Err(Error::Corrupt("layer chain loops".into()));
            }
        }
        out.reverse();
        Ok(out)
    }
}

const ENOTEMPTY: i32 = rustix::io::Errno::NOTEMPTY.raw_os_error();
const EEXIST: i32 = rustix::io::Errno::EXIST.raw_os_error();

/// The right to create one layer; the lock file goes when it is dropped.
struct CreatingLock {
    path: PathBuf,
    _file: fs::File,
}

impl Drop for CreatingLock {
    fn drop(&mut self) {
        // Whoever waits on this file finds the layer stored (or creates it).
        let _ = fs::remove_file(&self.path);
    }
}

/// A fresh random layer cache id (32 hex digits).
pub fn new_cache_id() -> String {
    let mut buf = [0u8; 16];
    if rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let d = Digest::of(format!("{}-{}", t.as_nanos(), std::process::id()).as_bytes());
        return d.hex()[..32].to_string();
    }
    crate::digest::hex(&buf)
}

/// A compressed form of a layer known to exist on a registry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobSource {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Registry host it is on.
    pub registry: String,
    /// Repository it is in.
    pub repo: String,
}

impl Layers<'_> {
    /// Compressed blobs this layer is known by (from pulls and pushes).
    pub fn sources(&self, chain: &Digest) -> Vec<BlobSource> {
        std::fs::read(self.found(chain).join("blobs.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Remember that the layer exists as `src` (atomic rewrite of the list).
    /// A layer of a read-only store is left as it is.
    pub fn add_source(&self, chain: &Digest, src: BlobSource) -> Result<()> {
        if !self.path(chain).is_dir() {
            return Ok(());
        }
        let mut all = self.sources(chain);
        if all.contains(&src) {
            return Ok(());
        }
        all.push(src);
        let bytes = serde_json::to_vec(&all).map_err(|source| Error::Json { what: "blob sources".into(), source })?;
        crate::fsutil::write_atomic(&self.path(chain).join("blobs.json"), &bytes)
    }
}
