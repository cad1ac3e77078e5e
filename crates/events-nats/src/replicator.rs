//! [`Replicator`]: tails a local journal and publishes every record, in seq
//! order, to a JetStream stream, with many publishes in flight.
//!
//! Neighbours: [`crate::spec`] creates or validates the stream,
//! [`crate::headers`] names what each message carries, [`crate::sink`] wakes
//! the replicator from a feed's writer path, and [`crate::consumer`] reads
//! the result back. The journal is read through `events_journal::Reader`
//! (mmap, no lock), so the replicator can run beside the feed's writer, in
//! the same process or another one.
//!
//! Invariant: the stream holds each journal seq at most once and in seq
//! order. Every publish carries `Nats-Msg-Id = <epoch>-<seq>` (JetStream
//! drops a re-send within the duplicate window) and
//! `Nats-Expected-Last-Sequence` (the server refuses a message that would
//! land after a gap, for instance when the connection died with earlier
//! publishes unsent). On any failure the replicator forgets its in-flight
//! window, asks the stream for its last message, and resumes after it, so a
//! crash or a server restart re-sends at most the unacknowledged window.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::HeaderMap;
use async_nats::jetstream::Context;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::Stream;
use bytes::Bytes;
use events::layers::journal::{ReadError, Reader, Record};
use events::{Codec, Event};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::headers::{self, Coordinates};
use crate::sink::ReplicatorSink;
use crate::{NatsError, StreamSpec};

/// Records read from the journal per `read_since` call.
const CHUNK: usize = 1024;
/// The longest pause between two attempts to reach the server.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

type StreamIdFn = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Configures and starts a [`Replicator`]. Created by [`Replicator::builder`].
pub struct ReplicatorBuilder {
    dir: PathBuf,
    js: Context,
    spec: StreamSpec,
    window: usize,
    poll_interval: Duration,
    ack_timeout: Duration,
    start_after: u64,
    stream_ids: Option<StreamIdFn>,
}

impl std::fmt::Debug for ReplicatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatorBuilder")
            .field("dir", &self.dir)
            .field("spec", &self.spec)
            .field("window", &self.window)
            .field("poll_interval", &self.poll_interval)
            .field("ack_timeout", &self.ack_timeout)
            .field("start_after", &self.start_after)
            .field("stream_ids", &self.stream_ids.is_some())
            .finish_non_exhaustive()
    }
}

impl ReplicatorBuilder {
    /// Publishes in flight before the oldest acknowledgement is awaited.
    /// Larger windows hide more round-trip time; a crash re-sends at most
    /// this many (and the duplicate window drops them). Default: 256.
    #[must_use]
    pub fn window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    /// How often the replicator looks for new records when nothing wakes it
    /// (see [`Replicator::sink`]). Default: 50 ms.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long one acknowledgement may take before the replicator assumes
    /// the connection is gone and resynchronises from the stream. Default:
    /// 5 s.
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Where to start when the stream holds no message: replicate the
    /// records with a seq above `seq`. Ignored when the stream has messages
    /// (replication resumes after the last one). Default: 0 (everything).
    #[must_use]
    pub fn start_after(mut self, seq: u64) -> Self {
        self.start_after = seq;
        self
    }

    /// Decode each payload as a feed record of `E` with `codec` to put its
    /// stream id in the `Events-Stream` header. Without it the header is
    /// absent (the payload still carries the stream id). Default: off.
    #[must_use]
    pub fn stream_ids<E: Event, C: Codec>(mut self, codec: C) -> Self {
        self.stream_ids = Some(Arc::new(move |payload: &[u8]| {
            let env = events::payload::decode::<E, C>(&codec, 0, 0, payload).ok()?;
            env.stream_str().map(str::to_owned)
        }));
        self
    }

