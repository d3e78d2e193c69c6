//! What a layer changes relative to its parent stack, as a list of items in
//! tar order, from which `changes` (Docker's A/C/D), `diff` (the OCI layer
//! tar) and `diff_size` are all derived.
//!
//! Order: a directory's entry, then its opaque marker if any, then its
//! children sorted by their on-disk name (a deletion sits where the deleted
//! name would), depth first. This is the order of Docker's tar writer
//! (`filepath.Walk`), so `.wh.NAME` entries appear at NAME's place.
//!
//! Semantics (Docker's `docker diff`):
//! - overlay drivers, from the upper directory alone plus lookups in the
//!   lower stack: an object in the upper is `A` if the lower stack has no
//!   such path, else `C` (a copied-up file counts as changed even when its
//!   content is not, as with Docker); a whiteout is `D`; an opaque directory
//!   (or a renamed one, `trusted.overlay.redirect`) reports each lower child
//!   it hides as `D`. A renamed directory is written out in full after an
//!   opaque marker, since its content lives in the lower layers.
//! - vfs, by comparing the layer's tree with its parent's: present only in
//!   the new tree `A`, only in the old `D`; in both, `C` when type, mode,
//!   owner, device, xattrs or link target differ, or, for non-directories,
//!   size or mtime. A directory is also `C` when anything below it changed.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat};

use crate::emit::Emitter;
use crate::stack::{Found, Stack};
use crate::sys::{ftype, get_xattr, is_whiteout, join, lstat, public_xattrs, read_dir_sorted, under, Ctx};
use crate::{Change, ChangeKind, Result};

/// One change, in tar order.
#[derive(Debug)]
pub(crate) enum Item {
    /// An object of the new tree, written in full (its directory entry only,
    /// for a directory).
    Entry { path: Vec<u8>, abs: PathBuf, stat: Box<Stat>, kind: ChangeKind },
    /// `path` was deleted: a `.wh.` entry (metadata of the whiteout object,
    /// when there is one).
    Whiteout { path: Vec<u8>, stat: Option<Box<Stat>> },
    /// The directory `path` hides everything below it: an opaque marker.
    Opaque { path: Vec<u8>, stat: Box<Stat> },
    /// `path` was deleted, implied by an opaque marker (no entry of its own).
    Hidden { path: Vec<u8> },
}

