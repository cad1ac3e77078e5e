//! `RemoteFeeds` reads a feed that joins the shared stream while it reads
//! from that feed's first message, taken as it is, like a feed present at
//! connect time read from a bare `Seq::ZERO`: no `Expired` reset when the
//! feed's first message is above seq 1 (a replicator started with
//! `start_after`, or a journal pruned before replication began).

mod support;

use std::time::Duration;

use events::FeedItem;
use events_nats::{FeedCursors, RemoteFeeds, Replicator, StreamSpec};
use futures::StreamExt;
use support::{Ev, Server, fill, journal, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_that_joins_while_reading_starts_at_its_first_message_with_no_reset() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let spec = |feed: &str| StreamSpec::shared("LATE", "app").feed(feed);
    let mut x = journal(&tmp.path().join("x"));
    fill(&mut x, 1, 2);
    let replicate_x = Replicator::builder(tmp.path().join("x"), js.clone(), spec("x")).start().await.unwrap();
    within("x", replicate_x.wait_for(2)).await.unwrap();

    let all: RemoteFeeds<Ev> = RemoteFeeds::new(js.clone(), StreamSpec::shared("LATE", "app"));
    let mut items = all.stream_from(&FeedCursors::default()).await.unwrap();
    let mut y = journal(&tmp.path().join("y"));
    fill(&mut y, 1, 15);
    let replicate_y = Replicator::builder(tmp.path().join("y"), js.clone(), spec("y"))
        .start_after(10)
        .poll_interval(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    within("y", replicate_y.wait_for(15)).await.unwrap();

    let mut of_y = Vec::new();
    while of_y.len() < 5 {
        let item = within("the next item", items.next()).await.expect("the stream goes on").unwrap();
        if &*item.feed != "y" {
            continue;
        }
        match item.item {
            FeedItem::Event(env) => of_y.push(env.seq.get()),
            other => panic!("the late feed's first item is {other:?}, not its first event"),
        }
    }
    assert_eq!(of_y, [11, 12, 13, 14, 15]);
    replicate_x.shutdown().await;
    replicate_y.shutdown().await;
}
