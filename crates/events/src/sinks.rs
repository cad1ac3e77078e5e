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
//! `EventSink::stats` are summed into the feed's stats. Each sink is called
//! under its own unwind guard: a sink that panics is counted and logged by
//! name, and neither the sink task nor the other sinks notice.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events_core::Envelope;
use futures::FutureExt;
use tokio::sync::{mpsc, watch};

use events_sink::{SinkStats, Timeout};

use crate::EventSink;
use crate::stats::{Counters, SinkReport};

/// A sink as the builder collects it: its name and the sink.
pub(crate) type NamedSink<E> = (String, Arc<dyn EventSink<Envelope<E>>>);

/// One attached sink: its name, the sink (wrapped in its timeout) and how
/// often it panicked.
struct Attached<E> {
    name: String,
    sink: Arc<dyn EventSink<Envelope<E>>>,
    panics: AtomicU64,
}

/// The sinks of a feed, each already wrapped in its timeout.
pub(crate) struct SinkSet<E> {
    sinks: Arc<[Attached<E>]>,
}

impl<E> Clone for SinkSet<E> {
    fn clone(&self) -> Self {
        SinkSet { sinks: Arc::clone(&self.sinks) }
    }
}

impl<E: Send + Sync + 'static> SinkSet<E> {
    pub(crate) fn new(sinks: Vec<NamedSink<E>>, timeout: Option<Duration>) -> Self {
        let sinks = sinks
            .into_iter()
            .map(|(name, sink)| {
                let sink = match timeout {
                    None => sink,
                    Some(limit) => Arc::new(Timeout::new(sink, limit)) as Arc<dyn EventSink<Envelope<E>>>,
                };
                Attached { name, sink, panics: AtomicU64::new(0) }
            })
            .collect();
        SinkSet { sinks }
    }

    /// Calls every sink for `env`, one after another. A sink that panics is
    /// caught alone: the panic is logged with the sink's name and counted,
    /// the other sinks still get the event, and the panicking sink gets the
    /// next one (a bad event must not silence a sink for the feed's life).
    async fn emit(&self, env: &Envelope<E>) {
        for attached in self.sinks.iter() {
            if AssertUnwindSafe(attached.sink.emit(env)).catch_unwind().await.is_err() {
                let panics = attached.panics.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(sink = %attached.name, seq = env.seq.get(), panics, "sink panicked; it keeps receiving later events");
            }
        }
    }

    /// The sinks' own counters, summed: what their decorators dropped or
    /// cut short.
    pub(crate) fn stats(&self) -> SinkStats {
        self.sinks.iter().map(|s| s.sink.stats()).fold(SinkStats::default(), |mut acc, s| {
            acc.emitted += s.emitted;
            acc.filtered += s.filtered;
            acc.dropped += s.dropped;
            acc.timed_out += s.timed_out;
            acc.panicked += s.panicked;
            acc
        })
    }

    /// Each sink's figures.
    pub(crate) fn reports(&self) -> Vec<SinkReport> {
        self.sinks
            .iter()
            .map(|s| {
                let stats = s.sink.stats();
                // Caught here, or by an `Offload` inside the sink on its own task.
                SinkReport { name: s.name.clone(), panics: s.panics.load(Ordering::Relaxed) + stats.panicked, stats }
            })
            .collect()
    }
}

/// The writer's end of the sink queue.
pub(crate) struct SinkQueue<E> {
    tx: mpsc::Sender<Vec<Arc<Envelope<E>>>>,
}

impl<E: Send + Sync + 'static> SinkQueue<E> {
    /// Spawns the sink task on the current tokio runtime. The receiver
    /// turns `true` once the task has handed every queued batch to the
    /// sinks, after the writer dropped its end ([`Feed::close`](crate::Feed::close) waits for it).
    pub(crate) fn spawn(set: SinkSet<E>, capacity: usize) -> (Self, watch::Receiver<bool>) {
        let (tx, mut rx) = mpsc::channel::<Vec<Arc<Envelope<E>>>>(capacity);
        let (done_tx, done) = watch::channel(false);
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                for env in &batch {
                    set.emit(env).await;
                }
            }
            done_tx.send_replace(true);
        });
        (SinkQueue { tx }, done)
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
