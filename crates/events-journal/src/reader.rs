//! The reader: [`Reader`] serves `read_since(cursor)` over `memmap2` maps of
//! the segment files, independently of the writer (another thread or another
//! process): it decides how far each call may read (the [`Bound`] from the
//! watermark and the lock), lists the segments and hands their views to a
//! [`Records`] iterator (`records.rs`); mapping and walking one segment is
//! `mapping.rs`.
//!
//! Invariants: a record is yielded only if its frame is complete, its CRC
//! matches and its seq is the one expected, so a reader tailing the active
//! segment never sees a half-written frame; while a writer runs, nothing past
//! the durable watermark it publishes (`watermark.rs`) is yielded or even
//! mapped, so a record whose fsync has not returned never leaves the journal
//! and a writer cutting back a failed batch can never fault a reader; with no
//! writer running, every record recovery would keep is yielded, the newest
//! segment from a private copy; a bad frame in a sealed segment is an error
//! naming segment and offset, never a silent skip (a torn tail of a sealed
//! segment, or frames after damage that later segments already hold, end
//! it the way recovery will cut it: the seqs lost are one explicit gap);
//! no seq is served from two segments that both hold it (an overlap is an
//! error naming both files); each call re-reads the
//! watermark, re-lists the directory and remaps the newest segment, so it
//! sees every record whose append returned before the call.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{JournalError, ReadError};
use crate::linger::Cache;
use crate::lock;
use crate::mapping::{
    Cached, Extent, Retry, Synced, View, Walk, check_no_overlap, ends_sealed, map_segment, sync_dead_writers_tail, walk,
};
use crate::records::{Position, Record, Records};
use crate::seam::{Io, Step};
use crate::segment::{self, SegmentFile};
use crate::sidecar::IndexEntry;
use crate::watermark::{self, Watermark, WriterState};

/// A reader of a journal directory. Cheap to clone (clones share a cache of
/// segment maps); `Send + Sync`. A segment stays mapped while records or
/// iterators read from it are held, and about two seconds after (a read
/// of it then reuses the map); then a thread of the process lets go of
/// the map, so a segment that retention removed frees its blocks on the
/// disk without any further call on the reader.
#[derive(Clone, Debug)]
pub struct Reader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Shared with the sweeper that lets go of unused maps (`linger.rs`).
    cache: Arc<Cache>,
    /// The I/O seam, for the one write-side call a reader makes: the
    /// `fdatasync` of a dead writer's newest segment before it serves it.
    io: Io,
    /// The last such segment synced and how that went (`mapping.rs`).
    synced: Mutex<Synced>,
}

