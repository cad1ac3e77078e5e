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
