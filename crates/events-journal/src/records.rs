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
/// ([`Records::next_ref`]): what a [`Record`] holds, valid until the
/// next call on the iterator. [`to_record`](Self::to_record) keeps one.
#[derive(Clone, Copy)]
pub struct RecordRef<'a> {
    map: &'a Arc<Bytes>,
    /// `map[start..end]`, sliced once.
    payload: &'a [u8],
    start: usize,
    seq: u64,
    ts: u64,
}

impl<'a> RecordRef<'a> {
    #[inline]
    pub(crate) fn new(map: &'a Arc<Bytes>, start: usize, end: usize, seq: u64, ts: u64) -> Self {
        RecordRef { map, payload: &map[start..end], start, seq, ts }
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
        self.payload
    }

    /// An owned [`Record`] of the same bytes (shares the segment's map, no copy).
    #[inline]
    pub fn to_record(&self) -> Record {
        let end = self.start + self.payload.len();
        Record { map: Arc::clone(self.map), start: self.start, end, seq: self.seq, ts: self.ts }
    }
}

impl fmt::Debug for RecordRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordRef")
            .field("seq", &self.seq)
            .field("ts", &self.ts)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// The records of one [`Reader::read_since`](crate::Reader::read_since) call, in seq order.
#[derive(Debug)]
pub struct Records {
    pub(crate) views: Vec<View>,
    pub(crate) at: Position,
    pub(crate) epoch: Option<u64>,
    /// The payload codec tag in the same headers (as `epoch`).
    pub(crate) codec_tag: Option<u32>,
}

/// Where a [`Records`] walk is, apart from the views it walks: the walk
/// borrows the views and moves the position, so a record can borrow its
/// map on every path out of [`Records::next_ref`].
#[derive(Debug)]
pub(crate) struct Position {
    /// The view the walk is in.
    pub(crate) idx: usize,
    /// The offset of the next frame in that view.
    pub(crate) off: usize,
    /// The seq the next record must carry.
    pub(crate) expected: u64,
    pub(crate) done: bool,
}

/// A record found by a walk.
struct Found<'v> {
    /// Its segment's bytes.
    map: &'v Arc<Bytes>,
    /// Where its payload lies in them.
    start: usize,
    end: usize,
    seq: u64,
    ts: u64,
}

impl Records {
    /// No record, for a reader whose next record would be `next_seq` (its
    /// cursor's next).
    pub(crate) fn empty(next_seq: u64) -> Self {
        Records {
            views: Vec::new(),
            at: Position { idx: 0, off: 0, expected: next_seq, done: true },
            epoch: None,
            codec_tag: None,
        }
    }

    /// The epoch in the headers of the segments this iterator reads (`None`
    /// when it reads none). A follower that knows which journal its cursor
    /// belongs to compares it before using a record: a directory recreated
    /// under it has another epoch, and its seqs mean other records.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Checks the payload codec tag in the headers of the segments this
    /// iterator reads against `expected`: a directory recreated under a
    /// reader may hold a journal of another codec, whose payloads it must
    /// not decode. Tag 0 (a journal that names no codec) and an iterator
    /// that reads no segment pass.
    ///
    /// # Errors
    ///
    /// [`JournalError::CodecTagMismatch`] naming the first segment read.
    pub fn check_codec_tag(&self, expected: u32) -> Result<(), JournalError> {
        match (self.codec_tag, self.views.first()) {
            (Some(found), Some(view)) if found != 0 && found != expected => {
                Err(JournalError::CodecTagMismatch { path: view.path.clone(), expected, found })
            }
            _ => Ok(()),
        }
    }

    /// The seq the next record will carry (the one after the last yielded).
    pub fn next_seq(&self) -> u64 {
        self.at.expected
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
        let found = next_found(&self.views, &mut self.at)?;
        Some(found.map(|f| RecordRef::new(f.map, f.start, f.end, f.seq, f.ts)))
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
        self.next_run_within(max, usize::MAX)
    }

    /// [`next_run`](Self::next_run) that also ends once its frames take
    /// `max_bytes` or more (the record that reaches it is the run's last):
    /// a reader that decodes the run holds its events' sizes, not just
    /// their count, within a bound.
    ///
    /// # Errors
    ///
    /// The iterator's, when the first record of the run would be one.
    pub fn next_run_within(&mut self, max: usize, max_bytes: usize) -> Option<Result<RecordRun, JournalError>> {
        let first = match next_found(&self.views, &mut self.at)? {
            Ok(found) => found,
            Err(e) => return Some(Err(e)),
        };
        let (map, start, first_seq) = (Arc::clone(first.map), first.start - format::FRAME_HEADER_LEN, first.seq);
        let mut len = 1;
        while len < max.max(1) && self.at.off - start < max_bytes && next_in_view(&self.views, &mut self.at).is_some() {
            len += 1;
        }
        Some(Ok(RecordRun { map, start, end: self.at.off, first_seq, len }))
    }
}

