//! Serve an [`events`] feed over HTTP: Server-Sent Events that resume from
//! `Last-Event-ID`, a JSON status endpoint, and a live viewer page.
//!
//! This crate sits on top of the façade: [`router`] takes the façade's one
//! read handle, an [`events::FeedReader`] — a writer's
//! [`Feed::reader`](events::Feed::reader), or [`FeedReader::open`](events::FeedReader::open)
//! on a journal another process writes — and returns an [`axum::Router`] to
//! mount in your server. Every guarantee of
//! `stream_from` carries over the wire: in order, no gap, no duplicate,
//! explicit resets, and a slow client falls back to the journal instead of
//! growing the server's memory.
//!
//! ```toml
//! [dependencies]
//! events = { git = "https://example.invalid/events" }
//! events-http = { git = "https://example.invalid/events" }
//! axum = "0.8"
//! tokio = { version = "1", features = ["macros", "net", "rt-multi-thread"] }
//! ```
//!
//! # Routes
//!
//! * `GET /stream` — `text/event-stream`. Every event id and cursor has the
//!   form `<epoch>-<seq>`, both decimal (the same shape as the
//!   `Nats-Msg-Id` of `events-nats`): the journal's epoch changes when its
//!   directory is recreated, so a cursor of an older journal is detected.
//!   The cursor is the `Last-Event-ID` header (a browser's `EventSource`
//!   sends it when it reconnects), else `?since=` — an id, or `latest` for
//!   new events only (with `live_output=1`, after the newest token too:
//!   `FeedReader::stream_live_latest`) — else everything retained. Both accept a bare
//!   `<seq>` too, for old clients and hand-written requests; it is taken to
//!   belong to the epoch served when the request arrives. **Precedence:**
//!   both are checked and a malformed value in either is a `400`
//!   ([`RequestError`]), even when the other is valid; of two valid values
//!   `Last-Event-ID` wins (an empty header counts as absent). A repeated
//!   header or parameter, and a parameter other than `since`, `stream`,
//!   `live_output` and `lastEventId`, are a `400` too: served as if absent,
//!   they would start the stream somewhere the client did not ask for.
//!   `?lastEventId=` (what EventSource polyfills send on a reconnect) counts
//!   as the header when there is none (an empty one counts as absent);
//!   both are checked, and of two valid values the header wins (a page that
//!   put `lastEventId` in its `EventSource`'s URL gets that URL again on
//!   every reconnect, the newer id in the header).
//!   `?stream=<id>` keeps only events of that stream id (an empty id, or
//!   one over [`events::MAX_STREAM_ID_BYTES`], is a `400`), and adds checkpoint
//!   frames so that the client's cursor moves past other streams' events
//!   (see below); such a client is reset by retention only when events of
//!   its own stream were pruned (the façade's
//!   [`FeedReader::stream_filtered`](events::FeedReader::stream_filtered)).
//!   `?live_output=1` (or `true`; `0`/`false`, the default, is off) adds
//!   live output, the façade's
//!   [`FeedReader::stream_live`](events::FeedReader::stream_live): the
//!   recent ephemeral events (streamed tokens) interleaved with the durable
//!   events in emit order, with `?stream=<id>` too. Only a reader of a feed
//!   opened with [`FeedBuilder::live_output`](events::FeedBuilder::live_output),
//!   served in the writer's process, has them (the ring is in the writer's
//!   memory); asking another server, or another value (an empty one, a
//!   bare `?live_output`, too), is a `400`. The
//!   cursor may then point inside a response, `<epoch>-<seq>.<index>`
//!   (below), and resuming there yields the rest of it with no duplicate.
//!   Frames:
//!   * with `since=latest`, first: `event: checkpoint`, `id: <epoch>-<seq>`
//!     (`<epoch>-<seq>.<index>` with `live_output=1`), `data: {"seq":…}`
//!     (and `"index":…` inside a response): the position `latest` resolved
//!     to. A browser's `EventSource` takes it as its last event id, so a
//!     client that drops before its first event resumes there, and a page
//!     that listens for `checkpoint` learns it too (the viewer reconnects
//!     from it after its browser gave up). It names no event: a client
//!     skips it as it skips the `?stream=` checkpoints below;
//!   * each event: `id: <epoch>-<seq>` and `data: {"seq":…,"ts":…,"stream":…|null,"event":…}`
//!     — `ts` in unix nanoseconds (past 2^53: JavaScript's `JSON.parse`
//!     rounds it to a multiple of 256 ns; languages with 64-bit integers
//!     read it exactly), `event` encoded with `serde_json`, and `"id":…`
//!     before `event` for an event appended with an event id;
//!   * when the cursor cannot be served: `event: reset`, `data:
//!     {"reason":…,"earliest":…,"latest":…}`, and as its `id` the cursor
//!     the stream continues after, in the journal's epoch. For `"expired"`
//!     (pruned by retention), `"ahead"` (past the journal's end) and
//!     `"epoch_mismatch"` (the cursor names another epoch: the directory
//!     was recreated; `data` adds `cursor_epoch` and `journal_epoch` as
//!     strings) the stream continues with the oldest retained event,
//!     `earliest`, so the id is `<epoch>-<earliest - 1>` and a client
//!     should treat what follows as a new history. After an operator
//!     salvaged a corrupt journal, `"gap"` adds `first_missing` and
//!     `last_missing`, the id is `<epoch>-<last_missing>`, and the stream
//!     continues right after the gap. When the directory is recreated
//!     under a server that follows it with an [`events::FeedReader`], its
//!     connected clients get an `epoch_mismatch` reset too, then the new
//!     journal. No cursor asks for everything retained: it is never
//!     `"expired"` while it is still at 0, until the stream first catches up. What an expired cursor gets is the served reader's
//!     [`OnExpired`](events::OnExpired) policy: the default continues at
//!     `earliest` as above; `Latest` continues after `latest`, and the
//!     reset's id is then `<epoch>-<latest>`; `Fail` sends
//!     the `error` frame below instead;
//!   * an event the served reader cannot decode, under its
//!     [`OnUndecodable::Skip`](events::OnUndecodable::Skip) policy: `event:
//!     undecodable`, `id: <epoch>-<seq>`, `data: {"seq":…,"version":…,"error":"…"}`,
//!     and the stream goes on (under the default `Fail` policy, the `error`
//!     frame below); so does, under the same policy, an event the reader
//!     decodes but that cannot go out as JSON (its `Serialize` fails or
//!     panics), with `id: <epoch>-<seq>` (`<epoch>-<seq>.<index>` for an
//!     ephemeral one) and `data: {"seq":…,"index":…,"stream":…|null,"error":"…"}`;
//!   * with `?live_output=1` only, each ephemeral event: `event: ephemeral`,
//!     `id: <epoch>-<seq>.<index>` (its place after durable event `seq`:
//!     counted from 1, or, for a writer that reopened the journal, in the
//!     latest seq's run, from a base of its own, a multiple of 2^24), `data: {"seq":…,"index":…,"ts":…,"stream":…|null,"event":…}`.
//!     Durable events keep the frame above (no `event:` field, no `index`).
//!     When the writer's ring no longer holds what the cursor needs (its
//!     limits removed it, or the writer restarted): one `event: reset` with
//!     `"reason":"live_output_expired"`, and the stream goes on with the
//!     next durable event, `earliest` (durable events are never skipped
//!     for this reason);
//!   * with `?stream=<id>` (besides the `since=latest` start above): `event: checkpoint`, `id: <epoch>-<seq>`,
//!     `data: {"seq":…}` — every event up to `seq` was scanned and those of
//!     the stream were sent before it, so a browser that stores the id as
//!     its `Last-Event-ID` resumes after it with no duplicate and no gap.
//!     One comes once the feed has nothing more ready after skipping other
//!     streams' events ([`FeedRouter::checkpoint_after`] later, 1 s by
//!     default), after every 1024 skipped events, after a catch-up jumped
//!     over sealed segments whose per-stream index holds nothing of the
//!     stream, and instead of a reset when only other streams' events were
//!     pruned after the cursor. A
//!     client that does not listen for `checkpoint` events loses nothing:
//!     `EventSource` still records the id;
//!   * if the journal is corrupt, an event cannot be encoded, an expired
//!     cursor meets the `Fail` policy, or the served writer failed (a
//!     journal I/O error, its directory replaced; after every event it
//!     acknowledged): `event: error`, `retry: 30000` (a
//!     browser's `EventSource` waits 30 s, not its default few seconds,
//!     before it asks again from the same cursor, which most such errors
//!     meet again), `data: {"error":"…"}`, then the response ends;
//!   * a `: keep-alive` comment after 15 s of silence;
//!   * first, sent at once, a frame of `retry: 3000` alone (for
//!     `since=latest`, the `checkpoint` above carries it), which a browser
//!     dispatches nothing for: a browser keeps the last `retry:` it got for
//!     every later reconnect, so this sets the delay back after an earlier
//!     response's error frame, even when this response is cut before any
//!     event.
//!
//!   A response ends when its feed is closed, when the router's
//!   [`StreamCloser`] closes ([`FeedRouter::closer`], for a graceful
//!   shutdown: a follower's streams never end by themselves; after that
//!   a request gets an event stream that ends at once, and a browser's
//!   `EventSource` reconnects later, with its last id, to whatever serves
//!   next), or when its client stopped reading: a frame waited
//!   [`FeedRouter::stall_timeout`] (60 s by default) for the connection to
//!   take it; its stream and what that holds are freed then, and the
//!   client resumes from its last id when it reads again. A request beyond
//!   [`FeedRouter::max_clients`] (no limit by default) is a `503` with
//!   `Retry-After: 5`.
//! * `GET /status` — JSON: `epoch` (a decimal string: a random 64-bit value
//!   does not fit a JavaScript number; the journal's current epoch, followed
//!   across a recreated directory), `latest_seq`, `earliest_seq`,
//!   `latest_id` (`<epoch>-<latest_seq>`, a `since` that starts after the
//!   latest event), `http_clients` (open `/stream` responses), `stats`
//!   (the [`events::FeedStats`] counters, with `healthy` and `problem`:
//!   `false` and why, once the writer failed, or while a follower cannot
//!   read the journal, its positions then the last it read) and `consumers` (each durable
//!   consumer's `name`, `checkpoint`, `lag`, `lag_bytes`, `pinned` and `problem`, as
//!   [`events::ConsumerReport`] has them).
//! * `GET /metrics` — only when asked for with `FeedRouter::metrics` or
//!   `FeedRouter::metrics_handle` (`metrics` feature): the Prometheus
//!   text exposition format (`text/plain; version=0.0.4`), with the series
//!   `events::metrics` documents (every one labelled `feed="<name>"`) and
//!   the gauge `events_http_clients` (open `/stream` responses), refreshed
//!   from the feed's stats at every scrape. By default the router keeps a
//!   Prometheus recorder of its own and installs no global recorder, so two
//!   routers in one process never mix their series; an application with
//!   its own installed recorder passes its handle to `metrics_handle` to
//!   serve everything from one route.
//! * another method on these paths — `405` with an `Allow` header and a
//!   one-line explanation; any other path — `404` with a one-line
//!   explanation that names the routes and the viewer page.
//!
//! [`viewer`] adds `GET /`, a page that shows the feed live; opened as
//! `/?live_output=1` it streams tokens into the message they belong to
//! ([`VIEWER_HTML`] describes its parameters).
//!
//! # Example
//!
//! ```
//! use events::{Event, Feed};
//! use futures::StreamExt;
//! # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping(u32);
//! # impl Event for Ping {}
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! let feed: Feed<Ping> = Feed::builder(tmp.path()).open().await?;
//! for n in 1..=3 {
//!     feed.append(Some("pings"), Ping(n)).await?;
//! }
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}/stream", listener.local_addr()?);
//! tokio::spawn(events_http::axum::serve(listener, events_http::router(feed.reader())).into_future());
//!
//! // A client that saw seq 2 of this journal resumes after it.
//! let last_event_id = format!("{}-2", feed.epoch());
//! let response = reqwest::Client::new().get(url).header("Last-Event-ID", last_event_id).send().await?;
//! let mut body = response.bytes_stream();
//! let mut text = String::new();
//! while text.matches("\n\n").count() < 2 {
//!     text.push_str(std::str::from_utf8(&body.next().await.unwrap()?)?);
//! }
//! // The first frame sets the reconnect delay; the next is event 3.
//! let event = text.strip_prefix("retry: 3000\n\n").expect("the reconnect delay first");
//! let id = format!("id: {}-3\n", feed.epoch());
//! assert!(event.starts_with(&format!("{id}data: {{\"seq\":3,")), "{text}");
//! assert!(text.contains(r#""stream":"pings","event":3}"#), "{text}");
//! # feed.close().await?; Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod cursor;
mod error;
#[cfg(feature = "metrics")]
mod exporter;
mod fallback;
#[cfg(feature = "metrics")]
mod metrics;
mod router;
mod sse;
mod stall;
mod state;
mod status;
mod viewer;

pub use error::RequestError;
pub use router::{FeedRouter, StreamCloser, router};
pub use viewer::{VIEWER_HTML, viewer};

/// The axum version this crate builds on, to mount and serve its router
/// without a version mismatch.
pub use axum;
