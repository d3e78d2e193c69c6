//! Mounting a union through FUSE, in the foreground or as a daemon.
//!
//! Daemon protocol: the command re-executes itself in the foreground with
//! `STRATA_OVERLAYFS_NOTIFY=1` and its standard output on a pipe. The child
//! mounts, writes `ready` on that pipe once the kernel has completed the FUSE
//! handshake (the mount is live), then points its standard streams at
//! `/dev/null` and serves until unmounted. The parent exits 0 on `ready`, or
//! with the child's error and status otherwise. So the command returns only
//! once the mount can be used.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use fuser::{Config, SessionACL};
use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;

use crate::error::{Error, Result};
use crate::fuse::OverlayFs;
use crate::options::Options;
use crate::overlay::{Overlay, OverlayConfig};

const NOTIFY_ENV: &str = "STRATA_OVERLAYFS_NOTIFY";

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
pub fn run(opts: &Options, args: &[String]) -> Result<()> {
    let mut cfg: OverlayConfig = (&opts.layers).into();
    if opts.read_only {
        cfg.upper = None;
        cfg.work = None;
    }
    // Daemonizing: the child (which shares our stderr) opens and checks
    // everything once, reports any configuration error itself and exits; we
    // return only when it says the mount is live.
    if !opts.foreground {
        return spawn_daemon(args);
    }
    let ov = Overlay::new(&cfg)?;
    let mp = check_mountpoint(&opts.mountpoint, &ov.layer_roots())?;
    let ov_read_only = ov.read_only();
    let fs = OverlayFs::new(ov, opts.readdirplus);
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
    if std::env::var_os(NOTIFY_ENV).is_some() {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            let _ = rustix::stdio::dup2_stdout(&null);
            let _ = rustix::stdio::dup2_stderr(&null);
            let _ = rustix::stdio::dup2_stdin(&null);
        }
    }
    session.run().map_err(|e| Error::Config(format!("FUSE session ended: {e}")))
}

fn spawn_daemon(args: &[String]) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::Config(format!("cannot find own executable: {e}")))?;
    let mut child = Command::new(exe)
        .arg("-f")
        .args(args)
        .env(NOTIFY_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Config(format!("cannot start the daemon: {e}")))?;
    let out = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() == "ready" {
        return Ok(());
    }
    let status = child.wait().map_err(|e| Error::Config(format!("daemon: {e}")))?;
    if status.code() == Some(1) {
        // It printed its error (configuration, layers, mountpoint, handshake).
        return Err(Error::Reported);
    }
    Err(Error::Config(format!("mount failed (daemon exited with {status})")))
}
