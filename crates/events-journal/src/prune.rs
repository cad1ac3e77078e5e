//! Applying retention: [`Journal::prune`], and the retention every roll
//! and every open runs. The policy is `retention.rs`, what consumers pin
//! `pin.rs`, the summary of pruned segments `pruned.rs`.
//!
//! A roll, and [`Journal::prune_deferred`], take the pruned segments out of
//! the journal by renaming each to its `<name>.removed`
//! ([`segment::removed_path`]): from then on no reader in any process and
//! no recovery finds it, exactly as after an unlink. The sealer thread does
//! the rest ([`Tidy`]), under every sync policy: the unlinks and the fsyncs
//! of the summary and of the directory, which can each wait for the disk
//! (an unlink of a 64 MiB segment took 16–18 ms on a file system mounted
//! with `discard`), so appends never wait for them. An unlink the tidy
//! could not do is retried by the next deferred pass, even one that
//! removes nothing. In `prune` and at open all of it runs here, in the
//! call.
//!
//! Invariants: segments leave oldest first, and the first that cannot be
//! taken out stops the pass (a younger one leaving would open a hole); the
//! active segment never leaves; a failure never fails an append or a roll
//! and never poisons the writer: it is logged, counted and retried by the
//! next roll or `prune`.

use std::path::PathBuf;

use crate::error::JournalError;
use crate::sealer::{Sealer, Tidy};
use crate::seam::Step;
use crate::segment;
use crate::writer::Journal;

/// Where the slow half of a retention pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Everything in the call.
    Inline,
    /// Renames in the call, the rest on the sealer thread (a roll,
    /// `prune_deferred`).
    Deferred,
}

impl Journal {
    /// Applies the retention policy now and returns how many segments were
    /// removed. Runs on its own at open and after every roll. To apply
    /// [`Retention::age`](crate::Retention::age) to an idle journal, which
    /// never rolls, call this or, on a live writer's timer,
    /// [`prune_deferred`](Self::prune_deferred), which leaves the unlinks to
    /// a background thread. Never removes the active segment, never rolls,
    /// takes no fsync of segment data.
    ///
    /// Segments are removed oldest first; the first one that cannot be
    /// removed stops this call (removing a younger one would leave a hole)
    /// and stays for the next roll or `prune`.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] naming the segment if a removal fails, or the
    /// directory if its fsync fails. Unlike a failed append this does not
    /// poison the writer: it is logged, counted in
    /// [`JournalStats::prune_errors`](crate::JournalStats::prune_errors) and retried later.
    /// [`JournalError::DirectoryReplaced`] when the directory was deleted or
    /// replaced under the writer, which does poison it: nothing is removed.
    pub fn prune(&mut self) -> Result<usize, JournalError> {
        match self.apply_retention(Removal::Inline) {
            (removed, None) => Ok(removed.len()),
            (_, Some(err)) => Err(err),
        }
    }

    /// [`prune`](Self::prune) as a roll applies retention: the segments
    /// retention removes are out of the journal when it returns (renamed to
    /// `<name>.removed`: no reader finds them), and their unlinks and the
    /// fsyncs that make it durable run on a background thread (an unlink can
    /// wait for the device), so a writer that prunes on a timer does not
    /// hold up appends meanwhile. [`sync`](Self::sync) and `close` wait for
    /// them; a failure there is logged and counted in
    /// [`JournalStats::prune_errors`](crate::JournalStats::prune_errors).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] naming the segment if taking it out fails, as
    /// for `prune`.
    pub fn prune_deferred(&mut self) -> Result<usize, JournalError> {
        match self.apply_retention(Removal::Deferred) {
            (removed, None) => Ok(removed.len()),
            (_, Some(err)) => Err(err),
        }
    }

