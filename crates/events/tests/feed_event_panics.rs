//! One bad event stays local even when the event type's own code panics on
//! the writer thread: a `Serialize` or an `Event::stream_id` that panics
//! refuses that event alone with `Error::EventPanicked`; a recorded one is a
//! counted drop. Nothing of it is journaled, the feed stays healthy, and the
//! events after it get the next seqs. Before, the panic ended the writer
//! thread: every later call from every handle got `Error::Closed` while
//! `stats().healthy` said true. The writer never clones an event (a retried
//! append is answered with the retry's own event).

mod support;

use events::{AppendOptions, Error, Event, Feed, FeedItem, Seq, SyncPolicy};
use futures::StreamExt;
use serde::{Deserialize, Serialize, Serializer};

/// Panics in `Serialize` on 13, in `stream_id` on 14, in `Clone` on 15.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Bomb(#[serde(serialize_with = "explode_on_13")] u64);

fn explode_on_13<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
    assert_ne!(*n, 13, "Serialize exploded");
    s.serialize_u64(*n)
}

impl Clone for Bomb {
    fn clone(&self) -> Self {
        assert_ne!(self.0, 15, "Clone exploded");
        Bomb(self.0)
    }
}

impl Event for Bomb {
    fn stream_id(&self) -> Option<&str> {
        assert_ne!(self.0, 14, "stream_id exploded");
        None
    }
}

fn panicked(err: &Error, what: &str) -> bool {
    matches!(err, Error::EventPanicked { during, message } if *during == what && message.contains("exploded"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_events_own_code_refuses_that_event_alone() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Bomb> = Feed::builder(dir.path()).sync(SyncPolicy::Always).open().await.unwrap();
    let mut live = feed.stream_from(Seq::ZERO);
    let retried = AppendOptions::new().id("fifteen");

    assert_eq!(feed.append(None, Bomb(1)).await.unwrap(), Seq::new(1));
    let err = feed.append(None, Bomb(13)).await.unwrap_err();
    assert!(panicked(&err, "Serialize"), "{err:?}");
    let err = feed.append(None, Bomb(14)).await.unwrap_err();
    assert!(panicked(&err, "Event::stream_id"), "{err:?}");
    feed.record(None, &Bomb(13));
    // A stream id from the caller: the event's own is never asked for.
    assert_eq!(feed.append(Some("s"), Bomb(14)).await.unwrap(), Seq::new(2));
    assert_eq!(feed.append_with(None, Bomb(15), retried.clone()).await.unwrap().seq, Seq::new(3));
    // The retry is answered with its own event: nothing is cloned.
    let again = feed.append_with(None, Bomb(15), retried).await.unwrap();
    assert_eq!((again.seq, again.duplicate), (Seq::new(3), true));
    assert_eq!(feed.append(None, Bomb(4)).await.unwrap(), Seq::new(4));

    let stats = feed.stats();
    assert_eq!(stats.encode_errors, 3, "two refused appends, one recorded drop");
    assert!(stats.healthy);
    let mut got = Vec::new();
    for _ in 0..4 {
        let Some(Ok(FeedItem::Event(env))) = live.next().await else { panic!("expected an event") };
        got.push((env.seq.get(), env.event.0));
    }
    assert_eq!(got, [(1, 1), (2, 14), (3, 15), (4, 4)]);
    feed.close().await.unwrap();
}

/// An event whose `Drop` panics once armed.
#[derive(Debug, Serialize, Deserialize)]
struct Fragile {
    n: u64,
    #[serde(skip)]
    armed: bool,
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        Fragile { n: self.n, armed: self.armed }
    }
}

impl Drop for Fragile {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            let thread = std::thread::current().name().map(str::to_owned);
            FRAGILE_DROPPED.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((self.n, thread));
            panic!("Drop exploded");
        }
    }
}

/// Each armed `Fragile` whose `Drop` ran: its `n`, and the thread's name.
static FRAGILE_DROPPED: std::sync::Mutex<Vec<(u64, Option<String>)>> = std::sync::Mutex::new(Vec::new());

/// The threads where the armed `Fragile` `n`'s `Drop` ran (an `n` no
/// other test uses: the tests run side by side).
fn dropped_on(n: u64) -> Vec<Option<String>> {
    let dropped = FRAGILE_DROPPED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    dropped.iter().filter(|(m, _)| *m == n).map(|(_, thread)| thread.clone()).collect()
}

