//! A model of a layer stack, and materializing it into real directories.
//!
//! A [`Stack`] is a list of lower [`LayerSpec`]s (top first, as in
//! `lowerdir=top:…:bottom`) and an optional initial upper layer. Layers are
//! written with a builder whose `Debug` output is the same builder code, so a
//! failing random case prints as a reproducer that can be pasted into a test:
//!
//! ```
//! use strata_kernel_tests::{LayerSpec, Stack};
//! let stack = Stack::new(vec![
//!     LayerSpec::new().whiteout("a").opaque("dir1").file("dir1/y", "top"),
//!     LayerSpec::new().file("a", "lower").dir("dir1").file("dir1/x", "x").mode(0o600),
//! ]);
//! assert_eq!(stack.lowers.len(), 2);
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags, CWD};

pub use crate::path::pattern;
use crate::path::{show_data, show_str, RelPath};

/// mtimes given to materialized entries lie in `[FIXED_TIME_BASE, FIXED_TIME_LIMIT)`;
/// anything at or after [`FIXED_TIME_LIMIT`] is "recent" in a snapshot.
pub const FIXED_TIME_BASE: i64 = 1_100_000_000;
/// Timestamps below this are deterministic (set by the harness or by a
/// `utimens` op) and compared exactly; later ones are compared as "recent".
pub const FIXED_TIME_LIMIT: i64 = 1_600_000_000;

/// The kind of a layer entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// An opaque directory (hides everything below it in lower layers).
    /// `aufs`: in the "mixed" on-disk format, marked with a `.wh..wh..opq`
    /// file instead of `trusted.overlay.opaque=y`.
    OpaqueDir {
        /// Use the aufs/OCI marker in the mixed format.
        aufs: bool,
    },
    /// A regular file with this content.
    File(Vec<u8>),
    /// A symbolic link with this target.
    Symlink(Vec<u8>),
    /// A named pipe.
    Fifo,
    /// A hard link to an earlier regular file of the same layer.
    HardLink(RelPath),
    /// A whiteout. `aufs`: in the mixed format, a `.wh.NAME` file instead of
    /// a 0/0 character device.
    Whiteout {
        /// Use the aufs/OCI form in the mixed format.
        aufs: bool,
    },
}

impl Kind {
    /// True for directories (opaque or not).
    pub fn is_dir(&self) -> bool {
        matches!(self, Kind::Dir | Kind::OpaqueDir { .. })
    }
}

/// One entry of a layer.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where, relative to the layer root.
    pub path: RelPath,
    /// What.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (ignored for symlinks,
    /// hard links and whiteouts).
    pub mode: u32,
    /// Owner (ignored for hard links and whiteouts).
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `user.*` xattrs (files and directories only).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// An entry with default mode (0755 dirs, 0644 others), root-owned, no xattrs.
    pub fn new(path: impl Into<RelPath>, kind: Kind) -> Entry {
        let mode = match kind {
            Kind::Dir | Kind::OpaqueDir { .. } => 0o755,
            Kind::Symlink(_) => 0o777,
            Kind::Whiteout { .. } => 0,
            _ => 0o644,
        };
        Entry { path: path.into(), kind, mode, uid: 0, gid: 0, xattrs: Vec::new() }
    }
}

/// One layer: a list of entries. Parents that are not listed are created as
/// plain root-owned 0755 directories.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LayerSpec {
    /// The entries, in creation order.
    pub entries: Vec<Entry>,
}

impl LayerSpec {
    /// An empty layer.
    pub fn new() -> LayerSpec {
        LayerSpec::default()
    }

    /// Add an entry.
    pub fn entry(mut self, e: Entry) -> LayerSpec {
        self.entries.push(e);
        self
    }

