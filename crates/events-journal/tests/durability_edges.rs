//! The edges of durability, counted through the I/O seam: every segment is
//! `fdatasync`ed before a roll seals it, whatever the sync policy, and
//! `close` syncs what was not; a torn-header rewrite and a new journal
//! directory are made durable in their directory; creating the directory
//! and its `LOCK` go through the seam; `Interval(0)` is refused before
//! anything is created. And recovery tolerates the torn tail that a power
//! loss leaves on a *sealed* segment written by a build that rolled
//! without syncing: it is cut like the active segment's, and the seqs it
//! held become one explicit gap, never reused.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::format::{SegmentHeader, encode_frame};
use events_journal::{
    Journal, JournalError, JournalOptions, Reader, RecoveryAction, RecoveryMode, Retention, SyncPolicy, verify,
};
use support::{assert_records, payload, read_all, snapshot, ts};

fn append_n(j: &mut Journal, n: u64) {
    for _ in 0..n {
        let seq = j.next_seq();
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

#[test]
fn a_roll_fdatasyncs_the_segment_it_seals_under_every_policy() {
    for sync in [SyncPolicy::Never, SyncPolicy::Interval(Duration::from_secs(3600)), SyncPolicy::Always] {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let (mut j, _) = Journal::open(tmp.path(), JournalOptions::new().sync(sync).faults(plan.clone())).unwrap();
        append_n(&mut j, 3);
        j.roll().unwrap();
        j.sync().unwrap(); // under Never the seal runs on the sealer thread: wait for it
        // Under Always every append was already synced: the roll syncs only
        // to make durable the trim of the space reserved past the last frame.
        let trims = plan.count(Step::Trim);
        assert_eq!(trims, u64::from(sync == SyncPolicy::Always && support::reserves()), "{sync:?}");
        let want = if sync == SyncPolicy::Always { trims } else { 1 };
        assert_eq!(plan.count(Step::RollSync), want, "{sync:?}");
        // A roll of a segment synced since its last append does not sync
        // again, but for a trim.
        append_n(&mut j, 1);
        j.sync().unwrap();
        j.roll().unwrap();
        let want = if sync == SyncPolicy::Always { plan.count(Step::Trim) } else { 1 };
        assert_eq!(plan.count(Step::RollSync), want, "{sync:?}");
        // A clean close syncs the active segment, whatever the policy.
        append_n(&mut j, 1);
        let syncs = plan.count(Step::Sync);
        j.close().unwrap();
        assert_eq!(plan.count(Step::Sync), syncs + 1, "{sync:?}");
    }
}

#[test]
fn a_zero_sync_interval_is_refused_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let err = Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Interval(Duration::ZERO))).unwrap_err();
    assert!(matches!(err, JournalError::InvalidOption { option: "sync", .. }), "{err}");
    assert!(!dir.exists(), "a refused option created the directory");
    // So does `create_dir` (a feed makes the directory with it first).
    let err = Journal::create_dir(&dir, &JournalOptions::new().sync(SyncPolicy::Interval(Duration::ZERO))).unwrap_err();
    assert!(matches!(err, JournalError::InvalidOption { option: "sync", .. }), "{err}");
    assert!(!dir.exists(), "a refused option created the directory");
    // The smallest non-zero interval works.
    let (j, _) =
        Journal::open(&dir, JournalOptions::new().sync(SyncPolicy::Interval(Duration::from_nanos(1)))).unwrap();
    j.close().unwrap();
}

#[test]
fn creating_the_directory_and_its_lock_go_through_the_seam_and_are_made_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b");
    for (step, op) in [(Step::DirCreate, "create directory"), (Step::LockCreate, "open lock file")] {
        let plan = FaultPlan::new();
        plan.inject_next(step, Fault::Errno(libc::EROFS));
        let err = Journal::open(&dir, JournalOptions::new().faults(plan.clone())).unwrap_err();
        assert!(
            matches!(&err, JournalError::Io { op: o, source, .. } if *o == op && source.raw_os_error() == Some(libc::EROFS)),
            "{step:?}: {err}"
        );
    }
    // A fresh nested directory: both new directories are fsynced in their
    // parents, then the first segment's creation fsyncs the journal
    // directory, and so do the creation of `LEASE` and the open's end
    // (the directory, and its parent once more: no lease said an open
    // finished here).
    let fresh = tmp.path().join("c").join("d");
    let plan = FaultPlan::new();
    let (j, report) = Journal::open(&fresh, JournalOptions::new().faults(plan.clone())).unwrap();
    assert!(report.created);
    assert_eq!((plan.count(Step::DirCreate), plan.count(Step::LockCreate), plan.count(Step::DirSync)), (1, 1, 6));
    j.close().unwrap();
    // An existing directory is not created again, but it is fsynced: a
    // name a killed writer made may not be durable yet (`power_loss_names.rs`).
    let plan = FaultPlan::new();
    let (j, _) = Journal::open(&fresh, JournalOptions::new().faults(plan.clone())).unwrap();
    assert_eq!((plan.count(Step::DirCreate), plan.count(Step::DirSync)), (0, 1));
    j.close().unwrap();
}

