//! Rolling: [`Journal::roll`] seals the active segment (after an
//! `fdatasync`, whatever the policy; under `Never` on the sealer thread),
//! starts the next one, whose header is durable before any record goes in,
//! and applies retention (`prune.rs`: the pruned segments are renamed out
//! in the call, their unlinks and fsyncs run on the sealer thread, under
//! every policy).
//!
//! Invariant: a sealed segment is complete on disk, and a pipelined sync in
//! flight is collected before the roll, so it never outlives its segment.

use std::path::Path;
use std::sync::Arc;

use crate::error::JournalError;
use crate::format::{HEADER_LEN, SegmentHeader};
use crate::options::SyncPolicy;
use crate::prune::Removal;
use crate::sealer::Sealer;
use crate::seam::Step;
use crate::segment::{self, SegInfo};
use crate::writer::Journal;

impl Journal {
    /// Seals the active segment and starts a new one at [`next_seq`](Self::next_seq),
    /// then applies retention. Does nothing if the active segment holds no record.
    /// Appends roll on their own when a segment reaches
    /// [`segment_bytes`](crate::JournalOptions::segment_bytes).
    ///
    /// The segment is `fdatasync`ed before it is sealed, whatever the
    /// [`SyncPolicy`]: a sealed segment is complete on disk, so a power loss
    /// can only ever tear the newest one (under `Never`, also those the
    /// sealer had not reached yet; recovery cuts a sealed torn tail, and the
    /// next open syncs them before it vouches for them). A retention failure after the roll is
    /// logged and counted ([`JournalStats::prune_errors`](crate::JournalStats::prune_errors)), never returned.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if syncing or creating fails, which poisons the
    /// writer; [`JournalError::DirectoryReplaced`] naming the directory if
    /// it was deleted or replaced under the writer (before the roll, or
    /// found by its retention pass), which poisons it too;
    /// [`JournalError::SeqsExhausted`] once seq
    /// [`MAX_SEQ`](crate::format::MAX_SEQ) was handed out (no segment can
    /// follow), which changes nothing.
    pub fn roll(&mut self) -> Result<(), JournalError> {
        self.health()?;
        self.settle()?;
        if self.active_len <= HEADER_LEN as u64 {
            return Ok(());
        }
        // No segment can be named after `MAX_SEQ`: one past it is a
        // stranger to the next open, its records lost.
        if self.next_seq > crate::format::MAX_SEQ {
            return Err(JournalError::SeqsExhausted { dir: self.dir.clone() });
        }
        // A new segment goes into the directory by its path: first make
        // sure it is still this writer's.
        if let Err(e) = self.lock.check_still_ours(&self.dir) {
            return Err(self.poison(e));
        }
        let _span =
            tracing::debug_span!("journal_roll", dir = %self.dir.display(), next_seq = self.next_seq, sealed_bytes = self.active_len)
                .entered();
        // Reserved space past the last frame goes first (`reserve.rs`):
        // the fdatasync below makes the new size durable.
        let trimmed = match self.trim() {
            Ok(trimmed) => trimmed,
            Err(e) => return Err(self.poison(e)),
        };
        let mut seal = None;
        if self.synced_len < self.active_len || trimmed {
            if self.opts.sync == SyncPolicy::Never {
                // Off the append path: the sealer fdatasyncs it, and
                // `sync`/`close` wait for it. Handed over once the next
                // segment's header is durable (below): that fdatasync
                // would otherwise queue behind this segment's, on the
                // writer's thread.
                seal = Some(self.seal_job()?);
            } else {
                self.sync_active(Step::RollSync)?;
            }
            self.synced_len = self.active_len;
        }
        // Durable now, whatever happens to the next segment.
        self.acked = self.last_seq();
        // Again, right before the new segment goes in by its path: the
        // fdatasync above can take long enough for the directory to be
        // replaced meanwhile, and a segment of this journal in another
        // would keep that one from opening.
        let started = match self.lock.check_still_ours(&self.dir) {
            Ok(()) => self.start_segment(),
            Err(e) => Err(self.poison(e)),
        };
        if let Some((file, path)) = seal {
            // Even when the next segment could not start (or go in): the
            // records written into this one are made durable all the same.
            match self.start_sealer() {
                Ok(sealer) => sealer.seal(file, path),
                Err(e) => return Err(self.poison(e)),
            }
        }
        started?;
        self.stats.rolls += 1;
        // Readers follow into the new segment (its header is durable), so
        // retention may remove the one the watermark named: once they were
        // told (a watermark write that failed leaves them at the old
        // segment, which the pass then keeps: `prune.rs`).
        self.acknowledge(self.last_seq(), self.active_len);
        // Logged and counted inside; the roll itself succeeded, unless the
        // pass found the directory no longer this writer's (replaced while
        // the roll ran): it then failed the writer, and nothing more may
        // be written, the append that rolled included.
        let (_, failure) = self.apply_retention(Removal::Deferred);
        match (&self.failed, failure) {
            (Some(_), Some(e @ JournalError::DirectoryReplaced { .. })) => Err(e),
            (Some(cause), _) => Err(JournalError::Failed { cause: cause.clone() }),
            (None, _) => Ok(()),
        }
    }

