//! [`Session`]: a lossless per-session emitter. Every event — ephemeral ones
//! included — goes to the session's subscribers through the fan-out crate
//! (in order, with backpressure, never skipped); durable ones are then
//! forwarded into the feed under the session's stream id.
//!
//! Invariant: a session never drops silently. A full subscriber slows
//! `emit` (or, under a disconnect policy, is closed with an explicit reason
//! it sees), and a full feed inbox makes `emit` wait rather than drop, so a
//! UI sees every event and the journal sees every durable one. `emit` is
//! cancel-safe for the journal: the inbox slot of a durable event is
//! reserved before any subscriber sees it and filled right after the
//! fan-out, with no await in between, so a durable event a UI was shown is
//! always handed to the journal; and emits of one session are serialised, so
//! UI order = journal order = emit order. A durable event is encoded and
//! checked against the feed's limits (stream id, `max_record_bytes`) before
//! any subscriber sees it, and the feed's health is checked again right
//! before the fan-out publishes it: what the journal would refuse, no UI is
//! shown.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use events_core::{Codec, Event, StreamId};
use events_fanout::{Fanout, FanoutStats, Overflow, Subscriber};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::inbox::Inbox;
use crate::stats::Counters;
use crate::writer::Cmd;
use crate::{Error, Result, index, payload};

/// Encodes a session's durable event as the writer would and checks it
/// against the feed's limits: an `Err` is what the journal would refuse.
pub(crate) type Encoder<E> = Arc<dyn Fn(&StreamId, &E) -> Result<Vec<u8>> + Send + Sync>;

/// The [`Encoder`] of a feed with `codec` and `max_record_bytes`.
pub(crate) fn encoder<E: Event, C: Codec>(codec: C, max_record_bytes: u32) -> Encoder<E> {
    let read_back = payload::ReadBack::default();
    Arc::new(move |stream: &StreamId, event: &E| {
        index::check_stream_id(stream.as_str())?;
        let mut buf = Vec::new();
        payload::encode_checked(&codec, Some(stream.as_str()), None, event, &mut buf, max_record_bytes, &read_back)?;
        Ok(buf)
    })
}

/// A subscriber of a [`Session`]: a `futures::Stream` of
/// `Result<Arc<E>, events_fanout::Closed>` that ends when the session is
/// dropped. A subscriber that only looks at each event can borrow it with
/// [`recv_ref`](Subscriber::recv_ref) instead of cloning the `Arc`, which
/// spares many subscribers of one session from all updating its one
/// reference count.
pub type SessionSubscriber<E> = Subscriber<Arc<E>>;

struct SessionInner<E> {
    id: StreamId,
    fanout: Fanout<Arc<E>>,
    inbox: Inbox<E>,
    encoder: Encoder<E>,
    /// Held across one emit's fan-out and journal hand-off.
    order: tokio::sync::Mutex<()>,
}

/// A lossless per-session emitter, from [`Feed::session`](crate::Feed::session).
/// Cheap to clone; the session's subscribers end when the last clone (and
/// every other handle from `Feed::session` with this id) is dropped.
///
/// # Example
///
/// ```
/// use events::{Durability, Event, Feed, Seq};
/// use futures::StreamExt;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// enum Ui { Token(char), Message(String) }
/// impl Event for Ui {
///     fn durability(&self) -> Durability {
///         if matches!(self, Ui::Token(_)) { Durability::Ephemeral } else { Durability::Durable }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let feed: Feed<Ui> = Feed::builder(tmp.path()).open().await?;
/// let session = feed.session("sess-7");
/// let mut ui = session.subscribe();
/// session.emit(Ui::Token('h')).await?;
/// session.emit(Ui::Message("hi".into())).await?;
/// assert_eq!(*ui.next().await.unwrap().unwrap(), Ui::Token('h'));
/// assert_eq!(*ui.next().await.unwrap().unwrap(), Ui::Message("hi".into()));
/// feed.sync().await?;
/// assert_eq!(feed.latest_seq(), Seq::new(1)); // only the durable one is journaled
/// # feed.close().await }
/// ```
pub struct Session<E> {
    inner: Arc<SessionInner<E>>,
}

