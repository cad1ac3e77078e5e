//! [`SinkStats`], the counters every sink in this crate reports, and the
//! private [`Counters`] cell the decorators bump from `&self`. Neighbours: every
//! decorator module owns one `Counters`. Invariant: counters only ever grow,
//! and a decorator's reported losses include the losses of the sinks it wraps,
//! so the outermost sink of a chain tells the whole story.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a sink's counters.
///
/// `emitted` counts the calls to this sink's own `emit`. The loss counters
/// (`filtered`, `dropped`, `timed_out`) add up this sink's losses and those of
/// every sink it wraps (for a [`Tee`](crate::Tee), of every branch), so reading
/// the outermost sink of a chain is enough to see everything it lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SinkStats {
    /// Events handed to this sink's `emit`.
    pub emitted: u64,
    /// Events a [`Filter`](crate::Filter) declined on purpose.
    pub filtered: u64,
    /// Events lost because a bounded queue was full or its consumer was gone.
    pub dropped: u64,
    /// Emits cut short by a [`Timeout`](crate::Timeout).
    pub timed_out: u64,
    /// Emits of a wrapped sink that panicked, caught by an
    /// [`Offload`](crate::Offload)'s background task (which goes on with
    /// the next event) or by a [`Tee`](crate::Tee) (whose other sinks
    /// still get the event).
    pub panicked: u64,
}

impl SinkStats {
    /// Events lost by accident: `dropped + timed_out + panicked` (filtering
    /// is deliberate and not counted).
    pub fn lost(&self) -> u64 {
        self.dropped.saturating_add(self.timed_out).saturating_add(self.panicked)
    }

    /// This sink's own counters with the losses of a wrapped sink added.
    #[must_use]
    pub(crate) fn with_inner(self, inner: SinkStats) -> SinkStats {
        SinkStats {
            emitted: self.emitted,
            filtered: self.filtered.saturating_add(inner.filtered),
            dropped: self.dropped.saturating_add(inner.dropped),
            timed_out: self.timed_out.saturating_add(inner.timed_out),
            panicked: self.panicked.saturating_add(inner.panicked),
        }
    }
}

/// The live, shared form of [`SinkStats`]: relaxed atomics, because the
/// counters are statistics and order nothing.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    emitted: AtomicU64,
    filtered: AtomicU64,
    dropped: AtomicU64,
    timed_out: AtomicU64,
    panicked: AtomicU64,
}

impl Counters {
    pub(crate) fn emitted(&self) {
        self.emitted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn timed_out(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn panicked(&self) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SinkStats {
        SinkStats {
            emitted: self.emitted.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_inner_keeps_own_emitted_and_sums_losses() {
        let own = SinkStats { emitted: 10, filtered: 1, dropped: 2, timed_out: 3, panicked: 1 };
        let inner = SinkStats { emitted: 7, filtered: 4, dropped: 5, timed_out: 6, panicked: 2 };
        let total = own.with_inner(inner);
        assert_eq!(total, SinkStats { emitted: 10, filtered: 5, dropped: 7, timed_out: 9, panicked: 3 });
        assert_eq!(total.lost(), 19);
    }

    #[test]
    fn counters_snapshot_what_was_bumped() {
        let c = Counters::default();
        c.emitted();
        c.emitted();
        c.dropped();
        c.timed_out();
        c.filtered();
        c.panicked();
        assert_eq!(c.snapshot(), SinkStats { emitted: 2, filtered: 1, dropped: 1, timed_out: 1, panicked: 1 });
    }
}
