//! The `overlay` (kernel overlayfs) and `fuse-overlay` (strata-fs) drivers.
//!
//! Layout of layer `id` under `<root>/<driver>/`:
//!
//! ```text
//! <id>/parent     the parent's id (empty for a base layer)
//! <id>/diff/      the layer's own files, kernel overlay format
//! <id>/work/      overlay work directory (same filesystem as diff/)
//! <id>/merged/    mount point
//! <id>/empty/     empty lower for a base layer (the kernel needs one lower)
//! <id>/lock       flock'ed around mount decisions
//! <id>/mounts     mount reference count
//! ```
//!
//! A mount stacks the ancestors' `diff/` (top first) as lowers under this
//! layer's `diff/`. `changes`/`diff` read `diff/` alone and look paths up
//! in the ancestors' stack; `export` merges the stack without mounting.

use std::io::{Read, Write};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};

use crate::apply::{self, Format};
use crate::changes::{self, Item};
use crate::emit::Emitter;
use crate::home::Home;
use crate::mount::{Mounter, Spec};
use crate::stack::Stack;
use crate::sys::Ctx;
use crate::{mountinfo, refcount, Applied, Change, Driver, Error, Result};

/// An overlay-format driver.
pub(crate) struct OverlayDriver {
    home: Home,
    mounter: Mounter,
    name: &'static str,
}

impl OverlayDriver {
    pub(crate) fn open(home: Home, name: &'static str, mounter: Mounter) -> OverlayDriver {
        OverlayDriver { home, mounter, name }
    }

    fn diff_dirs(&self, ids: &[String]) -> Result<Vec<PathBuf>> {
        ids.iter().map(|i| Ok(self.home.existing(i)?.join("diff"))).collect()
    }

    /// The lower stack of `id` (its ancestors' diff dirs, top first).
    fn lowers(&self, id: &str) -> Result<Vec<PathBuf>> {
        let chain = self.home.chain(id)?;
        self.diff_dirs(&chain[1..])
    }

    fn items(&self, id: &str) -> Result<Vec<Item>> {
        let dir = self.home.existing(id)?;
        let lower = Stack::overlay(self.lowers(id)?);
        changes::overlay_items(&dir.join("diff"), &lower)
    }
}

