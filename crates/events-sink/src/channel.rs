//! [`ChannelSink`]: a sink that `try_send`s each event (cloned) into a bounded
//! tokio mpsc channel whose receiver the constructor hands back. Neighbours:
//! combine with [`Map`](crate::Map) to send a different owned value. Invariant:
//! `emit` never awaits; an event the channel cannot take (full, or receiver
//! dropped) is counted as `dropped`, exactly once.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink feeding a bounded channel, dropping (and counting) on full.
///
/// Clones share the channel and the counters. So a sum over sinks (a
/// [`Tee`](crate::Tee)'s stats, a feed's totals) counts a channel cloned
/// into two places once for each: read one clone's stats for its own.
///
/// # Example
///
/// ```
/// use events_sink::{ChannelSink, EventSink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (sink, mut rx) = ChannelSink::new(1);
/// sink.emit(&1u32).await;
/// sink.emit(&2u32).await; // the channel is full: dropped, not awaited
/// assert_eq!(sink.stats().dropped, 1);
/// assert_eq!(rx.recv().await, Some(1));
/// # });
/// ```
pub struct ChannelSink<T> {
    tx: mpsc::Sender<T>,
    counters: Arc<Counters>,
}

impl<T> ChannelSink<T> {
    /// A sink and the receiving end of its channel of `capacity` events.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self::from_sender(tx), rx)
    }

    /// A sink over an existing sender.
    pub fn from_sender(tx: mpsc::Sender<T>) -> Self {
        ChannelSink { tx, counters: Arc::default() }
    }

    /// Whether the receiver was dropped (every later emit is a drop).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// This sink's counters (the same as [`EventSink::stats`], without having
    /// to name the event type).
    pub fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }

    /// Sends an owned value, with the same drop-on-full policy as `emit`, and
    /// no clone.
    ///
    /// # Errors
    ///
    /// Hands the value back inside tokio's [`TrySendError`] when the channel
    /// is full or closed; the drop has already been counted.
    pub fn send_owned(&self, value: T) -> Result<(), TrySendError<T>> {
        self.counters.emitted();
        self.tx.try_send(value).inspect_err(|_| self.counters.dropped())
    }
}

impl<T> Clone for ChannelSink<T> {
    fn clone(&self) -> Self {
        ChannelSink { tx: self.tx.clone(), counters: Arc::clone(&self.counters) }
    }
}

impl<T> fmt::Debug for ChannelSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSink")
            .field("capacity", &self.tx.max_capacity())
            .field("closed", &self.tx.is_closed())
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

#[async_trait]
impl<T: Clone + Send + Sync> EventSink<T> for ChannelSink<T> {
    async fn emit(&self, event: &T) {
        // A failed send is already counted; a sink has nobody to report to.
        // The refused copy's `Drop` (the event type's code) stays here.
        if let Err(TrySendError::Full(refused) | TrySendError::Closed(refused)) = self.send_owned(event.clone()) {
            crate::sink::let_go(refused, "an event the full or closed channel refused");
        }
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}
