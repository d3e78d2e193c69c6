//! Container verbs: `create`, `ps`, `mount`, `umount`, `diff`, `export`, `rm`.

use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use strata_driver::ChangeKind;
use strata_store::containers::{Container, Containers};
use strata_store::{Error, Store};

use crate::cli::{ContainersArgs, CreateArgs, ExportArgs, OneContainerArgs, PsArgs, RmArgs};
use crate::printer::{self, Printer, Table};
use crate::settings::Settings;
use crate::Reported;

const PS_DEFAULT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Status", "STATUS"),
    ("Ports", "PORTS"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Size", "SIZE"),
    ("State", "STATE"),
];

/// Find a container or fail with Docker's message.
pub fn find(store: &Store, key: &str) -> Result<Container> {
    Containers::new(store.root()).find(key).map_err(|e| match e {
        Error::Invalid(m) => anyhow!("Error response from daemon: {m}"),
        e => e.into(),
    })
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "focused",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "loving",
    "modest",
    "nifty",
    "optimistic",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wise",
];
const NAMES: &[&str] = &[
    "archimedes",
    "babbage",
    "curie",
    "darwin",
    "euclid",
    "fermi",
    "galileo",
    "hopper",
    "ishango",
    "johnson",
    "kepler",
    "lovelace",
    "meitner",
    "noether",
    "ohm",
    "pascal",
    "ritchie",
    "shannon",
    "turing",
    "volta",
    "wozniak",
];

