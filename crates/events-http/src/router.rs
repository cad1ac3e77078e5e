//! [`router`] and [`FeedRouter`]: the `axum::Router` a user mounts, with
//! `GET /stream` (`sse.rs`), `GET /status` (`status.rs`) and a plain 404 for
//! anything else.
//!
//! Invariant: the router holds only the feed handle, the options and the
//! client counter; all per-client state lives in the response body, so it is
//! freed when the client goes.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use events::Event;
use tokio::sync::watch;

use crate::FeedSource;
use crate::sse::{self, DEFAULT_KEEP_ALIVE};
use crate::status;

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState<S> {
    pub(crate) source: S,
    pub(crate) keep_alive: Duration,
    pub(crate) clients: Arc<watch::Sender<usize>>,
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState { source: self.source.clone(), keep_alive: self.keep_alive, clients: Arc::clone(&self.clients) }
    }
}

/// The routes for `source` with default options: `GET /stream` (Server-Sent
/// Events) and `GET /status` (JSON). See the [crate docs](crate) for the
/// wire format; use [`FeedRouter`] to change options.
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
/// let app = events_http::axum::Router::new().nest("/feed", events_http::router(feed.clone()));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = tokio::spawn(async move { events_http::axum::serve(listener, app).await });
/// # server.abort(); feed.close().await?; Ok(()) }
/// ```
pub fn router<E, S>(source: S) -> Router
where
    E: Event,
    S: FeedSource<E>,
{
    FeedRouter::new(source).build()
}

/// Builds the router with options; [`router`] is `FeedRouter::new(source).build()`.
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
pub struct FeedRouter<E, S> {
    state: AppState<S>,
    _event: PhantomData<fn() -> E>,
}

impl<E, S: std::fmt::Debug> std::fmt::Debug for FeedRouter<E, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedRouter")
            .field("source", &self.state.source)
            .field("keep_alive", &self.state.keep_alive)
            .finish_non_exhaustive()
    }
}

impl<E, S> FeedRouter<E, S>
where
    E: Event,
    S: FeedSource<E>,
{
    /// Routes for `source`.
    pub fn new(source: S) -> Self {
        let (clients, _) = watch::channel(0);
        FeedRouter {
            state: AppState { source, keep_alive: DEFAULT_KEEP_ALIVE, clients: Arc::new(clients) },
            _event: PhantomData,
        }
    }

    /// How long a `/stream` response may stay silent before the server sends
    /// a keep-alive comment (`: keep-alive`), so that proxies and browsers do
    /// not time an idle feed out. Default: 15 s.
    #[must_use]
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.state.keep_alive = interval;
        self
    }

    /// The number of open `/stream` responses, updated as clients connect and
    /// as their responses are dropped (the client disconnected).
    pub fn clients(&self) -> watch::Receiver<usize> {
        self.state.clients.subscribe()
    }

    /// The router: `GET /stream`, `GET /status`, and 404 for other paths.
    pub fn build(self) -> Router {
        Router::new()
            .route("/stream", get(sse::stream::<E, S>))
            .route("/status", get(status::status::<E, S>))
            .fallback(not_found)
            .with_state(self.state)
    }
}

async fn not_found(method: Method, uri: Uri) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!("no such resource: {method} {uri} (this feed serves GET /stream and GET /status)\n"),
    )
}
