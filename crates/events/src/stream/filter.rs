//! [`FilteredStream`]: `stream_from(cursor)` narrowed by a [`Filter`] (a
//! stream id or a predicate), which yields the matching events plus
//! [`FeedItem::Checkpoint`] items carrying the seq scanned so far, so a
//! filtered consumer's cursor moves past other streams' events (KurrentDB's
//! `checkpointReached`). It wraps the one state machine of `mod.rs`, which
//! sees every event it reads; for a stream-id filter it also hands the state
//! machine the id, so that its catch-up jumps over sealed segments whose
//! sidecar proves they hold nothing of the stream (`skip.rs`) and an expired
//! cursor is checked against the journal's pruned-segments summary
//! (`policy.rs`) before it is reset.
//!
//! Invariant: a checkpoint names a seq that was really scanned (the seq of
//! an event the state machine yielded, the end of segments whose index
//! proves they hold none of the stream, or the end of a pruned range that
//! provably held none of it), every matching event at or below it
//! was yielded before it, and it never goes backward between resets; so
//! resuming from any checkpoint yields exactly the matching events after
//! it, no duplicate and no gap.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use events_core::{Envelope, Event, Seq};
use futures::{Stream, StreamExt};
use tokio::time::Sleep;

use super::FeedStream;
use crate::Result;
use crate::position::FeedItem;

/// Default of [`FilteredStream::checkpoint_every`].
pub(crate) const DEFAULT_CHECKPOINT_EVERY: u64 = 1024;
/// Default of [`FilteredStream::checkpoint_after`].
pub(crate) const DEFAULT_CHECKPOINT_AFTER: Duration = Duration::from_secs(1);
/// Skipped events handled in one poll before giving the worker back: a
/// replay chunk of other streams' events never returns `Pending`.
const SKIPS_PER_POLL: u32 = 256;

/// What a [`FilteredStream`] keeps.
#[non_exhaustive]
pub enum Filter<E> {
    /// The events whose stream id is this one. Its stream's clients are
    /// reset by retention only when events of this stream were pruned
    /// (see [`FeedReader::stream_filtered`](crate::FeedReader::stream_filtered)).
    Stream(String),
    /// The events for which the function returns `true`. Retention resets
    /// its clients as it resets any stream: a predicate cannot be checked
    /// against what was pruned.
    Predicate(Arc<FilterFn<E>>),
}

/// The function of a [`Filter::Predicate`]: `true` keeps the event.
pub type FilterFn<E> = dyn Fn(&Envelope<E>) -> bool + Send + Sync;

impl<E> Filter<E> {
    /// The events of stream `id`.
    pub fn stream(id: impl Into<String>) -> Self {
        Filter::Stream(id.into())
    }

    /// The events for which `keep` returns `true`.
    pub fn predicate(keep: impl Fn(&Envelope<E>) -> bool + Send + Sync + 'static) -> Self {
        Filter::Predicate(Arc::new(keep))
    }

    /// Whether `env` passes the filter.
    pub fn matches(&self, env: &Envelope<E>) -> bool {
        match self {
            Filter::Stream(id) => env.stream_str() == Some(id.as_str()),
            Filter::Predicate(keep) => keep(env),
        }
    }
}

impl<E> Clone for Filter<E> {
    fn clone(&self) -> Self {
        match self {
            Filter::Stream(id) => Filter::Stream(id.clone()),
            Filter::Predicate(keep) => Filter::Predicate(Arc::clone(keep)),
        }
    }
}

impl<E> std::fmt::Debug for Filter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::Stream(id) => f.debug_tuple("Stream").field(id).finish(),
            Filter::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// The stream returned by
/// [`FeedReader::stream_filtered`](crate::FeedReader::stream_filtered): the
/// items of `stream_from(cursor)` whose event matches the filter, every
/// `Reset`, `Undecodable` and error as they come (but for the exceptions
/// `stream_filtered` lists for [`Filter::Stream`]), and
/// [`FeedItem::Checkpoint`] items.
///
/// A checkpoint comes when events were skipped since the last item (an
/// event, a checkpoint, a reset) and
/// - [`checkpoint_every`](Self::checkpoint_every) events were skipped in a
///   row (default 1024), or
/// - the underlying stream has nothing ready (caught up with the journal
///   or the live tail, or waiting for a read) and
///   [`checkpoint_after`](Self::checkpoint_after) passed since the first
///   of them was skipped (default 1 s; zero: at once), or
/// - the underlying stream ended (the feed was closed), or ends with an
///   error (the writer failed, a record does not decode under
///   `OnUndecodable::Fail`, an expired cursor under `OnExpired::Fail`):
///   the checkpoint comes first, then the error;
///
/// and for a stream-id filter: after a jump over sealed segments whose
/// sidecar index proves they hold nothing of the stream (a checkpoint at
/// the last seq jumped over), and, when its cursor was pruned and the
/// journal's pruned-segments summary shows that none of the pruned events
/// belonged to the stream, instead of a `Reset`: a checkpoint at the seq
/// before the earliest retained one.
pub struct FilteredStream<E> {
    inner: FeedStream<E>,
    filter: Filter<E>,
    every: u64,
    after: Duration,
    /// The seq of the last item the state machine yielded (or the cursor).
    scanned: u64,
    /// Events skipped since the last item this stream yielded.
    skipped: u64,
    /// Armed at the first skipped event after an item: when it fires and the
    /// inner stream has nothing ready, a checkpoint is due.
    timer: Option<Pin<Box<Sleep>>>,
    /// The inner stream's error, held back while the checkpoint of what
    /// was scanned before it goes out (boxed: rarely there).
    held: Option<Box<crate::Error>>,
    ended: bool,
}

