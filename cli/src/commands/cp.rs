//! `strata cp`: copy between a container's root filesystem and the host, or
//! between a container and a tar stream (`-` as the host side), with
//! Docker's rules for where things land. Every container-side path is
//! resolved with `openat2(RESOLVE_IN_ROOT)` against the container root, so
//! symlinks in the container (absolute or `..`) can never lead outside it;
//! a symlink named as the destination (or as the source with `-L`) is
//! followed one hop at a time, each hop resolved in the root again. Below
//! the resolved path nothing is followed (`RESOLVE_NO_SYMLINKS` beneath an
//! opened directory); symlinks are copied as symlinks.
//!
//! Owners, as Docker: what is copied into a container belongs to root
//! unless `-a` keeps the source's owners; what is copied out to the host
//! belongs to the caller unless `-a`; a tar stream out carries the
//! container's owners.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{openat2, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid};

use crate::cli::CpArgs;
use crate::commands::containers::find;
use crate::settings::Settings;

/// One side of `cp`.
enum Side {
    Host(PathBuf),
    /// `-`: a tar stream on stdin or stdout.
    Stream,
    Container(String, String),
}

fn parse_side(s: &str) -> Side {
    if s == "-" {
        return Side::Stream;
    }
    // `NAME:PATH`; a host path containing ':' must start with / or ./
    if s.starts_with('/') || s.starts_with('.') {
        return Side::Host(PathBuf::from(s));
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() => Side::Container(c.to_string(), p.to_string()),
        _ => Side::Host(PathBuf::from(s)),
    }
}

/// What `-a` and `-L` ask.
#[derive(Clone, Copy)]
struct Opts {
    archive: bool,
    follow: bool,
    /// Into the container with `-a`: the owner of everything written
    /// (the container's user); `None`: the source's owners.
    chown: Option<(Uid, Gid)>,
}

/// Copy as Docker's `cp` does.
pub fn run(s: &Settings, a: CpArgs) -> Result<()> {
    let (src, dst) = (parse_side(&a.src), parse_side(&a.dst));
    let mut opts = Opts { archive: a.archive, follow: a.follow_link, chown: None };
    // A tar on stdin is read to its end before the store's lock is taken
    // (`strata cp A:/x - | strata cp - B:/y` on one store).
    let spooled = match (&src, &dst) {
        (Side::Stream, Side::Container(..)) => Some(crate::commands::spool::stdin(&s.root)?),
        _ => None,
    };
    let (cname, cpath) = match (&src, &dst) {
        (Side::Container(c, p), Side::Host(_) | Side::Stream)
        | (Side::Host(_) | Side::Stream, Side::Container(c, p)) => (c.clone(), p.clone()),
        (Side::Container(..), Side::Container(..)) => bail!("copying between containers is not supported"),
        _ => bail!("must specify at least one container source"),
    };
    let store = s.store()?;
    let c = find(&store, &cname)?;
    let root = store.driver().mount(&c.layer)?;
    let r = (|| {
        let rootfd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .with_context(|| format!("open container root {}", root.display()))?;
        let not_found =
            |p: &str| anyhow!("Error response from daemon: Could not find the file {p} in container {cname}");
        if a.archive && matches!(dst, Side::Container(..)) {
            opts.chown = container_user(&store, &c, &rootfd)?;
        }
        match (src, dst) {
            (Side::Container(..), Side::Host(h)) => copy_out(&rootfd, &cpath, &h, opts, not_found),
            (Side::Container(..), _) => {
                let (dir, name) = source(&rootfd, &cpath, opts).ok_or_else(|| not_found(&cpath))?;
                let mut w = tar::Builder::new(std::io::BufWriter::new(std::io::stdout().lock()));
                w.follow_symlinks(false);
                let top = if cpath.trim_end_matches('/').is_empty() { OsString::from(".") } else { name.clone() };
                tar_entry(&dir, &name, Path::new(&top), &mut w)?;
                w.into_inner()?.flush()?;
                Ok(())
            }
            (Side::Host(h), _) => copy_in(&h, &rootfd, &cpath, opts, not_found),
            (_, _) => {
                let dir = destination_dir(&rootfd, &cpath).map_err(|e| match e {
                    None => not_found(&cpath),
                    Some(e) => e,
                })?;
                let input = spooled.as_ref().map(|t| t.reopen()).transpose()?.context("spooled input")?;
                untar(input, &dir, opts)
            }
        }
    })();
    store.driver().unmount(&c.layer)?;
    r
}

