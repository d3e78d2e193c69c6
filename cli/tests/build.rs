//! `strata build` against Docker's own builders: the same Dockerfiles and
//! contexts built by a private dockerd (classic builder, and BuildKit with
//! `--network none`) and by strata (`--builder legacy` / `buildkit`); the
//! saved images' config, history and merged file trees are compared.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::Digest as _;
use support::{busybox_tar, run_with, Dockerd};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

struct Strata {
    dir: tempfile::TempDir,
}

impl Strata {
    fn new() -> Strata {
        Strata { dir: tempfile::Builder::new().prefix("strata-build-test-").tempdir_in("/var/tmp").unwrap() }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(self.dir.path().join("root")).args(args);
        c
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = run_with(self.cmd(args), None);
        assert!(
            o.status.success(),
            "strata {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        let root = self.dir.path().join("root").to_string_lossy().to_string();
        if let Ok(m) = fs::read_to_string("/proc/self/mountinfo") {
            for p in m.lines().filter_map(|l| l.split(' ').nth(4)).filter(|p| p.starts_with(&root)) {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

/// A store with the busybox image, and a work directory beside it.
fn strata_with_busybox() -> (Strata, PathBuf) {
    let s = Strata::new();
    let work = s.dir.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let tar = busybox_tar(&work);
    s.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    (s, work)
}

/// That, and a private dockerd with the same busybox image.
fn strata_and_docker() -> (Strata, PathBuf, Dockerd) {
    let (s, work) = strata_with_busybox();
    let d = Dockerd::start(&s.dir.path().join("dockerd"), "overlay2");
    let tar = work.join("busybox.tar");
    d.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
    (s, work, d)
}

/// One build case: a Dockerfile, its context, flags.
struct Case {
    name: &'static str,
    dockerfile: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    /// Only for this builder (None: both).
    only: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "every-instruction",
        dockerfile: "FROM busybox\nLABEL a=b \"c d\"=e\nENV X=1 Y=\"two words\"\nARG A1=foo\nARG A2\nWORKDIR /app\nCOPY f.txt .\nCOPY dir/ /dst/\nADD f.txt dir /add/\nRUN echo $A1 $A2 > /a1.txt\nUSER nobody\nEXPOSE 8080/tcp 53/udp\nVOLUME /data\nSTOPSIGNAL SIGTERM\nHEALTHCHECK --interval=5s CMD true\nSHELL [\"/bin/sh\", \"-c\"]\nONBUILD RUN echo onbuild\nENTRYPOINT [\"/bin/sh\"]\nCMD [\"-c\", \"echo hi\"]\nMAINTAINER me\n",
        files: &[("f.txt", "hello\n"), ("dir/x", "x\n"), ("dir/sub/y", "y\n")],
        args: &["--build-arg", "A2=bar"],
        only: None,
    },
    Case { name: "env-forms", dockerfile: "FROM busybox\nENV A a\nENV B=\"b c\" C=${A}x\nENV D=$B\nRUN echo \"$A|$B|$C|$D\" > /env.txt\n", files: &[], args: &[], only: None },
    Case { name: "env-wins-over-arg", dockerfile: "FROM busybox\nARG V=a\nENV V=b\nARG W=w\nRUN echo $V $W > /v.txt\n", files: &[], args: &["--build-arg", "V=c"], only: None },
    Case { name: "meta-arg", dockerfile: "ARG BASE=busybox\nFROM ${BASE}\nARG BASE\nRUN echo \"base=$BASE\" > /b.txt\n", files: &[], args: &[], only: None },
    Case { name: "expansion-modifiers", dockerfile: "FROM busybox\nARG U\nENV S=set\nENV R1=${U:-def} R2=${S:+alt} R3=${U:+x}none R4=${S}\nLABEL l=${R1}_${R2}\nWORKDIR /w/${S}\n", files: &[], args: &[], only: None },
    Case { name: "workdir-relative", dockerfile: "FROM busybox\nWORKDIR /a\nWORKDIR b\nWORKDIR c\nRUN pwd > /pwd.txt\n", files: &[], args: &[], only: None },
    Case { name: "user-and-workdir-in-run", dockerfile: "FROM busybox\nWORKDIR /tmp/w\nUSER nobody\nRUN id > /tmp/id.txt; pwd >> /tmp/id.txt\n", files: &[], args: &[], only: None },
    Case { name: "copy-dest-rules", dockerfile: "FROM busybox\nCOPY f.txt /renamed\nCOPY f.txt /newdir/\nCOPY f.txt g.txt /multi/\nCOPY dir /dircontents\nCOPY . /all/\n", files: &[("f.txt", "f\n"), ("g.txt", "g\n"), ("dir/a", "a\n"), ("dir/s/b", "b\n")], args: &[], only: None },
    Case { name: "copy-globs", dockerfile: "FROM busybox\nCOPY *.txt /txt/\nCOPY d?r/*.md /md/\n", files: &[("a.txt", "a"), ("b.txt", "b"), ("c.log", "c"), ("dir/x.md", "x"), ("dir/y.txt", "y")], args: &[], only: None },
    Case { name: "dockerignore", dockerfile: "FROM busybox\nCOPY . /ctx/\n", files: &[(".dockerignore", "*.secret\nbuild/\n!build/keep\n**/*.tmp\n"), ("a.txt", "a"), ("x.secret", "s"), ("build/out", "o"), ("build/keep", "k"), ("deep/n/z.tmp", "t"), ("deep/n/ok", "ok")], args: &[], only: None },
    Case { name: "copy-chown", dockerfile: "FROM busybox\nCOPY --chown=nobody:nobody f.txt /owned\nCOPY --chown=1234:5678 dir /numeric/\n", files: &[("f.txt", "f"), ("dir/a", "a")], args: &[], only: None },
    Case { name: "copy-chmod", dockerfile: "FROM busybox\nCOPY --chmod=0700 f.txt /private\n", files: &[("f.txt", "f")], args: &[], only: Some("buildkit") },
    Case { name: "add-tar", dockerfile: "FROM busybox\nADD files.tar /unpacked/\nADD f.txt /plain/\n", files: &[("f.txt", "f")], args: &[], only: None },
    Case { name: "run-forms", dockerfile: "FROM busybox\nRUN [\"sh\", \"-c\", \"echo exec > /exec.txt\"]\nRUN echo shell > /shell.txt && chmod 600 /shell.txt\nRUN mkdir -p /x/y && rm /bin/ls\n", files: &[], args: &[], only: None },
    Case { name: "shell-instruction", dockerfile: "FROM busybox\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN echo $0 > /shell.txt\nCMD echo hi\nENTRYPOINT echo ep\n", files: &[], args: &[], only: None },
    Case { name: "cmd-entrypoint", dockerfile: "FROM busybox\nCMD [\"a\"]\nENTRYPOINT [\"/bin/echo\"]\n", files: &[], args: &[], only: None },
    Case { name: "entrypoint-resets-cmd", dockerfile: "FROM busybox\nENTRYPOINT [\"/bin/echo\"]\n", files: &[], args: &[], only: None },
    Case { name: "scratch", dockerfile: "FROM scratch\nCOPY f.txt /\nCMD [\"/f.txt\"]\n", files: &[("f.txt", "f")], args: &[], only: None },
    Case { name: "multi-stage", dockerfile: "FROM busybox AS build\nRUN mkdir /o && echo built > /o/result\nFROM busybox AS extra\nRUN echo extra > /e\nFROM scratch AS final\nCOPY --from=build /o /\n", files: &[], args: &[], only: None },
    Case { name: "multi-stage-target", dockerfile: "FROM busybox AS one\nRUN echo 1 > /one\nFROM one AS two\nRUN echo 2 > /two\nFROM busybox\nRUN echo 3 > /three\n", files: &[], args: &["--target", "two"], only: None },
    Case { name: "copy-from-index", dockerfile: "FROM busybox\nRUN echo zero > /z\nFROM busybox\nCOPY --from=0 /z /from-zero\n", files: &[], args: &[], only: None },
    Case { name: "healthcheck-none", dockerfile: "FROM busybox\nHEALTHCHECK --interval=1m30s --timeout=3s --retries=3 CMD [\"true\"]\nHEALTHCHECK NONE\n", files: &[], args: &[], only: None },
    Case { name: "expose-volume-forms", dockerfile: "FROM busybox\nEXPOSE 80 443/tcp 53/udp\nVOLUME [\"/a\", \"/b\"]\nVOLUME /c /d\n", files: &[], args: &[], only: None },
    Case { name: "line-continuations", dockerfile: "FROM busybox\n# comment\nRUN echo a \\\n  # inner comment\n  b \\\n\n  c > /cont.txt\nLABEL x=1 \\\n      y=2\n", files: &[], args: &[], only: None },
    Case { name: "escape-directive", dockerfile: "# escape=`\nFROM busybox\nRUN echo one `\n  two > /esc.txt\n", files: &[], args: &[], only: None },
    Case { name: "onbuild-child", dockerfile: "FROM busybox\nONBUILD RUN echo triggered > /trig.txt\nONBUILD ENV T=1\n", files: &[], args: &[], only: None },
    Case { name: "run-deletes-and-opaque", dockerfile: "FROM busybox\nRUN rm -rf /home && mkdir /home && echo new > /home/only\nRUN rm /bin/sh.missing 2>/dev/null; rm -f /bin/vi\n", files: &[], args: &[], only: None },
    Case { name: "arg-defaults-chain", dockerfile: "FROM busybox\nARG A=one\nARG B=${A}-two\nENV C=${B}-three\nRUN echo $C > /c\n", files: &[], args: &[], only: None },
    Case { name: "arg-override", dockerfile: "FROM busybox\nARG A=default\nRUN echo $A > /a\n", files: &[], args: &["--build-arg", "A=override"], only: None },
    Case { name: "env-refers-env", dockerfile: "FROM busybox\nENV A=1\nENV B=${A}2 C=$A$A\nENV PATH=/opt/bin:$PATH\nRUN echo $B $C $PATH > /e\n", files: &[], args: &[], only: None },
    Case { name: "label-quoting", dockerfile: "FROM busybox\nLABEL \"com.example.vendor\"=\"ACME Inc\" version=\"1.0\" description=\"multi \\\n word\"\nLABEL single='quoted value'\n", files: &[], args: &[], only: None },
    Case { name: "user-numeric", dockerfile: "FROM busybox\nUSER 1234:5678\nRUN id > /tmp/id\n", files: &[], args: &[], only: None },
    Case { name: "user-then-root", dockerfile: "FROM busybox\nUSER nobody\nRUN id > /tmp/a\nUSER root\nRUN id > /b && chmod 644 /b\n", files: &[], args: &[], only: None },
    Case { name: "workdir-env", dockerfile: "FROM busybox\nENV BASE=/srv\nWORKDIR $BASE/app\nRUN pwd > p.txt\n", files: &[], args: &[], only: None },
    Case { name: "workdir-existing", dockerfile: "FROM busybox\nWORKDIR /tmp\nWORKDIR /etc\n", files: &[], args: &[], only: None },
    Case { name: "copy-into-existing-dir", dockerfile: "FROM busybox\nCOPY f.txt /etc\nCOPY f.txt /tmp/\n", files: &[("f.txt", "f")], args: &[], only: None },
    Case { name: "copy-json-form-spaces", dockerfile: "FROM busybox\nCOPY [\"a b.txt\", \"/with space/\"]\n", files: &[("a b.txt", "spaced")], args: &[], only: None },
    Case { name: "copy-deep-tree", dockerfile: "FROM busybox\nCOPY tree /tree\n", files: &[("tree/a/b/c/d/e.txt", "e"), ("tree/a/x.txt", "x"), ("tree/z/empty", ""), ("tree/.hidden", "h")], args: &[], only: None },
    Case { name: "copy-multiple-dirs", dockerfile: "FROM busybox\nCOPY d1 d2 /merged/\n", files: &[("d1/a", "a"), ("d1/s/x", "x"), ("d2/b", "b"), ("d2/s/y", "y")], args: &[], only: None },
    Case { name: "copy-overwrite", dockerfile: "FROM busybox\nCOPY f.txt /etc/passwd.new\nCOPY g.txt /etc/passwd.new\n", files: &[("f.txt", "f"), ("g.txt", "gg")], args: &[], only: None },
    Case { name: "copy-wildcard-dir", dockerfile: "FROM busybox\nCOPY dir* /out/\n", files: &[("dir1/a", "a"), ("dir2/b", "b"), ("other/c", "c")], args: &[], only: None },
    Case { name: "dockerignore-dockerfile-kept", dockerfile: "FROM busybox\nCOPY . /ctx/\n", files: &[(".dockerignore", "Dockerfile\n.dockerignore\n*.md\n"), ("README.md", "r"), ("keep.txt", "k")], args: &[], only: None },
    Case { name: "dockerignore-doublestar", dockerfile: "FROM busybox\nCOPY . /ctx/\n", files: &[(".dockerignore", "**/node_modules\n**/*.log\n!important.log\n"), ("app/node_modules/x", "x"), ("app/src/main", "m"), ("a.log", "a"), ("important.log", "i"), ("sub/b.log", "b")], args: &[], only: None },
    Case { name: "add-gzip-tar", dockerfile: "FROM busybox\nADD files.tar.gz /gz/\n", files: &[], args: &[], only: None },
    Case { name: "run-pipes-and-quotes", dockerfile: "FROM busybox\nRUN echo 'single $HOME' \"double $HOME\" | tr a-z A-Z > /q\n", files: &[], args: &[], only: None },
    Case { name: "run-hardlinks", dockerfile: "FROM busybox\nRUN echo h > /h1 && ln /h1 /h2 && ln -s /h1 /h3\n", files: &[], args: &[], only: None },
    Case { name: "run-whiteout", dockerfile: "FROM busybox\nRUN rm /etc/group /bin/vi\n", files: &[], args: &[], only: None },
    Case { name: "run-chmod-lower", dockerfile: "FROM busybox\nRUN chmod 600 /etc/passwd && chown 1:1 /etc/group\n", files: &[], args: &[], only: None },
    Case { name: "run-opaque-dir", dockerfile: "FROM busybox\nRUN mkdir -p /d/old && echo o > /d/old/f\nRUN rm -rf /d && mkdir /d && echo n > /d/new\n", files: &[], args: &[], only: None },
    Case { name: "run-setuid-and-sticky", dockerfile: "FROM busybox\nRUN touch /s && chmod 4755 /s && mkdir /st && chmod 1777 /st\n", files: &[], args: &[], only: None },
    Case { name: "run-fixed-mtime", dockerfile: "FROM busybox\nRUN touch -d '2001-02-03 04:05:06' /t\n", files: &[], args: &[], only: None },
    Case { name: "run-exec-form-env", dockerfile: "FROM busybox\nENV X=y\nRUN [\"sh\", \"-c\", \"echo $X > /x\"]\n", files: &[], args: &[], only: None },
    Case { name: "stage-inherits-env", dockerfile: "FROM busybox AS base\nENV FROM_BASE=1\nWORKDIR /base\nFROM base\nRUN echo $FROM_BASE > f && pwd >> f\n", files: &[], args: &[], only: None },
    Case { name: "copy-from-stage-dir-chown", dockerfile: "FROM busybox AS b\nRUN mkdir -p /out/sub && echo 1 > /out/sub/one\nFROM busybox\nCOPY --from=b --chown=nobody:nobody /out /copied\n", files: &[], args: &[], only: None },
    Case { name: "copy-from-image", dockerfile: "FROM scratch\nCOPY --from=busybox /bin/busybox /bb\n", files: &[], args: &[], only: None },
    Case { name: "from-arg-override", dockerfile: "ARG IMG=nosuch\nFROM ${IMG}\nRUN echo ok > /ok\n", files: &[], args: &["--build-arg", "IMG=busybox"], only: None },
    Case { name: "cmd-shell-form", dockerfile: "FROM busybox\nCMD echo \"hello $HOME\"\n", files: &[], args: &[], only: None },
    Case { name: "entrypoint-inherited-cmd", dockerfile: "FROM busybox AS a\nCMD [\"base-cmd\"]\nFROM a\nENTRYPOINT [\"/bin/echo\"]\n", files: &[], args: &[], only: None },
    Case { name: "stopsignal-numeric-expose-env", dockerfile: "FROM busybox\nENV P=8080\nSTOPSIGNAL 9\nEXPOSE ${P}/tcp\nVOLUME /v/${P}\n", files: &[], args: &[], only: None },
    Case { name: "maintainer-and-label", dockerfile: "FROM busybox\nMAINTAINER Jane Doe <jane@example.com>\nLABEL maintainer=other\n", files: &[], args: &[], only: None },
    Case { name: "onbuild-trigger", dockerfile: "FROM case-onbuild-child:legacy\nRUN cat /trig.txt > /seen && echo $T >> /seen\n", files: &[], args: &[], only: None },
    Case { name: "empty-file-and-dir", dockerfile: "FROM busybox\nCOPY empty /empty\nCOPY emptydir/ /emptydir/\n", files: &[("empty", ""), ("emptydir/.keep", "")], args: &[], only: None },
    Case { name: "label-and-arg-history", dockerfile: "FROM busybox\nARG A=1\nARG B\nLABEL version=${A} empty=${B}\nRUN echo $A$B > /ab\n", files: &[], args: &["--build-arg", "B=2"], only: None },
];

/// Files of a case's context; `files.tar` for ADD is made here.
fn write_context(dir: &Path, c: &Case) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("Dockerfile"), c.dockerfile).unwrap();
    for (p, content) in c.files {
        let path = dir.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    if c.dockerfile.contains("files.tar") {
        let gz = c.dockerfile.contains("files.tar.gz");
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, mode) in [("top/a", &b"A\n"[..], 0o644), ("top/run.sh", &b"#!/bin/sh\n"[..], 0o755)] {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_uid(1000);
            h.set_gid(1000);
            h.set_mtime(1_600_000_000);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        if gz {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&bytes).unwrap();
            fs::write(dir.join("files.tar.gz"), e.finish().unwrap()).unwrap();
        } else {
            fs::write(dir.join("files.tar"), bytes).unwrap();
        }
    }
}

/// The config file of the (single) image in a docker-archive.
fn saved_config(archive: &Path) -> Value {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut a = tar::Archive::new(fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if p.ends_with(".json") {
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            files.insert(p, b);
        }
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let cfg = manifest[0]["Config"].as_str().unwrap();
    serde_json::from_slice(&files[cfg]).unwrap()
}

/// A tar's entries: path → "type mode uid:gid size link sha".
fn tree_of(tar_bytes: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().trim_start_matches("./").trim_end_matches('/').to_string();
        if p.is_empty() {
            continue;
        }
        // The runtime's files (Docker's init layer) and mount points.
        if matches!(
            p.as_str(),
            ".dockerenv" | "etc/hosts" | "etc/hostname" | "etc/resolv.conf" | "etc/mtab" | "proc" | "sys" | "dev"
        ) || p.starts_with("dev/")
        {
            continue;
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        let sum = if data.is_empty() { String::new() } else { strata_hex(&sha2::Sha256::digest(&data)) };
        let link = h.link_name().ok().flatten().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
        out.insert(
            p,
            format!(
                "{:?} {:o} {}:{} {} {link} {sum}",
                h.entry_type(),
                h.mode().unwrap_or(0),
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
                data.len()
            ),
        );
    }
    out
}

fn strata_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The parts of an image config compared: runtime config fields, history
/// (created_by with source hashes masked, empty_layer), author, layer count.
fn comparable(cfg: &Value) -> Value {
    let mut rt = serde_json::Map::new();
    let c = &cfg["config"];
    for k in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Healthcheck",
        "Shell",
        "OnBuild",
        "ArgsEscaped",
    ] {
        let v = c.get(k).cloned().unwrap_or(Value::Null);
        let empty = v.is_null()
            || v == Value::String(String::new())
            || v.as_array().is_some_and(|a| a.is_empty())
            || v.as_object().is_some_and(|o| o.is_empty());
        if !empty {
            rt.insert(k.into(), v);
        }
    }
    let hist: Vec<Value> = cfg["history"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|h| {
                    let mut by = h["created_by"].as_str().unwrap_or_default().to_string();
                    for kind in ["file:", "dir:", "multi:"] {
                        while let Some(i) = by.find(kind) {
                            let end = i + kind.len() + 64;
                            if by.len() >= end && by[i + kind.len()..end].chars().all(|c| c.is_ascii_hexdigit()) {
                                by.replace_range(i..end, &format!("{}<sum>", kind.trim_end_matches(':').to_uppercase()));
                            } else {
                                break;
                            }
                        }
                    }
                    // A downloaded file is named by its bare hash.
                    let by: String = by
                        .split(' ')
                        .map(|w| if w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()) { "<sum>" } else { w })
                        .collect::<Vec<_>>()
                        .join(" ");
                    serde_json::json!({"created_by": by, "empty_layer": h["empty_layer"].as_bool().unwrap_or(false), "comment": h["comment"]})
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "config": rt,
        "history": hist,
        "author": cfg["author"],
        "layers": cfg["rootfs"]["diff_ids"].as_array().map(|a| a.len()).unwrap_or(0),
    })
}

struct Built {
    config: Value,
    tree: BTreeMap<String, String>,
}

/// Docker's export shows its init layer's `/etc` even where the image has
/// none (`FROM scratch`): an empty `etc` only in Docker's tree is that.
fn drop_init_etc(docker: &mut BTreeMap<String, String>, strata: &BTreeMap<String, String>) {
    if !strata.contains_key("etc") && !docker.keys().any(|k| k.starts_with("etc/")) {
        docker.remove("etc");
    }
}

fn build_docker(d: &Dockerd, dir: &Path, c: &Case, builder: &str, tag: &str, work: &Path) -> Result<Built, String> {
    let mut cmd = d.cmd(&["build", "-q", "-t", tag]);
    cmd.args(c.args);
    if builder == "buildkit" {
        cmd.env("DOCKER_BUILDKIT", "1").args(["--network", "none"]);
    } else {
        cmd.env("DOCKER_BUILDKIT", "0");
    }
    cmd.arg(dir);
    let o = run_with(cmd, None);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let archive = work.join(format!("{tag}.docker.tar").replace(':', "_"));
    d.ok(&["save", "-o", archive.to_str().unwrap(), tag]);
    let cid = d.ok(&["create", tag, "x"]).trim().to_string();
    let out = d.cmd(&["export", &cid]).output().unwrap();
    d.ok(&["rm", &cid]);
    Ok(Built { config: saved_config(&archive), tree: tree_of(&out.stdout) })
}

fn build_strata(s: &Strata, dir: &Path, c: &Case, builder: &str, tag: &str, work: &Path) -> Result<Built, String> {
    let mut cmd = s.cmd(&["build", "-q", "--builder", builder, "-t", tag]);
    cmd.args(c.args).arg(dir);
    let o = run_with(cmd, None);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let archive = work.join(format!("{tag}.strata.tar").replace(':', "_"));
    s.ok(&["save", "-o", archive.to_str().unwrap(), tag]);
    let cid = s.ok(&["create", tag, "x"]).trim().to_string();
    let out = s.cmd(&["export", &cid]).output().unwrap();
    s.ok(&["rm", &cid]);
    Ok(Built { config: saved_config(&archive), tree: tree_of(&out.stdout) })
}

/// Every corpus Dockerfile, both builders: config, history and file tree
/// as Docker's.
#[test]
fn builds_match_docker() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let (s, work, d) = strata_and_docker();
    let mut failures = Vec::new();
    let mut total = 0;
    for c in CASES {
        let dir = work.join(c.name);
        write_context(&dir, c);
        for builder in ["legacy", "buildkit"] {
            if c.only.is_some_and(|o| o != builder) {
                continue;
            }
            total += 1;
            let tag = format!("case-{}:{builder}", c.name);
            let want = build_docker(&d, &dir, c, builder, &tag, &work);
            let got = build_strata(&s, &dir, c, builder, &tag, &work);
            match (want, got) {
                (Ok(mut w), Ok(g)) => {
                    drop_init_etc(&mut w.tree, &g.tree);
                    let (wc, gc) = (comparable(&w.config), comparable(&g.config));
                    let mut diffs = Vec::new();
                    if wc != gc {
                        diffs.push(format!("config:\n  docker {wc}\n  strata {gc}"));
                    }
                    for (p, v) in &w.tree {
                        match g.tree.get(p) {
                            Some(gv) if gv == v => {}
                            Some(gv) if v.starts_with("Directory") && gv.starts_with("Directory") => {
                                // Directory sizes/sums are meaningless; mode and owner count.
                                if v.split(' ').take(3).ne(gv.split(' ').take(3)) {
                                    diffs.push(format!("{p}: docker {v} strata {gv}"));
                                }
                            }
                            Some(gv) => diffs.push(format!("{p}: docker {v} strata {gv}")),
                            None => diffs.push(format!("{p}: only in docker ({v})")),
                        }
                    }
                    for p in g.tree.keys().filter(|p| !w.tree.contains_key(*p)) {
                        diffs.push(format!("{p}: only in strata"));
                    }
                    if !diffs.is_empty() {
                        failures.push(format!("{} [{builder}]:\n{}", c.name, diffs.join("\n")));
                    }
                }
                (Err(w), Err(_)) => {
                    eprintln!("{} [{builder}]: both failed (docker: {})", c.name, w.lines().last().unwrap_or_default())
                }
                (Err(w), Ok(_)) => failures.push(format!("{} [{builder}]: docker failed, strata built: {w}", c.name)),
                (Ok(_), Err(g)) => failures.push(format!("{} [{builder}]: strata failed: {g}", c.name)),
            }
        }
    }
    eprintln!("builds: {}/{total} agree with Docker", total - failures.len());
    assert!(failures.is_empty(), "{} of {total} differ:\n{}", failures.len(), failures.join("\n\n"));
}

