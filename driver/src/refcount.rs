//! Per-layer lock and mount reference count, shared by every process.
//!
//! Each layer directory holds a `lock` file (taken with `flock`, exclusive,
//! for the duration of a mount/unmount/remove decision) and a `mounts` file
//! holding the number of live references as decimal text. The count is only
//! read or written under the lock, and written atomically (temp + rename),
//! so concurrent processes never lose an update and a crash never leaves a
//! half-written count.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};

use crate::sys::{write_atomic, Ctx};
use crate::Result;

const LOCK: &str = "lock";
const COUNT: &str = "mounts";

/// An exclusive lock on one layer, released when dropped.
pub(crate) struct LayerLock {
    _fd: OwnedFd,
}

/// Take the layer's lock (blocking).
pub(crate) fn lock(layer_dir: &Path) -> Result<LayerLock> {
    let p = layer_dir.join(LOCK);
    let fd = rustix::fs::open(&p, OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC, Mode::from_raw_mode(0o600))
        .ctx("open lock", &p)?;
    rustix::fs::flock(&fd, FlockOperation::LockExclusive).ctx("lock", &p)?;
    Ok(LayerLock { _fd: fd })
}

/// The recorded reference count (0 when never written). Call under the lock.
pub(crate) fn read(layer_dir: &Path) -> Result<u64> {
    let p = layer_dir.join(COUNT);
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(s.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(crate::sys::io_err("read mount count", &p, e)),
    }
}

/// Record the reference count. Call under the lock. Zero is recorded by
/// removing the file, which needs no free space (unmounting and removing
/// work on a full disk).
pub(crate) fn write(layer_dir: &Path, n: u64) -> Result<()> {
    let p = layer_dir.join(COUNT);
    if n == 0 {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(crate::sys::io_err("remove mount count", &p, e)),
            _ => Ok(()),
        };
    }
    write_atomic(&p, format!("{n}\n").as_bytes())
}
