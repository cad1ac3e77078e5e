//! The sealer: the work of a roll that need not hold up the append path
//! runs on this background thread. Under `SyncPolicy::Never`, the
//! `fdatasync` of the segment the roll seals, so sealed data still reaches
//! the disk within moments of the roll; under every policy, the slow half
//! of the retention that follows the roll ([`Tidy`]): the roll took the pruned segments out of
//! the journal by renaming them (`prune.rs`; their small sidecars it still
//! unlinks in the call), and this thread unlinks them, sweeps stale
//! sidecars and makes the pruned summary and the directory durable. An
//! unlink of a segment can wait for the device (a file system mounted with
//! `discard` trims the freed blocks before it returns) and every fsync
//! waits behind the sealed segment's writeback, which is why neither runs
//! on the writer's thread. `Journal::sync` and `close` wait for every job
//! queued before them; a failed seal poisons the writer like any failed
//! fsync, a failed tidy is logged and counted in `prune_errors` (what it
//! leaves behind is retried by the next tidy, `prune` or open).
//!
//! Invariant: jobs complete in roll order; at most [`QUEUE`] wait (a roll
//! past that waits for the sealer); once `flush` returns, every
//! segment sealed before it was fdatasync'ed, or the failure is recorded and
//! the writer refuses every later append (a failed fsync is never retried).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::error::JournalError;
use crate::seam::{Io, Step};
use crate::segment;

/// Jobs queued at most: a roll that finds the queue full waits for the
/// sealer (a slow disk pushes back on appends), so the open descriptors of
/// segments waiting to be sealed, and the pruned files waiting to be
/// unlinked, stay bounded.
pub(crate) const QUEUE: usize = 16;

enum Job {
    Seal(File, PathBuf),
    Tidy(Tidy),
    /// Answered once every job queued before it is done.
    Flush(mpsc::Sender<()>),
}

#[derive(Debug, Default)]
struct State {
    failed: Mutex<Option<String>>,
    fsyncs: AtomicU64,
    tidy_errors: AtomicU64,
}

/// What is left of a roll's retention once the writer renamed the pruned
/// segments to their [`removed_path`](segment::removed_path).
#[derive(Debug)]
pub(crate) struct Tidy {
    pub(crate) dir: PathBuf,
    /// The first seq the journal retained (sidecars named below it are swept).
    pub(crate) first_seq: u64,
    /// The writer's directory (`DirLock::identity`): a directory that is
    /// another one is no longer the writer's, and nothing in it is
    /// unlinked or swept.
    pub(crate) lock: Option<crate::lock::Identity>,
}

impl Tidy {
    /// Fsyncs the pruned summary, unlinks every renamed segment (those of
    /// this roll and any an earlier tidy could not unlink), fsyncs the
    /// directory and sweeps stale sidecars; returns how many steps failed
    /// (each is logged). The unlinks go through the I/O seam
    /// ([`Step::TidyUnlink`]); the fsyncs are plain `std`, like the
    /// summary's own write, so the `DirSync` counts of fault plans stay
    /// those of the writer's thread. None of this can lose a record.
    pub(crate) fn run(&self, io: &Io) -> u64 {
        if let Some(lock) = self.lock
            && !crate::lock::still_ours(&self.dir, lock)
        {
            tracing::warn!(dir = %self.dir.display(), "the directory is no longer this writer's; its retention tidy is skipped");
            return 1;
        }
        let mut errors = 0;
        if let Err(e) = crate::pruned::sync(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "fsync of the pruned-segments summary failed");
            errors += 1;
        }
        errors +=
            segment::unlink_removed_with(&self.dir, |path| io.op(Step::TidyUnlink, || std::fs::remove_file(path))).1;
        // For the summary's rename, the segments' renames and the unlinks.
        if let Err(e) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            // The segments are gone from the namespace; after a power loss
            // one may come back, and retention removes it again.
            tracing::warn!(dir = %self.dir.display(), error = %e, "directory fsync after retention failed");
            errors += 1;
        }
        crate::sidecar::sweep(&self.dir, self.first_seq);
        errors
    }
}