#[test]
fn rewriting_a_torn_header_fsyncs_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(tmp.path(), JournalOptions::new()).unwrap();
    append_n(&mut j, 2);
    j.roll().unwrap();
    j.close().unwrap();
    let newest = tmp.path().join(format!("{:020}.seg", 3));
    std::fs::write(&newest, [0u8; 10]).unwrap();
    let plan = FaultPlan::new();
    let (j, report) = Journal::open(tmp.path(), JournalOptions::new().faults(plan.clone())).unwrap();
    assert_eq!(report.action, Some(RecoveryAction::RewroteTornHeader { path: newest }));
    // The rewrite's fsync of the directory, and the open's own.
    assert_eq!((plan.count(Step::HeaderRewrite), plan.count(Step::DirSync)), (1, 2));
    assert_eq!(j.next_seq(), 3);
}

const EPOCH: u64 = 0xfeed;

/// A segment named `first` holding frames `first..=last`, then `torn` bytes
/// of the frame of `last + 1` (what a power loss leaves of an unsynced end).
fn sealed_with_torn_tail(dir: &Path, first: u64, last: u64, torn: usize) -> (PathBuf, u64) {
    let mut buf = SegmentHeader { epoch: EPOCH, first_seq: first, created_at: first, codec_tag: 0 }.encode().to_vec();
    for s in first..=last {
        encode_frame(&mut buf, s, ts(s), &payload(s));
    }
    let end = buf.len() as u64;
    let mut next = Vec::new();
    encode_frame(&mut next, last + 1, ts(last + 1), &payload(last + 1));
    buf.extend_from_slice(&next[..torn.min(next.len() - 1)]);
    let path = dir.join(format!("{first:020}.seg"));
    std::fs::write(&path, buf).unwrap();
    (path, end)
}

#[test]
fn a_torn_tail_on_sealed_segments_is_cut_and_its_seqs_become_one_gap() {
    for mode in
        [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption, RecoveryMode::SkipCorrupt, RecoveryMode::Repair]
    {
        let tmp = tempfile::tempdir().unwrap();
        // A power loss after two unsynced rolls: 1..=10 kept 1..=7 and half
        // of 8; 11..=20 kept 11..=15 and 30 bytes of 16; the newest is 21..=22.
        let (first, first_end) = sealed_with_torn_tail(tmp.path(), 1, 7, 60);
        let (second, second_end) = sealed_with_torn_tail(tmp.path(), 11, 15, 30);
        let (newest, _) = sealed_with_torn_tail(tmp.path(), 21, 22, 0);
        // Readers never wait for a writer to end a torn sealed segment: one gap, then on.
        let items: Vec<_> = Reader::open(tmp.path()).unwrap().read_since(0).unwrap().collect();
        assert!(matches!(&items[7], Err(JournalError::Gap { expected: 8, found: 11, .. })), "{:?}", items[7]);
        assert_eq!(items.len(), 7 + 1 + 5 + 1 + 2);

        let (mut j, report) = Journal::open(tmp.path(), JournalOptions::new().recovery(mode)).unwrap();
        assert_eq!(report.action, None, "{mode:?}: the newest segment is clean");
        assert_eq!(
            report.sealed,
            [
                RecoveryAction::TruncatedTornTail { path: first.clone(), offset: first_end, bytes: 60 },
                RecoveryAction::TruncatedTornTail { path: second.clone(), offset: second_end, bytes: 30 },
            ],
            "{mode:?}"
        );
        assert_eq!(std::fs::metadata(&first).unwrap().len(), first_end);
        assert_eq!(std::fs::metadata(&second).unwrap().len(), second_end);
        // The lost seqs are never handed out again.
        assert_eq!(j.next_seq(), 23);
        append_n(&mut j, 1);
        j.close().unwrap();
        let reader = Reader::open(tmp.path()).unwrap();
        let items: Vec<_> = reader.read_since(0).unwrap().collect();
        let gaps: Vec<(u64, u64)> = items
            .iter()
            .filter_map(|r| match r {
                Err(JournalError::Gap { expected, found, .. }) => Some((*expected, *found)),
                _ => None,
            })
            .collect();
        assert_eq!(gaps, [(8, 11), (16, 21)], "{mode:?}");
        assert_records(&read_all(&reader, 20), 21, 23);
        let problems = verify(tmp.path()).unwrap().problems;
        let what: Vec<&str> = problems.iter().map(|p| p.what.as_str()).collect();
        assert_eq!(
            what,
            ["records 8..=10 are missing before this segment", "records 16..=20 are missing before this segment"]
        );
        assert_eq!((problems[0].path.as_path(), problems[1].path.as_path()), (second.as_path(), newest.as_path()));
        // Cut once: the next open finds nothing to do.
        let (_, report) = Journal::open(tmp.path(), JournalOptions::new()).unwrap();
        assert!(report.sealed.is_empty() && report.action.is_none(), "{report:?}");
    }
}

