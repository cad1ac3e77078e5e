//! A power loss may persist a writer's unsynced pages in any order: a later
//! one without an earlier one leaves zeros, then valid frames, at the end
//! of the newest segment. After a restart of the machine that is what the
//! crash left, not damage, and `Strict` opens the journal: it cuts there
//! as it cuts a torn tail (the frames after the hole go; under `Never` the
//! lease's skip keeps their seqs from being handed out again). In the same
//! boot (a process crash: the page cache keeps every write whole) it is
//! damage and still refused, and so is damage that is not a sector of
//! zeros (a flipped byte is no lost page).
//!
//! The power loss is simulated as in `power_loss_lease.rs` (a crashing
//! fault, then the segment cut back to what its last `fdatasync` covered,
//! the watermark and the lease put back as their last `fdatasync` left
//! them), then the lost tail is written back with its first frames zeroed.

mod support;

use std::path::Path;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::format::{HEADER_LEN, encode_frame};
use events_journal::{Journal, JournalError, JournalOptions, RecoveryAction, Retention, SyncPolicy};
use support::{lose_power, payload, rebooted, seqs_and_gaps, ts};

fn options(plan: &FaultPlan, sync: SyncPolicy) -> JournalOptions {
    plan.lease_step(64);
    JournalOptions::new().sync(sync).segment_bytes(1 << 20).retention(Retention::unlimited()).faults(plan.clone())
}

/// Where the frame of `seq` starts in the first segment (seqs from 1).
fn frame_offset(seq: u64) -> usize {
    let mut buf = Vec::new();
    for s in 1..seq {
        encode_frame(&mut buf, s, ts(s), &payload(s));
    }
    HEADER_LEN + buf.len()
}

/// The last seq written and never synced.
const LAST: u64 = 40;

/// The first seq after the hole: the pages from seq 11's frame on that
/// never reached the disk cover at least one whole 512-byte sector.
fn after_hole() -> u64 {
    let sector_end = frame_offset(11).next_multiple_of(512) + 512;
    (12..LAST).find(|&seq| frame_offset(seq) >= sector_end).expect("the tail spans a sector")
}

/// Seqs 1..=10 synced, 11..=LAST written and never synced (`write`: how,
/// under `sync`), then the process dies and the power goes: the disk keeps
/// 1..=10, and of the rest only `after_hole()..=LAST` (the pages before
/// them never reached it: `lost`, zeros).
fn synced_ten_then_a_tail_with_a_hole(
    dir: &Path,
    sync: SyncPolicy,
    lost: u8,
    write: impl FnOnce(&mut Journal, &FaultPlan),
) {
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, options(&plan, sync)).unwrap();
    for seq in 1..=10 {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
    j.sync().unwrap();
    write(&mut j, &plan);
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j);
    assert!(plan.crashed());
    let segment = dir.join(format!("{:020}.seg", 1));
    let written = std::fs::read(&segment).unwrap();
    assert!(written.len() >= frame_offset(LAST + 1), "11..=LAST were written");
    lose_power(dir, &plan);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), frame_offset(11) as u64, "only 1..=10 were synced");
    let mut left = written[..frame_offset(LAST + 1)].to_vec();
    left[frame_offset(11)..frame_offset(after_hole())].fill(lost);
    std::fs::write(&segment, left).unwrap();
}