const WRITER: Option<&str> = Some("events-writer");

impl Event for Fragile {}

/// The writer keeps its newest envelopes for streams that reconnect near
/// the end (`live_capacity`), and lets the oldest go as new ones come: it
/// may hold an event's last reference then. A `Drop` that panics there is
/// caught and logged, as the ring and the fan-out catch it: the appends
/// after it succeed and the feed stays healthy. It had ended the writer
/// thread some appends later, failing the feed at an unrelated append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_drop_panics_when_the_writer_lets_it_go_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Fragile> = Feed::builder(dir.path()).sync(SyncPolicy::Never).live_capacity(4).open().await.unwrap();
    assert_eq!(feed.append(None, Fragile { n: 1_001, armed: true }).await.unwrap(), Seq::new(1));
    for n in 2..=50 {
        let appended = feed.append(None, Fragile { n, armed: false }).await;
        assert_eq!(appended.unwrap(), Seq::new(n), "append {n}");
    }
    assert!(feed.stats().healthy, "{:?}", feed.stats());
    // Let go there, not at the close (which catches the same panic).
    assert_eq!(dropped_on(1_001), [WRITER.map(str::to_owned)], "where the kept envelopes let it go");
    feed.close().await.unwrap();
}

/// The same when the writer holds the last reference itself: a batch
/// larger than `live_capacity`, whose first chunks the kept envelopes let
/// go at once, is let go by the writer after its sinks (none here). It had
/// ended the writer thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_drop_panics_in_a_batch_larger_than_the_kept_envelopes_fails_nothing() {
    after_one_batch_with_an_armed_event_the_feed_goes_on(Armed::Recorded).await;
}

/// Events the writer refuses, whose `Drop` panics when the writer lets
/// them go: a conditional append whose expectation fails, an append under
/// a stream id over the limit, and a forwarded one (`Inbox::forward`, a
/// `record` by value) under such an id. Each caller gets its refusal, and
/// the panic stays on the writer thread's refusal: the appends after them
/// get the next seqs and the feed stays healthy. Each had ended the writer thread, failing every later call
/// (found by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_drop_panics_when_the_writer_refuses_it_fails_nothing() {
    use events::Expected;
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Fragile> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    assert_eq!(feed.append(None, Fragile { n: 1, armed: false }).await.unwrap(), Seq::new(1));
    let conflict = AppendOptions::new().expect(Expected::Exact(Seq::new(5)));
    let refused = feed.append_with(Some("fragile"), Fragile { n: 2_002, armed: true }, conflict).await;
    assert!(matches!(refused, Err(Error::VersionConflict { .. })), "{refused:?}");
    let long = "s".repeat(300);
    let refused = feed.append(Some(long.as_str()), Fragile { n: 2_003, armed: true }).await;
    assert!(matches!(refused, Err(Error::StreamIdTooLong { .. })), "{refused:?}");
    assert_eq!(feed.append(None, Fragile { n: 4, armed: false }).await.unwrap(), Seq::new(2), "{:?}", feed.stats());
    feed.inbox().forward(Some(events::StreamId::from(long.as_str())), Fragile { n: 2_005, armed: true }).await.unwrap();
    assert_eq!(feed.append(None, Fragile { n: 6, armed: false }).await.unwrap(), Seq::new(3), "{:?}", feed.stats());
    assert!(feed.stats().healthy, "{:?}", feed.stats());
    // Each let go by the writer's refusal.
    for n in [2_002, 2_003, 2_005] {
        assert_eq!(dropped_on(n), [WRITER.map(str::to_owned)], "{n}");
    }
    feed.close().await.unwrap();
}

