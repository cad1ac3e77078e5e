//! Sync policies and write failures. `Always` is one `fdatasync` per batch
//! (group commit); `Interval` syncs in a background thread and stops it on
//! close; `Never` syncs only on roll-free close. A write that fails half-way
//! (here: a real `EFBIG` from `RLIMIT_FSIZE`, in a child process) poisons the
//! writer, cuts the partial batch, and leaves every acknowledged record intact.

mod support;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use events_journal::{Journal, JournalError, JournalOptions, Reader, SyncPolicy, verify};
use support::{assert_records, payload, read_all, ts};

#[test]
fn always_is_one_fdatasync_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Always)).unwrap();
    let before = j.stats().fsyncs;
    let payloads: Vec<Vec<u8>> = (1..=100).map(payload).collect();
    j.append_batch(payloads.iter().map(|p| (0, p.as_slice()))).unwrap();
    j.append(0, b"one").unwrap();
    let s = j.stats();
    assert_eq!((s.fsyncs - before, s.batches, s.appended), (2, 2, 101));
}

#[test]
fn never_does_not_fdatasync_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    for seq in 1..=10 {
        j.append(ts(seq), payload(seq)).unwrap();
    }
    assert_eq!(j.stats().fsyncs, 0);
    j.sync().unwrap();
    assert_eq!(j.stats().fsyncs, 1);
}

/// `Interval` fdatasyncs in the background, its thread stops at `close`
/// (no background fdatasync after it), and `close` does not wait for the
/// interval. (The check of the stop had been `idle >= 1`, true once the
/// loop before it ended, and the close's bound 5 s beside an interval of
/// 5 ms: neither could fail; found by audit.)
#[test]
fn interval_syncs_in_the_background_and_stops_on_close() {
    use events_journal::fault::{FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let opts = JournalOptions::new().sync(SyncPolicy::Interval(Duration::from_millis(5))).faults(plan.clone());
    let (mut j, _) = Journal::open(dir.path(), opts).unwrap();
    j.append(ts(1), payload(1)).unwrap();
    // Poll the counter the background thread maintains (bounded, not a fixed sleep).
    let deadline = Instant::now() + Duration::from_secs(10);
    while j.stats().fsyncs == 0 {
        assert!(Instant::now() < deadline, "no background fdatasync within 10 s");
        std::thread::yield_now();
    }
    j.append(ts(2), payload(2)).unwrap();
    j.close().unwrap();
    let after = plan.count(Step::BackgroundSync);
    assert!(after >= 1, "the background syncs go through the seam");
    // Ten intervals: a thread still running would sync again.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(plan.count(Step::BackgroundSync), after, "a background fdatasync after close");
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 2);

    // With an interval of 30 s, a close that waited for it would take that long.
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) =
        Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Interval(Duration::from_secs(30)))).unwrap();
    j.append(ts(1), payload(1)).unwrap();
    let start = Instant::now();
    j.close().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10), "the close waited for the interval: {:?}", start.elapsed());
    assert_records(&read_all(&Reader::open(dir.path()).unwrap(), 0), 1, 1);
}

const CHILD_ENV: &str = "EVENTS_JOURNAL_FSIZE_CHILD";
const TEST_NAME: &str = "a_failed_write_poisons_the_writer_and_keeps_acknowledged_records";

/// Child: cap the file size, append until the kernel refuses, report.
fn child(dir: &Path) -> ! {
    let (mut j, _) = Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap();
    // SAFETY: plain libc calls with valid arguments, before any other thread exists in this child.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit { rlim_cur: 20_000, rlim_max: libc::RLIM_INFINITY };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let mut out = std::io::stdout().lock();
    let mut seq = 1;
    let err = loop {
        // Batches of 3 records of ~280 bytes: the failing write is partial.
        let payloads: Vec<Vec<u8>> = (0..3).map(|_| vec![seq as u8; 256]).collect();
        match j.append_batch(payloads.iter().map(|p| (seq, p.as_slice()))) {
            Ok(r) => {
                writeln!(out, "ACK {}", r.end()).unwrap();
                seq = r.end() + 1;
            }
            Err(e) => break e,
        }
    };
    assert!(matches!(err, JournalError::Io { op: "write", .. }), "{err}");
    let again = j.append(0, b"after failure").unwrap_err();
    assert!(matches!(again, JournalError::Failed { .. }), "{again}");
    assert!(matches!(j.sync(), Err(JournalError::Failed { .. })));
    writeln!(out, "POISONED").unwrap();
    out.flush().unwrap();
    std::process::exit(0);
}

