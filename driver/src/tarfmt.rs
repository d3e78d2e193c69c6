//! The tar format: parsing header blocks (ustar, GNU, PAX) and writing the
//! deterministic headers of [`diff`](crate::Driver::diff) and
//! [`export`](crate::Driver::export).
//!
//! Written headers follow what Docker (Go's `archive/tar` in PAX mode)
//! produces: a ustar header whenever the entry fits (names split into
//! prefix/name when possible, octal numbers zero-padded and NUL-terminated,
//! the file type bits in the mode field), preceded by a PAX extended header
//! (`dir/PaxHeaders.0/name`) for long or non-ASCII names, big numbers and
//! xattrs (`SCHILY.xattr.NAME`). Directory names end in `/`; no name has a
//! leading `./` or `/`. User and group names are left empty (they would
//! depend on the host's `/etc/passwd`); atime/ctime are never written.

use std::io::Write;

use crate::{Error, Result};

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;
/// Longest path accepted in an entry (name or link target).
pub(crate) const MAX_PATH: usize = 4096;
/// Largest PAX extended header (or GNU long name) accepted.
pub(crate) const MAX_EXT_HEADER: u64 = 1 << 20;
/// Most xattrs accepted on one entry.
pub(crate) const MAX_XATTRS: usize = 256;
/// Longest xattr name accepted.
pub(crate) const MAX_XATTR_NAME: usize = 255;
/// Largest xattr value accepted (the kernel's limit).
pub(crate) const MAX_XATTR_VALUE: usize = 65536;

fn malformed(s: impl Into<String>) -> Error {
    Error::Malformed(s.into())
}

/// Padding needed after `size` bytes of content.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// A NUL-terminated field (the whole field when no NUL).
pub(crate) fn field_str(f: &[u8]) -> &[u8] {
    match f.iter().position(|&b| b == 0) {
        Some(i) => &f[..i],
        None => f,
    }
}

/// A numeric header field: octal (space/NUL padded) or GNU base-256.
pub(crate) fn parse_num(f: &[u8], what: &str) -> Result<i64> {
    if f.first().is_some_and(|&b| b & 0x80 != 0) {
        // Base-256: big-endian two's complement in the remaining bits.
        let negative = f[0] & 0x40 != 0;
        let mut v: i128 = if negative { -1 } else { 0 };
        for (i, &b) in f.iter().enumerate() {
            let b = if i == 0 { b & 0x7f | if negative { 0x80 } else { 0 } } else { b };
            v = (v << 8) | b as i128;
            if v > i64::MAX as i128 || v < i64::MIN as i128 {
                return Err(malformed(format!("{what} field out of range")));
            }
        }
        return Ok(v as i64);
    }
    let s = f.iter().skip_while(|&&b| b == b' ' || b == 0);
    let mut v: i64 = 0;
    let mut seen_end = false;
    for &b in s {
        match b {
            b'0'..=b'7' if !seen_end => {
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add((b - b'0') as i64))
                    .ok_or_else(|| malformed(format!("{what} field out of range")))?;
            }
            b' ' | 0 => seen_end = true,
            _ => return Err(malformed(format!("invalid {what} field {:?}", String::from_utf8_lossy(f)))),
        }
    }
    Ok(v)
}

/// Check a header block's checksum (unsigned, or the historic signed sum).
pub(crate) fn checksum_ok(h: &[u8; BLOCK]) -> Result<bool> {
    let want = parse_num(&h[148..156], "checksum")?;
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += b as i64;
        signed += b as i8 as i64;
    }
    Ok(want == unsigned || want == signed)
}

/// PAX records of an extended header, in order.
pub(crate) fn parse_pax(data: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break; // Some writers pad the data with NULs.
        }
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(|| malformed("PAX record without length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("PAX record with a bad length"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(malformed("PAX record length does not match its data"));
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec.iter().position(|&b| b == b'=').ok_or_else(|| malformed("PAX record without '='"))?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        rest = &rest[len..];
    }
    Ok(out)
}

/// A decimal PAX number.
pub(crate) fn pax_u64(v: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(format!("bad PAX {what}")))
}