    /// Ensures the stream (creating it when missing), finds where
    /// replication stopped, and spawns the replication task on the current
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// [`NatsError::Journal`] when the journal directory has no readable
    /// segment; [`NatsError::StreamMismatch`] when the stream exists with an
    /// unusable configuration; [`NatsError::EpochMismatch`] when it holds
    /// another journal's events; [`NatsError::BadMessage`] when its last
    /// message was not written by a replicator; [`NatsError::JetStream`]
    /// when the server cannot be reached.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(self) -> Result<Replicator, NatsError> {
        let reader = Reader::open(&self.dir)?;
        let epoch = reader.epoch()?;
        let stream = self.spec.ensure(&self.js).await?;
        let (progress, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            wake: Arc::new(Notify::new()),
            stop: Notify::new(),
            stop_flag: AtomicBool::new(false),
            progress,
            reader,
            counters: Counters::default(),
            last_error: Mutex::new(None),
        });
        let mut task = Task {
            js: self.js,
            stream,
            spec: self.spec,
            epoch,
            window: self.window,
            poll_interval: self.poll_interval,
            ack_timeout: self.ack_timeout,
            start_after: self.start_after,
            stream_ids: self.stream_ids,
            shared: Arc::clone(&shared),
            stopping: false,
        };
        let position = task.resync().await?;
        shared.progress.send_replace(position.seq);
        tracing::info!(stream = task.spec.name(), epoch, after = position.seq, "replication starting");
        let handle = tokio::spawn(task.run(position));
        Ok(Replicator { shared, task: Some(handle) })
    }
}

/// Replicates a journal directory into a JetStream stream until shut down
/// or dropped (dropping aborts the task at once, like a crash: the next
/// start resumes from the stream).
///
/// # Example
///
/// ```no_run
/// use events::{Event, Feed};
/// use events_nats::{Replicator, StreamSpec};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Tick(u64);
/// impl Event for Tick {}
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await?);
/// let feed: Feed<Tick> = Feed::builder("./data/feed").open().await?;
/// let replicator = Replicator::builder(feed.dir(), js, StreamSpec::new("FEED", "feed.events")).start().await?;
/// let seq = feed.append(None, Tick(1)).await?;
/// replicator.wait_for(seq.get()).await?; // now in JetStream
/// println!("{:?}", replicator.stats());
/// replicator.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Replicator {
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

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
    /// Times the replicator dropped its window and resumed from the stream.
    pub resyncs: u64,
    /// Errors met (each also logged through `tracing`).
    pub errors: u64,
    /// Seqs the journal pruned before they could be replicated.
    pub skipped: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

impl Replicator {
    /// A builder replicating the journal in `dir` into the stream `spec`.
    pub fn builder(dir: impl AsRef<Path>, js: Context, spec: StreamSpec) -> ReplicatorBuilder {
        ReplicatorBuilder {
            dir: dir.as_ref().to_path_buf(),
            js,
            spec,
            window: 256,
            poll_interval: Duration::from_millis(50),
            ack_timeout: Duration::from_secs(5),
            start_after: 0,
            stream_ids: None,
        }
    }

    /// The current progress and lag.
    pub fn stats(&self) -> ReplicationStats {
        let s = &self.shared;
        let replicated = *s.progress.borrow();
        let journal_latest = s.reader.last_seq().unwrap_or(replicated);
        let lag_seqs = journal_latest.saturating_sub(replicated);
        let lag = if lag_seqs == 0 { Duration::ZERO } else { self.age_of(replicated) };
        let c = &s.counters;
        ReplicationStats {
            replicated,
            journal_latest,
            lag_seqs,
            lag,
            published: c.published.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            last_error: s.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }

    /// The age of the record after `seq`, if the journal still has it.
    fn age_of(&self, seq: u64) -> Duration {
        let ts =
            self.shared.reader.read_since(seq).ok().and_then(|mut r| r.next()).and_then(Result::ok).map(|r| r.ts());
        Duration::from_nanos(ts.map_or(0, |ts| now_nanos().saturating_sub(ts)))
    }

    /// A sink for a feed's builder ([`events::FeedBuilder::sink`]) that wakes
    /// the replicator after every journaled event, so events reach
    /// JetStream without waiting for the poll interval. It does not publish
    /// itself: the journal stays the one ordered source.
    pub fn sink(&self) -> ReplicatorSink {
        ReplicatorSink::new(Arc::clone(&self.shared.wake))
    }

    /// Waits until JetStream acknowledged every seq up to `seq`.
    ///
    /// # Errors
    ///
    /// [`NatsError::JetStream`] with `op = "replicating"` if the replication
    /// task ended first (after a fatal error, see [`stats`](Self::stats)).
    pub async fn wait_for(&self, seq: u64) -> Result<(), NatsError> {
        let mut rx = self.shared.progress.subscribe();
        match rx.wait_for(|acked| *acked >= seq).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let cause = self.stats().last_error.unwrap_or_else(|| "replication task ended".into());
                Err(NatsError::js("replicating", cause))
            }
        }
    }

    /// Stops reading the journal, waits for the acknowledgements in flight
    /// (up to the ack timeout), and ends the task.
    pub async fn shutdown(mut self) {
        self.shared.stop_flag.store(true, Ordering::Release);
        self.shared.stop.notify_one();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "replication task panicked");
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
struct Shared {
    wake: Arc<Notify>,
    stop: Notify,
    /// Set by `shutdown`; read between publishes, where `stop` is not awaited.
    stop_flag: AtomicBool,
    /// The last acknowledged journal seq.
    progress: watch::Sender<u64>,
    reader: Reader,
    counters: Counters,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn record_error(&self, error: &NatsError) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    acked: AtomicU64,
    duplicates: AtomicU64,
    resyncs: AtomicU64,
    errors: AtomicU64,
    skipped: AtomicU64,
}

