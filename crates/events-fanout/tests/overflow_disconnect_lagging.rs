//! The `DisconnectLagging` policy: a subscriber whose oldest unread event has
//! waited `max_age` is closed (it gets the events already emitted for it, then
//! one `Closed::Lagging`, then the end), whether it stopped reading or only
//! trickles along, and the producer carries on at its own pace. The same
//! trickling subscriber is never closed under `Wait`, and never under the
//! stall timer of `Disconnect` (the limitation this policy exists for). Time is
//! tokio's paused clock, so every figure below is exact.

use std::time::Duration;

use events_fanout::{Closed, Fanout, Overflow, Subscriber, TryEmitError, TryRecvError};
use futures::StreamExt;
use tokio::time::Instant;

const MAX_AGE: Duration = Duration::from_millis(25);
/// The trickler's pace: `BATCH` events every `TICK`, so with `CAPACITY` events queued its oldest
/// unread event is about `CAPACITY / BATCH * TICK` = 40 ms old.
const CAPACITY: usize = 16;
const BATCH: usize = 4;
const TICK: Duration = Duration::from_millis(10);

fn fanout(overflow: Overflow) -> Fanout<u32> {
    Fanout::builder().capacity(CAPACITY).overflow(overflow).build()
}

/// What a subscriber's stream held: its events and the close reason, if any.
#[derive(Debug, PartialEq)]
struct Stream {
    events: Vec<u32>,
    closed: Option<Closed>,
}

