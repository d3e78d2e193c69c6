//! `strata tag`

use anyhow::{anyhow, Result};
use strata_store::Reference;

use crate::cli::TagArgs;
use crate::settings::Settings;

/// Point TARGET at the image SOURCE names.
pub fn run(s: &Settings, a: TagArgs) -> Result<()> {
    let target = Reference::parse_tagged(&a.target)
        .map_err(|e| anyhow!("Error parsing reference: {:?} is not a valid repository/tag: {e}", a.target))?;
    if target.digest.is_some() {
        return Err(anyhow!("refusing to create a tag with a digest reference"));
    }
    let store = s.store()?;
    let _lock = store.lock(true)?;
    let id = store.resolve(&a.source)?;
    let mut repos = store.repositories()?;
    repos.set(&target, &id);
    repos.save()?;
    Ok(())
}
