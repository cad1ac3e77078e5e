//! Durable named consumers, from the outside:
//!
//! * a consumer in a child process, SIGKILLed at a different point 24 times
//!   and restarted each time, resumes right after its persisted checkpoint:
//!   no gap over the whole run, and each restart redelivers at most
//!   `ConsumerOptions::every` events;
//! * retention keeps the segments a slow consumer needs until it is further
//!   behind than the feed's consumer limit, then cuts it loose: its next
//!   read is an explicit `Reset { Expired }`, its report says it is no longer
//!   pinned, and the disk stops growing;
//! * names are validated with a typed error; listing and deleting work from
//!   a reader as they would from another process.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use events::layers::journal::fault::{Fault, FaultPlan, Step};
use events::layers::journal::{ConsumerFile, JournalError};
use events::{
    Consumer, ConsumerOptions, Error, Feed, FeedItem, FeedReader, FeedStream, ResetReason, Retention, Seq, SyncPolicy,
};
use futures::StreamExt;
use support::{Ev, msg, take_events};

const CHILD_ENV: &str = "EVENTS_CONSUMER_DURABLE_CHILD";
const EVERY: u64 = 16;
const INITIAL: u64 = 2000;
const KILLS: usize = 24;

/// The child: a consumer that prints each seq it processes, then commits it.
async fn consumer_child(dir: &Path) {
    let reader: FeedReader<Ev> = FeedReader::open(dir).unwrap().poll_interval(Duration::from_millis(2));
    let options = ConsumerOptions { every: EVERY, interval: Duration::from_secs(3600) };
    let consumer = reader.consumer_with("worker", options).await.unwrap();
    let mut stream = consumer.stream();
    let mut out = std::io::stdout().lock();
    writeln!(out, "START {}", consumer.persisted()).unwrap();
    while let Some(item) = stream.next().await {
        let FeedItem::Event(env) = item.unwrap() else { panic!("unexpected reset") };
        assert_eq!(env.event, msg(env.seq.get()), "payload of seq {}", env.seq);
        writeln!(out, "SEQ {}", env.seq).unwrap();
        out.flush().unwrap();
        consumer.commit(env.seq).await.unwrap();
        // Slow enough that the parent's kill lands mid-stream, not at the end.
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// A small deterministic generator, so a failing run can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_at_random_points_resumes_after_its_checkpoint_with_no_gap() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        consumer_child(Path::new(&dir)).await;
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).sync(SyncPolicy::Never).open().await.unwrap();
    for n in 1..=INITIAL {
        feed.append(None, msg(n)).await.unwrap();
    }
    let mut rng = Lcg(0x5eed_cafe);
    let mut processed_up_to = 0u64; // the highest seq any run printed
    let mut redelivered = 0u64;
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "a_consumer_killed_at_random_points_resumes_after_its_checkpoint_with_no_gap",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // A hung child must fail the test ("ended early"), not hang it.
        let pid = child.id() as libc::pid_t;
        let reaped = Arc::new(AtomicBool::new(false));
        std::thread::spawn({
            let reaped = Arc::clone(&reaped);
            move || {
                std::thread::sleep(Duration::from_secs(60));
                if !reaped.load(Ordering::SeqCst) {
                    // SAFETY: kill(2) of our own child, not yet reaped (so its pid is not reused).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(Result::unwrap);
        let start: u64 = lines.find_map(|l| l.strip_prefix("START ").map(|s| s.parse().unwrap())).unwrap();
        let checkpoint = feed.reader().consumers().unwrap()[0].checkpoint.unwrap().get();
        assert_eq!(start, checkpoint, "kill {kill}: the child resumed from the checkpoint on disk");
        assert!(
            start <= processed_up_to,
            "kill {kill}: checkpoint {start} past the last processed {processed_up_to}: a gap"
        );
        assert!(
            start + EVERY >= processed_up_to,
            "kill {kill}: checkpoint {start} is more than {EVERY} behind {processed_up_to}"
        );
        redelivered += processed_up_to - start;

        // Every run has more unprocessed events than it will be asked to
        // print, however far the last child ran ahead before its kill; half
        // the runs also see events appended while they consume.
        let mut next = feed.latest_seq().get() + 1;
        while next <= start + 200 {
            feed.append(None, msg(next)).await.unwrap();
            next += 1;
        }
        if kill % 2 == 1 {
            for n in next..next + 50 {
                feed.append(None, msg(n)).await.unwrap();
            }
        }
        let stop_after = 1 + rng.below(150);
        let mut expected = start + 1;
        let check = |line: String, expected: &mut u64| {
            // The test harness prints its own lines around the child's.
            if let Some(seq) = line.strip_prefix("SEQ ") {
                assert_eq!(seq.parse::<u64>().unwrap(), *expected, "kill {kill}: a gap or a duplicate inside one run");
                *expected += 1;
            }
        };
        while expected <= start + stop_after {
            check(lines.next().expect("the child ended early"), &mut expected);
        }
        child.kill().unwrap(); // SIGKILL, wherever the child is
        reaped.store(true, Ordering::SeqCst);
        child.wait().unwrap();
        // What the child printed before it died (its commit follows the print).
        for line in lines {
            check(line, &mut expected);
        }
        processed_up_to = processed_up_to.max(expected - 1);
    }
    let last = feed.reader().consumers().unwrap().remove(0);
    assert!(last.checkpoint.unwrap().get() + EVERY >= processed_up_to);
    assert!(redelivered <= EVERY * KILLS as u64, "redelivered {redelivered} over {KILLS} kills");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_waits_for_a_slow_consumer_until_its_limit_then_cuts_it_loose() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Never)
        .segment_bytes(1024)
        .retention(Retention::segments(2))
        .consumer_limit(Retention::segments(8))
        .open()
        .await
        .unwrap();
    let slow = feed.consumer("slow").await.unwrap();
    let segment_files = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
            .count()
    };
    let mut n = 0;
    // Append while the consumer's segments still fit in the limit.
    while segment_files() < 7 {
        n += 1;
        feed.append(None, msg(n)).await.unwrap();
    }
    let per_segment = n / 7;
    assert_eq!(feed.earliest_seq(), Seq::new(1), "retention kept everything the consumer needs");
    let report = &feed.stats().consumers[0];
    assert!(report.pinned && report.lag == n, "{report:?}");
    let mut s = slow.stream();
    assert_eq!(take_events(&mut s, 3).await[0].0, Seq::new(1));
    drop(s);

    // Past the limit: cut loose, the disk is bounded, and the next read resets.
    for _ in 0..n * 3 {
        n += 1;
        feed.append(None, msg(n)).await.unwrap();
    }
    assert!(feed.earliest_seq() > Seq::new(1), "retention went on past the limit");
    assert!(segment_files() <= 9, "the disk is bounded: {} segments", segment_files());
    let report = &feed.stats().consumers[0];
    assert!(!report.pinned, "{report:?}");
    let mut s = slow.stream();
    let Some(Ok(FeedItem::Reset { reason, earliest, .. })) = s.next().await else { panic!("expected a reset") };
    assert_eq!((reason, earliest), (ResetReason::Expired, feed.earliest_seq()));

    // A consumer that keeps up releases its segments at the next pass.
    slow.commit(Seq::new(n)).await.unwrap();
    slow.flush().await.unwrap();
    assert!(feed.stats().consumers[0].pinned);
    // And is pinned again: four segments' worth of appends later, within
    // its limit, retention (two segments) still keeps its next event. The
    // report's `pinned` alone is true by its checkpoint's place whatever
    // retention does (a test audit found the row rested on it).
    let next = n + 1;
    for _ in 0..per_segment * 4 {
        n += 1;
        feed.append(None, msg(n)).await.unwrap();
    }
    assert!(segment_files() > 3, "more segments than retention keeps: {}", segment_files());
    assert!(feed.earliest_seq() <= Seq::new(next), "kept for the consumer again: earliest {:?}", feed.earliest_seq());
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_validated_and_consumers_are_listed_committed_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).open().await.unwrap();
    for bad in ["", ".hidden", "a/b", "x".repeat(65).as_str(), "sp ace"] {
        match feed.consumer(bad).await {
            Err(Error::Journal(JournalError::InvalidConsumerName { .. })) => {}
            other => panic!("{bad:?}: expected InvalidConsumerName, got {other:?}"),
        }
    }
    for n in 1..=10 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let options = ConsumerOptions { every: 4, interval: Duration::from_secs(3600) };
    let a = feed.reader().consumer_with("alpha", options).await.unwrap();
    a.commit(Seq::new(3)).await.unwrap();
    assert_eq!((a.committed(), a.persisted()), (Seq::new(3), Seq::ZERO), "below `every`: kept in memory");
    a.commit(Seq::new(4)).await.unwrap();
    assert_eq!(a.persisted(), Seq::new(4), "at `every`: persisted");
    a.commit(Seq::new(2)).await.unwrap();
    assert_eq!(a.committed(), Seq::new(4), "progress never moves back");
    let b = feed.consumer("beta").await.unwrap();

    // Seen from another process's point of view: a follower on the directory.
    let reader: FeedReader<Ev> = FeedReader::open(tmp.path()).unwrap();
    let listed: Vec<_> = reader.consumers().unwrap().into_iter().map(|c| (c.name, c.checkpoint, c.lag)).collect();
    assert_eq!(
        listed,
        [("alpha".to_owned(), Some(Seq::new(4)), 6), ("beta".to_owned(), Some(Seq::ZERO), 10)],
        "sorted by name, with the persisted checkpoint and the lag"
    );
    // Running, it is in use: the delete is refused until it stops.
    assert!(matches!(reader.delete_consumer("beta"), Err(Error::Journal(JournalError::ConsumerInUse { .. }))));
    drop(b);
    assert!(reader.delete_consumer("beta").unwrap());
    assert!(!reader.delete_consumer("beta").unwrap());
    assert_eq!(feed.stats().consumers.len(), 1);
    feed.close().await.unwrap();
}

