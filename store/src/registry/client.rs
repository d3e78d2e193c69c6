//! A blocking client for one repository on one registry (OCI distribution
//! API): bearer-token and basic auth, retries with backoff for 429/5xx and
//! transport errors on idempotent requests, redirects followed by hand so
//! credentials never go to another host, bounded manifest sizes, timeouts.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::registry::config::RegistryConfig;
use crate::registry::media;

/// Registry errors are store errors; this alias names them in signatures.
pub type RegistryError = Error;

/// Largest manifest or index accepted.
pub const MAX_MANIFEST: u64 = 4 << 20;
const ATTEMPTS: u32 = 4;

/// A request body that can be sent again on retry.
pub enum Body<'a> {
    /// No body.
    Empty,
    /// In memory.
    Bytes(&'a [u8]),
}

/// A client for `registry`/`repo`.
pub struct Client {
    agent: ureq::Agent,
    /// Registry as users name it (`127.0.0.1:5000`, `docker.io`).
    pub registry: String,
    /// `scheme://host[:port]` actually contacted.
    pub base: String,
    /// Repository path (`library/busybox`).
    pub repo: String,
    creds: Option<(String, String)>,
    /// `pull` or `pull,push`.
    actions: String,
    token: Mutex<Option<String>>,
    basic: Mutex<bool>,
    /// Extra repositories to ask pull access for (cross-repository mounts).
    extra_scopes: Mutex<Vec<String>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The text of a registry error response: `manifest unknown: manifest unknown`.
fn error_text(status: u16, body: &[u8]) -> String {
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(body) {
        if let Some(e) = b.errors.first() {
            return format!("{}: {}", e.code.to_ascii_lowercase().replace('_', " "), e.message);
        }
    }
    match status {
        401 => "unauthorized: authentication required".into(),
        403 => "denied: requested access to the resource is denied".into(),
        404 => "not found".into(),
        429 => "toomanyrequests: too many requests".into(),
        s => format!("unexpected status code {s}"),
    }
}

/// A response: status, headers we use, and the body reader.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// `Docker-Content-Digest`.
    pub digest: Option<String>,
    /// `Location`.
    pub location: Option<String>,
    /// `Content-Length`.
    pub length: Option<u64>,
    /// `Retry-After` seconds.
    retry_after: Option<u64>,
    /// `WWW-Authenticate`.
    authenticate: Option<String>,
    body: ureq::Body,
}

impl Response {
    /// The body as a reader (streaming).
    pub fn into_reader(self) -> impl Read + Send + 'static {
        self.body.into_reader()
    }

    /// The whole body, at most `limit` bytes.
    pub fn bytes(mut self, limit: u64) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        let mut r = self.body.as_reader().take(limit + 1);
        r.read_to_end(&mut v).map_err(|e| Error::Registry(format!("reading response: {e}")))?;
        if v.len() as u64 > limit {
            return Err(Error::Registry(format!("response larger than {limit} bytes")));
        }
        Ok(v)
    }
}

impl Client {
    /// A client for the repository of `r`, with credentials and transport
    /// chosen by `cfg`. `push` asks for push access.
    pub fn new(r: &Reference, cfg: &RegistryConfig, push: bool) -> Client {
        let (registry, repo) = r.registry_and_path();
        Self::for_repo(&registry, &repo, cfg, push, None)
    }

