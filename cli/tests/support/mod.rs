//! Test support shared by the CLI's integration tests: a private dockerd
//! (Debian's docker.io, no networking, its own data root and socket) as the
//! oracle, and the busybox base image both load.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A tar of a busybox root filesystem made by `scripts/busybox-rootfs`
/// (Debian's busybox-static), written into `dir`.
pub fn busybox_tar(dir: &Path) -> PathBuf {
    let out = dir.join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/busybox-rootfs");
    let o = Command::new(script).stderr(Stdio::inherit()).output().expect("scripts/busybox-rootfs runs");
    assert!(o.status.success(), "busybox-rootfs failed (is busybox-static installed?)");
    fs::write(&out, o.stdout).unwrap();
    out
}

/// A dockerd of our own, killed when dropped.
pub struct Dockerd {
    child: Child,
    /// Its unix socket.
    pub sock: PathBuf,
    dir: PathBuf,
}

impl Dockerd {
    /// Start one under `dir` (created) and wait until it answers.
    pub fn start(dir: &Path, storage_driver: &str) -> Dockerd {
        fs::create_dir_all(dir).unwrap();
        let sock = dir.join("docker.sock");
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false"])
            .args(["--storage-driver", storage_driver])
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
            .stderr(fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("dockerd (Debian's docker.io) is installed by scripts/install-deps");
        let d = Dockerd { child, sock, dir: dir.to_path_buf() };
        let t0 = Instant::now();
        while !d.cmd(&["version"]).output().map(|o| o.status.success()).unwrap_or(false) {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "dockerd did not start: {}",
                fs::read_to_string(dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    /// `docker -H unix://SOCK ARGS` (Debian's docker.io client).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.arg("-H").arg(format!("unix://{}", self.sock.display())).args(args);
        c
    }

    /// Run, require success, return stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args).stdin(Stdio::null()).output().unwrap();
        assert!(o.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Run with `stdin` as input.
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_with(self.cmd(args), stdin)
    }
}

/// Run `c` with `stdin` (None: /dev/null) and collect its output.
pub fn run_with(mut c: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        // Whatever its containerd left mounted under our directory.
        if let Ok(m) = fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.to_string_lossy().to_string();
            let mut points: Vec<&str> =
                m.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&root)).collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

/// A deterministic pseudo-random byte stream (xorshift), half of it drawn
/// from a small alphabet so it compresses about as well as real binaries.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        if (x >> 40) & 1 == 0 {
            v.extend_from_slice(&b);
        } else {
            v.extend(b.iter().map(|c| b"etaoin shrdlu\n"[(*c % 14) as usize]));
        }
    }
    v.truncate(len);
    v
}

/// Write a docker-archive (`docker save` layout) tagged `tag` of ~`total`
/// bytes of noise in `n` layers (8 files each) to `path`.
pub fn big_archive(path: &Path, total: usize, n: usize, tag: &str) {
    use sha2::Digest as _;
    let digest = |b: &[u8]| format!("sha256:{:x}", sha2::Sha256::digest(b));
    let entry = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut diff_ids = Vec::new();
    let mut layers = Vec::new();
    for i in 0..n {
        let mut b = tar::Builder::new(Vec::new());
        for j in 0..8 {
            entry(&mut b, &format!("data/l{i}/f{j}"), &noise((i * 100 + j) as u64 + 1, total / n / 8));
        }
        let tar = b.into_inner().unwrap();
        diff_ids.push(digest(&tar));
        layers.push(tar);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cfg_name = format!("{}.json", &digest(&config)[7..]);
    let layer_names: Vec<String> = diff_ids.iter().map(|d| format!("{}/layer.tar", &d[7..])).collect();
    let manifest =
        serde_json::to_vec(&serde_json::json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": layer_names}]))
            .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, "manifest.json", &manifest);
    entry(&mut b, &cfg_name, &config);
    for (name, data) in layer_names.iter().zip(&layers) {
        entry(&mut b, name, data);
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}
