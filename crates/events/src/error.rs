//! The façade's [`Error`]: one enum that every layer's error converts into,
//! so application code handles a single type. Each variant keeps the layer
//! error as its `source()`, with the path, offset or seq it carries.

use events_core::{CodecError, EventId, Seq, StreamId};

use crate::append::Expected;
use events_journal::{JournalError, ReadError};

/// Everything that can go wrong in a [`Feed`](crate::Feed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The journal refused an operation (I/O, lock, corruption, limits).
    #[error("journal error")]
    Journal(#[from] JournalError),
    /// Reading the journal failed in a way a stream cannot turn into a
    /// `Reset`.
    #[error("journal read error")]
    Read(#[source] ReadError),
    /// An event could not be encoded, or a journaled payload decoded.
    #[error("codec error")]
    Codec(#[from] CodecError),
    /// The feed was closed (by [`Feed::close`](crate::Feed::close));
    /// nothing more is accepted.
    #[error("the feed is closed")]
    Closed,
    /// An earlier journal write or fsync failed, or the writer thread
    /// panicked. After a failed fsync the page cache cannot be trusted, so
    /// the feed refuses every append until it is reopened (recovery then
    /// finds what really reached the disk). An append answered so because
    /// the writer thread panicked while the append's batch was on its way
    /// (`cause` names the panic) may have been journaled: an append made
    /// with an event id ([`AppendOptions::id`](crate::AppendOptions::id))
    /// from its first attempt on is had once by retrying it with the same
    /// id after the reopen.
    #[error("the feed is unhealthy after an earlier journal failure ({cause}); reopen it to recover")]
    Unhealthy {
        /// What failed first.
        cause: String,
    },
    /// The event's encoding is larger than the feed's `max_record_bytes`.
    /// Only this event is refused: the feed stays healthy and the events
    /// batched with it are journaled.
    #[error("the encoded event is {bytes} bytes, over the feed's max_record_bytes of {limit}")]
    TooLarge {
        /// The encoded size.
        bytes: usize,
        /// The limit.
        limit: u32,
    },
    /// Retention removed events right after `cursor`: the earliest retained
    /// seq is `earliest`, so seqs `cursor + 1 .. earliest` are gone for good.
    /// Returned by the feed's `EventLog::events_after`, and so by
    /// [`reconcile`](crate::reconcile), instead of silently skipping them; a
    /// consumer that gets it has lost events and must rebuild its view (a
    /// [`FeedStream`](crate::FeedStream) reports the same as a
    /// [`FeedItem::Reset`](crate::FeedItem::Reset), or with this error under
    /// the [`OnExpired::Fail`](crate::OnExpired::Fail) policy).
    #[error("the events after seq {cursor} were removed by retention; the earliest retained seq is {earliest}")]
    Expired {
        /// The cursor the read was asked to continue from; for a
        /// per-stream read (`read_stream`) that had handed out events
        /// before retention removed what came next, the last seq it handed
        /// out: where a caller resumes.
        cursor: Seq,
        /// The earliest retained seq.
        earliest: Seq,
    },
    /// A journaled event cannot be decoded as the reader's type: another
    /// type or codec, corrupted bytes that passed the frame CRC, or a schema
    /// version with no upcaster (the source names the codec). Under
    /// [`OnUndecodable::Skip`](crate::OnUndecodable::Skip) a stream yields
    /// [`FeedItem::Undecodable`](crate::FeedItem::Undecodable) instead.
    #[error("cannot decode the event at seq {seq} (schema version {version})")]
    Decode {
        /// The record's seq.
        seq: Seq,
        /// The record's schema version.
        version: u32,
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
    /// A builder option is out of range (named in the message).
    #[error("invalid feed configuration: {0}")]
    Config(String),
    /// A stream id is longer than
    /// [`MAX_STREAM_ID_BYTES`](crate::MAX_STREAM_ID_BYTES): refused by
    /// `append` (a `record` or session event with one is dropped and
    /// counted in `encode_errors`) and by `read_stream`.
    #[error("the stream id is {len} bytes, over the limit of {limit}")]
    StreamIdTooLong {
        /// The id's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A conditional append found its stream at another version than it
    /// expected (someone appended to the stream since the caller read it):
    /// nothing was journaled. `current` counts appends still in flight: it
    /// may be an event waiting for its fdatasync, which no reader sees yet
    /// and which is refused if that fails (its seq then goes to another
    /// event; the feed is then unhealthy and refuses every append until it
    /// is reopened). So do not retry expecting `current` unread: read the
    /// stream after the last version you saw (`read_stream(id, seen)`
    /// starts after it), decide again from what it holds, and expect the
    /// version of the last event you read (`Expected::NoStream` if there is
    /// none). If it holds nothing new yet, the event at `current` is still
    /// in flight (or the readers' watermark lags): read again.
    #[error("stream {stream:?} is at {}, the append expected {expected}", current.map_or("no version (no retained event)".to_owned(), |s| format!("version {s}")))]
    VersionConflict {
        /// The stream.
        stream: StreamId,
        /// What the append expected.
        expected: Expected,
        /// The stream's version: the seq of its latest retained event
        /// (`None`: it has none).
        current: Option<Seq>,
    },
    /// An append with an expected version has no stream id (neither the
    /// caller's nor the event's own): a version belongs to a stream.
    #[error("an append with an expected version needs a stream id")]
    MissingStream,
    /// An append's event id is empty or longer than
    /// [`MAX_EVENT_ID_BYTES`](crate::MAX_EVENT_ID_BYTES).
    #[error("the event id is {len} bytes; an id is 1 to {limit} bytes")]
    EventIdInvalid {
        /// The id's length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// An idempotent append's id names, within the dedupe window, an event
    /// journaled to another stream (or to none, where this one names a
    /// stream, or the reverse): ids are the feed's, not a stream's, so this
    /// is no retry of it, and nothing was journaled. (While that event is
    /// in flight, this append waits for its outcome: refused, it shares
    /// the refusal.) Counted in `FeedStats::conflicts`.
    #[error("event id {id:?} names seq {seq}, appended to another stream")]
    EventIdTaken {
        /// The id.
        id: EventId,
        /// The seq of the event the id names.
        seq: Seq,
    },
    /// `append` was given an ephemeral event, which is never journaled.
    #[error("ephemeral events are never journaled; use record() or a session")]
    Ephemeral,
    /// A durable consumer's commit names a seq past the latest of the
    /// journal it is committed in: no such event was handed out, so none
    /// was processed. Nothing is committed. (Kept, a journal grown past it
    /// would have resumed the consumer after events it never processed.)
    #[error("consumer {consumer:?} committed seq {seq}, past the journal's latest seq {latest}")]
    CommitAhead {
        /// The consumer's name.
        consumer: String,
        /// The seq refused.
        seq: Seq,
        /// The journal's latest seq when the commit was refused.
        latest: Seq,
    },
    /// The event type's own code panicked on this event while the writer
    /// handled it (`during`: `Event::stream_id` or `Serialize`). The event
    /// is refused alone, nothing of it is journaled, and the feed goes on.
    #[error("the event's {during} panicked ({message}); the event was refused alone")]
    EventPanicked {
        /// Which of the event type's functions panicked.
        during: &'static str,
        /// The panic's message.
        message: String,
    },
    /// The event encodes with the feed's codec but does not decode back
    /// (under bincode: a type whose `Deserialize` needs a self-describing
    /// format, such as one holding a `serde_json::Value`, or an internally
    /// tagged or untagged enum; `MsgPack` reads those). Refused alone,
    /// nothing journaled: no reader could have read it. Checked, in every
    /// build, for each event whose shape (the serde calls its `Serialize`
    /// makes, the values of numbers and strings and the lengths of lists
    /// aside) the writer (or the feed's sessions) has not read back
    /// before: so a type where only some values fail is refused at each of
    /// those, however late it comes.
    #[error("the event encodes with {codec} but does not decode back, so no reader could read it")]
    Unreadable {
        /// The codec's name.
        codec: &'static str,
        /// Why it does not decode.
        #[source]
        source: CodecError,
    },
    /// The writer thread could not be started.
    #[error("the writer thread could not be started")]
    Spawn(#[source] std::io::Error),
    /// A journal task on tokio's blocking pool (opening the journal, or a
    /// stream's replay read) panicked or was cancelled by a runtime shutting
    /// down. A panic while decoding comes from the event type's own
    /// `Deserialize`.
    #[error("a blocking journal task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Convenient alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats an error and its `source()` chain on one line
/// (`outer: cause: root`), skipping a cause whose text the line already
/// holds (many errors repeat their source in their own message). For logs,
/// `Unhealthy` causes and command-line output.
///
/// ```
/// let io = std::io::Error::other("disk on fire");
/// let err = events::Error::Spawn(io);
/// assert_eq!(events::error_chain(&err), "the writer thread could not be started: disk on fire");
/// ```
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Runs the event type's own code (`during` names it) so that a panic in it
/// becomes this event's error instead of the end of the thread or task
/// running it.
pub(crate) fn isolated<T>(during: &'static str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|panic| Error::EventPanicked { during, message: panic_message(&*panic) })
}

/// Lets go of `value`, whose `Drop` runs the event type's own code: a
/// panic there is caught and logged, and the caller goes on.
pub(crate) fn let_go<T>(value: T) {
    if let Err(e) = isolated("Drop", move || drop(value)) {
        logged(|| tracing::error!(error = %e, "the Drop of an event let go panicked"));
    }
}

/// Runs `wake`, which wakes a task (its waker is an executor's own code),
/// under a catch: `None` when it panicked, which is logged as `what`.
pub(crate) fn wake_caught<T>(what: &'static str, wake: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(wake)) {
        Ok(woken) => Some(woken),
        Err(panic) => {
            let message = panic_message(&*panic);
            let_go(panic);
            logged(|| tracing::error!(panic = %message, "{what}"));
            None
        }
    }
}

/// Runs `log` (a `tracing` call) under a catch: the log of a panic that
/// was caught must not panic in its turn (a `tracing` layer is the
/// application's code). Uncaught, it unwound out of the catch it
/// reported on: the writer thread ended, a bell's other wakers went
/// unwoken, a list being let go was dropped during the unwinding (a second
/// panic there aborts). The log's own panic is let go under a catch too,
/// and forgotten only if its payload's `Drop` panics as well.
pub(crate) fn logged(log: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(log))
        && let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(panic)))
    {
        std::mem::forget(again);
    }
}

/// Lets go of each of `values` on its own ([`let_go`]): a panic in one's
/// `Drop` leaves the others to be let go under their own catch (dropped
/// with their container, a second panic during the first's unwinding
/// aborts the process).
pub(crate) fn let_go_each<T>(values: impl IntoIterator<Item = T>) {
    values.into_iter().for_each(let_go);
}

/// Decoded events on their way to a stream, each let go on its own
/// ([`let_go_each`]) if the list is dropped before it is taken
/// ([`LetGo::into_vec`]). Such a list is dropped where nothing catches: a
/// read ahead whose stream was dropped or moved elsewhere, a read whose
/// stream was dropped while it ran (on tokio's blocking pool, or in the
/// caller's drop of the stream), the half of a decode that ended early on
/// an undecodable record. Dropped as a `Vec`, a second `Drop` panic of the
/// event type's, during the first one's unwinding, aborts the process.
pub(crate) struct LetGo<T>(Vec<T>);

impl<T> LetGo<T> {
    /// The items, taken: nothing is left to let go.
    pub(crate) fn into_vec(mut self) -> Vec<T> {
        std::mem::take(&mut self.0)
    }
}

impl<T> From<Vec<T>> for LetGo<T> {
    fn from(items: Vec<T>) -> Self {
        LetGo(items)
    }
}

impl<T> std::ops::Deref for LetGo<T> {
    type Target = Vec<T>;

    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> std::ops::DerefMut for LetGo<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T> Drop for LetGo<T> {
    fn drop(&mut self) {
        let_go_each(std::mem::take(&mut self.0));
    }
}

/// The message a caught panic carried (`panic!` with a string literal or a
/// formatted one), or `"a non-string payload"`.
///
/// ```
/// let panic = std::panic::catch_unwind(|| panic!("disk {} on fire", 3)).unwrap_err();
/// assert_eq!(events::panic_message(&*panic), "disk 3 on fire");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned())
}
