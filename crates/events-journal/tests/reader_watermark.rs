//! The durable watermark from a reader's side: while a writer runs, a reader
//! never yields a record whose append has not returned (a write whose fsync
//! failed, or a write that "crashed" before its fsync), and yields the real
//! record for that seq after reopen; with the writer gone, everything
//! recovery keeps is readable; and a reader never faults (SIGBUS) when a file
//! it mapped is cut under it, checked in a child process whose exit status
//! would show the signal.

mod support;

use std::io::Write;
use std::path::Path;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalError, JournalOptions, ReadError, Reader, RecoveryMode, SyncPolicy, WriterState};
use support::{assert_records, payload, read_all, ts};

/// Held by every test of this file: a child spawned by one test shares the
/// `LOCK` file description of a journal another test has open until it
/// `exec`s (the documented fork caveat of the OFD lock), which can make that
/// test's drop-then-reopen see `Locked`. Tests that fork and tests that
/// reopen take turns instead of racing.
static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    FORKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn options(plan: &FaultPlan) -> JournalOptions {
    JournalOptions::new().sync(SyncPolicy::Always).faults(plan.clone())
}

/// A writer under `Never` (`opts` otherwise) that appends records 1..=`n`
/// (`payload(seq)`) and is killed right after writing record `n + 1`
/// (written, never acknowledged): no writer runs, and the watermark says
/// `Open`.
fn killed_writer(dir: &Path, opts: JournalOptions, n: u64, payload: impl Fn(u64) -> Vec<u8>) {
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir, opts.sync(SyncPolicy::Never).faults(plan.clone())).unwrap();
    for seq in 1..=n {
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
    plan.inject_next(Step::AppendWrite, Fault::CrashAfter);
    assert!(j.append(ts(n + 1), payload(n + 1)).is_err());
    drop(j);
}

fn append_n(j: &mut Journal, n: u64) {
    for _ in 0..n {
        let seq = j.next_seq();
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

/// A batch written whose fdatasync failed is never read, even while it
/// is still in the file (the reader looks while the writer's cut-back is
/// held); the next open gives its seq to the real record. (It had looked
/// only after the cut-back, so the watermark's bound went untested there;
/// found by audit.)
#[test]
fn a_batch_whose_fsync_failed_is_never_read_and_its_seq_gets_the_real_record_after_reopen() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&plan)).unwrap();
    append_n(&mut j, 5);
    let reader = Reader::open(dir.path()).unwrap();
    let mut follower = reader.read_since(0).unwrap();
    assert_eq!(follower.by_ref().take(5).count(), 5);

    // The write reaches the file, the fsync fails: the writer cuts it back,
    // held before the cut while the readers look (the record is in the
    // file then; after the cut, only the cut-back would be tested).
    plan.inject_next(Step::AppendSync, Fault::Errno(libc::EIO));
    plan.inject_next(Step::Truncate, Fault::Hold);
    let truncates = plan.count(Step::Truncate);
    let appending = std::thread::spawn(move || {
        let refused = j.append(ts(6), b"phantom");
        (j, refused)
    });
    while plan.count(Step::Truncate) == truncates {
        assert!(!appending.is_finished(), "the append ended before its cut-back");
        std::thread::yield_now();
    }
    assert!(follower.next().is_none(), "the follower saw a record whose fsync failed");
    assert_records(&read_all(&reader, 0), 1, 5);
    assert_eq!(reader.last_seq().unwrap(), 5);
    assert_eq!(reader.read_since(5).unwrap().count(), 0, "a read after 5 got the record in the file");
    assert!(!appending.is_finished(), "still held in its cut-back");
    plan.release();
    let (j, refused) = appending.join().unwrap();
    assert!(matches!(refused, Err(JournalError::Io { .. })), "{refused:?}");
    // Cut back: a cursor of 6 is ahead (while the record was in the file,
    // it was not known to be: `beyond_watermark`).
    assert!(matches!(reader.read_since(6), Err(ReadError::Ahead { latest: 5 })));
    drop(j);

    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(j.append(ts(6), payload(6)).unwrap(), 6);
    let got = read_all(&reader, 5);
    assert_records(&got, 6, 6);
    j.close().unwrap();
}

