//! An `Offload` nested inside a `Tee` (itself shared behind an `Arc`) is
//! drained with `flush` through shared references: the flush returns only
//! after the slow branch saw every event accepted before it, the offload keeps
//! accepting events afterwards, `shutdown` stops it without consuming it, and
//! `branch_stats` reads each branch's own counters.

mod support;

use std::sync::Arc;

use events_sink::{EventSink, Noop, Offload, Tee};
use support::{Gate, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_drains_an_offload_inside_a_tee_without_taking_it_apart() {
    let slow = Gate::closed();
    let fast = Recorder::new();
    let offload = Arc::new(Offload::new(Arc::clone(&slow), 16));
    let tee: Arc<dyn EventSink<u32>> =
        Arc::new(Tee::new().with(Arc::clone(&offload)).with(Arc::clone(&fast)).with(Noop));

    for n in 0..10 {
        tee.emit(&n).await;
    }
    assert_eq!(fast.seen(), (0..10).collect::<Vec<_>>(), "the direct branch saw every event at once");
    assert!(slow.passed().is_empty(), "the gate holds the offloaded branch");

    // The flush cannot finish while the offloaded sink is stalled: still
    // waiting after 200 ms (one that returned at once would have ended).
    // The gate's `entered` had been awaited instead, a permit stored by the
    // first event's arrival, so the check ran before the flush had started
    // (found by audit).
    let mut flushing = tokio::spawn({
        let tee = Arc::clone(&tee);
        async move { tee.flush().await }
    });
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), &mut flushing).await;
    assert!(early.is_err(), "flush returned before the offloaded branch drained");
    assert!(slow.passed().is_empty(), "the gate still holds the offloaded branch");
    slow.open();
    flushing.await.expect("flush task");
    assert_eq!(slow.passed(), (0..10).collect::<Vec<_>>(), "after flush the offloaded branch saw everything, in order");

    // Still open: later events flow, and a second flush drains them too.
    tee.emit(&10).await;
    tee.flush().await;
    assert_eq!(slow.passed().last(), Some(&10));

    // Shutdown through a shared reference: later events are dropped, counted.
    offload.shutdown().await;
    offload.shutdown().await; // idempotent
    tee.emit(&11).await;
    tee.flush().await; // returns at once for the stopped branch
    let stats = offload.stats();
    assert_eq!((stats.emitted, stats.dropped), (12, 1), "one event after shutdown, counted as dropped");
    assert_eq!(slow.passed().len(), 11);
    assert_eq!(fast.seen().len(), 12, "the other branches are unaffected");
}

#[tokio::test]
async fn branch_stats_reads_each_branch_in_order() {
    let (full, _rx) = events_sink::ChannelSink::<u8>::new(1);
    let tee = Tee::new().with(full).with(Recorder::new()).with(Noop);
    for n in 0..3 {
        tee.emit(&n).await;
    }
    let branches = tee.branch_stats();
    assert_eq!(branches.len(), 3);
    assert_eq!((branches[0].emitted, branches[0].dropped), (3, 2), "the one-slot channel kept one of three");
    assert_eq!(branches[1], Default::default(), "a recorder keeps no counters");
    assert_eq!(tee.stats().dropped, 2, "the tee's own figure sums its branches' losses");
    assert_eq!(tee.branches().len(), 3);
}

/// A flush waiting beside a full queue takes no event's place: an offload
/// of capacity 2 whose sink holds event 0, with 1 queued and a flush
/// waiting behind it, still takes event 2, and `pending()` counts events
/// only. The flush marker had taken the last slot: event 2 was dropped and
/// `pending()` said 2 with one event queued.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_flush_takes_no_events_place() {
    let slow = Gate::closed();
    let offload = Arc::new(Offload::new_shared(Arc::clone(&slow) as Arc<dyn EventSink<u32>>, 2));
    offload.emit(&0).await;
    tokio::task::yield_now().await; // the task takes 0 and waits at the gate
    offload.emit(&1).await;
    let flushing = tokio::spawn({
        let offload = Arc::clone(&offload);
        async move { offload.flush().await }
    });
    tokio::task::yield_now().await; // the flush is queued
    assert_eq!(offload.pending(), 1, "events only");
    offload.emit(&2).await;
    assert_eq!((offload.stats().dropped, offload.pending()), (0, 2));
    offload.emit(&3).await;
    assert_eq!(offload.stats().dropped, 1, "the queue holds its capacity in events, no more");
    slow.open();
    flushing.await.unwrap();
    assert_eq!(slow.passed()[..2], [0u32, 1], "the flush waited for what was queued before it");
    let stats = Arc::into_inner(offload).expect("the flush task is done").close().await;
    assert_eq!((stats.emitted, stats.dropped), (4, 1));
    assert_eq!(slow.passed(), [0u32, 1, 2]);
}
