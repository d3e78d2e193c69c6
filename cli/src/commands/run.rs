//! `create`, `run` and `start`: a container's settings from Docker's flags,
//! its layers, and starting it through its monitor (attached or detached).

use std::path::Path;

use anyhow::{anyhow, bail, Result};
use strata_runtime::container as ctr;
use strata_runtime::{Bind, RunConfig, Tmpfs, Ulimit};
use strata_store::containers::{Container, Containers};
use strata_store::{Error, Store};

use crate::cli::{ContainerFlags, CreateArgs, RunArgs, StartArgs};
use crate::commands::attach::{self, Streams};
use crate::commands::containers::{find, generated_name, valid_name};
use crate::printer::{self, Printer};
use crate::settings::Settings;
use crate::{Exit, Reported};

/// Print a daemon-side failure of `run` as Docker does
/// (`docker: Error response from daemon: … .`) and exit with `status`.
pub fn fail(status: u8, msg: &str) -> anyhow::Error {
    let msg = msg.trim_end_matches('.');
    if msg.starts_with("Error response from daemon") {
        eprintln!("strata: {msg}.");
    } else {
        eprintln!("strata: Error response from daemon: {msg}.");
    }
    Exit(status).into()
}

fn env_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("open {}: {}", path.display(), e))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        out.push(l.to_string());
    }
    Ok(out)
}

/// `-e` values resolved: `K=V` kept, a bare `K` takes the caller's value
/// (dropped when the caller has none), as Docker does.
pub fn resolve_env(files: &[std::path::PathBuf], env: &[String]) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for f in files {
        all.extend(env_file(f)?);
    }
    all.extend(env.iter().cloned());
    let mut out = Vec::new();
    for kv in all {
        if kv.starts_with('=') {
            bail!("invalid environment variable: {kv}");
        }
        if kv.contains('=') {
            out.push(kv);
        } else if let Some(v) = std::env::var_os(&kv) {
            out.push(format!("{kv}={}", v.to_string_lossy()));
        }
    }
    Ok(out)
}

/// A named volume's bind (made when missing; filled from the image at
/// the first start).
fn named_volume(root: &Path, name: &str, destination: &str, read_only: bool) -> Result<Bind> {
    let vols = strata_runtime::volumes::Volumes::new(root);
    vols.create(name, Default::default())?;
    Ok(Bind {
        source: vols.data(name).to_string_lossy().into_owned(),
        destination: destination.to_string(),
        read_only,
        volume: Some(name.to_string()),
    })
}

fn parse_volume(root: &Path, v: &str) -> Result<Bind> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => bail!("invalid volume specification: '{v}'"),
    };
    if !dst.starts_with('/') {
        bail!("invalid volume specification: '{v}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute");
    }
    let read_only = match mode {
        "" | "rw" => false,
        "ro" => true,
        m => bail!("invalid mode: {m}"),
    };
    if !src.starts_with('/') {
        return named_volume(root, src, dst, read_only);
    }
    if !Path::new(src).exists() {
        // Docker creates a missing bind source for -v (not for --mount).
        std::fs::create_dir_all(src).map_err(|e| anyhow!("create mount source {src}: {e}"))?;
    }
    Ok(Bind { source: src.to_string(), destination: dst.to_string(), read_only, volume: None })
}

