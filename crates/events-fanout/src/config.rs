//! Configuration of a [`Fanout`](crate::Fanout): the slow-subscriber policy
//! [`Overflow`] and the [`FanoutBuilder`], plus the [`FanoutStats`] counters.
//! Keeps the invariant that every option has a documented default and that
//! no option can make delivery lossy without telling the subscriber.

use std::{marker::PhantomData, time::Duration};

use crate::Fanout;

/// Default per-subscriber capacity: 256 events not yet taken.
pub const DEFAULT_CAPACITY: usize = 256;

/// Largest accepted capacity (the ring is sized to the next power of two).
pub const MAX_CAPACITY: usize = 1 << 30;

/// What happens to a subscriber that falls behind. Default: [`Overflow::Wait`].
///
/// Every policy keeps DESIGN invariant 3: a subscriber receives every event emitted after it
/// subscribed, in order, or is explicitly closed with a reason.
///
/// # What a disconnected subscriber receives
///
/// Under [`Disconnect`](Overflow::Disconnect) and
/// [`DisconnectLagging`](Overflow::DisconnectLagging) a subscriber that is closed first
/// receives **every event that had already been emitted for it** when it was disconnected (at
/// most `capacity`: the producer copies them out of the ring at the disconnect, so the
/// subscriber stops gating `emit` at once), then **one** `Err` with the reason
/// ([`Closed::TooSlow`](crate::Closed::TooSlow) or
/// [`Closed::Lagging`](crate::Closed::Lagging)), then `None`. Its stream is therefore a
/// gap-free prefix of the emitted events followed by an explicit close. (An event whose
/// `Clone` panics while it is copied out ends the copy there: the subscriber gets the
/// events before it, then the close.) Events emitted after
/// the disconnect are not delivered to it, except when it was disconnected in the middle of
/// a read: its release then waits for the read to end and copies what was emitted until then
/// (still a gap-free prefix). Each disconnect counts once in
/// [`FanoutStats::disconnected_slow`].
///
/// # Timing
///
/// Both disconnecting policies use `tokio::time`, so an `emit` that has to wait needs a tokio
/// runtime with the time driver (a paused test clock works).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Pure backpressure: `emit` waits until every subscriber has room. A subscriber that
    /// never reads stalls the producers (and `try_emit` reports `Full`); a slow one paces
    /// them. Nothing is ever disconnected.
    #[default]
    Wait,
    /// A stall timer: a subscriber that stays full while an `emit` waits and no event has
    /// gone out for longer than `after` is closed with
    /// [`Closed::TooSlow`](crate::Closed::TooSlow), and the producer continues.
    /// The timer starts at the first `emit` refused since the last event went out, and the
    /// fan-out keeps it: an `emit` cancelled (a `timeout`, a `select!`) and tried again
    /// goes on with it, and one that comes after a quiet spell closes the subscriber at
    /// once if it has stayed full since (it has read nothing in the meantime).
    ///
    /// It only catches a subscriber that stops: one that keeps taking a few events before
    /// each timer runs out never trips it, and paces the producers to its own speed
    /// indefinitely (with several producers, one `emit` may then wait longer than `after`:
    /// the others take the room it frees). Use
    /// [`DisconnectLagging`](Overflow::DisconnectLagging) to bound how far behind a
    /// subscriber may fall.
    Disconnect {
        /// How long a full subscriber may go without letting any event out before it is
        /// disconnected (any duration: `Duration::MAX` never disconnects).
        after: Duration,
    },
    /// An age bound: a subscriber whose **oldest unread event** has waited `max_age` (measured
    /// from the `emit` that published it) is closed with
    /// [`Closed::Lagging`](crate::Closed::Lagging), and the producer continues.
    ///
    /// This catches a subscriber that stops *and* one that trickles along slower than the
    /// producer: with a full ring of `capacity` events, its oldest event is about
    /// `capacity / its read rate` old. A subscriber that keeps within `max_age` of the
    /// producer is never closed, however long it runs. The bound is checked by the producer:
    /// on every `emit`/`try_emit` (a subscriber lagging behind a producer that is not blocked
    /// is closed at the next emit after its oldest unread event reached `max_age`), and while
    /// an `emit` waits on a full ring (it wakes when the oldest unread event of a subscriber it
    /// waits on reaches `max_age`, so an `emit` waits at most about `max_age`). Nothing is
    /// checked while nobody emits.
    ///
    /// Cost: the producer records one emit instant per slot and reads the clock once per
    /// emit; no other policy pays for either. A `max_age` of zero closes any subscriber that
    /// has not taken every event by the next emit.
    DisconnectLagging {
        /// How long an event may wait unread before its subscriber is disconnected (any
        /// duration: `Duration::MAX` never disconnects).
        max_age: Duration,
    },
}

/// Builds a [`Fanout`]: `Fanout::builder().capacity(64).overflow(..).build()`.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct FanoutBuilder<T> {
    pub(crate) capacity: usize,
    pub(crate) overflow: Overflow,
    _payload: PhantomData<fn() -> T>,
}

impl<T> Default for FanoutBuilder<T> {
    fn default() -> Self {
        Self { capacity: DEFAULT_CAPACITY, overflow: Overflow::Wait, _payload: PhantomData }
    }
}

impl<T> Clone for FanoutBuilder<T> {
    fn clone(&self) -> Self {
        Self { capacity: self.capacity, overflow: self.overflow, _payload: PhantomData }
    }
}

impl<T> FanoutBuilder<T> {
    /// Per-subscriber bound on events emitted but not yet taken. Default: 256.
    ///
    /// # Panics
    ///
    /// [`build`](Self::build) panics if `capacity` is 0 or above [`MAX_CAPACITY`].
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The slow-subscriber policy. Default: [`Overflow::Wait`].
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }
}

impl<T: Clone + Send + Sync + 'static> FanoutBuilder<T> {
    /// Creates the fan-out.
    ///
    /// # Panics
    ///
    /// If the capacity is 0 or above [`MAX_CAPACITY`].
    pub fn build(self) -> Fanout<T> {
        Fanout::from_builder(self)
    }
}

/// A snapshot of a fan-out's counters, from [`Fanout::stats`](crate::Fanout::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FanoutStats {
    /// Events accepted by `emit`/`try_emit` (including those emitted while nobody listened).
    pub emitted: u64,
    /// Subscribers closed by the overflow policy ([`Overflow::Disconnect`] or
    /// [`Overflow::DisconnectLagging`]), each counted once.
    pub disconnected_slow: u64,
    /// The largest lag (emitted minus taken, for the slowest subscriber) the producer observed.
    /// It is sampled only when the ring looks full to the producer, whose view of the
    /// slowest position may be stale: it reaches the capacity once a subscriber filled the
    /// ring, and before that holds whatever lag such a look found (the first comes once
    /// `capacity` events were emitted, so it may be below the capacity, or 0 while nobody
    /// lagged); a spike between two looks is not seen. A subscriber's own `lag()` is exact.
    pub max_lag: u64,
    /// Subscribers currently registered.
    pub subscribers: usize,
}
