//! Damage to acknowledged records that reads like a torn write: a bad
//! last frame, or a segment that ends before the last acknowledged seq.
//! A torn write can only take what no crash kept: records synced before
//! they were acknowledged (`Always`), everything after a clean close, and
//! everything in the same boot (a process crash keeps the page cache)
//! survive it. Cutting those is damage: `RecoveryMode::Strict` refuses it
//! with `JournalError::Corrupt`, changing nothing; a salvage mode cuts it
//! and the open skips the seqs (one `Gap` for readers).

mod support;

use std::path::Path;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{
    Journal, JournalError, JournalOptions, Reader, RecoveryAction, RecoveryMode, Retention, SyncPolicy,
};
use support::{payload, rebooted, segments, snapshot, ts};

fn options(plan: &FaultPlan, sync: SyncPolicy) -> JournalOptions {
    JournalOptions::new().sync(sync).retention(Retention::unlimited()).faults(plan.clone())
}

/// Options for a reopen: in the same boot, or after reboot `n`.
fn reopen(sync: SyncPolicy, reboot: Option<u8>) -> JournalOptions {
    let plan = FaultPlan::new();
    if let Some(n) = reboot {
        plan.reboot(n);
    }
    options(&plan, sync)
}

/// Appends `seqs`, each acknowledged on return.
fn append(j: &mut Journal, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

/// The process dies: nothing `j` would still write reaches the disk.
fn crash(plan: &FaultPlan, j: Journal) {
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j);
    assert!(plan.crashed());
}

/// Seqs 1..=3 in a sealed segment and 4..=5 in the newest, all
/// acknowledged; then the process dies (a crash, not a close).
fn written_then_crashed(dir: &Path, sync: SyncPolicy) {
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, options(&plan, sync)).unwrap();
    append(&mut j, 1..=3);
    j.roll().unwrap();
    append(&mut j, 4..=5);
    crash(&plan, j);
}

/// Flips a byte of `path` `back` bytes before its end (inside its last frame).
fn flip(path: &Path, back: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - back as usize;
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// Opens under `Strict` and expects a refusal naming `path` and `seq`,
/// with `why` in its reason and nothing changed on disk.
fn refused(dir: &Path, opts: JournalOptions, path: &Path, seq: u64, why: &str) {
    let before = snapshot(dir);
    match Journal::open(dir, opts) {
        Err(JournalError::Corrupt { path: p, seq: Some(s), reason, .. }) => {
            assert_eq!((p.as_path(), s), (path, seq), "{reason}");
            assert!(reason.contains("so this is damage, not a torn write") && reason.contains(why), "{reason}");
        }
        other => panic!("expected a refusal naming seq {seq}: {other:?}"),
    }
    assert_eq!(snapshot(dir), before, "a refused open changes nothing");
}

/// The seqs a reader yields, each gap as `(expected, found)`.
fn read(dir: &Path) -> (Vec<u64>, Vec<(u64, u64)>) {
    let (mut seqs, mut gaps) = (Vec::new(), Vec::new());
    for item in Reader::open(dir).unwrap().read_since(0).unwrap() {
        match item {
            Ok(r) => seqs.push(r.seq()),
            Err(JournalError::Gap { expected, found, .. }) => gaps.push((expected, found)),
            Err(e) => panic!("{e}"),
        }
    }
    (seqs, gaps)
}

const SAME_BOOT: &str = "the machine has not restarted since";

#[test]
fn in_the_same_boot_a_bad_last_frame_of_either_segment_is_damage_under_every_policy() {
    for sync in [SyncPolicy::Never, SyncPolicy::Always] {
        let dir = tempfile::tempdir().unwrap();
        written_then_crashed(dir.path(), sync);
        let [sealed, newest] = <[_; 2]>::try_from(segments(dir.path())).unwrap();
        flip(&newest, 3);
        refused(dir.path(), reopen(sync, None), &newest, 5, SAME_BOOT);

        // Repaired by a salvage mode: seq 5 is cut and never handed out again.
        let (mut j, report) =
            Journal::open(dir.path(), reopen(sync, None).recovery(RecoveryMode::TruncateAtCorruption)).unwrap();
        assert!(matches!(report.action, Some(RecoveryAction::TruncatedTornTail { .. })), "{sync:?}");
        assert_eq!(report.skipped, Some(5..=5), "{sync:?}");
        assert_eq!(j.append(ts(6), payload(6)).unwrap(), 6);
        drop(j); // a clean close

        // The sealed segment's last frame (seq 3), after that clean close.
        flip(&sealed, 3);
        refused(dir.path(), reopen(sync, None), &sealed, 3, "closed cleanly");
        let (_j, report) = Journal::open(dir.path(), reopen(sync, None).recovery(RecoveryMode::SkipCorrupt)).unwrap();
        assert!(
            matches!(&report.sealed[..], [RecoveryAction::TruncatedTornTail { path, .. }] if *path == sealed),
            "{report:?}"
        );
        assert_eq!(read(dir.path()), (vec![1, 2, 4, 6], vec![(3, 4), (5, 6)]), "{sync:?}");
    }
}

#[test]
fn in_the_same_boot_a_newest_segment_cut_short_of_the_acknowledged_records_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    written_then_crashed(dir.path(), SyncPolicy::Never);
    let newest = segments(dir.path()).pop().unwrap();
    // Cut at the frame boundary before seq 5: the file ends cleanly, one record short.
    let len = std::fs::metadata(&newest).unwrap().len();
    let frame = 24 + payload(5).len() as u64;
    std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(len - frame).unwrap();
    refused(dir.path(), reopen(SyncPolicy::Never, None), &newest, 5, SAME_BOOT);
}

