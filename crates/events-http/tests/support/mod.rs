//! Shared helpers of the events-http integration tests: a test event type,
//! a feed in a temporary directory, a server on an ephemeral 127.0.0.1 port,
//! and a minimal Server-Sent Events client over a reqwest body stream.
//!
//! Invariant: every wait is bounded by [`WAIT`], so a broken server fails a
//! test instead of hanging it.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset of these helpers

use std::net::SocketAddr;
use std::time::Duration;

use events::{Durability, Event, Feed, LiveOutput, SyncPolicy};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// The longest any single step of a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The event the tests append; `pad` makes payloads as large as a test needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestEvent {
    pub n: u64,
    pub pad: String,
}

impl Event for TestEvent {}

impl TestEvent {
    pub fn new(n: u64) -> Self {
        TestEvent { n, pad: String::new() }
    }
}

/// The live-output tests' event: streamed tokens (ephemeral) concluded by
/// a message (durable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Agent {
    Token(String),
    Message(String),
}

impl Event for Agent {
    fn durability(&self) -> Durability {
        match self {
            Agent::Token(_) => Durability::Ephemeral,
            Agent::Message(_) => Durability::Durable,
        }
    }
}

/// A feed of [`Agent`] events with live output, in a fresh directory.
pub async fn live_feed(dir: &std::path::Path) -> Feed<Agent> {
    Feed::builder(dir).sync(SyncPolicy::Never).live_output(LiveOutput::new()).open().await.expect("open feed")
}

/// A feed (no fsync: the tests are about HTTP) in a fresh directory.
pub async fn feed(dir: &std::path::Path) -> Feed<TestEvent> {
    Feed::builder(dir).sync(SyncPolicy::Never).open().await.expect("open feed")
}

/// Appends `TestEvent::new(n)` for each `n` in `range` under stream `stream`.
pub async fn append(feed: &Feed<TestEvent>, stream: Option<&str>, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        feed.append(stream, TestEvent::new(n)).await.expect("append");
    }
}

/// The SSE id of `seq` in journal `epoch`, as the server writes it.
pub fn id(epoch: u64, seq: u64) -> String {
    format!("{epoch}-{seq}")
}

/// Serves `app` on an ephemeral 127.0.0.1 port until the test's runtime ends.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// One Server-Sent Events frame, or a comment line block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: Option<String>,
    /// The `retry:` field (milliseconds).
    pub retry: Option<u64>,
}

impl Frame {
    /// The frame's JSON data.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("frame data is not JSON ({e}): {self:?}"))
    }

    /// The `(epoch, seq)` of the frame's id, which must have the
    /// `<epoch>-<seq>` form (decimal).
    pub fn id_parts(&self) -> (u64, u64) {
        let id = self.id.as_deref().unwrap_or_else(|| panic!("frame without id: {self:?}"));
        let parsed = id.split_once('-').and_then(|(epoch, seq)| Some((epoch.parse().ok()?, seq.parse().ok()?)));
        parsed.unwrap_or_else(|| panic!("id {id:?} is not <epoch>-<seq>: {self:?}"))
    }

    /// The seq of an event frame, checked against its JSON.
    pub fn seq(&self) -> u64 {
        assert_eq!(self.event, None, "not an event frame: {self:?}");
        let (_, seq) = self.id_parts();
        assert_eq!(self.json()["seq"], seq, "id and data.seq differ: {self:?}");
        seq
    }

    /// The seq of an event frame whose id must name `epoch`.
    pub fn seq_in(&self, epoch: u64) -> u64 {
        let seq = self.seq();
        assert_eq!(self.id_parts().0, epoch, "the id names another epoch: {self:?}");
        seq
    }
}

/// A streaming `GET /stream` response, parsed frame by frame.
pub struct Sse {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
    last_id: Option<String>,
}

