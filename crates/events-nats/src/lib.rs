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
//! * **What a message is.** One message per journal record (and one per
//!   salvage gap, below), on one subject,
//!   payload = the record's payload bytes as journaled (decode with
//!   [`events::payload::decode`]), headers `Nats-Msg-Id: <epoch>-<seq>`,
//!   the guard (`Nats-Expected-Last-Sequence`, or
//!   `Nats-Expected-Last-Subject-Sequence` in a shared stream; JetStream
//!   stores it with the message), [`Events-Ts`](headers::TIMESTAMP)
//!   and optionally [`Events-Stream`](headers::STREAM_ID) and
//!   [`Events-Event-Id`](headers::EVENT_ID). The epoch and seq are read
//!   from the id ([`headers::parse_msg_id`]); messages replicated before
//!   also carry them as [`Events-Epoch`](headers::EPOCH) and
//!   [`Events-Seq`](headers::SEQ), which readers still accept. Every header
//!   costs a publish (`docs/BENCHMARKS.md`), and they are most of a
//!   message's size (`docs/DEPLOYING.md` has the measurement).
//! * **One journal per stream, or many.** [`StreamSpec::new`] is a stream
//!   of its own (one subject, pipelined publishes);
//!   [`StreamSpec::shared`] holds many journals ("feeds"), each on
//!   `<prefix>.<feed id>` (the id chosen, or derived from the journal's
//!   epoch: see [`FeedCursors`]), with one publish in flight per feed. A
//!   [`RemoteFeed`] reads one feed by its subject; [`RemoteFeeds`] reads
//!   every feed with one cursor per feed ([`FeedCursors`], which
//!   serializes for an SSE id or a checkpoint).
//! * **Salvage gaps are explicit.** Where a salvage recovery of the journal
//!   dropped records, the replicator publishes the records before the gap,
//!   then one *gap marker*: an empty body, headers
//!   [`Events-Gap`](headers::GAP) (`<first_missing>-<last_missing>`),
//!   [`Events-Epoch`](headers::EPOCH) and
//!   `Nats-Msg-Id: <epoch>-gap-<first_missing>` (so a re-send dedupes),
//!   then the records after it. A [`RemoteFeed`] turns the marker into
//!   `FeedItem::Reset { reason: ResetReason::Gap { .. }, .. }` and goes on
//!   after the gap, like the local feed; a replicator that finds the marker
//!   last in the stream resumes after `last_missing`.
//! * **Exactly once, in order.** Publishes are pipelined (a window of
//!   acknowledgements awaited in order). Each carries the JetStream sequence
//!   it must follow (`Nats-Expected-Last-Sequence`), so nothing lands after
//!   a gap; after any failure the replicator resumes after the stream's last
//!   message; `Nats-Msg-Id` makes a re-send within the duplicate window a
//!   no-op.
//! * **Completeness and freshness.** The journal is the source: the
//!   replicator catches up from it after any outage, and reads it only
//!   through one `events_journal::Follower` (the journal's one follow
//!   helper, bounded by the writer's durable watermark), so it ships
//!   nothing the journal's writer has not acknowledged, not even a batch
//!   whose fsync failed. [`Replicator::sink`] plugs into a feed's sinks to
//!   wake it on every append.
//! * **Payloads travel as written.** The replicator never decodes: each
//!   message carries the record's payload bytes, schema-version header
//!   included, so an event its own code could not read is replicated all
//!   the same, and a [`RemoteFeed`] decodes (and upcasts) with the remote
//!   reader's types; a payload it cannot decode is an `Err` item of its
//!   stream naming the seq, and the caller decides whether to read on.
//! * **Retention waits for the replicator, within a bound.** The
//!   replicator registers as a durable consumer of the journal it
//!   replicates (a checkpoint in `<journal dir>/consumers/<name>`, by
//!   default `replicator.<subject>`: see [`replicator_consumer_name`]) and
//!   commits to it, at most every 250 ms and off the async threads, the
//!   last seq JetStream acknowledged. The journal's writer then keeps
//!   every segment the replicator still needs, through a server outage
//!   for instance, up to the journal's `consumer_limit`
//!   (`JournalOptions::consumer_limit`); past it the replicator is cut
//!   loose and the records retention removes are lost as below. The
//!   checkpoint is not where replication resumes (the stream is), and it
//!   outlives the replicator: remove a decommissioned replicator's with
//!   `events::layers::journal::delete_consumer(dir, name)` (or
//!   [`FeedReader::delete_consumer`](events::FeedReader::delete_consumer)),
//!   or it keeps holding segments back up to that limit.
//!   [`ReplicationStats::checkpoint`] and [`ReplicationStats::pinned`]
//!   report it as a consumer report does;
//!   [`ReplicatorBuilder::register_consumer`] turns it off.
//! * **Nothing lost silently, nothing mixed.** Records pruned by retention
//!   before they were replicated (the replicator was cut loose, or does not
//!   register) are counted in
//!   [`ReplicationStats::skipped`] and reported as [`NatsError::Pruned`]
//!   (those the stream had acknowledged and then lost, when a resync finds
//!   the server lost them, as [`NatsError::LostByServer`], not counted);
//!   a journal directory recreated (another epoch) or rolled back under a
//!   running replicator stops it with [`NatsError::EpochMismatch`] or
//!   [`NatsError::JournalReset`] ([`ReplicationStats::stopped`]), so one
//!   stream never holds two journals' seqs.
//! * **No busy loop.** A journal error a retry cannot fix (a corrupt frame)
//!   is counted in [`ReplicationStats::stalls`] and retried after a pause
//!   doubling up to a few seconds; repeated server failures without progress
//!   back off the same way.
//! * **One reset rule.** A cursor the stream cannot serve (expired, ahead,
//!   another epoch) gets one `Reset`, then the oldest event the stream
//!   holds, with no gap after it (see [`RemoteFeed`]).
//! * **Observability.** [`Replicator::stats`] reports lag in seqs and in
//!   time, re-sends, resyncs, stalls, gaps, the consumer checkpoint and
//!   whether it pins, and the last error; every failure is also a
//!   `tracing` event. The feed's consumer listing
//!   ([`FeedReader::consumers`](events::FeedReader::consumers)) shows the
//!   replicator with its lag like any other consumer.
//!
//! # Servers and features
//!
//! Built on `async-nats` with only its `jetstream` and `ring` (TLS)
//! features: no option of servers newer than 2.9 can be set, so none is
//! silently ignored. Tested against `nats-server` 2.9.10 (Debian's
//! package) started with `-js`, and against a 3-node cluster of it with an
//! R3 stream losing a follower and its leader; newer servers accept the
//! same requests. A single 2.9 node acknowledges before fsync: the durable
//! configuration is R3 on a cluster (`docs/DEPLOYING.md`).
//!
//! # Using it
//!
//! ```toml
//! [dependencies]
//! events = { git = "https://example.invalid/events" }
//! events-nats = { git = "https://example.invalid/events" }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
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

#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod checkpoint;
mod consumer;
mod cursors;
mod error;
mod feeds;
pub mod headers;
mod publish;
mod pump;
mod replicator;
mod resync;
mod sink;
mod spec;
mod stats;

pub use builder::ReplicatorBuilder;
pub use checkpoint::replicator_consumer_name;
pub use consumer::{RemoteFeed, RemoteStream};
pub use cursors::{FeedCursors, FeedsItem, check_feed_id, feed_id_of_epoch};
pub use error::{BoxError, NatsError};
pub use feeds::{RemoteFeeds, RemoteFeedsStream};
pub use replicator::Replicator;
pub use sink::ReplicatorSink;
pub use spec::StreamSpec;
pub use stats::ReplicationStats;
