//! Segment mapping for the reader: the bytes of a segment as a reader sees
//! them ([`Bytes`]: a `memmap2` map or a private copy), the cache of maps
//! kept between calls, one segment's [`View`] for one call, the walk to a
//! seq's frame, and the sealed-segment checks (overlap, a tail that
//! recovery will cut). `reader.rs` drives it; `records.rs` iterates the
//! views.
//!
//! Invariant: no byte of a map is ever past the file's end, now or later:
//! a sealed segment never changes, a prefix covers only acknowledged data,
//! and a tail that a writer's recovery may cut is only read as a copy.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use memmap2::Mmap;

use crate::error::{JournalError, ReadError};
use crate::format::{self, FrameCheck, HEADER_LEN};
use crate::scan::{self, Tail};
use crate::seam::{Io, Step};
use crate::segment::SegmentFile;
use crate::watermark::Watermark;

/// The bytes of one segment as a reader sees them: a map of a prefix that
/// no writer will ever cut, or a private copy of a segment that a writer's
/// recovery might still cut.
pub(crate) enum Bytes {
    Map(Mmap),
    Copy(Box<[u8]>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(map) => map,
            Bytes::Copy(bytes) => bytes,
        }
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bytes::Map(map) => write!(f, "Map({} bytes)", map.len()),
            Bytes::Copy(bytes) => write!(f, "Copy({} bytes)", bytes.len()),
        }
    }
}

/// What is known of a segment between calls. Sealed segments never change,
/// so their map is reused while a read still holds it or for
/// [`LINGER`](crate::linger::LINGER) after the last one (`linger.rs`); the
/// newest segment is remapped when its length changes. `hint` is a known
/// frame boundary (seq expected there, offset) that saves walking the
/// segment from its start on the next call.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) ino: u64,
    pub(crate) map: Option<Kept>,
    /// The map held past the reads that use it, and when it was last used.
    pub(crate) linger: Option<(Arc<Bytes>, Instant)>,
    pub(crate) sealed: bool,
    pub(crate) hint: Option<(u64, usize)>,
    /// The name of the next segment this (sealed) one was found not to
    /// overlap: the check is made once per pair.
    pub(crate) checked_next: Option<u64>,
    /// For a dead writer's newest segment held as a private copy: the
    /// file and watermark it was copied under ([`Extent::DeadCopy`]).
    pub(crate) copied: Option<CopyStamp>,
    /// [`View::search_end`] of the map.
    pub(crate) search_end: usize,
}

impl Cached {
    /// The entry's bytes as a view takes them (`None`: a file shorter than
    /// its header), or `None` when its map is gone (no read held it).
    fn held(&self) -> Option<Option<Arc<Bytes>>> {
        match &self.map {
            None => Some(None),
            Some(kept) => kept.get().map(Some),
        }
    }

    /// Keeps `map` (a map, not a copy: a copy is kept anyway) for a while
    /// after the read that uses it now, if the sweeper can let go of it.
    fn used(&mut self, map: Option<&Arc<Bytes>>) {
        if let (Some((held, at)), Some(map)) = (&mut self.linger, map)
            && Arc::ptr_eq(held, map)
        {
            // Lingering already, so the sweeper looks at it: a new stamp,
            // with no call on the sweeper (a lock every reader shares).
            *at = Instant::now();
            return;
        }
        self.linger = match map {
            Some(map) if matches!(**map, Bytes::Map(_)) && crate::linger::keep() => {
                Some((Arc::clone(map), Instant::now()))
            }
            _ => None,
        };
    }

    /// The lingering map, taken out if it was not used for `linger`.
    pub(crate) fn expire(&mut self, linger: Duration) -> Option<Arc<Bytes>> {
        match &self.linger {
            Some((_, used)) if used.elapsed() >= linger => self.linger.take().map(|(map, _)| map),
            _ => None,
        }
    }

    /// Whether a map lingers.
    pub(crate) fn lingers(&self) -> bool {
        self.linger.is_some()
    }
}

