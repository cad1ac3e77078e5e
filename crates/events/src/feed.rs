//! [`Feed`] and its [`FeedBuilder`]: opening a journal directory, spawning
//! the writer thread, and the handle operations (`record`, `append`,
//! `stream_from`, `session`, stats, `close`).
//!
//! Invariant: a `Feed` handle never touches the journal itself. Every write
//! goes through the inbox to the one writer thread; reads go through an
//! independent mmap [`Reader`], so readers never contend with the writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use events_core::{Bincode, Codec, Envelope, Event, Seq, StreamId};
use events_journal::{Journal, JournalOptions, Reader, RecoveryMode, RecoveryReport, Retention, SyncPolicy};
use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::inbox::Inbox;
use crate::session::{Session, SessionRegistry};
use crate::sinks::{SinkQueue, SinkSet};
use crate::stats::{Counters, FeedStats};
use crate::stream::{Cursor, FeedStream, LIVE_CHUNK, LiveChunk};
use crate::writer::{Cmd, Writer};
use crate::{Error, EventSink, Result};

/// State shared by every handle, stream and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    // For a writer's feed, `latest`/`earliest` are set by the writer after
    // each batch; for a `FeedReader` they are refreshed from the files.
    pub(crate) dir: PathBuf,
    pub(crate) epoch: u64,
    pub(crate) latest: AtomicU64,
    pub(crate) earliest: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) reader: Reader,
    pub(crate) failure: Mutex<Option<String>>,
    pub(crate) closed: AtomicBool,
}

impl Shared {
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }

    pub(crate) fn set_failed(&self, cause: String) {
        self.failure.lock().get_or_insert(cause);
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn latest(&self) -> Seq {
        Seq::new(self.latest.load(Ordering::Acquire))
    }

    pub(crate) fn earliest(&self) -> Seq {
        Seq::new(self.earliest.load(Ordering::Acquire))
    }

    /// The counters with the current positions and health filled in.
    pub(crate) fn stats(&self) -> FeedStats {
        let mut stats = self.counters.snapshot();
        stats.latest_seq = self.latest().get();
        stats.earliest_seq = self.earliest().get();
        stats.healthy = self.failure().is_none();
        stats
    }

    /// For a reader without a writer: re-reads latest and earliest from the
    /// journal files.
    pub(crate) fn refresh_from_reader(&self) {
        if let Ok(last) = self.reader.last_seq() {
            self.latest.store(last, Ordering::Release);
        }
        if let Ok(first) = self.reader.first_seq() {
            self.earliest.store(first, Ordering::Release);
        }
    }

    /// Called by the writer after each journaled batch.
    pub(crate) fn after_batch(&self, appended: u64, last: u64, journal: &Journal) {
        let stats = journal.stats();
        let c = &self.counters;
        if appended > 0 {
            c.appended.fetch_add(appended, Ordering::Relaxed);
            c.batches.fetch_add(1, Ordering::Relaxed);
        }
        c.bytes.store(stats.bytes_written, Ordering::Relaxed);
        c.fsyncs.store(stats.fsyncs, Ordering::Relaxed);
        self.earliest.store(journal.first_seq(), Ordering::Release);
        self.latest.store(last, Ordering::Release);
    }
}

/// Configures and opens a [`Feed`]. Created by [`Feed::builder`].
///
/// Every option has a default; the ones that matter for durability
/// ([`sync`](Self::sync)) and disk use ([`retention`](Self::retention)) say
/// so explicitly.
pub struct FeedBuilder<E: Event, C: Codec = Bincode> {
    dir: PathBuf,
    journal: JournalOptions,
    sync_policy: SyncPolicy,
    inbox_capacity: usize,
    live_capacity: usize,
    sink_queue: usize,
    sink_timeout: Option<Duration>,
    session_capacity: usize,
    sinks: Vec<Arc<dyn EventSink<Envelope<E>>>>,
    codec: C,
}

impl<E: Event, C: Codec> std::fmt::Debug for FeedBuilder<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedBuilder")
            .field("dir", &self.dir)
            .field("journal", &self.journal)
            .field("inbox_capacity", &self.inbox_capacity)
            .field("live_capacity", &self.live_capacity)
            .field("sinks", &self.sinks.len())
            .field("codec", &C::NAME)
            .finish()
    }
}