/// A new feed in `dir` holding events 1..=3.
async fn three_events(dir: &Path) -> Feed<Ev> {
    let feed: Feed<Ev> = Feed::builder(dir).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    feed
}

/// The journal in `dir` (closed) recreated under its consumers: a new
/// epoch, their checkpoints kept, events 1..=5 of the new journal.
async fn recreated(dir: &Path) -> Feed<Ev> {
    let checkpoints = dir.join(events::layers::journal::CONSUMERS_DIR);
    let kept = tempfile::tempdir().unwrap();
    std::fs::rename(&checkpoints, kept.path().join("c")).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let feed: Feed<Ev> = Feed::builder(dir).open().await.unwrap();
    std::fs::rename(kept.path().join("c"), &checkpoints).unwrap();
    for n in 1..=5 {
        feed.append(None, msg(100 + n)).await.unwrap();
    }
    feed
}

/// A restarted consumer "proj" whose checkpoint names `old_epoch`: one
/// `EpochMismatch` reset, then the recreated journal's events 1..=5.
async fn restarts_with_the_reset_then_the_new_journal(reader: &FeedReader<Ev>, old_epoch: u64) {
    let consumer = reader.consumer("proj").await.unwrap();
    let mut stream = consumer.stream();
    let Some(Ok(FeedItem::Reset { reason, .. })) = stream.next().await else { panic!("expected a reset") };
    assert!(
        matches!(reason, ResetReason::EpochMismatch { cursor_epoch, .. } if cursor_epoch == old_epoch),
        "{reason:?}"
    );
    let got = take_events(&mut stream, 5).await;
    assert_eq!(got.iter().map(|(s, _)| s.get()).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "the new journal from its start");
}