    /// Add a directory.
    pub fn dir(self, path: impl Into<RelPath>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::Dir))
    }

    /// Add an opaque directory (kernel marker in every format).
    pub fn opaque(self, path: impl Into<RelPath>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::OpaqueDir { aufs: false }))
    }

    /// Add an opaque directory marked `.wh..wh..opq` in the mixed format.
    pub fn opaque_aufs(self, path: impl Into<RelPath>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::OpaqueDir { aufs: true }))
    }

    /// Add a regular file.
    pub fn file(self, path: impl Into<RelPath>, content: impl AsRef<[u8]>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::File(content.as_ref().to_vec())))
    }

    /// Add a symlink.
    pub fn symlink(self, path: impl Into<RelPath>, target: impl AsRef<[u8]>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::Symlink(target.as_ref().to_vec())))
    }

    /// Add a fifo.
    pub fn fifo(self, path: impl Into<RelPath>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::Fifo))
    }

    /// Add a hard link `path` to the earlier regular file `target`.
    pub fn hardlink(self, path: impl Into<RelPath>, target: impl Into<RelPath>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::HardLink(target.into())))
    }

    /// Add a whiteout (kernel format in every format).
    pub fn whiteout(self, path: impl Into<RelPath>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::Whiteout { aufs: false }))
    }

    /// Add a whiteout written as `.wh.NAME` in the mixed format.
    pub fn whiteout_aufs(self, path: impl Into<RelPath>) -> LayerSpec {
        self.entry(Entry::new(path, Kind::Whiteout { aufs: true }))
    }

    fn last(&mut self) -> &mut Entry {
        self.entries.last_mut().expect("modifier used before any entry")
    }

    /// Set the mode of the last entry.
    pub fn mode(mut self, mode: u32) -> LayerSpec {
        self.last().mode = mode;
        self
    }

    /// Set the owner of the last entry.
    pub fn owner(mut self, uid: u32, gid: u32) -> LayerSpec {
        let e = self.last();
        e.uid = uid;
        e.gid = gid;
        self
    }

    /// Add an xattr to the last entry.
    pub fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> LayerSpec {
        self.last().xattrs.push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// A consistent version of this layer, as random generation needs:
    /// one entry per path (the first wins); entries below a non-directory of
    /// the same layer dropped; hard links kept only when they point to an
    /// earlier regular file of the layer; xattrs only on files and
    /// directories, unique by name; symlink/fifo modes fixed.
    pub fn normalized(&self) -> LayerSpec {
        let mut seen: BTreeMap<RelPath, Kind> = BTreeMap::new();
        let mut out = Vec::new();
        // Process shallow paths first so "is the parent a non-directory"
        // can be decided, but keep the original relative order otherwise.
        let mut order: Vec<usize> = (0..self.entries.len()).collect();
        order.sort_by_key(|&i| self.entries[i].path.depth());
        let mut keep = vec![false; self.entries.len()];
        for &i in &order {
            let e = &self.entries[i];
            if e.path.is_root() || seen.contains_key(&e.path) {
                continue;
            }
            if e.path.ancestors().iter().any(|a| seen.get(a).is_some_and(|k| !k.is_dir())) {
                continue;
            }
            seen.insert(e.path.clone(), e.kind.clone());
            keep[i] = true;
        }
        let mut files: BTreeSet<RelPath> = BTreeSet::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let mut e = e.clone();
            match &e.kind {
                Kind::HardLink(t) if !files.contains(t) => continue,
                Kind::File(_) => {
                    files.insert(e.path.clone());
                }
                _ => {}
            }
            match e.kind {
                Kind::File(_) | Kind::Dir | Kind::OpaqueDir { .. } => {
                    let mut names = BTreeSet::new();
                    e.xattrs.retain(|(n, _)| names.insert(n.clone()));
                }
                Kind::Symlink(_) => {
                    e.xattrs.clear();
                    e.mode = 0o777;
                }
                Kind::HardLink(_) | Kind::Whiteout { .. } => {
                    e.xattrs.clear();
                    e.mode = 0;
                    e.uid = 0;
                    e.gid = 0;
                }
                Kind::Fifo => {
                    e.xattrs.clear();
                }
            }
            out.push(e);
        }
        LayerSpec { entries: out }
    }

    /// Same layer with every whiteout/opaque marker in the kernel format.
    pub fn kernel_markers_only(&self) -> LayerSpec {
        let mut l = self.clone();
        for e in &mut l.entries {
            match &mut e.kind {
                Kind::Whiteout { aufs } | Kind::OpaqueDir { aufs } => *aufs = false,
                _ => {}
            }
        }
        l
    }
}

