//! A `tracing` subscriber that panics on every warning and error logged on
//! the feed's writer thread (a logging layer with a bug): the writer logs
//! an event it refused, and the panic an event's `Drop` raised when it let
//! the event go, under a catch of their own. Those logs had unwound out of
//! the writer thread: the feed failed, and every later call got
//! `Unhealthy`. A panic that ends the writer thread is recorded (the feed
//! failed and closed) before it is logged.
//!
//! Its own test binary: the subscriber is process-wide.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use events::{AppendOptions, Error, Event, Expected, Feed, Seq, SyncPolicy};
use serde::{Deserialize, Serialize};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata};

struct PanicsOnWriterWarnings;

impl tracing::Subscriber for PanicsOnWriterWarnings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let on_the_writer = std::thread::current().name() == Some("events-writer");
        if on_the_writer && *event.metadata().level() <= Level::WARN {
            PANICKED.fetch_add(1, Ordering::SeqCst);
            panic!("a logging layer that panics");
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// How many times the subscriber panicked.
static PANICKED: AtomicUsize = AtomicUsize::new(0);

/// Whether a `Fragile`'s `Drop` panics.
static ARMED: AtomicBool = AtomicBool::new(false);

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Fragile(u64);

impl Drop for Fragile {
    fn drop(&mut self) {
        if ARMED.load(Ordering::SeqCst) && self.0 == 13 && !std::thread::panicking() {
            panic!("Drop exploded");
        }
    }
}

impl Event for Fragile {}

/// Installs the subscriber once, for every test of this binary.
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tracing::subscriber::set_global_default(PanicsOnWriterWarnings).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_goes_on_when_logging_what_it_caught_panics() {
    install();
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Fragile> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    assert_eq!(feed.append(Some("s"), Fragile(1)).await.unwrap(), Seq::new(1));

    // A recorded event under a stream id over the limit: refused, logged.
    let before = PANICKED.load(Ordering::SeqCst);
    feed.record(Some(&"x".repeat(300)), &Fragile(2));
    assert_eq!(feed.append(Some("s"), Fragile(3)).await.unwrap(), Seq::new(2), "{:?}", feed.stats());
    assert!(PANICKED.load(Ordering::SeqCst) > before, "the refusal was logged on the writer thread");

    // An append refused by its expectation, whose event's `Drop` panics
    // when the writer lets it go: the panic is caught, then logged.
    ARMED.store(true, Ordering::SeqCst);
    let before = PANICKED.load(Ordering::SeqCst);
    let refused =
        feed.append_with(Some("s"), Fragile(13), AppendOptions::new().expect(Expected::Exact(Seq::new(1)))).await;
    assert!(matches!(refused, Err(Error::VersionConflict { .. })), "{refused:?}");
    // Let go of after the answer.
    support::eventually("the Drop's panic was never logged on the writer thread", || {
        PANICKED.load(Ordering::SeqCst) != before
    })
    .await;
    ARMED.store(false, Ordering::SeqCst);

    assert_eq!(feed.append(Some("s"), Fragile(4)).await.unwrap(), Seq::new(3), "{:?}", feed.stats());
    assert!(feed.stats().healthy, "{:?}", feed.stats());
    feed.close().await.unwrap();
}

/// A panic that ends the writer thread (injected in a write): the feed is
/// failed and closed before the panic is logged, so a `close` returns and
/// the feed says it failed. Logged first, the log's panic had ended the
/// thread with the feed healthy and open: `close` waited for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_panic_is_recorded_before_it_is_logged() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    install();
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Fragile> =
        Feed::builder(dir.path()).sync(SyncPolicy::Never).faults(plan.clone()).open().await.unwrap();
    feed.append(None, Fragile(1)).await.unwrap();
    plan.inject_next(Step::AppendWrite, Fault::Panic);
    assert!(feed.append(None, Fragile(2)).await.is_err());
    support::eventually("the feed never said its writer was gone", || feed.is_closed()).await;
    assert!(!feed.stats().healthy);
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), feed.close()).await.expect("close returns");
    assert!(matches!(closed, Err(Error::Unhealthy { .. })), "{closed:?}");
}