#[test]
fn a_failed_write_poisons_the_writer_and_keeps_acknowledged_records() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = support::child_command(TEST_NAME, (CHILD_ENV, dir.path().to_str().unwrap())).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("POISONED"),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acked: u64 =
        stdout.lines().filter_map(|l| l.split_once("ACK ")).map(|(_, n)| n.parse::<u64>().unwrap()).max().unwrap();
    assert!(acked > 10);
    // The partial batch was cut back: the segment holds exactly the acknowledged records.
    let report = verify(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.last_seq, Some(acked));
    let (mut j, open) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    assert!(open.action.is_none(), "{:?}", open.action);
    assert_eq!(j.next_seq(), acked + 1);
    let records = read_all(&Reader::open(dir.path()).unwrap(), 0);
    assert_eq!(records.len() as u64, acked);
    for r in &records {
        assert_eq!(r.payload(), vec![((r.seq() - 1) / 3 * 3 + 1) as u8; 256].as_slice(), "seq {}", r.seq());
    }
    j.append(0, b"works again").unwrap();
}

/// Under `Interval`, `sync` while the background thread's `fdatasync` is
/// in flight and fails (held until `sync` is under way, then EIO): `sync` waits it out and
/// fails too. The two share one open file description, whose write-back
/// error only the first fdatasync to look is told of: `sync` had run its
/// own beside the thread's, and returned `Ok` over the error.
#[test]
fn interval_sync_fails_when_the_background_sync_it_overlaps_fails() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    // The same with a roll, whose fdatasync of the segment it seals waits
    // the background one out too.
    for rolling in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        plan.inject(Step::BackgroundSync, 0, Fault::HoldErrno(libc::EIO));
        let opts = JournalOptions::new().sync(SyncPolicy::Interval(Duration::from_millis(1))).faults(plan.clone());
        let (mut journal, _) = Journal::open(dir.path(), opts).unwrap();
        journal.append(1, b"x").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while plan.count(Step::BackgroundSync) == 0 {
            assert!(std::time::Instant::now() < deadline, "the background sync never started");
            std::thread::yield_now();
        }
        // On a thread of its own: it must wait for the held fdatasync (it
        // had run its own beside it and returned `Ok` at once).
        let calling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let syncing = std::thread::spawn({
            let calling = std::sync::Arc::clone(&calling);
            move || {
                calling.store(true, std::sync::atomic::Ordering::SeqCst);
                let synced = if rolling { journal.roll() } else { journal.sync() };
                (synced, journal)
            }
        });
        // Once the call is made (else a late one meets the failure already
        // recorded, and passes without checking), time for a wrong `Ok` to
        // come back.
        while !calling.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(100));
        let waited = !syncing.is_finished();
        // Released before any assertion: a journal dropped while its
        // background thread is held would wait for it.
        plan.release();
        assert!(waited, "rolling {rolling}: it did not wait for the fdatasync in flight");
        let (synced, mut journal) = syncing.join().unwrap();
        assert!(matches!(synced, Err(JournalError::Failed { .. })), "rolling {rolling}: {synced:?}");
        assert!(journal.append(2, b"y").is_err(), "the writer is failed");
    }
}

/// A `Never` writer in `dir` that appended records 1..=5 (never synced)
/// and was killed by `crash` at the write of a sixth.
fn killed_never_writer(dir: &std::path::Path, crash: events_journal::fault::Fault) {
    use events_journal::fault::{FaultPlan, Step};
    let killed = FaultPlan::new();
    let (mut journal, _) =
        Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Never).faults(killed.clone())).unwrap();
    for n in 1..=5 {
        journal.append(n, b"unsynced").unwrap();
    }
    killed.inject_next(Step::AppendWrite, crash);
    assert!(journal.append(6, b"crash").is_err());
    drop(journal);
    assert!(killed.crashed());
}

