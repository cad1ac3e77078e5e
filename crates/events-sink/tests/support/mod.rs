//! Shared helpers for the integration tests: a [`Recorder`] sink that keeps
//! every event it sees (optionally yielding first, to invite interleaving),
//! and a [`Gate`] sink that parks inside `emit` until released, standing in
//! for a stalled consumer. Invariant: helpers only observe; they never decide
//! a test's verdict.

#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::sync::Arc;

use async_trait::async_trait;
use events_sink::EventSink;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore};

/// Records every event it is given, in the order `emit` finished.
#[derive(Debug, Default)]
pub struct Recorder<T> {
    seen: Mutex<Vec<T>>,
    yield_first: bool,
}

impl<T: Clone> Recorder<T> {
    /// A recorder that records at once.
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder { seen: Mutex::new(Vec::new()), yield_first: false })
    }

    /// A recorder that yields to the scheduler before recording, so a racy
    /// caller would get a chance to reorder events.
    pub fn yielding() -> Arc<Self> {
        Arc::new(Recorder { seen: Mutex::new(Vec::new()), yield_first: true })
    }

    /// What was recorded so far.
    pub fn seen(&self) -> Vec<T> {
        self.seen.lock().clone()
    }
}

#[async_trait]
impl<T: Clone + Send + Sync> EventSink<T> for Recorder<T> {
    async fn emit(&self, event: &T) {
        if self.yield_first {
            tokio::task::yield_now().await;
        }
        self.seen.lock().push(event.clone());
    }
}

/// A sink that parks in `emit` until a permit is released, recording what
/// got through; `entered` fires each time an emit starts waiting.
#[derive(Debug)]
pub struct Gate<T> {
    permits: Semaphore,
    /// Notified each time an `emit` starts waiting at the gate.
    pub entered: Notify,
    passed: Mutex<Vec<T>>,
}

impl<T: Clone> Gate<T> {
    /// A closed gate.
    pub fn closed() -> Arc<Self> {
        Arc::new(Gate { permits: Semaphore::new(0), entered: Notify::new(), passed: Mutex::new(Vec::new()) })
    }

    /// Lets every current and future emit through.
    pub fn open(&self) {
        self.permits.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// What got through so far.
    pub fn passed(&self) -> Vec<T> {
        self.passed.lock().clone()
    }
}

#[async_trait]
impl<T: Clone + Send + Sync> EventSink<T> for Gate<T> {
    async fn emit(&self, event: &T) {
        self.entered.notify_one();
        let permit = self.permits.acquire().await.expect("the gate's semaphore is never closed");
        permit.forget();
        self.passed.lock().push(event.clone());
    }
}
