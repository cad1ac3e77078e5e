//! Completeness comes from the log, not the sink: a sink that drops every
//! second envelope feeds a consumer that detects each gap by seq and fills it
//! with [`reconcile`]; at the end the consumer holds the complete log, in
//! order, with no duplicate.

use std::sync::atomic::{AtomicU64, Ordering};

use events_core::{Envelope, Seq};
use events_sink::{ChannelSink, DurableStore, EventSink, FnSink, MemoryStore, Watched, reconcile};

const EVENTS: u64 = 101;

/// The consumer: applies live envelopes, reconciling from the store whenever
/// one does not follow the last seq it holds.
async fn apply(log: &mut Vec<Envelope<u64>>, store: &MemoryStore<u64>, live: Envelope<u64>) {
    let last = log.last().map_or(Seq::ZERO, |e| e.seq);
    if live.seq <= last {
        return; // already have it
    }
    if live.seq != last.next() {
        let missing = reconcile(store, last).await.unwrap();
        log.extend(missing.into_iter().filter(|e| e.seq < live.seq));
    }
    log.push(live);
}

#[tokio::test]
async fn lossy_sink_then_reconcile_yields_the_complete_log() {
    let (chan, mut rx) = ChannelSink::<Envelope<u64>>::new(EVENTS as usize);
    let calls = AtomicU64::new(0);
    let lossy = FnSink::new(move |env: &Envelope<u64>| {
        if calls.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            return; // drops every second envelope
        }
        chan.send_owned(env.clone()).unwrap();
    });
    let store = Watched::new(MemoryStore::new(), lossy);

    for n in 0..EVENTS {
        store.append(None, n * 10).await.unwrap();
    }

    let mut received = 0;
    let mut log = Vec::new();
    while let Ok(env) = rx.try_recv() {
        received += 1;
        apply(&mut log, store.store(), env).await;
    }
    assert_eq!(received, EVENTS.div_ceil(2), "the sink must really have lost half the events");

    // A consumer also reconciles when the live feed goes quiet (the tail gap).
    let last = log.last().map_or(Seq::ZERO, |e| e.seq);
    log.extend(reconcile(store.store(), last).await.unwrap());

    assert_eq!(log, store.store().snapshot());
    let seqs: Vec<u64> = log.iter().map(|e| e.seq.get()).collect();
    assert_eq!(seqs, (1..=EVENTS).collect::<Vec<_>>());
    assert_eq!(EventSink::<Envelope<u64>>::stats(store.sink()).emitted, EVENTS);
}

#[tokio::test]
async fn reconcile_reads_past_one_page() {
    let store = MemoryStore::new();
    let total = events_sink::RECONCILE_PAGE as u64 * 2 + 3;
    for n in 0..total {
        store.append(None, n).await.unwrap();
    }
    let all = reconcile(&store, Seq::ZERO).await.unwrap();
    assert_eq!(all.len() as u64, total);
    assert!(all.iter().zip(1..).all(|(e, s)| e.seq == Seq::new(s)));
    assert!(reconcile(&store, Seq::new(total)).await.unwrap().is_empty());
}

/// A log that grows by a page at each of its first 50 reads, as a busy
/// feed does while a consumer reconciles: `reconcile` reads up to the
/// newest event when it started (and the page that reaches it), then
/// returns. It read until a page came back empty: on a log that grows as
/// fast as it is read, it never returned, and held everything in memory.
#[tokio::test]
async fn reconcile_on_a_log_that_keeps_growing_returns_at_the_newest_when_it_started() {
    struct Growing {
        store: MemoryStore<u64>,
        reads: AtomicU64,
    }

    #[async_trait::async_trait]
    impl events_sink::EventLog<u64> for Growing {
        type Error = events_sink::MemoryStoreError;

        async fn events_after(&self, cursor: Seq, limit: usize) -> Result<Vec<Envelope<u64>>, Self::Error> {
            if self.reads.fetch_add(1, Ordering::Relaxed) < 50 {
                for n in 0..events_sink::RECONCILE_PAGE as u64 {
                    self.store.append(None, n).await?;
                }
            }
            self.store.events_after(cursor, limit).await
        }

        async fn newest(&self) -> Result<Option<Seq>, Self::Error> {
            self.store.newest().await
        }
    }

    let log = Growing { store: MemoryStore::new(), reads: AtomicU64::new(0) };
    for n in 0..10 {
        log.store.append(None, n).await.unwrap();
    }
    let missed = reconcile(&log, Seq::new(2)).await.unwrap();
    // Past 10 already: the first page, which holds the first read's growth too.
    let page = events_sink::RECONCILE_PAGE as u64;
    assert_eq!(missed.len() as u64, page, "{} events, the last {:?}", missed.len(), missed.last().map(|e| e.seq));
    assert!(missed.iter().map(|e| e.seq.get()).eq(3..3 + page));
}

/// A log that breaks its contract, each page starting one event before
/// the cursor it was asked for: `reconcile` keeps only what moved forward,
/// no event twice and none at or before `last_seen`. It had kept the whole
/// of each page, one duplicate per page and `last_seen` itself (found by
/// audit; its comment said it kept only what moved forward).
#[tokio::test]
async fn reconcile_keeps_only_what_moved_forward_of_pages_that_start_before_the_cursor() {
    struct OneBack(MemoryStore<u64>);

    #[async_trait::async_trait]
    impl events_sink::EventLog<u64> for OneBack {
        type Error = events_sink::MemoryStoreError;

        async fn events_after(&self, cursor: Seq, limit: usize) -> Result<Vec<Envelope<u64>>, Self::Error> {
            let from = Seq::new(cursor.get().saturating_sub(1));
            self.0.events_after(from, limit.min(7)).await
        }
    }

    let log = OneBack(MemoryStore::new());
    for n in 1..=30 {
        log.0.append(None, n).await.unwrap();
    }
    let missed = reconcile(&log, Seq::new(4)).await.unwrap();
    let seqs: Vec<u64> = missed.iter().map(|e| e.seq.get()).collect();
    assert_eq!(seqs, (5..=30).collect::<Vec<_>>());
}
