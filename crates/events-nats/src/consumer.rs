//! [`RemoteFeed`]: `stream_from(cursor)` over a replicated JetStream stream,
//! with the local feed's [`FeedItem`] semantics.
//!
//! Neighbours: reads what [`crate::replicator`] wrote (records and gap
//! markers, see [`crate::headers`]), decodes payloads with
//! [`events::payload::decode`]; [`crate::feeds`] reuses its positioning
//! ([`plan`]) and its per-message rule ([`Track`]) once per feed.
//! Positioning: the replicator publishes one message per seq, in order,
//! on the feed's subject, except that one gap marker stands for a whole
//! salvage gap; so the reader guesses the stream sequence of `cursor + 1`
//! as if there were no marker and no other feed, checks the guess against
//! the message's headers, and otherwise binary-searches the stream with
//! "first message of the subject at or after" probes (falling back to the
//! feed's first message if a probe fails). An ordered pull consumer
//! (single replica, filtered by the feed's subject, recreated by the client
//! after a gap or a reconnect) then delivers from there. A stream deleted
//! and made again under the same name (the replicator makes it again and
//! fills it from the journal) numbers its messages from 1 again, where
//! the client's recreated consumer would wait past the old numbers: the
//! reader looks again ([`Made`]) when no message came for [`LOOK_AGAIN`],
//! or before a jump in seqs would be reported, and positions itself in
//! the new stream from where it stands.
//!
//! Invariant: the reader yields every seq after the cursor once, in order;
//! messages at or below the last seq delivered are skipped, and a jump (the
//! stream discarded messages the reader had not read yet), a gap marker or
//! another epoch yields one explicit [`FeedItem::Reset`] instead of a silent
//! gap. No cursor arithmetic can overflow: a cursor of `u64::MAX` is
//! `Ahead` of any stream.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::stream::{LastRawMessageErrorKind, State as StreamState, Stream as JsStream};
use events::{Bincode, Codec, Cursor, Event, FeedItem, ResetReason, Seq};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::headers::Entry;
use crate::{NatsError, StreamSpec};

