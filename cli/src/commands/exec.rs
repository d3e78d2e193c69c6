//! `exec`: run a command inside a running container through the OCI
//! runtime (its `exec`), with our stdio (a terminal with `-t`), exiting
//! with the command's status as Docker does (126 not executable, 127 not
//! found).

use std::process::Stdio;

use anyhow::Result;
use strata_runtime::container::{self as ctr, ExecSettings};

use crate::cli::ExecArgs;
use crate::commands::containers::find;
use crate::commands::run::resolve_env;
use crate::printer;
use crate::settings::Settings;
use crate::Exit;

/// `exec`
pub fn run(s: &Settings, a: ExecArgs) -> Result<()> {
    let store = s.store()?;
    let c = find(&store, &a.args[0])?;
    let e = ExecSettings {
        cmd: a.args[1..].to_vec(),
        tty: a.tty,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        env: resolve_env(&a.env_file, &a.env)?,
        privileged: a.privileged,
    };
    let (mut cmd, files) = match ctr::exec_command(&store, &c, &e, a.detach) {
        Ok(x) => x,
        Err(err @ strata_runtime::Error::Runtime { .. }) => {
            // Docker prints the runtime's failure on stdout, CRLF-terminated.
            print!("{err}\r\n");
            return Err(Exit(err.exit_status()).into());
        }
        Err(err) => {
            eprintln!("Error response from daemon: {err}");
            let status = if matches!(err, strata_runtime::Error::State(_)) { 1 } else { 126 };
            return Err(Exit(status).into());
        }
    };
    if !a.interactive {
        cmd.stdin(Stdio::null());
    }
    // The runtime's own failure (e.g. command not found) arrives on its
    // stderr, which is ours: Docker prints the OCI error line likewise.
    let status = cmd.status().map_err(|e| anyhow::anyhow!("cannot run the OCI runtime: {e}"))?;
    if let (false, Some((code, msg))) = (status.success(), files.runtime_error()) {
        print!("OCI runtime exec failed: {msg}: unknown\r\n");
        return Err(Exit(code).into());
    }
    match status.code() {
        Some(0) => Ok(()),
        Some(n) => Err(Exit(n as u8).into()),
        None => {
            eprintln!("{}", printer::error_text(&anyhow::anyhow!("exec was killed: {status}")));
            Err(Exit(137).into())
        }
    }
}
