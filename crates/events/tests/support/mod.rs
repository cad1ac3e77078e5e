//! Shared helpers for the façade's integration tests: a test event type with
//! durable, ephemeral and terminal variants, and small stream utilities.

#![allow(dead_code, reason = "each test file uses a different subset of the helpers")]

use events::{Durability, Event, Feed, FeedItem, FeedStream, Retention, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// The test event: `Token` is ephemeral, `Done` is terminal, `Msg` carries
/// its own stream id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Ev {
    Msg { n: u64, own_stream: Option<String> },
    Token(u64),
    Done,
}

impl Event for Ev {
    fn durability(&self) -> Durability {
        match self {
            Ev::Token(_) => Durability::Ephemeral,
            _ => Durability::Durable,
        }
    }

    fn stream_id(&self) -> Option<&str> {
        match self {
            Ev::Msg { own_stream, .. } => own_stream.as_deref(),
            _ => None,
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, Ev::Done)
    }
}

/// An event whose `Drop` panics while `armed` (a clone, or one decoded
/// back, is not), on the stream `fragile`: the event type's own code
/// failing wherever the feed drops an event.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Fragile {
    pub(crate) n: u64,
    #[serde(skip)]
    pub(crate) armed: bool,
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        Fragile { n: self.n, armed: false }
    }
}

impl Drop for Fragile {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            panic!("dropping event {}", self.n);
        }
    }
}

impl Event for Fragile {
    fn stream_id(&self) -> Option<&str> {
        Some("fragile")
    }
}

pub(crate) fn msg(n: u64) -> Ev {
    Ev::Msg { n, own_stream: None }
}

/// Takes `count` events from a stream, asserting each item is an event.
pub(crate) async fn take_events(stream: &mut FeedStream<Ev>, count: usize) -> Vec<(Seq, Ev)> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match stream.next().await {
            Some(Ok(FeedItem::Event(env))) => out.push((env.seq, env.event.clone())),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    out
}

/// Asserts the seqs are exactly `from..=to`.
pub(crate) fn assert_contiguous(items: &[(Seq, Ev)], from: u64, to: u64) {
    let seqs: Vec<u64> = items.iter().map(|(s, _)| s.get()).collect();
    let want: Vec<u64> = (from..=to).collect();
    assert_eq!(seqs, want);
}

/// A feed with 1 KiB segments keeping only 2 of them, with `msg(1..=n)`
/// appended: its early seqs are already pruned.
pub(crate) async fn pruned_feed(dir: &std::path::Path, n: u64) -> Feed<Ev> {
    let feed: Feed<Ev> = Feed::builder(dir)
        .sync(SyncPolicy::Never)
        .segment_bytes(1024)
        .retention(Retention::segments(2))
        .open()
        .await
        .unwrap();
    for i in 1..=n {
        feed.append(None, msg(i)).await.unwrap();
    }
    assert!(feed.earliest_seq() > Seq::new(1), "retention pruned nothing");
    feed
}

/// Polls `done` every few milliseconds until it holds, failing with `what`
/// after 10 s. For conditions a background task brings about (a timer, a
/// sink task) that no signal announces.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}");
}

/// Cuts every segment of `dir` back to what a power loss would certainly
/// leave: what its last `fdatasync` through `plan` covered.
pub(crate) fn lose_power(dir: &std::path::Path, plan: &events::layers::journal::fault::FaultPlan) {
    for seg in events_testkit::fs::segments(dir) {
        let keep = plan.synced_len(&seg).unwrap_or(0);
        let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        if file.metadata().unwrap().len() > keep {
            file.set_len(keep).unwrap();
        }
    }
    // The small files rewritten in place hold what their last fdatasync
    // through the plan synced.
    use events::layers::journal::{LEASE_FILE, WATERMARK_FILE};
    for name in [WATERMARK_FILE, LEASE_FILE] {
        let path = dir.join(name);
        if let Some(bytes) = plan.synced_contents(&path) {
            std::fs::write(&path, bytes).unwrap();
        }
    }
}
