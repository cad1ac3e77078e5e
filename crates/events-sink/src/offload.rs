//! [`Offload`]: moves a sink's work onto a background tokio task behind a
//! bounded queue, so `emit` is a `try_send` that returns at once. This is the
//! tool that keeps a slow sink off a writer's path. Neighbours: built by
//! [`SinkExt::offload`](crate::SinkExt::offload); the background task drives
//! the wrapped sink. Invariants: `emit` never awaits anything; the wrapped sink
//! sees the accepted events in emit order; every event not delivered (queue
//! full, task gone, offload shut down) is counted as `dropped`, exactly once;
//! `flush` and `shutdown` work through a shared reference, so an `Offload`
//! deep inside a `Tee` or an `Arc` can be drained where it stands.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// What crosses the queue: events, and markers that order a flush or a stop
/// after every event queued before them.
enum Msg<E> {
    Event(E),
    Flush(oneshot::Sender<()>),
    Stop,
}

/// A sink that hands each event (cloned) to a background task driving the
/// wrapped sink, dropping and counting events when the queue is full.
///
/// [`flush`](EventSink::flush) waits until the task has emitted every event
/// queued before it (and flushed the wrapped sink) and leaves the offload
/// running; [`shutdown`](Offload::shutdown) does the same and then stops it,
/// so later events are dropped and counted. Both take `&self`. Dropping the
/// `Offload` lets the task finish the queued events and exit.
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
/// offload.flush().await; // waits until the inner sink saw it
/// assert_eq!(rx.recv().await.as_deref(), Some("hello"));
/// offload.emit(&"still open".to_string()).await;
/// let stats = offload.close().await; // drains, stops, reports
/// assert_eq!((stats.emitted, stats.dropped), (2, 0));
/// # });
/// ```
pub struct Offload<E: Sync> {
    tx: mpsc::Sender<Msg<E>>,
    inner: Arc<dyn EventSink<E>>,
    task: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
    counters: Arc<Counters>,
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
        let (tx, rx) = mpsc::channel::<Msg<E>>(capacity);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(drive(Arc::clone(&inner), rx, Arc::clone(&counters)));
        Offload { tx, inner, task: Mutex::new(Some(task)), stopped: AtomicBool::new(false), counters }
    }
}

/// The background task: emits queued events in order, answers flushes, and
/// after a stop counts whatever was queued behind it as dropped.
async fn drive<E: Sync>(sink: Arc<dyn EventSink<E>>, mut rx: mpsc::Receiver<Msg<E>>, counters: Arc<Counters>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Event(event) => sink.emit(&event).await,
            Msg::Flush(done) => {
                sink.flush().await;
                let _ = done.send(()); // the flusher may have given up waiting
            }
            Msg::Stop => break,
        }
    }
    sink.flush().await;
    rx.close();
    while let Some(msg) = rx.recv().await {
        if let Msg::Event(_) = msg {
            counters.dropped(); // accepted by an emit that raced the stop
        }
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

    /// Stops accepting events (later ones are dropped and counted), waits
    /// until the background task has emitted every queued one and flushed the
    /// wrapped sink, and lets the task end. Idempotent; takes `&self`.
    ///
    /// If the wrapped sink panicked, the task is gone; the panic is logged
    /// with `tracing` and the events it left queued are not delivered.
    pub async fn shutdown(&self) {
        if !self.stopped.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Msg::Stop).await; // fails only if the task is gone
        }
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::error!(error = %err, "offloaded event sink task failed");
        }
    }

    /// [`shutdown`](Self::shutdown), then the final counters.
    pub async fn close(self) -> SinkStats {
        self.shutdown().await;
        self.counters.snapshot().with_inner(self.inner.stats())
    }
}

impl<E: Sync> fmt::Debug for Offload<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Offload")
            .field("capacity", &self.tx.max_capacity())
            .field("pending", &self.pending())
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<E: Clone + Send + Sync + 'static> EventSink<E> for Offload<E> {
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        if self.stopped.load(Ordering::Acquire) {
            self.counters.dropped();
            return;
        }
        match self.tx.try_send(Msg::Event(event.clone())) {
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

    /// Waits for the background task to emit everything queued before this
    /// call and to flush the wrapped sink. Returns at once after a shutdown
    /// or if the task is gone.
    async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await; // Err: the task ended (shutdown or a panic)
        }
    }
}
