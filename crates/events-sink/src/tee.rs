//! [`Tee`]: one sink that emits to several, in the order they were added.
//! Neighbours: built by [`Tee::new`]/[`Tee::with`] or
//! [`SinkExt::tee`](crate::SinkExt::tee); the façade can hold one `Tee` for all
//! its configured sinks. Invariant: every branch sees every event, branch by
//! branch in insertion order, and a branch finishes an event before the next
//! branch starts it (so wrap slow branches in `Offload`/`Timeout`: a
//! timeout around the whole tee cuts the branches after a slow one off
//! that event, counted once); a branch
//! that panics is counted in the tee's `panicked` and the next branch still
//! gets the event (and the flush).

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink that forwards each event to several sinks in order.
///
/// Its stats report its own `emitted` and the sum of every branch's losses;
/// a branch's panic is caught, counted in `panicked` and logged, and the
/// branches after it still get the event.
///
/// # Example
///
/// ```
/// use events_sink::{ChannelSink, EventSink, Noop, Tee};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (a, mut rx_a) = ChannelSink::new(4);
/// let (b, mut rx_b) = ChannelSink::new(4);
/// let tee = Tee::new().with(a).with(b).with(Noop);
/// tee.emit(&7u8).await;
/// assert_eq!((rx_a.recv().await, rx_b.recv().await), (Some(7), Some(7)));
/// assert_eq!(tee.len(), 3);
/// assert_eq!(tee.branch_stats().iter().map(|s| s.emitted).collect::<Vec<_>>(), [1, 1, 0]);
/// # });
/// ```
pub struct Tee<E: ?Sized + Sync> {
    sinks: Vec<Arc<dyn EventSink<E>>>,
    counters: Counters,
}

impl<E: ?Sized + Sync> Tee<E> {
    /// A tee with no branches (emitting to it does nothing but count).
    pub fn new() -> Self {
        Tee { sinks: Vec::new(), counters: Counters::default() }
    }

    /// Adds a branch after the existing ones.
    pub fn push<K: EventSink<E> + 'static>(&mut self, sink: K) {
        self.sinks.push(Arc::new(sink));
    }

    /// Adds an already shared branch after the existing ones.
    pub fn push_shared(&mut self, sink: Arc<dyn EventSink<E>>) {
        self.sinks.push(sink);
    }

    /// Builder form of [`Tee::push`].
    #[must_use]
    pub fn with<K: EventSink<E> + 'static>(mut self, sink: K) -> Self {
        self.push(sink);
        self
    }

    /// The number of branches.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// Whether the tee has no branches.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// The branches, in the order they receive events: to flush or inspect
    /// one without taking the tee apart.
    pub fn branches(&self) -> &[Arc<dyn EventSink<E>>] {
        &self.sinks
    }

    /// Each branch's own counters, in branch order ([`stats`](EventSink::stats)
    /// sums their losses into one figure).
    pub fn branch_stats(&self) -> Vec<SinkStats> {
        self.sinks.iter().map(|sink| crate::sink::caught_stats(|| sink.stats(), "a tee branch")).collect()
    }
}

impl<E: ?Sized + Sync> Drop for Tee<E> {
    /// Lets go of each branch on its own, under a catch: dropped with the
    /// vector, a branch whose `Drop` panicked had the rest dropped while
    /// that panic unwound, and a second one aborted the process.
    fn drop(&mut self) {
        for sink in self.sinks.drain(..) {
            crate::sink::let_go(sink, "a tee branch");
        }
    }
}

impl<E: ?Sized + Sync> Default for Tee<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: ?Sized + Sync> FromIterator<Arc<dyn EventSink<E>>> for Tee<E> {
    fn from_iter<I: IntoIterator<Item = Arc<dyn EventSink<E>>>>(iter: I) -> Self {
        Tee { sinks: iter.into_iter().collect(), counters: Counters::default() }
    }
}

impl<E: ?Sized + Sync> fmt::Debug for Tee<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tee").field("branches", &self.sinks.len()).field("stats", &self.counters.snapshot()).finish()
    }
}

#[async_trait]
impl<E: ?Sized + Sync> EventSink<E> for Tee<E> {
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        for (branch, sink) in self.sinks.iter().enumerate() {
            if AssertUnwindSafe(async { sink.emit(event).await }).catch_unwind().await.is_err() {
                self.counters.panicked();
                tracing::error!(branch, "a tee branch panicked; the next branches still get the event");
            }
        }
    }

    fn stats(&self) -> SinkStats {
        self.branch_stats().into_iter().fold(self.counters.snapshot(), SinkStats::with_inner)
    }

    /// Flushes every branch, in branch order (a panicking flush is logged).
    async fn flush(&self) {
        for (branch, sink) in self.sinks.iter().enumerate() {
            if AssertUnwindSafe(async { sink.flush().await }).catch_unwind().await.is_err() {
                tracing::error!(branch, "a tee branch panicked in flush; the next branches are still flushed");
            }
        }
    }
}
