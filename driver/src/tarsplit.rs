//! Tar-split: the bytes of a layer tar minus its file contents, so the exact
//! tar can be rebuilt later from the split and the layer's files.
//!
//! # Format (version 1)
//!
//! A byte stream: the 8-byte magic `STRSPLT1`, then records, each starting
//! with a one-byte tag. Integers are little-endian.
//!
//! | tag | body | meaning |
//! | --- | --- | --- |
//! | `0x01` RAW | `u32 len`, `len` bytes | bytes copied as they are: header blocks (ustar, PAX, GNU long names), padding, the end-of-archive blocks and anything after them, and the content of entries that have no file in the layer (e.g. a whiteout with data) |
//! | `0x02` FILE | `u64 size`, `u32 path_len`, path bytes | `size` bytes of content read from the file at `path` (relative to the layer's content directory, no leading `/`) |
//! | `0x03` END | `u64 total` | end of the split; `total` is the tar's length in bytes |
//!
//! Raw runs are coalesced up to 64 KiB per record.
//!
//! # Limits
//!
//! A tar that lists the same path twice with different contents cannot be
//! rebuilt (only the last content is on disk). Assembly detects a size
//! mismatch ([`Error::Malformed`]); a same-size different content is not
//! detected here: the caller must verify the rebuilt tar's digest against the
//! diff-id it recorded.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::sys::{at, io_err, shown};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"STRSPLT1";
const TAG_RAW: u8 = 1;
const TAG_FILE: u8 = 2;
const TAG_END: u8 = 3;
const RAW_CHUNK: usize = 64 * 1024;

fn split_io(e: std::io::Error) -> Error {
    io_err("write tar-split", "split", e)
}

/// Writes a tar-split while a tar is being applied.
pub(crate) struct SplitWriter<'a> {
    out: &'a mut dyn Write,
    raw: Vec<u8>,
    total: u64,
}

impl<'a> SplitWriter<'a> {
    pub(crate) fn new(out: &'a mut dyn Write) -> Result<SplitWriter<'a>> {
        out.write_all(MAGIC).map_err(split_io)?;
        Ok(SplitWriter { out, raw: Vec::with_capacity(RAW_CHUNK), total: 0 })
    }

    /// Record bytes to reproduce as they are.
    pub(crate) fn raw(&mut self, mut b: &[u8]) -> Result<()> {
        self.total += b.len() as u64;
        while !b.is_empty() {
            let n = (RAW_CHUNK - self.raw.len()).min(b.len());
            self.raw.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.raw.len() == RAW_CHUNK {
                self.flush_raw()?;
            }
        }
        Ok(())
    }

    fn flush_raw(&mut self) -> Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        self.out.write_all(&[TAG_RAW]).map_err(split_io)?;
        self.out.write_all(&(self.raw.len() as u32).to_le_bytes()).map_err(split_io)?;
        self.out.write_all(&self.raw).map_err(split_io)?;
        self.raw.clear();
        Ok(())
    }

    /// Record `size` bytes of content that live in the layer at `path`.
    pub(crate) fn file(&mut self, path: &[u8], size: u64) -> Result<()> {
        self.flush_raw()?;
        self.total += size;
        self.out.write_all(&[TAG_FILE]).map_err(split_io)?;
        self.out.write_all(&size.to_le_bytes()).map_err(split_io)?;
        self.out.write_all(&(path.len() as u32).to_le_bytes()).map_err(split_io)?;
        self.out.write_all(path).map_err(split_io)
    }

    /// End the split.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.flush_raw()?;
        self.out.write_all(&[TAG_END]).map_err(split_io)?;
        self.out.write_all(&self.total.to_le_bytes()).map_err(split_io)?;
        self.out.flush().map_err(split_io)?;
        Ok(self.total)
    }
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Malformed("tar-split is truncated".into()),
        _ => io_err("read tar-split", "split", e),
    })
}

fn u32le(r: &mut dyn Read) -> Result<u32> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn u64le(r: &mut dyn Read) -> Result<u64> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Rebuild the tar described by `split`, reading file contents from the
/// directory open at `root` (paths resolved inside it, as in a chroot, never
/// following a final symlink). Returns the bytes written.
pub(crate) fn assemble(root: impl AsFd, split: &mut dyn Read, out: &mut dyn Write) -> Result<u64> {
    let mut magic = [0u8; 8];
    read_exact(split, &mut magic)?;
    if &magic != MAGIC {
        return Err(Error::Malformed("not a strata tar-split (bad magic)".into()));
    }
    let wr = |e: std::io::Error| io_err("write tar", "output", e);
    let mut written: u64 = 0;
    let mut buf = vec![0u8; RAW_CHUNK];
    loop {
        let mut tag = [0u8; 1];
        read_exact(split, &mut tag)?;
        match tag[0] {
            TAG_RAW => {
                let n = u32le(split)? as usize;
                if n > RAW_CHUNK {
                    return Err(Error::Malformed("tar-split raw record too large".into()));
                }
                read_exact(split, &mut buf[..n])?;
                out.write_all(&buf[..n]).map_err(wr)?;
                written += n as u64;
            }
            TAG_FILE => {
                let size = u64le(split)?;
                let plen = u32le(split)? as usize;
                if plen > crate::tarfmt::MAX_PATH {
                    return Err(Error::Malformed("tar-split path too long".into()));
                }
                let mut path = vec![0u8; plen];
                read_exact(split, &mut path)?;
                let fd = rustix::fs::openat2(
                    &root,
                    at(&path),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV,
                )
                .map_err(|e| {
                    Error::Malformed(format!(
                        "layer file {} of the tar-split cannot be opened: {e}",
                        shown(crate::sys::os(&path))
                    ))
                })?;
                let st = rustix::fs::fstat(&fd).map_err(|e| io_err("stat", crate::sys::os(&path), e))?;
                if st.st_size as u64 != size {
                    return Err(Error::Malformed(format!(
                        "layer file {} is {} bytes, the tar-split says {size} (the layer changed, or the tar listed it twice)",
                        shown(crate::sys::os(&path)),
                        st.st_size
                    )));
                }
                let mut f = std::fs::File::from(fd);
                let mut left = size;
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let n = f.read(&mut buf[..want]).map_err(|e| io_err("read", crate::sys::os(&path), e))?;
                    if n == 0 {
                        return Err(Error::Malformed(format!("layer file {} shrank", shown(crate::sys::os(&path)))));
                    }
                    out.write_all(&buf[..n]).map_err(wr)?;
                    left -= n as u64;
                }
                written += size;
            }
            TAG_END => {
                let total = u64le(split)?;
                if total != written {
                    return Err(Error::Malformed(format!("tar-split says {total} bytes, rebuilt {written}")));
                }
                out.flush().map_err(wr)?;
                return Ok(written);
            }
            t => return Err(Error::Malformed(format!("bad tar-split record tag {t}"))),
        }
    }
}
