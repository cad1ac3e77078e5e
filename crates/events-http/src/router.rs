//! [`router`] and [`FeedRouter`]: the `axum::Router` a user mounts on a
//! [`FeedReader`], with `GET /stream` (`sse.rs`), `GET /status`
//! (`status.rs`), `GET /metrics` when asked for (`metrics.rs`, with the
//! `metrics` feature), and the plain-text 404 and 405 of `fallback.rs` for
//! anything else. The shared state is `state.rs`.
//!
//! Invariant: the router holds only the reader, the options and the client
//! counter; all per-client state lives in the response body, so it is freed
//! when the client goes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use events::{Bincode, Codec, Event, FeedReader};
use tokio::sync::watch;

use crate::fallback::{method_not_allowed, not_found};
use crate::sse::{self, DEFAULT_CHECKPOINT_AFTER, DEFAULT_KEEP_ALIVE, DEFAULT_STALL_TIMEOUT};
use crate::state::AppState;
use crate::status;

/// The shortest interval [`FeedRouter::keep_alive`] and
/// [`FeedRouter::stall_timeout`] take.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Ends the open `/stream` responses of the [`FeedRouter`] it came from
/// ([`FeedRouter::closer`]), and ends each new one at once (an empty event
/// stream). Clones close the same router; closing twice is closing once.
#[derive(Clone, Debug)]
pub struct StreamCloser(Arc<watch::Sender<bool>>);

impl StreamCloser {
    /// Ends every open `/stream` response of the router (after the frame
    /// each is sending), and each new one at once.
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once closed (never, if the router is gone unclosed).
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.0.subscribe();
        async move {
            if rx.wait_for(|closed| *closed).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The routes for `reader` with default options: `GET /stream` (Server-Sent
/// Events) and `GET /status` (JSON). See the [crate docs](crate) for the
/// wire format; use [`FeedRouter`] to change options.
///
/// `reader` is a writer's [`Feed::reader`](events::Feed::reader) (new events
/// come from its live tail) or a [`FeedReader::open`] on a journal another
/// process writes (new events are found by polling the files, and a
/// directory recreated under it is followed with an `epoch_mismatch` reset).
///
/// # Example
///
/// ```
/// use events::{Event, Feed};
/// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping(u32);
/// # impl Event for Ping {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// let feed: Feed<Ping> = Feed::builder(tmp.path()).open().await?;
/// let app = events_http::axum::Router::new().nest("/feed", events_http::router(feed.reader()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = tokio::spawn(async move { events_http::axum::serve(listener, app).await });
/// # server.abort(); feed.close().await?; Ok(()) }
/// ```
pub fn router<E: Event, C: Codec>(reader: FeedReader<E, C>) -> Router {
    FeedRouter::new(reader).build()
}

/// Builds the router with options; [`router`] is `FeedRouter::new(reader).build()`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use events::{Event, FeedReader};
/// use events_http::FeedRouter;
/// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping(u32);
/// # impl Event for Ping {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tmp = tempfile::tempdir()?;
/// # let feed: events::Feed<Ping> = events::Feed::builder(tmp.path()).open().await?;
/// // Serve a journal another process writes.
/// let reader: FeedReader<Ping> = FeedReader::open(tmp.path())?;
/// let routes = FeedRouter::new(reader).keep_alive(Duration::from_secs(5));
/// let clients = routes.clients(); // how many /stream responses are open
/// let app = routes.build();
/// assert_eq!(*clients.borrow(), 0);
/// # drop(app); feed.close().await?; Ok(()) }
/// ```
pub struct FeedRouter<E, C: Codec = Bincode> {
    state: AppState<E, C>,
}

impl<E, C: Codec> std::fmt::Debug for FeedRouter<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedRouter")
            .field("reader", &self.state.reader)
            .field("keep_alive", &self.state.keep_alive)
            .finish_non_exhaustive()
    }
}

impl<E: Event, C: Codec> FeedRouter<E, C> {
    /// Routes for `reader`.
    pub fn new(reader: FeedReader<E, C>) -> Self {
        let (clients, _) = watch::channel(0);
        FeedRouter {
            state: AppState {
                reader,
                keep_alive: DEFAULT_KEEP_ALIVE,
                checkpoint_after: DEFAULT_CHECKPOINT_AFTER,
                stall_timeout: DEFAULT_STALL_TIMEOUT,
                max_clients: usize::MAX,
                clients: Arc::new(clients),
                closer: StreamCloser(Arc::new(watch::channel(false).0)),
                #[cfg(feature = "metrics")]
                metrics: None,
            },
        }
    }

