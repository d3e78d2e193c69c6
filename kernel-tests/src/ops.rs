//! Operations applied through a mount, and their observable results.
//!
//! Paths are relative to the mount root and never contain `..`; symlink
//! targets used by the generators never contain `..` and absolute ones point
//! below a directory that does not exist, so an operation that follows a
//! symlink can never reach outside the mount.

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, Gid, Mode, RenameFlags, Timespec, Timestamps, Uid, XattrFlags, CWD};
use rustix::io::Errno;

use crate::errno::{errno_name, errno_of};
use crate::path::{show_bytes, show_data, show_short, RelPath};

/// How a [`Op::Write`] opens and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteHow {
    /// `O_CREAT|O_TRUNC`, write at 0.
    Truncate,
    /// `O_CREAT|O_EXCL`, write at 0.
    CreateExcl,
    /// `O_APPEND` (no create).
    Append,
    /// No create, no truncate, `pwrite` at this offset.
    At(u64),
}

/// Flags of a [`Op::Rename`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenameHow {
    /// `rename(2)`.
    Plain,
    /// `RENAME_NOREPLACE`.
    NoReplace,
    /// `RENAME_EXCHANGE`.
    Exchange,
}

/// Flags of a [`Op::SetXattr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrHow {
    /// No flags.
    Any,
    /// `XATTR_CREATE`.
    Create,
    /// `XATTR_REPLACE`.
    Replace,
}

/// One file-system operation.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Open for writing (mode 0644 when created) and write `data`; result:
    /// `size=… nlink=…` from `fstat` on the open file.
    Write {
        /// Target (symlinks followed).
        path: RelPath,
        /// Open flags / offset.
        how: WriteHow,
        /// Bytes written.
        data: Vec<u8>,
    },
    /// `open(O_CREAT|O_WRONLY[|O_EXCL], mode)`; result: the created mode.
    Create {
        /// Target.
        path: RelPath,
        /// Mode passed to open (umask 022 applies).
        mode: u32,
        /// `O_EXCL`.
        excl: bool,
    },
    /// `mkdir`.
    Mkdir {
        /// Target.
        path: RelPath,
        /// Mode.
        mode: u32,
    },
    /// `mknod` of a fifo.
    Mkfifo {
        /// Target.
        path: RelPath,
        /// Mode.
        mode: u32,
    },
    /// `symlink(target, path)`.
    Symlink {
        /// Link content.
        target: Vec<u8>,
        /// Where.
        path: RelPath,
    },
    /// `link(from, to)` (not following symlinks).
    Link {
        /// Existing path.
        from: RelPath,
        /// New name.
        to: RelPath,
    },
    /// `unlink`.
    Unlink(RelPath),
    /// `rmdir`.
    Rmdir(RelPath),
    /// `renameat2`.
    Rename {
        /// Source.
        from: RelPath,
        /// Destination.
        to: RelPath,
        /// Flags.
        how: RenameHow,
    },
    /// `chmod` (follows symlinks).
    Chmod {
        /// Target.
        path: RelPath,
        /// New mode.
        mode: u32,
    },
    /// `lchown`.
    Chown {
        /// Target.
        path: RelPath,
        /// New owner, `None` = unchanged.
        uid: Option<u32>,
        /// New group, `None` = unchanged.
        gid: Option<u32>,
    },
    /// `truncate` (follows symlinks; done as open + ftruncate).
    Truncate {
        /// Target.
        path: RelPath,
        /// New length.
        len: u64,
    },
    /// `utimensat(AT_SYMLINK_NOFOLLOW)` with atime = mtime = this time;
    /// result: the mtime `lstat` reports afterwards.
    Utimens {
        /// Target.
        path: RelPath,
        /// Seconds (keep below `FIXED_TIME_LIMIT` so snapshots compare it).
        sec: i64,
        /// Nanoseconds.
        nsec: u32,
    },
    /// `lsetxattr`.
    SetXattr {
        /// Target.
        path: RelPath,
        /// Name (`user.*`).
        name: String,
        /// Value.
        value: Vec<u8>,
        /// Flags.
        how: XattrHow,
    },
    /// `lremovexattr`.
    RemoveXattr {
        /// Target.
        path: RelPath,
        /// Name.
        name: String,
    },
    /// Open read-only (follows symlinks, `O_NONBLOCK`) and read everything;
    /// result: the content.
    Read(RelPath),
    /// List a directory; result: `name:type` for every entry, sorted.
    ReadDir(RelPath),
    /// Open `O_RDWR` (no create), unlink the path, write `data` at 0 through
    /// the descriptor and read it back; result: `nlink=… content=…` from the
    /// descriptor.
    OpenUnlinkWrite {
        /// Target.
        path: RelPath,
        /// Bytes written.
        data: Vec<u8>,
    },
}

