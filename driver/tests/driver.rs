//! Conformance suite of the storage drivers, run against every driver, plus
//! the apply safety table. Needs root, /dev/fuse and the `strata-overlayfs`
//! binary (`cargo build -p strata-fs --bins`) for the overlay drivers; a
//! driver that cannot run here is skipped with a note.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use strata_driver::{ChangeKind, Driver, Error};

const IMAGES: &str = "/work/shared/testdata/images";

fn images() -> PathBuf {
    std::env::var_os("STRATA_TESTDATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(IMAGES))
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(d: &[u8]) -> String {
    hex(&Sha256::digest(d))
}

/// Layer tars of a docker-archive, in manifest order (symlinked members followed).
fn archive_layers(path: &Path) -> Vec<Vec<u8>> {
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().trim_start_matches("./").to_string();
        match e.header().entry_type() {
            tar::EntryType::Symlink => {
                let t = e.link_name().unwrap().unwrap().to_string_lossy().to_string();
                let base = Path::new(&name).parent().unwrap().join(t);
                let mut norm = PathBuf::new();
                for c in base.components() {
                    match c {
                        std::path::Component::ParentDir => {
                            norm.pop();
                        }
                        c => norm.push(c),
                    }
                }
                links.insert(name, norm.to_string_lossy().to_string());
            }
            tar::EntryType::Regular => {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                files.insert(name, v);
            }
            _ => {}
        }
    }
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let mut out = Vec::new();
    for img in manifest.as_array().unwrap() {
        for l in img["Layers"].as_array().unwrap() {
            let mut n = l.as_str().unwrap().to_string();
            while let Some(t) = links.get(&n) {
                n = t.clone();
            }
            out.push(files[&n].clone());
        }
    }
    out
}

fn ia_layered() -> Vec<Vec<u8>> {
    archive_layers(&images().join("min/ia-layered.min.tar"))
}

/// Why a driver cannot run here, if it cannot.
fn unavailable(name: &str) -> Option<String> {
    if name == "vfs" {
        return None;
    }
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    match name {
        "overlay" => {
            let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
            (!fs.contains("overlay")).then(|| "no overlay filesystem in the kernel".into())
        }
        "fuse-overlay" => {
            if !Path::new("/dev/fuse").exists() {
                return Some("no /dev/fuse".into());
            }
            strata_driver::find_overlayfs_binary()
                .is_none()
                .then(|| "strata-overlayfs not built (cargo build -p strata-fs --bins)".into())
        }
        _ => None,
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("strata-driver-test").tempdir_in("/var/tmp").unwrap()
}

/// One line per entry, as in expected-layered.txt, sorted by path.
fn tree_lines(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<(Vec<u8>, String)>) {
        let dir = root.join(rel);
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let rel_child = rel.join(e.file_name());
            let md = std::fs::symlink_metadata(dir.join(e.file_name())).unwrap();
            let ft = md.file_type();
            let (t, size, what) = if ft.is_dir() {
                ("d", 0, "-".to_string())
            } else if ft.is_symlink() {
                let target = std::fs::read_link(dir.join(e.file_name())).unwrap();
                ("l", 0, format!("->{}", target.to_string_lossy()))
            } else if ft.is_file() {
                ("f", md.len(), sha(&std::fs::read(dir.join(e.file_name())).unwrap()))
            } else {
                use std::os::unix::fs::FileTypeExt;
                let t = if ft.is_fifo() {
                    "p"
                } else if ft.is_char_device() {
                    "c"
                } else if ft.is_block_device() {
                    "b"
                } else {
                    "s"
                };
                (t, 0, "-".to_string())
            };
            let p = rel_child.as_os_str().as_bytes().to_vec();
            let line = format!(
                "{}\t{t}\t{:o}\t{}:{}\t{size}\t{what}",
                String::from_utf8_lossy(&p),
                md.mode() & 0o7777,
                md.uid(),
                md.gid()
            );
            out.push((p, line));
            if ft.is_dir() {
                walk(root, &rel_child, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out.sort();
    out.into_iter().map(|(_, l)| l).collect()
}

/// The same lines from a tar of a whole tree (hard links resolved).
fn tar_tree_lines(tar: &[u8]) -> Vec<String> {
    let mut out: Vec<(Vec<u8>, String)> = Vec::new();
    let mut contents: HashMap<Vec<u8>, (u64, String)> = HashMap::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut p = e.path_bytes().to_vec();
        if p.ends_with(b"/") {
            p.pop();
        }
        let (uid, gid, mode) = (h.uid().unwrap(), h.gid().unwrap(), h.mode().unwrap() & 0o7777);
        let (t, size, what) = match h.entry_type() {
            tar::EntryType::Directory => ("d", 0, "-".to_string()),
            tar::EntryType::Symlink => {
                ("l", 0, format!("->{}", String::from_utf8_lossy(&e.link_name_bytes().unwrap())))
            }
            tar::EntryType::Regular => {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                contents.insert(p.clone(), (v.len() as u64, sha(&v)));
                ("f", v.len() as u64, sha(&v))
            }
            tar::EntryType::Link => {
                let t = e.link_name_bytes().unwrap().to_vec();
                let (s, h) = contents[&t].clone();
                contents.insert(p.clone(), (s, h.clone()));
                ("f", s, h)
            }
            tar::EntryType::Fifo => ("p", 0, "-".to_string()),
            tar::EntryType::Char => ("c", 0, "-".to_string()),
            tar::EntryType::Block => ("b", 0, "-".to_string()),
            t => panic!("unexpected entry type {t:?}"),
        };
        let line = format!("{}\t{t}\t{mode:o}\t{uid}:{gid}\t{size}\t{what}", String::from_utf8_lossy(&p));
        out.push((p, line));
    }
    out.sort();
    out.into_iter().map(|(_, l)| l).collect()
}

/// A diff tar summarised without times: name, type, mode, owner, size,
/// content hash, link target, xattrs.
fn diff_summary(tar: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(tar);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = String::from_utf8_lossy(&e.path_bytes()).to_string();
        let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(&l).to_string()).unwrap_or_default();
        let mut xattrs = Vec::new();
        if let Some(ext) = e.pax_extensions().unwrap() {
            for x in ext {
                let x = x.unwrap();
                if x.key().unwrap().starts_with("SCHILY.xattr.") {
                    xattrs.push(format!("{}={}", x.key().unwrap(), String::from_utf8_lossy(x.value_bytes())));
                }
            }
        }
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.push(format!(
            "{name} {:?} {:o} {}:{} {} {} {link} {}",
            h.entry_type(),
            h.mode().unwrap(),
            h.uid().unwrap(),
            h.gid().unwrap(),
            v.len(),
            sha(&v),
            xattrs.join(",")
        ));
    }
    out
}

/// Apply ia/layered:1's five layers as l0..l4; returns the tar-splits.
fn apply_layered(d: &dyn Driver, layers: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut splits = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        let id = format!("l{i}");
        let parent = (i > 0).then(|| format!("l{}", i - 1));
        d.create(&id, parent.as_deref()).unwrap();
        let mut split = Vec::new();
        let applied = d.apply_diff(&id, &mut tar.as_slice(), &mut split).unwrap();
        assert_eq!(applied.tar_bytes, tar.len() as u64, "{}: whole tar consumed", d.name());
        splits.push(split);
    }
    splits
}

