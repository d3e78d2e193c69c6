//! The command line of `strata-overlayfs`: fuse-overlayfs's and mount.fuse's.
//!
//! Accepted forms:
//! - `strata-overlayfs [-f] [-d] -o lowerdir=A:B,upperdir=U,workdir=W MOUNTPOINT`
//! - `strata-overlayfs SOURCE MOUNTPOINT -o rw,lowerdir=…,dev,suid` (what
//!   `mount -t fuse.strata-overlayfs SOURCE MOUNTPOINT -o …` runs)
//!
//! `-o` may repeat and may be glued (`-oro`). Generic mount options are
//! accepted; unknown options are an error.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::overlay::OverlayConfig;

/// Parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Layers.
    pub layers: LayerPaths,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The SOURCE argument of the mount.fuse form (shown as fsname).
    pub source: Option<String>,
    /// Stay in the foreground.
    pub foreground: bool,
    /// Debug logging.
    pub debug: bool,
    /// Mount read-only even with an upper layer.
    pub read_only: bool,
    /// Generic flags passed on to the kernel mount (dev, nosuid, …).
    pub flags: Vec<String>,
    /// Do not answer READDIRPLUS (`-o noreaddirplus`). By default the
    /// kernel gets entries with attributes in its adaptive mode (the first
    /// chunk of a listing, and more once names in it are looked up): a cold
    /// `du` or `rm -rf` then makes no LOOKUP per entry (du cold over the
    /// benchmark's tree 0.81 -> 0.41 s, 17.7k -> 4.0k requests; rm -rf 3.3k
    /// -> 2.3k requests), a cold `find` about the same time (fewer requests,
    /// but every entry's inode is read), and the daemon keeps a node per
    /// listed entry until the kernel forgets it (peak RSS after find 3.4 ->
    /// 8.4 MiB). A cold listing that stats nothing pays for the first
    /// chunk's inodes (`ls -f` of 10k entries over 10 layers ~12 -> ~25 ms).
    pub no_readdirplus: bool,
}

/// Layer paths as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerPaths {
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    /// Upper layer.
    pub upper: Option<PathBuf>,
    /// Work directory.
    pub work: Option<PathBuf>,
}

impl From<&LayerPaths> for OverlayConfig {
    fn from(c: &LayerPaths) -> OverlayConfig {
        OverlayConfig { lowers: c.lowers.clone(), upper: c.upper.clone(), work: c.work.clone() }
    }
}

/// Generic options that only matter to the kernel mount or are no-ops here.
const GENERIC_FLAGS: &[&str] = &[
    "rw",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nodiratime",
    "diratime",
    "sync",
    "async",
    "dirsync",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "_netdev",
    "nofail",
    "defaults",
    "allow_other",
    "allow_root",
    "default_permissions",
    "lazytime",
    "nolazytime",
    "silent",
    "loud",
    "noacl",
    "static_nlink",
    "xattr_permissions=0",
];

/// Options of fuse-overlayfs or the kernel that are accepted and ignored, by prefix.
const IGNORED_KEYS: &[&str] = &[
    "fsname",
    "subtype",
    "context",
    "fscontext",
    "defcontext",
    "rootcontext",
    "timeout",
    "threaded",
    "fsync",
    "redirect_dir",
    "index",
    "xino",
    "metacopy",
    "uidmapping",
    "gidmapping",
    "max_idle_threads",
    "volatile",
    "userxattr",
    "x-",
    "comment",
    "xattr_permissions",
    "squash_to_root",
    "squash_to_uid",
    "squash_to_gid",
];

fn split_lowers(v: &str) -> Result<Vec<PathBuf>> {
    // `\:` escapes a colon inside a path, as in the kernel's lowerdir syntax.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ':' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    if out.iter().any(|p| p.is_empty()) {
        return Err(Error::Config(format!("lowerdir={v}: empty layer path")));
    }
    Ok(out.into_iter().map(PathBuf::from).collect())
}

fn split_opts(s: &str) -> Vec<String> {
    // Options are comma separated; `\,` escapes a comma.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if n != ',' {
                        cur.push('\\');
                    }
                    cur.push(n);
                }
            }
            ',' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

