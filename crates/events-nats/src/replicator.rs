//! [`Replicator`]: tails a local journal and publishes every record, in seq
//! order, to a JetStream stream, with many publishes in flight.
//!
//! This file holds the running handle, the state it shares with the task,
//! and the `Checkpointer` task that commits acknowledged progress; the builder and start are `builder.rs`, the task's read loop
//! `pump.rs`, building and sending messages `publish.rs`, the consumer
//! checkpoint that pins the journal's retention `checkpoint.rs`, the stats
//! snapshot `stats.rs`.
//!
//! Neighbours: [`crate::spec`] creates or validates the stream,
//! [`crate::headers`] names what each message carries, [`crate::sink`] wakes
//! the replicator from a feed's writer path, and [`crate::consumer`] reads
//! the result back. The journal is read through `events_journal::Reader`
//! (mmap, no lock), so the replicator can run beside the feed's writer, in
//! the same process or another one.
//!
//! The replicator reads the journal through one `events_journal::Follower`
//! (the journal-level follow helper `events tail` uses too; no read loop of
//! its own), so it ships only records the journal's writer acknowledged
//! (the durable watermark bounds every read), reads each frame once, and
//! meets every discontinuity as an explicit `Reset`:
//!
//! * `Gap` (a salvage recovery dropped records): one gap marker, then on.
//! * `Expired` (retention pruned records before they were replicated,
//!   which the replicator's consumer checkpoint, `checkpoint.rs`, prevents
//!   up to the journal's consumer limit):
//!   counted in [`ReplicationStats::skipped`], logged and recorded as an
//!   error ([`NatsError::Pruned`]), then on with the earliest retained
//!   record. No marker: a remote reader crossing the hole gets an
//!   `Expired` reset, which is what happened. (Pruned records the stream
//!   had acknowledged and then lost, met while they are sent again, are
//!   reported once as [`NatsError::LostByServer`] and not counted.)
//! * `Epoch` (the directory now holds another journal) and `Ahead` (the
//!   journal ends before seqs the stream holds: rolled back, or restored
//!   from an older copy): the replicator stops with
//!   [`NatsError::EpochMismatch`] or [`NatsError::JournalReset`] in
//!   `last_error` and [`ReplicationStats::stopped`] set. Going on under
//!   the new epoch is not safe: the stream's seqs would restart at 1 in
//!   the middle of the stream, which a restarted replicator refuses
//!   (`EpochMismatch`) and a [`RemoteFeed`](crate::RemoteFeed) cannot
//!   position in (it searches the stream by seq). The one exception is a
//!   replicator whose stream holds nothing yet and whose `start_after` is
//!   past the journal's end: it waits for the journal to get there. A
//!   rollback is seen only while the restored journal is still behind the
//!   stream: one that has already grown past it (same epoch, contiguous
//!   seqs) cannot be told from the original by any reader.
//!
//! A resync after a server failure drops the follower and makes a new one
//! at the stream's last replicated seq, checking that the directory still
//! holds the epoch being replicated. A stream deleted while the replicator
//! runs (or a server back without its store) is made again from the spec,
//! as a start makes it, and filled from `start_after`; one made again by
//! someone else must still fit the spec.
//!
//! # Shared streams: one publish in flight
//!
//! Into a shared stream ([`StreamSpec::shared`]) the replicator publishes
//! on its feed's subject and guards each message with
//! `Nats-Expected-Last-Subject-Sequence` = the stream sequence at which the
//! feed's previous message landed, so it keeps one publish in flight (the
//! builder's window is ignored). Nothing weaker keeps a feed contiguous on
//! a 2.9 server: after a reconnect the client sends the publishes it had
//! queued on the new connection while the ones written to the dead socket
//! are gone, so without a guard naming the exact predecessor, seq `n + 1`
//! can land with `n` missing; a stream-wide guard fails on every other
//! feed's message; a subject guard *predicted* from earlier acknowledgements
//! can name an older message of the same feed that landed late, and accept
//! `n + 1` after it. (Servers from 2.11 can guard a batch; 2.9 cannot.) The
//! cost is one round trip per event and feed; a feed that needs more gets
//! an exclusive stream, where publishes are pipelined.
//!
//! Invariant: the stream holds each journal seq at most once and in seq
//! order, and every seq up to the last one replicated is accounted for,
//! either by its record or by a gap marker (see [`crate::headers`]) where a
//! salvage recovery dropped records. Every publish carries a deterministic
//! `Nats-Msg-Id` (`<epoch>-<seq>`, or `<epoch>-gap-<first_missing>`;
//! JetStream drops a re-send within the duplicate window) and
//! `Nats-Expected-Last-Sequence` (the server refuses a message that would
//! land after a gap, for instance when the connection died with earlier
//! publishes unsent). On a server failure the replicator forgets its
//! in-flight window, asks the stream for its last message, and resumes
//! after it, so a crash or a server restart re-sends at most the
//! unacknowledged window. An error of the local journal that a retry cannot
//! fix (a corrupt frame, an unreadable segment) never causes a resync: the
//! replicator publishes what precedes it, then re-reads (the same follower,
//! which stays at its cursor) after a pause that doubles up to
//! `MAX_STALL_BACKOFF` (5 s), so it never spins.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use events::layers::journal::{ReadError, Reader};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::NatsError;
use crate::checkpoint::Registration;
use crate::sink::ReplicatorSink;
use crate::stats::ReplicationStats;

