//! SHA-256 digests (`sha256:<64 hex>`), and readers/writers that compute one
//! over the bytes passing through.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A `sha256:` digest. Always 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parse `sha256:<hex>`; anything else is [`Error::BadDigest`].
    pub fn parse(s: &str) -> Result<Digest> {
        match s.strip_prefix("sha256:") {
            Some(hex) if is_hex64(hex) => Ok(Digest(hex.to_string())),
            _ => Err(Error::BadDigest(s.to_string())),
        }
    }

    /// From 64 hex digits without the algorithm prefix.
    pub fn from_hex(hex: &str) -> Result<Digest> {
        if is_hex64(hex) {
            Ok(Digest(hex.to_string()))
        } else {
            Err(Error::BadDigest(hex.to_string()))
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(hex(&Sha256::digest(bytes)))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits (Docker's short ID).
    pub fn short(&self) -> &str {
        &self.0[..12]
    }

    /// The chain ID of a layer on top of `parent` (DESIGN.md):
    /// sha256 of `"<parent chain-id> <diff-id>"`.
    pub fn chain(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
        match parent {
            None => diff_id.clone(),
            Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A reader that digests and counts what is read through it.
pub struct DigestReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> DigestReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        DigestReader { inner, hasher: Sha256::new(), count: 0 }
    }

    /// Read what is left (so the digest covers the whole stream), then
    /// return the digest and the byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest(hex(&self.hasher.finalize())), self.count))
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that digests and counts what is written through it.
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        DigestWriter { inner, hasher: Sha256::new(), count: 0 }
    }

    /// The digest and byte count so far, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (Digest(hex(&self.hasher.finalize())), self.count, self.inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let cases = [
            ("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef", true),
            ("sha256:5F70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef", false),
            ("sha256:5f70", false),
            ("sha512:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef", false),
            ("5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef", false),
            ("sha256:../../../../etc/passwd00000000000000000000000000000000000000000", false),
        ];
        for (s, ok) in cases {
            let d = Digest::parse(s);
            assert_eq!(d.is_ok(), ok, "{s}");
            if let Ok(d) = d {
                assert_eq!(d.to_string(), s);
            }
        }
    }

    #[test]
    fn empty_layer_and_chain_ids() {
        // The empty layer: 1024 zero bytes (DESIGN.md test data).
        let d = Digest::of(&[0u8; 1024]);
        assert_eq!(d.hex(), "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
        let l0 = Digest::parse("sha256:a337e16220d548ad55e84ce2afdea0616c764ef8881639b24cc0196f5b05f933").unwrap();
        let l1 = Digest::parse("sha256:1eade1ff30950fdb8084a6fca2239b2138989c8d206483baa3f0c155b4690277").unwrap();
        assert_eq!(Digest::chain(None, &l0), l0);
        assert_eq!(
            Digest::chain(Some(&l0), &l1).hex(),
            "e590bf8fe22fbb8bd9323343f4bf3367f3b80b8b923643740aaa4277696caef4"
        );
    }

    #[test]
    fn reader_digests_the_whole_stream() {
        let r = DigestReader::new(&[0u8; 1024][..]);
        let (d, n) = r.finish().unwrap();
        assert_eq!(n, 1024);
        assert_eq!(d, Digest::of(&[0u8; 1024]));
    }
}
