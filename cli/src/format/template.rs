//! A Go `text/template` engine, enough for Docker's `--format`.
//!
//! Contract:
//! * [`Template::parse`] parses once; errors read like Go's (`template: :1: unexpected EOF`,
//!   `template: :1: function "foo" not defined`) — Docker prefixes them with
//!   `template parsing error: `, which [`super::FormatError`] does.
//! * [`Template::execute`] runs over a [`serde_json::Value`]: objects are Go maps (`.Field`,
//!   `.A.B`, `index`), arrays are slices, `$` is the data. Missing keys print `<no value>`
//!   (Go's default for maps) unless [`ExecOptions::missing_key_error`] is set (Docker's
//!   inspect fallback), and when [`ExecOptions::root_struct`] names a Go struct type, a
//!   missing field of the data itself is Go's `can't evaluate field X in type T` (Docker's
//!   list commands, whose rows are structs). Execution errors read like Go's
//!   (`template: :1:2: executing "" at <.Nonexistent>: ...`). Output is returned whole, so
//!   nothing is written when execution fails. Nothing panics on any input.
//! * Supported: text, comments, trim markers `{{- -}}`, `{{.X}}`, `{{if}}`/`{{else if}}`/
//!   `{{else with}}`/`{{else}}`/`{{end}}`, `{{range}}` (arrays, maps in key order, integers;
//!   `$i, $v :=`; `{{break}}`, `{{continue}}`), `{{with}}`, `$x :=`, `$x =`, pipelines `|`,
//!   parenthesised pipelines, field chains on them, string/raw-string/char/number/bool/nil
//!   literals, Go truthiness, the Go builtins (`and or not len index slice eq ne lt le gt ge
//!   print printf println html js urlquery`) and Docker's (`json join split title lower
//!   upper pad truncate`). Not supported: `define`, `template`, `block`, `call` (a parse
//!   error / call error says so).

use serde_json::{Map, Number, Value};
use std::fmt;

use super::gofmt;
use super::json::to_go_json;

/// A Go template error, displayed exactly as Go's `err.Error()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateError {}

/// How execution treats the data; the default is a plain Go `map[string]interface{}`.
#[derive(Clone, Copy, Default)]
pub struct ExecOptions<'o> {
    /// The data is a Go struct of this type (e.g. `*formatter.imageContext`): a missing
    /// field is an error, `json` of it escapes HTML (Docker's contexts marshal via
    /// `json.Marshal`), and it is always true.
    pub root_struct: Option<&'o str>,
    /// Go's `missingkey=error`: a missing map key is `map has no entry for key "X"`.
    pub missing_key_error: bool,
    /// How a JSON null reached through field `name` prints, when it stands for a typed Go
    /// nil: `Some("[]")` for a slice, `Some("map[]")` for a map, `Some("<nil>")` for a
    /// pointer. `None` (or no hint) prints `<no value>` as Go does for a nil interface.
    pub nil_hint: Option<fn(&str) -> Option<&'static str>>,
    /// Execute with Docker's header functions (`json`, `join`, … return their first
    /// argument unchanged), used to render a table header from the same template.
    pub header_mode: bool,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    text: String,
    root: Vec<Node>,
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Field(String),
    Dot,
    Variable(String),
    Ident(String),
    Keyword(&'static str),
    Bool(bool),
    Number(String),
    CharConst(String),
    Str(String),
    RawStr(String),
    LeftParen,
    RightParen,
    Pipe,
    Declare,
    Assign,
    Char(char),
    Eof,
    Error(String),
}

#[derive(Debug, Clone)]
struct Item {
    tok: Tok,
    pos: usize,
    /// Source text of the token, for Go's `item.String()`.
    val: String,
}

impl Item {
    /// Go's `item.String()`, used in `unexpected X in Y`.
    fn describe(&self) -> String {
        match &self.tok {
            Tok::Eof => "EOF".into(),
            Tok::Error(e) => e.clone(),
            Tok::Keyword(_) | Tok::Dot => format!("<{}>", self.val),
            _ => {
                let n = self.val.chars().count();
                if n > 10 {
                    let short: String = self.val.chars().take(10).collect();
                    format!("{}...", gofmt::go_quote(&short, false))
                } else {
                    gofmt::go_quote(&self.val, false)
                }
            }
        }
    }
}

const KEYWORDS: &[&str] =
    &["block", "break", "continue", "define", "else", "end", "if", "nil", "range", "template", "with"];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn go_u(c: char) -> String {
    format!("U+{:04X} '{}'", c as u32, c)
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    items: Vec<Item>,
    paren_depth: i32,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }
    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn next_char(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }
    fn emit(&mut self, tok: Tok) {
        let val = self.input[self.start..self.pos].to_string();
        self.items.push(Item { tok, pos: self.start, val });
        self.start = self.pos;
    }
    fn error(&mut self, msg: String) {
        self.items.push(Item { tok: Tok::Error(msg.clone()), pos: self.start, val: msg });
    }
    fn has_right_trim(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
    }
    fn has_left_trim(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
    }
    /// (at right delimiter, with trim marker)
    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if Self::has_right_trim(r) && r[2..].starts_with("}}") {
            return (true, true);
        }
        (r.starts_with("}}"), false)
    }
    fn at_terminator(&self) -> bool {
        match self.peek_char() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with("}}"),
        }
    }

    fn run(mut self) -> Vec<Item> {
        loop {
            // text state
            match self.rest().find("{{") {
                None => {
                    self.pos = self.input.len();
                    if self.pos > self.start {
                        let t = self.input[self.start..self.pos].to_string();
                        self.emit(Tok::Text(t));
                    }
                    self.emit(Tok::Eof);
                    return self.items;
                }
                Some(off) => {
                    let delim = self.pos + off;
                    let trim = Self::has_left_trim(&self.input[delim + 2..]);
                    let mut text_end = delim;
                    if trim {
                        text_end = self.start + self.input[self.start..delim].trim_end_matches(is_space).len();
                    }
                    if text_end > self.start {
                        self.pos = text_end;
                        let t = self.input[self.start..text_end].to_string();
                        self.emit(Tok::Text(t));
                    }
                    self.pos = delim;
                    self.start = delim;
                    if !self.lex_left_delim(trim) {
                        return self.items;
                    }
                }
            }
        }
    }

    /// Lexes one action (or comment) starting at `{{`; false on error.
    fn lex_left_delim(&mut self, trim: bool) -> bool {
        self.pos += 2;
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with("/*") {
            self.pos += after;
            self.start = self.pos;
            return self.lex_comment();
        }
        self.emit(Tok::LeftDelim);
        self.pos += after;
        self.start = self.pos;
        self.paren_depth = 0;
        self.lex_inside_action()
    }

    fn lex_comment(&mut self) -> bool {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            self.error("unclosed comment".into());
            return false;
        };
        self.pos += x + 2;
        let (delim, trim) = self.at_right_delim();
        if !delim {
            self.error("comment ends before closing delimiter".into());
            return false;
        }
        if trim {
            self.pos += 2;
        }
        self.pos += 2;
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
        }
        self.start = self.pos;
        true
    }

    fn lex_right_delim(&mut self, trim: bool) {
        if trim {
            self.pos += 2;
            self.start = self.pos;
        }
        self.pos += 2;
        self.emit(Tok::RightDelim);
        if trim {
            let r = self.rest();
            self.pos += r.len() - r.trim_start_matches(is_space).len();
            self.start = self.pos;
        }
    }

    fn lex_inside_action(&mut self) -> bool {
        loop {
            let (delim, trim) = self.at_right_delim();
            if delim {
                if self.paren_depth == 0 {
                    self.lex_right_delim(trim);
                    return true;
                }
                self.error("unclosed left paren".into());
                return false;
            }
            let Some(c) = self.next_char() else {
                self.error("unclosed action".into());
                return false;
            };
            match c {
                c if is_space(c) => {
                    let mut n = 1;
                    while matches!(self.peek_char(), Some(c) if is_space(c)) {
                        self.next_char();
                        n += 1;
                    }
                    // a space followed by "-}}" belongs to the delimiter
                    let back = &self.input[self.pos - 1..];
                    if Self::has_right_trim(back) && back[2..].starts_with("}}") {
                        self.pos -= 1;
                        if n == 1 {
                            continue;
                        }
                    }
                    self.emit(Tok::Space);
                }
                '=' => self.emit(Tok::Assign),
                ':' => {
                    if self.next_char() != Some('=') {
                        self.error("expected :=".into());
                        return false;
                    }
                    self.emit(Tok::Declare);
                }
                '|' => self.emit(Tok::Pipe),
                '"' => {
                    loop {
                        match self.next_char() {
                            Some('\\') => match self.next_char() {
                                Some('\n') | None => {
                                    self.error("unterminated quoted string".into());
                                    return false;
                                }
                                _ => {}
                            },
                            Some('\n') | None => {
                                self.error("unterminated quoted string".into());
                                return false;
                            }
                            Some('"') => break,
                            _ => {}
                        }
                    }
                    let raw = self.input[self.start..self.pos].to_string();
                    self.emit(Tok::Str(raw));
                }
                '`' => {
                    loop {
                        match self.next_char() {
                            None => {
                                self.error("unterminated raw quoted string".into());
                                return false;
                            }
                            Some('`') => break,
                            _ => {}
                        }
                    }
                    let raw = self.input[self.start..self.pos].to_string();
                    self.emit(Tok::RawStr(raw));
                }
                '$' => {
                    if !self.lex_field_or_var(true) {
                        return false;
                    }
                }
                '\'' => {
                    loop {
                        match self.next_char() {
                            Some('\\') => match self.next_char() {
                                Some('\n') | None => {
                                    self.error("unterminated character constant".into());
                                    return false;
                                }
                                _ => {}
                            },
                            Some('\n') | None => {
                                self.error("unterminated character constant".into());
                                return false;
                            }
                            Some('\'') => break,
                            _ => {}
                        }
                    }
                    let raw = self.input[self.start..self.pos].to_string();
                    self.emit(Tok::CharConst(raw));
                }
                '.' if !matches!(self.peek_char(), Some('0'..='9')) => {
                    if !self.lex_field_or_var(false) {
                        return false;
                    }
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos -= 1;
                    if !self.lex_number() {
                        return false;
                    }
                }
                c if is_alnum(c) => {
                    while matches!(self.peek_char(), Some(c) if is_alnum(c)) {
                        self.next_char();
                    }
                    let word = self.input[self.start..self.pos].to_string();
                    if !self.at_terminator() {
                        let bad = self.peek_char().unwrap_or(' ');
                        self.error(format!("bad character {}", go_u(bad)));
                        return false;
                    }
                    if let Some(k) = KEYWORDS.iter().find(|k| **k == word) {
                        if *k == "nil" {
                            self.emit(Tok::Keyword("nil"));
                        } else {
                            self.emit(Tok::Keyword(k));
                        }
                    } else if word == "true" || word == "false" {
                        self.emit(Tok::Bool(word == "true"));
                    } else {
                        self.emit(Tok::Ident(word));
                    }
                }
                '(' => {
                    self.emit(Tok::LeftParen);
                    self.paren_depth += 1;
                }
                ')' => {
                    self.paren_depth -= 1;
                    if self.paren_depth < 0 {
                        self.error("unexpected right paren".into());
                        return false;
                    }
                    self.emit(Tok::RightParen);
                }
                c if c.is_ascii() && !c.is_ascii_control() => self.emit(Tok::Char(c)),
                c => {
                    self.error(format!("unrecognized character in action: {}", go_u(c)));
                    return false;
                }
            }
        }
    }

    /// After `.` or `$` has been consumed.
    fn lex_field_or_var(&mut self, var: bool) -> bool {
        if self.at_terminator() {
            if var {
                self.emit(Tok::Variable("$".into()));
            } else {
                self.emit(Tok::Dot);
            }
            return true;
        }
        while matches!(self.peek_char(), Some(c) if is_alnum(c)) {
            self.next_char();
        }
        if !self.at_terminator() {
            let bad = self.peek_char().unwrap_or(' ');
            self.error(format!("bad character {}", go_u(bad)));
            return false;
        }
        let word = self.input[self.start..self.pos].to_string();
        if var {
            self.emit(Tok::Variable(word));
        } else {
            self.emit(Tok::Field(word[1..].to_string()));
        }
        true
    }

    fn accept(&mut self, set: &str) -> bool {
        match self.peek_char() {
            Some(c) if set.contains(c) => {
                self.next_char();
                true
            }
            _ => false,
        }
    }
    fn accept_run(&mut self, set: &str) {
        while self.accept(set) {}
    }

    fn lex_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if matches!(self.peek_char(), Some(c) if is_alnum(c)) {
            self.next_char();
            let text = self.input[self.start..self.pos].to_string();
            self.error(format!("bad number syntax: {}", gofmt::go_quote(&text, false)));
            return false;
        }
        let text = self.input[self.start..self.pos].to_string();
        self.emit(Tok::Number(text));
        true
    }
}

