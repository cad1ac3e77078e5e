//! Sidecar index files as the journal sees them: built with a caller's key
//! function and read back through `Reader::records_at`; not listed as
//! strangers; removed by retention with their segment; orphans swept at
//! open; checked by `verify` against their segments; a stale entry is never
//! another record.

mod support;

use std::path::{Path, PathBuf};

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{
    IndexEntry, Journal, JournalOptions, ReadError, Reader, RecoveryMode, Retention, SegmentIndex, Sidecar, SyncPolicy,
    sidecar_path, verify,
};
use support::segments;

/// The key of a test payload: its first byte.
fn key(payload: &[u8]) -> Option<Vec<u8>> {
    payload.first().map(|b| vec![*b])
}

/// A journal of `n` records (payload `[seq % 3, ..]`) over 256-byte segments.
fn journal(dir: &Path, n: u64, retention: Retention) -> Journal {
    let opts = JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(256).retention(retention);
    let (mut journal, _) = Journal::open(dir, opts).unwrap();
    for seq in 1..=n {
        journal.append(seq, [(seq % 3) as u8, 9, 9, 9]).unwrap();
    }
    journal
}

fn index_sealed(dir: &Path) -> Vec<PathBuf> {
    let segs = segments(dir);
    for seg in &segs[..segs.len() - 1] {
        SegmentIndex::build(seg, key).unwrap().write(seg).unwrap();
    }
    segs[..segs.len() - 1].iter().map(|s| sidecar_path(s)).collect()
}

#[test]
fn a_sidecar_points_at_the_records_of_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    let sidecars = index_sealed(tmp.path());
    let reader = Reader::open(tmp.path()).unwrap();
    let side = Sidecar::open(&sidecars[1]).unwrap();
    let entries = side.entries(&[1]);
    assert!(!entries.is_empty());
    let records = reader.records_at(side.first_seq(), &entries).unwrap();
    for (entry, record) in entries.iter().zip(&records) {
        let record = record.as_ref().expect("the entry's record");
        assert_eq!((record.seq(), record.seq() % 3, record.payload()[0]), (entry.seq, 1, 1));
    }
    // An entry that names the wrong seq, or an offset inside a frame, is no record.
    let wrong = [IndexEntry { seq: entries[0].seq + 1, offset: entries[0].offset }];
    assert!(reader.records_at(side.first_seq(), &wrong).unwrap()[0].is_none());
    let inside = [IndexEntry { seq: entries[0].seq, offset: entries[0].offset + 3 }];
    assert!(reader.records_at(side.first_seq(), &inside).unwrap()[0].is_none());
    // Nor is one past the segment's end, up to the end of memory.
    let len = std::fs::metadata(sidecars[1].with_extension("seg")).unwrap().len();
    for offset in [len, len + 1, u64::MAX - 24, u64::MAX] {
        let past = [IndexEntry { seq: entries[0].seq, offset }];
        assert!(reader.records_at(side.first_seq(), &past).unwrap()[0].is_none(), "offset {offset}");
    }
    assert!(verify(tmp.path()).unwrap().is_ok());
    journal.close().unwrap();
}

#[test]
fn sidecars_are_not_strangers_and_orphans_are_swept_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    let sidecars = index_sealed(tmp.path());
    journal.close().unwrap();
    // A sidecar a reader wrote while retention removed its segment (or an older build's leftover).
    std::fs::remove_file(sidecars[0].with_extension("seg")).unwrap();
    let report = verify(tmp.path()).unwrap();
    assert!(report.ignored.is_empty(), "{:?}", report.ignored);
    let opts = JournalOptions::new().recovery(events_journal::RecoveryMode::Repair);
    let (journal, report) = Journal::open(tmp.path(), opts).unwrap();
    assert!(report.ignored.is_empty(), "{:?}", report.ignored);
    assert!(!sidecars[0].exists(), "the orphan sidecar is swept");
    assert!(sidecars[1..].iter().all(|s| s.exists()), "the others stay");
    journal.close().unwrap();
}

