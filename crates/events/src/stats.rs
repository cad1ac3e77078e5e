//! Counters of a feed, updated with relaxed atomics on the hot paths and read
//! as one [`FeedStats`] snapshot. Nothing here affects behaviour: the
//! counters exist so operators can see drops, lag and fsync batching.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a feed's counters, from [`Feed::stats`](crate::Feed::stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeedStats {
    /// Durable events journaled and published since open.
    pub appended: u64,
    /// Events given to `record` that were dropped because the inbox was full
    /// (or the feed was closed or unhealthy), and a session's durable emits
    /// the writer refused after a journal failure.
    pub dropped: u64,
    /// Events that could not be encoded and were refused.
    pub encode_errors: u64,
    /// Batches acknowledged: groups of durable events published together.
    /// One `write` each, except under `SyncPolicy::Always` while an
    /// fdatasync runs on the journal's commit thread: the writes made
    /// meanwhile are acknowledged together, as one batch, by the fdatasync
    /// after it.
    pub batches: u64,
    /// Payload and frame bytes written to the journal since open.
    pub bytes: u64,
    /// fdatasync calls made by the journal since open.
    pub fsyncs: u64,
    /// Times a `stream_from` consumer caught up with the writer fell
    /// behind the live tail (the `live_capacity` newest envelopes the
    /// writer keeps) and went back to the journal.
    pub lagged_fallbacks: u64,
    /// `Reset` items handed to consumers of this feed's streams
    /// (`stream_from`, `stream_filtered`, `stream_live`: a live-output
    /// stream's `LiveOutputExpired` included).
    pub resets: u64,
    /// Envelopes lost on the way to sinks, summed over the sinks: dropped
    /// by a sink's queue in the feed because that sink was too slow (an
    /// envelope two sinks lost counts twice; see [`sinks`](Self::sinks)),
    /// plus what the sinks' own decorators (`ChannelSink`, `Offload`)
    /// report as dropped.
    pub sink_dropped: u64,
    /// Sink calls cut short by the feed's sink timeout or by the sinks' own
    /// `Timeout` decorators.
    pub sink_timeouts: u64,
    /// Sink calls that panicked (every sink's, summed; see [`sinks`](Self::sinks)).
    pub sink_panics: u64,
    /// Each sink's own figures, in the order the sinks were attached.
    pub sinks: Vec<SinkReport>,
    /// Events refused because their encoding is larger than
    /// `max_record_bytes`: the `append` got [`Error::TooLarge`](crate::Error::TooLarge),
    /// the `record` was dropped (counted here, not in `dropped`).
    pub too_large: u64,
    /// Retention passes that failed to remove a segment (logged, retried at
    /// the next roll or timer; appends are never failed by them).
    pub prune_errors: u64,
    /// Failed writes of the readers' watermark (`WATERMARK`), each retried
    /// at the next batch; appends still succeed. While they fail, readers
    /// in other processes (`FeedReader::open`, `events tail` or `serve`,
    /// a replicator) stay at the last watermark written, and retention
    /// keeps the segment it names and every later one: a count that keeps
    /// growing is a disk to look at.
    pub watermark_errors: u64,
    /// Appends answered as duplicates of an earlier append with the same
    /// event id (nothing journaled).
    pub duplicates: u64,
    /// Ephemeral events in the writer's live-output ring now
    /// ([`FeedBuilder::live_output`](crate::FeedBuilder::live_output); 0 when it is off).
    pub live_events: u64,
    /// Ephemeral events the ring's limits removed since open.
    pub live_evicted: u64,
    /// Conditional appends refused with
    /// [`Error::VersionConflict`](crate::Error::VersionConflict), and
    /// idempotent ones with
    /// [`Error::EventIdTaken`](crate::Error::EventIdTaken).
    pub conflicts: u64,
    /// The latest journaled seq.
    pub latest_seq: u64,
    /// The earliest retained seq.
    pub earliest_seq: u64,
    /// `false` once a journal write or fsync failed: the feed then refuses
    /// appends until it is reopened. For a follower
    /// ([`FeedReader::open`](crate::FeedReader::open)), `false` while it
    /// cannot read the journal (its directory gone or unreadable): its
    /// positions are then the last it read.
    pub healthy: bool,
    /// Why `healthy` is `false`: the writer's failure, or what the
    /// follower could not read.
    pub problem: Option<String>,
    /// The journal's durable consumers ([`FeedReader::consumers`](crate::FeedReader::consumers)).
    pub consumers: Vec<crate::ConsumerReport>,
}

/// One sink's figures in [`FeedStats::sinks`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkReport {
    /// The name given with [`FeedBuilder::named_sink`](crate::FeedBuilder::named_sink)
    /// (`sink-<n>` for an unnamed one, counting from 0).
    pub name: String,
    /// Calls of this sink that panicked, caught by the feed or by an
    /// `Offload` inside the sink (`stats.panicked`). A sink that panicked
    /// keeps being called with later events: one bad event must not silence it.
    pub panics: u64,
    /// Envelopes this sink never got: its queue in the feed was full (it
    /// was too slow). The other sinks' queues are their own.
    pub queue_dropped: u64,
    /// The counters the sink reports itself (`EventSink::stats`).
    pub stats: events_sink::SinkStats,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) appended: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) encode_errors: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) lagged_fallbacks: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) sink_dropped: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) prune_errors: AtomicU64,
    pub(crate) watermark_errors: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) conflicts: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Where an event refused for its encoding is counted: `too_large`
    /// for [`Error::TooLarge`](crate::Error::TooLarge), `encode_errors`
    /// for the rest.
    pub(crate) fn refusal(&self, e: &crate::Error) -> &AtomicU64 {
        if matches!(e, crate::Error::TooLarge { .. }) { &self.too_large } else { &self.encode_errors }
    }

    pub(crate) fn snapshot(&self) -> FeedStats {
        FeedStats {
            appended: self.appended.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            encode_errors: self.encode_errors.load(Relaxed),
            batches: self.batches.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            fsyncs: self.fsyncs.load(Relaxed),
            lagged_fallbacks: self.lagged_fallbacks.load(Relaxed),
            resets: self.resets.load(Relaxed),
            sink_dropped: self.sink_dropped.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
            prune_errors: self.prune_errors.load(Relaxed),
            watermark_errors: self.watermark_errors.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            conflicts: self.conflicts.load(Relaxed),
            ..FeedStats::default()
        }
    }
}
