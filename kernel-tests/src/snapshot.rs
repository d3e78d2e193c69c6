//! Snapshots of a directory tree (through a mount, or an upper directory's
//! raw on-disk content) and their comparison.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::errno::{errno_name, errno_of};
use crate::path::{show_bytes, show_short, RelPath};
use crate::spec::FIXED_TIME_LIMIT;

/// File type of a snapshot node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FType {
    /// Directory.
    Dir,
    /// Regular file.
    File,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Character device (other than 0/0 in a raw upper snapshot).
    CharDev,
    /// Block device.
    BlockDev,
    /// Socket.
    Socket,
    /// A kernel-format whiteout (0/0 character device) in a raw upper snapshot.
    Whiteout,
}

impl FType {
    fn name(self) -> &'static str {
        match self {
            FType::Dir => "dir",
            FType::File => "file",
            FType::Symlink => "symlink",
            FType::Fifo => "fifo",
            FType::CharDev => "chardev",
            FType::BlockDev => "blockdev",
            FType::Socket => "socket",
            FType::Whiteout => "WHITEOUT",
        }
    }
}

/// xattrs as (name, value) pairs sorted by name.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// A modification time: exact when deterministic (set by the harness or a
/// `utimens` op, i.e. before [`FIXED_TIME_LIMIT`]), else just "recent".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MTime {
    /// Seconds and nanoseconds.
    Fixed(i64, i64),
    /// Set by the filesystem to "now" at some point of the test.
    Recent,
}

/// One entry of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Path relative to the snapshot root (root = empty path, printed `.`).
    pub path: RelPath,
    /// Set when the entry could not be examined (readdir listed it but lstat
    /// failed, …): the errno and the failing call. Other fields are then zero.
    pub error: Option<String>,
    /// Type.
    pub ftype: FType,
    /// Permission bits with setuid/setgid/sticky (`st_mode & 07777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `st_size` for regular files and symlinks.
    pub size: Option<u64>,
    /// sha256 (hex) of a regular file's content.
    pub sha256: Option<String>,
    /// The content of small regular files (≤ 64 bytes), for readable diffs.
    pub content: Option<Vec<u8>>,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// `st_nlink`.
    pub nlink: u64,
    /// Device numbers of character/block devices.
    pub rdev: Option<(u32, u32)>,
    /// xattrs (name, value), sorted by name.
    pub xattrs: Xattrs,
    /// Index (in `Tree::nodes`) of the first node with the same `st_ino`.
    pub inode_group: usize,
    /// Modification time.
    pub mtime: MTime,
}

/// A snapshot: nodes in walk order (parents before children, siblings sorted
/// by name bytes).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tree {
    /// The nodes, root first.
    pub nodes: Vec<Node>,
}

/// What [`Tree::diff`] compares.
#[derive(Clone, Copy, Debug)]
pub struct CompareOptions {
    /// Compare `st_nlink` of directories (always compared for others).
    pub dir_nlink: bool,
    /// Compare modification times (exact when fixed, else class "recent").
    pub mtime: bool,
    /// Compare which paths share an inode number.
    pub inode_groups: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions { dir_nlink: true, mtime: true, inode_groups: true }
    }
}

/// Snapshot of a directory as a program sees it (through a mount): every
/// entry, symlinks not followed, all xattrs that are listed.
pub fn snapshot(root: &Path) -> io::Result<Tree> {
    walk(root, false)
}

/// Snapshot of an upper directory's raw content, as the kernel's on-disk
/// format defines it: whiteouts (0/0 character devices) are typed `WHITEOUT`
/// (mode/owner/time/link count not compared: the kernel shares one inode
/// between whiteouts), and of the overlay's private xattrs only `opaque`,
/// `redirect`, `metacopy`, `whiteout` and `whiteouts` are kept (`origin`,
/// `impure`, `uuid`, `nlink`, … hold file handles and inode numbers).
pub fn snapshot_upper(upper: &Path) -> io::Result<Tree> {
    walk(upper, true)
}

fn walk(root: &Path, raw: bool) -> io::Result<Tree> {
    fs::symlink_metadata(root)?;
    let mut tree = Tree::default();
    let mut inos: HashMap<u64, usize> = HashMap::new();
    visit(root, &RelPath::root(), raw, &mut tree, &mut inos);
    Ok(tree)
}

fn err_node(path: &RelPath, what: &str, e: &io::Error) -> Node {
    Node {
        path: path.clone(),
        error: Some(format!("{what}: {}", errno_name(errno_of(e)))),
        ftype: FType::File,
        mode: 0,
        uid: 0,
        gid: 0,
        size: None,
        sha256: None,
        content: None,
        target: None,
        nlink: 0,
        rdev: None,
        xattrs: Vec::new(),
        inode_group: 0,
        mtime: MTime::Recent,
    }
}

