//! The union: a typed API over N lower layers and an optional upper layer.
//!
//! Nodes are identified by a node id (the FUSE node id) that names a path in
//! the merged tree. Each node remembers where it lives: whether the upper has
//! it, and for directories every lower directory merged into it (with its
//! path in that layer, which differs from the merged path after a redirect).
//!
//! Locking: `ns` (namespace lock) is taken for reading by lookups and
//! readdir, and for writing by every operation that changes the upper layer's
//! namespace (create, unlink, rename, copy-up). `table` guards the node table
//! and is only ever held briefly, never across a syscall on a layer, and
//! always after `ns`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat, Timestamps};
use rustix::io::Errno;

use crate::copy_up;
use crate::error::{Context, Error, Result};
use crate::ino::InoMap;
use crate::layer::{self, is_private_xattr, join, Layer, Probe, WH_OPAQUE, WH_PREFIX};

/// Node id of the mount root.
pub const ROOT: u64 = 1;

/// Where the layers are.
#[derive(Debug, Clone, Default)]
pub struct OverlayConfig {
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    /// Upper layer; `None` for a read-only mount.
    pub upper: Option<PathBuf>,
    /// Work directory, on the upper's filesystem.
    pub work: Option<PathBuf>,
}

/// A directory of a lower layer merged into a node (or a lower non-directory's source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerRef {
    /// Index into the lower layers (0 = top).
    pub layer: usize,
    /// Path inside that layer.
    pub path: Vec<u8>,
}

/// One node of the merged tree. Its id is the inode number users see (the
/// FUSE protocol ties the two), so hard links are one node with several names.
#[derive(Debug, Clone)]
pub struct Node {
    /// Parent node id of the primary name (the root is its own parent).
    pub parent: u64,
    /// Primary name in the parent.
    pub name: Vec<u8>,
    /// Further names (hard links) as (parent, name).
    pub aliases: Vec<(u64, Vec<u8>)>,
    /// Kernel lookup count.
    lookups: u64,
    /// Directory or not.
    pub is_dir: bool,
    /// The upper layer holds this node at its merged path.
    pub upper: bool,
    /// Lower directories merged into this directory, top first; for a
    /// lower-only non-directory, its single source.
    pub lowers: Arc<[LowerRef]>,
    /// Inode number shown to users.
    pub st_ino: u64,
    /// For a directory merging several lower layers: what its lower layers
    /// hold, built on first use (lower layers never change).
    lower_names: Option<Arc<LowerNames>>,
    /// A lookup in this directory already probed its lower layers one by
    /// one: the next one builds `lower_names` instead.
    probed_lowers: bool,
    /// A lower hard-linked file some name of which was copied up: its data
    /// lives in the index entry (shared by all copied-up names).
    pub indexed: bool,
    /// Unlinked (or renamed over) while the kernel still references it.
    pub unlinked: bool,
    /// For an unlinked upper node: its attributes when its last name went
    /// (link count 0). What `getattr` answers for objects the daemon holds
    /// no descriptor of, such as a FIFO still open in some process.
    gone: Option<Box<Stat>>,
}

/// Below this many merged lower directories a lookup probes each layer;
/// from it on, the directory's lower entries are listed once and looked up
/// in memory, so a lookup costs the same at any depth. The first lookup in a
/// directory still probes layer by layer (a missing name costs one or two
/// `stat`s per layer, a listing four syscalls per layer): a directory looked
/// into once, like most on a path to somewhere else, is never listed.
const LOWER_NAMES_MIN: usize = 3;

/// What the first lower layer that mentions a name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LowerName {
    /// Hidden by a whiteout: no lower layer below has it.
    Whiteout,
    /// Present; resolution starts at this position of the directory's lower list.
    At(usize),
}

/// How lower layers are searched for a name (see `Overlay::resolve`).
enum Search {
    /// This name under each lower directory of the parent.
    Parent(Vec<u8>),
    /// This path from the root of each lower layer.
    Abs(Vec<u8>),
}

/// What the ancestors of an absolute redirect's path are in one layer.
enum AncestorWalk {
    /// All directories.
    Clear,
    /// All directories, one of them opaque: no layer below is searched.
    Opaque,
    /// One is missing: look in the next layer.
    Missing,
    /// One is a whiteout or not a directory: the search ends.
    Stop,
}

/// The merged lower entries of one directory.
type LowerNames = HashMap<Vec<u8>, LowerName>;

/// From this many lower directories on, `Overlay::lower_names` lists them
/// on several threads.
const PARALLEL_LIST_MIN: usize = 64;
/// Most threads listing one directory's lower layers.
const LIST_THREADS: usize = 4;
/// A lookup walking a directory's lower layers one by one probes the rest
/// of them on several threads after this many, when `PARALLEL_LIST_MIN` or
/// more remain.
const WALK_AHEAD_AFTER: usize = 8;

/// `f` over `items`, results in order, on up to `LIST_THREADS` scoped
/// threads (the calling one alone on a single CPU). A worker that panicked
/// yields EIO (`what` names the work) for each of its items.
fn map_on_threads<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
    what: &'static str,
) -> Vec<Result<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, LIST_THREADS);
    if threads == 1 || items.len() < 2 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|sc| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| (part.len(), sc.spawn(move || part.iter().map(f).collect::<Vec<_>>())))
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for (n, w) in workers {
            match w.join() {
                Ok(v) => all.extend(v),
                Err(_) => all.extend((0..n).map(|_| Err(Error::errno_only(what, Errno::IO)))),
            }
        }
        all
    })
}

/// What one name in one lower directory says (see `read_lower_dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LowerEntry {
    /// An object (not a whiteout).
    Present,
    /// A kernel-format whiteout (char device 0/0).
    Whiteout,
    /// `.wh.NAME`: NAME (the entry's name here) is hidden below this layer.
    OciWhiteout,
}

/// The entries of lower directory `path` of `layer`: names with what they
/// are. `.wh.NAME` comes back as `NAME` with `OciWhiteout`; the opaque marker
/// is left out (opaqueness is decided when the directory is resolved).
fn read_lower_dir(layer: &Layer, path: &[u8]) -> Result<Vec<(Vec<u8>, LowerEntry)>> {
    let dirfd = layer.open_dir(path).ctx("open lower directory")?;
    let entries = layer::read_entries(&dirfd).ctx("read lower directory")?;
    let mut out = Vec::with_capacity(entries.len());
    for (name, _, ft) in entries {
        if let Some(hidden) = name.strip_prefix(WH_PREFIX) {
            if name.as_slice() != WH_OPAQUE {
                out.push((hidden.to_vec(), LowerEntry::OciWhiteout));
            }
            continue;
        }
        let mut e = LowerEntry::Present;
        if ft == FileType::CharacterDevice || ft == FileType::Unknown {
            let st = rustix::fs::statat(&dirfd, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW)
                .ctx("stat lower entry")?;
            if layer::is_whiteout(&st) {
                e = LowerEntry::Whiteout;
            }
        }
        out.push((name, e));
    }
    Ok(out)
}

/// A directory entry as merged from all layers.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// Name.
    pub name: Vec<u8>,
    /// File type.
    pub kind: FileType,
    /// Inode number as the layer reports it, mapped to the mount's numbering.
    pub ino: u64,
}

/// What to create.
#[derive(Debug)]
pub enum NewKind<'a> {
    /// A regular file, opened with these flags.
    File(OFlags),
    /// A directory.
    Dir,
    /// A fifo, socket or device node.
    Special(FileType, u64),
    /// A symbolic link.
    Symlink(&'a [u8]),
    /// A hard link to an existing node.
    Link(u64),
}

/// Who creates, and how.
#[derive(Debug, Clone, Copy)]
pub struct Creds {
    /// fsuid of the caller.
    pub uid: u32,
    /// fsgid of the caller.
    pub gid: u32,
}

struct NodeTable {
    nodes: HashMap<u64, Node>,
    children: HashMap<(u64, Vec<u8>), u64>,
}

impl NodeTable {
    fn get(&self, id: u64) -> Result<&Node> {
        self.nodes.get(&id).ok_or(Error::errno_only("stale node", Errno::STALE))
    }

