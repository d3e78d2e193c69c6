//! The filesystem workloads of the issue, each one a row: the same operation
//! on a mount of the same stack by every implementation, repeated, median kept.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::fusetrace::Tracer;
use crate::report::{Row, Unit};
use crate::rootfs::RootTree;
use crate::stacks::{self, mount, Mounted, Stack, DEEP_FILES};
use crate::{median, Impl, Settings};

/// The state of the caches when a timed operation starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// Page, dentry and inode caches dropped, then a new mount.
    Cold,
    /// A new mount; the page cache holds the layers from earlier runs.
    Fresh,
    /// The same mount, after one untimed run of the operation.
    Warm,
}

impl Cache {
    fn label(self) -> &'static str {
        match self {
            Cache::Cold => "cold",
            Cache::Fresh => "fresh",
            Cache::Warm => "warm",
        }
    }
}

/// An operation on a mountpoint.
type Op<'o> = &'o dyn Fn(&Path) -> io::Result<()>;

/// Runs workloads and collects their rows.
pub struct Bench<'a> {
    s: &'a Settings,
    impls: &'a [Impl],
    only: Option<&'a str>,
    tracer: Option<Tracer>,
    /// When the previous row was done (progress lines show each row's wall time).
    last: Instant,
    /// Rows so far, in run order.
    pub rows: Vec<Row>,
}

