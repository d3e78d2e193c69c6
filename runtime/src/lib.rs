//! Running containers: the OCI runtime spec of a container (a pure
//! function of the image config and the run settings), an OCI runtime
//! behind one trait (runc by default), and a per-container monitor process
//! that owns the container's stdio, its json-file log and its exit status,
//! so that `-d`, `logs`, `wait`, `attach` and `stop` work after the CLI has
//! exited. No daemon.
//!
//! Modules: `config` (run settings, image fields), `spec` (the OCI spec),
//! `user` (`-u` against passwd/group), `rootfs` (safe file operations in
//! the root filesystem, the init layer), `seccomp` (Docker-format profiles),
//! `oci` (the runtime trait, runc), `state` (the state file), `logs`
//! (json-file), `attach` (the monitor's socket protocol), `container`
//! (host-side lifecycle), `monitor` (the monitor process).

pub mod attach;
pub mod config;
pub mod container;
mod error;
pub mod logs;
pub mod monitor;
pub mod oci;
pub mod ports;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod user;
pub mod volumes;

pub use config::{Bind, ImageRuntime, RunConfig, Tmpfs, Ulimit};
pub use error::{Error, Result};
pub use state::State;
