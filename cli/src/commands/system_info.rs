//! `strata version` and `strata info`.

use anyhow::Result;
use serde_json::{json, Value};
use strata_store::containers::Containers;

use crate::cli::FormatArgs;
use crate::printer::Printer;
use crate::settings::Settings;

/// `version`: Docker's layout. There is no daemon: the "server" is this
/// same binary working on the store, so `{{.Server.Version}}` (which
/// scripts use to check Docker is there) answers like the client.
pub fn version(a: FormatArgs) -> Result<()> {
    let arch = strata_store::oci::host_arch();
    let version = env!("CARGO_PKG_VERSION");
    let kernel = rustix::system::uname().release().to_string_lossy().into_owned();
    let doc = json!({
        "Client": {
            "Version": version,
            "ApiVersion": "1.41",
            "DefaultAPIVersion": "1.41",
            "Os": std::env::consts::OS,
            "Arch": arch,
            "Context": "default",
        },
        "Server": {
            "Platform": {"Name": "strata"},
            "Components": [{
                "Name": "Engine",
                "Version": version,
                "Details": {
                    "ApiVersion": "1.41",
                    "Arch": arch,
                    "Experimental": "false",
                    "KernelVersion": kernel,
                    "MinAPIVersion": "1.12",
                    "Os": std::env::consts::OS,
                },
            }],
            "Version": version,
            "ApiVersion": "1.41",
            "MinAPIVersion": "1.12",
            "Os": std::env::consts::OS,
            "Arch": arch,
            "KernelVersion": kernel,
        }
    });
    let mut p = Printer::stdout();
    if let Some(f) = a.format.as_deref() {
        return p.template(f, &doc, "VersionInfo");
    }
    p.line("Client:")?;
    p.line(&format!(" Version:           {version}"))?;
    p.line(" API version:       1.41")?;
    p.line(&format!(" OS/Arch:           {}/{arch}", std::env::consts::OS))?;
    p.line(" Context:           default")?;
    p.line("")?;
    p.line("Server: strata")?;
    p.line(" Engine:")?;
    p.line(&format!("  Version:          {version}"))?;
    p.line("  API version:      1.41 (minimum version 1.12)")?;
    p.line(&format!("  OS/Arch:          {}/{arch}", std::env::consts::OS))?;
    p.line("  Experimental:     false")?;
    p.line("  Storage:          built in (no daemon); strata-overlayfs for mounts")
}

/// `info`: store, driver and counts.
pub fn info(s: &Settings, a: FormatArgs) -> Result<()> {
    let store = s.store()?;
    let images = store.images()?.len();
    let containers = Containers::new(store.root()).list()?;
    let mounted = containers.iter().filter(|c| store.driver().is_mounted(&c.layer).unwrap_or(false)).count();
    let status = store.driver().status();
    let doc = json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len(),
        "ContainersMounted": mounted,
        "Images": images,
        "Driver": store.driver().name(),
        "DriverStatus": status.iter().map(|(k, v)| json!([k, v])).collect::<Vec<Value>>(),
        "DockerRootDir": store.root().display().to_string(),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "OperatingSystem": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "Rootless": crate::rootless::rootless_uid().is_some(),
        "IDMappings": {"UIDMap": id_map("uid_map"), "GIDMap": id_map("gid_map")},
    });
    let mut p = Printer::stdout();
    if let Some(f) = a.format.as_deref() {
        return p.template(f, &doc, "Info");
    }
    p.line("Client:")?;
    p.line(&format!(" Version:    {}", env!("CARGO_PKG_VERSION")))?;
    p.line("")?;
    p.line("Store:")?;
    p.line(&format!(" Containers: {}", containers.len()))?;
    p.line(&format!("  Mounted: {mounted}"))?;
    p.line(&format!(" Images: {images}"))?;
    p.line(&format!(" Storage Driver: {}", store.driver().name()))?;
    for (k, v) in &status {
        if k != "Storage Driver" {
            p.line(&format!("  {k}: {v}"))?;
        }
    }
    p.line(&format!(" Root Dir: {}", store.root().display()))?;
    p.line(&format!(" Rootless: {}", crate::rootless::rootless_uid().is_some()))?;
    for (what, file) in [("UID", "uid_map"), ("GID", "gid_map")] {
        let m = id_map(file);
        let shown: Vec<String> =
            m.iter().map(|e| format!("{}->{} ({})", e["ContainerID"], e["HostID"], e["Size"])).collect();
        p.line(&format!("  {what} Mappings: {}", shown.join(", ")))?;
    }
    Ok(())
}

/// This process's ID map (`/proc/self/uid_map` or `gid_map`), podman's
/// `idMappings` shape: inside ID, outside ID, count.
fn id_map(file: &str) -> Vec<Value> {
    std::fs::read_to_string(format!("/proc/self/{file}"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<u64> = l.split_whitespace().filter_map(|x| x.parse().ok()).collect();
            (f.len() == 3).then(|| json!({"ContainerID": f[0], "HostID": f[1], "Size": f[2]}))
        })
        .collect()
}
