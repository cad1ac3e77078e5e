//! Restart: write, close, reopen; `stream_from(k)` returns exactly
//! `k+1..=latest` and new appends continue at `latest + 1`, including after a
//! drop without `close` (the writer drains and fsyncs on its own).

mod support;

use std::time::Duration;

use events::{Error, Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, assert_contiguous, msg, take_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_resumes_and_continues_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).segment_bytes(4096).open().await.unwrap();
    for n in 1..=500 {
        feed.append(Some("a"), msg(n)).await.unwrap();
    }
    let epoch = feed.epoch();
    feed.close().await.unwrap();

    let feed: Feed<Ev> = Feed::builder(dir.path()).segment_bytes(4096).open().await.unwrap();
    assert_eq!(feed.epoch(), epoch);
    assert_eq!(feed.latest_seq(), Seq::new(500));
    for k in [0u64, 1, 250, 499] {
        let mut s = feed.stream_from(Seq::new(k));
        let got = take_events(&mut s, (500 - k) as usize).await;
        assert_contiguous(&got, k + 1, 500);
        assert_eq!(got.last().unwrap().1, msg(500));
    }
    assert_eq!(feed.append(None, msg(501)).await.unwrap(), Seq::new(501));
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_still_flushes_what_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let feed: Feed<Ev> =
            Feed::builder(dir.path()).sync(SyncPolicy::Never).inbox_capacity(100_000).open().await.unwrap();
        for n in 1..=1000 {
            feed.record(None, &msg(n));
        }
        assert_eq!(feed.stats().dropped, 0);
    }
    // The writer drains the inbox and releases the lock after the last handle
    // is gone; opening waits for that by retrying on `Locked`.
    let feed = loop {
        match Feed::<Ev>::builder(dir.path()).open().await {
            Ok(feed) => break feed,
            Err(events::Error::Journal(events::JournalError::Locked { .. })) => tokio::task::yield_now().await,
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(feed.latest_seq(), Seq::new(1000));
    let mut s = feed.stream_from(Seq::new(998));
    let got = take_events(&mut s, 2).await;
    assert_contiguous(&got, 999, 1000);
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ends_after_close_once_everything_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let mut s = feed.stream_from(Seq::ZERO);
    for n in 1..=10 {
        feed.append(None, msg(n)).await.unwrap();
    }
    feed.close().await.unwrap();
    let mut seqs = Vec::new();
    while let Some(item) = s.next().await {
        let FeedItem::Event(env) = item.unwrap() else { panic!("unexpected reset") };
        seqs.push(env.seq.get());
    }
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

/// A `close` cut short (a 50 ms `timeout` around it) while its final
/// fdatasync is slow (500 ms, then `EIO`): a second handle's `close` waits
/// for that close to finish and reports its failure (`Unhealthy`, naming
/// the fdatasync). It had returned `Closed` at once, the feed still
/// closing, and the close's error reached nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_cut_short_is_finished_by_the_next_close() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let (other, kept) = (feed.clone(), feed.clone());
    plan.inject_next(Step::Sync, Fault::StallErrno(Duration::from_millis(500), libc::EIO));
    let cut = tokio::time::timeout(Duration::from_millis(50), feed.close()).await;
    assert!(cut.is_err(), "the close waits for its fdatasync");
    let second = other.close().await;
    assert!(kept.is_closed(), "the second close returned before the feed closed: {second:?}");
    assert!(matches!(&second, Err(Error::Unhealthy { cause }) if cause.contains("fdatasync")), "{second:?}");
}

/// As above, the reopen made while the cut-short close is still under way
/// (its fdatasync held until the reopen is seen waiting), a handle of the
/// closing feed alive: it waits for the writer to let go. It was refused
/// at once with `Locked`, the error of a second live writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_during_a_close_cut_short_waits_for_it() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let kept = feed.clone();
    plan.inject_next(Step::Sync, Fault::Hold);
    let cut = tokio::time::timeout(Duration::from_millis(50), feed.close()).await;
    assert!(cut.is_err(), "the close waits for its fdatasync");
    let reopened = waits_until_released(&plan, Feed::<Ev>::builder(dir.path()).open()).await;
    assert!(kept.is_closed());
    let reopened = reopened.unwrap();
    assert_eq!(reopened.latest_seq(), Seq::new(1));
    drop(kept);
    reopened.close().await.unwrap();
}

/// Runs `open` on a task while `plan` holds a step of the writer that
/// must let go first: the open must still be waiting after 100 ms (a
/// refusal comes at once), and is released then; its outcome.
async fn waits_until_released<T: Send + 'static>(
    plan: &events::layers::journal::fault::FaultPlan,
    open: impl std::future::Future<Output = events::Result<T>> + Send + 'static,
) -> events::Result<T> {
    let opening = tokio::spawn(open);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waited = !opening.is_finished();
    plan.release();
    let opened = opening.await.unwrap();
    assert!(waited, "the open did not wait for the writer to let go: {:?}", opened.as_ref().err());
    opened
}

