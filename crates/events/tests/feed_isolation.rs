//! One bad input, one bad sink or one cancelled call stays local.
//!
//! * An oversized event fails alone: eight small appends batched with a
//!   `record` and an `append` of about 250 bytes under `max_record_bytes(128)` are
//!   journaled, the big append gets `Error::TooLarge`, the big record is
//!   counted in `too_large`, the feed stays healthy.
//! * `max_record_bytes` above the codec's decode limit is refused at open.
//! * A panicking sink is caught alone: the other sink sees every event, the
//!   panicking one keeps being called, and the panics are counted by name.
//! * Reopening a directory right after dropping the last `Feed` handle works;
//!   a second live writer is still refused.
//! * Age retention fires on an idle feed (the retention timer).
//! * Group commit really batches: 256 concurrent appends under `Always`
//!   share at most 64 fdatasyncs (counted by the fault seam).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events::layers::journal::fault::{FaultPlan, Step};
use events::{Envelope, Error, EventSink, Feed, JournalError, Retention, Seq, SyncPolicy};
use support::{Ev, eventually, msg, take_events};

/// An event of about 250 bytes: its stream id is long (within the 256-byte limit).
fn big(n: u64) -> Ev {
    Ev::Msg { n, own_stream: Some("x".repeat(240)) }
}

/// An event past the codec's decode limit under `max_record_bytes` at that
/// limit: the codec refuses it as it is encoded (each of its strings fits,
/// the whole does not), and the append still gets `Error::TooLarge` with
/// the feed's limit, counted in `too_large`, as one just over a lower
/// limit does; the next append is journaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_past_the_decode_limit_is_too_large_like_any_other() {
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Big(String, String);
    impl events::Event for Big {}
    let limit = events_core::DEFAULT_DECODE_LIMIT;
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Big> = Feed::builder(dir.path()).max_record_bytes(limit as u32).open().await.unwrap();
    let half = "x".repeat(limit / 2 + 1);
    let refused = feed.append(None, Big(half.clone(), half.clone())).await;
    let Err(Error::TooLarge { bytes, limit: said }) = refused else { panic!("expected TooLarge, got {refused:?}") };
    assert!(bytes > limit && said as usize == limit, "{bytes} {said}");
    // With an event id: the payload's length counts its header too.
    let with_id =
        feed.append_with(None, Big(half.clone(), half.clone()), events::AppendOptions::new().id("job-1")).await;
    assert!(matches!(with_id, Err(Error::TooLarge { bytes: b, .. }) if b == bytes + 7), "{with_id:?}");
    assert_eq!(feed.append(None, Big("a".into(), "b".into())).await.unwrap(), Seq::new(1));
    let stats = feed.stats();
    assert_eq!((stats.too_large, stats.encode_errors), (2, 0), "{stats:?}");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_event_fails_alone_and_the_feed_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).max_record_bytes(128).open().await.unwrap();
    let small: Vec<_> = (1..=8u64)
        .map(|n| {
            let feed = feed.clone();
            tokio::spawn(async move { feed.append(None, msg(n)).await })
        })
        .collect();
    feed.record(None, &big(100));
    let refused = feed.append(None, big(101)).await;
    let Err(Error::TooLarge { bytes, limit }) = refused else { panic!("expected TooLarge, got {refused:?}") };
    assert!(bytes > 240, "{bytes}");
    assert_eq!(limit, 128);
    for task in small {
        task.await.unwrap().expect("a small append batched with the big one failed");
    }
    let seq = feed.append(None, msg(9)).await.expect("the feed refuses appends after one oversized event");
    assert_eq!(seq, Seq::new(9));
    let stats = feed.stats();
    assert!(stats.healthy);
    assert_eq!(stats.too_large, 2, "{stats:?}");
    assert_eq!(stats.dropped, 0);
    let mut all = feed.stream_from(Seq::ZERO);
    let got = take_events(&mut all, 9).await;
    assert_eq!(got.last().unwrap().1, msg(9));
    feed.close().await.unwrap();
}