/// Replicates a journal directory into a JetStream stream until shut down
/// or dropped (dropping aborts the task at once, like a crash: the next
/// start resumes from the stream).
///
/// # Example
///
/// ```no_run
/// use events::{Event, Feed};
/// use events_nats::{Replicator, StreamSpec};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// struct Tick(u64);
/// impl Event for Tick {}
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await?);
/// let feed: Feed<Tick> = Feed::builder("./data/feed").open().await?;
/// let replicator = Replicator::builder(feed.dir(), js, StreamSpec::new("FEED", "feed.events")).start().await?;
/// let seq = feed.append(None, Tick(1)).await?;
/// replicator.wait_for(seq.get()).await?; // now in JetStream
/// println!("{:?}", replicator.stats());
/// replicator.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Replicator {
    pub(crate) shared: Arc<Shared>,
    pub(crate) task: Option<JoinHandle<()>>,
    /// Commits acknowledged progress to the checkpoint (`checkpoint.rs`);
    /// `None` without a registration.
    pub(crate) checkpointer: Option<JoinHandle<()>>,
}

impl Replicator {
    /// The current progress and lag.
    pub fn stats(&self) -> ReplicationStats {
        let s = &self.shared;
        // Read first: once the task has stopped, the figures read after
        // are its final ones. Read last, it could be true beside a
        // progress read before the task's last acknowledgements (the
        // journal reads below take a while), a snapshot of two moments.
        let stopped = s.stopped.load(Ordering::Acquire);
        let replicated = *s.progress.borrow();
        let journal_latest = s.reader.last_seq().unwrap_or(replicated);
        let lag_seqs = journal_latest.saturating_sub(replicated);
        let lag = if lag_seqs == 0 { Duration::ZERO } else { self.age_of(replicated) };
        let checkpoint = s.consumer.get().map(Registration::persisted);
        // Like a consumer's report: pinned while the checkpoint is inside
        // the retained range (the journal still holds the seq after it).
        // A journal that cannot be listed pins for nobody.
        let earliest = s.reader.first_seq().ok();
        let pinned = checkpoint.zip(earliest).is_some_and(|(c, earliest)| c.saturating_add(1) >= earliest);
        let waiting_for_start_after = s.waiting.load(Ordering::Acquire);
        let c = &s.counters;
        ReplicationStats {
            replicated,
            journal_latest,
            lag_seqs,
            lag,
            published: c.published.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            resyncs: c.resyncs.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            last_error: s.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            unacknowledged: s.unacknowledged.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            stopped,
            checkpoint,
            pinned,
            waiting_for_start_after,
        }
    }

