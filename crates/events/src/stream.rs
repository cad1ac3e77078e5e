//! [`FeedStream`]: `stream_from(cursor)`, the resumable feed a remote client
//! reads. It subscribes to the live tail *before* reading the journal,
//! replays the journal after the cursor through the mmap reader, switches to
//! live, skips seqs it already delivered, and goes back to the journal
//! whenever the live tail lagged past it or showed a gap.
//!
//! Invariant: the consumer sees every durable event with `seq > cursor` in
//! order, with no gap and no duplicate, however slow it is; when that is
//! impossible (the cursor was pruned, is ahead of the journal, or belongs to
//! another epoch) it sees exactly one explicit [`FeedItem::Reset`] instead.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use events_core::{Codec, Envelope, Event, Seq};
use events_journal::{JournalError, ReadError, Records};
use futures::Stream;
use futures::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::{JoinError, JoinHandle};

use crate::feed::Shared;
use crate::stats::Counters;
use crate::{Error, Result, payload};

/// Events per message of the live tail.
pub(crate) const LIVE_CHUNK: usize = 64;

/// One message of the live tail: consecutive published envelopes.
pub(crate) type LiveChunk<E> = Arc<[Arc<Envelope<E>>]>;

/// Records read from the journal per blocking read.
const REPLAY_CHUNK: usize = 1024;

/// Where a client resumes: the last seq it saw and, optionally, the epoch of
/// the journal that seq came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The last seq the client has seen (`Seq::ZERO`: nothing yet).
    pub seq: Seq,
    /// The epoch the seq belongs to; `None` accepts any epoch.
    pub epoch: Option<u64>,
}

impl Cursor {
    /// A cursor at `seq` within `epoch`.
    pub fn new(seq: Seq, epoch: u64) -> Self {
        Cursor { seq, epoch: Some(epoch) }
    }
}

impl From<Seq> for Cursor {
    fn from(seq: Seq) -> Self {
        Cursor { seq, epoch: None }
    }
}

impl From<u64> for Cursor {
    fn from(seq: u64) -> Self {
        Cursor { seq: Seq::new(seq), epoch: None }
    }
}

/// Why a stream could not resume from its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetReason {
    /// The events after the cursor were removed by retention.
    Expired,
    /// The cursor is ahead of the journal's latest seq: the journal was
    /// recreated or rolled back since the client saw it.
    Ahead,
    /// An operator salvaged a corrupt journal and records
    /// `first_missing..=last_missing` were dropped. Unlike the other reasons,
    /// the stream continues right after the gap, not at the live tail.
    Gap {
        /// The first dropped seq.
        first_missing: Seq,
        /// The last dropped seq.
        last_missing: Seq,
    },
    /// The cursor belongs to another journal epoch.
    EpochMismatch {
        /// The epoch the client presented.
        cursor_epoch: u64,
        /// The journal's epoch.
        journal_epoch: u64,
    },
}

/// One item of a [`FeedStream`].
#[derive(Clone, Debug)]
pub enum FeedItem<E> {
    /// The next durable event.
    Event(Arc<Envelope<E>>),
    /// The cursor cannot be served; the stream continues live after
    /// `latest` (after the gap, for [`ResetReason::Gap`]). A client that
    /// needs completeness re-reads from `earliest`.
    Reset {
        /// Why.
        reason: ResetReason,
        /// The earliest retained seq.
        earliest: Seq,
        /// The latest journaled seq; the stream continues after it.
        latest: Seq,
    },
}

impl<E> FeedItem<E> {
    /// The envelope, for an `Event` item.
    pub fn event(&self) -> Option<&Arc<Envelope<E>>> {
        match self {
            FeedItem::Event(env) => Some(env),
            FeedItem::Reset { .. } => None,
        }
    }
}

