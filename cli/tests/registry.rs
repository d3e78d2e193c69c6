//! `strata pull/push/login/logout/search` end to end: the real binary
//! against the real Distribution registry (Debian's `docker-registry`,
//! started here on 127.0.0.1 with a free port and its own storage, without
//! and with htpasswd auth), skopeo on the other side, and an in-test HTTP
//! server (`store/tests/support/httpd.rs`) for an interrupted pull.
//! Output is compared with `shared/reference/docker/cli-28.2.2/push_pull.txt`.
//!
//! The registry binary is required (CI installs it): without it these
//! tests fail, they do not skip.

#[path = "../../store/tests/support/distribution.rs"]
mod distribution;
#[path = "../../store/tests/support/httpd.rs"]
mod httpd;
mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use distribution::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUSYBOX_ID: &str = "sha256:d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f";
const LAYERED_ID: &str = "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95";

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/images")
}

fn strata_bin() -> PathBuf {
    std::env::var_os("STRATA_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_strata")))
}

/// A store (vfs driver) and a registry config file of its own.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::Builder::new().prefix("strata-cli-registry-").tempdir_in("/var/tmp").unwrap() }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config/strata/config.json")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(strata_bin());
        c.arg("--root").arg(self.root()).arg("--storage-driver").arg("vfs").args(args);
        c.env("STRATA_CONFIG", self.config()).env("STRATA_REGISTRY_TIMEOUT", "20");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child =
            self.cmd(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Run, require success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "strata {args:?} failed: {}{}", text(&o.stdout), text(&o.stderr));
        text(&o.stdout)
    }

    /// Run, require exit 1, return stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(1), "strata {args:?}: {}{}", text(&o.stdout), text(&o.stderr));
        text(&o.stderr)
    }

    fn load(&self, rel: &str) {
        let p = images_dir().join(rel);
        self.ok(&["load", "-i", p.to_str().unwrap()]);
    }

    fn id(&self, name: &str) -> String {
        self.ok(&["image", "inspect", "-f", "{{.Id}}", name]).trim().to_string()
    }

    fn diff_ids(&self, name: &str) -> String {
        self.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", name]).trim().to_string()
    }

    /// The merged file tree of `image`, as the tar `export` of a container writes it.
    fn tree(&self, image: &str) -> Vec<u8> {
        let name = format!("tree-{}", self.dir.path().file_name().unwrap().to_string_lossy());
        self.ok(&["create", "--name", &name, image]);
        let out = self.dir.path().join(format!("{name}.tar"));
        self.ok(&["export", "-o", out.to_str().unwrap(), &name]);
        self.ok(&["rm", &name]);
        fs::read(out).unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// `TAG: digest: sha256:<hex> size: N` → the digest.
fn digest_line<'a>(line: &'a str, tag: &str) -> &'a str {
    let rest = line.strip_prefix(&format!("{tag}: digest: ")).unwrap_or_else(|| panic!("not a digest line: {line}"));
    let (d, size) = rest.split_once(" size: ").unwrap();
    assert!(d.starts_with("sha256:") && d.len() == 71, "{line}");
    assert!(size.parse::<u64>().is_ok(), "{line}");
    d
}

fn skopeo(args: &[&str]) {
    let o = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(o.status.success(), "skopeo {args:?}: {}{}", text(&o.stdout), text(&o.stderr));
}