/// A stack of layers: lowers top first, plus an initial upper layer (always
/// written in the kernel format).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Stack {
    /// Lower layers, top first (`lowerdir=lowers[0]:lowers[1]:…`).
    pub lowers: Vec<LayerSpec>,
    /// Initial content of the upper directory.
    pub upper: LayerSpec,
}

impl Stack {
    /// A stack of these lowers (top first) with an empty upper.
    pub fn new(lowers: Vec<LayerSpec>) -> Stack {
        Stack { lowers, upper: LayerSpec::new() }
    }

    /// Set the initial upper layer.
    pub fn with_upper(mut self, upper: LayerSpec) -> Stack {
        self.upper = upper;
        self
    }
}

/// On-disk format for whiteouts and opaque markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// 0/0 character devices and `trusted.overlay.opaque=y` (what the kernel reads).
    Kernel,
    /// Each marker in the form its entry asks for: kernel or aufs/OCI
    /// (`.wh.NAME`, `.wh..wh..opq`).
    Mixed,
}

/// Directories of one materialized stack.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The scratch directory holding everything below.
    pub dir: PathBuf,
    /// Lower directories, top first.
    pub lowers: Vec<PathBuf>,
    /// Upper directory (`None`: read-only mount).
    pub upper: Option<PathBuf>,
    /// Work directory (same filesystem as the upper).
    pub work: Option<PathBuf>,
    /// Mount point.
    pub mnt: PathBuf,
}

impl Layout {
    /// The same layout without upper and work directory (read-only mount).
    pub fn read_only(&self) -> Layout {
        Layout { upper: None, work: None, ..self.clone() }
    }
}

/// The fixed mtime the harness gives `path` in layer `layer` (the upper is
/// layer 999): distinct per layer and per path, so a copy-up that takes the
/// times of the wrong layer shows.
pub fn fixed_mtime(layer: usize, path: &RelPath) -> Timespec {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in path.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Timespec {
        tv_sec: FIXED_TIME_BASE + (layer as i64) * 100_000 + (h % 50_000) as i64,
        tv_nsec: ((h >> 20) % 1_000_000_000) as _,
    }
}

/// Write `stack` below `dir` (which must exist and be empty):
/// `dir/l0 … dir/lN` (lowers, top first), `dir/upper`, `dir/work`, `dir/mnt`.
/// Lowers are written in `format`; the upper always in the kernel format.
/// Every entry gets a deterministic mtime ([`fixed_mtime`]).
pub fn materialize(stack: &Stack, dir: &Path, format: Format) -> io::Result<Layout> {
    let mut lowers = Vec::new();
    for (i, l) in stack.lowers.iter().enumerate() {
        let p = dir.join(format!("l{i}"));
        fs::create_dir(&p)?;
        write_layer(l, &p, format, i)?;
        lowers.push(p);
    }
    let upper = dir.join("upper");
    fs::create_dir(&upper)?;
    write_layer(&stack.upper, &upper, Format::Kernel, 999)?;
    let work = dir.join("work");
    fs::create_dir(&work)?;
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt)?;
    Ok(Layout { dir: dir.to_path_buf(), lowers, upper: Some(upper), work: Some(work), mnt })
}

