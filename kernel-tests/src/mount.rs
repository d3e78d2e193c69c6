//! Mounting a [`Layout`] with the kernel's overlayfs or with the strata
//! binary, and unmounting.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::spec::Layout;

/// Options every kernel overlay mount gets (after lowerdir/upperdir/workdir).
/// Override with the env var `STRATA_KERNEL_OPTS`.
///
/// `index=on` because DESIGN.md requires hard links to stay linked through
/// copy-up, which is what the kernel does with `index=on` (with `index=off`
/// copying up one name of a lower hard link breaks the link).
pub const DEFAULT_KERNEL_OPTS: &str = "redirect_dir=on,index=on,metacopy=off,xino=off";

/// The same with `index=off` (hard links broken by copy-up).
pub const KERNEL_OPTS_INDEX_OFF: &str = "redirect_dir=on,index=off,metacopy=off,xino=off";

/// Why the kernel tests cannot run here (not root, no /dev/fuse), if so.
pub fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not running as root".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is absent".into());
    }
    None
}

/// True when the tests can run; otherwise prints a loud SKIPPED message.
pub fn can_run(test: &str) -> bool {
    match skip_reason() {
        None => true,
        Some(why) => {
            eprintln!();
            eprintln!("##########################################################");
            eprintln!("## SKIPPED {test}: {why}.");
            eprintln!("## Kernel differential tests need root and /dev/fuse.");
            eprintln!("##########################################################");
            false
        }
    }
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(d)
            }
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// The binary to test: `STRATA_OVERLAYFS_BIN`, else
/// `<target>/debug/strata-overlayfs`. Panics with instructions when missing.
pub fn strata_bin() -> PathBuf {
    let (bin, from_env) = match std::env::var_os("STRATA_OVERLAYFS_BIN") {
        Some(b) => (PathBuf::from(b), true),
        None => (target_dir().join("debug/strata-overlayfs"), false),
    };
    if !bin.is_file() {
        if from_env {
            panic!("STRATA_OVERLAYFS_BIN={} does not exist or is not a file", bin.display());
        }
        panic!(
            "strata-overlayfs binary not found at {}.\n\
             Run `cargo build -p strata-fs --bins` first \
             (or set STRATA_OVERLAYFS_BIN to the binary to test).",
            bin.display()
        );
    }
    bin.canonicalize().unwrap_or(bin)
}

/// Kernel overlay options in force: `STRATA_KERNEL_OPTS` or [`DEFAULT_KERNEL_OPTS`].
pub fn kernel_opts() -> String {
    std::env::var("STRATA_KERNEL_OPTS").unwrap_or_else(|_| DEFAULT_KERNEL_OPTS.to_string())
}

/// Which implementation a mount uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    /// The kernel's overlayfs.
    Kernel,
    /// The binary under test (strata-overlayfs, or whatever `STRATA_OVERLAYFS_BIN` names).
    Strata,
}

/// A live mount; unmounted on drop.
#[derive(Debug)]
pub struct Mount {
    path: PathBuf,
    imp: Impl,
    daemons: Vec<u32>,
    log: Option<PathBuf>,
    mounted: bool,
}

fn lowerdir(layout: &Layout) -> String {
    layout.lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
}

fn layer_opts(layout: &Layout) -> String {
    let mut o = format!("lowerdir={}", lowerdir(layout));
    if let (Some(u), Some(w)) = (&layout.upper, &layout.work) {
        o.push_str(&format!(",upperdir={},workdir={}", u.display(), w.display()));
    }
    o
}

/// Is something mounted exactly at `path`?
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read("/proc/self/mountinfo") else {
        return false;
    };
    let want = escape_mountinfo(path.as_os_str().as_bytes());
    info.split(|&c| c == b'\n').any(|line| line.split(|&c| c == b' ').nth(4).is_some_and(|mp| mp == want.as_slice()))
}

