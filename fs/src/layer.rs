//! One layer directory (a lower, or the upper) and what a name in it means.
//!
//! A layer is opened once at mount time and held as an `O_PATH` directory
//! descriptor for the life of the mount (one descriptor per layer, never one
//! per inode). Paths inside a layer are byte strings relative to the layer
//! root, without a leading `/`; the empty path is the root itself.
//!
//! Whiteouts and opaque directories are recognised in both on-disk forms:
//! the kernel's (character device 0/0, `trusted.overlay.opaque=y`) and, in
//! lower layers only, the OCI/aufs form (`.wh.NAME`, `.wh..wh..opq`).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::error::{Context, Error, Result};

/// Prefix of the OCI/aufs whiteout form.
pub const WH_PREFIX: &[u8] = b".wh.";
/// Name of the OCI/aufs opaque marker.
pub const WH_OPAQUE: &[u8] = b".wh..wh..opq";
/// The kernel's opaque-directory xattr.
pub const XATTR_OPAQUE: &str = "trusted.overlay.opaque";
/// The kernel's directory-redirect xattr (redirect_dir=on).
pub const XATTR_REDIRECT: &str = "trusted.overlay.redirect";
/// strata's own record of the inode number a copied-up object keeps.
pub const XATTR_INO: &str = "trusted.overlay.strata.ino";
/// strata's record of the visible link count of an indexed hard-linked file.
pub const XATTR_NLINK: &str = "trusted.overlay.strata.nlink";
/// Prefix of every overlay-private xattr; never shown through the mount.
pub const PRIVATE_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// Whether an xattr name is private to the overlay (never shown, never copied).
pub fn is_private_xattr(name: &[u8]) -> bool {
    name.starts_with(PRIVATE_XATTR_PREFIX) || name.starts_with(b"user.overlay.")
}

/// A layer directory.
#[derive(Debug)]
pub struct Layer {
    /// Absolute, canonical path of the layer root (used for path-based xattr calls).
    pub root: PathBuf,
    /// `O_PATH` descriptor of the root; owned by the layer for the whole mount.
    pub fd: OwnedFd,
    /// Device of the layer root.
    pub dev: u64,
    /// Whether the layer is a lower one (only lowers honour `.wh.` names).
    pub lower: bool,
}

/// What a path in one layer is.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Nothing there.
    Missing,
    /// A whiteout hides the name (and everything below in lower layers).
    Whiteout,
    /// A directory.
    Dir {
        /// Its stat.
        stat: Box<Stat>,
        /// Lower layers below must not be merged.
        opaque: bool,
        /// The raw `trusted.overlay.redirect` value if set: `/path` is
        /// absolute (from every lower layer's root), a bare name is looked up
        /// in the parent directory instead of this directory's own name.
        redirect: Option<Vec<u8>>,
    },
    /// Anything but a directory.
    NonDir(Box<Stat>),
}

/// `path` as an argument for `*at` syscalls: `.` for the layer root.
pub fn at(path: &[u8]) -> &OsStr {
    if path.is_empty() {
        OsStr::new(".")
    } else {
        OsStr::from_bytes(path)
    }
}

/// Join a directory path and a name.
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !dir.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Split a path into (parent, name). The root has no parent.
pub fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[][..], path),
    }
}

/// Whether a stat describes a kernel-format whiteout (char device 0/0).
pub fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

impl Layer {
    /// Open a layer directory.
    pub fn open(path: &Path, lower: bool) -> Result<Layer> {
        let root =
            std::fs::canonicalize(path).map_err(|e| Error::Layer { path: path.to_owned(), reason: e.to_string() })?;
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::Layer { path: path.to_owned(), reason: format!("cannot open as a directory: {e}") })?;
        let st = rustix::fs::fstat(&fd).ctx("stat layer")?;
        // Readability: an unreadable layer fails here rather than on first access.
        rustix::fs::openat(&fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::Layer { path: path.to_owned(), reason: format!("not readable: {e}") })?;
        Ok(Layer { root, fd, dev: st.st_dev, lower })
    }

    /// Absolute path of `rel` for path-based syscalls (xattrs).
    pub fn abs(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            return self.root.clone();
        }
        let mut p = self.root.clone().into_os_string().into_vec();
        p.push(b'/');
        p.extend_from_slice(rel);
        PathBuf::from(OsString::from_vec(p))
    }

    /// `lstat` of a path in the layer.
    pub fn stat(&self, rel: &[u8]) -> rustix::io::Result<Stat> {
        rustix::fs::statat(&self.fd, at(rel), AtFlags::SYMLINK_NOFOLLOW)
    }

    /// Open a path in the layer, never following a symlink and never leaving the layer.
    pub fn open_beneath(&self, rel: &[u8], flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.fd,
            at(rel),
            flags | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Open a directory of the layer for reading entries or as a `*at` base.
    pub fn open_dir(&self, rel: &[u8]) -> rustix::io::Result<OwnedFd> {
        self.open_beneath(rel, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
    }

    /// Read one xattr of a path (not following symlinks); `None` when absent.
    pub fn get_xattr(&self, rel: &[u8], name: &str) -> rustix::io::Result<Option<Vec<u8>>> {
        get_xattr_path(&self.abs(rel), OsStr::new(name))
    }

    /// What `rel` is in this layer.
    pub fn probe(&self, rel: &[u8]) -> Result<Probe> {
        match self.stat(rel) {
            Ok(st) => {
                let ft = FileType::from_raw_mode(st.st_mode);
                if ft == FileType::Directory {
                    // One listxattr tells whether the overlay xattrs are there at all.
                    let names = list_xattr_path(&self.abs(rel)).ctx("list xattrs")?;
                    let has = |n: &str| names.iter().any(|x| x.as_slice() == n.as_bytes());
                    let mut opaque = has(XATTR_OPAQUE)
                        && self.get_xattr(rel, XATTR_OPAQUE).ctx("read opaque")?.as_deref() == Some(b"y");
                    if !opaque && self.lower {
                        opaque = self.has_opaque_marker(rel)?;
                    }
                    let redirect = if has(XATTR_REDIRECT) {
                        self.get_xattr(rel, XATTR_REDIRECT).ctx("read redirect")?
                    } else {
                        None
                    };
                    Ok(Probe::Dir { stat: Box::new(st), opaque, redirect })
                } else if is_whiteout(&st) {
                    Ok(Probe::Whiteout)
                } else {
                    // An OCI whiteout hides only lower layers' entries, never
                    // one of its own layer: a real entry here stays visible.
                    Ok(Probe::NonDir(Box::new(st)))
                }
            }
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                if self.lower && self.has_aufs_whiteout(rel)? {
                    Ok(Probe::Whiteout)
                } else {
                    Ok(Probe::Missing)
                }
            }
            Err(e) => Err(Error::Sys { op: "lookup in layer", errno: e }),
        }
    }

    fn has_aufs_whiteout(&self, rel: &[u8]) -> Result<bool> {
        let (dir, name) = split(rel);
        if name.is_empty() {
            return Ok(false);
        }
        let mut wh = WH_PREFIX.to_vec();
        wh.extend_from_slice(name);
        match self.stat(&join(dir, &wh)) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::NAMETOOLONG) => Ok(false),
            Err(e) => Err(Error::Sys { op: "lookup whiteout", errno: e }),
        }
    }

    /// Whether a directory of this layer is opaque, in either form.
    pub fn is_opaque(&self, rel: &[u8]) -> Result<bool> {
        if let Some(v) = self.get_xattr(rel, XATTR_OPAQUE).ctx("read opaque")? {
            if v == b"y" {
                return Ok(true);
            }
        }
        Ok(self.lower && self.has_opaque_marker(rel)?)
    }

    /// Whether a lower directory holds the OCI opaque marker.
    fn has_opaque_marker(&self, rel: &[u8]) -> Result<bool> {
        match self.stat(&join(rel, WH_OPAQUE)) {
            Ok(_) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(Error::Sys { op: "lookup opaque marker", errno: e }),
        }
    }
}