impl<E> std::fmt::Debug for FilteredStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilteredStream")
            .field("filter", &self.filter)
            .field("scanned", &self.scanned)
            .finish_non_exhaustive()
    }
}

impl<E: Event> FilteredStream<E> {
    pub(crate) fn new(inner: FeedStream<E>, filter: Filter<E>, cursor: Seq) -> Self {
        FilteredStream {
            inner,
            filter,
            every: DEFAULT_CHECKPOINT_EVERY,
            after: DEFAULT_CHECKPOINT_AFTER,
            scanned: cursor.get(),
            skipped: 0,
            timer: None,
            held: None,
            ended: false,
        }
    }

    /// A checkpoint after at most this many skipped events in a row (at
    /// least 1). Default: 1024.
    #[must_use]
    pub fn checkpoint_every(mut self, events: u64) -> Self {
        self.every = events.max(1);
        self
    }

    /// A checkpoint once the underlying stream has nothing ready and this
    /// long passed since the first event skipped after the last item; zero
    /// sends one as soon as it has nothing ready. Default: 1 s.
    #[must_use]
    pub fn checkpoint_after(mut self, after: Duration) -> Self {
        self.after = after;
        self
    }

    /// The filter.
    pub fn filter(&self) -> &Filter<E> {
        &self.filter
    }

    /// The epoch of the journal the last item came from: what a cursor
    /// built from an event's or a checkpoint's seq must name. See
    /// [`FeedStream::epoch`].
    pub fn epoch(&self) -> Option<u64> {
        self.inner.epoch()
    }

    /// A checkpoint at the seq scanned; nothing is skipped after it.
    fn checkpoint(&mut self) -> FeedItem<E> {
        self.reported();
        FeedItem::Checkpoint { seq: Seq::new(self.scanned) }
    }

    /// An item went out: nothing is skipped after it yet.
    fn reported(&mut self) {
        self.skipped = 0;
        self.timer = None;
    }
}

impl<E: Event> Stream for FilteredStream<E> {
    type Item = Result<FeedItem<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(e) = this.held.take() {
            return Poll::Ready(Some(Err(*e)));
        }
        let mut skips = 0;
        loop {
            let item = match this.inner.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(item))) => item,
                // The checkpoint of what was scanned goes first: a client
                // stops at the error (an SSE response ends), and had lost
                // that progress, the checkpoint coming after the error.
                Poll::Ready(Some(Err(e))) if this.skipped > 0 => {
                    this.held = Some(Box::new(e));
                    return Poll::Ready(Some(Ok(this.checkpoint())));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready((this.skipped > 0).then(|| Ok(this.checkpoint())));
                }
                Poll::Pending => {
                    if this.skipped > 0 {
                        let due = match &mut this.timer {
                            None => true,
                            Some(timer) => timer.as_mut().poll(cx).is_ready(),
                        };
                        if due {
                            return Poll::Ready(Some(Ok(this.checkpoint())));
                        }
                    }
                    return Poll::Pending;
                }
            };
            match item {
                FeedItem::Event(env) => {
                    this.scanned = env.seq.get();
                    if this.filter.matches(&env) {
                        this.reported();
                        return Poll::Ready(Some(Ok(FeedItem::Event(env))));
                    }
                    // Under a catch: this may be the event's last reference
                    // (a follower's decode), and its `Drop` the event type's
                    // own code, which had ended the caller's task (a
                    // `?stream=` response, at every reconnect).
                    crate::error::let_go(env);
                    this.skipped += 1;
                    if this.skipped >= this.every {
                        return Poll::Ready(Some(Ok(this.checkpoint())));
                    }
                    if this.timer.is_none() && !this.after.is_zero() {
                        this.timer = Some(Box::pin(tokio::time::sleep(this.after)));
                    }
                    skips += 1;
                    if skips >= SKIPS_PER_POLL {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
                FeedItem::Checkpoint { seq } => {
                    // The state machine's: a pruned range without this stream.
                    this.scanned = this.scanned.max(seq.get());
                    return Poll::Ready(Some(Ok(this.checkpoint())));
                }
                // The inner `FeedStream` is durable only.
                FeedItem::Ephemeral { .. } => return Poll::Ready(Some(Ok(item))),
                FeedItem::Undecodable { seq, .. } => {
                    // Whether it matches cannot be told; its seq is scanned.
                    this.scanned = seq.get();
                    this.reported();
                    return Poll::Ready(Some(Ok(item)));
                }
                FeedItem::Reset { .. } => {
                    // Where the stream goes on (the policy decides), possibly
                    // in another epoch: the scan starts again from there.
                    this.scanned = this.inner.handed_out();
                    this.reported();
                    return Poll::Ready(Some(Ok(item)));
                }
            }
        }
    }
}
