//! Disconnecting slow subscribers (`Overflow::Disconnect` and
//! `Overflow::DisconnectLagging`): choosing the cursors to evict, and
//! *releasing* them, which copies the events each was owed out of the ring
//! into its backlog before it stops gating producers. Neighbours: the ring
//! (`mod.rs`) calls in from `publish` and the overflow timers of `fanout.rs`;
//! the subscriber calls `end_read`. Invariant (the parent's evict handshake):
//! a cursor is released only when it is not inside a read, and only the
//! release that finds it registered copies anything.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use tokio::time::Instant;

use super::{CursorRef, Shared, State, later};

/// A stall of the ring under `Overflow::Disconnect`: the tail no event went
/// out past, and since when.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stall {
    tail: u64,
    since: Instant,
}

impl<T: Clone> Shared<T> {
    /// Under `DisconnectLagging`: evicts every cursor whose oldest unread event was emitted at
    /// least `max_age` before `now`. One load and one comparison when nobody is that far behind:
    /// the stamp at `min_head`, a lower bound of every head, is the oldest a cursor can hold.
    pub(super) fn evict_lagging(&self, st: &mut State<T>, tail: u64, now: Instant, max_age: Duration) {
        let too_old = |st: &State<T>, seq: u64| now - st.stamps[(seq & self.mask) as usize] >= max_age;
        // `tail - min_head <= capacity <= ring_len` (a publish never leaves it larger), so the
        // stamp of `min_head` is still the one of that sequence.
        if st.min_head >= tail || !too_old(st, st.min_head) {
            return;
        }
        st.min_head = Self::min_head(st, tail);
        if st.min_head >= tail || !too_old(st, st.min_head) {
            return;
        }
        let lagging: Vec<_> = st
            .cursors
            .iter()
            .filter(|c| !c.evict.load(SeqCst))
            .filter(|c| {
                let head = c.head.load(SeqCst);
                head < tail && too_old(st, head)
            })
            .cloned()
            .collect();
        for cursor in lagging {
            self.evict_locked(st, &cursor);
        }
        st.min_head = Self::min_head(st, tail);
    }

    /// Under `Overflow::Disconnect { after }`: when an emit that finds the
    /// ring full may close the full cursors, `after` from the first refusal
    /// at the current tail (no event went out since). Kept in the shared
    /// state, not in the emit: an emit cancelled and tried again (under a
    /// `timeout`, a `select!`) had started its grace period over each time,
    /// and the stalled subscriber was never closed.
    /// With the deadline, the stall it belongs to, for [`evict_full`](Self::evict_full).
    pub(crate) fn stall_deadline(&self, after: Duration) -> (Instant, Stall) {
        let mut st = self.state.lock();
        let tail = self.tail.load(Relaxed);
        let since = match st.stalled {
            Some((at, since)) if at == tail => since,
            _ => st.stalled.insert((tail, Instant::now())).1,
        };
        (later(since, after), Stall { tail, since })
    }

    /// Under `Overflow::Disconnect`: closes every cursor that still holds a full ring,
    /// if `stall` (whose deadline passed) is still the one under way: no event went
    /// out since it began. An event that went out between the deadline and this call
    /// (a subscriber took one, another producer filled its room) starts a new grace
    /// period instead: the subscriber is taking, and closing it would contradict the
    /// policy. An emit still refused after it (an evicted cursor inside its read holds
    /// its slots until the read ends) waits another grace period.
    pub(crate) fn evict_full(&self, stall: Stall) {
        let mut st = self.state.lock();
        // Closed since the emit's refusal (`close` sets it under this lock):
        // its subscribers end with `None` after every event, not `TooSlow`.
        if self.closed.load(SeqCst) {
            return;
        }
        let tail = self.tail.load(Relaxed);
        if tail != stall.tail || st.stalled != Some((stall.tail, stall.since)) {
            return;
        }
        st.stalled = Some((tail, Instant::now()));
        if st.cursors.is_empty() || tail < self.capacity {
            return;
        }
        let target = tail + 1 - self.capacity;
        // A cursor evicted while inside a read stays registered until that read ends; it is
        // already counted and told, so a second timeout in the meantime must not count it again.
        let slow: Vec<_> =
            st.cursors.iter().filter(|c| !c.evict.load(SeqCst) && c.head.load(SeqCst) < target).cloned().collect();
        for cursor in slow {
            self.evict_locked(&mut st, &cursor);
        }
        st.min_head = Self::min_head(&st, tail);
    }

