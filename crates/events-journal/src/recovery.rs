//! Recovery at open. [`recover`] checks every segment header, compares each sealed
//! segment's last frame with the name of the segment after it, recovers the
//! newest segment by the chosen [`RecoveryMode`], cuts the torn tail of a
//! sealed segment, finishes a salvage or repair that a crash interrupted,
//! and in `Repair` mode repairs every damaged segment. This is the
//! open-time driver; the checks and fixes of one segment are
//! `recover_segment.rs`, the rewriting itself `rebuild.rs`, the frame walk
//! `scan.rs`.
//!
//! Invariants: a refused open changes nothing on disk (every check runs
//! before the first change); a torn tail of the newest segment is cut
//! exactly at the first byte of the first bad frame and fsynced; a sealed
//! segment is never truncated in place (a reader may have mapped it) but
//! replaced by a rewritten copy; the next seq is above every seq seen in
//! any CRC-valid frame, so no seq that a reader could have seen is reused;
//! two segments that hold the same seq are refused, never merged.

use std::fs::File;
use std::path::Path;

use crate::error::JournalError;
use crate::format::{HEADER_LEN, SegmentHeader};
use crate::lease::Vouched;
use crate::options::{JournalOptions, RecoveryMode};
use crate::rebuild;
use crate::recover_segment::{
    Head, Mode, Newest, RecoveryAction, apply_fix, check_sealed, file_len, recover_newest, rewrite_header,
};
use crate::seam::Io;
use crate::segment::{self, HeaderState, SegInfo, SegmentFile};
use crate::watermark::Watermark;

/// What recovery at open leaves for the writer.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) epoch: u64,
    /// Oldest first; the last one is the active segment.
    pub(crate) segments: Vec<SegInfo>,
    /// Where the next frame goes in the active segment.
    pub(crate) active_len: u64,
    pub(crate) next_seq: u64,
    /// Records in the newest segment.
    pub(crate) newest_records: u64,
    /// What was done to the newest segment.
    pub(crate) action: Option<RecoveryAction>,
    /// What was done to the other segments.
    pub(crate) sealed: Vec<RecoveryAction>,
    /// True if the journal was created (no segment existed).
    pub(crate) created: bool,
    /// The highest seq of the frames a power-loss cut of the newest
    /// segment dropped (`recover_segment.rs`): the open skips past it.
    pub(crate) dropped_upto: Option<u64>,
}

/// Recovers the journal whose segments are `listed` (oldest first), or
/// creates its first segment, as `docs/FORMAT.md` ("Recovery at open")
/// describes. A pass that changes which segment files exist is followed by
/// another one over the new listing, which finds nothing more to do and
/// reports the final layout.
///
/// `vouched.kept` names the seqs the previous writer acknowledged that no
/// crash since can have taken: under [`RecoveryMode::Strict`] a torn tail
/// that would cut through them is refused as damage (nothing changed
/// yet). `vouched.rebooted` says a power loss may have left its unsynced
/// tail with holes (`recover_segment.rs`).
/// `previous` is the previous writer's watermark, which says how far
/// readers may have mapped the newest segment.
pub(crate) fn recover(
    io: &Io,
    dir: &Path,
    listed: &[SegmentFile],
    opts: &JournalOptions,
    vouched: Vouched,
    previous: Option<Watermark>,
) -> Result<Recovered, JournalError> {
    if listed.is_empty() {
        return create_first(io, dir, opts.codec_tag);
    }
    let mut listed = listed.to_vec();
    let mut action = None;
    let mut dropped_upto = None;
    let mut sealed = Vec::new();
    for pass in 0..3 {
        // The journal's epoch when no segment header gives it: the previous
        // writer's watermark's, when it names one of these segments (not a
        // watermark an earlier journal left beside segments deleted by hand).
        let recorded =
            previous.filter(|wm| wm.epoch != 0 && listed.iter().any(|s| s.first_seq == wm.segment)).map(|wm| wm.epoch);
        let (mut rec, relist) = recover_pass(io, dir, &listed, opts, vouched, (previous, recorded), pass == 0)?;
        action = action.or(rec.action.take());
        dropped_upto = dropped_upto.max(rec.dropped_upto);
        sealed.append(&mut rec.sealed);
        if !relist {
            return Ok(Recovered { action, sealed, dropped_upto, ..rec });
        }
        listed = segment::list(dir, false)?.segments;
    }
    Err(JournalError::corrupt(dir, 0, None, "recovery did not settle after three passes"))
}

