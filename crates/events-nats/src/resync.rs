//! Where the replication task of `pump.rs` resumes after a start or a
//! server failure: [`Task::resync`] reads the stream's info and the feed's
//! last message, and checks that the stream still fits and holds this
//! journal's epoch.
//!
//! Invariant: a resync never resumes past a record the stream did not
//! acknowledge, except records this task had acknowledged and that were
//! removed since (a purge, the limits): those are not sent again. Unless
//! the server lost what it had acknowledged (the stream's last sequence,
//! or this feed's last message there, fell below one this task stored, or
//! another subject's message took that sequence): what it lost is sent again, and when it lost every message
//! of this feed, the feed is sent again from `start_after`, which may
//! bring back records the limits had removed before (the stream keeps no
//! trace of which).

use std::sync::atomic::Ordering;

use async_nats::jetstream::stream::LastRawMessageErrorKind;

use crate::NatsError;
use crate::headers::Entry;
use crate::pump::{Position, Task};

impl Task {
    /// `request`, within the ack timeout once replication runs
    /// (`request_bound`); a start's requests have the caller's request
    /// timeout alone: a server slow to answer a start (one just thawed,
    /// say) had failed the start after the ack timeout, whatever the
    /// caller's request timeout said.
    async fn bounded<T>(
        &self,
        op: &'static str,
        request: impl std::future::Future<Output = T>,
    ) -> Result<T, NatsError> {
        match self.request_bound {
            Some(bound) => tokio::time::timeout(bound, request).await.map_err(|_| NatsError::js(op, "timed out")),
            None => Ok(request.await),
        }
    }

    /// Reads the stream's last message: replication resumes after it.
    ///
    /// Once replication runs, each request is bounded by the ack timeout,
    /// not only by the client's request timeout: while a cluster elects a
    /// new stream leader, a request can go unanswered, and retrying sooner
    /// finds the new leader sooner. A start's resync has the caller's
    /// request timeout alone, as the start's other requests do (see
    /// [`bounded`](Self::bounded)).
    pub(crate) async fn resync(&mut self) -> Result<Position, NatsError> {
        let info = self.bounded("reading stream info", self.stream.get_info()).await?;
        let info = match info {
            Ok(info) => info,
            // Deleted while this ran (or a server back without its store):
            // made again from the spec, as a start makes it, and filled from
            // `start_after`. It had been asked for every 2 s, for ever.
            Err(e) if stream_not_found(&e) => {
                tracing::warn!(stream = self.spec.name(), "the stream is gone; making it again");
                self.stream = self.bounded("making the stream again", self.spec.ensure(&self.js)).await??;
                self.bounded("reading stream info", self.stream.get_info())
                    .await?
                    .map_err(|e| NatsError::js("reading stream info", e))?
            }
            Err(e) => return Err(NatsError::js("reading stream info", e)),
        };
        // The stream is taken as this one only once the resync succeeds: a
        // resync that failed after seeing a new stream (its last-message
        // read timed out) must see it as new again when it is retried, or
        // it resumes after what the old stream held and the new one lacks.
        let created = info.created.unix_timestamp_nanos();
        let same_stream = self.stream_created.is_none_or(|before| before == created);
        // It must still fit, as the start checked (never a silent
        // downgrade): made again under the same name while this ran, or
        // changed in place (sealed, set to discard new messages when full),
        // which a resync after a refused publish is the first to see.
        self.spec.validate(&info.config)?;
        let stored = if same_stream { self.stored_through.load(Ordering::Relaxed) } else { 0 };
        let Resume { position, held, lost } = self.resume_in(&info, same_stream, stored).await?;
        // A new stream holding none of this journal's messages (the old one
        // deleted, or a server back without its store) is filled from
        // `start_after`: what this task acknowledged into the old one and
        // retention pruned since is not pruned before replication, as a
        // start into such a stream does not count what its checkpoint says
        // was acknowledged (`builder.rs`).
        // (Nor what it had acknowledged into the old one before the old
        // one lost it: progress went back then.)
        if !same_stream && !position.in_stream {
            self.skipped_through = self.skipped_through.max(*self.progress.borrow()).max(self.lost_through);
        }
        // A loss in the stream before this one is no news in this one.
        if !same_stream {
            self.lost_through = 0;
        }
        // A server that lost what it had acknowledged: what retention
        // pruned of that since cannot be sent again. It is reported as
        // such (`skip_pruned`), not as pruned before replication, and not
        // counted in `skipped`: its stream's limits may have removed some
        // of it before, which cannot be told apart.
        if lost {
            self.lost_through = self.lost_through.max(*self.progress.borrow());
        }
        // The feed's last message found in the stream counts as stored, as
        // an acknowledgement does: a later resync that finds the stream's
        // last message below it knows the server lost what came after,
        // acknowledged by this task or by one before it (a restart read
        // them here, not from acknowledgements). What a stream that lost
        // them all had stored counts no more.
        match held {
            Some(last) => self.stored_through.store(last, Ordering::Relaxed),
            None if !same_stream || lost => self.stored_through.store(0, Ordering::Relaxed),
            None => {}
        }
        self.stream_created = Some(created);
        Ok(position)
    }

