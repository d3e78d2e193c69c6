//! Registry verbs: `pull`, `push`, `login`, `logout`, `search`.

use std::io::{BufRead, IsTerminal};

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use strata_store::registry::pull::PullEvent;
use strata_store::registry::push::PushEvent;
use strata_store::registry::{Client, RegistryConfig};
use strata_store::Reference;

use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, SearchArgs};
use crate::printer::{Printer, Progress, Table};
use crate::settings::Settings;

/// `pull`
pub fn pull(s: &Settings, a: PullArgs) -> Result<()> {
    let mut r = Reference::parse(&a.name)?;
    let cfg = RegistryConfig::load()?;
    let store = s.store()?;
    let _lock = store.lock(true)?;
    let mut p = Printer::stdout();
    let mut refs = Vec::new();
    if a.all_tags {
        if r.tag.is_some() || r.digest.is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        let (_, path) = r.registry_and_path();
        let (registry, _) = r.registry_and_path();
        let c = Client::for_repo(&registry, &path, &cfg, false, None);
        let mut tags = c.tags()?;
        tags.sort();
        for t in tags {
            refs.push(Reference { repo: r.repo.clone(), tag: Some(t), digest: None });
        }
    } else {
        if r.tag.is_none() && r.digest.is_none() {
            if !a.quiet {
                p.line("Using default tag: latest")?;
            }
            r.tag = Some("latest".into());
        }
        refs.push(r.clone());
    }
    let mut progress = Progress::new(a.quiet);
    for r in &refs {
        strata_store::registry::pull::pull(&store, r, &cfg, a.platform.as_deref(), &mut |ev| match ev {
            PullEvent::PullingFrom(tag, repo) => progress.line(&format!("{tag}: Pulling from {repo}")),
            PullEvent::Layer { id, status, progress: bytes } => progress.layer(&id, status, bytes),
            PullEvent::Note(n) => progress.line(&n),
            PullEvent::Digest(d) => progress.line(&format!("Digest: {d}")),
            PullEvent::Status(st) => progress.line(&format!("Status: {st}")),
        })
        .map_err(|e| anyhow!("Error response from daemon: {e}"))?;
        progress.finish();
    }
    let shown = if a.all_tags { r.repo.clone() } else { refs[0].to_string() };
    p.line(&shown)
}

/// `push`
pub fn push(s: &Settings, a: PushArgs) -> Result<()> {
    let r = Reference::parse(&a.name)?;
    let cfg = RegistryConfig::load()?;
    let store = s.store()?;
    let _lock = store.lock(true)?;
    let repos = store.repositories()?;
    let targets: Vec<Reference> = if a.all_tags || r.tag.is_none() && r.digest.is_none() && a.all_tags {
        repos.all().into_iter().filter(|(x, _)| x.repo == r.repo && x.tag.is_some()).map(|(x, _)| x).collect()
    } else {
        let mut t = r.clone();
        if t.tag.is_none() {
            if !a.quiet {
                println!("Using default tag: latest");
            }
            t.tag = Some("latest".into());
        }
        vec![t]
    };
    if targets.is_empty() {
        bail!("An image does not exist locally with the tag: {}", r.repo);
    }
    let mut progress = Progress::new(a.quiet);
    let mut refers_shown = false;
    for t in &targets {
        let id = repos.get(t).cloned().ok_or_else(|| anyhow!("An image does not exist locally with the tag: {}", t))?;
        strata_store::registry::push::push(&store, &id, t, &cfg, &mut |ev| match ev {
            PushEvent::Refers(repo) => {
                if !refers_shown {
                    progress.line(&format!("The push refers to repository [{repo}]"));
                    refers_shown = true;
                }
            }
            PushEvent::Layer { id, status, progress: bytes } => progress.layer(&id, &status, bytes),
            PushEvent::Digest { tag, digest, size } => progress.line(&format!("{tag}: digest: {digest} size: {size}")),
        })
        .map_err(|e| anyhow!("{e}"))?;
        progress.finish();
    }
    if a.quiet {
        Printer::stdout().line(&targets[0].to_string())?;
    }
    Ok(())
}

fn server_of(arg: Option<&str>) -> String {
    match arg {
        None => "docker.io".into(),
        Some(s) => {
            let s = s.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
            if s == "index.docker.io/v1" || s == "registry-1.docker.io" || s == "index.docker.io" {
                "docker.io".into()
            } else {
                s.split('/').next().unwrap_or(s).to_string()
            }
        }
    }
}

/// `login`
pub fn login(a: LoginArgs) -> Result<()> {
    let server = server_of(a.server.as_deref());
    let mut cfg = RegistryConfig::load()?;
    let user = match a.username {
        Some(u) => u,
        None => bail!("Must provide --username with --password-stdin or a password"),
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match a.password {
            Some(p) => {
                eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
                p
            }
            None if std::io::stdin().is_terminal() => {
                bail!("Error: Cannot perform an interactive login from a non TTY device")
            }
            None => bail!("Must provide --password or --password-stdin"),
        }
    };
    let probe = Reference::parse(&format!("{server}/strata-login-probe"))
        .unwrap_or_else(|_| Reference::with_tag("strata-login-probe", "latest"));
    let (registry, _) = probe.registry_and_path();
    let c = Client::for_repo(&registry, "strata-login-probe", &cfg, false, None).with_credentials(&user, &password);
    c.ping()
        .map_err(|e| anyhow!("Error response from daemon: login attempt to {}/v2/ failed with status: {e}", c.base))?;
    cfg.set_credentials(&registry, &user, &password);
    cfg.save()?;
    println!("Login Succeeded");
    Ok(())
}

/// `logout`
pub fn logout(a: LogoutArgs) -> Result<()> {
    let server = server_of(a.server.as_deref());
    let mut cfg = RegistryConfig::load()?;
    if cfg.auths.remove(&server).is_none() {
        println!("Not logged in to {server}");
        return Ok(());
    }
    cfg.save()?;
    println!("Removing login credentials for {server}");
    Ok(())
}

/// `search`, through `/v2/_catalog` (registries other than Docker Hub).
pub fn search(a: SearchArgs) -> Result<()> {
    let cfg = RegistryConfig::load()?;
    let (registry, term) = match a.term.split_once('/') {
        Some((r, t)) if r.contains('.') || r.contains(':') || r == "localhost" => (r.to_string(), t.to_string()),
        _ => ("docker.io".to_string(), a.term.clone()),
    };
    let mut rows = Vec::new();
    if registry == "docker.io" {
        bail!("Error response from daemon: searching Docker Hub needs its v1 search API, which strata does not implement; name a registry: strata search REGISTRY/TERM");
    }
    let c = Client::for_repo(&registry, "", &cfg, false, None);
    let repos = c.catalog(1000).map_err(|e| anyhow!("Error response from daemon: {e}"))?;
    for r in repos.into_iter().filter(|r| r.contains(&term)).take(a.limit) {
        rows.push(json!({"Name": format!("{registry}/{r}"), "Description": "", "StarCount": "0", "IsOfficial": "", "IsAutomated": ""}));
    }
    let mut p = Printer::stdout();
    p.render(
        &Table {
            format: a.format.as_deref(),
            default: "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
            headers: &[
                ("Name", "NAME"),
                ("Description", "DESCRIPTION"),
                ("StarCount", "STARS"),
                ("IsOfficial", "OFFICIAL"),
                ("IsAutomated", "AUTOMATED"),
            ],
            context: "searchContext",
        },
        &rows,
    )
}
