//! Bad input in the journal directory: strangers are ignored (with a warning
//! and listed in the report); a `.seg` file with a wrong magic, a future
//! version, a bad header CRC, another epoch or another codec tag is a typed
//! error naming the file, and the refused open alters nothing; an oversized
//! record is refused and writes nothing.

mod support;

use std::path::Path;

use events_journal::format::SegmentHeader;
use events_journal::{Journal, JournalError, JournalOptions, Reader, RecoveryMode, verify};
use support::{assert_records, payload, read_all, segments, snapshot, ts};

fn journal_with_two_segments(dir: &Path) -> u64 {
    let (mut j, _) = Journal::open(dir, JournalOptions::new()).unwrap();
    j.append(ts(1), payload(1)).unwrap();
    j.append(ts(2), payload(2)).unwrap();
    j.roll().unwrap();
    j.append(ts(3), payload(3)).unwrap();
    let epoch = j.epoch();
    j.close().unwrap();
    epoch
}

/// Asserts that opening fails with `check`, and that nothing changed.
fn refused(dir: &Path, opts: JournalOptions, check: impl Fn(&JournalError) -> bool) {
    let before = snapshot(dir);
    let err = Journal::open(dir, opts).unwrap_err();
    assert!(check(&err), "unexpected error: {err}");
    assert!(snapshot(dir) == before, "a refused open altered the directory ({err})");
}

#[test]
fn strangers_are_ignored_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    journal_with_two_segments(dir.path());
    let strangers = [
        "notes.txt",
        "x.seg",
        "00000000000000000001.seg.bak",
        "1.seg",
        "00000000000000000000.seg",
        "0000000000000000001.seg",   // 19 digits
        "000000000000000000001.seg", // 21 digits
    ];
    for s in strangers {
        std::fs::write(dir.path().join(s), b"garbage").unwrap();
    }
    std::fs::create_dir(dir.path().join("00000000000000000009.seg")).unwrap();
    let (j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(report.ignored.len(), strangers.len() + 1, "{:?}", report.ignored);
    assert_eq!(j.next_seq(), 4);
    drop(j);
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 3);
    assert_eq!(verify(dir.path()).unwrap().ignored.len(), strangers.len() + 1);
    for s in strangers {
        assert_eq!(std::fs::read(dir.path().join(s)).unwrap(), b"garbage", "{s} was altered");
    }
}

#[test]
fn a_foreign_seg_file_is_bad_magic_naming_it() {
    for (name, bytes) in [
        ("00000000000000000001.seg", b"not a journal segment at all, just some bytes".to_vec()),
        ("00000000000000000003.seg", vec![b'x'; 200]), // the newest: still not mistaken for a torn header
        ("00000000000000000003.seg", b"short".to_vec()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        journal_with_two_segments(dir.path());
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        refused(dir.path(), JournalOptions::new(), |e| matches!(e, JournalError::BadMagic { path: p } if *p == path));
        let report = verify(dir.path()).unwrap();
        assert!(report.problems.iter().any(|p| p.path == path), "{name}");
    }
}

#[test]
fn future_version_bad_crc_and_foreign_epoch_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = journal_with_two_segments(dir.path());
    let segs = segments(dir.path());
    let original = std::fs::read(&segs[0]).unwrap();

    let mut future = original.clone();
    future[8..10].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(&segs[0], &future).unwrap();
    refused(
        dir.path(),
        JournalOptions::new(),
        |e| matches!(e, JournalError::UnsupportedVersion { path, version: 2 } if *path == segs[0]),
    );

    let mut bad_crc = original.clone();
    bad_crc[40] ^= 1;
    std::fs::write(&segs[0], &bad_crc).unwrap();
    refused(dir.path(), JournalOptions::new(), |e| matches!(e, JournalError::HeaderCrc { path } if *path == segs[0]));

    let foreign = SegmentHeader { epoch: epoch ^ 1, first_seq: 3, created_at: 0, codec_tag: 0 };
    let mut newest = std::fs::read(&segs[1]).unwrap();
    std::fs::write(&segs[0], &original).unwrap();
    let pristine_newest = newest.clone();
    newest[..64].copy_from_slice(&foreign.encode());
    std::fs::write(&segs[1], &newest).unwrap();
    refused(
        dir.path(),
        JournalOptions::new(),
        |e| matches!(e, JournalError::EpochMismatch { path, expected, found } if *path == segs[1] && *expected == epoch && *found == epoch ^ 1),
    );
    std::fs::write(&segs[1], &pristine_newest).unwrap();
    // Another journal's oldest segment in its place: the error names it,
    // by the epoch the last writer's watermark names (it had named the
    // newest, this journal's own, as the foreign one).
    let mut oldest = original.clone();
    oldest[..64]
        .copy_from_slice(&SegmentHeader { epoch: epoch ^ 1, first_seq: 1, created_at: 0, codec_tag: 0 }.encode());
    std::fs::write(&segs[0], &oldest).unwrap();
    refused(
        dir.path(),
        JournalOptions::new(),
        |e| matches!(e, JournalError::EpochMismatch { path, expected, found } if *path == segs[0] && *expected == epoch && *found == epoch ^ 1),
    );
    std::fs::write(&segs[0], &original).unwrap();
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(j.next_seq(), 4);
}

