//! Wake-up handshakes between emitters and subscribers, under stress: a full
//! ring whose slow subscriber then drains, emit/recv interleavings on a
//! 2-worker runtime at capacities 1, 2 and 3, subscribers dropped while an emit
//! waits on them, and a close while emits and receives wait. Every subscriber
//! must see every value exactly once and in order, and nothing may hang. The
//! timeouts only detect a lost wakeup: they are far beyond any run, and no test
//! asserts how fast anything is.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll},
    time::Duration,
};

use events_fanout::{EmitError, Fanout, Subscriber, TryEmitError, TryRecvError};
use futures::{StreamExt, poll};
use tokio::{runtime::Runtime, sync::oneshot, task::JoinHandle};

mod support;
use support::{CountingWaker, runtime};

/// Only a lost wakeup gets anywhere near this, even on a loaded 2-core machine.
const HANG: Duration = Duration::from_secs(120);

const CAPACITIES: [usize; 3] = [1, 2, 3];

/// Runs `fut` on `rt`, failing (instead of hanging the suite) if it never finishes.
fn within<F: Future>(rt: &Runtime, what: &str, fut: F) -> F::Output {
    rt.block_on(async {
        match tokio::time::timeout(HANG, fut).await {
            Ok(out) => out,
            Err(_) => panic!("{what}: no progress for {HANG:?}, a wakeup was lost"),
        }
    })
}

/// The ways a subscriber takes events; each reaches the park/arm handshakes differently.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// `recv().await` in a loop.
    Recv,
    /// The `Stream` impl.
    Stream,
    /// `try_recv` while it yields, `recv().await` when empty.
    TryThenRecv,
    /// `recv().await`, yielding to the scheduler every `n` events (a slow reader).
    Yielding(u32),
    /// `recv_ref().await`, yielding every `n` events while still holding the lent one, so its
    /// slot is handed back (and a blocked producer released) only after the yield.
    Lending(u32),
}

const STYLES: [Style; 6] =
    [Style::Recv, Style::Stream, Style::TryThenRecv, Style::Yielding(1), Style::Yielding(7), Style::Lending(3)];

