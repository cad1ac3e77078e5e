//! [`FeedStream`]: `stream_from(cursor)`, the resumable feed a client reads,
//! and the one state machine behind every reader of the façade (`read.rs`: where
//! its next chunk comes from, and what each read leads to). Its phases
//! are explicit ([`Phase`]: start, replay, live, done) and so is where new
//! events come from once it has caught up ([`Tail`]): the writer's live
//! broadcast in the writer's process, or polling the files for a follower of
//! a journal another process writes. In the writer's process it subscribes
//! to the live tail *before* reading the journal, replays the journal after
//! the cursor through the mmap reader, switches to live, skips seqs it
//! already delivered, and goes back to the journal whenever the live tail
//! lagged past it or showed a gap.
//!
//! Invariant: the consumer sees every acknowledged durable event with
//! `seq > cursor` in order, with no gap and no duplicate, however slow it
//! is; when that is impossible (the cursor was pruned, is ahead of the
//! journal, or belongs to another epoch, including a directory recreated
//! under a follower) it sees one explicit [`FeedItem::Reset`] and goes on
//! where the reset says, never silently skipping or serving another
//! journal's records under the old cursor. A filtered stream
//! (`filter.rs`) wraps this one; for a stream-id filter the state machine
//! also jumps over sealed segments without the stream (`skip.rs`) and
//! checks an expired cursor against the pruned-segments summary
//! (`policy.rs`), both announced as checkpoints.

pub(crate) mod filter;
mod policy;
mod read;
mod skip;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use events_core::{Codec, Envelope, Event, Seq};
use events_journal::JournalError;
use futures::Stream;
use futures::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use self::read::Next;
use crate::position::{Cursor, FeedItem, OnExpired, OnUndecodable, ResetReason};
use crate::recent::Recent;
use crate::replay::{Chunk, ReadOut};
use crate::shared::{LiveChunk, Shared};
use crate::stats::Counters;
use crate::{Error, Result};

/// The stream returned by [`Feed::stream_from`](crate::Feed::stream_from).
///
/// Yields `Ok(FeedItem::Event)` for each durable event after the cursor, in
/// seq order; `Ok(FeedItem::Reset)` once if the cursor cannot be served;
/// `Err` (then ends) if the journal is corrupt or a payload cannot be
/// decoded. It ends after the feed is closed and everything journaled was
/// delivered; when the writer had failed (a journal I/O error, its
/// directory replaced), its last item is then
/// [`Error::Unhealthy`](crate::Error::Unhealthy) naming the failure, so a
/// consumer can tell that end from a clean close. Dropping it frees
/// everything it holds (a journal read ahead that is in flight finishes its
/// one chunk on its blocking thread, then frees it).
pub struct FeedStream<E> {
    /// Envelopes handed over by the state machine in one batch (a journal
    /// chunk or a live chunk), delivered one by one without running it.
    ready: std::vec::IntoIter<Arc<Envelope<E>>>,
    inner: BoxStream<'static, Result<Out<E>>>,
    /// What the state machine publishes after each step.
    published: Arc<Published>,
    shared: Arc<Shared>,
    follower: bool,
}

/// What the state machine publishes after each step, for the stream's
/// handle and a [`Consumer`](crate::Consumer) committing what it yields
/// (one allocation: every idle stream carries it).
#[derive(Debug)]
pub(crate) struct Published {
    /// Its cursor (the last seq of the last batch it handed over, or where
    /// it goes on after a reset), for [`FeedStream::lag`].
    pub(crate) position: AtomicU64,
    /// The epoch of the journal it reads (0 before its first step).
    pub(crate) epoch: AtomicU64,
    /// Where its latest reset put the cursor, until a consumer takes it
    /// (`u64::MAX`: none).
    pub(crate) reset_to: AtomicU64,
}

