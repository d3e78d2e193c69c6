//! Targeted tests of `strata-overlayfs`, mounted for real through the kernel
//! (root and /dev/fuse needed), with the kernel's overlayfs as the oracle
//! where one is needed.
//!
//! Run serially: `cargo test -p strata-fs --test mount -- --test-threads=1`
//! (the tests also take a process-wide lock, so parallel runs stay correct).

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_strata-overlayfs");
static SERIAL: Mutex<()> = Mutex::new(());

fn can_mount() -> bool {
    let ok = rustix::process::geteuid().is_root() && Path::new("/dev/fuse").exists();
    if !ok {
        eprintln!("SKIPPED: these tests need root and /dev/fuse");
    }
    ok
}

/// A scratch directory with lowers l0..lN, upper, work and a mountpoint.
struct Stack {
    dir: tempfile::TempDir,
    lowers: usize,
}

impl Stack {
    fn new(lowers: usize) -> Stack {
        let dir = tempfile::Builder::new().prefix("strata-fs-test").tempdir_in("/tmp").unwrap();
        for i in 0..lowers {
            fs::create_dir(dir.path().join(format!("l{i}"))).unwrap();
        }
        for d in ["upper", "work", "mnt", "kupper", "kwork", "kmnt"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        Stack { dir, lowers }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn lower(&self, i: usize) -> PathBuf {
        self.p(&format!("l{i}"))
    }
    fn lowerdir(&self) -> String {
        (0..self.lowers).map(|i| self.lower(i).display().to_string()).collect::<Vec<_>>().join(":")
    }
    fn opts(&self) -> String {
        format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lowerdir(),
            self.p("upper").display(),
            self.p("work").display()
        )
    }
    fn mount(&self) -> Mounted {
        self.mount_with("")
    }
    fn mount_with(&self, extra: &str) -> Mounted {
        self.mount_opts(&format!("{}{extra}", self.opts()))
    }
    /// strata-overlayfs with exactly these `-o` options on `mnt`.
    fn mount_opts(&self, opts: &str) -> Mounted {
        self.mount_opts_env(opts, &[])
    }
    /// `mount_opts` with these environment variables for the daemon.
    fn mount_opts_env(&self, opts: &str, env: &[(&str, &str)]) -> Mounted {
        let out = Command::new(BIN).envs(env.iter().copied()).arg("-o").arg(opts).arg(self.p("mnt")).output().unwrap();
        assert!(out.status.success(), "mount failed: {}", String::from_utf8_lossy(&out.stderr));
        Mounted { path: self.p("mnt") }
    }
    fn mount_kernel(&self, upper: &str, work: &str, mnt: &str) -> Mounted {
        let opts = format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=on,index=on",
            self.lowerdir(),
            self.p(upper).display(),
            self.p(work).display()
        );
        let st =
            Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(self.p(mnt)).status().unwrap();
        assert!(st.success(), "kernel overlay mount failed");
        Mounted { path: self.p(mnt) }
    }
}

struct Mounted {
    path: PathBuf,
}

