//! Test support: a small threaded HTTP/1.1 server (one request per
//! connection) with a request log, replies that can be delayed, throttled,
//! cut short or mislabelled, and a fake OCI distribution registry built on
//! it. Shared by the store's and the cli's registry tests
//! (`#[path = …] mod httpd;`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_store::Digest;

/// A request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `HEAD`…
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (Content-Length bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

/// A reply and how to send it.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Content-Length announced: `Some(n)` (may exceed the body: a
    /// truncated reply), `None` = no header, body ends at close.
    pub length: Option<u64>,
    /// Pause before the status line.
    pub delay: Duration,
    /// Send the body `n` bytes at a time, pausing after each.
    pub throttle: Option<(usize, Duration)>,
}

impl Reply {
    /// `status` with `body`, Content-Length = body length.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        let body = body.into();
        Reply {
            status,
            headers: Vec::new(),
            length: Some(body.len() as u64),
            body,
            delay: Duration::ZERO,
            throttle: None,
        }
    }

    /// Add a header.
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// A distribution-style JSON error.
    pub fn error(status: u16, code: &str, message: &str) -> Reply {
        Reply::new(status, format!(r#"{{"errors":[{{"code":"{code}","message":"{message}","detail":null}}]}}"#))
            .header("Content-Type", "application/json")
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running server on 127.0.0.1:<free port>; stops on drop.
pub struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Start answering every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (handler, log) = (handler.clone(), log2.clone());
                std::thread::spawn(move || serve(conn, &*handler, &log));
            }
        });
        Server { addr, log, stop }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose method is `method` and whose path (without query) is `route`.
    pub fn count(&self, method: &str, route: &str) -> usize {
        self.requests().iter().filter(|r| r.method == method && r.route() == route).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let req = Request { method, path, headers, body };
    log.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    std::thread::sleep(reply.delay);
    let mut out = conn;
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    if let Some(n) = reply.length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    if out.write_all(head.as_bytes()).is_err() || req.method == "HEAD" {
        return;
    }
    match reply.throttle {
        None => {
            let _ = out.write_all(&reply.body);
        }
        Some((n, pause)) => {
            for chunk in reply.body.chunks(n.max(1)) {
                if out.write_all(chunk).is_err() || out.flush().is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        }
    }
    let _ = out.flush();
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// `sha256:<hex>` of `b`.
pub fn digest(b: &[u8]) -> String {
    Digest::of(b).to_string()
}

/// An uncompressed layer tar with these regular files (mode 0644, mtime 0).
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// An image as a registry holds it.
#[derive(Clone, Debug)]
pub struct Image {
    /// Config bytes (the image ID is their digest).
    pub config: Vec<u8>,
    /// Layer blobs as served (possibly compressed), bottom first.
    pub blobs: Vec<Vec<u8>>,
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// Manifest media type.
    pub manifest_type: String,
}

impl Image {
    /// An image of `tars` (uncompressed layer tars), each served as
    /// `compress(tar)` with media type `layer_type`, under a Docker schema 2
    /// manifest.
    pub fn new(tars: &[Vec<u8>], compress: impl Fn(&[u8]) -> Vec<u8>, layer_type: &str) -> Image {
        let diff_ids: Vec<String> = tars.iter().map(|t| digest(t)).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": tars.iter().map(|_| serde_json::json!({"created": "2024-01-01T00:00:00Z", "created_by": "test"})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let blobs: Vec<Vec<u8>> = tars.iter().map(|t| compress(t)).collect();
        let mt = "application/vnd.docker.distribution.manifest.v2+json";
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": digest(&config)},
            "layers": blobs.iter().map(|b| serde_json::json!({"mediaType": layer_type, "size": b.len(), "digest": digest(b)})).collect::<Vec<_>>(),
        }))
        .unwrap();
        Image { config, blobs, manifest, manifest_type: mt.to_string() }
    }

    /// The image ID.
    pub fn id(&self) -> String {
        digest(&self.config)
    }

    /// The manifest digest.
    pub fn manifest_digest(&self) -> String {
        digest(&self.manifest)
    }
}

/// What a fake registry serves: blobs by digest, manifests by
/// `repo:tag` and `repo@digest` (with their media types).
#[derive(Clone, Debug, Default)]
pub struct Content {
    /// Blobs by digest.
    pub blobs: HashMap<String, Vec<u8>>,
    /// Manifests by `repo:tag` / `repo@digest`: (media type, bytes).
    pub manifests: HashMap<String, (String, Vec<u8>)>,
}

impl Content {
    /// Serve `img` as `repo:tag`.
    pub fn add(&mut self, repo: &str, tag: &str, img: &Image) {
        self.blobs.insert(digest(&img.config), img.config.clone());
        for b in &img.blobs {
            self.blobs.insert(digest(b), b.clone());
        }
        self.add_manifest(repo, tag, &img.manifest_type, &img.manifest);
    }

    /// Serve a manifest (or index) as `repo:tag` and `repo@digest`.
    pub fn add_manifest(&mut self, repo: &str, tag: &str, media_type: &str, bytes: &[u8]) {
        self.manifests.insert(format!("{repo}:{tag}"), (media_type.to_string(), bytes.to_vec()));
        self.manifests.insert(format!("{repo}@{}", digest(bytes)), (media_type.to_string(), bytes.to_vec()));
    }

    /// The registry's answer to `req` (pull side only): `/v2/`,
    /// `/v2/<repo>/manifests/<ref>`, `/v2/<repo>/blobs/<digest>`.
    pub fn reply(&self, req: &Request) -> Reply {
        let route = req.route();
        if route == "/v2/" {
            return Reply::new(200, "{}").header("Content-Type", "application/json");
        }
        let Some(rest) = route.strip_prefix("/v2/") else { return Reply::new(404, "not found") };
        if let Some((repo, r)) = rest.split_once("/manifests/") {
            let key = if r.starts_with("sha256:") { format!("{repo}@{r}") } else { format!("{repo}:{r}") };
            return match self.manifests.get(&key) {
                Some((mt, b)) => {
                    Reply::new(200, b.clone()).header("Content-Type", mt).header("Docker-Content-Digest", &digest(b))
                }
                None => Reply::error(404, "MANIFEST_UNKNOWN", "manifest unknown"),
            };
        }
        if let Some((_, d)) = rest.split_once("/blobs/") {
            // `Range: bytes=N-`, as the Distribution registry honours it.
            let from = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            return match (self.blobs.get(d), from) {
                (Some(b), Some(n)) if n < b.len() => Reply::new(206, b[n..].to_vec())
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", &format!("bytes {n}-{}/{}", b.len() - 1, b.len()))
                    .header("Docker-Content-Digest", d),
                (Some(b), _) => Reply::new(200, b.clone())
                    .header("Content-Type", "application/octet-stream")
                    .header("Docker-Content-Digest", d),
                (None, _) => Reply::error(404, "BLOB_UNKNOWN", "blob unknown to registry"),
            };
        }
        Reply::new(404, "not found")
    }
}
