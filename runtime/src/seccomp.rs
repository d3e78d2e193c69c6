//! Docker-format seccomp profiles → OCI `linux.seccomp`.
//!
//! Docker (moby) ships seccomp profiles in its own JSON format
//! (`profiles/seccomp/default.json`; Debian's `containers-common` installs a
//! member of the same family at [`DEFAULT_PROFILE`]). That format is a
//! superset of the OCI runtime-spec `LinuxSeccomp` object: besides
//! `defaultAction`, `defaultErrnoRet`, `architectures`, `flags`,
//! `listenerPath`, `listenerMetadata` and `syscalls[].{names, action, errnoRet,
//! args}` it has
//!
//! * `archMap`: `[{architecture, subArchitectures}]`, expanded to the native
//!   architecture plus its sub-architectures;
//! * per rule `name` (legacy, a single syscall), `comment`, and conditions
//!   `includes` / `excludes`, each `{caps, arches, minKernel}`.
//!
//! [`convert`] evaluates those conditions for one container on this host the
//! way moby's `setupSeccomp` does and produces the plain OCI object that runc
//! consumes:
//!
//! * a rule is dropped when any `excludes.arches` entry is the native
//!   architecture, when any `excludes.caps` entry is in the container's
//!   capability set, or when the running kernel is at least
//!   `excludes.minKernel`;
//! * a rule is dropped when `includes.arches` is non-empty and does not list
//!   the native architecture, when any `includes.caps` entry is missing from
//!   the capability set, or when the running kernel is older than
//!   `includes.minKernel`;
//! * every other rule is emitted with its names, action, `errnoRet` and args.
//!
//! Architecture names in `includes`/`excludes` are the short names moby uses
//! (`amd64`, `x86`, `x32`, `arm`, `arm64`, `ppc64le`, `s390x`, …), not
//! `SCMP_ARCH_*` names. Kernel versions compare on `<kernel>.<major>` only, so
//! `4.8.17-foo` satisfies `"minKernel": "4.8"`.
//!
//! Unlike moby, which passes strings through and lets runc reject them later,
//! this module checks every action, operator, flag, argument index and
//! `minKernel` value of the whole profile (also in rules that do not apply on
//! this host), so a typo in a profile is reported with its location before a
//! container is created.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag, LinuxSeccompOperator,
    LinuxSyscall,
};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Deserialize;

/// Where Debian's containers-common installs the default profile.
pub const DEFAULT_PROFILE: &str = "/usr/share/containers/seccomp.json";

/// Largest profile [`load`] reads; real profiles are a few tens of KiB.
const MAX_PROFILE_BYTES: u64 = 16 * 1024 * 1024;

/// Where the running kernel's release string (`uname -r`) is read from.
const OSRELEASE: &str = "/proc/sys/kernel/osrelease";

/// Highest syscall argument index (syscalls take at most six arguments).
const MAX_ARG_INDEX: usize = 5;

