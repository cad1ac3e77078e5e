//! [`Inbox`]: the cloneable write handle. `record` never blocks (a full inbox
//! drops and counts); `append` waits for space and then for durability.
//!
//! Invariant: unless the feed keeps live output, ephemeral events are
//! filtered here, before any clone, so they cost nothing on the durable
//! path; with it they go to the writer (`Cmd::Ephemeral`), which puts them
//! in its ring and never in the journal.

use std::sync::Arc;

use events_core::{Envelope, Event, Seq, StreamId};
use tokio::sync::{mpsc, oneshot};

use crate::append::{AppendOptions, Appended, MAX_EVENT_ID_BYTES};
use crate::shared::Shared;
use crate::stats::Counters;
use crate::writer::{Acked, Cmd, Conditions};
use crate::{Error, Result};

/// A handle that can record and append into a feed, for code that should not
/// be able to close it or read it. Cheap to clone.
pub struct Inbox<E> {
    tx: mpsc::Sender<Cmd<E>>,
    shared: Arc<Shared>,
    /// Whether ephemeral events go to the writer (for its live-output ring).
    live: bool,
}

impl<E> Clone for Inbox<E> {
    fn clone(&self) -> Self {
        Inbox { tx: self.tx.clone(), shared: Arc::clone(&self.shared), live: self.live }
    }
}

impl<E> std::fmt::Debug for Inbox<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").field("capacity", &self.tx.max_capacity()).finish_non_exhaustive()
    }
}

impl<E: Event> Inbox<E> {
    pub(crate) fn new(tx: mpsc::Sender<Cmd<E>>, shared: Arc<Shared>, live: bool) -> Self {
        Inbox { tx, shared, live }
    }

    /// The feed's shared state (its health, its counters).
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Whether ephemeral events are kept for live output.
    pub(crate) fn live_output(&self) -> bool {
        self.live
    }

    /// See [`Feed::record`](crate::Feed::record).
    pub fn record(&self, stream: Option<&str>, event: &E) {
        let durable = event.durability().is_durable();
        if !durable && !self.live {
            return;
        }
        // Reserve first so a full inbox costs no clone of the event.
        match self.tx.try_reserve() {
            Ok(permit) => {
                let (stream, event) = (stream.map(StreamId::from), event.clone());
                permit.send(if durable { Cmd::Record { stream, event } } else { Cmd::Ephemeral { stream, event } });
            }
            Err(_) => Counters::bump(&self.shared.counters.dropped),
        }
    }

    /// Like [`record`](Self::record) but takes the event by value and waits
    /// for inbox space instead of dropping. Returns once the event is queued
    /// (not once it is durable). Ephemeral events are ignored, unless the
    /// feed keeps live output ([`FeedBuilder::live_output`](crate::FeedBuilder::live_output)).
    ///
    /// # Errors
    ///
    /// [`Error::Unhealthy`] when the writer failed (its thread panicked),
    /// [`Error::Closed`] when the feed no longer accepts events otherwise.
    pub async fn forward(&self, stream: Option<StreamId>, event: E) -> Result<()> {
        match (event.durability().is_durable(), self.live) {
            (true, _) => self.send(Cmd::Record { stream, event }).await,
            (false, true) => self.send(Cmd::Ephemeral { stream, event }).await,
            (false, false) => Ok(()),
        }
    }

    /// Reserves one inbox slot for a durable event a session is about to
    /// show its subscribers: refused before anything is shown when the feed
    /// is unhealthy or closed, and sending on the permit cannot fail or wait,
    /// so nothing can come between a session's fan-out and its journal
    /// hand-off.
    pub(crate) async fn reserve(&self) -> Result<mpsc::Permit<'_, Cmd<E>>> {
        if let Some(cause) = self.shared.failure() {
            return Err(Error::Unhealthy { cause });
        }
        self.tx.reserve().await.map_err(|_| self.gone())
    }

    /// One inbox slot now, if there is one: `Err(Full)` or `Err(Closed)`.
    pub(crate) fn try_reserve(&self) -> std::result::Result<mpsc::Permit<'_, Cmd<E>>, mpsc::error::TrySendError<()>> {
        self.tx.try_reserve()
    }

    /// Reserves one inbox slot for an ephemeral event a session is about
    /// to show, for the live-output ring: `None` once the feed is closed
    /// (the event still reaches the session's subscribers).
    pub(crate) async fn reserve_ephemeral(&self) -> Option<mpsc::Permit<'_, Cmd<E>>> {
        self.tx.reserve().await.ok()
    }

    /// See [`Feed::append`](crate::Feed::append).
    ///
    /// # Errors
    ///
    /// As [`Feed::append`](crate::Feed::append).
    pub async fn append(&self, stream: Option<&str>, event: E) -> Result<Seq> {
        Ok(self.append_acked(stream.map(StreamId::from), event, Conditions::default()).await?.env.seq)
    }

    /// See [`Feed::append_with`](crate::Feed::append_with).
    ///
    /// # Errors
    ///
    /// As [`Feed::append_with`](crate::Feed::append_with).
    pub async fn append_with(&self, stream: Option<&str>, event: E, options: AppendOptions) -> Result<Appended> {
        let (expected, id) = options.into_parts();
        if let Some(id) = &id
            && (id.as_str().is_empty() || id.as_str().len() > MAX_EVENT_ID_BYTES)
        {
            return Err(Error::EventIdInvalid { len: id.as_str().len(), limit: MAX_EVENT_ID_BYTES });
        }
        let acked = self.append_acked(stream.map(StreamId::from), event, Conditions { expected, id }).await?;
        Ok(Appended { seq: acked.env.seq, duplicate: acked.duplicate })
    }

    /// [`append`](Self::append), returning the envelope as journaled (the
    /// writer's own, shared with the live tail and the sinks): what the
    /// feed's `DurableStore::append` hands back, with no journal read.
    pub(crate) async fn append_envelope(&self, stream: Option<StreamId>, event: E) -> Result<Arc<Envelope<E>>> {
        Ok(self.append_acked(stream, event, Conditions::default()).await?.env)
    }

    async fn append_acked(&self, stream: Option<StreamId>, event: E, when: Conditions) -> Result<Acked<E>> {
        if !event.durability().is_durable() {
            return Err(Error::Ephemeral);
        }
        if let Some(cause) = self.shared.failure() {
            return Err(Error::Unhealthy { cause });
        }
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Append { stream, event, ack, when }).await?;
        rx.await.map_err(|_| self.gone())?
    }

    pub(crate) async fn send(&self, cmd: Cmd<E>) -> Result<()> {
        self.tx.send(cmd).await.map_err(|_| self.gone())
    }

    /// Why a command found the writer gone, or its answer was dropped
    /// unsent: [`Error::Unhealthy`] with the cause when the writer failed
    /// (its thread panicked: the commands it held were let go), otherwise
    /// [`Error::Closed`].
    pub(crate) fn gone(&self) -> Error {
        match self.shared.failure() {
            Some(cause) => Error::Unhealthy { cause },
            None => Error::Closed,
        }
    }

    /// Commands queued and not yet taken by the writer.
    pub fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// `true` when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `true` once the feed stopped accepting events.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.shared.is_closed()
    }
}