/// A directory recreated between an event and its commit: the commit keeps
/// the epoch of the journal the event came from, so the restarted consumer
/// gets an `EpochMismatch` reset and the new journal from its start, instead
/// of skipping the new journal's first seqs as if it had processed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_the_directory_was_recreated_keeps_the_old_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = three_events(tmp.path()).await;
    let old_epoch = feed.epoch();
    let reader: FeedReader<Ev> = FeedReader::open(tmp.path()).unwrap().poll_interval(Duration::from_millis(2));
    let consumer =
        reader.consumer_with("proj", ConsumerOptions { every: 1, interval: Duration::from_secs(3600) }).await.unwrap();
    let mut stream = consumer.stream();
    let got = take_events(&mut stream, 3).await;
    assert_eq!(got.last().unwrap().0, Seq::new(3));

    // The journal is replaced under the consumer before it commits.
    feed.close().await.unwrap();
    let feed = recreated(tmp.path()).await;
    assert_ne!(feed.epoch(), old_epoch);
    consumer.commit(Seq::new(3)).await.unwrap();
    drop((stream, consumer));

    restarts_with_the_reset_then_the_new_journal(&reader, old_epoch).await;
    feed.close().await.unwrap();
}

/// A follower's consumer "proj" (persisting every commit) that took events
/// 1..=3, then the directory recreated under it (`recreated`), and its
/// stream moved past the `EpochMismatch` reset: the new feed, the reader,
/// the consumer, its stream and the old journal's epoch.
async fn past_the_recreation(dir: &Path) -> (Feed<Ev>, FeedReader<Ev>, Consumer<Ev>, FeedStream<Ev>, u64) {
    let feed = three_events(dir).await;
    let reader: FeedReader<Ev> = FeedReader::open(dir).unwrap().poll_interval(Duration::from_millis(2));
    let consumer =
        reader.consumer_with("proj", ConsumerOptions { every: 1, interval: Duration::from_secs(3600) }).await.unwrap();
    let mut stream = consumer.stream();
    let got = take_events(&mut stream, 3).await;
    let old = stream.epoch().unwrap();
    assert_eq!((got.last().unwrap().0, old), (Seq::new(3), feed.epoch()));
    feed.close().await.unwrap();
    let feed = recreated(dir).await;
    let Some(Ok(FeedItem::Reset { .. })) = stream.next().await else { panic!("expected the epoch reset") };
    (feed, reader, consumer, stream, old)
}

