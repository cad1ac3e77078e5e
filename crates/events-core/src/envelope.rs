//! [`Envelope`]: an event together with its place in the feed (seq,
//! timestamp, stream id, and the caller's event id if it gave one). It is
//! what journals store, what resuming clients receive and what sinks observe.

use serde::{Deserialize, Serialize};

use crate::{EventId, Seq, StreamId, Timestamp};

/// An event with its position in the feed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Envelope<E> {
    /// The global sequence number (contiguous from 1 for journaled events).
    pub seq: Seq,
    /// When the event was accepted, unix nanoseconds.
    pub ts: Timestamp,
    /// The routing key: the caller's stream id, else the event's own.
    pub stream: Option<StreamId>,
    /// The user's event.
    pub event: E,
    /// The caller's id of an idempotent append (`None` for every other
    /// event); see the façade's `AppendOptions::id`.
    #[serde(default)]
    pub id: Option<EventId>,
}

impl<E> Envelope<E> {
    /// The stream id as a string slice, if any.
    pub fn stream_str(&self) -> Option<&str> {
        self.stream.as_ref().map(StreamId::as_str)
    }

    /// Replaces the event, keeping seq, timestamp and stream.
    pub fn map<F, U>(self, f: F) -> Envelope<U>
    where
        F: FnOnce(E) -> U,
    {
        Envelope { seq: self.seq, ts: self.ts, stream: self.stream, event: f(self.event), id: self.id }
    }
}