fn visit(root: &Path, rel: &RelPath, raw: bool, tree: &mut Tree, inos: &mut HashMap<u64, usize>) {
    let p = rel.under(root);
    let idx = tree.nodes.len();
    let md = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        // A kernel quirk: a directory that exists in one lower layer only is
        // listed as it is on disk, so a whiteout in it shows in readdir while
        // lstat says ENOENT. strata does not list such ghosts; they are not
        // compared.
        Err(e) if !raw && e.raw_os_error() == Some(libc::ENOENT) => return,
        Err(e) => {
            let mut n = err_node(rel, "lstat", &e);
            n.inode_group = idx;
            tree.nodes.push(n);
            return;
        }
    };
    let ft = md.file_type();
    let mut ftype = if ft.is_dir() {
        FType::Dir
    } else if ft.is_file() {
        FType::File
    } else if ft.is_symlink() {
        FType::Symlink
    } else if ft.is_fifo() {
        FType::Fifo
    } else if ft.is_char_device() {
        FType::CharDev
    } else if ft.is_block_device() {
        FType::BlockDev
    } else {
        FType::Socket
    };
    let rdev = (ft.is_char_device() || ft.is_block_device()).then(|| {
        let d = md.rdev();
        (rustix::fs::major(d), rustix::fs::minor(d))
    });
    let whiteout = raw && ftype == FType::CharDev && rdev == Some((0, 0));
    if whiteout {
        ftype = FType::Whiteout;
    }
    let mut node = Node {
        path: rel.clone(),
        error: None,
        ftype,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: (ft.is_file() || ft.is_symlink()).then_some(md.size()),
        sha256: None,
        content: None,
        target: None,
        nlink: md.nlink(),
        rdev,
        xattrs: Vec::new(),
        inode_group: *inos.entry(md.ino()).or_insert(idx),
        mtime: mtime_class(md.mtime(), md.mtime_nsec()),
    };
    if whiteout {
        node.mode = 0;
        node.uid = 0;
        node.gid = 0;
        node.nlink = 0;
        node.rdev = None;
        node.inode_group = idx;
        node.mtime = MTime::Recent;
    }
    if ft.is_file() {
        match fs::read(&p) {
            Ok(data) => {
                node.sha256 = Some(hex(&Sha256::digest(&data)));
                if data.len() <= 64 {
                    node.content = Some(data);
                }
            }
            Err(e) => node.error = Some(format!("read: {}", errno_name(errno_of(&e)))),
        }
    }
    if ft.is_symlink() {
        match fs::read_link(&p) {
            Ok(t) => node.target = Some(t.as_os_str().as_bytes().to_vec()),
            Err(e) => node.error = Some(format!("readlink: {}", errno_name(errno_of(&e)))),
        }
    }
    match list_xattrs(&p) {
        Ok(x) => node.xattrs = x.into_iter().filter(|(n, _)| !raw || keep_raw_xattr(n)).collect(),
        Err(e) => node.error = Some(format!("xattrs: {e}")),
    }
    tree.nodes.push(node);
    if ft.is_dir() {
        let mut names = Vec::new();
        match fs::read_dir(&p) {
            Ok(rd) => {
                for ent in rd {
                    match ent {
                        Ok(ent) => names.push(ent.file_name().as_bytes().to_vec()),
                        Err(e) => {
                            tree.nodes[idx].error = Some(format!("readdir: {}", errno_name(errno_of(&e))));
                            break;
                        }
                    }
                }
            }
            Err(e) => tree.nodes[idx].error = Some(format!("opendir: {}", errno_name(errno_of(&e)))),
        }
        names.sort();
        let before = names.len();
        names.dedup();
        if names.len() != before {
            tree.nodes[idx].error = Some("readdir returned duplicate names".to_string());
        }
        for n in names {
            visit(root, &rel.join(n), raw, tree, inos);
        }
    }
}

fn keep_raw_xattr(name: &[u8]) -> bool {
    for prefix in [&b"trusted.overlay."[..], &b"user.overlay."[..]] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return matches!(rest, b"opaque" | b"redirect" | b"metacopy" | b"whiteout" | b"whiteouts");
        }
    }
    true
}