/// A writer under `Never` opening a journal whose newest segment holds
/// records a killed writer never synced: an explicit `roll` seals that
/// segment synced, as a roll promises. The open had taken what recovery
/// kept for synced, and the roll sealed it with no fdatasync.
#[test]
fn a_roll_after_open_syncs_what_a_killed_writer_left_unsynced() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    killed_never_writer(dir.path(), Fault::CrashAfter);

    let plan = FaultPlan::new();
    let (mut journal, _) =
        Journal::open(dir.path(), JournalOptions::new().sync(SyncPolicy::Never).faults(plan.clone())).unwrap();
    journal.roll().unwrap();
    journal.sync().unwrap(); // waits for the sealer
    assert_eq!(plan.count(Step::RollSync), 1, "the sealed segment was fdatasynced");
    journal.close().unwrap();
}

/// Under `Never` the sealer fdatasyncs the segment a roll seals, handed
/// over once the next segment's header is durable (so that this header's
/// fdatasync does not queue behind the seal's on the writer's thread).
/// When the next segment cannot be created (`EIO`), the writer fails, and
/// the filled segment is still handed over and fdatasynced: every record
/// written is there after a power loss.
#[test]
fn a_roll_whose_next_segment_fails_still_seals_the_one_it_filled() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let opts = JournalOptions::new().sync(SyncPolicy::Never).faults(plan.clone());
    let (mut journal, _) = Journal::open(dir.path(), opts).unwrap();
    for n in 1..=5u64 {
        journal.append(n, [n as u8; 40]).unwrap();
    }
    let seg = events_testkit::fs::segments(dir.path()).pop().unwrap();
    plan.inject_next(Step::SegmentCreate, Fault::Errno(libc::EIO));
    assert!(journal.roll().is_err(), "the next segment could not be created");
    drop(journal); // waits for the sealer
    assert_eq!(plan.count(Step::RollSync), 1, "the filled segment was handed to the sealer");
    let len = std::fs::metadata(&seg).unwrap().len();
    assert_eq!(plan.synced_len(&seg), Some(len), "and fdatasynced whole");
}

/// Under `Never`, a roll hands the segment it seals to the sealer once the
/// next segment is created; with the sealer's queue full (16 seals, one
/// more in progress on a slow disk) it waits there, the next segment
/// already made. A crash at that moment leaves 18 sealed segments the
/// sealer never synced; the next open syncs every one of them before its
/// lease vouches for them. It had synced only the newest 17 (the window
/// counted the segment in progress and the queue, not the one being handed
/// over), so a power loss after its clean close could tear the oldest.
#[test]
fn the_open_after_a_crash_behind_a_full_seal_queue_syncs_every_segment_left_unsynced() {
    use events_journal::Retention;
    use events_journal::fault::{Fault, FaultPlan, Step};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let plan = FaultPlan::new();
    // The first seal (of segment 1) is held until the files are copied:
    // the next 16 queue behind it.
    plan.inject_next(Step::RollSync, Fault::Hold);
    let opts = JournalOptions::new()
        .sync(SyncPolicy::Never)
        .segment_bytes(128)
        .retention(Retention::unlimited())
        .faults(plan.clone());
    let started = Instant::now();
    let writer = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let (mut j, _) = Journal::open(&dir, opts).unwrap();
            // Each record fills a segment: every append after the first rolls.
            for seq in 1..=19 {
                j.append(ts(seq), [payload(seq), vec![0; 100]].concat()).unwrap();
            }
            j.close().unwrap();
        })
    };
    // The 18th roll made segment 19, then waits to hand segment 18 over
    // (the queue stays full while the first seal stalls).
    let segments = || if dir.is_dir() { events_testkit::fs::segments(&dir) } else { Vec::new() };
    while segments().len() < 19 {
        assert!(started.elapsed() < Duration::from_secs(60), "the writer never made 19 segments");
        std::thread::sleep(Duration::from_millis(1)); // polling the directory
    }
    // The files as a process killed now leaves them (the page cache).
    let copy = tmp.path().join("killed");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n != "LOCK") {
            std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
        }
    }
    let sealing = plan.count(Step::RollSync);
    plan.release(); // before any assertion: the writer's close waits for the seal
    assert_eq!(sealing, 1, "the sealer is on its first seal");
    let copied = events_testkit::fs::segments(&copy);
    assert_eq!(copied.len(), 19);

    let reopened = FaultPlan::new();
    let (j, _) = Journal::open(&copy, JournalOptions::new().sync(SyncPolicy::Never).faults(reopened.clone())).unwrap();
    for seg in &copied[..18] {
        assert!(reopened.synced_len(seg).is_some(), "{} was never synced", seg.display());
    }
    j.close().unwrap();
    writer.join().unwrap();
}

