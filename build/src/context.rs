//! The build context, read in place: a directory (or a tar extracted into a
//! private temporary directory), its `.dockerignore`, and the resolution
//! and checksums of COPY/ADD sources. Every path is resolved inside the
//! context with `openat2(RESOLVE_IN_ROOT)`, so neither `..` nor a symlink
//! in the context ever reads a host file outside it.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use crate::dockerignore::DockerIgnore;
use crate::Error;

/// A tree files are copied from: the build context, or another stage's or
/// image's root filesystem. Owns the directory descriptor.
pub struct Tree {
    fd: OwnedFd,
    path: PathBuf,
    ignore: DockerIgnore,
    hashes: std::sync::Mutex<FileHashes>,
}

/// A content hash with the size, mtime and ctime it is valid for.
type Stamped = (u64, (i64, i64), (i64, i64), [u8; 32]);

/// Content hashes of files kept between builds, keyed by the file's
/// identity (device, inode) and valid only while its size, mtime and ctime
/// are unchanged (ctime moves on any write, chmod or chown, and cannot be
/// set back), so an unchanged context is checksummed from `stat` alone.
#[derive(Default)]
pub struct FileHashes {
    map: std::collections::HashMap<(u64, u64), Stamped>,
    dirty: bool,
}

impl FileHashes {
    /// Read the table at `path` (empty when missing or unreadable).
    pub fn load(path: &Path) -> FileHashes {
        let mut map = std::collections::HashMap::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                let f: Vec<&str> = line.split(' ').collect();
                if f.len() != 8 || f[7].len() != 64 {
                    continue;
                }
                let n = |i: usize| f[i].parse::<i64>().ok();
                let mut sum = [0u8; 32];
                let ok = (0..32).all(|i| match u8::from_str_radix(&f[7][2 * i..2 * i + 2], 16) {
                    Ok(b) => {
                        sum[i] = b;
                        true
                    }
                    Err(_) => false,
                });
                if let (Some(dev), Some(ino), Some(size), Some(ms), Some(mn), Some(cs), Some(cn), true) =
                    (n(0), n(1), n(2), n(3), n(4), n(5), n(6), ok)
                {
                    map.insert((dev as u64, ino as u64), (size as u64, (ms, mn), (cs, cn), sum));
                }
            }
        }
        FileHashes { map, dirty: false }
    }

    /// Write the table to `path` atomically, if it changed.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        let mut text = String::with_capacity(self.map.len() * 110);
        for ((dev, ino), (size, m, c, sum)) in &self.map {
            text.push_str(&format!(
                "{dev} {ino} {size} {} {} {} {} {}\n",
                m.0,
                m.1,
                c.0,
                c.1,
                strata_store::digest::hex(sum)
            ));
        }
        strata_store::fsutil::write_atomic(path, text.as_bytes())?;
        Ok(())
    }

    fn get(&self, e: &Entry) -> Option<[u8; 32]> {
        match self.map.get(&(e.dev, e.ino)) {
            Some((size, m, c, sum)) if *size == e.size && *m == e.mtime && *c == e.ctime => Some(*sum),
            _ => None,
        }
    }

    fn put(&mut self, e: &Entry, sum: [u8; 32]) {
        self.map.insert((e.dev, e.ino), (e.size, e.mtime, e.ctime, sum));
        self.dirty = true;
    }
}

/// What kind of entry a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// Anything else (device, fifo, socket).
    Other,
}

/// An entry's metadata.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Path relative to the tree, `/`-separated, no leading `/` (`""` = root).
    pub rel: String,
    /// Its kind.
    pub kind: Kind,
    /// Permission bits (and setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
    /// A symlink's target.
    pub target: Option<String>,
    /// Device of the file.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Status change time (seconds, nanoseconds).
    pub ctime: (i64, i64),
}

