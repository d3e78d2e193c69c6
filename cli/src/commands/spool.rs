//! Standard input read to its end into a temporary file beside the store,
//! before a command takes the store's lock: a pipe from another strata
//! command on the same store (`save | load`, `export | import -`) then
//! never waits on the lock its own writer holds.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Spool stdin into a temporary file in `root` (removed when dropped, or
/// when the process is interrupted; held locked so that another command's
/// sweep leaves it alone, and removes it if this process is killed).
pub fn stdin(root: &Path) -> Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
    let (mut t, undo) = strata_store::cleanup::create_armed(|| {
        let t = tempfile::Builder::new().prefix(".spool-").tempfile_in(root).context("spool standard input")?;
        strata_store::locks::lock_file(t.as_file());
        let path = t.path().to_path_buf();
        let undo: strata_store::cleanup::Undo = Box::new(move || {
            let _ = std::fs::remove_file(&path);
        });
        anyhow::Ok((t, undo))
    })?;
    // Armed for the rest of the process (removing a name that is gone
    // already does nothing).
    std::mem::forget(undo);
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, t.as_file_mut());
        std::io::copy(&mut std::io::stdin().lock(), &mut w).context("read standard input")?;
        w.flush()?;
    }
    Ok(t)
}
