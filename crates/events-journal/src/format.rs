//! Format version 1, byte for byte: the 64-byte segment header and the
//! `24 + N`-byte record frame (see `docs/FORMAT.md` for the diagrams). This is
//! the only file that knows field offsets (but for `crc.rs`, whose fast CRC
//! path relies on the length at `0..4` and the CRC at `4..8` and is held to
//! [`frame_crc`]'s definition by its tests); the writer, the reader,
//! recovery and `verify` all encode and parse through it.
//!
//! Invariant: a frame is accepted only if it lies entirely inside the bytes
//! given and its CRC-32 (over bytes `0..4` and `8..24+N`) matches, so a torn
//! or flipped frame can never be mistaken for a record.

use std::ops::Range;

/// The first 8 bytes of every segment. The high first byte and the CR LF /
/// Ctrl-Z / LF tail (PNG's trick) detect files mangled by text-mode transfers.
pub const MAGIC: [u8; 8] = [0x89, b'E', b'V', b'J', b'\r', b'\n', 0x1a, b'\n'];
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the segment header in bytes.
pub const HEADER_LEN: usize = 64;

/// Whether nothing but zeros follows the header in a segment's `bytes`: a
/// torn (or zeroed) header is an interrupted creation only then, since a
/// header is durable before any byte is written after it; with data after
/// it, it is damage.
pub(crate) fn only_zeros_after_header(bytes: &[u8]) -> bool {
    bytes.get(HEADER_LEN..).is_none_or(|rest| rest.iter().all(|&b| b == 0))
}

/// The highest seq a journal hands out: 2^63 - 1 (a billion appends a second
/// would take 292 years to get there). A segment named past it, or a lease or
/// checkpoint naming a seq past it, is not a journal's: the arithmetic on seqs
/// (the next one, a cursor's successor) never has to overflow.
pub const MAX_SEQ: u64 = u64::MAX >> 1;
/// Length of a frame's fixed part (length, CRC, seq, timestamp) in bytes.
pub const FRAME_HEADER_LEN: usize = 24;

/// The decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Random id of the journal directory, identical in every segment.
    pub epoch: u64,
    /// Seq of the segment's first record; equals the file name.
    pub first_seq: u64,
    /// When the segment was created, unix nanoseconds.
    pub created_at: u64,
    /// The payload codec tag chosen by the journal's user.
    pub codec_tag: u32,
}

/// Why 64 bytes are not a valid version-1 segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Short,
    /// The magic does not match.
    BadMagic,
    /// Another format version.
    UnsupportedVersion(u16),
    /// The header CRC does not match.
    Crc,
    /// CRC-valid, but a field holds a value version 1 forbids (header length,
    /// flags, reserved bytes).
    Invalid(&'static str),
}

impl SegmentHeader {
    /// Encodes the header into its 64 bytes, CRC included.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        // 12..16 flags: 0.
        b[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.created_at.to_le_bytes());
        b[40..44].copy_from_slice(&self.codec_tag.to_le_bytes());
        // 44..60 reserved: zero.
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header.
    ///
    /// The checks run in this order: length, magic, version, CRC, fields. The
    /// version is checked before the CRC because a future version may place
    /// its CRC elsewhere; a flipped bit in the version field therefore reads as
    /// an unsupported version, which is refused all the same.
    ///
    /// # Errors
    ///
    /// The first check that fails, as a [`HeaderError`].
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        if bytes.len() < HEADER_LEN {
            return Err(HeaderError::Short);
        }
        let b = &bytes[..HEADER_LEN];
        if b[0..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if crc32fast::hash(&b[0..60]) != le_u32(b, 60) {
            return Err(HeaderError::Crc);
        }
        if u16::from_le_bytes([b[10], b[11]]) as usize != HEADER_LEN {
            return Err(HeaderError::Invalid("header length is not 64"));
        }
        if le_u32(b, 12) != 0 {
            return Err(HeaderError::Invalid("unknown header flags"));
        }
        if b[44..60].iter().any(|&x| x != 0) {
            return Err(HeaderError::Invalid("reserved header bytes are not zero"));
        }
        Ok(SegmentHeader {
            epoch: le_u64(b, 16),
            first_seq: le_u64(b, 24),
            created_at: le_u64(b, 32),
            codec_tag: le_u32(b, 40),
        })
    }
}

/// True when `bytes` (shorter than a header) could be the beginning of a
/// header write that was interrupted: a prefix of the magic, or all zeros
/// (a file extended but never written). Anything else is foreign data.
pub(crate) fn is_torn_header(bytes: &[u8]) -> bool {
    if bytes.iter().all(|&b| b == 0) {
        return true;
    }
    bytes.len() < HEADER_LEN && bytes[..bytes.len().min(8)] == MAGIC[..bytes.len().min(8)]
}

