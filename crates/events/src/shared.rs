//! [`Shared`]: the state every handle of one journal directory shares (the
//! writer thread, `Feed` and `FeedReader` handles, every `FeedStream`), and
//! the type of the chunks the writer keeps for its streams. It sits below the modules that use it, so
//! the façade's imports form no circle.
//!
//! Invariant: `latest` is the last *acknowledged* seq: the writer stores it
//! only after a batch is journaled with its policy's durability, and a
//! reader of another process's journal refreshes it from the watermark that
//! writer publishes, so no stream replays past what an `append` caller could
//! have been told.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use events_core::{Envelope, Seq};
use events_journal::{Journal, Reader};
use parking_lot::Mutex;

use crate::bell::Bell;
use crate::consumer::CheckpointIo;
use crate::index::ActiveIndex;
use crate::stats::{Counters, FeedStats};

/// Events per chunk the writer keeps.
pub(crate) const LIVE_CHUNK: usize = 64;

/// How long a follower's read waits for a writer that is opening the
/// journal before it fails, and how often it looks.
pub(crate) const OPENING_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
pub(crate) const OPENING_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// One chunk the writer keeps for its streams: consecutive published
/// envelopes. Its last holder lets each go under a catch of its own
/// ([`LetGo`](crate::error::LetGo)): dropped as one slice, a second event
/// whose `Drop` panicked, during the first one's unwinding, aborted the
/// process.
pub(crate) type LiveChunk<E> = Arc<crate::error::LetGo<Arc<Envelope<E>>>>;

/// State shared by every handle, stream and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    /// Fixed for a writer's feed; a follower updates it when the directory
    /// is recreated under it.
    epoch: AtomicU64,
    // For a writer's feed, `latest`/`earliest` are set by the writer after
    // each batch; for a follower they are refreshed from the files.
    latest: AtomicU64,
    earliest: AtomicU64,
    /// For a writer's feed: the seq the journal's watermark holds, which
    /// the files' readers stop at (behind `latest` after a failed
    /// watermark write, until the next batch's).
    readable: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) reader: Reader,
    /// How durable consumers' checkpoints are opened (through a fault
    /// plan, in tests).
    pub(crate) checkpoints: CheckpointIo,
    /// The in-memory per-stream index of the newest segment (`index.rs`).
    pub(crate) active_index: ActiveIndex,
    /// Whether a background thread is building sidecars (`index.rs`).
    pub(crate) indexing: Arc<AtomicBool>,
    failure: Mutex<Option<String>>,
    /// Set with `failure`, read without its lock on hot paths.
    failed: AtomicBool,
    closed: AtomicBool,
    /// Set once a `close` put its command in the writer's inbox: the
    /// writer is closing even before it takes the command.
    closing: AtomicBool,
    /// Rung by the writer when its streams have something new (`bell.rs`).
    pub(crate) bell: Bell,
}

impl Shared {
    /// The state of a feed whose writer this process runs.
    pub(crate) fn for_writer(dir: PathBuf, journal: &Journal, reader: Reader) -> Shared {
        Shared {
            dir,
            epoch: AtomicU64::new(journal.epoch()),
            latest: AtomicU64::new(journal.last_seq()),
            earliest: AtomicU64::new(journal.first_seq()),
            readable: AtomicU64::new(journal.published_seq()),
            counters: Counters::default(),
            reader,
            checkpoints: CheckpointIo::default(),
            active_index: ActiveIndex::default(),
            indexing: Arc::new(AtomicBool::new(false)),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            bell: Bell::default(),
        }
    }

