//! Making new images: `commit` (a container's changes as a layer on its
//! image) and `import` (a filesystem tar as a one-layer image). Both build
//! a config the way Docker does and add the image to the store.

use std::io::Read;

use serde_json::{json, Map, Value};

use crate::changes::apply_changes;
use crate::config::format_time;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::images::ImageMeta;
use crate::Store;

/// What goes into a new image besides its layers.
#[derive(Clone, Debug, Default)]
pub struct NewImage {
    /// `-a`
    pub author: Option<String>,
    /// `-m`
    pub comment: Option<String>,
    /// `-c` instructions.
    pub changes: Vec<String>,
    /// History `created_by`.
    pub created_by: String,
    /// The container committed (Docker's `container` field).
    pub container: Option<String>,
    /// The container's runtime config (commit), replacing the base image's.
    pub runtime_config: Option<Map<String, Value>>,
    /// The reference to point at the new image (it appears with the image).
    pub tag: Option<crate::Reference>,
}

/// Create an image on top of `base` (or from nothing) with `layer_tar` as
/// its new top layer (None: no new layer, an `empty_layer` history entry).
/// Returns the new image ID. The layer is unpacked before the publish lock
/// is taken; the image and `spec.tag` appear together under it.
pub fn create_image(
    store: &Store,
    base: Option<&Digest>,
    layer_tar: Option<&mut dyn Read>,
    spec: &NewImage,
) -> Result<Digest> {
    let base_img = base.map(|b| store.image(b)).transpose()?;
    let mut config: Map<String, Value> = match &base_img {
        Some(img) => match serde_json::from_slice::<Value>(&img.raw) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::Corrupt(format!("config of {} is not an object", img.id))),
        },
        None => {
            let arch = crate::oci::host_arch();
            let mut m = Map::new();
            m.insert("architecture".into(), json!(arch));
            m.insert("os".into(), json!("linux"));
            m
        }
    };
    let mut runtime = spec
        .runtime_config
        .clone()
        .unwrap_or_else(|| config.get("config").and_then(|c| c.as_object()).cloned().unwrap_or_default());
    apply_changes(&mut runtime, &spec.changes)?;
    let now = format_time(chrono::Utc::now());

    let mut diff_ids: Vec<Value> =
        config.get("rootfs").and_then(|r| r.get("diff_ids")).and_then(|d| d.as_array()).cloned().unwrap_or_default();
    let parent_chain = base_img.as_ref().and_then(|i| i.top_layer());
    let mut empty = true;
    if let Some(tar) = layer_tar {
        let layer = store.layers().register(parent_chain.as_ref(), tar, None)?;
        diff_ids.push(json!(layer.diff_id.to_string()));
        empty = false;
    }

    let mut history: Vec<Value> = config.get("history").and_then(|h| h.as_array()).cloned().unwrap_or_default();
    let mut h = Map::new();
    h.insert("created".into(), json!(now));
    if let Some(a) = &spec.author {
        h.insert("author".into(), json!(a));
    }
    h.insert("created_by".into(), json!(spec.created_by));
    if let Some(c) = spec.comment.as_ref().filter(|c| !c.is_empty()) {
        h.insert("comment".into(), json!(c));
    }
    if empty {
        h.insert("empty_layer".into(), json!(true));
    }
    history.push(Value::Object(h));

    config.insert("created".into(), json!(now));
    match &spec.author {
        Some(a) => {
            config.insert("author".into(), json!(a));
        }
        None => {
            config.remove("author");
        }
    }
    match spec.comment.as_ref().filter(|c| !c.is_empty()) {
        Some(c) => {
            config.insert("comment".into(), json!(c));
        }
        None => {
            config.remove("comment");
        }
    }
    if let Some(c) = &spec.container {
        config.insert("container".into(), json!(c));
    }
    config.insert("config".into(), Value::Object(runtime));
    config.insert("rootfs".into(), json!({"type": "layers", "diff_ids": diff_ids}));
    config.insert("history".into(), Value::Array(history));
    let bytes = serde_json::to_vec(&Value::Object(config))
        .map_err(|source| Error::Json { what: "new config".into(), source })?;
    let meta = ImageMeta { added: now, parent: base.cloned(), ..Default::default() };
    let _p = store.publish()?;
    let id = store.add_image(&bytes, meta)?;
    if let Some(r) = &spec.tag {
        store.tag(r, &id)?;
    }
    Ok(id)
}