/// Errors reading or converting a profile.
///
/// `location` fields name the offending part of the profile, e.g.
/// `defaultAction` or `syscalls[12] (bpf, fanotify_init, …)`.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile file could not be read.
    #[error("reading seccomp profile {path}: {source}")]
    Read {
        /// The profile's path.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The profile file is larger than any sane profile.
    #[error("seccomp profile {path} is larger than {limit} bytes")]
    TooLarge {
        /// The profile's path.
        path: PathBuf,
        /// The size limit in bytes.
        limit: u64,
    },
    /// A conversion error in the profile read from `path`.
    #[error("seccomp profile {path}: {source}")]
    Profile {
        /// The profile's path.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: Box<SeccompError>,
    },
    /// The profile is not valid JSON or does not have the Docker profile shape.
    #[error("decoding seccomp profile: {0}")]
    Json(#[from] serde_json::Error),
    /// The profile has no `defaultAction`. (Moby treats an empty profile as
    /// "no seccomp"; here disabling seccomp is the caller's `unconfined`.)
    #[error("seccomp profile has no defaultAction")]
    MissingDefaultAction,
    /// Both the legacy `architectures` list and `archMap` are present.
    #[error("seccomp profile specifies both 'architectures' and 'archMap'; use one of them")]
    ArchitecturesAndArchMap,
    /// A rule has both `name` and `names`.
    #[error("{location}: both 'name' and 'names' are specified; use one of them")]
    NameAndNames {
        /// The offending rule.
        location: String,
    },
    /// An action is not one of the `SCMP_ACT_*` names runc knows.
    #[error("{location}: unknown seccomp action {name:?}")]
    UnknownAction {
        /// Where the action appears.
        location: String,
        /// The action as written ("" when missing).
        name: String,
    },
    /// An argument operator is not one of the `SCMP_CMP_*` names.
    #[error("{location}: unknown seccomp operator {name:?}")]
    UnknownOperator {
        /// Where the operator appears.
        location: String,
        /// The operator as written ("" when missing).
        name: String,
    },
    /// An architecture that would be emitted is not an `SCMP_ARCH_*` name.
    #[error("{location}: unknown seccomp architecture {name:?}")]
    UnknownArch {
        /// Where the architecture appears.
        location: String,
        /// The architecture as written.
        name: String,
    },
    /// A filter flag is not one of the `SECCOMP_FILTER_FLAG_*` names.
    #[error("flags: unknown seccomp filter flag {name:?}")]
    UnknownFlag {
        /// The flag as written.
        name: String,
    },
    /// A syscall argument index is above 5.
    #[error("{location}: syscall argument index {index} is out of range 0..=5")]
    ArgIndex {
        /// The offending rule.
        location: String,
        /// The index as written.
        index: usize,
    },
    /// A `minKernel` value is not `"<kernel>.<major>"`.
    #[error("{location}: invalid minKernel {value:?}, expected \"<kernel>.<major>\" (e.g. \"4.8\")")]
    InvalidMinKernel {
        /// The offending rule and filter.
        location: String,
        /// The value as written.
        value: String,
    },
    /// oci-spec refused to build a syscall argument (not expected to happen).
    #[error("{location}: building OCI seccomp argument: {source}")]
    Build {
        /// The offending rule.
        location: String,
        /// oci-spec's error.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// The running kernel's release string could not be parsed, and the
    /// profile has a `minKernel` condition that needs it.
    #[error("cannot parse kernel release {release:?} as <kernel>.<major>")]
    KernelRelease {
        /// The release string, e.g. `6.18.44-generic`.
        release: String,
    },
}

/// Convert `profile` (Docker format JSON bytes) for a container with capabilities `caps` (names like `"CAP_CHOWN"`).
///
/// `caps` is the container's (bounding) capability set; names are compared
/// case-insensitively and the `CAP_` prefix is optional on both sides.
/// `kernel_release` is the running kernel's `uname -r` string (e.g.
/// `6.18.44-generic`); it is parsed only if some rule has a `minKernel`
/// condition. The native architecture is the one this program was built for.
///
/// The result has the profile's `defaultAction`, `defaultErrnoRet`, `flags`,
/// `listenerPath` and `listenerMetadata`; `architectures` is the legacy
/// `architectures` list if present, else the native `archMap` entry with its
/// sub-architectures, else absent (runc then filters the native ABI only);
/// `syscalls` holds the rules whose conditions hold, in profile order, and is
/// absent when none do. Rules that name no syscall are dropped (they would
/// match nothing). Never panics; every malformed input is an error.
///
/// # Errors
///
/// [`SeccompError::Json`] for malformed JSON; the other variants (except
/// `Read`, `TooLarge`, `Profile`) for a profile that is JSON but not a valid
/// Docker seccomp profile, or [`SeccompError::KernelRelease`] when a
/// `minKernel` condition must be evaluated and `kernel_release` is unparsable.
pub fn convert(profile: &[u8], caps: &[String], kernel_release: &str) -> Result<LinuxSeccomp, SeccompError> {
    convert_for(profile, caps, kernel_release, native_arch())
}

/// Read [`DEFAULT_PROFILE`] (or a path given with `--security-opt seccomp=PATH`) and convert it; `unconfined` handled by the caller.
///
/// The kernel release is read from `/proc/sys/kernel/osrelease`; if that
/// fails, conversion proceeds and only a profile with `minKernel` conditions
/// fails (with [`SeccompError::KernelRelease`]). Conversion errors are wrapped
/// in [`SeccompError::Profile`] naming `path`. See [`convert`] for the rest.
///
/// # Errors
///
/// [`SeccompError::Read`] if the file cannot be read,
/// [`SeccompError::TooLarge`] if it exceeds 16 MiB, otherwise
/// [`SeccompError::Profile`] wrapping a [`convert`] error.
pub fn load(path: &Path, caps: &[String]) -> Result<LinuxSeccomp, SeccompError> {
    let read_err = |source| SeccompError::Read { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes).map_err(read_err)?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(SeccompError::TooLarge { path: path.to_path_buf(), limit: MAX_PROFILE_BYTES });
    }
    let release = std::fs::read_to_string(OSRELEASE).unwrap_or_default();
    convert(&bytes, caps, release.trim())
        .map_err(|e| SeccompError::Profile { path: path.to_path_buf(), source: Box::new(e) })
}

// ---------------------------------------------------------------------------
// The Docker profile format (only the fields that matter; others are ignored,
// as Go's encoding/json does). `null` is accepted wherever a list or object
// may appear and means "empty".

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default)]
    default_action: Option<String>,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<RuleArg>>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleArg {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    value: u64,
    #[serde(default)]
    value_two: Option<u64>,
    #[serde(default)]
    op: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// `<kernel>.<major>`, e.g. 4.8; ordered by kernel, then major.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct KernelVersion {
    kernel: u64,
    major: u64,
}

/// The host architecture: the short name used in `includes`/`excludes`
/// `arches`, and the libseccomp architecture matched against `archMap`.
#[derive(Debug, Clone, Copy)]
struct NativeArch {
    name: &'static str,
    scmp: Arch,
}

/// The architecture this program was built for, if seccomp profiles know it.
fn native_arch() -> Option<NativeArch> {
    native_arch_of(std::env::consts::ARCH, cfg!(target_endian = "little"), cfg!(target_pointer_width = "32"))
}

