//! The single writer: [`Journal`] appends frames with one `write(2)` per
//! batch, applies the [`SyncPolicy`], rolls segments and prunes them.
//! Opening (options, lock, recovery, retention at open) lives in `open.rs`,
//! rolling in `roll.rs`, applying retention in `prune.rs`, pipelined group
//! commit in `commit.rs`, the `Interval` sync thread in `background.rs`,
//! the sealer thread (seals under `Never`, a roll's retention under every
//! policy) in `sealer.rs`, file naming in `segment.rs`, the
//! retention policy in `retention.rs`, the consumer pin in `pin.rs`, the
//! counters in `stats.rs`.
//!
//! Invariants: seqs handed out are contiguous and never reused; `append`
//! returns only after `write(2)` (and `fdatasync` under
//! [`SyncPolicy::Always`]); a segment is `fdatasync`ed before a roll seals
//! it, whatever the policy; after any failed write or fsync the writer is
//! poisoned and refuses every later append, because it can no longer tell
//! what is on disk; retention is not on the write path: a segment it
//! cannot remove is logged, counted and retried, and never fails an append
//! or a roll; the active segment is never pruned.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::background::Background;
use crate::commit::Pipeline;
use crate::error::JournalError;
use crate::format::{self, HEADER_LEN};
use crate::lease::Leaser;
use crate::lock::DirLock;
use crate::options::{JournalOptions, SyncPolicy};
use crate::reserve::Reserving;
use crate::sealer::Sealer;
use crate::seam::Step;
use crate::segment::{self, SegInfo};
use crate::stats::JournalStats;
use crate::watermark::{Publisher, Watermark, WriterState};

/// The single writer of a journal directory.
///
/// See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct Journal {
    pub(crate) dir: PathBuf,
    pub(crate) opts: JournalOptions,
    pub(crate) epoch: u64,
    /// Oldest first; the last one is the active segment.
    pub(crate) segments: VecDeque<SegInfo>,
    /// Shared with the pipelined commit's sync thread (`commit.rs`).
    pub(crate) active: Arc<File>,
    pub(crate) active_len: u64,
    /// The active segment's file size as far as the writer knows: past
    /// `active_len` when space is reserved ahead (`reserve.rs`).
    pub(crate) reserved: u64,
    /// Whether appends reserve space ahead (`reserve.rs`).
    pub(crate) reserving: Reserving,
    pub(crate) synced_len: u64,
    pub(crate) next_seq: u64,
    /// The newest seq acknowledged under the policy (`Journal::acked_seq`).
    pub(crate) acked: u64,
    /// Pipelined group commit (`commit.rs`).
    pub(crate) pipeline: Pipeline,
    pub(crate) buf: Vec<u8>,
    pub(crate) failed: Option<String>,
    pub(crate) stats: JournalStats,
    pub(crate) background: Option<Background>,
    /// Finishes a roll's retention off the append path and, under
    /// `SyncPolicy::Never`, fdatasyncs sealed segments. Started on first use.
    pub(crate) sealer: Option<Sealer>,
    pub(crate) closed: bool,
    pub(crate) watermark: Publisher,
    /// The durable bound on the seqs handed out (`lease.rs`).
    pub(crate) lease: Leaser,
    /// The directory's lock, which also tells whether the directory is
    /// still this writer's (rolls and retention check before they touch it).
    pub(crate) lock: DirLock,
}

impl Journal {
    /// Appends one record with the timestamp `ts_nanos` (Unix nanoseconds,
    /// stored as given: the journal never reads it) and returns its seq. Any
    /// byte container is a payload: `&[u8]`, `Vec<u8>`, `&str`, `b"…"`.
    ///
    /// # Errors
    ///
    /// See [`Journal::append_batch`].
    pub fn append(&mut self, ts_nanos: u64, payload: impl AsRef<[u8]>) -> Result<u64, JournalError> {
        self.append_batch([(ts_nanos, payload)]).map(|r| *r.start())
    }