impl Mounted {
    fn p(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        for _ in 0..50 {
            if Command::new("umount").arg(&self.path).status().map(|s| s.success()).unwrap_or(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn write(p: impl AsRef<Path>, data: &[u8]) {
    fs::write(p, data).unwrap();
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    fs::read(p).unwrap()
}

/// Sorted listing of a directory tree: "path type mode size".
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut ents: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        ents.sort_by_key(|e| e.file_name());
        for e in ents {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let t = md.file_type();
            let kind = if t.is_dir() {
                "d"
            } else if t.is_symlink() {
                "l"
            } else if t.is_fifo() {
                "p"
            } else {
                "f"
            };
            let extra = if t.is_file() {
                String::from_utf8_lossy(&read(&p)).into_owned()
            } else if t.is_symlink() {
                fs::read_link(&p).unwrap().display().to_string()
            } else {
                String::new()
            };
            out.push(format!("{rel} {kind} {:o} {extra}", md.mode() & 0o7777));
            if t.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

fn mknod_whiteout(p: &Path) {
    rustix::fs::mknodat(rustix::fs::CWD, p, rustix::fs::FileType::CharacterDevice, rustix::fs::Mode::empty(), 0)
        .unwrap();
}

#[test]
fn delete_and_recreate_at_every_depth_survives_remount() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(2);
    for (i, l) in [s.lower(0), s.lower(1)].iter().enumerate() {
        fs::create_dir_all(l.join("top/mid")).unwrap();
        write(l.join(format!("top/mid/f{i}")), b"lower");
        write(l.join(format!("rootfile{i}")), b"lower");
    }
    {
        let m = s.mount();
        // Directly under the root and two levels down: files and directories.
        fs::remove_dir_all(m.p("top")).unwrap();
        fs::remove_file(m.p("rootfile0")).unwrap();
        fs::create_dir(m.p("top")).unwrap();
        write(m.p("rootfile0"), b"new");
        fs::create_dir_all(m.p("top/mid")).unwrap();
        write(m.p("top/mid/g"), b"mine");
        assert_eq!(fs::read_dir(m.p("top/mid")).unwrap().count(), 1);
    }
    let m = s.mount();
    let names: Vec<_> = fs::read_dir(m.p("top/mid")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![OsStr::new("g").to_owned()], "nothing from the lowers may come back");
    assert_eq!(read(m.p("rootfile0")), b"new");
    assert_eq!(read(m.p("rootfile1")), b"lower");
}

#[test]
fn inode_numbers_unique_across_layers_and_stable_across_copy_up() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(3);
    for i in 0..3 {
        for j in 0..20 {
            write(s.lower(i).join(format!("f{i}_{j}")), b"x");
        }
    }
    let m = s.mount();
    let mut seen = std::collections::HashMap::new();
    for e in fs::read_dir(&m.path).unwrap() {
        let e = e.unwrap();
        let ino = fs::symlink_metadata(e.path()).unwrap().ino();
        if let Some(other) = seen.insert(ino, e.file_name()) {
            panic!("{:?} and {:?} share inode {ino}", other, e.file_name());
        }
    }
    assert_eq!(seen.len(), 60);
    let before = fs::metadata(m.p("f2_3")).unwrap().ino();
    fs::set_permissions(m.p("f2_3"), fs::Permissions::from_mode(0o600)).unwrap(); // copy-up
    assert_eq!(fs::metadata(m.p("f2_3")).unwrap().ino(), before);
    drop(m);
    let m = s.mount();
    assert_eq!(fs::metadata(m.p("f2_3")).unwrap().ino(), before, "stable across remount");
}

#[test]
fn hard_links_stay_linked_after_copy_up() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    write(s.lower(0).join("a"), b"one");
    fs::hard_link(s.lower(0).join("a"), s.lower(0).join("b")).unwrap();
    {
        let m = s.mount();
        fs::OpenOptions::new().append(true).open(m.p("a")).unwrap().write_all(b"+two").unwrap();
        assert_eq!(read(m.p("b")), b"one+two");
        let (ma, mb) = (fs::metadata(m.p("a")).unwrap(), fs::metadata(m.p("b")).unwrap());
        assert_eq!(ma.ino(), mb.ino());
        assert_eq!(ma.nlink(), 2);
    }
    let m = s.mount();
    assert_eq!(read(m.p("b")), b"one+two", "still linked after remount");
    fs::remove_file(m.p("a")).unwrap();
    assert_eq!(fs::metadata(m.p("b")).unwrap().nlink(), 1);
    assert_eq!(read(s.lower(0).join("a")), b"one", "lower layer untouched");
}

#[test]
fn directory_rename_persists_and_kernel_reads_it() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(2);
    fs::create_dir_all(s.lower(1).join("dir/sub")).unwrap();
    write(s.lower(1).join("dir/sub/x"), b"x");
    fs::create_dir_all(s.lower(0).join("dir")).unwrap();
    write(s.lower(0).join("dir/y"), b"y");
    let expected;
    {
        let m = s.mount();
        fs::rename(m.p("dir"), m.p("moved")).unwrap();
        fs::rename(m.p("moved/sub"), m.p("sub2")).unwrap();
        assert!(!m.p("dir").exists());
        expected = tree(&m.path);
    }
    let m = s.mount();
    assert_eq!(tree(&m.path), expected, "same tree after remount");
    drop(m);
    // Format compatibility: the kernel mounts what strata wrote.
    let k = s.mount_kernel("upper", "work", "kmnt");
    assert_eq!(tree(&k.path), expected, "the kernel sees the same tree");
}

#[test]
fn kernel_written_upper_reads_the_same_through_strata() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(2);
    fs::create_dir_all(s.lower(1).join("d/e")).unwrap();
    write(s.lower(1).join("d/e/f"), b"f");
    write(s.lower(1).join("d/g"), b"g");
    write(s.lower(0).join("h"), b"h");
    let expected;
    {
        let k = s.mount_kernel("kupper", "kwork", "kmnt");
        fs::remove_file(k.p("d/g")).unwrap();
        fs::rename(k.p("d/e"), k.p("e2")).unwrap();
        fs::remove_dir_all(k.p("d")).unwrap();
        fs::create_dir(k.p("d")).unwrap();
        write(k.p("d/new"), b"new");
        write(k.p("h"), b"h2");
        expected = tree(&k.path);
    }
    let opts =
        format!("lowerdir={},upperdir={},workdir={}", s.lowerdir(), s.p("kupper").display(), s.p("kwork").display());
    let m = s.mount_opts(&opts);
    assert_eq!(tree(&m.path), expected);
}