    /// Starts a new segment at `upto + 1`, sealing the active one however
    /// little it holds: a power loss may have taken seqs up to `upto`
    /// after they were handed out (`lease.rs`), or damage the records the
    /// last writer's watermark says it acknowledged, so none of them is
    /// handed out again. Called at open, before anything is appended; the
    /// segment it seals is synced first when it holds records this writer
    /// has not synced (a killed writer's, kept by recovery). `named_by`
    /// is the file that names `upto` (the lease, the watermark, the newest
    /// segment), for the error when no seq can follow it.
    pub(crate) fn skip_past(&mut self, upto: u64, named_by: &Path) -> Result<(), JournalError> {
        if upto >= crate::format::MAX_SEQ {
            let reason = format!("it names seq {upto} as handed out: no seq can follow it");
            return Err(JournalError::corrupt(named_by, 0, Some(upto), reason));
        }
        if self.synced_len < self.active_len {
            self.sync_active(Step::RollSync)?;
        }
        tracing::warn!(
            dir = %self.dir.display(),
            from = self.next_seq,
            upto,
            "seqs the last writer may have handed out are not in the files (acknowledged before a sync and lost to a \
             reboot, or damaged since): they are skipped, never handed out again"
        );
        self.next_seq = upto + 1;
        self.acked = upto;
        self.start_segment()
    }

    /// A handle on the active segment, about to be sealed, and its path,
    /// for the sealer thread.
    fn seal_job(&mut self) -> Result<(std::fs::File, std::path::PathBuf), JournalError> {
        let path = self.active_path().to_path_buf();
        match self.active.try_clone() {
            Ok(file) => Ok((file, path)),
            Err(e) => Err(self.poison(JournalError::io("clone handle", &path, e))),
        }
    }

    /// The sealer thread, started on first use.
    pub(crate) fn start_sealer(&mut self) -> Result<&Sealer, JournalError> {
        if self.sealer.is_none() {
            self.sealer = Some(Sealer::start(self.opts.io.clone(), &self.dir)?);
        }
        Ok(self.sealer.as_ref().expect("started above"))
    }

    fn start_segment(&mut self) -> Result<(), JournalError> {
        let header = SegmentHeader {
            epoch: self.epoch,
            first_seq: self.next_seq,
            created_at: segment::now_nanos(),
            codec_tag: self.opts.codec_tag,
        };
        let (file, path) = match segment::create(&self.opts.io, &self.dir, &header) {
            Ok(x) => x,
            Err(e) => return Err(self.poison(e)),
        };
        self.stats.fsyncs += 1;
        if let Some(last) = self.segments.back_mut() {
            last.bytes = self.active_len;
        }
        if let Some(bg) = &self.background
            && let Err(e) = bg.switch(&file, &path)
        {
            return Err(self.poison(e));
        }
        self.segments.push_back(SegInfo {
            first_seq: header.first_seq,
            path,
            bytes: HEADER_LEN as u64,
            created_at: header.created_at,
        });
        self.active = Arc::new(file);
        self.active_len = HEADER_LEN as u64;
        self.reserved = HEADER_LEN as u64;
        self.reserving = self.reserving.at_roll();
        self.synced_len = HEADER_LEN as u64;
        Ok(())
    }
}
