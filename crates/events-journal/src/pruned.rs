//! The pruned-segments summary: `<dir>/PRUNED`, a small CRC-protected file
//! in which retention records, before it removes a segment, that segment's
//! seq range and, for each key its records carried, the key's 64-bit hash
//! ([`key_hash`]) with the last seq of that key in the segment (from its
//! sidecar, `sidecar.rs`, or from an index built with
//! [`JournalOptions::index_key`](crate::JournalOptions::index_key) when the
//! sidecar is missing), or "unknown". It keeps only the last
//! [`PRUNED_MAX_SEGMENTS`] segments. The writer (`writer.rs`) calls
//! [`record`] from retention; a reader whose cursor fell below the earliest
//! retained seq asks [`PrunedLog::lacks`] whether the records it missed
//! could have held its key (the `events` façade uses it so that a client
//! filtered by stream id is reset only when events of its own stream were
//! pruned). The bytes are drawn in `docs/FORMAT.md`.
//!
//! Invariant: the summary only ever says "this key was not in these seqs"
//! when that is true. It is written (temporary file, `fsync`, rename) before
//! the segments it describes are removed, so a removal is never ahead of
//! its summary (a roll's or `prune_deferred`'s pass renames it into place
//! unsynced and the sealer thread fsyncs it: a power loss before that may
//! leave it older or damaged, which says nothing); a segment whose keys are not known for certain is recorded
//! as unknown; a file that is missing, damaged (magic, version, CRC,
//! layout) or of another epoch says nothing, so the reader resets as it
//! would without it. A hash collision can only make it answer "maybe
//! there", never "not there".

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sidecar::{IndexEntry, SegmentIndex, Sidecar, sidecar_path};

pub use crate::segment::PRUNED_FILE;
/// The first 8 bytes of the file.
pub const PRUNED_MAGIC: [u8; 8] = [0x89, b'E', b'V', b'P', b'\r', b'\n', 0x1a, b'\n'];
/// The format version this build writes and reads.
pub const PRUNED_VERSION: u16 = 1;
/// Length of the header in bytes.
pub const PRUNED_HEADER_LEN: usize = 32;
/// Length of an entry's fixed part (before its hashes) in bytes.
pub const PRUNED_ENTRY_LEN: usize = 24;
/// How many removed segments the summary remembers (the newest ones).
pub const PRUNED_MAX_SEGMENTS: usize = 32;
/// A removed segment with more distinct keys than this is recorded as
/// unknown, which bounds the file to about 512 KiB.
pub const PRUNED_MAX_KEYS: usize = 1024;
/// The longest summary the format allows: every segment with every key.
pub(crate) const PRUNED_MAX_BYTES: u64 =
    (PRUNED_HEADER_LEN + PRUNED_MAX_SEGMENTS * (PRUNED_ENTRY_LEN + PRUNED_MAX_KEYS * 16)) as u64;
/// The key count of an entry whose keys are unknown.
const UNKNOWN: u32 = u32::MAX;

/// The 64-bit hash the summary stores for a key: FNV-1a, fixed forever
/// (it is on disk), independent of the platform and the build.
pub fn key_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// One removed segment, as the summary remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunedSegment {
    /// The segment's first seq.
    pub first_seq: u64,
    /// The last seq of its range: the seq before the next segment's first
    /// (a seq in the range with no record is a seq no record has).
    pub last_seq: u64,
    /// For each [`key_hash`] of its records' keys, sorted by hash and
    /// unique, the last seq of a record with that hash in the segment;
    /// `None` when they are not known.
    pub keys: Option<Vec<(u64, u64)>>,
}

/// The summary read from `<dir>/PRUNED` and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunedLog {
    /// The epoch of the journal it describes.
    pub epoch: u64,
    /// The remembered segments, oldest first.
    pub segments: Vec<PrunedSegment>,
}