    /// The age of the record after `seq` (a one-off look for the stats, not
    /// a read loop: replication reads through the task's follower). When the
    /// journal cannot serve that one (pruned, a gap, damage: replication is
    /// stuck or lost records), the first record it can serve after it, else
    /// its newest record: a lower bound of the lag, not 0 while records
    /// wait and the journal can serve one of them.
    fn age_of(&self, seq: u64) -> Duration {
        let reader = &self.shared.reader;
        let first_after = |cursor: u64| match reader.read_since(cursor) {
            Ok(mut records) => records.find_map(Result::ok).map(|r| r.ts()),
            Err(ReadError::Expired { earliest }) => {
                reader.read_since(earliest - 1).ok()?.find_map(Result::ok).map(|r| r.ts())
            }
            Err(_) => None,
        };
        let newest = || reader.last_seq().ok().and_then(|last| first_after(last.saturating_sub(1)));
        let ts = first_after(seq).or_else(newest);
        Duration::from_nanos(ts.map_or(0, |ts| now_nanos().saturating_sub(ts)))
    }

    /// A sink for a feed's builder ([`events::FeedBuilder::sink`]) that wakes
    /// the replicator after every journaled event, so events reach
    /// JetStream without waiting for the poll interval. It does not publish
    /// itself: the journal stays the one ordered source.
    pub fn sink(&self) -> ReplicatorSink {
        ReplicatorSink::new(Arc::clone(&self.shared.wake))
    }

    /// Waits until replication got past `seq`: JetStream acknowledged
    /// every record up to it that the journal still held when the
    /// replicator read it. Seqs it passed over return too: records
    /// retention removed before they were replicated (the replicator cut
    /// loose, or no consumer registered: counted in
    /// [`ReplicationStats::skipped`], named in `last_error`), and a salvage
    /// gap, replicated as a gap marker ([`ReplicationStats::gaps`]); and
    /// every seq up to the builder's `start_after`, at once. Check those
    /// counts where "in JetStream" must mean every record.
    ///
    /// # Errors
    ///
    /// If the replication task ended first (after a fatal error, see
    /// [`ReplicationStats::stopped`]), that error: as it is
    /// ([`NatsError::EpochMismatch`], [`NatsError::JournalReset`],
    /// [`NatsError::TooLarge`], [`NatsError::StreamMismatch`],
    /// [`NatsError::BadMessage`]; a [`NatsError::JetStream`] with the
    /// client's error as its text), or else as a [`NatsError::JetStream`]
    /// with `op = "replicating"` and its text (the journal's errors, a
    /// panic of the task).
    pub async fn wait_for(&self, seq: u64) -> Result<(), NatsError> {
        let mut rx = self.shared.progress.clone();
        match rx.wait_for(|acked| *acked >= seq).await {
            Ok(_) => Ok(()),
            Err(_) => Err(match self.shared.fatal.get() {
                Some(fatal) => fatal.copied().unwrap_or_else(|| NatsError::js("replicating", fatal.to_string())),
                None => NatsError::js("replicating", "replication task ended"),
            }),
        }
    }

    /// The subject this replicator publishes on (in a shared stream,
    /// `<prefix>.<feed id>`).
    pub fn subject(&self) -> &str {
        &self.shared.subject
    }

    /// The name of the durable consumer this replicator registered in the
    /// journal directory (see [`replicator_consumer_name`](crate::replicator_consumer_name)),
    /// or `None` when built with
    /// [`register_consumer(false)`](crate::ReplicatorBuilder::register_consumer).
    pub fn consumer_name(&self) -> Option<&str> {
        self.shared.consumer.get().map(Registration::name)
    }

