//! A writer whose journal failed (here: its directory deleted under it,
//! found by the feed's retention timer) while the application keeps its
//! `Feed` open: an SSE client served by that writer gets every event the
//! writer acknowledged, then one `event: error` frame naming the failure,
//! and the response ends. It had stayed "live" for ever, keep-alives only,
//! with `/status` alone saying the feed was unhealthy.

mod support;

use std::time::Duration;

use events::{Feed, LiveOutput, SyncPolicy};
use support::{Agent, Frame, Sse, TestEvent};

async fn error_then_end(sse: &mut Sse) -> Frame {
    let frame = sse.next().await;
    assert_eq!(frame.event.as_deref(), Some("error"), "{frame:?}");
    assert!(sse.next_or_end().await.is_none(), "the response ends after its error frame");
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_writer_whose_journal_failed_gets_an_error_frame_and_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let feed: Feed<TestEvent> =
        Feed::builder(&dir).sync(SyncPolicy::Never).retention_check(Duration::from_millis(20)).open().await.unwrap();
    support::append(&feed, None, 1..=3).await;
    let addr = support::serve(events_http::router(feed.reader())).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream"), None).await;
    assert_eq!(sse.seqs(3).await, [1, 2, 3]);

    std::fs::remove_dir_all(&dir).unwrap();
    let frame = error_then_end(&mut sse).await;
    let error = frame.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains("deleted or replaced"), "{error}");
    assert!(!feed.stats().healthy && !feed.is_closed());
    let _ = feed.close().await;
}

/// The same for a live-output client (`?live_output=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_output_client_of_a_writer_whose_journal_failed_gets_an_error_frame_and_the_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let feed: Feed<Agent> = Feed::builder(&dir)
        .sync(SyncPolicy::Never)
        .live_output(LiveOutput::new())
        .retention_check(Duration::from_millis(20))
        .open()
        .await
        .unwrap();
    feed.append(None, Agent::Message("hello".into())).await.unwrap();
    let addr = support::serve(events_http::router(feed.reader())).await;
    let mut sse = Sse::open(&format!("http://{addr}/stream?live_output=1"), None).await;
    assert_eq!(sse.next().await.seq(), 1);

    std::fs::remove_dir_all(&dir).unwrap();
    let frame = error_then_end(&mut sse).await;
    assert!(frame.json()["error"].as_str().is_some_and(|e| e.contains("deleted or replaced")), "{frame:?}");
    let _ = feed.close().await;
}
