//! COPY and ADD into a step's root filesystem (the mounted writable layer),
//! from a [`Tree`] (the context, or another stage's root). Writes go
//! through descriptors of directories opened inside the destination root
//! (`RESOLVE_IN_ROOT`) and single-name `*at` calls that never follow a
//! final symlink, so an image's symlinks can never redirect a write to the
//! host.

use std::io::Read;
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use strata_runtime::rootfs::Root;

use crate::context::{Kind, Tree};
use crate::Error;

/// Where COPY writes. Paths are resolved through `root`, the step's
/// mounted merged tree (symlinks of the image followed inside it, as a
/// write through the mount would). With `upper` (the layer's own
/// directory), the resolved directory is first copied up through the mount
/// (so it and its ancestors exist in the layer with the image's metadata)
/// and the files are then written straight into the layer's directory at
/// the same place, with no FUSE round trip per file.
pub struct Dest<'a> {
    /// The merged tree.
    pub root: &'a Root,
    /// The layer's own directory, when writes may go there directly.
    pub upper: Option<Root>,
}

impl Dest<'_> {
    /// The directory `path` (made when missing), open for writing into.
    fn dir(&self, path: &str) -> Result<OwnedFd, Error> {
        use std::os::fd::AsRawFd;
        let d = self.root.dir_all(path, 0o755)?;
        let Some(upper) = &self.upper else { return Ok(d) };
        // A metadata write copies the directory (and its parents) up.
        let st = rustix::fs::fstat(&d).map_err(|e| sys("stat", path, e))?;
        rustix::fs::fchmod(&d, Mode::from_raw_mode(st.st_mode & 0o7777)).map_err(|e| sys("chmod", path, e))?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", d.as_raw_fd()))
            .map_err(|e| Error::System(format!("resolve {path}: {e}")))?;
        match real.strip_prefix(self.root.path()) {
            Ok(rel) => Ok(upper.open_at(&rel.to_string_lossy(), OFlags::RDONLY | OFlags::DIRECTORY)?),
            // Not under the mount (cannot happen): write through it.
            Err(_) => Ok(d),
        }
    }
}

/// How copied entries are owned and moded.
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyOptions {
    /// `--chown` (None: root, or the archive's owners for ADD of a tar).
    pub owner: Option<(u32, u32)>,
    /// `--chmod` (None: the source's mode).
    pub chmod: Option<u32>,
    /// ADD: a local tar archive source is extracted.
    pub extract: bool,
}

fn sys(op: &str, what: &str, e: Errno) -> Error {
    Error::System(format!("{op} {what}: {e}"))
}

fn set_meta(fd: &OwnedFd, what: &str, mode: u32, owner: (u32, u32), mtime: Option<(i64, i64)>) -> Result<(), Error> {
    rustix::fs::fchown(fd, Some(rustix::fs::Uid::from_raw(owner.0)), Some(rustix::fs::Gid::from_raw(owner.1)))
        .map_err(|e| sys("chown", what, e))?;
    // chown clears setuid/setgid: the mode goes after it.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(|e| sys("chmod", what, e))?;
    if let Some((s, ns)) = mtime {
        let t = Timespec { tv_sec: s, tv_nsec: ns as _ };
        rustix::fs::futimens(fd, &Timestamps { last_access: t, last_modification: t })
            .map_err(|e| sys("utimes", what, e))?;
    }
    Ok(())
}

/// A directory `name` in `parent` (made when missing; an existing
/// non-directory is replaced), open.
fn put_dir(parent: &OwnedFd, name: &str, what: &str) -> Result<OwnedFd, Error> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(sys("mkdir", what, e)),
    }
    match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOTDIR | Errno::LOOP) => {
            rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(|e| sys("remove", what, e))?;
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)).map_err(|e| sys("mkdir", what, e))?;
            rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| sys("open", what, e))
        }
        Err(e) => Err(sys("open", what, e)),
    }
}

/// Remove a non-directory `name` of `parent` if there is one.
fn clear(parent: &OwnedFd, name: &str, what: &str) -> Result<(), Error> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => Err(Error::System(format!("cannot replace directory {what} with a file"))),
        Err(e) => Err(sys("remove", what, e)),
    }
}

