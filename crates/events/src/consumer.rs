//! [`Consumer`]: a durable named consumer of a feed. Its checkpoint lives in
//! the journal directory (`consumers/<name>`, two CRC-protected slots written
//! alternately by `events_journal::ConsumerFile`), so an indexer, a
//! projection or a webhook resumes "where it was" across restarts of its own
//! process, in the writer's process or any other. Neighbours: it streams
//! through its [`FeedReader`] (same guarantees, same reset policy), and the
//! writer's retention pass reads the checkpoints to keep the segments a
//! consumer still needs, up to a bound.
//!
//! Invariants: a persisted checkpoint only moves forward within an epoch,
//! but for one past the journal's end, which goes back (persisted at the
//! next commit or flush) to where the stream's `Reset { Ahead }` put it; a
//! torn checkpoint write falls back to the previous one, never to a later
//! seq; a commit past the journal's latest seq is refused; delivery is at
//! least once, and after a crash the events redelivered are exactly those
//! after the last persisted checkpoint (at most
//! [`ConsumerOptions::every`] events the application had committed, plus
//! those it had not yet committed).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use events_core::{Bincode, Codec, Event, Seq};
use events_journal::{CONSUMER_OPEN_WAIT, Checkpoint, ConsumerFile};

use crate::position::Cursor;
use crate::stream::{FeedStream, Published};
use crate::{Error, FeedReader, Result};

/// When a [`Consumer`]'s commits are written to disk: a commit is persisted
/// (written and fdatasync'ed) when it is at least `every` events past the
/// last persisted checkpoint, or when it comes at least `interval` after
/// the last persist; [`Consumer::flush`] persists at once. Default: every
/// 128 events or 1 s, so a crash redelivers at most 128 committed events,
/// and a consumer pays one fdatasync per 128 events at most. There is no
/// timer: the interval is looked at by the next commit, so a consumer that
/// goes idle (or is dropped) keeps its last commits in memory until its
/// next commit or `flush`; flush before dropping one to keep them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// Persist once the commit is this many seqs past the persisted checkpoint (at least 1).
    pub every: u64,
    /// Persist at the next commit once the last persist is this old.
    pub interval: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions { every: 128, interval: Duration::from_secs(1) }
    }
}

/// A durable named consumer: see [`FeedReader::consumer`].
///
/// # Example
///
/// ```
/// use events::{Event, Feed, FeedItem};
/// use futures::StreamExt;
/// # #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)] struct Job(u32);
/// # impl Event for Job {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
/// # let tmp = tempfile::tempdir().unwrap(); let dir = tmp.path();
/// let feed: Feed<Job> = Feed::builder(dir).open().await?;
/// for n in 1..=3 {
///     feed.append(None, Job(n)).await?;
/// }
/// let indexer = feed.consumer("indexer").await?;
/// let mut events = indexer.stream();
/// while let Some(FeedItem::Event(env)) = events.next().await.transpose()? {
///     // ... index env.event, then record the progress:
///     indexer.commit(env.seq).await?;
///     if env.event == Job(2) {
///         break;
///     }
/// }
/// indexer.flush().await?; // make the progress durable now
/// drop(indexer);
///
/// // Later (another run of the indexer): it resumes after seq 2.
/// let indexer = feed.consumer("indexer").await?;
/// let Some(Ok(FeedItem::Event(env))) = indexer.stream().next().await else { panic!() };
/// assert_eq!(env.event, Job(3));
/// # Ok(()) }
/// ```
pub struct Consumer<E, C: Codec = Bincode> {
    reader: FeedReader<E, C>,
    name: Arc<str>,
    options: ConsumerOptions,
    state: Arc<Mutex<State>>,
    /// The checkpoint file, held by a flush through its write and
    /// fdatasync (and, after a replaced directory, its reopen), on the
    /// blocking pool. The other calls never take it: they read
    /// [`State::durable`], so a flush never holds an async worker. An
    /// async lock: flushes that wait for the one under way wait on no
    /// thread, and one cancelled while it waits leaves nothing behind.
    file: Arc<tokio::sync::Mutex<ConsumerFile>>,
    path: std::path::PathBuf,
}

