//! The replication task: [`Task`] resyncs with the stream, then pumps the
//! journal into it: reads the follower in chunks, turns each reset into a
//! gap marker, a skip or a stop, and backs off after failures. Building,
//! sending and settling each message is `publish.rs`, where a resync
//! resumes `resync.rs`; the handle and the
//! state it shares with the task are `replicator.rs`, the start
//! `builder.rs`.
//!
//! Invariant: seqs are sent in order, each accounted for by a record or a
//! gap marker; a server failure forgets the window and resumes after the
//! stream's last message; a local journal error never causes a resync, and
//! its retries back off up to `MAX_STALL_BACKOFF`.
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::stream::Stream;
use events::layers::journal::{Followed, Follower, Record, Reset};
use futures::FutureExt;
use tokio::sync::watch;

use crate::replicator::Shared;
use crate::{NatsError, StreamSpec};

/// Records taken from the follower per read (the rest stay in its iterator).
pub(crate) const CHUNK: usize = 1024;
/// The first pause after a failure; each further failure in a row doubles it.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest pause between two attempts to reach the server.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest pause between two reads of a journal that failed in a way a
/// retry is unlikely to fix (a corrupt frame): long enough not to spin, short
/// enough that an operator's repair is picked up soon.
pub(crate) const MAX_STALL_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) type StreamIdFn = Arc<dyn Fn(&[u8]) -> Option<String> + Send + Sync>;

/// Where replication stands: the last journal seq in the stream and the
/// stream sequence the next publish expects to follow (the stream's last
/// message; in a shared stream, the feed subject's last message, 0 if none).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Position {
    pub(crate) seq: u64,
    pub(crate) stream_last: u64,
    /// `seq` was read from the stream (false: the stream holds none of the
    /// feed's messages, and `seq` is the builder's `start_after` or, in the
    /// stream this task published to, how far it acknowledged).
    pub(crate) in_stream: bool,
}

impl Position {
    /// Whether `seq` is a seq this journal reached: read from the stream,
    /// or acknowledged by this task past `start_after` (the stream emptied
    /// since, by a purge or its limits). A journal that ends before it went
    /// back (a restored copy of the same epoch), and its next records
    /// would pass as new: a reset. Otherwise `seq` is `start_after`, which
    /// the journal may not have reached yet: a wait.
    fn anchored(&self, start_after: u64) -> bool {
        self.in_stream || self.seq > start_after
    }
}

/// A publish awaiting its acknowledgement.
pub(crate) struct InFlight {
    /// The last journal seq the message accounts for (a gap marker's last
    /// missing seq).
    pub(crate) seq: u64,
    /// The stream sequence it must land at (0 in a shared stream: not known
    /// before the acknowledgement).
    pub(crate) stream_seq: u64,
    /// Its payload's length (for [`NatsError::TooLarge`]).
    pub(crate) bytes: usize,
    pub(crate) ack: PublishAckFuture,
}

/// What one [`Task::pump`] has sent.
pub(crate) struct Outbox {
    /// The last journal seq published (or skipped as pruned).
    pub(crate) sent: u64,
    /// What the next publish is guarded with. Exclusive stream: the stream
    /// sequence the last message published will land at. Shared stream: the
    /// stream sequence at which the feed's last message landed (every
    /// publish is acknowledged before the next one is built).
    pub(crate) stream_seq: u64,
    pub(crate) window: VecDeque<InFlight>,
    /// The stream holds `sent` (or a later seq) of this journal: a journal
    /// that now ends before `sent` was rolled back under the stream.
    pub(crate) anchored: bool,
}

/// What one read of the follower produced: records to publish in order,
/// then, when the read stopped early, why.
#[derive(Default)]
pub(crate) struct Batch {
    records: Vec<Record>,
    stop: Option<Stop>,
}

impl Batch {
    fn stopped(stop: Stop) -> Self {
        Batch { records: Vec::new(), stop: Some(stop) }
    }
}