fn ctx(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

fn rx(e: rustix::io::Errno, what: &str, p: &Path) -> io::Error {
    ctx(io::Error::from(e), what, p)
}

/// Write one layer into the existing directory `root`.
pub fn write_layer(layer: &LayerSpec, root: &Path, format: Format, index: usize) -> io::Result<()> {
    let mut made: BTreeSet<RelPath> = BTreeSet::new();
    for e in &layer.entries {
        for a in e.path.ancestors() {
            if made.insert(a.clone()) {
                let p = a.under(root);
                match fs::create_dir(&p) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(err) => return Err(ctx(err, "mkdir", &p)),
                }
            }
        }
        let p = e.path.under(root);
        match &e.kind {
            Kind::Dir | Kind::OpaqueDir { .. } => {
                match fs::create_dir(&p) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => {}
                    Err(err) => return Err(ctx(err, "mkdir", &p)),
                }
                made.insert(e.path.clone());
                if let Kind::OpaqueDir { aufs } = e.kind {
                    if format == Format::Mixed && aufs {
                        let m = p.join(".wh..wh..opq");
                        fs::write(&m, b"").map_err(|err| ctx(err, "write", &m))?;
                    } else {
                        rustix::fs::lsetxattr(&p, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                            .map_err(|err| rx(err, "set opaque xattr on", &p))?;
                    }
                }
                set_owner_mode(&p, e)?;
            }
            Kind::File(content) => {
                fs::write(&p, content).map_err(|err| ctx(err, "write", &p))?;
                set_owner_mode(&p, e)?;
            }
            Kind::Symlink(target) => {
                rustix::fs::symlink(target.as_slice(), &p).map_err(|err| rx(err, "symlink", &p))?;
                rustix::fs::chownat(
                    CWD,
                    &p,
                    Some(Uid::from_raw(e.uid)),
                    Some(Gid::from_raw(e.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|err| rx(err, "lchown", &p))?;
            }
            Kind::Fifo => {
                rustix::fs::mknodat(CWD, &p, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(|err| rx(err, "mkfifo", &p))?;
                set_owner_mode(&p, e)?;
            }
            Kind::HardLink(target) => {
                let t = target.under(root);
                fs::hard_link(&t, &p).map_err(|err| ctx(err, "link", &p))?;
            }
            Kind::Whiteout { aufs } => {
                if format == Format::Mixed && *aufs {
                    let mut name = b".wh.".to_vec();
                    name.extend_from_slice(e.path.file_name());
                    let w = e.path.parent().unwrap_or_default().join(&name).under(root);
                    fs::write(&w, b"").map_err(|err| ctx(err, "write", &w))?;
                } else {
                    rustix::fs::mknodat(CWD, &p, FileType::CharacterDevice, Mode::empty(), rustix::fs::makedev(0, 0))
                        .map_err(|err| rx(err, "mknod whiteout", &p))?;
                }
            }
        }
    }
    set_times(root, &RelPath::root(), index)
}

fn set_owner_mode(p: &Path, e: &Entry) -> io::Result<()> {
    rustix::fs::chownat(CWD, p, Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid)), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|err| rx(err, "chown", p))?;
    // After chown, which clears setuid/setgid.
    fs::set_permissions(p, fs::Permissions::from_mode(e.mode)).map_err(|err| ctx(err, "chmod", p))?;
    for (n, v) in &e.xattrs {
        rustix::fs::lsetxattr(p, n.as_str(), v, XattrFlags::empty())
            .map_err(|err| rx(err, &format!("setxattr {n} on"), p))?;
    }
    Ok(())
}

/// Give every entry below `root/rel` (children first) its fixed mtime.
fn set_times(root: &Path, rel: &RelPath, layer: usize) -> io::Result<()> {
    let p = rel.under(root);
    let md = fs::symlink_metadata(&p).map_err(|err| ctx(err, "lstat", &p))?;
    if md.is_dir() {
        // Sorted, so hard-linked files end with the same time in every copy.
        let mut names = Vec::new();
        for ent in fs::read_dir(&p).map_err(|err| ctx(err, "readdir", &p))? {
            use std::os::unix::ffi::OsStrExt;
            names.push(ent?.file_name().as_bytes().to_vec());
        }
        names.sort();
        for n in names {
            set_times(root, &rel.join(n), layer)?;
        }
    }
    let t = fixed_mtime(layer, rel);
    rustix::fs::utimensat(CWD, &p, &Timestamps { last_access: t, last_modification: t }, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|err| rx(err, "utimensat", &p))
}

// ---- Debug output in builder syntax ----

fn fmt_layer(l: &LayerSpec, f: &mut fmt::Formatter<'_>, indent: &str) -> fmt::Result {
    write!(f, "LayerSpec::new()")?;
    for e in &l.entries {
        write!(f, "\n{indent}    ")?;
        let p = &e.path;
        let default = Entry::new(p.clone(), e.kind.clone());
        match &e.kind {
            Kind::Dir => write!(f, ".dir({p:?})")?,
            Kind::OpaqueDir { aufs: false } => write!(f, ".opaque({p:?})")?,
            Kind::OpaqueDir { aufs: true } => write!(f, ".opaque_aufs({p:?})")?,
            Kind::File(c) => write!(f, ".file({p:?}, {})", show_data(c))?,
            Kind::Symlink(t) => write!(f, ".symlink({p:?}, {})", show_str(t))?,
            Kind::Fifo => write!(f, ".fifo({p:?})")?,
            Kind::HardLink(t) => write!(f, ".hardlink({p:?}, {t:?})")?,
            Kind::Whiteout { aufs: false } => write!(f, ".whiteout({p:?})")?,
            Kind::Whiteout { aufs: true } => write!(f, ".whiteout_aufs({p:?})")?,
        }
        let special = matches!(e.kind, Kind::HardLink(_) | Kind::Whiteout { .. } | Kind::Symlink(_));
        if e.mode != default.mode && !special {
            write!(f, ".mode(0o{:o})", e.mode)?;
        }
        if (e.uid, e.gid) != (0, 0) {
            write!(f, ".owner({}, {})", e.uid, e.gid)?;
        }
        for (n, v) in &e.xattrs {
            write!(f, ".xattr({n:?}, {})", show_data(v))?;
        }
    }
    Ok(())
}

impl fmt::Debug for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_layer(self, f, "")
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_layer(&LayerSpec { entries: vec![self.clone()] }, f, "")
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Stack::new(vec![")?;
        for (i, l) in self.lowers.iter().enumerate() {
            write!(f, "        /* l{i} */ ")?;
            fmt_layer(l, f, "        ")?;
            writeln!(f, ",")?;
        }
        write!(f, "    ])")?;
        if !self.upper.entries.is_empty() {
            write!(f, "\n    .with_upper(")?;
            fmt_layer(&self.upper, f, "    ")?;
            write!(f, ")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_inconsistent_entries() {
        let l = LayerSpec::new()
            .file("a", "x")
            .file("a/x", "under a file")
            .hardlink("b", "dir1")
            .hardlink("c", "a")
            .whiteout("dir1")
            .file("dir1/x", "under a whiteout")
            .file("a", "duplicate")
            .symlink("s", "a")
            .xattr("user.a", "1");
        let n = l.normalized();
        let paths: Vec<String> = n.entries.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(paths, ["a", "c", "dir1", "s"]);
        assert!(n.entries[3].xattrs.is_empty());
    }

    #[test]
    fn debug_is_builder_code() {
        let s = Stack::new(vec![LayerSpec::new().file("a", "x").mode(0o600).owner(1000, 1000).whiteout_aufs("b")]);
        let d = format!("{s:?}");
        assert!(d.contains(r#".file("a", "x").mode(0o600).owner(1000, 1000)"#), "{d}");
        assert!(d.contains(r#".whiteout_aufs("b")"#), "{d}");
    }

    #[test]
    fn materialize_both_formats() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root (mknod, trusted xattrs)");
            return;
        }
        let s = Stack::new(vec![LayerSpec::new()
            .whiteout_aufs("a")
            .whiteout("b")
            .opaque_aufs("d")
            .file("d/f", "1")
            .hardlink("d/g", "d/f")]);
        for fmt in [Format::Kernel, Format::Mixed] {
            let t = tempfile::tempdir_in("/tmp").unwrap();
            let l = materialize(&s, t.path(), fmt).unwrap();
            let l0 = &l.lowers[0];
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            let b = fs::symlink_metadata(l0.join("b")).unwrap();
            assert!(b.file_type().is_char_device() && b.rdev() == 0);
            assert_eq!(fs::metadata(l0.join("d/g")).unwrap().nlink(), 2);
            match fmt {
                Format::Kernel => {
                    assert!(fs::symlink_metadata(l0.join("a")).unwrap().file_type().is_char_device());
                    assert!(!l0.join("d/.wh..wh..opq").exists());
                }
                Format::Mixed => {
                    assert!(l0.join(".wh.a").is_file());
                    assert!(!l0.join("a").exists());
                    assert!(l0.join("d/.wh..wh..opq").is_file());
                }
            }
            // Hard links: the last name in sorted order sets the time.
            let m = fs::metadata(l0.join("d/f")).unwrap();
            assert_eq!(m.mtime(), fixed_mtime(0, &RelPath::new("d/g")).tv_sec);
            let m = fs::metadata(l0.join("d")).unwrap();
            assert_eq!(m.mtime(), fixed_mtime(0, &RelPath::new("d")).tv_sec);
        }
    }
}
