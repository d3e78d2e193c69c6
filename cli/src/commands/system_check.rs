//! `strata system check [--repair] [--quick]` (podman's verb): verify the
//! store, list what is damaged or orphaned, and with `--repair` remove it.
//! Exit status 1 when problems remain.

use anyhow::Result;
use strata_store::check::{check, repair};

use crate::cli::SystemCheckArgs;
use crate::printer::Printer;
use crate::settings::Settings;
use crate::Reported;

/// Check (and repair) the store; one line per finding.
pub fn run(s: &Settings, a: SystemCheckArgs) -> Result<()> {
    let store = s.store()?;
    let found = check(&store, a.quick)?;
    let mut p = Printer::stdout();
    if found.is_empty() {
        return p.line("No problems found");
    }
    if !a.repair {
        p.line("Problems found:")?;
        for f in &found {
            p.line(&format!("  {f}"))?;
        }
        p.flush()?;
        eprintln!(
            "Error: {} problem(s) found; `strata system check --repair` removes what is damaged or orphaned",
            found.len()
        );
        return Err(Reported.into());
    }
    let failed = repair(&store, &found)?;
    p.line("Repaired:")?;
    for f in found.iter().filter(|f| !failed.iter().any(|(x, _)| x == *f)) {
        p.line(&format!("  {f}"))?;
    }
    if failed.is_empty() {
        return Ok(());
    }
    p.flush()?;
    for (f, why) in &failed {
        eprintln!("Error: could not repair {f}: {why}");
    }
    Err(Reported.into())
}