impl Published {
    /// Where the latest reset not taken yet put the cursor, and the epoch
    /// it reads since.
    pub(crate) fn take_reset(&self) -> Option<(u64, u64)> {
        let to = self.reset_to.swap(u64::MAX, Ordering::AcqRel);
        (to != u64::MAX).then(|| (to, self.epoch.load(Ordering::Acquire)))
    }
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
        tail: Tail<E>,
        shared: Arc<Shared>,
        codec: C,
        on_expired: OnExpired,
        on_undecodable: OnUndecodable,
        stream_key: Option<Vec<u8>>,
    ) -> Self {
        let state = State {
            stream_key,
            skip_checked_until: 0,
            cursor: cursor.seq.get(),
            cursor_epoch: cursor.epoch,
            everything: cursor.seq == Seq::ZERO && cursor.epoch.is_none(),
            on_expired,
            on_undecodable,
            pending_undecodable: None,
            phase: Phase::Start,
            tail,
            shared,
            codec,
            pending_gap: None,
            pending_error: None,
            prefetch: None,
        };
        let published = Arc::new(Published {
            position: AtomicU64::new(cursor.seq.get()),
            epoch: AtomicU64::new(0),
            reset_to: AtomicU64::new(u64::MAX),
        });
        let follower = matches!(state.tail, Tail::Poll(_));
        let shared = Arc::clone(&state.shared);
        // The cell travels with the state from step to step: no count of
        // references taken per step.
        let inner = futures::stream::unfold((state, Arc::clone(&published)), |(mut s, published)| async move {
            let item = s.next().await;
            published.position.store(s.cursor, Ordering::Release);
            published.epoch.store(s.cursor_epoch.unwrap_or(0), Ordering::Release);
            if let Some(Ok(Out::Item(FeedItem::Reset { .. }))) = &item {
                published.reset_to.store(s.cursor, Ordering::Release);
            }
            item.map(|item| (item, (s, published)))
        });
        // Fused: a stream polled again after it ended (a `select!` loop
        // that re-polls a closed feed's stream) answers `None` again;
        // `unfold` panics.
        let inner = Box::pin(futures::StreamExt::fuse(inner));
        FeedStream { ready: Vec::new().into_iter(), inner, published, shared, follower }
    }

    /// The epoch of the journal the last yielded item came from (`None`
    /// before the first item): what a cursor built from that item's seq
    /// must name. It changes only with an `EpochMismatch` reset.
    pub fn epoch(&self) -> Option<u64> {
        Some(self.published.epoch.load(Ordering::Acquire)).filter(|&e| e != 0)
    }

    /// What the state machine publishes ([`epoch`](Self::epoch) reads it),
    /// for a [`Consumer`](crate::Consumer) that commits the seqs this
    /// stream yields.
    pub(crate) fn published(&self) -> Arc<Published> {
        Arc::clone(&self.published)
    }

    /// The cursor after the last item yielded: the last event's seq, or
    /// where the stream goes on after a reset.
    pub(crate) fn handed_out(&self) -> u64 {
        self.published.position.load(Ordering::Acquire).saturating_sub(self.ready.len() as u64)
    }

    /// How many acknowledged events this stream has not yielded yet: the
    /// latest acknowledged seq minus the last seq it yielded (or its cursor,
    /// before the first); a consumer that falls behind sees it grow. On a
    /// feed's own stream it reads two atomics: cheap enough to call per
    /// event. A follower's reads the writer's watermark file for it (and
    /// lists the directory when the lock file says no writer): call it per
    /// batch or on a timer, not per event.
    pub fn lag(&self) -> u64 {
        if self.follower {
            self.shared.refresh_latest_from_reader();
        }
        self.shared.latest().get().saturating_sub(self.handed_out())
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

/// Where new events come from once the stream has caught up with the journal.
pub(crate) enum Tail<E> {
    /// In the writer's process: its live broadcast (`None` once the writer
    /// stopped, or if it had stopped before the stream was created), and
    /// the newest envelopes it published.
    Live(Option<broadcast::Receiver<LiveChunk<E>>>, Arc<Recent<E>>),
    /// Another process writes (or none does): look at the files this often.
    Poll(Duration),
}

/// What the state machine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing read yet: the cursor's epoch is checked first.
    Start,
    /// Reading the journal after the cursor.
    Replay,
    /// Reading the live tail (only with [`Tail::Live`]).
    Live,
    /// Ended: the writer stopped and everything was delivered, or an error.
    Done,
}

