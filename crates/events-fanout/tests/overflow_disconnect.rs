//! The `Disconnect` policy: a subscriber that stays full longer than `after`
//! is closed: it receives the events already emitted for it, then one explicit
//! `Closed::TooSlow` item, and then ends, while the producer and the other
//! subscribers carry on. Time is tokio's paused clock.

use std::time::Duration;

use events_fanout::{Closed, Fanout, Overflow, TryRecvError};
use futures::StreamExt;
use tokio::time::Instant;

const AFTER: Duration = Duration::from_millis(50);

fn disconnecting(capacity: usize) -> Fanout<u32> {
    Fanout::builder().capacity(capacity).overflow(Overflow::Disconnect { after: AFTER }).build()
}

#[tokio::test(start_paused = true)]
async fn slow_subscriber_is_closed_explicitly_and_the_producer_continues() {
    let fanout = disconnecting(2);
    let mut slow = fanout.subscribe();
    let fast = fanout.subscribe();
    let reader = tokio::spawn(fast.map(Result::unwrap).collect::<Vec<u32>>());

    fanout.emit(0).await.unwrap();
    assert_eq!(slow.recv().await, Some(Ok(0)), "events taken before the disconnect are real");
    let start = Instant::now();
    for n in 1..10 {
        fanout.emit(n).await.unwrap();
    }
    let waited = start.elapsed();
    assert!(waited >= AFTER, "the producer waited the grace period first ({waited:?})");
    assert!(waited < 2 * AFTER, "and only once: the slow one is gone ({waited:?})");
    assert_eq!(fanout.stats().disconnected_slow, 1);
    assert_eq!(fanout.subscriber_count(), 1);

    // It was disconnected holding 1 and 2 (capacity 2): it gets them, then the reason.
    assert_eq!(slow.recv().await, Some(Ok(1)), "the events it was owed come first");
    assert_eq!(slow.recv().await, Some(Ok(2)));
    assert_eq!(slow.recv().await, Some(Err(Closed::TooSlow)));
    assert_eq!(slow.recv().await, None);
    assert_eq!(slow.try_recv(), Err(TryRecvError::Ended));
    assert!(slow.is_ended());

    drop(fanout);
    assert_eq!(reader.await.unwrap(), (0..10).collect::<Vec<_>>(), "the fast subscriber lost nothing");
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_that_keeps_up_within_the_grace_period_stays() {
    let fanout = disconnecting(1);
    let mut steady = fanout.subscribe();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = steady.recv().await {
            got.push(item.unwrap());
            tokio::time::sleep(AFTER / 5).await;
        }
        got
    });
    for n in 0..20 {
        fanout.emit(n).await.unwrap();
    }
    assert_eq!(fanout.stats().disconnected_slow, 0);
    drop(fanout);
    assert_eq!(reader.await.unwrap(), (0..20).collect::<Vec<_>>());
}

/// Emits cancelled before the grace period ends (a `timeout` around each,
/// tried again) still close the stalled subscriber once it stayed full for
/// `after`: the fan-out keeps when the stall began. Each emit had started
/// the grace period over, so none ever reached its end, the subscriber was
/// never closed and every emit timed out.
#[tokio::test(start_paused = true)]
async fn emits_cancelled_and_tried_again_still_close_a_stalled_subscriber() {
    let fanout = disconnecting(1);
    let mut stalled = fanout.subscribe();
    fanout.emit(0).await.unwrap();
    let mut timed_out = 0;
    for _ in 0..10 {
        match tokio::time::timeout(AFTER * 2 / 5, fanout.emit(1)).await {
            Ok(emitted) => {
                emitted.unwrap();
                break;
            }
            Err(_) => timed_out += 1,
        }
    }
    assert_eq!(timed_out, 2, "the third try ends the grace period begun by the first");
    assert_eq!(fanout.stats().disconnected_slow, 1);
    assert_eq!(stalled.recv().await, Some(Ok(0)));
    assert_eq!(stalled.recv().await, Some(Err(Closed::TooSlow)));
}

