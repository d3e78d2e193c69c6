//! The per-container monitor: the `strata` binary in monitor mode, one
//! process per run, the job conmon does for podman. It is the runtime's
//! parent and the container init's subreaper, owns the container's stdio
//! (pipes, or the pty master with `-t`), appends the json-file log, serves
//! attach connections, and records the exit status and times atomically.
//! When the init exits it deletes the runtime's state, unmounts the root
//! filesystem, removes the container with `--rm`, and tells attached
//! clients the exit status last.
//!
//! Threads: one per output stream, one accepting attach connections, one
//! per attached client reading its input; the main thread reaps children.
//! `Shared::clients` and `Shared::log` are each behind their own mutex;
//! no thread holds both.

use std::io::{IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use strata_store::containers::Containers;
use strata_store::Store;

use crate::attach;
use crate::container;
use crate::error::{Error, IoContext, Result};
use crate::logs::{self, LineSplitter};
use crate::oci::{CreateIo, OciRuntime};
use crate::state::{self, State};

struct Shared {
    clients: Mutex<Vec<UnixStream>>,
    log: Mutex<std::fs::File>,
    /// The container's stdin (pipe write end or a dup of the pty master);
    /// `None` once closed.
    stdin: Mutex<Option<std::fs::File>>,
    /// The pty master, for resizes.
    pty: Option<Arc<OwnedFd>>,
}

impl Shared {
    fn broadcast(&self, kind: u8, data: &[u8]) {
        let mut cs = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        cs.retain_mut(|c| attach::write_frame(c, kind, data).is_ok());
    }
}

/// Run the monitor of container `id` in the store at `root` (driver
/// `driver`); returns the process exit status (0 when it supervised the
/// run to its end, whatever the container's own status).
pub fn main(root: &Path, driver: &str, id: &str) -> i32 {
    match run(root, driver, id) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("strata monitor: {e}");
            1
        }
    }
}

fn run(root: &Path, driver: &str, id: &str) -> Result<()> {
    // Our own session: the caller's terminal and its signals are not ours.
    let _ = rustix::process::setsid();
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(|e| Error::Io {
        op: "become subreaper",
        path: String::new(),
        source: e.into(),
    })?;
    let store = Store::open(root, driver)?;
    let c = Containers::new(store.root()).find(id)?;
    let run = container::run_config(&store, &c.id)?;
    let d = container::dir(&store, &c.id);
    let rt = container::runtime_for(&store, &c, &run)?;
    let me = rustix::process::getpid().as_raw_nonzero().get();

    let mut st = State::load(&d)?;
    st.monitor_pid = me;
    st.monitor_start = state::process_start_time(me).unwrap_or(0);
    st.status = "created".into();
    st.save(&d)?;

    let listener = attach::listen(&d)?;
    // The caller that spawned us connects first; we start once it has. A
    // caller that died before connecting leaves nothing mounted.
    let first = match accept_timeout(&listener, Duration::from_secs(30)) {
        Ok(s) => s,
        Err(e) => {
            let _ = store.driver().unmount(&c.layer);
            st.monitor_pid = 0;
            st.error = "the command that started the container went away before it started".into();
            let _ = st.save(&d);
            return Err(e);
        }
    };

    let log_path = logs::log_path(&d, &c.id);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).at("open", &log_path)?;

    let bundle = d.join("bundle");
    let pid_file = d.join("init.pid");
    let _ = std::fs::remove_file(&pid_file);
    // A runtime state left by an earlier run that was not cleaned up.
    if rt.state(&c.id)?.is_some() {
        let _ = rt.delete(&c.id, true);
    }

    // Publish ports: bind the host side now, so a port in use fails the start.
    let listeners = if run.network_mode() == "host" { Ok(Vec::new()) } else { crate::ports::bind(&run.ports) };
    let listeners = match listeners {
        Ok(l) => l,
        Err(e) => {
            let _ = store.driver().unmount(&c.layer);
            st.status = "created".into();
            st.error = e.to_string();
            st.exit_code = 128;
            st.monitor_pid = 0;
            st.save(&d)?;
            if run.auto_remove {
                remove_self(&store, &c)?;
            }
            let mut first = first;
            let mut payload = vec![125u8];
            payload.extend_from_slice(e.to_string().as_bytes());
            let _ = attach::write_frame(&mut first, attach::FAILED, &payload);
            return Ok(());
        }
    };
    let created = if run.tty {
        create_tty(&rt, &c.id, &bundle, &pid_file)
    } else {
        create_pipes(&rt, &c.id, &bundle, &pid_file, run.interactive)
    };
    let io = match created.and_then(|io| rt.start(&c.id).map(|()| io)) {
        Ok(io) => io,
        Err(e) => {
            let _ = rt.delete(&c.id, true);
            let _ = store.driver().unmount(&c.layer);
            let status = e.exit_status();
            st.status = "created".into();
            st.error = e.to_string();
            st.exit_code = i32::from(status);
            st.monitor_pid = 0;
            st.save(&d)?;
            if run.auto_remove {
                remove_self(&store, &c)?;
            }
            let mut first = first;
            let mut payload = vec![status];
            payload.extend_from_slice(e.to_string().as_bytes());
            let _ = attach::write_frame(&mut first, attach::FAILED, &payload);
            return Ok(());
        }
    };
    let init_pid: i32 = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    st.ports = listeners.iter().map(|(_, m)| m.clone()).collect();
    if let Err(e) = crate::ports::serve(listeners, init_pid) {
        tracing::warn!("port forwarding: {e}");
    }
    st.status = "running".into();
    st.pid = init_pid;
    st.error.clear();
    st.exit_code = 0;
    st.started_at = state::now();
    st.finished_at = state::ZERO_TIME.into();
    st.save(&d)?;

    let shared = Arc::new(Shared {
        clients: Mutex::new(Vec::new()),
        log: Mutex::new(log),
        stdin: Mutex::new(io.stdin),
        pty: io.pty.clone(),
    });
    {
        let mut f = first.try_clone().at("clone", &d)?;
        attach::write_frame(&mut f, attach::STARTED, b"").at("write", &d)?;
        add_client(&shared, first);
    }
    let mut readers = Vec::new();
    for (src, stream, kind) in io.outputs {
        let sh = shared.clone();
        readers.push(std::thread::spawn(move || pump(src, stream, kind, &sh)));
    }
    {
        let sh = shared.clone();
        listener.set_nonblocking(false).ok();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                add_client(&sh, conn);
            }
        });
    }

    let code = reap(init_pid);
    // Output ends when every process holding the streams is gone (the PID
    // namespace dies with its init); give stragglers a moment, no more.
    let t0 = Instant::now();
    for r in readers {
        while !r.is_finished() && t0.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if r.is_finished() {
            let _ = r.join();
        }
    }
    let _ = rt.delete(&c.id, true);
    let _ = store.driver().unmount(&c.layer);
    let mut st = State::load(&d)?;
    st.status = "exited".into();
    st.pid = 0;
    st.exit_code = code;
    st.finished_at = state::now();
    st.monitor_pid = 0;
    st.ports.clear();
    st.save(&d)?;
    if run.auto_remove {
        remove_self(&store, &c)?;
    }
    shared.broadcast(attach::EXIT, &code.to_be_bytes());
    Ok(())
}

