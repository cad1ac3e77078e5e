//! The per-stream index, the journal side of the façade: which records of
//! one segment belong to a stream. A record's payload starts with its stream
//! id (`payload.rs`), read here with `payload::stream_id` without decoding
//! the event, and handed to the journal's generic [`SegmentIndex`] as the
//! key. Sealed segments are indexed by their sidecar (`<first_seq>.idx`, the
//! bytes in `docs/FORMAT.md`); the active segment by an in-memory index kept
//! in [`ActiveIndex`] and extended from where it stopped. The writer has the
//! sealed segments indexed on a thread of its own after each roll
//! ([`index_sealed_in_background`]); a read builds what is still missing. `stream_read.rs`
//! asks this file for the entries of one stream in one segment and reads
//! them with `Reader::records_at`.
//!
//! Invariant: an index is never trusted over its segment. A sidecar that is
//! missing, damaged or stale (another length, epoch or first seq) is rebuilt
//! from the segment (with a `warn!` unless it was merely missing); the
//! active index only covers acknowledged records (never past the `limit`
//! the caller passes), so a batch the writer cuts back is never indexed; and
//! `stream_read.rs` checks again every record an entry points to.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use events_core::Codec;
use events_journal::{IndexEntry, Reader, SegmentIndex, Sidecar, SidecarError, sidecar_path};
use parking_lot::Mutex;

use crate::key_filter::KeyFilter;
use crate::{Error, Result};

/// The longest stream id the feed accepts, in bytes: an append, record or
/// session event with a longer one is refused with
/// [`Error::StreamIdTooLong`](crate::Error::StreamIdTooLong), and so is
/// `read_stream` for one.
pub const MAX_STREAM_ID_BYTES: usize = 256;

/// Refuses a stream id over [`MAX_STREAM_ID_BYTES`].
pub(crate) fn check_stream_id(id: &str) -> Result<()> {
    if id.len() > MAX_STREAM_ID_BYTES {
        return Err(Error::StreamIdTooLong { len: id.len(), limit: MAX_STREAM_ID_BYTES });
    }
    Ok(())
}

/// The key of a payload: its stream id's bytes (`None`: no stream id, or a
/// payload that is not a façade encoding). Through `payload::stream_id`,
/// which skips a schema-version header and knows how each codec lays out
/// the `(stream, event)` pair.
pub(crate) fn key_of<C: Codec>(codec: &C, payload: &[u8]) -> Option<Vec<u8>> {
    crate::payload::stream_id(codec, payload).ok().flatten().map(|id| id.as_str().as_bytes().to_vec())
}

/// The in-memory index of the newest segment, shared by every handle of a
/// feed (it lives in `Shared`), with the inode of the file it describes.
#[derive(Debug, Default)]
pub(crate) struct ActiveIndex {
    index: Mutex<Option<(u64, SegmentIndex)>>,
}

impl ActiveIndex {
    /// The entries of `key` in the active segment at `path` (first seq
    /// `first_seq`) up to seq `limit`, extending the cached index first with
    /// the acknowledged records appended since it was last extended; `None`
    /// when a frame below `limit` is not valid (damage in acknowledged
    /// records): the index then knows nothing past it, and the caller reads
    /// the segment itself, whose reader reports the damage. Its entries had
    /// been taken as the whole segment's: a per-stream read ended before the
    /// damage with no error, and a version check passed on a stale version.
    pub(crate) fn entries<C: Codec>(
        &self,
        reader: &events_journal::Reader,
        codec: &C,
        path: &Path,
        first_seq: u64,
        key: &[u8],
        limit: u64,
    ) -> Result<Option<Vec<IndexEntry>>> {
        let mut file = open(path)?;
        let header = read_header(&mut file, path)?;
        let meta = file.metadata().map_err(|e| io_error("stat segment", path, e))?;
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        let mut slot = self.index.lock();
        let (_, index) = match slot.take() {
            // The file indexed before, grown or not. Another first seq (the
            // previous active segment, now sealed, has its sidecar built from
            // the file), another epoch or inode (the directory recreated, a
            // repair), or a shorter file: another file, start again.
            Some((was, index))
                if (was, index.first_seq, index.epoch) == (ino, first_seq, header.epoch)
                    && meta.len() >= index.seg_len =>
            {
                slot.insert((was, index))
            }
            _ => slot.insert((ino, SegmentIndex::new(&header))),
        };
        if index.next_seq <= limit {
            // No further than the watermark when it covers `limit`: past it
            // a writer under `Always` keeps zeros it reserved ahead.
            let end = reader
                .watermark()
                .ok()
                .flatten()
                .filter(|wm| wm.segment == first_seq && wm.seq >= limit)
                .map_or(u64::MAX, |wm| wm.offset);
            let more = read_from(&mut file, path, index.seg_len, end)?;
            index.extend(&more, limit, |p| key_of(codec, p));
            if index.stopped_early && index.next_seq <= limit {
                return Ok(None);
            }
        }
        Ok(Some(index.keys.get(key).cloned().unwrap_or_default()))
    }
}

