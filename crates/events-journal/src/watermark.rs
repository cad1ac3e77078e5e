//! The durable watermark: `<dir>/WATERMARK`, a 64-byte record in which the
//! writer publishes how far readers may go: the last acknowledged seq and the
//! byte where acknowledged data ends (segment and offset), with the writer's
//! state. Readers in any process read it on every poll (one `pread`) and
//! never hand out, or even touch, a byte past it while a writer runs.
//!
//! Invariants: only the lock holder writes it; it is never ahead of
//! acknowledged data (the writer publishes after the `write(2)`, and under
//! `SyncPolicy::Always` after the `fdatasync`, the same moment `append`
//! returns); before recovery touches any file, a new writer marks it
//! [`WriterState::Recovering`], so no reader maps a byte recovery may cut;
//! the `Recovering` record is fdatasynced before recovery, so a power loss
//! never brings back an earlier writer's `Closed` record (which readers
//! trust with no lock held); the records in between need no fsync of their
//! own, because after a crash recovery rewrites them from what it recovered
//! before any new append; a clean close's `Closed` record is fdatasynced,
//! since the next open holds a damaged tail to the acknowledged seq it
//! names. A record that fails its CRC
//! (power loss mid-write) reads as absent. The bytes are drawn in
//! `docs/FORMAT.md`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::seam::{Io, Step};
use crate::segment;

/// File name of the watermark inside a journal directory.
pub const WATERMARK_FILE: &str = "WATERMARK";

/// Length of the watermark record.
pub const WATERMARK_LEN: usize = 64;

/// Identifies a watermark file of this format.
const MAGIC: [u8; 8] = *b"EVJWMARK";
const VERSION: u16 = 1;

/// What the writer of a journal directory was doing when it last published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterState {
    /// A writer took the lock and is recovering: readers must not map the
    /// newest segment, which recovery may cut.
    Recovering,
    /// A writer is appending; everything up to the watermark is acknowledged.
    Open,
    /// The writer closed cleanly; the watermark is the end of the journal.
    Closed,
}

impl WriterState {
    fn code(self) -> u16 {
        match self {
            WriterState::Recovering => 1,
            WriterState::Open => 2,
            WriterState::Closed => 3,
        }
    }

    fn from_code(code: u16) -> Option<Self> {
        match code {
            1 => Some(WriterState::Recovering),
            2 => Some(WriterState::Open),
            3 => Some(WriterState::Closed),
            _ => None,
        }
    }
}

/// The published position: every record up to `seq` is acknowledged, and
/// its bytes end at `offset` in the segment whose first seq is `segment`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermark {
    /// What the writer was doing.
    pub state: WriterState,
    /// The journal's epoch (0 while recovering a directory with no segment yet).
    pub epoch: u64,
    /// The last acknowledged seq (0: none).
    pub seq: u64,
    /// The first seq (file name) of the segment where acknowledged data ends.
    pub segment: u64,
    /// The byte offset in that segment where acknowledged data ends.
    pub offset: u64,
}

