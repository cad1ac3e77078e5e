//! Best-effort event sinks: the dyn-compatible [`EventSink`] trait, the
//! decorators that make a sink safe to put on a writer's path, and
//! [`Watched`], which attaches a sink to any [`DurableStore`].
//!
//! A sink is a host's optional freshness feed. It is told about each durable
//! append promptly and in append order, but it is never a source of truth:
//! `emit` returns nothing, so a sink can neither fail nor roll back the write,
//! and a consumer that needs completeness [`reconcile`]s from the durable log
//! (each [`Envelope`] carries its seq, so a gap is
//! visible as a seq that is not `last + 1`). `reconcile` reads any
//! [`EventLog`]; a [`DurableStore`] is an event log that also appends. This
//! crate knows nothing of the journal; the `events` façade drives sinks on its
//! writer path, in seq order, after durability, and implements both traits:
//! its `Feed` is a `DurableStore` and its `FeedReader` (also one opened on a
//! journal another process writes) an `EventLog`, so `reconcile(&feed, seq)`
//! reads the missed events back from the journal, across restarts.
//! Application authors should reach these types through the façade.
//!
//! # The tools
//!
//! | sink | what it does | cost to the caller of `emit` |
//! |---|---|---|
//! | [`ChannelSink`] | `try_send` into a bounded channel; full → dropped, counted | never awaits |
//! | [`Offload`] | hands the event to a background task driving another sink; full queue → dropped, counted; order kept; [`Offload::on_thread`]: the task on a thread and runtime of its own, for a sink that blocks its thread | never awaits |
//! | [`Timeout`] | bounds each emit of another sink; overdue → cancelled, counted | at most the limit |
//! | [`Filter`] / [`Map`] | forward some events / converted events | the inner sink's |
//! | [`Tee`] | several sinks, in order | the sum of its branches' |
//! | [`TracingSink`], [`FnSink`], [`Noop`] | log, call a closure, nothing | never awaits |
//!
//! Every sink reports [`SinkStats`] through [`EventSink::stats`]; a
//! decorator's losses include those of the sinks it wraps.
//!
//! # Using it
//!
//! Through the façade (`FeedBuilder::sink`, then `reconcile` against the
//! `Feed` or a `FeedReader`), or alone around any [`DurableStore`]. This crate re-exports what its signatures name
//! ([`async_trait`](macro@async_trait), [`Envelope`], [`Seq`], [`StreamId`]), so
//! implementing a sink needs nothing else; [`Offload`] spawns on the current
//! tokio runtime:
//!
//! ```toml
//! [dependencies]
//! events-sink = { git = "https://example.invalid/events" }
//! tokio = { version = "1", features = ["rt"] }
//! ```
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use events_sink::{ChannelSink, DurableStore, Envelope, EventSink, MemoryStore, Seq, SinkExt, Watched, reconcile};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! // A UI feed that can hold 2 envelopes; a stalled UI costs the writer nothing.
//! let (ui, mut rx) = ChannelSink::<Envelope<String>>::new(2);
//! let store = Watched::new(MemoryStore::new(), ui.timeout(Duration::from_millis(5)));
//! for text in ["a", "b", "c"] {
//!     store.append(None, text.to_string()).await?;
//! }
//! assert_eq!(store.sink().stats().dropped, 1); // "c" did not fit
//!
//! // The consumer notices it saw seq 2 last and catches up from the log.
//! let mut seen = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
//! seen.extend(reconcile(&store, seen[1].seq).await?); // a Watched store reads through
//! assert_eq!(seen.iter().map(|e| e.seq).collect::<Vec<_>>(), [Seq::new(1), Seq::new(2), Seq::new(3)]);
//! # Ok::<(), events_sink::MemoryStoreError>(())
//! # }).unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod channel;
mod ext;
mod filter;
mod fn_sink;
mod map;
mod memory;
mod offload;
mod sink;
mod stats;
mod store;
mod tee;
mod timeout;
mod tracing_sink;
mod watched;

pub use channel::ChannelSink;
pub use ext::SinkExt;
pub use filter::Filter;
pub use fn_sink::{FnSink, Noop};
pub use map::Map;
pub use memory::{MemoryStore, MemoryStoreError};
pub use offload::Offload;
pub use sink::EventSink;
pub use stats::SinkStats;
pub use store::{DurableStore, EventLog, RECONCILE_PAGE, reconcile};
pub use tee::Tee;
pub use timeout::Timeout;
pub use tracing_sink::TracingSink;
pub use watched::{Watched, WatchedStats};

// What this crate's signatures name, so a user needs no other dependency to
// implement `EventSink`, `EventLog` or `DurableStore`.
pub use async_trait::async_trait;
pub use events_core::{Envelope, Seq, StreamId, Timestamp};
