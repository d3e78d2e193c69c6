//! `stop`, `restart`, `kill`, `wait`, `pause`, `unpause`, `rename`, `top`,
//! `container prune`: verbs on containers that exist, each printing what
//! Docker prints and reporting per-container errors without stopping.

use std::io::Write;

use anyhow::{bail, Result};
use strata_runtime::container as ctr;
use strata_runtime::oci::OciRuntime;
use strata_store::containers::{Container, Containers};
use strata_store::Store;

use crate::cli::{ContainerPruneArgs, ContainersArgs, KillArgs, RenameArgs, StopArgs, TopArgs};
use crate::commands::containers::{find, valid_name};
use crate::commands::for_each_name;
use crate::commands::run::{start_container, Follow};
use crate::printer::{self, Printer};
use crate::settings::Settings;
use crate::Reported;

/// Run `f` on each container named, printing the name on success and
/// Docker's error line otherwise; fails (exit 1) if any failed.
fn each(store: &Store, keys: &[String], mut f: impl FnMut(&Container) -> Result<()>) -> Result<()> {
    for_each_name(keys, |key| {
        find(store, key).and_then(|c| f(&c)).map_err(|e| {
            let text = printer::error_text(&e);
            if text.starts_with("Error response from daemon") {
                anyhow::anyhow!(text)
            } else {
                anyhow::anyhow!("Error response from daemon: {text}")
            }
        })
    })
}

/// `stop`
pub fn stop(s: &Settings, a: StopArgs) -> Result<()> {
    let store = s.store()?;
    each(&store, &a.containers, |c| Ok(ctr::stop(&store, c, a.time)?))
}

/// `restart`: stop (if running), then start detached.
pub fn restart(s: &Settings, a: StopArgs) -> Result<()> {
    let store = s.store()?;
    each(&store, &a.containers, |c| {
        ctr::stop(&store, c, a.time)?;
        start_container(&store, c, Follow::Detached, false)?;
        Ok(())
    })
}

/// `kill`
pub fn kill(s: &Settings, a: KillArgs) -> Result<()> {
    let store = s.store()?;
    each(&store, &a.containers, |c| Ok(ctr::kill(&store, c, &a.signal)?))
}