/// Maps a Rust `target_arch` (plus endianness and pointer width, which tell
/// e.g. ppc64le and x32 apart) to moby's architecture names.
fn native_arch_of(arch: &str, little_endian: bool, ptr32: bool) -> Option<NativeArch> {
    let (name, scmp) = match (arch, little_endian) {
        ("x86_64", _) if ptr32 => ("x32", Arch::ScmpArchX32),
        ("x86_64", _) => ("amd64", Arch::ScmpArchX86_64),
        ("x86", _) => ("x86", Arch::ScmpArchX86),
        ("arm", _) => ("arm", Arch::ScmpArchArm),
        ("aarch64", _) => ("arm64", Arch::ScmpArchAarch64),
        ("mips", false) => ("mips", Arch::ScmpArchMips),
        ("mips", true) => ("mipsel", Arch::ScmpArchMipsel),
        ("mips64", false) => ("mips64", Arch::ScmpArchMips64),
        ("mips64", true) => ("mipsel64", Arch::ScmpArchMipsel64),
        ("powerpc", _) => ("ppc", Arch::ScmpArchPpc),
        ("powerpc64", false) => ("ppc64", Arch::ScmpArchPpc64),
        ("powerpc64", true) => ("ppc64le", Arch::ScmpArchPpc64le),
        ("s390x", _) => ("s390x", Arch::ScmpArchS390x),
        ("riscv64", _) => ("riscv64", Arch::ScmpArchRiscv64),
        ("loongarch64", _) => ("loong64", Arch::ScmpArchLoongarch64),
        _ => return None,
    };
    Some(NativeArch { name, scmp })
}

/// [`convert`] with an explicit native architecture (`None`: unknown, so no
/// `archMap` entry and no `arches` condition matches).
fn convert_for(
    profile: &[u8],
    caps: &[String],
    kernel_release: &str,
    native: Option<NativeArch>,
) -> Result<LinuxSeccomp, SeccompError> {
    let profile: Profile = serde_json::from_slice(profile)?;

    let default_action = match profile.default_action.as_deref() {
        None | Some("") => return Err(SeccompError::MissingDefaultAction),
        Some(action) => parse_action(action, "defaultAction")?,
    };

    let mut out = LinuxSeccomp::default();
    out.set_default_action(default_action);
    out.set_default_errno_ret(profile.default_errno_ret);
    out.set_architectures(architectures(&profile, native)?);
    out.set_flags(flags(profile.flags.as_deref().unwrap_or_default())?);
    out.set_listener_path(profile.listener_path.filter(|p| !p.as_os_str().is_empty()));
    out.set_listener_metadata(profile.listener_metadata.filter(|m| !m.is_empty()));

    let rules = profile.syscalls.unwrap_or_default();
    // Validate everything first, so that errors do not depend on the host.
    let mut converted = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        converted.push(convert_rule(i, rule)?);
    }

    let host = Host {
        arch: native.map(|n| n.name),
        caps: caps.iter().map(|c| normalize_cap(c)).collect(),
        kernel_release,
        kernel: parse_release(kernel_release),
    };
    let mut syscalls = Vec::new();
    for ((i, rule), call) in rules.iter().enumerate().zip(converted) {
        if call.names().is_empty() || !host.applies(i, rule)? {
            continue;
        }
        syscalls.push(call);
    }
    out.set_syscalls(if syscalls.is_empty() { None } else { Some(syscalls) });
    Ok(out)
}

/// The facts rule conditions are evaluated against.
struct Host<'a> {
    arch: Option<&'static str>,
    caps: HashSet<String>,
    kernel_release: &'a str,
    kernel: Option<KernelVersion>,
}

impl Host<'_> {
    /// Whether rule `i` is kept, in moby's order: excludes, then includes.
    fn applies(&self, i: usize, rule: &Rule) -> Result<bool, SeccompError> {
        if let Some(ex) = &rule.excludes {
            if self.arch_listed(ex) || caps_of(ex).any(|c| self.caps.contains(&c)) {
                return Ok(false);
            }
            if let Some(min) = min_kernel(i, "excludes", ex)? {
                if self.kernel_at_least(min)? {
                    return Ok(false);
                }
            }
        }
        if let Some(inc) = &rule.includes {
            if inc.arches.as_ref().is_some_and(|a| !a.is_empty()) && !self.arch_listed(inc) {
                return Ok(false);
            }
            if caps_of(inc).any(|c| !self.caps.contains(&c)) {
                return Ok(false);
            }
            if let Some(min) = min_kernel(i, "includes", inc)? {
                if !self.kernel_at_least(min)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn arch_listed(&self, filter: &Filter) -> bool {
        match (self.arch, &filter.arches) {
            (Some(native), Some(arches)) => arches.iter().any(|a| a == native),
            _ => false,
        }
    }

    fn kernel_at_least(&self, min: KernelVersion) -> Result<bool, SeccompError> {
        match self.kernel {
            Some(k) => Ok(k >= min),
            None => Err(SeccompError::KernelRelease { release: self.kernel_release.to_owned() }),
        }
    }
}

/// A filter's capabilities, normalized.
fn caps_of(filter: &Filter) -> impl Iterator<Item = String> + '_ {
    filter.caps.iter().flatten().map(|c| normalize_cap(c))
}

/// A filter's validated `minKernel` (rule `i`, `which` filter), if any.
fn min_kernel(i: usize, which: &str, filter: &Filter) -> Result<Option<KernelVersion>, SeccompError> {
    match filter.min_kernel.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => parse_min_kernel(v).map(Some).ok_or_else(|| SeccompError::InvalidMinKernel {
            location: format!("syscalls[{i}].{which}.minKernel"),
            value: v.to_owned(),
        }),
    }
}