/// A newest segment crafted so that every offset after its header passes
/// the cheap checks of the search for valid frames after damage (a frame
/// header every 24 bytes, each claiming 2 MiB, with a plausible seq): the
/// open, `verify` and a reader each finish, the search stopped at its
/// budget, and the damage is corruption, never a torn tail that an open
/// would cut, nor one a salvage or repair would rebuild from frames it
/// never searched (dropping some unseen, and handing their seqs out again). Each had hashed 2 MiB per offset: ~170 GiB for this 4 MiB
/// file, hours.
#[test]
fn a_crafted_segment_is_damage_found_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    journal_with_two_segments(dir.path());
    let newest = segments(dir.path()).pop().unwrap();
    let pristine_newest = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, crafted(&pristine_newest, 3)).unwrap();
    for mode in
        [RecoveryMode::Strict, RecoveryMode::TruncateAtCorruption, RecoveryMode::SkipCorrupt, RecoveryMode::Repair]
    {
        // A salvage or repair cannot say which seqs it would drop, so none runs.
        refused(
            dir.path(),
            JournalOptions::new().recovery(mode),
            |e| matches!(e, JournalError::Corrupt { path, .. } if *path == newest),
        );
    }
    let report = verify(dir.path()).unwrap();
    let problem = report.problems.iter().find(|p| p.path == newest).expect("a problem in the crafted segment");
    assert!(problem.what.contains("stopped at its budget"), "{problem:?}");
    let mut read = Reader::open(dir.path()).unwrap().read_since(0).unwrap();
    assert_eq!(read.next().unwrap().unwrap().seq(), 1);
    assert_eq!(read.next().unwrap().unwrap().seq(), 2);
    assert!(matches!(read.next(), Some(Err(JournalError::Corrupt { .. }))));

    // With the newest header damaged too: no rebuild under a fresh header either.
    let mut both = crafted(&pristine_newest, 3);
    both[40] ^= 1;
    std::fs::write(&newest, &both).unwrap();
    let repair = JournalOptions::new().recovery(RecoveryMode::Repair);
    refused(dir.path(), repair, |e| matches!(e, JournalError::Corrupt { path, .. } if *path == newest));

    // The same in a sealed segment (which only a repair walks at open): no repair either.
    std::fs::write(&newest, &pristine_newest).unwrap();
    let oldest = segments(dir.path())[0].clone();
    std::fs::write(&oldest, crafted(&std::fs::read(&oldest).unwrap(), 1)).unwrap();
    let repair = JournalOptions::new().recovery(RecoveryMode::Repair);
    refused(dir.path(), repair, |e| matches!(e, JournalError::Corrupt { path, .. } if *path == oldest));
}

