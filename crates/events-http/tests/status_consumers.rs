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

async fn status(addr: std::net::SocketAddr) -> serde_json::Value {
    let text = reqwest::get(format!("http://{addr}/status")).await.unwrap().text().await.unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()
}

/// `/status` carries every feed-wide counter the metrics carry (it had 11
/// of them: not `prune_errors`, whose rise means the disk keeps growing,
/// nor `too_large`, `sink_panics`, `duplicates`, `conflicts` or the live
/// output's), each sink's counters, and whether it is served from the
/// writer or from a follower, and whether a writer runs: a follower's
/// counters (no appends, `healthy` true) say nothing of the writer.
#[cfg(feature = "metrics")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_every_counter_each_sink_and_where_it_reads() {
    use events::layers::sink::ChannelSink;
    let tmp = tempfile::tempdir().unwrap();
    let (sink, _delivered) = ChannelSink::<events::Envelope<TestEvent>>::new(16);
    let feed: events::Feed<TestEvent> =
        events::Feed::builder(tmp.path()).named_sink("audit", sink).open().await.unwrap();
    support::append(&feed, None, 1..=3).await;
    let writer = status(support::serve(events_http::router(feed.reader())).await).await;
    let counters = events::metrics::METRIC_NAMES.into_iter().filter(|name| {
        !["events_sink_report_", "events_session_", "events_consumer_"].iter().any(|p| name.starts_with(p))
            && !["events_latest_seq", "events_earliest_seq"].contains(name)
    });
    for name in counters {
        let key = name.trim_start_matches("events_").trim_end_matches("_total");
        assert!(writer["stats"].get(key).is_some(), "{key} ({name}) is not in /status: {}", writer["stats"]);
    }
    assert_eq!((&writer["source"], &writer["writer_running"]), (&json!("writer"), &json!(true)));
    assert_eq!(writer["sinks"][0]["name"], "audit", "{}", writer["sinks"]);
    assert!(writer["sinks"][0].get("queue_dropped").is_some(), "{}", writer["sinks"]);

    assert_eq!(writer["stats"]["appended"], 3, "{}", writer["stats"]);

    let follower: FeedReader<TestEvent> = FeedReader::open(tmp.path()).unwrap();
    let served = status(support::serve(events_http::router(follower)).await).await;
    assert_eq!((&served["source"], &served["writer_running"]), (&json!("follower"), &json!(true)));
    // The follower's own counters: none of the writer's three appends.
    assert_eq!(served["stats"]["appended"], 0, "{}", served["stats"]);
    assert!(served["sinks"].as_array().is_none_or(Vec::is_empty), "{}", served["sinks"]);
    feed.close().await.unwrap();
    let follower: FeedReader<TestEvent> = FeedReader::open(tmp.path()).unwrap();
    let served = status(support::serve(events_http::router(follower)).await).await;
    assert_eq!(served["writer_running"], false, "the writer closed");
}
