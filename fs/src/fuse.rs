//! Adapter from the union API ([`Overlay`]) to `fuser::Filesystem`.
//!
//! Every request gets exactly one reply; errors from the union API become
//! their errno; nothing here panics on bad input.
//!
//! Open files: each FUSE file handle owns one descriptor of the real file
//! (upper or lower). Where the kernel supports FUSE passthrough, the handle
//! also holds a backing id so reads, writes and mmap go straight to the real
//! file. All handles of one node share one backing file, as the kernel
//! requires; an open that would need a different backing file (a file copied
//! up while a lower descriptor is still open) is served without passthrough.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::Hasher;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, BackingId, BsdFileFlags, CopyFileRangeFlags, Errno as FErrno, FileAttr, FileHandle, FileType as FType,
    Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig, LockOwner, Notifier, OpenFlags,
    RenameFlags as FRename, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rustix::fs::Timespec as Timestamp;
use rustix::fs::{FileType, Mode, OFlags, RenameFlags, Stat, Timestamps};

use crate::error::Error;
use crate::killpriv;
use crate::overlay::{Creds, DirEntry, NewKind, Overlay};

/// How long the kernel may cache names (positive and negative) and
/// attributes. Layers do not change under a mount and every change goes
/// through this process, so the caches stay right by invalidation instead of
/// expiry:
/// - the kernel drops or updates what a request it sends changes (the
///   entries of a create, unlink or rename, the parent's attributes, the
///   attributes a SETATTR or LINK reply carries, a renamed inode's ctime);
/// - hard links are one node (one kernel inode) whatever name they are
///   reached by, so a change through one name is seen through all (but
///   their names are not cached: see `entry_ttl`);
/// - what the daemon changes as a side effect — a copy-up gives a file its
///   own ctime and blocks, a directory one link — is invalidated by `settle`
///   before the request that caused it replies.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// Most directory listings kept for READDIR without OPENDIR (see
/// `OverlayFs::listings`).
const MAX_LISTINGS: usize = 256;

/// A directory's merged entries with their READDIR offsets (see `cookie`),
/// in offset order, shared by the READDIRs that read them.
type Listing = Arc<Vec<(u64, DirEntry)>>;

/// The READDIR offset of the entry after the one named `name`: a hash of
/// the name, so that an offset means the same in a listing read again after
/// the directory changed (a reader that goes on in a new listing sees each
/// entry that was not removed exactly once). 1 and 2 are `.` and `..`.
fn cookie(name: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(name);
    (h.finish() >> 2) + 3
}

/// A listing in offset order.
fn listing_of(entries: Vec<DirEntry>) -> Listing {
    let mut v: Vec<(u64, DirEntry)> = entries.into_iter().map(|e| (cookie(&e.name), e)).collect();
    v.sort_unstable_by(|(a, x), (b, y)| (a, &x.name).cmp(&(b, &y.name)));
    Arc::new(v)
}

/// The entries of a listing after offset `offset`.
fn after(listing: &[(u64, DirEntry)], offset: u64) -> &[(u64, DirEntry)] {
    &listing[listing.partition_point(|(c, _)| *c <= offset)..]
}

struct Handle {
    fd: OwnedFd,
    node: u64,
    _backing: Option<Arc<BackingId>>,
}

