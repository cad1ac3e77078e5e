//! `/status` lists the journal's durable consumers with their persisted
//! checkpoint, lag and pin, from the writer's reader and from a follower
//! serving the same directory (as `events serve` would).

mod support;

use events::{FeedReader, Seq};
use serde_json::json;
use support::TestEvent;

async fn consumers(addr: std::net::SocketAddr) -> serde_json::Value {
    let text = reqwest::get(format!("http://{addr}/status")).await.unwrap().text().await.unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["consumers"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_each_durable_consumer() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    support::append(&feed, None, 1..=5).await;
    let indexer = feed.consumer("indexer").await.unwrap();
    indexer.commit(Seq::new(3)).await.unwrap();
    indexer.flush().await.unwrap();
    let _idle = feed.consumer("audit").await.unwrap();

    // One segment holds the five events: both still have all of it to read.
    let seg = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"));
    let bytes = std::fs::metadata(seg.unwrap()).unwrap().len();
    let expected = json!([
        { "name": "audit", "checkpoint": 0, "lag": 5, "lag_bytes": bytes, "pinned": true, "problem": null },
        { "name": "indexer", "checkpoint": 3, "lag": 2, "lag_bytes": bytes, "pinned": true, "problem": null },
    ]);
    let writer = support::serve(events_http::router(feed.reader())).await;
    assert_eq!(consumers(writer).await, expected);
    let follower: FeedReader<TestEvent> = FeedReader::open(tmp.path()).unwrap();
    let served = support::serve(events_http::router(follower)).await;
    assert_eq!(consumers(served).await, expected, "a follower sees the same consumers");
    feed.close().await.unwrap();
}
