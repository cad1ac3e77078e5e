//! Closing: subscribers drain every event emitted before the close and then
//! end; emits after (or blocked across) the close fail with the value handed
//! back; dropping the last handle closes; subscribing late sees a clean suffix.

use std::{pin::pin, task::Context};

use events_fanout::{EmitError, Fanout, TryEmitError, TryRecvError};
use futures::{StreamExt, stream::FusedStream};

mod support;
use support::CountingWaker;

#[tokio::test]
async fn subscribers_drain_then_end_after_close() {
    let fanout = Fanout::with_capacity(8);
    let sub = fanout.subscribe();
    for n in 0..5 {
        fanout.emit(n).await.unwrap();
    }
    fanout.close();
    assert!(fanout.is_closed());
    assert!(matches!(fanout.emit(99).await, Err(EmitError::Closed(99))));
    assert!(matches!(fanout.try_emit(98), Err(TryEmitError::Closed(98))));
    let got: Vec<_> = sub.map(Result::unwrap).collect().await;
    assert_eq!(got, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn dropping_the_last_handle_closes_and_wakes_parked_subscribers() {
    let fanout = Fanout::with_capacity(8);
    let second_handle = fanout.clone();
    let mut sub = fanout.subscribe();
    let waiter = tokio::spawn(async move {
        let first = sub.recv().await;
        let end = sub.recv().await;
        (first, end, sub.is_terminated())
    });
    second_handle.emit(7).await.unwrap();
    drop(fanout);
    assert!(!second_handle.is_closed(), "another handle is alive");
    drop(second_handle);
    assert_eq!(waiter.await.unwrap(), (Some(Ok(7)), None, true));
}

#[test]
fn a_blocked_emit_fails_with_its_value_when_closed() {
    let fanout = Fanout::with_capacity(1);
    let _full = fanout.subscribe();
    fanout.try_emit(String::from("kept")).unwrap();
    let (counter, waker) = CountingWaker::new_waker();
    let mut cx = Context::from_waker(&waker);
    let mut blocked = pin!(fanout.emit(String::from("refused")));
    assert!(blocked.as_mut().poll(&mut cx).is_pending());
    fanout.close();
    assert_eq!(counter.count(), 1, "close wakes blocked producers");
    let std::task::Poll::Ready(Err(err)) = blocked.as_mut().poll(&mut cx) else {
        panic!("a closed fan-out refuses the blocked event");
    };
    assert_eq!(err.into_inner(), "refused");
}

#[test]
fn late_subscriber_sees_exactly_the_events_after_it_subscribed() {
    let fanout = Fanout::with_capacity(4);
    let mut early = fanout.subscribe();
    fanout.try_emit(1).unwrap();
    let mut late = fanout.subscribe();
    assert_eq!(late.lag(), 0);
    fanout.try_emit(2).unwrap();
    assert_eq!(early.try_recv(), Ok(1));
    assert_eq!(early.try_recv(), Ok(2));
    assert_eq!(late.try_recv(), Ok(2));
    assert_eq!(late.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn events_without_subscribers_are_counted_and_dropped() {
    let fanout = Fanout::with_capacity(1);
    for n in 0..3 {
        fanout.try_emit(n).unwrap();
    }
    let mut sub = fanout.subscribe();
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    let stats = fanout.stats();
    assert_eq!((stats.emitted, stats.subscribers), (3, 1));
}

#[test]
fn payloads_are_released_when_everything_is_dropped() {
    let payload = std::sync::Arc::new(0_u8);
    let fanout = Fanout::with_capacity(3);
    let mut sub = fanout.subscribe();
    for _ in 0..5 {
        fanout.try_emit(std::sync::Arc::clone(&payload)).unwrap();
        drop(sub.try_recv().unwrap());
    }
    assert!(std::sync::Arc::strong_count(&payload) <= 1 + 4, "the ring holds at most its slots");
    drop(fanout);
    drop(sub);
    assert_eq!(std::sync::Arc::strong_count(&payload), 1, "no leak");
}

#[test]
#[allow(clippy::panic, reason = "asserting the documented panic message of an invalid capacity")]
fn zero_capacity_is_rejected() {
    let result = std::panic::catch_unwind(|| Fanout::<u8>::with_capacity(0));
    assert!(result.is_err());
}