    /// Marks `cursor` evicted, counts it, and releases it unless it is inside a read (then it
    /// releases itself when the read ends, in `end_read`). Wakes its subscriber either way.
    fn evict_locked(&self, st: &mut State<T>, cursor: &CursorRef<T>) {
        cursor.evict.store(true, SeqCst);
        st.disconnected_slow += 1;
        if !cursor.reading.load(SeqCst) {
            // Not inside a read, and it will see `evict` before its next one.
            self.release_locked(st, cursor);
        }
        super::wake_caught(|| cursor.waker.wake());
    }

    /// Takes an evicted cursor out of the registry, first cloning the events it was owed
    /// (its head up to the tail) into its backlog. Idempotent: only the call that finds it
    /// registered copies anything, and while it is registered its slots are intact.
    fn release_locked(&self, st: &mut State<T>, cursor: &CursorRef<T>) {
        if !st.cursors.iter().any(|c| Arc::ptr_eq(c, cursor)) {
            return;
        }
        let tail = self.tail.load(Relaxed);
        let head = cursor.head.load(SeqCst);
        {
            let mut backlog = cursor.backlog.lock();
            let backlog = backlog.get_or_insert_with(Box::default);
            backlog.reserve((tail - head) as usize);
            for seq in head..tail {
                // SAFETY: `seq < tail` (we hold the lock, so no publish runs), and the cursor is
                // still registered with head `<= seq`, so the slot holds that event.
                let cloned = catch_unwind(AssertUnwindSafe(|| unsafe { self.read(seq) }));
                // A payload whose clone panics must not take the producer down with it; the
                // subscriber then gets the prefix cloned so far and its close reason.
                let Ok(event) = cloned else { break };
                backlog.push_back(event);
            }
        }
        self.remove_locked(st, cursor);
    }

