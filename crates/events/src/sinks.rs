//! Sinks attached with [`FeedBuilder::sink`](crate::FeedBuilder::sink): the
//! writer hands each published batch to every sink's own bounded queue, and
//! one background task per sink calls it for every envelope, in seq order.
//!
//! Invariant: sinks run strictly after durability and publication, and can
//! neither fail nor slow the writer, nor each other: the hand-off is a
//! `try_send` per sink; a full queue drops the batch for that sink alone and
//! counts every envelope in it. This is the sink crate's `Offload` + `Tee`
//! arrangement, specialised so that a whole batch crosses each queue in one
//! message (one queue operation per sink and fsync, not per event); each
//! sink is wrapped in the sink crate's `Timeout` when a timeout is
//! configured, and the counters every sink reports through
//! `EventSink::stats` are summed into the feed's stats. Each call is made
//! under an unwind guard: a sink that panics is counted and logged by name,
//! and neither its task nor the other sinks notice; a sink that never
//! returns loses its own events, not the others'. The tasks run on the
//! application's runtime, so that promise holds for a sink that waits at
//! await points; one that blocks its thread must bring its own
//! (`events_sink::Offload::on_thread`), or it holds a runtime thread. When the feed closes,
//! each task flushes its sink after the last batch (`EventSink::flush`), so
//! a sink that queues or buffers (an `Offload`) has delivered what it took
//! when `Feed::close` returns, within its wait. A task dropped before it
//! delivered its queue (its runtime shut down) counts what it lost. The
//! sinks of a feed reopened in the same process start after those of the
//! previous feed on the directory finished (within its `sink_close_wait`),
//! so a sink given to both sees seqs in order.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events_core::Envelope;
use futures::FutureExt;
use tokio::sync::{mpsc, watch};

use events_sink::{SinkStats, Timeout};

use crate::EventSink;
use crate::shared::Shared;
use crate::stats::{Counters, SinkReport};

/// One attached sink: its name, the sink (wrapped in its timeout once the
/// feed opens), how often it panicked and what its full queue dropped.
/// The builder holds its sinks as these from the start, so one dropped
/// unused lets them go under the same catch.
pub(crate) struct Attached<E> {
    name: String,
    /// `None` only inside `drop`.
    sink: Option<Arc<dyn EventSink<Envelope<E>>>>,
    panics: AtomicU64,
    queue_dropped: AtomicU64,
}

impl<E> Drop for Attached<E> {
    /// The sink goes wherever the feed's last holder of the set lets it go:
    /// `Feed::close`, the drop of the last handle, a sink's task, the
    /// writer thread, or a builder dropped unused. A sink whose own `Drop` panics is caught and logged
    /// there: it had unwound into the caller of `close`, after the journal
    /// had closed cleanly.
    fn drop(&mut self) {
        let sink = self.sink.take();
        if let Err(panic) = crate::error::isolated("Drop", move || drop(sink)) {
            crate::error::logged(
                || tracing::error!(sink = %self.name, error = %panic, "sink panicked when it was let go"),
            );
        }
    }
}