/// The thread's loop: each job in turn until the writer lets go.
fn run(jobs: &mpsc::Receiver<Job>, s: &State, io: &Io) {
    for job in jobs {
        match job {
            Job::Seal(file, path) => {
                if s.failed.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
                    continue; // never retried, never continued past a failure
                }
                match crate::seam::unwound(|| io.sync_data(Step::RollSync, &file)) {
                    Ok(()) => {
                        s.fsyncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        let err = JournalError::io("fdatasync", &path, e);
                        // Recorded before it is logged: logging may panic.
                        *s.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
                        tracing::error!(error = %err, "sealing a segment failed");
                    }
                }
            }
            Job::Tidy(tidy) => {
                s.tidy_errors.fetch_add(tidy.run(io), Ordering::Relaxed);
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The handle the writer keeps.
#[derive(Debug)]
pub(crate) struct Sealer {
    jobs: Option<mpsc::SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<State>,
    /// [`tidy_errors`](Self::tidy_errors) when a retry was last queued.
    retried_errors: u64,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Seal(_, path) => write!(f, "Seal({})", path.display()),
            Job::Tidy(tidy) => write!(f, "Tidy({})", tidy.dir.display()),
            Job::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Sealer {
    /// Starts the thread.
    pub(crate) fn start(io: Io, dir: &std::path::Path) -> Result<Sealer, JournalError> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let state = Arc::new(State::default());
        let s = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("events-journal-seal".into())
            .spawn(move || {
                // A panic (a `tracing` layer's, say) ends the thread as a
                // failed seal does: recorded, so the writer fails at its
                // next call instead of going on with seals nobody runs.
                // `rx` outlives a panic until the failure is recorded: a
                // writer's `flush` waits on it until then, and finds it.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&rx, &s, &io)));
                if let Err(panic) = ran {
                    let why = format!("the seal thread panicked: {}", crate::panic_text(panic.as_ref()));
                    // Recorded before it is logged: logging may panic again.
                    s.failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| why.clone());
                    tracing::error!(error = %why, "sealing stopped");
                }
            })
            .map_err(|e| JournalError::io("spawn seal thread", dir, e))?;
        Ok(Sealer { jobs: Some(tx), thread: Some(thread), state, retried_errors: 0 })
    }

    /// Queues the `fdatasync` of a segment just sealed.
    pub(crate) fn seal(&self, file: File, path: PathBuf) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Seal(file, path));
        }
    }

    /// Queues the rest of a roll's retention.
    pub(crate) fn tidy(&self, tidy: Tidy) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Tidy(tidy));
        }
    }

    /// Whether a tidy failed since the last call that answered `true`: what
    /// it could not unlink is then retried by the next retention pass, even
    /// one that removes nothing.
    pub(crate) fn tidy_failed_since(&mut self) -> bool {
        let errors = self.tidy_errors();
        let failed = errors > self.retried_errors;
        self.retried_errors = errors;
        failed
    }

    /// Waits until every job queued so far is done.
    pub(crate) fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if let Some(jobs) = &self.jobs
            && jobs.send(Job::Flush(tx)).is_ok()
        {
            let _ = rx.recv();
        }
    }

    /// The first failed seal, if any.
    pub(crate) fn failure(&self) -> Option<String> {
        self.state.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Steps of tidy jobs that failed (`JournalStats::prune_errors`).
    pub(crate) fn tidy_errors(&self) -> u64 {
        self.state.tidy_errors.load(Ordering::Relaxed)
    }

    /// Seals completed.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.state.fsyncs.load(Ordering::Relaxed)
    }

    /// Finishes every queued job and stops the thread.
    pub(crate) fn stop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tidy_unlinks_every_renamed_segment_and_sweeps_stale_sidecars() {
        let dir = tempfile::tempdir().unwrap();
        let seg = |seq: u64| dir.path().join(segment::file_name(seq));
        // Segment 1's file is what an earlier tidy could not unlink, segment
        // 2's this roll's; segment 3 is retained. A sidecar of a removed
        // segment that a reader wrote meanwhile is swept, 3's is kept.
        for seq in [1, 2] {
            std::fs::write(segment::removed_path(&seg(seq)), b"segment").unwrap();
        }
        std::fs::write(seg(3), b"segment").unwrap();
        for seq in [2, 3] {
            std::fs::write(crate::sidecar::sidecar_path(&seg(seq)), b"index").unwrap();
        }
        let tidy = Tidy { dir: dir.path().to_path_buf(), first_seq: 3, lock: None };
        assert_eq!(tidy.run(&Io::default()), 0);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [format!("{:020}.idx", 3), segment::file_name(3)]);
    }

    #[test]
    fn an_unlink_that_fails_is_counted_and_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let seg = |seq: u64| dir.path().join(segment::file_name(seq));
        for seq in [1, 2, 3] {
            std::fs::write(segment::removed_path(&seg(seq)), b"segment").unwrap();
        }
        let stuck = segment::removed_path(&seg(2));
        let unlink = |path: &std::path::Path| {
            if path == stuck { Err(std::io::Error::from_raw_os_error(libc::EIO)) } else { std::fs::remove_file(path) }
        };
        assert_eq!(segment::unlink_removed_with(dir.path(), unlink), (3, 1));
        assert!(stuck.exists() && !segment::removed_path(&seg(1)).exists() && !segment::removed_path(&seg(3)).exists());
        // Retried: the next tidy (or open) unlinks it.
        assert_eq!(segment::unlink_removed(dir.path()), (1, 0));
        assert!(!stuck.exists());
    }
}
