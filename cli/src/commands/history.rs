//! `strata history`

use anyhow::Result;
use serde_json::json;
use strata_store::config::parse_time;

use crate::cli::HistoryArgs;
use crate::format::presets;
use crate::printer::{self, Printer, Table};
use crate::settings::Settings;

/// Show an image's history, newest first.
pub fn run(s: &Settings, a: HistoryArgs) -> Result<()> {
    let store = s.store()?;
    let id = store.resolve(&a.image)?;
    let img = store.image(&id)?;
    let layers = store.layers();
    let chain = img.chain_ids();
    let mut sizes = Vec::new();
    for c in &chain {
        sizes.push(layers.require(c)?.size);
    }
    // Pair history entries with layers; without history, one row per layer.
    let mut entries: Vec<(Option<String>, String, String, u64)> = Vec::new(); // created, by, comment, size
    let mut li = 0;
    if img.config.history.is_empty() {
        for s in &sizes {
            entries.push((img.config.created.clone(), String::new(), String::new(), *s));
        }
    } else {
        for h in &img.config.history {
            let size = if h.empty_layer {
                0
            } else {
                let s = sizes.get(li).copied().unwrap_or(0);
                li += 1;
                s
            };
            entries.push((
                h.created.clone(),
                h.created_by.clone().unwrap_or_default(),
                h.comment.clone().unwrap_or_default(),
                size,
            ));
        }
    }
    let n = entries.len();
    // Rows that are the top of an image still in the store show its ID:
    // this image, then each parent it was committed from (whose history is
    // a prefix of this one).
    let mut ids: std::collections::BTreeMap<usize, strata_store::Digest> = std::collections::BTreeMap::new();
    ids.insert(n.saturating_sub(1), id.clone());
    let mut cur = img.meta.parent.clone();
    while let Some(p) = cur {
        let Ok(parent) = store.image(&p) else { break };
        let len = parent.config.history.len().max(parent.config.rootfs.diff_ids.len());
        if len == 0 || len > n {
            break;
        }
        ids.insert(len - 1, p.clone());
        cur = parent.meta.parent.clone();
    }
    let mut rows = Vec::new();
    for (i, (created, by, comment, size)) in entries.into_iter().enumerate().rev() {
        let id_text = match ids.get(&i) {
            Some(d) if a.no_trunc => d.to_string(),
            Some(d) => d.short().to_string(),
            None => "<missing>".to_string(),
        };
        let t = created.as_deref().and_then(parse_time);
        // Keys in Go's map order (sorted), as Docker's `{{json .}}` shows a row.
        rows.push(json!({
            "Comment": comment,
            "CreatedAt": t.map(strata_store::config::format_time).unwrap_or_else(|| "N/A".into()),
            "CreatedBy": if a.no_trunc { by } else { crate::format::text::ellipsis(&by, 45) },
            "CreatedSince": t.map(printer::since).unwrap_or_else(|| "N/A".into()),
            "ID": id_text,
            "Size": if a.human { printer::size(size) } else { size.to_string() },
        }));
    }
    let mut p = Printer::stdout();
    if a.quiet {
        for r in &rows {
            p.line(r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    let default = if a.human { presets::HISTORY_TABLE } else { presets::HISTORY_TABLE_NOT_HUMAN };
    p.render(&Table { format: a.format.as_deref(), default, columns: presets::HISTORY }, &rows)
}
