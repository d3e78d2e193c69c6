//! `strata image diff A B`: the A/C/D changes that turn image A's
//! filesystem into image B's, by comparing the two merged trees.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};
use serde_json::json;
use strata_store::Store;

use crate::cli::ImageDiffArgs;
use crate::printer::Printer;
use crate::settings::Settings;

/// What identifies an entry's state in a merged tree.
#[derive(PartialEq, Eq, Debug)]
struct EntryState {
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: Vec<u8>,
    digest: Option<String>,
}

/// The merged tree of an image: path → state, from the driver's export of
/// a temporary container-less walk of its top layer.
fn tree(store: &Store, name: &str) -> Result<BTreeMap<Vec<u8>, EntryState>> {
    let id = store.resolve(name)?;
    let img = store.image(&id)?;
    let mut out = BTreeMap::new();
    let Some(top) = img.top_layer() else { return Ok(out) };
    let layer = store.layers().require(&top)?;
    let scratch = store.scratch()?;
    let path = scratch.path().join("export.tar");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
        store.driver().export(&layer.cache_id, &mut f)?;
        std::io::Write::flush(&mut f)?;
    }
    let mut ar = tar::Archive::new(std::fs::File::open(&path)?);
    for e in ar.entries()? {
        let mut e = e?;
        let p = e.path_bytes().into_owned();
        let mut key: Vec<u8> = b"/".to_vec();
        key.extend(
            p.strip_prefix(b"./").unwrap_or(&p).strip_suffix(b"/").unwrap_or(p.strip_prefix(b"./").unwrap_or(&p)),
        );
        let h = e.header().clone();
        let link = e.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default();
        let digest = if h.entry_type().is_file() {
            let mut hasher = strata_store::digest::DigestReader::new(&mut e);
            let mut sink = Vec::new();
            (&mut hasher).take(0).read_to_end(&mut sink)?;
            Some(hasher.finish()?.0.to_string())
        } else {
            None
        };
        out.insert(
            key,
            EntryState {
                kind: h.entry_type().as_byte(),
                mode: h.mode().unwrap_or(0),
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                size: h.size().unwrap_or(0),
                mtime: h.mtime().unwrap_or(0),
                link,
                digest,
            },
        );
    }
    out.remove(b"/".as_slice());
    Ok(out)
}

/// Print the changes from image A to image B.
pub fn run(s: &Settings, a: ImageDiffArgs) -> Result<()> {
    let store = s.store()?;
    let from = tree(&store, &a.from).with_context(|| format!("reading {}", a.from))?;
    let to = tree(&store, &a.to).with_context(|| format!("reading {}", a.to))?;
    let mut changes: Vec<(String, char)> = Vec::new();
    for (p, st) in &to {
        match from.get(p) {
            None => changes.push((String::from_utf8_lossy(p).into_owned(), 'A')),
            Some(old) if old != st => changes.push((String::from_utf8_lossy(p).into_owned(), 'C')),
            _ => {}
        }
    }
    for p in from.keys() {
        if !to.contains_key(p) {
            // Only the top of a removed subtree, as Docker reports deletions.
            let parent_gone = p
                .iter()
                .rposition(|&b| b == b'/')
                .is_some_and(|i| i > 0 && !to.contains_key(&p[..i]) && from.contains_key(&p[..i]));
            if !parent_gone {
                changes.push((String::from_utf8_lossy(p).into_owned(), 'D'));
            }
        }
    }
    changes.sort();
    let mut p = Printer::stdout();
    match a.format.as_deref() {
        Some("json") => {
            for (path, kind) in changes {
                p.line(&json!({"Kind": kind.to_string(), "Path": path}).to_string())?;
            }
        }
        Some(f) => {
            for (path, kind) in changes {
                p.template(f, &json!({"Kind": kind.to_string(), "Path": path}), "changeContext")?;
            }
        }
        None => {
            for (path, kind) in changes {
                p.line(&format!("{kind} {path}"))?;
            }
        }
    }
    Ok(())
}
