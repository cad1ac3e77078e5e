//! [`RemoteFeeds`]: every feed of a shared stream in one read, resumed from
//! a cursor per feed ([`FeedCursors`]), each feed with the local feed's
//! [`FeedItem`] semantics.
//!
//! Neighbours: positions each feed with [`crate::consumer`]'s `plan` and
//! turns each message into items with its `Track`, the same rules a
//! [`RemoteFeed`](crate::RemoteFeed) of one feed follows; feed ids and the
//! cursor map are [`crate::cursors`]'. One ordered consumer filtered by
//! `<prefix>.*` starts at the earliest position any feed needs; each
//! message is routed by its subject's last token to its feed's track.
//!
//! Invariant: per feed, the reader yields every seq after that feed's
//! cursor once, in order, or one explicit reset (the rules of
//! [`RemoteFeed`](crate::RemoteFeed)); feeds do not wait for each other
//! (items come in stream order), and a feed first seen while reading
//! (a new replicator joined) is read from its first message.

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::pull::Ordered;
use events::{Bincode, Codec, Cursor, Event, Seq};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::consumer::{LOOK_AGAIN, Made, Plan, Reread, Source, Track, plan, replan};
use crate::cursors::check_feed_id;
use crate::{FeedCursors, FeedsItem, NatsError, StreamSpec};

/// A reader of every feed of a shared stream ([`StreamSpec::shared`]).
///
/// # Example
///
/// ```no_run
/// use events::Event;
/// use events::FeedItem;
/// use events_nats::{FeedCursors, RemoteFeeds, StreamSpec};
/// use futures::StreamExt;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Tick(u64);
/// impl Event for Tick {}
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await?);
/// let all: RemoteFeeds<Tick> = RemoteFeeds::new(js, StreamSpec::shared("EVENTS", "events"));
/// // A checkpoint (or an SSE Last-Event-ID) from an earlier run, or none.
/// let mut cursors: FeedCursors = "eu-1:7-41".parse()?;
/// let mut items = all.stream_from(&cursors).await?;
/// while let Some(item) = items.next().await {
///     let item = item?;
///     if let FeedItem::Event(env) = &item.item {
///         println!("{} {} {:?}", item.feed, env.seq, env.event);
///     }
///     cursors.advance(&item); // store `cursors.to_string()` to resume here
/// }
/// # Ok(()) }
/// ```
pub struct RemoteFeeds<E, C = Bincode> {
    js: Context,
    spec: StreamSpec,
    codec: C,
    _event: PhantomData<fn() -> E>,
}

impl<E, C: Codec> std::fmt::Debug for RemoteFeeds<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFeeds").field("spec", &self.spec).field("codec", &C::NAME).finish_non_exhaustive()
    }
}

impl<E: Event> RemoteFeeds<E, Bincode> {
    /// A reader of every feed of the shared stream `spec` (its name and
    /// prefix are used; a feed id in it is ignored), decoding with the
    /// default codec.
    pub fn new(js: Context, spec: StreamSpec) -> Self {
        RemoteFeeds { js, spec, codec: Bincode, _event: PhantomData }
    }
}

impl<E: Event, C: Codec> RemoteFeeds<E, C> {
    /// Decode with `codec` (the one the feeds were opened with).
    pub fn codec<C2: Codec>(self, codec: C2) -> RemoteFeeds<E, C2> {
        RemoteFeeds { js: self.js, spec: self.spec, codec, _event: PhantomData }
    }

