//! proptest strategies for random stacks and operation sequences over a
//! small name pool, so that operations hit lower entries often.

use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::{BoxedStrategy, Union};

use crate::ops::{Op, RenameHow, WriteHow, XattrHow};
use crate::path::RelPath;
use crate::runner::Case;
use crate::spec::{pattern, Entry, Kind, LayerSpec, Stack, FIXED_TIME_BASE};

/// Names that layers are built from (and that operations mostly use).
pub const LOWER_NAMES: &[&str] =
    &["a", "b", "c", "dir1", "dir2", "dir1/x", "dir1/y", "dir1/sub", "dir1/sub/z", "dir2/x", "dir2/sub"];

/// Names only operations use (never present in a layer).
pub const EXTRA_NAMES: &[&str] = &["d", "dir3", "dir1/new", "dir3/x", "dir2/sub/z"];

/// Symlink targets: never `..`; the absolute one is below a directory that
/// does not exist, so following it cannot leave the mount.
pub const SYMLINK_TARGETS: &[&str] = &["a", "x", "dir1", "dir1/x", "sub/z", "missing", "/nonexistent-strata-kt/x"];

const XATTR_NAMES: &[&str] = &["user.a", "user.b", "user.c"];

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => select(&["", "x", "lower", "hello world"][..]).prop_map(|s| s.as_bytes().to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..40),
        1 => Just(pattern(70_000)),
    ]
}

fn xattr_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => select(&["", "1", "xyz"][..]).prop_map(|s| s.as_bytes().to_vec()),
        1 => Just(b"\x00\xff\n".to_vec()),
        // Larger than the 256-byte buffer a first getxattr usually tries.
        1 => Just(pattern(300)),
    ]
}

fn xattrs() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop_oneof![
        4 => Just(Vec::new()),
        1 => prop::collection::vec((select(XATTR_NAMES).prop_map(String::from), xattr_value()), 1..=2),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        5 => content().prop_map(Kind::File),
        3 => Just(Kind::Dir),
        2 => any::<bool>().prop_map(|aufs| Kind::Whiteout { aufs }),
        1 => any::<bool>().prop_map(|aufs| Kind::OpaqueDir { aufs }),
        1 => select(SYMLINK_TARGETS).prop_map(|t| Kind::Symlink(t.as_bytes().to_vec())),
        1 => Just(Kind::Fifo),
        1 => select(LOWER_NAMES).prop_map(|t| Kind::HardLink(RelPath::new(t))),
    ]
}

const FILE_MODES: &[u32] = &[0o644, 0o644, 0o600, 0o755, 0o4755, 0o2755, 0o444, 0o000];
const DIR_MODES: &[u32] = &[0o755, 0o755, 0o700, 0o1777, 0o555, 0o2775];
const OWNERS: &[(u32, u32)] = &[(0, 0), (0, 0), (1000, 1000), (65534, 65534), (0, 1000)];

/// A random layer entry over [`LOWER_NAMES`].
pub fn entry() -> impl Strategy<Value = Entry> {
    (select(LOWER_NAMES), kind(), any::<prop::sample::Index>(), select(OWNERS), xattrs()).prop_map(
        |(path, kind, mode_ix, (uid, gid), xattrs)| {
            let mode = if kind.is_dir() { *mode_ix.get(DIR_MODES) } else { *mode_ix.get(FILE_MODES) };
            Entry { path: RelPath::new(path), kind, mode, uid, gid, xattrs }
        },
    )
}

/// Point hard links at an earlier regular file of the layer when their
/// random target is not one (so they are not all dropped by normalization).
fn retarget_hardlinks(mut l: LayerSpec) -> LayerSpec {
    let mut files: Vec<RelPath> = Vec::new();
    for e in &mut l.entries {
        match &mut e.kind {
            Kind::File(_) => files.push(e.path.clone()),
            Kind::HardLink(t) if !files.contains(t) && !files.is_empty() => {
                let n = t.as_bytes().len() % files.len();
                *t = files[n].clone();
            }
            _ => {}
        }
    }
    l
}

/// A random, consistent layer of 0–6 entries.
pub fn layer() -> impl Strategy<Value = LayerSpec> {
    prop::collection::vec(entry(), 0..=6).prop_map(|entries| retarget_hardlinks(LayerSpec { entries }).normalized())
}

/// A random stack: depth mostly 1–4, sometimes up to `max_depth` (≤ 20
/// suggested); 30% of stacks start with a non-empty upper.
pub fn stack(max_depth: usize) -> impl Strategy<Value = Stack> {
    let max_depth = max_depth.max(5);
    let lowers = prop_oneof![
        6 => prop::collection::vec(layer(), 1..=2),
        3 => prop::collection::vec(layer(), 3..=4),
        1 => prop::collection::vec(layer(), 5..=max_depth),
    ];
    let upper = prop_oneof![
        7 => Just(LayerSpec::new()),
        3 => layer().prop_map(|l| l.kernel_markers_only()),
    ];
    (lowers, upper).prop_map(|(lowers, upper)| Stack { lowers, upper })
}