/// Appends `msg(2)` on a task whose fdatasync is `held` (`Fault::Hold`
/// or a stall); returns once the writer is in that sync, with the append's
/// task.
async fn stalled_in_a_lone_append(
    feed: &Feed<Ev>,
    plan: &events::layers::journal::fault::FaultPlan,
    held: events::layers::journal::fault::Fault,
) -> tokio::task::JoinHandle<events::Result<Seq>> {
    use events::layers::journal::fault::Step;
    let syncs = plan.count(Step::AppendSync);
    plan.inject_next(Step::AppendSync, held);
    let appending = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, msg(2)).await }
    });
    while plan.count(Step::AppendSync) == syncs {
        tokio::task::yield_now().await; // until the writer is in the stalled sync
    }
    appending
}

/// A reopen while a close cut short is still queued: the writer was busy
/// in a lone append's fdatasync (held until the reopen is seen waiting)
/// and had not taken the close yet. It waits for the writer to let go,
/// then finds both appends. Only an inbox the writer had closed counted as
/// closing, so the reopen was refused at once with `Locked`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_while_a_close_is_queued_waits_for_it() {
    use events::layers::journal::fault::{Fault, FaultPlan};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let kept = feed.clone();
    let appending = stalled_in_a_lone_append(&feed, &plan, Fault::Hold).await;
    let cut = tokio::time::timeout(Duration::from_millis(50), feed.close()).await;
    assert!(cut.is_err(), "the close waits for the writer");
    let reopened = waits_until_released(&plan, Feed::<Ev>::builder(dir.path()).open()).await;
    let reopened = reopened.expect("the reopen waits for the closing writer");
    assert_eq!(appending.await.unwrap().unwrap(), Seq::new(2));
    assert!(kept.is_closed());
    assert_eq!(reopened.latest_seq(), Seq::new(2));
    drop(kept);
    reopened.close().await.unwrap();
}

/// Two handles' `close` queued together while the writer is busy (a lone
/// append's fdatasync stalled): the first queued gets the journal's close
/// (`Ok`), the other `Closed`, as a `close` after the inbox closed does.
/// Both had been answered `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_closes_queued_together_one_is_told_closed() {
    use events::layers::journal::fault::{Fault, FaultPlan};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let appending = stalled_in_a_lone_append(&feed, &plan, Fault::Stall(Duration::from_millis(500))).await;
    let (a, b) = futures::join!(feed.clone().close(), feed.close());
    assert_eq!(appending.await.unwrap().unwrap(), Seq::new(2));
    let outcomes = [&a, &b].map(|r| match r {
        Ok(()) => "ok",
        Err(Error::Closed) => "closed",
        Err(_) => "other",
    });
    assert!(outcomes == ["ok", "closed"] || outcomes == ["closed", "ok"], "{a:?} {b:?}");
}

/// An open cut short (a 100 ms `timeout` around it) while the journal's
/// open is slow (its seq lease's write held until the next open is seen
/// waiting): the open goes on on its blocking thread, holding the
/// directory's lock until it ends, and an open tried again at once waits
/// for it, then opens. It was refused at once with `Locked`, the error of
/// a second live writer, with no other writer anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_cut_short_does_not_lock_out_the_next_one() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    feed.close().await.unwrap();
    let plan = FaultPlan::new();
    plan.inject_next(Step::Lease, Fault::Hold);
    let cut =
        tokio::time::timeout(Duration::from_millis(100), Feed::<Ev>::builder(dir.path()).faults(plan.clone()).open())
            .await;
    assert!(cut.is_err(), "the open waits for its lease");
    let reopened = waits_until_released(&plan, Feed::<Ev>::builder(dir.path()).open()).await.unwrap();
    assert_eq!(reopened.latest_seq(), Seq::new(1));
    reopened.close().await.unwrap();
}

/// Two opens at once of a directory a live feed writes: each is refused
/// with `Locked`, at once. An open refused ends there, so neither waits for
/// the other as for an open under way (each had waited out the other's
/// 10 s bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_a_live_writers_directory_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let open = || Feed::<Ev>::builder(dir.path()).open();
    let both = tokio::time::timeout(Duration::from_secs(5), futures::future::join(open(), open())).await;
    let (a, b) = both.expect("both refused within 5 s");
    for refused in [a, b] {
        assert!(matches!(refused, Err(Error::Journal(events::JournalError::Locked { .. }))), "{refused:?}");
    }
    feed.close().await.unwrap();
}

/// A feed opened on a directory that does not exist yet makes it and its
/// missing parent durable: each is in the names its parent's fsync saw,
/// before the first append is acknowledged. The façade had made them
/// itself (`create_dir_all`, no fsync), so the journal found the directory
/// there and fsynced nothing above it: a power loss could take the whole
/// journal, acknowledged records and all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_makes_the_directories_it_creates_durable_in_their_parents() {
    use events::layers::journal::fault::FaultPlan;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("b");
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(&dir).sync(SyncPolicy::Always).faults(plan.clone()).open().await.unwrap();
    assert_eq!(feed.append(Some("s"), msg(1)).await.unwrap(), Seq::new(1));
    let synced = |parent: &std::path::Path, name: &str| {
        plan.synced_names(parent).is_some_and(|names| names.iter().any(|n| n == name))
    };
    assert!(synced(tmp.path(), "a"), "a is durable in its parent");
    assert!(synced(&tmp.path().join("a"), "b"), "b is durable in its parent");
    feed.close().await.unwrap();
}
