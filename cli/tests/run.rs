//! `strata run` and the container lifecycle, end to end: real containers
//! through runc on strata-overlayfs mounts, compared with Docker itself (a
//! private dockerd running the same busybox image with `--network none`).

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{busybox_tar, run_with, Dockerd};

struct Strata {
    dir: tempfile::TempDir,
}

impl Strata {
    fn new() -> Strata {
        let dir = tempfile::Builder::new().prefix("strata-run-test-").tempdir_in("/var/tmp").unwrap();
        Strata { dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(self.dir.path().join("root")).args(args);
        c
    }

    fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_with(self.cmd(args), stdin)
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run_with(args, None);
        assert!(
            o.status.success(),
            "strata {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn busybox(&self) {
        let tar = busybox_tar(self.dir.path());
        self.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    }

    fn mounts_under_store(&self) -> Vec<String> {
        let root = self.dir.path().join("root").to_string_lossy().to_string();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&root))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        // Stop whatever a failed test left running, then unmount.
        let _ = self.cmd(&["rm", "-f"]).args(self.ok_ids()).stdout(Stdio::null()).stderr(Stdio::null()).status();
        for p in self.mounts_under_store() {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
    }
}

impl Strata {
    fn ok_ids(&self) -> Vec<String> {
        self.cmd(&["ps", "-aq", "--no-trunc"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A store with the busybox image (None, with a note, when not root:
/// containers need root here).
fn busybox_store() -> Option<Strata> {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return None;
    }
    let s = Strata::new();
    s.busybox();
    Some(s)
}

/// The first line of stderr without the program's own prefix, and with
/// the containerd layer of Docker's message (which strata does not have)
/// taken out.
fn first_error(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr);
    let line = e.lines().next().unwrap_or_default();
    let line = line.strip_prefix("docker: ").or_else(|| line.strip_prefix("strata: ")).unwrap_or(line);
    line.replace("failed to create shim task: ", "")
}

/// One differential case: flags before the image, the command, stdin.
struct Case {
    flags: &'static [&'static str],
    cmd: &'static [&'static str],
    stdin: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case { flags: &[], cmd: &["id"], stdin: None },
    Case { flags: &[], cmd: &["pwd"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "env | grep -v ^HOSTNAME= | sort"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "hostname | grep -cE '^[0-9a-f]{12}$'; [ \"$(hostname)\" = \"$HOSTNAME\" ] && cat /etc/hostname | grep -c \"$HOSTNAME\""], stdin: None },
    Case { flags: &[], cmd: &["cat", "/etc/hosts"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "ulimit -n; ulimit -u; ulimit -c"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "mount | grep -v ' on / ' | grep -v ' on /etc/' | awk '{print $1, $3, $5, $6}'"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "ls /proc/acpi /sys/firmware | wc -l; cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/ostype"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "ip link 2>/dev/null | grep -c LOOPBACK,UP; ls /sys/class/net"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "ls -la /dev | awk '{print $1, $NF}' | sort"], stdin: None },
    Case { flags: &[], cmd: &["sh", "-c", "exit 3"], stdin: None },
    Case { flags: &[], cmd: &["nonexist"], stdin: None },
    Case { flags: &[], cmd: &["/etc"], stdin: None },
    Case { flags: &["-u", "nobody"], cmd: &["sh", "-c", "id; echo HOME=$HOME"], stdin: None },
    Case { flags: &["-u", "1234:5678"], cmd: &["sh", "-c", "id; echo HOME=$HOME"], stdin: None },
    Case { flags: &["-u", "nosuchuser"], cmd: &["true"], stdin: None },
    Case { flags: &["-w", "/nonexist/deep", "-e", "FOO=bar", "-e", "HOME=/h"], cmd: &["sh", "-c", "pwd; echo $FOO $HOME"], stdin: None },
    Case { flags: &["--entrypoint", "/bin/echo"], cmd: &["hello", "world"], stdin: None },
    Case { flags: &["-i"], cmd: &["sh", "-c", "cat; echo end"], stdin: Some("line one\nline two\n") },
    Case { flags: &[], cmd: &["sh", "-c", "cat; echo end"], stdin: Some("not forwarded\n") },
    Case { flags: &["--read-only"], cmd: &["touch", "/x"], stdin: None },
    Case { flags: &["--read-only", "--tmpfs", "/t"], cmd: &["sh", "-c", "touch /t/x && mount | grep ' /t ' | awk '{print $3, $5, $6}'"], stdin: None },
    Case { flags: &["--cap-drop", "ALL", "--cap-add", "CHOWN"], cmd: &["sh", "-c", "grep CapEff /proc/self/status"], stdin: None },
    Case { flags: &["--privileged"], cmd: &["sh", "-c", "grep -E 'CapEff|Seccomp:' /proc/self/status"], stdin: None },
    Case { flags: &["--security-opt", "no-new-privileges"], cmd: &["sh", "-c", "grep NoNewPrivs /proc/self/status"], stdin: None },
    Case { flags: &["--ulimit", "nofile=100:200"], cmd: &["sh", "-c", "ulimit -n; ulimit -Hn"], stdin: None },
    Case { flags: &["--hostname", "box1"], cmd: &["sh", "-c", "hostname; cat /etc/hostname"], stdin: None },
    Case { flags: &["--init"], cmd: &["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"], stdin: None },
    Case { flags: &["-t"], cmd: &["sh", "-c", "tty; echo tty-ok"], stdin: None },
];

/// The same `run --rm` through Docker and strata: stdout, the first error
/// line and the exit status agree.
#[test]
fn run_matches_docker() {
    let Some(s) = busybox_store() else { return };
    let d = Dockerd::start(&s.dir.path().join("dockerd"), "vfs");
    let tar = busybox_tar(s.dir.path());
    d.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    let mut failures = Vec::new();
    for c in CASES {
        let mut dargs = vec!["run", "--rm", "--network", "none"];
        dargs.extend(c.flags);
        dargs.push("busybox");
        dargs.extend(c.cmd);
        let want = d.run_with(&dargs, c.stdin);
        let mut sargs = vec!["run", "--rm"];
        sargs.extend(c.flags);
        sargs.push("busybox");
        sargs.extend(c.cmd);
        let got = s.run_with(&sargs, c.stdin);
        let (w, g) = (String::from_utf8_lossy(&want.stdout), String::from_utf8_lossy(&got.stdout));
        if w != g || want.status.code() != got.status.code() || first_error(&want) != first_error(&got) {
            failures.push(format!(
                "{:?} {:?}\n  docker ({:?}): {w:?} {:?}\n  strata ({:?}): {g:?} {:?}",
                c.flags,
                c.cmd,
                want.status.code(),
                first_error(&want),
                got.status.code(),
                first_error(&got)
            ));
        }
    }
    eprintln!("differential: {}/{} cases agree", CASES.len() - failures.len(), CASES.len());
    assert!(failures.is_empty(), "{} of {} differ:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    assert!(s.ok(&["ps", "-aq"]).is_empty(), "--rm left containers");
    assert!(s.mounts_under_store().is_empty(), "--rm left mounts: {:?}", s.mounts_under_store());
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `ps` says of a container, without its times: `Up`, `Exited (N)`, `Created`.
fn status_word(status: &str) -> String {
    if status.starts_with("Up") {
        return if status.ends_with("(Paused)") { "Up (Paused)".into() } else { "Up".into() };
    }
    match status.find(')') {
        Some(i) if status.starts_with("Exited") => status[..=i].to_string(),
        _ => status.to_string(),
    }
}

/// A detached lifecycle, step by step in both: logs, exec, stop with a TERM
/// trap (exit 0) and without one (killed after -t), kill (137), wait,
/// start -a re-running the command on the same layer, ps statuses, rm -f.
#[test]
fn lifecycle_matches_docker() {
    let Some(s) = busybox_store() else { return };
    let d = Dockerd::start(&s.dir.path().join("dockerd"), "vfs");
    let tar = busybox_tar(s.dir.path());
    d.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    type Tool<'a> = (&'a str, Box<dyn Fn(&[&str], Option<&str>) -> Output + 'a>);
    let tools: Vec<Tool> = vec![
        ("docker", Box::new(|a: &[&str], i: Option<&str>| d.run_with(a, i))),
        ("strata", Box::new(|a: &[&str], i: Option<&str>| s.run_with(a, i))),
    ];
    let mut transcripts = Vec::new();
    for (name, t) in &tools {
        let log = std::cell::RefCell::new(Vec::new());
        let step = |args: &[&str], stdin: Option<&str>| {
            let o = t(args, stdin);
            let shown: Vec<&str> = args.iter().copied().filter(|a| !matches!(*a, "--network" | "none")).collect();
            log.borrow_mut().push(format!(
                "$ {}\n{}[{}] {}",
                shown.join(" "),
                String::from_utf8_lossy(&o.stdout),
                o.status.code().unwrap_or(-1),
                first_error(&o)
            ));
            o
        };
        let net: &[&str] = if *name == "docker" { &["--network", "none"] } else { &[] };
        let mut run = vec!["run", "-d", "--name", "trapper"];
        run.extend(net);
        run.extend(["busybox", "sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo to-stderr >&2; sleep 0.2; echo started; while true; do sleep 0.05; done"]);
        let id = String::from_utf8(step(&run, None).stdout).unwrap();
        assert_eq!(id.trim().len(), 64, "{name}: run -d prints the ID");
        wait_until("started", || String::from_utf8_lossy(&t(&["logs", "trapper"], None).stdout).contains("started"));
        step(&["logs", "trapper"], None);
        step(&["logs", "--tail", "1", "trapper"], None);
        step(
            &[
                "exec",
                "-u",
                "nobody",
                "-w",
                "/tmp",
                "-e",
                "Z=1",
                "trapper",
                "sh",
                "-c",
                "pwd; id; echo Z=$Z; cat /proc/1/cmdline | head -c 5",
            ],
            None,
        );
        step(&["exec", "-i", "trapper", "cat"], Some("via exec stdin\n"));
        step(&["exec", "trapper", "sh", "-c", "exit 7"], None);
        step(&["exec", "trapper", "nonexist"], None);
        let ps = String::from_utf8(t(&["ps", "--format", "{{.Names}} {{.Status}}"], None).stdout).unwrap();
        log.borrow_mut().push(format!(
            "ps: {}",
            ps.lines().map(|l| status_word(l.split_once(' ').map_or(l, |x| x.1))).collect::<Vec<_>>().join(",")
        ));
        let t0 = Instant::now();
        step(&["stop", "trapper"], None);
        assert!(t0.elapsed() < Duration::from_secs(5), "{name}: a TERM trap that exits makes stop quick");
        step(&["wait", "trapper"], None);
        step(&["logs", "trapper"], None);
        step(&["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}", "trapper"], None);
        let ps = String::from_utf8(t(&["ps", "-a", "--format", "{{.Status}}"], None).stdout).unwrap();
        log.borrow_mut().push(format!("ps -a: {}", ps.lines().map(status_word).collect::<Vec<_>>().join(",")));
        // start -a runs the same command again on the same layer.
        let mut run = vec!["run", "--name", "again"];
        run.extend(net);
        run.extend(["busybox", "sh", "-c", "echo run >> /count; wc -l < /count"]);
        step(&run, None);
        step(&["start", "-a", "again"], None);
        step(&["start", "again"], None);
        step(&["wait", "again"], None);
        step(&["logs", "again"], None);
        // No trap: TERM is ignored by PID 1 (sh), so stop kills after -t.
        let mut run = vec!["run", "-d", "--name", "stubborn"];
        run.extend(net);
        run.extend(["busybox", "sh", "-c", "while true; do sleep 0.05; done"]);
        step(&run, None);
        step(&["stop", "-t", "1", "stubborn"], None);
        step(&["wait", "stubborn"], None);
        let mut run = vec!["run", "-d", "--name", "victim"];
        run.extend(net);
        run.extend(["busybox", "sleep", "100"]);
        step(&run, None);
        step(&["kill", "victim"], None);
        step(&["wait", "victim"], None);
        step(&["kill", "victim"], None);
        step(&["exec", "victim", "true"], None);
        let mut run = vec!["run", "-d", "--name", "running"];
        run.extend(net);
        run.extend(["busybox", "sleep", "100"]);
        step(&run, None);
        step(&["rm", "running"], None);
        step(&["rm", "-f", "running"], None);
        step(&["rm", "trapper", "again", "stubborn", "victim"], None);
        step(&["ps", "-aq"], None);
        transcripts.push(log.into_inner());
    }
    let (dl, sl) = (&transcripts[0], &transcripts[1]);
    let mut diffs = Vec::new();
    for (a, b) in dl.iter().zip(sl) {
        // IDs differ between the two; a line naming one is compared by shape.
        let norm = |s: &str| {
            s.split(|c: char| c.is_whitespace() || c == '"' || c == '.')
                .map(|w| {
                    if w.len() >= 12 && w.chars().all(|c| c.is_ascii_hexdigit()) {
                        "<id>".to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        if norm(a) != norm(b) {
            diffs.push(format!("docker: {a:?}\nstrata: {b:?}"));
        }
    }
    eprintln!("lifecycle: {}/{} steps agree", dl.len() - diffs.len(), dl.len());
    assert!(diffs.is_empty(), "{} steps differ:\n{}", diffs.len(), diffs.join("\n---\n"));
    assert!(s.mounts_under_store().is_empty(), "left mounts: {:?}", s.mounts_under_store());
}

/// The workflow Docker users learn first: run a command that changes
/// files, diff, commit, run the new image. The init layer's files never
/// show in diff, commit or export.
#[test]
fn run_diff_commit_run() {
    let Some(s) = busybox_store() else { return };
    s.ok(&[
        "run",
        "--name",
        "wk",
        "busybox",
        "sh",
        "-c",
        "echo hello > /greeting; rm /etc/group; mkdir -p /srv/app && echo x > /srv/app/f",
    ]);
    assert_eq!(s.ok(&["diff", "wk"]), "C /etc\nD /etc/group\nA /greeting\nA /srv\nA /srv/app\nA /srv/app/f\n");
    let id = s.ok(&["commit", "wk", "greeted:1"]);
    assert!(id.starts_with("sha256:"));
    // The new image's containers see the change (and their own init files).
    let base = s.ok(&["run", "--rm", "busybox", "ls", "/etc"]);
    let want =
        format!("hello\n{}", base.lines().filter(|l| *l != "group").map(|l| format!("{l}\n")).collect::<String>());
    assert_eq!(s.ok(&["run", "--rm", "greeted:1", "sh", "-c", "cat /greeting; ls /etc"]), want);
    let export = s.dir.path().join("w.tar");
    s.ok(&["export", "-o", export.to_str().unwrap(), "wk"]);
    let names = Command::new("tar").arg("tf").arg(&export).output().unwrap();
    let names = String::from_utf8(names.stdout).unwrap();
    assert!(names.lines().any(|l| l.trim_start_matches("./") == "greeting"), "{names}");
    for hidden in [".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab"] {
        assert!(!names.lines().any(|l| l.trim_start_matches("./") == hidden), "{hidden} leaked into export");
    }
    // The committed layer holds only the container's own changes.
    let save = s.dir.path().join("g.tar");
    s.ok(&["save", "-o", save.to_str().unwrap(), "greeted:1"]);
    let hist = s.ok(&["history", "--format", "{{.CreatedBy}}", "greeted:1"]);
    assert!(hist.lines().next().unwrap().contains("echo hello"), "{hist}");
    // The writable layer lives in the container: a second run sees the first's files.
    s.ok(&["start", "wk"]);
    assert_eq!(s.ok(&["wait", "wk"]), "0\n");
    s.ok(&["rm", "wk"]);
    assert!(s.mounts_under_store().is_empty());
}

/// `run -d -p 127.0.0.1:PORT:80` of a busybox httpd is answered from the
/// host (Docker cannot publish without its bridge; strata forwards into
/// the container's network namespace); a port in use fails the run with
/// 125; `exec` into it works; `ps` and `port` show the mapping.
#[test]
fn published_ports_are_answered_from_the_host() {
    use std::io::{Read, Write};
    let Some(s) = busybox_store() else { return };
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let publish = format!("127.0.0.1:{port}:80");
    s.ok(&["run", "-d", "--name", "web", "-p", &publish, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    let get = || -> String {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /passwd HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap();
        body
    };
    wait_until("httpd to answer", || std::panic::catch_unwind(get).map(|b| b.contains("root:x:0:0")).unwrap_or(false));
    let body = get();
    assert!(body.starts_with("HTTP/1.") && body.contains("nobody:x:65534"), "{body}");
    assert_eq!(s.ok(&["port", "web"]), format!("80/tcp -> 127.0.0.1:{port}\n"));
    assert!(s.ok(&["ps", "--format", "{{.Ports}}"]).contains(&format!("127.0.0.1:{port}->80/tcp")));
    assert_eq!(s.ok(&["exec", "web", "sh", "-c", "wget -q -O - http://127.0.0.1/hostname"]).len(), 13);
    // The port is taken: a second container cannot publish it.
    let o = s.run_with(&["run", "-d", "--name", "clash", "-p", &publish, "busybox", "true"], None);
    assert_eq!(o.status.code(), Some(125), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("Bind for 127.0.0.1:{port} failed")));
    s.ok(&["rm", "-f", "web", "clash"]);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the port is released with the container");
}

/// Named volumes: made on first use and filled from the image's directory,
/// kept across containers, refused removal while used, listed and
/// inspected as Docker's; `commit` of a running container freezes it and
/// leaves it running.
#[test]
fn volumes_and_commit_of_a_running_container() {
    let Some(s) = busybox_store() else { return };
    let listed =
        s.ok(&["run", "--rm", "-v", "data:/bin", "busybox", "sh", "-c", "ls /bin | wc -l; echo kept > /bin/mark"]);
    assert!(listed.trim().parse::<u32>().unwrap() > 100, "the volume was filled from the image's /bin");
    assert_eq!(s.ok(&["run", "--rm", "-v", "data:/mnt:ro", "busybox", "cat", "/mnt/mark"]), "kept\n");
    let o = s.run_with(&["run", "--rm", "-v", "data:/mnt:ro", "busybox", "touch", "/mnt/x"], None);
    assert_eq!(o.status.code(), Some(1), "read-only volume");
    assert_eq!(s.ok(&["volume", "ls"]), "DRIVER    VOLUME NAME\nlocal     data\n");
    let doc: serde_json::Value = serde_json::from_str(&s.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(doc[0]["Driver"], "local");
    assert!(doc[0]["Mountpoint"].as_str().unwrap().ends_with("/volumes/data/_data"));
    s.ok(&["create", "--name", "holder", "-v", "data:/d", "busybox"]);
    let o = s.run_with(&["volume", "rm", "data"], None);
    assert!(String::from_utf8_lossy(&o.stderr).contains("volume is in use"), "{}", String::from_utf8_lossy(&o.stderr));
    s.ok(&["rm", "holder"]);
    assert_eq!(s.ok(&["volume", "rm", "data"]), "data\n");
    assert_eq!(s.ok(&["volume", "ls", "-q"]), "");

    // commit -p of a running container: a consistent layer (the writer
    // replaces the file atomically; the freeze keeps the commit from seeing
    // a rename half done), and it runs on.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /c.tmp && mv /c.tmp /counter; done",
    ]);
    wait_until("the counter", || s.run_with(&["exec", "live", "cat", "/counter"], None).status.success());
    s.ok(&["commit", "live", "live:1"]);
    let n = s.ok(&["run", "--rm", "live:1", "cat", "/counter"]);
    assert!(n.trim().parse::<u64>().is_ok(), "a whole number was committed: {n:?}");
    assert!(s.ok(&["ps", "--format", "{{.Status}}"]).starts_with("Up"), "still running after commit");
    s.ok(&["rm", "-f", "live"]);
}

/// Faults while a container runs: the monitor killed, the FUSE server
/// killed, rm -f of a running container. `ps` tells the truth, `rm -f`
/// cleans up, nothing stays mounted.
#[test]
fn faults_leave_nothing_behind() {
    let Some(s) = busybox_store() else { return };
    let state = |name: &str| -> PathBuf {
        let id = s.ok(&["ps", "-aq", "--no-trunc", "--filter", &format!("name={name}")]);
        s.dir.path().join("root/containers").join(id.trim()).join("state.json")
    };
    // Monitor killed: the run is no longer supervised; ps says it exited.
    s.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "100"]);
    let st: serde_json::Value = serde_json::from_slice(&fs::read(state("orphan")).unwrap()).unwrap();
    let monitor = st["MonitorPid"].as_i64().unwrap();
    assert!(monitor > 0);
    Command::new("kill").arg("-9").arg(monitor.to_string()).status().unwrap();
    wait_until("the dead monitor to show", || {
        s.ok(&["ps", "-a", "--format", "{{.Status}}"]).starts_with("Exited (255)")
    });
    s.ok(&["rm", "-f", "orphan"]);
    assert!(s.mounts_under_store().is_empty(), "{:?}", s.mounts_under_store());
    let runc_root = s.dir.path().join("root/runtime");
    assert_eq!(fs::read_dir(&runc_root).map(|d| d.count()).unwrap_or(0), 0, "runtime state left");

    // The FUSE server killed under a running container.
    s.ok(&[
        "run",
        "-d",
        "--name",
        "nofs",
        "busybox",
        "sh",
        "-c",
        "while true; do cat /etc/passwd > /dev/null; sleep 0.05; done",
    ]);
    let out = Command::new("pgrep").args(["-f", "strata-overlayfs"]).output().unwrap();
    let merged = s.dir.path().to_string_lossy().to_string();
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|p| {
            fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&merged))
                .unwrap_or(false)
        })
        .map(str::to_string)
        .collect();
    assert!(!pids.is_empty(), "the container's FUSE server runs");
    for p in &pids {
        Command::new("kill").arg("-9").arg(p).status().unwrap();
    }
    s.ok(&["rm", "-f", "nofs"]);
    assert!(s.mounts_under_store().is_empty(), "{:?}", s.mounts_under_store());

    // rm -f of a running container, and a container filling its disk is
    // still removable.
    s.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "100"]);
    let t0 = Instant::now();
    assert_eq!(s.ok(&["rm", "-f", "busy"]), "busy\n");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(s.ok(&["ps", "-aq"]).is_empty());
    assert!(s.mounts_under_store().is_empty(), "{:?}", s.mounts_under_store());
}

