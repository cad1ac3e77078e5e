//! A cursor the journal can no longer serve gets exactly one explicit
//! `event: reset` frame whose id, `<epoch>-<earliest - 1>`, is where the
//! stream goes on: with the oldest retained event, then live. A bare seq
//! cursor (an old client) gets the same resets. No cursor at all asks for
//! everything retained and gets it without a reset. A reader whose policy
//! goes on after `latest` (`OnExpired::Latest`) names `latest` instead, so
//! a client that reconnects does not get the skipped range.

mod support;

use events::{Feed, OnExpired, Retention, SyncPolicy};
use support::{Sse, TestEvent, id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_below_retention_gets_one_reset_then_the_oldest_events_then_live_ones() {
    let tmp = tempfile::tempdir().unwrap();
    // Tiny segments and two kept: most of the first events are pruned.
    let feed: Feed<TestEvent> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Never)
        .segment_bytes(4096)
        .retention(Retention::segments(2))
        .open()
        .await
        .unwrap();
    for n in 1..=400 {
        feed.append(None, TestEvent { n, pad: "x".repeat(64) }).await.unwrap();
    }
    let (earliest, latest, epoch) = (feed.earliest_seq().get(), feed.latest_seq().get(), feed.epoch());
    assert!(earliest > 2, "retention pruned the start (earliest {earliest})");
    let addr = serve_feed(&feed).await;

    for cursor in [id(epoch, 1), "1".to_owned()] {
        let mut sse = Sse::open(&format!("http://{addr}/stream"), Some(&cursor)).await;
        let reset = sse.next().await;
        assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
        assert_eq!(reset.id, Some(id(epoch, earliest - 1)), "a reconnect resumes before the oldest event");
        assert_eq!(reset.json(), serde_json::json!({ "reason": "expired", "earliest": earliest, "latest": latest }));
        // Exactly one reset: then everything retained, in order.
        let count = usize::try_from(latest - earliest + 1).unwrap();
        assert_eq!(sse.seqs_in(epoch, count).await, (earliest..=latest).collect::<Vec<_>>(), "cursor {cursor}");
    }

    // No cursor (or `?since=0`) asks for everything retained: no reset, the
    // oldest retained event first.
    let count = usize::try_from(latest - earliest + 1).unwrap();
    for url in [format!("http://{addr}/stream"), format!("http://{addr}/stream?since=0")] {
        let mut sse = Sse::open(&url, None).await;
        let first = sse.next().await;
        assert_eq!(first.event, None, "{url}: the first frame is an event, not a reset: {first:?}");
        assert_eq!(first.seq_in(epoch), earliest, "{url}");
        assert_eq!(sse.seqs_in(epoch, count - 1).await, (earliest + 1..=latest).collect::<Vec<_>>(), "{url}");
    }

    // A cursor inside retention is served normally, without a reset.
    let mut inside = Sse::open(&format!("http://{addr}/stream"), Some(&id(epoch, latest))).await;

    // Under `OnExpired::Latest` the stream goes on after `latest`, and the
    // reset's id says so (it said `earliest - 1`, and a client reconnecting
    // with it got the range the policy skipped).
    let skipping = support::serve(events_http::router(feed.reader().on_expired(OnExpired::Latest))).await;
    let mut after_latest = Sse::open(&format!("http://{skipping}/stream"), Some(&id(epoch, 1))).await;
    let reset = after_latest.next().await;
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(reset.id, Some(id(epoch, latest)), "a reconnect resumes after latest, as the stream does");

    feed.append(None, TestEvent::new(401)).await.unwrap();
    assert_eq!(inside.next().await.seq_in(epoch), latest + 1);
    assert_eq!(after_latest.next().await.seq_in(epoch), latest + 1);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_ahead_of_the_journal_gets_an_ahead_reset_then_the_journal_from_its_start() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    support::append(&feed, None, 1..=3).await;
    let epoch = feed.epoch();
    let addr = serve_feed(&feed).await;

    // The client says it saw seq 50 of this very journal, which never had it.
    let mut sse = Sse::open(&format!("http://{addr}/stream"), Some(&id(epoch, 50))).await;
    let reset = sse.next().await;
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(reset.json(), serde_json::json!({ "reason": "ahead", "earliest": 1, "latest": 3 }));
    assert_eq!(reset.id, Some(id(epoch, 0)));
    assert_eq!(sse.seqs_in(epoch, 3).await, vec![1, 2, 3]);
    support::append(&feed, None, 4..=4).await;
    assert_eq!(sse.next().await.seq_in(epoch), 4);
    feed.close().await.unwrap();
}

async fn serve_feed(feed: &Feed<TestEvent>) -> std::net::SocketAddr {
    support::serve(events_http::router(feed.reader())).await
}
