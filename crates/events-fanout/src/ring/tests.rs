//! The park and arm handshakes driven step by step on one thread, so an
//! interleaving that needs a subscriber preempted half-way through `park`,
//! or one crossing while a producer arms it, is reproduced every time
//! instead of once in thousands of runs.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering::SeqCst},
};

use futures::task::ArcWake;

use super::Shared;
use crate::Overflow;

#[derive(Default)]
struct Wakes(AtomicUsize);

impl ArcWake for Wakes {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, SeqCst);
    }
}

/// A subscriber preempted between the two steps of `park` while another one parks, is
/// woken, and parks again: every publish still wakes the one that parked. With the flag
/// set before the count, the first scan cleared the half-parked flag and decremented for it
/// before its increment, the second park was absorbed by that dip, and the second publish
/// read a count of zero and woke nobody (the fan-out hang seen in
/// `tests/delivery_disconnect_and_drop.rs`).
#[test]
fn a_half_parked_subscriber_does_not_hide_another_ones_park() {
    let shared: Shared<u32> = Shared::new(8, Overflow::Wait);
    let steady = shared.register();
    let preempted = shared.register();
    let wakes = Arc::new(Wakes::default());
    let waker = futures::task::waker(Arc::clone(&wakes));

    // `preempted` runs the first step of `park` and loses its core.
    let [first_step, second_step] = Shared::PARK_STEPS;
    first_step(&shared, &preempted);

    steady.waker.register(&waker);
    shared.park(&steady);
    assert!(shared.publish(1, None).is_ok());
    assert_eq!(wakes.0.load(SeqCst), 1, "the first publish wakes the parked subscriber");

    // Woken, it takes the event and parks again before `preempted` gets its core back.
    steady.waker.register(&waker);
    shared.park(&steady);
    assert!(shared.publish(2, None).is_ok());
    assert_eq!(wakes.0.load(SeqCst), 2, "the second publish must wake it again");

    // `preempted` finishes parking; the next publish wakes it, and the count drains to zero.
    second_step(&shared, &preempted);
    preempted.waker.register(&waker);
    assert!(shared.publish(3, None).is_ok());
    assert_eq!(wakes.0.load(SeqCst), 3);
    assert_eq!(shared.parked.load(SeqCst), 0, "every park was undone by exactly one wake");
}

/// Parking twice without a publish in between (a task polled again) counts once.
#[test]
fn parking_twice_counts_once() {
    let shared: Shared<u32> = Shared::new(8, Overflow::Wait);
    let cursor = shared.register();
    shared.park(&cursor);
    shared.park(&cursor);
    assert_eq!(shared.parked.load(SeqCst), 1);
    shared.unpark(&cursor);
    assert_eq!(shared.parked.load(SeqCst), 0);
}

/// A producer arming a subscriber's cursor, the subscriber publishing its head past the
/// target between the producer's look at that head and its flag (as a subscriber running on
/// another core does): the subscriber saw no flag, so it will not release the round; the
/// producer looks again after flagging, takes the flag back and is told every cursor crossed
/// (it publishes instead of waiting). Without that look, the round waited on a subscriber
/// that had already gone past, and the producer was never woken.
#[test]
fn a_subscriber_crossing_while_the_producer_arms_it_is_not_waited_for() {
    let shared: Shared<u32> = Shared::new(2, Overflow::Wait);
    let cursor = shared.register();
    let st = shared.state.lock();
    let mut saw_flag = None;
    let waiting = shared.arm_preempted(&st, 1, |c| {
        // The subscriber's `publish_head`: its head, then a look at the flag.
        c.head.store(1, SeqCst);
        saw_flag = Some(c.armed.load(SeqCst));
    });
    drop(st);
    assert_eq!(saw_flag, Some(false), "the subscriber ran between the look and the flag");
    assert!(!waiting, "every cursor crossed while arming: the producer looks again instead of waiting");
    assert_eq!(shared.gating.load(SeqCst), 0, "no round waits on the subscriber");
    assert!(!cursor.armed.load(SeqCst), "the flag was taken back");
}

/// The same interleaving with the subscriber still below the target after it ran: the
/// round waits for it, and its crossing later ends the round.
#[test]
fn a_subscriber_still_behind_after_arming_ends_the_round_when_it_crosses() {
    let shared: Shared<u32> = Shared::new(2, Overflow::Wait);
    let cursor = shared.register();
    let st = shared.state.lock();
    let waiting = shared.arm_preempted(&st, 2, |c| c.head.store(1, SeqCst));
    drop(st);
    assert!(waiting, "a round is active");
    assert!(cursor.armed.load(SeqCst));
    cursor.head.store(2, SeqCst);
    shared.on_armed(&cursor, 2);
    assert_eq!(shared.gating.load(SeqCst), 0, "its crossing ended the round");
    assert!(!cursor.armed.load(SeqCst));
}
