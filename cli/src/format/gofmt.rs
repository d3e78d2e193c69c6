//! Go `fmt`-style printing of JSON values: what `{{.X}}`, `print`, `println` and
//! `printf` produce in a Go template.
//!
//! Contract: a [`serde_json::Value`] stands for a Go value as follows —
//! string → `string`; integer number (i64/u64) → `int`; non-integer (f64) number →
//! `float64`; bool → `bool`; null → `nil`; array → `[]interface {}`; object →
//! `map[string]interface {}`. Printing follows Go's `%v`: integers in decimal, floats with
//! `%g` shortest (`2.5`, `1e+06`), arrays as `[a b]`, objects as `map[k:v]` with keys sorted
//! byte-wise (as `fmt` sorts map keys), null as `<nil>`.

use serde_json::{Number, Value};

/// Go type name of a value as `fmt` shows it in `%!d(string=x)` and as templates show it
/// in error messages.
pub fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if is_int(n) => "int",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn is_int(n: &Number) -> bool {
    n.is_i64() || n.is_u64()
}

/// Go's `fmt.Sprint(v)` (the `%v` verb) of one value.
pub fn sprint_value(v: &Value) -> String {
    let mut s = String::new();
    write_v(&mut s, v);
    s
}

fn write_v(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_v(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            for (i, (k, e)) in sorted_entries(m).into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_v(out, e);
            }
            out.push(']');
        }
    }
}

/// Object entries sorted by key, as Go's `fmt` and `range` order map keys.
pub fn sorted_entries(m: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    v
}

fn number_v(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        format_g(n.as_f64().unwrap_or(0.0), None)
    }
}

/// Go's `fmt.Sprint(a...)`: spaces between operands when neither side is a string.
pub fn sprint(args: &[&Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !args[i - 1].is_string() && !a.is_string() {
            out.push(' ');
        }
        write_v(&mut out, a);
    }
    out
}

/// Go's `fmt.Sprintln(a...)`: always a space between operands, then a newline.
pub fn sprintln(args: &[&Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, a);
    }
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------
// Floating point, the way strconv.FormatFloat does it.

