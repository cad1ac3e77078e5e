//! The feeds this process writes, by journal directory, so that opening a
//! directory whose previous `Feed` was just dropped waits for that writer to
//! let go instead of failing with "locked". Dropping the last handle makes the
//! writer thread drain its inbox, fsync and release the lock in the
//! background; tests, hot reloads and supervisors reopen right after.
//!
//! Invariant: only a writer with no live handle (no `Feed`, `Inbox` or
//! `Session` left that could still send to it, or a `close` under way: its
//! command queued, or its inbox closed) is waited for, and only for a
//! bounded time; a second *live* writer is refused at once, as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::shared::Shared;

/// How long `open` waits for a closing writer of this process.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(10);

struct Entry {
    /// Whether any handle can still send to the writer.
    live: Box<dyn Fn() -> bool + Send>,
    shared: Weak<Shared>,
}

static WRITERS: LazyLock<Mutex<HashMap<PathBuf, Entry>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn key(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The sinks of the last feed this process opened on each directory: the
/// signal that turns `true` once their tasks delivered everything
/// (`SinkQueue::spawn`'s receiver).
static SINKS: LazyLock<Mutex<HashMap<PathBuf, watch::Receiver<bool>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records `done` as the signal of the sinks of `dir`'s new feed, and
/// returns the previous feed's when its sinks are still delivering: the
/// new feed's sinks wait for it, so a sink shared across a reopen (one
/// `Arc` given to both) sees the old feed's events before the new one's.
pub(crate) fn hand_over_sinks(dir: &Path, done: watch::Receiver<bool>) -> Option<watch::Receiver<bool>> {
    let busy = |d: &watch::Receiver<bool>| !*d.borrow() && d.has_changed().is_ok();
    let mut sinks = SINKS.lock();
    sinks.retain(|_, d| busy(d));
    sinks.insert(key(dir), done)
}

/// An open under way: its id and a receiver whose sender ends with it.
type Underway = (u64, watch::Receiver<()>);

/// The journal opens of this process under way, by directory.
static OPENING: LazyLock<Mutex<HashMap<PathBuf, Vec<Underway>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// An open of a journal directory under way in this process, from before
/// its blocking `Journal::open` starts until that open is refused, or, once
/// it succeeded, until it is dropped after the journal (so after the lock
/// of a journal nobody took is released):
/// an open cut short goes on on its blocking thread, holding the lock, and
/// an open of the directory tried again meanwhile waits for it
/// ([`wait_for_opening`]) instead of being refused as a second writer.
pub(crate) struct Opening {
    key: PathBuf,
    id: u64,
    _ends: watch::Sender<()>,
}

impl Opening {
    pub(crate) fn start(dir: &Path) -> Opening {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (ends, rx) = watch::channel(());
        let key = key(dir);
        OPENING.lock().entry(key.clone()).or_default().push((id, rx));
        Opening { key, id, _ends: ends }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut opening = OPENING.lock();
        if let Some(list) = opening.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                opening.remove(&self.key);
            }
        }
    }
}

/// Waits (at most [`CLOSE_WAIT`]) for the opens of `dir` under way in this
/// process to end. Returns `true` if there was one, so the caller should
/// try to open again.
pub(crate) async fn wait_for_opening(dir: &Path) -> bool {
    let others: Vec<_> =
        OPENING.lock().get(&key(dir)).map(|list| list.iter().map(|(_, rx)| rx.clone()).collect()).unwrap_or_default();
    if others.is_empty() {
        return false;
    }
    let ended = futures::future::join_all(others.into_iter().map(|mut rx| async move {
        // `Err` once its sender (the open) is gone: nothing is ever sent.
        let _ = rx.changed().await;
    }));
    if tokio::time::timeout(CLOSE_WAIT, ended).await.is_err() {
        tracing::warn!(dir = %dir.display(), "another open of this process did not end in time");
        return false;
    }
    true
}

/// Records the writer of `dir`; `live` tells whether a handle can still send to it.
pub(crate) fn register(dir: &Path, shared: &Arc<Shared>, live: impl Fn() -> bool + Send + 'static) {
    let mut writers = WRITERS.lock();
    writers.retain(|_, e| e.shared.upgrade().is_some_and(|s| !s.is_closed()));
    writers.insert(key(dir), Entry { live: Box::new(live), shared: Arc::downgrade(shared) });
}

/// Waits (at most [`CLOSE_WAIT`]) for this process's writer of `dir` to
/// stop, if it has no live handle left. Returns `true` if there was such a
/// writer and it stopped, so the caller should try to open again.
pub(crate) async fn wait_for_closing(dir: &Path) -> bool {
    let shared = {
        let writers = WRITERS.lock();
        match writers.get(&key(dir)) {
            // Gone already: the writer finished between the failed open and now.
            Some(entry) if !(entry.live)() => entry.shared.upgrade(),
            _ => return false,
        }
    };
    let Some(shared) = shared else { return true };
    if tokio::time::timeout(CLOSE_WAIT, shared.wait_closed()).await.is_err() {
        tracing::warn!(dir = %dir.display(), "a closing writer of this process did not release the directory in time");
        return false;
    }
    true
}
