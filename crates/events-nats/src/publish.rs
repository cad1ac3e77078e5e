//! Publishing for the task of `pump.rs`: builds each message (a record or
//! a gap marker, with the headers of `headers.rs` and the guard), sends it
//! within the window, and settles acknowledgements in order, recording
//! progress and, in a shared stream, where the feed's message landed.
//!
//! Invariant: every message carries a deterministic `Nats-Msg-Id` and a
//! guard naming its exact predecessor in the stream, so a re-send is
//! dropped and a message never lands after a gap the replicator did not
//! mean: only after records that were acknowledged and removed since (a
//! purge, the stream's limits), which readers see as an `Expired` reset,
//! or after a gap marker.
use std::sync::atomic::Ordering;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::{HeaderMap, HeaderValue};
use bytes::Bytes;
use events::layers::journal::Record;

use crate::NatsError;
use crate::headers;
use crate::pump::{InFlight, Outbox, Task};

impl Task {
    /// Awaits every acknowledgement in flight.
    pub(crate) async fn drain(&self, out: &mut Outbox) -> Result<(), NatsError> {
        while let Some(head) = out.window.pop_front() {
            self.settle(out, head).await?;
        }
        Ok(())
    }

    /// Before building the next message: in a shared stream, awaits the
    /// one in flight, whose stream sequence guards the next (see the module
    /// docs); nothing to do in an exclusive stream.
    pub(crate) async fn ready(&self, out: &mut Outbox) -> Result<(), NatsError> {
        if self.shared_stream { self.drain(out).await } else { Ok(()) }
    }

    /// Sends one message (of a `bytes`-long payload) that accounts for
    /// journal seqs up to `seq`, first
    /// awaiting the oldest acknowledgement when the window is full, or
    /// when the send has to wait.
    ///
    /// The context lets only so many acknowledgements be pending (its
    /// `max_ack_inflight`, 5,000 by default, shared by everything that
    /// publishes through it) and holds a send until one settles; those of
    /// this window settle only when this task awaits them. A window as
    /// large as that limit waited for ever.
    pub(crate) async fn publish(
        &self,
        out: &mut Outbox,
        seq: u64,
        bytes: usize,
        message: PublishMessage,
    ) -> Result<(), NatsError> {
        if out.window.len() >= self.window
            && let Some(head) = out.window.pop_front()
        {
            self.settle(out, head).await?;
        }
        let send = self.publisher.send_publish(self.subject.clone(), message);
        tokio::pin!(send);
        let sent = loop {
            match futures::poll!(&mut send) {
                std::task::Poll::Ready(sent) => break sent,
                std::task::Poll::Pending => match out.window.pop_front() {
                    Some(head) => self.settle(out, head).await?,
                    None => break send.await,
                },
            }
        };
        let ack = sent.map_err(|e| match e.kind() {
            PublishErrorKind::MaxPayloadExceeded => {
                NatsError::TooLarge { stream: self.spec.name().to_owned(), seq, bytes, reason: e.to_string() }
            }
            _ => NatsError::js("publishing", format!("journal seq {seq}: {}", events::error_chain(&e))),
        })?;
        self.shared.counters.published.fetch_add(1, Ordering::Relaxed);
        let stream_seq = if self.shared_stream {
            0
        } else {
            out.stream_seq += 1;
            out.stream_seq
        };
        out.sent = seq;
        out.anchored = true;
        out.window.push_back(InFlight { seq, stream_seq, bytes, ack });
        Ok(())
    }

    /// Adds the guard: the stream's last sequence (exclusive stream), or the
    /// feed subject's (shared stream).
    pub(crate) fn guarded(&self, message: PublishMessage, stream_last: u64) -> PublishMessage {
        if self.shared_stream {
            message.expected_last_subject_sequence(stream_last)
        } else {
            message.expected_last_sequence(stream_last)
        }
    }

    pub(crate) fn message(&self, record: &Record, stream_last: u64) -> PublishMessage {
        // The epoch and seq travel in the message id only (see `headers`).
        let mut h = HeaderMap::new();
        h.insert(headers::TIMESTAMP, record.ts().to_string());
        if let Some(id) = self.stream_ids.as_ref().and_then(|f| f(record.payload())) {
            insert_text(&mut h, headers::STREAM_ID, &id, record.seq());
        }
        if let Some(id) = events::payload::event_id(record.payload()) {
            insert_text(&mut h, headers::EVENT_ID, id, record.seq());
        }
        let message = PublishMessage::build()
            .payload(Bytes::copy_from_slice(record.payload()))
            .headers(h)
            .message_id(headers::msg_id(self.epoch, record.seq()));
        self.guarded(message, stream_last)
    }

    /// The gap marker for seqs `first..=last` (see [`crate::headers`]).
    pub(crate) fn gap_message(&self, first: u64, last: u64, stream_last: u64) -> PublishMessage {
        let mut h = HeaderMap::new();
        h.insert(headers::EPOCH, self.epoch.to_string());
        h.insert(headers::GAP, headers::gap_value(first, last));
        let message =
            PublishMessage::build().payload(Bytes::new()).headers(h).message_id(headers::gap_msg_id(self.epoch, first));
        self.guarded(message, stream_last)
    }

