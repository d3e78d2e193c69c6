//! Standard input read to its end into a temporary file beside the store,
//! before a command takes the store's lock: a pipe from another strata
//! command on the same store (`save | load`, `export | import -`) then
//! never waits on the lock its own writer holds.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Spool stdin into a temporary file in `root` (removed when dropped).
pub fn stdin(root: &Path) -> Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    let mut t = tempfile::Builder::new().prefix(".spool-").tempfile_in(root).context("spool standard input")?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, t.as_file_mut());
        std::io::copy(&mut std::io::stdin().lock(), &mut w).context("read standard input")?;
        w.flush()?;
    }
    Ok(t)
}
