//! Shared helpers for the integration tests: a real `nats-server -js` on a
//! free 127.0.0.1 port with a temporary store directory (killed by PID on
//! drop, restartable on the same port and store), a 3-node cluster
//! ([`cluster`]), a journal filler, tools to damage a frame on disk, and
//! readers that check a stream message by message.
//!
//! Invariant: every wait here polls a real condition (a TCP connect, a
//! stream's state) under a deadline; nothing sleeps for a fixed time to
//! "let things settle".

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a different subset of the helpers")]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::{self, Context};
use events::layers::journal::format::{FRAME_HEADER_LEN, HEADER_LEN};
use events::layers::journal::{Journal, JournalOptions, SyncPolicy};
use events::{Bincode, Event};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

pub mod cluster;

/// A free TCP port on 127.0.0.1 (nothing listens on it once returned).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The event the tests replicate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ev {
    pub n: u64,
    pub note: String,
}

impl Event for Ev {}

/// The payload the journal holds for seq `n` (stream "s<n % 7>").
pub fn payload(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let ev = Ev { n, note: format!("event number {n}") };
    events::payload::encode(&Bincode, Some(&format!("s{}", n % 7)), &ev, &mut out).unwrap();
    out
}

/// Appends the records `from..=to` (seq = n) to `journal`.
pub fn fill(journal: &mut Journal, from: u64, to: u64) {
    assert_eq!(journal.next_seq(), from, "the journal must continue at {from}");
    let mut n = from;
    while n <= to {
        let end = (n + 4095).min(to);
        let payloads: Vec<Vec<u8>> = (n..=end).map(payload).collect();
        let range = journal
            .append_batch(payloads.iter().enumerate().map(|(i, p)| (1_000 + n + i as u64, p.as_slice())))
            .unwrap();
        assert_eq!(*range.end(), end);
        n = end + 1;
    }
}

/// A journal without fsync in `dir` (tests measure logic, not disks).
pub fn journal(dir: &Path) -> Journal {
    Journal::open(dir, JournalOptions::new().sync(SyncPolicy::Never)).unwrap().0
}

/// The segment files of `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// The byte offset of the frame of seq `seq` in a segment whose first seq
/// is `first` and whose records were written by [`fill`].
pub fn frame_offset(first: u64, seq: u64) -> u64 {
    let frames: usize = (first..seq).map(|n| FRAME_HEADER_LEN + payload(n).len()).sum();
    (HEADER_LEN + frames) as u64
}

/// Flips one bit of a payload byte of the frame of `seq` (so its checksum
/// fails but its length still leads to the next frame).
pub fn damage_frame(segment: &Path, first: u64, seq: u64) {
    let at = frame_offset(first, seq) as usize + FRAME_HEADER_LEN + 2;
    let mut bytes = std::fs::read(segment).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(segment, bytes).unwrap();
}

/// One message of a stream, as the tests look at it.
#[derive(Debug)]
pub struct StoredMessage {
    pub stream_seq: u64,
    pub headers: async_nats::HeaderMap,
    pub payload: bytes::Bytes,
}

impl StoredMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.as_str())
    }
}

/// Every message of stream `name`, in stream order.
pub async fn stream_messages(js: &Context, name: &str) -> Vec<StoredMessage> {
    let stream = js.get_stream(name).await.unwrap();
    let state = stream.get_info().await.unwrap().state;
    let mut out = Vec::new();
    for stream_seq in state.first_sequence..=state.last_sequence {
        let msg = stream.get_raw_message(stream_seq).await.unwrap();
        out.push(StoredMessage { stream_seq, headers: msg.headers, payload: msg.payload });
    }
    out
}

/// A `nats-server -js` owned by the test.
pub struct Server {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let port = free_port();
        let mut server = Server { child: None, port, store: tempfile::tempdir().unwrap() };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new("nats-server");
        command.args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"]).arg(self.store.path());
        self.child = Some(start_nats_server(command, self.port, "nats-server"));
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL, like a crash; the store directory stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Kill, then start again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub async fn jetstream(&self) -> Context {
        jetstream::new(async_nats::connect(self.url()).await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Checks that stream `name` holds exactly seqs `1..=n` in order, once
/// each, at stream sequences `1..=n`, with the payload of [`payload`].
pub async fn verify_stream(js: &Context, name: &str, n: u64) {
    let stream = js.get_stream(name).await.unwrap();
    let state = stream.get_info().await.unwrap().state;
    assert_eq!((state.messages, state.first_sequence, state.last_sequence), (n, 1, n), "stream state");
    let consumer = stream
        .create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..OrderedConfig::default() })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    for expected in 1..=n {
        let msg = messages.next().await.unwrap().unwrap();
        let headers = msg.message.headers.as_ref().unwrap();
        let seq: u64 = headers.get("Events-Seq").unwrap().as_str().parse().unwrap();
        assert_eq!(seq, expected, "stream sequence {}", msg.info().unwrap().stream_sequence);
        assert_eq!(headers.get("Nats-Msg-Id").unwrap().as_str().split_once('-').unwrap().1, expected.to_string());
        assert_eq!(msg.message.payload.as_ref(), payload(expected).as_slice(), "payload of seq {expected}");
    }
}

/// Bounds a test step so a bug fails the test instead of hanging CI.
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// The next item of a remote stream, within the test's time bound.
pub async fn next_item(items: &mut events_nats::RemoteStream<Ev>) -> events::FeedItem<Ev> {
    within("next remote item", items.next()).await.expect("the remote stream does not end").unwrap()
}

/// Asserts the next items are the events `seqs`, each carrying its own seq as `n`.
pub async fn expect_events(items: &mut events_nats::RemoteStream<Ev>, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        match next_item(items).await {
            events::FeedItem::Event(env) => {
                assert_eq!(env.seq, events::Seq::new(seq));
                assert_eq!(env.event.n, seq);
            }
            events::FeedItem::Reset { reason, .. } => panic!("unexpected reset {reason:?} before seq {seq}"),
        }
    }
}

/// Starts `nats-server` as `command` says and waits until it listens on
/// `port` (panicking, naming `what`, if it exits or takes over 20 s).
pub fn start_nats_server(mut command: Command, port: u16, what: &str) -> Child {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is installed (apt-get install nats-server; `cargo xtask ci` does it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on port {port}");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited with {status}");
        }
        std::thread::sleep(Duration::from_millis(20)); // polling interval of a readiness check
    }
    child
}
