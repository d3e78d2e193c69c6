//! `pull`: resolve a manifest (choosing a platform from an index), fetch
//! the config and the missing layers in parallel (bounded), verify every
//! blob against its digest before it is used, then apply layers in order
//! and add the image. Verified downloads are kept in `<root>/downloads/`
//! until the image is complete, so an interrupted pull resumes without
//! fetching them again.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::archive::decompress;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::images::ImageMeta;
use crate::layers::BlobSource;
use crate::oci::{host_arch, Descriptor, Index, Manifest};
use crate::reference::Reference;
use crate::registry::client::Client;
use crate::registry::config::RegistryConfig;
use crate::registry::media;
use crate::Store;

/// Parallel layer downloads.
const PARALLEL: usize = 3;
/// Largest image config accepted.
const MAX_CONFIG: u64 = 16 << 20;

/// Progress of a pull, in Docker's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// `TAG: Pulling from REPO`
    PullingFrom(String, String),
    /// `ID: STATUS` for a layer (12-hex short blob digest); byte progress when known.
    Layer {
        /// Short ID.
        id: String,
        /// `Pulling fs layer`, `Waiting`, `Downloading`, `Verifying Checksum`,
        /// `Download complete`, `Extracting`, `Pull complete`, `Already exists`.
        status: &'static str,
        /// (done, total) bytes.
        progress: Option<(u64, u64)>,
    },
    /// A remark (skipped foreign layer…).
    Note(String),
    /// `Digest: …`
    Digest(Digest),
}

/// What a pull did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    /// The image ID (digest of its config).
    pub id: Digest,
    /// The digest of the manifest named by the reference (the index's
    /// digest when the reference named an index).
    pub digest: Digest,
    /// Whether the reference was created or moved (Docker's "Downloaded
    /// newer image"); false when it already named this image ("Image is up
    /// to date").
    pub updated: bool,
}

/// The platform to pull: `--platform os/arch[/variant]` or the host's.
pub fn platform_of(arg: Option<&str>) -> (String, String, Option<String>) {
    let host_arch = host_arch();
    match arg {
        Some(p) => {
            let mut it = p.split('/');
            let os = it.next().unwrap_or("linux").to_string();
            let arch = it.next().map(str::to_string).unwrap_or(host_arch);
            (os, arch, it.next().map(str::to_string))
        }
        None => ("linux".into(), host_arch, None),
    }
}

/// Pull `r` (tag or digest; a reference without either means `latest`)
/// into the store and point `r` (and `repo@digest`) at the image.
///
/// The caller holds the store's exclusive lock for the whole pull. Every
/// blob is verified against its digest (and layers against their diff-id)
/// before it is used; on any error nothing new is referenced, and
/// verified downloads stay in `<root>/downloads/` for the next attempt.
/// For docker.io the configured mirrors are tried first.
pub fn pull(
    store: &Store,
    r: &Reference,
    cfg: &RegistryConfig,
    platform: Option<&str>,
    events: &mut dyn FnMut(PullEvent),
) -> Result<Pulled> {
    let (registry, _) = r.registry_and_path();
    let mut last_err = None;
    if registry == "docker.io" {
        for m in &cfg.mirrors {
            let (_, repo) = r.registry_and_path();
            let c = Client::for_repo(&registry, &repo, cfg, false, Some(m));
            match pull_with(store, &c, r, platform, events) {
                Ok(id) => return Ok(id),
                Err(e) => {
                    events(PullEvent::Note(format!("mirror {m} failed: {e}; trying {registry}")));
                    last_err = Some(e);
                }
            }
        }
    }
    let c = Client::new(r, cfg, false);
    match pull_with(store, &c, r, platform, events) {
        Err(e) if last_err.is_some() && matches!(e, Error::Registry(_)) => {
            Err(Error::Registry(format!("{e} (mirrors failed too)")))
        }
        res => res,
    }
}

