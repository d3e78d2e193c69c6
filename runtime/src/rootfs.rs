//! File operations inside a container's root filesystem on the host side
//! (reading `/etc/passwd`, creating `-w`, filling the init layer). Every
//! path is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink in the
//! image can never lead outside the root.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{IoContext, Result};

/// An open root directory. Owns its descriptor.
pub struct Root {
    fd: OwnedFd,
    path: std::path::PathBuf,
}

/// What [`Root::ensure`] creates when a path is missing.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A directory (mode 0755).
    Dir,
    /// An empty regular file with this mode.
    File(u32),
    /// A symbolic link to this target.
    Symlink(&'static str),
}

fn components(path: &str) -> Vec<&str> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect()
}

impl Root {
    /// Open `path` as a root.
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .at("open root", path)?;
        Ok(Root { fd, path: path.to_path_buf() })
    }

    /// The root's path on the host (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Open `path` inside the root (symlinks resolved inside it).
    pub fn open_at(&self, path: &str, flags: OFlags) -> Result<OwnedFd> {
        let rel = components(path).join("/");
        self.open_in(&rel, flags).at("open", &self.path.join(&rel))
    }

    /// `mkdir -p` inside the root: missing directories are made with `mode`
    /// (owned by the caller); returns the last one, open. A component that
    /// exists and is not a directory (after symlinks) fails with ENOTDIR.
    pub fn dir_all(&self, path: &str, mode: u32) -> Result<OwnedFd> {
        let parts = components(path);
        let mut dir = self.open_in("", OFlags::RDONLY | OFlags::DIRECTORY).at("open", &self.path)?;
        let mut sofar = String::new();
        for p in parts {
            if !sofar.is_empty() {
                sofar.push('/');
            }
            sofar.push_str(p);
            match rustix::fs::mkdirat(&dir, p, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e).at("mkdir", &self.path.join(&sofar)),
            }
            dir = self.open_in(&sofar, OFlags::RDONLY | OFlags::DIRECTORY).at("open", &self.path.join(&sofar))?;
        }
        Ok(dir)
    }

    fn open_in(&self, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        rustix::fs::openat2(&self.fd, rel, flags | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::IN_ROOT)
    }

    /// The contents of a file inside the root (`None` when it does not
    /// exist); at most 4 MiB are read.
    pub fn read(&self, path: &str) -> Result<Option<String>> {
        let rel = components(path).join("/");
        let fd = match self.open_in(&rel, OFlags::RDONLY) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(e).at("open", &self.path.join(&rel)),
        };
        let mut s = Vec::new();
        std::fs::File::from(fd).take(4 << 20).read_to_end(&mut s).at("read", &self.path.join(&rel))?;
        Ok(Some(String::from_utf8_lossy(&s).into_owned()))
    }

    /// Whether `cmd` names an executable regular file inside the root: as a
    /// path when it holds a `/`, else looked up in the `:`-separated `path`
    /// (relative to `cwd` for a relative entry), as execvp does.
    pub fn has_executable(&self, cmd: &str, path: &str, cwd: &str) -> bool {
        let is_exec = |p: &str| -> bool {
            let rel = components(p).join("/");
            match self.open_in(&rel, OFlags::PATH) {
                Ok(fd) => rustix::fs::fstat(&fd)
                    .map(|st| {
                        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
                        ft == rustix::fs::FileType::RegularFile && st.st_mode & 0o111 != 0
                    })
                    .unwrap_or(false),
                Err(_) => false,
            }
        };
        if cmd.contains('/') {
            return is_exec(&if cmd.starts_with('/') { cmd.to_string() } else { format!("{cwd}/{cmd}") });
        }
        path.split(':').any(|d| {
            let d = if d.is_empty() { "." } else { d };
            let dir = if d.starts_with('/') { d.to_string() } else { format!("{cwd}/{d}") };
            is_exec(&format!("{dir}/{cmd}"))
        })
    }

    /// Make sure `path` exists: missing parents become directories (0755,
    /// root-owned), a missing last component becomes `kind`. Something
    /// already there is left alone, whatever its type.
    pub fn ensure(&self, path: &str, kind: Kind) -> Result<()> {
        let parts = components(path);
        let Some((last, parents)) = parts.split_last() else { return Ok(()) };
        let mut dir = self.open_in("", OFlags::RDONLY | OFlags::DIRECTORY).at("open", &self.path)?;
        let mut sofar = String::new();
        for p in parents {
            if !sofar.is_empty() {
                sofar.push('/');
            }
            sofar.push_str(p);
            match rustix::fs::mkdirat(&dir, *p, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e).at("mkdir", &self.path.join(&sofar)),
            }
            dir = self.open_in(&sofar, OFlags::RDONLY | OFlags::DIRECTORY).at("open", &self.path.join(&sofar))?;
        }
        let full = self.path.join(parts.join("/"));
        let r = match kind {
            Kind::Dir => rustix::fs::mkdirat(&dir, *last, Mode::from_raw_mode(0o755)),
            Kind::File(mode) => rustix::fs::openat(
                &dir,
                *last,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(mode),
            )
            .and_then(|fd| rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))),
            Kind::Symlink(target) => rustix::fs::symlinkat(target, &dir, *last),
        };
        match r {
            Ok(()) | Err(Errno::EXIST) => Ok(()),
            Err(e) => Err(e).at("create", &full),
        }
    }
}