/// Decimal digits (no trailing zeros) and decimal-point position of `x` rounded to
/// `prec` significant digits (`None` = shortest round-trip digits). `x` must be finite.
fn decimal_digits(x: f64, prec: Option<usize>) -> (Vec<u8>, i32) {
    let x = x.abs();
    if x == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match prec {
        None => format!("{x:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, x),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return (Vec::new(), 0);
    }
    (digits, exp + 1)
}

/// NaN and infinities as strconv writes them.
fn special_float(x: f64) -> Option<String> {
    if x.is_nan() {
        Some("NaN".into())
    } else if x.is_infinite() {
        Some(if x > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

fn fmt_e_digits(digits: &[u8], dp: i32, prec: usize, upper: bool) -> String {
    let mut s = String::new();
    s.push(if digits.is_empty() { '0' } else { digits[0] as char });
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            s.push(digits.get(i).map(|d| *d as char).unwrap_or('0'));
        }
    }
    s.push(if upper { 'E' } else { 'e' });
    let exp = if digits.is_empty() { 0 } else { dp - 1 };
    s.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        s.push('0');
    }
    s.push_str(&e.to_string());
    s
}

fn fmt_f_digits(digits: &[u8], dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if dp > 0 {
        for i in 0..dp as usize {
            s.push(digits.get(i).map(|d| *d as char).unwrap_or('0'));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 1..=prec as i32 {
            let idx = dp + i - 1;
            let c = if idx >= 0 { digits.get(idx as usize).map(|d| *d as char) } else { None };
            s.push(c.unwrap_or('0'));
        }
    }
    s
}

/// strconv.FormatFloat(x, 'g', prec, 64) (`None` = -1, shortest) — without sign handling
/// beyond a leading `-`.
pub fn format_g(x: f64, prec: Option<usize>) -> String {
    if let Some(s) = special_float(x) {
        return s;
    }
    let neg = x.is_sign_negative() && x != 0.0;
    let (digits, dp) = decimal_digits(x, prec.map(|p| p.max(1)));
    let nd = digits.len() as i32;
    let shortest = prec.is_none();
    let mut p = match prec {
        None => nd,
        Some(p) => p.max(1) as i32,
    };
    let mut eprec = p;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    let body = if nd > 0 && (exp < -4 || exp >= eprec) {
        if p > nd {
            p = nd;
        }
        fmt_e_digits(&digits, dp, (p - 1).max(0) as usize, false)
    } else {
        if p > dp {
            p = nd;
        }
        fmt_f_digits(&digits, dp, (p - dp).max(0) as usize)
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// strconv.FormatFloat(x, 'e', prec, 64).
pub fn format_e(x: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special_float(x) {
        return s;
    }
    let neg = x.is_sign_negative() && x != 0.0;
    let (digits, dp) = decimal_digits(x, Some(prec + 1));
    let body = fmt_e_digits(&digits, dp, prec, upper);
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

/// strconv.FormatFloat(x, 'f', prec, 64).
pub fn format_f(x: f64, prec: usize) -> String {
    if let Some(s) = special_float(x) {
        return s;
    }
    format!("{x:.prec$}")
}

// ---------------------------------------------------------------------------
// Quoting, the way strconv.Quote does it.

/// Go's `strconv.Quote`: double-quoted with Go escapes; printable Unicode kept as is.
pub fn go_quote(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        quote_char_into(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

fn quote_char_into(out: &mut String, c: char, quote: char, ascii_only: bool) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if (c as u32) < 0x80 => out.push(c),
        c if ascii_only || !is_printable(c) => {
            let u = c as u32;
            if u < 0x10000 {
                out.push_str(&format!("\\u{u:04x}"));
            } else {
                out.push_str(&format!("\\U{u:08x}"));
            }
        }
        c => out.push(c),
    }
}

fn is_printable(c: char) -> bool {
    !(c.is_control()
        || matches!(c as u32, 0xad | 0x2028 | 0x2029 | 0xfeff | 0xfff9..=0xfffb)
        || (0xe000..=0xf8ff).contains(&(c as u32)))
}

/// Go's `%q` of a rune: `'x'`.
fn quote_rune(c: char, ascii_only: bool) -> String {
    let mut out = String::from("'");
    quote_char_into(&mut out, c, '\'', ascii_only);
    out.push('\'');
    out
}

// ---------------------------------------------------------------------------
// printf

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
}

/// Go's `fmt.Sprintf(format, args...)`, with Go's error notations: `%!d(string=x)` for a
/// verb that does not fit the operand, `%!d(MISSING)`, `%!(EXTRA type=value)`,
/// `%!(NOVERB)`, `%!(BADWIDTH)`/`%!(BADPREC)`.
/// Supported verbs: v s q d b o O x X c U t e E f F g G T, flags `- + # 0 space`, widths and
/// precisions (also `*`).
pub fn sprintf(format: &str, args: &[&Value]) -> String {
    let mut out = String::new();
    let mut argi = 0usize;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        // flags
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            chars.next();
        }
        // width
        if let Some(&(_, '*')) = chars.peek() {
            chars.next();
            match args.get(argi).and_then(|a| a.as_i64()) {
                Some(w) => {
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
            argi += 1;
        } else {
            let mut w = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_ascii_digit() {
                    w.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            if !w.is_empty() {
                spec.width = w.parse().ok();
            }
        }
        // precision
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                match args.get(argi).and_then(|a| a.as_i64()) {
                    Some(p) if p >= 0 => spec.prec = Some(p as usize),
                    Some(_) => spec.prec = None,
                    None => out.push_str("%!(BADPREC)"),
                }
                argi += 1;
            } else {
                let mut p = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        p.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                spec.prec = Some(p.parse().unwrap_or(0));
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        spec.verb = verb;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        out.push_str(&format_arg(arg, &spec));
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if a.is_null() {
                out.push_str("<nil>");
            } else {
                out.push_str(go_type_name(a));
                out.push('=');
                write_v(&mut out, a);
            }
        }
        out.push(')');
    }
    out
}

fn bad_verb(v: &Value, verb: char) -> String {
    if v.is_null() {
        return format!("%!{verb}(<nil>)");
    }
    format!("%!{verb}({}={})", go_type_name(v), sprint_value(v))
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else { return s };
    let n = s.chars().count();
    if n >= w {
        return s;
    }
    let fill = w - n;
    if spec.minus {
        return s + &" ".repeat(fill);
    }
    if spec.zero {
        // zeros go after the sign of a number
        if numeric && (s.starts_with('-') || s.starts_with('+') || s.starts_with(' ')) {
            let (sign, rest) = s.split_at(1);
            return format!("{sign}{}{rest}", "0".repeat(fill));
        }
        return "0".repeat(fill) + &s;
    }
    " ".repeat(fill) + &s
}

fn format_arg(v: &Value, spec: &Spec) -> String {
    if spec.verb == 'T' {
        return pad(go_type_name(v).to_string(), spec, false);
    }
    match v {
        Value::Array(a) => {
            if matches!(spec.verb, 'v' | 's' | 'q' | 'd' | 'x' | 'X' | 'b' | 'o' | 'e' | 'f' | 'g' | 't' | 'c') {
                let parts: Vec<String> = a.iter().map(|e| format_arg(e, spec)).collect();
                format!("[{}]", parts.join(" "))
            } else {
                bad_verb(v, spec.verb)
            }
        }
        Value::Object(m) => {
            let parts: Vec<String> = sorted_entries(m)
                .into_iter()
                .map(|(k, e)| format!("{}:{}", format_arg(&Value::String(k.clone()), spec), format_arg(e, spec)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Null => match spec.verb {
            'v' => pad("<nil>".into(), spec, false),
            verb => bad_verb(v, verb),
        },
        Value::Bool(b) => match spec.verb {
            'v' | 't' => pad(b.to_string(), spec, false),
            verb => bad_verb(v, verb),
        },
        Value::String(s) => format_string(s, spec).unwrap_or_else(|| bad_verb(v, spec.verb)),
        Value::Number(n) => {
            if is_int(n) {
                let i: i128 = n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)).unwrap_or(0);
                format_int(i, spec).unwrap_or_else(|| bad_verb(v, spec.verb))
            } else {
                format_float(n.as_f64().unwrap_or(0.0), spec).unwrap_or_else(|| bad_verb(v, spec.verb))
            }
        }
    }
}

fn format_string(s: &str, spec: &Spec) -> Option<String> {
    let truncated: String = match spec.prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    };
    let body = match spec.verb {
        'v' | 's' => truncated,
        'q' => {
            if spec.sharp && !s.contains('`') && s.chars().all(|c| c == '\t' || !c.is_control()) {
                format!("`{truncated}`")
            } else {
                go_quote(&truncated, spec.plus)
            }
        }
        'x' | 'X' => {
            let mut h = String::new();
            for (i, b) in truncated.bytes().enumerate() {
                if spec.space && i > 0 {
                    h.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    h.push_str(if spec.verb == 'x' { "0x" } else { "0X" });
                }
                if spec.verb == 'x' {
                    h.push_str(&format!("{b:02x}"));
                } else {
                    h.push_str(&format!("{b:02X}"));
                }
            }
            h
        }
        _ => return None,
    };
    Some(pad(body, spec, false))
}

fn format_int(i: i128, spec: &Spec) -> Option<String> {
    let neg = i < 0;
    let a = i.unsigned_abs();
    let mut digits = match spec.verb {
        'v' | 'd' => a.to_string(),
        'b' => format!("{a:b}"),
        'o' | 'O' => format!("{a:o}"),
        'x' => format!("{a:x}"),
        'X' => format!("{a:X}"),
        'c' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{fffd}');
            return Some(pad(c.to_string(), spec, false));
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{fffd}');
            return Some(pad(quote_rune(c, spec.plus), spec, false));
        }
        'U' => {
            let mut s = format!("U+{a:04X}");
            if spec.sharp {
                if let Some(c) = char::from_u32(i as u32) {
                    s.push_str(&format!(" '{c}'"));
                }
            }
            return Some(pad(s, spec, false));
        }
        _ => return None,
    };
    if let Some(p) = spec.prec {
        if p == 0 && a == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let prefix = match spec.verb {
        'b' if spec.sharp => "0b",
        'o' if spec.sharp => "0",
        'O' => "0o",
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        _ => "",
    };
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let mut spec2 = *spec;
    if spec.prec.is_some() {
        spec2.zero = false;
    }
    if spec2.zero && !spec2.minus {
        if let Some(w) = spec2.width {
            let used = sign.len() + prefix.len() + digits.len();
            if used < w {
                digits = "0".repeat(w - used) + &digits;
            }
        }
    }
    Some(pad(format!("{sign}{prefix}{digits}"), &spec2, true))
}

fn format_float(x: f64, spec: &Spec) -> Option<String> {
    let mut body = match spec.verb {
        'v' => format_g(x, spec.prec),
        'g' => format_g(x, spec.prec),
        'G' => format_g(x, spec.prec).to_uppercase(),
        'e' => format_e(x, spec.prec.unwrap_or(6), false),
        'E' => format_e(x, spec.prec.unwrap_or(6), true),
        'f' | 'F' => format_f(x, spec.prec.unwrap_or(6)),
        _ => return None,
    };
    if !body.starts_with('-') && !x.is_nan() {
        if spec.plus {
            body.insert(0, '+');
        } else if spec.space {
            body.insert(0, ' ');
        }
    }
    Some(pad(body, spec, x.is_finite()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn print_values_like_go() {
        let cases: &[(Value, &str)] = &[
            (json!("abc"), "abc"),
            (json!(2246811), "2246811"),
            (json!(-3), "-3"),
            (json!(2.5), "2.5"),
            (json!(1000000.0), "1e+06"),
            (json!(123456.0), "123456"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(true), "true"),
            (json!(null), "<nil>"),
            (json!(["a", "b"]), "[a b]"),
            (json!([]), "[]"),
            (json!({"b": "2", "a": 1}), "map[a:1 b:2]"),
            (json!({}), "map[]"),
            (json!({"k": ["x", {"z": null}]}), "map[k:[x map[z:<nil>]]]"),
        ];
        for (v, want) in cases {
            assert_eq!(sprint_value(v), *want, "{v}");
        }
    }

    #[test]
    fn format_g_like_strconv() {
        let cases: &[(f64, Option<usize>, &str)] = &[
            (1.98, Some(3), "1.98"),
            (1.984281, Some(3), "1.98"),
            (1.984281, Some(4), "1.984"),
            (2.246811, Some(3), "2.25"),
            (262.453, Some(3), "262"),
            (262.453, Some(4), "262.5"),
            (364.6, Some(4), "364.6"),
            (999.5, Some(3), "1e+03"),
            (100.0, Some(3), "100"),
            (1.0, Some(3), "1"),
            (0.0, Some(3), "0"),
            (0.0, None, "0"),
            (1.5, Some(3), "1.5"),
            (2.5e-7, None, "2.5e-07"),
            (-1.25, None, "-1.25"),
        ];
        for (x, p, want) in cases {
            assert_eq!(format_g(*x, *p), *want, "{x} {p:?}");
        }
    }

    #[test]
    fn sprintf_like_go() {
        let s = json!("ab");
        let i = json!(42);
        let f = json!(3.5);
        let t = json!(true);
        let n = json!(null);
        let arr = json!(["x", "y"]);
        let cases: Vec<(&str, Vec<&Value>, &str)> = vec![
            ("%s", vec![&s], "ab"),
            ("%5s|", vec![&s], "   ab|"),
            ("%-5s|", vec![&s], "ab   |"),
            ("%.1s", vec![&s], "a"),
            ("%q", vec![&s], "\"ab\""),
            ("%x", vec![&s], "6162"),
            ("%d", vec![&i], "42"),
            ("%5d", vec![&i], "   42"),
            ("%-5d|", vec![&i], "42   |"),
            ("%05d", vec![&i], "00042"),
            ("%x %X %o %b", vec![&i, &i, &i, &i], "2a 2A 52 101010"),
            ("%v", vec![&f], "3.5"),
            ("%f", vec![&f], "3.500000"),
            ("%.2f", vec![&f], "3.50"),
            ("%e", vec![&f], "3.500000e+00"),
            ("%t", vec![&t], "true"),
            ("%v", vec![&n], "<nil>"),
            ("%s", vec![&arr], "[x y]"),
            ("%d", vec![&s], "%!d(string=ab)"),
            ("%s", vec![&i], "%!s(int=42)"),
            ("%s", vec![&n], "%!s(<nil>)"),
            ("%s %s", vec![&s], "ab %!s(MISSING)"),
            ("%s", vec![&s, &i], "ab%!(EXTRA int=42)"),
            ("100%%", vec![], "100%"),
            ("%", vec![], "%!(NOVERB)"),
            ("%z", vec![&i], "%!z(int=42)"),
            ("%T", vec![&s], "string"),
        ];
        for (fmt, args, want) in cases {
            assert_eq!(sprintf(fmt, &args), want, "{fmt}");
        }
    }

    #[test]
    fn sprint_and_sprintln() {
        let a = json!("a");
        let b = json!("b");
        let one = json!(1);
        let two = json!(2);
        assert_eq!(sprint(&[&a, &b]), "ab");
        assert_eq!(sprint(&[&one, &two]), "1 2");
        assert_eq!(sprint(&[&a, &one, &two, &b]), "a1 2b");
        assert_eq!(sprintln(&[&a, &b, &one]), "a b 1\n");
    }

    #[test]
    fn quote_like_strconv() {
        assert_eq!(go_quote("a\"b\\c\n\t\x01é", false), "\"a\\\"b\\\\c\\n\\t\\x01é\"");
        assert_eq!(go_quote("é", true), "\"\\u00e9\"");
    }
}
