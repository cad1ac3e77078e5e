//! The space a writer under `SyncPolicy::Always` reserves ahead of its
//! appends (written zeros, so that each acknowledging `fdatasync` finds the
//! file's size unchanged and its blocks written): the active segment's file runs past its last
//! frame while the writer runs, and the zeros there are never read as
//! records, by this process's readers or by `verify`; a roll gives the space
//! back before it seals the segment and a clean close before it syncs, so
//! every sealed or closed segment ends with its last frame; a reservation
//! that fails never fails an append, and a failed give-back fails the roll
//! or the close without losing an acknowledged record. Other policies
//! reserve nothing.

mod support;

use std::path::Path;
use std::time::Duration;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::format::{FrameCheck, HEADER_LEN, SegmentHeader, check_frame, encode_frame};
use events_journal::{Journal, JournalError, JournalOptions, Reader, Retention, SyncPolicy, verify};
use support::{assert_records, payload, read_all, reserves, segments, ts};

const SEGMENT: u64 = 16 << 10;

fn options(sync: SyncPolicy) -> JournalOptions {
    JournalOptions::new().sync(sync).segment_bytes(SEGMENT).retention(Retention::unlimited())
}

fn append_n(j: &mut Journal, n: u64) {
    for _ in 0..n {
        let seq = j.next_seq();
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

/// Where the valid frames of a segment file end.
fn frames_end(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let mut off = HEADER_LEN;
    while let FrameCheck::Valid { payload, .. } = check_frame(&bytes, off) {
        off = payload.end;
    }
    off
}

fn file_len(path: &Path) -> usize {
    usize::try_from(std::fs::metadata(path).unwrap().len()).unwrap()
}

/// A journal directory where the journal reserves space (`None` off
/// Linux: nothing is reserved there to test).
fn reserving_dir() -> Option<tempfile::TempDir> {
    let tmp = tempfile::tempdir().unwrap();
    reserves().then_some(tmp)
}

/// Each segment as (file length, end of its frames).
fn lengths(dir: &Path) -> Vec<(usize, usize)> {
    segments(dir).iter().map(|p| (file_len(p), frames_end(p))).collect()
}

#[test]
fn under_always_the_active_segment_is_reserved_ahead_and_each_sealed_one_ends_with_its_last_frame() {
    let Some(tmp) = reserving_dir() else { return };
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(SyncPolicy::Always).faults(plan.clone())).unwrap();
    append_n(&mut j, 3);
    let (len, end) = *lengths(tmp.path()).last().unwrap();
    assert_eq!(len, SEGMENT as usize, "the active segment is reserved up to the segment size");
    assert!(end < len);
    // Neither this process's readers nor verify take the zeros for records.
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 3);
    let live = verify(tmp.path()).unwrap();
    assert!(live.is_ok(), "{:?}", live.problems);
    assert_eq!((live.records, live.reserved), (3, 0), "a live writer's zeros are past its watermark: not read");
    // One reservation covers many appends: each one's fdatasync finds the size unchanged.
    assert_eq!(plan.count(Step::Reserve), 1);

    append_n(&mut j, 400); // several rolls
    let all = lengths(tmp.path());
    assert!(all.len() > 3, "{all:?}");
    for (i, &(len, end)) in all[..all.len() - 1].iter().enumerate() {
        assert_eq!(len, end, "sealed segment {i} ends with its last frame");
    }
    // One give-back per roll, but for a segment its frames filled exactly.
    let short = all[..all.len() - 1].iter().filter(|&&(_, end)| end < SEGMENT as usize).count();
    assert_eq!(plan.count(Step::Trim), short as u64, "{all:?}");
    j.close().unwrap();
    for (i, &(len, end)) in lengths(tmp.path()).iter().enumerate() {
        assert_eq!(len, end, "after a clean close, segment {i} ends with its last frame");
    }
    let closed = verify(tmp.path()).unwrap();
    assert!(closed.is_ok() && closed.reserved == 0, "{closed:?}");
    let (j, report) = Journal::open(tmp.path(), options(SyncPolicy::Always)).unwrap();
    assert!(report.action.is_none(), "a clean close leaves nothing to cut: {report:?}");
    assert_eq!(j.next_seq(), 404);
}

#[test]
fn a_reservation_grows_in_steps_of_one_mebibyte_up_to_the_segment_size() {
    let Some(tmp) = reserving_dir() else { return };
    let plan = FaultPlan::new();
    let opts = options(SyncPolicy::Always).segment_bytes(3 << 20).faults(plan.clone());
    let (mut j, _) = Journal::open(tmp.path(), opts).unwrap();
    let record = vec![7u8; 1000];
    let batch = |j: &mut Journal, n: usize| {
        let seqs = j.append_batch((0..n).map(|i| (i as u64, record.as_slice()))).unwrap();
        assert_eq!(seqs.count(), n);
    };
    batch(&mut j, 1);
    // Steps start after the header.
    assert_eq!(file_len(&segments(tmp.path())[0]), HEADER_LEN + (1 << 20));
    batch(&mut j, 1100); // past the first mebibyte
    assert_eq!(plan.count(Step::Reserve), 2);
    assert_eq!(file_len(&segments(tmp.path())[0]), HEADER_LEN + (2 << 20));
    batch(&mut j, 1100); // past the second: the third step ends at the segment size
    assert_eq!(file_len(&segments(tmp.path())[0]), 3 << 20);
    let live = verify(tmp.path()).unwrap();
    assert!(live.is_ok() && live.records == 2201, "{live:?}");
    j.close().unwrap();
    assert_eq!(file_len(&segments(tmp.path())[0]), frames_end(&segments(tmp.path())[0]));
}