    /// [`append`](Self::append) stamped with the wall clock ([`now_nanos`](crate::now_nanos)).
    ///
    /// # Errors
    ///
    /// See [`Journal::append_batch`].
    pub fn append_now(&mut self, payload: impl AsRef<[u8]>) -> Result<u64, JournalError> {
        self.append(segment::now_nanos(), payload)
    }

    /// Appends records with consecutive seqs using one `write(2)` (and, under
    /// [`SyncPolicy::Always`], one `fdatasync`) for the whole batch, and returns
    /// their seqs. An empty batch writes nothing and returns an empty range
    /// (`next_seq..=next_seq - 1`). A batch never straddles two segments: the
    /// roll, if due, happens before it.
    ///
    /// # Errors
    ///
    /// [`JournalError::RecordTooLarge`] if a payload exceeds the limit, and
    /// [`JournalError::SeqsExhausted`] if a record would take a seq past
    /// [`MAX_SEQ`](crate::format::MAX_SEQ) (nothing of the batch is
    /// written either way); [`JournalError::Io`] if the write, the
    /// `fdatasync` or a roll fails, after which the writer is poisoned and
    /// every later call returns [`JournalError::Failed`]. On such a failure
    /// the segment is cut back, when possible, to its length before the
    /// batch (under `Always`, to its last acknowledged record).
    pub fn append_batch<I, P>(&mut self, records: I) -> Result<RangeInclusive<u64>, JournalError>
    where
        I: IntoIterator<Item = (u64, P)>,
        P: AsRef<[u8]>,
    {
        let seqs = self.write_records(records)?;
        // The fdatasync of `SyncPolicy::Always`. Under the other policies
        // the batch is acknowledged (and published) once written, so a
        // failure a background thread recorded meanwhile is left to the
        // next call: `commit` would report it for this batch, which stays.
        if !seqs.is_empty() && self.opts.sync == SyncPolicy::Always {
            self.commit()?;
        }
        Ok(seqs)
    }

    /// Encodes and writes a batch; acknowledges it too, unless the policy is
    /// `Always` (then `commit` or a pipelined sync does, `commit.rs`).
    pub(crate) fn write_records<I, P>(&mut self, records: I) -> Result<RangeInclusive<u64>, JournalError>
    where
        I: IntoIterator<Item = (u64, P)>,
        P: AsRef<[u8]>,
    {
        self.health()?;
        let first = self.next_seq;
        let max = self.opts.max_record_bytes;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let mut seq = first;
        for (ts, payload) in records {
            let payload = payload.as_ref();
            if payload.len() > max as usize {
                self.buf = buf;
                return Err(JournalError::RecordTooLarge { len: payload.len(), max });
            }
            if seq > crate::format::MAX_SEQ {
                self.buf = buf;
                return Err(JournalError::SeqsExhausted { dir: self.dir.clone() });
            }
            format::encode_frame(&mut buf, seq, ts, payload);
            seq += 1;
        }
        let result = if seq == first { Ok(()) } else { self.write_frames(&buf, seq - first) };
        if buf.capacity() > (64 << 20) {
            buf = Vec::new(); // do not hold on to the memory of one huge batch
        }
        self.buf = buf;
        result.map(|()| first..=seq - 1)
    }

