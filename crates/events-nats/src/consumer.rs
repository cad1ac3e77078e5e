//! [`RemoteFeed`]: `stream_from(cursor)` over a replicated JetStream stream,
//! with the local feed's [`FeedItem`] semantics.
//!
//! Neighbours: reads what [`crate::replicator`] wrote (headers from
//! [`crate::headers`]), decodes payloads with [`events::payload::decode`].
//! Positioning: the replicator publishes exactly one message per seq, in
//! order, so stream sequence = feed seq + a constant; the reader guesses the
//! stream sequence of `cursor + 1` from the first message, checks the guess
//! with the message's `Events-Seq` header, and falls back to reading from
//! the stream's first message when the guess is wrong. An ordered pull
//! consumer (single replica, recreated by the client after a gap or a
//! reconnect) then delivers from there.
//!
//! Invariant: the reader yields every seq after the cursor once, in order;
//! seqs at or below the last one delivered are skipped, and a jump (the
//! stream discarded messages the reader had not read yet) or another epoch
//! yields one explicit [`FeedItem::Reset`] instead of a silent gap.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::stream::Stream as JsStream;
use events::{Bincode, Codec, Cursor, Event, FeedItem, ResetReason, Seq};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::headers::Coordinates;
use crate::{NatsError, StreamSpec};

/// A reader of a replicated feed on any machine that reaches the NATS
/// server.
///
/// # Example
///
/// ```no_run
/// use events::{Cursor, Event, FeedItem, Seq};
/// use events_nats::{RemoteFeed, StreamSpec};
/// use futures::StreamExt;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Tick(u64);
/// impl Event for Tick {}
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await?);
/// let remote: RemoteFeed<Tick> = RemoteFeed::new(js, StreamSpec::new("FEED", "feed.events"));
/// let mut items = remote.stream_from(Seq::new(41)).await?;
/// while let Some(item) = items.next().await {
///     match item? {
///         FeedItem::Event(env) => println!("{} {:?}", env.seq, env.event),
///         FeedItem::Reset { reason, earliest, .. } => println!("reset ({reason:?}), re-read from {earliest}"),
///     }
/// }
/// # Ok(()) }
/// ```
pub struct RemoteFeed<E, C = Bincode> {
    js: Context,
    spec: StreamSpec,
    codec: C,
    _event: PhantomData<fn() -> E>,
}

impl<E, C: Codec> std::fmt::Debug for RemoteFeed<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFeed").field("spec", &self.spec).field("codec", &C::NAME).finish_non_exhaustive()
    }
}

impl<E: Event> RemoteFeed<E, Bincode> {
    /// A reader of the stream `spec` (only its name and subject are used),
    /// decoding with the default codec.
    pub fn new(js: Context, spec: StreamSpec) -> Self {
        RemoteFeed { js, spec, codec: Bincode, _event: PhantomData }
    }
}

impl<E: Event, C: Codec> RemoteFeed<E, C> {
    /// Decode with `codec` (the one the feed was opened with).
    pub fn codec<C2: Codec>(self, codec: C2) -> RemoteFeed<E, C2> {
        RemoteFeed { js: self.js, spec: self.spec, codec, _event: PhantomData }
    }