fn remove_self(store: &Store, c: &strata_store::containers::Container) -> Result<()> {
    let lock = store.publish()?;
    // `rm -f` may have removed it already.
    if Containers::new(store.root()).find(&c.id).is_ok() {
        container::remove(store, c)?;
        drop(lock);
        store.prune_layers()?;
    }
    Ok(())
}

fn accept_timeout(l: &UnixListener, t: Duration) -> Result<UnixStream> {
    l.set_nonblocking(true).ok();
    let t0 = Instant::now();
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).ok();
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && t0.elapsed() < t => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(Error::Io { op: "accept attach connection", path: String::new(), source: e }),
        }
    }
}

/// The streams of a created container as the monitor holds them.
struct Io {
    stdin: Option<std::fs::File>,
    /// (source, log stream name, frame kind).
    outputs: Vec<(std::fs::File, &'static str, u8)>,
    pty: Option<Arc<OwnedFd>>,
}

fn create_pipes(rt: &impl OciRuntime, id: &str, bundle: &Path, pid_file: &Path, interactive: bool) -> Result<Io> {
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Error::Io {
            op: "pipe",
            path: String::new(),
            source: e.into(),
        })
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_io, stdin_keep) = if interactive {
        let (r, w) = pipe()?;
        (Stdio::from(r), Some(std::fs::File::from(w)))
    } else {
        (Stdio::null(), None)
    };
    rt.create(
        id,
        bundle,
        pid_file,
        None,
        CreateIo { stdin: stdin_io, stdout: Stdio::from(out_w), stderr: Stdio::from(err_w) },
    )?;
    // Our copies of the write ends are gone with `create`'s Stdio: EOF
    // arrives when the container's processes close theirs.
    Ok(Io {
        stdin: stdin_keep,
        outputs: vec![
            (std::fs::File::from(out_r), "stdout", attach::STDOUT),
            (std::fs::File::from(err_r), "stderr", attach::STDERR),
        ],
        pty: None,
    })
}