impl<E: Send + Sync + 'static> Attached<E> {
    /// A sink as the builder collects it, before any timeout wraps it.
    pub(crate) fn new(name: String, sink: Arc<dyn EventSink<Envelope<E>>>) -> Self {
        Attached { name, sink: Some(sink), panics: AtomicU64::new(0), queue_dropped: AtomicU64::new(0) }
    }

    fn sink(&self) -> &Arc<dyn EventSink<Envelope<E>>> {
        self.sink.as_ref().expect("taken only by drop")
    }

    /// The sink's own counters ([`EventSink::stats`]); all zero, and
    /// logged, when that call panics: one sink's bad `stats` must not take
    /// the feed's figures (and `/status`) down with it.
    fn own_stats(&self) -> SinkStats {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.sink().stats())).unwrap_or_else(|_| {
            crate::error::logged(
                || tracing::warn!(sink = %self.name, "sink panicked in its stats(); its figures read as zero"),
            );
            SinkStats::default()
        })
    }
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
    pub(crate) fn new(mut sinks: Vec<Attached<E>>, timeout: Option<Duration>) -> Self {
        if let Some(limit) = timeout {
            for attached in &mut sinks {
                let sink = attached.sink.take().expect("taken only by drop");
                attached.sink = Some(Arc::new(Timeout::new(sink, limit)));
            }
        }
        SinkSet { sinks: sinks.into() }
    }

    /// Calls sink `index` with `env`. A panic is caught: it is logged with
    /// the sink's name and counted, and the sink gets the next event (a bad
    /// event must not silence a sink for the feed's life).
    async fn emit(&self, index: usize, env: &Envelope<E>) {
        let attached = &self.sinks[index];
        if AssertUnwindSafe(async { attached.sink().emit(env).await }).catch_unwind().await.is_err() {
            let panics = attached.panics.fetch_add(1, Ordering::Relaxed) + 1;
            crate::error::logged(
                || tracing::error!(sink = %attached.name, seq = env.seq.get(), panics, "sink panicked; it keeps receiving later events"),
            );
        }
    }

    /// Flushes sink `index` ([`EventSink::flush`]), once the feed closes.
    /// A panic is caught, logged and counted as in [`emit`](Self::emit).
    async fn flush(&self, index: usize) {
        let attached = &self.sinks[index];
        if AssertUnwindSafe(async { attached.sink().flush().await }).catch_unwind().await.is_err() {
            let panics = attached.panics.fetch_add(1, Ordering::Relaxed) + 1;
            crate::error::logged(
                || tracing::error!(sink = %attached.name, panics, "sink panicked in its flush at close"),
            );
        }
    }

    /// Counts `lost` envelopes that sink `index` will never get (its queue
    /// was full, or its task was dropped before it delivered them).
    fn count_lost(&self, index: usize, lost: usize, counters: &Counters) {
        counters.sink_dropped.fetch_add(lost as u64, Ordering::Relaxed);
        self.sinks[index].queue_dropped.fetch_add(lost as u64, Ordering::Relaxed);
    }

    /// The sinks' own counters, summed: what their decorators dropped or
    /// cut short.
    pub(crate) fn stats(&self) -> SinkStats {
        self.sinks.iter().map(Attached::own_stats).fold(SinkStats::default(), |mut acc, s| {
            // A sink's counters are its own: one near `u64::MAX` saturates
            // the total rather than overflow (a panic in a debug build).
            acc.emitted = acc.emitted.saturating_add(s.emitted);
            acc.filtered = acc.filtered.saturating_add(s.filtered);
            acc.dropped = acc.dropped.saturating_add(s.dropped);
            acc.timed_out = acc.timed_out.saturating_add(s.timed_out);
            acc.panicked = acc.panicked.saturating_add(s.panicked);
            acc
        })
    }

    /// Each sink's figures.
    pub(crate) fn reports(&self) -> Vec<SinkReport> {
        self.sinks
            .iter()
            .map(|s| {
                let stats = s.own_stats();
                // Caught here, or by an `Offload` inside the sink on its own task.
                SinkReport {
                    name: s.name.clone(),
                    panics: s.panics.load(Ordering::Relaxed).saturating_add(stats.panicked),
                    queue_dropped: s.queue_dropped.load(Ordering::Relaxed),
                    stats,
                }
            })
            .collect()
    }
}

/// Published envelopes, as one batch crosses every sink's queue; its last
/// holder lets each go under a catch of its own (as [`LiveChunk`](crate::shared::LiveChunk)).
type Batch<E> = Arc<crate::error::LetGo<Arc<Envelope<E>>>>;

/// The writer's end of the sinks' queues.
pub(crate) struct SinkQueue<E> {
    set: SinkSet<E>,
    /// One per sink, in the set's order.
    queues: Vec<mpsc::Sender<Batch<E>>>,
}

/// Turns the `done` receiver `true` when the last sink task lets go of it.
struct AllDone(watch::Sender<bool>);

impl Drop for AllDone {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// A sink task's queue and the batch it is delivering. Dropped before it
/// delivered them (its runtime shut down while the sink was slow or stuck,
/// perhaps after `close` gave up waiting), it counts what is left as lost
/// for that sink, as a full queue's batches are: the rest of the batch
/// (the envelope in the sink's hands included) and every queued one.
struct Delivery<E: Send + Sync + 'static> {
    rx: mpsc::Receiver<Batch<E>>,
    /// The batch being delivered, and how many of it the sink got.
    current: Option<(Batch<E>, usize)>,
    set: SinkSet<E>,
    index: usize,
    shared: Arc<Shared>,
}

