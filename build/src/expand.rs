//! Word processing as BuildKit's `shell.Lex` does it: quote removal, escapes and
//! variable expansion (`$V ${V} ${V:-w} ${V-w} ${V:+w} ${V+w} ${V:?m} ${V?m}
//! ${V#p} ${V##p} ${V%p} ${V%%p} ${V/p/r} ${V//p/r}`), with or without word splitting.
//!
//! Contract: never panics; on malformed input it returns [`Error::Expand`] carrying
//! the word and a message worded like BuildKit's.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::Error;

/// Where variable values come from. Names are case-sensitive (Unix semantics).
pub trait EnvLookup {
    /// The value of `name`, or `None` when it is unset (an empty value is set).
    fn lookup(&self, name: &str) -> Option<String>;
}

/// An environment with nothing set.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl EnvLookup for NoEnv {
    fn lookup(&self, _: &str) -> Option<String> {
        None
    }
}

impl EnvLookup for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl EnvLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Ordered pairs; the last pair with a name wins (like a process environment).
impl EnvLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

impl EnvLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// `KEY=VALUE` strings; the last one wins; `KEY` alone means an empty value.
impl EnvLookup for [String] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter().rev().find_map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
            (k == name).then(|| v.to_string())
        })
    }
}

impl EnvLookup for Vec<String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

impl<T: EnvLookup + ?Sized> EnvLookup for &T {
    fn lookup(&self, name: &str) -> Option<String> {
        (**self).lookup(name)
    }
}

/// The outcome of [`Lex::process_word_with_matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordResult {
    /// The processed word.
    pub result: String,
    /// Variable names looked up and found.
    pub matched: BTreeSet<String>,
    /// Variable names looked up and not set.
    pub unmatched: BTreeSet<String>,
}

/// A word processor with BuildKit's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lex {
    escape: char,
    /// Keep quote characters in the output (quotes still group).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (used for heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`$X`, `${X:-w}`).
    pub skip_unset_env: bool,
}

impl Default for Lex {
    fn default() -> Self {
        Lex::new('\\')
    }
}