fn create_tty(rt: &impl OciRuntime, id: &str, bundle: &Path, pid_file: &Path) -> Result<Io> {
    // A short path for the socket (addresses hold 108 bytes), removed on drop.
    let dir = tempfile::Builder::new().prefix("strata-console-").tempdir().at("create in", &std::env::temp_dir())?;
    let sock = dir.path().join("console.sock");
    let created = std::sync::atomic::AtomicBool::new(false);
    let l = UnixListener::bind(&sock).at("listen on", &sock)?;
    l.set_nonblocking(true).ok();
    let result = std::thread::scope(|s| {
        let h = s.spawn(|| -> Result<Option<OwnedFd>> {
            let t0 = Instant::now();
            loop {
                match l.accept() {
                    Ok((conn, _)) => return recv_fd(&conn).map(Some),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if t0.elapsed() > Duration::from_secs(30) || created.load(std::sync::atomic::Ordering::Acquire)
                        {
                            return Ok(None);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => {
                        return Err(Error::Io { op: "accept console", path: sock.display().to_string(), source: e })
                    }
                }
            }
        });
        let r = rt.create(
            id,
            bundle,
            pid_file,
            Some(&sock),
            CreateIo { stdin: Stdio::null(), stdout: Stdio::null(), stderr: Stdio::null() },
        );
        // Tell the acceptor to give up if the runtime never connected.
        created.store(true, std::sync::atomic::Ordering::Release);
        let fd = h.join().unwrap_or(Ok(None));
        r.and(fd)
    });
    drop(dir);
    let master = result?.ok_or_else(|| Error::Invalid("the runtime sent no terminal".into()))?;
    let master = Arc::new(master);
    let dup = |f: &OwnedFd| -> Result<std::fs::File> {
        rustix::io::fcntl_dupfd_cloexec(f, 0).map(std::fs::File::from).map_err(|e| Error::Io {
            op: "dup",
            path: String::new(),
            source: e.into(),
        })
    };
    Ok(Io { stdin: Some(dup(&master)?), outputs: vec![(dup(&master)?, "stdout", attach::STDOUT)], pty: Some(master) })
}

/// Receive one file descriptor sent with SCM_RIGHTS on `conn`.
fn recv_fd(conn: &UnixStream) -> Result<OwnedFd> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 4096];
    let err = |e: rustix::io::Errno| Error::Io { op: "receive terminal", path: String::new(), source: e.into() };
    rustix::net::recvmsg(conn.as_fd(), &mut [IoSliceMut::new(&mut buf)], &mut cmsg, RecvFlags::CMSG_CLOEXEC)
        .map_err(err)?;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(Error::Invalid("the runtime's console message held no descriptor".into()))
}

fn add_client(sh: &Arc<Shared>, conn: UnixStream) {
    let Ok(reader) = conn.try_clone() else { return };
    sh.clients.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
    let sh = sh.clone();
    std::thread::spawn(move || client_input(reader, &sh));
}

/// Input from one attached client: stdin bytes, end of stdin, resizes.
fn client_input(mut conn: UnixStream, sh: &Shared) {
    while let Ok(Some((kind, data))) = attach::read_frame(&mut conn) {
        match kind {
            attach::STDIN => {
                let mut g = sh.stdin.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(f) = g.as_mut() {
                    if f.write_all(&data).is_err() {
                        *g = None;
                    }
                }
            }
            attach::STDIN_EOF => {
                // With a tty, end of input is the terminal's EOF character.
                if sh.pty.is_some() {
                    if let Some(f) = sh.stdin.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        let _ = f.write_all(&[4]);
                    }
                } else {
                    *sh.stdin.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
            }
            attach::RESIZE if data.len() == 4 => {
                if let Some(p) = &sh.pty {
                    let ws = rustix::termios::Winsize {
                        ws_row: u16::from_be_bytes([data[0], data[1]]),
                        ws_col: u16::from_be_bytes([data[2], data[3]]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(&**p, ws);
                }
            }
            _ => {}
        }
    }
}

/// Copy one output stream to the log and to attached clients until EOF
/// (EIO from a pty master whose terminal closed).
fn pump(mut src: std::fs::File, stream: &'static str, kind: u8, sh: &Shared) {
    let mut split = LineSplitter::new(stream);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let recs = split.feed(&buf[..n]);
        if !recs.is_empty() {
            let _ = logs::append(&mut sh.log.lock().unwrap_or_else(|e| e.into_inner()), &recs);
        }
        sh.broadcast(kind, &buf[..n]);
    }
    if let Some(r) = split.finish() {
        let _ = logs::append(&mut sh.log.lock().unwrap_or_else(|e| e.into_inner()), &[r]);
    }
}

/// Reap children until `pid` exits; its exit status (128 + signal when
/// killed). Orphans reparented to us are reaped on the way.
fn reap(pid: i32) -> i32 {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((p, status))) => {
                if p.as_raw_nonzero().get() == pid {
                    if let Some(c) = status.exit_status() {
                        return c;
                    }
                    if let Some(s) = status.terminating_signal() {
                        return 128 + s;
                    }
                    return 255;
                }
            }
            Ok(None) => {}
            // No children left: the init is gone without us seeing it.
            Err(rustix::io::Errno::CHILD) => return 255,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