struct State<E, C> {
    /// The stream id of a stream filtered by it: an expired cursor is then
    /// served without a reset when the pruned records held none of it
    /// (`policy.rs`).
    stream_key: Option<Vec<u8>>,
    /// With a stream key: no look at the sidecars (`skip.rs`) before the
    /// cursor reaches this seq.
    skip_checked_until: u64,
    /// The last seq delivered.
    cursor: u64,
    cursor_epoch: Option<u64>,
    /// Asked for "everything retained" (a bare `Seq::ZERO`): never expired.
    everything: bool,
    on_expired: OnExpired,
    on_undecodable: OnUndecodable,
    /// A record that did not decode, reported once the records read before
    /// it are delivered (boxed, as `pending_error`).
    pending_undecodable: Option<Box<(u64, u32, events_core::CodecError)>>,
    phase: Phase,
    tail: Tail<E>,
    shared: Arc<Shared>,
    codec: C,
    /// A salvage gap found by the last read, reported once its preceding
    /// records are delivered (boxed, as `pending_error`).
    pending_gap: Option<Box<(u64, u64)>>,
    /// A journal failure found by the last read (damage in a sealed
    /// segment, an I/O error), reported, ending the stream, once the
    /// records read before it are delivered (boxed: every idle stream
    /// carries the field).
    pending_error: Option<Box<JournalError>>,
    /// The next replay chunk, read and decoded on a blocking thread while the
    /// consumer takes the current one; it starts after the seq it holds. It
    /// owns the journal iterator, so a long catch-up reads each frame once.
    prefetch: Option<(u64, JoinHandle<Result<ReadOut<E>>>)>,
}

