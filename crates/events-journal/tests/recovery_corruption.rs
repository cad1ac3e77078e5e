//! Damage that is not a torn write: every single flipped bit of a frame is
//! detected; corruption in the middle of the newest segment is refused by
//! default (naming file and offset, changing nothing) and salvaged as
//! documented by the two salvage modes, without ever reusing a seq; damage in
//! a sealed segment is an error of the reader and of `verify`, never a skip.

mod support;

use std::path::{Path, PathBuf};

use events_journal::{
    Journal, JournalError, JournalOptions, Reader, RecoveryAction, RecoveryMode, Retention, format, verify,
};
use support::{assert_records, payload, read_all, segments, snapshot, ts};

/// Writes seqs 1..=6 into one segment and returns (segment path, frame offsets).
fn six_records(dir: &Path) -> (PathBuf, Vec<u64>) {
    let (mut j, _) = Journal::open(dir, JournalOptions::new()).unwrap();
    let mut offsets = vec![64u64];
    for seq in 1..=6 {
        j.append(ts(seq), payload(seq)).unwrap();
        offsets.push(offsets.last().unwrap() + 24 + payload(seq).len() as u64);
    }
    j.close().unwrap();
    (segments(dir).pop().unwrap(), offsets)
}

fn flip(path: &Path, byte: u64, bit: u32) {
    let mut b = std::fs::read(path).unwrap();
    b[byte as usize] ^= 1 << bit;
    std::fs::write(path, b).unwrap();
}

#[test]
fn every_flipped_bit_in_a_middle_frame_refuses_to_open_and_changes_nothing() {
    let src = tempfile::tempdir().unwrap();
    let (seg, offs) = six_records(src.path());
    let pristine = std::fs::read(&seg).unwrap();
    let frame = offs[2]..offs[3]; // seq 3
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(seg.file_name().unwrap());
    for (n, bit) in (frame.start * 8..frame.end * 8).enumerate() {
        std::fs::write(&path, &pristine).unwrap();
        flip(&path, bit / 8, (bit % 8) as u32);
        let before = (n % 61 == 0).then(|| snapshot(dir.path()));
        let err = Journal::open(dir.path(), JournalOptions::new()).unwrap_err();
        match &err {
            JournalError::Corrupt { path: p, offset, seq, .. } => {
                assert_eq!((p, *offset, *seq), (&path, frame.start, Some(3)), "bit {bit}: {err}");
            }
            other => panic!("bit {bit}: unexpected {other}"),
        }
        assert!(err.to_string().contains(&path.display().to_string()));
        if let Some(before) = before {
            assert!(snapshot(dir.path()) == before, "bit {bit}: a refused open altered the directory");
        }
        let report = verify(dir.path()).unwrap();
        assert!(report.problems.iter().any(|p| p.offset == frame.start), "bit {bit}: {:?}", report.problems);
    }
}

#[test]
fn every_flipped_bit_in_the_last_frame_is_cut_as_a_torn_tail() {
    let src = tempfile::tempdir().unwrap();
    let (seg, offs) = six_records(src.path());
    let pristine = std::fs::read(&seg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(seg.file_name().unwrap());
    for bit in (offs[5] * 8..offs[6] * 8).step_by(7) {
        std::fs::write(&path, &pristine).unwrap();
        flip(&path, bit / 8, (bit % 8) as u32);
        let (j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert!(
            matches!(report.action, Some(RecoveryAction::TruncatedTornTail { offset, .. }) if offset == offs[5]),
            "bit {bit}: {:?}",
            report.action
        );
        assert_eq!(j.next_seq(), 6);
    }
}

#[test]
fn a_flipped_bit_in_a_sealed_segment_is_an_error_of_the_reader_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, offs) = six_records(dir.path());
    {
        let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        j.roll().unwrap();
        j.append(ts(7), payload(7)).unwrap();
        j.close().unwrap();
    }
    let pristine = std::fs::read(&seg).unwrap();
    for bit in (offs[1] * 8..offs[2] * 8).step_by(5) {
        std::fs::write(&seg, &pristine).unwrap();
        flip(&seg, bit / 8, (bit % 8) as u32);
        // Sealed segments are not scanned at open...
        let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(j.next_seq(), 8);
        drop(j);
        // ...but the reader verifies every frame it passes.
        let reader = Reader::open(dir.path()).unwrap();
        let items: Vec<_> = reader.read_since(0).unwrap().collect();
        assert_eq!(items.len(), 2, "bit {bit}");
        assert_eq!(items[0].as_ref().unwrap().seq(), 1);
        assert!(
            matches!(&items[1], Err(JournalError::Corrupt { path, offset, seq: Some(2), .. }) if *path == seg && *offset == offs[1]),
            "bit {bit}: {:?}",
            items[1]
        );
        // Locating a cursor past the damage fails the same way.
        assert!(matches!(reader.read_since(4), Err(events_journal::ReadError::Journal(JournalError::Corrupt { .. }))));
        let report = verify(dir.path()).unwrap();
        assert!(report.problems.iter().any(|p| p.path == seg && p.offset == offs[1]), "bit {bit}");
    }
}

