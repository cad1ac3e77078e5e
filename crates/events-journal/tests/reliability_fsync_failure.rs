//! The fsync failure policy, proven through the I/O seam: after a failed
//! `fdatasync` the journal never retries it and never claims success. The
//! append that hit it returns the error, the writer is failed (every later
//! append, sync and close returns `Failed` without touching the disk), reads
//! of what was acknowledged keep working, and reopening recovers, with the
//! next seq after the last record on disk. The same for `ENOSPC` on write,
//! a short write (which must simply be completed), a write that fails after
//! a partial write, a read-only directory at roll time, and a failing
//! background sync.

mod support;

use std::path::Path;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalError, JournalOptions, Reader, Retention, SyncPolicy, verify};
use support::{assert_records, payload, read_all, ts};

fn options(plan: &FaultPlan, sync: SyncPolicy) -> JournalOptions {
    JournalOptions::new().sync(sync).segment_bytes(2048).retention(Retention::unlimited()).faults(plan.clone())
}

fn append_n(j: &mut Journal, n: u64) {
    for _ in 0..n {
        let seq = j.next_seq();
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

fn os_error(e: &JournalError) -> Option<i32> {
    match e {
        JournalError::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

const READER_CHILD: &str = "EVENTS_JOURNAL_READER_CHILD";

/// As the child of [`seqs_read_by_another_process`] (a test run again with
/// [`READER_CHILD`] naming a directory): prints the seqs read there.
fn print_seqs_read_in(dir: &str) {
    let records = read_all(&Reader::open(Path::new(dir)).unwrap(), 0);
    let seqs: Vec<String> = records.iter().map(|r| r.seq().to_string()).collect();
    println!("SEQS {}", seqs.join(","));
}

/// The seqs a reader in another process (this test binary, run again) reads in `dir`.
fn seqs_read_by_another_process(dir: &Path) -> Vec<u64> {
    let out = support::child_command(
        "eio_on_fsync_fails_the_writer_and_is_never_retried",
        (READER_CHILD, dir.to_str().unwrap()),
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the reading child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The harness prints the test's name on the same line, before it.
    let line = stdout.lines().find_map(|l| l.split("SEQS ").nth(1)).expect("the child printed its seqs");
    line.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
}

/// Everything a failed writer must do: refuse, keep reads working, recover on reopen.
fn assert_failed_then_recovers(dir: &Path, mut j: Journal, plan: &FaultPlan, acked: u64) {
    let counts_before: Vec<u64> = Step::ALL.iter().map(|&s| plan.count(s)).collect();
    let next = j.next_seq();
    assert!(matches!(j.append(ts(next), payload(next)), Err(JournalError::Failed { .. })));
    assert!(matches!(j.append_batch([(1, &b"x"[..])]), Err(JournalError::Failed { .. })));
    assert!(matches!(j.sync(), Err(JournalError::Failed { .. })));
    assert!(matches!(j.roll(), Err(JournalError::Failed { .. })));
    // Reads of what was acknowledged keep working while the writer is failed,
    // in this process and in another.
    assert_records(&read_all(&Reader::open(dir).unwrap(), 0), 1, acked);
    assert_eq!(seqs_read_by_another_process(dir), (1..=acked).collect::<Vec<_>>());
    assert!(matches!(j.close(), Err(JournalError::Failed { .. })));
    // Never retried: after the failure no step touched the disk again.
    let counts_after: Vec<u64> = Step::ALL.iter().map(|&s| plan.count(s)).collect();
    assert_eq!(counts_before, counts_after, "a failed writer went on doing I/O");

    let (j, report) = Journal::open(dir, options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
    assert_eq!(j.next_seq(), acked + 1, "{report:?}");
    assert_records(&read_all(&Reader::open(dir).unwrap(), 0), 1, acked);
    j.close().unwrap();
    assert!(verify(dir).unwrap().is_ok());
}

#[test]
fn eio_on_fsync_fails_the_writer_and_is_never_retried() {
    if let Ok(dir) = std::env::var(READER_CHILD) {
        return print_seqs_read_in(&dir);
    }
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
    append_n(&mut j, 5);
    plan.inject_next(Step::AppendSync, Fault::Errno(libc::EIO));
    let syncs = plan.count(Step::AppendSync);
    let err = j.append(ts(6), payload(6)).unwrap_err();
    assert_eq!(os_error(&err), Some(libc::EIO), "{err}");
    assert!(err.to_string().contains("fdatasync"), "{err}");
    assert_eq!(plan.count(Step::AppendSync), syncs + 1, "exactly one fdatasync attempt");
    assert_eq!(plan.fired(), [(Step::AppendSync, Fault::Errno(libc::EIO))]);
    assert_failed_then_recovers(tmp.path(), j, &plan, 5);
}

/// The cut-back of the refused batch is synced: its frames may already
/// be on disk (written back before the fdatasync failed) inside the space
/// the file reserved and synced ahead of the writes, so an unsynced
/// truncate could be undone by a power loss, and the refused records come
/// back valid at the next open.
#[test]
fn the_cut_back_after_a_failed_fdatasync_is_itself_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
    append_n(&mut j, 5);
    plan.inject_next(Step::AppendSync, Fault::Errno(libc::EIO));
    let (cuts, synced_cuts) = (plan.count(Step::Truncate), plan.count(Step::TruncateSync));
    assert!(j.append(ts(6), payload(6)).is_err());
    assert_eq!(plan.count(Step::Truncate), cuts + 1, "the refused batch is cut back");
    assert_eq!(plan.count(Step::TruncateSync), synced_cuts + 1, "and the cut fdatasynced");
    drop(j);
    let (j, _) = Journal::open(tmp.path(), options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
    assert_eq!(j.next_seq(), 6);
}

#[test]
fn eio_on_explicit_sync_and_on_roll_sync_fail_the_writer() {
    for (step, sync) in
        [(Step::Sync, SyncPolicy::Never), (Step::RollSync, SyncPolicy::Interval(std::time::Duration::from_secs(3600)))]
    {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let (mut j, _) = Journal::open(tmp.path(), options(&plan, sync)).unwrap();
        append_n(&mut j, 3);
        plan.inject_next(step, Fault::Errno(libc::EIO));
        let err = if step == Step::Sync { j.sync().unwrap_err() } else { j.roll().unwrap_err() };
        assert_eq!(os_error(&err), Some(libc::EIO), "{step:?}: {err}");
        // Under Never/Interval the 3 records were acknowledged after write(2): a
        // process crash keeps them, and so does this failure (nothing is cut).
        assert_failed_then_recovers(tmp.path(), j, &plan, 3);
    }
}

/// Records written under `Always` and never committed are not
/// acknowledged: when the closing `fdatasync` (or the one a drop makes), or
/// the give-back of the reserved space before it, fails, they are cut back
/// as a failed append's are, so neither a reader nor a reopen ever sees
/// them. Before, they stayed in the file.
#[test]
fn eio_on_the_closing_fdatasync_keeps_nothing_unacknowledged() {
    for (step, by_drop) in [(Step::Sync, false), (Step::Sync, true), (Step::Trim, false), (Step::Trim, true)] {
        if step == Step::Trim && !cfg!(target_os = "linux") {
            continue; // nothing is reserved there: no give-back to fail
        }
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
        append_n(&mut j, 3);
        assert_eq!(j.write_batch([(ts(4), payload(4)), (ts(5), payload(5))]).unwrap(), 4..=5);
        assert_eq!(j.acked_seq(), 3);
        plan.inject_next(step, Fault::Errno(libc::EIO));
        if by_drop {
            drop(j);
        } else {
            let err = j.close().unwrap_err();
            assert_eq!(os_error(&err), Some(libc::EIO), "{step:?}: {err}");
        }
        assert_eq!(plan.fired(), [(step, Fault::Errno(libc::EIO))], "{step:?}, drop: {by_drop}");
        assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 3);
        let (j, report) = Journal::open(tmp.path(), options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
        assert_eq!(j.next_seq(), 4, "{step:?}, drop: {by_drop}: {report:?}");
        j.close().unwrap();
        assert!(verify(tmp.path()).unwrap().is_ok());
    }
}

#[test]
fn failed_background_sync_fails_the_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    plan.inject(Step::BackgroundSync, 0, Fault::Errno(libc::EIO));
    let (mut j, _) =
        Journal::open(tmp.path(), options(&plan, SyncPolicy::Interval(std::time::Duration::from_millis(1)))).unwrap();
    append_n(&mut j, 2);
    // The background thread fails on its first sync; wait for it by polling the plan, then the writer must see it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while plan.fired().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the background sync never ran");
        std::thread::yield_now();
    }
    let mut failed = None;
    // What the appends were told: the last one that succeeded.
    let mut acked = j.last_seq();
    while failed.is_none() {
        let next = j.next_seq();
        match j.append(ts(next), payload(next)) {
            Ok(seq) => {
                acked = seq;
                assert!(std::time::Instant::now() < deadline, "appends kept succeeding");
            }
            Err(e) => failed = Some(e),
        }
    }
    assert!(matches!(failed, Some(JournalError::Failed { .. })), "{failed:?}");
    assert_eq!(j.last_seq(), acked, "the failed append left its record");
    assert_failed_then_recovers(tmp.path(), j, &plan, acked);
}

/// An append under `Interval` whose record is written while the background
/// `fdatasync` fails: its answer agrees with the journal. It was written
/// and published (readers in any process served it, the next open kept
/// it), then the append returned `Failed`: the failure recorded meanwhile
/// was reported for it by the `commit` that only `Always` needs.
#[test]
fn an_append_written_while_the_background_sync_fails_is_answered_as_journaled() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    // The background thread syncs 1 s after the open: long after the
    // append below is held in its write.
    let interval = std::time::Duration::from_secs(1);
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Interval(interval))).unwrap();
    j.append(ts(1), payload(1)).unwrap();
    plan.inject_next(Step::AppendWrite, Fault::Hold);
    plan.inject_next(Step::BackgroundSync, Fault::Errno(libc::EIO));
    let appending = std::thread::spawn(move || {
        let answer = j.append(ts(2), payload(2));
        (j, answer)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let fired = |step| plan.fired().iter().any(|(s, _)| *s == step);
    while !fired(Step::BackgroundSync) {
        assert!(std::time::Instant::now() < deadline, "the background sync never ran");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(fired(Step::AppendWrite), "the append was not held in its write before the sync failed");
    // The failure is recorded right after the fault fires: give it time,
    // or the append cannot meet it (the test then passes without checking).
    std::thread::sleep(std::time::Duration::from_millis(50));
    plan.release();
    let (mut j, answer) = appending.join().unwrap();
    let journaled = read_all(&Reader::open(tmp.path()).unwrap(), 0).len() as u64;
    match answer {
        Ok(seq) => assert_eq!((seq, journaled), (2, 2)),
        Err(e) => assert_eq!(journaled, 1, "the append failed ({e}) but readers serve its record"),
    }
    // The failure is the next call's.
    assert!(matches!(j.append(ts(3), payload(3)), Err(JournalError::Failed { .. })));
    drop(j);
    let (j, _) = Journal::open(tmp.path(), options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
    assert_eq!(j.next_seq(), journaled + 1);
}

#[test]
fn enospc_on_write_fails_the_append_and_leaves_no_partial_frame() {
    for partial in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
        append_n(&mut j, 4);
        let n = plan.count(Step::AppendWrite);
        if partial {
            // The disk fills up in the middle of the batch: 10 bytes go out, then ENOSPC.
            plan.inject(Step::AppendWrite, n, Fault::ShortWrite(10));
        }
        plan.inject(Step::AppendWrite, n + u64::from(partial), Fault::Errno(libc::ENOSPC));
        let payloads = [payload(5), payload(6)];
        let err = j.append_batch(payloads.iter().map(|p| (1, p.as_slice()))).unwrap_err();
        assert_eq!(os_error(&err), Some(libc::ENOSPC), "{err}");
        assert!(err.to_string().contains(".seg"), "the error names the segment: {err}");
        // Cut back: a reader sees the 4 acknowledged records and no partial frame.
        assert!(verify(tmp.path()).unwrap().is_ok());
        assert_failed_then_recovers(tmp.path(), j, &plan, 4);
    }
}

#[test]
fn a_short_write_is_completed_not_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
    append_n(&mut j, 2);
    let n = plan.count(Step::AppendWrite);
    for k in 0..3 {
        plan.inject(Step::AppendWrite, n + k, Fault::ShortWrite(7));
    }
    let payloads: Vec<Vec<u8>> = (3..=12).map(payload).collect();
    let range = j.append_batch(payloads.iter().enumerate().map(|(i, p)| (ts(3 + i as u64), p.as_slice()))).unwrap();
    assert_eq!(range, 3..=12);
    assert_eq!(plan.fired().len(), 3);
    assert!(plan.count(Step::AppendWrite) >= n + 4, "the rest was written by further write calls");
    append_n(&mut j, 1);
    j.close().unwrap();
    let (j, report) = Journal::open(tmp.path(), options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
    assert_eq!(report.action, None);
    assert_eq!(j.next_seq(), 14);
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 13);
}

#[test]
fn read_only_directory_at_roll_is_a_typed_error_and_loses_nothing() {
    // Tests run as root, which ignores directory permissions: simulate EROFS through the seam.
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
    plan.inject_next(Step::SegmentCreate, Fault::Errno(libc::EROFS));
    let mut err = None;
    for _ in 0..200 {
        let next = j.next_seq();
        if let Err(e) = j.append(ts(next), payload(next)) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the roll never happened");
    assert_eq!(os_error(&err), Some(libc::EROFS), "{err}");
    assert!(err.to_string().contains("create segment"), "{err}");
    let acked = j.last_seq();
    assert!(acked > 1);
    assert_failed_then_recovers(tmp.path(), j, &plan, acked);
}

#[test]
fn enospc_creating_a_journal_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    plan.inject_next(Step::HeaderWrite, Fault::Errno(libc::ENOSPC));
    let err = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap_err();
    assert_eq!(os_error(&err), Some(libc::ENOSPC), "{err}");
    // The half-created journal (an empty first segment) opens cleanly afterwards.
    let (mut j, _) = Journal::open(tmp.path(), options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
    append_n(&mut j, 3);
    j.close().unwrap();
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 3);
}
