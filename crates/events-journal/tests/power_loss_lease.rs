//! No seq reuse across a power loss under `SyncPolicy::Never` and
//! `Interval`, which acknowledge records the kernel still holds: a reader
//! may have been handed seqs that the power loss then took. The writer's
//! durable seq lease (`LEASE`) bounds them, and the open after a reboot
//! starts above it (`RecoveryReport::skipped`, one `Gap` for readers).
//!
//! A power loss is simulated as in `reliability_pipelined_commit.rs`: the
//! process "crashes" (a crashing fault, so nothing more reaches the disk)
//! and every segment is cut back to what its last `fdatasync` covered. The
//! reboot is `FaultPlan::reboot`: the reopened journal sees another boot id.

mod support;

use std::path::Path;
use std::time::Duration;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalError, JournalOptions, ReadError, Reader, Retention, SyncPolicy};
use support::{lose_power, lose_power_after, payload, rebooted, segments, seqs_and_gaps, ts};

const STEP: u64 = 64;

fn options(plan: &FaultPlan, sync: SyncPolicy) -> JournalOptions {
    plan.lease_step(STEP);
    JournalOptions::new().sync(sync).segment_bytes(4096).retention(Retention::unlimited()).faults(plan.clone())
}

/// Appends seqs `from..=to` one by one, each acknowledged on return.
fn append(j: &mut Journal, from: u64, to: u64) {
    for seq in from..=to {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

/// The process dies: nothing it would still write reaches the disk.
fn crash(plan: &FaultPlan, j: Journal) {
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j);
    assert!(plan.crashed());
}

/// 100 acknowledged appends (the lease extended at seq 65, to 129), read by
/// a reader, then a power loss: the durable prefix ends at seq `kept`.
fn handed_out_then_power_lost(dir: &Path, sync: SyncPolicy) -> u64 {
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, options(&plan, sync)).unwrap();
    append(&mut j, 1, 100);
    assert_eq!(seqs_and_gaps(dir, 0).0, (1..=100).collect::<Vec<_>>(), "handed out to a reader");
    crash(&plan, j);
    lose_power(dir, &plan);
    let (kept, gaps) = seqs_and_gaps(dir, 0);
    assert!(gaps.is_empty());
    assert!(kept.len() < 100, "the power loss took the active segment's unsynced records");
    kept.last().copied().unwrap_or(0)
}

/// After the power loss, before any writer opens, a reader in the new boot
/// (a follower in another process) resuming at the seq it had read (100)
/// waits: no record, no `Ahead`; `last_seq` is the lease's end (129), which
/// the next writer skips past; a cursor past it is ahead. It read `Ahead {
/// latest: kept }`: a follower rewound to the earliest record and read the
/// kept ones again, where the in-process stream after the next open gives
/// one gap. In the boot the writer ran in (a crash, no power loss), the
/// watermark alone says what was handed out, as before.
#[test]
fn after_a_power_loss_a_reader_with_no_writer_waits_at_a_seq_it_was_handed() {
    for sync in [SyncPolicy::Never, SyncPolicy::Interval(Duration::from_secs(3600))] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let kept = handed_out_then_power_lost(dir, sync);
        let plan = rebooted();
        let reader = Reader::open_with_faults(dir, plan).unwrap();
        assert_eq!(reader.last_seq().unwrap(), 129, "{sync:?}");
        assert_eq!(reader.last_record_seq().unwrap(), kept, "{sync:?}: the records there are");
        for cursor in [kept, 100, 129] {
            let read = reader.read_since(cursor).map(|mut records| records.next().map(|r| r.map(|r| r.seq())));
            assert!(matches!(read, Ok(None)), "{sync:?}: at {cursor}: {read:?}");
        }
        let ahead = reader.read_since(130).err();
        assert!(matches!(ahead, Some(ReadError::Ahead { latest: 129 })), "{sync:?}: {ahead:?}");
        // The records kept are still served from before them.
        assert_eq!(seqs_and_gaps(dir, 0).0.len() as u64, kept, "{sync:?}");
        // In the boot the writer ran in, the lease is no sign of a loss:
        // what the files and the watermark say, as before.
        assert_eq!(Reader::open(dir).unwrap().last_seq().unwrap(), kept, "{sync:?}");
    }
}