/// A reader of a replicated feed on any machine that reaches the NATS
/// server.
///
/// # Resets
///
/// One rule, the local [`FeedStream`](events::FeedStream)'s: when the
/// cursor cannot be served, the stream yields one [`FeedItem::Reset`] and
/// then continues; it never skips silently.
///
/// * **Expired** (the stream no longer holds the message after the cursor),
///   **Ahead** (the cursor is past the stream's last seq, `u64::MAX`
///   included) and **EpochMismatch** (the cursor names another journal
///   epoch): the reset comes first, then every event from the oldest one
///   the stream holds (`earliest`), with no gap after it.
/// * **Gap**: where a salvage recovery dropped records from the journal,
///   the replicator published a gap marker; the reader yields
///   `Reset { reason: Gap { first_missing, last_missing }, .. }` (only the
///   part after the cursor) and continues with the event after
///   `last_missing`.
/// * While reading, a jump over messages the stream discarded before they
///   were read is an `Expired` reset, and a message of another epoch (the
///   stream was purged and refilled) an `EpochMismatch` reset; both
///   continue with that message, the oldest available.
/// * A cursor with its epoch, on a stream that holds none of the feed's
///   messages any more (its limits on a quiet feed, a purge): no reset up
///   front, since the reader may have missed nothing; the next message
///   decides, by the rule above (a seq the cursor covers is not delivered
///   again). A bare seq there gets a reset first. A journal rolled back to
///   an older copy of the same epoch and replicated again into the emptied
///   stream cannot be told from the original there: its seqs up to the
///   cursor are taken for those the reader had (as everywhere once a
///   restored journal has grown past a cursor).
///
/// `earliest` and `latest` in a reset are the oldest event and the last seq
/// the stream accounts for when the reset is made (a gap marker accounts
/// for its range).
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
/// // Saved with the last event read (its seq and `items.epoch()`).
/// let saved = Cursor::new(Seq::new(41), 0x5eed);
/// let mut items = remote.stream_from(saved).await?;
/// while let Some(item) = items.next().await {
///     match item? {
///         FeedItem::Event(env) => {
///             println!("{} {:?}", env.seq, env.event);
///             let _save = items.epoch().map(|epoch| Cursor::new(env.seq, epoch));
///         }
///         FeedItem::Reset { reason, earliest, .. } => println!("reset ({reason:?}), oldest available {earliest}"),
///         // Never here: a record that cannot be decoded is an `Err` item
///         // (the `?` above stops at it; the stream would go on after it).
///         FeedItem::Undecodable { .. } => {}
///         // Only a filtered stream of the façade yields checkpoints.
///         FeedItem::Checkpoint { .. } => {}
///         // Only a live-output stream of the writer's process has these.
///         FeedItem::Ephemeral { .. } => {}
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
    /// at the oldest event it holds; a salvage gap is a
    /// [`ResetReason::Gap`] reset and the stream continues after it (see
    /// [`RemoteFeed`]'s rules). A bare `Seq::ZERO` (no epoch) asks for
    /// everything the stream holds, as locally: never a reset.
    ///
    /// The stream does not end by itself. An `Err` item reports a decode
    /// failure, a message without the replicator's headers, or a consumer
    /// error the client could not recover from, after every item that came
    /// before it (a reset included); the caller decides whether to go on
    /// reading.
    ///
    /// # Errors
    ///
    /// [`NatsError::JetStream`] when the stream does not exist or the server
    /// cannot be asked; [`NatsError::BadMessage`] when the feed's first or
    /// last message lacks the replicator's headers; [`NatsError::FeedId`]
    /// for a shared spec without a feed id (read every feed with
    /// [`RemoteFeeds`](crate::RemoteFeeds)).
    pub async fn stream_from(&self, cursor: impl Into<Cursor>) -> Result<RemoteStream<E>, NatsError> {
        let cursor = cursor.into();
        if self.spec.is_shared() && self.spec.feed_id().is_none() {
            return Err(NatsError::FeedId {
                feed: String::new(),
                reason: "a shared stream is read one feed at a time (StreamSpec::feed) or with RemoteFeeds".into(),
            });
        }
        self.spec.check_feed()?;
        let source = Source::new(self.spec.open(&self.js).await?, self.spec.name(), self.spec.subject());
        let plan = plan(&source, cursor).await?;
        let messages = source.consume(&source.subject, plan.start).await?;
        let state = State {
            messages,
            made: Made::of(&source.stream),
            source,
            codec: self.codec.clone(),
            track: plan.track,
            queue: plan.reset.into_iter().collect(),
            failed: None,
            reread: None,
        };
        let inner = futures::stream::unfold(state, |mut s| async move { s.next().await.map(|item| (item, s)) });
        // Fused: polled again after its end, `None` again (`unfold` panics).
        Ok(RemoteStream { inner: inner.fuse().boxed(), epoch: None })
    }
}

