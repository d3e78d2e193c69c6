//! `logs`: a container's json-file log, with `--tail`, `-t`, `--since`,
//! `--until` and `-f` (following until the container stops).

use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use strata_runtime::container as ctr;
use strata_runtime::logs::{self, Record};

use crate::cli::LogsArgs;
use crate::commands::containers::find;
use crate::settings::Settings;

/// A time as `--since`/`--until` take it: RFC 3339, a Unix timestamp, or a
/// duration before now (`10s`, `42m`, `2h`).
pub fn parse_when(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    if let Ok(secs) = s.parse::<f64>() {
        if let Some(t) = DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32) {
            return Ok(t);
        }
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| anyhow::anyhow!("invalid value for \"since\": could not parse \"{s}\""))?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid value for \"since\": could not parse \"{s}\""),
    };
    Ok(now - chrono::Duration::nanoseconds((secs * 1e9) as i64))
}

fn emit(r: &Record, timestamps: bool) -> std::io::Result<()> {
    let text = if timestamps { format!("{} {}", r.time, r.log) } else { r.log.clone() };
    if r.stream == "stderr" {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        let mut o = std::io::stdout();
        o.write_all(text.as_bytes())?;
        o.flush()
    }
}

/// `logs`
pub fn run(s: &Settings, a: LogsArgs) -> Result<()> {
    let store = s.store()?;
    let c = find(&store, &a.container)?;
    let now = Utc::now();
    let since = a.since.as_deref().map(|v| parse_when(v, now)).transpose()?;
    let until = a.until.as_deref().map(|v| parse_when(v, now)).transpose()?;
    let tail: Option<usize> = match a.tail.as_str() {
        "all" | "" => None,
        n => match n.parse::<i64>() {
            Ok(v) if v < 0 => None,
            Ok(v) => Some(v as usize),
            Err(_) => bail!("invalid value for \"tail\": {n}"),
        },
    };
    let path = logs::log_path(&ctr::dir(&store, &c.id), &c.id);
    let keep = |r: &Record| {
        let t = DateTime::parse_from_rfc3339(&r.time).map(|t| t.to_utc()).ok();
        since.is_none_or(|s| t.is_some_and(|t| t >= s)) && until.is_none_or(|u| t.is_some_and(|t| t <= u))
    };
    let (recs, mut offset) = logs::read_from(&path, 0)?;
    let mut recs: Vec<Record> = recs.into_iter().filter(|r| keep(r)).collect();
    if let Some(n) = tail {
        let skip = recs.len().saturating_sub(n);
        recs.drain(..skip);
    }
    for r in &recs {
        emit(r, a.timestamps)?;
    }
    if !a.follow {
        return Ok(());
    }
    loop {
        // Read what is there, then stop once the run has ended and
        // everything it wrote has been shown.
        let ended = !ctr::state(&store, &c.id).map(|s| s.is_running()).unwrap_or(false);
        let (more, off) = logs::read_from(&path, offset)?;
        offset = off;
        for r in more.iter().filter(|r| keep(r)) {
            emit(r, a.timestamps)?;
        }
        if ended || until.is_some_and(|u| Utc::now() > u) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T20:00:00Z").unwrap().to_utc();
        let t = |s: &str| parse_when(s, now).unwrap().to_rfc3339();
        assert_eq!(t("10s"), "2026-12-07T19:59:50+00:00");
        assert_eq!(t("42m"), "2026-12-07T19:18:00+00:00");
        assert_eq!(t("1h"), "2026-12-07T19:00:00+00:00");
        assert_eq!(t("2026-12-07T18:00:00Z"), "2026-12-07T18:00:00+00:00");
        assert_eq!(t("0"), "1970-01-01T00:00:00+00:00");
        assert!(parse_when("yesterday", now).is_err());
    }
}