impl<E: Send + Sync + 'static> Drop for Delivery<E> {
    fn drop(&mut self) {
        self.rx.close();
        let mut lost = 0;
        let mut undelivered = Vec::new();
        if let Some((batch, sent)) = self.current.take() {
            lost += batch.len() - sent;
            undelivered.push(batch);
        }
        while let Ok(batch) = self.rx.try_recv() {
            lost += batch.len();
            undelivered.push(batch);
        }
        // Perhaps their last references: a `Drop` that panics is caught.
        let _ = crate::error::isolated("Drop", move || drop(undelivered));
        if lost > 0 {
            self.set.count_lost(self.index, lost, &self.shared.counters);
            let name = &self.set.sinks[self.index].name;
            tracing::warn!(sink = %name, lost, "sink task ended before delivering every event (its runtime shut down)");
        }
    }
}

impl<E: Send + Sync + 'static> SinkQueue<E> {
    /// Spawns one task per sink on the current tokio runtime, each behind
    /// a queue of `capacity` batches. The receiver turns `true` once every
    /// task has handed every queued batch to its sink, after the writer
    /// dropped its end ([`Feed::close`](crate::Feed::close) waits for it).
    /// What a task drops undelivered is counted in `shared`'s counters.
    /// While the sinks of the previous feed this process opened on the
    /// directory are still delivering, each task waits for them first (at
    /// most `wait`, the feed's `sink_close_wait`): a sink shared across a
    /// reopen sees seqs in order.
    pub(crate) fn spawn(
        set: SinkSet<E>,
        capacity: usize,
        shared: &Arc<Shared>,
        wait: Duration,
    ) -> (Self, watch::Receiver<bool>) {
        let (done_tx, done) = watch::channel(false);
        let previous = crate::writers::hand_over_sinks(&shared.dir, done.clone());
        let all_done = Arc::new(AllDone(done_tx));
        let queues = (0..set.sinks.len())
            .map(|index| {
                let (tx, rx) = mpsc::channel::<Batch<E>>(capacity);
                let mut delivery = Delivery { rx, current: None, set: set.clone(), index, shared: Arc::clone(shared) };
                let (all_done, previous) = (Arc::clone(&all_done), previous.clone());
                tokio::spawn(async move {
                    if let Some(mut previous) = previous {
                        let _ = tokio::time::timeout(wait, previous.wait_for(|done| *done)).await;
                    }
                    while let Some(batch) = delivery.rx.recv().await {
                        delivery.current = Some((Arc::clone(&batch), 0));
                        for env in batch.iter() {
                            delivery.set.emit(index, env).await;
                            if let Some((_, sent)) = &mut delivery.current {
                                *sent += 1;
                            }
                            // A sink always ready (no await inside) had run
                            // a whole batch, up to 4,096 calls, in one poll,
                            // holding off the acknowledgements, the streams
                            // and the sessions of a current-thread runtime.
                            tokio::task::coop::consume_budget().await;
                        }
                        // The batch's last references when the kept
                        // envelopes let it go already: an event whose
                        // `Drop` panics must not end the task, whose sink
                        // would get nothing more.
                        let delivered = (delivery.current.take(), batch);
                        if let Err(e) = crate::error::isolated("Drop", move || drop(delivered)) {
                            let name = &delivery.set.sinks[index].name;
                            crate::error::logged(|| tracing::warn!(sink = %name, error = %e, "an event's Drop panicked after its sink got it"));
                        }
                    }
                    // The writer is gone: what the sink queued of its own
                    // (an `Offload`, a buffer written out in `flush`) goes
                    // out before `close` counts it done.
                    delivery.set.flush(index).await;
                    drop(all_done);
                });
                tx
            })
            .collect();
        (SinkQueue { set, queues }, done)
    }

    /// Hands a published batch to every sink without waiting; a sink whose
    /// queue is full loses it (counted), the others do not.
    pub(crate) fn dispatch(&self, batch: Vec<Arc<Envelope<E>>>, counters: &Counters) {
        if batch.is_empty() {
            return;
        }
        let batch: Batch<E> = Arc::new(batch.into());
        for (index, queue) in self.queues.iter().enumerate() {
            if queue.try_send(Arc::clone(&batch)).is_err() {
                self.set.count_lost(index, batch.len(), counters);
            }
        }
    }
}
