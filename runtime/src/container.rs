//! The host side of a container's life: making its layers, preparing and
//! starting a run (mount, files, spec, monitor), stopping, killing,
//! waiting, executing, pausing and removing. Called by the `strata` CLI;
//! the monitor ([`crate::monitor`]) supervises each run.
//!
//! Files of container `<id>` under `<root>/containers/<id>/` besides the
//! store's `config.json`: `run.json` ([`RunConfig`]), `state.json`
//! ([`State`]), `hosts`, `hostname`, `resolv.conf` (bind-mounted),
//! `bundle/config.json` (the OCI spec of the current run), `<id>-json.log`,
//! `attach.sock`, `runtime.log`. The runtime keeps its own state under
//! `<root>/runtime/`.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strata_store::containers::{Container, Containers};
use strata_store::Store;

use crate::attach;
use crate::config::{ImageRuntime, RunConfig};
use crate::error::{Error, IoContext, Result};
use crate::oci::{OciRuntime, Runc};
use crate::rootfs::{self, Root};
use crate::spec::{self, SpecInputs};
use crate::state::State;

/// The hidden argument that turns the `strata` binary into a monitor:
/// `strata <MONITOR_ARG> ROOT DRIVER ID`.
pub const MONITOR_ARG: &str = "__strata-monitor";

/// The directory of a container's run files.
pub fn dir(store: &Store, id: &str) -> PathBuf {
    Containers::new(store.root()).dir(id)
}

/// The OCI runtime of a container's settings.
pub fn runtime_for(store: &Store, c: &Container, run: &RunConfig) -> Result<Runc> {
    let root = store.root().join("runtime");
    std::fs::create_dir_all(&root).at("create", &root)?;
    Runc::new(run.runtime.as_deref(), &root, &dir(store, &c.id).join("runtime.log"))
}

/// Read a container's run settings (defaults for a container made before
/// strata could run them).
pub fn run_config(store: &Store, id: &str) -> Result<RunConfig> {
    let p = dir(store, id).join("run.json");
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::Json { what: p.display().to_string(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RunConfig::default()),
        Err(e) => Err(e).at("read", &p),
    }
}

/// Store a container's run settings (atomically).
pub fn save_run_config(store: &Store, id: &str, run: &RunConfig) -> Result<()> {
    let b = serde_json::to_vec_pretty(run).map_err(|source| Error::Json { what: "run config".into(), source })?;
    strata_store::fsutil::write_atomic(&dir(store, id).join("run.json"), &b)?;
    Ok(())
}

/// The state of a container as it really is now (see [`State::settle`]),
/// written back when it had to be corrected.
pub fn state(store: &Store, id: &str) -> Result<State> {
    let d = dir(store, id);
    let mut s = State::load(&d)?;
    if s.settle() {
        s.save(&d)?;
    }
    Ok(s)
}

/// Make the layers of a new container: the init layer over the image's top
/// layer (`parent`), filled through a mount of it, and the writable layer
/// over that. On failure nothing is left behind.
pub fn make_layers(store: &Store, layer: &str, init: &str, parent: Option<&str>) -> Result<()> {
    let d = store.driver();
    d.create(init, parent)?;
    let filled = (|| -> Result<()> {
        let root = d.mount(init)?;
        let r = rootfs::fill_init_layer(&root);
        d.unmount(init)?;
        r?;
        d.create(layer, Some(init))?;
        Ok(())
    })();
    if filled.is_err() {
        let _ = d.remove(layer);
        let _ = d.remove(init);
    }
    filled
}

/// Docker's `/etc/hosts` for a container without a network of its own.
pub fn hosts_file(run: &RunConfig) -> String {
    if run.network_mode() == "host" {
        return std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    }
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n".to_string()
}

fn host_hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}

/// Everything a run needs, made ready while the store lock is held: the
/// root filesystem mounted, the user resolved, the working directory made,
/// `hosts`/`hostname`/`resolv.conf` written and the spec in the bundle.
/// Unmounts again when it fails.
pub fn prepare(store: &Store, c: &Container, run: &RunConfig) -> Result<()> {
    let image = store.image(&c.image)?;
    prepare_with(store, c, run, &ImageRuntime::from_config(image.config.config.as_ref()))
}

