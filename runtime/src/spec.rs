//! The OCI runtime spec of a container: a pure function of the image's
//! config, the run settings and a few facts about where things are.
//! What the process sees matches `docker run --network none` (Docker
//! 20.10): its 14 default capabilities, its mounts and masked paths, its
//! hostname and environment, no rlimits (the caller's pass through).

use std::path::Path;

use oci_spec::runtime::{LinuxSeccomp, Spec};
use serde_json::{json, Value};

use crate::config::{process_args, process_env, ImageRuntime, RunConfig};
use crate::error::{Error, Result};
use crate::user::ResolvedUser;

/// Docker's default capabilities (moby `oci/caps/defaults.go`; CapEff
/// `00000000a80425fb`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines (for `ALL` and `--privileged`).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths Docker hides from the container (`maskedPaths`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths Docker makes read-only (`readonlyPaths`).
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Where `--init` puts its init binary inside the container.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// Normalise a capability name (`net_admin` → `CAP_NET_ADMIN`; `ALL` stays).
pub fn cap_name(c: &str) -> Result<String> {
    let up = c.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::Invalid(format!("invalid capability: {c}")))
    }
}

/// The capability set of a container: Docker's defaults (all with
/// `--privileged`), then `--cap-drop`, then `--cap-add` (Docker's order:
/// adds win over drops, `ALL` on either side).
pub fn capabilities(run: &RunConfig) -> Result<Vec<String>> {
    if run.privileged {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let add = run.cap_add.iter().map(|c| cap_name(c)).collect::<Result<Vec<_>>>()?;
    let drop = run.cap_drop.iter().map(|c| cap_name(c)).collect::<Result<Vec<_>>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).filter(|c| !drop.contains(c)).collect()
    };
    if add.iter().any(|c| c == "ALL") {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    for c in add {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// Facts the spec needs besides the image and the settings.
pub struct SpecInputs<'a> {
    /// The container's full ID.
    pub id: &'a str,
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// The directory holding `hosts`, `hostname` and `resolv.conf`.
    pub files_dir: &'a Path,
    /// The process's identity.
    pub user: &'a ResolvedUser,
    /// The seccomp filter (None: unconfined).
    pub seccomp: Option<LinuxSeccomp>,
    /// The `--init` binary on the host.
    pub init_binary: Option<&'a Path>,
    /// The host's hostname (used with `--network host`).
    pub host_hostname: &'a str,
    /// Run by an unprivileged user inside its user namespace: no cgroup of
    /// our own and no device rules (the machine delegates no cgroups to the
    /// user; the runtime's rootless mode runs in the caller's cgroup).
    pub rootless: bool,
}

/// The hostname of a container: `--hostname`, the host's with `--network
/// host`, else the first 12 hex digits of its ID.
pub fn hostname(run: &RunConfig, id: &str, host_hostname: &str) -> String {
    match &run.hostname {
        Some(h) if !h.is_empty() => h.clone(),
        _ if run.network_mode() == "host" => host_hostname.to_string(),
        _ => id.chars().take(12).collect(),
    }
}

/// The working directory of the process: `-w`, the image's, or `/`.
pub fn working_dir(image: &ImageRuntime, run: &RunConfig) -> String {
    match run.workdir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => w.to_string(),
        None if !image.working_dir.is_empty() => image.working_dir.clone(),
        None => "/".into(),
    }
}

fn mount(dest: &str, ty: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": ty, "source": source, "options": options})
}

