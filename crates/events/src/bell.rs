//! [`Bell`]: how the writer tells the streams of its own process that there
//! is something new: a batch published (its envelopes kept in `recent.rs`),
//! the journal's readers reading further (`upkeep.rs`), or the writer
//! stopped. A stream caught up with the writer waits on it with one waker
//! in a slot of its own, instead of a broadcast receiver and its `recv()`
//! future: the events themselves it takes by seq from the kept envelopes
//! or the journal, so the bell carries no data and nothing can be lost in
//! it.
//!
//! Invariant: a stream that read the bell's state, found nothing new, and
//! then [`wait`](Bell::wait)ed is woken by every later ring: either the
//! ring finds its waker in its slot, or `wait` sees the state moved and
//! the stream looks again (the ring counts up before it looks for wakers,
//! `wait` stores the waker before it looks at the count, both in one
//! total order).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

/// Set in the state once the writer stopped; rings count up by 2.
pub(crate) const STOPPED: u32 = 1;

/// Wakers taken under the lock and woken after it, at most this many at a time.
const WAKE_BATCH: usize = 32;

/// A slot not taken yet.
pub(crate) const NO_SLOT: u32 = u32::MAX;

#[derive(Debug, Default)]
pub(crate) struct Bell {
    /// Twice the rings so far, plus [`STOPPED`].
    state: AtomicU64,
    /// Slots holding a waker: a ring with none takes no lock.
    waiting: AtomicUsize,
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    /// Slots given back by dropped streams.
    free: Vec<u32>,
    /// The slots a waker was stored in since the last ring: what a ring
    /// looks at, so that it costs the streams waiting, not every slot ever
    /// taken. An entry may be stale (its slot given back, or given back and
    /// taken again, then listed twice): the ring finds no waker there, or
    /// finds it at the first entry. Compacted when stale entries pile up.
    armed: Vec<u32>,
    /// The buffer of `armed` a ring took, kept for the next one.
    spare: Vec<u32>,
}

impl Bell {
    /// What the bell says now: compare it with a later look to learn
    /// whether it rang in between; [`STOPPED`] is set once the writer
    /// stopped. The low 32 bits of the count (a stream keeps them in spare
    /// bytes of its state): two looks 2^31 rings apart, to the ring, read
    /// the same, and the stream looks again at the next ring instead.
    pub(crate) fn state(&self) -> u32 {
        self.state.load(Ordering::SeqCst) as u32
    }

    /// Something new: wakes every stream waiting.
    pub(crate) fn ring(&self) {
        self.state.fetch_add(2, Ordering::SeqCst);
        self.wake_all();
    }

