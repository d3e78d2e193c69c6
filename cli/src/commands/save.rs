//! `strata save`

use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use strata_store::save::{save, SaveItem};
use strata_store::{Digest, Error, Reference};

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
        // A repository without tag or digest: every tag of it (Docker's
        // `save REPO`), whichever images they name.
        let whole_repo = Reference::parse(name).ok().filter(|r| r.tag.is_none() && r.digest.is_none());
        let named: Vec<(Digest, Vec<Reference>)> = match whole_repo {
            Some(r) if repos.all().iter().any(|(t, _)| t.repo == r.repo && t.tag.is_some()) => repos
                .all()
                .into_iter()
                .filter(|(t, _)| t.repo == r.repo && t.tag.is_some())
                .map(|(t, id)| (id, vec![t]))
                .collect(),
            _ => {
                let id = store.resolve(name).map_err(|e| match e {
                    Error::NoSuchImage(_) => anyhow!("Error response from daemon: reference does not exist"),
                    e => e.into(),
                })?;
                let tags = match Reference::parse(name) {
                    Ok(r) if r.tag.is_some() && r.digest.is_none() && repos.get(&r) == Some(&id) => vec![r],
                    _ => Vec::new(),
                };
                vec![(id, tags)]
            }
        };
        for (id, tags) in named {
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
