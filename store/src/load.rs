//! `load`: docker-archive (Docker ≤ 24 `<id>/layer.tar`, podman's
//! `<diffid>.tar` + symlinks, Docker 25+ OCI-inside), oci-archive and OCI
//! layout directories, compressed or not.
//!
//! Every byte is verified: configs against their names/descriptors and the
//! image ID, layers against the config's diff-ids (and, for OCI, the
//! compressed blob against its descriptor). An image is added only when all
//! its layers are stored; references move last.

use std::io::Read;

use serde::Deserialize;

use crate::archive::{decompress, Archive};
use crate::config::ImageConfig;
use crate::digest::{Digest, DigestReader};
use crate::error::{Error, Result};
use crate::images::ImageMeta;
use crate::oci::{host_arch, Descriptor, Index, Manifest};
use crate::reference::Reference;
use crate::Store;

/// What `load` reports, in order (Docker's lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadEvent {
    /// `The image REF already exists, renaming the old one with ID ID to empty string`
    Renamed {
        /// The moved reference.
        reference: Reference,
        /// The image it used to name.
        old: Digest,
    },
    /// `Loaded image: REF`
    Loaded(Reference),
    /// `Loaded image ID: ID` (an image without names)
    LoadedId(Digest),
}

/// Bytes of one layer read so far (for a progress bar).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerProgress {
    /// Short diff-id.
    pub id: String,
    /// Bytes of the layer blob read.
    pub done: u64,
    /// Its size.
    pub total: u64,
}

/// A reader reporting its progress every MiB and at the end.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    reported: u64,
    total: u64,
    id: String,
    progress: &'a mut dyn FnMut(LayerProgress),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        let finished = n == 0 || self.done == self.total;
        if self.done - self.reported >= 1 << 20 || (finished && self.done != self.reported) {
            self.reported = self.done;
            (self.progress)(LayerProgress { id: self.id.clone(), done: self.done, total: self.total });
        }
        Ok(n)
    }
}

/// One image found in an archive, before it is stored.
struct Found {
    config: Vec<u8>,
    layers: Vec<LayerSource>,
    tags: Vec<Reference>,
}

/// Where a layer's bytes are and what digest the (possibly compressed) blob must have.
struct LayerSource {
    member: String,
    blob_digest: Option<Digest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Load every image of a tar stream (any supported format, compressed or not).
pub fn load_stream(store: &Store, input: impl Read, progress: &mut dyn FnMut(LayerProgress)) -> Result<Vec<LoadEvent>> {
    let scratch = store.scratch()?;
    let archive = Archive::unpack(input, scratch)?;
    load_archive(store, &archive, progress)
}

/// Load every image of an OCI layout directory.
pub fn load_dir(
    store: &Store,
    dir: &std::path::Path,
    progress: &mut dyn FnMut(LayerProgress),
) -> Result<Vec<LoadEvent>> {
    load_archive(store, &Archive::directory(dir), progress)
}

fn load_archive(store: &Store, ar: &Archive, progress: &mut dyn FnMut(LayerProgress)) -> Result<Vec<LoadEvent>> {
    let result = load_found(store, ar, progress);
    if result.is_err() {
        // Layers verified before the failure belong to no image: drop them,
        // so a failed load leaves the store as it was (and gives back the
        // space at once on a full disk).
        store.unpin_all();
        let _ = store.prune_layers();
    }
    result
}

fn load_found(store: &Store, ar: &Archive, progress: &mut dyn FnMut(LayerProgress)) -> Result<Vec<LoadEvent>> {
    let found = if ar.has("manifest.json") {
        docker_archive(ar)?
    } else if ar.has("index.json") {
        oci_layout(ar)?
    } else {
        return Err(Error::BadArchive("no manifest.json or index.json: not an image archive".into()));
    };
    if found.is_empty() {
        return Err(Error::BadArchive("the archive holds no image".into()));
    }
    let mut events = Vec::new();
    for f in found {
        store_layers(store, ar, &f, progress)?;
        // The image and its references appear together, under the publish lock.
        let _published = store.publish()?;
        let meta = ImageMeta { added: crate::config::format_time(chrono::Utc::now()), ..Default::default() };
        let id = store.add_image(&f.config, meta)?;
        let mut repos = store.repositories()?;
        if f.tags.is_empty() {
            events.push(LoadEvent::LoadedId(id));
            continue;
        }
        let mut changed = false;
        for t in &f.tags {
            if let Some(old) = repos.set(t, &id) {
                events.push(LoadEvent::Renamed { reference: t.clone(), old });
            }
            changed = true;
            events.push(LoadEvent::Loaded(t.clone()));
        }
        if changed {
            repos.save()?;
        }
    }
    Ok(events)
}

/// Store (and pin) one image's layers.
fn store_layers(store: &Store, ar: &Archive, f: &Found, progress: &mut dyn FnMut(LayerProgress)) -> Result<()> {
    let config = ImageConfig::parse(&f.config, "image config")?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != f.layers.len() {
        return Err(Error::BadArchive(format!("config lists {} layers, manifest {}", diff_ids.len(), f.layers.len())));
    }
    let layers = store.layers();
    let mut parent: Option<Digest> = None;
    for (src, diff_id) in f.layers.iter().zip(diff_ids) {
        let chain = Digest::chain(parent.as_ref(), diff_id);
        if !layers.pin(&chain) {
            let file = ar.open(&src.member)?;
            let total = file.metadata().map(|m| m.len()).unwrap_or(0);
            let id = diff_id.hex()[..12].to_string();
            progress(LayerProgress { id: id.clone(), done: 0, total });
            let counted = Counting { inner: file, done: 0, reported: 0, total, id, progress: &mut *progress };
            let mut blob = DigestReader::new(counted);
            let mut tar = decompress(&mut blob).map_err(|e| Error::BadArchive(format!("layer {}: {e}", src.member)))?;
            let layer = layers.register(parent.as_ref(), &mut tar, Some(diff_id))?;
            drop(tar);
            if let Some(want) = &src.blob_digest {
                let (got, _) = blob.finish().map_err(|e| Error::BadArchive(format!("layer {}: {e}", src.member)))?;
                if got != *want {
                    // The content matched its diff-id, yet the blob is not the
                    // one described: refuse the archive, keep nothing new
                    // (the caller collects the layer).
                    let _ = layer;
                    return Err(Error::DigestMismatch {
                        what: format!("blob {}", src.member),
                        expected: want.to_string(),
                        actual: got.to_string(),
                    });
                }
            }
        }
        parent = Some(chain);
    }
    Ok(())
}

fn hex_in_name(name: &str) -> Option<Digest> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.strip_suffix(".json").unwrap_or(base);
    Digest::from_hex(base).ok()
}

