//! `record` with a full inbox drops and counts exactly; `append` never
//! drops: it waits for inbox space, and concurrent appenders all get distinct
//! contiguous seqs (and share fsyncs: group commit).

mod support;

use std::collections::BTreeSet;

use events::{Feed, SyncPolicy};
use support::{Ev, msg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_on_full_inbox_drops_and_counts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).inbox_capacity(1).open().await.unwrap();
    const N: u64 = 20_000;
    for n in 1..=N {
        feed.record(None, &msg(n));
    }
    feed.sync().await.unwrap();
    let stats = feed.stats();
    assert!(stats.dropped > 0, "the inbox never filled; the test exercised nothing");
    assert_eq!(stats.dropped + stats.appended, N, "every record is either journaled or counted as dropped");
    assert_eq!(feed.latest_seq().get(), stats.appended);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_never_drop_and_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).inbox_capacity(8).open().await.unwrap();
    let tasks: Vec<_> = (0..256u64)
        .map(|n| {
            let feed = feed.clone();
            tokio::spawn(async move { feed.append(None, msg(n)).await.unwrap() })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for t in tasks {
        assert!(seqs.insert(t.await.unwrap().get()), "duplicate seq");
    }
    assert_eq!(seqs, (1..=256).collect());
    let stats = feed.stats();
    assert_eq!(stats.dropped, 0);
    assert!(stats.fsyncs >= 1);
    assert!(stats.batches <= 256);
    feed.close().await.unwrap();
}
