//! `strata image prune`

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use strata_store::remove::{remove_image, RemoveOptions, Removed};
use strata_store::{Digest, Store};

use crate::cli::PruneArgs;
use crate::commands::images::{created, labels};
use crate::printer::{self, Printer};
use crate::settings::Settings;

/// Remove dangling (or with `-a`, all unused) images.
pub fn run(s: &Settings, a: PruneArgs) -> Result<()> {
    for f in &a.filter {
        let k = f.split_once('=').map(|(k, _)| k).unwrap_or(f.as_str());
        if !matches!(k, "label" | "label!" | "until") {
            bail!("Error response from daemon: invalid filter '{k}'");
        }
    }
    if !a.force {
        let what =
            if a.all { "all images without at least one container associated to them" } else { "all dangling images" };
        let prompt = format!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        if !crate::commands::confirm(&mut std::io::stderr(), &prompt)? {
            return Ok(());
        }
    }
    let store = s.store()?;
    let (lines, reclaimed) = remove_unused(&store, &a)?;
    let mut p = Printer::stdout();
    if !lines.is_empty() {
        p.line("Deleted Images:")?;
        for l in self::lines(&lines) {
            p.line(&l)?;
        }
        p.line("")?;
    }
    p.line(&format!("Total reclaimed space: {}", printer::size4(reclaimed)))
}

/// Docker's prune lines for what was removed (`untagged: …`, `deleted: …`).
pub fn lines(removed: &[Removed]) -> Vec<String> {
    removed
        .iter()
        .map(|l| match l {
            Removed::Untagged(r) => format!("untagged: {r}"),
            Removed::Deleted(d) => format!("deleted: {d}"),
        })
        .collect()
}

/// Remove the images `a` selects (see [`candidates`]), round after round
/// (a removed child frees its parent); returns the output lines and the
/// bytes of layer content freed.
pub fn remove_unused(store: &Store, a: &PruneArgs) -> Result<(Vec<Removed>, u64)> {
    store.check_writable()?;
    let before = total_layer_bytes(store)?;
    let mut lines = Vec::new();
    loop {
        let victims = candidates(store, a)?;
        if victims.is_empty() {
            break;
        }
        let mut progressed = false;
        for id in victims {
            if !store.imagedb().exists(&id) {
                continue;
            }
            if let Ok(out) = remove_image(store, &id.to_string(), RemoveOptions { force: true, no_prune: false }) {
                lines.extend(out);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    Ok((lines, before.saturating_sub(total_layer_bytes(store)?)))
}

fn total_layer_bytes(store: &Store) -> Result<u64> {
    let layers = store.layers();
    let mut n = 0;
    for c in layers.list()? {
        if let Some(l) = layers.get(&c)? {
            n += l.size;
        }
    }
    Ok(n)
}

/// Images to remove this round: unused by containers and children, dangling
/// unless `-a`, matching the filters.
fn candidates(store: &Store, a: &PruneArgs) -> Result<Vec<Digest>> {
    let repos = store.repositories()?;
    let images = store.images()?;
    let parents: BTreeSet<Digest> = images.iter().filter_map(|i| i.meta.parent.clone()).collect();
    let used: BTreeSet<Digest> =
        strata_store::containers::Containers::new(store.root()).list()?.into_iter().map(|c| c.image).collect();
    let mut out = Vec::new();
    for img in &images {
        if used.contains(&img.id) || parents.contains(&img.id) || img.meta.build_cache {
            continue;
        }
        let tagged = repos.of(&img.id).iter().any(|r| r.tag.is_some());
        if tagged && !a.all {
            continue;
        }
        let mut ok = true;
        for f in &a.filter {
            let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            ok &= match k {
                "label" => {
                    let l = labels(img);
                    match v.split_once('=') {
                        Some((k2, v2)) => l.get(k2).and_then(|x| x.as_str()) == Some(v2),
                        None => l.contains_key(v),
                    }
                }
                "label!" => !labels(img).contains_key(v),
                "until" => match strata_store::config::parse_time(v) {
                    Some(t) => created(img) < t,
                    None => bail!("Error response from daemon: invalid filter 'until={v}'"),
                },
                _ => bail!("Error response from daemon: invalid filter '{k}'"),
            };
        }
        if ok {
            out.push(img.id.clone());
        }
    }
    Ok(out)
}
