//! Recovery of the newest segment at open, and the frame walk that `verify`
//! shares with it. `scan` walks the frames of one segment image; `runs_after`
//! finds the valid frames that follow a damaged one (this is what tells a torn
//! tail from corruption in the middle); `recover_newest` applies the chosen
//! [`RecoveryMode`] to the file.
//!
//! Invariants: only the newest segment is touched; a torn tail is cut exactly
//! at the first byte of the first bad frame and fsynced; a failed (Strict)
//! recovery changes nothing on disk; the next seq is above every seq seen in
//! any CRC-valid frame, so no seq that a reader could have seen is reused.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::JournalError;
use crate::format::{self, FRAME_HEADER_LEN, FrameCheck, HEADER_LEN, SegmentHeader};
use crate::options::RecoveryMode;
use crate::seam::{Io, Step};
use crate::segment::{self, SegmentFile};

/// The result of walking a segment's frames from its header on.
#[derive(Debug)]
pub(crate) struct Scan {
    /// End of the last frame of the valid, contiguous prefix.
    pub(crate) valid_end: usize,
    /// The seq after that prefix.
    pub(crate) next_seq: u64,
    /// Records in the prefix.
    pub(crate) records: u64,
    /// Where and why the prefix ends before the end of the file.
    pub(crate) damage: Option<Damage>,
}

/// The first bad frame of a segment.
#[derive(Debug)]
pub(crate) struct Damage {
    /// Its offset.
    pub(crate) offset: usize,
    /// What is wrong with it.
    pub(crate) reason: String,
    /// True if the frame itself has a valid CRC (a seq out of order); such a
    /// frame cannot come from an interrupted write.
    pub(crate) crc_valid: bool,
    /// Contiguous runs of valid frames after it, in file order.
    pub(crate) runs: Vec<Run>,
}

impl Damage {
    /// A torn tail: nothing valid follows the damage.
    pub(crate) fn is_torn_tail(&self) -> bool {
        self.runs.is_empty() && !self.crc_valid
    }
}

/// A contiguous run of valid frames found after damage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) first_seq: u64,
    pub(crate) last_seq: u64,
}

/// Walks the frames of a segment image (header included) expecting seqs from `first_seq`.
pub(crate) fn scan(buf: &[u8], first_seq: u64) -> Scan {
    let mut off = HEADER_LEN.min(buf.len());
    let mut expected = first_seq;
    let mut records = 0;
    let damage = loop {
        match format::check_frame(buf, off) {
            FrameCheck::Valid { seq, payload, .. } if seq == expected => {
                off = payload.end;
                expected += 1;
                records += 1;
            }
            FrameCheck::Valid { seq, .. } => {
                break Some((format!("seq {seq} where {expected} was expected"), true));
            }
            FrameCheck::Incomplete if off == buf.len() => break None,
            FrameCheck::Incomplete => break Some(("frame runs past the end of the file".to_owned(), false)),
            FrameCheck::BadCrc => break Some(("frame checksum mismatch".to_owned(), false)),
        }
    };
    let damage = damage.map(|(reason, crc_valid)| Damage {
        offset: off,
        reason,
        crc_valid,
        runs: runs_after(buf, off, expected.saturating_sub(1)),
    });
    Scan { valid_end: off, next_seq: expected, records, damage }
}

/// The contiguous runs of valid frames at or after `from` whose seqs exceed
/// `after_seq`, in file order.
pub(crate) fn runs_after(buf: &[u8], from: usize, after_seq: u64) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut off = from;
    let mut min_seq = after_seq.saturating_add(1);
    while let Some(start) = find_valid(buf, off, min_seq) {
        let mut end = start;
        let mut expected = format::peek_seq(buf, start);
        let first_seq = expected;
        while let FrameCheck::Valid { seq, payload, .. } = format::check_frame(buf, end) {
            if seq != expected {
                break;
            }
            end = payload.end;
            expected += 1;
        }
        runs.push(Run { start, end, first_seq, last_seq: expected - 1 });
        off = end;
        min_seq = expected;
    }
    runs
}

/// The first offset at or after `from` holding a CRC-valid frame with a
/// plausible seq: at least `min_seq`, and not further above it than the
/// number of frames that could fit between `from` and the offset. The cheap
/// length and seq checks keep this scan near-linear even over garbage.
fn find_valid(buf: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    let last = buf.len().checked_sub(FRAME_HEADER_LEN)?;
    (from..=last).find(|&p| {
        let len = format::peek_len(buf, p);
        if len > buf.len() - p - FRAME_HEADER_LEN {
            return false;
        }
        let seq = format::peek_seq(buf, p);
        if seq < min_seq || seq - min_seq > ((p - from) / FRAME_HEADER_LEN) as u64 + 1 {
            return false;
        }
        matches!(format::check_frame(buf, p), FrameCheck::Valid { .. })
    })
}

