//! [`FeedStream`]: `stream_from(cursor)`, the resumable feed a client reads,
//! and the one state machine behind every reader of the façade (`read.rs`: where
//! its next chunk comes from, and what each read leads to). Its phases
//! are explicit ([`Phase`]: start, replay, live, done) and so is where new
//! events come from once it has caught up ([`Tail`]): the envelopes the
//! writer keeps (`recent.rs`), taken when its bell rings (`bell.rs`), in the
//! writer's process, or polling the files for a follower of a journal
//! another process writes. It reads by seq only: it replays the journal
//! after the cursor through the mmap reader (or takes the kept envelopes
//! when they hold its next seq), and once caught up takes what the writer
//! kept after its cursor each time the bell rings, going back to the
//! journal when it fell behind what is kept (or retention removed its
//! next seq) or the journal's readers read further. The bell carries no
//! events, so nothing can be lost in it; what it must not lose is a ring:
//! every read notes the bell before it looks, and a stream waits only when
//! the bell has not rung since (`heard`).
//!
//! Between steps the state machine is parked in a box of its own; a step
//! that waits (a journal read on the blocking pool, a follower's sleep)
//! runs as a future that owns the box and hands it back. An idle stream
//! holds its handle, that box and a waker in the bell: no future.
//!
//! Invariant: the consumer sees every acknowledged durable event with
//! `seq > cursor` in order, with no gap and no duplicate, however slow it
//! is; when that is impossible (the cursor was pruned, is ahead of the
//! journal, or belongs to another epoch, including a directory recreated
//! under a follower) it sees one explicit [`FeedItem::Reset`] and goes on
//! where the reset says, never silently skipping or serving another
//! journal's records under the old cursor. A filtered stream
//! (`filter.rs`) wraps this one; for a stream-id filter the state machine
//! also jumps over sealed segments without the stream (`skip.rs`) and
//! checks an expired cursor against the pruned-segments summary
//! (`policy.rs`), both announced as checkpoints.

pub(crate) mod filter;
mod policy;
mod read;
mod skip;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use events_core::{Codec, Envelope, Event, Seq};
use events_journal::JournalError;
use futures::Stream;
use tokio::task::JoinHandle;

use self::read::Next;
use crate::bell::{NO_SLOT, STOPPED};
use crate::position::{Cursor, FeedItem, OnExpired, OnUndecodable, ResetReason};
use crate::recent::{Kept, Recent};
use crate::replay::Chunk;
use crate::shared::Shared;
use crate::stats::Counters;
use crate::{Error, Result};

/// The stream returned by [`Feed::stream_from`](crate::Feed::stream_from).
///
/// Yields `Ok(FeedItem::Event)` for each durable event after the cursor, in
/// seq order; `Ok(FeedItem::Reset)` once if the cursor cannot be served;
/// `Err` (then ends) if the journal is corrupt or a payload cannot be
/// decoded. It ends after the feed is closed and everything journaled was
/// delivered. When the writer fails (a journal I/O error, its directory
/// replaced), it ends once it delivered every event the writer
/// acknowledged, whether or not the feed is closed yet, with
/// [`Error::Unhealthy`](crate::Error::Unhealthy) naming the failure as its
/// last item, so a consumer can tell that end from a clean close. Dropping it frees
/// everything it holds (a journal read ahead that is in flight finishes its
/// one chunk on its blocking thread, then frees it).
pub struct FeedStream<E> {
    /// Envelopes handed over by the state machine in one batch (a journal
    /// chunk or the writer's kept envelopes), delivered one by one without
    /// running it: the next one last.
    ready: Vec<Arc<Envelope<E>>>,
    run: Run<E>,
    /// The state machine's cursor after its last step: the last seq of the
    /// last batch it handed over, or where it goes on after a reset.
    position: u64,
    /// The epoch of the journal it reads (0 before its first step).
    epoch: u64,
    /// The same, shared with a [`Consumer`](crate::Consumer) that commits
    /// what this stream yields (`None` for any other stream).
    published: Option<Arc<Published>>,
    shared: Arc<Shared>,
    /// Its slot among the waiters of the writer's bell (`bell.rs`), taken
    /// at its first wait.
    slot: u32,
    follower: bool,
}

