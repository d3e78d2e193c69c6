//! The OCI runtime behind one trait: `runc` (default) or any binary with
//! runc's command line (`--runtime PATH`: crun, youki). strata never sets up
//! namespaces, pivot_root or seccomp itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The standard streams handed to the container's process at create.
pub struct CreateIo {
    /// stdin.
    pub stdin: Stdio,
    /// stdout.
    pub stdout: Stdio,
    /// stderr.
    pub stderr: Stdio,
}

/// What `state` reports.
#[derive(Clone, Debug, Deserialize)]
pub struct RuntimeState {
    /// `created`, `running`, `paused`, `stopped`.
    pub status: String,
    /// The init process's PID on the host.
    #[serde(default)]
    pub pid: i32,
}

/// An OCI runtime. Every method runs the runtime to completion; none keeps
/// a file descriptor.
pub trait OciRuntime {
    /// Create container `id` from the bundle (its `config.json`), writing the
    /// init's PID to `pid_file`. With `console_socket`, the runtime sends the
    /// pty master over that socket; otherwise the process gets `io`.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        io: CreateIo,
    ) -> Result<()>;
    /// Start the created container's process.
    fn start(&self, id: &str) -> Result<()>;
    /// Send `signal` (name or number) to the init (all processes with `all`).
    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()>;
    /// Delete the runtime's state of `id` (`force`: kill it first).
    fn delete(&self, id: &str, force: bool) -> Result<()>;
    /// The runtime's view of `id` (`None`: it does not know it).
    fn state(&self, id: &str) -> Result<Option<RuntimeState>>;
    /// Freeze every process of `id` (cgroup freezer).
    fn pause(&self, id: &str) -> Result<()>;
    /// Thaw them.
    fn resume(&self, id: &str) -> Result<()>;
    /// A command that runs `process` (an OCI process JSON file) inside `id`,
    /// the runtime's own errors going to `log` (JSON lines) rather than to
    /// the process's stderr; the caller chooses its stdio and waits for it
    /// (its status is the process's).
    fn exec_command(&self, id: &str, process: &Path, log: &Path, tty: bool, detach: bool) -> Command;
    /// A command listing the container's processes (`ps`-style table).
    fn ps_command(&self, id: &str, ps_args: &[String]) -> Command;
}

/// runc (or a runtime with its command line), with its state under `root`.
pub struct Runc {
    /// The binary.
    pub binary: PathBuf,
    /// `--root`: where the runtime keeps container state.
    pub root: PathBuf,
    /// Where failures are logged (`--log`, JSON lines) for error messages.
    pub log: PathBuf,
}

impl Runc {
    /// The runtime `name_or_path` (`None`: `runc`), keeping its state in
    /// `root`; fails when the binary cannot be found.
    pub fn new(name_or_path: Option<&str>, root: &Path, log: &Path) -> Result<Runc> {
        let name = name_or_path.unwrap_or("runc");
        let binary = if name.contains('/') {
            PathBuf::from(name)
        } else {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "unknown or invalid runtime name: {name} (install runc, or give --runtime PATH)"
                    ))
                })?
        };
        Ok(Runc { binary, root: root.to_path_buf(), log: log.to_path_buf() })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root).arg("--log").arg(&self.log).arg("--log-format").arg("json");
        c
    }

    /// The last error the runtime logged (its `msg`), else its stderr.
    fn failure(&self, stderr: &[u8]) -> String {
        let logged = std::fs::read_to_string(&self.log).unwrap_or_default();
        let msg = logged
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["level"] == "error")
            .and_then(|v| v["msg"].as_str().map(str::to_string));
        msg.unwrap_or_else(|| String::from_utf8_lossy(stderr).trim().to_string())
    }

    fn run(&self, op: &'static str, mut c: Command) -> Result<()> {
        let _ = std::fs::remove_file(&self.log);
        let out = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", self.binary.display())))?;
        if out.status.success() {
            return Ok(());
        }
        let message = self.failure(&out.stderr);
        Err(Error::Runtime { op, status: status_of(&message), message })
    }
}

/// Docker's exit status for a runtime failure: 127 when the command does
/// not exist, 126 when it cannot be executed, 125 otherwise.
pub fn status_of(message: &str) -> u8 {
    if message.contains("executable file not found") || message.contains("no such file or directory") {
        127
    } else if message.contains("permission denied") || message.contains("exec format error") {
        126
    } else {
        125
    }
}

impl OciRuntime for Runc {
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        io: CreateIo,
    ) -> Result<()> {
        let mut c = self.cmd();
        c.arg("create").arg("--bundle").arg(bundle).arg("--pid-file").arg(pid_file);
        if let Some(s) = console_socket {
            c.arg("--console-socket").arg(s);
        }
        c.arg(id);
        let _ = std::fs::remove_file(&self.log);
        // The streams go to the container's process; the runtime's own
        // errors go to the log file.
        let status = c
            .stdin(io.stdin)
            .stdout(io.stdout)
            .stderr(io.stderr)
            .status()
            .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", self.binary.display())))?;
        if status.success() {
            return Ok(());
        }
        let message = self.failure(b"");
        Err(Error::Runtime { op: "create", status: status_of(&message), message })
    }

    fn start(&self, id: &str) -> Result<()> {
        let mut c = self.cmd();
        c.arg("start").arg(id);
        self.run("start", c)
    }

    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let mut c = self.cmd();
        c.arg("kill");
        if all {
            c.arg("--all");
        }
        c.arg(id).arg(signal);
        self.run("kill", c)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut c = self.cmd();
        c.arg("delete");
        if force {
            c.arg("--force");
        }
        c.arg(id);
        self.run("delete", c)
    }

    fn state(&self, id: &str) -> Result<Option<RuntimeState>> {
        let out = self
            .cmd()
            .arg("state")
            .arg(id)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", self.binary.display())))?;
        if !out.status.success() {
            return Ok(None);
        }
        serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|source| Error::Json { what: "runtime state".into(), source })
    }

    fn pause(&self, id: &str) -> Result<()> {
        let mut c = self.cmd();
        c.arg("pause").arg(id);
        self.run("pause", c)
    }

    fn resume(&self, id: &str) -> Result<()> {
        let mut c = self.cmd();
        c.arg("resume").arg(id);
        self.run("resume", c)
    }

    fn exec_command(&self, id: &str, process: &Path, log: &Path, tty: bool, detach: bool) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root).arg("--log").arg(log).arg("--log-format").arg("json");
        c.arg("exec").arg("--process").arg(process);
        if tty {
            c.arg("--tty");
        }
        if detach {
            c.arg("--detach");
        }
        c.arg(id);
        c
    }

    fn ps_command(&self, id: &str, ps_args: &[String]) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root).arg("ps").arg(id);
        // runc stops reading its own flags at the container ID.
        c.args(ps_args);
        c
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn statuses() {
        for (m, s) in [
            ("runc create failed: unable to start container process: exec: \"nonexist\": executable file not found in $PATH", 127),
            ("unable to start container process: exec: \"/etc\": permission denied", 126),
            ("unable to start container process: exec: \"/x\": stat /x: no such file or directory", 127),
            ("cgroups: cannot write", 125),
        ] {
            assert_eq!(super::status_of(m), s, "{m}");
        }
    }
}
