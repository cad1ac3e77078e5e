//! The sealer: under `SyncPolicy::Never`, the `fdatasync` of a segment that
//! a roll seals runs on this background thread, so the append path never
//! waits for the disk, while sealed data still reaches it within moments of
//! the roll. `Journal::sync` and `close` wait for every seal queued before
//! them; a failed seal poisons the writer like any failed fsync.
//!
//! Invariant: seals complete in roll order; once `flush` returns, every
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

enum Job {
    Seal(File, PathBuf),
    /// Answered once every job queued before it is done.
    Flush(mpsc::Sender<()>),
}

#[derive(Debug, Default)]
struct State {
    failed: Mutex<Option<String>>,
    fsyncs: AtomicU64,
}

/// The handle the writer keeps.
#[derive(Debug)]
pub(crate) struct Sealer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<State>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Seal(_, path) => write!(f, "Seal({})", path.display()),
            Job::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Sealer {
    /// Starts the thread.
    pub(crate) fn start(io: Io, dir: &std::path::Path) -> Result<Sealer, JournalError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let state = Arc::new(State::default());
        let s = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("events-journal-seal".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Seal(file, path) => {
                            if s.failed.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
                                continue; // never retried, never continued past a failure
                            }
                            match io.sync_data(Step::RollSync, &file) {
                                Ok(()) => {
                                    s.fsyncs.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    let err = JournalError::io("fdatasync", &path, e);
                                    tracing::error!(error = %err, "sealing a segment failed");
                                    *s.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
                                }
                            }
                        }
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| JournalError::io("spawn seal thread", dir, e))?;
        Ok(Sealer { jobs: Some(tx), thread: Some(thread), state })
    }

    /// Queues the `fdatasync` of a segment just sealed.
    pub(crate) fn seal(&self, file: File, path: PathBuf) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Seal(file, path));
        }
    }

    /// Waits until every seal queued so far is done.
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

    /// Seals completed.
    pub(crate) fn fsyncs(&self) -> u64 {
        self.state.fsyncs.load(Ordering::Relaxed)
    }

    /// Finishes every queued seal and stops the thread.
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