/// The FUSE filesystem: the union plus open-file state.
pub struct OverlayFs {
    ov: Overlay,
    files: Mutex<HashMap<u64, Arc<Handle>>>,
    /// Open directories: their listing, read on the first READDIR (with the
    /// kernel's directory cache, most opens never send one).
    dirs: Mutex<HashMap<u64, Arc<OnceLock<Listing>>>>,
    /// Without OPENDIR (`no_opendir`) READDIR comes with no handle: listings
    /// by directory node, read afresh at offset 0 and kept while the kernel
    /// reads on (dropped once it reached the end, all dropped past
    /// `MAX_LISTINGS`).
    listings: Mutex<HashMap<u64, Listing>>,
    /// The kernel offered `FUSE_NO_OPENDIR_SUPPORT`: OPENDIR is answered
    /// ENOSYS once, then never sent again (nor RELEASEDIR), and the kernel
    /// caches listings as FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE would.
    no_opendir: bool,
    backings: Mutex<HashMap<u64, (bool, Weak<BackingId>)>>,
    next_fh: AtomicU64,
    passthrough: AtomicBool,
    readdirplus: bool,
    /// `FUSE_HANDLE_KILLPRIV_V2` was negotiated: clearing setuid/setgid on
    /// writes and truncates is this daemon's job.
    killpriv: bool,
    notifier: Arc<OnceLock<Notifier>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn errno(e: &Error) -> FErrno {
    FErrno::from_i32(e.errno().raw_os_error())
}

fn rerr(e: rustix::io::Errno) -> FErrno {
    FErrno::from_i32(e.raw_os_error())
}

fn systime(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn ftype(ft: FileType) -> FType {
    match ft {
        FileType::Directory => FType::Directory,
        FileType::Symlink => FType::Symlink,
        FileType::Fifo => FType::NamedPipe,
        FileType::Socket => FType::Socket,
        FileType::CharacterDevice => FType::CharDevice,
        FileType::BlockDevice => FType::BlockDevice,
        _ => FType::RegularFile,
    }
}

/// Convert a stat of the real file into the attributes shown.
fn attr(st: &Stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(st.st_ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: systime(st.st_atime, st.st_atime_nsec as i64),
        mtime: systime(st.st_mtime, st.st_mtime_nsec as i64),
        ctime: systime(st.st_ctime, st.st_ctime_nsec as i64),
        crtime: UNIX_EPOCH,
        kind: ftype(FileType::from_raw_mode(st.st_mode)),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// How long the kernel may cache the name of an object with attributes
/// `st`. Not at all for a hard-linked file: FUSE opens name no path, so the
/// union learns which name an open (and the copy-up it may cause) goes
/// through from the LOOKUP of that name, which must therefore be sent each
/// time. Its attributes are cached as long as anything's.
fn entry_ttl(st: &Stat) -> Duration {
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory && st.st_nlink > 1 {
        Duration::ZERO
    } else {
        TTL
    }
}

/// Attributes of a negative entry: node id 0, nothing else matters.
fn negative_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: FType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 0,
        flags: 0,
    }
}

fn timestamp(t: Option<TimeOrNow>) -> Timestamp {
    match t {
        None => Timestamp { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT as _ },
        Some(TimeOrNow::Now) => Timestamp { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW as _ },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as _ },
            Err(e) => {
                let d = e.duration();
                let mut sec = -(d.as_secs() as i64);
                let mut nsec = d.subsec_nanos() as i64;
                if nsec > 0 {
                    sec -= 1;
                    nsec = 1_000_000_000 - nsec;
                }
                Timestamp { tv_sec: sec, tv_nsec: nsec as _ }
            }
        },
    }
}

fn oflags(flags: i32) -> OFlags {
    OFlags::from_bits_retain(flags as u32)
}

impl OverlayFs {
    /// Wrap a union for serving through FUSE; `readdirplus` offers the
    /// kernel directory listings with attributes.
    pub fn new(ov: Overlay, readdirplus: bool) -> OverlayFs {
        OverlayFs {
            ov,
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            listings: Mutex::new(HashMap::new()),
            no_opendir: false,
            backings: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            passthrough: AtomicBool::new(false),
            readdirplus,
            killpriv: false,
            notifier: Arc::new(OnceLock::new()),
        }
    }

    /// Where the session's notifier goes once the session exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Tell the kernel to drop the cached attributes of nodes an operation
    /// copied up as a side effect, except `covered` (whose attributes the
    /// reply carries: invalidating it first would make the kernel discard
    /// them). Called before the operation replies; attribute invalidation
    /// takes no inode lock, so it cannot deadlock with the request.
    fn settle(&self, covered: Option<u64>) {
        let nodes = self.ov.take_copied();
        if let Some(n) = self.notifier.get() {
            for id in nodes.into_iter().filter(|id| Some(*id) != covered) {
                self.inval_attr(n, id);
            }
        }
    }

