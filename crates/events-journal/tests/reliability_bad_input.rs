//! The rows of the bad-input matrix in `docs/RELIABILITY.md` that other test
//! files do not already cover: a directory where a segment should be,
//! zero-length and truncated headers (newest and sealed), a zeroed newest
//! header with records after it, overlapping,
//! out-of-order and gapped segment names (an overlap is refused by the
//! writer in every recovery mode and by the reader, naming both files),
//! and a frame claiming a 4 GiB payload. Each is either handled (ignored, rewritten, cut) or a typed
//! error naming the file; a refused open changes nothing on disk, and no
//! record that was readable before is damaged.

mod support;

use std::path::{Path, PathBuf};

use events_journal::format::{HEADER_LEN, SegmentHeader, encode_frame};
use events_journal::{Journal, JournalError, JournalOptions, ReadError, Reader, RecoveryAction, RecoveryMode, verify};
use support::{assert_records, payload, read_all, snapshot, ts};

const EPOCH: u64 = 0x5eed;

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// Writes a segment named `name` whose header says `first` and holding frames for `seqs`.
fn write_segment(dir: &Path, name: u64, first: u64, seqs: impl IntoIterator<Item = u64>) -> PathBuf {
    let mut buf = SegmentHeader { epoch: EPOCH, first_seq: first, created_at: 1, codec_tag: 0 }.encode().to_vec();
    for s in seqs {
        encode_frame(&mut buf, s, ts(s), &payload(s));
    }
    let path = seg_path(dir, name);
    std::fs::write(&path, buf).unwrap();
    path
}

fn opts() -> JournalOptions {
    JournalOptions::new()
}

fn refused(dir: &Path) -> JournalError {
    let before = snapshot(dir);
    let err = Journal::open(dir, opts()).unwrap_err();
    assert_eq!(snapshot(dir), before, "a refused open changed the directory");
    err
}

#[test]
fn a_directory_named_like_a_segment_is_ignored_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_segment(tmp.path(), 1, 1, 1..=3);
    let impostor = seg_path(tmp.path(), 4);
    std::fs::create_dir(&impostor).unwrap();
    let (mut j, report) = Journal::open(tmp.path(), opts()).unwrap();
    assert_eq!(report.ignored, std::slice::from_ref(&impostor));
    assert_eq!(j.append(ts(4), payload(4)).unwrap(), 4);
    j.close().unwrap();
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 4);
    assert!(impostor.is_dir(), "the stranger is left untouched");
}

/// A directory where a roll must create its segment: the roll fails with
/// the I/O error naming that path and the writer is poisoned (no record
/// lands anywhere else); once the entry is removed the next open rolls
/// there and every record is read back.
#[test]
fn a_directory_where_a_roll_creates_its_segment_fails_the_roll_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    write_segment(tmp.path(), 1, 1, 1..=3);
    let impostor = seg_path(tmp.path(), 4);
    std::fs::create_dir(&impostor).unwrap();
    let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
    match j.roll() {
        Err(JournalError::Io { op: "create segment", path, .. }) => assert_eq!(path, impostor),
        other => panic!("expected the create's error naming {impostor:?}: {other:?}"),
    }
    assert!(j.append(ts(4), payload(4)).is_err(), "the writer is poisoned");
    drop(j);
    assert!(impostor.is_dir(), "the stranger is left untouched");
    let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
    assert!(matches!(j.roll(), Err(JournalError::Io { op: "create segment", .. })), "every open's roll there fails");
    drop(j);

    std::fs::remove_dir(&impostor).unwrap();
    let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
    j.roll().unwrap();
    assert_eq!(j.append(ts(4), payload(4)).unwrap(), 4);
    j.close().unwrap();
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 4);
    assert!(seg_path(tmp.path(), 4).is_file());
}