/// Decides where an ordered consumer of `source`'s subject starts for
/// `cursor`, and whether a reset comes first.
pub(crate) async fn plan<E>(source: &Source, cursor: Cursor) -> Result<Plan<E>, NatsError> {
    // A bare zero asks for everything kept, as `stream_from(Seq::ZERO)`
    // does locally: the oldest message on, whatever comes first, never
    // expired, even when messages are discarded before the first read.
    let everything = cursor == Cursor::from(Seq::ZERO);
    let state = source.state().await?;
    let Some(ends) = source.ends_in(&state).await? else {
        let last_sequence = state.last_sequence;
        // A cursor of a known journal on a stream that held messages but
        // holds none of this feed's now (its limits on a quiet feed, a
        // purge): nothing says the reader missed anything. The next
        // message decides, as for a reader that is caught up: the next seq
        // is an event, a later one an `Expired` reset, another epoch an
        // `EpochMismatch`, an earlier one of this epoch was delivered
        // before (a replicator restarted after the stream was emptied
        // publishes it again). A bare seq cannot tell another journal's
        // events from these: it gets the reset below.
        if let Some(epoch) = cursor.epoch.filter(|_| cursor.seq.get() > 0 && last_sequence > 0) {
            return Ok(Plan {
                start: last_sequence.saturating_add(1),
                tail: last_sequence.saturating_add(1),
                track: Track::after(cursor.seq.get(), Some(epoch)),
                reset: None,
            });
        }
        // Nothing to compare with: an empty stream that never held
        // anything is behind any non-zero cursor, and so is a shared
        // stream without this feed; a purged one has discarded what
        // followed it. After a reset, whatever comes next is the oldest
        // available, of whatever epoch.
        let reset = (cursor.seq.get() > 0).then(|| {
            let reason = if last_sequence == 0 || source.is_feed() { ResetReason::Ahead } else { ResetReason::Expired };
            FeedItem::Reset { reason, earliest: Seq::ZERO, latest: Seq::ZERO }
        });
        let track = match (reset.is_some(), everything) {
            (true, _) => Track::oldest(),
            (false, true) => Track::fresh(),
            (false, false) => Track::after(0, cursor.epoch),
        };
        let tail = last_sequence.saturating_add(1);
        return Ok(Plan { start: tail, tail, track, reset });
    };
    let tail = ends.last_sequence.saturating_add(1);
    let (earliest, latest) = (ends.earliest(), ends.latest());
    if everything {
        return Ok(Plan { start: ends.first_sequence, tail, track: Track::fresh(), reset: None });
    }
    // `None` for a cursor of `u64::MAX`: no seq follows it.
    let want = cursor.seq.get().checked_add(1);
    let reason = match (cursor.epoch, want) {
        (Some(e), _) if e != ends.last.epoch() => {
            Some(ResetReason::EpochMismatch { cursor_epoch: e, journal_epoch: ends.last.epoch() })
        }
        (_, Some(want)) if want < ends.first.first_seq() => Some(ResetReason::Expired),
        (_, Some(want)) if want <= latest.saturating_add(1) => None,
        _ => Some(ResetReason::Ahead),
    };
    if let Some(reason) = reason {
        tracing::info!(
            ?reason,
            subject = source.subject,
            cursor = cursor.seq.get(),
            earliest,
            latest,
            "remote stream reset"
        );
        let reset = Some(FeedItem::Reset { reason, earliest: Seq::new(earliest), latest: Seq::new(latest) });
        // Continue at the oldest message, past anything it would report again.
        let track = Track::after(earliest.saturating_sub(1), Some(ends.first.epoch()));
        return Ok(Plan { start: ends.first_sequence, tail, track, reset });
    }
    let want = want.unwrap_or(u64::MAX);
    let start = if want > latest { tail } else { source.locate(&ends, want).await };
    Ok(Plan { start, tail, track: Track::after(cursor.seq.get(), Some(ends.last.epoch())), reset: None })
}

/// How long a reader waits for its next message before it looks whether
/// its stream was deleted and made again ([`Made`]): one stream info
/// request per idle reader this often.
pub(crate) const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// Which stream a reader's consumer reads: the one of its name created at
/// this time. A stream deleted and made again under the same name (by the
/// replicator, after `nats stream rm` or a server back without its store)
/// is another one, which numbers its messages from 1 again: the client's
/// ordered consumer, recreated at the stream sequence after the last
/// message it got, would wait there, past what the new stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Made(async_nats::datetime::DateTime);

impl Made {
    /// The stream `stream`'s handle was opened on.
    pub(crate) fn of(stream: &JsStream) -> Self {
        Made(stream.cached_info().created)
    }

    /// The stream of that name now, when it is another one (made again);
    /// `None` when it is the same, or cannot be asked (deleted, not made
    /// again yet).
    pub(crate) async fn again(self, stream: &JsStream) -> Option<Made> {
        let now = stream.get_info().await.ok()?.created;
        (now != self.0).then_some(Made(now))
    }

