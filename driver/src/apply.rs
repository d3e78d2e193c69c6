//! Applying a layer tar to a layer directory, safely and in one streaming
//! pass, while recording its [tar-split](crate::tarsplit).
//!
//! # Safety contract
//!
//! Nothing outside the layer directory is ever created, changed or deleted,
//! whatever the tar holds:
//! - names are cleaned lexically (empty and `.` components dropped, a
//!   leading `/` ignored) and any `..` component is refused;
//! - every parent directory is resolved with `openat2(RESOLVE_IN_ROOT)` from
//!   the layer root, so a symlink met on the way (absolute or relative) is
//!   resolved as if the layer were `/` and can never lead outside; missing
//!   parents are created (0755) one component at a time below a resolved
//!   directory;
//! - the final component is never followed: existing entries are replaced
//!   with `unlinkat`/`mkdirat`/`openat(O_EXCL|O_NOFOLLOW)` on the resolved
//!   parent, and metadata is set with `*at(AT_SYMLINK_NOFOLLOW)` or on the
//!   descriptor just created;
//! - a hard link must name an earlier non-directory entry of the same tar;
//! - whiteout names are checked (`.wh.`, `.wh..`, `.wh...` and `.wh..wh.*`
//!   other than the opaque marker are refused), and a whiteout can only
//!   remove a child of a directory resolved inside the layer;
//! - the layer root can only be given directory metadata (`./` as a
//!   directory), never replaced.
//!
//! Other checks: entry types outside ustar/GNU/PAX basics are refused; PAX
//! `size` always wins over the header's; names and link targets are at most
//! [`MAX_PATH`] bytes; an extended header is at most 1 MiB; xattrs are
//! bounded in number and size, and overlay-private ones (`trusted.overlay.*`,
//! `user.overlay.*`) are dropped. A truncated or corrupt tar fails with
//! [`Error::Malformed`].
//!
//! # On-disk result
//!
//! [`Format::Overlay`] writes the kernel overlay format (whiteout = character
//! device 0/0, opaque directory = `trusted.overlay.opaque=y`; a directory
//! replacing a whiteout of the same layer is made opaque). [`Format::Vfs`]
//! applies deletions for real: a whiteout removes the path, an opaque marker
//! removes every child not written by this tar.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, XattrFlags};
use rustix::io::Errno;

use crate::sys::{at, io_err, join, lstat_at, os, remove_at, split, times};
use crate::tarfmt::{
    checksum_ok, field_str, padding, parse_num, parse_pax, pax_time, pax_u64, BLOCK, MAX_EXT_HEADER, MAX_PATH,
    MAX_XATTRS, MAX_XATTR_NAME, MAX_XATTR_VALUE,
};
use crate::tarsplit::SplitWriter;
use crate::{Applied, Error, Result};

/// How deletions are represented in the layer directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Kernel overlay format (the layer is an overlay upper/lower dir).
    Overlay,
    /// Deletions applied to a full copy of the parent tree.
    Vfs,
}

/// Name of the OCI opaque marker.
pub(crate) const WH_OPAQUE: &[u8] = b".wh..wh..opq";
/// Prefix of OCI whiteouts.
pub(crate) const WH_PREFIX: &[u8] = b".wh.";
/// The kernel's opaque xattr.
pub(crate) const XATTR_OPAQUE: &str = "trusted.overlay.opaque";

/// Most extended headers (PAX/GNU) accepted before one entry.
const MAX_EXT_CHAIN: usize = 16;

fn unsafe_entry(path: &[u8], why: &'static str) -> Error {
    Error::Unsafe { path: String::from_utf8_lossy(path).into_owned(), why }
}

fn malformed(s: impl Into<String>) -> Error {
    Error::Malformed(s.into())
}

