//! One writer per directory, within one process: a second `Journal::open` on
//! a locked directory gets `Locked` naming the directory; `close` and drop
//! release the lock; readers need no lock. (The cross-process case is in
//! `lock_other_process.rs`: a separate binary, because a child forked while
//! this test drops its journal would briefly share the lock.)

use events_journal::{Journal, JournalError, JournalOptions, Reader};

#[test]
fn a_second_writer_in_the_same_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    j.append(1, b"x").unwrap();
    let err = Journal::open(dir.path(), JournalOptions::new()).unwrap_err();
    assert!(matches!(&err, JournalError::Locked { dir: d } if d == dir.path()), "{err}");
    // The refused open touched nothing; the reader works beside the writer.
    assert_eq!(Reader::open(dir.path()).unwrap().last_seq().unwrap(), 1);
    assert_eq!(j.append(2, b"y").unwrap(), 2);
    j.close().unwrap();
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).expect("close released the lock");
    drop(j);
    Journal::open(dir.path(), JournalOptions::new()).expect("drop released the lock");
}

/// The lock file deleted, or replaced by another file, under a running
/// writer (an operator's "stale lock" clean-up): a second writer is still
/// refused, since the first one also holds a lock on the directory itself,
/// and the first one goes on, its rolls and retention passes included.
/// Readers still see it running (its mark on the directory), so they never
/// read its active segment as a dead writer's.
/// The second writer had locked the new lock file and recovered, then
/// appended to, the first writer's active segment, both writing into the
/// same file; readers had taken the first writer for gone. Then the first
/// writer stopped at its next roll or retention pass with
/// `DirectoryReplaced`, though its directory was still its own (found by
/// audit).
#[test]
fn a_second_writer_is_refused_after_the_lock_file_is_deleted_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("LOCK");
    let (mut first, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    first.append(1, b"x").unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(reader.writer_running(), Some(true), "deleted: readers still see the writer");
    let err = Journal::open(dir.path(), JournalOptions::new()).unwrap_err();
    assert!(matches!(&err, JournalError::Locked { .. }), "deleted: {err}");
    std::fs::write(&lock, "1\n").unwrap();
    assert_eq!(reader.writer_running(), Some(true), "replaced: readers still see the writer");
    let err = Journal::open(dir.path(), JournalOptions::new()).unwrap_err();
    assert!(matches!(&err, JournalError::Locked { .. }), "replaced: {err}");
    assert_eq!(first.append(2, b"y").unwrap(), 2, "the first writer goes on");
    // A live writer's journal, not a crashed one's: verify finds nothing wrong.
    let report = events_journal::verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    // Its directory is still its own: rolls and retention go on.
    first.prune().unwrap();
    first.roll().unwrap();
    assert_eq!(first.append(3, b"z").unwrap(), 3, "after a roll");
    drop(first);
    assert_eq!(reader.writer_running(), Some(false), "gone with the writer");
    let (second, _) = Journal::open(dir.path(), JournalOptions::new()).expect("free once the first is gone");
    assert_eq!(second.next_seq(), 4);
}

