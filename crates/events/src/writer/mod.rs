//! The writer thread: the one owner of seq allocation, journal appends, live
//! publication, sink hand-off and acknowledgements, in that order per batch
//! (a batch's acknowledgements are mostly sent by a task on the feed's
//! runtime; `acks.rs` says when the writer sends them itself).
//!
//! Invariant: journal order = live order = seq order, and nothing is
//! published (live, sinks, acks) before the journal accepted it with the
//! durability its `SyncPolicy` promises. The thread is a plain OS thread, so
//! journal I/O never runs on the async worker threads. It drains the inbox in
//! batches, one `write` per batch; with `SyncPolicy::Always` one fdatasync
//! covers every batch written before it started, and runs on the journal's
//! sync thread while the next batches are taken and written (pipelined group
//! commit, `commit.rs`): a batch is published when the journal's
//! acknowledged seq reaches it, never earlier. After a journal failure it
//! refuses every later append: after a failed fsync the page cache cannot be
//! trusted, so retrying and claiming success would be a lie.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use events_core::{Codec, Envelope, Event, EventId, Seq, StreamId, Timestamp};
use events_journal::{Journal, JournalError};
use tokio::sync::{mpsc, oneshot};

use self::acks::{Acks, answer};
use crate::append::{Dedupe, Expected};
mod acks;
mod commit;
mod stage;
mod upkeep;

use crate::batches::{MAX_BATCH_EVENTS, next_commands, try_recv_many};
use crate::error::{let_go, let_go_each, wake_caught};
use crate::guard::Guard;
use crate::live::Ring;
use crate::position::Position;
use crate::recent::Recent;
use crate::shared::{LIVE_CHUNK, LiveChunk, Shared};
use crate::sinks::SinkQueue;
use crate::stats::Counters;
use crate::{Error, Result, error_chain, index};

/// Encoded bytes that end a batch early, so one `write` stays reasonable.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// The longest a group commit waits for the appenders of the last batch.
const MAX_GROUP_WAIT: Duration = Duration::from_micros(200);
/// After a writer-thread panic, the longest it waits for the inbox slots
/// taken before it closed the inbox to be used or given back.
const SLOTS_WAIT: Duration = Duration::from_millis(100);

/// What handles send to the writer.
pub(crate) enum Cmd<E> {
    /// Fire-and-forget: journal if possible, count a drop otherwise.
    Record { stream: Option<StreamId>, event: E },
    /// A session's durable event, encoded and checked by its emitter
    /// before any subscriber saw it: `payload` is what the journal gets.
    Encoded { stream: StreamId, event: E, payload: Vec<u8> },
    /// An ephemeral event for the live-output ring (never journaled).
    Ephemeral { stream: Option<StreamId>, event: E },
    /// Journal and acknowledge with the stored envelope once durable, if
    /// the conditions hold.
    Append { stream: Option<StreamId>, event: E, ack: Ack<E>, when: Conditions },
    /// Flush and fsync what came before, then acknowledge.
    Sync { ack: oneshot::Sender<Result<()>> },
    /// Stop accepting, drain the inbox, fsync, release the lock.
    Close { ack: oneshot::Sender<Result<()>> },
    /// Apply retention now (the feed's timer), so age retention fires on an
    /// idle feed too.
    Prune,
}

/// Where an append's outcome goes.
pub(crate) type Ack<E> = oneshot::Sender<Result<Acked<E>>>;

/// An append's outcome: the envelope as journaled (its seq, the batch's
/// timestamp, the stream id the writer resolved), shared with the live tail
/// and the sinks rather than copied; for a duplicate, the first append's
/// seq and timestamp with this append's event.
#[derive(Debug)]
pub(crate) struct Acked<E> {
    pub(crate) env: Arc<Envelope<E>>,
    pub(crate) duplicate: bool,
}

/// What a conditional or idempotent append asks of the writer.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conditions {
    pub(crate) expected: Expected,
    pub(crate) id: Option<EventId>,
}

/// One event in flight: staged, or written and waiting for its fdatasync.
struct Pending<E> {
    ts: u64,
    span: (usize, usize),
    stream: Option<StreamId>,
    id: Option<EventId>,
    event: E,
    ack: Option<Ack<E>>,
}

