//! The `Vec` model the journal's model-based tests run against: the write
//! operations (`Action`), the acknowledged records, and the predicted segment
//! layout under the small segments and retention those tests open with.
//! Its users are `model_proptest.rs` (every action, plus reads) and
//! `reliability_fault_model.rs` (the same actions with faults injected);
//! each keeps its own operation weights and payloads.
//!
//! Invariant: the model predicts rolls and pruning with the journal's own
//! byte accounting (64-byte header, 24-byte frame header), so a test can
//! compare segment counts, not just records.

use std::path::Path;

use events_journal::{JournalOptions, Retention};

/// Segment size the model tests open with.
pub(crate) const SEGMENT_BYTES: u64 = 1024;
/// Segments kept by retention.
pub(crate) const KEEP: usize = 3;
/// Bytes of a segment header.
pub(crate) const HEADER: u64 = 64;
/// Bytes a frame adds besides its payload.
pub(crate) const FRAME_HEADER: u64 = 24;

/// One write-side operation on the journal.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    /// `append` of a payload of this many bytes.
    Append(u16),
    /// `append_batch` of payloads of these sizes.
    Batch(Vec<u16>),
    Sync,
    Roll,
    Prune,
    /// `close`, then `open` again.
    Reopen,
}

/// The options both model tests share; each adds its sync policy (and faults).
pub(crate) fn options() -> JournalOptions {
    JournalOptions::new().segment_bytes(SEGMENT_BYTES).retention(Retention::segments(KEEP))
}

/// Acknowledged records (seq `i + 1` at index `i`) and the predicted segments
/// as `(first seq, bytes)`.
pub(crate) struct Model {
    pub(crate) records: Vec<Vec<u8>>,
    pub(crate) segments: Vec<(u64, u64)>,
}

impl Model {
    /// A fresh journal: no record, one empty segment starting at seq 1.
    pub(crate) fn new() -> Model {
        Model { records: Vec::new(), segments: vec![(1, HEADER)] }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.records.len() as u64 + 1
    }

    pub(crate) fn first_seq(&self) -> u64 {
        self.segments[0].0
    }

    /// A roll seals the active segment unless it is still empty.
    pub(crate) fn roll(&mut self) {
        if self.segments.last().unwrap().1 > HEADER {
            self.segments.push((self.next_seq(), HEADER));
            self.prune();
        }
    }

    pub(crate) fn prune(&mut self) {
        while self.segments.len() > KEEP {
            self.segments.remove(0);
        }
    }

    /// An acknowledged append or batch; rolls first when the batch would not fit.
    pub(crate) fn write(&mut self, payloads: &[Vec<u8>]) {
        if payloads.is_empty() {
            return;
        }
        let bytes: u64 = payloads.iter().map(|p| FRAME_HEADER + p.len() as u64).sum();
        let active = self.segments.last().unwrap().1;
        if active > HEADER && active + bytes > SEGMENT_BYTES {
            self.roll();
        }
        self.segments.last_mut().unwrap().1 += bytes;
        self.records.extend(payloads.iter().cloned());
    }

    /// After a crash the segment layout is whatever recovery left: read it back.
    pub(crate) fn resync_segments(&mut self, dir: &Path) {
        let mut segs: Vec<(u64, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let seq = name.strip_suffix(".seg")?.parse().ok()?;
                Some((seq, e.metadata().unwrap().len()))
            })
            .collect();
        segs.sort_unstable();
        self.segments = segs;
    }
}