/// Validates rule `i` and converts it to its OCI form (conditions aside).
fn convert_rule(i: usize, rule: &Rule) -> Result<LinuxSyscall, SeccompError> {
    let location = || rule_location(i, rule);
    let name = rule.name.as_deref().filter(|n| !n.is_empty());
    let names = rule.names.as_deref().unwrap_or_default();
    let names: Vec<String> = match name {
        Some(_) if !names.is_empty() => return Err(SeccompError::NameAndNames { location: location() }),
        Some(n) => vec![n.to_owned()],
        None => names.to_vec(),
    };
    let action = parse_action(rule.action.as_deref().unwrap_or_default(), &location())?;

    let mut args = Vec::new();
    for arg in rule.args.iter().flatten() {
        if arg.index > MAX_ARG_INDEX {
            return Err(SeccompError::ArgIndex { location: location(), index: arg.index });
        }
        let op_name = arg.op.as_deref().unwrap_or_default();
        let op: LinuxSeccompOperator = parse_name(op_name)
            .ok_or_else(|| SeccompError::UnknownOperator { location: location(), name: op_name.to_owned() })?;
        let mut builder = LinuxSeccompArgBuilder::default().index(arg.index).value(arg.value).op(op);
        if let Some(two) = arg.value_two {
            builder = builder.value_two(two);
        }
        args.push(builder.build().map_err(|source| SeccompError::Build { location: location(), source })?);
    }

    for (which, filter) in [("includes", &rule.includes), ("excludes", &rule.excludes)] {
        if let Some(v) = filter.as_ref().and_then(|f| f.min_kernel.as_deref()) {
            if !v.is_empty() && parse_min_kernel(v).is_none() {
                return Err(SeccompError::InvalidMinKernel {
                    location: format!("{}.{which}.minKernel", location()),
                    value: v.to_owned(),
                });
            }
        }
    }

    let mut call = LinuxSyscall::default();
    call.set_names(names);
    call.set_action(action);
    call.set_errno_ret(rule.errno_ret);
    call.set_args(if args.is_empty() { None } else { Some(args) });
    Ok(call)
}