    /// How long a `/stream` response may stay silent before the server sends
    /// a keep-alive comment (`: keep-alive`), so that proxies and browsers do
    /// not time an idle feed out. Default: 15 s. Held to 100 ms..=1 day:
    /// zero would send comments in a busy loop, and a timer that far ahead
    /// overflows (the response then panicked at its first event).
    #[must_use]
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.state.keep_alive = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
        self
    }

    /// How long after the first skipped event a `/stream?stream=<id>`
    /// client whose feed has nothing more ready gets an
    /// `event: checkpoint` frame, whose id moves its `Last-Event-ID` past
    /// other streams' events (see the [crate docs](crate)); zero sends one
    /// as soon as the feed has nothing ready. A checkpoint also comes after
    /// every 1024 skipped events. Default: 1 s. A client that also asks for
    /// `live_output=1` gets its checkpoints at once whatever this says: the
    /// tokens that follow another stream's durable event wait behind it
    /// ([`FeedReader::stream_live`](events::FeedReader::stream_live)).
    #[must_use]
    pub fn checkpoint_after(mut self, after: Duration) -> Self {
        self.state.checkpoint_after = after;
        self
    }

    /// How long a `/stream` client that stopped reading keeps its stream:
    /// once its stream has had something for the connection (a frame, or
    /// an event ready) that the connection did not come for in this long
    /// (the client's socket buffers and the server's, about 400 KiB, are
    /// full), the response is ended, freeing at once what its stream holds
    /// (up to two chunks of events read ahead, and the journal segments
    /// their read maps, which retention's removals cannot free while it
    /// lives) and its place in [`max_clients`](Self::max_clients). A client
    /// that reads, but takes less than those buffers hold in this long, is
    /// ended the same way. When the client reads again it gets what was
    /// already sent, then the end of the response, and a browser's
    /// `EventSource` reconnects with its last id, missing nothing. A client
    /// of a quiet feed is never judged stalled (nothing waits for it) until
    /// the feed has an event for it. Takes effect between one and two
    /// timeouts after the client stopped reading. Default: 60 s. Held to
    /// 100 ms..=1 day.
    ///
    /// The connection itself stays open (hyper no longer polls the ended
    /// response, and holds its buffers) for as long as the client's system
    /// keeps it, answering the zero-window probes. To close it too, set
    /// `TCP_USER_TIMEOUT` on each accepted connection (Linux 5.11 and
    /// later close a connection whose peer keeps its window shut for
    /// that long), as `events serve` does (at twice this timeout), e.g.
    /// through
    /// [`axum::serve::ListenerExt::tap_io`].
    #[must_use]
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.state.stall_timeout = timeout.clamp(MIN_INTERVAL, MAX_INTERVAL);
        self
    }

    /// The most `/stream` responses open at once (counted from when the
    /// request is taken, its cursor's resolve included); a request beyond
    /// them is answered `503 Service Unavailable` with `Retry-After: 5` and
    /// a one-line body naming the limit (a browser's `EventSource` gives up
    /// on it; the viewer page retries by itself). After
    /// [`closer`](Self::closer) closed, a request gets the empty event
    /// stream instead (and `since=latest` its first frame), whatever the
    /// count. Each client costs its stream's read-ahead while it catches
    /// up: up to two chunks of about 4 MiB of records each (a chunk ends
    /// with the record that passes that), more once decoded, plus the
    /// connection's buffers. Default: no limit.
    #[must_use]
    pub fn max_clients(mut self, max: usize) -> Self {
        self.state.max_clients = max;
        self
    }

    /// The number of open `/stream` responses (and of requests resolving
    /// their cursor), updated as clients connect and as their responses are
    /// dropped (the client disconnected, or stopped reading for
    /// [`stall_timeout`](Self::stall_timeout)).
    pub fn clients(&self) -> watch::Receiver<usize> {
        self.state.clients.subscribe()
    }

    /// A handle that ends this router's open `/stream` responses, and each
    /// new one at once (an empty event stream, not an error: a browser's
    /// `EventSource` gives up for good on a non-200 answer), for a graceful
    /// shutdown: a response ends only when its feed is closed, and a
    /// follower's ([`FeedReader::open`](events::FeedReader::open)) never
    /// is, so `axum::serve(..).with_graceful_shutdown(..)` would wait for
    /// its clients for ever. Close it in the shutdown signal: each open
    /// response ends after the frame it is sending, and a browser's
    /// `EventSource` reconnects later with its last event id, missing
    /// nothing. A client that stopped reading is not polled, so it still
    /// holds its connection: bound the wait (as `events serve` does).
    ///
    /// ```
    /// use events::{Event, FeedReader};
    /// use events_http::FeedRouter;
    /// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping(u32);
    /// # impl Event for Ping {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// # let feed: events::Feed<Ping> = events::Feed::builder(tmp.path()).open().await?;
    /// # feed.close().await?;
    /// let routes = FeedRouter::new(FeedReader::<Ping>::open(tmp.path())?);
    /// let closer = routes.closer();
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// # stop.send(()).unwrap();
    /// // `stopped`: a Ctrl-C, a SIGTERM, an admin endpoint...
    /// axum::serve(listener, routes.build())
    ///     .with_graceful_shutdown(async move {
    ///         let _ = stopped.await;
    ///         closer.close();
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn closer(&self) -> StreamCloser {
        self.state.closer.clone()
    }

    /// Mounts `GET /metrics`: the feed's counters (the names of
    /// `events::metrics`, labelled `feed="<feed>"`, plus the gauge
    /// `events_http_clients`) in the Prometheus text format, refreshed at
    /// every scrape. The router keeps a Prometheus recorder of its own and
    /// installs nothing globally, so the response holds this feed's series
    /// only; use [`metrics_handle`](Self::metrics_handle) to serve an
    /// application-wide registry instead. Default: no `/metrics` route.
    ///
    /// # Example
    ///
    /// ```
    /// use events::{Event, Feed};
    /// use events_http::FeedRouter;
    /// # #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)] struct Ping(u32);
    /// # impl Event for Ping {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let tmp = tempfile::tempdir()?;
    /// let feed: Feed<Ping> = Feed::builder(tmp.path()).open().await?;
    /// let app = FeedRouter::new(feed.reader()).metrics("pings").build();
    /// # drop(app); feed.close().await?; Ok(()) }
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[must_use]
    pub fn metrics(mut self, feed: impl Into<String>) -> Self {
        self.state.metrics = Some(crate::exporter::Exporter::own(feed.into()));
        self
    }

    /// Mounts `GET /metrics` like [`metrics`](Self::metrics), but for an
    /// application that installed a Prometheus recorder itself
    /// (`PrometheusBuilder::install_recorder`, or `build_recorder` then
    /// `metrics::set_global_recorder`): every scrape publishes the feed's
    /// figures to the installed recorder and renders `handle`, so the
    /// response carries the application's own series too. `handle` must be
    /// the installed recorder's, or the feed's series will be missing.
    ///
    /// An installed registry keeps what was published into it: the series
    /// of a consumer or sink that is gone stay (unless the application's
    /// `PrometheusBuilder` has an `idle_timeout`), and a counter never goes
    /// below a value it had, so a feed reopened in the same process under
    /// the same `feed` label shows its old totals until the new ones pass
    /// them. [`metrics`](Self::metrics) has neither: each scrape renders a
    /// fresh snapshot.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    #[must_use]
    pub fn metrics_handle(
        mut self,
        feed: impl Into<String>,
        handle: metrics_exporter_prometheus::PrometheusHandle,
    ) -> Self {
        self.state.metrics = Some(crate::exporter::Exporter::installed(feed.into(), handle));
        self
    }

    /// The router: `GET /stream`, `GET /status`, `GET /metrics` if
    /// `FeedRouter::metrics` or `metrics_handle` asked for it (`metrics`
    /// feature), 405 for another method on those paths and 404 for other
    /// paths (both with a one-line body).
    pub fn build(self) -> Router {
        let router =
            Router::new().route("/stream", get(sse::stream::<E, C>)).route("/status", get(status::status::<E, C>));
        #[cfg(feature = "metrics")]
        let router = match self.state.metrics {
            Some(_) => router.route("/metrics", get(crate::metrics::scrape::<E, C>)),
            None => router,
        };
        router.method_not_allowed_fallback(method_not_allowed).fallback(not_found).with_state(self.state)
    }
}
