//! Is a directory a mount point, and does the mount answer? Read from
//! `/proc/self/mountinfo`; stale mounts (a FUSE daemon that died answers
//! `ENOTCONN`) are detached lazily.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::io::Errno;
use rustix::mount::UnmountFlags;

use crate::sys::Ctx;
use crate::Result;

/// Undo mountinfo's octal escapes (`\040` for a space, …).
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 3 < s.len() && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (s[i + 1] - b'0') as u32 * 64 + (s[i + 2] - b'0') as u32 * 8 + (s[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Filesystem types of the mounts whose mount point is exactly `path`
/// (absolute, canonical), bottom to top.
pub(crate) fn mounts_at(path: &Path) -> Result<Vec<String>> {
    let info = std::fs::read("/proc/self/mountinfo").ctx("read", "/proc/self/mountinfo")?;
    let want = path.as_os_str().as_bytes();
    let mut out = Vec::new();
    for line in info.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if fields.len() < 5 || unescape(fields[4]) != want {
            continue;
        }
        let fstype = fields.iter().position(|f| *f == b"-").and_then(|i| fields.get(i + 1)).copied().unwrap_or(b"");
        out.push(String::from_utf8_lossy(fstype).into_owned());
    }
    Ok(out)
}

/// Whether `path` is a mount point whose filesystem answers.
pub(crate) fn is_live(path: &Path) -> Result<bool> {
    if mounts_at(path)?.is_empty() {
        return Ok(false);
    }
    // statfs, not stat: FUSE answers stat of the root from its attribute
    // cache for a while after the daemon died; statfs always asks it.
    match rustix::fs::statfs(path) {
        Ok(_) => Ok(true),
        Err(Errno::NOTCONN) | Err(Errno::CONNABORTED) | Err(Errno::IO) => Ok(false),
        Err(e) => Err(crate::sys::io_err("stat mount", path, e)),
    }
}

/// Lazily detach every mount at `path`.
pub(crate) fn detach_all(path: &Path) -> Result<()> {
    for _ in 0..32 {
        if mounts_at(path)?.is_empty() {
            return Ok(());
        }
        match rustix::mount::unmount(path, UnmountFlags::DETACH) {
            Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
            Err(e) => return Err(crate::sys::io_err("detach mount", path, e)),
        }
    }
    Ok(())
}

/// Unmount the top mount at `path`: a plain unmount, lazily if busy.
pub(crate) fn unmount(path: &Path) -> Result<()> {
    match rustix::mount::unmount(path, UnmountFlags::empty()) {
        Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::BUSY) => rustix::mount::unmount(path, UnmountFlags::DETACH).ctx("detach mount", path),
        Err(e) => Err(crate::sys::io_err("unmount", path, e)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescapes() {
        assert_eq!(super::unescape(br"/a\040b\134c"), b"/a b\\c");
    }
}
