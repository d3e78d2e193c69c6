//! `RUN --mount=…` specifications (BuildKit's CSV syntax): bind mounts of
//! the context or another stage (read-only), persistent cache directories,
//! and tmpfs.

use crate::Error;

/// One `--mount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunMount {
    /// `type=bind`: `source` (in the context, or in stage/image `from`)
    /// at `target`, read-only.
    Bind {
        /// Path in the source tree.
        source: String,
        /// Path in the container.
        target: String,
        /// Stage or image (None: the build context).
        from: Option<String>,
    },
    /// `type=cache`: a directory kept between builds, keyed by `id`
    /// (default: the target).
    Cache {
        /// Path in the container.
        target: String,
        /// Cache identity.
        id: String,
        /// Owner and mode of a new cache directory.
        uid: u32,
        /// Group of a new cache directory.
        gid: u32,
        /// Mode of a new cache directory.
        mode: u32,
    },
    /// `type=tmpfs`.
    Tmpfs {
        /// Path in the container.
        target: String,
        /// `size=` in bytes, if given.
        size: Option<String>,
    },
}

impl RunMount {
    /// Parse one specification.
    pub fn parse(spec: &str) -> Result<RunMount, Error> {
        let bad = |m: String| Error::Source(format!("failed to parse mount {spec}: {m}"));
        let mut ty = "bind".to_string();
        let (mut source, mut target, mut from, mut id) = (None, None, None, None);
        let (mut uid, mut gid, mut mode, mut size) = (0u32, 0u32, 0o755u32, None);
        for field in spec.split(',') {
            let (k, v) = field.split_once('=').map_or((field, None), |(k, v)| (k, Some(v)));
            let val = || v.map(str::to_string).ok_or_else(|| bad(format!("{k} needs a value")));
            match k.to_ascii_lowercase().as_str() {
                "type" => ty = val()?,
                "source" | "src" => source = Some(val()?),
                "target" | "dst" | "destination" => target = Some(val()?),
                "from" => from = Some(val()?),
                "id" => id = Some(val()?),
                "uid" => uid = val()?.parse().map_err(|_| bad("invalid uid".into()))?,
                "gid" => gid = val()?.parse().map_err(|_| bad("invalid gid".into()))?,
                "mode" => mode = u32::from_str_radix(&val()?, 8).map_err(|_| bad("invalid mode".into()))?,
                "size" => size = Some(val()?),
                "ro" | "readonly" | "readwrite" | "rw" | "sharing" | "required" => {}
                other => return Err(bad(format!("unexpected key '{other}'"))),
            }
        }
        let target = target.ok_or_else(|| bad("mount target is required".into()))?;
        if !target.starts_with('/') {
            return Err(bad(format!("mount target must be absolute: {target}")));
        }
        match ty.as_str() {
            "bind" => Ok(RunMount::Bind { source: source.unwrap_or_else(|| "/".into()), target, from }),
            "cache" => Ok(RunMount::Cache { id: id.unwrap_or_else(|| target.clone()), target, uid, gid, mode }),
            "tmpfs" => Ok(RunMount::Tmpfs { target, size }),
            "secret" | "ssh" => Err(bad(format!("mount type {ty} is not supported by strata yet"))),
            other => Err(bad(format!("unsupported mount type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            RunMount::parse("type=cache,target=/root/.cache,id=pip,uid=1,mode=0700").unwrap(),
            RunMount::Cache { target: "/root/.cache".into(), id: "pip".into(), uid: 1, gid: 0, mode: 0o700 }
        );
        assert_eq!(
            RunMount::parse("target=/src,source=app").unwrap(),
            RunMount::Bind { source: "app".into(), target: "/src".into(), from: None }
        );
        assert_eq!(
            RunMount::parse("type=bind,from=build,src=/o,dst=/in,ro").unwrap(),
            RunMount::Bind { source: "/o".into(), target: "/in".into(), from: Some("build".into()) }
        );
        assert_eq!(
            RunMount::parse("type=tmpfs,target=/t,size=1m").unwrap(),
            RunMount::Tmpfs { target: "/t".into(), size: Some("1m".into()) }
        );
        for bad in
            ["type=cache", "type=secret,target=/s", "type=weird,target=/x", "target=rel", "type=bind,target=/x,bogus=1"]
        {
            assert!(RunMount::parse(bad).is_err(), "{bad}");
        }
    }
}