/// An event whose `Drop` panics in every copy, the one the writer decodes
/// back from its payload included (the writer reads back each event of a
/// shape it has not read back, to refuse a type the codec cannot read;
/// one refused is not remembered): the append is refused with
/// `EventPanicked { during: "Drop" }`, and the feed goes on. The copy
/// read back was let go outside any catch: the writer thread ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_copy_read_back_panics_when_let_go_is_refused_alone() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Boom(bool);
    impl Clone for Boom {
        fn clone(&self) -> Self {
            Boom(self.0)
        }
    }
    impl Drop for Boom {
        fn drop(&mut self) {
            if self.0 && !std::thread::panicking() {
                panic!("Boom");
            }
        }
    }
    impl Event for Boom {}
    let dir = tempfile::tempdir().unwrap();
    let feed: Feed<Boom> = Feed::builder(dir.path()).sync(SyncPolicy::Never).open().await.unwrap();
    let refused = feed.append(None, Boom(true)).await;
    assert!(matches!(refused, Err(Error::EventPanicked { during: "Drop", .. })), "{refused:?}");
    assert_eq!(feed.append(None, Boom(false)).await.unwrap(), Seq::new(1), "{:?}", feed.stats());
    assert!(feed.stats().healthy);
    feed.close().await.unwrap();
}

/// An append cancelled after its event reached the writer, in a batch
/// larger than `live_capacity(4)`'s kept envelopes, with no sink: its
/// answer, which the appender is gone for, holds the event's last
/// reference, and its `Drop` panics. The appends after it are answered
/// and the feed stays healthy. The panic had ended the task that sends the
/// answers (found by audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_drop_panics_in_the_answer_to_a_cancelled_append_fails_nothing() {
    after_one_batch_with_an_armed_event_the_feed_goes_on(Armed::CancelledAppend).await;
}

/// A feed keeping 4 envelopes that took [`one_batch_with_an_armed_event`]
/// from 0 answers the next append (within 10 s) and stays healthy.
async fn after_one_batch_with_an_armed_event_the_feed_goes_on(armed: Armed) {
    use events::layers::journal::fault::FaultPlan;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Fragile> =
        Feed::builder(dir.path()).sync(SyncPolicy::Never).live_capacity(4).faults(plan.clone()).open().await.unwrap();
    one_batch_with_an_armed_event(&feed, &plan, 0, armed).await;
    let after =
        tokio::time::timeout(std::time::Duration::from_secs(10), feed.append(None, Fragile { n: 201, armed: false }));
    assert_eq!(after.await.expect("answered").unwrap(), Seq::new(202), "{:?}", feed.stats());
    assert!(feed.stats().healthy);
    feed.close().await.unwrap();
}

/// How the armed event of [`one_batch_with_an_armed_event`] reaches the writer.
#[derive(Clone, Copy, PartialEq)]
enum Armed {
    /// Recorded, as the others.
    Recorded,
    /// Appended, the call polled until its event is in the inbox, then cancelled.
    CancelledAppend,
}

/// Appends `Fragile` `first` with the writer held in its write, and
/// records `first + 1..=200` meanwhile, `first + 2` armed (and sent as
/// `armed` says): they are one batch, larger than a `live_capacity(4)`'s
/// kept envelopes. `record` keeps no reference: the writer's copy is each
/// event's last.
async fn one_batch_with_an_armed_event(
    feed: &Feed<Fragile>,
    plan: &events::layers::journal::fault::FaultPlan,
    first: u64,
    armed: Armed,
) {
    use events::layers::journal::fault::{Fault, Step};
    let writes = plan.count(Step::AppendWrite);
    plan.inject_next(Step::AppendWrite, Fault::Stall(std::time::Duration::from_millis(300)));
    let held = tokio::spawn({
        let feed = feed.clone();
        async move { feed.append(None, Fragile { n: first, armed: false }).await }
    });
    support::eventually("the writer in its write", || plan.count(Step::AppendWrite) > writes).await;
    for n in first + 1..=200 {
        let event = Fragile { n, armed: n == first + 2 };
        if n == first + 2 && armed == Armed::CancelledAppend {
            let mut cancelled = Box::pin(feed.append(None, event));
            assert!(futures::poll!(cancelled.as_mut()).is_pending(), "in the inbox, waiting for its answer");
            continue;
        }
        feed.record(None, &event);
        std::mem::forget(event);
    }
    held.await.unwrap().unwrap();
}

/// A sink that never finishes an event.
struct Stuck;

#[async_trait::async_trait]
impl<E: Send + Sync + 'static> events::layers::sink::EventSink<events::Envelope<E>> for Stuck {
    async fn emit(&self, _env: &events::Envelope<E>) {
        futures::future::pending::<()>().await;
    }
}

