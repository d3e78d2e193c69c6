//! The `strata` command line: clap structs → resolved settings → one
//! function per verb in `commands/` → output through `printer`.

mod cli;
mod commands;
mod format;
mod printer;
mod settings;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

/// An error already reported to the user (per-argument errors of `rmi`…):
/// `main` exits 1 without printing anything more.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors were reported")
    }
}

impl std::error::Error for Reported {}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    if args.debug {
        let _ = tracing_subscriber::fmt().with_env_filter("debug").with_writer(std::io::stderr).try_init();
    }
    match commands::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.is::<Reported>() {
                return ExitCode::from(1);
            }
            // A closed pipe (`strata images | head`) is not an error.
            if e.chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("{}", printer::error_text(&e));
            ExitCode::from(1)
        }
    }
}
