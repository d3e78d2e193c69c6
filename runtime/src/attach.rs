//! The attach protocol between a container's monitor and the `strata`
//! commands attached to it, over the unix socket `attach.sock` in the
//! container directory. Every message is a frame: kind (1 byte), payload
//! length (u32, big endian), payload.
//!
//! The socket is reached through `/proc/self/fd/N/attach.sock` with `N` an
//! open descriptor of the container directory, so the path stays under the
//! 108-byte limit of socket addresses whatever the store's path.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use crate::error::{IoContext, Result};

/// Monitor → client: bytes the container wrote to stdout (or the tty).
pub const STDOUT: u8 = 1;
/// Monitor → client: bytes written to stderr.
pub const STDERR: u8 = 2;
/// Monitor → client: the container exited and was cleaned up; payload the
/// exit status (i32, big endian).
pub const EXIT: u8 = 3;
/// Monitor → client: the start failed; payload the exit status Docker
/// gives (1 byte) then the message.
pub const FAILED: u8 = 4;
/// Monitor → client: the container's process runs.
pub const STARTED: u8 = 5;
/// Client → monitor: bytes for the container's stdin.
pub const STDIN: u8 = 10;
/// Client → monitor: end of stdin.
pub const STDIN_EOF: u8 = 11;
/// Client → monitor: the terminal's size (rows u16, cols u16).
pub const RESIZE: u8 = 12;

/// The socket's file name in the container directory.
pub const SOCKET: &str = "attach.sock";

/// Write one frame.
pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(5 + payload.len());
    b.push(kind);
    b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    b.extend_from_slice(payload);
    w.write_all(&b)
}

/// Read one frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..])?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > 16 << 20 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "attach frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

fn dir_fd(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).at("open", dir)
}

/// Listen on the attach socket of container directory `dir` (replacing a
/// stale one).
pub fn listen(dir: &Path) -> Result<UnixListener> {
    let fd = dir_fd(dir)?;
    let p = format!("/proc/self/fd/{}/{SOCKET}", fd.as_raw_fd());
    let _ = std::fs::remove_file(&p);
    UnixListener::bind(&p).at("listen on", &dir.join(SOCKET))
}

/// Connect to the attach socket of container directory `dir`.
pub fn connect(dir: &Path) -> std::io::Result<UnixStream> {
    let fd = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    UnixStream::connect(format!("/proc/self/fd/{}/{SOCKET}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut b = Vec::new();
        write_frame(&mut b, STDOUT, b"hello").unwrap();
        write_frame(&mut b, EXIT, &3i32.to_be_bytes()).unwrap();
        write_frame(&mut b, STDIN_EOF, b"").unwrap();
        let mut r = &b[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some((STDOUT, b"hello".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((EXIT, vec![0, 0, 0, 3])));
        assert_eq!(read_frame(&mut r).unwrap(), Some((STDIN_EOF, vec![])));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        // A truncated frame is an error, not a clean end.
        let mut t = &b[..3];
        assert!(read_frame(&mut t).is_err());
    }

    #[test]
    fn socket_in_a_deep_directory() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("x".repeat(100)).join("y".repeat(64));
        std::fs::create_dir_all(&deep).unwrap();
        let l = listen(&deep).unwrap();
        let mut c = connect(&deep).unwrap();
        let (mut s, _) = l.accept().unwrap();
        write_frame(&mut c, STDIN, b"x").unwrap();
        assert_eq!(read_frame(&mut s).unwrap(), Some((STDIN, b"x".to_vec())));
    }
}
