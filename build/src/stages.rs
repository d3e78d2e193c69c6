//! Build stages: splitting instructions at FROM, `--target`, stage references
//! (`FROM <stage>`, `COPY --from=<name|index>`, `RUN --mount=…,from=<stage>`) and the
//! set of stages a target needs (BuildKit builds only those).

use crate::expand::Lex;
use crate::instruction::{Command, From, Instruction};
use crate::scope::MetaArgs;
use crate::{Dockerfile, Error};

/// One stage: its FROM and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position in the Dockerfile (0-based), usable as `COPY --from=<index>`.
    pub index: usize,
    /// The FROM instruction.
    pub from_instruction: Instruction,
    /// The FROM arguments (image unexpanded, alias lowercased).
    pub from: From,
    /// Instructions of the stage, FROM excluded.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The stage name (`AS name`, lowercased), if any.
    pub fn name(&self) -> Option<&str> {
        self.from.alias.as_deref()
    }
}

/// What a reference (`FROM x`, `COPY --from=x`) points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    /// An earlier (FROM) or other (COPY --from) stage of this Dockerfile.
    Stage(usize),
    /// An image to pull or find locally (`scratch` included).
    Image(String),
}

/// A Dockerfile split into meta ARGs and stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// ARG instructions before the first FROM.
    pub meta_args: Vec<Instruction>,
    /// Stages in file order (at least one).
    pub stages: Vec<Stage>,
}

impl Stages {
    /// Split a parsed Dockerfile. Fails only when there is no FROM at all.
    pub fn split(df: &Dockerfile) -> Result<Stages, Error> {
        let mut meta_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for inst in &df.instructions {
            match (&inst.command, stages.last_mut()) {
                (Command::From(f), _) => stages.push(Stage {
                    index: stages.len(),
                    from_instruction: inst.clone(),
                    from: f.clone(),
                    instructions: Vec::new(),
                }),
                (_, Some(s)) => s.instructions.push(inst.clone()),
                (Command::Arg(_), None) => meta_args.push(inst.clone()),
                (_, None) => return Err(Error::parse(inst.line, "no build stage in current context")),
            }
        }
        if stages.is_empty() {
            let line = df.instructions.last().map_or(1, |i| i.line);
            return Err(Error::parse(line, "no build stage in current context"));
        }
        Ok(Stages { meta_args, stages })
    }

    /// Find a stage by name (case-insensitive) or by decimal index.
    pub fn find(&self, name_or_index: &str) -> Option<usize> {
        let lower = name_or_index.to_lowercase();
        if let Some(s) = self.stages.iter().find(|s| s.name() == Some(lower.as_str())) {
            return Some(s.index);
        }
        match name_or_index.parse::<usize>() {
            Ok(i) if i < self.stages.len() && name_or_index.bytes().all(|b| b.is_ascii_digit()) => Some(i),
            _ => None,
        }
    }

    /// The stage to build: `--target` by name (case-insensitive), or the last stage.
    pub fn target(&self, target: Option<&str>) -> Result<usize, Error> {
        match target {
            None | Some("") => {
                self.stages.len().checked_sub(1).ok_or_else(|| Error::Stage("no build stage in Dockerfile".into()))
            }
            Some(t) => {
                let lower = t.to_lowercase();
                self.stages
                    .iter()
                    .find(|s| s.name() == Some(lower.as_str()))
                    .map(|s| s.index)
                    .ok_or_else(|| Error::TargetNotFound(t.to_string()))
            }
        }
    }

    /// What stage `i`'s FROM refers to, given its image already expanded with the
    /// meta ARGs: an earlier stage with that name, or an image.
    pub fn resolve_from(&self, i: usize, expanded_image: &str) -> StageRef {
        let lower = expanded_image.to_lowercase();
        match self.stages[..i.min(self.stages.len())].iter().rev().find(|s| s.name() == Some(lower.as_str())) {
            Some(s) => StageRef::Stage(s.index),
            None => StageRef::Image(expanded_image.to_string()),
        }
    }

