//! Typed Dockerfile instructions, built from parser [`Node`]s with BuildKit's
//! argument and flag rules (`instructions/parse.go`, `bflag.go`).
//!
//! Values are kept **as written** (quotes, `$VAR`): expansion happens per stage with
//! the scope's environment (see [`crate::scope`]); only the structure is decided here.

use std::time::Duration;

use crate::error::go_quote;
use crate::parser::{parse_heredoc, Heredoc, Node};
use crate::Error;

/// Shell form (run through the stage's SHELL) or exec form (JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// `RUN echo hi` — the text after the flags.
    Shell(String),
    /// `RUN ["echo", "hi"]`.
    Exec(Vec<String>),
}

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base image or stage reference, unexpanded.
    pub image: String,
    /// The stage name, lowercased.
    pub alias: Option<String>,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
}

/// `RUN [--mount=…]… [--network=…] [--security=…] cmd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command.
    pub cmd: ShellOrExec,
    /// Each `--mount=` value, as written (CSV `type=cache,target=/x`), unexpanded.
    pub mounts: Vec<String>,
    /// `--network=` (default/none/host).
    pub network: Option<String>,
    /// `--security=` (sandbox/insecure).
    pub security: Option<String>,
    /// Heredocs (shell form only); run as files or fed to the shell.
    pub heredocs: Vec<Heredoc>,
}

/// COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// Source paths/URLs (heredoc sources excluded), unexpanded.
    pub srcs: Vec<String>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--from=` stage name, index or image (COPY only); never expanded.
    pub from: Option<String>,
    /// `--chown=`.
    pub chown: Option<String>,
    /// `--chmod=`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--exclude=` patterns.
    pub excludes: Vec<String>,
    /// `--checksum=` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir=` (ADD only).
    pub keep_git_dir: Option<bool>,
    /// Inline sources (`COPY <<EOF /dst`), content already tab-chomped for `<<-`.
    pub heredocs: Vec<Heredoc>,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [opts] CMD …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// Disable any inherited healthcheck (`Test: ["NONE"]`).
    None,
    /// A check. Zero durations/retries mean "not set" (inherit the default).
    Cmd {
        /// `["CMD", args…]` for exec form, `["CMD-SHELL", cmd]` for shell form.
        test: Vec<String>,
        /// `--interval`.
        interval: Duration,
        /// `--timeout`.
        timeout: Duration,
        /// `--start-period`.
        start_period: Duration,
        /// `--start-interval`.
        start_interval: Duration,
        /// `--retries`.
        retries: i32,
    },
}

/// What an instruction does, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// FROM.
    From(From),
    /// RUN.
    Run(Run),
    /// COPY.
    Copy(Copy),
    /// ADD.
    Add(Copy),
    /// ENV pairs (key, raw value; the legacy `ENV k v w` form gives one pair `k`, `v w`).
    Env(Vec<(String, String)>),
    /// ARG names with optional raw defaults.
    Arg(Vec<(String, Option<String>)>),
    /// LABEL pairs, raw.
    Label(Vec<(String, String)>),
    /// WORKDIR path.
    Workdir(String),
    /// USER spec.
    User(String),
    /// EXPOSE ports, raw, sorted as BuildKit does.
    Expose(Vec<String>),
    /// VOLUME paths (JSON or words).
    Volume(Vec<String>),
    /// CMD.
    Cmd(ShellOrExec),
    /// ENTRYPOINT (`Exec(vec![])` for a bare `ENTRYPOINT` / `ENTRYPOINT []`).
    Entrypoint(ShellOrExec),
    /// SHELL (always JSON).
    Shell(Vec<String>),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
    /// STOPSIGNAL.
    StopSignal(String),
    /// ONBUILD: the trigger text (without `ONBUILD`, heredoc bodies appended),
    /// to be parsed and run in the child image.
    Onbuild(String),
    /// MAINTAINER.
    Maintainer(String),
}

