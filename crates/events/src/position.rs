//! Where a reader stands and what it is told: [`Cursor`] (a seq and,
//! optionally, the epoch it belongs to), [`FeedItem`] (an event or an
//! explicit reset, or a filtered stream's checkpoint), [`ResetReason`] and the [`OnExpired`] policy.
//! Neighbours: `stream/mod.rs` runs the state machine that produces these;
//! `reader.rs` and the HTTP and NATS layers build cursors from the wire.
//! Invariant: a bare `Seq::ZERO` asks for everything retained and is never
//! expired while it is still at 0, until its stream first catches up; a
//! cursor that names its epoch is a position.

use std::sync::Arc;

use events_core::{Envelope, Seq};

/// Where a client resumes: the last seq it saw and, optionally, the epoch of
/// the journal that seq came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The last seq the client has seen (`Seq::ZERO`: nothing yet).
    pub seq: Seq,
    /// The epoch the seq belongs to; `None` accepts any epoch.
    pub epoch: Option<u64>,
}

impl Cursor {
    /// A cursor at `seq` within `epoch`.
    pub fn new(seq: Seq, epoch: u64) -> Self {
        Cursor { seq, epoch: Some(epoch) }
    }
}

impl From<Seq> for Cursor {
    fn from(seq: Seq) -> Self {
        Cursor { seq, epoch: None }
    }
}

impl From<u64> for Cursor {
    fn from(seq: u64) -> Self {
        Cursor { seq: Seq::new(seq), epoch: None }
    }
}

/// Where an item sits in a live-output stream: `index` 0 is the durable
/// event `seq` itself, `index` n ≥ 1 an ephemeral event emitted after it
/// (and before `seq + 1`): the n-th (at most 2^24 - 1 of them: past that,
/// a run's output is a loss), or, in the first run of a writer that
/// reopened the journal, one in a range of that writer's own (from a base
/// that is a multiple of 2^24), apart from an earlier writer's. Ordered by
/// `seq`, then `index`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The durable seq this position follows (or is).
    pub seq: Seq,
    /// 0 for the durable event, n for the n-th ephemeral event after it.
    pub index: u32,
}

impl Position {
    /// The position of durable event `seq`.
    pub fn durable(seq: Seq) -> Self {
        Position { seq, index: 0 }
    }

    /// The last position of `seq`'s run of ephemeral events.
    pub(crate) fn end_of(seq: u64) -> Self {
        Position { seq: Seq::new(seq), index: u32::MAX }
    }
}

/// Where a live-output client resumes: a cursor (the last durable seq seen,
/// with its epoch) and how many ephemeral events after it were seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCursor {
    /// The durable part: as for [`FeedReader::stream_from`](crate::FeedReader::stream_from).
    pub cursor: Cursor,
    /// Where among the ephemeral events after `cursor.seq` the client is
    /// (0: none seen): the `index` of the last one it got. Counted from 1,
    /// except in the first run of a writer that reopened the journal,
    /// whose events there take a range of their own (a base that is a
    /// multiple of 2^24): resume from the index a stream handed out, never
    /// from a count of events.
    pub index: u32,
}

impl LiveCursor {
    /// After the ephemeral event at `index` following `cursor` (see
    /// [`LiveCursor::index`]).
    pub fn new(cursor: impl Into<Cursor>, index: u32) -> Self {
        LiveCursor { cursor: cursor.into(), index }
    }
}

impl From<Cursor> for LiveCursor {
    fn from(cursor: Cursor) -> Self {
        LiveCursor { cursor, index: 0 }
    }
}

impl From<Seq> for LiveCursor {
    fn from(seq: Seq) -> Self {
        LiveCursor { cursor: seq.into(), index: 0 }
    }
}

/// What a stream does when retention removed events after its cursor
/// ([`ResetReason::Expired`]). A bare `Seq::ZERO` cursor (no epoch) asks for
/// everything retained: while it is still at 0, it is never expired and
/// gets no reset for it, whatever the policy, until its stream first
/// catches up or takes any reset (a follower's move to a recreated journal, a salvage gap); from
/// then on it holds a position like any cursor (events appended after it
/// caught up are events it needs: pruned before it read them, they are a
/// reset). `Cursor::new(Seq::ZERO, epoch)` is a position from the
/// start ("I have seen nothing of this journal"), and is expired once seq 1
/// is pruned.
///
/// Set per reader with [`FeedReader::on_expired`](crate::FeedReader::on_expired)
/// (or for a whole feed with [`FeedBuilder::on_expired`](crate::FeedBuilder::on_expired)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnExpired {
    /// One `Reset { Expired }` item, then every event from the earliest
    /// retained one: the consumer loses only what is really gone. The
    /// default, since a consumer that must rebuild its view needs every
    /// event that still exists (Kafka's `earliest`).
    #[default]
    Earliest,
    /// One `Reset { Expired }` item, then only events after the reset's
    /// `latest` (Kafka's `latest`): for consumers that only care about now.
    Latest,
    /// [`Error::Expired`](crate::Error::Expired) naming the cursor and the earliest retained seq,
    /// then the stream ends (Kafka's `none`).
    Fail,
}

