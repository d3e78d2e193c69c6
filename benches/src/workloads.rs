//! The workloads: each one a row of the table.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::stacks::{self, drop_caches, mount, Mounted, Stack};
use crate::{median, Impl, Row, Settings};

#[derive(Clone, Copy, PartialEq)]
enum Cache {
    /// Caches dropped, then a new mount.
    Cold,
    /// A new mount, page cache warm.
    Fresh,
    /// The same mount, after one untimed pass.
    Warm,
}

/// Time `op` on a mount of `stack` per implementation; `prep` runs untimed first.
fn timed(
    s: &Settings,
    impls: &[Impl],
    stack: &Stack,
    name: String,
    cache: Cache,
    prep: &dyn Fn(&Path),
    op: &dyn Fn(&Path),
) -> Row {
    let values = impls
        .iter()
        .map(|imp| {
            let mut times = Vec::new();
            for _ in 0..s.reps {
                if cache == Cache::Cold {
                    drop_caches();
                }
                let m = mount(s, imp, stack);
                prep(&m.path);
                if cache == Cache::Warm {
                    op(&m.path);
                }
                let t = Instant::now();
                op(&m.path);
                times.push(t.elapsed());
            }
            median(times)
        })
        .collect();
    Row { name, unit: "s", values }
}

fn nothing(_: &Path) {}

fn stat_all(root: &Path, names: &[String]) {
    for n in names {
        let _ = fs::symlink_metadata(root.join(n));
    }
}

fn walk(dir: &Path, with_stat: bool) -> u64 {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            n += 1;
            let ft = e.file_type();
            if with_stat {
                let _ = fs::symlink_metadata(e.path());
            }
            if ft.is_ok_and(|t| t.is_dir()) {
                n += walk(&e.path(), with_stat);
            }
        }
    }
    n
}