/// Instruction names, for dispatch and for [`crate::scope::expands_variables`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstructionKind {
    /// FROM
    From,
    /// RUN
    Run,
    /// COPY
    Copy,
    /// ADD
    Add,
    /// ENV
    Env,
    /// ARG
    Arg,
    /// LABEL
    Label,
    /// WORKDIR
    Workdir,
    /// USER
    User,
    /// EXPOSE
    Expose,
    /// VOLUME
    Volume,
    /// CMD
    Cmd,
    /// ENTRYPOINT
    Entrypoint,
    /// SHELL
    Shell,
    /// HEALTHCHECK
    Healthcheck,
    /// STOPSIGNAL
    StopSignal,
    /// ONBUILD
    Onbuild,
    /// MAINTAINER
    Maintainer,
}

impl InstructionKind {
    /// Look up an instruction word, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        use InstructionKind::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "from" => From,
            "run" => Run,
            "copy" => Copy,
            "add" => Add,
            "env" => Env,
            "arg" => Arg,
            "label" => Label,
            "workdir" => Workdir,
            "user" => User,
            "expose" => Expose,
            "volume" => Volume,
            "cmd" => Cmd,
            "entrypoint" => Entrypoint,
            "shell" => Shell,
            "healthcheck" => Healthcheck,
            "stopsignal" => StopSignal,
            "onbuild" => Onbuild,
            "maintainer" => Maintainer,
            _ => return None,
        })
    }

    /// The upper-case instruction word.
    pub fn name(self) -> &'static str {
        use InstructionKind::*;
        match self {
            From => "FROM",
            Run => "RUN",
            Copy => "COPY",
            Add => "ADD",
            Env => "ENV",
            Arg => "ARG",
            Label => "LABEL",
            Workdir => "WORKDIR",
            User => "USER",
            Expose => "EXPOSE",
            Volume => "VOLUME",
            Cmd => "CMD",
            Entrypoint => "ENTRYPOINT",
            Shell => "SHELL",
            Healthcheck => "HEALTHCHECK",
            StopSignal => "STOPSIGNAL",
            Onbuild => "ONBUILD",
            Maintainer => "MAINTAINER",
        }
    }
}

impl Command {
    /// The instruction's kind.
    pub fn kind(&self) -> InstructionKind {
        use InstructionKind as K;
        match self {
            Command::From(_) => K::From,
            Command::Run(_) => K::Run,
            Command::Copy(_) => K::Copy,
            Command::Add(_) => K::Add,
            Command::Env(_) => K::Env,
            Command::Arg(_) => K::Arg,
            Command::Label(_) => K::Label,
            Command::Workdir(_) => K::Workdir,
            Command::User(_) => K::User,
            Command::Expose(_) => K::Expose,
            Command::Volume(_) => K::Volume,
            Command::Cmd(_) => K::Cmd,
            Command::Entrypoint(_) => K::Entrypoint,
            Command::Shell(_) => K::Shell,
            Command::Healthcheck(_) => K::Healthcheck,
            Command::StopSignal(_) => K::StopSignal,
            Command::Onbuild(_) => K::Onbuild,
            Command::Maintainer(_) => K::Maintainer,
        }
    }
}

/// A typed instruction with its place in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// First line (1-based).
    pub line: usize,
    /// Last line (heredoc bodies included).
    pub end_line: usize,
    /// The logical line as written (continuations joined), e.g. `LABEL a=b "c d"=e`.
    pub original: String,
    /// The instruction word as written (`run`, `Run`, …).
    pub name: String,
    /// Flags as written (`--from=build`).
    pub flags: Vec<String>,
    /// What it does.
    pub command: Command,
}

impl Instruction {
    /// The instruction's kind.
    pub fn kind(&self) -> InstructionKind {
        self.command.kind()
    }
}

/// BuildKit's `BFlags`: declared flags, then parsed from the node's flag words.
struct Flags<'a> {
    args: &'a [String],
    decl: Vec<(&'static str, FlagType)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagType {
    Bool,
    Str,
    Strings,
}

