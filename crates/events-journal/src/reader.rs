//! The reader: [`Reader`] serves `read_since(cursor)` over `memmap2` maps of
//! the segment files, independently of the writer (another thread or another
//! process), and [`Records`] iterates zero-copy [`Record`] views.
//!
//! Invariants: a record is yielded only if its frame is complete, its CRC
//! matches and its seq is the one expected, so a reader tailing the active
//! segment never sees a half-written frame; a bad frame in a sealed segment
//! is an error naming segment and offset, never a silent skip; each call
//! re-lists the directory and remaps the newest segment, so it sees every
//! record whose append returned before the call.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use memmap2::Mmap;

use crate::error::{JournalError, ReadError};
use crate::format::{self, FrameCheck, HEADER_LEN};
use crate::segment::{self, SegmentFile};

/// One record: its seq, timestamp and payload, borrowed from a shared map of
/// its segment (no copy). Owned, `Send + Sync`, cheap to clone; holding it
/// keeps the map (and so the segment's data) alive even if retention removes
/// the file.
#[derive(Clone)]
pub struct Record {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
    seq: u64,
    ts: u64,
}

impl Record {
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

/// A reader of a journal directory. Cheap to clone (clones share a cache of
/// segment maps); `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Reader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    cache: Mutex<HashMap<u64, Cached>>,
}

/// A map kept between calls. Sealed segments never change, so their map is
/// reused; the newest segment is remapped when its length changes. `hint` is
/// a known frame boundary (seq expected there, offset) that saves walking the
/// segment from its start on the next call.
#[derive(Debug)]
struct Cached {
    ino: u64,
    map: Option<Arc<Mmap>>,
    sealed: bool,
    hint: Option<(u64, usize)>,
}

/// One segment as seen by one `read_since` call.
#[derive(Debug)]
struct View {
    first_seq: u64,
    path: PathBuf,
    /// `None` for a segment without a complete header (being created or torn).
    map: Option<Arc<Mmap>>,
    last: bool,
}

/// Where a walk through a segment stopped.
enum Walk {
    /// The frame of the target seq starts here (or would, at the end).
    Found(usize),
    /// The segment ended cleanly; `expected` is the seq after its last record.
    End { off: usize, expected: u64 },
    /// A bad frame at `off` where `expected` was due.
    Damaged { off: usize, expected: u64, reason: String },
}

const RETRIES: usize = 8;

impl Reader {
    /// A reader of the journal in `dir`. Works whether or not a writer is
    /// running, in this process or another one; takes no lock.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if `dir` is not a readable directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Reader, JournalError> {
        let dir = dir.as_ref().to_path_buf();
        segment::list(&dir, true)?;
        Ok(Reader { inner: Arc::new(Inner { dir, cache: Mutex::new(HashMap::new()) }) })
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Every record with a seq above `cursor`, in order, as of this call
    /// (records appended later may or may not appear; call again to tail).
    ///
    /// The iterator yields `Err` for a damaged sealed segment (then ends) and
    /// one [`JournalError::Gap`] where a salvage recovery dropped records
    /// (then continues after the gap).
    ///
    /// # Errors
    ///
    /// [`ReadError::Expired`] if records after `cursor` were pruned;
    /// [`ReadError::Ahead`] if `cursor` is beyond the last record;
    /// [`ReadError::Journal`] if a segment cannot be listed, mapped or
    /// understood, or the segment holding `cursor` is damaged before it.
    pub fn read_since(&self, cursor: u64) -> Result<Records, ReadError> {
        let mut attempt = 0;
        loop {
            match self.try_read_since(cursor) {
                // A segment vanished between listing and mapping (retention):
                // list again; the answer may now be Expired.
                Err(Retry::Vanished(_)) if attempt + 1 < RETRIES => attempt += 1,
                Err(Retry::Vanished(e)) => return Err(ReadError::Journal(e)),
                Err(Retry::Fail(e)) => return Err(e),
                Ok(records) => return Ok(records),
            }
        }
    }

