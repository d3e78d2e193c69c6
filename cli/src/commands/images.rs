//! `strata images` / `image ls`

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use serde_json::json;
use strata_store::{Digest, Image, Reference, Store};

use crate::cli::ImagesArgs;
use crate::format::presets;
use crate::printer::{self, Printer, Table};
use crate::settings::Settings;

/// A parsed `-f` filter.
enum Filter {
    Dangling(bool),
    Before(chrono::DateTime<chrono::Utc>),
    Since(chrono::DateTime<chrono::Utc>),
    Label(String, Option<String>),
    Reference(String),
}

fn parse_filters(store: &Store, raw: &[String]) -> Result<Vec<Filter>> {
    let mut out = Vec::new();
    for f in raw {
        let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
        out.push(match k {
            "dangling" => match v {
                "true" | "1" => Filter::Dangling(true),
                "false" | "0" => Filter::Dangling(false),
                _ => bail!("Error response from daemon: Invalid filter 'dangling={v}'"),
            },
            "before" | "since" => {
                let id = store.resolve(v)?;
                let t = created(&store.image(&id)?);
                if k == "before" {
                    Filter::Before(t)
                } else {
                    Filter::Since(t)
                }
            }
            "label" => match v.split_once('=') {
                Some((a, b)) => Filter::Label(a.to_string(), Some(b.to_string())),
                None => Filter::Label(v.to_string(), None),
            },
            "reference" => Filter::Reference(v.to_string()),
            _ => bail!("Error response from daemon: Invalid filter '{k}'"),
        });
    }
    Ok(out)
}

/// Creation time of an image (its config's, else when it was added).
pub fn created(img: &Image) -> chrono::DateTime<chrono::Utc> {
    img.config
        .created_at()
        .or_else(|| strata_store::config::parse_time(&img.meta.added))
        .unwrap_or(chrono::DateTime::UNIX_EPOCH)
}

/// Labels of an image's config.
pub fn labels(img: &Image) -> serde_json::Map<String, serde_json::Value> {
    img.config.config.as_ref().and_then(|c| c.get("Labels")).and_then(|l| l.as_object()).cloned().unwrap_or_default()
}

/// Shell-style glob (`*`, `?`) over a whole string; `*` does not cross `/`.
pub fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

/// List images as Docker does.
pub fn run(s: &Settings, a: ImagesArgs) -> Result<()> {
    let store = s.store()?;
    let filters = parse_filters(&store, &a.filter)?;
    let repos = store.repositories()?;
    let mut images = store.images()?;
    images.sort_by(|x, y| created(y).cmp(&created(x)).then(x.id.cmp(&y.id)));
    let parents: BTreeSet<Digest> = images.iter().filter_map(|i| i.meta.parent.clone()).collect();
    let arg_ref = a.reference.as_deref().map(|r| (r.to_string(), Reference::parse(r).ok()));

    let mut rows = Vec::new();
    for img in &images {
        let refs = repos.of(&img.id);
        let tags: Vec<&Reference> = refs.iter().filter(|r| r.tag.is_some()).collect();
        let digests: Vec<&Reference> = refs.iter().filter(|r| r.digest.is_some()).collect();
        let dangling = tags.is_empty();
        let t = created(img);
        let mut keep = true;
        for f in &filters {
            keep &= match f {
                Filter::Dangling(d) => dangling == *d,
                Filter::Before(b) => t < *b,
                Filter::Since(b) => t > *b,
                Filter::Label(k, v) => {
                    labels(img).get(k).is_some_and(|x| v.as_ref().is_none_or(|v| x.as_str() == Some(v)))
                }
                Filter::Reference(_) => true,
            };
        }
        if !keep {
            continue;
        }
        // Intermediate images (parents of others, untagged) only with -a;
        // build cache never.
        if dangling && ((parents.contains(&img.id) && !a.all) || img.meta.build_cache) {
            continue;
        }
        let size = match store.image_size(img) {
            Ok(n) => n,
            // Removed by an `rmi` while this listing ran: left out.
            Err(_) if !store.imagedb().exists(&img.id) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut names: Vec<(String, String, String)> = Vec::new(); // repo, tag, digest
        for r in &tags {
            let digest = digests.iter().find(|d| d.repo == r.repo).and_then(|d| d.digest.clone());
            names.push((
                r.repo.clone(),
                r.tag.clone().unwrap(),
                digest.map(|d| d.to_string()).unwrap_or("<none>".into()),
            ));
        }
        if names.is_empty() {
            let digest =
                digests.first().and_then(|d| d.digest.clone()).map(|d| d.to_string()).unwrap_or("<none>".into());
            let repo = digests.first().map(|d| d.repo.clone()).unwrap_or("<none>".into());
            names.push((repo, "<none>".into(), digest));
        }
        names.sort();
        for (repo, tag, digest) in names {
            let matched = |pat: &str| {
                let full = format!("{repo}:{tag}");
                glob(pat, &repo) || glob(pat, &full)
            };
            if let Some((raw, parsed)) = &arg_ref {
                let ok = match parsed {
                    Some(r) if r.tag.is_some() => r.repo == repo && r.tag.as_deref() == Some(tag.as_str()),
                    Some(r) => r.repo == repo,
                    None => false,
                } || (raw.contains('*') && matched(raw));
                if !ok {
                    continue;
                }
            }
            if filters.iter().any(|f| matches!(f, Filter::Reference(p) if !matched(p))) {
                continue;
            }
            if !digests.is_empty() && tag == "<none>" && !a.digests && dangling && repo != "<none>" {
                // Docker shows a digest-only image as repo <none> unless --digests.
            }
            let id = if a.no_trunc { img.id.to_string() } else { img.id.short().to_string() };
            rows.push(json!({
                "Containers": "N/A",
                "CreatedAt": printer::created_at(t),
                "CreatedSince": printer::since(t),
                "Digest": digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": printer::size(size),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": printer::size4(size),
            }));
        }
    }
    let mut p = Printer::stdout();
    if a.quiet {
        for r in &rows {
            p.line(r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    let default = if a.digests { presets::IMAGES_TABLE_DIGESTS } else { presets::IMAGES_TABLE };
    p.render(&Table { format: a.format.as_deref(), default, columns: presets::IMAGES }, &rows)
}