impl Lex {
    /// A lexer using `escape` (`\` or `` ` ``) as escape character, all options off.
    pub fn new(escape: char) -> Self {
        Lex { escape, raw_quotes: false, raw_escapes: false, skip_process_quotes: false, skip_unset_env: false }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expand `word` into one string (spaces between words are kept).
    pub fn process_word(&self, word: &str, env: &dyn EnvLookup) -> Result<String, Error> {
        Ok(self.run(word, env)?.0)
    }

    /// Expand `word` and split the result into words on unquoted white space
    /// (after expansion, so `${space}` splits but `"${space}"` does not).
    pub fn process_words(&self, word: &str, env: &dyn EnvLookup) -> Result<Vec<String>, Error> {
        Ok(self.run(word, env)?.1)
    }

    /// Like [`Lex::process_word`], also reporting which variables were looked up.
    pub fn process_word_with_matches(&self, word: &str, env: &dyn EnvLookup) -> Result<WordResult, Error> {
        let (result, _, matched, unmatched) = self.run(word, env)?;
        Ok(WordResult { result, matched, unmatched })
    }

    #[allow(clippy::type_complexity)]
    fn run(
        &self,
        word: &str,
        env: &dyn EnvLookup,
    ) -> Result<(String, Vec<String>, BTreeSet<String>, BTreeSet<String>), Error> {
        let mut sw = ShellWord {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((r, w)) => Ok((r, w, sw.matched, sw.unmatched)),
            Err(msg) => Err(Error::Expand { word: word.to_string(), msg }),
        }
    }
}

/// [`Lex::process_word`] with the default escape character `\`.
pub fn process_word(word: &str, env: &dyn EnvLookup) -> Result<String, Error> {
    Lex::default().process_word(word, env)
}

/// [`Lex::process_words`] with the default escape character `\`.
pub fn process_words(word: &str, env: &dyn EnvLookup) -> Result<Vec<String>, Error> {
    Lex::default().process_words(word, env)
}

struct ShellWord<'a> {
    depth: usize,
    lex: Lex,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn EnvLookup,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Word accumulator: splits on white space that came from unquoted text.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

/// Deepest `${…${…}…}` nesting accepted (guards the stack).
const MAX_NESTING: usize = 200;

/// Longest `${V#pattern}` pattern accepted, in elements (guards the stack).
const MAX_PATTERN: usize = 4096;

/// Shown for "end of input" where Go would print the EOF rune.
const EOF_CHAR: char = '\u{FFFD}';

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        if self.depth >= MAX_NESTING {
            return Err("substitutions nested too deeply".into());
        }
        self.depth += 1;
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' if !self.lex.skip_process_quotes => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '"' if !self.lex.skip_process_quotes => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                _ => {
                    self.next();
                    let mut ch = ch;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        match self.next() {
                            None => break,
                            Some(c) => {
                                words.add_raw_char(c);
                                ch = c;
                            }
                        }
                    } else {
                        words.add_char(ch);
                    }
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let q = self.next();
        if self.lex.raw_quotes {
            out.extend(q);
        }
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let q = self.next();
        if self.lex.raw_quotes {
            out.extend(q);
        }
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let v = self.env.lookup(name);
        if v.is_some() {
            self.matched.insert(name.to_string());
        } else {
            self.unmatched.insert(name.to_string());
        }
        v
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let first = self.next().unwrap_or(EOF_CHAR);
        let mut chs = first.to_string();
        match first {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let mut ch = first;
                let null_is_unset = first == ':';
                if null_is_unset {
                    ch = self.next().unwrap_or(EOF_CHAR);
                    chs.push(ch);
                }
                let raw = ch == '#' || ch == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() { "syntax error: missing '}'".into() } else { e });
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let empty = value.as_deref().is_none_or(|v| null_is_unset && v.is_empty());
                match ch {
                    '-' => Ok(if empty { word } else { value.unwrap_or_default() }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        None => {
                            let m = if word.is_empty() { "is not allowed to be unset" } else { &word };
                            Err(format!("{name}: {m}"))
                        }
                        Some(v) if null_is_unset && v.is_empty() => {
                            let m = if word.is_empty() { "is not allowed to be empty" } else { &word };
                            Err(format!("{name}: {m}"))
                        }
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word.clone()),
                        };
                        let value = value.unwrap_or_default();
                        if ch == '%' {
                            trim_suffix(&pat, &value, greedy)
                        } else {
                            trim_prefix(&pat, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        return Err(if self.peek().is_none() { "syntax error: missing '/' in ${}".into() } else { e });
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => return Err(if self.peek().is_none() { "syntax error: missing '}'".into() } else { e }),
                };
                let value = self.get_env(&name);
                let Some(value) = value.or_else(|| (!self.lex.skip_unset_env).then(String::new)) else {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                };
                let toks = compile_pattern(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                let text: Vec<char> = value.chars().collect();
                Ok(if all {
                    replace_all(&toks, &text, &replacement)
                } else {
                    match find(&toks, &text, 0) {
                        Some((s, e)) => {
                            let mut out: String = text[..s].iter().collect();
                            out.push_str(&replacement);
                            out.extend(&text[e..]);
                            out
                        }
                        None => value,
                    }
                })
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }
}

/// One element of a shell pattern (`*`, `?`, literal). Like Go's regexp `.`,
/// wildcards do not match a newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    One,
    Lit(char),
}

