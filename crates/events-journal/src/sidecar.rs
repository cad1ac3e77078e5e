//! Sidecar indexes: `<first_seq:020>.idx` beside `<first_seq:020>.seg`, a
//! small CRC-protected file mapping each *key* found in a sealed segment's
//! records to the seqs and byte offsets of those records. The journal stores
//! opaque payloads, so it does not know what a key is: the caller that
//! builds an index ([`SegmentIndex::build`]) passes a function that reads the
//! key out of a payload (the `events` façade reads the stream id). The bytes
//! are drawn in `docs/FORMAT.md`; `segment.rs` lists sidecars apart from
//! segments, `writer.rs` removes a segment's sidecar with it (and sweeps
//! orphans), `verify.rs` checks each sidecar against its segment, and
//! [`Reader::records_at`](crate::Reader::records_at) reads the records an
//! index points to.
//!
//! Invariant: a sidecar is a cache, never a source of truth. [`Sidecar::open`]
//! accepts a file only if its magic, version and CRC match, and
//! [`Sidecar::describes`] only if its epoch, first seq and segment length
//! match the segment file; every record read through an entry is checked
//! again (frame CRC and seq) by the reader. Anything else is rebuilt from
//! the segment by the caller.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::format::{self, FrameCheck, HEADER_LEN, SegmentHeader};

/// The extension of sidecar files: `<first_seq:020>.idx`.
pub const SIDECAR_EXT: &str = "idx";
/// The first 8 bytes of every sidecar.
pub const SIDECAR_MAGIC: [u8; 8] = [0x89, b'E', b'V', b'I', b'\r', b'\n', 0x1a, b'\n'];
/// The sidecar format version this build writes and reads.
pub const SIDECAR_VERSION: u16 = 1;
/// Length of the sidecar header in bytes.
pub const SIDECAR_HEADER_LEN: usize = 64;
/// The longest key a sidecar can hold (its length field is a `u16`).
pub const MAX_SIDECAR_KEY: usize = u16::MAX as usize;

/// The sidecar path of a segment path (`…/N.seg` → `…/N.idx`).
pub fn sidecar_path(segment: &Path) -> PathBuf {
    segment.with_extension(SIDECAR_EXT)
}

/// One indexed record: its seq and the byte offset of its frame in the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The record's seq.
    pub seq: u64,
    /// The offset of the record's frame in the segment file.
    pub offset: u64,
}

/// Why a sidecar cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SidecarError {
    /// The file cannot be read (`NotFound` when there is none).
    #[error("{path}: {source}")]
    Io {
        /// The sidecar.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// Bad magic, another version, a CRC mismatch or a malformed body.
    #[error("{path}: damaged sidecar: {reason}")]
    Damaged {
        /// The sidecar.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A valid sidecar of another segment state (rewritten by repair,
    /// another epoch, or still growing when it was written).
    #[error("{path}: stale sidecar: {reason}")]
    Stale {
        /// The sidecar.
        path: PathBuf,
        /// What differs from the segment.
        reason: String,
    },
}

/// The index of one segment, in memory: built from the segment (all of it,
/// or incrementally for the active segment) and written as its sidecar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentIndex {
    /// The segment's epoch (from its header).
    pub epoch: u64,
    /// The segment's first seq.
    pub first_seq: u64,
    /// The bytes of the segment covered: where the next frame starts.
    pub seg_len: u64,
    /// The seq after the last record covered.
    pub next_seq: u64,
    /// Records covered.
    pub records: u64,
    /// `true` when the walk stopped at a frame that is not valid (damage, a
    /// torn tail, or the active segment's unfinished write) rather than at
    /// the end of the bytes given.
    pub stopped_early: bool,
    /// Entries per key, each list in seq order.
    pub keys: BTreeMap<Vec<u8>, Vec<IndexEntry>>,
}

impl SegmentIndex {
    /// An empty index of a segment with `header`, covering nothing yet.
    pub fn new(header: &SegmentHeader) -> Self {
        SegmentIndex {
            epoch: header.epoch,
            first_seq: header.first_seq,
            seg_len: HEADER_LEN as u64,
            next_seq: header.first_seq,
            ..SegmentIndex::default()
        }
    }