/// Takes events until the end; a policy close would be a bug here (`Overflow::Wait`).
async fn read_all(mut sub: Subscriber<u64>, style: Style) -> Vec<u64> {
    let mut out = Vec::new();
    match style {
        Style::Recv => {
            while let Some(item) = sub.recv().await {
                out.push(item.expect("Overflow::Wait never disconnects"));
            }
        }
        Style::Stream => out = sub.map(|item| item.expect("Overflow::Wait never disconnects")).collect().await,
        Style::TryThenRecv => loop {
            match sub.try_recv() {
                Ok(value) => out.push(value),
                Err(TryRecvError::Empty) => match sub.recv().await {
                    Some(item) => out.push(item.expect("Overflow::Wait never disconnects")),
                    None => break,
                },
                Err(TryRecvError::Ended) => break,
                Err(other) => panic!("Overflow::Wait never disconnects: {other:?}"),
            }
        },
        Style::Yielding(every) => {
            while let Some(item) = sub.recv().await {
                out.push(item.expect("Overflow::Wait never disconnects"));
                if out.len() % every as usize == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        Style::Lending(every) => {
            while let Some(item) = sub.recv_ref().await {
                let lent = item.expect("Overflow::Wait never disconnects");
                out.push(*lent);
                if out.len() % every as usize == 0 {
                    tokio::task::yield_now().await;
                }
                drop(lent);
            }
        }
    }
    out
}

fn spawn_readers(fanout: &Fanout<u64>, count: usize, offset: usize) -> Vec<JoinHandle<Vec<u64>>> {
    (0..count).map(|i| tokio::spawn(read_all(fanout.subscribe(), STYLES[(i + offset) % STYLES.len()]))).collect()
}

async fn assert_all_got(readers: Vec<JoinHandle<Vec<u64>>>, expected: &[u64], what: &str) {
    for (i, reader) in readers.into_iter().enumerate() {
        assert_eq!(reader.await.expect("reader task"), expected, "{what}, reader {i}");
    }
}

#[test]
fn a_full_ring_is_released_when_the_slow_subscriber_drains() {
    const CAPACITY: usize = 4;
    const EVENTS: u64 = 2_000;
    let rt = runtime();
    for slow_style in STYLES {
        let what = format!("slow reader {slow_style:?}");
        within(&rt, &what, async {
            let fanout = Fanout::with_capacity(CAPACITY);
            let fast = spawn_readers(&fanout, 2, 0);
            let slow = fanout.subscribe();
            let producer = fanout.clone();
            let mut emits = Box::pin(async move {
                for n in 0..EVENTS {
                    producer.emit(n).await.expect("open");
                }
            });
            // The slow subscriber has taken nothing: the producer stops with a full ring.
            assert!(poll!(emits.as_mut()).is_pending());
            assert!(poll!(emits.as_mut()).is_pending(), "still full: still waiting");
            assert_eq!(slow.lag(), CAPACITY);
            assert_eq!(fanout.stats().max_lag, CAPACITY as u64);
            let producer = tokio::spawn(emits);
            let slow = tokio::spawn(read_all(slow, slow_style));
            producer.await.expect("producer task");
            drop(fanout);
            let expected: Vec<u64> = (0..EVENTS).collect();
            assert_all_got(fast, &expected, &what).await;
            assert_eq!(slow.await.expect("slow reader"), expected, "{what}");
        });
    }
}

#[test]
fn every_interleaving_at_tiny_capacities_delivers_everything_once_in_order() {
    const EVENTS: u64 = 2_000;
    const ROUNDS: usize = 10;
    let rt = runtime();
    let expected: Vec<u64> = (0..EVENTS).collect();
    for capacity in CAPACITIES {
        for subscribers in [1, 2, 3, 5] {
            for round in 0..ROUNDS {
                let what = format!("capacity {capacity}, {subscribers} subscribers, round {round}");
                within(&rt, &what, async {
                    let fanout = Fanout::with_capacity(capacity);
                    let readers = spawn_readers(&fanout, subscribers, round);
                    // The producer owns the only handle: finishing closes the fan-out.
                    let producer = tokio::spawn(async move {
                        for n in 0..EVENTS {
                            fanout.emit(n).await.expect("open");
                        }
                    });
                    producer.await.expect("producer task");
                    assert_all_got(readers, &expected, &what).await;
                });
            }
        }
    }
}

#[test]
fn concurrent_emitters_waiting_on_a_tiny_ring_are_all_released() {
    const EVENTS: u64 = 2_000;
    let rt = runtime();
    for capacity in CAPACITIES {
        let what = format!("capacity {capacity}");
        within(&rt, &what, async {
            let fanout = Fanout::with_capacity(capacity);
            let readers = spawn_readers(&fanout, 3, capacity);
            // Two producers, tagged in the high bits; the second tries `try_emit` first and
            // falls back to `emit` with the value it was handed back.
            let producers: Vec<_> = (0..2u64)
                .map(|p| {
                    let fanout = fanout.clone();
                    tokio::spawn(async move {
                        for n in 0..EVENTS {
                            let value = (p << 32) | n;
                            if p == 0 {
                                fanout.emit(value).await.expect("open");
                            } else {
                                match fanout.try_emit(value) {
                                    Ok(()) => {}
                                    Err(TryEmitError::Full(back)) => fanout.emit(back).await.expect("open"),
                                    Err(other) => panic!("open: {other:?}"),
                                }
                            }
                        }
                    })
                })
                .collect();
            for producer in producers {
                producer.await.expect("producer task");
            }
            drop(fanout);
            let mut seen = Vec::new();
            for reader in readers {
                seen.push(reader.await.expect("reader task"));
            }
            for got in &seen {
                assert_eq!(got, &seen[0], "{what}: every subscriber sees the same total order");
            }
            for p in 0..2u64 {
                let mine: Vec<u64> = seen[0].iter().filter(|v| *v >> 32 == p).map(|v| v & 0xffff_ffff).collect();
                assert_eq!(mine, (0..EVENTS).collect::<Vec<_>>(), "{what}: producer {p}");
            }
        });
    }
}

#[test]
fn dropping_the_last_gating_subscriber_wakes_every_waiting_emit() {
    let fanout = Fanout::with_capacity(2);
    let mut keeper = fanout.subscribe();
    let a = fanout.subscribe();
    let b = fanout.subscribe();
    fanout.try_emit(0).unwrap();
    fanout.try_emit(1).unwrap();
    assert_eq!((keeper.try_recv(), keeper.try_recv()), (Ok(0), Ok(1)));
    let (first_count, first_waker) = CountingWaker::new_waker();
    let (second_count, second_waker) = CountingWaker::new_waker();
    let second_handle = fanout.clone();
    let mut first = pin!(fanout.emit(2));
    let mut second = pin!(second_handle.emit(3));
    assert!(first.as_mut().poll(&mut Context::from_waker(&first_waker)).is_pending());
    assert!(second.as_mut().poll(&mut Context::from_waker(&second_waker)).is_pending());
    drop(a);
    assert_eq!((first_count.count(), second_count.count()), (0, 0), "b still gates both");
    drop(b);
    assert_eq!((first_count.count(), second_count.count()), (1, 1), "the last gating drop wakes both");
    assert!(matches!(first.as_mut().poll(&mut Context::from_waker(&first_waker)), Poll::Ready(Ok(()))));
    assert!(matches!(second.as_mut().poll(&mut Context::from_waker(&second_waker)), Poll::Ready(Ok(()))));
    assert_eq!((keeper.try_recv(), keeper.try_recv()), (Ok(2), Ok(3)));
    assert_eq!(keeper.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn subscribers_dropped_while_the_emitter_waits_on_them_never_stall_it() {
    const EVENTS: u64 = 400;
    /// How many events each dropper takes before it is dropped.
    const DROP_AFTER: [u64; 4] = [0, 1, 5, 100];
    let rt = runtime();
    let expected: Vec<u64> = (0..EVENTS).collect();
    for capacity in CAPACITIES {
        for round in 0..8 {
            let what = format!("capacity {capacity}, round {round}");
            within(&rt, &what, async {
                let fanout = Fanout::with_capacity(capacity);
                // Each dropper takes `k` events, then waits until the watcher has taken event
                // `k + capacity - 1`: the ring is then exactly full on the dropper's account, so
                // the producer waits on it (or is about to) when it is dropped.
                let mut signals = Vec::new();
                let droppers: Vec<_> = DROP_AFTER
                    .iter()
                    .map(|&k| {
                        let mut sub = fanout.subscribe();
                        let (tx, rx) = oneshot::channel::<()>();
                        signals.push((k + capacity as u64 - 1, tx));
                        tokio::spawn(async move {
                            let mut got = Vec::new();
                            while (got.len() as u64) < k {
                                got.push(sub.recv().await.expect("not ended yet").expect("no policy close"));
                            }
                            rx.await.expect("watcher alive");
                            drop(sub);
                            got
                        })
                    })
                    .collect();
                let mut watcher = fanout.subscribe();
                let watcher = tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(item) = watcher.recv().await {
                        let value = item.expect("no policy close");
                        got.push(value);
                        while let Some(due) = signals.iter().position(|(at, _)| *at <= value) {
                            // Only a dropper that panicked has dropped its receiver; its join reports that.
                            let _ = signals.swap_remove(due).1.send(());
                        }
                    }
                    got
                });
                let readers = spawn_readers(&fanout, 2, round);
                let producer = tokio::spawn(async move {
                    for n in 0..EVENTS {
                        fanout.emit(n).await.expect("open");
                    }
                });
                producer.await.expect("producer task");
                assert_eq!(watcher.await.expect("watcher"), expected, "{what}: watcher");
                assert_all_got(readers, &expected, &what).await;
                for (k, dropper) in DROP_AFTER.iter().zip(droppers) {
                    let prefix: Vec<u64> = (0..*k).collect();
                    assert_eq!(dropper.await.expect("dropper"), prefix, "{what}: dropper after {k}");
                }
            });
        }
    }
}

#[test]
fn a_parked_subscriber_dropped_mid_wait_leaves_the_others_wakeable() {
    let fanout = Fanout::with_capacity(2);
    let (gone_count, gone_waker) = CountingWaker::new_waker();
    let (stay_count, stay_waker) = CountingWaker::new_waker();
    let mut gone = fanout.subscribe();
    let mut stay = fanout.subscribe();
    {
        let mut recv = pin!(gone.recv());
        assert!(recv.as_mut().poll(&mut Context::from_waker(&gone_waker)).is_pending());
    }
    drop(gone);
    let mut recv = pin!(stay.recv());
    assert!(recv.as_mut().poll(&mut Context::from_waker(&stay_waker)).is_pending());
    fanout.try_emit(7).unwrap();
    assert_eq!((gone_count.count(), stay_count.count()), (0, 1));
    assert!(matches!(recv.as_mut().poll(&mut Context::from_waker(&stay_waker)), Poll::Ready(Some(Ok(7)))));
}

#[test]
fn a_waiting_emit_or_recv_polled_by_a_new_task_wakes_that_task() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    let (old_count, old_waker) = CountingWaker::new_waker();
    let (new_count, new_waker) = CountingWaker::new_waker();
    {
        let mut recv = pin!(sub.recv());
        assert!(recv.as_mut().poll(&mut Context::from_waker(&old_waker)).is_pending());
        assert!(recv.as_mut().poll(&mut Context::from_waker(&new_waker)).is_pending());
    }
    fanout.try_emit(0).unwrap();
    assert_eq!(new_count.count(), 1, "a publish wakes the task that polled the recv last");
    assert_eq!(old_count.count(), 0, "the recv's earlier waker was replaced, not kept");

    let (old_emit_count, old_emit_waker) = CountingWaker::new_waker();
    let (new_emit_count, new_emit_waker) = CountingWaker::new_waker();
    let mut emit = pin!(fanout.emit(1));
    assert!(emit.as_mut().poll(&mut Context::from_waker(&old_emit_waker)).is_pending());
    assert!(emit.as_mut().poll(&mut Context::from_waker(&new_emit_waker)).is_pending());
    assert_eq!(sub.try_recv(), Ok(0));
    assert_eq!(new_emit_count.count(), 1, "making room wakes the task that polled the emit last");
    assert!(old_emit_count.count() <= 1, "at most one stray wakeup for the task that moved on");
    assert!(matches!(emit.as_mut().poll(&mut Context::from_waker(&new_emit_waker)), Poll::Ready(Ok(()))));
    assert_eq!(sub.try_recv(), Ok(1));
}

#[test]
fn close_wakes_waiting_emits_and_parked_subscribers() {
    let fanout = Fanout::with_capacity(1);
    let mut full = fanout.subscribe();
    let mut drained = fanout.subscribe();
    fanout.try_emit(0).unwrap();
    assert_eq!(drained.try_recv(), Ok(0));
    let counters: Vec<_> = (0..3).map(|_| CountingWaker::new_waker()).collect();
    let cx = |i: usize| Context::from_waker(&counters[i].1);
    let mut parked = pin!(drained.recv());
    assert!(parked.as_mut().poll(&mut cx(0)).is_pending());
    let other_handle = fanout.clone();
    let mut first = pin!(fanout.emit(1));
    let mut second = pin!(other_handle.emit(2));
    assert!(first.as_mut().poll(&mut cx(1)).is_pending());
    assert!(second.as_mut().poll(&mut cx(2)).is_pending());
    fanout.close();
    assert!(counters.iter().all(|(count, _)| count.count() == 1), "close wakes every waiter once");
    assert!(matches!(parked.as_mut().poll(&mut cx(0)), Poll::Ready(None)));
    assert!(matches!(first.as_mut().poll(&mut cx(1)), Poll::Ready(Err(EmitError::Closed(1)))));
    assert!(matches!(second.as_mut().poll(&mut cx(2)), Poll::Ready(Err(EmitError::Closed(2)))));
    assert_eq!(full.try_recv(), Ok(0), "what was emitted before the close is still delivered");
    assert_eq!(full.try_recv(), Err(TryRecvError::Ended));
    assert_eq!(fanout.stats().emitted, 1);
}

#[test]
fn close_while_everyone_waits_ends_every_stream_on_the_same_prefix() {
    const CLOSE_AT: u64 = 150;
    let rt = runtime();
    for capacity in CAPACITIES {
        for round in 0..8 {
            let what = format!("capacity {capacity}, round {round}");
            within(&rt, &what, async {
                let fanout = Fanout::with_capacity(capacity);
                let readers = spawn_readers(&fanout, 3, round);
                let mut closer_sub = fanout.subscribe();
                let closer_handle = fanout.clone();
                // Takes events slowly (so the producer waits on it) and closes mid-stream.
                let closer = tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(item) = closer_sub.recv().await {
                        got.push(item.expect("no policy close"));
                        if got.len() as u64 == CLOSE_AT {
                            closer_handle.close();
                        }
                        tokio::task::yield_now().await;
                    }
                    got
                });
                let producer = tokio::spawn(async move {
                    let mut sent = 0;
                    loop {
                        match fanout.emit(sent).await {
                            Ok(()) => sent += 1,
                            Err(EmitError::Closed(back)) => {
                                assert_eq!(back, sent, "the refused value is handed back");
                                return sent;
                            }
                            Err(other) => panic!("{other:?}"),
                        }
                    }
                });
                let sent = producer.await.expect("producer task");
                assert!(sent >= CLOSE_AT, "{what}: the closer saw {CLOSE_AT} events, sent {sent}");
                let expected: Vec<u64> = (0..sent).collect();
                assert_eq!(closer.await.expect("closer"), expected, "{what}: closer");
                assert_all_got(readers, &expected, &what).await;
            });
        }
    }
}

