//! [`LiveStream`]: a durable stream with the ring's ephemeral events merged
//! in, in emit order.
//!
//! It wraps any durable stream of [`FeedItem`]s (a `FeedStream`). Each
//! durable item `D` is held back until the ring's ephemeral events
//! positioned before it (after `D - 1`) went out; once caught up, it
//! delivers the ephemeral events that follow the last durable event as they
//! arrive. The writer inserts a batch's ephemeral events into the ring
//! before it publishes the batch's durable events, so when `D` is visible
//! every ephemeral event before it is in the ring.
//!
//! Invariant: positions only move forward, so nothing is delivered twice;
//! when the ring lost something of a run after the stream's position, the
//! stream says so with one `Reset { LiveOutputExpired }` before the next
//! durable event and goes on with it; a run that lost nothing is served
//! with no reset.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use events_core::{Seq, StreamId};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::Ring;
use super::ring::Accepted;
use crate::Result;
use crate::position::{FeedItem, LiveCursor, OnExpired, Position, ResetReason};
use crate::shared::Shared;

/// The stream returned by [`FeedReader::stream_live`](crate::FeedReader::stream_live):
/// durable events after the cursor, as `stream_from` yields them, with the
/// ephemeral events the writer's ring still holds merged in as
/// [`FeedItem::Ephemeral`], in the order they were emitted.
pub struct LiveStream<E> {
    inner: BoxStream<'static, Result<FeedItem<E>>>,
    ring: Arc<Ring<E>>,
    shared: Arc<Shared>,
    filter: Option<StreamId>,
    /// The position after the last item queued (or passed over).
    pos: Position,
    /// The position after the last item handed out while others were
    /// still queued; with none queued, `pos` is where the stream is.
    delivered: Position,
    /// What is no news: losses up to its position (reported, or an
    /// earlier writer's output), and the removals made before a bare start.
    accepted: Accepted,
    /// What the ring still holds at or before here is skipped with the
    /// losses a reset reported (not for a bare start: it gets what is
    /// there).
    skipped: Position,
    /// Items queued, each with the position after it: where a client
    /// that took it resumes.
    ready: VecDeque<(Result<FeedItem<E>>, Position)>,
    changes: BoxStream<'static, ()>,
    ended: bool,
    /// The inner stream's policy: where it goes on after an `Expired` reset.
    on_expired: OnExpired,
}

impl<E> Drop for LiveStream<E> {
    /// Lets go of the items queued and not handed out one by one, each
    /// event's `Drop` under a catch (as `FeedStream`'s drop does).
    fn drop(&mut self) {
        crate::error::let_go_each(std::mem::take(&mut self.ready));
    }
}

impl<E> std::fmt::Debug for LiveStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStream").field("position", &self.pos).field("filter", &self.filter).finish_non_exhaustive()
    }
}

impl<E: Send + Sync + 'static> LiveStream<E> {
    pub(crate) fn new(
        inner: BoxStream<'static, Result<FeedItem<E>>>,
        ring: Arc<Ring<E>>,
        shared: Arc<Shared>,
        from: LiveCursor,
        filter: Option<StreamId>,
        on_expired: OnExpired,
    ) -> Self {
        let pos = Position { seq: from.cursor.seq, index: from.index };
        // A bare `Seq::ZERO` asks for what is there, not for a position:
        // what the ring lost before it started is no news to it.
        let bare = from.cursor.epoch.is_none() && from.cursor.seq == Seq::ZERO && from.index == 0;
        let accepted = if bare { ring.bare_accepted(filter.as_ref()) } else { Accepted::default() };
        let changes = futures::stream::unfold(ring.watch(), |mut rx| async move {
            rx.changed().await.ok()?;
            Some(((), rx))
        })
        .boxed();
        LiveStream {
            inner,
            ring,
            shared,
            filter,
            pos,
            delivered: pos,
            accepted,
            skipped: Position::default(),
            ready: VecDeque::new(),
            changes,
            ended: false,
            on_expired,
        }
    }

    /// The position of the last item delivered: where a client resumes
    /// (after a reset, where the stream goes on). Items read from the
    /// journal or the ring but not handed out yet are not counted.
    pub fn position(&self) -> Position {
        if self.ready.is_empty() { self.pos } else { self.delivered }
    }

    /// Queues the ring's events after the position up to `through`, or one
    /// reset if the ring lost some of them; `true` if anything was queued.
    fn drain_ring(&mut self, through: Position) -> bool {
        let after = self.pos.max(self.skipped);
        if through <= after {
            return false;
        }
        // Losses `accepted` covers are no news, but a bare client is served
        // the events the ring still holds: it had skipped every stream's
        // events below the newest loss of any one of them.
        let found = match self.ring.range(after, self.accepted, through, self.filter.as_ref()) {
            Ok(found) => found,
            Err(reported) => {
                // The losses up to `reported` are reported here: through
                // the last run before `through` that lost something (a
                // reader of one stream may drain several runs at once), or
                // further where the ring cannot tell runs apart. A run
                // after the next durable event that lost something gets
                // its own reset there.
                self.accepted.position = reported;
                self.skipped = reported;
                // Past the run, or (a reopened writer's first run) to where
                // the loss ends, the rest of the run still to drain.
                self.pos = through.min(reported);
                let reset = FeedItem::Reset {
                    reason: ResetReason::LiveOutputExpired,
                    // The durable event after the skipped run.
                    earliest: self.pos.seq.next(),
                    latest: self.shared.latest(),
                };
                // Counted with every other reset a stream hands out.
                crate::stats::Counters::bump(&self.shared.counters.resets);
                self.ready.push_back((Ok(reset), self.pos));
                if reported < through {
                    // The writer's own events of the run follow the reset
                    // (a reopened writer's first run), or the later runs'
                    // (a reader of one stream drains several at once).
                    self.drain_ring(through);
                }
                return true;
            }
        };
        let Some(&(last, _)) = found.last() else { return false };
        self.ready
            .extend(found.into_iter().map(|(position, env)| (Ok(FeedItem::Ephemeral { position, env }), position)));
        self.pos = last;
        true
    }

    /// Queues a durable item at `seq` (an event, or a checkpoint or an
    /// undecodable record that only moves the position) after the ring's
    /// events emitted before it.
    fn deliver(&mut self, item: FeedItem<E>, seq: Seq) {
        self.drain_ring(Position::end_of(seq.get().saturating_sub(1)));
        self.pos = self.pos.max(Position::durable(seq));
        let other_stream = match (&item, &self.filter) {
            (FeedItem::Event(env), Some(want)) => env.stream.as_ref() != Some(want),
            _ => false,
        };
        if other_stream {
            // Its `Drop` under a catch, as a filtered stream lets go of one.
            crate::error::let_go(item);
        } else {
            self.ready.push_back((Ok(item), self.pos));
        }
    }

    /// The end of the run of ephemeral events after the last durable item
    /// delivered: what may go out before the next one.
    fn run_end(&self) -> Position {
        Position::end_of(self.pos.seq.get())
    }
}

