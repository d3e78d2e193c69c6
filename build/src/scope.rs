//! ARG/ENV scoping.
//!
//! - Meta ARGs (before the first FROM) are visible only in FROM lines ([`MetaArgs`]),
//!   unless a stage re-declares them: `ARG NAME` without default then takes the meta
//!   value (or the `--build-arg` value).
//! - `--build-arg` overrides ARG defaults; a build arg for an undeclared ARG is unused.
//! - ARG values are environment for RUN and for expansion but never enter the image;
//!   ENV enters both. With the same name ENV wins over an earlier ARG. In the default
//!   [`Flavor::BuildKit`] the later of the two wins (BuildKit keeps one env list); in
//!   [`Flavor::Legacy`] (docker 20.10 classic builder) ENV always wins.
//! - Expanded instructions (BuildKit's `Expand` methods): ADD, COPY (not `--from`),
//!   ENV, EXPOSE (with word splitting), LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, the
//!   ARG default, FROM (meta ARGs only), RUN `--mount` values and heredoc bodies of
//!   COPY/ADD. Not expanded: RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK commands (the shell
//!   does it), ONBUILD (expanded when triggered), MAINTAINER.

use std::collections::BTreeMap;

use crate::expand::{EnvLookup, Lex, NoEnv};
use crate::instruction::{Command, Copy, From, Instruction, InstructionKind, Run};
use crate::Error;

/// Which builder's scoping rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// BuildKit (default).
    #[default]
    BuildKit,
    /// docker 20.10's classic builder.
    Legacy,
}

/// Proxy build args Docker accepts without an ARG declaration (legacy builder keeps
/// them out of the history prefix unless declared).
pub const BUILTIN_PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether an instruction's arguments go through variable expansion (see module docs;
/// RUN counts as false: only its `--mount` values are expanded).
pub fn expands_variables(kind: InstructionKind) -> bool {
    use InstructionKind::*;
    matches!(kind, Add | Copy | Env | Expose | From | Label | StopSignal | User | Volume | Workdir | Arg)
}

/// Values of the meta ARGs, for FROM lines and for re-declaration in stages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaArgs {
    values: Vec<(String, String)>,
}

impl MetaArgs {
    /// Evaluate meta ARG instructions in order: a `--build-arg` value wins, else the
    /// default expanded with the meta ARGs before it. `builtin` holds predefined
    /// values (e.g. `TARGETPLATFORM`) visible in FROM and overridable by an ARG.
    pub fn new(
        meta_args: &[Instruction],
        build_args: &BTreeMap<String, String>,
        builtin: &[(String, String)],
        lex: &Lex,
    ) -> Result<MetaArgs, Error> {
        let mut values: Vec<(String, String)> = builtin.to_vec();
        for inst in meta_args {
            let Command::Arg(args) = &inst.command else { continue };
            for (k, default) in args {
                let v = match (build_args.get(k), default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(d)) => Some(lex.process_word(d, &values).map_err(|e| e.at_line(inst.line))?),
                    (None, None) => None,
                };
                if let Some(v) = v {
                    set(&mut values, k, v);
                }
            }
        }
        Ok(MetaArgs { values })
    }

    /// The value of meta ARG `name` (unset when declared without default or build arg).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// All set meta ARGs.
    pub fn values(&self) -> &[(String, String)] {
        &self.values
    }

    /// Expand a FROM's image and platform with the meta ARGs. An image that expands to
    /// nothing is an error (`base name (${X}) should not be blank`).
    pub fn expand_from(&self, from: &From, lex: &Lex) -> Result<(String, Option<String>), Error> {
        let image = lex.process_word(&from.image, &self.values)?;
        if image.is_empty() {
            return Err(Error::Stage(format!("base name ({}) should not be blank", from.image)));
        }
        let platform = match &from.platform {
            Some(p) => Some(lex.process_word(p, &self.values)?).filter(|p| !p.is_empty()),
            None => None,
        };
        Ok((image, platform))
    }
}

fn set(list: &mut Vec<(String, String)>, k: &str, v: String) {
    match list.iter_mut().find(|(key, _)| key == k) {
        Some(e) => e.1 = v,
        None => list.push((k.to_string(), v)),
    }
}

