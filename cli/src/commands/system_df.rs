//! `strata system df`

use std::collections::BTreeSet;

use anyhow::Result;
use serde_json::json;
use strata_store::containers::Containers;
use strata_store::Digest;

use crate::cli::DfArgs;
use crate::commands::images::created;
use crate::format::presets;
use crate::printer::{self, Printer, Table};
use crate::settings::Settings;

fn reclaim(bytes: u64, total: u64) -> String {
    if total == 0 || bytes == 0 {
        return printer::size4(bytes);
    }
    format!("{} ({}%)", printer::size4(bytes), bytes * 100 / total)
}

/// Disk usage of images, containers (volumes and build cache: none).
pub fn run(s: &Settings, a: DfArgs) -> Result<()> {
    let store = s.store()?;
    let repos = store.repositories()?;
    // Untagged BuildKit steps are Build Cache, not images.
    let (cache, images): (Vec<_>, Vec<_>) =
        store.images()?.into_iter().partition(|i| i.meta.build_cache && repos.of(&i.id).is_empty());
    let containers = Containers::new(store.root()).list()?;
    let layers = store.layers();
    let active: BTreeSet<Digest> = containers.iter().map(|c| c.image.clone()).collect();
    let mut all_layers = BTreeSet::new();
    let mut active_layers = BTreeSet::new();
    for img in &images {
        for c in img.chain_ids() {
            if active.contains(&img.id) {
                active_layers.insert(c.clone());
            }
            all_layers.insert(c);
        }
    }
    let size_of = |set: &BTreeSet<Digest>| -> Result<u64> {
        let mut n = 0;
        for c in set {
            n += layers.require(c)?.size;
        }
        Ok(n)
    };
    let cache_layers: BTreeSet<Digest> =
        cache.iter().flat_map(|i| i.chain_ids()).filter(|c| !all_layers.contains(c)).collect();
    let cache_size = size_of(&cache_layers)?;
    let total = size_of(&all_layers)?;
    let volumes = strata_runtime::volumes::Volumes::new(store.root());
    let vols = volumes.list()?;
    let (mut vol_size, mut vol_idle, mut vol_active) = (0u64, 0u64, 0usize);
    for v in &vols {
        let sz = volumes.size(&v.name);
        vol_size += sz;
        if crate::commands::volume::users(&store, &v.name)?.is_empty() {
            vol_idle += sz;
        } else {
            vol_active += 1;
        }
    }
    let used = size_of(&active_layers)?;
    let mut csize = 0;
    let mut cidle = 0;
    let mut cactive = 0;
    for c in &containers {
        let sz = store.driver().diff_size(&c.layer).unwrap_or(0);
        csize += sz;
        if store.driver().is_mounted(&c.layer).unwrap_or(false) {
            cactive += 1;
        } else {
            cidle += sz;
        }
    }
    let mut p = Printer::stdout();
    if a.verbose {
        p.line("Images space usage:")?;
        p.line("")?;
        let repos = store.repositories()?;
        let mut rows = Vec::new();
        let mut sorted = images.clone();
        sorted.sort_by_key(|i| std::cmp::Reverse(created(i)));
        for img in &sorted {
            let size = match store.image_size(img) {
                Ok(n) => n,
                // Removed by an `rmi` while this ran: left out.
                Err(_) if !store.imagedb().exists(&img.id) => continue,
                Err(e) => return Err(e.into()),
            };
            let shared: u64 = img
                .chain_ids()
                .iter()
                .filter(|c| images.iter().filter(|o| o.chain_ids().contains(c)).count() > 1)
                .map(|c| layers.require(c).map(|l| l.size).unwrap_or(0))
                .sum();
            let n = containers.iter().filter(|c| c.image == img.id).count();
            let names: Vec<_> = repos.of(&img.id).into_iter().filter(|r| r.tag.is_some()).collect();
            let (repo, tag) = names
                .first()
                .map(|r| (r.repo.clone(), r.tag.clone().unwrap()))
                .unwrap_or(("<none>".into(), "<none>".into()));
            rows.push(json!({
                "Repository": repo, "Tag": tag, "ID": img.id.short(), "CreatedSince": printer::since(created(img)),
                "Size": printer::size(size), "SharedSize": printer::size4(shared), "UniqueSize": printer::size4(size - shared),
                "Containers": n.to_string(),
            }));
        }
        p.render(&Table { format: None, default: presets::SYSTEM_DF_IMAGES_TABLE, columns: presets::IMAGES }, &rows)?;
        p.line("")?;
        p.line("Containers space usage:")?;
        p.line("")?;
        let mut rows = Vec::new();
        for c in containers.iter().rev() {
            let t = strata_store::config::parse_time(&c.created).unwrap_or(chrono::DateTime::UNIX_EPOCH);
            let mounted = store.driver().is_mounted(&c.layer).unwrap_or(false);
            let cmd = crate::commands::containers::command_of(&store, c).join(" ");
            rows.push(json!({
                "ID": &c.id[..12], "Image": c.image_name, "Command": format!("\"{}\"", crate::format::text::ellipsis(&cmd, 20)),
                "LocalVolumes": "0", "Size": printer::size(store.driver().diff_size(&c.layer).unwrap_or(0)),
                "RunningFor": printer::since(t), "Status": if mounted { "Mounted" } else { "Created" }, "Names": c.name,
            }));
        }
        p.render(
            &Table {
                format: None,
                default: presets::SYSTEM_DF_CONTAINERS_TABLE,
                columns: presets::SYSTEM_DF_CONTAINERS,
            },
            &rows,
        )?;
        p.line("")?;
        p.line("Local Volumes space usage:")?;
        p.line("")?;
        p.line("VOLUME NAME   LINKS     SIZE")?;
        p.line("")?;
        p.line(&format!("Build cache usage: {}", printer::size(cache_size)))?;
        p.line("")?;
        return p.line("CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED");
    }
    let rows = vec![
        json!({"Active": active.len().to_string(), "Reclaimable": reclaim(total - used, total), "Size": printer::size4(total), "TotalCount": images.len().to_string(), "Type": "Images"}),
        json!({"Active": cactive.to_string(), "Reclaimable": reclaim(cidle, csize), "Size": printer::size4(csize), "TotalCount": containers.len().to_string(), "Type": "Containers"}),
        json!({"Active": vol_active.to_string(), "Reclaimable": reclaim(vol_idle, vol_size), "Size": printer::size4(vol_size), "TotalCount": vols.len().to_string(), "Type": "Local Volumes"}),
        json!({"Active": "0", "Reclaimable": printer::size4(cache_size), "Size": printer::size4(cache_size), "TotalCount": cache.len().to_string(), "Type": "Build Cache"}),
    ];
    p.render(
        &Table { format: a.format.as_deref(), default: presets::SYSTEM_DF_TABLE, columns: presets::SYSTEM_DF },
        &rows,
    )
}
