//! Docker's json-file log: one JSON object per line,
//! `{"log":"out\n","stream":"stdout","time":"2026-12-07T20:21:35.18101908Z"}`.
//! The monitor appends (O_APPEND, one write per record); readers parse what
//! is complete and ignore a partial last line.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

/// Docker's longest record: a longer line is split into several.
pub const MAX_RECORD: usize = 16 * 1024;

/// One log record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The text, including its newline when the line was complete.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the monitor read it.
    pub time: String,
}

/// The log file name inside a container directory (`<id>-json.log`).
pub fn log_path(dir: &Path, id: &str) -> std::path::PathBuf {
    dir.join(format!("{id}-json.log"))
}

/// Splits one stream's bytes into records at newlines (and at
/// [`MAX_RECORD`]), as Docker's json-file driver does.
pub struct LineSplitter {
    stream: &'static str,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream` (`stdout` or `stderr`).
    pub fn new(stream: &'static str) -> LineSplitter {
        LineSplitter { stream, pending: Vec::new() }
    }

    /// Feed bytes; returns the records completed by them.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        for &b in data {
            self.pending.push(b);
            if b == b'\n' || self.pending.len() >= MAX_RECORD {
                out.push(self.record());
            }
        }
        out
    }

    /// The unterminated rest at end of stream, if any.
    pub fn finish(&mut self) -> Option<Record> {
        (!self.pending.is_empty()).then(|| self.record())
    }

    fn record(&mut self) -> Record {
        let bytes = std::mem::take(&mut self.pending);
        Record {
            log: String::from_utf8_lossy(&bytes).into_owned(),
            stream: self.stream.into(),
            time: crate::state::now(),
        }
    }
}

/// Append records to the log at `path` (one `write` per record).
pub fn append(file: &mut std::fs::File, records: &[Record]) -> std::io::Result<()> {
    for r in records {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)?;
    }
    Ok(())
}

/// Read the complete records of the log from byte `offset`; returns them
/// and the offset after the last complete line.
pub fn read_from(path: &Path, offset: u64) -> Result<(Vec<Record>, u64)> {
    use std::io::{Seek, SeekFrom};
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e).at("open", path),
    };
    let mut r = std::io::BufReader::new(f);
    r.seek(SeekFrom::Start(offset)).at("seek", path)?;
    let mut out = Vec::new();
    let mut pos = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).at("read", path)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        pos += n as u64;
        if let Ok(rec) = serde_json::from_slice::<Record>(&line) {
            out.push(rec);
        }
    }
    Ok((out, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines() {
        let mut s = LineSplitter::new("stdout");
        let r = s.feed(b"a\nbc");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].log, "a\n");
        assert!(s.feed(b"d").is_empty());
        let r = s.feed(b"\n\n");
        assert_eq!(r.iter().map(|r| r.log.as_str()).collect::<Vec<_>>(), vec!["bcd\n", "\n"]);
        assert!(s.finish().is_none());
        s.feed(b"tail");
        assert_eq!(s.finish().unwrap().log, "tail");
        let long = vec![b'x'; MAX_RECORD + 3];
        let r = s.feed(&long);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].log.len(), MAX_RECORD);
    }

    #[test]
    fn append_and_read_partial() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&p).unwrap();
        let mut s = LineSplitter::new("stderr");
        append(&mut f, &s.feed(b"one\ntwo\n")).unwrap();
        f.write_all(b"{\"log\":\"par").unwrap();
        let (recs, off) = read_from(&p, 0).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].stream, "stderr");
        let line = std::fs::read_to_string(&p).unwrap();
        assert!(line.starts_with("{\"log\":\"one\\n\",\"stream\":\"stderr\",\"time\":\""), "{line}");
        let (recs, off2) = read_from(&p, off).unwrap();
        assert!(recs.is_empty());
        assert_eq!(off, off2);
    }
}
