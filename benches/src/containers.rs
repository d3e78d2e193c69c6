//! Running and building, against Docker and podman in the same run:
//! `run --rm IMAGE true`, `run -d` + `stop`, `exec` (strata, a private
//! dockerd with `--network none`, podman with runc), and `build` of a
//! Dockerfile with a 100 MB / 10k-file context, 10 RUN steps and 3 COPYs —
//! cold, rebuilt with nothing changed, and rebuilt after one source file
//! changed (strata with both builders' styles, Docker's classic builder
//! and BuildKit, and `buildah bud`). Times are medians; never asserted.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::images::{run_timed, strata_bin, which};
use crate::report::{PairRow, Unit};
use crate::{median, Settings};

/// A private dockerd for the run; killed when dropped.
struct Dockerd {
    child: Child,
    sock: PathBuf,
}

impl Dockerd {
    fn start(dir: &Path) -> Result<Dockerd, String> {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let sock = dir.join("docker.sock");
        let child = Command::new("dockerd")
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-masq=false",
                "--storage-driver",
                "overlay2",
            ])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("dockerd: {e}"))?;
        let d = Dockerd { child, sock };
        let t0 = Instant::now();
        while d.cmd(&["version"]).output().map(|o| !o.status.success()).unwrap_or(true) {
            if t0.elapsed() > Duration::from_secs(60) {
                return Err("dockerd did not start".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(d)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.arg("-H").arg(format!("unix://{}", self.sock.display())).args(args);
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// The three tools, each a command prefix.
struct Tools {
    strata: Option<(PathBuf, PathBuf)>,
    docker: Option<Dockerd>,
    podman: Option<(PathBuf, PathBuf)>,
}

impl Tools {
    fn strata(&self, args: &[&str]) -> Option<Command> {
        let (bin, root) = self.strata.as_ref()?;
        let mut c = Command::new(bin);
        c.arg("--root").arg(root).args(args);
        Some(c)
    }
    fn docker(&self, args: &[&str]) -> Option<Command> {
        Some(self.docker.as_ref()?.cmd(args))
    }
    fn podman(&self, args: &[&str]) -> Option<Command> {
        let (root, run) = self.podman.as_ref()?;
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(root)
            .arg("--runroot")
            .arg(run)
            .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"])
            .args(args);
        Some(c)
    }
}

fn ok(c: Option<Command>) -> Result<(), String> {
    let mut c = c.ok_or("not available")?;
    run_timed(&mut c).map(drop)
}

/// Median of `reps` timings of `f` (within the budget), or the first error.
fn timed(s: &Settings, mut f: impl FnMut() -> Result<Duration, String>) -> Result<f64, String> {
    let mut v = Vec::new();
    let t0 = Instant::now();
    for i in 0..s.reps {
        if i > 0 && t0.elapsed() > s.budget {
            break;
        }
        v.push(f()?);
    }
    median(v).ok_or_else(|| "no repetition".into())
}

fn pair(key: &str, name: &str, strata: &Result<f64, String>, other_name: &str, other: &Result<f64, String>) -> PairRow {
    let mut notes = Vec::new();
    if let Err(e) = strata {
        notes.push(format!("strata: {e}"));
    }
    if let Err(e) = other {
        notes.push(format!("{other_name}: {e}"));
    }
    PairRow {
        key: key.into(),
        name: name.into(),
        unit: Unit::Seconds,
        strata: strata.as_ref().ok().copied(),
        other_name: other_name.into(),
        other: other.as_ref().ok().copied(),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

const PODMAN_LIMITS: &[&str] = &["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];

fn run_rows(s: &Settings, t: &Tools, rows: &mut Vec<PairRow>) {
    // run --rm IMAGE true
    let strata = timed(s, || run_timed(&mut t.strata(&["run", "--rm", "busybox", "true"]).ok_or("no strata")?));
    let docker = timed(s, || {
        run_timed(&mut t.docker(&["run", "--rm", "--network", "none", "busybox", "true"]).ok_or("no dockerd")?)
    });
    let mut pargs = vec!["run", "--rm", "--network", "none"];
    pargs.extend(PODMAN_LIMITS);
    pargs.extend(["busybox", "true"]);
    let podman = timed(s, || run_timed(&mut t.podman(&pargs).ok_or("no podman")?));
    rows.push(pair("run.rm_true", "run --rm busybox true", &strata, "docker", &docker));
    rows.push(pair("run.rm_true.podman", "run --rm busybox true", &strata, "podman", &podman));
    eprintln!("done: run --rm");

    // run -d + stop (a TERM trap that exits)
    let script = "trap 'exit 0' TERM; while :; do sleep 0.05; done";
    let cycle = |mk: &dyn Fn(&[&str]) -> Option<Command>, extra: &[&str]| -> Result<Duration, String> {
        let mut a = vec!["run", "-d", "--name", "bench-stop"];
        a.extend(extra);
        a.extend(["busybox", "sh", "-c", script]);
        let t0 = Instant::now();
        ok(mk(&a))?;
        ok(mk(&["stop", "bench-stop"]))?;
        let d = t0.elapsed();
        ok(mk(&["rm", "bench-stop"]))?;
        Ok(d)
    };
    let strata = timed(s, || cycle(&|a| t.strata(a), &[]));
    let docker = timed(s, || cycle(&|a| t.docker(a), &["--network", "none"]));
    let mut pextra = vec!["--network", "none"];
    pextra.extend(PODMAN_LIMITS);
    let podman = timed(s, || cycle(&|a| t.podman(a), &pextra));
    rows.push(pair("run.detach_stop", "run -d + stop", &strata, "docker", &docker));
    rows.push(pair("run.detach_stop.podman", "run -d + stop", &strata, "podman", &podman));
    eprintln!("done: run -d + stop");

    // exec into a running container
    let exec = |mk: &dyn Fn(&[&str]) -> Option<Command>, extra: &[&str]| -> Result<f64, String> {
        let mut a = vec!["run", "-d", "--name", "bench-exec"];
        a.extend(extra);
        a.extend(["busybox", "sleep", "1000"]);
        ok(mk(&a))?;
        let r = timed(s, || run_timed(&mut mk(&["exec", "bench-exec", "true"]).ok_or("unavailable")?));
        let _ = ok(mk(&["rm", "-f", "bench-exec"]));
        r
    };
    let strata = exec(&|a| t.strata(a), &[]);
    let docker = exec(&|a| t.docker(a), &["--network", "none"]);
    let podman = exec(&|a| t.podman(a), &pextra);
    rows.push(pair("run.exec", "exec CONTAINER true", &strata, "docker", &docker));
    rows.push(pair("run.exec.podman", "exec CONTAINER true", &strata, "podman", &podman));
    eprintln!("done: exec");
}

/// The build context: 10k files of 10 KiB in three directories, made once.
fn context(s: &Settings) -> std::io::Result<PathBuf> {
    let dir = s.root.join("build-context");
    let stamp = dir.join(".made");
    if stamp.exists() {
        return Ok(dir);
    }
    let _ = fs::remove_dir_all(&dir);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for part in ["a", "b", "c"] {
        for i in 0..3334 {
            let p = dir.join(part).join(format!("d{}", i % 50)).join(format!("f{i}.bin"));
            fs::create_dir_all(p.parent().unwrap())?;
            let mut data = vec![0u8; 10 * 1024];
            for b in data.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            fs::write(p, data)?;
        }
    }
    let mut df = String::from("FROM busybox\nCOPY a/ /ctx/a/\n");
    for i in 1..=5 {
        df.push_str(&format!("RUN echo step{i} > /step{i} && ls /ctx | wc -l >> /step{i}\n"));
    }
    df.push_str("COPY b/ /ctx/b/\n");
    for i in 6..=10 {
        df.push_str(&format!("RUN echo step{i} > /step{i}\n"));
    }
    df.push_str("COPY c/ /ctx/c/\n");
    fs::write(dir.join("Dockerfile"), df)?;
    fs::write(&stamp, "")?;
    Ok(dir)
}

/// `base`, then `--no-cache` for a cold build, then the context.
fn build_args<'a>(base: &[&'a str], no_cache: bool, ctx: &'a str) -> Vec<&'a str> {
    let mut a = base.to_vec();
    if no_cache {
        a.push("--no-cache");
    }
    a.push(ctx);
    a
}

fn build_rows(s: &Settings, t: &Tools, rows: &mut Vec<PairRow>) {
    let ctx = match context(s) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("note: cannot make the build context: {e}; build rows skipped");
            return;
        }
    };
    let ctx_s = ctx.to_string_lossy().to_string();
    let changed = ctx.join("b/d0/f0.bin");
    type Builder<'a> = (&'a str, Box<dyn Fn(bool) -> Option<Command> + 'a>, Box<dyn Fn() + 'a>);
    let builders: Vec<Builder> = vec![
        (
            "strata (buildkit style)",
            Box::new(|nc: bool| {
                let a = build_args(&["build", "-q", "--builder", "buildkit", "-t", "bench-build"], nc, &ctx_s);
                t.strata(&a)
            }),
            Box::new(|| {
                let _ = ok(t.strata(&["rmi", "-f", "bench-build"]));
                let _ = ok(t.strata(&["builder", "prune", "-f"]));
            }),
        ),
        (
            "strata (classic style)",
            Box::new(|nc: bool| {
                let a = build_args(&["build", "-q", "--builder", "legacy", "-t", "bench-build"], nc, &ctx_s);
                t.strata(&a)
            }),
            Box::new(|| {
                let _ = ok(t.strata(&["rmi", "-f", "bench-build"]));
            }),
        ),
        (
            "docker classic",
            Box::new(|nc: bool| {
                let a = build_args(&["build", "-q", "-t", "bench-build"], nc, &ctx_s);
                t.docker(&a).map(|mut c| {
                    c.env("DOCKER_BUILDKIT", "0");
                    c
                })
            }),
            Box::new(|| {
                let _ = ok(t.docker(&["rmi", "-f", "bench-build"]));
                let _ = ok(t.docker(&["image", "prune", "-f"]));
            }),
        ),
        (
            "docker buildkit",
            Box::new(|nc: bool| {
                let a = build_args(&["build", "-q", "--network", "none", "-t", "bench-build"], nc, &ctx_s);
                t.docker(&a).map(|mut c| {
                    c.env("DOCKER_BUILDKIT", "1");
                    c
                })
            }),
            Box::new(|| {
                let _ = ok(t.docker(&["rmi", "-f", "bench-build"]));
                let _ = ok(t.docker(&["builder", "prune", "-af"]));
            }),
        ),
        (
            "buildah bud",
            Box::new(|nc: bool| {
                let (root, run) = t.podman.as_ref()?;
                let mut c = Command::new("buildah");
                c.arg("--root").arg(root).arg("--runroot").arg(run).args([
                    "bud",
                    "-q",
                    "--runtime",
                    "runc",
                    "--isolation",
                    "chroot",
                    "--layers",
                ]);
                if nc {
                    c.arg("--no-cache");
                }
                c.args(["-t", "bench-build", &ctx_s]);
                Some(c)
            }),
            Box::new(|| {
                let _ = ok(t.podman(&["rmi", "-f", "bench-build"]));
            }),
        ),
    ];
    let mut results: Vec<(String, [Result<f64, String>; 3])> = Vec::new();
    for (name, cmd, reset) in &builders {
        let cold = timed(s, || {
            reset();
            run_timed(&mut cmd(true).ok_or("not available")?)
        });
        let nochange = timed(s, || run_timed(&mut cmd(false).ok_or("not available")?));
        let onefile = timed(s, || {
            let body = fs::read(&changed).map_err(|e| e.to_string())?;
            let mut b = body.clone();
            b[0] = b[0].wrapping_add(1);
            fs::write(&changed, &b).map_err(|e| e.to_string())?;
            run_timed(&mut cmd(false).ok_or("not available")?)
        });
        reset();
        eprintln!("done: build with {name}");
        results.push((name.to_string(), [cold, nochange, onefile]));
    }
    let labels =
        [("cold", "cold build"), ("nochange", "rebuild, nothing changed"), ("onefile", "rebuild, one file changed")];
    let strata = results.iter().find(|r| r.0.starts_with("strata (buildkit")).map(|r| r.1.clone());
    for (i, (k, what)) in labels.iter().enumerate() {
        for (name, vals) in &results {
            if name.starts_with("strata (buildkit") {
                continue;
            }
            let st = strata.as_ref().map(|v| v[i].clone()).unwrap_or_else(|| Err("not run".into()));
            let key =
                format!("build.{k}.{}", name.split_whitespace().collect::<Vec<_>>().join("_").replace(['(', ')'], ""));
            rows.push(pair(&key, &format!("build (100 MB/10k files, 10 RUN, 3 COPY): {what}"), &st, name, &vals[i]));
        }
    }
}

/// Every run/build row (skipped unless `want` takes `run.` or `build.`).
pub fn run(s: &Settings, want: &dyn Fn(&str) -> bool) -> Vec<PairRow> {
    let mut rows = Vec::new();
    let (runs, builds) = (want("run."), want("build."));
    if !runs && !builds {
        return rows;
    }
    let work = s.root.join("containers-run");
    let _ = fs::remove_dir_all(&work);
    let _ = fs::create_dir_all(&work);
    let tar = work.join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/busybox-rootfs");
    match Command::new(&script).output() {
        Ok(o) if o.status.success() => {
            if let Err(e) = fs::write(&tar, o.stdout) {
                eprintln!("note: {e}; run/build rows skipped");
                return rows;
            }
        }
        _ => {
            eprintln!("note: {} failed (busybox-static installed?); run/build rows skipped", script.display());
            return rows;
        }
    }
    let tar_s = tar.to_string_lossy().to_string();
    let bin = strata_bin();
    let strata = bin.exists().then(|| (bin, work.join("strata-root")));
    let docker = if which("dockerd") {
        match Dockerd::start(&work.join("dockerd")) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("note: {e}");
                None
            }
        }
    } else {
        None
    };
    let podman = which("podman").then(|| (work.join("podman-root"), work.join("podman-run")));
    let t = Tools { strata, docker, podman };
    let _ = ok(t.strata(&["import", &tar_s, "busybox:latest"]));
    let _ = ok(t.docker(&["import", &tar_s, "busybox:latest"]));
    let _ = ok(t.podman(&["import", &tar_s, "busybox:latest"]));
    if runs {
        run_rows(s, &t, &mut rows);
    }
    if builds {
        build_rows(s, &t, &mut rows);
    }
    // podman leaves its overlay mounts; the store goes with the work dir.
    drop(t);
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("grep -o ' {}[^ ]*' /proc/mounts | xargs -r -n1 umount -l", work.display()))
        .status();
    let _ = fs::remove_dir_all(&work);
    rows
}
