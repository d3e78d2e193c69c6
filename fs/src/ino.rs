//! Inode numbers reported through the mount.
//!
//! The kernel's rule, kept here: a non-directory reports the inode number of
//! its origin (the lower file it was copied up from, or itself); numbers are
//! unique across layers because layers on one filesystem already have
//! distinct numbers, and layers on different filesystems get the filesystem's
//! index in the top bits (the kernel's "xino").

/// Maps a (device, inode) pair of some layer to the number shown to users.
#[derive(Debug, Clone)]
pub struct InoMap {
    devs: Vec<u64>,
}

/// Bits left for the real inode number when layers span several filesystems.
const XINO_SHIFT: u32 = 56;

impl InoMap {
    /// Build the map for the devices of all layers (upper first, then lowers).
    pub fn new(devs: impl IntoIterator<Item = u64>) -> InoMap {
        let mut uniq: Vec<u64> = Vec::new();
        for d in devs {
            if !uniq.contains(&d) {
                uniq.push(d);
            }
        }
        InoMap { devs: uniq }
    }

    /// The user-visible inode number of `ino` on device `dev`.
    pub fn map(&self, dev: u64, ino: u64) -> u64 {
        if self.devs.len() <= 1 {
            return ino;
        }
        let idx = self.devs.iter().position(|&d| d == dev).unwrap_or(0) as u64;
        (ino & ((1 << XINO_SHIFT) - 1)) | (idx << XINO_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_device_keeps_numbers() {
        let m = InoMap::new([5, 5, 5]);
        assert_eq!(m.map(5, 1234), 1234);
    }

    #[test]
    fn several_devices_never_collide() {
        let m = InoMap::new([5, 7]);
        assert_ne!(m.map(5, 10), m.map(7, 10));
        assert_eq!(m.map(5, 10), 10);
    }
}