/// Clean a tar name: drop empty and `.` components (so `/a`, `./a/` and
/// `a` are the same), refuse `..`. The empty result is the layer root.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.len() > MAX_PATH {
        return Err(unsafe_entry(&raw[..64], "path longer than 4096 bytes"));
    }
    if raw.contains(&0) {
        return Err(malformed("NUL byte in a path"));
    }
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        if comp.is_empty() || comp == b"." {
            continue;
        }
        if comp == b".." {
            return Err(unsafe_entry(raw, "path has a '..' component"));
        }
        if comp.len() > 255 {
            return Err(unsafe_entry(raw, "path component longer than 255 bytes"));
        }
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(comp);
    }
    Ok(out)
}

/// What a `.wh.` name means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Whiteout<'a> {
    /// Not a whiteout name.
    No,
    /// `.wh..wh..opq`: the parent directory hides lower content.
    Opaque,
    /// `.wh.NAME`: NAME is deleted.
    Of(&'a [u8]),
}

/// Classify a base name; malformed whiteout names are an error.
pub(crate) fn whiteout_of<'a>(raw: &[u8], base: &'a [u8]) -> Result<Whiteout<'a>> {
    let Some(target) = base.strip_prefix(WH_PREFIX) else {
        return Ok(Whiteout::No);
    };
    if base == WH_OPAQUE {
        return Ok(Whiteout::Opaque);
    }
    if target.is_empty() || target == b"." || target == b".." {
        return Err(unsafe_entry(raw, "malformed whiteout name"));
    }
    if target.starts_with(WH_PREFIX) {
        return Err(unsafe_entry(raw, "unsupported whiteout metadata name (.wh..wh.*)"));
    }
    Ok(Whiteout::Of(target))
}

/// Extended-header values pending for the next entry.
#[derive(Default)]
struct Ext {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    chain: usize,
}

impl Ext {
    fn pax(&mut self, data: &[u8]) -> Result<()> {
        for (k, v) in parse_pax(data)? {
            match k {
                b"path" => self.path = Some(v.to_vec()),
                b"linkpath" => self.link = Some(v.to_vec()),
                b"size" => self.size = Some(pax_u64(v, "size")?),
                b"uid" => self.uid = Some(pax_u64(v, "uid")?),
                b"gid" => self.gid = Some(pax_u64(v, "gid")?),
                b"mtime" => self.mtime = Some(pax_time(v)?),
                _ if k.starts_with(b"SCHILY.xattr.") => {
                    let name = &k[b"SCHILY.xattr.".len()..];
                    if name.is_empty() || name.len() > MAX_XATTR_NAME || v.len() > MAX_XATTR_VALUE {
                        return Err(malformed("xattr name or value too large"));
                    }
                    self.xattrs.retain(|(n, _)| n != name);
                    if self.xattrs.len() >= MAX_XATTRS {
                        return Err(malformed("too many xattrs on one entry"));
                    }
                    self.xattrs.push((name.to_vec(), v.to_vec()));
                }
                _ if k.starts_with(b"GNU.sparse.") => return Err(malformed("sparse files are not supported")),
                _ => {} // atime, ctime, uname, gname, comment, charset, vendor keys
            }
        }
        Ok(())
    }
}

/// One parsed entry.
struct Entry {
    raw_name: Vec<u8>,
    path: Vec<u8>,
    flag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    size: u64,
    link: Vec<u8>,
    dev: (u32, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The input stream, buffered and counted.
struct Input<'a> {
    r: BufReader<&'a mut dyn Read>,
    count: u64,
}

impl Input<'_> {
    /// Fill `buf` completely, or return how much was read before EOF.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read layer tar", "input", e)),
            }
        }
        self.count += n as u64;
        Ok(n)
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        if self.fill(buf)? != buf.len() {
            return Err(malformed(format!("truncated tar (in {what})")));
        }
        Ok(())
    }

    /// Pass `n` bytes to `sink` in chunks, straight from the read buffer.
    fn stream(&mut self, mut n: u64, what: &str, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        while n > 0 {
            let b = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read layer tar", "input", e)),
            };
            if b.is_empty() {
                return Err(malformed(format!("truncated tar (in {what})")));
            }
            let k = (b.len() as u64).min(n) as usize;
            sink(&b[..k])?;
            self.r.consume(k);
            self.count += k as u64;
            n -= k as u64;
        }
        Ok(())
    }

    /// Everything up to EOF, to `sink`.
    fn rest(&mut self, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        loop {
            let b = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("read layer tar", "input", e)),
            };
            if b.is_empty() {
                return Ok(());
            }
            let k = b.len();
            sink(b)?;
            self.r.consume(k);
            self.count += k as u64;
        }
    }
}