#[tokio::test(start_paused = true)]
async fn every_idle_subscriber_is_closed_in_one_grace_period() {
    let fanout = disconnecting(4);
    let mut idle: Vec<_> = (0..3).map(|_| fanout.subscribe()).collect();
    let start = Instant::now();
    for n in 0..12 {
        fanout.emit(n).await.unwrap();
    }
    assert_eq!(start.elapsed(), AFTER, "one grace period for all of them, on the paused clock");
    assert_eq!(fanout.stats().disconnected_slow, 3);
    assert_eq!(fanout.subscriber_count(), 0);
    for sub in &mut idle {
        assert_eq!(sub.lag(), 4, "each one is owed the 4 events it held");
        for n in 0..4 {
            assert_eq!(sub.try_recv(), Ok(n));
        }
        assert_eq!(sub.try_recv(), Err(TryRecvError::Closed(Closed::TooSlow)));
        assert_eq!(sub.recv().await, None);
    }
}

/// The same with four producers at once: the subscriber takes an event
/// every 30 ms (well within the 50 ms grace period), but only one blocked
/// producer gets each slot it frees. A starved producer's grace period ran
/// from its first block and ran out, closing the subscriber although it
/// kept taking; it now runs from the last event that went out.
#[tokio::test(start_paused = true)]
async fn several_producers_do_not_close_a_subscriber_that_keeps_taking() {
    let fanout = disconnecting(1);
    let mut steady = fanout.subscribe();
    let producers: Vec<_> = (0..4u32)
        .map(|p| {
            let fanout = fanout.clone();
            tokio::spawn(async move {
                for n in 0..10 {
                    fanout.emit(p * 100 + n).await.unwrap();
                }
            })
        })
        .collect();
    let mut got = 0;
    while got < 40 {
        match steady.recv().await {
            Some(Ok(_)) => got += 1,
            other => panic!("after {got} events: {other:?}"),
        }
        tokio::time::sleep(AFTER * 3 / 5).await;
    }
    for producer in producers {
        producer.await.unwrap();
    }
    assert_eq!(fanout.stats().disconnected_slow, 0);
}

/// `Duration::MAX` as the grace period (the usual way to say "never"), two
/// producers blocked on a full ring and one let through: the other goes on
/// waiting. Its timer's restart (`now + after`) had overflowed the instant
/// and panicked the emit.
#[tokio::test(start_paused = true)]
async fn a_grace_period_of_duration_max_waits_instead_of_panicking() {
    let fanout: Fanout<u32> =
        Fanout::builder().capacity(1).overflow(Overflow::Disconnect { after: Duration::MAX }).build();
    let mut sub = fanout.subscribe();
    fanout.emit(0).await.unwrap();
    let (mut one, mut two) = (Box::pin(fanout.emit(1)), Box::pin(fanout.emit(2)));
    assert!(futures::poll!(one.as_mut()).is_pending());
    assert!(futures::poll!(two.as_mut()).is_pending());
    assert_eq!(sub.recv().await, Some(Ok(0)));
    assert!(futures::poll!(one.as_mut()).is_ready(), "room for one");
    assert!(futures::poll!(two.as_mut()).is_pending(), "the other waits: the ring is full again");
    // An hour of the paused clock: a grace period cut short (clamped to
    // something finite) would have disconnected the subscriber by then.
    let waited = tokio::time::timeout(Duration::from_secs(3600), two.as_mut()).await;
    assert!(waited.is_err(), "the emit still waits for room");
    assert_eq!(fanout.stats().disconnected_slow, 0);
    assert_eq!(sub.recv().await, Some(Ok(1)));
    two.await.unwrap();
    assert_eq!(sub.recv().await, Some(Ok(2)));
    assert_eq!(fanout.stats().disconnected_slow, 0);
}