#[tokio::test]
async fn max_record_bytes_above_the_decode_limit_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = Feed::<Ev>::builder(dir.path()).max_record_bytes(32 << 20).open().await.unwrap_err();
    assert!(matches!(&err, Error::Config(what) if what.contains("decode limit")), "{err}");
}

/// Capacities past what can be allocated up front (or what tokio's
/// channels take) are refused at open, naming the option; they panicked
/// inside `open` after the journal was opened and locked (a session's
/// capacity, at the first session). So are values below the least a feed
/// takes.
#[tokio::test]
async fn capacities_past_the_limit_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    type Configure = fn(events::FeedBuilder<Ev>) -> events::FeedBuilder<Ev>;
    let builders: [(&str, Configure); 4] = [
        ("live_capacity", |b| b.live_capacity(usize::MAX)),
        ("inbox_capacity", |b| b.inbox_capacity(usize::MAX)),
        ("session_capacity", |b| b.session_capacity(usize::MAX)),
        ("sink_queue", |b| b.sink_queue(usize::MAX).sink(Counting { seen: AtomicU64::new(0) })),
    ];
    for (option, configure) in builders {
        let err = configure(Feed::<Ev>::builder(dir.path())).open().await.unwrap_err();
        let limit = events::MAX_CAPACITY.to_string();
        assert!(
            matches!(&err, Error::Config(what) if what.contains(option) && what.contains(&limit)),
            "{option}: {err}"
        );
    }
    // Below the least a feed takes. `sink_queue(0)` had become 1 silently,
    // a zero `sink_timeout` cut every sink call that awaits at all,
    // a zero capacity panicked in its setter, and a retention check of 1 ns
    // (or zero, which panicked in the setter) filled the writer's inbox
    // with checks.
    type Low = (&'static str, &'static str, Configure);
    let low: [Low; 7] = [
        ("sink_queue", "0", |b| b.sink_queue(0).sink(Counting { seen: AtomicU64::new(0) })),
        ("sink_timeout", "0ns", |b| b.sink_timeout(Duration::ZERO).sink(Counting { seen: AtomicU64::new(0) })),
        ("live_capacity", "0", |b| b.live_capacity(0)),
        ("inbox_capacity", "0", |b| b.inbox_capacity(0)),
        ("session_capacity", "0", |b| b.session_capacity(0)),
        ("retention_check", "1ns", |b| b.retention_check(Duration::from_nanos(1))),
        ("retention_check", "0ns", |b| b.retention_check(Duration::ZERO)),
    ];
    for (option, value, configure) in low {
        let err = configure(Feed::<Ev>::builder(dir.path())).open().await.unwrap_err();
        assert!(
            matches!(&err, Error::Config(what) if what.contains(option) && what.contains(value)),
            "{option}: {err}"
        );
    }
    let limit = events::MAX_CAPACITY;
    let feed = Feed::<Ev>::builder(dir.path())
        .sink_queue(limit)
        .inbox_capacity(limit)
        .retention_check(events::MIN_RETENTION_CHECK)
        .sink(Counting { seen: AtomicU64::new(0) })
        .open()
        .await
        .unwrap();
    feed.close().await.unwrap();
}

struct Panicky {
    calls: AtomicU64,
}

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for Panicky {
    async fn emit(&self, env: &Envelope<Ev>) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert!(env.seq.get() % 2 == 1, "this sink cannot stand even seqs");
    }
}

struct Counting {
    seen: AtomicU64,
}

