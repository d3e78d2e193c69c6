//! Image operations: `strata load` / `strata save` of a ~100 MB multi-layer
//! docker-archive against `podman load` / `podman save` of the same archive
//! in the same run, and strata's SHA-256 (the `sha2` crate) against
//! `sha256sum` on the same bytes.
//!
//! The archive is built once from the root filesystem tree (apt's caches left
//! out) and cached: four layers (base, `usr/lib`, the rest of `usr`,
//! `usr/share`) written with the `tar` crate, a config whose
//! `rootfs.diff_ids` are the SHA-256 of each layer tar, and `manifest.json`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::report::{PairRow, Unit};
use crate::rootfs::RootTree;
use crate::{median, Settings};

/// The tag the archive carries.
pub const IMAGE_REF: &str = "strata-bench/image:latest";

/// Paths of the tree left out of the image (apt's package caches and lists).
const EXCLUDED: &[&str] = &["var/cache/apt", "var/lib/apt/lists", "proc", "sys", "dev"];

/// The image archive, built on first use.
pub struct Archive {
    /// The docker-archive file.
    pub path: PathBuf,
    /// Its image ID (sha256 of the config), hex.
    pub id: String,
    /// Number of layers.
    pub layers: usize,
    /// Size in bytes.
    pub size: u64,
}

/// Build (or reuse) the docker-archive made from `tree`.
pub fn archive(s: &Settings, tree: &RootTree) -> io::Result<Archive> {
    let dir = s.root.join(format!("image-{}", tree.tag()));
    let path = dir.join("image.tar");
    let id_file = dir.join("image.id");
    if !id_file.exists() {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let id = build_archive(&tree.dir, &dir, &path)?;
        fs::write(&id_file, &id)?;
    }
    let id = fs::read_to_string(&id_file)?.trim().to_string();
    Ok(Archive { size: fs::metadata(&path)?.len(), path, id, layers: 4 })
}

/// Which of the four layers a path (relative to the root) goes to; `None` = every layer (`usr` itself).
fn layer_of(rel: &Path) -> Option<usize> {
    let mut c = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned());
    match (c.next().as_deref(), c.next().as_deref()) {
        (Some("usr"), None) => None,
        (Some("usr"), Some("lib")) => Some(1),
        (Some("usr"), Some("share")) => Some(3),
        (Some("usr"), Some(_)) => Some(2),
        _ => Some(0),
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn build_archive(tree: &Path, dir: &Path, out: &Path) -> io::Result<String> {
    let mut builders: Vec<tar::Builder<Hashing<io::BufWriter<fs::File>>>> = (0..4)
        .map(|i| {
            let f = io::BufWriter::new(fs::File::create(dir.join(format!("layer{i}.tar")))?);
            let mut b = tar::Builder::new(Hashing { inner: f, hash: Sha256::new() });
            b.mode(tar::HeaderMode::Deterministic);
            b.follow_symlinks(false);
            Ok(b)
        })
        .collect::<io::Result<_>>()?;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(tree.join(&rel))?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries.iter().rev() {
            let rel = rel.join(e.file_name());
            if EXCLUDED.iter().any(|x| rel == Path::new(x)) {
                continue;
            }
            let t = e.file_type()?;
            if !(t.is_dir() || t.is_file() || t.is_symlink()) {
                continue;
            }
            match layer_of(&rel) {
                Some(l) => builders[l].append_path_with_name(e.path(), &rel)?,
                None => builders.iter_mut().try_for_each(|b| b.append_path_with_name(e.path(), &rel))?,
            }
            if t.is_dir() {
                stack.push(rel);
            }
        }
    }
    let mut diff_ids = Vec::new();
    for b in builders {
        let mut h = b.into_inner()?;
        h.flush()?;
        diff_ids.push(hex(&h.hash.finalize()));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>()},
        "history": (0..4).map(|i| json!({"created": "2024-01-01T00:00:00Z", "created_by": format!("strata-benches layer {i}")})).collect::<Vec<_>>(),
    }))?;
    let id = hex(&Sha256::digest(&config));
    let manifest = serde_json::to_vec(&json!([{
        "Config": format!("{id}.json"),
        "RepoTags": [IMAGE_REF],
        "Layers": diff_ids.iter().map(|d| format!("{d}/layer.tar")).collect::<Vec<_>>(),
    }]))?;
    let mut a = tar::Builder::new(io::BufWriter::new(fs::File::create(out)?));
    a.mode(tar::HeaderMode::Deterministic);
    for (i, d) in diff_ids.iter().enumerate() {
        let layer = dir.join(format!("layer{i}.tar"));
        a.append_path_with_name(&layer, format!("{d}/layer.tar"))?;
        fs::remove_file(layer)?;
    }
    for (name, bytes) in [(format!("{id}.json"), &config), ("manifest.json".to_string(), &manifest)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        a.append_data(&mut h, name, bytes.as_slice())?;
    }
    a.into_inner()?.flush()?;
    Ok(id)
}