#[test]
fn written_but_unacknowledged_records_wait_for_the_writer_then_are_served_as_recovery_keeps_them() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&plan)).unwrap();
    append_n(&mut j, 3);
    // The "process" dies right after the write, before the fsync returns:
    // seq 4 is in the file, never acknowledged.
    plan.inject_next(Step::AppendWrite, Fault::CrashAfter);
    assert!(j.append(ts(4), payload(4)).is_err());
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.writer_running(), Some(true));
    assert_records(&read_all(&reader, 0), 1, 3);
    assert_eq!(reader.watermark().unwrap().map(|w| (w.state, w.seq)), Some((WriterState::Open, 3)));

    // The writer is gone (its lock released): what recovery keeps is served.
    drop(j);
    assert_eq!(reader.writer_running(), Some(false));
    assert_records(&read_all(&reader, 0), 1, 4);
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(j.next_seq(), 5, "a seq a reader was handed is never reused");
    assert_records(&read_all(&reader, 0), 1, 4);
    j.close().unwrap();
    assert_eq!(reader.watermark().unwrap().map(|w| (w.state, w.seq)), Some((WriterState::Closed, 4)));
}

/// A reader that found no writer running (it serves what recovery keeps,
/// from a private copy of the newest segment) while a new writer opens and
/// writes a batch it has not synced yet, between the reader's look at the
/// lock and its copy: the reader looks again and serves only what that
/// writer acknowledged. It had served the new writer's unsynced record,
/// whose seq a failed fsync or a power loss would give to another.
#[test]
fn a_writer_that_starts_during_a_crashed_writers_read_is_not_read_past_its_watermark() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&plan)).unwrap();
    append_n(&mut j, 3);
    plan.inject_next(Step::Sync, Fault::CrashBefore);
    drop(j); // the process died: the watermark still says `Open`
    let reader_plan = FaultPlan::new();
    // Held between its look at the lock (no writer) and its copy of the
    // newest segment until the new writer has written.
    reader_plan.inject_next(Step::ReaderCopy, Fault::Hold);
    let reader = Reader::open_with_faults(dir.path(), reader_plan.clone()).unwrap();
    let read = std::thread::spawn(move || {
        reader.read_since(0).unwrap().map(|r| r.map(|r| r.seq())).collect::<Result<Vec<_>, _>>()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reader_plan.count(Step::ReaderCopy) == 0 {
        assert!(std::time::Instant::now() < deadline, "the reader never reached its copy of the dead writer's tail");
        std::thread::yield_now();
    }
    // While the reader is held there: a new writer, one record written, not synced.
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Always)).unwrap();
    assert_eq!(j.write_batch([(ts(4), payload(4))]).unwrap(), 4..=4);
    assert!(!read.is_finished(), "the reader went on before the new writer wrote");
    reader_plan.release();
    assert_eq!(read.join().unwrap().unwrap(), [1, 2, 3], "served a record its writer has not acknowledged");
    j.commit().unwrap();
    j.close().unwrap();
}

#[test]
fn a_refused_open_leaves_the_watermark_as_it_was() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    append_n(&mut j, 2);
    j.close().unwrap();
    let before = std::fs::read(dir.path().join(events_journal::WATERMARK_FILE)).unwrap();
    let wrong_codec = JournalOptions::new().codec_tag(99);
    assert!(matches!(Journal::open(dir.path(), wrong_codec), Err(JournalError::CodecTagMismatch { .. })));
    assert_eq!(std::fs::read(dir.path().join(events_journal::WATERMARK_FILE)).unwrap(), before);
}

/// An open refused after recovery (its sync of the sealed segments a
/// killed writer left fails: `EIO`) leaves the watermark as it found it,
/// the dead writer's `Open` record, so readers go on treating that writer
/// as dead. The refused writer's drop had published `Closed` for a writer
/// that never opened (and recorded the lease closed).
#[test]
fn an_open_refused_after_recovery_leaves_the_watermark_as_it_was() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // A roll at each record.
    killed_writer(dir.path(), JournalOptions::new().segment_bytes(4096), 3, |seq| vec![seq as u8; 3000]);
    let path = dir.path().join(events_journal::WATERMARK_FILE);
    let before = std::fs::read(&path).unwrap();
    assert_eq!(Reader::open(dir.path()).unwrap().watermark().unwrap().map(|w| w.state), Some(WriterState::Open));

    let plan = FaultPlan::new();
    plan.inject_next(Step::SealedSync, Fault::Errno(libc::EIO));
    assert!(Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never).faults(plan.clone())).is_err());
    assert_eq!(plan.fired(), [(Step::SealedSync, Fault::Errno(libc::EIO))]);
    assert_eq!(std::fs::read(&path).unwrap(), before, "the watermark is the dead writer's again");
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(j.next_seq(), 5);
    drop(j);
}

