//! Under `SyncPolicy::Never` a roll hands the sealed segment's `fdatasync`
//! to the sealer thread with a descriptor of its own. On a slow disk the
//! rolls outran the sealer, and every queued seal held its descriptor open:
//! 600 quick rolls against 1 ms fsyncs kept hundreds open, on the way to
//! `EMFILE` (then a misleading "clone handle" error that killed the feed).
//! The queue is bounded: a roll that finds it full waits, so the open
//! descriptors stay few, and every record is there.
//!
//! Alone in its test binary: it counts the process's open descriptors.

mod support;

use std::time::Duration;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{Journal, JournalOptions, Reader, Retention, SyncPolicy};
use support::{payload, read_all, ts};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[test]
fn a_slow_sealer_holds_back_rolls_instead_of_piling_up_descriptors() {
    if !std::path::Path::new("/proc/self/fd").is_dir() {
        return; // no way to count them here
    }
    const RECORDS: u64 = 600;
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    for nth in 0..RECORDS {
        plan.inject(Step::RollSync, nth, Fault::Stall(Duration::from_millis(1)));
    }
    let options = JournalOptions::new()
        .sync(SyncPolicy::Never)
        .segment_bytes(128)
        .retention(Retention::unlimited())
        .faults(plan.clone());
    let (mut j, _) = Journal::open(tmp.path(), options).unwrap();
    let before = open_descriptors();
    let mut most = before;
    for seq in 1..=RECORDS {
        // Each record fills a segment: every append after the first rolls.
        j.append(ts(seq), [payload(seq), vec![0; 100]].concat()).unwrap();
        most = most.max(open_descriptors());
    }
    j.close().unwrap();
    assert!(plan.count(Step::RollSync) >= RECORDS - 1, "every roll sealed: {}", plan.count(Step::RollSync));
    assert!(most - before <= 40, "{} descriptors open at once beyond the {before} at start", most - before);
    assert_eq!(read_all(&Reader::open(tmp.path()).unwrap(), 0).len() as u64, RECORDS);
}
