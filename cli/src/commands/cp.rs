//! `strata cp`: copy between a container's root filesystem and the host,
//! with Docker's rules for where things land. Every container-side path is
//! resolved with `openat2(RESOLVE_IN_ROOT)` against the container root, so
//! symlinks in the container (absolute or `..`) can never lead outside it;
//! below the resolved path nothing is followed (`RESOLVE_NO_SYMLINKS`
//! beneath an opened directory), symlinks are copied as symlinks.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{openat2, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};

use crate::cli::CpArgs;
use crate::commands::containers::find;
use crate::settings::Settings;

/// One side of `cp`.
enum Side {
    Host(PathBuf),
    Container(String, String),
}

fn parse_side(s: &str) -> Side {
    // `NAME:PATH`; a host path containing ':' must start with / or ./
    if s.starts_with('/') || s.starts_with('.') {
        return Side::Host(PathBuf::from(s));
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() => Side::Container(c.to_string(), p.to_string()),
        _ => Side::Host(PathBuf::from(s)),
    }
}

/// Copy as Docker's `cp` does.
pub fn run(s: &Settings, a: CpArgs) -> Result<()> {
    let (src, dst) = (parse_side(&a.src), parse_side(&a.dst));
    let store = s.store()?;
    match (src, dst) {
        (Side::Container(c, p), Side::Host(h)) => {
            let c = find(&store, &c)?;
            let root = store.driver().mount(&c.layer)?;
            let r = copy_out(&root, &p, &h);
            store.driver().unmount(&c.layer)?;
            r
        }
        (Side::Host(h), Side::Container(c, p)) => {
            let c = find(&store, &c)?;
            let root = store.driver().mount(&c.layer)?;
            let r = copy_in(&h, &root, &p);
            store.driver().unmount(&c.layer)?;
            r
        }
        (Side::Container(..), Side::Container(..)) => bail!("copying between containers is not supported"),
        (Side::Host(_), Side::Host(_)) => bail!("must specify at least one container source"),
    }
}

fn open_root(root: &Path) -> Result<OwnedFd> {
    rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("open container root {}", root.display()))
}

/// Resolve `path` inside the container root: an `O_PATH` descriptor of it,
/// never outside the root.
fn resolve_in(root: &OwnedFd, path: &str, follow_last: bool) -> rustix::io::Result<OwnedFd> {
    let p = if path.is_empty() { "." } else { path };
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow_last {
        flags |= OFlags::NOFOLLOW;
    }
    openat2(root, p, flags, Mode::empty(), ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS)
}

/// Split a container path into (parent, last component); `/` and `.` have no last.
fn split_last(path: &str) -> (String, Option<OsString>) {
    let trimmed = path.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/.").unwrap_or(trimmed);
    match trimmed.rsplit_once('/') {
        Some((parent, last)) if !last.is_empty() && last != "." => (parent.to_string(), Some(OsString::from(last))),
        None if !trimmed.is_empty() && trimmed != "." => (String::new(), Some(OsString::from(trimmed))),
        _ => (trimmed.to_string(), None),
    }
}

fn copy_out(root: &Path, src: &str, dst: &Path) -> Result<()> {
    let rootfd = open_root(root)?;
    let (parent, last) = split_last(src);
    let pfd = resolve_in(&rootfd, &parent, true)
        .map_err(|e| anyhow!("Error response from daemon: Could not find the file {src} in container: {e}"))?;
    // The source itself, without following it if it is a symlink.
    let name = last.clone().unwrap_or_else(|| OsString::from("."));
    let st = rustix::fs::statat(&pfd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|_| anyhow!("Error response from daemon: Could not find the file {src} in container"))?;
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    let contents_only = src.ends_with("/.");
    let target = match fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() && !(contents_only && is_dir) => {
            dst.join(last.clone().unwrap_or_else(|| OsString::from("root")))
        }
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
    export_entry(&pfd, &name, &target)
}

