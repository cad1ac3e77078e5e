//! A journal directory deleted under a running feed: the next roll (or the
//! retention timer, on a feed that appends nothing) finds the directory no
//! longer the writer's, so `append` fails with a typed error naming the
//! path, the feed turns unhealthy, and later appends are refused instead of
//! being acknowledged into a directory that no longer exists.

mod support;

use events::{Error, Feed, SyncPolicy};
use support::{Ev, msg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_directory_fails_appends_explicitly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    // The roll finds it (the timer, which would find it too, is an hour away).
    let feed: Feed<Ev> = Feed::builder(&dir)
        .sync(SyncPolicy::Always)
        .segment_bytes(512)
        .retention_check(std::time::Duration::from_secs(3600))
        .open()
        .await
        .unwrap();
    feed.append(None, msg(0)).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let mut failure = None;
    for n in 1..=200 {
        if let Err(e) = feed.append(None, msg(n)).await {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("appends kept succeeding in a deleted directory");
    let Error::Journal(journal_error) = &failure else { panic!("{failure:?}") };
    assert!(
        matches!(journal_error, events::layers::journal::JournalError::DirectoryReplaced { .. }),
        "{journal_error:?}"
    );
    assert!(journal_error.to_string().contains(&*dir.to_string_lossy()), "{journal_error}");
    assert!(!feed.stats().healthy);
    assert!(matches!(feed.append(None, msg(999)).await, Err(Error::Unhealthy { .. })));
    let _ = feed.close().await;
}

/// The same on a feed that appends nothing: its retention timer finds the
/// directory gone and the feed turns unhealthy then, naming the directory,
/// instead of at its next append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_directory_stops_an_idle_feed_at_its_retention_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let feed: Feed<Ev> =
        Feed::builder(&dir).retention_check(std::time::Duration::from_millis(20)).open().await.unwrap();
    feed.append(None, msg(0)).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    support::eventually("the feed turns unhealthy", || !feed.stats().healthy).await;
    let Err(Error::Unhealthy { cause }) = feed.append(None, msg(1)).await else { panic!("appended") };
    assert!(cause.contains("deleted or replaced") && cause.contains(&*dir.to_string_lossy()), "{cause}");
    let _ = feed.close().await;
}

/// A writer's directory replaced under it (renamed away, and a feed of
/// another epoch and codec, MessagePack, made at the path with sealed
/// segments of stream "a"): the writer's `read_stream` and
/// `follow_stream` end with `EpochMismatch`, never the other journal's
/// events as its history, and write nothing among its files: the other
/// feed still reads all its events of "a". The writer's read read the
/// other journal (here it found none of its events: another codec) and
/// rebuilt the other's sidecar index of its first segment with its own
/// codec, which finds no key in it, over the good one.
#[cfg(feature = "msgpack")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writers_reads_after_its_directory_is_replaced_never_serve_the_other_journal() {
    use events::layers::journal::JournalError;
    use events::{FeedItem, MsgPack, Seq};
    use futures::{StreamExt, TryStreamExt};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let feed: Feed<Ev> =
        Feed::builder(&dir).retention_check(std::time::Duration::from_secs(3600)).open().await.unwrap();
    let own = |n| Ev::Msg { n, own_stream: Some("a".into()) };
    for n in 1..=3 {
        feed.append(None, own(n)).await.unwrap();
    }
    std::fs::rename(&dir, tmp.path().join("moved")).unwrap();
    let other: Feed<Ev, MsgPack> = Feed::builder(&dir).codec(MsgPack).segment_bytes(512).open().await.unwrap();
    for n in 101..=140 {
        other.append(None, own(n)).await.unwrap();
    }
    let other_a: Vec<u64> =
        other.read_stream("a", Seq::ZERO).unwrap().map_ok(|e| e.seq.get()).try_collect().await.unwrap();
    assert_eq!(other_a.len(), 40, "{other_a:?}");
    let sidecars = || {
        let mut found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "idx"))
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect();
        found.sort();
        found
    };
    let before = sidecars();

    let read: Result<Vec<_>, _> = feed.read_stream("a", Seq::ZERO).unwrap().try_collect().await;
    assert!(
        matches!(&read, Err(Error::Journal(JournalError::EpochMismatch { .. }))),
        "the writer's read of its replaced directory: {:?}",
        read.map(|events| events.iter().map(|e| e.seq.get()).collect::<Vec<_>>())
    );
    let followed = feed.follow_stream("a", Seq::ZERO).unwrap().next().await;
    assert!(
        matches!(&followed, Some(Err(Error::Journal(JournalError::EpochMismatch { .. })))),
        "{:?}",
        followed.map(|item| item.map(|item| matches!(item, FeedItem::Event(_))))
    );
    assert!(sidecars() == before, "the writer wrote among the other journal's sidecar indexes");
    let still: Vec<u64> =
        other.read_stream("a", Seq::ZERO).unwrap().map_ok(|e| e.seq.get()).try_collect().await.unwrap();
    assert_eq!(still, other_a);
    other.close().await.unwrap();
    let _ = feed.close().await;
}

/// A writer's directory replaced under it (renamed away, and a feed made
/// at the path whose stream "s" is at version 3), then a conditional
/// append on the writer expecting version 3 before its timer notices: it is
/// refused with `DirectoryReplaced`. Its version lookup read the files at
/// the path, found the other journal's 3 and admitted the append into its
/// own journal, where "s" was at 5: a lost update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_append_after_the_directory_is_replaced_is_refused() {
    use events::layers::journal::JournalError;
    use events::{AppendOptions, Expected, Seq};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let feed: Feed<Ev> =
        Feed::builder(&dir).retention_check(std::time::Duration::from_secs(3600)).open().await.unwrap();
    for n in 1..=5 {
        feed.append(Some("s"), msg(n)).await.unwrap();
    }
    std::fs::rename(&dir, tmp.path().join("moved")).unwrap();
    let other: Feed<Ev> = Feed::builder(&dir).open().await.unwrap();
    for n in 1..=3 {
        other.append(Some("s"), msg(100 + n)).await.unwrap();
    }
    let options = AppendOptions::new().expect(Expected::Exact(Seq::new(3)));
    let appended = feed.append_with(Some("s"), msg(6), options).await;
    assert!(
        matches!(&appended, Err(Error::Journal(JournalError::DirectoryReplaced { .. }))),
        "admitted on the other journal's version: {appended:?}"
    );
    other.close().await.unwrap();
    let _ = feed.close().await;
}
