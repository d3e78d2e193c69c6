//! What a container runs with: the settings given at `create`/`run`
//! ([`RunConfig`], stored with the container) and the parts of the image's
//! config that matter for running it ([`ImageRuntime`]).

use serde::{Deserialize, Serialize};

/// A bind mount (`-v /host:/ctr[:ro]`, `--mount type=bind,…`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    /// Host path (absolute).
    pub source: String,
    /// Path inside the container (absolute).
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// The named volume this is (its data directory is `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

/// A tmpfs mount (`--tmpfs /path[:opts]`, `--mount type=tmpfs,…`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tmpfs {
    /// Path inside the container.
    pub destination: String,
    /// Mount options (`size=…`, `mode=…`, …), added to Docker's defaults.
    pub options: Vec<String>,
}

/// A resource limit (`--ulimit nofile=1024:2048`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Docker's name (`nofile`, `nproc`, `core`, …).
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Docker's `--ulimit` names and the rlimit each sets.
pub const ULIMITS: &[(&str, &str, i32)] = &[
    ("core", "RLIMIT_CORE", 4),
    ("cpu", "RLIMIT_CPU", 0),
    ("data", "RLIMIT_DATA", 2),
    ("fsize", "RLIMIT_FSIZE", 1),
    ("locks", "RLIMIT_LOCKS", 10),
    ("memlock", "RLIMIT_MEMLOCK", 8),
    ("msgqueue", "RLIMIT_MSGQUEUE", 12),
    ("nice", "RLIMIT_NICE", 13),
    ("nofile", "RLIMIT_NOFILE", 7),
    ("nproc", "RLIMIT_NPROC", 6),
    ("rss", "RLIMIT_RSS", 5),
    ("rtprio", "RLIMIT_RTPRIO", 14),
    ("rttime", "RLIMIT_RTTIME", 15),
    ("sigpending", "RLIMIT_SIGPENDING", 11),
    ("stack", "RLIMIT_STACK", 3),
];

impl Ulimit {
    /// Parse `NAME=SOFT[:HARD]` (`-1` = unlimited) as Docker does.
    pub fn parse(s: &str) -> Result<Ulimit, String> {
        let (name, vals) = s.split_once('=').ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
        if !ULIMITS.iter().any(|(n, _, _)| *n == name) {
            return Err(format!("invalid ulimit type: {name}"));
        }
        let num = |v: &str| -> Result<u64, String> {
            if v == "-1" {
                return Ok(u64::MAX);
            }
            v.parse::<u64>().map_err(|_| format!("invalid ulimit argument: {s}"))
        };
        let (soft, hard) = match vals.split_once(':') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(vals)?, num(vals)?),
        };
        if soft > hard {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"));
        }
        Ok(Ulimit { name: name.to_string(), soft, hard })
    }
}

/// The settings of `run`/`create` that shape the container's process and
/// mounts. Stored as `containers/<id>/run.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// `-t`: a pseudo-terminal.
    pub tty: bool,
    /// `-i`: keep stdin open.
    pub interactive: bool,
    /// `-e` / `--env-file`, in order (`K=V`; a bare `K` is taken from the
    /// caller's environment at create time, already resolved here).
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--entrypoint` (`Some("")` resets the image's entrypoint).
    pub entrypoint: Option<String>,
    /// Arguments after the image.
    pub cmd: Vec<String>,
    /// `--hostname` (default: the first 12 hex digits of the ID).
    pub hostname: Option<String>,
    /// `--network`: `none` (default, an isolated namespace with `lo`) or `host`.
    pub network: String,
    /// `--read-only`.
    pub read_only: bool,
    /// `--tmpfs` and `--mount type=tmpfs`.
    pub tmpfs: Vec<Tmpfs>,
    /// `-v` and `--mount type=bind`.
    pub binds: Vec<Bind>,
    /// `--init`.
    pub init: bool,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` (seconds).
    pub stop_timeout: Option<i64>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--security-opt`.
    pub security_opt: Vec<String>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--runtime` (path or name of an OCI runtime; default `runc`).
    pub runtime: Option<String>,
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// Supplementary groups are only those `/etc/group` lists the user in,
    /// without the primary group (BuildKit's RUN steps; `docker run` adds
    /// the primary group).
    pub membership_groups_only: bool,
    /// `-p`.
    pub ports: Vec<crate::ports::PortMap>,
}