// ---------------------------------------------------------------------------
// Parse tree

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Control {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    is_assign: bool,
    decl: Vec<String>,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    pos: usize,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Arg {
    pos: usize,
    kind: ArgKind,
}

#[derive(Debug, Clone)]
enum ArgKind {
    Field(Vec<String>),
    /// `$x.A.B` as ["$x", "A", "B"]
    Variable(Vec<String>),
    Dot,
    Nil,
    Bool(bool),
    Number {
        text: String,
        value: Value,
    },
    Str {
        text: String,
        value: String,
    },
    Ident(String),
    Pipe(Box<Pipe>),
    Chain(Box<Arg>, Vec<String>),
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if let ArgKind::Pipe(p) = &a.kind {
                write!(f, "({p})")?;
            } else {
                write!(f, "{a}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ArgKind::Field(names) => {
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
            ArgKind::Variable(idents) => f.write_str(&idents.join(".")),
            ArgKind::Dot => f.write_str("."),
            ArgKind::Nil => f.write_str("nil"),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Number { text, .. } => f.write_str(text),
            ArgKind::Str { text, .. } => f.write_str(text),
            ArgKind::Ident(n) => f.write_str(n),
            ArgKind::Pipe(p) => write!(f, "{p}"),
            ArgKind::Chain(node, fields) => {
                if let ArgKind::Pipe(p) = &node.kind {
                    write!(f, "({p})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for n in fields {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
        }
    }
}

/// Every function name the parser accepts.
const FUNCS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf", "println", "urlquery", "eq",
    "ge", "gt", "le", "lt", "ne", "json", "split", "join", "title", "lower", "upper", "pad", "truncate",
];

enum Parsed {
    Node(Node),
    End,
    Else,
}

struct Parser<'t> {
    text: &'t str,
    items: Vec<Item>,
    i: usize,
    /// position of the last token read, for error lines
    last: usize,
    vars: Vec<String>,
    range_depth: usize,
}

type PResult<T> = Result<T, TemplateError>;

impl<'t> Parser<'t> {
    fn next(&mut self) -> Item {
        let it = self.items[self.i.min(self.items.len() - 1)].clone();
        if self.i < self.items.len() {
            self.i += 1;
        }
        self.last = it.pos;
        it
    }
    fn backup(&mut self) {
        self.i = self.i.saturating_sub(1);
    }
    fn peek(&mut self) -> Item {
        let it = self.next();
        self.backup();
        it
    }
    fn next_non_space(&mut self) -> Item {
        loop {
            let it = self.next();
            if it.tok != Tok::Space {
                return it;
            }
        }
    }
    fn peek_non_space(&mut self) -> Item {
        let it = self.next_non_space();
        self.backup();
        it
    }

    fn errorf(&self, msg: impl fmt::Display) -> TemplateError {
        let line = 1 + self.text[..self.last.min(self.text.len())].matches('\n').count();
        TemplateError(format!("template: :{line}: {msg}"))
    }
    fn unexpected(&self, item: &Item, context: &str) -> TemplateError {
        if let Tok::Error(e) = &item.tok {
            return self.errorf(e);
        }
        self.errorf(format!("unexpected {} in {}", item.describe(), context))
    }

    fn parse(&mut self) -> PResult<Vec<Node>> {
        let mut list = Vec::new();
        while self.peek().tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                Parsed::End => return Err(self.errorf("unexpected {{end}}")),
                Parsed::Else => return Err(self.errorf("unexpected {{else}}")),
            }
        }
        Ok(list)
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let tok = self.next_non_space();
        match tok.tok {
            Tok::Text(t) => Ok(Parsed::Node(Node::Text(t))),
            Tok::LeftDelim => self.action(),
            _ => Err(self.unexpected(&tok, "input")),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let tok = self.next_non_space();
        match tok.tok {
            Tok::Keyword("break") | Tok::Keyword("continue") => {
                let name = tok.val.clone();
                let t = self.next_non_space();
                if t.tok != Tok::RightDelim {
                    return Err(self.unexpected(&t, &format!("{{{{{name}}}}}")));
                }
                if self.range_depth == 0 {
                    return Err(self.errorf(format!("{{{{{name}}}}} outside {{{{range}}}}")));
                }
                return Ok(Parsed::Node(if name == "break" { Node::Break } else { Node::Continue }));
            }
            Tok::Keyword("else") => {
                let peek = self.peek_non_space();
                if matches!(peek.tok, Tok::Keyword("if") | Tok::Keyword("with")) {
                    return Ok(Parsed::Else);
                }
                let t = self.next_non_space();
                if t.tok != Tok::RightDelim {
                    return Err(self.unexpected(&t, "else"));
                }
                return Ok(Parsed::Else);
            }
            Tok::Keyword("end") => {
                let t = self.next_non_space();
                if t.tok != Tok::RightDelim {
                    return Err(self.unexpected(&t, "end"));
                }
                return Ok(Parsed::End);
            }
            Tok::Keyword("if") => return Ok(Parsed::Node(Node::If(self.control("if")?))),
            Tok::Keyword("with") => return Ok(Parsed::Node(Node::With(self.control("with")?))),
            Tok::Keyword("range") => return Ok(Parsed::Node(Node::Range(self.control("range")?))),
            Tok::Keyword(k @ ("define" | "template" | "block")) => {
                return Err(self.errorf(format!("{{{{{k}}}}} is not supported")));
            }
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", &Tok::RightDelim)?;
        Ok(Parsed::Node(Node::Action(pipe)))
    }

    fn control(&mut self, context: &str) -> PResult<Control> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, &Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if let Parsed::Else = next {
            let peek = self.peek();
            if context == "if" && peek.tok == Tok::Keyword("if") {
                self.next();
                else_list = Some(vec![Node::If(self.control("if")?)]);
            } else if context == "with" && peek.tok == Tok::Keyword("with") {
                self.next();
                else_list = Some(vec![Node::With(self.control("with")?)]);
            } else {
                let (l, next) = self.item_list()?;
                if !matches!(next, Parsed::End) {
                    return Err(self.errorf("expected end; found {{else}}"));
                }
                else_list = Some(l);
            }
        }
        self.vars.truncate(nvars);
        Ok(Control { pipe, list, else_list })
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Parsed)> {
        let mut list = Vec::new();
        while self.peek_non_space().tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                other => return Ok((list, other)),
            }
        }
        Err(self.errorf("unexpected EOF"))
    }

    fn pipeline(&mut self, context: &str, end: &Tok) -> PResult<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe { pos: start.pos, is_assign: false, decl: Vec::new(), cmds: Vec::new() };
        loop {
            let v = self.peek_non_space();
            let Tok::Variable(name) = &v.tok else { break };
            let name = name.clone();
            let vi = {
                self.next_non_space();
                self.i - 1
            };
            let next = self.peek_non_space();
            match next.tok {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = next.tok == Tok::Assign;
                    self.next_non_space();
                    pipe.decl.push(name.clone());
                    self.vars.push(name);
                    break;
                }
                Tok::Char(',') => {
                    self.next_non_space();
                    pipe.decl.push(name.clone());
                    self.vars.push(name);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().tok {
                            Tok::Variable(_) | Tok::RightDelim | Tok::RightParen => continue,
                            _ => return Err(self.errorf("range can only initialize variables")),
                        }
                    }
                    return Err(self.errorf(format!("too many declarations in {context}")));
                }
                _ => {
                    self.i = vi;
                    break;
                }
            }
        }
        loop {
            let tok = self.next_non_space();
            if &tok.tok == end {
                if pipe.cmds.is_empty() {
                    return Err(self.errorf(format!("missing value for {context}")));
                }
                for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                    if matches!(
                        c.args[0].kind,
                        ArgKind::Bool(_) | ArgKind::Dot | ArgKind::Nil | ArgKind::Number { .. } | ArgKind::Str { .. }
                    ) {
                        return Err(self.errorf(format!("non executable command in pipeline stage {}", i + 1)));
                    }
                }
                return Ok(pipe);
            }
            match tok.tok {
                Tok::Bool(_)
                | Tok::CharConst(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Keyword("nil")
                | Tok::RawStr(_)
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return Err(self.unexpected(&tok, context)),
            }
        }
    }

    fn command(&mut self) -> PResult<Cmd> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Cmd { pos, args: Vec::new() };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let tok = self.next();
            match tok.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return Err(self.unexpected(&tok, "operand")),
            }
            break;
        }
        if cmd.args.is_empty() {
            return Err(self.errorf("empty command"));
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else { return Ok(None) };
        let peek = self.peek();
        if !matches!(peek.tok, Tok::Field(_)) {
            return Ok(Some(node));
        }
        let chain_pos = peek.pos;
        let mut fields = Vec::new();
        while let Tok::Field(f) = self.peek().tok {
            self.next();
            fields.push(f);
        }
        Ok(Some(match node.kind {
            ArgKind::Field(mut names) => {
                names.extend(fields);
                Arg { pos: chain_pos, kind: ArgKind::Field(names) }
            }
            ArgKind::Variable(mut idents) => {
                idents.extend(fields);
                Arg { pos: chain_pos, kind: ArgKind::Variable(idents) }
            }
            ArgKind::Bool(_) | ArgKind::Str { .. } | ArgKind::Number { .. } | ArgKind::Nil | ArgKind::Dot => {
                return Err(
                    self.errorf(format!("unexpected . after term {}", gofmt::go_quote(&node.to_string(), false)))
                );
            }
            _ => Arg { pos: chain_pos, kind: ArgKind::Chain(Box::new(node), fields) },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let tok = self.next_non_space();
        let pos = tok.pos;
        let kind = match tok.tok {
            Tok::Ident(name) => {
                if !FUNCS.contains(&name.as_str()) {
                    return Err(self.errorf(format!("function {} not defined", gofmt::go_quote(&name, false))));
                }
                ArgKind::Ident(name)
            }
            Tok::Dot => ArgKind::Dot,
            Tok::Keyword("nil") => ArgKind::Nil,
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.errorf(format!("undefined variable {}", gofmt::go_quote(&name, false))));
                }
                ArgKind::Variable(vec![name])
            }
            Tok::Field(name) => ArgKind::Field(vec![name]),
            Tok::Bool(b) => ArgKind::Bool(b),
            Tok::Number(text) => match parse_number(&text) {
                Some(value) => ArgKind::Number { text, value },
                None => return Err(self.errorf(format!("illegal number syntax: {}", gofmt::go_quote(&text, false)))),
            },
            Tok::CharConst(text) => match unquote_char(&text) {
                Some(c) => ArgKind::Number { value: Value::from(c as u32 as i64), text },
                None => return Err(self.errorf(format!("malformed character constant: {text}"))),
            },
            Tok::LeftParen => {
                let p = self.pipeline("parenthesized pipeline", &Tok::RightParen)?;
                ArgKind::Pipe(Box::new(p))
            }
            Tok::Str(text) => match unquote(&text) {
                Some(value) => ArgKind::Str { text, value },
                None => return Err(self.errorf("invalid syntax")),
            },
            Tok::RawStr(text) => {
                let value = text[1..text.len() - 1].replace('\r', "");
                ArgKind::Str { text, value }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(Arg { pos, kind }))
    }
}