    /// Where to resume in the stream `info` describes (`same_stream`: the
    /// one this task published to before). `stored`: the highest stream
    /// sequence this task knows one of its messages was stored at there (0
    /// in a new stream).
    async fn resume_in(
        &self,
        info: &async_nats::jetstream::stream::Info,
        same_stream: bool,
        stored: u64,
    ) -> Result<Resume, NatsError> {
        let mut stream_last = info.state.last_sequence;
        // Where to go on when none of this journal's messages is left in the
        // stream: a new stream takes everything from `start_after`; in the
        // stream this task has been publishing to, the messages it had
        // acknowledged were removed (its limits, a purge) and are not sent
        // again (a restart does not know: it starts from `start_after`).
        // Unless the server lost them: a purge or the limits never lower
        // the stream's last sequence, a server that crashed before syncing
        // its last writes does. When they took all the feed's messages with
        // them, it is filled again from `start_after`, as a new stream is.
        // It had resumed after its progress: the lost records never came
        // back, with nothing counted or reported.
        let lost_all = stream_last < stored;
        let replicated =
            if same_stream && !lost_all { self.start_after.max(*self.progress.borrow()) } else { self.start_after };
        if info.state.messages == 0 {
            let seq = if stream_last == 0 { self.start_after } else { replicated };
            // A shared stream guards the subject, which holds no message: 0.
            let stream_last = if self.shared_stream { 0 } else { stream_last };
            return Ok(Resume {
                position: Position { seq, stream_last, in_stream: false },
                held: None,
                lost: lost_all,
            });
        }
        let last = self
            .bounded("reading the stream's last message", self.stream.get_last_raw_message_by_subject(&self.subject))
            .await?;
        let last = match last {
            Ok(last) => last,
            // Other feeds' messages only: this one starts on its subject.
            // In a shared stream, other feeds publishing since the server
            // came back may have taken its last sequence past what this
            // one stored: a loss shows then in the sequence this one's
            // message was stored at, reused by another subject's.
            Err(e) if self.shared_stream && e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                let lost = lost_all || (same_stream && stored > 0 && self.reused(stored).await?);
                let seq = if lost { self.start_after } else { replicated };
                let position = Position { seq, stream_last: 0, in_stream: false };
                return Ok(Resume { position, held: None, lost });
            }
            // A stream of this subject alone, not empty: nats-server 2.9
            // answers so after the subject's last messages were deleted,
            // until it restarts. Its last message is the stream's.
            // None: emptied since `info`; the resync that retries this
            // reads the stream's info again.
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {
                last_by_sequence(&self.stream, &info.state, self.request_bound).await?.ok_or_else(|| {
                    NatsError::js(
                        "reading the stream's last message",
                        "none left; the stream changed while it was read",
                    )
                })?
            }
            Err(e) => return Err(NatsError::js("reading the stream's last message", e)),
        };
        if self.shared_stream {
            stream_last = last.sequence;
        }
        // A gap marker last in the stream accounts for its whole range:
        // resume after its last missing seq.
        let at = Entry::parse(Some(&last.headers), self.spec.name(), last.sequence)?;
        if at.epoch() != self.epoch {
            return Err(self.epoch_mismatch(at.epoch(), self.epoch));
        }
        // What this task had acknowledged past the stream's last message was
        // removed since (a purge, the limits) or is still in the dedup window
        // (acknowledged as a duplicate after a restart into an emptied
        // stream): not sent again, as when the stream holds none of it.
        // Sending it again met the duplicates, whose stream sequences never
        // came, and then the guard's refusal, resync after resync until the
        // dedup window forgot them.
        // Not after a server lost acknowledged messages: the feed's last
        // message is then below one this task stored (limits and purges
        // remove the oldest first, so they never leave it so); those are
        // sent again, from the last message on.
        let lost = last.sequence < stored;
        let floor = if same_stream && !lost { *self.progress.borrow() } else { 0 };
        let position = Position { seq: at.last_seq().max(floor), stream_last, in_stream: true };
        Ok(Resume { position, held: Some(last.sequence), lost })
    }

    /// Whether stream sequence `stored`, where a message of this feed was
    /// stored, now holds another subject's message: the server lost it,
    /// and gave its sequence to a later one. `false` when none is there
    /// (the limits or a purge removed it).
    async fn reused(&self, stored: u64) -> Result<bool, NatsError> {
        let op = "reading the message at the last stored sequence";
        match self.bounded(op, self.stream.get_raw_message(stored)).await? {
            Ok(message) => Ok(message.subject.as_str() != self.subject),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(NatsError::js(op, e)),
        }
    }

    pub(crate) fn epoch_mismatch(&self, stream_epoch: u64, journal_epoch: u64) -> NatsError {
        NatsError::EpochMismatch { stream: self.spec.name().to_owned(), stream_epoch, journal_epoch }
    }
}