fn pull_with(
    store: &Store,
    c: &Client,
    r: &Reference,
    platform: Option<&str>,
    events: &mut dyn FnMut(PullEvent),
) -> Result<Pulled> {
    let reference = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".into(),
    };
    let shown = r.to_string();
    let head = if r.digest.is_some() { shown.clone() } else { reference.clone() };
    let (mut bytes, mut mt, top_digest) = c.manifest(&reference, &shown)?;
    events(PullEvent::PullingFrom(head, c.repo.clone()));
    if mt == media::DOCKER_LIST || mt == media::OCI_INDEX {
        let idx: Index = serde_json::from_slice(&bytes)
            .map_err(|source| Error::Json { what: format!("index of {shown}"), source })?;
        let (os, arch, variant) = platform_of(platform);
        let pick = idx
            .manifests
            .iter()
            .find(|m| {
                m.platform.as_ref().is_some_and(|p| {
                    p.os == os && p.architecture == arch && (variant.is_none() || p.variant == variant)
                })
            })
            .ok_or_else(|| {
                Error::Registry(format!("no matching manifest for {os}/{arch} in the manifest list entries"))
            })?;
        let (b, t, _) = c.manifest(&pick.digest.to_string(), &shown)?;
        bytes = b;
        mt = t;
    }
    if mt != media::DOCKER_MANIFEST && mt != media::OCI_MANIFEST {
        return Err(Error::Registry(format!("unsupported manifest media type {mt} for {shown}")));
    }
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|source| Error::Json { what: format!("manifest of {shown}"), source })?;

    // Config: fetch, verify, parse.
    let resp = c.blob(&m.config.digest)?;
    let config = resp.bytes(MAX_CONFIG)?;
    let got = Digest::of(&config);
    if got != m.config.digest {
        return Err(Error::DigestMismatch {
            what: "image config".into(),
            expected: m.config.digest.to_string(),
            actual: got.to_string(),
        });
    }
    let parsed = crate::config::ImageConfig::parse(&config, "image config")?;
    if parsed.rootfs.diff_ids.len() != m.layers.len() {
        return Err(Error::Registry(format!(
            "manifest has {} layers, config {}",
            m.layers.len(),
            parsed.rootfs.diff_ids.len()
        )));
    }
    let image_id = got;
    let layers = store.layers();
    let mut chains = Vec::new();
    let mut parent: Option<Digest> = None;
    for d in &parsed.rootfs.diff_ids {
        let ch = Digest::chain(parent.as_ref(), d);
        chains.push(ch.clone());
        parent = Some(ch);
    }

    // As Docker: an image the store has already needs no layer work (and
    // no per-layer lines).
    // An image the store has is pinned (an `rmi` meanwhile cannot take its
    // layers before the references below are set); one removed meanwhile
    // counts as new.
    let have = store.imagedb().exists(&image_id) && store.image(&image_id).and_then(|i| store.pin_image(&i)).is_ok();
    let mut missing = Vec::new();
    if !have {
        for (i, l) in m.layers.iter().enumerate() {
            let id = short(&l.digest);
            if layers.pin(&chains[i]) {
                events(PullEvent::Layer { id, status: "Already exists", progress: None });
            } else {
                events(PullEvent::Layer { id, status: "Pulling fs layer", progress: None });
                missing.push(i);
            }
        }
    }

    let dl_dir = store.root().join("downloads").join("sha256");
    fs::create_dir_all(&dl_dir).map_err(|source| Error::Io { op: "create", path: dl_dir.clone(), source })?;
    // Download (in parallel) and apply (in order, as soon as a layer and
    // everything below it are here); each layer is checked against its
    // diff-id as it is applied.
    let mut apply = |i: usize, events: &mut dyn FnMut(PullEvent)| -> Result<()> {
        let d = &m.layers[i];
        let id = short(&d.digest);
        if !layers.pin(&chains[i]) {
            let path = dl_dir.join(d.digest.hex());
            events(PullEvent::Layer { id: id.clone(), status: "Extracting", progress: None });
            let f = match fs::File::open(&path) {
                Ok(f) => f,
                // Another pull stored this layer and dropped the download.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && layers.pin(&chains[i]) => {
                    events(PullEvent::Layer { id, status: "Pull complete", progress: None });
                    return Ok(());
                }
                Err(source) => return Err(Error::Io { op: "open", path: path.clone(), source }),
            };
            let mut tar = decompress(f).map_err(|e| Error::Registry(format!("layer {}: {e}", d.digest)))?;
            let parent = if i == 0 { None } else { Some(&chains[i - 1]) };
            layers.register(parent, &mut tar, Some(&parsed.rootfs.diff_ids[i]))?;
            // Stored now: a later attempt finds the layer, not the download.
            let _ = fs::remove_file(&path);
        }
        events(PullEvent::Layer { id, status: "Pull complete", progress: None });
        Ok(())
    };
    let layer_dirs: Vec<PathBuf> = chains.iter().map(|c| layers.dir_of(c)).collect();
    download_all(c, &m.layers, &missing, &dl_dir, &|i| layer_dirs[i].is_dir(), events, &mut apply)?;

    // The image appears with its references, under the publish lock.
    let _published = store.publish()?;
    // Remember where each layer's compressed form lives (push can skip or mount it).
    for (i, d) in m.layers.iter().enumerate() {
        let src = BlobSource {
            digest: d.digest.clone(),
            size: d.size,
            media_type: d.media_type.clone(),
            registry: c.registry.clone(),
            repo: c.repo.clone(),
        };
        layers.add_source(&chains[i], src)?;
    }

    // The image, then its metadata, then the references.
    let repo_digest = format!("{}@{}", r.repo, top_digest);
    let meta = ImageMeta {
        added: crate::config::format_time(chrono::Utc::now()),
        repo_digests: vec![repo_digest.clone()],
        ..Default::default()
    };
    store.add_image(&config, meta)?;
    let mut meta = store.imagedb().get(&image_id)?.unwrap_or_default();
    if !meta.repo_digests.contains(&repo_digest) {
        meta.repo_digests.push(repo_digest);
        store.imagedb().put(&image_id, &meta)?;
    }
    let mut repos = store.repositories()?;
    let digest_ref = Reference { repo: r.repo.clone(), tag: None, digest: Some(top_digest.clone()) };
    let requested = if r.digest.is_some() {
        digest_ref.clone()
    } else {
        Reference { repo: r.repo.clone(), tag: Some(reference.clone()), digest: None }
    };
    let updated = repos.get(&requested) != Some(&image_id);
    repos.set(&digest_ref, &image_id);
    repos.set(&requested, &image_id);
    repos.save()?;
    // Downloads of an earlier, interrupted attempt whose layers got stored.
    for d in &m.layers {
        let _ = fs::remove_file(dl_dir.join(d.digest.hex()));
    }
    events(PullEvent::Digest(top_digest.clone()));
    Ok(Pulled { id: image_id, digest: top_digest, updated })
}

