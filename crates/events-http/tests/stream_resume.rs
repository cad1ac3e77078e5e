//! `GET /stream` resumes exactly: from `Last-Event-ID` (which wins over
//! `?since=`), from `?since=`, each as an `<epoch>-<seq>` id or a bare seq,
//! across disconnects and reconnects (with the id of the last frame, as a
//! browser does) while a writer appends, with a `?stream=` filter, and from
//! a `FeedReader`.

mod support;

use events::{FeedReader, SyncPolicy};
use support::{Sse, TestEvent, append, feed, id, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_exactly_after_it_and_wins_over_since() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    append(&feed, Some("s1"), 1..=10).await;
    let epoch = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;

    let mut sse = Sse::open(&format!("http://{addr}/stream?since=1"), Some(&id(epoch, 4))).await;
    let first = sse.next().await;
    assert_eq!(first.id, Some(id(epoch, 5)), "{first:?}");
    assert_eq!(
        first.json(),
        serde_json::json!({ "seq": 5, "ts": first.json()["ts"], "stream": "s1", "event": { "n": 5, "pad": "" } })
    );
    assert!(first.json()["ts"].as_u64().is_some_and(|ts| ts > 0), "{first:?}");
    assert_eq!(sse.seqs_in(epoch, 5).await, (6..=10).collect::<Vec<_>>());

    // A bare seq, from an old client or a hand-written request, still
    // works, in the header and in `since`, and gets ids with the epoch.
    let mut bare = Sse::open(&format!("http://{addr}/stream?since=1"), Some("8")).await;
    assert_eq!(bare.seqs_in(epoch, 2).await, vec![9, 10]);
    let mut bare_since = Sse::open(&format!("http://{addr}/stream?since=8"), None).await;
    assert_eq!(bare_since.seqs_in(epoch, 2).await, vec![9, 10]);
    let since = id(epoch, 7);
    let mut full_since = Sse::open(&format!("http://{addr}/stream?since={since}"), None).await;
    assert_eq!(full_since.seqs_in(epoch, 3).await, vec![8, 9, 10]);

    // Then live: the next events arrive, and nothing else in between.
    append(&feed, None, 11..=12).await;
    let live = sse.next().await;
    assert_eq!((live.seq(), live.json()["stream"].clone()), (11, serde_json::Value::Null));
    assert_eq!(sse.next().await.seq(), 12);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_and_latest_choose_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    append(&feed, None, 1..=5).await;
    let addr = serve(events_http::router(feed.reader())).await;

    let mut everything = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(everything.seqs(5).await, vec![1, 2, 3, 4, 5]);
    let mut after_three = Sse::open(&format!("http://{addr}/stream?since=3"), None).await;
    // An empty Last-Event-ID is "no cursor" (a browser's cleared id), so since applies.
    let mut empty_header = Sse::open(&format!("http://{addr}/stream?since=3"), Some("")).await;
    let mut latest = Sse::open(&format!("http://{addr}/stream?since=latest"), None).await;
    latest.start_checkpoint().await;
    assert_eq!(after_three.seqs(2).await, vec![4, 5]);
    assert_eq!(empty_header.seqs(2).await, vec![4, 5]);

    append(&feed, None, 6..=6).await;
    assert_eq!(latest.next().await.seq(), 6, "since=latest starts after the events already there");
    assert_eq!(everything.next().await.seq(), 6);
    feed.close().await.unwrap();
}