/// What an operation returned: `Ok(data)` (data = whatever the op observes,
/// see each [`Op`]) or the errno.
pub type OpResult = Result<Option<Vec<u8>>, Errno>;

/// One line for an [`OpResult`].
pub fn show_result(r: &OpResult) -> String {
    match r {
        Ok(None) => "Ok".to_string(),
        Ok(Some(d)) => format!("Ok({})", show_short(d)),
        Err(e) => format!("Err({})", errno_name(*e)),
    }
}

impl Op {
    /// `Write` with `O_TRUNC|O_CREAT`.
    pub fn write(path: impl Into<RelPath>, data: impl AsRef<[u8]>) -> Op {
        Op::Write { path: path.into(), how: WriteHow::Truncate, data: data.as_ref().to_vec() }
    }
    /// `Write` with `O_CREAT|O_EXCL`.
    pub fn write_excl(path: impl Into<RelPath>, data: impl AsRef<[u8]>) -> Op {
        Op::Write { path: path.into(), how: WriteHow::CreateExcl, data: data.as_ref().to_vec() }
    }
    /// `Write` with `O_APPEND`.
    pub fn append(path: impl Into<RelPath>, data: impl AsRef<[u8]>) -> Op {
        Op::Write { path: path.into(), how: WriteHow::Append, data: data.as_ref().to_vec() }
    }
    /// `Write` with `pwrite` at `off`.
    pub fn write_at(path: impl Into<RelPath>, off: u64, data: impl AsRef<[u8]>) -> Op {
        Op::Write { path: path.into(), how: WriteHow::At(off), data: data.as_ref().to_vec() }
    }
    /// `Create`.
    pub fn create(path: impl Into<RelPath>, mode: u32, excl: bool) -> Op {
        Op::Create { path: path.into(), mode, excl }
    }
    /// `Mkdir` mode 0755.
    pub fn mkdir(path: impl Into<RelPath>) -> Op {
        Op::Mkdir { path: path.into(), mode: 0o755 }
    }
    /// `Mkdir` with a mode.
    pub fn mkdir_mode(path: impl Into<RelPath>, mode: u32) -> Op {
        Op::Mkdir { path: path.into(), mode }
    }
    /// `Mkfifo` mode 0644.
    pub fn mkfifo(path: impl Into<RelPath>) -> Op {
        Op::Mkfifo { path: path.into(), mode: 0o644 }
    }
    /// `Symlink`.
    pub fn symlink(target: impl AsRef<[u8]>, path: impl Into<RelPath>) -> Op {
        Op::Symlink { target: target.as_ref().to_vec(), path: path.into() }
    }
    /// `Link`.
    pub fn link(from: impl Into<RelPath>, to: impl Into<RelPath>) -> Op {
        Op::Link { from: from.into(), to: to.into() }
    }
    /// `Unlink`.
    pub fn unlink(path: impl Into<RelPath>) -> Op {
        Op::Unlink(path.into())
    }
    /// `Rmdir`.
    pub fn rmdir(path: impl Into<RelPath>) -> Op {
        Op::Rmdir(path.into())
    }
    /// Plain `Rename`.
    pub fn rename(from: impl Into<RelPath>, to: impl Into<RelPath>) -> Op {
        Op::Rename { from: from.into(), to: to.into(), how: RenameHow::Plain }
    }
    /// `Rename` with `RENAME_NOREPLACE`.
    pub fn rename_noreplace(from: impl Into<RelPath>, to: impl Into<RelPath>) -> Op {
        Op::Rename { from: from.into(), to: to.into(), how: RenameHow::NoReplace }
    }
    /// `Rename` with `RENAME_EXCHANGE`.
    pub fn exchange(from: impl Into<RelPath>, to: impl Into<RelPath>) -> Op {
        Op::Rename { from: from.into(), to: to.into(), how: RenameHow::Exchange }
    }
    /// `Chmod`.
    pub fn chmod(path: impl Into<RelPath>, mode: u32) -> Op {
        Op::Chmod { path: path.into(), mode }
    }
    /// `Chown`.
    pub fn chown(path: impl Into<RelPath>, uid: Option<u32>, gid: Option<u32>) -> Op {
        Op::Chown { path: path.into(), uid, gid }
    }
    /// `Truncate`.
    pub fn truncate(path: impl Into<RelPath>, len: u64) -> Op {
        Op::Truncate { path: path.into(), len }
    }
    /// `Utimens`.
    pub fn utimens(path: impl Into<RelPath>, sec: i64, nsec: u32) -> Op {
        Op::Utimens { path: path.into(), sec, nsec }
    }
    /// `SetXattr` with no flags.
    pub fn setxattr(path: impl Into<RelPath>, name: &str, value: impl AsRef<[u8]>) -> Op {
        Op::SetXattr { path: path.into(), name: name.to_string(), value: value.as_ref().to_vec(), how: XattrHow::Any }
    }
    /// `SetXattr` with flags.
    pub fn setxattr_with(path: impl Into<RelPath>, name: &str, value: impl AsRef<[u8]>, how: XattrHow) -> Op {
        Op::SetXattr { path: path.into(), name: name.to_string(), value: value.as_ref().to_vec(), how }
    }
    /// `RemoveXattr`.
    pub fn removexattr(path: impl Into<RelPath>, name: &str) -> Op {
        Op::RemoveXattr { path: path.into(), name: name.to_string() }
    }
    /// `Read`.
    pub fn read(path: impl Into<RelPath>) -> Op {
        Op::Read(path.into())
    }
    /// `ReadDir`.
    pub fn readdir(path: impl Into<RelPath>) -> Op {
        Op::ReadDir(path.into())
    }
    /// `OpenUnlinkWrite`.
    pub fn open_unlink_write(path: impl Into<RelPath>, data: impl AsRef<[u8]>) -> Op {
        Op::OpenUnlinkWrite { path: path.into(), data: data.as_ref().to_vec() }
    }

