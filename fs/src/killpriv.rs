//! Clearing setuid/setgid on writes and truncates, as the VFS does
//! (`should_remove_suid`, `setattr_should_drop_sgid`) for the caller of the
//! FUSE request.
//!
//! With `FUSE_HANDLE_KILLPRIV_V2` the kernel leaves this to the daemon, whose
//! own writes (as root, with `CAP_FSETID`) would keep the bits:
//! - a WRITE carries `FUSE_WRITE_KILL_SUIDGID` when the writer lacks
//!   `CAP_FSETID`;
//! - a truncate (SETATTR with a size) carries `FATTR_KILL_SUIDGID` under the
//!   same condition, and a passthrough write that must clear the bits sends a
//!   SETATTR that changes nothing. fuser 0.18 does not pass SETATTR's `valid`
//!   bits on, so for these the caller's credentials are read from
//!   `/proc/PID/status` — only when the file has one of the bits set.
//!
//! `security.capability` needs nothing here: the kernel removes it through
//! REMOVEXATTR before a passthrough write or a truncate, and the upper
//! filesystem drops it on the daemon's own writes, truncates and chowns
//! (whatever the writer's capabilities, as the kernel's overlay does).
//! A chown by the daemon clears setuid (and setgid with group execute) by
//! itself, as the upper layer's chown does for the kernel's overlay; a
//! setgid without group execute goes only for a caller outside the file's
//! group, which the adapter checks before the chown.

use rustix::fs::Stat;

const CAP_FSETID: u32 = 4;

/// The credentials of a requesting process that decide what it may keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// It holds `CAP_FSETID` in the initial user namespace.
    pub fsetid: bool,
    /// Its filesystem gid.
    pub fsgid: u32,
    /// Its supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// Parse `/proc/PID/status`; `init_ns`: the process is in the initial
    /// user namespace (`capable()` looks there, so outside it nobody has
    /// `CAP_FSETID`).
    pub fn parse(status: &str, init_ns: bool) -> Option<Caller> {
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let cap_eff = u64::from_str_radix(field("CapEff:")?, 16).ok()?;
        let fsgid = field("Gid:")?.split_whitespace().nth(3)?.parse().ok()?;
        let groups = field("Groups:")?.split_whitespace().filter_map(|g| g.parse().ok()).collect();
        Some(Caller { fsetid: init_ns && cap_eff & (1 << CAP_FSETID) != 0, fsgid, groups })
    }

    /// The credentials of process `pid`, `None` when they cannot be read
    /// (the process is gone, or `pid` is 0 for a request of the kernel's own).
    pub fn of(pid: u32) -> Option<Caller> {
        if pid == 0 {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()?;
        let ours = std::fs::read_link("/proc/self/ns/user").ok()?;
        let init_ns = theirs == ours && own_ns_is_initial();
        Caller::parse(&status, init_ns)
    }

    fn in_group(&self, gid: u32) -> bool {
        self.fsgid == gid || self.groups.contains(&gid)
    }
}

/// Whether this process runs in the initial user namespace (its uid map is
/// the identity over all ids).
fn own_ns_is_initial() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
}

/// Whether a file with these attributes has bits that a write or truncate
/// may have to clear (a cheap test before reading the caller's credentials).
pub fn has_suidgid(st: &Stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & (libc::S_ISUID | libc::S_ISGID) != 0
}

/// The mode bits a write or truncate by `caller` clears from a file with
/// attributes `st` (0: none), by the VFS's rule: setuid; setgid when the file
/// is group-executable or the caller is not in its group; nothing for a
/// caller with `CAP_FSETID` or for anything but a regular file.
/// `unprivileged`: the kernel already said the caller lacks `CAP_FSETID`.
/// Unknown credentials (`None`) count as root's when `uid` is 0.
pub fn bits_to_clear(st: &Stat, caller: Option<&Caller>, unprivileged: bool, uid: u32, gid: u32) -> u32 {
    if !has_suidgid(st) {
        return 0;
    }
    let fsetid = !unprivileged && caller.map_or(uid == 0, |c| c.fsetid);
    if fsetid {
        return 0;
    }
    let in_group = caller.map_or(gid == st.st_gid, |c| c.in_group(st.st_gid));
    let mut kill = st.st_mode & libc::S_ISUID;
    if st.st_mode & libc::S_ISGID != 0 && (st.st_mode & libc::S_IXGRP != 0 || !in_group) {
        kill |= libc::S_ISGID;
    }
    kill
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mode: u32, gid: u32) -> Stat {
        // A real stat, edited.
        let mut st = rustix::fs::stat("/").unwrap();
        st.st_mode = mode;
        st.st_gid = gid;
        st
    }

    const STATUS: &str = "Name:\tsh\nUid:\t1000\t1000\t1000\t1000\nGid:\t100\t100\t100\t100\n\
                          Groups:\t100 27 \nCapEff:\t0000000000000010\n";

    #[test]
    fn parses_proc_status() {
        let c = Caller::parse(STATUS, true).unwrap();
        assert_eq!(c, Caller { fsetid: true, fsgid: 100, groups: vec![100, 27] });
        assert!(!Caller::parse(STATUS, false).unwrap().fsetid, "outside the initial namespace");
        assert!(Caller::parse("Gid:\t1\t1\t1\t1\n", true).is_none());
    }

    #[test]
    fn the_vfs_rule() {
        let user = Caller { fsetid: false, fsgid: 100, groups: vec![27] };
        let root = Caller { fsetid: true, fsgid: 0, groups: vec![] };
        let reg = libc::S_IFREG;
        assert_eq!(bits_to_clear(&stat(reg | 0o6755, 100), Some(&user), false, 1000, 100), 0o6000);
        assert_eq!(bits_to_clear(&stat(reg | 0o6745, 100), Some(&user), false, 1000, 100), 0o4000, "no g+x, in group");
        assert_eq!(bits_to_clear(&stat(reg | 0o2745, 5), Some(&user), false, 1000, 100), 0o2000, "not in group");
        assert_eq!(bits_to_clear(&stat(reg | 0o2745, 27), Some(&user), false, 1000, 100), 0, "supplementary group");
        assert_eq!(bits_to_clear(&stat(reg | 0o6755, 0), Some(&root), false, 0, 0), 0);
        assert_eq!(bits_to_clear(&stat(reg | 0o6755, 0), Some(&root), true, 0, 0), 0o6000, "the kernel's word");
        assert_eq!(bits_to_clear(&stat(libc::S_IFDIR | 0o6755, 0), Some(&user), false, 1000, 100), 0);
        assert_eq!(bits_to_clear(&stat(reg | 0o4755, 0), None, false, 0, 0), 0, "unknown root");
        assert_eq!(bits_to_clear(&stat(reg | 0o4755, 0), None, false, 1000, 0), 0o4000, "unknown user");
    }
}