fn get<'a>(list: &'a [(String, String)], k: &str) -> Option<&'a str> {
    list.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// The variables of one stage as its instructions are evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageScope {
    flavor: Flavor,
    build_args: BTreeMap<String, String>,
    meta: MetaArgs,
    /// The image config's Env (base image + ENV).
    image_env: Vec<(String, String)>,
    /// Declared ARGs in declaration order with their values (None: declared, unset).
    args: Vec<(String, Option<String>)>,
    /// BuildKit's single state env: image env and set ARGs, later settings replace.
    state_env: Vec<(String, String)>,
}

impl StageScope {
    /// A stage starting from an image whose config has `base_env` (`KEY`,`VALUE` pairs).
    pub fn new(
        flavor: Flavor,
        base_env: Vec<(String, String)>,
        build_args: BTreeMap<String, String>,
        meta: MetaArgs,
    ) -> Self {
        StageScope { flavor, build_args, meta, state_env: base_env.clone(), image_env: base_env, args: Vec::new() }
    }

    /// A stage `FROM <parent stage>`: the parent's env; BuildKit also keeps the
    /// parent's declared ARGs (legacy starts without ARGs).
    pub fn from_parent(parent: &StageScope) -> Self {
        let mut s = parent.clone();
        if s.flavor == Flavor::Legacy {
            s.args.clear();
            s.state_env = s.image_env.clone();
        }
        s
    }

    /// The image config's environment.
    pub fn image_env(&self) -> &[(String, String)] {
        &self.image_env
    }

    /// The environment used to expand the current instruction's words.
    pub fn expansion_env(&self) -> Vec<(String, String)> {
        match self.flavor {
            Flavor::BuildKit => self.state_env.clone(),
            Flavor::Legacy => {
                let mut env = self.image_env.clone();
                for (k, v) in &self.args {
                    if let (Some(v), None) = (v, get(&self.image_env, k)) {
                        env.push((k.clone(), v.clone()));
                    }
                }
                env
            }
        }
    }

    /// The environment of a RUN step, `KEY=VALUE` (image env plus ARGs in scope).
    pub fn run_env(&self) -> Vec<String> {
        self.expansion_env().into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Declared ARGs and their values as recorded for RUN history and cache keys.
    /// BuildKit: declaration order, each name once, value as RUN sees it (empty when
    /// unset). Legacy: sorted, only ARGs with a value and not shadowed by ENV.
    pub fn run_build_args(&self) -> Vec<(String, String)> {
        match self.flavor {
            Flavor::BuildKit => {
                let mut out: Vec<(String, String)> = Vec::new();
                for (k, v) in &self.args {
                    let v = get(&self.state_env, k).map(str::to_string).or_else(|| v.clone()).unwrap_or_default();
                    set(&mut out, k, v);
                }
                out
            }
            Flavor::Legacy => {
                let mut out: Vec<(String, String)> = Vec::new();
                for (k, v) in &self.args {
                    if let (Some(v), None) = (v, get(&self.image_env, k)) {
                        set(&mut out, k, v.clone());
                    }
                }
                out.sort();
                out
            }
        }
    }

    /// The `|N K=V …` prefix of RUN history entries, or "" when no ARG is in scope.
    pub fn history_prefix(&self) -> String {
        let args = self.run_build_args();
        if args.is_empty() {
            return String::new();
        }
        let mut s = format!("|{}", args.len());
        for (k, v) in args {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    /// Set an ENV variable (already expanded).
    pub fn set_env(&mut self, k: &str, v: &str) {
        set(&mut self.image_env, k, v.to_string());
        set(&mut self.state_env, k, v.to_string());
    }

    /// Declare `ARG name[=default]` (default unexpanded). Value: the `--build-arg`,
    /// else the expanded default, else (no default) the meta ARG's value, else unset.
    /// Returns the value recorded (`ARG name=value` in history).
    pub fn declare_arg(&mut self, name: &str, default: Option<&str>, lex: &Lex) -> Result<Option<String>, Error> {
        let value = match (self.build_args.get(name), default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(d)) => Some(lex.process_word(d, &self.expansion_env())?),
            (None, None) => self.meta.get(name).map(str::to_string),
        };
        if let Some(v) = &value {
            set(&mut self.state_env, name, v.clone());
        }
        match self.args.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = value.clone(),
            None => self.args.push((name.to_string(), value.clone())),
        }
        Ok(value)
    }

    /// Evaluate one instruction of the stage: expand its words with the current scope,
    /// apply ENV/ARG to the scope, and return the expanded command. Errors carry the
    /// instruction's line.
    pub fn step(&mut self, inst: &Instruction, lex: &Lex) -> Result<Command, Error> {
        self.step_inner(inst, lex).map_err(|e| e.at_line(inst.line))
    }

    fn step_inner(&mut self, inst: &Instruction, lex: &Lex) -> Result<Command, Error> {
        let env = self.expansion_env();
        let w = |s: &str| lex.process_word(s, &env);
        Ok(match &inst.command {
            Command::Env(pairs) => {
                let mut out = Vec::new();
                for (k, v) in pairs {
                    // Each pair sees the ones before it on the same line.
                    let env = self.expansion_env();
                    let (k, v) = (lex.process_word(k, &env)?, lex.process_word(v, &env)?);
                    self.set_env(&k, &v);
                    out.push((k, v));
                }
                Command::Env(out)
            }
            Command::Arg(args) => {
                let mut out = Vec::new();
                for (k, d) in args {
                    let v = self.declare_arg(k, d.as_deref(), lex)?;
                    out.push((k.clone(), v));
                }
                Command::Arg(out)
            }
            Command::Label(pairs) => {
                Command::Label(pairs.iter().map(|(k, v)| Ok((w(k)?, w(v)?))).collect::<Result<_, Error>>()?)
            }
            Command::Copy(c) => Command::Copy(expand_copy(c, lex, &env)?),
            Command::Add(c) => Command::Add(expand_copy(c, lex, &env)?),
            Command::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(lex.process_words(p, &env)?);
                }
                Command::Expose(out)
            }
            Command::Volume(v) => Command::Volume(v.iter().map(|s| w(s)).collect::<Result<_, _>>()?),
            Command::Workdir(p) => Command::Workdir(w(p)?),
            Command::User(u) => Command::User(w(u)?),
            Command::StopSignal(s) => Command::StopSignal(w(s)?),
            Command::Run(r) => Command::Run(Run {
                mounts: r.mounts.iter().map(|m| expand_mount(m, lex, &env)).collect::<Result<_, _>>()?,
                ..r.clone()
            }),
            other => other.clone(),
        })
    }
}