/// Resolve `path` inside the container root: an `O_PATH` descriptor of it,
/// never outside the root.
fn resolve_in(root: &OwnedFd, path: &OsStr, follow_last: bool) -> rustix::io::Result<OwnedFd> {
    let p = if path.is_empty() { OsStr::new(".") } else { path };
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow_last {
        flags |= OFlags::NOFOLLOW;
    }
    openat2(root, p, flags, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)
}

/// Split a container path into (parent, last component); `/` and `.` have no last.
fn split_last(path: &[u8]) -> (OsString, Option<OsString>) {
    let mut t = path;
    while t.len() > 1 && t.ends_with(b"/") {
        t = &t[..t.len() - 1];
    }
    let t = t.strip_suffix(b"/.").unwrap_or(t);
    let os = |b: &[u8]| OsString::from_vec(b.to_vec());
    match t.iter().rposition(|&b| b == b'/') {
        Some(i) if !t[i + 1..].is_empty() && &t[i + 1..] != b"." => (os(&t[..i]), Some(os(&t[i + 1..]))),
        None if !t.is_empty() && t != b"." => (OsString::new(), Some(os(t))),
        _ => (os(t), None),
    }
}

/// The directory holding the entry `path` names and the entry's name in
/// it, following a symlink at the end of `path` (hop by hop, each hop
/// resolved in the root) when `follow`. `None`: a parent is missing.
fn locate(root: &OwnedFd, path: &[u8], follow: bool) -> Option<(OwnedFd, Option<OsString>)> {
    let mut path = path.to_vec();
    for _ in 0..40 {
        let (parent, last) = split_last(&path);
        let dir = resolve_in(root, &parent, true).ok()?;
        let Some(last) = last else {
            return Some((resolve_in(root, &path_or_dot(&path), true).ok()?, None));
        };
        match rustix::fs::readlinkat(&dir, last.as_os_str(), Vec::new()) {
            Ok(target) if follow => {
                let target = target.into_bytes();
                path = if target.starts_with(b"/") { target } else { [parent.as_bytes(), b"/", &target].concat() };
            }
            _ => return Some((dir, Some(last))),
        }
    }
    None
}

fn path_or_dot(p: &[u8]) -> OsString {
    if p.is_empty() {
        OsString::from(".")
    } else {
        OsString::from_vec(p.to_vec())
    }
}

/// The source entry: its directory and name (`.` for a directory named
/// without a last component), which must exist.
fn source(root: &OwnedFd, src: &str, opts: Opts) -> Option<(OwnedFd, OsString)> {
    let (dir, last) = locate(root, src.as_bytes(), opts.follow)?;
    let name = last.unwrap_or_else(|| OsString::from("."));
    rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).ok()?;
    Some((dir, name))
}

/// An existing directory of the container (following symlinks inside it),
/// opened for creating entries; `Err(None)`: it does not exist.
fn destination_dir(root: &OwnedFd, dst: &str) -> std::result::Result<OwnedFd, Option<anyhow::Error>> {
    let fd = resolve_in(root, OsStr::new(dst), true).map_err(|_| None)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Some(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(Some(anyhow!("Error response from daemon: extraction point is not a directory")));
    }
    reopen_dir(&fd).map_err(Some)
}

fn copy_out(
    root: &OwnedFd,
    src: &str,
    dst: &Path,
    opts: Opts,
    not_found: impl Fn(&str) -> anyhow::Error,
) -> Result<()> {
    let (dir, name) = source(root, src, opts).ok_or_else(|| not_found(src))?;
    let st = rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    let contents_only = src.ends_with("/.");
    let base = if name == "." { OsString::from("root") } else { name.clone() };
    let target = match fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() && !(contents_only && is_dir) => dst.join(&base),
        Ok(m) if !m.is_dir() && is_dir => bail!("cannot copy a directory to an existing file {}", dst.display()),
        Ok(_) => dst.to_path_buf(),
        Err(_) if dst.as_os_str().as_bytes().ends_with(b"/") => {
            bail!("destination directory {} does not exist", dst.display())
        }
        Err(_) => {
            let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !parent.is_dir() {
                bail!("destination directory {} does not exist", parent.display());
            }
            dst.to_path_buf()
        }
    };
    export_entry(&dir, &name, &target, opts)
}

/// Open entry `name` of `dir` (never following a symlink) with `flags`.
fn open_beneath(dir: &impl AsFd, name: &OsStr, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
    openat2(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        mode,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
}

/// The names in a directory, without `.` and `..`.
fn dir_names(fd: &OwnedFd) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from(OsStr::from_bytes(n)));
        }
    }
    Ok(names)
}

