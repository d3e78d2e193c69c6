//! `save`: images as one docker-archive in the layout `docker save` wrote
//! up to Docker 24 (`<id>.json` configs, `<v1-id>/{VERSION,json,layer.tar}`,
//! `manifest.json`, `repositories`), which docker, podman and skopeo load.
//!
//! Layer tars are reassembled from the driver's files and the tar-split
//! recorded at apply time, so they are byte-identical to what was loaded
//! (same diff-ids, same image IDs) while the store keeps one copy of the
//! content; each is verified against its diff-id as it is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use serde_json::json;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::Store;

/// One image to save and the names to give it.
pub struct SaveItem {
    /// The image.
    pub id: Digest,
    /// Its references to record (`RepoTags`); empty for an image named by ID.
    pub tags: Vec<Reference>,
}

/// Write the docker-archive of `items` to `out`.
pub fn save(store: &Store, items: &[SaveItem], out: &mut dyn Write) -> Result<()> {
    // Pinned first: an `rmi` meanwhile cannot take the layers away mid-stream.
    for item in items {
        store.pin_image(&store.image(&item.id)?)?;
    }
    let mut w = TarWriter { out, written: HashSet::new(), diffs: HashMap::new() };
    let layers = store.layers();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in items {
        let image = store.image(&item.id)?;
        let mtime = image.config.created_at().map(|t| t.timestamp().max(0) as u64).unwrap_or(0);
        let config_name = format!("{}.json", item.id.hex());
        w.file(&config_name, &image.raw, mtime)?;
        let chain = image.chain_ids();
        let mut layer_names = Vec::new();
        let mut parent_v1: Option<String> = None;
        for (i, c) in chain.iter().enumerate() {
            let layer = layers.require(c)?;
            let last = i + 1 == chain.len();
            // v1 IDs: the chain ID below the top; the top one also depends on the image.
            let v1 = if last {
                Digest::of(format!("{} {}", c, item.id).as_bytes()).hex().to_string()
            } else {
                c.hex().to_string()
            };
            if !w.written.contains(&v1) {
                w.dir(&format!("{v1}/"), mtime)?;
                w.file(&format!("{v1}/VERSION"), b"1.0", mtime)?;
                let mut v1json = json!({"id": v1});
                if let Some(p) = &parent_v1 {
                    v1json["parent"] = json!(p);
                }
                if let Some(cr) = &image.config.created {
                    v1json["created"] = json!(cr);
                }
                if last {
                    if let Some(cfg) = &image.config.config {
                        v1json["config"] = cfg.clone();
                    }
                    v1json["os"] = json!(image.config.os);
                    v1json["architecture"] = json!(image.config.architecture);
                }
                w.file(&format!("{v1}/json"), v1json.to_string().as_bytes(), mtime)?;
                // A diff already in the archive (the top of one image below
                // another's top, the same content at another place in a
                // chain) is a link to it, as `docker save` writes it, for
                // loaders that follow the v1 directories.
                match w.diffs.get(&layer.diff_id) {
                    Some(first) => {
                        let target = format!("../{first}/layer.tar");
                        w.symlink(&format!("{v1}/layer.tar"), &target, mtime)?;
                    }
                    None => {
                        w.layer(store, &layer, &format!("{v1}/layer.tar"), mtime)?;
                        w.diffs.insert(layer.diff_id.clone(), v1.clone());
                    }
                }
                w.written.insert(v1.clone());
            }
            // The manifest names the member holding the bytes, never a
            // link (containers/image takes a listed member's size from its
            // own header).
            let holder = w.diffs.get(&layer.diff_id).unwrap_or(&v1);
            layer_names.push(format!("{holder}/layer.tar"));
            parent_v1 = Some(v1);
        }
        let tags: Vec<String> = item.tags.iter().filter(|t| t.tag.is_some()).map(|t| t.to_string()).collect();
        for t in item.tags.iter().filter(|t| t.tag.is_some()) {
            if let Some(top) = &parent_v1 {
                repositories.entry(t.repo.clone()).or_default().insert(t.tag.clone().unwrap(), top.clone());
            }
        }
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { json!(tags) },
            "Layers": layer_names,
        }));
    }
    w.file("manifest.json", serde_json::Value::Array(manifest).to_string().as_bytes(), 0)?;
    if !repositories.is_empty() {
        w.file("repositories", serde_json::to_string(&repositories).unwrap_or_default().as_bytes(), 0)?;
    }
    w.out.write_all(&[0u8; 1024]).during("write archive")?;
    w.out.flush().during("write archive")?;
    Ok(())
}

struct TarWriter<'a> {
    out: &'a mut dyn Write,
    written: HashSet<String>,
    /// Diff-ID → the v1 directory whose `layer.tar` holds it.
    diffs: HashMap<Digest, String>,
}

impl TarWriter<'_> {
    fn header(&mut self, name: &str, size: u64, mode: u32, kind: tar::EntryType, mtime: u64) -> Result<()> {
        self.header_linked(name, size, mode, kind, mtime, None)
    }

    fn header_linked(
        &mut self,
        name: &str,
        size: u64,
        mode: u32,
        kind: tar::EntryType,
        mtime: u64,
        link: Option<&str>,
    ) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).map_err(|e| Error::Invalid(format!("archive member name {name}: {e}")))?;
        if let Some(target) = link {
            h.set_link_name(target).map_err(|e| Error::Invalid(format!("archive link {target}: {e}")))?;
        }
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root").ok();
        h.set_groupname("root").ok();
        h.set_mtime(mtime);
        h.set_entry_type(kind);
        h.set_cksum();
        self.out.write_all(h.as_bytes()).during("write archive")
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (512 - size % 512) % 512;
        self.out.write_all(&[0u8; 512][..rem as usize]).during("write archive")
    }

    fn file(&mut self, name: &str, data: &[u8], mtime: u64) -> Result<()> {
        self.header(name, data.len() as u64, 0o644, tar::EntryType::Regular, mtime)?;
        self.out.write_all(data).during("write archive")?;
        self.pad(data.len() as u64)
    }

    fn symlink(&mut self, name: &str, target: &str, mtime: u64) -> Result<()> {
        self.header_linked(name, 0, 0o777, tar::EntryType::Symlink, mtime, Some(target))
    }

    fn dir(&mut self, name: &str, mtime: u64) -> Result<()> {
        self.header(name, 0, 0o755, tar::EntryType::Directory, mtime)
    }

    fn layer(&mut self, store: &Store, layer: &crate::layers::Layer, name: &str, mtime: u64) -> Result<()> {
        self.header(name, layer.tar_size, 0o644, tar::EntryType::Regular, mtime)?;
        let n = store.layers().tar(layer, &mut self.out)?;
        if n != layer.tar_size {
            return Err(Error::Corrupt(format!(
                "layer {} reassembled to {n} bytes, expected {}",
                layer.chain_id, layer.tar_size
            )));
        }
        self.pad(n)
    }
}