fn escape_mountinfo(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in p {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\\') {
            out.extend_from_slice(format!("\\{c:03o}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out
}

/// Kernel overlay mount of `layout` at `layout.mnt` (read-only when the
/// layout has no upper; the kernel then needs at least two lowers).
pub fn mount_kernel(layout: &Layout) -> Result<Mount, String> {
    mount_kernel_with(layout, &kernel_opts())
}

/// Kernel overlay mount with explicit extra options.
pub fn mount_kernel_with(layout: &Layout, extra: &str) -> Result<Mount, String> {
    let mut opts = layer_opts(layout);
    if !extra.is_empty() {
        opts.push(',');
        opts.push_str(extra);
    }
    let out = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&layout.mnt)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "kernel overlay mount failed ({}): {}\n  options: {opts}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Mount { path: layout.mnt.clone(), imp: Impl::Kernel, daemons: Vec::new(), log: None, mounted: true })
}

/// Mount `layout` with the binary under test ([`strata_bin`]). Its stdout and
/// stderr (the daemon's too) go to `<layout.dir>/strata-<mnt name>.log`.
pub fn mount_strata(layout: &Layout) -> Result<Mount, String> {
    mount_strata_with(&strata_bin(), layout)
}

/// Mount `layout` with a given binary (`BIN -o lowerdir=…,upperdir=…,workdir=… MNT`,
/// plus `STRATA_OVERLAYFS_OPTS` if set). Returns once the mount is live.
pub fn mount_strata_with(bin: &Path, layout: &Layout) -> Result<Mount, String> {
    let mut opts = layer_opts(layout);
    if let Ok(extra) = std::env::var("STRATA_OVERLAYFS_OPTS") {
        if !extra.is_empty() {
            opts.push(',');
            opts.push_str(&extra);
        }
    }
    let name = layout.mnt.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let log = layout.dir.join(format!("strata-{name}.log"));
    let logf = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("creating {}: {e}", log.display()))?;
    let logf2 = logf.try_clone().map_err(|e| e.to_string())?;
    // The binary may be being rebuilt right now (cargo replaces the file):
    // retry briefly on ENOENT / ETXTBSY.
    let spawn_deadline = Instant::now() + Duration::from_secs(20);
    let mut child = loop {
        let r = Command::new(bin)
            .arg("-o")
            .arg(&opts)
            .arg(&layout.mnt)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf2.try_clone().map_err(|e| e.to_string())?)
            .spawn();
        match r {
            Ok(c) => break c,
            Err(e)
                if (e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ETXTBSY))
                    && Instant::now() < spawn_deadline =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("running {}: {e}", bin.display())),
        }
    };
    drop((logf, logf2));
    let log_text = || fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + step_timeout();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                for pid in daemons_for(&layout.mnt) {
                    kill(pid);
                }
                if is_mounted(&layout.mnt) {
                    let _ = rustix::mount::unmount(&layout.mnt, rustix::mount::UnmountFlags::DETACH);
                }
                return Err(format!(
                    "{} did not return within {:?} (killed): {}\n  options: {opts}",
                    bin.display(),
                    step_timeout(),
                    log_text().trim()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("waiting for {}: {e}", bin.display())),
        }
    };
    if !status.success() {
        return Err(format!("{} failed ({status}): {}\n  options: {opts}", bin.display(), log_text().trim()));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_mounted(&layout.mnt) {
        if Instant::now() > deadline {
            return Err(format!(
                "{} exited 0 but {} is not mounted after 10 s: {}",
                bin.display(),
                layout.mnt.display(),
                log_text().trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(Mount {
        daemons: daemons_for(&layout.mnt),
        path: layout.mnt.clone(),
        imp: Impl::Strata,
        log: Some(log),
        mounted: true,
    })
}

/// Mount with either implementation.
pub fn mount(imp: Impl, layout: &Layout) -> Result<Mount, String> {
    match imp {
        Impl::Kernel => mount_kernel(layout),
        Impl::Strata => mount_strata(layout),
    }
}

/// How long one step (an op plus a snapshot, a mount, an unmount) may take
/// before the filesystem is declared hung: `STRATA_DIFF_TIMEOUT` seconds,
/// default 30.
pub fn step_timeout() -> Duration {
    let secs = std::env::var("STRATA_DIFF_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(10u64);
    Duration::from_secs(secs)
}

/// Run `f`; after `timeout` kill `pids` (SIGKILL) so that whatever `f`
/// waits on in a FUSE request fails. Returns whether the kill happened.
fn with_watchdog<T>(timeout: Duration, pids: &[u32], f: impl FnOnce() -> T) -> (T, bool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{channel, RecvTimeoutError};
    if pids.is_empty() {
        return (f(), false);
    }
    let fired = AtomicBool::new(false);
    let (tx, rx) = channel::<()>();
    let fired_ref = &fired;
    let r = std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                fired_ref.store(true, Ordering::SeqCst);
                for &pid in pids {
                    kill(pid);
                }
            }
        });
        let r = f();
        drop(tx);
        r
    });
    (r, fired.load(Ordering::SeqCst))
}