    fn path(&self, id: u64) -> Result<Vec<u8>> {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            let n = self.get(cur)?;
            names.push(&n.name);
            cur = n.parent;
        }
        let mut p = Vec::new();
        for name in names.iter().rev() {
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name);
        }
        Ok(p)
    }

    /// Remove the name (parent, name) of node `id`; the node is marked
    /// unlinked when it has no name left.
    fn detach(&mut self, id: u64, parent: u64, name: &[u8]) {
        let key = (parent, name.to_vec());
        if self.children.get(&key) == Some(&id) {
            self.children.remove(&key);
        }
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.parent == parent && n.name == name {
                if let Some((p, nm)) = n.aliases.pop() {
                    n.parent = p;
                    n.name = nm;
                } else {
                    n.unlinked = true;
                }
            } else {
                n.aliases.retain(|(p, nm)| !(*p == parent && nm == name));
            }
        }
    }

    /// Give node `id` the name (parent, name) in addition to what it has.
    fn attach(&mut self, id: u64, parent: u64, name: &[u8]) {
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.unlinked {
                n.parent = parent;
                n.name = name.to_vec();
                n.unlinked = false;
                n.gone = None;
            } else if !(n.parent == parent && n.name == name
                || n.aliases.iter().any(|(p, nm)| *p == parent && nm == name))
            {
                n.aliases.push((parent, name.to_vec()));
            }
        }
        self.children.insert((parent, name.to_vec()), id);
    }

    /// Make (parent, name), one of the node's names, its primary name.
    /// Returns whether the primary changed.
    fn promote(&mut self, id: u64, parent: u64, name: &[u8]) -> bool {
        let Some(n) = self.nodes.get_mut(&id) else {
            return false;
        };
        if n.parent == parent && n.name == name {
            return false;
        }
        let Some(pos) = n.aliases.iter().position(|(p, nm)| *p == parent && nm == name) else {
            return false;
        };
        let old = (n.parent, std::mem::take(&mut n.name));
        let (p, nm) = std::mem::replace(&mut n.aliases[pos], old);
        n.parent = p;
        n.name = nm;
        true
    }

    /// Forget a node entirely: all its names leave the name map.
    fn remove(&mut self, id: u64) {
        if let Some(n) = self.nodes.remove(&id) {
            for key in std::iter::once((n.parent, n.name)).chain(n.aliases) {
                if self.children.get(&key) == Some(&id) {
                    self.children.remove(&key);
                }
            }
        }
    }
}

/// Where the index keeps the shared upper copy of a lower hard-linked file,
/// relative to the work directory.
fn index_path(st_ino: u64) -> Vec<u8> {
    format!("{}/{st_ino:016x}", copy_up::INDEX_DIR).into_bytes()
}

/// The node id for an inode number: the number itself, except that 1 belongs
/// to the mount root in FUSE.
fn node_id(st_ino: u64) -> u64 {
    if st_ino == ROOT {
        u64::MAX - 1
    } else {
        st_ino
    }
}

/// The upper layer and its work directory.
#[derive(Debug)]
pub struct Upper {
    /// The upper layer.
    pub layer: Layer,
    /// The work directory (same filesystem as the upper).
    pub work: Layer,
}

/// A union mount's state.
pub struct Overlay {
    lowers: Vec<Layer>,
    upper: Option<Upper>,
    table: Mutex<NodeTable>,
    ns: RwLock<()>,
    inos: InoMap,
    tmp_seq: AtomicU64,
    /// Nodes copied up since the last `take_copied`, and their parents:
    /// their attributes changed (a merged directory reports one link, a file
    /// copy has its own ctime and blocks, a parent a new ctime) without the
    /// kernel having asked for that change.
    copied: Mutex<Vec<u64>>,
}

/// Result of resolving a name.
struct Resolved {
    is_dir: bool,
    upper: bool,
    lowers: Vec<LowerRef>,
    st_ino: u64,
    indexed: bool,
    /// The stat of the object that will answer getattr (saves a syscall).
    stat: Option<Stat>,
}

impl Overlay {
    /// Open the layers and check the configuration.
    ///
    /// Fails for no lowers, missing or unreadable layers, an upper without a
    /// workdir, or an upper and workdir on different filesystems.
    pub fn new(cfg: &OverlayConfig) -> Result<Overlay> {
        if cfg.lowers.is_empty() {
            return Err(Error::Config("no lowerdir given".into()));
        }
        let lowers = cfg.lowers.iter().map(|p| Layer::open(p, true)).collect::<Result<Vec<_>>>()?;
        let upper = match (&cfg.upper, &cfg.work) {
            (Some(u), Some(w)) => {
                let layer = Layer::open(u, false)?;
                let work = Layer::open(w, false)?;
                if layer.dev != work.dev {
                    return Err(Error::Config(format!(
                        "upperdir {} and workdir {} are on different filesystems",
                        u.display(),
                        w.display()
                    )));
                }
                if layer.root.starts_with(&work.root) || work.root.starts_with(&layer.root) {
                    return Err(Error::Config("upperdir and workdir must not contain each other".into()));
                }
                Some(Upper { layer, work })
            }
            (Some(_), None) => return Err(Error::Config("upperdir given without workdir".into())),
            (None, Some(_)) => return Err(Error::Config("workdir given without upperdir".into())),
            (None, None) => None,
        };
        let devs = upper.iter().map(|u| u.layer.dev).chain(lowers.iter().map(|l| l.dev)).collect::<Vec<_>>();
        let inos = InoMap::new(devs);
        let ov = Overlay {
            lowers,
            upper,
            table: Mutex::new(NodeTable { nodes: HashMap::new(), children: HashMap::new() }),
            ns: RwLock::new(()),
            inos,
            tmp_seq: AtomicU64::new(0),
            copied: Mutex::new(Vec::new()),
        };
        if let Some(u) = &ov.upper {
            copy_up::clean_work_dir(&u.work)?;
        }
        let root = ov.resolve_root()?;
        ov.table().nodes.insert(
            ROOT,
            Node {
                parent: ROOT,
                name: Vec::new(),
                aliases: Vec::new(),
                lookups: 1,
                is_dir: true,
                upper: root.upper,
                lowers: root.lowers.into(),
                st_ino: root.st_ino,
                lower_names: None,
                probed_lowers: false,
                indexed: false,
                unlinked: false,
                gone: None,
            },
        );
        Ok(ov)
    }

    /// The layer directories, for checks by callers (mountpoint placement).
    pub fn layer_roots(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.lowers.iter().map(|l| l.root.clone()).collect();
        if let Some(u) = &self.upper {
            v.push(u.layer.root.clone());
            v.push(u.work.root.clone());
        }
        v
    }

    /// Whether the mount is read-only (no upper layer).
    pub fn read_only(&self) -> bool {
        self.upper.is_none()
    }

