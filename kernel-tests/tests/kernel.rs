//! strata-overlayfs vs the kernel's overlayfs, mounted for real.
//!
//! Needs root and /dev/fuse (otherwise every test prints SKIPPED and passes).
//! Build the binary under test first, then run serially:
//!
//! ```text
//! cargo build -p strata-fs --bins
//! cargo test -p strata-kernel-tests --test kernel -- --test-threads=1 --nocapture
//! ```
//!
//! The tests also take a process-wide lock, so a parallel run is still
//! correct, just not faster. Environment:
//!
//! - `STRATA_OVERLAYFS_BIN`: binary to test (default `<target>/debug/strata-overlayfs`;
//!   `/usr/bin/fuse-overlayfs` has the same command line).
//! - `STRATA_DIFF_CASES` (default 300), `STRATA_DIFF_MAX_DEPTH` (20),
//!   `STRATA_DIFF_MAX_OPS` (12), `STRATA_DIFF_SHRINK_ITERS` (300),
//!   `STRATA_DIFF_SEED` (a number: fixed proptest seed).
//! - `STRATA_KERNEL_OPTS` (default `redirect_dir=on,index=on,metacopy=off,xino=off`:
//!   index=on keeps hard links linked through copy-up, as DESIGN.md requires).
//! - `STRATA_DIFF_TIMEOUT`: seconds a strata step may take before the daemon is
//!   declared hung and killed (default 10).
//! - `STRATA_DIFF_UPPER`, `STRATA_DIFF_REMOUNT`, `STRATA_DIFF_CROSS`,
//!   `STRATA_DIFF_DIR_NLINK`, `STRATA_DIFF_MTIME`, `STRATA_DIFF_INODES`: `0` turns
//!   that check off. `STRATA_DIFF_KEEP=1` keeps a failing case's directories.
//!
//! `differential_survey` (ignored by default) runs random cases without
//! stopping at the first mismatch and prints a tally of all mismatches.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner,
};
use strata_kernel_tests::{
    can_run, pattern, run_case, serial, strategy, Case, DiffOptions, FType, LayerSpec, Op, Report, Stack,
};

const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kernel.proptest-regressions");

fn setup(test: &str) -> Option<(MutexGuard<'static, ()>, DiffOptions)> {
    if !can_run(test) {
        return None;
    }
    let guard = serial();
    Some((guard, DiffOptions::from_env()))
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Run one targeted case; panic with the full report on a mismatch.
fn check(test: &str, case: Case) -> Option<Report> {
    let (_guard, opts) = setup(test)?;
    match run_case(&case, &opts) {
        Ok(r) => Some(r),
        Err(m) => panic!("\n{m}"),
    }
}

fn proptest_config(cases: u32) -> Config {
    let mut c = Config {
        cases,
        max_shrink_iters: env_num("STRATA_DIFF_SHRINK_ITERS", 300),
        // Shrinking mounts things; give it time (ms).
        max_shrink_time: 20 * 60 * 1000,
        ..Config::default()
    };
    // Persist failing seeds only when testing the real binary (not, say,
    // fuse-overlayfs through STRATA_OVERLAYFS_BIN).
    c.failure_persistence = if std::env::var_os("STRATA_OVERLAYFS_BIN").is_none() {
        Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS)))
    } else {
        Some(Box::new(FileFailurePersistence::Off))
    };
    c
}

fn runner(config: Config) -> TestRunner {
    match std::env::var("STRATA_DIFF_SEED") {
        Ok(s) if !s.trim().is_empty() => {
            let seed: u64 = s.parse().expect("STRATA_DIFF_SEED must be a number");
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&seed.to_le_bytes());
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
        }
        _ => TestRunner::new(config),
    }
}

