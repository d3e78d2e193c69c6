//! The build executor: stages in dependency order, each instruction a
//! step — config-only steps change the image config, RUN runs a container
//! through the runtime (on strata-overlayfs, with the hidden init layer),
//! COPY/ADD/WORKDIR write into a mounted writable layer — and every layer
//! is the diff of that step's own upper directory. Every step is committed
//! as an image (Docker's intermediate images) and recorded in the build
//! cache under a key of the parent image, the step's text (expanded, with
//! the build args in scope) and, for COPY/ADD, the sources' checksum. A
//! cache hit starts nothing and mounts nothing.
//!
//! Locks: the store's write lock is held only to publish (make a layer or
//! container record, register a layer, commit an image); never while a
//! command runs or files are copied.

use std::collections::{BTreeMap, HashMap};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use strata_runtime::container as ctr;
use strata_runtime::rootfs::Root;
use strata_runtime::{Bind, RunConfig, Tmpfs};
use strata_store::buildcache::BuildCache;
use strata_store::containers::{Container, Containers};
use strata_store::{Digest, Reference, Store};

use crate::context::{Context, Tree};
use crate::copy::CopyOptions;
use crate::dockerignore::DockerIgnore;
use crate::history;
use crate::image::ImageState;
use crate::instruction::{Command, Copy, Healthcheck, Instruction, InstructionKind, ShellOrExec};
use crate::progress::{Progress, Step};
use crate::runmount::RunMount;
use crate::scope::{Flavor, MetaArgs, StageScope};
use crate::stages::{StageRef, Stages};
use crate::{Error, Lex};

