//! `strata system prune [-a] [-f] [--volumes]`: Docker's sweep of stopped
//! containers, unused volumes (only with `--volumes`), dangling (or with
//! `-a` unused) images and the build cache, with Docker's prompt, sections
//! and total. Each part takes the publish lock only for its decisions.

use anyhow::Result;

use crate::cli::{PruneArgs, SystemPruneArgs};
use crate::printer::{self, Printer};
use crate::settings::Settings;

/// Remove what is unused; print what went and the space freed.
pub fn run(s: &Settings, a: SystemPruneArgs) -> Result<()> {
    if !a.force {
        let mut w = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
        if a.volumes {
            w.push_str("  - all volumes not used by at least one container\n");
        }
        if a.all {
            w.push_str("  - all images without at least one container associated to them\n  - all build cache\n");
        } else {
            w.push_str("  - all dangling images\n  - all dangling build cache\n");
        }
        w.push_str("\nAre you sure you want to continue? [y/N] ");
        if !crate::commands::confirm(&mut std::io::stdout(), &w)? {
            return Ok(());
        }
    }
    let store = s.store()?;
    store.check_writable()?;
    let mut p = Printer::stdout();
    let mut total = 0u64;

    let (containers, bytes) = crate::commands::lifecycle::remove_stopped(&store)?;
    total += bytes;
    section(&mut p, "Deleted Containers:", &containers)?;
    if a.volumes {
        let (volumes, bytes) = crate::commands::volume::remove_unused(&store)?;
        total += bytes;
        section(&mut p, "Deleted Volumes:", &volumes)?;
    }
    let images = PruneArgs { all: a.all, force: true, filter: a.filter.clone() };
    let (lines, bytes) = crate::commands::prune::remove_unused(&store, &images)?;
    total += bytes;
    section(&mut p, "Deleted Images:", &crate::commands::prune::lines(&lines))?;
    let (cache, bytes) = crate::commands::build::clear_cache(&store)?;
    total += bytes;
    let cache: Vec<String> = cache.iter().map(|id| id.hex()[..25].to_string()).collect();
    section(&mut p, "Deleted build cache objects:", &cache)?;
    // Partial downloads kept to resume an interrupted pull, unless a pull
    // is using them right now.
    strata_store::locks::sweep(&store.root().join("downloads/sha256"), &[""], &mut |path, name| {
        if name.ends_with(".partial") {
            let _ = std::fs::remove_file(path);
        }
    });
    p.line(&format!("Total reclaimed space: {}", printer::size4(total)))
}

/// A titled list and a blank line, unless the list is empty.
fn section(p: &mut Printer, title: &str, items: &[String]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    p.line(title)?;
    for i in items {
        p.line(i)?;
    }
    p.line("")
}
