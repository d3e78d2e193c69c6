//! `commit -p` for a mounted container: strata runs no processes, so it
//! pauses the ones that can change the container's files — every process
//! holding a descriptor open for writing, or a shared writable mapping,
//! under the container's mount — with SIGSTOP, and resumes them (SIGCONT)
//! when the commit is done. A stopped process has no write in flight, so
//! the committed layer holds each write whole or not at all.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// Processes stopped by [`pause_writers`]; dropping this resumes them.
pub struct Paused {
    pids: Vec<Pid>,
}

impl Drop for Paused {
    fn drop(&mut self) {
        for p in &self.pids {
            let _ = kill_process(*p, Signal::CONT);
        }
    }
}

impl Paused {
    /// How many processes are stopped.
    pub fn count(&self) -> usize {
        self.pids.len()
    }
}

/// Whether `pid` may write below `root`: an fd open for writing there, or a
/// shared writable mapping of a file there.
fn writes_under(pid: &str, root: &Path) -> bool {
    let proc_dir = Path::new("/proc").join(pid);
    if let Ok(fds) = fs::read_dir(proc_dir.join("fd")) {
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else { continue };
            if !target.starts_with(root) {
                continue;
            }
            let info = fs::read_to_string(proc_dir.join("fdinfo").join(fd.file_name())).unwrap_or_default();
            let flags = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .unwrap_or(0);
            // O_WRONLY = 1, O_RDWR = 2.
            if flags & 3 != 0 {
                return true;
            }
        }
    }
    if let Ok(maps) = fs::read_to_string(proc_dir.join("maps")) {
        for l in maps.lines() {
            let mut it = l.split_whitespace();
            let perms = it.nth(1).unwrap_or("");
            let path = it.nth(3).unwrap_or("");
            if perms.starts_with("rw") && perms.ends_with('s') && Path::new(path).starts_with(root) {
                return true;
            }
        }
    }
    false
}

/// Stop every process (other than this one) that may write below `root`,
/// and wait until each is stopped.
pub fn pause_writers(root: &Path) -> Paused {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name == me || !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if writes_under(&name, root) {
                if let Some(pid) = name.parse().ok().and_then(Pid::from_raw) {
                    if kill_process(pid, Signal::STOP).is_ok() {
                        pids.push(pid);
                    }
                }
            }
        }
    }
    // SIGSTOP takes effect when the process next leaves the kernel: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    for p in &pids {
        let stat = Path::new("/proc").join(p.as_raw_nonzero().to_string()).join("stat");
        while Instant::now() < deadline {
            let state = fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('?')));
            match state {
                Some('T') | Some('t') | None => break,
                _ => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }
    Paused { pids }
}