struct State {
    /// The checkpoint on disk, as the last flush left it.
    durable: Checkpointed,
    /// The newest progress given to `commit` (`>=` the persisted one).
    committed: Checkpointed,
    last_persist: Instant,
    /// What the latest [`Consumer::stream`] publishes: the epoch it reads
    /// (0 before its first item), which is the epoch of the seqs the
    /// application commits, and where its resets put its cursor.
    stream: Option<Arc<Published>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checkpointed {
    seq: u64,
    epoch: u64,
}

impl From<Checkpoint> for Checkpointed {
    fn from(c: Checkpoint) -> Self {
        Checkpointed { seq: c.seq, epoch: c.epoch }
    }
}

impl<E, C: Codec> std::fmt::Debug for Consumer<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("committed", &state.committed.seq)
            .field("persisted", &state.durable.seq)
            .finish_non_exhaustive()
    }
}

impl<E: Event, C: Codec> Consumer<E, C> {
    pub(crate) async fn open(reader: FeedReader<E, C>, name: &str, options: ConsumerOptions) -> Result<Self> {
        let dir = reader.dir().to_path_buf();
        let epoch = reader.epoch();
        let owned = name.to_owned();
        let checkpoints = reader.shared.checkpoints.clone();
        let probe = reader.clone();
        // Bounded: an abandoned open stuck on a disk that never answers
        // holds no later one for ever; past the wait, the file's own lock
        // decides (`ConsumerInUse` after its wait).
        let opening = tokio::time::timeout(CONSUMER_OPEN_WAIT, checkpoints.opening(name).lock_owned()).await.ok();
        let (file, checkpoint) = tokio::task::spawn_blocking(move || {
            let _opening = opening;
            let (mut file, mut checkpoint) = checkpoints.open(&dir, &owned, epoch)?;
            // New: made by this open (`file.created()`; looked at before
            // it, a file a delete unlinked meanwhile had made a new
            // consumer start with a reset), or by one of this journal that
            // never finished: the first open commits before it returns, so
            // generation 1 was never handed to anyone. Taken as existing,
            // one killed in between made the next start with a reset once
            // retention removed seq 1. (One of another journal still
            // starts with its epoch reset.)
            if checkpoint.generation == 1 && checkpoint.seq == 0 && checkpoint.epoch == epoch {
                // A new consumer starts with the earliest retained event:
                // it missed nothing, so it must not start with a reset.
                // Retention pins a checkpoint only once it is written and
                // may prune meanwhile: look again after each write. From
                // the files: a writer's feed publishes its earliest seq
                // after a batch's fdatasync, and the roll before it may
                // have removed segments already.
                loop {
                    let on_disk = probe.shared.reader.first_seq().map_err(Error::Journal)?;
                    let earliest = on_disk.max(probe.earliest_seq().get());
                    if earliest <= checkpoint.seq + 1 && checkpoint.generation > 1 {
                        break;
                    }
                    checkpoint = file.commit(earliest.saturating_sub(1), epoch)?;
                }
            }
            Ok::<_, Error>((file, checkpoint))
        })
        .await
        .map_err(Error::Task)??;
        let state = State {
            durable: checkpoint.into(),
            committed: checkpoint.into(),
            last_persist: Instant::now(),
            stream: None,
        };
        let options = ConsumerOptions { every: options.every.max(1), ..options };
        let path = file.path().to_path_buf();
        let (state, file) = (Arc::new(Mutex::new(state)), Arc::new(tokio::sync::Mutex::new(file)));
        Ok(Consumer { reader, name: name.into(), options, state, file, path })
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest progress given to [`commit`](Self::commit) (or loaded at
    /// open): where [`stream`](Self::stream) resumes.
    pub fn committed(&self) -> Seq {
        Seq::new(self.lock().committed.seq)
    }

    /// The checkpoint on disk: where a restarted consumer resumes.
    pub fn persisted(&self) -> Seq {
        Seq::new(self.lock().durable.seq)
    }

    /// Every durable event after the committed checkpoint, then live, with
    /// the guarantees and the reset policy of the consumer's reader
    /// ([`FeedReader::stream_from`]). The cursor carries the checkpoint's
    /// epoch, so a recreated journal is an explicit `EpochMismatch` reset.
    pub fn stream(&self) -> FeedStream<E> {
        let mut state = self.lock();
        let at = state.committed;
        let mut stream = self.reader.stream_from(Cursor::new(Seq::new(at.seq), at.epoch));
        state.stream = Some(stream.published());
        stream
    }

    /// Records that every event up to `seq` was processed, in the epoch of
    /// the journal the consumer's latest [`stream`](Self::stream) reads (the
    /// journal's current epoch before any stream yielded): so a directory
    /// recreated between an event and its commit never stamps an old seq
    /// with the new journal's epoch. That epoch moves when the stream yields
    /// its `Reset { EpochMismatch }`: commit the old journal's events before
    /// polling the stream past that reset, or name their epoch with
    /// [`commit_in`](Self::commit_in) (a consumer that buffers items, say
    /// with `ready_chunks`, and commits an event that came before a reset it
    /// has already taken from the stream would stamp the old seq with the
    /// new epoch). Persisted when [`ConsumerOptions`] says so (the write
    /// and its fdatasync run on tokio's blocking pool); otherwise kept in
    /// memory until a later commit or [`flush`](Self::flush). A `seq` at or
    /// below the committed one is ignored: progress never moves back, but
    /// for a reset of the stream that went back below it (`Reset { Ahead }`:
    /// the checkpoint was past the journal's end, a copy of the segments
    /// restored under it), which the next commit or flush takes and
    /// persists at once.
    ///
    /// # Errors
    ///
    /// [`Error::CommitAhead`] for a seq past the latest of the journal it
    /// is committed in (no such event was handed out), which changes
    /// nothing;
    /// [`Error::Journal`] with [`JournalError::CheckpointSeq`](events_journal::JournalError::CheckpointSeq)
    /// for a seq past any journal's (`Seq::MAX`, say), which changes nothing;
    /// [`Error::Journal`] if persisting fails (the checkpoint on disk is
    /// then the previous one, never a torn one). The progress stays
    /// committed in memory, and the next `commit` (of any seq, the same
    /// one included) or [`flush`](Self::flush) persists it again.
    pub async fn commit(&self, seq: Seq) -> Result<()> {
        self.commit_to(seq, None).await
    }

    /// [`commit`](Self::commit) in the journal of `epoch`, named by the
    /// caller: the [`FeedStream::epoch`] read when the event was taken. For
    /// a consumer that processes items after the stream has moved on (it
    /// buffers them, or hands them to other tasks), so that an event taken
    /// before an `EpochMismatch` reset is committed in its own journal's
    /// epoch even when the commit comes after the reset.
    ///
    /// A commit in another epoch than the current journal's never replaces
    /// progress already committed in the current one: a worker that
    /// finishes an event of the replaced journal late moves nothing back.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub async fn commit_in(&self, seq: Seq, epoch: u64) -> Result<()> {
        self.commit_to(seq, Some(epoch)).await
    }

    /// A commit in the epoch `named`, or (`None`) in the current journal's:
    /// the latest stream's once it yielded, else the journal's.
    async fn commit_to(&self, seq: Seq, named: Option<u64>) -> Result<()> {
        if seq.get() > events_journal::format::MAX_SEQ {
            // No journal hands it out and no checkpoint holds it: kept in
            // memory, it would also hold back every later commit.
            let path = self.path.clone();
            return Err(Error::Journal(events_journal::JournalError::CheckpointSeq { path, seq: seq.get() }));
        }
        if seq > self.reader.shared.latest() {
            self.refuse_ahead(seq, named)?;
        }
        // The journal's epoch is read outside the lock (a follower reads a
        // file): the guard goes at the end of its own statement.
        let streamed = streamed_epoch(&self.lock()).is_some();
        let journal = (!streamed).then(|| self.reader.epoch());
        let persist = {
            let mut state = self.lock();
            // Read under the same guard as the check: a stream moving past
            // its reset meanwhile cannot let a stale commit through.
            let current = streamed_epoch(&state).or(journal).unwrap_or_else(|| self.reader.epoch());
            let epoch = named.unwrap_or(current);
            let stale = state.committed.epoch == current && epoch != current;
            went_back(&mut state);
            if !stale && (state.committed.epoch != epoch || seq.get() > state.committed.seq) {
                state.committed = Checkpointed { seq: seq.get(), epoch };
            }
            // Decided on what is committed, not on this call's seq: a commit
            // retried after a failed persist persists what that one could not.
            // Progress that went back is persisted at once, as a new epoch is.
            let Checkpointed { seq, epoch } = state.committed;
            let durable = state.durable;
            (durable.seq, durable.epoch) != (seq, epoch)
                && (durable.epoch != epoch
                    || seq < durable.seq
                    || seq - durable.seq >= self.options.every
                    || state.last_persist.elapsed() >= self.options.interval)
        };
        if persist { self.flush().await } else { Ok(()) }
    }

    /// Refuses a commit of `seq` past the latest seq of the journal it is
    /// committed in (called for a `seq` past the latest this handle knows):
    /// it names no event handed out. Its events processed after a journal
    /// grew past it would have been ignored as "at or below" it, and a
    /// restart resumed after events never processed, with no reset.
    ///
    /// A writer's feed knows its latest seq: it is set before a batch is
    /// published, so no stream hands out a seq past it. A follower's is as
    /// fresh as its last look at the files: a seq its stream handed out is
    /// let through with no I/O, and another is refused only when the files
    /// say, now, that their journal is the commit's and ends before it,
    /// with no writer opening it (which may serve less than a dead
    /// writer's readers did) and the directory not being made again (an
    /// empty new journal reads as ending at 0).
    fn refuse_ahead(&self, seq: Seq, named: Option<u64>) -> Result<()> {
        let shared = &self.reader.shared;
        let refused = |latest: Seq| Err(Error::CommitAhead { consumer: self.name.to_string(), seq, latest });
        if !self.reader.follower() {
            let epoch = named.unwrap_or_else(|| shared.epoch());
            let latest = shared.latest();
            return if epoch == shared.epoch() && seq > latest { refused(latest) } else { Ok(()) };
        }
        let stream = self.lock().stream.clone();
        let streamed = stream.as_ref().map(|p| (p.epoch.load(Ordering::Acquire), p.position.load(Ordering::Acquire)));
        let epoch = match (named, streamed) {
            (Some(named), _) => named,
            (None, Some((epoch, _))) if epoch != 0 => epoch,
            (None, _) => self.reader.epoch(),
        };
        if streamed.is_some_and(|(streamed, position)| streamed == epoch && seq.get() <= position) {
            return Ok(());
        }
        let files = &shared.reader;
        let (Ok(files_epoch), Ok(false), Ok(latest)) = (files.epoch(), files.writer_opening(), files.last_seq()) else {
            return Ok(());
        };
        // Read again after the end: a directory made again meanwhile.
        if files_epoch != epoch || files.epoch().ok() != Some(epoch) {
            return Ok(());
        }
        if seq.get() > latest { refused(Seq::new(latest)) } else { Ok(()) }
    }

    /// Persists the committed progress now (nothing to do if it already is).
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub async fn flush(&self) -> Result<()> {
        // One flush writes at a time. The others wait here, on no thread
        // (they had each parked a thread of tokio's blocking pool on the
        // file while a slow disk held the first: commits cancelled by a
        // timeout, or many tasks committing, could fill the pool and stall
        // every other blocking job of the process). The guard goes to the
        // blocking pool with the write, and is let go when the write ends,
        // even if this call was cancelled meanwhile.
        let mut file = Arc::clone(&self.file).lock_owned().await;
        // The state's lock is taken only to read what to write and to
        // record what was written.
        let Checkpointed { seq, epoch } = {
            let mut state = self.lock();
            went_back(&mut state);
            state.committed
        };
        let durable = file.checkpoint();
        if (durable.seq, durable.epoch) == (seq, epoch) {
            // Written by the flush this one waited for: no thread needed.
            return Ok(());
        }
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let written = file.commit(seq, epoch).map(drop);
            // Also after a failure: a commit that reopened a replaced file
            // took on that file's checkpoint.
            let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
            state.durable = file.checkpoint().into();
            if written.is_ok() {
                state.last_persist = Instant::now();
            }
            Ok::<_, Error>(written?)
        })
        .await
        .map_err(Error::Task)?
    }
}

