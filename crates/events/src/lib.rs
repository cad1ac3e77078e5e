//! In-process event pipelines with a durable, crash-safe, resumable change
//! feed.
//!
//! This is the crate applications depend on. It wires four layers together:
//! the event model (`events-core`), a segmented CRC-framed journal
//! (`events-journal`), lossless fan-out (`events-fanout`) and best-effort sinks
//! (`events-sink`). Everything a user needs is re-exported here.
//!
//! # The model
//!
//! * Your event type implements [`Event`]: serde plus three hooks with
//!   defaults — [`durability`](Event::durability) (durable events are
//!   journaled, ephemeral ones such as streaming tokens only go to live
//!   subscribers), [`stream_id`](Event::stream_id) and
//!   [`is_terminal`](Event::is_terminal).
//! * A [`Feed`] owns one journal directory. One writer thread allocates
//!   contiguous [`Seq`]s, appends to the journal, waits for the durability the
//!   [`SyncPolicy`] asks for (one fsync per batch: group commit), then
//!   publishes to the live tail, to sinks, and to waiting `append` callers —
//!   in that order, so journal order = live order = seq order, and a failed
//!   append is never published.
//! * [`Feed::record`] never blocks (a full inbox drops and counts);
//!   [`Feed::append`] waits for durability and never drops.
//! * [`Feed::stream_from`] resumes a client from its cursor: every durable
//!   event after it, in order, no gap, no duplicate, then live — even when the
//!   client is slower than the producer. When the cursor cannot be served it
//!   yields one explicit [`FeedItem::Reset`].
//! * [`Feed::read_stream`] reads one stream's history (a session, a job, a
//!   document) through a per-stream index, touching only the records of
//!   that stream; [`Feed::follow_stream`] then goes on live.
//! * [`Feed::stream_filtered`] serves a client of one stream (or of any
//!   predicate) that resumes from its cursor: the matching events plus
//!   [`FeedItem::Checkpoint`] items carrying the seq scanned so far, so its
//!   cursor moves past other streams' events; a client filtered by stream
//!   id is reset by retention only when events of its own stream were
//!   pruned.
//! * [`Feed::session`] gives a lossless per-session emitter: every event,
//!   ephemeral ones included, reaches the session's subscribers in order with
//!   backpressure, and durable ones are forwarded into the feed.
//!
//! # Example: append, crash, resume
//!
//! ```
//! use events::{Event, Feed, FeedItem, Seq};
//! use futures::StreamExt;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! struct JobDone { job: u32 }
//! impl Event for JobDone {}
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
//! # let tmp = tempfile::tempdir().unwrap(); let dir = tmp.path();
//! let feed: Feed<JobDone> = Feed::builder(dir).open().await?;
//! for job in 0..3 {
//!     feed.append(None, JobDone { job }).await?;
//! }
//! feed.close().await?;
//!
//! // Later, maybe in another process: reopen and resume after seq 1.
//! let feed: Feed<JobDone> = Feed::builder(dir).open().await?;
//! let mut client = feed.stream_from(Seq::new(1));
//! let Some(Ok(FeedItem::Event(env))) = client.next().await else { panic!() };
//! assert_eq!((env.seq, &env.event), (Seq::new(2), &JobDone { job: 1 }));
//! assert_eq!(feed.append(None, JobDone { job: 3 }).await?, Seq::new(4));
//! # Ok(()) }
//! ```
//!
//! # Sinks and reconcile
//!
//! [`FeedBuilder::sink`] attaches best-effort sinks (a UI push, a cache
//! invalidation): each durable event reaches them after it is journaled, in
//! seq order, but a slow sink loses events rather than slow the writer. A
//! consumer that needs every event notices a gap by seq and calls
//! [`reconcile`] with the last seq it holds: a [`Feed`] is an [`EventLog`]
//! (and a [`DurableStore`]), and so is a [`FeedReader`], also one opened on
//! a journal another process writes. The missed events come back from the
//! journal, across restarts; when retention already removed some of them,
//! `reconcile` fails with [`Error::Expired`] instead of skipping them.
//!
//! ```
//! use events::{Event, Feed, Seq, reconcile};
//! # #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)] struct Ping(u32);
//! # impl Event for Ping {}
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
//! # let tmp = tempfile::tempdir().unwrap(); let dir = tmp.path();
//! let feed: Feed<Ping> = Feed::builder(dir).open().await?;
//! for n in 1..=3 {
//!     feed.append(None, Ping(n)).await?;
//! }
//! // A consumer whose sink delivered seq 1 and then dropped the rest:
//! let missed = reconcile(&feed, Seq::new(1)).await?;
//! let got: Vec<(Seq, Ping)> = missed.into_iter().map(|env| (env.seq, env.event)).collect();
//! assert_eq!(got, [(Seq::new(2), Ping(2)), (Seq::new(3), Ping(3))]);
//! # feed.close().await }
//! ```
//!
//! # Event types that change
//!
//! Every record carries its type's schema version ([`Event::VERSION`],
//! default 1). When a change makes older records undecodable as the new
//! type, raise the version and say how to read the old ones in
//! [`Event::upcast`]: replay, `stream_from`, consumers and `reconcile` then
//! all see current-version events. (With the self-describing `MsgPack`
//! codec, added `#[serde(default)]` fields and new variants need neither.)
//! A record a reader still cannot decode fails its stream with
//! [`Error::Decode`] naming the seq and version, or, under
//! [`OnUndecodable::Skip`], is one [`FeedItem::Undecodable`] item.
//!
//! ```
//! use events::{Codec, CodecError, Event, Old, payload};
//! use serde::{Deserialize, Serialize};
//!
//! /// Version 1, as older records hold it.
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! enum MessageV1 { Sent { text: String } }
//! impl Event for MessageV1 {}
//!
//! /// Version 2: the variant renamed, a field added.
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! enum Message { Posted { text: String, edited: bool } }
//!
//! impl Event for Message {
//!     const VERSION: u32 = 2;
//!
//!     fn upcast<C: Codec>(old: Old<'_, C>) -> Result<Self, CodecError> {
//!         match old.version() {
//!             1 => match old.decode::<MessageV1>()? {
//!                 MessageV1::Sent { text } => Ok(Message::Posted { text, edited: false }),
//!             },
//!             _ => Err(old.unsupported(Self::VERSION)),
//!         }
//!     }
//! }
//!
//! // A record written by the old code reads as the new type.
//! let mut bytes = Vec::new();
//! payload::encode(&events::Bincode, Some("doc-1"), &MessageV1::Sent { text: "hi".into() }, &mut bytes)?;
//! let env = payload::decode::<Message, _>(&events::Bincode, 1, 0, &bytes)?;
//! assert_eq!(env.event, Message::Posted { text: "hi".into(), edited: false });
//! assert_eq!(env.stream_str(), Some("doc-1"));
//! # Ok::<(), CodecError>(())
//! ```
//!
//! # Durability
//!
//! [`SyncPolicy::Always`] (the default): an acknowledged append has been
//! fdatasync'ed; concurrent appends share one fsync. `Interval(d)`: fsynced in
//! the background every `d`. `Never`: handed to the kernel before the
//! acknowledgement, so it survives a process crash but not power loss. No
//! policy acknowledges bytes still sitting in a user-space buffer.
//!
//! After a journal write or fsync fails, the feed refuses every append until
//! it is reopened ([`FeedStats::healthy`] turns `false`): after a failed fsync
//! the page cache cannot be trusted, so the only honest recovery is to reopen
//! and let recovery read what really reached the disk.
//!
//! # Metrics
//!
//! With the `metrics` feature, `events::metrics::record` publishes a
//! [`FeedStats`] snapshot through the `metrics` facade (names and labels in
//! that module's docs).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod append;
mod batches;
mod bell;
mod builder;
mod consumer;
mod error;
mod feed;
mod guard;
mod inbox;
mod index;
mod key_filter;
mod live;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
pub mod payload;
mod position;
mod reader;
mod reader_live;
mod recent;
mod replay;
mod session;
mod shape;
mod shared;
mod sinks;
mod stats;
mod store;
mod stream;
mod stream_read;
mod writer;
mod writers;

