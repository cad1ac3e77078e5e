//! [`JournalStats`]: the counters a [`Journal`](crate::Journal) keeps since it
//! was opened. The writer (`writer.rs`) and the consumer pin (`pin.rs`)
//! update them; `Journal::stats` adds the background threads' fsyncs.
//!
//! Invariant: counters only grow while a journal is open, except the
//! gauges `segments` and `pinned_segments`, which describe the present.

/// Counters of a [`Journal`](crate::Journal) since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalStats {
    /// Records appended.
    pub appended: u64,
    /// `append` / `append_batch` calls that wrote something.
    pub batches: u64,
    /// Frame bytes written (headers of new segments excluded).
    pub bytes_written: u64,
    /// `fdatasync` calls on segments, background ones included.
    pub fsyncs: u64,
    /// Segments currently in the directory.
    pub segments: usize,
    /// Segment rolls.
    pub rolls: u64,
    /// Segments removed by retention.
    pub pruned: u64,
    /// Retention steps that failed (a segment that could not be removed or
    /// renamed out, or the directory fsync after removals; also the sealer
    /// thread's unlink of a segment a roll or `prune_deferred` renamed out,
    /// and its fsyncs of the pruned summary and of the directory). Each is
    /// logged with the path; the segment stays and is tried again at the
    /// next roll or [`prune`](crate::Journal::prune) (a renamed one at the
    /// next retention pass, `prune` or open). Appends and rolls never fail
    /// for it.
    pub prune_errors: u64,
    /// Retention passes that removed segments a registered consumer still
    /// needed, because keeping them would have exceeded
    /// [`JournalOptions::consumer_limit`](crate::JournalOptions::consumer_limit):
    /// counted once per consumer per pass, and logged with its name.
    pub consumers_cut_loose: u64,
    /// Segments the last retention pass kept only because a registered
    /// consumer within the limit still needed them (0 when nothing is pinned).
    pub pinned_segments: usize,
    /// Watermark publications that failed (readers then lag behind the
    /// writer until the next one succeeds; no data is at risk).
    pub watermark_errors: u64,
}
