//! `FeedReader` follows a writer it does not own: a stream from a cursor sees
//! every event after it, in order, including ones appended after the reader
//! caught up, across segment rolls; a pruned cursor yields one reset.

mod support;

use events::{Feed, FeedItem, FeedReader, ResetReason, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, msg, pruned_feed, take_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_follows_appends_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).segment_bytes(2048).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let reader: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();
    assert_eq!(reader.epoch(), feed.epoch());
    let mut tail = reader.stream_from(Seq::ZERO);
    assert_eq!(take_events(&mut tail, 1).await, vec![(Seq::new(1), msg(1))]);
    let writer = {
        let feed = feed.clone();
        tokio::spawn(async move {
            for n in 2..=2000 {
                feed.append(None, msg(n)).await.unwrap();
            }
        })
    };
    let got = take_events(&mut tail, 1999).await;
    assert_eq!(got.iter().map(|(s, _)| s.get()).collect::<Vec<_>>(), (2..=2000).collect::<Vec<_>>());
    writer.await.unwrap();
    assert_eq!(reader.latest_seq(), Seq::new(2000));
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_resets_on_a_pruned_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let feed = pruned_feed(dir.path(), 300).await;
    let reader: FeedReader<Ev> = FeedReader::open(dir.path()).unwrap();
    let mut s = reader.stream_from(Seq::new(1)); // Seq::ZERO would ask for everything retained: no reset
    let Some(Ok(FeedItem::Reset { reason, earliest, latest })) = s.next().await else { panic!("expected a reset") };
    assert_eq!(reason, ResetReason::Expired);
    assert_eq!(latest, Seq::new(300));
    assert_eq!(earliest, reader.earliest_seq());
    feed.append(None, msg(301)).await.unwrap();
    // The stream goes on with the earliest retained event: only what was pruned is lost.
    let rest = take_events(&mut s, (302 - earliest.get()) as usize).await;
    assert_eq!(rest.iter().map(|(s, _)| s.get()).collect::<Vec<_>>(), (earliest.get()..=301).collect::<Vec<_>>());
    feed.close().await.unwrap();
}

/// A follower caught up at seq 3 while the directory is recreated with
/// another journal of exactly 3 events: its reads find nothing after 3 in
/// either journal, so only the epoch it looks at when caught up (on the
/// blocking pool, with the read) tells: one `EpochMismatch` reset, then
/// the new journal from its first event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_follower_sees_a_recreated_journal_of_the_same_length() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let old_epoch = feed.epoch();
    feed.close().await.unwrap();
    let reader: FeedReader<Ev> = FeedReader::open(&dir).unwrap();
    let mut tail = reader.stream_from(Seq::ZERO);
    assert_eq!(take_events(&mut tail, 3).await.len(), 3);
    // Caught up: the stream waits for more.
    assert!(tokio::time::timeout(std::time::Duration::from_millis(200), tail.next()).await.is_err());

    std::fs::remove_dir_all(&dir).unwrap();
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 101..=103 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let new_epoch = feed.epoch();
    feed.close().await.unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next()).await.expect("a reset in time");
    let want = ResetReason::EpochMismatch { cursor_epoch: old_epoch, journal_epoch: new_epoch };
    assert!(matches!(next, Some(Ok(FeedItem::Reset { reason, .. })) if reason == want), "{next:?}");
    let got = take_events(&mut tail, 3).await;
    assert_eq!(got, vec![(Seq::new(1), msg(101)), (Seq::new(2), msg(102)), (Seq::new(3), msg(103))]);
}

/// A follower whose journal's watermark names a segment that is gone
/// (deleted by hand): its stream ends with the read's error, naming the
/// segment, as before; the directory itself is there. A follower waits
/// through a "not found" for the directory (removed to be recreated), and
/// for a file of its journal only for 2 s (a removal under way: the test
/// below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_watermark_names_a_missing_segment_gets_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Never).segment_bytes(1024).open().await.unwrap();
    while feed.latest_seq() < Seq::new(60) {
        feed.append(None, msg(feed.latest_seq().get() + 1)).await.unwrap();
    }
    feed.close().await.unwrap();
    let newest = events_testkit::fs::segments(&dir).pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    let reader: FeedReader<Ev> = FeedReader::open(&dir).unwrap().poll_interval(std::time::Duration::from_millis(5));
    let mut tail = reader.stream_from(Seq::ZERO);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match tail.next().await {
                Some(Ok(_)) => {}
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends with the error, not a silent wait");
    assert!(matches!(ended, Some(Err(_))), "{ended:?}");
}

/// A caught-up follower while its directory is removed file by file, the
/// newest segment (the one the watermark names) first, then made again
/// with a new journal: its stream goes on with the epoch reset and the new
/// journal's events, no error. Its reads in the middle of the removal had
/// found the named segment gone from the same journal and ended the stream
/// with that error (a server's client got an `error` frame and waited 30 s;
/// `events demo` wipes its previous run so). The removal here takes 100 ms,
/// twenty of the follower's looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_waits_through_its_directory_removed_file_by_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Never).segment_bytes(1024).open().await.unwrap();
    while feed.latest_seq() < Seq::new(60) {
        feed.append(None, msg(feed.latest_seq().get() + 1)).await.unwrap();
    }
    let old_epoch = feed.epoch();
    feed.close().await.unwrap();
    let reader: FeedReader<Ev> = FeedReader::open(&dir).unwrap().poll_interval(std::time::Duration::from_millis(5));
    let mut tail = reader.stream_from(Seq::ZERO);
    assert_eq!(take_events(&mut tail, 60).await.len(), 60);

    let newest = events_testkit::fs::segments(&dir).pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(100), tail.next()).await;
    assert!(quiet.is_err(), "nothing while the directory is being removed: {quiet:?}");
    std::fs::remove_dir_all(&dir).unwrap();
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Never).open().await.unwrap();
    feed.append(None, msg(101)).await.unwrap();
    let new_epoch = feed.epoch();
    feed.close().await.unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next()).await.expect("a reset in time");
    let want = ResetReason::EpochMismatch { cursor_epoch: old_epoch, journal_epoch: new_epoch };
    assert!(matches!(next, Some(Ok(FeedItem::Reset { reason, .. })) if reason == want), "{next:?}");
    assert_eq!(take_events(&mut tail, 1).await, vec![(Seq::new(1), msg(101))]);
}
