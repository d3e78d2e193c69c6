//! The `strata` command line: clap structs → resolved settings → one
//! function per verb in `commands/` → output through `printer`.

mod cli;
mod commands;
mod format;
mod interrupt;
mod printer;
mod rootless;
mod settings;

use std::io::ErrorKind;
use std::process::ExitCode;

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

/// Exit with this status, the message (if any) already printed: the
/// status of a container's process (`run`, `start -a`, `exec`, `wait`),
/// or Docker's 125/126/127 for failures to run one.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    // The per-container monitor is this binary started by `run`/`start`.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() == 5 && argv[1] == strata_runtime::container::MONITOR_ARG {
        let code = strata_runtime::monitor::main(
            std::path::Path::new(&argv[2]),
            &argv[3].to_string_lossy(),
            &argv[4].to_string_lossy(),
        );
        return ExitCode::from(code as u8);
    }
    let args = match cli::parse(argv) {
        Ok(a) => a,
        Err(code) => return ExitCode::from(code),
    };
    // Before any thread starts: an unprivileged user's commands run in the
    // user's own user and mount namespace.
    if let Err(e) = rootless::enter(args.root.as_deref()) {
        eprintln!("{}", printer::error_text(&e));
        return ExitCode::from(125);
    }
    if args.debug {
        let _ = tracing_subscriber::fmt().with_env_filter("debug").with_writer(std::io::stderr).try_init();
    }
    let result = commands::run(args);
    strata_store::cleanup::wait_if_interrupted();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.is::<Reported>() {
                return ExitCode::from(1);
            }
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
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
