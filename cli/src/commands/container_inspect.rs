//! Docker's container inspect document: State, Config, HostConfig, Mounts,
//! GraphDriver and NetworkSettings, from the container's metadata, run
//! settings, state and image.

use anyhow::Result;
use serde_json::{json, Map, Value};
use strata_runtime::container as ctr;
use strata_runtime::{ImageRuntime, RunConfig};
use strata_store::containers::Container;
use strata_store::Store;

fn config(c: &Container, run: &RunConfig, image: &ImageRuntime, image_cfg: Option<&Value>) -> Value {
    let mut env = image.env.clone();
    for kv in &run.env {
        strata_runtime::config::set_env(&mut env, kv);
    }
    let entrypoint = match &run.entrypoint {
        Some(e) if e.is_empty() => Value::Null,
        Some(e) => json!([e]),
        None if image.entrypoint.is_empty() => Value::Null,
        None => json!(image.entrypoint),
    };
    let cmd = if !run.cmd.is_empty() {
        json!(run.cmd)
    } else if !c.command.is_empty() {
        json!(c.command)
    } else if run.entrypoint.is_none() && !image.cmd.is_empty() {
        json!(image.cmd)
    } else {
        Value::Null
    };
    let mut labels: Map<String, Value> =
        image_cfg.and_then(|v| v.get("Labels")).and_then(|v| v.as_object()).cloned().unwrap_or_default();
    for (k, v) in &c.labels {
        labels.insert(k.clone(), json!(v));
    }
    let volumes: Map<String, Value> =
        image_cfg.and_then(|v| v.get("Volumes")).and_then(|v| v.as_object()).cloned().unwrap_or_default();
    // ExposedPorts: the image's and the published ones (omitted when none).
    let mut exposed: Map<String, Value> =
        image_cfg.and_then(|v| v.get("ExposedPorts")).and_then(|v| v.as_object()).cloned().unwrap_or_default();
    for p in &run.ports {
        exposed.insert(format!("{}/tcp", p.container_port), json!({}));
    }
    let doc = json!({
        "Hostname": strata_runtime::spec::hostname(run, &c.id, ""),
        "Domainname": "",
        "User": run.user.clone().unwrap_or_else(|| image.user.clone()),
        "AttachStdin": run.interactive,
        "AttachStdout": true,
        "AttachStderr": true,
        "Tty": run.tty,
        "OpenStdin": run.interactive,
        "StdinOnce": run.interactive,
        "Env": env,
        "Cmd": cmd,
        "Image": c.image_name,
        "Volumes": if volumes.is_empty() { Value::Null } else { Value::Object(volumes) },
        "WorkingDir": run.workdir.clone().unwrap_or_else(|| image.working_dir.clone()),
        "Entrypoint": entrypoint,
        "OnBuild": Value::Null,
        "Labels": labels,
        "StopSignal": run.stop_signal.clone().or_else(|| image.stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into()),
    });
    // Docker's struct order; `omitempty` fields only when set.
    let mut out = Map::new();
    for (k, v) in doc.as_object().into_iter().flatten() {
        out.insert(k.clone(), v.clone());
        if k == "AttachStderr" && !exposed.is_empty() {
            out.insert("ExposedPorts".into(), Value::Object(exposed.clone()));
        }
    }
    if let Some(t) = run.stop_timeout {
        out.insert("StopTimeout".into(), json!(t));
    }
    Value::Object(out)
}

/// Docker's `{"80/tcp": [{"HostIp": …, "HostPort": …}]}`.
fn port_bindings(ports: &[strata_runtime::ports::PortMap]) -> Value {
    let mut m = Map::new();
    for p in ports {
        let e = m.entry(format!("{}/tcp", p.container_port)).or_insert_with(|| json!([]));
        if let Some(a) = e.as_array_mut() {
            let hp = if p.host_port == 0 { String::new() } else { p.host_port.to_string() };
            a.push(json!({"HostIp": p.host_ip, "HostPort": hp}));
        }
    }
    Value::Object(m)
}