pub use append::{AppendOptions, Appended, Dedupe, Expected, MAX_EVENT_ID_BYTES};
pub use builder::{FeedBuilder, MAX_CAPACITY, MIN_RETENTION_CHECK};
pub use consumer::{Consumer, ConsumerOptions, ConsumerReport, consumer_reports};
pub use error::{Error, Result, error_chain, panic_message};
pub use feed::Feed;
pub use inbox::Inbox;
pub use index::MAX_STREAM_ID_BYTES;
pub use live::{LiveOutput, LiveStream};
pub use position::{Cursor, FeedItem, LiveCursor, OnExpired, OnUndecodable, Position, ResetReason};
pub use reader::FeedReader;
pub use session::{Session, SessionSubscriber};
pub use stats::{FeedStats, SinkReport};
pub use stream::FeedStream;
pub use stream::filter::{Filter, FilterFn, FilteredStream};
pub use stream_read::StreamEvents;

#[cfg(feature = "msgpack")]
#[cfg_attr(docsrs, doc(cfg(feature = "msgpack")))]
#[doc(inline)]
pub use events_core::MsgPack;
#[cfg(feature = "postcard")]
#[cfg_attr(docsrs, doc(cfg(feature = "postcard")))]
#[doc(inline)]
pub use events_core::Postcard;
#[doc(inline)]
pub use events_core::{
    Bincode, Codec, CodecError, Durability, Envelope, Event, EventId, Old, Seq, StreamId, Timestamp,
};
#[doc(inline)]
pub use events_fanout::{Closed, Overflow};
#[doc(inline)]
pub use events_journal::{JournalError, RecoveryMode, RecoveryReport, Retention, SyncPolicy};
#[doc(inline)]
pub use events_sink::{DurableStore, EventLog, EventSink, SinkExt, reconcile};

/// The layer crates, for users who need more than the façade re-exports
/// (reading a journal directory directly, a standalone fan-out).
pub mod layers {
    #[doc(inline)]
    pub use events_fanout as fanout;
    #[doc(inline)]
    pub use events_journal as journal;
    #[doc(inline)]
    pub use events_sink as sink;
}

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