/// The stream returned by [`Feed::stream_from`](crate::Feed::stream_from).
///
/// Yields `Ok(FeedItem::Event)` for each durable event after the cursor, in
/// seq order; `Ok(FeedItem::Reset)` once if the cursor cannot be served;
/// `Err` (then ends) if the journal is corrupt or a payload cannot be
/// decoded. It ends after the feed is closed and everything journaled was
/// delivered. Dropping it frees everything it holds (a journal read ahead
/// that is in flight finishes its one chunk on its blocking thread, then
/// frees it).
pub struct FeedStream<E> {
    /// Envelopes handed over by the state machine in one batch (a journal
    /// chunk or a live chunk), delivered one by one without running it.
    ready: std::vec::IntoIter<Arc<Envelope<E>>>,
    inner: BoxStream<'static, Result<Out<E>>>,
}

/// What one step of the state machine produces.
enum Out<E> {
    /// Consecutive events, at least one; the state's cursor is already past them.
    Batch(Vec<Arc<Envelope<E>>>),
    /// A reset.
    Item(FeedItem<E>),
}

impl<E> std::fmt::Debug for FeedStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedStream").finish_non_exhaustive()
    }
}

impl<E: Event> FeedStream<E> {
    pub(crate) fn new<C: Codec>(
        cursor: Cursor,
        rx: Option<broadcast::Receiver<LiveChunk<E>>>,
        shared: Arc<Shared>,
        codec: C,
        follow: Option<Duration>,
    ) -> Self {
        let state = State {
            follow,
            cursor: cursor.seq.get(),
            cursor_epoch: cursor.epoch,
            started: false,
            done: false,
            live: false,
            rx,
            shared,
            codec,
            pending_gap: None,
            prefetch: None,
        };
        let inner = futures::stream::unfold(state, |mut s| async move { s.next().await.map(|item| (item, s)) });
        FeedStream { ready: Vec::new().into_iter(), inner: Box::pin(inner) }
    }
}

impl<E> Stream for FeedStream<E> {
    type Item = Result<FeedItem<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(env) = this.ready.next() {
            return Poll::Ready(Some(Ok(FeedItem::Event(env))));
        }
        Poll::Ready(match std::task::ready!(this.inner.as_mut().poll_next(cx)) {
            Some(Ok(Out::Batch(batch))) => {
                this.ready = batch.into_iter();
                this.ready.next().map(|env| Ok(FeedItem::Event(env)))
            }
            Some(Ok(Out::Item(item))) => Some(Ok(item)),
            Some(Err(e)) => Some(Err(e)),
            None => None,
        })
    }
}

enum Chunk<E> {
    Records(Vec<Arc<Envelope<E>>>),
    /// Records `expected..found` are missing (salvaged journal); `before`
    /// holds the records read before the gap.
    Gap {
        before: Vec<Arc<Envelope<E>>>,
        expected: u64,
        found: u64,
    },
    Expired,
    Ahead,
}

struct State<E, C> {
    /// The last seq delivered.
    cursor: u64,
    cursor_epoch: Option<u64>,
    started: bool,
    done: bool,
    /// Reading the live tail (else replaying the journal).
    live: bool,
    /// For a [`FeedReader`](crate::FeedReader): how often to look for
    /// records appended by another process once caught up.
    follow: Option<Duration>,
    /// `None` once the feed's writer stopped (or for a reader).
    rx: Option<broadcast::Receiver<LiveChunk<E>>>,
    shared: Arc<Shared>,
    codec: C,
    /// A salvage gap found by the last read, reported once its preceding
    /// records are delivered.
    pending_gap: Option<(u64, u64)>,
    /// The next replay chunk, read and decoded on a blocking thread while the
    /// consumer takes the current one; it starts after the seq it holds. It
    /// owns the journal iterator, so a long catch-up reads each frame once.
    prefetch: Option<(u64, JoinHandle<Result<ReadOut<E>>>)>,
}

/// What one blocking read returns: the chunk, and the iterator when it may hold more.
type ReadOut<E> = (Chunk<E>, Option<Records>);

