//! Layer stacks for the benchmarks, built once and cached on disk, and
//! mounting them with each implementation.
//!
//! Lower directories of a stack are named `0`, `1`, … (top first) and are
//! passed as relative paths from the stack directory, so 500 layers fit in
//! the kernel's one-page mount option limit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

/// `depth` layers; the bottom one holds `d/f0..f99`; every layer has `d/` and a file of its own.
pub fn deep(settings: &Settings, depth: usize) -> Stack {
    build(settings, &format!("deep{depth}"), depth, |i, l| {
        fs::create_dir_all(l.join("d")).unwrap();
        fs::write(l.join(format!("d/own{i}")), b"x").unwrap();
        if i == depth - 1 {
            for j in 0..100 {
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

/// One layer with a large file `big` (`mib` MiB of non-zero data).
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

/// A root-filesystem-shaped tree over 3 layers: `dirs` directories of 20
/// files each (a Debian minbase root has roughly 1,000 directories and
/// 10,000 files), plus `many/` (1,000 files) and `tree/` for deletion.
pub fn rootfs(settings: &Settings, dirs: usize) -> Stack {
    build(settings, &format!("rootfs{dirs}"), 3, |i, l| {
        for d in (0..dirs).filter(|d| d % 3 == i) {
            let p = l.join(format!("usr/share/pkg{}/sub{}", d / 10, d));
            fs::create_dir_all(&p).unwrap();
            for f in 0..20 {
                fs::write(p.join(format!("file{f}")), vec![b'x'; 100 + f * 37]).unwrap();
            }
        }
        if i == 2 {
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

/// Mount `stack` with `imp`, with a fresh empty upper layer.
pub fn mount(settings: &Settings, imp: &Impl, stack: &Stack) -> Mounted {
    let run = settings.root.join("run");
    let _ = Command::new("umount").arg(run.join("mnt")).stderr(std::process::Stdio::null()).status();
    let _ = fs::remove_dir_all(&run);
    for d in ["upper", "work", "mnt"] {
        fs::create_dir_all(run.join(d)).unwrap();
    }
    let lowers = (0..stack.layers).map(|i| i.to_string()).collect::<Vec<_>>().join(":");
    let opts =
        format!("lowerdir={lowers},upperdir={},workdir={}", run.join("upper").display(), run.join("work").display());
    let mnt = run.join("mnt");
    let start = Instant::now();
    let status = match imp {
        Impl::Kernel => Command::new("mount")
            .current_dir(&stack.dir)
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!("{opts},redirect_dir=on,index=on"))
            .arg(&mnt)
            .status(),
        Impl::FuseOverlayfs(bin) | Impl::Strata(bin) => {
            Command::new(bin).current_dir(&stack.dir).arg("-o").arg(&opts).arg(&mnt).status()
        }
    };
    let mount_time = start.elapsed();
    assert!(status.is_ok_and(|s| s.success()), "{} failed to mount {}", imp.name(), stack.dir.display());
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
