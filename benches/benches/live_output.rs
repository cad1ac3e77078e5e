//! Live output latency over SSE, in one run:
//!
//! * `feed/latency live token->SSE`: `Session::emit` of an ephemeral token
//!   on a feed with live output, until an SSE client of
//!   `/stream?live_output=1` (reqwest over loopback) has parsed its frame.
//! * `feed/latency durable append->SSE`: `Feed::append` of a durable event
//!   (`SyncPolicy::Never`), until an SSE client of `/stream` has its frame.
//!
//! One event in flight at a time (the next is sent once the client saw the
//! previous one), so each sample is one end-to-end trip; p50 and p99 of
//! 2,000 samples each (500 in a quick run) after 200 untimed trips, printed
//! for `cargo xtask bench`'s report. Not a criterion bench: criterion times throughput, this is a
//! latency distribution.

#![allow(missing_docs, reason = "a bench binary")]

use std::time::{Duration, Instant};

use events::{Durability, Event, Feed, LiveOutput, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Chat {
    Token(u64),
    Message(u64),
}

impl Event for Chat {
    fn durability(&self) -> Durability {
        match self {
            Chat::Token(_) => Durability::Ephemeral,
            Chat::Message(_) => Durability::Durable,
        }
    }
}

/// Reads SSE frames off a response body, returning each frame's `data:` line.
struct Frames {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Frames {
    async fn open(url: &str) -> Frames {
        let response = reqwest::Client::new().get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        Frames { body: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The `data:` of the next frame that has one (keep-alive comments and
    /// the `checkpoint` frame a `since=latest` stream starts with skipped).
    async fn next_data(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.lines().any(|l| l.trim_end() == "event: checkpoint") {
                    continue;
                }
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                    return data.trim().to_owned();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.body.next()).await.unwrap().unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }
}

/// Round trips of each client before its samples count (connection, buffers, caches).
const WARM_UP: usize = 200;

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (p(0.5), p(0.99))
}

fn main() {
    // `cargo bench` passes criterion-style arguments; a filter that does
    // not name this bench skips it.
    if std::env::args().any(|a| a == "--list") || events_benches::filtered_out(&["feed/latency", "live_output"]) {
        return;
    }
    let n = if events_benches::quick() { 500 } else { 2_000 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (live, durable) = rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let feed: Feed<Chat> =
            Feed::builder(tmp.path()).sync(SyncPolicy::Never).live_output(LiveOutput::new()).open().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = events_http::router(feed.reader());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let session = feed.session("bench");

        let mut plain = Frames::open(&format!("http://{addr}/stream?since=latest")).await;
        let mut durable_samples = Vec::with_capacity(n);
        for i in 0..(n + WARM_UP) as u64 {
            let started = Instant::now();
            feed.append(Some("bench"), Chat::Message(i)).await.unwrap();
            let data = plain.next_data().await;
            if i >= WARM_UP as u64 {
                durable_samples.push(started.elapsed());
            }
            assert!(data.contains(&format!("\"Message\":{i}")), "{data}");
        }
        drop(plain);

        let mut live = Frames::open(&format!("http://{addr}/stream?live_output=1&since=latest")).await;
        let mut live_samples = Vec::with_capacity(n);
        for i in 0..(n + WARM_UP) as u64 {
            let started = Instant::now();
            session.emit(Chat::Token(i)).await.unwrap();
            let data = live.next_data().await;
            if i >= WARM_UP as u64 {
                live_samples.push(started.elapsed());
            }
            assert!(data.contains(&format!("\"Token\":{i}")), "{data}");
        }
        feed.close().await.unwrap();
        (percentiles(live_samples), percentiles(durable_samples))
    });
    println!(
        "feed/latency live token->SSE (Session::emit, live_output=1): p50 {:.1} us, p99 {:.1} us, n={n}",
        live.0, live.1
    );
    println!(
        "feed/latency durable append->SSE (Feed::append, no fsync): p50 {:.1} us, p99 {:.1} us, n={n}",
        durable.0, durable.1
    );
}