    /// A client for `registry`/`repo`; `endpoint` overrides the URL (mirrors).
    pub fn for_repo(registry: &str, repo: &str, cfg: &RegistryConfig, push: bool, endpoint: Option<&str>) -> Client {
        let t = cfg.timeout();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(t))
            .timeout_recv_response(Some(t))
            .timeout_per_read(Some(t))
            .timeout_per_write(Some(t))
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build();
        let host = if registry == "docker.io" { "registry-1.docker.io" } else { registry };
        let scheme = if cfg.is_insecure(registry) { "http" } else { "https" };
        let base =
            endpoint.map(|e| e.trim_end_matches('/').to_string()).unwrap_or_else(|| format!("{scheme}://{host}"));
        let creds = cfg.credentials(registry).or_else(|| {
            if registry == "docker.io" {
                cfg.credentials("https://index.docker.io/v1/")
            } else {
                None
            }
        });
        Client {
            agent: config.into(),
            registry: registry.to_string(),
            base,
            repo: repo.to_string(),
            creds,
            actions: if push { "pull,push".into() } else { "pull".into() },
            token: Mutex::new(None),
            basic: Mutex::new(false),
            extra_scopes: Mutex::new(Vec::new()),
        }
    }

    /// Use these credentials (login).
    pub fn with_credentials(mut self, user: &str, password: &str) -> Client {
        self.creds = Some((user.to_string(), password.to_string()));
        self
    }

    /// Also ask for pull access to `repo` (before a cross-repository mount).
    pub fn add_pull_scope(&self, repo: &str) {
        self.add_scope(&format!("repository:{repo}:pull"));
    }

    /// Also ask the token server for `scope` (`registry:catalog:*`…);
    /// the current token is dropped so the next request fetches a new one.
    pub fn add_scope(&self, scope: &str) {
        let mut s = self.extra_scopes.lock().unwrap_or_else(|e| e.into_inner());
        let scope = scope.to_string();
        if !s.contains(&scope) {
            s.push(scope);
            *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// `base/v2/<repo>/<rest>`
    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.repo, rest)
    }

    fn auth_header(&self) -> Option<String> {
        if let Some(t) = self.token.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Some(format!("Bearer {t}"));
        }
        if *self.basic.lock().unwrap_or_else(|e| e.into_inner()) {
            if let Some((u, p)) = &self.creds {
                return Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))));
            }
        }
        None
    }

    fn raw(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
        auth: bool,
    ) -> std::result::Result<Response, ureq::Error> {
        let mut b = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if auth {
            if let Some(a) = self.auth_header() {
                b = b.header("Authorization", a);
            }
        }
        let resp = match body {
            Body::Empty => {
                let req = b.body(()).map_err(ureq::Error::Http)?;
                self.agent.run(req)?
            }
            Body::Bytes(bytes) => {
                let req = b.body(bytes.to_vec()).map_err(ureq::Error::Http)?;
                self.agent.run(req)?
            }
        };
        let h = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(Response {
            status: resp.status().as_u16(),
            content_type: h("content-type").unwrap_or_default(),
            digest: h("docker-content-digest"),
            location: h("location"),
            length: h("content-length").and_then(|v| v.parse().ok()),
            retry_after: h("retry-after").and_then(|v| v.parse().ok()),
            authenticate: h("www-authenticate"),
            body: resp.into_body(),
        })
    }

    /// Send a request with auth, retries and (for GET/HEAD) redirects.
    pub fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Body<'_>) -> Result<Response> {
        let idempotent = matches!(method, "GET" | "HEAD");
        let mut url = url.to_string();
        let mut authed_once = false;
        let mut redirects = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let same_host = origin(&url) == origin(&self.base);
            let r = match self.raw(method, &url, headers, &body, same_host) {
                Ok(r) => r,
                Err(e) => {
                    if idempotent && attempt < ATTEMPTS {
                        backoff(attempt, None);
                        continue;
                    }
                    return Err(Error::Registry(transport_text(method, &url, &e)));
                }
            };
            match r.status {
                401 if !authed_once && same_host => {
                    authed_once = true;
                    self.authenticate(r.authenticate.as_deref())?;
                    continue;
                }
                301 | 302 | 303 | 307 | 308 if idempotent => {
                    redirects += 1;
                    if redirects > 5 {
                        return Err(Error::Registry(format!("too many redirects from {url}")));
                    }
                    let loc = r.location.ok_or_else(|| Error::Registry("redirect without Location".into()))?;
                    url = resolve_url(&url, &loc);
                    continue;
                }
                429 | 500 | 502 | 503 | 504 if idempotent && attempt < ATTEMPTS => {
                    backoff(attempt, r.retry_after);
                    continue;
                }
                _ => return Ok(r),
            }
        }
    }

    /// Answer a 401 challenge: fetch a bearer token, or switch to basic auth.
    fn authenticate(&self, challenge: Option<&str>) -> Result<()> {
        let c = challenge.unwrap_or("");
        let (scheme, params) = c.split_once(' ').unwrap_or((c, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if self.creds.is_none() {
                return Err(Error::Registry("unauthorized: authentication required".into()));
            }
            *self.basic.lock().unwrap_or_else(|e| e.into_inner()) = true;
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Registry(format!("unauthorized: unsupported authentication challenge {c:?}")));
        }
        let p = parse_challenge(params);
        let realm = p
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Error::Registry("bearer challenge without realm".into()))?;
        let mut url = realm.clone();
        let mut q = Vec::new();
        if let Some((_, s)) = p.iter().find(|(k, _)| k == "service") {
            q.push(format!("service={}", urlencode(s)));
        }
        if !self.repo.is_empty() {
            q.push(format!("scope={}", urlencode(&format!("repository:{}:{}", self.repo, self.actions))));
        }
        for s in self.extra_scopes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            q.push(format!("scope={}", urlencode(s)));
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&q.join("&"));
        let mut b = ureq::http::Request::builder().method("GET").uri(&url);
        if let Some((u, pw)) = &self.creds {
            b = b.header(
                "Authorization",
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"))),
            );
        }
        let req = b.body(()).map_err(|e| Error::Registry(format!("token request: {e}")))?;
        let resp = self.agent.run(req).map_err(|e| Error::Registry(transport_text("GET", &realm, &e)))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| Error::Registry(format!("token response: {e}")))?;
        if status != 200 {
            return Err(Error::Registry(format!("unauthorized: {}", error_text(status, &body))));
        }
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| Error::Registry(format!("token response: {e}")))?;
        let token = if t.token.is_empty() { t.access_token } else { t.token };
        if token.is_empty() {
            return Err(Error::Registry("token response without a token".into()));
        }
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }

    /// Check that the registry answers `/v2/` and accepts the credentials
    /// (`login`). `Ok(None)` when it does; `Ok(Some("401 Unauthorized"))`
    /// (the status as Docker quotes it) when it answers otherwise; `Err`
    /// for transport failures and token-server refusals.
    pub fn ping(&self) -> Result<Option<String>> {
        let url = format!("{}/v2/", self.base);
        let r = self.send("GET", &url, &[], Body::Empty)?;
        match r.status {
            200 => Ok(None),
            s => {
                let reason = ureq::http::StatusCode::from_u16(s).ok().and_then(|c| c.canonical_reason()).unwrap_or("");
                Ok(Some(format!("{s} {reason}").trim_end().to_string()))
            }
        }
    }

    /// Fetch a manifest by tag or digest: (bytes, media type, digest).
    /// The digest is verified when `reference` is one.
    pub fn manifest(&self, reference: &str, shown: &str) -> Result<(Vec<u8>, String, Digest)> {
        let r =
            self.send("GET", &self.url(&format!("manifests/{reference}")), &[("Accept", media::ACCEPT)], Body::Empty)?;
        if r.status != 200 {
            let status = r.status;
            let b = r.bytes(1 << 16).unwrap_or_default();
            if status == 404 {
                return Err(Error::Registry(format!("manifest for {shown} not found: {}", error_text(status, &b))));
            }
            return Err(Error::Registry(format!("fetching manifest for {shown}: {}", error_text(status, &b))));
        }
        if let Some(len) = r.length {
            if len > MAX_MANIFEST {
                return Err(Error::Registry(format!("manifest for {shown} is too large ({len} bytes)")));
            }
        }
        let ct = r.content_type.split(';').next().unwrap_or("").trim().to_string();
        let header_digest = r.digest.clone();
        let bytes = r.bytes(MAX_MANIFEST)?;
        let digest = Digest::of(&bytes);
        if let Ok(want) = Digest::parse(reference) {
            if want != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {shown}"),
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        if let Some(h) = header_digest.and_then(|h| Digest::parse(&h).ok()) {
            if h != digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {shown} (Docker-Content-Digest)"),
                    expected: h.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let media_type = if [media::DOCKER_MANIFEST, media::DOCKER_LIST, media::OCI_MANIFEST, media::OCI_INDEX]
            .contains(&ct.as_str())
        {
            ct
        } else {
            // Some registries send application/json: trust the document's mediaType.
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|_| Error::Registry(format!("unsupported manifest media type {ct:?} for {shown}")))?;
            match v.get("mediaType").and_then(|m| m.as_str()) {
                Some(m)
                    if [media::DOCKER_MANIFEST, media::DOCKER_LIST, media::OCI_MANIFEST, media::OCI_INDEX]
                        .contains(&m) =>
                {
                    m.to_string()
                }
                None if v.get("manifests").is_some() => media::OCI_INDEX.to_string(),
                None if v.get("layers").is_some() && v.get("config").is_some() => media::OCI_MANIFEST.to_string(),
                _ => return Err(Error::Registry(format!("unsupported manifest media type {ct:?} for {shown}"))),
            }
        };
        Ok((bytes, media_type, digest))
    }

    /// Open a blob for reading (following redirects to blob storage).
    pub fn blob(&self, d: &Digest) -> Result<Response> {
        let r = self.send("GET", &self.url(&format!("blobs/{d}")), &[], Body::Empty)?;
        if r.status != 200 {
            let s = r.status;
            let b = r.bytes(1 << 16).unwrap_or_default();
            return Err(Error::Registry(format!("fetching blob {d}: {}", error_text(s, &b))));
        }
        Ok(r)
    }

    /// Open blob `d` from byte `offset` on (an HTTP Range request). The
    /// flag says whether the registry honoured the range (206); if it
    /// sent the whole blob instead (200), the reader starts at byte 0.
    pub fn blob_from(&self, d: &Digest, offset: u64) -> Result<(Response, bool)> {
        if offset == 0 {
            return Ok((self.blob(d)?, false));
        }
        let range = format!("bytes={offset}-");
        let r = self.send("GET", &self.url(&format!("blobs/{d}")), &[("Range", &range)], Body::Empty)?;
        match r.status {
            206 => Ok((r, true)),
            200 => Ok((r, false)),
            s => {
                let b = r.bytes(1 << 16).unwrap_or_default();
                Err(Error::Registry(format!("fetching blob {d} from byte {offset}: {}", error_text(s, &b))))
            }
        }
    }

    /// Whether the repository has blob `d`.
    pub fn has_blob(&self, d: &Digest) -> Result<bool> {
        let r = self.send("HEAD", &self.url(&format!("blobs/{d}")), &[], Body::Empty)?;
        match r.status {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(Error::Registry(format!("checking blob {d}: {}", error_text(s, &[])))),
        }
    }

    /// Try a cross-repository mount of `d` from `from`; true if mounted.
    pub fn mount_blob(&self, d: &Digest, from: &str) -> Result<bool> {
        self.add_pull_scope(from);
        let url = self.url(&format!("blobs/uploads/?mount={d}&from={}", urlencode(from)));
        let r = self.send("POST", &url, &[("Content-Length", "0")], Body::Empty)?;
        Ok(r.status == 201)
    }

    fn upload_location(&self, r: &Response) -> Result<String> {
        let loc = r.location.clone().ok_or_else(|| Error::Registry("upload without Location".into()))?;
        Ok(resolve_url(&format!("{}/", self.base), &loc))
    }

    /// Upload blob `d` from `data` (its bytes): one PUT when `chunk` is
    /// None or the blob fits, else PATCH chunks then a final PUT.
    pub fn upload_blob(
        &self,
        d: &Digest,
        data: &mut dyn Read,
        size: u64,
        chunk: Option<u64>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let r = self.send("POST", &self.url("blobs/uploads/"), &[("Content-Length", "0")], Body::Empty)?;
        if r.status != 202 {
            let s = r.status;
            let b = r.bytes(1 << 16).unwrap_or_default();
            return Err(Error::Registry(format!("starting upload of {d}: {}", error_text(s, &b))));
        }
        let mut loc = self.upload_location(&r)?;
        let chunk = chunk.filter(|c| *c < size).unwrap_or(size.max(1));
        let mut sent = 0u64;
        let mut buf = vec![0u8; chunk.min(64 << 20) as usize];
        loop {
            let mut n = 0;
            while n < buf.len() {
                let k = data.read(&mut buf[n..]).map_err(|e| Error::Registry(format!("reading layer {d}: {e}")))?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            let last = sent + n as u64 >= size || n < buf.len();
            if last {
                let sep = if loc.contains('?') { '&' } else { '?' };
                let url = format!("{loc}{sep}digest={d}");
                let len = n.to_string();
                let r = self.send(
                    "PUT",
                    &url,
                    &[("Content-Type", "application/octet-stream"), ("Content-Length", &len)],
                    Body::Bytes(&buf[..n]),
                )?;
                if r.status != 201 {
                    let s = r.status;
                    let b = r.bytes(1 << 16).unwrap_or_default();
                    return Err(Error::Registry(format!("uploading {d}: {}", error_text(s, &b))));
                }
                progress(sent + n as u64);
                return Ok(());
            }
            let range = format!("{}-{}", sent, sent + n as u64 - 1);
            let len = n.to_string();
            let r = self.send(
                "PATCH",
                &loc,
                &[("Content-Type", "application/octet-stream"), ("Content-Range", &range), ("Content-Length", &len)],
                Body::Bytes(&buf[..n]),
            )?;
            if r.status != 202 {
                let s = r.status;
                let b = r.bytes(1 << 16).unwrap_or_default();
                return Err(Error::Registry(format!("uploading {d}: {}", error_text(s, &b))));
            }
            loc = self.upload_location(&r)?;
            sent += n as u64;
            progress(sent);
        }
    }

    /// Put a manifest under `tag`; returns its digest.
    pub fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<Digest> {
        let len = bytes.len().to_string();
        let r = self.send(
            "PUT",
            &self.url(&format!("manifests/{tag}")),
            &[("Content-Type", media_type), ("Content-Length", &len)],
            Body::Bytes(bytes),
        )?;
        if r.status != 201 {
            let s = r.status;
            let b = r.bytes(1 << 16).unwrap_or_default();
            return Err(Error::Registry(format!("pushing manifest: {}", error_text(s, &b))));
        }
        Ok(Digest::of(bytes))
    }

    /// Tags of the repository.
    pub fn tags(&self) -> Result<Vec<String>> {
        let r = self.send("GET", &self.url("tags/list"), &[], Body::Empty)?;
        if r.status != 200 {
            let s = r.status;
            let b = r.bytes(1 << 16).unwrap_or_default();
            return Err(Error::Registry(format!("listing tags of {}: {}", self.repo, error_text(s, &b))));
        }
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let t: Tags =
            serde_json::from_slice(&r.bytes(MAX_MANIFEST)?).map_err(|e| Error::Registry(format!("tags list: {e}")))?;
        Ok(t.tags.unwrap_or_default())
    }

    /// Repositories of the registry (`/v2/_catalog`).
    pub fn catalog(&self, n: usize) -> Result<Vec<String>> {
        self.add_scope("registry:catalog:*");
        let url = format!("{}/v2/_catalog?n={n}", self.base);
        let r = self.send("GET", &url, &[], Body::Empty)?;
        if r.status != 200 {
            return Err(Error::Registry(format!("Unexpected status code {}", r.status)));
        }
        #[derive(Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let c: Catalog =
            serde_json::from_slice(&r.bytes(MAX_MANIFEST)?).map_err(|e| Error::Registry(format!("catalog: {e}")))?;
        Ok(c.repositories)
    }
}

fn backoff(attempt: u32, retry_after: Option<u64>) {
    let ms = retry_after.map(|s| s.min(10) * 1000).unwrap_or(200u64 << attempt.min(5));
    std::thread::sleep(Duration::from_millis(ms));
}

/// A transport failure worded as Go's net/http does: `Get "URL": …`.
fn transport_text(method: &str, url: &str, e: &ureq::Error) -> String {
    let mut m = method.to_ascii_lowercase();
    if let Some(f) = m.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    match e {
        ureq::Error::Timeout(t) => format!("{m} {url:?}: timeout ({t})"),
        e => format!("{m} {url:?}: {e}"),
    }
}

/// `scheme://host[:port]` of a URL, lower-cased, with the default port
/// made explicit: what must match before credentials are sent.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = scheme.to_ascii_lowercase();
    let hostport = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = hostport.rsplit_once('@').map(|(_, h)| h).unwrap_or(hostport).to_ascii_lowercase();
    let has_port =
        hostport.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        format!("{scheme}://{hostport}")
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{scheme}://{hostport}:{port}")
    }
}