#[test]
fn a_power_loss_after_a_reboot_never_reuses_a_seq_that_was_handed_out() {
    for sync in [SyncPolicy::Never, SyncPolicy::Interval(Duration::from_secs(3600))] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let kept = handed_out_then_power_lost(dir, sync);

        let plan = rebooted();
        let (mut j, report) = Journal::open(dir, options(&plan, sync)).unwrap();
        assert_eq!(report.skipped, Some(kept + 1..=129), "{sync:?}: up to the durable lease");
        assert_eq!(report.next_seq, 130, "{sync:?}");
        append(&mut j, 130, 131);
        let (seqs, gaps) = seqs_and_gaps(dir, 0);
        assert_eq!(seqs, (1..=kept).chain(130..=131).collect::<Vec<_>>(), "{sync:?}");
        assert_eq!(gaps, [(kept + 1, 130)], "{sync:?}: one explicit gap");
        // A reader resuming where it stopped before the power loss: the
        // seqs it never saw are gone, explicitly, and none is reused.
        assert_eq!(seqs_and_gaps(dir, 100), (vec![130, 131], vec![(101, 130)]), "{sync:?}");
        j.close().unwrap();

        // The skip is done once: the next reopen, even after another reboot, continues.
        let plan = FaultPlan::new();
        plan.reboot(2);
        let (_j, report) = Journal::open(dir, options(&plan, sync)).unwrap();
        assert_eq!((report.skipped, report.next_seq), (None, 132), "{sync:?}");
    }
}

/// The same where the reopen cannot tell which boot it runs in (no boot
/// id: no `/proc`): it skips up to the durable lease, as after a reboot.
/// It had taken an unknown boot for the same one, skipped nothing, and
/// handed out again the seqs the power loss took.
#[test]
fn a_power_loss_where_the_boot_cannot_be_told_never_reuses_a_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let kept = handed_out_then_power_lost(tmp.path(), SyncPolicy::Never);
    let plan = FaultPlan::new();
    plan.boot_unknown();
    let (_j, report) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)).unwrap();
    assert_eq!((report.skipped, report.next_seq), (Some(kept + 1..=129), 130));
}

#[test]
fn a_process_crash_a_clean_close_or_always_skips_nothing() {
    // A process crash in the same boot: the kernel kept every record.
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)).unwrap();
    append(&mut j, 1, 100);
    crash(&plan, j);
    let (mut j, report) = Journal::open(tmp.path(), options(&FaultPlan::new(), SyncPolicy::Never)).unwrap();
    assert_eq!((report.skipped, report.next_seq), (None, 101));

    // A clean close, then a reboot.
    append(&mut j, 101, 200);
    j.close().unwrap();
    let plan = rebooted();
    let (j, report) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)).unwrap();
    assert_eq!((report.skipped, report.next_seq), (None, 201));
    drop(j);

    // `Always` hands out only synced seqs: a power loss takes none of them.
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
    append(&mut j, 1, 100);
    assert_eq!(plan.count(Step::Lease), 3, "opened, written, synced at open; never extended");
    crash(&plan, j);
    lose_power(tmp.path(), &plan);
    let plan = rebooted();
    let (_j, report) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
    assert_eq!((report.skipped, report.next_seq), (None, 101));
    assert_eq!(seqs_and_gaps(tmp.path(), 0).0, (1..=100).collect::<Vec<_>>());
}