/// Reads `BATCH` events, sleeps `TICK`, and so on until the stream ends.
async fn trickle(mut sub: Subscriber<u32>) -> Stream {
    let mut stream = Stream { events: Vec::new(), closed: None };
    loop {
        for _ in 0..BATCH {
            match sub.recv().await {
                Some(Ok(n)) => stream.events.push(n),
                Some(Err(closed)) => {
                    stream.closed = Some(closed);
                    assert_eq!(sub.recv().await, None, "the close reason is the last item");
                    return stream;
                }
                None => return stream,
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Asserts the stream is `0..len` with no gap.
fn assert_prefix(stream: &Stream) {
    let expected: Vec<u32> = (0..stream.events.len() as u32).collect();
    assert_eq!(stream.events, expected, "a gap-free prefix of the emitted events");
}

#[tokio::test(start_paused = true)]
async fn a_trickling_subscriber_is_disconnected_and_the_producer_is_not_held_hostage() {
    const N: u32 = 10_000;
    let fanout = fanout(Overflow::DisconnectLagging { max_age: MAX_AGE });
    let trickler = tokio::spawn(trickle(fanout.subscribe()));
    let eager = tokio::spawn(fanout.subscribe().map(Result::unwrap).collect::<Vec<u32>>());

    let start = Instant::now();
    for n in 0..N {
        fanout.emit(n).await.unwrap();
    }
    let took = start.elapsed();
    let stats = fanout.stats();
    drop(fanout);

    assert_eq!(stats.emitted, u64::from(N), "the producer completed every emit");
    assert_eq!(stats.disconnected_slow, 1);
    // Paced by the trickler, 10 000 events would take 25 s; cut loose, the producer waited once.
    assert!(took <= MAX_AGE + TICK, "the producer waited about `max_age` once, not {took:?}");

    let trickled = trickler.await.unwrap();
    assert!(matches!(trickled.closed, Some(Closed::Lagging { max_age }) if max_age == MAX_AGE), "{trickled:?}");
    assert_prefix(&trickled);
    assert!(trickled.events.len() >= CAPACITY, "it got what was emitted for it before the disconnect");
    assert!(trickled.events.len() < N as usize);
    assert_eq!(eager.await.unwrap(), (0..N).collect::<Vec<_>>(), "the other subscriber lost nothing");
}

#[tokio::test(start_paused = true)]
async fn the_same_trickler_is_never_disconnected_under_wait_nor_by_the_stall_timer() {
    const N: u32 = 400;
    // The stall timer is longer than any single wait on the trickler (one `TICK`), so it never
    // fires: that is the "never disconnected, paced for minutes" in miniature.
    for overflow in [Overflow::Wait, Overflow::Disconnect { after: MAX_AGE }] {
        let fanout = fanout(overflow);
        let trickler = tokio::spawn(trickle(fanout.subscribe()));
        let start = Instant::now();
        for n in 0..N {
            fanout.emit(n).await.unwrap();
        }
        let took = start.elapsed();
        assert_eq!(fanout.stats().disconnected_slow, 0, "{overflow:?} keeps the trickler");
        assert!(took >= TICK * (N / BATCH as u32 - 5), "{overflow:?}: the trickler paced the producer ({took:?})");
        drop(fanout);
        let trickled = trickler.await.unwrap();
        assert_eq!(trickled, Stream { events: (0..N).collect(), closed: None }, "{overflow:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_trickler_that_keeps_within_the_bound_stays() {
    const N: u32 = 400;
    // Its oldest unread event is at most about 50 ms old: well within 100 ms.
    let fanout = fanout(Overflow::DisconnectLagging { max_age: Duration::from_millis(100) });
    let trickler = tokio::spawn(trickle(fanout.subscribe()));
    for n in 0..N {
        fanout.emit(n).await.unwrap();
    }
    assert_eq!(fanout.stats().disconnected_slow, 0);
    drop(fanout);
    assert_eq!(trickler.await.unwrap(), Stream { events: (0..N).collect(), closed: None });
}

#[tokio::test(start_paused = true)]
async fn an_idle_subscriber_gets_its_buffer_then_the_reason_and_the_wait_is_max_age() {
    let fanout: Fanout<u32> =
        Fanout::builder().capacity(4).overflow(Overflow::DisconnectLagging { max_age: MAX_AGE }).build();
    let mut idle = fanout.subscribe();
    let start = Instant::now();
    for n in 0..4 {
        fanout.emit(n).await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "room for four");
    fanout.emit(4).await.unwrap();
    assert_eq!(start.elapsed(), MAX_AGE, "the fifth emit waited until event 0 was `max_age` old");
    fanout.emit(5).await.unwrap();
    assert_eq!(fanout.stats().disconnected_slow, 1);
    assert_eq!(fanout.subscriber_count(), 0, "it no longer gates the producer");

    assert_eq!(idle.lag(), 4, "owed the four events it held");
    for n in 0..4 {
        assert_eq!(idle.recv().await, Some(Ok(n)), "buffered events first, in order");
    }
    assert_eq!(idle.recv().await, Some(Err(Closed::Lagging { max_age: MAX_AGE })));
    assert_eq!(idle.recv().await, None);
    assert_eq!(idle.try_recv(), Err(TryRecvError::Ended));
    assert!(idle.is_ended());
}

#[tokio::test(start_paused = true)]
async fn a_lagging_subscriber_is_closed_even_when_the_ring_never_fills() {
    // One event every 10 ms into a ring of 256: the producer never waits, yet the idle
    // subscriber's oldest event reaches 50 ms at the sixth emit (t = 50 ms), which closes it
    // before publishing event 5.
    let fanout: Fanout<u32> = Fanout::builder()
        .capacity(256)
        .overflow(Overflow::DisconnectLagging { max_age: Duration::from_millis(50) })
        .build();
    let idle = fanout.subscribe();
    let reader = tokio::spawn(fanout.subscribe().map(Result::unwrap).collect::<Vec<u32>>());
    for n in 0..20 {
        fanout.emit(n).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fanout.stats().disconnected_slow, 1);
    drop(fanout);
    let items: Vec<_> = idle.collect().await;
    assert_eq!(
        items,
        [Ok(0), Ok(1), Ok(2), Ok(3), Ok(4), Err(Closed::Lagging { max_age: Duration::from_millis(50) })],
        "everything emitted before the disconnect, then the reason, then the end"
    );
    assert_eq!(reader.await.unwrap(), (0..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn try_emit_applies_the_age_bound_too() {
    let fanout: Fanout<u32> =
        Fanout::builder().capacity(2).overflow(Overflow::DisconnectLagging { max_age: MAX_AGE }).build();
    let mut idle = fanout.subscribe();
    fanout.try_emit(0).unwrap();
    fanout.try_emit(1).unwrap();
    assert!(matches!(fanout.try_emit(2), Err(TryEmitError::Full(2))), "young events: still waited on");
    tokio::time::advance(MAX_AGE).await;
    assert!(matches!(fanout.try_emit(2), Ok(())), "event 0 is now `max_age` old: the idle one is closed");
    assert_eq!(idle.try_recv(), Ok(0));
    assert_eq!(idle.try_recv(), Ok(1));
    assert!(matches!(idle.try_recv(), Err(TryRecvError::Closed(Closed::Lagging { .. }))));
    assert_eq!(idle.try_recv(), Err(TryRecvError::Ended));
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_keeps_up_is_never_closed_whatever_the_pace() {
    // Nothing unread is ever old: the producer idles for far longer than `max_age` between
    // emits, and the subscriber takes each event at once.
    let fanout: Fanout<u32> =
        Fanout::builder().capacity(2).overflow(Overflow::DisconnectLagging { max_age: MAX_AGE }).build();
    let mut sub = fanout.subscribe();
    for n in 0..10 {
        fanout.emit(n).await.unwrap();
        assert_eq!(sub.recv().await, Some(Ok(n)));
        tokio::time::sleep(MAX_AGE * 4).await;
    }
    assert_eq!(fanout.stats().disconnected_slow, 0);
    assert_eq!(fanout.subscriber_count(), 1);
}

/// `Duration::MAX` as the age bound (the usual way to say "never"): an
/// emit blocked on a subscriber that does not read waits (here for an
/// hour of the paused clock) instead of panicking: its wake-up instant,
/// the oldest unread event's emit instant plus `max_age`, had overflowed.
#[tokio::test(start_paused = true)]
async fn an_age_bound_of_duration_max_waits_instead_of_panicking() {
    let fanout: Fanout<u32> =
        Fanout::builder().capacity(1).overflow(Overflow::DisconnectLagging { max_age: Duration::MAX }).build();
    let mut sub = fanout.subscribe();
    fanout.emit(0).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3600), fanout.emit(1)).await;
    assert!(waited.is_err(), "the emit waits for room");
    assert_eq!(sub.recv().await, Some(Ok(0)));
    fanout.emit(1).await.unwrap();
    assert_eq!(sub.recv().await, Some(Ok(1)));
    assert_eq!(fanout.stats().disconnected_slow, 0);
}
