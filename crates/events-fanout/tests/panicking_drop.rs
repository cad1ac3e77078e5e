//! An event whose `Drop` panics, emitted while nobody listens: the fan-out
//! lets it go at once, and the panic stays inside (the emit was counted, as
//! the same event's drop as a slot's previous occupant is caught). It had
//! unwound out of an emit already counted as done.

use events_fanout::Fanout;

#[derive(Clone)]
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("a payload whose Drop panics");
    }
}

#[test]
fn an_event_emitted_to_nobody_whose_drop_panics_is_emitted() {
    let fanout = Fanout::with_capacity(4);
    let emitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fanout.try_emit(PanicsOnDrop).is_ok()));
    assert!(matches!(emitted, Ok(true)), "the emit returned Ok, with no panic");
    assert_eq!(fanout.stats().emitted, 1);
    // Later subscribers are served as usual.
    let fanout = Fanout::with_capacity(4);
    let mut sub = fanout.subscribe();
    fanout.try_emit(1u8).unwrap();
    assert_eq!(sub.try_recv(), Ok(1));
}
