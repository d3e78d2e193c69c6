//! Kernel overlayfs mounts, through the new mount API (`fsopen` with one
//! `lowerdir+` per layer, so deep stacks never hit the one-page limit of
//! `mount(2)` options), falling back to `mount(2)` on older kernels.

use std::os::unix::ffi::OsStrExt;

use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags};

use super::Spec;
use crate::{Error, Result};

fn fail(spec: &Spec, what: &str, e: Errno) -> Error {
    Error::Mount { id: spec.id.to_string(), why: format!("kernel overlay {what}: {e}") }
}

pub(crate) fn mount(spec: &Spec) -> Result<()> {
    match mount_new_api(spec) {
        Ok(()) => Ok(()),
        // Kernels before 6.8 have no `lowerdir+`; before 5.2 no fsopen.
        Err(Errno::NOSYS) | Err(Errno::INVAL) => mount_legacy(spec),
        Err(e) => Err(fail(spec, "mount", e)),
    }
}

fn mount_new_api(spec: &Spec) -> std::result::Result<(), Errno> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "source", "strata")?;
    for l in &spec.lowers {
        rustix::mount::fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    rustix::mount::fsconfig_set_string(&fs, "upperdir", spec.upper)?;
    rustix::mount::fsconfig_set_string(&fs, "workdir", spec.work)?;
    rustix::mount::fsconfig_create(&fs)?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    rustix::mount::move_mount(&mnt, "", rustix::fs::CWD, spec.target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
}

fn mount_legacy(spec: &Spec) -> Result<()> {
    let mut data = b"lowerdir=".to_vec();
    for (i, l) in spec.lowers.iter().enumerate() {
        if i > 0 {
            data.push(b':');
        }
        data.extend_from_slice(l.as_os_str().as_bytes());
    }
    for (k, v) in [("upperdir", spec.upper), ("workdir", spec.work)] {
        data.extend_from_slice(format!(",{k}=").as_bytes());
        data.extend_from_slice(v.as_os_str().as_bytes());
    }
    if data.len() >= 4096 {
        return Err(Error::Mount { id: spec.id.into(), why: "too many layers for a kernel overlay mount".into() });
    }
    let data =
        std::ffi::CString::new(data).map_err(|_| Error::Mount { id: spec.id.into(), why: "NUL in a path".into() })?;
    rustix::mount::mount("strata", spec.target, "overlay", MountFlags::empty(), data.as_c_str())
        .map_err(|e| fail(spec, "mount(2)", e))
}