#[test]
fn a_torn_sealed_tail_before_an_empty_newest_segment_continues_at_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    sealed_with_torn_tail(tmp.path(), 1, 4, 20);
    let empty = SegmentHeader { epoch: EPOCH, first_seq: 9, created_at: 9, codec_tag: 0 }.encode();
    std::fs::write(tmp.path().join(format!("{:020}.seg", 9)), empty).unwrap();
    let (mut j, report) = Journal::open(tmp.path(), JournalOptions::new().retention(Retention::unlimited())).unwrap();
    assert_eq!(report.sealed.len(), 1, "{report:?}");
    assert_eq!(j.next_seq(), 9);
    append_n(&mut j, 1);
    j.close().unwrap();
    let items: Vec<_> = Reader::open(tmp.path()).unwrap().read_since(0).unwrap().collect();
    assert!(matches!(&items[4], Err(JournalError::Gap { expected: 5, found: 9, .. })), "{:?}", items[4]);
    assert!(matches!(&items[5], Ok(r) if r.seq() == 9));
}

#[test]
fn what_still_refuses_to_open_changes_nothing() {
    // A torn header on a sealed segment (its creation was fsynced: this is
    // damage, not a power loss): refused unless an operator repairs.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(format!("{:020}.seg", 1)), [0x89, b'E', b'V']).unwrap();
    sealed_with_torn_tail(tmp.path(), 5, 6, 0);
    let before = snapshot(tmp.path());
    let err = Journal::open(tmp.path(), JournalOptions::new()).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { offset: 0, .. }), "{err}");
    assert!(snapshot(tmp.path()) == before);
}

#[test]
fn a_failed_background_seal_under_never_fails_the_writer_and_is_never_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) =
        Journal::open(tmp.path(), JournalOptions::new().sync(SyncPolicy::Never).faults(plan.clone())).unwrap();
    append_n(&mut j, 3);
    plan.inject_next(Step::RollSync, Fault::Errno(libc::EIO));
    j.roll().unwrap(); // the seal runs on the sealer thread
    assert!(matches!(j.sync(), Err(JournalError::Failed { .. })), "sync must report the failed seal");
    let next = j.next_seq();
    assert!(matches!(j.append(ts(next), payload(next)), Err(JournalError::Failed { .. })));
    assert_eq!(plan.count(Step::RollSync), 1, "a failed fsync is never retried");
    assert!(matches!(j.close(), Err(JournalError::Failed { .. })));
}

/// The fsync of the journal directory's parent that an open makes where
/// no lease says an open ever finished (the fourth directory fsync of the
/// first open of an empty directory, after the segment's, `LEASE`'s and
/// the directory's own): a parent that cannot be fsynced for want of
/// permission or support (`EACCES`, `EINVAL`: a read-only image the
/// journal is mounted under) is passed over, and the open goes on; any
/// other failure (`EIO`) refuses the open, naming the parent.
#[test]
fn the_parents_fsync_is_passed_over_only_where_it_cannot_be_made() {
    for (errno, opens) in [(libc::EACCES, true), (libc::EINVAL, true), (libc::EIO, false)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        std::fs::create_dir(&dir).unwrap();
        let plan = FaultPlan::new();
        plan.inject(Step::DirSync, 3, Fault::Errno(errno));
        let opened = Journal::open(&dir, JournalOptions::new().faults(plan.clone()));
        assert_eq!(plan.fired(), [(Step::DirSync, Fault::Errno(errno))], "errno {errno}");
        match opened {
            Ok((j, _)) if opens => j.close().unwrap(),
            Err(JournalError::Io { path, .. }) if !opens => assert_eq!(path, tmp.path()),
            other => panic!("errno {errno}: {other:?}"),
        }
    }
}
