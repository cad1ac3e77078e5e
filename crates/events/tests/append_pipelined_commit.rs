//! Pipelined group commit seen from `Feed::append` under `SyncPolicy::Always`:
//!
//! * while one batch's fdatasync runs (held by a stall), the writer goes on
//!   taking and writing appends, and acknowledges none of them before the
//!   fdatasync that covers it; an event id or a stream version of an event
//!   written but not yet acknowledged still counts for the next appends;
//! * many appenders, then a crash at the n-th fdatasync followed by a power
//!   loss (every segment cut back to what its last completed fdatasync
//!   covered): every acknowledged event is there at its seq after reopening;
//! * an `EIO` from a pipelined fdatasync refuses the appends it covered and
//!   everything after, and none of them comes back;
//! * a writer that waits on a sync and its inbox at once is woken for each
//!   (a watchdog fails the test instead of letting it hang).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::{AppendOptions, Error, Expected, Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use support::{Ev, lose_power, msg, take_events};

async fn open(dir: &Path, plan: &FaultPlan) -> Feed<Ev> {
    open_with(dir, plan, 16 << 10).await
}

/// Small segments roll often; a roll waits for the fdatasync in flight.
async fn open_with(dir: &Path, plan: &FaultPlan, segment_bytes: u64) -> Feed<Ev> {
    Feed::builder(dir)
        .sync(SyncPolicy::Always)
        .segment_bytes(segment_bytes)
        .retention_check(Duration::from_secs(3600))
        .faults(plan.clone())
        .open()
        .await
        .unwrap()
}

/// Waits until `step` was reached at least `n` times.
async fn reached(plan: &FaultPlan, step: Step, n: u64) {
    support::eventually(&format!("{step:?} reached {n} times"), || plan.count(step) >= n).await;
}

/// Every retained event by seq, read back after reopening without faults.
async fn reopened(dir: &Path) -> BTreeMap<Seq, Ev> {
    let feed = open(dir, &FaultPlan::new()).await;
    let n = feed.latest_seq().get() as usize;
    let got = take_events(&mut feed.stream_from(Seq::ZERO), n).await.into_iter().collect();
    feed.close().await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_written_during_an_fdatasync_wait_for_the_one_that_covers_them() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed = open(tmp.path(), &plan).await;
    let v1 = feed.append(Some("s"), msg(0)).await.unwrap();

    // Hold the writer in a write so that appends queue up behind it, then
    // hold the fdatasync that the queue makes it hand to the sync thread.
    plan.inject_next(Step::AppendWrite, Fault::Stall(Duration::from_secs(1)));
    plan.inject_next(Step::AppendSync, Fault::Stall(Duration::from_secs(3)));
    let (writes, syncs) = (plan.count(Step::AppendWrite), plan.count(Step::AppendSync));
    let spawn = |stream: &'static str, n: u64, opts: AppendOptions| {
        let feed = feed.clone();
        tokio::spawn(async move { feed.append_with(Some(stream), msg(n), opts).await })
    };
    let first = spawn("s", 1, AppendOptions::new().id("job-1"));
    reached(&plan, Step::AppendWrite, writes + 1).await;
    let queued: Vec<_> = (2..6).map(|n| spawn("t", n, AppendOptions::new())).collect();
    reached(&plan, Step::AppendSync, syncs + 1).await;

    // The fdatasync is held; the writer still takes and writes what comes next.
    reached(&plan, Step::AppendWrite, writes + 2).await;
    let current = spawn("s", 7, AppendOptions::new().expect(Expected::Exact(v1.next())));
    reached(&plan, Step::AppendWrite, writes + 3).await;
    // The stream's version and the ids count the events written but not
    // acknowledged: a stale expectation is refused at once, a retry waits.
    let stale = spawn("s", 8, AppendOptions::new().expect(Expected::Exact(v1)));
    let retry = spawn("s", 1, AppendOptions::new().id("job-1"));
    let conflict = stale.await.unwrap().unwrap_err();
    assert!(matches!(conflict, Error::VersionConflict { current: Some(s), .. } if s == Seq::new(7)), "{conflict:?}");
    assert_eq!(feed.latest_seq(), v1, "an event was acknowledged before its fdatasync completed");
    assert!(!first.is_finished() && !retry.is_finished() && !current.is_finished());
    assert!(queued.iter().all(|q| !q.is_finished()));

    let first = first.await.unwrap().unwrap();
    let retry = retry.await.unwrap().unwrap();
    assert_eq!((first.seq, first.duplicate), (v1.next(), false));
    assert_eq!((retry.seq, retry.duplicate), (first.seq, true), "an id in flight was journaled twice");
    let mut queued: Vec<Seq> =
        futures::future::join_all(queued).await.into_iter().map(|q| q.unwrap().unwrap().seq).collect();
    queued.sort();
    assert_eq!(queued, (3..=6).map(Seq::new).collect::<Vec<_>>());
    assert_eq!(current.await.unwrap().unwrap().seq, Seq::new(7));
    // Each batch takes its own timestamp, not the one of the batch before it
    // that is still waiting for its fdatasync.
    let mut stream = feed.stream_from(v1);
    let mut ts = Vec::new();
    while ts.len() < 6 {
        if let Some(Ok(FeedItem::Event(env))) = stream.next().await {
            ts.push((env.seq, env.ts));
        }
    }
    assert!(ts[5].1 > ts[0].1, "seq 7 was staged long after seq 2 but has its timestamp: {ts:?}");
    feed.close().await.unwrap();
    let got = reopened(tmp.path()).await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), (1..=7).map(Seq::new).collect::<Vec<_>>());
}

