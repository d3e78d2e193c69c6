//! Publishing ports without a bridge (`-p [IP:]HOSTPORT:PORT[/tcp]`): the
//! monitor listens on the host address and, for each connection, connects
//! to the port inside the container's network namespace and copies bytes
//! both ways. Docker cannot publish ports without its bridge network;
//! strata can.
//!
//! Threads: one per listener accepting; one that has entered the
//! container's network namespace (setns is per thread) and opens the
//! inner connections on request; two per connection copying.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One published port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    /// Host address to listen on (`0.0.0.0` when not given).
    pub host_ip: String,
    /// Host port (0: any free port, chosen at start).
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
}

impl PortMap {
    /// Parse Docker's `-p` forms: `PORT`, `HOSTPORT:PORT`, `IP:HOSTPORT:PORT`,
    /// `IP::PORT`, each optionally `/tcp`.
    pub fn parse(s: &str) -> std::result::Result<PortMap, String> {
        let (spec, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        if proto != "tcp" {
            return Err(format!("publishing {proto} ports is not supported (tcp only): {s}"));
        }
        let port = |p: &str| -> std::result::Result<u16, String> {
            p.parse::<u16>().map_err(|_| format!("invalid containerPort: {p}"))
        };
        let host_port = |p: &str| -> std::result::Result<u16, String> {
            if p.is_empty() {
                return Ok(0);
            }
            p.parse::<u16>().map_err(|_| format!("invalid hostPort: {p}"))
        };
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let m = match parts.as_slice() {
            [c] => PortMap { host_ip: "0.0.0.0".into(), host_port: 0, container_port: port(c)? },
            [c, h] => PortMap { host_ip: "0.0.0.0".into(), host_port: host_port(h)?, container_port: port(c)? },
            [c, h, ip] => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("invalid IP address: {ip}"));
                }
                PortMap { host_ip: ip.to_string(), host_port: host_port(h)?, container_port: port(c)? }
            }
            _ => return Err(format!("invalid publish spec: {s}")),
        };
        if m.container_port == 0 {
            return Err(format!("invalid containerPort: {}", m.container_port));
        }
        Ok(m)
    }

    /// Docker's `ps` form: `127.0.0.1:8080->80/tcp`.
    pub fn display(&self) -> String {
        format!("{}:{}->{}/tcp", self.host_ip, self.host_port, self.container_port)
    }
}

/// Bind every host side now (before the container starts, so that a
/// port in use fails the start with Docker's message); returns the
/// listeners and the maps with chosen ports filled in.
pub fn bind(maps: &[PortMap]) -> Result<Vec<(TcpListener, PortMap)>> {
    let mut out = Vec::new();
    for m in maps {
        let l = TcpListener::bind((m.host_ip.as_str(), m.host_port)).map_err(|e| {
            Error::Invalid(format!(
                "driver failed programming external connectivity on endpoint: Bind for {}:{} failed: {e}",
                m.host_ip, m.host_port
            ))
        })?;
        let port = l.local_addr().map(|a| a.port()).unwrap_or(m.host_port);
        out.push((l, PortMap { host_port: port, ..m.clone() }));
    }
    Ok(out)
}

type Request = (u16, mpsc::Sender<std::io::Result<TcpStream>>);

/// Serve the bound listeners for the container whose init is `pid`, in
/// background threads that live as long as the process (the monitor).
pub fn serve(listeners: Vec<(TcpListener, PortMap)>, pid: i32) -> Result<()> {
    if listeners.is_empty() {
        return Ok(());
    }
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = std::fs::File::open(&ns_path).map_err(|source| Error::Io { op: "open", path: ns_path.clone(), source })?;
    let (tx, rx) = mpsc::channel::<Request>();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let entered =
            rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network));
        let _ = ready_tx.send(entered.map_err(std::io::Error::from));
        for (port, reply) in rx {
            let _ = reply.send(TcpStream::connect(("127.0.0.1", port)));
        }
    });
    ready_rx
        .recv()
        .map_err(|_| Error::Invalid("the port forwarder thread ended".into()))?
        .map_err(|source| Error::Io { op: "enter network namespace", path: ns_path, source })?;
    for (l, m) in listeners {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (reply_tx, reply_rx) = mpsc::channel();
                if tx.send((m.container_port, reply_tx)).is_err() {
                    break;
                }
                match reply_rx.recv() {
                    Ok(Ok(inner)) => splice(conn, inner),
                    // Nothing listens inside: the client sees the connection close.
                    _ => drop(conn),
                }
            }
        });
    }
    Ok(())
}

/// Copy both ways until each side ends, half-closing as Docker's proxy does.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else { return };
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    };
    std::thread::spawn(move || copy(a, b2));
    std::thread::spawn(move || copy(b, a2));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let p = |s: &str| PortMap::parse(s);
        assert_eq!(p("80").unwrap(), PortMap { host_ip: "0.0.0.0".into(), host_port: 0, container_port: 80 });
        assert_eq!(p("8080:80").unwrap(), PortMap { host_ip: "0.0.0.0".into(), host_port: 8080, container_port: 80 });
        assert_eq!(
            p("127.0.0.1:8080:80/tcp").unwrap(),
            PortMap { host_ip: "127.0.0.1".into(), host_port: 8080, container_port: 80 }
        );
        assert_eq!(p("127.0.0.1::80").unwrap().host_port, 0);
        assert_eq!(p("8080:80").unwrap().display(), "0.0.0.0:8080->80/tcp");
        assert!(p("80/udp").is_err());
        assert!(p("x:80").is_err());
        assert!(p("8080:abc").unwrap_err().contains("invalid containerPort: abc"));
        assert!(p("notanip:1:2").is_err());
    }

    #[test]
    fn a_port_in_use_fails_to_bind() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let m = PortMap { host_ip: "127.0.0.1".into(), host_port: port, container_port: 80 };
        assert!(bind(&[m]).unwrap_err().to_string().contains("failed"));
        let any = PortMap { host_ip: "127.0.0.1".into(), host_port: 0, container_port: 80 };
        assert_ne!(bind(&[any]).unwrap()[0].1.host_port, 0, "a free port is chosen");
    }
}