    /// [`again_answered`](Self::again_answered) when `items` (what one
    /// message made) hold a jump: a reset for messages discarded unread
    /// (`Expired`) or for a new journal (`EpochMismatch`), which is no jump
    /// if the stream was made again. `Ok(None)` with no jump.
    pub(crate) async fn again_at_a_jump<'i, E: 'i>(
        self,
        stream: &JsStream,
        mut items: impl Iterator<Item = &'i FeedItem<E>>,
    ) -> Result<Option<Made>, NatsError> {
        let jumped = items.any(|item| {
            matches!(item, FeedItem::Reset { reason: ResetReason::Expired | ResetReason::EpochMismatch { .. }, .. })
        });
        if jumped { self.again_answered(stream).await } else { Ok(None) }
    }

    /// As [`again`](Self::again), for a jump in the messages, which must
    /// be told apart from a stream made again before it is taken for
    /// messages discarded unread: asks again, with a growing pause, while
    /// the server does not answer (a request lost on a reconnect, a leader
    /// election, the stream deleted and not made again yet), for up to
    /// [`ANSWER_WAIT`]; then the error, and the caller reads the message
    /// again later ([`Reread`]). A failed request taken for "the same
    /// stream" had made a reset of the jump, passing over what the new
    /// stream holds before the reader's next message.
    pub(crate) async fn again_answered(self, stream: &JsStream) -> Result<Option<Made>, NatsError> {
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
        let mut pause = Duration::from_millis(50);
        loop {
            match stream.get_info().await {
                Ok(info) => return Ok((info.created != self.0).then_some(Made(info.created))),
                Err(e) if tokio::time::Instant::now() + pause > deadline => {
                    return Err(NatsError::js("telling whether the stream was made again", e));
                }
                Err(e) => {
                    let name = &stream.cached_info().config.name;
                    tracing::warn!(stream = %name, error = %e, ?pause, "cannot tell whether the stream was made again; asking again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LOOK_AGAIN);
                }
            }
        }
    }
}

/// How long a reader whose messages jumped asks whether its stream was
/// made again before it reports that it cannot tell ([`Made::again_answered`]).
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// A message whose jump could not be told from a stream made again: its
/// stream sequence, from which the reader's consumer reads again at its
/// next poll, so that the message is decided then, neither lost nor taken
/// for a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reread(pub(crate) u64);

/// Where a reader at `track` goes on in its feed's stream made again.
///
/// While the new stream is not yet filled up to where the reader stands in
/// the same journal (its replicator fills it in order, or is not running),
/// the reader keeps its place and reads the feed's messages published from
/// now on: those the refill repeats are covered by its cursor, the one
/// after it is delivered. Positioned as a new reader, it would get an
/// `Ahead` reset; waiting for the refill instead held a `RemoteFeeds`
/// reader's every feed for as long as one feed's replicator was away.
pub(crate) async fn replan<E>(source: &Source, track: Track) -> Result<Plan<E>, NatsError> {
    let cursor = match track.cursor {
        Some(seq) => Cursor { seq: Seq::new(seq), epoch: track.epoch },
        None => Cursor::from(Seq::ZERO),
    };
    let plan = plan::<E>(source, cursor).await?;
    let filling = matches!(plan.reset, Some(FeedItem::Reset { reason: ResetReason::Ahead, .. }))
        && plan.track.epoch.is_none_or(|e| track.epoch.is_none_or(|t| t == e));
    // Not filled up to the reader yet: it keeps its place and reads on
    // from the feed's next message.
    let plan = if filling { Plan { start: plan.tail, tail: plan.tail, track, reset: None } } else { plan };
    tracing::info!(
        stream = source.name,
        subject = source.subject,
        cursor = ?track.cursor,
        start = plan.start,
        filling,
        "the stream was made again: the reader goes on in it from where it stands"
    );
    Ok(plan)
}

/// One feed's messages in a stream: the stream, its name (for errors) and
/// the feed's subject.
pub(crate) struct Source {
    pub(crate) stream: JsStream,
    pub(crate) name: String,
    pub(crate) subject: String,
}

impl Source {
    pub(crate) fn new(stream: JsStream, name: &str, subject: String) -> Self {
        Source { stream, name: name.to_owned(), subject }
    }