    /// Under a disconnecting policy: the subscriber left a read; honour a pending eviction
    /// (releasing the cursor if the producer could not, because the read was in progress).
    pub(crate) fn end_read(&self, cursor: &CursorRef<T>) {
        cursor.reading.store(false, SeqCst);
        if cursor.evict.load(SeqCst) {
            let mut st = self.state.lock();
            self.release_locked(&mut st, cursor);
            drop(st);
            // The producer's wake-up came during the read, maybe before a subscriber going
            // to sleep registered its waker; released, it is woken by nobody else.
            super::wake_caught(|| cursor.waker.wake());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Overflow;

    /// A subscriber evicted while inside a read stays registered until the read ends; a
    /// second timeout in that window must not count it twice (it is told once).
    #[test]
    fn eviction_during_a_read_is_counted_once() {
        let shared: Shared<u32> = Shared::new(1, Overflow::Disconnect { after: Duration::from_millis(1) });
        let cursor = shared.register();
        assert!(shared.publish(1, None).is_ok());
        // The subscriber is inside a read, so the producer cannot release its cursor.
        cursor.reading.store(true, SeqCst);
        shared.evict_full(shared.stall_deadline(Duration::from_millis(1)).1);
        shared.evict_full(shared.stall_deadline(Duration::from_millis(1)).1);
        assert_eq!(shared.stats().disconnected_slow, 1);
        assert_eq!(shared.subscriber_count(), 1, "still registered until its read ends");
        assert_eq!(cursor.backlog_len(), 0, "nothing copied while the read is in progress");
        shared.end_read(&cursor);
        assert_eq!(shared.subscriber_count(), 0);
        assert_eq!(shared.stats().disconnected_slow, 1);
        assert_eq!(cursor.take_backlog(), [1], "the release copied out what it was owed");
    }

    /// A subscriber evicted while it goes to sleep (its read found nothing and registered
    /// its waker after the producer's wake-up found none) is woken when its read ends and
    /// the cursor is released: nothing else would ever wake it, and it would never get
    /// what it is owed or its close reason.
    #[test]
    fn a_release_at_the_end_of_a_read_wakes_the_subscriber() {
        use std::sync::atomic::AtomicUsize;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        let shared: Shared<u32> = Shared::new(1, Overflow::Disconnect { after: Duration::from_millis(1) });
        let cursor = shared.register();
        assert!(shared.publish(1, None).is_ok());
        cursor.reading.store(true, SeqCst);
        shared.evict_full(shared.stall_deadline(Duration::from_millis(1)).1);
        // Only now the subscriber registers its waker and parks.
        let count = std::sync::Arc::new(Count(AtomicUsize::new(0)));
        cursor.waker.register(&std::task::Waker::from(std::sync::Arc::clone(&count)));
        shared.end_read(&cursor);
        assert_eq!(count.0.load(SeqCst), 1, "woken once released");
        assert_eq!(cursor.take_backlog(), [1], "with what it is owed");
    }

    /// A release that finds the cursor gone (dropped, or released by the other side) copies
    /// nothing: its slots may already hold later events.
    #[test]
    fn a_second_release_copies_nothing() {
        let shared: Shared<u32> = Shared::new(2, Overflow::Disconnect { after: Duration::from_millis(1) });
        let cursor = shared.register();
        assert!(shared.publish(7, None).is_ok());
        assert!(shared.publish(8, None).is_ok());
        shared.evict_full(shared.stall_deadline(Duration::from_millis(1)).1);
        assert_eq!(shared.subscriber_count(), 0, "not inside a read: released at once");
        shared.end_read(&cursor);
        assert_eq!(cursor.take_backlog(), [7, 8]);
    }

    /// Under `Overflow::Disconnect`: a subscriber that takes an event after an
    /// emit's grace period ran out but before that emit evicts (another producer
    /// then filling the room it made) is not closed: an event went out, so the
    /// stall the deadline belonged to is over. The eviction had closed every
    /// cursor full at the new tail, one that had just taken an event with them.
    #[tokio::test(start_paused = true)]
    async fn a_subscriber_that_took_an_event_since_the_deadline_is_not_closed() {
        let after = Duration::from_secs(1);
        let shared: Shared<u32> = Shared::new(1, Overflow::Disconnect { after });
        let cursor = shared.register();
        assert!(shared.publish(1, None).is_ok());
        assert!(matches!(shared.publish(2, None), Err(crate::ring::Refused::Full(_))), "the ring is full");
        let (deadline, stall) = shared.stall_deadline(after);
        tokio::time::advance(after * 2).await;
        assert!(tokio::time::Instant::now() >= deadline);
        // The subscriber takes event 1; another producer publishes event 2 into its room.
        cursor.head.store(1, SeqCst);
        assert!(shared.publish(2, None).is_ok());
        shared.evict_full(stall);
        assert_eq!(shared.state.lock().disconnected_slow, 0, "closed a subscriber that had just taken an event");
        assert!(!cursor.evict.load(SeqCst));

        // A stall that is still under way at its deadline closes the full cursor.
        assert!(matches!(shared.publish(3, None), Err(crate::ring::Refused::Full(_))));
        let (_, stall) = shared.stall_deadline(after);
        tokio::time::advance(after * 2).await;
        shared.evict_full(stall);
        assert_eq!(shared.state.lock().disconnected_slow, 1);
        assert!(cursor.evict.load(SeqCst));
    }
}