/// `records_in` reads several segments' entries under one look at the
/// journal, each as `records_at` reads it alone; once retention removed
/// the oldest segment asked for, the whole call is `Expired`, naming the
/// earliest retained seq, and a segment it never had is nothing verified.
#[test]
fn records_in_reads_several_segments_as_records_at_reads_each() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    let sidecars = index_sealed(tmp.path());
    assert!(sidecars.len() >= 4, "{sidecars:?}");
    let reader = Reader::open(tmp.path()).unwrap();
    let asked: Vec<(u64, Vec<IndexEntry>)> = sidecars
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let side = Sidecar::open(path).unwrap();
            (side.first_seq(), side.entries(&[(i % 3) as u8]))
        })
        .collect();
    let wanted: Vec<(u64, &[IndexEntry])> = asked.iter().map(|(first, e)| (*first, e.as_slice())).collect();
    let together = reader.records_in(&wanted).unwrap();
    assert_eq!(together.len(), wanted.len());
    for (&(first, entries), records) in wanted.iter().zip(&together) {
        assert!(!entries.is_empty());
        let alone = reader.records_at(first, entries).unwrap();
        let seqs =
            |r: &[Option<events_journal::Record>]| r.iter().map(|r| r.as_ref().map(|r| r.seq())).collect::<Vec<_>>();
        assert_eq!(seqs(records), seqs(&alone), "segment {first}");
        assert_eq!(seqs(records), entries.iter().map(|e| Some(e.seq)).collect::<Vec<_>>());
    }
    assert!(reader.records_in(&[]).unwrap().is_empty());
    // A first seq that names no segment past the oldest: nothing verified.
    let nowhere = [(wanted[1].0 + 1, wanted[1].1)];
    assert!(reader.records_in(&nowhere).unwrap()[0].iter().all(Option::is_none));
    journal.close().unwrap();

    // Retention removes the two oldest segments.
    let opts = JournalOptions::new().segment_bytes(256).retention(Retention::segments(sidecars.len() - 1));
    let (reopened, report) = Journal::open(tmp.path(), opts).unwrap();
    assert!(report.pruned.len() >= 2, "{:?}", report.pruned);
    let earliest = reader.first_seq().unwrap();
    assert!(earliest > wanted[1].0);
    match reader.records_in(&wanted[1..]) {
        Err(ReadError::Expired { earliest: e }) => assert_eq!(e, earliest),
        other => panic!("expected Expired, got {:?}", other.map(|r| r.len())),
    }
    reopened.close().unwrap();
}

#[test]
fn retention_removes_a_segments_sidecar_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut journal = journal(tmp.path(), 60, Retention::unlimited());
    let sidecars = index_sealed(tmp.path());
    journal.close().unwrap();
    let opts = JournalOptions::new().segment_bytes(256).retention(Retention::segments(2));
    let (mut reopened, report) = Journal::open(tmp.path(), opts).unwrap();
    assert!(!report.pruned.is_empty());
    for removed in &report.pruned {
        assert!(!sidecar_path(removed).exists(), "{} outlived its segment", removed.display());
    }
    let kept: Vec<_> = sidecars.iter().filter(|s| s.with_extension("seg").exists()).collect();
    assert!(kept.iter().all(|s| s.exists()));
    reopened.append(1, [0]).unwrap();
    journal = reopened;
    journal.close().unwrap();
}

#[test]
fn verify_checks_each_sidecar_against_its_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    let sidecars = index_sealed(tmp.path());
    journal.close().unwrap();
    assert!(verify(tmp.path()).unwrap().is_ok());

    // Damaged (a flipped byte), stale (another segment's), and lying
    // (valid, but an entry points at another record).
    let good = std::fs::read(&sidecars[0]).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() - 3] ^= 0x10;
    std::fs::write(&sidecars[0], &flipped).unwrap();
    std::fs::copy(&sidecars[2], &sidecars[1]).unwrap();
    let seg = sidecars[3].with_extension("seg");
    let mut lie = SegmentIndex::build(&seg, key).unwrap();
    let entries = lie.keys.values_mut().next().unwrap();
    entries[0].seq += 1;
    lie.write(&seg).unwrap();

    let report = verify(tmp.path()).unwrap();
    let paths: Vec<_> = report.problems.iter().map(|p| p.path.clone()).collect();
    let want: Vec<_> = sidecars[..=3].iter().filter(|s| *s != &sidecars[2]).map(|s| s.with_extension("seg")).collect();
    assert_eq!(paths, want, "{:?}", report.problems);
    assert!(report.problems.iter().all(|p| p.what.contains("sidecar")), "{:?}", report.problems);
}

