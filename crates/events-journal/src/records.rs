//! The records of one read: [`Records`] iterates the segment views that
//! `reader.rs` prepared (mapped by `mapping.rs`) and yields zero-copy
//! [`Record`]s, each holding a shared reference to its segment's bytes, or,
//! through [`Records::next_ref`], [`RecordRef`]s that borrow them (no
//! reference count touched per record: the walk costs what checking each
//! frame's CRC costs).
//!
//! Invariant: a record is yielded only if its frame is complete, its CRC
//! matches and its seq is the one expected; a bad frame in a sealed segment
//! is an error naming segment and offset (unless it ends the segment where
//! recovery will cut it); missing seqs between segments are one explicit
//! gap, seqs held by two segments an overlap error.

use std::fmt;
use std::sync::Arc;

use crate::error::JournalError;
use crate::format::{self, FrameCheck, HEADER_LEN};
use crate::mapping::{Bytes, View, ends_sealed};
use crate::run::RecordRun;

/// One record: its seq, timestamp and payload, borrowed from a shared map of
/// its segment (no copy). Owned, `Send + Sync`, cheap to clone; holding it
/// keeps the map (and so the segment's data) alive even if retention removes
/// the file.
#[derive(Clone)]
pub struct Record {
    map: Arc<Bytes>,
    start: usize,
    end: usize,
    seq: u64,
    ts: u64,
}

impl Record {
    /// The record whose valid frame lies at `offset` of `map` with `seq`, or
    /// `None` when no such frame is there.
    pub(crate) fn at(map: &Arc<Bytes>, offset: usize, seq: u64) -> Option<Record> {
        match format::check_frame(map, offset) {
            FrameCheck::Valid { seq: found, ts, payload } if found == seq => {
                Some(Record { map: Arc::clone(map), start: payload.start, end: payload.end, seq, ts })
            }
            _ => None,
        }
    }

    /// The record's seq.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The record's timestamp (unix nanoseconds, as given to `append`).
    pub fn ts(&self) -> u64 {
        self.ts
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("seq", &self.seq)
            .field("ts", &self.ts)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

/// One record borrowed from the iterator that yielded it
/// ([`Records::next_ref`]): the same fields as a [`Record`], valid until the
/// next call on the iterator. [`to_record`](Self::to_record) keeps one.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    map: &'a Arc<Bytes>,
    start: usize,
    end: usize,
    seq: u64,
    ts: u64,
}

impl<'a> RecordRef<'a> {
    #[inline]
    pub(crate) fn new(map: &'a Arc<Bytes>, start: usize, end: usize, seq: u64, ts: u64) -> Self {
        RecordRef { map, start, end, seq, ts }
    }

    /// The record's seq.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The record's timestamp (unix nanoseconds, as given to `append`).
    #[inline]
    pub fn ts(&self) -> u64 {
        self.ts
    }

    /// The payload bytes.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.map[self.start..self.end]
    }

    /// An owned [`Record`] of the same bytes (shares the segment's map, no copy).
    #[inline]
    pub fn to_record(&self) -> Record {
        Record { map: Arc::clone(self.map), start: self.start, end: self.end, seq: self.seq, ts: self.ts }
    }
}

impl fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordRef")
            .field("seq", &self.seq)
            .field("ts", &self.ts)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

/// The records of one [`Reader::read_since`](crate::Reader::read_since) call, in seq order.
#[derive(Debug)]
pub struct Records {
    pub(crate) views: Vec<View>,
    pub(crate) idx: usize,
    pub(crate) off: usize,
    pub(crate) expected: u64,
    pub(crate) done: bool,
    pub(crate) epoch: Option<u64>,
}

impl Records {
    pub(crate) fn empty() -> Self {
        Records { views: Vec::new(), idx: 0, off: 0, expected: 0, done: true, epoch: None }
    }

    /// The epoch in the headers of the segments this iterator reads (`None`
    /// when it reads none). A follower that knows which journal its cursor
    /// belongs to compares it before using a record: a directory recreated
    /// under it has another epoch, and its seqs mean other records.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The seq the next record will carry (the one after the last yielded).
    pub fn next_seq(&self) -> u64 {
        self.expected
    }

    fn fail<T>(&mut self, err: JournalError) -> Option<Result<T, JournalError>> {
        self.done = true;
        Some(Err(err))
    }
}