/// A segment's header, then frame headers every 24 bytes up to 4 MiB, each
/// claiming a 2 MiB frame of seq `seq` (a plausible one after damage).
fn crafted(segment: &[u8], seq: u64) -> Vec<u8> {
    let mut bytes = segment[..64].to_vec();
    let mut block = [0u8; 24];
    block[0..4].copy_from_slice(&(2u32 << 20).to_le_bytes());
    block[8..16].copy_from_slice(&seq.to_le_bytes());
    while bytes.len() < 4 << 20 {
        bytes.extend_from_slice(&block);
    }
    bytes
}

#[test]
fn another_codec_tag_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    journal_with_two_segments(dir.path());
    let first = segments(dir.path())[0].clone();
    refused(
        dir.path(),
        JournalOptions::new().codec_tag(7),
        |e| matches!(e, JournalError::CodecTagMismatch { expected: 7, found: 0, path } if *path == first),
    );
    let other = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(other.path(), JournalOptions::new().codec_tag(7)).unwrap();
    drop(j);
    let (j, _) = Journal::open(other.path(), JournalOptions::new().codec_tag(7)).unwrap();
    assert_eq!(j.next_seq(), 1);
}

#[test]
fn an_oversized_record_is_refused_and_nothing_of_its_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().max_record_bytes(100)).unwrap();
    j.append(ts(1), [1; 100]).unwrap();
    let big = [0u8; 101];
    let err = j.append_batch([(0, &[2u8; 10][..]), (0, &big[..])]).unwrap_err();
    assert!(matches!(err, JournalError::RecordTooLarge { len: 101, max: 100 }), "{err}");
    // Not a write failure: the writer is not poisoned and the seq was not consumed.
    assert_eq!(j.append(ts(2), b"ok").unwrap(), 2);
    j.close().unwrap();
    let records = read_all(&Reader::open(dir.path()).unwrap(), 0);
    assert_eq!(records.iter().map(|r| r.payload().len()).collect::<Vec<_>>(), [100, 2]);
}

#[test]
fn an_empty_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    let r = j.append_batch(std::iter::empty::<(u64, &[u8])>()).unwrap();
    assert!(r.is_empty());
    assert_eq!((*r.start(), j.next_seq(), j.stats().batches), (1, 1, 0));
}

/// A segment named past the highest seq a journal hands out (`MAX_SEQ`),
/// here `u64::MAX` with a valid header of the journal's epoch and one valid
/// frame, is a stranger: ignored and reported, the journal opens and goes on
/// at its own next seq. It was taken for the newest segment, and its
/// recovery overflowed the seq arithmetic (a panic in debug builds).
#[test]
fn a_segment_named_past_the_highest_seq_is_a_stranger() {
    use events_journal::format::{SegmentHeader, encode_frame};
    let dir = tempfile::tempdir().unwrap();
    let epoch = journal_with_two_segments(dir.path());
    let mut bytes = SegmentHeader { epoch, first_seq: u64::MAX, created_at: 1, codec_tag: 0 }.encode().to_vec();
    encode_frame(&mut bytes, u64::MAX, 1, b"hostile");
    std::fs::write(dir.path().join("18446744073709551615.seg"), &bytes).unwrap();
    let (mut j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(report.ignored.len(), 1, "{:?}", report.ignored);
    assert_eq!(j.append(ts(4), payload(4)).unwrap(), 4);
    j.close().unwrap();
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 4);
}