/// 11..=LAST appended one by one, each acknowledged on return (under
/// `Never`: not synced).
fn acknowledged_one_by_one(j: &mut Journal, _: &FaultPlan) {
    for seq in 11..=LAST {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

/// 11..=LAST written as one batch under `Always`, and the process killed
/// before its fdatasync: never acknowledged.
fn unacknowledged_batch(j: &mut Journal, plan: &FaultPlan) {
    plan.inject_next(Step::AppendSync, Fault::CrashBefore);
    let batch: Vec<(u64, Vec<u8>)> = (11..=LAST).map(|seq| (ts(seq), payload(seq))).collect();
    assert!(j.append_batch(batch.iter().map(|(ts, p)| (*ts, p.as_slice()))).is_err());
}

/// Appends LAST + 1 to `j`, the writer that cut 11..=LAST, and closes it:
/// readers then get 1..=10, one gap, then LAST + 1.
fn goes_on_past_the_dropped(mut j: Journal, dir: &Path) {
    assert_eq!(j.append(ts(LAST + 1), payload(LAST + 1)).unwrap(), LAST + 1);
    j.close().unwrap();
    let (seqs, gaps) = seqs_and_gaps(dir, 0);
    assert_eq!(seqs, (1..=10).chain([LAST + 1]).collect::<Vec<_>>());
    assert_eq!(gaps, [(11, LAST + 1)]);
}

/// A `Strict` open of the journal with damage where 11 should be, and
/// valid frames after it, refused (`plan`'s boot).
fn refused(dir: &Path, sync: SyncPolicy, plan: &FaultPlan) {
    match Journal::open(dir, options(plan, sync)) {
        Err(JournalError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, frame_offset(11) as u64);
            assert!(reason.contains("valid frames follow"), "{reason}");
        }
        other => panic!("damage: {other:?}"),
    }
}

/// The hole, then what a `Strict` open makes of it: refused in the same
/// boot; after a restart, cut at the hole as a torn tail, the frames
/// after it dropped.
fn opened_after_the_hole(dir: &Path, sync: SyncPolicy) -> Journal {
    refused(dir, sync, &FaultPlan::new());
    let plan = rebooted();
    let (j, report) = Journal::open(dir, options(&plan, sync)).unwrap();
    let segment = dir.join(format!("{:020}.seg", 1));
    let cut = frame_offset(11) as u64;
    let bytes = frame_offset(LAST + 1) as u64 - cut;
    assert_eq!(report.action, Some(RecoveryAction::TruncatedTornTail { path: segment, offset: cut, bytes }));
    j
}

#[test]
fn under_never_a_power_loss_hole_in_the_unsynced_tail_is_cut_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    synced_ten_then_a_tail_with_a_hole(tmp.path(), SyncPolicy::Never, 0, acknowledged_one_by_one);
    let mut j = opened_after_the_hole(tmp.path(), SyncPolicy::Never);
    // Past the lease (1..=64 leased): readers may have been handed any seq
    // up to it, those after the hole included.
    assert_eq!(j.next_seq(), 65);
    assert_eq!(j.append(ts(65), payload(65)).unwrap(), 65);
    j.close().unwrap();
    let (seqs, gaps) = seqs_and_gaps(tmp.path(), 0);
    assert_eq!(seqs, (1..=10).chain([65]).collect::<Vec<_>>());
    assert_eq!(gaps, [(11, 65)]);
}

#[test]
fn under_always_a_power_loss_hole_in_an_unacknowledged_batch_is_cut_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    synced_ten_then_a_tail_with_a_hole(tmp.path(), SyncPolicy::Always, 0, unacknowledged_batch);
    let j = opened_after_the_hole(tmp.path(), SyncPolicy::Always);
    // 11..=LAST were never acknowledged, nor read (a reader serves a dead
    // writer's records only once it synced them, and then no page of them
    // can be lost); writing goes on past the dropped frames all the same,
    // in case their damage only looked like a lost page.
    assert_eq!(j.next_seq(), LAST + 1);
    goes_on_past_the_dropped(j, tmp.path());
}

/// One bad frame (a flipped bit) whose own payload is zeros, in synced
/// records, after a restart: the next frame is readable, so no page was
/// lost, and it is refused as corruption. The zeros of its payload had
/// passed for a lost page, and the records after it, synced and served,
/// were cut.
#[test]
fn after_a_restart_one_bad_frame_holding_zeros_is_still_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, options(&plan, SyncPolicy::Never)).unwrap();
    for seq in 1..=10 {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
    assert_eq!(j.append(ts(11), [0u8; 4096]).unwrap(), 11);
    for seq in 12..=15 {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
    j.sync().unwrap();
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j);
    lose_power(dir, &plan);
    let segment = dir.join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[frame_offset(11) + 100] ^= 1;
    std::fs::write(&segment, bytes).unwrap();
    let plan = rebooted();
    refused(dir, SyncPolicy::Never, &plan);
}