/// Why a read of the follower stopped before the end of what the journal
/// holds.
pub(crate) enum Stop {
    /// A salvage recovery dropped seqs `first..=last`; the journal goes on
    /// after `last` (`Reset::Gap`).
    Gap { first: u64, last: u64 },
    /// Retention pruned every seq before `earliest` that was not sent yet;
    /// the follower goes on with `earliest` (`Reset::Expired`).
    Expired { earliest: u64 },
    /// The journal ends before the cursor (`Reset::Ahead`). The follower
    /// was dropped: it moved its cursor back.
    Ahead(Reset),
    /// The journal cannot be read past this point for now, and asking the
    /// server again would not change that. The follower (if any) stays at
    /// its cursor.
    Local(NatsError),
    /// The journal cannot be replicated into this stream any more (another
    /// epoch, or a reset this crate does not know): stop.
    Fatal(NatsError),
}

pub(crate) struct Task {
    /// The caller's context: requests (the stream's creation, a resync's reads).
    pub(crate) js: Context,
    /// A copy whose timeout is the ack timeout: publishes.
    pub(crate) publisher: Context,
    pub(crate) stream: Stream,
    pub(crate) spec: StreamSpec,
    /// Where messages go (`spec.subject()`, resolved once).
    pub(crate) subject: String,
    /// A shared stream: subject guard, one publish in flight.
    pub(crate) shared_stream: bool,
    pub(crate) epoch: u64,
    pub(crate) window: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) ack_timeout: Duration,
    /// What bounds each request of a resync: `None` during the start (the
    /// caller's request timeout alone), the ack timeout once it runs.
    pub(crate) request_bound: Option<Duration>,
    pub(crate) start_after: u64,
    pub(crate) stream_ids: Option<StreamIdFn>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) progress: watch::Sender<u64>,
    /// Follows the journal from the last seq sent; `None` before the first
    /// read of a pump (a resync starts a new one at the stream's last
    /// replicated seq) and after a reset that moved it back.
    pub(crate) follower: Option<Follower>,
    /// The highest seq already counted in `skipped`, or acknowledged by a
    /// replicator before this start (its checkpoint said so).
    pub(crate) skipped_through: u64,
    /// Waiting for the journal to reach `start_after` (logged once).
    pub(crate) waiting_ahead: bool,
    pub(crate) stopping: bool,
    /// The pause before the next read after a [`Stop::Local`]; back to
    /// [`FIRST_BACKOFF`] once a read makes progress.
    pub(crate) stall_backoff: Duration,
    /// When the stream the last resync read was created (Unix nanos): a
    /// different value is another stream under the same name.
    pub(crate) stream_created: Option<i128>,
    /// The highest stream sequence a message of this task was stored at,
    /// or the last resync found the feed's last message at: a stream whose
    /// last sequence is below it lost acknowledged messages (a server that
    /// crashed before syncing them), which a purge or the limits never do.
    pub(crate) stored_through: std::sync::atomic::AtomicU64,
    /// Why publishes were last given up on unacknowledged (a publish or an
    /// acknowledgement failed, dropping the window): the server may still
    /// store them. Cleared by a resync, which reads how far the stream got;
    /// what the task ends with is `Shared::unacknowledged`.
    pub(crate) abandoned: Option<String>,
    /// The highest seq acknowledged before a resync found that the server
    /// lost messages of this feed: what retention pruned of those is
    /// reported as [`NatsError::LostByServer`], not as pruned before
    /// replication.
    pub(crate) lost_through: u64,
    /// The last seq a `skip_pruned` dealt with (reported, counted or
    /// passed over): retention only moves forward, so none at or below it
    /// is met again as news.
    pub(crate) skips_through: u64,
}

/// Why [`Task::pump`] returned.
pub(crate) enum Pumped {
    /// Shut down.
    Stopped,
    /// The server failed: resync.
    Failed(NatsError),
    /// Replication cannot go on: the task ends.
    Fatal(NatsError),
}