/// Apply `tar` to the layer content directory `root` (which must exist),
/// writing its tar-split to `split`. Reads `tar` to its end.
pub(crate) fn apply(root: &Path, format: Format, tar: &mut dyn Read, split: &mut dyn Write) -> Result<Applied> {
    let root_fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io_err("open layer directory", root, e))?;
    let mut ap = Applier {
        root: root_fd,
        format,
        nondirs: HashSet::new(),
        unpacked: HashSet::new(),
        dir_times: Vec::new(),
        cache: None,
        size: 0,
    };
    let mut sw = SplitWriter::new(split)?;
    let mut input = Input { r: BufReader::with_capacity(256 * 1024, tar), count: 0 };
    let mut ext = Ext::default();
    loop {
        let mut h = [0u8; BLOCK];
        let n = input.fill(&mut h)?;
        if n == 0 {
            if ext.chain > 0 {
                return Err(malformed("truncated tar (extended header without its entry)"));
            }
            break; // EOF at a block boundary without an end marker: accepted, as Go does.
        }
        if n < BLOCK {
            return Err(malformed("truncated tar (in a header block)"));
        }
        sw.raw(&h)?;
        if h.iter().all(|&b| b == 0) {
            if ext.chain > 0 {
                return Err(malformed("extended header followed by the end of the archive"));
            }
            // End of archive: keep everything after it byte for byte.
            input.rest(&mut |b| sw.raw(b))?;
            break;
        }
        if !checksum_ok(&h)? {
            return Err(malformed("header checksum mismatch (corrupt or not a tar)"));
        }
        let flag = h[156];
        let hsize = parse_num(&h[124..136], "size")?;
        if hsize < 0 {
            return Err(malformed("negative size"));
        }
        match flag {
            b'x' | b'g' | b'L' | b'K' => {
                // A global header stands alone; the others belong to the next entry.
                ext.chain += usize::from(flag != b'g');
                if ext.chain > MAX_EXT_CHAIN {
                    return Err(malformed("too many extended headers for one entry"));
                }
                let limit = if matches!(flag, b'L' | b'K') { MAX_PATH as u64 + 1 } else { MAX_EXT_HEADER };
                if hsize as u64 > limit {
                    return Err(malformed(format!("extended header of {hsize} bytes is too large")));
                }
                let mut data = vec![0u8; hsize as usize];
                input.exact(&mut data, "an extended header")?;
                sw.raw(&data)?;
                let mut pad = vec![0u8; padding(hsize as u64) as usize];
                input.exact(&mut pad, "padding")?;
                sw.raw(&pad)?;
                match flag {
                    b'x' => ext.pax(&data)?,
                    b'g' => {
                        // Global headers are validated, not applied (layers never rely on them).
                        parse_pax(&data)?;
                    }
                    b'L' => ext.path = Some(field_str(&data).to_vec()),
                    _ => ext.link = Some(field_str(&data).to_vec()),
                }
                continue;
            }
            _ => {}
        }
        let e = parse_entry(&h, std::mem::take(&mut ext), hsize as u64)?;
        ap.entry(&e, &mut input, &mut sw)?;
    }
    ap.finish()?;
    let total = sw.finish()?;
    debug_assert_eq!(total, input.count);
    Ok(Applied { size: ap.size, tar_bytes: input.count })
}

