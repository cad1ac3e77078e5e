//! The shared ring behind a [`Fanout`](crate::Fanout) and its
//! [`Subscriber`](crate::Subscriber)s: one slot array written by producers under
//! a lock, read lock-free by every subscriber through its own cursor. Its
//! neighbours are `fanout.rs` (the producer handle and its overflow timers) and
//! `subscriber.rs` (the cursor owner).
//!
//! **Invariant:** the slot for sequence `s` is overwritten (by `s + ring_len`)
//! only when every registered cursor's published head is past `s`, and a cursor
//! leaves the registry only when its subscriber can no longer read a slot
//! (dropped, or disconnected while not inside a read). A disconnected cursor is
//! *released*: under the producer lock, while it is still registered, the events
//! it was owed are cloned out of the ring into its backlog, and only then is it
//! removed, so a disconnected subscriber still gets a gap-free prefix.
//! Everything unsafe in the crate rests on that rule; the atomics below
//! implement it with three small Dekker-style handshakes (each side stores,
//! then loads the other side's flag, all `SeqCst`), so no wakeup is ever lost:
//!
//! * **park**: a subscriber with nothing to read counts itself in the parked
//!   count, sets its `parked` flag, then re-reads `tail`; a producer stores
//!   `tail`, reads the parked count and, when it is not zero, clears and wakes
//!   every set flag. The count goes up before the flag and down only after a
//!   flag was cleared, so it is never below the number of set flags: a
//!   subscriber preempted half-way through parking cannot make a producer read
//!   zero while another subscriber is parked.
//! * **arm**: a producer blocked on a full ring *arms* the cursors that gate it,
//!   then re-reads their heads; a subscriber stores its head then reads `armed`.
//!   The producer sleeps until every armed cursor has crossed the target
//!   (`gating` reaches zero), so N subscribers cost one producer wakeup per
//!   blocked emit, not N.
//! * **evict** (only under `Overflow::Disconnect` and
//!   `Overflow::DisconnectLagging`): a subscriber sets `reading` then checks
//!   `evict`; the producer sets `evict` then checks `reading`, and releases the
//!   cursor only when it is not inside a read (otherwise the subscriber
//!   releases itself when the read ends).
//!
//! Under `Overflow::DisconnectLagging` the producer also stamps every slot with
//! its emit instant (kept in the locked producer state, so no other policy pays
//! for it) and, on every publish, disconnects the cursors whose oldest unread
//! event is at least `max_age` old.

mod cursor;
mod evict;
#[cfg(test)]
mod tests;

pub(crate) use cursor::{Cursor, Padded};

use std::{
    cell::UnsafeCell,
    mem::MaybeUninit,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst},
    },
    task::Waker,
    time::Duration,
};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::{Closed, FanoutStats, Overflow, TryEmitError};

type CursorRef<T> = Arc<Padded<Cursor<T>>>;

/// A blocked emit, as `publish` registers it: its key (given at its first registration)
/// and the waker to wake when it may try again.
pub(crate) struct Waiter<'a> {
    pub(crate) key: &'a mut Option<u64>,
    pub(crate) waker: &'a Waker,
}

/// Producer-side state, only touched under the lock.
struct State<T> {
    /// Registered cursors: the ones that gate producers.
    cursors: Vec<CursorRef<T>>,
    /// A lower bound of every registered head, refreshed when the ring looks full.
    min_head: u64,
    /// A producer armed cursors and waits for `gating` to reach zero.
    round_active: bool,
    /// Blocked producers to wake when the round completes, on removal or on close: one
    /// entry per waiting emit (its key, its latest waker). An emit dropped while it waits
    /// takes its entry out; one that ended leaves it to the end of the round.
    waiters: Vec<(u64, Waker)>,
    /// The key of the last emit that waited.
    last_waiter: u64,
    /// Under `DisconnectLagging` only: the emit instant of the event in each slot (indexed
    /// like the slots). Empty under every other policy.
    stamps: Vec<Instant>,
    /// Under `Disconnect` only: the tail at which an emit first found the
    /// ring full, and when. Every emit waiting at that tail (cancelled and
    /// retried ones too) counts its grace period from there.
    stalled: Option<(u64, Instant)>,
    emitted: u64,
    disconnected_slow: u64,
    max_lag: u64,
}

/// Why a publish attempt did not happen.
pub(crate) enum Refused<T> {
    Full(T),
    Closed(T),
    /// The producer's condition said no when the value could have gone out
    /// (`publish_if`).
    Declined(T),
}