#[test]
fn a_failed_lease_extension_fails_the_append_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)).unwrap();
    append(&mut j, 1, STEP);
    let len = std::fs::metadata(segments(tmp.path()).last().unwrap()).unwrap().len();
    plan.inject_next(Step::Lease, Fault::Errno(libc::EIO));
    let err = j.append(ts(STEP + 1), payload(STEP + 1)).unwrap_err();
    assert!(matches!(&err, JournalError::Io { op: "write lease", .. }), "{err}");
    assert!(matches!(j.append(ts(STEP + 1), payload(STEP + 1)), Err(JournalError::Failed { .. })));
    assert_eq!(std::fs::metadata(segments(tmp.path()).last().unwrap()).unwrap().len(), len, "nothing written");
    drop(j);
    let (_j, report) = Journal::open(tmp.path(), options(&FaultPlan::new(), SyncPolicy::Never)).unwrap();
    assert_eq!((report.skipped, report.next_seq), (None, STEP + 1));
}

#[test]
fn a_crash_at_any_step_of_the_reopen_after_a_reboot_never_reuses_a_seq() {
    for nth in 0..3 {
        for fault in [Fault::CrashBefore, Fault::CrashAfter, Fault::TornWrite(20)] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            let kept = handed_out_then_power_lost(dir, SyncPolicy::Never);
            // Occurrences 0, 1, 2: opening `LEASE`, writing the new lease, its fdatasync.
            let plan = FaultPlan::new();
            plan.reboot(1).inject(Step::Lease, nth, fault);
            assert!(Journal::open(dir, options(&plan, SyncPolicy::Never)).is_err(), "{nth} {fault:?}");

            let plan = FaultPlan::new();
            plan.reboot(2);
            let (mut j, report) = Journal::open(dir, options(&plan, SyncPolicy::Never)).unwrap();
            // Above the old lease; past the crashed open's own lease too
            // when it reached the disk (that writer handed nothing out, but
            // its lease cannot say so).
            let next = report.next_seq;
            assert!(next == 130 || (next == 130 + STEP && nth > 0), "{nth} {fault:?}: {report:?}");
            append(&mut j, next, next);
            let (seqs, _) = seqs_and_gaps(dir, 0);
            assert_eq!(seqs, (1..=kept).chain([next]).collect::<Vec<_>>(), "{nth} {fault:?}");
        }
    }
}

/// Under `Always`, a writer killed with seqs 6..=8 written and never synced
/// (no zeros reserved ahead, so nothing at open cuts, and syncs, the file).
fn killed_with_unsynced_records(dir: &Path) -> FaultPlan {
    let plan = FaultPlan::new();
    for nth in 0..16 {
        plan.inject(Step::Reserve, nth, Fault::Errno(libc::EIO));
    }
    let (mut j, _) = Journal::open(dir, options(&plan, SyncPolicy::Always)).unwrap();
    append(&mut j, 1, 5);
    assert_eq!(j.write_batch((6..=8).map(|seq| (ts(seq), payload(seq)))).unwrap(), 6..=8);
    crash(&plan, j);
    plan
}

#[test]
fn under_always_records_a_killed_writer_never_synced_are_synced_before_the_next_writer_hands_them_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = killed_with_unsynced_records(dir);
    let second = FaultPlan::new();
    let (j, report) = Journal::open(dir, options(&second, SyncPolicy::Always)).unwrap();
    assert_eq!(report.next_seq, 9, "recovery keeps what the page cache holds");
    assert_eq!(seqs_and_gaps(dir, 0).0, (1..=8).collect::<Vec<_>>(), "handed out to a reader");
    crash(&second, j);
    lose_power_after(dir, &[&first, &second]);
    let (_j, report) = Journal::open(dir, options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
    assert_eq!(report.next_seq, 9, "seqs 6..=8 were handed out: they must have survived");
    assert_eq!(seqs_and_gaps(dir, 0).0, (1..=8).collect::<Vec<_>>());
}

