//! [`SinkExt`]: the combinator methods (`filter`, `map`, `timeout`, `offload`,
//! `tee`, `boxed`, `shared`) that build decorated sinks fluently. Neighbours:
//! each method is a thin constructor for a decorator in its own module.
//! Invariant: it is implemented for every [`EventSink`], and adds no behaviour
//! of its own.

use std::sync::Arc;
use std::time::Duration;

use crate::{EventSink, Filter, Map, Offload, Tee, Timeout};

/// Combinators for every [`EventSink`].
///
/// For a sink that accepts many event types ([`Noop`](crate::Noop), a user
/// sink generic over `E`), the methods that never mention the event type
/// (`timeout`, `boxed`, `shared`) cannot infer it: name it
/// (`SinkExt::<u32>::timeout(sink, limit)`) or call the constructor
/// ([`Timeout::new`]).
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use events_sink::{ChannelSink, EventSink, SinkExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let (chan, mut rx) = ChannelSink::<String>::new(16);
/// // Keep even numbers, render them, and never spend more than 10 ms on one.
/// let sink = chan
///     .map(|n: &u32| format!("n={n}"))
///     .filter(|n: &u32| n.is_multiple_of(2))
///     .timeout(Duration::from_millis(10));
/// for n in 0..5 {
///     sink.emit(&n).await;
/// }
/// assert_eq!(rx.recv().await.as_deref(), Some("n=0"));
/// assert_eq!(rx.recv().await.as_deref(), Some("n=2"));
/// assert_eq!(rx.recv().await.as_deref(), Some("n=4"));
/// let stats = sink.stats();
/// assert_eq!((stats.emitted, stats.filtered, stats.lost()), (5, 2, 0));
/// # });
/// ```
pub trait SinkExt<E: ?Sized + Sync>: EventSink<E> + Sized {
    /// Passes on only the events for which `predicate` returns `true`; the
    /// others are counted as `filtered`.
    fn filter<P>(self, predicate: P) -> Filter<Self, P>
    where
        P: Fn(&E) -> bool + Send + Sync,
    {
        Filter::new(self, predicate)
    }

    /// Adapts this sink of `E` into a sink of `T` by converting each event
    /// with `f` (for example, to an owned or smaller value).
    fn map<T, F>(self, f: F) -> Map<Self, F>
    where
        T: ?Sized + Sync,
        F: Fn(&T) -> E + Send + Sync,
        E: Sized + Send,
    {
        Map::new(self, f)
    }

    /// Bounds each `emit` by `limit`; an emit that takes longer is cancelled
    /// and counted as `timed_out`.
    fn timeout(self, limit: Duration) -> Timeout<Self> {
        Timeout::new(self, limit)
    }

    /// Moves the work onto a background task behind a queue of `capacity`
    /// events, so `emit` returns at once; full queue → dropped and counted.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, or if `capacity` is 0 or
    /// above [`Offload::MAX_CAPACITY`].
    fn offload(self, capacity: usize) -> Offload<E>
    where
        E: Clone + Send + 'static,
        Self: 'static,
    {
        Offload::new(self, capacity)
    }

    /// [`offload`](Self::offload) onto a thread and runtime of its own
    /// ([`Offload::on_thread`]), for a sink that blocks the thread it runs on.
    ///
    /// # Errors
    ///
    /// The thread or its runtime could not be started.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0 or above [`Offload::MAX_CAPACITY`].
    fn offload_thread(self, capacity: usize) -> std::io::Result<Offload<E>>
    where
        E: Clone + Send + 'static,
        Self: 'static,
    {
        Offload::on_thread(self, capacity)
    }

    /// Emits to this sink, then to `other`, in that order.
    fn tee<K>(self, other: K) -> Tee<E>
    where
        K: EventSink<E> + 'static,
        Self: 'static,
    {
        Tee::new().with(self).with(other)
    }

    /// Type-erases this sink behind a `Box`.
    fn boxed(self) -> Box<dyn EventSink<E>>
    where
        Self: 'static,
    {
        Box::new(self)
    }

    /// Type-erases this sink behind an `Arc`, the form the façade's builder
    /// and [`Tee`] store.
    fn shared(self) -> Arc<dyn EventSink<E>>
    where
        Self: 'static,
    {
        Arc::new(self)
    }
}

impl<E: ?Sized + Sync, S: EventSink<E>> SinkExt<E> for S {}
