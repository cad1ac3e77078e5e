//! `Subscriber::recv_ref` (and `try_recv_ref`) lends the event in its slot
//! instead of cloning it:
//! the slot stays reserved exactly while the `Ref` lives, a leaked `Ref` never
//! holds a producer back once the subscriber waits again, and under a
//! disconnecting policy a held `Ref` cannot stop the disconnect. Beside them,
//! a cloning receive whose `clone` panics skips nothing. Pending-ness is
//! asserted by polling, never by sleeping.

use std::{pin::pin, sync::Arc, task::Poll, time::Duration};

use events_fanout::{Closed, Fanout, Overflow, TryEmitError, TryRecvError};
use futures::poll;

#[tokio::test]
async fn a_lent_event_keeps_its_slot_until_the_ref_is_dropped() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    fanout.emit(Arc::new(1)).await.unwrap();
    let lent = sub.recv_ref().await.unwrap().unwrap();
    assert_eq!(**lent, 1);
    // Taken but still lent: the ring is full for this subscriber.
    assert!(matches!(fanout.try_emit(Arc::new(2)), Err(TryEmitError::Full(_))));
    let mut second = pin!(fanout.emit(Arc::new(2)));
    assert!(poll!(second.as_mut()).is_pending());
    assert_eq!(**lent, 1, "the slot was not reused while lent");
    drop(lent);
    assert!(matches!(poll!(second.as_mut()), Poll::Ready(Ok(()))), "dropping the Ref freed the slot");
    assert_eq!(**sub.recv_ref().await.unwrap().unwrap(), 2);
}

#[tokio::test]
async fn a_leaked_ref_is_published_before_the_subscriber_waits() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    fanout.emit(Arc::new(1)).await.unwrap();
    std::mem::forget(sub.recv_ref().await.unwrap().unwrap());
    assert!(matches!(fanout.try_emit(Arc::new(2)), Err(TryEmitError::Full(_))), "leaked: still reserved");
    // Waiting on an empty ring publishes the taken event first, so the producer can go on.
    let mut next = pin!(sub.recv_ref());
    assert!(poll!(next.as_mut()).is_pending());
    fanout.try_emit(Arc::new(2)).expect("the leaked event's slot was handed back");
    let Poll::Ready(Some(Ok(lent))) = poll!(next.as_mut()) else { panic!("the wait ends with the event") };
    assert_eq!(**lent, 2);
}

#[test]
fn try_recv_ref_lends_what_is_ready_and_holds_its_slot() {
    let fanout = Fanout::with_capacity(1);
    let mut sub = fanout.subscribe();
    assert!(matches!(sub.try_recv_ref(), Err(TryRecvError::Empty)));
    fanout.try_emit(String::from("a")).unwrap();
    let lent = sub.try_recv_ref().unwrap();
    assert_eq!(*lent, "a");
    assert!(matches!(fanout.try_emit(String::from("b")), Err(TryEmitError::Full(_))), "held while lent");
    drop(lent);
    fanout.try_emit(String::from("b")).unwrap();
    fanout.close();
    assert_eq!(*sub.try_recv_ref().unwrap(), "b");
    assert!(matches!(sub.try_recv_ref(), Err(TryRecvError::Ended)));
}

#[test]
fn try_recv_ref_under_a_disconnecting_policy_clones_into_the_ref() {
    let fanout =
        Fanout::builder().capacity(1).overflow(Overflow::Disconnect { after: Duration::from_millis(1) }).build();
    let mut sub = fanout.subscribe();
    fanout.try_emit(1).unwrap();
    let lent = sub.try_recv_ref().unwrap();
    // Cloned out: the slot is free although the Ref is held.
    fanout.try_emit(2).unwrap();
    assert_eq!(*lent, 1);
    drop(lent);
    drop(fanout);
    assert_eq!(*sub.try_recv_ref().unwrap(), 2);
    assert!(matches!(sub.try_recv_ref(), Err(TryRecvError::Ended)));
}

