//! Results: rows, the targets for strata, the printed tables and the
//! JSON document.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::fusetrace::Requests;
use crate::Impl;

/// What a row's values measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (lower is better).
    Seconds,
    /// Throughput in MiB/s (higher is better).
    MibPerSec,
    /// Memory in MiB (lower is better).
    Mib,
}

impl Unit {
    /// The unit as written in the JSON.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::MibPerSec => "MiB/s",
            Unit::Mib => "MiB",
        }
    }

    /// Format one value for the table.
    pub fn format(self, v: Option<f64>) -> String {
        match (self, v) {
            (_, None) => "-".into(),
            (Unit::Seconds, Some(x)) if x < 1e-3 => format!("{:.1}µs", x * 1e6),
            (Unit::Seconds, Some(x)) if x < 1.0 => format!("{:.2}ms", x * 1e3),
            (Unit::Seconds, Some(x)) => format!("{x:.2}s"),
            (Unit::MibPerSec, Some(x)) => format!("{x:.0}MiB/s"),
            (Unit::Mib, Some(x)) => format!("{x:.1}MiB"),
        }
    }
}

/// One workload: the median per implementation (in `Impl` order).
#[derive(Debug, Clone)]
pub struct Row {
    /// Stable identifier (`lookup.fresh.d128`), used for targets and in the JSON.
    pub key: String,
    /// Human-readable workload.
    pub name: String,
    /// What the values measure.
    pub unit: Unit,
    /// Median per implementation; `None` = not run or failed.
    pub values: Vec<Option<f64>>,
    /// FUSE requests the kernel sent during one timed repetition, per implementation.
    pub requests: Vec<Option<Requests>>,
}

impl Row {
    /// A row without request counts.
    pub fn new(key: impl Into<String>, name: impl Into<String>, unit: Unit, values: Vec<Option<f64>>) -> Row {
        let n = values.len();
        Row { key: key.into(), name: name.into(), unit, values, requests: vec![None; n] }
    }

    /// The value of `imp_name` (`kernel`, `fuse-overlayfs`, `strata`).
    fn value(&self, impls: &[Impl], imp_name: &str) -> Option<f64> {
        impls.iter().position(|i| i.name() == imp_name).and_then(|p| self.values[p])
    }

    /// Ratio of implementation `i` to the kernel (column 0); `None` for memory rows.
    fn ratio(&self, i: usize) -> Option<f64> {
        if self.unit == Unit::Mib {
            return None;
        }
        match (self.values.first().copied().flatten(), self.values[i]) {
            (Some(k), Some(x)) if k > 0.0 => Some(x / k),
            _ => None,
        }
    }
}

/// A goal the issue sets for strata on one row.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// strata / kernel at most this (times).
    AtMost(f64),
    /// strata / kernel at least this (throughput).
    AtLeast(f64),
    /// strata's value at most fuse-overlayfs's (memory).
    NotAboveFuseOverlayfs,
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::AtMost(r) => format!("<= {r}x"),
            Target::AtLeast(r) => format!(">= {r}x"),
            Target::NotAboveFuseOverlayfs => "<= f-o".into(),
        }
    }
}

/// The target for the row `key`, if it sets one.
pub fn target(key: &str) -> Option<Target> {
    Some(match key {
        "lookup.fresh.d1" => Target::AtMost(1.5),
        "lookup.fresh.d128" => Target::AtMost(0.10),
        "lookup.fresh.d500" => Target::AtMost(0.05),
        "negative.fresh.d500" => Target::AtMost(0.05),
        "readdir.cold" => Target::AtMost(3.0),
        "find.warm" => Target::AtMost(1.5),
        "seqread.warm" => Target::AtLeast(0.9),
        "create" => Target::AtMost(1.1),
        "untar" => Target::AtMost(1.5),
        "unlink" => Target::AtMost(3.0),
        "rmrf" => Target::AtMost(3.0),
        "rename-dir" => Target::AtMost(1.5),
        "mount.128" => Target::AtMost(1.5),
        "rss.find" => Target::NotAboveFuseOverlayfs,
        _ => return None,
    })
}

