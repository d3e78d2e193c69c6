//! A read-only merged view of a stack of layer directories, computed from the
//! directories themselves (no mount): what `export` walks, and what the
//! overlay drivers' `changes`/`diff` consult to know what existed below.
//!
//! In overlay format (kernel on-disk format) the view honours whiteouts
//! (character device 0/0), opaque directories (`trusted.overlay.opaque=y`)
//! and directory redirects (`trusted.overlay.redirect`, absolute from the
//! root of every lower layer, or a bare name relative to the parent), as the
//! kernel and strata-fs do. In plain format (vfs) a single directory is
//! shown as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Stat};

use crate::sys::{ftype, get_xattr, is_whiteout, join, lstat, split, under};
use crate::Result;

/// One place a merged directory's entries come from.
#[derive(Clone, Debug)]
pub(crate) struct Src {
    /// Index of the layer (0 = top).
    pub layer: usize,
    /// Path of the directory inside that layer.
    pub phys: Vec<u8>,
}

/// A merged object: where its topmost copy is, and (for a directory) every
/// layer directory merged into it, top first.
#[derive(Clone, Debug)]
pub(crate) struct Found {
    pub layer: usize,
    pub phys: Vec<u8>,
    pub stat: Stat,
    pub sources: Vec<Src>,
}

impl Found {
    pub(crate) fn is_dir(&self) -> bool {
        ftype(&self.stat) == FileType::Directory
    }
}

/// Layer directories, top first.
pub(crate) struct Stack {
    pub layers: Vec<PathBuf>,
    overlay: bool,
}

impl Stack {
    /// A stack of overlay-format layer directories (top first).
    pub(crate) fn overlay(layers: Vec<PathBuf>) -> Stack {
        Stack { layers, overlay: true }
    }

    /// A single plain directory (vfs).
    pub(crate) fn plain(dir: PathBuf) -> Stack {
        Stack { layers: vec![dir], overlay: false }
    }

    /// Absolute path of `phys` in layer `layer`.
    pub(crate) fn path(&self, layer: usize, phys: &[u8]) -> PathBuf {
        under(&self.layers[layer], phys)
    }

    fn opaque(&self, p: &Path) -> Result<bool> {
        Ok(self.overlay && get_xattr(p, crate::apply::XATTR_OPAQUE)?.as_deref() == Some(b"y"))
    }

    fn redirect(&self, p: &Path) -> Result<Option<Vec<u8>>> {
        if !self.overlay {
            return Ok(None);
        }
        get_xattr(p, "trusted.overlay.redirect")
    }

    /// The merged root (`None` for an empty stack).
    pub(crate) fn root(&self) -> Result<Option<Found>> {
        let mut sources = Vec::new();
        let mut top = None;
        for (i, l) in self.layers.iter().enumerate() {
            let Some(st) = lstat(l)? else { continue };
            if top.is_none() {
                top = Some((i, st));
            }
            sources.push(Src { layer: i, phys: Vec::new() });
            if self.opaque(l)? {
                break;
            }
        }
        Ok(top.map(|(layer, stat)| Found { layer, phys: Vec::new(), stat, sources }))
    }

    /// The child `name` of the merged directory whose sources are `parent`.
    pub(crate) fn child(&self, parent: &[Src], name: &[u8]) -> Result<Option<Found>> {
        let Some(first) = parent.first() else { return Ok(None) };
        let last = parent.last().expect("non-empty").layer;
        let mut found: Option<Found> = None;
        let mut redirect: Option<Vec<u8>> = None;
        for j in first.layer..self.layers.len() {
            let path = match &redirect {
                Some(r) => r.clone(),
                None => match parent.iter().find(|s| s.layer == j) {
                    Some(s) => join(&s.phys, name),
                    None if j > last => break,
                    None => continue,
                },
            };
            let abs = self.path(j, &path);
            let Some(st) = lstat(&abs)? else { continue };
            if self.overlay && is_whiteout(&st) {
                break;
            }
            let is_dir = ftype(&st) == FileType::Directory;
            match &mut found {
                None => {
                    found = Some(Found { layer: j, phys: path.clone(), stat: st, sources: Vec::new() });
                    if !is_dir {
                        break;
                    }
                }
                Some(_) if !is_dir => break,
                Some(_) => {}
            }
            let f = found.as_mut().expect("set above");
            f.sources.push(Src { layer: j, phys: path.clone() });
            if self.opaque(&abs)? {
                break;
            }
            if let Some(r) = self.redirect(&abs)? {
                redirect = Some(resolve_redirect(&path, &r));
            }
        }
        Ok(found)
    }

    /// Look a relative path up from the root.
    pub(crate) fn lookup(&self, path: &[u8]) -> Result<Option<Found>> {
        let Some(mut cur) = self.root()? else { return Ok(None) };
        if path.is_empty() {
            return Ok(Some(cur));
        }
        for comp in path.split(|&b| b == b'/') {
            if !cur.is_dir() {
                return Ok(None);
            }
            match self.child(&cur.sources, comp)? {
                Some(f) => cur = f,
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The merged children of a directory, sorted by name.
    pub(crate) fn children(&self, dir: &Found) -> Result<BTreeMap<Vec<u8>, Found>> {
        let mut names: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        let mut hidden: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        for s in &dir.sources {
            let p = self.path(s.layer, &s.phys);
            for n in crate::sys::read_dir_sorted(&p)? {
                if names.contains_key(&n) || hidden.contains(&n) {
                    continue;
                }
                if self.overlay {
                    let st = lstat(&under(&p, &n))?;
                    if st.as_ref().is_some_and(is_whiteout) {
                        hidden.insert(n);
                        continue;
                    }
                }
                names.insert(n, ());
            }
        }
        let mut out = BTreeMap::new();
        for (n, ()) in names {
            if let Some(f) = self.child(&dir.sources, &n)? {
                out.insert(n, f);
            }
        }
        Ok(out)
    }

    /// Visit every merged object below `dir` (pre-order, children sorted by
    /// name), with its path relative to the stack root.
    pub(crate) fn walk(
        &self,
        dir_path: &[u8],
        dir: &Found,
        f: &mut dyn FnMut(&[u8], &Found) -> Result<()>,
    ) -> Result<()> {
        for (name, child) in self.children(dir)? {
            let p = join(dir_path, &name);
            f(&p, &child)?;
            if child.is_dir() {
                self.walk(&p, &child, f)?;
            }
        }
        Ok(())
    }
}

/// Where a redirect of the directory at `path` points (absolute values are
/// from the layer root; a bare name replaces the last component).
fn resolve_redirect(path: &[u8], r: &[u8]) -> Vec<u8> {
    match r.strip_prefix(b"/") {
        Some(abs) => abs.to_vec(),
        None => join(split(path).0, r),
    }
}