/// Docker's short ID of a blob: 12 hex digits.
fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

/// Applies downloaded layer `i`, reporting progress through the events sink.
type Apply<'a> = dyn FnMut(usize, &mut dyn FnMut(PullEvent)) -> Result<()> + 'a;

/// What download workers tell the applying thread.
enum Msg {
    Event(PullEvent),
    Done(usize),
}

/// Download the layers `which` (ascending indexes into `descs`) into
/// `dir`, at most [`PARALLEL`] at a time, forwarding progress events, and
/// call `apply(i)` on this thread for each of them in order, as soon as
/// layer `i` and all of `which` before it are downloaded. After the first
/// failure no new download or apply starts; the first error is returned
/// once every worker has stopped.
fn download_all(
    c: &Client,
    descs: &[Descriptor],
    which: &[usize],
    dir: &Path,
    stored: &(dyn Fn(usize) -> bool + Sync),
    events: &mut dyn FnMut(PullEvent),
    apply: &mut Apply<'_>,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    if which.is_empty() {
        return Ok(());
    }
    let (tx, rx) = mpsc::channel::<Msg>();
    let queue = std::sync::Mutex::new(which.iter().copied());
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..PARALLEL.min(which.len()) {
            let tx = tx.clone();
            let (queue, failed, stored) = (&queue, &failed, &stored);
            handles.push(s.spawn(move || -> Result<()> {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                    let Some(i) = next else { return Ok(()) };
                    let r = download(c, &descs[i], dir, &|| stored(i), &mut |ev| {
                        let _ = tx.send(Msg::Event(ev));
                    });
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                        return r;
                    }
                    let _ = tx.send(Msg::Done(i));
                }
            }));
        }
        drop(tx);
        let mut ready = std::collections::BTreeSet::new();
        let mut next = 0;
        let mut first_err = None;
        for msg in rx.iter() {
            match msg {
                Msg::Event(ev) => events(ev),
                Msg::Done(i) => {
                    ready.insert(i);
                    while !failed.load(Ordering::Relaxed) && next < which.len() && ready.contains(&which[next]) {
                        if let Err(e) = apply(which[next], events) {
                            failed.store(true, Ordering::Relaxed);
                            first_err = Some(e);
                        }
                        next += 1;
                    }
                }
            }
        }
        for h in handles {
            let r = h.join().unwrap_or_else(|_| Err(Error::Registry("download thread panicked".into())));
            if let (Err(e), None) = (r, &first_err) {
                first_err = Some(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

/// Attempts per blob for failures that may pass (cut connections).
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// Fetch one blob into `dir/<hex>` unless a verified copy is there
/// already or `stored()` says its layer is. The bytes go to
/// `dir/<hex>.partial`, which the downloading process holds locked: a
/// second pull of the same blob waits for the first instead of fetching
/// it again. A partial file left by an interrupted pull is resumed with a
/// Range request; the digest always covers the whole blob. The file
/// appears as `dir/<hex>` (by rename) only once its size and digest match
/// the descriptor. Transport failures are retried; a digest mismatch or
/// an oversized blob is not (and its partial file is dropped).
fn download(
    c: &Client,
    d: &Descriptor,
    dir: &Path,
    stored: &dyn Fn() -> bool,
    events: &mut dyn FnMut(PullEvent),
) -> Result<()> {
    let id = short(&d.digest);
    let dest = dir.join(d.digest.hex());
    let complete = |events: &mut dyn FnMut(PullEvent)| {
        events(PullEvent::Layer { id: id.clone(), status: "Download complete", progress: None });
    };
    if dest.is_file() {
        // Verified before it was renamed into place.
        complete(events);
        return Ok(());
    }
    if d.media_type == media::DOCKER_FOREIGN || d.media_type.contains("nondistributable") {
        events(PullEvent::Note(format!("{id}: foreign layer (urls {:?}): fetching it from the registry", d.urls)));
    }
    let part = dir.join(format!("{}.partial", d.digest.hex()));
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { op, path: p, source }
    };
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&part)
        .map_err(io("create", &part))?;
    crate::locks::lock_file(&file);
    if dest.is_file() || stored() {
        // Another pull finished it while this one waited.
        complete(events);
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match fetch(c, d, &mut file, &part, &id, events) {
            Ok(()) => break,
            Err(Fetch::Retry(e)) if attempt < DOWNLOAD_ATTEMPTS => {
                tracing::debug!("retrying {}: {e}", d.digest);
                std::thread::sleep(std::time::Duration::from_millis(500 << attempt));
            }
            // Kept: the next attempt resumes where this one stopped.
            Err(Fetch::Retry(e)) => return Err(e),
            Err(Fetch::Fatal(e)) => {
                let _ = fs::remove_file(&part);
                return Err(e);
            }
        }
    }
    fs::rename(&part, &dest).map_err(io("rename", &dest))?;
    complete(events);
    Ok(())
}

/// A failed fetch: worth another try or not.
enum Fetch {
    Retry(Error),
    Fatal(Error),
}

/// One attempt at `d` into `file` (the partial download at `path`):
/// resumes after the bytes already there, then verifies and fsyncs.
fn fetch(
    c: &Client,
    d: &Descriptor,
    file: &mut fs::File,
    path: &Path,
    id: &str,
    events: &mut dyn FnMut(PullEvent),
) -> std::result::Result<(), Fetch> {
    use std::io::{Seek, SeekFrom};
    let io = |op: &'static str| move |source| Fetch::Fatal(Error::Io { op, path: path.to_path_buf(), source });
    let mut have = file.metadata().map_err(io("stat"))?.len();
    if d.size > 0 && have > d.size {
        file.set_len(0).map_err(io("truncate"))?;
        have = 0;
    }
    // Digest what is there already.
    let mut hasher = crate::digest::DigestWriter::new(std::io::sink());
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    while done < have {
        let n = file.read(&mut buf).map_err(io("read"))?;
        if n == 0 {
            break;
        }
        let _ = hasher.write_all(&buf[..n]);
        done += n as u64;
    }
    let total = d.size;
    if !(d.size > 0 && done == d.size) {
        let (resp, ranged) = c.blob_from(&d.digest, done).map_err(Fetch::Fatal)?;
        if !ranged && done > 0 {
            // The registry sent the whole blob: start over.
            file.set_len(0).map_err(io("truncate"))?;
            hasher = crate::digest::DigestWriter::new(std::io::sink());
            done = 0;
        } else if ranged {
            events(PullEvent::Note(format!("{id}: resuming download at byte {done}")));
        }
        file.seek(SeekFrom::Start(done)).map_err(io("seek"))?;
        let mut r = resp.into_reader();
        let mut last_report = done;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = file.sync_data();
                    return Err(Fetch::Retry(Error::Registry(format!("downloading {}: {e}", d.digest))));
                }
            };
            file.write_all(&buf[..n]).map_err(io("write"))?;
            let _ = hasher.write_all(&buf[..n]);
            done += n as u64;
            if d.size > 0 && done > d.size {
                return Err(Fetch::Fatal(Error::Registry(format!(
                    "blob {} is larger than its descriptor says ({} bytes)",
                    d.digest, d.size
                ))));
            }
            if done - last_report >= 512 << 10 || done == total {
                events(PullEvent::Layer { id: id.to_string(), status: "Downloading", progress: Some((done, total)) });
                last_report = done;
            }
        }
    }
    events(PullEvent::Layer { id: id.to_string(), status: "Verifying Checksum", progress: None });
    if d.size > 0 && done != d.size {
        return Err(Fetch::Retry(Error::Registry(format!(
            "blob {} truncated: got {done} of {} bytes",
            d.digest, d.size
        ))));
    }
    let got = hasher.finish().0;
    if got != d.digest {
        return Err(Fetch::Fatal(Error::DigestMismatch {
            what: format!("layer {}", d.digest),
            expected: d.digest.to_string(),
            actual: got.to_string(),
        }));
    }
    file.sync_all().map_err(io("fsync"))?;
    Ok(())
}