/// Which steps a build took from the cache, in order, from its output:
/// the classic builder's ` ---> Using cache`, BuildKit's `#N CACHED`.
fn cached_steps(out: &str, builder: &str) -> Vec<(String, bool)> {
    let mut steps: Vec<(String, bool)> = Vec::new();
    if builder == "legacy" {
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("Step ") {
                let text = rest.split_once(" : ").map(|x| x.1).unwrap_or(rest);
                steps.push((text.to_string(), false));
            } else if line.trim() == "---> Using cache" {
                if let Some(s) = steps.last_mut() {
                    s.1 = true;
                }
            }
        }
    } else {
        let mut by_vertex: Vec<(String, String)> = Vec::new();
        for line in out.lines() {
            let Some(rest) = line.strip_prefix('#') else { continue };
            let Some((n, text)) = rest.split_once(' ') else { continue };
            if text.starts_with('[') && !text.starts_with("[internal]") && !text.contains("FROM ") {
                let t = text.split_once("] ").map(|x| x.1).unwrap_or(text);
                by_vertex.push((n.to_string(), t.to_string()));
                steps.push((t.to_string(), false));
            } else if text == "CACHED" {
                if let Some(i) = by_vertex.iter().position(|(v, _)| v == n) {
                    steps[i].1 = true;
                }
            }
        }
    }
    steps
}