    /// The operation's kind, e.g. `rename_exchange`, `write_at`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Write { how, .. } => match how {
                WriteHow::Truncate => "write",
                WriteHow::CreateExcl => "write_excl",
                WriteHow::Append => "append",
                WriteHow::At(_) => "write_at",
            },
            Op::Create { .. } => "create",
            Op::Mkdir { .. } => "mkdir",
            Op::Mkfifo { .. } => "mkfifo",
            Op::Symlink { .. } => "symlink",
            Op::Link { .. } => "link",
            Op::Unlink(_) => "unlink",
            Op::Rmdir(_) => "rmdir",
            Op::Rename { how, .. } => match how {
                RenameHow::Plain => "rename",
                RenameHow::NoReplace => "rename_noreplace",
                RenameHow::Exchange => "exchange",
            },
            Op::Chmod { .. } => "chmod",
            Op::Chown { .. } => "chown",
            Op::Truncate { .. } => "truncate",
            Op::Utimens { .. } => "utimens",
            Op::SetXattr { .. } => "setxattr",
            Op::RemoveXattr { .. } => "removexattr",
            Op::Read(_) => "read",
            Op::ReadDir(_) => "readdir",
            Op::OpenUnlinkWrite { .. } => "open_unlink_write",
        }
    }

    /// True if the operation can change the file system.
    pub fn mutates(&self) -> bool {
        !matches!(self, Op::Read(_) | Op::ReadDir(_))
    }

    /// Run against the mount at `root`.
    pub fn apply(&self, root: &Path) -> OpResult {
        let p = |r: &RelPath| r.under(root);
        match self {
            Op::Write { path, how, data } => {
                let mut o = fs::OpenOptions::new();
                o.custom_flags(libc::O_NONBLOCK);
                match how {
                    WriteHow::Truncate => o.write(true).create(true).truncate(true),
                    WriteHow::CreateExcl => o.write(true).create_new(true),
                    WriteHow::Append => o.append(true),
                    WriteHow::At(_) => o.write(true),
                };
                o.mode(0o644);
                let mut f = o.open(p(path)).map_err(|e| errno_of(&e))?;
                match how {
                    WriteHow::At(off) => f.write_all_at(data, *off),
                    _ => f.write_all(data),
                }
                .map_err(|e| errno_of(&e))?;
                let md = f.metadata().map_err(|e| errno_of(&e))?;
                Ok(Some(format!("size={} nlink={}", md.size(), md.nlink()).into_bytes()))
            }
            Op::Create { path, mode, excl } => {
                let mut o = fs::OpenOptions::new();
                o.write(true).custom_flags(libc::O_NONBLOCK).mode(*mode);
                if *excl {
                    o.create_new(true);
                } else {
                    o.create(true);
                }
                let f = o.open(p(path)).map_err(|e| errno_of(&e))?;
                let md = f.metadata().map_err(|e| errno_of(&e))?;
                Ok(Some(format!("mode={:o}", md.mode()).into_bytes()))
            }
            Op::Mkdir { path, mode } => {
                rustix::fs::mkdir(p(path), Mode::from_raw_mode(*mode))?;
                Ok(None)
            }
            Op::Mkfifo { path, mode } => {
                rustix::fs::mknodat(CWD, p(path), rustix::fs::FileType::Fifo, Mode::from_raw_mode(*mode), 0)?;
                Ok(None)
            }
            Op::Symlink { target, path } => {
                rustix::fs::symlink(target.as_slice(), p(path))?;
                Ok(None)
            }
            Op::Link { from, to } => {
                rustix::fs::linkat(CWD, p(from), CWD, p(to), AtFlags::empty())?;
                Ok(None)
            }
            Op::Unlink(path) => {
                rustix::fs::unlink(p(path))?;
                Ok(None)
            }
            Op::Rmdir(path) => {
                rustix::fs::rmdir(p(path))?;
                Ok(None)
            }
            Op::Rename { from, to, how } => {
                let flags = match how {
                    RenameHow::Plain => RenameFlags::empty(),
                    RenameHow::NoReplace => RenameFlags::NOREPLACE,
                    RenameHow::Exchange => RenameFlags::EXCHANGE,
                };
                rustix::fs::renameat_with(CWD, p(from), CWD, p(to), flags)?;
                Ok(None)
            }
            Op::Chmod { path, mode } => {
                rustix::fs::chmod(p(path), Mode::from_raw_mode(*mode))?;
                Ok(None)
            }
            Op::Chown { path, uid, gid } => {
                rustix::fs::chownat(
                    CWD,
                    p(path),
                    uid.map(Uid::from_raw),
                    gid.map(Gid::from_raw),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
                Ok(None)
            }
            Op::Truncate { path, len } => {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p(path))
                    .map_err(|e| errno_of(&e))?;
                f.set_len(*len).map_err(|e| errno_of(&e))?;
                Ok(None)
            }
            Op::Utimens { path, sec, nsec } => {
                let t = Timespec { tv_sec: *sec, tv_nsec: *nsec as _ };
                rustix::fs::utimensat(
                    CWD,
                    p(path),
                    &Timestamps { last_access: t, last_modification: t },
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
                let md = fs::symlink_metadata(p(path)).map_err(|e| errno_of(&e))?;
                Ok(Some(format!("mtime={}.{:09}", md.mtime(), md.mtime_nsec()).into_bytes()))
            }
            Op::SetXattr { path, name, value, how } => {
                let flags = match how {
                    XattrHow::Any => XattrFlags::empty(),
                    XattrHow::Create => XattrFlags::CREATE,
                    XattrHow::Replace => XattrFlags::REPLACE,
                };
                rustix::fs::lsetxattr(p(path), name.as_str(), value, flags)?;
                Ok(None)
            }
            Op::RemoveXattr { path, name } => {
                rustix::fs::lremovexattr(p(path), name.as_str())?;
                Ok(None)
            }
            Op::Read(path) => {
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p(path))
                    .map_err(|e| errno_of(&e))?;
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).map_err(|e| errno_of(&e))?;
                Ok(Some(buf))
            }
            Op::ReadDir(path) => {
                let mut names = Vec::new();
                for ent in fs::read_dir(p(path)).map_err(|e| errno_of(&e))? {
                    let ent = ent.map_err(|e| errno_of(&e))?;
                    // The kernel lists whiteouts of a directory that lives in
                    // one lower layer only, though lstat says ENOENT (see
                    // snapshot.rs); such ghosts are not compared.
                    if fs::symlink_metadata(ent.path()).is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT)) {
                        continue;
                    }
                    let t = match ent.file_type() {
                        Ok(t) if t.is_dir() => "d",
                        Ok(t) if t.is_file() => "f",
                        Ok(t) if t.is_symlink() => "l",
                        Ok(t) if t.is_fifo() => "p",
                        Ok(t) if t.is_char_device() => "c",
                        Ok(_) => "?",
                        Err(_) => "ERR",
                    };
                    let mut n = ent.file_name().into_encoded_bytes();
                    n.push(b':');
                    n.extend_from_slice(t.as_bytes());
                    names.push(n);
                }
                names.sort();
                Ok(Some(names.join(&b' ')))
            }
            Op::OpenUnlinkWrite { path, data } => {
                let f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(p(path))
                    .map_err(|e| errno_of(&e))?;
                rustix::fs::unlink(p(path))?;
                f.write_all_at(data, 0).map_err(|e| errno_of(&e))?;
                let md = f.metadata().map_err(|e| errno_of(&e))?;
                let mut buf = vec![0u8; md.size() as usize];
                let n = f.read_at(&mut buf, 0).map_err(|e| errno_of(&e))?;
                buf.truncate(n);
                let mut out = format!("nlink={} content=", md.nlink()).into_bytes();
                out.extend_from_slice(&buf);
                Ok(Some(out))
            }
        }
    }
}