fn kill(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Processes (other than us) whose command line has `mnt` as an argument.
fn daemons_for(mnt: &Path) -> Vec<u32> {
    let me = std::process::id();
    let want = mnt.as_os_str().as_bytes();
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for ent in rd.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = fs::read(ent.path().join("cmdline")) {
            if cmd.split(|&c| c == 0).any(|a| a == want) {
                out.push(pid);
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // State is the field after the parenthesised command name.
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

impl Mount {
    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Which implementation.
    pub fn imp(&self) -> Impl {
        self.imp
    }

    /// The daemon's log file (strata mounts).
    pub fn log(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The last `max` bytes of the daemon's log (empty for kernel mounts).
    pub fn log_tail(&self, max: usize) -> String {
        let Some(l) = &self.log else {
            return String::new();
        };
        let s = fs::read(l).unwrap_or_default();
        String::from_utf8_lossy(&s[s.len().saturating_sub(max)..]).into_owned()
    }

    /// The daemon processes serving this mount (strata mounts).
    pub fn daemon_pids(&self) -> &[u32] {
        &self.daemons
    }

    /// Kill the daemon (SIGKILL): aborts the FUSE connection, so every
    /// request blocked on it fails with ENOTCONN. Returns false if no daemon
    /// process is known.
    pub fn kill_daemon(&self) -> bool {
        for &pid in &self.daemons {
            kill(pid);
        }
        !self.daemons.is_empty()
    }

    /// Run `f`; if it takes longer than `timeout`, kill the daemon so that
    /// `f` returns (with ENOTCONN errors). Returns `f`'s value and whether
    /// the daemon had to be killed. Kernel mounts just run `f`.
    pub fn watchdog<T>(&self, timeout: Duration, f: impl FnOnce() -> T) -> (T, bool) {
        if self.imp == Impl::Kernel {
            return (f(), false);
        }
        with_watchdog(timeout, &self.daemons, f)
    }

    /// Unmount: `umount` retried for up to ~5 s while busy, then `umount -l`;
    /// then wait (up to 10 s) for the daemon to exit. Errors say what went wrong.
    pub fn unmount(mut self) -> Result<(), String> {
        let timeout = step_timeout() + Duration::from_secs(15);
        let daemons = if self.imp == Impl::Strata { self.daemons.clone() } else { Vec::new() };
        let (r, fired) = with_watchdog(timeout, &daemons, || self.do_unmount());
        if fired {
            return Err(format!(
                "unmounting {} hung for {timeout:?}; daemon killed ({})",
                self.path.display(),
                r.err().unwrap_or_default()
            ));
        }
        r
    }

    fn do_unmount(&mut self) -> Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        let mut last_err = String::new();
        let mut done = false;
        let start = Instant::now();
        for attempt in 0..40u32 {
            match rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::empty()) {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(rustix::io::Errno::INVAL) if !is_mounted(&self.path) => {
                    last_err = "not mounted".into();
                    break;
                }
                Err(e) => last_err = format!("umount: {e}"),
            }
            std::thread::sleep(Duration::from_millis(5 * u64::from(attempt.min(20)) + 1));
        }
        let mut result = Ok(());
        if !done && is_mounted(&self.path) {
            let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
            result = Err(format!(
                "{} stayed busy for {:?} ({last_err}); lazily unmounted",
                self.path.display(),
                start.elapsed()
            ));
        } else if !done {
            result = Err(format!(
                "{} was no longer mounted ({:?} mount; did the daemon die?)\n{}",
                self.path.display(),
                self.imp,
                self.log_tail(2000)
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for &pid in &self.daemons {
            while alive(pid) {
                if Instant::now() > deadline {
                    kill(pid);
                    return Err(format!(
                        "daemon {pid} for {} still running 10 s after unmount (killed)",
                        self.path.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        result
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.do_unmount() {
            eprintln!("warning: {e}");
        }
    }
}