impl Task {
    pub(crate) async fn run(mut self, first: Position) {
        // A panic (a bug, or a library refusing a value) ends the task as a
        // fatal error would: stopped, with the reason in `last_error`, not
        // a bare "task ended" with `stopped` still false.
        let outcome = std::panic::AssertUnwindSafe(self.replicate(first)).catch_unwind().await;
        // Ended: waiting for nothing any more.
        self.shared.waiting.store(false, Ordering::Release);
        let error = outcome.unwrap_or_else(|panic| {
            let what = events::panic_message(&*panic);
            Some(NatsError::js("replicating", format!("the replication task panicked: {what}")))
        });
        if let Some(e) = error {
            tracing::error!(error = %e, "replication stopped");
            self.shared.record_error(&e);
            let _ = self.shared.fatal.set(e);
            self.shared.stopped.store(true, Ordering::Release);
        }
        if let Some(why) = self.abandoned.take() {
            *self.shared.unacknowledged.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
        }
        // Dropping `self` drops the progress sender: `wait_for` fails from
        // here on instead of waiting forever.
    }

    /// Replicates until shut down (`None`) or a fatal error.
    async fn replicate(&mut self, first: Position) -> Option<NatsError> {
        let mut next = Some(first);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let position = match next.take() {
                Some(p) => p,
                // Asked to stop since the failure: no resync with a server
                // that may not answer.
                None if self.stop_requested() => return None,
                None => match self.resync().await {
                    Ok(p) => {
                        self.abandoned = None;
                        p
                    }
                    Err(
                        e @ (NatsError::EpochMismatch { .. }
                        | NatsError::BadMessage { .. }
                        | NatsError::StreamMismatch { .. }),
                    ) => return Some(e),
                    Err(e) => {
                        tracing::warn!(error = %e, ?backoff, "cannot reach the stream; retrying");
                        self.shared.record_error(&e);
                        if self.pause(backoff).await {
                            return None;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let acked_before = self.shared.counters.acked.load(Ordering::Relaxed);
            match self.pump(position).await {
                Pumped::Stopped => return None,
                Pumped::Fatal(e) => return Some(e),
                // Refused for its size in the acknowledgement (the stream's
                // `max_msg_size`): sent again after a resync, refused again.
                Pumped::Failed(e @ NatsError::TooLarge { .. }) => return Some(e),
                // Stopping, and the publishes in flight were not all
                // acknowledged in time: the shutdown ends here (within one
                // ack timeout, as `shutdown` says), with the error recorded
                // for its caller, rather than resyncing with a server that
                // does not answer. The shutdown may have come while the
                // failed publish or acknowledgement was awaited, after the
                // pump last looked at the flag.
                Pumped::Failed(e) if self.stop_requested() => {
                    tracing::warn!(error = %e, "stopped with publishes in flight not acknowledged");
                    self.shared.record_error(&e);
                    self.abandoned = Some(e.to_string());
                    return None;
                }
                Pumped::Failed(e) => {
                    tracing::warn!(error = %e, "replication interrupted; resuming from the stream");
                    self.shared.record_error(&e);
                    self.abandoned = Some(e.to_string());
                    self.shared.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                    if self.shared.counters.acked.load(Ordering::Relaxed) > acked_before {
                        // Progress since the last resync: resume at once.
                        backoff = FIRST_BACKOFF;
                    } else {
                        // Nothing got through since the last resync: resyncing
                        // at once would hammer a server that keeps refusing.
                        if self.pause(backoff).await {
                            return None;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }

    /// Sets whether the pump waits for the journal to reach `start_after`
    /// (published in the stats); returns whether it did.
    fn wait_ahead(&mut self, waiting: bool) -> bool {
        self.shared.waiting.store(waiting, Ordering::Release);
        std::mem::replace(&mut self.waiting_ahead, waiting)
    }

    /// Whether `shutdown` asked to stop (remembered in `stopping`).
    fn stop_requested(&mut self) -> bool {
        self.stopping |= self.shared.stop_flag.load(Ordering::Acquire);
        self.stopping
    }

    /// Sleeps `d` unless asked to stop first; returns whether to stop.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            () = self.shared.stop.notified() => { self.stopping = true; true }
        }
    }

    /// Publishes from `position` until stopped, until the server fails, or
    /// until the journal cannot be replicated any more.
    async fn pump(&mut self, position: Position) -> Pumped {
        let mut out = Outbox {
            sent: position.seq,
            stream_seq: position.stream_last,
            // Grown as publishes go out: a window of `usize::MAX` is
            // allowed (the context's `max_ack_inflight` bounds it in fact).
            window: VecDeque::with_capacity(self.window.min(1024)),
            anchored: position.anchored(self.start_after),
        };
        self.progress.send_replace(position.seq);
        // Waiting for `start_after` is decided again: an anchored position
        // facing a journal that ends before it is a reset, never a wait.
        self.wait_ahead(false);
        // Whatever the last follower had read past the stream is unsent:
        // follow again from the stream's last replicated seq.
        self.follower = None;
        loop {
            let batch = if self.stop_requested() { Batch::default() } else { self.read(out.sent) };
            if batch.records.is_empty() && batch.stop.is_none() {
                if let Some(head) = out.window.pop_front() {
                    if let Err(e) = self.settle(&mut out, head).await {
                        return Pumped::Failed(e);
                    }
                    continue;
                }
                if self.stopping || self.idle().await {
                    return Pumped::Stopped;
                }
                continue;
            }
            if !batch.records.is_empty() {
                self.stall_backoff = FIRST_BACKOFF;
                self.wait_ahead(false);
            }
            let mut cut_short = false;
            for record in &batch.records {
                // Asked to stop: the rest of the batch stays unsent (a
                // shared stream's window of one would send it a round trip
                // a record, up to a chunk of them, long past `shutdown`'s
                // ack timeout), and so does what `batch.stop` says of the
                // records after it.
                if self.stop_requested() {
                    cut_short = true;
                    break;
                }
                if let Err(e) = self.ready(&mut out).await {
                    return Pumped::Failed(e);
                }
                let message = self.message(record, out.stream_seq);
                match self.publish(&mut out, record.seq(), record.payload().len(), message).await {
                    Ok(()) => {}
                    // Sent again after a resync, it is refused again.
                    Err(e @ NatsError::TooLarge { .. }) => return self.fatal(&mut out, e).await,
                    Err(e) => return Pumped::Failed(e),
                }
            }
            if cut_short {
                continue;
            }
            match batch.stop {
                None => {}
                Some(Stop::Gap { first, last }) => {
                    tracing::warn!(
                        first_missing = first,
                        last_missing = last,
                        "journal gap (salvage); publishing a gap marker"
                    );
                    if let Err(e) = self.ready(&mut out).await {
                        return Pumped::Failed(e);
                    }
                    let message = self.gap_message(first, last, out.stream_seq);
                    if let Err(e) = self.publish(&mut out, last, 0, message).await {
                        return Pumped::Failed(e);
                    }
                    self.shared.counters.gaps.fetch_add(1, Ordering::Relaxed);
                    self.stall_backoff = FIRST_BACKOFF;
                }
                Some(Stop::Expired { earliest }) => self.skip_pruned(&mut out, earliest),
                Some(Stop::Ahead(reset)) if out.anchored => {
                    // The stream holds seqs this journal no longer has: its
                    // next records would take ids the stream already holds.
                    let error = NatsError::JournalReset {
                        stream: self.spec.name().to_owned(),
                        dir: self.shared.reader.dir().to_path_buf(),
                        after: out.sent,
                        reset,
                    };
                    return self.fatal(&mut out, error).await;
                }
                Some(Stop::Ahead(reset)) => {
                    // Nothing of this journal in the stream yet: `start_after`
                    // is past its end. Wait for the journal to get there.
                    if !self.wait_ahead(true) {
                        tracing::warn!(
                            start_after = out.sent,
                            ?reset,
                            "the journal has not reached start_after; waiting"
                        );
                    }
                    if self.idle().await {
                        return Pumped::Stopped;
                    }
                }
                Some(Stop::Fatal(e)) => return self.fatal(&mut out, e).await,
                Some(Stop::Local(e)) => {
                    // What preceded the error is in flight: see it
                    // acknowledged (for `wait_for` and the stats) before
                    // waiting.
                    if let Err(e) = self.drain(&mut out).await {
                        return Pumped::Failed(e);
                    }
                    let backoff = self.stall_backoff;
                    tracing::error!(error = %e, after = out.sent, ?backoff, "cannot read the journal; retrying after a pause");
                    self.shared.record_stall(&e);
                    if self.pause(backoff).await {
                        return Pumped::Stopped;
                    }
                    self.stall_backoff = (backoff * 2).min(MAX_STALL_BACKOFF);
                }
            }
        }
    }

    /// Waits for a wake, the poll interval or shutdown; returns whether to
    /// stop.
    async fn idle(&mut self) -> bool {
        tokio::select! {
            () = self.shared.wake.notified() => {}
            () = tokio::time::sleep(self.poll_interval) => {}
            () = self.shared.stop.notified() => self.stopping = true,
        }
        self.stopping
    }

    /// Ends replication with `error`, after the publishes in flight (all of
    /// the journal being replicated) are acknowledged, so the stats say how
    /// far it got.
    async fn fatal(&mut self, out: &mut Outbox, error: NatsError) -> Pumped {
        if let Err(e) = self.drain(out).await {
            tracing::warn!(error = %e, "acknowledgements lost while stopping");
            self.abandoned = Some(e.to_string());
        }
        Pumped::Fatal(error)
    }

    /// Accounts for the seqs retention pruned before they were sent (the
    /// follower goes on with `earliest`): counted once each in `skipped`,
    /// logged, and recorded as an error, never skipped silently. Those the
    /// stream had acknowledged and no longer holds (`lost_through`: the
    /// server lost them, or its limits removed them before) are not
    /// counted, as records a stream made again no longer holds are not;
    /// they are logged and recorded once as [`NatsError::LostByServer`].
    fn skip_pruned(&mut self, out: &mut Outbox, earliest: u64) {
        let last_missing = earliest.saturating_sub(1);
        let (stream, dir) = (self.spec.name().to_owned(), self.shared.reader.dir().to_path_buf());
        // Not what was counted or reported already: seqs pruned before they
        // were replicated never were in the stream.
        let lost_upto = self.lost_through.min(last_missing);
        let lost_from = out.sent.max(self.skips_through) + 1;
        if lost_upto >= lost_from {
            let error = NatsError::LostByServer {
                stream: stream.clone(),
                dir: dir.clone(),
                first_missing: lost_from,
                last_missing: lost_upto,
            };
            tracing::error!(error = %error, "records the stream no longer holds were pruned: they cannot be sent again");
            self.shared.record_error(&error);
        }
        let counted = out.sent.max(self.skipped_through).max(lost_upto);
        // A resync may meet a range already counted (the stream still ends
        // before it), or one a replicator before this start acknowledged
        // (the checkpoint said so, and the stream lost it since): count only
        // seqs not counted yet.
        let new = last_missing.saturating_sub(counted);
        if new > 0 {
            let error = NatsError::Pruned { stream, dir, first_missing: counted + 1, last_missing };
            tracing::error!(error = %error, lost = new, "journal records pruned before replication");
            self.shared.counters.skipped.fetch_add(new, Ordering::Relaxed);
            self.shared.record_error(&error);
            self.skipped_through = last_missing;
        } else {
            tracing::warn!(last_missing, "journal records pruned, replicated before or already counted");
        }
        out.sent = out.sent.max(last_missing);
        self.skips_through = self.skips_through.max(last_missing);
    }

    /// Up to [`CHUNK`] records after `sent` from the follower (made at
    /// `sent` if there is none), stopping at a reset or an error.
    fn read(&mut self, sent: u64) -> Batch {
        // Waiting for the journal to reach `start_after`: a follower made
        // at `sent` would only reset `Ahead` again, and log it, each pass
        // (20 lines a second at the default poll interval). Nothing to read
        // until the journal gets there, while it is the same journal (a
        // new follower checks the epoch: a directory recreated meanwhile
        // stops the replicator).
        let reader = &self.shared.reader;
        if self.waiting_ahead
            && self.follower.is_none()
            && reader.epoch().is_ok_and(|epoch| epoch == self.epoch)
            && reader.last_seq().is_ok_and(|last| last < sent)
        {
            return Batch::default();
        }
        let mut follower = match self.follower.take() {
            Some(follower) => follower,
            None => match Follower::new(self.shared.reader.clone(), sent) {
                // A new follower takes the epoch now in the directory as
                // its cursor's: check it is still the one replicated.
                Ok(follower) if follower.epoch() != self.epoch => {
                    return Batch::stopped(Stop::Fatal(self.epoch_mismatch(self.epoch, follower.epoch())));
                }
                Ok(follower) => follower,
                Err(e) => return Batch::stopped(Stop::Local(e.into())),
            },
        };
        debug_assert_eq!(follower.cursor(), sent, "the follower is where the replicator is");
        let mut batch = Batch::default();
        while batch.records.len() < CHUNK {
            let reset = match follower.next() {
                Ok(None) => break,
                Ok(Some(Followed::Record(record))) => {
                    batch.records.push(record);
                    continue;
                }
                Ok(Some(Followed::Reset(reset))) => reset,
                Err(e) => {
                    // The follower stays at its cursor: the next read retries.
                    batch.stop = Some(Stop::Local(e.into()));
                    break;
                }
            };
            let stop = match reset {
                // The follower goes on after the gap, or with the earliest
                // retained record, as the stream does.
                Reset::Gap { first_missing, last_missing } => Stop::Gap { first: first_missing, last: last_missing },
                Reset::Expired { earliest } => Stop::Expired { earliest },
                // The follower moved its cursor back to the start of the
                // journal now in the directory: it is not used again.
                Reset::Ahead { .. } => return Batch { stop: Some(Stop::Ahead(reset)), ..batch },
                Reset::Epoch { old, new, .. } => {
                    return Batch { stop: Some(Stop::Fatal(self.epoch_mismatch(old, new))), ..batch };
                }
                other => {
                    let error = NatsError::JournalReset {
                        stream: self.spec.name().to_owned(),
                        dir: self.shared.reader.dir().to_path_buf(),
                        after: batch.records.last().map_or(sent, Record::seq),
                        reset: other,
                    };
                    return Batch { stop: Some(Stop::Fatal(error)), ..batch };
                }
            };
            batch.stop = Some(stop);
            break;
        }
        self.follower = Some(follower);
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::Position;

    #[test]
    fn a_resume_past_start_after_in_an_emptied_stream_is_anchored() {
        let at = |seq, in_stream| Position { seq, stream_last: 20, in_stream };
        // Acknowledged through 20 by this task, the stream emptied since: a
        // journal ending before 20 went back (it had waited for it in
        // silence, then passed over the restored journal's 11..=20).
        assert!(at(20, false).anchored(0));
        assert!(at(20, true).anchored(0));
        // Nothing past `start_after` yet: the journal may not be there.
        assert!(!at(5, false).anchored(5));
    }
}