    /// Indexes the whole segment file at `path` (read into memory, never
    /// mapped, so a file cut under it cannot fault), with `key` reading the
    /// key of a payload (`None`: the record has no key).
    ///
    /// # Errors
    ///
    /// [`SidecarError::Io`] if the file cannot be read, `Damaged` if its
    /// header is not a valid segment header.
    pub fn build(path: &Path, key: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> Result<Self, SidecarError> {
        let bytes = fs::read(path).map_err(|source| SidecarError::Io { path: path.to_path_buf(), source })?;
        let header = SegmentHeader::decode(&bytes).map_err(|e| SidecarError::Damaged {
            path: path.to_path_buf(),
            reason: format!("segment header: {e:?}"),
        })?;
        let mut index = SegmentIndex::new(&header);
        index.extend(&bytes[HEADER_LEN..], u64::MAX, key);
        Ok(index)
    }

    /// Indexes the frames of `more`, the bytes of the segment from
    /// [`seg_len`](Self::seg_len) on, up to and including seq `up_to`; stops
    /// at the first frame that is not complete and valid with the next seq
    /// (a later call can go on from there).
    pub fn extend(&mut self, more: &[u8], up_to: u64, mut key: impl FnMut(&[u8]) -> Option<Vec<u8>>) {
        let mut off = 0;
        self.stopped_early = false;
        while self.next_seq <= up_to && off < more.len() {
            match format::check_frame(more, off) {
                FrameCheck::Valid { seq, payload, .. } if seq == self.next_seq => {
                    if let Some(k) = key(&more[payload.clone()]).filter(|k| k.len() <= MAX_SIDECAR_KEY) {
                        let entry = IndexEntry { seq, offset: self.seg_len + off as u64 };
                        self.keys.entry(k).or_default().push(entry);
                    }
                    self.records += 1;
                    self.next_seq += 1;
                    off = payload.end;
                }
                FrameCheck::Incomplete if off == more.len() => break,
                _ => {
                    self.stopped_early = true;
                    break;
                }
            }
        }
        self.seg_len += off as u64;
    }

    /// The sidecar bytes of this index (see `docs/FORMAT.md`).
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self.keys.iter().map(|(k, v)| 2 + k.len() + 4 + 16 * v.len()).sum();
        let mut b = Vec::with_capacity(SIDECAR_HEADER_LEN + body);
        b.extend_from_slice(&SIDECAR_MAGIC);
        b.extend_from_slice(&SIDECAR_VERSION.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&u32::try_from(self.keys.len()).unwrap_or(u32::MAX).to_le_bytes());
        for v in [self.epoch, self.first_seq, self.next_seq, self.seg_len, self.records] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[0u8; 8]); // 56..60 CRC, 60..64 reserved
        for (k, entries) in &self.keys {
            b.extend_from_slice(&(k.len() as u16).to_le_bytes());
            b.extend_from_slice(k);
            b.extend_from_slice(&u32::try_from(entries.len()).unwrap_or(u32::MAX).to_le_bytes());
            for e in entries {
                b.extend_from_slice(&e.seq.to_le_bytes());
                b.extend_from_slice(&e.offset.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&b);
        b[56..60].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Writes this index as the sidecar of the segment at `segment`: to a
    /// temporary file renamed into place, so a reader sees the old file or
    /// the new one, never a mix. Not fsynced: a sidecar lost or torn by a
    /// crash is rebuilt. Writes of this process take turns: two threads
    /// rebuilding one sidecar (the writer's indexer and a read) share its
    /// temporary name, and the second rename would fail.
    ///
    /// # Errors
    ///
    /// [`SidecarError::Io`] if the file cannot be written or renamed.
    pub fn write(&self, segment: &Path) -> Result<(), SidecarError> {
        static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let path = sidecar_path(segment);
        let tmp = path.with_extension("idx.tmp");
        let io = |source| SidecarError::Io { path: path.clone(), source };
        let bytes = self.encode();
        let _one_at_a_time = WRITING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        fs::write(&tmp, bytes).map_err(io)?;
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(e)
        })
    }
}