impl<E: Event, C: Codec> State<E, C> {
    async fn next(&mut self) -> Option<Result<Out<E>>> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            if let Some(journal_epoch) = self.cursor_epoch.filter(|e| *e != self.shared.epoch) {
                return Some(Ok(Out::Item(self.reset(ResetReason::EpochMismatch {
                    cursor_epoch: journal_epoch,
                    journal_epoch: self.shared.epoch,
                }))));
            }
        }
        loop {
            if let Some((expected, found)) = self.pending_gap.take() {
                let first_missing = Seq::new(expected);
                let last_missing = Seq::new(found - 1);
                let item = self.reset(ResetReason::Gap { first_missing, last_missing });
                self.cursor = found - 1;
                self.live = false;
                return Some(Ok(Out::Item(item)));
            }
            if self.live {
                let Some(rx) = self.rx.as_mut() else {
                    self.live = false;
                    continue;
                };
                match rx.recv().await {
                    Ok(chunk) => {
                        // Skip what the journal already delivered.
                        let new = chunk.partition_point(|env| env.seq.get() <= self.cursor);
                        match chunk.get(new) {
                            None => {}
                            Some(env) if env.seq.get() == self.cursor + 1 => {
                                return Some(Ok(self.batch(chunk[new..].to_vec())));
                            }
                            // A gap: the journal has the missing events.
                            Some(_) => self.live = false,
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(
                            cursor = self.cursor,
                            missed,
                            "stream lagged behind the live tail; replaying the journal"
                        );
                        Counters::bump(&self.shared.counters.lagged_fallbacks);
                        self.live = false;
                    }
                    Err(RecvError::Closed) => {
                        // The writer stopped: deliver what the journal holds, then end.
                        self.rx = None;
                        self.live = false;
                    }
                }
                continue;
            }
            match self.read_chunk().await {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(Chunk::Records(records)) if !records.is_empty() => return Some(Ok(self.batch(records))),
                Ok(Chunk::Records(_)) => {
                    if self.rx.is_none() {
                        let Some(interval) = self.follow else {
                            self.done = true;
                            return None;
                        };
                        // Another process writes: polling is how a reader
                        // follows files it does not own.
                        tokio::time::sleep(interval).await;
                        continue;
                    }
                    self.live = true;
                }
                Ok(Chunk::Gap { before, expected, found }) => {
                    // Deliver what precedes the gap, then the reset, then go on after it.
                    self.pending_gap = Some((expected, found));
                    if !before.is_empty() {
                        return Some(Ok(self.batch(before)));
                    }
                }
                Ok(Chunk::Expired) => return Some(Ok(Out::Item(self.reset(ResetReason::Expired)))),
                Ok(Chunk::Ahead) => return Some(Ok(Out::Item(self.reset(ResetReason::Ahead)))),
            }
        }
    }

    /// Hands a non-empty run of consecutive events to the consumer at once;
    /// the cursor moves past them.
    fn batch(&mut self, events: Vec<Arc<Envelope<E>>>) -> Out<E> {
        if let Some(last) = events.last() {
            self.cursor = last.seq.get();
        }
        Out::Batch(events)
    }

    /// Builds a reset and moves the cursor to the latest seq: the stream
    /// continues live from there.
    fn reset(&mut self, reason: ResetReason) -> FeedItem<E> {
        if self.follow.is_some() {
            self.shared.refresh_from_reader();
        }
        let latest = self.shared.latest.load(Ordering::Acquire);
        let earliest = self.shared.earliest.load(Ordering::Acquire);
        Counters::bump(&self.shared.counters.resets);
        tracing::info!(?reason, cursor = self.cursor, earliest, latest, "stream reset");
        self.cursor = latest;
        self.live = self.rx.is_some();
        FeedItem::Reset { reason, earliest: Seq::new(earliest), latest: Seq::new(latest) }
    }

    /// Reads up to [`REPLAY_CHUNK`] records after the cursor, off the async
    /// worker threads. After a full chunk it starts reading the next one in
    /// the background, so decoding overlaps with the consumer's work.
    async fn read_chunk(&mut self) -> Result<Chunk<E>> {
        let cursor = self.cursor;
        let read = match self.prefetch.take() {
            Some((after, read)) if after == cursor => read,
            // Any other position (the first read, after a live gap or a lag)
            // starts a new iterator; a read ahead from elsewhere is left to
            // finish and be dropped.
            _ => self.spawn_read(cursor, None),
        };
        let (chunk, records) = joined(read.await)?;
        // Only a full chunk hands its iterator back: read on from there.
        if let (Chunk::Records(out), Some(records)) = (&chunk, records)
            && let Some(last) = out.last()
        {
            let after = last.seq.get();
            self.prefetch = Some((after, self.spawn_read(after, Some(records))));
        }
        Ok(chunk)
    }

    fn spawn_read(&self, cursor: u64, records: Option<Records>) -> JoinHandle<Result<ReadOut<E>>> {
        let shared = Arc::clone(&self.shared);
        let codec = self.codec.clone();
        // A writer's feed serves only what the writer acknowledged: the files
        // may already hold a batch whose fsync has not returned (and may
        // fail, in which case the batch is cut back and its seqs reused).
        // A reader of another process's journal cannot know that boundary.
        let limit = self.follow.is_none().then(|| self.shared.latest().get());
        tokio::task::spawn_blocking(move || read_chunk(&shared, &codec, cursor, records, limit))
    }
}