#[async_trait::async_trait]
impl EventSink<Envelope<Ev>> for Counting {
    async fn emit(&self, _env: &Envelope<Ev>) {
        self.seen.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_is_isolated_and_keeps_being_called() {
    let dir = tempfile::tempdir().unwrap();
    let panicky = Arc::new(Panicky { calls: AtomicU64::new(0) });
    let counting = Arc::new(Counting { seen: AtomicU64::new(0) });
    // The same sink behind an `Offload`: it panics on the offload's task.
    let offloaded = Arc::new(Panicky { calls: AtomicU64::new(0) });
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .named_sink("panicky", Arc::clone(&panicky))
        .sink(Arc::clone(&counting))
        .named_sink("offloaded", events::layers::sink::Offload::new_shared(offloaded.clone(), 64))
        .open()
        .await
        .unwrap();
    for n in 1..=20 {
        feed.append(None, msg(n)).await.unwrap();
    }
    // Sinks run on a background task: wait until the counting one is done.
    tokio::time::timeout(Duration::from_secs(10), async {
        while counting.seen.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the healthy sink stopped receiving events after the other one panicked");
    // Each sink runs on its own task: wait for each one's count.
    eventually("the panicking sink called again after each panic", || panicky.calls.load(Ordering::SeqCst) == 20).await;
    // Counted once its emit has unwound, after the call began: wait for the count.
    eventually("every panic counted", || feed.stats().sink_panics == 20).await;
    assert_eq!(offloaded.calls.load(Ordering::SeqCst), 20, "the offloaded sink saw every event");
    let stats = feed.stats();
    assert_eq!(stats.sinks.len(), 3);
    assert_eq!((stats.sinks[0].name.as_str(), stats.sinks[0].panics), ("panicky", 10));
    assert_eq!((stats.sinks[1].name.as_str(), stats.sinks[1].panics), ("sink-1", 0));
    assert_eq!((stats.sinks[2].name.as_str(), stats.sinks[2].panics), ("offloaded", 10));
    assert!(stats.healthy);
    feed.close().await.unwrap();
}

/// A sink whose own `Drop` panics (the last reference to it goes when the
/// feed closes, or when its last handle is dropped): the panic is caught
/// and logged where the sink is let go. It had unwound out of
/// `Feed::close` (and out of the drop of the last handle), after the
/// journal had closed cleanly, into the caller; and out of a refused open
/// and a builder dropped unused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_drop_panics_is_let_go_without_the_panic_reaching_the_caller() {
    struct DropPanics;

    #[async_trait::async_trait]
    impl EventSink<Envelope<Ev>> for DropPanics {
        async fn emit(&self, _: &Envelope<Ev>) {}
    }

    impl Drop for DropPanics {
        fn drop(&mut self) {
            panic!("a sink that cannot be let go");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let counting = Arc::new(Counting { seen: AtomicU64::new(0) });
    let feed: Feed<Ev> =
        Feed::builder(dir.path()).named_sink("bad", DropPanics).sink(Arc::clone(&counting)).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let closed = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(feed.close())).await;
    assert!(matches!(closed, Ok(Ok(()))), "close returned {:?}", closed.as_ref().map_err(|_| "a panic"));
    assert_eq!(counting.seen.load(Ordering::SeqCst), 3, "the other sink got every event");

    // Again, the last handle dropped without a close.
    let feed: Feed<Ev> = Feed::builder(dir.path()).named_sink("bad", DropPanics).open().await.unwrap();
    feed.append(None, msg(4)).await.unwrap();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(feed)));
    assert!(dropped.is_ok(), "the sink's panic came out of the drop of the last handle");

    // And an open refused (a capacity of 0) lets it go with the same catch:
    // it had been held unwrapped until the journal opened.
    let refused = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        Feed::<Ev>::builder(dir.path()).named_sink("bad", DropPanics).live_capacity(0).open(),
    ))
    .await;
    assert!(matches!(refused, Ok(Err(Error::Config(_)))), "{:?}", refused.as_ref().map(|r| r.as_ref().err()));

    // And a builder dropped unused: it had held its sinks unwrapped.
    let builder = Feed::<Ev>::builder(dir.path()).named_sink("bad", DropPanics);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(builder)));
    assert!(dropped.is_ok(), "the sink's panic came out of the drop of an unused builder");

    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    assert_eq!(feed.stats().latest_seq, 4, "every append kept");
    feed.close().await.unwrap();
}