/// The bytes a [`Cached`] entry keeps. A map is kept weakly: it lives as
/// long as the records and iterators handed out hold it, and
/// [`LINGER`](crate::linger::LINGER) longer (`Cached::linger`), so a
/// segment that retention removed is let go of (its blocks freed on the
/// disk) soon after the last read using it ends, with no further call on
/// the reader. A private copy pins no file and is kept whole: a
/// follower polling a dead writer's journal reuses it instead of reading
/// the newest segment again at every poll.
#[derive(Debug)]
pub(crate) enum Kept {
    Map(std::sync::Weak<Bytes>),
    Copy(Arc<Bytes>),
}

impl Kept {
    fn new(bytes: &Arc<Bytes>) -> Kept {
        match **bytes {
            Bytes::Map(_) => Kept::Map(Arc::downgrade(bytes)),
            Bytes::Copy(_) => Kept::Copy(Arc::clone(bytes)),
        }
    }

    /// The bytes, if a read still holds them (always, for a copy).
    fn get(&self) -> Option<Arc<Bytes>> {
        match self {
            Kept::Map(map) => map.upgrade(),
            Kept::Copy(copy) => Some(Arc::clone(copy)),
        }
    }
}

/// A file's length and modification time (seconds, nanoseconds), and the
/// watermark read with it: while all four are as they were, no writer came
/// and nothing changed the file, so a copy made then still holds its bytes.
pub(crate) type CopyStamp = (u64, i64, i64, Option<Watermark>);

/// One segment as seen by one `read_since` call.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) first_seq: u64,
    pub(crate) path: PathBuf,
    /// `None` for a segment without a complete header (being created or torn).
    pub(crate) map: Option<Arc<Bytes>>,
    /// Where the map's data ends: past it are only holes of a sparse file,
    /// where no frame starts (the map's length when there are none). A
    /// search for frames (after damage, for the last frame) looks only at
    /// offsets before it, so a sealed segment made sparse and a terabyte
    /// long costs a reader what it holds, not a search at every offset.
    pub(crate) search_end: usize,
    pub(crate) last: bool,
    /// The newest segment mapped up to the watermark of a writer that runs
    /// or closed cleanly: every byte of the view was acknowledged, so a
    /// frame that does not check there is damage, not the writer's next
    /// write or a torn tail.
    pub(crate) acked: bool,
}

impl View {
    /// For the newest segment's view with no acknowledged end: whether a
    /// bad frame at `off` (where `expected` was due) ends it. A dead
    /// writer's private copy ends there only as a torn tail does (nothing
    /// valid follows: what recovery cuts); valid frames after it are damage,
    /// which recovery refuses too. The last sealed segment served while a
    /// writer opens ends at its first bad frame (the opening writer's
    /// recovery decides).
    pub(crate) fn ends_unacked_at(&self, off: usize, expected: u64) -> bool {
        match self.map.as_deref() {
            // Zeros to the end (space a writer under `Always` reserved) hold
            // no frame: a quick answer before the search for valid frames.
            Some(Bytes::Copy(bytes)) => {
                bytes.get(off..).is_none_or(|rest| rest.iter().all(|&b| b == 0))
                    || ends_sealed(self, off, expected, &[])
            }
            _ => true,
        }
    }
}

impl Extent {
    fn is_copy(self) -> bool {
        matches!(self, Extent::Copy | Extent::DeadCopy(_))
    }
}

/// How much of one segment a view holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extent {
    /// The whole file (a sealed segment).
    Whole,
    /// The first `n` bytes (acknowledged data of the segment being written).
    Prefix(u64),
    /// A private copy of the whole file of a writer that died, whose
    /// watermark read as it holds: reused while the file and the watermark
    /// stay as they were (a follower polling a dead writer's journal would
    /// otherwise read the whole newest segment at every poll).
    DeadCopy(Option<Watermark>),
    /// A private copy of the whole file.
    Copy,
}

/// Where a walk through a segment stopped.
pub(crate) enum Walk {
    /// The frame of the target seq starts here (or would, at the end).
    Found(usize),
    /// The segment ended cleanly; `expected` is the seq after its last record.
    End { off: usize, expected: u64 },
    /// A bad frame at `off` where `expected` was due.
    Damaged { off: usize, expected: u64, reason: String },
}