#[derive(Default)]
struct FlagValues {
    vals: Vec<(&'static str, Vec<String>)>,
}

impl FlagValues {
    fn string(&self, name: &str) -> Option<String> {
        self.vals.iter().find(|(n, _)| *n == name).and_then(|(_, v)| v.last().cloned())
    }
    fn strings(&self, name: &str) -> Vec<String> {
        self.vals.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
    fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

impl<'a> Flags<'a> {
    fn new(args: &'a [String]) -> Self {
        Flags { args, decl: Vec::new() }
    }
    fn add(mut self, name: &'static str, t: FlagType) -> Self {
        self.decl.push((name, t));
        self
    }
    fn parse(&self) -> Result<FlagValues, String> {
        let mut out = FlagValues::default();
        for a in self.args {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else { return Err(format!("arg should start with -- : {a}")) };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag_name = format!("--{name}");
            let Some(&(decl_name, t)) = self.decl.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown flag: {flag_name}"));
            };
            let pos = out.vals.iter().position(|(n, _)| *n == decl_name);
            if pos.is_some() && t != FlagType::Strings {
                return Err(format!("duplicate flag specified: {flag_name}"));
            }
            let v = match t {
                FlagType::Bool => match value {
                    Some("") => return Err(format!("missing a value on flag: {flag_name}")),
                    None => "true".to_string(),
                    Some(v) => match v.to_ascii_lowercase().as_str() {
                        "true" => "true".to_string(),
                        "false" => "false".to_string(),
                        _ => return Err(format!("expecting boolean value for flag {flag_name}, not: {v}")),
                    },
                },
                FlagType::Str | FlagType::Strings => match value {
                    None => return Err(format!("missing a value on flag: {flag_name}")),
                    Some(v) => v.to_string(),
                },
            };
            match pos {
                Some(i) => out.vals[i].1.push(v),
                None => out.vals.push((decl_name, vec![v])),
            }
        }
        Ok(out)
    }
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn shell_or_exec(node: &Node) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(node.args.clone())
    } else {
        ShellOrExec::Shell(node.args.join(" "))
    }
}

fn kvps(args: &[String], cmd: &str) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                Err(format!("{cmd} names can not be blank"))
            } else {
                Ok((c[0].clone(), c[1].clone()))
            }
        })
        .collect()
}

/// A stage name must match `^[a-z][a-z0-9-_.]*$` (after lowercasing).
pub fn valid_stage_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Type one AST node. Errors carry the node's start line.
pub fn from_node(node: &Node) -> Result<Instruction, Error> {
    let command = command_from_node(node).map_err(|m| Error::parse(node.start_line, m))?;
    Ok(Instruction {
        line: node.start_line,
        end_line: node.end_line,
        original: node.original.trim().to_string(),
        name: node.cmd.clone(),
        flags: node.flags.clone(),
        command,
    })
}

