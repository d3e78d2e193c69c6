//! `strata commit`

use std::io::{Seek, SeekFrom, Write};

use anyhow::Result;
use serde_json::{json, Value};
use strata_store::build::{create_image, NewImage};
use strata_store::Reference;

use crate::cli::CommitArgs;
use crate::commands::containers::find;
use crate::printer::Printer;
use crate::settings::Settings;

/// A frozen container, thawed when dropped.
struct Frozen(strata_runtime::oci::Runc, String);

impl Drop for Frozen {
    fn drop(&mut self) {
        use strata_runtime::oci::OciRuntime;
        let _ = self.0.resume(&self.1);
    }
}

/// Commit a container's changes as a new image; prints its ID.
pub fn run(s: &Settings, a: CommitArgs) -> Result<()> {
    let target = a.reference.as_deref().map(Reference::parse_tagged).transpose()?;
    let store = s.store()?;
    store.check_writable()?;
    let c = find(&store, &a.container)?;
    let image = store.image(&c.image)?;
    store.pin_image(&image)?;

    // The container's runtime config: the image's, its command, its labels.
    let mut runtime = image.config.config.as_ref().and_then(|v| v.as_object()).cloned().unwrap_or_default();
    if !c.command.is_empty() {
        runtime.insert("Cmd".into(), json!(c.command));
    }
    if !c.labels.is_empty() {
        let labels = runtime.entry("Labels").or_insert(json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in &c.labels {
            labels.as_object_mut().unwrap().insert(k.clone(), json!(v));
        }
    }
    let created_by = runtime
        .get("Cmd")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let spec = NewImage {
        author: a.author.clone(),
        comment: a.message.clone(),
        changes: a.change.clone(),
        created_by,
        container: Some(c.id.clone()),
        runtime_config: Some(runtime),
        tag: target,
    };
    // Validate the changes before any layer work.
    strata_store::changes::apply_changes(&mut serde_json::Map::new(), &a.change)
        .map_err(|e| anyhow::anyhow!("Error response from daemon: {e}"))?;

    // -p (the default) on a running container: freeze its cgroup (the
    // runtime's pause) while the layer is read; thawed when `_frozen` drops.
    let st = strata_runtime::container::state(&store, &c.id)?;
    let _frozen = if a.pause && st.status == "running" && st.is_running() {
        let run = strata_runtime::container::run_config(&store, &c.id)?;
        let rt = strata_runtime::container::runtime_for(&store, &c, &run)?;
        use strata_runtime::oci::OciRuntime;
        rt.pause(&c.id)?;
        Some(Frozen(rt, c.id.clone()))
    } else {
        None
    };
    // -p on a container mounted outside a run: stop the processes writing
    // into it for the duration of the commit (resumed when `_paused` drops).
    let _paused = if a.pause && _frozen.is_none() && store.driver().is_mounted(&c.layer).unwrap_or(false) {
        let root = store.driver().mount(&c.layer)?;
        let p = crate::commands::pause::pause_writers(&root);
        store.driver().unmount(&c.layer)?;
        tracing::debug!("paused {} writer(s) under {}", p.count(), root.display());
        Some(p)
    } else {
        None
    };
    let changed = !store.driver().changes(&c.layer)?.is_empty();
    let id = if changed {
        let scratch = store.scratch()?;
        let path = scratch.path().join("layer.tar");
        let mut f = std::fs::OpenOptions::new().create_new(true).read(true).write(true).open(&path)?;
        {
            let mut w = std::io::BufWriter::new(&mut f);
            store.driver().diff(&c.layer, &mut w)?;
            w.flush()?;
        }
        f.seek(SeekFrom::Start(0))?;
        let mut r = std::io::BufReader::new(f);
        create_image(&store, Some(&image.id), Some(&mut r), &spec)?
    } else {
        create_image(&store, Some(&image.id), None, &spec)?
    };
    Printer::stdout().line(&id.to_string())
}