#[test]
fn a_reader_of_a_dead_writer_syncs_what_it_serves_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = killed_with_unsynced_records(dir);
    // No writer runs: the reader serves what recovery will keep.
    let reading = FaultPlan::new();
    let reader = Reader::open_with_faults(dir, reading.clone()).unwrap();
    for _ in 0..10 {
        let seqs: Vec<u64> = reader.read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "handed out");
    }
    assert_eq!(reading.count(Step::ReaderSync), 1, "a dead writer's file does not change: synced once");
    lose_power_after(dir, &[&first, &reading]);
    let (_j, report) = Journal::open(dir, options(&FaultPlan::new(), SyncPolicy::Always)).unwrap();
    assert_eq!(report.next_seq, 9, "seqs 6..=8 were handed out: they must have survived");

    // A sync that fails is the read's error, not a silent serve, and stays
    // so for that file (a second fdatasync after EIO proves nothing).
    let tmp = tempfile::tempdir().unwrap();
    killed_with_unsynced_records(tmp.path());
    let failing = FaultPlan::new();
    failing.inject(Step::ReaderSync, 0, Fault::Errno(libc::EIO));
    let reader = Reader::open_with_faults(tmp.path(), failing.clone()).unwrap();
    for _ in 0..2 {
        let err = reader.read_since(0).map(drop).expect_err("the failed sync is reported");
        assert!(matches!(&err, ReadError::Journal(JournalError::Io { op: "fdatasync segment", .. })), "{err:?}");
    }
    assert_eq!(failing.count(Step::ReaderSync), 1);
}

/// A dead writer's journal in `dir` (records 1..=8, 6..=8 never synced)
/// and a reader that served it, syncing its newest segment once.
fn served_once(dir: &Path) -> (Reader, FaultPlan) {
    killed_with_unsynced_records(dir);
    let reading = FaultPlan::new();
    let reader = Reader::open_with_faults(dir, reading.clone()).unwrap();
    assert_eq!(reader.read_since(0).unwrap().count(), 8);
    assert_eq!(reading.count(Step::ReaderSync), 1);
    (reader, reading)
}

/// Another dead writer's journal in `other`: records `1..=acked`
/// acknowledged (a roll after them when `roll`), then `unsynced` written
/// and never synced.
fn another_dead_writer(other: &Path, acked: u64, roll: bool, unsynced: std::ops::RangeInclusive<u64>) {
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(other, options(&plan, SyncPolicy::Always)).unwrap();
    append(&mut j, 1, acked);
    if roll {
        j.roll().unwrap();
    }
    assert_eq!(j.write_batch(unsynced.clone().map(|seq| (ts(seq), payload(seq)))).unwrap(), unsynced);
    crash(&plan, j);
}

/// Puts the journal of `other` in `dir`, its newest segment written into
/// the file of `dir`'s newest segment (renamed to its name): the inode a
/// file system reusing a freed one would give it. Its other segments, its
/// `WATERMARK` and `LEASE` are copied.
fn take_over_with_the_same_inode(dir: &Path, other: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut others = segments(other);
    others.sort();
    let newest = others.pop().unwrap();
    let first = segments(dir).pop().unwrap();
    let ino = std::fs::metadata(&first).unwrap().ino();
    let reused = dir.join(newest.file_name().unwrap());
    std::fs::rename(&first, &reused).unwrap();
    std::fs::write(&reused, std::fs::read(&newest).unwrap()).unwrap();
    assert_eq!(std::fs::metadata(&reused).unwrap().ino(), ino);
    for older in &others {
        std::fs::copy(older, dir.join(older.file_name().unwrap())).unwrap();
    }
    for name in ["WATERMARK", "LEASE"] {
        std::fs::copy(other.join(name), dir.join(name)).unwrap();
    }
}

/// A reader that synced a dead writer's segment, then finds the directory
/// holding another dead writer's journal whose newest segment (records
/// 9 and 10 never synced) has the inode number the first one had, as a
/// file system reusing a freed inode gives it (emulated: the same file,
/// renamed and rewritten). It syncs that segment before serving it. The
/// inode number alone had said "synced already": the records were served
/// unsynced, and a power loss could hand their seqs to other records.
#[test]
fn a_dead_writers_segment_with_a_reused_inode_number_is_synced_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (reader, reading) = served_once(dir);
    let other = tempfile::tempdir().unwrap();
    another_dead_writer(other.path(), 8, true, 9..=10);
    take_over_with_the_same_inode(dir, other.path());
    let seqs: Vec<u64> = reader.read_since(8).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [9, 10]);
    assert_eq!(reading.count(Step::ReaderSync), 2, "the other segment is synced before it is served");
}

