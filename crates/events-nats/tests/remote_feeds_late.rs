//! `RemoteFeeds` reads a feed that joins the shared stream while it reads
//! from that feed's first message, taken as it is, like a feed present at
//! connect time read from a bare `Seq::ZERO`: no `Expired` reset when the
//! feed's first message is above seq 1 (a replicator started with
//! `start_after`, or a journal pruned before replication began); a gap
//! marker first is reported as the `Reset { Gap }` a local reader gives.

mod support;

use std::time::Duration;

use events::layers::journal::{Journal, JournalOptions, RecoveryMode, SyncPolicy};
use events::{FeedItem, ResetReason};
use events_nats::{FeedCursors, FeedsItem, RemoteFeeds, Replicator, StreamSpec};
use futures::StreamExt;
use support::{Ev, Server, damage_frame, fill, journal, segments, within};

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

    // A late feed whose journal lost its first record to a salvage: its
    // first message is a gap marker, reported as a local reader would.
    let z_dir = tmp.path().join("z");
    let mut z = journal(&z_dir);
    fill(&mut z, 1, 5);
    z.close().unwrap();
    damage_frame(&segments(&z_dir)[0], 1, 1);
    let salvage = JournalOptions::new().sync(SyncPolicy::Never).recovery(RecoveryMode::SkipCorrupt);
    Journal::open(&z_dir, salvage).unwrap().0.close().unwrap();
    let replicate_z = Replicator::builder(&z_dir, js.clone(), spec("z")).start().await.unwrap();
    within("z", replicate_z.wait_for(5)).await.unwrap();
    let mut of_z = Vec::new();
    while of_z.len() < 5 {
        let item = within("the next item", items.next()).await.expect("the stream goes on").unwrap();
        if &*item.feed == "z" {
            of_z.push(item.item);
        }
    }
    assert!(
        matches!(&of_z[0], FeedItem::Reset { reason: ResetReason::Gap { first_missing, last_missing }, .. }
            if (first_missing.get(), last_missing.get()) == (1, 1)),
        "{:?}",
        of_z[0]
    );
    let seqs: Vec<u64> = of_z[1..]
        .iter()
        .map(|i| match i {
            FeedItem::Event(env) => env.seq.get(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, [2, 3, 4, 5]);
    replicate_x.shutdown().await;
    replicate_y.shutdown().await;
    replicate_z.shutdown().await;
}

/// A message some other publisher put on a subject of the prefix
/// (`app.zz`, no replicator headers) when a `RemoteFeeds` reader starts:
/// that subject is read from its first message, taken as it is, the
/// message an error item naming it, and every feed is read. Planned as a
/// feed from a bare 0, its first message had failed the whole reader with
/// `BadMessage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_subject_of_the_prefix_does_not_fail_the_other_feeds() {
    let server = Server::start();
    let js = server.jetstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut x = journal(&tmp.path().join("x"));
    fill(&mut x, 1, 3);
    let spec = StreamSpec::shared("FOREIGN", "app").feed("x");
    let replicate_x = Replicator::builder(tmp.path().join("x"), js.clone(), spec).start().await.unwrap();
    within("x", replicate_x.wait_for(3)).await.unwrap();
    js.publish("app.zz", "not a replicated record".into()).await.unwrap().await.unwrap();

    let all: RemoteFeeds<Ev> = RemoteFeeds::new(js.clone(), StreamSpec::shared("FOREIGN", "app"));
    let mut items = all.stream_from(&FeedCursors::default()).await.unwrap();
    let (mut of_x, mut errors) = (Vec::new(), Vec::new());
    while of_x.len() < 3 || errors.is_empty() {
        match within("the next item", items.next()).await.expect("the stream goes on") {
            Ok(FeedsItem { feed, item: FeedItem::Event(env), .. }) if &*feed == "x" => of_x.push(env.seq.get()),
            Ok(other) => panic!("{other:?}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert_eq!(of_x, [1, 2, 3]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("stream FOREIGN, message 4"), "{errors:?}");
}
