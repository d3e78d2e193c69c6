//! Docker's human-readable sizes, durations and timestamps (go-units and Go's `time`).
//!
//! Contract:
//! * [`human_size_with_precision`] is go-units `HumanSizeWithPrecision`: decimal units
//!   (B, kB, MB, GB, TB, PB, EB, ZB, YB), Go `%.*g` (so 1980000 → `1.98MB`, 999500 at
//!   precision 3 → `1e+03kB`, exactly as Docker). `docker images`/`history` SIZE use
//!   precision 3 ([`human_size_3`]); `VirtualSize`, `system df` and "Total reclaimed space"
//!   use [`human_size`] (precision 4: `2.247MB`, `364.6kB`).
//! * [`bytes_size`] is go-units `BytesSize` (binary units, `%.4g`: `1.5KiB`).
//! * [`human_duration`] is go-units `HumanDuration`; [`human_since`] appends ` ago` as
//!   Docker's `CreatedSince` does.
//! * Timestamps: [`rfc3339`] (Go's `time.RFC3339`), [`rfc3339_nano`] (`time.RFC3339Nano`,
//!   trailing zeros of the fraction trimmed), [`go_time_string`] (`time.Time.String()`,
//!   `2006-01-02 15:04:05.999999999 -0700 MST`, used by `{{.CreatedAt}}` of images).

use chrono::{DateTime, FixedOffset, TimeZone, Utc};

use super::gofmt::format_g;

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

fn size_and_unit(mut size: f64, base: f64, units: &[&'static str]) -> (f64, &'static str) {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    (size, units[i])
}

/// go-units `HumanSizeWithPrecision(size, precision)`.
pub fn human_size_with_precision(size: f64, precision: usize) -> String {
    let (s, unit) = size_and_unit(size, 1000.0, &DECIMAL);
    format!("{}{unit}", format_g(s, Some(precision)))
}

/// go-units `HumanSize` (precision 4): `2.247MB`.
pub fn human_size(size: f64) -> String {
    human_size_with_precision(size, 4)
}

/// Precision 3, Docker's SIZE column of `images` and `history`: `1.98MB`.
pub fn human_size_3(size: i64) -> String {
    human_size_with_precision(size as f64, 3)
}

/// go-units `BytesSize`: binary units, `%.4g`.
pub fn bytes_size(size: f64) -> String {
    let (s, unit) = size_and_unit(size, 1024.0, &BINARY);
    format!("{}{unit}", format_g(s, Some(4)))
}

/// go-units `HumanDuration`, for a duration of `nanos` nanoseconds.
pub fn human_duration_nanos(nanos: i128) -> String {
    let seconds = nanos as f64 / 1e9;
    let secs = seconds as i64; // Go's int() truncates toward zero
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = (seconds / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours_f = seconds / 3600.0;
    let hours = (hours_f + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (hours_f as i64) / 24 / 365)
}

/// go-units `HumanDuration(d)`.
pub fn human_duration(d: chrono::Duration) -> String {
    let nanos = d.num_nanoseconds().map(i128::from).unwrap_or_else(|| i128::from(d.num_milliseconds()) * 1_000_000);
    human_duration_nanos(nanos)
}

/// Docker's `CreatedSince`: `HumanDuration(now - t) + " ago"` (`2 years ago`,
/// `Less than a second ago` for times in the future).
pub fn human_since(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", human_duration(now.signed_duration_since(t)))
}

fn offset_string(secs: i32, colon: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m) = (a / 3600, (a % 3600) / 60);
    if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let s = format!(".{nanos:09}");
    s.trim_end_matches('0').to_string()
}

/// Go's `t.Format(time.RFC3339)`: `2024-01-01T00:06:40Z`, `2024-01-01T01:06:40+01:00`.
pub fn rfc3339<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    let f = t.fixed_offset();
    let off = f.offset().local_minus_utc();
    let zone = if off == 0 { "Z".to_string() } else { offset_string(off, true) };
    format!("{}{zone}", f.format("%Y-%m-%dT%H:%M:%S"))
}

/// Go's `t.Format(time.RFC3339Nano)`: the fraction with trailing zeros trimmed
/// (`2026-11-22T10:57:09.797006924Z`, `2024-01-01T00:06:40Z`, `…:09.5Z`).
pub fn rfc3339_nano<Tz: TimeZone>(t: &DateTime<Tz>) -> String {
    let f = t.fixed_offset();
    let off = f.offset().local_minus_utc();
    let zone = if off == 0 { "Z".to_string() } else { offset_string(off, true) };
    format!("{}{}{zone}", f.format("%Y-%m-%dT%H:%M:%S"), fraction(f.timestamp_subsec_nanos() % 1_000_000_000))
}

/// Go's `time.Time.String()` (without a monotonic reading): `2006-01-02 15:04:05.999999999
/// -0700 MST`. `zone` is the zone abbreviation; Go prints the numeric offset in its place
/// when a zone has none, which is what `None` does (`+0100 +0100`).
pub fn go_time_string(t: &DateTime<FixedOffset>, zone: Option<&str>) -> String {
    let off = offset_string(t.offset().local_minus_utc(), false);
    let zone = zone.map(str::to_string).unwrap_or_else(|| off.clone());
    format!("{}{} {off} {zone}", t.format("%Y-%m-%d %H:%M:%S"), fraction(t.timestamp_subsec_nanos() % 1_000_000_000))
}

