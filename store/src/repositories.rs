//! References → image IDs, kept in `repositories.json` in Docker's layout:
//! `{"Repositories": {"repo": {"repo:tag": "sha256:…", "repo@sha256:…": "sha256:…"}}}`.
//! Rewritten atomically on every change (callers hold the publish lock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::write_atomic;
use crate::reference::Reference;

#[derive(Default, Serialize, Deserialize)]
struct File {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, Digest>>,
}

/// The reference table, loaded in memory; [`Repositories::save`] writes it back.
pub struct Repositories {
    path: PathBuf,
    file: File,
    /// References of read-only image stores: seen by `get`/`all`/`of`
    /// (this store's own references win), never saved.
    read_only: BTreeMap<String, BTreeMap<String, Digest>>,
}

impl Repositories {
    /// Load `<root>/repositories.json` (missing = empty).
    pub fn load(root: &Path) -> Result<Repositories> {
        let path = root.join("repositories.json");
        let file = match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|source| Error::Json { what: path.display().to_string(), source })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(e).at("read", &path),
        };
        Ok(Repositories { path, file, read_only: BTreeMap::new() })
    }

    /// See the references of a read-only store's table too.
    pub fn add_read_only(&mut self, other: &Repositories) {
        for (repo, refs) in &other.file.repositories {
            let mine = self.read_only.entry(repo.clone()).or_default();
            for (r, id) in refs {
                mine.entry(r.clone()).or_insert_with(|| id.clone());
            }
        }
    }

    /// Whether `r` is one of this store's own references (not only a
    /// read-only store's).
    pub fn is_own(&self, r: &Reference) -> bool {
        self.file.repositories.get(&r.repo).is_some_and(|m| m.contains_key(&r.to_string()))
    }

    /// Write the table back atomically.
    pub fn save(&self) -> Result<()> {
        let bytes =
            serde_json::to_vec(&self.file).map_err(|source| Error::Json { what: "repositories".into(), source })?;
        write_atomic(&self.path, &bytes)
    }

    /// Keep only the references whose image satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&Digest) -> bool) {
        for table in [&mut self.file.repositories, &mut self.read_only] {
            for refs in table.values_mut() {
                refs.retain(|_, id| keep(id));
            }
            table.retain(|_, refs| !refs.is_empty());
        }
    }

    /// The image a reference points to.
    pub fn get(&self, r: &Reference) -> Option<&Digest> {
        let key = r.to_string();
        self.file
            .repositories
            .get(&r.repo)
            .and_then(|m| m.get(&key))
            .or_else(|| self.read_only.get(&r.repo).and_then(|m| m.get(&key)))
    }

    /// Point `r` at `id`; returns the image it pointed to before, if another.
    pub fn set(&mut self, r: &Reference, id: &Digest) -> Option<Digest> {
        let old = self.file.repositories.entry(r.repo.clone()).or_default().insert(r.to_string(), id.clone());
        old.filter(|o| o != id)
    }

    /// Remove `r`; returns what it pointed to.
    pub fn remove(&mut self, r: &Reference) -> Option<Digest> {
        let repo = self.file.repositories.get_mut(&r.repo)?;
        let old = repo.remove(&r.to_string());
        if repo.is_empty() {
            self.file.repositories.remove(&r.repo);
        }
        old
    }

    /// Every (reference, image) pair, sorted by reference.
    pub fn all(&self) -> Vec<(Reference, Digest)> {
        let mut merged: BTreeMap<&String, &Digest> = BTreeMap::new();
        for refs in self.read_only.values().chain(self.file.repositories.values()) {
            merged.extend(refs.iter());
        }
        merged.into_iter().filter_map(|(s, id)| Reference::parse(s).ok().map(|r| (r, id.clone()))).collect()
    }

    /// The references to image `id`, sorted.
    pub fn of(&self, id: &Digest) -> Vec<Reference> {
        self.all().into_iter().filter(|(_, i)| i == id).map(|(r, _)| r).collect()
    }
}