#[test]
fn a_zero_length_or_truncated_newest_header_is_rewritten_at_its_name() {
    for len in [0usize, 1, 8, 30, HEADER_LEN - 1] {
        let tmp = tempfile::tempdir().unwrap();
        write_segment(tmp.path(), 1, 1, 1..=5);
        let full = SegmentHeader { epoch: EPOCH, first_seq: 6, created_at: 2, codec_tag: 0 }.encode();
        let newest = seg_path(tmp.path(), 6);
        std::fs::write(&newest, &full[..len]).unwrap();
        let (mut j, report) = Journal::open(tmp.path(), opts()).unwrap();
        assert_eq!(report.action, Some(RecoveryAction::RewroteTornHeader { path: newest.clone() }), "len {len}");
        assert_eq!(j.epoch(), EPOCH, "the epoch of the older segments is kept");
        assert_eq!(j.append(ts(6), payload(6)).unwrap(), 6, "len {len}: continues at the seq in the name");
        j.close().unwrap();
        assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 6);
        assert!(verify(tmp.path()).unwrap().is_ok());
    }
}

/// A header is durable before any record follows it, so records behind a
/// zeroed newest header are damage: the open is refused, naming the file
/// at offset 0, and changes nothing (before, the header was "torn", the
/// file truncated to a new header, and seqs 6..=8 handed out again).
#[test]
fn a_zeroed_newest_header_with_records_after_it_is_refused_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write_segment(tmp.path(), 1, 1, 1..=5);
    let newest = write_segment(tmp.path(), 6, 6, 6..=8);
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[..HEADER_LEN].fill(0);
    std::fs::write(&newest, &bytes).unwrap();
    let before = snapshot(tmp.path());
    // `verify` names it, and checks the records after it.
    let report = verify(tmp.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].what.contains("data after it"), "{report:?}");
    assert_eq!((report.problems[0].path.clone(), report.records), (newest.clone(), 8), "{report:?}");
    for mode in [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption, RecoveryMode::SkipCorrupt] {
        match Journal::open(tmp.path(), opts().recovery(mode)) {
            Err(JournalError::Corrupt { path, offset: 0, seq: Some(6), .. }) => assert_eq!(path, newest, "{mode:?}"),
            other => panic!("{mode:?}: {other:?}"),
        }
        assert_eq!(snapshot(tmp.path()), before, "{mode:?}: a refused open changes nothing");
    }
    // The repair mode rebuilds the header and keeps the records.
    Journal::repair(tmp.path(), opts()).unwrap();
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 8);
    let (mut j, _) = Journal::open(tmp.path(), opts()).unwrap();
    assert_eq!(j.append(ts(9), payload(9)).unwrap(), 9, "no seq is handed out twice");
    j.close().unwrap();
}

#[test]
fn a_zero_length_or_truncated_sealed_header_is_a_typed_error() {
    for len in [0usize, 30] {
        let tmp = tempfile::tempdir().unwrap();
        let full = SegmentHeader { epoch: EPOCH, first_seq: 1, created_at: 2, codec_tag: 0 }.encode();
        let sealed = seg_path(tmp.path(), 1);
        std::fs::write(&sealed, &full[..len]).unwrap();
        write_segment(tmp.path(), 6, 6, 6..=8);
        let err = refused(tmp.path());
        assert!(matches!(&err, JournalError::Corrupt { path, .. } if *path == sealed), "len {len}: {err}");
        let report = verify(tmp.path()).unwrap();
        assert!(!report.is_ok(), "verify must flag the sealed segment");
    }
}

#[test]
fn a_header_whose_seq_contradicts_its_name_is_a_typed_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_segment(tmp.path(), 1, 1, 1..=3);
    let liar = write_segment(tmp.path(), 4, 9, 9..=10);
    let err = refused(tmp.path());
    assert!(matches!(&err, JournalError::Corrupt { path, seq: Some(9), .. } if *path == liar), "{err}");
}

/// The overlap error naming `earlier` (holding up to `last`) and `later` (named `first`).
fn is_overlap(e: &JournalError, earlier: &Path, last: u64, later: &Path, first: u64) -> bool {
    matches!(e, JournalError::Overlap { path, last_seq, next, next_first }
        if path == earlier && *last_seq == last && next == later && *next_first == first)
}

