//! Test support: the real Distribution registry (Debian's
//! `docker-registry`), started on 127.0.0.1 with a free port and its own
//! storage directory, optionally with htpasswd basic auth, and killed when
//! the guard drops (also when the test fails). A missing binary fails the
//! test with a clear message: CI installs it.

#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Where Debian's package puts the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A running `docker-registry serve` on a free loopback port, killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub host: String,
    /// Config, htpasswd, log and `data/` (the registry's storage).
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Start one; `auth` = htpasswd basic auth with this user and password.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install Debian's docker-registry package (scripts/install-deps does)"
        );
        let dir = tempfile::Builder::new().prefix("strata-registry-").tempdir_in("/var/tmp").unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let host = format!("127.0.0.1:{port}");
        let mut yml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd").args(["-Bbn", user, pass]).output().expect("htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, &out.stdout).unwrap();
            yml.push_str(&format!("auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n", htpasswd.display()));
        }
        let cfg = dir.path().join("config.yml");
        fs::write(&cfg, yml).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry { child, host, dir };
        let t = Instant::now();
        while TcpStream::connect(&reg.host).is_err() {
            if let Ok(Some(status)) = reg.child.try_wait() {
                panic!("docker-registry exited ({status}): {}", reg.log());
            }
            assert!(t.elapsed() < Duration::from_secs(20), "registry did not start: {}", reg.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
