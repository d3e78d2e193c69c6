//! Dockerfile builds: the syntactic and semantic front end.
//!
//! - [`parser`]: Dockerfile text → [`parser::Node`]s (BuildKit's AST, with line numbers,
//!   directives, continuations, heredocs) and typed [`instruction::Instruction`]s.
//! - [`expand`]: BuildKit's `shell.Lex` word processing and variable expansion.
//! - [`scope`]: ARG/ENV scoping per stage (meta args, `--build-arg`, env for RUN).
//! - [`dockerignore`]: `.dockerignore` parsing and matching (moby/patternmatcher rules).
//! - [`stages`]: stages, `--target`, stage references and reachability.

pub mod context;
pub mod copy;
pub mod dockerignore;
pub mod error;
pub mod executor;
pub mod expand;
pub mod history;
pub mod image;
pub mod instruction;
pub mod parser;
pub mod progress;
pub mod runmount;
pub mod scope;
pub mod stages;

pub use error::Error;
pub use expand::{process_word, process_words, EnvLookup, Lex};

pub use instruction::{Command, Instruction, InstructionKind};
pub use parser::{parse, Dockerfile};

#[cfg(test)]
mod robustness {
    //! Random inputs built from the syntax's special characters: nothing may panic.
    use std::collections::BTreeMap;

    use crate::dockerignore::DockerIgnore;
    use crate::scope::{Flavor, MetaArgs, StageScope};
    use crate::stages::Stages;
    use crate::{parse, parser, process_word, process_words, Lex};

    const ALPHABET: &[&str] = &[
        "$",
        "{",
        "}",
        ":",
        "-",
        "+",
        "?",
        "#",
        "%",
        "/",
        "*",
        "\\",
        "`",
        "'",
        "\"",
        " ",
        "\t",
        "\n",
        "\r\n",
        "<<",
        "<<-",
        "EOF",
        "[",
        "]",
        "^",
        "!",
        "=",
        "A",
        "x",
        "é",
        "ONBUILD ",
        "FROM a\n",
        "RUN ",
        "COPY ",
        "ENV ",
        "ARG ",
        "HEALTHCHECK ",
        "--from=",
        "--mount=",
        "# escape=`\n",
        "**",
        ".",
        "0",
        "\u{feff}",
    ];

    fn gen(seed: &mut u64, max: usize) -> String {
        let mut s = String::new();
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let n = (next() as usize) % max;
        for _ in 0..n {
            s.push_str(ALPHABET[(next() as usize) % ALPHABET.len()]);
        }
        s
    }

    #[test]
    fn random_inputs_do_not_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let env = vec![("A".to_string(), "a*b/c".to_string()), ("x".to_string(), String::new())];
        let lex = Lex::default();
        for _ in 0..3000 {
            let s = gen(&mut seed, 40);
            let _ = process_word(&s, &env);
            let _ = process_words(&s, &env);
            let _ = parser::parse_ast(&s);
            if let Ok(df) = parse(&s) {
                if let Ok(st) = Stages::split(&df) {
                    if let Ok(meta) = MetaArgs::new(&st.meta_args, &BTreeMap::new(), &[], &lex) {
                        if let Ok(t) = st.target(None) {
                            let _ = st.needed(t, &meta, &lex);
                        }
                        for stage in &st.stages {
                            let _ = meta.expand_from(&stage.from, &lex);
                            let mut scope = StageScope::new(Flavor::BuildKit, vec![], BTreeMap::new(), meta.clone());
                            for i in &stage.instructions {
                                let _ = scope.step(i, &lex);
                            }
                        }
                    }
                }
            }
            if let Ok(di) = DockerIgnore::parse(&s) {
                let p = gen(&mut seed, 8);
                let _ = di.excludes(&p);
                let _ = di.can_skip_dir(&p);
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "${A:-".repeat(100_000);
        assert!(process_word(&deep, &crate::expand::NoEnv).is_err());
        let onb = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(8000));
        assert!(parse(&onb).is_err());
    }
}