/// Why one attempt failed: a segment vanished under it (try again), or a real error.
pub(crate) enum Retry {
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

/// Maps `seg` (or the part of it `extent` allows), reusing the cached map
/// when it is still good.
///
/// No byte of a map is ever past the file's end, now or later: a sealed
/// segment never changes; a `Prefix` covers only acknowledged data, which
/// neither a cut-back nor recovery ever removes in place (recovery
/// replaces the file by a rename when it cuts before the watermark); and
/// the tail that a writer's recovery may cut is only ever read as a
/// private `Copy`.
pub(crate) fn map_segment(
    cache: &mut HashMap<u64, Cached>,
    seg: &SegmentFile,
    last: bool,
    extent: Extent,
) -> Result<View, Retry> {
    if let Some(c) = cache.get_mut(&seg.first_seq)
        && c.ino == seg.ino
        && c.sealed
        && extent == Extent::Whole
        && let Some(map) = c.held()
    {
        c.used(map.as_ref());
        let (path, search_end) = (seg.path.clone(), c.search_end);
        return Ok(View { first_seq: seg.first_seq, path, map, search_end, last, acked: false });
    }
    let file = match File::open(&seg.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Retry::Vanished(JournalError::io("open segment", &seg.path, e)));
        }
        Err(e) => return Err(JournalError::io("open segment", &seg.path, e).into()),
    };
    let meta = file.metadata().map_err(|e| JournalError::io("stat segment", &seg.path, e))?;
    let file_len = meta.len();
    let len = match extent {
        Extent::Prefix(n) => n.min(file_len),
        Extent::Whole | Extent::Copy | Extent::DeadCopy(_) => file_len,
    };
    // What a dead writer's copy is reused under (see `CopyStamp`).
    let stamp = match extent {
        Extent::DeadCopy(wm) => Some((file_len, meta.mtime(), meta.mtime_nsec(), wm)),
        _ => None,
    };
    let reusable = cache.get(&seg.first_seq).filter(|c| c.ino == seg.ino);
    let held = reusable.and_then(|c| c.map.as_ref()).and_then(Kept::get);
    let map = match (held, reusable) {
        // A private copy is never reused as a map: the file may have been
        // cut back and rewritten to the same length since.
        (Some(held), _)
            if !extent.is_copy()
                && matches!(*held, Bytes::Map(_))
                && held.len() as u64 == len
                && len >= HEADER_LEN as u64 =>
        {
            Some(held)
        }
        // A dead writer's copy, of the file and watermark as they still are.
        (Some(held), Some(c)) if stamp.is_some() && c.copied == stamp => Some(held),
        _ if len < HEADER_LEN as u64 => None,
        _ if extent.is_copy() => {
            let bytes = read_copy(&file, len).map_err(|e| JournalError::io("read segment", &seg.path, e))?;
            Some(Arc::new(Bytes::Copy(bytes)))
        }
        _ => {
            // SAFETY: see the function's docs: the mapped range stays within
            // the file for as long as the map lives.
            let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(&file) }
                .map_err(|e| JournalError::io("mmap segment", &seg.path, e))?;
            Some(Arc::new(Bytes::Map(map)))
        }
    };
    let hint = reusable.and_then(|c| c.hint).filter(|&(_, off)| map.as_ref().is_some_and(|m| off <= m.len()));
    let sealed = !last && extent == Extent::Whole;
    let copied = stamp.filter(|_| map.is_some());
    // A copy already stops past the last data (`read_copy`); a prefix is
    // acknowledged data.
    let mapped = map.as_ref().map_or(0, |m| m.len());
    let search_end = match extent {
        Extent::Whole => search_end(&file, mapped),
        _ => mapped,
    };
    // A sealed segment found not to overlap its next one still does not.
    let checked_next = reusable.filter(|c| c.sealed && sealed).and_then(|c| c.checked_next);
    let kept = map.as_ref().map(Kept::new);
    let mut cached = Cached { ino: seg.ino, map: kept, linger: None, sealed, hint, checked_next, copied, search_end };
    cached.used(map.as_ref());
    cache.insert(seg.first_seq, cached);
    let acked = last && matches!(extent, Extent::Prefix(_));
    Ok(View { first_seq: seg.first_seq, path: seg.path.clone(), map, search_end, last, acked })
}

