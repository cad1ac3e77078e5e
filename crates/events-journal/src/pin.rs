//! The consumer pin: how many of the segments that
//! [`Retention`] wants gone the writer actually removes, given the
//! registered consumers' checkpoints (`consumer.rs`). The writer's
//! retention pass (`Journal::apply_retention` in `writer.rs`) asks
//! [`Journal::plan_retention`] before removing anything and reports
//! consumers it cut loose with [`Journal::report_cut_loose`] after.
//!
//! Invariant: the pin is bounded. A consumer holds a segment back only
//! while keeping everything it still needs stays within
//! [`JournalOptions::consumer_limit`](crate::JournalOptions::consumer_limit);
//! past that, or with a damaged checkpoint, or a checkpoint of another
//! epoch, or one that already expired, it pins nothing. A checkpoint file
//! pins for each checkpoint of this journal it may hold after a power loss
//! (`Held::seqs_in`), not for a commit whose `fdatasync` has not returned
//! alone. So whatever the
//! consumers do (or fail to do), the journal never holds more than the
//! larger of `retention` and `consumer_limit` allow. And the pin fails
//! safe: when the consumers cannot be listed, or a checkpoint cannot be
//! read (an I/O error, say `EMFILE` in a busy process), the pass keeps
//! everything the consumer limit allows, as for a consumer at the start.

use std::path::Path;

use crate::consumer::read_consumers;
use crate::error::JournalError;
use crate::retention::Retention;
use crate::segment;
use crate::writer::Journal;

/// A consumer that retention may cut loose: it needs segments from index
/// `first_needed` on, but pinning them would exceed the consumer limit.
#[derive(Debug)]
pub(crate) struct Loose {
    name: String,
    checkpoint: u64,
    first_needed: usize,
}

/// What the pin decided for one retention pass.
#[derive(Debug, Default)]
pub(crate) struct PinPlan {
    /// How many of the oldest segments to remove.
    pub(crate) remove: usize,
    /// Consumers beyond the limit, which did not pin.
    pub(crate) loose: Vec<Loose>,
}

impl Journal {
    /// How many of the oldest segments this retention pass removes:
    /// [`Retention::plan`], reduced by the consumers within the limit.
    /// Records in [`JournalStats::pinned_segments`](crate::JournalStats::pinned_segments)
    /// how many segments were kept only for consumers.
    pub(crate) fn plan_retention(&mut self) -> PinPlan {
        let now = segment::now_nanos();
        let plan: Vec<(u64, u64)> = self.segments.iter().map(|s| (s.bytes, s.created_at)).collect();
        let remove = self.opts.retention.plan(&plan, now);
        self.stats.pinned_segments = 0;
        if remove == 0 || !self.opts.pin_for_consumers {
            return PinPlan { remove, loose: Vec::new() };
        }
        let Some(consumers) = pinning(&self.dir, self.epoch) else {
            // Who needs what is not known this time: keep what the limit allows.
            let bounded = remove.min(self.opts.consumer_limit.plan(&plan, now));
            self.stats.pinned_segments = remove - bounded;
            return PinPlan { remove: bounded, loose: Vec::new() };
        };
        let first_seqs: Vec<u64> = self.segments.iter().map(|s| s.first_seq).collect();
        let pinned = decide(&consumers, &first_seqs, &plan, remove, &self.opts.consumer_limit, now);
        self.stats.pinned_segments = remove - pinned.remove;
        pinned
    }

    /// Logs and counts every consumer of `loose` that needed one of the
    /// `removed` oldest segments just removed.
    pub(crate) fn report_cut_loose(&mut self, loose: &[Loose], removed: usize) {
        let earliest = self.first_seq();
        for c in loose.iter().filter(|c| c.first_needed < removed) {
            tracing::warn!(consumer = c.name, checkpoint = c.checkpoint, earliest, "consumer cut loose by retention");
            self.stats.consumers_cut_loose += 1;
        }
    }
}

/// The consumers of this epoch, each with the lowest and the highest seq
/// its file may hold ([`Seqs`]); damaged checkpoints are logged and left
/// out (they pin nothing). `None` when the `consumers` directory or a
/// checkpoint could not be read this time (an I/O error): the caller then
/// keeps what the limit allows.
fn pinning(dir: &Path, epoch: u64) -> Option<Vec<(String, Seqs)>> {
    let listed = match read_consumers(dir) {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(error = %e, "retention could not list the consumers; this pass keeps what the consumer limit allows");
            return None;
        }
    };
    let mut found = Vec::with_capacity(listed.len());
    for (name, checkpoint) in listed {
        match checkpoint {
            Ok(held) => match held.seqs_in(epoch) {
                Some(seqs) => found.push((name, seqs)),
                None => tracing::debug!(
                    consumer = name,
                    epoch = held.newest.epoch,
                    "checkpoint of another epoch pins nothing"
                ),
            },
            // Deleted since the listing: it pins nothing.
            Err(JournalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(error @ JournalError::Io { .. }) => {
                tracing::warn!(consumer = name, %error, "retention could not read a consumer checkpoint; this pass keeps what the consumer limit allows");
                return None;
            }
            Err(error) => {
                tracing::warn!(consumer = name, %error, "unreadable consumer checkpoint pins nothing");
            }
        }
    }
    Some(found)
}