fn expand_copy(c: &Copy, lex: &Lex, env: &dyn EnvLookup) -> Result<Copy, Error> {
    let w = |s: &str| lex.process_word(s, env);
    let opt = |o: &Option<String>| o.as_deref().map(w).transpose();
    if let Some(from) = &c.from {
        if lex.process_word(from, &NoEnv)? != *from {
            return Err(Error::Stage(
                "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround".into(),
            ));
        }
    }
    let mut raw = Lex::new('\\');
    raw.skip_process_quotes = true;
    let mut heredocs = c.heredocs.clone();
    for h in heredocs.iter_mut().filter(|h| h.expand) {
        h.content = raw.process_word(&h.content, env)?;
    }
    Ok(Copy {
        srcs: c.srcs.iter().map(|s| w(s)).collect::<Result<_, _>>()?,
        dest: w(&c.dest)?,
        chown: opt(&c.chown)?,
        chmod: opt(&c.chmod)?,
        checksum: opt(&c.checksum)?,
        heredocs,
        ..c.clone()
    })
}

/// Expand the values of a `--mount` CSV spec (`type=cache,target=$D`).
fn expand_mount(spec: &str, lex: &Lex, env: &dyn EnvLookup) -> Result<String, Error> {
    let fields: Result<Vec<String>, Error> = spec
        .split(',')
        .map(|f| match f.split_once('=') {
            Some((k, v)) => Ok(format!("{k}={}", lex.process_word(v, env)?)),
            None => Ok(f.to_string()),
        })
        .collect();
    Ok(fields?.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::Stages;

    fn ba(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Run every instruction of the last stage; return (scope, expanded commands).
    fn eval(df: &str, flavor: Flavor, args: &[(&str, &str)], base: &[(&str, &str)]) -> (StageScope, Vec<Command>) {
        let lex = Lex::default();
        let s = Stages::split(&crate::parse(df).unwrap()).unwrap();
        let meta = MetaArgs::new(&s.meta_args, &ba(args), &[], &lex).unwrap();
        let base = base.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut scope = StageScope::new(flavor, base, ba(args), meta);
        let stage = s.stages.last().unwrap();
        let cmds = stage.instructions.iter().map(|i| scope.step(i, &lex).unwrap()).collect();
        (scope, cmds)
    }

    #[test]
    fn meta_args_only_in_from() {
        let lex = Lex::default();
        let df = "ARG BASE=busybox\nARG TAG\nARG X=${BASE}:1\nFROM ${BASE}:${TAG:-latest}\nRUN echo $BASE\n";
        let s = Stages::split(&crate::parse(df).unwrap()).unwrap();
        let meta = MetaArgs::new(&s.meta_args, &ba(&[]), &[], &lex).unwrap();
        assert_eq!(meta.get("X"), Some("busybox:1"));
        assert_eq!(meta.get("TAG"), None);
        assert_eq!(meta.expand_from(&s.stages[0].from, &lex).unwrap().0, "busybox:latest");
        let meta2 = MetaArgs::new(&s.meta_args, &ba(&[("TAG", "1.36"), ("BASE", "alpine")]), &[], &lex).unwrap();
        assert_eq!(meta2.expand_from(&s.stages[0].from, &lex).unwrap().0, "alpine:1.36");
        let (scope, _) = eval(df, Flavor::BuildKit, &[], &[]);
        assert!(scope.run_env().iter().all(|e| !e.starts_with("BASE=")));
        assert_eq!(scope.history_prefix(), "");
    }

    #[test]
    fn redeclared_meta_arg_inherits() {
        let (scope, cmds) = eval("ARG BASE=busybox\nFROM scratch\nARG BASE\nENV B=$BASE\n", Flavor::BuildKit, &[], &[]);
        assert_eq!(cmds[0], Command::Arg(vec![("BASE".into(), Some("busybox".into()))]));
        assert_eq!(cmds[1], Command::Env(vec![("B".into(), "busybox".into())]));
        assert_eq!(scope.history_prefix(), "|1 BASE=busybox");
        let (scope, _) =
            eval("ARG BASE=busybox\nFROM scratch\nARG BASE\n", Flavor::BuildKit, &[("BASE", "alpine")], &[]);
        assert_eq!(scope.history_prefix(), "|1 BASE=alpine");
    }

    #[test]
    fn build_args_and_history_prefix() {
        let df = "FROM busybox\nARG A1=foo\nARG A2\nRUN echo $A1 $A2\n";
        let (scope, cmds) = eval(df, Flavor::BuildKit, &[("A2", "bar"), ("UNUSED", "x")], &[]);
        assert_eq!(scope.history_prefix(), "|2 A1=foo A2=bar");
        assert_eq!(cmds[2], crate::parse(df).unwrap().instructions[3].command, "RUN is not expanded");
        assert!(scope.run_env().contains(&"A1=foo".to_string()));
        assert!(!scope.run_env().iter().any(|e| e.starts_with("UNUSED")));
        assert!(scope.image_env().is_empty());
        let (scope, _) = eval(df, Flavor::Legacy, &[("A2", "bar")], &[]);
        assert_eq!(scope.history_prefix(), "|2 A1=foo A2=bar");
        // An ARG without value: BuildKit records it empty, legacy leaves it out.
        let (scope, _) = eval(df, Flavor::BuildKit, &[], &[]);
        assert_eq!(scope.history_prefix(), "|2 A1=foo A2=");
        let (scope, _) = eval(df, Flavor::Legacy, &[], &[]);
        assert_eq!(scope.history_prefix(), "|1 A1=foo");
    }

    #[test]
    fn env_wins_over_arg() {
        let df = "FROM busybox\nARG V=a\nENV V=b\nARG W=w\nRUN echo $V $W\n";
        for flavor in [Flavor::BuildKit, Flavor::Legacy] {
            let (scope, _) = eval(df, flavor, &[("V", "c")], &[]);
            let env = scope.expansion_env();
            assert_eq!(env.lookup("V").as_deref(), Some("b"), "{flavor:?}");
            assert_eq!(env.lookup("W").as_deref(), Some("w"));
            assert_eq!(scope.image_env(), [("V".to_string(), "b".to_string())]);
        }
        // ENV first, ARG later: legacy keeps ENV, BuildKit takes the later ARG.
        let df = "FROM busybox\nENV V=b\nARG V=a\n";
        assert_eq!(eval(df, Flavor::Legacy, &[], &[]).0.expansion_env().lookup("V").as_deref(), Some("b"));
        assert_eq!(eval(df, Flavor::BuildKit, &[], &[]).0.expansion_env().lookup("V").as_deref(), Some("a"));
    }

    #[test]
    fn expansion_per_instruction() {
        let df = "FROM busybox\nENV D=/data P=80 NAME=\"two words\"\nENV E=$D/x\nARG U=nobody\nLABEL \"k $P\"=$NAME\nWORKDIR $D\nUSER $U\nEXPOSE $P ${P}/udp\nVOLUME $D \"$E\"\nSTOPSIGNAL SIG${NAME:+TERM}\nCOPY --chown=$U --from=build $D/a* $E/\nCMD echo $D\nENTRYPOINT [\"$D\"]\nONBUILD RUN echo $D\nRUN --mount=type=cache,target=$D/cache echo $D\nHEALTHCHECK CMD echo $D\n";
        let (scope, c) = eval(df, Flavor::BuildKit, &[], &[]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            c[0],
            Command::Env(vec![
                ("D".into(), "/data".into()),
                ("P".into(), "80".into()),
                ("NAME".into(), "two words".into())
            ])
        );
        assert_eq!(c[1], Command::Env(vec![("E".into(), "/data/x".into())]));
        assert_eq!(c[3], Command::Label(vec![("k 80".into(), "two words".into())]));
        assert_eq!(c[4], Command::Workdir("/data".into()));
        assert_eq!(c[5], Command::User("nobody".into()));
        assert_eq!(c[6], Command::Expose(s(&["80", "80/udp"])));
        assert_eq!(c[7], Command::Volume(s(&["/data", "/data/x"])));
        assert_eq!(c[8], Command::StopSignal("SIGTERM".into()));
        let Command::Copy(cp) = &c[9] else { panic!() };
        assert_eq!(
            (cp.srcs.clone(), cp.dest.as_str(), cp.chown.as_deref(), cp.from.as_deref()),
            (s(&["/data/a*"]), "/data/x/", Some("nobody"), Some("build"))
        );
        assert_eq!(c[10], Command::Cmd(crate::instruction::ShellOrExec::Shell("echo $D".into())));
        assert_eq!(c[11], Command::Entrypoint(crate::instruction::ShellOrExec::Exec(s(&["$D"]))));
        assert_eq!(c[12], Command::Onbuild("RUN echo $D".into()));
        let Command::Run(r) = &c[13] else { panic!() };
        assert_eq!(r.mounts, ["type=cache,target=/data/cache"]);
        assert_eq!(r.cmd, crate::instruction::ShellOrExec::Shell("echo $D".into()));
        assert_eq!(scope.history_prefix(), "|1 U=nobody");
    }

    #[test]
    fn heredoc_bodies_expand_unless_quoted() {
        let (_, c) = eval("FROM a\nENV X=1\nCOPY <<A <<'B' /d/\n$X \"q\"\nA\n$X\nB\n", Flavor::BuildKit, &[], &[]);
        let Command::Copy(cp) = &c[1] else { panic!() };
        assert_eq!(cp.heredocs[0].content, "1 \"q\"\n");
        assert_eq!(cp.heredocs[1].content, "$X\n");
    }

    #[test]
    fn errors_carry_lines() {
        let lex = Lex::default();
        let df = crate::parse("FROM a\nARG A=${X:?boom}\nCOPY --from=$S a b\n").unwrap();
        let s = Stages::split(&df).unwrap();
        let mut scope = StageScope::new(Flavor::BuildKit, vec![], BTreeMap::new(), MetaArgs::default());
        assert_eq!(
            scope.step(&s.stages[0].instructions[0], &lex).unwrap_err().to_string(),
            "Dockerfile line 2: failed to process \"${X:?boom}\": X: boom"
        );
        assert!(scope
            .step(&s.stages[0].instructions[1], &lex)
            .unwrap_err()
            .to_string()
            .starts_with("Dockerfile line 3: variable expansion is not supported for --from"));
        let df = crate::parse("ARG B\nFROM ${B}\n").unwrap();
        let s = Stages::split(&df).unwrap();
        let meta = MetaArgs::new(&s.meta_args, &BTreeMap::new(), &[], &lex).unwrap();
        assert_eq!(
            meta.expand_from(&s.stages[0].from, &lex).unwrap_err().to_string(),
            "base name (${B}) should not be blank"
        );
    }

    #[test]
    fn base_env_and_parent_stage() {
        let (scope, c) = eval("FROM a\nENV PATH=$PATH:/x\n", Flavor::BuildKit, &[], &[("PATH", "/bin")]);
        assert_eq!(c[0], Command::Env(vec![("PATH".into(), "/bin:/x".into())]));
        let child = StageScope::from_parent(&scope);
        assert_eq!(child.image_env(), scope.image_env());
        assert!(expands_variables(InstructionKind::Workdir));
        assert!(!expands_variables(InstructionKind::Run));
        assert!(!expands_variables(InstructionKind::Onbuild));
        assert!(!expands_variables(InstructionKind::Cmd));
    }
}
