//! `build` (and `image build`): the context and Dockerfile from Docker's
//! flags, the builder flavour (`--builder`, or `DOCKER_BUILDKIT=0` for the
//! classic builder), and the executor's progress on stdout (classic) or
//! stderr (BuildKit); `builder prune` empties the build cache.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use strata_build::context::Context;
use strata_build::executor::{self, BuildOptions};
use strata_build::progress::{Legacy, Plain, Progress, Quiet};
use strata_build::scope::Flavor;
use strata_store::{Digest, Reference};

use crate::cli::{BuildArgs, BuilderPruneArgs, PullArgs};
use crate::printer::Printer;
use crate::settings::Settings;
use crate::Exit;

fn flavor(a: &BuildArgs) -> Result<Flavor> {
    match a.builder.as_deref() {
        Some("legacy") | Some("classic") => return Ok(Flavor::Legacy),
        Some("buildkit") => return Ok(Flavor::BuildKit),
        Some(b) => bail!("unknown builder {b:?} (legacy or buildkit)"),
        None => {}
    }
    Ok(match std::env::var("DOCKER_BUILDKIT").as_deref() {
        Ok("0") | Ok("false") => Flavor::Legacy,
        _ => Flavor::BuildKit,
    })
}

fn is_tar(head: &[u8]) -> bool {
    (head.len() >= 2 && head[..2] == [0x1f, 0x8b]) || (head.len() >= 262 && &head[257..262] == b"ustar")
}

/// The context and the Dockerfile's text.
fn context_and_dockerfile(a: &BuildArgs) -> Result<(Context, String)> {
    let read_file = |p: &Path| -> Result<String> {
        std::fs::read_to_string(p).map_err(|e| {
            anyhow!(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: {}",
                p.display(),
                crate::printer::error_text(&anyhow!(e))
            )
        })
    };
    if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        let mut buf = Vec::new();
        std::io::stdin().lock().read_to_end(&mut buf)?;
        if is_tar(&buf) {
            let name = a.file.clone().unwrap_or_else(|| "Dockerfile".into());
            let ctx = Context::tar(&mut &buf[..])?;
            let text = read_file(&ctx.tree.path().join(&name))?;
            return Ok((ctx, text));
        }
        return Ok((Context::empty()?, String::from_utf8_lossy(&buf).into_owned()));
    }
    let path = PathBuf::from(&a.context);
    let meta =
        std::fs::metadata(&path).map_err(|_| anyhow!("unable to prepare context: path \"{}\" not found", a.context))?;
    // The Dockerfile: `-f -` (stdin), `-f PATH` (from the current
    // directory), else `Dockerfile` (or `dockerfile`) in the context.
    let dockerfile_text = |ctx_dir: &Path| -> Result<String> {
        match a.file.as_deref() {
            Some("-") => {
                let mut s = String::new();
                std::io::stdin().lock().read_to_string(&mut s)?;
                Ok(s)
            }
            Some(f) => read_file(Path::new(f)),
            None => {
                let p = ctx_dir.join("Dockerfile");
                let p = if p.exists() || !ctx_dir.join("dockerfile").exists() { p } else { ctx_dir.join("dockerfile") };
                read_file(&p)
            }
        }
    };
    if meta.is_dir() {
        let text = dockerfile_text(&path)?;
        return Ok((Context::dir(&path)?, text));
    }
    let mut f = std::fs::File::open(&path)?;
    let name = a.file.clone().unwrap_or_else(|| "Dockerfile".into());
    let ctx = Context::tar(&mut f)?;
    let text = read_file(&ctx.tree.path().join(&name))?;
    Ok((ctx, text))
}

