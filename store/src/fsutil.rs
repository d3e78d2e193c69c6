//! Crash-safe file writes.
//!
//! Every metadata write is: write a temp file in the same directory, fsync
//! it, rename it over the target, fsync the directory. A kill -9 at any
//! point leaves either the old or the new file, never a torn one; stray
//! temp files (`.tmp-*`) are garbage that readers ignore.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Atomically replace `path` with `bytes` (temp, fsync, rename, fsync dir);
/// the file is mode 0644.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).at("create directory", dir)?;
    // Readable by all, as Docker's metadata is: a user who may read the
    // store but not write it can still use every read command.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .at("create temp file in", dir)?;
    tmp.write_all(bytes).at("write", tmp.path().to_path_buf())?;
    tmp.as_file().sync_all().at("fsync", tmp.path().to_path_buf())?;
    tmp.persist(path).map_err(|e| e.error).at("rename into place", path)?;
    sync_dir(dir)
}

/// fsync a directory (makes renames and creations in it durable).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at("fsync directory", dir)
}

/// Rename `from` to `to` and fsync `to`'s directory.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).at("rename into place", to)?;
    sync_dir(to.parent().unwrap_or(Path::new(".")))
}

/// Where to read `rel` from: under `own` if `exists` says so there, else
/// under the first of `extra` (read-only stores) where it does, else
/// under `own` (for the caller's "not found").
pub fn first_found(
    own: &Path,
    extra: &[std::path::PathBuf],
    rel: &str,
    exists: fn(&Path) -> bool,
) -> std::path::PathBuf {
    let mine = own.join(rel);
    if exists(&mine) {
        return mine;
    }
    extra.iter().map(|d| d.join(rel)).find(|p| exists(p)).unwrap_or(mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(d.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
    }
}