/// The lowest and the highest seq of this journal a consumer's checkpoint
/// file may hold after a power loss (one, once its newest commit is known
/// synced).
type Seqs = (u64, u64);

/// The pin, from the consumers' checkpoint files alone: each pins from the
/// lowest seq its file may go back to that has not expired, and nothing
/// when each has (it must reset whatever retention does now). `first_seqs`
/// and `plan` describe the segments oldest first, the active one last;
/// `remove` is what retention asked for.
fn decide(
    consumers: &[(String, Seqs)],
    first_seqs: &[u64],
    plan: &[(u64, u64)],
    mut remove: usize,
    limit: &Retention,
    now: u64,
) -> PinPlan {
    let Some(&earliest) = first_seqs.first() else { return PinPlan { remove, loose: Vec::new() } };
    let mut loose = Vec::new();
    let expired = |seq: u64| seq.saturating_add(1) < earliest;
    for (name, seqs) in consumers {
        let &(low, high) = seqs;
        if expired(high) {
            continue; // already expired: it must reset whatever retention does now
        }
        let from = if expired(low) { high } else { low };
        // The first segment holding a seq above it; a sealed segment ends
        // just before the next one's first seq, and the active segment
        // (never removed) is where a caught-up consumer waits.
        let first_needed = (0..first_seqs.len() - 1)
            .find(|&i| first_seqs[i + 1].saturating_sub(1) > from)
            .unwrap_or(first_seqs.len() - 1);
        if limit.plan(&plan[first_needed..], now) == 0 {
            remove = remove.min(first_needed);
        } else {
            loose.push(Loose { name: name.clone(), checkpoint: from, first_needed });
        }
    }
    PinPlan { remove, loose }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64) -> (String, Seqs) {
        (format!("c{seq}"), (seq, seq))
    }

    /// Segments starting at 1, 11, 21, ... (ten records each), the last one active.
    fn segs(n: u64) -> (Vec<u64>, Vec<(u64, u64)>) {
        ((0..n).map(|i| 1 + 10 * i).collect(), (0..n).map(|i| (100, i)).collect())
    }

    #[test]
    fn a_consumer_within_the_limit_keeps_what_it_needs_and_one_beyond_it_pins_nothing() {
        let (firsts, plan) = segs(6);
        let limit = Retention::segments(4);
        // Retention wants the 4 oldest gone (keep 2).
        let p = decide(&[at(25)], &firsts, &plan, 4, &limit, 0);
        assert_eq!((p.remove, p.loose.len()), (2, 0), "seq 25 lives in segment 2: keep 2..6 (4 segments)");
        let p = decide(&[at(20)], &firsts, &plan, 4, &limit, 0);
        assert_eq!((p.remove, p.loose.len()), (2, 0), "checkpoint 20 = end of segment 1: needs segment 2 on");
        let p = decide(&[at(19)], &firsts, &plan, 4, &limit, 0);
        assert_eq!(p.remove, 4, "needs segment 1 on: 5 segments exceed the limit");
        assert_eq!((p.loose[0].checkpoint, p.loose[0].first_needed), (19, 1));
        let p = decide(&[at(55)], &firsts, &plan, 4, &limit, 0);
        assert_eq!((p.remove, p.loose.len()), (4, 0), "caught up: needs only the active segment");
        let p = decide(&[at(0)], &firsts[1..], &plan[1..], 1, &Retention::unlimited(), 0);
        assert_eq!((p.remove, p.loose.len()), (1, 0), "already expired (earliest is 11): pins nothing");
        let p = decide(&[at(10)], &firsts[1..], &plan[1..], 1, &Retention::unlimited(), 0);
        assert_eq!(p.remove, 0, "checkpoint = earliest - 1 still needs the oldest segment");
        let p = decide(&[at(55), at(35), at(19)], &firsts, &plan, 4, &limit, 0);
        assert_eq!((p.remove, p.loose.len()), (3, 1), "the furthest-behind pinning consumer wins");
    }

    #[test]
    fn a_consumer_pins_from_the_lowest_seq_its_file_may_go_back_to_that_has_not_expired() {
        let (firsts, plan) = segs(6);
        let limit = Retention::segments(6);
        let held = |low, high| ("c".to_owned(), (low, high));
        // A commit of 45 in flight over 25 (or of 25 over 45): from 25's segment.
        let p = decide(&[held(25, 45)], &firsts, &plan, 4, &limit, 0);
        assert_eq!(p.remove, 2);
        // Over a checkpoint that expired (earliest is 11): from the other.
        let p = decide(&[held(3, 25)], &firsts[1..], &plan[1..], 3, &limit, 0);
        assert_eq!(p.remove, 1);
        // Both expired: it pins nothing.
        let p = decide(&[held(3, 9)], &firsts[1..], &plan[1..], 3, &limit, 0);
        assert_eq!(p.remove, 3);
    }
}
