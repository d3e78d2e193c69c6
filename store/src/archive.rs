//! Reading image archives: a tar (optionally gzip/zstd/xz/bzip2-compressed) is
//! unpacked into a scratch directory inside the store, or a directory (an
//! OCI layout) is read in place. Members are addressed by their archive
//! path; nothing is ever written outside the scratch directory (member
//! names are mapped to numbered files, never used as paths), symlinks
//! between members (podman's `<v1id>/layer.tar`) are resolved by name.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Most members an archive may have.
const MAX_MEMBERS: usize = 100_000;
/// Largest JSON document (manifest, index, config) read into memory.
pub const MAX_JSON: u64 = 64 << 20;
/// Largest archive-level metadata member (`manifest.json`, `index.json`,
/// `repositories`, `oci-layout`): containers/image's limit.
pub const MAX_METADATA: u64 = 1 << 20;
/// The archive-level metadata members.
const METADATA: [&str; 4] = ["manifest.json", "index.json", "repositories", "oci-layout"];

/// Compression of a stream, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain.
    None,
    /// gzip (all members are read).
    Gzip,
    /// zstd.
    Zstd,
    /// xz.
    Xz,
    /// bzip2.
    Bzip2,
}

/// Sniff the compression of a buffered stream without consuming it.
pub fn sniff(r: &mut dyn BufRead) -> io::Result<Compression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else {
        Compression::None
    })
}

/// Wrap `r` in the decompressor its magic bytes call for.
pub fn decompress<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut b = BufReader::with_capacity(256 << 10, r);
    Ok(match sniff(&mut b)? {
        Compression::None => Box::new(b),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(b)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(b)?),
        Compression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(b)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(b)),
    })
}

/// An unpacked archive or a directory read in place.
pub struct Archive {
    /// Where member files are.
    base: PathBuf,
    /// For an unpacked tar: archive path → file under `base`.
    files: Option<HashMap<String, PathBuf>>,
    /// Symlink members: archive path → target as written.
    links: HashMap<String, String>,
    _scratch: Option<crate::locks::Scratch>,
}

impl Archive {
    /// Unpack the tar stream `r` (compressed or not) into `scratch`.
    pub fn unpack(r: impl Read, scratch: crate::locks::Scratch) -> Result<Archive> {
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut ar = tar::Archive::new(decompress(r).during("read archive")?);
        let entries = ar.entries().during("read archive")?;
        let mut n = 0usize;
        let mut any = false;
        for e in entries {
            let mut e = e.map_err(|e| {
                if any {
                    Error::BadArchive(format!("reading the tar: {e}"))
                } else {
                    // Not even one header: Docker's words for garbage on stdin.
                    Error::NotATar("unexpected EOF".into())
                }
            })?;
            any = true;
            n += 1;
            if n > MAX_MEMBERS {
                return Err(Error::BadArchive("too many members".into()));
            }
            let path = e.path_bytes();
            let name = normalize(&String::from_utf8_lossy(&path));
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let file = scratch.path().join(format!("m{n}"));
                    let mut f = File::create(&file).at("create", &file)?;
                    io::copy(&mut e, &mut f).map_err(|e| Error::BadArchive(format!("reading member {name}: {e}")))?;
                    refuse_duplicate(&name, &files, &links)?;
                    files.insert(name, file);
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(t) = e.link_name_bytes() {
                        let t = String::from_utf8_lossy(&t).to_string();
                        let target = if e.header().entry_type() == tar::EntryType::Link { normalize(&t) } else { t };
                        refuse_duplicate(&name, &files, &links)?;
                        links.insert(name, target);
                    }
                }
                _ => {}
            }
        }
        // The stream may end in padding; drain it so errors surface.
        if !any {
            return Err(Error::NotATar("unexpected EOF".into()));
        }
        Ok(Archive { base: scratch.path().to_path_buf(), files: Some(files), links, _scratch: Some(scratch) })
    }

    /// Read a directory (an OCI image layout) in place.
    pub fn directory(dir: &Path) -> Archive {
        Archive { base: dir.to_path_buf(), files: None, links: HashMap::new(), _scratch: None }
    }

    /// Whether member `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }

    /// The file holding member `name` (following member symlinks).
    pub fn resolve(&self, name: &str) -> Result<PathBuf> {
        let mut name = normalize(name);
        for _ in 0..16 {
            match &self.files {
                Some(files) => {
                    if let Some(p) = files.get(&name) {
                        return Ok(p.clone());
                    }
                }
                None => {
                    if name.split('/').any(|c| c == "..") {
                        break;
                    }
                    let p = self.base.join(&name);
                    // Only plain files inside the directory: no symlinks.
                    if let Ok(md) = fs::symlink_metadata(&p) {
                        if md.is_file() {
                            return Ok(p);
                        }
                    }
                    break;
                }
            }
            match self.links.get(&name) {
                Some(t) if t.starts_with('/') => name = normalize(t),
                Some(t) => {
                    let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    name = normalize(&format!("{dir}/{t}"));
                }
                None => break,
            }
        }
        Err(Error::BadArchive(format!("missing member {name}")))
    }

    /// Open member `name`.
    pub fn open(&self, name: &str) -> Result<File> {
        let p = self.resolve(name)?;
        File::open(&p).at("open", &p)
    }

    /// Read a (small) member into memory.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let f = self.open(name)?;
        let max = if METADATA.contains(&normalize(name).as_str()) { MAX_METADATA } else { MAX_JSON };
        let mut v = Vec::new();
        f.take(max + 1).read_to_end(&mut v).during(format!("read {name}"))?;
        if v.len() as u64 > max {
            return Err(Error::BadArchive(format!("{name} is larger than {} bytes", max)));
        }
        Ok(v)
    }
}

/// Two members by one name: readers disagree on which one counts (the
/// first, the last), so an archive holding them is refused.
fn refuse_duplicate(name: &str, files: &HashMap<String, PathBuf>, links: &HashMap<String, String>) -> Result<()> {
    if files.contains_key(name) || links.contains_key(name) {
        return Err(Error::BadArchive(format!("duplicate member {name}")));
    }
    Ok(())
}

/// Normalize an archive path: no leading `./` or `/`, no `.` components,
/// `..` resolved lexically (never above the root).
pub fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        for (i, o) in [("./a/b", "a/b"), ("/a//b/", "a/b"), ("a/../../b", "b"), ("..", ""), ("a/./b/../c", "a/c")] {
            assert_eq!(normalize(i), o, "{i}");
        }
    }
}
