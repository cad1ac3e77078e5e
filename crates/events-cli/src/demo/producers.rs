//! The demo's producers: one task per session emitting its share of
//! `DemoEvent`s, and the wait for the best-effort sink to catch up. Its
//! neighbour `mod.rs` calls these once every consumer is subscribed.
//! Invariant: the sessions are dropped once every producer is done, so the
//! session subscribers in `uis.rs` see their streams end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use events::{Feed, Session};

use super::joined;
use crate::Failure;
use crate::model::DemoEvent;

/// Emits `per_session` events on every session concurrently, counting them in `emitted`.
pub(super) async fn run(
    sessions: Vec<Session<DemoEvent>>,
    per_session: u64,
    emitted: &Arc<AtomicU64>,
) -> Result<(), Failure> {
    let producers: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(s, session)| {
            let session = session.clone();
            let emitted = Arc::clone(emitted);
            tokio::spawn(async move {
                for n in 0..per_session {
                    session.emit(DemoEvent::nth(s as u32, n, per_session)).await?;
                    emitted.fetch_add(1, Relaxed);
                }
                Ok::<(), events::Error>(())
            })
        })
        .collect();
    for p in producers {
        joined(p.await)??;
    }
    drop(sessions);
    Ok(())
}

/// Lets the sink task drain: it runs behind the writer by design. Gives up
/// after five seconds; the summary then shows what it observed.
pub(super) async fn drain_sink(feed: &Feed<DemoEvent>, sink_count: &AtomicU64, durable_total: u64) {
    let sink_deadline = Instant::now() + Duration::from_secs(5);
    while sink_count.load(Relaxed) + feed.stats().sink_dropped < durable_total && Instant::now() < sink_deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