impl PrunedLog {
    /// Reads `<dir>/PRUNED`; `None` when it is missing, damaged in any way
    /// (which is logged at debug level: the caller then knows nothing, as
    /// without a summary).
    pub fn read(dir: &Path) -> Option<PrunedLog> {
        let path = dir.join(PRUNED_FILE);
        let bytes = match crate::own_file::read_regular(&path, PRUNED_MAX_BYTES) {
            Ok(bytes) => bytes,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::debug!(path = %path.display(), error = %e, "pruned summary unreadable");
                }
                return None;
            }
        };
        let decoded = Self::decode(&bytes);
        if let Err(reason) = &decoded {
            tracing::debug!(path = %path.display(), reason, "pruned summary damaged; ignored");
        }
        decoded.ok()
    }

    /// Decodes the file's bytes; `Err` names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<PrunedLog, &'static str> {
        if bytes.len() < PRUNED_HEADER_LEN {
            return Err("shorter than its header");
        }
        if bytes[0..8] != PRUNED_MAGIC {
            return Err("bad magic");
        }
        if u16::from_le_bytes([bytes[8], bytes[9]]) != PRUNED_VERSION {
            return Err("unsupported version");
        }
        let stored = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
        if crc(bytes) != stored {
            return Err("checksum mismatch");
        }
        let count = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
        let epoch = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let mut at = PRUNED_HEADER_LEN;
        let mut segments = Vec::with_capacity(count.min(PRUNED_MAX_SEGMENTS));
        for _ in 0..count {
            let fixed = bytes.get(at..at + PRUNED_ENTRY_LEN).ok_or("an entry runs past the end")?;
            let first_seq = u64::from_le_bytes(fixed[0..8].try_into().expect("8 bytes"));
            let last_seq = u64::from_le_bytes(fixed[8..16].try_into().expect("8 bytes"));
            let n = u32::from_le_bytes(fixed[16..20].try_into().expect("4 bytes"));
            at += PRUNED_ENTRY_LEN;
            let keys = if n == UNKNOWN {
                None
            } else {
                let len = (n as usize).checked_mul(16).ok_or("an entry runs past the end")?;
                let raw = bytes.get(at..at + len).ok_or("an entry runs past the end")?;
                at += len;
                let le = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
                let keys: Vec<(u64, u64)> = raw.chunks_exact(16).map(|c| (le(&c[..8]), le(&c[8..]))).collect();
                if !keys.windows(2).all(|w| w[0].0 < w[1].0) {
                    return Err("key hashes not sorted");
                }
                if keys.iter().any(|&(_, seq)| seq < first_seq || seq > last_seq) {
                    return Err("a key's last seq is outside its segment");
                }
                Some(keys)
            };
            if first_seq == 0 || last_seq < first_seq {
                return Err("an entry's seq range is empty");
            }
            if segments.last().is_some_and(|s: &PrunedSegment| s.last_seq >= first_seq) {
                return Err("entries overlap or are out of order");
            }
            segments.push(PrunedSegment { first_seq, last_seq, keys });
        }
        if at != bytes.len() {
            return Err("trailing bytes after the last entry");
        }
        Ok(PrunedLog { epoch, segments })
    }

    /// The file's bytes (see `docs/FORMAT.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(PRUNED_HEADER_LEN + self.segments.len() * PRUNED_ENTRY_LEN);
        b.extend_from_slice(&PRUNED_MAGIC);
        b.extend_from_slice(&PRUNED_VERSION.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&u32::try_from(self.segments.len()).unwrap_or(u32::MAX).to_le_bytes());
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.extend_from_slice(&[0u8; 8]); // 24..28 CRC, 28..32 reserved
        for s in &self.segments {
            b.extend_from_slice(&s.first_seq.to_le_bytes());
            b.extend_from_slice(&s.last_seq.to_le_bytes());
            let n = s.keys.as_ref().map_or(UNKNOWN, |k| u32::try_from(k.len()).unwrap_or(UNKNOWN));
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            for (hash, seq) in s.keys.iter().flatten() {
                b.extend_from_slice(&hash.to_le_bytes());
                b.extend_from_slice(&seq.to_le_bytes());
            }
        }
        let crc = crc(&b);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `true` only if this summary belongs to journal `epoch`, covers every
    /// seq of `from..=to` with segments whose keys are known, and in none
    /// of them a record with `key`'s hash has a seq at or after `from`:
    /// then no record with `key` had a seq in that range. An empty range
    /// (`from > to`) holds nothing. A key longer than
    /// [`MAX_SIDECAR_KEY`](crate::MAX_SIDECAR_KEY) is never indexed, so
    /// the summary cannot tell: `false`.
    pub fn lacks(&self, epoch: u64, key: &[u8], from: u64, to: u64) -> bool {
        if from > to {
            return true;
        }
        if epoch != self.epoch || key.len() > crate::MAX_SIDECAR_KEY {
            return false;
        }
        let hash = key_hash(key);
        let mut next = from; // the first seq of the range not yet covered
        for s in &self.segments {
            if s.last_seq < next {
                continue; // wholly before the range
            }
            if s.first_seq > next {
                return false; // a hole: seqs nobody remembers
            }
            let Some(keys) = &s.keys else { return false };
            if let Ok(i) = keys.binary_search_by_key(&hash, |&(h, _)| h)
                && keys[i].1 >= from
            {
                return false;
            }
            if s.last_seq >= to {
                return true;
            }
            next = s.last_seq + 1;
        }
        false
    }
}

