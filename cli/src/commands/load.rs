//! `strata load`

use std::fs::File;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use strata_store::load::{load_dir, load_stream, LayerProgress, LoadEvent};

use crate::cli::LoadArgs;
use crate::printer::Printer;
use crate::settings::Settings;

/// Load images from `-i FILE|DIR` or stdin and print Docker's lines.
pub fn run(s: &Settings, a: LoadArgs) -> Result<()> {
    // A terminal is nobody's archive: Docker's CLI refuses rather than wait.
    if a.input.is_none() && std::io::stdin().is_terminal() {
        anyhow::bail!("requested load from stdin, but stdin is empty");
    }
    let store = s.store()?;
    // Read stdin to its end before taking the store's lock, so that
    // `strata save … | strata load` on one store cannot wait on itself.
    let spooled = match &a.input {
        None => Some(crate::commands::spool::stdin(store.root())?),
        Some(_) => None,
    };
    store.check_writable()?;
    let mut p = Printer::stdout();
    // On a terminal, one line per layer with a bar (Docker's "Loading layer").
    let mut bars = crate::printer::Progress::new(a.quiet);
    let tty = std::io::stdout().is_terminal();
    let mut progress = |p: LayerProgress| {
        if tty {
            bars.layer(&p.id, "Loading layer", Some((p.done, p.total)));
        }
    };
    let events = match &a.input {
        Some(path) if path.is_dir() => load_dir(&store, path, &mut progress)?,
        Some(path) => {
            let f = File::open(path).with_context(|| format!("open {}", path.display()))?;
            load_stream(&store, f, &mut progress)?
        }
        None => {
            let f = spooled.as_ref().map(|t| t.reopen()).transpose()?.context("spooled input")?;
            load_stream(&store, f, &mut progress)?
        }
    };
    bars.finish();
    for e in events {
        match e {
            LoadEvent::Renamed { reference, old } => p.line(&format!(
                "The image {reference} already exists, renaming the old one with ID {old} to empty string"
            ))?,
            LoadEvent::Loaded(r) => p.line(&format!("Loaded image: {r}"))?,
            LoadEvent::LoadedId(id) => p.line(&format!("Loaded image ID: {id}"))?,
        }
    }
    Ok(())
}
