//! Counting the FUSE requests a workload causes, to explain ratios: the
//! kernel's `fuse:fuse_request_send` tracepoint, enabled in a private tracefs
//! instance (so nobody else's tracing is disturbed) and filtered to the
//! connection of the mount under test. `fuse:fuse_request_end` is traced as
//! well, so each request's latency (sent by the kernel → answered by the
//! daemon) is known.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const TRACEFS: &str = "/sys/kernel/tracing";
const EVENT: &str = "events/fuse/fuse_request_send";
const END: &str = "events/fuse/fuse_request_end";

/// Requests counted during one measurement.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    /// All requests.
    pub total: u64,
    /// Per opcode (`LOOKUP`, `GETATTR`, …).
    pub by_opcode: BTreeMap<String, u64>,
    /// Mean time from the kernel sending a request to the daemon's answer, in µs.
    pub mean_latency_us: Option<f64>,
    /// The trace buffer overflowed: counts are lower bounds.
    pub lost: bool,
}

impl Requests {
    /// `total: OP n, OP n, …` with the `top` most frequent opcodes.
    pub fn summary(&self, top: usize) -> String {
        let mut ops: Vec<(&String, &u64)> = self.by_opcode.iter().collect();
        ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = ops.iter().take(top).map(|(op, n)| format!("{op} {n}")).collect();
        let lat = self.mean_latency_us.map_or(String::new(), |l| format!(" ({l:.0}µs)"));
        format!("{}{}{lat}: {}", self.total, if self.lost { "+ (buffer overflowed)" } else { "" }, list.join(", "))
    }

    /// The counts as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "total": self.total,
            "by_opcode": self.by_opcode,
            "mean_latency_us": self.mean_latency_us,
            "lost": self.lost,
        })
    }
}

/// A private tracefs instance with the FUSE request tracepoint enabled.
pub struct Tracer {
    dir: PathBuf,
}

impl Tracer {
    /// Set up the instance; `None` (with a note on stderr) when the kernel
    /// has no tracefs or no FUSE tracepoints.
    pub fn new() -> Option<Tracer> {
        let root = Path::new(TRACEFS);
        if !root.join("instances").exists() {
            let _ = Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]).status();
        }
        if !root.join(EVENT).exists() {
            eprintln!("note: no fuse:fuse_request_send tracepoint; FUSE request counts are skipped");
            return None;
        }
        let dir = root.join("instances").join(format!("strata-bench-{}", std::process::id()));
        if fs::create_dir(&dir).is_err() {
            eprintln!("note: cannot create a tracefs instance; FUSE request counts are skipped");
            return None;
        }
        let t = Tracer { dir };
        t.write("tracing_on", "0");
        t.write("buffer_size_kb", "32768");
        t.write("trace_clock", "mono");
        t.write(&format!("{EVENT}/enable"), "1");
        t.write(&format!("{END}/enable"), "1");
        Some(t)
    }

    fn write(&self, file: &str, value: &str) {
        let _ = fs::write(self.dir.join(file), value);
    }

    /// Clear the buffer and start counting requests on the FUSE connection of `mountpoint`.
    pub fn start(&self, mountpoint: &Path) {
        let conn = fs::metadata(mountpoint).map(|m| {
            use std::os::unix::fs::MetadataExt;
            let dev = m.dev();
            // The kernel's dev_t encoding (major << 20 | minor), as the tracepoint prints it.
            (rustix::fs::major(dev) << 20) | rustix::fs::minor(dev)
        });
        let filter = conn.map_or("0".to_string(), |c| format!("connection == {c}"));
        self.write(&format!("{EVENT}/filter"), &filter);
        self.write(&format!("{END}/filter"), &filter);
        self.write("trace", "");
        self.write("tracing_on", "1");
    }

    /// Stop counting and return what was seen since `start`.
    pub fn stop(&self) -> Requests {
        self.write("tracing_on", "0");
        let mut r = Requests::default();
        let text = fs::read_to_string(self.dir.join("trace")).unwrap_or_default();
        // Send times by request id, and the sum of send → end latencies.
        let mut sent: BTreeMap<u64, f64> = BTreeMap::new();
        let (mut lat_sum, mut lat_n) = (0.0, 0u64);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some(ev) = parse(line) else { continue };
            match ev {
                Event::Send { time, req, op } => {
                    r.total += 1;
                    *r.by_opcode.entry(op).or_default() += 1;
                    sent.insert(req, time);
                }
                Event::End { time, req } => {
                    if let Some(t0) = sent.remove(&req) {
                        lat_sum += time - t0;
                        lat_n += 1;
                    }
                }
            }
        }
        r.mean_latency_us = (lat_n > 0).then(|| lat_sum / lat_n as f64 * 1e6);
        if let Ok(cpus) = fs::read_dir(self.dir.join("per_cpu")) {
            for cpu in cpus.flatten() {
                let stats = fs::read_to_string(cpu.path().join("stats")).unwrap_or_default();
                r.lost |= stats.lines().any(|l| l.starts_with("overrun:") && !l.ends_with(" 0"));
            }
        }
        r
    }
}

/// One traced event.
enum Event {
    Send { time: f64, req: u64, op: String },
    End { time: f64, req: u64 },
}

/// Parse `… 1234.567890: fuse_request_send: connection 45 req 2 opcode 1 (FUSE_LOOKUP) len 50`
/// or `… 1234.567901: fuse_request_end: connection 45 req 2 len 16 error 0`.
fn parse(line: &str) -> Option<Event> {
    let (head, rest) = line.split_once(": fuse_request_")?;
    let time: f64 = head.rsplit(' ').next()?.parse().ok()?;
    let req: u64 = rest.split_once(" req ")?.1.split(' ').next()?.parse().ok()?;
    if rest.starts_with("send") {
        let op = rest.split_once('(')?.1.split(')').next()?.trim_start_matches("FUSE_").to_string();
        Some(Event::Send { time, req, op })
    } else {
        Some(Event::End { time, req })
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.write(&format!("{EVENT}/enable"), "0");
        self.write(&format!("{END}/enable"), "0");
        let _ = fs::remove_dir(&self.dir);
    }
}
