//! [`ReplicatorSink`]: the façade-sink side of replication. A feed calls it
//! after each durable append; it wakes the [`Replicator`](crate::Replicator)
//! so the event reaches JetStream at once instead of at the next poll.
//!
//! Neighbours: created by [`Replicator::sink`](crate::Replicator::sink),
//! installed with [`events::FeedBuilder::sink`]. Invariant: the sink never
//! publishes and never waits. Freshness comes from waking the one ordered
//! publisher; completeness from that publisher reading the journal. So the
//! stream keeps journal order even if the sink misses a call (the feed
//! drops sink batches when its sink queue is full) or runs before the
//! replicator has sent earlier seqs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use events::layers::sink::SinkStats;
use events::{Envelope, EventSink};
use tokio::sync::Notify;

/// Wakes a [`Replicator`](crate::Replicator) after each event; see the
/// module docs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ReplicatorSink {
    wake: Arc<Notify>,
    emitted: Arc<AtomicU64>,
}

impl ReplicatorSink {
    pub(crate) fn new(wake: Arc<Notify>) -> Self {
        ReplicatorSink { wake, emitted: Arc::new(AtomicU64::new(0)) }
    }
}

#[async_trait]
impl<E: Send + Sync> EventSink<Envelope<E>> for ReplicatorSink {
    async fn emit(&self, _event: &Envelope<E>) {
        self.emitted.fetch_add(1, Ordering::Relaxed);
        // A stored permit when the replicator is busy: the wake is never lost,
        // and many wakes while it is busy collapse into one.
        self.wake.notify_one();
    }

    fn stats(&self) -> SinkStats {
        let mut stats = SinkStats::default();
        stats.emitted = self.emitted.load(Ordering::Relaxed);
        stats
    }
}