#[test]
fn round_trip_with_the_distribution_registry_and_skopeo() {
    let reg = Registry::start(None);
    let h = reg.host.clone();
    let a = Env::new();
    a.load("min/ia-busybox.min.tar");
    a.load("min/ia-layered.min.tar");
    let bb = format!("{h}/ia/busybox:1.35");
    let layered = format!("{h}/ia/layered:1");
    a.ok(&["tag", "ia/busybox:1.35", &bb]);
    a.ok(&["tag", "ia/layered:1", &layered]);

    // Push: Docker's lines.
    let out = a.ok(&["push", &bb]);
    let l = lines(&out);
    assert_eq!(
        l[..3],
        [
            format!("The push refers to repository [{h}/ia/busybox]").as_str(),
            "a337e16220d5: Preparing",
            "a337e16220d5: Pushed"
        ],
        "{out}"
    );
    digest_line(l[3], "1.35");
    assert_eq!(l.len(), 4, "{out}");

    let out = a.ok(&["push", &layered]);
    let l = lines(&out);
    let preparing = ["5f70bf18a086", "e8ed8896a4b4", "1ba667e0f819", "1eade1ff3095", "a337e16220d5"];
    assert_eq!(l[0], format!("The push refers to repository [{h}/ia/layered]"));
    for (i, id) in preparing.iter().enumerate() {
        assert_eq!(l[1 + i], format!("{id}: Preparing"), "{out}");
    }
    assert!(l.contains(&"a337e16220d5: Mounted from ia/busybox"), "shared base layer mounted:\n{out}");
    for id in &preparing[..4] {
        assert!(l.contains(&format!("{id}: Pushed").as_str()), "{out}");
    }
    let pushed = digest_line(l[l.len() - 1], "1").to_string();
    assert_eq!(l.len(), 12, "{out}");

    let out = a.ok(&["push", &layered]);
    let l = lines(&out);
    for id in &preparing {
        assert!(l.contains(&format!("{id}: Layer already exists").as_str()), "{out}");
    }
    assert_eq!(digest_line(l[l.len() - 1], "1"), pushed, "re-push gives the same manifest");
    let digests = a.ok(&["images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"]);
    assert!(digests.contains(&format!("{layered} {pushed}")), "{digests}");

    // Pull into an empty store.
    let b = Env::new();
    let out = b.ok(&["pull", &layered]);
    let l = lines(&out);
    assert_eq!(l[0], "1: Pulling from ia/layered");
    assert_eq!(l.iter().filter(|x| x.ends_with(": Pulling fs layer")).count(), 5, "{out}");
    assert_eq!(l.iter().filter(|x| x.ends_with(": Pull complete")).count(), 5, "{out}");
    assert_eq!(
        l[l.len() - 3..],
        [format!("Digest: {pushed}").as_str(), &format!("Status: Downloaded newer image for {layered}"), &layered],
        "{out}"
    );
    assert_eq!(b.id(&layered), LAYERED_ID);
    assert_eq!(b.diff_ids(&layered), a.diff_ids("ia/layered:1"));
    assert!(a.tree("ia/layered:1") == b.tree(&layered), "file trees differ");
    let rd = b.ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &layered]);
    assert_eq!(rd.trim(), format!("[\"{h}/ia/layered@{pushed}\"]"));

    // Again: up to date, as Docker (no layer lines).
    let out = b.ok(&["pull", &layered]);
    assert_eq!(
        lines(&out),
        [
            "1: Pulling from ia/layered",
            &format!("Digest: {pushed}"),
            &format!("Status: Image is up to date for {layered}"),
            &layered
        ]
    );

    // By digest.
    let by_digest = format!("{h}/ia/layered@{pushed}");
    let out = b.ok(&["pull", &by_digest]);
    assert_eq!(
        lines(&out),
        [
            format!("{by_digest}: Pulling from ia/layered").as_str(),
            &format!("Digest: {pushed}"),
            &format!("Status: Image is up to date for {by_digest}"),
            &by_digest
        ]
    );

    // A missing tag: Docker's error, exit 1, nothing on stdout.
    let o = b.run(&["pull", &format!("{h}/ia/nosuch:1")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "");
    assert_eq!(
        text(&o.stderr),
        format!(
            "Error response from daemon: manifest for {h}/ia/nosuch:1 not found: manifest unknown: manifest unknown\n"
        )
    );

    // -a: every tag; the base layer is already here.
    let out = b.ok(&["pull", "-a", &format!("{h}/ia/busybox")]);
    let l = lines(&out);
    assert_eq!(l[0], "1.35: Pulling from ia/busybox");
    assert!(l[1].ends_with(": Already exists"), "{out}");
    assert_eq!(
        l[l.len() - 2..],
        [format!("Status: Downloaded newer image for {h}/ia/busybox").as_str(), &format!("{h}/ia/busybox")]
    );
    assert_eq!(b.id(&bb), BUSYBOX_ID);
    let out = b.ok(&["pull", "-q", &layered]);
    assert_eq!(out, format!("{layered}\n"));

    // skopeo reads what strata pushed (verifying every digest), writes it
    // back under another tag, and strata pulls that: same image.
    let tmp = tempfile::Builder::new().prefix("strata-skopeo-").tempdir_in("/var/tmp").unwrap();
    let archive = tmp.path().join("layered.tar");
    let oci = tmp.path().join("oci");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{layered}"),
        &format!("docker-archive:{}:ia/layered:1", archive.display()),
    ]);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{layered}"),
        &format!("oci:{}:layered", oci.display()),
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{h}/ia/layered:1-copy"),
    ]);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:layered", oci.display()),
        &format!("docker://{h}/ia/layered:1-oci"),
    ]);
    let c = Env::new();
    let copy = format!("{h}/ia/layered:1-copy");
    c.ok(&["pull", &copy]);
    assert_eq!(c.id(&copy), LAYERED_ID, "skopeo's docker-archive round trip keeps the image ID");
    assert_eq!(c.diff_ids(&copy), a.diff_ids("ia/layered:1"));
    // The OCI round trip re-serializes the config (skopeo does this; see
    // the testdata README): other ID, same layers, same tree.
    let oci_ref = format!("{h}/ia/layered:1-oci");
    c.ok(&["pull", &oci_ref]);
    assert_eq!(c.diff_ids(&oci_ref), a.diff_ids("ia/layered:1"));
    assert!(c.tree(&oci_ref) == a.tree("ia/layered:1"), "file trees differ after the OCI round trip");
    // podman (containers/image + containers/storage) pulls what strata pushed: same ID.
    let proot = tmp.path().join("podman");
    let o = Command::new("podman")
        .arg("--root")
        .arg(proot.join("root"))
        .arg("--runroot")
        .arg(proot.join("run"))
        .args(["--storage-driver", "vfs", "pull", "-q", "--tls-verify=false", &layered])
        .output()
        .expect("podman");
    assert!(o.status.success(), "podman pull: {}", text(&o.stderr));
    assert_eq!(format!("sha256:{}", text(&o.stdout).trim()), LAYERED_ID);
    // And strata pushes what it pulled from an OCI manifest (mounts/exists).
    let back = format!("{h}/ia/again:1");
    c.ok(&["tag", &oci_ref, &back]);
    let out = c.ok(&["push", &back]);
    assert!(out.lines().filter(|l| l.contains("Mounted from ia/layered")).count() == 5, "{out}");
    drop(reg);
}