/// The same with a sink whose queue is full (stuck, a queue of one
/// batch): the writer's dispatch is the batch's last reference, once the
/// kept envelopes let it go. The event whose `Drop` panics there fails
/// nothing: the next append is answered and the feed stays healthy. The
/// panic had ended the writer thread, and every later call was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_drop_panics_when_a_full_sinks_batch_is_let_go_fails_nothing() {
    use events::layers::journal::fault::FaultPlan;
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let feed: Feed<Fragile> = Feed::builder(dir.path())
        .sync(SyncPolicy::Never)
        .live_capacity(4)
        .sink(Stuck)
        .sink_queue(1)
        .faults(plan.clone())
        .open()
        .await
        .unwrap();
    // The stuck sink holds the first batch in hand and the second queued.
    for n in 1..=2 {
        feed.append(None, Fragile { n, armed: false }).await.unwrap();
    }
    one_batch_with_an_armed_event(&feed, &plan, 3, Armed::Recorded).await;
    let after = feed.append(None, Fragile { n: 201, armed: false }).await;
    assert_eq!(after.unwrap(), Seq::new(201), "{:?}", feed.stats());
    assert!(feed.stats().healthy);
    assert!(feed.stats().sink_dropped > 0, "the full queue refused batches: {:?}", feed.stats());
    drop(feed);
}

/// A sink that waits for a gate before each event and counts them.
struct Gated {
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait::async_trait]
impl events::layers::sink::EventSink<events::Envelope<Fragile>> for Gated {
    async fn emit(&self, _env: &events::Envelope<Fragile>) {
        self.gate.acquire().await.unwrap().forget();
        self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A sink slower than the kept envelopes: its task holds a delivered
/// event's last reference. The event whose `Drop` panics there does not
/// end the task: the sink gets every later event, and none is counted
/// lost. The panic had ended the task: the sink got nothing more, and
/// everything queued for it was counted as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_drop_panics_in_a_sinks_task_leaves_that_sink_the_next_events() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = Gated { gate: std::sync::Arc::clone(&gate), seen: std::sync::Arc::clone(&seen) };
    let feed: Feed<Fragile> =
        Feed::builder(dir.path()).sync(SyncPolicy::Never).live_capacity(4).sink(sink).open().await.unwrap();
    let armed = Fragile { n: 1, armed: true };
    feed.record(None, &armed);
    std::mem::forget(armed);
    for n in 2..=11 {
        feed.append(None, Fragile { n, armed: false }).await.unwrap();
    }
    gate.add_permits(11);
    support::eventually("the sink got all 11", || seen.load(Ordering::Relaxed) == 11).await;
    let stats = feed.stats();
    assert_eq!((stats.sink_dropped, stats.healthy), (0, true), "{stats:?}");
    feed.close().await.unwrap();
}

/// An event whose `Drop` panics once armed, decoded so (its value alone
/// says which): the even ones. Each test arms its own flag.
/// Journals `events`, each under its stream if it names one, in `dir`, and
/// closes the feed: what the readers of the tests below read.
async fn journaled<E: Event>(dir: &std::path::Path, events: impl IntoIterator<Item = (Option<&'static str>, E)>) {
    let feed: Feed<E> = Feed::builder(dir).sync(SyncPolicy::Never).open().await.unwrap();
    for (stream, event) in events {
        feed.append(stream, event).await.unwrap();
    }
    feed.close().await.unwrap();
}

macro_rules! dud {
    ($name:ident, $armed:ident) => {
        dud!($name, $armed, !std::thread::panicking());
    };
    // `$unwinding`: whether it panics while a panic unwinds too (dropped
    // with a list, after one that panicked), as a `Drop` that does not
    // look does.
    ($name:ident, $armed:ident, $unwinding:expr) => {
        static $armed: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
        struct $name(u64);
        impl Drop for $name {
            fn drop(&mut self) {
                let armed = $armed.load(std::sync::atomic::Ordering::Relaxed);
                if armed && self.0 % 2 == 0 && $unwinding {
                    panic!("{} exploded", self.0);
                }
            }
        }
        impl Event for $name {}
    };
}

/// A follower's stream dropped with decoded events it has not handed out
/// (the rest of its chunk: 2..=6), whose `Drop` panics: each is let go
/// under a catch, and the drop returns. The panic had come out of the
/// caller's drop (a response's, its client gone), and a second one would
/// have aborted the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_with_decoded_events_whose_drop_panics_returns() {
    dud!(Dud, ARMED);
    let dir = tempfile::tempdir().unwrap();
    journaled(dir.path(), (1..=6).map(|n| (None, Dud(n)))).await;
    ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
    let reader = events::FeedReader::<Dud>::open(dir.path()).unwrap();
    let mut stream = reader.stream_from(Seq::ZERO);
    match stream.next().await {
        Some(Ok(events::FeedItem::Event(env))) => assert_eq!(env.event.0, 1),
        other => panic!("{other:?}"),
    }
    drop(stream);
}

/// A filtered stream of a follower passes over another stream's event
/// whose `Drop` panics (its last reference): the panic is caught, and the
/// stream goes on to the next event of its own. It had come out of the
/// caller's `next()` (a `?stream=` response's task, at every reconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_stream_passing_over_an_event_whose_drop_panics_goes_on() {
    dud!(Dud, ARMED);
    let dir = tempfile::tempdir().unwrap();
    journaled(dir.path(), [("a", 1), ("b", 2), ("a", 3)].map(|(stream, n)| (Some(stream), Dud(n)))).await;
    ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
    let reader = events::FeedReader::<Dud>::open(dir.path()).unwrap();
    let mut filtered = reader.stream_filtered(Seq::ZERO, events::Filter::stream("a")).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match filtered.next().await {
            Some(Ok(events::FeedItem::Event(env))) => seen.push(env.event.0),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [1, 3]);
}