/// Parse a `${V#pattern}` pattern: `*`, `?`, `\*` `\?` `\\` escapes, and `\}` `\/`
/// (the backslash only protects the delimiter). Any other escape is an error.
fn compile_pattern(pattern: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    if chars.len() > MAX_PATTERN {
        return Err("pattern too long".into());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            '\\' => {
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                let t = chars.get(i).copied().unwrap_or(EOF_CHAR);
                i += 1;
                if !matches!(t, '*' | '?' | '\\') {
                    return Err(format!("invalid escape '\\{t}'"));
                }
                out.push(Tok::Lit(t));
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// The end of the first match of `toks` starting exactly at `start`, in the
/// preference order of a backtracking regex engine (stars greedy or lazy).
fn match_at(toks: &[Tok], text: &[char], start: usize, greedy: bool) -> Option<usize> {
    let mut memo: HashMap<(usize, usize), Option<usize>> = HashMap::new();
    match_rec(toks, text, 0, start, greedy, &mut memo)
}

fn match_rec(
    toks: &[Tok],
    text: &[char],
    pi: usize,
    ti: usize,
    greedy: bool,
    memo: &mut HashMap<(usize, usize), Option<usize>>,
) -> Option<usize> {
    let Some(tok) = toks.get(pi) else { return Some(ti) };
    match *tok {
        Tok::Lit(c) => {
            (text.get(ti) == Some(&c)).then_some(()).and_then(|_| match_rec(toks, text, pi + 1, ti + 1, greedy, memo))
        }
        Tok::One => match text.get(ti) {
            Some(&c) if c != '\n' => match_rec(toks, text, pi + 1, ti + 1, greedy, memo),
            _ => None,
        },
        Tok::Star => {
            if let Some(r) = memo.get(&(pi, ti)) {
                return *r;
            }
            let max = text[ti.min(text.len())..].iter().take_while(|&&c| c != '\n').count();
            let mut found = None;
            if greedy {
                for k in (0..=max).rev() {
                    if let Some(e) = match_rec(toks, text, pi + 1, ti + k, greedy, memo) {
                        found = Some(e);
                        break;
                    }
                }
            } else {
                for k in 0..=max {
                    if let Some(e) = match_rec(toks, text, pi + 1, ti + k, greedy, memo) {
                        found = Some(e);
                        break;
                    }
                }
            }
            memo.insert((pi, ti), found);
            found
        }
    }
}

/// Leftmost match (greedy stars) at or after `from`: `(start, end)`.
fn find(toks: &[Tok], text: &[char], from: usize) -> Option<(usize, usize)> {
    (from..=text.len()).find_map(|s| match_at(toks, text, s, true).map(|e| (s, e)))
}

/// Go's `Regexp.ReplaceAllString`: non-overlapping matches, empty matches right
/// after a previous match skipped, `$0`/`${name}`/`$$` template expansion.
fn replace_all(toks: &[Tok], text: &[char], template: &str) -> String {
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= text.len() {
        let Some((s, e)) = find(toks, text, search) else { break };
        out.extend(&text[last_end..s]);
        if e > last_end || s == 0 {
            expand_template(&mut out, template, &text[s..e]);
        }
        last_end = e;
        search = e.max(search + 1);
    }
    out.extend(&text[last_end.min(text.len())..]);
    out
}

/// Go's `Regexp.Expand` for a pattern with no capture groups.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (braced, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let n = body.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(body.len());
        let name = &body[..n];
        let ok = !name.is_empty() && (!braced || body[n..].starts_with('}'));
        if !ok {
            out.push('$');
            continue;
        }
        rest = if braced { &body[n + 1..] } else { &body[n..] };
        if name.chars().all(|c| c.is_ascii_digit()) && name.trim_start_matches('0').is_empty() {
            out.extend(matched);
        }
    }
    out.push_str(rest);
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let toks = compile_pattern(pattern).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let text: Vec<char> = value.chars().collect();
    Ok(match match_at(&toks, &text, 0, greedy) {
        Some(e) => text[e..].iter().collect(),
        None => value.to_string(),
    })
}

/// Reverse a pattern keeping `\x` escape pairs in order (`a\*c` → `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec![' '; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let o = last - i;
        if p[i] == '\\' && i != last {
            out[o - 1] = '\\';
            out[o] = p[i + 1];
            i += 2;
        } else {
            out[o] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let rp = reverse_pattern(pattern);
    let rv: String = value.chars().rev().collect();
    Ok(trim_prefix(&rp, &rv, greedy)?.chars().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// BuildKit's `frontend/dockerfile/shell/envVarTest` (Unix rows), data only.
    const ENV_VAR_TEST: &str = r#"
A|hello                    |     hello
A|he'll'o                  |     hello
A|he'llo                   |     error
A|he\'llo                  |     he'llo
A|he\\'llo                 |     error
A|abc\tdef                 |     abctdef
A|"abc\tdef"               |     abc\tdef
A|"abc\\tdef"              |     abc\tdef
A|'abc\tdef'               |     abc\tdef
A|hello\                   |     hello
A|hello\\                  |     hello\
A|"hello                   |     error
A|"hello\"                 |     error
A|"hel'lo"                 |     hel'lo
A|'hello                   |     error
A|'hello\'                 |     hello\
A|'hello\there'            |     hello\there
A|'hello\\there'           |     hello\\there
A|"''"                     |     ''
A|$.                       |     $.
A|he$1x                    |     hex
A|he$.x                    |     he$.x
U|he$pwd.                  |     he.
A|he$PWD                   |     he/home
A|he\$PWD                  |     he$PWD
A|he\\$PWD                 |     he\/home
A|"he\$PWD"                |     he$PWD
A|"he\\$PWD"               |     he\/home
A|\${}                     |     ${}
A|\${}aaa                  |     ${}aaa
A|he\${}                   |     he${}
A|he\${}xx                 |     he${}xx
A|${}                      |     error
A|${}aaa                   |     error
A|he${}                    |     error
A|he${}xx                  |     error
A|he${hi}                  |     he
A|he${hi}xx                |     hexx
A|he${PWD}                 |     he/home
A|he${.}                   |     error
A|he${XXX:-000}xx          |     he000xx
A|he${PWD:-000}xx          |     he/homexx
A|he${XXX:-$PWD}xx         |     he/homexx
A|he${XXX:-${PWD:-yyy}}xx  |     he/homexx
A|he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
A|he${XXX:YYY}             |     error
A|he${XXX?}                |     error
A|he${XXX:?}               |     error
A|he${PWD?}                |     he/home
A|he${PWD:?}               |     he/home
A|he${NULL?}               |     he
A|he${NULL:?}              |     error
A|he${XXX:+${PWD}}xx       |     hexx
A|he${PWD:+${XXX}}xx       |     hexx
A|he${PWD:+${SHELL}}xx     |     hebashxx
A|he${XXX:+000}xx          |     hexx
A|he${PWD:+000}xx          |     he000xx
A|'he${XX}'                |     he${XX}
A|"he${PWD}"               |     he/home
A|"he'$PWD'"               |     he'/home'
A|"$PWD"                   |     /home
A|'$PWD'                   |     $PWD
A|'\$PWD'                  |     \$PWD
A|'"hello"'                |     "hello"
A|he\$PWD                  |     he$PWD
A|"he\$PWD"                |     he$PWD
A|'he\$PWD'                |     he\$PWD
A|he${PWD                  |     error
A|he${PWD:=000}xx          |     error
A|he${PWD:+${PWD}:}xx      |     he/home:xx
A|he${XXX:-\$PWD:}xx       |     he$PWD:xx
A|he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
A|안녕하세요                 |     안녕하세요
A|안'녕'하세요               |     안녕하세요
A|안'녕하세요                |     error
A|안녕\'하세요               |     안녕'하세요
A|안\\'녕하세요              |     error
A|안녕\t하세요               |     안녕t하세요
A|"안녕\t하세요"             |     안녕\t하세요
A|'안녕\t하세요              |     error
A|안녕하세요\                |     안녕하세요
A|안녕하세요\\               |     안녕하세요\
A|"안녕하세요                |     error
A|"안녕하세요\"              |     error
A|"안녕'하세요"              |     안녕'하세요
A|'안녕하세요                |     error
A|'안녕하세요\'              |     안녕하세요\
A|안녕$1x                    |     안녕x
A|안녕$.x                    |     안녕$.x
U|안녕$pwd.                  |     안녕.
A|안녕$PWD                   |     안녕/home
A|안녕\$PWD                  |     안녕$PWD
A|안녕\\$PWD                 |     안녕\/home
A|안녕\${}                   |     안녕${}
A|안녕\${}xx                 |     안녕${}xx
A|안녕${}                    |     error
A|안녕${}xx                  |     error
A|안녕${hi}                  |     안녕
A|안녕${hi}xx                |     안녕xx
A|안녕${PWD}                 |     안녕/home
A|안녕${.}                   |     error
A|안녕${XXX:-000}xx          |     안녕000xx
A|안녕${PWD:-000}xx          |     안녕/homexx
A|안녕${XXX:-$PWD}xx         |     안녕/homexx
A|안녕${XXX:-${PWD:-yyy}}xx  |     안녕/homexx
A|안녕${XXX:-${YYY:-yyy}}xx  |     안녕yyyxx
A|안녕${XXX:YYY}             |     error
A|안녕${XXX:+${PWD}}xx       |     안녕xx
A|안녕${PWD:+${XXX}}xx       |     안녕xx
A|안녕${PWD:+${SHELL}}xx     |     안녕bashxx
A|안녕${XXX:+000}xx          |     안녕xx
A|안녕${PWD:+000}xx          |     안녕000xx
A|'안녕${XX}'                |     안녕${XX}
A|"안녕${PWD}"               |     안녕/home
A|"안녕'$PWD'"               |     안녕'/home'
A|'"안녕"'                   |     "안녕"
A|안녕\$PWD                  |     안녕$PWD
A|"안녕\$PWD"                |     안녕$PWD
A|'안녕\$PWD'                |     안녕\$PWD
A|안녕${PWD                  |     error
A|안녕${PWD:=000}xx          |     error
A|안녕${PWD:+${PWD}:}xx      |     안녕/home:xx
A|안녕${XXX:-\$PWD:}xx       |     안녕$PWD:xx
A|안녕${XXX:-\${PWD}z}xx     |     안녕${PWDz}xx
A|$KOREAN                    |     한국어
A|안녕$KOREAN                |     안녕한국어
A|${{aaa}                   |     error
A|${aaa}}                   |     }
A|${aaa                     |     error
A|${{aaa:-bbb}              |     error
A|${aaa:-bbb}}              |     bbb}
A|${aaa:-bbb                |     error
A|${aaa:-bbb}               |     bbb
A|${aaa:-${bbb:-ccc}}       |     ccc
A|${aaa:-bbb ${foo}         |     error
A|${aaa:-bbb {foo}          |     bbb {foo
A|${:}                      |     error
A|${:-bbb}                  |     error
A|${:+bbb}                  |     error
A|$1                        |
A|${1}                      |
A|${1:+bbb}                 |
A|${1:-bbb}                 |     bbb
A|$2                        |
A|${2}                      |
A|${2:+bbb}                 |
A|${2:-bbb}                 |     bbb
A|$3                        |
A|${3}                      |
A|${3:+bbb}                 |
A|${3:-bbb}                 |     bbb
A|$4                        |
A|${4}                      |
A|${4:+bbb}                 |
A|${4:-bbb}                 |     bbb
A|$5                        |
A|${5}                      |
A|${5:+bbb}                 |
A|${5:-bbb}                 |     bbb
A|$6                        |
A|${6}                      |
A|${6:+bbb}                 |
A|${6:-bbb}                 |     bbb
A|$7                        |
A|${7}                      |
A|${7:+bbb}                 |
A|${7:-bbb}                 |     bbb
A|$8                        |
A|${8}                      |
A|${8:+bbb}                 |
A|${8:-bbb}                 |     bbb
A|$9                        |
A|${9}                      |
A|${9:+bbb}                 |
A|${9:-bbb}                 |     bbb
A|$999                      |
A|${999}                    |
A|${999:+bbb}               |
A|${999:-bbb}               |     bbb
A|$999aaa                   |     aaa
A|${999}aaa                 |     aaa
A|${999:+bbb}aaa            |     aaa
A|${999:-bbb}aaa            |     bbbaaa
A|$001                      |
A|${001}                    |
A|${001:+bbb}               |
A|${001:-bbb}               |     bbb
A|$001aaa                   |     aaa
A|${001}aaa                 |     aaa
A|${001:+bbb}aaa            |     aaa
A|${001:-bbb}aaa            |     bbbaaa
A|$@                        |
A|${@}                      |
A|${@:+bbb}                 |
A|${@:-bbb}                 |     bbb
A|$@@@                      |     @@
A|$@aaa                     |     aaa
A|${@}aaa                   |     aaa
A|${@:+bbb}aaa              |     aaa
A|${@:-bbb}aaa              |     bbbaaa
A|$*                        |
A|${*}                      |
A|${*:+bbb}                 |
A|${*:-bbb}                 |     bbb
A|$#                        |
A|${#}                      |
A|${#:+bbb}                 |
A|${#:-bbb}                 |     bbb
A|$?                        |
A|${?}                      |
A|${?:+bbb}                 |
A|${?:-bbb}                 |     bbb
A|$-                        |
A|${-}                      |
A|${-:+bbb}                 |
A|${-:-bbb}                 |     bbb
A|$$                        |
A|${$}                      |
A|${$:+bbb}                 |
A|${$:-bbb}                 |     bbb
A|$!                        |
A|${!}                      |
A|${!:+bbb}                 |
A|${!:-bbb}                 |     bbb
A|$0                        |
A|${0}                      |
A|${0:+bbb}                 |
A|${0:-bbb}                 |     bbb
"#;

    #[test]
    fn env_var_table() {
        let e = env(&[("PWD", "/home"), ("SHELL", "bash"), ("KOREAN", "한국어"), ("NULL", "")]);
        let mut n = 0;
        for (lineno, line) in ENV_VAR_TEST.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split('|').collect();
            assert_eq!(parts.len(), 3, "line {lineno}");
            let (src, want) = (parts[1].trim(), parts[2].trim());
            let got = process_word(src, &e);
            if want == "error" {
                assert!(got.is_err(), "line {lineno}: {src:?} gave {got:?}");
            } else {
                assert_eq!(got.as_deref(), Ok(want), "line {lineno}: {src:?}");
            }
            n += 1;
        }
        assert!(n > 200);
    }

    /// BuildKit's `frontend/dockerfile/shell/wordsTest`, data only.
    const WORDS_TEST: &str = "hello | hello
hello${hi}bye | hellobye
ENV hi=hi
hello${hi}bye | hellohibye
ENV space=abc  def
hello${space}bye | helloabc,defbye
hello\"${space}\"bye | helloabc  defbye
hello \"${space}\"bye | hello,abc  defbye
ENV leading=  ab c
hello${leading}def | hello,ab,cdef
hello\"${leading}\" def | hello  ab c,def
hello\"${leading}\" | hello  ab c
hello${leading} | hello,ab,c
ENV trailing=ab c   
hello${trailing} | helloab,c
hello${trailing}d | helloab,c,d
hello\"${trailing}\"d | helloab c   d
hel\"lo${trailing}\" | helloab c   
hello\" there  \" | hello there  
hello there     | hello,there
hello\\ there | hello there
hello\" there | error
hello\\\" there | hello\",there
hello\"\\\\there\" | hello\\there
hello\"\\there\" | hello\\there
hello'\\\\there' | hello\\\\there
hello'\\there' | hello\\there
hello'$there' | hello$there
";

    #[test]
    fn words_table() {
        let mut envs: Vec<String> = Vec::new();
        let mut n = 0;
        for line in WORDS_TEST.lines() {
            if let Some(rest) = line.strip_prefix("ENV ") {
                envs.push(rest.trim_start_matches(' ').to_string());
                continue;
            }
            let (test, want) = line.split_once('|').unwrap();
            let want: Vec<&str> = want.trim_start_matches(' ').split(',').collect();
            let got = process_words(test.trim(), &envs).unwrap_or_else(|_| vec!["error".into()]);
            assert_eq!(got, want, "{test:?}");
            n += 1;
        }
        assert_eq!(n, 24);
    }

    struct Case {
        input: &'static str,
        env: &'static [(&'static str, &'static str)],
        want: Option<&'static str>,
    }

    const fn ok(input: &'static str, env: &'static [(&'static str, &'static str)], want: &'static str) -> Case {
        Case { input, env, want: Some(want) }
    }
    const fn err(input: &'static str, env: &'static [(&'static str, &'static str)]) -> Case {
        Case { input, env, want: None }
    }

    const FB: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];

    /// Modifier cases from BuildKit's lex_test.go `TestProcessWithMatches` (data).
    const MODIFIERS: &[Case] = &[
        ok("x", &[("DUMMY", "dummy")], "x"),
        ok("x ${UNUSED}", &[("DUMMY", "dummy")], "x "),
        ok("x ${FOO}", &[("FOO", "y")], "x y"),
        ok("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", FB, "xxx  ccc"),
        ok("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", FB, "xxx bbb ccc"),
        ok("${FOO:-}", FB, "xxx"),
        ok("${FOO:-}", &[], ""),
        ok("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", FB, "aaa bbb "),
        ok("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", FB, "aaa  "),
        ok("${FOO?aaa}", FB, "xxx"),
        ok("${BAR?bbb}", FB, ""),
        err("${BAZ?ccc}", FB),
        ok("${FOO:?aaa}", FB, "xxx"),
        err("${BAR:?bbb}", FB),
        err("${BAZ:?ccc}", FB),
        err("${BAZ:?}", FB),
        err("${FOO=aaa}", FB),
        err("${FOO=:aaa}", FB),
        err("${FOO=}", &[]),
        ok("${FOO#()[]{\\}^$.\\*\\?|\\\\}", &[("FOO", "()[]{}^$.*?|\\x")], "x"),
        ok("${FOO%%\\**}", &[("FOO", "xx**")], "xx"),
        ok("${FOO#*x*y}", &[("FOO", "xxyy")], "y"),
        ok("${FOO#*}", &[("FOO", "xxyy")], "xxyy"),
        ok("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], "xyy"),
        ok("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], "xxyy"),
        ok("${FOO#}", &[("FOO", "xxyy")], "xxyy"),
        ok("${FOO##*x}", &[("FOO", "xxyy")], "yy"),
        ok("${FOO##}", &[("FOO", "xxyy")], "xxyy"),
        ok("${FOO#?\\?}", &[("FOO", "???y")], "?y"),
        ok("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], ".xxyy."),
        ok("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a"),
        ok("${FOO%}", &[("FOO", "xxyy")], "xxyy"),
        ok("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], "xxyy"),
        ok("${FOO%y}", &[("FOO", "xxyy")], "xxy"),
        ok("${FOO%%y*}", &[("FOO", "xxyy")], "xx"),
        ok("${FOO%y*}", &[("FOO", "xxyy")], "xxy"),
        err("${FOO:#}", &[]),
        err("${FOO:##}", &[]),
        err("${FOO:%}", &[]),
        err("${FOO:%%}", &[]),
        err("${FOO#\\x}", &[("FOO", "x")]),
        ok(
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            "/foo.*/*.txt - /foo..*.txt",
        ),
        ok(
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            "/tmp/bar.txt - /bar.txt",
        ),
        ok(
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("REPLACEMENT", "/")],
            "/foo/b/c.txt - /foo/c.txt",
        ),
        ok(
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[("FOO", "http://google.de"), ("NEEDLE", "http://"), ("REPLACEMENT", "https://")],
            "https://google.de",
        ),
        ok("${FOO//\\//\\/}", &[("FOO", "/tmp/foo.txt")], "\\/tmp\\/foo.txt"),
        ok("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], "wwxxyy"),
        err("${FOO//ww}", &[("FOO", "xxyy")]),
        err("${FOO//}", &[("FOO", "xxyy")]),
        ok("${FOO///}", &[("FOO", "xxyy")], "xxyy"),
        ok("${FOO///}", &[], ""),
        ok("${FOO//x/}", &[("FOO", "xaxbx")], "ab"),
        ok("${FOO/*/z}", &[("FOO", "abc")], "z"),
        ok("${FOO//?/-}", &[("FOO", "abc")], "---"),
        ok("${VAR:?message here$ARG}", &[("VAR", "plain"), ("ARG", "x")], "plain"),
        err("${VAR:?message here$ARG}", &[("VAR", ""), ("ARG", "x")]),
        err("${VAR:?message here$ARG}", &[("ARG", "x")]),
        ok("${VAR?message here$ARG}", &[("VAR", "plain"), ("ARG", "x")], "plain"),
        ok("${VAR?message here$ARG}", &[("VAR", ""), ("ARG", "x")], ""),
        err("${VAR?message here$ARG}", &[("ARG", "x")]),
        ok(
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")],
            "something-v1.2.3.linux-arm-v7.tar.gz",
        ),
        ok(
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm64"), ("TARGETVARIANT", "")],
            "something-v1.2.3.linux-arm64.tar.gz",
        ),
        ok(
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm64")],
            "something-v1.2.3.linux-arm64.tar.gz",
        ),
    ];

    #[test]
    fn modifier_table() {
        for c in MODIFIERS {
            let got = process_word(c.input, &env(c.env));
            match c.want {
                Some(w) => assert_eq!(got.as_deref(), Ok(w), "{}", c.input),
                None => assert!(got.is_err(), "{} gave {got:?}", c.input),
            }
        }
    }

    #[test]
    fn error_messages() {
        let e = env(&[("NULL", "")]);
        let cases = [
            ("${X:?}", "failed to process \"${X:?}\": X: is not allowed to be unset"),
            ("${NULL:?}", "failed to process \"${NULL:?}\": NULL: is not allowed to be empty"),
            ("${X?boom}", "failed to process \"${X?boom}\": X: boom"),
            ("${X:=y}", "failed to process \"${X:=y}\": unsupported modifier (:=) in substitution"),
            ("${}", "failed to process \"${}\": syntax error: bad substitution"),
            ("${X", "failed to process \"${X\": unsupported modifier (\u{FFFD}) in substitution"),
            ("${X:-a", "failed to process \"${X:-a\": syntax error: missing '}'"),
            ("'a", "failed to process \"'a\": unexpected end of statement while looking for matching single-quote"),
            ("\"a", "failed to process \"\\\"a\": unexpected end of statement while looking for matching double-quote"),
            ("${X/a", "failed to process \"${X/a\": syntax error: missing '/' in ${}"),
        ];
        for (w, want) in cases {
            assert_eq!(process_word(w, &e).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn matches_reported() {
        let r = Lex::default().process_word_with_matches("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &env(FB)).unwrap();
        assert_eq!(r.result, "xxx bbb ccc");
        assert_eq!(r.matched.iter().collect::<Vec<_>>(), ["BAR", "FOO"]);
        assert_eq!(r.unmatched.iter().collect::<Vec<_>>(), ["BAZ"]);
    }

    #[test]
    fn options() {
        let mut l = Lex::new('`');
        assert_eq!(l.process_word("a`$b\\c", &NoEnv).unwrap(), "a$b\\c");
        l.skip_unset_env = true;
        assert_eq!(l.process_word("$X ${Y} ${Z:-d}", &NoEnv).unwrap(), "$X ${Y} ${Z:-d}");
        l.raw_quotes = true;
        assert_eq!(l.process_words("'a b' \"c\"", &NoEnv).unwrap(), ["'a b'", "\"c\""]);
        let l = Lex { skip_process_quotes: true, ..Lex::default() };
        assert_eq!(l.process_word("echo '$A' \"$A\"", &env(&[("A", "1")])).unwrap(), "echo '1' \"1\"");
        assert_eq!(process_words("a <<  EOF b", &NoEnv).unwrap(), ["a", "<<  EOF", "b"]);
        assert_eq!(process_words("\"\" x ''", &NoEnv).unwrap(), ["x"]);
    }

    #[test]
    fn pattern_helpers() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
        assert_eq!(reverse_pattern(""), "");
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(compile_pattern(bad).is_err(), "{bad}");
        }
        let mut out = String::new();
        expand_template(&mut out, "<$0|${0}|$$|$x|${|$>", &['m']);
        assert_eq!(out, "<m|m|$||${|$>");
    }

    #[test]
    fn no_panic_on_odd_input() {
        let e = env(&[("A", "a\nb*c")]);
        for w in [
            "$",
            "${",
            "${A",
            "${A:",
            "${A/",
            "${A//",
            "${A#",
            "${A%%",
            "\\",
            "\"\\",
            "${A/*/}",
            "${A//\n/x}",
            "${A%\\",
        ] {
            let _ = process_word(w, &e);
            let _ = process_words(w, &e);
        }
        assert_eq!(process_word("${A/*/-}", &e).unwrap(), "-\nb*c");
    }
}