/// As above, for the open's last steps: its seq lease's write and its
/// `Open` publication (each the last time the open reaches that step, as
/// counted on a copy that opens): refused, the watermark is the dead
/// writer's again byte for byte, and the next open recovers as after the
/// crash. A refusal at the publication had left this open's `Recovering`
/// record behind.
#[test]
fn an_open_refused_at_its_lease_or_its_publication_leaves_the_watermark_as_it_was() {
    let _serial = serial();
    let killed = || {
        let dir = tempfile::tempdir().unwrap();
        killed_writer(dir.path(), JournalOptions::new().segment_bytes(4096), 3, |seq| vec![seq as u8; 3000]);
        dir
    };
    for step in [Step::Lease, Step::Watermark] {
        let control = killed();
        let counted = FaultPlan::new();
        let opened =
            Journal::open(control.path(), JournalOptions::new().sync(SyncPolicy::Never).faults(counted.clone()));
        let last = counted.count(step) - 1;
        drop(opened.unwrap());

        let dir = killed();
        let path = dir.path().join(events_journal::WATERMARK_FILE);
        let before = std::fs::read(&path).unwrap();
        let plan = FaultPlan::new();
        plan.inject(step, last, Fault::Errno(libc::EIO));
        let refused = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never).faults(plan.clone()));
        assert!(refused.is_err(), "{step:?}");
        assert_eq!(plan.fired(), [(step, Fault::Errno(libc::EIO))]);
        assert_eq!(std::fs::read(&path).unwrap(), before, "{step:?}: the watermark is the dead writer's again");
        let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
        assert_eq!(j.next_seq(), 5, "{step:?}");
        drop(j);
    }
}

const SHRINK_CHILD: &str = "EVENTS_JOURNAL_SHRINK_CHILD";

/// The reproduction: one 4,000-byte record, then 8 KiB of garbage after it;
/// an iterator reads the record; an open truncates the garbage; the
/// iterator goes on. Run as a child: a SIGBUS would kill it.
fn shrink_under_an_iterator(dir: &Path, keep_watermark: bool) {
    let (mut j, _) = Journal::open(dir, JournalOptions::new()).unwrap();
    j.append(1, [7u8; 4000]).unwrap();
    j.close().unwrap();
    let seg = support::segments(dir).pop().unwrap();
    std::fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&[0xA5; 8192]).unwrap();
    if !keep_watermark {
        // A journal whose writer crashed before it ever published.
        std::fs::remove_file(dir.join(events_journal::WATERMARK_FILE)).unwrap();
    }
    let reader = Reader::open(dir).unwrap();
    let mut records = reader.read_since(0).unwrap();
    assert_eq!(records.next().unwrap().unwrap().payload().len(), 4000);
    let (j, _) = Journal::open(dir, JournalOptions::new()).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 4088, "recovery cut the garbage");
    assert!(records.next().is_none());
    drop(j);
}

#[test]
fn a_file_cut_under_a_live_iterator_never_faults_the_reader() {
    let _serial = serial();
    if let Ok(mode) = std::env::var(SHRINK_CHILD) {
        let dir = tempfile::tempdir().unwrap();
        shrink_under_an_iterator(dir.path(), mode == "watermark");
        println!("CHILD-OK");
        return;
    }
    for mode in ["watermark", "no-watermark"] {
        child_survives("a_file_cut_under_a_live_iterator_never_faults_the_reader", (SHRINK_CHILD, mode));
    }
}

/// Runs test `name` as a child with `env` set, and checks that it printed
/// `CHILD-OK` and exited 0 (a signal, SIGBUS say, is a fault).
fn child_survives(name: &str, env: (&str, &str)) {
    let out = support::child_command(name, env).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD-OK"),
        "{}: child ended with {:?} (a signal is a fault)\n{stdout}\n{}",
        env.1,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

const SALVAGE_CHILD: &str = "EVENTS_JOURNAL_SALVAGE_CHILD";

/// Two 4,000-byte records, closed cleanly; a byte of the second flipped
/// (damage through acknowledged records, at the end of the newest
/// segment); an iterator reads the first; a `TruncateAtCorruption` open
/// cuts the second; the iterator goes on over the bytes it mapped. With
/// `deleted_newest`, the two records fill a sealed segment (mapped whole)
/// and the segment after it is deleted by hand before the open, so the
/// damaged one is the newest and the watermark names a later one. Run as
/// a child: a SIGBUS would kill it.
fn salvage_under_an_iterator(dir: &Path, deleted_newest: bool) {
    use std::os::unix::fs::FileExt;
    let (mut j, _) = Journal::open(dir, JournalOptions::new().segment_bytes(8192)).unwrap();
    j.append(1, [7u8; 4000]).unwrap();
    j.append(2, [8u8; 4000]).unwrap();
    if deleted_newest {
        j.append(3, [9u8; 4000]).unwrap(); // rolls: the first two are sealed
    }
    j.close().unwrap();
    let seg = support::segments(dir).remove(0);
    // The second frame starts at 64 + 24 + 4,000 = 4,088, across a page boundary.
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&[0x5A], 4088 + 24 + 100).unwrap();
    let reader = Reader::open(dir).unwrap();
    let mut records = reader.read_since(0).unwrap();
    assert_eq!(records.next().unwrap().unwrap().payload().len(), 4000);
    if deleted_newest {
        std::fs::remove_file(support::segments(dir).pop().unwrap()).unwrap();
    }
    let opts = JournalOptions::new().recovery(RecoveryMode::TruncateAtCorruption);
    let (j, _) = Journal::open(dir, opts).unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), 4088, "recovery cut the damaged record");
    // The old bytes: the damaged frame is the iterator's error (or, its
    // segment now sealed short of the next one, the gap to it), never a
    // fault, and never a quiet end.
    let next = records.next();
    assert!(matches!(next, Some(Err(JournalError::Corrupt { .. } | JournalError::Gap { .. }))), "{next:?}");
    drop(j);
}

