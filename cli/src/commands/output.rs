//! Writing a command's output file (`save -o`, `export -o`) so that it
//! appears whole or not at all: the bytes go to a hidden temporary file
//! beside it, which is fsynced and renamed over the target at the end; an
//! error or an interrupt (SIGINT/SIGTERM/SIGHUP) removes the temporary file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Write `path` through `fill`, atomically (see the module doc). `prefix`
/// names the temporary file (`.strata-save-`).
pub fn write_file(path: &Path, prefix: &str, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (mut tmp, undo) = strata_store::cleanup::create_armed(|| {
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(dir)
            .with_context(|| format!("create a file next to {}", path.display()))?;
        let tmp_path = tmp.path().to_path_buf();
        let undo: strata_store::cleanup::Undo = Box::new(move || {
            let _ = std::fs::remove_file(&tmp_path);
        });
        anyhow::Ok((tmp, undo))
    })?;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.as_file().sync_all()?;
    undo.disarm_after(|| tmp.persist(path))
        .map_err(|e| e.error)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}
