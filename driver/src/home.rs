//! A driver's home, `<root>/<driver-name>/`: one directory per layer,
//! named by its id, holding a `parent` file (the parent's id, empty for a
//! base layer) next to the driver-specific content.
//!
//! A layer appears by one `rename` of a fully built temporary directory
//! (`.tmp-…`), so [`Home::exists`] never sees a half-created layer, and
//! disappears by one `rename` to `.rm-…` before its content is deleted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::{io_err, remove_tree, Ctx};
use crate::{Error, Result};

const PARENT: &str = "parent";

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Check a layer id: `[A-Za-z0-9_-]+`.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(Error::BadId(id.to_string()));
    }
    Ok(())
}

/// The directory holding a driver's layers, and those of read-only image
/// stores whose layers may be parents (found, never changed).
pub(crate) struct Home {
    pub dir: PathBuf,
    extra: Vec<PathBuf>,
}

impl Home {
    /// Open (creating) `<root>/<name>`, with the `<extra>/<name>` of
    /// read-only stores; paths are made canonical so mount points compare
    /// equal to `/proc/self/mountinfo`.
    pub(crate) fn open_with(root: &Path, name: &str, extra: &[PathBuf]) -> Result<Home> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).ctx("create driver directory", &dir)?;
        let dir = std::fs::canonicalize(&dir).ctx("resolve driver directory", &dir)?;
        let extra = extra.iter().filter_map(|r| std::fs::canonicalize(r.join(name)).ok()).collect();
        let home = Home { dir, extra };
        home.sweep_dead();
        Ok(home)
    }

    /// Remove the `.tmp-…` and `.rm-…` directories of processes that are
    /// gone (killed while creating or removing a layer). Their names carry
    /// the creator's pid; a live creator's are left alone. Errors are
    /// ignored (a read-only store is swept by a command that can write).
    fn sweep_dead(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with(".tmp-") || name.starts_with(".rm-")) {
                continue;
            }
            let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = remove_tree(&e.path());
            }
        }
    }

    /// Remove layer `id`, also if this process is still building it (its
    /// `.tmp-…` directory): what an interrupted process undoes, while its
    /// other threads may still be writing into the layer (each removal is
    /// retried until the tree is gone).
    pub(crate) fn abandon(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let mine = format!(".tmp-{id}-{}-", std::process::id());
        let mut last = Ok(());
        for _ in 0..50 {
            let mut trees: Vec<PathBuf> = std::fs::read_dir(&self.dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&mine)))
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default();
            trees.push(self.path(id)?);
            last = trees.iter().try_for_each(|t| remove_tree(t));
            if last.is_ok() && trees.iter().all(|t| !t.exists()) {
                break;
            }
        }
        last
    }

    /// Directory of layer `id` (which may not exist).
    pub(crate) fn path(&self, id: &str) -> Result<PathBuf> {
        check_id(id)?;
        Ok(self.dir.join(id))
    }

    /// Whether layer `id` exists (here or in a read-only store).
    pub(crate) fn exists(&self, id: &str) -> bool {
        self.existing(id).is_ok()
    }

    /// Directory of existing layer `id`: here, else in the first read-only
    /// store that has it (to be read, never changed).
    pub(crate) fn existing(&self, id: &str) -> Result<PathBuf> {
        let p = self.path(id)?;
        std::iter::once(p)
            .chain(self.extra.iter().map(|d| d.join(id)))
            .find(|p| p.join(PARENT).exists())
            .ok_or_else(|| Error::NotFound(id.to_string()))
    }

    /// Create layer `id` over `parent`: `build` fills the temporary
    /// directory, which then appears as the layer in one rename.
    pub(crate) fn create(&self, id: &str, parent: Option<&str>, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let dst = self.path(id)?;
        if let Some(p) = parent {
            self.existing(p)?;
        }
        if dst.exists() {
            return Err(Error::Exists(id.to_string()));
        }
        let tmp = self.dir.join(format!(".tmp-{id}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&tmp).ctx("create layer", &tmp)?;
        let built = (|| {
            std::fs::write(tmp.join(PARENT), parent.unwrap_or("")).ctx("write parent", &tmp)?;
            build(&tmp)?;
            rustix::fs::renameat_with(rustix::fs::CWD, &tmp, rustix::fs::CWD, &dst, rustix::fs::RenameFlags::NOREPLACE)
                .map_err(|e| match e {
                    rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY => Error::Exists(id.to_string()),
                    e => io_err("rename layer into place", &dst, e),
                })
        })();
        if built.is_err() {
            let _ = remove_tree(&tmp);
        }
        built
    }

    /// The parent of layer `id`.
    pub(crate) fn parent(&self, id: &str) -> Result<Option<String>> {
        let p = self.existing(id)?.join(PARENT);
        let s = std::fs::read_to_string(&p).ctx("read parent", &p)?;
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        check_id(s).map_err(|_| Error::Malformed(format!("layer {id} records a bad parent {s:?}")))?;
        Ok(Some(s.to_string()))
    }

    /// `id` and its ancestors, top first.
    pub(crate) fn chain(&self, id: &str) -> Result<Vec<String>> {
        let mut out = vec![id.to_string()];
        let mut cur = id.to_string();
        while let Some(p) = self.parent(&cur)? {
            if out.len() > 4096 || out.contains(&p) {
                return Err(Error::Malformed(format!("layer {id} has a parent loop")));
            }
            out.push(p.clone());
            cur = p;
        }
        Ok(out)
    }

    /// Remove layer `id`'s directory (absent is fine).
    pub(crate) fn remove(&self, id: &str) -> Result<()> {
        let p = self.path(id)?;
        let gone = self.dir.join(format!(".rm-{id}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        match std::fs::rename(&p, &gone) {
            Ok(()) => remove_tree(&gone),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove layer", &p, e)),
        }
    }

    /// Every layer id (fully created or not; not the `.rm-*` of removals).
    pub(crate) fn ids(&self) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(&self.dir).ctx("list layers in", &self.dir)?;
        let mut out: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Number of layers.
    pub(crate) fn count(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| !e.file_name().as_encoded_bytes().starts_with(b".")).count())
            .unwrap_or(0)
    }
}
