//! `strata` end to end: the real binary, a real store, the real test images,
//! real FUSE mounts. Output is compared with Docker's transcripts in
//! `../shared/reference/docker/cli-28.2.2/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod support;

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/images")
}

struct Env {
    dir: tempfile::TempDir,
    driver: &'static str,
}

impl Env {
    fn new(driver: &'static str) -> Env {
        let dir = tempfile::Builder::new().prefix("strata-cli-test-").tempdir_in("/var/tmp").unwrap();
        Env { dir, driver }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(self.root()).arg("--storage-driver").arg(self.driver).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Run, require success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "strata {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Run, require failure with exit 1, return stderr.
    fn fails(&self, args: &[&str]) -> (String, String) {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "strata {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
    }

    fn load(&self, rel: &str) -> String {
        let p = images_dir().join(rel);
        self.ok(&["load", "-i", p.to_str().unwrap()])
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Unmount whatever a failed test left mounted under the store.
        if let Ok(m) = fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.path().to_string_lossy().to_string();
            for line in m.lines() {
                if let Some(p) = line.split(' ').nth(4) {
                    if p.starts_with(&root) {
                        let _ = Command::new("umount").arg("-l").arg(p).status();
                    }
                }
            }
        }
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn drivers() -> Vec<&'static str> {
    if is_root() {
        vec!["vfs", "overlay", "fuse-overlay"]
    } else {
        vec!["vfs"]
    }
}

/// The block of output following `$ CMD` in a transcript, without `[exit N]`.
fn transcript(file: &str, cmd: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/docker/cli-28.2.2").join(file);
    let text = fs::read_to_string(&p).unwrap();
    let start = text.find(&format!("$ {cmd}\n")).unwrap_or_else(|| panic!("{cmd} not in {file}"));
    let rest = &text[start + cmd.len() + 3..];
    let end = rest.find("[exit ").unwrap();
    rest[..end].to_string()
}

#[test]
fn load_messages_and_images_table() {
    let e = Env::new("vfs");
    assert_eq!(e.load("min/ia-busybox.min.tar"), "Loaded image: ia/busybox:1.35\nLoaded image: ia/busybox:latest\n");
    assert_eq!(e.load("min/ia-layered.min.tar"), "Loaded image: ia/layered:1\n");
    assert_eq!(e.load("min/ia-layered.min.tar"), "Loaded image: ia/layered:1\n");
    assert_eq!(e.ok(&["images", "ia/busybox"]), transcript("images.txt", "docker images ia/busybox"));
    assert_eq!(e.ok(&["images", "ia/busybox:1.35"]), transcript("images.txt", "docker images ia/busybox:1.35"));
    assert_eq!(
        e.ok(&["images", "-f", "label=org.example.ia.image=busybox"]),
        transcript("images.txt", "docker images -f label=org.example.ia.image=busybox")
    );
    assert_eq!(
        e.ok(&["images", "-f", "before=ia/layered:1"]),
        transcript("images.txt", "docker images -f before=ia/layered:1")
    );
    assert_eq!(e.ok(&["images", "-f", "reference=*:1"]), transcript("images.txt", "docker images -f 'reference=*:1'"));
    let (_, err) = e.fails(&["images", "-f", "bogus=1"]);
    assert_eq!(err, "Error response from daemon: Invalid filter 'bogus'\n");
    let q = e.ok(&["images", "-q"]);
    assert_eq!(q, "23501bdefb31\nd45aab138e67\nd45aab138e67\n");
    let (_, err) = e.fails(&["load", "-i", "/nonexistent.tar"]);
    assert_eq!(err, "open /nonexistent.tar: no such file or directory\n");
    let garbage = e.dir.path().join("garbage");
    fs::write(&garbage, "garbage\n").unwrap();
    let o = e.cmd(&["load"]).stdin(fs::File::open(&garbage).unwrap()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "Error processing tar file(exit status 1): unexpected EOF\n");
    assert_eq!(e.ok(&["images", "-q"]), "23501bdefb31\nd45aab138e67\nd45aab138e67\n", "nothing changed");
}

/// `image diff`: what turns one image's tree into another's.
#[test]
fn image_diff_between_images() {
    let e = Env::new("vfs");
    e.load("docker-save/ia-all.tar");
    let out = e.ok(&["image", "diff", "ia/busybox:1.35", "ia/layered:1"]);
    for line in ["D /bin/vi", "C /etc/passwd", "A /etc/motd", "A /home/ia/.profile", "A /opt/data/new.txt"] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
    let json = e.ok(&["image", "diff", "--format", "json", "ia/busybox:1.35", "ia/layered:1"]);
    assert_eq!(json.lines().count(), out.lines().count());
    assert!(json.lines().any(|l| l == r#"{"Kind":"D","Path":"/bin/vi"}"#), "{json}");
    assert_eq!(e.ok(&["image", "diff", "ia/layered:1", "ia/layered:1"]), "");
}

#[test]
fn history_and_inspect_match_docker() {
    let e = Env::new("vfs");
    e.load("min/ia-layered.min.tar");
    for cmd in ["history", "history --no-trunc", "history -q", "history -H=false"] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("ia/layered:1");
        assert_eq!(e.ok(&args), transcript("history.txt", &format!("docker {cmd} ia/layered:1")), "{cmd}");
    }
    assert_eq!(
        e.ok(&["history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", "ia/layered:1"]),
        transcript(
            "history.txt",
            "docker history --format '{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}' ia/layered:1"
        )
    );
    for f in [
        "{{.Id}}",
        "{{.RootFS.Layers}}",
        "{{json .Config}}",
        "{{.Os}}/{{.Architecture}} {{.Size}} {{.VirtualSize}} {{.Created}}",
        "{{range $k,$v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
    ] {
        assert_eq!(
            e.ok(&["image", "inspect", "-f", f, "ia/layered:1"]),
            transcript("inspect.txt", &format!("docker image inspect -f '{f}' ia/layered:1")),
            "{f}"
        );
    }
    let o = e.run(&["image", "inspect", "nosuch:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "[]\n");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Error response from daemon: no such image: nosuch:1: No such image: nosuch:1\n"
    );
}

#[test]
fn tag_and_rmi_semantics() {
    let e = Env::new("vfs");
    e.load("min/ia-busybox.min.tar");
    e.load("min/ia-layered.min.tar");
    e.ok(&["tag", "ia/busybox:1.35", "ia/busybox:copy"]);
    e.ok(&["tag", "ia/busybox", "ia/bb"]);
    e.ok(&["tag", "d45aab138e67", "ia/busybox:byid"]);
    let (_, err) = e.fails(&["tag", "ia/busybox:1.35", "Bad/Name:x"]);
    assert_eq!(err, transcript("tag.txt", "docker tag ia/busybox:1.35 Bad/Name:x"));
    let (_, err) = e.fails(&["tag", "nosuch:1", "ia/x:1"]);
    assert_eq!(err, "Error response from daemon: No such image: nosuch:1\n");
    assert_eq!(e.ok(&["rmi", "ia/busybox:copy"]), "Untagged: ia/busybox:copy\n");
    assert_eq!(e.ok(&["rmi", "ia/busybox:byid", "ia/bb"]), "Untagged: ia/busybox:byid\nUntagged: ia/bb:latest\n");
    // Two repositories name it: by ID needs -f.
    e.ok(&["tag", "ia/busybox:1.35", "ia/other:1"]);
    let (_, err) = e.fails(&["rmi", "d45aab138e67"]);
    assert_eq!(err, "Error response from daemon: conflict: unable to delete d45aab138e67 (must be forced) - image is referenced in multiple repositories\n");
    let (out, err) = e.fails(&["rmi", "ia/other:1", "nosuch:2"]);
    assert_eq!(out, "Untagged: ia/other:1\n");
    assert_eq!(err, "Error response from daemon: No such image: nosuch:2\n");
    // The last names go: the image and its unshared layers are deleted.
    let out = e.ok(&["rmi", "ia/layered:1"]);
    assert_eq!(
        out,
        "Untagged: ia/layered:1\nDeleted: sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95\n"
    );
    let layers = fs::read_dir(e.root().join("layers/sha256")).unwrap().count();
    assert_eq!(layers, 1, "busybox's layer stays, layered's own go");
    let out = e.ok(&["rmi", "d45a"]);
    assert_eq!(
        out,
        "Untagged: ia/busybox:1.35\nUntagged: ia/busybox:latest\nDeleted: sha256:d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f\n"
    );
    assert_eq!(fs::read_dir(e.root().join("layers/sha256")).unwrap().count(), 0);
    assert_eq!(e.ok(&["images", "-q"]), "");
}

#[test]
fn save_then_load_in_a_fresh_store_keeps_ids() {
    for driver in drivers() {
        let e = Env::new(driver);
        e.load("docker-save/ia-all.tar");
        let out = e.dir.path().join("out.tar");
        e.ok(&["save", "-o", out.to_str().unwrap(), "ia/busybox", "ia/layered:1"]);
        let f = Env::new(driver);
        let msg = f.ok(&["load", "-i", out.to_str().unwrap()]);
        assert_eq!(
            msg, "Loaded image: ia/busybox:1.35\nLoaded image: ia/busybox:latest\nLoaded image: ia/layered:1\n",
            "{driver}"
        );
        assert_eq!(f.ok(&["images", "--no-trunc", "-q"]), e.ok(&["images", "--no-trunc", "-q"]), "{driver}");
        let (_, err) = e.fails(&["save", "nosuch:1"]);
        assert_eq!(err, "Error response from daemon: reference does not exist\n");
        assert!(!e.dir.path().join("nothing.tar").exists());
    }
}

/// Regular and symlink `layer.tar` members of a docker-archive.
fn layer_members(p: &Path) -> (usize, usize) {
    let mut ar = tar::Archive::new(fs::File::open(p).unwrap());
    let (mut files, mut links) = (0, 0);
    for m in ar.entries().unwrap() {
        let m = m.unwrap();
        if m.path().unwrap().ends_with("layer.tar") {
            match m.header().entry_type() {
                tar::EntryType::Symlink => links += 1,
                _ => files += 1,
            }
        }
    }
    (files, links)
}

/// `save REPO` saves every tag of the repository, whichever image each
/// names; a layer two images share is written once (the second place is a
/// symlink to the first, as `docker save` writes it).
#[test]
fn save_repo_saves_every_tag_and_each_layer_once() {
    let e = Env::new("vfs");
    e.load("docker-save/ia-all.tar");
    e.ok(&["tag", "ia/busybox:1.35", "ia/busybox:copy"]);
    e.ok(&["tag", "ia/layered:1", "ia/busybox:layered"]);
    let out = e.dir.path().join("repo.tar");
    e.ok(&["save", "-o", out.to_str().unwrap(), "ia/busybox"]);
    // busybox's one layer is layered's first: 5 distinct diffs, one link.
    assert_eq!(layer_members(&out), (5, 1));
    let f = Env::new("vfs");
    assert_eq!(
        f.ok(&["load", "-i", out.to_str().unwrap()]),
        "Loaded image: ia/busybox:1.35\nLoaded image: ia/busybox:copy\nLoaded image: ia/busybox:latest\nLoaded image: ia/busybox:layered\n"
    );
    let fmt = ["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"];
    let mut want: Vec<String> = e.ok(&fmt).lines().filter(|l| l.starts_with("ia/busybox:")).map(String::from).collect();
    let mut got: Vec<String> = f.ok(&fmt).lines().map(String::from).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // Two references to images sharing layers.
    e.ok(&["save", "-o", out.to_str().unwrap(), "ia/busybox:1.35", "ia/layered:1"]);
    assert_eq!(layer_members(&out), (5, 1));
    let (_, err) = e.fails(&["save", "ia/nosuch"]);
    assert_eq!(err, "Error response from daemon: reference does not exist\n");
}

/// `min/ia-busybox.min.tar` rewritten: its `manifest.json` replaced by
/// each of `manifests` in turn (more than one: the member repeated).
fn busybox_archive_with(dir: &Path, name: &str, manifests: &[Vec<u8>]) -> PathBuf {
    let out = dir.join(name);
    let mut w = tar::Builder::new(fs::File::create(&out).unwrap());
    let mut ar = tar::Archive::new(fs::File::open(images_dir().join("min/ia-busybox.min.tar")).unwrap());
    for m in ar.entries().unwrap() {
        let mut m = m.unwrap();
        let path = m.path().unwrap().into_owned();
        if path == Path::new("manifest.json") {
            continue;
        }
        let mut h = m.header().clone();
        w.append_data(&mut h, path, &mut m).unwrap();
    }
    for data in manifests {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        w.append_data(&mut h, "manifest.json", data.as_slice()).unwrap();
    }
    w.finish().unwrap();
    out
}

/// Hostile archives `load` refuses, leaving the store as it was.
#[test]
fn load_refuses_ambiguous_or_oversized_metadata() {
    let e = Env::new("vfs");
    let manifest = |tags: &str| {
        format!(
            r#"[{{"Config":"d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f.json","RepoTags":{tags},"Layers":["a337e16220d548ad55e84ce2afdea0616c764ef8881639b24cc0196f5b05f933/layer.tar"]}}]"#
        )
        .into_bytes()
    };
    // The rewriting itself is sound: one manifest loads.
    let good = busybox_archive_with(e.dir.path(), "good.tar", &[manifest(r#"["ia/good:1"]"#)]);
    assert_eq!(e.ok(&["load", "-i", good.to_str().unwrap()]), "Loaded image: ia/good:1\n");
    e.ok(&["rmi", "ia/good:1"]);
    let mut big = manifest(r#"["ia/big:1"]"#);
    big.resize(2 << 20, b' ');
    let hex = "a".repeat(64);
    let cases: Vec<(&str, Vec<Vec<u8>>, String)> = vec![
        (
            "twice.tar",
            vec![manifest(r#"["ia/one:1"]"#), manifest(r#"["ia/two:1"]"#)],
            "invalid image archive: duplicate member manifest.json\n".into(),
        ),
        ("big.tar", vec![big], "invalid image archive: manifest.json is larger than 1048576 bytes\n".into()),
        (
            "digest.tar",
            vec![manifest(
                r#"["ia/busybox@sha256:d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f"]"#,
            )],
            "invalid image archive: invalid tag \"ia/busybox@sha256:d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f\"\n".into(),
        ),
        (
            "hex.tar",
            vec![manifest(&format!(r#"["{hex}:latest"]"#))],
            format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings\n"),
        ),
    ];
    for (name, manifests, want) in cases {
        let p = busybox_archive_with(e.dir.path(), name, &manifests);
        let (_, err) = e.fails(&["load", "-i", p.to_str().unwrap()]);
        assert_eq!(err, want, "{name}");
        assert_eq!(e.ok(&["images", "-q"]), "", "{name}: nothing loaded");
    }
}

/// Reference errors: Docker's words, the name shown, a reason always given.
#[test]
fn reference_messages() {
    let e = Env::new("vfs");
    e.load("min/ia-busybox.min.tar");
    let (_, err) = e.fails(&["tag", "ia/busybox:1.35", "ia/Layered:1"]);
    assert_eq!(
        err,
        "Error parsing reference: \"ia/Layered:1\" is not a valid repository/tag: invalid reference format: repository name (ia/Layered) must be lowercase\n"
    );
    let hex = "0123456789abcdef".repeat(4);
    for target in [hex.clone(), format!("{hex}:1")] {
        let (_, err) = e.fails(&["tag", "ia/busybox:1.35", &target]);
        assert_eq!(
            err,
            format!("Error parsing reference: {target:?} is not a valid repository/tag: invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings\n")
        );
    }
    let (_, err) = e.fails(&["pull", &format!("{hex}:1")]);
    assert_eq!(err, format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings\n"));
    for bad in ["a//b:1", "ia/b_:1", "a-"] {
        let (_, err) = e.fails(&["tag", "ia/busybox:1.35", bad]);
        assert!(err.starts_with("Error parsing reference") && !err.ends_with(": \n"), "{bad}: {err}");
    }
    // An ID after `sha256:`, whole or a prefix, names the image.
    let id = "d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f";
    for name in [format!("sha256:{id}"), "sha256:d45aab13".to_string(), "d45aab13".to_string()] {
        assert_eq!(e.ok(&["image", "inspect", "-f", "{{.Id}}", &name]), format!("sha256:{id}\n"), "{name}");
    }
    // What was looked for, with its default tag.
    let (_, err) = e.fails(&["history", "other/bb"]);
    assert_eq!(err, "Error response from daemon: No such image: other/bb:latest\n");
    let (_, err) = e.fails(&["rmi", "other/bb"]);
    assert_eq!(err, "Error response from daemon: No such image: other/bb:latest\n");
    let (_, err) = e.fails(&["image", "inspect", "other/bb"]);
    assert_eq!(err, "Error response from daemon: no such image: other/bb: No such image: other/bb:latest\n");
}

#[test]
fn import_with_changes() {
    let e = Env::new("vfs");
    let layer = e.dir.path().join("layer.tar");
    // The busybox base layer, taken out of the test archive.
    let mut ar = tar::Archive::new(fs::File::open(images_dir().join("min/ia-busybox.min.tar")).unwrap());
    for m in ar.entries().unwrap() {
        let mut m = m.unwrap();
        if m.path().unwrap().ends_with("layer.tar") {
            m.unpack(&layer).unwrap();
        }
    }
    let id = e.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "ENV IMPORTED=1",
        "-m",
        "imported from busybox rootfs",
        layer.to_str().unwrap(),
        "ia/imported:1",
    ]);
    assert!(id.starts_with("sha256:") && id.len() == 72, "{id}");
    assert_eq!(
        e.ok(&["image", "inspect", "-f", "{{json .Config.Cmd}} {{json .Config.Env}} {{.Comment}} {{json .RootFS}}", "ia/imported:1"]),
        transcript("import.txt", "docker image inspect -f '{{json .Config.Cmd}} {{json .Config.Env}} {{.Comment}} {{json .RootFS}}' ia/imported:1")
    );
    let (_, err) = e.fails(&["import", "-c", "BOGUS x", layer.to_str().unwrap(), "ia/imported:bad"]);
    assert_eq!(err, "Error response from daemon: bogus is not a valid change command\n");
    // From a URL (a one-shot HTTP server in this test), gzip-compressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &fs::read(&layer).unwrap()).unwrap();
    let body = gz.finish().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = std::io::Read::read(&mut conn, &mut buf);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        std::io::Write::write_all(&mut conn, head.as_bytes()).unwrap();
        std::io::Write::write_all(&mut conn, &body).unwrap();
    });
    let url = format!("http://127.0.0.1:{port}/rootfs.tar.gz");
    let id2 = e.ok(&["import", &url, "ia/imported:url"]);
    server.join().unwrap();
    assert_eq!(
        e.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", "ia/imported:url"]),
        "[\"sha256:a337e16220d548ad55e84ce2afdea0616c764ef8881639b24cc0196f5b05f933\"]\n"
    );
    assert_ne!(id, id2);
    // xz and bzip2 (Docker accepts both), told apart by their magic bytes
    // whatever the file is called.
    for (tool, name) in [("xz", "rootfs.txz"), ("bzip2", "rootfs.bin")] {
        let o = Command::new(tool).arg("-c").arg(&layer).output().unwrap_or_else(|_| panic!("{tool} is installed"));
        assert!(o.status.success());
        let p = e.dir.path().join(name);
        fs::write(&p, o.stdout).unwrap();
        e.ok(&["import", p.to_str().unwrap(), &format!("ia/imported:{tool}")]);
        assert_eq!(
            e.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", &format!("ia/imported:{tool}")]),
            "[\"sha256:a337e16220d548ad55e84ce2afdea0616c764ef8881639b24cc0196f5b05f933\"]\n",
            "{tool}"
        );
    }
}

/// kill -9 a load at many points; afterwards `images` works and a fresh
/// load completes with the right IDs.
#[test]
fn killed_loads_leave_a_usable_store() {
    let e = Env::new("vfs");
    let archive = images_dir().join("docker-save/ia-all.tar");
    for delay_ms in [1u64, 5, 10, 20, 40, 80, 120, 200] {
        let mut child = e
            .cmd(&["load", "-i", archive.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        e.ok(&["images"]);
        let out = e.ok(&["images", "-q", "--no-trunc"]);
        for line in out.lines() {
            // Every listed image is complete: inspect and history work.
            e.ok(&["inspect", line]);
            e.ok(&["history", line]);
        }
    }
    e.ok(&["load", "-i", archive.to_str().unwrap()]);
    let mut ids: Vec<String> = e.ok(&["images", "-q", "--no-trunc"]).lines().map(str::to_string).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        [
            "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95",
            "sha256:d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f"
        ]
    );
    // No temp or half-made layer directories remain after a writer ran.
    let leftovers: Vec<_> = fs::read_dir(e.root().join("layers"))
        .unwrap()
        .filter_map(|d| d.ok())
        .filter(|d| d.file_name() != "sha256")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Loads and removals racing from several processes never corrupt the store.
#[test]
fn concurrent_load_and_rmi() {
    let e = Env::new("vfs");
    let a = images_dir().join("min/ia-busybox.min.tar");
    let b = images_dir().join("min/ia-layered.min.tar");
    let mut kids = Vec::new();
    for i in 0..6 {
        let args: Vec<String> = match i % 3 {
            0 => vec!["load".into(), "-i".into(), a.to_str().unwrap().into()],
            1 => vec!["load".into(), "-i".into(), b.to_str().unwrap().into()],
            _ => vec!["rmi".into(), "ia/busybox:1.35".into()],
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kids.push(e.cmd(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    }
    for mut k in kids {
        k.wait().unwrap();
    }
    e.ok(&["images"]);
    e.load("min/ia-busybox.min.tar");
    e.load("min/ia-layered.min.tar");
    assert_eq!(e.ok(&["images", "-q"]), "23501bdefb31\nd45aab138e67\nd45aab138e67\n");
}

/// The seeds' workflow on every driver: create from ia/layered:1, mount,
/// make the changes Docker's transcript made, then diff, commit, export.
#[test]
fn container_workflow_matches_docker() {
    if !is_root() {
        eprintln!("SKIPPED: needs root for mounts");
        return;
    }
    let want_diff = fs::read_to_string(images_dir().join("docker-save/ia-committed.diff.txt")).unwrap();
    for driver in drivers() {
        let e = Env::new(driver);
        e.load("min/ia-layered.min.tar");
        let id = e.ok(&["create", "--name", "c2", "--label", "ia.transcript=1", "ia/layered:1"]);
        assert_eq!(id.trim().len(), 64);
        assert_eq!(e.ok(&["diff", "c2"]), "", "{driver}: a new container has no changes");
        let m = e.ok(&["mount", "c2"]);
        let m = PathBuf::from(m.trim());
        let again = e.ok(&["mount", "c2"]);
        assert_eq!(PathBuf::from(again.trim()), m, "{driver}: mounts are shared");
        let script = "echo changed > etc/motd; rm etc/ia-release; rm -rf usr/share/ia/empty-dir; mkdir -p srv/new/deep && echo x > srv/new/deep/f; rm -rf opt/data && mkdir opt/data && echo y > opt/data/z; touch usr/share/ia/big.bin; ln -s /etc/motd motd-link; chmod 700 home/ia/.profile";
        let st = Command::new("sh").arg("-c").arg(script).current_dir(&m).status().unwrap();
        assert!(st.success(), "{driver}: changes through the mount");
        let ps = e.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
        assert_eq!(ps, "c2 Mounted\n", "{driver}");
        let mut got: Vec<String> = e.ok(&["diff", "c2"]).lines().map(str::to_string).collect();
        got.sort();
        let mut want: Vec<String> = want_diff.lines().map(str::to_string).collect();
        want.sort();
        assert_eq!(got, want, "{driver}: docker diff");
        e.ok(&["umount", "c2"]);
        e.ok(&["umount", "c2"]);
        let (_, err) = e.fails(&["umount", "c2"]);
        assert_eq!(err, "container c2 is not mounted\n", "{driver}");
        assert_eq!(e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]), "c2 Created\n", "{driver}");
        let (_, err) = e.fails(&["commit", "-c", "EXPOSE abc", "c2", "ia/bad:1"]);
        assert_eq!(err, "Error response from daemon: Invalid containerPort: abc\n", "{driver}");
        let new = e.ok(&[
            "commit",
            "-a",
            "IA Tester <ia@example.org>",
            "-m",
            "commit message",
            "-c",
            "CMD [\"/bin/sh\"]",
            "-c",
            "ENV COMMITTED=1",
            "c2",
            "ia/committed:1",
        ]);
        assert!(new.starts_with("sha256:"));
        let f = e.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}|{{json .Config.Env}}|{{.Parent}}",
            "ia/committed:1",
        ]);
        assert_eq!(
            f,
            "IA Tester <ia@example.org>|commit message|[\"/bin/sh\"]|[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"FOO=bar\",\"COMMITTED=1\"]|sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95\n"
        );
        // history shows the parent image's ID on its row, as Docker does.
        let h = e.ok(&["history", "ia/committed:1"]);
        let want = transcript("container_diff_commit.txt", "docker history ia/committed:1");
        let strip =
            |t: &str| t.lines().map(|l| format!("{} {}", &l[..15], l.get(40..).unwrap_or(""))).collect::<Vec<_>>();
        assert_eq!(strip(&h)[2..], strip(&want)[2..], "{driver}: history below the new layer");
        assert!(h.lines().nth(2).unwrap().starts_with("23501bdefb31"), "{h}");
        // The committed layer lists the same entries as Docker's commit.
        let out = e.dir.path().join("committed.tar");
        e.ok(&["save", "-o", out.to_str().unwrap(), "ia/committed:1"]);
        // (vfs compares trees, so a directory deleted and re-created shows as
        // its deleted children instead of an opaque marker, as Docker's vfs does.)
        if driver != "vfs" {
            assert_eq!(
                top_layer_names(&out),
                top_layer_names(&images_dir().join("docker-save/ia-committed.tar")),
                "{driver}"
            );
        }
        // Committing without changes adds no layer.
        e.ok(&["create", "--name", "c1", "ia/layered:1"]);
        e.ok(&["commit", "c1", "ia/committed:nochange"]);
        assert_eq!(e.ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", "ia/committed:nochange"]), "5\n");
        // rmi refuses an image a container uses.
        let (_, err) = e.fails(&["rmi", "ia/layered:1"]);
        assert!(err.contains("container") && err.contains("is using its referenced image"), "{err}");
        let exp = e.dir.path().join("export.tar");
        e.ok(&["export", "-o", exp.to_str().unwrap(), "c2"]);
        let names = tar_names(&exp);
        assert!(names.contains(&"motd-link".to_string()) && names.contains(&"srv/new/deep/f".to_string()), "{driver}");
        assert!(
            !names.contains(&"etc/ia-release".to_string()) && !names.iter().any(|n| n.contains(".wh.")),
            "{driver}"
        );
        e.ok(&["rm", "c1", "c2"]);
    }
}

fn tar_names(p: &Path) -> Vec<String> {
    let mut ar = tar::Archive::new(fs::File::open(p).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string())
        .collect()
}

/// Sorted entry names of the last layer of the first image of a docker-archive.
fn top_layer_names(archive: &Path) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    tar::Archive::new(fs::File::open(archive).unwrap()).unpack(dir.path()).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let top = m[0]["Layers"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
    let mut v = tar_names(&dir.path().join(top));
    v.sort();
    v
}

/// A fuse-overlay store holding container `cc` of ia/layered:1 (None, the
/// test skipped, without root for mounts).
fn layered_container_cc() -> Option<Env> {
    if !is_root() {
        eprintln!("SKIPPED: needs root for mounts");
        return None;
    }
    let e = Env::new("fuse-overlay");
    e.load("min/ia-layered.min.tar");
    e.ok(&["create", "--name", "cc", "ia/layered:1"]);
    Some(e)
}

/// A private dockerd (vfs) under the test's directory with ia/layered:1 loaded.
fn dockerd_with_layered(e: &Env) -> support::Dockerd {
    let daemon = support::Dockerd::start(&e.dir.path().join("dockerd"), "vfs");
    daemon.ok(&["load", "-i", images_dir().join("min/ia-layered.min.tar").to_str().unwrap()]);
    daemon
}

/// `cp` in and out; container symlinks pointing out (absolute and
/// relative) resolve inside the container root, never on the host.
#[test]
fn cp_stays_inside_the_container() {
    let Some(e) = layered_container_cc() else { return };
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    std::os::unix::fs::symlink("/", m.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", m.join("etc/rel")).unwrap();
    e.ok(&["umount", "cc"]);
    let host = e.dir.path().join("host");
    fs::create_dir(&host).unwrap();
    // Out of the container, through both symlinks: the container's passwd.
    for src in ["cc:/abs/etc/passwd", "cc:etc/rel/etc/passwd"] {
        let out = host.join("passwd");
        let _ = fs::remove_file(&out);
        e.ok(&["cp", src, out.to_str().unwrap()]);
        let text = fs::read_to_string(&out).unwrap();
        assert!(text.contains("ia:x:1000:1000"), "{src}: got the host's file?\n{text}");
        assert!(!text.contains("_apt") && !text.contains("systemd"), "{src}: host passwd leaked");
    }
    // A directory out, into an existing host directory.
    e.ok(&["cp", "cc:/etc", host.to_str().unwrap()]);
    assert!(host.join("etc/motd").is_file());
    // Into the container through the symlinks: lands inside, the host is untouched.
    let marker = format!("strata-cp-test-{}", std::process::id());
    let f = host.join(&marker);
    fs::write(&f, "x").unwrap();
    e.ok(&["cp", f.to_str().unwrap(), "cc:/abs/tmp/"]);
    e.ok(&["cp", f.to_str().unwrap(), &format!("cc:/etc/rel/tmp/{marker}.2")]);
    assert!(!Path::new("/tmp").join(&marker).exists() && !Path::new("/tmp").join(format!("{marker}.2")).exists());
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    assert_eq!(fs::read_to_string(m.join("tmp").join(&marker)).unwrap(), "x");
    assert!(m.join("tmp").join(format!("{marker}.2")).is_file());
    e.ok(&["umount", "cc"]);
    let (_, err) = e.fails(&["cp", "cc:/nonexistent", host.to_str().unwrap()]);
    assert_eq!(err, "Error response from daemon: Could not find the file /nonexistent in container cc\n");
    let diff = e.ok(&["diff", "cc"]);
    assert!(diff.contains(&format!("A /tmp/{marker}")), "{diff}");
}

/// (name, type, mode, uid, gid, size, link target) of each member of a tar stream, sorted.
fn tar_listing(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    let mut out: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|m| {
            let m = m.unwrap();
            let h = m.header();
            format!(
                "{} {:?} {:o} {}:{} {} {}",
                m.path().unwrap().display().to_string().trim_end_matches('/'),
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.size().unwrap(),
                h.link_name().unwrap().map(|l| l.display().to_string()).unwrap_or_default()
            )
        })
        .collect();
    out.sort();
    out
}

/// `cp` with tar streams (`-`), `-a`, `-L` and a symlink as destination,
/// against a private dockerd doing the same on the same image.
#[test]
fn cp_streams_owners_and_symlinks_match_docker() {
    let Some(e) = layered_container_cc() else { return };
    let daemon = dockerd_with_layered(&e);
    daemon.ok(&["create", "--name", "cc", "ia/layered:1"]);
    let docker_out = |args: &[&str]| {
        let o = daemon.cmd(args).stdin(Stdio::null()).output().unwrap();
        assert!(o.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let strata_out = |args: &[&str]| {
        let o = e.run(args);
        assert!(o.status.success(), "strata {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    // Out as a tar stream: the same members, owners, modes, sizes, links.
    for src in ["cc:/home", "cc:/etc/motd", "cc:/home/ia/.profile"] {
        assert_eq!(tar_listing(&strata_out(&["cp", src, "-"])), tar_listing(&docker_out(&["cp", src, "-"])), "{src}");
    }
    let home = tar_listing(&strata_out(&["cp", "cc:/home", "-"]));
    assert!(home.iter().any(|l| l.contains(" 1000:1000 ")), "{home:?}");
    // In from a tar stream: the stream's owners, as with Docker (and with
    // -a too when the container runs as its default user).
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("in/", None), ("in/f", Some("data\n"))] {
        let mut h = tar::Header::new_gnu();
        h.set_uid(1234);
        h.set_gid(4321);
        match data {
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o750);
                h.set_size(0);
                b.append_data(&mut h, name, std::io::empty()).unwrap();
            }
            Some(d) => {
                h.set_mode(0o640);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, name, d.as_bytes()).unwrap();
            }
        }
    }
    let stream = String::from_utf8(b.into_inner().unwrap()).unwrap();
    for (flags, dst) in [(&[][..], "cc:/tmp"), (&["-a"][..], "cc:/home")] {
        let mut args = vec!["cp"];
        args.extend(flags);
        args.extend(["-", dst]);
        let o = support::run_with(e.cmd(&args), Some(&stream));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = daemon.run_with(&args, Some(&stream));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let from = format!("{dst}/in");
        assert_eq!(
            tar_listing(&strata_out(&["cp", &from, "-"])),
            tar_listing(&docker_out(&["cp", &from, "-"])),
            "cp {flags:?} - {dst}"
        );
    }
    for from in ["cc:/tmp/in", "cc:/home/in"] {
        let l = tar_listing(&strata_out(&["cp", from, "-"]));
        assert!(l.iter().all(|l| l.contains(" 1234:4321 ")), "{from}: {l:?}");
    }
    // -a into a container with a user: everything is that user's (looked
    // up in the container's passwd; Docker looks on the host).
    e.ok(&["create", "--name", "cu", "-u", "ia", "ia/layered:1"]);
    let o = support::run_with(e.cmd(&["cp", "-a", "-", "cu:/tmp"]), Some(&stream));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let l = tar_listing(&strata_out(&["cp", "cu:/tmp/in", "-"]));
    assert!(l.iter().all(|l| l.contains(" 1000:1000 ")), "{l:?}");
    let f = e.dir.path().join("hostfile");
    fs::write(&f, "h").unwrap();
    e.ok(&["cp", "-a", f.to_str().unwrap(), "cu:/tmp/hf"]);
    e.ok(&["cp", f.to_str().unwrap(), "cc:/tmp/hf"]);
    assert!(tar_listing(&strata_out(&["cp", "cu:/tmp/hf", "-"]))[0].contains(" 1000:1000 "));
    assert!(tar_listing(&strata_out(&["cp", "cc:/tmp/hf", "-"]))[0].contains(" 0:0 "));
    e.ok(&["rm", "cu"]);
    // Out to the host: the caller's unless -a.
    let host = e.dir.path().join("host");
    fs::create_dir(&host).unwrap();
    e.ok(&["cp", "cc:/home/ia/.profile", host.join("p1").to_str().unwrap()]);
    e.ok(&["cp", "-a", "cc:/home/ia/.profile", host.join("p2").to_str().unwrap()]);
    use std::os::unix::fs::MetadataExt;
    let (p1, p2) = (fs::metadata(host.join("p1")).unwrap(), fs::metadata(host.join("p2")).unwrap());
    assert_eq!((p1.uid(), p1.gid()), (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw()));
    assert_eq!((p2.uid(), p2.gid()), (1000, 1000));
    // -L follows a symlink in the source; without it the link is copied.
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    std::os::unix::fs::symlink("/etc/motd", m.join("motd-link")).unwrap();
    std::os::unix::fs::symlink("/", m.join("up")).unwrap();
    e.ok(&["umount", "cc"]);
    e.ok(&["cp", "cc:/motd-link", host.join("l1").to_str().unwrap()]);
    e.ok(&["cp", "-L", "cc:/motd-link", host.join("l2").to_str().unwrap()]);
    assert_eq!(fs::read_link(host.join("l1")).unwrap(), Path::new("/etc/motd"));
    let motd = strata_out(&["cp", "cc:/etc/motd", "-"]);
    assert!(fs::symlink_metadata(host.join("l2")).unwrap().is_file());
    assert!(motd.windows(8).any(|w| fs::read(host.join("l2")).unwrap().starts_with(w)));
    // A destination that is a symlink in the container: followed, inside it.
    fs::write(host.join("new-motd"), "new motd\n").unwrap();
    e.ok(&["cp", host.join("new-motd").to_str().unwrap(), "cc:/motd-link"]);
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    assert_eq!(fs::read_to_string(m.join("etc/motd")).unwrap(), "new motd\n");
    assert!(fs::symlink_metadata(m.join("motd-link")).unwrap().file_type().is_symlink());
    e.ok(&["umount", "cc"]);
    // A hostile stream: `..` members and members below a symlink are refused.
    let marker = format!("strata-cp-stream-{}", std::process::id());
    for name in [format!("../../../../tmp/{marker}"), format!("up/tmp/{marker}")] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(1);
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(&mut h, "placeholder", &b"x"[..]).unwrap();
        let mut bytes = b.into_inner().unwrap();
        // Rewrite the name in place (tar refuses to write `..` itself).
        bytes[..100].fill(0);
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        let mut hdr = tar::Header::new_old();
        hdr.as_mut_bytes().copy_from_slice(&bytes[..512]);
        hdr.set_cksum();
        bytes[..512].copy_from_slice(hdr.as_bytes());
        let stream = String::from_utf8(bytes).unwrap();
        let o = support::run_with(e.cmd(&["cp", "-", "cc:/"]), Some(&stream));
        assert!(!o.status.success(), "{name}");
        assert!(!Path::new("/tmp").join(&marker).exists(), "{name} escaped");
    }
    let (_, err) = e.fails(&["cp", "cc:/nonexistent", "-"]);
    assert_eq!(err, "Error response from daemon: Could not find the file /nonexistent in container cc\n");
    e.ok(&["rm", "cc"]);
}

/// Kill the FUSE daemon of a mounted container: ps shows it unmounted, diff
/// and commit still work from the writable layer, and mount repairs it.
#[test]
fn killed_daemon_is_detected_and_repaired() {
    if !is_root() {
        eprintln!("SKIPPED: needs root for mounts");
        return;
    }
    let e = Env::new("fuse-overlay");
    e.load("min/ia-layered.min.tar");
    e.ok(&["create", "--name", "cc", "ia/layered:1"]);
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    fs::write(m.join("etc/motd"), "written before the kill\n").unwrap();
    // Find the daemon serving this mount and kill -9 it.
    let mut killed = false;
    for p in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = fs::read(p.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("strata-overlayfs") && cmd.contains(m.to_str().unwrap()) {
            let pid: i32 = p.file_name().to_str().unwrap().parse().unwrap();
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            killed = true;
        }
    }
    assert!(killed, "no strata-overlayfs daemon found for {}", m.display());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]),
        "cc Created\n",
        "a dead mount is not reported as mounted"
    );
    let diff = e.ok(&["diff", "cc"]);
    assert!(diff.contains("C /etc/motd"), "{diff}");
    let id = e.ok(&["commit", "cc", "ia/after-kill:1"]);
    assert!(id.starts_with("sha256:"));
    let m2 = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    assert_eq!(fs::read_to_string(m2.join("etc/motd")).unwrap(), "written before the kill\n");
    e.ok(&["umount", "cc"]);
    e.ok(&["rm", "cc"]);
}

/// Archives from `strata save`, a committed image included, load in podman
/// and copy with skopeo with the same image IDs (both are installed by
/// scripts/install-deps; their absence is a failure).
#[test]
fn saved_archives_load_in_podman_and_skopeo() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let e = Env::new("overlay");
    e.load("min/ia-layered.min.tar");
    e.ok(&["create", "--name", "cc", "ia/layered:1"]);
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    fs::write(m.join("etc/motd"), "committed\n").unwrap();
    fs::remove_file(m.join("etc/ia-release")).unwrap();
    e.ok(&["umount", "cc"]);
    let committed = e.ok(&["commit", "cc", "ia/committed:1"]).trim().to_string();
    let out = e.dir.path().join("s.tar");
    e.ok(&["save", "-o", out.to_str().unwrap(), "ia/layered:1", "ia/committed:1"]);
    let p = e.dir.path();
    let podman = |args: &[&str]| -> String {
        let o = Command::new("podman")
            .arg("--root")
            .arg(p.join("proot"))
            .arg("--runroot")
            .arg(p.join("prun"))
            .arg("--storage-driver")
            .arg("vfs")
            .args(args)
            .output()
            .expect("podman is installed by scripts/install-deps");
        assert!(o.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    podman(&["load", "-i", out.to_str().unwrap()]);
    let ids = podman(&["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);
    assert!(ids.contains(&format!("{committed} localhost/ia/committed:1")), "{ids}");
    assert!(
        ids.contains("sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95 localhost/ia/layered:1"),
        "{ids}"
    );
    // The committed content is there: podman mounts the image and reads it.
    let mnt = podman(&["image", "mount", "localhost/ia/committed:1"]);
    let mnt = PathBuf::from(mnt.trim());
    assert_eq!(fs::read_to_string(mnt.join("etc/motd")).unwrap(), "committed\n");
    assert!(!mnt.join("etc/ia-release").exists());
    podman(&["image", "unmount", "localhost/ia/committed:1"]);
    // skopeo copies it (dir: keeps the manifest type) with the config bytes
    // unchanged: the image ID survives, and each layer blob is its diff-id.
    let dir = p.join("skopeo-dir");
    let o = Command::new("skopeo")
        .args(["copy", &format!("docker-archive:{}:ia/committed:1", out.display()), &format!("dir:{}", dir.display())])
        .output()
        .expect("skopeo is installed by scripts/install-deps");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config =
        fs::read(dir.join(committed.trim_start_matches("sha256:"))).expect("config blob named by the image ID");
    assert_eq!(format!("sha256:{}", sha256_hex(&config)), committed);
    let inspect = e.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", "ia/committed:1"]);
    let layers: Vec<String> = serde_json::from_str(&inspect).unwrap();
    for l in layers {
        let blob = fs::read(dir.join(l.trim_start_matches("sha256:"))).unwrap();
        assert_eq!(format!("sha256:{}", sha256_hex(&blob)), l);
    }
    e.ok(&["rm", "cc"]);
}

fn sha256_hex(b: &[u8]) -> String {
    strata_store::Digest::of(b).hex().to_string()
}

/// `image prune` removes dangling images (and with -a, unused ones matching
/// filters) with Docker's report; `system df` counts what is there.
#[test]
fn prune_and_system_df() {
    let e = Env::new("vfs");
    e.load("docker-save/ia-all.tar");
    // A dangling image: imported without a name.
    let layer = e.dir.path().join("layer.tar");
    let mut ar = tar::Archive::new(fs::File::open(images_dir().join("min/ia-busybox.min.tar")).unwrap());
    for m in ar.entries().unwrap() {
        let mut m = m.unwrap();
        if m.path().unwrap().ends_with("layer.tar") {
            m.unpack(&layer).unwrap();
        }
    }
    let dangling = e.ok(&["import", "-m", "x", layer.to_str().unwrap()]);
    let out = e.ok(&["image", "prune", "-f"]);
    assert_eq!(
        out,
        format!("Deleted Images:\ndeleted: {}\nTotal reclaimed space: 0B\n", dangling.trim())
            .replace("\nTotal", "\n\nTotal")
    );
    assert_eq!(e.ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B\n");
    // df: two images, no containers.
    let df = e.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}"]);
    assert_eq!(df, "Images 2 0 2.247MB\nContainers 0 0 0B\nLocal Volumes 0 0 0B\nBuild Cache 0 0 0B\n");
    e.ok(&["create", "--name", "cc", "ia/busybox:1.35"]);
    let df = e.ok(&["system", "df"]);
    assert!(df.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages          2         1         2.247MB   262.5kB (11%)\n"), "{df}");
    // -a with a label filter: only unused images with that label go.
    let out = e.ok(&["image", "prune", "-a", "-f", "--filter", "label=org.example.ia.image=layered"]);
    assert!(out.starts_with("Deleted Images:\nuntagged: ia/layered:1\ndeleted: sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95\n"), "{out}");
    assert!(out.ends_with("Total reclaimed space: 262.5kB\n"), "{out}");
    assert_eq!(e.ok(&["images", "-q"]), "d45aab138e67\nd45aab138e67\n", "busybox is used by a container");
    let (_, err) = e.fails(&["image", "prune", "-f", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter"), "{err}");
}

#[test]
fn version_and_info() {
    let e = Env::new("vfs");
    assert!(e.ok(&["version"]).starts_with("Client:\n Version:           0.1.0\n"));
    // What scripts ask Docker (`docker version --format '{{.Server.Version}}'`).
    assert_eq!(e.ok(&["version", "--format", "{{.Server.Version}}"]), "0.1.0\n");
    assert_eq!(e.ok(&["version", "--format", "{{.Client.Version}}"]), "0.1.0\n");
    assert_eq!(
        e.ok(&["version", "-f", "{{.Server.ApiVersion}} {{range .Server.Components}}{{.Name}}{{end}}"]),
        "1.41 Engine\n"
    );
    e.load("min/ia-busybox.min.tar");
    assert_eq!(e.ok(&["info", "--format", "{{.Driver}} {{.Images}} {{.Containers}}"]), "vfs 1 0\n");
    let text = e.ok(&["system", "info"]);
    assert!(text.contains(" Storage Driver: vfs\n") && text.contains(" Images: 1\n"), "{text}");
}

/// `load` with a terminal on stdin fails at once with Docker's words (the
/// terminal is a pty from util-linux's `script`).
#[test]
fn load_from_a_terminal_refuses() {
    let e = Env::new("vfs");
    let cmd = format!("{} --root {} load; echo \"[exit $?]\"", env!("CARGO_BIN_EXE_strata"), e.root().display());
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "load waits on the terminal");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert_eq!(out.replace('\r', ""), "requested load from stdin, but stdin is empty\n[exit 1]\n");
}

/// Command-line mistakes exit as Docker's CLI exits (the docker client on
/// this machine is the oracle: 1 for an unknown command or a wrong number
/// of arguments, 125 for flag errors), with Docker's words.
#[test]
fn command_line_errors_match_docker() {
    let e = Env::new("vfs");
    let cases: &[(&[&str], &str)] = &[
        (&["foo"], "strata: 'foo' is not a strata command.\nSee 'strata --help'\n"),
        (&["stopp", "x"], "strata: 'stopp' is not a strata command.\nSee 'strata --help'\n"),
        (&["ps", "--bogus"], "unknown flag: --bogus\nSee 'strata ps --help'.\n"),
        (&["image", "ls", "-x"], "unknown shorthand flag: 'x' in -x\nSee 'strata image ls --help'.\n"),
        (&["ps", "-n", "x"], ""),
        (&["tag", "a"], ""),
        (&["tag", "a", "b", "c"], ""),
    ];
    for (args, want) in cases {
        let o = e.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        if !want.is_empty() {
            assert_eq!(err, *want, "{args:?}");
        }
        assert!(err.lines().last().unwrap_or("").starts_with("See 'strata "), "{args:?}: {err}");
        let docker = Command::new("/usr/bin/docker")
            .env("DOCKER_HOST", format!("unix://{}/none.sock", e.dir.path().display()))
            .args(*args)
            .stdin(Stdio::null())
            .output()
            .expect("the docker client is installed");
        assert_eq!(
            o.status.code(),
            docker.status.code(),
            "{args:?}: {err} / {}",
            String::from_utf8_lossy(&docker.stderr)
        );
    }
    // Help: the command's own flags; the global ones once, in `strata --help`.
    let help = e.ok(&["ps", "--help"]);
    assert!(help.contains("--all") && !help.contains("--root") && !help.contains("--storage-driver"), "{help}");
    let help = e.ok(&["--help"]);
    assert_eq!(help.matches("--root").count(), 1, "{help}");
    assert!(help.contains("Global Options:\n") && help.contains("--storage-driver <STORAGE_DRIVER>"), "{help}");
    // No global -s: `ps -as` and `inspect -s` are Docker's size flags; the
    // kernel driver answers to Docker's name too.
    e.load("min/ia-busybox.min.tar");
    e.ok(&["create", "--name", "c1", "ia/busybox:1.35"]);
    assert!(e.ok(&["ps", "-as", "--format", "{{.Names}}"]).starts_with("c1"));
    assert!(e.ok(&["inspect", "-s", "-f", "{{.Name}}", "c1"]).starts_with("/c1"));
    let (_, err) = e.fails(&["rename", "c1", "x"]);
    assert_eq!(
        err,
        "Error response from daemon: Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed\n"
    );
    let (_, err) = e.fails(&["create", "--name", "a/b", "ia/busybox:1.35"]);
    assert_eq!(
        err,
        "Error response from daemon: Invalid container name (a/b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed\n"
    );
    e.ok(&["rm", "c1"]);
    if is_root() {
        let f = Env::new("overlay");
        let o = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--root")
            .arg(f.root())
            .args(["--storage-driver", "overlay2", "info", "--format", "{{.Driver}}"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout), "overlay\n", "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// `ps`, `history` and container `inspect` rows against a private
/// dockerd holding the same containers: COMMAND's quoting, labels with the
/// image's, CreatedAt in seconds, `{{json .}}` keys sorted as Go sorts a
/// map's, `.Config` in Docker's struct order, IMAGE after `rmi -f`.
#[test]
fn ps_history_and_inspect_rows_match_docker() {
    if !is_root() {
        eprintln!("SKIPPED: needs root for dockerd");
        return;
    }
    let e = Env::new("vfs");
    e.load("min/ia-layered.min.tar");
    let daemon = dockerd_with_layered(&e);
    for args in [
        &["create", "--name", "c1", "--label", "z=1", "ia/layered:1", "sh", "-c", "echo \"hi\" there"][..],
        &["create", "--name", "c2", "ia/layered:1"],
    ] {
        e.ok(args);
        daemon.ok(args);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let both = |args: &[&str]| (e.ok(args), daemon.ok(args));
    for args in [
        &[
            "ps",
            "-a",
            "--format",
            "{{.Names}}|{{.Command}}|{{.Image}}|{{.State}}|{{.Status}}|{{.Mounts}}|{{.LocalVolumes}}",
        ][..],
        &["ps", "-a", "--no-trunc", "--format", "{{.Command}}"],
        &["ps", "-n", "1", "--format", "{{.Names}}"],
        &["ps", "-l", "--format", "{{.Names}}"],
        &["history", "--format", "{{json .}}", "ia/layered:1"],
    ] {
        let (got, want) = both(args);
        assert_eq!(got, want, "{args:?}");
    }
    // Labels: the image's and the container's (20.10's client lists them in
    // Go's random map order; strata sorts them).
    let sorted_labels = |s: &str| {
        s.lines()
            .map(|l| {
                let mut v: Vec<&str> = l.split(',').collect();
                v.sort();
                v.join(",")
            })
            .collect::<Vec<_>>()
    };
    let (got, want) = both(&["ps", "-a", "--format", "{{.Labels}}"]);
    assert_eq!(sorted_labels(&got), sorted_labels(&want));
    assert_eq!(sorted_labels(&got), got.lines().collect::<Vec<_>>());
    // Docker 28's client shows rows with `Platform` (20.10's has none): use
    // it where this machine has it.
    let client28 = Path::new("/usr/local/bin/docker");
    let json_args = ["ps", "-a", "--format", "{{json .}}"];
    let want = if client28.exists() {
        let o = Command::new(client28)
            .arg("-H")
            .arg(format!("unix://{}", daemon.sock.display()))
            .args(json_args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    } else {
        daemon.ok(&json_args)
    };
    let got = e.ok(&json_args);
    assert_eq!(got.lines().count(), 2);
    let platform = "Platform".to_string();
    for (g, w) in got.lines().zip(want.lines()) {
        let g: serde_json::Map<String, serde_json::Value> = serde_json::from_str(g).unwrap();
        let w: serde_json::Map<String, serde_json::Value> = serde_json::from_str(w).unwrap();
        let mut keys: Vec<&String> = w.keys().collect();
        if !client28.exists() {
            keys.insert(9, &platform);
        }
        assert_eq!(g.keys().collect::<Vec<_>>(), keys, "keys and their order");
        let labels = |v: &serde_json::Value| sorted_labels(v.as_str().unwrap());
        assert_eq!(labels(&g["Labels"]), labels(&w["Labels"]));
        for k in ["Command", "Image", "LocalVolumes", "Mounts", "Names", "Ports", "State", "Status"] {
            assert_eq!(g[k], w[k], "{k}");
        }
        assert_eq!(g["Platform"], w.get("Platform").cloned().unwrap_or_default());
        let at = g["CreatedAt"].as_str().unwrap();
        assert!(at.len() == 29 && at.ends_with(" +0000 UTC"), "{at}");
        assert!(g["Size"].as_str().unwrap().starts_with("0B (virtual "), "{g:?}");
    }
    let (got, want) = both(&["inspect", "-f", "{{json .Config}}", "c1"]);
    let hostname = |s: &str| {
        let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(s).unwrap();
        v.remove("Hostname");
        serde_json::to_string(&v).unwrap()
    };
    assert_eq!(hostname(&got), hostname(&want));
    // export names owners as Docker's does (from the container's own
    // passwd and group): every member both have, the same uname/gname.
    let owners = |tar_bytes: Vec<u8>| -> std::collections::BTreeMap<String, (String, String)> {
        let mut ar = tar::Archive::new(tar_bytes.as_slice());
        ar.entries()
            .unwrap()
            .map(|m| {
                let m = m.unwrap();
                let h = m.header();
                let name = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
                (
                    m.path().unwrap().display().to_string().trim_end_matches('/').to_string(),
                    (name(h.username_bytes()), name(h.groupname_bytes())),
                )
            })
            .collect()
    };
    let ours = owners(e.run(&["export", "c2"]).stdout);
    let theirs = owners(daemon.cmd(&["export", "c2"]).output().unwrap().stdout);
    assert!(ours.len() > 300 && ours.values().any(|(u, g)| u == "ia" && g == "ia"), "{ours:?}");
    for (name, names) in &ours {
        if let Some(want) = theirs.get(name) {
            assert_eq!(names, want, "{name}");
        }
    }
    // The name no longer names the image: IMAGE is its ID.
    let (got, want) = both(&["rmi", "-f", "ia/layered:1"]);
    assert_eq!(got, want);
    for args in [&["ps", "-a", "--format", "{{.Image}}"][..], &["ps", "-a", "--no-trunc", "--format", "{{.Image}}"]] {
        let (got, want) = both(args);
        assert_eq!(got, want, "{args:?}");
    }
    e.ok(&["rm", "c1", "c2"]);
}

/// A running dockerd (Debian's docker.io, started here with a private data
/// root and no networking) loads `strata save` with the same image IDs, and
/// strata loads `docker save` of it back with the same IDs.
#[test]
fn dockerd_round_trip() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let e = Env::new("overlay");
    e.load("min/ia-layered.min.tar");
    e.ok(&["create", "--name", "cc", "ia/layered:1"]);
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    fs::write(m.join("etc/motd"), "from strata\n").unwrap();
    e.ok(&["umount", "cc"]);
    let committed = e.ok(&["commit", "cc", "ia/committed:1"]).trim().to_string();
    let out = e.dir.path().join("s.tar");
    e.ok(&["save", "-o", out.to_str().unwrap(), "ia/layered:1", "ia/committed:1"]);

    // ia/layered's top layer is below ia/committed's: written once, linked.
    assert_eq!(layer_members(&out), (6, 1));
    let daemon = support::Dockerd::start(&e.dir.path().join("dockerd"), "vfs");
    let docker = |args: &[&str]| daemon.ok(args);
    let loaded = docker(&["load", "-i", out.to_str().unwrap()]);
    assert_eq!(loaded, "Loaded image: ia/layered:1\nLoaded image: ia/committed:1\n");
    let ids = docker(&["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert!(ids.contains(&format!("ia/committed:1 {committed}")), "{ids}");
    assert!(
        ids.contains("ia/layered:1 sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95"),
        "{ids}"
    );
    // And back: docker's own save of the committed image loads in a fresh strata store.
    let back = e.dir.path().join("back.tar");
    docker(&["save", "-o", back.to_str().unwrap(), "ia/committed:1"]);
    let f = Env::new("vfs");
    assert_eq!(f.ok(&["load", "-i", back.to_str().unwrap()]), "Loaded image: ia/committed:1\n");
    assert_eq!(f.ok(&["images", "--no-trunc", "-q"]), format!("{committed}\n"));
    e.ok(&["rm", "cc"]);
}

/// `commit` of a mounted container with writers: they are paused for the
/// commit (SIGSTOP) and resumed after; the committed file holds whole writes.
#[test]
fn commit_pauses_writers_of_a_mounted_container() {
    if !is_root() {
        eprintln!("SKIPPED: needs root for mounts");
        return;
    }
    let e = Env::new("fuse-overlay");
    e.load("min/ia-layered.min.tar");
    e.ok(&["create", "--name", "cc", "ia/layered:1"]);
    let m = PathBuf::from(e.ok(&["mount", "cc"]).trim());
    // A writer appending 4 KiB records as fast as it can, and an idle one
    // holding a file open for writing.
    let mut dd = Command::new("dd")
        .args(["if=/dev/zero", "bs=4096", "count=200000", "oflag=append", "conv=notrunc", "status=none"])
        .arg(format!("of={}", m.join("srv-log").display()))
        .spawn()
        .unwrap();
    let mut idle = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 3>>{}; sleep 60", m.join("etc/held").display()))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = e.cmd(&["--debug", "commit", "cc", "ia/live:1"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("paused 3 writer(s)") || log.contains("paused 2 writer(s)"), "{log}");
    // Both run again afterwards.
    for pid in [dd.id(), idle.id()] {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap()).unwrap_or('?');
        assert_ne!(state, 'T', "process {pid} left stopped");
    }
    let _ = dd.kill();
    let _ = dd.wait();
    let _ = idle.kill();
    let _ = idle.wait();
    e.ok(&["umount", "cc"]);
    // The committed file is whole 4 KiB records.
    let out = e.dir.path().join("live.tar");
    e.ok(&["save", "-o", out.to_str().unwrap(), "ia/live:1"]);
    let dir = tempfile::tempdir().unwrap();
    tar::Archive::new(fs::File::open(&out).unwrap()).unpack(dir.path()).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let top = m[0]["Layers"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
    let mut ar = tar::Archive::new(fs::File::open(dir.path().join(top)).unwrap());
    let mut seen = false;
    for en in ar.entries().unwrap() {
        let en = en.unwrap();
        if en.path().unwrap().to_string_lossy() == "srv-log" {
            assert_eq!(en.header().size().unwrap() % 4096, 0, "a torn write was committed");
            assert!(en.header().size().unwrap() > 0);
            seen = true;
        }
    }
    assert!(seen, "the written file is in the committed layer");
    e.ok(&["rm", "cc"]);
}

/// Dependencies point one way (DESIGN.md): cli → build → runtime → store →
/// driver → fs. A crate may use only crates after it in that order.
#[test]
fn dependency_direction() {
    let o = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let order = ["strata", "strata-build", "strata-runtime", "strata-store", "strata-driver", "strata-fs"];
    let rank = |n: &str| order.iter().position(|o| *o == n);
    let mut checked = 0;
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let Some(r) = rank(name) else { continue };
        for d in p["dependencies"].as_array().unwrap() {
            if d["kind"].as_str() == Some("dev") {
                continue;
            }
            if let Some(dr) = rank(d["name"].as_str().unwrap()) {
                assert!(dr > r, "{name} depends on {}, against the direction {order:?}", d["name"]);
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "only {checked} internal dependencies seen");
}

/// Pipes between strata commands on one store: `save | load` and
/// `export | import -` finish (they used to wait forever on the store lock).
#[test]
fn pipes_between_commands_on_one_store() {
    let e = Env::new("vfs");
    e.load("min/ia-layered.min.tar");
    let pipe = |left: &[&str], right: &[&str]| -> Output {
        let mut l = e.cmd(left).stdout(Stdio::piped()).stdin(Stdio::null()).spawn().unwrap();
        let out = l.stdout.take().unwrap();
        let r = e.cmd(right).stdin(Stdio::from(out)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(r.wait_with_output());
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the pipe finished").unwrap();
        assert!(l.wait().unwrap().success());
        got
    };
    let o = pipe(&["save", "ia/layered:1"], &["load"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Loaded image: ia/layered:1\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    e.ok(&["create", "--name", "src", "ia/layered:1"]);
    let o = pipe(&["export", "src"], &["import", "-", "ia/flat:1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(e.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).contains("ia/flat:1"));
}