fn command_from_node(node: &Node) -> Result<Command, String> {
    use FlagType::*;
    let args = &node.args;
    let flags = Flags::new(&node.flags);
    let Some(kind) = InstructionKind::from_name(&node.cmd) else {
        return Err(format!("unknown instruction: {}", node.cmd.to_uppercase()));
    };
    Ok(match kind {
        InstructionKind::Env => {
            flags.parse()?;
            Command::Env(kvps(args, "ENV")?)
        }
        InstructionKind::Label => {
            flags.parse()?;
            Command::Label(kvps(args, "LABEL")?)
        }
        InstructionKind::Maintainer => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            flags.parse()?;
            Command::Maintainer(args[0].clone())
        }
        InstructionKind::Add | InstructionKind::Copy => {
            let add = kind == InstructionKind::Add;
            let name = kind.name();
            if args.len() < 2 {
                return Err(format!(
                    "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
                ));
            }
            let mut f = flags.add("chown", Str).add("chmod", Str).add("link", Bool).add("exclude", Strings);
            f = if add {
                f.add("keep-git-dir", Bool).add("checksum", Str)
            } else {
                f.add("from", Str).add("parents", Bool)
            };
            let v = f.parse()?;
            let (srcs, dest) = args.split_at(args.len() - 1);
            let dest = dest[0].clone();
            if parse_heredoc(&dest).ok().flatten().is_some() {
                return Err(format!("{name} cannot accept a heredoc as a destination"));
            }
            let mut c = Copy {
                dest,
                from: v.string("from"),
                chown: v.string("chown"),
                chmod: v.string("chmod"),
                link: v.bool("link").unwrap_or(false),
                parents: v.bool("parents").unwrap_or(false),
                excludes: v.strings("exclude"),
                checksum: v.string("checksum"),
                keep_git_dir: v.bool("keep-git-dir"),
                ..Copy::default()
            };
            for s in srcs {
                match parse_heredoc(s).ok().flatten() {
                    Some(h) if !node.json => {
                        let found = node.heredocs.iter().find(|d| d.name == h.name);
                        let content = found.map(|d| d.content.clone()).unwrap_or_default();
                        let mut doc = Heredoc { content, ..h };
                        doc.content = doc.body();
                        c.heredocs.push(doc);
                    }
                    _ => c.srcs.push(s.clone()),
                }
            }
            if add {
                Command::Add(c)
            } else {
                Command::Copy(c)
            }
        }
        InstructionKind::From => {
            let alias = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let n = args[2].to_lowercase();
                    if !valid_stage_name(&n) {
                        return Err(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            go_quote(&args[2])
                        ));
                    }
                    Some(n)
                }
                1 => None,
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            let v = flags.add("platform", Str).parse()?;
            Command::From(From {
                image: args[0].clone(),
                alias,
                platform: v.string("platform").filter(|p| !p.is_empty()),
            })
        }
        InstructionKind::Onbuild => {
            let Some(sub) = &node.sub else { return Err(at_least_one("ONBUILD")) };
            flags.parse()?;
            let trigger = sub.cmd.trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
                "MAINTAINER" | "FROM" => return Err(format!("{trigger} isn't allowed as an ONBUILD trigger")),
                _ => {}
            }
            let mut expr = strip_onbuild(&node.original).to_string();
            for h in &node.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Command::Onbuild(expr)
        }
        InstructionKind::Workdir => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            flags.parse()?;
            Command::Workdir(args[0].clone())
        }
        InstructionKind::Run => {
            let v = flags.add("mount", Strings).add("network", Str).add("security", Str).parse()?;
            Command::Run(Run {
                cmd: shell_or_exec(node),
                mounts: v.strings("mount"),
                network: v.string("network"),
                security: v.string("security"),
                heredocs: node.heredocs.clone(),
            })
        }
        InstructionKind::Cmd => {
            flags.parse()?;
            Command::Cmd(shell_or_exec(node))
        }
        InstructionKind::Entrypoint => {
            flags.parse()?;
            if args.is_empty() {
                Command::Entrypoint(ShellOrExec::Exec(Vec::new()))
            } else {
                Command::Entrypoint(shell_or_exec(node))
            }
        }
        InstructionKind::Healthcheck => healthcheck(node, flags)?,
        InstructionKind::Expose => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            flags.parse()?;
            let mut ports = args.clone();
            ports.sort();
            Command::Expose(ports)
        }
        InstructionKind::User => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            flags.parse()?;
            Command::User(args[0].clone())
        }
        InstructionKind::Volume => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            flags.parse()?;
            let mut vols = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                vols.push(v.to_string());
            }
            Command::Volume(vols)
        }
        InstructionKind::StopSignal => {
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Command::StopSignal(args[0].clone())
        }
        InstructionKind::Arg => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut out = Vec::new();
            for a in args {
                match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((a.clone(), None)),
                }
            }
            Command::Arg(out)
        }
        InstructionKind::Shell => {
            flags.parse()?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Command::Shell(args.clone())
        }
    })
}

/// The ONBUILD trigger text: the line without a leading `ONBUILD` (any case) and blanks.
fn strip_onbuild(original: &str) -> &str {
    let t = original.trim_start();
    match t.get(..7) {
        Some(w) if w.eq_ignore_ascii_case("onbuild") => t[7..].trim_start(),
        _ => t,
    }
}

