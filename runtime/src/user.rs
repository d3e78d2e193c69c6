//! `-u user[:group]` resolved against the image's `/etc/passwd` and
//! `/etc/group`, as Docker resolves it: names must exist, numeric IDs need
//! no entry; the home directory comes from passwd (`/` when absent).

use crate::error::{Error, Result};

/// The identity the container's process runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User ID.
    pub uid: u32,
    /// Primary group ID.
    pub gid: u32,
    /// Supplementary groups: the primary group plus every group that lists
    /// the user by name (Docker's `groups=` in `id`).
    pub additional_gids: Vec<u32>,
    /// `HOME` for the environment.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || l.starts_with('#') {
            return None;
        }
        Some(PasswdEntry { name: f[0], uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5] })
    })
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some(GroupEntry { name: f[0], gid: f[2].parse().ok()?, members })
    })
}

/// Resolve `spec` (`""`, `user`, `uid`, `user:group`, `uid:gid`, …)
/// against the contents of the image's passwd and group files (empty
/// strings when the image has none).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<ResolvedUser> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let (uid, mut gid, home, name) = match user.parse::<u32>() {
        Ok(uid) => match passwd_entries(passwd).find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
            None => (uid, 0, "/".to_string(), None),
        },
        Err(_) => match passwd_entries(passwd).find(|e| e.name == user) {
            Some(e) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
            None => return Err(Error::NoSuchUser { kind: "user", name: user.to_string(), file: "passwd" }),
        },
    };
    let explicit_group = grp.filter(|g| !g.is_empty());
    if let Some(g) = explicit_group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match group_entries(group).find(|e| e.name == g) {
                Some(e) => e.gid,
                None => return Err(Error::NoSuchUser { kind: "group", name: g.to_string(), file: "group" }),
            },
        };
    }
    let mut additional_gids = vec![gid];
    // With an explicit group Docker sets only that group; otherwise the
    // user's memberships from /etc/group join the primary one.
    if explicit_group.is_none() {
        if let Some(n) = &name {
            for e in group_entries(group) {
                if e.members.contains(&n.as_str()) && !additional_gids.contains(&e.gid) {
                    additional_gids.push(e.gid);
                }
            }
        }
    }
    Ok(ResolvedUser { uid, gid, additional_gids, home: if home.is_empty() { "/".into() } else { home } })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\nweb:x:33:33::/var/www:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnobody:x:65534:\nwww:x:33:\nstaff:x:50:web,other\n";

    #[test]
    fn table() {
        type Want<'a> = Option<(u32, u32, &'a [u32], &'a str)>;
        let cases: &[(&str, Want)] = &[
            ("", Some((0, 0, &[0], "/root"))),
            ("root", Some((0, 0, &[0], "/root"))),
            ("0", Some((0, 0, &[0], "/root"))),
            ("nobody", Some((65534, 65534, &[65534], "/home"))),
            ("1234:5678", Some((1234, 5678, &[5678], "/"))),
            ("1234", Some((1234, 0, &[0], "/"))),
            ("web", Some((33, 33, &[33, 50], "/var/www"))),
            ("web:staff", Some((33, 50, &[50], "/var/www"))),
            ("web:7", Some((33, 7, &[7], "/var/www"))),
            ("65534:0", Some((65534, 0, &[0], "/home"))),
            ("nosuchuser", None),
            ("root:nosuchgroup", None),
        ];
        for (spec, want) in cases {
            let got = resolve(spec, PASSWD, GROUP);
            match want {
                Some((uid, gid, groups, home)) => {
                    let u = got.unwrap_or_else(|e| panic!("{spec}: {e}"));
                    assert_eq!(
                        (u.uid, u.gid, u.additional_gids.as_slice(), u.home.as_str()),
                        (*uid, *gid, *groups, *home),
                        "{spec}"
                    );
                }
                None => assert!(got.is_err(), "{spec}"),
            }
        }
    }

    #[test]
    fn messages_are_dockers() {
        assert_eq!(
            resolve("nosuchuser", PASSWD, GROUP).unwrap_err().to_string(),
            "unable to find user nosuchuser: no matching entries in passwd file"
        );
        assert_eq!(
            resolve("root:nog", PASSWD, GROUP).unwrap_err().to_string(),
            "unable to find group nog: no matching entries in group file"
        );
        // No passwd at all: names fail, numbers work.
        assert!(resolve("root", "", "").is_err());
        assert_eq!(resolve("5", "", "").unwrap().home, "/");
    }
}