impl Watermark {
    /// The 64 bytes of the record.
    pub fn encode(&self) -> [u8; WATERMARK_LEN] {
        let mut b = [0u8; WATERMARK_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&self.state.code().to_le_bytes());
        b[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        b[24..32].copy_from_slice(&self.seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.segment.to_le_bytes());
        b[40..48].copy_from_slice(&self.offset.to_le_bytes());
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a record; `None` for anything that is not a whole, CRC-valid
    /// record of this version.
    pub fn decode(b: &[u8]) -> Option<Watermark> {
        let b: &[u8; WATERMARK_LEN] = b.get(..WATERMARK_LEN)?.try_into().ok()?;
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
        if b[0..8] != MAGIC || u16_at(8) != VERSION || crc32fast::hash(&b[..60]) != crc {
            return None;
        }
        let (seq, segment) = (u64_at(24), u64_at(32));
        // No journal hands out a seq past `MAX_SEQ`: such a record is not one
        // of its watermarks (an open would skip past it into a segment name
        // no listing accepts).
        if seq > crate::format::MAX_SEQ || segment > crate::format::MAX_SEQ {
            return None;
        }
        Some(Watermark {
            state: WriterState::from_code(u16_at(10))?,
            epoch: u64_at(16),
            seq,
            segment,
            offset: u64_at(40),
        })
    }
}

/// Reads the watermark of `dir`: `Ok(None)` when there is none or it does
/// not decode (a torn or foreign file). A read that races a publication can
/// see a mix of two records; its CRC fails and it is read again.
pub(crate) fn read(dir: &Path) -> Result<Option<Watermark>, JournalError> {
    let path = dir.join(WATERMARK_FILE);
    let file = match crate::own_file::open_regular(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io("open watermark", &path, e)),
    };
    let mut buf = [0u8; WATERMARK_LEN];
    for _ in 0..4 {
        match file.read_exact_at(&mut buf, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(JournalError::io("read watermark", &path, e)),
        }
        if let Some(wm) = Watermark::decode(&buf) {
            return Ok(Some(wm));
        }
    }
    Ok(None)
}

/// A segment's inode and length (`None`: absent, or it cannot be
/// looked at), compared before and after a refused open's recovery.
type Identity = Option<(u64, u64)>;

/// The writer's handle on the watermark file.
#[derive(Debug)]
pub(crate) struct Publisher {
    file: File,
    path: PathBuf,
    io: Io,
    /// The last record written.
    last: Option<Watermark>,
    /// The record whose write failed last, when no later one was written.
    failed: Option<Watermark>,
    /// The file's bytes before this writer opened (`None`: there was no
    /// file), put back if the open is refused before the journal is in
    /// place, unless the segment they name changed meanwhile.
    previous: Option<Vec<u8>>,
    /// Set by the first `Open` or `Closed` publication, or by
    /// [`keep_recovering`](Self::keep_recovering).
    committed: bool,
    /// The segment the previous record names as the open found it, before
    /// recovery ([`Identity`]), until the open is committed: a refused open
    /// that finds it changed keeps its `Recovering` record. `None` with no
    /// previous record.
    named: Option<Identity>,
}

impl Publisher {
    /// The watermark the previous writer left (`None`: no file, or not a
    /// valid record): its `seq` is the last it acknowledged, which readers
    /// may have been handed. A `Recovering` record keeps the position of
    /// the writer before it.
    pub(crate) fn previous(&self) -> Option<Watermark> {
        self.previous.as_deref().and_then(Watermark::decode)
    }

    /// The seq the file holds (0 before the first publication).
    pub(crate) fn published_seq(&self) -> u64 {
        self.last.map_or(0, |wm| wm.seq)
    }

    /// The first seq of the segment the file names, once this writer is
    /// open (wrote an `Open` record): readers read up to there, so
    /// retention leaves it in place. While the writer opens, readers stop
    /// at the sealed segments and follow no segment the record names.
    pub(crate) fn published_segment(&self) -> Option<u64> {
        self.last.filter(|wm| wm.state != WriterState::Recovering).map(|wm| wm.segment)
    }