    /// Every replicated event with `seq > cursor.seq`, in order, with no gap
    /// and no duplicate, then new ones as they are replicated. When the
    /// cursor cannot be served (the stream discarded what follows it, the
    /// cursor is ahead of the stream, or `cursor.epoch` is not the stream's)
    /// the first item is one [`FeedItem::Reset`] and the stream continues
    /// after `latest`.
    ///
    /// The stream does not end by itself. An `Err` item reports a decode
    /// failure or a consumer error the client could not recover from; the
    /// caller decides whether to go on reading.
    ///
    /// # Errors
    ///
    /// [`NatsError::JetStream`] when the stream does not exist or the server
    /// cannot be asked; [`NatsError::BadMessage`] when a message lacks the
    /// replicator's headers.
    pub async fn stream_from(&self, cursor: impl Into<Cursor>) -> Result<RemoteStream<E>, NatsError> {
        let cursor = cursor.into();
        let stream = self.spec.open(&self.js).await?;
        let plan = self.plan(&stream, cursor).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: self.spec.subject().to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: plan.start },
                ..OrderedConfig::default()
            })
            .await
            .map_err(|e| NatsError::js("creating an ordered consumer", e))?;
        let messages = consumer.messages().await.map_err(|e| NatsError::js("reading the stream", e))?;
        let state = State {
            messages,
            codec: self.codec.clone(),
            stream: self.spec.name().to_owned(),
            cursor: plan.cursor,
            epoch: plan.epoch,
            queue: plan.reset.into_iter().collect(),
        };
        let inner = futures::stream::unfold(state, |mut s| async move { s.next().await.map(|item| (item, s)) });
        Ok(RemoteStream { inner: inner.boxed() })
    }

    async fn coordinates(&self, stream: &JsStream, stream_seq: u64) -> Result<Coordinates, NatsError> {
        let msg = stream.get_raw_message(stream_seq).await.map_err(|e| NatsError::js("reading a message", e))?;
        Coordinates::parse(Some(&msg.headers), self.spec.name(), stream_seq)
    }

    /// Decides where the ordered consumer starts and whether a reset comes
    /// first.
    async fn plan(&self, stream: &JsStream, cursor: Cursor) -> Result<Plan<E>, NatsError> {
        let info = stream.get_info().await.map_err(|e| NatsError::js("reading stream info", e))?;
        let state = info.state;
        let want = cursor.seq.get() + 1;
        if state.messages == 0 {
            // Nothing to compare with: an empty stream that never held
            // anything is behind any non-zero cursor; a purged one has
            // discarded what followed it.
            let reset = (cursor.seq.get() > 0).then(|| {
                let reason = if state.last_sequence == 0 { ResetReason::Ahead } else { ResetReason::Expired };
                FeedItem::Reset { reason, earliest: Seq::ZERO, latest: Seq::ZERO }
            });
            return Ok(Plan { start: state.last_sequence + 1, cursor: 0, epoch: cursor.epoch, reset });
        }
        let first = self.coordinates(stream, state.first_sequence).await?;
        let last = self.coordinates(stream, state.last_sequence).await?;
        let (earliest, latest) = (Seq::new(first.seq), Seq::new(last.seq));
        let reason = match cursor.epoch {
            Some(e) if e != last.epoch => {
                Some(ResetReason::EpochMismatch { cursor_epoch: e, journal_epoch: last.epoch })
            }
            _ if want < first.seq => Some(ResetReason::Expired),
            _ if cursor.seq.get() > last.seq => Some(ResetReason::Ahead),
            _ => None,
        };
        if let Some(reason) = reason {
            tracing::info!(?reason, cursor = cursor.seq.get(), %earliest, %latest, "remote stream reset");
            let reset = Some(FeedItem::Reset { reason, earliest, latest });
            return Ok(Plan { start: state.last_sequence + 1, cursor: last.seq, epoch: Some(last.epoch), reset });
        }
        let mut start = state.first_sequence;
        if want == last.seq + 1 {
            start = state.last_sequence + 1;
        } else {
            let guess = state.first_sequence + (want - first.seq);
            if guess <= state.last_sequence && self.coordinates(stream, guess).await.is_ok_and(|c| c.seq == want) {
                start = guess;
            }
        }
        Ok(Plan { start, cursor: cursor.seq.get(), epoch: Some(last.epoch), reset: None })
    }
}

struct Plan<E> {
    /// The stream sequence the consumer starts at.
    start: u64,
    /// The last seq considered delivered.
    cursor: u64,
    epoch: Option<u64>,
    reset: Option<FeedItem<E>>,
}

/// The stream returned by [`RemoteFeed::stream_from`].
pub struct RemoteStream<E> {
    inner: BoxStream<'static, Result<FeedItem<E>, NatsError>>,
}

impl<E> std::fmt::Debug for RemoteStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStream").finish_non_exhaustive()
    }
}

impl<E> Stream for RemoteStream<E> {
    type Item = Result<FeedItem<E>, NatsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct State<E, C> {
    messages: Ordered,
    codec: C,
    stream: String,
    /// The last seq delivered.
    cursor: u64,
    /// The epoch of the events delivered so far.
    epoch: Option<u64>,
    queue: VecDeque<FeedItem<E>>,
}

impl<E: Event, C: Codec> State<E, C> {
    async fn next(&mut self) -> Option<Result<FeedItem<E>, NatsError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(Ok(item));
            }
            let msg = match self.messages.next().await? {
                Ok(msg) => msg,
                Err(e) => return Some(Err(NatsError::js("reading the stream", e))),
            };
            let stream_seq = msg.info().map_or(0, |i| i.stream_sequence);
            let at = match Coordinates::parse(msg.message.headers.as_ref(), &self.stream, stream_seq) {
                Ok(at) => at,
                Err(e) => return Some(Err(e)),
            };
            if let Some(epoch) = self.epoch.filter(|e| *e != at.epoch) {
                // The stream was purged and refilled from a new journal.
                let reason = ResetReason::EpochMismatch { cursor_epoch: epoch, journal_epoch: at.epoch };
                self.reset(reason, at.seq);
            } else if at.seq <= self.cursor {
                continue;
            } else if at.seq > self.cursor + 1 {
                // The stream discarded messages this reader had not read.
                self.reset(ResetReason::Expired, at.seq);
            }
            self.epoch = Some(at.epoch);
            self.cursor = at.seq;
            match events::payload::decode::<E, C>(&self.codec, at.seq, at.ts, &msg.message.payload) {
                Ok(env) => self.queue.push_back(FeedItem::Event(Arc::new(env))),
                Err(source) => return Some(Err(NatsError::Decode { seq: at.seq, source })),
            }
        }
    }

    /// Queues a reset before the event `next`, which the stream continues with.
    fn reset(&mut self, reason: ResetReason, next: u64) {
        tracing::info!(?reason, cursor = self.cursor, next, "remote stream reset");
        let latest = Seq::new(next - 1);
        self.queue.push_back(FeedItem::Reset { reason, earliest: Seq::new(next), latest });
    }
}