/// Appends one frame for (`seq`, `ts`, `payload`) to `buf`.
///
/// The payload must be at most `u32::MAX` bytes; the writer enforces its own,
/// smaller limit before calling this.
#[inline]
pub fn encode_frame(buf: &mut Vec<u8>, seq: u64, ts: u64, payload: &[u8]) {
    let start = buf.len();
    let len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    buf.reserve(FRAME_HEADER_LEN + payload.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&ts.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = frame_crc(&buf[start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC-32 of a complete frame: bytes `0..4` and `8..`, skipping the CRC field.
#[inline]
pub fn frame_crc(frame: &[u8]) -> u32 {
    crate::crc::frame_crc(frame)
}

/// What lies at an offset of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// A complete frame whose CRC matches.
    Valid {
        /// The record's seq.
        seq: u64,
        /// The record's timestamp.
        ts: u64,
        /// Where the payload lies in the buffer.
        payload: Range<usize>,
    },
    /// The frame would run past the end of the buffer (or not even its fixed
    /// part fits).
    Incomplete,
    /// The frame fits but its CRC does not match.
    BadCrc,
}

/// How far ahead of the frame it checks [`check_frame`] asks the CPU to
/// load `buf`, and at most how much. A walk over bytes that are not in
/// cache (a segment read from the page cache) otherwise waits on memory
/// more than it computes CRCs: on one machine the per-frame walk took
/// 34–36 ns per 280-byte frame in memory against 11.5 ns in cache, and
/// 21–22.5 ns with this, as fast as crc32fast hashes the same bytes in one
/// call (`docs/BENCHMARKS.md`). A frame longer than this is a long linear
/// read, which the CPU's own prefetcher follows.
const PREFETCH_AHEAD: usize = 8 << 10;

/// Asks the CPU to load the bytes of `buf` in `from..from + len` (those
/// that exist) into its cache: a hint, which changes no result and cannot
/// fault.
#[inline(always)]
fn prefetch(buf: &[u8], from: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let to = from.saturating_add(len).min(buf.len());
        let mut at = from;
        while at < to {
            // SAFETY: SSE, which `_mm_prefetch` needs, is part of every
            // x86_64 CPU; `at < buf.len()` keeps the pointer inside `buf`,
            // and a prefetch reads nothing the program sees and cannot fault.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(buf.as_ptr().add(at).cast()) };
            at += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, from, len);
}

/// Parses the frame at `off` of `buf` (a whole segment file, header
/// included). It also asks the CPU to load the bytes from 8 KiB past the
/// frame's start, as many as the frame holds (at most 8 KiB), which the
/// next frames of a walk will need.
#[inline(always)]
pub fn check_frame(buf: &[u8], off: usize) -> FrameCheck {
    let Some(head) = off.checked_add(FRAME_HEADER_LEN).and_then(|end| buf.get(off..end)) else {
        return FrameCheck::Incomplete;
    };
    let len = le_u32(head, 0) as usize;
    let end = off + FRAME_HEADER_LEN + len;
    let Some(frame) = buf.get(off..end) else { return FrameCheck::Incomplete };
    prefetch(buf, off + PREFETCH_AHEAD, frame.len().min(PREFETCH_AHEAD));
    if frame_crc(frame) != le_u32(head, 4) {
        return FrameCheck::BadCrc;
    }
    FrameCheck::Valid { seq: le_u64(head, 8), ts: le_u64(head, 16), payload: off + FRAME_HEADER_LEN..end }
}

/// The seq of the valid frame that ends exactly where `region` ends, found
/// by searching backwards: frames carry their length at the front, so the
/// last one starts at the nearest offset whose length field reaches the
/// end and whose CRC matches. `region` must not include a segment header
/// (any suffix of a segment's frame area will do, so a caller can read
/// only the last few KiB of a file). `None` when no valid frame ends there
/// (a torn or damaged tail, or a last frame longer than `region`).
///
/// Each candidate offset costs one length comparison; the CRC is computed
/// only where the length fits, so the search is as cheap as reading the
/// last frame (and bounded by [`search_budget`](crate::scan::search_budget)
/// over a crafted region). A payload that itself ends in a byte-exact valid frame could
/// be mistaken for the last frame (the assumption `docs/FORMAT.md` states).
pub(crate) fn last_frame_seq(region: &[u8]) -> Option<u64> {
    last_frame_seq_before(region, region.len())
}

/// [`last_frame_seq`], for a last frame that starts before `starts_before`
/// (where the data of a sparse file ends: only holes follow, each offset
/// of which would otherwise be tried).
pub(crate) fn last_frame_seq_before(region: &[u8], starts_before: usize) -> Option<u64> {
    let end = region.len();
    let last = end.checked_sub(FRAME_HEADER_LEN)?.min(starts_before.checked_sub(1)?);
    // A crafted region whose every offset claims to end the file would cost
    // a CRC of its whole rest per offset: past the budget, `None` (the
    // callers then walk the segment from its start).
    let mut budget = crate::scan::search_budget(end);
    for p in (0..=last).rev() {
        if peek_len(region, p) != end - p - FRAME_HEADER_LEN {
            continue;
        }
        budget = budget.checked_sub(end - p)?;
        if let FrameCheck::Valid { seq, .. } = check_frame(region, p) {
            return Some(seq);
        }
    }
    None
}

/// The seq field of the frame at `off`, without any check (the frame's fixed
/// part must fit).
#[inline]
pub(crate) fn peek_seq(buf: &[u8], off: usize) -> u64 {
    le_u64(buf, off + 8)
}

/// The timestamp field of the frame at `off`, without any check (the
/// frame's fixed part must fit).
#[inline]
pub(crate) fn peek_ts(buf: &[u8], off: usize) -> u64 {
    le_u64(buf, off + 16)
}

/// The length field of the frame at `off`, without any check.
#[inline]
pub(crate) fn peek_len(buf: &[u8], off: usize) -> usize {
    le_u32(buf, off) as usize
}

#[inline]
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

#[inline]
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_every_bit_flip_is_refused() {
        let h = SegmentHeader { epoch: 0xdead_beef, first_seq: 42, created_at: 7, codec_tag: 3 };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for bit in 0..HEADER_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(SegmentHeader::decode(&b).is_err(), "flip of bit {bit} accepted");
        }
    }

    #[test]
    fn frames_longer_and_shorter_than_the_prefetch_distance_check_alike_and_no_offset_overflows() {
        // Frames from 1 byte to three prefetch distances long, so that the
        // prefetch lands inside the buffer, across its end and past it.
        let lens = [1, 300, PREFETCH_AHEAD - 30, PREFETCH_AHEAD, 3 * PREFETCH_AHEAD, 50];
        let mut buf = vec![0u8; HEADER_LEN];
        let mut want = Vec::new();
        for (i, &len) in lens.iter().cycle().take(30).enumerate() {
            let payload: Vec<u8> = (0..len).map(|j| (i * 13 + j) as u8).collect();
            encode_frame(&mut buf, i as u64 + 1, 7, &payload);
            want.push(payload);
        }
        let mut off = HEADER_LEN;
        for (i, payload) in want.iter().enumerate() {
            let FrameCheck::Valid { seq, payload: range, .. } = check_frame(&buf, off) else { panic!("frame {i}") };
            assert_eq!((seq, &buf[range.clone()]), (i as u64 + 1, payload.as_slice()));
            off = range.end;
        }
        assert_eq!(off, buf.len());
        // Offsets where no frame header fits, up to the end of memory.
        for off in [buf.len(), buf.len() + 1, usize::MAX - FRAME_HEADER_LEN, usize::MAX - 1, usize::MAX] {
            assert_eq!(check_frame(&buf, off), FrameCheck::Incomplete, "offset {off}");
        }
        assert_eq!(check_frame(&[], 0), FrameCheck::Incomplete);
        // The hint's own edges: ranges past the end, empty or unbounded.
        for (from, len) in [(0, usize::MAX), (buf.len() - 1, usize::MAX), (usize::MAX, usize::MAX), (usize::MAX, 0)] {
            prefetch(&buf, from, len);
            prefetch(&[], from, len);
        }
    }

    #[test]
    fn frame_round_trips_and_every_bit_flip_is_refused() {
        let mut buf = vec![0u8; 5];
        encode_frame(&mut buf, 9, 11, b"hello journal");
        assert_eq!(check_frame(&buf, 5), FrameCheck::Valid { seq: 9, ts: 11, payload: 29..42 });
        for bit in 0..(buf.len() - 5) * 8 {
            let mut b = buf.clone();
            b[5 + bit / 8] ^= 1 << (bit % 8);
            assert!(!matches!(check_frame(&b, 5), FrameCheck::Valid { .. }), "flip of bit {bit} accepted");
        }
        for cut in 5..buf.len() {
            assert_eq!(check_frame(&buf[..cut], 5), FrameCheck::Incomplete);
        }
    }

    #[test]
    fn the_last_frame_is_found_from_the_end_and_a_torn_one_is_not() {
        let mut buf = Vec::new();
        for seq in 5..=9 {
            encode_frame(&mut buf, seq, seq, &vec![seq as u8; seq as usize * 11]);
        }
        assert_eq!(last_frame_seq(&buf), Some(9));
        // Any suffix that holds the whole last frame will do.
        let last_len = FRAME_HEADER_LEN + 99;
        assert_eq!(last_frame_seq(&buf[buf.len() - last_len..]), Some(9));
        assert_eq!(last_frame_seq(&buf[buf.len() - last_len + 1..]), None);
        for cut in 1..last_len {
            assert_eq!(last_frame_seq(&buf[..buf.len() - cut]), None, "cut {cut}");
        }
        assert_eq!(last_frame_seq(&[]), None);
    }

    #[test]
    fn torn_header_prefixes_are_recognised_and_foreign_bytes_are_not() {
        let bytes = SegmentHeader { epoch: 1, first_seq: 1, created_at: 1, codec_tag: 0 }.encode();
        for cut in 0..HEADER_LEN {
            assert!(is_torn_header(&bytes[..cut]), "cut {cut}");
        }
        assert!(is_torn_header(&[0u8; 100]));
        assert!(!is_torn_header(b"hello"));
        assert!(!is_torn_header(&bytes));
    }
}
