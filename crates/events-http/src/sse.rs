//! `GET /stream`: one [`FeedStream`] per HTTP client, turned into
//! Server-Sent Events frames. Neighbours: `router.rs` mounts it, `cursor.rs`
//! gives the `<epoch>-<seq>` form of its ids and cursors, `error.rs` answers
//! bad cursors, and the [`FeedReader`] in `state.rs` supplies the stream.
//!
//! Invariant: nothing here buffers. Frames are produced only when hyper asks
//! for the next body chunk, which it does only when the socket can take
//! more, so a slow client leaves its `FeedStream` unpolled; the stream then
//! lags past the live tail and falls back to the journal like any slow
//! consumer, and server memory stays bounded: a stalled client's stream
//! holds at most two journal chunks decoded (4,096 events and about 4 MiB
//! of records each). Dropping the response (the
//! client went away) drops the `FeedStream` and the client-count guard.
//! Every frame's id names the epoch of the journal it came from: the stream
//! starts with the cursor's epoch and only an `epoch_mismatch` reset, which
//! carries the journal's epoch, changes it. A `?stream=<id>` client reads a
//! [`FilteredStream`]: its events of that stream, and `checkpoint` frames
//! whose id is the seq scanned so far, so its `Last-Event-ID` moves past
//! other streams' events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use events::{
    Codec, Cursor, Envelope, Event, FeedItem, FeedReader, FeedStream, Filter, FilteredStream, LiveCursor, LiveStream,
    OnExpired, OnUndecodable, Position, ResetReason, Seq, error_chain,
};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use crate::cursor::{self, WireCursor};
use crate::error::RequestError;
use crate::state::AppState;

/// The header a reconnecting `EventSource` sends; it wins over `?since=`.
const LAST_EVENT_ID: &str = "last-event-id";

/// The query string of `GET /stream`. Strings, so that a bad value gets our
/// message rather than a generic deserialisation error.
#[derive(Debug, Default)]
pub(crate) struct StreamQuery {
    since: Option<String>,
    stream: Option<String>,
    live_output: Option<String>,
    /// What EventSource polyfills send on a reconnect in place of the
    /// `Last-Event-ID` header (counted as the header when it is absent).
    last_event_id: Option<String>,
}

impl StreamQuery {
    /// The parameters, each at most once. An unknown one (`?from=`, a
    /// misspelt `live-output`) or a repeated one is refused: served as if
    /// absent, it would replay or skip events the client did not ask for,
    /// or leave out the live output it asked for. An empty `stream=` is
    /// refused too: it would filter on the stream id of no bytes, where
    /// the client most likely meant every stream.
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<StreamQuery, RequestError> {
        let mut query = StreamQuery::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "since" => &mut query.since,
                "stream" => &mut query.stream,
                "live_output" => &mut query.live_output,
                "lastEventId" => &mut query.last_event_id,
                _ => return Err(RequestError::UnknownParameter { name }),
            };
            if slot.replace(value).is_some() {
                return Err(RequestError::Repeated { name: format!("query parameter {name}") });
            }
        }
        if query.stream.as_deref() == Some("") {
            return Err(RequestError::EmptyStream);
        }
        Ok(query)
    }

    /// `?live_output=1`: ephemeral events too, from the feed's live-output
    /// ring. Absent, `0` or `false`: off. A bare `?live_output` (or an
    /// empty value) is refused with the rest: a client meaning "on" would
    /// get durable events alone with no word.
    fn live_output(&self) -> Result<bool, RequestError> {
        match self.live_output.as_deref().map(str::trim) {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true") => Ok(true),
            Some(other) => Err(RequestError::LiveOutput { value: other.into() }),
        }
    }
}

/// The JSON `data:` of an event frame (`index` only for an ephemeral
/// event, `id` only for an event appended with an event id).
#[derive(Serialize)]
struct EventData<'a, E> {
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u32>,
    ts: u64,
    stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    event: &'a E,
}