/// Everything one driver produced, to compare drivers with each other.
struct Outcome {
    name: &'static str,
    changes: Vec<String>,
    diff: Vec<String>,
    diff_size: u64,
    container_tree: Vec<String>,
}

fn expected_layered() -> Vec<String> {
    std::fs::read_to_string(images().join("min/expected-layered.txt")).unwrap().lines().map(str::to_string).collect()
}

fn assert_lines(what: &str, got: &[String], want: &[String]) {
    if got != want {
        let g: std::collections::BTreeSet<_> = got.iter().collect();
        let w: std::collections::BTreeSet<_> = want.iter().collect();
        let missing: Vec<_> = w.difference(&g).take(20).collect();
        let extra: Vec<_> = g.difference(&w).take(20).collect();
        panic!("{what}: trees differ\nmissing: {missing:#?}\nextra: {extra:#?}");
    }
}

const EXPECTED_CHANGES: &[&str] = &[
    "C /etc",
    "D /etc/group",
    "C /etc/motd",
    "C /etc/passwd",
    "C /opt",
    "C /opt/data",
    "D /opt/data/new.txt",
    "A /opt/data/renamed.txt",
    "C /root",
    "A /root/hello.txt",
    "C /usr",
    "C /usr/share",
    "C /usr/share/ia",
    "D /usr/share/ia/empty-dir",
    "C /var",
    "D /var/log",
];

fn change_lines(d: &dyn Driver, id: &str) -> Vec<String> {
    d.changes(id)
        .unwrap()
        .into_iter()
        .map(|c| {
            let k = match c.kind {
                ChangeKind::Added => "A",
                ChangeKind::Modified => "C",
                ChangeKind::Deleted => "D",
            };
            format!("{k} {}", c.path.to_string_lossy())
        })
        .collect()
}