/// Where the state machine is. Between steps it is parked: caught up with
/// the writer, it takes the envelopes the writer keeps as the bell rings,
/// without a step; a step (a journal read, a follower's wait) runs as a
/// future that owns it and hands it back. An idle stream holds no future.
enum Run<E> {
    Parked(Box<dyn Machine<E>>),
    Stepping(Step<E>),
    Done,
}

/// One step of the state machine: the machine back, and what it produced.
type Step<E> = Pin<Box<dyn Future<Output = (Box<dyn Machine<E>>, Option<Result<Out<E>>>)> + Send>>;

/// The state machine, whatever its codec.
trait Machine<E>: Send {
    /// Whether it is caught up with the writer, waiting on its bell.
    fn caught_up(&self) -> bool;
    /// Caught up: see [`State::poll_live`].
    fn poll_live(&mut self, cx: &mut Context<'_>, slot: &mut u32) -> Poll<Option<Out<E>>>;
    /// Takes the next step.
    fn step(self: Box<Self>) -> Step<E>;
    /// Its cursor and the epoch it reads (0 before its first step).
    fn position(&self) -> (u64, u64);
}

impl<E: Event, C: Codec> Machine<E> for State<E, C> {
    fn caught_up(&self) -> bool {
        self.phase == Phase::Live
    }

    fn poll_live(&mut self, cx: &mut Context<'_>, slot: &mut u32) -> Poll<Option<Out<E>>> {
        State::poll_live(self, cx, slot)
    }

    fn step(mut self: Box<Self>) -> Step<E> {
        Box::pin(async move {
            let out = self.next().await;
            (self as Box<dyn Machine<E>>, out)
        })
    }

    fn position(&self) -> (u64, u64) {
        (self.cursor, self.cursor_epoch.unwrap_or(0))
    }
}

/// What the state machine publishes after each step, for a
/// [`Consumer`](crate::Consumer) committing what its stream yields.
#[derive(Debug)]
pub(crate) struct Published {
    /// The epoch of the journal it reads (0 before its first step).
    pub(crate) epoch: AtomicU64,
    /// Where its latest reset put the cursor, until a consumer takes it
    /// (`u64::MAX`: none).
    pub(crate) reset_to: AtomicU64,
    /// Its cursor after its latest step: past every seq it handed out.
    pub(crate) position: AtomicU64,
}

impl Published {
    /// Where the latest reset not taken yet put the cursor, and the epoch
    /// it reads since.
    pub(crate) fn take_reset(&self) -> Option<(u64, u64)> {
        let to = self.reset_to.swap(u64::MAX, Ordering::AcqRel);
        (to != u64::MAX).then(|| (to, self.epoch.load(Ordering::Acquire)))
    }
}

/// What one step of the state machine produces.
enum Out<E> {
    /// Consecutive events, at least one; the state's cursor is already past them.
    Batch(Vec<Arc<Envelope<E>>>),
    /// A reset.
    Item(FeedItem<E>),
    /// Caught up with the writer: the machine parks, waiting on its bell.
    CaughtUp,
}

impl<E> std::fmt::Debug for FeedStream<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedStream").finish_non_exhaustive()
    }
}

