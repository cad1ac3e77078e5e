//! Shared helpers for the integration tests: a real `nats-server -js` on a
//! free 127.0.0.1 port with a temporary store directory (killed by PID on
//! drop, restartable on the same port and store; `events-testkit`'s
//! `NatsServer`, re-exported as [`Server`]), a 3-node cluster ([`cluster`]),
//! a journal filler, tools to damage a frame on disk, and readers that check
//! a stream message by message (built on `events-testkit`'s `verify_stream`).
//!
//! Invariant: every wait here polls a real condition (a TCP connect, a
//! stream's state) under a deadline; nothing sleeps for a fixed time to
//! "let things settle".

#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    reason = "each test binary uses a different subset of the helpers"
)]

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::Context;
use events::layers::journal::format::{FRAME_HEADER_LEN, HEADER_LEN};
use events::layers::journal::{Journal, JournalOptions, SyncPolicy};
use events::{Bincode, Event};
pub use events_testkit::fs::segments;
use events_testkit::jetstream::MsgId;
pub use events_testkit::nats::{NatsServer as Server, free_port, free_ports, start_nats_server};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

pub mod cluster;
pub mod cut;

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

    /// The journal seq of a record (from its `Nats-Msg-Id`); `None` for a gap marker.
    pub fn seq(&self) -> Option<u64> {
        events_nats::headers::parse_msg_id(self.header("Nats-Msg-Id")?).map(|(_, seq)| seq)
    }
}

/// Every message of stream `name`, in stream order. A sequence between the
/// first and the last with no message (one purged by subject, or deleted)
/// is a hole, not an error.
pub async fn stream_messages(js: &Context, name: &str) -> Vec<StoredMessage> {
    use async_nats::jetstream::stream::LastRawMessageErrorKind;
    let stream = js.get_stream(name).await.unwrap();
    let state = stream.get_info().await.unwrap().state;
    let mut out = Vec::new();
    for stream_seq in state.first_sequence..=state.last_sequence {
        match stream.get_raw_message(stream_seq).await {
            Ok(msg) => out.push(StoredMessage { stream_seq, headers: msg.headers, payload: msg.payload }),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => panic!("reading message {stream_seq} of {name}: {e}"),
        }
    }
    out
}

/// Deletes the messages at stream sequences `seqs` of stream `name` (by
/// hand, as an operator would), each of which must exist.
pub async fn delete_messages(js: &Context, name: &str, seqs: std::ops::RangeInclusive<u64>) {
    let stream = js.get_stream(name).await.unwrap();
    for stream_seq in seqs {
        assert!(stream.delete_message(stream_seq).await.unwrap(), "message {stream_seq} of {name}");
    }
}

/// Checks that stream `name` holds exactly seqs `1..=n` in order, once
/// each, at stream sequences `1..=n`, with the payload of [`payload`] (the
/// journal's epoch is not checked, only the `<seq>` of each message id).
pub async fn verify_stream(js: &Context, name: &str, n: u64) {
    events_testkit::jetstream::verify_stream(js, name, n, MsgId::AnyEpoch, payload).await;
}

/// The journal seqs of the records of `epoch` in stream `name`, in stream
/// order (from each message's `Nats-Msg-Id`).
pub async fn seqs_of_epoch(js: &Context, name: &str, epoch: u64) -> Vec<u64> {
    stream_messages(js, name)
        .await
        .iter()
        .filter_map(|m| events_nats::headers::parse_msg_id(m.header("Nats-Msg-Id")?))
        .filter(|&(e, _)| e == epoch)
        .map(|(_, seq)| seq)
        .collect()
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
            other => panic!("unexpected {other:?} before seq {seq}"),
        }
    }
}

/// Waits until the replicator's task has stopped.
pub async fn stopped(replicator: &events_nats::Replicator) -> events_nats::ReplicationStats {
    within("the replicator stops", async {
        loop {
            let stats = replicator.stats();
            if stats.stopped {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(10)).await; // polling a flag
        }
    })
    .await
}

/// Takes the last writes of stream `name` from the store of a server that
/// is down, as a power loss before the server synced them does: its one
/// message block is cut to `keep_percent` of its length (the last message
/// left torn, most likely) and the block's index removed, so the restarted
/// server rebuilds the stream, its last sequence included, from what is
/// left. (Deleting messages leaves the last sequence where it was.)
pub fn lose_last_writes(store: &Path, name: &str, keep_percent: u64) {
    let msgs = store.join("jetstream").join("$G").join("streams").join(name).join("msgs");
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&msgs).unwrap().map(|e| e.unwrap().path()).collect();
    let blocks: Vec<&std::path::PathBuf> = files.iter().filter(|p| p.extension().is_some_and(|e| e == "blk")).collect();
    let [block] = blocks[..] else { panic!("one message block in {}: {files:?}", msgs.display()) };
    let len = std::fs::metadata(block).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(block).unwrap().set_len(len * keep_percent / 100).unwrap();
    for index in files.iter().filter(|p| p.extension().is_some_and(|e| e == "idx" || e == "fss")) {
        std::fs::remove_file(index).unwrap();
    }
}
