//! Named volumes: `<root>/volumes/<name>/_data`, made on first use (or by
//! `volume create`) and, when a container first mounts an empty new
//! volume over a directory of its image, filled with that directory's
//! content, as Docker does. Metadata (`meta.json`: creation time, labels)
//! is written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// A volume's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// `--label`s.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The volumes of a store.
pub struct Volumes {
    dir: PathBuf,
}

/// Whether `name` is a valid volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_name(name: &str) -> bool {
    name.len() >= 2
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Volumes {
    /// The volumes under store root `root`.
    pub fn new(root: &Path) -> Volumes {
        Volumes { dir: root.join("volumes") }
    }

    /// The directory a volume's data lives in.
    pub fn data(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Make volume `name` unless it exists; returns it either way.
    pub fn create(&self, name: &str, labels: std::collections::BTreeMap<String, String>) -> Result<Volume> {
        if !valid_name(name) {
            return Err(Error::Invalid(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        if let Some(v) = self.get(name)? {
            return Ok(v);
        }
        let data = self.data(name);
        std::fs::create_dir_all(&data).at("create volume", &data)?;
        let v = Volume { name: name.to_string(), created_at: crate::state::now(), labels };
        let b = serde_json::to_vec_pretty(&v).map_err(|source| Error::Json { what: "volume".into(), source })?;
        strata_store::fsutil::write_atomic(&self.dir.join(name).join("meta.json"), &b)?;
        Ok(v)
    }

    /// Volume `name`, if it exists.
    pub fn get(&self, name: &str) -> Result<Option<Volume>> {
        if !valid_name(name) {
            return Ok(None);
        }
        let p = self.dir.join(name).join("meta.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|source| Error::Json { what: p.display().to_string(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at("read", &p),
        }
    }

    /// Every volume, by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at("list", &self.dir),
        };
        for e in rd.flatten() {
            if let Some(v) = self.get(&e.file_name().to_string_lossy())? {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Remove volume `name` and its data.
    pub fn remove(&self, name: &str) -> Result<()> {
        let d = self.dir.join(name);
        // The metadata goes first: a half-removed volume is no volume.
        let _ = std::fs::remove_file(d.join("meta.json"));
        match std::fs::remove_dir_all(&d) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", &d),
            _ => Ok(()),
        }
    }

    /// Bytes of data a volume holds.
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
                    _ => 0,
                })
                .sum()
        }
        walk(&self.data(name))
    }

    /// On a container's first use of volume `name` at `dest`: when the
    /// volume was never filled and is empty, copy the image's `dest`
    /// directory (owners, modes, times, xattrs, links) into it.
    pub fn fill_from(&self, name: &str, root: &crate::rootfs::Root, dest: &str) -> Result<()> {
        use std::os::fd::AsRawFd;
        let marker = self.dir.join(name).join(".filled");
        if marker.exists() {
            return Ok(());
        }
        let data = self.data(name);
        let empty = std::fs::read_dir(&data).map(|mut d| d.next().is_none()).unwrap_or(true);
        if empty {
            if let Ok(fd) = root.open_at(dest, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY) {
                // The object inside the root, wherever symlinks led (inside it).
                let src = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                    .at("resolve", &root.path().join(dest))?;
                let tmp = self.dir.join(name).join(".fill");
                let _ = std::fs::remove_dir_all(&tmp);
                strata_driver::copy_tree(&src, &tmp)?;
                std::fs::remove_dir(&data).at("replace", &data)?;
                std::fs::rename(&tmp, &data).at("rename", &data)?;
            }
        }
        std::fs::write(&marker, b"").at("write", &marker)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_fill_remove() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::new(d.path());
        assert!(v.create("x", Default::default()).is_err(), "one character");
        assert!(v.create("bad/name", Default::default()).is_err());
        let a = v.create("data", Default::default()).unwrap();
        assert_eq!(v.create("data", Default::default()).unwrap(), a, "idempotent");
        assert_eq!(v.list().unwrap().len(), 1);
        let rootfs = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(rootfs.path().join("srv/www")).unwrap();
        std::fs::write(rootfs.path().join("srv/www/index.html"), "hi").unwrap();
        let root = crate::rootfs::Root::open(rootfs.path()).unwrap();
        v.fill_from("data", &root, "/srv/www").unwrap();
        assert_eq!(std::fs::read_to_string(v.data("data").join("index.html")).unwrap(), "hi");
        assert_eq!(v.size("data"), 2);
        // Filled once: later content of the image does not come back.
        std::fs::remove_file(v.data("data").join("index.html")).unwrap();
        v.fill_from("data", &root, "/srv/www").unwrap();
        assert!(!v.data("data").join("index.html").exists());
        v.remove("data").unwrap();
        assert!(v.list().unwrap().is_empty());
    }
}