/// Unmount whatever is mounted under `dir` (deepest first), then remove it.
fn clean(dir: &Path) {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut under: Vec<&str> =
        mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|m| Path::new(m).starts_with(dir)).collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    let _ = fs::remove_dir_all(dir);
}

/// Run a command, timing it; the error carries its stderr.
pub(crate) fn run_timed(cmd: &mut Command) -> Result<Duration, String> {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().map_err(|e| e.to_string())?;
    let d = t.elapsed();
    if out.status.success() {
        Ok(d)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim().to_string())
    }
}

/// A tool whose `load` and `save` are measured.
trait Tool {
    fn load(&self, archive: &Archive) -> Command;
    fn save(&self, archive: &Archive, out: &Path) -> Command;
    fn root(&self) -> Vec<PathBuf>;
}

struct Strata {
    bin: PathBuf,
    root: PathBuf,
}

impl Tool for Strata {
    fn load(&self, a: &Archive) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root).args(["--storage-driver", "fuse-overlay", "load", "-i"]).arg(&a.path);
        c
    }

    fn save(&self, _: &Archive, out: &Path) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(&self.root)
            .args(["--storage-driver", "fuse-overlay", "save", "-o"])
            .arg(out)
            .arg(IMAGE_REF);
        c
    }

    fn root(&self) -> Vec<PathBuf> {
        vec![self.root.clone()]
    }
}

struct Podman {
    root: PathBuf,
    runroot: PathBuf,
}

impl Podman {
    fn base(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root").arg(&self.root).arg("--runroot").arg(&self.runroot).args([
            "--storage-driver",
            "overlay",
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
        ]);
        c
    }
}

impl Tool for Podman {
    fn load(&self, a: &Archive) -> Command {
        let mut c = self.base();
        c.args(["load", "-q", "-i"]).arg(&a.path);
        c
    }

    fn save(&self, a: &Archive, out: &Path) -> Command {
        let mut c = self.base();
        c.args(["save", "-q", "--format", "docker-archive", "-o"]).arg(out).arg(&a.id);
        c
    }

    fn root(&self) -> Vec<PathBuf> {
        vec![self.root.clone(), self.runroot.clone()]
    }
}

/// Median `load` then median `save` times of `tool`, `reps` each (fewer past
/// `budget`), starting from an empty store each load.
fn load_save(
    tool: &dyn Tool,
    a: &Archive,
    out: &Path,
    reps: usize,
    budget: Duration,
) -> (Result<f64, String>, Result<f64, String>) {
    let mut loads = Vec::new();
    let started = Instant::now();
    for rep in 0..reps {
        if rep > 0 && started.elapsed() > budget {
            break;
        }
        tool.root().iter().for_each(|r| clean(r));
        match run_timed(&mut tool.load(a)) {
            Ok(d) => loads.push(d),
            Err(e) => return (Err(format!("load failed: {e}")), Err("not run (load failed)".into())),
        }
    }
    let mut saves = Vec::new();
    let started = Instant::now();
    for rep in 0..reps {
        if rep > 0 && started.elapsed() > budget {
            break;
        }
        let _ = fs::remove_file(out);
        match run_timed(&mut tool.save(a, out)) {
            Ok(d) => saves.push(d),
            Err(e) => {
                let _ = fs::remove_file(out);
                tool.root().iter().for_each(|r| clean(r));
                return (Ok(median(loads).unwrap_or(0.0)), Err(format!("save failed: {e}")));
            }
        }
    }
    let _ = fs::remove_file(out);
    tool.root().iter().for_each(|r| clean(r));
    (Ok(median(loads).unwrap_or(0.0)), Ok(median(saves).unwrap_or(0.0)))
}