/// As above, when the open itself seals that segment: a killed `Never`
/// writer's last acknowledged record is damaged, a salvage mode cuts it,
/// and the open skips its seq and starts a new segment. The segment it
/// seals holds records the killed writer never synced: the skip
/// fdatasyncs it first (`Step::RollSync`), as a roll does.
#[test]
fn an_opens_skip_syncs_the_segment_it_seals() {
    use events_journal::RecoveryMode;
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    killed_never_writer(dir.path(), Fault::CrashBefore);
    // The last record's last byte: its CRC no longer holds.
    let seg = events_testkit::fs::segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();

    let plan = FaultPlan::new();
    let options = JournalOptions::new().sync(SyncPolicy::Never).recovery(RecoveryMode::TruncateAtCorruption);
    let (journal, report) = Journal::open(dir.path(), options.faults(plan.clone())).unwrap();
    assert_eq!(report.skipped, Some(5..=5), "{report:?}");
    assert_eq!(journal.next_seq(), 6);
    assert_eq!(plan.count(Step::RollSync), 1, "the segment the skip sealed was fdatasynced");
    journal.close().unwrap();
}

/// A panic on the journal's own threads (here injected into their
/// fdatasync; a `tracing` layer could panic there too): the seal thread's
/// under `Never`, the background thread's under `Interval`. Either is the
/// thread's failure: `sync` fails and the writer with it. The threads had
/// died silently: `sync` and `close` returned `Ok` with nothing synced.
#[test]
fn a_panic_on_the_journals_own_threads_fails_the_writer() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    for (sync, step) in
        [(SyncPolicy::Never, Step::RollSync), (SyncPolicy::Interval(Duration::from_millis(1)), Step::BackgroundSync)]
    {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        plan.inject(step, 0, Fault::Panic);
        let mut journal = support::journal_thread_reaches(dir.path(), &plan, sync, step);
        let synced = journal.sync();
        match &synced {
            Err(JournalError::Failed { cause }) => assert!(cause.contains("panicked"), "{sync:?}: {cause}"),
            other => panic!("{sync:?}: {other:?}"),
        }
        let closed = journal.close();
        assert!(
            matches!(&closed, Err(JournalError::Failed { cause }) if cause.contains("panicked")),
            "{sync:?}: {closed:?}"
        );
    }
}

/// An open under `Always` whose fdatasync of the newest segment fails
/// (`EIO`): the open fails and cuts nothing back, so the next open reads
/// every record the last writer acknowledged.
#[test]
fn an_open_whose_sync_fails_keeps_what_the_last_writer_acknowledged() {
    use events_journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    for n in 1..=3 {
        journal.append(n, b"acknowledged").unwrap();
    }
    journal.close().unwrap();
    let plan = FaultPlan::new();
    plan.inject(Step::Sync, 0, Fault::Errno(libc::EIO));
    assert!(Journal::open(dir.path(), JournalOptions::new().faults(plan.clone())).is_err());
    assert_eq!(plan.fired(), [(Step::Sync, Fault::Errno(libc::EIO))], "the open's own sync failed");
    let (journal, _) = Journal::open(dir.path(), JournalOptions::new()).unwrap();
    drop(journal);
    let reader = Reader::open(dir.path()).unwrap();
    let seqs: Vec<u64> = reader.read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(seqs, [1, 2, 3], "records 1..=3 are all there");
}