    /// Drop the kernel's cached attributes of one node. Offset -1:
    /// attributes only (file data is passthrough or direct I/O, listings are
    /// dropped by the kernel itself on the changes it makes).
    fn inval_attr(&self, n: &Notifier, id: u64) {
        let _ = n.inval_inode(INodeNo(id), -1, 0);
    }

    /// The listing READDIR at `offset` reads: an open directory's (read on
    /// its first READDIR), or without OPENDIR (`fh` 0) the node's, read
    /// afresh at offset 0 and kept until a READDIR finds nothing after its
    /// offset (a reader continuing in a listing read since by someone else
    /// still sees each remaining entry once: offsets are names' hashes).
    fn listing(&self, ino: u64, fh: u64, offset: u64) -> std::result::Result<Listing, FErrno> {
        if fh != 0 || !self.no_opendir {
            let handle = lock(&self.dirs).get(&fh).cloned().ok_or(FErrno::EBADF)?;
            if handle.get().is_none() {
                let entries = self.ov.readdir(ino).map_err(|e| errno(&e))?;
                let _ = handle.set(listing_of(entries));
            }
            return Ok(handle.get().cloned().unwrap_or_default());
        }
        if offset > 0 {
            if let Some(l) = lock(&self.listings).get(&ino) {
                return Ok(l.clone());
            }
        }
        let entries = listing_of(self.ov.readdir(ino).map_err(|e| errno(&e))?);
        let mut l = lock(&self.listings);
        if l.len() >= MAX_LISTINGS {
            l.clear();
        }
        l.insert(ino, entries.clone());
        Ok(entries)
    }

    /// A READDIR at `offset` was answered with `rest` the entries after
    /// it: none (the kernel's last READDIR of a pass) drops a listing kept
    /// without a handle.
    fn listing_read(&self, ino: u64, fh: u64, offset: u64, rest: &[(u64, DirEntry)]) {
        if fh == 0 && self.no_opendir && offset >= 2 && rest.is_empty() {
            lock(&self.listings).remove(&ino);
        }
    }

    /// `settle` after a union operation, passing its result through.
    fn settled<T>(&self, r: T) -> T {
        self.settle(None);
        r
    }

    /// The mode a write or truncate by the caller of `req` leaves a file
    /// with attributes `st` (see `killpriv`), `None` if it keeps its mode;
    /// `unprivileged`: the kernel already said the caller lacks `CAP_FSETID`.
    fn mode_after_kill(&self, req: &Request, st: &Stat, unprivileged: bool) -> Option<u32> {
        if !self.killpriv || !killpriv::has_suidgid(st) {
            return None;
        }
        let caller = killpriv::Caller::of(req.pid());
        let kill = killpriv::bits_to_clear(st, caller.as_ref(), unprivileged, req.uid(), req.gid());
        (kill != 0).then_some(st.st_mode & 0o7777 & !kill)
    }

    fn fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn file(&self, fh: FileHandle) -> Result<Arc<Handle>, FErrno> {
        lock(&self.files).get(&fh.0).cloned().ok_or(FErrno::EBADF)
    }

