//! The image store on the real test images: every archive layout loads with
//! the expected IDs, save reproduces the exact layers, bad bytes are refused
//! with the store unchanged. Runs on every driver (root needed for the
//! overlay ones; skipped with a note otherwise).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use strata_store::load::{load_dir, load_stream, LoadEvent};
use strata_store::save::{save, SaveItem};
use strata_store::{Digest, Reference, Store};

fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/images")
}

const BUSYBOX: &str = "sha256:d45aab138e67454af930438455e5f5a0f4b2684b2b12476e502345be1c4b039f";
const LAYERED: &str = "sha256:23501bdefb31f5dc8f9f3ddce35153883398b9f89ee0e56e8c9112b882762a95";
/// skopeo re-serialized the config of the OCI copies.
const LAYERED_OCI: &str = "sha256:40335dae3f35f97e5b51fd433e290bf60afaccb878a94e7e0f72da37ae31114a";
const BUSYBOX_OCI: &str = "sha256:8ed9ed740df4e55ed510c000c0f1f4f3e1e1afecad19ef32c3a913233074531b";

fn drivers() -> Vec<&'static str> {
    if rustix::process::geteuid().is_root() {
        vec!["vfs", "overlay", "fuse-overlay"]
    } else {
        eprintln!("not root: testing the vfs driver only");
        vec!["vfs"]
    }
}

fn store(driver: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::Builder::new().prefix("strata-store-test-").tempdir_in("/var/tmp").unwrap();
    let s = Store::open(&dir.path().join("root"), driver).unwrap();
    (dir, s)
}

fn load_file(s: &Store, rel: &str) -> strata_store::Result<Vec<LoadEvent>> {
    let p = images_dir().join(rel);
    if p.is_dir() {
        load_dir(s, &p, &mut |_| {})
    } else {
        load_stream(s, fs::File::open(&p).unwrap(), &mut |_| {})
    }
}

fn ids(s: &Store) -> Vec<String> {
    let mut v: Vec<String> = s.images().unwrap().iter().map(|i| i.id.to_string()).collect();
    v.sort();
    v
}

#[test]
fn every_layout_loads_with_the_expected_ids() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("min/ia-busybox.min.tar", &[BUSYBOX], &["ia/busybox:1.35", "ia/busybox:latest"]),
        ("min/ia-layered.min.tar", &[LAYERED], &["ia/layered:1"]),
        ("docker-save/ia-layered.tar", &[LAYERED], &["ia/layered:1"]),
        ("docker-save/ia-all.tar", &[BUSYBOX, LAYERED], &["ia/busybox:1.35", "ia/busybox:latest", "ia/layered:1"]),
        ("podman/ia-layered.docker.tar", &[LAYERED], &["localhost/ia/layered:1"]),
        ("oci-archive/ia-layered.oci.tar", &[LAYERED_OCI], &["ia/layered:1"]),
        ("oci-layout", &[BUSYBOX_OCI, LAYERED_OCI], &[]),
    ];
    for driver in drivers() {
        for (file, want_ids, want_tags) in cases {
            let (_d, s) = store(driver);
            let events = load_file(&s, file).unwrap_or_else(|e| panic!("{driver} {file}: {e}"));
            let mut want: Vec<String> = want_ids.iter().map(|x| x.to_string()).collect();
            want.sort();
            assert_eq!(ids(&s), want, "{driver} {file}");
            let tags: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    LoadEvent::Loaded(r) => Some(r.to_string()),
                    _ => None,
                })
                .collect();
            assert_eq!(tags, *want_tags, "{driver} {file}");
            // Layers shared by both images are stored once.
            let expected_layers =
                if want_ids.len() == 2 { 5 } else { s.images().unwrap()[0].config.rootfs.diff_ids.len() };
            assert_eq!(s.layers().list().unwrap().len(), expected_layers, "{driver} {file}");
        }
    }
}

#[test]
fn loading_twice_and_moving_a_tag() {
    let (_d, s) = store("vfs");
    load_file(&s, "min/ia-busybox.min.tar").unwrap();
    let again = load_file(&s, "min/ia-busybox.min.tar").unwrap();
    assert_eq!(again.len(), 2, "{again:?}");
    // Point ia/layered:1 at busybox, then load the real one: Docker's rename message.
    {
        let mut r = s.repositories().unwrap();
        r.set(&Reference::parse_tagged("ia/layered:1").unwrap(), &Digest::parse(BUSYBOX).unwrap());
        r.save().unwrap();
    }
    let ev = load_file(&s, "min/ia-layered.min.tar").unwrap();
    assert_eq!(
        ev,
        vec![
            LoadEvent::Renamed {
                reference: Reference::parse("ia/layered:1").unwrap(),
                old: Digest::parse(BUSYBOX).unwrap()
            },
            LoadEvent::Loaded(Reference::parse("ia/layered:1").unwrap()),
        ]
    );
}