/// A follower's consumer "proj" (persisting every commit) past events
/// 1..=3 of its journal, which is then replaced whole, checkpoints and all
/// (renamed away; a new journal made at the path with events 1..=5). The
/// consumer's stream gives the epoch reset and the new journal's 1..=5,
/// and its commit of 5 lands in the new journal's `consumers/`: restarted,
/// it resumes at the new journal's 6. The commit had gone to the old
/// checkpoint file, renamed away with its journal; the restarted consumer
/// found none, started as new, and got 1..=5 again with no reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_the_whole_directory_is_replaced_lands_in_the_new_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let feed = three_events(&dir).await;
    let reader: FeedReader<Ev> = FeedReader::open(&dir).unwrap().poll_interval(Duration::from_millis(2));
    let options = ConsumerOptions { every: 1, interval: Duration::from_secs(3600) };
    let consumer = reader.consumer_with("proj", options).await.unwrap();
    let mut stream = consumer.stream();
    take_events(&mut stream, 3).await;
    consumer.commit(Seq::new(3)).await.unwrap();
    feed.close().await.unwrap();
    std::fs::rename(&dir, tmp.path().join("moved")).unwrap();
    let feed: Feed<Ev> = Feed::builder(&dir).open().await.unwrap();
    for n in 1..=5 {
        feed.append(None, msg(100 + n)).await.unwrap();
    }
    let Some(Ok(FeedItem::Reset { reason: ResetReason::EpochMismatch { .. }, .. })) = stream.next().await else {
        panic!("expected the epoch reset")
    };
    let got = take_events(&mut stream, 5).await;
    assert_eq!(got.iter().map(|(s, _)| s.get()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    consumer.commit(Seq::new(5)).await.unwrap();
    assert_eq!(consumer.persisted(), Seq::new(5));
    drop((stream, consumer));
    feed.append(None, msg(106)).await.unwrap();

    let consumer = reader.consumer("proj").await.unwrap();
    let first = consumer.stream().next().await;
    assert!(matches!(&first, Some(Ok(FeedItem::Event(env))) if env.seq == Seq::new(6)), "{first:?}");
    feed.close().await.unwrap();
}

/// A consumer that takes the reset before it commits the old journal's last
/// event (it buffers items) names that event's epoch with `commit_in`: the
/// restarted consumer then gets the reset and the new journal from seq 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_the_events_epoch_after_the_stream_took_the_reset() {
    let tmp = tempfile::tempdir().unwrap();
    // The stream moves past the reset before event 3 is committed.
    let (feed, reader, consumer, stream, taken_in) = past_the_recreation(tmp.path()).await;
    consumer.commit_in(Seq::new(3), taken_in).await.unwrap();
    drop((stream, consumer));

    restarts_with_the_reset_then_the_new_journal(&reader, taken_in).await;
    feed.close().await.unwrap();
}

/// Workers finishing out of order across a recreated journal: a commit in
/// the new journal's epoch, then a late one of the old journal's last event
/// (`commit_in` its epoch). The late one moves nothing back: the restarted
/// consumer resumes in the new journal after its commit. It had replaced
/// the new journal's progress with the old one's, and the restart began the
/// new journal again from seq 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_of_the_replaced_journal_moves_nothing_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (feed, reader, consumer, mut stream, old) = past_the_recreation(tmp.path()).await;
    take_events(&mut stream, 2).await;
    consumer.commit(Seq::new(2)).await.unwrap();
    consumer.commit_in(Seq::new(3), old).await.unwrap();
    assert_eq!(consumer.persisted(), Seq::new(2));
    drop((stream, consumer));

    let consumer = reader.consumer("proj").await.unwrap();
    let got = take_events(&mut consumer.stream(), 3).await;
    assert_eq!(got.iter().map(|(s, _)| s.get()).collect::<Vec<_>>(), [3, 4, 5], "resumed after 2 of the new journal");
    feed.close().await.unwrap();
}

/// A persist that fails (EIO on the checkpoint's write, then on its
/// fdatasync) is the commit's error; the same commit retried, or a flush,
/// persists it, and a restarted consumer resumes after it. A retry used to
/// answer `Ok` without writing, since the seq was no longer newer than the
/// committed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_retried_after_a_failed_persist_persists() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).faults(plan.clone()).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let options = ConsumerOptions { every: 1, interval: Duration::from_secs(3600) };
    let consumer = feed.reader().consumer_with("proj", options).await.unwrap();
    plan.inject_next(Step::Checkpoint, Fault::Errno(libc::EIO));
    assert!(matches!(consumer.commit(Seq::new(2)).await, Err(Error::Journal(JournalError::Io { .. }))));
    assert_eq!((consumer.committed(), consumer.persisted()), (Seq::new(2), Seq::ZERO));
    consumer.commit(Seq::new(2)).await.unwrap();
    assert_eq!(consumer.persisted(), Seq::new(2), "the retried commit persisted");

    // A failed fdatasync (the write itself went through), then a flush.
    let other = feed.reader().consumer_with("other", options).await.unwrap();
    plan.inject(Step::Checkpoint, plan.count(Step::Checkpoint) + 1, Fault::Errno(libc::EIO));
    assert!(other.commit(Seq::new(3)).await.is_err(), "the fdatasync failed");
    other.flush().await.unwrap();
    drop((consumer, other));

    for (name, resumes_after) in [("proj", 2), ("other", 3)] {
        let consumer = feed.consumer(name).await.unwrap();
        assert_eq!(consumer.persisted(), Seq::new(resumes_after), "{name}");
    }
    feed.close().await.unwrap();
}

