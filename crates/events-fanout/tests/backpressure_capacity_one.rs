//! Backpressure: with capacity 1 a second `emit` stays pending until the
//! subscriber takes the first event, `try_emit` hands the value back, and
//! `emit_if` asks its condition again when room comes.
//! Pending-ness is asserted by polling, never by sleeping.

use std::{pin::pin, task::Context};

use events_fanout::{Fanout, TryEmitError, TryRecvError};
use futures::poll;

mod support;
use support::CountingWaker;

#[tokio::test]
async fn second_emit_waits_for_the_subscriber() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    fanout.emit(1).await.unwrap();
    let mut second = pin!(fanout.emit(2));
    assert!(poll!(second.as_mut()).is_pending());
    assert!(poll!(second.as_mut()).is_pending(), "still full: still pending");
    assert_eq!(sub.lag(), 1);
    assert_eq!(sub.recv().await, Some(Ok(1)));
    assert!(matches!(poll!(second.as_mut()), std::task::Poll::Ready(Ok(()))));
    assert_eq!(sub.try_recv(), Ok(2));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(fanout.stats().max_lag, 1);
}

/// `emit_if` asks again when room comes: a `no` then hands the value back
/// and nobody gets it; a `yes` publishes as `emit` does.
#[tokio::test]
async fn emit_if_asks_again_when_room_comes() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    fanout.emit(1).await.unwrap();
    let go = std::cell::Cell::new(true);
    let mut second = pin!(fanout.emit_if(2, || go.get()));
    assert!(poll!(second.as_mut()).is_pending());
    go.set(false);
    assert_eq!(sub.recv().await, Some(Ok(1)));
    assert!(matches!(poll!(second.as_mut()), std::task::Poll::Ready(Ok(Some(2)))));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty), "a refused value reached a subscriber");
    assert_eq!(fanout.emit_if(3, || true).await.unwrap(), None);
    assert_eq!(sub.try_recv(), Ok(3));
}

#[test]
fn blocked_emit_is_woken_once_by_the_last_gating_subscriber() {
    let fanout = Fanout::with_capacity(2);
    let mut a = fanout.subscribe();
    let mut b = fanout.subscribe();
    let mut fast = fanout.subscribe();
    for n in 0..2 {
        fanout.try_emit(n).unwrap();
    }
    assert_eq!(fast.try_recv(), Ok(0));
    let (counter, waker) = CountingWaker::new_waker();
    let mut cx = Context::from_waker(&waker);
    let mut third = pin!(fanout.emit(2));
    assert!(third.as_mut().poll(&mut cx).is_pending());
    assert_eq!(a.try_recv(), Ok(0));
    assert_eq!(counter.count(), 0, "b still gates the producer, so no wakeup yet");
    assert_eq!(b.try_recv(), Ok(0));
    assert_eq!(counter.count(), 1, "the last gating subscriber wakes the producer");
    assert!(third.as_mut().poll(&mut cx).is_ready());
    for sub in [&mut a, &mut b] {
        assert_eq!(sub.try_recv(), Ok(1));
        assert_eq!(sub.try_recv(), Ok(2));
    }
    assert_eq!(fast.try_recv(), Ok(1));
    assert_eq!(fast.try_recv(), Ok(2));
}

#[test]
fn try_emit_hands_the_value_back_when_full() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    fanout.try_emit(String::from("a")).unwrap();
    let err = fanout.try_emit(String::from("b")).unwrap_err();
    assert!(matches!(&err, TryEmitError::Full(v) if v == "b"));
    assert_eq!(err.into_inner(), "b");
    assert_eq!(sub.try_recv().as_deref(), Ok("a"));
    fanout.try_emit(String::from("c")).unwrap();
    assert_eq!(sub.try_recv().as_deref(), Ok("c"));
    assert_eq!(fanout.stats().emitted, 2, "a refused event is not counted");
}
