//! Acknowledgements of many appends at once are delivered by a task on the
//! runtime the feed was opened on (one wake-up for the writer instead of
//! one per append). These tests hold what must not depend on that task
//! running:
//!
//! * appends awaited from plain threads (`futures::executor::block_on`)
//!   while the feed's own runtime is never driven again: every one
//!   completes, with its own seq;
//! * appends from a second runtime after the first, which ran the task, was
//!   shut down: the same.
//!
//! A watchdog fails a test instead of letting it hang on a stranded
//! acknowledgement.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use events::{Feed, Inbox, SyncPolicy};
use support::{Ev, msg};

const THREADS: u64 = 8;
const APPENDS: u64 = 40;
const WATCHDOG: Duration = Duration::from_secs(60);

async fn open(dir: &Path) -> Feed<Ev> {
    Feed::builder(dir).sync(SyncPolicy::Always).retention_check(Duration::from_secs(3600)).open().await.unwrap()
}

/// `THREADS` plain threads, each awaiting `APPENDS` appends one after the
/// other with a blocking executor; returns every seq, or fails the test if
/// they are not all acknowledged before the watchdog.
fn append_from_threads(inbox: &Inbox<Ev>) -> BTreeSet<u64> {
    let (tx, rx) = mpsc::channel();
    for t in 0..THREADS {
        let (inbox, tx) = (inbox.clone(), tx.clone());
        std::thread::spawn(move || {
            for i in 0..APPENDS {
                let seq = futures::executor::block_on(inbox.append(None, msg(t * APPENDS + i))).unwrap();
                tx.send(seq.get()).unwrap();
            }
        });
    }
    drop(tx);
    let mut seqs = BTreeSet::new();
    for n in 0..THREADS * APPENDS {
        match rx.recv_timeout(WATCHDOG) {
            Ok(seq) => assert!(seqs.insert(seq), "seq {seq} acknowledged twice"),
            Err(e) => panic!("{n} of {} appends acknowledged, then none for {WATCHDOG:?}: {e}", THREADS * APPENDS),
        }
    }
    seqs
}

#[test]
fn appends_complete_while_the_feeds_runtime_is_never_driven() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let feed = rt.block_on(open(dir.path()));
    // Nothing drives `rt` from here until the close: its tasks do not run.
    let seqs = append_from_threads(&feed.inbox());
    assert_eq!(seqs, (1..=THREADS * APPENDS).collect::<BTreeSet<_>>());
    rt.block_on(feed.close()).unwrap();
}

#[test]
fn appends_complete_after_the_runtime_that_opened_the_feed_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let first = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let feed = first.block_on(open(dir.path()));
    // Many appenders at once, so that batches go through the task while it runs.
    let seqs = append_from_threads(&feed.inbox());
    assert_eq!(seqs.len() as u64, THREADS * APPENDS);
    first.shutdown_timeout(Duration::from_secs(10));

    let second = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let more = second.block_on(async {
        let tasks: Vec<_> = (0..THREADS)
            .map(|t| {
                let inbox = feed.inbox();
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for i in 0..APPENDS {
                        seqs.push(inbox.append(None, msg(t * APPENDS + i)).await.unwrap().get());
                    }
                    seqs
                })
            })
            .collect();
        tokio::time::timeout(WATCHDOG, futures::future::join_all(tasks)).await.expect("appends acknowledged")
    });
    let more: BTreeSet<u64> = more.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(more, (THREADS * APPENDS + 1..=2 * THREADS * APPENDS).collect::<BTreeSet<_>>());
    second.block_on(feed.close()).unwrap();
}
