//! Registry verbs: `pull`, `push`, `login`, `logout`, `search`. The work is
//! in `strata_store::registry`; this module turns its events into Docker's
//! output.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use strata_store::registry::pull::PullEvent;
use strata_store::registry::push::PushEvent;
use strata_store::registry::{search, Client, RegistryConfig};
use strata_store::Reference;

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, SearchArgs};
use crate::format::presets;
use crate::printer::{Printer, Progress, Table};
use crate::settings::Settings;

/// `pull [-a] [-q] [--platform P] NAME[:TAG|@DIGEST]`: Docker's lines, one
/// `Status:` line for the whole command, then the full reference.
pub fn pull(s: &Settings, a: PullArgs) -> Result<()> {
    pull_with(s, a, false)
}

/// `pull`, or (`for_create`) the pull `create`/`run` make of a missing
/// image: its progress on stderr, no name printed after it.
pub fn pull_with(s: &Settings, a: PullArgs, for_create: bool) -> Result<()> {
    let mut r = Reference::parse(&a.name)?;
    let cfg = RegistryConfig::load()?;
    let store = s.store()?;
    store.check_writable()?;
    let mut progress = if for_create { Progress::on_stderr(a.quiet) } else { Progress::new(a.quiet) };
    let mut refs = Vec::new();
    if a.all_tags {
        if r.tag.is_some() || r.digest.is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        let (registry, path) = r.registry_and_path();
        let c = Client::for_repo(&registry, &path, &cfg, false, None);
        let mut tags = c.tags().map_err(|e| anyhow!("Error response from daemon: {e}"))?;
        tags.sort();
        refs.extend(tags.into_iter().map(|t| Reference { repo: r.repo.clone(), tag: Some(t), digest: None }));
    } else {
        if r.tag.is_none() && r.digest.is_none() {
            progress.line("Using default tag: latest");
            r.tag = Some("latest".into());
        }
        refs.push(r.clone());
    }
    let mut updated = false;
    for one in &refs {
        let pulled = strata_store::registry::pull::pull(&store, one, &cfg, a.platform.as_deref(), &mut |ev| match ev {
            PullEvent::PullingFrom(tag, repo) => progress.line(&format!("{tag}: Pulling from {repo}")),
            PullEvent::Layer { id, status, progress: bytes } => progress.layer(&id, status, bytes),
            PullEvent::Note(n) => progress.line(&n),
            PullEvent::Digest(d) => progress.line(&format!("Digest: {d}")),
        })
        .map_err(|e| anyhow!("Error response from daemon: {e}"))?;
        progress.finish();
        updated |= pulled.updated;
    }
    let shown = r.to_string();
    if updated {
        progress.line(&format!("Status: Downloaded newer image for {shown}"));
    } else {
        progress.line(&format!("Status: Image is up to date for {shown}"));
    }
    if for_create {
        return Ok(());
    }
    Printer::stdout().line(&r.full())
}

/// `push [-a] [-q] NAME[:TAG]`
pub fn push(s: &Settings, a: PushArgs) -> Result<()> {
    let r = Reference::parse(&a.name)?;
    if r.digest.is_some() {
        bail!("invalid reference format: cannot push a digest reference");
    }
    let cfg = RegistryConfig::load()?;
    let store = s.store()?;
    let repos = store.repositories()?;
    let mut progress = Progress::new(a.quiet);
    let targets: Vec<Reference> = if a.all_tags {
        if r.tag.is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        let mut t: Vec<Reference> =
            repos.all().into_iter().filter(|(x, _)| x.repo == r.repo && x.tag.is_some()).map(|(x, _)| x).collect();
        t.sort();
        t
    } else {
        let mut t = r.clone();
        if t.tag.is_none() {
            progress.line("Using default tag: latest");
            t.tag = Some("latest".into());
        }
        vec![t]
    };
    if targets.is_empty() {
        bail!("An image does not exist locally with the tag: {}", r.repo);
    }
    let mut refers_shown = false;
    for t in &targets {
        let id = repos.get(t).cloned().ok_or_else(|| anyhow!("An image does not exist locally with the tag: {t}"))?;
        strata_store::registry::push::push(&store, &id, t, &cfg, &mut |ev| match ev {
            PushEvent::Refers(repo) => {
                if !refers_shown {
                    progress.line(&format!("The push refers to repository [{repo}]"));
                    refers_shown = true;
                }
            }
            PushEvent::Layer { id, status, progress: bytes } => progress.layer(&id, &status, bytes),
            PushEvent::Digest { tag, digest, size } => progress.line(&format!("{tag}: digest: {digest} size: {size}")),
        })?;
        progress.finish();
    }
    if a.quiet {
        Printer::stdout().line(&targets[0].to_string())?;
    }
    Ok(())
}

