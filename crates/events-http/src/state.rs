//! [`AppState`]: what every handler of the router shares — the feed's
//! [`FeedReader`], the keep-alive interval, the open-client counter, the
//! closer of its streams and,
//! with the `metrics` feature, the `/metrics` exporter. `router.rs` builds
//! it; `sse.rs`, `status.rs` and `metrics.rs` read it. It lives in its
//! own module so that the handlers depend on it and the router depends on
//! the handlers, with no import going back up.
//!
//! Invariant: the state holds no per-client data; everything a client
//! costs lives in its response body and is freed when the client goes.

use std::sync::Arc;
use std::time::Duration;

use events::{Codec, FeedReader};
use tokio::sync::watch;

/// What every handler shares; cloned per request (the reader is a cheap
/// handle, the counter an `Arc`).
pub(crate) struct AppState<E, C: Codec> {
    pub(crate) reader: FeedReader<E, C>,
    pub(crate) keep_alive: Duration,
    /// How soon a `?stream=` client gets a checkpoint frame once the feed
    /// is quiet after skipping other streams' events.
    pub(crate) checkpoint_after: Duration,
    /// How long a frame may wait for a client that stopped reading before
    /// its response is ended (`stall.rs`).
    pub(crate) stall_timeout: Duration,
    /// The most `/stream` responses open at once.
    pub(crate) max_clients: usize,
    pub(crate) clients: Arc<watch::Sender<usize>>,
    /// Ends the open `/stream` responses and refuses new ones once closed.
    pub(crate) closer: crate::router::StreamCloser,
    /// Set when `/metrics` is mounted.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<Arc<crate::exporter::Exporter>>,
}

impl<E, C: Codec> Clone for AppState<E, C> {
    fn clone(&self) -> Self {
        AppState {
            reader: self.reader.clone(),
            keep_alive: self.keep_alive,
            checkpoint_after: self.checkpoint_after,
            stall_timeout: self.stall_timeout,
            max_clients: self.max_clients,
            clients: Arc::clone(&self.clients),
            closer: self.closer.clone(),
            #[cfg(feature = "metrics")]
            metrics: self.metrics.clone(),
        }
    }
}
