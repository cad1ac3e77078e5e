//! A `tracing` subscriber that panics on every error event logged on the
//! journal's own threads (a logging layer with a bug): the seal thread's
//! and the `Interval` sync thread's failures are recorded before they are
//! logged, so a failed fdatasync still fails the writer (`sync` and
//! `close` answer the error) although the thread dies logging it. The
//! failure had been logged first: the log panicked, the catch's log
//! panicked again, and nothing was recorded: `sync` answered `Ok`.
//!
//! Its own test binary: the subscriber is process-wide.

mod support;

use std::time::Duration;

use events_journal::fault::{Fault, FaultPlan, Step};
use events_journal::{JournalError, SyncPolicy};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

struct PanicsOnJournalThreadErrors;

impl tracing::Subscriber for PanicsOnJournalThreadErrors {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let on_a_journal_thread = std::thread::current().name().is_some_and(|n| n.starts_with("events-journal-"));
        if on_a_journal_thread && *event.metadata().level() == Level::ERROR {
            PANICKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            panic!("a logging layer that panics");
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// How many times the subscriber panicked.
static PANICKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn a_failed_sync_on_a_journal_thread_fails_the_writer_even_when_logging_it_panics() {
    tracing::subscriber::set_global_default(PanicsOnJournalThreadErrors).unwrap();
    for (sync, step) in
        [(SyncPolicy::Never, Step::RollSync), (SyncPolicy::Interval(Duration::from_millis(1)), Step::BackgroundSync)]
    {
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        plan.inject(step, 0, Fault::Errno(libc::EIO));
        let before = PANICKED.load(std::sync::atomic::Ordering::SeqCst);
        let mut journal = support::journal_thread_reaches(dir.path(), &plan, sync, step);
        let synced = journal.sync();
        assert!(matches!(synced, Err(JournalError::Failed { .. })), "{sync:?}: {synced:?}");
        // The failure is logged on a journal thread, where logging panics
        // (else the test shows nothing about the order of log and record);
        // after it is recorded, so perhaps after `sync` returned.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while PANICKED.load(std::sync::atomic::Ordering::SeqCst) == before {
            assert!(std::time::Instant::now() < deadline, "{sync:?}: the subscriber never panicked");
            std::thread::yield_now();
        }
    }
}
