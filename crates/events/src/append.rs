//! Conditional and idempotent appends: [`AppendOptions`] (an [`Expected`]
//! stream version and a caller-chosen [`EventId`]), what
//! [`Feed::append_with`](crate::Feed::append_with) takes, and [`Appended`],
//! what it returns. The writer thread checks both (`guard.rs`), atomically
//! with seq allocation.
//!
//! A stream's **version** is the seq of its latest retained event: a
//! client that read a stream (with
//! [`read_stream`](crate::Feed::read_stream)) knows it as the seq of the
//! last event it saw, and an append that expects it fails if anyone
//! appended to that stream since. A stream none of whose events is
//! retained (never written, or everything pruned by retention) has no
//! version: [`Expected::NoStream`].

use std::time::Duration;

use events_core::{EventId, Seq};

/// The longest event id an append can carry, in bytes.
pub const MAX_EVENT_ID_BYTES: usize = 128;

/// What an append expects of its stream's version (the seq of the stream's
/// latest retained event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Expected {
    /// No expectation: a plain append.
    #[default]
    Any,
    /// The stream has no retained event.
    NoStream,
    /// The stream's latest retained event is at this seq.
    Exact(Seq),
}

impl From<Option<Seq>> for Expected {
    /// The expectation of a client whose view of the stream ends at `last`
    /// (`None`: it saw no event of the stream).
    fn from(last: Option<Seq>) -> Self {
        match last {
            Some(seq) => Expected::Exact(seq),
            None => Expected::NoStream,
        }
    }
}

impl Expected {
    /// Whether a stream whose version is `current` meets this expectation.
    pub fn admits(self, current: Option<Seq>) -> bool {
        match self {
            Expected::Any => true,
            Expected::NoStream => current.is_none(),
            Expected::Exact(seq) => current == Some(seq),
        }
    }
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expected::Any => f.write_str("any version"),
            Expected::NoStream => f.write_str("no stream"),
            Expected::Exact(seq) => write!(f, "version {seq}"),
        }
    }
}

/// How [`Feed::append_with`](crate::Feed::append_with) appends.
///
/// ```
/// use events::{AppendOptions, Expected, Seq};
/// let options = AppendOptions::new().expect(Expected::Exact(Seq::new(41))).id("req-7");
/// assert_eq!(options.expected(), Expected::Exact(Seq::new(41)));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppendOptions {
    expected: Expected,
    id: Option<EventId>,
}

impl AppendOptions {
    /// A plain append: no expectation, no id.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends only if the stream's version is as expected; otherwise the
    /// append journals nothing and fails with
    /// [`Error::VersionConflict`](crate::Error::VersionConflict).
    pub fn expect(mut self, expected: Expected) -> Self {
        self.expected = expected;
        self
    }

    /// The caller's id of this event: within the feed's dedupe window
    /// ([`Dedupe`]), a second append with the same id journals nothing and
    /// returns the first one's seq with [`Appended::duplicate`] set. 1 to
    /// [`MAX_EVENT_ID_BYTES`] bytes. Ids are the feed's: a second append
    /// of the id to another stream is refused with
    /// [`Error::EventIdTaken`](crate::Error::EventIdTaken).
    pub fn id(mut self, id: impl Into<EventId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The expectation.
    pub fn expected(&self) -> Expected {
        self.expected
    }

    /// The event id, if any.
    pub fn event_id(&self) -> Option<&EventId> {
        self.id.as_ref()
    }

    pub(crate) fn into_parts(self) -> (Expected, Option<EventId>) {
        (self.expected, self.id)
    }
}

/// The outcome of [`Feed::append_with`](crate::Feed::append_with).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Appended {
    /// The event's seq: for a duplicate, the seq of the append that
    /// journaled the id first. For a new append it is also the stream's new
    /// version (a duplicate's stream may have moved on since).
    pub seq: Seq,
    /// `true` when an earlier append carried the same event id within the
    /// dedupe window: nothing was journaled this time.
    pub duplicate: bool,
}

/// How long, and for how many ids, a feed remembers the event ids of
/// idempotent appends ([`FeedBuilder::dedupe`](crate::FeedBuilder::dedupe)).
/// An id is remembered while it is younger than `age` *and* among the
/// newest `ids` ids; the window is rebuilt from the journal when the feed
/// opens, so it survives a restart or a crash, for the ids in segments
/// retention still keeps: size retention so that the window's age of
/// appends fits in it, or a retry after a restart may journal again an id
/// whose segment was removed.
///
/// The default, 2 minutes and 100,000 ids (as JetStream's default
/// duplicate window), costs at most about 100,000 × (id length + 64)
/// bytes of memory, and reading the last 2 minutes of records at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dedupe {
    pub(crate) age: Duration,
    pub(crate) ids: usize,
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe { age: Duration::from_secs(120), ids: 100_000 }
    }
}

impl Dedupe {
    /// A window of `age` and at most `ids` ids (`ids == 0` or a zero `age`
    /// turns deduplication off: every append is journaled).
    pub fn new(age: Duration, ids: usize) -> Self {
        Dedupe { age, ids }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_admit_exactly_their_versions() {
        let v = |n| Some(Seq::new(n));
        assert!(Expected::Any.admits(None) && Expected::Any.admits(v(3)));
        assert!(Expected::NoStream.admits(None) && !Expected::NoStream.admits(v(1)));
        assert!(Expected::Exact(Seq::new(3)).admits(v(3)));
        assert!(!Expected::Exact(Seq::new(3)).admits(v(4)) && !Expected::Exact(Seq::new(3)).admits(None));
        assert_eq!(Expected::from(v(9)), Expected::Exact(Seq::new(9)));
        assert_eq!(Expected::from(None), Expected::NoStream);
    }
}
