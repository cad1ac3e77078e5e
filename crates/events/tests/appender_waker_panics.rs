//! Wakers that panic when the writer thread wakes them (an executor's own
//! code): an appender's, when the writer answers its append; a
//! live-output stream's, when the writer puts a token in its ring; a
//! `close` caller's, waiting for the writer to stop. The feed goes on, or
//! (the last) closes cleanly. Each panic had unwound out of the writer
//! thread: the feed failed, every later call of every handle got
//! `Unhealthy`, and at the stop the other callers waiting for it were left
//! unwoken.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use events::{Durability, Event, Feed, FeedItem, LiveOutput, Seq, SyncPolicy};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Step {
    Done(u64),
    Token(u64),
}

impl Event for Step {
    fn durability(&self) -> Durability {
        match self {
            Step::Done(_) => Durability::Durable,
            Step::Token(_) => Durability::Ephemeral,
        }
    }
}

/// A waker whose every wake panics, once it noted that it was woken and
/// on which thread.
#[derive(Default)]
struct Exploding {
    woken: AtomicBool,
    thread: Mutex<Option<String>>,
}

impl Wake for Exploding {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *self.thread.lock().unwrap() = std::thread::current().name().map(str::to_owned);
        self.woken.store(true, Ordering::SeqCst);
        panic!("the waker exploded");
    }
}