#[test]
fn overlapping_segments_are_refused_by_the_writer_and_never_read_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let first = write_segment(tmp.path(), 1, 1, 1..=10);
    // A segment named 5 holding 5..=7 again: overlaps the first one.
    let overlap = write_segment(tmp.path(), 5, 5, 5..=7);
    // The writer would hand out 8..=10 a second time: refused, naming both files.
    let err = refused(tmp.path());
    assert!(is_overlap(&err, &first, 10, &overlap, 5), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("00000000000000000001.seg") && msg.contains("00000000000000000005.seg"), "{msg}");
    // Every other mode refuses too: no salvage picks one copy silently.
    for mode in [RecoveryMode::TruncateAtCorruption, RecoveryMode::SkipCorrupt, RecoveryMode::Repair] {
        let before = snapshot(tmp.path());
        let err = Journal::open(tmp.path(), opts().recovery(mode)).unwrap_err();
        assert!(is_overlap(&err, &first, 10, &overlap, 5), "{mode:?}: {err}");
        assert_eq!(snapshot(tmp.path()), before);
    }
    // The reader serves the first copy up to the overlap, then the error; never the second copy.
    let reader = Reader::open(tmp.path()).unwrap();
    let items: Vec<_> = reader.read_since(0).unwrap().collect();
    let seqs: Vec<u64> = items.iter().filter_map(|r| r.as_ref().ok().map(|r| r.seq())).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    assert!(matches!(items.last(), Some(Err(e)) if is_overlap(e, &first, 10, &overlap, 5)), "{items:?}");
    // A cursor whose next record lies in the overlapping range, or just after it: a typed error.
    for cursor in 4..=10 {
        match reader.read_since(cursor) {
            Err(ReadError::Journal(e)) => assert!(is_overlap(&e, &first, 10, &overlap, 5), "cursor {cursor}: {e}"),
            Ok(records) => panic!("cursor {cursor}: served {:?}", records.collect::<Vec<_>>()),
            Err(e) => panic!("cursor {cursor}: {e}"),
        }
    }
    let report = verify(tmp.path()).unwrap();
    assert!(report.problems.iter().any(|p| p.path == overlap && p.what.contains("overlaps")), "{report:?}");
}

#[test]
fn an_overlap_between_older_segments_is_refused_too() {
    let tmp = tempfile::tempdir().unwrap();
    let first = write_segment(tmp.path(), 1, 1, 1..=6);
    let second = write_segment(tmp.path(), 4, 4, 4..=9);
    write_segment(tmp.path(), 10, 10, 10..=12);
    let err = refused(tmp.path());
    assert!(is_overlap(&err, &first, 6, &second, 4), "{err}");
    let reader = Reader::open(tmp.path()).unwrap();
    // Reading from the newest segment does not pass the overlap and works.
    assert_records(&read_all(&reader, 9), 10, 12);
    assert!(matches!(reader.read_since(5), Err(ReadError::Journal(e)) if is_overlap(&e, &first, 6, &second, 4)));
}

#[test]
fn a_gap_between_segment_names_is_an_explicit_gap() {
    let tmp = tempfile::tempdir().unwrap();
    write_segment(tmp.path(), 1, 1, 1..=3);
    write_segment(tmp.path(), 7, 7, 7..=8);
    let reader = Reader::open(tmp.path()).unwrap();
    let items: Vec<_> = reader.read_since(0).unwrap().collect();
    assert!(items.iter().any(|r| matches!(r, Err(JournalError::Gap { expected: 4, found: 7, .. }))), "{items:?}");
    let seqs: Vec<u64> = items.iter().filter_map(|r| r.as_ref().ok().map(|r| r.seq())).collect();
    assert_eq!(seqs, [1, 2, 3, 7, 8]);
    let report = verify(tmp.path()).unwrap();
    assert!(report.problems.iter().any(|p| p.what.starts_with("records 4..=6 are missing")), "{report:#?}");
}

