//! Pruning: a dropped subscriber is unregistered at once (not on the next
//! failed send), stops gating producers, and wakes an emit it was blocking.
//! Also: a subscriber whose payload clone panics does not wedge the producer.

use std::{
    pin::pin,
    sync::atomic::{AtomicBool, Ordering},
    task::Context,
};

use events_fanout::Fanout;

mod support;
use support::{CountingWaker, runtime};

#[test]
fn dropping_a_full_subscriber_releases_the_blocked_emit() {
    let fanout = Fanout::with_capacity(1);
    let mut reader = fanout.subscribe();
    let idle = fanout.subscribe();
    assert_eq!(fanout.subscriber_count(), 2);
    fanout.try_emit(1).unwrap();
    assert_eq!(reader.try_recv(), Ok(1));

    let (counter, waker) = CountingWaker::new_waker();
    let mut cx = Context::from_waker(&waker);
    let mut blocked = pin!(fanout.emit(2));
    assert!(blocked.as_mut().poll(&mut cx).is_pending(), "`idle` is full");
    drop(idle);
    assert_eq!(fanout.subscriber_count(), 1, "pruned at drop, not at the next send");
    assert_eq!(counter.count(), 1, "the drop wakes the blocked emit");
    assert!(blocked.as_mut().poll(&mut cx).is_ready());
    assert_eq!(reader.try_recv(), Ok(2));
    for n in 3..10 {
        fanout.try_emit(n).unwrap();
        assert_eq!(reader.try_recv(), Ok(n));
    }
}

#[test]
fn an_ended_subscriber_leaves_the_registry() {
    let fanout = Fanout::<u8>::new();
    let mut sub = fanout.subscribe();
    fanout.close();
    assert_eq!(sub.try_recv(), Err(events_fanout::TryRecvError::Ended));
    assert_eq!(fanout.subscriber_count(), 0);
}

/// A payload whose clone panics while the flag is set.
#[derive(Debug)]
struct Brittle(u32);

static BREAK_CLONES: AtomicBool = AtomicBool::new(false);

impl Clone for Brittle {
    fn clone(&self) -> Self {
        assert!(!BREAK_CLONES.load(Ordering::SeqCst), "clone refused");
        Self(self.0)
    }
}

#[test]
fn a_panicking_subscriber_does_not_wedge_the_producer() {
    runtime().block_on(async {
        let fanout = Fanout::with_capacity(2);
        let mut doomed = fanout.subscribe();
        let mut survivor = fanout.subscribe();
        fanout.emit(Brittle(0)).await.unwrap();
        assert_eq!(survivor.recv().await.unwrap().unwrap().0, 0);
        BREAK_CLONES.store(true, Ordering::SeqCst);
        let crashed = tokio::spawn(async move { doomed.recv().await.map(|r| r.map(|b| b.0)) }).await;
        BREAK_CLONES.store(false, Ordering::SeqCst);
        assert!(crashed.is_err_and(|e| e.is_panic()));
        assert_eq!(fanout.subscriber_count(), 1, "unwinding dropped and pruned the subscriber");
        for n in 1..10 {
            fanout.emit(Brittle(n)).await.unwrap();
            assert_eq!(survivor.recv().await.unwrap().unwrap().0, n);
        }
    });
}