impl<'a> Bench<'a> {
    /// A bench over `impls`; `only` keeps the workloads whose key or name contains it.
    pub fn new(s: &'a Settings, impls: &'a [Impl], only: Option<&'a str>, tracer: Option<Tracer>) -> Bench<'a> {
        Bench { s, impls, only, tracer, last: Instant::now(), rows: Vec::new() }
    }

    fn want(&self, key: &str, name: &str) -> bool {
        self.only.is_none_or(|o| key.contains(o) || name.contains(o))
    }

    fn push(&mut self, r: Row) {
        let vals: Vec<String> = r.values.iter().map(|v| r.unit.format(*v)).collect();
        eprintln!("done: {:<52} {:<36} ({:.1} s)", r.name, vals.join("  "), self.last.elapsed().as_secs_f64());
        self.last = Instant::now();
        self.rows.push(r);
    }

    /// Time `op` on a mount of `stack`, `reps` times per implementation, after
    /// the untimed `prep`. Repetitions are interleaved (kernel, fuse-overlayfs,
    /// strata, kernel, …) so that a slow spell of this shared machine, or
    /// state one implementation leaves behind, falls on all of them alike; an
    /// implementation stops repeating once its repetitions took longer than
    /// the settings' budget (one always runs). FUSE requests are counted
    /// during the first timed repetition (the tracepoint costs well under 1%
    /// of a request).
    fn timed(&self, key: &str, name: &str, stack: &Stack, cache: Cache, prep: Op, op: Op) -> Row {
        let n = self.impls.len();
        let mut row = Row::new(key, name, Unit::Seconds, vec![None; n]);
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); n];
        let mut spent = vec![Duration::ZERO; n];
        let mut failed = vec![false; n];
        for rep in 0..self.s.reps {
            for (i, imp) in self.impls.iter().enumerate() {
                if failed[i] || (rep > 0 && spent[i] > self.s.budget) {
                    continue;
                }
                let started = Instant::now();
                let m = mount(self.s, imp, stack, cache == Cache::Cold);
                let trace = self.tracer.as_ref().filter(|_| rep == 0 && !matches!(imp, Impl::Kernel));
                let mut run = || -> io::Result<Duration> {
                    prep(&m.path)?;
                    if cache == Cache::Warm {
                        op(&m.path)?;
                    }
                    if let Some(t) = trace {
                        t.start(&m.path);
                    }
                    let t0 = Instant::now();
                    let r = op(&m.path);
                    let elapsed = t0.elapsed();
                    if let Some(t) = trace {
                        row.requests[i] = Some(t.stop());
                    }
                    r.map(|()| elapsed)
                };
                match run() {
                    Ok(d) => times[i].push(d),
                    Err(e) => {
                        eprintln!("note: {name}: {} failed: {e}", imp.name());
                        times[i].clear();
                        failed[i] = true;
                    }
                }
                drop(m);
                spent[i] += started.elapsed();
            }
        }
        row.values = times.into_iter().map(median).collect();
        row
    }

    /// Run every workload (or those `only` selects).
    pub fn run_all(&mut self, tree: &RootTree, tarball: &Path, tar_what: &str) {
        self.lookups();
        self.mounts();
        self.readdir();
        self.rootfs(tree, tarball, tar_what);
        self.data();
    }

    fn lookups(&mut self) {
        let files: Vec<String> = (0..DEEP_FILES).map(|j| format!("d/f{j}")).collect();
        let missing: Vec<String> = (0..DEEP_FILES).map(|j| format!("d/nope{j}")).collect();
        for d in [1usize, 10, 50, 128, 500] {
            let st = stacks::deep(self.s, d);
            for cache in [Cache::Cold, Cache::Fresh, Cache::Warm] {
                let key = format!("lookup.{}.d{d}", cache.label());
                let name = format!("lookup {DEEP_FILES} bottom files, depth {d}, {}", cache.label());
                if self.want(&key, &name) {
                    let r = self.timed(&key, &name, &st, cache, &nothing, &|m| stat_all(m, &files, true));
                    self.push(r);
                }
            }
            let key = format!("negative.fresh.d{d}");
            let name = format!("negative lookup x{DEEP_FILES}, depth {d}, fresh");
            if self.want(&key, &name) {
                let r = self.timed(&key, &name, &st, Cache::Fresh, &nothing, &|m| stat_all(m, &missing, false));
                self.push(r);
            }
        }
    }

    fn mounts(&mut self) {
        for d in [10usize, 128, 500] {
            let (key, name) = (format!("mount.{d}"), format!("mount, {d} layers"));
            if !self.want(&key, &name) {
                continue;
            }
            let st = stacks::deep(self.s, d);
            // Interleaved, as in `timed`.
            let mut times = vec![Vec::new(); self.impls.len()];
            for _ in 0..self.s.reps {
                for (i, imp) in self.impls.iter().enumerate() {
                    times[i].push(mount(self.s, imp, &st, false).mount_time);
                }
            }
            let values = times.into_iter().map(median).collect();
            self.push(Row::new(key, name, Unit::Seconds, values));
        }
    }

    fn readdir(&mut self) {
        let wide = stacks::wide(self.s);
        for (cache, label, stat) in
            [(Cache::Cold, "cold", false), (Cache::Warm, "warm", false), (Cache::Warm, "warm, with stat", true)]
        {
            let key = if stat { "readdir.stat".to_string() } else { format!("readdir.{label}") };
            let name = format!("readdir 10k entries / 10 layers, {label}");
            if self.want(&key, &name) {
                let r = self.timed(&key, &name, &wide, cache, &nothing, &|m| list(&m.join("big"), stat));
                self.push(r);
            }
        }
    }

    fn rootfs(&mut self, tree: &RootTree, tarball: &Path, tar_what: &str) {
        let st = stacks::rootfs(self.s, tree);
        for (tool, args) in [("find", &["."][..]), ("du", &["-s", "."][..])] {
            for cache in [Cache::Cold, Cache::Warm] {
                let key = format!("{tool}.{}", cache.label());
                let name = format!("{tool} over the rootfs, {}", cache.label());
                if self.want(&key, &name) {
                    let r = self.timed(&key, &name, &st, cache, &nothing, &|m| run_quiet(tool, args, m));
                    self.push(r);
                }
            }
        }
        let (key, name) = ("rss.find", "daemon peak RSS after find");
        if self.want(key, name) {
            let values = self
                .impls
                .iter()
                .map(|imp| {
                    let m = mount(self.s, imp, &st, false);
                    run_quiet("find", &["."], &m.path).ok()?;
                    peak_rss_mib(&m)
                })
                .collect();
            self.push(Row::new(key, name, Unit::Mib, values));
        }
        let n = if self.s.quick { 2_000 } else { 10_000 };
        let (key, name) = ("create", format!("create {}k small files", n / 1000));
        if self.want(key, &name) {
            let r = self.timed(key, &name, &st, Cache::Fresh, &nothing, &|m| {
                let d = m.join("new");
                fs::create_dir(&d)?;
                for i in 0..n {
                    fs::write(d.join(format!("n{i}")), b"data")?;
                }
                Ok(())
            });
            self.push(r);
        }
        let (key, name) = ("untar", format!("untar {tar_what}"));
        if self.want(key, &name) {
            let r = self.timed(key, &name, &st, Cache::Fresh, &|m| fs::create_dir(m.join("untar")), &|m| {
                run_quiet("tar", &["-xf", &tarball.to_string_lossy(), "-C", "untar"], m)
            });
            self.push(r);
        }
        let (key, name) = ("unlink", "unlink 1000 lower files (whiteouts)");
        if self.want(key, name) {
            let r = self.timed(key, name, &st, Cache::Fresh, &nothing, &|m| {
                (0..1000).try_for_each(|f| fs::remove_file(m.join(format!("many/m{f}"))))
            });
            self.push(r);
        }
        let (key, name) = ("rmrf", "rm -rf of a lower tree (1000 files, 55 dirs)");
        if self.want(key, name) {
            let r = self.timed(key, name, &st, Cache::Fresh, &nothing, &|m| run_quiet("rm", &["-rf", "tree"], m));
            self.push(r);
        }
        let (key, name) = ("rename-dir", "rename of a lower directory (mv, 100 files)");
        if self.want(key, name) {
            let r =
                self.timed(key, name, &st, Cache::Fresh, &nothing, &|m| run_quiet("mv", &["renameme", "renamed"], m));
            self.push(r);
        }
    }

    fn data(&mut self) {
        let mib = if self.s.quick { 256 } else { 1024 };
        let big = stacks::bigfile(self.s, mib);
        let size = if mib >= 1024 { format!("{} GiB", mib / 1024) } else { format!("{mib} MiB") };
        for cache in [Cache::Cold, Cache::Warm] {
            let key = format!("seqread.{}", cache.label());
            let name = format!("sequential read {size}, {} (throughput)", cache.label());
            if self.want(&key, &name) {
                let mut r = self.timed(&key, &name, &big, cache, &nothing, &|m| read_all(&m.join("big")));
                r.unit = Unit::MibPerSec;
                r.values = r.values.iter().map(|v| v.map(|t| mib as f64 / t)).collect();
                self.push(r);
            }
        }
        for cache in [Cache::Cold, Cache::Warm] {
            let key = format!("randread.{}", cache.label());
            let name = format!("random 4 KiB reads x2000, {}", cache.label());
            if self.want(&key, &name) {
                let r = self.timed(&key, &name, &big, cache, &nothing, &|m| random_reads(&m.join("big"), mib));
                self.push(r);
            }
        }
        let (key, name) = ("copyup.append", format!("copy-up: append 1 byte to a {size} lower file"));
        if self.want(key, &name) {
            let r = self.timed(key, &name, &big, Cache::Fresh, &nothing, &|m| {
                fs::OpenOptions::new().append(true).open(m.join("big"))?.write_all(b"!")
            });
            self.push(r);
        }
        for (file, label) in [("small", "small"), ("big", &*size)] {
            let key = format!("chmod.{}", if file == "big" { "big" } else { "small" });
            let name = format!("copy-up: chmod of a {label} lower file");
            if self.want(&key, &name) {
                let r = self.timed(&key, &name, &big, Cache::Fresh, &nothing, &|m| {
                    fs::set_permissions(m.join(file), fs::Permissions::from_mode(0o600))
                });
                self.push(r);
            }
        }
    }
}

