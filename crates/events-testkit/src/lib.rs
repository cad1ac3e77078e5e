//! Shared test support for the workspace's integration tests (and, for
//! [`program`], `cargo xtask ci`, which looks for programs as the tests do). It
//! exists because several crates' `tests/support` modules had grown the same
//! helpers (listing a journal's segment files, starting a `nats-server -js`
//! and waiting until it listens, checking a JetStream stream seq by seq), and
//! `tests/support` cannot be shared across crates: a helper fixed in one
//! copy stayed broken in the others.
//!
//! Neighbours: [`fs`] (files on disk), [`rng`] (deterministic random
//! inputs), [`nats`] (the server process), [`program`] (where an installed
//! program is) and,
//! behind the `nats` feature, [`jetstream`] (what a stream holds). Each
//! crate's `tests/support/mod.rs` re-exports what it uses and keeps the
//! helpers only it needs (payload shapes, journal fillers, child processes).
//!
//! Invariant: this crate depends on none of the workspace's own crates, so
//! any of them (and xtask) can depend on it without a cycle;
//! helpers panic with a message naming what was expected (they are for
//! tests) and every wait polls a real condition under a deadline.

pub mod fs;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod jetstream;
pub mod nats;
pub mod program;
pub mod rng;