    fn try_read_since(&self, cursor: u64) -> Result<Records, Retry> {
        let segs = self.list()?;
        let Some(oldest) = segs.first() else {
            return if cursor == 0 { Ok(Records::empty()) } else { Err(ReadError::Ahead { latest: 0 }.into()) };
        };
        let want = cursor.saturating_add(1);
        if want < oldest.first_seq {
            return Err(ReadError::Expired { earliest: oldest.first_seq }.into());
        }
        let idx = segs.partition_point(|s| s.first_seq <= want) - 1;
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|k, _| segs.iter().any(|s| s.first_seq == *k));
        let last_idx = segs.len() - 1;
        let mut views = Vec::with_capacity(segs.len() - idx);
        let mut epoch = None;
        for (i, seg) in segs.iter().enumerate().skip(idx) {
            let view = map_segment(&mut cache, seg, i == last_idx)?;
            if view.map.is_none() && !view.last {
                let reason = "sealed segment is shorter than its header";
                return Err(JournalError::corrupt(&seg.path, 0, Some(seg.first_seq), reason).into());
            }
            if let Some(map) = &view.map {
                let h = segment::check_header(seg, map)?.ok_or_else(|| {
                    ReadError::Journal(JournalError::corrupt(&seg.path, 0, Some(seg.first_seq), "torn header"))
                })?;
                let expected = *epoch.get_or_insert(h.epoch);
                if h.epoch != expected {
                    return Err(JournalError::EpochMismatch { path: seg.path.clone(), expected, found: h.epoch }.into());
                }
            }
            views.push(view);
        }
        let first = &views[0];
        let entry = cache.get_mut(&first.first_seq);
        let walk = walk(first, entry.as_ref().and_then(|c| c.hint), want);
        let off = match walk {
            Walk::Found(off) => off,
            Walk::End { off, expected } | Walk::Damaged { off, expected, .. } if first.last => {
                if let Some(c) = entry {
                    c.hint = Some((expected, off));
                }
                return if expected == want {
                    Ok(Records::empty())
                } else {
                    Err(ReadError::Ahead { latest: expected - 1 }.into())
                };
            }
            // The sealed segment ends before `want`: the records after it
            // start later (a gap), which the iterator reports.
            Walk::End { off, .. } => off,
            Walk::Damaged { off, expected, reason } => {
                return Err(JournalError::corrupt(&first.path, off as u64, Some(expected), reason).into());
            }
        };
        if let Some(c) = entry {
            c.hint = Some((want, off));
        }
        Ok(Records { views, idx: 0, off, expected: want, done: false })
    }

    /// The earliest retained seq (1 for a journal with no segment).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the directory cannot be listed.
    pub fn first_seq(&self) -> Result<u64, JournalError> {
        Ok(segment::list(&self.inner.dir, false)?.segments.first().map_or(1, |s| s.first_seq))
    }

    /// The last seq in the journal (0 when it holds no record).
    ///
    /// # Errors
    ///
    /// [`JournalError`] if the newest segment cannot be mapped or understood.
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        let mut attempt = 0;
        loop {
            match self.try_last_seq() {
                Err(Retry::Vanished(_)) if attempt + 1 < RETRIES => attempt += 1,
                Err(Retry::Vanished(e)) => return Err(e),
                Err(Retry::Fail(ReadError::Journal(e))) => return Err(e),
                Err(Retry::Fail(e)) => return Err(JournalError::Failed { cause: e.to_string() }),
                Ok(seq) => return Ok(seq),
            }
        }
    }

    fn try_last_seq(&self) -> Result<u64, Retry> {
        let segs = self.list()?;
        let Some(newest) = segs.last() else { return Ok(0) };
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let view = map_segment(&mut cache, newest, true)?;
        if let Some(map) = &view.map {
            segment::check_header(newest, map)?;
        }
        let entry = cache.get_mut(&newest.first_seq);
        match walk(&view, entry.as_ref().and_then(|c| c.hint), u64::MAX) {
            Walk::End { off, expected } | Walk::Damaged { off, expected, .. } => {
                if let Some(c) = entry {
                    c.hint = Some((expected, off));
                }
                Ok(expected - 1)
            }
            Walk::Found(_) => unreachable!("no segment holds seq u64::MAX"),
        }
    }

    /// The journal's epoch, read from the newest segment with a complete header.
    ///
    /// # Errors
    ///
    /// [`JournalError::NoSegments`] if no segment has a complete header; a
    /// header error naming the file if the newest header is damaged.
    pub fn epoch(&self) -> Result<u64, JournalError> {
        let segs = segment::list(&self.inner.dir, false)?.segments;
        for seg in segs.iter().rev() {
            match segment::read_header(seg) {
                Ok(segment::HeaderState::Valid(h)) => return Ok(h.epoch),
                Ok(segment::HeaderState::Torn) => {}
                Err(JournalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Err(JournalError::NoSegments { dir: self.inner.dir.clone() })
    }

    fn list(&self) -> Result<Vec<SegmentFile>, Retry> {
        Ok(segment::list(&self.inner.dir, false)?.segments)
    }
}

/// Why one attempt failed: a segment vanished under it (try again), or a real error.
enum Retry {
    Vanished(JournalError),
    Fail(ReadError),
}

impl From<ReadError> for Retry {
    fn from(e: ReadError) -> Self {
        Retry::Fail(e)
    }
}

impl From<JournalError> for Retry {
    fn from(e: JournalError) -> Self {
        Retry::Fail(ReadError::Journal(e))
    }
}

/// Maps `seg`, reusing the cached map when it is still good.
fn map_segment(cache: &mut HashMap<u64, Cached>, seg: &SegmentFile, last: bool) -> Result<View, Retry> {
    if let Some(c) = cache.get(&seg.first_seq)
        && c.ino == seg.ino
        && c.sealed
    {
        return Ok(View { first_seq: seg.first_seq, path: seg.path.clone(), map: c.map.clone(), last });
    }
    let file = match File::open(&seg.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Retry::Vanished(JournalError::io("open segment", &seg.path, e)));
        }
        Err(e) => return Err(JournalError::io("open segment", &seg.path, e).into()),
    };
    let len = file.metadata().map_err(|e| JournalError::io("stat segment", &seg.path, e))?.len();
    let reusable = cache.get(&seg.first_seq).filter(|c| c.ino == seg.ino);
    let map = match reusable {
        Some(c) if c.map.as_ref().map_or(0, |m| m.len() as u64) == len && len >= HEADER_LEN as u64 => c.map.clone(),
        _ if len < HEADER_LEN as u64 => None,
        _ => {
            // SAFETY: segment bytes below the file length are never rewritten
            // by a writer (it only appends, and cuts a torn tail at open), and
            // the map covers only the length observed just before mapping.
            let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(&file) }
                .map_err(|e| JournalError::io("mmap segment", &seg.path, e))?;
            Some(Arc::new(map))
        }
    };
    let hint = reusable.and_then(|c| c.hint).filter(|&(_, off)| map.as_ref().is_some_and(|m| off <= m.len()));
    cache.insert(seg.first_seq, Cached { ino: seg.ino, map: map.clone(), sealed: !last, hint });
    Ok(View { first_seq: seg.first_seq, path: seg.path.clone(), map, last })
}