/// Clean a source path lexically: `/`-separated, relative to the tree
/// root, `.`/`..` resolved. `None` when it climbs above the root.
pub fn clean_rel(p: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// Clean a source path lexically as BuildKit does: `..` at the root stays
/// at the root (so nothing above the context is ever named).
pub fn clamp_rel(p: &str) -> String {
    strata_store::archive::normalize(p)
}

fn has_glob(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

impl Tree {
    /// The tree at `path`, with `ignore` applied to what it shows.
    pub fn open(path: &Path, ignore: DockerIgnore) -> Result<Tree, Error> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::io("open", path, e))?;
        Ok(Tree { fd, path: path.to_path_buf(), ignore, hashes: Default::default() })
    }

    /// Use the file-hash table at `path` for checksums.
    pub fn load_hashes(&self, path: &Path) {
        *self.hashes.lock().unwrap_or_else(|e| e.into_inner()) = FileHashes::load(path);
    }

    /// Keep the file-hash table at `path`.
    pub fn save_hashes(&self, path: &Path) -> Result<(), Error> {
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).save(path)
    }

    /// The tree's path on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open `rel` inside the tree; `follow`: follow a final symlink.
    pub fn open_rel(&self, rel: &str, flags: OFlags, follow: bool) -> rustix::io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        let mut f = flags | OFlags::CLOEXEC;
        if !follow {
            f |= OFlags::NOFOLLOW;
        }
        rustix::fs::openat2(&self.fd, rel, f, Mode::empty(), ResolveFlags::IN_ROOT)
    }

    /// Whether `.dockerignore` excludes `rel`.
    pub fn excluded(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.excludes(rel)
    }

    /// Whether nothing below directory `rel` can be in the context.
    pub fn can_skip(&self, rel: &str) -> bool {
        self.ignore.can_skip_dir(rel)
    }

    /// The metadata of `rel` (`follow`: of a final symlink's target).
    pub fn entry(&self, rel: &str, follow: bool) -> rustix::io::Result<Entry> {
        let fd = self.open_rel(rel, OFlags::PATH, follow)?;
        // The opened object itself: an empty name with AT_EMPTY_PATH.
        entry_at(&fd, "", rel)
    }

    /// The names in directory `rel`, sorted, without excluded ones.
    pub fn children(&self, rel: &str) -> Result<Vec<String>, Error> {
        let fd = self
            .open_rel(rel, OFlags::RDONLY | OFlags::DIRECTORY, true)
            .map_err(|e| Error::io("open", &self.path.join(rel), e))?;
        self.names_in(&fd, rel)
    }

    /// The names in the open directory `fd` (which is `rel`), as [`Tree::children`].
    fn names_in(&self, fd: &OwnedFd, rel: &str) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        let mut dir = rustix::fs::Dir::read_from(fd).map_err(|e| Error::io("read", &self.path.join(rel), e))?;
        for e in dir.by_ref() {
            let e = e.map_err(|e| Error::io("read", &self.path.join(rel), e))?;
            let n = e.file_name().to_string_lossy().into_owned();
            if n == "." || n == ".." {
                continue;
            }
            let child = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
            if self.excluded(&child) && self.ignore.can_skip_dir(&child) {
                continue;
            }
            names.push(n);
        }
        names.sort();
        Ok(names)
    }

    /// Every entry below `rel` (not following symlinks), parents first,
    /// without excluded ones.
    pub fn walk(&self, rel: &str, out: &mut Vec<Entry>) -> Result<(), Error> {
        // One open per directory; each child is stat'ed relative to it by
        // its single name (no path resolution, never following a link).
        let dir = self
            .open_rel(rel, OFlags::RDONLY | OFlags::DIRECTORY, true)
            .map_err(|e| Error::io("open", &self.path.join(rel), e))?;
        for n in self.names_in(&dir, rel)? {
            let child = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
            let e = entry_at(&dir, &n, &child).map_err(|e| Error::io("stat", &self.path.join(&child), e))?;
            if self.excluded(&child) {
                // An excluded directory may still hold re-included entries.
                if e.kind == Kind::Dir && !self.ignore.can_skip_dir(&child) {
                    self.walk(&child, out)?;
                }
                continue;
            }
            let is_dir = e.kind == Kind::Dir;
            out.push(e);
            if is_dir {
                self.walk(&child, out)?;
            }
        }
        Ok(())
    }

    /// Resolve COPY/ADD source patterns to paths in the tree (globs
    /// expanded, sorted). `missing` builds the error for a source that is
    /// not there (or excluded).
    pub fn resolve(&self, patterns: &[String], missing: &dyn Fn(&str) -> Error) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for p in patterns {
            let rel = clamp_rel(p);
            if !has_glob(&rel) {
                if self.excluded(&rel) || self.entry(&rel, true).is_err() {
                    return Err(missing(p));
                }
                out.push(rel);
                continue;
            }
            let m = DockerIgnore::from_patterns(&[rel.as_str()]).map_err(|_| missing(p))?;
            let depth = rel.split('/').count();
            let mut all = Vec::new();
            self.walk("", &mut all)?;
            let mut found: Vec<String> = all
                .into_iter()
                .filter(|e| e.rel.split('/').count() == depth && m.excludes(&e.rel))
                .map(|e| e.rel)
                .collect();
            if found.is_empty() {
                return Err(missing(p));
            }
            out.append(&mut found);
        }
        Ok(out)
    }

    /// A checksum of the sources as COPY would copy them: names, kinds,
    /// modes, link targets and contents — never times or owners (the copy
    /// gets owner root or `--chown` anyway).
    pub fn checksum(&self, sources: &[String]) -> Result<String, Error> {
        let mut h = Sha256::new();
        for s in sources {
            let top = self.entry(s, true).map_err(|e| Error::io("stat", &self.path.join(s), e))?;
            let mut entries = vec![Entry { rel: s.clone(), ..top.clone() }];
            if top.kind == Kind::Dir {
                self.walk(s, &mut entries)?;
            }
            for e in entries {
                h.update(format!(
                    "{}\0{:?}\0{:o}\0{}\0{}\0",
                    e.rel,
                    e.kind,
                    e.mode,
                    e.size,
                    e.target.as_deref().unwrap_or_default()
                ));
                if e.kind == Kind::File {
                    let known = self.hashes.lock().unwrap_or_else(|e| e.into_inner()).get(&e);
                    let sum = match known {
                        Some(sum) => sum,
                        None => {
                            let fd = self
                                .open_rel(&e.rel, OFlags::RDONLY, e.rel == *s)
                                .map_err(|err| Error::io("open", &self.path.join(&e.rel), err))?;
                            let mut f = std::fs::File::from(fd);
                            let mut fh = Sha256::new();
                            let mut buf = vec![0u8; 256 * 1024];
                            loop {
                                let n =
                                    f.read(&mut buf).map_err(|err| Error::io("read", &self.path.join(&e.rel), err))?;
                                if n == 0 {
                                    break;
                                }
                                fh.update(&buf[..n]);
                            }
                            let sum: [u8; 32] = fh.finalize().into();
                            self.hashes.lock().unwrap_or_else(|e| e.into_inner()).put(&e, sum);
                            sum
                        }
                    };
                    h.update(sum);
                }
            }
        }
        Ok(strata_store::digest::hex(&h.finalize()))
    }
}

