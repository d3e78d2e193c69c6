//! Benchmark harness: the same layer stacks mounted by the kernel's overlayfs,
//! fuse-overlayfs and strata-overlayfs in turn, the same workloads on each,
//! medians printed side by side with each FUSE implementation's ratio to the
//! kernel measured in the same run. Times are never asserted anywhere.
//!
//! `cargo run --release -p strata-benches -- [--quick] [--json FILE] [--only SUBSTR]`
//! (root needed; layer stacks are cached under `/var/tmp/strata-bench`).

mod stacks;
mod workloads;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

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
    /// Where stacks live.
    pub root: PathBuf,
}

/// One row of results: workload name and median seconds per implementation.
#[derive(Debug, Clone)]
pub struct Row {
    /// Workload.
    pub name: String,
    /// Unit of the value ("s", "MiB/s", "MiB").
    pub unit: &'static str,
    /// Median value per implementation, in `Impl` order; `None` = not run / failed.
    pub values: Vec<Option<f64>>,
}

fn find_strata() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_OVERLAYFS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("own path");
    exe.parent().expect("target dir").join("strata-overlayfs")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().position(|a| a == "--json").and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    if !rustix::process::geteuid().is_root() {
        eprintln!("strata-benches: must run as root (it mounts)");
        std::process::exit(1);
    }
    let strata = find_strata();
    if !strata.exists() {
        eprintln!("strata-benches: {} missing; build it with cargo build --release -p strata-fs", strata.display());
        std::process::exit(1);
    }
    let mut impls = vec![Impl::Kernel];
    match which("fuse-overlayfs") {
        Some(p) => impls.push(Impl::FuseOverlayfs(p)),
        None => eprintln!("note: fuse-overlayfs not installed; its column is skipped"),
    }
    impls.push(Impl::Strata(strata));
    let settings = Settings { quick, reps: if quick { 3 } else { 5 }, root: PathBuf::from("/var/tmp/strata-bench") };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("# strata benchmarks ({}), load average at start: {}", if quick { "quick" } else { "full" }, load.trim());
    let rows = workloads::run_all(&settings, &impls, only.as_deref());
    print_table(&impls, &rows);
    if let Some(path) = json {
        let mut f = std::fs::File::create(&path).expect("create json output");
        let _ = writeln!(f, "{}", to_json(&impls, &rows));
        println!("JSON written to {}", path.display());
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let out = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn fmt_val(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".into(),
        Some(x) if unit == "s" => {
            if x < 1e-3 {
                format!("{:.1}µs", x * 1e6)
            } else if x < 1.0 {
                format!("{:.2}ms", x * 1e3)
            } else {
                format!("{x:.2}s")
            }
        }
        Some(x) => format!("{x:.1}{unit}"),
    }
}

fn print_table(impls: &[Impl], rows: &[Row]) {
    let mut header = format!("{:<44}", "workload");
    for i in impls {
        header.push_str(&format!("{:>16}", i.name()));
    }
    for i in impls.iter().skip(1) {
        header.push_str(&format!("{:>18}", format!("{}/kernel", i.name())));
    }
    println!("{header}");
    for r in rows {
        let mut line = format!("{:<44}", r.name);
        for v in &r.values {
            line.push_str(&format!("{:>16}", fmt_val(*v, r.unit)));
        }
        for v in r.values.iter().skip(1) {
            let ratio = match (r.values[0], v) {
                (Some(k), Some(x)) if k > 0.0 => format!("{:.2}x", x / k),
                _ => "-".into(),
            };
            line.push_str(&format!("{ratio:>18}"));
        }
        println!("{line}");
    }
}

fn to_json(impls: &[Impl], rows: &[Row]) -> String {
    let names: Vec<String> = impls.iter().map(|i| format!("\"{}\"", i.name())).collect();
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let vals: Vec<String> =
                r.values.iter().map(|v| v.map_or("null".to_string(), |x| format!("{x:e}"))).collect();
            format!("{{\"workload\":\"{}\",\"unit\":\"{}\",\"values\":[{}]}}", r.name, r.unit, vals.join(","))
        })
        .collect();
    format!("{{\"implementations\":[{}],\"rows\":[{}]}}", names.join(","), rows.join(","))
}

/// Median of a set of durations, in seconds.
pub fn median(mut v: Vec<Duration>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    Some(v[v.len() / 2].as_secs_f64())
}
