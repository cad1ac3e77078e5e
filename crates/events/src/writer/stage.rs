//! Staging an event on the writer thread: its stream id, the checks of
//! conditional and idempotent appends (`guard.rs` keeps their state), its
//! encoding into the batch buffer and its place in the batch.
//!
//! Invariants: a check and the seq allocation it guards are one step of the
//! writer thread, and they count every event in flight (staged, or written
//! and waiting for its fdatasync). The event type's own code that runs here
//! (`Event::stream_id`, `Serialize`; nothing here clones an event) is isolated: a panic in it
//! refuses that event alone ([`Error::EventPanicked`], a counted drop for
//! `record`), leaves nothing of it in the buffer, and the thread goes on.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use events_core::{Codec, Envelope, Event, Seq, StreamId, Timestamp};

use super::{Ack, Acked, Conditions, Pending, Writer};
use crate::append::Expected;
use crate::error::isolated;
use crate::guard::Earlier;
use crate::stats::Counters;
use crate::{Error, error_chain, index, payload};

impl<E: Event, C: Codec> Writer<E, C> {
    /// Refuses one event, counted in `counter`: its caller gets `err`, a
    /// recorded one is logged.
    fn refuse(&self, ack: Option<Ack<E>>, err: Error, counter: &AtomicU64) {
        Counters::bump(counter);
        match ack {
            Some(ack) => {
                let _ = ack.send(Err(err));
            }
            None => tracing::warn!(error = %error_chain(&err), "recorded event refused; dropped"),
        }
    }

    /// The stream id an event goes under: the caller's, or else the event's
    /// own. `None` when it is refused (too long, or `stream_id` panicked):
    /// `ack` is answered.
    pub(super) fn stream_of(
        &self,
        stream: Option<StreamId>,
        event: &E,
        ack: Option<Ack<E>>,
    ) -> Option<(Option<StreamId>, Option<Ack<E>>)> {
        let stream = match stream {
            Some(stream) => Some(stream),
            None => match isolated("Event::stream_id", || event.stream_id().map(StreamId::from)) {
                Ok(stream) => stream,
                Err(e) => {
                    self.refuse(ack, e, &self.shared.counters.encode_errors);
                    return None;
                }
            },
        };
        if let Some(Err(e)) = stream.as_ref().map(|s| index::check_stream_id(s.as_str())) {
            self.refuse(ack, e, &self.shared.counters.encode_errors);
            return None;
        }
        Some((stream, ack))
    }

    /// [`stage`](Self::stage) under [`refusals_caught`](Self::refusals_caught).
    pub(super) fn stage_caught(&mut self, stream: Option<StreamId>, event: E, ack: Option<Ack<E>>, when: Conditions) {
        self.refusals_caught(|writer| writer.stage(stream, event, ack, when));
    }

    /// Runs `take`, which takes one command's event: where the writer
    /// refuses the event (a failed condition, an id already journaled, a
    /// stream id over the limit, an encoding refused), it lets go of it
    /// after answering its caller and counting it, and its `Drop`, the
    /// event type's own code, may panic. The panic is caught and logged
    /// here: it had ended the writer thread, failing the feed. Everything
    /// else `take` runs that could panic is isolated already.
    pub(super) fn refusals_caught(&mut self, take: impl FnOnce(&mut Self)) {
        if let Err(e) = isolated("Drop", || take(self)) {
            tracing::error!(error = %e, "the Drop of a refused event panicked");
        }
    }

    /// Checks, encodes and stages one event of the next batch.
    fn stage(&mut self, stream: Option<StreamId>, event: E, ack: Option<Ack<E>>, when: Conditions) {
        let Some((stream, ack)) = self.stream_of(stream, &event, ack) else { return };
        // Only appends carry conditions (`Inbox::append_with`).
        let Some((ack, event)) = self.check(&stream, event, ack, &when) else { return };
        let id = when.id;
        let start = self.buf.len();
        // The size is checked here, per event: the journal would refuse the whole batch.
        if let Err(e) = payload::encode_checked(
            &self.codec,
            stream.as_ref().map(StreamId::as_str),
            id.as_ref().map(|i| i.as_str()),
            &event,
            &mut self.buf,
            self.max_record_bytes,
            &self.read_back,
        ) {
            let counter = self.shared.counters.refusal(&e);
            return self.refuse(ack, e, counter);
        }
        self.push_staged(start, stream, id, event, ack);
    }

    /// Stages a session's durable event that its emitter already encoded
    /// and checked against the feed's limits (`session.rs`), before any
    /// subscriber saw it.
    pub(super) fn stage_encoded(&mut self, stream: StreamId, event: E, payload: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        self.push_staged(start, Some(stream), None, event, None);
    }

    /// Puts the event whose payload is `buf[start..]` in the batch.
    fn push_staged(
        &mut self,
        start: usize,
        stream: Option<StreamId>,
        id: Option<events_core::EventId>,
        event: E,
        ack: Option<Ack<E>>,
    ) {
        // One clock read per batch: every event of a batch is accepted at
        // the same moment, and timestamps stay monotonic within it. The
        // batch starts after the events already written (`commit.rs`).
        let ts = match self.pending.get(self.written) {
            Some(first) => first.ts,
            None => Timestamp::now().as_nanos(),
        };
        let seq = self.first_pending() + self.pending.len() as u64;
        self.guard.staged(stream.as_ref(), id.as_ref(), seq);
        self.pending.push(Pending { ts, span: (start, self.buf.len()), stream, id, event, ack });
    }

    /// The checks of a conditional or idempotent append, atomic with the
    /// seq allocation they guard (this thread allocates every seq). Answers
    /// a duplicate or a conflict itself and returns `None`; otherwise gives
    /// the ack back for staging.
    pub(super) fn check(
        &mut self,
        stream: &Option<StreamId>,
        event: E,
        ack: Option<Ack<E>>,
        when: &Conditions,
    ) -> Option<(Option<Ack<E>>, E)> {
        if when.id.is_none() && when.expected == Expected::Any {
            return Some((ack, event));
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
                    // The retry's own event (equal to the one journaled, by
                    // the id's contract) answers it: no clone.
                    let env = Envelope {
                        seq: Seq::new(seq),
                        ts: Timestamp(ts),
                        stream: stream.clone(),
                        event,
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
            // The lookup reads the files, which stop at the readers'
            // watermark: bring it up to what the journal acknowledged if a
            // failed write left it behind.
            if self.journal.published_seq() < self.journal.acked_seq() {
                match self.journal.republish() {
                    Ok(_) => self.after_upkeep(self.shared.latest().get()),
                    Err(e) => {
                        tracing::warn!(error = %e, stream = %stream, "cannot read a stream's version: the watermark lags");
                        let _ = ack.send(Err(Error::Journal(e)));
                        return None;
                    }
                }
            }
            let pending = &self.pending;
            let staged = || pending.iter().map(|p| p.stream.clone()).collect();
            let next = self.first_pending();
            match self.guard.version(&self.shared, &self.journal, &self.codec, stream, staged, next) {
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
        Some((Some(ack), event))
    }
}