impl<E: Event, C: Codec> State<E, C> {
    async fn next(&mut self) -> Option<Result<Out<E>>> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Start => {
                    self.phase = Phase::Replay;
                    let journal_epoch = self.current_epoch();
                    match self.cursor_epoch {
                        Some(cursor_epoch) if cursor_epoch != journal_epoch => {
                            let reason = ResetReason::EpochMismatch { cursor_epoch, journal_epoch };
                            return Some(Ok(Out::Item(self.reset(reason))));
                        }
                        // From here on the cursor belongs to this journal.
                        _ => self.cursor_epoch = Some(journal_epoch),
                    }
                }
                Phase::Live | Phase::Replay => {}
            }
            if let Some((seq, version, error)) = self.pending_undecodable.take().map(|pending| *pending) {
                return Some(self.undecodable(seq, version, error));
            }
            if let Some((expected, found)) = self.pending_gap.take().map(|pending| *pending) {
                let first_missing = Seq::new(expected);
                let last_missing = Seq::new(found - 1);
                let item = self.reset(ResetReason::Gap { first_missing, last_missing });
                return Some(Ok(Out::Item(item)));
            }
            if let Some(error) = self.pending_error.take() {
                self.phase = Phase::Done;
                return Some(Err(Error::Journal(*error)));
            }
            if self.phase == Phase::Live {
                if let Some(out) = self.recv_live().await {
                    return Some(Ok(out));
                }
                continue;
            }
            if let Some(seq) = self.skip_other_streams().await {
                return Some(Ok(Out::Item(FeedItem::Checkpoint { seq: Seq::new(seq) })));
            }
            let read = self.read_chunk().await;
            // Decided without an await, so that nothing of the read is held
            // while the stream waits; the timer (112 bytes) is boxed, as only
            // a follower waits on it: an idle stream's state stays small.
            match self.after_read(read) {
                Next::Yield(out) => return out,
                Next::Wait(interval) => Box::pin(tokio::time::sleep(interval)).await,
                Next::Again => {}
            }
        }
    }

    /// One message of the live tail: a batch of new events, or `None` when
    /// the stream must read the journal (or wait) instead.
    async fn recv_live(&mut self) -> Option<Out<E>> {
        let Tail::Live(Some(rx), _) = &mut self.tail else {
            self.phase = Phase::Replay;
            return None;
        };
        match rx.recv().await {
            Ok(chunk) => {
                // Skip what the journal already delivered.
                let new = chunk.partition_point(|env| env.seq.get() <= self.cursor);
                match chunk.get(new) {
                    // An empty chunk: the journal's readers read further
                    // than when this stream last looked (`upkeep.rs`).
                    None if chunk.is_empty() => {
                        self.phase = Phase::Replay;
                        None
                    }
                    None => None,
                    Some(env) if env.seq.get() == self.cursor + 1 => Some(self.batch(chunk[new..].to_vec())),
                    // A gap: the journal has the missing events.
                    Some(_) => {
                        self.phase = Phase::Replay;
                        None
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(
                    cursor = self.cursor,
                    missed,
                    "stream lagged behind the live tail; replaying the journal"
                );
                Counters::bump(&self.shared.counters.lagged_fallbacks);
                self.phase = Phase::Replay;
                None
            }
            Err(RecvError::Closed) => {
                // The writer stopped: deliver what the journal holds, then end.
                if let Tail::Live(rx, _) = &mut self.tail {
                    *rx = None;
                }
                self.phase = Phase::Replay;
                None
            }
        }
    }

    /// The journal's epoch as this stream knows it; a follower looks at the
    /// files again.
    fn current_epoch(&self) -> u64 {
        if matches!(self.tail, Tail::Poll(_)) {
            self.shared.epoch_on_disk();
        }
        self.shared.epoch()
    }

    /// For a follower whose read failed, found nothing where its cursor
    /// was, or hit an error: the poll interval if the directory holds no
    /// journal right now (deleted, or recreated without a segment yet), which
    /// is a moment to wait through, not a reset or an error.
    fn between_journals(&self, read: &Result<Chunk<E>>) -> Option<Duration> {
        let Tail::Poll(interval) = self.tail else { return None };
        if !matches!(read, Err(_) | Ok(Chunk::Ahead | Chunk::Expired(_))) {
            return None;
        }
        let missing =
            !self.shared.dir.is_dir() || matches!(self.shared.reader.epoch(), Err(JournalError::NoSegments { .. }));
        missing.then_some(interval)
    }

    /// For a follower whose cursor belongs to the journal it started on:
    /// the epoch reset if the directory now holds another journal. `look`:
    /// read the files for it now; else the epoch the read that just came
    /// back empty looked at, on the blocking pool (`spawn_read`), so an
    /// idle follower's stream does no file I/O on the async workers.
    fn epoch_changed(&mut self, look: bool) -> Option<FeedItem<E>> {
        if !matches!(self.tail, Tail::Poll(_)) {
            return None;
        }
        let cursor_epoch = self.cursor_epoch.unwrap_or_else(|| self.shared.epoch());
        let journal_epoch = if look { self.shared.epoch_on_disk()? } else { self.shared.epoch() };
        (journal_epoch != cursor_epoch).then(|| self.reset(ResetReason::EpochMismatch { cursor_epoch, journal_epoch }))
    }

    /// Hands a non-empty run of consecutive events to the consumer at once;
    /// the cursor moves past them.
    fn batch(&mut self, events: Vec<Arc<Envelope<E>>>) -> Out<E> {
        if let Some(last) = events.last() {
            self.cursor = last.seq.get();
        }
        Out::Batch(events)
    }

    /// Builds a reset and moves the cursor where the stream goes on: right
    /// after the gap for [`ResetReason::Gap`]; before the earliest retained
    /// event for every other reason, so the consumer loses only what is
    /// really gone and rebuilds its view from what follows. An epoch reset
    /// moves the cursor into the journal it names; every other reset is of
    /// the journal the cursor reads, and keeps its epoch: another handle
    /// of a follower may have adopted a recreated journal's meanwhile, and
    /// the next read must find that out (an epoch reset), not read the new
    /// journal from the old one's seq.
    fn reset(&mut self, reason: ResetReason) -> FeedItem<E> {
        if matches!(self.tail, Tail::Poll(_)) {
            self.shared.refresh_from_reader();
        }
        let latest = self.shared.latest();
        let earliest = self.shared.earliest();
        Counters::bump(&self.shared.counters.resets);
        tracing::info!(?reason, cursor = self.cursor, earliest = earliest.get(), latest = latest.get(), "stream reset");
        self.cursor = match reason {
            ResetReason::Gap { last_missing, .. } => last_missing.get(),
            _ => earliest.get().saturating_sub(1),
        };
        self.cursor_epoch = match reason {
            ResetReason::EpochMismatch { journal_epoch, .. } => Some(journal_epoch),
            _ => self.cursor_epoch.or_else(|| Some(self.shared.epoch())),
        };
        // A position in the journal from here on, not "everything": what
        // retention removes after it is reported like any cursor's.
        self.everything = false;
        self.phase = Phase::Replay;
        FeedItem::Reset { reason, earliest, latest }
    }
}