/// Copy the container entry `name` under directory `dir` to host path `to`.
fn export_entry(dir: &impl AsFd, name: &OsStr, to: &Path, opts: Opts) -> Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let fd = open_beneath(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
            if !to.is_dir() {
                fs::create_dir(to).with_context(|| format!("create {}", to.display()))?;
            }
            for n in dir_names(&fd)? {
                export_entry(&fd, &n, &to.join(&n), opts)?;
            }
            finish_meta(to, &st, false, opts)?;
        }
        FileType::RegularFile => {
            let mut src = fs::File::from(open_beneath(dir, name, OFlags::RDONLY, Mode::empty())?);
            let mut out = fs::File::create(to).with_context(|| format!("create {}", to.display()))?;
            std::io::copy(&mut src, &mut out)?;
            finish_meta(to, &st, false, opts)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            let _ = fs::remove_file(to);
            std::os::unix::fs::symlink(OsStr::from_bytes(target.as_bytes()), to)?;
            finish_meta(to, &st, true, opts)?;
        }
        _ => {
            // Devices, FIFOs and sockets: recreated as they are.
            let _ = fs::remove_file(to);
            rustix::fs::mknodat(
                rustix::fs::CWD,
                to,
                FileType::from_raw_mode(st.st_mode),
                Mode::from_raw_mode(st.st_mode & 0o7777),
                st.st_rdev,
            )?;
            finish_meta(to, &st, false, opts)?;
        }
    }
    Ok(())
}

/// Mode and times as in the container; owners too with `-a` (else the
/// caller's, as Docker's client leaves them).
fn finish_meta(p: &Path, st: &rustix::fs::Stat, symlink: bool, opts: Opts) -> Result<()> {
    let flags = if symlink { AtFlags::SYMLINK_NOFOLLOW } else { AtFlags::empty() };
    if opts.archive {
        rustix::fs::chownat(rustix::fs::CWD, p, Some(Uid::from_raw(st.st_uid)), Some(Gid::from_raw(st.st_gid)), flags)
            .with_context(|| format!("chown {}", p.display()))?;
    }
    if !symlink {
        fs::set_permissions(p, fs::Permissions::from_mode(st.st_mode & 0o7777))?;
    }
    let t = Timestamps {
        last_access: Timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec as _ },
        last_modification: Timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec as _ },
    };
    let _ = rustix::fs::utimensat(rustix::fs::CWD, p, &t, flags);
    Ok(())
}

