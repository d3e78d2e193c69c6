//! The printer: owns stdout, tables, `--format` templates, human units and
//! the text of errors. Commands build rows (JSON objects keyed by Docker's
//! field names) and hand them here.

use std::io::{BufWriter, Stdout, Write};

use anyhow::Result;
use serde_json::Value;

use crate::format;

/// A table request: the user's `--format` (if any), the command's default
/// `table …` template, and the command's columns (Go context type for
/// "can't evaluate field" errors, header of each field): see `format::presets`.
pub struct Table<'a> {
    /// `--format` as given.
    pub format: Option<&'a str>,
    /// Default template (starts with `table`).
    pub default: &'a str,
    /// Context type and headers.
    pub columns: format::Columns<'a>,
}

/// Buffered stdout. A closed pipe surfaces as an `io::Error` of kind
/// `BrokenPipe`, which `main` treats as success.
pub struct Printer {
    out: BufWriter<Stdout>,
}

impl Printer {
    /// Printer on stdout.
    pub fn stdout() -> Printer {
        Printer { out: BufWriter::new(std::io::stdout()) }
    }

    /// One line.
    pub fn line(&mut self, s: &str) -> Result<()> {
        writeln!(self.out, "{s}")?;
        Ok(())
    }

    /// Flush (before writing to stderr, to keep order).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    /// Rows through the user's format or the default table.
    pub fn render(&mut self, t: &Table<'_>, rows: &[Value]) -> Result<()> {
        let fmt = format::Format::parse(t.format.unwrap_or(""), t.default)?;
        fmt.render(&mut self.out, rows, &t.columns)?;
        Ok(())
    }

    /// One value through a Go template, then a newline (as `image diff --format`).
    pub fn template(&mut self, tmpl: &str, v: &Value, context: &str) -> Result<()> {
        let ctx = format!("*formatter.{context}");
        let t = format::Template::parse(tmpl).map_err(format::FormatError::from)?;
        let opts = format::ExecOptions { root_struct: Some(&ctx), ..Default::default() };
        let s = t.execute(v, &opts).map_err(format::FormatError::from)?;
        writeln!(self.out, "{s}")?;
        Ok(())
    }

    /// The writer (for formatters that write themselves).
    pub fn out(&mut self) -> &mut dyn Write {
        &mut self.out
    }
}

/// Docker's human size: 3 significant digits, decimal units (`1.98MB`).
pub fn size(n: u64) -> String {
    format::units::human_size_3(n as i64)
}

/// Docker's human size with 4 significant digits (`1.984MB`).
pub fn size4(n: u64) -> String {
    format::units::human_size(n as f64)
}

/// "N units ago".
pub fn since(t: chrono::DateTime<chrono::Utc>) -> String {
    format::units::human_since(t, chrono::Utc::now())
}

/// Go's default time format, as `{{.CreatedAt}}`: `2024-01-01 00:00:00 +0000 UTC`.
pub fn created_at(t: chrono::DateTime<chrono::Utc>) -> String {
    format::units::go_time_string_utc(&t)
}

/// The text printed for an error: the chain joined with `: `, Go-style
/// I/O messages, Docker's daemon prefix for store errors.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let mut s = cause.to_string();
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            s = go_io_text(io);
        }
        if parts.last().is_some_and(|p| p.ends_with(&s)) {
            continue;
        }
        parts.push(s);
    }
    let text = parts.join(": ");
    let daemon = e.chain().next().and_then(|c| c.downcast_ref::<strata_store::Error>()).is_some_and(|se| {
        matches!(
            se,
            strata_store::Error::NoSuchImage(_) | strata_store::Error::Conflict(_) | strata_store::Error::Invalid(_)
        )
    });
    if daemon && !text.starts_with("Error response from daemon") {
        format!("Error response from daemon: {text}")
    } else {
        text
    }
}

/// `No such file or directory (os error 2)` → `no such file or directory`.
fn go_io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

/// Docker's progress text (`jsonmessage.JSONProgress`): a 50-column bar
/// and `current/total` in 4-digit human sizes; just the count when the
/// total is unknown or exceeded.
fn progress_bar(done: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", size4(done));
    }
    let half = ((done as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let bar = format!("[{}>{}] ", "=".repeat(half), " ".repeat(50 - half));
    if done > total {
        format!("{bar}{:>8}", size4(done))
    } else {
        format!("{bar}{:>8}/{}", size4(done), size4(total))
    }
}

/// Per-layer progress of pull/push, as Docker shows it: on a terminal each
/// layer has one line updated in place (with byte progress); piped, one
/// plain line per state change (no byte counts); `quiet` prints nothing.
/// Lines go straight to stdout (unbuffered by `Printer`), so callers must
/// not interleave them with a buffered `Printer` that has pending output.
pub struct Progress {
    quiet: bool,
    tty: bool,
    rows: Vec<String>,
    stderr: bool,
}

impl Progress {
    /// A progress display on stdout.
    pub fn new(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        Progress { quiet, tty: std::io::stdout().is_terminal(), rows: Vec::new(), stderr: false }
    }

    /// A progress display on stderr (a pull on behalf of `create`/`run`,
    /// whose stdout is the container's).
    pub fn on_stderr(quiet: bool) -> Progress {
        use std::io::IsTerminal;
        Progress { quiet, tty: std::io::stderr().is_terminal(), rows: Vec::new(), stderr: true }
    }

    fn out(&self) -> Box<dyn Write> {
        if self.stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        }
    }

    /// A line that is not about a layer. (Write errors, such as a closed
    /// pipe, are ignored: progress must not stop the work.)
    pub fn line(&mut self, s: &str) {
        if self.quiet {
            return;
        }
        let mut out = self.out();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
        self.rows.clear();
    }

    /// A layer's new state.
    pub fn layer(&mut self, id: &str, status: &str, bytes: Option<(u64, u64)>) {
        if self.quiet {
            return;
        }
        if !self.tty {
            if bytes.is_none() {
                let mut out = self.out();
                let _ = writeln!(out, "{id}: {status}");
                let _ = out.flush();
            }
            return;
        }
        let text = match bytes {
            Some((done, total)) => format!("{id}: {status} {}", progress_bar(done, total)),
            None => format!("{id}: {status}"),
        };
        let mut out = self.out();
        match self.rows.iter().position(|r| r == id) {
            Some(i) => {
                let up = self.rows.len() - i;
                let _ = write!(out, "\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r");
            }
            None => {
                self.rows.push(id.to_string());
                let _ = writeln!(out, "{text}");
            }
        }
        let _ = out.flush();
    }

    /// End of one image's progress.
    pub fn finish(&mut self) {
        self.rows.clear();
    }
}