/// A journal of 60 records whose sealed segments are indexed; returns the
/// sidecars and the segment files.
fn indexed(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let journal = journal(dir, 60, Retention::unlimited());
    let sidecars = index_sealed(dir);
    journal.close().unwrap();
    (sidecars, segments(dir))
}

/// Flips a payload byte of the first record `sidecar` lists in its segment.
fn damage_first_record(sidecar: &Path) {
    let segment = sidecar.with_extension("seg");
    let first = Sidecar::open(sidecar).unwrap().all().flat_map(|(_, e)| e).map(|e| e.offset).min().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[usize::try_from(first).unwrap() + 25] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
}

/// `Journal::repair` rebuilds a damaged sealed segment; salvage at open
/// (`SkipCorrupt`, `TruncateAtCorruption`) rebuilds the newest segment,
/// which has a sidecar here as a reader (or an older build) may leave one.
#[test]
fn repair_and_salvage_remove_the_sidecar_of_the_segment_they_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let (sidecars, _) = indexed(tmp.path());
    damage_first_record(&sidecars[1]);
    Journal::repair(tmp.path(), JournalOptions::new()).unwrap();
    assert!(!sidecars[1].exists(), "repair: the rebuilt segment's sidecar described the old bytes");
    assert!(sidecars[2].exists(), "repair: an untouched segment keeps its sidecar");
    assert!(verify(tmp.path()).unwrap().problems.iter().all(|p| !p.what.contains("sidecar")));
    for mode in [RecoveryMode::SkipCorrupt, RecoveryMode::TruncateAtCorruption] {
        let tmp = tempfile::tempdir().unwrap();
        let (sidecars, segs) = indexed(tmp.path());
        let newest = segs.last().unwrap();
        SegmentIndex::build(newest, key).unwrap().write(newest).unwrap();
        damage_first_record(&sidecar_path(newest));
        let (journal, _) = Journal::open(tmp.path(), JournalOptions::new().recovery(mode)).unwrap();
        journal.close().unwrap();
        assert!(!sidecar_path(newest).exists(), "{mode:?}: the rebuilt segment's sidecar described the old bytes");
        assert!(sidecars.iter().all(|s| s.exists()), "{mode:?}: the sealed segments keep their sidecars");
        assert!(verify(tmp.path()).unwrap().problems.iter().all(|p| !p.what.contains("sidecar")), "{mode:?}");
    }
}

/// The sidecar goes before the rebuilt segment is renamed into place: a
/// rename that fails (the last step of the rebuild) leaves the damaged
/// segment as it was and no sidecar describing it.
#[test]
fn a_rebuild_removes_the_sidecar_before_its_rename() {
    let tmp = tempfile::tempdir().unwrap();
    let (sidecars, _) = indexed(tmp.path());
    damage_first_record(&sidecars[1]);
    // How many salvage operations a repair of this journal makes: its last is the rename.
    let dry = tempfile::tempdir().unwrap();
    events_testkit::fs::copy_files(tmp.path(), dry.path());
    let plan = FaultPlan::new();
    Journal::repair(dry.path(), JournalOptions::new().faults(plan.clone())).unwrap();
    let last = plan.count(Step::Salvage);
    assert!(last > 0, "the repair rebuilt nothing");
    let before = std::fs::read(sidecars[1].with_extension("seg")).unwrap();
    let plan = FaultPlan::new();
    plan.inject(Step::Salvage, last - 1, Fault::Errno(libc::EIO));
    assert!(Journal::repair(tmp.path(), JournalOptions::new().faults(plan.clone())).is_err());
    assert_eq!(plan.fired().len(), 1, "the rename failed");
    assert!(!sidecars[1].exists(), "the sidecar outlived the rebuild's last step");
    assert_eq!(std::fs::read(sidecars[1].with_extension("seg")).unwrap(), before, "the damaged segment is as it was");
}

