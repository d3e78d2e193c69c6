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

use fuser::{Config, MountOption, SessionACL};

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
        return Err(Error::Config(format!(
            "mountpoint {} is not a directory",
            mountpoint.display()
        )));
    }
    for root in layer_roots {
        // Path::starts_with compares whole components, never string prefixes.
        if mp.starts_with(root) {
            return Err(Error::Config(format!(
                "mountpoint {} is inside the layer {}",
                mp.display(),
                root.display()
            )));
        }
    }
    Ok(mp)
}

fn session_config(opts: &Options) -> Config {
    let mut c = Config::default();
    let mut mo = vec![
        MountOption::FSName(
            opts.source
                .clone()
                .unwrap_or_else(|| "strata-overlayfs".into()),
        ),
        MountOption::Subtype("strata-overlayfs".into()),
        MountOption::DefaultPermissions,
    ];
    if opts.read_only {
        mo.push(MountOption::RO);
    }
    for f in &opts.flags {
        match f.as_str() {
            "nodev" => mo.push(MountOption::NoDev),
            "nosuid" => mo.push(MountOption::NoSuid),
            "noexec" => mo.push(MountOption::NoExec),
            "noatime" => mo.push(MountOption::NoAtime),
            "dirsync" => mo.push(MountOption::DirSync),
            "sync" => mo.push(MountOption::Sync),
            _ => {}
        }
    }
    if !mo.contains(&MountOption::NoDev) {
        mo.push(MountOption::Dev);
    }
    if !mo.contains(&MountOption::NoSuid) {
        mo.push(MountOption::Suid);
    }
    c.mount_options = mo;
    c.acl = SessionACL::All;
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
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
    // Configuration errors are found here, before any daemon starts, so they
    // are reported once and by the command the user ran.
    let ov = Overlay::new(&cfg)?;
    let mp = check_mountpoint(&opts.mountpoint, &ov.layer_roots())?;
    if !opts.foreground {
        drop(ov);
        return spawn_daemon(args);
    }
    let fs = OverlayFs::new(ov, opts.readdirplus);
    let session = fuser::Session::new(fs, &mp, &session_config(opts))
        .map_err(|e| Error::Config(format!("cannot mount on {}: {e}", mp.display())))?;
    if std::env::var_os(NOTIFY_ENV).is_some() {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "ready");
        let _ = out.flush();
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            let _ = rustix::stdio::dup2_stdout(&null);
            let _ = rustix::stdio::dup2_stderr(&null);
            let _ = rustix::stdio::dup2_stdin(&null);
        }
    }
    session
        .run()
        .map_err(|e| Error::Config(format!("FUSE session ended: {e}")))
}

fn spawn_daemon(args: &[String]) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Config(format!("cannot find own executable: {e}")))?;
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
    let status = child
        .wait()
        .map_err(|e| Error::Config(format!("daemon: {e}")))?;
    Err(Error::Config(format!(
        "mount failed (daemon exited with {status})"
    )))
}