/// A flush held by a slow disk (its fdatasync held until the test is done): the
/// consumer's other calls answer meanwhile, from another thread and on the
/// async workers (`committed`, `persisted`, a commit that does not
/// persist). They took the lock the flush held through its write and
/// fdatasync, on the async workers: two such calls stopped every task of a
/// two-worker runtime for as long as the disk took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_on_a_slow_disk_holds_up_no_other_call() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).faults(plan.clone()).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let options = ConsumerOptions { every: 1000, interval: Duration::from_secs(3600) };
    let consumer = Arc::new(feed.reader().consumer_with("slow", options).await.unwrap());
    consumer.commit(Seq::new(1)).await.unwrap(); // in memory only
    // The flush's write is the next checkpoint step, its fdatasync the one after.
    let before = plan.count(Step::Checkpoint);
    plan.inject(Step::Checkpoint, before + 1, Fault::Hold);
    let flushing = tokio::spawn({
        let consumer = Arc::clone(&consumer);
        async move { consumer.flush().await }
    });
    support::eventually("the flush waits in its fdatasync", || plan.count(Step::Checkpoint) >= before + 2).await;
    let (answer, answered) = std::sync::mpsc::channel();
    std::thread::spawn({
        let consumer = Arc::clone(&consumer);
        move || answer.send((consumer.committed(), consumer.persisted()))
    });
    // A bound on a hang, not a timing: the answer takes microseconds.
    let figures = answered.recv_timeout(Duration::from_secs(5)).expect("answered while the flush waits for its disk");
    assert_eq!(figures, (Seq::new(1), Seq::ZERO));
    consumer.commit(Seq::new(2)).await.unwrap();
    let waiting = !flushing.is_finished();
    plan.release();
    assert!(waiting, "the flush still waits for its disk");
    flushing.await.unwrap().unwrap();
    assert_eq!((consumer.committed(), consumer.persisted()), (Seq::new(2), Seq::new(1)));
    feed.close().await.unwrap();
}

/// Commits that each persist (`every: 1`), cut short by a timeout while a
/// slow disk holds the first flush (its fdatasync stalled for 6 s), on a
/// runtime of 4 blocking threads: the blocking pool stays free for other
/// work, and the last commit's progress is persisted once the disk
/// answers. Each commit had parked a blocking thread on the checkpoint
/// file behind the stalled one: the pool was full, and every other
/// blocking job of the process waited for the disk (found by audit).
#[test]
fn commits_cut_short_behind_a_slow_flush_hold_no_blocking_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tmp = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let feed: Feed<Ev> = Feed::builder(tmp.path()).faults(plan.clone()).open().await.unwrap();
        for n in 1..=10 {
            feed.append(None, msg(n)).await.unwrap();
        }
        let options = ConsumerOptions { every: 1, interval: Duration::from_secs(3600) };
        let consumer = feed.reader().consumer_with("slow", options).await.unwrap();
        // The flush's write is the next checkpoint step, its fdatasync the one after.
        let before = plan.count(Step::Checkpoint);
        plan.inject(Step::Checkpoint, before + 1, Fault::Stall(Duration::from_secs(6)));
        for seq in 1..=10 {
            let _ = tokio::time::timeout(Duration::from_millis(20), consumer.commit(Seq::new(seq))).await;
        }
        // The first flush is in its stalled fdatasync (else the pool is
        // free for nothing), and no other reached the disk.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while plan.count(Step::Checkpoint) < before + 2 {
            assert!(std::time::Instant::now() < deadline, "no flush reached the stalled fdatasync");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(plan.count(Step::Checkpoint), before + 2, "only the first flush reached the disk");
        // A bound on a hang, not a timing: a free pool runs it at once.
        let free = tokio::time::timeout(Duration::from_secs(3), tokio::task::spawn_blocking(|| ())).await;
        assert!(free.is_ok(), "the blocking pool is full of commits waiting for the slow flush");
        consumer.flush().await.unwrap();
        assert_eq!(consumer.persisted(), Seq::new(10));
        feed.close().await.unwrap();
    });
}

