//! The two trivial sinks: [`FnSink`], which calls a synchronous closure for
//! each event, and [`Noop`], which ignores events. Neighbours: the decorators
//! wrap them like any sink. Invariant: neither ever awaits, so both are safe to
//! call on a writer's path as long as the closure is quick.

use std::fmt;

use async_trait::async_trait;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink that calls a closure for each event.
///
/// The closure is synchronous and runs inline in `emit`, on the caller's
/// thread; for work that awaits, implement [`EventSink`] and wrap it in
/// [`Offload`](crate::Offload). A closure that may block (synchronous I/O, a
/// lock, a sleep) goes on a thread of its own:
/// [`Offload::on_thread`](crate::Offload::on_thread) (or
/// `.offload_thread(capacity)`).
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// use events_sink::{EventSink, FnSink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let total = AtomicU32::new(0);
/// let sink = FnSink::new(|n: &u32| {
///     total.fetch_add(*n, Ordering::Relaxed);
/// });
/// sink.emit(&5).await;
/// assert_eq!(total.load(Ordering::Relaxed), 5);
/// assert_eq!(sink.stats().emitted, 1);
/// # });
/// ```
pub struct FnSink<F> {
    f: F,
    counters: Counters,
}

impl<F> FnSink<F> {
    /// A sink calling `f` for each event.
    pub fn new(f: F) -> Self {
        FnSink { f, counters: Counters::default() }
    }

    /// This sink's counters (the same as [`EventSink::stats`], without having
    /// to name the event type).
    pub fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

impl<F> fmt::Debug for FnSink<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnSink").field("stats", &self.counters.snapshot()).finish_non_exhaustive()
    }
}

#[async_trait]
impl<E, F> EventSink<E> for FnSink<F>
where
    E: ?Sized + Sync,
    F: Fn(&E) + Send + Sync,
{
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        (self.f)(event);
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

/// A sink that ignores every event and counts nothing: the placeholder when a
/// sink is required and none is wanted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Noop;

#[async_trait]
impl<E: ?Sized + Sync> EventSink<E> for Noop {
    async fn emit(&self, _event: &E) {}
}
