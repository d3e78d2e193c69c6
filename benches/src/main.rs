//! Benchmark harness (strata vs kernel overlayfs vs fuse-overlayfs). Not built yet.

fn main() {
    eprintln!("strata-benches: no workloads yet");
    std::process::exit(2);
}
