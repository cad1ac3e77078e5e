//! `GET /stream`: one [`FeedStream`] per HTTP client, turned into
//! Server-Sent Events frames. Neighbours: `router.rs` mounts it, `error.rs`
//! answers bad cursors, `source.rs` supplies the stream.
//!
//! Invariant: nothing here buffers. Frames are produced only when hyper asks
//! for the next body chunk, which it does only when the socket can take
//! more, so a slow client leaves its `FeedStream` unpolled; the stream then
//! lags past the live tail and falls back to the journal like any slow
//! consumer, and server memory stays bounded. Dropping the response (the
//! client went away) drops the `FeedStream` and the client-count guard.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use events::{Cursor, Envelope, Event, FeedItem, FeedStream, ResetReason, Seq, error_chain};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::FeedSource;
use crate::error::RequestError;
use crate::router::AppState;

/// The header a reconnecting `EventSource` sends; it wins over `?since=`.
const LAST_EVENT_ID: &str = "last-event-id";

/// The query string of `GET /stream`. Strings, so that a bad value gets our
/// message rather than a generic deserialisation error.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamQuery {
    since: Option<String>,
    stream: Option<String>,
}

/// The JSON `data:` of an event frame.
#[derive(Serialize)]
struct EventData<'a, E> {
    seq: u64,
    ts: u64,
    stream: Option<&'a str>,
    event: &'a E,
}

/// The handler of `GET /stream`.
pub(crate) async fn stream<E, S>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, RequestError>
where
    E: Event,
    S: FeedSource<E>,
{
    let seq = cursor(&headers, query.since.as_deref(), &state.source)?;
    tracing::debug!(cursor = seq.get(), stream = ?query.stream, "SSE client connected");
    let frames = Frames {
        inner: state.source.stream_from(Cursor::from(seq)),
        filter: query.stream,
        failed: false,
        _guard: ClientGuard::new(Arc::clone(&state.clients)),
    };
    let body = futures::stream::unfold(frames, |mut f| async move { f.next_frame().await.map(|ev| (Ok(ev), f)) });
    Ok(Sse::new(body).keep_alive(KeepAlive::new().interval(state.keep_alive).text("keep-alive")))
}

/// The cursor: `Last-Event-ID` when present and non-empty (a browser sends
/// it on reconnect, so it is the newer truth), else `?since=`, else 0.
fn cursor<E, S: FeedSource<E>>(headers: &HeaderMap, since: Option<&str>, source: &S) -> Result<Seq, RequestError> {
    if let Some(value) = headers.get(LAST_EVENT_ID) {
        let lossy = String::from_utf8_lossy(value.as_bytes());
        let text = lossy.trim();
        // An `id:` field with an empty value clears a browser's last event
        // id; an empty header means the same: no cursor.
        if !text.is_empty() {
            return text.parse::<u64>().map(Seq::new).map_err(|_| RequestError::LastEventId { value: lossy.into() });
        }
    }
    match since.map(str::trim) {
        None | Some("") => Ok(Seq::ZERO),
        Some("latest") => Ok(source.latest_seq()),
        Some(text) => text.parse::<u64>().map(Seq::new).map_err(|_| RequestError::Since { value: text.into() }),
    }
}

/// Counts open `/stream` responses; the count drops when the response body
/// is dropped, which is when the client has gone.
struct ClientGuard(Arc<watch::Sender<usize>>);

impl ClientGuard {
    fn new(clients: Arc<watch::Sender<usize>>) -> Self {
        clients.send_modify(|n| *n += 1);
        ClientGuard(clients)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

struct Frames<E> {
    inner: FeedStream<E>,
    filter: Option<String>,
    failed: bool,
    _guard: ClientGuard,
}

impl<E: Event> Frames<E> {
    async fn next_frame(&mut self) -> Option<SseEvent> {
        if self.failed {
            return None;
        }
        loop {
            match self.inner.next().await? {
                Ok(FeedItem::Event(env)) => {
                    if self.filter.as_deref().is_some_and(|want| env.stream_str() != Some(want)) {
                        // Skipped events come from a replay buffer that never
                        // returns Pending; give the worker back now and then.
                        tokio::task::consume_budget().await;
                        continue;
                    }
                    return Some(match event_frame(&env) {
                        Ok(frame) => frame,
                        Err(e) => self.fail(&format!("event {} cannot be encoded as JSON: {e}", env.seq)),
                    });
                }
                Ok(FeedItem::Reset { reason, earliest, latest }) => return Some(reset_frame(reason, earliest, latest)),
                Err(e) => return Some(self.fail(&error_chain(&e))),
            }
        }
    }

    /// An `event: error` frame, after which the stream ends: the client sees
    /// why instead of a silent gap.
    fn fail(&mut self, message: &str) -> SseEvent {
        tracing::warn!(error = message, "SSE stream failed");
        self.failed = true;
        SseEvent::default().event("error").data(serde_json::json!({ "error": message }).to_string())
    }
}

fn event_frame<E: Event>(env: &Envelope<E>) -> Result<SseEvent, serde_json::Error> {
    let data = EventData { seq: env.seq.get(), ts: env.ts.as_nanos(), stream: env.stream_str(), event: &env.event };
    Ok(SseEvent::default().id(env.seq.get().to_string()).data(serde_json::to_string(&data)?))
}

/// A reset frame carries, as its `id`, the seq the stream continues after:
/// `latest` for most reasons, the end of the gap for a salvage gap. A
/// browser that reconnects must resume from there rather than from its
/// stale cursor (which would reset again).
fn reset_frame(reason: ResetReason, earliest: Seq, latest: Seq) -> SseEvent {
    let mut data: serde_json::Value = serde_json::json!({ "earliest": earliest.get(), "latest": latest.get() });
    let mut resume = latest;
    let reason = match reason {
        ResetReason::Expired => "expired".into(),
        ResetReason::Ahead => "ahead".into(),
        ResetReason::Gap { first_missing, last_missing } => {
            data["first_missing"] = first_missing.get().into();
            data["last_missing"] = last_missing.get().into();
            resume = last_missing;
            "gap".into()
        }
        ResetReason::EpochMismatch { cursor_epoch, journal_epoch } => {
            data["cursor_epoch"] = cursor_epoch.to_string().into();
            data["journal_epoch"] = journal_epoch.to_string().into();
            "epoch_mismatch".into()
        }
        other => format!("{other:?}").into(),
    };
    data["reason"] = reason;
    SseEvent::default().event("reset").id(resume.get().to_string()).data(data.to_string())
}

/// The default keep-alive interval.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
