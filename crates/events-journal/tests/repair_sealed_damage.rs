//! The operator's remedy for damage in a sealed segment, which no open
//! mode touched before: one corrupt frame in a middle segment ends every
//! reader there, and a bad header CRC in any old segment refuses every open.
//! `Journal::repair` (`RecoveryMode::Repair`) turns each damaged range into
//! one explicit gap and keeps every valid record readable: a reader from
//! the start gets everything before, one `Gap`, everything after. `verify`
//! names the file once per problem and prints inclusive ranges. (A crash at
//! every step of a repair is in `reliability_fault_model.rs`.)

mod support;

use std::path::{Path, PathBuf};

use events_journal::{Journal, JournalError, JournalOptions, Reader, RecoveryAction, RecoveryMode, Retention, verify};
use support::{payload, segments, snapshot, ts};

fn opts() -> JournalOptions {
    JournalOptions::new().segment_bytes(2048).retention(Retention::unlimited())
}

/// A closed journal of at least three segments; returns the middle one, its
/// first and last seq, and the last seq of the journal.
fn three_segments(dir: &Path) -> (PathBuf, u64, u64, u64) {
    let (mut j, _) = Journal::open(dir, opts()).unwrap();
    while j.stats().rolls < 2 {
        let seq = j.next_seq();
        j.append(ts(seq), payload(seq)).unwrap();
    }
    let seq = j.next_seq();
    j.append(ts(seq), payload(seq)).unwrap();
    let last = j.last_seq();
    j.close().unwrap();
    let segs = segments(dir);
    let first_of = |p: &Path| p.file_stem().unwrap().to_str().unwrap().parse::<u64>().unwrap();
    let (middle, next) = (segs[1].clone(), first_of(&segs[2]));
    (middle.clone(), first_of(&middle), next - 1, last)
}

/// The byte offset of the frame of `seq` in a segment starting at `first`.
fn frame_offset(first: u64, seq: u64) -> usize {
    64 + (first..seq).map(|s| 24 + payload(s).len()).sum::<usize>()
}

fn corrupt(path: &Path, at: usize, len: usize) {
    let mut b = std::fs::read(path).unwrap();
    for x in &mut b[at..at + len] {
        *x ^= 0x5a;
    }
    std::fs::write(path, b).unwrap();
}

/// What a reader yields from the start: records as `Ok(seq)` (payloads
/// checked), gaps as `Err((first missing, first after))`, and any other
/// error ends the list as `Err((0, 0))`.
fn read_from_start(dir: &Path) -> Vec<Result<u64, (u64, u64)>> {
    let mut out = Vec::new();
    for item in Reader::open(dir).unwrap().read_since(0).unwrap() {
        match item {
            Ok(r) => {
                assert_eq!(r.payload(), payload(r.seq()).as_slice());
                out.push(Ok(r.seq()));
            }
            Err(JournalError::Gap { expected, found, .. }) => out.push(Err((expected, found))),
            Err(_) => out.push(Err((0, 0))),
        }
    }
    out
}

fn all_but(missing: &[u64], last: u64) -> Vec<Result<u64, (u64, u64)>> {
    let mut out = Vec::new();
    for s in 1..=last {
        if !missing.contains(&s) {
            out.push(Ok(s));
        } else if !missing.contains(&(s - 1)) {
            let end = (s..).find(|x| !missing.contains(x)).unwrap();
            out.push(Err((s, end)));
        }
    }
    out
}

