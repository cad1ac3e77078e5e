//! [`FeedReader`]: the façade's one read handle. [`Feed::reader`](crate::Feed::reader)
//! hands out one that follows the writer's live tail in this process;
//! [`FeedReader::open`] makes one for a journal another process writes (an
//! HTTP server, a replicator, the CLI), which takes no lock, never writes,
//! and follows the files by polling. Every `Feed` read accessor forwards here.
//!
//! Invariant: every reader, in any process, gets the same `stream_from`
//! guarantees (in order, no gap, no duplicate, explicit `Reset` at the same
//! places, nothing the writer has not acknowledged): both kinds run the same
//! [`FeedStream`] state machine, and a follower is bounded by the durable
//! watermark the writer publishes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use events_core::{Bincode, Codec, Event, Seq};
use events_journal::Reader;

use crate::consumer::{self, Consumer, ConsumerOptions, ConsumerReport};
use crate::live::Ring;
use crate::position::{Cursor, FeedItem, OnExpired, OnUndecodable};
use crate::recent::Recent;
use crate::shared::Shared;
use crate::sinks::SinkSet;
use crate::stream::filter::{Filter, FilteredStream};
use crate::stream::{FeedStream, Tail};
use crate::stream_read::{self, StreamEvents};
use crate::{FeedStats, Result};
use futures::StreamExt;
use futures::stream::BoxStream;

/// A read handle on a feed's journal: resumable streams, positions, epoch
/// and counters. Cheap to clone.
///
/// Get one from a [`Feed`](crate::Feed) with [`Feed::reader`](crate::Feed::reader)
/// (new events arrive through the writer's live tail), or open one on a
/// directory another process writes with [`FeedReader::open`] (new events
/// are found by polling the files, bounded by the durable watermark the
/// writer publishes, so a follower never sees a record whose append has not
/// returned).
///
/// # Example
///
/// ```
/// use events::{Event, Feed, FeedItem, FeedReader, Seq};
/// use futures::StreamExt;
/// # #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)] struct Ping(u32);
/// # impl Event for Ping {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
/// # let tmp = tempfile::tempdir().unwrap(); let dir = tmp.path();
/// let feed: Feed<Ping> = Feed::builder(dir).open().await?;
/// let reader: FeedReader<Ping> = FeedReader::open(dir)?; // as another process would
/// let mut tail = reader.stream_from(Seq::ZERO); // follows the writer
/// feed.append(None, Ping(1)).await?;
/// let Some(Ok(FeedItem::Event(env))) = tail.next().await else { panic!() };
/// assert_eq!(env.event, Ping(1));
/// # feed.close().await }
/// ```
pub struct FeedReader<E, C: Codec = Bincode> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) codec: C,
    source: Source<E>,
    /// A writer's sinks, whose own counters its stats include.
    sinks: Option<SinkSet<E>>,
    /// A writer's ring of recent ephemeral events (with live output on).
    pub(crate) ring: Option<Arc<Ring<E>>>,
    pub(crate) on_expired: OnExpired,
    on_undecodable: OnUndecodable,
    /// The epoch of the journal this reader opened. Its pages
    /// ([`EventLog`](crate::EventLog)) come from that journal only: their
    /// cursor is a bare seq, which means another event in a directory
    /// recreated since (the streams' cursors carry their epoch).
    pub(crate) opened_epoch: u64,
}

/// Where a reader's streams get new events once caught up.
enum Source<E> {
    /// The newest envelopes the writer published (its bell, in `Shared`,
    /// says when there are new ones).
    Live(Arc<Recent<E>>),
    /// Poll the files this often.
    Poll(Duration),
}

impl<E> Clone for Source<E> {
    fn clone(&self) -> Self {
        match self {
            Source::Live(recent) => Source::Live(Arc::clone(recent)),
            Source::Poll(interval) => Source::Poll(*interval),
        }
    }
}

impl<E, C: Codec> Clone for FeedReader<E, C> {
    fn clone(&self) -> Self {
        FeedReader {
            shared: Arc::clone(&self.shared),
            codec: self.codec.clone(),
            source: self.source.clone(),
            sinks: self.sinks.clone(),
            ring: self.ring.clone(),
            on_expired: self.on_expired,
            on_undecodable: self.on_undecodable,
            opened_epoch: self.opened_epoch,
        }
    }
}

