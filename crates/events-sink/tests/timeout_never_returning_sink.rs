//! [`Timeout`] bounds a sink that never returns (on tokio's paused clock, so
//! no real time passes): each emit gives up at the limit and is counted, and
//! a [`Watched`] store whose sink hangs keeps appending.

use std::time::Duration;

use async_trait::async_trait;
use events_core::Envelope;
use events_sink::{DurableStore, EventSink, MemoryStore, Timeout, Watched};
use tokio::time::Instant;

struct NeverReturns;

#[async_trait]
impl<E: Sync + ?Sized> EventSink<E> for NeverReturns {
    async fn emit(&self, _event: &E) {
        std::future::pending::<()>().await;
    }
}

const LIMIT: Duration = Duration::from_millis(250);

#[tokio::test(start_paused = true)]
async fn timeout_bounds_each_emit_and_counts_it() {
    let sink = Timeout::new(NeverReturns, LIMIT);
    for n in 0..3u32 {
        let start = Instant::now();
        sink.emit(&n).await;
        let took = start.elapsed();
        assert!(took >= LIMIT && took < LIMIT * 2, "emit {n} took {took:?}");
    }
    let stats = EventSink::<u32>::stats(&sink);
    assert_eq!((stats.emitted, stats.timed_out, stats.lost()), (3, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn watched_store_keeps_appending_past_a_hung_sink() {
    let store = Watched::new(MemoryStore::new(), Timeout::new(NeverReturns, LIMIT));
    for n in 0..4u32 {
        let env = store.append(None, n).await.unwrap();
        assert_eq!(env.seq.get(), u64::from(n) + 1);
    }
    assert_eq!(store.store().len(), 4);
    assert_eq!(EventSink::<Envelope<u32>>::stats(store.sink()).timed_out, 4);
}