/// The other verbs of a container's life: attach, pause/unpause, top,
/// rename, restart, logs -f/--since/-t, exec -d, ps -n/-l/-s, container
/// prune, and inspect's State/Config/HostConfig.
#[test]
fn other_lifecycle_verbs() {
    let Some(s) = busybox_store() else { return };
    s.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "-e",
        "K=V",
        "--label",
        "l=1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.1; done",
    ]);
    wait_until("output", || s.ok(&["logs", "ticker"]).contains("tick2"));

    // attach sees the output that follows, and ends with the container.
    let attach = s.cmd(&["attach", "ticker"]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(400));

    // pause freezes (ps says Paused, no new output), unpause thaws.
    s.ok(&["pause", "ticker"]);
    assert!(s.ok(&["ps", "--format", "{{.Status}}"]).contains("(Paused)"));
    let frozen = s.ok(&["logs", "ticker"]).lines().count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(s.ok(&["logs", "ticker"]).lines().count(), frozen, "no output while paused");
    let o = s.run_with(&["exec", "ticker", "true"], None);
    assert!(!o.status.success(), "exec into a paused container is refused");
    s.ok(&["unpause", "ticker"]);
    wait_until("output after unpause", || s.ok(&["logs", "ticker"]).lines().count() > frozen);

    // top lists the container's processes; exec -d starts one in the background.
    assert!(s.ok(&["top", "ticker"]).contains("while"));
    s.ok(&["exec", "-d", "ticker", "sh", "-c", "echo detached > /tmp/d"]);
    wait_until("exec -d", || s.run_with(&["exec", "ticker", "cat", "/tmp/d"], None).stdout == b"detached\n");

    // rename keeps the container; inspect reports the new name and settings.
    s.ok(&["rename", "ticker", "ticker2"]);
    let doc: serde_json::Value = serde_json::from_str(&s.ok(&["inspect", "ticker2"])).unwrap();
    assert_eq!(doc[0]["Name"], "/ticker2");
    assert_eq!(doc[0]["State"]["Status"], "running");
    assert!(doc[0]["State"]["Pid"].as_i64().unwrap() > 0);
    assert!(doc[0]["Config"]["Env"].as_array().unwrap().contains(&serde_json::json!("K=V")));
    assert_eq!(doc[0]["Config"]["Labels"]["l"], "1");
    assert_eq!(doc[0]["HostConfig"]["NetworkMode"], "none");
    assert_eq!(s.ok(&["inspect", "--type", "container", "-f", "{{.State.Running}}", "ticker2"]), "true\n");

    // logs -t prefixes times; --since in the future shows nothing; --tail.
    let line = s.ok(&["logs", "-t", "--tail", "1", "ticker2"]);
    assert!(line.starts_with("20") && line.contains("Z tick"), "{line:?}");
    assert_eq!(s.ok(&["logs", "--since", "2100-01-01T00:00:00Z", "ticker2"]), "");

    // restart runs the command again on the same layer.
    s.ok(&["restart", "-t", "2", "ticker2"]);
    wait_until("the restarted run", || s.ok(&["logs", "ticker2"]).matches("tick1\n").count() >= 2);

    // stop ends the attach with the container's status.
    s.ok(&["stop", "ticker2"]);
    let out = attach.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("tick"), "attach saw output");

    // logs -f of a stopped container prints everything and returns.
    assert!(s.ok(&["logs", "-f", "ticker2"]).contains("tick1"));

    // ps -n / -l / -s.
    s.ok(&["create", "--name", "newest", "busybox", "true"]);
    assert_eq!(s.ok(&["ps", "-l", "--format", "{{.Names}}"]), "newest\n");
    assert_eq!(s.ok(&["ps", "-n", "2", "--format", "{{.Names}}"]), "newest\nticker2\n");
    assert!(s.ok(&["ps", "-as", "--format", "{{.Size}}"]).contains("(virtual"));

    // container prune removes what is stopped.
    let pruned = s.ok(&["container", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Containers:"), "{pruned}");
    assert_eq!(s.ok(&["ps", "-aq"]), "");
    assert!(s.mounts_under_store().is_empty(), "{:?}", s.mounts_under_store());
}

/// The CLI of an attached `run`: SIGINT goes to the container (sig-proxy),
/// whose exit status becomes the CLI's; a CLI killed with -9 leaves the
/// container running under its monitor, and `rm -f` cleans up.
#[test]
fn signals_and_a_killed_cli() {
    let Some(s) = busybox_store() else { return };
    let mut c = s.cmd(&[
        "run",
        "--name",
        "trapint",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got INT; exit 5' INT; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let logs = |name: &str| String::from_utf8_lossy(&s.run_with(&["logs", name], None).stdout).into_owned();
    wait_until("ready", || logs("trapint").contains("ready"));
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(status.code(), Some(5), "the container's status: {out}");
    assert!(out.contains("got INT"), "{out}");
    assert_eq!(s.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "trapint"]), "exited 5\n");

    let mut c = s.cmd(&["run", "--name", "orphaned", "busybox", "sh", "-c", "echo up; sleep 100"]);
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_until("running", || logs("orphaned").contains("up"));
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(200));
    assert!(s.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).contains("orphaned Up"), "runs on without its CLI");
    assert_eq!(s.ok(&["exec", "orphaned", "echo", "still"]), "still\n");
    s.ok(&["rm", "-f", "orphaned", "trapint"]);
    assert!(s.mounts_under_store().is_empty(), "{:?}", s.mounts_under_store());
}