/// A frame header claiming `u32::MAX` payload bytes.
fn huge_frame(seq: u64) -> Vec<u8> {
    let mut f = vec![0u8; 24];
    f[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    f[8..16].copy_from_slice(&seq.to_le_bytes());
    f
}

#[test]
fn a_4_gib_length_at_the_tail_is_cut_as_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let seg = write_segment(tmp.path(), 1, 1, 1..=3);
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&huge_frame(4));
    bytes.extend_from_slice(&[0xab; 100]);
    std::fs::write(&seg, bytes).unwrap();
    let (j, report) = Journal::open(tmp.path(), opts()).unwrap();
    assert!(
        matches!(&report.action, Some(RecoveryAction::TruncatedTornTail { offset, .. }) if *offset == len),
        "{report:?}"
    );
    assert_eq!(j.next_seq(), 4);
    j.close().unwrap();
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, 3);
}

#[test]
fn a_4_gib_length_followed_by_valid_frames_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    let seg = write_segment(tmp.path(), 1, 1, 1..=3);
    let at = std::fs::metadata(&seg).unwrap().len();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&huge_frame(4));
    for s in 4..=6 {
        encode_frame(&mut bytes, s, ts(s), &payload(s));
    }
    std::fs::write(&seg, bytes).unwrap();
    let err = refused(tmp.path());
    assert!(matches!(&err, JournalError::Corrupt { offset, .. } if *offset == at), "{err}");
}

#[test]
fn a_4_gib_length_in_a_sealed_segment_is_a_reader_error_after_the_good_records() {
    let tmp = tempfile::tempdir().unwrap();
    let sealed = write_segment(tmp.path(), 1, 1, 1..=3);
    let at = std::fs::metadata(&sealed).unwrap().len();
    let mut bytes = std::fs::read(&sealed).unwrap();
    bytes.extend_from_slice(&huge_frame(4));
    // Valid frames follow the damage: corruption in the middle, not a torn tail.
    for s in 4..=5 {
        encode_frame(&mut bytes, s, ts(s), &payload(s));
    }
    std::fs::write(&sealed, bytes).unwrap();
    write_segment(tmp.path(), 6, 6, 6..=7);
    let reader = Reader::open(tmp.path()).unwrap();
    let items: Vec<_> = reader.read_since(0).unwrap().collect();
    let good: Vec<u64> = items.iter().map_while(|r| r.as_ref().ok().map(|r| r.seq())).collect();
    assert_eq!(good, [1, 2, 3]);
    assert!(
        matches!(&items[3], Err(JournalError::Corrupt { path, offset, .. }) if *path == sealed && *offset == at),
        "{:?}",
        items[3]
    );
    let report = verify(tmp.path()).unwrap();
    assert!(report.problems.iter().any(|p| p.path == sealed), "{:?}", report.problems);
}

#[test]
fn a_4_gib_length_at_the_tail_of_a_sealed_segment_is_a_gap_then_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let sealed = write_segment(tmp.path(), 1, 1, 1..=3);
    let at = std::fs::metadata(&sealed).unwrap().len();
    let mut bytes = std::fs::read(&sealed).unwrap();
    bytes.extend_from_slice(&huge_frame(4));
    std::fs::write(&sealed, bytes).unwrap();
    write_segment(tmp.path(), 5, 5, 5..=6);
    // Nothing valid follows: the torn tail a power loss leaves. Readers end the
    // segment there, with one explicit gap, exactly as recovery will cut it.
    let items: Vec<_> = Reader::open(tmp.path()).unwrap().read_since(0).unwrap().collect();
    let seqs: Vec<Option<u64>> = items.iter().map(|r| r.as_ref().ok().map(|r| r.seq())).collect();
    assert_eq!(seqs, [Some(1), Some(2), Some(3), None, Some(5), Some(6)]);
    assert!(matches!(&items[3], Err(JournalError::Gap { expected: 4, found: 5, .. })), "{:?}", items[3]);
    let (j, report) = Journal::open(tmp.path(), opts()).unwrap();
    assert!(
        matches!(&report.sealed[..], [RecoveryAction::TruncatedTornTail { path, offset, .. }] if *path == sealed && *offset == at),
        "{report:?}"
    );
    assert_eq!(j.next_seq(), 7);
    drop(j);
    assert_eq!(std::fs::metadata(&sealed).unwrap().len(), at);
    let problems = verify(tmp.path()).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].what, "records 4..=4 are missing before this segment");
}