/// Where replication stands: the last journal seq in the stream and the
/// stream's last sequence (what the next publish expects).
#[derive(Clone, Copy, Debug)]
struct Position {
    seq: u64,
    stream_last: u64,
}

struct InFlight {
    seq: u64,
    stream_seq: u64,
    ack: PublishAckFuture,
}

struct Task {
    js: Context,
    stream: Stream,
    spec: StreamSpec,
    epoch: u64,
    window: usize,
    poll_interval: Duration,
    ack_timeout: Duration,
    start_after: u64,
    stream_ids: Option<StreamIdFn>,
    shared: Arc<Shared>,
    stopping: bool,
}

/// Why [`Task::pump`] returned.
enum Pumped {
    Stopped,
    Failed(NatsError),
}

impl Task {
    async fn run(mut self, first: Position) {
        let mut next = Some(first);
        let mut backoff = Duration::from_millis(50);
        loop {
            let position = match next.take() {
                Some(p) => p,
                None => match self.resync().await {
                    Ok(p) => {
                        backoff = Duration::from_millis(50);
                        p
                    }
                    Err(e @ (NatsError::EpochMismatch { .. } | NatsError::BadMessage { .. })) => {
                        tracing::error!(error = %e, "replication stopped");
                        self.shared.record_error(&e);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, ?backoff, "cannot reach the stream; retrying");
                        self.shared.record_error(&e);
                        if self.pause(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            match self.pump(position).await {
                Pumped::Stopped => return,
                Pumped::Failed(e) => {
                    tracing::warn!(error = %e, "replication interrupted; resuming from the stream");
                    self.shared.record_error(&e);
                    self.shared.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Sleeps `d` unless asked to stop first; returns whether to stop.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            () = self.shared.stop.notified() => { self.stopping = true; true }
        }
    }

    /// Reads the stream's last message: replication resumes after it.
    async fn resync(&mut self) -> Result<Position, NatsError> {
        let info = self.stream.get_info().await.map_err(|e| NatsError::js("reading stream info", e))?;
        let stream_last = info.state.last_sequence;
        if info.state.messages == 0 {
            return Ok(Position { seq: self.start_after, stream_last });
        }
        let last = self
            .stream
            .get_last_raw_message_by_subject(self.spec.subject())
            .await
            .map_err(|e| NatsError::js("reading the stream's last message", e))?;
        let at = Coordinates::parse(Some(&last.headers), self.spec.name(), last.sequence)?;
        if at.epoch != self.epoch {
            return Err(NatsError::EpochMismatch {
                stream: self.spec.name().to_owned(),
                stream_epoch: at.epoch,
                journal_epoch: self.epoch,
            });
        }
        Ok(Position { seq: at.seq, stream_last })
    }

    /// Publishes from `position` until stopped or until something fails.
    async fn pump(&mut self, position: Position) -> Pumped {
        let mut sent = position.seq;
        let mut stream_seq = position.stream_last;
        let mut window: VecDeque<InFlight> = VecDeque::with_capacity(self.window);
        self.shared.progress.send_replace(position.seq);
        loop {
            self.stopping |= self.shared.stop_flag.load(Ordering::Acquire);
            let records = if self.stopping { Ok(Vec::new()) } else { self.read(&mut sent) };
            let records = match records {
                Ok(r) => r,
                Err(e) => return Pumped::Failed(e),
            };
            if records.is_empty() {
                if let Some(head) = window.pop_front() {
                    if let Err(e) = self.settle(head).await {
                        return Pumped::Failed(e);
                    }
                    continue;
                }
                if self.stopping {
                    return Pumped::Stopped;
                }
                tokio::select! {
                    () = self.shared.wake.notified() => {}
                    () = tokio::time::sleep(self.poll_interval) => {}
                    () = self.shared.stop.notified() => self.stopping = true,
                }
                continue;
            }
            for record in records {
                if window.len() >= self.window {
                    let head = window.pop_front().expect("a full window is not empty");
                    if let Err(e) = self.settle(head).await {
                        return Pumped::Failed(e);
                    }
                }
                let message = self.message(&record, stream_seq);
                let ack = match self.js.send_publish(self.spec.subject().to_owned(), message).await {
                    Ok(ack) => ack,
                    Err(e) => return Pumped::Failed(NatsError::js("publishing", e)),
                };
                self.shared.counters.published.fetch_add(1, Ordering::Relaxed);
                stream_seq += 1;
                sent = record.seq();
                window.push_back(InFlight { seq: record.seq(), stream_seq, ack });
            }
        }
    }

    /// The next records after `sent`; skips (and counts) a pruned range.
    fn read(&self, sent: &mut u64) -> Result<Vec<Record>, NatsError> {
        let records = match self.shared.reader.read_since(*sent) {
            Ok(records) => records,
            Err(ReadError::Expired { earliest }) => {
                let missed = earliest - 1 - *sent;
                tracing::error!(after = *sent, earliest, missed, "journal pruned records before they were replicated");
                self.shared.counters.skipped.fetch_add(missed, Ordering::Relaxed);
                *sent = earliest - 1;
                return Ok(Vec::new());
            }
            Err(ReadError::Ahead { latest }) => {
                // The stream is ahead of this journal (same epoch, fewer
                // records: a journal restored from an old copy). Nothing to
                // send until the journal catches up; say so.
                tracing::warn!(stream_at = *sent, journal_at = latest, "stream is ahead of the journal");
                return Ok(Vec::new());
            }
            Err(ReadError::Journal(e)) => return Err(e.into()),
            Err(e) => return Err(NatsError::js("reading the journal", e.to_string())),
        };
        records.take(CHUNK).map(|r| r.map_err(NatsError::from)).collect()
    }

    fn message(&self, record: &Record, stream_last: u64) -> PublishMessage {
        let mut h = HeaderMap::new();
        h.insert(headers::EPOCH, self.epoch.to_string());
        h.insert(headers::SEQ, record.seq().to_string());
        h.insert(headers::TIMESTAMP, record.ts().to_string());
        if let Some(id) = self.stream_ids.as_ref().and_then(|f| f(record.payload())) {
            h.insert(headers::STREAM_ID, id);
        }
        PublishMessage::build()
            .payload(Bytes::copy_from_slice(record.payload()))
            .headers(h)
            .message_id(headers::msg_id(self.epoch, record.seq()))
            .expected_last_sequence(stream_last)
    }

    /// Awaits one acknowledgement and records the progress.
    async fn settle(&self, head: InFlight) -> Result<(), NatsError> {
        let ack = match tokio::time::timeout(self.ack_timeout, head.ack).await {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) => return Err(NatsError::js("awaiting an acknowledgement", e)),
            Err(_) => return Err(NatsError::js("awaiting an acknowledgement", "timed out")),
        };
        let c = &self.shared.counters;
        c.acked.fetch_add(1, Ordering::Relaxed);
        if ack.duplicate {
            c.duplicates.fetch_add(1, Ordering::Relaxed);
        } else if ack.sequence != head.stream_seq {
            let reason =
                format!("seq {} landed at stream seq {}, expected {}", head.seq, ack.sequence, head.stream_seq);
            return Err(NatsError::BadMessage {
                stream: self.spec.name().to_owned(),
                stream_seq: ack.sequence,
                reason,
            });
        }
        self.shared.progress.send_replace(head.seq);
        Ok(())
    }
}