/// A sidecar read from disk and checked (magic, version, CRC); its entries
/// are decoded on demand, one key at a time.
#[derive(Debug)]
pub struct Sidecar {
    path: PathBuf,
    bytes: Vec<u8>,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Sidecar {
    /// Reads and checks the sidecar at `path`.
    ///
    /// # Errors
    ///
    /// [`SidecarError::Io`] if it, or the segment beside it, cannot be read
    /// (`NotFound` when missing); [`SidecarError::Damaged`] if its magic,
    /// version, CRC or layout is wrong, or it counts more records than its
    /// segment can hold or is longer than its header's counts allow (both
    /// looked at before the rest is read).
    pub fn open(path: &Path) -> Result<Self, SidecarError> {
        let damaged = |reason: &str| SidecarError::Damaged { path: path.to_path_buf(), reason: reason.to_owned() };
        let io = |source| SidecarError::Io { path: path.to_path_buf(), source };
        // A regular file only: a FIFO under a sidecar's name would block the read.
        let file = crate::own_file::open_regular(path).map_err(io)?;
        let mut header = [0u8; SIDECAR_HEADER_LEN];
        match (&file).read_exact(&mut header) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(damaged("shorter than its header")),
            read => read.map_err(io)?,
        }
        if header[0..8] != SIDECAR_MAGIC {
            return Err(damaged("bad magic"));
        }
        if u16::from_le_bytes([header[8], header[9]]) != SIDECAR_VERSION {
            return Err(damaged("unsupported version"));
        }
        // No longer than its header allows, for the records its segment
        // can hold (a frame takes at least 24 bytes): each key takes at
        // most 6 bytes and 65,535 of key, each record 16 of entry. Read
        // whole before any check, a file of a terabyte under a sidecar's
        // name kept a read (a roll's retention, on the append path) going
        // for hours.
        let segment = path.with_extension("seg");
        let seg_len =
            fs::metadata(&segment).map_err(|source| SidecarError::Io { path: segment.clone(), source })?.len();
        let (keys, records) =
            (u64::from(u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"))), le_u64(&header, 48));
        if records > seg_len.saturating_sub(HEADER_LEN as u64) / format::FRAME_HEADER_LEN as u64 || keys > records {
            return Err(damaged("counts more records or keys than its segment can hold"));
        }
        let most = (SIDECAR_HEADER_LEN as u64)
            .saturating_add(keys.saturating_mul(6 + MAX_SIDECAR_KEY as u64))
            .saturating_add(records.saturating_mul(16));
        if file.metadata().map_err(io)?.len() > most {
            return Err(damaged("longer than its header allows"));
        }
        let mut bytes = header.to_vec();
        // What it held when looked at: one growing meanwhile is damaged too.
        (&file).take(most + 1 - SIDECAR_HEADER_LEN as u64).read_to_end(&mut bytes).map_err(io)?;
        let stored = u32::from_le_bytes(bytes[56..60].try_into().expect("4 bytes"));
        let mut h = crc32fast::Hasher::new();
        h.update(&bytes[..56]);
        h.update(&[0u8; 4]);
        h.update(&bytes[60..]);
        if h.finalize() != stored {
            return Err(damaged("checksum mismatch"));
        }
        let sidecar = Sidecar { path: path.to_path_buf(), bytes };
        // The layout must account for every byte, so a lookup never reads out of bounds.
        let mut at = SIDECAR_HEADER_LEN;
        for _ in 0..sidecar.key_count() {
            at = sidecar.skip(at).ok_or_else(|| damaged("a key runs past the end"))?.2;
        }
        if at != sidecar.bytes.len() {
            return Err(damaged("trailing bytes after the last key"));
        }
        Ok(sidecar)
    }

    /// How many keys it holds.
    pub fn key_count(&self) -> u32 {
        u32::from_le_bytes(self.bytes[12..16].try_into().expect("4 bytes"))
    }

    /// At `at`, one key: (key range, entries start, next key start).
    fn skip(&self, at: usize) -> Option<(std::ops::Range<usize>, usize, usize)> {
        let b = &self.bytes;
        let klen = u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize;
        let key = at + 2..at + 2 + klen;
        let count = u32::from_le_bytes(b.get(key.end..key.end + 4)?.try_into().ok()?) as usize;
        let entries = key.end + 4;
        let end = entries.checked_add(count.checked_mul(16)?)?;
        (end <= b.len()).then_some((key, entries, end))
    }

    /// The path it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The epoch recorded.
    pub fn epoch(&self) -> u64 {
        le_u64(&self.bytes, 16)
    }

    /// The segment's first seq recorded.
    pub fn first_seq(&self) -> u64 {
        le_u64(&self.bytes, 24)
    }

    /// The seq after the last record covered.
    pub fn next_seq(&self) -> u64 {
        le_u64(&self.bytes, 32)
    }

    /// The segment length covered.
    pub fn seg_len(&self) -> u64 {
        le_u64(&self.bytes, 40)
    }

    /// The records covered.
    pub fn records(&self) -> u64 {
        le_u64(&self.bytes, 48)
    }

    /// The entries of `key` (empty when the segment holds none). Only that
    /// key's entries are decoded. A key longer than [`MAX_SIDECAR_KEY`] is
    /// never indexed: its records are found by a scan of the segment only.
    pub fn entries(&self, key: &[u8]) -> Vec<IndexEntry> {
        let mut at = SIDECAR_HEADER_LEN;
        for _ in 0..self.key_count() {
            let Some((k, entries, end)) = self.skip(at) else { break };
            if self.bytes[k] == *key {
                return Self::decode_entries(&self.bytes[entries..end]);
            }
            at = end;
        }
        Vec::new()
    }

    fn decode_entries(bytes: &[u8]) -> Vec<IndexEntry> {
        bytes.chunks_exact(16).map(|c| IndexEntry { seq: le_u64(c, 0), offset: le_u64(c, 8) }).collect()
    }

    /// Every key, in key order, without decoding any entries.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = SIDECAR_HEADER_LEN;
        (0..self.key_count()).map_while(move |_| {
            let (key, _, end) = self.skip(at)?;
            at = end;
            Some(&self.bytes[key])
        })
    }

    /// Every key with its entries, in key order.
    pub fn all(&self) -> impl Iterator<Item = (&[u8], Vec<IndexEntry>)> + '_ {
        let mut at = SIDECAR_HEADER_LEN;
        (0..self.key_count()).map_while(move |_| {
            let (key, entries, end) = self.skip(at)?;
            at = end;
            Some((&self.bytes[key], Self::decode_entries(&self.bytes[entries..end])))
        })
    }

