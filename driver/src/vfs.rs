//! The `vfs` driver: every layer is a full copy of its parent's tree.
//!
//! Layout of layer `id` under `<root>/vfs/`:
//!
//! ```text
//! <id>/parent   the parent's id (empty for a base layer)
//! <id>/root/    the layer's complete tree
//! <id>/lock, <id>/mounts   as for the overlay drivers
//! ```
//!
//! `mount` only counts references and returns `root/`. Creating a layer
//! copies the parent's tree keeping owners, modes, times, xattrs, hard
//! links, devices and fifos; `apply_diff` applies deletions for real;
//! `changes`/`diff` compare the layer's tree with its parent's.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

use crate::apply::{self, Format};
use crate::changes;
use crate::home::Home;
use crate::stack::Stack;
use crate::sys::{ftype, io_err, lset_xattr, lstat, public_xattrs, read_dir_sorted, times_of, under, Ctx};
use crate::{refcount, Applied, Change, Driver, Result};

pub(crate) struct VfsDriver {
    home: Home,
}

impl VfsDriver {
    pub(crate) fn open(home: Home) -> VfsDriver {
        VfsDriver { home }
    }

    fn root_of(&self, id: &str) -> Result<PathBuf> {
        Ok(self.home.existing(id)?.join("root"))
    }

    fn items(&self, id: &str) -> Result<Vec<changes::Item>> {
        let new = self.root_of(id)?;
        let old = match self.home.parent(id)? {
            Some(p) => Some(self.root_of(&p)?),
            None => None,
        };
        changes::vfs_items(&new, old.as_deref())
    }
}

impl Driver for VfsDriver {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn create(&self, id: &str, parent: Option<&str>) -> Result<()> {
        let src = match parent {
            Some(p) => Some(self.root_of(p)?),
            None => None,
        };
        self.home.create(id, parent, |tmp| {
            let dst = tmp.join("root");
            match &src {
                Some(s) => copy_tree(s, &dst),
                None => {
                    std::fs::create_dir(&dst).ctx("create", &dst)?;
                    rustix::fs::chmod(&dst, Mode::from_raw_mode(0o755)).ctx("chmod", &dst)
                }
            }
        })
    }

    fn remove(&self, id: &str) -> Result<()> {
        self.home.remove(id)
    }

    fn exists(&self, id: &str) -> bool {
        self.home.exists(id)
    }

    fn list(&self) -> Result<Vec<String>> {
        self.home.ids()
    }

    fn abandon(&self, id: &str) -> Result<()> {
        let _ = self.remove(id);
        self.home.abandon(id)
    }

    fn parent(&self, id: &str) -> Result<Option<String>> {
        self.home.parent(id)
    }

    fn mount(&self, id: &str) -> Result<PathBuf> {
        let dir = self.home.existing(id)?;
        let _l = refcount::lock(&dir)?;
        let n = refcount::read(&dir)?;
        refcount::write(&dir, n + 1)?;
        Ok(dir.join("root"))
    }

    fn unmount(&self, id: &str) -> Result<()> {
        let dir = self.home.existing(id)?;
        let _l = refcount::lock(&dir)?;
        let n = refcount::read(&dir)?;
        refcount::write(&dir, n.saturating_sub(1))
    }

    fn is_mounted(&self, id: &str) -> Result<bool> {
        Ok(self.mount_count(id)? > 0)
    }

    fn mount_count(&self, id: &str) -> Result<u64> {
        let dir = self.home.existing(id)?;
        let _l = refcount::lock(&dir)?;
        refcount::read(&dir)
    }

    fn apply_diff(&self, id: &str, tar: &mut dyn Read, split: &mut dyn Write) -> Result<Applied> {
        apply::apply(&self.root_of(id)?, Format::Vfs, tar, split)
    }

    fn assemble(&self, id: &str, split: &mut dyn Read, out: &mut dyn Write) -> Result<u64> {
        let root = self.root_of(id)?;
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .ctx("open layer", &root)?;
        crate::tarsplit::assemble(&fd, split, out)
    }

    fn diff(&self, id: &str, out: &mut dyn Write) -> Result<u64> {
        changes::write_diff(&self.items(id)?, out)
    }

    fn changes(&self, id: &str) -> Result<Vec<Change>> {
        Ok(changes::to_changes(&self.items(id)?))
    }

    fn diff_size(&self, id: &str) -> Result<u64> {
        Ok(changes::content_size(&self.items(id)?))
    }

    fn export(&self, id: &str, out: &mut dyn Write) -> Result<u64> {
        crate::overlay::export_stack(&Stack::plain(self.root_of(id)?), out)
    }

    fn upper_dir(&self, id: &str) -> Result<Option<PathBuf>> {
        Ok(Some(self.root_of(id)?))
    }