/// `go_time_string` in UTC: `2026-11-22 10:57:08 +0000 UTC` — what Docker's
/// `{{.CreatedAt}}` prints on a host whose local zone is UTC.
pub fn go_time_string_utc(t: &DateTime<Utc>) -> String {
    go_time_string(&t.fixed_offset(), Some("UTC"))
}

/// Unix seconds → UTC time (out-of-range values clamp to the epoch).
pub fn from_unix(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_like_go_units() {
        let cases: &[(f64, usize, &str)] = &[
            (0.0, 3, "0B"),
            (999.0, 3, "999B"),
            (1000.0, 3, "1kB"),
            (35.0, 3, "35B"),
            (262453.0, 3, "262kB"),
            (262453.0, 4, "262.5kB"),
            (1984281.0, 3, "1.98MB"),
            (1984281.0, 4, "1.984MB"),
            (2246811.0, 3, "2.25MB"),
            (2246811.0, 4, "2.247MB"),
            (2250000.0, 3, "2.25MB"),
            (1980000.0, 3, "1.98MB"),
            (364600.0, 4, "364.6kB"),
            (262200.0, 4, "262.2kB"),
            (102400.0, 3, "102kB"),
            (2510000.0, 3, "2.51MB"),
            (999500.0, 3, "1e+03kB"),
            (1e9, 4, "1GB"),
            (1.5e12, 4, "1.5TB"),
            (1e30, 4, "1e+06YB"),
        ];
        for (size, p, want) in cases {
            assert_eq!(human_size_with_precision(*size, *p), *want, "{size} p{p}");
        }
        assert_eq!(human_size(2246811.0), "2.247MB");
        assert_eq!(human_size_3(1984281), "1.98MB");
    }

    #[test]
    fn bytes_sizes_like_go_units() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0B"),
            (1023.0, "1023B"),
            (1024.0, "1KiB"),
            (1536.0, "1.5KiB"),
            (1048576.0, "1MiB"),
            (2246811.0, "2.143MiB"),
        ];
        for (size, want) in cases {
            assert_eq!(bytes_size(*size), *want, "{size}");
        }
    }

    #[test]
    fn human_durations_like_go_units() {
        const S: i128 = 1_000_000_000;
        let cases: &[(i128, &str)] = &[
            (-5 * S, "Less than a second"),
            (0, "Less than a second"),
            (S / 2, "Less than a second"),
            (S, "1 second"),
            (S + S / 2, "1 second"),
            (2 * S, "2 seconds"),
            (59 * S, "59 seconds"),
            (60 * S, "About a minute"),
            (119 * S, "About a minute"),
            (120 * S, "2 minutes"),
            (59 * 60 * S, "59 minutes"),
            (60 * 60 * S, "About an hour"),
            (89 * 60 * S, "About an hour"),
            (90 * 60 * S, "2 hours"),
            (47 * 3600 * S, "47 hours"),
            (48 * 3600 * S, "2 days"),
            (13 * 24 * 3600 * S, "13 days"),
            (14 * 24 * 3600 * S, "2 weeks"),
            (59 * 24 * 3600 * S, "8 weeks"),
            (60 * 24 * 3600 * S, "2 months"),
            (729 * 24 * 3600 * S, "24 months"),
            (730 * 24 * 3600 * S, "2 years"),
            (3 * 365 * 24 * 3600 * S, "3 years"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration_nanos(*d), *want, "{d}");
        }
    }

    #[test]
    fn created_since_matches_transcripts() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:57:09.2Z").unwrap().with_timezone(&Utc);
        let cases: &[(&str, &str)] = &[
            ("2026-11-22T10:57:08.9Z", "Less than a second ago"),
            ("2026-11-22T10:57:08Z", "1 second ago"),
            ("2026-11-22T10:57:07Z", "2 seconds ago"),
            ("2024-01-01T00:06:40Z", "2 years ago"),
            ("2024-01-01T00:00:00Z", "2 years ago"),
            ("2027-01-01T00:00:00Z", "Less than a second ago"),
        ];
        for (t, want) in cases {
            let t = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            assert_eq!(human_since(t, now), *want);
        }
    }

    #[test]
    fn timestamps_like_go() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T10:57:09.797006924Z").unwrap();
        assert_eq!(rfc3339_nano(&t), "2026-11-22T10:57:09.797006924Z");
        assert_eq!(rfc3339(&t), "2026-11-22T10:57:09Z");
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:06:40Z").unwrap();
        assert_eq!(rfc3339_nano(&t), "2024-01-01T00:06:40Z");
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:06:40.500+01:00").unwrap();
        assert_eq!(rfc3339_nano(&t), "2024-01-01T00:06:40.5+01:00");
        assert_eq!(rfc3339(&t), "2024-01-01T00:06:40+01:00");
        assert_eq!(go_time_string(&t, Some("CET")), "2024-01-01 00:06:40.5 +0100 CET");
        assert_eq!(go_time_string(&t, None), "2024-01-01 00:06:40.5 +0100 +0100");
        assert_eq!(go_time_string_utc(&from_unix(1795345028)), "2026-11-22 10:57:08 +0000 UTC");
        assert_eq!(go_time_string_utc(&from_unix(1704067600)), "2024-01-01 00:06:40 +0000 UTC");
        assert_eq!(rfc3339(&from_unix(1704067600)), "2024-01-01T00:06:40Z");
    }
}