/// What recovery did to the newest segment, for the [`RecoveryReport`](crate::RecoveryReport).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryAction {
    /// A torn tail was cut off.
    TruncatedTornTail {
        /// The segment.
        path: PathBuf,
        /// Where it was cut (its new length).
        offset: u64,
        /// How many bytes were removed.
        bytes: u64,
    },
    /// The newest segment's header was torn (an interrupted creation); it was
    /// rewritten, and writing continues at the seq in its name.
    RewroteTornHeader {
        /// The segment.
        path: PathBuf,
    },
    /// A salvage mode cut the segment at damage in its middle.
    Salvaged {
        /// The damaged segment.
        path: PathBuf,
        /// Offset of the first bad frame (the segment's new length).
        offset: u64,
        /// Why that frame is bad.
        reason: String,
        /// Seqs of valid frames dropped ([`RecoveryMode::TruncateAtCorruption`]).
        dropped: Vec<std::ops::RangeInclusive<u64>>,
        /// Seqs of valid frames kept in new segments ([`RecoveryMode::SkipCorrupt`]).
        kept: Vec<std::ops::RangeInclusive<u64>>,
    },
}

/// The newest segment after recovery.
#[derive(Debug)]
pub(crate) struct Newest {
    /// The segment to append to.
    pub(crate) seg: SegmentFile,
    /// Its header.
    pub(crate) header: SegmentHeader,
    /// Its length (where the next frame goes).
    pub(crate) len: u64,
    /// The next seq to assign.
    pub(crate) next_seq: u64,
    /// Sealed segments created by salvage, oldest first (the last of them is `seg`).
    pub(crate) created: Vec<SegmentFile>,
    /// True when the next append must go to a new segment at `next_seq` (a
    /// salvage left a gap).
    pub(crate) must_roll: bool,
    /// What was done.
    pub(crate) action: Option<RecoveryAction>,
}

/// Recovers the newest segment whose header is valid.
pub(crate) fn recover_newest(
    io: &Io,
    dir: &Path,
    seg: SegmentFile,
    header: SegmentHeader,
    mode: RecoveryMode,
) -> Result<Newest, JournalError> {
    let file = File::open(&seg.path).map_err(|e| JournalError::io("open segment", &seg.path, e))?;
    // SAFETY: the writer holds the directory lock, so no other writer changes
    // this file while it is mapped; it is only read here and unmapped before
    // any truncation below.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| JournalError::io("mmap segment", &seg.path, e))?;
    let scan = scan(&map, header.first_seq);
    let file_len = map.len() as u64;
    let Some(damage) = scan.damage else {
        return Ok(Newest {
            seg,
            header,
            len: file_len,
            next_seq: scan.next_seq,
            created: Vec::new(),
            must_roll: false,
            action: None,
        });
    };
    let cut = scan.valid_end as u64;
    if damage.is_torn_tail() {
        drop(map);
        truncate(io, &seg.path, cut)?;
        let action = RecoveryAction::TruncatedTornTail { path: seg.path.clone(), offset: cut, bytes: file_len - cut };
        tracing::warn!(path = %seg.path.display(), offset = cut, bytes = file_len - cut, "truncated a torn tail");
        return Ok(Newest {
            seg,
            header,
            len: cut,
            next_seq: scan.next_seq,
            created: Vec::new(),
            must_roll: false,
            action: Some(action),
        });
    }
    let ranges: Vec<_> = damage.runs.iter().map(|r| r.first_seq..=r.last_seq).collect();
    match mode {
        RecoveryMode::Strict => {
            Err(JournalError::corrupt(&seg.path, cut, Some(scan.next_seq), damage.reason + ", and valid frames follow"))
        }
        RecoveryMode::TruncateAtCorruption => {
            drop(map);
            truncate(io, &seg.path, cut)?;
            // Every seq a CRC-valid frame carried may have been read: skip past all of them.
            let max_seen = damage.runs.iter().map(|r| r.last_seq).max().unwrap_or(0);
            let next_seq = scan.next_seq.max(max_seen.saturating_add(1));
            tracing::warn!(path = %seg.path.display(), offset = cut, reason = %damage.reason, "salvage: truncated at corruption");
            Ok(Newest {
                must_roll: next_seq != scan.next_seq,
                action: Some(RecoveryAction::Salvaged {
                    path: seg.path.clone(),
                    offset: cut,
                    reason: damage.reason,
                    dropped: ranges,
                    kept: Vec::new(),
                }),
                seg,
                header,
                len: cut,
                next_seq,
                created: Vec::new(),
            })
        }
        RecoveryMode::SkipCorrupt => {
            // Runs are in file order with increasing seqs (runs_after enforces it).
            let mut staged = Vec::new();
            for run in &damage.runs {
                let h = SegmentHeader { first_seq: run.first_seq, created_at: segment::now_nanos(), ..header };
                let final_path = dir.join(segment::file_name(run.first_seq));
                let tmp = final_path.with_extension("seg.salvage");
                let f = io
                    .op(Step::Salvage, || File::create(&tmp))
                    .map_err(|e| JournalError::io("create salvage segment", &tmp, e))?;
                io.write_all(Step::Salvage, &f, &h.encode())
                    .map_err(|e| JournalError::io("write salvage segment", &tmp, e))?;
                io.write_all(Step::Salvage, &f, &map[run.start..run.end])
                    .map_err(|e| JournalError::io("write salvage segment", &tmp, e))?;
                io.sync_data(Step::Salvage, &f).map_err(|e| JournalError::io("fdatasync", &tmp, e))?;
                staged.push((tmp, final_path, h, (HEADER_LEN + run.end - run.start) as u64));
            }
            drop(map);
            truncate(io, &seg.path, cut)?;
            for (tmp, final_path, _, _) in &staged {
                io.op(Step::Salvage, || fs::rename(tmp, final_path))
                    .map_err(|e| JournalError::io("rename salvage segment", tmp, e))?;
            }
            segment::sync_dir(io, dir)?;
            tracing::warn!(path = %seg.path.display(), offset = cut, reason = %damage.reason, "salvage: skipped corrupt frames");
            let action = RecoveryAction::Salvaged {
                path: seg.path.clone(),
                offset: cut,
                reason: damage.reason,
                dropped: Vec::new(),
                kept: ranges,
            };
            let created: Vec<SegmentFile> = staged
                .iter()
                .map(|(_, path, h, _)| SegmentFile { first_seq: h.first_seq, path: path.clone(), ino: 0 })
                .collect();
            match staged.last() {
                Some((_, path, h, len)) => Ok(Newest {
                    seg: SegmentFile { first_seq: h.first_seq, path: path.clone(), ino: 0 },
                    header: *h,
                    len: *len,
                    next_seq: damage.runs.last().map_or(scan.next_seq, |r| r.last_seq + 1),
                    created,
                    must_roll: false,
                    action: Some(action),
                }),
                // A frame with a valid CRC but a seq out of order and no run after it.
                None => Ok(Newest {
                    seg,
                    header,
                    len: cut,
                    next_seq: scan.next_seq,
                    created,
                    must_roll: false,
                    action: Some(action),
                }),
            }
        }
    }
}

