//! Output formatting shared by every command: Go templates, tables, human
//! sizes and times.
//!
//! How a list command uses it:
//!
//! ```ignore
//! use crate::format::{presets, Format};
//! let fmt = Format::parse(args.format.as_deref().unwrap_or(""), presets::IMAGES_TABLE)?;
//! // one JSON object per row, keys = the Go context's fields, sorted, values formatted
//! let rows: Vec<serde_json::Value> = images.iter().map(image_row).collect();
//! if let Err(e) = fmt.render(&mut std::io::stdout().lock(), &rows, &presets::IMAGES) {
//!     if e.is_broken_pipe() { return Ok(()) }   // reader went away: stop quietly
//!     return Err(e.into());                      // "template parsing error: …", exit 1
//! }
//! ```
//!
//! `-q` is `Format::parse(presets::QUIET_FORMAT, …)`. `inspect` uses [`Inspector`]. Cell
//! values come from [`units`] (`human_size_3`, `human_size`, `human_since`,
//! `go_time_string_utc`, `rfc3339`) and [`text`] (`truncate_id`, `ellipsis`).
//! Errors display exactly as Docker prints them after its `template parsing error: ` prefix.
// The toolkit is complete for Docker's formatters; a few presets and helpers
// (volume and build-cache sections, binary sizes, RFC 3339 helpers) serve
// commands strata does not have yet.
#![allow(dead_code)]

pub mod gofmt;
pub mod inspect;
pub mod json;
pub mod presets;
pub mod table;
pub mod template;
pub mod text;
pub mod units;

#[allow(unused_imports)]
pub use inspect::Inspector;
#[allow(unused_imports)]
pub use json::{to_go_json, to_go_json_indent};
#[allow(unused_imports)]
pub use table::{tabwrite, Columns, Format, DOCKER_TABS};
#[allow(unused_imports)]
pub use template::{ExecOptions, Template, TemplateError};

use std::fmt;
use std::io;

/// An error from formatting output.
#[derive(Debug)]
pub enum FormatError {
    /// A template failed to parse or execute; displays as Docker does:
    /// `template parsing error: template: :1:2: executing "" at <.X>: …`.
    Template(TemplateError),
    /// Writing failed (for a broken pipe the caller stops silently).
    Io(io::Error),
}

impl FormatError {
    /// True when the reader went away (`strata images | head -1`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, FormatError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Template(e) => write!(f, "template parsing error: {e}"),
            FormatError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FormatError::Template(e) => Some(e),
            FormatError::Io(e) => Some(e),
        }
    }
}

impl From<TemplateError> for FormatError {
    fn from(e: TemplateError) -> Self {
        FormatError::Template(e)
    }
}

impl From<io::Error> for FormatError {
    fn from(e: io::Error) -> Self {
        FormatError::Io(e)
    }
}