/// The handler of `GET /stream`.
pub(crate) async fn stream<E, C>(
    State(state): State<AppState<E, C>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, Response>
where
    E: Event,
    C: Codec,
{
    let query = StreamQuery::from_pairs(pairs).map_err(IntoResponse::into_response)?;
    let start = Start::parse(&headers, query.last_event_id.as_deref(), query.since.as_deref())
        .map_err(IntoResponse::into_response)?;
    let live_output = query.live_output().map_err(IntoResponse::into_response)?;
    if state.closer.is_closed() && start != Start::Latest {
        // Shutting down: an event stream that ends at once, which a
        // browser's `EventSource` reconnects after, with its last id, to
        // whatever serves next (a `503` would make it give up for good).
        // `since=latest` still gets its first frame (below): "now" is a
        // position, which a reconnect without it would resolve later.
        // Its one frame, which a browser does not dispatch, sets its
        // reconnect delay back, as every response's first frame does.
        let ended = futures::stream::iter([Ok::<_, Infallible>(SseEvent::default().retry(RECONNECT_RETRY))]);
        return Err(Sse::new(ended).into_response());
    }
    // Counted from here (the cursor's resolve included), and refused beyond
    // the limit, but not once closed (only `since=latest` gets here then:
    // its first frame, then the end), where a `503` would make a browser
    // give up for good instead of reconnecting to whatever serves next.
    let max = if state.closer.is_closed() { usize::MAX } else { state.max_clients };
    let Some(guard) = ClientGuard::admit(&state.clients, max) else {
        let why =
            format!("too many clients: {} /stream responses are open, the most this server takes\n", state.max_clients);
        return Err((StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], why).into_response());
    };
    let everything = matches!(start, Start::After(WireCursor { epoch: None, seq: Seq::ZERO, index: 0 }));
    let index = match start {
        Start::After(WireCursor { index, .. }) => index,
        Start::Latest => 0,
    };
    // A `FeedReader` looks at the journal files for its epoch and latest
    // seq: off the async workers, like `/status`.
    let reader = state.reader.clone();
    let (seq, epoch) = tokio::task::spawn_blocking(move || start.resolve(&reader)).await.map_err(|e| {
        tracing::warn!(error = %e, "resolving an SSE cursor failed");
        (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot resolve the cursor: {e}\n")).into_response()
    })?;
    tracing::debug!(cursor = seq.get(), epoch, stream = ?query.stream, "SSE client connected");
    // No cursor (or a bare 0) asks for everything retained: never
    // expired while it is still at 0, until the stream first catches up.
    // The frames' ids then name
    // the epoch the stream reads.
    let cursor = if everything { Cursor::from(Seq::ZERO) } else { Cursor::new(seq, epoch) };
    // `since=latest`: the position "now" resolves to goes out first, as a
    // `checkpoint` frame (it sets the client's last event id, and a page's
    // script sees it), so a client that reconnects before its first event
    // resumes there instead of at a later "now", missing what came between.
    let mut start_at = (start == Start::Latest).then(|| (epoch, Position::durable(seq)));
    let inner = match query.stream {
        _ if live_output => match match start {
            // From now on: no reset for output the client never asked for.
            Start::Latest => state.reader.live_latest(query.stream.as_deref()).and_then(|at| {
                let position = Position { seq: at.cursor.seq, index: at.index };
                start_at = Some((at.cursor.epoch.unwrap_or(epoch), position));
                state.reader.stream_live(at, query.stream.as_deref())
            }),
            Start::After(_) => state.reader.stream_live(LiveCursor::new(cursor, index), query.stream.as_deref()),
        } {
            Ok(live) => Source::Live(live),
            Err(events::Error::StreamIdTooLong { len, limit }) => {
                return Err(RequestError::StreamId { len, limit }.into_response());
            }
            Err(e) => return Err(RequestError::LiveOutputOff { reason: error_chain(&e) }.into_response()),
        },
        None => Source::All(state.reader.stream_from(cursor)),
        Some(id) => match state.reader.stream_filtered(cursor, Filter::stream(id)) {
            Ok(filtered) => Source::Filtered(filtered.checkpoint_after(state.checkpoint_after)),
            Err(events::Error::StreamIdTooLong { len, limit }) => {
                return Err(RequestError::StreamId { len, limit }.into_response());
            }
            Err(e) => {
                let message = format!("cannot filter the stream: {}\n", error_chain(&e));
                return Err((StatusCode::INTERNAL_SERVER_ERROR, message).into_response());
            }
        },
    };
    let on_expired = state.reader.expired_policy();
    let on_undecodable = state.reader.undecodable_policy();
    let frames = Frames { inner, epoch, on_expired, on_undecodable, failed: false, _guard: guard };
    // The first frame goes out at once, whatever happens next, and sets
    // the client's reconnect delay back to `RECONNECT_RETRY` (an `error`
    // frame sets its own, `ERROR_RETRY`): a browser's `EventSource` keeps
    // the last `retry:` it got for as long as it lives. It is the
    // `since=latest` frame (the position it names was resolved before a
    // close could be seen), or a frame of `retry:` alone, which a browser
    // dispatches nothing for. Carried by the first event instead, it had
    // waited for one: after an error frame, a quiet feed's response cut
    // before its first event (a network blip) left the next reconnect
    // waiting 30 s again.
    let first = match start_at {
        Some((epoch, at)) => start_frame(epoch, at),
        None => SseEvent::default(),
    };
    let first = futures::stream::once(std::future::ready(Ok::<_, Infallible>(first.retry(RECONNECT_RETRY))));
    // Ends when the feed's stream does, or when the router's closer closes
    // (a graceful shutdown).
    let closed = Box::pin(state.closer.closed());
    let body = first.chain(futures::stream::unfold((frames, closed), |(mut f, mut closed)| async move {
        let frame = match futures::future::select(closed.as_mut(), std::pin::pin!(f.frame())).await {
            futures::future::Either::Left(_) => None,
            futures::future::Either::Right((frame, _)) => frame,
        };
        Some((Ok::<_, Infallible>(frame?), (f, closed)))
    }));
    // Ended, with what it holds, if its client stops reading (`stall.rs`).
    let body = crate::stall::watched(body.boxed(), state.stall_timeout);
    let sse = Sse::new(body).keep_alive(KeepAlive::new().interval(state.keep_alive).text("keep-alive"));
    // A proxy that buffers responses (nginx does by default) would hold the
    // frames of a quiet feed for as long as its buffer takes to fill with
    // keep-alives; `X-Accel-Buffering: no` asks it to pass each one on.
    Ok(([(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"))], sse))
}

/// Where a client asked to start, parsed but not yet resolved against the
/// feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// After this cursor.
    After(WireCursor),
    /// After the latest event: new events only.
    Latest,
}

impl Start {
    /// The start a request asks for. Both `Last-Event-ID` and `?since=` are
    /// checked, and a malformed value in either is refused even when the
    /// other is fine (a client sending a bad value has a bug it should
    /// hear about). Of two valid values `Last-Event-ID` wins: a browser's
    /// `EventSource` sends it when it reconnects, with the URL (and so the
    /// `since`) of its first connection, so the header is the newer truth.
    /// `last_event_id`: the `lastEventId` query parameter, which EventSource
    /// polyfills send on a reconnect in place of the header: checked too,
    /// and the cursor when there is no header. An empty header or
    /// parameter counts as absent (an `id:` with an empty value clears a
    /// browser's last event id); none given starts at 0, everything
    /// retained.
    fn parse(headers: &HeaderMap, last_event_id: Option<&str>, since: Option<&str>) -> Result<Start, RequestError> {
        let since = match since.map(str::trim) {
            None | Some("") => None,
            Some("latest") => Some(Start::Latest),
            Some(text) => {
                Some(Start::After(WireCursor::parse(text).ok_or_else(|| RequestError::Since { value: text.into() })?))
            }
        };
        if headers.get_all(LAST_EVENT_ID).iter().nth(1).is_some() {
            return Err(RequestError::Repeated { name: "Last-Event-ID header".into() });
        }
        let header = headers.get(LAST_EVENT_ID).map(|value| String::from_utf8_lossy(value.as_bytes()));
        // Both checked; the header wins, as over `since`: a page that put
        // `lastEventId` in its `EventSource`'s URL gets that URL again on
        // every reconnect, with the newer id in the header.
        let header = last_event(header.as_deref(), |value| RequestError::LastEventId { value })?;
        let param = last_event(last_event_id, |value| RequestError::LastEventIdParameter { value })?;
        let last = header.or(param).map(Start::After);
        Ok(last.or(since).unwrap_or(Start::After(WireCursor { epoch: None, seq: Seq::ZERO, index: 0 })))
    }

    /// The seq and epoch of the façade cursor. A cursor without an epoch
    /// (a bare seq, or none) is pinned to the epoch served now, so the ids
    /// of this stream can name it, and a journal recreated between this call
    /// and the stream's first read shows up as an `epoch_mismatch` reset
    /// instead of events labelled with the wrong epoch. For `latest` the
    /// epoch is read before the seq for the same reason: a seq of a newer
    /// journal with an older epoch is a reset, the other way round would be
    /// a wrong resume.
    fn resolve<E: Event, C: Codec>(self, reader: &FeedReader<E, C>) -> (Seq, u64) {
        match self {
            Start::After(WireCursor { seq, epoch: Some(epoch), .. }) => (seq, epoch),
            Start::After(WireCursor { seq, epoch: None, .. }) => (seq, reader.epoch()),
            Start::Latest => {
                let epoch = reader.epoch();
                (reader.latest_seq(), epoch)
            }
        }
    }
}

/// The cursor a `Last-Event-ID` header or a `lastEventId` parameter names:
/// `None` when absent or empty; `invalid` names the one that was wrong.
fn last_event(
    value: Option<&str>,
    invalid: impl FnOnce(String) -> RequestError,
) -> Result<Option<WireCursor>, RequestError> {
    match value {
        Some(raw) if !raw.trim().is_empty() => {
            WireCursor::parse(raw.trim()).map(Some).ok_or_else(|| invalid(raw.into()))
        }
        _ => Ok(None),
    }
}

/// Counts open `/stream` responses; the count drops when the response body
/// is dropped, which is when the client has gone (or stopped reading for
/// the stall timeout: `stall.rs`).
struct ClientGuard(Arc<watch::Sender<usize>>);

impl ClientGuard {
    /// Counts one more response, if fewer than `max` are open.
    fn admit(clients: &Arc<watch::Sender<usize>>, max: usize) -> Option<Self> {
        let admitted = clients.send_if_modified(|n| {
            let room = *n < max;
            if room {
                *n += 1;
            }
            room
        });
        admitted.then(|| ClientGuard(Arc::clone(clients)))
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// What a client's frames come from: the whole feed, or (`?stream=<id>`)
/// its events of one stream with checkpoints.
enum Source<E> {
    All(FeedStream<E>),
    Filtered(FilteredStream<E>),
    /// `?live_output=1`: durable and ephemeral events (of one stream with `?stream=`).
    Live(LiveStream<E>),
}

impl<E: Event> Source<E> {
    async fn next(&mut self) -> Option<events::Result<FeedItem<E>>> {
        match self {
            Source::All(s) => s.next().await,
            Source::Filtered(s) => s.next().await,
            Source::Live(s) => s.next().await,
        }
    }

    fn epoch(&self) -> Option<u64> {
        match self {
            Source::All(s) => s.epoch(),
            Source::Filtered(s) => s.epoch(),
            // The durable stream inside reads the cursor's epoch; only an
            // `epoch_mismatch` reset changes it, and that frame says so.
            Source::Live(_) => None,
        }
    }

    /// Where a live-output stream goes on after the item it just yielded:
    /// after a `live_output_expired` reset, the end of the lost run, or
    /// (a restarted writer's run) where the new writer's events of it
    /// start, which no rule on the reset's seqs can tell.
    fn live_position(&self) -> Option<Position> {
        match self {
            Source::Live(s) => Some(s.position()),
            Source::All(_) | Source::Filtered(_) => None,
        }
    }
}

struct Frames<E> {
    inner: Source<E>,
    /// The epoch of the journal the stream reads now, for the frames' ids.
    epoch: u64,
    /// The served reader's policy: where its streams go on after an
    /// expired cursor, which a reset frame's id names.
    on_expired: OnExpired,
    /// The served reader's policy for an event it cannot pass on (one that
    /// does not decode, or that JSON cannot carry).
    on_undecodable: OnUndecodable,
    failed: bool,
    _guard: ClientGuard,
}

impl<E: Event> Frames<E> {
    /// The frame of the feed stream's next item; `None` once it ended, or
    /// after an `error` frame.
    async fn frame(&mut self) -> Option<SseEvent> {
        if self.failed {
            return None;
        }
        let item = self.inner.next().await?;
        // The epoch the stream reads, for every frame's id: for a cursor
        // without one (everything retained) it is fixed at its first read,
        // after the one resolved at connect (a followed directory may
        // have been recreated in between).
        self.epoch = self.inner.epoch().unwrap_or(self.epoch);
        Some(match item {
            Ok(FeedItem::Event(env)) => {
                let frame = match event_frame(self.epoch, &env, None) {
                    Ok(frame) => frame,
                    Err(why) => self.unsendable(
                        Position::durable(env.seq),
                        env.stream.as_ref().map(events::StreamId::as_str),
                        &why,
                    ),
                };
                let_go(env);
                frame
            }
            Ok(FeedItem::Ephemeral { position, env }) => {
                let frame = match event_frame(self.epoch, &env, Some(position.index)) {
                    // `event: ephemeral`, its id `<epoch>-<seq>.<index>`.
                    Ok(frame) => frame.event("ephemeral"),
                    Err(why) => self.unsendable(position, env.stream.as_ref().map(events::StreamId::as_str), &why),
                };
                let_go(env);
                frame
            }
            Ok(FeedItem::Reset { reason, earliest, latest }) => {
                if let ResetReason::EpochMismatch { journal_epoch, .. } = reason {
                    self.epoch = journal_epoch;
                }
                let resume = self.inner.live_position();
                reset_frame(self.epoch, reason, earliest, latest, self.on_expired, resume)
            }
            Ok(FeedItem::Undecodable { seq, version, error }) => {
                // Its id moves the client's cursor past it, like an event's.
                let data = serde_json::json!({ "seq": seq.get(), "version": version, "error": error });
                SseEvent::default().event("undecodable").id(cursor::format(self.epoch, seq)).data(data.to_string())
            }
            Ok(FeedItem::Checkpoint { seq }) => {
                // `?stream=` only: its id moves the client's cursor past the
                // other streams' events scanned up to `seq`.
                let data = serde_json::json!({ "seq": seq.get() });
                SseEvent::default().event("checkpoint").id(cursor::format(self.epoch, seq)).data(data.to_string())
            }
            Err(e) => self.fail(&error_chain(&e)),
        })
    }

    /// An event that cannot go out as JSON: under `OnUndecodable::Skip` an
    /// `undecodable` frame whose id moves the client past it, as for an
    /// event that does not decode (with its stream id, so that a page can
    /// tell which response lost a token); otherwise the `error` frame and
    /// the end.
    fn unsendable(&mut self, at: Position, stream: Option<&str>, why: &str) -> SseEvent {
        if self.on_undecodable != OnUndecodable::Skip {
            return self.fail(&format!("event at {}.{} {why}", at.seq, at.index));
        }
        tracing::warn!(seq = at.seq.get(), index = at.index, why, "event skipped: it cannot go out as SSE");
        let data = serde_json::json!({ "seq": at.seq.get(), "index": at.index, "stream": stream, "error": why });
        SseEvent::default().event("undecodable").id(cursor::format_position(self.epoch, at)).data(data.to_string())
    }

    /// An `event: error` frame, after which the stream ends: the client sees
    /// why instead of a silent gap. With `retry:` [`ERROR_RETRY`]: most
    /// errors come back from the same cursor (a damaged segment, an event
    /// that does not decode, an expired cursor under `OnExpired::Fail`), so
    /// a browser's `EventSource` waits that long before it asks again,
    /// instead of its default few seconds.
    fn fail(&mut self, message: &str) -> SseEvent {
        tracing::warn!(error = message, "SSE stream failed");
        self.failed = true;
        SseEvent::default().event("error").retry(ERROR_RETRY).data(serde_json::json!({ "error": message }).to_string())
    }
}

/// An event's frame: a durable one (`index` `None`), or the `index`-th
/// ephemeral event after `env.seq`. `Err` says why it cannot go out: its
/// `Serialize` failed, or panicked. The event type's own code runs here,
/// on the connection's task: a panic it did not catch had ended the
/// response with no frame, and every reconnect from the same cursor met it
/// again (one bad event stays local: DESIGN §3).
fn event_frame<E: Event>(epoch: u64, env: &Envelope<E>, index: Option<u32>) -> Result<SseEvent, String> {
    let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| encoded_frame(epoch, env, index)));
    match encoded {
        Ok(Ok(frame)) => Ok(frame),
        Ok(Err(e)) => Err(format!("cannot be encoded as JSON: {e}")),
        Err(panic) => {
            Err(format!("cannot be encoded as JSON: its Serialize panicked: {}", events::panic_message(&*panic)))
        }
    }
}

/// Lets go of an event this response sent: its `Drop` (the event type's
/// own code, run here when this was its last reference, as after a
/// catch-up's decode) may panic, which is logged, and the response goes on.
fn let_go<E>(env: Arc<Envelope<E>>) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(env))) {
        tracing::error!(panic = %events::panic_message(&*panic), "the Drop of an event sent as SSE panicked");
    }
}

fn encoded_frame<E: Event>(epoch: u64, env: &Envelope<E>, index: Option<u32>) -> Result<SseEvent, serde_json::Error> {
    let data = EventData {
        seq: env.seq.get(),
        index,
        ts: env.ts.as_nanos(),
        stream: env.stream_str(),
        id: env.id.as_ref().map(|id| id.as_str()),
        event: &env.event,
    };
    let position = Position { seq: env.seq, index: index.unwrap_or(0) };
    Ok(SseEvent::default().id(cursor::format_position(epoch, position)).data(serde_json::to_string(&data)?))
}

/// The frame `since=latest` starts with: `event: checkpoint` naming the
/// position "now" resolved to, `data: {"seq":…}` (and `"index":…` inside a
/// live-output response). An `EventSource` takes its id as the last event
/// id it sends on a reconnect, and a page's listener sees it too (the
/// viewer keeps it as its cursor): a frame with no `data` would set the id
/// but dispatch nothing, so a page that reconnects by itself, after its
/// browser gave up, had no position to send.
fn start_frame(epoch: u64, at: Position) -> SseEvent {
    let data = match at.index {
        0 => serde_json::json!({ "seq": at.seq.get() }),
        index => serde_json::json!({ "seq": at.seq.get(), "index": index }),
    };
    SseEvent::default().event("checkpoint").id(cursor::format_position(epoch, at)).data(data.to_string())
}

/// A reset frame carries, as its `id`, the cursor the stream continues
/// after, in the journal's (possibly new) `epoch`: the end of the gap for a
/// salvage gap, `latest` for an expired cursor under [`OnExpired::Latest`],
/// and just before the earliest retained event for every other reason (the
/// façade's rule: the stream goes on with the oldest event still there). A
/// browser that reconnects resumes from there rather than from its stale
/// cursor, which would reset again, or from a range the policy skipped.
/// A live-output stream says where it goes on itself (`live`): by that
/// rule, or inside a restarted writer's run.
fn reset_frame(
    epoch: u64,
    reason: ResetReason,
    earliest: Seq,
    latest: Seq,
    on_expired: OnExpired,
    live: Option<Position>,
) -> SseEvent {
    let mut data: serde_json::Value = serde_json::json!({ "earliest": earliest.get(), "latest": latest.get() });
    let mut resume = Position::durable(Seq::new(earliest.get().saturating_sub(1)));
    let reason = match reason {
        ResetReason::Expired => {
            if on_expired == OnExpired::Latest {
                resume = Position::durable(latest);
            }
            "expired".into()
        }
        ResetReason::Ahead => "ahead".into(),
        ResetReason::LiveOutputExpired => {
            // Past the lost run: a client that reconnects with this id goes
            // on with the next durable event instead of hearing it again.
            resume.index = u32::MAX;
            "live_output_expired".into()
        }
        ResetReason::Gap { first_missing, last_missing } => {
            data["first_missing"] = first_missing.get().into();
            data["last_missing"] = last_missing.get().into();
            resume = Position::durable(last_missing);
            "gap".into()
        }
        ResetReason::EpochMismatch { cursor_epoch, journal_epoch } => {
            // Strings: a random 64-bit value does not fit a JavaScript number.
            data["cursor_epoch"] = cursor_epoch.to_string().into();
            data["journal_epoch"] = journal_epoch.to_string().into();
            "epoch_mismatch".into()
        }
        other => format!("{other:?}").into(),
    };
    data["reason"] = reason;
    let resume = live.unwrap_or(resume);
    SseEvent::default().event("reset").id(cursor::format_position(epoch, resume)).data(data.to_string())
}

/// The default of [`FeedRouter::checkpoint_after`](crate::FeedRouter::checkpoint_after).
pub(crate) const DEFAULT_CHECKPOINT_AFTER: Duration = Duration::from_secs(1);

/// How long a client waits before it reconnects after an `error` frame
/// (its `retry:` field).
pub(crate) const ERROR_RETRY: Duration = Duration::from_secs(30);

/// How long a client waits before it reconnects after any other end of a
/// response: every successful response's first frame says so (a
/// browser's own default, 3 s in Chrome, set again after an error frame's).
pub(crate) const RECONNECT_RETRY: Duration = Duration::from_secs(3);

/// The default of [`FeedRouter::stall_timeout`](crate::FeedRouter::stall_timeout).
pub(crate) const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The default keep-alive interval.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use events::layers::journal::{Journal, JournalOptions};
    use events::{Bincode, Codec, FeedReader};

    use super::*;

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Ev(u64);

    impl Event for Ev {}

    /// A new journal in `dir` whose only record (seq 1) does not decode as
    /// an `Ev`; its epoch.
    fn journal_of_one_undecodable_record(dir: &std::path::Path) -> u64 {
        let (mut journal, _) = Journal::open(dir, JournalOptions::new().codec_tag(Bincode::ID)).unwrap();
        journal.append_now([0x02, 0x99]).unwrap(); // an Option tag of 2: no payload decodes
        let epoch = journal.epoch();
        journal.close().unwrap();
        epoch
    }

    /// A request with no cursor resolves the epoch served at connect
    /// (`resolve`), while its stream fixes its own at its first read: a
    /// followed directory recreated in between is read with no reset.
    /// Every frame's id names the epoch the stream reads: an `undecodable`
    /// frame (or a reset other than `epoch_mismatch`) first had named the
    /// old one, so a reconnect with it got an `epoch_mismatch` reset and
    /// the new journal again from its start (found by audit).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_names_the_epoch_its_stream_reads_not_the_one_resolved_at_connect() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        journal_of_one_undecodable_record(&dir);
        let reader = FeedReader::<Ev>::open(&dir).unwrap().on_undecodable(OnUndecodable::Skip);
        let resolved = reader.epoch();
        let inner = Source::All(reader.stream_from(Cursor::from(Seq::ZERO)));
        std::fs::remove_dir_all(&dir).unwrap();
        let read = journal_of_one_undecodable_record(&dir);
        assert_ne!(read, resolved, "a recreated directory has a new epoch");
        let clients = Arc::new(watch::channel(0).0);
        let mut frames = Frames {
            inner,
            epoch: resolved,
            on_expired: reader.expired_policy(),
            on_undecodable: reader.undecodable_policy(),
            failed: false,
            _guard: ClientGuard::admit(&clients, 1).unwrap(),
        };
        let frame = format!("{:?}", frames.frame().await.expect("a frame"));
        assert!(frame.contains("event: undecodable"), "{frame}");
        assert!(frame.contains(&format!("id: {}", cursor::format(read, Seq::new(1)))), "the epoch read: {frame}");
    }
}