/// The cache, step by step as Docker reports it: unchanged → all cached;
/// a touched source (mtime only) → cached; a chmod'ed source → misses from
/// that COPY on; another build arg → the RUN re-runs; `--no-cache`.
#[test]
fn cache_matches_docker() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let (s, work, d) = strata_and_docker();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for builder in ["legacy", "buildkit"] {
        // One context per tool, changed the same way.
        let dirs: Vec<PathBuf> =
            ["docker", "strata"].iter().map(|t| work.join(format!("cache-{builder}-{t}"))).collect();
        for dir in &dirs {
            fs::create_dir_all(dir).unwrap();
            fs::write(dir.join("Dockerfile"), "FROM busybox\nARG A\nCOPY f.txt /f.txt\nRUN echo $A > /a\nCOPY g.txt /g.txt\nRUN cat /f.txt /g.txt /a > /all\n").unwrap();
            fs::write(dir.join("f.txt"), "f\n").unwrap();
            fs::write(dir.join("g.txt"), "g\n").unwrap();
        }
        let build = |tool: usize, extra: &[&str]| -> Vec<(String, bool)> {
            let dir = &dirs[tool];
            let o = if tool == 0 {
                let mut c = d.cmd(&["build", "-t", "cachetest"]);
                if builder == "buildkit" {
                    c.env("DOCKER_BUILDKIT", "1").args(["--network", "none", "--progress", "plain"]);
                } else {
                    c.env("DOCKER_BUILDKIT", "0");
                }
                c.args(extra).arg(dir);
                run_with(c, None)
            } else {
                let mut c = s.cmd(&["build", "--builder", builder, "-t", "cachetest", "--progress", "plain"]);
                c.args(extra).arg(dir);
                run_with(c, None)
            };
            assert!(o.status.success(), "{builder} build {tool}: {}", String::from_utf8_lossy(&o.stderr));
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            cached_steps(&text, builder)
        };
        type Change = Box<dyn Fn(&Path)>;
        let steps: Vec<(&str, Change, Vec<&str>)> = vec![
            ("first build", Box::new(|_: &Path| {}), vec!["--build-arg", "A=1"]),
            ("unchanged", Box::new(|_: &Path| {}), vec!["--build-arg", "A=1"]),
            (
                "touch f.txt",
                Box::new(|p: &Path| {
                    let f = fs::File::options().write(true).open(p.join("f.txt")).unwrap();
                    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200))
                        .unwrap();
                }),
                vec!["--build-arg", "A=1"],
            ),
            (
                "chmod f.txt",
                Box::new(|p: &Path| {
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(p.join("f.txt"), fs::Permissions::from_mode(0o600)).unwrap();
                }),
                vec!["--build-arg", "A=1"],
            ),
            ("other build arg", Box::new(|_: &Path| {}), vec!["--build-arg", "A=2"]),
            ("--no-cache", Box::new(|_: &Path| {}), vec!["--build-arg", "A=2", "--no-cache"]),
        ];
        for (what, change, args) in &steps {
            for dir in &dirs {
                change(dir);
            }
            let (mut w, mut g) = (build(0, args), build(1, args));
            if builder == "buildkit" {
                // BuildKit shows independent (or cached) steps in any order.
                w.sort();
                g.sort();
            }
            report.push(format!("{builder} {what}: docker {w:?} strata {g:?}"));
            if w != g {
                failures.push(format!("{builder} {what}:\n  docker {w:?}\n  strata {g:?}"));
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Bad input: Docker's message (its key line) and a failing exit status,
/// no image made and no container or mount left behind.
#[test]
fn build_errors_match_docker() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let (s, work, d) = strata_and_docker();
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown-instruction", "FROM busybox\nRUN true\nRUNN x\n", &[]),
        ("missing-source", "FROM busybox\nCOPY nofile /x\n", &[]),
        ("outside-context", "FROM busybox\nCOPY ../secret /x\n", &[]),
        ("failing-run", "FROM busybox\nRUN false\n", &[]),
        ("failing-run-code", "FROM busybox\nRUN exit 3\n", &[]),
        ("unknown-target", "FROM busybox AS a\nRUN true\n", &["--target", "nosuch"]),
        ("no-from", "RUN true\n", &[]),
        ("empty", "# nothing\n", &[]),
        ("bad-chown-user", "FROM busybox\nCOPY --chown=nosuchuser f /f\n", &[]),
    ];
    // BuildKit 0.8 (Docker 20.10) builds `--chown=nosuchuser` anyway; strata
    // refuses it as the classic builder does.
    let skip = |name: &str, builder: &str| name == "bad-chown-user" && builder == "buildkit";
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (name, df, args) in cases {
        let dir = work.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("Dockerfile"), df).unwrap();
        fs::write(dir.join("f"), "f").unwrap();
        fs::write(work.join("secret"), "host secret").unwrap();
        for builder in ["legacy", "buildkit"] {
            if skip(name, builder) {
                continue;
            }
            let mut c = d.cmd(&["build", "-t", "errtest"]);
            if builder == "buildkit" {
                c.env("DOCKER_BUILDKIT", "1").args(["--network", "none", "--progress", "plain"]);
            } else {
                c.env("DOCKER_BUILDKIT", "0");
            }
            c.args(*args).arg(&dir);
            let w = run_with(c, None);
            let mut c = s.cmd(&["build", "--builder", builder, "-t", "errtest", "--progress", "plain"]);
            c.args(*args).arg(&dir);
            let g = run_with(c, None);
            let last = |o: &Output| {
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            let (wl, gl) = (last(&w), last(&g));
            report.push(format!(
                "{name} [{builder}] docker {:?} {wl:?}\n{name} [{builder}] strata {:?} {gl:?}",
                w.status.code(),
                g.status.code()
            ));
            if w.status.success() || g.status.success() || w.status.code() != g.status.code() {
                failures.push(format!(
                    "{name} [{builder}]: exit docker {:?} strata {:?}",
                    w.status.code(),
                    g.status.code()
                ));
            }
            // The substance of Docker's message is in strata's.
            let key = wl
                .rsplit("desc = ")
                .next()
                .unwrap_or(&wl)
                .trim_start_matches("error: ")
                .trim_start_matches("failed to solve: ")
                .to_string();
            let key = key.rsplit("failed to create LLB definition: ").next().unwrap_or(&key).to_string();
            if !gl.contains(&key) {
                failures.push(format!("{name} [{builder}]:\n  docker {wl}\n  strata {gl}"));
            }
        }
        assert!(!s.ok(&["images", "--format", "{{.Repository}}"]).contains("errtest"), "{name}: an image was made");
        assert!(
            !s.ok(&["ps", "-a", "--format", "{{.Names}}"]).contains("strata-build"),
            "{name}: a step container was left"
        );
    }
    eprintln!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A one-file HTTP server on 127.0.0.1 for ADD of a URL; returns its port.
fn serve_file(body: &'static [u8]) -> u16 {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 15 Nov 1994 12:45:26 GMT\r\nContent-Type: text/plain\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    port
}

/// ADD of a URL (name, mode 0600, contents, as Docker's classic builder
/// and BuildKit make them), and the contexts Docker reads from stdin: a
/// Dockerfile alone, a tar, `-f -`.
#[test]
fn add_url_and_stdin_contexts() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let (s, work, d) = strata_and_docker();
    let port = serve_file(b"fetched over http\n");
    let dir = work.join("url");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), format!("FROM busybox\nADD http://127.0.0.1:{port}/files/data.txt /downloaded/\nADD http://127.0.0.1:{port}/renamed.txt /named\n")).unwrap();
    let case = Case { name: "url", dockerfile: "", files: &[], args: &[], only: None };
    for builder in ["legacy", "buildkit"] {
        let tag = format!("url:{builder}");
        let w = build_docker(&d, &dir, &case, builder, &tag, &work).unwrap();
        let g = build_strata(&s, &dir, &case, builder, &tag, &work).unwrap();
        for p in ["downloaded/data.txt", "named"] {
            assert_eq!(w.tree.get(p), g.tree.get(p), "{builder} {p}");
            assert!(g.tree[p].contains(" 100600 "), "{builder} {p}: mode 0600: {}", g.tree[p]);
        }
        assert_eq!(comparable(&w.config), comparable(&g.config), "{builder}");
    }

    // A Dockerfile alone on stdin: an empty context.
    let o = run_with(s.cmd(&["build", "-q", "-t", "stdin:df", "-"]), Some("FROM busybox\nRUN echo from-stdin > /s\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(s.ok(&["run", "--rm", "stdin:df", "cat", "/s"]), "from-stdin\n");
    // A tar context on stdin.
    let ctx = work.join("tarctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY hello.txt /\n").unwrap();
    fs::write(ctx.join("hello.txt"), "from a tar\n").unwrap();
    let t = Command::new("tar").arg("-C").arg(&ctx).args(["-c", "."]).output().unwrap().stdout;
    let mut c = s.cmd(&["build", "-q", "-t", "stdin:tar", "-"]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&t).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(s.ok(&["run", "--rm", "stdin:tar", "cat", "/hello.txt"]), "from a tar\n");
    // -f - with a directory context, and --iidfile.
    let iid = work.join("iid");
    let mut c = s.cmd(&["build", "-q", "-f", "-", "--iidfile", iid.to_str().unwrap(), "-t", "stdin:f"]);
    c.arg(&ctx);
    let o = run_with(c, Some("FROM busybox\nCOPY hello.txt /again\n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read_to_string(&iid).unwrap(), String::from_utf8_lossy(&o.stdout).trim());
    assert_eq!(s.ok(&["run", "--rm", "stdin:f", "cat", "/again"]), "from a tar\n");
}

/// Ctrl-C in the middle of a RUN: exit 130, the step container killed and
/// removed, nothing mounted, no image tagged; the next build works.
#[test]
fn interrupted_build_leaves_nothing() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let (s, work) = strata_with_busybox();
    let dir = work.join("slow");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN echo first > /first\nRUN sleep 60\n").unwrap();
    let mut c = s.cmd(&["build", "-t", "slow:1", "--progress", "plain"]);
    c.arg(&dir).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let t0 = std::time::Instant::now();
    while !s.ok(&["ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.Command}}"]).contains("sleep 60") {
        assert!(t0.elapsed() < std::time::Duration::from_secs(30), "the RUN step never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(s.ok(&["ps", "-aq"]), "", "the step container is gone");
    let root = s.dir.path().join("root").to_string_lossy().to_string();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.lines().any(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&root))), "nothing mounted");
    assert!(!s.ok(&["images"]).contains("slow"), "no image tagged");
    // The finished step is cache; the next build uses it and completes.
    fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN echo first > /first\nRUN true\n").unwrap();
    let out = run_with(s.cmd(&["build", "-t", "slow:1", "--progress", "plain", dir.to_str().unwrap()]), None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CACHED"));
}

/// Docker's layer limit: a classic-style build past 125 layers fails with
/// Docker's `max depth exceeded`; a BuildKit-style one warns and makes an
/// image that strata runs (Docker could not).
#[test]
fn layer_limit() {
    if !is_root() {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let (s, work) = strata_with_busybox();
    let dir = work.join("deep");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("f"), "f").unwrap();
    // busybox's one layer and 125 more.
    let df: String =
        std::iter::once("FROM busybox\n".to_string()).chain((1..=125).map(|i| format!("COPY f /f{i}\n"))).collect();
    fs::write(dir.join("Dockerfile"), df).unwrap();
    let o = run_with(s.cmd(&["build", "--builder", "legacy", "-t", "deep:legacy", dir.to_str().unwrap()]), None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("max depth exceeded"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run_with(s.cmd(&["build", "-q", "--builder", "buildkit", "-t", "deep:bk", dir.to_str().unwrap()]), None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("more than 125 layers"));
    assert_eq!(s.ok(&["inspect", "-f", "{{len .RootFS.Layers}}", "deep:bk"]), "126\n");
    assert_eq!(s.ok(&["run", "--rm", "deep:bk", "cat", "/f125"]), "f");
}