fn docker_archive(ar: &Archive) -> Result<Vec<Found>> {
    let bytes = ar.read("manifest.json")?;
    let entries: Vec<ManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { what: "manifest.json".into(), source })?;
    let mut out = Vec::new();
    for e in entries {
        let config = ar.read(&e.config)?;
        if let Some(want) = hex_in_name(&e.config) {
            let got = Digest::of(&config);
            if got != want {
                return Err(Error::DigestMismatch {
                    what: format!("config {}", e.config),
                    expected: want.to_string(),
                    actual: got.to_string(),
                });
            }
        }
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            // Docker takes only name:tag here (a digest is not a tag).
            match Reference::parse_tagged(&t)? {
                r if r.digest.is_some() => return Err(Error::BadArchive(format!("invalid tag {t:?}"))),
                r => tags.push(r),
            }
        }
        // Docker 25+ names layers `blobs/sha256/<digest>`: the blob digest is the name.
        let layers = e
            .layers
            .into_iter()
            .map(|m| {
                let blob_digest = m.starts_with("blobs/sha256/").then(|| hex_in_name(&m)).flatten();
                LayerSource { member: m, blob_digest }
            })
            .collect();
        out.push(Found { config, layers, tags });
    }
    Ok(out)
}

fn read_blob(ar: &Archive, d: &Descriptor) -> Result<Vec<u8>> {
    let b = ar.read(&format!("blobs/sha256/{}", d.digest.hex()))?;
    let got = Digest::of(&b);
    if got != d.digest {
        return Err(Error::DigestMismatch {
            what: format!("blob {}", d.digest),
            expected: d.digest.to_string(),
            actual: got.to_string(),
        });
    }
    if d.size != 0 && d.size != b.len() as u64 {
        return Err(Error::BadArchive(format!("blob {} has size {}, descriptor says {}", d.digest, b.len(), d.size)));
    }
    Ok(b)
}

fn oci_layout(ar: &Archive) -> Result<Vec<Found>> {
    let idx: Index = serde_json::from_slice(&ar.read("index.json")?)
        .map_err(|source| Error::Json { what: "index.json".into(), source })?;
    let mut out = Vec::new();
    for d in &idx.manifests {
        let name = d
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| d.annotations.get("org.opencontainers.image.ref.name"));
        let tags = match name {
            // A bare ref name ("ia-layered-1") is a layout-local label, not an image name.
            Some(n) if n.contains(':') || n.contains('/') => {
                Reference::parse_tagged(n).map(|r| vec![r]).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let manifest_desc = pick_manifest(ar, d, 0)?;
        let m: Manifest = serde_json::from_slice(&read_blob(ar, &manifest_desc)?)
            .map_err(|source| Error::Json { what: format!("manifest {}", manifest_desc.digest), source })?;
        let config = read_blob(ar, &m.config)?;
        let layers = m
            .layers
            .iter()
            .map(|l| LayerSource {
                member: format!("blobs/sha256/{}", l.digest.hex()),
                blob_digest: Some(l.digest.clone()),
            })
            .collect();
        out.push(Found { config, layers, tags });
    }
    Ok(out)
}

/// Follow nested indexes to one image manifest (linux/amd64 preferred).
fn pick_manifest(ar: &Archive, d: &Descriptor, depth: usize) -> Result<Descriptor> {
    if !d.is_index() {
        return Ok(d.clone());
    }
    if depth > 4 {
        return Err(Error::BadArchive("indexes nested too deep".into()));
    }
    let idx: Index = serde_json::from_slice(&read_blob(ar, d)?)
        .map_err(|source| Error::Json { what: format!("index {}", d.digest), source })?;
    let arch = host_arch();
    let chosen = idx
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch))
        .or_else(|| idx.manifests.first())
        .ok_or_else(|| Error::BadArchive(format!("index {} is empty", d.digest)))?;
    pick_manifest(ar, chosen, depth + 1)
}
