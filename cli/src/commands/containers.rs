//! Container verbs: `ps`, `mount`, `umount`, `diff`, `export`, `rm`.

use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::json;
use strata_driver::ChangeKind;
use strata_store::containers::{Container, Containers};
use strata_store::{Error, Store};

use crate::cli::{ContainersArgs, ExportArgs, OneContainerArgs, PsArgs, RmArgs};
use crate::printer::{self, Printer, Table};
use crate::settings::Settings;

const PS_DEFAULT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
const PS_SIZE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}";
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

/// A Docker-style generated name (`adjective_scientist`) not taken yet.
pub fn generated_name(id: &str, taken: &[Container]) -> String {
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

/// Whether `n` is a valid container name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at least 2 characters).
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The command a container runs: entrypoint and command as Docker combines
/// the image's and the container's.
pub fn command_of(store: &Store, c: &Container) -> Vec<String> {
    let cfg = store.image(&c.image).ok().and_then(|i| i.config.config);
    let image = strata_runtime::ImageRuntime::from_config(cfg.as_ref());
    let mut run = strata_runtime::container::run_config(store, &c.id).unwrap_or_default();
    if run.cmd.is_empty() {
        run.cmd = c.command.clone();
    }
    strata_runtime::config::process_args(&image, &run)
}

/// Docker's SIZE column: the writable layer's size and the image's.
fn size_text(store: &Store, c: &Container) -> String {
    let rw = store.driver().diff_size(&c.layer).unwrap_or(0);
    let virt = store.image(&c.image).ok().and_then(|i| store.image_size(&i).ok()).unwrap_or(0);
    format!("{} (virtual {})", printer::size(rw), printer::size(rw + virt))
}

/// Docker's PORTS column: the ports a running container publishes.
pub fn ports_of(store: &Store, c: &Container) -> String {
    let st = strata_runtime::container::state(store, &c.id).unwrap_or_default();
    if !st.is_running() {
        return String::new();
    }
    st.ports.iter().map(|p| p.display()).collect::<Vec<_>>().join(", ")
}

/// Docker's STATUS column and State of a container.
pub fn status_of(store: &Store, c: &Container, mounted: bool) -> (String, &'static str) {
    let st = strata_runtime::container::state(store, &c.id).unwrap_or_default();
    let ago = |t: &str| {
        strata_store::config::parse_time(t).map(printer::since).unwrap_or_else(|| "Less than a second ago".into())
    };
    let up = |t: &str| {
        let s = ago(t);
        s.strip_suffix(" ago").unwrap_or(&s).to_string()
    };
    match st.status.as_str() {
        "running" if st.is_running() => (format!("Up {}", up(&st.started_at)), "running"),
        "paused" if st.is_running() => (format!("Up {} (Paused)", up(&st.started_at)), "paused"),
        "exited" => (format!("Exited ({}) {}", st.exit_code, ago(&st.finished_at)), "exited"),
        _ if mounted => ("Mounted".into(), "mounted"),
        _ => ("Created".into(), "created"),
    }
}

/// `ps`
pub fn ps(s: &Settings, a: PsArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.lock(false)?;
    let mut rows = Vec::new();
    let mut all = Containers::new(store.root()).list()?;
    all.reverse();
    let last = if a.latest { 1 } else { a.last };
    if last >= 0 {
        all.truncate(last as usize);
    }
    for c in &all {
        let mounted = store.driver().is_mounted(&c.layer).unwrap_or(false);
        let (status, state) = status_of(&store, c, mounted);
        let mut keep = a.all || last >= 0 || matches!(state, "running" | "paused" | "mounted");
        for f in &a.filter {
            let (k, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
            keep &= match k {
                "name" => c.name.contains(v),
                "id" => c.id.starts_with(v),
                "label" => match v.split_once('=') {
                    Some((k2, v2)) => c.labels.get(k2).map(String::as_str) == Some(v2),
                    None => c.labels.contains_key(v),
                },
                "status" => v == state,
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
            "Status": status,
            "State": state,
            "Ports": ports_of(&store, c),
            "Names": c.name,
            "Labels": labels.join(","),
            "Mounts": "",
            "Size": if a.size { size_text(&store, c) } else { String::new() },
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
            default: if a.size { PS_SIZE } else { PS_DEFAULT },
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
        // Nothing to undo is a mistake worth saying (a script's unbalanced
        // mount/umount), not a silent success.
        if store.driver().mount_count(&c.layer)? == 0 && !store.driver().is_mounted(&c.layer)? {
            anyhow::bail!("container {key} is not mounted");
        }
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

/// The container's merged filesystem as a tar, without its init layer.
fn export_container(store: &Store, c: &Container, w: &mut dyn Write) -> Result<u64> {
    Ok(match &c.init_layer {
        Some(init) => store.driver().export_hiding(&c.layer, init, w)?,
        None => store.driver().export(&c.layer, w)?,
    })
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
                export_container(&store, &c, &mut w)?;
                w.flush()?;
            }
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error).with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            export_container(&store, &c, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// `rm`: remove containers (a running or mounted one only with `-f`,
/// which kills it first).
pub fn rm(s: &Settings, a: RmArgs) -> Result<()> {
    let store = s.store()?;
    crate::commands::for_each_name(&a.containers, |key| {
        let c = find(&store, key)?;
        let running = strata_runtime::container::state(&store, &c.id)?.is_running();
        if running && !a.force {
            bail!(
                "Error response from daemon: You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                c.id
            );
        }
        if a.force {
            // Kill the run and let its monitor clean up, without the
            // store lock (the monitor may need it).
            strata_runtime::container::force_stop(&store, &c)?;
        }
        let _lock = store.lock(true)?;
        let Ok(c) = find(&store, &c.id) else {
            // Removed meanwhile (`--rm`).
            return Ok(());
        };
        if store.driver().is_mounted(&c.layer).unwrap_or(false) && !a.force {
            bail!(
                "Error response from daemon: cannot remove container \"/{}\": container is mounted: unmount it or force the removal",
                c.name
            );
        }
        strata_runtime::container::remove(&store, &c)?;
        store.prune_layers()?;
        Ok(())
    })
}
