//! `strata-overlayfs`: mount a layer stack with strata's overlay filesystem.
//! Same command line as fuse-overlayfs; see `strata_fs::options`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match strata_fs::options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("strata-overlayfs: {e}");
            return ExitCode::from(1);
        }
    };
    let filter = if opts.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| filter.into()))
        .with_writer(std::io::stderr)
        .init();
    // Before any thread exists: daemon mode forks.
    match strata_fs::mount::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(strata_fs::Error::Reported) => ExitCode::from(1),
        Err(e) => {
            eprintln!("strata-overlayfs: {e}");
            ExitCode::from(1)
        }
    }
}