/// What the hidden init layer holds (Docker's `initlayer`): the mount
/// points and files the runtime needs, so that creating them never shows
/// in the container's own layer.
pub const INIT_LAYER: &[(&str, Kind)] = &[
    ("/dev/pts", Kind::Dir),
    ("/dev/shm", Kind::Dir),
    ("/dev/mqueue", Kind::Dir),
    ("/dev/console", Kind::File(0o755)),
    ("/proc", Kind::Dir),
    ("/sys", Kind::Dir),
    ("/.dockerenv", Kind::File(0o755)),
    ("/etc/resolv.conf", Kind::File(0o755)),
    ("/etc/hosts", Kind::File(0o755)),
    ("/etc/hostname", Kind::File(0o755)),
    ("/etc/mtab", Kind::Symlink("/proc/mounts")),
];

/// Fill an init layer mounted at `root`.
pub fn fill_init_layer(root: &Path) -> Result<()> {
    let r = Root::open(root)?;
    for (p, k) in INIT_LAYER {
        r.ensure(p, *k)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_stay_inside() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "evil").unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("passwd"), d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("escape")).unwrap();
        let r = Root::open(d.path()).unwrap();
        // The absolute link resolves inside the root, where there is nothing.
        assert_eq!(r.read("/etc/passwd").unwrap(), None);
        // A link to the outside resolves inside the root, where its target
        // does not exist: refused, and nothing is made outside.
        assert!(r.ensure("/escape/new/dir", Kind::Dir).is_err());
        assert!(!outside.path().join("new").exists());
        // A link to a directory that exists inside is followed inside.
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/real", d.path().join("inside")).unwrap();
        r.ensure("/inside/w", Kind::Dir).unwrap();
        assert!(d.path().join("real/w").is_dir());
        r.ensure("/../../x/y", Kind::File(0o644)).unwrap();
        assert!(d.path().join("x/y").is_file());
    }

    #[test]
    fn executables() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("bin")).unwrap();
        std::fs::write(d.path().join("bin/tool"), "").unwrap();
        std::fs::set_permissions(d.path().join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.path().join("bin/data"), "").unwrap();
        std::os::unix::fs::symlink("tool", d.path().join("bin/link")).unwrap();
        let r = Root::open(d.path()).unwrap();
        for (cmd, path, want) in [
            ("tool", "/usr/bin:/bin", true),
            ("link", "/bin", true),
            ("data", "/bin", false),
            ("nonexist", "/bin", false),
            ("/bin/tool", "", true),
            ("bin/tool", "", true),
            ("bin", "/", false),
            ("tool", "", false),
        ] {
            assert_eq!(r.has_executable(cmd, path, "/"), want, "{cmd} in {path}");
        }
    }

    #[test]
    fn init_layer_contents() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/hosts"), "keep").unwrap();
        fill_init_layer(d.path()).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("etc/hosts")).unwrap(), "keep");
        assert!(d.path().join("dev/pts").is_dir());
        assert!(d.path().join(".dockerenv").is_file());
        assert_eq!(std::fs::read_link(d.path().join("etc/mtab")).unwrap(), Path::new("/proc/mounts"));
        // Idempotent.
        fill_init_layer(d.path()).unwrap();
    }
}