impl Records {
    /// The next record, borrowed: what [`Iterator::next`] yields, without
    /// taking a reference to the segment's map for it. The fastest way to
    /// walk a journal when each payload is used (decoded, copied, hashed)
    /// before the next one is read:
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (mut journal, _) = events_journal::Journal::open(dir.path(), Default::default()).unwrap();
    /// # journal.append_batch([(1, b"a"), (2, b"b")]).unwrap();
    /// let reader = events_journal::Reader::open(dir.path()).unwrap();
    /// let mut records = reader.read_since(0).unwrap();
    /// let mut bytes = 0;
    /// while let Some(record) = records.next_ref() {
    ///     bytes += record.unwrap().payload().len();
    /// }
    /// assert_eq!(bytes, 2);
    /// ```
    ///
    /// # Errors
    ///
    /// The same as the iterator's: a gap (then the walk goes on after it),
    /// a corrupt sealed segment or an overlap (then it ends).
    #[inline]
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>, JournalError>> {
        // Found first, borrowed after: the borrow checker cannot see that the
        // loop's later iterations do not hold the first one's borrow.
        let found = match self.next_in_view() {
            Some(found) => Ok(found),
            None => self.advance()?,
        };
        match found {
            Ok((start, end, seq, ts)) => {
                let map = self.views[self.idx].map.as_ref().expect("a record comes from a mapped view");
                Some(Ok(RecordRef { map, start, end, seq, ts }))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Up to `max` (at least one) consecutive records of the segment the
    /// walk is in, checked like the iterator's, as one owned
    /// [`RecordRun`]: a batch to decode elsewhere for one reference to the
    /// segment's map. A run ends at `max`, at the end of a segment, or
    /// before anything the iterator would report (the next call reports
    /// it).
    ///
    /// # Errors
    ///
    /// The iterator's, when the first record of the run would be one.
    pub fn next_run(&mut self, max: usize) -> Option<Result<RecordRun, JournalError>> {
        let first = match self.next_in_view() {
            Some(found) => found,
            None => match self.advance()? {
                Ok(found) => found,
                Err(e) => return Some(Err(e)),
            },
        };
        let (start, first_seq) = (first.0 - format::FRAME_HEADER_LEN, first.2);
        let mut len = 1;
        while len < max.max(1) && self.next_in_view().is_some() {
            len += 1;
        }
        let map = Arc::clone(self.views[self.idx].map.as_ref().expect("a record comes from a mapped view"));
        Some(Ok(RecordRun { map, start, end: self.off, first_seq, len }))
    }

    /// The common case, kept small enough to inline into the caller's
    /// loop: the next frame of the current view is valid and carries the
    /// expected seq. Anything else (a view's end, a gap, damage) is left
    /// to [`advance`](Self::advance), which looks at the same frame again.
    #[inline(always)]
    fn next_in_view(&mut self) -> Option<(usize, usize, u64, u64)> {
        if self.done {
            return None;
        }
        let map = self.views.get(self.idx)?.map.as_deref()?;
        match format::check_frame(map, self.off) {
            FrameCheck::Valid { seq, ts, payload } if seq == self.expected => {
                self.off = payload.end;
                self.expected += 1;
                Some((payload.start, payload.end, seq, ts))
            }
            _ => None,
        }
    }

    /// Moves to the next valid frame: its payload range, seq and timestamp
    /// in the current view.
    #[cold]
    #[inline(never)]
    fn advance(&mut self) -> Option<Result<(usize, usize, u64, u64), JournalError>> {
        loop {
            if self.done {
                return None;
            }
            let view = &self.views[self.idx];
            if let Some(map) = &view.map {
                match format::check_frame(map, self.off) {
                    FrameCheck::Valid { seq, ts, payload } if seq == self.expected => {
                        self.off = payload.end;
                        self.expected += 1;
                        return Some(Ok((payload.start, payload.end, seq, ts)));
                    }
                    FrameCheck::Incomplete if self.off == map.len() => {}
                    // The newest segment ends at the first frame that is not
                    // complete and valid: the writer's next write, or a torn
                    // tail the next open will cut.
                    FrameCheck::Incomplete | FrameCheck::BadCrc if view.last => {
                        self.done = true;
                        return None;
                    }
                    // A sealed segment ends early where recovery will cut it.
                    _ if !view.last
                        && ends_sealed(view, self.off, self.expected, self.views[self.idx + 1].first_seq) => {}
                    FrameCheck::Valid { seq, .. } => {
                        let reason = format!("seq {seq} where {} was expected", self.expected);
                        let err = JournalError::corrupt(&view.path, self.off as u64, Some(self.expected), reason);
                        return self.fail(err);
                    }
                    FrameCheck::Incomplete | FrameCheck::BadCrc => {
                        let reason = if matches!(format::check_frame(map, self.off), FrameCheck::BadCrc) {
                            "frame checksum mismatch in a sealed segment"
                        } else {
                            "frame runs past the end of a sealed segment"
                        };
                        let err = JournalError::corrupt(&view.path, self.off as u64, Some(self.expected), reason);
                        return self.fail(err);
                    }
                }
            }
            if view.last {
                self.done = true;
                return None;
            }
            self.idx += 1;
            self.off = HEADER_LEN;
            let next = &self.views[self.idx];
            if next.first_seq > self.expected {
                let err = JournalError::Gap { path: next.path.clone(), expected: self.expected, found: next.first_seq };
                self.expected = next.first_seq;
                return Some(Err(err));
            }
            if next.first_seq < self.expected {
                let err = JournalError::Overlap {
                    path: self.views[self.idx - 1].path.clone(),
                    last_seq: self.expected - 1,
                    next: next.path.clone(),
                    next_first: next.first_seq,
                };
                return self.fail(err);
            }
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record, JournalError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_ref()?.map(|r| r.to_record()))
    }
}

impl std::iter::FusedIterator for Records {}
