//! Cancellation: an `emit` future dropped at any point while a subscriber is
//! full delivers its event to every live subscriber or to none of them, and
//! later events arrive with no gap and no stray copy.

use std::{pin::Pin, sync::Arc, task::Context};

use events_fanout::{Fanout, TryRecvError};

mod support;
use support::CountingWaker;

/// Where the test drops the `emit(1)` future.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DropPoint {
    BeforeFirstPoll,
    AfterPendingPoll,
    AfterWakeBeforeRepoll,
    AfterCompletion,
}

fn run(point: DropPoint) {
    let fanout = Fanout::with_capacity(1);
    let mut full = fanout.subscribe();
    let mut eager = fanout.subscribe();
    fanout.try_emit(Arc::new(0)).unwrap();
    assert_eq!(eager.try_recv().as_deref(), Ok(&0));

    let (counter, waker) = CountingWaker::new_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut: Pin<Box<_>> = Box::pin(fanout.emit(Arc::new(1)));
    let mut completed = false;
    if point != DropPoint::BeforeFirstPoll {
        assert!(fut.as_mut().poll(&mut cx).is_pending(), "`full` holds the only slot");
    }
    if matches!(point, DropPoint::AfterWakeBeforeRepoll | DropPoint::AfterCompletion) {
        assert_eq!(full.try_recv().as_deref(), Ok(&0));
        assert_eq!(counter.count(), 1, "taking the event wakes the blocked emit");
    }
    if point == DropPoint::AfterCompletion {
        assert!(matches!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(()))));
        completed = true;
    }
    drop(fut);

    if point != DropPoint::AfterWakeBeforeRepoll && point != DropPoint::AfterCompletion {
        assert_eq!(full.try_recv().as_deref(), Ok(&0));
    }
    let got_full = full.try_recv();
    let got_eager = eager.try_recv();
    if completed {
        assert_eq!((got_full.as_deref(), got_eager.as_deref()), (Ok(&1), Ok(&1)), "{point:?}");
    } else {
        assert_eq!((got_full, got_eager), (Err(TryRecvError::Empty), Err(TryRecvError::Empty)), "{point:?}");
    }
    fanout.try_emit(Arc::new(2)).unwrap();
    assert_eq!(full.try_recv().as_deref(), Ok(&2), "{point:?}");
    assert_eq!(eager.try_recv().as_deref(), Ok(&2), "{point:?}");
    assert_eq!(fanout.stats().emitted, if completed { 3 } else { 2 }, "{point:?}");
}

#[test]
fn dropped_emit_delivers_to_all_or_none_at_every_point() {
    for point in [
        DropPoint::BeforeFirstPoll,
        DropPoint::AfterPendingPoll,
        DropPoint::AfterWakeBeforeRepoll,
        DropPoint::AfterCompletion,
    ] {
        run(point);
    }
}

#[test]
fn cancelled_waiters_do_not_stall_later_emits() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    fanout.try_emit(0).unwrap();
    let (_, waker) = CountingWaker::new_waker();
    let mut cx = Context::from_waker(&waker);
    for n in 100..110 {
        let mut fut = Box::pin(fanout.emit(n));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(sub.try_recv(), Ok(0));
    fanout.try_emit(1).unwrap();
    assert_eq!(sub.try_recv(), Ok(1));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
}

/// A cancelled emit takes its waker with it: 100 emits of 100 tasks, each
/// dropped while a subscriber that stopped reading holds the fan-out full,
/// leave no waker behind. Each had left one in the list of blocked
/// producers (with the task it keeps alive) until the round ended, which
/// under a stalled subscriber is never.
#[test]
fn cancelled_emits_leave_no_waker_behind() {
    let fanout = Fanout::with_capacity(1);
    let _stalled = fanout.subscribe();
    fanout.try_emit(0).unwrap();
    for n in 1..=100 {
        let (counter, waker) = CountingWaker::new_waker();
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(fanout.emit(n));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
        drop(waker);
        assert_eq!(Arc::strong_count(&counter), 1, "emit {n}: its waker is still held");
    }
}