fn create_file(parent: &OwnedFd, name: &str, what: &str) -> Result<std::fs::File, Error> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600)) {
        Ok(fd) => fd,
        // Something is there: replace it (never through it).
        Err(Errno::EXIST) => {
            clear(parent, name, what)?;
            rustix::fs::openat(parent, name, flags, Mode::from_raw_mode(0o600)).map_err(|e| sys("create", what, e))?
        }
        Err(e) => return Err(sys("create", what, e)),
    };
    Ok(std::fs::File::from(fd))
}

fn put_file(parent: &OwnedFd, name: &str, what: &str, data: &mut dyn Read) -> Result<OwnedFd, Error> {
    let mut f = create_file(parent, name, what)?;
    std::io::copy(data, &mut f).map_err(|e| Error::System(format!("write {what}: {e}")))?;
    Ok(OwnedFd::from(f))
}

/// Copy a file's bytes file to file (`copy_file_range` in the kernel when
/// it can).
fn put_file_copy(parent: &OwnedFd, name: &str, what: &str, src: &mut std::fs::File) -> Result<OwnedFd, Error> {
    let mut f = create_file(parent, name, what)?;
    std::io::copy(src, &mut f).map_err(|e| Error::System(format!("write {what}: {e}")))?;
    Ok(OwnedFd::from(f))
}

fn put_symlink(parent: &OwnedFd, name: &str, what: &str, target: &str, owner: (u32, u32)) -> Result<(), Error> {
    clear(parent, name, what)?;
    rustix::fs::symlinkat(target, parent, name).map_err(|e| sys("symlink", what, e))?;
    rustix::fs::chownat(
        parent,
        name,
        Some(rustix::fs::Uid::from_raw(owner.0)),
        Some(rustix::fs::Gid::from_raw(owner.1)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys("chown", what, e))
}

fn split(path: &str) -> (String, String) {
    let p = path.trim_end_matches('/');
    match p.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/".into() } else { d.to_string() }, n.to_string()),
        None => ("/".into(), p.to_string()),
    }
}

