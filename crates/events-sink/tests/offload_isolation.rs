//! An `Offload` keeps its promises when what surrounds it misbehaves: a
//! wrapped sink that panics is counted in `panicked` and gets the next
//! event (the events queued behind the panic are delivered, not lost
//! uncounted), and a `shutdown` cancelled at any await is finished by the
//! next call instead of leaving later ones waiting forever.

mod support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events_sink::{EventSink, Offload};
use parking_lot::Mutex;
use support::Gate;

/// Panics on 0, records everything else.
#[derive(Default)]
struct PanicsOnZero(Mutex<Vec<u64>>);

#[async_trait]
impl EventSink<u64> for PanicsOnZero {
    async fn emit(&self, event: &u64) {
        assert_ne!(*event, 0, "the sink panicked");
        self.0.lock().push(*event);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_sink_is_counted_and_gets_the_events_queued_behind_it() {
    let sink = Arc::new(PanicsOnZero::default());
    let offload = Offload::new_shared(sink.clone(), 8);
    // All queued before the task runs: the panic on 0 is followed by 1..=3.
    for n in 0..4 {
        offload.emit(&n).await;
    }
    offload.flush().await;
    assert_eq!(*sink.0.lock(), [1, 2, 3]);
    offload.emit(&4).await;
    let stats = offload.close().await;
    assert_eq!(*sink.0.lock(), [1, 2, 3, 4], "it keeps receiving later events");
    assert_eq!((stats.emitted, stats.panicked, stats.dropped), (5, 1, 0));
    assert_eq!(stats.lost(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_shutdown_is_finished_by_the_next_call() {
    // Cancelled while queueing its stop: the queue is full, events and
    // markers (the 64 places kept for flushes and stops, each taken by a
    // flush given up on while the sink is stuck).
    let gate = Gate::closed();
    let offload = Offload::new_shared(gate.clone(), 1);
    offload.emit(&1u64).await;
    gate.entered.notified().await; // the task holds 1 at the gate
    offload.emit(&2u64).await; // fills the events' room
    for _ in 0..68 {
        let given_up = tokio::time::timeout(Duration::from_millis(1), offload.flush()).await;
        assert!(given_up.is_err(), "the flush waits for the stuck sink");
    }
    assert!(tokio::time::timeout(Duration::from_millis(20), offload.shutdown()).await.is_err());
    gate.open();
    let stats = tokio::time::timeout(Duration::from_secs(10), offload.close()).await.expect("close hung");
    assert_eq!(gate.passed(), [1, 2]);
    assert_eq!((stats.emitted, stats.dropped), (2, 0));

    // Cancelled while waiting for the drain: the next call still waits for it.
    let gate = Gate::closed();
    let offload = Offload::new_shared(gate.clone(), 4);
    for n in 1..=3u64 {
        offload.emit(&n).await;
    }
    assert!(tokio::time::timeout(Duration::from_millis(20), offload.shutdown()).await.is_err());
    gate.open();
    tokio::time::timeout(Duration::from_secs(10), offload.shutdown()).await.expect("shutdown hung");
    assert_eq!(gate.passed(), [1, 2, 3], "the second shutdown returned only after the drain");
}

/// Never returns from `emit`.
struct Hangs;

#[async_trait]
impl<T: Sync> EventSink<T> for Hangs {
    async fn emit(&self, _: &T) {
        std::future::pending::<()>().await;
    }
}

/// Five events emitted to an offload of a sink that hangs, on a runtime
/// then shut down; `run_first`: the task runs before the shutdown (it
/// takes the first event and hangs on it). The offload's figures after.
fn shut_down_with_five_queued(run_first: bool) -> events_sink::SinkStats {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let offload = runtime.block_on(async {
        let offload = Offload::new(Hangs, 8);
        for n in 0..5 {
            offload.emit(&n).await;
        }
        if run_first {
            tokio::task::yield_now().await;
        }
        offload
    });
    drop(runtime);
    offload.stats()
}

/// The runtime the task runs on shuts down while the wrapped sink hangs on
/// the first event and four more wait in the queue: all five are counted as
/// dropped (they had vanished from every counter).
#[test]
fn events_queued_when_the_task_is_dropped_are_counted_as_dropped() {
    let stats = shut_down_with_five_queued(true);
    assert_eq!((stats.emitted, stats.dropped), (5, 5), "{stats:?}");
    assert_eq!(stats.lost(), 5);
}

/// The same, with the runtime shut down before the task ever ran (the
/// emits never yield): the five events it never took are counted as
/// dropped too (they had been lost with no counter).
#[test]
fn events_queued_for_a_task_that_never_ran_are_counted_as_dropped() {
    let stats = shut_down_with_five_queued(false);
    assert_eq!((stats.emitted, stats.dropped), (5, 5), "{stats:?}");
}

/// An event whose `Drop` panics (the offload's own copy, let go after the
/// sink got it).
#[derive(Debug)]
struct Fragile {
    n: u64,
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
            panic!("dropping event {}", self.n);
        }
    }
}

#[derive(Default)]
struct SeenFragile(Mutex<Vec<u64>>);

#[async_trait]
impl EventSink<Fragile> for SeenFragile {
    async fn emit(&self, event: &Fragile) {
        self.0.lock().push(event.n);
    }
}

/// The offload's copy of an event whose `Drop` panics is let go after the
/// sink got it: the task goes on, so the sink gets the events after it,
/// none is dropped, and nothing counts as lost (the sink got that one too).
/// The panic had ended the task: every later event was counted as dropped.
#[tokio::test(flavor = "current_thread")]
async fn an_event_whose_drop_panics_is_counted_and_the_sink_gets_the_next_ones() {
    let sink = Arc::new(SeenFragile::default());
    let offload = Offload::new_shared(sink.clone(), 8);
    let armed = Fragile { n: 0, armed: true };
    offload.emit(&armed).await;
    std::mem::forget(armed);
    for n in 1..=3 {
        offload.emit(&Fragile { n, armed: false }).await;
    }
    let stats = offload.close().await;
    assert_eq!(*sink.0.lock(), [0, 1, 2, 3]);
    assert_eq!((stats.dropped, stats.panicked, stats.lost()), (0, 0, 0), "{stats:?}");
}

/// The runtime the task runs on shuts down while the wrapped sink hangs on
/// the first event and four wait in the queue, two of them (the 1st and
/// 3rd) events whose `Drop` panics: all five are counted as dropped. The
/// first panic had abandoned the queue's count there (`dropped` 2), the
/// rest let go uncounted.
#[test]
fn events_queued_behind_one_whose_drop_panics_are_counted_when_the_task_is_dropped() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let offload = runtime.block_on(async {
        let offload = Offload::new(Hangs, 8);
        offload.emit(&Fragile { n: 0, armed: false }).await;
        tokio::task::yield_now().await; // the task takes it and hangs
        for n in 1..=4 {
            let event = Fragile { n, armed: n % 2 == 1 };
            offload.emit(&event).await;
            if event.armed {
                std::mem::forget(event);
            }
        }
        offload
    });
    drop(runtime);
    let stats = offload.stats();
    assert_eq!((stats.emitted, stats.dropped, stats.panicked), (5, 5, 0), "{stats:?}");
}

/// An event whose `Drop` panics, refused by a full queue: the refused copy
/// is let go inside `emit`, which returns to its caller; the event is
/// counted once, as dropped. The panic had come out of `emit` (through a
/// `Tee`, counted again as `panicked`: one event lost twice). The same for
/// a full `ChannelSink`.
#[tokio::test(flavor = "current_thread")]
async fn an_event_whose_drop_panics_refused_by_a_full_queue_stays_inside_emit() {
    let gate = Gate::closed();
    let offload = Offload::new_shared(gate.clone(), 1);
    offload.emit(&Fragile { n: 0, armed: false }).await;
    tokio::task::yield_now().await; // the task takes it and waits at the gate
    offload.emit(&Fragile { n: 1, armed: false }).await; // the queue is full
    let armed = Fragile { n: 2, armed: true };
    offload.emit(&armed).await;
    std::mem::forget(armed);
    gate.open();
    let stats = offload.close().await;
    assert_eq!((stats.emitted, stats.dropped, stats.panicked), (3, 1, 0), "{stats:?}");
    assert_eq!(gate.passed().iter().map(|e| e.n).collect::<Vec<_>>(), [0, 1]);
    for event in gate.passed() {
        std::mem::forget(event); // copies of unarmed events: nothing to run
    }

    let (channel, mut rx) = events_sink::ChannelSink::new(1);
    channel.emit(&Fragile { n: 0, armed: false }).await;
    let armed = Fragile { n: 1, armed: true };
    channel.emit(&armed).await;
    std::mem::forget(armed);
    let stats = channel.stats();
    assert_eq!((stats.emitted, stats.dropped), (2, 1), "{stats:?}");
    assert_eq!(rx.recv().await.map(|e| e.n), Some(0));
}

/// An event whose `Clone` panics when it is `armed`.
#[derive(Debug, PartialEq)]
struct CloneBomb {
    n: u64,
    armed: bool,
}

impl Clone for CloneBomb {
    fn clone(&self) -> Self {
        assert!(!self.armed, "an event that cannot be cloned");
        CloneBomb { n: self.n, armed: false }
    }
}

/// An event whose `Clone` panics, handed to an offload of one slot, inside
/// a `Tee`: the panic stays in the offload's `emit`, counted once there as
/// `panicked` (the `Tee` counts no panic of its own: one event, one loss),
/// and the slot is free for the next event. The slot had stayed taken for
/// the offload's life: every later event was refused as "queue full" with
/// an empty queue.
#[tokio::test(flavor = "current_thread")]
async fn an_event_whose_clone_panics_gives_its_place_in_the_queue_back() {
    use events_sink::Tee;

    let recorder = support::Recorder::new();
    let offload = Arc::new(Offload::new_shared(recorder.clone(), 1));
    let mut tee = Tee::new();
    tee.push_shared(offload.clone());
    tee.emit(&CloneBomb { n: 0, armed: true }).await;
    assert_eq!(offload.pending(), 0);
    tee.emit(&CloneBomb { n: 1, armed: false }).await;
    offload.flush().await;
    assert_eq!(recorder.seen(), [CloneBomb { n: 1, armed: false }]);
    let stats = tee.stats();
    assert_eq!((stats.emitted, stats.panicked, stats.dropped, stats.lost()), (2, 1, 0, 1), "{stats:?}");
}

/// Flushes given up (a health check's `timeout` around each) while the
/// wrapped sink is stuck: their markers stay queued, but past 64 a flush
/// waits for one of their places instead of taking an event's, so the next
/// event still has its room. The 65th and later markers had taken the
/// events' room: an event emitted with the queue empty was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_given_up_while_the_sink_is_stuck_take_no_events_room() {
    let gate = Gate::closed();
    let offload = Offload::new_shared(gate.clone(), 4);
    offload.emit(&0u64).await;
    gate.entered.notified().await; // the task holds 0 at the gate
    for _ in 0..68 {
        let given_up = tokio::time::timeout(Duration::from_millis(1), offload.flush()).await;
        assert!(given_up.is_err(), "the flush waits for the stuck sink");
    }
    for n in 1..=4u64 {
        offload.emit(&n).await;
    }
    assert_eq!(offload.stats().dropped, 0, "the queue had room for 4 events");
    gate.open();
    let stats = tokio::time::timeout(Duration::from_secs(10), offload.close()).await.expect("close hung");
    assert_eq!(gate.passed(), [0, 1, 2, 3, 4]);
    assert_eq!((stats.emitted, stats.dropped), (5, 0));
}

/// A wrapped sink whose `stats` panics: the offload's own figures still
/// come back, from `stats` and from `close` after its drain (a tee's too,
/// with that branch left out), and every event was delivered. The panic
/// had come out of `close`, its drain done and its figures lost.
#[tokio::test(flavor = "current_thread")]
async fn a_sink_whose_stats_panic_leaves_the_offloads_own_figures() {
    #[derive(Default)]
    struct BadStats(Mutex<Vec<u64>>);

    #[async_trait]
    impl EventSink<u64> for BadStats {
        async fn emit(&self, event: &u64) {
            self.0.lock().push(*event);
        }

        fn stats(&self) -> events_sink::SinkStats {
            panic!("stats panicked");
        }
    }

    let sink = Arc::new(BadStats::default());
    let offload = Offload::new_shared(sink.clone(), 8);
    for n in 1..=3 {
        offload.emit(&n).await;
    }
    assert_eq!(offload.stats().emitted, 3);
    let tee = events_sink::Tee::new().with(Arc::clone(&sink) as Arc<dyn EventSink<u64>>);
    assert_eq!(tee.stats().emitted, 0);
    assert_eq!(tee.branch_stats(), [events_sink::SinkStats::default()]);
    let stats = offload.close().await;
    assert_eq!((stats.emitted, stats.dropped), (3, 0));
    assert_eq!(*sink.0.lock(), [1, 2, 3]);
}

/// The largest queue an offload takes is `Offload::MAX_CAPACITY`, which
/// carries an event; one more is refused by the offload, naming its limit.
/// The docs had said tokio's channel limit, 64 above it (its markers' room),
/// and such a capacity panicked inside tokio.
#[tokio::test(flavor = "current_thread")]
async fn the_largest_queue_is_max_capacity() {
    let seen = Arc::new(PanicsOnZero(Mutex::new(Vec::new())));
    let offload = Offload::new_shared(Arc::clone(&seen) as Arc<dyn EventSink<u64>>, Offload::<u64>::MAX_CAPACITY);
    offload.emit(&7).await;
    assert_eq!(offload.close().await.emitted, 1);
    assert_eq!(*seen.0.lock(), [7]);
    let refused = std::panic::catch_unwind(|| {
        Offload::new(PanicsOnZero(Mutex::new(Vec::new())), Offload::<u64>::MAX_CAPACITY + 1)
    });
    let message = refused.err().and_then(|p| p.downcast::<String>().ok()).expect("a panic with a message");
    assert!(message.contains(&format!("at most {} events", Offload::<u64>::MAX_CAPACITY)), "{message}");
}

/// A waker whose every wake panics, once it noted that it was woken.
#[derive(Default)]
struct Exploding(std::sync::atomic::AtomicBool);

impl std::task::Wake for Exploding {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        panic!("the waker exploded");
    }
}