    /// The epoch of the journal being replicated.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// Stops reading the journal, waits for the acknowledgements in flight
    /// (up to the ack timeout), ends the task, and returns the final stats:
    /// `replicated` is the last seq JetStream acknowledged, where the next
    /// start resumes. When some did not come in time (or were given up
    /// on before, and no resync read the stream since), the stats'
    /// `unacknowledged` says so: the server may still store those publishes,
    /// and the next start then resumes after the stream's last message,
    /// past `replicated` (nothing is sent twice). The consumer checkpoint is then committed at
    /// `replicated` (`checkpoint` in the stats) and kept: a restarted
    /// replicator goes on pinning from there. To decommission a replicator
    /// for good, delete its checkpoint after the shutdown
    /// (`events::layers::journal::delete_consumer(dir, name)` or
    /// [`FeedReader::delete_consumer`](events::FeedReader::delete_consumer)
    /// with [`consumer_name`](Self::consumer_name)), or it keeps
    /// holding segments back up to the feed's consumer limit.
    pub async fn shutdown(mut self) -> ReplicationStats {
        self.shared.stop_flag.store(true, Ordering::Release);
        self.shared.stop.notify_one();
        // Awaited in place: a shutdown cut short (a `timeout` around it)
        // drops `self` with the task still in it, and the drop aborts it.
        // Taken out first, it ran on unsupervised, holding the consumer.
        if let Some(task) = self.task.as_mut() {
            let ended = task.await;
            self.task = None;
            if let Err(e) = ended {
                tracing::error!(error = %e, "replication task panicked");
            }
        }
        // The checkpointer may be sleeping out its interval: stop it and
        // commit the final progress here instead of waiting.
        if let Some(checkpointer) = self.checkpointer.as_mut() {
            checkpointer.abort();
            let _ = checkpointer.await;
            self.checkpointer = None;
        }
        self.shared.flush_checkpoint().await;
        self.stats()
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        for task in [self.task.take(), self.checkpointer.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) wake: Arc<Notify>,
    pub(crate) stop: Notify,
    /// Set by `shutdown`; read between publishes, where `stop` is not awaited.
    pub(crate) stop_flag: AtomicBool,
    /// Set when the task ends after a fatal error.
    pub(crate) stopped: AtomicBool,
    /// The task waits for the journal to reach `start_after`
    /// ([`ReplicationStats::waiting_for_start_after`]).
    pub(crate) waiting: AtomicBool,
    /// The last acknowledged journal seq. The task owns the sender, so the
    /// channel closes (and `wait_for` fails) when the task ends.
    pub(crate) progress: watch::Receiver<u64>,
    pub(crate) reader: Reader,
    pub(crate) counters: Counters,
    pub(crate) last_error: Mutex<Option<String>>,
    /// The fatal error the task ended with, for [`Replicator::wait_for`]
    /// to return as it is (set once, as `stopped` is).
    pub(crate) fatal: OnceLock<NatsError>,
    /// Why the task ended with publishes given up on unacknowledged
    /// (`Task::abandoned`).
    pub(crate) unacknowledged: Mutex<Option<String>>,
    pub(crate) subject: String,
    pub(crate) epoch: u64,
    /// The replicator's consumer checkpoint (`checkpoint.rs`), set once by
    /// the start after the first resync; empty when registration is off.
    pub(crate) consumer: OnceLock<Registration>,
}

impl Shared {
    pub(crate) fn record_error(&self, error: &NatsError) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    pub(crate) fn record_stall(&self, error: &NatsError) {
        self.counters.stalls.fetch_add(1, Ordering::Relaxed);
        self.record_error(error);
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) resyncs: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) stalls: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) gaps: AtomicU64,
}

impl Shared {
    /// Commits the last acknowledged seq to the checkpoint, if the
    /// replicator registered one; a failure is logged and recorded (not
    /// fatal: replication does not depend on the checkpoint).
    pub(crate) async fn flush_checkpoint(&self) {
        let Some(registration) = self.consumer.get() else { return };
        if let Err(e) = registration.commit().await {
            let seq = *self.progress.borrow();
            tracing::warn!(error = %e, consumer = registration.name(), path = %registration.path().display(), seq, "cannot commit the replicator's checkpoint; retrying at the next acknowledgement");
            self.record_error(&e);
        }
    }
}

/// The task that commits acknowledged progress to the checkpoint: at most
/// once per `interval`, each time the newest seq JetStream acknowledged,
/// so a burst of acknowledgements costs one `fdatasync`.
pub(crate) struct Checkpointer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) progress: watch::Receiver<u64>,
    pub(crate) interval: Duration,
}

impl Checkpointer {
    /// Runs until the replication task ends (its progress sender drops),
    /// committing the last progress then; `shutdown` aborts it and flushes
    /// itself, so it does not wait for the current interval.
    pub(crate) async fn run(mut self) {
        loop {
            let open = self.progress.changed().await.is_ok();
            self.shared.flush_checkpoint().await;
            if !open {
                return;
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}