impl ActiveIndex {
    /// Forgets the cached index (it is rebuilt by the next read).
    pub(crate) fn clear(&self) {
        *self.index.lock() = None;
    }
}

fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Journal(events_journal::JournalError::Io { op, path: path.to_path_buf(), source })
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| io_error("open segment", path, e))
}

fn read_header(file: &mut std::fs::File, path: &Path) -> Result<events_journal::format::SegmentHeader> {
    use std::io::Read;
    let mut head = [0u8; events_journal::format::HEADER_LEN];
    file.read_exact(&mut head).map_err(|e| io_error("read segment header", path, e))?;
    // The error the journal's own reads give for the same header.
    events_journal::format::SegmentHeader::decode(&head)
        .map_err(|e| Error::Journal(events_journal::JournalError::from_header(path, e)))
}

/// The bytes of `file` from `offset` to `end` or its end, read (not
/// mapped: the writer may cut back an unacknowledged tail under us).
fn read_from(file: &mut std::fs::File, path: &Path, offset: u64, end: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| io_error("read segment", path, e);
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut out = Vec::new();
    file.take(end.saturating_sub(offset)).read_to_end(&mut out).map_err(io)?;
    Ok(out)
}

/// Builds the missing sidecars of the sealed segments on a thread of its
/// own, so that sealing costs the writer nothing: called by the writer
/// after a roll. At most one such thread runs per feed; it looks again
/// until a pass finds nothing new, so a roll while it runs is not missed
/// (and a read builds whatever is still missing).
pub(crate) fn index_sealed_in_background<C: Codec>(
    indexing: &Arc<AtomicBool>,
    reader: &Reader,
    codec: &C,
) -> Option<std::thread::JoinHandle<()>> {
    if indexing.swap(true, Ordering::AcqRel) {
        return None;
    }
    let (flag, reader, codec) = (Arc::clone(indexing), reader.clone(), codec.clone());
    let spawned = std::thread::Builder::new().name("events-index".into()).spawn(move || {
        let mut tried = std::collections::HashSet::new();
        loop {
            while index_missing(&reader, &codec, &mut tried) > 0 {}
            flag.store(false, Ordering::Release);
            // A roll that saw the flag still set just before it was cleared.
            if index_missing(&reader, &codec, &mut tried) == 0 || flag.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    });
    if spawned.is_err() {
        indexing.store(false, Ordering::Release);
    }
    spawned.ok()
}

/// One pass: builds the sidecar of every sealed segment that has none and
/// was not tried before; returns how many it tried.
fn index_missing<C: Codec>(reader: &Reader, codec: &C, tried: &mut std::collections::HashSet<u64>) -> usize {
    let Ok(segments) = reader.segments() else { return 0 };
    let sealed = &segments[..segments.len().saturating_sub(1)];
    let mut count = 0;
    for (first, path) in sealed {
        if sidecar_path(path).exists() || !tried.insert(*first) {
            continue;
        }
        count += 1;
        if let Err(e) = sealed_index(codec, path, true, true) {
            let error = crate::error_chain(&e);
            tracing::debug!(segment = %path.display(), error, "indexing a sealed segment failed; a read rebuilds it");
        }
    }
    count
}

/// Where a sealed segment's entries came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Its sidecar, checked against the segment.
    Sidecar,
    /// Built from the segment just now.
    Built,
}

