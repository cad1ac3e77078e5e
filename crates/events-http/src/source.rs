//! [`FeedSource`]: what the HTTP layer needs from a feed, so one router
//! serves both a writer's [`Feed`] (in the process that appends) and a
//! read-only [`FeedReader`] (a separate server process tailing the journal).
//!
//! Invariant: the trait only forwards to the façade; every ordering, gap and
//! reset guarantee the HTTP stream gives comes from `stream_from` itself.

use events::{Codec, Cursor, Event, Feed, FeedReader, FeedStats, FeedStream, Seq};

/// A feed the HTTP router can serve: a resumable stream plus the figures
/// `/status` reports.
///
/// Implemented for [`Feed`] and [`FeedReader`]; implement it for your own
/// wrapper (an access-checked feed, a feed chosen per tenant) to serve that.
pub trait FeedSource<E>: Clone + Send + Sync + 'static {
    /// Every durable event after `cursor`, then live; as
    /// [`Feed::stream_from`].
    fn stream_from(&self, cursor: Cursor) -> FeedStream<E>;
    /// The latest journaled seq.
    fn latest_seq(&self) -> Seq;
    /// The earliest retained seq.
    fn earliest_seq(&self) -> Seq;
    /// The journal's epoch.
    fn epoch(&self) -> u64;
    /// The feed's counters.
    fn stats(&self) -> FeedStats;
}

impl<E: Event, C: Codec> FeedSource<E> for Feed<E, C> {
    fn stream_from(&self, cursor: Cursor) -> FeedStream<E> {
        Feed::stream_from(self, cursor)
    }

    fn latest_seq(&self) -> Seq {
        Feed::latest_seq(self)
    }

    fn earliest_seq(&self) -> Seq {
        Feed::earliest_seq(self)
    }

    fn epoch(&self) -> u64 {
        Feed::epoch(self)
    }

    fn stats(&self) -> FeedStats {
        Feed::stats(self)
    }
}

impl<E: Event, C: Codec> FeedSource<E> for FeedReader<E, C> {
    fn stream_from(&self, cursor: Cursor) -> FeedStream<E> {
        FeedReader::stream_from(self, cursor)
    }

    fn latest_seq(&self) -> Seq {
        FeedReader::latest_seq(self)
    }

    fn earliest_seq(&self) -> Seq {
        FeedReader::earliest_seq(self)
    }

    fn epoch(&self) -> u64 {
        FeedReader::epoch(self)
    }

    fn stats(&self) -> FeedStats {
        FeedReader::stats(self)
    }
}