    fn write_frames(&mut self, frames: &[u8], count: u64) -> Result<(), JournalError> {
        let len = frames.len() as u64;
        if self.active_len > HEADER_LEN as u64 && self.active_len + len > self.opts.segment_bytes {
            self.roll()?;
        }
        let last = self.next_seq + count - 1;
        if last > self.lease.current.upto && !self.lease.current.synced_acks {
            // Durable before the write: a power loss may take what follows,
            // and the next open skips past this lease (`lease.rs`).
            let upto = last.saturating_add(self.opts.io.lease_step()).min(crate::format::MAX_SEQ);
            if let Err(e) = self.lease.extend(upto) {
                return Err(self.poison(e));
            }
        }
        let before = self.active_len;
        self.reserve(len);
        if let Err(e) = self.opts.io.write_all(Step::AppendWrite, &self.active, frames) {
            let err = JournalError::io("write", self.active_path(), e);
            self.cut_back(self.unacked_from(before));
            return Err(self.poison(err));
        }
        self.active_len += len;
        self.next_seq += count;
        self.stats.appended += count;
        self.stats.batches += 1;
        self.stats.bytes_written += len;
        match self.opts.sync {
            // Acknowledged by its fdatasync: `commit` or a pipelined sync (`commit.rs`).
            SyncPolicy::Always => return Ok(()),
            SyncPolicy::Interval(_) => {
                if let Some(bg) = &self.background {
                    bg.shared.dirty.store(true, Ordering::Release);
                }
            }
            SyncPolicy::Never => {}
        }
        self.acknowledge(self.last_seq(), self.active_len);
        Ok(())
    }

    /// Publishes the current end of the journal as the readers' watermark.
    pub(crate) fn publish(&mut self, state: WriterState) -> Result<(), JournalError> {
        self.publish_at(state, self.last_seq(), self.active_len)
    }

    /// Publishes `seq`, ending at `offset` of the active segment, as the readers' watermark.
    pub(crate) fn publish_at(&mut self, state: WriterState, seq: u64, offset: u64) -> Result<(), JournalError> {
        let segment = self.segments.back().map_or(self.next_seq, |s| s.first_seq);
        self.watermark.publish(Watermark { state, epoch: self.epoch, seq, segment, offset })
    }

    /// Best effort after a failed write or fsync: remove the partial batch so a
    /// reader in this run never sees records whose append failed, and
    /// `fdatasync` the cut (after the pipelined sync in flight, if any:
    /// [`sync_cut`](Self::sync_cut)), so a power loss cannot bring them
    /// back (the file's size on disk may still cover them: space reserved
    /// ahead of the writes is synced, and the refused frames' pages may
    /// have been written back before the fsync failed). When the truncate fails too
    /// (a file system gone read-only), the refused records stay in the
    /// file, where a later open keeps them as a crash's leftovers: logged
    /// as an error, since their appenders were told they failed.
    pub(crate) fn cut_back(&mut self, len: u64) {
        match self.opts.io.op(Step::Truncate, || self.active.set_len(len)) {
            Ok(()) => {
                self.reserved = len;
                self.active_len = self.active_len.min(len);
                let _ = (&*self.active).seek(SeekFrom::Start(len));
                self.pipeline.cut_unsynced = true;
                self.sync_cut();
            }
            Err(e) => tracing::error!(
                path = %self.active_path().display(),
                offset = len,
                error = %e,
                "could not cut back records whose append failed; a later open may keep them (their appenders were told they failed)"
            ),
        }
    }

    /// Fails the writer for good with `err`. Under `SyncPolicy::Always`,
    /// what no fdatasync covered (or covers, in flight) is cut back first:
    /// its appends are refused, so no later open may find it.
    pub(crate) fn poison(&mut self, err: JournalError) -> JournalError {
        if self.failed.is_none() {
            self.cut_back_unacked();
        }
        // Recorded before it is logged: logging may panic.
        self.failed = Some(err.to_string());
        tracing::error!(error = %err, "journal writer poisoned");
        err
    }

    /// Whether the journal's directory is still this writer's, for a
    /// caller about to read its files by their paths: not once it was
    /// deleted or replaced (another inode at its path, or none), when the
    /// files at those paths may be another journal's. A `stat` of the
    /// directory (of its lock file where the directory could not be
    /// locked).
    ///
    /// # Errors
    ///
    /// [`JournalError::DirectoryReplaced`] naming the directory.
    pub fn check_directory(&self) -> Result<(), JournalError> {
        self.lock.check_still_ours(&self.dir)
    }

