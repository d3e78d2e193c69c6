//! strata for an unprivileged user (the first part of issue 15): the test
//! (root) makes users with and without subordinate ID ranges and runs the
//! real binary as them through `setpriv`. The user's commands run in a user
//! and mount namespace kept alive by a pause process; layers keep their
//! owners (compared with a root store's export), images made rootless load
//! into a root store with the same IDs, and containers run through runc
//! in that namespace. The vfs driver only: the overlay drivers keep their
//! metadata in trusted.* xattrs, which a user namespace cannot write.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sh(args: &[&str]) -> Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The tests edit /etc/passwd, /etc/subuid and /etc/subgid: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A user made for the test (removed with its files and ID ranges when
/// dropped), and a directory it can use, holding a copy of the binary.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl User {
    fn new(name: &str, subids: bool) -> User {
        let _ = sh(&["userdel", "-r", name]);
        let o = sh(&["useradd", "-m", "-s", "/bin/sh", name]);
        assert!(o.status.success(), "useradd: {}", text(&o.stderr));
        for file in ["/etc/subuid", "/etc/subgid"] {
            let keep: Vec<String> = fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.starts_with(&format!("{name}:")))
                .map(str::to_string)
                .collect();
            let mut all = keep.join("\n");
            if !all.is_empty() {
                all.push('\n');
            }
            if subids {
                all.push_str(&format!("{name}:400000:65536\n"));
            }
            fs::write(file, all).unwrap();
        }
        let id = |flag: &str| text(&sh(&["id", flag, name]).stdout).trim().parse::<u32>().unwrap();
        let dir = tempfile::Builder::new().prefix("strata-rootless-").tempdir_in("/var/tmp").unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("strata");
        fs::copy(env!("CARGO_BIN_EXE_strata"), &bin).unwrap();
        let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/images");
        fs::copy(images.join("min/ia-layered.min.tar"), dir.path().join("ia-layered.min.tar")).unwrap();
        let u = User { name: name.to_string(), uid: id("-u"), gid: id("-g"), dir, bin };
        // What an earlier user with the same uid may have left.
        let _ = fs::remove_dir_all(format!("/tmp/strata-{}", u.uid));
        fs::create_dir_all(u.data()).unwrap();
        assert!(sh(&["chown", "-R", &format!("{}:{}", u.uid, u.gid), u.data().to_str().unwrap()]).status.success());
        u
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The strata binary as this user, with a clean environment.
    fn cmd(&self, path: &str, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([format!("--reuid={}", self.uid), format!("--regid={}", self.gid), "--init-groups".into()]);
        c.arg("env").arg("-i");
        c.arg(format!("HOME=/home/{}", self.name)).arg(format!("PATH={path}"));
        c.arg(format!("XDG_DATA_HOME={}", self.data().display()));
        c.arg(&self.bin).args(args).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd("/usr/sbin:/usr/bin:/sbin:/bin", args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "as {}: strata {args:?}: {}{}", self.name, text(&o.stdout), text(&o.stderr));
        text(&o.stdout)
    }

    fn pause_pid(&self) -> Option<String> {
        fs::read_to_string(format!("/tmp/strata-{}/pause.pid", self.uid)).ok().map(|s| s.trim().to_string())
    }
}

impl Drop for User {
    fn drop(&mut self) {
        if let Some(pid) = self.pause_pid() {
            let _ = sh(&["kill", "-9", &pid]);
        }
        let _ = fs::remove_dir_all(format!("/tmp/strata-{}", self.uid));
        let _ = sh(&["userdel", "-r", &self.name]);
        for file in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(t) = fs::read_to_string(file) {
                let keep: String = t
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{}:", self.name)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = fs::write(file, keep);
            }
        }
    }
}

