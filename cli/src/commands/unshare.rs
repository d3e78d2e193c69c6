//! `strata unshare [COMMAND]` (podman's verb): run a command in the user
//! and mount namespace strata's commands use (for an unprivileged user,
//! the one `rootless` entered before this runs; for root, the host's), with
//! its exit status.

use std::process::Command;

use anyhow::{Context, Result};

use crate::cli::UnshareArgs;
use crate::Exit;

/// Run the command (default: `$SHELL`, else `/bin/sh`) and pass on its status.
pub fn run(a: UnshareArgs) -> Result<()> {
    let mut argv = a.command.into_iter();
    let program = argv.next().or_else(|| std::env::var_os("SHELL")).unwrap_or_else(|| "/bin/sh".into());
    let status =
        Command::new(&program).args(argv).status().with_context(|| format!("run {}", program.to_string_lossy()))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(c) => Err(Exit(c as u8).into()),
        None => Err(Exit(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0) as u8).into()),
    }
}