/// `appenders` tasks of `each` appends; returns what was acknowledged.
async fn hammer(feed: &Feed<Ev>, appenders: u64, each: u64) -> BTreeMap<Seq, Ev> {
    let tasks: Vec<_> = (0..appenders)
        .map(|a| {
            let feed = feed.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..each {
                    let ev = msg(a * 1_000 + i);
                    match feed.append(None, ev.clone()).await {
                        Ok(seq) => acked.push((seq, ev)),
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = BTreeMap::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_then_a_power_loss_keeps_every_acknowledged_append() {
    for nth in [1, 4, 9, 20] {
        for fault in [Fault::CrashBefore, Fault::CrashAfter] {
            let tmp = tempfile::tempdir().unwrap();
            let plan = FaultPlan::new();
            plan.inject(Step::AppendSync, nth, fault);
            let feed = open(tmp.path(), &plan).await;
            let acked = hammer(&feed, 64, 40).await;
            assert!(plan.crashed(), "{fault:?} at fdatasync #{nth} never fired");
            drop(feed);
            lose_power(tmp.path(), &plan);
            let got = reopened(tmp.path()).await;
            for (seq, ev) in &acked {
                assert_eq!(got.get(seq), Some(ev), "{fault:?} at fdatasync #{nth}: acknowledged {seq} lost");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pipelined_fdatasync_refuses_what_it_covered_and_keeps_it_out() {
    for nth in [2, 7] {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        plan.inject(Step::AppendSync, nth, Fault::Errno(libc::EIO));
        let feed = open(tmp.path(), &plan).await;
        let acked = hammer(&feed, 64, 20).await;
        assert!(!feed.stats().healthy);
        assert!(matches!(feed.append(None, msg(0)).await, Err(Error::Unhealthy { .. })));
        // An unhealthy feed's close reports the failure; the writer has stopped.
        let _ = feed.close().await;
        // The process lived on: it cut back what it refused, so the files
        // hold exactly the acknowledged records before any power loss too
        // (read from a copy: the loss below cuts refused records anyway).
        let copy = tempfile::tempdir().unwrap();
        events_testkit::fs::copy_files(tmp.path(), copy.path());
        let now = reopened(copy.path()).await;
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            acked.keys().collect::<Vec<_>>(),
            "fdatasync #{nth} failed: the files do not hold exactly the acknowledged records"
        );
        lose_power(tmp.path(), &plan);
        let got = reopened(tmp.path()).await;
        let back: Vec<_> = got.keys().filter(|seq| !acked.contains_key(seq)).collect();
        let lost: Vec<_> = acked.iter().filter(|(seq, ev)| got.get(seq) != Some(ev)).map(|(seq, _)| seq).collect();
        assert!(
            back.is_empty() && lost.is_empty(),
            "fdatasync #{nth} failed: unacknowledged seqs came back {back:?}, acknowledged ones were lost {lost:?}"
        );
    }
}

/// Holds the feed's next fdatasync for 3 s (behind a write held for 1 s:
/// appends queued behind the held write make the writer hand the next
/// fdatasync to the commit thread, which is then held too), and meanwhile
/// floods it with `record(n)` for 1.5 s; returns how many were recorded,
/// once everything before the flood is acknowledged and synced.
async fn flood_behind_a_held_fdatasync(feed: &Feed<Ev>, plan: &FaultPlan, record: impl Fn(u64)) -> u64 {
    plan.inject_next(Step::AppendWrite, Fault::Stall(Duration::from_secs(1)));
    plan.inject_next(Step::AppendSync, Fault::Stall(Duration::from_secs(3)));
    let first = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, msg(0)).await }
    });
    reached(plan, Step::AppendWrite, 1).await;
    let queued = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, msg(1)).await }
    });
    reached(plan, Step::AppendSync, 1).await;
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        for _ in 0..1_000 {
            record(n);
            n += 1;
        }
        tokio::task::yield_now().await;
    }
    first.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    feed.sync().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fdatasync_pushes_back_on_producers() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    // No roll in this test: it would wait for the held fdatasync and so hold
    // the writer by itself.
    let feed = open_with(tmp.path(), &plan, 256 << 20).await;
    // A flood of records while the fdatasync is held: the writer takes at
    // most a few thousand of them; the rest stay in (or are refused by) the
    // bounded inbox, not in the writer's memory.
    let n = flood_behind_a_held_fdatasync(&feed, &plan, |n| feed.record(None, &msg(n))).await;
    let taken = feed.latest_seq().get();
    assert!(taken < 3 * 4_096, "the writer took {taken} of {n} records while one fdatasync was held");
    assert!(feed.stats().dropped > 0, "the inbox never filled");
    feed.close().await.unwrap();
}