/// A waker whose `wake` panics: the executor's own code, which the fan-out
/// runs when it releases a task.
struct PanickingWaker;

impl futures::task::ArcWake for PanickingWaker {
    fn wake_by_ref(_: &std::sync::Arc<Self>) {
        panic!("an executor whose waker panics");
    }
}

fn panicking_waker() -> std::task::Waker {
    futures::task::waker(std::sync::Arc::new(PanickingWaker))
}

/// Two emits wait on a full ring, the first with a waker that panics. The
/// read that makes room ends the round and wakes both: the panic is caught,
/// so the reader gets its event (it had panicked with its head already
/// moved past it, the event lost) and the second emit is woken (it had
/// been left waiting for good).
#[test]
fn a_waker_that_panics_when_a_read_makes_room_loses_no_event_and_strands_no_emit() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    fanout.try_emit(0).unwrap();
    let (second_count, second_waker) = CountingWaker::new_waker();
    let (first_waker, second_handle) = (panicking_waker(), fanout.clone());
    let mut first = pin!(fanout.emit(1));
    let mut second = pin!(second_handle.emit(2));
    assert!(first.as_mut().poll(&mut Context::from_waker(&first_waker)).is_pending());
    assert!(second.as_mut().poll(&mut Context::from_waker(&second_waker)).is_pending());
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sub.try_recv()));
    assert!(matches!(read, Ok(Ok(0))), "the read that made room: {:?}", read.map_err(|_| "a panic"));
    assert_eq!(second_count.count(), 1, "the other waiting emit is woken");
    let (_, counting) = CountingWaker::new_waker();
    assert!(matches!(first.as_mut().poll(&mut Context::from_waker(&counting)), Poll::Ready(Ok(()))));
    assert_eq!(sub.try_recv(), Ok(1));
    assert!(matches!(second.as_mut().poll(&mut Context::from_waker(&second_waker)), Poll::Ready(Ok(()))));
    assert_eq!(sub.try_recv(), Ok(2));
}

