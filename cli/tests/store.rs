//! The store under real use by many `strata` processes at once: readers
//! that never wait for a writer, deletions on a full disk, a read-only
//! store, interrupted and killed writers, `system check` and `system
//! prune`, and a stress run of random concurrent commands. Everything is
//! the real binary on a real store (real FUSE mounts for containers).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

#[path = "../../store/tests/support/distribution.rs"]
mod distribution;
mod support;

const BUSYBOX: &str = "ia/busybox:1.35";
const LAYERED: &str = "ia/layered:1";

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/images").join(rel)
}

/// A store of its own under `/var/tmp` (or at a given root).
struct Env {
    dir: tempfile::TempDir,
    root: PathBuf,
    /// `--store-ro` given to every command.
    store_ro: Option<PathBuf>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("strata-store-test-").tempdir_in("/var/tmp").unwrap();
        let root = dir.path().join("root");
        Env { dir, root, store_ro: None }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(&self.root);
        if let Some(ro) = &self.store_ro {
            c.arg("--store-ro").arg(ro);
        }
        c.args(args).stdin(Stdio::null());
        c
    }

    /// Run with a deadline: a command that waits on another fails the test
    /// instead of hanging it.
    fn run(&self, args: &[&str]) -> Output {
        finish(self.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "strata {args:?}: {}{}", text(&o.stdout), text(&o.stderr));
        text(&o.stdout)
    }

    fn load(&self, rel: &str) {
        self.ok(&["load", "-i", testdata(rel).to_str().unwrap()]);
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Entries of a directory under the store whose names start with `prefix`.
    fn leftovers(&self, rel: &str, prefix: &str) -> Vec<String> {
        names(&self.root.join(rel)).into_iter().filter(|n| n.starts_with(prefix)).collect()
    }

    fn remove_containers(&self) {
        if let Ok(o) = self.cmd(&["ps", "-aq"]).output() {
            for id in text(&o.stdout).lines() {
                let _ = self.cmd(&["rm", "-f", id]).output();
            }
        }
    }

    fn check_clean(&self) {
        let o = self.run(&["system", "check"]);
        assert!(o.status.success(), "system check: {}{}", text(&o.stdout), text(&o.stderr));
        assert_eq!(text(&o.stdout), "No problems found\n");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.remove_containers();
        if let Ok(m) = fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.path().to_string_lossy().to_string();
            let mut points: Vec<&str> =
                m.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&root)).collect();
            points.reverse();
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Wait for `child` at most 60 s.
fn finish(child: Child, what: &[&str]) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("strata {what:?} did not finish within 60 s (waiting on another command?)");
        }
    }
}

fn signal(child: &Child, sig: Signal) {
    kill_process(Pid::from_child(child), sig).unwrap();
}

