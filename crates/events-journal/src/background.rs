//! The `SyncPolicy::Interval` thread: [`Background`] `fdatasync`s a clone
//! of the active segment's handle every interval when something was
//! written. The writer (`writer.rs`) marks it dirty after each append and
//! switches it to a new segment on a roll; `open.rs` starts it. The sealer
//! (seals under `SyncPolicy::Never`, a roll's retention) is its sibling,
//! `sealer.rs`.
//!
//! Invariant: a failed `fdatasync` ends the thread and is kept as its
//! failure, which the writer turns into poisoning at its next call; a stop
//! (or the writer dropping the channel) ends the loop without waiting for
//! the interval.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::JournalError;
use crate::seam::{Io, Step};

/// The `SyncPolicy::Interval` thread: `fdatasync`s a clone of the active
/// segment's handle every interval when something was written.
#[derive(Debug)]
pub(crate) struct Background {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    pub(crate) shared: Arc<BgShared>,
}

#[derive(Debug)]
pub(crate) struct BgShared {
    file: Mutex<(File, PathBuf)>,
    pub(crate) dirty: AtomicBool,
    failed: Mutex<Option<String>>,
    pub(crate) fsyncs: AtomicU64,
}

/// The thread's loop. The channel is the timer and the stop signal at
/// once: a message or a disconnect ends it without waiting for the interval.
fn run(rx: &mpsc::Receiver<()>, every: Duration, s: &BgShared, io: &Io) {
    while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
        if !s.dirty.swap(false, Ordering::AcqRel) {
            continue;
        }
        let guard = s.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = crate::seam::unwound(|| io.sync_data(Step::BackgroundSync, &guard.0)) {
            let err = JournalError::io("fdatasync", &guard.1, e);
            // Recorded before it is logged (logging may panic), while the
            // writer's own sync waits on `guard`; logged after it is let go
            // (a slow logging layer must not hold the writer's sync).
            *s.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(err.to_string());
            drop(guard);
            tracing::error!(error = %err, "background sync failed");
            return;
        }
        s.fsyncs.fetch_add(1, Ordering::Relaxed);
    }
}

impl BgShared {
    /// Why the thread stopped: its `fdatasync` failed.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Holds off the thread's next `fdatasync` (and waits out one in
    /// flight, whose failure is then recorded) while the guard lives.
    pub(crate) fn hold(&self) -> std::sync::MutexGuard<'_, (File, PathBuf)> {
        self.file.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Background {
    pub(crate) fn start(active: &File, path: &Path, every: Duration, io: Io) -> Result<Background, JournalError> {
        let file = active.try_clone().map_err(|e| JournalError::io("clone handle", path, e))?;
        let shared = Arc::new(BgShared {
            file: Mutex::new((file, path.to_path_buf())),
            dirty: AtomicBool::new(false),
            failed: Mutex::new(None),
            fsyncs: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel::<()>();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("events-journal-sync".into())
            .spawn(move || {
                // A panic (a `tracing` layer's, say) ends the thread as a
                // failed sync does: recorded, so the writer fails at its next
                // call instead of going on with nothing synced in the background.
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&rx, every, &s, &io)));
                if let Err(panic) = ran {
                    let why = format!("the background sync thread panicked: {}", crate::panic_text(panic.as_ref()));
                    // Recorded before it is logged: logging may panic again.
                    s.failed.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| why.clone());
                    tracing::error!(error = %why, "background sync stopped");
                }
            })
            .map_err(|e| JournalError::io("spawn sync thread", path, e))?;
        Ok(Background { stop: Some(tx), thread: Some(thread), shared })
    }

    pub(crate) fn switch(&self, file: &File, path: &Path) -> Result<(), JournalError> {
        let clone = file.try_clone().map_err(|e| JournalError::io("clone handle", path, e))?;
        *self.shared.file.lock().unwrap_or_else(PoisonError::into_inner) = (clone, path.to_path_buf());
        Ok(())
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    pub(crate) fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