fn op_path() -> impl Strategy<Value = RelPath> {
    prop_oneof![
        4 => select(LOWER_NAMES),
        1 => select(EXTRA_NAMES),
    ]
    .prop_map(RelPath::new)
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => select(&["", "new", "0123456789"][..]).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..100),
    ]
}

fn weighted(arms: Vec<(u32, BoxedStrategy<Op>)>) -> Union<BoxedStrategy<Op>> {
    Union::new_weighted(arms)
}

/// A random operation over [`LOWER_NAMES`] and [`EXTRA_NAMES`].
pub fn op() -> impl Strategy<Value = Op> {
    let write_how = prop_oneof![
        3 => Just(WriteHow::Truncate),
        1 => Just(WriteHow::CreateExcl),
        2 => Just(WriteHow::Append),
        2 => select(&[0u64, 1, 5, 100, 69_990][..]).prop_map(WriteHow::At),
    ];
    let rename_how = prop_oneof![
        3 => Just(RenameHow::Plain),
        1 => Just(RenameHow::NoReplace),
        1 => Just(RenameHow::Exchange),
    ];
    let xattr_how = prop_oneof![
        3 => Just(XattrHow::Any),
        1 => Just(XattrHow::Create),
        1 => Just(XattrHow::Replace),
    ];
    let name = || select(XATTR_NAMES).prop_map(String::from);
    let modes = select(&[0o644u32, 0o600, 0o755, 0o4755, 0o700, 0o1777, 0o000][..]);
    let ids = select(&[None, Some(0u32), Some(1000), Some(65534)][..]);
    weighted(vec![
        (4, (op_path(), write_how, data()).prop_map(|(path, how, data)| Op::Write { path, how, data }).boxed()),
        (
            1,
            (op_path(), select(&[0o644u32, 0o600, 0o4755][..]), any::<bool>())
                .prop_map(|(path, mode, excl)| Op::Create { path, mode, excl })
                .boxed(),
        ),
        (
            2,
            (op_path(), select(&[0o755u32, 0o700, 0o1777][..]))
                .prop_map(|(path, mode)| Op::Mkdir { path, mode })
                .boxed(),
        ),
        (1, op_path().prop_map(Op::mkfifo).boxed()),
        (1, (select(SYMLINK_TARGETS), op_path()).prop_map(|(t, path)| Op::symlink(t, path)).boxed()),
        (2, (op_path(), op_path()).prop_map(|(from, to)| Op::Link { from, to }).boxed()),
        (3, op_path().prop_map(Op::Unlink).boxed()),
        (2, op_path().prop_map(Op::Rmdir).boxed()),
        (4, (op_path(), op_path(), rename_how).prop_map(|(from, to, how)| Op::Rename { from, to, how }).boxed()),
        (1, (op_path(), modes).prop_map(|(path, mode)| Op::Chmod { path, mode }).boxed()),
        (1, (op_path(), ids.clone(), ids).prop_map(|(path, uid, gid)| Op::Chown { path, uid, gid }).boxed()),
        (
            1,
            (op_path(), select(&[0u64, 1, 3, 100, 100_000][..]))
                .prop_map(|(path, len)| Op::Truncate { path, len })
                .boxed(),
        ),
        (
            1,
            (op_path(), 0..1000i64, select(&[0u32, 500, 999_999_999][..]))
                .prop_map(|(path, s, nsec)| Op::Utimens { path, sec: FIXED_TIME_BASE + 300_000_000 + s, nsec })
                .boxed(),
        ),
        (
            2,
            (op_path(), name(), xattr_value(), xattr_how)
                .prop_map(|(path, name, value, how)| Op::SetXattr { path, name, value, how })
                .boxed(),
        ),
        (1, (op_path(), name()).prop_map(|(path, name)| Op::RemoveXattr { path, name }).boxed()),
        (1, op_path().prop_map(Op::Read).boxed()),
        (1, prop_oneof![1 => Just(RelPath::root()), 3 => op_path()].prop_map(Op::ReadDir).boxed()),
        (1, (op_path(), data()).prop_map(|(path, data)| Op::OpenUnlinkWrite { path, data }).boxed()),
    ])
}

/// A random case: a stack of depth 1..=`max_depth`, 1..=`max_ops`
/// operations, read-only one time in twelve.
pub fn case(max_depth: usize, max_ops: usize) -> impl Strategy<Value = Case> {
    (stack(max_depth), prop::collection::vec(op(), 1..=max_ops.max(1)), prop::bool::weighted(1.0 / 12.0))
        .prop_map(|(stack, ops, read_only)| Case { stack, ops, read_only })
}
