//! A stalled consumer behind [`ChannelSink`] or [`Offload`] never blocks
//! `emit`: every emit completes on its first poll (`now_or_never`) while the
//! consumer is parked, the events that did not fit are counted as dropped
//! exactly, and the ones that did fit arrive in order once it wakes up.

mod support;

use std::sync::Arc;

use events_sink::{ChannelSink, EventSink, Offload};
use futures::FutureExt;
use support::Gate;

#[tokio::test]
async fn channel_sink_drops_and_counts_while_the_receiver_is_parked() {
    let (sink, mut rx) = ChannelSink::<u32>::new(4);
    for n in 0..10 {
        assert!(sink.emit(&n).now_or_never().is_some(), "emit {n} did not complete at once");
    }
    let stats = sink.stats();
    assert_eq!((stats.emitted, stats.dropped), (10, 6));

    let mut got = Vec::new();
    while let Ok(n) = rx.try_recv() {
        got.push(n);
    }
    assert_eq!(got, [0, 1, 2, 3]);

    drop(rx);
    assert!(sink.is_closed());
    assert!(sink.emit(&99).now_or_never().is_some());
    assert_eq!(sink.stats().dropped, 7, "an emit after the receiver left is a counted drop");
}

#[tokio::test]
async fn offload_drops_and_counts_while_the_inner_sink_is_parked() {
    let gate = Gate::<u32>::closed();
    let offload = Offload::new(Arc::clone(&gate), 4);

    assert!(offload.emit(&0).now_or_never().is_some());
    // The background task has taken event 0 and is now parked inside the gate.
    gate.entered.notified().await;

    for n in 1..=10 {
        assert!(offload.emit(&n).now_or_never().is_some(), "emit {n} did not complete at once");
    }
    assert_eq!(offload.pending(), 4);
    let stats = offload.stats();
    assert_eq!((stats.emitted, stats.dropped), (11, 6));
    assert!(gate.passed().is_empty(), "the consumer must still be parked");

    gate.open();
    let stats = offload.close().await;
    assert_eq!((stats.emitted, stats.dropped), (11, 6));
    assert_eq!(gate.passed(), [0, 1, 2, 3, 4]);
}
