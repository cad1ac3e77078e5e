//! Shared fixtures for the criterion benches in `benches/`: payload makers
//! and the sample event type, so every bench measures the same data.

use events_core::Event;
use serde::{Deserialize, Serialize};

/// A representative agent-runtime event: a message with a stream key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleEvent {
    /// Which session emitted it.
    pub session: String,
    /// A monotonically increasing counter.
    pub n: u64,
    /// Opaque text of the chosen size.
    pub text: String,
}

impl Event for SampleEvent {}

/// Makes the `n`-th sample event with `text_len` bytes of text.
pub fn sample_event(n: u64, text_len: usize) -> SampleEvent {
    SampleEvent { session: format!("sess-{}", n % 8), n, text: "x".repeat(text_len) }
}