impl<E: Event> FeedStream<E> {
    pub(crate) fn new<C: Codec>(
        cursor: Cursor,
        tail: Tail<E>,
        shared: Arc<Shared>,
        codec: C,
        on_expired: OnExpired,
        on_undecodable: OnUndecodable,
        stream_key: Option<Vec<u8>>,
    ) -> Self {
        let follower = matches!(tail, Tail::Poll(_));
        let state = State {
            scope: stream_key.map(|key| Box::new(Scope { key, checked_until: 0 })),
            cursor: cursor.seq.get(),
            cursor_epoch: cursor.epoch,
            everything: cursor.seq == Seq::ZERO && cursor.epoch.is_none(),
            earliest_before: None,
            vanished_since: None,
            on_expired,
            on_undecodable,
            pending: None,
            phase: Phase::Start,
            tail,
            shared: Arc::clone(&shared),
            codec,
            prefetch: None,
            heard: 0,
        };
        FeedStream {
            ready: Vec::new(),
            run: Run::Parked(Box::new(state)),
            position: cursor.seq.get(),
            epoch: 0,
            published: None,
            shared,
            slot: NO_SLOT,
            follower,
        }
    }

    /// The epoch of the journal the last yielded item came from (`None`
    /// before the first item): what a cursor built from that item's seq
    /// must name. It changes only with an `EpochMismatch` reset.
    pub fn epoch(&self) -> Option<u64> {
        Some(self.epoch).filter(|&e| e != 0)
    }

    /// What the state machine publishes from here on, for a
    /// [`Consumer`](crate::Consumer) that commits the seqs this stream
    /// yields.
    pub(crate) fn published(&mut self) -> Arc<Published> {
        let (epoch, position) = (self.epoch, self.position);
        Arc::clone(self.published.get_or_insert_with(|| {
            Arc::new(Published {
                epoch: AtomicU64::new(epoch),
                reset_to: AtomicU64::new(u64::MAX),
                position: AtomicU64::new(position),
            })
        }))
    }

    /// The cursor after the last item yielded: the last event's seq, or
    /// where the stream goes on after a reset.
    pub(crate) fn handed_out(&self) -> u64 {
        self.position.saturating_sub(self.ready.len() as u64)
    }

    /// How many acknowledged events this stream has not yielded yet: the
    /// latest acknowledged seq minus the last seq it yielded (or its cursor,
    /// before the first); a consumer that falls behind sees it grow. On a
    /// feed's own stream it reads two atomics: cheap enough to call per
    /// event. A follower's reads the writer's watermark file for it (and
    /// lists the directory when the lock file says no writer): call it per
    /// batch or on a timer, not per event.
    pub fn lag(&self) -> u64 {
        if self.follower {
            self.shared.refresh_latest_from_reader();
        }
        self.shared.latest().get().saturating_sub(self.handed_out())
    }
}

impl<E> FeedStream<E> {
    /// Takes where the machine is after it produced `out`, and publishes it.
    fn note(&mut self, machine: &dyn Machine<E>, out: Option<&Result<Out<E>>>) {
        (self.position, self.epoch) = machine.position();
        if let Some(published) = &self.published {
            published.epoch.store(self.epoch, Ordering::Release);
            published.position.store(self.position, Ordering::Release);
            if let Some(Ok(Out::Item(FeedItem::Reset { .. }))) = out {
                published.reset_to.store(self.position, Ordering::Release);
            }
        }
    }

    /// The next envelope of the batch being handed out; the batch's buffer
    /// is let go with its last one, so an idle stream holds none.
    fn next_ready(&mut self) -> Option<Arc<Envelope<E>>> {
        let env = self.ready.pop();
        if self.ready.is_empty() && self.ready.capacity() > 0 {
            self.ready = Vec::new();
        }
        env
    }

    /// Starts the parked machine's next step.
    fn start_step(&mut self) {
        if let Run::Parked(machine) = std::mem::replace(&mut self.run, Run::Done) {
            self.run = Run::Stepping(machine.step());
        }
    }
}

impl<E> Drop for FeedStream<E> {
    /// Releases the stream's bell slot, and lets go of the events decoded
    /// and not handed out one by one, each `Drop` under a catch: dropped
    /// with the vector, one that panicked had come out of the caller's
    /// drop (a response's, with its client gone), and a second one then
    /// aborted the process.
    fn drop(&mut self) {
        self.shared.bell.release(self.slot);
        crate::error::let_go_each(std::mem::take(&mut self.ready));
    }
}