/// A salvage mode cuts acknowledged records at the end of the newest
/// segment, which a reader in another process has mapped (up to the
/// watermark; or whole, when it was sealed and the segment after it was
/// deleted by hand): the file is replaced by a copy of its valid prefix (a
/// rename), and the reader reading the old bytes is not faulted. It had
/// been truncated in place: the reader's next step touched a page past
/// the new end and died of SIGBUS.
#[test]
fn a_salvage_cut_through_acknowledged_records_never_faults_a_reader() {
    let _serial = serial();
    if let Ok(mode) = std::env::var(SALVAGE_CHILD) {
        let dir = tempfile::tempdir().unwrap();
        salvage_under_an_iterator(dir.path(), mode == "deleted-newest");
        println!("CHILD-OK");
        return;
    }
    for mode in ["newest", "deleted-newest"] {
        child_survives("a_salvage_cut_through_acknowledged_records_never_faults_a_reader", (SALVAGE_CHILD, mode));
    }
}

#[test]
fn a_failed_watermark_write_never_fails_the_append_and_readers_only_lag() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(dir.path(), options(&plan)).unwrap();
    append_n(&mut j, 2);
    plan.inject_next(Step::Watermark, Fault::Errno(libc::EIO));
    assert_eq!(j.append(ts(3), payload(3)).unwrap(), 3, "the record is durable; only its publication failed");
    assert_eq!(j.stats().watermark_errors, 1);
    let reader = Reader::open(dir.path()).unwrap();
    assert_records(&read_all(&reader, 0), 1, 2); // behind, never ahead
    append_n(&mut j, 1);
    assert_records(&read_all(&reader, 0), 1, 4);
    j.close().unwrap();
}

/// A dead writer's newest segment is read from a private copy. Made sparse
/// and 1 TiB long (damage, or a hostile file: `truncate -s 1T`), its copy
/// had been asked of the allocator at the file's length, which aborts the
/// reader's process; it now holds what the file holds before its first
/// hole, and every record is served.
#[test]
fn a_dead_writers_sparse_newest_segment_is_read_without_copying_its_length() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    killed_writer(dir.path(), JournalOptions::new(), 3, payload);
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.writer_running(), Some(false));
    let (_, newest) = reader.segments().unwrap().pop().unwrap();
    std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(1 << 40).unwrap();

    assert_records(&read_all(&reader, 0), 1, 4);
    assert_eq!(reader.last_seq().unwrap(), 4);
    // `verify` reads the newest segment the same way: every record, and
    // the zeros after them are what a crash leaves of reserved space.
    let report = events_journal::verify(dir.path()).unwrap();
    assert_eq!((report.records, report.last_seq, report.problems.len()), (4, Some(4), 0), "{report:?}");
}

/// A dead writer's newest segment made sparse and 1 TiB long: the next
/// writer's open recovers it as a torn tail (the holes read as zeros) and
/// goes on at 5, in about the time its data takes. Recovery's scan had
/// walked every offset of the terabyte looking for valid frames after the
/// first zero one, for tens of minutes with the lock held.
#[test]
fn a_sparse_terabyte_newest_segment_is_recovered_in_the_time_its_data_takes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    killed_writer(dir.path(), JournalOptions::new(), 3, payload);
    let newest = support::segments(dir.path()).pop().unwrap();
    std::fs::OpenOptions::new().write(true).open(&newest).unwrap().set_len(1 << 40).unwrap();
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(Journal::open(&path, JournalOptions::new()).map(|(j, _)| j.next_seq())));
    let next = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the open took over a minute");
    assert_eq!(next.unwrap(), 5);
    assert!(std::fs::metadata(&newest).unwrap().len() < 1 << 20, "the torn tail was cut");
}