/// `key="value", key2=value2` pairs of a challenge.
fn parse_challenge(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, r)) = rest.split_once('=') else { break };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let r = r.trim_start();
        let (v, r) = if let Some(r) = r.strip_prefix('"') {
            match r.find('"') {
                Some(i) => (&r[..i], &r[i + 1..]),
                None => (r, ""),
            }
        } else {
            match r.find(',') {
                Some(i) => (&r[..i], &r[i..]),
                None => (r, ""),
            }
        };
        out.push((k, v.to_string()));
        rest = r.trim_start_matches([',', ' ']);
    }
    out
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Resolve `loc` (absolute URL, absolute path or relative) against `base`.
fn resolve_url(base: &str, loc: &str) -> String {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.to_string();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    if loc.starts_with('/') {
        format!("{}{}", &base[..host_end], loc)
    } else {
        let dir = base.rfind('/').filter(|i| *i >= host_end).map(|i| &base[..=i]).unwrap_or(&base[..host_end]);
        format!("{}{}{}", dir, if dir.ends_with('/') { "" } else { "/" }, loc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing() {
        let p = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.docker.io/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.docker.io".into()));
        assert_eq!(p[2].1, "repository:library/busybox:pull");
    }

    #[test]
    fn url_resolution() {
        for (b, l, want) in [
            (
                "http://h:5000/v2/x/blobs/uploads/",
                "/v2/x/blobs/uploads/abc?_state=1",
                "http://h:5000/v2/x/blobs/uploads/abc?_state=1",
            ),
            ("http://h:5000/v2/a", "https://s3.example/obj", "https://s3.example/obj"),
            ("http://h/v2/a/b", "c", "http://h/v2/a/c"),
        ] {
            assert_eq!(resolve_url(b, l), want);
        }
    }

    #[test]
    fn registry_error_text() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"1"}}]}"#;
        assert_eq!(error_text(404, body), "manifest unknown: manifest unknown");
    }
}