impl Driver for OverlayDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn create(&self, id: &str, parent: Option<&str>) -> Result<()> {
        self.home.create(id, parent, |tmp| {
            for d in ["diff", "work", "merged", "empty"] {
                let p = tmp.join(d);
                std::fs::create_dir(&p).ctx("create", &p)?;
                rustix::fs::chmod(&p, Mode::from_raw_mode(0o755)).ctx("chmod", &p)?;
            }
            Ok(())
        })
    }

    fn remove(&self, id: &str) -> Result<()> {
        let dir = self.home.path(id)?;
        if !dir.exists() {
            return Ok(());
        }
        {
            let _l = refcount::lock(&dir)?;
            mountinfo::detach_all(&dir.join("merged"))?;
            refcount::write(&dir, 0)?;
        }
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
        let merged = dir.join("merged");
        let _l = refcount::lock(&dir)?;
        let count = refcount::read(&dir)?;
        if mountinfo::is_live(&merged)? {
            refcount::write(&dir, count + 1)?;
            return Ok(merged);
        }
        // Stale (daemon gone) or not mounted: clean up and mount afresh.
        mountinfo::detach_all(&merged)?;
        let mut lowers = self.lowers(id)?;
        if lowers.is_empty() {
            lowers.push(dir.join("empty"));
        }
        let (upper, work) = (dir.join("diff"), dir.join("work"));
        self.mounter.mount(&Spec { id, lowers, upper: &upper, work: &work, target: &merged })?;
        if !mountinfo::is_live(&merged)? {
            return Err(Error::Mount { id: id.into(), why: "the mount does not answer".into() });
        }
        // References taken on a mount that died went with it: a fresh mount
        // starts counting again.
        refcount::write(&dir, 1)?;
        Ok(merged)
    }

    fn unmount(&self, id: &str) -> Result<()> {
        let dir = self.home.existing(id)?;
        let merged = dir.join("merged");
        let _l = refcount::lock(&dir)?;
        let count = refcount::read(&dir)?;
        if count > 1 {
            return refcount::write(&dir, count - 1);
        }
        if !mountinfo::mounts_at(&merged)?.is_empty() {
            mountinfo::unmount(&merged)?;
            mountinfo::detach_all(&merged)?;
        }
        refcount::write(&dir, 0)
    }

    fn is_mounted(&self, id: &str) -> Result<bool> {
        let dir = self.home.existing(id)?;
        mountinfo::is_live(&dir.join("merged"))
    }

    fn mount_count(&self, id: &str) -> Result<u64> {
        let dir = self.home.existing(id)?;
        let _l = refcount::lock(&dir)?;
        refcount::read(&dir)
    }

    fn apply_diff(&self, id: &str, tar: &mut dyn Read, split: &mut dyn Write) -> Result<Applied> {
        let diff = self.home.existing(id)?.join("diff");
        let r = apply::apply(&diff, Format::Overlay, tar, split);
        if r.is_err() {
            // Leave nothing a mount or diff would show.
            if let Ok(fd) = rustix::fs::open(&diff, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            {
                let _ = crate::sys::empty_dir_at(&fd);
            }
        }
        r
    }

    fn assemble(&self, id: &str, split: &mut dyn Read, out: &mut dyn Write) -> Result<u64> {
        let diff = self.home.existing(id)?.join("diff");
        let fd = rustix::fs::open(&diff, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .ctx("open layer", &diff)?;
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
        let chain = self.home.chain(id)?;
        let stack = Stack::overlay(self.diff_dirs(&chain)?);
        export_stack(&stack, out)
    }

    fn upper_dir(&self, id: &str) -> Result<Option<PathBuf>> {
        Ok(Some(self.home.existing(id)?.join("diff")))
    }

    fn export_hiding(&self, id: &str, hidden: &str, out: &mut dyn Write) -> Result<u64> {
        let chain: Vec<String> = self.home.chain(id)?.into_iter().filter(|l| l != hidden).collect();
        let stack = Stack::overlay(self.diff_dirs(&chain)?);
        export_stack(&stack, out)
    }

    fn status(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("Storage Driver".to_string(), self.name.to_string()),
            ("Root Dir".to_string(), self.home.dir.display().to_string()),
            ("Backing Filesystem".to_string(), crate::backing_fs(&self.home.dir)),
            ("Supports d_type".to_string(), "true".to_string()),
            ("Layers".to_string(), self.home.count().to_string()),
        ];
        if self.mounter == Mounter::Fuse {
            let bin =
                crate::mount::fuse::find_binary().map_or_else(|| "not found".to_string(), |p| p.display().to_string());
            v.push(("Mount Program".to_string(), bin));
        }
        v
    }
}

/// Write the merged tree of `stack` as a tar (root excluded).
pub(crate) fn export_stack(stack: &Stack, out: &mut dyn Write) -> Result<u64> {
    let mut em = Emitter::new(out);
    em.tw.names = Some(owner_names(stack)?);
    if let Some(root) = stack.root()? {
        stack.walk(b"", &root, &mut |path, f| em.file(path, &stack.path(f.layer, &f.phys), &f.stat))?;
    }
    em.finish()
}

/// The owner names an export writes: those of the tree's own
/// `/etc/passwd` and `/etc/group` (regular files only), as `docker export`
/// names them (its tar runs chrooted in the container's tree).
pub(crate) fn owner_names(stack: &Stack) -> Result<crate::tarfmt::OwnerNames> {
    let read = |path: &[u8]| -> Result<Vec<u8>> {
        let Some(f) = stack.lookup(path)? else { return Ok(Vec::new()) };
        if crate::sys::ftype(&f.stat) != rustix::fs::FileType::RegularFile {
            return Ok(Vec::new());
        }
        let p = stack.path(f.layer, &f.phys);
        let mut text = Vec::new();
        let file = std::fs::File::open(&p).map_err(|e| crate::sys::io_err("open", &p, e))?;
        std::io::Read::read_to_end(&mut std::io::Read::take(file, 1 << 20), &mut text)
            .map_err(|e| crate::sys::io_err("read", &p, e))?;
        Ok(text)
    };
    Ok(crate::tarfmt::OwnerNames::parse(&read(b"etc/passwd")?, &read(b"etc/group")?))
}
