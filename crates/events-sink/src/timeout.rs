//! [`Timeout`]: bounds each `emit` of the wrapped sink with
//! `tokio::time::timeout`, so a sink that hangs costs its caller at most the
//! limit. Neighbours: built by [`SinkExt::timeout`](crate::SinkExt::timeout);
//! pairs with [`Offload`](crate::Offload), which bounds the caller's cost at
//! zero by moving the wait elsewhere. Invariant: `emit` returns within the
//! limit (plus scheduling), and every cut-short emit is counted once. A
//! wrapped sink that blocks its thread is not cut short (a timeout acts at
//! await points only): that is [`Offload::on_thread`](crate::Offload::on_thread)'s job.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink whose every `emit` is bounded by a time limit.
///
/// When the limit passes, the inner `emit` future is dropped (cancelled) and
/// the event is counted as `timed_out`; the inner sink must therefore tolerate
/// cancellation at its await points, as any tokio future should. Requires a
/// tokio runtime with the time driver enabled.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use async_trait::async_trait;
/// use events_sink::{EventSink, SinkExt};
///
/// struct Hangs;
///
/// #[async_trait]
/// impl EventSink<u32> for Hangs {
///     async fn emit(&self, _: &u32) {
///         std::future::pending::<()>().await;
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let sink = Hangs.timeout(Duration::from_millis(50));
/// sink.emit(&1).await; // returns after 50 ms instead of never
/// assert_eq!(sink.stats().timed_out, 1);
/// # });
/// ```
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
    counters: Counters,
}

impl<S> Timeout<S> {
    /// Wraps `inner`, bounding each emit by `limit`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Timeout { inner, limit, counters: Counters::default() }
    }

    /// The limit each emit is bounded by.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner sink.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Timeout<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

#[async_trait]
impl<E, S> EventSink<E> for Timeout<S>
where
    E: ?Sized + Sync,
    S: EventSink<E>,
{
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        if tokio::time::timeout(self.limit, self.inner.emit(event)).await.is_err() {
            self.counters.timed_out();
            tracing::debug!(limit = ?self.limit, "event sink emit timed out");
        }
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot().with_inner(self.inner.stats())
    }

    // Not bounded by the limit: the limit is per event, and draining a queue
    // behind this sink may legitimately take many events' time.
    async fn flush(&self) {
        self.inner.flush().await;
    }
}