/// [`prepare`] with the image's settings given (a build step's state,
/// which is not an image in the store yet).
pub fn prepare_with(store: &Store, c: &Container, run: &RunConfig, img: &ImageRuntime) -> Result<()> {
    let img = img.clone();
    let d = dir(store, &c.id);
    let rootfs = store.driver().mount(&c.layer)?;
    let r = (|| -> Result<()> {
        let root = Root::open(&rootfs)?;
        let user_spec = run.user.clone().unwrap_or_else(|| img.user.clone());
        let passwd = root.read("/etc/passwd")?.unwrap_or_default();
        let group = root.read("/etc/group")?.unwrap_or_default();
        let mut user = crate::user::resolve(&user_spec, &passwd, &group)?;
        if run.membership_groups_only && !user.additional_gids.is_empty() {
            user.additional_gids.remove(0);
        }
        let vols = crate::volumes::Volumes::new(store.root());
        for b in &run.binds {
            if let Some(name) = &b.volume {
                vols.fill_from(name, &root, &b.destination)?;
            }
        }
        let cwd = spec::working_dir(&img, run);
        if cwd.starts_with('/') {
            root.ensure(&cwd, rootfs::Kind::Dir)?;
        }
        let hostname = spec::hostname(run, &c.id, &host_hostname());
        let write = |name: &str, text: &str| -> Result<()> {
            strata_store::fsutil::write_atomic(&d.join(name), text.as_bytes())?;
            Ok(())
        };
        write("hostname", &format!("{hostname}\n"))?;
        write("hosts", &hosts_file(run))?;
        write("resolv.conf", &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())?;
        let caps = spec::capabilities(run)?;
        let seccomp = seccomp_for(run, &caps)?;
        let init = run.init.then(|| PathBuf::from("/usr/bin/docker-init")).filter(|p| p.exists());
        if run.init && init.is_none() {
            return Err(Error::Invalid("--init: /usr/bin/docker-init not found (install tini)".into()));
        }
        let inputs = SpecInputs {
            id: &c.id,
            rootfs: &rootfs,
            files_dir: &d,
            user: &user,
            seccomp,
            init_binary: init.as_deref(),
            host_hostname: &host_hostname(),
            rootless: std::env::var_os(ROOTLESS_ENV).is_some(),
        };
        let spec = spec::build(&img, run, &inputs)?;
        let bundle = d.join("bundle");
        std::fs::create_dir_all(&bundle).at("create", &bundle)?;
        let b = serde_json::to_vec_pretty(&spec).map_err(|source| Error::Json { what: "spec".into(), source })?;
        strata_store::fsutil::write_atomic(&bundle.join("config.json"), &b)?;
        Ok(())
    })();
    if r.is_err() {
        let _ = store.driver().unmount(&c.layer);
    }
    r
}

fn seccomp_for(run: &RunConfig, caps: &[String]) -> Result<Option<oci_spec::runtime::LinuxSeccomp>> {
    if run.privileged {
        return Ok(None);
    }
    let mut profile = PathBuf::from(crate::seccomp::DEFAULT_PROFILE);
    for o in &run.security_opt {
        if let Some(v) = o.strip_prefix("seccomp=").or_else(|| o.strip_prefix("seccomp:")) {
            if v == "unconfined" {
                return Ok(None);
            }
            profile = PathBuf::from(v);
        }
    }
    if !profile.exists() {
        return Err(Error::Invalid(format!(
            "seccomp profile {} not found (install golang-github-containers-common, or run with --security-opt seccomp=unconfined)",
            profile.display()
        )));
    }
    Ok(Some(crate::seccomp::load(&profile, caps)?))
}

/// A started monitor the caller is attached to.
pub struct Attachment {
    /// The attach connection.
    pub stream: UnixStream,
}

/// Start a run prepared by [`prepare`]: spawn the monitor (the `strata`
/// binary `exe` in monitor mode, detached from the caller's session) and
/// connect to it. Call without holding the store lock: the monitor may need
/// it. The monitor starts the container once connected to; read frames
/// from the returned attachment to learn whether it did.
/// Set in the environment of a process that runs in an unprivileged
/// user's namespace (the CLI sets it when it enters one).
pub const ROOTLESS_ENV: &str = "STRATA_ROOTLESS_UID";

