//! The combinators compose: blanket impls make `Arc<dyn EventSink>`, `Box`
//! and `&S` sinks; `Filter`, `Map` and `Tee` forward what they should, in
//! order; `Offload` preserves order; the outermost sink's stats report the
//! losses of everything it wraps.

mod support;

use std::sync::Arc;
use std::time::Duration;

use events_sink::{ChannelSink, EventSink, FnSink, Noop, Offload, SinkExt, Tee, TracingSink};
use support::Recorder;

#[tokio::test]
async fn blanket_impls_make_pointers_and_trait_objects_sinks() {
    let recorder = Recorder::<u8>::new();
    let shared: Arc<dyn EventSink<u8>> = Arc::clone(&recorder) as Arc<dyn EventSink<u8>>;
    let boxed: Box<dyn EventSink<u8>> = Box::new(Arc::clone(&shared));
    let by_ref = &boxed;
    shared.emit(&1).await;
    boxed.emit(&2).await;
    by_ref.emit(&3).await;
    Noop.emit(&4u8).await;
    assert_eq!(recorder.seen(), [1, 2, 3]);
}

#[tokio::test]
async fn filter_map_tee_forward_in_order_and_stats_aggregate() {
    let evens = Recorder::<String>::new();
    let (small, mut small_rx) = ChannelSink::<u32>::new(2);
    let sink = Tee::new()
        .with(Arc::clone(&evens).map(|n: &u32| format!("#{n}")).filter(|n: &u32| n.is_multiple_of(2)))
        .with(small)
        .with(TracingSink::default())
        .timeout(Duration::from_secs(1));

    for n in 0..6u32 {
        sink.emit(&n).await;
    }

    assert_eq!(evens.seen(), ["#0", "#2", "#4"]);
    assert_eq!((small_rx.recv().await, small_rx.recv().await), (Some(0), Some(1)));
    let stats = sink.stats();
    assert_eq!((stats.emitted, stats.filtered, stats.dropped, stats.timed_out), (6, 3, 4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offload_preserves_order() {
    let recorder = Recorder::<u32>::yielding();
    let offload = Arc::clone(&recorder).offload(1000);
    for n in 0..1000 {
        offload.emit(&n).await;
    }
    let stats = offload.close().await;
    assert_eq!((stats.emitted, stats.dropped), (1000, 0));
    assert_eq!(recorder.seen(), (0..1000).collect::<Vec<_>>());
}

#[tokio::test]
async fn offload_counts_inner_losses_and_shared_tee_branches() {
    let (chan, mut rx) = ChannelSink::<u32>::new(1);
    let offload = Offload::new(chan.clone(), 8);
    for n in 0..3 {
        offload.emit(&n).await;
    }
    let stats = offload.close().await;
    assert_eq!((stats.emitted, stats.dropped), (3, 2), "the inner channel's drops surface");
    assert_eq!(rx.recv().await, Some(0));

    let tee: Tee<u32> = [FnSink::new(|_: &u32| {}).shared(), Noop.shared()].into_iter().collect();
    tee.emit(&1).await;
    assert_eq!((tee.len(), tee.stats().emitted), (2, 1));
}

/// A panicking branch does not hide the event (or the flush) from the
/// branches after it: counted in the tee's `panicked`, logged.
#[tokio::test]
async fn a_panicking_tee_branch_is_counted_and_the_next_branches_still_get_the_event() {
    use futures::FutureExt;

    struct Panics;

    #[async_trait::async_trait]
    impl EventSink<u32> for Panics {
        async fn emit(&self, _: &u32) {
            panic!("a branch panicked");
        }
        async fn flush(&self) {
            panic!("a branch panicked in flush");
        }
    }

    /// Counts its flushes.
    struct Flushed(Arc<std::sync::atomic::AtomicUsize>);

    #[async_trait::async_trait]
    impl EventSink<u32> for Flushed {
        async fn emit(&self, _: &u32) {}
        async fn flush(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    let (chan, mut rx) = ChannelSink::new(4);
    let flushed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tee = Tee::new().with(Panics).with(chan).with(Flushed(Arc::clone(&flushed)));
    let caught = std::panic::AssertUnwindSafe(tee.emit(&7)).catch_unwind().await;
    assert!(caught.is_ok(), "the panic unwound out of the tee");
    assert_eq!(rx.try_recv().ok(), Some(7), "the branch after the panicking one lost the event");
    assert!(std::panic::AssertUnwindSafe(tee.flush()).catch_unwind().await.is_ok());
    assert_eq!(flushed.load(std::sync::atomic::Ordering::SeqCst), 1, "the last branch was not flushed");
    let stats = tee.stats();
    assert_eq!((stats.emitted, stats.panicked, stats.lost()), (1, 1, 1));
}

/// A tee whose branches' `Drop`s panic, even while another's unwinds:
/// dropped, it lets go of each branch under its own catch and returns.
/// Dropped with the tee's vector, the second panic aborted the process.
#[test]
fn a_tee_whose_branches_panic_when_dropped_drops_them_all_and_returns() {
    struct Brittle(Arc<std::sync::atomic::AtomicUsize>);

    #[async_trait::async_trait]
    impl EventSink<u32> for Brittle {
        async fn emit(&self, _: &u32) {}
    }

    impl Drop for Brittle {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            panic!("a branch panicked when dropped");
        }
    }

    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tee = Tee::new().with(Brittle(Arc::clone(&dropped))).with(Brittle(Arc::clone(&dropped)));
    drop(tee);
    assert_eq!(dropped.load(std::sync::atomic::Ordering::Relaxed), 2);
}