/// A sink whose `stats()` panics, beside a healthy one: `Feed::stats`
/// (and so `/status` and the metrics) still answers, the bad sink's
/// figures read as zero and the healthy sink's are whole. The panic had
/// gone through `Feed::stats`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_stats_panic_does_not_take_the_feeds_stats_down() {
    struct BadStats;

    #[async_trait::async_trait]
    impl EventSink<Envelope<Ev>> for BadStats {
        async fn emit(&self, _: &Envelope<Ev>) {}

        fn stats(&self) -> events::layers::sink::SinkStats {
            panic!("stats of a broken sink")
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let healthy = Arc::new(events::layers::sink::FnSink::new(|_: &Envelope<Ev>| {}));
    let feed: Feed<Ev> =
        Feed::builder(dir.path()).named_sink("bad", BadStats).sink(Arc::clone(&healthy)).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    eventually("the healthy sink got every event", || healthy.stats().emitted == 3).await;
    let stats = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| feed.stats())).expect("Feed::stats answers");
    assert_eq!((stats.sinks[0].name.as_str(), stats.sinks[0].stats.emitted), ("bad", 0), "{stats:?}");
    assert_eq!(stats.sinks[1].stats.emitted, 3, "{stats:?}");
    assert_eq!(stats.latest_seq, 3);
    feed.close().await.unwrap();
}

