//! strata for an unprivileged user: every command runs inside a user and
//! mount namespace of the user's own, mapped from `/etc/subuid` and
//! `/etc/subgid` through `newuidmap`/`newgidmap` (Debian's `uidmap`), so
//! that files in layers keep their owners (mapped) and mounts made by one
//! command are seen by the next.
//!
//! The namespaces are kept alive between commands by a pause process (as
//! podman's): `unshare --user --mount --propagation private sleep
//! infinity`, in its own process group, its pid in
//! `$XDG_RUNTIME_DIR/strata/pause.pid` (else `/tmp/strata-<uid>/`). A
//! command joins them with `setns` before it starts any thread. Inside,
//! the user is root: uid 0 is the user's own ID, 1… the subordinate range.
//!
//! Each missing prerequisite has its own message and changes nothing.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

/// Set (to the user's own uid) in the environment of a command that runs
/// inside the user's namespace: children inherit it, and settings use it
/// to pick the user's store instead of root's.
pub const ROOTLESS_ENV: &str = "STRATA_ROOTLESS_UID";

/// A user's subordinate ID range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First subordinate ID.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// The uid of the user strata runs for, if it runs rootless (in the
/// user's namespace, entered by [`enter`]).
pub fn rootless_uid() -> Option<u32> {
    std::env::var_os(ROOTLESS_ENV).and_then(|v| v.to_str()?.parse().ok())
}

/// Join (creating it if needed) this user's namespace. Does nothing for
/// root, inside the namespace already, or for a store `root` given on the
/// command line that belongs to somebody else (the user may read it, not
/// write it, namespace or not: reads work as they are). Must run before
/// any thread starts.
pub fn enter(root: Option<&Path>) -> Result<()> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let uid = rustix::process::getuid().as_raw();
    if root.and_then(|r| std::fs::metadata(r).ok()).is_some_and(|m| m.uid() != uid) {
        return Ok(());
    }
    let gid = rustix::process::getgid().as_raw();
    let dir = state_dir(uid);
    let pidfile = dir.join("pause.pid");
    let pid = match live_pause(&pidfile, uid) {
        Some(pid) => pid,
        None => {
            let pid = start_pause(uid, gid)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            std::fs::write(&pidfile, format!("{pid}\n")).with_context(|| format!("write {}", pidfile.display()))?;
            pid
        }
    };
    join(pid)?;
    if !rustix::process::geteuid().is_root() {
        bail!("joined the user namespace of process {pid} but am not root in it (its ID mapping is missing)");
    }
    // SAFETY of set_var: called before any other thread exists (the
    // contract of this function); edition 2021 makes it a safe call.
    std::env::set_var(ROOTLESS_ENV, uid.to_string());
    Ok(())
}

fn state_dir(uid: u32) -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() && Path::new(&d).is_dir() => PathBuf::from(d).join("strata"),
        _ => PathBuf::from(format!("/tmp/strata-{uid}")),
    }
}

/// The pause process recorded in `pidfile`, if it still runs as `uid` in
/// a user namespace other than ours.
fn live_pause(pidfile: &Path, uid: u32) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    (std::fs::metadata(&proc).ok()?.uid() == uid
        && ns_inode(&proc, "user")? != ns_inode(Path::new("/proc/self"), "user")?)
    .then_some(pid)
}

fn ns_inode(proc: &Path, ns: &str) -> Option<u64> {
    std::fs::metadata(proc.join("ns").join(ns)).ok().map(|m| m.ino())
}

/// The user's name (for /etc/subuid), from /etc/passwd, else `$USER`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
        })
        .or_else(|| std::env::var("USER").ok())
}

/// The first range for `name` or `id` in an /etc/subuid-style file.
pub fn subordinate(text: &str, name: Option<&str>, id: u32) -> Option<Range> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.trim().split(':').collect();
        if f.len() != 3 || !(Some(f[0]) == name || f[0] == id.to_string()) {
            return None;
        }
        let (start, count) = (f[1].parse().ok()?, f[2].parse().ok()?);
        (count > 0).then_some(Range { start, count })
    })
}