/// An open of a consumer cut short by a timeout while a slow disk holds
/// its first checkpoint (its write stalled for 3 s): its file work goes
/// on, and an open of the same name right after waits for it, then gets
/// the consumer. It had waited `CONSUMER_OPEN_WAIT` (2 s) for the lock the
/// abandoned open held, and was refused with `ConsumerInUse` though no
/// handle existed anywhere (found by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_cut_short_does_not_lock_out_the_next() {
    let (_tmp, feed) = an_open_abandoned_on_a_slow_disk(Duration::from_secs(3)).await;
    let consumer = feed.consumer("idx").await.expect("locked out by an open whose caller is gone");
    assert_eq!(consumer.persisted(), Seq::ZERO);
    drop(consumer);
    feed.close().await.unwrap();
}

/// A feed holding one event, and an open of its consumer "idx" cut short
/// by a timeout while a slow disk holds the open's first checkpoint write
/// for `stall` (a slow disk, not a hold: the abandoned open must end by
/// itself while the next one waits).
async fn an_open_abandoned_on_a_slow_disk(stall: Duration) -> (tempfile::TempDir, Feed<Ev>) {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(tmp.path()).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    // The open's first commit: its write is the next checkpoint step.
    let before = plan.count(Step::Checkpoint);
    plan.inject(Step::Checkpoint, before + 1, Fault::Stall(stall));
    let cut = tokio::time::timeout(Duration::from_millis(100), feed.consumer("idx")).await;
    assert!(cut.is_err(), "the open was not held by the slow disk");
    support::eventually("the abandoned open waits on its disk", || plan.count(Step::Checkpoint) > before).await;
    (tmp, feed)
}

/// The same with a disk that holds the abandoned open longer (7 s) than
/// the next open waits for it (`CONSUMER_OPEN_WAIT`, 2 s) and then for the
/// file's lock (2 s more): the next open is refused with `ConsumerInUse`,
/// not held until the disk answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_behind_one_stuck_on_the_disk_is_refused_in_time() {
    let (_tmp, feed) = an_open_abandoned_on_a_slow_disk(Duration::from_secs(7)).await;
    // Waited for until the disk answered, it would have been handed the
    // consumer (the abandoned open lets go of the file when it ends).
    let refused = feed.consumer("idx").await.map(drop);
    assert!(matches!(refused, Err(Error::Journal(JournalError::ConsumerInUse { .. }))), "{refused:?}");
    feed.close().await.unwrap();
}

/// A new consumer while retention prunes: its first checkpoint (the
/// earliest retained event) is held by a slow disk while the writer rolls
/// and prunes past it. It still starts with the earliest retained event,
/// with no reset: it missed nothing. It wrote the earliest it had read
/// before, which retention had removed meanwhile, and began with
/// `Reset { Expired }`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_opened_while_retention_prunes_starts_with_no_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Never)
        .segment_bytes(1024)
        .retention(Retention::segments(2))
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    async fn append_until(feed: &Feed<Ev>, goal: u64) {
        while feed.earliest_seq().get() < goal {
            let n = feed.latest_seq().get() + 1;
            feed.append(None, msg(n)).await.unwrap();
        }
    }
    append_until(&feed, 2).await;
    plan.inject(Step::Checkpoint, plan.count(Step::Checkpoint), Fault::Stall(Duration::from_secs(1)));
    let opening = tokio::spawn({
        let reader = feed.reader();
        async move { reader.consumer("late").await }
    });
    support::eventually("the first checkpoint is being written", || plan.count(Step::Checkpoint) >= 1).await;
    let before = feed.earliest_seq();
    append_until(&feed, before.get() + 50).await;
    let consumer = opening.await.unwrap().unwrap();
    let first = consumer.stream().next().await.unwrap().unwrap();
    assert!(matches!(first, FeedItem::Event(_)), "{first:?}");
    feed.close().await.unwrap();
}

/// An event of about 600 bytes: with 1 KiB segments, every append after a
/// segment's first rolls.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Big(String);

impl events::Event for Big {}

