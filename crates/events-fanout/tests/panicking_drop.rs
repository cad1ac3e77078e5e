//! An event whose `Drop` panics, emitted while nobody listens: the fan-out
//! lets it go at once, and the panic stays inside (the emit was counted, as
//! the same event's drop as a slot's previous occupant is caught). It had
//! unwound out of an emit already counted as done.

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
