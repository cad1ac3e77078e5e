//! [`Feed`]: the handle operations of an open feed (`record`, `append`,
//! `stream_from`, `session`, stats, `sync`, `close`). Opening lives in
//! `builder.rs`, the writer thread in `writer/`, reads in `reader.rs`.
//!
//! Invariant: a `Feed` handle never touches the journal itself. Every write
//! goes through the inbox to the one writer thread; reads go through its
//! [`FeedReader`] and an independent mmap reader, so readers never contend
//! with the writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use events_core::{Bincode, Codec, Event, Seq, StreamId};

use tokio::sync::{oneshot, watch};

use crate::append::{AppendOptions, Appended};
use crate::consumer::Consumer;
use crate::inbox::Inbox;
use crate::position::Cursor;
use crate::position::FeedItem;
use crate::reader::FeedReader;
use crate::session::{Session, SessionRegistry};
use crate::shared::Shared;
use crate::stats::FeedStats;
use crate::stream::FeedStream;
use crate::stream::filter::{Filter, FilteredStream};
use crate::stream_read::StreamEvents;
use crate::writer::Cmd;
use crate::{Error, Result};
use futures::stream::BoxStream;

/// A durable change feed. Cheap to clone: every clone is a handle to the
/// same writer.
///
/// See the [crate docs](crate) for a guide.
pub struct Feed<E: Event, C: Codec = Bincode> {
    pub(crate) inbox: Inbox<E>,
    pub(crate) reader: FeedReader<E, C>,
    shared: Arc<Shared>,
    sessions: Arc<SessionRegistry<E>>,
    /// Turns `true` once the sink task delivered its last batch (no sinks:
    /// `None`), and how long `close` waits for it.
    sinks_done: Option<(watch::Receiver<bool>, Duration)>,
}

/// How long [`Feed::close`] waits for the sinks to take the events handed
/// to them before it returns anyway, unless the builder's
/// [`sink_close_wait`](crate::FeedBuilder::sink_close_wait) says otherwise.
pub(crate) const SINK_CLOSE_WAIT: Duration = Duration::from_secs(10);

impl<E: Event, C: Codec> Clone for Feed<E, C> {
    fn clone(&self) -> Self {
        Feed {
            inbox: self.inbox.clone(),
            reader: self.reader.clone(),
            shared: Arc::clone(&self.shared),
            sessions: Arc::clone(&self.sessions),
            sinks_done: self.sinks_done.clone(),
        }
    }
}

impl<E: Event, C: Codec> std::fmt::Debug for Feed<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("dir", &self.shared.dir)
            .field("epoch", &self.shared.epoch())
            .field("latest", &self.latest_seq())
            .finish_non_exhaustive()
    }
}

impl<E: Event, C: Codec> Feed<E, C> {
    pub(crate) fn from_parts(
        inbox: Inbox<E>,
        reader: FeedReader<E, C>,
        shared: Arc<Shared>,
        sessions: Arc<SessionRegistry<E>>,
        sinks_done: Option<(watch::Receiver<bool>, Duration)>,
    ) -> Self {
        Feed { inbox, reader, shared, sessions, sinks_done }
    }
}

impl<E: Event, C: Codec> Feed<E, C> {
    /// Records an event without waiting: never blocks, never fails.
    ///
    /// Ephemeral events are ignored (before any clone), unless the feed
    /// keeps live output ([`FeedBuilder::live_output`](crate::FeedBuilder::live_output)):
    /// then they go to its ring of recent ephemeral events, never to the
    /// journal. The caller's
    /// `stream` wins over the event's own [`Event::stream_id`]. When the
    /// inbox is full, or the feed is closed or unhealthy, the event is
    /// dropped and counted in [`FeedStats::dropped`]; use
    /// [`append`](Self::append) when the event must not be lost.
    pub fn record(&self, stream: Option<&str>, event: &E) {
        self.inbox.record(stream, event);
    }