/// The epoch the latest stream reads, once it yielded something.
fn streamed_epoch(state: &State) -> Option<u64> {
    let streamed = state.stream.as_ref().map_or(0, |p| p.epoch.load(std::sync::atomic::Ordering::Acquire));
    (streamed != 0).then_some(streamed)
}

/// Takes a reset the latest stream made since the last look: one that took
/// its cursor below the committed progress in the same journal (the
/// checkpoint was past the journal's end, `Reset { Ahead }`: segments
/// restored from an older copy) moves the progress back there, since
/// nothing after it was processed. Kept, the commits of the events the
/// stream hands out from there were ignored as "at or below" it, and a
/// restart after the journal grew skipped them.
fn went_back(state: &mut State) {
    let reset = state.stream.as_ref().and_then(|p| p.take_reset());
    if let Some((to, epoch)) = reset
        && epoch == state.committed.epoch
        && to < state.committed.seq
    {
        state.committed.seq = to;
    }
}

impl<E, C: Codec> Consumer<E, C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a consumer's checkpoint file is opened: as it is, or (tests) with
/// its commits going through the feed's fault plan.
#[derive(Clone, Debug, Default)]
pub(crate) struct CheckpointIo {
    #[cfg(feature = "fault-injection")]
    plan: Option<events_journal::fault::FaultPlan>,
    /// The opens under way, by consumer name (see [`opening`](Self::opening)).
    opening: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
}