/// Random stacks (depth 1..=20, mostly 1–4) and random op sequences
/// (1..=12), each compared op by op, then on disk, after a remount and
/// cross-mounted. A failure is shrunk to a minimal case and printed as
/// paste-able `Case { … }` code.
#[test]
fn differential() {
    let Some((_guard, opts)) = setup("differential") else {
        return;
    };
    let cases: u32 = env_num("STRATA_DIFF_CASES", 300);
    let max_depth: usize = env_num("STRATA_DIFF_MAX_DEPTH", 20);
    let max_ops: usize = env_num("STRATA_DIFF_MAX_OPS", 12);
    eprintln!("differential: {cases} cases against {} (kernel options {})", opts.bin.display(), opts.kernel_opts);
    let runs = AtomicU64::new(0);
    let passes = AtomicU64::new(0);
    let nanos = AtomicU64::new(0);
    let mount_nanos = AtomicU64::new(0);
    let start = Instant::now();
    let mut runner = runner(proptest_config(cases));
    let result = runner.run(&strategy::case(max_depth, max_ops), |case| {
        let r = run_case(&case, &opts);
        runs.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(rep) => {
                passes.fetch_add(1, Ordering::Relaxed);
                nanos.fetch_add(rep.elapsed.as_nanos() as u64, Ordering::Relaxed);
                mount_nanos.fetch_add(rep.mount_time.as_nanos() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(m) => Err(TestCaseError::fail(m.to_string())),
        }
    });
    let n = runs.load(Ordering::Relaxed).max(1);
    let p = passes.load(Ordering::Relaxed).max(1);
    eprintln!(
        "differential: {} case runs ({} passed) in {:.1?}: {:.1?}/run overall; \
         a passing case takes {:.1?}, of which mounting+unmounting {:.1?}",
        runs.load(Ordering::Relaxed),
        passes.load(Ordering::Relaxed),
        start.elapsed(),
        start.elapsed() / n as u32,
        Duration::from_nanos(nanos.load(Ordering::Relaxed) / p),
        Duration::from_nanos(mount_nanos.load(Ordering::Relaxed) / p),
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, case)) => {
            panic!("\n{why}\n\nminimal failing case (paste into a test):\n{case:?}\n")
        }
        Err(e) => panic!("{e}"),
    }
}

