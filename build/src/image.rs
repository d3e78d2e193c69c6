//! The image a build stage is making, step by step: its whole config (the
//! JSON that becomes the image config), its top layer, and — once
//! committed — its ID in the store. Every step is committed as an image
//! whose parent is the previous step's (Docker's intermediate images,
//! hidden from `images` because they have children); the cache maps step
//! keys to these images.

use serde_json::{json, Map, Value};
use strata_store::images::ImageMeta;
use strata_store::{Digest, Store};

use crate::scope::Flavor;
use crate::Error;

/// Docker's default PATH, added when the base image has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A stage's image in the making.
#[derive(Clone, Debug)]
pub struct ImageState {
    /// The whole image config.
    pub config: Map<String, Value>,
    /// Chain ID of the top layer (None: no layers yet).
    pub top_layer: Option<Digest>,
    /// The image this state was committed as (None: not committed yet,
    /// or `FROM scratch` before any step).
    pub id: Option<Digest>,
}

impl ImageState {
    /// `FROM scratch`: no layers, Docker's default PATH, and for BuildKit a
    /// working directory of `/`.
    pub fn scratch(flavor: Flavor) -> ImageState {
        let mut rt = Map::new();
        rt.insert("Env".into(), json!([format!("PATH={DEFAULT_PATH}")]));
        if flavor == Flavor::BuildKit {
            rt.insert("WorkingDir".into(), json!("/"));
        }
        let mut config = Map::new();
        config.insert("architecture".into(), json!(strata_store::oci::host_arch()));
        config.insert("os".into(), json!("linux"));
        config.insert("config".into(), Value::Object(rt));
        config.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
        config.insert("history".into(), json!([]));
        ImageState { config, top_layer: None, id: None }
    }

    /// The state of an image in the store; PATH added when it has none.
    /// The image's layers stay pinned while `store` lives (no `rmi` during
    /// the build takes them away).
    pub fn from_image(store: &Store, id: &Digest) -> Result<ImageState, Error> {
        let img = store.image(id)?;
        store.pin_image(&img)?;
        let mut config = match serde_json::from_slice::<Value>(&img.raw) {
            Ok(Value::Object(m)) => m,
            _ => return Err(Error::System(format!("config of image {id} is not an object"))),
        };
        let mut st = ImageState { config: Map::new(), top_layer: img.top_layer(), id: Some(id.clone()) };
        if !config.get("config").is_some_and(Value::is_object) {
            config.insert("config".into(), json!({}));
        }
        st.config = config;
        if !st.env().iter().any(|(k, _)| k == "PATH") {
            st.set_env("PATH", DEFAULT_PATH);
        }
        Ok(st)
    }

    /// The runtime config (`config` object).
    pub fn runtime(&self) -> &Map<String, Value> {
        self.config.get("config").and_then(Value::as_object).expect("state always has a config object")
    }

    /// The runtime config, for changes.
    pub fn runtime_mut(&mut self) -> &mut Map<String, Value> {
        self.config.get_mut("config").and_then(Value::as_object_mut).expect("state always has a config object")
    }

    /// `Env` as (key, value) pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        self.strings("Env")
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect()
    }

    /// Set one variable of `Env` (replacing it in place or appending).
    pub fn set_env(&mut self, k: &str, v: &str) {
        let mut env = self.strings("Env");
        strata_runtime::config::set_env(&mut env, &format!("{k}={v}"));
        self.runtime_mut().insert("Env".into(), json!(env));
    }

    /// A string-list field of the runtime config (empty when absent).
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.runtime()
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// A string field of the runtime config (empty when absent).
    pub fn string(&self, key: &str) -> String {
        self.runtime().get(key).and_then(Value::as_str).unwrap_or_default().to_string()
    }

    /// The shell of RUN/CMD/ENTRYPOINT shell forms (`SHELL`, else `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        let s = self.strings("Shell");
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    /// What the runtime needs to run a step's container.
    pub fn image_runtime(&self) -> strata_runtime::ImageRuntime {
        strata_runtime::ImageRuntime::from_config(self.config.get("config"))
    }

    /// Append a layer (its diff ID; `chain` becomes the top layer).
    pub fn add_layer(&mut self, diff_id: &Digest, chain: Digest) {
        let rootfs = self.config.entry("rootfs").or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        if let Some(ids) = rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
            ids.push(json!(diff_id.to_string()));
        }
        self.top_layer = Some(chain);
    }

    /// Append a history entry.
    pub fn add_history(&mut self, created_by: &str, empty_layer: bool, flavor: Flavor) {
        let mut h = Map::new();
        h.insert("created".into(), json!(strata_store::config::format_time(chrono::Utc::now())));
        h.insert("created_by".into(), json!(created_by));
        if flavor == Flavor::BuildKit {
            h.insert("comment".into(), json!("buildkit.dockerfile.v0"));
        }
        if empty_layer {
            h.insert("empty_layer".into(), json!(true));
        }
        let hist = self.config.entry("history").or_insert_with(|| json!([]));
        if let Some(a) = hist.as_array_mut() {
            a.push(Value::Object(h));
        }
    }

    /// Commit the state as an image in the store (the caller holds the
    /// store's write lock). Legacy images carry `container_config` (the
    /// runtime config with `Cmd` = `legacy_cmd`) and `container`.
    pub fn commit(&mut self, store: &Store, flavor: Flavor, legacy_cmd: Option<&[String]>) -> Result<Digest, Error> {
        let now = strata_store::config::format_time(chrono::Utc::now());
        self.config.insert("created".into(), json!(now));
        // Go writes maps with sorted keys.
        for k in ["Labels", "ExposedPorts", "Volumes"] {
            if let Some(Value::Object(m)) = self.runtime_mut().get_mut(k) {
                let mut sorted: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                m.extend(sorted);
            }
        }
        match (flavor, legacy_cmd) {
            (Flavor::Legacy, Some(cmd)) => {
                let mut cc = self.runtime().clone();
                cc.insert("Cmd".into(), json!(cmd));
                let container = strata_store::layers::new_cache_id() + &strata_store::layers::new_cache_id();
                self.config.insert("container".into(), json!(container));
                self.config.insert("container_config".into(), Value::Object(cc));
            }
            _ => {
                self.config.remove("container");
                self.config.remove("container_config");
            }
        }
        let bytes = serde_json::to_vec(&Value::Object(self.config.clone()))
            .map_err(|e| Error::System(format!("image config: {e}")))?;
        // The classic builder's steps are intermediate images (children of
        // the previous step); BuildKit's are build cache, with no parent.
        let meta = match flavor {
            Flavor::Legacy => ImageMeta { added: now, parent: self.id.clone(), ..Default::default() },
            Flavor::BuildKit => ImageMeta { added: now, build_cache: true, ..Default::default() },
        };
        let id = store.add_image(&bytes, meta)?;
        self.id = Some(id.clone());
        Ok(id)
    }
}
