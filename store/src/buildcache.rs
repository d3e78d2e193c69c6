//! The build cache: cache keys of build steps (computed by the builder from
//! the parent step's key, the expanded instruction, the build args in
//! scope and the sources' checksums) → the image each step produced.
//! One file per key under `<root>/buildcache/`, written atomically. An
//! entry whose image is gone is a miss; the images themselves (intermediate
//! images, hidden from `images` as parents of others) keep the layers alive.

use std::fs;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil::write_atomic;

/// The cache of one store.
pub struct BuildCache {
    dir: PathBuf,
}

impl BuildCache {
    /// The cache of the store at `root`.
    pub fn new(root: &Path) -> BuildCache {
        BuildCache { dir: root.join("buildcache") }
    }

    fn path(&self, key: &Digest) -> PathBuf {
        self.dir.join(key.hex())
    }

    /// The image recorded for `key`.
    pub fn get(&self, key: &Digest) -> Option<Digest> {
        let s = fs::read_to_string(self.path(key)).ok()?;
        Digest::parse(s.trim()).ok()
    }

    /// Record `image` for `key` (replacing an older entry).
    pub fn put(&self, key: &Digest, image: &Digest) -> Result<()> {
        write_atomic(&self.path(key), image.to_string().as_bytes())
    }

    /// Every entry: (key file name, image).
    pub fn entries(&self) -> Result<Vec<(String, Option<Digest>)>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at("list", &self.dir),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.at("list", &self.dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let img = fs::read_to_string(e.path()).ok().and_then(|s| Digest::parse(s.trim()).ok());
            out.push((name, img));
        }
        Ok(out)
    }

    /// Remove every entry; returns how many there were.
    pub fn clear(&self) -> Result<usize> {
        let n = self.entries()?.len();
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", &self.dir),
            _ => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_clear() {
        let d = tempfile::tempdir().unwrap();
        let c = BuildCache::new(d.path());
        let k = Digest::of(b"key");
        assert_eq!(c.get(&k), None);
        let img = Digest::of(b"image");
        c.put(&k, &img).unwrap();
        assert_eq!(c.get(&k), Some(img.clone()));
        assert_eq!(c.entries().unwrap().len(), 1);
        assert_eq!(c.clear().unwrap(), 1);
        assert_eq!(c.get(&k), None);
    }
}