/// A Go number constant: an `int` when it is an integer literal, else a `float64`.
fn parse_number(text: &str) -> Option<Value> {
    let t = text.replace('_', "");
    if t.ends_with('i') {
        return None; // complex numbers are not supported
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(&t)),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains('.') || h.contains('p') {
            None
        } else {
            i64::from_str_radix(h, 16).ok()
        }
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.bytes().all(|c| c.is_ascii_digit()) && !lower.is_empty() {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Some(Value::from(if neg { -i } else { i }));
    }
    if lower.starts_with("0x") {
        return None;
    }
    let f: f64 = body.parse().ok()?;
    let f = if neg { -f } else { f };
    if f.fract() == 0.0 && !body.contains(['.', 'e', 'E']) {
        return Some(Value::from(f as i64));
    }
    Number::from_f64(f).map(Value::Number)
}

/// Go's strconv.Unquote for a double-quoted literal.
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(unescape(&mut chars, '"')?);
    }
    Some(out)
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, quote: char) -> Option<char> {
    let c = chars.next()?;
    let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Option<char> {
        let s: String = (0..n).filter_map(|_| chars.next()).collect();
        if s.len() != n {
            return None;
        }
        char::from_u32(u32::from_str_radix(&s, 16).ok()?)
    };
    Some(match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        '\\' => '\\',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        '0'..='7' => {
            let mut s = String::from(c);
            for _ in 0..2 {
                s.push(chars.next()?);
            }
            char::from_u32(u32::from_str_radix(&s, 8).ok()?)?
        }
        c if c == quote => c,
        _ => return None,
    })
}

fn unquote_char(text: &str) -> Option<char> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut chars = inner.chars().peekable();
    let c = chars.next()?;
    let c = if c == '\\' { unescape(&mut chars, '\'')? } else { c };
    if chars.next().is_some() {
        return None;
    }
    Some(c)
}