/// The durable seq an item of the inner stream stands at (`None`: a reset).
fn boundary<E>(item: &FeedItem<E>) -> Option<Seq> {
    match item {
        FeedItem::Event(env) => Some(env.seq),
        FeedItem::Undecodable { seq, .. } | FeedItem::Checkpoint { seq } => Some(*seq),
        FeedItem::Ephemeral { position, .. } => Some(position.seq),
        FeedItem::Reset { .. } => None,
    }
}

impl<E: Send + Sync + 'static> Stream for LiveStream<E> {
    type Item = Result<FeedItem<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some((item, after)) = this.ready.pop_front() {
                this.delivered = after;
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(item))) => match boundary(&item) {
                    Some(seq) => this.deliver(item, seq),
                    None => {
                        // A reset: the durable stream goes on elsewhere (after
                        // a gap, at the earliest retained event, after the
                        // latest under `OnExpired::Latest`, or in another
                        // journal from its start), so the position moves
                        // there, backwards too; what was lost before it is
                        // moot, what is lost after it is reported (a bare
                        // start's removals made before it stay no news).
                        if let FeedItem::Reset { reason, earliest, latest } = &item {
                            let resume = match reason {
                                ResetReason::Gap { last_missing, .. } => *last_missing,
                                ResetReason::Expired if this.on_expired == OnExpired::Latest => *latest,
                                _ => Seq::new(earliest.get().saturating_sub(1)),
                            };
                            this.pos = Position::durable(resume);
                            this.accepted.position = this.pos;
                            this.skipped = this.pos;
                        }
                        this.ready.push_back((Ok(item), this.pos));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    // Failed (the writer's feed, say): as after a close,
                    // what followed the last durable event goes out first,
                    // then the error. Whether the durable stream had
                    // paused (and the ring been looked at) before it got
                    // to its error was a race: the tokens after its last
                    // event were then lost, with no reset.
                    this.drain_ring(this.run_end());
                    this.ended = true;
                    this.ready.push_back((Err(e), this.pos));
                }
                Poll::Ready(None) => {
                    // Closed: what followed the last durable event, then the end.
                    this.drain_ring(this.run_end());
                    this.ended = true;
                }
                Poll::Pending => {
                    if this.drain_ring(this.run_end()) {
                        continue;
                    }
                    match this.changes.as_mut().poll_next(cx) {
                        Poll::Ready(Some(())) => continue,
                        Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use events_core::{Envelope, Timestamp};
    use events_journal::{Journal, JournalOptions, Reader};

    use super::*;
    use crate::live::LiveOutput;

    fn env(seq: u64) -> Arc<Envelope<u32>> {
        Arc::new(Envelope { seq: Seq::new(seq), ts: Timestamp::now(), stream: None, event: 0, id: None })
    }

    /// A durable stream that yields its last event, then its error, with no
    /// pause between (never `Pending`), while the ring holds a token after
    /// that event: the token goes out, then the error. The error had been
    /// handed out at once, the ring not looked at, and the token lost with
    /// no reset; `tests/live_output.rs` saw that only when the feed's
    /// stream happened not to pause before its error (about 1 run in 12).
    #[tokio::test]
    async fn a_token_after_the_last_event_goes_out_before_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(tmp.path(), JournalOptions::new()).unwrap();
        let shared = Shared::for_follower(tmp.path().into(), journal.epoch(), Reader::open(tmp.path()).unwrap());
        let ring = Arc::new(Ring::new(LiveOutput::new(), 0, true, 0));
        ring.insert([(Position { seq: Seq::new(2), index: 1 }, env(2))]);
        let inner = futures::stream::iter([Ok(FeedItem::Event(env(2))), Err(crate::Error::Closed)]).boxed();
        let from = LiveCursor::new(Seq::new(1), 0);
        let live = LiveStream::new(inner, ring, Arc::new(shared), from, None, OnExpired::default());
        let got: Vec<String> = live
            .map(|item| match item {
                Ok(FeedItem::Event(env)) => format!("event {}", env.seq),
                Ok(FeedItem::Ephemeral { position, .. }) => format!("token {}.{}", position.seq, position.index),
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("error {e}"),
            })
            .collect()
            .await;
        assert_eq!(got, ["event 2", "token 2.1", "error the feed is closed"], "{got:?}");
    }
}