fn create_first(io: &Io, dir: &Path, codec_tag: u32) -> Result<Recovered, JournalError> {
    let epoch = new_epoch();
    let header = SegmentHeader { epoch, first_seq: 1, created_at: segment::now_nanos(), codec_tag };
    let (file, path) = segment::create(io, dir, &header)?;
    drop(file);
    Ok(Recovered {
        epoch,
        segments: vec![SegInfo { first_seq: 1, path, bytes: HEADER_LEN as u64, created_at: header.created_at }],
        active_len: HEADER_LEN as u64,
        next_seq: 1,
        newest_records: 0,
        action: None,
        sealed: Vec::new(),
        created: true,
        dropped_upto: None,
    })
}

/// One pass over `listed`; the flag says whether the set of segment files
/// changed (the caller then lists the directory again).
fn recover_pass(
    io: &Io,
    dir: &Path,
    listed: &[SegmentFile],
    opts: &JournalOptions,
    Vouched { kept, rebooted }: Vouched,
    (previous, recorded): (Option<Watermark>, Option<u64>),
    first_pass: bool,
) -> Result<(Recovered, bool), JournalError> {
    let mode = opts.recovery;
    // Only `Strict` refuses a cut through acknowledged records; the
    // salvage modes cut, and the open skips past what was acknowledged.
    let kept = kept.filter(|_| mode == RecoveryMode::Strict);
    let (newest, older) = listed.split_last().expect("recover handles an empty directory");

    // 1. Every header (identity, or what is wrong with it) and, for a
    //    sealed segment, its last frame against the next segment's name,
    //    with one open file at a time. Nothing changes on disk yet.
    let salvage = mode != RecoveryMode::Strict;
    let newest_empty = salvage && holds_no_frame(newest)?;
    let mut first = None;
    let mut heads = Vec::with_capacity(listed.len());
    let mut lens = Vec::with_capacity(older.len());
    let mut fixes = Vec::new();
    for (i, seg) in listed.iter().enumerate() {
        let file = File::open(&seg.path).map_err(|e| JournalError::io("open segment", &seg.path, e))?;
        let head = match segment::read_header_from(&file, seg) {
            Ok(HeaderState::Valid(h)) => {
                check_identity(seg, &h, &mut first, recorded, opts.codec_tag)?;
                Head::Valid(h)
            }
            // Torn only if nothing but zeros follows it: a segment's header
            // is durable before any record is written after it, so records
            // behind a zeroed header are damage, not a crash's leftovers.
            Ok(HeaderState::Torn) if i + 1 == listed.len() && zeros_after_header(&file, seg)? => Head::Torn,
            Ok(HeaderState::Torn) if i + 1 == listed.len() && mode != RecoveryMode::Repair => {
                let reason = "the newest segment's header is torn or zeroed, but data follows it";
                return Err(JournalError::corrupt(&seg.path, 0, Some(seg.first_seq), reason));
            }
            Ok(HeaderState::Torn) if mode == RecoveryMode::Repair => Head::Damaged("torn header".to_owned()),
            Ok(HeaderState::Torn) => {
                let reason = "sealed segment has a torn header";
                return Err(JournalError::corrupt(&seg.path, 0, Some(seg.first_seq), reason));
            }
            Err(e) if mode == RecoveryMode::Repair && repairable(&e) => Head::Damaged(e.detail()),
            Err(e) => return Err(e),
        };
        if i < older.len() {
            // Walked in full: in a repair, a segment with a damaged header, and
            // in a salvage mode the one before an empty newest segment (a
            // salvage that had reserved its seqs may have been interrupted).
            let walk = (first_pass && mode == RecoveryMode::Repair)
                || matches!(head, Head::Damaged(_))
                || (salvage && i + 1 == older.len() && newest_empty);
            let (len, fix) = check_sealed(&file, seg, &head, &listed[i + 1], walk, mode, opts.max_record_bytes)?;
            if let Some(fix) = &fix {
                if let Some(e) = kept.and_then(|k| fix.refusal(&k)) {
                    return Err(e);
                }
                // Copies an interrupted rebuild made are checked before anything changes.
                rebuild::check(seg, &fix.image, &fix.pieces, listed)?;
            }
            lens.push(len);
            fixes.extend(fix.map(|f| (i, f)));
        }
        heads.push(head);
    }
    // No valid header anywhere (a repair of damaged ones, a torn newest
    // one): still this journal, whose epoch the previous writer's
    // watermark names. A new one would make every follower reset, and let
    // the watermark of the old epoch no longer hold the next seq above what
    // was acknowledged.
    let epoch = first.map(|(epoch, _)| epoch).or(recorded).unwrap_or_else(new_epoch);
    let template =
        |first_seq: u64, created_at: u64| SegmentHeader { epoch, first_seq, created_at, codec_tag: opts.codec_tag };

    // 2. The newest segment (may refuse under Strict: nothing changed yet).
    let now = segment::now_nanos();
    let how = Mode { mode, kept, rebooted, previous };
    let rec = match &heads[heads.len() - 1] {
        Head::Torn => {
            let what = "the newest segment's header is torn and only zeros follow it";
            if let Some(e) = kept.and_then(|k| k.refusal(&newest.path, 0, epoch, newest.first_seq, what)) {
                return Err(e);
            }
            let header = template(newest.first_seq, now);
            rewrite_header(io, dir, newest, &header)?;
            tracing::warn!(path = %newest.path.display(), "rewrote the torn header of the newest segment");
            Newest {
                seg: newest.clone(),
                header,
                len: HEADER_LEN as u64,
                next_seq: newest.first_seq,
                relist: false,
                action: Some(RecoveryAction::RewroteTornHeader { path: newest.path.clone() }),
                dropped_upto: None,
            }
        }
        Head::Valid(h) => recover_newest(io, dir, newest, Ok(*h), template(newest.first_seq, now), how, listed)?,
        Head::Damaged(reason) => {
            recover_newest(io, dir, newest, Err(reason), template(newest.first_seq, now), how, listed)?
        }
    };

    // 3. Apply the sealed-segment fixes.
    let mut relist = rec.relist;
    let mut sealed = Vec::with_capacity(fixes.len());
    for (i, fix) in fixes {
        // A rebuilt sealed segment keeps its sealing time (its successor's
        // creation), so age retention treats it as before.
        let sealed_at = match &heads[i + 1] {
            Head::Valid(h) => h.created_at,
            _ => now,
        };
        sealed.push(apply_fix(io, dir, fix, &template(listed[i].first_seq, sealed_at))?);
        relist = true;
    }
    if relist {
        // Another pass reports the new layout (and finds nothing left to do).
        let rec = Recovered {
            epoch,
            segments: Vec::new(),
            active_len: 0,
            next_seq: 0,
            newest_records: 0,
            action: rec.action,
            sealed,
            created: false,
            dropped_upto: rec.dropped_upto,
        };
        return Ok((rec, true));
    }

    let mut segments = Vec::with_capacity(listed.len());
    for (i, seg) in older.iter().enumerate() {
        // A damaged header is always rebuilt (and relisted) before this point.
        let created_at = match heads[i] {
            Head::Valid(h) => h.created_at,
            _ => now,
        };
        segments.push(SegInfo { first_seq: seg.first_seq, path: seg.path.clone(), bytes: lens[i], created_at });
    }
    segments.push(SegInfo {
        first_seq: rec.seg.first_seq,
        path: rec.seg.path.clone(),
        bytes: rec.len,
        created_at: rec.header.created_at,
    });
    let recovered = Recovered {
        epoch,
        segments,
        active_len: rec.len,
        next_seq: rec.next_seq,
        newest_records: rec.next_seq.saturating_sub(rec.seg.first_seq),
        action: rec.action,
        sealed,
        created: false,
        dropped_upto: rec.dropped_upto,
    };
    Ok((recovered, false))
}

