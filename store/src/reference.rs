//! Image references (`[registry/]repo[:tag][@digest]`), parsed and shown
//! the way Docker does: `docker.io/library/busybox:latest` is shown as
//! `busybox:latest`, one-component names live under `library/`.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The default registry of names without one.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag of references without one.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed reference. `repo` is the *familiar* repository name (no
/// `docker.io/`, no `library/`), e.g. `ia/busybox` or
/// `127.0.0.1:5000/ia/busybox`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// Familiar repository name.
    pub repo: String,
    /// Tag, if given.
    pub tag: Option<String>,
    /// Digest, if given.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse a reference; the error text is Docker's.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() {
            return Err(Error::BadReference("repository name must have at least one component".into()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                (r, Some(Digest::parse(d).map_err(|_| Error::BadReference("invalid digest format".into()))?))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        if is_image_id(name) {
            return Err(Error::IdAsRepositoryName(name.to_string()));
        }
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(Error::BadReference(format!("invalid tag format {t:?}")));
            }
        }
        let repo = familiar(name)?;
        Ok(Reference { repo, tag: tag.map(str::to_string), digest })
    }

    /// Parse, and add the default tag when there is neither tag nor digest.
    pub fn parse_tagged(s: &str) -> Result<Reference> {
        let mut r = Reference::parse(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// `repo:tag` of a tagged reference.
    pub fn with_tag(repo: &str, tag: &str) -> Reference {
        Reference { repo: repo.to_string(), tag: Some(tag.to_string()), digest: None }
    }

    /// The registry host and the repository path on it
    /// (`("docker.io", "library/busybox")`).
    pub fn registry_and_path(&self) -> (String, String) {
        let (domain, path) = split_domain(&self.repo);
        match domain {
            Some(d) => (d.to_string(), path.to_string()),
            None if !path.contains('/') => (DEFAULT_REGISTRY.to_string(), format!("library/{path}")),
            None => (DEFAULT_REGISTRY.to_string(), path.to_string()),
        }
    }

    /// Fully qualified name, as podman shows: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        let (d, p) = self.registry_and_path();
        let mut s = format!("{d}/{p}");
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(dg) = &self.digest {
            s.push('@');
            s.push_str(&dg.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// Validate a repository name and return its familiar form.
fn familiar(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::BadReference("repository name must have at least one component".into()));
    }
    if name.len() > 255 {
        return Err(Error::BadReference("repository name must not be more than 255 characters".into()));
    }
    let (domain, path) = split_domain(name);
    if let Some(d) = domain {
        let ok = !d.is_empty()
            && d.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !ok {
            return Err(Error::BadReference(format!("invalid domain {d:?}")));
        }
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Error::BadReference(format!("repository name ({}) must be lowercase", docker_remote_name(name))));
    }
    for comp in path.split('/') {
        if comp.is_empty() {
            return Err(Error::BadReference("repository name components must not be empty".into()));
        }
        if !valid_component(comp) {
            return Err(Error::BadReference(format!(
                "repository name component {comp:?} must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*"
            )));
        }
    }
    let mut path = path.to_string();
    let domain = match domain {
        Some("docker.io") | Some("index.docker.io") | Some("registry-1.docker.io") => None,
        d => d,
    };
    if domain.is_none() {
        if let Some(p) = path.strip_prefix("library/") {
            if !p.contains('/') {
                path = p.to_string();
            }
        }
    }
    Ok(match domain {
        Some(d) => format!("{d}/{path}"),
        None => path,
    })
}

/// The repository name Docker's lowercase error shows: its first
/// component counts as a registry when it has a `.` or `:`, is `localhost`
/// or is not lowercase; a one-component name on Docker Hub is shown with
/// `library/`.
fn docker_remote_name(name: &str) -> String {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first => {
            rest.to_string()
        }
        Some(_) => name.to_string(),
        None => format!("library/{name}"),
    }
}

/// A name that is an image ID (64 lowercase hex digits): Docker refuses it
/// as a repository name, since it could not be told apart from the ID.
fn is_image_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("busybox", Some("busybox")),
            ("busybox:1.35", Some("busybox:1.35")),
            ("docker.io/library/busybox:latest", Some("busybox:latest")),
            ("library/busybox", Some("busybox")),
            ("ia/busybox:1.35", Some("ia/busybox:1.35")),
            ("localhost/ia/layered:1", Some("localhost/ia/layered:1")),
            ("127.0.0.1:5000/ia/busybox:1.35", Some("127.0.0.1:5000/ia/busybox:1.35")),
            ("127.0.0.1:5000/ia/busybox", Some("127.0.0.1:5000/ia/busybox")),
            (
                "ia/layered@sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef",
                Some("ia/layered@sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"),
            ),
            ("Bad/Name:x", None),
            ("a//b", None),
            ("a:", None),
            ("a:-x", None),
            ("-a", None),
            ("a@sha256:xyz", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = Reference::parse(input).ok().map(|r| r.to_string());
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn lowercase_message_is_dockers() {
        let e = Reference::parse("Bad/Name:x").unwrap_err();
        assert_eq!(e.to_string(), "invalid reference format: repository name (Name) must be lowercase");
        let e = Reference::parse("ia/Layered:1").unwrap_err();
        assert_eq!(e.to_string(), "invalid reference format: repository name (ia/Layered) must be lowercase");
        let e = Reference::parse("Layered").unwrap_err();
        assert_eq!(e.to_string(), "invalid reference format: repository name (library/Layered) must be lowercase");
    }

    #[test]
    fn errors_give_a_reason() {
        for bad in ["a//b", "a:", "a:-x", "-a", "a@sha256:xyz", "", "a/b_"] {
            let e = Reference::parse(bad).unwrap_err().to_string();
            assert!(!e.ends_with(": "), "{bad}: {e}");
        }
        let hex = "a".repeat(64);
        for r in [hex.clone(), format!("{hex}:1")] {
            let e = Reference::parse(&r).unwrap_err().to_string();
            assert_eq!(e, format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings"));
        }
    }

    #[test]
    fn registry_split() {
        let r = Reference::parse_tagged("busybox").unwrap();
        assert_eq!(r.registry_and_path(), ("docker.io".into(), "library/busybox".into()));
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        let r = Reference::parse("127.0.0.1:5000/ia/x:1").unwrap();
        assert_eq!(r.registry_and_path(), ("127.0.0.1:5000".into(), "ia/x".into()));
    }
}
