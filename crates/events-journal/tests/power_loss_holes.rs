//! A power loss may persist a writer's unsynced pages in any order: a later
//! one without an earlier one leaves zeros, then valid frames, at the end
//! of the newest segment. After a restart of the machine that is what the
//! crash left, not damage, and `Strict` opens the journal: it cuts there
//! (the frames after the hole go, their seqs are never handed out again)
//! as `TruncateAtCorruption` does. In the same boot (a process crash: the
//! page cache keeps every write whole) it is damage and still refused.
//!
//! The power loss is simulated as in `power_loss_lease.rs` (a crashing
//! fault, then the segment cut back to what its last `fdatasync` covered,
//! the watermark and the lease put back as their last `fdatasync` left
//! them), then the lost tail is written back with its first frames zeroed.

mod support;

use std::path::Path;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::format::{HEADER_LEN, encode_frame};
use events_journal::{Journal, JournalError, JournalOptions, Reader, RecoveryAction, Retention, SyncPolicy};
use support::{lose_power, payload, ts};

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

/// Every record a reader hands out from the start, payloads checked, and
/// each gap as `(expected, found)`.
fn read_all(dir: &Path) -> (Vec<u64>, Vec<(u64, u64)>) {
    let (mut seqs, mut gaps) = (Vec::new(), Vec::new());
    for item in Reader::open(dir).unwrap().read_since(0).unwrap() {
        match item {
            Ok(r) => {
                assert_eq!(r.payload(), payload(r.seq()).as_slice(), "payload of seq {}", r.seq());
                seqs.push(r.seq());
            }
            Err(JournalError::Gap { expected, found, .. }) => gaps.push((expected, found)),
            Err(e) => panic!("{e}"),
        }
    }
    (seqs, gaps)
}

/// Seqs 1..=10 synced, 11..=20 written and never synced (`write`: how,
/// under `sync`), then the process dies and the power goes: the disk keeps
/// 1..=10, and of the rest only 14..=20 (the pages of 11..=13 never
/// reached it: zeros).
fn synced_ten_then_a_tail_with_a_hole(dir: &Path, sync: SyncPolicy, write: impl FnOnce(&mut Journal, &FaultPlan)) {
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
    assert!(written.len() >= frame_offset(21), "11..=20 were written");
    lose_power(dir, &plan);
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), frame_offset(11) as u64, "only 1..=10 were synced");
    let mut left = written[..frame_offset(21)].to_vec();
    left[frame_offset(11)..frame_offset(14)].fill(0);
    std::fs::write(&segment, left).unwrap();
}

/// The hole, then what a `Strict` open makes of it: refused in the same
/// boot; after a restart, cut at the hole, 14..=20 dropped and never
/// handed out again (the new writer's first seq is above them).
fn opened_after_the_hole(dir: &Path, sync: SyncPolicy) -> Journal {
    let same_boot = Journal::open(dir, options(&FaultPlan::new(), sync));
    match same_boot {
        Err(JournalError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, frame_offset(11) as u64);
            assert!(reason.contains("valid frames follow"), "{reason}");
        }
        other => panic!("a hole in the same boot is damage: {other:?}"),
    }
    let plan = FaultPlan::new();
    plan.reboot(1);
    let (j, report) = Journal::open(dir, options(&plan, sync)).unwrap();
    match &report.action {
        Some(RecoveryAction::Salvaged { offset, dropped, reason, .. }) => {
            assert_eq!(*offset, frame_offset(11) as u64);
            assert_eq!(dropped, &[14..=20]);
            assert!(reason.contains("power loss"), "{reason}");
        }
        other => panic!("the hole is cut: {other:?}"),
    }
    assert!(j.next_seq() > 20, "no seq of the dropped frames again: {}", j.next_seq());
    j
}

#[test]
fn under_never_a_power_loss_hole_in_the_unsynced_tail_is_cut_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    synced_ten_then_a_tail_with_a_hole(tmp.path(), SyncPolicy::Never, |j, _| {
        for seq in 11..=20 {
            assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
        }
    });
    let mut j = opened_after_the_hole(tmp.path(), SyncPolicy::Never);
    // Past the lease (1..=64 leased): readers may have been handed any seq up to it.
    assert_eq!(j.next_seq(), 65);
    assert_eq!(j.append(ts(65), payload(65)).unwrap(), 65);
    j.close().unwrap();
    let (seqs, gaps) = read_all(tmp.path());
    assert_eq!(seqs, (1..=10).chain([65]).collect::<Vec<_>>());
    // The cut reserves the seqs of the frames after the hole (an empty
    // segment named 21), and the lease's skip goes on from there.
    assert_eq!(gaps, [(11, 21), (21, 65)]);
}

#[test]
fn under_always_a_power_loss_hole_in_an_unacknowledged_batch_is_cut_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    synced_ten_then_a_tail_with_a_hole(tmp.path(), SyncPolicy::Always, |j, plan| {
        // Written, and the process dies before its fdatasync: never acknowledged.
        plan.inject_next(Step::AppendSync, Fault::CrashBefore);
        let batch: Vec<(u64, Vec<u8>)> = (11..=20).map(|seq| (ts(seq), payload(seq))).collect();
        assert!(j.append_batch(batch.iter().map(|(ts, p)| (*ts, p.as_slice()))).is_err());
    });
    let mut j = opened_after_the_hole(tmp.path(), SyncPolicy::Always);
    // 14..=20 may have been read from the dead writer's copy: writing goes
    // on after them.
    assert_eq!(j.next_seq(), 21);
    assert_eq!(j.append(ts(21), payload(21)).unwrap(), 21);
    j.close().unwrap();
    let (seqs, gaps) = read_all(tmp.path());
    assert_eq!(seqs, (1..=10).chain([21]).collect::<Vec<_>>());
    assert_eq!(gaps, [(11, 21)]);
}
