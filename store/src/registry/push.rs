//! `push`: upload the layers a registry lacks (gzip-compressed, monolithic
//! or chunked; cross-repository mount when the same registry has the blob
//! in another repository), the config, then a Docker schema 2 manifest.
//! The image ID does not change: the config is pushed as stored.

use std::fs;
use std::io::{Seek, SeekFrom};

use serde_json::json;

use crate::digest::{Digest, DigestWriter};
use crate::error::{Error, Result};
use crate::layers::BlobSource;
use crate::reference::Reference;
use crate::registry::client::Client;
use crate::registry::config::RegistryConfig;
use crate::registry::media;
use crate::Store;

/// Blobs above this size are uploaded in chunks of this size.
pub const CHUNK: u64 = 16 << 20;

/// Progress of a push, in Docker's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushEvent {
    /// `The push refers to repository [REPO]`
    Refers(String),
    /// `ID: STATUS` for a layer (12-hex short diff-id).
    Layer {
        /// Short ID.
        id: String,
        /// `Preparing`, `Waiting`, `Pushing`, `Pushed`, `Layer already exists`, `Mounted from REPO`.
        status: String,
        /// (done, total) bytes.
        progress: Option<(u64, u64)>,
    },
    /// `TAG: digest: DIGEST size: N`
    Digest {
        /// The tag.
        tag: String,
        /// Manifest digest.
        digest: Digest,
        /// Manifest size.
        size: usize,
    },
}

/// Push image `id` as `r` (which must have a tag). Returns the manifest digest.
pub fn push(
    store: &Store,
    id: &Digest,
    r: &Reference,
    cfg: &RegistryConfig,
    events: &mut dyn FnMut(PushEvent),
) -> Result<Digest> {
    let tag = r.tag.clone().ok_or_else(|| Error::Invalid("push needs a tag".into()))?;
    let c = Client::new(r, cfg, true);
    events(PushEvent::Refers(r.repo.clone()));
    let image = store.image(id)?;
    store.pin_image(&image)?;
    let layers = store.layers();
    let chain = image.chain_ids();
    for l in chain.iter().rev() {
        let layer = layers.require(l)?;
        events(PushEvent::Layer {
            id: layer.diff_id.hex()[..12].to_string(),
            status: "Preparing".into(),
            progress: None,
        });
    }
    let mut descriptors = Vec::new();
    for ch in &chain {
        let layer = layers.require(ch)?;
        let short = layer.diff_id.hex()[..12].to_string();
        // Compressed forms this registry may already have, usable in a
        // schema 2 manifest.
        let known: Vec<BlobSource> = layers
            .sources(ch)
            .into_iter()
            .filter(|s| s.registry == c.registry)
            .filter_map(|s| docker_layer_type(&s.media_type).map(|mt| BlobSource { media_type: mt.into(), ..s }))
            .collect();
        // Already in this repository?
        let mut done = None;
        for s in &known {
            if c.has_blob(&s.digest)? {
                events(PushEvent::Layer { id: short.clone(), status: "Layer already exists".into(), progress: None });
                done = Some(s.clone());
                break;
            }
        }
        if done.is_none() {
            for s in known.iter().filter(|s| s.repo != c.repo) {
                if c.mount_blob(&s.digest, &s.repo)? {
                    events(PushEvent::Layer {
                        id: short.clone(),
                        status: format!("Mounted from {}", s.repo),
                        progress: None,
                    });
                    done = Some(s.clone());
                    break;
                }
            }
        }
        let src = match done {
            Some(s) => s,
            None => {
                // Compress the exact layer tar (deterministic gzip) to a scratch file.
                let scratch = store.scratch()?;
                let path = scratch.path().join("layer.tar.gz");
                let mut f = fs::OpenOptions::new()
                    .create_new(true)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|source| Error::Io { op: "create", path: path.clone(), source })?;
                let (digest, size) = {
                    let w = DigestWriter::new(&mut f);
                    // Docker compresses with Go's compress/gzip at DefaultCompression (6).
                    let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::new(6));
                    layers.tar(&layer, &mut gz)?;
                    let w = gz.finish().map_err(|e| Error::Registry(format!("compressing layer: {e}")))?;
                    let (d, n, _) = w.finish();
                    (d, n)
                };
                if c.has_blob(&digest)? {
                    events(PushEvent::Layer {
                        id: short.clone(),
                        status: "Layer already exists".into(),
                        progress: None,
                    });
                } else {
                    f.seek(SeekFrom::Start(0)).map_err(|source| Error::Io {
                        op: "seek",
                        path: path.clone(),
                        source,
                    })?;
                    let mut reader = std::io::BufReader::new(&mut f);
                    let chunk = if size > CHUNK { Some(CHUNK) } else { None };
                    let sid = short.clone();
                    c.upload_blob(&digest, &mut reader, size, chunk, &mut |n| {
                        events(PushEvent::Layer {
                            id: sid.clone(),
                            status: "Pushing".into(),
                            progress: Some((n, size)),
                        })
                    })?;
                    events(PushEvent::Layer { id: short.clone(), status: "Pushed".into(), progress: None });
                }
                BlobSource {
                    digest,
                    size,
                    media_type: media::DOCKER_LAYER_GZIP.into(),
                    registry: c.registry.clone(),
                    repo: c.repo.clone(),
                }
            }
        };
        let mine = BlobSource { registry: c.registry.clone(), repo: c.repo.clone(), ..src.clone() };
        layers.add_source(ch, mine)?;
        descriptors.push(json!({"mediaType": src.media_type, "size": src.size, "digest": src.digest.to_string()}));
    }
    if !c.has_blob(id)? {
        let mut r = std::io::Cursor::new(image.raw.clone());
        c.upload_blob(id, &mut r, image.raw.len() as u64, None, &mut |_| {})?;
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "size": image.raw.len(), "digest": id.to_string()},
        "layers": descriptors,
    });
    let bytes = docker_json(&manifest)?;
    let digest = c.put_manifest(&tag, &bytes, media::DOCKER_MANIFEST)?;
    let _p = store.publish()?;
    store.tag(&Reference { repo: r.repo.clone(), tag: None, digest: Some(digest.clone()) }, id)?;
    let mut meta = store.imagedb().get(id)?.unwrap_or_default();
    let rd = format!("{}@{}", r.repo, digest);
    if !meta.repo_digests.contains(&rd) {
        meta.repo_digests.push(rd);
        store.imagedb().put(id, &meta)?;
    }
    events(PushEvent::Digest { tag, digest: digest.clone(), size: bytes.len() });
    Ok(digest)
}

/// The schema 2 media type for a blob of media type `mt`, if a schema 2
/// manifest can name it (gzip or uncompressed tar, Docker or OCI names).
fn docker_layer_type(mt: &str) -> Option<&'static str> {
    match mt {
        media::DOCKER_LAYER_GZIP | "application/vnd.oci.image.layer.v1.tar+gzip" => Some(media::DOCKER_LAYER_GZIP),
        "application/vnd.docker.image.rootfs.diff.tar" | "application/vnd.oci.image.layer.v1.tar" => {
            Some("application/vnd.docker.image.rootfs.diff.tar")
        }
        _ => None,
    }
}

/// JSON as Docker writes manifests (Go's `json.MarshalIndent(v, "", "   ")`).
fn docker_json(v: &serde_json::Value) -> Result<Vec<u8>> {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"   "));
    v.serialize(&mut ser).map_err(|source| Error::Json { what: "manifest".into(), source })?;
    Ok(out)
}