impl CheckpointIo {
    #[cfg(feature = "fault-injection")]
    pub(crate) fn with_plan(plan: events_journal::fault::FaultPlan) -> Self {
        CheckpointIo { plan: Some(plan), opening: Arc::default() }
    }

    /// The lock an open of consumer `name` holds through its blocking
    /// work: an open called while another one is under way (one whose
    /// caller was cancelled goes on, on the blocking pool) waits for it on
    /// no thread (up to [`CONSUMER_OPEN_WAIT`]), then finds the file free,
    /// instead of waiting only that long for the file's lock and being
    /// refused with `ConsumerInUse` while a slow disk held the first one.
    fn opening(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut opening = self.opening.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lock) = opening.get(name).and_then(Weak::upgrade) {
            return lock;
        }
        opening.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        opening.insert(name.to_owned(), Arc::downgrade(&lock));
        lock
    }

    fn open(&self, dir: &std::path::Path, name: &str, epoch: u64) -> Result<(ConsumerFile, Checkpoint)> {
        #[cfg(feature = "fault-injection")]
        if let Some(plan) = &self.plan {
            return Ok(ConsumerFile::open_with_faults(dir, name, epoch, plan.clone())?);
        }
        Ok(ConsumerFile::open(dir, name, epoch)?)
    }
}

