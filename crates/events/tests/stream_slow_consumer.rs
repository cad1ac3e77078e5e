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