/// Damage that is no lost page (the same frames overwritten with `0xab`,
/// not zeros) after a restart: refused as corruption, as in the same boot.
#[test]
fn after_a_restart_damage_that_is_not_a_lost_page_is_still_refused() {
    let tmp = tempfile::tempdir().unwrap();
    synced_ten_then_a_tail_with_a_hole(tmp.path(), SyncPolicy::Never, 0xab, acknowledged_one_by_one);
    let plan = rebooted();
    refused(tmp.path(), SyncPolicy::Never, &plan);
}

/// The same hole in records the writer acknowledged under `Always` (each
/// synced; its watermark, written back before the power loss, names them
/// all): no power loss takes synced pages, so this is damage, and refused
/// after a restart too, naming what was acknowledged.
#[test]
fn after_a_restart_a_hole_in_acknowledged_records_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, options(&plan, SyncPolicy::Always)).unwrap();
    for seq in 1..=LAST {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
    let watermark = std::fs::read(dir.join(events_journal::WATERMARK_FILE)).unwrap();
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j);
    lose_power(dir, &plan);
    std::fs::write(dir.join(events_journal::WATERMARK_FILE), watermark).unwrap();
    let segment = dir.join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[frame_offset(11)..frame_offset(after_hole())].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    let plan = rebooted();
    match Journal::open(dir, options(&plan, SyncPolicy::Always)) {
        Err(JournalError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, frame_offset(11) as u64);
            assert!(reason.contains(&format!("acknowledged up to seq {LAST}")), "{reason}");
        }
        other => panic!("damage in acknowledged records: {other:?}"),
    }
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "the refusal changed nothing");
}

/// The open that cuts the hole under `Always` is killed right after the
/// cut (its fdatasync done), before it skipped past the dropped frames'
/// seqs. The next open finds a segment that ends cleanly, and still skips
/// past them: the cut held them back in a lease first. It had
/// handed them out again from 11.
#[test]
fn an_open_killed_after_the_cut_still_skips_the_dropped_seqs() {
    let tmp = tempfile::tempdir().unwrap();
    synced_ten_then_a_tail_with_a_hole(tmp.path(), SyncPolicy::Always, 0, unacknowledged_batch);
    let plan = rebooted();
    plan.inject_next(Step::TruncateSync, Fault::CrashAfter);
    assert!(Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).is_err());
    assert!(plan.crashed(), "killed after the cut");
    let plan = rebooted();
    let (j, report) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Always)).unwrap();
    assert_eq!((j.next_seq(), report.skipped.clone()), (LAST + 1, Some(11..=LAST)), "{report:?}");
    goes_on_past_the_dropped(j, tmp.path());
}

/// The lease that holds the dropped seqs back cannot be written (`EIO`):
/// the open is refused before the cut, naming the lease, and the segment
/// is as the power loss left it; the next open cuts it.
#[test]
fn a_cut_whose_lease_cannot_be_written_is_refused_before_anything_changes() {
    let tmp = tempfile::tempdir().unwrap();
    synced_ten_then_a_tail_with_a_hole(tmp.path(), SyncPolicy::Never, 0, acknowledged_one_by_one);
    let segment = tmp.path().join(format!("{:020}.seg", 1));
    let before = std::fs::read(&segment).unwrap();
    let plan = rebooted();
    plan.inject_next(Step::Lease, Fault::Errno(libc::EIO));
    match Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)) {
        Err(JournalError::Io { op, .. }) => assert!(op.contains("lease"), "{op}"),
        other => panic!("refused naming the lease: {other:?}"),
    }
    assert_eq!(std::fs::read(&segment).unwrap(), before, "nothing was cut");
    let plan = rebooted();
    let (j, _) = Journal::open(tmp.path(), options(&plan, SyncPolicy::Never)).unwrap();
    assert_eq!(j.next_seq(), 65);
    j.close().unwrap();
}