impl<E, C: Codec> std::fmt::Debug for FeedReader<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Live(..) => "live".to_owned(),
            Source::Poll(interval) => format!("poll every {interval:?}"),
        };
        f.debug_struct("FeedReader").field("dir", &self.shared.dir).field("source", &source).finish()
    }
}

impl<E: Event> FeedReader<E, Bincode> {
    /// Opens a read-only view of the journal in `dir` with the default codec.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`](crate::Error::Journal)(crate::Error::Journal) when the directory cannot be
    /// read or holds no journal.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_codec(dir, Bincode)
    }
}

impl<E: Event, C: Codec> FeedReader<E, C> {
    /// Opens a read-only view of the journal in `dir` with `codec`.
    ///
    /// # Errors
    ///
    /// As [`open`](FeedReader::open), and
    /// [`JournalError::CodecTagMismatch`](events_journal::JournalError::CodecTagMismatch)
    /// naming the segment when the journal was written with another codec
    /// (read with this one, its events would fail to decode, or decode
    /// into other values). A journal whose headers name no codec (tag 0,
    /// written with the journal API alone) is read as it is.
    pub fn open_with_codec(dir: impl AsRef<Path>, codec: C) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let reader = Reader::open(&dir)?;
        let epoch = newest_header_of::<C>(&reader)?.epoch;
        let shared = Arc::new(Shared::for_follower(dir, epoch, reader));
        Ok(FeedReader {
            shared,
            codec,
            source: Source::Poll(Duration::from_millis(20)),
            sinks: None,
            ring: None,
            on_expired: OnExpired::default(),
            on_undecodable: OnUndecodable::default(),
            opened_epoch: epoch,
        })
    }

    /// The reader of a writer's feed in this process.
    pub(crate) fn live(shared: Arc<Shared>, codec: C, recent: Arc<Recent<E>>, sinks: Option<SinkSet<E>>) -> Self {
        let opened_epoch = shared.epoch();
        FeedReader {
            shared,
            codec,
            source: Source::Live(recent),
            sinks,
            ring: None,
            on_expired: OnExpired::default(),
            on_undecodable: OnUndecodable::default(),
            opened_epoch,
        }
    }

    /// How often a caught-up stream of a follower looks for new records.
    /// Default: 20 ms. A reader from [`Feed::reader`](crate::Feed::reader)
    /// gets new events from the live tail and ignores this.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        if let Source::Poll(_) = self.source {
            self.source = Source::Poll(interval);
        }
        self
    }

    /// What this reader's streams do when retention removed events after
    /// their cursor. Default: [`OnExpired::Earliest`] (or what the feed's
    /// builder set).
    ///
    /// ```
    /// # use events::{Event, Feed, OnExpired};
    /// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Tick;
    /// # impl Event for Tick {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
    /// # let tmp = tempfile::tempdir().unwrap();
    /// # let feed: Feed<Tick> = Feed::builder(tmp.path()).open().await?;
    /// // A projection that must never silently skip: fail instead of resetting.
    /// let strict = feed.reader().on_expired(OnExpired::Fail);
    /// let _events = strict.stream_from(events::Seq::new(41));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn on_expired(mut self, policy: OnExpired) -> Self {
        self.on_expired = policy;
        self
    }

    /// The policy [`on_expired`](Self::on_expired) set: where a stream goes
    /// on after an expired cursor's reset (what a server's resume id must
    /// name).
    pub fn expired_policy(&self) -> OnExpired {
        self.on_expired
    }

    /// What this reader's streams do with an event they cannot decode.
    /// Default: [`OnUndecodable::Fail`] (or what the feed's builder set).
    #[must_use]
    pub fn on_undecodable(mut self, policy: OnUndecodable) -> Self {
        self.on_undecodable = policy;
        self
    }

    /// The policy [`on_undecodable`](Self::on_undecodable) set (what a
    /// server does with an event it cannot pass on).
    pub fn undecodable_policy(&self) -> OnUndecodable {
        self.on_undecodable
    }

    /// The durable consumer `name` of this journal, created (checkpoint 0:
    /// everything retained) if it does not exist, with the default
    /// [`ConsumerOptions`]. Its checkpoint lives in the journal directory, so
    /// it is the same consumer from any process; one instance of a name runs
    /// at a time (two would overwrite each other's progress): a second,
    /// in this process or another, is refused while the first is alive.
    /// A call cancelled (dropped) mid-way may still create the consumer:
    /// its file work goes on, on the blocking pool, and a call for the
    /// same name through this feed waits for it to end.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`](crate::Error::Journal) with `ConsumerInUse` while
    /// another instance of the name is alive (after waiting
    /// [`CONSUMER_OPEN_WAIT`](crate::layers::journal::CONSUMER_OPEN_WAIT) for it to go);
    /// with `InvalidConsumerName` for an empty name, one
    /// over 64 bytes or one with characters other than `A-Z a-z 0-9 . _ -`
    /// (or starting with `.`); `CheckpointCorrupt` if both checkpoint slots
    /// are damaged; `Io` if the file cannot be created.
    pub async fn consumer(&self, name: &str) -> Result<Consumer<E, C>> {
        self.consumer_with(name, ConsumerOptions::default()).await
    }

    /// [`consumer`](Self::consumer) with explicit commit batching.
    ///
    /// # Errors
    ///
    /// As [`consumer`](Self::consumer).
    pub async fn consumer_with(&self, name: &str, options: ConsumerOptions) -> Result<Consumer<E, C>> {
        Consumer::open(self.clone(), name, options).await
    }

    /// Every durable consumer of this journal with its checkpoint, lag and
    /// whether retention keeps segments for it, sorted by name.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`](crate::Error::Journal) if the consumers directory cannot be listed.
    pub fn consumers(&self) -> Result<Vec<ConsumerReport>> {
        let at = consumer::Position { epoch: self.epoch(), earliest: self.earliest_seq(), latest: self.latest_seq() };
        consumer::reports(self.dir(), &self.shared.reader, &at)
    }

    /// Deletes the durable consumer `name` (it then pins nothing); `true` if
    /// it existed. A running [`Consumer`] of that name, in any process,
    /// holds its checkpoint open, and the delete is refused until it stops
    /// (its later commits would go to the deleted file while retention
    /// dropped what it still needs).
    ///
    /// # Errors
    ///
    /// [`Error::Journal`](crate::Error::Journal) for an invalid name, a
    /// consumer in use (`JournalError::ConsumerInUse`) or a failed removal.
    pub fn delete_consumer(&self, name: &str) -> Result<bool> {
        Ok(events_journal::delete_consumer(self.dir(), name)?)
    }

    /// A writer's kept envelopes (`None` for a follower).
    pub(crate) fn recent(&self) -> Option<&Arc<Recent<E>>> {
        match &self.source {
            Source::Live(recent) => Some(recent),
            Source::Poll(_) => None,
        }
    }

    pub(crate) fn follower(&self) -> bool {
        matches!(self.source, Source::Poll(_))
    }

    /// Whether this reader reads the journal's files as another process
    /// would ([`FeedReader::open`]) rather than a feed of this process
    /// ([`Feed::reader`](crate::Feed::reader)). A follower's
    /// [`stats`](Self::stats) are its own streams' (no appends, no fsyncs;
    /// its `healthy` says nothing of the writer): see
    /// [`writer_running`](Self::writer_running).
    pub fn is_follower(&self) -> bool {
        self.follower()
    }

    /// Whether a writer has the journal open: for a feed's own reader,
    /// whether the feed is open; for a follower, whether a process holds
    /// the journal's lock (`None` where the platform cannot test a lock
    /// without taking it).
    pub fn writer_running(&self) -> Option<bool> {
        if self.follower() {
            return self.shared.reader.writer_running();
        }
        Some(!self.shared.is_closed())
    }

    /// Every durable event from `cursor` on (exclusive), then new ones as
    /// the writer appends them. See [`FeedStream`] for the guarantees: in
    /// order, no gap, no duplicate, however slow the consumer; an explicit
    /// [`FeedItem::Reset`](crate::FeedItem) when the cursor cannot be
    /// served. A follower's stream never ends on its own; a live one ends
    /// after the feed is closed and everything journaled was delivered, or
    /// after the writer failed and everything it acknowledged was
    /// delivered (then with [`Error::Unhealthy`](crate::Error::Unhealthy)).
    pub fn stream_from(&self, cursor: impl Into<Cursor>) -> FeedStream<E> {
        self.stream(cursor.into(), None)
    }

    /// The events of `stream_from(cursor)` that pass `filter`, plus
    /// [`FeedItem::Checkpoint`] items carrying the seq scanned so far, so
    /// that a filtered consumer that stores the last event's or
    /// checkpoint's seq as its cursor resumes past other streams' events
    /// instead of re-scanning them. When a checkpoint comes and how to tune
    /// it: [`FilteredStream`]. Resets, undecodable events and errors come
    /// as from `stream_from`, with two exceptions:
    ///
    /// **Another stream's undecodable event is passed over.** With
    /// [`Filter::Stream`], an event that does not decode (a newer writer's
    /// variant, say) but whose stream id does, naming another stream, is
    /// not reported: the filter would have passed over it decoded. One
    /// whose stream id does not decode either (a payload that is not this
    /// façade's encoding, appended through the journal) is no stream's, and
    /// passed over too: no per-stream index can place it, and
    /// [`read_stream`](Self::read_stream) never reads it. (It had been
    /// reported where its segment was read record by record, and not where
    /// the index let the read jump over the segment.) `stream_from` and
    /// other filters report it as the [`OnUndecodable`] policy says.
    ///
    /// **A quiet stream is not reset for others' events.** With
    /// [`Filter::Stream`], a cursor below the earliest retained seq is
    /// reset only if events *of that stream* may have been pruned. Before
    /// retention removes a segment, the journal records its seq range and
    /// the hashes of the stream ids in it in a small summary file
    /// (`PRUNED`, the last 32 removed segments, bytes in `docs/FORMAT.md`);
    /// when that summary covers every seq from the cursor to the earliest
    /// retained one and none of those segments held the stream, the stream
    /// goes on at the earliest retained event with a checkpoint instead of
    /// a reset (whatever the [`OnExpired`] policy: nothing it asked for is
    /// gone). Anything less certain (a range older than the summary, a
    /// segment whose ids were not known, the stream's own events or a hash
    /// collision) resets as `stream_from` would. A [`Filter::Predicate`]
    /// cannot be checked against what was pruned: its clients are reset
    /// as `stream_from`'s are.
    ///
    /// **Catch-up through the per-stream index.** With [`Filter::Stream`],
    /// a stream that replays the journal jumps over whole sealed segments
    /// whose sidecar index (see [`read_stream`](Self::read_stream)) proves
    /// they hold no event of the stream after its cursor and no missing
    /// seq, with a checkpoint at the last seq jumped over; their records are
    /// not read (so an undecodable event of another stream in them is not
    /// reported). Segments whose sidecar is not built yet, damaged or stale,
    /// the active one, and segments holding the stream are read record by
    /// record as `stream_from` reads them. To load one stream's history,
    /// [`read_stream`](Self::read_stream) reads only that stream's records.
    ///
    /// ```
    /// use events::{Cursor, Event, Feed, FeedItem, Filter, Seq};
    /// use futures::StreamExt;
    /// # #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)] struct Step(u32);
    /// # impl Event for Step {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
    /// # let tmp = tempfile::tempdir().unwrap(); let dir = tmp.path();
    /// let feed: Feed<Step> = Feed::builder(dir).open().await?;
    /// feed.append(Some("sess-7"), Step(1)).await?;
    /// for n in 2..=5 {
    ///     feed.append(Some("sess-8"), Step(n)).await?;
    /// }
    /// let mut sess7 = feed.stream_filtered(Seq::ZERO, Filter::stream("sess-7"))?.checkpoint_after(std::time::Duration::ZERO);
    /// let Some(Ok(FeedItem::Event(env))) = sess7.next().await else { panic!() };
    /// assert_eq!((env.seq, &env.event), (Seq::new(1), &Step(1)));
    /// // Caught up after skipping sess-8's events: the cursor moves past them.
    /// let Some(Ok(FeedItem::Checkpoint { seq })) = sess7.next().await else { panic!() };
    /// assert_eq!(seq, Seq::new(5));
    /// let cursor = Cursor::new(seq, feed.epoch()); // store it; resume from it later
    /// # let _ = cursor;
    /// # feed.close().await }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::StreamIdTooLong`](crate::Error::StreamIdTooLong) for a
    /// [`Filter::Stream`] id over [`MAX_STREAM_ID_BYTES`](crate::MAX_STREAM_ID_BYTES).
    pub fn stream_filtered(&self, cursor: impl Into<Cursor>, filter: Filter<E>) -> Result<FilteredStream<E>> {
        let cursor = cursor.into();
        let key = match &filter {
            Filter::Stream(id) => {
                crate::index::check_stream_id(id)?;
                Some(id.as_bytes().to_vec())
            }
            Filter::Predicate(_) => None,
        };
        Ok(FilteredStream::new(self.stream(cursor, key), filter, cursor.seq))
    }

    fn stream(&self, cursor: Cursor, stream_key: Option<Vec<u8>>) -> FeedStream<E> {
        let tail = match &self.source {
            Source::Live(recent) => Tail::Live(Arc::clone(recent)),
            Source::Poll(interval) => Tail::Poll(*interval),
        };
        FeedStream::new(
            cursor,
            tail,
            Arc::clone(&self.shared),
            self.codec.clone(),
            self.on_expired,
            self.on_undecodable,
            stream_key,
        )
    }

    /// The events of stream `id` with a seq above `from`, in seq order, up
    /// to the latest acknowledged seq when the call is made (then the
    /// stream ends: see [`follow_stream`](Self::follow_stream) to go on
    /// live). Equal to `stream_from(from)` filtered by stream id, but reads
    /// only that stream's records: each sealed segment has a per-stream
    /// index in a sidecar file (`<first_seq>.idx`, built by the writer after
    /// each roll, or by the first read that needs it; rebuilt with a warning
    /// when damaged or stale), the newest segment an in-memory one. An unknown stream gives an empty stream;
    /// events already removed by retention are not there (no reset). A
    /// gap in the journal (records a salvage dropped, seqs skipped after a
    /// power loss under `Never` or `Interval`) is passed over as well: the
    /// read cannot tell whether the stream had events there and yields no
    /// item for it, where [`stream_from`](Self::stream_from) yields
    /// `Reset { Gap }`: a history that must know reads with `stream_from`
    /// (or [`stream_filtered`](Self::stream_filtered)).
    ///
    /// A reader opened with [`FeedReader::open`] never writes, so it builds
    /// missing sidecars in memory for each read; the writer's process
    /// writes them.
    ///
    /// ```
    /// use events::{Event, Feed, Seq};
    /// use futures::TryStreamExt;
    /// # #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)] struct Step(u32);
    /// # impl Event for Step {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
    /// # let tmp = tempfile::tempdir().unwrap(); let dir = tmp.path();
    /// let feed: Feed<Step> = Feed::builder(dir).open().await?;
    /// for n in 0..6 {
    ///     let session = if n % 2 == 0 { "sess-7" } else { "sess-8" };
    ///     feed.append(Some(session), Step(n)).await?;
    /// }
    /// // Load session sess-7's history.
    /// let history: Vec<_> = feed.read_stream("sess-7", Seq::ZERO)?.try_collect().await?;
    /// let steps: Vec<(Seq, &Step)> = history.iter().map(|env| (env.seq, &env.event)).collect();
    /// assert_eq!(steps, [(Seq::new(1), &Step(0)), (Seq::new(3), &Step(2)), (Seq::new(5), &Step(4))]);
    /// assert!(feed.read_stream("nobody", Seq::ZERO)?.try_collect::<Vec<_>>().await?.is_empty());
    /// # feed.close().await }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::StreamIdTooLong`](crate::Error::StreamIdTooLong) for an id
    /// over [`MAX_STREAM_ID_BYTES`](crate::MAX_STREAM_ID_BYTES). The stream
    /// yields [`Error::Expired`](crate::Error::Expired) if retention removes
    /// a segment while it is read (or, between this call and the stream's
    /// first poll, removes events of the stream after `from` that were
    /// retained at the call), and a journal error if one is damaged
    /// (`EpochMismatch` if the directory is recreated or replaced while it
    /// reads, a writer's too: never a history that mixes two journals).
    pub fn read_stream(&self, id: &str, from: Seq) -> Result<StreamEvents<E>> {
        // At most what the files serve: a failed watermark write leaves the
        // journal's readers behind the acknowledged seq until the next
        // batch. The history stops there; `follow_stream` goes on live from
        // its limit, from the writer's memory, so nothing is skipped.
        self.read_stream_in(id, (from, from == Seq::ZERO), self.earliest_seq(), self.epoch())
    }

    /// [`read_stream`](Self::read_stream) of a journal whose earliest
    /// retained seq was `earliest` when the caller looked, in the journal
    /// of `epoch` (what the caller pinned first), every segment checked
    /// against it.
    /// `everything`: the read asks for whatever is retained when it lists
    /// the segments (a bare `Seq::ZERO`), so nothing pruned before then is
    /// `Expired`.
    fn read_stream_in(
        &self,
        id: &str,
        (from, everything): (Seq, bool),
        earliest: Seq,
        epoch: u64,
    ) -> Result<StreamEvents<E>> {
        let limit = self.latest_seq().min(self.shared.readable());
        let (codec, policy) = (self.codec.clone(), self.on_undecodable);
        let span = stream_read::Span { from, everything, limit, earliest };
        stream_read::read(Arc::clone(&self.shared), codec, id, span, policy, (epoch, self.follower()))
    }

    /// [`read_stream`](Self::read_stream), then the stream's new events as
    /// they are appended: [`stream_filtered`](Self::stream_filtered) by
    /// [`Filter::Stream`] (after the seq the history stopped at, or after
    /// `from` when that is later), without its checkpoints. Its resets are
    /// passed on as they are; other streams' events pruned while the
    /// stream was quiet reset nothing, and other streams' undecodable
    /// events are passed over, as `stream_filtered` says. When retention
    /// removed events after `from` (not a bare `Seq::ZERO`, which asks for
    /// everything retained), the stream starts as the reader's
    /// [`OnExpired`] policy says, as `stream_from` does: one
    /// `Reset { Expired }` first (then the history from the earliest
    /// retained event, or, under `Latest`, only new events), or
    /// [`Error::Expired`](crate::Error::Expired) and the end; unless the
    /// journal's pruned-segments summary shows that none of the removed
    /// events belonged to the stream. Retention is looked at when the
    /// stream is first polled (events pruned between this call and then
    /// get the policy's answer too); events of the stream it removes
    /// after that look, before the history reaches them, end the stream
    /// with [`Error::Expired`](crate::Error::Expired), as `read_stream`'s:
    /// never a history that skips them. A gap in the history (records a
    /// salvage dropped, seqs a power loss took) is passed over as
    /// `read_stream` says, with no reset; in the live part it is the
    /// feed's `Reset { Gap }`.
    ///
    /// `from` is a [`Cursor`] (or a bare [`Seq`], which accepts any
    /// epoch): a cursor of another journal (the directory was recreated
    /// since the client stored it) starts the stream with one
    /// `Reset { EpochMismatch }`, then the stream's whole retained history
    /// in this journal, as `stream_from` does. Its seq is never read as a
    /// seq of this journal.
    ///
    /// # Errors
    ///
    /// As [`read_stream`](Self::read_stream).
    pub fn follow_stream(&self, id: &str, from: impl Into<Cursor>) -> Result<BoxStream<'static, Result<FeedItem<E>>>> {
        // The epoch first: a directory recreated between the two reads then
        // gives an epoch reset, never an old journal's seq in the new one.
        let epoch = self.epoch();
        crate::index::check_stream_id(id)?;
        let cursor = from.into();
        // Retention is looked at when the stream is first polled, as
        // `stream_from`'s is, so the `OnExpired` policy decides about
        // events pruned after this call too (the history's own check,
        // between that look and its listing, ends it with `Expired`).
        // That look reads small files (the pruned-segments summary, a
        // follower's watermark): on the blocking pool, as every other
        // read of a stream, never on the async worker.
        let (reader, id) = (self.clone(), id.to_owned());
        let started = async move {
            match tokio::task::spawn_blocking(move || reader.follow_stream_in(&id, cursor, epoch)).await {
                Ok(followed) => followed,
                Err(e) => futures::stream::once(std::future::ready(Err(crate::Error::Task(e)))).boxed(),
            }
        };
        Ok(futures::stream::once(started).flatten().boxed())
    }

    /// [`follow_stream`](Self::follow_stream) from `cursor` in the journal
    /// of `epoch`.
    fn follow_stream_in(&self, id: &str, cursor: Cursor, epoch: u64) -> BoxStream<'static, Result<FeedItem<E>>> {
        let earliest = self.earliest_seq();
        let (epoch_reset, from, everything) = match cursor.epoch {
            Some(cursor_epoch) if cursor_epoch != epoch => {
                let reason = crate::ResetReason::EpochMismatch { cursor_epoch, journal_epoch: epoch };
                tracing::info!(
                    stream = id,
                    cursor = cursor.seq.get(),
                    cursor_epoch,
                    epoch,
                    "stream of another journal"
                );
                crate::stats::Counters::bump(&self.shared.counters.resets);
                let reset = FeedItem::Reset { reason, earliest, latest: self.latest_seq() };
                // Before the earliest retained event the reset names, not a
                // bare `Seq::ZERO` (whatever is retained when the history
                // lists the segments): events of the stream pruned before
                // then get the `OnExpired` policy's answer.
                (Some(reset), Seq::new(earliest.get().saturating_sub(1)), false)
            }
            // `everything`: as `read_stream_in` says; only a bare
            // `Seq::ZERO` (no epoch) asks for it: seq 0 of a named journal
            // is a position, expired once seq 1 is pruned (`Cursor::new`).
            _ => (None, cursor.seq, cursor.seq == Seq::ZERO && cursor.epoch.is_none()),
        };
        let followed = self.follow_stream_after(id, (from, everything), earliest, epoch);
        match epoch_reset {
            Some(reset) => futures::stream::once(std::future::ready(Ok(reset))).chain(followed).boxed(),
            None => followed,
        }
    }

    /// [`follow_stream_in`](Self::follow_stream_in) after `from`, the
    /// earliest retained seq being `earliest` (`everything`: as
    /// [`read_stream_in`](Self::read_stream_in) says).
    fn follow_stream_after(
        &self,
        id: &str,
        (from, everything): (Seq, bool),
        earliest: Seq,
        epoch: u64,
    ) -> BoxStream<'static, Result<FeedItem<E>>> {
        let (reset, from) = match self.expired_for_stream(id, (from, everything), earliest, epoch) {
            None => (None, from),
            Some(Err(e)) => return futures::stream::once(std::future::ready(Err(e))).boxed(),
            Some(Ok((reset, after))) => (Some(reset), after),
        };
        let history = match self.read_stream_in(id, (from, everything), earliest, epoch) {
            Ok(history) => history,
            Err(e) => return futures::stream::once(std::future::ready(Err(e))).boxed(),
        };
        // Filtered by stream id, as `stream_filtered` is: other streams'
        // events pruned, or undecodable, are not this stream's business.
        let live = self.stream(stream_read::live_cursor(&history, from, epoch), Some(id.as_bytes().to_vec()));
        let followed = stream_read::follow(history, live, id, self.on_undecodable);
        match reset {
            Some(reset) => futures::stream::once(std::future::ready(Ok(reset))).chain(followed).boxed(),
            None => followed,
        }
    }

    /// Whether retention removed events of stream `id` after `from`: `None`
    /// when it did not (nothing removed after `from`, a bare `Seq::ZERO`,
    /// or the pruned-segments summary shows none of the removed events were
    /// the stream's); otherwise what the [`OnExpired`] policy says: the
    /// reset to yield first and the seq to go on after, or the error.
    fn expired_for_stream(
        &self,
        id: &str,
        (from, everything): (Seq, bool),
        earliest: Seq,
        epoch: u64,
    ) -> Option<Result<(FeedItem<E>, Seq)>> {
        let last_pruned = earliest.get().checked_sub(1)?;
        if everything || from.get() >= last_pruned {
            return None;
        }
        let log = events_journal::PrunedLog::read(&self.shared.dir);
        if log.is_some_and(|log| log.lacks(epoch, id.as_bytes(), from.get() + 1, last_pruned)) {
            return None;
        }
        let latest = self.latest_seq();
        tracing::info!(stream = id, cursor = from.get(), earliest = earliest.get(), "stream expired");
        let reset = FeedItem::Reset { reason: crate::ResetReason::Expired, earliest, latest };
        let after = match self.on_expired {
            OnExpired::Earliest => from,
            OnExpired::Latest => latest.max(from),
            OnExpired::Fail => return Some(Err(crate::Error::Expired { cursor: from, earliest })),
        };
        crate::stats::Counters::bump(&self.shared.counters.resets);
        Some(Ok((reset, after)))
    }

    /// New durable events from now on (`stream_from(latest_seq())`).
    pub fn subscribe(&self) -> FeedStream<E> {
        // The epoch first, as for `follow_stream`.
        let epoch = self.epoch();
        self.stream_from(Cursor::new(self.latest_seq(), epoch))
    }

    /// The latest acknowledged seq (`Seq::ZERO` for an empty journal); a
    /// follower reads the writer's watermark now.
    pub fn latest_seq(&self) -> Seq {
        if self.follower() {
            self.shared.refresh_from_reader();
        }
        self.shared.latest()
    }

    /// The earliest retained seq (`latest + 1` when nothing is retained); a
    /// follower reads it from the files now.
    pub fn earliest_seq(&self) -> Seq {
        if self.follower() {
            self.shared.refresh_from_reader();
        }
        self.shared.earliest()
    }

    /// The journal's epoch: a random id fixed when the directory was first
    /// created. A follower looks at the files again, so after the directory
    /// was recreated under it this is the new journal's epoch.
    pub fn epoch(&self) -> u64 {
        if self.follower() {
            self.shared.epoch_on_disk();
        }
        self.shared.epoch()
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// A snapshot of the counters: a writer's (its sinks' own counters
    /// included), or a follower's streams' (lag fallbacks are always 0: a
    /// follower has no live tail; resets are counted). Its `consumers` come
    /// from the journal directory (one listing of `consumers/`, one small
    /// read per consumer, one listing of the segments), so a loop that polls
    /// only counters should not call it every millisecond on an async
    /// worker; the HTTP layer and the metrics publisher call it on the
    /// blocking pool.
    pub fn stats(&self) -> FeedStats {
        let unreadable = match self.follower() {
            true => self.shared.try_refresh_from_reader().err(),
            false => None,
        };
        let mut stats = self.shared.stats();
        if let Some(e) = unreadable {
            stats.healthy = false;
            stats.problem.get_or_insert_with(|| format!("cannot read the journal: {}", crate::error_chain(&e)));
        }
        if let Some(sinks) = &self.sinks {
            let own = sinks.stats();
            stats.sink_dropped = stats.sink_dropped.saturating_add(own.dropped);
            stats.sink_timeouts = stats.sink_timeouts.saturating_add(own.timed_out);
            stats.sinks = sinks.reports();
            stats.sink_panics = stats.sinks.iter().fold(0, |total, s| total.saturating_add(s.panics));
        }
        if let Some(ring) = &self.ring {
            (stats.live_events, stats.live_evicted) = ring.counts();
        }
        stats.consumers = self.consumers().unwrap_or_else(|e| {
            tracing::debug!(error = %crate::error_chain(&e), "listing consumers for stats failed");
            Vec::new()
        });
        stats
    }
}

/// The newest segment header of `reader`'s journal, refused with
/// `CodecTagMismatch` naming the segment when it names another codec than
/// `C` (tag 0: a journal written with the journal API alone names none).
pub(crate) fn newest_header_of<C: Codec>(reader: &Reader) -> Result<events_journal::format::SegmentHeader> {
    let (path, header) = reader.newest_header()?;
    if header.codec_tag != 0 && header.codec_tag != C::ID {
        let found = header.codec_tag;
        return Err(events_journal::JournalError::CodecTagMismatch { path, expected: C::ID, found }.into());
    }
    Ok(header)
}
