//! Pipelined group commit under [`SyncPolicy::Always`]:
//! [`Journal::write_batch`] writes a batch without waiting for the disk,
//! [`Journal::start_sync`] hands one `fdatasync` that covers everything
//! written so far to the journal's sync thread, and
//! [`Journal::poll_synced`] or [`Journal::wait_synced`] collect its outcome.
//! A caller writes batch N + 1 while batch N's `fdatasync` runs, and
//! acknowledges each batch once [`Journal::acked_seq`] reaches it. With
//! nothing else to do meanwhile, [`Journal::commit`] runs that `fdatasync`
//! on the caller's thread instead, sparing two thread wake-ups.
//!
//! Invariants:
//! - The acknowledged seq (and the readers' watermark) only ever moves to
//!   what a completed `fdatasync` covered: the end of the segment is noted
//!   before the sync thread starts its `fdatasync`, so a write that races
//!   with it is never counted as covered.
//! - At most one sync is in flight, always on the active segment: every call
//!   that syncs, rolls or closes on the writer's own thread
//!   ([`Journal::append_batch`], [`Journal::commit`], [`Journal::sync`],
//!   [`Journal::roll`], [`Journal::close`], drop) first waits for it, so its failure is seen
//!   before anything later is claimed durable.
//! - A failed `fdatasync` poisons the writer and cuts the segment back to
//!   its last durable length: nothing written after the last acknowledged
//!   seq survives in this run, and nothing is retried.

use std::fs::File;
use std::io;
use std::ops::RangeInclusive;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use crate::error::JournalError;
use crate::options::SyncPolicy;
use crate::seam::{Io, Step};
use crate::watermark::WriterState;
use crate::writer::Journal;

/// The writer's side of the pipeline.
#[derive(Debug, Default)]
pub(crate) struct Pipeline {
    thread: Option<SyncThread>,
    /// What the sync in flight covers.
    inflight: Option<Covered>,
    /// A cut-back not fdatasynced yet ([`Journal::sync_cut`]).
    pub(crate) cut_unsynced: bool,
}

/// What one `fdatasync` of the active segment covers.
#[derive(Clone, Copy, Debug)]
struct Covered {
    seq: u64,
    offset: u64,
}

/// The thread that runs the pipelined `fdatasync`s, one at a time.
#[derive(Debug)]
struct SyncThread {
    /// The file and how much of it the sync covers.
    jobs: Option<mpsc::Sender<(Arc<File>, u64)>>,
    done: Arc<Done>,
    thread: Option<JoinHandle<()>>,
}