/// A PAX time (`sec[.frac]`, possibly negative) as (seconds, nanoseconds).
pub(crate) fn pax_time(v: &[u8]) -> Result<(i64, u32)> {
    let s = std::str::from_utf8(v).map_err(|_| malformed("bad PAX time"))?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("bad PAX time"));
    }
    let sec: i64 = int.parse().map_err(|_| malformed("PAX time out of range"))?;
    let mut ns: u32 = 0;
    for (i, b) in frac.bytes().take(9).enumerate() {
        ns += (b - b'0') as u32 * 10u32.pow(8 - i as u32);
    }
    Ok(if !neg {
        (sec, ns)
    } else if ns == 0 {
        (-sec, 0)
    } else {
        (-sec - 1, 1_000_000_000 - ns)
    })
}

/// What a written entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One entry to write.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    /// Path relative to the root, without leading or trailing `/`.
    pub name: Vec<u8>,
    pub kind: Kind,
    /// The tar mode field as written (permission bits, and the file type
    /// bits for entries made from a stat, see [`mode_field`]).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time, seconds (Docker truncates to whole seconds).
    pub mtime: i64,
    /// Content size (regular files only).
    pub size: u64,
    /// Xattrs, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The mode field of an entry made from a stat: permission bits plus the
/// file type bits, as Go's `FileInfoHeader` writes them.
pub(crate) fn mode_field(st_mode: u32) -> u32 {
    st_mode & 0o177777
}

/// Writes a tar stream, counting the bytes.
pub(crate) struct TarWriter<'a> {
    out: &'a mut dyn Write,
    pub written: u64,
    /// User and group names for the uname/gname fields (an export names
    /// owners as the tree's own passwd and group files do); none: empty.
    pub names: Option<OwnerNames>,
}

/// IDs → names, from a tree's `etc/passwd` and `etc/group`.
#[derive(Clone, Debug, Default)]
pub(crate) struct OwnerNames {
    pub users: std::collections::HashMap<u64, Vec<u8>>,
    pub groups: std::collections::HashMap<u64, Vec<u8>>,
}

impl OwnerNames {
    /// Parse passwd/group text (`name:x:id:…`); the first line for an ID wins.
    pub(crate) fn parse(passwd: &[u8], group: &[u8]) -> OwnerNames {
        let table = |text: &[u8]| {
            let mut m = std::collections::HashMap::new();
            for line in text.split(|&b| b == b'\n') {
                let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
                if f.len() < 3 || f[0].is_empty() || f[0].starts_with(b"#") {
                    continue;
                }
                if let Some(id) = std::str::from_utf8(f[2]).ok().and_then(|s| s.parse::<u64>().ok()) {
                    m.entry(id).or_insert_with(|| f[0].to_vec());
                }
            }
            m
        };
        OwnerNames { users: table(passwd), groups: table(group) }
    }
}

fn fmt_octal(field: &mut [u8], v: u64) -> bool {
    let s = format!("{v:o}");
    if s.len() > field.len() - 1 {
        return false;
    }
    let pad = field.len() - 1 - s.len();
    for b in field.iter_mut().take(pad) {
        *b = b'0';
    }
    field[pad..pad + s.len()].copy_from_slice(s.as_bytes());
    field[field.len() - 1] = 0;
    true
}

fn put(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // "%d %s=%s\n" where the length counts itself.
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Split a name into ustar (prefix, name) when it does not fit in 100 bytes.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    if name.len() > 256 {
        return None;
    }
    // The prefix is at most 155 bytes and ends at a '/'.
    let lim = name.len().min(156);
    let i = name[..lim].iter().rposition(|&b| b == b'/')?;
    let (p, n) = (&name[..i], &name[i + 1..]);
    (i > 0 && !n.is_empty() && n.len() <= 100 && p.len() <= 155).then_some((p, n))
}

