//! A journal directory deleted under a running feed: the next segment cannot
//! be created, so `append` fails with a typed error naming the path, the feed
//! turns unhealthy, and later appends are refused instead of being
//! acknowledged into a directory that no longer exists.

mod support;

use events::{Error, Feed, SyncPolicy};
use support::{Ev, msg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_directory_fails_appends_explicitly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("feed");
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Always).segment_bytes(512).open().await.unwrap();
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
    assert!(journal_error.to_string().contains(&*dir.to_string_lossy()), "{journal_error}");
    assert!(!feed.stats().healthy);
    assert!(matches!(feed.append(None, msg(999)).await, Err(Error::Unhealthy { .. })));
    let _ = feed.close().await;
}
