//! Errors of the fan-out: what `emit`, `try_emit` and `try_recv` report when
//! they cannot deliver. Every error that refuses a value hands it back, so a
//! failed emit never loses the caller's event; a subscriber closed by the
//! overflow policy is told so explicitly ([`Closed::TooSlow`],
//! [`Closed::Lagging`]) instead of skipping.

use std::{fmt, time::Duration};

/// `emit` could not publish because the fan-out was closed. The value is handed back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum EmitError<T> {
    /// [`Fanout::close`](crate::Fanout::close) was called (or every handle was dropped).
    #[error("the fan-out is closed")]
    Closed(T),
}

impl<T> EmitError<T> {
    /// Returns the value that was not emitted.
    pub fn into_inner(self) -> T {
        match self {
            Self::Closed(value) => value,
        }
    }
}

impl<T> fmt::Debug for EmitError<T> {
    // No `T: Debug` bound, so `?` works for any payload (like tokio's `SendError`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// `try_emit` could not publish right now. The value is handed back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum TryEmitError<T> {
    /// At least one subscriber already holds `capacity` events it has not taken.
    #[error("a subscriber is full")]
    Full(T),
    /// The fan-out is closed.
    #[error("the fan-out is closed")]
    Closed(T),
}

impl<T> TryEmitError<T> {
    /// Returns the value that was not emitted.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Closed(value) => value,
        }
    }
}

impl<T> fmt::Debug for TryEmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// Why a subscriber was closed before the fan-out ended. Yielded once, right after the last
/// event it is owed; then the stream ends. What it is owed is every event emitted before the
/// disconnect (and, when the disconnect came in the middle of one of its reads, those emitted
/// until that read ended): always a gap-free prefix. It must then resynchronise (from a
/// journal, a snapshot, a fresh subscription).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Closed {
    /// Under [`Overflow::Disconnect`](crate::Overflow::Disconnect): the subscriber stayed full
    /// while an `emit` waited on it for longer than `after`.
    #[error("subscriber disconnected: it stayed full for longer than the overflow policy allows")]
    TooSlow,
    /// Under [`Overflow::DisconnectLagging`](crate::Overflow::DisconnectLagging): its oldest
    /// unread event had been waiting for `max_age` (it fell that far behind the producer, even if
    /// it kept reading).
    #[error("subscriber disconnected: its oldest unread event waited {max_age:?}, the most the overflow policy allows")]
    Lagging {
        /// The policy's bound.
        max_age: Duration,
    },
}

/// `try_recv` returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing new yet; the fan-out is still open.
    #[error("no event available yet")]
    Empty,
    /// The subscriber was disconnected by the overflow policy (reported once, after the events
    /// it was owed).
    #[error(transparent)]
    Closed(#[from] Closed),
    /// The fan-out is closed and every event emitted before that was taken.
    #[error("the fan-out is closed and drained")]
    Ended,
}