    /// Appends a durable event and waits until it is journaled with the
    /// durability of the feed's [`SyncPolicy`](crate::SyncPolicy). Waits for inbox space
    /// instead of dropping. Returns the event's seq.
    ///
    /// Ephemeral events are never journaled, so appending one is refused
    /// with [`Error::Ephemeral`].
    ///
    /// Cancelling the call (dropping its future, say under a timeout) once
    /// the event is queued to the writer (the call's only wait before that
    /// is for room in the queue) does not take it back: it is journaled
    /// unless the writer refuses it (too large, unreadable, a version
    /// conflict, a failed write), and the caller never learns which. A
    /// retry then journals it a second time. Where a retry must not, append
    /// with an id ([`append_with`](Self::append_with) and
    /// [`AppendOptions::id`](crate::AppendOptions::id)): a retry within the
    /// feed's dedupe window ([`Dedupe`](crate::Dedupe)) gets the first one's
    /// seq. A conditional append retried without an id may be refused with
    /// [`Error::VersionConflict`] by its own first attempt's success: only
    /// an id tells the two apart.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the journal write failed (the event was not
    /// published; the journal cuts it back, and when even that fails, a
    /// file system gone read-only, a later reopen may find it: the
    /// writer logs that as an error), [`Error::Unhealthy`] after an earlier failure,
    /// [`Error::Codec`] when the event cannot be encoded,
    /// [`Error::Ephemeral`] for an ephemeral event, [`Error::Closed`] after
    /// [`close`](Self::close).
    pub async fn append(&self, stream: Option<&str>, event: E) -> Result<Seq> {
        self.inbox.append(stream, event).await
    }

    /// Appends a durable event like [`append`](Self::append), with
    /// conditions: an [`Expected`](crate::Expected) version of its stream
    /// (checked by the writer atomically with seq allocation: of appenders
    /// racing on one version, exactly one wins) and a caller-chosen event id
    /// (an append retried with the same id within the feed's
    /// [`Dedupe`](crate::Dedupe) window journals nothing and returns the
    /// first one's seq, with [`Appended::duplicate`](crate::Appended::duplicate) set). The id
    /// check comes first: a retry of an append that succeeded is a
    /// duplicate, not a conflict.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
    /// use events::{AppendOptions, Expected, Feed};
    /// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    /// # struct Edit(String);
    /// # impl events::Event for Edit {}
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let feed: Feed<Edit> = Feed::builder(tmp.path()).open().await?;
    /// let create = AppendOptions::new().expect(Expected::NoStream);
    /// let first = feed.append_with(Some("doc-1"), Edit("a".into()), create).await?;
    /// // Someone else appends after we read version `first.seq`...
    /// feed.append(Some("doc-1"), Edit("b".into())).await?;
    /// let ours = AppendOptions::new().expect(Expected::Exact(first.seq));
    /// let stale = feed.append_with(Some("doc-1"), Edit("c".into()), ours).await;
    /// assert!(matches!(stale, Err(events::Error::VersionConflict { .. })));
    /// // An append retried with the same id is journaled once.
    /// let once = feed.append_with(Some("doc-1"), Edit("d".into()), AppendOptions::new().id("req-9")).await?;
    /// let again = feed.append_with(Some("doc-1"), Edit("d".into()), AppendOptions::new().id("req-9")).await?;
    /// assert_eq!((again.seq, again.duplicate), (once.seq, true));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append), and [`Error::VersionConflict`] when
    /// the stream is not at the expected version (nothing journaled),
    /// [`Error::MissingStream`] for an expectation without a stream id,
    /// [`Error::EventIdInvalid`] for an empty or too long id,
    /// [`Error::EventIdTaken`] for an id that names another stream's event
    /// within the dedupe window (nothing journaled).
    pub async fn append_with(&self, stream: Option<&str>, event: E, options: AppendOptions) -> Result<Appended> {
        self.inbox.append_with(stream, event, options).await
    }