/// Two sinks whose own counters read `u64::MAX` (a sink's figures are its
/// own to report): `Feed::stats` saturates the totals. They had been added
/// with `+`, which panicked in a debug build and wrapped in a release one.
#[tokio::test]
async fn sinks_whose_counters_read_u64_max_saturate_the_feeds_totals() {
    struct Maxed;

    #[async_trait::async_trait]
    impl EventSink<Envelope<Ev>> for Maxed {
        async fn emit(&self, _: &Envelope<Ev>) {}

        fn stats(&self) -> events::layers::sink::SinkStats {
            let mut stats = events::layers::sink::SinkStats::default();
            (stats.emitted, stats.dropped, stats.timed_out, stats.panicked) = (u64::MAX, u64::MAX, u64::MAX, u64::MAX);
            stats
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sink(Maxed).sink(Maxed).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let stats = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| feed.stats())).expect("Feed::stats answers");
    assert_eq!(
        (stats.sink_dropped, stats.sink_timeouts, stats.sink_panics),
        (u64::MAX, u64::MAX, u64::MAX),
        "{stats:?}"
    );
    assert_eq!(stats.sinks[1].panics, u64::MAX, "{stats:?}");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_right_after_the_last_handle_is_dropped_works_and_a_live_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5u64 {
        let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap_or_else(|e| panic!("round {round}: {e}"));
        for n in 1..=50 {
            feed.append(None, msg(n)).await.unwrap();
        }
        feed.record(None, &msg(51)); // still in the inbox when the handle goes
        drop(feed);
    }
    let feed: Feed<Ev> = Feed::builder(dir.path()).open().await.unwrap();
    assert_eq!(feed.latest_seq(), Seq::new(5 * 51), "every recorded event was drained before the reopen");
    let started = std::time::Instant::now();
    let second = Feed::<Ev>::builder(dir.path()).open().await;
    assert!(matches!(second, Err(Error::Journal(JournalError::Locked { .. }))), "{second:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "a live writer must be refused at once");
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_retention_fires_on_an_idle_feed() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .segment_bytes(1024)
        .retention(Retention::age(Duration::from_millis(200)))
        .retention_check(Duration::from_millis(20))
        // No fsync per append: the fill takes far less than the age, so
        // `before` is read while sealed segments are left to prune.
        .sync(SyncPolicy::Never)
        .open()
        .await
        .unwrap();
    for n in 1..=200 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let before = feed.earliest_seq();
    // No append from here on: only the timer can prune.
    eventually("age retention never ran on the idle feed", || feed.earliest_seq() != before).await;
    assert!(feed.earliest_seq() > before);
    assert_eq!(feed.latest_seq(), Seq::new(200));
    feed.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_fsyncs_among_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).faults(plan.clone()).open().await.unwrap();
    let before = plan.count(Step::AppendSync);
    let tasks: Vec<_> = (0..256u64)
        .map(|n| {
            let feed = feed.clone();
            tokio::spawn(async move { feed.append(None, msg(n)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let fsyncs = plan.count(Step::AppendSync) - before;
    let stats = feed.stats();
    assert!((1..=64).contains(&fsyncs), "256 concurrent appends took {fsyncs} fdatasyncs: no group commit");
    assert!(stats.batches <= 64, "{stats:?}");
    assert_eq!(stats.appended, 256);
    assert!(stats.fsyncs >= fsyncs, "{stats:?}");
    feed.close().await.unwrap();
}

/// A panic on the writer thread that no catch there takes: a step of the
/// journal's own that panics (`Fault::Panic` at the append's write; the
/// event type's code is caught where it runs, a refused event's `Drop`
/// included). The feed then reports it: unhealthy, closed, later appends
/// refused; what was acknowledged before is in the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_writer_thread_leaves_the_feed_closed_and_unhealthy_not_open_and_healthy() {
    use events::layers::journal::fault::Fault;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Always).faults(plan.clone()).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    plan.inject_next(Step::AppendWrite, Fault::Panic);
    let refused = feed.append(None, msg(4)).await;
    // Its answer, let go after the feed was marked failed, names the panic.
    assert!(
        matches!(&refused, Err(Error::Unhealthy { cause }) if cause.contains("injected panic at AppendWrite")),
        "{refused:?}"
    );
    eventually("the feed reports its writer gone", || feed.is_closed()).await;
    let stats = feed.stats();
    assert!(!stats.healthy, "{stats:?}");
    let later = feed.append(None, msg(5)).await;
    assert!(
        matches!(&later, Err(Error::Unhealthy { cause }) if cause.contains("injected panic at AppendWrite")),
        "the cause names the panic: {later:?}"
    );
    // In a failed feed's words: it had read "the event's the writer thread
    // panicked (…); the event was refused alone".
    let Err(Error::Unhealthy { cause }) = &later else { unreachable!() };
    assert!(cause.starts_with("the writer thread panicked (") && cause.ends_with("the feed is closed"), "{cause}");
    drop(feed);
    let reader = events::layers::journal::Reader::open(dir.path()).unwrap();
    assert_eq!(reader.last_seq().unwrap(), 3, "every acknowledged append, nothing else");
    let state = reader.watermark().unwrap().map(|wm| wm.state);
    assert_ne!(state, Some(events::layers::journal::WriterState::Closed), "a crash, not a close");
}

/// An event whose `Drop` sleeps 2 ms while `slow` (every clone is: the
/// copies `record` stages): dropped on the writer thread as it unwinds,
/// 300 staged copies hold it there for 600 ms.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SlowToDrop {
    n: u64,
    #[serde(skip)]
    slow: bool,
}

impl Clone for SlowToDrop {
    fn clone(&self) -> Self {
        SlowToDrop { n: self.n, slow: true }
    }
}

impl Drop for SlowToDrop {
    fn drop(&mut self) {
        if self.slow {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl events::Event for SlowToDrop {}

/// The writer thread panics (`Fault::Panic` at the write of a batch) with
/// 300 recorded events staged, each slow to drop: a stream waiting on the
/// live tail ends with `Error::Unhealthy` naming the panic, never with the
/// clean end of a closed feed. The feed is marked failed before the
/// streams hear that the writer stopped (its bell stops when the thread's
/// catch marks the feed closed, after it marked it failed). Until the feed
/// was marked failed before the writer's state dropped, the stream, seeing
/// the live tail (then a broadcast, in that state) close and nothing more
/// in the journal, ended as after a close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_the_live_tail_ends_unhealthy_when_the_writer_thread_panics() {
    use events::layers::journal::fault::Fault;
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<SlowToDrop> =
        Feed::builder(dir.path()).sync(SyncPolicy::Always).faults(plan.clone()).open().await.unwrap();
    for n in 1..=3 {
        feed.append(None, SlowToDrop { n, slow: false }).await.unwrap();
    }
    let mut stream = feed.stream_from(Seq::new(3));
    // The next write is held while the 300 are staged, the one after (theirs) panics.
    let writes = plan.count(Step::AppendWrite);
    plan.inject(Step::AppendWrite, writes, Fault::Stall(Duration::from_millis(300)));
    plan.inject(Step::AppendWrite, writes + 1, Fault::Panic);
    let held = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, SlowToDrop { n: 4, slow: false }).await }
    });
    eventually("the writer in its write", || plan.count(Step::AppendWrite) > writes).await;
    let recorded: Vec<_> = (5..=304).map(|n| SlowToDrop { n, slow: false }).collect();
    for event in &recorded {
        feed.record(None, event);
    }
    // Under `Always` its fdatasync may come after the next write, which panics.
    let _ = held.await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => {}
                other => return other.map(|item| item.map(drop)),
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(
        matches!(&end, Some(Err(Error::Unhealthy { cause })) if cause.contains("injected panic at AppendWrite")),
        "the stream's end says the writer failed: {end:?}"
    );
}