impl<T> From<Refused<T>> for TryEmitError<T> {
    fn from(refused: Refused<T>) -> Self {
        match refused {
            // `Declined` comes only from `publish_if`, which `try_emit` does not use.
            Refused::Full(value) | Refused::Declined(value) => TryEmitError::Full(value),
            Refused::Closed(value) => TryEmitError::Closed(value),
        }
    }
}

type Slot<T> = UnsafeCell<MaybeUninit<T>>;

/// The ring and everything producers and subscribers share.
pub(crate) struct Shared<T> {
    /// Written by the producer on every publish; read by subscribers when they run dry.
    tail: CachePadded<AtomicU64>,
    /// How many cursors are parked; producers skip the wake scan when it is zero.
    parked: CachePadded<AtomicUsize>,
    /// Armed cursors that have not crossed `wake_at` yet (plus one while arming).
    gating: CachePadded<AtomicUsize>,
    wake_at: AtomicU64,
    closed: AtomicBool,
    /// Live `Fanout` handles; the last one to go closes the fan-out.
    pub(crate) handles: AtomicUsize,
    state: CachePadded<Mutex<State<T>>>,
    slots: Box<[Slot<T>]>,
    mask: u64,
    capacity: u64,
    /// Whether subscribers must announce reads (a disconnecting policy).
    pub(crate) evictable: bool,
    /// `Some(max_age)` under `Overflow::DisconnectLagging`.
    max_age: Option<Duration>,
    pub(crate) overflow: Overflow,
}

// SAFETY: slots hold `T`s that are moved in by producers and dropped or cloned from any
// thread (so `T: Send`), and cloned through `&T` by many subscribers at once (so `T: Sync`).
// Every slot access follows the ring invariant in the module docs. Backlogs only move `T`s
// between threads behind a mutex.
unsafe impl<T: Send + Sync> Send for Shared<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("tail", &self.tail.load(Relaxed))
            .field("capacity", &self.capacity)
            .field("closed", &self.closed.load(Relaxed))
            .field("overflow", &self.overflow)
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Slots hold the last `min(tail, ring_len)` events; nothing else is initialised.
        let tail = *self.tail.get_mut();
        let ring_len = self.slots.len() as u64;
        for seq in tail.saturating_sub(ring_len)..tail {
            let slot = self.slots[(seq & self.mask) as usize].get_mut();
            // A payload whose `Drop` panics must not unwind out of the last handle's drop
            // (nor leave the slots after it undropped), as at the other places slots let go.
            // SAFETY: every sequence below `tail` was written, and the slot of `seq` was not
            // overwritten since `seq + ring_len >= tail`; we have `&mut self`, so no reader,
            // and each slot is dropped once.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { slot.assume_init_drop() }));
        }
    }
}