#[test]
fn basic_auth_login_push_pull_logout() {
    let reg = Registry::start(Some(("user", "pass")));
    let h = reg.host.clone();
    let a = Env::new();
    a.load("min/ia-busybox.min.tar");
    let bb = format!("{h}/ia/busybox:1.35");
    a.ok(&["tag", "ia/busybox:1.35", &bb]);

    let err = a.fails(&["push", &bb]);
    assert!(err.contains("unauthorized: authentication required"), "{err}");

    let o = a.run_stdin(&["login", "-u", "user", "--password-stdin", &h], "wrong\n");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        format!("Error response from daemon: login attempt to http://{h}/v2/ failed with status: 401 Unauthorized\n")
    );
    assert!(!a.config().exists(), "a failed login stores nothing");

    let o = a.run_stdin(&["login", "-u", "user", "--password-stdin", &h], "pass\n");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "Login Succeeded\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(a.config()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config file readable by its owner only");
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(a.config()).unwrap()).unwrap();
    assert!(cfg["auths"][&h]["auth"].is_string(), "{cfg}");

    let out = a.ok(&["push", &bb]);
    assert!(out.contains("a337e16220d5: Pushed"), "{out}");
    a.ok(&["rmi", &bb]);
    let out = a.ok(&["pull", &bb]);
    assert!(out.contains(&format!("Status: Downloaded newer image for {bb}")), "{out}");

    assert_eq!(a.ok(&["logout", &h]), format!("Removing login credentials for {h}\n"));
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(a.config()).unwrap()).unwrap();
    assert!(cfg["auths"].get(&h).is_none(), "{cfg}");
    assert_eq!(a.ok(&["logout", &h]), format!("Not logged in to {h}\n"));
    let b = Env::new();
    let err = b.fails(&["pull", &bb]);
    assert!(err.contains("unauthorized: authentication required"), "{err}");

    // -p works too (with Docker's warning).
    let o = a.run(&["login", "-u", "user", "-p", "pass", &format!("http://{h}/")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("WARNING! Using --password via the CLI is insecure"));
    drop(reg);
}