fn generated_name(id: &str, taken: &[Container]) -> String {
    let n = u64::from_str_radix(&id[..12], 16).unwrap_or(0);
    for i in 0.. {
        let k = n.wrapping_add(i * 7919);
        let mut name = format!(
            "{}_{}",
            ADJECTIVES[(k % ADJECTIVES.len() as u64) as usize],
            NAMES[((k / 97) % NAMES.len() as u64) as usize]
        );
        if i > 0 {
            name.push_str(&i.to_string());
        }
        if !taken.iter().any(|c| c.name == name) {
            return name;
        }
    }
    unreachable!()
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `create`: a writable layer over the image; prints the full ID.
pub fn create(s: &Settings, a: CreateArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.lock(true)?;
    let image_id = store.resolve(&a.image).map_err(|e| match e {
        Error::NoSuchImage(n) => anyhow!("Unable to find image '{n}' locally"),
        e => e.into(),
    })?;
    let image = store.image(&image_id)?;
    let table = Containers::new(store.root());
    let all = table.list()?;
    if let Some(n) = &a.name {
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
    store.driver().create(&layer, parent_cache.as_deref())?;
    let mut labels = std::collections::BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let c = Container {
        name: a.name.clone().unwrap_or_else(|| generated_name(&id, &all)),
        id: id.clone(),
        image: image_id,
        image_name: a.image.clone(),
        image_top_layer: top,
        layer,
        created: strata_store::config::format_time(chrono::Utc::now()),
        command: a.command.clone(),
        labels,
    };
    if let Err(e) = table.put(&c) {
        let _ = store.driver().remove(&c.layer);
        return Err(e.into());
    }
    Printer::stdout().line(&id)
}

/// The command a container runs: its own, else the image's entrypoint + cmd.
pub fn command_of(store: &Store, c: &Container) -> Vec<String> {
    let cfg = store.image(&c.image).ok().and_then(|i| i.config.config);
    let list = |k: &str| -> Vec<String> {
        cfg.as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut out = list("Entrypoint");
    if c.command.is_empty() {
        out.extend(list("Cmd"));
    } else {
        out.extend(c.command.iter().cloned());
    }
    out
}

/// `ps`
pub fn ps(s: &Settings, a: PsArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.lock(false)?;
    let mut rows = Vec::new();
    let mut all = Containers::new(store.root()).list()?;
    all.reverse();
    for c in &all {
        let mounted = store.driver().is_mounted(&c.layer).unwrap_or(false);
        let mut keep = a.all || mounted;
        for f in &a.filter {
            let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            keep &= match k {
                "name" => c.name.contains(v),
                "id" => c.id.starts_with(v),
                "label" => match v.split_once('=') {
                    Some((k2, v2)) => c.labels.get(k2).map(String::as_str) == Some(v2),
                    None => c.labels.contains_key(v),
                },
                "status" => (v == "created" && !mounted) || (v == "mounted" && mounted),
                "ancestor" => store.resolve(v).is_ok_and(|id| id == c.image),
                _ => bail!("Error response from daemon: invalid filter '{k}'"),
            };
        }
        if !keep {
            continue;
        }
        let cmd = command_of(&store, c).join(" ");
        let cmd =
            if a.no_trunc { format!("\"{cmd}\"") } else { format!("\"{}\"", crate::format::text::ellipsis(&cmd, 20)) };
        let t = strata_store::config::parse_time(&c.created).unwrap_or(chrono::DateTime::UNIX_EPOCH);
        let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(json!({
            "ID": if a.no_trunc { c.id.clone() } else { c.id[..12].to_string() },
            "Image": c.image_name,
            "Command": cmd,
            "CreatedAt": printer::created_at(t),
            "RunningFor": printer::since(t),
            "Status": if mounted { "Mounted" } else { "Created" },
            "State": if mounted { "mounted" } else { "created" },
            "Ports": "",
            "Names": c.name,
            "Labels": labels.join(","),
            "Mounts": "",
            "Size": "",
        }));
    }
    let mut p = Printer::stdout();
    if a.quiet {
        for r in &rows {
            p.line(r["ID"].as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    p.render(
        &Table {
            format: a.format.as_deref(),
            default: PS_DEFAULT,
            columns: crate::format::Columns { context_type: "*formatter.ContainerContext", headers: PS_HEADERS },
        },
        &rows,
    )
}

/// `mount`: print the merged root of each container (mounting it).
pub fn mount(s: &Settings, a: ContainersArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.lock(true)?;
    let mut p = Printer::stdout();
    for key in &a.containers {
        let c = find(&store, key)?;
        let path = store.driver().mount(&c.layer)?;
        p.line(&path.display().to_string())?;
    }
    Ok(())
}

/// `umount`
pub fn umount(s: &Settings, a: ContainersArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.lock(true)?;
    let mut p = Printer::stdout();
    for key in &a.containers {
        let c = find(&store, key)?;
        store.driver().unmount(&c.layer)?;
        p.line(&c.id)?;
    }
    Ok(())
}

/// `diff`: Docker's A/C/D lines.
pub fn diff(s: &Settings, a: OneContainerArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.lock(false)?;
    let c = find(&store, &a.container)?;
    let mut p = Printer::stdout();
    for ch in store.driver().changes(&c.layer)? {
        let k = match ch.kind {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'C',
            ChangeKind::Deleted => 'D',
        };
        p.line(&format!("{k} {}", ch.path.to_string_lossy()))?;
    }
    Ok(())
}

/// `export`: the merged filesystem as one tar (no mount needed).
pub fn export(s: &Settings, a: ExportArgs) -> Result<()> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let store = s.store()?;
    let _lock = store.lock(false)?;
    let c = find(&store, &a.container)?;
    match &a.output {
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::Builder::new().prefix(".strata-export-").tempfile_in(dir)?;
            {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
                store.driver().export(&c.layer, &mut w)?;
                w.flush()?;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error).with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            store.driver().export(&c.layer, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// `rm`: remove containers (a mounted one only with `-f`).
pub fn rm(s: &Settings, a: RmArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.lock(true)?;
    let mut p = Printer::stdout();
    let mut failed = false;
    for key in &a.containers {
        let r = (|| -> Result<()> {
            let c = find(&store, key)?;
            if store.driver().is_mounted(&c.layer).unwrap_or(false) && !a.force {
                bail!(
                    "Error response from daemon: cannot remove container \"/{}\": container is mounted: unmount it or force the removal",
                    c.name
                );
            }
            store.driver().remove(&c.layer)?;
            Containers::new(store.root()).remove(&c.id)?;
            store.prune_layers()?;
            Ok(())
        })();
        match r {
            Ok(()) => p.line(key)?,
            Err(e) => {
                failed = true;
                p.flush()?;
                eprintln!("{}", printer::error_text(&e));
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    Ok(())
}
