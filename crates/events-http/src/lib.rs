//! Serve an [`events`] feed over HTTP: Server-Sent Events that resume from
//! `Last-Event-ID`, a JSON status endpoint, and a live viewer page.
//!
//! This crate sits on top of the façade: [`router`] takes anything that is a
//! [`FeedSource`] — a writer's [`events::Feed`], or an [`events::FeedReader`]
//! following a journal another process writes — and returns an
//! [`axum::Router`] to mount in your server. Every guarantee of
//! `stream_from` carries over the wire: in order, no gap, no duplicate,
//! explicit resets, and a slow client falls back to the journal instead of
//! growing the server's memory.
//!
//! # Routes
//!
//! * `GET /stream` — `text/event-stream`. The cursor is the `Last-Event-ID`
//!   header (a browser's `EventSource` sends it when it reconnects; it wins),
//!   else `?since=<seq>` (or `?since=latest` for new events only), else 0
//!   (everything retained). `?stream=<id>` keeps only events of that stream
//!   id. Frames:
//!   * each event: `id: <seq>` and `data: {"seq":…,"ts":…,"stream":…|null,"event":…}`
//!     — `ts` in unix nanoseconds, `event` encoded with `serde_json`;
//!   * when the cursor cannot be served (pruned by retention, ahead of the
//!     journal, another epoch): `event: reset`, `id: <latest>`, `data:
//!     {"reason":"expired"|"ahead"|"epoch_mismatch","earliest":…,"latest":…}`
//!     (plus `cursor_epoch`/`journal_epoch` as strings for an epoch
//!     mismatch); the stream continues after `latest`. After an operator
//!     salvaged a corrupt journal, `"reason":"gap"` with `first_missing` and
//!     `last_missing`, `id: <last_missing>`, and the stream continues right
//!     after the gap;
//!   * if the journal is corrupt or an event cannot be encoded: `event:
//!     error`, `data: {"error":"…"}`, then the response ends;
//!   * a `: keep-alive` comment after 15 s of silence.
//! * `GET /status` — JSON: `epoch` (a decimal string: a random 64-bit value
//!   does not fit a JavaScript number), `latest_seq`, `earliest_seq`,
//!   `http_clients` (open `/stream` responses) and `stats` (the
//!   [`events::FeedStats`] counters).
//! * anything else — `404` with a one-line explanation. A non-numeric
//!   `Last-Event-ID` or `since` is a `400` ([`RequestError`]).
//!
//! [`viewer`] adds `GET /`, a page that shows the feed live.
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
//! tokio::spawn(events_http::axum::serve(listener, events_http::router(feed.clone())).into_future());
//!
//! // A client that saw seq 2 resumes after it.
//! let response = reqwest::Client::new().get(url).header("Last-Event-ID", "2").send().await?;
//! let mut body = response.bytes_stream();
//! let mut text = String::new();
//! while !text.contains("\n\n") {
//!     text.push_str(std::str::from_utf8(&body.next().await.unwrap()?)?);
//! }
//! assert!(text.starts_with("id: 3\ndata: {\"seq\":3,"), "{text}");
//! assert!(text.contains(r#""stream":"pings","event":3}"#), "{text}");
//! # feed.close().await?; Ok(()) }
//! ```

mod error;
mod router;
mod source;
mod sse;
mod status;
mod viewer;

pub use error::RequestError;
pub use router::{FeedRouter, router};
pub use source::FeedSource;
pub use viewer::{VIEWER_HTML, viewer};

/// The axum version this crate builds on, to mount and serve its router
/// without a version mismatch.
pub use axum;