/// Header damage that [`RecoveryMode::Repair`] rewrites: a CRC mismatch or
/// invalid fields. Never another version, another journal, a foreign file
/// (bad magic) or a header whose seq contradicts its name.
pub(crate) fn repairable(e: &JournalError) -> bool {
    matches!(e, JournalError::HeaderCrc { .. } | JournalError::Corrupt { offset: 0, .. })
}

/// `first`: the epoch of the oldest valid header so far, and its file;
/// `recorded`: the epoch the previous writer's watermark names. A header
/// of another epoch than the oldest is that one's mismatch, unless the
/// watermark names its epoch: then the oldest is the foreign file (another
/// journal's oldest segment copied in), and the error names it.
fn check_identity<'a>(
    seg: &'a SegmentFile,
    h: &SegmentHeader,
    first: &mut Option<(u64, &'a SegmentFile)>,
    recorded: Option<u64>,
    codec_tag: u32,
) -> Result<(), JournalError> {
    let &mut (expected, oldest) = first.get_or_insert((h.epoch, seg));
    if h.epoch != expected {
        if recorded == Some(h.epoch) {
            return Err(JournalError::EpochMismatch { path: oldest.path.clone(), expected: h.epoch, found: expected });
        }
        return Err(JournalError::EpochMismatch { path: seg.path.clone(), expected, found: h.epoch });
    }
    if h.codec_tag != codec_tag {
        return Err(JournalError::CodecTagMismatch { path: seg.path.clone(), expected: codec_tag, found: h.codec_tag });
    }
    Ok(())
}

