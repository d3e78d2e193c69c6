//! Store concurrency rows (`--only store.`): how long `strata images` takes
//! while a 300 MB load or pull runs on the same store, against its idle
//! latency (target: within 2x), and two pulls of different 150 MB images
//! at once against one after the other (target: at most 0.6x), from a
//! real `docker-registry` on 127.0.0.1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::{PairRow, Unit};
use crate::Settings;

#[path = "../../store/tests/support/distribution.rs"]
mod distribution;
#[path = "../../cli/tests/support/mod.rs"]
#[allow(unused)]
mod support;

fn strata(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(crate::images::strata_bin());
    c.arg("--root").arg(root).arg("--storage-driver").arg("vfs").args(args).stdin(Stdio::null());
    c.env("STRATA_REGISTRY_TIMEOUT", "120");
    c
}

/// The median of seconds.
fn median(v: Vec<f64>) -> Option<f64> {
    crate::median(v.into_iter().map(Duration::from_secs_f64).collect())
}

fn ok(mut c: Command) -> Result<Duration, String> {
    let t = Instant::now();
    let o = c.output().map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
    }
    Ok(t.elapsed())
}

/// Median latency of `strata images` while `busy` runs (at least 3 samples,
/// all taken before it ends); `None` when it ended too soon.
fn images_while(root: &Path, mut busy: Child) -> Result<f64, String> {
    let mut v = Vec::new();
    while busy.try_wait().map_err(|e| e.to_string())?.is_none() {
        v.push(ok(strata(root, &["images"]))?.as_secs_f64());
    }
    let status = busy.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the background command failed: {status}"));
    }
    if v.len() < 3 {
        return Err(format!("the background command ended after {} samples", v.len()));
    }
    median(v).ok_or_else(|| "no sample".into())
}

fn idle(s: &Settings, root: &Path) -> Result<f64, String> {
    let mut v = Vec::new();
    for _ in 0..s.reps.max(5) {
        v.push(ok(strata(root, &["images"]))?.as_secs_f64());
    }
    median(v).ok_or_else(|| "no sample".into())
}

fn row(key: &str, name: &str, busy: Result<f64, String>, other_name: &str, base: &Result<f64, String>) -> PairRow {
    let notes: Vec<String> =
        [busy.as_ref().err(), base.as_ref().err()].into_iter().flatten().map(|e| e.to_string()).collect();
    PairRow {
        key: key.into(),
        name: name.into(),
        unit: Unit::Seconds,
        strata: busy.ok(),
        other_name: other_name.into(),
        other: base.as_ref().ok().copied(),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// The rows (skipped unless `want` takes `store.`).
pub fn run(s: &Settings, want: &dyn Fn(&str) -> bool) -> Vec<PairRow> {
    let mut rows = Vec::new();
    if !want("store.") {
        return rows;
    }
    let work = s.root.join("store-concurrency");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).expect("create the work directory");
    let big = work.join("big.tar");
    let (a, b) = (work.join("a.tar"), work.join("b.tar"));
    support::big_archive(&big, 300 << 20, 3, "ia/big:1");
    support::big_archive(&a, 150 << 20, 2, "ia/a:1");
    support::big_archive(&b, 150 << 20, 2, "ia/b:1");

    // images while a load runs.
    let root = work.join("root-load");
    let _ = ok(strata(&root, &["load", "-i", &work.join("a.tar").to_string_lossy()]));
    let base = idle(s, &root);
    let busy = strata(&root, &["load", "-i", &big.to_string_lossy()]).stdout(Stdio::null()).spawn();
    let during = busy.map_err(|e| e.to_string()).and_then(|c| images_while(&root, c));
    rows.push(row("store.images-during-load", "images while a 300 MB load runs", during, "idle", &base));

    // images while a pull runs, and parallel pulls.
    let reg = distribution::Registry::start(None);
    let push_root = work.join("root-push");
    let mut names = Vec::new();
    for (file, name) in [(&big, "ia/big:1"), (&a, "ia/a:1"), (&b, "ia/b:1")] {
        let remote = format!("{}/{name}", reg.host);
        let pushed = ok(strata(&push_root, &["load", "-i", &file.to_string_lossy()]))
            .and_then(|_| ok(strata(&push_root, &["tag", name, &remote])))
            .and_then(|_| ok(strata(&push_root, &["push", &remote])));
        if let Err(e) = pushed {
            rows.push(row("store.images-during-pull", "images while a 300 MB pull runs", Err(e), "idle", &base));
            return rows;
        }
        names.push(remote);
    }
    let root = work.join("root-pull");
    let _ = ok(strata(&root, &["load", "-i", &work.join("a.tar").to_string_lossy()]));
    let base = idle(s, &root);
    let busy = strata(&root, &["pull", &names[0]]).stdout(Stdio::null()).spawn();
    let during = busy.map_err(|e| e.to_string()).and_then(|c| images_while(&root, c));
    rows.push(row("store.images-during-pull", "images while a 300 MB pull runs", during, "idle", &base));

    let fresh = |tag: &str| -> PathBuf {
        let r = work.join(format!("root-{tag}"));
        let _ = fs::remove_dir_all(&r);
        r
    };
    let mut seq = Vec::new();
    let mut par = Vec::new();
    for i in 0..s.reps.min(3) {
        let r = fresh(&format!("seq{i}"));
        let t = Instant::now();
        let one = ok(strata(&r, &["pull", &names[1]])).and_then(|_| ok(strata(&r, &["pull", &names[2]])));
        seq.push(one.map(|_| t.elapsed().as_secs_f64()));
        let r = fresh(&format!("par{i}"));
        let t = Instant::now();
        let both: Result<Vec<Child>, _> =
            names[1..].iter().map(|n| strata(&r, &["pull", n]).stdout(Stdio::null()).spawn()).collect();
        let done = both.map_err(|e| e.to_string()).and_then(|cs| {
            cs.into_iter().try_for_each(|mut c| match c.wait() {
                Ok(st) if st.success() => Ok(()),
                Ok(st) => Err(format!("a pull failed: {st}")),
                Err(e) => Err(e.to_string()),
            })
        });
        par.push(done.map(|_| t.elapsed().as_secs_f64()));
    }
    let collect = |v: Vec<Result<f64, String>>| -> Result<f64, String> {
        let ok: Result<Vec<f64>, String> = v.into_iter().collect();
        median(ok?).ok_or_else(|| "no sample".into())
    };
    rows.push(row(
        "store.pull-two-parallel",
        "two 150 MB pulls at once (wall time)",
        collect(par),
        "one after the other",
        &collect(seq),
    ));
    let _ = fs::remove_dir_all(&work);
    rows
}