/// The same with tokens (ephemeral events, live output on): they wait for
/// the held fdatasync too (they are published after the durable event
/// before them), and count against the same bound, so the inbox fills and
/// records are refused. The writer had taken every token while the
/// fdatasync was held, its memory growing for as long as the disk stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_behind_a_slow_fdatasync_push_back_on_producers_too() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Always)
        .segment_bytes(256 << 20)
        .retention_check(Duration::from_secs(3600))
        .live_output(events::LiveOutput::new())
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    let n = flood_behind_a_held_fdatasync(&feed, &plan, |n| feed.record(Some("s"), &Ev::Token(n))).await;
    let stats = feed.stats();
    let taken = stats.live_events + stats.live_evicted;
    assert!(taken < 3 * 4_096, "the writer took {taken} of {n} tokens while one fdatasync was held");
    assert!(stats.dropped > 0, "the inbox never filled");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_is_woken_for_every_pipelined_sync() {
    // No retention timer to wake a writer that missed a wake-up.
    let tmp = tempfile::tempdir().unwrap();
    let feed = open(tmp.path(), &FaultPlan::new()).await;
    let run = async {
        for _ in 0..3 {
            hammer(&feed, 512, 10).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(120), run).await.is_err() {
        panic!("the writer stalled with appends in flight: a lost wake-up");
    }
    assert_eq!(feed.latest_seq(), Seq::new(3 * 512 * 10));
    feed.close().await.unwrap();
}

/// Every appender whose event was in a batch whose fdatasync failed gets
/// the journal's error (`Error::Journal`, the `EIO`), not only the first:
/// the others were told `Unhealthy`, "after an earlier journal failure",
/// which is a later append's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_appender_of_a_batch_whose_fdatasync_failed_gets_the_journal_error() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    // The first append's fdatasync is slow, so the others gather in the next batch.
    plan.inject(Step::AppendSync, 0, Fault::Stall(Duration::from_secs(1)));
    plan.inject(Step::AppendSync, 1, Fault::Errno(libc::EIO));
    let feed = open(tmp.path(), &plan).await;
    let first = {
        let feed = feed.clone();
        tokio::spawn(async move { feed.append(None, msg(0)).await })
    };
    reached(&plan, Step::AppendSync, 1).await;
    let others: Vec<_> = (1..=15)
        .map(|n| {
            let feed = feed.clone();
            tokio::spawn(async move { feed.append(None, msg(n)).await })
        })
        .collect();
    assert_eq!(first.await.unwrap().unwrap(), Seq::new(1));
    let mut told_the_failure = 0;
    for task in others {
        match task.await.unwrap() {
            Err(Error::Journal(events::JournalError::Io { source, .. }))
                if source.raw_os_error() == Some(libc::EIO) =>
            {
                told_the_failure += 1;
            }
            // An appender a loaded machine ran only after the failure.
            Err(Error::Unhealthy { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    // All of them, unless the machine was slow to run the tasks; only one without the fix.
    assert!(told_the_failure >= 2, "{told_the_failure} of 15 got the journal's error");
    assert!(matches!(feed.append(None, msg(99)).await, Err(Error::Unhealthy { .. })));
    let _ = feed.close().await;
}

/// A feed of 512-byte segments keeping two, under `Always`, with `plan`.
async fn open_pruning(dir: &Path, plan: &FaultPlan) -> Feed<Ev> {
    Feed::builder(dir)
        .sync(SyncPolicy::Always)
        .segment_bytes(512)
        .retention(events::Retention::segments(2))
        .faults(plan.clone())
        .open()
        .await
        .unwrap()
}

/// Stream "s"'s first event at seq 1, then events of stream "o" one by one:
/// how many until retention removes seq 1 (the same each time: same sizes).
async fn appends_until_seq_1_is_pruned(feed: &Feed<Ev>, limit: u64) -> u64 {
    for n in 1..=limit {
        feed.append(Some("o"), msg(n)).await.unwrap();
        if feed.earliest_seq() > Seq::new(1) {
            return n;
        }
    }
    panic!("retention never removed seq 1");
}

/// A stream's version checked while the batch whose roll pruned the
/// stream's only event waits for its fdatasync: the event is gone, so the
/// stream has no version (`Exact(1)` is refused naming none). The check
/// had used the retention floor of the last published batch, from before
/// the roll, and accepted `Exact(1)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_checked_during_the_fdatasync_of_a_pruning_roll_sees_the_pruned_stream() {
    let expect = |e| AppendOptions::new().expect(e);
    let dry = tempfile::tempdir().unwrap();
    let feed = open_pruning(dry.path(), &FaultPlan::new()).await;
    feed.append_with(Some("s"), msg(0), expect(Expected::NoStream)).await.unwrap();
    let pruning = appends_until_seq_1_is_pruned(&feed, 200).await;
    feed.close().await.unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed = open_pruning(tmp.path(), &plan).await;
    let v1 = feed.append_with(Some("s"), msg(0), expect(Expected::NoStream)).await.unwrap().seq;
    assert_eq!(v1, Seq::new(1));
    for n in 1..pruning {
        feed.append(Some("o"), msg(n)).await.unwrap();
    }
    assert_eq!(feed.earliest_seq(), Seq::new(1));
    // The append whose roll prunes seq 1, held in its write so that another
    // queues behind it, then in the fdatasync the queue makes the writer
    // hand to its sync thread while it goes on (as in the first test).
    plan.inject_next(Step::AppendWrite, Fault::Stall(Duration::from_secs(1)));
    plan.inject_next(Step::AppendSync, Fault::Stall(Duration::from_secs(3)));
    let (writes, syncs) = (plan.count(Step::AppendWrite), plan.count(Step::AppendSync));
    let spawn = |n: u64| {
        let feed = feed.clone();
        tokio::spawn(async move { feed.append(Some("o"), msg(n)).await })
    };
    let rolling = spawn(pruning);
    reached(&plan, Step::AppendWrite, writes + 1).await;
    let queued = spawn(pruning + 1);
    reached(&plan, Step::AppendSync, syncs + 1).await;
    reached(&plan, Step::AppendWrite, writes + 2).await;
    assert!(!tmp.path().join(format!("{:020}.seg", 1)).exists(), "the roll removed seq 1's segment");
    let checked = feed.append_with(Some("s"), msg(999), expect(Expected::Exact(v1))).await;
    assert!(!rolling.is_finished(), "checked while the roll's batch waited for its fdatasync");
    assert!(matches!(checked, Err(Error::VersionConflict { current: None, .. })), "{checked:?}");
    rolling.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
    feed.close().await.unwrap();
}

/// An id appended to stream "s" and, while that append waits for its
/// fdatasync, again to stream "t": the second waits for the first's
/// outcome. Journaled, the second is refused with `EventIdTaken` naming
/// its seq (counted in `conflicts`); refused (the fdatasync fails), the
/// second shares the refusal, and the id names nothing: it had been told
/// at once that the id was taken, by an event that was never journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_in_flight_appended_to_another_stream_waits_for_its_outcome() {
    for fails in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let feed = open(tmp.path(), &plan).await;
        feed.append(Some("s"), msg(0)).await.unwrap();
        // The first append's write held, so that the second queues behind
        // it and is checked while the fdatasync is in flight (held too).
        plan.inject_next(Step::AppendWrite, Fault::Stall(Duration::from_millis(500)));
        let sync = if fails {
            Fault::StallErrno(Duration::from_millis(500), libc::EIO)
        } else {
            Fault::Stall(Duration::from_millis(500))
        };
        plan.inject_next(Step::AppendSync, sync);
        let (writes, syncs) = (plan.count(Step::AppendWrite), plan.count(Step::AppendSync));
        let spawn = |stream: &'static str, n: u64| {
            let feed = feed.clone();
            tokio::spawn(async move { feed.append_with(Some(stream), msg(n), AppendOptions::new().id("job-1")).await })
        };
        let first = spawn("s", 1);
        reached(&plan, Step::AppendWrite, writes + 1).await;
        let second = spawn("t", 2);
        reached(&plan, Step::AppendSync, syncs + 1).await;
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        if fails {
            assert!(first.is_err(), "{first:?}");
            assert!(matches!(second, Err(Error::Journal(_) | Error::Unhealthy { .. })), "{second:?}");
        } else {
            let first = first.unwrap();
            match second {
                Err(Error::EventIdTaken { id, seq }) => assert_eq!((id.as_str(), seq), ("job-1", first.seq)),
                other => panic!("expected EventIdTaken, got {other:?}"),
            }
            assert_eq!(feed.stats().conflicts, 1);
        }
        let _ = feed.close().await;
    }
}
