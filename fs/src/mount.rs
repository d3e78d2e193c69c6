//! Mounting a union through FUSE, in the foreground or as a daemon.
//!
//! Daemon protocol: the command forks (before any thread exists). The child
//! opens and checks the layers, mounts, and writes `ready` on a pipe once the
//! kernel has completed the FUSE handshake (the mount is live), then points
//! its standard streams at `/dev/null` and serves until unmounted. Errors it
//! meets before that it prints on the shared stderr itself. The parent exits
//! 0 on `ready`, or with the child's status otherwise. So the command returns
//! only once the mount can be used.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use fuser::{Config, SessionACL};
use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;

use crate::error::{Error, Result};
use crate::fuse::OverlayFs;
use crate::options::Options;
use crate::overlay::{Overlay, OverlayConfig};
use crate::sys::{fork_single_threaded, Forked};

/// Check that the mountpoint is a directory outside every layer.
pub fn check_mountpoint(mountpoint: &Path, layer_roots: &[PathBuf]) -> Result<PathBuf> {
    let mp = std::fs::canonicalize(mountpoint)
        .map_err(|e| Error::Config(format!("mountpoint {}: {e}", mountpoint.display())))?;
    if !mp.is_dir() {
        return Err(Error::Config(format!("mountpoint {} is not a directory", mountpoint.display())));
    }
    for root in layer_roots {
        // Path::starts_with compares whole components, never string prefixes.
        if mp.starts_with(root) {
            return Err(Error::Config(format!("mountpoint {} is inside the layer {}", mp.display(), root.display())));
        }
    }
    Ok(mp)
}

/// Mount a FUSE filesystem of type `fuse.strata-overlayfs` on `mp` and
/// return the `/dev/fuse` descriptor serving it (owned by the caller).
///
/// strata mounts by itself rather than through fuser, so that nothing ever
/// unmounts the path later: a daemon outliving its mount must not detach a
/// newer mount at the same place.
/// `read_only` mounts with `MS_RDONLY`, so the VFS refuses writes up front
/// (EROFS) as it does for a kernel overlay without an upper layer.
fn mount_fuse(mp: &Path, opts: &Options, read_only: bool) -> Result<OwnedFd> {
    let sys = |what: &str, e: rustix::io::Errno| Error::Config(format!("{what} {}: {e}", mp.display()));
    let fd = rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| sys("cannot open /dev/fuse to mount", e))?;
    let st = rustix::fs::stat(mp).map_err(|e| sys("cannot stat mountpoint", e))?;
    let data = format!(
        "fd={},rootmode={:o},user_id={},group_id={},default_permissions,allow_other",
        fd.as_raw_fd(),
        st.st_mode & libc::S_IFMT,
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw()
    );
    let mut flags = MountFlags::empty();
    for (opt, flag) in [
        ("nodev", MountFlags::NODEV),
        ("nosuid", MountFlags::NOSUID),
        ("noexec", MountFlags::NOEXEC),
        ("noatime", MountFlags::NOATIME),
        ("dirsync", MountFlags::DIRSYNC),
        ("sync", MountFlags::SYNCHRONOUS),
    ] {
        if opts.flags.iter().any(|f| f == opt) {
            flags |= flag;
        }
    }
    if read_only {
        flags |= MountFlags::RDONLY;
    }
    let source = opts.source.clone().unwrap_or_else(|| "strata-overlayfs".into());
    let data = CString::new(data).expect("no NUL in mount data");
    rustix::mount::mount(source.as_str(), mp, "fuse.strata-overlayfs", flags, data.as_c_str())
        .map_err(|e| sys("cannot mount on", e))?;
    Ok(fd)
}

fn session_config() -> Config {
    let mut c = Config::default();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
    c.n_threads = Some(threads);
    c.clone_fd = true;
    c
}

/// Open the layers, check the mountpoint, and serve the mount until it is
/// unmounted (foreground), or hand it to a daemon and return once it is live.
///
/// Daemon mode forks, so it must be called while the process has a single
/// thread (see `sys::fork_single_threaded`); in the parent it returns `Ok`
/// once the child reports the mount live, `Error::Reported` when the child
/// exited 1 after printing its error.
pub fn run(opts: &Options) -> Result<()> {
    if opts.foreground {
        return serve(opts, None);
    }
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Config(format!("cannot create a pipe: {e}")))?;
    match fork_single_threaded().map_err(|e| Error::Config(format!("cannot start the daemon: {e}")))? {
        Forked::Child => {
            drop(read_end);
            // Its own process group: a terminal's ^C to the command that
            // mounted must not end the daemon serving the mount.
            let _ = rustix::process::setpgid(None, None);
            serve(opts, Some(write_end))
        }
        Forked::Parent(child) => {
            drop(write_end);
            let mut line = String::new();
            let _ = BufReader::new(std::fs::File::from(read_end)).read_line(&mut line);
            if line.trim() == "ready" {
                return Ok(());
            }
            let status = rustix::process::waitpid(Some(child), rustix::process::WaitOptions::empty())
                .map_err(|e| Error::Config(format!("daemon: {e}")))?;
            match status.and_then(|(_, st)| st.exit_status()) {
                // It printed its error (configuration, layers, mountpoint, handshake).
                Some(1) => Err(Error::Reported),
                other => Err(Error::Config(format!("mount failed (daemon ended with {other:?})"))),
            }
        }
    }
}

/// Mount and serve in this process. `ready`, when given, is the pipe on
/// which to say `ready` once the mount is live (daemon mode: the standard
/// streams are then pointed at `/dev/null`); it is closed after that.
fn serve(opts: &Options, ready: Option<OwnedFd>) -> Result<()> {
    let mut cfg: OverlayConfig = (&opts.layers).into();
    if opts.read_only {
        cfg.upper = None;
        cfg.work = None;
    }
    let ov = Overlay::new(&cfg)?;
    let mp = check_mountpoint(&opts.mountpoint, &ov.layer_roots())?;
    let ov_read_only = ov.read_only();
    let fs = OverlayFs::new(ov, !opts.no_readdirplus);
    let notifier = fs.notifier_slot();
    let fd = mount_fuse(&mp, opts, ov_read_only)?;
    let session = match fuser::Session::from_fd(fs, fd, SessionACL::All, session_config()) {
        Ok(s) => s,
        Err(e) => {
            let _ = rustix::mount::unmount(&mp, rustix::mount::UnmountFlags::DETACH);
            return Err(Error::Config(format!("FUSE handshake on {} failed: {e}", mp.display())));
        }
    };
    let _ = notifier.set(session.notifier());
    if let Some(ready) = ready {
        let mut out = std::fs::File::from(ready);
        let _ = out.write_all(b"ready\n");
        drop(out);
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            let _ = rustix::stdio::dup2_stdout(&null);
            let _ = rustix::stdio::dup2_stderr(&null);
            let _ = rustix::stdio::dup2_stdin(&null);
        }
    }
    session.run().map_err(|e| Error::Config(format!("FUSE session ended: {e}")))
}