/// `--ulimit` as OCI rlimits. None is set by default: the caller's limits
/// pass through, as with Docker. A hard limit above the caller's own is
/// refused here, with a message saying why, rather than by the runtime
/// (raising it needs CAP_SYS_RESOURCE, which root may lack).
pub fn rlimits(run: &RunConfig) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for u in &run.ulimits {
        let Some((_, oci, res)) = crate::config::ULIMITS.iter().find(|(n, _, _)| *n == u.name) else {
            return Err(Error::Invalid(format!("invalid ulimit type: {}", u.name)));
        };
        if let Some(max) = caller_hard_limit(*res) {
            if u.hard > max {
                return Err(Error::Invalid(format!(
                    "ulimit {}: hard limit {} is above this process's hard limit {max} (raising it needs CAP_SYS_RESOURCE)",
                    u.name, u.hard
                )));
            }
        }
        out.push(json!({"type": oci, "soft": u.soft, "hard": u.hard}));
    }
    Ok(out)
}

/// The caller's hard limit of resource number `res` (None: unlimited or
/// unknown).
fn caller_hard_limit(res: i32) -> Option<u64> {
    let r = match res {
        0 => rustix::process::Resource::Cpu,
        1 => rustix::process::Resource::Fsize,
        2 => rustix::process::Resource::Data,
        3 => rustix::process::Resource::Stack,
        4 => rustix::process::Resource::Core,
        5 => rustix::process::Resource::Rss,
        6 => rustix::process::Resource::Nproc,
        7 => rustix::process::Resource::Nofile,
        8 => rustix::process::Resource::Memlock,
        10 => rustix::process::Resource::Locks,
        11 => rustix::process::Resource::Sigpending,
        12 => rustix::process::Resource::Msgqueue,
        13 => rustix::process::Resource::Nice,
        14 => rustix::process::Resource::Rtprio,
        15 => rustix::process::Resource::Rttime,
        _ => return None,
    };
    rustix::process::getrlimit(r).maximum
}

