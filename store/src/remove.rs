//! Removing images with Docker's `rmi` semantics: untag by reference, delete
//! by ID, conflicts for images used by containers, referenced in several
//! repositories, or with child images; untagged parents pruned afterwards.

use crate::containers::Containers;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::Store;

/// One line of `rmi` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// `Untagged: REF`
    Untagged(Reference),
    /// `Deleted: ID`
    Deleted(Digest),
}

/// Options of a removal.
#[derive(Clone, Copy, Debug, Default)]
pub struct RemoveOptions {
    /// `-f`
    pub force: bool,
    /// `--no-prune`
    pub no_prune: bool,
}

/// Remove what `name` designates.
///
/// Decisions are taken under the publish lock. Deletion frees before it
/// records, so that it works on a full disk: the image's metadata is
/// unlinked (the image is gone for every reader), its unused layers are
/// taken away and freed (outside the lock), and only then is the
/// reference table rewritten; references to an image that is gone are
/// ignored by every reader meanwhile.
pub fn remove_image(store: &Store, name: &str, opts: RemoveOptions) -> Result<Vec<Removed>> {
    let mut doomed = Vec::new();
    let result = {
        let _p = store.publish()?;
        remove_locked(store, name, opts, &mut doomed)
    };
    store.free_layers(doomed)?;
    let (out, unsaved) = result?;
    if unsaved {
        // The table could not be rewritten before the space was freed.
        let _p = store.publish()?;
        store.repositories()?.save()?;
    }
    Ok(out)
}

/// [`remove_image`] under the publish lock: the lines to print and
/// whether the reference table still needs to be written.
fn remove_locked(
    store: &Store,
    name: &str,
    opts: RemoveOptions,
    doomed: &mut Vec<(crate::Layer, crate::layers::Gone)>,
) -> Result<(Vec<Removed>, bool)> {
    let id = store.resolve(name)?;
    let mut repos = store.repositories()?;
    let refs = repos.of(&id);
    let containers: Vec<_> = Containers::new(store.root()).list()?.into_iter().filter(|c| c.image == id).collect();
    let children: Vec<Digest> =
        store.images()?.into_iter().filter(|i| i.meta.parent.as_ref() == Some(&id)).map(|i| i.id).collect();
    let mut out = Vec::new();

    // By reference: untag it, and delete the image if that was its last name.
    let by_ref = Reference::parse_tagged(name).ok().filter(|r| repos.get(r) == Some(&id));
    let read_only = match &by_ref {
        Some(r) => !repos.is_own(r),
        None => !store.imagedb().is_own(&id),
    };
    if read_only {
        return Err(Error::Conflict(format!(
            "conflict: unable to remove {name}: it is in a read-only image store ({})",
            store.additional().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )));
    }
    if let Some(r) = by_ref {
        if refs.iter().filter(|x| x.tag.is_some()).count() == 1 && !opts.force {
            if let Some(c) = containers.first() {
                return Err(Error::Conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                    &c.id[..12],
                    id.short()
                )));
            }
        }
        repos.remove(&r);
        out.push(Removed::Untagged(r.clone()));
        // The repository's digest references go with its last tag (Docker).
        let remaining = repos.of(&id);
        if r.tag.is_some() && !remaining.iter().any(|x| x.repo == r.repo && x.tag.is_some()) {
            for d in remaining.iter().filter(|x| x.repo == r.repo && x.digest.is_some()) {
                repos.remove(d);
                out.push(Removed::Untagged(d.clone()));
            }
        }
        let last = repos.of(&id).is_empty();
        if last && children.is_empty() && (containers.is_empty() || opts.force) {
            delete(store, &id, opts, &mut out)?;
            doomed.extend(store.unlist_unused_layers()?);
            return Ok((out, save_unless_full(&repos)?));
        }
        repos.save()?;
        return Ok((out, false));
    }

    // By ID.
    if !children.is_empty() {
        return Err(Error::Conflict(format!(
            "conflict: unable to delete {} (cannot be forced) - image has dependent child images",
            id.short()
        )));
    }
    if !opts.force {
        let repos_named: std::collections::BTreeSet<&str> = refs.iter().map(|r| r.repo.as_str()).collect();
        if repos_named.len() > 1 {
            return Err(Error::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                id.short()
            )));
        }
        if let Some(c) = containers.first() {
            return Err(Error::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                id.short(),
                &c.id[..12]
            )));
        }
    }
    for r in refs {
        repos.remove(&r);
        out.push(Removed::Untagged(r));
    }
    delete(store, &id, opts, &mut out)?;
    doomed.extend(store.unlist_unused_layers()?);
    Ok((out, save_unless_full(&repos)?))
}

/// Write the table; true if the disk is full (write it again once space
/// is freed), an error for any other failure.
fn save_unless_full(repos: &crate::repositories::Repositories) -> Result<bool> {
    match repos.save() {
        Ok(()) => Ok(false),
        Err(Error::Io { source, .. })
            if [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT]
                .iter()
                .any(|e| source.raw_os_error() == Some(e.raw_os_error())) =>
        {
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Delete image `id` (no names left), then untagged childless parents unless
/// `no_prune`; the caller then collects the layers nothing uses.
fn delete(store: &Store, id: &Digest, opts: RemoveOptions, out: &mut Vec<Removed>) -> Result<()> {
    let mut next = Some(id.clone());
    while let Some(cur) = next.take() {
        let img = store.image(&cur)?;
        store.imagedb().remove(&cur)?;
        store.blobs().remove(&cur)?;
        out.push(Removed::Deleted(cur.clone()));
        if opts.no_prune {
            break;
        }
        if let Some(p) = img.meta.parent {
            let named = !store.repositories()?.of(&p).is_empty();
            let has_children = store.images()?.iter().any(|i| i.meta.parent.as_ref() == Some(&p));
            let used = Containers::new(store.root()).list()?.iter().any(|c| c.image == p);
            if store.imagedb().exists(&p) && !named && !has_children && !used {
                next = Some(p);
            }
        }
    }
    Ok(())
}