fn opt(v: Option<u32>) -> String {
    match v {
        Some(x) => format!("Some({x})"),
        None => "None".into(),
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Write { path, how, data } => match how {
                WriteHow::Truncate => write!(f, "Op::write({path:?}, {})", show_data(data)),
                WriteHow::CreateExcl => {
                    write!(f, "Op::write_excl({path:?}, {})", show_data(data))
                }
                WriteHow::Append => write!(f, "Op::append({path:?}, {})", show_data(data)),
                WriteHow::At(o) => write!(f, "Op::write_at({path:?}, {o}, {})", show_data(data)),
            },
            Op::Create { path, mode, excl } => {
                write!(f, "Op::create({path:?}, 0o{mode:o}, {excl})")
            }
            Op::Mkdir { path, mode } if *mode == 0o755 => write!(f, "Op::mkdir({path:?})"),
            Op::Mkdir { path, mode } => write!(f, "Op::mkdir_mode({path:?}, 0o{mode:o})"),
            Op::Mkfifo { path, mode } if *mode == 0o644 => write!(f, "Op::mkfifo({path:?})"),
            Op::Mkfifo { path, mode } => {
                write!(f, "Op::Mkfifo {{ path: {path:?}.into(), mode: 0o{mode:o} }}")
            }
            Op::Symlink { target, path } => {
                write!(f, "Op::symlink({}, {path:?})", show_bytes(target))
            }
            Op::Link { from, to } => write!(f, "Op::link({from:?}, {to:?})"),
            Op::Unlink(p) => write!(f, "Op::unlink({p:?})"),
            Op::Rmdir(p) => write!(f, "Op::rmdir({p:?})"),
            Op::Rename { from, to, how } => {
                let n = match how {
                    RenameHow::Plain => "rename",
                    RenameHow::NoReplace => "rename_noreplace",
                    RenameHow::Exchange => "exchange",
                };
                write!(f, "Op::{n}({from:?}, {to:?})")
            }
            Op::Chmod { path, mode } => write!(f, "Op::chmod({path:?}, 0o{mode:o})"),
            Op::Chown { path, uid, gid } => {
                write!(f, "Op::chown({path:?}, {}, {})", opt(*uid), opt(*gid))
            }
            Op::Truncate { path, len } => write!(f, "Op::truncate({path:?}, {len})"),
            Op::Utimens { path, sec, nsec } => write!(f, "Op::utimens({path:?}, {sec}, {nsec})"),
            Op::SetXattr { path, name, value, how } => match how {
                XattrHow::Any => {
                    write!(f, "Op::setxattr({path:?}, {name:?}, {})", show_data(value))
                }
                XattrHow::Create => {
                    write!(f, "Op::setxattr_with({path:?}, {name:?}, {}, XattrHow::Create)", show_data(value))
                }
                XattrHow::Replace => {
                    write!(f, "Op::setxattr_with({path:?}, {name:?}, {}, XattrHow::Replace)", show_data(value))
                }
            },
            Op::RemoveXattr { path, name } => write!(f, "Op::removexattr({path:?}, {name:?})"),
            Op::Read(p) => write!(f, "Op::read({p:?})"),
            Op::ReadDir(p) => write!(f, "Op::readdir({p:?})"),
            Op::OpenUnlinkWrite { path, data } => {
                write!(f, "Op::open_unlink_write({path:?}, {})", show_data(data))
            }
        }
    }
}
