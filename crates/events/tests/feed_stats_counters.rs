//! The `FeedStats` counters that other tests only check for zero, each
//! driven to a known non-zero value: `dropped` (records refused by a full
//! inbox while the writer is held in an fsync), `bytes` (exactly the frames
//! written), `sink_dropped` (batches a full sink queue could not take, which
//! with what the sink saw add up to every event; also what a sink task
//! dropped with its runtime), and `prune_errors` (a
//! failed removal on the retention timer, retried on the next pass).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::{Bincode, Envelope, EventSink, Feed, Retention, Seq, SyncPolicy};
use support::{Ev, eventually, msg};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_counts_records_refused_by_a_full_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> =
        Feed::builder(dir.path()).sync(SyncPolicy::Always).inbox_capacity(1).faults(plan.clone()).open().await.unwrap();
    let syncs = plan.count(Step::AppendSync);
    plan.inject_next(Step::AppendSync, Fault::Hold);
    let first = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, msg(0)).await }
    });
    while plan.count(Step::AppendSync) == syncs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for n in 1..=10 {
        feed.record(None, &msg(n)); // the first fills the one slot, the other nine are dropped
    }
    let dropped = feed.stats().dropped;
    plan.release();
    assert_eq!(dropped, 9);
    first.await.unwrap().unwrap();
    feed.sync().await.unwrap();
    assert_eq!(feed.latest_seq().get(), 2);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_counts_exactly_the_frames_written() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let mut expected = 0u64;
    for n in 1..=25 {
        let mut payload = Vec::new();
        events::payload::encode(&Bincode, Some("s"), &msg(n), &mut payload).unwrap();
        expected += 24 + payload.len() as u64; // frame header + payload
        feed.append(Some("s"), msg(n)).await.unwrap();
    }
    assert_eq!(feed.stats().bytes, expected);
    feed.close().await.unwrap();
}

/// A sink that takes one permit per event: it blocks until the test lets it go.
struct Gated {
    gate: Arc<Semaphore>,
    seen: AtomicU64,
}

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for Gated {
    async fn emit(&self, _env: &Envelope<Ev>) {
        self.gate.acquire().await.unwrap().forget();
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_dropped_plus_what_the_sink_saw_is_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let sink = Arc::new(Gated { gate: Arc::clone(&gate), seen: AtomicU64::new(0) });
    let feed: Feed<Ev> =
        Feed::builder(dir.path()).sync(SyncPolicy::Never).sink_queue(1).sink(Arc::clone(&sink)).open().await.unwrap();
    for n in 1..=40 {
        feed.append(None, msg(n)).await.unwrap(); // one batch each: the queue of one fills at once
    }
    let dropped = feed.stats().sink_dropped;
    assert!(dropped >= 30, "a blocked sink with a queue of one batch lost only {dropped} of 40");
    gate.add_permits(1000);
    tokio::time::timeout(Duration::from_secs(10), async {
        while sink.seen.load(Ordering::SeqCst) + dropped < 40 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the sink never caught up");
    assert_eq!(sink.seen.load(Ordering::SeqCst) + feed.stats().sink_dropped, 40);
    feed.close().await.unwrap();
}

/// The runtime a feed was opened on shuts down while its sink is stuck:
/// the sink's task is dropped with 40 batches it never delivered (the one
/// in the sink's hands included). They are lost to that sink, and counted
/// as a full queue's are; they had vanished from every counter.
#[test]
fn what_a_sink_task_drops_with_its_runtime_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let sink = Arc::new(Gated { gate: Arc::clone(&gate), seen: AtomicU64::new(0) });
    let feed: Feed<Ev> = rt.block_on(async {
        let feed =
            Feed::builder(dir.path()).sync(SyncPolicy::Never).sink_queue(64).sink(Arc::clone(&sink)).open().await;
        let feed = feed.unwrap();
        for n in 1..=40 {
            feed.append(None, msg(n)).await.unwrap(); // one batch each: the queue holds them all
        }
        feed
    });
    assert_eq!(feed.stats().sink_dropped, 0);
    drop(rt);
    let stats = feed.stats();
    assert_eq!(sink.seen.load(Ordering::SeqCst) + stats.sink_dropped, 40, "{stats:?}");
    assert_eq!(stats.sinks[0].queue_dropped, stats.sink_dropped, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_removal_on_the_retention_timer_is_counted_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .segment_bytes(1024)
        .retention(Retention::age(Duration::from_secs(1)))
        .retention_check(Duration::from_millis(20))
        // No fsync per append: the fill takes far less than the age, so
        // `before` is read while sealed segments are left to prune.
        .sync(SyncPolicy::Never)
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    for n in 1..=100 {
        feed.append(None, msg(n)).await.unwrap();
    }
    // The first removal the timer attempts fails: injected once the fill is
    // done, so that no roll's retention (none rolls from here) takes it. It
    // had been injected before the fill, which a roll took on a machine
    // slow enough for a sealed segment to age meanwhile (a test audit).
    plan.inject_next(Step::PruneRemove, Fault::Errno(libc::EIO));
    let before = feed.earliest_seq();
    assert_eq!(before, Seq::new(1), "nothing aged out during the fill");
    eventually("retention never succeeded after the failed removal", || feed.earliest_seq() != before).await;
    let stats = feed.stats();
    assert_eq!(stats.prune_errors, 1, "{stats:?}");
    assert!(stats.healthy, "a failed removal must not fail the feed");
    feed.append(None, msg(101)).await.unwrap();
    feed.close().await.unwrap();
}
