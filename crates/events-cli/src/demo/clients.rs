//! The demo's resuming client: reads a third of the feed, disconnects, and
//! resumes from its cursor. Its neighbour `mod.rs` spawns it before the
//! producers start; `verification.rs` checks its report.
//! Invariant: the cursor only moves forward, so any gap or duplicate the
//! feed hands out is counted, never hidden.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use events::{Feed, FeedItem, Seq};
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::model::DemoEvent;

/// What the resuming client saw.
#[derive(Default)]
pub(super) struct ClientReport {
    pub(super) received: u64,
    pub(super) gaps: u64,
    pub(super) duplicates: u64,
    pub(super) resets: u64,
    pub(super) reconnects: u64,
}

/// Spawns the client; it publishes its cursor in `pos` for the progress bar.
pub(super) fn spawn(
    feed: &Feed<DemoEvent>,
    total: u64,
    pos: Arc<AtomicU64>,
) -> JoinHandle<Result<ClientReport, events::Error>> {
    let feed = feed.clone();
    tokio::spawn(async move { resuming_client(feed, total, pos).await })
}

/// Reads a third of the feed, disconnects, and resumes from its cursor
/// until it has seen `total` events, counting gaps and duplicates.
async fn resuming_client(
    feed: Feed<DemoEvent>,
    total: u64,
    pos: Arc<AtomicU64>,
) -> Result<ClientReport, events::Error> {
    let mut report = ClientReport::default();
    let mut cursor = Seq::ZERO;
    let disconnect_at = total / 3;
    loop {
        let mut stream = feed.stream_from(cursor);
        while let Some(item) = stream.next().await {
            match item? {
                FeedItem::Event(env) => {
                    report.received += 1;
                    if env.seq <= cursor {
                        report.duplicates += 1;
                        continue;
                    }
                    if env.seq != cursor.next() {
                        report.gaps += 1;
                    }
                    cursor = env.seq;
                    pos.store(cursor.get(), Relaxed);
                    if cursor.get() >= total {
                        return Ok(report);
                    }
                    if report.reconnects == 0 && cursor.get() >= disconnect_at {
                        break;
                    }
                }
                // An undecodable event (never, under the default `Fail`
                // policy) is as much a hole in what the client saw.
                FeedItem::Reset { .. } | FeedItem::Undecodable { .. } => report.resets += 1,
                // Only a live-output stream (`stream_live`) carries ephemeral events.
                FeedItem::Ephemeral { .. } => {}
            }
        }
        // Disconnected (deliberately, once): come back after a moment.
        report.reconnects += 1;
        drop(stream);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
