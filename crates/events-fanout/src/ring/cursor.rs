//! One subscriber's [`Cursor`] in the ring: its head and the flags of the
//! park / arm / evict handshakes described in the parent module, plus the
//! backlog an evicted cursor's owed events are copied into. Neighbours: the
//! ring (`mod.rs`) registers cursors and reads their heads; `evict.rs` fills
//! the backlog; `subscriber.rs` owns one. Invariant: the backlog is written
//! once, by the release, under the producer lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use futures::task::AtomicWaker;
use parking_lot::Mutex;

/// A cursor on cache lines of its own (64 bytes; it fits one), so that a subscriber moving
/// its head does not slow a neighbour's. Not `CachePadded`, which pads to 128 bytes on
/// x86_64: with the `Arc`'s counts that made each subscriber's cursor a 256-byte allocation.
#[repr(align(64))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// One subscriber's position, shared between the subscriber and the producers.
pub(crate) struct Cursor<T> {
    /// Next sequence this subscriber will take; everything below was taken and handed back
    /// (an event lent by `recv_ref` is handed back when its `Ref` drops).
    pub(crate) head: AtomicU64,
    /// Set by a blocked producer: "tell me when your head reaches `wake_at`".
    pub(crate) armed: AtomicBool,
    /// Set by the subscriber while it waits for `tail` to move.
    pub(crate) parked: AtomicBool,
    /// Set by the producer when the subscriber is disconnected by the overflow policy.
    pub(crate) evict: AtomicBool,
    /// Set by the subscriber while it may touch a slot (only under a disconnecting policy).
    pub(crate) reading: AtomicBool,
    /// The subscriber's task, woken on new events, on close and on eviction.
    pub(crate) waker: AtomicWaker,
    /// Filled once, when an evicted cursor is released: the events emitted for it that it had
    /// not taken, cloned out of the ring so it no longer gates producers. `None` otherwise
    /// (boxed: every subscriber holds a cursor, few are ever evicted).
    #[allow(clippy::box_collection, reason = "8 bytes in every cursor instead of 32")]
    pub(super) backlog: Mutex<Option<Box<VecDeque<T>>>>,
}

impl<T> std::fmt::Debug for Cursor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("head", &self.head.load(Relaxed))
            .field("evict", &self.evict.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T> Cursor<T> {
    pub(super) fn new(head: u64) -> Self {
        Self {
            head: AtomicU64::new(head),
            armed: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            evict: AtomicBool::new(false),
            reading: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            backlog: Mutex::new(None),
        }
    }

    /// The events owed to an evicted, released cursor (empty before the release).
    pub(crate) fn take_backlog(&self) -> VecDeque<T> {
        self.backlog.lock().take().map_or_else(VecDeque::new, |backlog| *backlog)
    }

    /// How many owed events the release copied out and the subscriber has not collected yet.
    pub(crate) fn backlog_len(&self) -> usize {
        self.backlog.lock().as_ref().map_or(0, |backlog| backlog.len())
    }
}
