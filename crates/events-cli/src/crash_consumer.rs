//! The durable consumer of the demo's crash test, `indexer`. In the crash
//! child (`__crash-writer --consumer indexer`, run by its neighbour
//! `crash.rs`) it reads the feed from its checkpoint alongside the
//! appenders, printing `consumed <seq>` *before* committing each seq, and
//! dies with them in the SIGKILL; in the parent, after recovery, it is
//! opened again and must resume from its persisted checkpoint and read on to
//! the end of the recovered feed. `crash.rs` carries the [`ConsumerOutcome`]
//! into the demo's summary, and `demo/verification.rs` turns it into the
//! invariant line.
//!
//! Invariant: the verdict rests on what the child printed and what the
//! resumed stream delivered, never on the consumer's own bookkeeping: the
//! child's seqs are contiguous from where it started, the checkpoint is at or
//! below the last seq the child printed (a checkpoint never runs ahead of
//! the processing), the resumed stream starts right after the checkpoint and
//! is contiguous to the end, and what is delivered twice (last printed minus
//! checkpoint) is at most [`ConsumerOptions::every`].

use std::time::Duration;

use events::{ConsumerOptions, Feed, FeedItem, Seq};
use futures::StreamExt;
use serde::Serialize;

use crate::Failure;
use crate::model::DemoEvent;

/// The consumer's name in the demo.
pub(crate) const NAME: &str = "indexer";

/// How the indexer persists its commits, in the child and in the parent: the
/// library's default, spelled out because the redelivery bound is checked
/// against `every`.
pub(crate) const OPTIONS: ConsumerOptions = ConsumerOptions { every: 128, interval: Duration::from_secs(1) };

/// How long the resumed indexer may wait for one event the recovered feed
/// already holds before the check gives up (a stall, counted as a gap).
const STALL: Duration = Duration::from_secs(30);

/// The child's side: consumes and commits until the process is killed. Each
/// `consumed <seq>` line leaves (stdout is line-buffered) before the commit
/// of that seq starts, so the parent knows every seq the checkpoint could
/// hold.
///
/// # Errors
///
/// Opening the consumer, reading the feed or persisting a commit.
pub(crate) async fn consume(feed: &Feed<DemoEvent>, name: &str) -> Result<(), events::Error> {
    let consumer = feed.reader().consumer_with(name, OPTIONS).await?;
    println!("consumer-from {}", consumer.committed());
    let mut stream = consumer.stream();
    while let Some(item) = stream.next().await {
        match item? {
            FeedItem::Event(env) => {
                println!("consumed {}", env.seq);
                consumer.commit(env.seq).await?;
            }
            // Nothing in the demo can cut the cursor loose; if something did,
            // the parent sees it as a gap in the `consumed` lines.
            FeedItem::Reset { .. } => println!("consumer-reset"),
            // Only under `OnUndecodable::Skip`, which the demo does not set.
            FeedItem::Undecodable { seq, .. } => println!("consumer-undecodable {seq}"),
            // Only a filtered stream yields checkpoints; a consumer's is not.
            FeedItem::Checkpoint { .. } => {}
            // Only a live-output stream (`stream_live`) carries ephemeral events.
            FeedItem::Ephemeral { .. } => {}
        }
    }
    Ok(())
}

/// What the parent read of the child's indexer before the kill.
#[derive(Debug, Default)]
pub(crate) struct Indexed {
    started_after: u64,
    last: u64,
    count: u64,
    gaps: u64,
    error: Option<String>,
}

impl Indexed {
    /// Takes one line of the child's output: `true` if it was the indexer's.
    pub(crate) fn observe(&mut self, line: &str) -> bool {
        if let Some(seq) = line.strip_prefix("consumed ") {
            match seq.trim().parse::<u64>() {
                Ok(seq) if seq == self.last + 1 => self.last = seq,
                Ok(seq) => {
                    self.gaps += 1;
                    self.last = self.last.max(seq);
                }
                Err(_) => self.gaps += 1,
            }
            self.count += 1;
        } else if let Some(from) = line.strip_prefix("consumer-from ") {
            match from.trim().parse::<u64>() {
                Ok(from) => (self.started_after, self.last) = (from, from),
                Err(_) => self.gaps += 1,
            }
        } else if line == "consumer-reset" {
            self.gaps += 1;
        } else if let Some(error) = line.strip_prefix("consumer-error ") {
            self.error = Some(error.to_owned());
        } else {
            return false;
        }
        true
    }

    /// Whether the indexer has processed at least `events` (or has failed,
    /// in which case waiting for it is pointless).
    pub(crate) fn has_processed(&self, events: u64) -> bool {
        self.count >= events || self.error.is_some()
    }
}

/// The durable consumer across the crash.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(Default))]
pub(crate) struct ConsumerOutcome {
    /// The consumer's name.
    pub(crate) name: &'static str,
    /// The seq the child's indexer started after (its checkpoint at open).
    pub(crate) started_after: u64,
    /// The last seq the child's indexer processed before it was killed.
    pub(crate) processed_before_crash: u64,
    /// Events the child's indexer processed.
    pub(crate) processed_in_child: u64,
    /// The persisted checkpoint the indexer resumed after.
    pub(crate) checkpoint: u64,
    /// Events processed before the crash and delivered again after it.
    pub(crate) redelivered: u64,
    /// The bound on `redelivered`: `ConsumerOptions::every`.
    pub(crate) redelivery_bound: u64,
    /// The first seq the resumed indexer got, if any was left.
    pub(crate) resumed_first: Option<u64>,
    /// The seq the resumed indexer read to: the end of the recovered feed.
    pub(crate) read_to: u64,
    /// Seqs missing, repeated or reset in the child's and the resumed reads.
    pub(crate) gaps: u64,
    /// The checkpoint on disk once the resumed indexer committed the end.
    pub(crate) final_checkpoint: u64,
    /// What the child's indexer failed with, if it did.
    pub(crate) error: Option<String>,
}