/// Docker's A/C/D list, sorted by path.
pub(crate) fn to_changes(items: &[Item]) -> Vec<Change> {
    let mut out: Vec<Change> = items
        .iter()
        .filter_map(|it| {
            let (p, kind) = match it {
                Item::Entry { path, kind, .. } => (path, kind.clone()),
                Item::Whiteout { path, .. } | Item::Hidden { path } => (path, ChangeKind::Deleted),
                Item::Opaque { .. } => return None,
            };
            let mut abs = b"/".to_vec();
            abs.extend_from_slice(p);
            Some(Change { path: OsString::from_vec(abs), kind })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// The OCI layer tar of the items. Returns bytes written.
pub(crate) fn write_diff(items: &[Item], out: &mut dyn Write) -> Result<u64> {
    let mut em = Emitter::new(out);
    for it in items {
        match it {
            Item::Entry { path, abs, stat, .. } => em.file(path, abs, stat)?,
            Item::Whiteout { path, stat } => em.whiteout(path, stat.as_deref())?,
            Item::Opaque { path, stat } => em.opaque(path, stat)?,
            Item::Hidden { .. } => {}
        }
    }
    em.finish()
}

/// Bytes of regular-file content in the items (each inode once).
pub(crate) fn content_size(items: &[Item]) -> u64 {
    let mut seen = HashSet::new();
    items
        .iter()
        .filter_map(|it| match it {
            Item::Entry { stat, .. } if ftype(stat) == FileType::RegularFile => {
                seen.insert((stat.st_dev, stat.st_ino)).then_some(stat.st_size as u64)
            }
            _ => None,
        })
        .sum()
}

fn is_dir(st: &Stat) -> bool {
    ftype(st) == FileType::Directory
}

/// Items of an overlay upper directory over `lower` (the parent stack).
pub(crate) fn overlay_items(upper: &Path, lower: &Stack) -> Result<Vec<Item>> {
    let mut w = UpperWalk { upper, lower, out: Vec::new() };
    let root_st = lstat(upper)?.ok_or_else(|| crate::sys::io_err("stat", upper, rustix::io::Errno::NOENT))?;
    let root_opaque = get_xattr(upper, crate::apply::XATTR_OPAQUE)?.as_deref() == Some(b"y");
    if root_opaque {
        w.out.push(Item::Opaque { path: Vec::new(), stat: Box::new(root_st) });
    }
    w.dir(b"", root_opaque)?;
    Ok(w.out)
}

struct UpperWalk<'a> {
    upper: &'a Path,
    lower: &'a Stack,
    out: Vec<Item>,
}

impl UpperWalk<'_> {
    /// The lower stack's children of `rel` (when it is a directory there).
    fn lower_names(&self, rel: &[u8]) -> Result<BTreeSet<Vec<u8>>> {
        Ok(match self.lower.lookup(rel)? {
            Some(f) if f.is_dir() => self.lower.children(&f)?.into_keys().collect(),
            _ => BTreeSet::new(),
        })
    }

    fn dir(&mut self, rel: &[u8], hidden: bool) -> Result<()> {
        let dir = under(self.upper, rel);
        let names: BTreeSet<Vec<u8>> = read_dir_sorted(&dir)?.into_iter().collect();
        let lower_names = if hidden { self.lower_names(rel)? } else { BTreeSet::new() };
        let all: BTreeSet<&Vec<u8>> = names.iter().chain(lower_names.iter()).collect();
        for name in all {
            let p = join(rel, name);
            if !names.contains(name) {
                self.out.push(Item::Hidden { path: p });
                continue;
            }
            let abs = under(&dir, name);
            let Some(st) = lstat(&abs)? else { continue };
            if is_whiteout(&st) {
                if self.lower.lookup(&p)?.is_some() {
                    self.out.push(Item::Whiteout { path: p, stat: Some(Box::new(st)) });
                }
                continue;
            }
            let below = self.lower.lookup(&p)?;
            let kind = if below.is_some() { ChangeKind::Modified } else { ChangeKind::Added };
            self.out.push(Item::Entry { path: p.clone(), abs: abs.clone(), stat: Box::new(st), kind });
            if !is_dir(&st) {
                continue;
            }
            if get_xattr(&abs, "trusted.overlay.redirect")?.is_some() {
                // A renamed directory: its content is in the lower layers
                // (under its old name). Write it out in full.
                self.out.push(Item::Opaque { path: p.clone(), stat: Box::new(st) });
                let mut layers = vec![self.upper.to_path_buf()];
                layers.extend(self.lower.layers.iter().cloned());
                let full = Stack::overlay(layers);
                if let Some(f) = full.lookup(&p)? {
                    self.merged(&full, &p, &f)?;
                }
                continue;
            }
            let opaque = get_xattr(&abs, crate::apply::XATTR_OPAQUE)?.as_deref() == Some(b"y");
            // A new directory hides nothing: the kernel marks new directories
            // opaque as an optimisation, Docker writes no marker for them.
            if opaque && below.as_ref().is_some_and(Found::is_dir) {
                self.out.push(Item::Opaque { path: p.clone(), stat: Box::new(st) });
            }
            let child_hidden = hidden || opaque || below.as_ref().is_some_and(|b| !b.is_dir());
            self.dir(&p, child_hidden)?;
        }
        Ok(())
    }

    /// Every object of a merged directory, as new content.
    fn merged(&mut self, full: &Stack, rel: &[u8], dir: &Found) -> Result<()> {
        let children = full.children(dir)?;
        let lower_names = self.lower_names(rel)?;
        let all: BTreeSet<&Vec<u8>> = children.keys().chain(lower_names.iter()).collect();
        for name in all {
            let p = join(rel, name);
            let Some(c) = children.get(name) else {
                self.out.push(Item::Hidden { path: p });
                continue;
            };
            let kind = if self.lower.lookup(&p)?.is_some() { ChangeKind::Modified } else { ChangeKind::Added };
            let abs = full.path(c.layer, &c.phys);
            self.out.push(Item::Entry { path: p.clone(), abs, stat: Box::new(c.stat), kind });
            if c.is_dir() {
                self.merged(full, &p, c)?;
            }
        }
        Ok(())
    }
}

/// Items of a vfs layer tree `new` against its parent's tree `old`.
pub(crate) fn vfs_items(new: &Path, old: Option<&Path>) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    vfs_dir(new, old, b"", old.is_some(), &mut out)?;
    Ok(out)
}