    /// Awaits one acknowledgement and records the progress (in a shared
    /// stream, also where the message landed: the next publish's guard).
    pub(crate) async fn settle(&self, out: &mut Outbox, head: InFlight) -> Result<(), NatsError> {
        // Each names the record, for the operator reading `last_error`.
        let refused = |reason: String| {
            NatsError::js("awaiting an acknowledgement", format!("journal seq {}: {reason}", head.seq))
        };
        let ack = match tokio::time::timeout(self.ack_timeout, head.ack).await {
            Ok(Ok(ack)) => ack,
            Ok(Err(e)) if over_the_streams_size_limit(&e) => {
                let reason = format!("the stream refused it: {}", events::error_chain(&e));
                return Err(NatsError::TooLarge {
                    stream: self.spec.name().to_owned(),
                    seq: head.seq,
                    bytes: head.bytes,
                    reason,
                });
            }
            Ok(Err(e)) => return Err(refused(events::error_chain(&e))),
            Err(_) => return Err(refused("timed out".into())),
        };
        if unstored_duplicate(&ack) {
            // Not stored: the replicator resyncs and sends it again.
            return Err(refused("a duplicate of a message the server has not stored (stream seq 0)".into()));
        }
        let c = &self.shared.counters;
        c.acked.fetch_add(1, Ordering::Relaxed);
        if !ack.duplicate {
            self.stored_through.fetch_max(ack.sequence, Ordering::Relaxed);
        }
        if ack.duplicate {
            c.duplicates.fetch_add(1, Ordering::Relaxed);
        } else if !self.shared_stream && ack.sequence != head.stream_seq {
            // Only an exclusive stream predicts where a message lands; in a
            // shared one the subject guard made the server check that it
            // follows the feed's last message.
            let reason =
                format!("seq {} landed at stream seq {}, expected {}", head.seq, ack.sequence, head.stream_seq);
            return Err(NatsError::BadMessage {
                stream: self.spec.name().to_owned(),
                stream_seq: ack.sequence,
                reason,
            });
        }
        // The subject's last message guards the next publish. A duplicate
        // was not stored now: its sequence is its first copy's, which is the
        // subject's last only if nothing followed it (a re-send after an
        // acknowledgement that timed out), not if it was removed since and
        // messages were stored after it (a restart into a purged stream).
        if self.shared_stream {
            out.stream_seq = if ack.duplicate { out.stream_seq.max(ack.sequence) } else { ack.sequence };
        }
        self.progress.send_replace(head.seq);
        Ok(())
    }
}

/// Whether an acknowledgement says "duplicate" of a message the stream
/// never stored: a clustered server (up to nats-server 2.10) marks a
/// message id as seen before its replicas commit the message, and a leader
/// change may then drop the message; a re-send within the duplicate window
/// is answered as a duplicate at stream seq 0. Taken as stored, the record
/// was lost with no error: progress moved past it and the guard let the
/// next one follow the one before it.
fn unstored_duplicate(ack: &async_nats::jetstream::publish::PublishAck) -> bool {
    ack.duplicate && ack.sequence == 0
}

/// Whether an acknowledgement is the stream's refusal of a message over its
/// `max_msg_size` (JetStream error 10054).
fn over_the_streams_size_limit(error: &async_nats::jetstream::context::PublishError) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| e.error_code() == async_nats::jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM)
}

/// Adds an informational header whose value came from the journal (a
/// stream id, an event id). NATS cannot carry a CR or LF in a header value,
/// and async-nats panics on one, while the feed accepts any id: such a
/// value goes without its header (the payload still holds it) rather than
/// halting replication at that record.
fn insert_text(h: &mut HeaderMap, name: &'static str, value: &str, seq: u64) {
    match value.parse::<HeaderValue>() {
        Ok(value) => h.insert(name, value),
        Err(_) => tracing::debug!(seq, header = name, "a value with CR or LF cannot be a NATS header; sent without it"),
    }
}

#[cfg(test)]
mod tests {
    use super::unstored_duplicate;

    fn ack(json: &str) -> async_nats::jetstream::publish::PublishAck {
        serde_json::from_str(json).unwrap()
    }

    /// A duplicate at stream seq 0 is no acknowledgement: it had been
    /// counted as stored, and its record lost.
    #[test]
    fn a_duplicate_at_stream_seq_0_is_not_stored() {
        assert!(unstored_duplicate(&ack(r#"{"stream":"S","seq":0,"duplicate":true}"#)));
        assert!(!unstored_duplicate(&ack(r#"{"stream":"S","seq":7,"duplicate":true}"#)));
        assert!(!unstored_duplicate(&ack(r#"{"stream":"S","seq":7}"#)));
    }
}