/// The entry `name` of the open directory `dir` (not following a link),
/// recorded as `rel`.
/// An empty `name` means `dir` itself (`AT_EMPTY_PATH`).
fn entry_at(dir: &OwnedFd, name: &str, rel: &str) -> rustix::io::Result<Entry> {
    let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW | rustix::fs::AtFlags::EMPTY_PATH)?;
    let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
        rustix::fs::FileType::Directory => Kind::Dir,
        rustix::fs::FileType::RegularFile => Kind::File,
        rustix::fs::FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    };
    let target = if kind == Kind::Symlink {
        Some(rustix::fs::readlinkat(dir, name, Vec::new())?.to_string_lossy().into_owned())
    } else {
        None
    };
    Ok(Entry {
        rel: rel.to_string(),
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size as u64,
        mtime: (st.st_mtime, st.st_mtime_nsec as i64),
        target,
        dev: st.st_dev,
        ino: st.st_ino,
        ctime: (st.st_ctime, st.st_ctime_nsec as i64),
    })
}

/// The build context: a tree plus where it came from.
pub struct Context {
    /// The context's files.
    pub tree: Tree,
    /// A temporary directory holding an extracted context (removed on drop).
    _tmp: Option<tempfile::TempDir>,
}

impl Context {
    /// A context directory read in place, with its `.dockerignore`.
    pub fn dir(path: &Path) -> Result<Context, Error> {
        let ignore = read_ignore(path)?;
        Ok(Context { tree: Tree::open(path, ignore)?, _tmp: None })
    }

    /// A context from a tar stream (plain, gzip or zstd), extracted into a
    /// private temporary directory.
    pub fn tar(r: &mut dyn Read) -> Result<Context, Error> {
        let tmp = tempfile::Builder::new().prefix("strata-context-").tempdir().map_err(Error::from)?;
        let mut a = tar::Archive::new(strata_store::archive::decompress(r)?);
        a.set_preserve_permissions(true);
        a.set_overwrite(true);
        for e in a.entries().map_err(|e| Error::Source(format!("read context tar: {e}")))? {
            let mut e = e.map_err(|e| Error::Source(format!("read context tar: {e}")))?;
            // `unpack_in` refuses entries that would land outside the directory.
            e.unpack_in(tmp.path()).map_err(|e| Error::Source(format!("unpack context: {e}")))?;
        }
        let ignore = read_ignore(tmp.path())?;
        Ok(Context { tree: Tree::open(tmp.path(), ignore)?, _tmp: Some(tmp) })
    }

