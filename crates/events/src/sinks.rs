//! Sinks attached with [`FeedBuilder::sink`](crate::FeedBuilder::sink): the
//! writer hands each published batch to a bounded queue, and one background
//! task calls every sink for every envelope, in seq order.
//!
//! Invariant: sinks run strictly after durability and publication, and can
//! neither fail nor slow the writer: the hand-off is a `try_send`; a full
//! queue drops the batch and counts every envelope in it. This is the sink
//! crate's `Offload` + `Tee` + `Timeout` arrangement, specialised so that a
//! whole batch crosses the queue in one message.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use events_core::Envelope;
use tokio::sync::mpsc;

use crate::EventSink;
use crate::feed::Shared;
use crate::stats::Counters;

/// The sinks of a feed and how long each call may take.
pub(crate) struct SinkSet<E> {
    sinks: Vec<Arc<dyn EventSink<Envelope<E>>>>,
    timeout: Option<Duration>,
}

impl<E: Send + Sync + 'static> SinkSet<E> {
    pub(crate) fn new(sinks: Vec<Arc<dyn EventSink<Envelope<E>>>>, timeout: Option<Duration>) -> Self {
        SinkSet { sinks, timeout }
    }

    async fn emit(&self, env: &Envelope<E>, shared: &Shared) {
        for sink in &self.sinks {
            match self.timeout {
                None => sink.emit(env).await,
                Some(limit) => {
                    if tokio::time::timeout(limit, sink.emit(env)).await.is_err() {
                        Counters::bump(&shared.counters.sink_timeouts);
                        tracing::warn!(seq = %env.seq, ?limit, "sink call timed out");
                    }
                }
            }
        }
    }
}

/// The writer's end of the sink queue.
pub(crate) struct SinkQueue<E> {
    tx: mpsc::Sender<Vec<Arc<Envelope<E>>>>,
}

impl<E: Send + Sync + 'static> SinkQueue<E> {
    /// Spawns the sink task on the current tokio runtime.
    pub(crate) fn spawn(set: SinkSet<E>, capacity: usize, shared: &Arc<Shared>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Vec<Arc<Envelope<E>>>>(capacity);
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                for env in &batch {
                    set.emit(env, &shared).await;
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