/// The entries of `key` in the sealed segment at `path`: from its sidecar
/// when that is valid and describes the segment, else from an index built
/// from the segment (written as the new sidecar when `persist`). `None`
/// when the segment cannot be indexed in full (damage, a torn tail): the
/// caller then scans it.
pub(crate) fn sealed_entries<C: Codec>(
    codec: &C,
    path: &Path,
    key: &[u8],
    persist: bool,
    force_rebuild: bool,
) -> Result<Option<(Vec<IndexEntry>, Origin)>> {
    Ok(sealed_index(codec, path, persist, force_rebuild)?.map(|index| (index.entries(key), index.origin())))
}

/// The per-stream index of a sealed segment, as [`sealed_index`] found it.
pub(crate) enum SealedIndex {
    /// Its sidecar, checked against the segment.
    Sidecar(Sidecar),
    /// Built from the segment just now.
    Built(SegmentIndex),
}

impl SealedIndex {
    /// The entries of `key` (empty when the segment holds none).
    pub(crate) fn entries(&self, key: &[u8]) -> Vec<IndexEntry> {
        match self {
            SealedIndex::Sidecar(side) => side.entries(key),
            SealedIndex::Built(index) => index.keys.get(key).cloned().unwrap_or_default(),
        }
    }

    /// Where it came from.
    pub(crate) fn origin(&self) -> Origin {
        match self {
            SealedIndex::Sidecar(_) => Origin::Sidecar,
            SealedIndex::Built(_) => Origin::Built,
        }
    }

    /// A filter of every key it holds.
    pub(crate) fn filter(&self) -> KeyFilter {
        match self {
            SealedIndex::Sidecar(side) => {
                KeyFilter::new(usize::try_from(side.key_count()).unwrap_or(usize::MAX), side.keys())
            }
            SealedIndex::Built(index) => KeyFilter::new(index.keys.len(), index.keys.keys().map(Vec::as_slice)),
        }
    }
}

/// The per-stream index of the sealed segment at `path`: its sidecar when
/// that is valid and describes the segment (unless `force_rebuild`), else
/// an index built from the segment (written as the new sidecar when
/// `persist`). `None` when the segment cannot be indexed in full (damage,
/// a torn tail) or is gone.
pub(crate) fn sealed_index<C: Codec>(
    codec: &C,
    path: &Path,
    persist: bool,
    force_rebuild: bool,
) -> Result<Option<SealedIndex>> {
    if !force_rebuild {
        match Sidecar::open(&sidecar_path(path)).and_then(|s| s.describes(path).map(|()| s)) {
            Ok(side) => return Ok(Some(SealedIndex::Sidecar(side))),
            Err(SidecarError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(segment = %path.display(), "building the missing sidecar index");
            }
            Err(e) => {
                tracing::warn!(segment = %path.display(), error = %e, "sidecar index unusable; rebuilding it from the segment");
            }
        }
    }
    let index = match SegmentIndex::build(path, |p| key_of(codec, p)) {
        Ok(index) => index,
        Err(SidecarError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            // Removed by retention since the listing: the caller's read says so.
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(segment = %path.display(), error = %e, "segment cannot be indexed; scanning it");
            return Ok(None);
        }
    };
    let len = std::fs::metadata(path).map(|m| m.len()).ok();
    if index.stopped_early || len != Some(index.seg_len) {
        return Ok(None);
    }
    if persist && let Err(e) = index.write(path) {
        tracing::warn!(segment = %path.display(), error = %e, "could not write a sidecar index; it is rebuilt when needed");
    }
    Ok(Some(SealedIndex::Built(index)))
}

#[cfg(test)]
mod tests {
    use events_core::Bincode;

    use super::*;

    #[test]
    fn the_key_is_the_stream_id_without_decoding_the_event() {
        let mut buf = Vec::new();
        crate::payload::encode(&Bincode, Some("sess-7"), &TestEvent(vec![1, 2, 3]), &mut buf).unwrap();
        assert_eq!(key_of(&Bincode, &buf).as_deref(), Some(&b"sess-7"[..]));
        buf.clear();
        crate::payload::encode(&Bincode, None, &TestEvent(vec![]), &mut buf).unwrap();
        assert_eq!(key_of(&Bincode, &buf), None);
        assert!(check_stream_id(&"x".repeat(MAX_STREAM_ID_BYTES)).is_ok());
        let too_long = check_stream_id(&"x".repeat(MAX_STREAM_ID_BYTES + 1));
        assert!(matches!(too_long, Err(Error::StreamIdTooLong { len: 257, limit: 256 })));
    }

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct TestEvent(Vec<u8>);
    impl events_core::Event for TestEvent {}
}