/// The result of a blocking read, with a failed join (a panic) as an error.
fn joined<T>(joined: std::result::Result<Result<T>, JoinError>) -> Result<T> {
    joined.map_err(Error::Task)?
}

/// Reads and decodes up to [`REPLAY_CHUNK`] records after `cursor`, none
/// past `limit`; returns the iterator too when it may hold more.
fn read_chunk<E: Event, C: Codec>(
    shared: &Shared,
    codec: &C,
    cursor: u64,
    records: Option<Records>,
    limit: Option<u64>,
) -> Result<ReadOut<E>> {
    if limit.is_some_and(|limit| cursor >= limit) {
        // Nothing acknowledged after the cursor: a cursor past the latest
        // acknowledged seq is `Ahead` only if the files agree.
        return match shared.reader.last_seq() {
            Ok(last) if cursor > last => Ok((Chunk::Ahead, None)),
            Ok(_) => Ok((Chunk::Records(Vec::new()), None)),
            Err(e) => Err(Error::Journal(e)),
        };
    }
    let mut records = match records {
        Some(records) => records,
        None => match shared.reader.read_since(cursor) {
            Ok(records) => records,
            Err(ReadError::Expired { .. }) => return Ok((Chunk::Expired, None)),
            Err(ReadError::Ahead { .. }) => return Ok((Chunk::Ahead, None)),
            Err(ReadError::Journal(e)) => return Err(Error::Journal(e)),
            Err(other) => return Err(Error::Read(other)),
        },
    };
    let mut out = Vec::with_capacity(REPLAY_CHUNK);
    for record in records.by_ref().take(REPLAY_CHUNK) {
        let record = match record {
            Ok(record) => record,
            Err(JournalError::Gap { expected, found, .. }) => {
                return Ok((Chunk::Gap { before: out, expected, found }, None));
            }
            Err(e) => return Err(e.into()),
        };
        if limit.is_some_and(|limit| record.seq() > limit) {
            // Written but not yet acknowledged: stop here and re-read later.
            return Ok((Chunk::Records(out), None));
        }
        let env = payload::decode(codec, record.seq(), record.ts(), record.payload())?;
        out.push(Arc::new(env));
    }
    // A short chunk means the iterator reached the end of what it mapped:
    // the next read must look at the files again.
    let more = out.len() == REPLAY_CHUNK;
    Ok((Chunk::Records(out), more.then_some(records)))
}