    /// What `COPY --from=<r>` (or a mount's `from=`) in stage `i` refers to: a stage by
    /// name or index, else an image. Referring to stage `i` itself is an error.
    pub fn resolve_copy_from(&self, i: usize, r: &str) -> Result<StageRef, Error> {
        match self.find(r) {
            Some(j) if j == i => Err(Error::Stage(format!("circular dependency detected on stage: {}", self.label(i)))),
            Some(j) => Ok(StageRef::Stage(j)),
            None => Ok(StageRef::Image(r.to_string())),
        }
    }

    /// Stage name or index as a string, for messages.
    pub fn label(&self, i: usize) -> String {
        self.stages.get(i).and_then(|s| s.name().map(str::to_string)).unwrap_or_else(|| i.to_string())
    }

    /// The stages stage `i` depends on directly: its FROM base (if a stage), stages
    /// named by `COPY --from=` and by `RUN --mount=…,from=`. FROM images are expanded
    /// with the meta ARGs.
    pub fn dependencies(&self, i: usize, meta: &MetaArgs, lex: &Lex) -> Result<Vec<usize>, Error> {
        let Some(stage) = self.stages.get(i) else { return Err(Error::Stage(format!("no stage {i}"))) };
        let mut deps = Vec::new();
        let image = meta.expand_from(&stage.from, lex)?.0;
        if let StageRef::Stage(j) = self.resolve_from(i, &image) {
            deps.push(j);
        }
        for inst in &stage.instructions {
            let refs: Vec<String> = match &inst.command {
                Command::Copy(c) => c.from.iter().cloned().collect(),
                Command::Run(r) => r.mounts.iter().filter_map(|m| mount_from(m)).collect(),
                _ => Vec::new(),
            };
            for r in refs {
                if let StageRef::Stage(j) = self.resolve_copy_from(i, &r).map_err(|e| e.at_line(inst.line))? {
                    if !deps.contains(&j) {
                        deps.push(j);
                    }
                }
            }
        }
        Ok(deps)
    }