/// Copy the container entry `name` under directory `dir` to host path `to`.
fn export_entry(dir: &impl AsFd, name: &OsStr, to: &Path) -> Result<()> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            let fd = openat2(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            )?;
            if !to.is_dir() {
                fs::create_dir(to).with_context(|| format!("create {}", to.display()))?;
            }
            let mut names = Vec::new();
            for e in rustix::fs::Dir::read_from(&fd)? {
                let e = e?;
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(OsString::from(OsStr::from_bytes(n)));
                }
            }
            for n in names {
                export_entry(&fd, &n, &to.join(&n))?;
            }
            finish_meta(to, &st, false)?;
        }
        FileType::RegularFile => {
            let fd = openat2(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            )?;
            let mut src = fs::File::from(fd);
            let mut out = fs::File::create(to).with_context(|| format!("create {}", to.display()))?;
            std::io::copy(&mut src, &mut out)?;
            finish_meta(to, &st, false)?;
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
            let _ = fs::remove_file(to);
            std::os::unix::fs::symlink(OsStr::from_bytes(target.as_bytes()), to)?;
            finish_meta(to, &st, true)?;
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
            finish_meta(to, &st, false)?;
        }
    }
    Ok(())
}

fn finish_meta(p: &Path, st: &rustix::fs::Stat, symlink: bool) -> Result<()> {
    let flags = if symlink { AtFlags::SYMLINK_NOFOLLOW } else { AtFlags::empty() };
    let _ = rustix::fs::chownat(
        rustix::fs::CWD,
        p,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        flags,
    );
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

fn copy_in(src: &Path, root: &Path, dst: &str) -> Result<()> {
    let md = fs::symlink_metadata(src).with_context(|| format!("lstat {}", src.display()))?;
    let rootfd = open_root(root)?;
    let contents_only = src.as_os_str().as_bytes().ends_with(b"/.");
    let src_name = src.file_name().map(OsString::from).unwrap_or_else(|| OsString::from("root"));
    // Where it goes: into DST if DST is an existing directory, else as DST.
    let (dir_fd, name) = match resolve_in(&rootfd, dst, true) {
        Ok(fd)
            if rustix::fs::fstat(&fd)
                .map(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory)
                .unwrap_or(false) =>
        {
            if md.is_dir() && contents_only {
                let d = reopen_dir(&fd)?;
                for e in fs::read_dir(src)? {
                    let e = e?;
                    import_entry(&e.path(), &d, &e.file_name())?;
                }
                return Ok(());
            }
            (reopen_dir(&fd)?, src_name)
        }
        _ => {
            if dst.ends_with('/') {
                bail!("Error response from daemon: Could not find the file {dst} in container");
            }
            let (parent, last) = split_last(dst);
            let last = last.ok_or_else(|| anyhow!("invalid destination {dst}"))?;
            let pfd = resolve_in(&rootfd, &parent, true)
                .map_err(|_| anyhow!("Error response from daemon: Could not find the file {parent} in container"))?;
            (reopen_dir(&pfd)?, last)
        }
    };
    import_entry(src, &dir_fd, &name)
}

fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd> {
    Ok(openat2(fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::BENEATH)?)
}

/// Copy host path `src` to entry `name` of container directory `dir`
/// (owned by root, as Docker does without `-a`).
fn import_entry(src: &Path, dir: &OwnedFd, name: &OsStr) -> Result<()> {
    let md = fs::symlink_metadata(src)?;
    let mode = Mode::from_raw_mode(md.mode() & 0o7777);
    let ft = md.file_type();
    if ft.is_dir() {
        match rustix::fs::mkdirat(dir, name, mode) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let sub = openat2(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        )
        .with_context(|| format!("{} is not a directory in the container", name.to_string_lossy()))?;
        for e in fs::read_dir(src)? {
            let e = e?;
            import_entry(&e.path(), &sub, &e.file_name())?;
        }
        rustix::fs::fchmod(&sub, mode)?;
        rustix::fs::fchown(&sub, Some(rustix::fs::Uid::ROOT), Some(rustix::fs::Gid::ROOT))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src)?;
        let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
        rustix::fs::symlinkat(target.as_os_str(), dir, name)?;
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::ROOT),
            Some(rustix::fs::Gid::ROOT),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
    } else if ft.is_file() {
        // O_NOFOLLOW: an existing symlink at the name is replaced, never written through.
        let fd = match openat2(
            dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            Err(rustix::io::Errno::LOOP) => {
                rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
                openat2(
                    dir,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    mode,
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )?
            }
            r => r?,
        };
        let mut out = fs::File::from(fd);
        std::io::copy(&mut fs::File::open(src)?, &mut out)?;
        rustix::fs::fchmod(&out, mode)?;
        rustix::fs::fchown(&out, Some(rustix::fs::Uid::ROOT), Some(rustix::fs::Gid::ROOT))?;
    } else {
        bail!("{}: only files, directories and symlinks can be copied into a container", src.display());
    }
    Ok(())
}