/// Save, read the archive's layer tars back: each has its diff-id; and the
/// archive loads into a fresh store with the same IDs.
#[test]
fn save_reproduces_layers_byte_for_byte() {
    for driver in drivers() {
        let (d, s) = store(driver);
        load_file(&s, "docker-save/ia-all.tar").unwrap();
        let items = vec![
            SaveItem { id: Digest::parse(LAYERED).unwrap(), tags: vec![Reference::parse("ia/layered:1").unwrap()] },
            SaveItem { id: Digest::parse(BUSYBOX).unwrap(), tags: vec![Reference::parse("ia/busybox:1.35").unwrap()] },
        ];
        let out = d.path().join("saved.tar");
        {
            let mut f = fs::File::create(&out).unwrap();
            save(&s, &items, &mut f).unwrap();
        }
        // Each layer.tar member hashes to a diff-id of the images.
        let mut diff_ids: Vec<String> = Vec::new();
        for img in s.images().unwrap() {
            diff_ids.extend(img.config.rootfs.diff_ids.iter().map(|d| d.to_string()));
        }
        let mut ar = tar::Archive::new(fs::File::open(&out).unwrap());
        let mut n = 0;
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().ends_with("layer.tar") && e.header().entry_type() != tar::EntryType::Symlink {
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                assert!(diff_ids.contains(&Digest::of(&b).to_string()), "{driver}: a saved layer has a new digest");
                n += 1;
            }
        }
        assert_eq!(n, 5, "{driver}: 5 distinct layers, one a link to another");
        let (_d2, s2) = store(driver);
        let ev = load_stream(&s2, fs::File::open(&out).unwrap(), &mut |_| {}).unwrap();
        assert_eq!(ids(&s2), ids(&s));
        assert_eq!(ev.len(), 2);
    }
}

/// Flip one byte of a layer inside an archive: the load fails with a digest
/// mismatch and the store holds nothing new.
#[test]
fn corrupt_layer_is_refused_and_store_unchanged() {
    let (d, s) = store("vfs");
    load_file(&s, "min/ia-busybox.min.tar").unwrap();
    let before_layers = s.layers().list().unwrap();
    let before_ids = ids(&s);
    // Rewrite ia-layered.min.tar with one byte of the last-but-one layer changed.
    let src = images_dir().join("min/ia-layered.min.tar");
    let mut out = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(fs::File::open(src).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if path.to_string_lossy().starts_with("e8ed8896") && path.ends_with("layer.tar") {
            // Inside the first member's content (after the 512-byte header).
            let i = data.len() / 2;
            data[i] ^= 0x55;
        }
        h.set_cksum();
        out.append(&h, data.as_slice()).unwrap();
    }
    let bytes = out.into_inner().unwrap();
    let p = d.path().join("bad.tar");
    fs::write(&p, bytes).unwrap();
    let err = load_stream(&s, fs::File::open(&p).unwrap(), &mut |_| {}).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("digest") || msg.contains("malformed"), "{msg}");
    assert_eq!(ids(&s), before_ids);
    // Nothing new stays, and every listed layer reads back whole.
    assert_eq!(s.layers().list().unwrap(), before_layers);
    for c in s.layers().list().unwrap() {
        let l = s.layers().require(&c).unwrap();
        let mut sink = Vec::new();
        s.layers().tar(&l, &mut sink).unwrap();
    }
}