    /// A cloneable handle for code that should be able to record and append
    /// but not close the feed or read it.
    pub fn inbox(&self) -> Inbox<E> {
        self.inbox.clone()
    }

    /// The lossless per-session emitter for `id`. Calling it again with the
    /// same id while the session is alive returns the same session.
    pub fn session(&self, id: &str) -> Session<E> {
        self.sessions.get_or_create(StreamId::from(id), &self.inbox)
    }

    /// A read handle on this feed, for code that should read but not write
    /// (an HTTP layer, a projection): the same streams and positions as the
    /// `Feed` itself, following the writer's live tail.
    pub fn reader(&self) -> FeedReader<E, C> {
        self.reader.clone()
    }

    /// Every durable event from `cursor` on (exclusive), then live: see
    /// [`FeedReader::stream_from`].
    pub fn stream_from(&self, cursor: impl Into<Cursor>) -> FeedStream<E> {
        self.reader.stream_from(cursor)
    }

    /// `stream_from(cursor)` narrowed by `filter`, with checkpoints: see
    /// [`FeedReader::stream_filtered`].
    ///
    /// # Errors
    ///
    /// As [`FeedReader::stream_filtered`].
    pub fn stream_filtered(&self, cursor: impl Into<Cursor>, filter: Filter<E>) -> Result<FilteredStream<E>> {
        self.reader.stream_filtered(cursor, filter)
    }

    /// The events of stream `id` after `from`: see [`FeedReader::read_stream`].
    ///
    /// # Errors
    ///
    /// As [`FeedReader::read_stream`].
    pub fn read_stream(&self, id: &str, from: Seq) -> Result<StreamEvents<E>> {
        self.reader.read_stream(id, from)
    }