fn healthcheck(node: &Node, flags: Flags<'_>) -> Result<Command, String> {
    use FlagType::Str;
    let args = &node.args;
    let Some(typ) = args.first() else { return Err(at_least_one("HEALTHCHECK")) };
    let typ = typ.to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Command::Healthcheck(Healthcheck::None));
    }
    let v = flags
        .add("interval", Str)
        .add("timeout", Str)
        .add("start-period", Str)
        .add("start-interval", Str)
        .add("retries", Str)
        .parse()?;
    if typ != "CMD" {
        return Err(format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&typ)));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let mut test = vec![if node.json { "CMD".to_string() } else { "CMD-SHELL".to_string() }];
    if node.json {
        test.extend(rest.iter().cloned());
    } else {
        test.push(rest.join(" "));
    }
    let interval = |name: &str| -> Result<Duration, String> {
        let Some(s) = v.string(name).filter(|s| !s.is_empty()) else { return Ok(Duration::ZERO) };
        let d = parse_go_duration(&s)?;
        match d {
            0 => Ok(Duration::ZERO),
            d if d < 1_000_000 => Err(format!("Interval {} cannot be less than 1ms", go_quote(name))),
            d => Ok(Duration::from_nanos(u64::try_from(d).unwrap_or(u64::MAX))),
        }
    };
    let retries = match v.string("retries").filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => {
            let r: i32 =
                s.parse().map_err(|_| format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(&s)))?;
            if r < 0 {
                return Err(format!("--retries cannot be negative ({r})"));
            }
            r
        }
    };
    Ok(Command::Healthcheck(Healthcheck::Cmd {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    }))
}