/// The strata CLI: `STRATA_BIN`, else `strata` beside this binary.
pub(crate) fn strata_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATA_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe().ok().and_then(|e| Some(e.parent()?.join("strata"))).unwrap_or_else(|| "strata".into())
}

/// All image-operation rows.
pub fn run(s: &Settings, tree: &RootTree, want: &dyn Fn(&str) -> bool) -> Vec<PairRow> {
    let mut rows = Vec::new();
    if !want("image.load") && !want("image.save") && !want("image.sha256") {
        return rows;
    }
    let a = match archive(s, tree) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("note: cannot build the image archive: {e}; image rows skipped");
            return rows;
        }
    };
    let mib = a.size as f64 / (1 << 20) as f64;
    let what = format!("{mib:.0} MiB docker-archive, {} layers", a.layers);
    // Warm the page cache so both tools read the archive from memory.
    let _ = fs::File::open(&a.path).and_then(|mut f| io::copy(&mut f, &mut io::sink()));
    let work = s.root.join("images-run");
    let out = work.join("saved.tar");
    let _ = fs::create_dir_all(&work);
    if want("image.load") || want("image.save") {
        // Several seconds each: one repetition in quick runs.
        let reps = if s.quick { 1 } else { s.reps };
        let bin = strata_bin();
        let strata = if bin.exists() {
            let st = Strata { bin, root: work.join("strata-root") };
            let (l, sv) = load_save(&st, &a, &out, reps, s.budget);
            eprintln!("done: strata load/save");
            (l, sv)
        } else {
            let msg = format!("{} missing (cargo build --release -p strata)", bin.display());
            (Err(msg.clone()), Err(msg))
        };
        let podman = if which("podman") {
            let p = Podman { root: work.join("podman-root"), runroot: work.join("podman-run") };
            let (l, sv) = load_save(&p, &a, &out, reps, s.budget);
            eprintln!("done: podman load/save");
            (l, sv)
        } else {
            let msg = "podman not installed (apt-get install podman)".to_string();
            (Err(msg.clone()), Err(msg))
        };
        for (op, st, pd) in [("load", strata.0, podman.0), ("save", strata.1, podman.1)] {
            let mut notes = Vec::new();
            if let Err(e) = &st {
                notes.push(format!("strata: {e}"));
            }
            if let Err(e) = &pd {
                notes.push(format!("podman: {e}"));
            }
            rows.push(PairRow {
                key: format!("image.{op}"),
                name: format!("{op} ({what})"),
                unit: Unit::Seconds,
                strata: st.ok(),
                other_name: "podman".into(),
                other: pd.ok(),
                note: (!notes.is_empty()).then(|| notes.join("; ")),
            });
        }
    }
    if want("image.sha256") {
        let ours = median((0..s.reps).filter_map(|_| sha2_file(&a.path).ok()).collect());
        let theirs = median(
            (0..s.reps)
                .filter_map(|_| run_timed(Command::new("sha256sum").arg(&a.path)).ok())
                .collect::<Vec<Duration>>(),
        );
        rows.push(PairRow {
            key: "image.sha256".into(),
            name: format!("sha256 of the {mib:.0} MiB archive (throughput)"),
            unit: Unit::MibPerSec,
            strata: ours.map(|t| mib / t),
            other_name: "sha256sum".into(),
            other: theirs.map(|t| mib / t),
            note: Some("both read the file from the page cache; strata = sha2 crate, 1 MiB reads".into()),
        });
        eprintln!("done: sha256");
    }
    let _ = fs::remove_dir_all(&work);
    rows
}

/// Time hashing a file with the `sha2` crate, as the store digests a stream.
fn sha2_file(p: &Path) -> io::Result<Duration> {
    let t = Instant::now();
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    std::hint::black_box(h.finalize());
    Ok(t.elapsed())
}

pub(crate) fn which(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