/// Wait until `cond` holds (at most 30 s), while `child` runs.
fn wait_for(child: &mut Child, what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(child.try_wait().unwrap().is_none(), "the command ended before {what}");
        assert!(t.elapsed() < Duration::from_secs(30), "no {what} within 30 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// A `load -i FIFO` that has read half of `archive` and waits for the rest.
struct StalledLoad {
    child: Child,
    writer: fs::File,
    rest: Vec<u8>,
}

impl StalledLoad {
    fn start(e: &Env, archive: &Path) -> StalledLoad {
        let fifo = e.path(&format!("in-{}.fifo", std::process::id() ^ rand_u32()));
        mkfifo(&fifo);
        let child = e
            .cmd(&["load", "-i", fifo.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut writer = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let bytes = fs::read(archive).unwrap();
        let half = bytes.len() / 2;
        writer.write_all(&bytes[..half]).unwrap();
        StalledLoad { child, writer, rest: bytes[half..].to_vec() }
    }

    fn finish(mut self) -> Output {
        self.writer.write_all(&self.rest).unwrap();
        drop(self.writer);
        finish(self.child, &["load"])
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).unwrap();
    u32::from_le_bytes(b)
}

/// Readers and short writers never wait for a writer: with a load stalled
/// half-way through its input, every other command completes (each under a
/// deadline), the half-loaded image is not listed, and the load then
/// finishes normally.
#[test]
fn commands_do_not_wait_for_a_stalled_load() {
    let e = Env::new();
    e.load("min/ia-busybox.min.tar");
    let mut load = StalledLoad::start(&e, &testdata("min/ia-layered.min.tar"));
    let saved = e.path("busybox.tar");
    for args in [
        &["images"][..],
        &["inspect", BUSYBOX],
        &["history", BUSYBOX],
        &["ps", "-a"],
        &["system", "df"],
        &["save", "-o", saved.to_str().unwrap(), BUSYBOX],
        &["tag", BUSYBOX, "other:1"],
        &["create", "--name", "c1", BUSYBOX],
        &["diff", "c1"],
        &["rm", "c1"],
        &["rmi", "other:1"],
    ] {
        e.ok(args);
        assert!(load.child.try_wait().unwrap().is_none(), "the load ended early");
    }
    assert!(!e.ok(&["images"]).contains("ia/layered"), "a half-loaded image is listed");
    // A second store reads the saved archive meanwhile.
    let other = Env::new();
    other.ok(&["load", "-i", saved.to_str().unwrap()]);
    let o = load.finish();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Loaded image: ia/layered:1\n");
    assert!(e.ok(&["images"]).contains("ia/layered"));
    e.check_clean();
    load = StalledLoad::start(&e, &testdata("min/ia-layered.min.tar"));
    // Two loads of the same image at once: both succeed, one copy is stored.
    let second = e.run(&["load", "-i", testdata("min/ia-layered.min.tar").to_str().unwrap()]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(load.finish().status.success());
    assert_eq!(names(&e.root.join("layers/sha256")).len(), 5, "layers stored once");
    e.check_clean();
}

/// Interrupts: SIGINT/SIGTERM/SIGHUP during load, save, import and export
/// remove the staging data and partial output and exit 128+signal; a
/// load killed with -9 leaves a scratch directory that the next command
/// of any kind (`images`) removes. `system check` is clean afterwards.
#[test]
fn interrupted_commands_leave_nothing_behind() {
    let e = Env::new();
    e.load("min/ia-busybox.min.tar");
    let scratch = || e.leftovers("tmp", "s-");

    // load -i FIFO, stalled: SIGINT → 130, scratch gone.
    let mut load = StalledLoad::start(&e, &testdata("min/ia-layered.min.tar"));
    wait_for(&mut load.child, "a scratch directory", || !scratch().is_empty());
    signal(&load.child, Signal::INT);
    let o = finish(load.child, &["load"]);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert_eq!(scratch(), Vec::<String>::new(), "scratch left by an interrupted load");

    // load from stdin (spooled first): SIGTERM → 143, spool file gone.
    let mut child =
        e.cmd(&["load"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&fs::read(testdata("min/ia-layered.min.tar")).unwrap()[..100_000]).unwrap();
    wait_for(&mut child, "a spool file", || !e.leftovers("", ".spool-").is_empty());
    signal(&child, Signal::TERM);
    let o = finish(child, &["load"]);
    assert_eq!(o.status.code(), Some(143), "{}", text(&o.stderr));
    assert_eq!(e.leftovers("", ".spool-"), Vec::<String>::new());
    drop(stdin);

    // kill -9: the scratch directory stays until any next command.
    let mut load = StalledLoad::start(&e, &testdata("min/ia-layered.min.tar"));
    wait_for(&mut load.child, "a scratch directory", || !scratch().is_empty());
    signal(&load.child, Signal::KILL);
    let _ = finish(load.child, &["load"]);
    assert!(!scratch().is_empty(), "kill -9 left no scratch (the test proves nothing)");
    e.ok(&["images"]);
    assert_eq!(scratch(), Vec::<String>::new(), "the next command did not sweep");

    // save -o, import and export -o of a big image, stopped while their
    // staging exists, then interrupted.
    let big = e.path("big.tar");
    support::big_archive(&big, 48 << 20, 1, "ia/big:1");
    e.ok(&["load", "-i", big.to_str().unwrap()]);
    let interrupted = |args: &[&str], appears: &dyn Fn() -> bool, sig: Signal, code: i32| {
        let mut child = e.cmd(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        wait_for(&mut child, "its staging", appears);
        signal(&child, Signal::STOP);
        signal(&child, sig);
        signal(&child, Signal::CONT);
        let o = finish(child, args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o.stderr));
    };
    let out = e.path("out");
    fs::create_dir_all(&out).unwrap();
    let saved = out.join("saved.tar");
    let hidden = || names(&out).into_iter().any(|n| n.starts_with(".strata-"));
    interrupted(&["save", "-o", saved.to_str().unwrap(), "ia/big:1"], &hidden, Signal::INT, 130);
    assert_eq!(names(&out), Vec::<String>::new(), "save left output behind");
    let driver_layers = names(&e.root.join("fuse-overlay"));
    interrupted(
        &["import", big.to_str().unwrap(), "ia/imported:1"],
        &|| !e.leftovers("layers", "tmp-").is_empty(),
        Signal::HUP,
        129,
    );
    assert_eq!(e.leftovers("layers", "tmp-"), Vec::<String>::new(), "import left a staging layer");
    assert_eq!(names(&e.root.join("fuse-overlay")), driver_layers, "import left a driver layer");
    e.ok(&["create", "--name", "bigc", "ia/big:1"]);
    let exported = out.join("c.tar");
    interrupted(&["export", "-o", exported.to_str().unwrap(), "bigc"], &hidden, Signal::TERM, 143);
    assert_eq!(names(&out), Vec::<String>::new(), "export left output behind");
    e.ok(&["rm", "bigc"]);
    e.check_clean();
    // Everything still works.
    e.ok(&["save", "-o", saved.to_str().unwrap(), "ia/big:1"]);
    e.ok(&["rmi", "ia/big:1"]);
    e.ok(&["load", "-i", saved.to_str().unwrap()]);
    e.check_clean();
}

/// A store that cannot be written serves every read command; each write
/// says why it cannot and changes nothing. Two forms: a read-only bind
/// mount of the store, and a user who may read but not write it.
#[test]
fn read_only_store_serves_reads() {
    let e = Env::new();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(e.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }
    e.load("min/ia-layered.min.tar");
    e.ok(&["create", "--name", "c1", LAYERED]);
    let ro = e.path("ro");
    fs::create_dir_all(&ro).unwrap();
    assert!(Command::new("mount").arg("--bind").arg(&e.root).arg(&ro).status().unwrap().success());
    assert!(Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&ro).status().unwrap().success());
    let ro_env = Env { dir: tempfile::tempdir().unwrap(), root: ro.clone(), store_ro: None };
    let saved = e.path("saved.tar");
    let reads: [&[&str]; 7] = [
        &["images"],
        &["inspect", "--format", "{{.Id}}", LAYERED],
        &["history", LAYERED],
        &["ps", "-a", "--format", "{{.Names}} {{.Image}}"],
        &["system", "df"],
        &["image", "inspect", "--format", "{{.RootFS.Layers}}", LAYERED],
        &["system", "check"],
    ];
    for args in reads {
        assert_eq!(ro_env.ok(args), e.ok(args), "{args:?} differs on the read-only store");
    }
    ro_env.ok(&["save", "-o", saved.to_str().unwrap(), LAYERED]);
    let before = e.ok(&["images", "--no-trunc"]);
    for args in [
        &["tag", LAYERED, "x:1"][..],
        &["rmi", LAYERED],
        &["load", "-i", saved.to_str().unwrap()],
        &["rm", "c1"],
        &["create", LAYERED],
    ] {
        let o = ro_env.run(args);
        assert!(!o.status.success(), "{args:?} succeeded on a read-only store");
        let err = text(&o.stderr);
        assert!(err.contains("cannot be written") || err.contains("Read-only file system"), "{args:?}: {err}");
    }
    assert_eq!(e.ok(&["images", "--no-trunc"]), before);
    let _ = Command::new("umount").arg(&ro).status();

    // A user who may not write the store (but may read it).
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(env!("CARGO_BIN_EXE_strata"));
    c.arg("--root").arg(&e.root);
    let as_nobody = |c: &mut Command, args: &[&str]| -> Output {
        let mut c2 = Command::new(c.get_program());
        c2.args(c.get_args()).args(args).stdin(Stdio::null());
        c2.output().unwrap()
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_strata"));
    let readable = exe.ancestors().all(|p| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).map(|m| m.permissions().mode() & 0o005 == 0o005).unwrap_or(false)
    });
    if !readable {
        eprintln!("SKIPPED the non-root part: the strata binary is not reachable by nobody");
        return;
    }
    let o = as_nobody(&mut c, &["images", "--format", "{{.Repository}}"]);
    assert_eq!(text(&o.stdout), "ia/layered\n", "{}", text(&o.stderr));
    let o = as_nobody(&mut c, &["tag", LAYERED, "y:1"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("cannot be written (Permission denied"), "{}", text(&o.stderr));
}

/// A read-only image store (`--store-ro`, podman's additional image
/// stores), itself on a read-only bind mount: its images are listed,
/// inspected, run, committed on and built from, and never changed; what is
/// made from them lives in the writable store and saves whole.
#[test]
fn read_only_image_store_is_used_never_changed() {
    let a = Env::new();
    a.load("min/ia-layered.min.tar");
    a.load("min/ia-busybox.min.tar");
    let ro = a.path("ro");
    fs::create_dir_all(&ro).unwrap();
    assert!(Command::new("mount").arg("--bind").arg(&a.root).arg(&ro).status().unwrap().success());
    assert!(Command::new("mount").args(["-o", "remount,bind,ro"]).arg(&ro).status().unwrap().success());
    let mut b = Env::new();
    b.store_ro = Some(ro.clone());
    let list = ["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"];
    assert_eq!(b.ok(&list), a.ok(&list));
    assert_eq!(b.ok(&["history", "-q", LAYERED]), a.ok(&["history", "-q", LAYERED]));
    assert_eq!(b.ok(&["run", "--rm", BUSYBOX, "sh", "-c", "echo hi > /x; cat /x"]), "hi\n");
    b.ok(&["create", "--name", "cr", LAYERED]);
    let merged = b.ok(&["mount", "cr"]);
    fs::write(Path::new(merged.trim()).join("new-file"), "new\n").unwrap();
    b.ok(&["umount", "cr"]);
    let id = b.ok(&["commit", "cr", "mine/layered:2"]).trim().to_string();
    let ctx = b.path("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), format!("FROM {BUSYBOX}\nRUN echo built > /built\n")).unwrap();
    b.ok(&["build", "-q", "-t", "mine/built:1", ctx.to_str().unwrap()]);
    assert_eq!(b.ok(&["run", "--rm", "mine/built:1", "cat", "/built"]), "built\n");
    // What is made on a read-only image saves whole and loads elsewhere.
    let saved = b.path("mine.tar");
    b.ok(&["save", "-o", saved.to_str().unwrap(), "mine/layered:2"]);
    let c = Env::new();
    c.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert_eq!(c.ok(&["images", "-q", "--no-trunc"]).trim(), id);
    // Its images are never changed: removal is refused with the reason;
    // a tag of one lives in the writable store and goes again.
    let o = b.run(&["rmi", LAYERED]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("read-only image store"), "{}", text(&o.stderr));
    b.ok(&["tag", LAYERED, "mine/alias:1"]);
    assert_eq!(b.ok(&["rmi", "mine/alias:1"]), "Untagged: mine/alias:1\n");
    b.ok(&["rm", "cr"]);
    b.ok(&["image", "prune", "-a", "-f"]);
    assert!(b.ok(&["images"]).contains("ia/layered"), "prune removed a read-only image");
    b.check_clean();
    let _ = Command::new("umount").arg(&ro).status();
    a.check_clean();
}

/// A full disk (the store on a small tmpfs, filled to the last byte):
/// unmount, rm, rmi -f, image/container/system prune all succeed and give
/// the space back; a load that runs out of space gives a clear error,
/// leaves no partial image and returns the space at once.
#[test]
fn deletions_work_on_a_full_disk() {
    let e = Env::new();
    let mnt = e.dir.path().join("root");
    fs::create_dir_all(&mnt).unwrap();
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=40m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success());
    let free = || rustix::fs::statvfs(&mnt).map(|s| s.f_bavail * s.f_frsize).unwrap();
    e.load("min/ia-layered.min.tar");
    e.ok(&["tag", LAYERED, "second:1"]);
    e.ok(&["create", "--name", "stopped", LAYERED]);
    e.ok(&["create", "--name", "mounted", LAYERED]);
    let merged = e.ok(&["mount", "mounted"]);
    let empty = free();
    // Fill the disk through the container's mount, then to the last byte.
    let mut f = fs::File::create(Path::new(merged.trim()).join("filler")).unwrap();
    let chunk = vec![7u8; 1 << 20];
    while f.write_all(&chunk).is_ok() {}
    drop(f);
    let mut f = fs::File::create(mnt.join("filler")).unwrap();
    while f.write_all(&[1u8; 4096]).is_ok() {}
    drop(f);
    assert!(free() < 4096, "the disk is not full: {} bytes free", free());
    let o = e.run(&["tag", LAYERED, "third:1"]);
    assert!(!o.status.success(), "tag on a full disk");
    assert!(text(&o.stderr).contains("No space left on device"), "{}", text(&o.stderr));
    e.ok(&["umount", "mounted"]);
    e.ok(&["rm", "mounted"]);
    assert!(free() > empty / 2, "rm gave no space back: {} of {empty}", free());
    fs::remove_file(mnt.join("filler")).unwrap();
    let mut f = fs::File::create(mnt.join("filler")).unwrap();
    while f.write_all(&[1u8; 4096]).is_ok() {}
    drop(f);
    e.ok(&["container", "prune", "-f"]);
    let o = e.run(&["rmi", "-f", "second:1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    e.ok(&["rmi", "-f", LAYERED]);
    assert_eq!(e.ok(&["images", "-q"]), "");
    e.ok(&["image", "prune", "-f"]);
    e.ok(&["system", "prune", "-f"]);
    e.check_clean();
    fs::remove_file(mnt.join("filler")).unwrap();

    // A load or an import that does not fit: a clear error, nothing
    // kept, the space back at once.
    let big = e.path("big.tar");
    support::big_archive(&big, 60 << 20, 2, "ia/big:1");
    let before = free();
    for args in [&["load", "-i", big.to_str().unwrap()][..], &["import", big.to_str().unwrap(), "ia/imported:1"]] {
        let o = e.run(args);
        assert!(!o.status.success(), "{args:?}: 60 MB fit in 40 MB");
        assert!(text(&o.stderr).contains("No space left on device"), "{args:?}: {}", text(&o.stderr));
        assert_eq!(e.ok(&["images", "-q"]), "");
        assert!(free() + (64 << 10) >= before, "{args:?}: the space did not come back: {before} -> {}", free());
        assert_eq!(e.leftovers("layers", "tmp-"), Vec::<String>::new());
        e.check_clean();
    }
    // A commit that does not fit: the same, and the container keeps its changes.
    e.load("min/ia-busybox.min.tar");
    e.ok(&["create", "--name", "writer", BUSYBOX]);
    let merged = e.ok(&["mount", "writer"]);
    fs::write(Path::new(merged.trim()).join("big"), support::noise(3, 24 << 20)).unwrap();
    e.ok(&["umount", "writer"]);
    let before = free();
    let o = e.run(&["commit", "writer", "ia/committed:1"]);
    assert!(!o.status.success(), "a 24 MB commit fit in {before} bytes");
    assert!(text(&o.stderr).contains("No space left on device"), "{}", text(&o.stderr));
    assert!(!e.ok(&["images"]).contains("committed"));
    assert!(free() + (64 << 10) >= before, "commit: the space did not come back: {before} -> {}", free());
    assert!(e.ok(&["diff", "writer"]).contains("A /big"));
    e.ok(&["rm", "writer"]);
    e.check_clean();
    e.ok(&["run", "--rm", BUSYBOX, "true"]);
}

/// `system check` finds damage and orphans; `--repair` removes them and
/// the store is clean and usable afterwards.
#[test]
fn system_check_finds_and_repairs() {
    let e = Env::new();
    e.load("min/ia-layered.min.tar");
    e.load("min/ia-busybox.min.tar");
    e.check_clean();
    // A reference to an image that is not there, a config blob of no
    // image, a driver layer nothing refers to, and a damaged layer.
    let repos = e.root.join("repositories.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&repos).unwrap()).unwrap();
    let ghost = format!("sha256:{}", "0".repeat(64));
    v["Repositories"]["ghost"] = serde_json::json!({ "ghost:1": ghost });
    fs::write(&repos, serde_json::to_vec(&v).unwrap()).unwrap();
    fs::write(e.root.join("blobs/sha256").join("1".repeat(64)), b"{}").unwrap();
    let chain = "e96a32462986c6adb6d065f9d13fdbc1f17c7e364dc3245ed0383bbab2b15c77";
    let cache_id = fs::read_to_string(e.root.join("layers/sha256").join(chain).join("cache-id")).unwrap();
    let driver_dir = e.root.join("fuse-overlay");
    let orphan = driver_dir.join("orphan0123");
    fs::create_dir_all(orphan.join("diff")).unwrap();
    fs::copy(driver_dir.join(cache_id.trim()).join("parent"), orphan.join("parent")).unwrap();
    let diff = driver_dir.join(cache_id.trim()).join("diff");
    let victim = walk_files(&diff).into_iter().next().expect("the layer has a file");
    fs::write(&victim, b"tampered").unwrap();

    let o = e.run(&["system", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    let out = text(&o.stdout);
    for want in [
        "reference ghost:1: points to image".to_string(),
        format!("blob sha256:{}: belongs to no image", "1".repeat(64)),
        "driver layer orphan0123: nothing refers to it".to_string(),
        format!("layer sha256:{chain}: content does not match"),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    let o = e.run(&["system", "check", "--repair"]);
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    e.check_clean();
    // The damaged layer took ia/layered with it; busybox is whole.
    assert_eq!(e.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]), "ia/busybox:1.35\nia/busybox:latest\n");
    e.ok(&["run", "--rm", BUSYBOX, "true"]);
    e.load("min/ia-layered.min.tar");
    e.check_clean();
}

fn walk_files(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap().flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk_files(&e.path()));
        } else if t.is_file() && e.metadata().unwrap().len() > 0 {
            out.push(e.path());
        }
    }
    out.sort();
    out
}

/// `system prune`: stopped containers, dangling images and the build
/// cache go (and with `-a`, unused images; with `--volumes`, unused
/// volumes), in Docker's sections; what is in use stays.
#[test]
fn system_prune_removes_what_is_unused() {
    let e = Env::new();
    e.load("min/ia-layered.min.tar");
    e.load("min/ia-busybox.min.tar");
    let stopped = e.ok(&["create", "--name", "stopped", BUSYBOX]).trim().to_string();
    e.ok(&["run", "-d", "--name", "running", BUSYBOX, "sleep", "60"]);
    e.ok(&["volume", "create", "unused"]);
    let out = e.ok(&["system", "prune", "-f"]);
    assert_eq!(out, format!("Deleted Containers:\n{stopped}\n\nTotal reclaimed space: 0B\n"));
    let out = e.ok(&["system", "prune", "-f", "-a", "--volumes"]);
    assert!(out.starts_with("Deleted Volumes:\nunused\n\nDeleted Images:\nuntagged: ia/layered:1\n"), "{out}");
    assert!(
        out.contains("\ndeleted: sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95\n"),
        "{out}"
    );
    assert_eq!(
        e.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "ia/busybox:1.35\nia/busybox:latest\n",
        "the running container's image stays"
    );
    e.ok(&["rm", "-f", "running"]);
    e.check_clean();
}

/// Several processes doing random loads, saves, tags, removals, creates,
/// commits, prunes, pulls and pushes (a real `docker-registry`) against
/// one store for a bounded time: afterwards
/// `system check` is clean, every image saves and loads elsewhere with its
/// ID, and nothing is left mounted.
#[test]
fn concurrent_commands_keep_the_store_consistent() {
    let e = Env::new();
    e.load("min/ia-busybox.min.tar");
    let reg = distribution::Registry::start(None);
    let remote = format!("{}/ia/busybox:1.35", reg.host);
    e.ok(&["tag", BUSYBOX, &remote]);
    e.ok(&["push", &remote]);
    let deadline = Instant::now() + Duration::from_secs(25);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let root = e.root.clone();
            let dir = e.dir.path().to_path_buf();
            let remote = remote.clone();
            std::thread::spawn(move || {
                let strata = |args: &[&str]| -> Output {
                    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
                    c.arg("--root").arg(&root).args(args).stdin(Stdio::null());
                    finish(c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap(), args)
                };
                let mut seed = 0x9e37_79b9_u64 ^ (w as u64 * 7919);
                let mut ops = 0u32;
                let mut refused = 0u32;
                let mut failures = Vec::new();
                while Instant::now() < deadline {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let name = format!("w{w}-{}", seed % 3);
                    let saved = dir.join(format!("w{w}.tar"));
                    let o = match seed % 11 {
                        0 => strata(&["load", "-i", testdata("min/ia-layered.min.tar").to_str().unwrap()]),
                        1 => strata(&["tag", BUSYBOX, &format!("{name}:t")]),
                        2 => strata(&["rmi", "-f", &format!("{name}:t")]),
                        3 => strata(&["images"]),
                        4 => strata(&["create", "--name", &name, BUSYBOX]),
                        5 => strata(&["commit", &name, &format!("{name}:c")]),
                        6 => strata(&["rm", "-f", &name]),
                        7 => strata(&["save", "-o", saved.to_str().unwrap(), BUSYBOX]),
                        8 => strata(&["pull", &remote]),
                        9 => strata(&["push", &remote]),
                        _ => strata(&["image", "prune", "-f"]),
                    };
                    ops += 1;
                    let err = text(&o.stderr);
                    // Expected refusals of a racing workload (the name is
                    // taken, gone, or in use), not failures of the store.
                    let expected = [
                        "No such",
                        "already in use",
                        "conflict",
                        "Conflict",
                        "reference does not exist",
                        "does not exist locally",
                    ];
                    if !o.status.success() {
                        if expected.iter().any(|x| err.contains(x)) {
                            refused += 1;
                        } else {
                            failures.push(format!("{:?}: {err}", seed % 11));
                        }
                    }
                }
                (ops, refused, failures)
            })
        })
        .collect();
    let (mut total, mut refusals) = (0, 0);
    for w in workers {
        let (ops, refused, failures) = w.join().unwrap();
        assert!(failures.is_empty(), "unexpected failures: {failures:#?}");
        total += ops;
        refusals += refused;
    }
    eprintln!("stress: {total} commands by 4 processes in 25 s, {refusals} of them refused as expected");
    e.remove_containers();
    e.check_clean();
    let other = Env::new();
    for line in e.ok(&["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]).lines() {
        let (id, name) = line.split_once(' ').unwrap();
        let target = if name.contains("<none>") { id } else { name };
        let saved = e.path("check.tar");
        e.ok(&["save", "-o", saved.to_str().unwrap(), target]);
        other.ok(&["load", "-i", saved.to_str().unwrap()]);
        assert!(other.ok(&["images", "-q", "--no-trunc"]).contains(id), "{name} loads with another ID");
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(e.root.to_str().unwrap()), "something is still mounted");
}