fn read_all(p: &Path) -> u64 {
    let mut f = fs::File::open(p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

fn sh(cmd: &str, dir: &Path) {
    let st = Command::new("sh").arg("-c").arg(cmd).current_dir(dir).status().unwrap();
    assert!(st.success(), "{cmd} failed in {}", dir.display());
}

fn rss_kib(m: &Mounted) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{}/status", m.pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok()
}

/// Run every workload (or those whose name contains `only`).
pub fn run_all(s: &Settings, impls: &[Impl], only: Option<&str>) -> Vec<Row> {
    let want = |name: &str| only.is_none_or(|o| name.contains(o));
    let mut rows = Vec::new();
    let mut push = |r: Row| {
        eprintln!("done: {}", r.name);
        rows.push(r);
    };
    let depths: &[usize] = if s.quick { &[1, 10, 50, 128] } else { &[1, 10, 50, 128, 500] };
    let files: Vec<String> = (0..100).map(|j| format!("d/f{j}")).collect();
    let missing: Vec<String> = (0..100).map(|j| format!("d/nope{j}")).collect();
    for &d in depths {
        let st = stacks::deep(s, d);
        for (cache, label) in [(Cache::Fresh, "fresh"), (Cache::Warm, "warm"), (Cache::Cold, "cold")] {
            let name = format!("lookup 100 bottom files, depth {d}, {label}");
            if want(&name) {
                push(timed(s, impls, &st, name, cache, &nothing, &|m| stat_all(m, &files)));
            }
        }
        let name = format!("negative lookup x100, depth {d}, fresh");
        if want(&name) {
            push(timed(s, impls, &st, name, Cache::Fresh, &nothing, &|m| stat_all(m, &missing)));
        }
    }
    for d in [10usize, 128] {
        let name = format!("mount, {d} layers");
        if want(&name) {
            let st = stacks::deep(s, d);
            let values = impls
                .iter()
                .map(|imp| median((0..s.reps).map(|_| mount(s, imp, &st).mount_time).collect::<Vec<Duration>>()))
                .collect();
            push(Row { name, unit: "s", values });
        }
    }
    let wide = stacks::wide(s);
    for (cache, label, stat) in
        [(Cache::Cold, "cold", false), (Cache::Warm, "warm", false), (Cache::Warm, "warm, with stat", true)]
    {
        let name = format!("readdir 10k entries / 10 layers, {label}");
        if want(&name) {
            push(timed(s, impls, &wide, name, cache, &nothing, &|m| {
                walk(&m.join("big"), stat);
            }));
        }
    }
    let rootfs = stacks::rootfs(s, if s.quick { 300 } else { 600 });
    for (cache, label) in [(Cache::Cold, "cold"), (Cache::Warm, "warm")] {
        let name = format!("find (walk + lstat) over rootfs tree, {label}");
        if want(&name) {
            push(timed(s, impls, &rootfs, name, cache, &nothing, &|m| {
                walk(m, true);
            }));
        }
    }
    let name = "daemon RSS after find (MiB)".to_string();
    if want(&name) {
        let values = impls
            .iter()
            .map(|imp| {
                let m = mount(s, imp, &rootfs);
                walk(&m.path, true);
                rss_kib(&m).map(|k| k / 1024.0)
            })
            .collect();
        push(Row { name, unit: "MiB", values });
    }
    let mib = if s.quick { 256 } else { 1024 };
    let big = stacks::bigfile(s, mib);
    let name = format!("sequential read {mib} MiB, warm (MiB/s)");
    if want(&name) {
        let r = timed(s, impls, &big, name.clone(), Cache::Warm, &nothing, &|m| {
            read_all(&m.join("big"));
        });
        push(Row { name, unit: "MiB/s", values: r.values.iter().map(|v| v.map(|t| mib as f64 / t)).collect() });
    }
    let name = format!("sequential read {mib} MiB, cold (MiB/s)");
    if want(&name) {
        let r = timed(s, impls, &big, name.clone(), Cache::Cold, &nothing, &|m| {
            read_all(&m.join("big"));
        });
        push(Row { name, unit: "MiB/s", values: r.values.iter().map(|v| v.map(|t| mib as f64 / t)).collect() });
    }
    let name = "random 4 KiB reads x2000, warm".to_string();
    if want(&name) {
        push(timed(s, impls, &big, name, Cache::Warm, &nothing, &|m| {
            let f = fs::File::open(m.join("big")).unwrap();
            let mut buf = [0u8; 4096];
            let blocks = (mib as u64) << 8;
            let mut x = 12345u64;
            for _ in 0..2000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let _ = rustix::io::pread(&f, &mut buf, ((x >> 33) % blocks) * 4096);
            }
        }));
    }
    let name = format!("copy-up: append 1 byte to {mib} MiB lower file");
    if want(&name) {
        push(timed(s, impls, &big, name, Cache::Fresh, &nothing, &|m| {
            use std::io::Write;
            fs::OpenOptions::new().append(true).open(m.join("big")).unwrap().write_all(b"!").unwrap();
        }));
    }
    for (file, label) in [("small", "small"), ("big", "big")] {
        let name = format!("copy-up: chmod of a {label} lower file");
        if want(&name) {
            push(timed(s, impls, &big, name, Cache::Fresh, &nothing, &|m| {
                fs::set_permissions(m.join(file), fs::Permissions::from_mode(0o600)).unwrap();
            }));
        }
    }
    let name = "create 10k small files".to_string();
    if want(&name) {
        push(timed(s, impls, &rootfs, name, Cache::Fresh, &nothing, &|m| {
            let d = m.join("new");
            fs::create_dir(&d).unwrap();
            for i in 0..10_000 {
                fs::write(d.join(format!("n{i}")), b"data").unwrap();
            }
        }));
    }
    let tarball = s.root.join("rootfs.tar");
    if !tarball.exists() {
        sh(&format!("tar -cf {} -C {} .", tarball.display(), rootfs.dir.join("0").display()), &s.root);
    }
    let name = "untar a root filesystem tree".to_string();
    if want(&name) {
        push(timed(s, impls, &rootfs, name, Cache::Fresh, &|m| fs::create_dir(m.join("untar")).unwrap(), &|m| {
            sh(&format!("tar -xf {}", tarball.display()), &m.join("untar"));
        }));
    }
    let name = "unlink 1000 lower files".to_string();
    if want(&name) {
        push(timed(s, impls, &rootfs, name, Cache::Fresh, &nothing, &|m| {
            for f in 0..1000 {
                fs::remove_file(m.join(format!("many/m{f}"))).unwrap();
            }
        }));
    }
    let name = "rm -rf of a lower tree (1000 files)".to_string();
    if want(&name) {
        push(timed(s, impls, &rootfs, name, Cache::Fresh, &nothing, &|m| sh("rm -rf tree", m)));
    }
    let name = "rename of a lower directory (mv)".to_string();
    if want(&name) {
        push(timed(s, impls, &rootfs, name, Cache::Fresh, &nothing, &|m| sh("mv renameme renamed", m)));
    }
    rows
}