fn range_of(file: &str, name: Option<&str>, id: u32) -> Result<Range> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    subordinate(&text, name, id).ok_or_else(|| {
        let who = name.map(str::to_string).unwrap_or_else(|| id.to_string());
        anyhow!(
            "strata runs as user {who} (uid {id}) in a user namespace and needs subordinate IDs for it, but {file} has none: add the line `{who}:100000:65536` to /etc/subuid and to /etc/subgid (as root; any free range of 65536 IDs will do)"
        )
    })
}

fn start_pause(uid: u32, gid: u32) -> Result<u32> {
    for tool in ["newuidmap", "newgidmap", "unshare"] {
        if which(tool).is_none() {
            let pkg = if tool == "unshare" { "util-linux" } else { "uidmap" };
            bail!("strata runs rootless through {tool}, which is not installed: apt-get install {pkg} (as root)");
        }
    }
    let name = user_name(uid);
    let subuid = range_of("/etc/subuid", name.as_deref(), uid)?;
    let subgid = range_of("/etc/subgid", name.as_deref(), uid)?;
    let mut child = Command::new("unshare")
        .args(["--user", "--mount", "--propagation", "private", "sleep", "infinity"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("start unshare")?;
    let pid = child.id();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let ours = ns_inode(Path::new("/proc/self"), "user");
    let t = Instant::now();
    // Ready once `unshare` made the namespaces, set the propagation and
    // became `sleep` (mapping IDs while it still works would race it).
    let ready = || {
        ns_inode(&proc, "user") != ours && std::fs::read(proc.join("cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
    };
    while !ready() {
        if let Some(st) = child.try_wait()? {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            bail!("could not create a user namespace ({st}): {}", err.trim());
        }
        if t.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            bail!("unshare did not create a user namespace within 5 s");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let map = |tool: &str, own: u32, r: Range| -> Result<()> {
        let o = Command::new(tool)
            .args([pid.to_string(), "0".into(), own.to_string(), "1".into()])
            .args(["1".to_string(), r.start.to_string(), r.count.to_string()])
            .output()
            .with_context(|| format!("run {tool}"))?;
        if !o.status.success() {
            bail!(
                "{tool} {pid} 0 {own} 1 1 {} {} failed: {}",
                r.start,
                r.count,
                String::from_utf8_lossy(&o.stderr).trim()
            );
        }
        Ok(())
    };
    if let Err(e) = map("newuidmap", uid, subuid).and_then(|()| map("newgidmap", gid, subgid)) {
        let _ = child.kill();
        return Err(e);
    }
    // The pause process lives on by itself (its own process group).
    std::mem::forget(child);
    Ok(pid)
}

/// Join the user and mount namespaces of `pid`. Joining a mount namespace
/// moves the working directory to its root: it is restored, so relative
/// paths on the command line mean what the user typed.
fn join(pid: u32) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    let cwd = rustix::fs::open(".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(std::io::Error::from)
        .context("open the working directory")?;
    for (ns, kind) in [("user", LinkNameSpaceType::User), ("mnt", LinkNameSpaceType::Mount)] {
        let path = format!("/proc/{pid}/ns/{ns}");
        let f = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        move_into_link_name_space(std::os::fd::AsFd::as_fd(&f), Some(kind))
            .map_err(std::io::Error::from)
            .with_context(|| format!("join the {ns} namespace of process {pid}"))?;
    }
    rustix::process::fchdir(&cwd)
        .map_err(std::io::Error::from)
        .context("return to the working directory in the user's namespace")?;
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        for (name, id, want) in [
            (Some("alice"), 1000, Some(Range { start: 100000, count: 65536 })),
            (Some("carol"), 1001, Some(Range { start: 200000, count: 1000 })),
            (Some("bob"), 1002, None),
            (None, 1003, None),
        ] {
            assert_eq!(subordinate(text, name, id), want, "{name:?} {id}");
        }
    }
}