/// Append the container entry `name` of `dir` (and all below it) to the
/// tar stream as `path`, with the container's owners, modes and times.
fn tar_entry<W: Write>(dir: &impl AsFd, name: &OsStr, path: &Path, w: &mut tar::Builder<W>) -> Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let mut h = tar::Header::new_gnu();
    // Docker's archives carry the file type bits in the mode, as stat has them.
    h.set_mode(st.st_mode & 0o177777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    match kind {
        FileType::Directory => {
            h.set_entry_type(tar::EntryType::Directory);
            let fd = open_beneath(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
            w.append_data(&mut h, path, std::io::empty())?;
            let mut names = dir_names(&fd)?;
            names.sort();
            for n in names {
                tar_entry(&fd, &n, &path.join(&n), w)?;
            }
        }
        FileType::RegularFile => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            let f = fs::File::from(open_beneath(dir, name, OFlags::RDONLY, Mode::empty())?);
            w.append_data(&mut h, path, f.take(st.st_size as u64))?;
        }
        FileType::Symlink => {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            w.append_link(&mut h, path, OsStr::from_bytes(target.as_bytes()))?;
        }
        FileType::Socket => {}
        other => {
            h.set_entry_type(match other {
                FileType::CharacterDevice => tar::EntryType::Char,
                FileType::BlockDevice => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            h.set_device_major(rustix::fs::major(st.st_rdev))?;
            h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
            w.append_data(&mut h, path, std::io::empty())?;
        }
    }
    Ok(())
}

fn copy_in(src: &Path, root: &OwnedFd, dst: &str, opts: Opts, not_found: impl Fn(&str) -> anyhow::Error) -> Result<()> {
    let real = if opts.follow { fs::canonicalize(src) } else { Ok(src.to_path_buf()) };
    let real = real.with_context(|| format!("lstat {}", src.display()))?;
    let md = fs::symlink_metadata(&real).with_context(|| format!("lstat {}", src.display()))?;
    let contents_only = src.as_os_str().as_bytes().ends_with(b"/.");
    let src_name = src.file_name().map(OsString::from).unwrap_or_else(|| OsString::from("root"));
    // Where it goes: into DST if DST is an existing directory, else as DST;
    // a symlink at DST is followed inside the container.
    let (dir, last) = locate(root, dst.as_bytes(), true).ok_or_else(|| not_found(dst))?;
    let existing = match &last {
        None => Some(FileType::Directory),
        Some(l) => rustix::fs::statat(&dir, l.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| FileType::from_raw_mode(st.st_mode)),
    };
    let (dir_fd, name) = match (existing, last) {
        (Some(FileType::Directory), last) => {
            let fd = match last {
                Some(l) => open_beneath(&dir, &l, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?,
                None => reopen_dir(&dir)?,
            };
            if md.is_dir() && contents_only {
                for e in fs::read_dir(&real)? {
                    let e = e?;
                    import_entry(&e.path(), &fd, &e.file_name(), opts)?;
                }
                return Ok(());
            }
            (fd, src_name)
        }
        (None, _) if dst.ends_with('/') => return Err(not_found(dst)),
        (_, Some(last)) => (reopen_dir(&dir)?, last),
        (_, None) => bail!("invalid destination {dst}"),
    };
    import_entry(&real, &dir_fd, &name, opts)
}

fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd> {
    Ok(openat2(fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::BENEATH)?)
}

/// The owner of what is written into the container: the source's, or the
/// container's user with `-a` (Docker's rule).
fn owner(opts: Opts, uid: u32, gid: u32) -> (Uid, Gid) {
    opts.chown.unwrap_or((Uid::from_raw(uid), Gid::from_raw(gid)))
}

/// The container's user (`-u`, else the image's `User`) as IDs, looked up
/// in the container's own passwd and group files; `None` when it runs as
/// the default user (Docker then keeps the source's owners even with `-a`).
fn container_user(
    store: &strata_store::Store,
    c: &strata_store::containers::Container,
    root: &OwnedFd,
) -> Result<Option<(Uid, Gid)>> {
    let run = strata_runtime::container::run_config(store, &c.id)?;
    let image = store.image(&c.image)?;
    let spec = run
        .user
        .unwrap_or_else(|| strata_runtime::config::ImageRuntime::from_config(image.config.config.as_ref()).user);
    if spec.is_empty() {
        return Ok(None);
    }
    let read = |path: &str| -> String {
        let Some((dir, Some(name))) = locate(root, path.as_bytes(), true) else { return String::new() };
        let Ok(fd) = open_beneath(&dir, &name, OFlags::RDONLY, Mode::empty()) else { return String::new() };
        let mut text = String::new();
        let _ = fs::File::from(fd).take(1 << 20).read_to_string(&mut text);
        text
    };
    let u = strata_runtime::user::resolve(&spec, &read("/etc/passwd"), &read("/etc/group"))?;
    Ok(Some((Uid::from_raw(u.uid), Gid::from_raw(u.gid))))
}

/// Make directory `name` in `dir` (or keep the one there) and open it.
fn make_dir(dir: &OwnedFd, name: &OsStr, mode: Mode) -> Result<OwnedFd> {
    match rustix::fs::mkdirat(dir, name, mode) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_beneath(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
        .with_context(|| format!("{} is not a directory in the container", name.to_string_lossy()))
}

/// Write regular file `name` in `dir` from `data`, replacing whatever
/// non-directory is there (a symlink is replaced, never written through).
fn make_file(dir: &OwnedFd, name: &OsStr, mode: Mode, data: &mut dyn Read) -> Result<fs::File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC;
    let fd = match open_beneath(dir, name, flags, mode) {
        Err(rustix::io::Errno::LOOP) => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
            open_beneath(dir, name, flags | OFlags::EXCL, mode)?
        }
        r => r?,
    };
    let mut out = fs::File::from(fd);
    std::io::copy(data, &mut out)?;
    rustix::fs::fchmod(&out, mode)?;
    Ok(out)
}

/// Make symlink `name` in `dir` pointing at `target`, replacing a non-directory.
fn make_symlink(dir: &OwnedFd, name: &OsStr, target: &OsStr, own: (Uid, Gid)) -> Result<()> {
    let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
    rustix::fs::symlinkat(target, dir, name)?;
    rustix::fs::chownat(dir, name, Some(own.0), Some(own.1), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Copy host path `src` to entry `name` of container directory `dir`.
fn import_entry(src: &Path, dir: &OwnedFd, name: &OsStr, opts: Opts) -> Result<()> {
    let md = fs::symlink_metadata(src)?;
    let mode = Mode::from_raw_mode(md.mode() & 0o7777);
    let own = owner(opts, md.uid(), md.gid());
    let ft = md.file_type();
    if ft.is_dir() {
        let sub = make_dir(dir, name, mode)?;
        for e in fs::read_dir(src)? {
            let e = e?;
            import_entry(&e.path(), &sub, &e.file_name(), opts)?;
        }
        rustix::fs::fchmod(&sub, mode)?;
        rustix::fs::fchown(&sub, Some(own.0), Some(own.1))?;
    } else if ft.is_symlink() {
        make_symlink(dir, name, fs::read_link(src)?.as_os_str(), own)?;
    } else if ft.is_file() {
        let out = make_file(dir, name, mode, &mut fs::File::open(src)?)?;
        rustix::fs::fchown(&out, Some(own.0), Some(own.1))?;
    } else {
        bail!("{}: only files, directories and symlinks can be copied into a container", src.display());
    }
    Ok(())
}

/// Extract a tar stream into container directory `dest`: every member's
/// parents are opened beneath `dest` without following symlinks (missing
/// ones are made), `..` members are refused.
fn untar(input: impl Read, dest: &OwnedFd, opts: Opts) -> Result<()> {
    let mut ar = tar::Archive::new(input);
    let mut dirs: Vec<(Vec<OsString>, Mode, Timestamps)> = Vec::new();
    for e in ar.entries().context("read the tar stream")? {
        let mut e = e.context("read the tar stream")?;
        let raw = e.path_bytes().into_owned();
        let mut comps: Vec<OsString> = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => bail!("invalid member {:?} in the tar stream", String::from_utf8_lossy(&raw)),
                c => comps.push(OsString::from_vec(c.to_vec())),
            }
        }
        let Some(name) = comps.pop() else { continue };
        let mut parent = reopen_dir(dest)?;
        for c in &comps {
            parent = make_dir(&parent, c, Mode::from_raw_mode(0o755))?;
        }
        let h = e.header().clone();
        let mode = Mode::from_raw_mode(h.mode().unwrap_or(0o644) & 0o7777);
        let own = owner(opts, h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let mtime = h.mtime().unwrap_or(0) as i64;
        let times = Timestamps {
            last_access: Timespec { tv_sec: mtime, tv_nsec: 0 },
            last_modification: Timespec { tv_sec: mtime, tv_nsec: 0 },
        };
        let kind = h.entry_type();
        match kind {
            tar::EntryType::Directory => {
                let d = make_dir(&parent, &name, mode)?;
                rustix::fs::fchown(&d, Some(own.0), Some(own.1))?;
                // Modes and times of directories last: their entries change them.
                comps.push(name);
                dirs.push((comps, mode, times));
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let out = make_file(&parent, &name, mode, &mut e)?;
                rustix::fs::fchown(&out, Some(own.0), Some(own.1))?;
                rustix::fs::fchmod(&out, mode)?;
            }
            tar::EntryType::Symlink => {
                let target = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                make_symlink(&parent, &name, OsStr::from_bytes(&target), own)?;
            }
            tar::EntryType::Link => {
                // A hard link to an earlier member: resolved beneath `dest`.
                let target = e.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                let start = target.iter().position(|&b| b != b'/').unwrap_or(target.len());
                let target = OsString::from_vec(target[start..].to_vec());
                let _ = rustix::fs::unlinkat(&parent, name.as_os_str(), AtFlags::empty());
                let from = open_beneath(dest, &target, OFlags::PATH, Mode::empty())
                    .with_context(|| format!("hard link target {}", target.to_string_lossy()))?;
                rustix::fs::linkat(&from, "", &parent, name.as_os_str(), AtFlags::EMPTY_PATH)?;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                let _ = rustix::fs::unlinkat(&parent, name.as_os_str(), AtFlags::empty());
                rustix::fs::mknodat(&parent, name.as_os_str(), ft, mode, dev)?;
                rustix::fs::chownat(&parent, name.as_os_str(), Some(own.0), Some(own.1), AtFlags::SYMLINK_NOFOLLOW)?;
            }
            _ => continue,
        }
        let nofollow = if kind == tar::EntryType::Symlink { AtFlags::SYMLINK_NOFOLLOW } else { AtFlags::empty() };
        let _ = rustix::fs::utimensat(&parent, name.as_os_str(), &times, nofollow);
    }
    for (path, mode, times) in dirs.into_iter().rev() {
        let mut d = reopen_dir(dest)?;
        for c in &path {
            d = open_beneath(&d, c, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        }
        rustix::fs::fchmod(&d, mode)?;
        let _ = rustix::fs::futimens(&d, &times);
    }
    Ok(())
}