    /// Every replicated event of every feed after that feed's cursor in
    /// `cursors` (a feed it does not name: from its first message), each
    /// feed in order with no gap and no duplicate, then new ones as they
    /// are replicated, feeds interleaved in stream order. A feed whose
    /// cursor cannot be served gets one reset first and continues at its
    /// oldest event, exactly like
    /// [`RemoteFeed::stream_from`](crate::RemoteFeed::stream_from); the
    /// other feeds are not affected.
    /// Pass each item to [`FeedCursors::advance`] to know where to resume.
    ///
    /// # Errors
    ///
    /// [`NatsError::FeedId`] when `spec` is not a shared stream's;
    /// [`NatsError::JetStream`] when the stream does not exist or the
    /// server cannot be asked; [`NatsError::BadMessage`] when a feed's first
    /// or last message lacks the replicator's headers.
    pub async fn stream_from(&self, cursors: &FeedCursors) -> Result<RemoteFeedsStream<E>, NatsError> {
        let Some(prefix) = self.spec.prefix() else {
            let reason = "RemoteFeeds reads a shared stream (StreamSpec::shared)".to_owned();
            return Err(NatsError::FeedId { feed: String::new(), reason });
        };
        let stream = self.spec.open(&self.js).await?;
        let name = self.spec.name();
        let wildcard = self.spec.stream_subject();
        // The feeds the stream holds now, and the stream's end: a feed that
        // appears after this look starts after it.
        let info = stream.info_with_subjects(&wildcard).await.map_err(|e| NatsError::js("reading stream info", e))?;
        let mut start = info.info.state.last_sequence.saturating_add(1);
        let present: Vec<String> =
            info.map_ok(|(subject, _)| subject).try_collect().await.map_err(|e| NatsError::js("listing feeds", e))?;
        let mut feeds: BTreeMap<String, Option<Cursor>> =
            cursors.iter().map(|(feed, cursor)| (feed.to_owned(), Some(cursor))).collect();
        for subject in present {
            // Not a feed's subject (`<prefix>.<feed id>`): someone else's,
            // not the reader's to plan.
            if let Some(feed) = subject.strip_prefix(prefix).and_then(|s| s.strip_prefix('.'))
                && check_feed_id(feed).is_ok()
            {
                feeds.entry(feed.to_owned()).or_insert(None);
            }
        }
        let mut state = State {
            messages: None,
            made: Made::of(&stream),
            stream: stream.clone(),
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            codec: self.codec.clone(),
            feeds: BTreeMap::new(),
            queue: VecDeque::new(),
            failed: None,
            reread: None,
        };
        for (feed, cursor) in feeds {
            let source = Source::new(stream.clone(), name, format!("{prefix}.{feed}"));
            let plan = match plan::<E>(&source, cursor.unwrap_or(Cursor::from(Seq::ZERO))).await {
                Ok(plan) => plan,
                // A subject no cursor names whose first or last message is
                // not the replicator's (another publisher's, on a subject
                // of the prefix, or before a feed's replicator filled it):
                // read from its first message, taken as it is, as a feed
                // that joins while reading is; each message that is not
                // the replicator's an error item. It had failed the whole
                // reader, every feed with it.
                Err(e @ NatsError::BadMessage { .. }) if cursor.is_none() => {
                    tracing::warn!(stream = name, feed, error = %e, "a subject of the prefix holds messages the replicator did not publish");
                    let Some(first) = source.first_sequence().await? else { continue };
                    Plan { start: first, tail: first, track: Track::fresh(), reset: None }
                }
                Err(e) => return Err(e),
            };
            start = start.min(plan.start);
            let feed: Arc<str> = feed.into();
            if let Some(item) = plan.reset {
                state.queue.push_back(FeedsItem { feed: Arc::clone(&feed), epoch: plan.track.epoch, item });
            }
            state.feeds.insert(feed, (source, plan.track));
        }
        state.messages = Some(state.every_feed().consume(&wildcard, start).await?);
        let inner = futures::stream::unfold(state, |mut s| async move { s.next().await.map(|item| (item, s)) });
        // Fused: polled again after its end, `None` again (`unfold` panics).
        Ok(RemoteFeedsStream { inner: inner.fuse().boxed() })
    }
}

/// The stream returned by [`RemoteFeeds::stream_from`].
pub struct RemoteFeedsStream<E> {
    inner: BoxStream<'static, Result<FeedsItem<E>, NatsError>>,
}

impl<E> std::fmt::Debug for RemoteFeedsStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteFeedsStream").finish_non_exhaustive()
    }
}

impl<E> Stream for RemoteFeedsStream<E> {
    type Item = Result<FeedsItem<E>, NatsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct State<E, C> {
    messages: Option<Ordered>,
    /// The stream `messages` reads ([`Made`]: one made again is followed).
    made: Made,
    stream: async_nats::jetstream::stream::Stream,
    name: String,
    prefix: String,
    codec: C,
    /// Each feed's subject and where the reader stands in it.
    feeds: BTreeMap<Arc<str>, (Source, Track)>,
    queue: VecDeque<FeedsItem<E>>,
    /// An error found after the items queued before it: reported once
    /// they are taken.
    failed: Option<NatsError>,
    /// Where the consumer reads again before its next message.
    reread: Option<Reread>,
}

impl<E: Event, C: Codec> State<E, C> {
    /// The stream's subjects of every feed (`<prefix>.*`), which the
    /// reader's one consumer reads.
    fn every_feed(&self) -> Source {
        Source::new(self.stream.clone(), &self.name, format!("{}.*", self.prefix))
    }