/// Whether strata meets `t` on `row`.
fn met(t: Target, row: &Row, impls: &[Impl]) -> Option<bool> {
    let strata = impls.iter().position(|i| i.name() == "strata")?;
    match t {
        Target::AtMost(r) => row.ratio(strata).map(|x| x <= r),
        Target::AtLeast(r) => row.ratio(strata).map(|x| x >= r),
        Target::NotAboveFuseOverlayfs => Some(row.value(impls, "strata")? <= row.value(impls, "fuse-overlayfs")?),
    }
}

/// Whether strata does better than fuse-overlayfs on `row`.
fn beats_fuse_overlayfs(row: &Row, impls: &[Impl]) -> Option<bool> {
    let s = row.value(impls, "strata")?;
    let f = row.value(impls, "fuse-overlayfs")?;
    Some(if row.unit == Unit::MibPerSec { s >= f } else { s <= f })
}

/// Checks that span two rows: "depth 500 within 1.2x of depth 1".
fn cross_checks(rows: &[Row], impls: &[Impl]) -> Vec<(String, Option<bool>, String)> {
    let get = |k: &str| rows.iter().find(|r| r.key == k).and_then(|r| r.value(impls, "strata"));
    let mut out = Vec::new();
    if let (Some(d1), Some(d500)) = (get("lookup.fresh.d1"), get("lookup.fresh.d500")) {
        let r = d500 / d1;
        out.push((
            "strata lookup fresh: depth 500 within 1.2x of depth 1".to_string(),
            Some(r <= 1.2),
            format!("{} vs {} = {r:.2}x", Unit::Seconds.format(Some(d500)), Unit::Seconds.format(Some(d1))),
        ));
    }
    out
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    }
}

/// Print the main table: medians, ratios to the kernel, strata's target.
pub fn print_table(impls: &[Impl], rows: &[Row]) {
    let short = |i: &Impl| match i.name() {
        "fuse-overlayfs" => "f-o",
        n => n,
    };
    let mut header = format!("{:<46}", "workload");
    for i in impls {
        header.push_str(&format!("{:>15}", i.name()));
    }
    for i in impls.iter().skip(1) {
        header.push_str(&format!("{:>10}", format!("{}/k", short(i))));
    }
    header.push_str(&format!("{:>9}{:>5}{:>8}", "target", "met", "<f-o"));
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    for r in rows {
        let mut line = format!("{:<46}", r.name);
        for v in &r.values {
            line.push_str(&format!("{:>15}", r.unit.format(*v)));
        }
        for i in 1..impls.len() {
            let ratio = r.ratio(i).map_or("-".into(), |x| format!("{x:.2}x"));
            line.push_str(&format!("{ratio:>10}"));
        }
        let t = target(&r.key);
        let desc = t.map_or(String::new(), |t| t.describe());
        let ok = t.map_or("", |t| yes_no(met(t, r, impls)));
        line.push_str(&format!("{desc:>9}{ok:>5}{:>8}", yes_no(beats_fuse_overlayfs(r, impls))));
        println!("{line}");
    }
    for (what, ok, detail) in cross_checks(rows, impls) {
        println!("{what}: {detail} -> {}", yes_no(ok));
    }
    println!(
        "(k = kernel overlayfs, f-o = fuse-overlayfs; times are medians; ratios are to the kernel in this run; \
         for MiB/s higher is better; <f-o = strata better than fuse-overlayfs)"
    );
}

