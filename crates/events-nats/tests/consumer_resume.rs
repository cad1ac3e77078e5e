//! The remote consumer: a feed replicated through the wake sink (the poll
//! interval is an hour, so only the sink can drive it) is read back with
//! `stream_from(cursor)`: resume with no gap and no duplicate, continue
//! live, and explicit resets for another epoch and a cursor ahead of the
//! stream (the reset rules in full: `consumer_reset_rules.rs`).

mod support;

use std::time::Duration;

use events::{Cursor, Feed, FeedItem, ResetReason, Seq, SyncPolicy};
use events_nats::{RemoteFeed, RemoteStream, Replicator, StreamSpec};
use support::{Ev, Server, next_item, within};

fn ev(n: u64) -> Ev {
    Ev { n, note: format!("note {n}") }
}

async fn open_feed(dir: &std::path::Path) -> Feed<Ev> {
    Feed::builder(dir).sync(SyncPolicy::Never).open().await.unwrap()
}

async fn expect_events(items: &mut RemoteStream<Ev>, seqs: std::ops::RangeInclusive<u64>) {
    for seq in seqs {
        match next_item(items).await {
            FeedItem::Event(env) => {
                assert_eq!(env.seq, Seq::new(seq));
                assert_eq!(env.event, ev(seq));
                assert_eq!(env.stream_str(), Some("client"));
            }
            other => panic!("unexpected {other:?} before seq {seq}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_from_a_cursor_then_follows_live() {
    let server = Server::start();
    let js = server.jetstream().await;
    let spec = StreamSpec::new("REMOTE", "feed.remote");
    let dir = tempfile::tempdir().unwrap();
    let feed = open_feed(dir.path()).await;
    // The replicator needs the journal to exist: the feed created it.
    let replicator = Replicator::builder(feed.dir(), js.clone(), spec.clone())
        .poll_interval(Duration::from_secs(3600))
        .stream_ids(events::Bincode)
        .start()
        .await
        .unwrap();
    let feed = {
        feed.close().await.unwrap();
        Feed::builder(dir.path()).sync(SyncPolicy::Never).sink(replicator.sink()).open().await.unwrap()
    };
    for n in 1..=1000 {
        feed.append(Some("client"), ev(n)).await.unwrap();
    }
    within("1000 replicated by wake-ups", replicator.wait_for(1000)).await.unwrap();

    let remote: RemoteFeed<Ev> = RemoteFeed::new(js.clone(), spec.clone());
    let mut items = remote.stream_from(Cursor::new(Seq::new(500), feed.epoch())).await.unwrap();
    expect_events(&mut items, 501..=1000).await;
    // The epoch a cursor saved from these events names.
    assert_eq!(items.epoch(), Some(feed.epoch()));
    for n in 1001..=1010 {
        feed.append(Some("client"), ev(n)).await.unwrap();
    }
    expect_events(&mut items, 1001..=1010).await;

    // From the very start, and from the end (nothing until the next append).
    let mut all = remote.stream_from(Seq::ZERO).await.unwrap();
    assert_eq!(all.epoch(), None, "nothing read yet");
    expect_events(&mut all, 1..=5).await;
    assert_eq!(all.epoch(), Some(feed.epoch()));
    let mut tail = remote.stream_from(Seq::new(1010)).await.unwrap();
    feed.append(Some("client"), ev(1011)).await.unwrap();
    expect_events(&mut tail, 1011..=1011).await;

    // The stream-id header the replicator was told to decode.
    let last = js.get_stream("REMOTE").await.unwrap().get_raw_message(1011).await.unwrap();
    assert_eq!(last.headers.get("Events-Stream").unwrap().as_str(), "client");

    let wrong_epoch = Cursor::new(Seq::new(10), feed.epoch() ^ 1);
    let mut items = remote.stream_from(wrong_epoch).await.unwrap();
    match next_item(&mut items).await {
        FeedItem::Reset { reason: ResetReason::EpochMismatch { journal_epoch, .. }, earliest, latest } => {
            assert_eq!((journal_epoch, earliest, latest), (feed.epoch(), Seq::new(1), Seq::new(1011)));
        }
        other => panic!("expected an epoch reset, got {other:?}"),
    }
    assert_eq!(items.epoch(), Some(feed.epoch()), "the reset moves the reader to the stream's epoch");
    expect_events(&mut items, 1..=3).await; // continues at the oldest available
    feed.append(Some("client"), ev(1012)).await.unwrap();

    let mut ahead = remote.stream_from(Seq::new(5000)).await.unwrap();
    assert!(matches!(next_item(&mut ahead).await, FeedItem::Reset { reason: ResetReason::Ahead, .. }));

    within("1012 replicated", replicator.wait_for(1012)).await.unwrap();
    let stats = replicator.stats();
    assert_eq!((stats.replicated, stats.lag_seqs, stats.errors), (1012, 0, 0), "{stats:?}");
    feed.close().await.unwrap();
    replicator.shutdown().await;
}

/// The `Events-Stream` header is read from the payload without decoding
/// the event: a record of a newer schema version than any type this
/// process knows keeps it. The whole event was decoded as the type the
/// replicator was given, and such a record (a rolling deploy) lost its
/// header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_id_header_does_not_need_the_event_to_decode() {
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Newer {
        n: u64,
        added: String,
    }
    impl events::Event for Newer {
        const VERSION: u32 = 2;
    }
    let server = Server::start();
    let js = server.jetstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut journal = support::journal(dir.path());
    let mut payload = Vec::new();
    events::payload::encode(&events::Bincode, Some("newer"), &Newer { n: 1, added: "x".into() }, &mut payload).unwrap();
    journal.append(0, payload).unwrap();
    let replicator = Replicator::builder(dir.path(), js.clone(), StreamSpec::new("NEWER", "newer"))
        .stream_ids(events::Bincode)
        .start()
        .await
        .unwrap();
    within("the record replicated", replicator.wait_for(1)).await.unwrap();
    let stored = js.get_stream("NEWER").await.unwrap().get_raw_message(1).await.unwrap();
    assert_eq!(stored.headers.get("Events-Stream").map(|v| v.as_str()), Some("newer"));
    replicator.shutdown().await;
}