/// A newest segment of no record whose header is torn (all zeros), made
/// sparse and 1 TiB long: the open finds nothing but zeros after the header
/// by reading only what comes before the holes, rewrites the header and
/// goes on at its seq, in about the time its data takes. It had read the
/// whole terabyte of zeros.
#[test]
fn a_sparse_terabyte_newest_segment_with_a_torn_header_is_opened_in_the_time_its_data_takes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    append_n(&mut j, 3);
    j.roll().unwrap();
    j.close().unwrap();
    let newest = support::segments(dir.path()).pop().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&newest).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0u8; 64], 0).unwrap();
    file.set_len(1 << 40).unwrap();
    drop(file);
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(Journal::open(&path, JournalOptions::new()).map(|(j, _)| j.next_seq())));
    let next = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the open took over a minute");
    assert_eq!(next.unwrap(), 4);
}

/// A dead writer's newest segment whose last record ends in zeros a file
/// system stored as a hole (here punched, through the file's end): that
/// record is data before the hole, and recovery's scan, bounded by where
/// the data ends, still covers the largest frame past it, so the record is
/// kept. Bounded at the hole alone, the scan cut the record as a torn tail.
#[test]
fn a_record_ending_in_a_hole_is_kept_by_recovery() {
    use events_journal::format::{FRAME_HEADER_LEN, HEADER_LEN};
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let start4: usize = HEADER_LEN + (1..=3).map(|s| FRAME_HEADER_LEN + payload(s).len()).sum::<usize>();
    let end4 = (start4 + FRAME_HEADER_LEN + 16384).next_multiple_of(4096);
    let zeros = end4 - start4 - FRAME_HEADER_LEN;
    killed_writer(dir.path(), JournalOptions::new(), 3, |seq| if seq == 4 { vec![0; zeros] } else { payload(seq) });
    let newest = support::segments(dir.path()).pop().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&newest).unwrap();
    file.set_len(end4 as u64).unwrap(); // no reserved space after the record
    let hole = (start4 + FRAME_HEADER_LEN).next_multiple_of(4096);
    // SAFETY: a valid descriptor; the range lies within the file.
    let punched = unsafe {
        libc::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            hole as libc::off_t,
            (end4 - hole) as libc::off_t,
        )
    };
    assert_eq!(punched, 0, "punch a hole: {}", std::io::Error::last_os_error());
    drop(file);
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.writer_running(), Some(false));
    assert_eq!(reader.last_seq().unwrap(), 4, "a reader of the dead writer's copy reads record 4");
    let seqs: Vec<u64> = read_all(&reader, 0).iter().map(|r| r.seq()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    let (j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert_eq!(j.next_seq(), 5, "record 4, ending in the hole, was kept");
}

/// A sealed segment made sparse and 1 TiB long: the open that reads it
/// whole (its last frame is not where the next segment's name says) fails
/// with an error naming it. Its image had been allocated at the file's
/// length, which aborts the process.
#[test]
fn a_sparse_terabyte_sealed_segment_is_an_open_error_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(8192);
    let (mut j, _) = Journal::open(dir.path(), opts()).unwrap();
    for seq in 1..=3u64 {
        j.append(ts(seq), [seq as u8; 4000]).unwrap();
    }
    j.close().unwrap();
    let sealed = support::segments(dir.path()).remove(0);
    std::fs::OpenOptions::new().write(true).open(&sealed).unwrap().set_len(1 << 40).unwrap();
    match Journal::open(dir.path(), opts()) {
        Err(JournalError::Io { path, .. }) => assert_eq!(path, sealed),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("opened"),
    }
}

/// The same sealed segment, 1 TiB and sparse, under readers and `verify`:
/// reads from the start and from a cursor end (the zeros after its last
/// frame hold no frame: a torn tail, as recovery cuts it), and `verify`
/// reports it, each in a moment. The search for frames after the damage
/// (and for the segment's last frame, against the next one's name) tried
/// every offset of the terabyte: hours at 100% CPU, at every poll.
#[test]
fn a_sparse_terabyte_sealed_segment_costs_readers_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) =
        Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never).segment_bytes(8192)).unwrap();
    for seq in 1..=3u64 {
        j.append(ts(seq), [seq as u8; 4000]).unwrap();
    }
    j.close().unwrap();
    let sealed = support::segments(dir.path()).remove(0);
    std::fs::OpenOptions::new().write(true).open(&sealed).unwrap().set_len(1 << 40).unwrap();
    let path = dir.path().to_path_buf();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let reader = Reader::open(&path).unwrap();
        let seqs = |from| reader.read_since(from).unwrap().map(|r| r.unwrap().seq()).collect::<Vec<_>>();
        let read = (seqs(0), seqs(2));
        let verified = events_journal::verify(&path)
            .map(|report| (report.records, report.problems.iter().map(|p| p.what.clone()).collect::<Vec<_>>()));
        let _ = done.send((read, verified));
    });
    // A bound on a hang, not a timing: each of these takes milliseconds.
    let (read, verified) =
        finished.recv_timeout(std::time::Duration::from_secs(120)).expect("the reads and verify end");
    assert_eq!(read, (vec![1, 2, 3], vec![3]));
    let (records, problems) = verified.unwrap();
    assert_eq!(records, 3);
    assert_eq!(problems.len(), 1, "the torn tail of a sealed segment, reported: {problems:?}");
}