fn parse_entry(h: &[u8; BLOCK], ext: Ext, hsize: u64) -> Result<Entry> {
    let ustar = &h[257..263] == b"ustar\0";
    let raw_name = match ext.path {
        Some(p) => p,
        None => {
            let name = field_str(&h[0..100]);
            let prefix = if ustar { field_str(&h[345..500]) } else { b"" };
            if prefix.is_empty() {
                name.to_vec()
            } else {
                [prefix, name].join(&b'/')
            }
        }
    };
    let link = ext.link.unwrap_or_else(|| field_str(&h[157..257]).to_vec());
    if link.len() > MAX_PATH || link.contains(&0) {
        return Err(malformed("link target too long or with a NUL byte"));
    }
    let id = |v: Option<u64>, f: &[u8], what: &str| -> Result<u32> {
        let v = match v {
            Some(v) => v as i64,
            None => parse_num(f, what)?,
        };
        u32::try_from(v).ok().filter(|&v| v != u32::MAX).ok_or_else(|| malformed(format!("{what} out of range")))
    };
    let uid = id(ext.uid, &h[108..116], "uid")?;
    let gid = id(ext.gid, &h[116..124], "gid")?;
    let mtime = match ext.mtime {
        Some(t) => t,
        None => (parse_num(&h[136..148], "mtime")?, 0),
    };
    let mode = (parse_num(&h[100..108], "mode")? & 0o7777) as u32;
    let flag = h[156];
    let dev = if matches!(flag, b'3' | b'4') {
        let maj = parse_num(&h[329..337], "devmajor")?;
        let min = parse_num(&h[337..345], "devminor")?;
        (
            u32::try_from(maj).map_err(|_| malformed("bad devmajor"))?,
            u32::try_from(min).map_err(|_| malformed("bad devminor"))?,
        )
    } else {
        (0, 0)
    };
    let path = clean_path(&raw_name)?;
    Ok(Entry {
        raw_name,
        path,
        flag,
        mode,
        uid,
        gid,
        mtime,
        size: ext.size.unwrap_or(hsize),
        link,
        dev,
        xattrs: ext.xattrs,
    })
}

struct Applier {
    /// `O_PATH` descriptor of the layer root.
    root: OwnedFd,
    format: Format,
    /// Non-directory paths written by this tar (valid hard-link targets).
    nondirs: HashSet<Vec<u8>>,
    /// Vfs: paths written by this tar and their ancestors (kept by an opaque marker).
    unpacked: HashSet<Vec<u8>>,
    /// Directory times, set at the end (children change their parent's mtime).
    dir_times: Vec<(Vec<u8>, (i64, u32))>,
    /// The last parent directory resolved: (path, descriptor).
    cache: Option<(Vec<u8>, Arc<OwnedFd>)>,
    size: u64,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS).union(ResolveFlags::NO_XDEV);

/// What was at an entry's place before it.
enum Leaf {
    Absent,
    KeepDir,
    Replaced { was_whiteout: bool },
}

impl Applier {
    fn open_in_root(&self, path: &[u8], flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
        rustix::fs::openat2(&self.root, at(path), flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE)
    }