impl ConsumerOutcome {
    /// Whether the indexer resumed exactly after its checkpoint, within the
    /// redelivery bound, and read every event once more or for the first time.
    pub(crate) fn resumed(&self) -> bool {
        self.error.is_none()
            && self.gaps == 0
            && self.processed_in_child > 0
            && (self.started_after..=self.processed_before_crash).contains(&self.checkpoint)
            && self.processed_before_crash <= self.read_to
            && self.redelivered <= self.redelivery_bound
            && self.resumed_first.is_none_or(|first| first == self.checkpoint + 1)
            && self.final_checkpoint == self.read_to
    }
}

/// The parent's side, on the recovered feed: reopens the indexer, reads from
/// its persisted checkpoint to the end of the feed, commits the end once.
///
/// # Errors
///
/// Opening the consumer, reading the feed or persisting the final commit.
pub(crate) async fn resume(feed: &Feed<DemoEvent>, child: Indexed) -> Result<ConsumerOutcome, Failure> {
    let consumer = feed.reader().consumer_with(NAME, OPTIONS).await?;
    let checkpoint = consumer.persisted().get();
    let end = feed.latest_seq().get();
    let mut gaps = child.gaps;
    let mut resumed_first = None;
    let mut last = checkpoint;
    let mut stream = consumer.stream();
    while last < end {
        match tokio::time::timeout(STALL, stream.next()).await {
            Ok(Some(Ok(FeedItem::Event(env)))) => {
                let seq = env.seq.get();
                resumed_first.get_or_insert(seq);
                if seq != last + 1 {
                    gaps += 1;
                }
                last = seq;
            }
            Ok(Some(Err(e))) => return Err(e.into()),
            // Only a filtered stream yields checkpoints; a consumer's is not.
            Ok(Some(Ok(FeedItem::Checkpoint { .. }))) => {}
            // Only a live-output stream (`stream_live`) carries ephemeral events.
            Ok(Some(Ok(FeedItem::Ephemeral { .. }))) => {}
            Ok(Some(Ok(FeedItem::Reset { .. } | FeedItem::Undecodable { .. })) | None) | Err(_) => {
                gaps += 1;
                break;
            }
        }
    }
    drop(stream);
    // One commit at the end, not one per event: the check needs the final
    // checkpoint, not a persist per 128 events of the whole demo journal.
    consumer.commit(Seq::new(last)).await?;
    consumer.flush().await?;
    Ok(ConsumerOutcome {
        name: NAME,
        started_after: child.started_after,
        processed_before_crash: child.last,
        processed_in_child: child.count,
        checkpoint,
        redelivered: child.last.saturating_sub(checkpoint),
        redelivery_bound: OPTIONS.every,
        resumed_first,
        read_to: last,
        gaps,
        final_checkpoint: consumer.persisted().get(),
        error: child.error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(lines: &[&str]) -> Indexed {
        let mut indexed = Indexed::default();
        for line in lines {
            assert!(indexed.observe(line), "{line}");
        }
        assert!(!indexed.observe("ack 9 0 0"), "an appender's line is not the indexer's");
        indexed
    }

    /// The child processed 1..=5 with its checkpoint at `checkpoint`; the
    /// resumed read delivered `checkpoint + 1..` up to 9.
    fn outcome(indexed: Indexed, checkpoint: u64, resumed_first: Option<u64>) -> ConsumerOutcome {
        ConsumerOutcome {
            name: NAME,
            started_after: indexed.started_after,
            processed_before_crash: indexed.last,
            processed_in_child: indexed.count,
            checkpoint,
            redelivered: indexed.last.saturating_sub(checkpoint),
            redelivery_bound: 3,
            resumed_first,
            read_to: 9,
            gaps: indexed.gaps,
            final_checkpoint: 9,
            error: indexed.error,
        }
    }

    const CONTIGUOUS: &[&str] =
        &["consumer-from 0", "consumed 1", "consumed 2", "consumed 3", "consumed 4", "consumed 5"];

    #[test]
    fn a_resume_right_after_the_checkpoint_within_the_bound_passes() {
        assert!(outcome(child(CONTIGUOUS), 2, Some(3)).resumed());
        assert!(outcome(child(CONTIGUOUS), 5, Some(6)).resumed());
    }

    #[test]
    fn gaps_overruns_and_misplaced_checkpoints_fail() {
        let gap = child(&["consumer-from 0", "consumed 1", "consumed 3"]);
        assert_eq!(gap.gaps, 1);
        assert!(!outcome(gap, 1, Some(2)).resumed(), "a gap in the child's seqs");
        assert!(!outcome(child(CONTIGUOUS), 1, Some(2)).resumed(), "4 redelivered > bound 3");
        assert!(!outcome(child(CONTIGUOUS), 6, Some(7)).resumed(), "a checkpoint past what was processed");
        assert!(!outcome(child(CONTIGUOUS), 2, Some(4)).resumed(), "the resumed stream skipped seq 3");
        assert!(!outcome(child(&["consumer-from 0"]), 0, Some(1)).resumed(), "the child processed nothing");
        let failed = child(&["consumer-from 0", "consumed 1", "consumer-error disk on fire"]);
        assert!(failed.has_processed(u64::MAX), "a failed indexer is not waited for");
        assert!(!outcome(failed, 1, Some(2)).resumed());
    }
}
