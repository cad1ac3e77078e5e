//! The crash-safe rebuild of a damaged segment. [`plan`] splits a segment
//! image into the pieces that keep its valid frames (the valid prefix under
//! the segment's own name, then each contiguous run of valid frames found
//! after the damage), and [`execute`] writes them. Recovery (`recovery.rs`)
//! uses it for the salvage modes, for a torn tail of a sealed segment, for
//! `RecoveryMode::Repair`, and to finish a rebuild that a crash interrupted.
//!
//! Invariant, the order that makes every intermediate state recover to the
//! same result: the new pieces are written and fsynced as `.seg.salvage`
//! files, renamed into place, and the directory is fsynced, all *before*
//! the damaged segment is replaced (by renaming a rewritten copy over it,
//! never by truncating a file that a reader may have mapped). Until that
//! last rename the damaged segment still holds every frame the pieces hold,
//! so a crash anywhere loses nothing; once a piece is renamed, the valid
//! frames the damaged segment holds after its damage carry seqs at or above
//! its successor's name, which is how the next open recognises an
//! interrupted rebuild and finishes it (`scan::Tail::Superseded`). A
//! piece never holds a seq that an existing segment it does not replace
//! starts at.

use std::fs::{self, OpenOptions};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::format::{HEADER_LEN, SegmentHeader};
use crate::scan::Scan;
use crate::seam::{Io, Step};
use crate::segment::{self, SegmentFile};

/// One file of a rebuilt segment: records `first_seq..=last_seq` (none
/// when `last_seq < first_seq`), copied from `ranges` of the source image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
    pub(crate) ranges: Vec<Range<usize>>,
}

impl Piece {
    /// The length of the piece's file.
    pub(crate) fn file_len(&self) -> u64 {
        (HEADER_LEN + self.ranges.iter().map(|r| r.len()).sum::<usize>()) as u64
    }
}

/// The pieces of a damaged segment whose name carries `first_seq`: the
/// first keeps the name and the valid prefix; with `keep_runs`, each run of
/// valid frames after the damage joins the previous piece when its seqs
/// follow on (nothing between them was lost) or starts a piece of its own.
#[allow(clippy::single_range_in_vec_init, reason = "lists of byte ranges that start with one range")]
pub(crate) fn plan(scan: &Scan, first_seq: u64, keep_runs: bool) -> Vec<Piece> {
    let prefix = if scan.valid_end > HEADER_LEN { vec![HEADER_LEN..scan.valid_end] } else { Vec::new() };
    let mut pieces = vec![Piece { first_seq, last_seq: scan.next_seq - 1, ranges: prefix }];
    let runs = scan.damage.as_ref().filter(|_| keep_runs).map_or(&[][..], |d| &d.runs[..]);
    for run in runs {
        let last = pieces.last_mut().expect("the first piece exists");
        if run.first_seq == last.last_seq + 1 {
            last.ranges.push(run.start..run.end);
            last.last_seq = run.last_seq;
        } else {
            pieces.push(Piece { first_seq: run.first_seq, last_seq: run.last_seq, ranges: vec![run.start..run.end] });
        }
    }
    pieces
}

/// The seqs that no piece holds, from the first piece's first seq up to
/// `end` (exclusive; the seq the next segment starts at), as inclusive ranges.
pub(crate) fn missing(pieces: &[Piece], end: Option<u64>) -> Vec<RangeInclusive<u64>> {
    let mut out = Vec::new();
    let Some(first) = pieces.first() else { return out };
    let mut expected = first.first_seq;
    for p in pieces {
        if p.first_seq > expected {
            out.push(expected..=p.first_seq - 1);
        }
        expected = expected.max(p.last_seq + 1);
    }
    if let Some(end) = end
        && end > expected
    {
        out.push(expected..=end - 1);
    }
    out
}