/// A fresh random epoch (never 0), from the process's randomly keyed hasher.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(segment::now_nanos());
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// Whether every byte of `file` after its header is zero (or there is none):
/// what a crash can leave behind a torn header, the reserved zeros at most.
fn zeros_after_header(file: &File, seg: &SegmentFile) -> Result<bool, JournalError> {
    use std::os::unix::fs::FileExt;
    // Holes read as zeros: only what comes before them is read (a sparse
    // file of any length costs what it holds).
    let len = file_len(seg)?.min(crate::mapping::data_end(file).unwrap_or(u64::MAX));
    let mut buf = vec![0u8; 64 << 10];
    let mut at = HEADER_LEN as u64;
    while at < len {
        let n = usize::try_from(len - at).map_or(buf.len(), |left| left.min(buf.len()));
        match file.read_at(&mut buf[..n], at) {
            Ok(0) => break, // shrank meanwhile
            Ok(got) if buf[..got].iter().any(|&b| b != 0) => return Ok(false),
            Ok(got) => at += got as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::io("read segment", &seg.path, e)),
        }
    }
    Ok(true)
}

/// Whether a segment holds no frame: no byte after its header, or zeros
/// where its first frame would start (space reserved ahead of writes that
/// never came, `reserve.rs`: a frame carries a seq of at least 1).
fn holds_no_frame(seg: &SegmentFile) -> Result<bool, JournalError> {
    use std::os::unix::fs::FileExt;
    if file_len(seg)? <= HEADER_LEN as u64 {
        return Ok(true);
    }
    let io = |e| JournalError::io("read segment", &seg.path, e);
    let file = std::fs::File::open(&seg.path).map_err(io)?;
    let mut head = [0u8; crate::format::FRAME_HEADER_LEN];
    match file.read_exact_at(&mut head, HEADER_LEN as u64) {
        Ok(()) => Ok(head.iter().all(|&b| b == 0)),
        // A frame cut short: an interrupted write, not an empty segment.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{FRAME_HEADER_LEN, encode_frame};

    fn segment(dir: &Path, bytes: &[u8]) -> SegmentFile {
        let path = dir.join("00000000000000000001.seg");
        std::fs::write(&path, bytes).unwrap();
        SegmentFile { first_seq: 1, path, ino: 0 }
    }

    #[test]
    fn a_segment_with_zeros_where_its_first_frame_would_start_holds_no_frame() {
        let tmp = tempfile::tempdir().unwrap();
        let header = SegmentHeader { epoch: 1, first_seq: 1, created_at: 0, codec_tag: 0 }.encode().to_vec();
        let mut frame = Vec::new();
        encode_frame(&mut frame, 1, 7, b"payload");
        let with = |tail: &[u8]| [header.as_slice(), tail].concat();
        // Empty: the header alone, or followed by reserved zeros.
        assert!(holds_no_frame(&segment(tmp.path(), &header)).unwrap());
        assert!(holds_no_frame(&segment(tmp.path(), &with(&[0; 4096]))).unwrap());
        // Not empty: a frame, a frame cut short, or garbage where the first frame starts.
        assert!(!holds_no_frame(&segment(tmp.path(), &with(&frame))).unwrap());
        assert!(!holds_no_frame(&segment(tmp.path(), &with(&frame[..FRAME_HEADER_LEN - 1]))).unwrap());
        let mut garbage = vec![0; 4096];
        garbage[FRAME_HEADER_LEN - 1] = 1;
        assert!(!holds_no_frame(&segment(tmp.path(), &with(&garbage))).unwrap());
    }
}