/// Docker's `statDifferent`, plus xattrs and link targets.
fn differs(n: &Stat, o: &Stat, nabs: &Path, oabs: &Path) -> Result<bool> {
    if n.st_mode != o.st_mode || n.st_uid != o.st_uid || n.st_gid != o.st_gid || n.st_rdev != o.st_rdev {
        return Ok(true);
    }
    if !is_dir(n) && (n.st_mtime != o.st_mtime || n.st_mtime_nsec != o.st_mtime_nsec || n.st_size != o.st_size) {
        return Ok(true);
    }
    if ftype(n) == FileType::Symlink
        && std::fs::read_link(nabs).ctx("read link", nabs)? != std::fs::read_link(oabs).ctx("read link", oabs)?
    {
        return Ok(true);
    }
    Ok(public_xattrs(nabs)? != public_xattrs(oabs)?)
}

fn vfs_dir(new: &Path, old: Option<&Path>, rel: &[u8], old_has_dir: bool, out: &mut Vec<Item>) -> Result<()> {
    let ndir = under(new, rel);
    let new_names: BTreeSet<Vec<u8>> = read_dir_sorted(&ndir)?.into_iter().collect();
    let old_dir = old.map(|o| under(o, rel));
    let old_names: BTreeSet<Vec<u8>> = match (&old_dir, old_has_dir) {
        (Some(d), true) => read_dir_sorted(d)?.into_iter().collect(),
        _ => BTreeSet::new(),
    };
    let all: BTreeSet<&Vec<u8>> = new_names.iter().chain(old_names.iter()).collect();
    for name in all {
        let p = join(rel, name);
        let nabs = under(&ndir, name);
        match (new_names.contains(name), old_names.contains(name)) {
            (true, false) => {
                let Some(st) = lstat(&nabs)? else { continue };
                out.push(Item::Entry { path: p.clone(), abs: nabs, stat: Box::new(st), kind: ChangeKind::Added });
                if is_dir(&st) {
                    vfs_dir(new, old, &p, false, out)?;
                }
            }
            (false, _) => out.push(Item::Whiteout { path: p, stat: None }),
            (true, true) => {
                let oabs = under(old_dir.as_ref().expect("old names come from it"), name);
                let (Some(nst), Some(ost)) = (lstat(&nabs)?, lstat(&oabs)?) else { continue };
                let changed = differs(&nst, &ost, &nabs, &oabs)?;
                let entry = |kind| Item::Entry { path: p.clone(), abs: nabs.clone(), stat: Box::new(nst), kind };
                if is_dir(&nst) {
                    let mark = out.len();
                    if changed {
                        out.push(entry(ChangeKind::Modified));
                    }
                    vfs_dir(new, old, &p, is_dir(&ost), out)?;
                    if !changed && out.len() > mark {
                        out.insert(mark, entry(ChangeKind::Modified));
                    }
                } else if changed {
                    out.push(entry(ChangeKind::Modified));
                }
            }
        }
    }
    Ok(())
}