/// The CRC of the file's bytes with the CRC field (24..28) as zeros.
fn crc(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..24]);
    h.update(&[0u8; 4]);
    h.update(&bytes[28..]);
    h.finalize()
}

/// Reads a record's key out of its payload, for summarising a segment that
/// has no usable sidecar: see [`JournalOptions::index_key`](crate::JournalOptions::index_key).
#[derive(Clone)]
pub(crate) struct KeyFn(pub(crate) std::sync::Arc<KeyReader>);

/// A function reading a key out of a payload (`None`: the record has none).
pub(crate) type KeyReader = dyn Fn(&[u8]) -> Option<Vec<u8>> + Send + Sync;

impl std::fmt::Debug for KeyFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyFn")
    }
}

/// What a segment about to be removed held: its keys from its sidecar if
/// that is valid and describes the segment, else from an index built with
/// `key_fn`, else unknown. `last_seq` is the seq before the next segment.
/// Unknown too when the segment's records end before `last_seq` (a power
/// loss's skip, a torn tail cut, a salvage): the seqs after them are a gap
/// whose keys nobody knows, and a summary saying "not there" for them
/// would let a filtered reader pass over its own lost records silently.
fn summarize(path: &Path, first_seq: u64, last_seq: u64, key_fn: Option<&KeyFn>) -> PrunedSegment {
    let last = |entries: &[IndexEntry]| entries.iter().map(|e| e.seq).max().unwrap_or(first_seq);
    let mut hashes: Option<Vec<(u64, u64)>> = None;
    match Sidecar::open(&sidecar_path(path)).and_then(|s| s.describes(path).map(|()| s)) {
        Ok(side) if side.first_seq() == first_seq && side.next_seq() == last_seq.saturating_add(1) => {
            hashes = Some(side.all().map(|(k, e)| (key_hash(k), last(&e))).collect());
        }
        _ => {
            if let Some(KeyFn(f)) = key_fn
                && let Ok(index) = SegmentIndex::build(path, |p| f(p))
                && !index.stopped_early
                && fs::metadata(path).is_ok_and(|m| m.len() == index.seg_len)
                && index.first_seq == first_seq
                && index.next_seq == last_seq.saturating_add(1)
            {
                hashes = Some(index.keys.iter().map(|(k, e)| (key_hash(k), last(e))).collect());
            }
        }
    }
    let keys = hashes.map(|mut keys| {
        // Two keys with one hash (a collision) keep the later seq: the
        // summary may then say "maybe", never a wrong "not there".
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        keys.dedup_by_key(|k| k.0);
        keys
    });
    let keys = keys.filter(|k| k.len() <= PRUNED_MAX_KEYS && k.iter().all(|&(_, seq)| seq <= last_seq));
    PrunedSegment { first_seq, last_seq, keys }
}

