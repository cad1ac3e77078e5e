//! [`NatsError`]: every way replication or a remote read can fail, with the
//! stream, seq or field involved.
//!
//! Neighbours: raised by [`crate::spec`] (stream creation and validation),
//! [`crate::replicator`] and [`crate::consumer`]. Invariant: an error names
//! what it was doing (`op`) or what it found (stream seq, field), so a log
//! line alone locates the problem.

use std::path::PathBuf;

use events::CodecError;
use events::layers::journal::{JournalError, ReadError, Reset};

/// The boxed error type `async-nats` returns from its requests.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error from this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// A JetStream request (stream info, create, get, publish, consumer)
    /// failed; `op` says which.
    #[error("JetStream request failed while {op}: {source}")]
    JetStream {
        /// What was being done.
        op: &'static str,
        /// The client's error.
        #[source]
        source: BoxError,
    },
    /// The stream exists but is configured in a way replication cannot rely
    /// on (another subject, memory storage, a too short duplicate window, a
    /// retention that deletes consumed messages).
    #[error("stream {stream}: {field} is {found}, expected {expected}")]
    StreamMismatch {
        /// The stream name.
        stream: String,
        /// The configuration field.
        field: &'static str,
        /// What replication needs.
        expected: String,
        /// What the server has.
        found: String,
    },
    /// The stream already holds events of another journal epoch (the local
    /// journal directory was recreated). Use a new stream, or purge it.
    /// Raised when a replicator starts, and when the directory is recreated
    /// under a running one (which then stops).
    #[error("stream {stream} holds events of epoch {stream_epoch}, the journal's epoch is {journal_epoch}")]
    EpochMismatch {
        /// The stream name.
        stream: String,
        /// The epoch in the stream's last message.
        stream_epoch: u64,
        /// The local journal's epoch.
        journal_epoch: u64,
    },
    /// A record is larger than the server takes in one message (its
    /// `max_payload`, 1 MiB by default; payload and headers count), or than
    /// the stream stores (its `max_msg_size`): the replicator cannot
    /// publish it, nor skip it without a gap, and stops there. Raise the
    /// limit, or keep records below it.
    #[error(
        "record {seq} ({bytes} bytes) is larger than NATS takes in one message; \
         replication into stream {stream} stopped before it: {reason}"
    )]
    TooLarge {
        /// The stream name.
        stream: String,
        /// The record's journal seq.
        seq: u64,
        /// Its payload's length.
        bytes: usize,
        /// The client's message, with the sizes it compared.
        reason: String,
    },
    /// A message in the stream lacks the headers this crate writes, or they
    /// do not parse: something else publishes on the stream's subject.
    #[error("stream {stream}, message {stream_seq}: {reason}")]
    BadMessage {
        /// The stream name.
        stream: String,
        /// The JetStream sequence of the message.
        stream_seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The journal in `dir` can no longer be followed from the last seq
    /// the replicator accounted for (`after`): it ends before seqs the
    /// stream already holds (`Reset::Ahead`: rolled back, or restored from
    /// an older copy), or it reported a reset this crate does not know.
    /// Publishing on would put other records under `Nats-Msg-Id`s and seqs
    /// the stream already holds, so the replicator stops. Use a new stream,
    /// or purge it.
    #[error("journal {}: {}; replication into stream {stream} stopped after seq {after}", dir.display(), describe(reset))]
    JournalReset {
        /// The stream name.
        stream: String,
        /// The journal directory.
        dir: PathBuf,
        /// The last journal seq published or accounted for.
        after: u64,
        /// What the journal's follower reported.
        reset: Reset,
    },
    /// Retention removed seqs `first_missing..=last_missing` from the
    /// journal in `dir` before they were replicated: the stream will never
    /// hold them (a remote reader crossing them gets an `Expired` reset).
    /// Not fatal: replication goes on with the earliest retained record;
    /// the seqs are counted in `ReplicationStats::skipped`.
    #[error(
        "journal {}: seqs {first_missing}..={last_missing} were pruned before they were replicated into stream {stream}",
        dir.display()
    )]
    Pruned {
        /// The stream name.
        stream: String,
        /// The journal directory.
        dir: PathBuf,
        /// The first seq lost to retention.
        first_missing: u64,
        /// The last seq lost to retention.
        last_missing: u64,
    },
    /// The stream no longer holds seqs `first_missing..=last_missing` it
    /// had acknowledged (the server lost them, crashing before it synced
    /// its last writes; or its limits removed some before), and the
    /// journal in `dir` pruned them before they could be sent again. Not
    /// fatal, and not counted in `ReplicationStats::skipped` (what the
    /// limits removed cannot be told apart).
    #[error(
        "stream {stream} no longer holds seqs {first_missing}..={last_missing} it had acknowledged (the server lost them, or its limits removed them), and journal {} pruned them since: they cannot be sent again",
        dir.display()
    )]
    LostByServer {
        /// The stream name.
        stream: String,
        /// The journal directory.
        dir: PathBuf,
        /// The first seq lost.
        first_missing: u64,
        /// The last seq lost.
        last_missing: u64,
    },
    /// A feed id that cannot be one (a shared stream's subjects are
    /// `<prefix>.<feed id>`, see [`crate::FeedCursors`]).
    #[error("feed id {feed:?}: {reason}")]
    FeedId {
        /// The id given.
        feed: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A subject (an exclusive stream's) or a prefix (a shared stream's)
    /// that is not a literal subject: empty, with whitespace, a wildcard
    /// (`*`, `>`) or an empty token, found before any request
    /// ([`StreamSpec::check`](crate::StreamSpec::check)). A wildcard would
    /// capture other publishers' messages into the stream, which breaks
    /// the replicator's guard.
    #[error("subject {subject:?}: {reason}")]
    Subject {
        /// The subject given.
        subject: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A stream name JetStream refuses (empty, longer than 255 bytes, or
    /// holding whitespace, `.`, `*`, `>`, `/` or `\`), found before any
    /// request ([`StreamSpec::check`](crate::StreamSpec::check)).
    #[error("stream name {name:?}: {reason}")]
    StreamName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A [`FeedCursors`](crate::FeedCursors) text that does not parse.
    #[error("feed cursor {text:?}: {reason}")]
    BadCursor {
        /// The part of the text that is wrong.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The local journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The local journal refused a read for a reason this crate does not
    /// handle itself (a [`ReadError`] variant newer than this crate). The
    /// replicator no longer raises it (it follows the journal through
    /// `events_journal::Follower`, which turns every refusal into a reset
    /// or a [`JournalError`]); kept so code matching on it still builds.
    #[error("reading the journal: {0}")]
    Read(#[source] ReadError),
    /// A payload could not be decoded as the event type with the codec.
    #[error("decoding the event of seq {seq} (stream {stream}, message {stream_seq}, subject {subject}): {source}")]
    #[non_exhaustive]
    Decode {
        /// The feed seq of the record.
        seq: u64,
        /// The stream it was read from.
        stream: String,
        /// Its stream sequence.
        stream_seq: u64,
        /// Its subject (in a shared stream, `<prefix>.<feed id>`: which feed).
        subject: String,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
    /// A [`ReplicatorBuilder`](crate::ReplicatorBuilder) setting that
    /// cannot work, refused by `start` before anything is done.
    #[error("replicator setting {setting}: {reason}")]
    Setting {
        /// The builder method that set it.
        setting: &'static str,
        /// Why it cannot work.
        reason: String,
    },
}

/// A journal reset in words, for [`NatsError::JournalReset`].
fn describe(reset: &Reset) -> String {
    match reset {
        Reset::Ahead { latest, .. } => {
            format!("it ends at seq {latest}, behind the stream (rolled back, or restored from an older copy)")
        }
        other => format!("the journal reset ({other:?})"),
    }
}

impl NatsError {
    /// A copy of this error, for the variants whose fields can be copied
    /// (a client's error as its text; `None` for the journal's).
    pub(crate) fn copied(&self) -> Option<NatsError> {
        Some(match self {
            NatsError::JetStream { op, source } => NatsError::js(op, source.to_string()),
            NatsError::StreamMismatch { stream, field, expected, found } => NatsError::StreamMismatch {
                stream: stream.clone(),
                field,
                expected: expected.clone(),
                found: found.clone(),
            },
            NatsError::EpochMismatch { stream, stream_epoch, journal_epoch } => NatsError::EpochMismatch {
                stream: stream.clone(),
                stream_epoch: *stream_epoch,
                journal_epoch: *journal_epoch,
            },
            NatsError::TooLarge { stream, seq, bytes, reason } => {
                NatsError::TooLarge { stream: stream.clone(), seq: *seq, bytes: *bytes, reason: reason.clone() }
            }
            NatsError::BadMessage { stream, stream_seq, reason } => {
                NatsError::BadMessage { stream: stream.clone(), stream_seq: *stream_seq, reason: reason.clone() }
            }
            NatsError::JournalReset { stream, dir, after, reset } => {
                NatsError::JournalReset { stream: stream.clone(), dir: dir.clone(), after: *after, reset: *reset }
            }
            _ => return None,
        })
    }

    pub(crate) fn js(op: &'static str, source: impl Into<BoxError>) -> Self {
        NatsError::JetStream { op, source: source.into() }
    }
}