/// What a stream does with a journaled event it cannot decode (another
/// type, corrupted bytes that passed the CRC, a version with no upcaster).
/// Set per reader with [`FeedReader::on_undecodable`](crate::FeedReader::on_undecodable)
/// or for a feed with [`FeedBuilder::on_undecodable`](crate::FeedBuilder::on_undecodable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUndecodable {
    /// [`Error::Decode`](crate::Error::Decode) naming the seq, the schema
    /// version and (in its source) the codec; then the stream ends. The
    /// default: a consumer that folds events into state must not silently
    /// miss one.
    #[default]
    Fail,
    /// One [`FeedItem::Undecodable`] for that seq, then the stream goes on
    /// with the next event: for consumers that can live without it (a UI,
    /// a log shipper).
    Skip,
}

/// Why a stream could not resume from its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// The events after the cursor were removed by retention.
    Expired,
    /// The cursor is ahead of the journal's latest seq: the journal was
    /// recreated or rolled back since the client saw it.
    Ahead,
    /// An operator salvaged a corrupt journal and records
    /// `first_missing..=last_missing` were dropped. Unlike the other reasons,
    /// the stream continues right after the gap, not at the live tail.
    Gap {
        /// The first dropped seq.
        first_missing: Seq,
        /// The last dropped seq.
        last_missing: Seq,
    },
    /// A live-output stream's cursor points into ephemeral events the
    /// writer's ring no longer holds (its limits removed them, or the writer
    /// restarted): the rest of that output is gone. The stream continues
    /// with the next durable event (`earliest`); durable events are never
    /// skipped for this reason.
    LiveOutputExpired,
    /// The cursor belongs to another journal epoch.
    EpochMismatch {
        /// The epoch the client presented.
        cursor_epoch: u64,
        /// The journal's epoch.
        journal_epoch: u64,
    },
}

/// One item of a [`FeedStream`](crate::FeedStream).
#[derive(Clone, Debug)]
pub enum FeedItem<E> {
    /// The next durable event.
    Event(Arc<Envelope<E>>),
    /// An ephemeral event (a streamed token, progress), only in a
    /// live-output stream ([`FeedReader::stream_live`](crate::FeedReader::stream_live)):
    /// never journaled, kept for a while in the writer's ring so that a
    /// client can resume mid-run. Its envelope's `seq` is `position.seq`,
    /// the durable event it follows.
    Ephemeral {
        /// Where it sits: after durable seq `position.seq`, the
        /// `position.index`-th ephemeral event.
        position: Position,
        /// The event, its stream id and when the writer saw it.
        env: Arc<Envelope<E>>,
    },
    /// The cursor cannot be served. For [`ResetReason::Gap`] the stream
    /// continues right after the gap; for every other reason it continues
    /// with the earliest retained event, so a consumer loses only what is
    /// really gone (pruned, or in another journal) and rebuilds its view
    /// from the events that follow. The same rule holds for every reader:
    /// in-process, a follower in another process, HTTP and NATS.
    Reset {
        /// Why.
        reason: ResetReason,
        /// The earliest retained seq: where the stream continues (except
        /// after a gap).
        earliest: Seq,
        /// The latest acknowledged seq when the reset was issued.
        latest: Seq,
    },
    /// A journaled event this reader cannot decode, under
    /// [`OnUndecodable::Skip`]; the stream goes on after `seq`.
    Undecodable {
        /// The record's seq.
        seq: Seq,
        /// The record's schema version.
        version: u32,
        /// Why it cannot be decoded (the codec's message chain).
        error: String,
    },
    /// Only from a filtered stream ([`FilteredStream`](crate::FilteredStream)):
    /// every event up to and including `seq` has been scanned, and those
    /// that match were yielded before this item. Resuming the filtered
    /// stream from `seq` (in the stream's [`epoch`](crate::FilteredStream::epoch))
    /// yields exactly the matching events that follow: no duplicate, no
    /// gap. A checkpoint never goes backward between resets; it is
    /// KurrentDB's `checkpointReached`. An unfiltered
    /// [`FeedStream`](crate::FeedStream) never yields one.
    Checkpoint {
        /// The last seq scanned.
        seq: Seq,
    },
}

impl<E> FeedItem<E> {
    /// The envelope, for an `Event` item.
    pub fn event(&self) -> Option<&Arc<Envelope<E>>> {
        match self {
            FeedItem::Event(env) => Some(env),
            FeedItem::Reset { .. }
            | FeedItem::Undecodable { .. }
            | FeedItem::Checkpoint { .. }
            | FeedItem::Ephemeral { .. } => None,
        }
    }
}