    /// Checks that this sidecar describes the segment file at `segment` as
    /// it is now: same epoch and first seq in the header, same length.
    ///
    /// # Errors
    ///
    /// [`SidecarError::Stale`] naming what differs; `Io` if the segment
    /// cannot be read.
    pub fn describes(&self, segment: &Path) -> Result<(), SidecarError> {
        let io = |source| SidecarError::Io { path: segment.to_path_buf(), source };
        let mut file = File::open(segment).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = [0u8; HEADER_LEN];
        file.read_exact(&mut head).map_err(io)?;
        let stale = |reason: String| Err(SidecarError::Stale { path: self.path.clone(), reason });
        let Ok(header) = SegmentHeader::decode(&head) else { return stale("the segment header is not valid".into()) };
        if header.epoch != self.epoch() || header.first_seq != self.first_seq() {
            return stale(format!("written for epoch {:#x} first seq {}", self.epoch(), self.first_seq()));
        }
        if len != self.seg_len() {
            return stale(format!("covers {} bytes of a {len}-byte segment", self.seg_len()));
        }
        Ok(())
    }
}

/// Best effort: removes the sidecar of the segment at `segment`, if any (a
/// leftover is swept later by [`sweep`]).
pub(crate) fn remove_for(segment: &Path) {
    match fs::remove_file(sidecar_path(segment)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %segment.display(), error = %e, "could not remove a segment's sidecar; it is swept later");
        }
    }
}