impl<T> Shared<T> {
    pub(crate) fn new(capacity: usize, overflow: Overflow) -> Self {
        let ring_len = capacity.next_power_of_two();
        let max_age = match overflow {
            Overflow::DisconnectLagging { max_age } => Some(max_age),
            Overflow::Wait | Overflow::Disconnect { .. } => None,
        };
        // Stamps are read only for sequences that were published (and stamped), so the
        // initial value never matters; no other policy allocates them.
        let stamps = if max_age.is_some() { vec![Instant::now(); ring_len] } else { Vec::new() };
        let state = State {
            cursors: Vec::new(),
            min_head: 0,
            round_active: false,
            waiters: Vec::new(),
            last_waiter: 0,
            stamps,
            stalled: None,
            emitted: 0,
            disconnected_slow: 0,
            max_lag: 0,
        };
        Self {
            tail: CachePadded::new(AtomicU64::new(0)),
            parked: CachePadded::new(AtomicUsize::new(0)),
            gating: CachePadded::new(AtomicUsize::new(0)),
            wake_at: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
            state: CachePadded::new(Mutex::new(state)),
            slots: (0..ring_len).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect(),
            mask: ring_len as u64 - 1,
            capacity: capacity as u64,
            evictable: !matches!(overflow, Overflow::Wait),
            max_age,
            overflow,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The sequence the next event will get.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// What a subscriber disconnected under this fan-out's policy is told.
    pub(crate) fn close_reason(&self) -> Closed {
        match self.overflow {
            Overflow::DisconnectLagging { max_age } => Closed::Lagging { max_age },
            Overflow::Wait | Overflow::Disconnect { .. } => Closed::TooSlow,
        }
    }

    fn min_head(st: &State<T>, tail: u64) -> u64 {
        st.cursors.iter().map(|c| c.head.load(SeqCst)).min().unwrap_or(tail)
    }

    /// Arms every cursor whose head is below `target`. Returns `false` when all of them
    /// crossed during arming (the caller must look again), `true` when a round is active.
    fn arm(&self, st: &State<T>, target: u64) -> bool {
        self.arm_preempted(st, target, |_| {})
    }

    /// [`arm`](Self::arm), with `preempted` run for each gating cursor between the look at
    /// its head and its flag: the unit tests publish a subscriber's head there, as one
    /// running on another core does, so that arming without the look again fails them.
    fn arm_preempted(&self, st: &State<T>, target: u64, mut preempted: impl FnMut(&Cursor<T>)) -> bool {
        self.wake_at.store(target, SeqCst);
        self.gating.store(1, SeqCst);
        for cursor in &st.cursors {
            if cursor.head.load(SeqCst) < target {
                self.gating.fetch_add(1, SeqCst);
                preempted(cursor);
                cursor.armed.store(true, SeqCst);
                // The subscriber may have crossed before it could see `armed`.
                if cursor.head.load(SeqCst) >= target && cursor.armed.swap(false, SeqCst) {
                    self.gating.fetch_sub(1, SeqCst);
                }
            }
        }
        self.gating.fetch_sub(1, SeqCst) != 1
    }

    /// Called by a subscriber whose cursor is armed, after publishing its head.
    pub(crate) fn on_armed(&self, cursor: &Cursor<T>, head: u64) {
        if head >= self.wake_at.load(SeqCst)
            && cursor.armed.swap(false, SeqCst)
            && self.gating.fetch_sub(1, SeqCst) == 1
        {
            let mut st = self.state.lock();
            Self::finish_round(&mut st);
        }
    }

    fn finish_round(st: &mut State<T>) {
        st.round_active = false;
        for (_, waker) in st.waiters.drain(..) {
            wake_caught(|| waker.wake());
        }
    }

    /// An emit was dropped while it waited: its waker is not kept for a round it no longer
    /// waits on. The waker is dropped after the lock is released.
    pub(crate) fn forget_waiter(&self, key: u64) {
        let mut st = self.state.lock();
        let gone = st.waiters.iter().position(|(k, _)| *k == key).map(|at| st.waiters.swap_remove(at));
        drop(st);
        drop(gone);
    }

    /// Registers a new cursor at the current tail.
    pub(crate) fn register(&self) -> CursorRef<T> {
        let mut st = self.state.lock();
        let cursor = Arc::new(Padded(Cursor::new(self.tail.load(SeqCst))));
        st.cursors.push(Arc::clone(&cursor));
        cursor
    }

    /// Unregisters a cursor so it no longer gates producers. Idempotent.
    pub(crate) fn remove(&self, cursor: &CursorRef<T>) {
        let mut st = self.state.lock();
        self.remove_locked(&mut st, cursor);
    }

    fn remove_locked(&self, st: &mut State<T>, cursor: &CursorRef<T>) {
        let Some(pos) = st.cursors.iter().position(|c| Arc::ptr_eq(c, cursor)) else { return };
        st.cursors.swap_remove(pos);
        if cursor.parked.swap(false, SeqCst) {
            self.parked.fetch_sub(1, SeqCst);
        }
        if cursor.armed.swap(false, SeqCst) && self.gating.fetch_sub(1, SeqCst) == 1 {
            Self::finish_round(st);
        }
    }

    /// Parks the cursor: from now on the next publish wakes its waker.
    pub(crate) fn park(&self, cursor: &Cursor<T>) {
        for step in Self::PARK_STEPS {
            step(self, cursor);
        }
    }

    /// The steps of `park`, in its order: the unit tests run them one at a time, as a
    /// subscriber preempted between them does, so that an order that loses a wake fails them.
    pub(super) const PARK_STEPS: [fn(&Self, &Cursor<T>); 2] = [Self::count_parked, Self::flag_parked];

    /// The first step of `park`: a producer that reads the count from now on scans the flags.
    fn count_parked(&self, _: &Cursor<T>) {
        self.parked.fetch_add(1, SeqCst);
    }

    /// The second step of `park`. A producer's scan decrements the count only for a flag it
    /// cleared, whose increment therefore came first; flagging first and counting second let
    /// a scan clear a half-parked cursor's flag and decrement for it before its increment,
    /// and a second cursor parking meanwhile was absorbed by that dip: the next publish read
    /// zero and never woke it.
    fn flag_parked(&self, cursor: &Cursor<T>) {
        if cursor.parked.swap(true, SeqCst) {
            // Already parked (polled again before a publish): it was counted then.
            self.parked.fetch_sub(1, SeqCst);
        }
    }

    /// Undoes `park` when the subscriber found an event after all.
    pub(crate) fn unpark(&self, cursor: &Cursor<T>) {
        if cursor.parked.load(Relaxed) && cursor.parked.swap(false, SeqCst) {
            self.parked.fetch_sub(1, SeqCst);
        }
    }

    /// Closes the fan-out: no more events; subscribers drain and end; blocked emits fail.
    pub(crate) fn close(&self) {
        let mut st = self.state.lock();
        self.closed.store(true, SeqCst);
        for cursor in &st.cursors {
            wake_caught(|| cursor.waker.wake());
        }
        Self::finish_round(&mut st);
    }

    pub(crate) fn stats(&self) -> FanoutStats {
        let st = self.state.lock();
        FanoutStats {
            emitted: st.emitted,
            disconnected_slow: st.disconnected_slow,
            max_lag: st.max_lag,
            subscribers: st.cursors.len(),
        }
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.state.lock().cursors.len()
    }

    /// Under `DisconnectLagging`, while an emit waits on a full ring: when the oldest unread
    /// event of a cursor still being waited on reaches `max_age`. `None` under other policies,
    /// or when every gating cursor is already evicted (its release wakes the waiting emit).
    pub(crate) fn lag_deadline(&self) -> Option<Instant> {
        let max_age = self.max_age?;
        let st = self.state.lock();
        let tail = self.tail.load(Relaxed);
        st.cursors
            .iter()
            .filter(|c| !c.evict.load(SeqCst))
            .map(|c| c.head.load(SeqCst))
            .filter(|&head| head < tail)
            .min()
            .map(|head| later(st.stamps[(head & self.mask) as usize], max_age))
    }
}

/// Runs `wake`, which calls a task's waker: the executor's own code. A
/// waker that panics is caught, so that every other task the same pass
/// wakes is still woken and the state the pass changed stays as it is: a
/// round ended, an event published (its emit then returns `Ok`), a read
/// that made room (its subscriber gets the event it took), a close. Each
/// had unwound with the tasks after it in its list left waiting for good.
pub(crate) fn wake_caught(wake: impl FnOnce()) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(wake));
}

