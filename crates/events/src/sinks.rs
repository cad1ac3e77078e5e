//! Sinks attached with [`FeedBuilder::sink`](crate::FeedBuilder::sink): the
//! writer hands each published batch to a bounded queue, and one background
//! task calls every sink for every envelope, in seq order.
//!
//! Invariant: sinks run strictly after durability and publication, and can
//! neither fail nor slow the writer: the hand-off is a `try_send`; a full
//! queue drops the batch and counts every envelope in it. This is the sink
//! crate's `Offload` + `Tee` arrangement, specialised so that a whole batch
//! crosses the queue in one message (one queue operation per fsync, not per
//! event); each sink is wrapped in the sink crate's `Timeout` when a timeout
//! is configured, and the counters every sink reports through
//! `EventSink::stats` are summed into the feed's stats.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use events_core::Envelope;
use tokio::sync::mpsc;

use events_sink::{SinkStats, Timeout};

use crate::EventSink;
use crate::stats::Counters;

/// The sinks of a feed, each already wrapped in its timeout.
#[derive(Clone)]
pub(crate) struct SinkSet<E> {
    sinks: Arc<[Arc<dyn EventSink<Envelope<E>>>]>,
}

impl<E: Send + Sync + 'static> SinkSet<E> {
    pub(crate) fn new(sinks: Vec<Arc<dyn EventSink<Envelope<E>>>>, timeout: Option<Duration>) -> Self {
        let sinks = sinks
            .into_iter()
            .map(|sink| match timeout {
                None => sink,
                Some(limit) => Arc::new(Timeout::new(sink, limit)) as Arc<dyn EventSink<Envelope<E>>>,
            })
            .collect();
        SinkSet { sinks }
    }

    async fn emit(&self, env: &Envelope<E>) {
        for sink in self.sinks.iter() {
            sink.emit(env).await;
        }
    }

    /// The sinks' own counters, summed: what their decorators dropped or
    /// cut short.
    pub(crate) fn stats(&self) -> SinkStats {
        self.sinks.iter().map(|s| s.stats()).fold(SinkStats::default(), |mut acc, s| {
            acc.emitted += s.emitted;
            acc.filtered += s.filtered;
            acc.dropped += s.dropped;
            acc.timed_out += s.timed_out;
            acc
        })
    }
}

/// The writer's end of the sink queue.
pub(crate) struct SinkQueue<E> {
    tx: mpsc::Sender<Vec<Arc<Envelope<E>>>>,
}

impl<E: Send + Sync + 'static> SinkQueue<E> {
    /// Spawns the sink task on the current tokio runtime.
    pub(crate) fn spawn(set: SinkSet<E>, capacity: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<Arc<Envelope<E>>>>(capacity);
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                for env in &batch {
                    set.emit(env).await;
                }
            }
        });
        SinkQueue { tx }
    }

    /// Hands a published batch to the sinks without waiting.
    pub(crate) fn dispatch(&self, batch: Vec<Arc<Envelope<E>>>, counters: &Counters) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.tx.try_send(batch) {
            let lost = match &e {
                mpsc::error::TrySendError::Full(b) | mpsc::error::TrySendError::Closed(b) => b.len(),
            };
            counters.sink_dropped.fetch_add(lost as u64, Ordering::Relaxed);
        }
    }
}