    /// Every stage needed to build `target`, in build order (dependencies first;
    /// ascending index among independent stages). Errors on cycles.
    pub fn needed(&self, target: usize, meta: &MetaArgs, lex: &Lex) -> Result<Vec<usize>, Error> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let n = self.stages.len();
        if target >= n {
            return Err(Error::Stage(format!("no stage {target}")));
        }
        let mut deps = Vec::with_capacity(n);
        for i in 0..n {
            deps.push(self.dependencies(i, meta, lex)?);
        }
        let mut mark = vec![Mark::New; n];
        let mut order = Vec::new();
        // Iterative DFS: (node, next dependency position).
        let mut stack = vec![(target, 0usize)];
        mark[target] = Mark::Active;
        while let Some((node, pos)) = stack.pop() {
            let mut ds = deps[node].clone();
            ds.sort_unstable();
            if let Some(&d) = ds.get(pos) {
                stack.push((node, pos + 1));
                match mark[d] {
                    Mark::Active => {
                        return Err(Error::Stage(format!("circular dependency detected on stage: {}", self.label(d))))
                    }
                    Mark::New => {
                        mark[d] = Mark::Active;
                        stack.push((d, 0));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                order.push(node);
            }
        }
        Ok(order)
    }
}

/// The `from=` field of a `--mount` value (simple CSV, keys case-insensitive).
pub fn mount_from(spec: &str) -> Option<String> {
    spec.split(',').find_map(|f| {
        let (k, v) = f.split_once('=')?;
        k.trim().eq_ignore_ascii_case("from").then(|| v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn stages(df: &str) -> Stages {
        Stages::split(&crate::parse(df).unwrap()).unwrap()
    }

    fn meta(s: &Stages, args: &[(&str, &str)]) -> MetaArgs {
        let ba: BTreeMap<String, String> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        MetaArgs::new(&s.meta_args, &ba, &[], &Lex::default()).unwrap()
    }

    const MULTI: &str = "ARG BASE=busybox\nFROM ${BASE} AS Build\nRUN make\nFROM scratch AS extra\nCOPY --from=build /o /x\nFROM build AS test\nRUN test\nFROM scratch AS final\nCOPY --from=BUILD /o /\nCOPY --from=0 /p /\nCOPY --from=alpine:3 /etc/os-release /\n";

    #[test]
    fn split_and_find() {
        let s = stages(MULTI);
        assert_eq!(s.meta_args.len(), 1);
        assert_eq!(s.stages.len(), 4);
        assert_eq!(s.stages[0].name(), Some("build"));
        assert_eq!(s.stages[0].instructions.len(), 1);
        let cases: &[(&str, Option<usize>)] = &[
            ("build", Some(0)),
            ("BUILD", Some(0)),
            ("0", Some(0)),
            ("3", Some(3)),
            ("4", None),
            ("nope", None),
            ("+1", None),
        ];
        for (r, want) in cases {
            assert_eq!(s.find(r), *want, "{r}");
        }
    }

    #[test]
    fn targets() {
        let s = stages(MULTI);
        assert_eq!(s.target(None).unwrap(), 3);
        assert_eq!(s.target(Some("Test")).unwrap(), 2);
        assert_eq!(s.target(Some("nope")).unwrap_err().to_string(), "failed to reach build target nope in Dockerfile");
    }

    #[test]
    fn reachable_stages() {
        let s = stages(MULTI);
        let m = meta(&s, &[]);
        let lex = Lex::default();
        assert_eq!(s.needed(3, &m, &lex).unwrap(), [0, 3]);
        assert_eq!(s.needed(2, &m, &lex).unwrap(), [0, 2]);
        assert_eq!(s.needed(1, &m, &lex).unwrap(), [0, 1]);
        assert_eq!(s.needed(0, &m, &lex).unwrap(), [0]);
        assert_eq!(s.resolve_from(2, "build"), StageRef::Stage(0));
        assert_eq!(s.resolve_from(0, "busybox"), StageRef::Image("busybox".into()));
        assert_eq!(s.resolve_copy_from(3, "alpine:3").unwrap(), StageRef::Image("alpine:3".into()));
    }

    #[test]
    fn from_uses_meta_args() {
        let s = stages("ARG B=img\nFROM scratch AS img\nFROM ${B}\nFROM scratch AS z\nRUN --mount=type=bind,from=img,target=/x true\n");
        let lex = Lex::default();
        assert_eq!(s.needed(1, &meta(&s, &[]), &lex).unwrap(), [0, 1]);
        assert_eq!(s.needed(1, &meta(&s, &[("B", "busybox")]), &lex).unwrap(), [1]);
        assert_eq!(s.needed(2, &meta(&s, &[]), &lex).unwrap(), [0, 2]);
    }

    #[test]
    fn cycles_and_self_refs() {
        let lex = Lex::default();
        let s = stages("FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\nCOPY --from=a / /\n");
        let e = s.needed(1, &meta(&s, &[]), &lex).unwrap_err().to_string();
        assert!(e.starts_with("circular dependency detected on stage"), "{e}");
        let s = stages("FROM scratch AS a\nCOPY --from=a / /\n");
        assert_eq!(
            s.needed(0, &meta(&s, &[]), &lex).unwrap_err().to_string(),
            "Dockerfile line 2: circular dependency detected on stage: a"
        );
        // FROM never refers to the stage itself or a later one.
        let s = stages("FROM b AS b\nFROM scratch AS c\n");
        assert_eq!(s.resolve_from(0, "b"), StageRef::Image("b".into()));
    }

    #[test]
    fn mount_from_field() {
        assert_eq!(mount_from("type=bind,from=build,target=/x").as_deref(), Some("build"));
        assert_eq!(mount_from("type=cache,target=/x"), None);
        assert_eq!(mount_from("FROM=x").as_deref(), Some("x"));
    }
}