    /// A feed of a shared stream (its subject is not the whole stream's).
    fn is_feed(&self) -> bool {
        !self.stream.cached_info().config.subjects.contains(&self.subject)
    }

    /// A stream of this feed's subject alone.
    fn is_exclusive(&self) -> bool {
        self.stream.cached_info().config.subjects == [self.subject.as_str()]
    }

    async fn state(&self) -> Result<StreamState, NatsError> {
        Ok(self.stream.get_info().await.map_err(|e| NatsError::js("reading stream info", e))?.state)
    }

    /// An ordered consumer of `subject` from stream sequence `start`.
    pub(crate) async fn consume(&self, subject: &str, start: u64) -> Result<Ordered, NatsError> {
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                filter_subject: subject.to_owned(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start.max(1) },
                ..OrderedConfig::default()
            })
            .await
            .map_err(|e| NatsError::js("creating an ordered consumer", e))?;
        consumer.messages().await.map_err(|e| NatsError::js("reading the stream", e))
    }

    /// As [`consume`](Self::consume), for a read again after a jump that
    /// could not be decided ([`Reread`]): a failure waits a look
    /// ([`LOOK_AGAIN`]) before it is reported, so that a reader polled
    /// again at once does not fail in a hot loop.
    pub(crate) async fn consume_again(&self, subject: &str, start: u64) -> Result<Ordered, NatsError> {
        let consumed = self.consume(subject, start).await;
        if consumed.is_err() {
            tokio::time::sleep(LOOK_AGAIN).await;
        }
        consumed
    }

    /// The stream sequence of the subject's first message, read without
    /// looking at what it holds (`None`: the subject has none).
    pub(crate) async fn first_sequence(&self) -> Result<Option<u64>, NatsError> {
        let state = self.state().await?;
        match self.stream.get_first_raw_message_by_subject(&self.subject, state.first_sequence).await {
            Ok(msg) => Ok(Some(msg.sequence)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(NatsError::js("reading a message", e)),
        }
    }

    /// The first message of the subject at or after stream sequence `from`:
    /// its stream sequence and what it stands for.
    async fn next_entry(&self, from: u64) -> Result<(u64, Entry), NatsError> {
        let msg = self
            .stream
            .get_first_raw_message_by_subject(&self.subject, from)
            .await
            .map_err(|e| NatsError::js("reading a message", e))?;
        Ok((msg.sequence, Entry::parse(Some(&msg.headers), &self.name, msg.sequence)?))
    }

    /// The stream sequence of the first message accounting for seq `want`
    /// or a later one (`ends.first.first_seq() <= want <= ends.latest()`),
    /// or an earlier sequence of the subject (the reader skips what the
    /// cursor covers).
    async fn locate(&self, ends: &Ends, want: u64) -> u64 {
        let holds = |entry: &Entry| entry.first_seq() <= want && want <= entry.last_seq();
        // Without a gap marker or another feed, stream sequence = seq + a constant.
        let guess = ends.first_sequence.saturating_add(want - ends.first.first_seq());
        if guess <= ends.last_sequence && self.next_entry(guess).await.is_ok_and(|(at, e)| at == guess && holds(&e)) {
            return guess;
        }
        // The smallest stream sequence from which the subject's next message
        // ends at or after `want`; the last message does.
        let (mut lo, mut hi) = (ends.first_sequence, ends.last_sequence);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.next_entry(mid).await {
                Ok((_, e)) if e.last_seq() >= want => hi = mid,
                Ok((at, _)) => lo = at + 1,
                // The server failing: read from the feed's first message and
                // skip what the cursor covers.
                Err(_) => return ends.first_sequence,
            }
        }
        lo
    }

    /// The feed's first and last messages now; `None` when it has none.
    async fn ends(&self) -> Result<Option<Ends>, NatsError> {
        self.ends_in(&self.state().await?).await
    }

    /// The feed's first and last messages in a stream in `state`; `None`
    /// when it has none.
    async fn ends_in(&self, state: &StreamState) -> Result<Option<Ends>, NatsError> {
        if state.messages == 0 {
            return Ok(None);
        }
        let last = match self.stream.get_last_raw_message_by_subject(&self.subject).await {
            Ok(last) => last,
            // A stream of this subject alone, not empty: a 2.9 server after
            // the subject's last messages were deleted. Its last message is
            // the stream's; taken as none, a reader from a bare zero started
            // after it, and never got what the stream holds.
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound && self.is_exclusive() => {
                match crate::resync::last_by_sequence(&self.stream, state, None).await? {
                    Some(last) => last,
                    // Emptied since `state` (a purge, its limits).
                    None => return Ok(None),
                }
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(e) => return Err(NatsError::js("reading the last message", e)),
        };
        let last_sequence = last.sequence;
        let last = Entry::parse(Some(&last.headers), &self.name, last_sequence)?;
        let (first_sequence, first) = self.next_entry(state.first_sequence).await?;
        Ok(Some(Ends { first_sequence, last_sequence, first, last }))
    }
}