/// The registry a `login`/`logout` argument names, as credentials are
/// keyed: `https://index.docker.io/v1/` and friends → `docker.io`,
/// `http://host:port/path` → `host:port`.
fn server_of(arg: Option<&str>) -> String {
    match arg {
        None => "docker.io".into(),
        Some(s) => {
            let s = s.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
            let host = s.split('/').next().unwrap_or(s);
            if matches!(host, "index.docker.io" | "registry-1.docker.io" | "docker.io") {
                "docker.io".into()
            } else {
                host.to_string()
            }
        }
    }
}

/// `login [-u USER] [-p PASS | --password-stdin] [SERVER]`: check the
/// credentials against `SERVER/v2/`, then store them (config file, 0600).
pub fn login(a: LoginArgs) -> Result<()> {
    let registry = server_of(a.server.as_deref());
    let mut cfg = RegistryConfig::load()?;
    if a.password_stdin && a.password.is_some() {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    if a.password_stdin && a.username.is_none() {
        bail!("Must provide --username with --password-stdin");
    }
    let interactive = a.username.is_none() || (a.password.is_none() && !a.password_stdin);
    if interactive && !std::io::stdin().is_terminal() {
        bail!("Error: Cannot perform an interactive login from a non TTY device");
    }
    // Docker's prompts: the username (the stored one as default), then the
    // password with the terminal's echo off.
    let user = match a.username {
        Some(u) => u,
        None => {
            let stored = cfg.credentials(&registry).map(|(u, _)| u).unwrap_or_default();
            if stored.is_empty() {
                prompt("Username: ")?;
            } else {
                prompt(&format!("Username ({stored}): "))?;
            }
            let typed = read_line()?.trim().to_string();
            if typed.is_empty() {
                stored
            } else {
                typed
            }
        }
    };
    if user.is_empty() {
        bail!("Error: Non-null Username Required");
    }
    let password = if a.password_stdin {
        read_line()?
    } else {
        match a.password {
            Some(p) => {
                eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
                p
            }
            None => {
                prompt("Password: ")?;
                let p = without_echo(read_line)?;
                println!();
                p
            }
        }
    };
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let c = Client::for_repo(&registry, "", &cfg, false, None).with_credentials(&user, &password);
    match c.ping().map_err(|e| anyhow!("Error response from daemon: {e}"))? {
        None => {}
        Some(status) => {
            bail!("Error response from daemon: login attempt to {}/v2/ failed with status: {status}", c.base)
        }
    }
    cfg.set_credentials(&registry, &user, &password);
    cfg.save()?;
    println!("Login Succeeded");
    Ok(())
}

fn prompt(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// One line of standard input, without its line end.
fn read_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Run `f` with the terminal on stdin not echoing what is typed (line
/// editing kept), restoring its settings afterwards.
fn without_echo<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    let r = f();
    tcsetattr(&stdin, OptionalActions::Now, &saved)?;
    r
}

/// `logout [SERVER]`
pub fn logout(a: LogoutArgs) -> Result<()> {
    let server = server_of(a.server.as_deref());
    let mut cfg = RegistryConfig::load()?;
    if !cfg.remove_credentials(&server) {
        println!("Not logged in to {server}");
        return Ok(());
    }
    cfg.save()?;
    println!("Removing login credentials for {server}");
    Ok(())
}

/// `search [--limit N] [--no-trunc] [--filter F] [--format T] [REGISTRY/]TERM`
pub fn search(a: SearchArgs) -> Result<()> {
    let cfg = RegistryConfig::load()?;
    let (registry, term) = search::split_term(&a.term);
    let mut stars = 0u64;
    let mut official = None;
    let mut automated = None;
    for f in &a.filter {
        match f.split_once('=') {
            Some(("stars", n)) => stars = n.parse().map_err(|_| anyhow!("invalid filter 'stars={n}'"))?,
            Some(("is-official", v)) => official = Some(v == "true"),
            Some(("is-automated", v)) => automated = Some(v == "true"),
            _ => bail!("Error response from daemon: invalid filter '{f}'"),
        }
    }
    let found =
        search::search(&cfg, &registry, &term, a.limit).map_err(|e| anyhow!("Error response from daemon: {e}"))?;
    let rows: Vec<serde_json::Value> = found
        .into_iter()
        .filter(|r| r.star_count >= stars)
        .filter(|r| official.is_none_or(|o| o == r.is_official))
        .filter(|r| automated.is_none_or(|o| o == r.is_automated))
        .map(|r| {
            let mut d = r.description.replace('\n', " ");
            if !a.no_trunc && d.chars().count() > 45 {
                d = d.chars().take(44).collect::<String>() + "…";
            }
            json!({
                "Name": r.name,
                "Description": d,
                "StarCount": r.star_count.to_string(),
                "IsOfficial": if r.is_official { "[OK]" } else { "" },
                "IsAutomated": if r.is_automated { "[OK]" } else { "" },
            })
        })
        .collect();
    Printer::stdout()
        .render(&Table { format: a.format.as_deref(), default: presets::SEARCH_TABLE, columns: presets::SEARCH }, &rows)
}