    /// The state of a follower of a journal another process (or no
    /// process) writes.
    pub(crate) fn for_follower(dir: PathBuf, epoch: u64, reader: Reader) -> Shared {
        let shared = Shared {
            dir,
            epoch: AtomicU64::new(epoch),
            latest: AtomicU64::new(0),
            earliest: AtomicU64::new(0),
            readable: AtomicU64::new(u64::MAX), // the reader's own bound
            counters: Counters::default(),
            reader,
            checkpoints: CheckpointIo::default(),
            active_index: ActiveIndex::default(),
            indexing: Arc::new(AtomicBool::new(false)),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(true),
            closing: AtomicBool::new(true),
            bell: Bell::default(),
        };
        shared.refresh_from_reader();
        shared
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A follower found the directory recreated with another epoch.
    pub(crate) fn set_epoch(&self, epoch: u64) {
        if self.epoch.swap(epoch, Ordering::AcqRel) != epoch {
            tracing::info!(dir = %self.dir.display(), new = epoch, "journal recreated");
        }
        self.refresh_from_reader();
    }

    /// For a follower: the epoch of the journal now in the directory (`None`
    /// while it holds none), adopted as the shared epoch when it changed.
    pub(crate) fn epoch_on_disk(&self) -> Option<u64> {
        let now = self.reader.epoch().ok()?;
        if now != self.epoch() {
            self.set_epoch(now);
        }
        Some(now)
    }

    /// Waits (blocking) while a writer is opening the journal: readers
    /// then stop at the sealed segments, so the newest one's acknowledged
    /// records cannot be read yet, and an empty answer would be taken for
    /// the end. Until `deadline`, then an error naming the directory.
    pub(crate) fn wait_while_a_writer_opens(&self, deadline: std::time::Instant) -> crate::Result<()> {
        self.reader.wait_while_a_writer_opens(deadline)?;
        Ok(())
    }

    /// Whether a writer holds the lock and has not finished opening.
    pub(crate) fn writer_opening(&self) -> crate::Result<bool> {
        Ok(self.reader.writer_opening()?)
    }

    pub(crate) fn failure(&self) -> Option<String> {
        if !self.is_failed() {
            return None;
        }
        self.failure.lock().clone()
    }

    pub(crate) fn set_failed(&self, cause: String) {
        self.failure.lock().get_or_insert(cause);
        self.failed.store(true, Ordering::Release);
    }

    /// Whether the writer failed, without taking the lock of `failure`.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
        // After the writer's last batch: a stream that sees it stopped
        // reads what is left, then ends; a `close` waiting for the writer
        // returns. The bell wakes each under a catch of its own: a waker
        // (an executor's code) that panics leaves the others woken.
        self.bell.stop();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A `close` queued its command: an open of the directory in this
    /// process waits for the writer to let go, as for a closed inbox.
    pub(crate) fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Waits until the writer stopped and released the directory
    /// ([`mark_closed`](Self::mark_closed)),
    /// on the bell, whose stop wakes every waiter (a `Notify` that met a
    /// waker that panicked left the other waiters unwoken for good).
    pub(crate) async fn wait_closed(&self) {
        /// The bell slot taken, given back however the wait ends.
        struct Slot<'a>(&'a Bell, u32);
        impl Drop for Slot<'_> {
            fn drop(&mut self) {
                self.0.release(self.1);
            }
        }
        let mut slot = Slot(&self.bell, crate::bell::NO_SLOT);
        std::future::poll_fn(|cx| {
            loop {
                let seen = self.bell.state();
                if self.is_closed() {
                    return std::task::Poll::Ready(());
                }
                if self.bell.wait(&mut slot.1, cx.waker(), seen) {
                    return std::task::Poll::Pending;
                }
            }
        })
        .await;
    }

    pub(crate) fn latest(&self) -> Seq {
        Seq::new(self.latest.load(Ordering::Acquire))
    }

    /// What the files' readers serve, at most: for a writer's feed, the seq
    /// its journal's watermark holds; unbounded for a follower, whose
    /// reader applies the same watermark itself.
    pub(crate) fn readable(&self) -> Seq {
        Seq::new(self.readable.load(Ordering::Acquire))
    }

    pub(crate) fn earliest(&self) -> Seq {
        Seq::new(self.earliest.load(Ordering::Acquire))
    }

    /// A reader found retention already past `earliest`: never report an
    /// older one.
    pub(crate) fn raise_earliest(&self, earliest: u64) {
        self.earliest.fetch_max(earliest, Ordering::AcqRel);
    }

    /// The counters with the current positions and health filled in.
    pub(crate) fn stats(&self) -> FeedStats {
        let mut stats = self.counters.snapshot();
        stats.latest_seq = self.latest().get();
        stats.earliest_seq = self.earliest().get();
        stats.problem = self.failure();
        stats.healthy = stats.problem.is_none();
        stats
    }

    /// For a follower: re-reads latest (the writer's acknowledged watermark,
    /// or what recovery would keep when no writer runs) and earliest from
    /// the journal files.
    /// A position that cannot be read is left as it was.
    pub(crate) fn refresh_from_reader(&self) {
        let _unreadable = self.try_refresh_from_reader();
    }

    /// The latest acknowledged seq alone, from the files (what a follower's
    /// `lag` needs: no listing for the earliest retained seq).
    pub(crate) fn refresh_latest_from_reader(&self) {
        let _unreadable = self.try_refresh_latest();
    }

    /// [`refresh_latest_from_reader`](Self::refresh_latest_from_reader),
    /// returning why the latest seq could not be read.
    fn try_refresh_latest(&self) -> Result<(), events_journal::JournalError> {
        self.latest.store(self.reader.last_seq()?, Ordering::Release);
        Ok(())
    }

    /// [`refresh_from_reader`](Self::refresh_from_reader), returning why a
    /// position could not be read.
    pub(crate) fn try_refresh_from_reader(&self) -> Result<(), events_journal::JournalError> {
        let last = self.try_refresh_latest();
        let first = self.reader.first_seq();
        if let Ok(first) = first {
            self.earliest.store(first, Ordering::Release);
        }
        last.and(first.map(drop))
    }

    /// Called by the writer after each journaled batch.
    pub(crate) fn after_batch(&self, appended: u64, last: u64, journal: &Journal) {
        let stats = journal.stats();
        let c = &self.counters;
        if appended > 0 {
            c.appended.fetch_add(appended, Ordering::Relaxed);
            c.batches.fetch_add(1, Ordering::Relaxed);
        }
        c.bytes.store(stats.bytes_written, Ordering::Relaxed);
        c.fsyncs.store(stats.fsyncs, Ordering::Relaxed);
        c.prune_errors.store(stats.prune_errors, Ordering::Relaxed);
        c.watermark_errors.store(stats.watermark_errors, Ordering::Relaxed);
        self.earliest.store(journal.first_seq(), Ordering::Release);
        self.readable.store(journal.published_seq(), Ordering::Release);
        self.latest.store(last, Ordering::Release);
    }
}
