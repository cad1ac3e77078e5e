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

    // The flush cannot finish while the offloaded sink is stalled.
    let flushing = tokio::spawn({
        let tee = Arc::clone(&tee);
        async move { tee.flush().await }
    });
    slow.entered.notified().await;
    assert!(!flushing.is_finished(), "flush returned before the offloaded branch drained");
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