/// Two threads of one process rebuilding the same sidecar (the writer's
/// indexer and a reader) never fail each other: writes share the temporary
/// name, so they take turns.
#[test]
fn concurrent_writes_of_one_sidecar_all_succeed_and_leave_it_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    let segs = segments(tmp.path());
    let seg = segs[1].clone();
    let index = std::sync::Arc::new(SegmentIndex::build(&seg, key).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (index, seg) = (std::sync::Arc::clone(&index), seg.clone());
            std::thread::spawn(move || {
                (0..100).map(|_| index.write(&seg).map_err(|e| e.to_string())).collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        for result in t.join().unwrap() {
            assert!(result.is_ok(), "{result:?}");
        }
    }
    let side = Sidecar::open(&sidecar_path(&seg)).unwrap();
    assert!(side.describes(&seg).is_ok());
    journal.close().unwrap();
}

/// `verify` checks the retention summary (`PRUNED`) too: clean after
/// retention wrote it, a problem naming the file once a byte is flipped.
#[test]
fn verify_reports_a_damaged_retention_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 80, Retention::segments(2));
    journal.close().unwrap();
    let pruned = tmp.path().join(events_journal::PRUNED_FILE);
    assert!(pruned.exists(), "retention wrote no summary");
    assert!(verify(tmp.path()).unwrap().is_ok());
    let mut bytes = std::fs::read(&pruned).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&pruned, &bytes).unwrap();
    let report = verify(tmp.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, pruned);
    assert!(report.problems[0].what.contains("retention summary damaged"), "{:?}", report.problems);
}

/// `records_at` on a segment whose header is damaged (a flipped byte), or
/// of another journal than the watermark names (a segment of another
/// epoch under the same name): a typed error, as `read_since` gives, not
/// the frames at the entries' offsets. It had served them: each frame
/// checks out on its own (CRC, seq), whatever the header says.
#[test]
fn records_at_checks_the_segment_header_and_its_epoch() {
    use events_journal::format::SegmentHeader;
    use events_journal::{JournalError, ReadError};
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    index_sealed(tmp.path());
    let segs = segments(tmp.path());
    let sealed = &segs[1];
    let side = Sidecar::open(&sidecar_path(sealed)).unwrap();
    let entries = side.entries(&[1]);
    let reader = Reader::open(tmp.path()).unwrap();
    assert!(reader.records_at(side.first_seq(), &entries).unwrap().iter().all(Option::is_some));
    let original = std::fs::read(sealed).unwrap();

    let mut damaged = original.clone();
    damaged[20] ^= 1; // in the header's first seq: its CRC fails
    std::fs::write(sealed, &damaged).unwrap();
    let reader = Reader::open(tmp.path()).unwrap();
    match reader.records_at(side.first_seq(), &entries) {
        Err(ReadError::Journal(JournalError::HeaderCrc { path })) => assert_eq!(&path, sealed),
        other => panic!("{other:?}"),
    }

    // The newest segment (the watermark's) with another journal's header.
    let newest = segs.last().unwrap();
    std::fs::write(sealed, &original).unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let header = SegmentHeader::decode(&bytes[..64]).unwrap();
    let foreign = SegmentHeader { epoch: header.epoch ^ 1, ..header };
    bytes[..64].copy_from_slice(&foreign.encode());
    std::fs::write(newest, &bytes).unwrap();
    let newest_first = journal.segments().last().unwrap().0;
    let reader = Reader::open(tmp.path()).unwrap();
    match reader.records_at(newest_first, &[IndexEntry { seq: newest_first, offset: 64 }]) {
        Err(ReadError::Journal(JournalError::EpochMismatch { found, .. })) => assert_eq!(found, header.epoch ^ 1),
        other => panic!("{other:?}"),
    }
    drop(journal);
}

