//! Space reserved ahead of the writes under [`SyncPolicy::Always`]: the
//! active segment is extended with written zeros in steps of
//! [`RESERVE_STEP`], so that the `fdatasync` acknowledging a batch finds
//! the file's size unchanged and its blocks already written, and has only
//! the data to flush. An append that grows the file makes its `fdatasync`
//! commit the new size through the file system's journal too, and a write
//! into space reserved with `fallocate(2)` (allocated, not written) makes
//! it commit the conversion of the blocks it touches: on ext4 on this
//! project's machine either costs ~40% more per sync, and the second one
//! costs it on every batch that starts a new block (`docs/BENCHMARKS.md`).
//! The cost: every reserved byte reaches the device twice (zeros, then
//! data), and the first `fdatasync` after a reservation flushes its zeros
//! too, once per step (~1–2 ms here, where the others take ~0.1 ms). A
//! copy-on-write or compressing file system gains nothing from it. The
//! reserved bytes read as zeros; the space is given back
//! ([`Journal::trim`]) before a roll seals the segment and before a clean
//! close.
//!
//! Invariants: no reader ever reads a reserved byte as data: the writer's
//! readers stop at the watermark, and any other walk meets a frame of zeros,
//! which fails its CRC and ends the newest segment like a torn tail (which
//! recovery cuts, so a crash costs nothing but the cut); a segment is
//! trimmed before it is sealed, so every sealed segment ends with its last
//! frame; a reservation that fails never fails an append (the write then
//! grows the file as it would without one).

use std::fs::File;
use std::io;

use crate::error::JournalError;
use crate::options::SyncPolicy;
use crate::seam::Step;
use crate::writer::Journal;

/// How far ahead of the data a reservation reaches (at most to the
/// segment's size): one `fdatasync` in this many bytes of appends commits a
/// new file size.
pub(crate) const RESERVE_STEP: u64 = 1 << 20;

/// Whether the writer reserves space ahead of its writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reserving {
    On,
    /// After a failed reservation (a full disk, say), until the next roll.
    Paused,
    /// Not under this policy, or not on this file system.
    Off,
}

impl Reserving {
    /// At open: under `Always`, on Linux (where it was measured).
    pub(crate) fn at_open(sync: SyncPolicy) -> Self {
        if sync == SyncPolicy::Always && cfg!(target_os = "linux") { Reserving::On } else { Reserving::Off }
    }

    /// For a new segment: a pause ends.
    pub(crate) fn at_roll(self) -> Self {
        if self == Reserving::Paused { Reserving::On } else { self }
    }
}

impl Journal {
    /// Before a write of `len` bytes: reserves the space it needs and up to
    /// [`RESERVE_STEP`] more, when the file does not already hold it. A
    /// failure the file system reports as unsupported turns reservations
    /// off for this journal; any other failure is logged, turns them off
    /// until the next roll and leaves the space to the write.
    pub(crate) fn reserve(&mut self, len: u64) {
        let end = self.active_len + len;
        if self.reserving != Reserving::On || end <= self.reserved {
            return;
        }
        let target = end.max((self.reserved + RESERVE_STEP).min(self.opts.segment_bytes));
        let (from, file) = (self.reserved, &self.active);
        match self.opts.io.op(Step::Reserve, || write_zeros(file, from, target - from)) {
            Ok(()) => self.reserved = target,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => {
                tracing::debug!(error = %e, "the file system cannot reserve space; appends grow the segment");
                self.reserving = Reserving::Off;
            }
            Err(e) => {
                // A full disk, say: no more reservations in this segment (the
                // next roll tries again), and whatever a failed reservation
                // wrote is given back, or else trimmed by the roll.
                tracing::warn!(error = %e, path = %self.active_path().display(), "reserving space failed; appends grow the segment until the next roll");
                self.reserving = Reserving::Paused;
                self.reserved = self.active.metadata().map_or(u64::MAX, |m| m.len().max(self.active_len));
                let _ = self.trim();
            }
        }
    }

    /// Gives back the space reserved past the data, so that the segment
    /// ends with its last frame: before a roll seals it and before a close.
    /// Returns whether there was any (the file's size changed).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the truncate fails.
    pub(crate) fn trim(&mut self) -> Result<bool, JournalError> {
        if self.reserved <= self.active_len {
            return Ok(false);
        }
        let (len, file) = (self.active_len, &self.active);
        self.opts
            .io
            .op(Step::Trim, || file.set_len(len))
            .map_err(|e| JournalError::io("trim", self.active_path(), e))?;
        self.reserved = len;
        Ok(true)
    }
}

/// Zeros written over `len` bytes at `offset`: the file's size becomes at
/// least `offset + len`, and the blocks are the file's own, written, so a
/// later write there changes no metadata. (`fallocate(2)` would allocate
/// them unwritten, and the `fdatasync` after the first write into each
/// block would commit its conversion.)
fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let end = offset.checked_add(len).ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
    let mut at = offset;
    while at < end {
        let n = usize::try_from(end - at).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