/// A flush whose waker panics when the offload's task answers it (its
/// executor's own code): the task goes on, and the sink gets the events
/// after it. The panic had ended the task: the sink got nothing more and
/// every later event was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flusher_whose_waker_panics_stops_nothing() {
    let sink = Arc::new(PanicsOnZero::default());
    let offload = Offload::new_shared(sink.clone(), 8);
    let exploding = Arc::new(Exploding::default());
    let waker = std::task::Waker::from(Arc::clone(&exploding));
    // Waiting for its answer with that waker (a flush answered before its
    // first poll looked is done: the next one is tried).
    let mut n = 0;
    let waiting = loop {
        n += 1;
        offload.emit(&n).await;
        let mut flush = offload.flush();
        if flush.as_mut().poll(&mut std::task::Context::from_waker(&waker)).is_pending() {
            break flush;
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !exploding.0.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the flusher's waker was never woken");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    offload.emit(&(n + 1)).await;
    tokio::time::timeout(Duration::from_secs(10), offload.flush()).await.expect("the task answers the next flush");
    assert_eq!(*sink.0.lock(), (1..=n + 1).collect::<Vec<_>>());
    drop(waiting);
    let stats = offload.close().await;
    assert_eq!((stats.dropped, stats.panicked), (0, 0), "{stats:?}");
}