/// Records, before retention removes them, the segments `remove` (each
/// `(first_seq, path)`, oldest first; `next_first` is the first seq of the
/// segment after the last of them) in `<dir>/PRUNED`, keeping the newest
/// [`PRUNED_MAX_SEGMENTS`]. Best effort: a failure is logged and leaves the
/// previous file (or none), which only makes filtered readers reset when
/// they might not have had to. With `durable` unset the new file is renamed
/// into place without its fsync, which the caller runs later ([`sync`]):
/// readers in every process see it at once, and a power loss before that
/// fsync can only cost those resets (and a `verify` warning about a
/// damaged summary until the next prune rewrites it).
pub(crate) fn record(
    dir: &Path,
    epoch: u64,
    remove: &[(u64, PathBuf)],
    next_first: u64,
    key_fn: Option<&KeyFn>,
    durable: bool,
) {
    if remove.is_empty() {
        return;
    }
    let mut log =
        PrunedLog::read(dir).filter(|l| l.epoch == epoch).unwrap_or(PrunedLog { epoch, segments: Vec::new() });
    let first_new = remove[0].0;
    // A segment summarised before but whose removal failed is summarised again.
    log.segments.retain(|s| s.last_seq < first_new);
    for (i, (first, path)) in remove.iter().enumerate() {
        let next = remove.get(i + 1).map_or(next_first, |s| s.0);
        if next <= *first {
            tracing::warn!(path = %path.display(), "segments out of order; not summarising the pruned range");
            return;
        }
        log.segments.push(summarize(path, *first, next - 1, key_fn));
    }
    let excess = log.segments.len().saturating_sub(PRUNED_MAX_SEGMENTS);
    log.segments.drain(..excess);
    if let Err(e) = write_atomically(dir, &log.encode(), durable) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not write the pruned-segments summary; filtered readers of pruned ranges reset");
    }
}

