//! The filesystem the writable rows run on: a journaled ext4 made afresh for
//! each run on a loop device, holding every mount's upper and work
//! directories and mountpoint.
//!
//! Why not the bench directory's own filesystem: on an ext4 without a journal
//! (this machine's root) the inode allocator skips every inode freed in the
//! last 60–300 s, reading its inode table block to find out; whichever
//! implementation creates files after another one deleted thousands pays for
//! them (2,000 creates measured 0.45 s first, 0.98 s second, 4.2 s third, for
//! the same code). A fresh journaled ext4 — the common production setup —
//! has no such order effect.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Size of the sparse image (the largest row writes a 1 GiB copy-up).
const IMAGE_BYTES: u64 = 8 << 30;

/// A mounted scratch filesystem; unmounted on drop.
pub struct Scratch {
    /// Where runs keep their upper, work and mountpoint directories.
    pub dir: PathBuf,
    mounted: Option<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(m) = &self.mounted {
            let _ = Command::new("umount").arg(m).stderr(Stdio::null()).status();
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.stdout(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn make(root: &Path) -> Result<PathBuf, String> {
    let img = root.join("scratch.img");
    let mnt = root.join("scratch");
    fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
    // A mount left by an interrupted run goes first (an error here means none).
    let _ = Command::new("umount").arg(&mnt).stderr(Stdio::null()).status();
    let _ = fs::remove_file(&img);
    let f = fs::File::create(&img).map_err(|e| e.to_string())?;
    f.set_len(IMAGE_BYTES).map_err(|e| e.to_string())?;
    drop(f);
    run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img))?;
    run(Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt))?;
    Ok(mnt)
}

/// Make and mount the scratch filesystem under `root`; on failure, fall back
/// to `root` itself and say so in `notes`.
pub fn prepare(root: &Path, notes: &mut Vec<String>) -> Scratch {
    match make(root) {
        Ok(mnt) => Scratch { dir: mnt.clone(), mounted: Some(mnt) },
        Err(e) => {
            notes.push(format!(
                "no scratch ext4 ({e}): upper layers live on the bench directory's filesystem, \
                 where create/unlink rows depend on what ran before"
            ));
            Scratch { dir: root.to_path_buf(), mounted: None }
        }
    }
}
