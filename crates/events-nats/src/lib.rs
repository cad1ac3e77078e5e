//! Replicates an `events` journal into NATS JetStream and reads it back
//! from anywhere with the local feed's resumable-cursor semantics.
//!
//! When one machine is not enough, the journal does not become a home-made
//! cluster: a [`Replicator`] tails the journal directory and publishes every
//! record to a JetStream stream (which replicates itself, R3 in a cluster),
//! and a [`RemoteFeed`] gives any machine `stream_from(cursor)` with the
//! same [`FeedItem`](events::FeedItem) items as
//! [`Feed::stream_from`](events::Feed::stream_from).
//!
//! * **What a message is.** One message per journal record, on one subject,
//!   payload = the record's payload bytes as journaled (decode with
//!   [`events::payload::decode`]), headers `Nats-Msg-Id: <epoch>-<seq>`,
//!   [`Events-Seq`](headers::SEQ), [`Events-Epoch`](headers::EPOCH),
//!   [`Events-Ts`](headers::TIMESTAMP) and optionally
//!   [`Events-Stream`](headers::STREAM_ID).
//! * **Exactly once, in order.** Publishes are pipelined (a window of
//!   acknowledgements awaited in order). Each carries the JetStream sequence
//!   it must follow (`Nats-Expected-Last-Sequence`), so nothing lands after
//!   a gap; after any failure the replicator resumes after the stream's last
//!   message; `Nats-Msg-Id` makes a re-send within the duplicate window a
//!   no-op.
//! * **Completeness and freshness.** The journal is the source: the
//!   replicator catches up from it after any outage. [`Replicator::sink`]
//!   plugs into a feed's sinks to wake it on every append.
//! * **Observability.** [`Replicator::stats`] reports lag in seqs and in
//!   time, re-sends, resyncs and the last error; every failure is also a
//!   `tracing` event.
//!
//! # Servers and features
//!
//! Built on `async-nats` with only its `jetstream` and `ring` (TLS)
//! features: no option of servers newer than 2.9 can be set, so none is
//! silently ignored. Tested against `nats-server` 2.9.10 (Debian's
//! package) started with `-js`; newer servers accept the same requests.
//!
//! # Example
//!
//! ```no_run
//! use events::{Event, Feed, FeedItem, Seq};
//! use events_nats::{RemoteFeed, Replicator, StreamSpec};
//! use futures::StreamExt;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! struct Tick(u64);
//! impl Event for Tick {}
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await?);
//! let spec = StreamSpec::new("FEED", "feed.events");
//! let feed: Feed<Tick> = Feed::builder("./data/feed").open().await?;
//! let replicator = Replicator::builder(feed.dir(), js.clone(), spec.clone()).start().await?;
//! feed.append(None, Tick(1)).await?;
//!
//! // On another machine:
//! let remote: RemoteFeed<Tick> = RemoteFeed::new(js, spec);
//! let mut items = remote.stream_from(Seq::ZERO).await?;
//! let Some(Ok(FeedItem::Event(env))) = items.next().await else { panic!() };
//! assert_eq!(env.seq, Seq::new(1));
//! # drop(replicator); Ok(()) }
//! ```

mod consumer;
mod error;
pub mod headers;
mod replicator;
mod sink;
mod spec;

pub use consumer::{RemoteFeed, RemoteStream};
pub use error::{BoxError, NatsError};
pub use replicator::{ReplicationStats, Replicator, ReplicatorBuilder};
pub use sink::ReplicatorSink;
pub use spec::StreamSpec;