impl<E: Event> FeedBuilder<E, Bincode> {
    fn new(dir: PathBuf) -> Self {
        FeedBuilder {
            dir,
            journal: JournalOptions::new(),
            sync_policy: SyncPolicy::Always,
            inbox_capacity: 1024,
            live_capacity: 4096,
            sink_queue: 1024,
            sink_timeout: None,
            session_capacity: 256,
            sinks: Vec::new(),
            codec: Bincode,
        }
    }
}

impl<E: Event, C: Codec> FeedBuilder<E, C> {
    /// The size at which the journal starts a new segment. Default: 8 MiB.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.journal = self.journal.segment_bytes(bytes);
        self
    }

    /// Which old segments are deleted, at open and after every roll.
    /// Default: `Retention::segments(64)`.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.journal = self.journal.retention(retention);
        self
    }

    /// When appends are fsynced. Default: [`SyncPolicy::Always`] (an
    /// acknowledged append has been fdatasync'ed; concurrent appends share
    /// one fsync).
    #[must_use]
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.journal = self.journal.sync(policy);
        self.sync_policy = policy;
        self
    }

    /// What recovery does with a corrupt newest segment. Default:
    /// [`RecoveryMode::Strict`] (a torn tail is truncated; corruption
    /// followed by valid frames refuses to open, naming file and offset).
    #[must_use]
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.journal = self.journal.recovery(mode);
        self
    }

    /// The largest accepted encoded event. Default: 16 MiB.
    #[must_use]
    pub fn max_record_bytes(mut self, bytes: u32) -> Self {
        self.journal = self.journal.max_record_bytes(bytes);
        self
    }

    /// Commands the inbox holds before `record` drops and `append` waits.
    /// Default: 1024.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    #[must_use]
    pub fn inbox_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "inbox capacity must be at least 1");
        self.inbox_capacity = capacity;
        self
    }

    /// Events the live tail buffers for `stream_from` consumers; a consumer
    /// further behind falls back to the journal. Default: 4096.
    ///
    /// The tail holds published chunks of up to 64 events, so the bound is
    /// `capacity / 64` chunks (at least 2): exact under load, smaller in
    /// events when the feed is quiet and batches are small.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    #[must_use]
    pub fn live_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "live capacity must be at least 1");
        self.live_capacity = capacity;
        self
    }

    /// Attaches a best-effort sink. Sinks see every durable event after it
    /// is journaled, in seq order, on a background task behind a bounded
    /// queue, so a slow sink never slows the writer; what the queue cannot
    /// hold is dropped and counted in [`FeedStats::sink_dropped`].
    /// Repeatable: sinks are called one after another for each event.
    #[must_use]
    pub fn sink<S>(mut self, sink: S) -> Self
    where
        S: EventSink<Envelope<E>> + 'static,
    {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Events each session subscriber may hold before `Session::emit`
    /// waits for it. Default: 256.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    #[must_use]
    pub fn session_capacity(mut self, capacity: usize) -> Self {
        assert!(capacity > 0, "session capacity must be at least 1");
        self.session_capacity = capacity;
        self
    }

    /// Batches of envelopes the sink queue holds. Default: 1024.
    #[must_use]
    pub fn sink_queue(mut self, batches: usize) -> Self {
        self.sink_queue = batches.max(1);
        self
    }

    /// Bounds each sink call; a call cut short is counted in
    /// [`FeedStats::sink_timeouts`]. Default: no timeout.
    #[must_use]
    pub fn sink_timeout(mut self, timeout: Duration) -> Self {
        self.sink_timeout = Some(timeout);
        self
    }

    /// Uses another payload codec. Default: [`Bincode`]. The codec's id is
    /// stored in every segment header; opening a journal written with
    /// another codec fails.
    pub fn codec<C2: Codec>(self, codec: C2) -> FeedBuilder<E, C2> {
        FeedBuilder {
            dir: self.dir,
            journal: self.journal,
            sync_policy: self.sync_policy,
            inbox_capacity: self.inbox_capacity,
            live_capacity: self.live_capacity,
            sink_queue: self.sink_queue,
            sink_timeout: self.sink_timeout,
            session_capacity: self.session_capacity,
            sinks: self.sinks,
            codec,
        }
    }

    /// Opens the feed: creates the directory if needed, takes its lock,
    /// recovers the newest segment, applies retention and spawns the writer.
    ///
    /// On an empty or missing directory a new journal (with a new epoch) is
    /// created. On a clean one, seqs continue after the last record. On a
    /// torn one (a crash mid-write), the incomplete tail is truncated and
    /// seqs continue after the last complete record. On a corrupt one
    /// (damage followed by valid records), opening fails with the file and
    /// offset unless a salvage [`RecoveryMode`] was chosen.
    ///
    /// Must be called within a tokio runtime (sinks run on it).
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] for I/O errors, a directory locked by another
    /// writer, corruption, or a journal written with another codec;
    /// [`Error::Spawn`] if the writer thread cannot start; [`Error::Task`] if
    /// the blocking open panicked.
    pub async fn open(self) -> Result<Feed<E, C>> {
        self.open_with_report().await.map(|(feed, _)| feed)
    }

    /// Like [`open`](Self::open), also returning what recovery found.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with_report(self) -> Result<(Feed<E, C>, RecoveryReport)> {
        let dir = self.dir.clone();
        let options = self.journal.clone().codec_tag(C::ID);
        let (journal, report) =
            tokio::task::spawn_blocking(move || Journal::open(&dir, options)).await.map_err(Error::Task)??;
        let reader = Reader::open(&self.dir)?;
        tracing::info!(
            dir = %self.dir.display(),
            epoch = journal.epoch(),
            first = journal.first_seq(),
            last = journal.last_seq(),
            "feed opened"
        );
        let shared = Arc::new(Shared {
            dir: self.dir.clone(),
            epoch: journal.epoch(),
            latest: AtomicU64::new(journal.last_seq()),
            earliest: AtomicU64::new(journal.first_seq()),
            counters: Counters::default(),
            reader,
            failure: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel(self.inbox_capacity);
        let (live, _) = broadcast::channel(self.live_capacity.div_ceil(LIVE_CHUNK).max(2));
        let sink_set = (!self.sinks.is_empty()).then(|| SinkSet::new(self.sinks, self.sink_timeout));
        let sinks = sink_set.clone().map(|set| SinkQueue::spawn(set, self.sink_queue));
        let group_commit = self.sync_policy == SyncPolicy::Always;
        let writer = Writer::new(journal, live.clone(), sinks, Arc::clone(&shared), self.codec.clone(), group_commit);
        std::thread::Builder::new().name("events-writer".into()).spawn(move || writer.run(rx)).map_err(Error::Spawn)?;
        let feed = Feed {
            inbox: Inbox::new(tx, Arc::clone(&shared)),
            live: live.downgrade(),
            shared,
            sessions: Arc::new(SessionRegistry::new(self.session_capacity)),
            sinks: sink_set,
            codec: self.codec,
        };
        Ok((feed, report))
    }
}