/// A `close` queued behind a command whose write panics on the writer
/// thread (`Fault::Panic` at the append's write) returns once the writer's
/// state has dropped, so the directory is free on return, and it names the
/// panic. It had returned `Closed` as soon as the unwinding dropped its
/// answer, while the journal, its lock held, was still dropping: here it
/// waits out a background fdatasync stalled for 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_queued_behind_a_writer_thread_panic_returns_with_the_directory_free() {
    use events::layers::journal::fault::Fault;
    use events::layers::journal::{Journal, JournalOptions};
    use events::{Bincode, Codec};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Interval(Duration::from_millis(10)))
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    for n in 1..=3 {
        feed.append(None, msg(n)).await.unwrap();
    }
    let syncs = plan.count(Step::BackgroundSync);
    plan.inject_next(Step::BackgroundSync, Fault::Stall(Duration::from_secs(2)));
    eventually("a background fdatasync is stalled", || plan.count(Step::BackgroundSync) > syncs).await;
    plan.inject_next(Step::AppendWrite, Fault::Panic);
    let (refused, closed) = futures::join!(feed.append(None, msg(4)), feed.clone().close());
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        matches!(&closed, Err(Error::Unhealthy { cause }) if cause.contains("injected panic at AppendWrite")),
        "the close names the panic: {closed:?}"
    );
    let reopened = Journal::open(dir.path(), JournalOptions::new().codec_tag(Bincode::ID));
    assert!(reopened.is_ok(), "the directory is free once close returned: {:?}", reopened.err());
}

/// `Feed::sync` whose fdatasync fails answers the journal's own error, as
/// its docs say (it answered `Unhealthy`, which no disk-fault check
/// matching `Error::Journal(JournalError::Io { .. })` recognised); the
/// feed is unhealthy after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_answers_the_journals_io_error() {
    use events::layers::journal::fault::Fault;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    plan.inject_next(Step::Sync, Fault::Errno(libc::EIO));
    match feed.sync().await {
        Err(Error::Journal(JournalError::Io { op: "fdatasync", source, .. })) => {
            assert_eq!(source.raw_os_error(), Some(libc::EIO));
        }
        other => panic!("expected the fdatasync's error, got {other:?}"),
    }
    assert!(!feed.stats().healthy);
    assert!(matches!(feed.sync().await, Err(Error::Unhealthy { .. })));
}

/// A background fdatasync (`SyncPolicy::Interval`) that fails while the
/// feed is idle: the retention timer's pass reports it, so monitoring that
/// polls an idle feed sees `healthy == false` (it stayed `true` until the
/// next append).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_feed_reports_a_failed_background_sync() {
    use events::layers::journal::fault::Fault;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    plan.inject(Step::BackgroundSync, 0, Fault::Errno(libc::EIO));
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Interval(Duration::from_millis(10)))
        .retention_check(Duration::from_millis(20))
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    feed.append(None, msg(1)).await.unwrap();
    eventually("the failed background sync fired", || !plan.fired().is_empty()).await;
    eventually("the idle feed reports it", || !feed.stats().healthy).await;
    assert!(feed.append(None, msg(2)).await.is_err());
}