/// How far one call may read, decided from the watermark and the lock
/// before the directory is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    /// A writer runs (or closed cleanly): segments up to `wm.segment`, the
    /// last one mapped only up to `wm.offset`; nothing past `wm.seq`.
    Acked(Watermark),
    /// A writer is opening and may be cutting the newest segment: serve the
    /// segments before it, which recovery never changes. With the
    /// watermark as it reads then (`Recovering`, keeping its predecessor's
    /// position), if any.
    Sealed(Option<Watermark>),
    /// No writer runs and the last one did not close cleanly: every valid
    /// frame is served, as recovery would keep it, the newest segment from a
    /// private copy (a writer that opens later may cut its tail). With the
    /// watermark as it read, to tell whether a writer came since.
    Crashed(Option<Watermark>),
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
        Self::open_io(dir.as_ref(), Io::default())
    }

    /// [`Reader::open`] whose `fdatasync` of a dead writer's newest segment
    /// goes through `plan` ([`Step::ReaderSync`](crate::fault::Step::ReaderSync)).
    #[cfg(feature = "fault-injection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
    pub fn open_with_faults(dir: impl AsRef<Path>, plan: crate::fault::FaultPlan) -> Result<Reader, JournalError> {
        Self::open_io(dir.as_ref(), Io::with_plan(plan))
    }

    fn open_io(dir: &Path, io: Io) -> Result<Reader, JournalError> {
        let dir = dir.to_path_buf();
        segment::list(&dir, true)?;
        let cache = Arc::new(Mutex::new(HashMap::new()));
        crate::linger::register(&cache);
        Ok(Reader { inner: Arc::new(Inner { dir, cache, io, synced: Mutex::new(None) }) })
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
    /// [`ReadError::Ahead`] if `cursor` is beyond the last record (with no
    /// writer running, and the last one's watermark: beyond both);
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

    /// The records at `entries` (seqs and frame offsets, from a
    /// [`SegmentIndex`](crate::SegmentIndex) or [`Sidecar`](crate::Sidecar))
    /// of the segment named by `first_seq`, bounded like
    /// [`read_since`](Self::read_since): nothing past what the writer
    /// acknowledged is mapped. Each record's frame is checked (complete, CRC,
    /// seq) where the entry says; an entry that does not point at such a
    /// frame, or lies past the bound, gives `None` (a stale index, or a
    /// record not acknowledged yet), never another record.
    ///
    /// # Errors
    ///
    /// [`ReadError::Expired`] if retention removed the segment;
    /// [`ReadError::Journal`] if it cannot be listed or mapped, or the
    /// watermark keeps naming a segment that is not there, or its header
    /// is damaged (as [`read_since`](Self::read_since) says), or it belongs
    /// to another journal than the watermark's (the directory was recreated).
    pub fn records_at(&self, first_seq: u64, entries: &[IndexEntry]) -> Result<Vec<Option<Record>>, ReadError> {
        let mut records = self.records_in(&[(first_seq, entries)])?;
        Ok(records.pop().expect("one segment asked for"))
    }

    /// The records at the entries of several segments (`(first seq,
    /// entries)`, oldest segment first), each as
    /// [`records_at`](Self::records_at) reads them, under one look at the
    /// watermark and one listing of the directory for them all: what a
    /// per-stream read of many segments pays once, not per segment.
    ///
    /// # Errors
    ///
    /// As [`records_at`](Self::records_at); [`ReadError::Expired`] when
    /// retention removed the oldest segment asked for.
    pub fn records_in(&self, wanted: &[(u64, &[IndexEntry])]) -> Result<Vec<Vec<Option<Record>>>, ReadError> {
        let Some(&(oldest, _)) = wanted.first() else { return Ok(Vec::new()) };
        let mut attempt = 0;
        loop {
            match self.try_records_in(wanted) {
                Err(Retry::Vanished(_)) if attempt + 1 < RETRIES => attempt += 1,
                Err(Retry::Vanished(e @ JournalError::EpochMismatch { .. })) => return Err(ReadError::Journal(e)),
                // Retention removed the segment: its records are gone.
                // Anything else that kept vanishing (a watermark naming a
                // segment that is not there) is the error it is, as
                // `read_since` reports it, not a reason to skip records
                // that are still there. Retention removes the oldest
                // segments first: a segment asked for that it removed
                // means the oldest one asked for is gone too.
                Err(Retry::Vanished(e)) => {
                    let earliest = self.first_seq()?;
                    return Err(if earliest > oldest {
                        ReadError::Expired { earliest }
                    } else {
                        ReadError::Journal(e)
                    });
                }
                Err(Retry::Fail(e)) => return Err(e),
                Ok(records) => return Ok(records),
            }
        }
    }

    fn try_records_in(&self, wanted: &[(u64, &[IndexEntry])]) -> Result<Vec<Vec<Option<Record>>>, Retry> {
        let (segs, extent, bound) = self.bounded()?;
        wanted.iter().map(|&(first_seq, entries)| self.records_of(&segs, extent, bound, first_seq, entries)).collect()
    }

    /// The records at `entries` of the segment named by `first_seq`, in the
    /// listing `segs` that [`bounded`](Self::bounded) gave with `extent`
    /// and `bound`.
    fn records_of(
        &self,
        segs: &[SegmentFile],
        extent: Extent,
        bound: Bound,
        first_seq: u64,
        entries: &[IndexEntry],
    ) -> Result<Vec<Option<Record>>, Retry> {
        let Some(i) = segs.iter().position(|s| s.first_seq == first_seq) else {
            return match segs.first() {
                Some(oldest) if oldest.first_seq > first_seq => {
                    Err(ReadError::Expired { earliest: oldest.first_seq }.into())
                }
                // Not served by this call (a writer is opening): nothing verified.
                _ => Ok(vec![None; entries.len()]),
            };
        };
        let last = i + 1 == segs.len();
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let view = map_segment(&mut cache, &segs[i], last, if last { extent } else { Extent::Whole })?;
        if last {
            self.settle_copy(&mut cache, &segs[i], &view, bound)?;
        }
        drop(cache);
        let Some(map) = view.map else { return Ok(vec![None; entries.len()]) };
        // As `read_since` does: a damaged header is an error, not a segment
        // whose frames are served; one of another journal than the one the
        // watermark names (the directory recreated since) is looked at again.
        let Some(header) = header_of(&segs[i], &map, last, bound)? else { return Ok(vec![None; entries.len()]) };
        if let Bound::Acked(wm) = bound
            && view.acked
            && header.epoch != wm.epoch
        {
            let (path, expected, found) = (segs[i].path.clone(), wm.epoch, header.epoch);
            return Err(Retry::Vanished(JournalError::EpochMismatch { path, expected, found }));
        }
        Ok(entries
            .iter()
            .map(|e| usize::try_from(e.offset).ok().and_then(|off| Record::at(&map, off, e.seq)))
            .collect())
    }

    /// The segment files of the journal, oldest first: `(first seq, path)`.
    /// Lists the directory; reads nothing.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the directory cannot be listed.
    pub fn segments(&self) -> Result<Vec<(u64, PathBuf)>, JournalError> {
        Ok(segment::list(&self.inner.dir, false)?.segments.into_iter().map(|s| (s.first_seq, s.path)).collect())
    }

    /// The watermark and the lock, read once: how far this call may go.
    fn bound(&self) -> Result<Bound, JournalError> {
        let dir = &self.inner.dir;
        let before = watermark::read(dir)?;
        // `None`: the platform cannot tell; a writer may be running.
        let running = lock::is_held(dir).unwrap_or(true);
        // A writer that took the lock between the two reads has published
        // `Recovering` before touching anything: read again to see it.
        let wm = if running { watermark::read(dir)? } else { before };
        Ok(match wm {
            Some(wm) if wm.state == WriterState::Closed => Bound::Acked(wm),
            Some(wm) if running && wm.state == WriterState::Open => Bound::Acked(wm),
            _ if running => Bound::Sealed(wm),
            _ => Bound::Crashed(wm),
        })
    }

    /// After a read under [`Bound::Crashed`]: the newest segment was copied
    /// with no writer running, but one may have opened the journal since
    /// this call looked, and written records it has not synced (or cut the
    /// tail). If the lock or the watermark changed, look again.
    fn no_writer_came(&self, bound: Bound) -> Result<(), Retry> {
        if matches!(bound, Bound::Crashed(_)) && self.bound()? != bound {
            let came = std::io::Error::other("a writer opened the journal during the read");
            return Err(Retry::Vanished(JournalError::io("read segment", &self.inner.dir, came)));
        }
        Ok(())
    }

    /// Under [`Bound::Crashed`], before anything of the newest segment's
    /// private copy (`view`, of `newest`) is served: the file synced as far
    /// as the copy's valid frames run (`mapping.rs`), then a look at whether
    /// a writer came meanwhile.
    fn settle_copy(
        &self,
        cache: &mut HashMap<u64, Cached>,
        newest: &SegmentFile,
        view: &View,
        bound: Bound,
    ) -> Result<(), Retry> {
        if !matches!(bound, Bound::Crashed(_)) {
            return Ok(());
        }
        let hint = cache.get(&newest.first_seq).and_then(|c| c.hint);
        let end = match walk(view, hint, u64::MAX) {
            Walk::End { off, .. } | Walk::Damaged { off, .. } => off,
            Walk::Found(_) => unreachable!("no segment holds seq u64::MAX"),
        };
        // The header (its epoch and creation time) tells the file from
        // another with the same name and a reused inode number.
        let header = view.map.as_deref().map_or(&[][..], |bytes| &bytes[..crate::format::HEADER_LEN.min(bytes.len())]);
        sync_dead_writers_tail(&self.inner.io, &self.inner.synced, newest, header, end)?;
        self.no_writer_came(bound)
    }

    /// The segments this call may read and how much of the last one.
    fn bounded(&self) -> Result<(Vec<SegmentFile>, Extent, Bound), Retry> {
        let bound = self.bound()?;
        // Listed after the watermark was read: every segment it names is listed.
        let mut segs = self.list()?;
        let extent = match bound {
            Bound::Acked(wm) => {
                let keep = segs.partition_point(|s| s.first_seq <= wm.segment);
                segs.truncate(keep);
                if segs.last().is_none_or(|last| last.first_seq != wm.segment) {
                    // The writer rolled and pruned between the two reads, or
                    // the directory was recreated: look again.
                    let path = self.inner.dir.join(segment::file_name(wm.segment));
                    let gone =
                        std::io::Error::new(std::io::ErrorKind::NotFound, "the watermark names a missing segment");
                    return Err(Retry::Vanished(JournalError::io("open segment", path, gone)));
                }
                Extent::Prefix(wm.offset)
            }
            Bound::Sealed(_) => {
                segs.pop();
                Extent::Whole
            }
            // Its copy is synced before it is served (`settle_copy`).
            Bound::Crashed(wm) => Extent::DeadCopy(wm),
        };
        Ok((segs, extent, bound))
    }

    fn try_read_since(&self, cursor: u64) -> Result<Records, Retry> {
        let (segs, extent, bound) = self.bounded()?;
        if matches!(bound, Bound::Crashed(_)) {
            let dir = &self.inner.dir;
            self.inner.io.op(Step::ReaderCopy, || Ok(())).map_err(|e| JournalError::io("read segment", dir, e))?;
        }
        let Some(oldest) = segs.first() else {
            return match bound {
                Bound::Acked(wm) if cursor > wm.seq => self.beyond_watermark(cursor, wm.seq),
                Bound::Crashed(_) if cursor > 0 => Err(ReadError::Ahead { latest: 0 }.into()),
                _ => Ok(Records::empty(cursor.saturating_add(1))),
            };
        };
        let want = cursor.saturating_add(1);
        if want < oldest.first_seq {
            return Err(ReadError::Expired { earliest: oldest.first_seq }.into());
        }
        if let Bound::Acked(wm) = bound {
            if cursor > wm.seq {
                return self.beyond_watermark(cursor, wm.seq);
            }
            if cursor == wm.seq {
                return Ok(Records::empty(cursor.saturating_add(1)));
            }
        }
        let idx = segs.partition_point(|s| s.first_seq <= want) - 1;
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if idx > 0 {
            // The segment before the one holding the cursor must end below
            // it, or the cursor's records exist twice: serve neither copy.
            check_no_overlap(&mut cache, &segs[idx - 1], &segs[idx])?;
        }
        let last_idx = segs.len() - 1;
        let mut views = Vec::with_capacity(segs.len() - idx);
        let mut epoch = None;
        let mut codec_tag = None;
        for (i, seg) in segs.iter().enumerate().skip(idx) {
            let mut view =
                map_segment(&mut cache, seg, i == last_idx, if i == last_idx { extent } else { Extent::Whole })?;
            if view.map.is_none() && !view.last {
                let reason = "sealed segment is shorter than its header";
                return Err(JournalError::corrupt(&seg.path, 0, Some(seg.first_seq), reason).into());
            }
            let header = match &view.map {
                Some(map) => header_of(seg, map, view.last, bound)?,
                None => None,
            };
            if header.is_none() {
                view.map = None;
            }
            if let Some(h) = header {
                if let Bound::Acked(wm) = bound
                    && view.acked
                    && h.epoch != wm.epoch
                {
                    // The directory was recreated after the watermark was read:
                    // its offset is another file's. Look again (and if it
                    // stays so, say which epochs disagree).
                    let (expected, found) = (wm.epoch, h.epoch);
                    return Err(Retry::Vanished(JournalError::EpochMismatch {
                        path: seg.path.clone(),
                        expected,
                        found,
                    }));
                }
                codec_tag.get_or_insert(h.codec_tag);
                let expected = *epoch.get_or_insert(h.epoch);
                if h.epoch != expected {
                    return Err(JournalError::EpochMismatch { path: seg.path.clone(), expected, found: h.epoch }.into());
                }
            }
            views.push(view);
        }
        if let Some(newest) = views.last().filter(|v| v.last) {
            self.settle_copy(&mut cache, &segs[last_idx], newest, bound)?;
        }
        let first = &views[0];
        let entry = cache.get_mut(&first.first_seq);
        let walk = walk(first, entry.as_ref().and_then(|c| c.hint), want);
        let off = match walk {
            Walk::Found(off) => off,
            // Damage in what the writer acknowledged: not the end.
            Walk::Damaged { off, expected, reason } if first.acked => {
                return Err(JournalError::corrupt(&first.path, off as u64, Some(expected), reason).into());
            }
            // Damage with valid frames after it in a dead writer's copy: as
            // recovery refuses it, never read as the end of the journal.
            Walk::Damaged { off, expected, reason } if first.last && !first.ends_unacked_at(off, expected) => {
                return Err(damage_before_valid_frames(first, off, expected, &reason).into());
            }
            Walk::End { off, expected } | Walk::Damaged { off, expected, .. } if first.last => {
                if let Some(c) = entry {
                    c.hint = Some((expected, off));
                }
                // While a writer opens, the newest segment is not served:
                // a cursor past the sealed ones is not known to be ahead.
                // Nor is one within a dead writer's watermark: its seqs
                // were handed out, and the next writer skips past them.
                if expected == want || matches!(bound, Bound::Sealed(_)) {
                    return Ok(Records::empty(cursor.saturating_add(1)));
                }
                let handed_out = self.handed_out_by_the_dead_writer(bound).unwrap_or(0);
                return if cursor <= handed_out {
                    Ok(Records::empty(cursor.saturating_add(1)))
                } else {
                    Err(ReadError::Ahead { latest: (expected - 1).max(handed_out) }.into())
                };
            }
            // The sealed segment ends before `want`: the records after it
            // start later (a gap), which the iterator reports.
            Walk::End { off, .. } => off,
            // A torn tail, or frames the later segments already hold: the
            // segment ends here, as recovery will cut it (the iterator
            // reports the gap).
            Walk::Damaged { off, expected, .. } if ends_sealed(first, off, expected, &views[1..]) => off,
            Walk::Damaged { off, expected, reason } => {
                return Err(JournalError::corrupt(&first.path, off as u64, Some(expected), reason).into());
            }
        };
        if let Some(c) = entry {
            c.hint = Some((want, off));
        }
        Ok(Records { views, at: Position { idx: 0, off, expected: want, done: false }, epoch, codec_tag })
    }

    /// A cursor past the watermark is `Ahead` only if the files agree: a
    /// writer that has just taken the lock may not have published yet, and
    /// the cursor may come from records its dead predecessor wrote (served
    /// while no writer ran) that its recovery will keep. The files are read
    /// from a private copy, never mapped past the watermark.
    fn beyond_watermark(&self, cursor: u64, acked: u64) -> Result<Records, Retry> {
        let segs = self.list()?;
        let Some(newest) = segs.last() else { return Err(ReadError::Ahead { latest: acked }.into()) };
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let view = map_segment(&mut cache, newest, true, Extent::Copy)?;
        let in_files = match walk(&view, None, u64::MAX) {
            Walk::End { expected, .. } | Walk::Damaged { expected, .. } => expected - 1,
            Walk::Found(_) => unreachable!("no segment holds seq u64::MAX"),
        };
        if cursor <= in_files {
            Ok(Records::empty(cursor.saturating_add(1)))
        } else {
            Err(ReadError::Ahead { latest: acked }.into())
        }
    }

    /// The earliest retained seq (1 for a journal with no segment).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the directory cannot be listed.
    pub fn first_seq(&self) -> Result<u64, JournalError> {
        Ok(segment::list(&self.inner.dir, false)?.segments.first().map_or(1, |s| s.first_seq))
    }

    /// The bytes of the segment files that hold records after `seq`: what a
    /// consumer at `seq` still has to read, at segment granularity (an upper
    /// bound, at most one segment's worth above the exact figure, headers
    /// included). The newest segment always counts, since where its records
    /// end is not known without reading it: a caller that knows the consumer
    /// is caught up should say 0 itself. Lists the directory and stats each
    /// file it counts; reads no record.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the directory cannot be listed.
    pub fn bytes_after(&self, seq: u64) -> Result<u64, JournalError> {
        Ok(self.segment_sizes()?.bytes_after(seq))
    }

    /// The first seq and file size of every segment (for the segment the
    /// watermark names, no more than its acknowledged bytes: a writer under
    /// `SyncPolicy::Always` reserves space past them), oldest first, from one
    /// listing: [`SegmentSizes::bytes_after`] answers
    /// [`bytes_after`](Self::bytes_after) for many seqs without listing the
    /// directory again for each. A segment removed since the listing counts
    /// 0 bytes (it holds nothing left to read).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the directory cannot be listed.
    pub fn segment_sizes(&self) -> Result<SegmentSizes, JournalError> {
        // The segment the watermark names counts up to the acknowledged
        // data, not the space a writer reserved past it (`reserve.rs`).
        let wm = watermark::read(&self.inner.dir).ok().flatten();
        let segments = segment::list(&self.inner.dir, false)?.segments;
        let sizes = segments
            .iter()
            .map(|s| {
                let len = std::fs::metadata(&s.path).map_or(0, |m| m.len());
                let acked = wm.filter(|wm| wm.segment == s.first_seq).map_or(u64::MAX, |wm| wm.offset);
                (s.first_seq, len.min(acked))
            })
            .collect();
        Ok(SegmentSizes(sizes))
    }

    /// The last seq in the journal (0 when it holds no record): with no
    /// writer running, not below the seq the last one's watermark names,
    /// whose records a salvage may have cut (the next writer skips past it).
    ///
    /// # Errors
    ///
    /// [`JournalError`] if the newest segment cannot be mapped or understood;
    /// [`JournalError::Corrupt`] naming the file and offset when no writer
    /// runs and the newest segment holds damage with valid frames after it
    /// (which recovery refuses: it is not the journal's end).
    pub fn last_seq(&self) -> Result<u64, JournalError> {
        self.last_seq_retried(true)
    }

    /// The seq of the last record the files hold (0 when none), as
    /// [`last_seq`](Self::last_seq) reads it but without a dead writer's
    /// floor: with no writer running, `last_seq` counts the seqs the last
    /// one handed out whose records are gone (a salvage cut them, a power
    /// loss took them; the next writer skips past them), which are no
    /// records to count (`events inspect`).
    ///
    /// # Errors
    ///
    /// As [`last_seq`](Self::last_seq).
    pub fn last_record_seq(&self) -> Result<u64, JournalError> {
        self.last_seq_retried(false)
    }

    fn last_seq_retried(&self, handed_out: bool) -> Result<u64, JournalError> {
        let mut attempt = 0;
        loop {
            match self.try_last_seq(handed_out) {
                Err(Retry::Vanished(_)) if attempt + 1 < RETRIES => attempt += 1,
                Err(Retry::Vanished(e)) => return Err(e),
                Err(Retry::Fail(ReadError::Journal(e))) => return Err(e),
                Err(Retry::Fail(e)) => return Err(JournalError::Failed { cause: e.to_string() }),
                Ok(seq) => return Ok(seq),
            }
        }
    }

    fn try_last_seq(&self, handed_out: bool) -> Result<u64, Retry> {
        let (segs, extent, bound) = self.bounded()?;
        if let Bound::Acked(wm) = bound {
            return Ok(wm.seq);
        }
        let in_files = self.last_seq_in(&segs, extent, bound)?;
        // While a writer opens, the newest segment is not read, but what its
        // predecessor acknowledged still is the journal's: recovery keeps it.
        // The `Recovering` record carries that position, in this journal if
        // its epoch is the newest segment's.
        if let Bound::Sealed(Some(wm)) = bound
            && wm.seq > in_files
            && self.newest_header().is_ok_and(|(_, header)| header.epoch == wm.epoch)
        {
            return Ok(wm.seq);
        }
        if !handed_out {
            return Ok(in_files);
        }
        // So with no writer: seqs a dead writer's watermark names were
        // handed out, even where their records are gone (a salvage cut
        // them, and the open failed before it skipped past them); and
        // those its lease names, where a power loss took them.
        Ok(self.handed_out_by_the_dead_writer(bound).map_or(in_files, |handed_out| handed_out.max(in_files)))
    }

    /// With no writer running, the last seq the dead writer may have
    /// handed out, in this journal (the newest segment's epoch): the seq
    /// its watermark names (of that epoch), and, when it acknowledged
    /// before syncing in a boot other than this one, the end of its lease
    /// ([`Lease::lost_upto`](crate::lease::Lease::lost_upto): a power loss
    /// since may have taken seqs it handed out, which only the lease,
    /// synced before any of them, still names). The next writer skips past
    /// both whatever the files still hold. A cursor up to it is not ahead
    /// of the journal (reading it so had rewound a follower, which read the
    /// kept records again, and stopped a replicator), and `last_seq` is not
    /// below it.
    fn handed_out_by_the_dead_writer(&self, bound: Bound) -> Option<u64> {
        let Bound::Crashed(wm) = bound else { return None };
        let epoch = self.newest_header().ok()?.1.epoch;
        let watermarked = wm.filter(|wm| wm.epoch == epoch).map(|wm| wm.seq);
        // A boot this reader cannot tell (no `/proc/sys` here, where the
        // writer could read its own) is no sign of a power loss: the next
        // writer, which can, skips nothing after a crash in its own boot.
        let boot = self.inner.io.boot_id();
        let leased = crate::lease::read(&self.inner.dir)
            .ok()
            .flatten()
            .filter(|lease| boot.is_some() || lease.boot.is_none())
            .and_then(|lease| lease.lost_upto(epoch, boot, 0));
        watermarked.max(leased)
    }

    /// The last seq of the last segment of `segs`, read as `extent` allows.
    fn last_seq_in(&self, segs: &[SegmentFile], extent: Extent, bound: Bound) -> Result<u64, Retry> {
        let Some(newest) = segs.last() else { return Ok(0) };
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let view = map_segment(&mut cache, newest, true, extent)?;
        self.settle_copy(&mut cache, newest, &view, bound)?;
        if let Some(map) = &view.map {
            header_of(newest, map, true, bound)?;
        }
        let entry = cache.get_mut(&newest.first_seq);
        match walk(&view, entry.as_ref().and_then(|c| c.hint), u64::MAX) {
            // Damage with valid frames after it in a dead writer's copy: not
            // the journal's end (as `read_since` says).
            Walk::Damaged { off, expected, reason } if view.last && !view.ends_unacked_at(off, expected) => {
                Err(damage_before_valid_frames(&view, off, expected, &reason).into())
            }
            Walk::End { off, expected } | Walk::Damaged { off, expected, .. } => {
                if let Some(c) = entry {
                    c.hint = Some((expected, off));
                }
                Ok(expected - 1)
            }
            Walk::Found(_) => unreachable!("no segment holds seq u64::MAX"),
        }
    }

    /// The journal's epoch: that of the journal [`read_since`](Self::read_since)
    /// serves ([`newest_header`](Self::newest_header)).
    ///
    /// # Errors
    ///
    /// [`JournalError::NoSegments`] if no segment has a complete header; a
    /// header error naming the file if the newest header is damaged.
    pub fn epoch(&self) -> Result<u64, JournalError> {
        Ok(self.newest_header()?.1.epoch)
    }

    /// The header of the journal [`read_since`](Self::read_since) serves,
    /// and its segment's path: the journal's epoch and payload codec tag.
    /// That of the segment the watermark names, when it holds the
    /// watermark's epoch (a running or cleanly closed writer's record, an
    /// opening writer's, which keeps its predecessor's position, or a dead
    /// writer's): a segment of another journal copied in beside it, named
    /// past it, is not the journal (taken for it, a caught-up follower had
    /// reset to it and back at every poll). Otherwise (no watermark, or the
    /// named segment gone or of another journal: the directory made
    /// again), the newest segment with a complete one.
    ///
    /// # Errors
    ///
    /// [`JournalError::NoSegments`] if no segment has a complete header; a
    /// header error naming the file if the newest header is damaged.
    pub fn newest_header(&self) -> Result<(PathBuf, crate::format::SegmentHeader), JournalError> {
        let named = match self.bound() {
            Ok(Bound::Acked(wm)) => Some(wm),
            // An opening writer's `Recovering` record keeps its
            // predecessor's position; a dead writer's names its last.
            Ok(Bound::Sealed(wm) | Bound::Crashed(wm)) => wm,
            Err(_) => None,
        };
        if let Some(wm) = named {
            let path = self.inner.dir.join(segment::file_name(wm.segment));
            let named = SegmentFile { first_seq: wm.segment, path, ino: 0 };
            // Opened by name, not from a listing (which keeps regular files
            // alone): a FIFO standing there must not hold the read for ever.
            let header = crate::own_file::open_regular(&named.path)
                .ok()
                .and_then(|file| segment::read_header_from(&file, &named).ok());
            if let Some(segment::HeaderState::Valid(h)) = header
                && h.epoch == wm.epoch
            {
                return Ok((named.path, h));
            }
        }
        let segs = segment::list(&self.inner.dir, false)?.segments;
        for seg in segs.iter().rev() {
            match segment::read_header(seg) {
                Ok(segment::HeaderState::Valid(h)) => return Ok((seg.path.clone(), h)),
                Ok(segment::HeaderState::Torn) => {}
                Err(JournalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Err(JournalError::NoSegments { dir: self.inner.dir.clone() })
    }

    /// The watermark the writer published (`None` if there is none or it
    /// does not decode). What [`read_since`](Self::read_since) serves is
    /// derived from it: see `docs/FORMAT.md`.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the file exists but cannot be read.
    pub fn watermark(&self) -> Result<Option<Watermark>, JournalError> {
        watermark::read(&self.inner.dir)
    }

    /// Whether a writer holds the directory's lock right now (`None` where
    /// the platform cannot test a lock without taking it).
    pub fn writer_running(&self) -> Option<bool> {
        lock::is_held(&self.inner.dir)
    }

    /// Whether a writer is opening the journal right now: its watermark
    /// says [`WriterState::Recovering`](crate::WriterState::Recovering)
    /// and the lock is held (or cannot be tested). Reads then stop at the
    /// sealed segments: the newest segment's acknowledged records are
    /// there again once the writer is open, so a reader that must not take
    /// an early end for the journal's end waits and reads again.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the watermark file exists but cannot be read.
    pub fn writer_opening(&self) -> Result<bool, JournalError> {
        let recovering = self.watermark()?.is_some_and(|wm| wm.state == crate::WriterState::Recovering);
        Ok(recovering && self.writer_running() != Some(false))
    }

    /// Waits (blocking, looking every 5 ms) while a writer is opening the
    /// journal ([`writer_opening`](Self::writer_opening)); `true` if it
    /// waited, so a read that ended meanwhile may have ended early.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] (`TimedOut`) naming the directory if a writer is
    /// still opening it at `deadline`; as [`writer_opening`](Self::writer_opening).
    pub fn wait_while_a_writer_opens(&self, deadline: std::time::Instant) -> Result<bool, JournalError> {
        let mut waited = false;
        while self.writer_opening()? {
            if std::time::Instant::now() >= deadline {
                let still = std::io::Error::new(std::io::ErrorKind::TimedOut, "the writer is still recovering");
                return Err(JournalError::io("wait for the writer opening the journal", &self.inner.dir, still));
            }
            waited = true;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(waited)
    }

    /// Lists the segments, and lets go of the maps of those no longer
    /// listed (removed by retention, or replaced): a map keeps a removed
    /// file's blocks on the disk for as long as it lives.
    fn list(&self) -> Result<Vec<SegmentFile>, Retry> {
        let segs = segment::list(&self.inner.dir, false)?.segments;
        let mut cache = self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner);
        // Listed in `first_seq` order.
        cache
            .retain(|first, c| segs.binary_search_by_key(first, |s| s.first_seq).is_ok_and(|at| segs[at].ino == c.ino));
        Ok(segs)
    }
}

/// Damage at `off` of a dead writer's newest segment (`view`) with valid
/// frames after it: what recovery refuses, not the journal's end.
fn damage_before_valid_frames(view: &View, off: usize, expected: u64, reason: &str) -> JournalError {
    let reason = format!("{reason} in the newest segment, and valid frames follow");
    JournalError::corrupt(&view.path, off as u64, Some(expected), reason)
}

/// The header of segment `seg` (whose bytes are `map`; `last` for the newest
/// listed), or `None` for a dead writer's newest segment whose header never
/// reached the disk with nothing but zeros after it: an interrupted
/// creation, which the next open rewrites, holding nothing to read (as a
/// file shorter than its header). A torn header anywhere else, or with data
/// after it, is damage, as open says too.
fn header_of(
    seg: &SegmentFile,
    map: &[u8],
    last: bool,
    bound: Bound,
) -> Result<Option<crate::format::SegmentHeader>, JournalError> {
    if let Some(header) = segment::check_header(seg, map)? {
        return Ok(Some(header));
    }
    if last && matches!(bound, Bound::Crashed(_)) && crate::format::only_zeros_after_header(map) {
        return Ok(None);
    }
    Err(JournalError::corrupt(&seg.path, 0, Some(seg.first_seq), "torn header"))
}

/// Segment sizes from one listing: see [`Reader::segment_sizes`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentSizes(Vec<(u64, u64)>);

impl SegmentSizes {
    /// The size counted for the segment that starts at `first_seq` (for
    /// the one the watermark names, its acknowledged bytes), if it was
    /// listed.
    pub fn of(&self, first_seq: u64) -> Option<u64> {
        self.0.iter().find(|&&(first, _)| first == first_seq).map(|&(_, size)| size)
    }

    /// As [`Reader::bytes_after`], on this listing.
    pub fn bytes_after(&self, seq: u64) -> u64 {
        let segments = &self.0;
        let mut bytes = 0;
        for (i, &(_, size)) in segments.iter().enumerate() {
            // A segment holds `first_seq ..next.first_seq`; the newest holds
            // `first_seq..`: it has records after `seq` if its end is past it.
            if segments.get(i + 1).is_none_or(|&(next, _)| next - 1 > seq) {
                bytes += size;
            }
        }
        bytes
    }
}