/// A feed's first and last messages.
pub(crate) struct Ends {
    first_sequence: u64,
    last_sequence: u64,
    first: Entry,
    last: Entry,
}

impl Ends {
    /// The oldest event the stream holds (after a leading gap marker).
    fn earliest(&self) -> u64 {
        match &self.first {
            Entry::Record(c) => c.seq,
            Entry::Gap(g) => g.last_missing.saturating_add(1),
        }
    }

    /// The last seq the stream accounts for.
    fn latest(&self) -> u64 {
        self.last.last_seq()
    }
}

/// Where a feed's reading starts.
pub(crate) struct Plan<E> {
    /// The stream sequence the consumer starts at.
    pub(crate) start: u64,
    /// Where the feed's messages published after the plan come from on:
    /// after its last message then (after the stream's last when it held
    /// none of the feed's). A plan made outside [`plan`] sets its start.
    /// A reader that keeps its place reads on from here ([`replan`]).
    pub(crate) tail: u64,
    /// Where the reader stands in the feed.
    pub(crate) track: Track,
    /// The reset to yield first, if any.
    pub(crate) reset: Option<FeedItem<E>>,
}

/// An item of a remote stream, with the epoch of the journal it came from.
type WithEpoch<E> = (FeedItem<E>, Option<u64>);

/// The stream returned by [`RemoteFeed::stream_from`].
pub struct RemoteStream<E> {
    inner: BoxStream<'static, Result<WithEpoch<E>, NatsError>>,
    epoch: Option<u64>,
}

impl<E> RemoteStream<E> {
    /// The epoch of the journal the last yielded item came from (`None`
    /// before the first item, and after a reset made before any of the
    /// feed's messages was read): what a cursor built from that item's seq
    /// must name, `Cursor::new(env.seq, epoch)`, so that resuming from it
    /// after the stream was purged and refilled from a recreated journal
    /// is an `EpochMismatch` reset, not a silent skip of the new journal's
    /// first seqs. It changes only with a reset.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }
}

impl<E> std::fmt::Debug for RemoteStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStream").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl<E> Stream for RemoteStream<E> {
    type Item = Result<FeedItem<E>, NatsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let next = std::task::ready!(self.inner.as_mut().poll_next(cx));
        Poll::Ready(next.map(|tagged| {
            tagged.map(|(item, epoch)| {
                self.epoch = epoch;
                item
            })
        }))
    }
}

struct State<E, C> {
    messages: Ordered,
    /// The stream `messages` reads.
    made: Made,
    source: Source,
    codec: C,
    track: Track,
    queue: VecDeque<FeedItem<E>>,
    /// An error found after the items queued before it: reported once
    /// they are taken.
    failed: Option<NatsError>,
    /// Where the consumer reads again before its next message.
    reread: Option<Reread>,
}