/// A subscriber parked with a waker that panics, beside an emit waiting on
/// a full ring: the publish that wakes it, and then a close, catch the
/// panic. The publish had unwound out of an emit whose event was already
/// out (its caller told it failed), and the close out of `close` (and of
/// the fan-out's drop), leaving the waiting emit hanging.
#[test]
fn a_waker_that_panics_on_a_publish_or_a_close_fails_neither() {
    let fanout = Fanout::<u64>::with_capacity(1);
    let mut parked = fanout.subscribe();
    let panicky = panicking_waker();
    {
        let mut next = pin!(parked.recv());
        assert!(next.as_mut().poll(&mut Context::from_waker(&panicky)).is_pending());
        let emitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fanout.try_emit(0)));
        assert!(matches!(emitted, Ok(Ok(()))), "the publish that woke it: {:?}", emitted.map_err(|_| "a panic"));
        let (_, counting) = CountingWaker::new_waker();
        assert!(matches!(next.as_mut().poll(&mut Context::from_waker(&counting)), Poll::Ready(Some(Ok(0)))));
    }

    let mut lagging = fanout.subscribe();
    fanout.try_emit(1).unwrap();
    let (waiting_count, waiting_waker) = CountingWaker::new_waker();
    let mut waiting = pin!(fanout.emit(2));
    assert!(waiting.as_mut().poll(&mut Context::from_waker(&waiting_waker)).is_pending());
    assert_eq!(parked.try_recv(), Ok(1));
    let mut next = pin!(parked.recv());
    assert!(next.as_mut().poll(&mut Context::from_waker(&panicky)).is_pending());
    let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fanout.close()));
    assert!(closed.is_ok(), "the panic came out of close");
    assert_eq!(waiting_count.count(), 1, "the waiting emit is woken by the close");
    assert!(matches!(
        waiting.as_mut().poll(&mut Context::from_waker(&waiting_waker)),
        Poll::Ready(Err(EmitError::Closed(2)))
    ));
    assert_eq!(lagging.try_recv(), Ok(1));
}
