//! Live output: durable events interleaved with the recent ephemeral events
//! (streamed tokens, progress) in emit order, resumable from a position
//! inside a run of ephemeral events, so a UI that reconnects mid-response
//! gets the tokens it missed.
//!
//! The writer positions each ephemeral event after the durable seq that
//! preceded it ([`Position`]: the `index`-th ephemeral event after `seq`)
//! and keeps the recent ones in a bounded ring (`ring.rs`, limits in
//! [`LiveOutput`]); [`LiveStream`] (`stream.rs`) merges the ring with a
//! durable stream.
//!
//! Invariant: nothing ephemeral is ever journaled, and durable consumers
//! that do not ask for live output see exactly what they saw before.

mod ring;
mod stream;

use std::time::Duration;

pub(crate) use ring::Ring;
pub use stream::LiveStream;

/// The ring of recent ephemeral events that live-output streams resume
/// from ([`FeedBuilder::live_output`](crate::FeedBuilder::live_output)).
///
/// An event leaves the ring when there are more than `max_events` in all
/// (oldest first), more than `per_stream` of its stream id, or it is older
/// than `max_age`. The defaults (65,536 events, 8,192 per stream, 10
/// minutes) hold about 65,536 × (the size of `Envelope<E>` + the event's
/// heap data + ~100 bytes of bookkeeping) at most: some 12 MiB for 100-byte
/// events. What the ring remembers of its losses comes on top, each bounded
/// by `max_events` too: the runs that lost something (some 60 bytes each
/// with the map's slack, 4 MiB at most) and the floor of each stream id that lost something (its
/// id, up to 256 bytes, and ~50 bytes: some 20 MiB at most with churning
/// long ids). [`FeedStats::live_events`](crate::FeedStats::live_events) is
/// the ring's size now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveOutput {
    pub(crate) max_events: usize,
    pub(crate) per_stream: usize,
    pub(crate) max_age: Duration,
}

impl Default for LiveOutput {
    fn default() -> Self {
        LiveOutput { max_events: 65_536, per_stream: 8_192, max_age: Duration::from_secs(600) }
    }
}

impl LiveOutput {
    /// The default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most ephemeral events in the ring, all streams together (at least 1).
    #[must_use]
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n.max(1);
        self
    }

    /// Most ephemeral events of one stream id (at least 1).
    #[must_use]
    pub fn per_stream(mut self, n: usize) -> Self {
        self.per_stream = n.max(1);
        self
    }

    /// How long an ephemeral event stays.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
}
