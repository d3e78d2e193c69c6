//! What a build prints, in Docker's two styles: the classic builder's
//! (`Step 2/9 : RUN …`, ` ---> Running in …`, ` ---> Using cache`,
//! `Successfully built …`) on stdout, and BuildKit's plain progress
//! (`#5 [2/7] RUN …`, `#5 CACHED`, `#5 DONE 0.3s`) on stderr.

use std::io::Write;
use std::time::Instant;

use strata_store::Digest;

/// A build's progress events, in the order the executor raises them.
pub trait Progress {
    /// A step begins. `n`/`total` count the classic builder's steps (every
    /// instruction); `stage_n`/`stage_total` count BuildKit's (FROM and
    /// the instructions that make layers) within `stage`. `shown` says
    /// whether BuildKit shows this instruction at all.
    fn step(&mut self, s: &Step<'_>);
    /// The step's result came from the cache.
    fn cached(&mut self);
    /// A container runs the step (classic builder's ` ---> Running in`).
    fn running(&mut self, container: &str);
    /// Output of the step's command.
    fn output(&mut self, data: &[u8]);
    /// The step's container was removed.
    fn removed(&mut self, container: &str);
    /// The step made image `id` (or, for FROM, found it).
    fn done(&mut self, id: &Digest);
    /// A base image's ONBUILD triggers run now.
    fn triggers(&mut self, n: usize);
    /// The build ended with image `id`, tagged `tags`.
    fn finish(&mut self, id: &Digest, tags: &[String]);
}

/// One step, as announced.
pub struct Step<'a> {
    /// Classic numbering.
    pub n: usize,
    /// Classic total.
    pub total: usize,
    /// The instruction as written.
    pub text: &'a str,
    /// BuildKit's stage label (`build`, or empty for an unnamed stage of a
    /// single-stage build).
    pub stage: &'a str,
    /// BuildKit numbering within the stage.
    pub stage_n: usize,
    /// BuildKit total within the stage.
    pub stage_total: usize,
    /// Whether BuildKit shows it.
    pub shown: bool,
    /// BuildKit's text (`FROM docker.io/library/busybox`, the expanded RUN).
    pub bk_text: &'a str,
}

/// The classic builder's output.
pub struct Legacy<W: Write> {
    out: W,
}

impl<W: Write> Legacy<W> {
    /// Print to `out`.
    pub fn new(out: W) -> Self {
        Legacy { out }
    }
}

impl<W: Write> Progress for Legacy<W> {
    fn step(&mut self, s: &Step<'_>) {
        let _ = writeln!(self.out, "Step {}/{} : {}", s.n, s.total, s.text);
    }
    fn cached(&mut self) {
        let _ = writeln!(self.out, " ---> Using cache");
    }
    fn running(&mut self, container: &str) {
        let _ = writeln!(self.out, " ---> Running in {}", &container[..12.min(container.len())]);
    }
    fn output(&mut self, data: &[u8]) {
        let _ = self.out.write_all(data);
        let _ = self.out.flush();
    }
    fn removed(&mut self, container: &str) {
        let _ = writeln!(self.out, "Removing intermediate container {}", &container[..12.min(container.len())]);
    }
    fn done(&mut self, id: &Digest) {
        let _ = writeln!(self.out, " ---> {}", &id.hex()[..12]);
    }
    fn triggers(&mut self, n: usize) {
        let _ = writeln!(self.out, "# Executing {n} build trigger{}", if n == 1 { "" } else { "s" });
    }
    fn finish(&mut self, id: &Digest, tags: &[String]) {
        let _ = writeln!(self.out, "Successfully built {}", &id.hex()[..12]);
        for t in tags {
            let _ = writeln!(self.out, "Successfully tagged {t}");
        }
        let _ = self.out.flush();
    }
}

/// BuildKit's `--progress=plain`.
pub struct Plain<W: Write> {
    out: W,
    vertex: usize,
    started: Instant,
    open: bool,
    line: Vec<u8>,
}

impl<W: Write> Plain<W> {
    /// Print to `out`, beginning with the internal vertices BuildKit shows.
    pub fn new(mut out: W, dockerfile_len: usize) -> Self {
        let _ = writeln!(out, "#1 [internal] load build definition from Dockerfile");
        let _ = writeln!(out, "#1 transferring dockerfile: {dockerfile_len}B done");
        let _ = writeln!(out, "#1 DONE 0.0s");
        let _ = writeln!(out, "\n#2 [internal] load .dockerignore");
        let _ = writeln!(out, "#2 DONE 0.0s");
        Plain { out, vertex: 2, started: Instant::now(), open: false, line: Vec::new() }
    }

    fn close(&mut self) {
        if self.open {
            if !self.line.is_empty() {
                let l = std::mem::take(&mut self.line);
                let _ = writeln!(
                    self.out,
                    "#{} {:.3} {}",
                    self.vertex,
                    self.started.elapsed().as_secs_f64(),
                    String::from_utf8_lossy(&l)
                );
            }
            let _ = writeln!(self.out, "#{} DONE {:.1}s", self.vertex, self.started.elapsed().as_secs_f64());
            self.open = false;
        }
    }
}

impl<W: Write> Progress for Plain<W> {
    fn step(&mut self, s: &Step<'_>) {
        if !s.shown {
            return;
        }
        self.close();
        self.vertex += 1;
        let label = if s.stage.is_empty() {
            format!("[{}/{}]", s.stage_n, s.stage_total)
        } else {
            format!("[{} {}/{}]", s.stage, s.stage_n, s.stage_total)
        };
        let _ = writeln!(self.out, "\n#{} {label} {}", self.vertex, s.bk_text);
        self.started = Instant::now();
        self.open = true;
    }
    fn cached(&mut self) {
        if self.open {
            let _ = writeln!(self.out, "#{} CACHED", self.vertex);
            self.open = false;
        }
    }
    fn running(&mut self, _container: &str) {}
    fn output(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                let l = std::mem::take(&mut self.line);
                let _ = writeln!(
                    self.out,
                    "#{} {:.3} {}",
                    self.vertex,
                    self.started.elapsed().as_secs_f64(),
                    String::from_utf8_lossy(&l)
                );
            } else {
                self.line.push(b);
            }
        }
        let _ = self.out.flush();
    }
    fn removed(&mut self, _container: &str) {}
    fn done(&mut self, _id: &Digest) {
        self.close();
    }
    fn triggers(&mut self, _n: usize) {}
    fn finish(&mut self, id: &Digest, tags: &[String]) {
        self.close();
        self.vertex += 1;
        let v = self.vertex;
        let _ = writeln!(self.out, "\n#{v} exporting to image");
        let _ = writeln!(self.out, "#{v} exporting layers done");
        let _ = writeln!(self.out, "#{v} writing image {id} done");
        for t in tags {
            let _ = writeln!(self.out, "#{v} naming to {t} done");
        }
        let _ = writeln!(self.out, "#{v} DONE 0.0s");
        let _ = self.out.flush();
    }
}

/// No output (`-q`).
pub struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _s: &Step<'_>) {}
    fn cached(&mut self) {}
    fn running(&mut self, _c: &str) {}
    fn output(&mut self, _d: &[u8]) {}
    fn removed(&mut self, _c: &str) {}
    fn done(&mut self, _id: &Digest) {}
    fn triggers(&mut self, _n: usize) {}
    fn finish(&mut self, _id: &Digest, _tags: &[String]) {}
}
