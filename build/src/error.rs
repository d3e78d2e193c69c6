//! The crate's error type.

/// Everything that can go wrong in the Dockerfile front end.
///
/// Display strings follow Docker's wording so the CLI can print them unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A syntax or instruction error at a Dockerfile line (1-based), e.g.
    /// `dockerfile parse error line 3: unknown instruction: RUNN`.
    #[error("dockerfile parse error line {line}: {msg}")]
    Parse {
        /// First line of the offending instruction (1-based).
        line: usize,
        /// Docker's message without the location prefix.
        msg: String,
    },
    /// The Dockerfile holds no instruction at all (only comments, blanks or directives).
    #[error("file with no instructions")]
    NoInstructions,
    /// Word expansion failed, e.g. `failed to process "${X:?}": X: is not allowed to be unset`.
    #[error("failed to process {}: {msg}", go_quote(word))]
    Expand {
        /// The word as written.
        word: String,
        /// What went wrong.
        msg: String,
    },
    /// An error raised while evaluating the instruction that starts at `line`.
    #[error("Dockerfile line {line}: {source}")]
    AtLine {
        /// First line of the instruction (1-based).
        line: usize,
        /// The underlying error.
        source: Box<Error>,
    },
    /// `--target` names no stage.
    #[error("failed to reach build target {0} in Dockerfile")]
    TargetNotFound(String),
    /// A stage graph problem (cycle, reference to a later stage, ...).
    #[error("{0}")]
    Stage(String),
    /// A RUN step's command failed; the text is the builder's own message
    /// (`The command '/bin/sh -c false' returned a non-zero code: 1`).
    #[error("{text}")]
    RunFailed {
        /// The message as the builder flavour words it.
        text: String,
        /// The command's exit status.
        code: i32,
    },
    /// A COPY/ADD source or the build context is unusable (message as Docker's).
    #[error("{0}")]
    Source(String),
    /// The container runtime, the store or the filesystem failed (their
    /// message, with what was being done).
    #[error("{0}")]
    System(String),
    /// A `.dockerignore` pattern is malformed.
    #[error("error checking context: syntax error in pattern {pattern:?} in .dockerignore")]
    BadPattern {
        /// The offending pattern as written.
        pattern: String,
    },
}

impl From<strata_runtime::Error> for Error {
    fn from(e: strata_runtime::Error) -> Error {
        Error::System(e.to_string())
    }
}

impl From<strata_store::Error> for Error {
    fn from(e: strata_store::Error) -> Error {
        Error::System(e.to_string())
    }
}

impl From<strata_driver::Error> for Error {
    fn from(e: strata_driver::Error) -> Error {
        Error::System(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::System(e.to_string())
    }
}

impl Error {
    /// An I/O failure while doing `op` on `path`.
    pub fn io(op: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Error {
        Error::System(format!("{op} {}: {e}", path.display()))
    }

    /// A parse error at `line` with `msg`.
    pub fn parse(line: usize, msg: impl Into<String>) -> Self {
        Error::Parse { line, msg: msg.into() }
    }

    /// Attach an instruction line to an error that has none (parse errors already carry one).
    pub fn at_line(self, line: usize) -> Self {
        match self {
            e @ (Error::Parse { .. } | Error::AtLine { .. }) => e,
            e => Error::AtLine { line, source: Box::new(e) },
        }
    }
}

/// Go's `strconv.Quote`: a double-quoted string with Go escapes (used in messages and dumps).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_strings() {
        let cases: &[(Error, &str)] = &[
            (Error::parse(3, "unknown instruction: RUNN"), "dockerfile parse error line 3: unknown instruction: RUNN"),
            (Error::NoInstructions, "file with no instructions"),
            (
                Error::Expand { word: "${X:?}".into(), msg: "X: is not allowed to be unset".into() },
                "failed to process \"${X:?}\": X: is not allowed to be unset",
            ),
            (Error::TargetNotFound("x".into()), "failed to reach build target x in Dockerfile"),
            (Error::Stage("boom".into()).at_line(4), "Dockerfile line 4: boom"),
            (Error::parse(2, "m").at_line(9), "dockerfile parse error line 2: m"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), *want);
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\c\n\u{0}♥"), "\"a\\\"b\\\\c\\n\\x00♥\"");
    }
}