/// `build`
pub fn run(s: &Settings, a: BuildArgs) -> Result<()> {
    let flavor = flavor(&a)?;
    let mut tags = Vec::new();
    for t in &a.tag {
        tags.push(
            Reference::parse_tagged(t).map_err(|e| anyhow!("invalid argument \"{t}\" for \"-t, --tag\" flag: {e}"))?,
        );
    }
    let mut build_args = BTreeMap::new();
    for kv in &a.build_arg {
        match kv.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(kv) {
                    build_args.insert(kv.clone(), v);
                }
            }
        }
    }
    let labels: Vec<(String, String)> = a
        .label
        .iter()
        .map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((l.clone(), String::new())))
        .collect();
    if !matches!(a.network.as_str(), "none" | "host" | "default") {
        bail!("network mode \"{}\" not supported by strata (none or host)", a.network);
    }
    let (ctx, dockerfile) = context_and_dockerfile(&a)?;
    let store = s.store()?;
    let opts = BuildOptions {
        flavor,
        dockerfile: dockerfile.clone(),
        tags,
        build_args,
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels,
        network: if a.network == "default" { "none".into() } else { a.network.clone() },
        exe: std::env::current_exe()?,
    };
    let pull = a.pull;
    let resolve = |name: &str| -> Result<Digest, strata_build::Error> {
        let local = || -> Option<Digest> { store.resolve(name).ok() };
        if !pull {
            if let Some(id) = local() {
                return Ok(id);
            }
        }
        crate::commands::registry::pull(
            s,
            PullArgs { all_tags: false, quiet: true, platform: None, name: name.to_string() },
        )
        .map_err(|e| {
            strata_build::Error::Source(format!(
                "pull access denied for {name}, repository does not exist or may require 'docker login': {}",
                crate::printer::error_text(&e)
            ))
        })?;
        local().ok_or_else(|| strata_build::Error::Source(format!("No such image: {name}")))
    };
    let mut progress: Box<dyn Progress> = if a.quiet {
        Box::new(Quiet)
    } else {
        match flavor {
            Flavor::Legacy => Box::new(Legacy::new(std::io::stdout())),
            Flavor::BuildKit => Box::new(Plain::new(std::io::stderr(), dockerfile.len())),
        }
    };
    interrupt_cleans_up(s);
    match executor::build(&store, &ctx, &opts, progress.as_mut(), &resolve) {
        Ok(id) => {
            if let Some(p) = &a.iidfile {
                std::fs::write(p, id.to_string())?;
            }
            if a.quiet {
                Printer::stdout().line(&id.to_string())?;
            }
            Ok(())
        }
        Err(e) => {
            std::io::stdout().flush()?;
            let code = match &e {
                strata_build::Error::RunFailed { code, .. } if flavor == Flavor::Legacy => (*code).clamp(1, 255) as u8,
                _ => 1,
            };
            use strata_build::Error as E;
            match (flavor, &e) {
                (Flavor::Legacy, E::RunFailed { .. } | E::Source(_)) => eprintln!("{e}"),
                (Flavor::Legacy, E::NoInstructions) => {
                    eprintln!("Error response from daemon: failed to parse Dockerfile: {e}")
                }
                (Flavor::Legacy, _) => eprintln!("Error response from daemon: {e}"),
                // What the Dockerfile frontend refuses, then what the solver does.
                (
                    Flavor::BuildKit,
                    E::Parse { .. }
                    | E::NoInstructions
                    | E::Stage(_)
                    | E::TargetNotFound(_)
                    | E::AtLine { .. }
                    | E::Expand { .. },
                ) => {
                    eprintln!("failed to solve with frontend dockerfile.v0: failed to create LLB definition: {e}")
                }
                (Flavor::BuildKit, _) => eprintln!("{e}"),
            }
            Err(Exit(code).into())
        }
    }
}

/// Ctrl-C (or TERM) during a build: the step containers this build runs
/// are killed and removed before exiting 130, so nothing is left behind
/// but the finished steps (kept as cache).
fn interrupt_cleans_up(s: &Settings) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut sigs) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
    let (root, driver) = (s.root.clone(), s.driver.clone());
    let me = std::process::id().to_string();
    std::thread::spawn(move || {
        if sigs.forever().next().is_some() {
            // First: the main thread, seeing its step fail, must not exit
            // with its own status meanwhile (it waits for this thread).
            let _held = strata_store::cleanup::interrupt();
            if let Ok(store) = strata_store::Store::open(&root, &driver) {
                let table = strata_store::containers::Containers::new(store.root());
                for c in table.list().unwrap_or_default() {
                    if c.labels.get("strata.build.pid") == Some(&me) {
                        let _ = strata_runtime::container::force_stop(&store, &c);
                        if let Ok(_l) = store.publish() {
                            let _ = strata_runtime::container::remove(&store, &c);
                        }
                    }
                }
            }
            eprintln!("ERROR: the build was interrupted");
            std::process::exit(130);
        }
    });
}

/// `builder prune`: forget every cached step (the images stay until pruned).
pub fn prune(s: &Settings, a: BuilderPruneArgs) -> Result<()> {
    if !a.force {
        let prompt = "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ";
        if !crate::commands::confirm(&mut std::io::stdout(), prompt)? {
            return Ok(());
        }
    }
    // Every cache record is unused once the index is gone: `-a` changes nothing.
    let _all = a.all;
    let store = s.store()?;
    let (removed, reclaimed) = clear_cache(&store)?;
    let mut p = Printer::stdout();
    if !removed.is_empty() {
        p.line("Deleted build cache objects:")?;
        for id in &removed {
            p.line(&id.hex()[..25])?;
        }
    }
    p.line(&format!("Total reclaimed space: {}", crate::printer::size(reclaimed)))
}

/// Forget the build cache and remove the untagged steps it kept; returns
/// them and the bytes freed.
pub fn clear_cache(store: &strata_store::Store) -> Result<(Vec<Digest>, u64)> {
    {
        let _l = store.publish()?;
        strata_store::buildcache::BuildCache::new(store.root()).clear()?;
    }
    // The untagged steps of BuildKit-style builds (every one: with the
    // cache index gone nothing refers to them).
    let repos = store.repositories()?;
    let sizes: BTreeMap<Digest, u64> = store
        .layers()
        .list()?
        .into_iter()
        .filter_map(|c| store.layers().get(&c).ok().flatten().map(|l| (c, l.size)))
        .collect();
    let mut removed = Vec::new();
    for img in store.images()? {
        if img.meta.build_cache && repos.of(&img.id).is_empty() {
            let opts = strata_store::remove::RemoveOptions { force: true, ..Default::default() };
            strata_store::remove::remove_image(store, &img.id.to_string(), opts)?;
            removed.push(img.id);
        }
    }
    let reclaimed: u64 = store.prune_layers()?.iter().filter_map(|c| sizes.get(c)).sum();
    Ok((removed, reclaimed))
}