/// One durable consumer as [`FeedReader::consumers`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerReport {
    /// The consumer's name.
    pub name: String,
    /// Its persisted checkpoint (`None` if the file cannot be read; see `problem`).
    pub checkpoint: Option<Seq>,
    /// Events after the checkpoint up to the latest acknowledged seq.
    pub lag: u64,
    /// The bytes of journal it still has to read: the segment files that
    /// hold events after its checkpoint (segment granularity, so an upper
    /// bound by at most one segment; 0 when `lag` is 0).
    pub lag_bytes: u64,
    /// `true` while its checkpoint is inside the retained range of this
    /// journal (same epoch, not expired): retention then keeps the segments
    /// it still needs, up to the writer's consumer limit, unless the writer
    /// was built with `pin_for_consumers(false)` (a setting of the writer's
    /// process, which the files do not record, so this report cannot tell;
    /// nothing is pinned then). `false` for a
    /// consumer that was cut loose, belongs to a recreated journal, or has
    /// an unreadable checkpoint: its next read resets.
    pub pinned: bool,
    /// Why the checkpoint could not be read, or `None`.
    pub problem: Option<String>,
}

impl ConsumerReport {
    #[cfg(all(test, feature = "metrics"))]
    pub(crate) fn for_test(name: &str, checkpoint: u64, lag: u64, pinned: bool) -> Self {
        ConsumerReport {
            name: name.to_owned(),
            checkpoint: Some(Seq::new(checkpoint)),
            lag,
            lag_bytes: lag * 100,
            pinned,
            problem: None,
        }
    }
}