/// A segment named near the highest seq a journal hands out (`MAX_SEQ - 1`,
/// a valid header of the journal's epoch and one valid frame): the journal
/// opens, takes seq `MAX_SEQ`, and refuses the next append with
/// `SeqsExhausted`, nothing written; its lease stays readable. It had
/// handed out seq 2^63 (past the limit), written a lease and watermark no
/// open could read, and the next roll a segment the next open ignored.
#[test]
fn a_segment_named_near_the_highest_seq_ends_the_appends_there() {
    use events_journal::format::{MAX_SEQ, SegmentHeader, encode_frame};
    let dir = tempfile::tempdir().unwrap();
    let epoch = journal_with_two_segments(dir.path());
    let mut bytes = SegmentHeader { epoch, first_seq: MAX_SEQ - 1, created_at: 1, codec_tag: 0 }.encode().to_vec();
    encode_frame(&mut bytes, MAX_SEQ - 1, 1, b"near the end");
    std::fs::write(dir.path().join(format!("{:020}.seg", MAX_SEQ - 1)), &bytes).unwrap();
    let (mut j, report) =
        Journal::open(dir.path(), JournalOptions::new().sync(events_journal::SyncPolicy::Never)).unwrap();
    assert_eq!(report.next_seq, MAX_SEQ);
    assert_eq!(j.append(ts(5), payload(5)).unwrap(), MAX_SEQ);
    let len = std::fs::metadata(dir.path().join(format!("{:020}.seg", MAX_SEQ - 1))).unwrap().len();
    match j.append(ts(6), payload(6)) {
        Err(JournalError::SeqsExhausted { dir: named }) => assert_eq!(named, dir.path()),
        other => panic!("expected SeqsExhausted: {other:?}"),
    }
    let after = std::fs::metadata(dir.path().join(format!("{:020}.seg", MAX_SEQ - 1))).unwrap().len();
    assert_eq!(after, len, "nothing written");
    // Nor a segment named past it by a roll (asked for, or by age).
    assert!(matches!(j.roll(), Err(JournalError::SeqsExhausted { .. })));
    j.close().unwrap();
    let (j, report) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!((report.next_seq, report.ignored.len(), report.skipped.clone()), (MAX_SEQ + 1, 0, None), "{report:?}");
    assert_eq!(Reader::open(dir.path()).unwrap().last_seq().unwrap(), MAX_SEQ);
    drop(j);
}

/// A watermark whose CRC holds and that names the highest seq as
/// acknowledged (hostile, or damaged and checksummed again): the open that
/// would skip past it refuses with `Corrupt` naming `WATERMARK` and the
/// seq. It had named the directory "at byte 0" and "the seq lease or the
/// watermark" (found by audit).
#[test]
fn a_watermark_naming_the_highest_seq_is_refused_naming_the_watermark() {
    use events_journal::format::MAX_SEQ;
    use events_journal::{WATERMARK_FILE, Watermark, WriterState};
    let dir = tempfile::tempdir().unwrap();
    let epoch = journal_with_two_segments(dir.path());
    let wm = Watermark { state: WriterState::Open, epoch, seq: MAX_SEQ, segment: 3, offset: 64 };
    std::fs::write(dir.path().join(WATERMARK_FILE), wm.encode()).unwrap();
    let salvage = JournalOptions::new().recovery(RecoveryMode::TruncateAtCorruption);
    refused(dir.path(), salvage, |e| {
        matches!(e, JournalError::Corrupt { path, seq: Some(seq), reason, .. }
            if path.ends_with(WATERMARK_FILE) && *seq == MAX_SEQ && reason.contains("no seq can follow it"))
    });
}

/// Makes a FIFO at `path`.
fn fifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// Runs `f` on a thread of its own and fails if it has not returned
/// within 20 s: a hang, not a slow machine.
fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap_or_else(|_| panic!("{what} hung"))
}