/// Every frame of the newest segment zeroed, its header and length kept:
/// the acknowledged seqs 4..=5 are gone, which is damage (a zeroed last
/// frame alone was refused; with every frame zeroed, the segment passed for
/// an interrupted salvage's empty reservation, and the open skipped 4..=5
/// as one `Gap`). A reservation is the header alone: nothing is written
/// into it before the salvage is finished.
#[test]
fn in_the_same_boot_a_newest_segment_whose_every_frame_was_zeroed_is_damage() {
    for sync in [SyncPolicy::Never, SyncPolicy::Always] {
        let dir = tempfile::tempdir().unwrap();
        written_then_crashed(dir.path(), sync);
        let newest = segments(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&newest).unwrap();
        bytes[events_journal::format::HEADER_LEN..].fill(0);
        std::fs::write(&newest, &bytes).unwrap();
        refused(dir.path(), reopen(sync, None), &newest, 4, SAME_BOOT);

        // A salvage mode cuts them: one `Gap`, and seqs 4..=5 are never handed out again.
        let (mut j, report) =
            Journal::open(dir.path(), reopen(sync, None).recovery(RecoveryMode::TruncateAtCorruption)).unwrap();
        assert_eq!(report.skipped, Some(4..=5), "{sync:?}: {report:?}");
        assert_eq!(j.append(ts(6), payload(6)).unwrap(), 6);
        drop(j);
        assert_eq!(read(dir.path()), (vec![1, 2, 3, 6], vec![(4, 6)]), "{sync:?}");
    }
}

/// The newest segment cut back to its header alone (a file system's
/// damage, an operator's `truncate`) while the watermark names that
/// segment past its header: the acknowledged seqs 4..=5 are gone, which is
/// damage. A header alone had passed for an interrupted salvage's
/// reservation, and the open skipped 4..=5 as one `Gap` (found by audit).
/// A reservation is made while the watermark still names an older segment
/// (`an_interrupted_salvages_empty_reservation_and_bytes_past_a_sealed_segments_last_seq_are_no_damage`).
#[test]
fn in_the_same_boot_a_newest_segment_cut_to_its_header_is_damage() {
    for sync in [SyncPolicy::Never, SyncPolicy::Always] {
        let dir = tempfile::tempdir().unwrap();
        written_then_crashed(dir.path(), sync);
        let newest = segments(dir.path()).pop().unwrap();
        let header = events_journal::format::HEADER_LEN as u64;
        std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(header).unwrap();
        refused(dir.path(), reopen(sync, None), &newest, 4, SAME_BOOT);
    }
}

/// After a reboot, `Never` lost what it never synced: cut, and the lease
/// skips (`power_loss_lease.rs`); `Always` synced every record it
/// acknowledged (and its open synced what an earlier writer may have left
/// unsynced), so a bad last frame of any of its segments is damage.
#[test]
fn after_a_reboot_only_what_was_synced_before_its_acknowledgement_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    written_then_crashed(dir.path(), SyncPolicy::Never);
    let newest = segments(dir.path()).pop().unwrap();
    flip(&newest, 3);
    let (_j, report) = Journal::open(dir.path(), reopen(SyncPolicy::Never, Some(1))).unwrap();
    assert!(matches!(report.action, Some(RecoveryAction::TruncatedTornTail { .. })));
    assert!(report.skipped.as_ref().is_some_and(|s| *s.start() == 5), "{report:?}");

    let dir = tempfile::tempdir().unwrap();
    written_then_crashed(dir.path(), SyncPolicy::Always);
    let [sealed, newest] = <[_; 2]>::try_from(segments(dir.path())).unwrap();
    let always = "synced every record before acknowledging it";
    flip(&newest, 3);
    refused(dir.path(), reopen(SyncPolicy::Always, Some(1)), &newest, 5, always);
    flip(&newest, 3); // undone
    flip(&sealed, 3);
    refused(dir.path(), reopen(SyncPolicy::Always, Some(1)), &sealed, 3, always);
}