/// Where the sync thread leaves an outcome, and who to wake for it.
#[derive(Debug, Default)]
struct Done {
    slot: Mutex<Slot>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct Slot {
    result: Option<io::Result<()>>,
    waker: Option<Waker>,
}

impl Done {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SyncThread {
    fn start(io: Io, dir: &std::path::Path) -> Result<SyncThread, JournalError> {
        let (tx, rx) = mpsc::channel::<(Arc<File>, u64)>();
        let done = Arc::new(Done::default());
        let d = Arc::clone(&done);
        let thread = std::thread::Builder::new()
            .name("events-journal-commit".into())
            .spawn(move || {
                for (file, covered) in rx {
                    // A panic must still answer, or the writer would wait forever.
                    let result = crate::seam::unwound(|| io.sync_covering(Step::AppendSync, &file, covered));
                    let mut slot = d.lock();
                    slot.result = Some(result);
                    let waker = slot.waker.take();
                    drop(slot);
                    d.ready.notify_all();
                    // A waker that panics must not end this thread with the
                    // next job queued: its outcome would never come (nor
                    // may logging that, which can panic too).
                    if let Some(waker) = waker
                        && std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake())).is_err()
                    {
                        let _ = std::panic::catch_unwind(|| {
                            tracing::error!("waking the writer after an fdatasync panicked");
                        });
                    }
                }
            })
            .map_err(|e| JournalError::io("spawn commit thread", dir, e))?;
        Ok(SyncThread { jobs: Some(tx), done, thread: Some(thread) })
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Journal {
    /// Writes records with consecutive seqs in one `write(2)` and returns
    /// their seqs, without waiting for the disk. Under
    /// [`SyncPolicy::Always`] they are not acknowledged yet: they count
    /// once a sync started after this call completes
    /// ([`start_sync`](Self::start_sync), then
    /// [`poll_synced`](Self::poll_synced) or
    /// [`wait_synced`](Self::wait_synced)), and readers see them only then.
    /// Under the other policies this is [`append_batch`](Self::append_batch).
    ///
    /// # Errors
    ///
    /// As [`append_batch`](Self::append_batch). Under `Always` a failed
    /// write cuts back every record no fdatasync covers, completed or in
    /// flight: records the sync in flight covers keep its outcome.
    pub fn write_batch<I, P>(&mut self, records: I) -> Result<RangeInclusive<u64>, JournalError>
    where
        I: IntoIterator<Item = (u64, P)>,
        P: AsRef<[u8]>,
    {
        self.write_records(records)
    }

    /// Starts one `fdatasync` of the active segment on the journal's sync
    /// thread, covering every record written so far. Returns `false`, and
    /// does nothing, when a sync is already in flight, when nothing written
    /// is unacknowledged, or when the policy is not [`SyncPolicy::Always`].
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if the writer is poisoned;
    /// [`JournalError::Io`] if the sync thread cannot be started.
    pub fn start_sync(&mut self) -> Result<bool, JournalError> {
        self.health()?;
        if self.opts.sync != SyncPolicy::Always || self.pipeline.inflight.is_some() || self.acked == self.last_seq() {
            return Ok(false);
        }
        if self.pipeline.thread.is_none() {
            match SyncThread::start(self.opts.io.clone(), &self.dir) {
                Ok(thread) => self.pipeline.thread = Some(thread),
                Err(e) => {
                    self.cut_back_unacked();
                    return Err(self.poison(e));
                }
            }
        }
        let jobs = self.pipeline.thread.as_ref().and_then(|t| t.jobs.as_ref());
        if jobs.is_none_or(|jobs| jobs.send((Arc::clone(&self.active), self.active_len)).is_err()) {
            let err = JournalError::io("start sync", &self.dir, io::Error::other("the commit thread is gone"));
            self.cut_back_unacked();
            return Err(self.poison(err));
        }
        self.pipeline.inflight = Some(Covered { seq: self.last_seq(), offset: self.active_len });
        Ok(true)
    }

    /// Acknowledges every record written so far with one `fdatasync` on
    /// this thread, after the sync in flight (if any): the inline
    /// counterpart of [`start_sync`](Self::start_sync) and
    /// [`wait_synced`](Self::wait_synced). Returns the new
    /// [`acked_seq`](Self::acked_seq); under the other policies it syncs
    /// nothing, and only reports a failure a background thread recorded
    /// (as every call does).
    ///
    /// # Errors
    ///
    /// [`JournalError::Failed`] if the writer is poisoned;
    /// [`JournalError::Io`] if an `fdatasync` fails, which poisons the
    /// writer and cuts the segment back to its last acknowledged record.
    pub fn commit(&mut self) -> Result<u64, JournalError> {
        self.health()?;
        self.settle()?;
        if self.opts.sync != SyncPolicy::Always || self.acked == self.last_seq() {
            return Ok(self.acked);
        }
        self.sync_active(Step::AppendSync)?;
        self.acknowledge(self.last_seq(), self.active_len);
        Ok(self.acked)
    }

    /// True while a sync started by [`start_sync`](Self::start_sync) has
    /// not been collected.
    pub fn syncing(&self) -> bool {
        self.pipeline.inflight.is_some()
    }

    /// The seq the readers' watermark (`<dir>/WATERMARK`) holds: how far
    /// readers in any process read. Behind [`acked_seq`](Self::acked_seq)
    /// only after a failed watermark write, until the next one succeeds.
    pub fn published_seq(&self) -> u64 {
        self.watermark.published_seq()
    }

    /// Writes the readers' watermark again when its last write failed (it
    /// then lags [`acked_seq`](Self::acked_seq) until the next append), and
    /// returns [`published_seq`](Self::published_seq). A [`Reader`](crate::Reader)
    /// stops at the watermark, so a writer that must read back what it
    /// acknowledged (its own index lookups) calls this first.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] naming the watermark file if the write fails
    /// again (counted in `watermark_errors`; the writer stays healthy).
    pub fn republish(&mut self) -> Result<u64, JournalError> {
        if let Err(e) = self.watermark.retry() {
            self.stats.watermark_errors += 1;
            return Err(e);
        }
        Ok(self.published_seq())
    }

    /// The newest seq acknowledged under the [`SyncPolicy`]: under `Always`
    /// the newest one a completed `fdatasync` covered, otherwise the newest
    /// one written. [`last_seq`](Self::last_seq) may be ahead of it while
    /// a pipelined sync is pending.
    pub fn acked_seq(&self) -> u64 {
        self.acked
    }

    /// Collects the sync in flight: `Ready(Ok(seq))` with the new
    /// [`acked_seq`](Self::acked_seq) once its `fdatasync` completed (at
    /// once when none is in flight), `Pending` until then (`cx` is woken).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] if the `fdatasync` failed, which poisons the
    /// writer and cuts the segment back to its last acknowledged record.
    pub fn poll_synced(&mut self, cx: &mut Context<'_>) -> Poll<Result<u64, JournalError>> {
        let Some(done) = self.inflight_done() else { return Poll::Ready(Ok(self.acked)) };
        let mut slot = done.lock();
        match slot.result.take() {
            Some(result) => {
                drop(slot);
                Poll::Ready(self.finish_sync(result))
            }
            None => {
                match &mut slot.waker {
                    Some(w) => w.clone_from(cx.waker()),
                    None => slot.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Waits for the sync in flight, if any, and returns the new
    /// [`acked_seq`](Self::acked_seq).
    ///
    /// # Errors
    ///
    /// As [`poll_synced`](Self::poll_synced).
    pub fn wait_synced(&mut self) -> Result<u64, JournalError> {
        let Some(done) = self.inflight_done() else { return Ok(self.acked) };
        let mut slot = done.lock();
        let result = loop {
            match slot.result.take() {
                Some(result) => break result,
                None => slot = done.ready.wait(slot).unwrap_or_else(PoisonError::into_inner),
            }
        };
        drop(slot);
        self.finish_sync(result)
    }

    fn inflight_done(&self) -> Option<Arc<Done>> {
        self.pipeline.inflight?;
        self.pipeline.thread.as_ref().map(|t| Arc::clone(&t.done))
    }

    /// Applies a pipelined sync's outcome.
    fn finish_sync(&mut self, result: io::Result<()>) -> Result<u64, JournalError> {
        let Some(covered) = self.pipeline.inflight.take() else { return Ok(self.acked) };
        if let Err(e) = result {
            let err = JournalError::io("fdatasync", self.active_path(), e);
            self.cut_back_unacked();
            self.sync_cut();
            return Err(self.poison(err));
        }
        self.stats.fsyncs += 1;
        self.synced_len = covered.offset;
        self.acknowledge(covered.seq, covered.offset);
        self.sync_cut();
        Ok(covered.seq)
    }

    /// `fdatasync`s a cut-back ([`cut_back`](Journal::cut_back)), best
    /// effort, so a power loss cannot undo it: never while a pipelined
    /// sync of the same file is in flight (a concurrent fdatasync may be
    /// told that sync's write-back error in its place, and the sync then
    /// report success over records it did not make durable), but once that
    /// sync completed. Nothing to do when no cut-back waits.
    pub(crate) fn sync_cut(&mut self) {
        if self.pipeline.inflight.is_some() {
            // A cut-back only ever precedes a poisoning: the in-flight sync
            // is waited for (`settle`, the façade's `fail`), which syncs it.
            self.pipeline.cut_unsynced = true;
            return;
        }
        if !std::mem::take(&mut self.pipeline.cut_unsynced) {
            return;
        }
        if let Err(e) = self.opts.io.sync_data(Step::TruncateSync, &self.active) {
            tracing::error!(
                path = %self.active_path().display(),
                error = %e,
                "could not fdatasync the cut-back of records whose append failed; a power loss may bring them back"
            );
        }
    }

    /// One `fdatasync` of the active segment on this thread, as `step`:
    /// everything written is durable once it returns. A failure cuts back
    /// what was never acknowledged and poisons the writer.
    pub(crate) fn sync_active(&mut self, step: Step) -> Result<(), JournalError> {
        // Under `Interval` the background thread fdatasyncs a `dup` of this
        // handle: one open file description, whose write-back error only
        // the first fdatasync to look is told of. This one waits out the
        // thread's sync in flight and looks at its failure after its own,
        // so it never reports success over an error the thread was told.
        let background = self.background.as_ref().map(|bg| Arc::clone(&bg.shared));
        let held = background.as_deref().map(crate::background::BgShared::hold);
        let synced = self.opts.io.sync_covering(step, &self.active, self.active_len);
        drop(held);
        if let Err(e) = synced {
            let err = JournalError::io("fdatasync", self.active_path(), e);
            self.cut_back_unacked();
            return Err(self.poison(err));
        }
        if background.is_some() {
            self.health()?;
        }
        self.stats.fsyncs += 1;
        self.synced_len = self.active_len;
        Ok(())
    }

    /// Acknowledges every record up to `seq`, which ends at `offset` of the
    /// active segment: readers in any process may read up to here. A failed
    /// watermark is logged and counted; readers lag until the next one.
    pub(crate) fn acknowledge(&mut self, seq: u64, offset: u64) {
        self.acked = seq;
        if let Err(e) = self.publish_at(WriterState::Open, seq, offset) {
            self.stats.watermark_errors += 1;
            tracing::warn!(error = %e, "publishing the watermark failed; readers lag until the next append");
        }
    }

    /// Where the cut-back after a failed write or fdatasync starts: under
    /// `Always`, after what a completed or in-flight fdatasync covers (the
    /// rest was never acknowledged, and its appends are refused); otherwise
    /// at `before`, the start of the failed write (everything before it was
    /// acknowledged by its own write).
    pub(crate) fn unacked_from(&self, before: u64) -> u64 {
        match self.opts.sync {
            SyncPolicy::Always => self.pipeline.inflight.map_or(self.synced_len, |c| c.offset),
            _ => before,
        }
    }

    /// After a failed fdatasync or a commit thread that cannot run: under
    /// `Always`, cuts back what was written and never acknowledged.
    pub(crate) fn cut_back_unacked(&mut self) {
        let keep = self.unacked_from(self.active_len);
        if keep < self.active_len {
            self.cut_back(keep);
        }
    }

    /// Waits for the sync in flight before anything else syncs, rolls or closes.
    pub(crate) fn settle(&mut self) -> Result<(), JournalError> {
        self.wait_synced().map(drop)
    }
}
