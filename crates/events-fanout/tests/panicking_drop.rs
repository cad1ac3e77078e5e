//! An event whose `Drop` panics, emitted while nobody listens: the fan-out
//! lets it go at once, and the panic stays inside (the emit was counted, as
//! the same event's drop as a slot's previous occupant is caught). It had
//! unwound out of an emit already counted as done. And the other places
//! the fan-out lets events go: its last handle, an evicted subscriber.

use events_fanout::Fanout;

#[derive(Clone)]
struct PanicsOnDrop;

/// How many `PanicsOnDrop` were let go.
static LET_GO: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        LET_GO.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        panic!("a payload whose Drop panics");
    }
}

#[test]
fn an_event_emitted_to_nobody_whose_drop_panics_is_emitted() {
    let fanout = Fanout::with_capacity(4);
    let emitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fanout.try_emit(PanicsOnDrop).is_ok()));
    assert!(matches!(emitted, Ok(true)), "the emit returned Ok, with no panic");
    assert_eq!(fanout.stats().emitted, 1);
    assert_eq!(LET_GO.load(std::sync::atomic::Ordering::SeqCst), 1, "let go at once, not kept in a slot");
    drop(fanout);
    // Later subscribers are served as usual.
    let fanout = Fanout::with_capacity(4);
    let mut sub = fanout.subscribe();
    fanout.try_emit(1u8).unwrap();
    assert_eq!(sub.try_recv(), Ok(1));
}

/// Panics when dropped unless it is a clone.
struct OriginalPanicsOnDrop {
    clone: bool,
}

impl Clone for OriginalPanicsOnDrop {
    fn clone(&self) -> Self {
        OriginalPanicsOnDrop { clone: true }
    }
}

impl Drop for OriginalPanicsOnDrop {
    fn drop(&mut self) {
        if !self.clone && !std::thread::panicking() {
            panic!("the original's Drop panics");
        }
    }
}

/// The slots still holding events when the fan-out's last handle goes:
/// one whose `Drop` panics does not unwind out of that handle's drop, and
/// the slots after it are let go too. The panic had come out of
/// `drop(fanout)` (or of whichever handle went last) and leaked the rest.
#[test]
fn a_slot_whose_drop_panics_when_the_last_handle_goes_stays_inside() {
    let fanout = Fanout::with_capacity(4);
    let mut sub = fanout.subscribe();
    let dropped = std::sync::Arc::new(());
    fanout.try_emit((OriginalPanicsOnDrop { clone: false }, None)).map_err(drop).unwrap();
    fanout
        .try_emit((OriginalPanicsOnDrop { clone: true }, Some(std::sync::Arc::clone(&dropped))))
        .map_err(drop)
        .unwrap();
    assert!(sub.try_recv().is_ok());
    assert!(sub.try_recv().is_ok());
    drop(sub);
    let last = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(fanout)));
    assert!(last.is_ok(), "the panic stayed inside the fan-out's drop");
    assert_eq!(std::sync::Arc::strong_count(&dropped), 1, "the slot after it was let go too");
}

/// Counts its drops; a clone's `Drop` panics (unless already unwinding).
struct ClonePanicsOnDrop {
    clone: bool,
    drops: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Clone for ClonePanicsOnDrop {
    fn clone(&self) -> Self {
        ClonePanicsOnDrop { clone: true, drops: std::sync::Arc::clone(&self.drops) }
    }
}

impl Drop for ClonePanicsOnDrop {
    fn drop(&mut self) {
        if self.clone {
            self.drops.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if !std::thread::panicking() {
                panic!("a clone's Drop panics");
            }
        }
    }
}

/// A subscriber disconnected for being too slow holds clones of the four
/// events it was owed; the ring moves on, so they are the last ones. Dropped
/// before it took them (`take_first: false`, in the cursor's backlog) or
/// after taking one (the rest handed to the subscriber), each is let go and
/// no panic comes out of the drop. The first clone's panic had unwound out
/// of `drop(subscriber)`; a second one while unwinding aborts the process,
/// which this type avoids so that the test can report it.
fn an_evicted_subscriber_s_owed_events_whose_drop_panics_stay_inside(take_first: bool) {
    use events_fanout::{Fanout, Overflow};
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let event = || ClonePanicsOnDrop { clone: false, drops: std::sync::Arc::clone(&drops) };
    let fanout =
        Fanout::builder().capacity(4).overflow(Overflow::Disconnect { after: std::time::Duration::ZERO }).build();
    let mut slow = fanout.subscribe();
    for _ in 0..4 {
        fanout.try_emit(event()).map_err(drop).unwrap();
    }
    // Full: the next emit disconnects `slow`, its four owed events cloned out.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    for _ in 0..4 {
        runtime.block_on(fanout.emit(event())).map_err(drop).unwrap();
    }
    assert_eq!(fanout.stats().disconnected_slow, 1, "the slow subscriber was disconnected");
    let mut owed = 4;
    if take_first {
        let first = slow.try_recv().map_err(drop).expect("an owed event");
        std::mem::forget(first); // not counted: a clone taken is the caller's
        owed -= 1;
    }
    let before = drops.load(std::sync::atomic::Ordering::SeqCst);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(slow)));
    assert!(dropped.is_ok(), "no panic came out of the subscriber's drop");
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst) - before, owed, "every owed clone was let go");
}

#[test]
fn an_evicted_subscriber_dropped_with_its_backlog_whose_drop_panics_stays_inside() {
    an_evicted_subscriber_s_owed_events_whose_drop_panics_stay_inside(false);
}

#[test]
fn an_evicted_subscriber_dropped_with_owed_events_whose_drop_panics_stays_inside() {
    an_evicted_subscriber_s_owed_events_whose_drop_panics_stay_inside(true);
}