    /// The layers are full copies, so the hidden layer's own changes (what
    /// it added or modified relative to its parent) are taken out of the
    /// export where `id` left them as they were: added objects are left
    /// out, modified ones are exported as the parent has them.
    fn export_hiding(&self, id: &str, hidden: &str, out: &mut dyn Write) -> Result<u64> {
        use std::collections::{HashMap, HashSet};
        use std::os::unix::ffi::OsStrExt;
        let root = self.root_of(id)?;
        let hidden_root = self.root_of(hidden)?;
        let below = match self.home.parent(hidden)? {
            Some(p) => Some(self.root_of(&p)?),
            None => None,
        };
        let by_hidden: HashMap<Vec<u8>, crate::ChangeKind> =
            changes::to_changes(&changes::vfs_items(&hidden_root, below.as_deref())?)
                .into_iter()
                .map(|c| (c.path.as_bytes().strip_prefix(b"/").unwrap_or(c.path.as_bytes()).to_vec(), c.kind))
                .collect();
        let by_id: HashSet<Vec<u8>> = changes::to_changes(&changes::vfs_items(&root, Some(&hidden_root))?)
            .into_iter()
            .map(|c| c.path.as_bytes().strip_prefix(b"/").unwrap_or(c.path.as_bytes()).to_vec())
            .collect();
        let stack = Stack::plain(root);
        let mut em = crate::emit::Emitter::new(out);
        em.tw.names = Some(crate::overlay::owner_names(&stack)?);
        if let Some(top) = stack.root()? {
            stack.walk(b"", &top, &mut |path, f| match by_hidden.get(path) {
                Some(crate::ChangeKind::Added) if !by_id.contains(path) => Ok(()),
                Some(crate::ChangeKind::Modified) if !by_id.contains(path) => match &below {
                    Some(b) => {
                        let p = b.join(std::ffi::OsStr::from_bytes(path));
                        match crate::sys::lstat(&p)? {
                            Some(st) => em.file(path, &p, &st),
                            None => Ok(()),
                        }
                    }
                    None => Ok(()),
                },
                _ => em.file(path, &stack.path(f.layer, &f.phys), &f.stat),
            })?;
        }
        em.finish()
    }

    fn status(&self) -> Vec<(String, String)> {
        vec![
            ("Storage Driver".to_string(), "vfs".to_string()),
            ("Root Dir".to_string(), self.home.dir.display().to_string()),
            ("Backing Filesystem".to_string(), crate::backing_fs(&self.home.dir)),
            ("Layers".to_string(), self.home.count().to_string()),
        ]
    }
}

/// Copy the tree `src` to `dst` (which must not exist), keeping owners,
/// modes, times, xattrs, hard links (within the tree), devices and fifos.
/// Symlinks are copied, never followed.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let mut links = HashMap::new();
    let st = lstat(src)?.ok_or_else(|| io_err("stat", src, rustix::io::Errno::NOENT))?;
    copy_dir(src, dst, &st, &mut links)
}

fn copy_dir(src: &Path, dst: &Path, st: &Stat, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    std::fs::create_dir(dst).ctx("create directory", dst)?;
    for name in read_dir_sorted(src)? {
        let s = under(src, &name);
        let d = under(dst, &name);
        let Some(cst) = lstat(&s)? else { continue };
        copy_one(&s, &d, &cst, links)?;
    }
    // After the children, which change the directory's times.
    set_meta(src, dst, st)
}

fn copy_one(s: &Path, d: &Path, st: &Stat, links: &mut HashMap<(u64, u64), PathBuf>) -> Result<()> {
    let ft = ftype(st);
    if ft == FileType::Directory {
        return copy_dir(s, d, st, links);
    }
    if st.st_nlink > 1 {
        if let Some(first) = links.get(&(st.st_dev, st.st_ino)) {
            return std::fs::hard_link(first, d).ctx("link", d);
        }
        links.insert((st.st_dev, st.st_ino), d.to_path_buf());
    }
    match ft {
        FileType::RegularFile => {
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(OFlags::NOFOLLOW.bits() as i32)
                .open(s)
                .ctx("open", s)?;
            let mut output = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(OFlags::NOFOLLOW.bits() as i32)
                .open(d)
                .ctx("create", d)?;
            // copy_file_range (reflinks where the filesystem can) under the hood.
            std::io::copy(&mut input, &mut output).ctx("copy", d)?;
        }
        FileType::Symlink => {
            let t = std::fs::read_link(s).ctx("read link", s)?;
            std::os::unix::fs::symlink(&t, d).ctx("symlink", d)?;
        }
        FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo | FileType::Socket => {
            rustix::fs::mknodat(rustix::fs::CWD, d, ft, Mode::from_raw_mode(0o600), st.st_rdev).ctx("mknod", d)?;
        }
        _ => return Ok(()),
    }
    set_meta(s, d, st)
}

/// Owner, mode, xattrs (copied from `src`) and times of `d`, never
/// following a symlink at `d`.
fn set_meta(src: &Path, d: &Path, st: &Stat) -> Result<()> {
    let is_link = ftype(st) == FileType::Symlink;
    rustix::fs::chownat(
        rustix::fs::CWD,
        d,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .ctx("chown", d)?;
    if !is_link {
        // After chown, which clears set-id bits.
        rustix::fs::chmod(d, Mode::from_raw_mode(st.st_mode & 0o7777)).ctx("chmod", d)?;
    }
    for (k, v) in public_xattrs(src)? {
        match lset_xattr(d, &k, &v) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) | Err(rustix::io::Errno::NOTSUP) if is_link => {}
            Err(e) => return Err(io_err("set xattr", d, e)),
        }
    }
    rustix::fs::utimensat(rustix::fs::CWD, d, &times_of(st), AtFlags::SYMLINK_NOFOLLOW).ctx("set times", d)
}