/// Writes `bytes` as `<dir>/PRUNED` through a temporary file that is
/// fsynced (if `durable`) and renamed into place, so the file is the old
/// one or the new one, whole (after a power loss, only if `durable`). Plain `std` rather than the I/O seam: the summary is an
/// optimisation whose loss only costs resets, and keeping it out of the
/// seam leaves the step counts of existing fault plans unchanged. The
/// directory fsync that makes the rename durable is retention's own, after
/// it removes the segments.
fn write_atomically(dir: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let path = dir.join(PRUNED_FILE);
    let tmp = dir.join(format!("{PRUNED_FILE}.tmp"));
    let result = (|| {
        // Whatever a crash (or anyone) left under the name goes first: a
        // FIFO there would block the create, and with it the roll.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs `<dir>/PRUNED` (nothing to do when there is none): the other
/// half of [`record`] without `durable`. The rename needs the directory's
/// fsync too, which is the caller's.
pub(crate) fn sync(dir: &Path) -> std::io::Result<()> {
    match crate::own_file::open_regular(&dir.join(PRUNED_FILE)) {
        Ok(file) => file.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(segments: Vec<PrunedSegment>) -> PrunedLog {
        PrunedLog { epoch: 7, segments }
    }

    /// A segment whose keys are `(key, last seq)`.
    fn seg(first_seq: u64, last_seq: u64, keys: Option<&[(&str, u64)]>) -> PrunedSegment {
        let keys = keys.map(|k| {
            let mut h: Vec<(u64, u64)> = k.iter().map(|(k, seq)| (key_hash(k.as_bytes()), *seq)).collect();
            h.sort_unstable();
            h
        });
        PrunedSegment { first_seq, last_seq, keys }
    }

    #[test]
    fn round_trips_and_any_flipped_byte_is_refused() {
        let l = log(vec![seg(1, 10, Some(&[("a", 3), ("b", 10)])), seg(11, 20, None), seg(21, 30, Some(&[]))]);
        let bytes = l.encode();
        assert_eq!(PrunedLog::decode(&bytes), Ok(l));
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x20;
            assert!(PrunedLog::decode(&bad).is_err(), "byte {i}");
        }
        assert!(PrunedLog::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    /// Records whose key is longer than a sidecar holds are left out of
    /// the index, so a summary built from it knows nothing of them: it had
    /// said such a key was not there, and a filtered reader skipped its
    /// pruned records with no reset.
    #[test]
    fn a_key_longer_than_an_index_holds_is_never_said_to_be_absent() {
        let l = log(vec![seg(1, 10, Some(&[("a", 3)]))]);
        assert!(l.lacks(7, b"b", 1, 10));
        let long = vec![b'k'; crate::MAX_SIDECAR_KEY + 1];
        assert!(!l.lacks(7, &long, 1, 10));
        assert!(l.lacks(7, &long[..crate::MAX_SIDECAR_KEY], 1, 10));
    }

    #[test]
    fn lacks_needs_full_known_coverage_without_the_key() {
        let l = log(vec![
            seg(1, 10, Some(&[("a", 6), ("b", 2)])),
            seg(11, 20, Some(&[("b", 12)])),
            seg(31, 40, Some(&[("c", 40)])),
        ]);
        assert!(l.lacks(7, b"c", 1, 20));
        assert!(l.lacks(7, b"a", 11, 20));
        assert!(l.lacks(7, b"a", 15, 14), "an empty range");
        assert!(!l.lacks(7, b"a", 6, 20), "a was at 6");
        assert!(l.lacks(7, b"a", 7, 20), "a's last record in 1..=10 is before 7");
        assert!(l.lacks(7, b"b", 13, 20), "b's last record in 11..=20 is 12");
        assert!(!l.lacks(7, b"b", 12, 12));
        assert!(!l.lacks(7, b"c", 11, 31), "21..=30 is not remembered");
        assert!(!l.lacks(7, b"c", 31, 41), "41 is not covered");
        assert!(!l.lacks(8, b"z", 1, 10), "another epoch");
        let unknown = log(vec![seg(1, 10, None)]);
        assert!(!unknown.lacks(7, b"z", 2, 3));
    }

    #[test]
    fn a_segment_is_summarised_from_its_sidecar_or_its_records() {
        use crate::format::{self, SegmentHeader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{:020}.seg", 5));
        let mut b = SegmentHeader { epoch: 7, first_seq: 5, created_at: 1, codec_tag: 0 }.encode().to_vec();
        for (seq, key) in [(5, "a"), (6, "b"), (7, "a")] {
            format::encode_frame(&mut b, seq, 0, key.as_bytes());
        }
        fs::write(&path, &b).unwrap();
        let key_fn = KeyFn(std::sync::Arc::new(|p: &[u8]| Some(p.to_vec())));
        let built = summarize(&path, 5, 7, Some(&key_fn));
        assert_eq!(built, seg(5, 7, Some(&[("a", 7), ("b", 6)])));
        assert_eq!(summarize(&path, 5, 7, None).keys, None, "no sidecar, no key function");
        // The next segment starts at 10: seqs 8 and 9 are a gap nobody
        // knows the keys of.
        assert_eq!(summarize(&path, 5, 9, Some(&key_fn)).keys, None, "records end before the next segment");
        SegmentIndex::build(&path, |p| Some(p.to_vec())).unwrap().write(&path).unwrap();
        assert_eq!(summarize(&path, 5, 7, None), built, "from the sidecar");
        assert_eq!(summarize(&path, 5, 9, None).keys, None, "from the sidecar, records end before the next segment");
        let many: Vec<String> = (0..=PRUNED_MAX_KEYS).map(|i| format!("k{i}")).collect();
        let mut b = SegmentHeader { epoch: 7, first_seq: 5, created_at: 1, codec_tag: 0 }.encode().to_vec();
        for (i, key) in many.iter().enumerate() {
            format::encode_frame(&mut b, 5 + i as u64, 0, key.as_bytes());
        }
        fs::write(&path, &b).unwrap();
        assert_eq!(summarize(&path, 5, 4 + many.len() as u64, Some(&key_fn)).keys, None, "too many keys");
    }

    #[test]
    fn record_keeps_the_newest_segments_and_summarises_missing_sidecars_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let mut seq = 1;
        for _ in 0..PRUNED_MAX_SEGMENTS + 3 {
            let path = dir.path().join(format!("{seq:020}.seg"));
            record(dir.path(), 7, &[(seq, path)], seq + 5, None, true);
            seq += 5;
        }
        let l = PrunedLog::read(dir.path()).unwrap();
        assert_eq!(l.segments.len(), PRUNED_MAX_SEGMENTS);
        assert_eq!(l.segments.last().unwrap().last_seq, seq - 1);
        assert!(l.segments.iter().all(|s| s.keys.is_none()));
        // Another epoch starts afresh.
        record(dir.path(), 8, &[(seq, dir.path().join("x.seg"))], seq + 1, None, true);
        assert_eq!(PrunedLog::read(dir.path()).unwrap().segments.len(), 1);
    }
}