/// A waker that notes that it was woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits up to 10 s until every flag was woken.
async fn all_woken(flags: &[Arc<Flag>], what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !flags.iter().all(|flag| flag.0.load(Ordering::SeqCst)) {
        assert!(std::time::Instant::now() < deadline, "{what}: a waker was never woken");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl Exploding {
    /// Waits until it was woken, and checks that the writer's thread woke it.
    async fn woken_by_the_writer(&self) {
        support::eventually("the exploding waker was never woken", || self.woken.load(Ordering::SeqCst)).await;
        assert_eq!(self.thread.lock().unwrap().as_deref(), Some("events-writer"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appender_whose_waker_panics_leaves_the_feed_healthy() {
    for sync in [SyncPolicy::Always, SyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let feed: Feed<Step> = Feed::builder(dir.path()).sync(sync).open().await.unwrap();
        let exploding = Arc::new(Exploding::default());
        let waker = Waker::from(Arc::clone(&exploding));
        // Queued to the writer, waiting for its answer with that waker (an
        // append the writer answered before its first poll looked is done:
        // the next one is tried).
        let mut n = 0;
        let waiting = loop {
            n += 1;
            let mut append = Box::pin(feed.append(None, Step::Done(n)));
            if append.as_mut().poll(&mut Context::from_waker(&waker)).is_pending() {
                break append;
            }
        };
        // Answered alone, by the writer thread itself.
        exploding.woken_by_the_writer().await;
        assert_eq!(feed.append(None, Step::Done(n + 1)).await.unwrap(), Seq::new(n + 1), "{sync:?}");
        assert!(feed.stats().healthy, "{sync:?}: {:?}", feed.stats());
        // Its answer was stored before the wake: polled again, it is there.
        assert_eq!(waiting.await.unwrap(), Seq::new(n), "{sync:?}");
        feed.sync().await.unwrap();
        feed.close().await.unwrap();
    }
}

/// A feed keeping live output, without fsyncs.
async fn live_feed(dir: &std::path::Path) -> Feed<Step> {
    Feed::builder(dir).sync(SyncPolicy::Never).live_output(LiveOutput::new()).open().await.unwrap()
}

/// Polls `live` once with an exploding waker: it waits for the ring's
/// next token with it.
fn waiting_with_an_exploding_waker(live: &mut events::LiveStream<Step>) -> Arc<Exploding> {
    let exploding = Arc::new(Exploding::default());
    let waker = Waker::from(Arc::clone(&exploding));
    assert!(Stream::poll_next(std::pin::Pin::new(live), &mut Context::from_waker(&waker)).is_pending());
    exploding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_whose_waker_panics_leaves_the_feed_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let feed = live_feed(dir.path()).await;
    let mut live = feed.reader().stream_live(Seq::ZERO, None).unwrap();
    let exploding = waiting_with_an_exploding_waker(&mut live);
    feed.record(None, &Step::Token(1));
    exploding.woken_by_the_writer().await;
    assert_eq!(feed.append(None, Step::Done(2)).await.unwrap(), Seq::new(1));
    assert!(feed.stats().healthy, "{:?}", feed.stats());
    // Polled again, the stream has the token, then the durable event.
    let mut got = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(10), live.next()).await.expect("the stream goes on") {
            Some(Ok(FeedItem::Ephemeral { env, .. } | FeedItem::Event(env))) => got.push(env.event.clone()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, [Step::Token(1), Step::Done(2)]);
    feed.close().await.unwrap();
}

/// Beside it, 64 live-output streams waiting for the same token: each is
/// woken and gets it, with no durable event after it. After
/// the panic tokio drops the wakers of the ring's it had not woken yet;
/// the writer rings its bell, which wakes them. They had waited for the
/// next durable event (in token streaming, the end of the response).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_beside_one_whose_waker_panics_get_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let feed = live_feed(dir.path()).await;
    let reader = feed.reader();
    let mut bad = reader.stream_live(Seq::ZERO, None).unwrap();
    let exploding = waiting_with_an_exploding_waker(&mut bad);
    let flags: Vec<Arc<Flag>> = (0..64).map(|_| Arc::default()).collect();
    let mut waiting: Vec<_> = flags
        .iter()
        .map(|flag| {
            let mut live = reader.stream_live(Seq::ZERO, None).unwrap();
            let waker = Waker::from(Arc::clone(flag));
            assert!(Stream::poll_next(std::pin::Pin::new(&mut live), &mut Context::from_waker(&waker)).is_pending());
            live
        })
        .collect();
    feed.record(None, &Step::Token(1));
    exploding.woken_by_the_writer().await;
    all_woken(&flags, "the streams beside it, for the token").await;
    for live in &mut waiting {
        match live.next().await {
            Some(Ok(FeedItem::Ephemeral { env, .. })) => assert_eq!(env.event, Step::Token(1)),
            other => panic!("{other:?}"),
        }
    }
    assert!(feed.stats().healthy);
    drop(bad);
    feed.close().await.unwrap();
}

/// Two more `close`s (the inbox already closed) wait for the writer to
/// stop, the first with a waker that panics: the feed closes cleanly, the
/// other `close` returns and a caught-up stream ends. The panic had
/// unwound out of the writer thread: the first `close` got `Unhealthy`,
/// the streams ended with that error, and tokio's `Notify` left the other
/// waiting `close` unwoken for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_whose_waker_panics_still_ends_the_streams() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step as At};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Step> = Feed::builder(dir.path()).sync(SyncPolicy::Never).faults(plan.clone()).open().await.unwrap();
    feed.append(None, Step::Done(1)).await.unwrap();
    let mut caught_up = feed.stream_from(Seq::new(1));
    assert!(futures::poll!(caught_up.next()).is_pending());
    // The first close holds the writer in its closing fdatasync.
    plan.inject_next(At::Sync, Fault::Stall(Duration::from_millis(500)));
    let first = tokio::spawn(feed.clone().close());
    while !plan.fired().iter().any(|(step, _)| *step == At::Sync) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let exploding = Arc::new(Exploding::default());
    let waker = Waker::from(Arc::clone(&exploding));
    let mut second = Box::pin(feed.clone().close());
    assert!(second.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "waiting for the writer to stop");
    let flag = Arc::new(Flag::default());
    let mut third = Box::pin(feed.clone().close());
    let waker = Waker::from(Arc::clone(&flag));
    assert!(third.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "waiting for the writer to stop");
    first.await.unwrap().unwrap();
    exploding.woken_by_the_writer().await;
    all_woken(&[flag], "the other close").await;
    assert!(matches!(third.await, Err(events::Error::Closed)));
    let end = tokio::time::timeout(Duration::from_secs(10), caught_up.next()).await.expect("the stream ends");
    assert!(end.is_none(), "{end:?}");
}

/// The writer thread panics where no catch of its own takes it (a fault
/// plan's `Panic` at a write) while appenders wait for room in a full
/// inbox, the last of them with a waker that panics. Closing the inbox
/// wakes them, under a catch: the others are woken and told the feed
/// failed, and the process goes on. The inbox was closed as it dropped
/// during the unwinding, where that waker's panic aborted the process
/// (found by review). Tokio wakes its waiters in lists of 32 and drops the
/// rest of a list whose wake panicked, so those queued after such a waker
/// (here, none) are not woken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appenders_waiting_for_room_when_the_writer_thread_panics_are_woken() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step as At};
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Step> =
        Feed::builder(dir.path()).sync(SyncPolicy::Never).inbox_capacity(1).faults(plan.clone()).open().await.unwrap();
    // The writer held in the write of 1; 2 fills the inbox, and the write
    // of 2 panics.
    let writes = plan.count(At::AppendWrite);
    plan.inject(At::AppendWrite, writes, Fault::Hold);
    plan.inject(At::AppendWrite, writes + 1, Fault::Panic);
    let held = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, Step::Done(1)).await }
    });
    support::eventually("the writer in its write", || plan.count(At::AppendWrite) > writes).await;
    feed.record(None, &Step::Done(2));
    let flags: Vec<Arc<Flag>> = (0..8).map(|_| Arc::new(Flag::default())).collect();
    let exploding = Arc::new(Exploding::default());
    let mut waiting = Vec::new();
    let wakers = flags.iter().map(|flag| Waker::from(Arc::clone(flag))).chain([Waker::from(Arc::clone(&exploding))]);
    for (n, waker) in (3..).zip(wakers) {
        let mut append = Box::pin(feed.append(None, Step::Done(n)));
        assert!(append.as_mut().poll(&mut Context::from_waker(&waker)).is_pending(), "waiting for room");
        waiting.push(append);
    }
    plan.release();
    held.await.unwrap().unwrap();
    exploding.woken_by_the_writer().await;
    all_woken(&flags, "an appender waiting for room").await;
    for append in waiting {
        let refused = append.await;
        assert!(
            matches!(&refused, Err(events::Error::Unhealthy { cause }) if cause.contains("injected panic at AppendWrite")),
            "{refused:?}"
        );
    }
}
