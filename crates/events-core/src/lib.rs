//! The event model shared by every `events-*` crate: the [`Event`] trait and
//! its classification hooks, sequence numbers ([`Seq`]), timestamps, stream
//! ids, the [`Envelope`] that carries an event with its position in the feed,
//! and the [`Codec`] seam that turns events into journal payload bytes.
//!
//! This crate is deliberately small and stable: it knows nothing of journals,
//! channels or tokio. Application authors should depend on the `events`
//! façade, which re-exports everything here; the layer crates
//! (`events-journal`, `events-fanout`, `events-sink`) use it directly.
//!
//! # Codecs
//!
//! [`Bincode`] is the default codec. It writes and reads **bincode 2.0.x's**
//! standard format (varint integers, little endian) with a serde encoder
//! and decoder of our own, held to the bincode crate by a differential
//! test, and a decode limit, so a hostile length prefix cannot make a
//! decoder allocate gigabytes. bincode 3.0.0 is a tombstone release that
//! does not compile and the crate is no longer maintained, so the
//! workspace pins `~2.0.1` as the test's reference; the [`Codec`] trait is
//! the seam that lets a user swap the codec out. `Postcard` (cargo feature
//! `postcard`) is a second implementation of that seam.
//!
//! # Using it
//!
//! Through the façade (`events` re-exports all of this), or alone, for a
//! layer crate or a tool that reads payloads:
//!
//! ```toml
//! [dependencies]
//! events-core = { git = "https://example.invalid/events" }  # features = ["postcard"] for the second codec
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! # Example
//!
//! ```
//! use events_core::{Bincode, Codec, Durability, Envelope, Event, Seq, StreamId, Timestamp};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
//! enum AgentEvent {
//!     Token(String),
//!     Message { text: String },
//! }
//!
//! impl Event for AgentEvent {
//!     fn durability(&self) -> Durability {
//!         match self {
//!             AgentEvent::Token(_) => Durability::Ephemeral,
//!             AgentEvent::Message { .. } => Durability::Durable,
//!         }
//!     }
//! }
//!
//! let env = Envelope {
//!     seq: Seq::new(7),
//!     ts: Timestamp::now(),
//!     stream: Some(StreamId::from("sess-1")),
//!     event: AgentEvent::Message { text: "hi".into() },
//!     id: None,
//! };
//! let codec = Bincode::default();
//! let mut buf = Vec::new();
//! codec.encode(&env, &mut buf)?;
//! let back: Envelope<AgentEvent> = codec.decode(&buf)?;
//! assert_eq!(back, env);
//! # Ok::<(), events_core::CodecError>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod bincode_de;
mod bincode_ser;
mod codec;
mod envelope;
mod error;
mod event;
#[cfg(feature = "msgpack")]
mod msgpack;
#[cfg(feature = "msgpack")]
mod msgpack_check;
#[cfg(feature = "msgpack")]
mod msgpack_depth;
mod seq;

#[cfg(feature = "postcard")]
pub use codec::Postcard;
pub use codec::{Bincode, Codec, DEFAULT_DECODE_LIMIT, MAX_DECODE_DEPTH};
pub use envelope::Envelope;
pub use error::{BoxError, CodecError};
pub use event::{Durability, Event, Old};
#[cfg(feature = "msgpack")]
pub use msgpack::MsgPack;
pub use seq::{EventId, Seq, StreamId, Timestamp};