/// The durable consumers of the journal in `dir`, as
/// [`FeedReader::consumers`](crate::FeedReader::consumers) reports them, for
/// tools that know neither the journal's event type nor its codec (listing
/// decodes no payload). Reads the files as a follower does: beside a live
/// writer, up to its watermark.
///
/// When the journal's position cannot be read (a damaged newest segment:
/// when an operator most needs to see what pins retention before a
/// salvage), every consumer is still listed, with its checkpoint as its
/// file holds it, its lag unknown (0, not pinned) and the reason in its
/// `problem`.
///
/// # Errors
///
/// [`Error::Journal`] if `dir` holds no journal, or its consumers cannot be
/// listed.
pub fn consumer_reports(dir: impl AsRef<std::path::Path>) -> Result<Vec<ConsumerReport>> {
    let reader = events_journal::Reader::open(dir.as_ref())?;
    match position(&reader) {
        Ok(at) => reports(dir.as_ref(), &reader, &at),
        Err(e) => {
            let why = format!("lag unknown: the journal's position cannot be read ({e})");
            let infos = events_journal::list_consumers(dir.as_ref())?;
            Ok(infos
                .into_iter()
                .map(|info| {
                    let (checkpoint, problem) = match info.checkpoint {
                        Ok(c) => (Some(Seq::new(c.seq)), why.clone()),
                        Err(unreadable) => (None, format!("{unreadable}; {why}")),
                    };
                    ConsumerReport {
                        name: info.name,
                        checkpoint,
                        lag: 0,
                        lag_bytes: 0,
                        pinned: false,
                        problem: Some(problem),
                    }
                })
                .collect())
        }
    }
}

/// Where the journal `reader` reads stands now.
fn position(reader: &events_journal::Reader) -> std::result::Result<Position, events_journal::JournalError> {
    Ok(Position {
        epoch: reader.epoch()?,
        earliest: Seq::new(reader.first_seq()?),
        latest: Seq::new(reader.last_seq()?),
    })
}

/// The report of every consumer in `dir`, the journal standing at `at`:
/// one listing of `reader`'s segments serves every consumer's byte lag.
pub(crate) fn reports(
    dir: &std::path::Path,
    reader: &events_journal::Reader,
    at: &Position,
) -> Result<Vec<ConsumerReport>> {
    let infos = events_journal::list_consumers(dir)?;
    let sizes = reader.segment_sizes().unwrap_or_default();
    Ok(infos.into_iter().map(|info| report(info, at, |seq| sizes.bytes_after(seq))).collect())
}

/// Where the journal stands, for [`report`].
pub(crate) struct Position {
    pub(crate) epoch: u64,
    pub(crate) earliest: Seq,
    pub(crate) latest: Seq,
}

/// A consumer's report; `bytes_after(seq)` is the journal's
/// `SegmentSizes::bytes_after` on one listing (a listing that failed counts
/// 0 bytes: a figure, not a verdict).
fn report(info: events_journal::ConsumerInfo, at: &Position, bytes_after: impl Fn(u64) -> u64) -> ConsumerReport {
    let (checkpoint, problem) = match info.checkpoint {
        Ok(c) if c.epoch == at.epoch => (Some(c.seq), None),
        Ok(c) => (None, Some(format!("checkpoint {} of another journal (epoch {})", c.seq, c.epoch))),
        Err(why) => (None, Some(why)),
    };
    // A consumer without a checkpoint in this journal has everything to read.
    let from = checkpoint.unwrap_or(0);
    let lag = at.latest.get().saturating_sub(from);
    ConsumerReport {
        name: info.name,
        checkpoint: checkpoint.map(Seq::new),
        lag,
        lag_bytes: if lag == 0 { 0 } else { bytes_after(from) },
        pinned: checkpoint.is_some_and(|c| c + 1 >= at.earliest.get()),
        problem,
    }
}