#[test]
fn other_policies_reserve_nothing() {
    for sync in [SyncPolicy::Never, SyncPolicy::Interval(Duration::from_secs(3600))] {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let (mut j, _) = Journal::open(tmp.path(), options(sync).faults(plan.clone())).unwrap();
        append_n(&mut j, 200);
        for (len, end) in lengths(tmp.path()) {
            assert_eq!(len, end, "{sync:?}");
        }
        assert_eq!((plan.count(Step::Reserve), plan.count(Step::Trim)), (0, 0), "{sync:?}");
        j.close().unwrap();
    }
}

#[test]
fn a_reservation_that_fails_never_fails_an_append() {
    for errno in [libc::EIO, libc::ENOSPC, libc::EOPNOTSUPP] {
        let Some(tmp) = reserving_dir() else { return };
        let plan = FaultPlan::new();
        plan.inject(Step::Reserve, 0, Fault::Errno(errno));
        let (mut j, _) = Journal::open(tmp.path(), options(SyncPolicy::Always).faults(plan.clone())).unwrap();
        append_n(&mut j, 1);
        let (len, end) = lengths(tmp.path())[0];
        assert_eq!(len, end, "errno {errno}: the write grew the file as it would without a reservation");
        append_n(&mut j, 1);
        assert_eq!(plan.count(Step::Reserve), 1, "errno {errno}: not asked again in this segment");
        append_n(&mut j, 201);
        // A file system that reports reserving as unsupported is never
        // asked again; after any other failure the next segment tries again.
        let asked = plan.count(Step::Reserve);
        assert_eq!(asked > 1, errno != libc::EOPNOTSUPP, "errno {errno}: {asked} reservations");
        j.close().unwrap();
        assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 203);
        let report = verify(tmp.path()).unwrap();
        assert!(report.is_ok() && report.reserved == 0, "errno {errno}: {report:?}");
    }
}

#[test]
fn a_failed_give_back_fails_the_roll_or_the_close_and_loses_no_acknowledged_record() {
    for at_close in [false, true] {
        let Some(tmp) = reserving_dir() else { return };
        let plan = FaultPlan::new();
        plan.inject(Step::Trim, 0, Fault::Errno(libc::EIO));
        let (mut j, _) = Journal::open(tmp.path(), options(SyncPolicy::Always).faults(plan.clone())).unwrap();
        append_n(&mut j, 3);
        if at_close {
            let err = j.close().unwrap_err();
            assert!(matches!(err, JournalError::Io { .. }), "{err}");
        } else {
            let err = j.roll().unwrap_err();
            assert!(matches!(err, JournalError::Io { .. }), "{err}");
            let refused = j.append(ts(4), payload(4)).unwrap_err();
            assert!(matches!(refused, JournalError::Failed { .. }), "the writer is poisoned: {refused}");
            drop(j);
        }
        assert_eq!(segments(tmp.path()).len(), 1, "at_close {at_close}: nothing was sealed");
        // The reserved zeros are still there: the open cuts them, and every
        // acknowledged record is kept.
        let (j, report) = Journal::open(tmp.path(), options(SyncPolicy::Always)).unwrap();
        assert!(report.action.is_some(), "at_close {at_close}: {report:?}");
        assert_eq!(j.next_seq(), 4);
        j.close().unwrap();
        assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 3);
        assert!(verify(tmp.path()).unwrap().is_ok(), "at_close {at_close}");
    }
}

/// A segment of `seqs` (helper payloads) after a header, padded with
/// zeros to at least `len` bytes.
fn segment_image(first_seq: u64, seqs: std::ops::RangeInclusive<u64>, len: usize) -> Vec<u8> {
    let mut image = SegmentHeader { epoch: 1, first_seq, created_at: 0, codec_tag: 0 }.encode().to_vec();
    for seq in seqs {
        encode_frame(&mut image, seq, ts(seq), &payload(seq));
    }
    image.resize(image.len().max(len), 0);
    image
}

#[test]
fn a_reader_never_takes_its_copy_of_a_dead_writers_segment_for_the_segment_refilled_since() {
    use std::os::unix::fs::FileExt;
    let tmp = tempfile::tempdir().unwrap();
    let full = segment_image(1, 1..=10, 0);
    let len = full.len();
    // A dead writer's newest segment: three records, then its reserved zeros.
    let path = tmp.path().join("00000000000000000001.seg");
    std::fs::write(&path, segment_image(1, 1..=3, len)).unwrap();
    let reader = Reader::open(tmp.path()).unwrap();
    assert_records(&read_all(&reader, 0), 1, 3); // read from a private copy
    // The next writer fills the same file (same inode, same length) and rolls.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all_at(&full, 0).unwrap();
    let next = SegmentHeader { epoch: 1, first_seq: 11, created_at: 0, codec_tag: 0 }.encode();
    std::fs::write(tmp.path().join("00000000000000000011.seg"), next).unwrap();
    assert_records(&read_all(&reader, 0), 1, 10);
}
