//! Acknowledgements of many appends at once are delivered by a task on the
//! runtime the feed was opened on (one wake-up for the writer instead of
//! one per append). These tests hold what must not depend on that task
//! running:
//!
//! * appends awaited from plain threads (`futures::executor::block_on`)
//!   while the feed's own runtime is never driven again: every one
//!   completes, with its own seq;
//! * appends from a second runtime after the first, which ran the task, was
//!   shut down: the same;
//! * the same plain threads while a flood of `record`s keeps the inbox from
//!   ever emptying and an fdatasync in flight all along (the writer never
//!   parks);
//! * `Feed::close` called from a plain thread while they append: every
//!   appender is answered, and exactly the appends answered `Ok` are in
//!   the journal;
//! * appends queued (polled once) before a close: each is answered by the
//!   time `close` returns.
//!
//! A watchdog fails a test instead of letting it hang on a stranded
//! acknowledgement.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use events::layers::journal::Reader;
use events::{Error, Feed, Inbox, SyncPolicy};
use futures::FutureExt;
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
    first.shutdown_timeout(Duration::from_secs(60));

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

#[test]
fn appends_complete_while_records_keep_a_sync_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let feed = rt.block_on(open(dir.path()));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let (inbox, stop) = (feed.inbox(), Arc::clone(&stop));
        // As fast as one thread can: the inbox is never empty, so the
        // writer never parks, and a sync is in flight all along.
        std::thread::spawn(move || {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                inbox.record(None, &msg(n));
            }
        })
    };
    let seqs = append_from_threads(&feed.inbox());
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    assert_eq!(seqs.len() as u64, THREADS * APPENDS);
    rt.block_on(feed.close()).unwrap();
}

#[test]
fn close_from_a_plain_thread_answers_every_append_it_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let feed = rt.block_on(open(dir.path()));
    let (tx, rx) = mpsc::channel();
    for t in 0..THREADS {
        let (inbox, tx) = (feed.inbox(), tx.clone());
        std::thread::spawn(move || {
            for i in 0.. {
                match futures::executor::block_on(inbox.append(None, msg(t * 1_000_000 + i))) {
                    Ok(seq) => tx.send(Some(seq.get())).unwrap(),
                    Err(Error::Closed) => break,
                    Err(e) => panic!("append failed: {e}"),
                }
            }
            tx.send(None).unwrap(); // this thread is done
        });
    }
    drop(tx);
    let mut answered = BTreeSet::new();
    while answered.len() < 100 {
        answered.insert(rx.recv_timeout(WATCHDOG).expect("appends answered").expect("an appender stopped early"));
    }
    futures::executor::block_on(feed.close()).unwrap();
    let mut done = 0;
    while done < THREADS {
        match rx.recv_timeout(WATCHDOG) {
            Ok(Some(seq)) => assert!(answered.insert(seq), "seq {seq} answered twice"),
            Ok(None) => done += 1,
            Err(e) => panic!("{done} of {THREADS} appenders answered after the close, then none for {WATCHDOG:?}: {e}"),
        }
    }
    let journaled: BTreeSet<u64> =
        Reader::open(dir.path()).unwrap().read_since(0).unwrap().map(|r| r.unwrap().seq()).collect();
    assert_eq!(journaled, answered, "the journal holds exactly the appends answered Ok");
    drop(rt);
}

#[test]
fn close_returns_after_every_queued_append_was_answered() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let feed = rt.block_on(open(dir.path()));
    let inbox = feed.inbox();
    // Each polled once, so it is in the inbox before the close command;
    // together they make batches of more than one acknowledgement.
    let mut appends: Vec<_> = (0..64).map(|n| Box::pin(inbox.append(None, msg(n)))).collect();
    let mut pending = Vec::new();
    for append in &mut appends {
        if append.as_mut().now_or_never().is_none() {
            pending.push(append);
        }
    }
    assert!(!pending.is_empty(), "every append was answered at its first poll");
    futures::executor::block_on(feed.close()).unwrap();
    for append in pending {
        match append.as_mut().now_or_never() {
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("an append queued before the close failed: {e}"),
            None => panic!("close returned before an append queued before it was answered"),
        }
    }
    drop(rt);
}