    /// The events of stream `id` after `from`, then live: see [`FeedReader::follow_stream`].
    ///
    /// # Errors
    ///
    /// As [`FeedReader::read_stream`].
    pub fn follow_stream(&self, id: &str, from: impl Into<Cursor>) -> Result<BoxStream<'static, Result<FeedItem<E>>>> {
        self.reader.follow_stream(id, from)
    }

    /// The durable consumer `name`: see [`FeedReader::consumer`].
    ///
    /// # Errors
    ///
    /// As [`FeedReader::consumer`].
    pub async fn consumer(&self, name: &str) -> Result<Consumer<E, C>> {
        self.reader.consumer(name).await
    }

    /// Live durable events from now on: see [`FeedReader::subscribe`].
    pub fn subscribe(&self) -> FeedStream<E> {
        self.reader.subscribe()
    }

    /// The latest journaled (acknowledged) seq (`Seq::ZERO` for an empty journal).
    pub fn latest_seq(&self) -> Seq {
        self.reader.latest_seq()
    }

    /// The earliest retained seq (`latest + 1` when nothing is retained).
    pub fn earliest_seq(&self) -> Seq {
        self.reader.earliest_seq()
    }

    /// The journal's epoch: a random id fixed when the directory was first
    /// created. A cursor from another epoch cannot be resumed.
    pub fn epoch(&self) -> u64 {
        self.reader.epoch()
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        self.reader.dir()
    }

    /// A snapshot of the feed's counters.
    pub fn stats(&self) -> FeedStats {
        self.reader.stats()
    }

    /// Flushes and fsyncs everything appended before this call, whatever
    /// the [`SyncPolicy`](crate::SyncPolicy).
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the fsync fails (the feed becomes unhealthy),
    /// [`Error::Unhealthy`] once the writer failed (before answering, or
    /// earlier), [`Error::Closed`] after close.
    pub async fn sync(&self) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.inbox.send(Cmd::Sync { ack }).await?;
        rx.await.map_err(|_| self.inbox.gone())?
    }

    /// Closes the feed: stops accepting, drains the inbox into the journal,
    /// fsyncs, stops the writer and releases the directory lock, then waits
    /// (at most 10 s, or the builder's
    /// [`sink_close_wait`](crate::FeedBuilder::sink_close_wait)) for the
    /// sinks to take every event handed to them and to flush
    /// ([`EventSink::flush`](crate::EventSink::flush): a sink behind an
    /// `Offload` delivers what it queued, a stuck one holds `close` for the
    /// whole wait), so a sink has seen everything it will see when `close`
    /// returns. Streams
    /// end after delivering everything journaled. Other handles get
    /// [`Error::Closed`] afterwards.
    ///
    /// The drain includes every durable event a session's subscribers were
    /// shown: a [`Session::emit`](crate::Session::emit) takes its inbox slot
    /// at the moment its event goes out to them, and queues it with no await
    /// in between. An emit still waiting for a full subscriber (under
    /// [`Overflow::Wait`](crate::Overflow::Wait)) holds no slot, so `close`
    /// does not wait for it; once room comes it fails with
    /// [`Error::Closed`] and no subscriber is shown its event.
    ///
    /// Dropping every handle without `close` also drains and fsyncs, in the
    /// background. So does a `close` cancelled (its future dropped) once its
    /// command is queued: the feed still closes, the events queued before
    /// it are still journaled, and a `close` on another handle waits for
    /// it.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the feed was already closed (or another
    /// handle's `close` is under way: this one returns once it is done),
    /// [`Error::Unhealthy`] naming the cause instead if the feed had failed
    /// (that close's final fsync, or the writer thread's panic);
    /// [`Error::Journal`] if the final fsync failed (its operation, path
    /// and OS error), or `JournalError::Failed` naming the cause if the
    /// journal had failed before.
    pub async fn close(self) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        let closed = match self.inbox.send(Cmd::Close { ack }).await {
            Ok(()) => {
                // Queued: an open of the directory in this process now
                // waits for the writer to let go, even before it takes it.
                self.shared.set_closing();
                match rx.await {
                    Ok(closed) => closed,
                    // The writer thread panicked with the close queued: it
                    // let the answer go before its journal dropped.
                    Err(_) => self.after_writer_stopped(Error::Closed).await,
                }
            }
            // Another close is under way (perhaps one cut short, whose
            // caller is gone) or done.
            Err(closed) => self.after_writer_stopped(closed).await,
        };
        if let Some((mut done, wait)) = self.sinks_done {
            // The writer dropped its end of the sink queue before answering.
            if !within(wait, done.wait_for(|d| *d)).await {
                tracing::warn!(dir = %self.shared.dir.display(), "sinks still busy after close; they finish in the background");
            }
        }
        closed
    }

    /// For a `close` the writer did not answer: it ends when the writer has
    /// stopped, with the writer's failure if it failed, so the directory is
    /// free on return, and once the sinks took their events, as `close`
    /// goes on to wait.
    async fn after_writer_stopped(&self, closed: Error) -> Result<()> {
        self.shared.wait_closed().await;
        Err(self.shared.failure().map_or(closed, |cause| Error::Unhealthy { cause }))
    }

    /// `true` once the writer has stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

/// Whether `work` completes within `wait`, on any executor: `close` may be
/// driven outside tokio (`futures::executor::block_on` on a plain thread),
/// where tokio's timers panic, or on a runtime built without them. The
/// deadline is a thread's timed wait, woken and ended as soon as `work`
/// completes; if no thread can be started, the wait is over at once.
async fn within<T>(wait: Duration, work: impl std::future::Future<Output = T>) -> bool {
    let (expired, deadline) = oneshot::channel::<()>();
    let (finished, waiting) = std::sync::mpsc::channel::<()>();
    let timer = std::thread::Builder::new().name("events-close-wait".into()).spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = waiting.recv_timeout(wait) {
            let _ = expired.send(());
        }
    });
    if timer.is_err() {
        return false;
    }
    let work = std::pin::pin!(work);
    let done = matches!(futures::future::select(work, deadline).await, futures::future::Either::Left(_));
    drop(finished);
    done
}
