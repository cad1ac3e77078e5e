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

/// What `emit` does when a subscriber is full. Default: [`Overflow::Wait`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// Pure backpressure: `emit` waits until every subscriber has room. A subscriber that
    /// never reads stalls the producers (and `try_emit` reports `Full`).
    #[default]
    Wait,
    /// A subscriber that stays full while an `emit` waits longer than `after` is closed:
    /// its stream yields [`Closed::TooSlow`](crate::Closed::TooSlow) once and ends, and the
    /// producer continues. Timing uses `tokio::time`, so waiting emits need a tokio runtime
    /// with the time driver (a paused test clock works).
    Disconnect {
        /// How long an `emit` waits on a full subscriber before disconnecting it.
        after: Duration,
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
    /// Subscribers closed by [`Overflow::Disconnect`].
    pub disconnected_slow: u64,
    /// The largest lag (emitted minus taken, for the slowest subscriber) the producer observed.
    /// It is sampled whenever the ring looks full, so it is exact at the capacity bound.
    pub max_lag: u64,
    /// Subscribers currently registered.
    pub subscribers: usize,
}