/// Parse the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options> {
    let mut o = Options::default();
    let mut positional = Vec::new();
    let mut opts = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" | "--foreground" => o.foreground = true,
            "-d" | "--debug" => {
                o.debug = true;
                o.foreground = true
            }
            "-s" => {}
            "-o" => {
                let v = it.next().ok_or_else(|| Error::Config("-o needs a value".into()))?;
                opts.extend(split_opts(&v));
            }
            s if s.starts_with("-o") => opts.extend(split_opts(&s[2..])),
            "-h" | "--help" | "-V" | "--version" => {
                return Err(Error::Config(usage()));
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(Error::Config(format!("unknown argument {s}\n{}", usage())));
            }
            _ => positional.push(a),
        }
    }
    match positional.len() {
        1 => o.mountpoint = PathBuf::from(positional.remove(0)),
        2 => {
            o.source = Some(positional.remove(0));
            o.mountpoint = PathBuf::from(positional.remove(0));
        }
        0 => return Err(Error::Config(format!("no mountpoint given\n{}", usage()))),
        _ => return Err(Error::Config(format!("too many arguments: {positional:?}\n{}", usage()))),
    }
    for opt in opts {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (k, v) {
            ("lowerdir", Some(v)) => o.layers.lowers = split_lowers(v)?,
            ("upperdir", Some(v)) if !v.is_empty() => o.layers.upper = Some(PathBuf::from(v)),
            ("workdir", Some(v)) if !v.is_empty() => o.layers.work = Some(PathBuf::from(v)),
            ("ro", None) => o.read_only = true,
            ("debug", None) => o.debug = true,
            ("readdirplus", None) => o.no_readdirplus = false,
            ("noreaddirplus", None) => o.no_readdirplus = true,
            _ if GENERIC_FLAGS.contains(&opt.as_str()) => o.flags.push(opt.clone()),
            _ if IGNORED_KEYS.iter().any(|p| k == *p || (p.ends_with('-') && k.starts_with(p))) => {}
            _ => return Err(Error::Config(format!("unknown mount option '{opt}'"))),
        }
    }
    if o.layers.lowers.is_empty() {
        return Err(Error::Config("no lowerdir= given".into()));
    }
    match (&o.layers.upper, &o.layers.work) {
        (Some(_), None) => return Err(Error::Config("upperdir= needs workdir=".into())),
        (None, Some(_)) => return Err(Error::Config("workdir= needs upperdir=".into())),
        _ => {}
    }
    Ok(o)
}

/// One-paragraph usage text.
pub fn usage() -> String {
    "usage: strata-overlayfs [-f] [-d] -o lowerdir=DIR[:DIR…][,upperdir=DIR,workdir=DIR][,ro,…] MOUNTPOINT\n       \
     strata-overlayfs SOURCE MOUNTPOINT -o lowerdir=…[,upperdir=…,workdir=…]"
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("-o lowerdir=/a:/b,upperdir=/u,workdir=/w /m", vec!["/a", "/b"], Some("/u"), None, false),
            (
                "overlay /m -o rw,lowerdir=/a,upperdir=/u,workdir=/w,dev,suid",
                vec!["/a"],
                Some("/u"),
                Some("overlay"),
                false,
            ),
            ("-f -olowerdir=/a /m", vec!["/a"], None, None, true),
            ("-o lowerdir=/a\\:x:/b -o upperdir=/u -o workdir=/w /m", vec!["/a:x", "/b"], Some("/u"), None, false),
        ];
        for (line, lowers, upper, source, fg) in cases {
            let o = parse(args(line)).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(o.layers.lowers, lowers.iter().map(PathBuf::from).collect::<Vec<_>>(), "{line}");
            assert_eq!(o.layers.upper, upper.map(PathBuf::from), "{line}");
            assert_eq!(o.source.as_deref(), source, "{line}");
            assert_eq!(o.foreground, fg, "{line}");
            assert_eq!(o.mountpoint, PathBuf::from("/m"));
        }
    }

    #[test]
    fn rejected_forms() {
        let cases = [
            "-o lowerdir=/a",
            "/m",
            "-o lowerdir=/a,bogus /m",
            "-o lowerdir=/a,upperdir=/u /m",
            "-o lowerdir=/a::/b /m",
            "-x /m",
            "a b c",
        ];
        for line in cases {
            assert!(parse(args(line)).is_err(), "{line} should be rejected");
        }
    }
}
