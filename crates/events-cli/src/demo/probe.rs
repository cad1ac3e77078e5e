//! The demo's latency probe: a live subscriber that measures emit → delivery
//! of durable events. Its neighbour `mod.rs` spawns it before the producers
//! start and `verification.rs` turns its samples into percentiles.
//! Invariant: it stops at the last durable seq, so it never outlives the run.

use events::{Feed, FeedItem, Timestamp};
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::model::DemoEvent;

/// Subscribes now and collects one latency sample (nanoseconds) per durable event.
pub(super) fn spawn(feed: &Feed<DemoEvent>, durable_total: u64) -> JoinHandle<Vec<u64>> {
    let mut live = feed.subscribe();
    tokio::spawn(async move {
        let mut samples = Vec::with_capacity(durable_total as usize);
        while let Some(Ok(FeedItem::Event(env))) = live.next().await {
            if let Some(at) = env.event.emitted_at() {
                samples.push(Timestamp::now().as_nanos().saturating_sub(at));
            }
            if env.seq.get() >= durable_total {
                break;
            }
        }
        samples
    })
}
