//! FUSE mounts by the `strata-overlayfs` daemon (fuse-overlayfs's command
//! line: `strata-overlayfs -o lowerdir=A:B,upperdir=U,workdir=W TARGET`),
//! which returns once the mount is live and keeps serving after we exit.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Spec;
use crate::{Error, Result};

/// Name of the daemon binary.
pub const BIN: &str = "strata-overlayfs";
/// Environment variable naming the daemon binary explicitly.
pub const BIN_ENV: &str = "STRATA_OVERLAYFS_BIN";

/// Find the daemon: `$STRATA_OVERLAYFS_BIN`, else next to the running
/// executable (or one directory up, for test binaries in `target/*/deps`),
/// else in `$PATH`.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(BIN_ENV) {
        return Some(PathBuf::from(p));
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent();
        for _ in 0..2 {
            let Some(d) = dir else { break };
            let cand = d.join(BIN);
            if cand.is_file() {
                return Some(cand);
            }
            dir = d.parent();
        }
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(BIN)).find(|p| p.is_file())
}

fn check(spec: &Spec, p: &Path) -> Result<()> {
    if p.as_os_str().as_bytes().iter().any(|b| matches!(b, b',' | b':' | b'\\')) {
        return Err(Error::Mount {
            id: spec.id.into(),
            why: format!("path {} holds ',', ':' or '\\', which the mount options cannot carry", p.display()),
        });
    }
    Ok(())
}

pub(crate) fn mount(spec: &Spec) -> Result<()> {
    let bin = find_binary().ok_or_else(|| Error::Mount {
        id: spec.id.into(),
        why: format!("cannot find {BIN} (set {BIN_ENV}, or install it next to this program or in PATH)"),
    })?;
    let mut opts = b"lowerdir=".to_vec();
    for (i, l) in spec.lowers.iter().enumerate() {
        check(spec, l)?;
        if i > 0 {
            opts.push(b':');
        }
        opts.extend_from_slice(l.as_os_str().as_bytes());
    }
    for (k, v) in [("upperdir", spec.upper), ("workdir", spec.work)] {
        check(spec, v)?;
        opts.extend_from_slice(format!(",{k}=").as_bytes());
        opts.extend_from_slice(v.as_os_str().as_bytes());
    }
    let out = Command::new(&bin)
        .arg("-o")
        .arg(std::ffi::OsStr::from_bytes(&opts))
        .arg(spec.target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::Mount { id: spec.id.into(), why: format!("cannot run {}: {e}", bin.display()) })?;
    if !out.status.success() {
        return Err(Error::Mount {
            id: spec.id.into(),
            why: format!("{} failed ({}): {}", bin.display(), out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(())
}