#[test]
fn a_damaged_frame_in_a_middle_segment_becomes_one_gap_after_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let (middle, first, last_of_middle, last) = three_segments(tmp.path());
    let bad = first + 2;
    assert!(bad < last_of_middle);
    corrupt(&middle, frame_offset(first, bad) + 26, 3);

    // Before: every reader from the start stops at the damage; the later segments are unreachable.
    let before = read_from_start(tmp.path());
    assert_eq!(before.last(), Some(&Err((0, 0))), "{before:?}");
    assert_eq!(before.len() as u64, bad, "records 1..{bad} then the error");
    // A Strict open does not touch it (and does not refuse: sealed segments are not walked).
    let (j, report) = Journal::open(tmp.path(), opts()).unwrap();
    assert!(report.sealed.is_empty());
    drop(j);
    // verify: the bad frame, and the record it hid, as an inclusive range
    // ("records 40001..=40001", never a half-open range read as two).
    let problems = verify(tmp.path()).unwrap().problems;
    let what: Vec<(&Path, &str)> = problems.iter().map(|p| (p.path.as_path(), p.what.as_str())).collect();
    let hidden = format!("records {bad}..={bad} are missing");
    assert_eq!(what, [(middle.as_path(), "frame checksum mismatch"), (middle.as_path(), hidden.as_str())]);

    let report = Journal::repair(tmp.path(), opts()).unwrap();
    let created = tmp.path().join(format!("{:020}.seg", bad + 1));
    assert_eq!(
        report.sealed,
        [RecoveryAction::Repaired {
            path: middle,
            reason: format!("frame checksum mismatch at byte {}", frame_offset(first, bad)),
            missing: vec![bad..=bad],
            created: vec![created.clone()],
        }]
    );
    assert_eq!(report.next_seq, last + 1, "no seq is reused");
    assert_eq!(read_from_start(tmp.path()), all_but(&[bad], last));
    // A cursor right before the damage resumes with the gap, then the rest.
    let items: Vec<_> = Reader::open(tmp.path()).unwrap().read_since(bad - 1).unwrap().collect();
    assert!(
        matches!(&items[0], Err(JournalError::Gap { expected, found, .. }) if *expected == bad && *found == bad + 1)
    );
    assert!(matches!(&items[1], Ok(r) if r.seq() == bad + 1));

    // verify: one problem, an inclusive range, the path named once (in its field).
    let problems = verify(tmp.path()).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, created);
    assert_eq!(problems[0].what, format!("records {bad}..={bad} are missing before this segment"));
    // Repaired once: a default open is clean, and appends continue after the last seq.
    let (mut j, report) = Journal::open(tmp.path(), opts()).unwrap();
    assert!(report.sealed.is_empty() && report.action.is_none(), "{report:?}");
    assert_eq!(j.append(1, b"after").unwrap(), last + 1);
}

#[test]
fn a_damaged_header_in_a_middle_segment_is_repaired_and_only_damaged_frames_are_a_gap() {
    // Only the header's CRC is broken: the frames are intact, nothing is missing.
    let tmp = tempfile::tempdir().unwrap();
    let (middle, _, _, last) = three_segments(tmp.path());
    corrupt(&middle, 50, 1);
    let before = snapshot(tmp.path());
    let err = Journal::open(tmp.path(), opts()).unwrap_err();
    assert!(matches!(&err, JournalError::HeaderCrc { path } if *path == middle), "{err}");
    assert!(snapshot(tmp.path()) == before, "a refused open changed the directory");
    let problems = verify(tmp.path()).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!((&problems[0].path, problems[0].what.as_str()), (&middle, "segment header checksum mismatch"));
    let report = Journal::repair(tmp.path(), opts()).unwrap();
    assert!(
        matches!(&report.sealed[..], [RecoveryAction::Repaired { path, missing, created, .. }]
            if *path == middle && missing.is_empty() && created.is_empty()),
        "{report:?}"
    );
    assert_eq!(read_from_start(tmp.path()), all_but(&[], last));
    assert!(verify(tmp.path()).unwrap().is_ok());

    // The header and the first two frames are damaged (a bad sector): those
    // frames become one gap, the rest of the segment stays readable.
    let tmp = tempfile::tempdir().unwrap();
    let (middle, first, _, last) = three_segments(tmp.path());
    corrupt(&middle, 20, frame_offset(first, first + 1) + 30 - 20);
    let err = Journal::open(tmp.path(), opts()).unwrap_err();
    assert!(matches!(&err, JournalError::HeaderCrc { path } if *path == middle), "{err}");
    let report = Journal::open(tmp.path(), opts().recovery(RecoveryMode::Repair)).unwrap().1;
    assert!(
        matches!(&report.sealed[..], [RecoveryAction::Repaired { path, missing, .. }]
            if *path == middle && *missing == [first..=first + 1]),
        "{report:?}"
    );
    assert_eq!(read_from_start(tmp.path()), all_but(&[first, first + 1], last));
    let problems = verify(tmp.path()).unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    // The rebuilt middle segment holds no record now; its valid frames went to a new segment.
    assert_eq!(problems[0].what, format!("records {first}..={} are missing before this segment", first + 1));
    assert!(!problems[0].what.contains(".seg"), "the path is named once, in its field");
    assert_eq!(problems[0].path, tmp.path().join(format!("{:020}.seg", first + 2)));
}