fn parse_mount(root: &Path, m: &str, run: &mut RunConfig) -> Result<()> {
    let mut ty = "volume".to_string();
    let (mut src, mut dst, mut ro) = (None, None, false);
    let mut tmpfs_opts = Vec::new();
    for field in m.split(',') {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => ty = v.to_string(),
            "source" | "src" => src = Some(v.to_string()),
            "target" | "destination" | "dst" => dst = Some(v.to_string()),
            "readonly" | "ro" => ro = v.is_empty() || v == "true" || v == "1",
            "tmpfs-size" => tmpfs_opts.push(format!("size={v}")),
            "tmpfs-mode" => tmpfs_opts.push(format!("mode={v}")),
            "bind-propagation" | "consistency" | "volume-nocopy" => {}
            _ => bail!("invalid argument \"{m}\" for \"--mount\" flag: unexpected key '{k}' in '{field}'"),
        }
    }
    let Some(dst) = dst else { bail!("invalid argument \"{m}\" for \"--mount\" flag: target is required") };
    match ty.as_str() {
        "bind" => {
            let Some(src) = src else {
                bail!("invalid mount config for type \"bind\": field Source must not be empty")
            };
            if !Path::new(&src).exists() {
                bail!("invalid mount config for type \"bind\": bind source path does not exist: {src}");
            }
            run.binds.push(Bind { source: src, destination: dst, read_only: ro, volume: None });
        }
        "volume" => {
            let src = match src {
                Some(s) => s,
                None => strata_store::layers::new_cache_id() + &strata_store::layers::new_cache_id(),
            };
            run.binds.push(named_volume(root, &src, &dst, ro)?);
        }
        "tmpfs" => run.tmpfs.push(Tmpfs { destination: dst, options: tmpfs_opts }),
        t => bail!("invalid argument \"{m}\" for \"--mount\" flag: invalid mount type: {t}"),
    }
    Ok(())
}

/// The run settings of `create`/`run` flags (validated; nothing made yet
/// except named volumes' directories).
pub fn run_config(root: &Path, f: &ContainerFlags, cmd: &[String]) -> Result<RunConfig> {
    let mut run = RunConfig {
        tty: f.tty,
        interactive: f.interactive,
        env: resolve_env(&f.env_file, &f.env)?,
        workdir: f.workdir.clone(),
        user: f.user.clone(),
        entrypoint: f.entrypoint.clone(),
        cmd: cmd.to_vec(),
        hostname: f.hostname.clone(),
        network: f.network.clone().unwrap_or_else(|| "none".into()),
        read_only: f.read_only,
        init: f.init,
        stop_signal: f.stop_signal.clone(),
        stop_timeout: f.stop_timeout,
        cap_add: f.cap_add.clone(),
        cap_drop: f.cap_drop.clone(),
        privileged: f.privileged,
        security_opt: f.security_opt.clone(),
        auto_remove: f.rm,
        runtime: f.runtime.clone(),
        ..RunConfig::default()
    };
    match run.network.as_str() {
        "none" | "host" => {}
        "default" | "bridge" => run.network = "none".into(),
        n => bail!("network {n} not found (strata has no networks besides none and host)"),
    }
    for p in &f.publish {
        run.ports.push(strata_runtime::ports::PortMap::parse(p).map_err(|e| anyhow!("{e}"))?);
    }
    if let Some(s) = &f.stop_signal {
        ctr::parse_signal(s)?;
    }
    strata_runtime::spec::capabilities(&run)?;
    for u in &f.ulimit {
        run.ulimits.push(Ulimit::parse(u).map_err(|e| anyhow!("invalid argument \"{u}\" for \"--ulimit\" flag: {e}"))?);
    }
    for t in &f.tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !dst.starts_with('/') {
            bail!("invalid mount config for type \"tmpfs\": invalid mount path: '{dst}' mount path must be absolute");
        }
        let options = opts.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect();
        run.tmpfs.push(Tmpfs { destination: dst.to_string(), options });
    }
    for v in &f.volume {
        run.binds.push(parse_volume(root, v)?);
    }
    for m in &f.mount {
        parse_mount(root, m, &mut run)?;
    }
    for o in &f.security_opt {
        let ok = o.starts_with("seccomp=")
            || o.starts_with("seccomp:")
            || o.starts_with("no-new-privileges")
            || o.starts_with("label")
            || o.starts_with("apparmor");
        if !ok {
            bail!("invalid --security-opt 2: \"{o}\"");
        }
    }
    Ok(run)
}

