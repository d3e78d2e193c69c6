//! Small system-call helpers shared by the drivers: error context, byte
//! paths, xattrs, directory listing and tree removal.
//!
//! Paths handled here are byte strings; nothing is ever converted lossily
//! except in error messages.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::{Error, Result};

/// A byte string as an `OsStr` (for `*at` syscalls).
pub(crate) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// `name` as the argument of an `*at` call: `.` for the empty path.
pub(crate) fn at(b: &[u8]) -> &OsStr {
    if b.is_empty() {
        OsStr::new(".")
    } else {
        os(b)
    }
}

/// Join a relative byte path and a name (`""` is the root).
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Split a relative byte path into (parent, name).
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[][..], path),
    }
}

/// `root/rel` as a path (`root` itself for the empty `rel`).
pub(crate) fn under(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        return root.to_path_buf();
    }
    let mut p = root.as_os_str().as_bytes().to_vec();
    p.push(b'/');
    p.extend_from_slice(rel);
    PathBuf::from(OsString::from_vec(p))
}

/// A path for error messages.
pub(crate) fn shown(p: impl AsRef<OsStr>) -> String {
    p.as_ref().to_string_lossy().into_owned()
}

/// Build an [`Error::Io`].
pub(crate) fn io_err(op: &'static str, path: impl AsRef<OsStr>, e: impl Into<std::io::Error>) -> Error {
    Error::Io { op, path: shown(path), source: e.into() }
}

/// Attach "what was being done, on what" to a failed syscall.
pub(crate) trait Ctx<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<OsStr>) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, Errno> {
    fn ctx(self, op: &'static str, path: impl AsRef<OsStr>) -> Result<T> {
        self.map_err(|e| io_err(op, path, e))
    }
}

impl<T> Ctx<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<OsStr>) -> Result<T> {
        self.map_err(|e| io_err(op, path, e))
    }
}

/// The file type of a stat.
pub(crate) fn ftype(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Whether a stat is a kernel-format whiteout (character device 0/0).
pub(crate) fn is_whiteout(st: &Stat) -> bool {
    ftype(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// `lstat` relative to a directory descriptor; `None` when absent.
pub(crate) fn lstat_at(dir: impl AsFd, name: &[u8]) -> std::result::Result<Option<Stat>, Errno> {
    match rustix::fs::statat(dir, at(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `lstat` of a path; `None` when absent.
pub(crate) fn lstat(path: &Path) -> Result<Option<Stat>> {
    match rustix::fs::lstat(path) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
        Err(e) => Err(io_err("stat", path, e)),
    }
}

/// Timestamps setting both atime and mtime to `(sec, nsec)`.
pub(crate) fn times(sec: i64, nsec: u32) -> Timestamps {
    let t = Timespec { tv_sec: sec as _, tv_nsec: nsec as _ };
    Timestamps { last_access: t, last_modification: t }
}

/// Timestamps of a stat (atime and mtime kept).
pub(crate) fn times_of(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec { tv_sec: st.st_atime as _, tv_nsec: st.st_atime_nsec as _ },
        last_modification: Timespec { tv_sec: st.st_mtime as _, tv_nsec: st.st_mtime_nsec as _ },
    }
}

/// Names of a directory (without `.` and `..`), sorted bytewise.
pub(crate) fn read_dir_sorted(path: &Path) -> Result<Vec<Vec<u8>>> {
    let fd =
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .ctx("open directory", path)?;
    let mut names = dir_names(&fd).ctx("read directory", path)?;
    names.sort();
    Ok(names)
}

/// Names of the directory open at `fd` (unsorted, without `.`/`..`).
pub(crate) fn dir_names(fd: impl AsFd) -> std::result::Result<Vec<Vec<u8>>, Errno> {
    Ok(strata_fs::layer::dir_names(fd)?.into_iter().map(|(name, _, _)| name).collect())
}

/// Whether an xattr must never leave or enter a layer: the overlay's private
/// ones (kernel and strata's own) and host security labels.
pub(crate) fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") || name == b"security.selinux"
}

/// All xattrs of a path (not following a final symlink), sorted by name,
/// without the private ones.
pub(crate) fn public_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = strata_fs::layer::list_xattr_path(path).ctx("list xattrs", path)?;
    let mut out = Vec::new();
    for n in names {
        if is_private_xattr(&n) {
            continue;
        }
        if let Some(v) = strata_fs::layer::get_xattr_path(path, os(&n)).ctx("read xattr", path)? {
            out.push((n, v));
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr of a path (not following a final symlink); `None` when absent.
pub(crate) fn get_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    strata_fs::layer::get_xattr_path(path, OsStr::new(name)).ctx("read xattr", path)
}

/// Set an xattr on a path without following a final symlink.
pub(crate) fn lset_xattr(path: &Path, name: &[u8], value: &[u8]) -> std::result::Result<(), Errno> {
    rustix::fs::lsetxattr(path, os(name), value, XattrFlags::empty())
}

/// Remove a directory entry and, for a directory, everything below it,
/// never following symlinks. Absent is fine.
pub(crate) fn remove_at(dir: impl AsFd + Copy, name: &[u8]) -> std::result::Result<(), Errno> {
    match rustix::fs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    let sub = rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    empty_dir_at(&sub)?;
    drop(sub);
    rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)
}

/// Remove every entry of the directory open at `dir`.
pub(crate) fn empty_dir_at(dir: &impl AsFd) -> std::result::Result<(), Errno> {
    for child in dir_names(dir)? {
        remove_at(dir.as_fd(), &child)?;
    }
    Ok(())
}

/// Remove a whole tree by path (absent is fine), never following symlinks.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path, e)),
    }
}

/// Write a small file atomically (temp file, fsync, rename).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).ctx("create", &tmp)?;
    f.write_all(data).ctx("write", &tmp)?;
    f.sync_all().ctx("sync", &tmp)?;
    std::fs::rename(&tmp, path).ctx("rename", path)
}