#[test]
fn a_truncated_sealed_header_is_refused_then_repaired_into_one_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let (middle, first, last_of_middle, last) = three_segments(tmp.path());
    std::fs::OpenOptions::new().write(true).open(&middle).unwrap().set_len(30).unwrap();
    let err = Journal::open(tmp.path(), opts()).unwrap_err();
    assert!(matches!(&err, JournalError::Corrupt { path, offset: 0, .. } if *path == middle), "{err}");
    let report = Journal::repair(tmp.path(), opts()).unwrap();
    assert!(
        matches!(&report.sealed[..], [RecoveryAction::Repaired { path, missing, .. }]
            if *path == middle && *missing == [first..=last_of_middle]),
        "{report:?}"
    );
    let missing: Vec<u64> = (first..=last_of_middle).collect();
    assert_eq!(read_from_start(tmp.path()), all_but(&missing, last));
    assert_eq!(report.next_seq, last + 1);
}

#[test]
fn repair_refuses_what_it_cannot_tell_apart_from_another_format_or_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let (middle, _, _, _) = three_segments(tmp.path());
    let mut b = std::fs::read(&middle).unwrap();
    b[8] = 2; // another format version: never rewritten
    std::fs::write(&middle, &b).unwrap();
    let before = snapshot(tmp.path());
    let err = Journal::repair(tmp.path(), opts()).unwrap_err();
    assert!(matches!(&err, JournalError::UnsupportedVersion { path, version: 2 } if *path == middle), "{err}");
    assert!(snapshot(tmp.path()) == before);
}

/// A journal of one segment whose header CRC and last record are both
/// damaged: no segment has a valid header to give the journal's epoch, so
/// `repair` takes it from the previous writer's watermark. The journal
/// keeps its epoch, and the next seq is 6, above every seq acknowledged
/// (the watermark's 5). It had made up a new epoch: followers saw another
/// journal, and the watermark of the old epoch no longer counted, so seq
/// 5, cut with the damaged record, was handed out again.
#[test]
fn a_repair_with_no_valid_header_keeps_the_journals_epoch_and_reuses_no_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), opts()).unwrap();
    for seq in 1..=5 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    let epoch = j.epoch();
    j.close().unwrap();
    let only = segments(dir.path()).remove(0);
    corrupt(&only, 60, 1); // the header's CRC
    let len = std::fs::metadata(&only).unwrap().len() as usize;
    corrupt(&only, len - 1, 1); // the last record
    let report = Journal::repair(dir.path(), opts()).unwrap();
    assert_eq!((report.epoch, report.next_seq), (epoch, 6), "{report:?}");
}

/// As above, but the segment the watermark names was deleted by hand: the
/// watermark is an earlier journal's, left beside other segments, and its
/// epoch is not adopted (the repair makes a new one).
#[test]
fn a_repair_adopts_no_epoch_from_a_watermark_naming_a_segment_deleted_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), opts()).unwrap();
    for seq in 1..=5 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    j.roll().unwrap();
    for seq in 6..=8 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    let epoch = j.epoch();
    j.close().unwrap();
    let [oldest, newest] = <[_; 2]>::try_from(segments(dir.path())).unwrap();
    std::fs::remove_file(newest).unwrap();
    corrupt(&oldest, 60, 1); // the header's CRC
    let len = std::fs::metadata(&oldest).unwrap().len() as usize;
    corrupt(&oldest, len - 1, 1); // the last record
    let report = Journal::repair(dir.path(), opts()).unwrap();
    assert_ne!(report.epoch, epoch, "{report:?}");
}

/// `Journal::repair` given options whose retention would remove segments
/// (`Retention::segments(1)` here; the default keeps 64, fewer than a long
/// journal holds): every valid record stays readable, as its docs promise,
/// and no segment is removed. Its open had applied the options' retention
/// and removed all but the newest segment (found by audit; the other repair
/// tests all passed `Retention::unlimited()`).
#[test]
fn repair_removes_no_segment_whatever_retention_it_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let (middle, first, _, last) = three_segments(tmp.path());
    corrupt(&middle, frame_offset(first, first + 1), 4);
    let before = segments(tmp.path()).len();
    Journal::repair(tmp.path(), opts().retention(Retention::segments(1))).unwrap();
    assert!(segments(tmp.path()).len() >= before, "no segment removed: {:?}", segments(tmp.path()));
    let read = read_from_start(tmp.path());
    assert_eq!(read.first(), Some(&Ok(1)), "{read:?}");
    assert_eq!(read.last(), Some(&Ok(last)), "{read:?}");
    assert_eq!(read.iter().filter(|r| r.is_err()).count(), 1, "one gap: {read:?}");
}