/// `close` whose final `fdatasync` fails (EIO): the caller gets the
/// journal's typed error naming the operation and the segment, as `sync`
/// gives it; a failed close was an `Error::Unhealthy` holding only text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_final_fsync_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    plan.inject_next(Step::Sync, events::layers::journal::fault::Fault::Errno(libc::EIO));
    match feed.close().await {
        Err(Error::Journal(JournalError::Io { path, source, .. })) => {
            assert_eq!(source.raw_os_error(), Some(libc::EIO));
            assert!(path.starts_with(dir.path()) && path.extension().is_some_and(|e| e == "seg"), "{path:?}");
        }
        other => panic!("expected the journal's I/O error: {other:?}"),
    }
}

/// Two handles close at once while the final fdatasync is slow (2 s,
/// then `EIO`): the close that runs it gets the journal's own error; the
/// other waits beside it and gets `Unhealthy` carrying the same text, not
/// `Ok` or `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_waiting_beside_a_failed_final_fsync_gets_its_text() {
    use events::layers::journal::fault::Fault;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Ev> = Feed::builder(dir.path()).sync(SyncPolicy::Never).faults(plan.clone()).open().await.unwrap();
    feed.append(None, msg(1)).await.unwrap();
    let other = feed.clone();
    let syncs = plan.count(Step::Sync);
    plan.inject_next(Step::Sync, Fault::StallErrno(Duration::from_secs(2), libc::EIO));
    let first = tokio::spawn(async move { feed.close().await });
    eventually("the final fdatasync has begun", || plan.count(Step::Sync) > syncs).await;
    let second = other.close().await;
    let first = first.await.unwrap();
    let Err(Error::Journal(io @ JournalError::Io { .. })) = &first else {
        panic!("expected the journal's I/O error: {first:?}")
    };
    match &second {
        Err(Error::Unhealthy { cause }) => assert!(cause.contains(&io.to_string()), "{cause} / {io}"),
        other => panic!("expected Unhealthy with the close's error: {other:?}"),
    }
}

/// A sink that is always ready (its `emit` has no await) on a
/// current-thread runtime: its task yields to the others between calls,
/// as any task's cooperative budget runs out, so a task beside it sees it
/// progress a budget or two (128 calls each) at a time. It had run a whole
/// batch (up to 4,096 calls) in one poll, holding off the feed's
/// acknowledgements, the streams and the sessions of the runtime.
#[tokio::test(flavor = "current_thread")]
async fn a_sink_always_ready_yields_to_the_other_tasks() {
    const EVENTS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let counting = Arc::new(Counting { seen: AtomicU64::new(0) });
    let feed: Feed<Ev> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .inbox_capacity(EVENTS as usize)
        .sink_queue(EVENTS as usize) // room for every batch, however small
        .sink(Arc::clone(&counting))
        .open()
        .await
        .unwrap();
    let watcher = {
        let counting = Arc::clone(&counting);
        tokio::spawn(async move {
            let (mut last, mut widest) = (0, 0);
            while last < EVENTS {
                let seen = counting.seen.load(Ordering::SeqCst);
                widest = widest.max(seen - last);
                last = seen;
                tokio::task::yield_now().await;
            }
            widest
        })
    };
    for n in 0..EVENTS {
        feed.record(None, &msg(n));
    }
    let widest =
        tokio::time::timeout(Duration::from_secs(60), watcher).await.expect("the sink got every event").unwrap();
    // Two budgets at most: `yield_now` wakes the task beside it only after
    // the runtime's next look at its drivers (4,096 without the yield).
    assert!(widest <= 2 * 128, "the sink ran {widest} calls between two looks of the task beside it");
    feed.close().await.unwrap();
}