    /// The writer stopped: wakes every stream waiting, for good. Each
    /// stop counts as a ring too: a second one (a failed writer's, then
    /// its close's) must still move the state, or a waiter that read it
    /// between the two and waits for the second finds it unchanged and is
    /// never woken.
    pub(crate) fn stop(&self) {
        let stopped = u64::from(STOPPED);
        let _ = self.state.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| Some((s + 2) | stopped));
        self.wake_all();
    }

    /// Stores `waker` in the stream's slot (taking one on its first wait)
    /// and answers whether the state is still `seen`: `false` means it
    /// rang meanwhile and the stream must look again (its waker may stay:
    /// a ring wakes it once, harmlessly).
    pub(crate) fn wait(&self, slot: &mut u32, waker: &Waker, seen: u32) -> bool {
        let replaced = {
            let mut slots = self.slots.lock();
            let slots = &mut *slots;
            if *slot == NO_SLOT {
                *slot = match slots.free.pop() {
                    Some(free) => free,
                    None => {
                        slots.wakers.push(None);
                        u32::try_from(slots.wakers.len() - 1).expect("fewer than 2^32 streams")
                    }
                };
            }
            match &mut slots.wakers[*slot as usize] {
                Some(held) if held.will_wake(waker) => None,
                Some(held) => Some(std::mem::replace(held, waker.clone())),
                held @ None => {
                    *held = Some(waker.clone());
                    let waiting = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
                    if slots.armed.len() > 2 * waiting + 64 {
                        let wakers = &slots.wakers;
                        slots.armed.retain(|&armed| wakers[armed as usize].is_some());
                        slots.armed.sort_unstable();
                        slots.armed.dedup();
                    }
                    slots.armed.push(*slot);
                    None
                }
            }
        };
        // A waker's own `Drop` runs outside the lock.
        drop(replaced);
        self.state() == seen
    }

    /// Gives a dropped stream's slot back.
    pub(crate) fn release(&self, slot: u32) {
        if slot == NO_SLOT {
            return;
        }
        let waker = {
            let mut slots = self.slots.lock();
            let waker = slots.wakers[slot as usize].take();
            if waker.is_some() {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
            slots.free.push(slot);
            waker
        };
        drop(waker);
    }

    /// Wakes the streams whose slots were armed before this call.
    fn wake_all(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        // A stream woken here that waits again lists its slot anew, for
        // the next ring: this one wakes each armed slot once.
        let mut armed = {
            let mut slots = self.slots.lock();
            let spare = std::mem::take(&mut slots.spare);
            std::mem::replace(&mut slots.armed, spare)
        };
        for listed in armed.chunks(WAKE_BATCH) {
            let mut batch: [Option<Waker>; WAKE_BATCH] = Default::default();
            {
                let mut slots = self.slots.lock();
                for (taken, &slot) in batch.iter_mut().zip(listed) {
                    *taken = slots.wakers[slot as usize].take();
                }
                let taken = batch.iter().filter(|waker| waker.is_some()).count();
                self.waiting.fetch_sub(taken, Ordering::SeqCst);
            }
            // Woken outside the lock: a woken stream waits again at once.
            // A waker that panics (an executor's own code) is logged: the
            // writer rings, and every other stream must still be woken.
            for waker in batch.iter_mut().filter_map(Option::take) {
                if let Err(e) = crate::error::isolated("Waker::wake", || waker.wake()) {
                    crate::error::logged(
                        || tracing::warn!(error = %e, "a stream's waker panicked when the writer's bell rang"),
                    );
                }
            }
        }
        armed.clear();
        let mut slots = self.slots.lock();
        if slots.spare.capacity() < armed.capacity() {
            slots.spare = armed;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    #[test]
    fn a_ring_wakes_every_waiting_stream_once() {
        let bell = Bell::default();
        let wakers: Vec<_> = (0..70).map(|_| counter()).collect();
        let mut slots = vec![NO_SLOT; wakers.len()];
        let seen = bell.state();
        for ((_, waker), slot) in wakers.iter().zip(&mut slots) {
            assert!(bell.wait(slot, waker, seen));
            // Waiting again with the same waker keeps one.
            assert!(bell.wait(slot, waker, seen));
        }
        bell.ring();
        assert!(wakers.iter().all(|(count, _)| count.0.load(Ordering::SeqCst) == 1));
        assert_ne!(bell.state(), seen);
        // Nobody waits now: the next ring wakes nobody.
        bell.ring();
        assert!(wakers.iter().all(|(count, _)| count.0.load(Ordering::SeqCst) == 1));
        assert_eq!(bell.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_wait_after_a_ring_it_did_not_see_says_look_again() {
        let bell = Bell::default();
        let (_, waker) = counter();
        let mut slot = NO_SLOT;
        let seen = bell.state();
        bell.ring();
        assert!(!bell.wait(&mut slot, &waker, seen));
        bell.stop();
        assert_eq!(bell.state() & STOPPED, STOPPED);
    }

    /// A second stop (a failed writer stops its bell, then its close does)
    /// moves the state too: a waiter that read it after the first and
    /// waits for the second looks again. It had found the state unchanged
    /// and waited, never woken (found by review).
    #[test]
    fn a_second_stop_still_says_look_again() {
        let bell = Bell::default();
        let (_, waker) = counter();
        let mut slot = NO_SLOT;
        bell.stop();
        let seen = bell.state();
        bell.stop();
        assert!(!bell.wait(&mut slot, &waker, seen));
    }

    #[test]
    fn streams_that_come_and_go_on_a_quiet_feed_leave_a_bounded_list() {
        let bell = Bell::default();
        let (count, waker) = counter();
        let mut stays = NO_SLOT;
        assert!(bell.wait(&mut stays, &waker, bell.state()));
        for _ in 0..10_000 {
            let mut slot = NO_SLOT;
            assert!(bell.wait(&mut slot, &waker, bell.state()));
            bell.release(slot);
        }
        let listed = bell.slots.lock().armed.len();
        assert!(listed <= 2 * 2 + 65, "{listed} slots listed for 1 stream waiting");
        assert_eq!(bell.slots.lock().wakers.len(), 2, "released slots are taken again");
        bell.ring();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the one stream waiting is woken, once");
        assert!(bell.slots.lock().armed.is_empty());
    }

    struct Panics;

    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("an executor's waker");
        }
    }

    #[test]
    fn a_waker_that_panics_leaves_the_others_woken() {
        let bell = Bell::default();
        let panics = Waker::from(Arc::new(Panics));
        let counted: Vec<_> = (0..40).map(|_| counter()).collect();
        let mut slot = NO_SLOT;
        assert!(bell.wait(&mut slot, &panics, bell.state()));
        for (_, waker) in &counted {
            let mut slot = NO_SLOT;
            assert!(bell.wait(&mut slot, waker, bell.state()));
        }
        bell.ring();
        assert!(counted.iter().all(|(count, _)| count.0.load(Ordering::SeqCst) == 1), "every other stream woken");
        assert_eq!(bell.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_released_slot_is_taken_again_and_its_waker_let_go() {
        let bell = Bell::default();
        let (count, waker) = counter();
        let (mut first, mut second) = (NO_SLOT, NO_SLOT);
        assert!(bell.wait(&mut first, &waker, bell.state()));
        bell.release(first);
        assert_eq!(bell.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(Arc::strong_count(&count), 2, "the slot let its waker go");
        assert!(bell.wait(&mut second, &waker, bell.state()));
        assert_eq!(second, first, "the free slot is taken again");
        bell.ring();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