/// A container that fills its disk: the store on a small ext4 of its own;
/// the writer gets ENOSPC (exit 1), strata stays usable, and `rm -f` gives
/// the space back.
#[test]
fn a_container_filling_its_disk() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let base = tempfile::Builder::new().prefix("strata-full-").tempdir_in("/var/tmp").unwrap();
    let img = base.path().join("fs.img");
    let mnt = base.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let ok =
        |c: &mut Command| c.stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    if !ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img))
        || !ok(Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt))
    {
        eprintln!("SKIPPED: cannot make a loop ext4 here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let root = mnt.join("root");
    let strata = |args: &[&str]| -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(&root).args(args);
        run_with(c, None)
    };
    let tar = busybox_tar(base.path());
    assert!(strata(&["import", tar.to_str().unwrap(), "busybox:latest"]).status.success());
    let o = strata(&[
        "run",
        "--name",
        "filler",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=200 2>/dev/null; echo dd=$?",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "dd=1\n", "{}", String::from_utf8_lossy(&o.stderr));
    let free = || rustix::fs::statvfs(&mnt).map(|s| s.f_bavail * s.f_frsize).unwrap();
    let full = free();
    let o = strata(&["rm", "-f", "filler"]);
    assert!(o.status.success(), "rm -f on a full disk: {}", String::from_utf8_lossy(&o.stderr));
    assert!(free() > full + (20 << 20), "the space came back: {} -> {}", full, free());
    let o = strata(&["run", "--rm", "busybox", "echo", "usable"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "usable\n", "{}", String::from_utf8_lossy(&o.stderr));
}