    /// Opens (or creates) the watermark of `dir` and marks it
    /// [`WriterState::Recovering`]; called right after taking the lock and
    /// before recovery changes anything, so it notes here the segment the
    /// previous record names, as found.
    pub(crate) fn open(io: &Io, dir: &Path) -> Result<Publisher, JournalError> {
        let path = dir.join(WATERMARK_FILE);
        // The most a watermark file holds: its record, and room to spare.
        let previous = match crate::own_file::read_regular(&path, 4096) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(JournalError::io("read watermark", &path, e)),
        };
        let file = io
            .op(Step::Watermark, || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path))
            .map_err(|e| JournalError::io("open watermark", &path, e))?;
        let decoded = previous.as_deref().and_then(Watermark::decode);
        let mut publisher =
            Publisher { file, path, io: io.clone(), last: None, failed: None, previous, committed: false, named: None };
        publisher.named = publisher.previous().map(|wm| publisher.identity(wm.segment));
        let recovering = Watermark {
            state: WriterState::Recovering,
            ..decoded.unwrap_or(Watermark { state: WriterState::Recovering, epoch: 0, seq: 0, segment: 0, offset: 0 })
        };
        publisher.publish(recovering)?;
        // Durable before recovery: a power loss must not bring back a
        // `Closed` record of an earlier writer, which readers trust with no
        // lock held (they would stop at its end, or find its segment pruned).
        io.sync_data(Step::Watermark, &publisher.file)
            .map_err(|e| JournalError::io("sync watermark", &publisher.path, e))?;
        Ok(publisher)
    }

    /// Writes `wm` (one `pwrite` of 64 bytes). Skipped when nothing changed.
    pub(crate) fn publish(&mut self, wm: Watermark) -> Result<(), JournalError> {
        if self.last == Some(wm) {
            return Ok(());
        }
        let bytes = wm.encode();
        if let Err(e) = self.io.op(Step::Watermark, || self.file.write_all_at(&bytes, 0)) {
            self.failed = Some(wm);
            return Err(JournalError::io("write watermark", &self.path, e));
        }
        self.last = Some(wm);
        self.failed = None;
        self.committed |= wm.state != WriterState::Recovering;
        if self.committed {
            self.named = None;
        }
        Ok(())
    }

    /// `fdatasync`s the record written last: at a clean close, whose
    /// `Closed` record names the acknowledged records the next open holds
    /// a damaged tail to (after a power loss, the durable record had been
    /// the open's `Recovering` one, an earlier writer's position).
    pub(crate) fn sync(&self) -> Result<(), JournalError> {
        self.io.sync_data(Step::Watermark, &self.file).map_err(|e| JournalError::io("sync watermark", &self.path, e))
    }

    /// Keeps this open's `Recovering` record when the open is refused,
    /// instead of putting the last writer's back: recovery changed the
    /// files it described.
    pub(crate) fn keep_recovering(&mut self) {
        self.committed = true;
    }

    /// What the segment of first seq `first` is now ([`Identity`]).
    fn identity(&self, first: u64) -> Identity {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::metadata(dir.join(segment::file_name(first))).ok().map(|m| (m.ino(), m.len()))
    }

    /// Whether the segment the previous record names is still as the open
    /// found it (`true` with no previous record, or once committed). A
    /// rebuild renames a new inode over it, a cut shortens it, retention
    /// removes it. Other segments do not matter: the record describes the
    /// journal's end, in that one.
    fn named_segment_unchanged(&self) -> bool {
        let (Some(before), Some(wm)) = (self.named, self.previous()) else { return true };
        self.identity(wm.segment) == before
    }

    /// Writes again the record whose write failed last, if no later one
    /// was written since.
    pub(crate) fn retry(&mut self) -> Result<(), JournalError> {
        match self.failed {
            Some(wm) => self.publish(wm),
            None => Ok(()),
        }
    }
}

impl Drop for Publisher {
    /// A refused open leaves the directory as it found it: the watermark is
    /// put back (or removed, if this open created it), unless recovery
    /// changed the files ([`keep_recovering`](Self::keep_recovering)) or
    /// the segment the previous record names, at whatever step the open
    /// was refused.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Refused after recovery changed the segment the last writer's
        // record names (a rebuild's rename, a cut), at any step: that
        // record (a `Closed` one, which readers trust with no lock held)
        // may name records that are gone. This open's synced `Recovering`
        // record stays: readers take the files as a crash left them.
        if !self.named_segment_unchanged() {
            tracing::info!(path = %self.path.display(), "a refused open changed the segment the last writer's record names: its recovering record stays");
            return;
        }
        let restored = match &self.previous {
            // Synced, as the `Recovering` record it replaces was.
            Some(bytes) => self.io.op(Step::Watermark, || {
                self.file.write_all_at(bytes, 0)?;
                self.file.set_len(bytes.len() as u64)?;
                self.file.sync_data()
            }),
            None => self.io.op(Step::Watermark, || std::fs::remove_file(&self.path)),
        };
        if let Err(e) = restored {
            tracing::warn!(path = %self.path.display(), error = %e, "could not restore the watermark after a refused open");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_every_bit_flip_reads_as_absent() {
        let wm = Watermark { state: WriterState::Open, epoch: 7, seq: 42, segment: 40, offset: 4096 };
        let bytes = wm.encode();
        assert_eq!(Watermark::decode(&bytes), Some(wm));
        for bit in 0..WATERMARK_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Watermark::decode(&b), None, "bit {bit}");
        }
        assert_eq!(Watermark::decode(&bytes[..63]), None);
    }

    /// A CRC-valid record naming a seq or segment past `MAX_SEQ` is not a
    /// journal's watermark: an open would have skipped past it into a
    /// segment name no listing accepts (and lost what it wrote there).
    #[test]
    fn a_seq_past_max_seq_reads_as_absent() {
        let max = crate::format::MAX_SEQ;
        let at_the_limit = Watermark { state: WriterState::Closed, epoch: 7, seq: max, segment: max, offset: 64 };
        assert_eq!(Watermark::decode(&at_the_limit.encode()), Some(at_the_limit));
        for wm in [Watermark { seq: max + 1, ..at_the_limit }, Watermark { segment: u64::MAX, ..at_the_limit }] {
            assert_eq!(Watermark::decode(&wm.encode()), None, "{wm:?}");
        }
    }
}
