//! `.dockerignore`: reading (docker's `ignorefile.ReadAll`) and matching with
//! moby/patternmatcher's rules: Go `filepath.Match` syntax (`*`, `?`, `[a-z]`, `[^a]`,
//! `\x`) plus `**` (any number of directories), `!` exceptions, the last matching
//! pattern wins, a path is excluded when it or any parent directory matches.
//!
//! Paths given to [`DockerIgnore::excludes`] are relative to the context root and use
//! `/`. Contract: never panics.

use crate::Error;

/// Read `.dockerignore` text into patterns: a leading BOM is dropped, lines starting
/// with `#` are comments, blank lines skipped, each pattern trimmed, `filepath.Clean`ed
/// and made relative (`/foo` → `foo`); `!` is kept in front.
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat.remove(0);
            }
        }
        out.push(if invert { format!("!{pat}") } else { pat });
    }
    out
}

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for el in p.split('/') {
        match el {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            e => parts.push(e),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Dir`.
fn dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean(&p[..=i]),
        None => ".".into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of non-`/`.
    Star,
    /// `?`: one non-`/`.
    One,
    /// `**/` in the middle: `(.*/)?`.
    Dirs,
    /// `**` at the end after wildcards: `.*`.
    All,
    /// `[...]`: ranges, negated with `^`.
    Class(bool, Vec<(char, char)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix(String),
    Suffix(String),
    Regex(Vec<Tok>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    text: String,
    exclusion: bool,
    kind: Kind,
    /// Pattern split at `/` (for [`DockerIgnore::can_skip_dir`]).
    dirs: Vec<String>,
}

/// Go `filepath.Match` syntax check: brackets closed, ranges ordered, no dangling `\`.
fn valid_glob(p: &str) -> bool {
    let c: Vec<char> = p.chars().collect();
    let mut i = 0;
    let esc = |i: &mut usize| -> Option<char> {
        let ch = *c.get(*i)?;
        if ch == '-' || ch == ']' {
            return None;
        }
        *i += 1;
        if ch == '\\' {
            let e = *c.get(*i)?;
            *i += 1;
            return Some(e);
        }
        Some(ch)
    };
    while i < c.len() {
        match c[i] {
            '\\' => {
                if i + 1 >= c.len() {
                    return false;
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if c.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut n = 0;
                loop {
                    if c.get(i) == Some(&']') && n > 0 {
                        i += 1;
                        break;
                    }
                    let Some(lo) = esc(&mut i) else { return false };
                    if c.get(i) == Some(&'-') {
                        i += 1;
                        let Some(hi) = esc(&mut i) else { return false };
                        if hi < lo {
                            return false;
                        }
                    }
                    n += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

fn compile(p: &str) -> Kind {
    let c: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut exact = true; // detectedType == exactMatch
    let mut kind_prefix = false;
    let mut kind_suffix = false;
    let mut regex = false;
    let mut i = 0;
    let mut iter = 0;
    while i < c.len() {
        let ch = c[i];
        i += 1;
        match ch {
            '*' if c.get(i) == Some(&'*') => {
                i += 1;
                if c.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= c.len() {
                    if exact && !regex {
                        kind_prefix = true;
                        exact = false;
                    } else {
                        toks.push(Tok::All);
                        regex = true;
                    }
                } else {
                    toks.push(Tok::Dirs);
                    regex = true;
                }
                if iter == 0 {
                    kind_suffix = true;
                    regex = false;
                    kind_prefix = false;
                    exact = false;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                regex = true;
                kind_suffix = false;
                kind_prefix = false;
            }
            '?' => {
                toks.push(Tok::One);
                regex = true;
                kind_suffix = false;
                kind_prefix = false;
            }
            '\\' => match c.get(i) {
                Some(&n) => {
                    toks.push(Tok::Lit(n));
                    i += 1;
                    regex = true;
                    kind_suffix = false;
                    kind_prefix = false;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                let mut neg = false;
                if c.get(i) == Some(&'^') {
                    neg = true;
                    i += 1;
                }
                let mut items = Vec::new();
                while i < c.len() && (c[i] != ']' || items.is_empty()) {
                    let mut lo = c[i];
                    i += 1;
                    if lo == '\\' && i < c.len() {
                        lo = c[i];
                        i += 1;
                    }
                    let mut hi = lo;
                    if c.get(i) == Some(&'-') && c.get(i + 1).is_some_and(|&x| x != ']') {
                        hi = c[i + 1];
                        i += 2;
                        if hi == '\\' && i < c.len() {
                            hi = c[i];
                            i += 1;
                        }
                    }
                    items.push((lo, hi));
                }
                i += 1; // the closing ']'
                toks.push(Tok::Class(neg, items));
                regex = true;
                kind_suffix = false;
                kind_prefix = false;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                regex = true;
                kind_suffix = false;
                kind_prefix = false;
            }
            ch => toks.push(Tok::Lit(ch)),
        }
        iter += 1;
    }
    if regex {
        Kind::Regex(toks)
    } else if kind_suffix {
        Kind::Suffix(p.get(2..).unwrap_or("").to_string())
    } else if kind_prefix {
        Kind::Prefix(p.get(..p.len().saturating_sub(2)).unwrap_or("").to_string())
    } else {
        Kind::Exact
    }
}

fn regex_match(toks: &[Tok], text: &[char]) -> bool {
    let mut dead = std::collections::HashSet::new();
    rmatch(toks, text, 0, 0, &mut dead)
}

fn rmatch(
    toks: &[Tok],
    t: &[char],
    pi: usize,
    ti: usize,
    dead: &mut std::collections::HashSet<(usize, usize)>,
) -> bool {
    if dead.contains(&(pi, ti)) {
        return false;
    }
    let r = match toks.get(pi) {
        None => ti == t.len(),
        Some(Tok::Lit(c)) => t.get(ti) == Some(c) && rmatch(toks, t, pi + 1, ti + 1, dead),
        Some(Tok::One) => t.get(ti).is_some_and(|&c| c != '/') && rmatch(toks, t, pi + 1, ti + 1, dead),
        Some(Tok::Class(neg, items)) => {
            t.get(ti).is_some_and(|&c| items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *neg)
                && rmatch(toks, t, pi + 1, ti + 1, dead)
        }
        Some(Tok::Star) => {
            let max = t[ti.min(t.len())..].iter().take_while(|&&c| c != '/').count();
            (0..=max).any(|k| rmatch(toks, t, pi + 1, ti + k, dead))
        }
        Some(Tok::All) => {
            let max = t[ti.min(t.len())..].iter().take_while(|&&c| c != '\n').count();
            (0..=max).any(|k| rmatch(toks, t, pi + 1, ti + k, dead))
        }
        Some(Tok::Dirs) => {
            rmatch(toks, t, pi + 1, ti, dead) || {
                let max = t[ti.min(t.len())..].iter().take_while(|&&c| c != '\n').count();
                (0..max).any(|k| t[ti + k] == '/' && rmatch(toks, t, pi + 1, ti + k + 1, dead))
            }
        }
    };
    if !r {
        dead.insert((pi, ti));
    }
    r
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|s| path == s),
            Kind::Regex(t) => regex_match(t, &path.chars().collect::<Vec<_>>()),
        }
    }
}

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parse `.dockerignore` text ([`read_patterns`] then [`DockerIgnore::from_patterns`]).
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::from_patterns(&read_patterns(text))
    }

    /// Compile patterns (patternmatcher's `New`): trimmed, cleaned, `!` = exception.
    /// Errors: a lone `!`, or a malformed glob.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Self, Error> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(Error::BadPattern { pattern: "!".into() });
                }
                exclusion = true;
                p = rest.to_string();
            }
            if !valid_glob(&p) || p.len() > 4096 {
                return Err(Error::BadPattern { pattern: p });
            }
            let kind = compile(&p);
            let dirs = p.split('/').map(str::to_string).collect();
            out.push(Pattern { text: p, exclusion, kind, dirs });
        }
        Ok(DockerIgnore { patterns: out })
    }

    /// The patterns, `!` in front of exceptions.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(|p| if p.exclusion { format!("!{}", p.text) } else { p.text.clone() }).collect()
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Some pattern is an exception (`!`).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// The docker CLI's rule: `.dockerignore` and the Dockerfile (path relative to the
    /// context, `/`-separated) are always sent, whatever the patterns say.
    pub fn keep_build_files(mut self, dockerfile: &str) -> Self {
        for f in [".dockerignore", dockerfile] {
            let f = clean(f.trim_start_matches('/'));
            if self.excludes(&f) {
                let kind = compile(&f);
                let dirs = f.split('/').map(str::to_string).collect();
                self.patterns.push(Pattern { text: f, exclusion: true, kind, dirs });
            }
        }
        self
    }

    /// Whether `path` (relative, `/`-separated) is excluded from the context: the last
    /// pattern matching it or one of its parent directories decides.
    pub fn excludes(&self, path: &str) -> bool {
        let path = path.strip_prefix("./").unwrap_or(path);
        let parent = dir(path);
        let parents: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(path);
            if !m && parent != "." {
                m = (0..parents.len()).any(|i| p.matches(&parents[..=i].join("/")));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walk may skip directory `dir` entirely: it is excluded and no
    /// exception could re-include anything below it (conservative: an exception with
    /// `**`, `[` or `\` that could reach below `dir` keeps it).
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        let dir = dir.strip_prefix("./").unwrap_or(dir).trim_end_matches('/');
        if !self.excludes(dir) {
            return false;
        }
        let comps: Vec<&str> = dir.split('/').collect();
        !self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            if p.text.contains("**") || p.text.contains('[') || p.text.contains('\\') {
                return true;
            }
            p.dirs.len() > comps.len()
                && p.dirs.iter().zip(&comps).all(|(pd, c)| match compile(pd) {
                    Kind::Exact => pd == c,
                    Kind::Regex(t) => regex_match(&t, &c.chars().collect::<Vec<_>>()),
                    _ => true,
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moby/patternmatcher `TestMatches` single-pattern table (data).
    const SINGLE: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "/", true),
        ("**/", "/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
        ("a\\*b", "a*b", true),
        // Extra cases.
        ("*.go", "main.go", true),
        ("*.go", "cmd/main.go", false),
        ("cmd", "cmd/main.go", true),
        ("/cmd/", "cmd/x", true),
        ("./cmd", "cmd/x", true),
        ("a/../b", "b", true),
        ("[!a]", "!", true),
        ("[!a]", "b", false),
    ];

    #[test]
    fn single_patterns() {
        for (p, path, want) in SINGLE {
            let di = DockerIgnore::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(di.excludes(path), *want, "pattern {p:?} path {path:?}");
        }
    }

    #[test]
    fn multi_patterns() {
        let cases: &[(&[&str], &str, bool)] = &[
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (&["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", true),
            (
                &["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                false,
            ),
            (&["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", false),
            (&["*", "!keep"], "keep", false),
            (&["*", "!keep"], "drop", true),
            (&["*.md", "!README*.md", "README-secret.md"], "README.md", false),
            (&["*.md", "!README*.md", "README-secret.md"], "README-secret.md", true),
            (&["!x", "x"], "x", true),
            (&["x", "!x"], "x", false),
        ];
        for (pats, path, want) in cases {
            let di = DockerIgnore::from_patterns(pats).unwrap();
            assert_eq!(di.excludes(path), *want, "{pats:?} {path}");
        }
    }

    #[test]
    fn read_all() {
        assert!(read_patterns("").is_empty());
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            read_patterns(content),
            ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"]
        );
        assert_eq!(read_patterns("\u{feff}a\r\n  b/ \n #c\n"), ["a", "b", "#c"]);
        assert_eq!(DockerIgnore::parse("!\n").unwrap_err(), Error::BadPattern { pattern: "!".into() });
    }

    #[test]
    fn bad_patterns() {
        for p in ["[", "a[", "[]", "[a-", "[z-a]", "a\\"] {
            assert!(DockerIgnore::from_patterns(&[p]).is_err(), "{p}");
        }
        for p in ["[a]", "[a-z]", "[^a]", "a\\b", "]"] {
            assert!(DockerIgnore::from_patterns(&[p]).is_ok(), "{p}");
        }
    }

    #[test]
    fn build_files_kept() {
        let di = DockerIgnore::parse("*\n").unwrap().keep_build_files("Dockerfile");
        assert!(!di.excludes("Dockerfile"));
        assert!(!di.excludes(".dockerignore"));
        assert!(di.excludes("src"));
        let di = DockerIgnore::parse("build/\n").unwrap().keep_build_files("build/Dockerfile.dev");
        assert!(!di.excludes("build/Dockerfile.dev"));
        assert!(di.excludes("build/other"));
        let di = DockerIgnore::parse("x\n").unwrap().keep_build_files("Dockerfile");
        assert_eq!(di.patterns(), ["x"]);
    }

    #[test]
    fn skip_dirs() {
        let cases: &[(&str, &str, bool)] = &[
            ("node_modules", "node_modules", true),
            ("node_modules\n!node_modules/keep", "node_modules", false),
            ("node_modules\n!node_modules/keep", "other", false),
            ("node_modules\n!src/keep", "node_modules", true),
            ("*\n!*/keep", "a", false),
            ("*\n!**/keep", "a", false),
            ("a\n!b/c", "a", true),
            ("a\n!a", "a", false),
            ("", "a", false),
        ];
        for (text, d, want) in cases {
            let di = DockerIgnore::parse(text).unwrap();
            assert_eq!(di.can_skip_dir(d), *want, "{text:?} {d}");
        }
    }

    #[test]
    fn clean_like_go() {
        let cases = [
            ("", "."),
            ("a//b", "a/b"),
            ("./a/", "a"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/./b/..", "a"),
        ];
        for (i, w) in cases {
            assert_eq!(clean(i), w, "{i}");
        }
        assert_eq!(dir("a/b/c"), "a/b");
        assert_eq!(dir("a"), ".");
        assert_eq!(dir("dir/file/"), "dir/file");
    }

    #[test]
    fn pathological_patterns_terminate() {
        let di = DockerIgnore::from_patterns(&["**/*a*a*a*a*a*a*a*a*b"]).unwrap();
        assert!(!di.excludes(&"a".repeat(200)));
    }
}