/// A dead writer's newest segment with a hole punched in its fifth record
/// and data (valid records) after the hole, as a power loss can leave
/// blocks written out of order: the copy goes on past the hole, and the
/// read says what recovery says, damage with valid frames after it. The
/// copy had stopped at the hole: the read ended there silently.
#[test]
fn a_hole_with_records_after_it_is_damage_not_the_end() {
    use std::os::fd::AsRawFd;
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    killed_writer(dir.path(), JournalOptions::new(), 20, |seq| vec![seq as u8; 4000]);
    let seg = support::segments(dir.path()).pop().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    // Frames of 4,024 bytes from 64: the fifth spans 16,160..20,184; one block inside it.
    // SAFETY: `fallocate` on a descriptor this test owns, within its file.
    let punched = unsafe {
        libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 16384, 4096)
    };
    assert_eq!(punched, 0, "{}", std::io::Error::last_os_error());
    let reader = Reader::open(dir.path()).unwrap();
    let mut records = reader.read_since(0).unwrap();
    for seq in 1..=4 {
        assert_eq!(records.next().unwrap().unwrap().seq(), seq);
    }
    match records.next() {
        Some(Err(JournalError::Corrupt { seq: Some(5), .. })) => {}
        other => panic!("expected the damage after seq 4, got {other:?}"),
    }
}

/// A dead writer's newest segment (read from a private copy) with a byte
/// flipped in the fifth of its records and valid ones after it: not a
/// torn tail, which recovery would cut, but damage, which it refuses. A
/// read through it is `JournalError::Corrupt` naming the file and the
/// frame's offset, as the same damage in records a running writer
/// acknowledged is. It had been read as the journal's end: a cursor past
/// it got `Ahead` (a follower reset and replayed from the start), and a
/// read from before it stopped there silently.
#[test]
fn damage_with_valid_records_after_it_in_a_dead_writers_segment_is_corrupt_not_the_end() {
    use std::os::unix::fs::FileExt;
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    killed_writer(dir.path(), JournalOptions::new(), 20, |seq| vec![seq as u8; 100]);
    let seg = support::segments(dir.path()).pop().unwrap();
    // Frames of 124 bytes after the 64-byte header: the fifth starts at 560.
    let fifth = 64 + 4 * 124;
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&[0], fifth + 24 + 50).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.writer_running(), Some(false));

    let corrupt_at_the_fifth = |e: &JournalError| matches!(e, JournalError::Corrupt { path, offset, seq: Some(5), .. } if *path == seg && *offset == fifth);
    match reader.read_since(10) {
        Err(ReadError::Journal(e)) => assert!(corrupt_at_the_fifth(&e), "{e}"),
        other => panic!("expected the damage, got {other:?}"),
    }
    match reader.last_seq() {
        Err(e) => assert!(corrupt_at_the_fifth(&e), "{e}"),
        other => panic!("expected the damage, got {other:?}"),
    }
    let mut records = reader.read_since(0).unwrap();
    for seq in 1..=4 {
        assert_eq!(records.next().unwrap().unwrap().seq(), seq);
    }
    match records.next() {
        Some(Err(e)) => assert!(corrupt_at_the_fifth(&e), "{e}"),
        other => panic!("expected the damage after seq 4, got {other:?}"),
    }
    // A torn tail (nothing valid after it) still ends the read: the
    // records up to it are served.
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&[5], fifth + 24 + 50).unwrap();
    let tail = 64 + 20 * 124; // the 21st, never acknowledged
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().write_all_at(&[0; 8], tail + 8).unwrap();
    let seqs: Vec<u64> = read_all(&reader, 0).iter().map(|r| r.seq()).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

/// Bytes this process has read through `read(2)` and friends so far
/// (`rchar` of `/proc/self/io`, page-cache hits included).
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).unwrap().trim().parse().unwrap()
}

