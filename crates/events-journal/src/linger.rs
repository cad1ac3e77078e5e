//! How long a reader keeps a segment mapped after the last read that used
//! it: [`LINGER`], then one thread per process (the sweeper) lets go of
//! the map. `mapping.rs` keeps each map in its cache weakly, plus a strong
//! handle stamped with its last use; the sweeper drops the handles not
//! used for [`LINGER`], so a map lives only as long as the records and
//! iterators that hold it, and that long after.
//!
//! Why not simply as long as the cache entry: a segment that retention
//! removed keeps its blocks on the disk while a map of it lives, and the
//! cache only learns of the removal at its reader's next listing, which a
//! server whose clients follow the live tail (reading no file) may never
//! make. Why not drop it at once: a reader that reads the same segments
//! again (clients catching up one after another) would set up the pages'
//! mappings again every time, half again the cost of a read from a map
//! already set up.
//!
//! Invariant: the sweeper runs while some cache holds a lingering map, and
//! sleeps on a condition variable otherwise; it never holds the registry
//! lock while it takes a cache's lock, and drops the maps it lets go of
//! after releasing both.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use crate::mapping::{Bytes, Cached};

/// How long a map stays after the last read that used it.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// A reader's cache of segments, by first seq.
pub(crate) type Cache = Mutex<HashMap<u64, Cached>>;

struct Sweeper {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    caches: Vec<Weak<Cache>>,
    /// Whether the thread runs (it may have failed to start).
    running: bool,
    /// Whether some cache may hold a lingering map.
    lingering: bool,
    /// Bumped at every [`keep`]: a sweep that found nothing lingering
    /// sleeps only if none came in meanwhile.
    kept: u64,
}

fn sweeper() -> &'static Sweeper {
    static SWEEPER: OnceLock<Sweeper> = OnceLock::new();
    SWEEPER.get_or_init(|| Sweeper { state: Mutex::new(State::default()), wake: Condvar::new() })
}

fn state() -> std::sync::MutexGuard<'static, State> {
    sweeper().state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes `cache` one the sweeper looks at.
pub(crate) fn register(cache: &Arc<Cache>) {
    let mut state = state();
    state.caches.retain(|c| c.strong_count() > 0);
    state.caches.push(Arc::downgrade(cache));
}

/// Whether a cache may keep a map lingering: the sweeper runs (started
/// here if need be) and will let go of it. `false` when the thread cannot
/// be started: maps then live only as long as the reads that hold them.
pub(crate) fn keep() -> bool {
    let mut state = state();
    state.kept = state.kept.wrapping_add(1);
    if !state.running {
        let started = std::thread::Builder::new().name("events-journal-maps".into()).spawn(run);
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the thread that lets go of unused segment maps");
            return false;
        }
        state.running = true;
    }
    if !state.lingering {
        state.lingering = true;
        sweeper().wake.notify_one();
    }
    true
}

fn run() {
    let sweeper = sweeper();
    loop {
        let kept = {
            let mut state = state();
            while !state.lingering {
                state = sweeper.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            state.kept
        };
        std::thread::sleep(LINGER / 2);
        let caches: Vec<Arc<Cache>> = {
            let mut state = state();
            state.caches.retain(|c| c.strong_count() > 0);
            state.caches.iter().filter_map(Weak::upgrade).collect()
        };
        let mut released: Vec<Arc<Bytes>> = Vec::new();
        let mut still = false;
        for cache in caches {
            let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
            for cached in cache.values_mut() {
                match cached.expire(LINGER) {
                    Some(map) => released.push(map),
                    None => still |= cached.lingers(),
                }
            }
        }
        // Unmapped here, with no lock held.
        drop(released);
        let mut state = state();
        if !still && state.kept == kept {
            state.lingering = false;
        }
    }
}
