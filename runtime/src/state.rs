//! A container's run state (`containers/<id>/state.json`), in Docker's
//! `State` shape plus what strata needs to check it (the monitor's PID and
//! start time). Written only by whole-file atomic replacement (temp file,
//! fsync, rename), so a reader sees either the old or the new state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Docker's zero time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The state of a container, as `inspect` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    /// `created`, `running`, `paused`, `exited`.
    pub status: String,
    /// PID of the container's init process on the host (0 when not running).
    pub pid: i32,
    /// Exit status of the last run.
    pub exit_code: i32,
    /// Why the last start failed.
    pub error: String,
    /// When the last run started (RFC 3339, nanoseconds).
    pub started_at: String,
    /// When the last run ended.
    pub finished_at: String,
    /// The monitor process of the current run (0: none).
    #[serde(default)]
    pub monitor_pid: i32,
    /// The monitor's start time (clock ticks after boot, `/proc/PID/stat`
    /// field 22), so that a reused PID is not taken for the monitor.
    #[serde(default)]
    pub monitor_start: u64,
    /// The ports published by the current run (host ports chosen).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::ports::PortMap>,
}

impl Default for State {
    fn default() -> State {
        State {
            status: "created".into(),
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            monitor_pid: 0,
            monitor_start: 0,
            ports: Vec::new(),
        }
    }
}

/// Start time of process `pid` (field 22 of `/proc/PID/stat`), if it lives.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Now, as Docker writes times: RFC 3339 with nanoseconds, UTC.
pub fn now() -> String {
    format_time(chrono::Utc::now())
}

/// A time as Go's RFC3339Nano writes it (trailing zeros of the fraction
/// dropped).
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    let s = t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}Z")
}

impl State {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// Read the state in the container directory `dir` (default when absent).
    pub fn load(dir: &Path) -> Result<State> {
        let p = State::path(dir);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| Error::Json { what: p.display().to_string(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(Error::Io { op: "read", path: p.display().to_string(), source }),
        }
    }

    /// Replace the state atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let b = serde_json::to_vec_pretty(self).map_err(|source| Error::Json { what: "state".into(), source })?;
        strata_store::fsutil::write_atomic(&State::path(dir), &b)?;
        Ok(())
    }

    /// Whether the monitor recorded here is still alive.
    pub fn monitor_alive(&self) -> bool {
        self.monitor_pid > 0 && process_start_time(self.monitor_pid) == Some(self.monitor_start)
    }

    /// Whether the container is running (or paused) now: the state says so
    /// and its monitor lives. A state left "running" by a monitor that died
    /// is not running (see [`State::settle`]).
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused") && self.monitor_alive()
    }

    /// The state as it really is: a run whose monitor died (killed, or the
    /// machine rebooted) is reported as exited with status 255 and an
    /// error saying so — it is no longer supervised or logged. Returns
    /// whether anything changed.
    pub fn settle(&mut self) -> bool {
        if matches!(self.status.as_str(), "running" | "paused") && !self.monitor_alive() {
            self.status = "exited".into();
            self.exit_code = 255;
            self.pid = 0;
            self.error = "the container's monitor process exited unexpectedly".into();
            self.finished_at = now();
            self.monitor_pid = 0;
            return true;
        }
        false
    }

    /// Docker's `State` object for `inspect`.
    pub fn to_docker(&self) -> serde_json::Value {
        serde_json::json!({
            "Status": self.status,
            "Running": self.status == "running" || self.status == "paused",
            "Paused": self.status == "paused",
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": self.started_at,
            "FinishedAt": self.finished_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_like_go() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-07T20:21:35.181019080Z").unwrap().to_utc();
        assert_eq!(format_time(t), "2026-12-07T20:21:35.18101908Z");
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-07T20:21:35Z").unwrap().to_utc();
        assert_eq!(format_time(t), "2026-12-07T20:21:35Z");
    }

    #[test]
    fn round_trip_and_settle() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(State::load(d.path()).unwrap(), State::default());
        let s = State {
            status: "running".into(),
            pid: 42,
            monitor_pid: std::process::id() as i32,
            monitor_start: process_start_time(std::process::id() as i32).unwrap(),
            ..State::default()
        };
        s.save(d.path()).unwrap();
        let mut back = State::load(d.path()).unwrap();
        assert_eq!(back, s);
        assert!(back.is_running());
        assert!(!back.settle());
        back.monitor_start += 1; // another process with the same PID
        assert!(!back.is_running());
        assert!(back.settle());
        assert_eq!((back.status.as_str(), back.exit_code), ("exited", 255));
    }
}