/// `lgetxattr` returning `None` for a missing attribute.
pub fn get_xattr_path(path: &Path, name: &OsStr) -> rustix::io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA) | Err(Errno::NOTSUP) => return Ok(None),
            Err(Errno::RANGE) => {
                let n = rustix::fs::lgetxattr_query(path, name)?;
                buf = vec![0u8; n.max(1) * 2];
            }
            Err(e) => return Err(e),
        }
    }
}

/// `llistxattr` as a list of names.
pub fn list_xattr_path(path: &Path) -> rustix::io::Result<Vec<Vec<u8>>> {
    let mut buf = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let n = rustix::fs::llistxattr_query(path)?;
                buf = vec![0u8; n.max(1) * 2];
            }
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    };
    Ok(buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| s.to_vec()).collect())
}

/// Entries of the directory open at `fd` (unsorted, without `.`/`..`):
/// name, inode number, type.
///
/// A descriptor open for reading is read in place from its start (its offset
/// is moved; the caller keeps ownership); an `O_PATH` descriptor is reopened
/// for reading first.
pub fn dir_names(fd: impl AsFd) -> rustix::io::Result<Vec<(Vec<u8>, u64, FileType)>> {
    match rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0)) {
        Ok(_) => read_entries(&fd),
        Err(Errno::BADF) => {
            let readable =
                rustix::fs::openat(&fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
            read_entries(&readable)
        }
        Err(e) => Err(e),
    }
}

/// Entries of a directory just opened for reading (as `dir_names`), read
/// from the descriptor's current offset: one `getdents64` per 32 KiB plus the
/// one that finds the end, no reopen and no seek.
pub fn read_entries(fd: impl AsFd) -> rustix::io::Result<Vec<(Vec<u8>, u64, FileType)>> {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
    let mut out = Vec::new();
    while let Some(ent) = dir.next() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push((name.to_vec(), ent.ino(), ent.file_type()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[(b"a", b"", b"a"), (b"a/b", b"a", b"b"), (b"a/b/c", b"a/b", b"c")];
        for (path, dir, name) in cases {
            assert_eq!(split(path), (*dir, *name));
            assert_eq!(join(dir, name), path.to_vec());
        }
    }

    #[test]
    fn xattrs_of_any_size() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"").unwrap();
        for len in [0usize, 1, 255, 256, 257, 3000] {
            let v = vec![b'v'; len];
            if rustix::fs::setxattr(&f, "user.t", &v, rustix::fs::XattrFlags::empty()).is_err() {
                return; // no user xattrs on this filesystem
            }
            assert_eq!(get_xattr_path(&f, OsStr::new("user.t")).unwrap(), Some(v));
        }
        rustix::fs::removexattr(&f, "user.t").unwrap();
        // More than the first 1 KiB list buffer holds.
        let names: Vec<String> = (0..40).map(|i| format!("user.long_attribute_name_{i:03}")).collect();
        for n in &names {
            rustix::fs::setxattr(&f, n.as_str(), b"x", rustix::fs::XattrFlags::empty()).unwrap();
        }
        assert_eq!(list_xattr_path(&f).unwrap().len(), 40);
    }

    #[test]
    fn private_xattrs() {
        assert!(is_private_xattr(b"trusted.overlay.opaque"));
        assert!(!is_private_xattr(b"user.foo"));
        assert!(!is_private_xattr(b"trusted.overlayx"));
    }
}
