//! `strata inspect` / `image inspect`

use anyhow::Result;
use serde_json::{json, Map, Value};
use strata_store::{Image, Store};

use crate::cli::InspectArgs;
use crate::printer::Printer;
use crate::settings::Settings;
use crate::Reported;

/// Docker's container-config shape, with every field present.
fn full_config(c: Option<&Value>, container_config: bool) -> Value {
    let src = c.and_then(|v| v.as_object()).cloned().unwrap_or_default();
    let mut m = Map::new();
    let mut put = |k: &str, default: Value| {
        m.insert(k.to_string(), src.get(k).cloned().unwrap_or(default));
    };
    put("Hostname", json!(""));
    put("Domainname", json!(""));
    put("User", json!(""));
    put("AttachStdin", json!(false));
    put("AttachStdout", json!(false));
    put("AttachStderr", json!(false));
    if src.contains_key("ExposedPorts") {
        put("ExposedPorts", Value::Null);
    }
    put("Tty", json!(false));
    put("OpenStdin", json!(false));
    put("StdinOnce", json!(false));
    put("Env", Value::Null);
    put("Cmd", Value::Null);
    if src.contains_key("Healthcheck") {
        put("Healthcheck", Value::Null);
    }
    if src.contains_key("ArgsEscaped") {
        put("ArgsEscaped", Value::Null);
    }
    put("Image", json!(""));
    put("Volumes", Value::Null);
    put("WorkingDir", json!(""));
    put("Entrypoint", Value::Null);
    if src.contains_key("NetworkDisabled") {
        put("NetworkDisabled", Value::Null);
    }
    if src.contains_key("MacAddress") {
        put("MacAddress", Value::Null);
    }
    put("OnBuild", Value::Null);
    put("Labels", Value::Null);
    if src.contains_key("StopSignal") {
        put("StopSignal", Value::Null);
    }
    if src.contains_key("StopTimeout") {
        put("StopTimeout", Value::Null);
    }
    if src.contains_key("Shell") {
        put("Shell", Value::Null);
    }
    let _ = container_config;
    Value::Object(m)
}

/// The runtime config as Docker 28's CLI decodes it for templates (the OCI
/// image-config struct: its field order, empty fields omitted).
fn oci_config(c: Option<&Value>) -> Value {
    const ORDER: &[&str] = &[
        "User",
        "ExposedPorts",
        "Env",
        "Entrypoint",
        "Cmd",
        "Volumes",
        "WorkingDir",
        "Labels",
        "StopSignal",
        "ArgsEscaped",
        "OnBuild",
        "Healthcheck",
        "Shell",
    ];
    let src = c.and_then(|v| v.as_object()).cloned().unwrap_or_default();
    let mut m = Map::new();
    for k in ORDER {
        match src.get(*k) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(Value::Object(o)) if o.is_empty() => {}
            Some(v) => {
                m.insert(k.to_string(), v.clone());
            }
        }
    }
    Value::Object(m)
}

/// The `docker image inspect` document of an image (`templated`: the shape
/// Docker's CLI gives templates, where `Config` omits empty fields).
pub fn document(store: &Store, img: &Image, templated: bool) -> Result<Value> {
    let repos = store.repositories()?;
    let refs = repos.of(&img.id);
    let tags: Vec<String> = refs.iter().filter(|r| r.tag.is_some()).map(|r| r.to_string()).collect();
    let mut digests: Vec<String> = refs.iter().filter(|r| r.digest.is_some()).map(|r| r.to_string()).collect();
    digests.extend(img.meta.repo_digests.iter().cloned());
    digests.sort();
    digests.dedup();
    let size = store.image_size(img)?;
    let layers = store.layers();
    let chain = img.chain_ids();
    let mut dirs = Vec::new();
    for c in &chain {
        dirs.push(layers.require(c)?.cache_id);
    }
    let drv = store.driver().name();
    let base = store.root().join(drv);
    let mut data = Map::new();
    if let Some((top, lower)) = dirs.split_last() {
        if !lower.is_empty() {
            let l: Vec<String> = lower.iter().rev().map(|d| base.join(d).join("diff").display().to_string()).collect();
            data.insert("LowerDir".into(), json!(l.join(":")));
        }
        data.insert("MergedDir".into(), json!(base.join(top).join("merged").display().to_string()));
        data.insert("UpperDir".into(), json!(base.join(top).join("diff").display().to_string()));
        data.insert("WorkDir".into(), json!(base.join(top).join("work").display().to_string()));
    }
    let mut doc = json!({
        "Id": img.id.to_string(),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": img.meta.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "Comment": img.config.comment.clone().unwrap_or_default(),
        "Created": img.config.created.clone().unwrap_or_default(),
        "Container": img.config.container.clone().unwrap_or_default(),
        "ContainerConfig": full_config(img.config.container_config.as_ref(), true),
        "DockerVersion": img.config.docker_version.clone().unwrap_or_default(),
        "Author": img.config.author.clone().unwrap_or_default(),
        "Config": if templated { oci_config(img.config.config.as_ref()) } else { full_config(img.config.config.as_ref(), false) },
        "Architecture": img.config.architecture,
        "Os": img.config.os,
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": data, "Name": drv},
        "RootFS": {"Type": "layers", "Layers": img.config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
        "Metadata": {"LastTagTime": if img.meta.added.is_empty() { "0001-01-01T00:00:00Z".to_string() } else { img.meta.added.clone() }},
    });
    if let Some(v) = &img.config.variant {
        doc.as_object_mut().unwrap().insert("Variant".into(), json!(v));
    }
    Ok(doc)
}

/// Print the inspect documents (a JSON array, or `-f` per image).
pub fn run(s: &Settings, a: InspectArgs) -> Result<()> {
    let store = s.store()?;
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let templated = !matches!(a.format.as_deref(), None | Some("") | Some("json"));
    let kind = a.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image") {
        anyhow::bail!("\"{kind}\" is not a valid value for --type");
    }
    let table = strata_store::containers::Containers::new(store.root());
    for name in &a.images {
        if kind != "image" {
            if let Ok(c) = table.find(name) {
                docs.push(crate::commands::container_inspect::document(&store, &c, a.size)?);
                continue;
            }
            if kind == "container" {
                errors.push(format!("Error: No such container: {name}"));
                continue;
            }
        }
        match store.resolve(name).and_then(|id| store.image(&id)) {
            Ok(img) => docs.push(document(&store, &img, templated)?),
            Err(e) => {
                let looked_for = match e {
                    strata_store::Error::NoSuchImage(n) => n,
                    _ => name.clone(),
                };
                errors.push(format!("Error response from daemon: no such image: {name}: No such image: {looked_for}"))
            }
        }
    }
    let mut ins = crate::format::Inspector::new(
        a.format.as_deref().unwrap_or(""),
        Some(crate::format::presets::image_inspect_nil_hint),
    )?;
    for d in &docs {
        if let Err(e) = ins.inspect(d) {
            errors.push(e.to_string());
        }
    }
    let mut p = Printer::stdout();
    ins.flush(p.out())?;
    if !errors.is_empty() {
        for e in errors {
            eprintln!("{e}");
        }
        return Err(Reported.into());
    }
    Ok(())
}