/// Walks `view` to the frame of seq `target`, starting from `hint` when it
/// still checks out, verifying every frame passed.
fn walk(view: &View, hint: Option<(u64, usize)>, target: u64) -> Walk {
    let Some(map) = &view.map else { return Walk::End { off: 0, expected: view.first_seq } };
    let buf: &[u8] = map;
    let (mut expected, mut off) = (view.first_seq, HEADER_LEN);
    if let Some((hseq, hoff)) = hint
        && hseq <= target
        && hoff <= buf.len()
        && (hoff == buf.len() || matches!(format::check_frame(buf, hoff), FrameCheck::Valid { seq, .. } if seq == hseq))
    {
        (expected, off) = (hseq, hoff);
    }
    while expected < target {
        match format::check_frame(buf, off) {
            FrameCheck::Valid { seq, payload, .. } if seq == expected => {
                off = payload.end;
                expected += 1;
            }
            FrameCheck::Incomplete if off == buf.len() => return Walk::End { off, expected },
            FrameCheck::Valid { seq, .. } => {
                return Walk::Damaged { off, expected, reason: format!("seq {seq} where {expected} was expected") };
            }
            FrameCheck::Incomplete => {
                return Walk::Damaged { off, expected, reason: "frame runs past the end of the file".into() };
            }
            FrameCheck::BadCrc => return Walk::Damaged { off, expected, reason: "frame checksum mismatch".into() },
        }
    }
    Walk::Found(off)
}

/// The records of one [`Reader::read_since`] call, in seq order.
#[derive(Debug)]
pub struct Records {
    views: Vec<View>,
    idx: usize,
    off: usize,
    expected: u64,
    done: bool,
}

impl Records {
    fn empty() -> Self {
        Records { views: Vec::new(), idx: 0, off: 0, expected: 0, done: true }
    }

    /// The seq the next record will carry (the one after the last yielded).
    pub fn next_seq(&self) -> u64 {
        self.expected
    }

    fn fail(&mut self, err: JournalError) -> Option<Result<Record, JournalError>> {
        self.done = true;
        Some(Err(err))
    }
}

impl Iterator for Records {
    type Item = Result<Record, JournalError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
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
                        return Some(Ok(Record {
                            map: Arc::clone(map),
                            start: payload.start,
                            end: payload.end,
                            seq,
                            ts,
                        }));
                    }
                    FrameCheck::Incomplete if self.off == map.len() => {}
                    // The newest segment ends at the first frame that is not
                    // complete and valid: the writer's next write, or a torn
                    // tail the next open will cut.
                    FrameCheck::Incomplete | FrameCheck::BadCrc if view.last => {
                        self.done = true;
                        return None;
                    }
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
                let reason = format!(
                    "segment starts at seq {} but the previous one ends at {}",
                    next.first_seq,
                    self.expected - 1
                );
                let err = JournalError::corrupt(&next.path, 24, Some(next.first_seq), reason);
                return self.fail(err);
            }
        }
    }
}

impl std::iter::FusedIterator for Records {}
