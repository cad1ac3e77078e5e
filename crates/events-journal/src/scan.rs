//! The frame walk that recovery, `verify` and the rebuilds share, and the
//! damage rules the reader applies where a sealed segment ends: [`scan`] walks the frames of one segment image, [`runs_after`]
//! finds the valid frames that follow a damaged one (what tells a torn tail
//! from corruption in the middle), [`overlap`] checks a segment's last frame
//! against the next segment's name, and [`Damage::classify`] says what a
//! damage means next to the segment that follows.
//!
//! Invariant: pure functions over bytes: nothing here touches a file, so
//! every decision recovery makes can be tested on an image in memory.

use crate::format::{self, FRAME_HEADER_LEN, FrameCheck, HEADER_LEN};

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
    /// True when the search for valid frames after it stopped at its
    /// budget ([`search_budget`]) before the end: what follows is not
    /// known, so it is never taken for a torn tail.
    pub(crate) search_stopped: bool,
}

impl Damage {
    /// A torn tail: nothing valid follows the damage.
    pub(crate) fn is_torn_tail(&self) -> bool {
        self.runs.is_empty() && !self.crc_valid && !self.search_stopped
    }

    /// The damage at `offset` (`reason`; `crc_valid` for a valid frame
    /// out of order), with the runs of valid frames after it that start
    /// before `starts_before`.
    fn searching(
        buf: &[u8],
        offset: usize,
        mut reason: String,
        crc_valid: bool,
        expected: u64,
        starts_before: usize,
    ) -> Self {
        let (runs, search_stopped) = runs_after(buf, offset, expected.saturating_sub(1), starts_before);
        if search_stopped {
            reason.push_str(
                "; the search for valid frames after it stopped at its budget (a crafted or badly damaged file)",
            );
        }
        Damage { offset, reason, crc_valid, runs, search_stopped }
    }
}

/// How many bytes one search for valid frames after damage may hash:
/// four times the image, plus 64 MiB. Over garbage the cheap length and
/// seq checks reject nearly every offset before its CRC; an image whose
/// every offset passes them (a plausible frame header every 24 bytes, each
/// claiming a 16 MiB frame) would otherwise cost a 16 MiB CRC per offset:
/// hours for one segment, at every open, `verify` and reader poll.
pub(crate) fn search_budget(len: usize) -> usize {
    len.saturating_mul(4).saturating_add(64 << 20)
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
    scan_searching(buf, first_seq, buf.len())
}

/// [`scan`], whose search for valid frames after damage looks only for
/// frames that start before `search_end` (past it, the caller knows, are
/// only zeros, holes of a sparse file, where no frame starts), each read
/// whole from `buf`, while the walk of the valid frames goes as far as they
/// do. A file of any length then costs what it holds.
pub(crate) fn scan_searching(buf: &[u8], first_seq: u64, search_end: usize) -> Scan {
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
    let damage = damage.map(|(reason, crc_valid)| Damage::searching(buf, off, reason, crc_valid, expected, search_end));
    Scan { valid_end: off, next_seq: expected, records, damage }
}

/// The last seq of the contiguous valid records of a sealed segment image
/// (header included) when they reach `next_first`, the name of the
/// segment after it: the two overlap. Cheap in the normal case, where the
/// last frame, found from the end, carries a seq below `next_first`;
/// otherwise the segment is walked. Past `search_end` are only holes
/// (see [`scan_searching`]): the last frame starts before it.
pub(crate) fn overlap(buf: &[u8], first_seq: u64, next_first: u64, search_end: usize) -> Option<u64> {
    let frames = buf.get(HEADER_LEN..).filter(|f| !f.is_empty())?;
    let starts_before = search_end.saturating_sub(HEADER_LEN);
    if format::last_frame_seq_before(frames, starts_before).is_some_and(|seq| seq < next_first) {
        return None;
    }
    let mut off = HEADER_LEN;
    let mut expected = first_seq;
    while let FrameCheck::Valid { seq, payload, .. } = format::check_frame(buf, off) {
        if seq != expected {
            break;
        }
        off = payload.end;
        expected += 1;
    }
    let last = expected - 1;
    (last >= next_first && expected > first_seq).then_some(last)
}

/// The damage at `off` of a segment image, where the frame of seq
/// `expected` was due and is not a valid frame carrying it (for a reader
/// that stopped there), searching for valid frames that start before
/// `search_end` (see [`scan_searching`]).
pub(crate) fn damage_at(buf: &[u8], off: usize, expected: u64, search_end: usize) -> Damage {
    let (reason, crc_valid) = match format::check_frame(buf, off) {
        FrameCheck::Valid { seq, .. } => (format!("seq {seq} where {expected} was expected"), true),
        FrameCheck::Incomplete => ("frame runs past the end of the file".to_owned(), false),
        FrameCheck::BadCrc => ("frame checksum mismatch".to_owned(), false),
    };
    Damage::searching(buf, off, reason, crc_valid, expected, search_end)
}

/// What follows a damaged frame of a sealed segment, next to the segment
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing valid follows: a torn tail (the segment lost its unsynced
    /// end in a power loss). Open cuts it; readers treat it as the end.
    Torn,
    /// Every valid frame after the damage carries a seq at or above the
    /// next segment's name: a salvage or repair already copied them into
    /// later segments and was interrupted before it replaced this one.
    /// Open finishes it; readers treat the damage as the end.
    Superseded,
    /// Valid frames below the next segment's name follow: corruption in the
    /// middle. Readers report it; `RecoveryMode::Repair` repairs it.
    Corrupt,
}

