//! A journal salvaged by an operator (`RecoveryMode::SkipCorrupt`) has a
//! hole; over SSE it is one `gap` reset frame between the events around it,
//! whose id `<epoch>-<last_missing>` is where the stream goes on, so a
//! client reconnecting with it neither sees the hole again nor skips what
//! follows.

mod support;

use events::{Feed, FeedReader, RecoveryMode, SyncPolicy};
use support::{Sse, TestEvent, id};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_salvaged_hole_is_one_gap_frame_and_its_id_resumes_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::feed(tmp.path()).await;
    support::append(&feed, None, 1..=10).await;
    let epoch = feed.epoch();
    feed.close().await.unwrap();
    support::corrupt_record(tmp.path(), 5);
    let feed: Feed<TestEvent> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Never)
        .recovery(RecoveryMode::SkipCorrupt)
        .open()
        .await
        .expect("salvage");
    assert_eq!(feed.epoch(), epoch, "salvage keeps the journal");
    let addr = support::serve(events_http::router(feed.reader())).await;
    let url = format!("http://{addr}/stream");

    let mut sse = Sse::open(&url, None).await;
    assert_eq!(sse.seqs_in(epoch, 4).await, vec![1, 2, 3, 4]);
    let gap = sse.next().await;
    assert_eq!(gap.event.as_deref(), Some("reset"), "{gap:?}");
    assert_eq!(gap.id, Some(id(epoch, 5)), "the stream goes on after the hole");
    let data = gap.json();
    assert_eq!(
        (&data["reason"], &data["first_missing"], &data["last_missing"]),
        (&"gap".into(), &5.into(), &5.into()),
        "{data}"
    );
    assert_eq!(sse.seqs_in(epoch, 5).await, vec![6, 7, 8, 9, 10]);

    // A browser that lost the connection right after the gap frame
    // reconnects with its id: the events after the hole, once each.
    let mut again = Sse::open(&url, gap.id.as_deref()).await;
    assert_eq!(again.seqs_in(epoch, 5).await, vec![6, 7, 8, 9, 10]);
    support::append(&feed, None, 11..=11).await;
    assert_eq!(again.next().await.seq_in(epoch), 11);
    feed.close().await.unwrap();

    // A server in another process follows the salvaged journal with a
    // `FeedReader`: the same frames.
    let reader: FeedReader<TestEvent> = FeedReader::open(tmp.path()).unwrap();
    let addr = support::serve(events_http::router(reader)).await;
    let mut follower = Sse::open(&format!("http://{addr}/stream"), Some(&id(epoch, 3))).await;
    assert_eq!(follower.seqs_in(epoch, 1).await, vec![4]);
    let gap = follower.next().await;
    assert_eq!((gap.event.as_deref(), gap.id), (Some("reset"), Some(id(epoch, 5))));
    assert_eq!(follower.seqs_in(epoch, 6).await, vec![6, 7, 8, 9, 10, 11]);
}
