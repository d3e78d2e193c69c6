//! JSON text exactly as Go's `encoding/json` writes it.
//!
//! Contract: keys are written in the value's own order (serde_json's `preserve_order`), so
//! a caller that wants Go's output for a Go *map* (whose keys Go sorts) builds the object
//! with sorted keys, and one that wants a Go *struct* builds it in field order. Strings are
//! escaped as Go does: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as
//! `\u00XX`, U+2028/U+2029 as `\u2028`/`\u2029`, and — when `escape_html` is set, as in
//! `json.Marshal` — `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`. Numbers: integers as
//! is, floats like Go (`1.5`, `2`, `1e+21`, `1e-7`).

use serde_json::{Number, Value};

/// Compact JSON (`json.Marshal`, or an `Encoder` with `SetEscapeHTML(escape_html)` minus the
/// trailing newline).
pub fn to_go_json(v: &Value, escape_html: bool) -> String {
    let mut out = String::new();
    write_compact(&mut out, v, escape_html);
    out
}

/// Indented JSON as `json.MarshalIndent(v, prefix, indent)` / `json.Indent` write it: empty
/// arrays and objects stay `[]` / `{}`, `"key": value`, no trailing newline.
pub fn to_go_json_indent(v: &Value, prefix: &str, indent: &str, escape_html: bool) -> String {
    let mut out = String::new();
    write_indent(&mut out, v, prefix, indent, 0, escape_html);
    out
}

fn write_compact(out: &mut String, v: &Value, html: bool) {
    match v {
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(out, e, html);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k, html);
                out.push(':');
                write_compact(out, e, html);
            }
            out.push('}');
        }
        scalar => write_scalar(out, scalar, html),
    }
}

fn newline(out: &mut String, prefix: &str, indent: &str, depth: usize) {
    out.push('\n');
    out.push_str(prefix);
    for _ in 0..depth {
        out.push_str(indent);
    }
}

fn write_indent(out: &mut String, v: &Value, prefix: &str, indent: &str, depth: usize, html: bool) {
    match v {
        Value::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, prefix, indent, depth + 1);
                write_indent(out, e, prefix, indent, depth + 1, html);
            }
            newline(out, prefix, indent, depth);
            out.push(']');
        }
        Value::Object(m) if !m.is_empty() => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, prefix, indent, depth + 1);
                write_string(out, k, html);
                out.push_str(": ");
                write_indent(out, e, prefix, indent, depth + 1, html);
            }
            newline(out, prefix, indent, depth);
            out.push('}');
        }
        other => write_compact(out, other, html),
    }
}

fn write_scalar(out: &mut String, v: &Value, html: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_json_number(n)),
        Value::String(s) => write_string(out, s, html),
        _ => {}
    }
}

/// A number as `encoding/json` writes a Go int or float64.
pub fn go_json_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // shortest digits in exponent form; Go writes e+21, e-7 (two-digit e-0X trimmed)
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        if exp < 0 {
            format!("{mant}e-{}", exp.unsigned_abs())
        } else if exp < 10 {
            format!("{mant}e+0{exp}")
        } else {
            format!("{mant}e+{exp}")
        }
    } else {
        format!("{f}")
    }
}

/// Write `s` as a JSON string literal with Go's escaping.
pub fn write_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_like_go() {
        let cases: Vec<(Value, bool, &str)> = vec![
            (
                json!({"Digest": "<none>", "ID": "8a0ff447c9bd"}),
                true,
                r#"{"Digest":"\u003cnone\u003e","ID":"8a0ff447c9bd"}"#,
            ),
            (json!({"Digest": "<none>"}), false, r#"{"Digest":"<none>"}"#),
            (json!(["a&b", "x>y"]), true, r#"["a\u0026b","x\u003ey"]"#),
            (json!("tab\tnl\nq\"bs\\\u{1}\u{8}\u{2028}"), false, r#""tab\tnl\nq\"bs\\\u0001\b\u2028""#),
            (json!({"8080/tcp": {}}), false, r#"{"8080/tcp":{}}"#),
            (json!([1, -2, 2.5, 2.0, 1e21, 1.5e-7, null, true]), false, "[1,-2,2.5,2,1e+21,1.5e-7,null,true]"),
            (json!({"b": 1, "a": 2}), false, r#"{"b":1,"a":2}"#),
        ];
        for (v, html, want) in cases {
            assert_eq!(to_go_json(&v, html), want);
        }
    }

    #[test]
    fn indent_like_go() {
        let v = json!([{"Id": "x", "Env": null, "E": [], "O": {}, "P": {"8080/tcp": {}}, "L": ["a", "b"]}]);
        let want = "[\n    {\n        \"Id\": \"x\",\n        \"Env\": null,\n        \"E\": [],\n        \"O\": {},\n        \"P\": {\n            \"8080/tcp\": {}\n        },\n        \"L\": [\n            \"a\",\n            \"b\"\n        ]\n    }\n]";
        assert_eq!(to_go_json_indent(&v, "", "    ", true), want);
        assert_eq!(to_go_json_indent(&json!([]), "", "    ", true), "[]");
    }
}