/// Removes the sidecars of `dir` whose segment is gone (named below
/// `first_seq`, the first retained seq): left by a crash during retention or
/// written by a reader while retention ran. Harmless until then, since a
/// sidecar is checked against its segment before use.
pub(crate) fn sweep(dir: &Path, first_seq: u64) {
    if let Ok(listing) = crate::segment::list(dir, false) {
        for (seq, path) in listing.sidecars.iter().filter(|(seq, _)| *seq < first_seq) {
            tracing::debug!(seq, path = %path.display(), "removing a sidecar whose segment is gone");
            let _ = fs::remove_file(path);
        }
    }
}

/// For `verify`: what is wrong with the sidecar of the sealed segment at
/// `segment` (whose bytes are `map` and whose undamaged records end before
/// `next_seq`), or `None` when it is absent or right. Every entry must point
/// at a valid frame with its seq, and the counts must match the segment's.
pub(crate) fn check(segment: &Path, map: &[u8], next_seq: u64) -> Option<String> {
    let side = match Sidecar::open(&sidecar_path(segment)) {
        Err(SidecarError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("{e} (rebuilt when needed)")),
        Ok(side) => side,
    };
    if let Err(e) = side.describes(segment) {
        return Some(format!("{e} (rebuilt when needed)"));
    }
    if side.next_seq() != next_seq {
        return Some(format!("sidecar ends before seq {} but the segment before {next_seq}", side.next_seq()));
    }
    let mut count = 0;
    for (_, entries) in side.all() {
        for e in entries {
            count += 1;
            let ok = usize::try_from(e.offset).is_ok_and(
                |off| matches!(format::check_frame(map, off), FrameCheck::Valid { seq, .. } if seq == e.seq),
            );
            if !ok {
                return Some(format!("sidecar entry for seq {} at offset {} is not that record", e.seq, e.offset));
            }
        }
    }
    (count > side.records()).then(|| format!("sidecar lists {count} entries for {} records", side.records()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(&str, u64)]) -> Vec<u8> {
        let header = SegmentHeader { epoch: 7, first_seq: records[0].1, created_at: 1, codec_tag: 0 };
        let mut b = header.encode().to_vec();
        for (key, seq) in records {
            format::encode_frame(&mut b, *seq, 0, key.as_bytes());
        }
        b
    }

    #[test]
    fn an_index_round_trips_and_any_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000000000000000005.seg");
        fs::write(&seg, segment(&[("a", 5), ("b", 6), ("a", 7)])).unwrap();
        let index = SegmentIndex::build(&seg, |p| Some(p.to_vec())).unwrap();
        assert_eq!((index.next_seq, index.records, index.stopped_early), (8, 3, false));
        index.write(&seg).unwrap();
        let side = Sidecar::open(&sidecar_path(&seg)).unwrap();
        side.describes(&seg).unwrap();
        assert_eq!(side.entries(b"a").iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 7]);
        assert_eq!(side.entries(b"a")[0].offset, HEADER_LEN as u64);
        assert!(side.entries(b"zz").is_empty());
        let good = index.encode();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(sidecar_path(&seg), &bad).unwrap();
            assert!(matches!(Sidecar::open(&sidecar_path(&seg)), Err(SidecarError::Damaged { .. })), "byte {i}");
        }
        fs::write(sidecar_path(&seg), &good[..good.len() - 1]).unwrap();
        assert!(matches!(Sidecar::open(&sidecar_path(&seg)), Err(SidecarError::Damaged { .. })));
    }

    #[test]
    fn a_sidecar_of_a_shorter_segment_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let seg = dir.path().join("00000000000000000001.seg");
        fs::write(&seg, segment(&[("a", 1)])).unwrap();
        SegmentIndex::build(&seg, |p| Some(p.to_vec())).unwrap().write(&seg).unwrap();
        fs::write(&seg, segment(&[("a", 1), ("b", 2)])).unwrap();
        let side = Sidecar::open(&sidecar_path(&seg)).unwrap();
        assert!(matches!(side.describes(&seg), Err(SidecarError::Stale { .. })));
    }
}