fn mtime_class(sec: i64, nsec: i64) -> MTime {
    if sec < FIXED_TIME_LIMIT {
        MTime::Fixed(sec, nsec)
    } else {
        MTime::Recent
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// All xattrs of `p` (not following a final symlink), sorted by name.
pub fn list_xattrs(p: &Path) -> Result<Xattrs, String> {
    let mut buf = vec![0u8; 256];
    let names = loop {
        match rustix::fs::llistxattr(p, &mut buf[..]) {
            Ok(n) => break buf[..n].to_vec(),
            Err(rustix::io::Errno::RANGE) => buf.resize(buf.len() * 4, 0),
            Err(e) if e == rustix::io::Errno::NOTSUP => return Ok(Vec::new()),
            Err(e) => return Err(format!("llistxattr: {}", errno_name(e))),
        }
        if buf.len() > 1 << 20 {
            return Err("llistxattr: list too large".into());
        }
    };
    let mut out = Vec::new();
    for name in names.split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let mut vbuf = vec![0u8; 256];
        let value = loop {
            match rustix::fs::lgetxattr(p, name, &mut vbuf[..]) {
                Ok(n) => break Ok(vbuf[..n].to_vec()),
                Err(rustix::io::Errno::RANGE) if vbuf.len() < 1 << 20 => vbuf.resize(vbuf.len() * 4, 0),
                Err(e) => break Err(e),
            }
        };
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            Err(e) => out.push((name.to_vec(), format!("<lgetxattr: {}>", errno_name(e)).into())),
        }
    }
    out.sort();
    Ok(out)
}

impl Node {
    /// One line describing this node under `opts`.
    pub fn render(&self, tree: &Tree, opts: &CompareOptions) -> String {
        let mut s = format!("{} ", self.path);
        if let Some(e) = &self.error {
            let _ = write!(s, "ERROR({e}) ");
        }
        let _ = write!(s, "{} {:04o} {}:{}", self.ftype.name(), self.mode, self.uid, self.gid);
        if let Some((ma, mi)) = self.rdev {
            let _ = write!(s, " rdev={ma}:{mi}");
        }
        if let Some(t) = &self.target {
            let _ = write!(s, " -> {}", show_bytes(t));
        }
        if self.ftype == FType::File {
            match (&self.content, &self.sha256) {
                (Some(c), _) => {
                    let _ = write!(s, " content={}", show_bytes(c));
                }
                (None, Some(h)) => {
                    let _ = write!(s, " size={} sha256={}", self.size.unwrap_or(0), &h[..16]);
                }
                (None, None) => {}
            }
        } else if let Some(sz) = self.size {
            let _ = write!(s, " size={sz}");
        }
        let nlink = self.ftype != FType::Dir || opts.dir_nlink;
        if nlink && self.ftype != FType::Whiteout {
            let _ = write!(s, " nlink={}", self.nlink);
        }
        if opts.inode_groups {
            if let Some(first) = tree.nodes.get(self.inode_group) {
                if first.path != self.path {
                    let _ = write!(s, " same-inode-as={}", first.path);
                }
            }
        }
        if opts.mtime && self.ftype != FType::Whiteout {
            match self.mtime {
                MTime::Fixed(sec, ns) => {
                    let _ = write!(s, " mtime={sec}.{ns:09}");
                }
                MTime::Recent => s.push_str(" mtime=recent"),
            }
        }
        if !self.xattrs.is_empty() {
            s.push_str(" xattrs{");
            for (i, (n, v)) in self.xattrs.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{}={}", String::from_utf8_lossy(n), show_short(v));
            }
            s.push('}');
        }
        s
    }
}

impl Tree {
    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        let p = RelPath::new(path);
        self.nodes.iter().find(|n| n.path == p)
    }

    /// All lines, one per node.
    pub fn render(&self, opts: &CompareOptions) -> Vec<String> {
        self.nodes.iter().map(|n| n.render(self, opts)).collect()
    }

    /// Differences as lines: `- {a_name}: …` for `self`, `+ {b_name}: …` for
    /// `other`; empty when equal under `opts`.
    pub fn diff(&self, other: &Tree, opts: &CompareOptions, a_name: &str, b_name: &str) -> Vec<String> {
        let a: BTreeMap<&RelPath, String> = self.nodes.iter().map(|n| (&n.path, n.render(self, opts))).collect();
        let b: BTreeMap<&RelPath, String> = other.nodes.iter().map(|n| (&n.path, n.render(other, opts))).collect();
        let mut paths: Vec<&&RelPath> = a.keys().chain(b.keys()).collect();
        paths.sort();
        paths.dedup();
        let w = a_name.len().max(b_name.len());
        let mut out = Vec::new();
        for p in paths {
            let (la, lb) = (a.get(*p), b.get(*p));
            if la == lb {
                continue;
            }
            match la {
                Some(l) => out.push(format!("- {a_name:w$}: {l}")),
                None => out.push(format!("- {a_name:w$}: {p} (absent)")),
            }
            match lb {
                Some(l) => out.push(format!("+ {b_name:w$}: {l}")),
                None => out.push(format!("+ {b_name:w$}: {p} (absent)")),
            }
        }
        out
    }
}
