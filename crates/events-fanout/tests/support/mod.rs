//! Shared helpers for the fan-out integration tests: a waker that counts its
//! wakeups (so tests can assert *when* a blocked emit is released, without
//! sleeping) and a small multi-thread runtime builder.

#![allow(dead_code, reason = "each test file uses a different subset of these helpers")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::Waker,
};

use futures::task::ArcWake;

/// A waker that counts how many times it was woken.
#[derive(Debug, Default)]
pub(crate) struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    /// A fresh counter and a `Waker` that bumps it.
    pub(crate) fn new_waker() -> (Arc<Self>, Waker) {
        let counter = Arc::new(Self::default());
        let waker = futures::task::waker(Arc::clone(&counter));
        (counter, waker)
    }

    /// Wakeups so far.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A 2-worker tokio runtime, like the machine the benches run on.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}