impl Sse {
    /// Opens `url` with an optional `Last-Event-ID`, expecting 200 and
    /// `text/event-stream`.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Sse {
        let response = get(url, last_event_id).await;
        assert_eq!(response.status(), 200, "GET {url}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Sse {
            body: response.bytes_stream().map(|chunk| chunk.map(|b| b.to_vec())).boxed(),
            buffer: String::new(),
            last_id: None,
        }
    }

    /// The next frame, comments included; `None` when the response ended.
    pub async fn next_any(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let frame = parse(&block);
                if frame.id.is_some() {
                    self.last_id.clone_from(&frame.id);
                }
                return Some(frame);
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next()).await.expect("a frame in time")?;
            self.buffer.push_str(std::str::from_utf8(&chunk.expect("body chunk")).expect("UTF-8 body"));
        }
    }

    /// The id of the last frame that had one: what a browser would send as
    /// `Last-Event-ID` if it reconnected now.
    pub fn last_id(&self) -> Option<String> {
        self.last_id.clone()
    }

    /// The `checkpoint` frame a `since=latest` response starts with (the
    /// position it resolved); panics if the next frame is another.
    pub async fn start_checkpoint(&mut self) -> Frame {
        let frame = self.next().await;
        assert_eq!(frame.event.as_deref(), Some("checkpoint"), "since=latest starts with a checkpoint: {frame:?}");
        frame
    }

    /// The next frame a browser dispatches; panics if the response ends or
    /// none comes within [`WAIT`] (keep-alive comments and frames without
    /// data, which a browser does not dispatch, do not count).
    pub async fn next(&mut self) -> Frame {
        self.next_or_end().await.expect("the stream ended")
    }

    /// The next frame a browser dispatches, or `None` when the response
    /// ended; panics if neither happens within [`WAIT`].
    pub async fn next_or_end(&mut self) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next_any()).await.expect("an event frame in time")?;
            if frame.comment.is_none() && !frame.data.is_empty() {
                return Some(frame);
            }
        }
    }

    /// The seqs of the next `count` frames, which must all be events.
    pub async fn seqs(&mut self, count: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.next().await.seq());
        }
        out
    }

    /// The seqs of the next `count` frames, which must all be events whose
    /// ids name `epoch`.
    pub async fn seqs_in(&mut self, epoch: u64, count: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.next().await.seq_in(epoch));
        }
        out
    }
}

/// `GET url` with an optional `Last-Event-ID`, whatever the answer.
pub async fn get(url: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    tokio::time::timeout(WAIT, request.send()).await.expect("response in time").expect("send")
}

fn parse(block: &str) -> Frame {
    let mut frame = Frame::default();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines().filter(|line| !line.is_empty()) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "" => frame.comment = Some(value.to_owned()),
            "id" => frame.id = Some(value.to_owned()),
            "event" => frame.event = Some(value.to_owned()),
            "data" => data.push(value),
            "retry" => frame.retry = Some(value.parse().expect("a retry of milliseconds")),
            other => panic!("unknown SSE field {other:?} in {block:?}"),
        }
    }
    frame.data = data.join("\n");
    frame
}

/// Flips the first payload byte of record `seq` in the journal in `dir`,
/// walking the frames of the segment that holds it (DESIGN §5: a 64-byte
/// segment header, then frames of `N` (u32 LE), crc, seq (u64 LE), ts, then
/// `N` payload bytes). Panics if no segment holds `seq`.
pub fn corrupt_record(dir: &std::path::Path, seq: u64) {
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    for segment in segments {
        let mut bytes = std::fs::read(&segment).unwrap();
        let mut at = 64;
        while at + 24 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let frame_seq = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap());
            if frame_seq == seq {
                assert!(len > 0, "record {seq} has no payload to corrupt");
                bytes[at + 24] ^= 0x01;
                std::fs::write(&segment, &bytes).unwrap();
                return;
            }
            at += 24 + len;
        }
    }
    panic!("no segment in {} holds record {seq}", dir.display());
}