impl<E: Event, C: Codec> State<E, C> {
    /// The next item, with the epoch of the journal it came from: the
    /// queue holds what one message (or the plan) made, all of the epoch
    /// the track took on with it.
    async fn next(&mut self) -> Option<Result<WithEpoch<E>, NatsError>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(Ok((item, self.track.epoch)));
            }
            if let Some(e) = self.failed.take() {
                return Some(Err(e));
            }
            if let Some(Reread(at)) = self.reread {
                // Made again meanwhile: the reader moves into the new stream
                // from where it stands (`at` is the old stream's).
                if let Some(made) = self.made.again(&self.source.stream).await {
                    if let Err(e) = self.follow(made).await {
                        return Some(Err(e));
                    }
                    if self.made == made {
                        self.reread = None;
                        continue;
                    }
                }
                match self.source.consume_again(&self.source.subject, at).await {
                    Ok(messages) => (self.messages, self.reread) = (messages, None),
                    Err(e) => return Some(Err(e)),
                }
            }
            let msg = match tokio::time::timeout(LOOK_AGAIN, self.messages.next()).await {
                Ok(Some(Ok(msg))) => msg,
                Ok(Some(Err(e))) => return Some(Err(NatsError::js("reading the stream", e))),
                Ok(None) => return None,
                Err(_idle) => {
                    if let Some(made) = self.made.again(&self.source.stream).await
                        && let Err(e) = self.follow(made).await
                    {
                        return Some(Err(e));
                    }
                    continue;
                }
            };
            let stream_seq = msg.info().map_or(0, |i| i.stream_sequence);
            let message = &msg.message;
            let (track, queued) = (self.track, self.queue.len());
            let accepted = self
                .track
                .accept(
                    &self.source,
                    &self.codec,
                    stream_seq,
                    message.headers.as_ref(),
                    &message.payload,
                    &mut self.queue,
                )
                .await;
            // A jump in seqs is messages discarded unread, and another
            // epoch a new journal, unless the stream was made again: then
            // this message is not one the reader is due (a new journal's
            // stream may be filled past the reader's place before its
            // consumer comes back), and it goes on in the new stream
            // instead, from where it stands.
            let made = self.made.again_at_a_jump(&self.source.stream, self.queue.range(queued..)).await;
            if !matches!(made, Ok(None)) {
                self.queue.truncate(queued);
                self.track = track;
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
            self.failed = accepted.err();
        }
    }

    /// The stream was made again (`made`): positions the reader in the new
    /// one, from where it stands (a reset first if the new stream cannot
    /// serve that, as for a new reader; none while it is being filled up to
    /// there: [`replan`]).
    async fn follow(&mut self, made: Made) -> Result<(), NatsError> {
        let plan = replan::<E>(&self.source, self.track).await?;
        self.messages = self.source.consume(&self.source.subject, plan.start).await?;
        self.made = made;
        self.track = plan.track;
        self.queue.extend(plan.reset);
        Ok(())
    }
}

/// Where a reader stands in one feed, and the rule that turns the feed's
/// next message into items (the invariant in the module docs).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Track {
    /// The last seq delivered or accounted for. `None` right after a reset
    /// on an empty feed or an epoch change: the next message is the oldest
    /// available, taken as it is.
    pub(crate) cursor: Option<u64>,
    /// The epoch of the events delivered so far.
    pub(crate) epoch: Option<u64>,
    /// Nothing delivered or reset yet (a bare `Seq::ZERO`, a feed that
    /// joined while reading): a gap marker first is reported, as a local
    /// `stream_from(Seq::ZERO)` reports a salvage gap at the start.
    pub(crate) fresh: bool,
}

impl Track {
    /// A reader that takes the next message as the oldest available, after
    /// a reset: a gap marker first was reported with it.
    pub(crate) fn oldest() -> Self {
        Track { cursor: None, epoch: None, fresh: false }
    }

    /// A reader of everything from the oldest available message.
    pub(crate) fn fresh() -> Self {
        Track { cursor: None, epoch: None, fresh: true }
    }

    /// A reader after `cursor`, in `epoch` if known.
    pub(crate) fn after(cursor: u64, epoch: Option<u64>) -> Self {
        Track { cursor: Some(cursor), epoch, fresh: false }
    }