impl RunConfig {
    /// The network mode as `inspect` shows it.
    pub fn network_mode(&self) -> &str {
        if self.network.is_empty() {
            "none"
        } else {
            &self.network
        }
    }
}

/// The image config fields used to run a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageRuntime {
    /// `Env`.
    pub env: Vec<String>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `User`.
    pub user: String,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
}

impl ImageRuntime {
    /// Read the fields from an image's `config` object (missing = empty).
    pub fn from_config(cfg: Option<&serde_json::Value>) -> ImageRuntime {
        let list = |k: &str| -> Vec<String> {
            cfg.and_then(|v| v.get(k))
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let text = |k: &str| cfg.and_then(|v| v.get(k)).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let stop = text("StopSignal");
        ImageRuntime {
            env: list("Env"),
            entrypoint: list("Entrypoint"),
            cmd: list("Cmd"),
            working_dir: text("WorkingDir"),
            user: text("User"),
            stop_signal: (!stop.is_empty()).then_some(stop),
        }
    }
}

/// The command line of the container's process: entrypoint + command, as
/// Docker combines them (`--entrypoint` drops the image's Cmd).
pub fn process_args(image: &ImageRuntime, run: &RunConfig) -> Vec<String> {
    let mut args = match &run.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => image.entrypoint.clone(),
    };
    if !run.cmd.is_empty() {
        args.extend(run.cmd.iter().cloned());
    } else if run.entrypoint.is_none() {
        args.extend(image.cmd.iter().cloned());
    }
    args
}

/// Docker's default `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Replace the variable of `kv` in `env` or append it.
pub fn set_env(env: &mut Vec<String>, kv: &str) {
    let key = kv.split_once('=').map_or(kv, |(k, _)| k);
    match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
        Some(e) => *e = kv.to_string(),
        None => env.push(kv.to_string()),
    }
}

/// The process environment as Docker builds it: `PATH`, `HOSTNAME`, `TERM`
/// (with a tty), then the image's `Env` and `-e` (later wins), then `HOME`
/// unless set.
pub fn process_env(image: &ImageRuntime, run: &RunConfig, hostname: &str, home: &str) -> Vec<String> {
    let mut env = vec![format!("PATH={DEFAULT_PATH}"), format!("HOSTNAME={hostname}")];
    if run.tty {
        env.push("TERM=xterm".into());
    }
    for kv in image.env.iter().chain(&run.env) {
        set_env(&mut env, kv);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(ep: &[&str], cmd: &[&str]) -> ImageRuntime {
        ImageRuntime {
            entrypoint: ep.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn args_table() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        type Case<'a> = (ImageRuntime, Option<&'a str>, &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            (img(&[], &["sh"]), None, &[], &["sh"]),
            (img(&[], &["sh"]), None, &["id"], &["id"]),
            (img(&["/ep"], &["a"]), None, &[], &["/ep", "a"]),
            (img(&["/ep"], &["a"]), None, &["b"], &["/ep", "b"]),
            (img(&["/ep"], &["a"]), Some("/x"), &[], &["/x"]),
            (img(&["/ep"], &["a"]), Some("/x"), &["-c", "y"], &["/x", "-c", "y"]),
            (img(&["/ep"], &["a"]), Some(""), &["ls"], &["ls"]),
            (img(&[], &[]), None, &[], &[]),
        ];
        for (image, ep, cmd, want) in cases {
            let run = RunConfig { entrypoint: ep.map(str::to_string), cmd: v(cmd), ..Default::default() };
            assert_eq!(process_args(image, &run), v(want), "{image:?} {ep:?} {cmd:?}");
        }
    }

    #[test]
    fn env_order_and_overrides() {
        let image = ImageRuntime { env: vec!["PATH=/bin".into(), "A=1".into()], ..Default::default() };
        let run = RunConfig { env: vec!["A=2".into(), "B=3".into()], tty: true, ..Default::default() };
        assert_eq!(
            process_env(&image, &run, "abc", "/root"),
            vec!["PATH=/bin", "HOSTNAME=abc", "TERM=xterm", "A=2", "B=3", "HOME=/root"]
        );
        let run = RunConfig { env: vec!["HOME=/h".into()], ..Default::default() };
        assert_eq!(
            process_env(&ImageRuntime::default(), &run, "h", "/"),
            vec![format!("PATH={DEFAULT_PATH}"), "HOSTNAME=h".into(), "HOME=/h".into()]
        );
    }
}
