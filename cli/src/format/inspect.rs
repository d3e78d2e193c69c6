//! `docker inspect` output: the indented JSON array, or `-f TEMPLATE` once per object.
//!
//! Contract (docker/cli `cli/command/inspect`): with no format or `json`, objects are
//! collected and [`Inspector::flush`] writes them as a JSON array indented by four spaces
//! (`[]` when there are none), HTML characters escaped as the daemon's encoder does, then a
//! newline. With a template, each [`Inspector::inspect`] executes it over one object (Go's
//! `missingkey=error`: a missing key is an error, not `<no value>`) and buffers the output
//! plus a newline; an execution error is returned for that object (the caller collects it
//! beside "No such image" errors, in order) and nothing of it is buffered. `flush` writes
//! everything that succeeded. The template text is used as given (no `\t` replacement).

use std::io::Write;

use serde_json::Value;

use super::json::to_go_json_indent;
use super::template::{ExecOptions, Template};
use super::FormatError;

/// Collects inspected objects and writes them in Docker's format.
pub struct Inspector {
    template: Option<Template>,
    nil_hint: Option<fn(&str) -> Option<&'static str>>,
    elements: Vec<Value>,
    buffer: String,
}

impl Inspector {
    /// `format` is the `-f/--format` value (empty when not given). A template that does
    /// not parse is [`FormatError::Template`] (`template parsing error: …`).
    pub fn new(format: &str, nil_hint: Option<fn(&str) -> Option<&'static str>>) -> Result<Inspector, FormatError> {
        let template = if format.is_empty() || format == "json" { None } else { Some(Template::parse(format)?) };
        Ok(Inspector { template, nil_hint, elements: Vec::new(), buffer: String::new() })
    }

    /// Adds one object; with a template, executes it now.
    pub fn inspect(&mut self, element: &Value) -> Result<(), FormatError> {
        match &self.template {
            None => self.elements.push(element.clone()),
            Some(t) => {
                let opts = ExecOptions { missing_key_error: true, nil_hint: self.nil_hint, ..Default::default() };
                let out = t.execute(element, &opts)?;
                self.buffer.push_str(&out);
                self.buffer.push('\n');
            }
        }
        Ok(())
    }

    /// The text `flush` would write.
    pub fn output(&self) -> String {
        match &self.template {
            None => {
                let mut s = to_go_json_indent(&Value::Array(self.elements.clone()), "", "    ", true);
                s.push('\n');
                s
            }
            Some(_) => self.buffer.clone(),
        }
    }

    /// Writes the collected output.
    pub fn flush(self, out: &mut dyn Write) -> Result<(), FormatError> {
        out.write_all(self.output().as_bytes())?;
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::presets::image_inspect_nil_hint;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "Id": "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95",
            "RepoTags": ["127.0.0.1:5000/ia/layered:1", "ia/layered:1"],
            "Author": "IA Tester <ia@example.org>",
            "Config": {"Env": ["FOO=bar"], "Cmd": null, "Labels": null, "ExposedPorts": {"8080/tcp": {}}},
            "Size": 2246811,
            "Metadata": {"LastTagTime": "2026-11-22T10:57:09.797006924Z"}
        })
    }

    #[test]
    fn indented_like_docker() {
        let mut i = Inspector::new("", None).unwrap();
        i.inspect(&doc()).unwrap();
        let want = r#"[
    {
        "Id": "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95",
        "RepoTags": [
            "127.0.0.1:5000/ia/layered:1",
            "ia/layered:1"
        ],
        "Author": "IA Tester \u003cia@example.org\u003e",
        "Config": {
            "Env": [
                "FOO=bar"
            ],
            "Cmd": null,
            "Labels": null,
            "ExposedPorts": {
                "8080/tcp": {}
            }
        },
        "Size": 2246811,
        "Metadata": {
            "LastTagTime": "2026-11-22T10:57:09.797006924Z"
        }
    }
]
"#;
        assert_eq!(i.output(), want);
        assert_eq!(Inspector::new("json", None).unwrap().output(), "[]\n");
    }

    #[test]
    fn templates_like_docker() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("{{.Id}}", Ok("sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95\n")),
            ("{{.Author}} {{.Size}}", Ok("IA Tester <ia@example.org> 2246811\n")),
            ("{{.Config.Cmd}} {{.Config.Labels}} {{json .Config.Cmd}}", Ok("[] map[] null\n")),
            (
                "{{json .Config}}",
                Ok("{\"Env\":[\"FOO=bar\"],\"Cmd\":null,\"Labels\":null,\"ExposedPorts\":{\"8080/tcp\":{}}}\n"),
            ),
            (
                "{{.Nonexistent}}",
                Err(
                    r#"template parsing error: template: :1:2: executing "" at <.Nonexistent>: map has no entry for key "Nonexistent""#,
                ),
            ),
        ];
        for (f, want) in cases {
            let mut i = Inspector::new(f, Some(image_inspect_nil_hint)).unwrap();
            let got = i.inspect(&doc()).map(|_| i.output()).map_err(|e| e.to_string());
            assert_eq!(got.as_deref().map_err(|e| e.as_str()), *want, "{f}");
        }
        assert_eq!(
            Inspector::new("{{.Id", None).err().map(|e| e.to_string()).as_deref(),
            Some("template parsing error: template: :1: unclosed action")
        );
        // two objects, the second failing: the first is still written
        let mut i = Inspector::new("{{.Id}}", None).unwrap();
        i.inspect(&doc()).unwrap();
        assert!(i.inspect(&json!({"Other": 1})).is_err());
        let mut out = Vec::new();
        i.flush(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95\n"
        );
    }
}
