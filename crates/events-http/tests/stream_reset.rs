//! A cursor the journal can no longer serve gets exactly one explicit
//! `event: reset` frame, with `id: <latest>` so a reconnecting browser
//! resumes after it, and the stream then continues live.

mod common;

use common::{Sse, TestEvent};
use events::{Feed, Retention, SyncPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_below_retention_gets_one_reset_then_live_events() {
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
    let (earliest, latest) = (feed.earliest_seq().get(), feed.latest_seq().get());
    assert!(earliest > 2, "retention pruned the start (earliest {earliest})");
    let addr = serve_feed(&feed).await;

    let mut sse = Sse::open(&format!("http://{addr}/stream"), Some("1")).await;
    let reset = sse.next().await;
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(reset.id, Some(latest.to_string()), "a reconnect resumes after the reset");
    assert_eq!(reset.json(), serde_json::json!({ "reason": "expired", "earliest": earliest, "latest": latest }));

    // Exactly one reset: the next frame is the next appended event.
    feed.append(None, TestEvent::new(401)).await.unwrap();
    assert_eq!(sse.next().await.seq(), latest + 1);

    // A cursor inside retention is served normally, without a reset.
    let mut inside = Sse::open(&format!("http://{addr}/stream"), Some(&latest.to_string())).await;
    assert_eq!(inside.next().await.seq(), latest + 1);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_ahead_of_the_journal_gets_an_ahead_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = common::feed(tmp.path()).await;
    common::append(&feed, None, 1..=3).await;
    let addr = serve_feed(&feed).await;

    // The client saw seq 50 of a journal that has since been recreated.
    let mut sse = Sse::open(&format!("http://{addr}/stream"), Some("50")).await;
    let reset = sse.next().await;
    assert_eq!(reset.event.as_deref(), Some("reset"), "{reset:?}");
    assert_eq!(reset.json(), serde_json::json!({ "reason": "ahead", "earliest": 1, "latest": 3 }));
    assert_eq!(reset.id.as_deref(), Some("3"));
    common::append(&feed, None, 4..=4).await;
    assert_eq!(sse.next().await.seq(), 4);
    feed.close().await.unwrap();
}

async fn serve_feed(feed: &Feed<TestEvent>) -> std::net::SocketAddr {
    common::serve(events_http::router(feed.clone())).await
}