/// A follower polls a dead writer's journal (its newest segment ~4 MB,
/// read from a private copy): the copy is made once and reused while the
/// file and the watermark stay as they are. It had read the whole file
/// again at every poll (every 20 ms by default, per stream): ~200 MB for
/// the 50 polls here.
#[test]
fn a_dead_writers_newest_segment_is_copied_once_while_it_is_unchanged() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    killed_writer(dir.path(), JournalOptions::new(), 1000, |seq| vec![seq as u8; 4000]);
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.writer_running(), Some(false));
    assert_eq!(reader.last_seq().unwrap(), 1001);

    let before = bytes_read();
    for _ in 0..50 {
        assert_eq!(reader.last_seq().unwrap(), 1001);
        assert!(reader.read_since(1001).unwrap().next().is_none());
    }
    let read = bytes_read() - before;
    assert!(read < 8 << 20, "50 polls read {read} bytes");

    // A writer that comes, appends and dies too: the next look copies the
    // file again and serves what it holds now.
    let plan = FaultPlan::new();
    let (mut j, _) =
        Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never).faults(plan.clone())).unwrap();
    j.append(ts(1002), [2; 4000]).unwrap();
    plan.inject_next(Step::AppendWrite, Fault::CrashAfter);
    assert!(j.append(ts(1003), [3; 4000]).is_err());
    drop(j);
    assert_eq!(reader.writer_running(), Some(false));
    assert_eq!(reader.last_seq().unwrap(), 1003);
    assert_eq!(reader.read_since(1000).unwrap().map(|r| r.unwrap().seq()).collect::<Vec<_>>(), [1001, 1002, 1003]);
}

/// `Records::next_seq` of a read that finds nothing new (a caught-up poll,
/// the commonest read) is the cursor's next seq, as after a read that
/// yielded records. It was 0: a caller resuming from `next_seq() - 1`
/// overflowed, or in a release build asked for `u64::MAX` and got `Ahead`.
#[test]
fn next_seq_of_a_read_with_nothing_new_is_the_cursors_next() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.read_since(0).unwrap().next_seq(), 1, "an empty journal");
    append_n(&mut j, 3);
    let mut all = reader.read_since(0).unwrap();
    while all.next().is_some() {}
    assert_eq!(all.next_seq(), 4);
    assert_eq!(reader.read_since(3).unwrap().next_seq(), 4, "caught up, beside a running writer");
    j.close().unwrap();
    assert_eq!(reader.read_since(3).unwrap().next_seq(), 4, "caught up, the writer closed");
}

/// A salvage open (`TruncateAtCorruption`) of a cleanly closed journal
/// whose second record was damaged cuts the segment back to the first
/// record, then is refused (its last lease write fails). The watermark it
/// leaves is its own synced `Recovering` record, not the old `Closed` one:
/// that one names seq 3 in a segment now one record long, and a reader
/// trusting it (no writer holds the lock) answered a read after seq 2 with
/// `Ahead` (a stream then rewound and read the journal again) instead of
/// the gap recovery made (found by audit).
#[test]
fn a_refused_salvage_open_leaves_no_closed_watermark_naming_records_it_cut() {
    let _serial = serial();
    let closed = || closed_with_a_byte_flipped_in_record(2);
    let control = closed();
    let counted = FaultPlan::new();
    let opened = Journal::open(control.path(), salvage(&counted)).unwrap();
    let last = counted.count(Step::Lease) - 1;
    drop(opened);

    let dir = closed();
    let plan = FaultPlan::new();
    plan.inject(Step::Lease, last, Fault::Errno(libc::EIO));
    assert!(Journal::open(dir.path(), salvage(&plan)).is_err());
    assert_eq!(plan.fired(), [(Step::Lease, Fault::Errno(libc::EIO))]);
    let reader = Reader::open(dir.path()).unwrap();
    assert_ne!(reader.watermark().unwrap().map(|wm| wm.state), Some(WriterState::Closed));
    let read = reader.read_since(2).map(|mut records| records.next().map(|r| r.map(|r| r.seq())));
    assert!(!matches!(read, Err(ReadError::Ahead { .. })), "{read:?}");
}

/// A cleanly closed journal of records 1..=3, a byte of record `n`'s
/// payload flipped.
fn closed_with_a_byte_flipped_in_record(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    for seq in 1..=3 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    j.close().unwrap();
    let seg = support::segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let before: usize = (1..n).map(|seq| payload(seq).len()).sum();
    let at = events_journal::format::HEADER_LEN + n as usize * events_journal::format::FRAME_HEADER_LEN + before + 1;
    bytes[at] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    dir
}

/// An open in `TruncateAtCorruption`, through `plan`.
fn salvage(plan: &FaultPlan) -> JournalOptions {
    JournalOptions::new().recovery(RecoveryMode::TruncateAtCorruption).faults(plan.clone())
}

