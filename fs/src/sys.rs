//! The syscalls rustix offers no safe wrapper for. This module is the only
//! place in strata that uses `unsafe`; each use states why it is sound.
#![allow(unsafe_code)]

use std::io;

use rustix::process::Pid;

/// Which side of a `fork` the caller is on.
#[derive(Debug)]
pub enum Forked {
    /// The original process; the child's pid.
    Parent(Pid),
    /// The new process.
    Child,
}

/// Fork the calling process, which must have exactly one thread.
///
/// A forked child holds only the calling thread; a lock that another thread
/// held at the fork would stay locked in the child forever. So the call is
/// refused (an error, no fork) unless `/proc/self/task` lists one thread.
/// Descriptors are inherited as `fork(2)` says; the caller decides which
/// side closes which.
pub fn fork_single_threaded() -> io::Result<Forked> {
    let threads = std::fs::read_dir("/proc/self/task")?.count();
    if threads != 1 {
        return Err(io::Error::other(format!("cannot fork a process with {threads} threads")));
    }
    // SAFETY: the process has a single thread (checked just above; nothing in
    // this call spawns one), so the child's copy of memory holds no lock or
    // allocator state owned by a thread that does not exist in the child.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid).expect("fork returned a positive pid"))),
    }
}
