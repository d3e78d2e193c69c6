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
    let _p = store.publish()?;
    let id = store.resolve(&a.source)?;
    store.tag(&target, &id)?;
    Ok(())
}