    async fn next(&mut self) -> Option<Result<FeedsItem<E>, NatsError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(Ok(item));
            }
            if let Some(e) = self.failed.take() {
                return Some(Err(e));
            }
            if let Some(Reread(at)) = self.reread {
                // Made again meanwhile: every feed moves into the new
                // stream from where it stands (`at` is the old stream's).
                if let Some(made) = self.made.again(&self.stream).await {
                    if let Err(e) = self.follow(made).await {
                        return Some(Err(e));
                    }
                    if self.made == made {
                        self.reread = None;
                        continue;
                    }
                }
                let every_feed = self.every_feed();
                match every_feed.consume_again(&every_feed.subject, at).await {
                    Ok(messages) => (self.messages, self.reread) = (Some(messages), None),
                    Err(e) => return Some(Err(e)),
                }
            }
            let msg = match tokio::time::timeout(LOOK_AGAIN, self.messages.as_mut()?.next()).await {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => return Some(Err(NatsError::js("reading the stream", e))),
                Ok(None) => return None,
                Err(_idle) => {
                    if let Some(made) = self.made.again(&self.stream).await
                        && let Err(e) = self.follow(made).await
                    {
                        return Some(Err(e));
                    }
                    continue;
                }
            };
            let stream_seq = msg.info().map_or(0, |i| i.stream_sequence);
            let message = &msg.message;
            let feed = message.subject.strip_prefix(self.prefix.as_str()).and_then(|s| s.strip_prefix('.'));
            let Some(feed) = feed.filter(|f| check_feed_id(f).is_ok()) else {
                let reason = format!("subject {} is not {}.<feed id>", message.subject, self.prefix);
                return Some(Err(NatsError::BadMessage { stream: self.name.clone(), stream_seq, reason }));
            };
            let (feed, (source, track)) = match self.feeds.get_key_value(feed) {
                Some((key, _)) => {
                    let key = Arc::clone(key);
                    let entry = self.feeds.get_mut(&key).expect("just found");
                    (key, entry)
                }
                None => {
                    // A feed that joined while reading: from its first message,
                    // taken as it is (as a bare `Seq::ZERO` takes a present
                    // feed's oldest: no `Expired` reset when it starts above 1).
                    let key: Arc<str> = feed.into();
                    let source = Source::new(self.stream.clone(), &self.name, message.subject.to_string());
                    let track = Track::fresh();
                    (Arc::clone(&key), self.feeds.entry(key).or_insert((source, track)))
                }
            };
            let mut items = Vec::new();
            let before = *track;
            let accepted = track
                .accept(source, &self.codec, stream_seq, message.headers.as_ref(), &message.payload, &mut items)
                .await;
            // A jump in seqs is messages discarded unread, and another
            // epoch a new journal, unless the stream was made again (as for
            // one feed: `consumer.rs`).
            let made = self.made.again_at_a_jump(&self.stream, items.iter()).await;
            if !matches!(made, Ok(None)) {
                *track = before;
            }
            match made {
                Ok(Some(made)) => {
                    if let Err(e) = self.follow(made).await {
                        return Some(Err(e));
                    }
                    continue;
                }
                Err(e) => {
                    // Without its stream sequence (no info), read on.
                    self.reread = (stream_seq > 0).then_some(Reread(stream_seq));
                    return Some(Err(e));
                }
                Ok(None) => {}
            }
            let epoch = track.epoch;
            self.queue.extend(items.into_iter().map(|item| FeedsItem { feed: Arc::clone(&feed), epoch, item }));
            self.failed = accepted.err();
        }
    }

    /// The stream was made again (`now`): positions every feed in the new
    /// one from where it stands, under one consumer from the earliest of
    /// them (a feed not yet filled up to there reads on from its next
    /// message: [`replan`]).
    async fn follow(&mut self, now: Made) -> Result<(), NatsError> {
        let mut plans = Vec::with_capacity(self.feeds.len());
        for (feed, (source, track)) in &self.feeds {
            match replan::<E>(source, *track).await {
                Ok(plan) => plans.push((Arc::clone(feed), plan)),
                // A subject whose first or last message is not the
                // replicator's: read from its first message in the new
                // stream, where it stands (its track skips what it covers).
                // It had failed every feed's move into the new stream.
                Err(NatsError::BadMessage { .. }) => {
                    // None left in the new stream: its next messages come after the others'.
                    let Some(start) = source.first_sequence().await? else { continue };
                    plans.push((Arc::clone(feed), Plan { start, tail: start, track: *track, reset: None }));
                }
                Err(e) => return Err(e),
            }
        }
        let start = plans.iter().map(|(_, plan)| plan.start).min().unwrap_or(1);
        let every_feed = self.every_feed();
        self.messages = Some(every_feed.consume(&every_feed.subject, start).await?);
        self.made = now;
        for (feed, plan) in plans {
            if let Some(item) = plan.reset {
                self.queue.push_back(FeedsItem { feed: Arc::clone(&feed), epoch: plan.track.epoch, item });
            }
            if let Some((_, track)) = self.feeds.get_mut(&feed) {
                *track = plan.track;
            }
        }
        Ok(())
    }
}