/// As above, a recreated directory's first segment, of the same name and
/// the same inode number as the one the reader synced, its valid frames
/// ending before that one's did (records 2 and 3 never synced): synced
/// before it is served. First seq and inode alone had matched.
#[test]
fn a_recreated_journals_first_segment_with_a_reused_inode_number_is_synced_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (reader, reading) = served_once(dir);
    let other = tempfile::tempdir().unwrap();
    another_dead_writer(other.path(), 1, false, 2..=3);
    assert_eq!(segments(dir), [dir.join(segments(other.path())[0].file_name().unwrap())], "both start at seq 1");
    take_over_with_the_same_inode(dir, other.path());
    let seqs: Vec<u64> = reader.read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(reading.count(Step::ReaderSync), 2, "the new journal's segment is synced before it is served");
}

#[test]
fn a_failed_background_sync_fails_the_close_and_leaves_the_lease_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plan = FaultPlan::new();
    plan.inject(Step::BackgroundSync, 0, Fault::Errno(libc::EIO));
    let sync = SyncPolicy::Interval(Duration::from_millis(5));
    let (mut j, _) = Journal::open(dir, options(&plan, sync)).unwrap();
    append(&mut j, 1, 10);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while plan.fired().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the background sync never ran");
        std::thread::yield_now(); // it runs every 5 ms
    }
    let err = j.close().unwrap_err();
    assert!(matches!(&err, JournalError::Failed { .. }), "{err}");
    // Not recorded closed: after a reboot the next open skips the lease.
    let plan = rebooted();
    let (_j, report) = Journal::open(dir, options(&plan, sync)).unwrap();
    assert_eq!(report.skipped, Some(11..=STEP), "{report:?}");
}

#[test]
fn a_failed_lease_close_keeps_the_close_and_only_makes_the_next_open_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)).unwrap();
    append(&mut j, 1, 10);
    plan.inject_next(Step::Lease, Fault::Errno(libc::EIO));
    j.close().expect("the data is synced: a lease that stays open is no reason to fail the close");
    // The lease still says open: after a reboot the next open skips it,
    // more seqs than needed, never a reused one.
    let plan = rebooted();
    let (_j, report) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)).unwrap();
    assert_eq!(report.skipped, Some(11..=STEP), "{report:?}");
    assert_eq!(seqs_and_gaps(tmp.path(), 0).0, (1..=10).collect::<Vec<_>>(), "nothing lost");
}