    /// Pick the backing id for a new open of `node` whose real file is in the
    /// upper layer (`upper`) or not. `None`: serve without passthrough.
    fn backing_for(
        &self,
        node: u64,
        upper: bool,
        fd: &OwnedFd,
        open: impl FnOnce(&OwnedFd) -> std::io::Result<BackingId>,
    ) -> Option<Arc<BackingId>> {
        if !self.passthrough.load(Ordering::Relaxed) {
            return None;
        }
        let mut b = lock(&self.backings);
        if let Some((was_upper, weak)) = b.get(&node) {
            if let Some(live) = weak.upgrade() {
                return if *was_upper == upper { Some(live) } else { None };
            }
        }
        match open(fd) {
            Ok(id) => {
                let id = Arc::new(id);
                b.insert(node, (upper, Arc::downgrade(&id)));
                Some(id)
            }
            Err(e) => {
                tracing::warn!("FUSE passthrough unavailable ({e}); serving file data in userspace");
                self.passthrough.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    /// Some open handle of a node (for nodes that lost their last name).
    fn any_handle_of(&self, node: u64) -> Option<Arc<Handle>> {
        lock(&self.files).values().find(|h| h.node == node).cloned()
    }

    fn node_is_upper(&self, node: u64) -> bool {
        // After an open for writing the node is in the upper; a read-only open
        // of a lower file is not. The union decides; ask it through getattr's path.
        self.ov.is_upper(node)
    }

    fn entry(&self, reply: ReplyEntry, r: Result<(u64, Stat), Error>) {
        match r {
            Ok((id, st)) => {
                // fuser sends attr.ino as the node id: the union's node ids are
                // the inode numbers it shows, so the two agree.
                let mut a = attr(&st);
                a.ino = INodeNo(id);
                reply.entry_with_ttls(&TTL, &entry_ttl(&st), &a, Generation(0));
            }
            Err(e) => reply.error(errno(&e)),
        }
    }
}

impl Filesystem for OverlayFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Writes, truncates and chowns clear setuid/setgid here (see
        // `killpriv`): the kernel then asks security.capability once per
        // inode instead of on every write, and chown sends no GETATTR.
        self.killpriv = config.add_capabilities(InitFlags::FUSE_HANDLE_KILLPRIV_V2).is_ok();
        // Symlink targets never change (a new target is a new inode).
        let _ = config.add_capabilities(InitFlags::FUSE_CACHE_SYMLINKS);
        // Not a flag to ask for: the kernel says ENOSYS to OPENDIR is understood.
        self.no_opendir = config.capabilities().contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        if self.readdirplus {
            let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        }
        if std::env::var_os("STRATA_NO_PASSTHROUGH").is_none()
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.ov.lookup(parent.0, name) {
            // A negative entry (node id 0) lets the kernel cache the miss; every
            // change of this directory's names goes through the kernel, which
            // drops such entries itself.
            Err(e) if e.errno() == rustix::io::Errno::NOENT => {
                reply.entry_with_ttls(&TTL, &TTL, &negative_attr(), Generation(0));
            }
            r => self.entry(reply, r),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.ov.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.ov.getattr(ino.0) {
            Ok(st) => reply.attr(&TTL, &attr(&st)),
            Err(e) => {
                // An unlinked file that is still open: its descriptor knows.
                let h = fh.and_then(|fh| self.file(fh).ok()).or_else(|| self.any_handle_of(ino.0));
                if let Some(h) = h {
                    match rustix::fs::fstat(&h.fd) {
                        Ok(mut st) => {
                            self.ov.fix_stat(h.node, &h.fd, &mut st);
                            reply.attr(&Duration::ZERO, &attr(&st));
                        }
                        Err(e) => reply.error(rerr(e)),
                    }
                } else {
                    reply.error(errno(&e));
                }
            }
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let times = if atime.is_some() || mtime.is_some() {
            Some(Timestamps { last_access: timestamp(atime), last_modification: timestamp(mtime) })
        } else {
            None
        };
        let handle = fh.and_then(|fh| self.file(fh).ok());
        // A truncate through a descriptor of an upper file needs no path at all
        // (and works for open-but-unlinked files).
        let fd = handle.as_ref().filter(|_| self.node_is_upper(ino.0)).map(|h| &h.fd);
        // A SETATTR that changes nothing: with KILLPRIV_V2, a passthrough
        // write asking to clear setuid/setgid (see `killpriv`).
        let nothing = mode.is_none() && uid.is_none() && gid.is_none() && size.is_none() && times.is_none();
        // A chown clears setuid, and setgid with group execute, by itself (the
        // daemon's chown does); a setgid without group execute only for a
        // caller outside the file's old group: known before the chown.
        let chown_kills_sgid = (uid.is_some() || gid.is_some()) && mode.is_none() && self.killpriv && {
            let quiet_sgid = |st: &Stat| st.st_mode & (libc::S_ISGID | libc::S_IXGRP) == libc::S_ISGID;
            self.ov
                .getattr(ino.0)
                .ok()
                .filter(quiet_sgid)
                .and_then(|st| self.mode_after_kill(req, &st, false))
                .is_some_and(|m| m & libc::S_ISGID == 0)
        };
        // Even a SETATTR that changes nothing copies up (a chown to -1:-1 does, in the kernel's overlay).
        let r = self.ov.setattr(ino.0, mode, uid, gid, size, times, fd);
        // The reply carries the node's attributes: only side effects are invalidated.
        self.settle(Some(ino.0));
        let st = match r {
            Ok(st) => st,
            Err(e) => {
                // An open file with no name left: its descriptor serves.
                let h = match &handle {
                    Some(h) if e.errno() == rustix::io::Errno::NOENT && (nothing || size.is_some()) => h,
                    _ => return reply.error(errno(&e)),
                };
                let r = size.map_or(Ok(()), |sz| rustix::fs::ftruncate(&h.fd, sz)).and_then(|()| {
                    let st = rustix::fs::fstat(&h.fd)?;
                    match self.mode_after_kill(req, &st, false) {
                        Some(m) => {
                            rustix::fs::fchmod(&h.fd, Mode::from_raw_mode(m)).and_then(|()| rustix::fs::fstat(&h.fd))
                        }
                        None => Ok(st),
                    }
                });
                return match r {
                    Ok(mut st) => {
                        self.ov.fix_stat(h.node, &h.fd, &mut st);
                        reply.attr(&Duration::ZERO, &attr(&st));
                    }
                    Err(e) => reply.error(rerr(e)),
                };
            }
        };
        // A truncate, or a write's request: clear the bits this caller may not keep.
        let kill = if chown_kills_sgid {
            Some(st.st_mode & 0o7777 & !libc::S_ISGID)
        } else if size.is_some() || nothing {
            self.mode_after_kill(req, &st, false)
        } else {
            None
        };
        match kill {
            None => reply.attr(&TTL, &attr(&st)),
            Some(m) => match self.ov.setattr(ino.0, Some(m), None, None, None, None, None) {
                Ok(st) => reply.attr(&TTL, &attr(&st)),
                Err(e) => reply.error(errno(&e)),
            },
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.ov.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let ft = FileType::from_raw_mode(mode);
        let kind = match ft {
            FileType::RegularFile => NewKind::File(OFlags::RDONLY),
            FileType::Fifo | FileType::Socket | FileType::CharacterDevice | FileType::BlockDevice => {
                NewKind::Special(ft, rdev as u64)
            }
            _ => return reply.error(FErrno::EINVAL),
        };
        let creds = Creds { uid: req.uid(), gid: req.gid() };
        let r = self
            .settled(self.ov.create(parent.0, name, kind, mode & !umask & 0o7777, creds))
            .map(|(id, st, _)| (id, st));
        self.entry(reply, r);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let creds = Creds { uid: req.uid(), gid: req.gid() };
        let r = self
            .settled(self.ov.create(parent.0, name, NewKind::Dir, mode & !umask & 0o7777, creds))
            .map(|(id, st, _)| (id, st));
        self.entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.settled(self.ov.remove(parent.0, name, false)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.settled(self.ov.remove(parent.0, name, true)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &std::path::Path, reply: ReplyEntry) {
        let creds = Creds { uid: req.uid(), gid: req.gid() };
        let t = target.as_os_str().as_bytes();
        let r = self
            .settled(self.ov.create(parent.0, link_name, NewKind::Symlink(t), 0o777, creds))
            .map(|(id, st, _)| (id, st));
        self.entry(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: FRename,
        reply: ReplyEmpty,
    ) {
        let mut f = RenameFlags::empty();
        if flags.contains(FRename::RENAME_NOREPLACE) {
            f |= RenameFlags::NOREPLACE;
        }
        if flags.contains(FRename::RENAME_EXCHANGE) {
            f |= RenameFlags::EXCHANGE;
        }
        if flags.contains(FRename::RENAME_WHITEOUT) {
            return reply.error(FErrno::EINVAL);
        }
        match self.settled(self.ov.rename(parent.0, name, newparent.0, newname, f)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let creds = Creds { uid: req.uid(), gid: req.gid() };
        let r = self.ov.create(newparent.0, newname, NewKind::Link(ino.0), 0, creds).map(|(id, st, _)| (id, st));
        // The source's copy-up changed its attributes; the reply carries them.
        self.settle(Some(ino.0));
        self.entry(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.settled(self.ov.open(ino.0, oflags(flags.0))) {
            Ok(fd) => {
                let fh = self.fh();
                let upper = self.node_is_upper(ino.0);
                let backing = self.backing_for(ino.0, upper, &fd, |fd| reply.open_backing(fd));
                let handle = Arc::new(Handle { fd, node: ino.0, _backing: backing.clone() });
                lock(&self.files).insert(fh, handle);
                match backing {
                    Some(b) => reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), &b),
                    None if self.passthrough.load(Ordering::Relaxed) => {
                        reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO)
                    }
                    None => reply.opened(FileHandle(fh), FopenFlags::empty()),
                }
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let creds = Creds { uid: req.uid(), gid: req.gid() };
        match self.settled(self.ov.create(parent.0, name, NewKind::File(oflags(flags)), mode & !umask & 0o7777, creds))
        {
            Ok((id, st, Some(fd))) => {
                let fh = self.fh();
                let backing = self.backing_for(id, true, &fd, |fd| reply.open_backing(fd));
                lock(&self.files).insert(fh, Arc::new(Handle { fd, node: id, _backing: backing.clone() }));
                let mut a = attr(&st);
                a.ino = INodeNo(id);
                match backing {
                    Some(b) => {
                        reply.created_passthrough(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty(), &b)
                    }
                    None => reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty()),
                }
            }
            Ok((_, _, None)) => reply.error(FErrno::EIO),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let h = match self.file(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0u8; size as usize];
        let mut got = 0usize;
        while got < buf.len() {
            match rustix::io::pread(&h.fd, &mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return reply.error(rerr(e)),
            }
        }
        reply.data(&buf[..got]);
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let h = match self.file(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
            // Before the data, as the VFS does. The reply carries no
            // attributes: the kernel is told the mode changed.
            let st = match rustix::fs::fstat(&h.fd) {
                Ok(st) => st,
                Err(e) => return reply.error(rerr(e)),
            };
            if let Some(mode) = self.mode_after_kill(req, &st, true) {
                if let Err(e) = rustix::fs::fchmod(&h.fd, Mode::from_raw_mode(mode)) {
                    return reply.error(rerr(e));
                }
                if let Some(n) = self.notifier.get() {
                    self.inval_attr(n, h.node);
                }
            }
        }
        let mut done = 0usize;
        while done < data.len() {
            match rustix::io::pwrite(&h.fd, &data[done..], offset + done as u64) {
                Ok(n) => done += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return reply.error(rerr(e)),
            }
        }
        reply.written(done as u32);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Nothing is buffered here and locks are the kernel's: ENOSYS tells
        // the kernel to stop sending FLUSH on every close.
        reply.error(FErrno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        let h = match self.file(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let r = if datasync { rustix::fs::fdatasync(&h.fd) } else { rustix::fs::fsync(&h.fd) };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(rerr(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir {
            // Never asked again: READDIR then comes without a handle.
            return reply.error(FErrno::ENOSYS);
        }
        // A live node's type is known without a stat; an unlinked or unknown
        // one is asked about.
        let is_dir = match self.ov.known_dir(ino.0) {
            Some(d) => Ok(d),
            None => self.ov.getattr(ino.0).map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
        };
        match is_dir {
            Ok(false) => reply.error(FErrno::ENOTDIR),
            Ok(true) => {
                let fh = self.fh();
                lock(&self.dirs).insert(fh, Arc::new(OnceLock::new()));
                // Let the kernel cache listings: every change to a directory
                // goes through this mount (the kernel then drops its cache),
                // and side-effect copy-ups are invalidated by `settle`.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = match self.listing(ino.0, fh.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let mut off = offset;
        if off == 0 {
            if reply.add(ino, 1, FType::Directory, ".") {
                return reply.ok();
            }
            off = 1;
        }
        if off == 1 {
            if reply.add(INodeNo(1), 2, FType::Directory, "..") {
                return reply.ok();
            }
            off = 2;
        }
        let rest = after(&entries, off);
        for (c, e) in rest {
            if reply.add(INodeNo(e.ino), *c, ftype(e.kind), OsStr::from_bytes(&e.name)) {
                break;
            }
        }
        self.listing_read(ino.0, fh.0, offset, rest);
        reply.ok();
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let entries = match self.listing(ino.0, fh.0, offset) {
            Ok(l) => l,
            Err(e) => return reply.error(e),
        };
        let mut off = offset;
        if off < 2 {
            // `.` and `..` carry no lookup; the kernel ignores their attributes.
            match self.ov.getattr(ino.0) {
                Ok(st) => {
                    let mut a = attr(&st);
                    a.ino = ino;
                    if off == 0 && reply.add(ino, 1, ".", &Duration::ZERO, &a, Generation(0)) {
                        return reply.ok();
                    }
                    if reply.add(ino, 2, "..", &Duration::ZERO, &a, Generation(0)) {
                        return reply.ok();
                    }
                }
                Err(e) => return reply.error(errno(&e)),
            }
            off = 2;
        }
        let rest = after(&entries, off);
        for (c, e) in rest {
            let name = OsStr::from_bytes(&e.name);
            // Each entry returned counts as a lookup; one that does not fit
            // in the buffer is forgotten again.
            let Ok((id, st)) = self.ov.lookup(ino.0, name) else {
                continue;
            };
            let mut a = attr(&st);
            a.ino = INodeNo(id);
            // One lifetime for both: a hard link's attributes are not kept either.
            if reply.add(INodeNo(id), *c, name, &entry_ttl(&st), &a, Generation(0)) {
                self.ov.forget(id, 1);
                break;
            }
        }
        self.listing_read(ino.0, fh.0, offset, rest);
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        lock(&self.dirs).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.ov.statfs() {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let f = rustix::fs::XattrFlags::from_bits_retain(flags as u32);
        match self.settled(self.ov.setxattr(ino.0, name, value, f)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.ov.getxattr(ino.0, name) {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(FErrno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.ov.listxattr(ino.0) {
            Ok(names) => {
                let mut buf = Vec::new();
                for n in names {
                    buf.extend_from_slice(&n);
                    buf.push(0);
                }
                if size == 0 {
                    reply.size(buf.len() as u32)
                } else if buf.len() > size as usize {
                    reply.error(FErrno::ERANGE)
                } else {
                    reply.data(&buf)
                }
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.settled(self.ov.removexattr(ino.0, name)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let h = match self.file(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let m = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
        match rustix::fs::fallocate(&h.fd, m, offset, length) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(rerr(e)),
        }
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        let h = match self.file(fh) {
            Ok(h) => h,
            Err(e) => return reply.error(e),
        };
        let pos = match whence {
            libc::SEEK_SET => rustix::fs::SeekFrom::Start(offset as u64),
            libc::SEEK_DATA => rustix::fs::SeekFrom::Data(offset as u64),
            libc::SEEK_HOLE => rustix::fs::SeekFrom::Hole(offset as u64),
            libc::SEEK_END => rustix::fs::SeekFrom::End(offset),
            _ => return reply.error(FErrno::EINVAL),
        };
        match rustix::fs::seek(&h.fd, pos) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(rerr(e)),
        }
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let (a, b) = match (self.file(fh_in), self.file(fh_out)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let mut oi = offset_in;
        let mut oo = offset_out;
        let n = len.min(u32::MAX as u64 & !0xfff) as usize;
        match rustix::fs::copy_file_range(&a.fd, Some(&mut oi), &b.fd, Some(&mut oo), n) {
            Ok(n) => reply.written(n as u32),
            Err(e) => reply.error(rerr(e)),
        }
    }
}
