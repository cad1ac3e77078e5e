//! The writer's checks of conditional and idempotent appends (`guard.rs`
//! keeps their state), run when an append is staged.
//!
//! Invariant: a check and the seq allocation it guards are one step of the
//! writer thread, and they count every event in flight (staged, or written
//! and waiting for its fdatasync).

use std::sync::Arc;

use events_core::{Codec, Envelope, Event, Seq, StreamId, Timestamp};

use super::{Ack, Acked, Conditions, Writer};
use crate::Error;
use crate::append::Expected;
use crate::error_chain;
use crate::guard::Earlier;
use crate::stats::Counters;

impl<E: Event, C: Codec> Writer<E, C> {
    /// The checks of a conditional or idempotent append, atomic with the
    /// seq allocation they guard (this thread allocates every seq). Answers
    /// a duplicate or a conflict itself and returns `None`; otherwise gives
    /// the ack back for staging.
    pub(super) fn check(
        &mut self,
        stream: &Option<StreamId>,
        event: &E,
        ack: Option<Ack<E>>,
        when: &Conditions,
    ) -> Option<Option<Ack<E>>> {
        if when.id.is_none() && when.expected == Expected::Any {
            return Some(ack);
        }
        let ack = ack?;
        // A retry of an append that succeeded is answered as that append
        // was, even when its expectation no longer holds.
        if let Some(id) = &when.id {
            match self.guard.find_id(id, Timestamp::now().as_nanos()) {
                Some(Earlier::Staged(seq)) => {
                    self.duplicates.push((ack, seq));
                    return None;
                }
                Some(Earlier::Journaled { seq, ts }) => {
                    let env = Envelope {
                        seq: Seq::new(seq),
                        ts: Timestamp(ts),
                        stream: stream.clone(),
                        event: event.clone(),
                        id: Some(id.clone()),
                    };
                    Counters::bump(&self.shared.counters.duplicates);
                    let _ = ack.send(Ok(Acked { env: Arc::new(env), duplicate: true }));
                    return None;
                }
                None => {}
            }
        }
        if when.expected != Expected::Any {
            let Some(stream) = stream else {
                let _ = ack.send(Err(Error::MissingStream));
                return None;
            };
            let pending = &self.pending;
            let staged = || pending.iter().map(|p| p.stream.clone()).collect();
            let next = self.first_pending();
            match self.guard.version(&self.shared, &self.codec, stream, staged, next) {
                Ok(current) if when.expected.admits(current) => {}
                Ok(current) => {
                    Counters::bump(&self.shared.counters.conflicts);
                    let conflict = Error::VersionConflict { stream: stream.clone(), expected: when.expected, current };
                    let _ = ack.send(Err(conflict));
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), stream = %stream, "cannot read a stream's version");
                    let _ = ack.send(Err(e));
                    return None;
                }
            }
        }
        Some(Some(ack))
    }
}
