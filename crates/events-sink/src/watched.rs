//! [`Watched`]: decorates any [`DurableStore`] with an [`EventSink`] that is
//! told about each successful append; reads ([`EventLog`]) pass through. Neighbours: the store trait in
//! `store.rs`, any sink from this crate (wrap slow ones in
//! [`Offload`](crate::Offload)). Invariants: the sink is handed exactly the
//! appends that succeeded, every one of them (terminal events included), in
//! append order, even under concurrent appenders; a failed append is never
//! emitted; nothing the sink does (not even a panic) fails an append; an
//! emit cut short by a caller that dropped its `append` is counted in
//! [`WatchedStats::sink_cut`].

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use events_core::{Envelope, Seq, StreamId};
use futures::FutureExt;

use crate::{DurableStore, EventLog, EventSink};

/// Counters of a [`Watched`] store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct WatchedStats {
    /// Appends that succeeded (and were handed to the sink).
    pub appended: u64,
    /// Appends the store refused (never handed to the sink).
    pub failed: u64,
    /// Emits that panicked; the append still succeeded.
    pub sink_panics: u64,
    /// Emits cut short because the caller dropped its `append` future
    /// while the sink ran: the event is stored, the sink may not have it
    /// ([`reconcile`](crate::reconcile) closes the gap).
    pub sink_cut: u64,
}

/// A durable store whose successful appends are emitted to a sink.
///
/// Each `append` runs the store's append and then, only on success, awaits
/// `sink.emit(&envelope)` before returning the envelope. An async mutex is
/// held across both steps, so the sink sees appends in exactly the order the
/// store applied them, whatever the number of concurrent appenders. The price
/// is that appends through one `Watched` are serialized and wait for the sink:
/// give it a sink that returns at once ([`Offload`](crate::Offload),
/// [`ChannelSink`](crate::ChannelSink)) or a bounded one
/// ([`Timeout`](crate::Timeout)). A sink that panics is caught, logged and
/// counted; the append it observed still succeeds.
///
/// Emission is uniform: every stored event is emitted, terminal ones
/// included; wrap the sink in a [`Filter`](crate::Filter) to exclude some.
/// If the caller drops an `append` future after the store accepted the event
/// but before the sink finished, the event stays stored and the emit is cut
/// short (counted in [`WatchedStats::sink_cut`]), which is the best-effort
/// contract: consumers close such gaps with [`reconcile`](crate::reconcile).
/// A store that makes an event durable after its own `append` future was
/// dropped (the `events` façade's writer does) stores it with no emit and
/// no count here.
///
/// # Example
///
/// ```
/// use events_core::Seq;
/// use events_sink::{ChannelSink, DurableStore, MemoryStore, Watched};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (sink, mut rx) = ChannelSink::new(16);
/// let store = Watched::new(MemoryStore::new(), sink);
/// let env = store.append(None, "created".to_string()).await?;
/// assert_eq!(env.seq, Seq::new(1));
/// assert_eq!(rx.recv().await, Some(env));
///
/// store.store().fail_next(1);
/// assert!(store.append(None, "lost".to_string()).await.is_err());
/// assert!(rx.try_recv().is_err()); // a failed append is never emitted
/// # Ok::<(), events_sink::MemoryStoreError>(())
/// # }).unwrap();
/// ```
pub struct Watched<S, K> {
    store: S,
    sink: K,
    order: tokio::sync::Mutex<()>,
    appended: AtomicU64,
    failed: AtomicU64,
    sink_panics: AtomicU64,
    sink_cut: AtomicU64,
}

impl<S, K> Watched<S, K> {
    /// Attaches `sink` to `store`.
    pub fn new(store: S, sink: K) -> Self {
        Watched {
            store,
            sink,
            order: tokio::sync::Mutex::new(()),
            appended: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            sink_panics: AtomicU64::new(0),
            sink_cut: AtomicU64::new(0),
        }
    }

    /// The decorated store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The attached sink (for its [`stats`](EventSink::stats)).
    pub fn sink(&self) -> &K {
        &self.sink
    }

    /// Splits back into the store and the sink.
    pub fn into_parts(self) -> (S, K) {
        (self.store, self.sink)
    }

    /// This decorator's counters.
    pub fn stats(&self) -> WatchedStats {
        WatchedStats {
            appended: self.appended.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            sink_panics: self.sink_panics.load(Ordering::Relaxed),
            sink_cut: self.sink_cut.load(Ordering::Relaxed),
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug> fmt::Debug for Watched<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("store", &self.store)
            .field("sink", &self.sink)
            .field("stats", &self.stats())
            .finish()
    }
}

#[async_trait]
impl<E, S, K> EventLog<E> for Watched<S, K>
where
    E: Send + Sync + 'static,
    S: EventLog<E>,
    K: Send + Sync,
{
    type Error = S::Error;

    async fn events_after(&self, cursor: Seq, limit: usize) -> Result<Vec<Envelope<E>>, Self::Error> {
        self.store.events_after(cursor, limit).await
    }

    async fn newest(&self) -> Result<Option<Seq>, Self::Error> {
        self.store.newest().await
    }
}

#[async_trait]
impl<E, S, K> DurableStore<E> for Watched<S, K>
where
    E: Send + Sync + 'static,
    S: DurableStore<E>,
    K: EventSink<Envelope<E>>,
{
    async fn append(&self, stream: Option<StreamId>, event: E) -> Result<Envelope<E>, Self::Error> {
        // Held across append and emit: the order appends take this lock is the
        // order the store applies them and the order the sink sees them.
        let _order = self.order.lock().await;
        let env = match self.store.append(stream, event).await {
            Ok(env) => env,
            Err(err) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                return Err(err);
            }
        };
        self.appended.fetch_add(1, Ordering::Relaxed);
        // The append is durable now; nothing below may turn it into an error.
        // Called inside the guarded future: a sink written by hand can panic
        // before it returns its future.
        let cut = CutShort(Some(&self.sink_cut));
        if AssertUnwindSafe(async { self.sink.emit(&env).await }).catch_unwind().await.is_err() {
            self.sink_panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(seq = env.seq.get(), "event sink panicked; the append stands");
        }
        cut.finished();
        Ok(env)
    }
}

/// Counts an emit whose future is dropped before it finished.
struct CutShort<'a>(Option<&'a AtomicU64>);

impl CutShort<'_> {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for CutShort<'_> {
    fn drop(&mut self) {
        if let Some(cut) = self.0 {
            cut.fetch_add(1, Ordering::Relaxed);
        }
    }
}