pub(crate) struct Writer<E, C> {
    journal: Journal,
    /// The newest published chunks, which the streams take (live, and
    /// replays near the end).
    recent: Arc<Recent<E>>,
    sinks: Option<SinkQueue<E>>,
    shared: Arc<Shared>,
    codec: C,
    buf: Vec<u8>,
    /// The events not yet published, oldest first: the first `written`
    /// are in the journal, waiting for the fdatasync that covers them.
    pending: Vec<Pending<E>>,
    written: usize,
    published: Vec<Arc<Envelope<E>>>,
    /// The acknowledgements of the batch being published, and their delivery.
    acks: Acks<E>,
    /// Appends of an id still in flight: they share the outcome of the
    /// event with that seq; with the id, those to another stream, refused
    /// with `EventIdTaken` once it is journaled.
    duplicates: Vec<(Ack<E>, u64, Option<EventId>)>,
    guard: Guard,
    /// Whether every batch is fsynced (`SyncPolicy::Always`), which makes
    /// waiting briefly for a fuller batch worth it.
    group_commit: bool,
    /// Size and duration (write + fsync) of the last acknowledged batch.
    last_batch: usize,
    last_write: Duration,
    /// When the sync in flight started.
    sync_started: Instant,
    /// The largest encoded event the journal accepts.
    max_record_bytes: u32,
    /// Events decoded back after encoding (`payload::ReadBack`).
    read_back: crate::payload::ReadBack,
    /// The journal's roll count when sealed segments were last indexed.
    rolls_indexed: u64,
    /// The threads indexing sealed segments that may still run, joined
    /// before the feed closes so that no file appears in the directory
    /// after `close` returned.
    indexers: Vec<std::thread::JoinHandle<()>>,
    /// The live-output ring, when the feed keeps one.
    ring: Option<Arc<Ring<E>>>,
    /// The ephemeral events in flight, each with the number of `pending`
    /// events staged before it.
    ephemerals: Vec<(usize, Option<StreamId>, E)>,
    /// The position of the last ephemeral event put in the ring.
    last_ephemeral: Position,
    /// The answer of the `Feed::sync` being served.
    sync_ack: Option<oneshot::Sender<Result<()>>>,
}

impl<E: Event, C: Codec> Writer<E, C> {
    pub(crate) fn new(
        journal: Journal,
        recent: Arc<Recent<E>>,
        sinks: Option<SinkQueue<E>>,
        shared: Arc<Shared>,
        codec: C,
        group_commit: bool,
    ) -> Self {
        Writer {
            journal,
            recent,
            sinks,
            shared,
            codec,
            buf: Vec::with_capacity(256 << 10),
            pending: Vec::with_capacity(MAX_BATCH_EVENTS),
            written: 0,
            published: Vec::with_capacity(MAX_BATCH_EVENTS),
            acks: Acks::spawn(),
            duplicates: Vec::new(),
            guard: Guard::new(Dedupe::default()),
            group_commit,
            last_batch: 0,
            last_write: Duration::ZERO,
            sync_started: Instant::now(),
            max_record_bytes: u32::MAX,
            read_back: crate::payload::ReadBack::default(),
            rolls_indexed: 0,
            indexers: Vec::new(),
            ring: None,
            ephemerals: Vec::new(),
            last_ephemeral: Position::default(),
            sync_ack: None,
        }
    }

    pub(crate) fn max_record_bytes(mut self, limit: u32) -> Self {
        self.max_record_bytes = limit;
        self
    }

    pub(crate) fn ring(mut self, ring: Option<Arc<Ring<E>>>) -> Self {
        self.last_ephemeral = ring.as_ref().map_or(Position::default(), |ring| ring.start());
        self.ring = ring;
        self
    }

    pub(crate) fn dedupe(mut self, window: Dedupe) -> Self {
        self.guard = Guard::new(window);
        self
    }