    /// Reports, without an append, a failure the writer's background
    /// threads found since: an `fdatasync` of `SyncPolicy::Interval`, a
    /// seal under `SyncPolicy::Never`, a panic of the sealer's retention
    /// work. Either poisons the writer as a failed append does (under
    /// `SyncPolicy::Always`, what no fdatasync covered is cut back first:
    /// those appends are refused); its next append would fail the same
    /// way.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] naming the cause once the writer is poisoned.
    pub fn health(&mut self) -> Result<(), JournalError> {
        let found = || {
            let background = self.background.as_ref().and_then(|bg| bg.failure());
            background.or_else(|| self.sealer.as_ref().and_then(Sealer::failure))
        };
        if self.failed.is_none()
            && let Some(cause) = found()
        {
            self.cut_back_unacked();
            self.failed = Some(cause);
        }
        match &self.failed {
            Some(cause) => Err(JournalError::Failed { cause: cause.clone() }),
            None => Ok(()),
        }
    }

    /// Forces everything appended so far to stable storage (`fdatasync`).
    /// It first waits for the sealer thread's jobs queued before it: the
    /// seals of `SyncPolicy::Never`, and the unlinks and fsyncs a roll's
    /// retention (or `prune_deferred`) left to it, under every policy, so a
    /// `sync` right after a pruning roll also waits for those.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if the writer is poisoned; [`JournalError::Io`]
    /// if the `fdatasync` fails, which poisons the writer.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        // Sealed segments first: "everything appended so far" includes them.
        if let Some(sealer) = &self.sealer {
            sealer.flush();
        }
        self.health()?;
        self.settle()?;
        self.sync_active(Step::Sync)?;
        if self.acked != self.last_seq() {
            // Pipelined writes (`write_batch`) this fdatasync covered.
            self.acknowledge(self.last_seq(), self.active_len);
        }
        Ok(())
    }

    /// The journal's epoch: a random id fixed when the directory was created.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The generation of the seq lease this writer's open wrote (`LEASE`):
    /// every lease write of the journal takes the next one after the last
    /// valid record, so a writer's is greater than any earlier writer's
    /// whose lease records survive (a lease a power-loss cut held back
    /// before this open's own, in the same slot, is not one: this open's
    /// takes its generation over). It starts again at 0 when `LEASE` is
    /// missing or holds no valid record (deleted, damaged, or a journal of
    /// a build before the lease), and a killed writer's last record, if torn,
    /// does not count.
    pub fn open_generation(&self) -> u64 {
        self.lease.opened
    }

    /// The segments this writer holds, oldest first, as `(first seq, path)`;
    /// the last is the active one. Unlike
    /// [`Reader::segments`](crate::Reader::segments) it reads no directory:
    /// a roll adds to it and retention takes from its front (before the
    /// file goes), so it never lacks a segment the writer appends to.
    pub fn segments(&self) -> Vec<(u64, &Path)> {
        self.segments.iter().map(|s| (s.first_seq, s.path.as_path())).collect()
    }

    /// The earliest retained seq (equal to [`next_seq`](Self::next_seq) when
    /// the journal holds no record).
    pub fn first_seq(&self) -> u64 {
        self.segments.front().map_or(self.next_seq, |s| s.first_seq)
    }

    /// The last seq handed out (0 when nothing was ever written).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The seq the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Counters since open.
    pub fn stats(&self) -> JournalStats {
        let bg = self.background.as_ref().map_or(0, |b| b.shared.fsyncs.load(Ordering::Relaxed));
        let sealed = self.sealer.as_ref().map_or(0, Sealer::fsyncs);
        let tidy_errors = self.sealer.as_ref().map_or(0, Sealer::tidy_errors);
        JournalStats {
            fsyncs: self.stats.fsyncs + bg + sealed,
            segments: self.segments.len(),
            prune_errors: self.stats.prune_errors + tidy_errors,
            ..self.stats
        }
    }

    pub(crate) fn active_path(&self) -> &Path {
        self.segments.back().map_or(self.dir.as_path(), |s| s.path.as_path())
    }

    /// Stops the sync thread, waits for the sealer, `fdatasync`s the active
    /// segment whatever the [`SyncPolicy`] (every sealed segment was synced
    /// by its roll — under `Never` by the sealer thread right after it — every
    /// creation, rename and removal by a directory fsync, so nothing the
    /// journal wrote is left unsynced), publishes the watermark as closed
    /// and releases the lock. Dropping a `Journal` does the same on a
    /// best-effort basis.
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if the writer was poisoned;
    /// [`JournalError::Io`] if the final `fdatasync` fails, which cuts back
    /// every record no earlier `fdatasync` acknowledged under `Always`.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.closed = true;
        self.stop_background();
        if let Some(sealer) = &mut self.sealer {
            sealer.stop(); // every sealed segment is on disk before the close returns
        }
        self.health()?;
        self.settle()?;
        // A failure cuts back what no fdatasync covered (records written
        // under `Always` and never committed), as a failed append's does.
        if let Err(e) = self.trim() {
            self.cut_back_unacked();
            return Err(self.poison(e));
        }
        self.sync_active(Step::Sync)?;
        self.publish(WriterState::Closed)?;
        // The next open holds a damaged tail to the seq this record names
        // (refused under `Strict`, its seqs never handed out again): after
        // a power loss too. A failure is only logged: the data is durable.
        if let Err(e) = self.watermark.sync() {
            tracing::warn!(error = %e, "syncing the closed watermark failed; after a power loss the next open knows an earlier acknowledged seq");
        }
        self.close_lease();
        Ok(())
    }

    /// Stops the `Interval` sync thread; a sync of its that failed poisons
    /// the writer (after `EIO` the kernel may have marked the pages clean,
    /// so the final sync would succeed without them being on disk).
    fn stop_background(&mut self) {
        if let Some(mut bg) = self.background.take() {
            bg.stop();
            if self.failed.is_none()
                && let Some(cause) = bg.failure()
            {
                self.failed = Some(cause);
            }
        }
    }

    /// Records the lease closed once everything is synced, so that the next
    /// open skips nothing even after a reboot. A failure is only logged: the
    /// data is durable, and the next open may skip seqs, never reuse them.
    fn close_lease(&mut self) {
        if let Err(e) = self.lease.close() {
            tracing::warn!(error = %e, "recording the seq lease closed failed; the next open after a reboot skips its seqs");
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if self.closed {
            // A close refused by a failed writer returned before waiting for
            // the sync in flight: its outcome, and the fdatasync of a
            // cut-back made meanwhile, come first.
            let _ = self.settle();
            return;
        }
        self.stop_background();
        if let Some(sealer) = &mut self.sealer {
            sealer.stop();
        }
        if std::thread::panicking() {
            // Dropped while its owner unwinds (a panic on the feed's writer
            // thread): a crash, not a close. Whoever waited on what no
            // fdatasync covered is told it failed, so none of it stays;
            // the next open recovers as after a crash.
            if self.failed.is_none() {
                self.cut_back_unacked();
            }
            return;
        }
        let sealed = self.sealer.as_ref().is_none_or(|s| s.failure().is_none());
        let _ = self.settle();
        let healthy = self.failed.is_none();
        let trimmed = healthy && self.trim().is_ok();
        if trimmed && sealed && self.sync_active(Step::Sync).is_ok() {
            // As `close`: the record the next open holds a damaged tail to,
            // after a power loss too.
            if self.publish(WriterState::Closed).is_ok() {
                let _ = self.watermark.sync();
            }
            self.close_lease();
        } else if healthy && self.failed.is_none() {
            // Not synced (a failed give-back or seal; a failed sync cut
            // back already): nothing unacknowledged stays.
            self.cut_back_unacked();
        }
    }
}
