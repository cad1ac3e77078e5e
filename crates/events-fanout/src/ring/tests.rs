//! The park handshake driven step by step on one thread, so an interleaving
//! that needs a subscriber preempted half-way through `park` is reproduced
//! every time instead of once in thousands of runs.

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
