//! [`RecordRun`]: consecutive records of one segment, checked once by
//! [`Records::next_run`](crate::Records::next_run) and handed over as one
//! value, so that a reader can move a batch of records to another thread
//! (to decode them there, say) for one reference to the segment's map
//! instead of one per record.
//!
//! Invariant: every frame between a run's `start` and `end` was complete,
//! carried a matching CRC and the expected seq when the run was made, and a
//! map never changes under its readers (`mapping.rs`), so walking a run
//! again needs no check but the bounds Rust does anyway.

use std::fmt;
use std::sync::Arc;

use crate::format::{self, FRAME_HEADER_LEN};
use crate::mapping::Bytes;
use crate::records::RecordRef;

/// Up to a requested number of consecutive, checked records of one segment,
/// owned (`Send + Sync`, holding the segment's map alive like a
/// [`Record`](crate::Record)): see [`Records::next_run`](crate::Records::next_run).
#[derive(Clone)]
pub struct RecordRun {
    pub(crate) map: Arc<Bytes>,
    /// The offset of the first frame.
    pub(crate) start: usize,
    /// The offset after the last frame.
    pub(crate) end: usize,
    pub(crate) first_seq: u64,
    pub(crate) len: usize,
}

impl RecordRun {
    /// How many records the run holds (at least one).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: a run holds at least one record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The seq of the first record.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The seq of the last record.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.len as u64 - 1
    }

    /// The bytes its frames take in the segment (headers included).
    pub fn frame_bytes(&self) -> usize {
        self.end - self.start
    }

    /// The records, in seq order.
    pub fn iter(&self) -> RunIter<'_> {
        RunIter { map: &self.map, off: self.start, end: self.end, left: self.len }
    }

    /// Splits the run after its first `n` records: `self` keeps them, the
    /// rest is returned (`None` when there is no rest). The cut walks the
    /// first `n` frame headers.
    pub fn split_off(&mut self, n: usize) -> Option<RecordRun> {
        if n == 0 || n >= self.len {
            return None;
        }
        let mut off = self.start;
        for _ in 0..n {
            off += FRAME_HEADER_LEN + format::peek_len(&self.map, off);
        }
        let rest = RecordRun {
            map: Arc::clone(&self.map),
            start: off,
            end: self.end,
            first_seq: self.first_seq + n as u64,
            len: self.len - n,
        };
        self.end = off;
        self.len = n;
        Some(rest)
    }
}

impl fmt::Debug for RecordRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordRun")
            .field("first_seq", &self.first_seq)
            .field("len", &self.len)
            .field("bytes", &(self.end - self.start))
            .finish()
    }
}

impl<'a> IntoIterator for &'a RecordRun {
    type Item = RecordRef<'a>;
    type IntoIter = RunIter<'a>;

    fn into_iter(self) -> RunIter<'a> {
        self.iter()
    }
}

/// The records of a [`RecordRun`], borrowed.
#[derive(Debug)]
pub struct RunIter<'a> {
    map: &'a Arc<Bytes>,
    off: usize,
    end: usize,
    left: usize,
}

impl<'a> Iterator for RunIter<'a> {
    type Item = RecordRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<RecordRef<'a>> {
        if self.left == 0 || self.off >= self.end {
            return None;
        }
        let head = self.off;
        let start = head + FRAME_HEADER_LEN;
        let end = start + format::peek_len(self.map, head);
        self.off = end;
        self.left -= 1;
        Some(RecordRef::new(self.map, start, end, format::peek_seq(self.map, head), format::peek_ts(self.map, head)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for RunIter<'_> {}

impl std::iter::FusedIterator for RunIter<'_> {}
