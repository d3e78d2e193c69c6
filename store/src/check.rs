//! `system check`: verify the whole store and, on request, repair it.
//!
//! What is checked: every image (metadata, config bytes against the ID,
//! every layer of its chain present), every reference (its image exists),
//! every layer (metadata, parent, driver content, and unless `quick` its
//! exact tar against the diff-id), every container (its record, its driver
//! layers), every driver layer (something refers to it), every config
//! blob (an image uses it), and mount records (a count with no live mount).
//!
//! Repairs remove what is corrupt or orphaned, never anything a live
//! process holds: images that cannot be read whole (with their
//! references), references to missing images, layers nobody uses or whose
//! content is damaged, driver layers nothing refers to, containers whose
//! layer is gone, config blobs of no image, stale mount records.

use std::collections::BTreeSet;
use std::fmt;

use crate::containers::Containers;
use crate::digest::Digest;
use crate::error::Result;
use crate::reference::Reference;
use crate::repositories::Repositories;
use crate::Store;

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What it is about (`image sha256:…`, `layer sha256:…`, …).
    pub subject: String,
    /// What is wrong.
    pub problem: String,
    repair: Repair,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.problem)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Repair {
    Image(Digest),
    Reference(Reference),
    /// A damaged layer (and the images that use it).
    Layer(Digest),
    /// A layer nothing uses (collected by GC, which decides afresh).
    UnusedLayer(Digest),
    DriverLayer(String),
    Container(String),
    Blob(Digest),
    MountRecord(String),
}

/// Check the store (see the module doc); an empty list means it is clean.
pub fn check(store: &Store, quick: bool) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let mut push = |subject: String, problem: String, repair: Repair| out.push(Finding { subject, problem, repair });
    let layers = store.layers();

    // Images.
    let mut images = Vec::new();
    for id in store.imagedb().list()? {
        let img = match store.image(&id) {
            Ok(i) => i,
            Err(e) => {
                push(format!("image {id}"), format!("cannot be read: {e}"), Repair::Image(id));
                continue;
            }
        };
        if let Some(missing) = img.chain_ids().into_iter().find(|c| !layers.dir_of(c).is_dir()) {
            push(format!("image {id}"), format!("layer {missing} is missing"), Repair::Image(id));
            continue;
        }
        images.push(img);
    }
    let image_ids: BTreeSet<Digest> = images.iter().map(|i| i.id.clone()).collect();

    // References (the table as written, dangling entries included).
    for (r, id) in Repositories::load(store.root())?.all() {
        if !image_ids.contains(&id) {
            push(format!("reference {r}"), format!("points to image {id}, which is not stored"), Repair::Reference(r));
        }
    }

    // Containers.
    let table = Containers::new(store.root());
    let containers = table.list()?;
    for c in &containers {
        if !store.driver().exists(&c.layer) {
            push(
                format!("container {}", &c.id[..12.min(c.id.len())]),
                format!("its layer {} is missing", c.layer),
                Repair::Container(c.id.clone()),
            );
        }
    }

    // Layers.
    let mut used: BTreeSet<Digest> = images.iter().flat_map(|i| i.chain_ids()).collect();
    for c in &containers {
        if let Some(top) = &c.image_top_layer {
            if let Ok(chain) = layers.chain(top) {
                used.extend(chain.into_iter().map(|l| l.chain_id));
            }
        }
    }
    let listed = layers.list()?;
    let mut parents = BTreeSet::new();
    for chain in &listed {
        let l = match layers.get(chain) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                push(format!("layer {chain}"), format!("metadata cannot be read: {e}"), Repair::Layer(chain.clone()));
                continue;
            }
        };
        if let Some(p) = &l.parent {
            parents.insert(p.clone());
            if !layers.dir_of(p).is_dir() {
                push(format!("layer {chain}"), format!("its parent {p} is missing"), Repair::Layer(chain.clone()));
                continue;
            }
        }
        if !store.driver().exists(&l.cache_id) {
            push(
                format!("layer {chain}"),
                format!("its content ({}) is missing", l.cache_id),
                Repair::Layer(chain.clone()),
            );
            continue;
        }
        if !quick {
            if let Err(e) = layers.tar(&l, &mut std::io::sink()) {
                push(format!("layer {chain}"), format!("content does not match: {e}"), Repair::Layer(chain.clone()));
            }
        }
    }
    for chain in &listed {
        if !used.contains(chain) && !parents.contains(chain) {
            push(
                format!("layer {chain}"),
                "is used by no image or container".into(),
                Repair::UnusedLayer(chain.clone()),
            );
        }
    }

    // Driver layers and mount records.
    let refs = driver_refs(store)?;
    for id in store.driver().list()? {
        if !refs.contains(&id) && !id.starts_with("b-") {
            push(format!("driver layer {id}"), "nothing refers to it".into(), Repair::DriverLayer(id.clone()));
            continue;
        }
        if store.driver().exists(&id)
            && store.driver().mount_count(&id).unwrap_or(0) > 0
            && !store.driver().is_mounted(&id).unwrap_or(true)
        {
            push(
                format!("driver layer {id}"),
                "records a mount that is not there".into(),
                Repair::MountRecord(id.clone()),
            );
        }
    }

    // Config blobs.
    for d in store.blobs().list()? {
        if !store.imagedb().exists(&d) {
            push(format!("blob {d}"), "belongs to no image".into(), Repair::Blob(d));
        }
    }
    Ok(out)
}