impl Damage {
    /// What this damage is in a sealed segment followed by one starting at `next_first`.
    pub(crate) fn classify(&self, next_first: u64) -> Tail {
        if self.search_stopped {
            Tail::Corrupt
        } else if self.runs.is_empty() {
            if self.crc_valid { Tail::Corrupt } else { Tail::Torn }
        } else if self.runs.iter().all(|r| r.first_seq >= next_first) {
            Tail::Superseded
        } else {
            Tail::Corrupt
        }
    }
}

impl Damage {
    /// Whether later segments hold every run after the damage, as an
    /// interrupted rebuild's pieces: each run in a segment named by its
    /// first seq (`listed`), or following on from the run before it (the
    /// rebuild writes the two as one piece). A piece not renamed in yet is
    /// held by no listed segment.
    pub(crate) fn held_by(&self, listed: impl Fn(u64) -> bool) -> bool {
        let mut before: Option<u64> = None;
        self.runs.iter().all(|run| {
            let held = listed(run.first_seq) || before.is_some_and(|last| last.saturating_add(1) == run.first_seq);
            before = Some(run.last_seq);
            held
        })
    }
}

/// The contiguous runs of valid frames at or after `from` whose seqs exceed
/// `after_seq`, in file order, the first frame of each starting before
/// `starts_before`, and whether the search stopped at its budget before
/// the end.
pub(crate) fn runs_after(buf: &[u8], from: usize, after_seq: u64, starts_before: usize) -> (Vec<Run>, bool) {
    let mut runs = Vec::new();
    let mut off = from;
    let mut min_seq = after_seq.saturating_add(1);
    let mut budget = search_budget(starts_before.min(buf.len()));
    loop {
        let start = match find_valid(buf, off, min_seq, &mut budget, starts_before) {
            Ok(Some(start)) => start,
            Ok(None) => return (runs, false),
            Err(Spent) => return (runs, true),
        };
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
}

/// The search budget ran out.
struct Spent;

/// The first offset at or after `from` holding a CRC-valid frame with a
/// plausible seq: at least `min_seq`, and not further above it than the
/// number of frames that could fit between `from` and the offset. The cheap
/// length and seq checks keep this scan near-linear even over garbage; the
/// bytes a CRC is computed over come out of `budget`.
fn find_valid(
    buf: &[u8],
    from: usize,
    min_seq: u64,
    budget: &mut usize,
    starts_before: usize,
) -> Result<Option<usize>, Spent> {
    let Some(last) = buf.len().checked_sub(FRAME_HEADER_LEN) else { return Ok(None) };
    let Some(last_start) = starts_before.checked_sub(1) else { return Ok(None) };
    for p in from..=last.min(last_start) {
        let len = format::peek_len(buf, p);
        if len > buf.len() - p - FRAME_HEADER_LEN {
            continue;
        }
        let seq = format::peek_seq(buf, p);
        if seq < min_seq || seq - min_seq > ((p - from) / FRAME_HEADER_LEN) as u64 + 1 {
            continue;
        }
        *budget = budget.checked_sub(len + FRAME_HEADER_LEN).ok_or(Spent)?;
        if matches!(format::check_frame(buf, p), FrameCheck::Valid { .. }) {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::SegmentHeader;

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
        assert!(!d.is_torn_tail() && !d.search_stopped);
    }

    /// A plausible frame header every 24 bytes, each claiming a frame of
    /// half the image: every offset of the first half passes the cheap
    /// checks. The search stops at its budget (it had hashed ~87,000
    /// frames of 2 MiB), and the damage is corruption, never a torn tail.
    #[test]
    fn a_crafted_image_stops_the_search_at_its_budget() {
        const LEN: usize = 4 << 20;
        let mut buf = SegmentHeader { epoch: 1, first_seq: 1, created_at: 0, codec_tag: 0 }.encode().to_vec();
        let mut block = [0u8; FRAME_HEADER_LEN];
        block[0..4].copy_from_slice(&u32::try_from(LEN / 2).unwrap().to_le_bytes());
        block[8..16].copy_from_slice(&1u64.to_le_bytes());
        while buf.len() < LEN {
            buf.extend_from_slice(&block);
        }
        let s = scan(&buf, 1);
        let d = s.damage.expect("damage");
        assert!(d.search_stopped && !d.is_torn_tail(), "{d:?}");
        assert_eq!(d.classify(u64::MAX), Tail::Corrupt);
        assert!(d.reason.contains("stopped at its budget"), "{}", d.reason);
    }

    /// Every 4-byte offset claims a frame that ends the region exactly: the
    /// search from the end gives up at its budget (it had hashed half the
    /// region per offset, ~2 TB here) and says no frame ends it.
    #[test]
    fn a_crafted_tail_stops_the_search_for_the_last_frame() {
        const LEN: usize = 4 << 20;
        let mut region = vec![0u8; LEN];
        for p in (0..=LEN - FRAME_HEADER_LEN).step_by(4) {
            let claim = u32::try_from(LEN - p - FRAME_HEADER_LEN).unwrap();
            region[p..p + 4].copy_from_slice(&claim.to_le_bytes());
        }
        assert_eq!(format::last_frame_seq(&region), None);
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