/// A watermark naming a newest segment that is gone (deleted by hand, say)
/// makes every read fail; `records_at` on a segment that is still there
/// says so with the journal's error, as `read_since` does. It had answered
/// `Expired` (records removed by retention) with an earliest seq at or
/// below the segment asked for: a reset past records that exist.
#[test]
fn a_watermark_naming_a_missing_segment_is_an_error_not_expired_records() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    let sidecars = index_sealed(tmp.path());
    journal.close().unwrap();
    let newest = segments(tmp.path()).pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    let reader = Reader::open(tmp.path()).unwrap();
    let side = Sidecar::open(&sidecars[1]).unwrap();
    let entries = side.entries(&[1]);
    match reader.records_at(side.first_seq(), &entries) {
        Err(ReadError::Journal(e)) => assert!(e.to_string().contains("missing segment"), "{e}"),
        other => panic!("expected the journal's error, got {other:?}"),
    }
    assert!(matches!(reader.read_since(0), Err(ReadError::Journal(_))));
}

/// A segment whose records end before the next segment's first seq (seqs
/// 3..=5 lost: what a power loss's skip leaves), pruned by retention: the
/// summary cannot say which keys those seqs had, so it never says a key
/// was absent from them. It had summarised the segment as covering 1..=5
/// with its keys, so a reader filtered by key `a` whose event was among
/// the lost seqs passed over them with a checkpoint instead of a reset.
#[test]
fn a_pruned_segment_that_ends_before_the_next_leaves_its_gap_unknown() {
    use events_journal::PrunedLog;
    use events_journal::format::{self, SegmentHeader};
    let segment_file_name = |seq: u64| format!("{seq:020}.seg");
    let tmp = tempfile::tempdir().unwrap();
    let epoch = 0x5eed;
    let header = |first_seq| SegmentHeader { epoch, first_seq, created_at: 1, codec_tag: 0 }.encode().to_vec();
    let mut first = header(1);
    format::encode_frame(&mut first, 1, 0, b"a");
    format::encode_frame(&mut first, 2, 0, b"b");
    std::fs::write(tmp.path().join(segment_file_name(1)), &first).unwrap();
    std::fs::write(tmp.path().join(segment_file_name(6)), header(6)).unwrap();
    let opts = JournalOptions::new().retention(Retention::segments(1)).index_key(|p: &[u8]| Some(p.to_vec()));
    let (journal, _) = Journal::open(tmp.path(), opts).unwrap();
    assert_eq!(segments(tmp.path()).len(), 1, "retention removed the first segment");
    let summary = PrunedLog::read(tmp.path()).expect("a summary of the removed segment");
    assert!(!summary.lacks(epoch, b"z", 2, 5), "3..=5 are lost: nobody knows their keys: {summary:?}");
    assert!(!summary.lacks(epoch, b"a", 2, 5), "an event of a may have been lost: {summary:?}");
    journal.close().unwrap();
}

/// A sidecar extended to 256 MiB (sparse), far longer than its header's
/// counts allow (each key at most 6 bytes and 65,535 of key, each record
/// 16 of entry): refused as damaged from its length, before the rest is
/// read, and `verify` reports it. It was read whole (a file of a terabyte kept a roll's
/// retention, on the append path, or `verify`, going for hours, and
/// grew the buffer past memory), then refused for its checksum.
#[test]
fn a_sidecar_longer_than_its_header_allows_is_damaged_unread() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = journal(tmp.path(), 60, Retention::unlimited());
    let sidecars = index_sealed(tmp.path());
    journal.close().unwrap();
    let huge = std::fs::OpenOptions::new().write(true).open(&sidecars[0]).unwrap();
    huge.set_len(256 << 20).unwrap();
    drop(huge);
    match Sidecar::open(&sidecars[0]) {
        Err(events_journal::SidecarError::Damaged { reason, .. }) => {
            assert_eq!(reason, "longer than its header allows");
        }
        other => panic!("{other:?}"),
    }
    let report = verify(tmp.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].what.contains("longer than its header allows"), "{:?}", report.problems);
    // The one that fits its segment still opens.
    Sidecar::open(&sidecars[1]).unwrap();
    // A header counting more records than its segment can hold (a frame
    // takes at least 24 bytes): refused from its first 64 bytes too.
    let mut bytes = std::fs::read(&sidecars[1]).unwrap();
    bytes[48..56].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&sidecars[1], &bytes).unwrap();
    match Sidecar::open(&sidecars[1]) {
        Err(events_journal::SidecarError::Damaged { reason, .. }) => {
            assert_eq!(reason, "counts more records or keys than its segment can hold");
        }
        other => panic!("{other:?}"),
    }
}
