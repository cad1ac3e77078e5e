//! Torn writes: the newest segment cut at every byte offset of its last
//! frame, and at every byte offset of its header. Reopening keeps exactly the
//! complete records, reports what it cut, and continues at the right seq:
//! never reusing a seq, even when the newest segment is empty or its header
//! is torn.

mod support;

use std::fs::OpenOptions;
use std::path::Path;

use events_journal::{Journal, JournalError, JournalOptions, Reader, RecoveryAction, RecoveryMode, verify};
use support::{assert_records, payload, read_all, segments, ts};

fn write(dir: &Path, from: u64, to: u64) {
    let (mut j, _) = Journal::open(dir, JournalOptions::new()).unwrap();
    for seq in from..=to {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
    j.close().unwrap();
}

fn cut(path: &Path, len: u64) {
    OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

#[test]
fn every_cut_inside_the_last_frame_keeps_exactly_the_complete_records() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), 1, 5);
    let seg = segments(src.path()).pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    let last_len = 24 + payload(5).len() as u64;
    let last_start = full.len() as u64 - last_len;
    for len in last_start + 1..full.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(seg.file_name().unwrap());
        std::fs::write(&path, &full).unwrap();
        cut(&path, len);
        let problems = verify(dir.path()).unwrap().problems;
        assert_eq!(problems.len(), 1, "cut at {len}: {problems:?}");
        assert_eq!(problems[0].offset, last_start);

        let (mut j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(
            report.action,
            Some(RecoveryAction::TruncatedTornTail { path: path.clone(), offset: last_start, bytes: len - last_start }),
            "cut at {len}"
        );
        assert_eq!(report.next_seq, 5);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), last_start);
        assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 4);
        assert_eq!(j.append(ts(5), payload(5)).unwrap(), 5);
        j.close().unwrap();
        assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 5);
        assert!(verify(dir.path()).unwrap().is_ok());
    }
}

#[test]
fn every_cut_inside_the_newest_header_continues_at_the_seq_in_its_name() {
    // Two segments: 1..=3 sealed, then an empty newest segment starting at 4.
    let src = tempfile::tempdir().unwrap();
    write(src.path(), 1, 3);
    {
        let (mut j, _) = Journal::open(src.path(), JournalOptions::new()).unwrap();
        j.roll().unwrap();
        j.close().unwrap();
    }
    let segs = segments(src.path());
    assert_eq!(segs.len(), 2);
    let newest = std::fs::read(&segs[1]).unwrap();
    assert_eq!(newest.len(), 64);
    for len in 0..64u64 {
        let dir = tempfile::tempdir().unwrap();
        for s in &segs {
            std::fs::copy(s, dir.path().join(s.file_name().unwrap())).unwrap();
        }
        let path = dir.path().join(segs[1].file_name().unwrap());
        cut(&path, len);
        let epoch = Reader::open(dir.path()).unwrap().epoch().unwrap();
        let (mut j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(report.action, Some(RecoveryAction::RewroteTornHeader { path: path.clone() }), "cut at {len}");
        assert_eq!((report.next_seq, j.epoch()), (4, epoch), "cut at {len}");
        assert_eq!(j.append(ts(4), payload(4)).unwrap(), 4);
        j.close().unwrap();
        assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 4);
        assert!(verify(dir.path()).unwrap().is_ok());
    }
}

#[test]
fn an_empty_newest_segment_never_restarts_numbering() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 10);
    {
        let (mut j, _) =
            Journal::open(dir.path(), JournalOptions::new().retention(events_journal::Retention::segments(1))).unwrap();
        j.roll().unwrap(); // prunes 1..=10: only the empty segment 11 remains
        j.close().unwrap();
    }
    assert_eq!(segments(dir.path()).len(), 1);
    let (j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!((report.first_seq, report.next_seq, j.last_seq()), (11, 11, 10));
    drop(j);
    // The same with the only segment's header torn to nothing.
    cut(&segments(dir.path())[0], 0);
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(j.next_seq(), 11);
}