/// `wait`: block until each container stops; print its exit status.
pub fn wait(s: &Settings, a: ContainersArgs) -> Result<()> {
    let store = s.store()?;
    let mut p = Printer::stdout();
    let mut failed = false;
    for key in &a.containers {
        match find(&store, key) {
            Ok(c) => {
                ctr::wait_stopped(&store, &c.id, None)?;
                // With --rm the container may be gone; its status went with it.
                let st = ctr::state(&store, &c.id)?;
                p.line(&st.exit_code.to_string())?;
            }
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

fn set_paused(store: &Store, c: &Container, pause: bool) -> Result<()> {
    let d = ctr::dir(store, &c.id);
    let st = ctr::state(store, &c.id)?;
    if !st.is_running() {
        bail!("Container {} is not running", c.id);
    }
    if pause && st.status == "paused" {
        bail!("Container {} is already paused", c.id);
    }
    if !pause && st.status != "paused" {
        bail!("Container {} is not paused", c.id);
    }
    let run = ctr::run_config(store, &c.id)?;
    let rt = ctr::runtime_for(store, c, &run)?;
    if pause {
        rt.pause(&c.id)?;
    } else {
        rt.resume(&c.id)?;
    }
    let mut st = strata_runtime::State::load(&d)?;
    if st.is_running() {
        st.status = if pause { "paused" } else { "running" }.into();
        st.save(&d)?;
    }
    Ok(())
}

/// `pause`
pub fn pause(s: &Settings, a: ContainersArgs) -> Result<()> {
    let store = s.store()?;
    each(&store, &a.containers, |c| set_paused(&store, c, true))
}

/// `unpause`
pub fn unpause(s: &Settings, a: ContainersArgs) -> Result<()> {
    let store = s.store()?;
    each(&store, &a.containers, |c| set_paused(&store, c, false))
}

/// `rename`
pub fn rename(s: &Settings, a: RenameArgs) -> Result<()> {
    let store = s.store()?;
    let _lock = store.publish()?;
    let mut c = find(&store, &a.container)?;
    let n = a.new_name.trim_start_matches('/');
    if !valid_name(n) {
        bail!("Error response from daemon: Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    let table = Containers::new(store.root());
    if c.name == n {
        bail!("Error response from daemon: Renaming a container with the same name as its current name");
    }
    if let Some(o) = table.list()?.iter().find(|o| o.name == n) {
        bail!(
            "Error response from daemon: Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
            o.id
        );
    }
    c.name = n.to_string();
    table.put(&c)?;
    Ok(())
}

/// `port`: `80/tcp -> 0.0.0.0:8080` for each published port of a running
/// container.
pub fn port(s: &Settings, a: crate::cli::OneContainerArgs) -> Result<()> {
    let store = s.store()?;
    let c = find(&store, &a.container)?;
    let st = ctr::state(&store, &c.id)?;
    let mut p = Printer::stdout();
    if st.is_running() {
        for m in &st.ports {
            p.line(&format!("{}/tcp -> {}:{}", m.container_port, m.host_ip, m.host_port))?;
        }
    }
    Ok(())
}

/// `top`: the container's processes (`ps -ef` style, through the runtime).
pub fn top(s: &Settings, a: TopArgs) -> Result<()> {
    let store = s.store()?;
    let c = find(&store, &a.container)?;
    if !ctr::state(&store, &c.id)?.is_running() {
        bail!("Error response from daemon: Container {} is not running", c.id);
    }
    let run = ctr::run_config(&store, &c.id)?;
    let rt = ctr::runtime_for(&store, &c, &run)?;
    let ps_args = if a.ps_args.is_empty() { vec!["-ef".to_string()] } else { a.ps_args.clone() };
    let out = rt.ps_command(&c.id, &ps_args).output()?;
    if !out.status.success() {
        bail!("Error response from daemon: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    std::io::stdout().write_all(&out.stdout)?;
    Ok(())
}

/// Remove every container that is neither running nor mounted (then the
/// layers that freed); returns their IDs and the bytes their layers held.
pub fn remove_stopped(store: &strata_store::Store) -> Result<(Vec<String>, u64)> {
    let mut removed = Vec::new();
    let mut reclaimed = 0u64;
    {
        let _lock = store.publish()?;
        for c in Containers::new(store.root()).list()? {
            if ctr::state(store, &c.id)?.is_running() || store.driver().is_mounted(&c.layer).unwrap_or(false) {
                continue;
            }
            reclaimed += store.driver().diff_size(&c.layer).unwrap_or(0);
            ctr::remove(store, &c)?;
            removed.push(c.id);
        }
    }
    store.prune_layers()?;
    Ok((removed, reclaimed))
}

/// `container prune`: remove every stopped container.
pub fn prune(s: &Settings, a: ContainerPruneArgs) -> Result<()> {
    if let Some(f) = a.filter.iter().find(|f| !f.starts_with("until=") && !f.starts_with("label")) {
        bail!("Error response from daemon: invalid filter '{}'", f.split_once('=').map_or(f.as_str(), |(k, _)| k));
    }
    if !a.force {
        let prompt = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ";
        if !crate::commands::confirm(&mut std::io::stdout(), prompt)? {
            return Ok(());
        }
    }
    let store = s.store()?;
    let (removed, reclaimed) = remove_stopped(&store)?;
    let mut p = Printer::stdout();
    if !removed.is_empty() {
        p.line("Deleted Containers:")?;
        for id in &removed {
            p.line(id)?;
        }
        p.line("")?;
    }
    p.line(&format!("Total reclaimed space: {}", printer::size(reclaimed)))
}
