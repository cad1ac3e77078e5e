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
