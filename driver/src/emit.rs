//! Writing files of a layer directory as tar entries (for `diff` and
//! `export`): metadata from `lstat`, public xattrs, content streamed from the
//! file, hard links within the written set as link entries.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FileType, Stat};

use crate::sys::{ftype, io_err, public_xattrs, Ctx};
use crate::tarfmt::{mode_field, Kind, Meta, TarWriter};
use crate::Result;

/// A tar being written from files.
pub(crate) struct Emitter<'a> {
    pub tw: TarWriter<'a>,
    /// (dev, ino) of multiply-linked files already written → their name.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<'a> Emitter<'a> {
    pub(crate) fn new(out: &'a mut dyn Write) -> Emitter<'a> {
        Emitter { tw: TarWriter::new(out), links: HashMap::new() }
    }

    /// Write the object at `abs` (described by `st`) as entry `name`.
    /// Sockets are skipped, as Docker does.
    pub(crate) fn file(&mut self, name: &[u8], abs: &Path, st: &Stat) -> Result<()> {
        let ft = ftype(st);
        let mut kind = match ft {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => {
                let t = std::fs::read_link(abs).ctx("read link", abs)?;
                Kind::Symlink(std::os::unix::ffi::OsStringExt::into_vec(t.into_os_string()))
            }
            FileType::CharacterDevice => Kind::Char(rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)),
            FileType::BlockDevice => Kind::Block(rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)),
            FileType::Fifo => Kind::Fifo,
            _ => return Ok(()),
        };
        if ft != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            match self.links.get(&key) {
                Some(first) => kind = Kind::Hardlink(first.clone()),
                None => {
                    self.links.insert(key, name.to_vec());
                }
            }
        }
        let size = if kind == Kind::File { st.st_size as u64 } else { 0 };
        let meta = Meta {
            name: name.to_vec(),
            kind: kind.clone(),
            mode: mode_field(st.st_mode),
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            mtime: st.st_mtime,
            size,
            xattrs: public_xattrs(abs)?,
        };
        self.tw.header(&meta)?;
        if kind == Kind::File {
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(abs)
                .map_err(|e| io_err("open", abs, e))?;
            self.tw.content(&mut f, size, abs)?;
        }
        Ok(())
    }

    /// A whiteout `.wh.NAME` for `path`, Docker style: an empty regular file,
    /// mode 0600, owner and time of the whiteout object when there is one.
    pub(crate) fn whiteout(&mut self, path: &[u8], st: Option<&Stat>) -> Result<()> {
        let (dir, name) = crate::sys::split(path);
        let mut wh = crate::apply::WH_PREFIX.to_vec();
        wh.extend_from_slice(name);
        let meta = Meta {
            name: crate::sys::join(dir, &wh),
            kind: Kind::File,
            mode: 0o600,
            uid: st.map_or(0, |s| s.st_uid as u64),
            gid: st.map_or(0, |s| s.st_gid as u64),
            mtime: st.map_or(0, |s| s.st_mtime),
            size: 0,
            xattrs: Vec::new(),
        };
        self.tw.header(&meta)
    }

    /// The opaque marker of directory `dir`, Docker style: an empty regular
    /// file with the directory's permission bits and owner, mtime 0.
    pub(crate) fn opaque(&mut self, dir: &[u8], dir_st: &Stat) -> Result<()> {
        let meta = Meta {
            name: crate::sys::join(dir, crate::apply::WH_OPAQUE),
            kind: Kind::File,
            mode: dir_st.st_mode & 0o777,
            uid: dir_st.st_uid as u64,
            gid: dir_st.st_gid as u64,
            mtime: 0,
            size: 0,
            xattrs: Vec::new(),
        };
        self.tw.header(&meta)
    }

    pub(crate) fn finish(mut self) -> Result<u64> {
        self.tw.finish()
    }
}