/// FIFOs (or anything but a regular file) under the names of the journal's
/// own files: an open, a roll's retention pass and a sidecar read return,
/// with a typed error naming the file where the file is needed
/// (`WATERMARK`, `LEASE`, a sidecar), or by replacing it (`PRUNED`,
/// `PRUNED.tmp`, rewritten through a fresh temporary file). Each had
/// blocked for ever in `open(2)`, the writer's thread with it.
#[test]
fn fifos_under_the_journals_own_names_are_errors_or_replaced_never_a_hang() {
    use events_journal::{LEASE_FILE, PRUNED_FILE, Retention, Sidecar, WATERMARK_FILE};
    for name in [WATERMARK_FILE, LEASE_FILE] {
        let dir = tempfile::tempdir().unwrap();
        journal_with_two_segments(dir.path());
        std::fs::remove_file(dir.path().join(name)).unwrap();
        fifo(&dir.path().join(name));
        let path = dir.path().to_path_buf();
        match returns(name, move || Journal::open(&path, JournalOptions::new()).map(|_| ())) {
            Err(JournalError::Io { path, source, .. }) => {
                assert!(path.ends_with(name) && source.to_string().contains("not a regular file"), "{source}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    for name in [PRUNED_FILE, "PRUNED.tmp"] {
        let dir = tempfile::tempdir().unwrap();
        fifo(&dir.path().join(name));
        let path = dir.path().to_path_buf();
        let pruned = returns(name, move || {
            let (mut j, _) = Journal::open(&path, JournalOptions::new().retention(Retention::segments(1))).unwrap();
            j.append(ts(1), payload(1)).unwrap();
            j.roll().unwrap();
            j.stats().pruned
        });
        assert_eq!(pruned, 1, "{name}");
        assert!(events_journal::PrunedLog::read(dir.path()).is_some(), "{name}: the summary was written");
    }

    // A rebuild's staging name (`<seq>.seg.salvage`, left by whatever):
    // a salvage open that rebuilds the damaged segment replaces it. Opened
    // for writing as it was, a FIFO blocked the open for ever (and a
    // symlink would have been written through).
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    for seq in 1..=3 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    j.close().unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[64 + 24 + payload(1).len() + 24 + 5] ^= 1; // damage seq 2
    std::fs::write(&seg, bytes).unwrap();
    fifo(&seg.with_extension("seg.salvage"));
    let path = dir.path().to_path_buf();
    let opened = returns("a rebuild beside a FIFO staging file", move || {
        let opts = JournalOptions::new().recovery(RecoveryMode::SkipCorrupt);
        Journal::open(&path, opts).map(|(j, _)| j.last_seq())
    });
    assert!(matches!(opened, Ok(3)), "{opened:?}");

    // `LOCK`, with no writer running: a reader (and `verify`, `inspect`)
    // tests the lock without taking it, and had blocked in `open(2)`.
    let dir = tempfile::tempdir().unwrap();
    journal_with_two_segments(dir.path());
    std::fs::remove_file(dir.path().join("LOCK")).unwrap();
    fifo(&dir.path().join("LOCK"));
    let path = dir.path().to_path_buf();
    let read = returns("a reader beside a FIFO LOCK", move || {
        let reader = events_journal::Reader::open(&path)?;
        Ok::<_, JournalError>((reader.last_seq()?, reader.writer_running()))
    });
    assert!(matches!(read, Ok((last, Some(false))) if last > 0), "no writer holds it: {read:?}");
    let path = dir.path().to_path_buf();
    match returns("a writer on a FIFO LOCK", move || Journal::open(&path, JournalOptions::new()).map(|_| ())) {
        Err(JournalError::Io { path, source, .. }) => {
            assert!(path.ends_with("LOCK") && source.to_string().contains("not a regular file"), "{source}");
        }
        other => panic!("a writer took a FIFO for its lock: {other:?}"),
    }

    let dir = tempfile::tempdir().unwrap();
    let idx = dir.path().join("00000000000000000001.idx");
    fifo(&idx);
    match returns("a sidecar", move || Sidecar::open(&idx).map(|_| ())) {
        Err(events_journal::SidecarError::Io { source, .. }) => {
            assert!(source.to_string().contains("not a regular file"));
        }
        other => panic!("{other:?}"),
    }
}