#[tokio::test]
async fn lending_and_cloning_subscribers_see_the_same_events_then_the_end() {
    let fanout = Fanout::with_capacity(4);
    let mut lending = fanout.subscribe();
    let mut cloning = fanout.subscribe();
    for n in 0..3 {
        fanout.emit(format!("e{n}")).await.unwrap();
    }
    fanout.close();
    let mut lent = Vec::new();
    while let Some(item) = lending.recv_ref().await {
        lent.push(item.unwrap().clone());
    }
    let mut cloned = Vec::new();
    while let Some(item) = cloning.recv().await {
        cloned.push(item.unwrap());
    }
    assert_eq!(lent, ["e0", "e1", "e2"]);
    assert_eq!(cloned, lent);
    assert!(lending.recv_ref().await.is_none(), "ended for good");
}

#[tokio::test]
async fn a_recv_ref_future_dropped_after_its_wake_takes_nothing() {
    let fanout = Fanout::with_capacity(2);
    let mut sub = fanout.subscribe();
    {
        let mut waiting = pin!(sub.recv_ref());
        assert!(poll!(waiting.as_mut()).is_pending());
        // The event arrives and wakes the future, which is dropped without being polled.
        fanout.emit(7).await.unwrap();
    }
    assert_eq!(sub.lag(), 1, "nothing was taken");
    assert_eq!(*sub.recv_ref().await.unwrap().unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_held_ref_does_not_stop_a_disconnect() {
    let fanout =
        Fanout::builder().capacity(1).overflow(Overflow::Disconnect { after: Duration::from_millis(10) }).build();
    let mut sub = fanout.subscribe();
    fanout.emit(1).await.unwrap();
    let lent = sub.recv_ref().await.unwrap().unwrap();
    assert_eq!(*lent, 1);
    // Under a disconnecting policy the event was cloned into the Ref, so the subscriber's
    // slot is free: the producer does not wait on it.
    fanout.emit(2).await.unwrap();
    // Full again (event 2 not taken): the stall timer disconnects it while the Ref is held.
    fanout.emit(3).await.unwrap();
    assert_eq!(fanout.stats().disconnected_slow, 1);
    assert_eq!(*lent, 1);
    drop(lent);
    assert_eq!(*sub.recv_ref().await.unwrap().unwrap(), 2, "the owed event first");
    assert!(matches!(sub.recv_ref().await, Some(Err(Closed::TooSlow))));
    assert!(sub.recv_ref().await.is_none());
}

/// A payload whose `clone` panics while `FAIL` is set.
#[derive(Debug, PartialEq)]
struct Fragile(u32);

static FAIL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Clone for Fragile {
    fn clone(&self) -> Self {
        assert!(!FAIL.load(std::sync::atomic::Ordering::SeqCst), "clone failed");
        Self(self.0)
    }
}

/// `try_recv` with `Fragile`'s clone failing: whether it panicked.
fn try_recv_with_a_failing_clone(sub: &mut events_fanout::Subscriber<Fragile>) -> bool {
    FAIL.store(true, std::sync::atomic::Ordering::SeqCst);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sub.try_recv()));
    FAIL.store(false, std::sync::atomic::Ordering::SeqCst);
    caught.is_err()
}

#[test]
fn a_clone_that_panics_leaves_the_event_to_be_taken_again() {
    let fanout = Fanout::with_capacity(2);
    let mut sub = fanout.subscribe();
    fanout.try_emit(Fragile(1)).unwrap();
    assert!(try_recv_with_a_failing_clone(&mut sub), "the clone panicked");
    assert_eq!(sub.try_recv(), Ok(Fragile(1)), "not skipped");
}

/// Under a disconnecting policy a read marks the subscriber `reading`, which
/// stops the producer from releasing it; a clone that panics inside the read
/// must end it too, or the slow subscriber it keeps (still registered, never
/// polled again) would hold the producer for good.
#[tokio::test(flavor = "current_thread")]
async fn a_clone_that_panics_inside_a_read_still_lets_the_disconnect_policy_free_the_producer() {
    let fanout =
        Fanout::builder().capacity(1).overflow(Overflow::Disconnect { after: Duration::from_millis(10) }).build();
    let mut sub = fanout.subscribe();
    fanout.try_emit(Fragile(1)).unwrap();
    assert!(try_recv_with_a_failing_clone(&mut sub), "the clone panicked");
    // `sub` stays alive and is never polled again: the policy must close it.
    tokio::time::timeout(Duration::from_secs(5), fanout.emit(Fragile(2)))
        .await
        .expect("the producer waits for ever")
        .unwrap();
    assert_eq!(fanout.stats().disconnected_slow, 1);
    assert_eq!(fanout.subscriber_count(), 0, "released");
    drop(sub);
}
