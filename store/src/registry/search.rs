//! `search`: Docker Hub's search API for docker.io, the `/v2/_catalog`
//! listing (filtered by the term) for any other registry.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::registry::client::{Body, Client, MAX_MANIFEST};
use crate::registry::config::RegistryConfig;

/// Docker Hub's search endpoint.
pub const HUB_SEARCH: &str = "https://index.docker.io";

/// One search result, with Docker's fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SearchResult {
    /// Repository name (`busybox`, `127.0.0.1:5000/ia/busybox`).
    pub name: String,
    /// Description (empty from a catalog).
    #[serde(default)]
    pub description: String,
    /// Stars (0 from a catalog).
    #[serde(default)]
    pub star_count: u64,
    /// Official image.
    #[serde(default)]
    pub is_official: bool,
    /// Automated build.
    #[serde(default)]
    pub is_automated: bool,
}

/// Split what the user typed into (registry, term): `127.0.0.1:5000/ia`
/// → (`127.0.0.1:5000`, `ia`); `busybox` → (`docker.io`, `busybox`).
pub fn split_term(s: &str) -> (String, String) {
    match s.split_once('/') {
        Some((r, t)) if r.contains('.') || r.contains(':') || r == "localhost" => {
            let r = if r == "index.docker.io" || r == "registry-1.docker.io" { "docker.io" } else { r };
            (r.to_string(), t.to_string())
        }
        _ => ("docker.io".to_string(), s.to_string()),
    }
}

/// Search `registry` for `term`, at most `limit` results. docker.io goes
/// through Hub's `/v1/search`; other registries list `/v2/_catalog` and
/// keep the repositories whose name contains `term` (all of them for an
/// empty term), named `registry/repo`.
pub fn search(cfg: &RegistryConfig, registry: &str, term: &str, limit: usize) -> Result<Vec<SearchResult>> {
    if registry == "docker.io" {
        return hub(cfg, term, limit);
    }
    let c = Client::for_repo(registry, "", cfg, false, None);
    let repos = c.catalog(1000)?;
    Ok(repos
        .into_iter()
        .filter(|r| r.contains(term))
        .take(limit)
        .map(|r| SearchResult { name: format!("{registry}/{r}"), ..Default::default() })
        .collect())
}

fn hub(cfg: &RegistryConfig, term: &str, limit: usize) -> Result<Vec<SearchResult>> {
    let c = Client::for_repo("docker.io", "", cfg, false, Some(HUB_SEARCH));
    let url = format!("{HUB_SEARCH}/v1/search?q={}&n={limit}", crate::registry::client::urlencode(term));
    let r = c.send("GET", &url, &[], Body::Empty)?;
    if r.status != 200 {
        return Err(Error::Registry(format!("Unexpected status code {}", r.status)));
    }
    #[derive(Deserialize)]
    struct Results {
        #[serde(default)]
        results: Vec<SearchResult>,
    }
    let body = r.bytes(MAX_MANIFEST)?;
    let res: Results =
        serde_json::from_slice(&body).map_err(|e| Error::Registry(format!("Docker Hub search response: {e}")))?;
    Ok(res.results.into_iter().take(limit).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms() {
        assert_eq!(split_term("127.0.0.1:5000/ia"), ("127.0.0.1:5000".into(), "ia".into()));
        assert_eq!(split_term("busybox"), ("docker.io".into(), "busybox".into()));
        assert_eq!(split_term("ia/busybox"), ("docker.io".into(), "ia/busybox".into()));
        assert_eq!(split_term("localhost/x"), ("localhost".into(), "x".into()));
    }
}