#[test]
fn garbage_is_a_clear_error() {
    let (_d, s) = store("vfs");
    for input in [&b"garbage\n"[..], &b""[..], &[0u8; 512][..]] {
        let e = load_stream(&s, input, &mut |_| {}).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    assert!(s.images().unwrap().is_empty());
}

/// Hostile archives: member names and manifest paths that try to leave the
/// scratch area, symlink members pointing at host files, a layer whose tar
/// escapes. Each load fails; nothing outside the store is touched and the
/// store is left as it was.
#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    let (d, s) = store("vfs");
    let outside = d.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), "keep").unwrap();
    let victim = outside.join("victim");
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cfg_hex = Digest::of(config).hex().to_string();
    // A layer tar that tries to write through `..` to the victim.
    let evil_layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        let data = b"pwned";
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = format!("../../../../../../../../{}", victim.display());
        h.as_gnu_mut().unwrap().name[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
        b.into_inner().unwrap()
    };
    let evil_diff = Digest::of(&evil_layer);
    let evil_config =
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{evil_diff}"]}}}}"#);
    let evil_cfg_hex = Digest::of(evil_config.as_bytes()).hex().to_string();
    // Raw headers: the tar crate's builder refuses the names these tests need.
    let archive = |members: Vec<(String, Vec<u8>, Option<String>)>| -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data, link) in members {
            let mut h = tar::Header::new_gnu();
            h.set_mode(if link.is_some() { 0o777 } else { 0o644 });
            h.set_size(data.len() as u64);
            h.set_entry_type(if link.is_some() { tar::EntryType::Symlink } else { tar::EntryType::Regular });
            let g = h.as_gnu_mut().unwrap();
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(t) = &link {
                g.linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(&data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    };
    let manifest = |config: &str, layers: &[&str]| -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!([{"Config": config, "RepoTags": ["evil/x:1"], "Layers": layers}]))
            .unwrap()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // The manifest names the victim as the config (traversal, absolute).
        (
            "config path traversal",
            archive(vec![(
                "manifest.json".into(),
                manifest(&format!("../../../../../../{}", victim.display()), &[]),
                None,
            )]),
        ),
        (
            "absolute config path",
            archive(vec![("manifest.json".into(), manifest(&victim.display().to_string(), &[]), None)]),
        ),
        // A member symlink to a host file used as the config.
        (
            "symlink member to a host file",
            archive(vec![
                ("manifest.json".into(), manifest("cfg.json", &[]), None),
                ("cfg.json".into(), Vec::new(), Some(victim.display().to_string())),
            ]),
        ),
        // Config whose name promises a digest it does not have.
        (
            "config digest mismatch",
            archive(vec![
                ("manifest.json".into(), manifest(&format!("{}.json", "0".repeat(64)), &[]), None),
                (format!("{}.json", "0".repeat(64)), config.to_vec(), None),
            ]),
        ),
        // A layer escaping with `..`.
        (
            "layer escaping the layer dir",
            archive(vec![
                ("manifest.json".into(), manifest(&format!("{evil_cfg_hex}.json"), &["l/layer.tar"]), None),
                (format!("{evil_cfg_hex}.json"), evil_config.clone().into_bytes(), None),
                ("l/layer.tar".into(), evil_layer.clone(), None),
            ]),
        ),
        // Members that try to unpack outside the scratch dir.
        (
            "member name traversal",
            archive(vec![
                (format!("../../../../{}", victim.display()), b"pwned".to_vec(), None),
                ("manifest.json".into(), manifest(&format!("{cfg_hex}.json"), &[]), None),
            ]),
        ),
        ("truncated archive", archive(vec![("manifest.json".into(), manifest("x.json", &[]), None)])[..700].to_vec()),
    ];
    for (what, bytes) in cases {
        let r = load_stream(&s, bytes.as_slice(), &mut |_| {});
        assert!(r.is_err(), "{what}: loaded {r:?}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep", "{what}: the victim changed");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1, "{what}: something appeared outside");
        assert!(s.images().unwrap().is_empty(), "{what}: an image was added");
        assert!(s.layers().list().unwrap().is_empty(), "{what}: a layer was left");
        assert!(s.repositories().unwrap().all().is_empty(), "{what}: a reference was added");
    }
}

/// `system check --repair` acts on findings made without a lock: each is
/// checked again under the publish lock. A config blob found orphaned
/// whose image is then loaded, and a reference found dangling whose image
/// then appears, are kept.
#[test]
fn repair_checks_each_finding_again() {
    let (_d, donor) = store("vfs");
    load_file(&donor, "min/ia-busybox.min.tar").unwrap();
    let id = donor.images().unwrap()[0].id.clone();
    let (_d2, s) = store("vfs");
    // The config blob alone, and a reference to the image, before it is there.
    s.blobs().put(&donor.blobs().get(&id).unwrap(), Some(&id)).unwrap();
    let repos = s.root().join("repositories.json");
    fs::write(&repos, format!(r#"{{"Repositories":{{"x":{{"x:1":"{id}"}}}}}}"#)).unwrap();
    let found = strata_store::check::check(&s, false).unwrap();
    let text: Vec<String> = found.iter().map(|f| f.to_string()).collect();
    assert!(text.iter().any(|t| t.starts_with(&format!("blob {id}"))), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("reference x:1")), "{text:?}");
    // Meanwhile the image arrives, and the reference is written again.
    load_file(&s, "min/ia-busybox.min.tar").unwrap();
    let _p = s.publish().unwrap();
    s.tag(&Reference::parse("x:1").unwrap(), &id).unwrap();
    drop(_p);
    let failed = strata_store::check::repair(&s, &found).unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    assert!(s.image(&id).is_ok(), "the image lost its config");
    assert_eq!(s.resolve("x:1").unwrap(), id);
    assert!(strata_store::check::check(&s, false).unwrap().is_empty());
}
