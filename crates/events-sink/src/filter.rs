//! [`Filter`]: passes on only the events a predicate accepts. This is how a
//! host excludes what it does not want (ephemeral events, one stream, terminal
//! events) while the emitting side stays uniform. Neighbours: built by
//! [`SinkExt::filter`](crate::SinkExt::filter). Invariant: a declined event is
//! counted as `filtered`, never as lost.

use std::fmt;

use async_trait::async_trait;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink that forwards only the events for which its predicate is `true`.
///
/// # Example
///
/// ```
/// use events_sink::{EventSink, Filter, FnSink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let odd = Filter::new(FnSink::new(|n: &u32| assert!(n % 2 == 1)), |n: &u32| n % 2 == 1);
/// for n in 0..4 {
///     odd.emit(&n).await;
/// }
/// assert_eq!(odd.stats().filtered, 2);
/// # });
/// ```
pub struct Filter<S, P> {
    inner: S,
    predicate: P,
    counters: Counters,
}

impl<S, P> Filter<S, P> {
    /// Wraps `inner`, forwarding the events `predicate` accepts.
    pub fn new(inner: S, predicate: P) -> Self {
        Filter { inner, predicate, counters: Counters::default() }
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

impl<S: fmt::Debug, P> fmt::Debug for Filter<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter").field("inner", &self.inner).field("stats", &self.counters.snapshot()).finish()
    }
}

#[async_trait]
impl<E, S, P> EventSink<E> for Filter<S, P>
where
    E: ?Sized + Sync,
    S: EventSink<E>,
    P: Fn(&E) -> bool + Send + Sync,
{
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        if (self.predicate)(event) {
            self.inner.emit(event).await;
        } else {
            self.counters.filtered();
        }
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot().with_inner(self.inner.stats())
    }

    async fn flush(&self) {
        self.inner.flush().await;
    }
}