impl<E> Stream for FeedStream<E> {
    type Item = Result<FeedItem<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(env) = this.next_ready() {
            return Poll::Ready(Some(Ok(FeedItem::Event(env))));
        }
        loop {
            let out = match &mut this.run {
                Run::Done => return Poll::Ready(None),
                Run::Stepping(step) => {
                    let (machine, out) = std::task::ready!(step.as_mut().poll(cx));
                    this.note(&*machine, out.as_ref());
                    // The stream ended: the machine goes, with what it holds.
                    this.run = if out.is_some() { Run::Parked(machine) } else { Run::Done };
                    out
                }
                Run::Parked(machine) if machine.caught_up() => {
                    match machine.poll_live(cx, &mut this.slot) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(None) => {
                            this.start_step();
                            continue;
                        }
                        Poll::Ready(Some(out)) => {
                            // A batch of kept envelopes: the cursor moved past it.
                            (this.position, this.epoch) = machine.position();
                            Some(Ok(out))
                        }
                    }
                }
                Run::Parked(_) => {
                    this.start_step();
                    continue;
                }
            };
            match out {
                Some(Ok(Out::CaughtUp)) => {}
                Some(Ok(Out::Batch(mut batch))) => {
                    batch.reverse();
                    this.ready = batch;
                    if let Some(env) = this.next_ready() {
                        return Poll::Ready(Some(Ok(FeedItem::Event(env))));
                    }
                }
                Some(Ok(Out::Item(item))) => return Poll::Ready(Some(Ok(item))),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(None),
            }
        }
    }
}

/// Where new events come from once the stream has caught up with the journal.
pub(crate) enum Tail<E> {
    /// In the writer's process: the newest envelopes it published, taken
    /// when its bell (in `Shared`) rings.
    Live(Arc<Recent<E>>),
    /// Another process writes (or none does): look at the files this often.
    Poll(Duration),
}

/// The stream id of a stream filtered by it.
struct Scope {
    /// The stream id's bytes: an expired cursor is served without a reset
    /// when the pruned records held none of it (`policy.rs`).
    key: Vec<u8>,
    /// No look at the sidecars (`skip.rs`) before the cursor reaches this seq.
    checked_until: u64,
}

/// What a read found after the records it returned.
enum Pending {
    /// A record that did not decode: reported as the policy says.
    Undecodable { seq: u64, version: u32, error: events_core::CodecError },
    /// A salvage gap: a reset, then the stream goes on after it.
    Gap { expected: u64, found: u64 },
    /// A journal failure (damage in a sealed segment, an I/O error): the
    /// stream ends with it.
    Failed(JournalError),
}

/// A replay chunk read ahead.
struct Prefetch<E> {
    /// It starts after this seq.
    after: u64,
    /// The writer's bell when the first read of its iterator started (see
    /// `State::heard`): it reads no further than the journal held then.
    heard: u32,
    read: JoinHandle<Result<read::Read<E>>>,
}

/// What the state machine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing read yet: the cursor's epoch is checked first.
    Start,
    /// Reading the journal after the cursor.
    Replay,
    /// Caught up with the writer, taking its kept envelopes as its bell
    /// rings (only with [`Tail::Live`]).
    Live,
    /// Ended: the writer stopped and everything was delivered, or an error.
    Done,
}

/// How long a follower's reads may find a file of the journal they read
/// gone before that is their error: long enough for a directory's removal
/// and its journal made again ([`State::between_journals`]), as long as
/// `events tail --follow` waits for the same.
const VANISHED_WAIT: Duration = Duration::from_secs(2);