/// A follower's `follow_stream` whose live part passes over another
/// stream's event whose `Drop` panics (appended after the follow started,
/// decoded by the follower itself: its last reference), and a
/// `read_stream` dropped with events of a segment not handed out: each
/// panic is caught. Both had come out of the caller's `next()` or drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_or_reading_one_stream_lets_go_of_events_whose_drop_panics() {
    dud!(Dud, ARMED);
    let dir = tempfile::tempdir().unwrap();
    journaled(dir.path(), [(Some("a"), Dud(1))]).await;
    let reader =
        events::FeedReader::<Dud>::open(dir.path()).unwrap().poll_interval(std::time::Duration::from_millis(5));
    let mut followed = reader.follow_stream("a", Seq::ZERO).unwrap();
    match followed.next().await {
        Some(Ok(events::FeedItem::Event(env))) => assert_eq!(env.event.0, 1),
        other => panic!("{other:?}"),
    }
    let more = [("b", 2), ("a", 3), ("b", 4), ("b", 6), ("b", 8)];
    journaled(dir.path(), more.map(|(stream, n)| (Some(stream), Dud(n)))).await;
    ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
    match followed.next().await {
        Some(Ok(events::FeedItem::Event(env))) => assert_eq!(env.event.0, 3),
        other => panic!("{other:?}"),
    }
    drop(followed);
    let mut read = reader.read_stream("b", Seq::ZERO).unwrap();
    match read.next().await {
        Some(Ok(env)) => {
            assert_eq!(env.event.0, 2);
            std::mem::forget(env); // armed: the test does not let go of it
        }
        other => panic!("{other:?}"),
    }
    drop(read);
}

/// A follower's stream dropped while it holds a read ahead of its next
/// chunk (4,096 decoded events, half of whose `Drop`s panic, even while
/// a panic unwinds): each is let go under its own catch, and the drop
/// returns. The read ahead was dropped as a list, and its second panic,
/// during the first one's unwinding, aborted the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_with_a_read_ahead_of_events_whose_drop_panics_returns() {
    dud!(Dud, ARMED, true);
    let dir = tempfile::tempdir().unwrap();
    journaled(dir.path(), (1..=2 * 4096 + 1).map(|n| (None, Dud(n)))).await;
    ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
    let reader = events::FeedReader::<Dud>::open(dir.path()).unwrap();
    let mut stream = reader.stream_from(Seq::ZERO);
    match stream.next().await {
        Some(Ok(FeedItem::Event(env))) => assert_eq!(env.event.0, 1),
        other => panic!("{other:?}"),
    }
    // The read ahead of 4,097..=8,192 finishes meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(stream);
}

static SLOW_ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Once armed: 200 decodes slowly and does not decode, and the `Drop` of
/// an even one panics.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Slow(#[serde(deserialize_with = "slow_on_200")] u64);

fn slow_on_200<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 200 && SLOW_ARMED.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(300));
        return Err(serde::de::Error::custom("200 does not decode"));
    }
    Ok(n)
}