/// Rewrites a torn header in place (truncate to zero, write, fdatasync).
pub(crate) fn rewrite_header(io: &Io, seg: &SegmentFile, header: &SegmentHeader) -> Result<(), JournalError> {
    io.op(Step::HeaderRewrite, || {
        let mut f = OpenOptions::new().write(true).truncate(true).open(&seg.path)?;
        f.write_all(&header.encode())?;
        f.sync_data()
    })
    .map_err(|e| JournalError::io("rewrite segment header", &seg.path, e))
}

fn truncate(io: &Io, path: &Path, len: u64) -> Result<(), JournalError> {
    let f = OpenOptions::new().write(true).open(path).map_err(|e| JournalError::io("open segment", path, e))?;
    io.op(Step::Truncate, || f.set_len(len)).map_err(|e| JournalError::io("truncate segment", path, e))?;
    io.sync_data(Step::TruncateSync, &f).map_err(|e| JournalError::io("fdatasync", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(seqs: &[u64]) -> (Vec<u8>, Vec<usize>) {
        let mut buf = SegmentHeader { epoch: 1, first_seq: seqs[0], created_at: 0, codec_tag: 0 }.encode().to_vec();
        let mut offs = Vec::new();
        for &s in seqs {
            offs.push(buf.len());
            format::encode_frame(&mut buf, s, s * 10, &vec![s as u8; (s as usize * 7) % 50]);
        }
        (buf, offs)
    }

    #[test]
    fn clean_segment_scans_to_the_end() {
        let (buf, _) = image(&[5, 6, 7]);
        let s = scan(&buf, 5);
        assert_eq!((s.valid_end, s.next_seq, s.records), (buf.len(), 8, 3));
        assert!(s.damage.is_none());
    }

    #[test]
    fn damage_in_the_middle_finds_the_runs_after_it() {
        let (mut buf, offs) = image(&[1, 2, 3, 4, 5, 6]);
        buf[offs[2] + 30] ^= 0x40; // frame 3's payload or crc region
        buf[offs[2] + 4] ^= 1;
        let s = scan(&buf, 1);
        let d = s.damage.expect("damage");
        assert_eq!(d.offset, offs[2]);
        assert_eq!(d.runs, vec![Run { start: offs[3], end: buf.len(), first_seq: 4, last_seq: 6 }]);
        assert!(!d.is_torn_tail());
    }

    #[test]
    fn a_cut_last_frame_is_a_torn_tail() {
        let (buf, offs) = image(&[1, 2, 3]);
        for cut in offs[2] + 1..buf.len() {
            let s = scan(&buf[..cut], 1);
            let d = s.damage.expect("damage");
            assert!(d.is_torn_tail(), "cut {cut}");
            assert_eq!((d.offset, s.next_seq), (offs[2], 3));
        }
    }
}