/// A new consumer opened under `SyncPolicy::Always` while an append waits
/// on its fdatasync (held by a slow disk until the consumer has read), after its roll's retention
/// removed the oldest segment: the feed publishes its earliest seq only
/// after the fdatasync, the files already begin later. The consumer starts
/// with the files' earliest event, with no reset. It took the published
/// one, committed it, read the same again and stopped looking: its stream
/// began with `Reset { Expired }` (unless the feed still kept the events
/// after it in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_opened_while_a_pruning_append_waits_on_its_fdatasync_starts_with_no_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Big> = Feed::builder(tmp.path())
        .sync(SyncPolicy::Always)
        .segment_bytes(1024)
        .retention(Retention::segments(2))
        // The newest event alone is kept in memory: the stream reads the rest.
        .live_capacity(1)
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    let big = || Big("x".repeat(600));
    while feed.earliest_seq() < Seq::new(3) {
        feed.append(None, big()).await.unwrap();
    }
    let before = plan.count(Step::AppendSync);
    plan.inject(Step::AppendSync, before, Fault::Hold);
    let appending = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, big()).await }
    });
    support::eventually("the append waits in its fdatasync", || plan.count(Step::AppendSync) > before).await;
    let files = FeedReader::<Big>::open(tmp.path()).unwrap().earliest_seq();
    assert!(files > feed.earliest_seq(), "the roll removed a segment the feed has not published yet");
    // A bound on a hang (the consumer waiting for the held append), not a timing.
    let first = tokio::time::timeout(Duration::from_secs(20), async {
        let consumer = feed.consumer("late").await.unwrap();
        consumer.stream().next().await
    })
    .await;
    let held = !appending.is_finished();
    plan.release();
    match first {
        Ok(Some(Ok(FeedItem::Event(env)))) => assert_eq!(env.seq, files),
        other => panic!("{other:?}"),
    }
    assert!(held, "the consumer read while the append waited on its fdatasync");
    appending.await.unwrap().unwrap();
    feed.close().await.unwrap();
}

/// A new consumer whose first open was killed after it made the
/// checkpoint file (generation 1, seq 0) and before its first commit, on a
/// journal whose retention removed seq 1: opened again, it is still new,
/// and starts with the earliest retained event, with no reset. The file
/// was taken as an existing consumer's at seq 0, whose stream began with
/// `Reset { Expired }` (under `OnExpired::Latest`, past every event).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_first_open_was_killed_before_it_committed_is_still_new() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = support::pruned_feed(tmp.path(), 200).await;
    assert!(feed.earliest_seq() > Seq::new(1), "seq 1 pruned");
    // The killed open: the file made, nothing committed.
    let (file, checkpoint) = ConsumerFile::open(tmp.path(), "late", feed.epoch()).unwrap();
    assert_eq!((checkpoint.generation, checkpoint.seq), (1, 0));
    drop(file);
    let consumer = feed.consumer("late").await.unwrap();
    assert_eq!(consumer.persisted().get() + 1, feed.earliest_seq().get());
    match consumer.stream().next().await {
        Some(Ok(FeedItem::Event(env))) => assert_eq!(env.seq, feed.earliest_seq()),
        other => panic!("{other:?}"),
    }
    drop(consumer);
    // One of another journal's epoch, never committed either, is not new:
    // it starts with the epoch reset, its signal to rebuild.
    let other_epoch = feed.epoch() ^ 1;
    drop(ConsumerFile::open(tmp.path(), "older", other_epoch).unwrap());
    let consumer = feed.consumer("older").await.unwrap();
    match consumer.stream().next().await {
        Some(Ok(FeedItem::Reset { reason: ResetReason::EpochMismatch { .. }, .. })) => {}
        other => panic!("{other:?}"),
    }
    feed.close().await.unwrap();
}

/// A second `consumer(name)` while the first is alive, as a second process
/// running the same indexer would: refused with `ConsumerInUse` naming it
/// (after `CONSUMER_OPEN_WAIT`). Both had run: each persisted its own
/// progress over the other's, moving the checkpoint back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_of_a_consumer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    let first = feed.consumer("indexer").await.unwrap();
    match feed.consumer("indexer").await {
        Err(Error::Journal(JournalError::ConsumerInUse { name, .. })) => assert_eq!(name, "indexer"),
        other => panic!("a second instance opened: {:?}", other.map(|_| ())),
    }
    drop(first);
    feed.consumer("indexer").await.expect("the name opens once the first is gone");
    feed.close().await.unwrap();
}

/// `commit(Seq::MAX)` (a "commit everything" guess) is refused with
/// `CheckpointSeq`, and changes nothing: later commits go on from where
/// the consumer was. It had been taken in memory (holding back every later
/// commit as "at or below" it) and persisted into a slot the next open
/// refuses, so the restart resumed from the older checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_past_any_journals_seq_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let feed = three_events(dir.path()).await;
    let consumer = feed.consumer("indexer").await.unwrap();
    consumer.commit(Seq::new(1)).await.unwrap();
    consumer.flush().await.unwrap();
    match consumer.commit(Seq::MAX).await {
        Err(Error::Journal(JournalError::CheckpointSeq { seq, .. })) => assert_eq!(seq, u64::MAX),
        other => panic!("{other:?}"),
    }
    assert_eq!(consumer.committed(), Seq::new(1));
    consumer.commit(Seq::new(2)).await.unwrap();
    consumer.flush().await.unwrap();
    drop(consumer);
    assert_eq!(feed.consumer("indexer").await.unwrap().persisted(), Seq::new(2));
    feed.close().await.unwrap();
}

