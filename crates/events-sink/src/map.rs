//! [`Map`]: adapts a sink of `U` into a sink of `E` by converting each event,
//! typically to hand a channel an owned (or smaller) value. Neighbours: built
//! by [`SinkExt::map`](crate::SinkExt::map). Invariant: every event reaches the
//! inner sink exactly once, converted; `Map` itself never loses anything.

use std::fmt;

use async_trait::async_trait;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink that converts each event with a function before forwarding it.
///
/// # Example
///
/// ```
/// use events_sink::{ChannelSink, EventSink, Map};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (chan, mut rx) = ChannelSink::new(4);
/// let lengths = Map::new(chan, |s: &str| s.len());
/// lengths.emit("four").await;
/// assert_eq!(rx.recv().await, Some(4));
/// # });
/// ```
pub struct Map<S, F> {
    inner: S,
    f: F,
    counters: Counters,
}

impl<S, F> Map<S, F> {
    /// Wraps `inner`, converting each event with `f`.
    pub fn new(inner: S, f: F) -> Self {
        Map { inner, f, counters: Counters::default() }
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

impl<S: fmt::Debug, F> fmt::Debug for Map<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").field("inner", &self.inner).field("stats", &self.counters.snapshot()).finish()
    }
}

#[async_trait]
impl<E, U, S, F> EventSink<E> for Map<S, F>
where
    E: ?Sized + Sync,
    U: Send + Sync,
    S: EventSink<U>,
    F: Fn(&E) -> U + Send + Sync,
{
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        let mapped = (self.f)(event);
        self.inner.emit(&mapped).await;
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot().with_inner(self.inner.stats())
    }

    async fn flush(&self) {
        self.inner.flush().await;
    }
}