    /// The resolved directory `parent` (created if missing), for entry `raw`.
    fn parent_dir(&mut self, parent: &[u8], raw: &[u8]) -> Result<Arc<OwnedFd>> {
        if let Some((p, fd)) = &self.cache {
            if p == parent {
                return Ok(fd.clone());
            }
        }
        let fd = match self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.make_parents(parent, raw)?,
            Err(e) => return Err(parent_error(raw, e)),
        };
        let fd = Arc::new(fd);
        self.cache = Some((parent.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Resolve `parent` one component at a time from the layer root,
    /// creating missing directories (0755). Symlinks met on the way are
    /// followed as `RESOLVE_IN_ROOT` would (absolute targets from the layer
    /// root, `..` never above it), so even a dangling one leads to a
    /// directory created inside the layer.
    fn make_parents(&mut self, parent: &[u8], raw: &[u8]) -> Result<OwnedFd> {
        let root =
            rustix::fs::openat(&self.root, ".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io_err("open layer root", "", e))?;
        // dirs[i] is the directory at real[..i].
        let mut dirs: Vec<OwnedFd> = vec![root];
        let mut real: Vec<Vec<u8>> = Vec::new();
        let mut todo: std::collections::VecDeque<Vec<u8>> = parent.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(comp) = todo.pop_front() {
            if comp.is_empty() || comp == b"." {
                continue;
            }
            if comp == b".." {
                if !real.is_empty() {
                    real.pop();
                    dirs.pop();
                }
                continue;
            }
            let cur = dirs.last().expect("root stays");
            let here = real.join(&b'/');
            let path = join(&here, &comp);
            let st = lstat_at(cur, &comp).map_err(|e| io_err("stat", os(&path), e))?;
            match st.as_ref().map(crate::sys::ftype) {
                None => {
                    rustix::fs::mkdirat(cur, os(&comp), Mode::from_raw_mode(0o755))
                        .map_err(|e| io_err("create parent directory", os(&path), e))?;
                    rustix::fs::chmodat(cur, os(&comp), Mode::from_raw_mode(0o755), AtFlags::empty())
                        .map_err(|e| io_err("chmod parent directory", os(&path), e))?;
                    if self.format == Format::Vfs {
                        self.mark_unpacked(&path);
                    }
                }
                Some(FileType::Directory) => {}
                Some(FileType::Symlink) => {
                    links += 1;
                    if links > 40 {
                        return Err(unsafe_entry(raw, "too many symlinks in a parent"));
                    }
                    let target = rustix::fs::readlinkat(cur, os(&comp), Vec::new())
                        .map_err(|e| io_err("read link", os(&path), e))?
                        .into_bytes();
                    if target.starts_with(b"/") {
                        real.clear();
                        dirs.truncate(1);
                    }
                    for c in target.split(|&b| b == b'/').rev() {
                        todo.push_front(c.to_vec());
                    }
                    continue;
                }
                Some(_) => return Err(unsafe_entry(raw, "a parent is not a directory")),
            }
            let fd = rustix::fs::openat(
                cur,
                os(&comp),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err("open parent directory", os(&path), e))?;
            dirs.push(fd);
            real.push(comp);
        }
        Ok(dirs.pop().expect("root stays"))
    }

    /// Clear what is at `name` unless both it and the new entry are directories.
    fn prepare_leaf(&mut self, dir: &OwnedFd, name: &[u8], path: &[u8], new_is_dir: bool) -> Result<Leaf> {
        let st = lstat_at(dir, name).map_err(|e| io_err("stat", os(path), e))?;
        let Some(st) = st else { return Ok(Leaf::Absent) };
        let is_dir = crate::sys::ftype(&st) == FileType::Directory;
        if is_dir && new_is_dir {
            return Ok(Leaf::KeepDir);
        }
        let was_whiteout = self.format == Format::Overlay && crate::sys::is_whiteout(&st);
        remove_at(dir, name).map_err(|e| io_err("remove", os(path), e))?;
        // A removed directory or symlink may be on the cached parent's path.
        self.cache = None;
        self.nondirs.remove(path);
        Ok(Leaf::Replaced { was_whiteout })
    }

    fn mark_unpacked(&mut self, path: &[u8]) {
        if self.format != Format::Vfs {
            return;
        }
        let mut p = path;
        loop {
            if !self.unpacked.insert(p.to_vec()) {
                break;
            }
            match p.iter().rposition(|&b| b == b'/') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
    }

    fn entry(&mut self, e: &Entry, input: &mut Input, sw: &mut SplitWriter) -> Result<()> {
        let (parent, base) = split(&e.path);
        let is_file = matches!(e.flag, b'0' | 0 | b'7');
        if e.path.is_empty() {
            if e.flag != b'5' {
                return Err(unsafe_entry(&e.raw_name, "entry replaces the layer root with a non-directory"));
            }
            let fd = self
                .open_in_root(b"", OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|er| io_err("open layer root", "", er))?;
            self.metadata_fd(&fd, e)?;
            self.dir_times.push((Vec::new(), e.mtime));
            return skip_data(input, sw, e.size);
        }
        match whiteout_of(&e.raw_name, base)? {
            Whiteout::No => {}
            wh => {
                if e.flag == b'5' {
                    return Err(unsafe_entry(&e.raw_name, "whiteout entry is a directory"));
                }
                match wh {
                    Whiteout::Opaque => self.opaque(parent, &e.raw_name)?,
                    Whiteout::Of(target) => self.whiteout(parent, target, &e.raw_name)?,
                    Whiteout::No => unreachable!(),
                }
                return skip_data(input, sw, e.size);
            }
        }
        let dir = self.parent_dir(parent, &e.raw_name)?;
        match e.flag {
            _ if is_file => {
                self.prepare_leaf(&dir, base, &e.path, false)?;
                let fd = rustix::fs::openat(
                    &*dir,
                    os(base),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|er| io_err("create", os(&e.path), er))?;
                let mut f = std::fs::File::from(fd);
                let path = &e.path;
                input.stream(e.size, "file content", &mut |b| {
                    f.write_all(b).map_err(|er| io_err("write", os(path), er))
                })?;
                sw.file(&e.path, e.size)?;
                skip_padding(input, sw, e.size)?;
                self.size += e.size;
                let fd = OwnedFd::from(f);
                self.metadata_fd(&fd, e)?;
                rustix::fs::futimens(&fd, &times(e.mtime.0, e.mtime.1))
                    .map_err(|er| io_err("set times", os(&e.path), er))?;
                self.nondirs.insert(e.path.clone());
                self.mark_unpacked(&e.path);
                return Ok(());
            }
            b'5' => {
                let leaf = self.prepare_leaf(&dir, base, &e.path, true)?;
                if !matches!(leaf, Leaf::KeepDir) {
                    rustix::fs::mkdirat(&*dir, os(base), Mode::from_raw_mode(0o700))
                        .map_err(|er| io_err("create directory", os(&e.path), er))?;
                }
                let fd = rustix::fs::openat(
                    &*dir,
                    os(base),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|er| io_err("open directory", os(&e.path), er))?;
                if matches!(leaf, Leaf::Replaced { was_whiteout: true }) {
                    // Re-created after a whiteout of this layer: hide the lower one.
                    rustix::fs::fsetxattr(&fd, XATTR_OPAQUE, b"y", XattrFlags::empty())
                        .map_err(|er| io_err("set opaque xattr", os(&e.path), er))?;
                }
                self.metadata_fd(&fd, e)?;
                self.dir_times.push((e.path.clone(), e.mtime));
            }
            b'1' => {
                let target = clean_path(&e.link)?;
                if target.is_empty() || !self.nondirs.contains(&target) {
                    return Err(unsafe_entry(&e.raw_name, "hard link target is not an earlier file of this layer"));
                }
                if target != e.path {
                    let (tparent, tbase) = split(&target);
                    let tdir = self
                        .open_in_root(tparent, OFlags::PATH | OFlags::DIRECTORY)
                        .map_err(|er| parent_error(&e.raw_name, er))?;
                    self.prepare_leaf(&dir, base, &e.path, false)?;
                    rustix::fs::linkat(&tdir, os(tbase), &*dir, os(base), AtFlags::empty())
                        .map_err(|er| io_err("link", os(&e.path), er))?;
                }
                self.nondirs.insert(e.path.clone());
            }
            b'2' => {
                self.prepare_leaf(&dir, base, &e.path, false)?;
                rustix::fs::symlinkat(os(&e.link), &*dir, os(base)).map_err(|er| io_err("symlink", os(&e.path), er))?;
                // Docker's layer size counts a symlink's target length (its lstat size).
                self.size += e.link.len() as u64;
                self.cache = None;
                self.metadata_at(&dir, base, e, false)?;
                self.nondirs.insert(e.path.clone());
            }
            b'3' | b'4' | b'6' => {
                self.prepare_leaf(&dir, base, &e.path, false)?;
                let (ft, dev) = match e.flag {
                    b'3' => (FileType::CharacterDevice, rustix::fs::makedev(e.dev.0, e.dev.1)),
                    b'4' => (FileType::BlockDevice, rustix::fs::makedev(e.dev.0, e.dev.1)),
                    _ => (FileType::Fifo, 0),
                };
                rustix::fs::mknodat(&*dir, os(base), ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|er| io_err("mknod", os(&e.path), er))?;
                self.metadata_at(&dir, base, e, true)?;
                self.nondirs.insert(e.path.clone());
            }
            f => {
                return Err(malformed(format!(
                    "unsupported tar entry type {:?} for {}",
                    f as char,
                    String::from_utf8_lossy(&e.raw_name)
                )))
            }
        }
        self.mark_unpacked(&e.path);
        skip_data(input, sw, e.size)
    }

    /// Owner, mode and xattrs through a descriptor (regular files, directories).
    fn metadata_fd(&self, fd: &OwnedFd, e: &Entry) -> Result<()> {
        let p = os(&e.path);
        rustix::fs::fchown(fd, Some(rustix::fs::Uid::from_raw(e.uid)), Some(rustix::fs::Gid::from_raw(e.gid)))
            .map_err(|er| io_err("chown", p, er))?;
        // After chown, which clears set-id bits.
        rustix::fs::fchmod(fd, Mode::from_raw_mode(e.mode)).map_err(|er| io_err("chmod", p, er))?;
        for (k, v) in &e.xattrs {
            if crate::sys::is_private_xattr(k) {
                continue;
            }
            rustix::fs::fsetxattr(fd, os(k), v, XattrFlags::empty()).map_err(|er| io_err("set xattr", p, er))?;
        }
        Ok(())
    }

    /// Owner, (mode), xattrs and times of a symlink or special file, by name.
    fn metadata_at(&self, dir: &OwnedFd, base: &[u8], e: &Entry, chmod: bool) -> Result<()> {
        let p = os(&e.path);
        rustix::fs::chownat(
            dir,
            os(base),
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|er| io_err("chown", p, er))?;
        if chmod {
            // The node was just created by us (never a symlink).
            rustix::fs::chmodat(dir, os(base), Mode::from_raw_mode(e.mode), AtFlags::empty())
                .map_err(|er| io_err("chmod", p, er))?;
        }
        let wanted: Vec<_> = e.xattrs.iter().filter(|(k, _)| !crate::sys::is_private_xattr(k)).collect();
        if !wanted.is_empty() {
            let proc = proc_path(dir, base);
            for (k, v) in wanted {
                match crate::sys::lset_xattr(&proc, k, v) {
                    Ok(()) | Err(Errno::PERM) | Err(Errno::NOTSUP) => {} // not allowed on symlinks/devices
                    Err(er) => return Err(io_err("set xattr", p, er)),
                }
            }
        }
        rustix::fs::utimensat(dir, os(base), &times(e.mtime.0, e.mtime.1), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|er| io_err("set times", p, er))
    }

    fn whiteout(&mut self, parent: &[u8], target: &[u8], raw: &[u8]) -> Result<()> {
        let path = join(parent, target);
        match self.format {
            Format::Overlay => {
                let dir = self.parent_dir(parent, raw)?;
                self.prepare_leaf(&dir, target, &path, false)?;
                rustix::fs::mknodat(&*dir, os(target), FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(|e| io_err("create whiteout", os(&path), e))?;
            }
            Format::Vfs => {
                let dir = match self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) {
                    Ok(d) => d,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(()),
                    Err(e) => return Err(parent_error(raw, e)),
                };
                remove_at(&dir, target).map_err(|e| io_err("remove", os(&path), e))?;
                self.cache = None;
                self.nondirs.remove(&path);
            }
        }
        Ok(())
    }

    fn opaque(&mut self, dir_path: &[u8], raw: &[u8]) -> Result<()> {
        // Resolve (or create) the directory itself (the layer root may be
        // opaque too: the kernel honours the xattr on a layer root).
        let _ = self.parent_dir(dir_path, raw)?;
        let fd = self.open_in_root(dir_path, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| parent_error(raw, e))?;
        match self.format {
            Format::Overlay => rustix::fs::fsetxattr(&fd, XATTR_OPAQUE, b"y", XattrFlags::empty())
                .map_err(|e| io_err("set opaque xattr", os(dir_path), e)),
            Format::Vfs => {
                let names = crate::sys::dir_names(&fd).map_err(|e| io_err("read directory", os(dir_path), e))?;
                for n in names {
                    let p = join(dir_path, &n);
                    if !self.unpacked.contains(&p) {
                        remove_at(&fd, &n).map_err(|e| io_err("remove", os(&p), e))?;
                        self.nondirs.remove(&p);
                    }
                }
                self.cache = None;
                Ok(())
            }
        }
    }

    /// Set directory times, deepest last-written first.
    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        let list = std::mem::take(&mut self.dir_times);
        for (path, (sec, nsec)) in list.into_iter().rev() {
            let (parent, base) = split(&path);
            let (dir, name): (OwnedFd, &[u8]) = if path.is_empty() {
                (
                    self.open_in_root(b"", OFlags::PATH | OFlags::DIRECTORY)
                        .map_err(|e| io_err("open layer root", "", e))?,
                    b"",
                )
            } else {
                match self.open_in_root(parent, OFlags::PATH | OFlags::DIRECTORY) {
                    Ok(d) => (d, base),
                    Err(_) => continue, // removed or replaced by a later entry
                }
            };
            match lstat_at(&dir, name) {
                Ok(Some(st)) if crate::sys::ftype(&st) == FileType::Directory => {}
                _ => continue,
            }
            rustix::fs::utimensat(&dir, at(name), &times(sec, nsec), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_err("set directory times", os(&path), e))?;
        }
        Ok(())
    }
}

/// `/proc/self/fd/N/name`: a path naming `name` in the directory open at
/// `dir` for path-only syscalls (`lsetxattr`), without following `name`.
fn proc_path(dir: &OwnedFd, name: &[u8]) -> PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_fd().as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(p))
}

fn parent_error(raw: &[u8], e: Errno) -> Error {
    match e {
        Errno::NOTDIR => unsafe_entry(raw, "a parent is not a directory"),
        Errno::LOOP => unsafe_entry(raw, "too many symlinks in a parent"),
        Errno::XDEV => unsafe_entry(raw, "a parent leads to another filesystem"),
        Errno::NOENT => unsafe_entry(raw, "a parent does not exist"),
        e => io_err("resolve parent", os(raw), e),
    }
}

/// Content of an entry that has no file in the layer: kept in the split.
fn skip_data(input: &mut Input, sw: &mut SplitWriter, size: u64) -> Result<()> {
    if size == 0 {
        return Ok(());
    }
    input.stream(size, "entry data", &mut |b| sw.raw(b))?;
    skip_padding(input, sw, size)
}

fn skip_padding(input: &mut Input, sw: &mut SplitWriter, size: u64) -> Result<()> {
    let mut pad = [0u8; BLOCK];
    let n = padding(size) as usize;
    input.exact(&mut pad[..n], "padding")?;
    sw.raw(&pad[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"a/b", b"a/b"),
            (b"./a//b/", b"a/b"),
            (b"/abs/x", b"abs/x"),
            (b"./", b""),
            (b".", b""),
            (b"a/./b", b"a/b"),
        ];
        for (raw, want) in ok {
            assert_eq!(clean_path(raw).unwrap(), want.to_vec(), "{raw:?}");
        }
        for bad in [&b"../x"[..], b"a/../../x", b"a/..", b"/.."] {
            assert!(matches!(clean_path(bad), Err(Error::Unsafe { .. })), "{bad:?}");
        }
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout_of(b"x", b"file").unwrap(), Whiteout::No);
        assert_eq!(whiteout_of(b"x", b".wh.file").unwrap(), Whiteout::Of(b"file"));
        assert_eq!(whiteout_of(b"x", b".wh..profile").unwrap(), Whiteout::Of(b".profile"));
        assert_eq!(whiteout_of(b"x", b".wh..wh..opq").unwrap(), Whiteout::Opaque);
        for bad in [&b".wh."[..], b".wh..", b".wh...", b".wh..wh.plnk", b".wh..wh..opqx"] {
            assert!(matches!(whiteout_of(b"x", bad), Err(Error::Unsafe { .. })), "{bad:?}");
        }
    }
}
