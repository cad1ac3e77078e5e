//! [`TracingSink`]: logs each event's `Debug` form as a `tracing` event at a
//! chosen level, the quickest way to watch a feed during development.
//! Neighbours: any `tracing` subscriber the host installs renders it.
//! Invariant: `emit` never awaits, and does no formatting at all when the
//! level is disabled.

use std::fmt;

use async_trait::async_trait;
use tracing::Level;

use crate::stats::Counters;
use crate::{EventSink, SinkStats};

/// A sink that records each event as a `tracing` event.
///
/// The tracing event has target `events_sink`, a `sink` field carrying this
/// sink's name and an `event` field carrying the event's `Debug` form.
///
/// # Example
///
/// ```
/// use events_sink::{EventSink, TracingSink};
/// use tracing::Level;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sink = TracingSink::new(Level::DEBUG).named("audit");
/// sink.emit(&("job-1", "done")).await;
/// assert_eq!(sink.stats().emitted, 1);
/// # });
/// ```
pub struct TracingSink {
    level: Level,
    name: &'static str,
    counters: Counters,
}

impl TracingSink {
    /// A sink logging at `level`, named `"events"`.
    pub fn new(level: Level) -> Self {
        TracingSink { level, name: "events", counters: Counters::default() }
    }

    /// Sets the name recorded in each tracing event's `sink` field.
    #[must_use]
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The level events are logged at.
    pub fn level(&self) -> Level {
        self.level
    }

    /// This sink's counters (the same as [`EventSink::stats`], without having
    /// to name the event type).
    pub fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

impl Default for TracingSink {
    /// Logs at `INFO`.
    fn default() -> Self {
        Self::new(Level::INFO)
    }
}

impl fmt::Debug for TracingSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingSink")
            .field("level", &self.level)
            .field("name", &self.name)
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

#[async_trait]
impl<E: ?Sized + Sync + fmt::Debug> EventSink<E> for TracingSink {
    async fn emit(&self, event: &E) {
        self.counters.emitted();
        let sink = self.name;
        // The tracing macros need a constant level, hence one arm per level.
        match self.level {
            Level::ERROR => tracing::error!(target: "events_sink", sink, event = ?event),
            Level::WARN => tracing::warn!(target: "events_sink", sink, event = ?event),
            Level::INFO => tracing::info!(target: "events_sink", sink, event = ?event),
            Level::DEBUG => tracing::debug!(target: "events_sink", sink, event = ?event),
            _ => tracing::trace!(target: "events_sink", sink, event = ?event),
        }
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    /// Counts the tracing events at `WARN` with this crate's target.
    struct CountWarnings(Arc<AtomicUsize>);

    impl Subscriber for CountWarnings {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let meta = event.metadata();
            if *meta.level() == Level::WARN && meta.target() == "events_sink" {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn each_emit_is_one_tracing_event_at_the_chosen_level() {
        let count = Arc::new(AtomicUsize::new(0));
        let sink = TracingSink::new(Level::WARN).named("test");
        tracing::subscriber::with_default(CountWarnings(Arc::clone(&count)), || {
            futures::executor::block_on(async {
                sink.emit(&"one").await;
                sink.emit(&"two").await;
            });
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
        assert_eq!(sink.stats().emitted, 2);
    }
}