/// Reads up to `len` bytes of `file` into a private buffer; a file that
/// shrank meanwhile gives a shorter copy, never an error or a fault.
///
/// The copy stops one largest frame (of the default record limit) past
/// the start of a hole with no data after it: no frame starts there (it
/// reads as zeros), but one that starts before it may end in it (zeros a
/// file system stored as a hole), and recovery keeps such a frame. A
/// sparse file of any length (a damaged or hostile one: a segment's length
/// is no bound a reader can trust) then costs what it holds. Data after a
/// hole (blocks a power loss kept out of order) is copied, so the walk
/// sees what recovery sees. The buffer is asked for fallibly: a length the
/// allocator refuses is this read's error, not an abort.
pub(crate) fn read_copy(file: &File, len: u64) -> std::io::Result<Box<[u8]>> {
    use std::io::Read;
    const LARGEST_FRAME: u64 = crate::options::DEFAULT_MAX_RECORD_BYTES as u64 + crate::format::FRAME_HEADER_LEN as u64;
    let len = len.min(data_end(file).map_or(len, |end| end.saturating_add(LARGEST_FRAME)));
    let mut buf = Vec::new();
    let capacity = usize::try_from(len).map_err(std::io::Error::other)?;
    buf.try_reserve_exact(capacity).map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
    file.take(len).read_to_end(&mut buf)?;
    Ok(buf.into_boxed_slice())
}

/// Where the data of `file`, `len` bytes of which are mapped, ends: past
/// it are only holes, where no frame starts ([`data_end`], at most `len`).
pub(crate) fn search_end(file: &File, len: usize) -> usize {
    data_end(file).and_then(|end| usize::try_from(end).ok()).map_or(len, |end| end.min(len))
}

/// Where `file`'s data ends: the start of a hole with no data after it,
/// with the file's offset put back at 0; `None` when data runs to the end,
/// or where the platform or the file system cannot tell.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn data_end(file: &File) -> Option<u64> {
    use std::io::{Seek, SeekFrom};
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: `lseek` on a descriptor this function borrows; it changes
    // only the file offset, which is put back below.
    let hole = unsafe { libc::lseek(fd, 0, libc::SEEK_HOLE) };
    // SAFETY: as above.
    let data_after = (hole >= 0).then(|| unsafe { libc::lseek(fd, hole, libc::SEEK_DATA) });
    let no_data_after = data_after == Some(-1) && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO);
    let mut file = file;
    file.seek(SeekFrom::Start(0)).ok()?;
    no_data_after.then(|| u64::try_from(hole).ok()).flatten()
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn data_end(_: &File) -> Option<u64> {
    None
}

/// Fails if `prev`, a sealed segment, holds records at or above the first
/// seq of `next` (checked once per pair and remembered in the cache).
pub(crate) fn check_no_overlap(
    cache: &mut HashMap<u64, Cached>,
    prev: &SegmentFile,
    next: &SegmentFile,
) -> Result<(), Retry> {
    let checked =
        cache.get(&prev.first_seq).is_some_and(|c| c.ino == prev.ino && c.checked_next == Some(next.first_seq));
    if checked {
        return Ok(());
    }
    let view = map_segment(cache, prev, false, Extent::Whole)?;
    if let Some(map) = &view.map
        && let Some(last_seq) = scan::overlap(map, prev.first_seq, next.first_seq, view.search_end)
    {
        let err = JournalError::Overlap {
            path: prev.path.clone(),
            last_seq,
            next: next.path.clone(),
            next_first: next.first_seq,
        };
        return Err(err.into());
    }
    if let Some(c) = cache.get_mut(&prev.first_seq) {
        c.checked_next = Some(next.first_seq);
    }
    Ok(())
}