/// A durable change feed. Cheap to clone: every clone is a handle to the
/// same writer.
///
/// See the [crate docs](crate) for a guide.
pub struct Feed<E: Event, C: Codec = Bincode> {
    inbox: Inbox<E>,
    live: broadcast::WeakSender<LiveChunk<E>>,
    shared: Arc<Shared>,
    sessions: Arc<SessionRegistry<E>>,
    sinks: Option<SinkSet<E>>,
    codec: C,
}

impl<E: Event, C: Codec> Clone for Feed<E, C> {
    fn clone(&self) -> Self {
        Feed {
            inbox: self.inbox.clone(),
            live: self.live.clone(),
            shared: Arc::clone(&self.shared),
            sessions: Arc::clone(&self.sessions),
            sinks: self.sinks.clone(),
            codec: self.codec.clone(),
        }
    }
}

impl<E: Event, C: Codec> std::fmt::Debug for Feed<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("dir", &self.shared.dir)
            .field("epoch", &self.shared.epoch)
            .field("latest", &self.latest_seq())
            .finish_non_exhaustive()
    }
}

impl<E: Event> Feed<E, Bincode> {
    /// Starts configuring a feed stored in `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> FeedBuilder<E, Bincode> {
        FeedBuilder::new(dir.as_ref().to_path_buf())
    }
}