/// Resolve the image of `create`/`run`, pulling it when missing (`--pull
/// missing`, Docker's default) or always.
fn image_for(s: &Settings, image: &str, pull: &str) -> Result<strata_store::Digest> {
    let resolve = || -> Result<Option<strata_store::Digest>> {
        let store = s.store()?;
        match store.resolve(image) {
            Ok(id) => Ok(Some(id)),
            Err(Error::NoSuchImage(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    let found = match pull {
        "always" => None,
        "missing" | "never" => resolve()?,
        p => bail!("invalid pull option: '{p}': must be one of \"always\", \"missing\" or \"never\""),
    };
    if let Some(id) = found {
        return Ok(id);
    }
    let mut r = strata_store::Reference::parse(image)?;
    if r.tag.is_none() && r.digest.is_none() {
        r.tag = Some("latest".into());
    }
    let name = r.to_string();
    if pull == "never" {
        bail!("Error response from daemon: No such image: {name}");
    }
    if pull == "missing" {
        eprintln!("Unable to find image '{name}' locally");
    }
    crate::commands::registry::pull_with(
        s,
        crate::cli::PullArgs { all_tags: false, quiet: false, platform: None, name: image.to_string() },
        true,
    )?;
    resolve()?.ok_or_else(|| anyhow!("Error response from daemon: No such image: {name}"))
}

/// Make a container: layers (init + writable), metadata and run settings.
fn make(s: &Settings, f: &ContainerFlags, args: &[String]) -> Result<(Store, Container)> {
    let image_name = &args[0];
    let run = run_config(&s.root, f, &args[1..])?;
    let image_id = image_for(s, image_name, &f.pull)?;
    let store = s.store()?;
    let _lock = store.publish()?;
    let image = store.image(&image_id)?;
    let table = Containers::new(store.root());
    let all = table.list()?;
    if let Some(n) = &f.name {
        if !valid_name(n) {
            bail!(
                "Error response from daemon: Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            );
        }
        if let Some(c) = all.iter().find(|c| &c.name == n) {
            bail!(
                "Error response from daemon: Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                c.id
            );
        }
    }
    let id = format!("{}{}", strata_store::layers::new_cache_id(), strata_store::layers::new_cache_id());
    let top = image.top_layer();
    let parent_cache = match &top {
        Some(c) => Some(store.layers().require(c)?.cache_id),
        None => None,
    };
    let layer = format!("c-{}", &id[..32]);
    let init = format!("{layer}-init");
    ctr::make_layers(&store, &layer, &init, parent_cache.as_deref())?;
    let mut labels = std::collections::BTreeMap::new();
    for l in &f.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let c = Container {
        name: f.name.clone().unwrap_or_else(|| generated_name(&id, &all)),
        id: id.clone(),
        image: image_id,
        image_name: image_name.clone(),
        image_top_layer: top,
        layer,
        init_layer: Some(init),
        created: strata_store::config::format_time(chrono::Utc::now()),
        command: args[1..].to_vec(),
        labels,
    };
    let saved = ctr::save_run_config(&store, &id, &run).map_err(anyhow::Error::from).and_then(|()| Ok(table.put(&c)?));
    if let Err(e) = saved {
        let _ = ctr::remove(&store, &c);
        return Err(e);
    }
    drop(_lock);
    Ok((store, c))
}

/// `create`: prints the new container's full ID.
pub fn create(s: &Settings, a: CreateArgs) -> Result<()> {
    let (_, c) = make(s, &a.flags, &a.args)?;
    Printer::stdout().line(&c.id)
}

/// How a started run is followed.
pub enum Follow {
    /// Print nothing, return once it runs (`-d`, `start` without `-a`).
    Detached,
    /// Stream its output (and stdin with `stdin`) until it exits.
    Attached {
        /// Forward our stdin.
        stdin: bool,
        /// Forward signals to the container.
        sig_proxy: bool,
    },
}

/// Start container `c` (prepared under the store lock, monitor spawned
/// without it) and follow it. Returns the exit status to give (0 when
/// detached). Failures to start are printed Docker's way.
pub fn start_container(store: &Store, c: &Container, follow: Follow, for_run: bool) -> Result<u8> {
    let run = ctr::run_config(store, &c.id)?;
    {
        let _lock = store.publish()?;
        if let Err(e) = ctr::prepare(store, c, &run) {
            if run.auto_remove {
                let _ = ctr::remove(store, c);
            }
            let status = e.exit_status();
            let msg = e.to_string();
            if for_run {
                return Err(fail(status, &msg));
            }
            eprintln!("Error response from daemon: {msg}");
            return Err(Reported.into());
        }
    }
    let exe = std::env::current_exe()?;
    let attachment = ctr::spawn_monitor(store, c, &exe)?;
    let mut stream = attachment.stream;
    match attach::wait_started(&mut stream)? {
        Ok(()) => {}
        Err((status, msg)) => {
            if for_run {
                return Err(fail(status, &msg));
            }
            eprintln!("Error response from daemon: {msg}");
            eprintln!("Error: failed to start containers: {}", c.name);
            return Err(Exit(status).into());
        }
    }
    match follow {
        Follow::Detached => Ok(0),
        Follow::Attached { stdin, sig_proxy } => {
            let rt = ctr::runtime_for(store, c, &run)?;
            let streams = Streams {
                tty: run.tty,
                stdin: stdin && run.interactive,
                proxy: sig_proxy.then_some((rt, c.id.clone())),
            };
            attach::follow(stream, streams)
        }
    }
}

/// `run`: create, start, and attach (or print the ID with `-d`).
pub fn run(s: &Settings, a: RunArgs) -> Result<()> {
    let (store, c) = match make(s, &a.flags, &a.args) {
        Ok(x) => x,
        Err(e) => {
            if e.is::<Exit>() {
                return Err(e);
            }
            let text = printer::error_text(&e);
            return Err(fail(125, text.strip_prefix("Error response from daemon: ").unwrap_or(&text)));
        }
    };
    let follow = if a.detach {
        Follow::Detached
    } else {
        Follow::Attached { stdin: a.flags.interactive, sig_proxy: a.sig_proxy && !a.flags.tty }
    };
    let code = start_container(&store, &c, follow, true)?;
    if a.detach {
        Printer::stdout().line(&c.id)?;
        return Ok(());
    }
    if code != 0 {
        return Err(Exit(code).into());
    }
    Ok(())
}

/// `start`: start stopped containers (printing each name), or with `-a`
/// one container attached, exiting with its status.
pub fn start(s: &Settings, a: StartArgs) -> Result<()> {
    let store = s.store()?;
    if (a.attach || a.interactive) && a.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    let mut failed = false;
    for key in &a.containers {
        let c = match find(&store, key) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{}", printer::error_text(&e));
                failed = true;
                continue;
            }
        };
        if ctr::state(&store, &c.id)?.is_running() {
            if !(a.attach || a.interactive) {
                Printer::stdout().line(key)?;
            }
            continue;
        }
        if a.attach || a.interactive {
            let code = start_container(&store, &c, Follow::Attached { stdin: a.interactive, sig_proxy: true }, false)?;
            if code != 0 {
                return Err(Exit(code).into());
            }
            return Ok(());
        }
        match start_container(&store, &c, Follow::Detached, false) {
            Ok(_) => Printer::stdout().line(key)?,
            Err(e) if e.is::<Exit>() || e.is::<Reported>() => failed = true,
            Err(e) => {
                eprintln!("{}", printer::error_text(&e));
                failed = true;
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}

/// `attach`: follow a running container's output (and feed its stdin)
/// until it exits; exits with its status.
pub fn attach(s: &Settings, a: crate::cli::AttachArgs) -> Result<()> {
    let store = s.store()?;
    let c = find(&store, &a.container)?;
    if !ctr::state(&store, &c.id)?.is_running() {
        bail!("Error response from daemon: You cannot attach to a stopped container, start it first");
    }
    let run = ctr::run_config(&store, &c.id)?;
    let stream = strata_runtime::attach::connect(&ctr::dir(&store, &c.id))?;
    let rt = ctr::runtime_for(&store, &c, &run)?;
    let streams = Streams {
        tty: run.tty,
        stdin: !a.no_stdin && run.interactive,
        proxy: (a.sig_proxy && !run.tty).then_some((rt, c.id.clone())),
    };
    let code = attach::follow(stream, streams)?;
    if code != 0 {
        return Err(Exit(code).into());
    }
    Ok(())
}