struct State<E, C> {
    /// For a stream filtered by stream id: its key, and how far its
    /// sidecars were looked at (boxed: every idle stream carries the field).
    scope: Option<Box<Scope>>,
    /// The last seq delivered.
    cursor: u64,
    cursor_epoch: Option<u64>,
    /// Asked for "everything retained" (a bare `Seq::ZERO`): never expired,
    /// until the stream first catches up (`read.rs`).
    everything: bool,
    /// For a bare `Seq::ZERO` at 0: the earliest retained seq as it was
    /// before the read under way ([`caught_up_at_zero`](Self::caught_up_at_zero)).
    earliest_before: Option<u64>,
    /// For a follower: since when its reads have found a file of the
    /// journal it reads gone ([`between_journals`](Self::between_journals)).
    vanished_since: Option<tokio::time::Instant>,
    on_expired: OnExpired,
    on_undecodable: OnUndecodable,
    /// What the last read found after its records, reported once they are
    /// delivered (boxed: every idle stream carries the field).
    pending: Option<Box<Pending>>,
    phase: Phase,
    tail: Tail<E>,
    shared: Arc<Shared>,
    codec: C,
    /// The next replay chunk, read and decoded on a blocking thread while the
    /// consumer takes the current one. It owns the journal iterator, so a
    /// long catch-up reads each frame once.
    prefetch: Option<Box<Prefetch<E>>>,
    /// With [`Tail::Live`]: the writer's bell as the last look at what it
    /// published found it (a read of the journal or of its kept
    /// envelopes): a look that finds nothing new waits for the bell to
    /// move past it. [`STOPPED`] in it: the writer had stopped, so that
    /// look saw everything it journaled.
    heard: u32,
}

impl<E: Event, C: Codec> State<E, C> {
    async fn next(&mut self) -> Option<Result<Out<E>>> {
        loop {
            match self.phase {
                Phase::Done => return None,
                Phase::Start => {
                    self.phase = Phase::Replay;
                    let journal_epoch = self.current_epoch();
                    match self.cursor_epoch {
                        Some(cursor_epoch) if cursor_epoch != journal_epoch => {
                            let reason = ResetReason::EpochMismatch { cursor_epoch, journal_epoch };
                            return Some(Ok(Out::Item(self.reset(reason))));
                        }
                        // From here on the cursor belongs to this journal.
                        _ => self.cursor_epoch = Some(journal_epoch),
                    }
                }
                Phase::Live | Phase::Replay => {}
            }
            match self.pending.take().map(|pending| *pending) {
                Some(Pending::Undecodable { seq, version, error }) => {
                    return Some(self.undecodable(seq, version, error));
                }
                Some(Pending::Gap { expected, found }) => {
                    let first_missing = Seq::new(expected);
                    let last_missing = Seq::new(found - 1);
                    let item = self.reset(ResetReason::Gap { first_missing, last_missing });
                    return Some(Ok(Out::Item(item)));
                }
                Some(Pending::Failed(error)) => {
                    self.phase = Phase::Done;
                    return Some(Err(Error::Journal(error)));
                }
                None => {}
            }
            if self.phase == Phase::Live {
                return Some(Ok(Out::CaughtUp));
            }
            if let Some(seq) = self.skip_other_streams().await {
                return Some(Ok(Out::Item(FeedItem::Checkpoint { seq: Seq::new(seq) })));
            }
            let read = self.read_chunk().await;
            // Decided without an await, so that nothing of the read is held
            // while the stream waits; the timer (112 bytes) is boxed, as only
            // a follower waits on it: an idle stream's state stays small.
            match self.after_read(read) {
                Next::Yield(out) => return out,
                Next::Wait(interval) => Box::pin(tokio::time::sleep(interval)).await,
                Next::Again => {}
            }
        }
    }