/// Go's `time.ParseDuration`, in nanoseconds (may be negative).
pub fn parse_go_duration(s: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let fl = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..fl];
            rest = &r[fl..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let ulen = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..ulen];
        rest = &rest[ulen..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(format!("time: unknown unit {} in duration {}", go_quote(unit), go_quote(s))),
        };
        let int: i128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| invalid())? };
        let mut v = int.checked_mul(scale).ok_or_else(invalid)?;
        let mut f_scale = scale;
        for d in frac_part.bytes().take(30) {
            f_scale /= 10;
            v += i128::from(d - b'0') * f_scale;
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn one(df: &str) -> Command {
        let d = parse(&format!("FROM a\n{df}")).unwrap_or_else(|e| panic!("{df}: {e}"));
        d.instructions[1].command.clone()
    }

    fn err(df: &str) -> String {
        parse(df).unwrap_err().to_string()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn every_instruction() {
        let d = parse("ARG V=1\nFROM --platform=linux/amd64 img:${V} AS Build\n").unwrap();
        assert_eq!(d.instructions[0].command, Command::Arg(vec![("V".into(), Some("1".into()))]));
        assert_eq!(
            d.instructions[1].command,
            Command::From(From {
                image: "img:${V}".into(),
                alias: Some("build".into()),
                platform: Some("linux/amd64".into())
            })
        );
        let cases: Vec<(&str, Command)> = vec![
            (
                "RUN --mount=type=cache,target=/c --mount=type=bind,source=x,target=/y --network=none echo hi",
                Command::Run(Run {
                    cmd: ShellOrExec::Shell("echo hi".into()),
                    mounts: s(&["type=cache,target=/c", "type=bind,source=x,target=/y"]),
                    network: Some("none".into()),
                    security: None,
                    heredocs: vec![],
                }),
            ),
            (
                "run [\"echo\", \"hi\"]",
                Command::Run(Run {
                    cmd: ShellOrExec::Exec(s(&["echo", "hi"])),
                    mounts: vec![],
                    network: None,
                    security: None,
                    heredocs: vec![],
                }),
            ),
            (
                "COPY --from=build --chown=1:2 --chmod=644 --link a b /dst/",
                Command::Copy(Copy {
                    srcs: s(&["a", "b"]),
                    dest: "/dst/".into(),
                    from: Some("build".into()),
                    chown: Some("1:2".into()),
                    chmod: Some("644".into()),
                    link: true,
                    ..Copy::default()
                }),
            ),
            (
                "ADD [\"a b\", \"/c d\"]",
                Command::Add(Copy { srcs: s(&["a b"]), dest: "/c d".into(), ..Copy::default() }),
            ),
            ("ENV X=1 Y=\"two words\"", Command::Env(pairs(&[("X", "1"), ("Y", "\"two words\"")]))),
            ("ENV K some value", Command::Env(pairs(&[("K", "some value")]))),
            ("LABEL a=b \"c d\"=e", Command::Label(pairs(&[("a", "b"), ("\"c d\"", "e")]))),
            (
                "ARG A B=2 C=",
                Command::Arg(vec![("A".into(), None), ("B".into(), Some("2".into())), ("C".into(), Some("".into()))]),
            ),
            ("WORKDIR /app", Command::Workdir("/app".into())),
            ("USER nobody:nogroup", Command::User("nobody:nogroup".into())),
            ("EXPOSE 8080/tcp 53/udp", Command::Expose(s(&["53/udp", "8080/tcp"]))),
            ("VOLUME /data /logs", Command::Volume(s(&["/data", "/logs"]))),
            ("VOLUME [\"/data\"]", Command::Volume(s(&["/data"]))),
            ("CMD [\"-c\", \"echo hi\"]", Command::Cmd(ShellOrExec::Exec(s(&["-c", "echo hi"])))),
            ("CMD echo hi", Command::Cmd(ShellOrExec::Shell("echo hi".into()))),
            ("ENTRYPOINT [\"/bin/sh\"]", Command::Entrypoint(ShellOrExec::Exec(s(&["/bin/sh"])))),
            ("ENTRYPOINT", Command::Entrypoint(ShellOrExec::Exec(vec![]))),
            ("SHELL [\"/bin/sh\", \"-c\"]", Command::Shell(s(&["/bin/sh", "-c"]))),
            ("HEALTHCHECK NONE", Command::Healthcheck(Healthcheck::None)),
            (
                "HEALTHCHECK --interval=5s --timeout=1m30s --start-period=1.5s --retries=3 CMD true",
                Command::Healthcheck(Healthcheck::Cmd {
                    test: s(&["CMD-SHELL", "true"]),
                    interval: Duration::from_secs(5),
                    timeout: Duration::from_secs(90),
                    start_period: Duration::from_millis(1500),
                    start_interval: Duration::ZERO,
                    retries: 3,
                }),
            ),
            (
                "HEALTHCHECK CMD [\"curl\", \"-f\"]",
                Command::Healthcheck(Healthcheck::Cmd {
                    test: s(&["CMD", "curl", "-f"]),
                    interval: Duration::ZERO,
                    timeout: Duration::ZERO,
                    start_period: Duration::ZERO,
                    start_interval: Duration::ZERO,
                    retries: 0,
                }),
            ),
            ("STOPSIGNAL SIGTERM", Command::StopSignal("SIGTERM".into())),
            ("ONBUILD RUN echo onbuild", Command::Onbuild("RUN echo onbuild".into())),
            ("onbuild   copy . /", Command::Onbuild("copy . /".into())),
            ("MAINTAINER me <me@x>", Command::Maintainer("me <me@x>".into())),
        ];
        for (df, want) in cases {
            assert_eq!(one(df), want, "{df}");
        }
    }

    #[test]
    fn original_text_and_lines() {
        let d = parse("FROM a\n\nLABEL a=b \"c d\"=e\nRUN a \\\n  b\n").unwrap();
        assert_eq!(d.instructions[1].original, "LABEL a=b \"c d\"=e");
        assert_eq!((d.instructions[1].line, d.instructions[1].end_line), (3, 3));
        assert_eq!(d.instructions[2].original, "RUN a   b");
        assert_eq!((d.instructions[2].line, d.instructions[2].end_line), (4, 5));
        assert_eq!(d.instructions[2].kind(), InstructionKind::Run);
    }

    #[test]
    fn heredoc_instructions() {
        let Command::Run(r) = one("RUN <<-EOF bash\n\techo $X\n\tEOF\n") else { panic!() };
        assert_eq!(r.cmd, ShellOrExec::Shell("<<-EOF bash".into()));
        assert_eq!(r.heredocs[0].body(), "echo $X\n");
        let Command::Copy(c) = one("COPY <<A <<\"B\" x /dst\na $X\nA\nb $X\nB\n") else { panic!() };
        assert_eq!(c.srcs, ["x"]);
        assert_eq!(c.dest, "/dst");
        assert_eq!(c.heredocs.len(), 2);
        assert_eq!(
            (c.heredocs[0].name.as_str(), c.heredocs[0].content.as_str(), c.heredocs[0].expand),
            ("A", "a $X\n", true)
        );
        assert_eq!((c.heredocs[1].name.as_str(), c.heredocs[1].expand), ("B", false));
        let Command::Onbuild(e) = one("ONBUILD RUN <<EOF\nhi\nEOF\n") else { panic!() };
        assert_eq!(e, "RUN <<EOF\nhi\nEOF");
    }

    #[test]
    fn errors() {
        let cases: &[(&str, &str)] = &[
            ("FROM a\nRUN x\nRUNN y\n", "dockerfile parse error line 3: unknown instruction: RUNN"),
            ("FROM a\nfrobnicate\n", "dockerfile parse error line 2: unknown instruction: FROBNICATE"),
            ("", "file with no instructions"),
            ("# only\n\n", "file with no instructions"),
            ("RUN x\n", "dockerfile parse error line 1: no build stage in current context"),
            ("ARG A\nENV B=1\n", "dockerfile parse error line 2: no build stage in current context"),
            ("FROM\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM a b\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM a AS 1x\n", "dockerfile parse error line 1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"),
            ("FROM --foo=1 a\n", "dockerfile parse error line 1: unknown flag: --foo"),
            ("FROM a\nCOPY x\n", "dockerfile parse error line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
            ("FROM a\nADD x\n", "dockerfile parse error line 2: ADD requires at least two arguments, but only one was provided. Destination could not be determined"),
            ("FROM a\nADD --from=b x y\n", "dockerfile parse error line 2: unknown flag: --from"),
            ("FROM a\nCOPY --from=a --from=b x y\n", "dockerfile parse error line 2: duplicate flag specified: --from"),
            ("FROM a\nCOPY --from x y\n", "dockerfile parse error line 2: missing a value on flag: --from"),
            ("FROM a\nCOPY --link=maybe x y\n", "dockerfile parse error line 2: expecting boolean value for flag --link, not: maybe"),
            ("FROM a\nCOPY --link= x y\n", "dockerfile parse error line 2: missing a value on flag: --link"),
            ("FROM a\nCOPY x <<EOF\nhi\nEOF\n", "dockerfile parse error line 2: COPY cannot accept a heredoc as a destination"),
            ("FROM a\nENV\n", "dockerfile parse error line 2: ENV requires at least one argument"),
            ("FROM a\nENV A\n", "dockerfile parse error line 2: ENV must have two arguments"),
            ("FROM a\nENV A=1 B\n", "dockerfile parse error line 2: Syntax error - can't find = in \"B\". Must be of the form: name=value"),
            ("FROM a\nENV =1\n", "dockerfile parse error line 2: ENV names can not be blank"),
            ("FROM a\nLABEL\n", "dockerfile parse error line 2: LABEL requires at least one argument"),
            ("FROM a\nLABEL x\n", "dockerfile parse error line 2: LABEL must have two arguments"),
            ("FROM a\nARG\n", "dockerfile parse error line 2: ARG requires at least one argument"),
            ("FROM a\nARG =x\n", "dockerfile parse error line 2: ARG names can not be blank"),
            ("FROM a\nWORKDIR\n", "dockerfile parse error line 2: WORKDIR requires exactly one argument"),
            ("FROM a\nUSER\n", "dockerfile parse error line 2: USER requires exactly one argument"),
            ("FROM a\nMAINTAINER\n", "dockerfile parse error line 2: MAINTAINER requires exactly one argument"),
            ("FROM a\nSTOPSIGNAL\n", "dockerfile parse error line 2: STOPSIGNAL requires exactly one argument"),
            ("FROM a\nEXPOSE\n", "dockerfile parse error line 2: EXPOSE requires at least one argument"),
            ("FROM a\nVOLUME\n", "dockerfile parse error line 2: VOLUME requires at least one argument"),
            ("FROM a\nVOLUME [\"\"]\n", "dockerfile parse error line 2: VOLUME specified can not be an empty string"),
            ("FROM a\nSHELL /bin/sh -c\n", "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"),
            ("FROM a\nSHELL []\n", "dockerfile parse error line 2: SHELL requires at least one argument"),
            ("FROM a\nHEALTHCHECK\n", "dockerfile parse error line 2: HEALTHCHECK requires at least one argument"),
            ("FROM a\nHEALTHCHECK NONE x\n", "dockerfile parse error line 2: HEALTHCHECK NONE takes no arguments"),
            ("FROM a\nHEALTHCHECK CMD\n", "dockerfile parse error line 2: Missing command after HEALTHCHECK CMD"),
            ("FROM a\nHEALTHCHECK CONNECT TCP 7000\n", "dockerfile parse error line 2: Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"),
            ("FROM a\nHEALTHCHECK --interval=1us CMD x\n", "dockerfile parse error line 2: Interval \"interval\" cannot be less than 1ms"),
            ("FROM a\nHEALTHCHECK --timeout=5 CMD x\n", "dockerfile parse error line 2: time: missing unit in duration \"5\""),
            ("FROM a\nHEALTHCHECK --timeout=5x CMD x\n", "dockerfile parse error line 2: time: unknown unit \"x\" in duration \"5x\""),
            ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "dockerfile parse error line 2: --retries cannot be negative (-1)"),
            ("FROM a\nHEALTHCHECK --retries=x CMD x\n", "dockerfile parse error line 2: strconv.ParseInt: parsing \"x\": invalid syntax"),
            ("FROM a\nHEALTHCHECK --foo=1 CMD x\n", "dockerfile parse error line 2: unknown flag: --foo"),
            ("FROM a\nONBUILD\n", "dockerfile parse error line 2: ONBUILD requires at least one argument"),
            ("FROM a\nONBUILD ONBUILD RUN x\n", "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
            ("FROM a\nONBUILD FROM b\n", "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"),
            ("FROM a\nONBUILD maintainer b\n", "dockerfile parse error line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
            ("FROM a\nRUN --foo x\n", "dockerfile parse error line 2: unknown flag: --foo"),
            ("FROM a\nCMD --x=1 y\n", "dockerfile parse error line 2: unknown flag: --x"),
            ("FROM a\nRUN <<EOF\nnever ends\n", "dockerfile parse error line 2: unterminated heredoc"),
            ("FROM a\nCMD [\"a\", 1]\n", "dockerfile parse error line 2: when using JSON array syntax, arrays must be comprised of strings only"),
        ];
        for (df, want) in cases {
            assert_eq!(err(df), *want, "{df:?}");
        }
    }

    #[test]
    fn durations() {
        let ok: &[(&str, i128)] = &[
            ("0", 0),
            ("5s", 5_000_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("300ms", 300_000_000),
            ("2us", 2_000),
            ("2µs", 2_000),
            ("-1s", -1_000_000_000),
            (".5s", 500_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_duration(s), Ok(*want), "{s}");
        }
        for bad in ["", "s", "1", ".s", "1x", "-", "99999999999999999999999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stage_names() {
        for good in ["a", "build-1", "x.y_z"] {
            assert!(valid_stage_name(good), "{good}");
        }
        for bad in ["", "1a", "-a", "a b", "a$"] {
            assert!(!valid_stage_name(bad), "{bad}");
        }
    }
}