fn nothing(_: &Path) -> io::Result<()> {
    Ok(())
}

/// `lstat` every name; `exist` says whether they must exist (else ENOENT is expected).
fn stat_all(root: &Path, names: &[String], exist: bool) -> io::Result<()> {
    for n in names {
        match fs::symlink_metadata(root.join(n)) {
            Ok(_) if exist => {}
            Err(e) if !exist && e.kind() == io::ErrorKind::NotFound => {}
            Ok(_) => return Err(io::Error::other(format!("{n} exists"))),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read a directory to the end (`ls -f`), and `lstat` each entry if `stat` (`ls -l`).
fn list(dir: &Path, stat: bool) -> io::Result<()> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        if stat {
            fs::symlink_metadata(e.path())?;
        }
        n += 1;
    }
    if n < 10_000 {
        return Err(io::Error::other(format!("{} lists {n} entries, not 10,000", dir.display())));
    }
    Ok(())
}

fn read_all(p: &Path) -> io::Result<()> {
    let mut f = fs::File::open(p)?;
    let mut buf = vec![0u8; 1 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok(())
}

/// 2000 `pread`s of 4 KiB at pseudo-random aligned offsets of a `mib` MiB file.
fn random_reads(p: &Path, mib: usize) -> io::Result<()> {
    let f = fs::File::open(p)?;
    let mut buf = [0u8; 4096];
    let blocks = (mib as u64) << 8;
    let mut x = 12345u64;
    for _ in 0..2000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        rustix::io::pread(&f, &mut buf, ((x >> 33) % blocks) * 4096)?;
    }
    Ok(())
}

/// Run `cmd args` in `dir` with its output discarded; an error if it fails.
pub fn run_quiet(cmd: &str, args: &[&str], dir: &Path) -> io::Result<()> {
    let out = Command::new(cmd).args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(io::Error::other(format!("{cmd} {}: {}", args.join(" "), err.lines().next().unwrap_or("failed"))))
    }
}

/// The daemon's peak resident set (VmHWM), in MiB.
fn peak_rss_mib(m: &Mounted) -> Option<f64> {
    let status = fs::read_to_string(PathBuf::from(format!("/proc/{}/status", m.pid?))).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}