/// A checkpoint past the journal's end (a copy of the segments restored
/// under a newer `consumers/`): the stream yields `Reset { Ahead }` and the journal from
/// its start, and commits of those events move the progress back to them,
/// so the restart after the journal grew resumes after the last one
/// processed; the first such commit is persisted at once. They had been
/// ignored as "at or below" the checkpoint: the restart resumed past the
/// journal's new events up to the old checkpoint, skipping them with no
/// reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_after_a_reset_ahead_move_the_progress_back() {
    let dir = tempfile::tempdir().unwrap();
    let feed = three_events(dir.path()).await;
    // A checkpoint past the journal's end (as under segments restored from
    // an older copy): `commit` refuses such a seq.
    let (mut file, _) = ConsumerFile::open(dir.path(), "ahead", feed.epoch()).unwrap();
    file.commit(10, feed.epoch()).unwrap();
    drop(file);
    let consumer = feed.consumer("ahead").await.unwrap();
    let mut stream = consumer.stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, FeedItem::Reset { reason: ResetReason::Ahead, .. }), "{first:?}");
    // The journal grows past the old checkpoint before anything is
    // committed, and the stream reads all of it ahead of the commits.
    for n in 4..=12 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 12 {
        let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("events 1..=12") };
        seen.push(env.seq);
    }
    assert_eq!(seen, (1..=12).map(Seq::new).collect::<Vec<_>>());
    for seq in 1..=3 {
        consumer.commit(Seq::new(seq)).await.unwrap();
        // Gone back, persisted at once (not after `every` commits).
        assert_eq!(consumer.persisted(), Seq::new(1), "after the commit of {seq}");
    }
    consumer.flush().await.unwrap();
    assert_eq!(consumer.persisted(), Seq::new(3));
    drop((stream, consumer));
    let consumer = feed.consumer("ahead").await.unwrap();
    let mut stream = consumer.stream();
    let Some(Ok(FeedItem::Event(env))) = stream.next().await else { panic!("an event first") };
    assert_eq!(env.seq, Seq::new(4), "resumes after the last event processed");
    drop((stream, consumer));
    feed.close().await.unwrap();
}

/// A commit of a seq past the journal's latest (no such event was handed
/// out): refused with `CommitAhead`, nothing committed. Accepted, it had
/// been persisted; the consumer's commits of the events up to it, once the
/// journal grew past it, were ignored as "at or below" it, and a restart
/// resumed after it: events processed by no one, with no reset. The same
/// for a consumer of a reader in another process's place (a follower).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_past_the_journals_latest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let feed = three_events(dir.path()).await;
    let consumer =
        feed.reader().consumer_with("eager", ConsumerOptions { every: 1, ..Default::default() }).await.unwrap();
    let mut stream = consumer.stream();
    assert_eq!(seqs(take_events(&mut stream, 3).await), [1, 2, 3]);
    let refused = consumer.commit(Seq::new(10)).await;
    assert!(
        matches!(&refused, Err(Error::CommitAhead { seq, latest, .. }) if (seq.get(), latest.get()) == (10, 3)),
        "{refused:?}"
    );
    assert_eq!((consumer.committed(), consumer.persisted()), (Seq::ZERO, Seq::ZERO));
    for n in 4..=12 {
        feed.append(None, msg(n)).await.unwrap();
    }
    consumer.commit(Seq::new(3)).await.unwrap();
    assert_eq!(seqs(take_events(&mut stream, 2).await), [4, 5]);
    consumer.commit(Seq::new(5)).await.unwrap();
    drop((stream, consumer));
    let consumer = feed.consumer("eager").await.unwrap();
    let Some(Ok(FeedItem::Event(env))) = consumer.stream().next().await else { panic!("an event first") };
    assert_eq!(env.seq, Seq::new(6), "resumes after the last event processed");
    drop(consumer);

    let follower = FeedReader::<Ev>::open(dir.path()).unwrap().poll_interval(Duration::from_millis(2));
    let consumer = follower.consumer("eager").await.unwrap();
    let refused = consumer.commit(Seq::new(13)).await;
    assert!(matches!(&refused, Err(Error::CommitAhead { latest, .. }) if latest.get() == 12), "{refused:?}");
    consumer.commit(Seq::new(12)).await.unwrap();
    // Past what the follower last looked at, but handed out by its stream.
    for n in 13..=15 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let mut stream = consumer.stream();
    assert_eq!(seqs(take_events(&mut stream, 3).await), [13, 14, 15]);
    consumer.commit(Seq::new(15)).await.unwrap();
    assert_eq!(consumer.committed(), Seq::new(15));
    drop((stream, consumer));
    feed.close().await.unwrap();
}

fn seqs(events: Vec<(Seq, Ev)>) -> Vec<u64> {
    events.into_iter().map(|(seq, _)| seq.get()).collect()
}
