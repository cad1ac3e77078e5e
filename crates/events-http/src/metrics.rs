//! `GET /metrics`: the feed's counters in the Prometheus text exposition
//! format, mounted by `router.rs` when [`FeedRouter::metrics`](crate::FeedRouter::metrics)
//! or [`FeedRouter::metrics_handle`](crate::FeedRouter::metrics_handle) asked
//! for it (built only with the `metrics` feature). The names are those of
//! `events::metrics`; this file adds `events_http_clients` and the
//! exposition.
//!
//! Invariant: library code installs no global recorder. Either the router
//! owns a private [`PrometheusRecorder`] and publishes into it with
//! [`metrics::with_local_recorder`] (so routers, and tests running in
//! parallel in one process, never see each other's series), or the
//! application installed its own recorder and handed its handle over.
//! Every scrape publishes a fresh snapshot right before rendering, so
//! `/metrics` is as current as `/status`.

use crate::state::AppState;
use ::metrics::{Label, gauge};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use events::{Codec, Event};

/// The content type of the Prometheus text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The handler of `GET /metrics`.
pub(crate) async fn scrape<E, C>(State(state): State<AppState<E, C>>) -> Result<impl IntoResponse, (StatusCode, String)>
where
    E: Event,
    C: Codec,
{
    let Some(exporter) = state.metrics.clone() else {
        // `router.rs` mounts the route only with an exporter.
        return Err((StatusCode::NOT_FOUND, "metrics are not enabled on this router\n".to_owned()));
    };
    let clients = *state.clients.borrow();
    let reader = state.reader.clone();
    // A follower's stats come from the journal's files: off the async
    // workers, as for `/status`. The thread-local recorder is set and used
    // on that one thread.
    let text = tokio::task::spawn_blocking(move || {
        let stats = reader.stats();
        exporter.publish_and_render(|| {
            events::metrics::record(&stats, &exporter.feed);
            let labels = [Label::new(events::metrics::FEED_LABEL, exporter.feed.clone())];
            gauge!("events_http_clients", labels.iter()).set(clients as f64);
        })
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics failed: {e}\n")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}