    fn table(&self) -> MutexGuard<'_, NodeTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn upper(&self) -> Result<&Upper> {
        self.upper.as_ref().ok_or(Error::errno_only("read-only mount", Errno::ROFS))
    }

    fn resolve_root(&self) -> Result<Resolved> {
        let mut lowers = Vec::new();
        let mut upper = false;
        let mut opaque = false;
        let mut st_ino = None;
        if let Some(u) = &self.upper {
            upper = true;
            opaque = u.layer.is_opaque(b"")?;
            let st = u.layer.stat(b"").ctx("stat upper root")?;
            st_ino = Some(self.inos.map(st.st_dev, st.st_ino));
        }
        if !opaque {
            for (i, l) in self.lowers.iter().enumerate() {
                lowers.push(LowerRef { layer: i, path: Vec::new() });
                if l.is_opaque(b"")? {
                    break;
                }
            }
        }
        if let Some(first) = lowers.first() {
            let st = self.lowers[first.layer].stat(b"").ctx("stat lower root")?;
            st_ino = Some(self.inos.map(st.st_dev, st.st_ino));
        }
        Ok(Resolved { is_dir: true, upper, lowers, st_ino: st_ino.unwrap_or(ROOT), indexed: false, stat: None })
    }

    /// Resolve `name` in the directory `parent` (already known) across all layers.
    fn resolve(&self, parent_id: u64, parent: &Node, parent_path: &[u8], name: &[u8]) -> Result<Option<Resolved>> {
        let path = join(parent_path, name);
        let mut upper_dir: Option<Stat> = None;
        let mut redirect: Option<Vec<u8>> = None;
        if parent.upper {
            if let Some(u) = &self.upper {
                match u.layer.probe(&path)? {
                    Probe::Missing => {}
                    Probe::Whiteout => return Ok(None),
                    Probe::NonDir(st) => {
                        let st_ino = self.upper_ino(&path, &st)?;
                        return Ok(Some(Resolved {
                            is_dir: false,
                            upper: true,
                            lowers: Vec::new(),
                            st_ino,
                            indexed: false,
                            stat: Some(*st),
                        }));
                    }
                    Probe::Dir { stat, opaque, redirect: r } => {
                        if opaque {
                            let st_ino = self.upper_ino(&path, &stat)?;
                            return Ok(Some(Resolved {
                                is_dir: true,
                                upper: true,
                                lowers: Vec::new(),
                                st_ino,
                                indexed: false,
                                stat: Some(*stat),
                            }));
                        }
                        upper_dir = Some(*stat);
                        redirect = r;
                    }
                }
            }
        }
        let mut lowers: Vec<LowerRef> = Vec::new();
        let mut first_lower: Option<Stat> = None;
        let mut nondir: Option<(usize, Vec<u8>, Stat)> = None;
        // Where lower layers are searched: under the parent's lower
        // directories by a name (this one, or a relative redirect), or at an
        // absolute path from every lower root (an absolute redirect).
        let mut search = match redirect {
            Some(r) if r.starts_with(b"/") => Search::Abs(r[1..].to_vec()),
            Some(r) => Search::Parent(r),
            None => Search::Parent(name.to_vec()),
        };
        let mut next_parent = 0usize;
        let mut next_abs = 0usize;
        if let Search::Parent(nm) = &search {
            if parent.lowers.len() >= LOWER_NAMES_MIN && !parent.probed_lowers && parent.lower_names.is_none() {
                self.set_node(parent_id, |n| n.probed_lowers = true);
            } else if parent.lowers.len() >= LOWER_NAMES_MIN {
                match self.lower_names(parent_id, parent)?.get(nm) {
                    None | Some(LowerName::Whiteout) => next_parent = usize::MAX,
                    Some(LowerName::At(pos)) => next_parent = *pos,
                }
            }
        }
        let mut stop_after: Option<usize> = None;
        // A long walk of the parent's lower directories (a directory merged
        // over many layers, a name missing from most) probes the rest of them
        // ahead, on several threads: (first index, name, probes).
        let mut ahead: Option<(usize, Vec<u8>, Vec<Result<Probe>>)> = None;
        let mut walked = 0usize;
        loop {
            let (li, lpath) = match &search {
                Search::Abs(p) => {
                    if next_abs >= self.lowers.len() || stop_after.is_some_and(|l| next_abs > l) {
                        break;
                    }
                    next_abs += 1;
                    // Walk the path's ancestors in this layer as the kernel
                    // does: a whiteout or non-directory on the way ends the
                    // search, an opaque directory ends it after this layer.
                    match self.walk_ancestors(next_abs - 1, p)? {
                        AncestorWalk::Missing => continue,
                        AncestorWalk::Stop => break,
                        AncestorWalk::Opaque => stop_after = Some(next_abs - 1),
                        AncestorWalk::Clear => {}
                    }
                    (next_abs - 1, p.clone())
                }
                Search::Parent(nm) => {
                    let Some(pl) = parent.lowers.get(next_parent) else {
                        break;
                    };
                    next_parent += 1;
                    (pl.layer, join(&pl.path, nm))
                }
            };
            let probed = match &search {
                Search::Parent(nm) => {
                    let i = next_parent - 1;
                    let remaining = parent.lowers.len() - i;
                    walked += 1;
                    if ahead.as_ref().is_none_or(|(start, n, _)| n != nm || i < *start)
                        && walked > WALK_AHEAD_AFTER
                        && remaining >= PARALLEL_LIST_MIN
                    {
                        ahead = Some((i, nm.clone(), self.probe_many(&parent.lowers[i..], nm)));
                    }
                    match &mut ahead {
                        Some((start, n, probes)) if n == nm && i >= *start => {
                            std::mem::replace(&mut probes[i - *start], Ok(Probe::Missing))?
                        }
                        _ => self.lowers[li].probe(&lpath)?,
                    }
                }
                Search::Abs(_) => self.lowers[li].probe(&lpath)?,
            };
            match probed {
                Probe::Missing => continue,
                Probe::Whiteout => break,
                Probe::NonDir(st) => {
                    if upper_dir.is_none() && lowers.is_empty() {
                        nondir = Some((li, lpath, *st));
                    }
                    break;
                }
                Probe::Dir { stat, opaque, redirect: r } => {
                    if first_lower.is_none() {
                        first_lower = Some(*stat);
                    }
                    let here = lpath.clone();
                    lowers.push(LowerRef { layer: li, path: lpath });
                    if opaque {
                        break;
                    }
                    match r {
                        Some(r) if r.starts_with(b"/") => {
                            search = Search::Abs(r[1..].to_vec());
                            next_abs = li + 1;
                        }
                        Some(r) => match &mut search {
                            Search::Parent(nm) => *nm = r,
                            Search::Abs(p) => {
                                *p = join(layer::split(&here).0, &r);
                                next_abs = li + 1;
                            }
                        },
                        None => {}
                    }
                }
            }
        }
        if let Some(ust) = upper_dir {
            let st_ino = match self.upper_saved_ino(&path)? {
                Some(i) => i,
                None => match &first_lower {
                    Some(l) => self.inos.map(l.st_dev, l.st_ino),
                    None => self.inos.map(ust.st_dev, ust.st_ino),
                },
            };
            return Ok(Some(Resolved { is_dir: true, upper: true, lowers, st_ino, indexed: false, stat: Some(ust) }));
        }
        if let Some(l) = first_lower {
            let st_ino = self.inos.map(l.st_dev, l.st_ino);
            return Ok(Some(Resolved { is_dir: true, upper: false, lowers, st_ino, indexed: false, stat: Some(l) }));
        }
        if let Some((li, lpath, st)) = nondir {
            let st_ino = self.inos.map(st.st_dev, st.st_ino);
            let indexed = st.st_nlink > 1 && self.index_exists(st_ino);
            return Ok(Some(Resolved {
                is_dir: false,
                upper: false,
                lowers: vec![LowerRef { layer: li, path: lpath }],
                st_ino,
                indexed,
                stat: Some(st),
            }));
        }
        Ok(None)
    }

    /// `name` probed under each of `dirs`, in order, on up to `LIST_THREADS`
    /// threads (no lock taken; the caller holds the namespace lock).
    fn probe_many(&self, dirs: &[LowerRef], name: &[u8]) -> Vec<Result<Probe>> {
        map_on_threads(dirs, |l| self.lowers[l.layer].probe(&join(&l.path, name)), "probe lower layers")
    }

    /// The ancestors of `path` in lower layer `li`, for absolute redirects.
    fn walk_ancestors(&self, li: usize, path: &[u8]) -> Result<AncestorWalk> {
        let mut result = AncestorWalk::Clear;
        for (i, _) in path.iter().enumerate().filter(|(_, b)| **b == b'/') {
            match self.lowers[li].probe(&path[..i])? {
                Probe::Missing => return Ok(AncestorWalk::Missing),
                Probe::Whiteout | Probe::NonDir(_) => return Ok(AncestorWalk::Stop),
                Probe::Dir { opaque: true, .. } => result = AncestorWalk::Opaque,
                Probe::Dir { .. } => {}
            }
        }
        Ok(result)
    }

    /// The merged lower entries of a directory node, listed on first use.
    ///
    /// The layers are read by up to `LIST_THREADS` scoped threads when there
    /// are at least `PARALLEL_LIST_MIN` of them (directory reads are syscalls
    /// that run on the calling thread's CPU, and the other cores idle while
    /// the process that asked waits), then merged top to bottom on this
    /// thread. Called with the namespace lock held (read or write); the node
    /// table lock is not held while listing, so two lookups building the same
    /// listing at once both succeed and the last one is kept.
    fn lower_names(&self, id: u64, node: &Node) -> Result<Arc<LowerNames>> {
        if let Some(m) = &node.lower_names {
            return Ok(m.clone());
        }
        let read = |l: &LowerRef| read_lower_dir(&self.lowers[l.layer], &l.path);
        let listings: Vec<Vec<(Vec<u8>, LowerEntry)>> = if node.lowers.len() >= PARALLEL_LIST_MIN {
            map_on_threads(&node.lowers, read, "list lower directories").into_iter().collect::<Result<_>>()?
        } else {
            node.lowers.iter().map(read).collect::<Result<_>>()?
        };
        let mut names = LowerNames::new();
        for (pos, entries) in listings.into_iter().enumerate() {
            let mut whiteouts = Vec::new();
            for (name, e) in entries {
                match e {
                    LowerEntry::OciWhiteout => whiteouts.push(name),
                    LowerEntry::Present => {
                        names.entry(name).or_insert(LowerName::At(pos));
                    }
                    LowerEntry::Whiteout => {
                        names.entry(name).or_insert(LowerName::Whiteout);
                    }
                }
            }
            for w in whiteouts {
                names.entry(w).or_insert(LowerName::Whiteout);
            }
        }
        let names = Arc::new(names);
        self.set_node(id, |n| n.lower_names = Some(names.clone()));
        Ok(names)
    }

    fn upper_saved_ino(&self, path: &[u8]) -> Result<Option<u64>> {
        let u = self.upper()?;
        let v = u.layer.get_xattr(path, layer::XATTR_INO).ctx("read saved inode number")?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_le_bytes))
    }

    fn upper_ino(&self, path: &[u8], st: &Stat) -> Result<u64> {
        Ok(match self.upper_saved_ino(path)? {
            Some(i) => i,
            None => self.inos.map(st.st_dev, st.st_ino),
        })
    }

    /// Whether any lower layer below the upper has something (not a whiteout) at
    /// `name` in `parent`: deleting or renaming away that name must leave a whiteout.
    fn lower_positive(&self, parent: &Node, name: &[u8]) -> Result<bool> {
        for pl in parent.lowers.iter() {
            match self.lowers[pl.layer].probe(&join(&pl.path, name))? {
                Probe::Missing => continue,
                Probe::Whiteout => return Ok(false),
                Probe::NonDir(_) | Probe::Dir { .. } => return Ok(true),
            }
        }
        Ok(false)
    }

    fn insert_node(&self, parent: u64, name: &[u8], r: Resolved) -> (u64, Node) {
        let mut t = self.table();
        let id = node_id(r.st_ino);
        let fresh = match t.nodes.get(&id) {
            Some(n) => n.unlinked || n.is_dir != r.is_dir,
            None => true,
        };
        if fresh {
            let lookups = t.nodes.get(&id).map_or(0, |n| n.lookups);
            t.remove(id);
            t.nodes.insert(
                id,
                Node {
                    parent,
                    name: name.to_vec(),
                    aliases: Vec::new(),
                    lookups,
                    is_dir: r.is_dir,
                    upper: r.upper,
                    lowers: r.lowers.into(),
                    st_ino: r.st_ino,
                    lower_names: None,
                    probed_lowers: false,
                    indexed: r.indexed,
                    unlinked: false,
                    gone: None,
                },
            );
        } else if let Some(n) = t.nodes.get_mut(&id) {
            // Another name of a known inode; some name may have been copied up since.
            n.indexed |= r.indexed;
        }
        t.attach(id, parent, name);
        let promoted = t.promote(id, parent, name);
        let n = t.nodes.get_mut(&id).expect("just inserted");
        n.lookups += 1;
        let node = n.clone();
        drop(t);
        if promoted {
            self.refresh_primary(id);
        }
        (id, node)
    }

    /// Look a name up; on success the node's lookup count grows by one.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<(u64, Stat)> {
        let _ns = self.ns.read().unwrap_or_else(|e| e.into_inner());
        self.lookup_locked(parent, name.as_bytes())
    }

    fn lookup_locked(&self, parent: u64, name: &[u8]) -> Result<(u64, Stat)> {
        let (pnode, ppath) = {
            let mut t = self.table();
            let key = (parent, name.to_vec());
            if let Some(&id) = t.children.get(&key) {
                // Known name: only its attributes are needed.
                let n = t.nodes.get_mut(&id).expect("child map points at a live node");
                n.lookups += 1;
                // The name looked up last is the one an open that follows
                // refers to (FUSE opens name no path): copy-up uses it.
                let promoted = t.promote(id, parent, name);
                let node = t.get(id)?.clone();
                let path = t.path(id)?;
                drop(t);
                if promoted {
                    self.refresh_primary(id);
                    return self.getattr(id).map(|st| (id, st));
                }
                return match self.stat_node(&node, &path) {
                    Ok(st) => Ok((id, st)),
                    Err(e) => {
                        self.forget(id, 1);
                        Err(e)
                    }
                };
            }
            let pnode = t.get(parent)?.clone();
            if !pnode.is_dir {
                return Err(Error::errno_only("lookup", Errno::NOTDIR));
            }
            (pnode, t.path(parent)?)
        };
        let r = self.resolve(parent, &pnode, &ppath, name)?.ok_or(Error::errno_only("lookup", Errno::NOENT))?;
        let quick = r.stat.filter(|st| !r.indexed && (r.is_dir || st.st_nlink <= 1));
        let (id, node) = self.insert_node(parent, name, r);
        if let (Some(mut st), true) = (quick, node.parent == parent && node.name == name) {
            // The probe's stat is the answer: fix it up as stat_node would.
            st.st_ino = node.st_ino;
            if node.is_dir && (node.upper as usize + node.lowers.len()) > 1 {
                st.st_nlink = 1;
            }
            return Ok((id, st));
        }
        // Stat through the node's primary name: for a hard link that is known
        // under another name, that name says where the data is now.
        match self.getattr(id) {
            Ok(st) => Ok((id, st)),
            Err(e) => {
                self.forget(id, 1);
                Err(e)
            }
        }
    }

    /// Drop `n` lookups of a node; the node is freed when none remain.
    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT {
            return;
        }
        let mut t = self.table();
        let gone = match t.nodes.get_mut(&id) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0
            }
            None => false,
        };
        if gone {
            t.remove(id);
        }
    }

    /// Number of nodes currently held (for tests of resource bounds).
    pub fn node_count(&self) -> usize {
        self.table().nodes.len()
    }

    fn snapshot(&self, id: u64) -> Result<(Node, Vec<u8>)> {
        let t = self.table();
        Ok((t.get(id)?.clone(), t.path(id)?))
    }

    /// Attributes of a node.
    pub fn getattr(&self, id: u64) -> Result<Stat> {
        let (node, path) = self.snapshot(id)?;
        // An unlinked node's upper path may name something new by now; its
        // lower source (or index entry) is still the object it was.
        if node.unlinked && node.upper {
            return node.gone.as_deref().copied().ok_or(Error::errno_only("getattr of unlinked node", Errno::NOENT));
        }
        self.stat_node(&node, &path)
    }

    fn stat_node(&self, node: &Node, path: &[u8]) -> Result<Stat> {
        let (layer, p) = self.real(node, path)?;
        let mut st = layer.stat(&p).ctx("stat")?;
        st.st_ino = node.st_ino;
        if !node.is_dir && (node.indexed || (node.upper && st.st_nlink > 1)) {
            if let Some(n) = self.saved_nlink(layer, &p)? {
                st.st_nlink = n as _;
            }
        }
        if node.is_dir && (node.upper as usize + node.lowers.len()) > 1 {
            st.st_nlink = 1;
        }
        Ok(st)
    }

    /// The nodes copied up since the last call (see `copied`), each once.
    pub fn take_copied(&self) -> Vec<u64> {
        let mut v = std::mem::take(&mut *self.copied.lock().unwrap_or_else(|e| e.into_inner()));
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether a node is a live directory, from the node table alone (no
    /// syscall): `Some(true)`/`Some(false)` for a known node that still has a
    /// name, `None` for an unknown or unlinked one (ask `getattr`).
    pub fn known_dir(&self, id: u64) -> Option<bool> {
        self.table().nodes.get(&id).filter(|n| !n.unlinked).map(|n| n.is_dir)
    }

    /// Whether a node's data lives in the upper layer now.
    pub fn is_upper(&self, id: u64) -> bool {
        self.table().nodes.get(&id).is_some_and(|n| n.upper)
    }

    /// Fix up a stat taken from an open descriptor of a node.
    pub fn fix_stat(&self, id: u64, fd: &OwnedFd, st: &mut Stat) {
        if let Ok(n) = self.table().get(id) {
            st.st_ino = n.st_ino;
        }
        // An indexed hard link: the index's own link does not count.
        if st.st_nlink > 0 {
            let mut buf = [0u8; 4];
            if let Ok(4) = rustix::fs::fgetxattr(fd, layer::XATTR_NLINK, &mut buf[..]) {
                st.st_nlink = u32::from_le_bytes(buf) as _;
            }
        }
    }

    /// Read a symlink.
    pub fn readlink(&self, id: u64) -> Result<Vec<u8>> {
        let (node, path) = self.snapshot(id)?;
        let (layer, p) = self.real(&node, &path)?;
        let t = rustix::fs::readlinkat(&layer.fd, layer::at(&p), Vec::new()).ctx("readlink")?;
        Ok(t.into_bytes())
    }

    /// The layer and path holding a node's data now.
    fn real<'a>(&'a self, node: &Node, path: &[u8]) -> Result<(&'a Layer, Vec<u8>)> {
        if node.upper {
            Ok((&self.upper()?.layer, path.to_vec()))
        } else if node.indexed {
            Ok((&self.upper()?.work, index_path(node.st_ino)))
        } else {
            let l = node.lowers.first().ok_or(Error::errno_only("lookup", Errno::NOENT))?;
            Ok((&self.lowers[l.layer], l.path.clone()))
        }
    }

    /// The merged entries of a directory (without `.` and `..`).
    pub fn readdir(&self, id: u64) -> Result<Vec<DirEntry>> {
        let _ns = self.ns.read().unwrap_or_else(|e| e.into_inner());
        self.readdir_locked(id)
    }

    fn readdir_locked(&self, id: u64) -> Result<Vec<DirEntry>> {
        let (node, path) = self.snapshot(id)?;
        if !node.is_dir {
            return Err(Error::errno_only("readdir", Errno::NOTDIR));
        }
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut out = Vec::new();
        let mut layers: Vec<(&Layer, Vec<u8>)> = Vec::new();
        if node.upper {
            layers.push((&self.upper()?.layer, path.clone()));
        }
        for l in node.lowers.iter() {
            layers.push((&self.lowers[l.layer], l.path.clone()));
        }
        // What the lower layers hold, read on the way, is the directory's
        // index for lookups (see `lower_names`) when it merges enough lower
        // layers to use one: the lookups that follow a listing (`ls -l`, a
        // READDIRPLUS) then list nothing again.
        let mut index = (node.lowers.len() >= LOWER_NAMES_MIN && node.lower_names.is_none()).then(LowerNames::new);
        for (i, (layer, p)) in layers.into_iter().enumerate() {
            // Position in `node.lowers` (meaningful for lower layers only).
            let pos = i.wrapping_sub(node.upper as usize);
            let dirfd = layer.open_dir(&p).ctx("open directory")?;
            let names = layer::read_entries(&dirfd).ctx("read directory")?;
            let mut hidden_here: Vec<Vec<u8>> = Vec::new();
            let mut oci_whiteouts: Vec<Vec<u8>> = Vec::new();
            for (name, ino, ft) in names {
                let indexing = layer.lower && index.as_ref().is_some_and(|m| !m.contains_key(&name));
                if seen.contains(&name) && !indexing {
                    continue;
                }
                if layer.lower && name.starts_with(WH_PREFIX) {
                    if name.as_slice() != WH_OPAQUE {
                        hidden_here.push(name[WH_PREFIX.len()..].to_vec());
                        oci_whiteouts.push(name[WH_PREFIX.len()..].to_vec());
                    }
                    continue;
                }
                let mut ft = ft;
                if ft == FileType::CharacterDevice || ft == FileType::Unknown {
                    let st = rustix::fs::statat(&dirfd, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW)
                        .ctx("stat entry")?;
                    if layer::is_whiteout(&st) {
                        if let (Some(m), true) = (index.as_mut(), indexing) {
                            m.insert(name.clone(), LowerName::Whiteout);
                        }
                        hidden_here.push(name);
                        continue;
                    }
                    ft = FileType::from_raw_mode(st.st_mode);
                }
                if let (Some(m), true) = (index.as_mut(), indexing) {
                    m.insert(name.clone(), LowerName::At(pos));
                }
                if seen.contains(&name) {
                    continue;
                }
                seen.insert(name.clone());
                out.push(DirEntry { name, kind: ft, ino: self.inos.map(layer.dev, ino) });
            }
            // A `.wh.NAME` hides NAME below its layer, not in it (as `lower_names` reads it).
            if let (Some(m), true) = (index.as_mut(), layer.lower) {
                for w in oci_whiteouts {
                    m.entry(w).or_insert(LowerName::Whiteout);
                }
            }
            seen.extend(hidden_here);
        }
        if let Some(m) = index {
            let m = Arc::new(m);
            self.set_node(id, |n| {
                n.lower_names.get_or_insert(m);
            });
        }
        Ok(out)
    }

    fn tmp_name(&self) -> Vec<u8> {
        let n = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        format!("#strata.{}.{}", std::process::id(), n).into_bytes()
    }

    /// Make sure a node exists in the upper layer (copying it and its parents up).
    ///
    /// Caller holds `ns` for writing.
    fn copy_up(&self, id: u64, with_data: bool) -> Result<()> {
        let (node, _) = self.snapshot(id)?;
        if !node.is_dir && node.indexed {
            // An indexed hard link already has its upper data (in the index).
            // As in the kernel, any copy-up through a name links that name
            // up from the index; a node with no name left just uses the index.
            if node.unlinked {
                return Ok(());
            }
            return self.copy_up_name(id, node.parent, &node.name, with_data);
        }
        if node.upper {
            return Ok(());
        }
        if node.unlinked {
            return Err(Error::errno_only("copy-up of unlinked node", Errno::NOENT));
        }
        self.copy_up_name(id, node.parent, &node.name, with_data)
    }

    /// Copy-up before an xattr change. As in the kernel, an inode that
    /// already has upper data (an indexed hard link) is changed in place,
    /// without linking the name up; anything else is copied up.
    ///
    /// Caller holds `ns` for writing.
    fn copy_up_for_xattr(&self, id: u64) -> Result<()> {
        let (node, _) = self.snapshot(id)?;
        if !node.is_dir && node.indexed {
            return Ok(());
        }
        self.copy_up(id, true)
    }

    /// Make the name (parent, name) of node `id` exist in the upper layer.
    /// A lower hard-linked file goes through the index, so every name copied
    /// up later links to the same upper inode (hard links stay linked).
    ///
    /// Caller holds `ns` for writing.
    fn copy_up_name(&self, id: u64, parent: u64, name: &[u8], with_data: bool) -> Result<()> {
        let u = self.upper()?;
        let (node, _) = self.snapshot(id)?;
        if id == ROOT || (node.is_dir && node.upper) {
            return Ok(());
        }
        self.copy_up(parent, true)?;
        let ppath = self.table().path(parent)?;
        let path = join(&ppath, name);
        let is_primary = node.parent == parent && node.name == name;
        if !node.is_dir && self.upper_has(&path) {
            if is_primary {
                self.set_node(id, |n| n.upper = true);
            }
            return Ok(());
        }
        // Copy-up is not a change users make: the parent keeps its times.
        let parent_times = copy_up::times_of(&u.layer.stat(&ppath).ctx("stat copy-up parent")?);
        let idx = index_path(node.st_ino);
        let mut indexed = node.indexed;
        if !node.is_dir && node.indexed {
            rustix::fs::linkat(&u.work.fd, layer::at(&idx), &u.layer.fd, layer::at(&path), AtFlags::empty())
                .ctx("copy-up from index")?;
        } else {
            let src = node.lowers.first().ok_or(Error::errno_only("copy-up", Errno::NOENT))?;
            let lst = self.lowers[src.layer].stat(&src.path).ctx("stat copy-up source")?;
            let index = (!node.is_dir && lst.st_nlink > 1).then_some((idx.as_slice(), lst.st_nlink as u32));
            indexed = index.is_some();
            let tmp = self.tmp_name();
            copy_up::copy_up(&self.lowers[src.layer], &src.path, u, &tmp, &path, node.st_ino, with_data, index)?;
        }
        rustix::fs::utimensat(&u.layer.fd, layer::at(&ppath), &parent_times, AtFlags::empty())
            .ctx("restore parent times")?;
        // The parent's ctime changed too (its times are restored, not its ctime).
        self.copied.lock().unwrap_or_else(|e| e.into_inner()).extend([id, parent]);
        self.set_node(id, |n| {
            if is_primary {
                n.upper = true;
            }
            n.indexed = indexed;
        });
        Ok(())
    }

    /// Keep the attributes of a node whose last name just went (see
    /// `Node::gone`). Not for regular files: those are opened through the
    /// daemon, and `getattr` of an open unlinked file answers from its
    /// descriptor (fresh size and times).
    fn remember_gone(&self, id: u64, attrs: Option<Stat>) {
        let attrs = attrs.filter(|st| st.st_mode & libc::S_IFMT != libc::S_IFREG);
        self.set_node(id, |n| {
            if n.unlinked {
                n.gone = attrs.map(|mut st| {
                    st.st_nlink = 0;
                    Box::new(st)
                });
            }
        });
    }

    fn set_node(&self, id: u64, f: impl FnOnce(&mut Node)) {
        if let Some(n) = self.table().nodes.get_mut(&id) {
            f(n);
        }
    }

    /// Whether the upper holds something other than a whiteout at `path`.
    fn upper_has(&self, path: &[u8]) -> bool {
        match &self.upper {
            Some(u) => matches!(u.layer.stat(path), Ok(st) if !layer::is_whiteout(&st)),
            None => false,
        }
    }

    fn index_exists(&self, st_ino: u64) -> bool {
        self.upper.as_ref().is_some_and(|u| u.work.stat(&index_path(st_ino)).is_ok())
    }

    fn saved_nlink(&self, layer: &Layer, path: &[u8]) -> Result<Option<u32>> {
        let v = layer.get_xattr(path, layer::XATTR_NLINK).ctx("read link count")?;
        Ok(v.and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok()).map(u32::from_le_bytes))
    }

    /// Add `delta` to the recorded link count of an indexed hard-linked file.
    fn adjust_nlink(&self, st_ino: u64, delta: i64) -> Result<()> {
        let u = self.upper()?;
        let idx = index_path(st_ino);
        if u.work.stat(&idx).is_err() {
            return Ok(());
        }
        let cur = self.saved_nlink(&u.work, &idx)?.unwrap_or(1) as i64;
        let n = (cur + delta).max(0) as u32;
        rustix::fs::lsetxattr(u.work.abs(&idx), layer::XATTR_NLINK, &n.to_le_bytes(), rustix::fs::XattrFlags::empty())
            .ctx("record link count")
    }

    /// Copy a node up for writing (open for write, truncate…). `truncating`
    /// skips the data copy when the caller is about to truncate to zero.
    pub fn copy_up_for_write(&self, id: u64, truncating: bool) -> Result<()> {
        self.upper()?;
        let _ns = self.ns.write().unwrap_or_else(|e| e.into_inner());
        self.copy_up(id, !truncating)
    }

    /// Open a node's file; write access copies it up first. The caller owns the descriptor.
    pub fn open(&self, id: u64, flags: OFlags) -> Result<OwnedFd> {
        let acc = flags & (OFlags::RDONLY | OFlags::WRONLY | OFlags::RDWR);
        let writing = acc.contains(OFlags::WRONLY) || acc.contains(OFlags::RDWR) || flags.contains(OFlags::TRUNC);
        if writing {
            self.copy_up_for_write(id, flags.contains(OFlags::TRUNC))?;
        }
        let (node, path) = self.snapshot(id)?;
        let (layer, p) = self.real(&node, &path)?;
        let keep = OFlags::RDONLY
            | OFlags::WRONLY
            | OFlags::RDWR
            | OFlags::APPEND
            | OFlags::TRUNC
            | OFlags::NONBLOCK
            | OFlags::SYNC
            | OFlags::DSYNC
            | OFlags::NOATIME
            | OFlags::DIRECTORY
            | OFlags::LARGEFILE;
        let mut f = flags & keep;
        if !node.upper && f.contains(OFlags::NOATIME) {
            f.remove(OFlags::NOATIME);
        }
        layer.open_beneath(&p, f, Mode::empty()).ctx("open")
    }

    /// EEXIST unless `name` is free in the directory `parent`; whether the
    /// upper layer holds a whiteout there (`false` when the parent is not in
    /// the upper yet: its copy-up brings no entries). The upper is probed
    /// once; lower layers only when the parent merges some.
    fn check_absent(&self, parent: u64, pnode: &Node, ppath: &[u8], name: &[u8]) -> Result<bool> {
        let exists = || Err(Error::errno_only("create", Errno::EXIST));
        if let (true, Some(u)) = (pnode.upper, &self.upper) {
            match u.layer.probe(&join(ppath, name))? {
                Probe::Whiteout => return Ok(true),
                Probe::Missing if pnode.lowers.is_empty() => return Ok(false),
                Probe::Missing => {}
                Probe::NonDir(_) | Probe::Dir { .. } => return exists(),
            }
        }
        if self.resolve(parent, pnode, ppath, name)?.is_some() {
            return exists();
        }
        Ok(false)
    }

    /// Create a new object; returns its node id, attributes and, for files, an open descriptor.
    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        kind: NewKind<'_>,
        mode: u32,
        creds: Creds,
    ) -> Result<(u64, Stat, Option<OwnedFd>)> {
        let name = name.as_bytes();
        let u = self.upper()?;
        let _ns = self.ns.write().unwrap_or_else(|e| e.into_inner());
        let (pnode, ppath) = self.snapshot(parent)?;
        if !pnode.is_dir {
            return Err(Error::errno_only("create", Errno::NOTDIR));
        }
        if pnode.unlinked {
            return Err(Error::errno_only("create in removed directory", Errno::NOENT));
        }
        let over_whiteout = self.check_absent(parent, &pnode, &ppath, name)?;
        self.copy_up(parent, true)?;
        let pst = u.layer.stat(&ppath).ctx("stat parent")?;
        let gid = if pst.st_mode & 0o2000 != 0 { pst.st_gid } else { creds.gid };
        let mut perm = mode & 0o7777;
        if matches!(kind, NewKind::Dir) && pst.st_mode & 0o2000 != 0 {
            perm |= 0o2000;
        }
        let path = join(&ppath, name);
        let mut src_ino = None;
        let mut link_src = None;
        if let NewKind::Link(src) = kind {
            // The source name itself is copied up (as the kernel does), even
            // when the inode's data is already in the upper under another name.
            let (snode, _) = self.snapshot(src)?;
            if !snode.is_dir {
                self.copy_up_name(src, snode.parent, &snode.name.clone(), true)?;
            }
            let (snode, spath) = self.snapshot(src)?;
            if snode.is_dir {
                return Err(Error::errno_only("link", Errno::PERM));
            }
            src_ino = Some(snode.st_ino);
            link_src = Some(spath);
        }
        // Objects are built in the work directory when they replace a whiteout
        // (so they appear atomically, already opaque), else directly in place.
        let (dir, target): (&Layer, Vec<u8>) =
            if over_whiteout { (&u.work, self.tmp_name()) } else { (&u.layer, path.clone()) };
        let tgt = layer::at(&target);
        let mut fd = None;
        match kind {
            NewKind::File(flags) => {
                let f = (flags & (OFlags::RDONLY | OFlags::WRONLY | OFlags::RDWR | OFlags::APPEND | OFlags::NONBLOCK))
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::CLOEXEC;
                fd = Some(rustix::fs::openat(&dir.fd, tgt, f, Mode::from_raw_mode(perm)).ctx("create")?);
            }
            NewKind::Dir => rustix::fs::mkdirat(&dir.fd, tgt, Mode::from_raw_mode(perm)).ctx("mkdir")?,
            NewKind::Special(ft, rdev) => {
                rustix::fs::mknodat(&dir.fd, tgt, ft, Mode::from_raw_mode(perm), rdev).ctx("mknod")?
            }
            NewKind::Symlink(t) => rustix::fs::symlinkat(OsStr::from_bytes(t), &dir.fd, tgt).ctx("symlink")?,
            NewKind::Link(_) => {
                let sp = link_src.as_deref().unwrap_or_default();
                rustix::fs::linkat(&u.layer.fd, layer::at(sp), &dir.fd, tgt, AtFlags::empty()).ctx("link")?
            }
        }
        // What the new object is now: created by the daemon, it may already
        // have the owner it must have (a root caller, the common case), and
        // then this stat is also the final answer.
        let created = match &fd {
            Some(f) => rustix::fs::fstat(f),
            None => rustix::fs::statat(&dir.fd, tgt, AtFlags::SYMLINK_NOFOLLOW),
        };
        let created = match created {
            Ok(st) => st,
            Err(e) => {
                let _ = rustix::fs::unlinkat(
                    &dir.fd,
                    tgt,
                    if matches!(kind, NewKind::Dir) { AtFlags::REMOVEDIR } else { AtFlags::empty() },
                );
                return Err(Error::Sys { op: "stat new object", errno: e });
            }
        };
        let is_link = matches!(kind, NewKind::Link(_));
        let chown = !is_link && (created.st_uid != creds.uid || created.st_gid != gid);
        let chmod = !is_link && !matches!(kind, NewKind::Symlink(_)) && perm & 0o7000 != 0;
        // Like the kernel, a directory made where lower layers could show
        // through (over a whiteout, or in a merged parent) is opaque.
        let opaque = matches!(kind, NewKind::Dir) && (over_whiteout || !pnode.lowers.is_empty());
        let finish = || -> Result<()> {
            if chown {
                rustix::fs::chownat(
                    &dir.fd,
                    tgt,
                    Some(rustix::fs::Uid::from_raw(creds.uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .ctx("chown new object")?;
            }
            if chmod {
                rustix::fs::chmodat(&dir.fd, tgt, Mode::from_raw_mode(perm), AtFlags::empty()).ctx("chmod")?;
            }
            if opaque {
                rustix::fs::lsetxattr(dir.abs(&target), layer::XATTR_OPAQUE, b"y", rustix::fs::XattrFlags::empty())
                    .ctx("mark opaque")?;
            }
            if over_whiteout {
                rustix::fs::renameat_with(&u.work.fd, tgt, &u.layer.fd, layer::at(&path), RenameFlags::EXCHANGE)
                    .ctx("replace whiteout")?;
                rustix::fs::unlinkat(&u.work.fd, tgt, AtFlags::empty()).ctx("remove old whiteout")?;
            }
            Ok(())
        };
        if let Err(e) = finish() {
            let _ = rustix::fs::unlinkat(
                &dir.fd,
                tgt,
                if matches!(kind, NewKind::Dir) { AtFlags::REMOVEDIR } else { AtFlags::empty() },
            );
            return Err(e);
        }
        if let Some(i) = src_ino {
            self.adjust_nlink(i, 1)?;
        }
        let changed = chown || chmod || opaque || over_whiteout || is_link;
        let st = if changed { u.layer.stat(&path).ctx("stat new object")? } else { created };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        let st_ino = match src_ino {
            Some(i) => i,
            None => self.inos.map(st.st_dev, st.st_ino),
        };
        let (id, node) = self.insert_node(
            parent,
            name,
            Resolved { is_dir, upper: true, lowers: Vec::new(), st_ino, indexed: false, stat: None },
        );
        let st = if is_link || node.parent != parent || node.name != name {
            self.stat_node(&node, &path)?
        } else {
            // A new upper-only object with one name: its stat is the answer.
            let mut st = st;
            st.st_ino = node.st_ino;
            st
        };
        Ok((id, st, fd))
    }

    /// Remove a name (`dir` selects rmdir semantics).
    pub fn remove(&self, parent: u64, name: &OsStr, dir: bool) -> Result<()> {
        let name = name.as_bytes();
        let u = self.upper()?;
        let _ns = self.ns.write().unwrap_or_else(|e| e.into_inner());
        let (id, _) = self.lookup_locked(parent, name)?;
        let res = self.remove_locked(u, parent, id, name, dir);
        self.forget(id, 1);
        res
    }

    fn remove_locked(&self, u: &Upper, parent: u64, id: u64, name: &[u8], dir: bool) -> Result<()> {
        let (node, _) = self.snapshot(id)?;
        let path = join(&self.table().path(parent)?, name);
        if dir && !node.is_dir {
            return Err(Error::errno_only("rmdir", Errno::NOTDIR));
        }
        if !dir && node.is_dir {
            return Err(Error::errno_only("unlink", Errno::ISDIR));
        }
        if node.is_dir && !self.readdir_locked(id)?.is_empty() {
            return Err(Error::errno_only("rmdir", Errno::NOTEMPTY));
        }
        self.copy_up(parent, true)?;
        self.copy_up_if_hard_link(id, &node, parent, name, &path)?;
        let (pnode, _) = self.snapshot(parent)?;
        let needs_whiteout = self.lower_positive(&pnode, name)?;
        let in_upper = if node.is_dir { node.upper } else { self.upper_has(&path) };
        let last_attrs = if in_upper { self.stat_node(&node, &path).ok() } else { None };
        if in_upper {
            if needs_whiteout {
                let tmp = self.tmp_name();
                copy_up::make_whiteout(&u.work, &tmp)?;
                rustix::fs::renameat_with(
                    &u.work.fd,
                    layer::at(&tmp),
                    &u.layer.fd,
                    layer::at(&path),
                    RenameFlags::EXCHANGE,
                )
                .ctx("replace with whiteout")?;
                copy_up::remove_tree(&u.work, &tmp)?;
            } else if node.is_dir {
                match rustix::fs::unlinkat(&u.layer.fd, layer::at(&path), AtFlags::REMOVEDIR) {
                    Ok(()) => {}
                    // A merged directory holds the whiteouts of what was
                    // deleted in it; an upper-only one is removed as it is
                    // (stray whiteouts in it make it non-empty, as with the kernel).
                    Err(Errno::NOTEMPTY) | Err(Errno::EXIST) if !node.lowers.is_empty() => {
                        let tmp = self.tmp_name();
                        rustix::fs::renameat(&u.layer.fd, layer::at(&path), &u.work.fd, layer::at(&tmp))
                            .ctx("move directory away")?;
                        copy_up::remove_tree(&u.work, &tmp)?;
                    }
                    Err(e) => return Err(Error::Sys { op: "rmdir", errno: e }),
                }
            } else {
                rustix::fs::unlinkat(&u.layer.fd, layer::at(&path), AtFlags::empty()).ctx("unlink")?;
            }
        } else {
            let tmp = self.tmp_name();
            copy_up::make_whiteout(&u.work, &tmp)?;
            rustix::fs::renameat_with(
                &u.work.fd,
                layer::at(&tmp),
                &u.layer.fd,
                layer::at(&path),
                RenameFlags::NOREPLACE,
            )
            .ctx("place whiteout")?;
        }
        if !node.is_dir {
            self.adjust_nlink(node.st_ino, -1)?;
        }
        self.table().detach(id, parent, name);
        self.remember_gone(id, last_attrs);
        self.refresh_primary(id);
        Ok(())
    }

    /// As the kernel does with index=on: a lower hard link is copied up (into
    /// the index) before one of its names goes away, so its other names keep
    /// an exact link count.
    fn copy_up_if_hard_link(&self, id: u64, node: &Node, parent: u64, name: &[u8], path: &[u8]) -> Result<()> {
        let lower_links = match node.lowers.first() {
            Some(l) if !node.is_dir => self.lowers[l.layer].stat(&l.path).map_or(1, |st| st.st_nlink),
            _ => 1,
        };
        if lower_links > 1 && !self.upper_has(path) {
            self.copy_up_name(id, parent, name, true)?;
        }
        Ok(())
    }

    /// After the names of a non-directory changed, note whether its primary
    /// name is in the upper layer.
    fn refresh_primary(&self, id: u64) {
        let Ok((node, path)) = self.snapshot(id) else {
            return;
        };
        if !node.is_dir && !node.unlinked {
            let up = self.upper_has(&path);
            self.set_node(id, |n| n.upper = up);
        }
    }

    /// Rename, with `RENAME_NOREPLACE` / `RENAME_EXCHANGE` semantics.
    pub fn rename(&self, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: RenameFlags) -> Result<()> {
        let (name, newname) = (name.as_bytes(), newname.as_bytes());
        let u = self.upper()?;
        if flags.intersects(!(RenameFlags::NOREPLACE | RenameFlags::EXCHANGE)) {
            return Err(Error::errno_only("rename", Errno::INVAL));
        }
        let _ns = self.ns.write().unwrap_or_else(|e| e.into_inner());
        let (src, _) = self.lookup_locked(parent, name)?;
        let dst = match self.lookup_locked(newparent, newname) {
            Ok((d, _)) => Some(d),
            Err(e) if e.errno() == Errno::NOENT => None,
            Err(e) => {
                self.forget(src, 1);
                return Err(e);
            }
        };
        let res = self.rename_locked(u, parent, name, src, newparent, newname, dst, flags);
        self.forget(src, 1);
        if let Some(d) = dst {
            self.forget(d, 1);
        }
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_locked(
        &self,
        u: &Upper,
        parent: u64,
        name: &[u8],
        src: u64,
        newparent: u64,
        newname: &[u8],
        dst: Option<u64>,
        flags: RenameFlags,
    ) -> Result<()> {
        let exchange = flags.contains(RenameFlags::EXCHANGE);
        if dst == Some(src) {
            return Ok(());
        }
        if flags.contains(RenameFlags::NOREPLACE) && dst.is_some() {
            return Err(Error::errno_only("rename", Errno::EXIST));
        }
        if exchange && dst.is_none() {
            return Err(Error::errno_only("rename", Errno::NOENT));
        }
        let (snode, _) = self.snapshot(src)?;
        if let (Some(d), false) = (dst, exchange) {
            let (dnode, _) = self.snapshot(d)?;
            match (snode.is_dir, dnode.is_dir) {
                (true, false) => return Err(Error::errno_only("rename", Errno::NOTDIR)),
                (false, true) => return Err(Error::errno_only("rename", Errno::ISDIR)),
                (true, true) if !self.readdir_locked(d)?.is_empty() => {
                    // Over a non-empty upper-only directory the kernel leaves
                    // the source copied up and redirected (or opaque) before
                    // the upper filesystem refuses: same on disk here.
                    if dnode.upper && dnode.lowers.is_empty() {
                        self.copy_up(parent, true)?;
                        self.copy_up(newparent, true)?;
                        self.copy_up_name(src, parent, name, true)?;
                        let (snode, _) = self.snapshot(src)?;
                        let (pnode, ppath) = self.snapshot(parent)?;
                        let (npnode, nppath) = self.snapshot(newparent)?;
                        let spath = join(&ppath, name);
                        let dpath = join(&nppath, newname);
                        let into_merged = !npnode.lowers.is_empty();
                        self.prepare_moved_dir(u, &snode, &spath, name, parent == newparent, into_merged)?;
                        // Let the upper filesystem refuse the very rename the
                        // kernel asks of it: its side effects match (ext4 gives
                        // the source's parent a new mtime when a RENAME_WHITEOUT fails).
                        let rflags = if self.lower_positive(&pnode, name)? {
                            RenameFlags::WHITEOUT
                        } else {
                            RenameFlags::empty()
                        };
                        let r = rustix::fs::renameat_with(
                            &u.layer.fd,
                            layer::at(&spath),
                            &u.layer.fd,
                            layer::at(&dpath),
                            rflags,
                        );
                        self.copied.lock().unwrap_or_else(|e| e.into_inner()).push(parent);
                        if let Err(e) = r {
                            return Err(Error::Sys { op: "rename", errno: e });
                        }
                        // Invariant: an upper-only directory that lists entries
                        // has them in the upper layer, so the rename above fails.
                        return Err(Error::errno_only("rename", Errno::NOTEMPTY));
                    }
                    return Err(Error::errno_only("rename", Errno::NOTEMPTY));
                }
                _ => {}
            }
        }
        self.copy_up(parent, true)?;
        self.copy_up(newparent, true)?;
        self.copy_up_name(src, parent, name, true)?;
        if exchange {
            if let Some(d) = dst {
                self.copy_up_name(d, newparent, newname, true)?;
            }
        }
        let (pnode, ppath) = self.snapshot(parent)?;
        let (npnode, nppath) = self.snapshot(newparent)?;
        let spath = join(&ppath, name);
        let dpath = join(&nppath, newname);
        let src_lower_here = self.lower_positive(&pnode, name)?;
        // A directory that merges lower directories keeps finding them through a
        // redirect; an upper-only directory moving onto a name that lower layers
        // hold becomes opaque.
        let (snode, _) = self.snapshot(src)?;
        self.prepare_moved_dir(u, &snode, &spath, name, parent == newparent, !npnode.lowers.is_empty())?;
        if exchange {
            let d = dst.expect("checked above");
            let (dnode, _) = self.snapshot(d)?;
            self.prepare_moved_dir(u, &dnode, &dpath, newname, parent == newparent, !pnode.lowers.is_empty())?;
            rustix::fs::renameat_with(
                &u.layer.fd,
                layer::at(&spath),
                &u.layer.fd,
                layer::at(&dpath),
                RenameFlags::EXCHANGE,
            )
            .ctx("rename exchange")?;
            let mut t = self.table();
            t.detach(src, parent, name);
            t.detach(d, newparent, newname);
            t.attach(src, newparent, newname);
            t.attach(d, parent, name);
            drop(t);
            self.refresh_primary(src);
            self.refresh_primary(d);
            return Ok(());
        }
        let dst_merged = match dst {
            Some(d) => !self.snapshot(d)?.0.lowers.is_empty(),
            None => false,
        };
        // Clear what the upper holds at the destination: a whiteout (a directory
        // cannot be renamed over one) or an emptied directory holding whiteouts.
        match u.layer.stat(&dpath) {
            Ok(st) if layer::is_whiteout(&st) && snode.is_dir => {
                rustix::fs::unlinkat(&u.layer.fd, layer::at(&dpath), AtFlags::empty()).ctx("remove whiteout")?;
            }
            Ok(st)
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory
                    && dst_merged
                    && rustix::fs::unlinkat(&u.layer.fd, layer::at(&dpath), AtFlags::REMOVEDIR).is_err() =>
            {
                // Not empty (whiteouts of what was deleted in it): move it away whole.
                let tmp = self.tmp_name();
                rustix::fs::renameat(&u.layer.fd, layer::at(&dpath), &u.work.fd, layer::at(&tmp))
                    .ctx("move replaced directory away")?;
                copy_up::remove_tree(&u.work, &tmp)?;
            }
            _ => {}
        }
        let mut dst_attrs = None;
        if let Some(d) = dst {
            let (dnode, _) = self.snapshot(d)?;
            self.copy_up_if_hard_link(d, &dnode, newparent, newname, &dpath)?;
            if !dnode.is_dir && self.upper_has(&dpath) {
                dst_attrs = self.stat_node(&dnode, &dpath).ok();
            }
        }
        let rflags = if src_lower_here { RenameFlags::WHITEOUT } else { RenameFlags::empty() };
        rustix::fs::renameat_with(&u.layer.fd, layer::at(&spath), &u.layer.fd, layer::at(&dpath), rflags)
            .ctx("rename")?;
        let mut t = self.table();
        if let Some(d) = dst {
            t.detach(d, newparent, newname);
        }
        t.detach(src, parent, name);
        t.attach(src, newparent, newname);
        drop(t);
        if let Some(d) = dst {
            self.remember_gone(d, dst_attrs);
        }
        if let Some(d) = dst {
            let (dnode, _) = self.snapshot(d)?;
            if !dnode.is_dir {
                self.adjust_nlink(dnode.st_ino, -1)?;
            }
            self.refresh_primary(d);
        }
        self.refresh_primary(src);
        Ok(())
    }

    /// Before a directory at `path` (currently named `name`) moves: one that
    /// merges lower directories gets a redirect to find them from its new
    /// place, as the kernel writes it (the old name when staying in the same
    /// directory, else an absolute path); an upper-only one moving into a
    /// merged directory (`into_merged`) becomes opaque.
    fn prepare_moved_dir(
        &self,
        u: &Upper,
        node: &Node,
        path: &[u8],
        name: &[u8],
        samedir: bool,
        into_merged: bool,
    ) -> Result<()> {
        if !node.is_dir {
            return Ok(());
        }
        let abs = u.layer.abs(path);
        if let Some(first) = node.lowers.first() {
            let current = u.layer.get_xattr(path, layer::XATTR_REDIRECT).ctx("read redirect")?;
            let wanted = match current {
                Some(r) if r.starts_with(b"/") || samedir => None,
                None if samedir => Some(name.to_vec()),
                _ => {
                    let mut v = b"/".to_vec();
                    v.extend_from_slice(&first.path);
                    Some(v)
                }
            };
            if let Some(v) = wanted {
                rustix::fs::lsetxattr(&abs, layer::XATTR_REDIRECT, &v, rustix::fs::XattrFlags::empty())
                    .ctx("set redirect")?;
            }
        } else if into_merged {
            rustix::fs::lsetxattr(&abs, layer::XATTR_OPAQUE, b"y", rustix::fs::XattrFlags::empty())
                .ctx("mark opaque")?;
        }
        Ok(())
    }

    /// Change attributes (copying up first). `size` truncates.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &self,
        id: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        times: Option<Timestamps>,
        fd: Option<&OwnedFd>,
    ) -> Result<Stat> {
        self.upper()?;
        {
            let _ns = self.ns.write().unwrap_or_else(|e| e.into_inner());
            self.copy_up(id, size != Some(0))?;
        }
        let (node, path) = self.snapshot(id)?;
        // The upper object, or the index entry of a hard link copied up under another name.
        let (layer, rpath) = self.real(&node, &path)?;
        let at = layer::at(&rpath);
        if uid.is_some() || gid.is_some() {
            rustix::fs::chownat(
                &layer.fd,
                at,
                uid.map(rustix::fs::Uid::from_raw),
                gid.map(rustix::fs::Gid::from_raw),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .ctx("chown")?;
        }
        if let Some(m) = mode {
            rustix::fs::chmodat(&layer.fd, at, Mode::from_raw_mode(m & 0o7777), AtFlags::empty()).ctx("chmod")?;
        }
        if let Some(sz) = size {
            match fd {
                Some(fd) => rustix::fs::ftruncate(fd, sz).ctx("truncate")?,
                None => {
                    let f = layer.open_beneath(&rpath, OFlags::WRONLY, Mode::empty()).ctx("open for truncate")?;
                    rustix::fs::ftruncate(&f, sz).ctx("truncate")?;
                }
            }
        }
        if let Some(ts) = times {
            rustix::fs::utimensat(&layer.fd, at, &ts, AtFlags::SYMLINK_NOFOLLOW).ctx("utimens")?;
        }
        self.stat_node(&node, &path)
    }

    /// Read one xattr; private overlay xattrs do not exist through the mount.
    pub fn getxattr(&self, id: u64, name: &OsStr) -> Result<Vec<u8>> {
        if is_private_xattr(name.as_bytes()) {
            return Err(Error::errno_only("getxattr", Errno::NODATA));
        }
        let (node, path) = self.snapshot(id)?;
        let (layer, p) = self.real(&node, &path)?;
        layer::get_xattr_path(&layer.abs(&p), name).ctx("getxattr")?.ok_or(Error::errno_only("getxattr", Errno::NODATA))
    }

    /// List xattr names, private ones left out.
    pub fn listxattr(&self, id: u64) -> Result<Vec<Vec<u8>>> {
        let (node, path) = self.snapshot(id)?;
        let (layer, p) = self.real(&node, &path)?;
        Ok(layer::list_xattr_path(&layer.abs(&p))
            .ctx("listxattr")?
            .into_iter()
            .filter(|n| !is_private_xattr(n))
            .collect())
    }

    /// Set an xattr (copying up first).
    pub fn setxattr(&self, id: u64, name: &OsStr, value: &[u8], flags: rustix::fs::XattrFlags) -> Result<()> {
        if is_private_xattr(name.as_bytes()) {
            return Err(Error::errno_only("setxattr", Errno::PERM));
        }
        self.upper()?;
        {
            let _ns = self.ns.write().unwrap_or_else(|e| e.into_inner());
            self.copy_up_for_xattr(id)?;
        }
        let (node, path) = self.snapshot(id)?;
        let (layer, rpath) = self.real(&node, &path)?;
        rustix::fs::lsetxattr(layer.abs(&rpath), name, value, flags).ctx("setxattr")
    }

    /// Remove an xattr (copying up only when it exists).
    pub fn removexattr(&self, id: u64, name: &OsStr) -> Result<()> {
        if is_private_xattr(name.as_bytes()) {
            return Err(Error::errno_only("removexattr", Errno::NODATA));
        }
        self.upper()?;
        self.getxattr(id, name)?;
        {
            let _ns = self.ns.write().unwrap_or_else(|e| e.into_inner());
            self.copy_up_for_xattr(id)?;
        }
        let (node, path) = self.snapshot(id)?;
        let (layer, rpath) = self.real(&node, &path)?;
        rustix::fs::lremovexattr(layer.abs(&rpath), name).ctx("removexattr")
    }

    /// Filesystem statistics of the upper layer (or the top lower one).
    pub fn statfs(&self) -> Result<rustix::fs::StatVfs> {
        let l = match &self.upper {
            Some(u) => &u.layer,
            None => &self.lowers[0],
        };
        let fd = l.open_dir(b"").ctx("open layer")?;
        rustix::fs::fstatvfs(&fd).ctx("statfs")
    }
}
