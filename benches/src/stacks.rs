//! Layer stacks for the benchmarks, built once and cached on disk, and
//! mounting them with each implementation.
//!
//! Lower directories of a stack are named `0`, `1`, … (top first) and are
//! passed as relative paths from the stack directory, so 500 layers fit in
//! the kernel's one-page mount option limit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::rootfs::RootTree;
use crate::{Impl, Settings};

/// A built stack.
pub struct Stack {
    /// Directory holding the layers `0..n`.
    pub dir: PathBuf,
    /// Number of layers.
    pub layers: usize,
}

fn build(settings: &Settings, name: &str, layers: usize, fill: impl Fn(usize, &Path)) -> Stack {
    let dir = settings.root.join("stacks").join(name);
    let done = dir.join(".complete");
    if !done.exists() {
        let _ = fs::remove_dir_all(&dir);
        for i in 0..layers {
            let l = dir.join(i.to_string());
            fs::create_dir_all(&l).expect("create layer");
            fill(i, &l);
        }
        fs::write(&done, b"").expect("mark stack complete");
    }
    Stack { dir, layers }
}

/// How many files the bottom layer of a deep stack holds (`d/f0..`).
pub const DEEP_FILES: usize = 1000;

/// `depth` layers; the bottom one holds `d/f0..d/f999`; every layer has `d/`
/// and a file of its own, so `d` is a directory merged over all layers.
pub fn deep(settings: &Settings, depth: usize) -> Stack {
    build(settings, &format!("deep{depth}-v2"), depth, |i, l| {
        fs::create_dir_all(l.join("d")).unwrap();
        fs::write(l.join(format!("d/own{i}")), b"x").unwrap();
        if i == depth - 1 {
            for j in 0..DEEP_FILES {
                fs::write(l.join(format!("d/f{j}")), b"bottom").unwrap();
            }
        }
    })
}

/// 10 layers of 1000 entries each in one merged directory `big/`.
pub fn wide(settings: &Settings) -> Stack {
    build(settings, "wide", 10, |i, l| {
        fs::create_dir_all(l.join("big")).unwrap();
        for j in 0..1000 {
            fs::write(l.join(format!("big/e{i}_{j}")), b"").unwrap();
        }
    })
}

/// One layer with a large file `big` (`mib` MiB of non-zero data) and a small file `small`.
pub fn bigfile(settings: &Settings, mib: usize) -> Stack {
    build(settings, &format!("bigfile{mib}"), 1, |_, l| {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(l.join("big")).unwrap());
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        for _ in 0..mib {
            f.write_all(&chunk).unwrap();
        }
        fs::write(l.join("small"), b"small").unwrap();
    })
}

/// A root filesystem over 3 layers, as an image would have it:
/// - `2` (bottom): the Debian-sized tree, copied with `cp -a`;
/// - `1`: an "apt-get install" layer: all of `/etc` again (every file of it
///   shadows the one below, every directory is merged) and `usr/local/lib/app`
///   with 200 files;
/// - `0` (top): trees for the deletion rows: `many/` (1,000 files),
///   `tree/` (1,000 files in 55 directories), `renameme/` (100 files).
pub fn rootfs(settings: &Settings, tree: &RootTree) -> Stack {
    build(settings, &format!("rootfs-{}", tree.tag()), 3, |i, l| match i {
        2 => cp_a(&tree.dir, l),
        1 => {
            cp_a(&tree.dir.join("etc"), &l.join("etc"));
            let app = l.join("usr/local/lib/app");
            fs::create_dir_all(&app).unwrap();
            for f in 0..200 {
                fs::write(app.join(format!("mod{f}.py")), vec![b'#'; 200 + f * 13]).unwrap();
            }
        }
        _ => {
            fs::create_dir_all(l.join("many")).unwrap();
            for f in 0..1000 {
                fs::write(l.join(format!("many/m{f}")), b"m").unwrap();
            }
            for d in 0..50 {
                let p = l.join(format!("tree/a{}/b{d}", d % 5));
                fs::create_dir_all(&p).unwrap();
                for f in 0..20 {
                    fs::write(p.join(format!("t{f}")), b"t").unwrap();
                }
            }
            fs::create_dir_all(l.join("renameme/inner")).unwrap();
            for f in 0..100 {
                fs::write(l.join(format!("renameme/inner/r{f}")), b"r").unwrap();
            }
        }
    })
}