/// A second writer comes after a reader synced the first dead writer's
/// file, writes a record into the space it reserved ahead and dies before
/// syncing it, leaving the file's length as it was (here the first writer's
/// reservation is made to end where the second's does). The reader syncs
/// the file again, since its valid frames now run further, before it
/// serves that record. Keyed by inode and length, the first sync had
/// covered it: seq 6 was served unsynced, and a power loss could give it
/// to another record.
#[test]
fn a_reader_syncs_again_what_a_second_dead_writer_wrote_into_reserved_space() {
    if !support::reserves() {
        return; // no space reserved ahead: the second writer grows the file
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Always).faults(first.clone())).unwrap();
    append(&mut j, 1, 5);
    crash(&first, j);
    let newest = segments(dir).pop().unwrap();
    let data = std::fs::metadata(&newest).unwrap().len();
    let reserved = data + (1 << 20); // where the next writer's reservation will end
    std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(reserved).unwrap();
    let reading = FaultPlan::new();
    let reader = Reader::open_with_faults(dir, reading.clone()).unwrap();
    let seqs = |reader: &Reader| reader.read_since(0).unwrap().map(|r| r.unwrap().seq()).collect::<Vec<_>>();
    assert_eq!(seqs(&reader), (1..=5).collect::<Vec<_>>());
    assert_eq!(reading.count(Step::ReaderSync), 1);
    let second = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Always).faults(second.clone())).unwrap();
    append(&mut j, 6, 6); // acknowledged: synced, and the space after it reserved
    assert_eq!(j.write_batch([(ts(7), payload(7))]).unwrap(), 7..=7);
    // Killed as it is: before anything gives the reserved space back.
    second.inject_next(Step::Trim, Fault::CrashBefore);
    drop(j);
    assert!(second.crashed());
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), reserved, "the same file, as long as before");
    assert_eq!(seqs(&reader), (1..=7).collect::<Vec<_>>());
    assert_eq!(reading.count(Step::ReaderSync), 2, "seq 7 was served before a sync covered it");
    for _ in 0..3 {
        assert_eq!(seqs(&reader), (1..=7).collect::<Vec<_>>());
    }
    assert_eq!(reading.count(Step::ReaderSync), 2, "an unchanged file is synced once");
}

/// Each writer of a journal has its own lease generation, greater than any
/// earlier writer's, whether that one closed or was killed: the façade
/// gives a reopened writer's live output positions of its own by it.
#[test]
fn every_writer_opens_with_a_greater_lease_generation() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (j, _) = Journal::open(dir.path(), options(&plan, SyncPolicy::Never)).unwrap();
    let mut last = j.open_generation();
    j.close().unwrap();
    for killed in [false, true, false] {
        let plan = FaultPlan::new();
        let (mut j, _) = Journal::open(dir.path(), options(&plan, SyncPolicy::Never)).unwrap();
        assert!(j.open_generation() > last, "{} after {last}", j.open_generation());
        last = j.open_generation();
        let next = j.next_seq();
        append(&mut j, next, next);
        if killed {
            crash(&plan, j);
        } else {
            j.close().unwrap();
        }
    }
}

/// `Interval(d)` promises what it acknowledged durable within about `d`:
/// 100 appends over several segments, then, once the background thread's
/// `fdatasync` ran after the last append (polled, at most 60 s), a crash
/// and a power loss. After the reboot every acknowledged record is there,
/// the sealed segments and the newest alike, and the next seq follows the
/// durable lease with no record lost before it.
#[test]
fn under_interval_a_power_loss_after_its_interval_keeps_every_acknowledged_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plan = FaultPlan::new();
    let sync = SyncPolicy::Interval(Duration::from_millis(5));
    let (mut j, _) = Journal::open(dir, options(&plan, sync)).unwrap();
    append(&mut j, 1, 100);
    assert!(segments(dir).len() >= 3, "the records span rolls: {:?}", segments(dir));
    // The background thread's next sync reached after the last append
    // returned starts after its write (one in flight then was counted
    // already), and there is one: the append marked the segment dirty.
    let synced = plan.count(Step::BackgroundSync);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while plan.count(Step::BackgroundSync) <= synced {
        assert!(std::time::Instant::now() < deadline, "no background fdatasync within 60 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    plan.inject_next(Step::AppendWrite, Fault::CrashBefore);
    assert!(j.append(ts(101), payload(101)).is_err());
    drop(j);
    assert!(plan.crashed());
    lose_power(dir, &plan);

    let after = FaultPlan::new();
    after.reboot(1);
    let (mut j, report) = Journal::open(dir, options(&after, sync)).unwrap();
    let (seqs, gaps) = seqs_and_gaps(dir, 0);
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "every acknowledged record");
    // What follows them is the skip up to the lease: seqs never handed out.
    assert!(report.skipped.as_ref().is_none_or(|s| *s.start() == 101), "{report:?}");
    assert!(gaps.iter().all(|&(expected, _)| expected == 101), "{gaps:?}");
    let next = report.next_seq;
    append(&mut j, next, next);
    j.close().unwrap();
}