impl Drop for Slow {
    fn drop(&mut self) {
        if SLOW_ARMED.load(std::sync::atomic::Ordering::Relaxed)
            && self.0.is_multiple_of(2)
            && !std::thread::panicking()
        {
            panic!("{} exploded", self.0);
        }
    }
}

impl Event for Slow {}

/// A chunk of 600 records is decoded in two halves, the second on another
/// thread. The first half ends early at an undecodable record (200, slow
/// to fail), after the other thread decoded the second half, whose events
/// no one delivers (the read goes on after 200 later): they are let go one
/// by one, each `Drop` panic caught. Dropped as a list, the first panic
/// ended the read with a task error, before the events preceding 200 were
/// delivered (and a second, from a `Drop` that panics while another
/// unwinds, aborted the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decode_ended_early_lets_go_of_the_other_halfs_events_whose_drop_panics() {
    let dir = tempfile::tempdir().unwrap();
    journaled(dir.path(), (1..=600).map(|n| (None, Slow(n)))).await;
    SLOW_ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
    let reader = events::FeedReader::<Slow>::open(dir.path()).unwrap();
    let mut stream = reader.stream_from(Seq::ZERO);
    let mut seen = 0;
    let end = loop {
        match stream.next().await {
            Some(Ok(FeedItem::Event(env))) => {
                seen = env.event.0;
                std::mem::forget(env); // armed: the test does not let go of it
            }
            other => break other,
        }
    };
    assert_eq!(seen, 199);
    assert!(matches!(end, Some(Err(Error::Decode { seq, .. })) if seq == Seq::new(200)), "{end:?}");
    drop(stream);
}

/// A `read_stream` dropped while its read of a segment runs on the
/// blocking pool, whose events' `Drop`s panic, even while another's
/// unwinds: the read, finished with no one to take it, lets go of each
/// event under its own catch. Dropped as a list there, the second panic
/// aborted the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_stream_dropped_while_it_reads_lets_go_of_events_whose_drop_panics() {
    dud!(Dud, ARMED, true);
    let dir = tempfile::tempdir().unwrap();
    journaled(dir.path(), (1..=10).map(|n| (Some("b"), Dud(2 * n)))).await;
    ARMED.store(true, std::sync::atomic::Ordering::Relaxed);
    let reader = events::FeedReader::<Dud>::open(dir.path()).unwrap();
    let mut read = reader.read_stream("b", Seq::ZERO).unwrap();
    // Its first poll starts the read; dropped before it is polled again.
    assert!(futures::poll!(read.next()).is_pending());
    drop(read);
    // The read finishes meanwhile, with no one to take its events.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

/// A batch of 195 events, 98 of whose `Drop`s panic even while another
/// unwinds, larger than `live_capacity(4)`'s kept envelopes: the writer
/// holds the last references of its first chunks, with no sink and with a
/// sink whose queue is full, and lets each go under its own catch. It let
/// them go as one list (a slice, or the sinks' batch), where the second
/// panic, during the first one's unwinding, aborted the process (found by
/// audit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_events_whose_drop_panics_while_unwinding_is_let_go_one_by_one() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    use std::sync::atomic::Ordering::Relaxed;
    dud!(Dud, ARMED, true);
    for sink in [false, true] {
        ARMED.store(false, Relaxed);
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let builder = Feed::builder(dir.path()).sync(SyncPolicy::Never).live_capacity(4).faults(plan.clone());
        let builder = if sink { builder.sink(Stuck).sink_queue(1) } else { builder };
        let feed: Feed<Dud> = builder.open().await.unwrap();
        if sink {
            // The stuck sink holds the first batch in hand and the second queued.
            for n in [1, 3] {
                feed.append(None, Dud(n)).await.unwrap();
            }
        }
        // The writer held in the write of 5; 6..=200 recorded meanwhile
        // are its next batch. `record` keeps no reference.
        let writes = plan.count(Step::AppendWrite);
        plan.inject_next(Step::AppendWrite, Fault::Stall(std::time::Duration::from_millis(300)));
        let held = tokio::spawn({
            let feed = feed.clone();
            async move { feed.append(None, Dud(5)).await }
        });
        support::eventually("the writer in its write", || plan.count(Step::AppendWrite) > writes).await;
        for n in 6..=200 {
            let event = Dud(n);
            feed.record(None, &event);
            std::mem::forget(event);
        }
        ARMED.store(true, Relaxed);
        held.await.unwrap().unwrap();
        let after = feed.append(None, Dud(201)).await;
        let latest = if sink { 199 } else { 197 };
        assert_eq!(after.unwrap(), Seq::new(latest), "sink {sink}: {:?}", feed.stats());
        assert!(feed.stats().healthy, "sink {sink}");
        drop(feed);
    }
}

