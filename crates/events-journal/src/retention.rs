//! Retention: which sealed segments to remove. [`Retention`] is the policy;
//! `plan` decides, from the segment list alone, how many of the oldest
//! segments go. The writer (`writer.rs`) applies it at open, after every
//! roll, and whenever its owner calls `Journal::prune` or
//! `Journal::prune_deferred`, which is how an idle journal (one that never
//! rolls) ages out: the façade calls `prune_deferred` on a timer. The `Interval` sync thread does not prune: it holds only a handle
//! of the active segment, not the segment list the writer owns, and
//! removing files behind the writer's back would race with a roll.
//!
//! Invariant: the active (newest) segment is never removed, whatever the
//! policy says, so the journal always holds the seq to continue from.

use std::time::Duration;

/// Which sealed segments to keep. Limits combine: a segment is removed as soon
/// as any configured limit says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    max_segments: Option<usize>,
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
}

impl Retention {
    /// Keep at most `n` segments, the active one included (at least 1).
    pub fn segments(n: usize) -> Self {
        Retention { max_segments: Some(n.max(1)), max_bytes: None, max_age: None }
    }

    /// Remove the oldest sealed segments while all segments together exceed `n` bytes.
    pub fn bytes(n: u64) -> Self {
        Retention { max_segments: None, max_bytes: Some(n), max_age: None }
    }

    /// Remove sealed segments sealed longer than `d` ago. A segment is sealed
    /// when its successor is created, so its age is read from the successor's
    /// `created at` header field. The active segment is not sealed and stays
    /// however old its records are; on an idle journal the sealed ones go
    /// when [`Journal::prune`](crate::Journal::prune) runs (it rolls nothing).
    pub fn age(d: Duration) -> Self {
        Retention { max_segments: None, max_bytes: None, max_age: Some(d) }
    }

    /// Keep everything.
    pub fn unlimited() -> Self {
        Retention { max_segments: None, max_bytes: None, max_age: None }
    }

    /// Adds a segment-count limit to this policy.
    pub fn and_segments(mut self, n: usize) -> Self {
        self.max_segments = Some(n.max(1));
        self
    }

    /// Adds a byte limit to this policy.
    pub fn and_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Adds an age limit to this policy.
    pub fn and_age(mut self, d: Duration) -> Self {
        self.max_age = Some(d);
        self
    }

    /// How many of the oldest segments to remove. `segs` lists
    /// `(bytes, created_at_nanos)` oldest first, the active segment last;
    /// `now` is unix nanoseconds.
    pub(crate) fn plan(&self, segs: &[(u64, u64)], now: u64) -> usize {
        let mut total: u64 = segs.iter().map(|s| s.0).sum();
        let mut remove = 0;
        while remove + 1 < segs.len() {
            let remaining = segs.len() - remove;
            let by_count = self.max_segments.is_some_and(|n| remaining > n);
            let by_bytes = self.max_bytes.is_some_and(|n| total > n);
            let sealed_at = segs[remove + 1].1;
            let by_age = self
                .max_age
                .is_some_and(|d| now.saturating_sub(sealed_at) > u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            if !(by_count || by_bytes || by_age) {
                break;
            }
            total -= segs[remove].0;
            remove += 1;
        }
        remove
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_plans_to_remove_the_active_segment() {
        let segs = [(100, 1), (100, 2), (100, 3)];
        assert_eq!(Retention::segments(1).plan(&segs, 10), 2);
        assert_eq!(Retention::segments(2).plan(&segs, 10), 1);
        assert_eq!(Retention::segments(5).plan(&segs, 10), 0);
        assert_eq!(Retention::bytes(0).plan(&segs, 10), 2);
        assert_eq!(Retention::bytes(250).plan(&segs, 10), 1);
        assert_eq!(Retention::age(Duration::ZERO).plan(&segs, 10), 2);
        // Segment 0 was sealed at 2 (age 8), segment 1 at 3 (age 7).
        assert_eq!(Retention::age(Duration::from_nanos(7)).plan(&segs, 10), 1);
        assert_eq!(Retention::unlimited().plan(&segs, 10), 0);
        assert_eq!(Retention::unlimited().and_segments(2).and_bytes(1000).plan(&segs, 10), 1);
        assert_eq!(Retention::segments(0).plan(&[(1, 1)], 10), 0);
    }
}
