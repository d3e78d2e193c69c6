//! The registry client and pull against an in-test HTTP server
//! (`support/httpd.rs`) doing what a real registry will not do on demand:
//! token auth, corrupt, truncated and slow blobs, 429/5xx, redirects to
//! another host, oversized and mislabelled manifests, mirrors. Uploads go
//! to the real Distribution registry; the full push/pull round trips are
//! in the cli's tests.

#[path = "support/distribution.rs"]
mod distribution;
#[path = "support/httpd.rs"]
mod httpd;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use httpd::{layer_tar, Content, Image, Reply, Request, Server};
use strata_store::registry::pull::{self, PullEvent, Pulled};
use strata_store::registry::{Client, RegistryConfig};
use strata_store::{Error, Reference, Store};

const GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A two-layer gzip image with some content.
fn image() -> Image {
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let l0 = layer_tar(&[("etc/hostname", b"strata\n"), ("bin/big", &big)]);
    let l1 = layer_tar(&[("etc/motd", b"hello\n")]);
    Image::new(&[l0, l1], gzip, GZIP)
}

struct TestStore {
    _dir: tempfile::TempDir,
    store: Store,
}

impl TestStore {
    fn new() -> TestStore {
        let dir = tempfile::Builder::new().prefix("strata-registry-test-").tempdir_in("/var/tmp").unwrap();
        let store = Store::open(&dir.path().join("root"), "vfs").unwrap();
        TestStore { _dir: dir, store }
    }

    fn pull_with(&self, reference: &str, cfg: &RegistryConfig) -> (strata_store::Result<Pulled>, Vec<PullEvent>) {
        let r = Reference::parse(reference).unwrap();
        let mut events = Vec::new();
        let res = pull::pull(&self.store, &r, cfg, None, &mut |e| events.push(e));
        (res, events)
    }

    fn pull(&self, reference: &str) -> strata_store::Result<Pulled> {
        self.pull_with(reference, &cfg(2.0)).0
    }