/// Like `differential` but does not stop at the first mismatch: runs
/// `STRATA_DIFF_CASES` (default 100) random cases and prints a tally of
/// mismatch categories with the smallest example of each.
#[test]
#[ignore = "a survey, not a pass/fail test: run with --ignored --nocapture"]
fn differential_survey() {
    let Some((_guard, opts)) = setup("differential_survey") else {
        return;
    };
    let cases: u32 = env_num("STRATA_DIFF_CASES", 100);
    let max_depth: usize = env_num("STRATA_DIFF_MAX_DEPTH", 20);
    let max_ops: usize = env_num("STRATA_DIFF_MAX_OPS", 12);
    let strat = strategy::case(max_depth, max_ops);
    let mut runner = runner(proptest_config(cases));
    let mut tally: BTreeMap<String, (usize, strata_kernel_tests::Mismatch)> = BTreeMap::new();
    let (mut pass, mut fail) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..cases {
        let case = strat.new_tree(&mut runner).expect("generate").current();
        match run_case(&case, &opts) {
            Ok(_) => pass += 1,
            Err(m) => {
                fail += 1;
                let size = |c: &Case| {
                    c.ops.len() + c.stack.lowers.len() + c.stack.lowers.iter().map(|l| l.entries.len()).sum::<usize>()
                };
                let e = tally.entry(m.category()).or_insert((0, (*m).clone()));
                e.0 += 1;
                if size(&m.case) < size(&e.1.case) {
                    e.1 = *m;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let mut rows: Vec<_> = tally.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .0));
    eprintln!("\n==== survey against {} ====", opts.bin.display());
    for (cat, (count, example)) in &rows {
        eprintln!("\n---- {count} × {cat} ---- smallest example:\n{example}");
    }
    eprintln!("\n==== tally ====");
    for (cat, (count, _)) in &rows {
        eprintln!("{count:5} × {cat}");
    }
    eprintln!(
        "survey: {pass} passed, {fail} mismatched, {cases} cases in {elapsed:.1?} ({:.1?}/case)",
        elapsed / cases.max(1)
    );
}

// ---- targeted cases ----

fn lower(r: &Report, path: &str) -> bool {
    r.kernel_tree.get(path).is_some()
}

/// Unlinking a lower file leaves a whiteout that hides it after remount.
#[test]
fn whiteout_of_lower_file_survives_remount() {
    let case = Case::new(
        Stack::new(vec![
            LayerSpec::new().file("a", "top").file("b", "b"),
            LayerSpec::new().file("a", "bottom").file("c", "c"),
        ]),
        vec![Op::unlink("a"), Op::unlink("c"), Op::readdir("."), Op::read("a")],
    );
    if let Some(r) = check("whiteout_of_lower_file_survives_remount", case) {
        assert!(!lower(&r, "a") && !lower(&r, "c") && lower(&r, "b"));
        let up = r.kernel_upper.unwrap();
        assert_eq!(up.get("a").unwrap().ftype, FType::Whiteout);
    }
}

/// Emptying, removing and re-creating a merged directory directly under the
/// mount root (and one level down): nothing from the lowers comes back,
/// before or after remount.
#[test]
fn recreate_dir_at_root_survives_remount() {
    let case = Case::new(
        Stack::new(vec![
            LayerSpec::new().file("dir1/x", "x").file("dir1/sub/z", "z"),
            LayerSpec::new().file("dir1/y", "y").file("dir2/sub/old", "old"),
        ]),
        vec![
            Op::unlink("dir1/x"),
            Op::unlink("dir1/sub/z"),
            Op::rmdir("dir1/sub"),
            Op::unlink("dir1/y"),
            Op::rmdir("dir1"),
            Op::mkdir("dir1"),
            Op::write("dir1/new", "fresh"),
            Op::readdir("dir1"),
            Op::unlink("dir2/sub/old"),
            Op::rmdir("dir2/sub"),
            Op::mkdir("dir2/sub"),
            Op::readdir("dir2/sub"),
        ],
    );
    if let Some(r) = check("recreate_dir_at_root_survives_remount", case) {
        assert!(lower(&r, "dir1/new"));
        assert!(!lower(&r, "dir1/x") && !lower(&r, "dir1/y") && !lower(&r, "dir1/sub"));
        assert!(!lower(&r, "dir2/sub/old"));
    }
}

/// mkdir where a lower file was deleted, and where a lower layer whites out
/// a directory of a deeper layer: the new directories are empty (opaque).
#[test]
fn mkdir_over_whiteout() {
    let case = Case::new(
        Stack::new(vec![
            LayerSpec::new().whiteout_aufs("dir1").whiteout("dir2"),
            LayerSpec::new().file("a", "file").file("dir1/x", "x").file("dir2/x", "x"),
        ]),
        vec![
            Op::unlink("a"),
            Op::mkdir("a"),
            Op::mkdir("dir1"),
            Op::mkdir("dir2"),
            Op::readdir("dir1"),
            Op::readdir("a"),
        ],
    );
    if let Some(r) = check("mkdir_over_whiteout", case) {
        assert!(!lower(&r, "dir1/x") && !lower(&r, "dir2/x"));
        assert_eq!(r.kernel_tree.get("a").unwrap().ftype, FType::Dir);
    }
}

/// Renaming a merged lower directory (redirect_dir) and re-creating its old
/// name; the result survives remount.
#[test]
fn rename_lower_dir_then_remount() {
    let case = Case::new(
        Stack::new(vec![
            LayerSpec::new().file("dir1/x", "x").file("dir1/sub/z", "z"),
            LayerSpec::new().file("dir1/y", "y").dir("dir2"),
        ]),
        vec![
            Op::rename("dir1", "dir3"),
            Op::readdir("dir3"),
            Op::write("dir3/x", "changed"),
            Op::rename("dir3/sub", "dir2/sub"),
            Op::mkdir("dir1"),
            Op::readdir("dir1"),
        ],
    );
    if let Some(r) = check("rename_lower_dir_then_remount", case) {
        assert!(r.results[0].is_ok(), "kernel refused the rename: {:?}", r.results[0]);
        assert!(lower(&r, "dir3/y") && lower(&r, "dir2/sub/z") && !lower(&r, "dir1/x"));
    }
}

/// RENAME_EXCHANGE and RENAME_NOREPLACE between lower entries.
#[test]
fn rename_exchange_and_noreplace() {
    let case = Case::new(
        Stack::new(vec![LayerSpec::new().file("a", "a").dir("dir1").file("dir1/x", "x").file("b", "b")]),
        vec![
            Op::rename_noreplace("a", "b"),
            Op::exchange("a", "dir1"),
            Op::exchange("a", "b"),
            Op::rename_noreplace("b", "c"),
        ],
    );
    check("rename_exchange_and_noreplace", case);
}

/// Without an upper every change fails with EROFS (and reads still work).
#[test]
fn read_only_mount_gives_erofs() {
    let case = Case::new(
        Stack::new(vec![LayerSpec::new().file("a", "a").whiteout("b"), LayerSpec::new().file("b", "b").dir("dir1")]),
        vec![
            Op::write("a", "x"),
            Op::write("d", "x"),
            Op::mkdir("dir3"),
            Op::unlink("a"),
            Op::rmdir("dir1"),
            Op::rename("a", "c"),
            Op::chmod("a", 0o600),
            Op::chown("a", Some(1000), None),
            Op::truncate("a", 0),
            Op::setxattr("a", "user.a", "1"),
            Op::symlink("a", "s"),
            Op::read("a"),
        ],
    )
    .read_only();
    if let Some(r) = check("read_only_mount_gives_erofs", case) {
        for (i, res) in r.results.iter().enumerate().take(11) {
            assert_eq!(*res, Err(rustix::io::Errno::ROFS), "kernel result of op #{i}");
        }
        assert!(!lower(&r, "b"));
    }
}

/// aufs/OCI `.wh.NAME` whiteouts and `.wh..wh..opq` markers in lowers are
/// honoured (strata gets them in that format, the kernel in its own).
#[test]
fn aufs_whiteouts_in_lowers_are_honoured() {
    let case = Case::new(
        Stack::new(vec![
            LayerSpec::new().whiteout_aufs("a").opaque_aufs("dir1").file("dir1/y", "top").whiteout_aufs("dir2/x"),
            LayerSpec::new().file("a", "a").file("b", "b").file("dir1/x", "x").file("dir2/x", "x").file("dir2/y", "y"),
        ]),
        vec![Op::readdir("."), Op::readdir("dir1"), Op::readdir("dir2"), Op::read("a"), Op::write("dir1/x", "new")],
    );
    if let Some(r) = check("aufs_whiteouts_in_lowers_are_honoured", case) {
        assert!(!lower(&r, ".wh.a") && !lower(&r, "dir1/.wh..wh..opq"));
        assert!(!lower(&r, "dir2/x") && lower(&r, "dir2/y"));
        assert_eq!(r.results[3], Err(rustix::io::Errno::NOENT));
    }
}

/// Copy-up of one name of a hard-linked lower file, and an open file that
/// is unlinked and then written through its descriptor.
#[test]
fn hardlinks_and_open_unlinked_files() {
    let case = Case::new(
        Stack::new(vec![LayerSpec::new().file("a", "shared").hardlink("b", "a").file("c", "c")]),
        vec![Op::append("a", "+more"), Op::read("b"), Op::open_unlink_write("c", "through fd"), Op::link("b", "dir1")],
    );
    check("hardlinks_and_open_unlinked_files", case);
}

/// Metadata changes on lower entries: chmod, chown, utimens, xattrs copy up
/// and keep everything else (times of the parent included).
#[test]
fn metadata_copy_up() {
    let case = Case::new(
        Stack::new(vec![LayerSpec::new()
            .file("dir1/x", "x")
            .mode(0o4755)
            .owner(1000, 1000)
            .xattr("user.a", "1")
            .symlink("dir1/l", "x")
            .dir("dir2")
            .mode(0o1777)
            .xattr("user.b", "dir")]),
        vec![
            Op::chmod("dir1/x", 0o600),
            Op::chown("dir1/l", Some(65534), None),
            Op::utimens("dir2", 1_234_567_890, 5),
            Op::setxattr("dir2", "user.c", "new"),
            Op::removexattr("dir2", "user.b"),
            Op::setxattr("dir1/l", "user.a", "on a symlink"),
        ],
    );
    check("metadata_copy_up", case);
}

/// A chown that changes nothing (-1:-1) reaches the filesystem as a SETATTR
/// without attributes; the kernel's overlay still copies the directory and
/// its parent up (found by the differential test).
#[test]
fn chown_to_nothing_copies_up() {
    let case = Case::new(
        Stack::new(vec![LayerSpec::new().file("dir1/sub/z", ""), LayerSpec::new(), LayerSpec::new()]),
        vec![Op::chown("dir1/sub", None, None)],
    );
    check("chown_to_nothing_copies_up", case);
}

/// Case reproducers print as code and parse back (compile-time check of the
/// builder API the printed reproducers use).
#[test]
fn reproducer_prints_as_code() {
    let case = Case::new(
        Stack::new(vec![LayerSpec::new().file("a", "x").mode(0o600).whiteout_aufs("b")])
            .with_upper(LayerSpec::new().opaque("dir1")),
        vec![Op::exchange("a", "dir1"), Op::write_at("a", 5, b"\x00\x01")],
    );
    let s = format!("{case:?}");
    assert!(s.contains(r#"Op::exchange("a", "dir1")"#), "{s}");
    assert!(s.contains(r#"Op::write_at("a", 5, b"\x00\x01")"#), "{s}");
    assert!(s.contains(r#".with_upper(LayerSpec::new()"#), "{s}");
}

/// xattr values larger than the 256-byte first buffer a reader tries
/// (getxattr must answer ERANGE, then the real size), set on lower entries
/// and through the mount.
#[test]
fn large_xattr_values() {
    let big = pattern(300);
    let case = Case::new(
        Stack::new(vec![LayerSpec::new().file("a", "a").xattr("user.a", &big).dir("dir1")]),
        vec![Op::setxattr("dir1", "user.b", pattern(4000)), Op::setxattr("a", "user.c", "small")],
    );
    check("large_xattr_values", case);
}

/// A FIFO unlinked while open still answers fstat (link count 0); the
/// daemon never sees FIFO opens, so it must remember the attributes.
#[test]
fn unlinked_open_fifo_still_stats() {
    let case = Case::new(
        Stack::new(vec![LayerSpec::new().file("a", "a")]),
        vec![Op::mkfifo("c"), Op::open_unlink_write("c", ""), Op::mkfifo("d"), Op::rename("a", "d")],
    );
    check("unlinked_open_fifo_still_stats", case);
}

/// Renaming a lower directory over an empty opaque upper directory updates
/// the parent's mtime (found by CI's differential run).
#[test]
fn rename_lower_dir_over_empty_upper_dir() {
    let case = Case {
        stack: Stack::new(vec![LayerSpec::new().dir("c").file("a", ""), LayerSpec::new()])
            .with_upper(LayerSpec::new().opaque("dir2").opaque("dir1").owner(0, 1000)),
        ops: vec![Op::link("a", "dir1/x"), Op::rename("c", "dir1"), Op::rename("c", "dir1")],
        read_only: false,
    };
    check("rename_lower_dir_over_empty_upper_dir", case);
}

/// Renaming a merged upper directory over a non-empty upper-only one fails,
/// and the upper filesystem's failed RENAME_WHITEOUT still touches the
/// parent (found by the differential run).
#[test]
fn rename_merged_dir_over_nonempty_upper_dir() {
    let case = Case {
        stack: Stack::new(vec![LayerSpec::new().file("dir1/x", ""), LayerSpec::new()])
            .with_upper(LayerSpec::new().opaque("dir2/x").file("dir1/x", "")),
        ops: vec![Op::rename("dir1", "dir2"), Op::rename("dir1", "dir3")],
        read_only: false,
    };
    check("rename_merged_dir_over_nonempty_upper_dir", case);
}