/// A directory deleted and made again under a running writer: a second
/// writer can open it (the first one's lock is on the deleted lock file),
/// so the first one stops at its next roll or retention pass with
/// `DirectoryReplaced` instead of creating its segment in the second one's
/// journal and removing the second one's segments by their names. Before,
/// the first writer's roll put a segment of its epoch there and its
/// retention deleted the second one's first segment: the second journal
/// then failed to open (`EpochMismatch`).
#[test]
fn a_writer_stops_when_its_directory_is_replaced_under_it() {
    use events_journal::Retention;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let opts = || JournalOptions::new().segment_bytes(512).retention(Retention::segments(2));
    let (mut first, _) = Journal::open(&dir, opts()).unwrap();
    for n in 0..3 {
        first.append(n, [7u8; 100]).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let (mut second, _) = Journal::open(&dir, opts()).unwrap();
    for n in 1..=3 {
        assert_eq!(second.append(n, [n as u8; 100]).unwrap(), n);
    }
    second.close().unwrap();

    let failed = (3..100).find_map(|n| first.append(n, [7u8; 100]).err());
    let Some(JournalError::DirectoryReplaced { dir: named }) = &failed else { panic!("{failed:?}") };
    assert_eq!(named, &dir);
    assert!(first.append(100, [7u8; 100]).is_err(), "the writer stays stopped");
    assert!(matches!(first.prune(), Err(JournalError::DirectoryReplaced { .. }) | Err(JournalError::Failed { .. })));
    drop(first);

    let (second, _) = Journal::open(&dir, opts()).expect("the second journal opens");
    let seqs: Vec<u64> = Reader::open(&dir).unwrap().read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    drop(second);
}

/// A journal in `dir` of 512-byte segments, two kept, `Never` synced, its
/// I/O through `plan`.
fn small_segments_never_synced(dir: &std::path::Path, plan: &events_journal::fault::FaultPlan) -> Journal {
    use events_journal::{Retention, SyncPolicy};
    let opts = JournalOptions::new()
        .segment_bytes(512)
        .retention(Retention::segments(2))
        .sync(SyncPolicy::Never)
        .faults(plan.clone());
    Journal::open(dir, opts).unwrap().0
}

/// The directory renamed away while a roll runs (here, while it publishes
/// the watermark, held 2 s), after the roll's own check passed: the retention pass
/// that ends the roll finds it and fails the writer, and the append that
/// rolled fails with it, its record not written. The roll had returned
/// `Ok` and the append gone on into the renamed directory: acknowledged
/// (`Ok(4)`) by a writer already failed.
#[test]
fn an_append_whose_roll_finds_the_directory_replaced_fails_unwritten() {
    use events_journal::fault::{Fault, Step};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, moved) = (tmp.path().join("journal"), tmp.path().join("moved"));
    let plan = events_journal::fault::FaultPlan::new();
    let mut journal = small_segments_never_synced(&dir, &plan);
    for n in 1..=3 {
        journal.append(n, [7u8; 100]).unwrap();
    }
    // The fourth record does not fit: its append rolls first.
    let before = plan.count(Step::Watermark);
    // Held until the renamer has renamed the directory.
    plan.inject(Step::Watermark, before, Fault::Hold);
    let renamer = std::thread::spawn({
        let (from, to) = (dir.clone(), moved.clone());
        move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while plan.count(Step::Watermark) == before {
                assert!(std::time::Instant::now() < deadline, "the roll never reached its watermark write");
                std::thread::yield_now();
            }
            std::fs::rename(from, to).unwrap();
            plan.release();
        }
    });
    let appended = journal.append(4, [7u8; 100]);
    renamer.join().unwrap();
    assert!(
        matches!(&appended, Err(JournalError::DirectoryReplaced { dir: named }) if *named == dir),
        "the append went on after its roll failed the writer, or failed with another error: {appended:?}"
    );
    assert!(journal.append(5, [7u8; 100]).is_err(), "the writer stays stopped");
    drop(journal);
    let seqs: Vec<u64> = Reader::open(&moved).unwrap().read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [1, 2, 3], "nothing after the failure was written");
}

/// The directory renamed away while an open is held at its seq lease's
/// write (the last time the open writes it, held until the rename): the open's retention
/// pass, which comes next, finds the directory replaced and the open is
/// refused with `DirectoryReplaced` naming it. It had opened a writer on
/// the renamed directory.
#[test]
fn an_open_whose_retention_pass_finds_the_directory_replaced_is_refused() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, moved) = (tmp.path().join("journal"), tmp.path().join("moved"));
    let (mut journal, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    journal.append(1, [7u8; 100]).unwrap();
    journal.close().unwrap();
    // Where the open's last lease write is, counted on an open that runs.
    let counted = FaultPlan::new();
    let opened = Journal::open(&dir, JournalOptions::new().faults(counted.clone()));
    let last = counted.count(Step::Lease) - 1;
    opened.unwrap().0.close().unwrap();

    let plan = FaultPlan::new();
    plan.inject(Step::Lease, last, Fault::Hold);
    let renamer = std::thread::spawn({
        let (from, to, plan) = (dir.clone(), moved.clone(), plan.clone());
        move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while plan.count(Step::Lease) <= last {
                assert!(std::time::Instant::now() < deadline, "the open never reached its last lease write");
                std::thread::yield_now();
            }
            std::fs::rename(from, to).unwrap();
            plan.release();
        }
    });
    let opened = Journal::open(&dir, JournalOptions::new().faults(plan.clone()));
    renamer.join().unwrap();
    assert_eq!(plan.fired(), [(Step::Lease, Fault::Hold)]);
    assert!(
        matches!(&opened, Err(JournalError::DirectoryReplaced { dir: named }) if *named == dir),
        "the open went on in a directory no longer at its path: {:?}",
        opened.map(|(j, _)| j.next_seq())
    );
    let seqs: Vec<u64> = Reader::open(&moved).unwrap().read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [1]);
}

