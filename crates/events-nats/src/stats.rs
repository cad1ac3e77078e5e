//! [`ReplicationStats`]: the snapshot of a replicator's progress and lag
//! that [`Replicator::stats`](crate::Replicator::stats) and `shutdown`
//! return, built from the counters kept in `replicator.rs`.
//!
//! Invariant: a plain value with no behaviour; every field says what it
//! counts since the replicator started.
use std::time::Duration;

/// A snapshot of a replicator's progress. Lag is measured against the
/// journal on disk at the moment of the call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicationStats {
    /// The last journal seq JetStream acknowledged.
    pub replicated: u64,
    /// The journal's last seq.
    pub journal_latest: u64,
    /// `journal_latest - replicated`.
    pub lag_seqs: u64,
    /// How long ago the oldest record not yet acknowledged was journaled
    /// (zero without lag).
    pub lag: Duration,
    /// Publishes sent (re-sends included).
    pub published: u64,
    /// Acknowledgements received.
    pub acked: u64,
    /// Acknowledgements that reported a duplicate (a re-send JetStream dropped).
    pub duplicates: u64,
    /// Times the replicator dropped its window and resumed from the stream
    /// (after a server-side failure only).
    pub resyncs: u64,
    /// Errors met (each also logged through `tracing`), `stalls` included.
    pub errors: u64,
    /// Errors of the local journal that a retry against the server cannot
    /// fix (a corrupt frame in a sealed segment, an unreadable segment).
    /// Each one pauses reading the journal, 50 ms the first time, doubling
    /// up to 5 s while it persists; the records before it are replicated
    /// first, and `last_error` names the file and offset.
    pub stalls: u64,
    /// Seqs the journal's retention pruned before they could be replicated
    /// (the follower's `Reset::Expired`): they will never be in the stream.
    /// Each seq is counted once, even if a resync meets the same pruned
    /// range again; each time new seqs are lost, `errors` grows by one and
    /// `last_error` names the range ([`NatsError::Pruned`](crate::NatsError::Pruned)). Replication
    /// goes on with the earliest retained record. (Seqs the server lost
    /// after acknowledging them and retention pruned before they could be
    /// sent again are not counted: they are reported as
    /// [`NatsError::LostByServer`](crate::NatsError::LostByServer).)
    pub skipped: u64,
    /// Salvage gaps published as gap markers (see [`crate::headers`]).
    pub gaps: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Set when the task ended (a shutdown, or a fatal error) with
    /// publishes given up on unacknowledged, naming why: a publish or its
    /// acknowledgement failed and no resync has read the stream since, or
    /// a fatal error's drain failed. They may still be stored, so the
    /// stream may hold records past `replicated` (the next run resumes
    /// after the stream's last message). `None` otherwise, whatever other
    /// errors (a checkpoint commit's) came.
    pub unacknowledged: Option<String>,
    /// The replication task has ended after a fatal error, which
    /// [`wait_for`](crate::Replicator::wait_for) returns (`last_error`
    /// names it, unless a later error, a final checkpoint commit's,
    /// replaced it): the stream holds another journal's events or
    /// foreign messages, or the journal directory was recreated
    /// ([`NatsError::EpochMismatch`](crate::NatsError::EpochMismatch)) or rolled back
    /// ([`NatsError::JournalReset`](crate::NatsError::JournalReset)) under the replicator. A stopped
    /// replicator publishes nothing more and
    /// [`wait_for`](crate::Replicator::wait_for) fails; fix the cause and start a
    /// new one.
    pub stopped: bool,
    /// The seq durably committed to the replicator's consumer checkpoint
    /// (`<journal dir>/consumers/<name>`, see
    /// [`Replicator::consumer_name`](crate::Replicator::consumer_name)):
    /// `replicated` as of the last commit, which trails it by at most the
    /// builder's `checkpoint_interval`. Its lag as a consumer (what
    /// [`FeedReader::consumers`](events::FeedReader::consumers) reports) is
    /// `journal_latest - checkpoint`. `None` when the replicator does not
    /// register one
    /// ([`register_consumer(false)`](crate::ReplicatorBuilder::register_consumer)).
    pub checkpoint: Option<u64>,
    /// The checkpoint is inside the journal's retained range (the journal
    /// still holds the seq after it), the test a consumer report's
    /// `pinned` makes: retention keeps what the replicator still needs, as
    /// long as that stays within the journal's `consumer_limit`. `false`
    /// without a checkpoint, and after retention cut the replicator loose
    /// (until it has caught up with the earliest retained record again).
    pub pinned: bool,
    /// The replicator waits for the journal to reach the builder's
    /// [`start_after`](crate::ReplicatorBuilder::start_after): the stream
    /// holds nothing of it yet and the journal ends before that seq. It
    /// publishes nothing until the journal gets there (logged once, when
    /// the wait begins).
    pub waiting_for_start_after: bool,
}