/// The last acknowledged record cut after a clean close, which synced it:
/// damage, not a torn write. `Strict` refuses it and changes nothing; the
/// salvage modes cut it and never hand its seq out again.
#[test]
fn a_torn_tail_through_acknowledged_records_is_refused_under_strict_and_skipped_otherwise() {
    for mode in [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption, RecoveryMode::SkipCorrupt] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), 1, 3);
        let seg = segments(dir.path()).pop().unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        cut(&seg, len - 1);
        let before = support::snapshot(dir.path());
        let opened = Journal::open(dir.path(), JournalOptions::new().recovery(mode));
        if mode == RecoveryMode::Strict {
            match opened {
                Err(JournalError::Corrupt { path, seq: Some(3), reason, .. }) => {
                    assert_eq!(path, seg);
                    assert!(
                        reason.contains("acknowledged up to seq 3") && reason.contains("closed cleanly"),
                        "{reason}"
                    );
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(support::snapshot(dir.path()), before, "a refused open changes nothing");
            continue;
        }
        let (j, report) = opened.unwrap();
        assert!(matches!(report.action, Some(RecoveryAction::TruncatedTornTail { .. })), "{mode:?}");
        // Seq 3 was acknowledged (the clean close's watermark names it):
        // lost with the tail, and never handed out again.
        assert_eq!((j.next_seq(), report.skipped), (4, Some(3..=3)), "{mode:?}");
    }
}

/// The same after a power loss right after the clean close (by `close`,
/// or by the writer's drop): the `Closed`
/// watermark that names seq 3 is fdatasynced by the close, so the open
/// still holds the damaged tail to it. Only the open's `Recovering` record
/// (of a new journal: no position) had been durable, and the tail was cut
/// under `Strict` with seq 3 handed out again.
#[test]
fn a_clean_closes_watermark_survives_a_power_loss() {
    for close in [true, false] {
        a_clean_end_whose_watermark_survives_a_power_loss(close);
    }
}

/// A writer ended by `close`, or by its drop (the best-effort close,
/// whose `Closed` record was not synced: after a power loss the open cut
/// the damaged tail and handed seq 3 out again, found by audit).
fn a_clean_end_whose_watermark_survives_a_power_loss(close: bool) {
    let dir = tempfile::tempdir().unwrap();
    let plan = events_journal::fault::FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().faults(plan.clone())).unwrap();
    for seq in 1..=3 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    if close {
        j.close().unwrap();
    } else {
        drop(j);
    }
    // The segment, the watermark and the lease as their last fdatasync left
    // them; the reopen after a reboot.
    support::lose_power(dir.path(), &plan);
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    cut(&seg, len - 1);
    let rebooted = events_journal::fault::FaultPlan::new();
    rebooted.reboot(1);
    match Journal::open(dir.path(), JournalOptions::new().recovery(RecoveryMode::Strict).faults(rebooted)) {
        Err(JournalError::Corrupt { seq: Some(3), reason, .. }) => {
            assert!(reason.contains("acknowledged up to seq 3") && reason.contains("closed cleanly"), "{reason}");
        }
        other => panic!("the damaged tail through acknowledged seq 3 (closed: {close}): {other:?}"),
    }
}

/// What a torn write leaves past the acknowledged records (a frame cut
/// short) is cut under `Strict`, as before.
#[test]
fn a_torn_tail_past_the_acknowledged_records_is_cut_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 3);
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut frame = Vec::new();
    events_journal::format::encode_frame(&mut frame, 4, ts(4), &payload(4));
    let file = OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut &file, &frame[..frame.len() - 1]).unwrap();
    let (j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    let cut = RecoveryAction::TruncatedTornTail { path: seg, offset: len, bytes: frame.len() as u64 - 1 };
    assert_eq!((report.action, report.skipped, j.next_seq()), (Some(cut), None, 4));
}

/// After an open skipped the seqs of a lost acknowledged record, its
/// newest segment is empty and retention may remove every older one:
/// `verify` finds a healthy journal, not "records 1..=3 are missing"
/// (the watermark names seq 3 in a segment that holds none).
#[test]
fn a_skip_then_retention_of_everything_before_it_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), 1, 3);
    let seg = segments(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    cut(&seg, len - 1);
    let one =
        JournalOptions::new().retention(events_journal::Retention::segments(1)).recovery(RecoveryMode::SkipCorrupt);
    let (j, report) = Journal::open(dir.path(), one).unwrap();
    assert_eq!((report.skipped, j.next_seq(), segments(dir.path()).len()), (Some(3..=3), 4, 1));
    j.close().unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{report:#?}");
}