    /// Nothing was stored: no image, no reference, no layer (metadata or
    /// driver directory); what is left in downloads/ is verified (named by
    /// its own digest) or a partial download (`<hex>.partial`, a prefix of
    /// the blob the next attempt resumes), kept for the next attempt.
    fn assert_empty(&self) {
        let s = &self.store;
        assert!(s.images().unwrap().is_empty(), "images stored");
        assert!(s.repositories().unwrap().all().is_empty(), "references stored");
        assert!(s.layers().list().unwrap().is_empty(), "layers stored");
        assert_eq!(visible_entries(&s.root().join("vfs")), Vec::<String>::new(), "driver layers left");
        let dl = s.root().join("downloads/sha256");
        for name in entries(&dl) {
            assert!(!name.starts_with('.'), "temporary file left: {name}");
            if name.ends_with(".partial") {
                continue;
            }
            let bytes = std::fs::read(dl.join(&name)).unwrap();
            assert_eq!(httpd::digest(&bytes), format!("sha256:{name}"), "unverified download kept");
        }
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn visible_entries(dir: &Path) -> Vec<String> {
    // The driver's own temporaries (`.tmp-…`, `.rm-…`) are garbage it collects.
    entries(dir).into_iter().filter(|n| !n.starts_with('.')).collect()
}

fn cfg(timeout: f64) -> RegistryConfig {
    RegistryConfig { timeout: Some(Duration::from_secs_f64(timeout)), ..Default::default() }
}

/// A fake registry serving `img` as `t/img:1`, with `tweak` answering
/// first (return `None` to fall through).
fn registry(img: &Image, tweak: impl Fn(&Request) -> Option<Reply> + Send + Sync + 'static) -> Server {
    let mut c = Content::default();
    c.add("t/img", "1", img);
    Server::start(move |req| tweak(req).unwrap_or_else(|| c.reply(req)))
}

fn blob_route(img: &Image, i: usize) -> String {
    format!("/v2/t/img/blobs/{}", httpd::digest(&img.blobs[i]))
}

#[test]
fn pulls_gzip_zstd_and_plain_layers_with_docker_events() {
    let big: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_be_bytes()).collect();
    let tars = [layer_tar(&[("a", b"1")]), layer_tar(&[("b", &big)]), layer_tar(&[("c", b"3")])];
    // Each layer served differently: gzip, zstd, uncompressed.
    let mut img = Image::new(&tars, |t| t.to_vec(), "application/vnd.oci.image.layer.v1.tar");
    let blobs = vec![gzip(&tars[0]), zstd::encode_all(&tars[1][..], 3).unwrap(), tars[2].clone()];
    let types = [GZIP, "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar"];
    let mut m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    for (i, b) in blobs.iter().enumerate() {
        m["layers"][i] = serde_json::json!({"mediaType": types[i], "size": b.len(), "digest": httpd::digest(b)});
    }
    img.blobs = blobs;
    img.manifest = serde_json::to_vec(&m).unwrap();
    let srv = registry(&img, |_| None);
    let ts = TestStore::new();
    let name = format!("{}/t/img:1", srv.host());
    let (res, events) = ts.pull_with(&name, &cfg(5.0));
    let pulled = res.unwrap();
    assert_eq!(pulled.id.to_string(), img.id());
    assert_eq!(pulled.digest.to_string(), img.manifest_digest());
    assert!(pulled.updated);
    assert_eq!(events[0], PullEvent::PullingFrom("1".into(), "t/img".into()));
    let statuses = |id: &str| -> Vec<&'static str> {
        events
            .iter()
            .filter_map(|e| match e {
                PullEvent::Layer { id: i, status, progress: None } if i == id => Some(*status),
                _ => None,
            })
            .collect()
    };
    let short = &httpd::digest(&img.blobs[1])[7..19];
    assert_eq!(
        statuses(short),
        ["Pulling fs layer", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"]
    );
    assert!(matches!(events.last(), Some(PullEvent::Digest(d)) if d.to_string() == img.manifest_digest()));
    assert_eq!(ts.store.resolve(&name).unwrap().to_string(), img.id());
    // Nothing is left in downloads/ after a complete pull.
    assert!(entries(&ts.store.root().join("downloads/sha256")).is_empty());

    // Again: up to date, no layer lines, no blob fetched.
    let before = srv.requests().len();
    let (res, events) = ts.pull_with(&name, &cfg(5.0));
    assert!(!res.unwrap().updated);
    assert!(!events.iter().any(|e| matches!(e, PullEvent::Layer { .. })), "{events:?}");
    assert!(srv.requests()[before..].iter().all(|r| !r.path.contains("/blobs/") || r.path.ends_with(&img.id())));
}

#[test]
fn index_picks_the_requested_platform() {
    let amd = image();
    let arm = Image::new(&[layer_tar(&[("arm", b"64")])], gzip, GZIP);
    let mut c = Content::default();
    c.add("t/img", "amd", &amd);
    c.add("t/img", "arm", &arm);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": amd.manifest_type, "size": amd.manifest.len(), "digest": amd.manifest_digest(), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": arm.manifest_type, "size": arm.manifest.len(), "digest": arm.manifest_digest(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    }))
    .unwrap();
    c.add_manifest("t/img", "multi", "application/vnd.oci.image.index.v1+json", &index);
    let srv = Server::start(move |r| c.reply(r));
    let ts = TestStore::new();
    let r = Reference::parse(&format!("{}/t/img:multi", srv.host())).unwrap();
    let p = pull::pull(&ts.store, &r, &cfg(5.0), Some("linux/arm64"), &mut |_| {}).unwrap();
    assert_eq!(p.id.to_string(), arm.id());
    assert_eq!(p.digest.to_string(), httpd::digest(&index), "Digest: is the index's");
    let e = pull::pull(&ts.store, &r, &cfg(5.0), Some("linux/s390x"), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("no matching manifest for linux/s390x"), "{e}");
}

