//! Lossless in-process fan-out with backpressure: a [`Fanout`] delivers every
//! event to every [`Subscriber`] in emit order, and a full subscriber makes
//! `emit` wait instead of losing events (or, if you choose a disconnecting
//! [`Overflow`] policy, is closed with an explicit [`Closed`] reason).
//!
//! This is the layer crate for DESIGN invariant 3; it knows nothing of journals
//! or sequence numbers. Application authors normally use the `events` façade,
//! which wraps each event as `Arc<Envelope<E>>` and fans that out.
//!
//! # Design: one ring, one cursor per subscriber
//!
//! Events live in a single ring of `capacity` slots (rounded up to a power of
//! two). A producer writes each event once and publishes it with one atomic
//! store of the ring's tail; each subscriber owns a cursor and clones the
//! events between its cursor and the tail. The producer may reuse a slot only
//! when the slowest cursor has passed it, which is exactly "a subscriber holds
//! at most `capacity` events not yet taken or still lent", hence lossless
//! backpressure.
//!
//! We chose this over one bounded queue per subscriber (the design it replaces)
//! because it makes `emit` O(1) instead of O(subscribers): one slot write, one
//! tail store, no per-subscriber send, no per-subscriber lock. Subscribers read
//! without locks and without touching each other's cache lines, and the
//! all-or-nothing property of a cancelled `emit` falls out for free since there
//! is a single publication point. Compared with `tokio::sync::broadcast` (also
//! a ring) there is no per-slot reader count and no per-slot lock, and the
//! lagging reader gates the producer instead of being overrun.
//!
//! Wakeups are where throughput goes, so they are batched both ways: a producer
//! only scans for subscribers to wake when some are parked (one atomic load per
//! emit otherwise), and a producer blocked on a full ring arms the subscribers
//! that gate it and is woken once, by the last of them to make room. The
//! subscriber-side cost per event is one clone and one store of its cursor;
//! [`Subscriber::recv_ref`] lends the event in its slot instead and saves the
//! clone, which with `Arc` payloads and many subscribers is most of the cost
//! (every clone and drop updates the one shared reference count).
//! `benches/benches/fanout.rs` measures this against tokio broadcast,
//! async-broadcast and the serial queue-per-subscriber baseline.
//!
//! # Semantics
//!
//! * A subscriber sees every event emitted after [`Fanout::subscribe`] returned,
//!   in order, then `None` once the fan-out is closed (explicitly or by dropping
//!   every handle) and drained.
//! * Dropping a subscriber unregisters it immediately; it no longer gates `emit`.
//! * A slow subscriber gates the producer ([`Overflow::Wait`], the default) unless
//!   a disconnecting policy is chosen: [`Overflow::Disconnect`] closes one that
//!   stays full while no event goes out for longer than `after` (a stall timer), and
//!   [`Overflow::DisconnectLagging`] closes one whose oldest unread event has
//!   waited `max_age`, which also catches a subscriber that keeps reading but
//!   falls ever further behind. Only the latter records an emit instant per slot.
//! * A disconnected subscriber first receives every event that had been emitted
//!   for it before the disconnect (at most `capacity`, copied out of the ring so it
//!   stops gating at once), then one `Err` with the reason
//!   ([`Closed::TooSlow`] or [`Closed::Lagging`]), then `None`: its stream is a
//!   gap-free prefix followed by an explicit close, never a silent skip.
//! * `emit` is cancel-safe and all-or-nothing; `try_emit` hands the value back.
//! * Locks are `parking_lot`, which has no poisoning: a panic elsewhere never
//!   panics the producer.
//!
//! # Using it
//!
//! Alone (the `events` façade uses it for live subscribers and sessions),
//! with any tokio runtime; the crate itself needs only tokio's `time`:
//!
//! ```toml
//! [dependencies]
//! events-fanout = { git = "https://example.invalid/events" }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use events_fanout::Fanout;
//! use futures::StreamExt;
//!
//! let fanout: Fanout<Arc<u32>> = Fanout::with_capacity(16);
//! let readers: Vec<_> = (0..4)
//!     .map(|_| {
//!         let sub = fanout.subscribe();
//!         tokio::spawn(async move { sub.map(|item| *item.unwrap()).collect::<Vec<u32>>().await })
//!     })
//!     .collect();
//! for n in 0..100 {
//!     fanout.emit(Arc::new(n)).await?; // waits whenever a reader is 16 behind
//! }
//! drop(fanout); // readers drain and end
//! for reader in readers {
//!     assert_eq!(reader.await.unwrap(), (0..100).collect::<Vec<_>>());
//! }
//! # Ok::<(), events_fanout::EmitError<Arc<u32>>>(())
//! # }).unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod fanout;
mod ring;
mod subscriber;

pub use config::{DEFAULT_CAPACITY, FanoutBuilder, FanoutStats, MAX_CAPACITY, Overflow};
pub use error::{Closed, EmitError, TryEmitError, TryRecvError};
pub use fanout::Fanout;
pub use subscriber::{Ref, Subscriber};
