//! Explicit resets: a cursor below retention yields one `Reset { Expired }`;
//! a cursor ahead of a recreated journal yields `Reset { Ahead }`; a cursor
//! from another epoch yields `Reset { EpochMismatch }`. After each, the
//! stream goes on with the earliest retained event, then live.

mod support;

use events::{Cursor, Feed, FeedItem, ResetReason, Seq};
use futures::StreamExt;
use support::{Ev, msg, pruned_feed, take_events};

async fn next_item(s: &mut events::FeedStream<Ev>) -> FeedItem<Ev> {
    s.next().await.expect("stream ended").expect("stream error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_below_retention_resets_then_continues_live() {
    let dir = tempfile::tempdir().unwrap();
    let feed = pruned_feed(dir.path(), 500).await;
    let earliest = feed.earliest_seq();

    let mut s = feed.stream_from(Seq::new(1));
    let FeedItem::Reset { reason, earliest: e, latest } = next_item(&mut s).await else { panic!("expected a reset") };
    assert_eq!(reason, ResetReason::Expired);
    assert_eq!(e, earliest);
    assert_eq!(latest, Seq::new(500));
    feed.append(None, msg(501)).await.unwrap();
    let got = take_events(&mut s, (502 - earliest.get()) as usize).await;
    assert_eq!(got.iter().map(|e| e.0.get()).collect::<Vec<_>>(), (earliest.get()..=501).collect::<Vec<_>>());
    assert_eq!(got.last().unwrap().1, msg(501));

    // A cursor just inside the window is served without a reset.
    let mut inside = feed.stream_from(earliest.prev().unwrap());
    let first = take_events(&mut inside, 1).await;
    assert_eq!(first[0].0, earliest);
    assert_eq!(feed.stats().resets, 1);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_ahead_of_recreated_journal_resets() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    for n in 1..=50 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let old_epoch = feed.epoch();
    feed.close().await.unwrap();
    std::fs::remove_dir_all(dir.path()).unwrap();

    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    assert_ne!(feed.epoch(), old_epoch, "a recreated directory gets a new epoch");
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let mut s = feed.stream_from(Seq::new(50));
    let FeedItem::Reset { reason, latest, .. } = next_item(&mut s).await else { panic!("expected a reset") };
    assert_eq!(reason, ResetReason::Ahead);
    assert_eq!(latest, Seq::new(3));
    feed.append(None, msg(4)).await.unwrap();
    assert_eq!(take_events(&mut s, 4).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

    // The same seq with the old epoch is refused for its epoch first, and
    // the new journal is served from its beginning.
    let mut s = feed.stream_from(Cursor::new(Seq::new(2), old_epoch));
    let FeedItem::Reset { reason, .. } = next_item(&mut s).await else { panic!("expected a reset") };
    assert_eq!(reason, ResetReason::EpochMismatch { cursor_epoch: old_epoch, journal_epoch: feed.epoch() });
    assert_eq!(take_events(&mut s, 4).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), vec![1, 2, 3, 4]);

    // With the right epoch it resumes normally.
    let mut s = feed.stream_from(Cursor::new(Seq::new(2), feed.epoch()));
    assert_eq!(take_events(&mut s, 2).await.iter().map(|e| e.0.get()).collect::<Vec<_>>(), vec![3, 4]);
    feed.close().await.unwrap();
}