/// Lets `value` go, a panic of its `Drop` kept inside: the fan-out lets go
/// of events where a panic would unwind out of a call already done (an
/// emit, a subscriber's drop), and a second one while unwinding aborts.
pub(crate) fn drop_caught<T>(value: T) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)));
}

/// `at + after`, held to about 30 years past `at` (as tokio holds its
/// timers): an `Overflow` of `Duration::MAX`, the usual way to say "never",
/// overflowed the instant and panicked a blocked `emit`.
pub(crate) fn later(at: Instant, after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    at + after.min(FAR)
}

impl<T: Clone> Shared<T> {
    /// Publishes `value` to every registered cursor, or refuses without side effect.
    ///
    /// With `waker`, a refusal for fullness also registers it and arms the gating cursors,
    /// so the caller is woken when the slowest one frees a slot (or on close/removal).
    /// The event becomes visible to all subscribers at once (one `tail` store), which is
    /// what makes a dropped `emit` all-or-nothing. Under `DisconnectLagging` it first
    /// disconnects every cursor whose oldest unread event is `max_age` old.
    #[inline]
    pub(crate) fn publish(&self, value: T, waiter: Option<Waiter<'_>>) -> Result<(), Refused<T>> {
        self.publish_if(value, waiter, &mut || true)
    }