    /// Pushes onto `items` what message `stream_seq` of `source`'s feed
    /// makes: nothing (a message the cursor covers), an event, or a reset
    /// and then an event. An error (a bad message, an undecodable record)
    /// comes after the items pushed before it, which the caller delivers
    /// first: a reset is never lost with the record that follows it.
    pub(crate) async fn accept<E: Event, C: Codec>(
        &mut self,
        source: &Source,
        codec: &C,
        stream_seq: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
        items: &mut impl Extend<FeedItem<E>>,
    ) -> Result<(), NatsError> {
        let entry = Entry::parse(headers, &source.name, stream_seq)?;
        if let Some(epoch) = self.epoch.filter(|e| *e != entry.epoch()) {
            // The stream was purged and refilled from a new journal:
            // this message is the oldest available of the new epoch.
            let reason = ResetReason::EpochMismatch { cursor_epoch: epoch, journal_epoch: entry.epoch() };
            items.extend(Some(self.reset(source, reason, &entry).await));
            self.cursor = None;
            self.fresh = false;
        }
        self.epoch = Some(entry.epoch());
        let fresh = std::mem::take(&mut self.fresh);
        let after = self.cursor.map(|c| c.saturating_add(1));
        match &entry {
            Entry::Record(at) => {
                match after {
                    Some(after) if at.seq < after => return Ok(()),
                    // The stream discarded messages this reader had not read.
                    Some(after) if at.seq > after => {
                        items.extend(Some(self.reset(source, ResetReason::Expired, &entry).await));
                    }
                    _ => {}
                }
                self.cursor = Some(at.seq);
                let env = events::payload::decode_caught::<E, C>(codec, at.seq, at.ts, payload).map_err(|e| {
                    NatsError::Decode {
                        seq: at.seq,
                        stream: source.name.clone(),
                        stream_seq,
                        subject: source.subject.clone(),
                        source: e,
                    }
                })?;
                items.extend(Some(FeedItem::Event(Arc::new(env))));
            }
            Entry::Gap(gap) => {
                match after {
                    Some(after) if gap.last_missing < after => return Ok(()),
                    // Messages before the marker were discarded unread.
                    Some(after) if gap.first_missing > after => {
                        items.extend(Some(self.reset(source, ResetReason::Expired, &entry).await));
                    }
                    Some(after) => {
                        let first_missing = Seq::new(gap.first_missing.max(after));
                        let last_missing = Seq::new(gap.last_missing);
                        items.extend(Some(
                            self.reset(source, ResetReason::Gap { first_missing, last_missing }, &entry).await,
                        ));
                    }
                    // A reader of everything, at a salvage gap first.
                    None if fresh => {
                        let reason = ResetReason::Gap {
                            first_missing: Seq::new(gap.first_missing),
                            last_missing: Seq::new(gap.last_missing),
                        };
                        items.extend(Some(self.reset(source, reason, &entry).await));
                    }
                    // The oldest available after a reset: nothing to report twice.
                    None => {}
                }
                self.cursor = Some(gap.last_missing);
            }
        }
        Ok(())
    }

    /// A reset made at `entry`, which the feed continues with (or after,
    /// for a gap marker). `earliest` and `latest` are read from the stream;
    /// if that fails, they describe `entry`.
    async fn reset<E>(&self, source: &Source, reason: ResetReason, entry: &Entry) -> FeedItem<E> {
        let (earliest, latest) = match source.ends().await {
            Ok(Some(ends)) => (ends.earliest(), ends.latest().max(entry.last_seq())),
            _ => match entry {
                Entry::Record(at) => (at.seq, at.seq),
                Entry::Gap(gap) => (gap.last_missing.saturating_add(1), gap.last_missing),
            },
        };
        tracing::info!(?reason, subject = source.subject, cursor = ?self.cursor, earliest, latest, "remote stream reset");
        FeedItem::Reset { reason, earliest: Seq::new(earliest), latest: Seq::new(latest) }
    }
}
