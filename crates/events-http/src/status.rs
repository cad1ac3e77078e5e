//! `GET /status`: where the feed stands (epoch, earliest and latest seq,
//! and the latest event's id in the `<epoch>-<seq>` form of `cursor.rs`),
//! whether it is served from a writer or a follower and whether a writer
//! runs, every counter of [`FeedStats`], each sink's and each durable
//! consumer's, and how many `/stream` clients are connected, as one JSON
//! object. Neighbour of `sse.rs`; both are mounted by `router.rs` and share
//! `state.rs`.
//!
//! Invariant: read-only, and the epoch reported is the one the seqs belong
//! to: a [`FeedReader`](events::FeedReader) re-reads both from the journal
//! files (off the async workers), and a snapshot taken while the directory
//! was being recreated is taken again.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use events::{Codec, Event, FeedReader, FeedStats, Seq};
use serde_json::{Value, json};

use crate::cursor;
use crate::state::AppState;

/// Snapshots taken before `/status` gives up on agreeing epochs and reports
/// the last one (a directory recreated again and again under the server).
const SNAPSHOT_TRIES: usize = 3;

/// The handler of `GET /status`.
pub(crate) async fn status<E, C>(State(state): State<AppState<E, C>>) -> Result<Json<Value>, (StatusCode, String)>
where
    E: Event,
    C: Codec,
{
    let clients = *state.clients.borrow();
    let reader = state.reader.clone();
    let body = tokio::task::spawn_blocking(move || {
        let (epoch, stats) = snapshot(&reader);
        json!({
            // A random 64-bit value: a string, since JavaScript numbers
            // cannot hold it exactly.
            "epoch": epoch.to_string(),
            // From the one snapshot: a `FeedReader` re-reads the directory
            // for each of these, so asking three times would scan it thrice.
            "latest_seq": stats.latest_seq,
            "earliest_seq": stats.earliest_seq,
            // What `/stream?since=` takes to start after the latest event.
            "latest_id": cursor::format(epoch, Seq::new(stats.latest_seq)),
            "http_clients": clients,
            // A follower (`events serve`) reads another process's journal:
            // its counters are its own streams', and say nothing of the
            // writer, whose presence is `writer_running`.
            "source": if reader.is_follower() { "follower" } else { "writer" },
            "writer_running": reader.writer_running(),
            "stats": {
                "appended": stats.appended,
                "dropped": stats.dropped,
                "encode_errors": stats.encode_errors,
                "too_large": stats.too_large,
                "batches": stats.batches,
                "bytes": stats.bytes,
                "fsyncs": stats.fsyncs,
                "lagged_fallbacks": stats.lagged_fallbacks,
                "resets": stats.resets,
                "sink_dropped": stats.sink_dropped,
                "sink_timeouts": stats.sink_timeouts,
                "sink_panics": stats.sink_panics,
                "prune_errors": stats.prune_errors,
                "watermark_errors": stats.watermark_errors,
                "duplicates": stats.duplicates,
                "conflicts": stats.conflicts,
                "live_events": stats.live_events,
                "live_evicted": stats.live_evicted,
                "healthy": stats.healthy,
                // Why not: the writer's failure, or what a follower could
                // not read just now (its figures are then the last read).
                "problem": stats.problem,
            },
            "sinks": stats.sinks.iter().map(|s| json!({
                "name": s.name,
                "emitted": s.stats.emitted,
                "filtered": s.stats.filtered,
                "dropped": s.stats.dropped,
                "timed_out": s.stats.timed_out,
                "panics": s.panics,
                "queue_dropped": s.queue_dropped,
            })).collect::<Vec<_>>(),
            // Durable consumers of the journal: where each is, how far
            // behind, and whether retention still waits for it.
            "consumers": stats.consumers.iter().map(|c| json!({
                "name": c.name,
                "checkpoint": c.checkpoint.map(|s| s.get()),
                "lag": c.lag,
                "lag_bytes": c.lag_bytes,
                "pinned": c.pinned,
                "problem": c.problem,
            })).collect::<Vec<_>>(),
        })
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("status failed: {e}\n")))?;
    Ok(Json(body))
}

/// The epoch and the figures of one journal: the epoch is read before and
/// after the figures, and the pair is taken again if the directory was
/// recreated in between.
fn snapshot<E: Event, C: Codec>(reader: &FeedReader<E, C>) -> (u64, FeedStats) {
    let mut epoch = reader.epoch();
    let mut stats = reader.stats();
    for _ in 1..SNAPSHOT_TRIES {
        let after = reader.epoch();
        if after == epoch {
            break;
        }
        epoch = after;
        stats = reader.stats();
    }
    (epoch, stats)
}