/// `architectures` of the result: the legacy list, or the native `archMap`
/// entry followed by its sub-architectures; `None` when empty.
fn architectures(profile: &Profile, native: Option<NativeArch>) -> Result<Option<Vec<Arch>>, SeccompError> {
    let legacy = profile.architectures.as_deref().unwrap_or_default();
    let map = profile.arch_map.as_deref().unwrap_or_default();
    if !legacy.is_empty() && !map.is_empty() {
        return Err(SeccompError::ArchitecturesAndArchMap);
    }
    let mut out = Vec::new();
    for name in legacy {
        out.push(parse_arch(name, "architectures")?);
    }
    if let Some(native) = native {
        // Entries for other architectures may name arches this libseccomp
        // binding does not know; only the native entry is checked.
        let entry = map.iter().find(|e| parse_name::<Arch>(&e.architecture) == Some(native.scmp));
        if let Some(entry) = entry {
            out.push(native.scmp);
            let location = format!("archMap[{}].subArchitectures", entry.architecture);
            for sub in entry.sub_architectures.iter().flatten() {
                out.push(parse_arch(sub, &location)?);
            }
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

fn flags(names: &[String]) -> Result<Option<Vec<LinuxSeccompFilterFlag>>, SeccompError> {
    let flags = names
        .iter()
        .map(|n| parse_name(n).ok_or_else(|| SeccompError::UnknownFlag { name: n.clone() }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if flags.is_empty() { None } else { Some(flags) })
}

fn parse_action(name: &str, location: &str) -> Result<LinuxSeccompAction, SeccompError> {
    parse_name(name).ok_or_else(|| SeccompError::UnknownAction { location: location.to_owned(), name: name.to_owned() })
}

fn parse_arch(name: &str, location: &str) -> Result<Arch, SeccompError> {
    parse_name(name).ok_or_else(|| SeccompError::UnknownArch { location: location.to_owned(), name: name.to_owned() })
}

/// Parses an oci-spec enum from the exact string its serde form uses, so a
/// name that parses serializes back to itself (what runc will read).
fn parse_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = name.into_deserializer();
    T::deserialize(de).ok()
}

/// `syscalls[i] (first, names, …)` for error messages.
fn rule_location(i: usize, rule: &Rule) -> String {
    const SHOWN: usize = 3;
    let names: Vec<&str> =
        rule.name.iter().chain(rule.names.iter().flatten()).map(String::as_str).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return format!("syscalls[{i}]");
    }
    let mut shown = names.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        shown.push_str(", …");
    }
    format!("syscalls[{i}] ({shown})")
}

/// `CAP_SYS_ADMIN`, `cap_sys_admin` and `SYS_ADMIN` all become `CAP_SYS_ADMIN`.
fn normalize_cap(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// A `minKernel` value: exactly `<kernel>.<major>`, each 0..=255 in decimal
/// digits, not `0.0` (moby's rules).
fn parse_min_kernel(v: &str) -> Option<KernelVersion> {
    let (kernel, major) = v.split_once('.')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u8>().ok().map(u64::from)
    };
    let version = KernelVersion { kernel: num(kernel)?, major: num(major)? };
    (version != KernelVersion { kernel: 0, major: 0 }).then_some(version)
}

/// A kernel release such as `6.18.44-generic` or `3.12-1-amd64`: the leading
/// `<kernel>.<major>` numbers; anything after the major number is ignored.
fn parse_release(release: &str) -> Option<KernelVersion> {
    let (kernel, rest) = release.trim().split_once('.')?;
    let digits = |s: &str| -> Option<u64> {
        let end = s.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(s.len());
        s.get(..end).filter(|d| !d.is_empty())?.parse().ok()
    };
    if kernel.is_empty() || !kernel.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(KernelVersion { kernel: digits(kernel)?, major: digits(rest)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const AMD64: Option<NativeArch> = Some(NativeArch { name: "amd64", scmp: Arch::ScmpArchX86_64 });
    const ARM64: Option<NativeArch> = Some(NativeArch { name: "arm64", scmp: Arch::ScmpArchAarch64 });

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    fn run(profile: &Value, cap_list: &[&str], release: &str, arch: Option<NativeArch>) -> LinuxSeccomp {
        let bytes = serde_json::to_vec(profile).unwrap();
        convert_for(&bytes, &caps(cap_list), release, arch).unwrap()
    }

    fn run_err(profile: &Value) -> SeccompError {
        let bytes = serde_json::to_vec(profile).unwrap();
        convert_for(&bytes, &[], "6.1.0", AMD64).unwrap_err()
    }

    /// The action the converted filter takes for `name`, looking at rules
    /// without argument conditions only (first match wins, as in runc, which
    /// adds rules in order and libseccomp refuses conflicting duplicates).
    fn plain_action(s: &LinuxSeccomp, name: &str) -> Option<(LinuxSeccompAction, Option<u32>)> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|c| c.args().is_none())
            .find(|c| c.names().iter().any(|n| n == name))
            .map(|c| (c.action(), c.errno_ret()))
    }

    /// Every rule (with or without args) mentioning `name`.
    fn rules_for<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        s.syscalls().iter().flatten().filter(|c| c.names().iter().any(|n| n == name)).collect()
    }

    fn allowed(s: &LinuxSeccomp, name: &str) -> bool {
        rules_for(s, name).iter().any(|c| c.action() == LinuxSeccompAction::ScmpActAllow)
    }

    fn names_of(s: &LinuxSeccomp) -> Vec<String> {
        s.syscalls().iter().flatten().flat_map(|c| c.names().clone()).collect()
    }

    fn conditional_profile() -> Value {
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["both"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["not_arm"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["arm64"]}},
                {"names": ["new48"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["old48"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8"}},
                {"name": "legacy", "action": "SCMP_ACT_LOG"},
                {"names": [], "action": "SCMP_ACT_ALLOW"},
                {"names": ["nulls"], "action": "SCMP_ACT_ALLOW", "args": null, "includes": null,
                 "excludes": {"caps": null, "arches": null, "minKernel": ""}}
            ]
        })
    }

    #[test]
    fn conditions_select_rules() {
        struct Case {
            what: &'static str,
            caps: &'static [&'static str],
            release: &'static str,
            arch: Option<NativeArch>,
            present: &'static [&'static str],
            absent: &'static [&'static str],
        }
        let cases = [
            Case {
                what: "no caps, amd64, new kernel",
                caps: &[],
                release: "6.18.44-fc-v1300",
                arch: AMD64,
                present: &["read", "arch_prctl", "not_arm", "new48", "legacy", "nulls"],
                absent: &["both", "old48"],
            },
            Case {
                what: "arm64 drops amd64-only and arm-excluded rules",
                caps: &[],
                release: "6.1.0",
                arch: ARM64,
                present: &["read", "new48"],
                absent: &["arch_prctl", "not_arm"],
            },
            Case {
                what: "unknown arch matches no arches condition",
                caps: &[],
                release: "6.1.0",
                arch: None,
                present: &["not_arm"],
                absent: &["arch_prctl"],
            },
            Case {
                what: "old kernel",
                caps: &[],
                release: "4.4.0-210-generic",
                arch: AMD64,
                present: &["old48"],
                absent: &["new48"],
            },
            Case {
                what: "exactly the minimum kernel (patch level ignored)",
                caps: &[],
                release: "4.8-1-amd64",
                arch: AMD64,
                present: &["new48"],
                absent: &["old48"],
            },
            Case {
                what: "kernel 10.0 > 4.8 numerically",
                caps: &[],
                release: "10.0.1",
                arch: AMD64,
                present: &["new48"],
                absent: &["old48"],
            },
            Case {
                what: "all included caps present",
                caps: &["CAP_SYS_ADMIN", "CAP_NET_ADMIN"],
                release: "6.1.0",
                arch: AMD64,
                present: &["both"],
                absent: &[],
            },
            Case {
                what: "one included cap missing",
                caps: &["CAP_SYS_ADMIN"],
                release: "6.1.0",
                arch: AMD64,
                present: &[],
                absent: &["both"],
            },
            Case {
                what: "cap names normalized",
                caps: &["sys_admin", "net_admin"],
                release: "6.1.0",
                arch: AMD64,
                present: &["both"],
                absent: &[],
            },
        ];
        for case in cases {
            let s = run(&conditional_profile(), case.caps, case.release, case.arch);
            let names = names_of(&s);
            for p in case.present {
                assert!(names.iter().any(|n| n == p), "{}: {p} should be present in {names:?}", case.what);
            }
            for a in case.absent {
                assert!(!names.iter().any(|n| n == a), "{}: {a} should be absent from {names:?}", case.what);
            }
            assert!(!s.syscalls().iter().flatten().any(|c| c.names().is_empty()), "{}: empty rule kept", case.what);
        }
    }

    #[test]
    fn caps_switch_between_allow_and_errno() {
        let cases: [(&[&str], LinuxSeccompAction, Option<u32>); 2] = [
            (&["CAP_SYS_ADMIN"], LinuxSeccompAction::ScmpActAllow, None),
            (&["CAP_CHOWN"], LinuxSeccompAction::ScmpActErrno, Some(1)),
        ];
        for (cap_list, action, errno) in cases {
            let s = run(&conditional_profile(), cap_list, "6.1.0", AMD64);
            let bpf = rules_for(&s, "bpf");
            assert_eq!(bpf.len(), 1, "caps {cap_list:?}: {bpf:?}");
            assert_eq!((bpf[0].action(), bpf[0].errno_ret()), (action, errno), "caps {cap_list:?}");
        }
    }

    #[test]
    fn arch_map_selects_native_entry() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
                {"architecture": "SCMP_ARCH_FUTURE", "subArchitectures": ["SCMP_ARCH_WHATEVER"]}
            ]
        });
        let cases = [
            (AMD64, Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32])),
            (ARM64, Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])),
            (Some(NativeArch { name: "s390x", scmp: Arch::ScmpArchS390x }), None),
            (None, None),
        ];
        for (arch, expected) in cases {
            let s = run(&profile, &[], "6.1.0", arch);
            assert_eq!(s.architectures(), &expected, "{arch:?}");
        }
    }

    #[test]
    fn legacy_architectures_list() {
        let profile =
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]});
        let s = run(&profile, &[], "6.1.0", ARM64);
        assert_eq!(s.architectures(), &Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86]));
    }

    #[test]
    fn args_ops_and_errno_are_carried() {
        let ops = [
            ("SCMP_CMP_NE", LinuxSeccompOperator::ScmpCmpNe),
            ("SCMP_CMP_LT", LinuxSeccompOperator::ScmpCmpLt),
            ("SCMP_CMP_LE", LinuxSeccompOperator::ScmpCmpLe),
            ("SCMP_CMP_EQ", LinuxSeccompOperator::ScmpCmpEq),
            ("SCMP_CMP_GE", LinuxSeccompOperator::ScmpCmpGe),
            ("SCMP_CMP_GT", LinuxSeccompOperator::ScmpCmpGt),
            ("SCMP_CMP_MASKED_EQ", LinuxSeccompOperator::ScmpCmpMaskedEq),
        ];
        for (name, op) in ops {
            let profile = json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 38,
                "syscalls": [{
                    "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                    "args": [
                        {"index": 0, "value": 16, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                        {"index": 2, "value": u64::MAX, "valueTwo": 7, "op": name}
                    ]
                }]
            });
            let s = run(&profile, &[], "6.1.0", AMD64);
            assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
            assert_eq!(s.default_errno_ret(), Some(38));
            let rule = &s.syscalls().as_ref().unwrap()[0];
            assert_eq!(rule.names(), &vec!["socket".to_string()]);
            assert_eq!((rule.action(), rule.errno_ret()), (LinuxSeccompAction::ScmpActErrno, Some(22)));
            let args = rule.args().as_ref().unwrap();
            assert_eq!(args.len(), 2);
            assert_eq!((args[0].index(), args[0].value(), args[0].value_two()), (0, 16, Some(0)));
            assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpEq);
            assert_eq!((args[1].index(), args[1].value(), args[1].value_two()), (2, u64::MAX, Some(7)));
            assert_eq!(args[1].op(), op, "{name}");
        }
    }

    #[test]
    fn top_level_fields_are_carried() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "meta",
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]
        });
        let s = run(&profile, &[], "6.1.0", AMD64);
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActKillProcess);
        assert_eq!(s.default_errno_ret(), None);
        assert_eq!(
            s.flags(),
            &Some(vec![
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
                LinuxSeccompFilterFlag::SeccompFilterFlagLog
            ])
        );
        assert_eq!(s.listener_path(), &Some(PathBuf::from("/run/agent.sock")));
        assert_eq!(s.listener_metadata(), &Some("meta".to_string()));
        assert_eq!(plain_action(&s, "getpid"), Some((LinuxSeccompAction::ScmpActNotify, None)));
    }

    #[test]
    fn every_action_name_parses() {
        let actions = [
            ("SCMP_ACT_KILL", LinuxSeccompAction::ScmpActKill),
            ("SCMP_ACT_KILL_THREAD", LinuxSeccompAction::ScmpActKillThread),
            ("SCMP_ACT_KILL_PROCESS", LinuxSeccompAction::ScmpActKillProcess),
            ("SCMP_ACT_TRAP", LinuxSeccompAction::ScmpActTrap),
            ("SCMP_ACT_ERRNO", LinuxSeccompAction::ScmpActErrno),
            ("SCMP_ACT_NOTIFY", LinuxSeccompAction::ScmpActNotify),
            ("SCMP_ACT_TRACE", LinuxSeccompAction::ScmpActTrace),
            ("SCMP_ACT_LOG", LinuxSeccompAction::ScmpActLog),
            ("SCMP_ACT_ALLOW", LinuxSeccompAction::ScmpActAllow),
        ];
        for (name, action) in actions {
            let s =
                run(&json!({"defaultAction": name, "syscalls": [{"names": ["x"], "action": name}]}), &[], "6", AMD64);
            assert_eq!(s.default_action(), action, "{name}");
            assert_eq!(plain_action(&s, "x").map(|a| a.0), Some(action), "{name}");
        }
    }

    #[test]
    fn bad_profiles_are_errors() {
        type Check = fn(&SeccompError) -> bool;
        let rule = |extra: Value| {
            let mut r = json!({"names": ["read"], "action": "SCMP_ACT_ALLOW"});
            r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [r]})
        };
        let cases: Vec<(&str, Value, Check)> = vec![
            ("not json", json!("nope"), |e| matches!(e, SeccompError::Json(_))),
            ("wrong type", json!({"defaultAction": 3}), |e| matches!(e, SeccompError::Json(_))),
            ("negative index", rule(json!({"args": [{"index": -1, "value": 0, "op": "SCMP_CMP_EQ"}]})), |e| {
                matches!(e, SeccompError::Json(_))
            }),
            ("empty", json!({}), |e| matches!(e, SeccompError::MissingDefaultAction)),
            (
                "unknown default action",
                json!({"defaultAction": "SCMP_ACT_MAYBE"}),
                |e| matches!(e, SeccompError::UnknownAction { location, name } if location == "defaultAction" && name == "SCMP_ACT_MAYBE"),
            ),
            (
                "unknown rule action",
                rule(json!({"action": "ALLOW"})),
                |e| matches!(e, SeccompError::UnknownAction { location, .. } if location == "syscalls[0] (read)"),
            ),
            (
                "missing rule action",
                json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"]}]}),
                |e| matches!(e, SeccompError::UnknownAction { name, .. } if name.is_empty()),
            ),
            (
                "unknown op",
                rule(json!({"args": [{"index": 0, "value": 0, "op": "SCMP_CMP_LIKE"}]})),
                |e| matches!(e, SeccompError::UnknownOperator { name, .. } if name == "SCMP_CMP_LIKE"),
            ),
            ("arg index", rule(json!({"args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]})), |e| {
                matches!(e, SeccompError::ArgIndex { index: 6, .. })
            }),
            ("name and names", rule(json!({"name": "write"})), |e| matches!(e, SeccompError::NameAndNames { .. })),
            (
                "bad minKernel",
                rule(json!({"includes": {"minKernel": "4"}})),
                |e| matches!(e, SeccompError::InvalidMinKernel { value, .. } if value == "4"),
            ),
            (
                "minKernel in excluded rule",
                rule(json!({"includes": {"arches": ["sparc"]}, "excludes": {"minKernel": "4.x"}})),
                |e| matches!(e, SeccompError::InvalidMinKernel { .. }),
            ),
            ("minKernel 0.0", rule(json!({"includes": {"minKernel": "0.0"}})), |e| {
                matches!(e, SeccompError::InvalidMinKernel { .. })
            }),
            ("minKernel > u8", rule(json!({"includes": {"minKernel": "4.256"}})), |e| {
                matches!(e, SeccompError::InvalidMinKernel { .. })
            }),
            (
                "both architectures and archMap",
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                       "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}),
                |e| matches!(e, SeccompError::ArchitecturesAndArchMap),
            ),
            (
                "unknown legacy arch",
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
                |e| matches!(e, SeccompError::UnknownArch { name, .. } if name == "SCMP_ARCH_VAX"),
            ),
            (
                "unknown native sub-arch",
                json!({"defaultAction": "SCMP_ACT_ALLOW",
                       "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_I8086"]}]}),
                |e| matches!(e, SeccompError::UnknownArch { name, .. } if name == "SCMP_ARCH_I8086"),
            ),
            ("unknown flag", json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}), |e| {
                matches!(e, SeccompError::UnknownFlag { .. })
            }),
        ];
        for (what, profile, check) in cases {
            let err = run_err(&profile);
            assert!(check(&err), "{what}: unexpected error {err:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn kernel_release_only_needed_for_min_kernel() {
        let plain =
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_LOG"}]});
        let s = run(&plain, &[], "garbage", AMD64);
        assert_eq!(names_of(&s), vec!["a"]);

        let gated = json!({"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["a"], "action": "SCMP_ACT_LOG", "includes": {"minKernel": "4.8"}}]});
        let err = convert_for(&serde_json::to_vec(&gated).unwrap(), &[], "garbage", AMD64).unwrap_err();
        assert!(matches!(err, SeccompError::KernelRelease { ref release } if release == "garbage"), "{err:?}");
    }

    #[test]
    fn release_and_min_kernel_parsing() {
        let releases = [
            ("6.18.44-fc-v1300", Some((6, 18))),
            ("3.12-1-amd64", Some((3, 12))),
            ("4.8", Some((4, 8))),
            ("5.15.0-91-generic\n", Some((5, 15))),
            ("6", None),
            ("", None),
            ("x.1", None),
            ("6.x", None),
            ("99999999999999999999999.1", None),
        ];
        for (release, expected) in releases {
            let got = parse_release(release).map(|k| (k.kernel, k.major));
            assert_eq!(got, expected, "{release:?}");
        }
        let mins = [("4.8", Some((4, 8))), ("0.1", Some((0, 1))), ("4.8.1", None), ("+4.8", None), (".8", None)];
        for (v, expected) in mins {
            assert_eq!(parse_min_kernel(v).map(|k| (k.kernel, k.major)), expected, "{v:?}");
        }
    }

    #[test]
    fn native_arch_mapping() {
        let cases = [
            ("x86_64", true, false, Some(("amd64", Arch::ScmpArchX86_64))),
            ("x86_64", true, true, Some(("x32", Arch::ScmpArchX32))),
            ("aarch64", true, false, Some(("arm64", Arch::ScmpArchAarch64))),
            ("powerpc64", true, false, Some(("ppc64le", Arch::ScmpArchPpc64le))),
            ("powerpc64", false, false, Some(("ppc64", Arch::ScmpArchPpc64))),
            ("mips64", true, false, Some(("mipsel64", Arch::ScmpArchMipsel64))),
            ("s390x", false, false, Some(("s390x", Arch::ScmpArchS390x))),
            ("sparc64", false, false, None),
        ];
        for (arch, le, p32, expected) in cases {
            assert_eq!(native_arch_of(arch, le, p32).map(|n| (n.name, n.scmp)), expected, "{arch}");
        }
    }

    #[test]
    fn serialized_form_is_what_runc_reads() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "comment": "c",
                 "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["bdflush"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "errno": "EPERM"}
            ]
        });
        let s = run(&profile, &[], "6.1.0", AMD64);
        let got = serde_json::to_value(&s).unwrap();
        let expected = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["bdflush"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        });
        assert_eq!(got, expected);
        // And it reads back as the same OCI object.
        let back: LinuxSeccomp = serde_json::from_value(got).unwrap();
        assert_eq!(back, s);
    }

    /// Moby's default.json expresses ptrace and reboot this way (Debian's
    /// containers-common copy allows both unconditionally; see below).
    #[test]
    fn moby_style_ptrace_and_reboot() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
                {"names": ["kcmp", "ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}}
            ]
        });
        let cases: [(&[&str], &str, bool, bool); 4] = [
            (&["CAP_CHOWN"], "4.4.0", false, false),
            (&["CAP_CHOWN"], "4.8.0", true, false),
            (&["CAP_SYS_PTRACE"], "4.4.0", true, false),
            (&["CAP_SYS_BOOT"], "4.4.0", false, true),
        ];
        for (cap_list, release, ptrace, reboot) in cases {
            let s = run(&profile, cap_list, release, AMD64);
            assert_eq!(allowed(&s, "ptrace"), ptrace, "ptrace with {cap_list:?} on {release}");
            assert_eq!(allowed(&s, "reboot"), reboot, "reboot with {cap_list:?} on {release}");
        }
    }

    #[test]
    fn real_default_profile() {
        let path = Path::new(DEFAULT_PROFILE);
        if !path.exists() {
            eprintln!("skipping: {DEFAULT_PROFILE} is not installed");
            return;
        }
        let docker_default = caps(crate::spec::DEFAULT_CAPS);
        let mut privileged = docker_default.clone();
        privileged.extend(caps(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_BOOT", "CAP_SYS_TIME"]));

        let raw = std::fs::read(path).unwrap();
        let default = load(path, &docker_default).unwrap();
        let full = convert(&raw, &privileged, "6.1.0").unwrap();

        assert_eq!(default.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(default.default_errno_ret(), Some(38), "ENOSYS for unknown syscalls");
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                default.architectures(),
                &Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32])
            );
            assert!(allowed(&default, "arch_prctl"));
            assert!(!allowed(&default, "s390_runtime_instr"));
        }

        // Gated on CAP_SYS_ADMIN: EPERM without it, allowed with it.
        let eperm = Some((LinuxSeccompAction::ScmpActErrno, Some(1)));
        let allow = Some((LinuxSeccompAction::ScmpActAllow, None));
        for name in ["bpf", "perf_event_open", "quotactl"] {
            assert_eq!(plain_action(&default, name), eperm, "{name} without CAP_SYS_ADMIN");
            assert_eq!(plain_action(&full, name), allow, "{name} with CAP_SYS_ADMIN");
        }
        assert_eq!(plain_action(&default, "clock_settime"), eperm);
        assert_eq!(plain_action(&full, "clock_settime"), allow);
        assert_eq!(plain_action(&default, "kcmp"), eperm);
        assert_eq!(plain_action(&full, "kcmp"), allow);
        // Always EPERM.
        assert_eq!(plain_action(&default, "kexec_load"), eperm);
        // Debian's (podman's) profile allows ptrace and reboot outright and
        // leaves them to capability checks, unlike moby's default.json.
        assert!(allowed(&default, "ptrace"));
        assert!(allowed(&default, "reboot"));
        // CAP_AUDIT_WRITE is in the default set, so the netlink-audit socket
        // restrictions are excluded and socket is allowed outright.
        assert_eq!(plain_action(&default, "socket"), allow);
        assert!(rules_for(&default, "socket").iter().all(|c| c.args().is_none()));
        let no_audit = convert(&raw, &caps(&["CAP_CHOWN"]), "6.1.0").unwrap();
        let socket = rules_for(&no_audit, "socket");
        assert!(socket.iter().all(|c| c.args().is_some()), "{socket:?}");
        assert!(socket.iter().any(|c| c.errno_ret() == Some(22)));
        // personality keeps its argument filters.
        let personality = rules_for(&default, "personality");
        assert_eq!(personality.len(), 5);
        assert!(personality.iter().all(|c| c.args().as_ref().is_some_and(|a| a.len() == 1)));

        // The serialized result reads back unchanged.
        let json = serde_json::to_string(&default).unwrap();
        assert_eq!(serde_json::from_str::<LinuxSeccomp>(&json).unwrap(), default);
    }

    #[test]
    fn load_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let err = load(&missing, &[]).unwrap_err();
        assert!(matches!(err, SeccompError::Read { ref path, .. } if path == &missing), "{err:?}");

        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, br#"{"defaultAction": "SCMP_ACT_NOPE"}"#).unwrap();
        let err = load(&bad, &[]).unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        assert!(
            matches!(err, SeccompError::Profile { ref source, .. } if matches!(**source, SeccompError::UnknownAction { .. })),
            "{err:?}"
        );

        let good = dir.path().join("good.json");
        std::fs::write(&good, br#"{"defaultAction": "SCMP_ACT_ALLOW"}"#).unwrap();
        let s = load(&good, &[]).unwrap();
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(s.syscalls(), &None);
    }
}