impl Template {
    /// Parses Go template text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let items = Lexer { input: text, pos: 0, start: 0, items: Vec::new(), paren_depth: 0 }.run();
        let mut p = Parser { text, items, i: 0, last: 0, vars: vec!["$".into()], range_depth: 0 };
        let root = p.parse()?;
        Ok(Template { text: text.to_string(), root })
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.text
    }

    /// Executes over `data`; returns the whole output or the first error.
    pub fn execute(&self, data: &Value, opts: &ExecOptions<'_>) -> Result<String, TemplateError> {
        let mut st = State {
            text: &self.text,
            root: data,
            opts,
            vars: vec![("$".into(), wrap(data, None, opts))],
            out: String::new(),
            at: None,
            depth: 0,
        };
        let dot = st.vars[0].1.clone();
        st.walk(&dot, &self.root)?;
        Ok(st.out)
    }

    /// Executes and returns what was written before an error too (Go's `Execute` into a
    /// buffer whose error is ignored, as Docker does for table headers).
    pub fn execute_partial(&self, data: &Value, opts: &ExecOptions<'_>) -> (String, Option<TemplateError>) {
        let mut st = State {
            text: &self.text,
            root: data,
            opts,
            vars: vec![("$".into(), wrap(data, None, opts))],
            out: String::new(),
            at: None,
            depth: 0,
        };
        let dot = st.vars[0].1.clone();
        let r = st.walk(&dot, &self.root);
        (st.out, r.err())
    }

    /// Field names used by the template (`.Repository`, first component of chains), in
    /// order of appearance, without duplicates.
    pub fn fields(&self) -> Vec<String> {
        fn arg(a: &Arg, out: &mut Vec<String>) {
            match &a.kind {
                ArgKind::Field(n) if !out.contains(&n[0]) => out.push(n[0].clone()),
                ArgKind::Pipe(p) => pipe(p, out),
                ArgKind::Chain(n, _) => arg(n, out),
                _ => {}
            }
        }
        fn pipe(p: &Pipe, out: &mut Vec<String>) {
            for c in &p.cmds {
                for a in &c.args {
                    arg(a, out);
                }
            }
        }
        fn nodes(ns: &[Node], out: &mut Vec<String>) {
            for n in ns {
                match n {
                    Node::Action(p) => pipe(p, out),
                    Node::If(c) | Node::With(c) | Node::Range(c) => {
                        pipe(&c.pipe, out);
                        nodes(&c.list, out);
                        if let Some(e) = &c.else_list {
                            nodes(e, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        nodes(&self.root, &mut out);
        out
    }
}

// ---------------------------------------------------------------------------
// Execution

static NULL: Value = Value::Null;

/// A Go value during execution.
#[derive(Clone, Debug)]
enum V<'a> {
    /// An invalid reflect.Value: a missing map key. Prints `<no value>`.
    Missing,
    /// A nil; prints as the given text when printed by an action.
    Nil(&'static str),
    B(&'a Value),
    O(Value),
}

impl<'a> V<'a> {
    fn value(&self) -> &Value {
        match self {
            V::Missing | V::Nil(_) => &NULL,
            V::B(v) => v,
            V::O(v) => v,
        }
    }
}

fn wrap<'a>(v: &'a Value, field: Option<&str>, opts: &ExecOptions<'_>) -> V<'a> {
    if v.is_null() {
        V::Nil(nil_print(field, opts))
    } else {
        V::B(v)
    }
}

fn wrap_owned<'a>(v: Value, field: Option<&str>, opts: &ExecOptions<'_>) -> V<'a> {
    if v.is_null() {
        V::Nil(nil_print(field, opts))
    } else {
        V::O(v)
    }
}

fn nil_print(field: Option<&str>, opts: &ExecOptions<'_>) -> &'static str {
    match (field, opts.nil_hint) {
        (Some(f), Some(h)) => h(f).unwrap_or("<no value>"),
        _ => "<no value>",
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

#[derive(Clone, Copy)]
enum At<'a> {
    Arg(&'a Arg),
    Cmd(&'a Cmd),
    Pipe(&'a Pipe),
}

struct State<'a, 'o> {
    text: &'a str,
    root: &'a Value,
    opts: &'o ExecOptions<'o>,
    vars: Vec<(String, V<'a>)>,
    out: String,
    at: Option<At<'a>>,
    depth: usize,
}

type EResult<T> = Result<T, TemplateError>;

const MAX_DEPTH: usize = 10000;

impl<'a, 'o> State<'a, 'o> {
    fn at(&mut self, at: At<'a>) {
        self.at = Some(at);
    }

    fn errorf(&self, msg: impl fmt::Display) -> TemplateError {
        let Some(at) = self.at else {
            return TemplateError(format!("template: : {msg}"));
        };
        let (pos, ctx) = match at {
            At::Arg(a) => (a.pos, a.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
        };
        let before = &self.text[..pos.min(self.text.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - nl - 1,
            None => pos,
        };
        let ctx = if ctx.len() > 20 { format!("{}...", ctx.chars().take(20).collect::<String>()) } else { ctx };
        TemplateError(format!("template: :{line}:{col}: executing \"\" at <{ctx}>: {msg}"))
    }

    fn is_root(&self, v: &V<'a>) -> bool {
        matches!(v, V::B(p) if std::ptr::eq(*p, self.root))
    }

    fn is_struct(&self, v: &V<'a>) -> bool {
        self.opts.root_struct.is_some() && self.is_root(v)
    }

    fn type_name(&self, v: &V<'a>) -> String {
        if let (Some(t), true) = (self.opts.root_struct, self.is_root(v)) {
            return t.to_string();
        }
        match v {
            V::Missing | V::Nil(_) => "interface {}".into(),
            _ if self.opts.root_struct.is_none() => "interface {}".into(),
            other => gofmt::go_type_name(other.value()).into(),
        }
    }

    fn truth(&self, v: &V<'a>) -> bool {
        if self.is_struct(v) {
            return true;
        }
        match v {
            V::Missing | V::Nil(_) => false,
            other => match other.value() {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(m) => !m.is_empty(),
            },
        }
    }

    fn walk(&mut self, dot: &V<'a>, nodes: &'a [Node]) -> EResult<Flow> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.errorf("exceeded maximum template depth (100000)"));
        }
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.eval_pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        self.print(&v);
                    }
                }
                Node::If(c) | Node::With(c) => {
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &c.pipe)?;
                    let truth = self.truth(&v);
                    let flow = if truth {
                        let d = if matches!(n, Node::With(_)) { v } else { dot.clone() };
                        self.walk(&d, &c.list)?
                    } else if let Some(e) = &c.else_list {
                        self.walk(dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        self.depth -= 1;
                        return Ok(flow);
                    }
                }
                Node::Range(c) => {
                    let mark = self.vars.len();
                    self.walk_range(dot, c)?;
                    self.vars.truncate(mark);
                }
                Node::Break => {
                    self.depth -= 1;
                    return Ok(Flow::Break);
                }
                Node::Continue => {
                    self.depth -= 1;
                    return Ok(Flow::Continue);
                }
            }
        }
        self.depth -= 1;
        Ok(Flow::Normal)
    }

    fn print(&mut self, v: &V<'a>) {
        match v {
            V::Missing => self.out.push_str("<no value>"),
            V::Nil(s) => self.out.push_str(s),
            other => {
                let s = gofmt::sprint_value(other.value());
                self.out.push_str(&s);
            }
        }
    }

    fn walk_range(&mut self, dot: &V<'a>, c: &'a Control) -> EResult<()> {
        self.at(At::Pipe(&c.pipe));
        let val = self.eval_pipeline(dot, &c.pipe)?;
        let mark = self.vars.len();
        let mut items: Vec<(V<'a>, V<'a>)> = Vec::new();
        if self.is_struct(&val) {
            return Err(self.errorf(format!("range can't iterate over {}", gofmt::sprint_value(val.value()))));
        }
        match &val {
            V::Missing | V::Nil(_) => {}
            V::B(Value::Array(a)) => {
                for (i, e) in a.iter().enumerate() {
                    items.push((V::O(Value::from(i as i64)), wrap(e, None, self.opts)));
                }
            }
            V::O(Value::Array(a)) => {
                for (i, e) in a.iter().enumerate() {
                    items.push((V::O(Value::from(i as i64)), wrap_owned(e.clone(), None, self.opts)));
                }
            }
            V::B(Value::Object(m)) => {
                for (k, e) in gofmt::sorted_entries(m) {
                    items.push((V::O(Value::String(k.clone())), wrap(e, Some(k), self.opts)));
                }
            }
            V::O(Value::Object(m)) => {
                for (k, e) in gofmt::sorted_entries(m) {
                    items.push((V::O(Value::String(k.clone())), wrap_owned(e.clone(), Some(k), self.opts)));
                }
            }
            other => match other.value() {
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    if c.pipe.decl.len() > 1 {
                        return Err(self.errorf(format!("can't use {} to iterate over more than one variable", n)));
                    }
                    let count = n.as_i64().unwrap_or(0).min(10_000_000);
                    for i in 0..count.max(0) {
                        items.push((V::O(Value::from(i)), V::O(Value::from(i))));
                    }
                }
                v => {
                    return Err(self.errorf(format!("range can't iterate over {}", gofmt::sprint_value(v))));
                }
            },
        }
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                self.walk(dot, e)?;
            }
            return Ok(());
        }
        for (index, elem) in items {
            let d = &c.pipe.decl;
            if !d.is_empty() {
                if c.pipe.is_assign {
                    if d.len() > 1 {
                        self.set_var(&d[0], index)?;
                        self.set_var(&d[1], elem.clone())?;
                    } else {
                        self.set_var(&d[0], elem.clone())?;
                    }
                } else {
                    let n = self.vars.len();
                    self.vars[n - 1].1 = elem.clone();
                    if d.len() > 1 {
                        self.vars[n - 2].1 = index;
                    }
                }
            }
            let flow = self.walk(&elem, &c.list)?;
            self.vars.truncate(mark);
            if let Flow::Break = flow {
                break;
            }
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: V<'a>) -> EResult<()> {
        for (n, val) in self.vars.iter_mut().rev() {
            if n == name {
                *val = v;
                return Ok(());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn var_value(&self, name: &str) -> EResult<V<'a>> {
        for (n, val) in self.vars.iter().rev() {
            if n == name {
                return Ok(val.clone());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn eval_pipeline(&mut self, dot: &V<'a>, pipe: &'a Pipe) -> EResult<V<'a>> {
        self.at(At::Pipe(pipe));
        let mut value: Option<V<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(V::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &'a [Arg], fin: &Option<V<'a>>) -> EResult<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(self.errorf(format!("can't give argument to non-function {}", args[0])));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &V<'a>, cmd: &'a Cmd, fin: Option<V<'a>>) -> EResult<V<'a>> {
        let first = &cmd.args[0];
        match &first.kind {
            ArgKind::Field(names) => {
                self.at(At::Arg(first));
                return self.eval_field_chain(dot, dot.clone(), first, names, &cmd.args, fin);
            }
            ArgKind::Chain(node, fields) => {
                return self.eval_chain(dot, first, node, fields, &cmd.args, fin);
            }
            ArgKind::Ident(name) => return self.eval_function(dot, first, cmd, name, &cmd.args, fin),
            ArgKind::Pipe(p) => {
                self.at(At::Arg(first));
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            ArgKind::Variable(idents) => return self.eval_variable(dot, first, idents, &cmd.args, fin),
            _ => {}
        }
        self.at(At::Arg(first));
        self.not_a_function(&cmd.args, &fin)?;
        Ok(match &first.kind {
            ArgKind::Bool(b) => V::O(Value::Bool(*b)),
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil => return Err(self.errorf("nil is not a command")),
            ArgKind::Number { value, .. } => V::O(value.clone()),
            ArgKind::Str { value, .. } => V::O(Value::String(value.clone())),
            _ => V::Missing,
        })
    }

    fn eval_variable(
        &mut self,
        dot: &V<'a>,
        node: &'a Arg,
        idents: &'a [String],
        args: &'a [Arg],
        fin: Option<V<'a>>,
    ) -> EResult<V<'a>> {
        self.at(At::Arg(node));
        let value = self.var_value(&idents[0])?;
        if idents.len() == 1 {
            self.not_a_function(args, &fin)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, node, &idents[1..], args, fin)
    }

    fn eval_chain(
        &mut self,
        dot: &V<'a>,
        chain: &'a Arg,
        node: &'a Arg,
        fields: &'a [String],
        args: &'a [Arg],
        fin: Option<V<'a>>,
    ) -> EResult<V<'a>> {
        self.at(At::Arg(chain));
        if let ArgKind::Nil = node.kind {
            return Err(self.errorf(format!("indirection through explicit nil in {chain}")));
        }
        let recv = self.eval_arg(dot, node)?;
        self.at(At::Arg(chain));
        self.eval_field_chain(dot, recv, chain, fields, args, fin)
    }

    fn eval_field_chain(
        &mut self,
        _dot: &V<'a>,
        receiver: V<'a>,
        node: &'a Arg,
        idents: &'a [String],
        args: &'a [Arg],
        fin: Option<V<'a>>,
    ) -> EResult<V<'a>> {
        self.at(At::Arg(node));
        let n = idents.len();
        let mut recv = receiver;
        for name in &idents[..n - 1] {
            recv = self.eval_field(name, &[], None, recv)?;
        }
        self.eval_field(&idents[n - 1], args, fin, recv)
    }

    fn eval_field(&mut self, name: &str, args: &'a [Arg], fin: Option<V<'a>>, recv: V<'a>) -> EResult<V<'a>> {
        let has_args = args.len() > 1 || fin.is_some();
        let quoted = gofmt::go_quote(name, false);
        match recv {
            V::Missing => {
                if self.opts.missing_key_error {
                    return Err(self.errorf(format!("nil data; no entry for key {quoted}")));
                }
                Ok(V::Missing)
            }
            V::Nil(_) => Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}"))),
            ref r => {
                let is_struct = self.is_struct(r);
                let Value::Object(m) = r.value() else {
                    return Err(self.errorf(format!("can't evaluate field {name} in type {}", self.type_name(r))));
                };
                if is_struct {
                    if !m.contains_key(name) {
                        return Err(self.errorf(format!("can't evaluate field {name} in type {}", self.type_name(r))));
                    }
                    if has_args {
                        let got = args.len().saturating_sub(1) + usize::from(fin.is_some());
                        return Err(self.errorf(format!("wrong number of args for {name}: want 0 got {got}")));
                    }
                } else if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                match (&recv, m.get(name)) {
                    (V::B(Value::Object(bm)), Some(_)) => {
                        let bm: &'a Map<String, Value> = bm;
                        let v = &bm[name];
                        Ok(wrap(v, Some(name), self.opts))
                    }
                    (_, Some(v)) => Ok(wrap_owned(v.clone(), Some(name), self.opts)),
                    (_, None) => {
                        if self.opts.missing_key_error {
                            return Err(self.errorf(format!("map has no entry for key {quoted}")));
                        }
                        Ok(V::Missing)
                    }
                }
            }
        }
    }

    fn eval_arg(&mut self, dot: &V<'a>, node: &'a Arg) -> EResult<V<'a>> {
        self.at(At::Arg(node));
        match &node.kind {
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Ok(V::Nil("<nil>")),
            ArgKind::Field(names) => {
                self.eval_field_chain(dot, dot.clone(), node, names, std::slice::from_ref(node), None)
            }
            ArgKind::Variable(idents) => self.eval_variable(dot, node, idents, &[], None),
            ArgKind::Pipe(p) => self.eval_pipeline(dot, p),
            ArgKind::Ident(name) => self.eval_function(dot, node, None, name, std::slice::from_ref(node), None),
            ArgKind::Chain(inner, fields) => self.eval_chain(dot, node, inner, fields, &[], None),
            ArgKind::Bool(b) => Ok(V::O(Value::Bool(*b))),
            ArgKind::Number { value, .. } => Ok(V::O(value.clone())),
            ArgKind::Str { value, .. } => Ok(V::O(Value::String(value.clone()))),
        }
    }

    fn eval_function(
        &mut self,
        dot: &V<'a>,
        ident: &'a Arg,
        cmd: impl Into<Option<&'a Cmd>>,
        name: &str,
        args: &'a [Arg],
        fin: Option<V<'a>>,
    ) -> EResult<V<'a>> {
        let cmd: Option<&'a Cmd> = cmd.into();
        self.at(At::Arg(ident));
        let user_args = &args[1.min(args.len())..];
        let num_in = user_args.len() + usize::from(fin.is_some());
        let (min, max) = arity(name, self.opts.header_mode);
        match max {
            Some(max) if max == min && num_in != min => {
                return Err(self.errorf(format!("wrong number of args for {name}: want {min} got {num_in}")));
            }
            None if num_in < min => {
                return Err(self
                    .errorf(format!("wrong number of args for {name}: want at least {min} got {}", user_args.len())));
            }
            _ => {}
        }
        // and/or short-circuit
        if name == "and" || name == "or" {
            let want = name == "or";
            let mut v = V::Missing;
            for a in user_args {
                v = self.eval_arg(dot, a)?;
                if self.truth(&v) == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut argv: Vec<V<'a>> = Vec::with_capacity(num_in);
        for a in user_args {
            argv.push(self.eval_arg(dot, a)?);
        }
        if let Some(f) = fin {
            argv.push(f);
        }
        let result = self.call(name, &argv);
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                if let Some(c) = cmd {
                    self.at(At::Cmd(c));
                } else {
                    self.at(At::Arg(ident));
                }
                Err(self.errorf(format!("error calling {name}: {e}")))
            }
        }
    }

    fn call(&self, name: &str, argv: &[V<'a>]) -> Result<V<'a>, String> {
        let vals: Vec<&Value> = argv.iter().map(|v| v.value()).collect();
        let s = |i: usize| -> Result<&str, String> {
            match vals[i] {
                Value::String(s) => Ok(s.as_str()),
                Value::Null => Err("invalid value; expected string".into()),
                other => Err(format!("wrong type for value; expected string; got {}", gofmt::go_type_name(other))),
            }
        };
        let int = |i: usize| -> Result<i64, String> {
            match vals[i] {
                Value::Number(n) if n.is_i64() => Ok(n.as_i64().unwrap_or(0)),
                other => Err(format!("wrong type for value; expected int; got {}", gofmt::go_type_name(other))),
            }
        };
        if self.opts.header_mode
            && matches!(name, "json" | "split" | "join" | "title" | "lower" | "upper" | "pad" | "truncate")
        {
            return Ok(V::O(Value::String(s(0)?.to_string())));
        }
        let out = |v: Value| Ok(V::O(v));
        match name {
            "not" => out(Value::Bool(!self.truth(&argv[0]))),
            "len" => match vals[0] {
                Value::String(s) => out(Value::from(s.len() as i64)),
                Value::Array(a) => out(Value::from(a.len() as i64)),
                Value::Object(m) if !self.is_struct(&argv[0]) => out(Value::from(m.len() as i64)),
                Value::Null => Err("len of nil pointer".into()),
                _ => Err(format!("len of type {}", self.type_name(&argv[0]))),
            },
            "index" => self.index(&argv[0], &vals[1..]),
            "slice" => slice(vals[0], &vals[1..]),
            "eq" => {
                if argv.len() < 2 {
                    return Err("missing argument for comparison".into());
                }
                for b in &argv[1..] {
                    if compare_eq(&argv[0], b)? {
                        return out(Value::Bool(true));
                    }
                }
                out(Value::Bool(false))
            }
            "ne" => out(Value::Bool(!compare_eq(&argv[0], &argv[1])?)),
            "lt" | "le" | "gt" | "ge" => {
                let ord = compare_ord(vals[0], vals[1])?;
                use std::cmp::Ordering::*;
                let r = match name {
                    "lt" => ord == Less,
                    "le" => ord != Greater,
                    "gt" => ord == Greater,
                    _ => ord != Less,
                };
                out(Value::Bool(r))
            }
            "print" => out(Value::String(gofmt::sprint(&vals))),
            "println" => out(Value::String(gofmt::sprintln(&vals))),
            "printf" => out(Value::String(gofmt::sprintf(s(0)?, &vals[1..]))),
            "html" => out(Value::String(html_escape(&eval_args_string(&vals)))),
            "js" => out(Value::String(js_escape(&eval_args_string(&vals)))),
            "urlquery" => out(Value::String(query_escape(&eval_args_string(&vals)))),
            "call" => Err("call of non-function".into()),
            "json" => {
                let html = self.opts.root_struct.is_some() && self.is_root(&argv[0]);
                out(Value::String(to_go_json(vals[0], html)))
            }
            "split" => {
                let (a, sep) = (s(0)?, s(1)?);
                let parts: Vec<Value> = if sep.is_empty() {
                    a.chars().map(|c| Value::String(c.to_string())).collect()
                } else {
                    a.split(sep).map(|p| Value::String(p.to_string())).collect()
                };
                out(Value::Array(parts))
            }
            "join" => {
                let sep = s(1)?;
                let Value::Array(a) = vals[0] else {
                    return Err(format!(
                        "wrong type for value; expected []string; got {}",
                        gofmt::go_type_name(vals[0])
                    ));
                };
                let mut parts = Vec::with_capacity(a.len());
                for e in a {
                    match e {
                        Value::String(s) => parts.push(s.as_str()),
                        _ => return Err("wrong type for value; expected []string; got []interface {}".into()),
                    }
                }
                out(Value::String(parts.join(sep)))
            }
            "title" => out(Value::String(title(s(0)?))),
            "lower" => out(Value::String(s(0)?.to_lowercase())),
            "upper" => out(Value::String(s(0)?.to_uppercase())),
            "pad" => {
                let (src, pre, suf) = (s(0)?, int(1)?, int(2)?);
                if src.is_empty() {
                    return out(Value::String(String::new()));
                }
                let rep = |n: i64| " ".repeat(n.clamp(0, 10_000) as usize);
                out(Value::String(format!("{}{src}{}", rep(pre), rep(suf))))
            }
            "truncate" => {
                let (src, n) = (s(0)?, int(1)?);
                if n < 0 {
                    return Err(format!("slice bounds out of range [:{n}]"));
                }
                let n = n as usize;
                if src.len() < n {
                    return out(Value::String(src.to_string()));
                }
                let mut cut = n;
                while !src.is_char_boundary(cut) {
                    cut -= 1;
                }
                out(Value::String(src[..cut].to_string()))
            }
            _ => Err(format!("{} is not a defined function", gofmt::go_quote(name, false))),
        }
    }

    fn index(&self, item: &V<'a>, idx: &[&Value]) -> Result<V<'a>, String> {
        let mut cur: V<'a> = item.clone();
        if matches!(cur, V::Missing | V::Nil(_)) {
            return Err("index of untyped nil".into());
        }
        for i in idx {
            let next = match cur.value() {
                Value::Array(a) => {
                    let n = match i {
                        Value::Number(n) if n.is_i64() || n.is_u64() => n.as_i64().unwrap_or(i64::MAX),
                        Value::Null => return Err("cannot index slice/array with nil".into()),
                        other => {
                            return Err(format!("cannot index slice/array with type {}", gofmt::go_type_name(other)))
                        }
                    };
                    if n < 0 || n as usize >= a.len() {
                        return Err(format!("index out of range: {n}"));
                    }
                    match &cur {
                        V::B(Value::Array(ba)) => {
                            let ba: &'a Vec<Value> = ba;
                            wrap(&ba[n as usize], None, self.opts)
                        }
                        _ => wrap_owned(a[n as usize].clone(), None, self.opts),
                    }
                }
                Value::String(s) => {
                    let n = i
                        .as_i64()
                        .ok_or_else(|| format!("cannot index slice/array with type {}", gofmt::go_type_name(i)))?;
                    if n < 0 || n as usize >= s.len() {
                        return Err(format!("index out of range: {n}"));
                    }
                    V::O(Value::from(s.as_bytes()[n as usize] as i64))
                }
                Value::Object(m) if !self.is_struct(&cur) => {
                    let Value::String(k) = i else {
                        return Err(format!("value has type {}; should be string", gofmt::go_type_name(i)));
                    };
                    match (&cur, m.get(k)) {
                        (V::B(Value::Object(bm)), Some(_)) => {
                            let bm: &'a Map<String, Value> = bm;
                            wrap(&bm[k.as_str()], Some(k), self.opts)
                        }
                        (_, Some(v)) => wrap_owned(v.clone(), Some(k), self.opts),
                        (_, None) => {
                            // zero value of the element type: "" for a map of strings
                            if !m.is_empty() && m.values().all(Value::is_string) {
                                V::O(Value::String(String::new()))
                            } else {
                                V::Nil("<no value>")
                            }
                        }
                    }
                }
                Value::Null => return Err("index of nil pointer".into()),
                _ => return Err(format!("can't index item of type {}", self.type_name(&cur))),
            };
            cur = next;
        }
        Ok(cur)
    }
}

fn arity(name: &str, header: bool) -> (usize, Option<usize>) {
    if header && matches!(name, "json" | "title" | "lower" | "upper") {
        return (1, Some(1));
    }
    match name {
        "and" | "or" | "index" | "slice" | "eq" | "call" | "printf" => (1, None),
        "print" | "println" | "html" | "js" | "urlquery" => (0, None),
        "not" | "len" | "json" | "title" | "lower" | "upper" => (1, Some(1)),
        "ne" | "lt" | "le" | "gt" | "ge" | "split" | "join" | "truncate" => (2, Some(2)),
        "pad" => (3, Some(3)),
        _ => (0, None),
    }
}

fn eval_args_string(vals: &[&Value]) -> String {
    if vals.len() == 1 {
        if let Value::String(s) = vals[0] {
            return s.clone();
        }
    }
    gofmt::sprint(vals)
}

fn slice<'a>(item: &Value, idx: &[&Value]) -> Result<V<'a>, String> {
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let mut ix = Vec::new();
    for i in idx {
        match i {
            Value::Number(n) if n.is_i64() => ix.push(n.as_i64().unwrap_or(0)),
            other => return Err(format!("cannot index slice/array with type {}", gofmt::go_type_name(other))),
        }
    }
    let len = match item {
        Value::String(s) => {
            if ix.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Array(a) => a.len(),
        Value::Null => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", gofmt::go_type_name(other))),
    };
    let lo = ix.first().copied().unwrap_or(0);
    let hi = ix.get(1).copied().unwrap_or(len as i64);
    for &i in &ix {
        if i < 0 || i as usize > len {
            return Err(format!("index out of range: {i}"));
        }
    }
    if lo > hi {
        return Err(format!("invalid slice index: {lo} > {hi}"));
    }
    if ix.len() == 3 && ix[2] < hi {
        return Err(format!("invalid slice index: {} > {}", hi, ix[2]));
    }
    let (lo, hi) = (lo as usize, hi as usize);
    Ok(V::O(match item {
        Value::String(s) => Value::String(String::from_utf8_lossy(&s.as_bytes()[lo..hi]).into_owned()),
        Value::Array(a) => Value::Array(a[lo..hi].to_vec()),
        _ => Value::Null,
    }))
}

#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn compare_eq(a: &V<'_>, b: &V<'_>) -> Result<bool, String> {
    let a_nil = matches!(a, V::Missing | V::Nil(_));
    let b_nil = matches!(b, V::Missing | V::Nil(_));
    if a_nil || b_nil {
        return Ok(a_nil && b_nil);
    }
    let (x, y) = (a.value(), b.value());
    let (kx, ky) = (kind(x), kind(y));
    if kx != ky {
        return Err("incompatible types for comparison".into());
    }
    match kx {
        Kind::Int => Ok(x.as_i64().map(i128::from).or(x.as_u64().map(i128::from))
            == y.as_i64().map(i128::from).or(y.as_u64().map(i128::from))),
        Kind::Float => Ok(x.as_f64() == y.as_f64()),
        Kind::Bool | Kind::Str => Ok(x == y),
        Kind::Other => Err(format!("non-comparable type {}: {}", gofmt::sprint_value(x), gofmt::go_type_name(x))),
    }
}

fn compare_ord(x: &Value, y: &Value) -> Result<std::cmp::Ordering, String> {
    let (kx, ky) = (kind(x), kind(y));
    if matches!(kx, Kind::Bool | Kind::Other) || matches!(ky, Kind::Bool | Kind::Other) {
        return Err("invalid type for comparison".into());
    }
    if kx != ky {
        return Err("incompatible types for comparison".into());
    }
    Ok(match kx {
        Kind::Int => {
            let f = |v: &Value| v.as_i64().map(i128::from).or(v.as_u64().map(i128::from)).unwrap_or(0);
            f(x).cmp(&f(y))
        }
        Kind::Float => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(std::cmp::Ordering::Equal),
        _ => x.as_str().unwrap_or("").as_bytes().cmp(y.as_str().unwrap_or("").as_bytes()),
    })
}

/// strings.Title: upper-case the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{fffd}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image_row() -> Value {
        json!({"Containers":"N/A","CreatedAt":"2026-11-22 10:57:08 +0000 UTC","CreatedSince":"1 second ago","Digest":"<none>","ID":"8a0ff447c9bd","Repository":"ia/imported","SharedSize":"N/A","Size":"1.98MB","Tag":"gz","UniqueSize":"N/A","VirtualSize":"1.984MB"})
    }

    fn inspect_doc() -> Value {
        json!({
            "Id": "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95",
            "RepoTags": ["127.0.0.1:5000/ia/layered:1", "ia/layered:1"],
            "RepoDigests": ["127.0.0.1:5000/ia/layered@sha256:027cba1fc357ffa10ddcc4eb04dfcdb34d71cd04457782e9699e3905a646e558"],
            "Parent": "",
            "Comment": "",
            "Created": "2024-01-01T00:06:40Z",
            "Author": "IA Tester <ia@example.org>",
            "Config": {
                "ExposedPorts": {"8080/tcp": {}},
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FOO=bar"],
                "Entrypoint": ["/bin/sh", "-c"],
                "Cmd": ["cat /etc/motd"],
                "WorkingDir": "/opt",
                "Labels": {"org.example.ia.image": "layered", "org.example.ia.version": "1"},
                "StopSignal": "SIGTERM",
                "Volumes": null,
                "OnBuild": null
            },
            "Architecture": "amd64",
            "Os": "linux",
            "Size": 2246811,
            "VirtualSize": 2246811,
            "GraphDriver": {"Data": {"MergedDir": "/m", "UpperDir": "/u"}, "Name": "overlay2"},
            "RootFS": {"Type": "layers", "Layers": ["sha256:a337e16220d548ad55e84ce2afdea0616c764ef8881639b24cc0196f5b05f933", "sha256:1eade1ff30950fdb8084a6fca2239b2138989c8d206483baa3f0c155b4690277"]},
        })
    }

    fn run(tmpl: &str, data: &Value, opts: &ExecOptions<'_>) -> Result<String, String> {
        Template::parse(tmpl).map_err(|e| e.to_string())?.execute(data, opts).map_err(|e| e.to_string())
    }

    fn hint(f: &str) -> Option<&'static str> {
        match f {
            "Volumes" | "Labels" => Some("map[]"),
            "OnBuild" | "Env" => Some("[]"),
            _ => None,
        }
    }

    #[test]
    fn executes_over_inspect_document() {
        let doc = inspect_doc();
        let plain = ExecOptions::default();
        let hinted = ExecOptions { nil_hint: Some(hint), missing_key_error: true, ..Default::default() };
        let cases: &[(&str, &ExecOptions<'_>, &str)] = &[
            ("{{.Id}}", &plain, "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95"),
            ("{{.RootFS.Layers}}", &plain, "[sha256:a337e16220d548ad55e84ce2afdea0616c764ef8881639b24cc0196f5b05f933 sha256:1eade1ff30950fdb8084a6fca2239b2138989c8d206483baa3f0c155b4690277]"),
            ("{{.Os}}/{{.Architecture}} {{.Size}} {{.VirtualSize}} {{.Created}}", &plain, "linux/amd64 2246811 2246811 2024-01-01T00:06:40Z"),
            ("{{range $k,$v := .Config.Labels}}{{$k}}={{$v}};{{end}}", &plain, "org.example.ia.image=layered;org.example.ia.version=1;"),
            ("{{json .Config.Env}}", &plain, r#"["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","FOO=bar"]"#),
            ("{{.Id}} {{json .Config.Env}}", &plain, r#"sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95 ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","FOO=bar"]"#),
            ("{{json .RepoDigests}} {{json .RepoTags}}", &plain, r#"["127.0.0.1:5000/ia/layered@sha256:027cba1fc357ffa10ddcc4eb04dfcdb34d71cd04457782e9699e3905a646e558"] ["127.0.0.1:5000/ia/layered:1","ia/layered:1"]"#),
            ("{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}|{{json .Config.Entrypoint}}", &plain, r#"IA Tester <ia@example.org>||["cat /etc/motd"]|["/bin/sh","-c"]"#),
            ("{{json .Author}}", &plain, r#""IA Tester <ia@example.org>""#),
            ("{{.GraphDriver.Name}} {{json .GraphDriver.Data}}", &plain, r#"overlay2 {"MergedDir":"/m","UpperDir":"/u"}"#),
            ("{{index .RepoDigests 0}}", &plain, "127.0.0.1:5000/ia/layered@sha256:027cba1fc357ffa10ddcc4eb04dfcdb34d71cd04457782e9699e3905a646e558"),
            ("{{index .Config.Labels \"org.example.ia.image\"}}", &plain, "layered"),
            ("[{{index .Config.Labels \"nope\"}}]", &plain, "[]"),
            ("{{.Config.Labels}}", &plain, "map[org.example.ia.image:layered org.example.ia.version:1]"),
            ("{{.Config.ExposedPorts}}", &plain, "map[8080/tcp:map[]]"),
            ("{{.Nonexistent}}", &plain, "<no value>"),
            ("{{.Nonexistent.Deeper}}", &plain, "<no value>"),
            ("{{.Config.Volumes}}", &plain, "<no value>"),
            ("{{.Config.Volumes}} {{.Config.OnBuild}} {{json .Config.OnBuild}}", &hinted, "map[] [] null"),
            ("{{len .RepoTags}} {{len .Id}}", &plain, "2 71"),
            ("{{range .RepoTags}}{{.}}\n{{end}}", &plain, "127.0.0.1:5000/ia/layered:1\nia/layered:1\n"),
            ("{{range $i, $t := .RepoTags}}{{$i}}:{{$t}} {{end}}", &plain, "0:127.0.0.1:5000/ia/layered:1 1:ia/layered:1 "),
            ("{{range .Config.Volumes}}x{{else}}none{{end}}", &plain, "none"),
            ("{{with .Config}}{{.WorkingDir}}{{end}}", &plain, "/opt"),
            ("{{with .Parent}}p={{.}}{{else}}no parent{{end}}", &plain, "no parent"),
            ("{{if .Parent}}a{{else if .Comment}}b{{else if eq .Os \"linux\"}}c{{else}}d{{end}}", &plain, "c"),
            ("{{if and .Id (not .Parent)}}yes{{end}}", &plain, "yes"),
            ("{{or .Parent \"none\"}}", &plain, "none"),
            ("{{$id := .Id}}{{with .Config}}{{$id}} {{$.Os}}{{end}}", &plain, "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95 linux"),
            ("{{$x := 1}}{{$x = 2}}{{$x}}", &plain, "2"),
            ("{{.Size | printf \"%d bytes\"}}", &plain, "2246811 bytes"),
            ("{{printf \"%-8s|%5d|%v|%q\" .Os 42 .RepoTags .Os}}", &plain, "linux   |   42|[127.0.0.1:5000/ia/layered:1 ia/layered:1]|\"linux\""),
            ("{{(index .RootFS.Layers 1) | printf \"%.19s\"}}", &plain, "sha256:1eade1ff3095"),
            ("{{(index .Config.Labels \"org.example.ia.version\")}}", &plain, "1"),
            ("{{(.Config).WorkingDir}}", &plain, "/opt"),
            ("{{join .Config.Entrypoint \" \"}}", &plain, "/bin/sh -c"),
            ("{{split .Created \"T\"}}", &plain, "[2024-01-01 00:06:40Z]"),
            ("{{index (split .Id \":\") 0}}", &plain, "sha256"),
            ("{{upper .Os}} {{lower \"ABC\"}} {{title \"hello world\"}}", &plain, "LINUX abc Hello World"),
            ("[{{pad .Os 1 2}}][{{pad \"\" 1 2}}]", &plain, "[ linux  ][]"),
            ("{{truncate .Id 10}}", &plain, "sha256:235"),
            ("{{slice .Id 7 19}}", &plain, "23501bdefb31"),
            ("{{println .Os .Architecture}}", &plain, "linux amd64\n"),
            ("{{print .Os 1 2 \"x\"}}", &plain, "linux1 2x"),
            ("{{eq .Size 2246811}} {{ne .Os \"linux\"}} {{lt 1 2}} {{ge \"b\" \"a\"}} {{eq .Os \"x\" \"linux\"}}", &plain, "true false true true true"),
            ("{{- /* a comment */ -}}\n  {{.Os}}  {{- \"!\" }}", &plain, "linux!"),
            ("a {{- .Os -}} b", &plain, "alinuxb"),
            ("{{range $i, $e := .RepoTags}}{{if $i}},{{end}}{{$e}}{{end}}", &plain, "127.0.0.1:5000/ia/layered:1,ia/layered:1"),
            ("{{range .RepoTags}}{{if eq . \"ia/layered:1\"}}{{break}}{{end}}{{.}};{{end}}", &plain, "127.0.0.1:5000/ia/layered:1;"),
            ("{{range .RepoTags}}{{if eq . \"ia/layered:1\"}}{{continue}}{{end}}{{.}};{{end}}", &plain, "127.0.0.1:5000/ia/layered:1;"),
            ("{{range 3}}{{.}}{{end}}", &plain, "012"),
            ("{{-3}} {{- 3}}", &plain, "-33"),
            ("{{$n := 0}}{{range .RepoTags}}{{$n = 1}}{{end}}{{$n}}", &plain, "1"),
            ("{{if $x := .Os}}{{$x}}{{end}}", &plain, "linux"),
            ("{{'a'}} {{0x10}} {{1e3}} {{1.5}} {{-2}}", &plain, "97 16 1000 1.5 -2"),
            ("{{`raw\\n`}} {{\"esc\\t\\u00e9\"}}", &plain, "raw\\n esc\té"),
            ("{{print nil}} {{printf \"%v\" nil}}", &plain, "<nil> <nil>"),
            ("{{.}}", &plain, "map[a:x b:[1 2]]"),
            ("{{html \"<a&b>\"}} {{urlquery \"a b&c\"}} {{js \"a'b\"}}", &plain, "&lt;a&amp;b&gt; a+b%26c a\\'b"),
        ];
        for (t, opts, want) in cases {
            let data = if t == &"{{.}}" { json!({"b": [1, 2], "a": "x"}) } else { doc.clone() };
            assert_eq!(run(t, &data, opts).as_deref(), Ok(*want), "template {t}");
        }
    }

    #[test]
    fn executes_over_row_structs() {
        let row = image_row();
        let opts = ExecOptions { root_struct: Some("*formatter.imageContext"), ..Default::default() };
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}", Ok("ia/imported:gz 8a0ff447c9bd 1.98MB")),
            (
                "{{json .}}",
                Ok(
                    r#"{"Containers":"N/A","CreatedAt":"2026-11-22 10:57:08 +0000 UTC","CreatedSince":"1 second ago","Digest":"\u003cnone\u003e","ID":"8a0ff447c9bd","Repository":"ia/imported","SharedSize":"N/A","Size":"1.98MB","Tag":"gz","UniqueSize":"N/A","VirtualSize":"1.984MB"}"#,
                ),
            ),
            ("{{json .Digest}}", Ok(r#""<none>""#)),
            (
                "{{.Nonexistent}}",
                Err(
                    r#"template: :1:2: executing "" at <.Nonexistent>: can't evaluate field Nonexistent in type *formatter.imageContext"#,
                ),
            ),
            (
                "x\n  {{.Tag}} {{.Nope}}",
                Err(
                    r#"template: :2:13: executing "" at <.Nope>: can't evaluate field Nope in type *formatter.imageContext"#,
                ),
            ),
            (
                "{{.Tag.Foo}}",
                Err(r#"template: :1:6: executing "" at <.Tag.Foo>: can't evaluate field Foo in type string"#),
            ),
            ("{{if .}}struct is true{{end}}", Ok("struct is true")),
        ];
        for (t, want) in cases {
            let got = run(t, &row, &opts);
            assert_eq!(got.as_deref().map_err(|e| e.as_str()), *want, "template {t}");
        }
    }

    #[test]
    fn execution_errors_read_like_go() {
        let doc = inspect_doc();
        let strict = ExecOptions { missing_key_error: true, ..Default::default() };
        let plain = ExecOptions::default();
        let cases: &[(&str, &ExecOptions<'_>, &str)] = &[
            (
                "{{.Nonexistent}}",
                &strict,
                r#"template: :1:2: executing "" at <.Nonexistent>: map has no entry for key "Nonexistent""#,
            ),
            (
                "{{index .RepoDigests 5}}",
                &plain,
                r#"template: :1:2: executing "" at <index .RepoDigests 5>: error calling index: index out of range: 5"#,
            ),
            (
                "{{index .RepoTags 1 2 3}}",
                &plain,
                r#"template: :1:2: executing "" at <index .RepoTags 1 2 ...>: error calling index: can't index item of type interface {}"#,
            ),
            (
                "{{join .Id \",\"}}",
                &plain,
                r#"template: :1:2: executing "" at <join .Id ",">: error calling join: wrong type for value; expected []string; got string"#,
            ),
            (
                "{{len 3}}",
                &plain,
                r#"template: :1:2: executing "" at <len 3>: error calling len: len of type interface {}"#,
            ),
            (
                "{{lt .Os 1}}",
                &plain,
                r#"template: :1:2: executing "" at <lt .Os 1>: error calling lt: incompatible types for comparison"#,
            ),
            (
                "{{eq .RepoTags .RepoTags}}",
                &plain,
                r#"template: :1:2: executing "" at <eq .RepoTags .RepoTa...>: error calling eq: non-comparable type [127.0.0.1:5000/ia/layered:1 ia/layered:1]: []interface {}"#,
            ),
            (
                "{{upper}}",
                &plain,
                r#"template: :1:2: executing "" at <upper>: wrong number of args for upper: want 1 got 0"#,
            ),
            ("{{.Os 1}}", &plain, r#"template: :1:2: executing "" at <.Os>: Os is not a method but has arguments"#),
            ("{{1 | .Os}}", &plain, r#"template: :1:6: executing "" at <.Os>: Os is not a method but has arguments"#),
            (
                "{{\"x\" 1}}",
                &plain,
                r#"template: :1:2: executing "" at <"x">: can't give argument to non-function "x""#,
            ),
            (
                "{{range .Os}}{{end}}",
                &plain,
                r#"template: :1:8: executing "" at <.Os>: range can't iterate over linux"#,
            ),
            (
                "{{.Config.Volumes.X}}",
                &plain,
                r#"template: :1:9: executing "" at <.Config.Volumes.X>: nil pointer evaluating interface {}.X"#,
            ),
            (
                "{{.Os.X}}",
                &plain,
                r#"template: :1:5: executing "" at <.Os.X>: can't evaluate field X in type interface {}"#,
            ),
        ];
        for (t, opts, want) in cases {
            let got = run(t, &doc, opts);
            assert_eq!(got.as_deref().map_err(|e| e.as_str()), Err(*want), "template {t}");
        }
    }

    #[test]
    fn parse_errors_read_like_go() {
        let cases: &[(&str, &str)] = &[
            ("{{if .X}}", "template: :1: unexpected EOF"),
            ("{{.X", "template: :1: unclosed action"),
            ("{{end}}", "template: :1: unexpected {{end}}"),
            ("{{else}}", "template: :1: unexpected {{else}}"),
            ("{{foo .X}}", "template: :1: function \"foo\" not defined"),
            ("{{$x}}", "template: :1: undefined variable \"$x\""),
            ("{{}}", "template: :1: missing value for command"),
            ("{{if}}{{end}}", "template: :1: missing value for if"),
            ("{{.X | 3}}", "template: :1: non executable command in pipeline stage 2"),
            ("{{\"abc}}", "template: :1: unterminated quoted string"),
            ("{{/* x }}", "template: :1: unclosed comment"),
            ("{{(.X}}", "template: :1: unclosed left paren"),
            ("{{.X)}}", "template: :1: unexpected right paren"),
            ("{{.X!}}", "template: :1: bad character U+0021 '!'"),
            ("{{3x}}", "template: :1: bad number syntax: \"3x\""),
            ("{{break}}", "template: :1: {{break}} outside {{range}}"),
            ("\n\n{{.X}}{{end}}", "template: :3: unexpected {{end}}"),
            ("{{range $a, $b, $c := .}}{{end}}", "template: :1: too many declarations in range"),
            ("{{with $x, $y := .}}{{end}}", "template: :1: too many declarations in with"),
            ("{{\"a\".X}}", "template: :1: unexpected . after term \"\\\"a\\\"\""),
            ("{{define \"x\"}}{{end}}", "template: :1: {{define}} is not supported"),
            ("{{if .X}}{{else}}{{else}}{{end}}", "template: :1: expected end; found {{else}}"),
            ("{{.X :}}", "template: :1: expected :="),
            ("{{range $i, $v := .X}}{{end}}{{$i}}", "template: :1: undefined variable \"$i\""),
        ];
        for (t, want) in cases {
            match Template::parse(t) {
                Ok(_) => panic!("{t}: parsed"),
                Err(e) => assert_eq!(e.to_string(), *want, "template {t}"),
            }
        }
    }

    #[test]
    fn header_mode_keeps_first_argument() {
        let headers = json!({"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID"});
        let opts = ExecOptions { header_mode: true, ..Default::default() };
        let cases: &[(&str, &str)] = &[
            ("{{.Repository}}\t{{.Tag}}", "REPOSITORY\tTAG"),
            ("{{upper .Repository}}|{{json .ID}}|{{truncate .Tag 1}}|{{pad .Tag 3 3}}", "REPOSITORY|IMAGE ID|TAG|TAG"),
            ("{{.Unknown}}", "<no value>"),
        ];
        for (t, want) in cases {
            assert_eq!(run(t, &headers, &opts).as_deref(), Ok(*want), "template {t}");
        }
    }

    #[test]
    fn fields_lists_top_level_fields() {
        let t = Template::parse("{{.Repository}}:{{.Tag}}\t{{if .ID}}{{.ID}}{{end}}{{json .Config.Env}}").unwrap();
        assert_eq!(t.fields(), vec!["Repository", "Tag", "ID", "Config"]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let inputs = [
            "{{",
            "}}",
            "{{-",
            "{{- ",
            "{{ -}}",
            "{{-}}",
            "{{.}",
            "{{$",
            "{{$.}}",
            "{{(}}",
            "{{)}}",
            "{{|}}",
            "{{.X|}}",
            "{{:=}}",
            "{{$x:=}}",
            "{{'}}",
            "{{''}}",
            "{{'ab'}}",
            "{{`}}",
            "{{\"\\q\"}}",
            "{{0x}}",
            "{{1e}}",
            "{{.0}}",
            "{{..}}",
            "{{range}}",
            "{{else if}}",
            "{{if 1}}{{else if 2}}{{end}}",
            "{{with 1}}{{else with 2}}{{.}}{{end}}",
            "{{/**/}}",
            "{{- /**/ -}}",
            "{{/* */ x}}",
            "é{{.é}}",
            "{{index}}",
            "{{slice .X 1 2 3 4}}",
            "{{printf}}",
            "{{printf 1}}",
            "{{$ := 1}}",
            "{{range $i, $v := 5}}{{end}}",
            "{{continue}}",
            "{{range .}}{{break 1}}{{end}}",
            "{{nil}}",
            "{{nil.X}}",
            "{{(nil).X}}",
        ];
        let data = json!({"X": [1, 2], "é": "e"});
        for t in inputs {
            if let Ok(tm) = Template::parse(t) {
                let _ = tm.execute(&data, &ExecOptions::default());
            }
        }
        assert_eq!(run("{{with 1}}{{else with 2}}{{.}}{{end}}", &data, &ExecOptions::default()).as_deref(), Ok(""));
        assert_eq!(run("{{with 0}}{{else with 2}}{{.}}{{end}}", &data, &ExecOptions::default()).as_deref(), Ok("2"));
    }
}