/// As above, the damage in the last record (3): the refused salvage cut it
/// and left its `Recovering` record naming seq 3 (what the next writer
/// will skip past), no writer running. A reader at 3 waits (nothing to
/// read, no `Ahead`), and the journal's last seq stays 3. It had been
/// `Ahead { latest: 2 }`: a follower rewound and read 1 and 2 again, a
/// replicator stopped, and `last_seq` went back from 3 to 2.
#[test]
fn a_dead_writers_watermark_past_the_records_left_is_not_ahead() {
    let _serial = serial();
    let closed = || closed_with_a_byte_flipped_in_record(3);
    let control = closed();
    let (opened, report) = Journal::open(control.path(), salvage(&FaultPlan::new())).unwrap();
    assert_eq!(report.next_seq, 4, "the next writer skips past seq 3");
    drop(opened);

    // Refused at its first sync, after the cut and before it skips past 3.
    let dir = closed();
    let plan = FaultPlan::new();
    plan.inject(Step::Sync, 0, Fault::Errno(libc::EIO));
    assert!(Journal::open(dir.path(), salvage(&plan)).is_err());
    assert_eq!(support::segments(dir.path()).len(), 1, "no segment after the cut");
    let reader = Reader::open(dir.path()).unwrap();
    let read = reader.read_since(3).map(|mut records| records.next().map(|r| r.map(|r| r.seq())));
    assert!(matches!(read, Ok(None)), "{read:?}");
    assert_eq!(reader.last_seq().unwrap(), 3);
    let seqs: Vec<u64> = reader.read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [1, 2]);
}

/// As above, a salvage open refused at each step it takes, in turn: the
/// segment it makes for the damaged record's successor, the lease's open,
/// the rebuild's or the cut's writes, every directory fsync. Whatever the
/// step, a reader is never told the journal ends before seq 3 (`Ahead`
/// at 2), a `Closed` record left in place names bytes its segment still
/// holds, and a refusal that changed no segment leaves the watermark's
/// bytes as they were. Refused at the lease's open or inside recovery, the
/// open had put the last writer's `Closed` record back over a segment the
/// salvage had cut: only a refusal in its last steps kept its own.
#[test]
fn a_salvage_open_refused_at_any_step_leaves_no_closed_watermark_naming_records_it_cut() {
    use std::os::unix::fs::MetadataExt;
    let _serial = serial();
    let closed = || closed_with_a_byte_flipped_in_record(2);
    let control = closed();
    let counted = FaultPlan::new();
    drop(Journal::open(control.path(), salvage(&counted)).unwrap());
    let steps = [
        Step::SegmentCreate,
        Step::HeaderWrite,
        Step::HeaderSync,
        Step::Lease,
        Step::Salvage,
        Step::Truncate,
        Step::TruncateSync,
        Step::DirSync,
    ];
    let state = |segments: &[std::path::PathBuf]| {
        let meta = |s: &std::path::PathBuf| std::fs::metadata(s).map(|m| (m.len(), m.ino())).ok();
        segments.iter().map(|s| (s.clone(), meta(s))).collect::<Vec<_>>()
    };
    let (mut restored, mut kept) = (0, 0);
    for step in steps {
        for at in 0..counted.count(step) {
            let dir = closed();
            let found = state(&support::segments(dir.path()));
            let watermark = std::fs::read(dir.path().join("WATERMARK")).unwrap();
            let plan = FaultPlan::new();
            plan.inject(step, at, Fault::Errno(libc::EIO));
            if Journal::open(dir.path(), salvage(&plan)).is_ok() {
                continue; // a step whose failure the open goes past
            }
            assert_eq!(plan.fired(), [(step, Fault::Errno(libc::EIO))], "{step:?} #{at}");
            let reader = Reader::open(dir.path()).unwrap();
            let read = reader.read_since(2).map(|mut records| records.next().map(|r| r.map(|r| r.seq())));
            assert!(!matches!(read, Err(ReadError::Ahead { .. })), "{step:?} #{at}: {read:?}");
            let wm = reader.watermark().unwrap().expect("a record");
            if wm.state == WriterState::Closed {
                let named = dir.path().join(format!("{:020}.seg", wm.segment));
                let len = std::fs::metadata(&named).map_or(0, |m| m.len());
                assert!(len >= wm.offset, "{step:?} #{at}: `Closed` names offset {} of {len} bytes", wm.offset);
            }
            if state(&support::segments(dir.path())) == found {
                assert_eq!(std::fs::read(dir.path().join("WATERMARK")).unwrap(), watermark, "{step:?} #{at}");
                restored += 1;
            } else if wm.state != WriterState::Closed {
                kept += 1;
            }
        }
    }
    assert!(restored > 0 && kept > 0, "refusals that changed nothing: {restored}, that kept recovering: {kept}");
}