impl<E: Event, C: Codec> Feed<E, C> {
    /// Records an event without waiting: never blocks, never fails.
    ///
    /// Ephemeral events are ignored (before any clone). The caller's
    /// `stream` wins over the event's own [`Event::stream_id`]. When the
    /// inbox is full, or the feed is closed or unhealthy, the event is
    /// dropped and counted in [`FeedStats::dropped`]; use
    /// [`append`](Self::append) when the event must not be lost.
    pub fn record(&self, stream: Option<&str>, event: &E) {
        self.inbox.record(stream, event);
    }

    /// Appends a durable event and waits until it is journaled with the
    /// durability of the feed's [`SyncPolicy`]. Waits for inbox space
    /// instead of dropping. Returns the event's seq.
    ///
    /// Ephemeral events are never journaled, so appending one is refused
    /// with [`Error::Ephemeral`].
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the journal write failed (the event was not
    /// published), [`Error::Unhealthy`] after an earlier failure,
    /// [`Error::Codec`] when the event cannot be encoded,
    /// [`Error::Ephemeral`] for an ephemeral event, [`Error::Closed`] after
    /// [`close`](Self::close).
    pub async fn append(&self, stream: Option<&str>, event: E) -> Result<Seq> {
        self.inbox.append(stream, event).await
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

    /// Every durable event from `cursor` on (exclusive), then live. See
    /// [`FeedStream`] for the guarantees: in order, no gap, no duplicate,
    /// however slow the consumer; an explicit [`FeedItem::Reset`](crate::FeedItem)
    /// when the cursor cannot be served.
    pub fn stream_from(&self, cursor: impl Into<Cursor>) -> FeedStream<E> {
        let rx = self.live.upgrade().map(|tx| tx.subscribe());
        FeedStream::new(cursor.into(), rx, Arc::clone(&self.shared), self.codec.clone(), None)
    }

    /// Live durable events from now on (equivalent to
    /// `stream_from(feed.latest_seq())`).
    pub fn subscribe(&self) -> FeedStream<E> {
        let rx = self.live.upgrade().map(|tx| tx.subscribe());
        let cursor = Cursor::from(self.latest_seq());
        FeedStream::new(cursor, rx, Arc::clone(&self.shared), self.codec.clone(), None)
    }

    /// The latest journaled seq (`Seq::ZERO` for an empty journal).
    pub fn latest_seq(&self) -> Seq {
        self.shared.latest()
    }

    /// The earliest retained seq (`latest + 1` when nothing is retained).
    pub fn earliest_seq(&self) -> Seq {
        self.shared.earliest()
    }

    /// The journal's epoch: a random id fixed when the directory was first
    /// created. A cursor from another epoch cannot be resumed.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// A snapshot of the feed's counters.
    pub fn stats(&self) -> FeedStats {
        let mut stats = self.shared.stats();
        if let Some(sinks) = &self.sinks {
            let own = sinks.stats();
            stats.sink_dropped += own.dropped;
            stats.sink_timeouts += own.timed_out;
        }
        stats
    }

    /// Flushes and fsyncs everything appended before this call, whatever
    /// the [`SyncPolicy`].
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] when the fsync fails (the feed becomes unhealthy),
    /// [`Error::Closed`] after close.
    pub async fn sync(&self) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.inbox.send(Cmd::Sync { ack }).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Closes the feed: stops accepting, drains the inbox into the journal,
    /// fsyncs, stops the writer and releases the directory lock. Streams end
    /// after delivering everything journaled. Other handles get
    /// [`Error::Closed`] afterwards.
    ///
    /// Dropping every handle without `close` also drains and fsyncs, in the
    /// background.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the feed was already closed; an error if the
    /// final fsync failed.
    pub async fn close(self) -> Result<()> {
        let (ack, rx) = oneshot::channel();
        self.inbox.send(Cmd::Close { ack }).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// `true` once the writer has stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}
