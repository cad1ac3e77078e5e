//! The [`EventSink`] trait: a best-effort observer that is told about events
//! and returns nothing, so it cannot fail (or roll back) whatever produced them.
//! Neighbours: the decorators in this crate wrap it, [`Watched`](crate::Watched)
//! drives it after durable appends, and the façade drives it on its writer
//! path. Invariant: the trait stays dyn-compatible, so `Arc<dyn EventSink<E>>`
//! and `Box<dyn EventSink<E>>` are sinks too (the blanket impls below forward
//! both `emit` and `stats`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::SinkStats;

/// A best-effort observer of events.
///
/// `emit` returns nothing: a sink is a freshness feed, never a source of
/// truth, and it has no way to fail the write that produced the event.
/// Consumers that need completeness reconcile from the durable log (see
/// [`reconcile`](crate::reconcile)). A sink that may be slow should be wrapped
/// in [`Offload`](crate::Offload) or [`Timeout`](crate::Timeout) before it is
/// put on a writer's path. Both work at await points only: a sink that
/// blocks its thread (synchronous I/O, a `std::sync::Mutex`, a sleep) holds
/// whatever runtime thread runs it, and with it everything else scheduled
/// there. Put such a sink on a thread of its own with
/// [`Offload::on_thread`](crate::Offload::on_thread).
///
/// The trait is dyn-compatible through `async-trait`, and `Arc<S>`, `Box<S>`
/// and `&S` are sinks whenever `S` is (including `S = dyn EventSink<E>`).
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use async_trait::async_trait;
/// use events_sink::EventSink;
///
/// #[derive(Default)]
/// struct Sum(AtomicU64);
///
/// #[async_trait]
/// impl EventSink<u64> for Sum {
///     async fn emit(&self, event: &u64) {
///         self.0.fetch_add(*event, Ordering::Relaxed);
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sum = Arc::new(Sum::default());
/// let sink: Arc<dyn EventSink<u64>> = sum.clone();
/// sink.emit(&2).await;
/// sink.emit(&40).await;
/// assert_eq!(sum.0.load(Ordering::Relaxed), 42);
/// # });
/// ```
#[async_trait]
pub trait EventSink<E: ?Sized + Sync>: Send + Sync {
    /// Observes one event. Never fails; a sink that cannot keep up drops (and
    /// counts) rather than blocking, if it is built from this crate's tools.
    async fn emit(&self, event: &E);

    /// This sink's counters, including the losses of the sinks it wraps.
    /// Default: all zero (a sink that keeps no counters).
    fn stats(&self) -> SinkStats {
        SinkStats::default()
    }

    /// Waits until every event this sink accepted before the call has been
    /// emitted by whatever it hands events on to (an [`Offload`](crate::Offload)'s
    /// background task, each branch of a [`Tee`](crate::Tee)), without closing
    /// anything: the sink keeps accepting events during and after the call.
    /// Decorators forward it to the sinks they wrap. Default: nothing is
    /// queued, so nothing to wait for.
    async fn flush(&self) {}
}

#[async_trait]
impl<E, S> EventSink<E> for Arc<S>
where
    E: ?Sized + Sync,
    S: EventSink<E> + ?Sized,
{
    async fn emit(&self, event: &E) {
        (**self).emit(event).await;
    }

    fn stats(&self) -> SinkStats {
        (**self).stats()
    }

    async fn flush(&self) {
        (**self).flush().await;
    }
}

#[async_trait]
impl<E, S> EventSink<E> for Box<S>
where
    E: ?Sized + Sync,
    S: EventSink<E> + ?Sized,
{
    async fn emit(&self, event: &E) {
        (**self).emit(event).await;
    }

    fn stats(&self) -> SinkStats {
        (**self).stats()
    }

    async fn flush(&self) {
        (**self).flush().await;
    }
}

#[async_trait]
impl<E, S> EventSink<E> for &S
where
    E: ?Sized + Sync,
    S: EventSink<E> + ?Sized,
{
    async fn emit(&self, event: &E) {
        (**self).emit(event).await;
    }

    fn stats(&self) -> SinkStats {
        (**self).stats()
    }

    async fn flush(&self) {
        (**self).flush().await;
    }
}

/// A wrapped sink's counters (`stats`, the call of the sink's own
/// `EventSink::stats`), a panic in it caught and logged as `what`: nothing
/// counted from it this time. A decorator asked for its figures (an
/// `Offload`'s `close` after its drain) answers with its own.
pub(crate) fn caught_stats(stats: impl FnOnce() -> SinkStats, what: &str) -> SinkStats {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(stats)).unwrap_or_else(|_| {
        tracing::error!("the stats of {what} panicked; its figures are left out");
        SinkStats::default()
    })
}

/// Lets go of `value`, whose `Drop` runs the event type's own code, which
/// may panic: here a sink's own copy of an event it could not keep (a full
/// queue) or will not deliver (a queue dropped with its task). The panic
/// stays here, logged as `what`: an `emit` costs its caller nothing, and a
/// drain goes on to count the rest.
pub(crate) fn let_go<T>(value: T, what: &str) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::error!("the Drop of {what} panicked");
    }
}
