//! How many processes share one store without waiting on each other
//! (DESIGN.md "store: concurrency").
//!
//! - **Readers take no lock.** Every object appears by one rename and
//!   disappears by one rename, so a reader sees it whole or not at all; an
//!   image whose metadata vanished under a reader is skipped as removed.
//! - **The publish lock** (`<root>/lock`, an exclusive `flock`) serialises
//!   the short read-modify-write steps: adding an image with its
//!   references, changing the reference table, and garbage collection's
//!   decision. Nothing slow happens under it: downloads, decompression,
//!   unpacking and hashing happen before it is taken.
//! - **Pins** are shared `flock`s on a layer's directory, held by a process
//!   that is about to reference the layer (a pull or load before it
//!   publishes its image) or reads its content (save, push, export). GC
//!   takes an exclusive `flock` without waiting and leaves a layer it
//!   cannot get for a later collection.
//! - **Staging** directories and files being filled (`layers/tmp-*`,
//!   `tmp/s-*`, `.spool-*`) are held by an exclusive `flock` of their
//!   creator for as long as it lives: any command removes those whose
//!   creator is gone ([`sweep`]), never a live one.
//!
//! Every descriptor here is owned by the value that holds the lock and is
//! closed (releasing the lock) when it is dropped.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// The store's publish lock, held exclusively until dropped.
#[derive(Debug)]
pub struct PublishLock {
    _file: File,
}

impl PublishLock {
    /// Block until the publish lock of the store at `root` is held. A
    /// store that cannot be written (read-only filesystem, no permission)
    /// gives [`Error::ReadOnly`].
    pub fn acquire(root: &Path) -> Result<PublishLock> {
        let file = open_lock_file(root)?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            op: "lock",
            path: root.join("lock"),
            source: e.into(),
        })?;
        Ok(PublishLock { _file: file })
    }
}

/// Open (creating) `<root>/lock` for writing: what every change of the
/// store needs first, so it also tells whether the store can be written
/// ([`Error::ReadOnly`] if not).
pub fn open_lock_file(root: &Path) -> Result<File> {
    let path = root.join("lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| read_only_or_io(root, &path, "open lock", source))
}

/// Map the errors that mean "this store cannot be written" to
/// [`Error::ReadOnly`], others to [`Error::Io`].
fn read_only_or_io(root: &Path, path: &Path, op: &'static str, source: std::io::Error) -> Error {
    match Errno::from_io_error(&source) {
        Some(Errno::ROFS | Errno::ACCESS | Errno::PERM) => Error::ReadOnly { root: root.to_path_buf(), source },
        _ => Error::Io { op, path: path.to_path_buf(), source },
    }
}

/// An `flock` on a directory or file, released when dropped.
#[derive(Debug)]
pub struct ObjectLock {
    fd: OwnedFd,
}

impl ObjectLock {
    fn open(path: &Path) -> std::io::Result<OwnedFd> {
        Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?)
    }

    /// Take an exclusive lock on `path` (a directory this process just
    /// created, so nobody else holds it).
    pub fn exclusive(path: &Path) -> Result<ObjectLock> {
        let fd = Self::open(path).map_err(|source| Error::Io { op: "open", path: path.into(), source })?;
        flock(&fd, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            op: "lock",
            path: path.into(),
            source: e.into(),
        })?;
        Ok(ObjectLock { fd })
    }

    /// An exclusive lock on `path` if nobody holds any lock on it now;
    /// `None` if somebody does or `path` is gone.
    pub fn try_exclusive(path: &Path) -> Option<ObjectLock> {
        let fd = Self::open(path).ok()?;
        flock(&fd, FlockOperation::NonBlockingLockExclusive).ok()?;
        Some(ObjectLock { fd })
    }

    /// A shared lock (a pin) on the object at `path`, waiting while GC
    /// holds it. `None` if the path is gone, or names another object once
    /// the lock is held (GC renamed it away meanwhile).
    pub fn pin(path: &Path) -> Option<ObjectLock> {
        let fd = Self::open(path).ok()?;
        flock(&fd, FlockOperation::LockShared).ok()?;
        let held = rustix::fs::fstat(&fd).ok()?;
        let now = std::fs::metadata(path).ok()?;
        (now.dev() == held.st_dev && now.ino() == held.st_ino).then_some(ObjectLock { fd })
    }

    /// Turn an exclusive lock into a shared one (a pin).
    pub fn downgrade(&self) {
        let _ = flock(&self.fd, FlockOperation::LockShared);
    }
}

