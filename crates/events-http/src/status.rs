//! `GET /status`: where the feed stands (epoch, earliest and latest seq),
//! its counters, and how many `/stream` clients are connected, as one JSON
//! object. Neighbour of `sse.rs`; both are mounted by `router.rs`.
//!
//! Invariant: read-only. A [`FeedReader`](events::FeedReader) refreshes its
//! figures from the journal files, so the figures are gathered off the async
//! workers.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use events::Event;
use serde_json::{Value, json};

use crate::FeedSource;
use crate::router::AppState;

/// The handler of `GET /status`.
pub(crate) async fn status<E, S>(State(state): State<AppState<S>>) -> Result<Json<Value>, (StatusCode, String)>
where
    E: Event,
    S: FeedSource<E>,
{
    let clients = *state.clients.borrow();
    let source = state.source.clone();
    let body = tokio::task::spawn_blocking(move || {
        let stats = source.stats();
        json!({
            // A random 64-bit value: a string, since JavaScript numbers
            // cannot hold it exactly.
            "epoch": source.epoch().to_string(),
            // From the one snapshot: a `FeedReader` re-reads the directory
            // for each of these, so asking three times would scan it thrice.
            "latest_seq": stats.latest_seq,
            "earliest_seq": stats.earliest_seq,
            "http_clients": clients,
            "stats": {
                "appended": stats.appended,
                "dropped": stats.dropped,
                "encode_errors": stats.encode_errors,
                "batches": stats.batches,
                "bytes": stats.bytes,
                "fsyncs": stats.fsyncs,
                "lagged_fallbacks": stats.lagged_fallbacks,
                "resets": stats.resets,
                "sink_dropped": stats.sink_dropped,
                "sink_timeouts": stats.sink_timeouts,
                "healthy": stats.healthy,
            },
        })
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("status failed: {e}\n")))?;
    Ok(Json(body))
}