/// A writer under `Never` killed before its sealer synced the segment it
/// had just sealed; the next writer, in the same boot, opens and closes
/// cleanly; then the power goes. That open synced the sealed segment the
/// sealer had not reached, before its lease vouched for it, so after the
/// reboot every record is there (and a `Strict` open, which trusts the
/// clean close, has nothing to refuse). Without it the power loss took
/// the segment's records, behind a clean close that vouched for them.
#[test]
fn the_open_after_an_unclean_end_syncs_the_sealed_segments_its_sealer_had_not_reached() {
    let dir = tempfile::tempdir().unwrap();
    let first = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&first, SyncPolicy::Never)).unwrap();
    append(&mut j, 1..=3);
    // The sealer's fdatasync of the segment the roll seals: the process dies there.
    first.inject(Step::RollSync, first.count(Step::RollSync), Fault::CrashBefore);
    let _ = j.roll(); // its end may fail already: the process is dying
    drop(j);
    assert!(first.crashed());

    let second = FaultPlan::new();
    let (j, _) = Journal::open(dir.path(), options(&second, SyncPolicy::Never)).unwrap();
    assert_eq!(second.count(Step::SealedSync), 1, "the one sealed segment");
    j.close().unwrap();
    support::lose_power_after(dir.path(), &[&first, &second]);

    let (j, report) = Journal::open(dir.path(), reopen(SyncPolicy::Never, Some(1))).unwrap();
    assert_eq!((report.skipped.clone(), report.next_seq), (None, 4), "{report:?}");
    assert_eq!(read(dir.path()), (vec![1, 2, 3], vec![]));
    j.close().unwrap();

    // After a clean close there is nothing to sync.
    let third = FaultPlan::new();
    drop(Journal::open(dir.path(), options(&third, SyncPolicy::Never)).unwrap());
    assert_eq!(third.count(Step::SealedSync), 0);
}

/// What an interrupted `TruncateAtCorruption` leaves when it dropped the
/// last acknowledged record: the damaged segment rebuilt without it, and
/// an empty segment reserved at the seq it dropped (named 20, at or below
/// the watermark), then a crash before the open skipped past it. A
/// `Strict` open finishes it (skips seq 20), as every mode finishes an
/// interrupted salvage; it had refused the empty segment as "ending where
/// seq 20 should be". A bad tail of a sealed segment after its last seq
/// (nothing lost: the next segment starts there) is cut, not refused.
#[test]
fn an_interrupted_salvages_empty_reservation_and_bytes_past_a_sealed_segments_last_seq_are_no_damage() {
    use events_journal::format::SegmentHeader;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&plan, SyncPolicy::Never)).unwrap();
    append(&mut j, 1..=20);
    let epoch = j.epoch();
    crash(&plan, j);
    let only = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&only).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&only).unwrap().set_len(len - 24 - payload(20).len() as u64).unwrap();
    let reserved = dir.path().join("00000000000000000020.seg");
    std::fs::write(&reserved, SegmentHeader { epoch, first_seq: 20, created_at: 1, codec_tag: 0 }.encode()).unwrap();
    let (j, report) = Journal::open(dir.path(), reopen(SyncPolicy::Never, None)).unwrap();
    assert_eq!((report.skipped.clone(), j.next_seq()), (Some(20..=20), 21), "{report:?}");
    j.close().unwrap();

    // Junk after the sealed segment's last record (seq 19; the next segment is named 20).
    let mut bytes = std::fs::read(&only).unwrap();
    bytes.extend_from_slice(&[0xab; 10]);
    std::fs::write(&only, bytes).unwrap();
    let (_j, report) = Journal::open(dir.path(), reopen(SyncPolicy::Never, None)).unwrap();
    assert!(
        matches!(&report.sealed[..], [RecoveryAction::TruncatedTornTail { path, bytes: 10, .. }] if *path == only),
        "{report:?}"
    );
}

