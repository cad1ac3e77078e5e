//! [`Recent`]: the newest acknowledged envelopes of a writer's feed, kept
//! in memory as the chunks the writer published: the live tail. A stream
//! caught up with the writer takes what follows its cursor here each time
//! the writer's bell rings (`bell.rs`); one that reconnects near the end,
//! or fell behind by a little, takes them too instead of reading and
//! decoding the journal again. Every stream shares the same
//! `Arc<Envelope>`s as the sinks.
//!
//! Invariant: the chunks hold consecutive seqs, all acknowledged (the
//! writer pushes a batch only after its fsync returned and `latest` moved),
//! and only of the writer's journal (a writer's epoch never changes); at
//! most `capacity` events plus one chunk are kept.

use std::collections::VecDeque;
use std::sync::Arc;

use events_core::Envelope;
use parking_lot::RwLock;

use crate::shared::LiveChunk;

/// The newest published chunks, up to a number of events.
pub(crate) struct Recent<E> {
    capacity: usize,
    /// Read by every stream taking envelopes after a ring, written by the
    /// writer alone.
    kept: RwLock<Chunks<E>>,
}

struct Chunks<E> {
    chunks: VecDeque<LiveChunk<E>>,
    /// Events in `chunks`.
    events: usize,
}

impl<E> Drop for Recent<E> {
    /// The kept envelopes go with the feed's last holder of them: the
    /// writer thread as it ends, or the caller dropping the last handle.
    /// Each chunk is let go under a catch, as `push` lets them go: an
    /// event's `Drop` that panicked there had failed a feed already closed
    /// cleanly, or come out of the caller's drop.
    fn drop(&mut self) {
        crate::error::let_go_each(std::mem::take(&mut self.kept.get_mut().chunks));
    }
}

impl<E> Recent<E> {
    pub(crate) fn new(capacity: usize) -> Self {
        Recent { capacity, kept: RwLock::new(Chunks { chunks: VecDeque::new(), events: 0 }) }
    }

    /// Keeps `chunks` (consecutive, following what is kept), letting go of
    /// the oldest chunks beyond the capacity: after the lock, each chunk
    /// on its own, its events' `Drop` panics caught and logged (the writer
    /// calls this, and may hold an event's last reference), as the ring
    /// and the fan-out catch them.
    pub(crate) fn push(&self, chunks: impl IntoIterator<Item = LiveChunk<E>>) {
        let mut evicted = Vec::new();
        {
            let mut kept = self.kept.write();
            for chunk in chunks {
                kept.events += chunk.len();
                kept.chunks.push_back(chunk);
            }
            while kept.chunks.front().is_some_and(|oldest| kept.events - oldest.len() >= self.capacity) {
                let oldest = kept.chunks.pop_front().expect("checked above");
                kept.events -= oldest.len();
                evicted.push(oldest);
            }
        }
        // Each event of a chunk whose last holder this is is let go under
        // a catch of its own (`LetGo`), its panic logged.
        drop(evicted);
    }

    /// Up to `max` envelopes from seq `cursor + 1` on, none past `limit`,
    /// when `cursor + 1` is kept; otherwise whether it was let go already
    /// or is not kept yet, so the caller reads the journal, or waits.
    pub(crate) fn after(&self, cursor: u64, max: usize, limit: u64) -> Kept<E> {
        let kept = self.kept.read();
        let (Some(earliest), Some(latest), Some(next)) = (
            kept.chunks.front().and_then(|chunk| chunk.first()),
            kept.chunks.back().and_then(|chunk| chunk.last()),
            cursor.checked_add(1),
        ) else {
            return Kept::NotYet;
        };
        let (earliest, latest) = (earliest.seq.get(), latest.seq.get());
        if next < earliest {
            return Kept::Gone;
        }
        if next > latest.min(limit) {
            return Kept::NotYet;
        }
        let last = latest.min(limit).min(cursor.saturating_add(u64::try_from(max).unwrap_or(u64::MAX)));
        // The chunk holding `next`: chunks are consecutive, so search by their first seq.
        let from = kept.chunks.partition_point(|chunk| chunk[0].seq.get() <= next) - 1;
        let mut out = Vec::with_capacity(usize::try_from(last - cursor).unwrap_or(0));
        for chunk in kept.chunks.range(from..) {
            for env in chunk.iter() {
                let seq = env.seq.get();
                if seq > last {
                    return Kept::Envelopes(out);
                }
                if seq >= next {
                    out.push(Arc::clone(env));
                }
            }
        }
        Kept::Envelopes(out)
    }
}