impl<E> Clone for Session<E> {
    fn clone(&self) -> Self {
        Session { inner: Arc::clone(&self.inner) }
    }
}

impl<E> std::fmt::Debug for Session<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.inner.id)
            .field("subscribers", &self.inner.fanout.subscriber_count())
            .finish()
    }
}

impl<E: Event> Session<E> {
    /// The session's id, used as the stream id of its journaled events.
    pub fn id(&self) -> &str {
        self.inner.id.as_str()
    }

    /// A new subscriber that receives every event emitted from now on, in
    /// order, ephemeral ones included.
    pub fn subscribe(&self) -> SessionSubscriber<E> {
        self.inner.fanout.subscribe()
    }

    /// Emits `event` to every subscriber (waiting while one is full, or
    /// disconnecting it under the feed's
    /// [`session_overflow`](crate::FeedBuilder::session_overflow) policy),
    /// then, if it is durable, hands it to the feed under this session's id.
    /// Returns once the event is queued for the journal, not once it is
    /// durable; use [`Feed::append`](crate::Feed::append) to wait for
    /// durability.
    ///
    /// Cancel-safe: dropped before it returns, either no subscriber saw the
    /// event and the journal does not get it, or every subscriber saw it and
    /// the journal gets it. A durable event's inbox slot is reserved before
    /// any subscriber sees it.
    ///
    /// # Errors
    ///
    /// For a durable event, before any subscriber sees it (counted as an
    /// `append`'s would be): [`Error::StreamIdTooLong`] for a session id
    /// over 256 bytes, [`Error::Codec`] or [`Error::EventPanicked`] when
    /// the event cannot be encoded (or its `Clone`, which makes the
    /// journal's copy first, panics), [`Error::TooLarge`] over the feed's
    /// `max_record_bytes`, [`Error::Unhealthy`] after a journal failure
    /// (also one while the emit waited for room) and [`Error::Closed`] once
    /// the feed is closed. For an ephemeral event when the feed keeps live
    /// output: [`Error::StreamIdTooLong`] for a session id over 256 bytes
    /// (the live output keys tokens by it) and [`Error::EventPanicked`]
    /// when its `Clone`, which makes the live output's copy first, panics
    /// (nothing else refuses one). [`Error::Closed`] also when the session's
    /// fan-out is closed. A journal failure *after* the event was queued
    /// shows in the feed's health ([`FeedStats::healthy`](crate::FeedStats::healthy)),
    /// as for `record`.
    pub async fn emit(&self, event: E) -> Result<()> {
        let _order = self.inner.order.lock().await;
        let durable = event.durability().is_durable();
        let inbox = &self.inner.inbox;
        let shared = inbox.shared();
        // What the journal would refuse, no subscriber is shown; and the
        // writer's copy is made before any subscriber sees the event: a
        // `Clone` that panicked after the event was shown would leave the
        // UIs with an event the journal never gets (a durable one), or that
        // the live output misses with no loss to report (an ephemeral one
        // when the feed keeps live output: a resuming client missed it
        // without a reset).
        let journal_copy = || -> Result<WriterCopy<E>> {
            let payload = (self.inner.encoder)(&self.inner.id, &event)?;
            Ok(WriterCopy::Journal { payload, event: crate::error::isolated("Clone", || event.clone())? })
        };
        // The live output keys a token by the session's id, as the journal
        // does a durable event: one over the limit is refused by either.
        let live_copy = || -> Result<WriterCopy<E>> {
            crate::index::check_stream_id(self.inner.id.as_str())?;
            crate::error::isolated("Clone", || event.clone()).map(WriterCopy::Live)
        };
        let copy = if durable { Some(journal_copy()) } else { inbox.live_output().then(live_copy) };
        let copy = match copy.transpose() {
            Ok(copy) => copy,
            Err(e) => {
                Counters::bump(shared.counters.refusal(&e));
                return Err(e);
            }
        };
        // An event with a copy for the writer takes a slot of its inbox (an
        // ephemeral one is refused only for its `Clone` above: UIs get
        // ephemeral events even from an unhealthy or closed feed).
        let mut wants_slot = copy.is_some();
        let event = Arc::new(event);
        let mut permit = None;
        // The slot is taken right before the fan-out publishes, and the
        // feed's health asked then (no await in between, so a UI shown an
        // event the journal gets it): a UI that stops reading holds up its
        // own session, never a slot of the feed's inbox meanwhile.
        loop {
            let mut closed = false;
            let go = || {
                if durable && shared.is_failed() {
                    return false;
                }
                if wants_slot && permit.is_none() {
                    match inbox.try_reserve() {
                        Ok(slot) => permit = Some(slot),
                        Err(mpsc::error::TrySendError::Closed(())) => {
                            closed = true;
                            return false;
                        }
                        Err(mpsc::error::TrySendError::Full(())) => return false,
                    }
                }
                true
            };
            let unshown = self.inner.fanout.emit_if(Arc::clone(&event), go).await.map_err(|_| Error::Closed)?;
            if unshown.is_none() {
                break;
            }
            if durable && let Some(cause) = shared.failure() {
                return Err(Error::Unhealthy { cause });
            }
            // The inbox was closed, or full when the fan-out had room: wait
            // for a slot, then offer the event again holding it.
            let slot = match (durable, closed) {
                (true, true) => return Err(Error::Closed),
                (true, false) => Some(inbox.reserve().await?),
                (false, true) => None,
                (false, false) => inbox.reserve_ephemeral().await,
            };
            wants_slot &= slot.is_some();
            permit = slot;
        }
        if let Some(permit) = permit {
            let stream = self.inner.id.clone();
            match copy {
                Some(WriterCopy::Journal { payload, event }) => permit.send(Cmd::Encoded { stream, event, payload }),
                Some(WriterCopy::Live(event)) => permit.send(Cmd::Ephemeral { stream: Some(stream), event }),
                // Not taken: a slot is only for an event with a copy.
                None => drop(permit),
            }
        }
        Ok(())
    }