#[allow(clippy::too_many_arguments)]
fn header_block(
    name: &[u8],
    prefix: &[u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
    flag: u8,
    link: &[u8],
    dev: (u32, u32),
    owner_names: (&[u8], &[u8]),
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    put(&mut h[0..100], name);
    fmt_octal(&mut h[100..108], mode as u64);
    fmt_octal(&mut h[108..116], uid);
    fmt_octal(&mut h[116..124], gid);
    fmt_octal(&mut h[124..136], size);
    fmt_octal(&mut h[136..148], mtime.max(0) as u64);
    h[156] = flag;
    put(&mut h[157..257], link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put(&mut h[265..297], owner_names.0);
    put(&mut h[297..329], owner_names.1);
    fmt_octal(&mut h[329..337], dev.0 as u64);
    fmt_octal(&mut h[337..345], dev.1 as u64);
    put(&mut h[345..500], prefix);
    let sum: u64 =
        h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { b' ' as u64 } else { b as u64 }).sum();
    fmt_octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

/// A uname/gname field's content: the name when it fits (31 bytes).
fn fit_name(v: Option<&Vec<u8>>) -> &[u8] {
    v.map(|v| v.as_slice()).filter(|v| v.len() < 32).unwrap_or(b"")
}

fn ascii_trunc(s: &[u8], n: usize) -> Vec<u8> {
    s.iter().copied().filter(|b| b.is_ascii() && *b != 0).take(n).collect()
}

impl<'a> TarWriter<'a> {
    pub(crate) fn new(out: &'a mut dyn Write) -> TarWriter<'a> {
        TarWriter { out, written: 0, names: None }
    }

    /// The uname and gname fields for `uid` and `gid` (names of at most 31
    /// bytes; longer ones are left out rather than cut).
    fn owner_names(&self, uid: u64, gid: u64) -> (&[u8], &[u8]) {
        let Some(n) = &self.names else { return (b"", b"") };
        (fit_name(n.users.get(&uid)), fit_name(n.groups.get(&gid)))
    }

    fn emit(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(|e| crate::sys::io_err("write tar", "output", e))?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Write the header(s) of `m`; regular-file content must follow through
    /// [`TarWriter::content`].
    pub(crate) fn header(&mut self, m: &Meta) -> Result<()> {
        let mut name = m.name.clone();
        if m.kind == Kind::Dir {
            name.push(b'/');
        }
        let (flag, link, dev, size): (u8, &[u8], (u32, u32), u64) = match &m.kind {
            Kind::File => (b'0', b"", (0, 0), m.size),
            Kind::Dir => (b'5', b"", (0, 0), 0),
            Kind::Symlink(t) => (b'2', t, (0, 0), 0),
            Kind::Hardlink(t) => (b'1', t, (0, 0), 0),
            Kind::Char(a, b) => (b'3', b"", (*a, *b), 0),
            Kind::Block(a, b) => (b'4', b"", (*a, *b), 0),
            Kind::Fifo => (b'6', b"", (0, 0), 0),
        };
        let mut pax = Vec::new();
        let ascii = |s: &[u8]| s.iter().all(|b| b.is_ascii() && *b != 0);
        let split = if ascii(&name) { split_ustar(&name) } else { None };
        if split.is_none() {
            pax_record(&mut pax, b"path", &name);
        }
        if !(link.len() <= 100 && ascii(link)) {
            pax_record(&mut pax, b"linkpath", link);
        }
        const MAX8: u64 = 0o7777777;
        const MAX12: u64 = 0o77777777777;
        if m.gid > MAX8 {
            pax_record(&mut pax, b"gid", m.gid.to_string().as_bytes());
        }
        if m.mtime < 0 || m.mtime as u64 > MAX12 {
            pax_record(&mut pax, b"mtime", m.mtime.to_string().as_bytes());
        }
        if size > MAX12 {
            pax_record(&mut pax, b"size", size.to_string().as_bytes());
        }
        if m.uid > MAX8 {
            pax_record(&mut pax, b"uid", m.uid.to_string().as_bytes());
        }
        // Records sorted by key, as Go writes them: the keys above are in
        // order already (gid < linkpath < mtime < path < size < uid would be
        // the full order), so sort explicitly to be sure.
        let mut xattr_pax = Vec::new();
        for (k, v) in &m.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax_record(&mut xattr_pax, &key, v);
        }
        let pax = sort_pax(&pax, &xattr_pax)?;
        let (prefix, short): (Vec<u8>, Vec<u8>) = match split {
            Some((p, n)) => (p.to_vec(), n.to_vec()),
            None => (Vec::new(), ascii_trunc(&name, 100)),
        };
        if !pax.is_empty() {
            let (dir, file) = {
                let trimmed = name.strip_suffix(b"/").unwrap_or(&name);
                match trimmed.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
                    None => (&[][..], trimmed),
                }
            };
            let mut pname = dir.to_vec();
            pname.extend_from_slice(b"PaxHeaders.0/");
            pname.extend_from_slice(file);
            let pname = ascii_trunc(&pname, 100);
            let h = header_block(&pname, b"", 0, 0, 0, pax.len() as u64, 0, b'x', b"", (0, 0), (b"", b""));
            self.emit(&h)?;
            self.emit(&pax)?;
            self.emit(&vec![0u8; padding(pax.len() as u64) as usize])?;
        }
        let link_field = if link.len() <= 100 && ascii(link) { link.to_vec() } else { ascii_trunc(link, 100) };
        let h = header_block(
            &short,
            &prefix,
            m.mode,
            m.uid.min(MAX8),
            m.gid.min(MAX8),
            size.min(MAX12),
            m.mtime.clamp(0, MAX12 as i64),
            flag,
            &link_field,
            dev,
            self.owner_names(m.uid, m.gid),
        );
        self.emit(&h)
    }

    /// Copy exactly `size` bytes of content from `r`, then the padding.
    pub(crate) fn content(&mut self, r: &mut dyn std::io::Read, size: u64, what: &std::path::Path) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = r.read(&mut buf[..want]).map_err(|e| crate::sys::io_err("read", what, e))?;
            if n == 0 {
                return Err(crate::sys::io_err(
                    "read",
                    what,
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "file shrank while being read"),
                ));
            }
            self.emit(&buf[..n])?;
            left -= n as u64;
        }
        self.emit(&vec![0u8; padding(size) as usize])
    }

    /// The end-of-archive marker: two zero blocks.
    pub(crate) fn finish(&mut self) -> Result<u64> {
        self.emit(&[0u8; 2 * BLOCK])?;
        self.out.flush().map_err(|e| crate::sys::io_err("write tar", "output", e))?;
        Ok(self.written)
    }
}