#[test]
fn bearer_token_flow() {
    let img = image();
    let port = Arc::new(Mutex::new(String::new()));
    let p2 = port.clone();
    let basic = format!("Basic {}", base64_encode("alice:s3cret"));
    let srv = registry(&img, move |req| {
        if req.route() == "/token" {
            // The token server checks the basic credentials and the scope.
            if req.header("authorization") != Some(basic.as_str()) {
                return Some(Reply::error(401, "UNAUTHORIZED", "incorrect username or password"));
            }
            assert!(req.path.contains("service=test-registry"), "{}", req.path);
            assert!(req.path.contains("scope=repository%3At%2Fimg%3Apull"), "{}", req.path);
            return Some(Reply::new(200, r#"{"token":"tok-123","expires_in":300}"#));
        }
        if req.header("authorization") != Some("Bearer tok-123") {
            let realm = format!("http://{}/token", p2.lock().unwrap());
            return Some(Reply::error(401, "UNAUTHORIZED", "authentication required").header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="test-registry",scope="repository:t/img:pull""#),
            ));
        }
        None
    });
    *port.lock().unwrap() = srv.host();
    let name = format!("{}/t/img:1", srv.host());

    // Without credentials the token server refuses: a clear error, nothing stored.
    let ts = TestStore::new();
    let e = ts.pull(&name).unwrap_err();
    assert!(e.to_string().contains("unauthorized"), "{e}");
    ts.assert_empty();

    let mut c = cfg(5.0);
    c.set_credentials(&srv.host(), "alice", "wrong");
    let e = ts.pull_with(&name, &c).0.unwrap_err();
    assert!(e.to_string().contains("incorrect username or password"), "{e}");

    c.set_credentials(&srv.host(), "alice", "s3cret");
    let p = ts.pull_with(&name, &c).0.unwrap();
    assert_eq!(p.id.to_string(), img.id());
    // One token for the whole pull: every later request carried it.
    assert_eq!(srv.count("GET", "/token"), 3);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn corrupt_blob_is_rejected_and_nothing_is_stored() {
    let img = image();
    let route = blob_route(&img, 0);
    let mut bad = img.blobs[0].clone();
    let n = bad.len();
    bad[n / 2] ^= 0xff;
    let srv = registry(&img, move |req| (req.route() == route).then(|| Reply::new(200, bad.clone())));
    let ts = TestStore::new();
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains(&httpd::digest(&img.blobs[0])), "{e}");
    ts.assert_empty();
    let bad = ts.store.root().join("downloads/sha256").join(&httpd::digest(&img.blobs[0])[7..]);
    assert!(!bad.exists());
}

#[test]
fn corrupt_config_is_rejected() {
    let img = image();
    let route = format!("/v2/t/img/blobs/{}", img.id());
    let srv = registry(&img, move |req| (req.route() == route).then(|| Reply::new(200, "{\"rootfs\":{}}")));
    let ts = TestStore::new();
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    ts.assert_empty();
}

#[test]
fn truncated_blob_is_an_error_after_retries() {
    let img = image();
    let route = blob_route(&img, 0);
    let full = img.blobs[0].clone();
    let srv = registry(&img, move |req| {
        (req.route() == route).then(|| {
            // Announces the full length, sends half, closes.
            let mut r = Reply::new(200, full[..full.len() / 2].to_vec());
            r.length = Some(full.len() as u64);
            r
        })
    });
    let ts = TestStore::new();
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    let text = e.to_string();
    assert!(text.contains(&httpd::digest(&img.blobs[0])), "{text}");
    assert_eq!(srv.count("GET", &blob_route(&img, 0)), 3, "retried 3 times");
    ts.assert_empty();

    // Without Content-Length the short body ends "cleanly": the size check catches it.
    let img2 = image();
    let route = blob_route(&img2, 0);
    let full = img2.blobs[0].clone();
    let srv = registry(&img2, move |req| {
        (req.route() == route).then(|| {
            let mut r = Reply::new(200, full[..full.len() - 10].to_vec());
            r.length = None;
            r
        })
    });
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    ts.assert_empty();
}

#[test]
fn stalled_response_times_out() {
    let img = image();
    let route = blob_route(&img, 0);
    let srv = registry(&img, move |req| {
        (req.route() == route).then(|| {
            let mut r = Reply::new(200, vec![0u8; 1000]);
            r.delay = Duration::from_secs(20);
            r
        })
    });
    let ts = TestStore::new();
    let t = Instant::now();
    let (res, _) = ts.pull_with(&format!("{}/t/img:1", srv.host()), &cfg(0.5));
    let e = res.unwrap_err();
    assert!(e.to_string().contains("timeout"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(15), "took {:?}", t.elapsed());
    ts.assert_empty();

    // A body that stalls half way (per-read timeout, not a total deadline).
    let img = image();
    let route = blob_route(&img, 0);
    let srv = registry(&img, move |req| {
        (req.route() == route).then(|| {
            let mut r = Reply::new(200, vec![0u8; 4000]);
            r.throttle = Some((1000, Duration::from_secs(20)));
            r
        })
    });
    let t = Instant::now();
    let e = ts.pull_with(&format!("{}/t/img:1", srv.host()), &cfg(0.5)).0.unwrap_err();
    assert!(e.to_string().contains("timeout") || e.to_string().contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(15), "took {:?}", t.elapsed());
    ts.assert_empty();
}

#[test]
fn slow_but_steady_body_is_not_a_timeout() {
    let img = image();
    let route = blob_route(&img, 0);
    let body = img.blobs[0].clone();
    let srv = registry(&img, move |req| {
        (req.route() == route).then(|| {
            let mut r = Reply::new(200, body.clone());
            r.throttle = Some((body.len() / 8 + 1, Duration::from_millis(300)));
            r
        })
    });
    let ts = TestStore::new();
    // 8 pauses of 0.3 s = 2.4 s in total, each under the 1 s timeout.
    let (res, _) = ts.pull_with(&format!("{}/t/img:1", srv.host()), &cfg(1.0));
    assert_eq!(res.unwrap().id.to_string(), img.id());
}

/// A server that answers `status` to the first `fails` requests for the
/// manifest and one blob, then normally.
fn flaky(img: &Image, status: u16, fails: usize) -> Server {
    let routes = ["/v2/t/img/manifests/1".to_string(), blob_route(img, 1)];
    let seen: Arc<Vec<AtomicUsize>> = Arc::new(vec![AtomicUsize::new(0), AtomicUsize::new(0)]);
    registry(img, move |req| {
        let i = routes.iter().position(|r| r == req.route())?;
        if seen[i].fetch_add(1, Ordering::SeqCst) < fails {
            let r = Reply::error(status, "TOOMANYREQUESTS", "slow down");
            return Some(if status == 429 { r.header("Retry-After", "1") } else { r });
        }
        None
    })
}

#[test]
fn retries_429_then_succeeds() {
    let img = image();
    let srv = flaky(&img, 429, 2);
    let ts = TestStore::new();
    let t = Instant::now();
    let p = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap();
    assert_eq!(p.id.to_string(), img.id());
    assert_eq!(srv.count("GET", "/v2/t/img/manifests/1"), 3);
    assert_eq!(srv.count("GET", &blob_route(&img, 1)), 3);
    // Retry-After: 1 was honoured (twice, in parallel with the other's).
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn retries_500_then_succeeds_and_gives_up_eventually() {
    let img = image();
    let srv = flaky(&img, 500, 1);
    let ts = TestStore::new();
    let p = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap();
    assert_eq!(p.id.to_string(), img.id());
    assert_eq!(srv.count("GET", &blob_route(&img, 1)), 2);

    let srv = flaky(&img, 503, 100);
    let ts = TestStore::new();
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(e.to_string().contains("503") || e.to_string().contains("toomanyrequests"), "{e}");
    assert_eq!(srv.count("GET", "/v2/t/img/manifests/1"), 4, "bounded retries");
    ts.assert_empty();
}

#[test]
fn redirect_to_another_host_drops_credentials() {
    let img = image();
    // Blob storage: another port, serves the blob under its own path.
    let blob = img.blobs[0].clone();
    let storage = Server::start(move |_| Reply::new(200, blob.clone()));
    let storage_host = storage.host();
    let route = blob_route(&img, 0);
    let basic = format!("Basic {}", base64_encode("bob:pw"));
    let srv = registry(&img, move |req| {
        if req.header("authorization") != Some(basic.as_str()) {
            return Some(
                Reply::error(401, "UNAUTHORIZED", "authentication required")
                    .header("WWW-Authenticate", r#"Basic realm="test""#),
            );
        }
        (req.route() == route)
            .then(|| Reply::new(307, "").header("Location", &format!("http://{storage_host}/bucket/obj?sig=abc")))
    });
    let ts = TestStore::new();
    let mut c = cfg(5.0);
    c.set_credentials(&srv.host(), "bob", "pw");
    let p = ts.pull_with(&format!("{}/t/img:1", srv.host()), &c).0.unwrap();
    assert_eq!(p.id.to_string(), img.id());
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(at_storage[0].path, "/bucket/obj?sig=abc");
    assert_eq!(at_storage[0].header("authorization"), None, "credentials leaked to blob storage");
    assert!(srv.requests().iter().any(|r| r.header("authorization").is_some()));
}

#[test]
fn oversized_manifest_is_refused() {
    let img = image();
    // 5 MiB of JSON whitespace inside an otherwise valid manifest.
    let mut big = img.manifest.clone();
    big.pop();
    big.extend(std::iter::repeat_n(b' ', 5 << 20));
    big.push(b'}');
    let big2 = big.clone();
    let srv = registry(&img, move |req| {
        (req.route() == "/v2/t/img/manifests/1").then(|| {
            Reply::new(200, big.clone()).header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
        })
    });
    let ts = TestStore::new();
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(e.to_string().contains("too large"), "{e}");
    ts.assert_empty();

    // Same without Content-Length: the reader stops at the cap.
    let srv = registry(&img, move |req| {
        (req.route() == "/v2/t/img/manifests/1").then(|| {
            let mut r = Reply::new(200, big2.clone())
                .header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json");
            r.length = None;
            r
        })
    });
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    ts.assert_empty();
}

#[test]
fn wrong_manifest_content_type() {
    let img = image();
    let srv = registry(&img, move |req| {
        (req.route() == "/v2/t/img/manifests/1")
            .then(|| Reply::new(200, "<html>login page</html>").header("Content-Type", "text/html"))
    });
    let ts = TestStore::new();
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(e.to_string().contains("unsupported manifest media type \"text/html\""), "{e}");
    ts.assert_empty();

    // application/json with a known mediaType inside is accepted.
    let m = img.manifest.clone();
    let srv = registry(&img, move |req| {
        (req.route() == "/v2/t/img/manifests/1")
            .then(|| Reply::new(200, m.clone()).header("Content-Type", "application/json"))
    });
    assert_eq!(ts.pull(&format!("{}/t/img:1", srv.host())).unwrap().id.to_string(), img.id());
}

#[test]
fn manifest_digest_is_verified() {
    let img = image();
    let srv = registry(&img, |req| {
        (req.route() == "/v2/t/img/manifests/1").then(|| {
            Reply::new(200, image().manifest)
                .header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
                .header("Docker-Content-Digest", &format!("sha256:{}", "0".repeat(64)))
        })
    });
    let ts = TestStore::new();
    let e = ts.pull(&format!("{}/t/img:1", srv.host())).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    // By digest: the bytes must hash to it.
    let other = Image::new(&[layer_tar(&[("x", b"y")])], gzip, GZIP);
    let d = other.manifest_digest();
    let served = img.manifest.clone();
    let srv = registry(&img, move |req| {
        req.route().contains("/manifests/sha256:").then(|| {
            Reply::new(200, served.clone())
                .header("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
        })
    });
    let e = ts.pull(&format!("{}/t/img@{d}", srv.host())).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    ts.assert_empty();
}

#[test]
fn missing_manifest_is_dockers_error() {
    let img = image();
    let srv = registry(&img, |_| None);
    let ts = TestStore::new();
    let name = format!("{}/t/nosuch:1", srv.host());
    let e = ts.pull(&name).unwrap_err();
    assert_eq!(e.to_string(), format!("manifest for {name} not found: manifest unknown: manifest unknown"));
}

#[test]
fn mirror_serves_docker_io_names() {
    let img = image();
    let mut c = Content::default();
    c.add("library/busybox", "latest", &img);
    let mirror = Server::start(move |r| c.reply(r));
    let ts = TestStore::new();
    let mut cfg = cfg(5.0);
    cfg.mirrors = vec![format!("http://{}", mirror.host())];
    let (res, events) = ts.pull_with("busybox", &cfg);
    let p = res.unwrap();
    assert_eq!(p.id.to_string(), img.id());
    assert_eq!(events[0], PullEvent::PullingFrom("latest".into(), "library/busybox".into()));
    assert_eq!(ts.store.resolve("busybox:latest").unwrap(), p.id);
    assert!(mirror.count("GET", "/v2/library/busybox/manifests/latest") == 1);
}

#[test]
fn chunked_and_monolithic_uploads_to_the_real_registry() {
    let reg = distribution::Registry::start(None);
    let r = Reference::parse(&format!("{}/t/up:1", reg.host)).unwrap();
    let c = Client::new(&r, &cfg(10.0), true);
    for (n, chunk) in [(1_000_000usize, Some(300_000u64)), (200_000, None), (0, None)] {
        let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let d = strata_store::Digest::of(&data);
        assert!(!c.has_blob(&d).unwrap());
        let mut seen = Vec::new();
        c.upload_blob(&d, &mut &data[..], n as u64, chunk, &mut |k| seen.push(k)).unwrap();
        assert_eq!(seen.last().copied(), Some(n as u64));
        if chunk.is_some() {
            assert_eq!(seen, [300_000, 600_000, 900_000, 1_000_000], "PATCH chunks, then PUT");
        }
        assert!(c.has_blob(&d).unwrap());
        let back = c.blob(&d).unwrap().bytes(1 << 24).unwrap();
        assert!(back == data, "blob of {n} bytes read back differently");
    }
    // A wrong digest is refused by the registry: an error, not a stored blob.
    let data = vec![1u8; 1000];
    let wrong = strata_store::Digest::of(b"something else");
    let e = c.upload_blob(&wrong, &mut &data[..], 1000, None, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("digest invalid"), "{e}");
    assert!(!c.has_blob(&wrong).unwrap());
}
