//! `strata save`

use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use strata_store::save::{save, SaveItem};
use strata_store::{Error, Reference};

use crate::cli::SaveArgs;
use crate::settings::Settings;

/// Save images into one docker-archive (stdout unless `-o`; never a terminal).
pub fn run(s: &Settings, a: SaveArgs) -> Result<()> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let store = s.store()?;
    let repos = store.repositories()?;
    let mut items: Vec<SaveItem> = Vec::new();
    for name in &a.images {
        let id = store.resolve(name).map_err(|e| match e {
            Error::NoSuchImage(_) => anyhow!("Error response from daemon: reference does not exist"),
            e => e.into(),
        })?;
        let tags: Vec<Reference> = match Reference::parse(name) {
            Ok(r) if r.digest.is_some() => Vec::new(),
            Ok(r) if r.tag.is_some() && repos.get(&r) == Some(&id) => vec![r],
            // A repository without tag: every tag of it on this image.
            Ok(r) if repos.get(&Reference::parse_tagged(name)?) == Some(&id) || !name.contains(':') => {
                repos.of(&id).into_iter().filter(|t| t.repo == r.repo && t.tag.is_some()).collect()
            }
            _ => Vec::new(),
        };
        match items.iter_mut().find(|i| i.id == id) {
            Some(i) => {
                for t in tags {
                    if !i.tags.contains(&t) {
                        i.tags.push(t);
                    }
                }
            }
            None => items.push(SaveItem { id, tags }),
        }
    }
    match &a.output {
        Some(path) => {
            crate::commands::output::write_file(path, ".strata-save-", |w| Ok(save(&store, &items, w)?))?;
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            save(&store, &items, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}
