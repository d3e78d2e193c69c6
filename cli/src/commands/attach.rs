//! The client side of attaching to a container's monitor: our stdin to the
//! container (raw terminal mode with `-t`), its output to our stdout and
//! stderr, signals forwarded (`--sig-proxy`), the terminal's size kept in
//! step, and the exit status at the end.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};
use strata_runtime::attach as proto;
use strata_runtime::oci::{OciRuntime, Runc};

/// What to connect.
pub struct Streams {
    /// The container has a terminal: its output is one stream, our
    /// terminal goes raw.
    pub tty: bool,
    /// Forward our stdin.
    pub stdin: bool,
    /// Forward SIGINT, SIGTERM, … to the container (its runtime and ID).
    pub proxy: Option<(Runc, String)>,
}

/// Wait for the monitor to report the start: `Ok(Ok(()))` when the
/// container runs, `Ok(Err((status, message)))` when it could not start.
pub fn wait_started(s: &mut UnixStream) -> Result<std::result::Result<(), (u8, String)>> {
    loop {
        match proto::read_frame(s)? {
            Some((proto::STARTED, _)) => return Ok(Ok(())),
            Some((proto::FAILED, p)) if !p.is_empty() => {
                return Ok(Err((p[0], String::from_utf8_lossy(&p[1..]).into_owned())));
            }
            Some(_) => continue,
            None => return Err(anyhow!("the container's monitor exited before starting it")),
        }
    }
}

/// Restores the terminal's mode when dropped.
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        match rustix::termios::tcgetattr(&stdin) {
            Ok(orig) => {
                let mut raw = orig.clone();
                raw.make_raw();
                let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
                RawMode(Some(orig))
            }
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, t);
        }
    }
}

fn send_size(w: &Mutex<UnixStream>) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdout()) {
        let mut p = ws.ws_row.to_be_bytes().to_vec();
        p.extend_from_slice(&ws.ws_col.to_be_bytes());
        let _ = proto::write_frame(&mut *w.lock().unwrap_or_else(|e| e.into_inner()), proto::RESIZE, &p);
    }
}

/// Follow a started container to its end; returns its exit status.
pub fn follow(mut s: UnixStream, streams: Streams) -> Result<u8> {
    let writer = Arc::new(Mutex::new(s.try_clone()?));
    let is_tty = rustix::termios::isatty(std::io::stdin());
    let _raw = (streams.tty && streams.stdin && is_tty).then(RawMode::enter);
    if streams.tty {
        send_size(&writer);
        let w = writer.clone();
        if let Ok(mut sigs) = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH]) {
            std::thread::spawn(move || {
                for _ in sigs.forever() {
                    send_size(&w);
                }
            });
        }
    }
    if streams.stdin {
        let w = writer.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            let mut input = std::io::stdin().lock();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = proto::write_frame(
                            &mut *w.lock().unwrap_or_else(|e| e.into_inner()),
                            proto::STDIN_EOF,
                            b"",
                        );
                        break;
                    }
                    Ok(n) => {
                        if proto::write_frame(
                            &mut *w.lock().unwrap_or_else(|e| e.into_inner()),
                            proto::STDIN,
                            &buf[..n],
                        )
                        .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
    }
    if let Some((rt, id)) = streams.proxy {
        use signal_hook::consts::*;
        if let Ok(mut sigs) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
        {
            std::thread::spawn(move || {
                for sig in sigs.forever() {
                    let _ = rt.kill(&id, &sig.to_string(), false);
                }
            });
        }
    }
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        match proto::read_frame(&mut s) {
            Ok(Some((proto::STDOUT, d))) => {
                // A closed stdout (`| head`) is not a reason to stop following.
                let _ = out.write_all(&d).and_then(|()| out.flush());
            }
            Ok(Some((proto::STDERR, d))) => {
                let _ = err.write_all(&d);
            }
            Ok(Some((proto::EXIT, d))) if d.len() == 4 => {
                let code = i32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                return Ok((code & 0xff) as u8);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                return Err(anyhow!("lost the connection to the container's monitor (it was killed?)"));
            }
        }
    }
}