    /// Current number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.inner.fanout.subscriber_count()
    }

    /// The session fan-out's counters (emitted, slow disconnects, max lag).
    pub fn stats(&self) -> FanoutStats {
        self.inner.fanout.stats()
    }
}

/// What the writer gets of an event `Session::emit` publishes, made before
/// any subscriber sees it.
enum WriterCopy<E> {
    /// A durable event: its payload and the journal's copy.
    Journal { payload: Vec<u8>, event: E },
    /// An ephemeral event, for the live output.
    Live(E),
}

/// The live sessions of a feed, so that `feed.session(id)` twice returns the
/// same session while it is alive.
pub(crate) struct SessionRegistry<E> {
    sessions: Mutex<HashMap<StreamId, Weak<SessionInner<E>>>>,
    capacity: usize,
    overflow: Overflow,
    encoder: Encoder<E>,
}

impl<E> SessionRegistry<E> {
    pub(crate) fn new(capacity: usize, overflow: Overflow, encoder: Encoder<E>) -> Self {
        SessionRegistry { sessions: Mutex::new(HashMap::new()), capacity, overflow, encoder }
    }
}

impl<E: Event> SessionRegistry<E> {
    pub(crate) fn get_or_create(&self, id: StreamId, inbox: &Inbox<E>) -> Session<E> {
        let mut sessions = self.sessions.lock();
        if let Some(inner) = sessions.get(&id).and_then(Weak::upgrade) {
            return Session { inner };
        }
        sessions.retain(|_, weak| weak.strong_count() > 0);
        let inner = Arc::new(SessionInner {
            id: id.clone(),
            fanout: Fanout::builder().capacity(self.capacity).overflow(self.overflow).build(),
            inbox: inbox.clone(),
            encoder: Arc::clone(&self.encoder),
            order: tokio::sync::Mutex::new(()),
        });
        sessions.insert(id, Arc::downgrade(&inner));
        Session { inner }
    }
}