/// The inspect document of container `c`.
pub fn document(store: &Store, c: &Container, with_size: bool) -> Result<Value> {
    let run = ctr::run_config(store, &c.id)?;
    let st = ctr::state(store, &c.id)?;
    let img = store.image(&c.image).ok();
    let image_cfg = img.as_ref().and_then(|i| i.config.config.clone());
    let image = ImageRuntime::from_config(image_cfg.as_ref());
    let d = ctr::dir(store, &c.id);
    let args = strata_runtime::config::process_args(
        &image,
        &RunConfig { cmd: if run.cmd.is_empty() { c.command.clone() } else { run.cmd.clone() }, ..run.clone() },
    );
    let (path, rest) = match args.split_first() {
        Some((p, r)) => (p.clone(), r.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let cfg = config(c, &run, &image, image_cfg.as_ref());
    let mounts: Vec<Value> = run
        .binds
        .iter()
        .map(|b| {
            json!({
                "Type": "bind",
                "Source": b.source,
                "Destination": b.destination,
                "Mode": if b.read_only { "ro" } else { "" },
                "RW": !b.read_only,
                "Propagation": "rprivate",
            })
        })
        .collect();
    let tmpfs: Map<String, Value> =
        run.tmpfs.iter().map(|t| (t.destination.clone(), json!(t.options.join(",")))).collect();
    let driver_root = store.root().join(store.driver().name());
    let layer_dir = driver_root.join(&c.layer);
    let mut doc = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": path,
        "Args": rest,
        "State": st.to_docker(),
        "Image": c.image.to_string(),
        "ResolvConfPath": d.join("resolv.conf"),
        "HostnamePath": d.join("hostname"),
        "HostsPath": d.join("hosts"),
        "LogPath": strata_runtime::logs::log_path(&d, &c.id),
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": store.driver().name(),
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": {
            "Binds": if run.binds.is_empty() { Value::Null } else { json!(run.binds.iter().map(|b| format!("{}:{}{}", b.source, b.destination, if b.read_only { ":ro" } else { "" })).collect::<Vec<_>>()) },
            "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": run.network_mode(),
            "PortBindings": port_bindings(&run.ports),
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": run.auto_remove,
            "VolumeDriver": "",
            "VolumesFrom": Value::Null,
            "CapAdd": if run.cap_add.is_empty() { Value::Null } else { json!(run.cap_add) },
            "CapDrop": if run.cap_drop.is_empty() { Value::Null } else { json!(run.cap_drop) },
            "Init": run.init.then_some(true),
            "Privileged": run.privileged,
            "ReadonlyRootfs": run.read_only,
            "SecurityOpt": if run.security_opt.is_empty() { Value::Null } else { json!(run.security_opt) },
            "Tmpfs": if tmpfs.is_empty() { Value::Null } else { Value::Object(tmpfs) },
            "Ulimits": if run.ulimits.is_empty() { Value::Null } else { json!(run.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>()) },
            "Runtime": run.runtime.clone().unwrap_or_else(|| "runc".into()),
            "MaskedPaths": if run.privileged { Value::Null } else { json!(strata_runtime::spec::MASKED_PATHS) },
            "ReadonlyPaths": if run.privileged { Value::Null } else { json!(strata_runtime::spec::READONLY_PATHS) },
        },
        "GraphDriver": {
            "Data": {
                "MergedDir": layer_dir.join("merged"),
                "UpperDir": layer_dir.join("diff"),
                "WorkDir": layer_dir.join("work"),
            },
            "Name": store.driver().name(),
        },
        "Mounts": mounts,
        "Config": cfg,
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "HairpinMode": false,
            "Ports": if st.is_running() { port_bindings(&st.ports) } else { json!({}) },
            "SandboxKey": "",
            "Networks": {
                run.network_mode(): {
                    "IPAMConfig": Value::Null,
                    "Links": Value::Null,
                    "Aliases": Value::Null,
                    "NetworkID": "",
                    "EndpointID": "",
                    "Gateway": "",
                    "IPAddress": "",
                    "IPPrefixLen": 0,
                    "MacAddress": "",
                }
            }
        }
    });
    if with_size {
        doc["SizeRw"] = json!(store.driver().diff_size(&c.layer).unwrap_or(0));
    }
    Ok(doc)
}
