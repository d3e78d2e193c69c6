//! A Debian-sized root filesystem for `find`, `du`, untar and the image rows:
//! `debootstrap --variant=minbase` when it works (it needs a Debian mirror),
//! otherwise a generated tree of the same shape. Either is built once and
//! cached under the bench root; a failed debootstrap is remembered so it is
//! tried only once.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Settings;

/// A cached root filesystem tree.
pub struct RootTree {
    /// The tree itself (never mounted over or modified).
    pub dir: PathBuf,
    /// Where it came from, for the report.
    pub origin: String,
}

impl RootTree {
    /// Short tag for cache names (`debian`, `generated`).
    pub fn tag(&self) -> &'static str {
        if self.origin.starts_with("debootstrap") {
            "debian"
        } else {
            "generated"
        }
    }
}

/// The cached tree, building it first if needed (debootstrap once, else generated).
pub fn get(s: &Settings, notes: &mut Vec<String>) -> RootTree {
    let deb = s.root.join("debian-minbase");
    let deb_done = s.root.join("debian-minbase.complete");
    let failed = s.root.join("debootstrap.failed");
    if !deb_done.exists() && !failed.exists() && !s.no_debootstrap {
        eprintln!("building a Debian minbase root with debootstrap (once; cached in {})", deb.display());
        if debootstrap(&deb) {
            fs::write(&deb_done, b"").expect("mark debootstrap complete");
        } else {
            let _ = fs::write(&failed, b"");
            let _ = fs::remove_dir_all(&deb);
        }
    }
    if deb_done.exists() {
        let (dirs, files, links) = count(&deb);
        return RootTree {
            dir: deb,
            origin: format!(
                "debootstrap --variant=minbase ({dirs} dirs, {files} files, {links} symlinks, {} MiB)",
                du_mib(&s.root.join("debian-minbase"))
            ),
        };
    }
    notes.push(format!(
        "debootstrap unavailable or failed (remove {} to retry); using a generated tree of a Debian root's shape",
        failed.display()
    ));
    let gen = s.root.join("generated-rootfs");
    let gen_done = s.root.join("generated-rootfs.complete");
    if !gen_done.exists() {
        let _ = fs::remove_dir_all(&gen);
        generate(&gen);
        fs::write(&gen_done, b"").expect("mark generated tree complete");
    }
    let (dirs, files, links) = count(&gen);
    RootTree {
        origin: format!("generated ({dirs} dirs, {files} files, {links} symlinks, {} MiB)", du_mib(&gen)),
        dir: gen,
    }
}

/// A tar of the tree (GNU tar: devices, hard links and all), cached, and
/// what it holds. Quick runs untar only `etc`, `usr/bin` and `usr/lib`
/// (about a quarter of a Debian root's entries).
pub fn tarball(s: &Settings, tree: &RootTree) -> (PathBuf, String) {
    let (name, paths, what): (_, &[&str], _) = if s.quick {
        (
            format!("rootfs-{}-quick.tar", tree.tag()),
            &["etc", "usr/bin", "usr/lib"],
            "the rootfs' etc, usr/bin, usr/lib",
        )
    } else {
        (format!("rootfs-{}.tar", tree.tag()), &["."], "the rootfs")
    };
    let tar = s.root.join(name);
    if !tar.exists() {
        let tmp = tar.with_extension("tmp");
        let st =
            Command::new("tar").arg("-cf").arg(&tmp).arg("-C").arg(&tree.dir).args(paths).status().expect("run tar");
        assert!(st.success(), "tar of {} failed", tree.dir.display());
        fs::rename(&tmp, &tar).expect("rename tarball");
    }
    let mib = fs::metadata(&tar).map_or(0, |m| m.len() >> 20);
    (tar, format!("{what} ({mib} MiB)"))
}

fn debootstrap(dir: &Path) -> bool {
    let suite = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_string)))
        .unwrap_or_else(|| "bookworm".into());
    let _ = fs::remove_dir_all(dir);
    Command::new("timeout")
        .args(["900", "debootstrap", "--variant=minbase", &suite])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn count(dir: &Path) -> (u64, u64, u64) {
    let (mut d, mut f, mut l) = (0, 0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    d += 1;
                    stack.push(e.path());
                }
                Ok(t) if t.is_symlink() => l += 1,
                _ => f += 1,
            }
        }
    }
    (d, f, l)
}

fn du_mib(dir: &Path) -> u64 {
    let out = Command::new("du").arg("-sm").arg(dir).output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// A small deterministic pseudo-random generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..hi`, on a log scale.
    fn log_between(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (l + u * (h - l)).exp() as u64
    }
}

/// A tree shaped like a Debian root: ~1,500 directories under the usual top
/// level, ~10,000 files whose sizes follow a long-tailed distribution (most
/// under 4 KiB, a few MiB-sized; ~150 MiB in all), ~700 symlinks (relative and
/// absolute, as `/usr/lib` and `/etc/alternatives` have), and the merged-/usr
/// top-level links.
pub fn generate(root: &Path) {
    let mut rng = Rng(0x5eed);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for top in [
        "etc",
        "etc/alternatives",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib/x86_64-linux-gnu",
        "usr/libexec",
        "usr/share",
        "usr/share/doc",
        "usr/share/locale",
        "usr/share/man",
        "usr/share/zoneinfo",
        "usr/include",
        "var/lib/dpkg/info",
        "var/cache",
        "var/log",
        "root",
        "home",
        "tmp",
        "opt",
        "srv",
        "boot",
    ] {
        fs::create_dir_all(root.join(top)).unwrap();
        dirs.push(PathBuf::from(top));
    }
    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        symlink(target, root.join(link)).unwrap();
    }
    // Directories: most under usr/share and usr/lib, as in Debian.
    while dirs.len() < 1500 {
        let parent = if rng.below(10) < 7 {
            dirs[rng.below(12) as usize + 4].clone()
        } else {
            dirs[rng.below(dirs.len() as u64) as usize].clone()
        };
        let d = parent.join(format!("d{}", dirs.len()));
        fs::create_dir_all(root.join(&d)).unwrap();
        dirs.push(d);
    }
    let pattern: Vec<u8> = (0..1 << 20).map(|_| rng.next() as u8).collect();
    let mut files: Vec<PathBuf> = Vec::new();
    for i in 0..10_000u64 {
        let d = &dirs[rng.below(dirs.len() as u64) as usize];
        let size = match rng.below(1000) {
            0..700 => rng.log_between(64, 4 << 10),
            700..950 => rng.log_between(4 << 10, 32 << 10),
            950..997 => rng.log_between(32 << 10, 256 << 10),
            _ => rng.log_between(256 << 10, 4 << 20),
        } as usize;
        let p = d.join(format!("f{i}"));
        let mut f = fs::File::create(root.join(&p)).unwrap();
        let mut left = size;
        let mut off = rng.below(1 << 19) as usize;
        while left > 0 {
            let n = left.min(pattern.len() - off);
            f.write_all(&pattern[off..off + n]).unwrap();
            left -= n;
            off = 0;
        }
        files.push(p);
    }
    for i in 0..700u64 {
        let d = &dirs[rng.below(dirs.len() as u64) as usize];
        let target = &files[rng.below(files.len() as u64) as usize];
        let link = root.join(d).join(format!("l{i}"));
        if i % 2 == 0 {
            symlink(Path::new("/").join(target), link).unwrap();
        } else {
            let up = "../".repeat(d.components().count());
            symlink(format!("{up}{}", target.display()), link).unwrap();
        }
    }
}
