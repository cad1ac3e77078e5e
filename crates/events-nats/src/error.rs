//! [`NatsError`]: every way replication or a remote read can fail, with the
//! stream, seq or field involved.
//!
//! Neighbours: raised by [`crate::spec`] (stream creation and validation),
//! [`crate::replicator`] and [`crate::consumer`]. Invariant: an error names
//! what it was doing (`op`) or what it found (stream seq, field), so a log
//! line alone locates the problem.

use events::CodecError;
use events::layers::journal::JournalError;

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
    #[error("stream {stream} holds events of epoch {stream_epoch}, the journal's epoch is {journal_epoch}")]
    EpochMismatch {
        /// The stream name.
        stream: String,
        /// The epoch in the stream's last message.
        stream_epoch: u64,
        /// The local journal's epoch.
        journal_epoch: u64,
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
    /// The local journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A payload could not be decoded as the event type with the codec.
    #[error("decoding the event of seq {seq}: {source}")]
    Decode {
        /// The feed seq of the record.
        seq: u64,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
}

impl NatsError {
    pub(crate) fn js(op: &'static str, source: impl Into<BoxError>) -> Self {
        NatsError::JetStream { op, source: source.into() }
    }
}