/// The writer thread panics where no catch of its own takes it (here a
/// fault plan's `Panic` at the write a `Feed::sync` asks for, in the
/// middle of a batch), holding the callers' events: staged before the
/// sync, still in the batch after it, and waiting in the inbox behind the
/// batch. Two events in one of those places have a `Drop` that panics
/// even while another unwinds. Each is let go under its own catch before
/// the unwinding goes on: the feed fails, naming the panic, and the
/// process goes on; the answers the writer held (the sync's, an append's
/// in the batch) name the panic too. They were dropped with the writer's
/// state during the unwinding, where the first of them aborted the
/// process, and an answer dropped before the failure was marked read as
/// `Closed` (found by review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_thread_panic_lets_go_of_the_events_it_holds_one_by_one() {
    use events::layers::journal::fault::{Fault, FaultPlan, Step};
    use std::sync::atomic::Ordering::Relaxed;
    dud!(Dud, ARMED, true);
    // The records before the sync, then the batch's rest (4,096 commands
    // in all), then the inbox's.
    const BEFORE_SYNC: u64 = 100;
    const RECORDS: u64 = 5_000;
    for (place, armed) in [("staged", [10, 20]), ("in the batch", [1_000, 2_000]), ("in the inbox", [4_500, 4_900])] {
        ARMED.store(false, Relaxed);
        let dir = tempfile::tempdir().unwrap();
        let plan = FaultPlan::new();
        let feed: Feed<Dud> = Feed::builder(dir.path())
            .sync(SyncPolicy::Never)
            .inbox_capacity(8_192)
            .faults(plan.clone())
            .open()
            .await
            .unwrap();
        // The writer held in the write of 1 while the rest is queued; the
        // write the sync asks for panics.
        let writes = plan.count(Step::AppendWrite);
        plan.inject(Step::AppendWrite, writes, Fault::Hold);
        plan.inject(Step::AppendWrite, writes + 1, Fault::Panic);
        let held = tokio::spawn({
            let feed = feed.clone();
            async move { feed.append(None, Dud(1)).await }
        });
        support::eventually("the writer in its write", || plan.count(Step::AppendWrite) > writes).await;
        let record = |k: u64| {
            let event = Dud(if armed.contains(&k) { 2 * k } else { 2 * k + 1 });
            feed.record(None, &event);
            std::mem::forget(event);
        };
        (0..BEFORE_SYNC).for_each(record);
        let sync = feed.sync();
        futures::pin_mut!(sync);
        assert!(futures::poll!(&mut sync).is_pending(), "the sync is queued");
        // An append the loop does not reach.
        let appended = feed.append(None, Dud(3));
        futures::pin_mut!(appended);
        assert!(futures::poll!(&mut appended).is_pending(), "the append is queued");
        (BEFORE_SYNC..RECORDS).for_each(record);
        ARMED.store(true, Relaxed);
        plan.release();
        held.await.unwrap().unwrap();
        let synced = sync.await;
        assert!(
            matches!(&synced, Err(Error::Unhealthy { cause }) if cause.contains("injected panic at AppendWrite")),
            "{place}: the sync's write panicked: {synced:?}"
        );
        // Its answer let go after the feed was marked failed (dropped with
        // the batch as the panic unwound, it could read `Closed`).
        let appended = appended.await;
        assert!(
            matches!(&appended, Err(Error::Unhealthy { cause }) if cause.contains("injected panic at AppendWrite")),
            "{place}: {appended:?}"
        );
        support::eventually("the feed reports its writer gone", || feed.is_closed()).await;
        let later = feed.append(None, Dud(3)).await;
        assert!(
            matches!(&later, Err(Error::Unhealthy { cause }) if cause.contains("injected panic at AppendWrite")),
            "{place}: {later:?}"
        );
    }
}