/// Concatenate PAX records sorted by key (bytewise, as Go's sort.Strings).
fn sort_pax(a: &[u8], b: &[u8]) -> Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut recs: Vec<(&[u8], &[u8])> = Vec::new();
    for data in [a, b] {
        let mut rest = data;
        while !rest.is_empty() {
            let sp = rest.iter().position(|&c| c == b' ').expect("own record");
            let len: usize = std::str::from_utf8(&rest[..sp]).expect("digits").parse().expect("length");
            let rec = &rest[..len];
            let key_start = sp + 1;
            let eq = rec[key_start..].iter().position(|&c| c == b'=').expect("own record") + key_start;
            recs.push((&rec[key_start..eq], rec));
            rest = &rest[len..];
        }
    }
    recs.sort_by(|x, y| x.0.cmp(y.0));
    for (_, r) in recs {
        all.extend_from_slice(r);
    }
    if all.len() as u64 > MAX_EXT_HEADER {
        return Err(malformed("extended header too large to write"));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_num(b"0000644\0", "m").unwrap(), 0o644);
        assert_eq!(parse_num(b"   644 \0", "m").unwrap(), 0o644);
        assert_eq!(parse_num(b"\0\0\0\0", "m").unwrap(), 0);
        assert_eq!(parse_num(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "s").unwrap(), 1 << 32);
        assert_eq!(parse_num(&[0xff; 8], "t").unwrap(), -1);
        assert!(parse_num(b"12x4", "m").is_err());
    }

    #[test]
    fn pax_records() {
        let mut d = Vec::new();
        pax_record(&mut d, b"path", b"a/b");
        assert_eq!(d, b"12 path=a/b\n");
        let mut d2 = Vec::new();
        pax_record(&mut d2, b"k", &[b'v'; 94]);
        assert_eq!(parse_pax(&d2).unwrap(), vec![(&b"k"[..], &[b'v'; 94][..])]);
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert_eq!(pax_time(b"1704067300.5").unwrap(), (1704067300, 500_000_000));
        assert_eq!(pax_time(b"-1.25").unwrap(), (-2, 750_000_000));
    }

    #[test]
    fn ustar_split() {
        let long = [b"d".repeat(120), b"f".repeat(50)].join(&b'/');
        assert_eq!(split_ustar(&long).unwrap().1, b"f".repeat(50).as_slice());
        assert!(split_ustar(&b"x".repeat(101)).is_none());
    }
}