/// Writes `pieces` of `source` (whose bytes are `image`) in the crash-safe
/// order of this file's invariant. `header` becomes the header of the first
/// piece; the others get the same one with their own first seq. `listed`
/// are the segments now in the directory: a piece whose file already
/// exists (an interrupted rebuild renamed it) must hold exactly the piece's
/// frames, and no new piece may reach the first seq of a later segment.
///
/// Returns the segments of the pieces after the first, oldest first.
///
/// # Errors
///
/// [`JournalError::Overlap`] when an existing segment contradicts a piece
/// (nothing is changed then: the checks run before the first write);
/// [`JournalError::Io`] when a write, fsync or rename fails.
pub(crate) fn execute(
    io: &Io,
    dir: &Path,
    source: &SegmentFile,
    image: &[u8],
    header: &SegmentHeader,
    pieces: &[Piece],
    listed: &[SegmentFile],
) -> Result<Vec<SegmentFile>, JournalError> {
    let todo = check(source, image, pieces, listed)?;
    let mut out = Vec::new();
    for piece in pieces.iter().skip(1) {
        out.push(SegmentFile {
            first_seq: piece.first_seq,
            path: dir.join(segment::file_name(piece.first_seq)),
            ino: 0,
        });
    }
    let todo: Vec<_> = todo.into_iter().map(|piece| (piece, dir.join(segment::file_name(piece.first_seq)))).collect();
    // 1. Every new piece, complete and fsynced, under a name the journal ignores.
    let mut staged = Vec::with_capacity(todo.len());
    for (piece, path) in todo {
        let tmp = salvage_name(&path);
        let h = SegmentHeader { first_seq: piece.first_seq, ..*header };
        write_copy(io, &tmp, &h, image, &piece.ranges)?;
        staged.push((tmp, path));
    }
    // 2. Into place, oldest first, then the directory: the damaged segment
    //    still holds all of it, so a crash here loses nothing.
    for (tmp, path) in &staged {
        // A sidecar index describes the old bytes: gone first (a crash then
        // leaves a segment without one, which is rebuilt when needed).
        crate::sidecar::remove_for(path);
        io.op(Step::Salvage, || fs::rename(tmp, path))
            .map_err(|e| JournalError::io("rename salvage segment", tmp, e))?;
    }
    if !staged.is_empty() {
        segment::sync_dir(io, dir)?;
    }
    // 3. The commit: the damaged segment is replaced by its rebuilt first piece.
    let first = &pieces[0];
    let tmp = salvage_name(&source.path);
    write_copy(io, &tmp, &SegmentHeader { first_seq: first.first_seq, ..*header }, image, &first.ranges)?;
    crate::sidecar::remove_for(&source.path);
    io.op(Step::Salvage, || fs::rename(&tmp, &source.path))
        .map_err(|e| JournalError::io("rename salvage segment", &tmp, e))?;
    segment::sync_dir(io, dir)?;
    Ok(out)
}

/// Checks `pieces` of `source` against the segments `listed` in the
/// directory, changing nothing, and returns the pieces (after the first)
/// still to be written: a piece whose segment exists must hold exactly its
/// frames (a copy an interrupted rebuild made), and no other piece may
/// reach the first seq of a listed segment.
///
/// # Errors
///
/// [`JournalError::Overlap`] naming `source` and the contradicting segment.
pub(crate) fn check<'p>(
    source: &SegmentFile,
    image: &[u8],
    pieces: &'p [Piece],
    listed: &[SegmentFile],
) -> Result<Vec<&'p Piece>, JournalError> {
    let mut todo = Vec::new();
    for piece in pieces.iter().skip(1) {
        let overlap = |seg: &SegmentFile| JournalError::Overlap {
            path: source.path.clone(),
            last_seq: piece.last_seq,
            next: seg.path.clone(),
            next_first: seg.first_seq,
        };
        if let Some(seg) = listed.iter().find(|s| s.first_seq == piece.first_seq) {
            if !holds_exactly(&seg.path, piece, image) {
                return Err(overlap(seg));
            }
        } else if let Some(seg) = listed.iter().find(|s| s.first_seq > piece.first_seq && s.first_seq <= piece.last_seq)
        {
            return Err(overlap(seg));
        } else {
            todo.push(piece);
        }
    }
    Ok(todo)
}

/// `<name>.seg.salvage`: a name the journal lists as ignored.
fn salvage_name(path: &Path) -> PathBuf {
    path.with_extension("seg.salvage")
}

/// Creates (or replaces) `path` with `header` and the `ranges` of `image`, and fsyncs it.
/// Whatever was at `path` (a copy an earlier rebuild left, or a FIFO or symlink, which
/// opening for writing would block on or write through) is removed first, and the file
/// is created new.
fn write_copy(
    io: &Io,
    path: &Path,
    header: &SegmentHeader,
    image: &[u8],
    ranges: &[Range<usize>],
) -> Result<(), JournalError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(JournalError::io("remove salvage segment", path, e)),
    }
    let f = io
        .op(Step::Salvage, || OpenOptions::new().write(true).create_new(true).open(path))
        .map_err(|e| JournalError::io("create salvage segment", path, e))?;
    io.write_all(Step::Salvage, &f, &header.encode())
        .map_err(|e| JournalError::io("write salvage segment", path, e))?;
    for r in ranges {
        io.write_all(Step::Salvage, &f, &image[r.clone()])
            .map_err(|e| JournalError::io("write salvage segment", path, e))?;
    }
    io.sync_data(Step::Salvage, &f).map_err(|e| JournalError::io("fdatasync", path, e))
}

/// True when the segment at `path` holds a header for `piece.first_seq` and
/// exactly the piece's frames: a copy an interrupted rebuild already made.
fn holds_exactly(path: &Path, piece: &Piece, image: &[u8]) -> bool {
    let Ok(bytes) = fs::read(path) else { return false };
    let header_ok = SegmentHeader::decode(&bytes).is_ok_and(|h| h.first_seq == piece.first_seq);
    let mut frames = bytes.get(HEADER_LEN..).unwrap_or_default();
    header_ok
        && piece.ranges.iter().all(|r| {
            let part = &image[r.clone()];
            let same = frames.starts_with(part);
            frames = frames.get(part.len()..).unwrap_or_default();
            same
        })
        && frames.is_empty()
}