/// Build the spec. Fails when there is no command or a setting is invalid.
pub fn build(image: &ImageRuntime, run: &RunConfig, inp: &SpecInputs) -> Result<Spec> {
    let mut args = process_args(image, run);
    if args.is_empty() {
        return Err(Error::NoCommand);
    }
    if run.init {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let host = hostname(run, inp.id, inp.host_hostname);
    let env = process_env(image, run, &host, &inp.user.home);
    let caps = capabilities(run)?;
    let cwd = working_dir(image, run);
    if !cwd.starts_with('/') {
        return Err(Error::Invalid(format!(
            "the working directory '{cwd}' is invalid, it needs to be an absolute path"
        )));
    }
    let no_new_privs = run
        .security_opt
        .iter()
        .any(|o| matches!(o.as_str(), "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true"));

    let ro_sys = if run.privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro_sys]),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid", "noexec", "nodev"]),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]),
    ];
    for f in ["resolv.conf", "hostname", "hosts"] {
        let src = inp.files_dir.join(f);
        let mut m = mount(&format!("/etc/{f}"), "bind", &src.to_string_lossy(), &["rbind", "rprivate"]);
        if run.read_only {
            m["options"].as_array_mut().expect("options is an array").push(json!("ro"));
        }
        mounts.push(m);
    }
    for t in &run.tmpfs {
        let mut opts: Vec<&str> = vec!["nosuid", "nodev", "noexec"];
        opts.extend(t.options.iter().map(String::as_str));
        mounts.push(mount(&t.destination, "tmpfs", "tmpfs", &opts));
    }
    for b in &run.binds {
        if !b.destination.starts_with('/') {
            return Err(Error::Invalid(format!(
                "invalid mount config: mount path must be absolute: {}",
                b.destination
            )));
        }
        let mut opts = vec!["rbind", "rprivate"];
        if b.read_only {
            opts.push("ro");
        }
        mounts.push(mount(&b.destination, "bind", &b.source, &opts));
    }
    if let Some(init) = inp.init_binary.filter(|_| run.init) {
        mounts.push(mount(INIT_PATH, "bind", &init.to_string_lossy(), &["bind", "ro"]));
    }

    let mut namespaces =
        vec![json!({"type": "mount"}), json!({"type": "pid"}), json!({"type": "ipc"}), json!({"type": "uts"})];
    if run.network_mode() != "host" {
        namespaces.push(json!({"type": "network"}));
    }
    let mut linux = json!({ "namespaces": namespaces });
    if !inp.rootless {
        linux["resources"] = json!({"devices": [{"allow": run.privileged, "access": "rwm"}]});
        linux["cgroupsPath"] = json!(format!("/strata/{}", inp.id));
    }
    if !run.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(s) = &inp.seccomp {
        linux["seccomp"] = serde_json::to_value(s).map_err(|e| Error::Spec(e.to_string()))?;
    }

    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": run.tty,
            "user": {
                "uid": inp.user.uid,
                "gid": inp.user.gid,
                "additionalGids": inp.user.additional_gids,
            },
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": no_new_privs,
            "rlimits": rlimits(run)?,
        },
        "root": {"path": inp.rootfs.to_string_lossy(), "readonly": run.read_only},
        "hostname": host,
        "mounts": mounts,
        "linux": linux,
    });
    serde_json::from_value(spec).map_err(|e| Error::Spec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Bind, Tmpfs};

    fn user() -> ResolvedUser {
        ResolvedUser { uid: 0, gid: 0, additional_gids: vec![0], home: "/root".into() }
    }

    fn inputs<'a>(u: &'a ResolvedUser) -> SpecInputs<'a> {
        SpecInputs {
            id: "9b3cf3f3ac1e7d0c6c8a1d2f0a4b5c6d7e8f90112233445566778899aabbccdd",
            rootfs: Path::new("/var/lib/strata/fuse-overlay/c-9b3c/merged"),
            files_dir: Path::new("/var/lib/strata/containers/9b3c"),
            user: u,
            seccomp: None,
            init_binary: Some(Path::new("/usr/bin/docker-init")),
            host_hostname: "host1",
            rootless: false,
        }
    }

    /// The whole spec of a typical `run -it -e -w -v --tmpfs --init` as
    /// JSON, compared with the snapshot in `tests/snapshots/spec.json`
    /// (STRATA_UPDATE_SNAPSHOTS=1 rewrites it).
    #[test]
    fn snapshot() {
        let image = ImageRuntime {
            env: vec!["PATH=/usr/bin:/bin".into(), "LANG=C".into()],
            cmd: vec!["sh".into()],
            working_dir: "/srv".into(),
            ..Default::default()
        };
        let run = RunConfig {
            tty: true,
            interactive: true,
            env: vec!["FOO=bar".into()],
            workdir: Some("/w".into()),
            cmd: vec!["sh".into(), "-c".into(), "id".into()],
            binds: vec![Bind {
                source: "/host/data".into(),
                destination: "/data".into(),
                read_only: true,
                volume: None,
            }],
            tmpfs: vec![Tmpfs { destination: "/run".into(), options: vec!["size=1m".into()] }],
            init: true,
            cap_add: vec!["net_admin".into()],
            cap_drop: vec!["MKNOD".into()],
            ..Default::default()
        };
        let u = user();
        let spec = build(&image, &run, &inputs(&u)).unwrap();
        // oci-spec keeps capabilities in hash sets: sort them for a stable text.
        let mut v = serde_json::to_value(&spec).unwrap();
        for set in ["bounding", "effective", "permitted"] {
            if let Some(a) = v["process"]["capabilities"][set].as_array_mut() {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
        }
        let got = serde_json::to_string_pretty(&v).unwrap() + "\n";
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/spec.json");
        if std::env::var_os("STRATA_UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).expect("snapshot exists (STRATA_UPDATE_SNAPSHOTS=1 writes it)");
        assert_eq!(got, want);
    }

    #[test]
    fn docker_defaults() {
        let u = user();
        let image = ImageRuntime { cmd: vec!["sh".into()], ..Default::default() };
        let spec = build(&image, &RunConfig::default(), &inputs(&u)).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["hostname"], "9b3cf3f3ac1e");
        assert_eq!(v["process"]["cwd"], "/");
        assert_eq!(v["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert_eq!(v["process"]["rlimits"], json!([]), "no rlimits: the caller's limits pass through");
        assert_eq!(v["process"]["noNewPrivileges"], false);
        let ns: Vec<&str> =
            v["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert!(ns.contains(&"network"));
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), MASKED_PATHS.len());
        let env: Vec<&str> = v["process"]["env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
        assert_eq!(env, vec![&format!("PATH={}", crate::config::DEFAULT_PATH), "HOSTNAME=9b3cf3f3ac1e", "HOME=/root"]);
    }

    #[test]
    fn errors_and_modes() {
        let u = user();
        let none = ImageRuntime::default();
        assert!(matches!(build(&none, &RunConfig::default(), &inputs(&u)), Err(Error::NoCommand)));
        let image = ImageRuntime { cmd: vec!["sh".into()], ..Default::default() };
        let rel = RunConfig { workdir: Some("rel".into()), ..Default::default() };
        assert!(build(&image, &rel, &inputs(&u)).is_err());
        let bad = RunConfig { cap_add: vec!["NOPE".into()], ..Default::default() };
        assert_eq!(build(&image, &bad, &inputs(&u)).unwrap_err().to_string(), "invalid capability: NOPE");
        let host = RunConfig { network: "host".into(), ..Default::default() };
        let v = serde_json::to_value(build(&image, &host, &inputs(&u)).unwrap()).unwrap();
        assert_eq!(v["hostname"], "host1");
        assert!(!v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "network"));
        let p = RunConfig { privileged: true, ..Default::default() };
        let v = serde_json::to_value(build(&image, &p, &inputs(&u)).unwrap()).unwrap();
        assert_eq!(v["process"]["capabilities"]["bounding"].as_array().unwrap().len(), ALL_CAPS.len());
        assert!(v["linux"].get("maskedPaths").is_none());
    }

    #[test]
    fn ulimits() {
        use crate::config::Ulimit;
        assert_eq!(
            Ulimit::parse("nofile=1024:2048").unwrap(),
            Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 }
        );
        assert_eq!(Ulimit::parse("core=-1").unwrap().hard, u64::MAX);
        assert!(Ulimit::parse("nofile=10:5").is_err());
        assert!(Ulimit::parse("bogus=1").is_err());
        assert!(Ulimit::parse("nofile").is_err());
        let u = user();
        let image = ImageRuntime { cmd: vec!["sh".into()], ..Default::default() };
        let run = RunConfig { ulimits: vec![Ulimit::parse("nproc=100:200").unwrap()], ..Default::default() };
        let v = serde_json::to_value(build(&image, &run, &inputs(&u)).unwrap()).unwrap();
        assert_eq!(v["process"]["rlimits"], json!([{"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]));
        let max = caller_hard_limit(7).unwrap_or(u64::MAX - 1);
        if max < u64::MAX {
            let run = RunConfig {
                ulimits: vec![Ulimit { name: "nofile".into(), soft: 1, hard: max + 1 }],
                ..Default::default()
            };
            assert!(build(&image, &run, &inputs(&u)).unwrap_err().to_string().contains("CAP_SYS_RESOURCE"));
        }
    }

    #[test]
    fn capability_table() {
        let caps = |add: &[&str], drop: &[&str]| {
            let r = RunConfig {
                cap_add: add.iter().map(|s| s.to_string()).collect(),
                cap_drop: drop.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            };
            capabilities(&r).unwrap()
        };
        assert_eq!(caps(&[], &[]).len(), 14);
        assert_eq!(caps(&[], &["ALL"]).len(), 0);
        assert_eq!(caps(&["NET_ADMIN"], &["ALL"]), vec!["CAP_NET_ADMIN"]);
        assert_eq!(caps(&["ALL"], &[]).len(), ALL_CAPS.len());
        assert!(!caps(&[], &["chown"]).contains(&"CAP_CHOWN".to_string()));
        assert!(caps(&["sys_admin"], &[]).contains(&"CAP_SYS_ADMIN".to_string()));
    }
}