/// True when the bad frame at `off` of the sealed segment `view` (where
/// `expected` was due) ends it: nothing valid follows (a torn tail), or
/// only frames the `later` segments hold (an interrupted salvage or
/// repair, [`Damage::held_by`](scan::Damage::held_by)). Both are what
/// recovery cuts or finishes; anything else is corruption to report. So
/// are the frames of a piece the interrupted rebuild has not renamed in
/// yet, which only the damaged segment holds: taken for its end, they were
/// reported as a gap, which a follower moves past for good, and the next
/// open brought them back.
pub(crate) fn ends_sealed(view: &View, off: usize, expected: u64, later: &[View]) -> bool {
    let Some(map) = &view.map else { return false };
    let next_first = later.first().map_or(u64::MAX, |next| next.first_seq);
    let damage = scan::damage_at(map, off, expected, view.search_end);
    match damage.classify(next_first) {
        Tail::Torn => true,
        Tail::Superseded => damage.held_by(|seq| later.iter().any(|v| v.first_seq == seq)),
        Tail::Corrupt => false,
    }
}

/// Walks `view` to the frame of seq `target`, starting from `hint` when it
/// still checks out, verifying every frame passed.
pub(crate) fn walk(view: &View, hint: Option<(u64, usize)>, target: u64) -> Walk {
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

/// The last dead writer's newest segment a reader synced: its first seq,
/// inode and header's CRC (an inode number alone names another segment
/// once a file system reuses it for a later one, or for a recreated
/// journal's first segment, whose header differs: that segment's unsynced
/// records had been served with no sync), how far the valid frames ran
/// when it was synced, and how that went. A sync
/// covers everything before that end, so the file is synced again only
/// when its valid frames run further (another writer came and died since:
/// under `Always` it may have written into space reserved ahead, which
/// leaves the file's length as it was). A failed sync stays failed (after
/// `EIO` the kernel may mark the pages clean, and a second `fdatasync`
/// would succeed without them).
pub(crate) type Synced = Option<((u64, u64, u32), usize, Result<(), String>)>;

/// A dead writer's newest segment may end in records it wrote but never
/// synced (under `Always`, ones it never acknowledged). They are served,
/// as recovery will keep them; so they are made durable first, or a
/// power loss could take seqs a reader handed out and the next writer
/// would give them to other records. Called before anything of the
/// private copy a read took of `newest` is served: the copy's valid frames
/// end at `end`, and the file is synced unless a sync already covered that
/// far. Where the file cannot be synced (a read-only
/// file system), it is served as it is. A failure is this reader's error
/// for that file from then on.
pub(crate) fn sync_dead_writers_tail(
    io: &Io,
    synced: &Mutex<Synced>,
    newest: &SegmentFile,
    header: &[u8],
    end: usize,
) -> Result<(), Retry> {
    let path = &newest.path;
    let answer = |outcome: Result<(), String>| {
        outcome.map_err(|e| JournalError::io("fdatasync segment", path, std::io::Error::other(e)).into())
    };
    let mut synced = synced.lock().unwrap_or_else(PoisonError::into_inner);
    // The header's fields, not its stored CRC: a CRC over bytes that end
    // in their own CRC is the same for every header.
    let fields = &header[..header.len().min(crate::format::HEADER_LEN - 4)];
    let file_id = (newest.first_seq, newest.ino, crc32fast::hash(fields));
    if let Some((id, through, outcome)) = synced.as_ref()
        && *id == file_id
        && (*through >= end || outcome.is_err())
    {
        return answer(outcome.clone());
    }
    let file = File::open(path).map_err(|e| {
        let vanished = e.kind() == std::io::ErrorKind::NotFound;
        let e = JournalError::io("open segment", path, e);
        if vanished { Retry::Vanished(e) } else { e.into() }
    })?;
    let outcome = match io.sync_data(Step::ReaderSync, &file) {
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EROFS | libc::EINVAL)) => Err(e.to_string()),
        _ => Ok(()),
    };
    *synced = Some((file_id, end, outcome.clone()));
    answer(outcome)
}
