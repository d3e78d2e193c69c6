//! The `strata` command line. The image commands are not built yet; the
//! filesystem is usable today through the `strata-overlayfs` binary.

fn main() {
    eprintln!("strata: no image commands yet; use strata-overlayfs to mount a layer stack");
    std::process::exit(2);
}