/// `cp -a SRC/. DST` (devices, hard links, xattrs and all).
fn cp_a(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    let st = Command::new("cp").arg("-a").arg(src.join(".")).arg(dst).status().expect("run cp");
    assert!(st.success(), "cp -a {} {} failed", src.display(), dst.display());
}

/// A live mount; unmounted on drop.
pub struct Mounted {
    /// Mountpoint.
    pub path: PathBuf,
    /// Time the mount command took.
    pub mount_time: Duration,
    /// Daemon pid (FUSE implementations).
    pub pid: Option<u32>,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for _ in 0..100 {
            if Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Wait for the daemon to exit so it does not compete with the next run.
        if let Some(pid) = self.pid {
            for _ in 0..200 {
                // Gone, or a zombie nobody reaps (a daemon's parent exits at once).
                let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let running = state.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'));
                if !running {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Mount `stack` with `imp`, with a fresh empty upper layer; `cold` drops the
/// page, dentry and inode caches just before mounting.
pub fn mount(settings: &Settings, imp: &Impl, stack: &Stack, cold: bool) -> Mounted {
    let run = settings.scratch.join("run");
    let _ = Command::new("umount").arg(run.join("mnt")).stderr(Stdio::null()).status();
    let _ = fs::remove_dir_all(&run);
    for d in ["upper", "work", "mnt"] {
        fs::create_dir_all(run.join(d)).unwrap();
    }
    let lowers = (0..stack.layers).map(|i| i.to_string()).collect::<Vec<_>>().join(":");
    let opts =
        format!("lowerdir={lowers},upperdir={},workdir={}", run.join("upper").display(), run.join("work").display());
    let mnt = run.join("mnt");
    if cold {
        drop_caches();
    }
    // Daemon messages (fuse-overlayfs warns about options it ignores) go to a log.
    let log = fs::File::create(run.join("daemon.log")).expect("daemon log");
    let start = Instant::now();
    let status = match imp {
        Impl::Kernel => Command::new("mount")
            .current_dir(&stack.dir)
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("{opts},redirect_dir=on,index=on"))
            .arg(&mnt)
            .stderr(log)
            .status(),
        Impl::FuseOverlayfs(bin) => {
            Command::new(bin).current_dir(&stack.dir).arg("-o").arg(&opts).arg(&mnt).stderr(log).status()
        }
        Impl::Strata(bin) => {
            // Extra options for experiments, e.g. STRATA_BENCH_OPTS=noreaddirplus.
            let opts = match std::env::var("STRATA_BENCH_OPTS") {
                Ok(extra) if !extra.is_empty() => format!("{opts},{extra}"),
                _ => opts,
            };
            Command::new(bin).current_dir(&stack.dir).arg("-o").arg(&opts).arg(&mnt).stderr(log).status()
        }
    };
    let mount_time = start.elapsed();
    if !status.is_ok_and(|s| s.success()) {
        let msg = fs::read_to_string(run.join("daemon.log")).unwrap_or_default();
        panic!("{} failed to mount {}: {msg}", imp.name(), stack.dir.display());
    }
    let pid = match imp {
        Impl::Kernel => None,
        _ => daemon_pid(&mnt),
    };
    Mounted { path: mnt, mount_time, pid }
}

fn daemon_pid(mnt: &Path) -> Option<u32> {
    let out = Command::new("pgrep").arg("-f").arg(format!("overlayfs.*{}", mnt.display())).output().ok()?;
    String::from_utf8_lossy(&out.stdout).split_whitespace().last()?.parse().ok()
}

/// Drop the page, dentry and inode caches.
pub fn drop_caches() {
    let _ = Command::new("sync").status();
    let _ = fs::write("/proc/sys/vm/drop_caches", b"3");
}
