//! A consumer deliberately slower than the producer, with a tiny live tail:
//! it must fall back to the journal (counted in `lagged_fallbacks`) and still
//! see every event once, in order, then catch up with live.

mod support;

use events::{Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg};

const EVENTS: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_sees_everything_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .live_capacity(4)
        .segment_bytes(256 << 10)
        .open()
        .await
        .unwrap();
    let mut stream = feed.stream_from(Seq::ZERO);
    let producer = {
        let feed = feed.clone();
        tokio::spawn(async move {
            for n in 1..=EVENTS {
                if n.is_multiple_of(1000) {
                    feed.append(None, msg(n)).await.unwrap();
                } else {
                    feed.inbox().forward(None, msg(n)).await.unwrap();
                }
            }
        })
    };
    let mut expected = 1u64;
    while expected <= EVENTS {
        let item = stream.next().await.expect("stream ended early").unwrap();
        let FeedItem::Event(env) = item else { panic!("unexpected reset at {expected}") };
        assert_eq!(env.seq, Seq::new(expected), "gap or duplicate");
        assert_eq!(env.event, msg(expected));
        expected += 1;
        if expected.is_multiple_of(64) {
            // Slower than the producer: give it the CPU.
            tokio::task::yield_now().await;
        }
    }
    producer.await.unwrap();
    assert!(feed.stats().lagged_fallbacks > 0, "the consumer never lagged: the test did not exercise the fallback");

    // Caught up: the next event arrives live.
    feed.append(None, msg(EVENTS + 1)).await.unwrap();
    let FeedItem::Event(env) = stream.next().await.unwrap().unwrap() else { panic!() };
    assert_eq!(env.seq, Seq::new(EVENTS + 1));
    feed.close().await.unwrap();
}

/// Events alive now: made, cloned or decoded, and not yet dropped.
static BIG_ALIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

/// A 64 KiB event that counts its live instances (its bytes written and
/// read as one byte buffer, not byte by byte).
#[derive(Debug)]
struct Big(Vec<u8>);

impl serde::Serialize for Big {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl Big {
    fn new(n: u8) -> Self {
        BIG_ALIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Big(vec![n; 64 << 10])
    }
}

impl Clone for Big {
    fn clone(&self) -> Self {
        BIG_ALIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Big(self.0.clone())
    }
}

impl Drop for Big {
    fn drop(&mut self) {
        BIG_ALIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl<'de> serde::Deserialize<'de> for Big {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        let bytes = d.deserialize_byte_buf(Bytes)?;
        BIG_ALIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Big(bytes))
    }
}

impl events::Event for Big {}

/// A stream that stopped taking events (an SSE client that stopped
/// reading) in the middle of a catch-up of large events holds a few MiB
/// of them decoded (its chunk and the one read ahead, about 4 MiB of
/// records each), not two chunks of 4,096 events whatever their size:
/// 400 events of 64 KiB (25 MiB) had all been decoded and held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_catch_up_holds_a_bounded_number_of_bytes() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Big> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 0..400u32 {
        feed.append(None, Big::new(n as u8)).await.unwrap();
    }
    feed.close().await.unwrap();
    // Nothing of the writer's is alive now: the reader's decodes are all.
    let before = BIG_ALIVE.load(Ordering::SeqCst);
    let reader = events::FeedReader::<Big>::open(dir.path()).unwrap();
    let mut stream = reader.stream_from(Seq::ZERO);
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(&first, FeedItem::Event(env) if env.seq.get() == 1));
    drop(first);
    // Give the read ahead time to finish.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let alive = BIG_ALIVE.load(Ordering::SeqCst) - before;
    // 4 MiB / (64 KiB + headers): 63 records per chunk, two chunks.
    assert!(alive <= 2 * 64, "{alive} events of 64 KiB held decoded by a stalled stream");
    // And the stream still delivers every event, in order.
    let mut next = 2;
    while next <= 400 {
        match stream.next().await.unwrap().unwrap() {
            FeedItem::Event(env) => assert_eq!(env.seq.get(), next),
            other => panic!("{other:?}"),
        }
        next += 1;
    }
}