/// What [`Recent::after`] found.
pub(crate) enum Kept<E> {
    /// The envelopes after the cursor (at least one).
    Envelopes(Vec<Arc<Envelope<E>>>),
    /// The cursor's next seq was let go: older than every kept envelope.
    Gone,
    /// The cursor's next seq is not kept yet (past the newest kept envelope
    /// or the limit), or nothing is kept.
    NotYet,
}

impl<E> Kept<E> {
    /// The envelopes, if any were found.
    pub(crate) fn envelopes(self) -> Option<Vec<Arc<Envelope<E>>>> {
        match self {
            Kept::Envelopes(out) => Some(out),
            Kept::Gone | Kept::NotYet => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use events_core::{Seq, Timestamp};

    use super::*;

    fn chunk(seqs: std::ops::RangeInclusive<u64>) -> LiveChunk<u64> {
        let envelopes: Vec<_> = seqs
            .map(|seq| Arc::new(Envelope { seq: Seq::new(seq), ts: Timestamp(0), stream: None, event: seq, id: None }))
            .collect();
        Arc::new(envelopes.into())
    }

    fn seqs(out: Kept<u64>) -> Option<Vec<u64>> {
        out.envelopes().map(|out| out.iter().map(|env| env.seq.get()).collect())
    }

    /// An event whose `Drop` panics, still kept when the envelopes go with
    /// the feed's last holder of them (the writer thread as it ends, or
    /// the caller's last handle): each chunk is let go under a catch. The
    /// panic had come out of that drop (found by review).
    #[test]
    fn a_kept_event_whose_drop_panics_stays_inside_when_the_envelopes_go() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                if !std::thread::panicking() {
                    panic!("Bomb");
                }
            }
        }
        let envelope =
            |seq| Arc::new(Envelope { seq: Seq::new(seq), ts: Timestamp(0), stream: None, event: Bomb, id: None });
        let recent = Recent::new(10);
        recent.push([Arc::new(vec![envelope(1)].into()), Arc::new(vec![envelope(2)].into())]);
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(recent)));
        assert!(dropped.is_ok(), "the panic came out of the drop");
    }

    #[test]
    fn serves_only_kept_consecutive_acknowledged_seqs() {
        let recent = Recent::new(10);
        assert_eq!(seqs(recent.after(0, 5, 100)), None, "nothing kept");
        recent.push([chunk(1..=4), chunk(5..=8)]);
        assert_eq!(seqs(recent.after(0, 3, 100)), Some(vec![1, 2, 3]));
        assert_eq!(seqs(recent.after(3, 100, 100)), Some(vec![4, 5, 6, 7, 8]));
        assert_eq!(seqs(recent.after(3, 100, 6)), Some(vec![4, 5, 6]), "never past the limit");
        assert_eq!(seqs(recent.after(6, 100, 6)), None, "the limit reached: nothing to serve");
        assert_eq!(seqs(recent.after(8, 100, 100)), None, "caught up: nothing follows yet");

        // Up to the capacity plus one chunk is kept; then the oldest chunks go, whole.
        recent.push([chunk(9..=12)]);
        assert_eq!(seqs(recent.after(0, 100, 100)), Some((1..=12).collect()));
        assert_eq!(seqs(recent.after(4, 2, 100)), Some(vec![5, 6]));
        recent.push([chunk(13..=20)]);
        assert_eq!(seqs(recent.after(8, 100, 100)), Some((9..=20).collect()));
        assert_eq!(seqs(recent.after(7, 100, 100)), None);
        assert!(matches!(recent.after(7, 100, 100), Kept::Gone), "let go");
        assert!(matches!(recent.after(20, 100, 100), Kept::NotYet), "not published yet");
        assert!(matches!(recent.after(18, 100, 18), Kept::NotYet), "not acknowledged yet");
    }
}