    /// [`publish`](Self::publish), asking `go` once the value can go out
    /// (room for it, or nobody listening), under the lock and right before
    /// it goes: `false` refuses it (`Declined`) with no side effect.
    #[inline]
    pub(crate) fn publish_if(
        &self,
        value: T,
        mut waiter: Option<Waiter<'_>>,
        go: &mut impl FnMut() -> bool,
    ) -> Result<(), Refused<T>> {
        let mut st = self.state.lock();
        if self.closed.load(SeqCst) {
            return Err(Refused::Closed(value));
        }
        if st.cursors.is_empty() {
            if !go() {
                return Err(Refused::Declined(value));
            }
            // Nobody listens: nothing to deliver, and no slot needs to keep it.
            // Counted as emitted, so a `Drop` that panics must not unwind out
            // of it (as the slot's previous occupant's, below).
            st.emitted += 1;
            drop(st);
            drop_caught(value);
            return Ok(());
        }
        let tail = self.tail.load(Relaxed);
        let now = self.max_age.map(|max_age| {
            let now = Instant::now();
            self.evict_lagging(&mut st, tail, now, max_age);
            now
        });
        while tail - st.min_head >= self.capacity {
            st.min_head = Self::min_head(&st, tail);
            st.max_lag = st.max_lag.max(tail - st.min_head);
            if tail - st.min_head < self.capacity {
                break;
            }
            let Some(Waiter { key, waker }) = waiter.as_mut() else { return Err(Refused::Full(value)) };
            let waker: &Waker = waker;
            let key = *key.get_or_insert_with(|| {
                st.last_waiter += 1;
                st.last_waiter
            });
            match st.waiters.iter_mut().find(|(k, _)| *k == key) {
                Some((_, known)) if known.will_wake(waker) => {}
                Some((_, known)) => known.clone_from(waker),
                None => st.waiters.push((key, waker.clone())),
            }
            if st.round_active {
                return Err(Refused::Full(value));
            }
            if self.arm(&st, tail + 1 - self.capacity) {
                st.round_active = true;
                return Err(Refused::Full(value));
            }
            // Every gating cursor crossed while we armed: look again.
        }
        // This emit ends here, published or declined. Its waker, pushed in
        // this call (every gating cursor crossed while it armed) or in an
        // earlier one, leaves the list now: with no round running, nothing
        // would take it out (it kept its task alive, and gave it a wake for
        // nothing, until some later round). Dropped after the lock, as
        // `forget_waiter` drops one.
        let own = match &waiter {
            Some(Waiter { key: Some(key), .. }) => {
                st.waiters.iter().position(|(k, _)| k == key).map(|at| st.waiters.swap_remove(at))
            }
            _ => None,
        };
        if !go() {
            drop(st);
            drop(own);
            return Err(Refused::Declined(value));
        }
        st.emitted += 1;
        if let Some(now) = now {
            st.stamps[(tail & self.mask) as usize] = now;
        }
        let slot = self.slots[(tail & self.mask) as usize].get();
        // SAFETY: we are the only writer (lock held). The slot's previous occupant,
        // `tail - ring_len`, is below every registered head (`tail - min_head < capacity
        // <= ring_len`), so no subscriber reads it, and it was initialised iff
        // `tail >= ring_len`. We move it out and drop it after unlocking.
        let old = unsafe {
            let old = if tail > self.mask { Some((*slot).assume_init_read()) } else { None };
            (*slot).write(value);
            old
        };
        self.tail.store(tail + 1, SeqCst);
        if self.parked.load(SeqCst) > 0 {
            // One catch for the whole scan, not one per wake (it runs at every publish while
            // subscribers are parked): a waker that panics ends the pass it is in, and the
            // scan goes on after it.
            let mut next = 0;
            while next < st.cursors.len() {
                wake_caught(|| {
                    while let Some(cursor) = st.cursors.get(next) {
                        next += 1;
                        // `SeqCst`: a flag read as unset here is set after our `tail` store in
                        // the single total order, so its owner's re-read of `tail` sees the new
                        // event.
                        if cursor.parked.load(SeqCst) && cursor.parked.swap(false, SeqCst) {
                            self.parked.fetch_sub(1, SeqCst);
                            cursor.waker.wake();
                        }
                    }
                });
            }
        }
        drop(st);
        drop(own);
        // The event is out: a payload whose `Drop` panics must not make this emit look failed
        // to its caller, which would then act as if nobody had it (it is the previous
        // occupant of the slot, not the caller's value).
        if let Some(old) = old {
            drop_caught(old);
        }
        Ok(())
    }

    /// Borrows the event at `seq`.
    ///
    /// # Safety
    ///
    /// As [`read`](Self::read), for as long as the borrow lives.
    pub(crate) unsafe fn get(&self, seq: u64) -> &T {
        let slot = self.slots[(seq & self.mask) as usize].get();
        // SAFETY: the caller's contract, as in `read`.
        unsafe { (*slot).assume_init_ref() }
    }

    /// Clones the event at `seq`.
    ///
    /// # Safety
    ///
    /// `seq < tail` (loaded with at least `Acquire`), and the caller's cursor is registered
    /// with a published head `<= seq` (or is evicted but still marked `reading`).
    pub(crate) unsafe fn read(&self, seq: u64) -> T {
        // SAFETY: the caller's contract: the slot was written before `tail` passed `seq`,
        // and it cannot be overwritten while the caller's head is at most `seq`.
        unsafe { self.get(seq) }.clone()
    }
}
