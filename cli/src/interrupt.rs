//! SIGINT, SIGTERM and SIGHUP during a command that stages data in the
//! store or writes an output file (save, load, pull, push, import, export,
//! commit): the staging data and partial output are removed (see
//! `strata_store::cleanup`) and the process exits 128 + the signal's
//! number (130, 143, 129), as a shell reports it.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Start the thread that cleans up and exits on the first of those signals.
pub fn clean_up_on_signals() {
    let Ok(mut sigs) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else { return };
    std::thread::spawn(move || {
        if let Some(sig) = sigs.forever().next() {
            // Held until the process is gone: nothing publishes after this.
            let _held = strata_store::cleanup::interrupt();
            std::process::exit(128 + sig);
        }
    });
}