/// The driver layers something refers to: a stored layer, a layer being
/// staged or removed by a live process (`layers/tmp-*`, `layers/gone-*`),
/// a container. (`b-*`, a build step's writable layer, is never listed.)
fn driver_refs(store: &Store) -> Result<BTreeSet<String>> {
    let mut refs = BTreeSet::new();
    for c in Containers::new(store.root()).list()? {
        refs.insert(c.layer);
        refs.extend(c.init_layer);
    }
    let layers = store.layers();
    for chain in layers.list()? {
        if let Ok(Some(l)) = layers.get(&chain) {
            refs.insert(l.cache_id);
        }
    }
    if let Ok(rd) = std::fs::read_dir(store.root().join("layers")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix("tmp-").or_else(|| name.strip_prefix("gone-")) {
                refs.insert(id.to_string());
            }
        }
    }
    Ok(refs)
}

/// Repair what [`check`] found. Returns the findings it could not repair
/// (with why).
///
/// The findings were made without a lock while other commands may have
/// run: under the publish lock each one is checked again before anything
/// is removed (a reference or blob whose image has appeared, a driver
/// layer a new layer or container uses, a container whose layer exists),
/// and unused layers are left to GC, which decides afresh.
pub fn repair(store: &Store, findings: &[Finding]) -> Result<Vec<(Finding, String)>> {
    let mut failed = Vec::new();
    let mut bad_layers = BTreeSet::new();
    let mut driver_layers = Vec::new();
    {
        let _p = store.publish()?;
        // References to images that are gone are dropped by loading the table.
        let mut repos = store.repositories()?;
        let refs = driver_refs(store)?;
        for f in findings {
            let r = match &f.repair {
                Repair::Image(id) => {
                    let still = match store.image(id) {
                        Ok(img) => img.chain_ids().iter().any(|c| !store.layers().dir_of(c).is_dir()),
                        Err(_) => store.imagedb().is_own(id),
                    };
                    if still {
                        remove_image_record(store, &mut repos, id)
                    } else {
                        Ok(())
                    }
                }
                Repair::Reference(_) | Repair::UnusedLayer(_) => Ok(()),
                Repair::Layer(chain) => {
                    bad_layers.insert(chain.clone());
                    Ok(())
                }
                Repair::Container(id) => match Containers::new(store.root()).find(id) {
                    Ok(c) if !store.driver().exists(&c.layer) => Containers::new(store.root()).remove(id),
                    _ => Ok(()),
                },
                Repair::Blob(d) if !store.imagedb().exists(d) => store.blobs().remove(d),
                Repair::Blob(_) => Ok(()),
                Repair::DriverLayer(id) => {
                    if !refs.contains(id) {
                        driver_layers.push((f, id.clone()));
                    }
                    Ok(())
                }
                Repair::MountRecord(_) => Ok(()),
            };
            if let Err(e) = r {
                failed.push((f.clone(), e.to_string()));
            }
        }
        // Images built on a damaged layer go with it.
        for img in store.images()? {
            if img.chain_ids().iter().any(|c| bad_layers.contains(c)) {
                remove_image_record(store, &mut repos, &img.id)?;
            }
        }
        repos.save()?;
    }
    // Damaged layers are taken away whatever uses them; then every unused one.
    for chain in &bad_layers {
        let layers = store.layers();
        if let Ok(Some(l)) = layers.get(chain) {
            if let Some(gone) = layers.unlist(&l)? {
                gone.free(store.driver())?;
            }
        } else {
            let _ = std::fs::remove_dir_all(layers.dir_of(chain));
        }
    }
    store.prune_layers()?;
    for (f, id) in driver_layers {
        if let Err(e) = store.driver().remove(&id) {
            failed.push((f.clone(), e.to_string()));
        }
    }
    for f in findings {
        if let Repair::MountRecord(id) = &f.repair {
            if let Err(e) = store.driver().unmount(id) {
                failed.push((f.clone(), e.to_string()));
            }
        }
    }
    Ok(failed)
}

fn remove_image_record(store: &Store, repos: &mut Repositories, id: &Digest) -> Result<()> {
    for r in repos.of(id) {
        repos.remove(&r);
    }
    store.imagedb().remove(id)?;
    store.blobs().remove(id)
}