/// The last message of a stream in `state` that holds messages of one
/// subject alone, found by stream sequence: nats-server 2.9 answers "no
/// message found" for the subject's last message after its last messages
/// were deleted, until it restarts. From the last sequence down past the
/// deleted ones, at most as many as the stream counts deleted, each request
/// bounded by `each` if given. `None` when none is there: the stream
/// emptied since `state` (a purge, its limits).
pub(crate) async fn last_by_sequence(
    stream: &async_nats::jetstream::stream::Stream,
    state: &async_nats::jetstream::stream::State,
    each: Option<std::time::Duration>,
) -> Result<Option<async_nats::jetstream::message::StreamMessage>, NatsError> {
    let op = "reading the stream's last message by sequence";
    let deleted = state.deleted_count.unwrap_or(0);
    let lowest = state.last_sequence.saturating_sub(deleted).max(state.first_sequence);
    for stream_seq in (lowest..=state.last_sequence).rev() {
        let found = match each {
            Some(each) => tokio::time::timeout(each, stream.get_raw_message(stream_seq))
                .await
                .map_err(|_| NatsError::js(op, "timed out"))?,
            None => stream.get_raw_message(stream_seq).await,
        };
        match found {
            Ok(message) => return Ok(Some(message)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => {}
            Err(e) => return Err(NatsError::js(op, e)),
        }
    }
    Ok(None)
}

/// Where a resync resumes, found in the stream.
struct Resume {
    position: Position,
    /// The stream sequence of the feed's last message there (`None`: the
    /// stream holds none).
    held: Option<u64>,
    /// The server lost messages of this feed it had stored.
    lost: bool,
}

/// Whether a JetStream request failed because the stream does not exist
/// (JetStream error 10059).
fn stream_not_found(error: &async_nats::jetstream::context::RequestError) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|e| e.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND)
}