/// Print the FUSE requests each implementation received during one timed
/// repetition, for the rows where any was sent.
pub fn print_requests(impls: &[Impl], rows: &[Row]) {
    let fuse: Vec<usize> = (0..impls.len()).filter(|&i| !matches!(impls[i], Impl::Kernel)).collect();
    let sent = |r: &Row| fuse.iter().any(|&i| r.requests[i].as_ref().is_some_and(|q| q.total > 0));
    if !rows.iter().any(sent) {
        return;
    }
    println!();
    println!("FUSE requests during one timed repetition (total: most frequent opcodes)");
    let mut header = format!("{:<46}", "workload");
    for &i in &fuse {
        header.push_str(&format!("  {:<52}", impls[i].name()));
    }
    println!("{}", header.trim_end());
    for r in rows.iter().filter(|r| sent(r)) {
        let mut line = format!("{:<46}", r.name);
        for &i in &fuse {
            let q = r.requests[i].as_ref().map_or("-".into(), |q| q.summary(3));
            line.push_str(&format!("  {q:<52}"));
        }
        println!("{}", line.trim_end());
    }
}

/// A row comparing strata with another tool (image operations, digests).
#[derive(Debug, Clone)]
pub struct PairRow {
    /// Stable identifier.
    pub key: String,
    /// Human-readable operation.
    pub name: String,
    /// What the values measure.
    pub unit: Unit,
    /// strata's median.
    pub strata: Option<f64>,
    /// The other tool's name.
    pub other_name: String,
    /// The other tool's median.
    pub other: Option<f64>,
    /// Why a value is missing, or what was measured.
    pub note: Option<String>,
}

/// Print the image-operation rows.
pub fn print_pairs(rows: &[PairRow]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!("{:<46}{:>12}{:>14}{:>12}{:>16}", "image operation", "strata", "other", "", "strata/other");
    for r in rows {
        let ratio = match (r.strata, r.other) {
            (Some(s), Some(o)) if o > 0.0 => format!("{:.2}x", s / o),
            _ => "-".into(),
        };
        println!(
            "{:<46}{:>12}{:>14}{:>12}{:>16}",
            r.name,
            r.unit.format(r.strata),
            r.other_name,
            r.unit.format(r.other),
            ratio
        );
        if let Some(n) = &r.note {
            println!("    note: {n}");
        }
    }
}

