//! Retention stays out of the write path: a segment that cannot be removed
//! (`EIO` through the seam) never fails an append or a roll and never
//! poisons the writer; it is counted in `JournalStats::prune_errors`, kept,
//! and removed by the next roll or `prune`, while an explicit `prune` does
//! report it. And `Retention::age` works on an idle journal: `prune()`
//! removes the sealed segments that aged out without any roll, and never
//! the active segment.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalError, JournalOptions, ReadError, Reader, Retention, SyncPolicy};
use support::{assert_records, payload, read_all, segments, ts};

fn append_until_roll(j: &mut Journal) {
    let rolls = j.stats().rolls;
    while j.stats().rolls == rolls {
        let seq = j.next_seq();
        assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    }
}

fn options(plan: &FaultPlan, retention: Retention) -> JournalOptions {
    JournalOptions::new().segment_bytes(1024).retention(retention).sync(SyncPolicy::Always).faults(plan.clone())
}

fn names(dir: &Path) -> Vec<String> {
    segments(dir).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
}

#[test]
fn a_failed_removal_never_fails_an_append_or_a_roll_and_is_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, Retention::segments(2))).unwrap();
    append_until_roll(&mut j);
    assert_eq!(segments(tmp.path()).len(), 2);
    let oldest = segments(tmp.path())[0].clone();

    // The roll an append triggers wants to remove the oldest segment: EIO.
    plan.inject_next(Step::PruneRemove, Fault::Errno(libc::EIO));
    append_until_roll(&mut j);
    assert_eq!(plan.fired(), [(Step::PruneRemove, Fault::Errno(libc::EIO))]);
    let stats = j.stats();
    assert_eq!((stats.prune_errors, stats.pruned), (1, 0), "{stats:?}");
    assert!(oldest.exists(), "the segment that could not be removed is kept");
    assert_eq!(segments(tmp.path()).len(), 3);
    // Not poisoned: appends go on, and every record is still readable.
    let seq = j.next_seq();
    assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
    assert_records(&read_all(&Reader::open(tmp.path()).unwrap(), 0), 1, seq);

    // An explicit roll meets the same failure: it still succeeds.
    plan.inject_next(Step::PruneRemove, Fault::Errno(libc::EIO));
    j.roll().unwrap();
    assert_eq!(j.stats().prune_errors, 2);
    assert!(oldest.exists());

    // An explicit prune reports it, naming the segment, and still does not poison.
    plan.inject_next(Step::PruneRemove, Fault::Errno(libc::EIO));
    let err = j.prune().unwrap_err();
    assert!(
        matches!(&err, JournalError::Io { op: "remove segment", path, source }
            if *path == oldest && source.raw_os_error() == Some(libc::EIO)),
        "{err}"
    );
    assert_eq!(j.stats().prune_errors, 3);

    // Retried: the next prune (or roll) removes everything retention wants gone.
    assert_eq!(j.prune().unwrap(), 2);
    assert!(!oldest.exists());
    assert_eq!(segments(tmp.path()).len(), 2);
    append_until_roll(&mut j);
    assert_eq!(segments(tmp.path()).len(), 2);
    let last = j.last_seq();
    j.close().unwrap();
    let reader = Reader::open(tmp.path()).unwrap();
    let first = reader.first_seq().unwrap();
    assert_records(&read_all(&reader, first - 1), first, last);
}

#[test]
fn a_failed_directory_fsync_after_removal_is_counted_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let (mut j, _) = Journal::open(tmp.path(), options(&plan, Retention::segments(1))).unwrap();
    let seq = j.next_seq();
    j.append(ts(seq), payload(seq)).unwrap();
    // The roll's own segment creation fsyncs the directory first (#n), then retention (#n + 1).
    let n = plan.count(Step::DirSync);
    plan.inject(Step::DirSync, n + 1, Fault::Errno(libc::EIO));
    j.roll().unwrap();
    assert_eq!(plan.fired(), [(Step::DirSync, Fault::Errno(libc::EIO))]);
    assert_eq!((j.stats().prune_errors, j.stats().pruned), (1, 1));
    let seq = j.next_seq();
    assert_eq!(j.append(ts(seq), payload(seq)).unwrap(), seq);
}

/// Sealed segments age out of an idle journal by `prune()` alone; the
/// active segment never does, however old.
fn age_prunes_an_idle_journal(sync: SyncPolicy) {
    const AGE: Duration = Duration::from_millis(300);
    let tmp = tempfile::tempdir().unwrap();
    let opts = JournalOptions::new().retention(Retention::age(AGE)).sync(sync);
    let (mut j, _) = Journal::open(tmp.path(), opts).unwrap();
    for _ in 0..2 {
        let seq = j.next_seq();
        j.append(ts(seq), payload(seq)).unwrap();
        j.roll().unwrap();
    }
    let seq = j.next_seq();
    j.append(ts(seq), payload(seq)).unwrap();
    let sealed_at = Instant::now();
    assert_eq!(names(tmp.path()).len(), 3, "young sealed segments are kept by the rolls");
    assert_eq!(j.prune().unwrap(), 0, "nothing aged out yet");

    // Idle from here: no append, no roll. Time passes (the policy is about
    // wall-clock age, so this waits for the clock, not for another thread).
    std::thread::sleep(AGE.saturating_sub(sealed_at.elapsed()) + Duration::from_millis(50));
    assert_eq!(j.prune().unwrap(), 2, "both sealed segments aged out");
    assert_eq!(names(tmp.path()), [format!("{:020}.seg", 3)]);
    assert_eq!(j.stats().pruned, 2);

    // The active segment is older than the policy too, and stays.
    std::thread::sleep(AGE);
    assert_eq!(j.prune().unwrap(), 0);
    assert_eq!(names(tmp.path()), [format!("{:020}.seg", 3)]);
    let reader = Reader::open(tmp.path()).unwrap();
    assert!(matches!(reader.read_since(0), Err(ReadError::Expired { earliest: 3 })));
    assert_records(&read_all(&reader, 2), 3, 3);
    assert_eq!(j.append(ts(4), payload(4)).unwrap(), 4);
    j.close().unwrap();
}

#[test]
fn age_retention_prunes_an_idle_journal_and_never_the_active_segment() {
    age_prunes_an_idle_journal(SyncPolicy::Always);
    // The Interval thread only syncs; it neither prunes nor stops an explicit prune.
    age_prunes_an_idle_journal(SyncPolicy::Interval(Duration::from_millis(5)));
}