/// What to build and how.
pub struct BuildOptions {
    /// Which builder to imitate.
    pub flavor: Flavor,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// `-t` references (already validated).
    pub tags: Vec<Reference>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--label` (added to the final image).
    pub labels: Vec<(String, String)>,
    /// `--network` for RUN (`none` or `host`).
    pub network: String,
    /// The `strata` binary (started as the monitor of RUN containers).
    pub exe: PathBuf,
}

/// Docker's deepest image (moby `layer_store.go` `maxLayerDepth`).
pub const MAX_LAYERS: usize = 125;

/// Find (or pull) an image by reference; the CLI supplies it.
pub type ImageResolver<'a> = dyn Fn(&str) -> Result<Digest, Error> + 'a;

/// Build; returns the final image's ID (tagged as asked).
pub fn build(
    store: &Store,
    ctx: &Context,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    resolve: &ImageResolver<'_>,
) -> Result<Digest, Error> {
    let df = crate::parse(&opts.dockerfile).map_err(|e| match e {
        // Docker reports this one without a line.
        Error::Parse { msg, .. } if msg == "no build stage in current context" => Error::Stage(msg),
        e => e,
    })?;
    let stages = Stages::split(&df)?;
    let lex = Lex::new(df.escape);
    let builtin = vec![
        ("TARGETPLATFORM".to_string(), format!("linux/{}", strata_store::oci::host_arch())),
        ("TARGETOS".to_string(), "linux".to_string()),
        ("TARGETARCH".to_string(), strata_store::oci::host_arch()),
        ("BUILDPLATFORM".to_string(), format!("linux/{}", strata_store::oci::host_arch())),
    ];
    let meta = MetaArgs::new(&stages.meta_args, &opts.build_args, &builtin, &lex)?;
    let target = stages.target(opts.target.as_deref()).map_err(|e| match (e, opts.flavor) {
        (Error::TargetNotFound(t), Flavor::BuildKit) => Error::Stage(format!("target stage {t} could not be found")),
        (e, _) => e,
    })?;
    let order: Vec<usize> = match opts.flavor {
        Flavor::BuildKit => stages.needed(target, &meta, &lex)?,
        Flavor::Legacy => (0..=target).collect(),
    };
    let total: usize = order.iter().map(|&i| 1 + stages.stages[i].instructions.len()).sum::<usize>()
        + usize::from(opts.flavor == Flavor::Legacy && !opts.labels.is_empty());
    let mut b = Builder {
        store,
        ctx,
        opts,
        progress,
        resolve,
        lex,
        stages: &stages,
        results: HashMap::new(),
        n: 0,
        total,
        cache: BuildCache::new(store.root()),
    };
    // Content hashes of unchanged context files come from the last build.
    let hashes = store.root().join("buildcache").join("context-hashes");
    ctx.tree.load_hashes(&hashes);
    for &i in &order {
        b.stage(i, &meta)?;
    }
    let _ = ctx.tree.save_hashes(&hashes);
    let (mut state, _) = b.results.remove(&target).expect("the target stage was built");
    if !opts.labels.is_empty() {
        b.final_labels(&mut state)?;
    }
    let id = match &state.id {
        Some(id) => id.clone(),
        None => state.commit(store, opts.flavor, None)?,
    };
    let names: Vec<String> = opts
        .tags
        .iter()
        .map(|r| match opts.flavor {
            Flavor::Legacy => r.to_string(),
            Flavor::BuildKit => {
                let (registry, path) = r.registry_and_path();
                format!("{registry}/{path}:{}", r.tag.as_deref().unwrap_or("latest"))
            }
        })
        .collect();
    if !opts.tags.is_empty() {
        let _p = store.publish()?;
        let mut repos = store.repositories()?;
        for r in &opts.tags {
            repos.set(r, &id);
        }
        repos.save()?;
    }
    b.progress.finish(&id, &names);
    Ok(id)
}

struct Builder<'a> {
    store: &'a Store,
    ctx: &'a Context,
    opts: &'a BuildOptions,
    progress: &'a mut dyn Progress,
    resolve: &'a ImageResolver<'a>,
    lex: Lex,
    stages: &'a Stages,
    results: HashMap<usize, (ImageState, StageScope)>,
    n: usize,
    total: usize,
    cache: BuildCache,
}

/// `RUN --mount`s resolved: binds, tmpfs mounts, temporary layers to
/// remove after the step, and the text the cache key must include.
type ResolvedMounts = (Vec<Bind>, Vec<Tmpfs>, Vec<String>, String);

/// Per-stage step state.
struct StageRun {
    state: ImageState,
    scope: StageScope,
    label: String,
    n: usize,
    total: usize,
    cmd_set: bool,
    index: usize,
}

fn key_of(parts: &[&str]) -> Digest {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    Digest::parse(&format!("sha256:{}", strata_store::digest::hex(&h.finalize()))).expect("a sha256 digest")
}

fn makes_layer(k: InstructionKind) -> bool {
    matches!(k, InstructionKind::Run | InstructionKind::Copy | InstructionKind::Add | InstructionKind::Workdir)
}

fn random_id() -> String {
    strata_store::layers::new_cache_id() + &strata_store::layers::new_cache_id()
}

impl Builder<'_> {
    fn stage(&mut self, i: usize, meta: &MetaArgs) -> Result<(), Error> {
        let stage = &self.stages.stages[i];
        let (image, _platform) =
            meta.expand_from(&stage.from, &self.lex).map_err(|e| e.at_line(stage.from_instruction.line))?;
        let flavor = self.opts.flavor;
        let (state, scope) = match self.stages.resolve_from(i, &image) {
            StageRef::Stage(j) => {
                let (st, sc) =
                    self.results.get(&j).cloned().ok_or_else(|| Error::Stage(format!("stage {j} was not built")))?;
                (st, StageScope::from_parent(&sc))
            }
            StageRef::Image(name) if name.eq_ignore_ascii_case("scratch") => {
                let st = ImageState::scratch(flavor);
                let env = st.env();
                (st, StageScope::new(flavor, env, self.opts.build_args.clone(), meta.clone()))
            }
            StageRef::Image(name) => {
                let id = (self.resolve)(&name)?;
                let st = ImageState::from_image(self.store, &id)?;
                let env = st.env();
                (st, StageScope::new(flavor, env, self.opts.build_args.clone(), meta.clone()))
            }
        };
        let single = self.stages.stages.len() == 1;
        let label = if single {
            String::new()
        } else {
            stage.name().map(str::to_string).unwrap_or_else(|| format!("stage-{i}"))
        };
        let stage_total = 1 + stage.instructions.iter().filter(|x| makes_layer(x.kind())).count();
        let mut run = StageRun { state, scope, label, n: 1, total: stage_total, cmd_set: false, index: i };
        self.n += 1;
        let from_text = stage.from_instruction.original.clone();
        let bk = format!("FROM {}", full_name(&image));
        self.announce(&run, &from_text, &bk, true);
        match &run.state.id {
            Some(id) => self.progress.done(id),
            None => self.progress.done(&Digest::of(b"scratch")),
        }
        // ONBUILD triggers of the base image run first, then are dropped.
        let triggers = run.state.strings("OnBuild");
        if !triggers.is_empty() {
            self.progress.triggers(triggers.len());
            run.state.runtime_mut().insert("OnBuild".into(), Value::Null);
            for t in &triggers {
                let df = crate::parse(&format!("FROM scratch\n{t}\n"))?;
                let inst = df
                    .instructions
                    .into_iter()
                    .nth(1)
                    .ok_or_else(|| Error::Stage(format!("bad ONBUILD trigger: {t}")))?;
                self.instruction(&mut run, &inst)?;
            }
        }
        for inst in &stage.instructions {
            self.n += 1;
            self.instruction(&mut run, inst)?;
        }
        self.results.insert(i, (run.state, run.scope));
        Ok(())
    }

    fn announce(&mut self, run: &StageRun, text: &str, bk_text: &str, shown: bool) {
        self.progress.step(&Step {
            n: self.n,
            total: self.total,
            text,
            stage: &run.label,
            stage_n: run.n,
            stage_total: run.total,
            shown,
            bk_text,
        });
    }

    fn parent_key(run: &StageRun) -> String {
        run.state.id.as_ref().map(|d| d.to_string()).unwrap_or_else(|| "scratch".into())
    }

    /// Look up a step in the cache; on a hit, the state becomes the cached image.
    fn try_cache(&mut self, run: &mut StageRun, key: &Digest) -> Result<bool, Error> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(id) = self.cache.get(key) else { return Ok(false) };
        let Ok(st) = ImageState::from_image(self.store, &id) else { return Ok(false) };
        run.state = st;
        self.progress.cached();
        self.progress.done(&id);
        Ok(true)
    }

    fn record(&mut self, key: &Digest, id: &Digest) -> Result<(), Error> {
        self.cache.put(key, id)?;
        Ok(())
    }

    fn instruction(&mut self, run: &mut StageRun, inst: &Instruction) -> Result<(), Error> {
        let kind = inst.kind();
        // History shows an ARG's default expanded (not a --build-arg value).
        let raw = match &inst.command {
            Command::Arg(decl) => {
                let mut env = run.scope.expansion_env();
                let mut out = Vec::new();
                for (k, d) in decl {
                    let v = d.as_ref().map(|d| self.lex.process_word(d, &env).unwrap_or_else(|_| d.clone()));
                    if let Some(v) = &v {
                        env.push((k.clone(), v.clone()));
                    }
                    out.push((k.clone(), v));
                }
                Command::Arg(out)
            }
            other => other.clone(),
        };
        let cmd = run.scope.step(inst, &self.lex)?;
        let text = inst.original.clone();
        if makes_layer(kind) {
            run.n += 1;
        }
        let r = match &cmd {
            Command::Run(r) => {
                let shell = run.state.shell();
                let words = match (&r.cmd, r.heredocs.as_slice()) {
                    (ShellOrExec::Shell(s), [h])
                        if s.trim() == format!("<<{}", h.name) || s.trim() == format!("<<-{}", h.name) =>
                    {
                        let mut v = shell.clone();
                        v.push(h.body());
                        v
                    }
                    (ShellOrExec::Shell(s), hs) if !hs.is_empty() => {
                        let mut full = s.clone();
                        for h in hs {
                            full.push('\n');
                            full.push_str(&h.content);
                            full.push_str(&h.name);
                        }
                        let mut v = shell.clone();
                        v.push(full);
                        v
                    }
                    (c, _) => history::command_words(c, &shell),
                };
                // BuildKit shows the command as written, build args substituted.
                let shown = match &r.cmd {
                    ShellOrExec::Shell(t) => {
                        self.lex.process_word(t, &run.scope.run_env()).unwrap_or_else(|_| t.clone())
                    }
                    ShellOrExec::Exec(v) => v.join(" "),
                };
                let bk = format!("RUN {shown}");
                self.announce(run, &text, &bk, true);
                self.run_step(run, &words, r.network.as_deref(), &r.mounts)
            }
            Command::Copy(c) | Command::Add(c) => {
                let add = kind == InstructionKind::Add;
                let bk = format!("{} {} {}", if add { "ADD" } else { "COPY" }, copy_sources_text(c), c.dest);
                self.announce(run, &text, &bk, true);
                self.copy_step(run, c, add)
            }
            Command::Workdir(w) => {
                let cur = run.state.string("WorkingDir");
                let path = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", if cur.is_empty() { "/" } else { cur.as_str() }).replace("//", "/")
                };
                self.announce(run, &text, &format!("WORKDIR {path}"), true);
                run.state.runtime_mut().insert("WorkingDir".into(), json!(path));
                self.workdir_step(run, &path)
            }
            Command::From(_) => Err(Error::Stage("FROM inside a stage".into())),
            _ => {
                self.announce(run, &text, "", false);
                self.config_step(run, &cmd, &raw)
            }
        };
        r
    }

    fn config_step(&mut self, run: &mut StageRun, cmd: &Command, raw: &Command) -> Result<(), Error> {
        let flavor = self.opts.flavor;
        // SHELL's own step already runs with the new shell (as Docker's).
        let shell = match cmd {
            Command::Shell(v) if !v.is_empty() => v.clone(),
            _ => run.state.shell(),
        };
        let text = history::config_text(cmd, raw, &shell, flavor);
        let nop = history::legacy_nop_cmd(&shell, &text, false);
        let created_by = match flavor {
            Flavor::Legacy => nop.join(" "),
            Flavor::BuildKit => text.clone(),
        };
        let key = key_of(&["config", &format!("{flavor:?}"), &Self::parent_key(run), &created_by]);
        if self.try_cache(run, &key)? {
            return Ok(());
        }
        let st = &mut run.state;
        match cmd {
            Command::Env(pairs) => {
                for (k, v) in pairs {
                    st.set_env(k, v);
                }
            }
            Command::Label(pairs) => {
                let labels = st.runtime_mut().entry("Labels").or_insert_with(|| json!({}));
                if !labels.is_object() {
                    *labels = json!({});
                }
                for (k, v) in pairs {
                    labels[k] = json!(v);
                }
            }
            Command::User(u) => {
                st.runtime_mut().insert("User".into(), json!(u));
            }
            Command::Expose(ports) => {
                let e = st.runtime_mut().entry("ExposedPorts").or_insert_with(|| json!({}));
                if !e.is_object() {
                    *e = json!({});
                }
                for p in history::expose_ports(ports) {
                    e[p] = json!({});
                }
            }
            Command::Volume(vs) => {
                let e = st.runtime_mut().entry("Volumes").or_insert_with(|| json!({}));
                if !e.is_object() {
                    *e = json!({});
                }
                for v in vs {
                    e[v] = json!({});
                }
            }
            Command::StopSignal(s) => {
                st.runtime_mut().insert("StopSignal".into(), json!(s));
            }
            Command::Healthcheck(h) => {
                let v = match h {
                    // The classic builder keeps the old check's timings.
                    Healthcheck::None if flavor == Flavor::Legacy => {
                        let mut old = st
                            .runtime()
                            .get("Healthcheck")
                            .cloned()
                            .filter(Value::is_object)
                            .unwrap_or_else(|| json!({}));
                        old["Test"] = json!(["NONE"]);
                        old
                    }
                    Healthcheck::None => json!({"Test": ["NONE"]}),
                    Healthcheck::Cmd { test, interval, timeout, start_period, retries, .. } => {
                        let mut m = serde_json::Map::new();
                        m.insert("Test".into(), json!(test));
                        for (k, d) in [("Interval", interval), ("Timeout", timeout), ("StartPeriod", start_period)] {
                            if !d.is_zero() {
                                m.insert(k.into(), json!(d.as_nanos() as u64));
                            }
                        }
                        if *retries != 0 {
                            m.insert("Retries".into(), json!(retries));
                        }
                        Value::Object(m)
                    }
                };
                st.runtime_mut().insert("Healthcheck".into(), v);
            }
            Command::Shell(v) => {
                st.runtime_mut().insert("Shell".into(), json!(v));
            }
            Command::Cmd(c) => {
                let words = history::command_words(c, &shell);
                st.runtime_mut().insert("Cmd".into(), json!(words));
                if flavor == Flavor::BuildKit {
                    st.runtime_mut().insert("ArgsEscaped".into(), json!(true));
                }
                run.cmd_set = true;
            }
            Command::Entrypoint(c) => {
                let words = history::command_words(c, &shell);
                st.runtime_mut().insert("Entrypoint".into(), json!(words));
                if !run.cmd_set {
                    st.runtime_mut().insert("Cmd".into(), Value::Null);
                }
            }
            Command::Onbuild(t) => {
                let mut v = st.strings("OnBuild");
                v.push(t.clone());
                st.runtime_mut().insert("OnBuild".into(), json!(v));
            }
            Command::Maintainer(m) => {
                st.config.insert("author".into(), json!(m));
            }
            Command::Arg(_) => {}
            _ => {}
        }
        // BuildKit records no history for ONBUILD.
        let record = !(flavor == Flavor::BuildKit && matches!(cmd, Command::Onbuild(_)));
        if record {
            st.add_history(&created_by, true, flavor);
        }
        let id = { st.commit(self.store, flavor, Some(&nop))? };
        self.record(&key, &id)?;
        self.progress.done(&id);
        Ok(())
    }

    /// Make a temporary writable layer on the current top layer.
    fn temp_layer(&self, run: &StageRun) -> Result<String, Error> {
        let parent = match &run.state.top_layer {
            Some(c) => Some(self.store.layers().require(c)?.cache_id),
            None => None,
        };
        let id = format!("b-{}", strata_store::layers::new_cache_id());
        self.store.driver().create(&id, parent.as_deref())?;
        Ok(id)
    }

    /// Turn the changes of `layer` into the state's next layer (none when it
    /// changed nothing), record history and commit. Returns whether a layer
    /// was made.
    fn publish(
        &mut self,
        run: &mut StageRun,
        layer: &str,
        created_by: &str,
        legacy_cmd: &[String],
    ) -> Result<Digest, Error> {
        let flavor = self.opts.flavor;
        let t0 = std::time::Instant::now();
        let changed = !self.store.driver().changes(layer)?.is_empty();
        tracing::debug!("publish: changes listed in {:?}", t0.elapsed());
        if changed {
            let scratch = self.store.scratch()?;
            let path = scratch.path().join("layer.tar");
            let mut f = std::fs::OpenOptions::new().create_new(true).read(true).write(true).open(&path)?;
            {
                let mut w = std::io::BufWriter::new(&mut f);
                self.store.driver().diff(layer, &mut w)?;
                w.flush()?;
            }
            f.seek(SeekFrom::Start(0))?;
            tracing::debug!("publish: diff written at {:?}", t0.elapsed());
            let mut r = std::io::BufReader::new(f);
            let l = self.store.layers().register(run.state.top_layer.as_ref(), &mut r, None)?;
            tracing::debug!("publish: layer registered at {:?}", t0.elapsed());
            run.state.add_layer(&l.diff_id, l.chain_id);
        }
        let depth = run
            .state
            .config
            .get("rootfs")
            .and_then(|r| r.get("diff_ids"))
            .and_then(|d| d.as_array())
            .map_or(0, |a| a.len());
        if changed && depth > MAX_LAYERS {
            match flavor {
                // Docker's layer store refuses deeper images.
                Flavor::Legacy => return Err(Error::Source("max depth exceeded".into())),
                Flavor::BuildKit if depth == MAX_LAYERS + 1 => {
                    eprintln!("warning: the image has more than {MAX_LAYERS} layers: Docker cannot run it (strata can)")
                }
                Flavor::BuildKit => {}
            }
        }
        run.state.add_history(created_by, !changed, flavor);
        let id = run.state.commit(self.store, flavor, Some(legacy_cmd))?;
        Ok(id)
    }

    fn workdir_step(&mut self, run: &mut StageRun, path: &str) -> Result<(), Error> {
        let flavor = self.opts.flavor;
        let shell = run.state.shell();
        let text = format!("WORKDIR {path}");
        let nop = history::legacy_nop_cmd(&shell, &text, true);
        let created_by = match flavor {
            Flavor::Legacy => nop.join(" "),
            Flavor::BuildKit => text.clone(),
        };
        let key = key_of(&["workdir", &format!("{flavor:?}"), &Self::parent_key(run), &created_by, path]);
        if self.try_cache(run, &key)? {
            return Ok(());
        }
        let layer = self.temp_layer(run)?;
        let r = (|| -> Result<Digest, Error> {
            let root = self.store.driver().mount(&layer)?;
            let flavor = self.opts.flavor;
            let made = Root::open(&root).and_then(|r| {
                let d = r.dir_all(path, 0o755)?;
                if flavor == Flavor::BuildKit {
                    // BuildKit's mkdir always yields a layer holding the
                    // directory, even one that existed: copy it up.
                    let st = rustix::fs::fstat(&d)
                        .map_err(|e| strata_runtime::Error::Invalid(format!("stat {path}: {e}")))?;
                    rustix::fs::fchmod(&d, rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777))
                        .map_err(|e| strata_runtime::Error::Invalid(format!("chmod {path}: {e}")))?;
                }
                Ok(())
            });
            self.store.driver().unmount(&layer)?;
            made?;
            self.publish(run, &layer, &created_by, &nop)
        })();
        let _ = self.store.driver().remove(&layer);
        let id = r?;
        self.record(&key, &id)?;
        self.progress.done(&id);
        Ok(())
    }

    fn source_tree(&mut self, run: &StageRun, from: &str) -> Result<(Tree, Option<String>), Error> {
        let top = match self.stages.resolve_copy_from(run.index, from)? {
            StageRef::Stage(j) => {
                let (st, _) = self
                    .results
                    .get(&j)
                    .ok_or_else(|| Error::Stage(format!("stage {from} was not built before use")))?;
                st.top_layer.clone()
            }
            StageRef::Image(name) => {
                let id = (self.resolve)(&name)?;
                let img = self.store.image(&id)?;
                // Pinned: an `rmi` meanwhile cannot free what is copied from.
                self.store.pin_image(&img)?;
                img.top_layer()
            }
        };
        let parent = match &top {
            Some(c) => Some(self.store.layers().require(c)?.cache_id),
            None => None,
        };
        let id = format!("b-{}", strata_store::layers::new_cache_id());
        self.store.driver().create(&id, parent.as_deref())?;
        let root = match self.store.driver().mount(&id) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.store.driver().remove(&id);
                return Err(e.into());
            }
        };
        Ok((Tree::open(&root, DockerIgnore::default())?, Some(id)))
    }

    fn copy_step(&mut self, run: &mut StageRun, c: &Copy, add: bool) -> Result<(), Error> {
        let flavor = self.opts.flavor;
        let name = if add { "ADD" } else { "COPY" };
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        if add && c.srcs.iter().any(is_url) {
            if !c.srcs.iter().all(is_url) || c.from.is_some() {
                return Err(Error::Source("ADD of URLs together with other sources is not supported by strata".into()));
            }
            // Fetched afresh each build; the cache key is the content's.
            let dir =
                tempfile::Builder::new().prefix("strata-add-").tempdir_in(self.store.root()).map_err(Error::from)?;
            let mut names = Vec::new();
            for url in &c.srcs {
                names.push(download(url, dir.path())?);
            }
            let tree = Tree::open(dir.path(), DockerIgnore::default())?;
            let fetched = Copy { srcs: names, ..c.clone() };
            return self.copy_from(run, &fetched, c, false, name, flavor, Some(&tree));
        }
        let (other, temp) = match &c.from {
            Some(f) => {
                let (t, id) = self.source_tree(run, f)?;
                (Some(t), id)
            }
            None => (None, None),
        };
        let r = self.copy_from(run, c, c, add, name, flavor, other.as_ref());
        drop(other);
        if let Some(id) = temp {
            let _ = self.store.driver().unmount(&id);
            let _ = self.store.driver().remove(&id);
        }
        r
    }

    /// COPY/ADD of `c`'s sources from `other` (or the context); `shown` is
    /// the instruction as history shows it; `extract`: ADD's unpacking of
    /// local archives.
    #[allow(clippy::too_many_arguments)]
    fn copy_from(
        &mut self,
        run: &mut StageRun,
        c: &Copy,
        shown: &Copy,
        extract: bool,
        name: &str,
        flavor: Flavor,
        other: Option<&Tree>,
    ) -> Result<(), Error> {
        let tree = other.unwrap_or(&self.ctx.tree);
        let missing = |p: &str| -> Error {
            match flavor {
                Flavor::Legacy => Error::Source(format!(
                    "{name} failed: file not found in build context or excluded by .dockerignore: stat {p}: file does not exist"
                )),
                Flavor::BuildKit => {
                    Error::Source(format!("failed to compute cache key: \"/{}\" not found: not found", crate::context::clamp_rel(p)))
                }
            }
        };
        if flavor == Flavor::Legacy && other.is_none() {
            if let Some(p) = c.srcs.iter().find(|s| crate::context::clean_rel(s).is_none()) {
                return Err(Error::Source(format!("{name} failed: forbidden path outside the build context: {p} ()")));
            }
        }
        let heredoc_srcs: Vec<&crate::parser::Heredoc> = c.heredocs.iter().collect();
        let plain: Vec<String> = c
            .srcs
            .iter()
            .filter(|s| !heredoc_srcs.iter().any(|h| s.trim_start_matches("<<-").trim_start_matches("<<") == h.name))
            .cloned()
            .collect();
        let sources = tree.resolve(&plain, &missing)?;
        let sum = tree.checksum(&sources)?;
        let mut hsum = Sha256::new();
        for h in &heredoc_srcs {
            hsum.update(h.name.as_bytes());
            hsum.update(h.body().as_bytes());
        }
        let hsum = strata_store::digest::hex(&hsum.finalize());
        let workdir = run.state.string("WorkingDir");
        let dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            let base = if workdir.is_empty() { "/".to_string() } else { workdir };
            let mut d = format!("{}/{}", base.trim_end_matches('/'), c.dest);
            if c.dest == "." || c.dest == "./" {
                d = format!("{}/", base.trim_end_matches('/'));
            }
            d
        };
        let shell = run.state.shell();
        // Docker 20.10 writes no space between the flag and the hash.
        let chown_text = c.chown.as_ref().map(|o| format!("--chown={o}")).unwrap_or_default();
        let from_urls = shown.srcs.iter().all(|s| s.starts_with("http://") || s.starts_with("https://"));
        let desc = match (sources.len() + heredoc_srcs.len(), sources.first()) {
            // The classic builder names a downloaded file by its hash alone.
            (1, Some(_)) if from_urls => sum.clone(),
            (1, Some(s)) if tree.entry(s, true).map(|e| e.kind == crate::context::Kind::Dir).unwrap_or(false) => {
                format!("dir:{sum}")
            }
            (1, Some(_)) => format!("file:{sum}"),
            _ => format!("multi:{sum}"),
        };
        let legacy_text = format!("{name} {chown_text}{desc} in {} ", c.dest);
        let nop = history::legacy_nop_cmd(&shell, &legacy_text, true);
        let created_by = match flavor {
            Flavor::Legacy => nop.join(" "),
            Flavor::BuildKit => format!("{name} {} {} # buildkit", copy_sources_text(shown), c.dest),
        };
        let key = key_of(&[
            "copy",
            &format!("{flavor:?}"),
            &Self::parent_key(run),
            &created_by,
            &sum,
            &hsum,
            c.chown.as_deref().unwrap_or(""),
            c.chmod.as_deref().unwrap_or(""),
            &dest,
        ]);
        if self.try_cache(run, &key)? {
            return Ok(());
        }
        let chmod = match &c.chmod {
            Some(m) => {
                Some(u32::from_str_radix(m, 8).map_err(|_| Error::Source(format!("invalid chmod parameter: {m}")))?)
            }
            None => None,
        };
        let layer = self.temp_layer(run)?;
        let r = (|| -> Result<Digest, Error> {
            let t0 = std::time::Instant::now();
            let root_path = self.store.driver().mount(&layer)?;
            tracing::debug!("copy: mounted in {:?}", t0.elapsed());
            let copied = (|| -> Result<(), Error> {
                let root = Root::open(&root_path)?;
                let owner = match &c.chown {
                    Some(spec) => Some(chown_ids(&root, spec)?),
                    None => None,
                };
                let o = CopyOptions { owner, chmod, extract };
                // Files go straight into the layer's own directory where the
                // driver has one (resolved through the mount).
                let upper = match self.store.driver().upper_dir(&layer)? {
                    Some(u) if u != root_path => Some(Root::open(&u)?),
                    _ => None,
                };
                let target_root = crate::copy::Dest { root: &root, upper };
                crate::copy::copy(tree, &sources, &target_root, &dest, &o)?;
                for h in &heredoc_srcs {
                    let target = if dest.ends_with('/') { format!("{dest}{}", h.name) } else { dest.clone() };
                    crate::copy::write_file(&target_root, &target, h.body().as_bytes(), &o)?;
                }
                Ok(())
            })();
            tracing::debug!("copy: copied at {:?}", t0.elapsed());
            self.store.driver().unmount(&layer)?;
            copied?;
            tracing::debug!("copy: unmounted at {:?}", t0.elapsed());
            let r = self.publish(run, &layer, &created_by, &nop);
            tracing::debug!("copy: published at {:?}", t0.elapsed());
            r
        })();
        let _ = self.store.driver().remove(&layer);
        let id = r?;
        self.record(&key, &id)?;
        self.progress.done(&id);
        Ok(())
    }

    /// Resolve `RUN --mount`s to binds and tmpfs mounts; returns them, the
    /// temporary layers mounted for `from=` (to remove after the step) and
    /// what the cache key must include.
    fn run_mounts(&mut self, run: &StageRun, specs: &[String]) -> Result<ResolvedMounts, Error> {
        let (mut binds, mut tmpfs, mut temps, mut key) = (Vec::new(), Vec::new(), Vec::new(), String::new());
        for spec in specs {
            key.push_str(spec);
            key.push('\n');
            match RunMount::parse(spec)? {
                RunMount::Bind { source, target, from } => {
                    let rel = crate::context::clean_rel(&source).unwrap_or_default();
                    let missing =
                        |p: &str| Error::Source(format!("failed to compute cache key: \"/{p}\" not found: not found"));
                    let host = match &from {
                        None => {
                            let t = &self.ctx.tree;
                            let found = t.resolve(std::slice::from_ref(&rel), &missing)?;
                            key.push_str(&t.checksum(&found)?);
                            real_path(t, &rel)?
                        }
                        Some(f) => {
                            let (t, id) = self.source_tree(run, f)?;
                            if let Some(id) = id {
                                temps.push(id);
                            }
                            t.resolve(std::slice::from_ref(&rel), &missing)?;
                            real_path(&t, &rel)?
                        }
                    };
                    binds.push(Bind { source: host, destination: target, read_only: true, volume: None });
                }
                RunMount::Cache { target, id, uid, gid, mode } => {
                    let dir =
                        self.store.root().join("buildcache-mounts").join(strata_store::Digest::of(id.as_bytes()).hex());
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
                        rustix::fs::chown(
                            &dir,
                            Some(rustix::fs::Uid::from_raw(uid)),
                            Some(rustix::fs::Gid::from_raw(gid)),
                        )
                        .map_err(|e| Error::io("chown", &dir, e))?;
                        rustix::fs::chmod(&dir, rustix::fs::Mode::from_raw_mode(mode))
                            .map_err(|e| Error::io("chmod", &dir, e))?;
                    }
                    binds.push(Bind {
                        source: dir.to_string_lossy().into_owned(),
                        destination: target,
                        read_only: false,
                        volume: None,
                    });
                }
                RunMount::Tmpfs { target, size } => {
                    tmpfs.push(Tmpfs {
                        destination: target,
                        options: size.map(|s| vec![format!("size={s}")]).unwrap_or_default(),
                    });
                }
            }
        }
        Ok((binds, tmpfs, temps, key))
    }

    fn run_step(
        &mut self,
        run: &mut StageRun,
        words: &[String],
        network: Option<&str>,
        mounts: &[String],
    ) -> Result<(), Error> {
        let flavor = self.opts.flavor;
        if flavor == Flavor::Legacy && !mounts.is_empty() {
            return Err(Error::Source(
                "the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled".into(),
            ));
        }
        let (binds, tmpfs, temps, mount_key) = self.run_mounts(run, mounts)?;
        let r = self.run_step_with(run, words, network, binds, tmpfs, &mount_key);
        for id in temps {
            let _ = self.store.driver().unmount(&id);
            let _ = self.store.driver().remove(&id);
        }
        r
    }

    fn run_step_with(
        &mut self,
        run: &mut StageRun,
        words: &[String],
        network: Option<&str>,
        binds: Vec<Bind>,
        tmpfs: Vec<Tmpfs>,
        mount_key: &str,
    ) -> Result<(), Error> {
        let flavor = self.opts.flavor;
        let args = run.scope.run_build_args();
        let legacy_cmd = history::run_cmd(words, &args);
        let created_by = match flavor {
            Flavor::Legacy => legacy_cmd.join(" "),
            Flavor::BuildKit => format!("RUN {} # buildkit", legacy_cmd.join(" ")),
        };
        let network = network.unwrap_or(&self.opts.network).to_string();
        let env = run.scope.run_env();
        let key = key_of(&[
            "run",
            &format!("{flavor:?}"),
            &Self::parent_key(run),
            &created_by,
            &env.join("\n"),
            &network,
            mount_key,
        ]);
        if self.try_cache(run, &key)? {
            return Ok(());
        }
        let id = random_id();
        let c = self.make_container(run, &id, words, &env, &network, binds, tmpfs)?;
        let result = self.run_container(run, &c);
        let published = match result {
            Ok(0) => {
                let r = self.publish(run, &c.layer, &created_by, &legacy_cmd);
                r.map(Some)
            }
            Ok(code) => {
                let shown = words.join(" ");
                let text = match flavor {
                    Flavor::Legacy => format!("The command '{shown}' returned a non-zero code: {code}"),
                    Flavor::BuildKit => format!("executor failed running [{shown}]: exit code: {code}"),
                };
                Err(Error::RunFailed { text, code })
            }
            Err(e) => Err(e),
        };
        let _ = ctr::remove(self.store, &c);
        self.progress.removed(&c.id);
        let id = published?.expect("published");
        self.record(&key, &id)?;
        self.progress.done(&id);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn make_container(
        &mut self,
        run: &StageRun,
        id: &str,
        words: &[String],
        env: &[String],
        network: &str,
        binds: Vec<Bind>,
        tmpfs: Vec<Tmpfs>,
    ) -> Result<Container, Error> {
        let parent = match &run.state.top_layer {
            Some(c) => Some(self.store.layers().require(c)?.cache_id),
            None => None,
        };
        let layer = format!("c-{}", &id[..32]);
        let init = format!("{layer}-init");
        ctr::make_layers(self.store, &layer, &init, parent.as_deref())?;
        let c = Container {
            id: id.to_string(),
            name: format!("strata-build-{}", &id[..12]),
            image: run.state.id.clone().unwrap_or_else(|| Digest::of(b"scratch")),
            image_name: String::new(),
            image_top_layer: run.state.top_layer.clone(),
            layer,
            init_layer: Some(init),
            created: strata_store::config::format_time(chrono::Utc::now()),
            command: words.to_vec(),
            labels: BTreeMap::from([
                ("strata.build".to_string(), "step".to_string()),
                // Which build made it: an interrupted build removes its own.
                ("strata.build.pid".to_string(), std::process::id().to_string()),
            ]),
        };
        let rc = RunConfig {
            entrypoint: Some(String::new()),
            cmd: words.to_vec(),
            env: env.to_vec(),
            user: Some(run.state.string("User")),
            workdir: Some(run.state.string("WorkingDir")).filter(|w| !w.is_empty()),
            network: network.to_string(),
            membership_groups_only: self.opts.flavor == Flavor::BuildKit,
            binds,
            tmpfs,
            ..RunConfig::default()
        };
        let saved = ctr::save_run_config(self.store, id, &rc).map_err(Error::from).and_then(|()| {
            Containers::new(self.store.root()).put(&c)?;
            Ok(())
        });
        if let Err(e) = saved {
            let _ = ctr::remove(self.store, &c);
            return Err(e);
        }
        let mut img = run.state.image_runtime();
        // The step's env is complete (image env + build args): no second copy.
        img.env.clear();
        if let Err(e) = ctr::prepare_with(self.store, &c, &rc, &img) {
            let _ = ctr::remove(self.store, &c);
            return Err(e.into());
        }
        Ok(c)
    }

    /// Run a prepared step container to its end; its exit status.
    fn run_container(&mut self, _run: &StageRun, c: &Container) -> Result<i32, Error> {
        use strata_runtime::attach;
        self.progress.running(&c.id);
        let att = ctr::spawn_monitor(self.store, c, &self.opts.exe)?;
        let mut s = att.stream;
        loop {
            match attach::read_frame(&mut s)? {
                Some((attach::STARTED, _)) => {}
                Some((attach::FAILED, p)) if !p.is_empty() => {
                    let msg = String::from_utf8_lossy(&p[1..]).into_owned();
                    return Err(Error::System(msg));
                }
                Some((attach::STDOUT | attach::STDERR, d)) => self.progress.output(&d),
                Some((attach::EXIT, d)) if d.len() == 4 => return Ok(i32::from_be_bytes([d[0], d[1], d[2], d[3]])),
                Some(_) => {}
                None => return Err(Error::System("the step's container monitor exited unexpectedly".into())),
            }
        }
    }

    /// `--label`: the classic builder adds a LABEL step; BuildKit sets them
    /// in the final config.
    fn final_labels(&mut self, state: &mut ImageState) -> Result<(), Error> {
        let labels = state.runtime_mut().entry("Labels").or_insert_with(|| json!({}));
        if !labels.is_object() {
            *labels = json!({});
        }
        for (k, v) in &self.opts.labels {
            labels[k] = json!(v);
        }
        let flavor = self.opts.flavor;
        let text =
            format!("LABEL {}", self.opts.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
        let nop = history::legacy_nop_cmd(&state.shell(), &text, false);
        if flavor == Flavor::Legacy {
            state.add_history(&nop.join(" "), true, flavor);
        }
        state.commit(self.store, flavor, Some(&nop))?;
        Ok(())
    }
}

/// Fetch `url` into `dir` as Docker's ADD does: named after the URL's last
/// path component, mode 0600, mtime from `Last-Modified` when given.
/// Returns the file name.
fn download(url: &str, dir: &std::path::Path) -> Result<String, Error> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name =
        path.rsplit('/').next().filter(|n| !n.is_empty() && *n != "." && *n != "..").unwrap_or("download").to_string();
    let resp = ureq::get(url).call().map_err(|e| Error::Source(format!("failed to GET {url}: {e}")))?;
    let modified = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok());
    let target = dir.join(&name);
    let mut f = std::fs::File::create(&target).map_err(|e| Error::io("create", &target, e))?;
    std::io::copy(&mut resp.into_body().into_reader(), &mut f)
        .map_err(|e| Error::Source(format!("failed to GET {url}: {e}")))?;
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| Error::io("chmod", &target, e))?;
    if let Some(t) = modified {
        let _ = f.set_modified(std::time::SystemTime::from(t));
    }
    Ok(name)
}

/// The sources of a COPY/ADD as written: paths, then heredocs as `<<NAME`.
fn copy_sources_text(c: &Copy) -> String {
    let mut v: Vec<String> = c.srcs.clone();
    for h in &c.heredocs {
        let tag = format!("<<{}", h.name);
        if !v.iter().any(|s| s.ends_with(&tag)) {
            v.push(tag);
        }
    }
    v.join(" ")
}

/// The host path of `rel` in `t`, symlinks resolved inside the tree (for
/// a bind mount's source).
fn real_path(t: &Tree, rel: &str) -> Result<String, Error> {
    use std::os::fd::AsRawFd;
    let fd = t.open_rel(rel, rustix::fs::OFlags::PATH, true).map_err(|e| Error::io("open", &t.path().join(rel), e))?;
    let p = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| Error::io("resolve", &t.path().join(rel), e))?;
    Ok(p.to_string_lossy().into_owned())
}

/// `--chown=user[:group]` against the destination's passwd and group:
/// a group defaults to the user's name (Docker's rule), numbers need no
/// entry.
fn chown_ids(root: &Root, spec: &str) -> Result<(u32, u32), Error> {
    let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
    let passwd = root.read("/etc/passwd")?.unwrap_or_default();
    let group = root.read("/etc/group")?.unwrap_or_default();
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => strata_runtime::user::resolve(u, &passwd, &group)
            .map_err(|_| Error::Source(format!("unable to convert uid/gid chown string to host mapping: can't find uid for user {u}: no such user: {u}")))?
            .uid,
    };
    let gid = match g.parse::<u32>() {
        Ok(n) => n,
        Err(_) => group
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == g).then(|| f[2].parse::<u32>().ok()).flatten()
            })
            .ok_or_else(|| Error::Source(format!("unable to convert uid/gid chown string to host mapping: can't find gid for group {g}: no such group: {g}")))?,
    };
    Ok((uid, gid))
}

/// Docker's full name of an image reference (`busybox` →
/// `docker.io/library/busybox`), as BuildKit shows FROM.
fn full_name(image: &str) -> String {
    match Reference::parse(image) {
        Ok(r) => {
            let (registry, path) = r.registry_and_path();
            let mut s = format!("{registry}/{path}");
            if let Some(t) = r.tag.as_ref().filter(|t| t.as_str() != "latest") {
                s.push(':');
                s.push_str(t);
            }
            s
        }
        Err(_) => image.to_string(),
    }
}