/// The whole run as JSON.
pub fn to_json(meta: Value, impls: &[Impl], rows: &[Row], pairs: &[PairRow], notes: &[String]) -> Value {
    let checks: Vec<Value> = cross_checks(rows, impls)
        .into_iter()
        .map(|(what, ok, detail)| json!({"check": what, "met": ok, "detail": detail}))
        .collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut values = BTreeMap::new();
            let mut ratios = BTreeMap::new();
            let mut requests = BTreeMap::new();
            for (i, imp) in impls.iter().enumerate() {
                values.insert(imp.name(), json!(r.values[i]));
                if i > 0 {
                    ratios.insert(imp.name(), json!(r.ratio(i)));
                }
                if let Some(q) = &r.requests[i] {
                    requests.insert(imp.name(), q.to_json());
                }
            }
            let t = target(&r.key);
            json!({
                "key": r.key,
                "workload": r.name,
                "unit": r.unit.label(),
                "median": values,
                "ratio_to_kernel": ratios,
                "strata_target": t.map(|t| t.describe()),
                "strata_meets_target": t.and_then(|t| met(t, r, impls)),
                "strata_beats_fuse_overlayfs": beats_fuse_overlayfs(r, impls),
                "fuse_requests": requests,
            })
        })
        .collect();
    let pairs: Vec<Value> = pairs
        .iter()
        .map(|p| {
            json!({
                "key": p.key,
                "operation": p.name,
                "unit": p.unit.label(),
                "strata": p.strata,
                "other": p.other_name,
                "other_value": p.other,
                "note": p.note,
            })
        })
        .collect();
    json!({
        "meta": meta,
        "implementations": impls.iter().map(Impl::name).collect::<Vec<_>>(),
        "rows": rows,
        "image_operations": pairs,
        "checks": checks,
        "notes": notes,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn impls() -> Vec<Impl> {
        vec![Impl::Kernel, Impl::FuseOverlayfs(PathBuf::from("f")), Impl::Strata(PathBuf::from("s"))]
    }

    #[test]
    fn values_are_formatted_per_unit() {
        let cases = [
            (Unit::Seconds, Some(0.000_250), "250.0µs"),
            (Unit::Seconds, Some(0.0125), "12.50ms"),
            (Unit::Seconds, Some(3.5), "3.50s"),
            (Unit::MibPerSec, Some(8421.4), "8421MiB/s"),
            (Unit::Mib, Some(3.25), "3.2MiB"),
            (Unit::Seconds, None, "-"),
        ];
        for (unit, v, want) in cases {
            assert_eq!(unit.format(v), want, "{unit:?} {v:?}");
        }
    }

    #[test]
    fn targets_and_the_comparison_with_fuse_overlayfs() {
        let im = impls();
        // (key, unit, kernel, fuse-overlayfs, strata) -> (meets target, beats fuse-overlayfs)
        let cases = [
            ("lookup.fresh.d1", Unit::Seconds, 10.0, 30.0, 15.0, Some(true), Some(true)),
            ("lookup.fresh.d1", Unit::Seconds, 10.0, 12.0, 16.0, Some(false), Some(false)),
            ("seqread.warm", Unit::MibPerSec, 100.0, 50.0, 95.0, Some(true), Some(true)),
            ("seqread.warm", Unit::MibPerSec, 100.0, 95.0, 80.0, Some(false), Some(false)),
            ("rss.find", Unit::Mib, 0.0, 5.8, 3.2, Some(true), Some(true)),
            ("create", Unit::Seconds, 1.0, 2.0, 1.1, Some(true), Some(true)),
            ("find.cold", Unit::Seconds, 1.0, 2.0, 3.0, None, Some(false)),
        ];
        for (key, unit, k, f, s, want_met, want_beats) in cases {
            let row = Row::new(key, key, unit, vec![Some(k), Some(f), Some(s)]);
            let got = target(key).and_then(|t| met(t, &row, &im));
            assert_eq!(got, want_met, "{key}: target");
            assert_eq!(beats_fuse_overlayfs(&row, &im), want_beats, "{key}: beats f-o");
        }
    }

    #[test]
    fn every_target_names_a_row_the_workloads_make() {
        let mut keys: Vec<String> = ["cold", "fresh", "warm"]
            .iter()
            .flat_map(|c| [1, 10, 50, 128, 500].map(|d| format!("lookup.{c}.d{d}")))
            .chain([1, 10, 50, 128, 500].map(|d| format!("negative.fresh.d{d}")))
            .chain([10, 128, 500].map(|d| format!("mount.{d}")))
            .collect();
        keys.extend(
            [
                "readdir.cold",
                "readdir.warm",
                "readdir.stat",
                "find.cold",
                "find.warm",
                "du.cold",
                "du.warm",
                "rss.find",
                "create",
                "untar",
                "unlink",
                "rmrf",
                "rename-dir",
                "seqread.cold",
                "seqread.warm",
                "randread.cold",
                "randread.warm",
                "copyup.append",
                "chmod.small",
                "chmod.big",
            ]
            .map(String::from),
        );
        let with_targets = keys.iter().filter(|k| target(k).is_some()).count();
        // The table has 14 rows with a target (lookup d128 and d500 count apart).
        assert_eq!(with_targets, 14);
    }

    #[test]
    fn depth_check_compares_depth_500_with_depth_1() {
        let im = impls();
        let rows = [
            Row::new("lookup.fresh.d1", "", Unit::Seconds, vec![Some(0.01), Some(0.05), Some(0.040)]),
            Row::new("lookup.fresh.d500", "", Unit::Seconds, vec![Some(0.4), Some(0.6), Some(0.046)]),
        ];
        let checks = cross_checks(&rows, &im);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].1, Some(true), "{}", checks[0].2);
        let rows = [rows[0].clone(), Row::new("lookup.fresh.d500", "", Unit::Seconds, vec![None, None, Some(0.05)])];
        assert_eq!(cross_checks(&rows, &im)[0].1, Some(false));
    }
}