/// A root store (vfs) for comparison.
fn root_strata(root: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root)
        .args(["--storage-driver", "vfs"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "strata {args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

/// `tar tv` of an export: mode, numeric owner, name.
fn listing(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    let mut v: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!("{:o} {}:{} {}", h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap(), e.path().unwrap().display())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn an_unprivileged_user_loads_changes_commits_saves_and_runs() {
    if !is_root() {
        eprintln!("SKIPPED: the test makes users (needs root)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let u = User::new("strata-rl-test", true);
    let archive = u.dir.path().join("ia-layered.min.tar");
    let archive = archive.to_str().unwrap();
    assert_eq!(u.ok(&["load", "-i", archive]), "Loaded image: ia/layered:1\n");
    let pause = u.pause_pid().expect("a pause process is recorded");
    let info = u.ok(&["info"]);
    assert!(info.contains(" Rootless: true"), "{info}");
    assert!(info.contains(&format!("UID Mappings: 0->{} (1), 1->400000 (65536)", u.uid)), "{info}");
    assert!(info.contains(" Storage Driver: vfs"), "{info}");
    let root = u.dir.path().join("root-store");
    root_strata(&root, &["load", "-i", archive]);
    let ids = ["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"];
    assert_eq!(u.ok(&ids), root_strata(&root, &ids));

    // Owners kept (mapped): the export lists what a root store's does.
    u.ok(&["create", "--name", "c1", "ia/layered:1"]);
    root_strata(&root, &["create", "--name", "c1", "ia/layered:1"]);
    let mine = u.run(&["export", "c1"]);
    assert!(mine.status.success(), "{}", text(&mine.stderr));
    let theirs =
        Command::new(env!("CARGO_BIN_EXE_strata")).arg("--root").arg(&root).args(["export", "c1"]).output().unwrap();
    let (mine, theirs) = (listing(&mine.stdout), listing(&theirs.stdout));
    assert!(mine.iter().any(|l| l.contains(" 1000:1000 ")), "no file owned by 1000 in the image?");
    assert_eq!(mine, theirs);

    // Change, diff, commit, save: the image loads into the root store with its ID.
    let path = u.ok(&["mount", "c1"]).trim().to_string();
    u.ok(&["unshare", "sh", "-c", &format!("echo hi > {path}/newfile && chown 1000:1000 {path}/newfile")]);
    assert!(u.ok(&["diff", "c1"]).contains("A /newfile"));
    let id = u.ok(&["commit", "c1", "rl/committed:1"]).trim().to_string();
    let saved = u.run(&["save", "rl/committed:1"]);
    assert!(saved.status.success(), "{}", text(&saved.stderr));
    let file = u.dir.path().join("saved.tar");
    fs::write(&file, &saved.stdout).unwrap();
    root_strata(&root, &["load", "-i", file.to_str().unwrap()]);
    assert!(root_strata(&root, &["images", "-q", "--no-trunc"]).contains(&id));

    // A container runs in the user's namespace, as root there.
    let out =
        u.ok(&["run", "--rm", "ia/layered:1", "id -u; cat /proc/self/uid_map | head -1; cat /newfile 2>&1 | head -1"]);
    let first: Vec<&str> = out.lines().collect();
    assert_eq!(first[0], "0", "{out}");
    assert_eq!(first[1].split_whitespace().collect::<Vec<_>>(), ["0", &u.uid.to_string(), "1"], "{out}");
    assert_eq!(u.ok(&["run", "--rm", "rl/committed:1", "cat /newfile"]), "hi\n");

    // A build (its RUN steps are rootless containers too), owners kept.
    let ctx = u.dir.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM ia/layered:1\nRUN echo built > /built && chown 1000:1000 /built\n")
        .unwrap();
    assert!(sh(&["chown", "-R", &format!("{}:{}", u.uid, u.gid), ctx.to_str().unwrap()]).status.success());
    // A relative context: the working directory survives entering the namespace.
    let o = u
        .cmd("/usr/sbin:/usr/bin:/sbin:/bin", &["build", "-q", "-t", "rl/built:1", "ctx"])
        .current_dir(u.dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "build with a relative context: {}", text(&o.stderr));
    assert_eq!(u.ok(&["run", "--rm", "rl/built:1", "stat -c '%u:%g' /built; cat /built"]), "1000:1000\nbuilt\n");

    // -p: the forwarder needs no privileges for a port above 1024.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    u.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{port}:8080"),
        "ia/layered:1",
        "printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhi' | nc -l -p 8080",
    ]);
    let mut got = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let _ = s.read_to_string(&mut got);
            if got.ends_with("hi") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(got.ends_with("hi"), "no answer through -p: {got:?}");
    u.ok(&["rm", "-f", "web"]);

    // One namespace for all the commands.
    assert_eq!(u.pause_pid().as_deref(), Some(pause.as_str()), "the pause process changed");
    let o = u.run(&["--storage-driver", "fuse-overlay", "images"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("does not work rootless yet"), "{}", text(&o.stderr));
}

#[test]
fn missing_prerequisites_each_say_what_to_do() {
    if !is_root() {
        eprintln!("SKIPPED: the test makes users (needs root)");
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let u = User::new("strata-rl-nosub", false);
    let o = u.run(&["images"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("has none: add the line `strata-rl-nosub:100000:65536` to /etc/subuid"), "{err}");
    assert!(u.pause_pid().is_none(), "a pause process was recorded");
    assert_eq!(fs::read_dir(u.data()).unwrap().count(), 0, "the store was touched");

    // No newuidmap on the PATH (only unshare).
    let bin = u.dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/bin/unshare", bin.join("unshare")).unwrap();
    let o = u.cmd(bin.to_str().unwrap(), &["images"]).output().unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o.stderr).contains("newuidmap, which is not installed: apt-get install uidmap"),
        "{}",
        text(&o.stderr)
    );
}