/// A file spooled or staged by this process, created with an exclusive
/// lock on it so that [`sweep`] in another process leaves it alone.
pub fn lock_file(file: &File) {
    let _ = flock(file, FlockOperation::LockExclusive);
}

/// Remove the entries of `dir` whose name starts with one of `prefixes`
/// and that no live process holds (their creator died: kill -9, power
/// loss). `remove` is called for each, with the entry's path and name
/// without prefix, while this process holds its lock. Errors are ignored:
/// a store that cannot be written is swept by a command that can.
pub fn sweep(dir: &Path, prefixes: &[&str], remove: &mut dyn FnMut(&Path, &str)) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p)) else { continue };
        let path: PathBuf = e.path();
        if let Some(_held) = ObjectLock::try_exclusive(&path) {
            remove(&path, rest);
        }
    }
}

/// The pins a [`crate::Store`] holds, released when it is dropped.
#[derive(Debug, Default)]
pub struct Pins(std::sync::Mutex<Vec<ObjectLock>>);

impl Pins {
    /// Keep `lock` until the store is dropped.
    pub fn hold(&self, lock: ObjectLock) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(lock);
    }

    /// Release them all.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A scratch directory in `<root>/tmp`, held by this process (so no sweep
/// removes it) and removed when dropped or when the process is interrupted.
pub struct Scratch {
    dir: tempfile::TempDir,
    _held: ObjectLock,
    _undo: crate::cleanup::Armed,
}

impl Scratch {
    /// Create one under `tmp`.
    pub fn new(tmp: &Path) -> Result<Scratch> {
        std::fs::create_dir_all(tmp).map_err(|source| Error::Io { op: "create", path: tmp.into(), source })?;
        let ((dir, held), undo) = crate::cleanup::create_armed(|| {
            let dir = tempfile::Builder::new().prefix("s-").tempdir_in(tmp).map_err(|source| Error::Io {
                op: "create scratch in",
                path: tmp.into(),
                source,
            })?;
            let held = ObjectLock::exclusive(dir.path())?;
            let path = dir.path().to_path_buf();
            let undo: crate::cleanup::Undo = Box::new(move || {
                let _ = std::fs::remove_dir_all(&path);
            });
            Ok::<_, Error>(((dir, held), undo))
        })?;
        Ok(Scratch { dir, _held: held, _undo: undo })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_blocks_exclusive_and_a_renamed_object_is_not_pinned() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let pin = ObjectLock::pin(&a).unwrap();
        assert!(ObjectLock::try_exclusive(&a).is_none(), "a pinned object is not free");
        drop(pin);
        let gc = ObjectLock::try_exclusive(&a).unwrap();
        std::fs::rename(&a, d.path().join("gone")).unwrap();
        std::fs::create_dir(&a).unwrap();
        drop(gc);
        // The path names a new directory now: pinning it pins that one.
        assert!(ObjectLock::pin(&a).is_some());
        assert!(ObjectLock::pin(&d.path().join("missing")).is_none());
    }

    #[test]
    fn sweep_removes_only_unheld_entries() {
        let d = tempfile::tempdir().unwrap();
        for n in ["tmp-live", "tmp-dead", "keep"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        let _live = ObjectLock::exclusive(&d.path().join("tmp-live")).unwrap();
        let mut removed = Vec::new();
        sweep(d.path(), &["tmp-"], &mut |p, id| {
            std::fs::remove_dir(p).unwrap();
            removed.push(id.to_string());
        });
        assert_eq!(removed, ["dead"]);
        assert!(d.path().join("tmp-live").exists() && d.path().join("keep").exists());
    }
}