    /// Caught up with the writer: the next envelopes it kept after the
    /// cursor (`Ready(Some)`); `Ready(None)` when the stream must take a
    /// step instead (it fell behind what is kept, the journal's readers
    /// read further, or the writer stopped: the journal has the rest);
    /// `Pending` until the bell rings.
    fn poll_live(&mut self, cx: &mut Context<'_>, slot: &mut u32) -> Poll<Option<Out<E>>> {
        // As tokio's own channels do: a consumer that always finds a batch
        // still yields to its worker's other tasks once its budget is spent.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        loop {
            let heard = self.shared.bell.state();
            if heard & STOPPED != 0 {
                // Whatever the writer published last is read, then the end.
                self.phase = Phase::Replay;
                return Poll::Ready(None);
            }
            if self.cursor < self.shared.latest().get() {
                match self.kept_after(self.cursor) {
                    Kept::Envelopes(envelopes) => {
                        self.heard = heard;
                        coop.made_progress();
                        return Poll::Ready(Some(self.batch(envelopes)));
                    }
                    // The bell rang since the last look: the journal has
                    // what the writer no longer keeps, or its readers read
                    // further. Or retention removed the next event, which
                    // no ring brings back (its timer does not ring): the
                    // journal says so. (Otherwise, with no ring since, a
                    // look that found nothing more waits for one: a next
                    // event the kept envelopes let go with no ring since is
                    // one the journal's readers cannot read yet, behind a
                    // watermark whose write failed, and its rewrite rings.)
                    kept if heard != self.heard || self.cursor.saturating_add(1) < self.shared.earliest().get() => {
                        if matches!(kept, Kept::Gone) {
                            tracing::debug!(
                                cursor = self.cursor,
                                "stream fell behind the kept envelopes; replaying the journal"
                            );
                            Counters::bump(&self.shared.counters.lagged_fallbacks);
                        }
                        self.phase = Phase::Replay;
                        return Poll::Ready(None);
                    }
                    Kept::Gone | Kept::NotYet => {}
                }
            }
            if self.shared.bell.wait(slot, cx.waker(), heard) {
                return Poll::Pending;
            }
        }
    }

    /// The journal's epoch as this stream knows it; a follower looks at the
    /// files again.
    fn current_epoch(&self) -> u64 {
        if matches!(self.tail, Tail::Poll(_)) {
            self.shared.epoch_on_disk();
        }
        self.shared.epoch()
    }

    /// For a follower whose read failed, found nothing where its cursor
    /// was, or hit an error: the poll interval if the directory holds no
    /// journal right now (deleted, or recreated without a segment yet), which
    /// is a moment to wait through, not a reset or an error. So is a read
    /// that found the directory itself missing, or a file of a journal the
    /// directory no longer holds (another epoch there now): it may have
    /// been recreated since, segments and all, by the time it is looked at
    /// here, and the next read finds the new journal (an epoch reset). So
    /// is a file of the same journal gone, for up to [`VANISHED_WAIT`]: the
    /// directory being removed, its other files next (`events demo` wipes
    /// its previous run so), which a reader in the middle of it had
    /// reported as an error (a server's client an `error` frame and a
    /// 30 s wait; `events tail --follow`, which follows the journal's
    /// files itself, already waited). Past that wait, a segment the watermark names gone from
    /// the same journal, say, is the read's error as before.
    fn between_journals(&mut self, read: &Result<Chunk<E>>) -> Option<Duration> {
        let Tail::Poll(interval) = self.tail else { return None };
        let vanished_since = self.vanished_since.take();
        if let Err(Error::Journal(JournalError::Io { source, path, .. })) = read
            && source.kind() == std::io::ErrorKind::NotFound
        {
            let cursor_epoch = self.cursor_epoch.unwrap_or_else(|| self.shared.epoch());
            if *path == self.shared.dir || self.shared.reader.epoch().is_ok_and(|now| now != cursor_epoch) {
                return Some(interval);
            }
            let since = vanished_since.unwrap_or_else(tokio::time::Instant::now);
            if since.elapsed() < VANISHED_WAIT {
                self.vanished_since = Some(since);
                return Some(interval);
            }
        }
        if !matches!(read, Err(_) | Ok(Chunk::Ahead | Chunk::Expired(_))) {
            return None;
        }
        let missing =
            !self.shared.dir.is_dir() || matches!(self.shared.reader.epoch(), Err(JournalError::NoSegments { .. }));
        missing.then_some(interval)
    }

    /// For a follower whose cursor belongs to the journal it started on:
    /// the epoch reset if the directory now holds another journal. `look`:
    /// read the files for it now; else the epoch the read that just came
    /// back empty looked at, on the blocking pool (`spawn_read`), so an
    /// idle follower's stream does no file I/O on the async workers.
    fn epoch_changed(&mut self, look: bool) -> Option<FeedItem<E>> {
        if !matches!(self.tail, Tail::Poll(_)) {
            return None;
        }
        let cursor_epoch = self.cursor_epoch.unwrap_or_else(|| self.shared.epoch());
        let journal_epoch = if look { self.shared.epoch_on_disk()? } else { self.shared.epoch() };
        (journal_epoch != cursor_epoch).then(|| self.reset(ResetReason::EpochMismatch { cursor_epoch, journal_epoch }))
    }

    /// A stream from a bare `Seq::ZERO` that read nothing: "everything
    /// retained" ends, so what is appended next is what it needs (pruned
    /// before it read it, a reset says so). At 0, it becomes the position
    /// before the earliest event as it was before that read
    /// (`earliest_before`; for a follower, with every segment listed: an
    /// empty read while a writer opens skips the newest, and taken as the
    /// position 0 the stream had reported records pruned before it began).
    /// Left as it is when that is not known (the listing failed: the next
    /// empty read lists again). Past 0 the stream already holds a
    /// position: it stays (moved to an earliest looked at after the read,
    /// it had passed over events appended and pruned meanwhile).
    fn caught_up_at_zero(&mut self) {
        if !self.everything {
            return;
        }
        if self.cursor != 0 {
            self.everything = false;
            return;
        }
        let Some(earliest) = self.earliest_before.take() else { return };
        self.everything = false;
        self.cursor = earliest.saturating_sub(1);
    }

    /// Hands a non-empty run of consecutive events to the consumer at once;
    /// the cursor moves past them.
    fn batch(&mut self, events: Vec<Arc<Envelope<E>>>) -> Out<E> {
        if let Some(last) = events.last() {
            self.cursor = last.seq.get();
        }
        Out::Batch(events)
    }

    /// Builds a reset and moves the cursor where the stream goes on: right
    /// after the gap for [`ResetReason::Gap`]; before the earliest retained
    /// event for every other reason, so the consumer loses only what is
    /// really gone and rebuilds its view from what follows. An epoch reset
    /// moves the cursor into the journal it names; every other reset is of
    /// the journal the cursor reads, and keeps its epoch: another handle
    /// of a follower may have adopted a recreated journal's meanwhile, and
    /// the next read must find that out (an epoch reset), not read the new
    /// journal from the old one's seq.
    fn reset(&mut self, reason: ResetReason) -> FeedItem<E> {
        if matches!(self.tail, Tail::Poll(_)) {
            self.shared.refresh_from_reader();
        }
        let latest = self.shared.latest();
        let earliest = self.shared.earliest();
        Counters::bump(&self.shared.counters.resets);
        tracing::info!(?reason, cursor = self.cursor, earliest = earliest.get(), latest = latest.get(), "stream reset");
        self.cursor = match reason {
            ResetReason::Gap { last_missing, .. } => last_missing.get(),
            _ => earliest.get().saturating_sub(1),
        };
        self.cursor_epoch = match reason {
            ResetReason::EpochMismatch { journal_epoch, .. } => Some(journal_epoch),
            _ => self.cursor_epoch.or_else(|| Some(self.shared.epoch())),
        };
        // A position in the journal from here on, not "everything": what
        // retention removes after it is reported like any cursor's.
        self.everything = false;
        self.phase = Phase::Replay;
        FeedItem::Reset { reason, earliest, latest }
    }
}
