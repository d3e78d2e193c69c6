//! Relative paths inside a layer or a mount, as raw bytes, printed readably.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A path relative to a layer root or a mount root (`a`, `dir1/x`). Never
/// absolute, never containing `.` or `..` components. The root itself is the
/// empty path, printed as `.`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// The root (empty path).
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    /// A path from bytes. Panics on absolute paths or `.`/`..`/empty components.
    pub fn new(bytes: impl AsRef<[u8]>) -> RelPath {
        let b = bytes.as_ref();
        let b = if b == b"." { &b""[..] } else { b };
        if !b.is_empty() {
            assert!(b[0] != b'/', "RelPath must be relative: {:?}", show_bytes(b));
            for c in b.split(|&c| c == b'/') {
                assert!(!c.is_empty() && c != b"." && c != b"..", "bad RelPath component in {}", show_bytes(b));
            }
        }
        RelPath(b.to_vec())
    }

    /// The raw bytes (empty for the root).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// True for the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The parent (the root's parent is `None`).
    pub fn parent(&self) -> Option<RelPath> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.iter().rposition(|&c| c == b'/') {
            Some(i) => Some(RelPath(self.0[..i].to_vec())),
            None => Some(RelPath::root()),
        }
    }

    /// The last component (empty for the root).
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&c| c == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// `self/name`.
    pub fn join(&self, name: impl AsRef<[u8]>) -> RelPath {
        let mut v = self.0.clone();
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name.as_ref());
        RelPath::new(v)
    }

    /// Number of components (0 for the root).
    pub fn depth(&self) -> usize {
        if self.0.is_empty() {
            0
        } else {
            self.0.iter().filter(|&&c| c == b'/').count() + 1
        }
    }

    /// True if `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.get(other.0.len()) == Some(&b'/'))
    }

    /// All proper ancestors, outermost first, excluding the root.
    pub fn ancestors(&self) -> Vec<RelPath> {
        let mut out = Vec::new();
        let mut p = self.parent();
        while let Some(q) = p {
            if q.is_root() {
                break;
            }
            p = q.parent();
            out.push(q);
        }
        out.reverse();
        out
    }

    /// `base/self` as a filesystem path (`base` itself for the root).
    pub fn under(&self, base: &Path) -> PathBuf {
        if self.0.is_empty() {
            base.to_path_buf()
        } else {
            base.join(OsStr::from_bytes(&self.0))
        }
    }
}

impl From<&str> for RelPath {
    fn from(s: &str) -> RelPath {
        RelPath::new(s)
    }
}

impl From<&RelPath> for RelPath {
    fn from(p: &RelPath) -> RelPath {
        p.clone()
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", show_str(&self.0))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&String::from_utf8_lossy(&self.0))
        }
    }
}

/// Bytes as a Rust literal: `"text"` when printable UTF-8, else `b"\x00.."`.
pub fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => {
            let mut out = String::from("b\"");
            for &c in b {
                if c.is_ascii_graphic() && c != b'"' && c != b'\\' || c == b' ' {
                    out.push(c as char);
                } else {
                    out.push_str(&format!("\\x{c:02x}"));
                }
            }
            out.push('"');
            out
        }
    }
}

/// Deterministic non-zero filler content of `len` bytes (what random cases
/// use for big files; printed as `pattern(len)` in reproducers).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 + 1).collect()
}

/// Bytes as Rust code: `pattern(N)` for [`pattern`] content, else a literal.
pub fn show_data(b: &[u8]) -> String {
    if b.len() > 64 && b == pattern(b.len()).as_slice() {
        format!("pattern({})", b.len())
    } else {
        show_bytes(b)
    }
}

/// Like [`show_bytes`] but always a plain string literal when valid UTF-8.
pub fn show_str(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("{s:?}"),
        Err(_) => show_bytes(b),
    }
}

/// Bytes for a one-line report: short values as literals; long ones as a
/// prefix, the length and a hash (so any difference shows).
pub fn show_short(b: &[u8]) -> String {
    if b.len() <= 64 {
        show_bytes(b)
    } else {
        use sha2::Digest;
        let h = sha2::Sha256::digest(b);
        format!(
            "{}…({} bytes, sha256 {:02x}{:02x}{:02x}{:02x}{:02x}{:02x})",
            show_bytes(&b[..32]),
            b.len(),
            h[0],
            h[1],
            h[2],
            h[3],
            h[4],
            h[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_and_names() {
        let p = RelPath::new("dir1/sub/z");
        assert_eq!(p.parent(), Some(RelPath::new("dir1/sub")));
        assert_eq!(p.file_name(), b"z");
        assert_eq!(p.depth(), 3);
        assert_eq!(p.ancestors(), vec![RelPath::new("dir1"), RelPath::new("dir1/sub")]);
        assert!(p.starts_with(&RelPath::new("dir1")));
        assert!(!RelPath::new("dir10").starts_with(&RelPath::new("dir1")));
        assert_eq!(RelPath::new("a").parent(), Some(RelPath::root()));
        assert_eq!(RelPath::root().parent(), None);
        assert_eq!(format!("{:?}", RelPath::new("a b")), "\"a b\"");
    }
}