#[test]
fn a_valid_frame_out_of_order_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, offs) = six_records(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let mut dup = Vec::new();
    format::encode_frame(&mut dup, 2, 0, b"replayed");
    bytes.extend_from_slice(&dup);
    std::fs::write(&seg, &bytes).unwrap();
    let err = Journal::open(dir.path(), JournalOptions::new()).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { offset, seq: Some(7), .. } if offset == offs[6]), "{err}");
}

#[test]
fn truncate_at_corruption_drops_the_rest_and_skips_their_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, offs) = six_records(dir.path());
    flip(&seg, offs[2] + 10, 3);
    let opts = JournalOptions::new().recovery(RecoveryMode::TruncateAtCorruption);
    let (mut j, report) = Journal::open(dir.path(), opts).unwrap();
    match report.action {
        Some(RecoveryAction::Salvaged { path, offset, dropped, kept, .. }) => {
            assert_eq!((path, offset, dropped, kept), (seg.clone(), offs[2], vec![4..=6], vec![]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), offs[2]);
    // Seqs 3..=6 may have been read before the damage: never hand them out again.
    assert_eq!(j.next_seq(), 7);
    j.append(ts(7), payload(7)).unwrap();
    j.close().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    let items: Vec<_> = reader.read_since(0).unwrap().collect();
    assert_eq!(items.len(), 4);
    assert!(matches!(&items[2], Err(JournalError::Gap { expected: 3, found: 7, .. })), "{:?}", items[2]);
    assert_eq!(items[3].as_ref().unwrap().seq(), 7);
    assert_records(&read_all(&reader, 6), 7, 7);
}

#[test]
fn skip_corrupt_keeps_every_valid_frame_and_loses_only_the_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, offs) = six_records(dir.path());
    flip(&seg, offs[2] + 5, 0);
    let opts = JournalOptions::new().recovery(RecoveryMode::SkipCorrupt).retention(Retention::unlimited());
    let (mut j, report) = Journal::open(dir.path(), opts).unwrap();
    assert!(
        matches!(&report.action, Some(RecoveryAction::Salvaged { kept, dropped, .. }) if *kept == vec![4..=6] && dropped.is_empty()),
        "{:?}",
        report.action
    );
    assert_eq!(j.next_seq(), 7);
    j.append(ts(7), payload(7)).unwrap();
    j.close().unwrap();
    assert_eq!(segments(dir.path()).len(), 2);
    let items: Vec<_> = Reader::open(dir.path()).unwrap().read_since(0).unwrap().collect();
    let seqs: Vec<Option<u64>> = items.iter().map(|r| r.as_ref().ok().map(|r| r.seq())).collect();
    assert_eq!(seqs, [Some(1), Some(2), None, Some(4), Some(5), Some(6), Some(7)]);
    assert!(matches!(&items[2], Err(JournalError::Gap { expected: 3, found: 4, .. })));
    for r in items.iter().flatten() {
        assert_eq!(r.payload(), payload(r.seq()).as_slice());
    }
    // The salvaged journal reopens cleanly in strict mode.
    let (j, report) = Journal::open(dir.path(), JournalOptions::new().retention(Retention::unlimited())).unwrap();
    assert!(report.action.is_none());
    assert_eq!(j.next_seq(), 8);
}
