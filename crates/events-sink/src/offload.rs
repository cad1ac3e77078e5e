//! [`Offload`]: moves a sink's work onto a background tokio task behind a
//! bounded queue, so `emit` is a `try_send` that returns at once. This is the
//! tool that keeps a slow sink off a writer's path. Neighbours: built by
//! [`SinkExt::offload`](crate::SinkExt::offload); the background task drives
//! the wrapped sink. Invariants: `emit` never awaits anything; the wrapped sink
//! sees the accepted events in emit order; every event not accepted (queue
//! full, task gone) is counted as `dropped`, exactly once.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink that hands each event (cloned) to a background task driving the
/// wrapped sink, dropping and counting events when the queue is full.
///
/// Dropping the `Offload` lets the task finish the queued events and exit;
/// [`Offload::close`] does the same and waits for it.
///
/// # Example
///
/// ```
/// use events_sink::{ChannelSink, EventSink, Offload};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (chan, mut rx) = ChannelSink::new(8);
/// let offload = Offload::new(chan, 4);
/// offload.emit(&"hello".to_string()).await; // returns at once
/// let stats = offload.close().await; // waits until the inner sink saw it
/// assert_eq!(stats.dropped, 0);
/// assert_eq!(rx.recv().await.as_deref(), Some("hello"));
/// # });
/// ```
pub struct Offload<E: Sync> {
    tx: mpsc::Sender<E>,
    inner: Arc<dyn EventSink<E>>,
    task: JoinHandle<()>,
    counters: Counters,
}

impl<E: Clone + Send + Sync + 'static> Offload<E> {
    /// Spawns the background task driving `inner`, behind a queue of
    /// `capacity` events.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, or if `capacity` is 0.
    pub fn new<S: EventSink<E> + 'static>(inner: S, capacity: usize) -> Self {
        Self::new_shared(Arc::new(inner), capacity)
    }

    /// [`Offload::new`] for a sink that is already shared.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime, or if `capacity` is 0.
    pub fn new_shared(inner: Arc<dyn EventSink<E>>, capacity: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<E>(capacity);
        let driven = Arc::clone(&inner);
        let task = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                driven.emit(&event).await;
            }
        });
        Offload { tx, inner, task, counters: Counters::default() }
    }
}

impl<E: Sync> Offload<E> {
    /// Events accepted but not yet taken by the background task.
    pub fn pending(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }
}

impl<E: Sync> Offload<E> {
    /// Stops accepting events, waits until the background task has emitted
    /// every queued one, and returns the final counters.
    ///
    /// If the wrapped sink panicked, the task is gone; the panic is logged
    /// with `tracing` and the events it left queued are not delivered.
    pub async fn close(self) -> SinkStats {
        let Offload { tx, inner, task, counters } = self;
        drop(tx);
        if let Err(err) = task.await {
            tracing::error!(error = %err, "offloaded event sink task failed");
        }
        counters.snapshot().with_inner(inner.stats())
    }
}

impl<E: Sync> fmt::Debug for Offload<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offload")
            .field("capacity", &self.tx.max_capacity())
            .field("pending", &self.pending())
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<E: Clone + Send + Sync + 'static> EventSink<E> for Offload<E> {
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        match self.tx.try_send(event.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.counters.dropped(),
            Err(TrySendError::Closed(_)) => {
                // The task only exits early if the wrapped sink panicked.
                self.counters.dropped();
            }
        }
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot().with_inner(self.inner.stats())
    }
}