#[test]
fn oci_whiteouts_in_lowers_are_honoured() {
    // Two layers: names are probed per layer; five: the directory's lower
    // entries are listed once; seventy: listed by several threads. All
    // paths must agree.
    oci_whiteouts(2);
    oci_whiteouts(5);
    oci_whiteouts(70);
}

fn oci_whiteouts(layers: usize) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(layers);
    let bottom = s.lower(layers - 1);
    fs::create_dir_all(bottom.join("opq")).unwrap();
    write(bottom.join("opq/hidden"), b"x");
    write(bottom.join("gone"), b"x");
    write(bottom.join("kgone"), b"x");
    for i in 1..layers - 1 {
        fs::create_dir_all(s.lower(i).join("opq")).unwrap();
    }
    fs::create_dir_all(s.lower(0).join("opq")).unwrap();
    write(s.lower(0).join("opq/.wh..wh..opq"), b"");
    write(s.lower(0).join("opq/visible"), b"v");
    write(s.lower(0).join(".wh.gone"), b"");
    mknod_whiteout(&s.lower(0).join("kgone"));
    let m = s.mount();
    let t = tree(&m.path);
    assert_eq!(t, vec!["opq d 755 ".to_string(), "opq/visible f 644 v".to_string()]);
    // Second lookups in a directory go through its listing of the lowers.
    for (name, exists) in [("gone", false), ("kgone", false), ("opq/hidden", false), ("opq/visible", true)] {
        assert_eq!(m.p(name).symlink_metadata().is_ok(), exists, "{name} with {layers} layers");
    }
}

#[test]
fn read_only_without_upper() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    write(s.lower(0).join("a"), b"a");
    let m = s.mount_opts(&format!("lowerdir={}", s.lowerdir()));
    assert_eq!(read(m.p("a")), b"a");
    let e = fs::write(m.p("b"), b"b").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let e = fs::OpenOptions::new().write(true).open(m.p("a")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
}

#[test]
fn bad_command_lines_fail_clearly() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    let mnt = s.p("mnt").display().to_string();
    let l0 = s.lower(0).display().to_string();
    let up = s.p("upper").display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-o".into(), "lowerdir=/does/not/exist".into(), mnt.clone()], "No such file"),
        (vec!["-o".into(), format!("lowerdir={l0},bogus=1"), mnt.clone()], "unknown mount option"),
        (
            vec!["-o".into(), format!("lowerdir={l0},upperdir={up},workdir=/dev/shm"), mnt.clone()],
            "different filesystems",
        ),
        (vec!["-o".into(), format!("lowerdir={l0}"), format!("{l0}")], "inside the layer"),
        (vec!["-o".into(), format!("lowerdir={l0},upperdir={up}"), mnt.clone()], "workdir"),
        (vec![mnt.clone()], "lowerdir"),
    ];
    for (args, msg) in cases {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(msg), "{args:?}: expected '{msg}' in '{err}'");
    }
    // Nothing got mounted.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&mnt));
}

#[test]
fn mount_helper_form_works() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    write(s.lower(0).join("a"), b"a");
    let out = Command::new(BIN)
        .arg("overlay")
        .arg(s.p("mnt"))
        .arg("-o")
        .arg(format!("rw,{},dev,suid", s.opts()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = Mounted { path: s.p("mnt") };
    assert_eq!(read(m.p("a")), b"a");
}

#[test]
fn open_unlinked_files_stay_usable() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    write(s.lower(0).join("low"), b"lower data");
    let m = s.mount();
    let mut f = fs::OpenOptions::new().read(true).write(true).open(m.p("low")).unwrap();
    fs::remove_file(m.p("low")).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(b" more").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s2 = String::new();
    f.read_to_string(&mut s2).unwrap();
    assert_eq!(s2, "lower data more");
    assert_eq!(f.metadata().unwrap().len(), 15);
    assert!(!m.p("low").exists());
}

