//! Container verbs: `ps`, `mount`, `umount`, `diff`, `export`, `rm`.

use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Result};
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
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("Platform", "PLATFORM"),
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

/// Docker's COMMAND before quoting: the program and its arguments, those
/// holding a space in single quotes.
fn docker_command(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, a)| if i > 0 && a.contains(' ') { format!("'{a}'") } else { a.clone() })
        .collect();
    quoted.join(" ")
}

/// Docker's IMAGE column: the name the container was created with while
/// it still names the same image, else the image ID (short unless --no-trunc).
fn image_column(store: &Store, c: &Container, no_trunc: bool) -> String {
    if store.resolve(&c.image_name).is_ok_and(|id| id == c.image) {
        return c.image_name.clone();
    }
    if no_trunc {
        c.image.to_string()
    } else {
        c.image.hex()[..12].to_string()
    }
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
    let mut rows = Vec::new();
    let mut all = Containers::new(store.root()).list()?;
    all.reverse();
    let last = if a.latest { 1 } else { a.last };
    // A template that shows sizes asks for them (Docker's client does so).
    let with_size = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size") || f.contains("json ."));
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
        let cmd = docker_command(&command_of(&store, c));
        let cmd = if a.no_trunc { cmd } else { crate::format::text::ellipsis(&cmd, 20) };
        // Seconds only: Docker keeps the creation time as a Unix time.
        let t = strata_store::config::parse_time(&c.created).unwrap_or(chrono::DateTime::UNIX_EPOCH);
        let t = chrono::DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
        let image = store.image(&c.image).ok();
        // The image's labels under the container's own, as Docker merges them at create.
        let mut labels: std::collections::BTreeMap<String, String> = image
            .as_ref()
            .and_then(|i| i.config.config.as_ref())
            .and_then(|cfg| cfg.get("Labels"))
            .and_then(|l| l.as_object())
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        labels.extend(c.labels.clone());
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let run = strata_runtime::container::run_config(&store, &c.id).unwrap_or_default();
        // Keys in Go's map order (sorted), as Docker's `{{json .}}` shows a row.
        rows.push(json!({
            "Command": crate::format::gofmt::go_quote(&cmd, false),
            "CreatedAt": printer::created_at(t),
            "ID": if a.no_trunc { c.id.clone() } else { c.id[..12].to_string() },
            "Image": image_column(&store, c, a.no_trunc),
            "Labels": labels.join(","),
            "LocalVolumes": run.binds.iter().filter(|b| b.volume.is_some()).count().to_string(),
            "Mounts": "",
            "Names": c.name,
            "Networks": run.network_mode(),
            "Platform": null,
            "Ports": ports_of(&store, c),
            "RunningFor": printer::since(t),
            "Size": if with_size { size_text(&store, c) } else { String::new() },
            "State": state,
            "Status": status,
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
    let c = find(&store, &a.container)?;
    match &a.output {
        Some(path) => {
            crate::commands::output::write_file(path, ".strata-export-", |w| {
                export_container(&store, &c, w).map(drop)
            })?;
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
        let _lock = store.publish()?;
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
        drop(_lock);
        store.prune_layers()?;
        Ok(())
    })
}
