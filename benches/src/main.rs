//! Benchmark harness: the same layer stacks mounted by the kernel's overlayfs,
//! fuse-overlayfs and strata-overlayfs in turn, the same workloads on each,
//! medians printed side by side with each FUSE implementation's ratio to the
//! kernel measured in the same run and the issue's target for strata; image
//! operations against podman and sha256sum. Times are never asserted.
//!
//! ```text
//! target/release/strata-benches [--quick] [--json FILE] [--only SUBSTR] [--no-debootstrap]
//! ```
//!
//! Root is needed (it mounts). Stacks, the Debian root filesystem and the
//! image archive are cached under `/var/tmp/strata-bench` (`STRATA_BENCH_DIR`).

mod containers;
mod fusetrace;
mod images;
mod report;
mod rootfs;
mod scratch;
mod stacks;
mod store;
mod workloads;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

/// One overlay implementation under test.
#[derive(Debug, Clone)]
pub enum Impl {
    /// `mount -t overlay`.
    Kernel,
    /// Debian's fuse-overlayfs.
    FuseOverlayfs(PathBuf),
    /// strata-overlayfs.
    Strata(PathBuf),
}

impl Impl {
    /// Short name for the table.
    pub fn name(&self) -> &'static str {
        match self {
            Impl::Kernel => "kernel",
            Impl::FuseOverlayfs(_) => "fuse-overlayfs",
            Impl::Strata(_) => "strata",
        }
    }
}

/// Run settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Smaller sizes and fewer repetitions.
    pub quick: bool,
    /// Repetitions per measurement.
    pub reps: usize,
    /// No further repetition of a workload on one implementation starts once
    /// this much time went into it (at least one always runs).
    pub budget: Duration,
    /// Where stacks and caches live.
    pub root: PathBuf,
    /// Where mounts keep their upper and work directories (see `scratch`).
    pub scratch: PathBuf,
    /// Never try debootstrap (use the generated tree unless a Debian one is cached).
    pub no_debootstrap: bool,
}

/// Median of a set of durations, in seconds.
pub fn median(mut v: Vec<Duration>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    Some(v[v.len() / 2].as_secs_f64())
}

fn find_strata() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_OVERLAYFS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("own path");
    exe.parent().expect("target dir").join("strata-overlayfs")
}

fn which(name: &str) -> Option<PathBuf> {
    let out = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn usage() -> ! {
    eprintln!("usage: strata-benches [--quick] [--json FILE] [--only SUBSTR] [--no-debootstrap]");
    std::process::exit(2);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut quick, mut json_out, mut only, mut no_debootstrap) = (false, None, None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--json" => json_out = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--only" => only = Some(args.next().unwrap_or_else(|| usage())),
            "--no-debootstrap" => no_debootstrap = true,
            _ => usage(),
        }
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!("strata-benches: must run as root (it mounts)");
        std::process::exit(1);
    }
    let strata = find_strata();
    if !strata.exists() {
        eprintln!("strata-benches: {} missing; build it with cargo build --release -p strata-fs", strata.display());
        std::process::exit(1);
    }
    let mut notes = Vec::new();
    let mut impls = vec![Impl::Kernel];
    match which("fuse-overlayfs") {
        Some(p) => impls.push(Impl::FuseOverlayfs(p)),
        None => notes.push("fuse-overlayfs not installed (apt-get install fuse-overlayfs): its column is empty".into()),
    }
    impls.push(Impl::Strata(strata));
    let root =
        std::env::var_os("STRATA_BENCH_DIR").map_or_else(|| PathBuf::from("/var/tmp/strata-bench"), PathBuf::from);
    let (reps, budget) = if quick { (3, Duration::from_secs(2)) } else { (5, Duration::from_secs(15)) };
    std::fs::create_dir_all(&root).expect("create the bench directory");
    let scratch_fs = scratch::prepare(&root, &mut notes);
    let settings = Settings { quick, reps, budget, root, scratch: scratch_fs.dir.clone(), no_debootstrap };
    let load_start = loadavg();
    let started = Instant::now();
    println!(
        "# strata benchmarks ({}, {} repetitions or {} s per workload and implementation), load average at start: {load_start}",
        if quick { "quick" } else { "full" },
        settings.reps,
        settings.budget.as_secs()
    );
    let tree = rootfs::get(&settings, &mut notes);
    let tarball = rootfs::tarball(&settings, &tree);
    let tracer = fusetrace::Tracer::new();
    let mut bench = workloads::Bench::new(&settings, &impls, only.as_deref(), tracer);
    bench.run_all(&tree, &tarball.0, &tarball.1);
    let want = |k: &str| only.as_deref().is_none_or(|o| k.contains(o));
    let mut pairs = images::run(&settings, &tree, &want);
    pairs.extend(containers::run(&settings, &want));
    pairs.extend(store::run(&settings, &want));
    let load_end = loadavg();
    let elapsed = started.elapsed().as_secs_f64();
    println!();
    report::print_table(&impls, &bench.rows);
    report::print_requests(&impls, &bench.rows);
    report::print_pairs(&pairs);
    println!();
    println!("root filesystem: {}", tree.origin);
    for n in &notes {
        println!("note: {n}");
    }
    println!("load average: {load_start} at start, {load_end} at end; {elapsed:.0} s in all");
    if let Some(path) = json_out {
        let meta = json!({
            "mode": if quick { "quick" } else { "full" },
            "repetitions": settings.reps,
            "budget_seconds": settings.budget.as_secs(),
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "seconds": elapsed,
            "rootfs": tree.origin,
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        });
        let doc = report::to_json(meta, &impls, &bench.rows, &pairs, &notes);
        let text = serde_json::to_string_pretty(&doc).expect("serialise results");
        std::fs::write(&path, text + "\n").expect("write the JSON output");
        println!("JSON written to {}", path.display());
    }
    drop(scratch_fs);
}