fn conformance(name: &'static str) -> Option<Outcome> {
    if let Some(why) = unavailable(name) {
        eprintln!("NOTE: skipping driver {name}: {why}");
        return None;
    }
    let tmp = scratch();
    let d = strata_driver::open(tmp.path(), name).unwrap();
    assert_eq!(d.name(), name);
    let layers = ia_layered();
    assert_eq!(layers.len(), 5);

    // Apply, timed.
    let total: usize = layers.iter().map(Vec::len).sum();
    let t0 = Instant::now();
    let splits = apply_layered(d.as_ref(), &layers);
    let dt = t0.elapsed();
    eprintln!(
        "{name}: applied 5 layers, {total} bytes in {:.1} ms ({:.0} MiB/s)",
        dt.as_secs_f64() * 1e3,
        total as f64 / dt.as_secs_f64() / (1 << 20) as f64
    );
    assert!(d.exists("l4") && !d.exists("nope"));
    assert_eq!(d.parent("l3").unwrap().as_deref(), Some("l2"));
    assert_eq!(d.parent("l0").unwrap(), None);

    // Assemble reproduces each layer byte for byte.
    for (i, (tar, split)) in layers.iter().zip(&splits).enumerate() {
        let mut out = Vec::new();
        let n = d.assemble(&format!("l{i}"), &mut split.as_slice(), &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        assert_eq!(sha(&out), sha(tar), "{name}: assemble of layer {i}");
        assert!(split.len() < tar.len() / 2 || tar.len() < 20_000, "{name}: split of layer {i} holds no content");
    }

    // The merged tree through a mount, and through export.
    let expected = expected_layered();
    let mp = d.mount("l4").unwrap();
    assert!(d.is_mounted("l4").unwrap());
    assert_lines(&format!("{name}: mounted l4"), &tree_lines(&mp), &expected);
    d.unmount("l4").unwrap();
    assert!(!d.is_mounted("l4").unwrap());
    let mut exported = Vec::new();
    d.export("l4", &mut exported).unwrap();
    assert_lines(&format!("{name}: export of l4"), &tar_tree_lines(&exported), &expected);

    // A container layer changed through its mount.
    d.create("c", Some("l4")).unwrap();
    let mp = d.mount("c").unwrap();
    std::fs::write(mp.join("root/hello.txt"), b"hello\n").unwrap();
    std::fs::write(mp.join("etc/motd"), b"changed motd\n").unwrap();
    std::fs::remove_file(mp.join("etc/group")).unwrap();
    std::fs::remove_dir_all(mp.join("var/log")).unwrap();
    std::fs::remove_dir(mp.join("usr/share/ia/empty-dir")).unwrap();
    std::fs::set_permissions(mp.join("etc/passwd"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(mp.join("opt/data/new.txt"), mp.join("opt/data/renamed.txt")).unwrap();
    let container_tree = tree_lines(&mp);
    d.unmount("c").unwrap();
    assert!(!d.is_mounted("c").unwrap());

    let changes = change_lines(d.as_ref(), "c");
    assert_eq!(changes, EXPECTED_CHANGES, "{name}: changes");

    let mut diff1 = Vec::new();
    let n = d.diff("c", &mut diff1).unwrap();
    assert_eq!(n, diff1.len() as u64);
    let mut diff2 = Vec::new();
    d.diff("c", &mut diff2).unwrap();
    assert_eq!(diff1, diff2, "{name}: diff is deterministic");
    let diff_size = d.diff_size("c").unwrap();

    // Export of the container equals what the mount showed.
    let mut exported = Vec::new();
    d.export("c", &mut exported).unwrap();
    assert_lines(&format!("{name}: export of c"), &tar_tree_lines(&exported), &container_tree);

    // The diff applied on the image gives the container's tree back.
    d.create("c2", Some("l4")).unwrap();
    let mut split = Vec::new();
    d.apply_diff("c2", &mut diff1.as_slice(), &mut split).unwrap();
    let mut again = Vec::new();
    d.assemble("c2", &mut split.as_slice(), &mut again).unwrap();
    assert_eq!(again, diff1, "{name}: assemble of our own diff");
    let mut exported = Vec::new();
    d.export("c2", &mut exported).unwrap();
    assert_lines(&format!("{name}: diff re-applied"), &tar_tree_lines(&exported), &container_tree);

    for id in ["c2", "c", "l4", "l3", "l2", "l1", "l0"] {
        d.remove(id).unwrap();
        assert!(!d.exists(id));
    }
    d.remove("l0").unwrap(); // removing a missing layer is fine
    Some(Outcome { name, changes, diff: diff_summary(&diff1), diff_size, container_tree })
}

#[test]
fn conformance_every_driver() {
    let outcomes: Vec<Outcome> = strata_driver::DRIVERS.iter().filter_map(|n| conformance(n)).collect();
    assert!(!outcomes.is_empty());
    let first = &outcomes[0];
    for o in &outcomes[1..] {
        assert_eq!(o.changes, first.changes, "changes of {} vs {}", o.name, first.name);
        assert_eq!(o.diff, first.diff, "diff of {} vs {}", o.name, first.name);
        assert_eq!(o.diff_size, first.diff_size, "diff_size of {} vs {}", o.name, first.name);
        assert_eq!(o.container_tree, first.container_tree, "tree of {} vs {}", o.name, first.name);
    }
    eprintln!("diff of the container layer ({} drivers agree):\n{}", outcomes.len(), first.diff.join("\n"));
}

#[test]
fn open_names() {
    let tmp = scratch();
    assert_eq!(strata_driver::DEFAULT_DRIVER, "fuse-overlay");
    assert_eq!(strata_driver::DRIVERS[0], strata_driver::DEFAULT_DRIVER);
    for n in strata_driver::DRIVERS {
        let d = strata_driver::open(tmp.path(), n).unwrap();
        assert_eq!(d.name(), *n);
        assert!(tmp.path().join(n).is_dir());
        assert!(d.status().iter().any(|(k, v)| k == "Storage Driver" && v == n));
        assert!(matches!(d.create("bad/id", None), Err(Error::BadId(_))));
        assert!(matches!(d.create("x", Some("missing")), Err(Error::NotFound(_))));
        d.create("x", None).unwrap();
        assert!(matches!(d.create("x", None), Err(Error::Exists(_))));
        assert!(matches!(d.mount("missing"), Err(Error::NotFound(_))));
    }
    assert!(matches!(strata_driver::open(tmp.path(), "aufs"), Err(Error::UnknownDriver(_))));
}

/// Every layer of every test image applies and assembles to the same bytes.
#[test]
fn assemble_every_test_layer() {
    let mut tars: Vec<(String, Vec<u8>)> = Vec::new();
    for a in [
        "min/ia-layered.min.tar",
        "min/ia-busybox.min.tar",
        "docker-save/ia-layered.tar",
        "docker-save/ia-all.tar",
        "docker-save/ia-committed.tar",
        "podman/ia-layered.docker.tar",
    ] {
        for (i, t) in archive_layers(&images().join(a)).into_iter().enumerate() {
            tars.push((format!("{a}#{i}"), t));
        }
    }
    for e in std::fs::read_dir(images().join("oci-layout/blobs/sha256")).unwrap() {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut t = Vec::new();
            flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut t).unwrap();
            tars.push(("oci blob".into(), t));
        }
    }
    tars.sort_by_key(|t| sha(&t.1));
    tars.dedup_by(|a, b| a.1 == b.1);
    assert!(tars.len() >= 6, "{} distinct layers", tars.len());
    let tmp = scratch();
    for name in ["vfs", "overlay"] {
        let d = strata_driver::open(tmp.path(), name).unwrap();
        for (i, (what, tar)) in tars.iter().enumerate() {
            let id = format!("t{i}");
            d.create(&id, None).unwrap();
            let mut split = Vec::new();
            let a = d.apply_diff(&id, &mut tar.as_slice(), &mut split).unwrap();
            assert_eq!(a.tar_bytes, tar.len() as u64);
            let mut out = Vec::new();
            d.assemble(&id, &mut split.as_slice(), &mut out).unwrap();
            assert_eq!(sha(&out), sha(tar), "{name}: {what}");
        }
    }
}

/// Trailing bytes after the end-of-archive marker are consumed and kept.
#[test]
fn trailing_bytes_are_kept() {
    let tmp = scratch();
    let d = strata_driver::open(tmp.path(), "vfs").unwrap();
    let mut tar = ia_layered()[2].clone();
    tar.extend(std::iter::repeat_n(0u8, 10240));
    tar.extend_from_slice(b"junk after the end");
    d.create("a", None).unwrap();
    let mut split = Vec::new();
    let a = d.apply_diff("a", &mut tar.as_slice(), &mut split).unwrap();
    assert_eq!(a.tar_bytes, tar.len() as u64);
    let mut out = Vec::new();
    d.assemble("a", &mut split.as_slice(), &mut out).unwrap();
    assert_eq!(out, tar);
    // A layer file that changed size is detected.
    std::fs::write(tmp.path().join("vfs/a/root/etc/motd"), b"other size").unwrap();
    assert!(matches!(d.assemble("a", &mut split.as_slice(), &mut Vec::new()), Err(Error::Malformed(_))));
    // The same path twice with different sizes: only the last is on disk,
    // so the first content cannot be rebuilt; assemble says so.
    let twice = Tb::default().file("f", b"first version").file("f", b"second").end();
    d.create("b", None).unwrap();
    let mut split = Vec::new();
    d.apply_diff("b", &mut twice.as_slice(), &mut split).unwrap();
    assert!(matches!(d.assemble("b", &mut split.as_slice(), &mut Vec::new()), Err(Error::Malformed(_))));
    // A split that is not one.
    assert!(matches!(d.assemble("a", &mut &b"garbage!"[..], &mut Vec::new()), Err(Error::Malformed(_))));
}

// ---------------------------------------------------------------------------
// Mounts across processes, stale mounts.

const HELPER_ENV: &str = "STRATA_DRIVER_TEST_HELPER";

/// Not a test by itself: the body of the second process of
/// `mount_refcount_across_processes` (does nothing without its env var).
#[test]
fn helper_second_process() {
    let Some(arg) = std::env::var_os(HELPER_ENV) else { return };
    let arg = arg.to_string_lossy().to_string();
    let mut it = arg.split('|');
    let (root, name, id) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let d = strata_driver::open(Path::new(root), name).unwrap();
    let p = d.mount(id).unwrap();
    println!("HELPER-PATH={}", p.display());
    println!("HELPER-COUNT={}", d.mount_count(id).unwrap());
}

#[test]
fn mount_refcount_across_processes() {
    for name in strata_driver::DRIVERS {
        if let Some(why) = unavailable(name) {
            eprintln!("NOTE: skipping driver {name}: {why}");
            continue;
        }
        let tmp = scratch();
        let d = strata_driver::open(tmp.path(), name).unwrap();
        d.create("base", None).unwrap();
        d.create("top", Some("base")).unwrap();
        let p = d.mount("top").unwrap();
        std::fs::write(p.join("f"), b"from the first process").unwrap();
        assert_eq!(d.mount_count("top").unwrap(), 1);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "helper_second_process", "--nocapture", "--test-threads=1"])
            .env(HELPER_ENV, format!("{}|{name}|top", tmp.path().display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: helper failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
        // libtest prints "test NAME ... " before the helper's own lines.
        let field = |k: &str| stdout.lines().find_map(|l| l.split_once(k)).map(|(_, v)| v.to_string());
        assert_eq!(field("HELPER-PATH=").as_deref(), Some(p.to_str().unwrap()), "{name}: same mount path");
        assert_eq!(field("HELPER-COUNT=").as_deref(), Some("2"), "{name}: refcount seen by the second process");
        // The mount outlived the helper process.
        assert_eq!(d.mount_count("top").unwrap(), 2);
        assert!(d.is_mounted("top").unwrap());
        assert_eq!(std::fs::read(p.join("f")).unwrap(), b"from the first process");
        d.unmount("top").unwrap();
        assert!(d.is_mounted("top").unwrap(), "{name}: still one reference");
        d.unmount("top").unwrap();
        assert!(!d.is_mounted("top").unwrap());
        assert_eq!(d.mount_count("top").unwrap(), 0);
        // remove unmounts a live mount first.
        let p = d.mount("top").unwrap();
        d.remove("top").unwrap();
        assert!(!d.exists("top"));
        if *name != "vfs" {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            assert!(!info.contains(p.to_str().unwrap()), "{name}: mount left behind by remove");
        }
    }
}

/// The pids of strata-overlayfs processes serving `mountpoint`.
fn daemon_pids(mountpoint: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let is_daemon = args.first().is_some_and(|a| a.ends_with(b"strata-overlayfs"));
        if is_daemon && args.iter().any(|a| *a == mountpoint.as_os_str().as_bytes()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn stale_fuse_mount_is_repaired() {
    if let Some(why) = unavailable("fuse-overlay") {
        eprintln!("NOTE: skipping: {why}");
        return;
    }
    let tmp = scratch();
    let d = strata_driver::open(tmp.path(), "fuse-overlay").unwrap();
    d.create("base", None).unwrap();
    let mut split = Vec::new();
    d.apply_diff("base", &mut ia_layered()[0].as_slice(), &mut split).unwrap();
    d.create("top", Some("base")).unwrap();
    let p = d.mount("top").unwrap();
    let pids = daemon_pids(&p);
    assert_eq!(pids.len(), 1, "one daemon serves the mount: {pids:?}");
    // Kill only the daemon we started, by its pid.
    rustix::process::kill_process(rustix::process::Pid::from_raw(pids[0]).unwrap(), rustix::process::Signal::KILL)
        .unwrap();
    let t0 = Instant::now();
    while d.is_mounted("top").unwrap() {
        assert!(t0.elapsed().as_secs() < 10, "the dead daemon's mount still answers");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let p2 = d.mount("top").unwrap();
    assert_eq!(p2, p);
    assert!(d.is_mounted("top").unwrap());
    assert_eq!(std::fs::read(p.join("etc/passwd")).unwrap().len(), 82);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(info.lines().filter(|l| l.contains(p.to_str().unwrap())).count(), 1, "stale mount detached");
    // The dead mount took its references with it: one unmount ends the
    // fresh mount, a second one is harmless.
    d.unmount("top").unwrap();
    assert!(!d.is_mounted("top").unwrap());
    d.unmount("top").unwrap();
    d.remove("top").unwrap();
    d.remove("base").unwrap();
}

// ---------------------------------------------------------------------------
// Apply safety: malicious tars, table-driven.

/// A raw ustar header (no validation: these tars are meant to be bad).
fn header(name: &[u8], flag: u8, size: u64, link: &[u8], mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    let oct = |f: &mut [u8], v: u64| {
        let s = format!("{v:0w$o}", w = f.len() - 1);
        f[..s.len()].copy_from_slice(s.as_bytes());
    };
    oct(&mut h[100..108], mode as u64);
    oct(&mut h[108..116], 0);
    oct(&mut h[116..124], 0);
    oct(&mut h[124..136], size);
    oct(&mut h[136..148], 1_700_000_000);
    h[156] = flag;
    h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

#[derive(Default)]
struct Tb(Vec<u8>);

impl Tb {
    fn entry(mut self, name: &str, flag: u8, data: &[u8], link: &str) -> Tb {
        let mode = if flag == b'5' { 0o755 } else { 0o644 };
        self.0.extend_from_slice(&header(name.as_bytes(), flag, data.len() as u64, link.as_bytes(), mode));
        self.data(data)
    }
    fn data(mut self, data: &[u8]) -> Tb {
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Tb {
        self.entry(name, b'0', data, "")
    }
    fn dir(self, name: &str) -> Tb {
        self.entry(name, b'5', b"", "")
    }
    fn symlink(self, name: &str, target: &str) -> Tb {
        self.entry(name, b'2', b"", target)
    }
    fn hardlink(self, name: &str, target: &str) -> Tb {
        self.entry(name, b'1', b"", target)
    }
    fn pax(self, records: &[(&str, &[u8])]) -> Tb {
        let mut d = Vec::new();
        for (k, v) in records {
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            d.extend_from_slice(format!("{len} {k}=").as_bytes());
            d.extend_from_slice(v);
            d.push(b'\n');
        }
        self.entry("PaxHeaders/x", b'x', &d, "")
    }
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

/// Everything under `dir`: path → (mode, size, mtime, content hash).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let md = std::fs::symlink_metadata(p).unwrap();
        let content = if md.is_file() { sha(&std::fs::read(p).unwrap()) } else { String::new() };
        out.insert(p.to_path_buf(), format!("{:o} {} {} {} {content}", md.mode(), md.len(), md.mtime(), md.ino()));
        if md.is_dir() {
            for e in std::fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), out);
            }
        }
    }
    walk(dir, &mut out);
    out
}

#[derive(Debug)]
enum Want {
    Unsafe,
    Malformed,
    /// Applies; then the check on the layer's content directory holds.
    Ok(fn(&Path)),
}

#[test]
fn apply_refuses_unsafe_tars() {
    let tmp = scratch();
    let sentinel = tmp.path().join("sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    std::fs::write(sentinel.join("file"), b"precious").unwrap();
    std::fs::create_dir(sentinel.join("dir")).unwrap();
    let s = sentinel.to_str().unwrap().to_string();
    // From a layer content dir (<tmp>/root/<driver>/<id>/{diff,root}) up to <tmp>.
    let up = "../../../..";
    let big_pax = vec![b'a'; 2 << 20];
    let long_name = "d/".repeat(2100) + "f";
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        ("dotdot", Tb::default().file(&format!("{up}/sentinel/file"), b"pwned").end(), Want::Unsafe),
        ("inner dotdot", Tb::default().file("a/../../x", b"pwned").end(), Want::Unsafe),
        ("dotdot dir", Tb::default().dir("a/../../../../sentinel/new").end(), Want::Unsafe),
        (
            "pax path dotdot",
            Tb::default().pax(&[("path", format!("{up}/sentinel/file").as_bytes())]).file("ok", b"x").end(),
            Want::Unsafe,
        ),
        (
            "write through absolute symlink",
            Tb::default().symlink("evil", &s).file("evil/file", b"pwned").end(),
            // Resolved inside the layer, as RESOLVE_IN_ROOT does.
            Want::Ok(|c| {
                let inside = c.join(tmp_rel_of_sentinel(c)).join("file");
                assert_eq!(std::fs::read(inside).unwrap(), b"pwned");
            }),
        ),
        (
            "write through relative symlink",
            Tb::default().symlink("evil", up).file("evil/sentinel/file", b"pwned").end(),
            Want::Ok(|c| assert_eq!(std::fs::read(c.join("sentinel/file")).unwrap(), b"pwned")),
        ),
        (
            "symlink to root then a deep write",
            Tb::default().symlink("evil", "/").file("evil/etc/passwd", b"root::0:0").end(),
            Want::Ok(|c| assert_eq!(std::fs::read(c.join("etc/passwd")).unwrap(), b"root::0:0")),
        ),
        (
            "write through a dangling absolute symlink",
            Tb::default().symlink("evil", &format!("{s}/nope")).file("evil/x", b"x").end(),
            Want::Ok(|c| assert!(c.join(tmp_rel_of_sentinel(c)).join("nope/x").is_file())),
        ),
        (
            "symlink loop in a parent",
            Tb::default().symlink("a", "b").symlink("b", "a").file("a/x", b"x").end(),
            Want::Unsafe,
        ),
        ("parent is a file", Tb::default().file("f", b"x").file("f/x", b"x").end(), Want::Unsafe),
        ("hardlink to absolute path", Tb::default().hardlink("l", &format!("{s}/file")).end(), Want::Unsafe),
        ("hardlink to /etc/passwd", Tb::default().hardlink("l", "/etc/passwd").end(), Want::Unsafe),
        ("hardlink with dotdot", Tb::default().hardlink("l", "../x").end(), Want::Unsafe),
        ("hardlink to a later entry", Tb::default().hardlink("l", "f").file("f", b"x").end(), Want::Unsafe),
        ("hardlink to a directory", Tb::default().dir("d").hardlink("l", "d").end(), Want::Unsafe),
        (
            "hardlink through a symlinked parent",
            Tb::default().symlink("evil", &s).hardlink("l", "evil/file").end(),
            Want::Unsafe,
        ),
        (
            "hardlink to an earlier file",
            Tb::default().file("f", b"x").hardlink("l", "f").end(),
            Want::Ok(|c| {
                assert_eq!(std::fs::metadata(c.join("l")).unwrap().ino(), std::fs::metadata(c.join("f")).unwrap().ino())
            }),
        ),
        ("whiteout .wh..", Tb::default().file("a/.wh..", b"").end(), Want::Unsafe),
        ("whiteout .wh.", Tb::default().file("a/.wh.", b"").end(), Want::Unsafe),
        ("whiteout .wh...", Tb::default().file(".wh...", b"").end(), Want::Unsafe),
        ("whiteout metadata", Tb::default().file(".wh..wh.plnk", b"").end(), Want::Unsafe),
        ("whiteout with traversal", Tb::default().file("../.wh.sentinel", b"").end(), Want::Unsafe),
        ("whiteout as a directory", Tb::default().dir(".wh.x").end(), Want::Unsafe),
        (
            "whiteout through a symlink",
            Tb::default().symlink("evil", &s).file("evil/.wh.file", b"").end(),
            Want::Ok(|_| {}),
        ),
        ("root as a file", Tb::default().file("./", b"x").end(), Want::Unsafe),
        ("root as a symlink", Tb::default().symlink(".", &s).end(), Want::Unsafe),
        ("root as a hardlink", Tb::default().file("f", b"x").hardlink("/", "f").end(), Want::Unsafe),
        (
            "root as a directory",
            Tb::default().entry("./", b'5', b"", "").file("f", b"x").end(),
            Want::Ok(|c| assert!(c.join("f").is_file())),
        ),
        ("truncated content", Tb::default().file("f", &[7u8; 3000]).0[..1500].to_vec(), Want::Malformed),
        ("truncated header", Tb::default().file("f", b"x").0[..700].to_vec(), Want::Malformed),
        (
            "pax size beyond the data",
            Tb::default().pax(&[("size", b"100000")]).file("f", b"short").end(),
            Want::Malformed,
        ),
        ("huge pax header", Tb::default().pax(&[("comment", &big_pax)]).file("f", b"x").end(), Want::Malformed),
        ("path too long", Tb::default().pax(&[("path", long_name.as_bytes())]).file("f", b"x").end(), Want::Unsafe),
        (
            "bad checksum",
            {
                let mut t = Tb::default().file("f", b"x").end();
                t[148] = b'7';
                t
            },
            Want::Malformed,
        ),
        ("not a tar", b"hello world, definitely not a tar archive".repeat(20), Want::Malformed),
        ("sparse file", Tb::default().pax(&[("GNU.sparse.major", b"1")]).file("f", b"x").end(), Want::Malformed),
        ("unknown entry type", Tb::default().entry("f", b'Z', b"", "").end(), Want::Malformed),
        (
            "overlay xattrs are dropped",
            Tb::default()
                .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y"), ("SCHILY.xattr.user.ok", b"1")])
                .dir("d")
                .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/sentinel")])
                .dir("r")
                .end(),
            Want::Ok(|c| {
                assert_eq!(
                    rustix::fs::lgetxattr(c.join("d"), "trusted.overlay.opaque", &mut [0u8; 8][..]).err(),
                    Some(rustix::io::Errno::NODATA)
                );
                assert_eq!(
                    rustix::fs::lgetxattr(c.join("r"), "trusted.overlay.redirect", &mut [0u8; 64][..]).err(),
                    Some(rustix::io::Errno::NODATA)
                );
                let mut b = [0u8; 8];
                assert_eq!(rustix::fs::lgetxattr(c.join("d"), "user.ok", &mut b[..]).unwrap(), 1);
            }),
        ),
        (
            "absolute and relative symlinks are content",
            Tb::default().symlink("abs", "/etc/passwd").symlink("rel", "../../../../etc").end(),
            Want::Ok(|c| {
                assert_eq!(std::fs::read_link(c.join("abs")).unwrap(), Path::new("/etc/passwd"));
                assert_eq!(std::fs::read_link(c.join("rel")).unwrap(), Path::new("../../../../etc"));
            }),
        ),
        (
            "setuid, owner and time kept",
            {
                let mut t = Tb::default();
                let mut h = header(b"suid", b'0', 1, b"", 0o4755);
                h[108..116].copy_from_slice(b"0001750\0");
                h[148..156].copy_from_slice(b"        ");
                let sum: u64 = h.iter().map(|&b| b as u64).sum();
                h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                t.0.extend_from_slice(&h);
                t.data(b"x").end()
            },
            Want::Ok(|c| {
                let md = std::fs::symlink_metadata(c.join("suid")).unwrap();
                assert_eq!((md.mode() & 0o7777, md.uid(), md.mtime()), (0o4755, 1000, 1_700_000_000));
            }),
        ),
    ];
    let root = tmp.path().join("root");
    let before = snapshot(&sentinel);
    for name in ["vfs", "overlay"] {
        let d = strata_driver::open(&root, name).unwrap();
        for (i, (what, tar, want)) in cases.iter().enumerate() {
            let id = format!("case{i}");
            d.create(&id, None).unwrap();
            let content = root.join(name).join(&id).join(if name == "vfs" { "root" } else { "diff" });
            let r = d.apply_diff(&id, &mut tar.as_slice(), &mut Vec::new());
            match (want, &r) {
                (Want::Unsafe, Err(Error::Unsafe { .. })) | (Want::Malformed, Err(Error::Malformed(_))) => {}
                (Want::Ok(check), Ok(_)) => check(&content),
                _ => panic!("{name}: {what}: wanted {want:?}, got {r:?}"),
            }
            assert_eq!(snapshot(&sentinel), before, "{name}: {what}: the sentinel changed");
            let mut top: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            top.sort();
            assert_eq!(
                top,
                [OsStr::new("root"), OsStr::new("sentinel")],
                "{name}: {what}: something appeared next to the layers"
            );
            let mut drivers: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
            drivers.retain(|n| !strata_driver::DRIVERS.iter().any(|d| OsStr::new(d) == n));
            assert!(drivers.is_empty(), "{name}: {what}: {drivers:?} appeared in the root");
            d.remove(&id).unwrap();
        }
    }
}

/// The sentinel's absolute path, relative (as it appears inside a layer
/// when an absolute symlink to it is resolved in the layer root).
fn tmp_rel_of_sentinel(content: &Path) -> PathBuf {
    // content = <tmp>/root/<driver>/<id>/<dir>
    let tmp = content.ancestors().nth(4).unwrap();
    tmp.join("sentinel").strip_prefix("/").unwrap().to_path_buf()
}

/// Apply throughput of ia/layered:1 (run with --nocapture to see the
/// numbers), on the scratch disk and, when there, on tmpfs.
#[test]
fn apply_throughput() {
    let layers = ia_layered();
    let total: usize = layers.iter().map(Vec::len).sum();
    for base in ["/var/tmp", "/dev/shm"] {
        if !Path::new(base).is_dir() {
            continue;
        }
        for name in ["vfs", "overlay"] {
            let tmp = tempfile::Builder::new().prefix("strata-driver-test").tempdir_in(base).unwrap();
            let d = strata_driver::open(tmp.path(), name).unwrap();
            for i in 0..5 {
                d.create(&format!("l{i}"), (i > 0).then(|| format!("l{}", i - 1)).as_deref()).unwrap();
            }
            let t0 = Instant::now();
            for (i, tar) in layers.iter().enumerate() {
                d.apply_diff(&format!("l{i}"), &mut tar.as_slice(), &mut Vec::new()).unwrap();
            }
            let dt = t0.elapsed();
            eprintln!(
                "{base} {name}: apply of ia/layered:1 (5 layers, {total} bytes): {:.1} ms, {:.0} MiB/s",
                dt.as_secs_f64() * 1e3,
                total as f64 / dt.as_secs_f64() / (1 << 20) as f64
            );
        }
    }
}

/// What `docker run … ; docker commit` did to ia/layered:1 (see
/// reference/docker/cli-28.2.2/container_diff_commit.txt), replayed through
/// our mount: `changes` must equal `docker diff`, and (overlay drivers) the
/// diff tar must hold the same entries, in the same order, with the same
/// types, modes, owners and contents as Docker's committed layer.
#[test]
fn docker_commit_scenario() {
    let committed = archive_layers(&images().join("docker-save/ia-committed.tar"));
    let docker_top = committed.last().unwrap();
    let mut docker_diff: Vec<String> = std::fs::read_to_string(images().join("docker-save/ia-committed.diff.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    docker_diff.sort();
    // Docker's entries without times; its whiteout of empty-dir carries a
    // stale link name (a Docker quirk) that is not part of the format.
    let norm = |s: Vec<String>| -> Vec<String> { s.into_iter().map(|l| l.replace(" etc/ia-release ", "  ")).collect() };
    let want_entries = norm(diff_summary(docker_top));
    for name in strata_driver::DRIVERS {
        if let Some(why) = unavailable(name) {
            eprintln!("NOTE: skipping driver {name}: {why}");
            continue;
        }
        let tmp = scratch();
        let d = strata_driver::open(tmp.path(), name).unwrap();
        apply_layered(d.as_ref(), &ia_layered());
        d.create("c", Some("l4")).unwrap();
        let mp = d.mount("c").unwrap();
        std::fs::write(mp.join("etc/motd"), b"changed\n").unwrap();
        std::fs::remove_file(mp.join("etc/ia-release")).unwrap();
        std::fs::remove_dir_all(mp.join("usr/share/ia/empty-dir")).unwrap();
        std::fs::create_dir_all(mp.join("srv/new/deep")).unwrap();
        std::fs::write(mp.join("srv/new/deep/f"), b"x\n").unwrap();
        std::fs::remove_dir_all(mp.join("opt/data")).unwrap();
        std::fs::create_dir(mp.join("opt/data")).unwrap();
        std::fs::write(mp.join("opt/data/z"), b"y\n").unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(mp.join("usr/share/ia/big.bin")).unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
        drop(f);
        std::os::unix::fs::symlink("/etc/motd", mp.join("motd-link")).unwrap();
        std::fs::set_permissions(mp.join("home/ia/.profile"), std::fs::Permissions::from_mode(0o700)).unwrap();
        d.unmount("c").unwrap();

        let mut changes = change_lines(d.as_ref(), "c");
        changes.sort();
        assert_eq!(changes, docker_diff, "{name}: changes vs docker diff");
        if *name != "vfs" {
            let mut ours = Vec::new();
            d.diff("c", &mut ours).unwrap();
            assert_eq!(norm(diff_summary(&ours)), want_entries, "{name}: diff vs docker commit");
            assert_eq!(d.diff_size("c").unwrap(), 8 + 2 + 2 + 262144 + 18);
        }
    }
}

/// A directory renamed through the mount (strata-fs records a redirect; the
/// kernel overlay here refuses with EXDEV and the driver is skipped): the
/// diff carries the directory in full, and everything still agrees.
#[test]
fn renamed_directory() {
    for name in strata_driver::DRIVERS {
        if let Some(why) = unavailable(name) {
            eprintln!("NOTE: skipping driver {name}: {why}");
            continue;
        }
        let tmp = scratch();
        let d = strata_driver::open(tmp.path(), name).unwrap();
        apply_layered(d.as_ref(), &ia_layered());
        d.create("c", Some("l4")).unwrap();
        let mp = d.mount("c").unwrap();
        match std::fs::rename(mp.join("usr/share/ia"), mp.join("srv")) {
            Err(e) if e.raw_os_error() == Some(libc_exdev()) => {
                eprintln!("NOTE: {name}: directory rename gives EXDEV, skipped");
                d.unmount("c").unwrap();
                continue;
            }
            r => r.unwrap(),
        }
        std::fs::write(mp.join("srv/added"), b"new").unwrap();
        let tree = tree_lines(&mp);
        d.unmount("c").unwrap();
        // Remount: the rename survives.
        let mp = d.mount("c").unwrap();
        assert_eq!(tree_lines(&mp), tree, "{name}: tree after remount");
        d.unmount("c").unwrap();
        let changes = change_lines(d.as_ref(), "c");
        assert!(changes.contains(&"A /srv".to_string()), "{name}: {changes:?}");
        assert!(changes.contains(&"A /srv/big.bin".to_string()), "{name}: {changes:?}");
        assert!(changes.contains(&"A /srv/added".to_string()), "{name}: {changes:?}");
        assert!(changes.contains(&"D /usr/share/ia".to_string()), "{name}: {changes:?}");
        let mut exported = Vec::new();
        d.export("c", &mut exported).unwrap();
        assert_lines(&format!("{name}: export after rename"), &tar_tree_lines(&exported), &tree);
        // The diff re-applied elsewhere (vfs) rebuilds the same tree.
        let mut diff = Vec::new();
        d.diff("c", &mut diff).unwrap();
        let tmp2 = scratch();
        let v = strata_driver::open(tmp2.path(), "vfs").unwrap();
        apply_layered(v.as_ref(), &ia_layered());
        v.create("c", Some("l4")).unwrap();
        v.apply_diff("c", &mut diff.as_slice(), &mut Vec::new()).unwrap();
        let mut exported = Vec::new();
        v.export("c", &mut exported).unwrap();
        assert_lines(&format!("{name}: its diff applied by vfs"), &tar_tree_lines(&exported), &tree);
    }
}

fn libc_exdev() -> i32 {
    rustix::io::Errno::XDEV.raw_os_error()
}