/// The directory replaced while a roll's fdatasync runs (`Interval`, held
/// until the replacement is done), after the roll's own check passed: renamed away, and a journal of
/// another epoch made at the path with records 1..=3. The roll looks again
/// before it creates the new segment: it fails with `DirectoryReplaced`
/// and creates nothing there, so the other journal opens and reads
/// `[1, 2, 3]`. It had created its segment (of its epoch, first seq 4) in
/// the other journal, which then failed to open (`EpochMismatch`).
#[test]
fn a_roll_whose_fdatasync_outlasts_a_replacement_creates_nothing_in_the_other_journal() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    use events_journal::{Retention, SyncPolicy};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, moved) = (tmp.path().join("journal"), tmp.path().join("moved"));
    let plan = FaultPlan::new();
    let opts = JournalOptions::new()
        .segment_bytes(512)
        .retention(Retention::unlimited())
        .sync(SyncPolicy::Interval(std::time::Duration::from_secs(60)))
        .faults(plan.clone());
    let (mut journal, _) = Journal::open(&dir, opts).unwrap();
    for n in 1..=3 {
        journal.append(n, [7u8; 100]).unwrap();
    }
    let before = plan.count(Step::RollSync);
    plan.inject(Step::RollSync, before, Fault::Hold);
    let replacer = std::thread::spawn({
        let dir = dir.clone();
        move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while plan.count(Step::RollSync) == before {
                assert!(std::time::Instant::now() < deadline, "the roll never reached its fdatasync");
                std::thread::yield_now();
            }
            std::fs::rename(&dir, moved).unwrap();
            let (mut other, _) = Journal::open(&dir, JournalOptions::new().segment_bytes(512)).unwrap();
            for n in 1..=3 {
                other.append(n, [n as u8; 100]).unwrap();
            }
            other.close().unwrap();
            plan.release();
        }
    });
    let rolled = journal.roll();
    replacer.join().unwrap();
    assert!(matches!(&rolled, Err(JournalError::DirectoryReplaced { .. })), "{rolled:?}");
    drop(journal);
    let opened = Journal::open(&dir, JournalOptions::new().segment_bytes(512));
    assert!(opened.is_ok(), "the other journal opens: {:?}", opened.err());
    drop(opened);
    let seqs: Vec<u64> = Reader::open(&dir).unwrap().read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

/// The directory replaced while the sealer thread's tidy of a pruning roll
/// waits behind a slow seal (`Never`, the seal's fdatasync held until the replacement is done): the
/// tidy finds the directory another one and leaves the journal now at the
/// path alone. It had swept that journal's sidecar indexes named below the
/// old writer's first seq (here `…01.idx`) and unlinked its `.removed`
/// files.
#[test]
fn a_tidy_queued_before_a_replacement_leaves_the_other_journal_alone() {
    use events_journal::fault::{Fault, Step};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, moved) = (tmp.path().join("journal"), tmp.path().join("moved"));
    let plan = events_journal::fault::FaultPlan::new();
    let mut journal = small_segments_never_synced(&dir, &plan);
    for n in 1..=12 {
        journal.append(n, [7u8; 100]).unwrap();
    }
    assert!(journal.first_seq() > 1, "retention pruned");
    // The next roll's seal stalls on the sealer thread; its tidy waits behind it.
    let stalled = plan.count(Step::RollSync);
    plan.inject(Step::RollSync, stalled, Fault::Hold);
    let (rolls, first) = (journal.stats().rolls, journal.first_seq());
    let mut n = 13;
    while journal.stats().rolls == rolls {
        journal.append(n, [7u8; 100]).unwrap();
        n += 1;
    }
    assert!(journal.first_seq() > first, "the roll pruned");
    std::fs::rename(&dir, &moved).unwrap();
    let (mut other, _) = Journal::open(&dir, JournalOptions::new()).unwrap();
    other.append(1, b"other").unwrap();
    other.close().unwrap();
    let (sidecar, removed) = (dir.join("00000000000000000001.idx"), dir.join("00000000000000000007.seg.removed"));
    std::fs::write(&sidecar, b"an index of the other journal").unwrap();
    std::fs::write(&removed, b"a segment the other journal is removing").unwrap();
    let tidy_errors = journal.stats().prune_errors;
    plan.release(); // the seal goes on, then the tidy behind it
    let _ = journal.sync(); // waits for the sealer's jobs
    assert!(journal.stats().prune_errors > tidy_errors, "the tidy ran after the replacement and skipped it");
    assert!(sidecar.exists(), "the other journal's sidecar was swept");
    assert!(removed.exists(), "the other journal's .removed file was unlinked");
}