/// The next record of the walk, or what ends or interrupts it.
#[inline(always)]
fn next_found<'v>(views: &'v [View], at: &mut Position) -> Option<Result<Found<'v>, JournalError>> {
    match next_in_view(views, at) {
        Some(found) => Some(Ok(found)),
        None => advance(views, at),
    }
}

/// The common case, kept small enough to inline into the caller's loop:
/// the next frame of the current view is valid and carries the expected
/// seq. Anything else (a view's end, a gap, damage) is left to
/// [`advance`], which looks at the same frame again.
#[inline(always)]
fn next_in_view<'v>(views: &'v [View], at: &mut Position) -> Option<Found<'v>> {
    if at.done {
        return None;
    }
    let map = views.get(at.idx)?.map.as_ref()?;
    match format::check_frame(map, at.off) {
        FrameCheck::Valid { seq, ts, payload } if seq == at.expected => {
            at.off = payload.end;
            at.expected += 1;
            Some(Found { map, start: payload.start, end: payload.end, seq, ts })
        }
        _ => None,
    }
}

/// Moves to the next valid frame of `views`, from the frame at `at` on.
#[cold]
#[inline(never)]
fn advance<'v>(views: &'v [View], at: &mut Position) -> Option<Result<Found<'v>, JournalError>> {
    let fail = |at: &mut Position, err| {
        at.done = true;
        Some(Err(err))
    };
    loop {
        if at.done {
            return None;
        }
        let view = &views[at.idx];
        if let Some(map) = &view.map {
            match format::check_frame(map, at.off) {
                FrameCheck::Valid { seq, ts, payload } if seq == at.expected => {
                    at.off = payload.end;
                    at.expected += 1;
                    return Some(Ok(Found { map, start: payload.start, end: payload.end, seq, ts }));
                }
                FrameCheck::Incomplete if at.off == map.len() => {}
                // The newest segment ends at the first frame that is not
                // complete and valid: the writer's next write, or a torn
                // tail the next open will cut (never inside what a live
                // writer acknowledged: that is damage, reported below).
                FrameCheck::Incomplete | FrameCheck::BadCrc
                    if view.last && !view.acked && view.ends_unacked_at(at.off, at.expected) =>
                {
                    at.done = true;
                    return None;
                }
                // A sealed segment ends early where recovery will cut it.
                _ if !view.last && ends_sealed(view, at.off, at.expected, &views[at.idx + 1..]) => {}
                FrameCheck::Valid { seq, .. } => {
                    let reason = format!("seq {seq} where {} was expected", at.expected);
                    let err = JournalError::corrupt(&view.path, at.off as u64, Some(at.expected), reason);
                    return fail(at, err);
                }
                FrameCheck::Incomplete | FrameCheck::BadCrc => {
                    let bad_crc = matches!(format::check_frame(map, at.off), FrameCheck::BadCrc);
                    let reason = match (bad_crc, view.acked, view.last) {
                        (true, false, false) => "frame checksum mismatch in a sealed segment",
                        (false, false, false) => "frame runs past the end of a sealed segment",
                        (true, true, _) => "frame checksum mismatch in acknowledged records of the newest segment",
                        (false, true, _) => "frame runs past the acknowledged end of the newest segment",
                        (true, false, true) => "frame checksum mismatch in the newest segment, and valid frames follow",
                        (false, false, true) => {
                            "frame runs past the end of the newest segment, and valid frames follow"
                        }
                    };
                    let err = JournalError::corrupt(&view.path, at.off as u64, Some(at.expected), reason);
                    return fail(at, err);
                }
            }
        }
        if view.last {
            at.done = true;
            return None;
        }
        at.idx += 1;
        at.off = HEADER_LEN;
        let next = &views[at.idx];
        if next.first_seq > at.expected {
            let err = JournalError::Gap { path: next.path.clone(), expected: at.expected, found: next.first_seq };
            at.expected = next.first_seq;
            return Some(Err(err));
        }
        if next.first_seq < at.expected {
            let err = JournalError::Overlap {
                path: views[at.idx - 1].path.clone(),
                last_seq: at.expected - 1,
                next: next.path.clone(),
                next_first: next.first_seq,
            };
            return fail(at, err);
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
