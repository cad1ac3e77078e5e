//! `GET /stream?stream=<id>` sends `event: checkpoint` frames whose id is
//! the seq scanned so far, and a client that reconnects with its last
//! checkpoint id as `Last-Event-ID` gets no duplicate and no reset while
//! unrelated streams churn through retention (issue 16's acceptance test):
//! before it reconnects, and while it reads. A stream id over the limit is
//! a `400`.

mod support;

use std::time::Duration;

use events::{Feed, Retention, SyncPolicy};
use events_http::FeedRouter;
use support::{Frame, Sse, TestEvent, get, id, serve};

/// 1 KiB segments, three kept: a few dozen appends prune segments.
async fn churning_feed(dir: &std::path::Path) -> Feed<TestEvent> {
    Feed::builder(dir)
        .sync(SyncPolicy::Never)
        .segment_bytes(1024)
        .retention(Retention::segments(3))
        .open()
        .await
        .unwrap()
}

/// Appends `count` events of streams `b` and `c`, numbered from `from`.
async fn churn(feed: &Feed<TestEvent>, from: u64, count: u64) {
    for n in from..from + count {
        feed.append(Some(if n % 2 == 0 { "b" } else { "c" }), TestEvent::new(n)).await.unwrap();
    }
}

/// What a filtered client saw.
#[derive(Debug, Default)]
struct Seen {
    /// Seqs of the events of stream `a`.
    events: Vec<u64>,
    /// Every id, events and checkpoints, in order.
    ids: Vec<u64>,
}

impl Seen {
    /// Takes one frame, which must be an event of `a` or a checkpoint in
    /// `epoch`, each id past the previous one. Returns its seq.
    fn take(&mut self, frame: &Frame, epoch: u64) -> u64 {
        let (frame_epoch, seq) = frame.id_parts();
        assert_eq!(frame_epoch, epoch, "{frame:?}");
        match frame.event.as_deref() {
            None => {
                assert_eq!(frame.json()["stream"], "a", "{frame:?}");
                assert_eq!(frame.seq(), seq);
                self.events.push(seq);
            }
            Some("checkpoint") => assert_eq!(frame.json(), serde_json::json!({ "seq": seq }), "{frame:?}"),
            Some(_) => panic!("no reset, no error, only events of a and checkpoints: {frame:?}"),
        }
        if let Some(&last) = self.ids.last() {
            assert!(seq > last, "ids go forward: {seq} after {last}");
        }
        self.ids.push(seq);
        seq
    }

    /// Reads frames until one at `seq` or past it.
    async fn until(&mut self, sse: &mut Sse, epoch: u64, seq: u64) {
        while self.take(&sse.next().await, epoch) < seq {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_client_resumes_from_its_checkpoint_with_no_duplicate_and_no_reset_while_others_churn() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = churning_feed(tmp.path()).await;
    let epoch = feed.epoch();
    let app = FeedRouter::new(feed.reader()).checkpoint_after(Duration::from_millis(20)).build();
    let addr = serve(app).await;
    let url = format!("http://{addr}/stream?stream=a");
    for (n, stream) in ["a", "b", "a", "c", "b"].into_iter().enumerate() {
        feed.append(Some(stream), TestEvent::new(n as u64)).await.unwrap();
    }

    // First connection: a's events 1 and 3, then a checkpoint at 5.
    let mut seen = Seen::default();
    let mut sse = Sse::open(&url, None).await;
    seen.until(&mut sse, epoch, 5).await;
    assert_eq!((seen.events.clone(), seen.ids.clone()), (vec![1, 3], vec![1, 3, 5]));
    let last_id = sse.last_id().unwrap();
    assert_eq!(last_id, id(epoch, 5), "the browser's Last-Event-ID is the checkpoint's");
    drop(sse);

    // Others churn through retention while it is away (a's 1 and 3 go too).
    churn(&feed, 100, 200).await;
    let earliest = feed.earliest_seq().get();
    assert!(earliest > 6 + 40, "retention pruned several segments (earliest {earliest})");

    // Reconnect with the checkpoint id while others go on churning: no reset,
    // no duplicate; then a's next event.
    let churner = {
        let feed = feed.clone();
        tokio::spawn(async move { churn(&feed, 1000, 300).await })
    };
    let mut sse = Sse::open(&url, Some(&last_id)).await;
    let first = sse.next().await;
    assert_eq!(first.event.as_deref(), Some("checkpoint"), "a checkpoint, not a reset: {first:?}");
    seen.take(&first, epoch);
    churner.await.unwrap();
    let a = feed.append(Some("a"), TestEvent::new(2000)).await.unwrap().get();
    seen.until(&mut sse, epoch, a).await;
    assert_eq!(seen.events, [1, 3, a], "a's new event, once");

    // Away again after a checkpoint past more of the others' events.
    churn(&feed, 3000, 10).await;
    let latest = feed.latest_seq().get();
    seen.until(&mut sse, epoch, latest).await;
    let last_id = sse.last_id().unwrap();
    assert_eq!(last_id, id(epoch, latest));
    drop(sse);
    churn(&feed, 4000, 200).await;
    assert!(feed.earliest_seq().get() > latest + 1, "its checkpoint was pruned");
    let b = feed.append(Some("a"), TestEvent::new(5000)).await.unwrap().get();
    let mut sse = Sse::open(&url, Some(&last_id)).await;
    seen.until(&mut sse, epoch, b).await;
    assert_eq!(seen.events, [1, 3, a, b], "no duplicate, no reset, nothing missed");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_id_over_the_limit_is_a_400() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = churning_feed(tmp.path()).await;
    let addr = serve(events_http::router(feed.reader())).await;
    let long = "x".repeat(events::MAX_STREAM_ID_BYTES + 1);
    let response = get(&format!("http://{addr}/stream?stream={long}"), None).await;
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap();
    assert!(body.contains("stream=") && body.contains("257 bytes"), "{body}");
    feed.close().await.unwrap();
}