#[test]
fn concurrent_writers_copying_up_the_same_file() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    let data = vec![7u8; 4 << 20];
    write(s.lower(0).join("shared"), &data);
    let m = s.mount();
    let path = m.p("shared");
    let threads: Vec<_> = (0..8u8)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
                rustix::io::pwrite(&f, &[i], i as u64 * 4096).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got = read(&path);
    assert_eq!(got.len(), data.len());
    for i in 0..8u8 {
        assert_eq!(got[i as usize * 4096], i, "write of writer {i} lost");
    }
    assert_eq!(&got[1..4096], &data[1..4096]);
}

#[test]
fn kill_during_copy_up_leaves_nothing_or_everything() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    let size = 256u64 << 20;
    {
        let f = fs::File::create(s.lower(0).join("big")).unwrap();
        // Real data (not a hole), so the copy takes time.
        let chunk = vec![0x5au8; 1 << 20];
        let mut w = std::io::BufWriter::new(f);
        for _ in 0..(size >> 20) {
            w.write_all(&chunk).unwrap();
        }
    }
    for delay_ms in [5u64, 40, 150] {
        let _ = fs::remove_dir_all(s.p("upper"));
        let _ = fs::remove_dir_all(s.p("work"));
        fs::create_dir(s.p("upper")).unwrap();
        fs::create_dir(s.p("work")).unwrap();
        let m = s.mount();
        let p = m.p("big");
        let writer = std::thread::spawn(move || {
            // Opening for write triggers the copy-up; it fails once the daemon dies.
            let _ = fs::OpenOptions::new().append(true).open(&p).and_then(|mut f| f.write_all(b"!"));
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pids = Command::new("pgrep")
            .args(["-f", &format!("strata-overlayfs.*{}", s.p("mnt").display())])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let _ = writer.join();
        drop(m);
        let up = s.p("upper/big");
        if let Ok(md) = fs::symlink_metadata(&up) {
            assert!(md.len() == size || md.len() == size + 1, "partial copy-up of {} bytes", md.len());
        }
        // A new mount cleans the work directory and shows whole content.
        let start = Instant::now();
        let m = s.mount();
        let len = fs::metadata(m.p("big")).unwrap().len();
        assert!(len == size || len == size + 1);
        assert!(start.elapsed() < Duration::from_secs(30));
        let leftovers: Vec<_> = fs::read_dir(s.p("work"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.as_bytes().starts_with(b"#strata"))
            .collect();
        assert!(leftovers.is_empty(), "work dir not cleaned: {leftovers:?}");
    }
}

#[test]
fn special_files_and_xattrs() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    write(s.lower(0).join("f"), b"f");
    rustix::fs::setxattr(s.lower(0).join("f"), "user.k", b"v", rustix::fs::XattrFlags::empty()).unwrap();
    let m = s.mount();
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(m.p("f"), "user.k", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v");
    rustix::fs::setxattr(m.p("f"), "user.k2", b"w", rustix::fs::XattrFlags::empty()).unwrap();
    let mut list = [0u8; 256];
    let n = rustix::fs::listxattr(m.p("f"), &mut list[..]).unwrap();
    let names: Vec<&[u8]> = list[..n].split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    assert_eq!(names, vec![&b"user.k"[..], &b"user.k2"[..]], "overlay xattrs must not show");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        m.p("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    assert!(fs::symlink_metadata(m.p("fifo")).unwrap().file_type().is_fifo());
    std::os::unix::fs::symlink("/etc/passwd", m.p("sym")).unwrap();
    assert_eq!(fs::read_link(m.p("sym")).unwrap(), Path::new("/etc/passwd"));
    // rename flags
    write(m.p("x"), b"x");
    let e = rustix::fs::renameat_with(
        rustix::fs::CWD,
        m.p("x"),
        rustix::fs::CWD,
        m.p("f"),
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .unwrap_err();
    assert_eq!(e, rustix::io::Errno::EXIST);
    rustix::fs::renameat_with(rustix::fs::CWD, m.p("x"), rustix::fs::CWD, m.p("f"), rustix::fs::RenameFlags::EXCHANGE)
        .unwrap();
    assert_eq!(read(m.p("x")), b"f");
    assert_eq!(read(m.p("f")), b"x");
}

#[test]
fn readdirplus_lists_the_same_tree_as_readdir() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(3);
    for i in 0..3 {
        fs::create_dir_all(s.lower(i).join("d/sub")).unwrap();
        for j in 0..300 {
            write(s.lower(i).join(format!("d/f{i}_{j}")), format!("{i}{j}").as_bytes());
        }
        std::os::unix::fs::symlink("target", s.lower(i).join(format!("d/sub/l{i}"))).unwrap();
    }
    mknod_whiteout(&s.lower(0).join("d/f1_7"));
    let plain = tree(&s.mount_with(",noreaddirplus").path);
    let m = s.mount();
    assert_eq!(tree(&m.path), plain);
    assert_eq!(plain.iter().filter(|l| l.starts_with("d/f")).count(), 899);
    // Twice: the second scan is answered from nodes the first one created.
    assert_eq!(tree(&m.path), plain);
}

#[test]
fn quick_remount_survives_the_old_daemon_exiting() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    write(s.lower(0).join("a"), b"a");
    for _ in 0..5 {
        let m = s.mount();
        fs::write(m.p("b"), b"b").unwrap();
        drop(m);
        let m = s.mount();
        // Give the previous daemon time to wind down; it must not take the
        // new mount with it.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(read(m.p("a")), b"a");
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(mounts.contains("fuse.strata-overlayfs"), "mount type");
    }
}

#[test]
fn objects_made_by_other_users_get_the_owners_the_kernel_gives() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    // uid 1000 must reach the mountpoints.
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(s.lower(0).join("pub")).unwrap();
    fs::set_permissions(s.lower(0).join("pub"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir(s.lower(0).join("sg")).unwrap();
    std::os::unix::fs::chown(s.lower(0).join("sg"), Some(0), Some(123)).unwrap();
    fs::set_permissions(s.lower(0).join("sg"), fs::Permissions::from_mode(0o2777)).unwrap();
    let names = ["pub/f", "pub/d", "pub/d/sub", "pub/l", "pub/p", "sg", "sg/f", "sg/d", "sg/d/sub"];
    let script = "cd \"$1\" && touch pub/f && mkdir pub/d pub/d/sub && ln -s x pub/l && mkfifo pub/p \
                  && touch sg/f && mkdir sg/d sg/d/sub";
    let make_and_list = |root: &Path| -> Vec<(String, u32, u32, u32)> {
        let st = Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups", "sh", "-c", script, "sh"])
            .arg(root)
            .status()
            .unwrap();
        assert!(st.success(), "the script failed as uid 1000 in {}", root.display());
        names
            .iter()
            .map(|n| {
                let m = fs::symlink_metadata(root.join(n)).unwrap();
                (n.to_string(), m.uid(), m.gid(), m.mode())
            })
            .collect()
    };
    let expected = {
        let k = s.mount_kernel("kupper", "kwork", "kmnt");
        make_and_list(&k.path)
    };
    assert_eq!(expected[0].1, 1000, "the kernel made pub/f as uid 1000");
    assert_eq!(expected[6].2, 123, "the kernel gave sg/f the setgid parent's group");
    let m = s.mount();
    assert_eq!(make_and_list(&m.path), expected);
}

#[test]
fn copy_up_from_another_filesystem_copies_every_byte() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    // The lower on tmpfs, upper and work on /tmp's filesystem: no reflink,
    // no copy_file_range (EXDEV), so copy-up takes the sendfile path.
    let shm = tempfile::Builder::new().prefix("strata-fs-test").tempdir_in("/dev/shm").unwrap();
    let data: Vec<u8> = (0..(5u32 << 20) + 12345).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect();
    write(shm.path().join("big"), &data);
    write(shm.path().join("small"), b"small");
    let s = Stack::new(0);
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        shm.path().display(),
        s.p("upper").display(),
        s.p("work").display()
    );
    let m = s.mount_opts(&opts);
    fs::OpenOptions::new().append(true).open(m.p("big")).unwrap().write_all(b"!").unwrap();
    fs::set_permissions(m.p("small"), fs::Permissions::from_mode(0o600)).unwrap();
    let mut want = data.clone();
    want.push(b'!');
    assert!(read(m.p("big")) == want, "merged view of the copied-up file differs");
    assert!(read(s.p("upper/big")) == want, "upper copy differs");
    assert_eq!(read(s.p("upper/small")), b"small");
    assert_eq!(read(shm.path().join("big")).len(), data.len(), "the lower is untouched");
}

#[test]
fn deep_stack_reads_as_the_kernel_reads_it() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    // 80 lowers: merged directories are listed by several threads.
    let n = 80;
    let s = Stack::new(n);
    for i in 0..n {
        fs::create_dir_all(s.lower(i).join("d/sub")).unwrap();
        write(s.lower(i).join(format!("d/own{i}")), format!("{i}").as_bytes());
        write(s.lower(i).join(format!("d/sub/s{i}")), b"s");
    }
    for j in 0..50 {
        write(s.lower(n - 1).join(format!("d/f{j}")), b"bottom");
    }
    mknod_whiteout(&s.lower(10).join("d/own50"));
    mknod_whiteout(&s.lower(40).join("d/f3"));
    write(s.lower(5).join("d/f7"), b"shadow");
    rustix::fs::setxattr(s.lower(20).join("d/sub"), "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())
        .unwrap();
    // A directory renamed in layer 30: below it, `moved` is found as `sub`.
    fs::create_dir(s.lower(30).join("d/moved")).unwrap();
    write(s.lower(30).join("d/moved/m"), b"m");
    rustix::fs::setxattr(
        s.lower(30).join("d/moved"),
        "trusted.overlay.redirect",
        b"sub",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let names: Vec<String> = (0..60)
        .map(|j| format!("d/f{j}"))
        .chain((0..n + 3).map(|i| format!("d/own{i}")))
        .chain((0..n).map(|i| format!("d/sub/s{i}")))
        .chain((0..n).map(|i| format!("d/moved/s{i}")))
        .chain(["d/moved/m".to_string()])
        .collect();
    let probe = |root: &Path| -> Vec<(String, Option<Vec<u8>>)> {
        names.iter().map(|p| (p.clone(), fs::read(root.join(p)).ok())).collect()
    };
    let (want_probe, want_tree) = {
        let k = s.mount_kernel("kupper", "kwork", "kmnt");
        (probe(&k.path), tree(&k.path))
    };
    let has = |p: &str| want_probe.iter().any(|(n, v)| n == p && v.is_some());
    assert!(has("d/moved/s40") && !has("d/moved/s10") && has("d/f7") && !has("d/f3"), "the kernel's view");
    let m = s.mount();
    assert_eq!(probe(&m.path), want_probe, "lookups by name");
    assert_eq!(tree(&m.path), want_tree, "listing");
    drop(m);
    // Listing first: the lookups that follow use what the listing read.
    let m = s.mount();
    assert_eq!(tree(&m.path), want_tree, "listing on a fresh mount");
    assert_eq!(probe(&m.path), want_probe, "lookups after the listing");
}

/// A `security.capability` value (VFS revision 2, CAP_NET_RAW permitted).
const FILE_CAP: [u8; 20] = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn has_file_cap(p: &Path) -> bool {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, "security.capability", &mut buf[..]).is_ok()
}

/// Run a shell script in `root` as uid/gid 65534 (no supplementary groups)
/// or, with `as_root`, as root.
fn sh_in(root: &Path, script: &str, as_root: bool) {
    let mut c = if as_root {
        Command::new("sh")
    } else {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sh"]);
        c
    };
    let st = c.args(["-c", script, "sh"]).arg(root).status().unwrap();
    assert!(st.success(), "script failed in {}: {script}", root.display());
}

#[test]
fn writes_truncates_and_chowns_clear_setuid_and_caps_as_the_kernel_does() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(s.lower(0), fs::Permissions::from_mode(0o777)).unwrap();
    // name, mode, with a file capability
    let files: [(&str, u32, bool); 10] = [
        ("user_append", 0o6777, false),
        ("user_append_sgid_nogx", 0o2767, false),
        ("user_truncate", 0o6777, true),
        ("user_append_caps", 0o4777, true),
        ("user_again", 0o6777, false),
        ("root_append", 0o6777, false),
        ("root_append_caps", 0o6777, true),
        ("root_chown", 0o6777, true),
        ("root_truncate", 0o6777, false),
        // Owned by the user, group 0: the user's chgrp clears setgid.
        ("user_chgrp", 0o2764, false),
    ];
    for (name, mode, cap) in files {
        write(s.lower(0).join(name), b"data");
        fs::set_permissions(s.lower(0).join(name), fs::Permissions::from_mode(mode)).unwrap();
        if cap {
            rustix::fs::setxattr(
                s.lower(0).join(name),
                "security.capability",
                &FILE_CAP,
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }
    }
    std::os::unix::fs::chown(s.lower(0).join("user_chgrp"), Some(65534), Some(0)).unwrap();
    fs::set_permissions(s.lower(0).join("user_chgrp"), fs::Permissions::from_mode(0o2764)).unwrap();
    let run = |root: &Path| -> Vec<(String, u32, bool)> {
        // Stat everything first: cached attributes must not hide the changes.
        let before: Vec<u32> = files.iter().map(|(n, _, _)| fs::metadata(root.join(n)).unwrap().mode()).collect();
        assert!(before.iter().all(|m| m & 0o6000 != 0));
        sh_in(
            root,
            "cd \"$1\" && printf x >> user_append && printf x >> user_append_sgid_nogx && truncate -s 1 user_truncate \
             && printf x >> user_append_caps && printf x >> user_again && chgrp 65534 user_chgrp",
            false,
        );
        sh_in(
            root,
            "cd \"$1\" && printf x >> root_append && printf x >> root_append_caps && chown 1:1 root_chown \
             && truncate -s 1 root_truncate && chmod 6777 user_again",
            true,
        );
        // Set again through the mount (the kernel forgets what it knew), cleared again.
        sh_in(root, "cd \"$1\" && printf y >> user_again", false);
        files
            .iter()
            .map(|(n, _, _)| (n.to_string(), fs::metadata(root.join(n)).unwrap().mode(), has_file_cap(&root.join(n))))
            .collect()
    };
    let expected = {
        let k = s.mount_kernel("kupper", "kwork", "kmnt");
        run(&k.path)
    };
    // What the kernel does (checked here so a change of the kernel shows as such).
    assert_eq!(expected[0].1 & 0o7777, 0o777, "{expected:?}");
    assert_eq!(expected[1].1 & 0o7777, 0o767, "{expected:?}");
    assert_eq!(expected[5].1 & 0o7777, 0o6777, "{expected:?}");
    assert_eq!(expected[9].1 & 0o7777, 0o764, "{expected:?}");
    assert!(!expected[6].2 && !expected[3].2, "{expected:?}");
    for passthrough in [true, false] {
        let _ = fs::remove_dir_all(s.p("upper"));
        let _ = fs::remove_dir_all(s.p("work"));
        fs::create_dir(s.p("upper")).unwrap();
        fs::create_dir(s.p("work")).unwrap();
        let env: &[(&str, &str)] = if passthrough { &[] } else { &[("STRATA_NO_PASSTHROUGH", "1")] };
        let m = s.mount_opts_env(&s.opts(), env);
        assert_eq!(run(&m.path), expected, "passthrough {passthrough}");
    }
}

#[test]
fn cached_names_and_attributes_follow_every_change() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    let l = s.lower(0);
    write(l.join("h1"), b"hard");
    fs::hard_link(l.join("h1"), l.join("h2")).unwrap();
    write(l.join("f"), b"lower file");
    write(l.join("g"), b"g");
    fs::create_dir_all(l.join("d/sub")).unwrap();
    write(l.join("d/sub/x"), b"x");
    fs::create_dir(l.join("big")).unwrap();
    for i in 0..2000 {
        write(l.join(format!("big/entry-with-a-longish-name-{i:05}")), b"");
    }
    let m = s.mount();
    let md = |p: &str| fs::symlink_metadata(m.p(p)).unwrap();
    let names = |p: &str| {
        let mut v: Vec<String> =
            fs::read_dir(m.p(p)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    // Everything is looked at once, so the kernel caches it.
    for p in ["h1", "h2", "f", "g", "d", "d/sub", "d/sub/x"] {
        md(p);
    }
    assert_eq!(names("big").len(), 2000);
    assert!(fs::symlink_metadata(m.p("new")).is_err());

    // A lower hard link changed through one name: the other shows it at once.
    fs::OpenOptions::new().append(true).open(m.p("h1")).unwrap().write_all(b"-more").unwrap();
    assert_eq!(md("h2").len(), 9);
    assert_eq!(read(m.p("h2")), b"hard-more");
    fs::set_permissions(m.p("h2"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(md("h1").mode() & 0o7777, 0o600);
    fs::remove_file(m.p("h1")).unwrap();
    assert_eq!(md("h2").nlink(), 1);

    // Upper hard links.
    write(m.p("u1"), b"u");
    fs::hard_link(m.p("u1"), m.p("u2")).unwrap();
    assert_eq!(md("u1").nlink(), 2);
    fs::OpenOptions::new().append(true).open(m.p("u2")).unwrap().write_all(b"uu").unwrap();
    assert_eq!(md("u1").len(), 3);
    fs::remove_file(m.p("u2")).unwrap();
    assert_eq!(md("u1").nlink(), 1);

    // A copy-up by an open for writing (its reply carries no attributes):
    // the file now has the upper copy's ctime and blocks, its parent a new ctime.
    md("");
    drop(fs::OpenOptions::new().write(true).open(m.p("f")).unwrap());
    let ctime = |m: fs::Metadata| (m.ctime(), m.ctime_nsec());
    assert_eq!(ctime(md("f")), ctime(fs::symlink_metadata(s.p("upper/f")).unwrap()), "ctime after copy-up");
    assert_eq!(ctime(md("")), ctime(fs::symlink_metadata(s.p("upper")).unwrap()), "parent's ctime after copy-up");

    // A directory copied up as a side effect (a create two levels down): a
    // merged directory has one link, as the kernel's overlay says.
    assert_eq!(md("d").nlink(), 3);
    write(m.p("d/sub/y"), b"y");
    assert_eq!(md("d").nlink(), 1);
    assert_eq!(md("d/sub").nlink(), 1);

    // Rename: the old name is gone at once, the new one is there.
    fs::rename(m.p("g"), m.p("g2")).unwrap();
    assert_eq!(fs::symlink_metadata(m.p("g")).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    assert_eq!(read(m.p("g2")), b"g");
    // A cached miss becomes a name.
    fs::hard_link(m.p("g2"), m.p("new")).unwrap();
    assert_eq!(read(m.p("new")), b"g");
    assert_eq!(md("g2").nlink(), 2);

    // Listings (cached by the kernel) follow creates, unlinks, renames.
    write(m.p("big/added"), b"");
    fs::remove_file(m.p("big/entry-with-a-longish-name-00007")).unwrap();
    fs::rename(m.p("g2"), m.p("big/moved")).unwrap();
    let listed = names("big");
    assert_eq!(listed.len(), 2001);
    assert!(listed.contains(&"added".to_string()) && listed.contains(&"moved".to_string()));
    assert!(!listed.contains(&"entry-with-a-longish-name-00007".to_string()));
    assert_eq!(names("big"), listed, "a second pass lists the same");
    // Two readers at once.
    let both = std::thread::scope(|sc| {
        let a = sc.spawn(|| names("big"));
        let b = sc.spawn(|| names("big"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(both, (listed.clone(), listed));

    // Symlinks (their targets are cached): a new link under an old name.
    std::os::unix::fs::symlink("one", m.p("sym")).unwrap();
    assert_eq!(fs::read_link(m.p("sym")).unwrap(), Path::new("one"));
    fs::remove_file(m.p("sym")).unwrap();
    std::os::unix::fs::symlink("two", m.p("sym")).unwrap();
    assert_eq!(fs::read_link(m.p("sym")).unwrap(), Path::new("two"));
    std::os::unix::fs::symlink("three", m.p("sym3")).unwrap();
    fs::rename(m.p("sym3"), m.p("sym")).unwrap();
    assert_eq!(fs::read_link(m.p("sym")).unwrap(), Path::new("three"));
}

#[test]
fn a_listing_read_on_after_changes_by_another_reader_misses_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_mount() {
        return;
    }
    let s = Stack::new(1);
    fs::create_dir(s.lower(0).join("d")).unwrap();
    let all: Vec<String> = (0..400).map(|i| format!("a-name-long-enough-to-need-several-reads-{i:04}")).collect();
    for n in &all {
        write(s.lower(0).join("d").join(n), b"");
    }
    let m = s.mount();
    let dir = rustix::fs::open(m.p("d"), rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY, 0.into()).unwrap();
    let mut buf = vec![std::mem::MaybeUninit::new(0u8); 1024];
    let mut raw = rustix::fs::RawDir::new(&dir, &mut buf);
    let mut seen = Vec::new();
    // The first few names, then another reader removes them and lists the
    // directory from the start, then the first reader goes on.
    while seen.len() < 30 {
        let e = raw.next().unwrap().unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            seen.push(name);
        }
    }
    for n in &seen[..20] {
        fs::remove_file(m.p("d").join(n)).unwrap();
    }
    assert_eq!(fs::read_dir(m.p("d")).unwrap().count(), 380);
    while let Some(e) = raw.next() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            seen.push(name);
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no entry twice");
    assert_eq!(sorted, all, "every entry once (the removed ones were seen before they went)");
}