    /// Applies retention; returns the removed paths and the first failure,
    /// which is already logged and counted.
    pub(crate) fn apply_retention(&mut self, how: Removal) -> (Vec<PathBuf>, Option<JournalError>) {
        let span = tracing::debug_span!("journal_prune", dir = %self.dir.display(), removed = tracing::field::Empty, first_seq = tracing::field::Empty);
        let _entered = span.enter();
        // Segments are removed by their paths: not from a directory that
        // is no longer this writer's (maybe another writer's journal now).
        if let Err(e) = self.lock.check_still_ours(&self.dir) {
            self.stats.prune_errors += 1;
            return (Vec::new(), Some(self.poison(e)));
        }
        if let Some(last) = self.segments.back_mut() {
            last.bytes = self.active_len;
        }
        // Retention's plan, less what registered consumers pin (`pin.rs`),
        // and never the segment the readers' watermark names, nor a later
        // one: when the write of a newer watermark failed, readers still
        // read there until the next one is written.
        let mut plan = self.plan_retention();
        // A watermark whose write failed is written first, if it now can
        // be: a failure that passed must not hold retention back for good.
        if self.watermark.retry().is_err() {
            self.stats.watermark_errors += 1;
        }
        if let Some(named) = self.watermark.published_segment() {
            plan.remove = plan.remove.min(self.segments.iter().take_while(|s| s.first_seq < named).count());
        }
        let n = plan.remove;
        // Without a sealer thread (it could not start) everything runs here.
        let deferred = n > 0 && how == Removal::Deferred && self.start_sealer().is_ok();
        if how == Removal::Inline {
            // What a deferred pass renamed out and its tidy did not unlink
            // (a crash came first, or the unlink failed): at open, after
            // recovery, and at every `prune`.
            self.stats.prune_errors += segment::unlink_removed(&self.dir).1;
        }
        self.summarize_pruned(n, !deferred);
        // Again before the segments go by their paths: the summary (an
        // index to build, a write and its fsync) takes a while.
        if n > 0
            && let Err(e) = self.lock.check_still_ours(&self.dir)
        {
            self.stats.prune_errors += 1;
            return (Vec::new(), Some(self.poison(e)));
        }
        let mut removed = Vec::with_capacity(n);
        let mut failure = None;
        for _ in 0..n {
            let Some(seg) = self.segments.pop_front() else { break };
            // The sidecar goes first: a crash between the two leaves a
            // segment without a sidecar (rebuilt when needed), never the
            // reverse; one written meanwhile by a reader is swept later.
            crate::sidecar::remove_for(&seg.path);
            let unlink = || std::fs::remove_file(&seg.path);
            let taken_out = if deferred {
                self.opts.io.op(Step::PruneRemove, || {
                    match std::fs::rename(&seg.path, segment::removed_path(&seg.path)) {
                        // A longer name may need a directory block a full disk
                        // does not have; an unlink frees space instead.
                        Err(e) if e.kind() == std::io::ErrorKind::StorageFull => unlink(),
                        renamed => renamed,
                    }
                })
            } else {
                self.opts.io.op(Step::PruneRemove, unlink)
            };
            match taken_out {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %seg.path.display(), error = %e, "retention could not remove a segment; it is kept and retried at the next roll or prune");
                    failure = Some(JournalError::io("remove segment", &seg.path, e));
                    self.stats.prune_errors += 1;
                    self.segments.push_front(seg);
                    break;
                }
            }
            removed.push(seg.path);
        }
        if !removed.is_empty() {
            self.report_cut_loose(&plan.loose, removed.len());
            self.stats.pruned += removed.len() as u64;
            match (&self.sealer, deferred) {
                (Some(sealer), true) => sealer.tidy(self.tidy_job()),
                _ => {
                    if let Err(e) = segment::sync_dir(&self.opts.io, &self.dir) {
                        // The segments are gone from the namespace; after a power loss
                        // one may come back, and retention removes it again.
                        tracing::warn!(dir = %self.dir.display(), error = %e, "directory fsync after retention failed");
                        failure.get_or_insert(e);
                        self.stats.prune_errors += 1;
                    }
                    self.sweep_sidecars();
                }
            }
            span.record("removed", removed.len()).record("first_seq", self.first_seq());
            tracing::info!(segments = removed.len(), first_seq = self.first_seq(), "retention removed segments");
        } else if how == Removal::Deferred && self.sealer.as_mut().is_some_and(Sealer::tidy_failed_since) {
            // An unlink the sealer could not do: retried now, as a pass in
            // the call retries any `.removed` file (the tidy unlinks them all).
            if let Some(sealer) = &self.sealer {
                sealer.tidy(self.tidy_job());
            }
        }
        (removed, failure)
    }

    /// The sealer's half of a deferred retention pass.
    fn tidy_job(&self) -> Tidy {
        Tidy { dir: self.dir.clone(), first_seq: self.first_seq(), lock: Some(self.lock.identity()) }
    }

    /// Records the `n` oldest segments in the pruned-segments summary
    /// (`pruned.rs`) before retention removes them; `durable`: fsynced
    /// before it is renamed into place (otherwise the sealer's tidy fsyncs it).
    fn summarize_pruned(&self, n: usize, durable: bool) {
        let n = n.min(self.segments.len().saturating_sub(1));
        if n == 0 {
            return;
        }
        let remove: Vec<(u64, PathBuf)> = self.segments.iter().take(n).map(|s| (s.first_seq, s.path.clone())).collect();
        let next_first = self.segments[n].first_seq;
        crate::pruned::record(&self.dir, self.epoch, &remove, next_first, self.opts.index_key.as_ref(), durable);
    }

    /// Removes sidecars whose segment is gone (`sidecar::sweep`).
    pub(crate) fn sweep_sidecars(&self) {
        crate::sidecar::sweep(&self.dir, self.first_seq());
    }
}
