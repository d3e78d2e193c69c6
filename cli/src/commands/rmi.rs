//! `strata rmi` / `image rm`

use anyhow::Result;
use strata_store::remove::{remove_image, RemoveOptions, Removed};

use crate::cli::RmiArgs;
use crate::printer::{self, Printer};
use crate::settings::Settings;
use crate::Reported;

/// Remove each image; errors are printed per argument, exit status 1 if any.
pub fn run(s: &Settings, a: RmiArgs) -> Result<()> {
    let store = s.store()?;
    let mut p = Printer::stdout();
    let mut failed = false;
    for name in &a.images {
        match remove_image(&store, name, RemoveOptions { force: a.force, no_prune: a.no_prune }) {
            Ok(lines) => {
                for l in lines {
                    match l {
                        Removed::Untagged(r) => p.line(&format!("Untagged: {r}"))?,
                        Removed::Deleted(id) => p.line(&format!("Deleted: {id}"))?,
                    }
                }
            }
            Err(e) => {
                failed = true;
                p.flush()?;
                eprintln!("{}", printer::error_text(&anyhow::Error::new(e)));
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}
