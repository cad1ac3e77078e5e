//! Staging an event on the writer thread: its stream id, the checks of
//! conditional and idempotent appends (`guard.rs` keeps their state), its
//! encoding into the batch buffer and its place in the batch.
//!
//! Invariants: a check and the seq allocation it guards are one step of the
//! writer thread, and they count every event in flight (staged, or written
//! and waiting for its fdatasync). The event type's own code that runs here
//! (`Event::stream_id`, `Serialize`, the `Drop` of a copy read back; nothing
//! here clones an event) is isolated: a panic in it refuses that event
//! alone ([`Error::EventPanicked`], a counted drop for `record`), leaves
//! nothing of it in the buffer, and the thread goes on. A refused event is
//! answered and counted, then let go under a catch of its own (its `Drop`).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use events_core::{Codec, Envelope, Event, Seq, StreamId, Timestamp};

use super::acks::answer;
use super::{Ack, Acked, Conditions, Pending, Writer};
use crate::append::Expected;
use crate::error::{isolated, let_go};
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
                answer(ack, Err(err));
            }
            None => {
                crate::error::logged(|| tracing::warn!(error = %error_chain(&err), "recorded event refused; dropped"));
            }
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

    /// Checks, encodes and stages one event of the next batch. An event it
    /// refuses (answered and counted first) is let go under a catch: its
    /// `Drop`, the event type's own code, may panic, which had ended the
    /// writer thread.
    pub(super) fn stage(&mut self, stream: Option<StreamId>, event: E, ack: Option<Ack<E>>, when: Conditions) {
        let Some((stream, ack)) = self.stream_of(stream, &event, ack) else { return let_go(event) };
        // Only appends carry conditions (`Inbox::append_with`).
        let (ack, event) = match self.check(&stream, event, ack, &when) {
            Checked::Stage(ack, event) => (ack, event),
            Checked::Answered(event) => return let_go(event),
        };
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
            self.refuse(ack, e, counter);
            return let_go(event);
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
    /// a duplicate or a conflict itself and hands the event back to be let
    /// go; otherwise gives the ack back for staging.
    fn check(&mut self, stream: &Option<StreamId>, event: E, ack: Option<Ack<E>>, when: &Conditions) -> Checked<E> {
        if when.id.is_none() && when.expected == Expected::Any {
            return Checked::Stage(ack, event);
        }
        let Some(ack) = ack else { return Checked::Answered(Some(event)) };
        // A retry of an append that succeeded is answered as that append
        // was, even when its expectation no longer holds.
        if let Some(id) = &when.id {
            let earlier = self.guard.find_id(id, Timestamp::now().as_nanos());
            // The id names another stream's event: no retry of this one.
            // Refused once that event is journaled (in flight, it may be
            // refused itself: this append then shares its refusal).
            let taken = earlier.as_ref().is_some_and(|(_, earlier)| !earlier.admits(stream.as_ref()));
            match earlier.map(|(earlier, _)| earlier) {
                Some(Earlier::Staged(seq)) => {
                    self.duplicates.push((ack, seq, taken.then(|| id.clone())));
                    return Checked::Answered(Some(event));
                }
                Some(Earlier::Journaled { seq, .. }) if taken => {
                    Counters::bump(&self.shared.counters.conflicts);
                    answer(ack, Err(Error::EventIdTaken { id: id.clone(), seq: Seq::new(seq) }));
                    return Checked::Answered(Some(event));
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
                    // With its caller gone, this is the event's last
                    // reference: `answer` lets it go under a catch.
                    answer(ack, Ok(Acked { env: Arc::new(env), duplicate: true }));
                    return Checked::Answered(None);
                }
                None => {}
            }
        }
        if when.expected != Expected::Any {
            let Some(stream) = stream else {
                answer(ack, Err(Error::MissingStream));
                return Checked::Answered(Some(event));
            };
            // The lookup reads the files, which stop at the readers'
            // watermark: bring it up to what the journal acknowledged if a
            // failed write left it behind.
            if self.journal.published_seq() < self.journal.acked_seq() {
                match self.journal.republish() {
                    Ok(_) => self.after_upkeep(self.shared.latest().get()),
                    Err(e) => {
                        // Its count (`watermark_errors`) shows at once.
                        self.after_upkeep(self.shared.latest().get());
                        tracing::warn!(error = %e, stream = %stream, "cannot read a stream's version: the watermark lags");
                        answer(ack, Err(Error::Journal(e)));
                        return Checked::Answered(Some(event));
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
                    answer(ack, Err(conflict));
                    return Checked::Answered(Some(event));
                }
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), stream = %stream, "cannot read a stream's version");
                    answer(ack, Err(e));
                    return Checked::Answered(Some(event));
                }
            }
        }
        Checked::Stage(Some(ack), event)
    }
}

/// What [`Writer::check`] decided.
enum Checked<E> {
    /// Stage the event, its ack given back.
    Stage(Option<Ack<E>>, E),
    /// Answered (a duplicate, a conflict, a refusal): the event, if still
    /// held, is let go by the caller.
    Answered(Option<E>),
}