    /// Runs until every sender is gone or a `Close` drained the inbox.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Cmd<E>>) {
        let mut cmds = Vec::with_capacity(MAX_BATCH_EVENTS);
        let mut close_acks = Vec::new();
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.serve(&mut rx, &mut cmds, &mut close_acks);
            // Everything written is acknowledged (or refused) before the
            // journal closes, and answered before `close` is.
            self.settle();
            self.acks.finish();
        }));
        if let Err(panic) = served {
            // Before the streams hear that the writer stopped (the
            // thread's catch marks the feed closed): a stream that sees it
            // stop must find the feed failed, or it ends as after a clean
            // close. The unwinding goes on, so the journal drops as after
            // a crash.
            self.shared.set_failed(writer_panicked(&crate::panic_message(&*panic)));
            self.let_go_callers(rx, cmds, close_acks);
            std::panic::resume_unwind(panic);
        }
        self.close(close_acks);
    }

    /// Takes and runs commands until the inbox closes (a `close`, or the
    /// last handle gone). `cmds` holds the batch being run; `close_acks`
    /// collects the `close` calls to answer.
    fn serve(
        &mut self,
        rx: &mut mpsc::Receiver<Cmd<E>>,
        cmds: &mut Vec<Cmd<E>>,
        close_acks: &mut Vec<oneshot::Sender<Result<()>>>,
    ) {
        // Before the first command: a retry right after a restart must find
        // the ids journaled before it.
        self.guard.rebuild(&self.shared.reader, &self.codec, Timestamp::now().as_nanos());
        let waker = commit::waker();
        loop {
            let open = if self.journal.syncing() {
                self.next_or_synced(rx, cmds, &waker)
            } else {
                next_commands(rx, cmds, || self.acks.deliver_queued())
            };
            if !open {
                break;
            }
            if cmds.is_empty() {
                continue; // woken by the sync in flight
            }
            self.await_group(rx, cmds);
            // Each command is taken out of its slot, a `Prune` (which holds
            // nothing) left in its place: after a panic in this loop, those
            // it did not reach are still in `cmds`, which `run` lets go of
            // once the feed is marked failed. (Drained, they were dropped
            // with the drain as the panic unwound: an event whose `Drop`
            // panicked aborted the process, and an answer dropped before
            // the failure was marked read as `Closed`.)
            for slot in cmds.iter_mut() {
                match std::mem::replace(slot, Cmd::Prune) {
                    Cmd::Record { stream, event } => self.stage(stream, event, None, Conditions::default()),
                    Cmd::Encoded { stream, event, payload } => self.stage_encoded(stream, event, &payload),
                    Cmd::Ephemeral { stream, event } => match self.stream_of(stream, &event, None) {
                        Some((stream, _)) => self.ephemerals.push((self.pending.len(), stream, event)),
                        None => let_go(event),
                    },
                    Cmd::Append { stream, event, ack, when } => self.stage(stream, event, Some(ack), when),
                    Cmd::Sync { ack } => {
                        // Held by the writer, not this frame, while it
                        // flushes: after a panic there, `run` lets it go
                        // once the feed is marked failed.
                        self.sync_ack = Some(ack);
                        self.flush(rx, false);
                        let synced = self.sync();
                        answer(self.sync_ack.take().expect("held above"), synced);
                    }
                    Cmd::Prune => {
                        self.flush(rx, false);
                        self.prune();
                    }
                    Cmd::Close { ack } => {
                        // Refuse new commands; what is already queued is still
                        // received and journaled before the loop ends.
                        rx.close();
                        close_acks.push(ack);
                    }
                }
                if self.buf.len() >= MAX_BATCH_BYTES {
                    self.flush(rx, true);
                }
            }
            cmds.clear();
            self.flush(rx, false);
            // A flood of records never lets this loop park: acknowledgements
            // the task has not taken in time are sent here.
            self.acks.deliver_if_stale();
        }
    }

    /// After a panic that no catch on the writer thread took (a bug, or a
    /// fault plan's): lets go of everything of the callers' that the
    /// writer holds, each under a catch, before the unwinding goes on. The
    /// events staged, published, in the batch or waiting in the inbox,
    /// and the answers not sent, run the event type's `Drop` and the
    /// callers' wakers (dropping an answer wakes its caller): dropped with
    /// the writer during the unwinding, the first of them that panicked
    /// aborted the process. Each answer let go here reads as the feed's
    /// failure (`Inbox::gone`). What stays is the writer's own (the
    /// journal drops as after a crash), and the acknowledgements of
    /// published batches, which are still sent, each under its own catch.
    /// (The command being run when the panic came is dropped with the
    /// frame that ran it.)
    fn let_go_callers(
        &mut self,
        mut rx: mpsc::Receiver<Cmd<E>>,
        cmds: Vec<Cmd<E>>,
        close_acks: Vec<oneshot::Sender<Result<()>>>,
    ) {
        let_go_each(cmds);
        let_go_each(self.pending.drain(..));
        let_go_each(self.published.drain(..));
        let_go_each(self.duplicates.drain(..));
        let_go_each(self.ephemerals.drain(..));
        let_go_each(self.sync_ack.take().into_iter().chain(close_acks));
        // Closing the inbox wakes the senders waiting for room. Tokio wakes
        // them in lists of 32; a waker that panics leaves the rest of its
        // list unwoken (they wait until polled for another reason) and the
        // lists after it queued, for the next call.
        while wake_caught("waking an inbox sender after the writer thread panicked", || rx.close()).is_none() {}
        // Until every slot taken before the close was used or given back:
        // an append between taking its slot and sending (no await between)
        // would otherwise queue its answer where nothing takes it, kept
        // alive by the appender's own handle, and wait for it for ever.
        // Bounded: a session may hold its slot across its subscribers'
        // fan-out (what it sends later has no answer, and is dropped with
        // the last handle).
        let deadline = Instant::now() + SLOTS_WAIT;
        loop {
            while let Ok(cmd) = rx.try_recv() {
                let_go(cmd);
            }
            if rx.capacity() == rx.max_capacity() || Instant::now() >= deadline {
                break;
            }
            std::thread::yield_now();
        }
        let_go(rx);
    }

    /// Closes the journal once the inbox closed and everything was
    /// answered, and answers the `close` calls.
    fn close(self, close_acks: Vec<oneshot::Sender<Result<()>>>) {
        // The sink task drains what it was handed and ends: `Feed::close` waits for it.
        let Writer { journal, shared, sinks, indexers, .. } = self;
        drop(sinks);
        for thread in indexers {
            let _ = thread.join();
        }
        let result = journal.close().map_err(Error::from);
        if let Err(e) = &result {
            tracing::error!(error = %error_chain(e), "closing the journal failed");
            // For a `close` that finds this one under way (and `stats`).
            shared.set_failed(error_chain(e));
        }
        shared.mark_closed();
        tracing::debug!(dir = %shared.dir.display(), "feed writer stopped");
        // The first `close` gets the journal's own error (its operation and
        // path: `Error::Journal`), as `sync` does; any other, its text, or
        // `Closed`, as a `close` sent after the inbox closed gets (two
        // queued together had both been answered `Ok`).
        let cause = result.as_ref().err().map(|e| error_chain(e));
        let mut first = Some(result);
        for ack in close_acks {
            let result = match (first.take(), &cause) {
                (Some(result), _) => result,
                (None, None) => Err(Error::Closed),
                (None, Some(cause)) => Err(Error::Unhealthy { cause: cause.clone() }),
            };
            answer(ack, result);
        }
    }

    /// Group commit: the appenders the last batch acknowledged are about to
    /// send their next append. When fewer commands than that are here, wait
    /// for them up to as long as the last write + fsync took (at most
    /// [`MAX_GROUP_WAIT`]), so one fsync covers them all instead of a few: at
    /// most doubling one batch's latency to multiply the batch size. A lone
    /// appender (last batch of one) never waits.
    fn await_group(&self, rx: &mut mpsc::Receiver<Cmd<E>>, cmds: &mut Vec<Cmd<E>>) {
        let want = self.last_batch.min(MAX_BATCH_EVENTS);
        // With a sync in flight these commands wait for it anyway.
        if !self.group_commit || cmds.len() >= want || self.journal.syncing() {
            return;
        }
        let deadline = Instant::now() + self.last_write.min(MAX_GROUP_WAIT);
        while cmds.len() < want && Instant::now() < deadline {
            match try_recv_many(rx, cmds) {
                Poll::Ready(0) => return,
                Poll::Ready(_) => {}
                Poll::Pending => std::thread::yield_now(),
            }
        }
    }

    /// The seq of the oldest event in flight (`pending[0]`).
    fn first_pending(&self) -> u64 {
        self.journal.next_seq() - self.written as u64
    }

    /// Writes the staged events as one batch and publishes what the journal
    /// acknowledges. Under `Always`, when commands wait once the batch is
    /// written (`more` of them in hand, or in the inbox) or a sync is
    /// already in flight, the batch's fdatasync is left to the journal's
    /// sync thread and the batch is published once it completed
    /// (`commit.rs`), so the writer takes the next commands meanwhile.
    /// Otherwise the fdatasync runs here, which spares a lone appender (or
    /// one group of them) two thread wake-ups per batch.
    fn flush(&mut self, rx: &mpsc::Receiver<Cmd<E>>, more: bool) {
        if self.pending.len() == self.written {
            if self.pending.is_empty() {
                // Only ephemeral events (or nothing): they follow the last
                // acknowledged seq (after a failure, refused ones are past it).
                self.publish_ephemerals(self.journal.acked_seq() + 1, usize::MAX);
            }
            return;
        }
        if let Some(cause) = self.shared.failure() {
            self.reject_pending(None, &cause);
            return;
        }
        let buf = &self.buf;
        let records = self.pending[self.written..].iter().map(|p| (p.ts, &buf[p.span.0..p.span.1]));
        let started = Instant::now();
        let result = self.journal.write_batch(records).and_then(|_| {
            self.written = self.pending.len();
            if !self.group_commit {
                Ok(()) // acknowledged by the write under the other policies
            } else if more || self.journal.syncing() || !rx.is_empty() {
                self.start_sync(started)
            } else {
                self.journal.commit().map(drop)
            }
        });
        if !self.journal.syncing() {
            self.last_write = started.elapsed(); // otherwise measured when the sync completes
        }
        self.buf.clear();
        match result {
            Err(e) => self.fail(e),
            Ok(()) => self.publish_acked(),
        }
    }

    /// Puts the ephemeral events staged before the `upto`-th pending event
    /// in the ring (`Ring::insert_staged`) before those durable events are
    /// published, so a reader that sees durable seq `s + 1` finds every
    /// ephemeral event before it there. `first` is `pending[0]`'s seq.
    fn publish_ephemerals(&mut self, first: u64, upto: usize) {
        let Some(ring) = self.ring.as_ref().filter(|_| !self.ephemerals.is_empty()) else {
            self.ephemerals.clear();
            return;
        };
        let cut = self.ephemerals.partition_point(|(before, ..)| *before <= upto);
        if ring.insert_staged(first, self.ephemerals.drain(..cut), &mut self.last_ephemeral) {
            // A waker panicked in the ring's wake: those tokio left
            // unwoken are woken by the bell.
            self.shared.bell.ring();
        }
        for (before, ..) in &mut self.ephemerals {
            *before -= upto;
        }
    }

    /// Publishes the oldest `n` events in flight, which the journal
    /// acknowledged: live, sinks, acks.
    fn publish(&mut self, n: usize) {
        let first = self.first_pending();
        self.publish_ephemerals(first, n);
        self.written -= n;
        let mut seq = Seq::new(first);
        for p in self.pending.drain(..n) {
            self.guard.journaled(p.stream.as_ref(), p.id.as_ref(), seq.get(), p.ts);
            let env = Arc::new(Envelope { seq, ts: Timestamp(p.ts), stream: p.stream, event: p.event, id: p.id });
            if let Some(ack) = p.ack {
                self.acks.push(ack, Acked { env: Arc::clone(&env), duplicate: false });
            }
            self.published.push(env);
            seq = seq.next();
        }
        let last = seq.get() - 1;
        // Appends of an id that was in flight share its outcome.
        let published = &self.published;
        for (ack, seq, taken) in self.duplicates.extract_if(.., |(_, seq, _)| *seq <= last) {
            if let Some(id) = taken {
                Counters::bump(&self.shared.counters.conflicts);
                answer(ack, Err(Error::EventIdTaken { id, seq: Seq::new(seq) }));
                continue;
            }
            Counters::bump(&self.shared.counters.duplicates);
            self.acks.push(ack, Acked { env: Arc::clone(&published[(seq - first) as usize]), duplicate: true });
        }
        self.guard.acknowledged(last);
        // Acknowledged from here on: streams replaying the journal may now
        // read up to `last`.
        self.shared.after_batch(last - first + 1, last, &self.journal);
        // A segment was sealed: index it off this thread (never on the append path).
        let rolls = self.journal.stats().rolls;
        if rolls != self.rolls_indexed {
            self.rolls_indexed = rolls;
            if let Some(thread) =
                index::index_sealed_in_background(&self.shared.indexing, &self.shared.reader, &self.codec)
            {
                self.indexers.retain(|t| !t.is_finished());
                self.indexers.push(thread);
            }
        }
        // Kept in chunks of LIVE_CHUNK events, which the streams caught up
        // with the writer take after the bell rings, and those replaying
        // near the end take too.
        let chunks: Vec<LiveChunk<E>> =
            self.published.chunks(LIVE_CHUNK).map(|chunk| Arc::new(chunk.to_vec().into())).collect();
        self.recent.push(chunks);
        self.shared.bell.ring();
        // The writer may hold the batch's last references: when the kept
        // envelopes let its first chunks go already (a batch larger than
        // `live_capacity`), and every sink's queue refused it or there is
        // no sink. Each is let go under a catch of its own, as
        // `Recent::push` lets them go: `clear` had dropped them as one
        // slice, where a second `Drop` that panicked, during the first
        // one's unwinding, aborted the process.
        match &self.sinks {
            Some(sinks) => sinks.dispatch(std::mem::take(&mut self.published), &self.shared.counters),
            None => crate::error::let_go_each(self.published.drain(..)),
        }
        self.acks.deliver();
    }

    /// Refuses every event in flight: with the journal's error when this
    /// batch's write or fdatasync failed (`failure`), each appender gets it
    /// (an I/O error copied with its OS code; another kind goes to the first
    /// appender, the others get `Unhealthy` naming it); with `Unhealthy`
    /// when an earlier batch failed.
    fn reject_pending(&mut self, failure: Option<JournalError>, cause: &str) {
        // Every ephemeral event staged follows the last acknowledged one, in
        // emit order: the refused events never exist, so nothing comes
        // between. They stay (UIs were shown them, or will be: on a feed
        // that failed, `record` and sessions go on streaming tokens). Those
        // staged after a refused event had been cleared, uncounted and with
        // no loss in the ring, at every drain of a failed feed.
        for (before, ..) in &mut self.ephemerals {
            *before = 0;
        }
        self.publish_ephemerals(self.journal.acked_seq() + 1, usize::MAX);
        let mut failure = failure.map(Error::Journal);
        let mut refusal = || match failure.as_ref().and_then(copy_io_failure) {
            Some(copy) => copy,
            None => failure.take().unwrap_or_else(|| Error::Unhealthy { cause: cause.to_owned() }),
        };
        for p in self.pending.drain(..) {
            match p.ack {
                Some(ack) => answer(ack, Err(refusal())),
                None => Counters::bump(&self.shared.counters.dropped),
            }
            let_go(p.event);
        }
        // Retries of an id in flight share its outcome.
        for (ack, ..) in self.duplicates.drain(..) {
            answer(ack, Err(refusal()));
        }
        self.written = 0;
        self.guard.batch_done();
        self.buf.clear();
    }
}

/// The same I/O failure of the journal, for another appender it concerns
/// (`None` for any other error).
fn copy_io_failure(err: &Error) -> Option<Error> {
    let Error::Journal(JournalError::Io { op, path, source }) = err else { return None };
    let source = source
        .raw_os_error()
        .map_or_else(|| std::io::Error::new(source.kind(), source.to_string()), std::io::Error::from_raw_os_error);
    Some(Error::Journal(JournalError::Io { op, path: path.clone(), source }))
}

/// The feed's failure after its writer thread panicked (the event type's
/// own code, a `Drop` say): the feed is closed, not one event refused.
pub(crate) fn writer_panicked(message: &str) -> String {
    format!("the writer thread panicked ({message}); the feed is closed")
}