fn join(a: &str, b: &str) -> String {
    if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// Copy one entry `rel` of `src` (not following a symlink unless `follow`)
/// to `name` in the directory `parent` (shown as `dst`).
fn copy_entry(
    src: &Tree,
    rel: &str,
    follow: bool,
    parent: &OwnedFd,
    name: &str,
    dst: &str,
    o: &CopyOptions,
) -> Result<(), Error> {
    let e = src.entry(rel, follow).map_err(|err| Error::io("stat", &src.path().join(rel), err))?;
    let owner = o.owner.unwrap_or((0, 0));
    match e.kind {
        Kind::Dir => {
            let d = put_dir(parent, name, dst)?;
            copy_children(src, rel, &d, dst, o)?;
            set_meta(&d, dst, o.chmod.unwrap_or(e.mode), owner, Some(e.mtime))
        }
        Kind::File => {
            let fd = src
                .open_rel(rel, OFlags::RDONLY, follow)
                .map_err(|err| Error::io("open", &src.path().join(rel), err))?;
            let out = put_file_copy(parent, name, dst, &mut std::fs::File::from(fd))?;
            set_meta(&out, dst, o.chmod.unwrap_or(e.mode), owner, Some(e.mtime))
        }
        Kind::Symlink => put_symlink(parent, name, dst, e.target.as_deref().unwrap_or_default(), owner),
        Kind::Other => Ok(()),
    }
}

fn copy_children(src: &Tree, rel: &str, dir: &OwnedFd, dst: &str, o: &CopyOptions) -> Result<(), Error> {
    for n in src.children(rel)? {
        let child = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
        if src.excluded(&child) {
            // An excluded directory is still walked when an exception may
            // re-include something below it (`build/` then `!build/keep`).
            let is_dir = src.entry(&child, false).map(|e| e.kind == Kind::Dir).unwrap_or(false);
            if !is_dir || src.can_skip(&child) {
                continue;
            }
        }
        copy_entry(src, &child, false, dir, &n, &join(dst, &n), o)?;
    }
    Ok(())
}

/// Whether the file starts like a tar archive we can extract (plain or gzip).
fn archive_kind(src: &Tree, rel: &str) -> Option<bool> {
    let fd = src.open_rel(rel, OFlags::RDONLY, true).ok()?;
    let mut head = vec![0u8; 512];
    let mut f = std::fs::File::from(fd);
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    if n >= 2 && head[..2] == [0x1f, 0x8b] {
        return Some(true);
    }
    (n >= 262 && &head[257..262] == b"ustar").then_some(false)
}

/// Extract the tar `rel` of `src` into `dest_dir` of `root` (ADD).
fn extract(src: &Tree, rel: &str, gzip: bool, root: &Dest<'_>, dest_dir: &str, o: &CopyOptions) -> Result<(), Error> {
    let fd = src.open_rel(rel, OFlags::RDONLY, true).map_err(|e| Error::io("open", &src.path().join(rel), e))?;
    let f = std::fs::File::from(fd);
    let r: Box<dyn Read> = if gzip { Box::new(flate2::read::MultiGzDecoder::new(f)) } else { Box::new(f) };
    let mut a = tar::Archive::new(r);
    let bad = |e: std::io::Error| Error::Source(format!("ADD {rel}: {e}"));
    for entry in a.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(clean) = crate::context::clean_rel(&path) else {
            return Err(Error::Source(format!("ADD {rel}: entry {path} leaves the destination")));
        };
        if clean.is_empty() {
            continue;
        }
        let h = entry.header().clone();
        let owner = o.owner.unwrap_or((h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32));
        let mode = o.chmod.unwrap_or(h.mode().unwrap_or(0o644) & 0o7777);
        let mtime = Some((h.mtime().unwrap_or(0) as i64, 0));
        let full = join(dest_dir, &clean);
        let (pdir, name) = split(&full);
        let parent = root.dir(&pdir)?;
        match h.entry_type() {
            tar::EntryType::Directory => {
                let d = put_dir(&parent, &name, &full)?;
                set_meta(&d, &full, mode, owner, mtime)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let out = put_file(&parent, &name, &full, &mut entry)?;
                set_meta(&out, &full, mode, owner, mtime)?;
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name().map_err(bad)?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                put_symlink(&parent, &name, &full, &target, owner)?;
            }
            tar::EntryType::Link => {
                let target =
                    entry.link_name().map_err(bad)?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                let Some(t) = crate::context::clean_rel(&target) else {
                    return Err(Error::Source(format!("ADD {rel}: link {path} leaves the destination")));
                };
                let (tdir, tname) = split(&join(dest_dir, &t));
                let tparent = root.dir(&tdir)?;
                clear(&parent, &name, &full)?;
                rustix::fs::linkat(&tparent, tname.as_str(), &parent, name.as_str(), AtFlags::empty())
                    .map_err(|e| sys("link", &full, e))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Copy `sources` (resolved paths in `src`) to `dest` (absolute, inside
/// `root`), with Docker's rules: several sources, or a destination ending
/// in `/`, or an existing directory, take the sources inside it; a
/// directory source copies its contents; ADD extracts local tar archives.
pub fn copy(src: &Tree, sources: &[String], root: &Dest<'_>, dest: &str, o: &CopyOptions) -> Result<(), Error> {
    let dest_exists_dir = root.root.open_at(dest, OFlags::RDONLY | OFlags::DIRECTORY).is_ok();
    let into_dir = sources.len() > 1 || dest.ends_with('/') || dest_exists_dir;
    for s in sources {
        let e = src.entry(s, true).map_err(|err| Error::io("stat", &src.path().join(s), err))?;
        if e.kind == Kind::Dir {
            let d = root.dir(dest)?;
            if let Some(owner) = o.owner {
                set_meta(&d, dest, 0o755, owner, None)?;
            }
            copy_children(src, s, &d, dest, o)?;
            continue;
        }
        if o.extract && e.kind == Kind::File {
            if let Some(gzip) = archive_kind(src, s) {
                root.dir(dest)?;
                extract(src, s, gzip, root, dest, o)?;
                continue;
            }
        }
        let base = s.rsplit('/').next().unwrap_or(s);
        let target = if into_dir { join(dest, base) } else { dest.to_string() };
        let (pdir, name) = split(&target);
        let parent = root.dir(&pdir)?;
        copy_entry(src, s, true, &parent, &name, &target, o)?;
    }
    Ok(())
}

/// Write `content` as the file `dest` (COPY/ADD of a heredoc).
pub fn write_file(root: &Dest<'_>, dest: &str, content: &[u8], o: &CopyOptions) -> Result<(), Error> {
    let (pdir, name) = split(dest);
    let parent = root.dir(&pdir)?;
    let fd = put_file(&parent, &name, dest, &mut &content[..])?;
    set_meta(&fd, dest, o.chmod.unwrap_or(0o644), o.owner.unwrap_or((0, 0)), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerignore::DockerIgnore;
    use std::os::unix::fs::PermissionsExt;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Tree) {
        let d = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let t = Tree::open(d.path(), DockerIgnore::default()).unwrap();
        (d, t)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_destination_rules() {
        let (sd, src) = tree(&[("f.txt", "F"), ("dir/a", "A"), ("dir/sub/b", "B")]);
        std::fs::set_permissions(sd.path().join("f.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let root = Root::open(dst.path()).unwrap();
        let root = Dest { root: &root, upper: None };
        let o = CopyOptions::default();
        copy(&src, &s(&["f.txt"]), &root, "/app/renamed", &o).unwrap();
        assert_eq!(std::fs::read_to_string(dst.path().join("app/renamed")).unwrap(), "F");
        assert_eq!(std::fs::metadata(dst.path().join("app/renamed")).unwrap().permissions().mode() & 0o777, 0o640);
        copy(&src, &s(&["f.txt"]), &root, "/app/", &o).unwrap();
        assert!(dst.path().join("app/f.txt").is_file());
        copy(&src, &s(&["dir"]), &root, "/dst", &o).unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.path().join("dst/sub/b")).unwrap(),
            "B",
            "a directory copies its contents"
        );
        assert!(!dst.path().join("dst/dir").exists());
        copy(&src, &s(&["f.txt", "dir/a"]), &root, "/multi", &o).unwrap();
        assert!(dst.path().join("multi/f.txt").is_file() && dst.path().join("multi/a").is_file());
        let owned = CopyOptions { owner: Some((1234, 5678)), chmod: Some(0o700), extract: false };
        copy(&src, &s(&["f.txt"]), &root, "/own", &owned).unwrap();
        let m = std::fs::metadata(dst.path().join("own")).unwrap();
        use std::os::unix::fs::MetadataExt;
        if rustix::process::geteuid().is_root() {
            assert_eq!((m.uid(), m.gid()), (1234, 5678));
        }
        assert_eq!(m.mode() & 0o777, 0o700);
    }

    #[test]
    fn writes_never_follow_image_symlinks_out() {
        let (_sd, src) = tree(&[("f", "x")]);
        let dst = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        // The image has /etc pointing to a host directory (absolute link).
        std::os::unix::fs::symlink(host.path(), dst.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(host.path().join("victim"), dst.path().join("victim")).unwrap();
        let root = Root::open(dst.path()).unwrap();
        let root = Dest { root: &root, upper: None };
        let _ = copy(&src, &s(&["f"]), &root, "/etc/f", &CopyOptions::default());
        copy(&src, &s(&["f"]), &root, "/victim", &CopyOptions::default()).unwrap();
        assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0, "nothing written on the host");
        assert!(dst.path().join("victim").is_file(), "the link was replaced, not followed");
    }

    #[test]
    fn add_extracts_tars() {
        let d = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "top/file", &b"hi"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "../escape", &b"x"[..]).unwrap_or(());
        let bytes = b.into_inner().unwrap();
        std::fs::write(d.path().join("a.tar"), &bytes).unwrap();
        let src = Tree::open(d.path(), DockerIgnore::default()).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let root = Root::open(dst.path()).unwrap();
        let root = Dest { root: &root, upper: None };
        let o = CopyOptions { extract: true, ..Default::default() };
        let r = copy(&src, &s(&["a.tar"]), &root, "/x/", &o);
        assert_eq!(std::fs::read_to_string(dst.path().join("x/top/file")).unwrap(), "hi");
        // The tar crate refuses to write `..` names; if one got in, it is refused here.
        assert!(!dst.path().join("escape").exists());
        let _ = r;
    }
}