/// Run `strata ARGS` on a terminal (a pty from util-linux's `script`),
/// answering each prompt in `dialog` once it has been printed; returns
/// everything the terminal showed and the exit status.
fn on_a_terminal(env: &Env, args: &[&str], dialog: &[(&str, &str)]) -> (String, i32) {
    use std::sync::{Arc, Mutex};
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut cmd = vec![quote(&strata_bin().display().to_string())];
    cmd.extend(["--root", &env.root().display().to_string(), "--storage-driver", "vfs"].iter().map(|a| quote(a)));
    cmd.extend(args.iter().map(|a| quote(a)));
    let line = format!("{}; echo \"[exit $?]\"", cmd.join(" "));
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("STRATA_CONFIG", env.config())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let mut stdin = child.stdin.take().unwrap();
    let mut from = 0;
    for (wait_for, answer) in dialog {
        let t0 = std::time::Instant::now();
        loop {
            let s = seen.lock().unwrap().clone();
            if let Some(i) = s[from..].find(wait_for) {
                from += i + wait_for.len();
                break;
            }
            assert!(t0.elapsed() < std::time::Duration::from_secs(20), "no {wait_for:?} prompt: {s:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Give the program time to turn echo off after its prompt.
        std::thread::sleep(std::time::Duration::from_millis(200));
        stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    let t0 = std::time::Instant::now();
    while !seen.lock().unwrap().contains("[exit ") {
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "{:?}", seen.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
    let _ = child.wait();
    reader.join().unwrap();
    let s = seen.lock().unwrap().replace('\r', "");
    let code = s.rsplit_once("[exit ").and_then(|(_, c)| c.trim_end().trim_end_matches(']').parse().ok()).unwrap();
    (s, code)
}

/// `login` on a terminal asks for the username and the password (not
/// echoed), as Docker's CLI does; `run` of a missing image pulls it first.
#[test]
fn login_prompts_on_a_terminal_and_run_pulls_a_missing_image() {
    let reg = Registry::start(Some(("user", "s3cret")));
    let h = reg.host.clone();
    let a = Env::new();
    let (out, code) = on_a_terminal(&a, &["login", &h], &[("Username: ", "user"), ("Password: ", "s3cret")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Username: user\nPassword: \nLogin Succeeded\n"), "{out:?}");
    assert!(!out.contains("s3cret"), "the password was echoed: {out:?}");
    // The stored name is the default; a wrong password fails.
    let (out, code) = on_a_terminal(&a, &["login", &h], &[("Username (user): ", ""), ("Password: ", "nope")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("login attempt to http://") && !out.contains("nope"), "{out:?}");
    // Not a terminal: Docker's refusal.
    let err = a.fails(&["login", &h]);
    assert_eq!(err, "Error: Cannot perform an interactive login from a non TTY device\n");

    // A missing image is pulled by create, after Docker's line.
    a.load("min/ia-busybox.min.tar");
    let bb = format!("{h}/ia/busybox:1.35");
    a.ok(&["tag", "ia/busybox:1.35", &bb]);
    a.ok(&["push", &bb]);
    let b = Env::new();
    fs::create_dir_all(b.config().parent().unwrap()).unwrap();
    fs::copy(a.config(), b.config()).unwrap();
    let o = b.run(&["create", "--name", "pulled", &bb]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Docker's order, all on stderr: stdout is the container ID alone.
    let err = text(&o.stderr);
    assert!(err.starts_with(&format!("Unable to find image '{bb}' locally\n1.35: Pulling from ia/busybox\n")), "{err}");
    assert!(err.ends_with(&format!("Status: Downloaded newer image for {bb}\n")), "{err}");
    assert_eq!(text(&o.stdout).trim().len(), 64, "{}", text(&o.stdout));
    assert_eq!(b.id(&bb), a.id(&bb));
    b.ok(&["rm", "pulled"]);
    drop(reg);
}

/// The compressed size of the first layer of `repo:tag` on the registry.
fn pushed_layer_size(host: &str, repo: &str, tag: &str) -> u64 {
    let o = Command::new("curl")
        .args(["-sf", "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json"])
        .arg(format!("http://{host}/v2/{repo}/manifests/{tag}"))
        .output()
        .expect("curl");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    m["layers"][0]["size"].as_u64().unwrap()
}

/// `push` compresses layers as Docker does (gzip at Go's default level 6):
/// the busybox layer pushed by strata and by a private dockerd to the same
/// registry differ by a few bytes, not by a fifth.
#[test]
fn push_compresses_layers_as_docker_does() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root for dockerd");
        return;
    }
    let reg = Registry::start(None);
    let h = reg.host.clone();
    let a = Env::new();
    let archive = images_dir().join("min/ia-busybox.min.tar");
    a.load("min/ia-busybox.min.tar");
    a.ok(&["tag", "ia/busybox:1.35", &format!("{h}/ia/by-strata:1")]);
    a.ok(&["push", &format!("{h}/ia/by-strata:1")]);
    let daemon = support::Dockerd::start(&a.dir.path().join("dockerd"), "vfs");
    daemon.ok(&["load", "-i", archive.to_str().unwrap()]);
    daemon.ok(&["tag", "ia/busybox:1.35", &format!("{h}/ia/by-docker:1")]);
    daemon.ok(&["push", &format!("{h}/ia/by-docker:1")]);
    let ours = pushed_layer_size(&h, "ia/by-strata", "1");
    let docker = pushed_layer_size(&h, "ia/by-docker", "1");
    eprintln!("busybox layer pushed: strata {ours} bytes, docker {docker} bytes");
    let diff = ours.abs_diff(docker) as f64 / docker as f64;
    assert!(diff < 0.02, "strata {ours} vs docker {docker}: {:.1} %", diff * 100.0);
    drop(reg);
}

#[test]
fn search_lists_the_catalog_and_reports_an_unreachable_hub() {
    let reg = Registry::start(None);
    let h = reg.host.clone();
    let a = Env::new();
    a.load("min/ia-busybox.min.tar");
    for name in ["ia/busybox:1.35", "ia/layered:x", "other/thing:1"] {
        let target = format!("{h}/{name}");
        a.ok(&["tag", "ia/busybox:1.35", &target]);
        a.ok(&["push", &target]);
    }
    let out = a.ok(&["search", &format!("{h}/ia")]);
    let l = lines(&out);
    assert_eq!(l.len(), 3, "{out}");
    let header: Vec<&str> = l[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]);
    assert!(l[1].starts_with(&format!("{h}/ia/busybox ")), "{out}");
    assert!(l[2].starts_with(&format!("{h}/ia/layered ")), "{out}");
    assert_eq!(l[1].split_whitespace().collect::<Vec<_>>(), [format!("{h}/ia/busybox").as_str(), "0"]);
    // Columns line up under the headers.
    assert_eq!(l[0].find("STARS"), l[1].find(" 0").map(|i| i + 1));
    let out = a.ok(&["search", "--format", "{{.Name}}", "--limit", "1", &format!("{h}/ia")]);
    assert_eq!(out, format!("{h}/ia/busybox\n"));
    let out = a.ok(&["search", "--format", "{{.Name}}", &format!("{h}/thing")]);
    assert_eq!(out, format!("{h}/other/thing\n"));

    let err = a.fails(&["search", "busybox"]);
    assert!(
        err.starts_with("Error response from daemon: Get \"https://index.docker.io/v1/search?q=busybox&n=25\": "),
        "{err}"
    );
    drop(reg);
}

#[test]
fn interrupted_pull_resumes_without_downloading_verified_blobs_again() {
    // The big, slow layer is at the bottom: the small ones above it are
    // downloaded and verified but cannot be applied before it is.
    let big = httpd::layer_tar(&[("usr/big", &support::noise(9, 8 << 20))]);
    let small1 = httpd::layer_tar(&[("etc/a", b"a\n")]);
    let small2 = httpd::layer_tar(&[("etc/b", &support::noise(7, 300_000))]);
    let img = httpd::Image::new(&[big, small1, small2], |t| t.to_vec(), "application/vnd.docker.image.rootfs.diff.tar");
    let mut content = httpd::Content::default();
    content.add("t/img", "1", &img);
    let big_route = format!("/v2/t/img/blobs/{}", httpd::digest(&img.blobs[0]));
    let slow = Arc::new(AtomicBool::new(true));
    let slow2 = slow.clone();
    let route2 = big_route.clone();
    let srv = httpd::Server::start(move |req| {
        let mut r = content.reply(req);
        if req.route() == route2 && slow2.load(Ordering::SeqCst) {
            // ~8 MiB at 64 KiB per 100 ms: more than ten seconds.
            r.throttle = Some((64 << 10, Duration::from_millis(100)));
        }
        r
    });
    let name = format!("{}/t/img:1", srv.host());
    let e = Env::new();
    let mut child =
        e.cmd(&["pull", &name]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let dl = e.root().join("downloads/sha256");
    let small: Vec<PathBuf> = img.blobs[1..].iter().map(|b| dl.join(&httpd::digest(b)[7..])).collect();
    let t = Instant::now();
    while !(small.iter().all(|p| p.exists()) && srv.count("GET", &big_route) == 1) {
        assert!(t.elapsed() < Duration::from_secs(30), "pull made no progress");
        assert!(child.try_wait().unwrap().is_none(), "pull ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The bytes of the big blob received so far are kept to resume from.
    let partial = dl.join(format!("{}.partial", &httpd::digest(&img.blobs[0])[7..]));
    let kept = fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0, "no partial download kept");

    // The store reads fine and holds no image (nor any layer).
    let out = e.ok(&["images"]);
    assert_eq!(lines(&out).len(), 1, "{out}");
    assert!(
        !e.root().join("layers/sha256").exists()
            || fs::read_dir(e.root().join("layers/sha256")).unwrap().next().is_none()
    );

    slow.store(false, Ordering::SeqCst);
    let o = e.run(&["pull", &name]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains(&format!("Status: Downloaded newer image for {name}")), "{out}");
    // Resumed inside the blob with a Range request, from the bytes kept
    // (the digest still covers the whole blob: the image ID is right).
    let resumed: Vec<String> = srv
        .requests()
        .iter()
        .filter(|r| r.route() == big_route)
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(resumed, [format!("bytes={kept}-")], "{out}{err}");
    assert_eq!(e.id(&name), img.id());
    for b in &img.blobs[1..] {
        let route = format!("/v2/t/img/blobs/{}", httpd::digest(b));
        assert_eq!(srv.count("GET", &route), 1, "verified blob {route} downloaded again");
    }
    assert_eq!(srv.count("GET", &big_route), 2);
    assert!(fs::read_dir(&dl).unwrap().next().is_none(), "downloads/ emptied after the pull");
}

/// Throughput of `strata pull` vs `skopeo copy` (docker:// → oci:) of a
/// ~100 MB image from the local registry. Run with
/// `STRATA_BIN=target/release/strata cargo test -p strata --test registry -- --ignored --nocapture`.
#[test]
#[ignore]
fn pull_throughput_vs_skopeo() {
    let reg = Registry::start(None);
    let h = reg.host.clone();
    let a = Env::new();
    let archive = a.dir.path().join("big.tar");
    support::big_archive(&archive, 100 << 20, 4, "ia/big:1");
    a.ok(&["load", "-i", archive.to_str().unwrap()]);
    let name = format!("{h}/ia/big:1");
    a.ok(&["tag", "ia/big:1", &name]);
    let t = Instant::now();
    a.ok(&["push", &name]);
    let push = t.elapsed();
    let blob_bytes: u64 = walk_size(&reg.dir.path().join("data/docker/registry/v2/blobs"));
    let mb = blob_bytes as f64 / 1e6;
    println!("image: {mb:.1} MB of blobs in the registry; push {push:.2?}");
    for round in 0..3 {
        let b = Env::new();
        let t = Instant::now();
        b.ok(&["pull", &name]);
        let strata = t.elapsed();
        let oci = b.dir.path().join("oci");
        let t = Instant::now();
        skopeo(&[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:big", oci.display()),
        ]);
        let sk = t.elapsed();
        println!(
            "round {round}: strata pull {strata:.2?} ({:.0} MB/s, includes extraction), skopeo copy to oci: {sk:.2?} ({:.0} MB/s)",
            mb / strata.as_secs_f64(),
            mb / sk.as_secs_f64()
        );
    }
    drop(reg);
}

fn walk_size(p: &Path) -> u64 {
    let m = fs::symlink_metadata(p).unwrap();
    if m.is_dir() {
        fs::read_dir(p).unwrap().flatten().map(|e| walk_size(&e.path())).sum()
    } else {
        m.len()
    }
}