pub fn spawn_monitor(store: &Store, c: &Container, exe: &Path) -> Result<Attachment> {
    let d = dir(store, &c.id);
    let sock = d.join(attach::SOCKET);
    let _ = std::fs::remove_file(&sock);
    let ro = std::env::join_paths(store.additional()).unwrap_or_default();
    let mut child = Command::new(exe)
        .arg(MONITOR_ARG)
        .arg(store.root())
        .arg(store.driver().name())
        .arg(&c.id)
        .env(strata_store::STORE_RO_ENV, ro)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Invalid(format!("cannot start the container monitor {}: {e}", exe.display())))?;
    let t0 = Instant::now();
    loop {
        if sock.exists() {
            if let Ok(s) = attach::connect(&d) {
                // The monitor keeps running on its own; reap it in the background.
                std::thread::spawn(move || child.wait());
                return Ok(Attachment { stream: s });
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(Error::Invalid(format!("container monitor exited ({status}): {}", err.trim())));
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err(Error::Invalid("the container monitor did not answer within 30 s".into()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait until the container's run has ended (state not running), up to
/// `timeout` (None: forever). Returns whether it ended.
pub fn wait_stopped(store: &Store, id: &str, timeout: Option<Duration>) -> Result<bool> {
    let t0 = Instant::now();
    loop {
        let s = state(store, id)?;
        if !(s.is_running() || s.status == "created" && s.monitor_alive()) {
            return Ok(true);
        }
        if timeout.is_some_and(|t| t0.elapsed() >= t) {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Signal numbers by Docker's names (`TERM`, `SIGTERM`, `15`).
pub fn parse_signal(s: &str) -> Result<i32> {
    const NAMES: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| Error::Invalid(format!("Invalid signal: {s}")))
}

/// Send `signal` to a running container's init.
pub fn kill(store: &Store, c: &Container, signal: &str) -> Result<()> {
    let run = run_config(store, &c.id)?;
    let s = state(store, &c.id)?;
    if !s.is_running() {
        return Err(Error::State(format!("Cannot kill container: {}: Container {} is not running", c.name, c.id)));
    }
    let n = parse_signal(signal)?;
    runtime_for(store, c, &run)?.kill(&c.id, &n.to_string(), false)
}

/// Docker's `stop`: the stop signal (`--stop-signal`, the image's, else
/// TERM), up to `timeout` seconds (`--stop-timeout`, else 10) for the
/// container to exit, then KILL. Stopping a stopped container succeeds.
pub fn stop(store: &Store, c: &Container, timeout: Option<i64>) -> Result<()> {
    let run = run_config(store, &c.id)?;
    if !state(store, &c.id)?.is_running() {
        return Ok(());
    }
    let rt = runtime_for(store, c, &run)?;
    if state(store, &c.id)?.status == "paused" {
        let _ = rt.resume(&c.id);
    }
    let image_sig =
        store.image(&c.image).ok().and_then(|i| ImageRuntime::from_config(i.config.config.as_ref()).stop_signal);
    let sig = run.stop_signal.clone().or(image_sig).unwrap_or_else(|| "TERM".into());
    let secs = timeout.or(run.stop_timeout).unwrap_or(10);
    let _ = rt.kill(&c.id, &parse_signal(&sig)?.to_string(), false);
    let wait = if secs < 0 { None } else { Some(Duration::from_secs(secs as u64)) };
    if wait_stopped(store, &c.id, wait)? {
        return Ok(());
    }
    let _ = rt.kill(&c.id, "9", false);
    if !wait_stopped(store, &c.id, Some(Duration::from_secs(30)))? {
        return Err(Error::State(format!("container {} did not stop after SIGKILL", c.id)));
    }
    Ok(())
}

/// Kill a container's run, if any, and wait until its monitor has cleaned
/// up; a run whose monitor is gone is cleaned up here (runtime state
/// deleted, root filesystem unmounted).
pub fn force_stop(store: &Store, c: &Container) -> Result<()> {
    let run = run_config(store, &c.id)?;
    let rt = runtime_for(store, c, &run)?;
    let s = State::load(&dir(store, &c.id))?;
    if s.is_running() || (s.status == "created" && s.monitor_alive()) {
        if s.status == "paused" {
            let _ = rt.resume(&c.id);
        }
        let _ = rt.kill(&c.id, "9", true);
        wait_stopped(store, &c.id, Some(Duration::from_secs(30)))?;
    }
    // Whatever a dead monitor left behind.
    if rt.state(&c.id)?.is_some() {
        let _ = rt.kill(&c.id, "9", true);
        rt.delete(&c.id, true)?;
    }
    Ok(())
}

/// Remove a stopped container: its layers, files and runtime state.
pub fn remove(store: &Store, c: &Container) -> Result<()> {
    store.driver().remove(&c.layer)?;
    if let Some(init) = &c.init_layer {
        store.driver().remove(init)?;
    }
    Containers::new(store.root()).remove(&c.id)?;
    Ok(())
}

/// The OCI process for `exec`: the run's process with the given changes.
pub struct ExecSettings {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// `-t`.
    pub tty: bool,
    /// `-u` (None: the container's user).
    pub user: Option<String>,
    /// `-w` (None: the container's working directory).
    pub workdir: Option<String>,
    /// `-e`, added to the container's environment.
    pub env: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
}

/// Write the process JSON of an `exec` into a file in the container's
/// directory and return a command running it (the caller sets stdio and
/// waits). Fails when the container is not running.
pub fn exec_command(store: &Store, c: &Container, e: &ExecSettings, detach: bool) -> Result<(Command, ExecFiles)> {
    let run = run_config(store, &c.id)?;
    let s = state(store, &c.id)?;
    if !s.is_running() {
        return Err(Error::State(format!("Container {} is not running", c.id)));
    }
    if s.status == "paused" {
        return Err(Error::State(format!("Container {} is paused, unpause the container before exec", c.id)));
    }
    let d = dir(store, &c.id);
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("bundle/config.json")).at("read", &d)?)
        .map_err(|source| Error::Json { what: "spec".into(), source })?;
    let mut p = spec["process"].clone();
    p["args"] = serde_json::json!(e.cmd);
    p["terminal"] = serde_json::json!(e.tty);
    if let Some(w) = &e.workdir {
        p["cwd"] = serde_json::json!(w);
    }
    let mut env: Vec<String> = p["env"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for kv in &e.env {
        crate::config::set_env(&mut env, kv);
    }
    if let Some(u) = &e.user {
        let root = Root::open(&PathBuf::from(spec["root"]["path"].as_str().unwrap_or_default()))?;
        let passwd = root.read("/etc/passwd")?.unwrap_or_default();
        let group = root.read("/etc/group")?.unwrap_or_default();
        let user = crate::user::resolve(u, &passwd, &group)?;
        p["user"] = serde_json::json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids});
        if !e.env.iter().any(|kv| kv.starts_with("HOME=")) {
            crate::config::set_env(&mut env, &format!("HOME={}", user.home));
        }
    }
    // A command that is not there fails the way the runtime would fail,
    // without running it (its message would mix with the command's stderr).
    let rootfs = PathBuf::from(spec["root"]["path"].as_str().unwrap_or_default());
    let path_env = env.iter().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or(crate::config::DEFAULT_PATH);
    let cwd = p["cwd"].as_str().unwrap_or("/").to_string();
    if let Some(cmd) = e.cmd.first() {
        if !Root::open(&rootfs)?.has_executable(cmd, path_env, &cwd) {
            let message = if cmd.contains('/') {
                format!("exec failed: unable to start container process: exec: \"{cmd}\": stat {cmd}: no such file or directory")
            } else {
                format!("exec failed: unable to start container process: exec: \"{cmd}\": executable file not found in $PATH")
            };
            return Err(Error::Runtime { op: "exec", message, status: 126 });
        }
    }
    p["env"] = serde_json::json!(env);
    if e.privileged {
        let all: Vec<&str> = spec::ALL_CAPS.to_vec();
        p["capabilities"] = serde_json::json!({"bounding": all, "effective": all, "permitted": all});
    }
    let bytes = serde_json::to_vec(&p).map_err(|source| Error::Json { what: "process".into(), source })?;
    let temp = |prefix: &str, bytes: &[u8]| -> Result<tempfile::TempPath> {
        let mut f = tempfile::Builder::new().prefix(prefix).suffix(".json").tempfile_in(&d).at("create in", &d)?;
        std::io::Write::write_all(&mut f, bytes).at("write", f.path())?;
        Ok(f.into_temp_path())
    };
    let process = temp("exec-", &bytes)?;
    let log = temp("exec-log-", b"")?;
    let rt = runtime_for(store, c, &run)?;
    // The runtime's own errors go to the log, the command's to our stderr.
    let cmd = rt.exec_command(&c.id, &process, &log, e.tty, detach);
    Ok((cmd, ExecFiles { _process: process, log }))
}

/// The files of one `exec`, removed when dropped.
pub struct ExecFiles {
    _process: tempfile::TempPath,
    log: tempfile::TempPath,
}

impl ExecFiles {
    /// The runtime's error, if it logged one (the command never ran), with
    /// Docker's exit status for it.
    pub fn runtime_error(&self) -> Option<(u8, String)> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let msg = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["level"] == "error")
            .and_then(|v| v["msg"].as_str().map(str::to_string))?;
        Some((126, msg))
    }
}