/// What a `TruncateAtCorruption` interrupted after it reserved seqs
/// 11.. and before it rebuilt the damaged segment leaves: a bad frame in
/// the middle of segment 1 (seq 5 of 1..=10) and the reservation (its
/// header alone). A `Strict` open takes the reservation as the newest
/// segment and cuts nothing: readers stop at the bad frame with an error
/// naming the file. The next open in a salvage mode, while the newest
/// segment is still empty, finishes the salvage: seqs 5..=10 become one
/// `Gap`, and none is handed out again.
#[test]
fn a_salvage_interrupted_before_its_rebuild_is_left_to_readers_under_strict_and_finished_by_a_salvage_mode() {
    use events_journal::format::SegmentHeader;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&plan, SyncPolicy::Never)).unwrap();
    append(&mut j, 1..=10);
    let epoch = j.epoch();
    crash(&plan, j);
    let damaged = segments(dir.path()).pop().unwrap();
    // Inside seq 5's frame: 10 bytes into it.
    let at: usize = events_journal::format::HEADER_LEN + (1..=4).map(|n| 24 + payload(n).len()).sum::<usize>() + 10;
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[at] ^= 0x40;
    std::fs::write(&damaged, bytes).unwrap();
    let reserved = dir.path().join("00000000000000000011.seg");
    std::fs::write(&reserved, SegmentHeader { epoch, first_seq: 11, created_at: 1, codec_tag: 0 }.encode()).unwrap();

    let (j, report) = Journal::open(dir.path(), reopen(SyncPolicy::Never, None)).unwrap();
    assert_eq!((report.skipped.clone(), j.next_seq()), (None, 11), "{report:?}");
    j.close().unwrap();
    let mut read = Reader::open(dir.path()).unwrap().read_since(0).unwrap();
    let seqs: Vec<u64> = read.by_ref().take(4).map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    match read.next() {
        Some(Err(JournalError::Corrupt { path, .. })) => assert_eq!(path, damaged),
        other => panic!("readers stop at the bad frame: {other:?}"),
    }

    let (mut j, report) =
        Journal::open(dir.path(), reopen(SyncPolicy::Never, None).recovery(RecoveryMode::TruncateAtCorruption))
            .unwrap();
    assert!(
        matches!(&report.sealed[..], [RecoveryAction::Repaired { path, missing, .. }] if *path == damaged && *missing == [5..=10]),
        "{report:?}"
    );
    assert_eq!(j.append(ts(11), payload(11)).unwrap(), 11);
    drop(j);
    assert_eq!(self::read(dir.path()), (vec![1, 2, 3, 4, 11], vec![(5, 11)]));
}

/// Rewrites `dir`'s `LEASE` as a build before 2026-12-06 wrote it: without
/// the flag that says its open made every sealed segment durable.
fn as_an_older_builds_lease(dir: &Path) {
    let path = dir.join(events_journal::LEASE_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    for slot in [0, 512] {
        if bytes.len() >= slot + 64 && bytes[slot..slot + 8] == *b"EVJLEASE" {
            bytes[slot + 14] = 0;
            let crc = crc32fast::hash(&bytes[slot..slot + 60]);
            bytes[slot + 60..slot + 64].copy_from_slice(&crc.to_le_bytes());
        }
    }
    std::fs::write(&path, bytes).unwrap();
}

/// A lease written by an older build, which did not sync the sealed
/// segments an earlier killed writer left (its sealer's backlog) before
/// it closed cleanly: after a reboot it vouches for nothing (a bad last
/// frame of a sealed segment is cut, as a power loss may have taken it),
/// and the next open syncs every sealed segment, after which its own
/// clean close does vouch for them. In the same boot the page cache still
/// vouches.
#[test]
fn an_older_builds_clean_close_vouches_for_nothing_after_a_reboot_and_the_next_open_syncs_every_sealed_segment() {
    let dir = tempfile::tempdir().unwrap();
    written_then_crashed(dir.path(), SyncPolicy::Never);
    drop(Journal::open(dir.path(), reopen(SyncPolicy::Never, None)).unwrap()); // a clean close
    as_an_older_builds_lease(dir.path());
    let [sealed, _] = <[_; 2]>::try_from(segments(dir.path())).unwrap();
    flip(&sealed, 3);
    refused(dir.path(), reopen(SyncPolicy::Never, None), &sealed, 3, SAME_BOOT);
    let plan = rebooted();
    let (j, report) = Journal::open(dir.path(), options(&plan, SyncPolicy::Never)).unwrap();
    assert!(
        matches!(&report.sealed[..], [RecoveryAction::TruncatedTornTail { path, .. }] if *path == sealed),
        "{report:?}"
    );
    assert_eq!(plan.count(Step::SealedSync), 1, "every sealed segment");
    j.close().unwrap();
    // This build's clean close vouches for them, after a reboot too (seq 2
    // is the segment's last record now).
    flip(&sealed, 3);
    refused(dir.path(), reopen(SyncPolicy::Never, Some(2)), &sealed, 2, "closed cleanly");
}