/// `since=latest` sends the position it resolved first, as a `checkpoint`
/// frame: a client that drops before its first event (a network blip, a
/// redeploy) and reconnects as a browser does (the same URL, with the last
/// id it got) receives what was appended meanwhile. With nothing to send
/// as `Last-Event-ID`, it had started at a later "now" and missed it, with
/// no reset to say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latest_client_that_reconnects_before_its_first_event_misses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    append(&feed, Some("s1"), 1..=3).await;
    let epoch = feed.epoch();
    let addr = serve(events_http::router(feed.reader())).await;
    for query in ["since=latest", "stream=s1&since=latest"] {
        let latest = feed.latest_seq().get();
        let url = format!("http://{addr}/stream?{query}");
        let mut first = Sse::open(&url, None).await;
        let start = first.next_any().await.expect("a first frame");
        assert_eq!(start.id.as_deref(), Some(id(epoch, latest).as_str()), "{query}");
        assert_eq!(
            (start.event.as_deref(), start.json()),
            (Some("checkpoint"), serde_json::json!({ "seq": latest })),
            "{query}"
        );
        let resume = first.last_id();
        drop(first);
        append(&feed, Some("s1"), latest + 1..=latest + 2).await;
        let mut again = Sse::open(&url, resume.as_deref()).await;
        assert_eq!(again.seqs_in(epoch, 2).await, vec![latest + 1, latest + 2], "{query}");
    }
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_and_reconnect_mid_stream_loses_and_repeats_nothing() {
    const TOTAL: u64 = 600;
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    let addr = serve(events_http::router(feed.reader())).await;
    let writer = {
        let feed = feed.clone();
        tokio::spawn(async move {
            for n in 1..=TOTAL {
                feed.append(None, TestEvent::new(n)).await.unwrap();
                if n % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };

    let url = format!("http://{addr}/stream");
    let epoch = feed.epoch();
    let mut seen: Vec<u64> = Vec::new();
    let mut last_id: Option<String> = None;
    let mut connections = 0;
    while seen.len() < TOTAL as usize {
        let mut sse = Sse::open(&url, last_id.as_deref()).await;
        connections += 1;
        // Read a varying number of frames, then hang up mid-stream.
        let batch = (37 + connections * 13).min(TOTAL as usize - seen.len());
        for _ in 0..batch {
            let frame = sse.next().await;
            assert_eq!(frame.json()["event"]["n"], frame.seq_in(epoch), "payload matches its seq");
            seen.push(frame.seq());
            last_id = frame.id;
        }
    }
    writer.await.unwrap();
    assert!(connections >= 5, "the test reconnected {connections} times");
    assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>());
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_filter_keeps_one_stream_id() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = feed(tmp.path()).await;
    for n in 1..=9 {
        let stream = if n % 3 == 0 { "three" } else { "other" };
        feed.append(Some(stream), TestEvent::new(n)).await.unwrap();
    }
    let addr = serve(events_http::router(feed.reader())).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream?stream=three"), None).await;
    // Checkpoint frames (after a second without a match on a busy machine)
    // only move the cursor: the events are what this test is about.
    let mut events = Vec::new();
    while events.len() < 3 {
        let frame = sse.next().await;
        if frame.event.as_deref() != Some("checkpoint") {
            events.push(frame.seq());
        }
    }
    assert_eq!(events, vec![3, 6, 9]);
    feed.append(Some("other"), TestEvent::new(10)).await.unwrap();
    feed.append(Some("three"), TestEvent::new(11)).await.unwrap();
    let mut frame = sse.next().await;
    while frame.event.as_deref() == Some("checkpoint") {
        frame = sse.next().await;
    }
    assert_eq!((frame.seq(), frame.json()["stream"].as_str()), (11, Some("three")));
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_reader_serves_what_a_writer_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = events::Feed::<TestEvent>::builder(tmp.path()).sync(SyncPolicy::Never).open().await.unwrap();
    append(&feed, None, 1..=3).await;
    let reader: FeedReader<TestEvent> = FeedReader::open(tmp.path()).unwrap();
    let addr = serve(events_http::router(reader)).await;

    let epoch = feed.epoch();
    let mut sse = Sse::open(&format!("http://{addr}/stream"), Some(&id(epoch, 1))).await;
    assert_eq!(sse.seqs_in(epoch, 2).await, vec![2, 3]);
    append(&feed, None, 4..=5).await;
    assert_eq!(sse.seqs_in(epoch, 2).await, vec![4, 5], "the reader follows the writer");
    feed.close().await.unwrap();
}