    /// An empty context (a Dockerfile given alone on stdin).
    pub fn empty() -> Result<Context, Error> {
        let tmp = tempfile::Builder::new().prefix("strata-context-").tempdir().map_err(Error::from)?;
        Ok(Context { tree: Tree::open(tmp.path(), DockerIgnore::default())?, _tmp: Some(tmp) })
    }
}

/// The `.dockerignore` of a context. The Dockerfile is read directly,
/// whatever the patterns say; COPY does not see it (or .dockerignore)
/// when they exclude it, as with Docker.
fn read_ignore(dir: &Path) -> Result<DockerIgnore, Error> {
    let text = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read", &dir.join(".dockerignore"), e)),
    };
    DockerIgnore::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)], ignore: &str) -> (tempfile::TempDir, Tree) {
        let d = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let t = Tree::open(d.path(), DockerIgnore::parse(ignore).unwrap()).unwrap();
        (d, t)
    }

    fn miss(p: &str) -> Error {
        Error::Source(format!("missing {p}"))
    }

    #[test]
    fn resolve_sources() {
        let (_d, t) = tree(
            &[("a.txt", "a"), ("b.txt", "b"), ("dir/c.txt", "c"), ("secret.key", "k"), ("dir/x.key", "x")],
            "*.key\n",
        );
        let r = |p: &[&str]| t.resolve(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &miss);
        assert_eq!(r(&["*.txt"]).unwrap(), vec!["a.txt", "b.txt"]);
        assert_eq!(r(&["dir/*.txt"]).unwrap(), vec!["dir/c.txt"]);
        assert_eq!(r(&["./dir/"]).unwrap(), vec!["dir"]);
        assert_eq!(r(&["."]).unwrap(), vec![""]);
        assert!(r(&["secret.key"]).is_err(), "excluded by .dockerignore");
        assert!(r(&["nope"]).is_err());
        assert!(r(&["../etc/passwd"]).is_err(), "above the context");
        assert_eq!(r(&["../a.txt"]).unwrap(), vec!["a.txt"], "`..` stops at the context's root");
        assert!(r(&["*.none"]).is_err());
    }

    #[test]
    fn symlinks_stay_in_the_context() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("host-secret"), "s").unwrap();
        let (d, t) = tree(&[("f", "x")], "");
        std::os::unix::fs::symlink(outside.path().join("host-secret"), d.path().join("link")).unwrap();
        // The absolute target resolves inside the context, where it is absent.
        assert!(t.resolve(&["link".to_string()], &miss).is_err());
        assert_eq!(t.entry("link", false).unwrap().kind, Kind::Symlink);
    }

    #[test]
    fn checksum_ignores_time_not_mode() {
        use std::os::unix::fs::PermissionsExt;
        let (d, t) = tree(&[("dir/f", "x"), ("g", "y")], "");
        let srcs = vec!["dir".to_string(), "g".to_string()];
        let c1 = t.checksum(&srcs).unwrap();
        let f = std::fs::File::options().write(true).open(d.path().join("dir/f")).unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(t.checksum(&srcs).unwrap(), c1, "touch keeps the cache");
        std::fs::set_permissions(d.path().join("dir/f"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let c2 = t.checksum(&srcs).unwrap();
        assert_ne!(c2, c1, "chmod misses");
        std::fs::write(d.path().join("g"), "z").unwrap();
        assert_ne!(t.checksum(&srcs).unwrap(), c2, "content misses");
    }

    #[test]
    fn file_hashes_survive_and_notice_changes() {
        let (d, t) = tree(&[("f", "one")], "");
        let table = d.path().join("hashes");
        let srcs = vec!["f".to_string()];
        let c1 = t.checksum(&srcs).unwrap();
        t.save_hashes(&table).unwrap();
        let t2 = Tree::open(d.path(), DockerIgnore::default()).unwrap();
        t2.load_hashes(&table);
        assert_eq!(t2.checksum(&srcs).unwrap(), c1, "from the table");
        // Same size, mtime put back: ctime still tells.
        let m = std::fs::metadata(d.path().join("f")).unwrap().modified().unwrap();
        std::fs::write(d.path().join("f"), "two").unwrap();
        std::fs::File::options().write(true).open(d.path().join("f")).unwrap().set_modified(m).unwrap();
        assert_ne!(t2.checksum(&srcs).unwrap(), c1);
    }
}
