//! `volume create|ls|inspect|rm|prune`: named volumes, Docker's output.

use anyhow::{bail, Result};
use serde_json::json;
use strata_runtime::volumes::Volumes;
use strata_store::containers::Containers;
use strata_store::Store;

use crate::cli::VolumeCommand;
use crate::printer::{self, Printer};
use crate::settings::Settings;
use crate::Reported;

/// The containers that use volume `name`.
pub fn users(store: &Store, name: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for c in Containers::new(store.root()).list()? {
        let run = strata_runtime::container::run_config(store, &c.id)?;
        if run.binds.iter().any(|b| b.volume.as_deref() == Some(name)) {
            out.push(c.id);
        }
    }
    Ok(out)
}

/// Remove every volume no container uses; their names and bytes freed.
pub fn remove_unused(store: &Store) -> Result<(Vec<String>, u64)> {
    let vols = Volumes::new(store.root());
    let _l = store.publish()?;
    let mut removed = Vec::new();
    let mut reclaimed = 0;
    for v in vols.list()? {
        if users(store, &v.name)?.is_empty() {
            reclaimed += vols.size(&v.name);
            vols.remove(&v.name)?;
            removed.push(v.name);
        }
    }
    Ok((removed, reclaimed))
}

fn document(vols: &Volumes, v: &strata_runtime::volumes::Volume) -> serde_json::Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": "local",
        "Labels": v.labels,
        "Mountpoint": vols.data(&v.name),
        "Name": v.name,
        "Options": {},
        "Scope": "local",
    })
}

/// Dispatch the `volume` verbs.
pub fn run(s: &Settings, cmd: VolumeCommand) -> Result<()> {
    let store = s.store()?;
    let vols = Volumes::new(store.root());
    let mut p = Printer::stdout();
    match cmd {
        VolumeCommand::Create(a) => {
            let _l = store.publish()?;
            let name =
                a.name.unwrap_or_else(|| strata_store::layers::new_cache_id() + &strata_store::layers::new_cache_id());
            let labels = a
                .label
                .iter()
                .map(|l| {
                    l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((l.clone(), String::new()))
                })
                .collect();
            match vols.create(&name, labels) {
                Ok(v) => p.line(&v.name),
                Err(e) => bail!("Error response from daemon: {e}"),
            }
        }
        VolumeCommand::Ls(a) => {
            let list = vols.list()?;
            if a.quiet {
                for v in &list {
                    p.line(&v.name)?;
                }
                return Ok(());
            }
            if let Some(f) = &a.format {
                let rows: Vec<_> = list.iter().map(|v| json!({"Driver": "local", "Name": v.name, "Mountpoint": vols.data(&v.name), "Scope": "local"})).collect();
                for r in &rows {
                    p.template(f, r, "VolumeContext")?;
                }
                return Ok(());
            }
            p.line("DRIVER    VOLUME NAME")?;
            for v in &list {
                p.line(&format!("local     {}", v.name))?;
            }
            Ok(())
        }
        VolumeCommand::Inspect(a) => {
            let mut docs = Vec::new();
            let mut failed = false;
            for n in &a.volumes {
                match vols.get(n)? {
                    Some(v) => docs.push(document(&vols, &v)),
                    None => {
                        failed = true;
                        eprintln!("Error: No such volume: {n}");
                    }
                }
            }
            match &a.format {
                Some(f) => {
                    for d in &docs {
                        p.template(f, d, "VolumeContext")?;
                    }
                }
                None => {
                    let text = serde_json::to_string_pretty(&docs)?;
                    p.line(&text.replace("  ", "    "))?;
                }
            }
            if failed {
                return Err(Reported.into());
            }
            Ok(())
        }
        VolumeCommand::Rm(a) => {
            let _l = store.publish()?;
            crate::commands::for_each_name(&a.volumes, |n| {
                if vols.get(n)?.is_none() {
                    if a.force {
                        return Ok(());
                    }
                    bail!("Error response from daemon: get {n}: no such volume");
                }
                let u = users(&store, n)?;
                if !u.is_empty() {
                    bail!("Error response from daemon: remove {n}: volume is in use - [{}]", u.join(", "));
                }
                vols.remove(n)?;
                Ok(())
            })
        }
        VolumeCommand::Prune(a) => {
            if !a.force {
                let prompt = "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ";
                if !crate::commands::confirm(&mut std::io::stdout(), prompt)? {
                    return Ok(());
                }
            }
            let (removed, reclaimed) = remove_unused(&store)?;
            if !removed.is_empty() {
                p.line("Deleted Volumes:")?;
                for n in &removed {
                    p.line(n)?;
                }
                p.line("")?;
            }
            p.line(&format!("Total reclaimed space: {}", printer::size(reclaimed)))
        }
    }
}
