//! [`FeedBuilder`]: every option of a feed with its documented default, and
//! `open`: recovering the journal directory (waiting for a closing writer of
//! this process), spawning the writer thread, the sink task and the
//! retention timer, and handing out the first [`Feed`] handle.
//!
//! Invariant: `open` either returns a feed whose writer holds the directory
//! lock, or an error with nothing left running; options that could make a
//! journaled event unreadable are refused here, before anything is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use events_core::{Bincode, Codec, Envelope, Event};
use events_fanout::Overflow;
use events_journal::{
    Journal, JournalError, JournalOptions, Reader, RecoveryMode, RecoveryReport, Retention, SyncPolicy,
};
use tokio::sync::mpsc;

use crate::append::Dedupe;
use crate::consumer::CheckpointIo;
use crate::feed::Feed;
use crate::inbox::Inbox;
use crate::live::{LiveOutput, Ring};
use crate::reader::FeedReader;
use crate::recent::Recent;
use crate::session::SessionRegistry;
use crate::shared::Shared;
use crate::sinks::{Attached, SinkQueue, SinkSet};
use crate::writer::{Cmd, Writer};
use crate::writers;
use crate::{Error, EventSink, OnExpired, OnUndecodable, Result};

/// The largest `live_capacity`, `inbox_capacity`, `session_capacity` and
/// `sink_queue` a feed takes (2^24; [`FeedBuilder::open`] refuses more with
/// [`Error::Config`]): each session's ring is allocated when the
/// session starts (8 bytes a slot: 128 MiB a
/// session at the limit), and tokio's channels panic past their own limit.
pub const MAX_CAPACITY: usize = 1 << 24;

/// The shortest [`FeedBuilder::retention_check`] a feed takes (1 ms;
/// [`FeedBuilder::open`] refuses less with [`Error::Config`]).
pub const MIN_RETENTION_CHECK: Duration = Duration::from_millis(1);

/// Configures and opens a [`Feed`]. Created by [`Feed::builder`].
///
/// Every option has a default; the ones that matter for durability
/// ([`sync`](Self::sync)) and disk use ([`retention`](Self::retention)) say
/// so explicitly.
pub struct FeedBuilder<E: Event, C: Codec = Bincode> {
    dir: PathBuf,
    journal: JournalOptions,
    sync_policy: SyncPolicy,
    max_record_bytes: u32,
    dedupe: Dedupe,
    live_output: Option<LiveOutput>,
    inbox_capacity: usize,
    live_capacity: usize,
    sink_queue: usize,
    sink_timeout: Option<Duration>,
    sink_close_wait: Duration,
    retention_check: Duration,
    session_capacity: usize,
    session_overflow: Overflow,
    sinks: Vec<Attached<E>>,
    on_expired: OnExpired,
    on_undecodable: OnUndecodable,
    checkpoints: CheckpointIo,
    codec: C,
}

impl<E: Event, C: Codec> std::fmt::Debug for FeedBuilder<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedBuilder")
            .field("dir", &self.dir)
            .field("journal", &self.journal)
            .field("inbox_capacity", &self.inbox_capacity)
            .field("live_capacity", &self.live_capacity)
            .field("sinks", &self.sinks.len())
            .field("codec", &C::NAME)
            .finish()
    }
}

impl<E: Event> Feed<E, Bincode> {
    /// Starts configuring a feed stored in `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> FeedBuilder<E, Bincode> {
        FeedBuilder::new(dir.as_ref().to_path_buf())
    }
}

impl<E: Event> FeedBuilder<E, Bincode> {
    fn new(dir: PathBuf) -> Self {
        FeedBuilder {
            dir,
            journal: JournalOptions::new(),
            sync_policy: SyncPolicy::Always,
            max_record_bytes: 16 << 20,
            dedupe: Dedupe::default(),
            live_output: None,
            inbox_capacity: 1024,
            live_capacity: 4096,
            sink_queue: 1024,
            sink_timeout: None,
            sink_close_wait: crate::feed::SINK_CLOSE_WAIT,
            retention_check: Duration::from_secs(1),
            session_capacity: 256,
            session_overflow: Overflow::Wait,
            sinks: Vec::new(),
            on_expired: OnExpired::Earliest,
            on_undecodable: OnUndecodable::Fail,
            checkpoints: CheckpointIo::default(),
            codec: Bincode,
        }
    }
}

impl<E: Event, C: Codec> FeedBuilder<E, C> {
    /// The size at which the journal starts a new segment. Default: 8 MiB.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.journal = self.journal.segment_bytes(bytes);
        self
    }

    /// Which old segments are deleted: at open, after every roll, and every
    /// [`retention_check`](Self::retention_check) while the feed is open (so
    /// `Retention::age` fires on an idle feed too). A failed removal is
    /// logged, counted in [`FeedStats::prune_errors`](crate::FeedStats::prune_errors) and retried; it never
    /// fails an append. Default: `Retention::segments(64)`.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.journal = self.journal.retention(retention);
        self
    }

    /// How far behind a durable consumer ([`Feed::consumer`]) may fall
    /// before retention stops waiting for it: while the segments from its
    /// checkpoint on fit in `limit`, retention keeps them (the disk grows by
    /// at most that much); past it, the consumer is cut loose with a
    /// `warn!`, and its next read is a `Reset { Expired }` (or what its
    /// [`OnExpired`] policy says). [`Retention::unlimited`] lets consumers pin
    /// forever. Default: 256 segments (2 GiB of 8 MiB segments).
    #[must_use]
    pub fn consumer_limit(mut self, limit: Retention) -> Self {
        self.journal = self.journal.consumer_limit(limit);
        self
    }

    /// Whether retention waits for durable consumers at all. Default: `true`.
    #[must_use]
    pub fn pin_for_consumers(mut self, pin: bool) -> Self {
        self.journal = self.journal.pin_for_consumers(pin);
        self
    }

    /// How often retention runs while the feed is open, besides at every
    /// roll. Default: 1 s. At least [`MIN_RETENTION_CHECK`]
    /// ([`open`](Self::open) refuses less with [`Error::Config`]): each
    /// check is a retention pass on the writer, and a shorter period filled
    /// the writer's inbox with checks.
    #[must_use]
    pub fn retention_check(mut self, every: Duration) -> Self {
        self.retention_check = every;
        self
    }

    /// When appends are fsynced. Default: [`SyncPolicy::Always`] (an
    /// acknowledged append has been fdatasync'ed; concurrent appends share
    /// one fsync).
    #[must_use]
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.journal = self.journal.sync(policy);
        self.sync_policy = policy;
        self
    }

    /// What recovery does with a corrupt newest segment. Default:
    /// [`RecoveryMode::Strict`] (a torn tail is truncated; corruption
    /// followed by valid frames refuses to open, naming file and offset).
    #[must_use]
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.journal = self.journal.recovery(mode);
        self
    }

    /// Injects the faults of `plan` into the feed's journal (its writer,
    /// rolls, retention and recovery) and into the checkpoint commits of
    /// the durable consumers its handles open. Tests only. Default: no
    /// faults.
    #[cfg(feature = "fault-injection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fault-injection")))]
    #[must_use]
    pub fn faults(mut self, plan: events_journal::fault::FaultPlan) -> Self {
        self.checkpoints = CheckpointIo::with_plan(plan.clone());
        self.journal = self.journal.faults(plan);
        self
    }

    /// The largest accepted encoded event. Default: 16 MiB, which is also
    /// the most allowed: the codec refuses to decode anything larger, so a
    /// larger limit would journal events that no reader could read back
    /// ([`open`](Self::open) refuses it with [`Error::Config`]).
    ///
    /// An event over the limit fails alone: its `append` gets
    /// [`Error::TooLarge`], its `record` is dropped and counted in
    /// [`FeedStats::too_large`](crate::FeedStats::too_large); the events batched with it are journaled
    /// and the feed stays healthy.
    #[must_use]
    pub fn max_record_bytes(mut self, bytes: u32) -> Self {
        self.journal = self.journal.max_record_bytes(bytes);
        self.max_record_bytes = bytes;
        self
    }

    /// Keeps recent ephemeral events (streamed tokens, progress) in a
    /// bounded ring, positioned among the durable events, so that
    /// [`FeedReader::stream_live`](crate::FeedReader::stream_live) and SSE's
    /// `?live_output=1` can resume a client mid-response. Ephemeral events
    /// given to `record` and `Session::emit` then also go to the writer
    /// (never to the journal). Default: off.
    ///
    /// An ephemeral event `record` drops on a full inbox (counted in
    /// [`FeedStats::dropped`](crate::FeedStats::dropped)) never had a
    /// position: no live-output client gets a reset for it. Where a client
    /// must never miss a token silently, emit through a
    /// [`Session`](crate::Session) or [`Inbox::forward`](crate::Inbox::forward),
    /// which wait for room instead.
    pub fn live_output(mut self, limits: LiveOutput) -> Self {
        self.live_output = Some(limits);
        self
    }

    /// The dedupe window of idempotent appends
    /// ([`AppendOptions::id`](crate::AppendOptions::id)): how long and for how
    /// many ids an event id is remembered. Default: [`Dedupe::default`].
    pub fn dedupe(mut self, window: Dedupe) -> Self {
        self.dedupe = window;
        self
    }

    /// Commands the inbox holds before `record` drops and `append` waits.
    /// Default: 1024.
    /// At least 1 ([`open`](Self::open) refuses 0 with [`Error::Config`]).
    #[must_use]
    pub fn inbox_capacity(mut self, capacity: usize) -> Self {
        self.inbox_capacity = capacity;
        self
    }

    /// Events the live tail keeps for `stream_from` consumers: the feed's
    /// newest envelopes, which streams caught up with the writer take, and
    /// streams that start or fall back near the end take too, instead of
    /// reading and decoding the journal again (every stream shares the
    /// envelopes the writer built). A consumer further behind falls back to
    /// the journal. Default: 4096.
    ///
    /// The envelopes are kept in published chunks of up to 64 events, the
    /// oldest let go while the rest still hold `capacity`: so at least
    /// `capacity` events once that many were published, and fewer than
    /// `capacity + 64`.
    /// At least 1 ([`open`](Self::open) refuses 0 with [`Error::Config`]).
    #[must_use]
    pub fn live_capacity(mut self, capacity: usize) -> Self {
        self.live_capacity = capacity;
        self
    }

    /// Attaches a best-effort sink. Sinks see every durable event after it
    /// is journaled, in seq order, each on a background task of its own
    /// behind a bounded queue of its own, so a slow sink never slows the
    /// writer or the other sinks; what its queue cannot hold is dropped and
    /// counted in [`FeedStats::sink_dropped`](crate::FeedStats::sink_dropped)
    /// and in its [`SinkReport::queue_dropped`](crate::SinkReport::queue_dropped).
    /// Repeatable. A
    /// consumer that must not miss events detects a dropped one by its seq
    /// and fills the gap with [`reconcile`](crate::reconcile)`(&feed, last_seen)`,
    /// which reads it back from the journal.
    ///
    /// The tasks run on the application's tokio runtime: a sink whose
    /// `emit` blocks its thread (synchronous I/O, a `std::sync::Mutex`, a
    /// sleep) would hold a runtime thread, and on a current-thread runtime
    /// stall the appends and the other sinks with it. Give such a sink a
    /// thread of its own: `sink.offload_thread(capacity)?`
    /// ([`Offload::on_thread`](crate::layers::sink::Offload::on_thread)).
    ///
    /// Each sink is called under its own unwind guard: a panicking sink is
    /// logged by name, counted in [`FeedStats::sinks`](crate::FeedStats::sinks), and keeps receiving
    /// later events, while the others never notice. Unnamed sinks are named
    /// `sink-<n>` in attachment order; see [`named_sink`](Self::named_sink).
    #[must_use]
    pub fn sink<S>(self, sink: S) -> Self
    where
        S: EventSink<Envelope<E>> + 'static,
    {
        let name = format!("sink-{}", self.sinks.len());
        self.named_sink(name, sink)
    }

    /// Attaches a best-effort sink under a name used in logs and in
    /// [`FeedStats::sinks`](crate::FeedStats::sinks). Otherwise as [`sink`](Self::sink).
    #[must_use]
    pub fn named_sink<S>(mut self, name: impl Into<String>, sink: S) -> Self
    where
        S: EventSink<Envelope<E>> + 'static,
    {
        self.sinks.push(Attached::new(name.into(), Arc::new(sink)));
        self
    }

    /// Events each session subscriber may hold before `Session::emit`
    /// waits for it. Default: 256.
    /// At least 1 ([`open`](Self::open) refuses 0 with [`Error::Config`]).
    #[must_use]
    pub fn session_capacity(mut self, capacity: usize) -> Self {
        self.session_capacity = capacity;
        self
    }

    /// What a session's `emit` does about a subscriber that is full.
    /// Default: [`Overflow::Wait`] (pure backpressure: a stalled UI stalls
    /// its session). With a disconnect policy a subscriber that falls behind
    /// is closed with an explicit reason its stream yields
    /// ([`Closed::TooSlow`](events_fanout::Closed)), and the session carries on.
    #[must_use]
    pub fn session_overflow(mut self, overflow: Overflow) -> Self {
        self.session_overflow = overflow;
        self
    }

    /// Batches of envelopes each sink's queue holds (one batch per
    /// journal write). Default: 1024. At least 1 ([`open`](Self::open)
    /// refuses 0 with [`Error::Config`]).
    ///
    /// The bound is in batches, and a batch holds what one write, or one
    /// fdatasync covering several writes under `SyncPolicy::Always`,
    /// acknowledged: up to 4,096 events (or 4 MiB of them) per write, about
    /// twice that per fdatasync. A sink that stops returning, with no
    /// [`sink_timeout`](Self::sink_timeout), keeps in memory up to
    /// `batches` times that many events the feed itself no longer holds,
    /// under a burst of large batches (many appenders at once). Lower it,
    /// or bound the sink's calls, where that is too much.
    #[must_use]
    pub fn sink_queue(mut self, batches: usize) -> Self {
        self.sink_queue = batches;
        self
    }

    /// Bounds each sink call; a call cut short is counted in
    /// [`FeedStats::sink_timeouts`](crate::FeedStats::sink_timeouts). Default: no timeout.
    /// A sink is bounded as a whole: a [`Tee`](crate::layers::sink::Tee)
    /// attached as one sink is cut, with every branch after a slow one, and
    /// counted once; bound its branches one by one to keep the others.
    /// Above zero ([`open`](Self::open) refuses zero with [`Error::Config`]).
    #[must_use]
    pub fn sink_timeout(mut self, timeout: Duration) -> Self {
        self.sink_timeout = Some(timeout);
        self
    }

    /// How long [`Feed::close`] waits, once the journal is closed, for the
    /// sinks to take the events handed to them; after it, `close` returns
    /// with a warning and the sinks finish in the background. Default: 10 s.
    /// Also how long the sinks of a feed reopened in the same process wait
    /// for those of the previous feed of the directory to finish before
    /// they start (so a sink given to both sees seqs in order): meanwhile
    /// their queues fill, and a stuck previous sink can make them drop
    /// (counted in `sink_dropped`).
    #[must_use]
    pub fn sink_close_wait(mut self, wait: Duration) -> Self {
        self.sink_close_wait = wait;
        self
    }

    /// What this feed's streams ([`Feed::stream_from`], [`Feed::reader`]'s)
    /// do when retention removed events after their cursor. Default:
    /// [`OnExpired::Earliest`]. A reader can override it with
    /// [`FeedReader::on_expired`].
    #[must_use]
    pub fn on_expired(mut self, policy: OnExpired) -> Self {
        self.on_expired = policy;
        self
    }

    /// What this feed's streams do with a journaled event they cannot
    /// decode. Default: [`OnUndecodable::Fail`]. A reader can override it
    /// with [`FeedReader::on_undecodable`].
    #[must_use]
    pub fn on_undecodable(mut self, policy: OnUndecodable) -> Self {
        self.on_undecodable = policy;
        self
    }

    /// Uses another payload codec. Default: [`Bincode`]. The codec's id is
    /// stored in every segment header; opening a journal written with
    /// another codec fails.
    pub fn codec<C2: Codec>(self, codec: C2) -> FeedBuilder<E, C2> {
        FeedBuilder {
            dir: self.dir,
            journal: self.journal,
            sync_policy: self.sync_policy,
            max_record_bytes: self.max_record_bytes,
            dedupe: self.dedupe,
            live_output: self.live_output,
            inbox_capacity: self.inbox_capacity,
            live_capacity: self.live_capacity,
            sink_queue: self.sink_queue,
            sink_timeout: self.sink_timeout,
            sink_close_wait: self.sink_close_wait,
            retention_check: self.retention_check,
            session_capacity: self.session_capacity,
            session_overflow: self.session_overflow,
            sinks: self.sinks,
            on_expired: self.on_expired,
            on_undecodable: self.on_undecodable,
            checkpoints: self.checkpoints,
            codec,
        }
    }

    /// Opens the feed: creates the directory if needed, takes its lock,
    /// recovers the newest segment, applies retention and spawns the writer.
    ///
    /// On an empty or missing directory a new journal (with a new epoch) is
    /// created. On a clean one, seqs continue after the last record. On a
    /// torn one (a crash mid-write), the incomplete tail is truncated and
    /// seqs continue after the last complete record. On a corrupt one
    /// (damage followed by valid records), opening fails with the file and
    /// offset unless a salvage [`RecoveryMode`] was chosen.
    ///
    /// If the last handle of this process's previous feed on the same
    /// directory was just dropped (or its `close` is under way), its writer
    /// is still draining in the background: `open` waits for it to release
    /// the directory (at most 10 s). So it does for an open of the directory
    /// by this process still under way (one cut short by a timeout goes on
    /// on its blocking thread, holding the lock until it ends). A directory
    /// whose writer is alive (in this process or another) is refused with
    /// [`JournalError::Locked`], at once unless such an open is under way.
    ///
    /// Must be called within a tokio runtime with its time driver enabled
    /// (`enable_time` or `enable_all`; sinks, the retention timer and the
    /// task that sends batches' acknowledgements run on it; appends do not
    /// depend on it running). Without timers the retention timer's task
    /// ends at its first tick (age retention, and the idle feed's health
    /// checks, then wait for the next roll), and an open that must wait
    /// for this process's previous writer of the directory to finish
    /// closing, or for another open of it, panics, as do the sinks of such
    /// a reopened feed.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`] for I/O errors, a directory locked by another
    /// writer, corruption, or a journal written with another codec;
    /// [`Error::Spawn`] if the writer thread cannot start; [`Error::Task`] if
    /// the blocking open panicked.
    pub async fn open(self) -> Result<Feed<E, C>> {
        self.open_with_report().await.map(|(feed, _)| feed)
    }

    /// Like [`open`](Self::open), also returning what recovery found.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub async fn open_with_report(mut self) -> Result<(Feed<E, C>, RecoveryReport)> {
        // The sinks are `Attached` from `named_sink` on: an open refused
        // below lets them go under the catch of their `Drop` (`sinks.rs`),
        // as a builder dropped unused does.
        let sinks = std::mem::take(&mut self.sinks);
        let sink_set = (!sinks.is_empty()).then(|| SinkSet::new(sinks, self.sink_timeout));
        // Allocated up front, or by tokio (which panics past its own limit);
        // each session's ring has `session_capacity` slots.
        for (option, value) in [
            ("live_capacity", self.live_capacity),
            ("inbox_capacity", self.inbox_capacity),
            ("session_capacity", self.session_capacity),
            ("sink_queue", self.sink_queue),
        ] {
            if value > MAX_CAPACITY {
                return Err(Error::Config(format!("{option} {value} is above the most a feed takes, {MAX_CAPACITY}")));
            }
        }
        for (option, value, holds) in [
            ("live_capacity", self.live_capacity, "the live tail holds at least one event"),
            ("inbox_capacity", self.inbox_capacity, "the inbox holds at least one command"),
            ("session_capacity", self.session_capacity, "each session subscriber holds at least one event"),
            ("sink_queue", self.sink_queue, "each sink's queue holds at least one batch"),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("{option} 0: {holds}")));
            }
        }
        if self.sink_timeout == Some(Duration::ZERO) {
            return Err(Error::Config(
                "sink_timeout 0ns: a sink call that awaits at all would be cut short on every event".into(),
            ));
        }
        if self.retention_check < MIN_RETENTION_CHECK {
            return Err(Error::Config(format!(
                "retention_check {:?} is below {MIN_RETENTION_CHECK:?}: each check is a retention pass on the writer",
                self.retention_check
            )));
        }
        if self.max_record_bytes as usize > events_core::DEFAULT_DECODE_LIMIT {
            return Err(Error::Config(format!(
                "max_record_bytes {} is above the codec's decode limit of {} bytes: such events could be \
                 journaled but never read back",
                self.max_record_bytes,
                events_core::DEFAULT_DECODE_LIMIT
            )));
        }
        let open_journal = || {
            let dir = self.dir.clone();
            // Retention summarises each segment it removes by stream id
            // (`PRUNED`); a segment not indexed yet is read with this.
            let codec = self.codec.clone();
            let options = self.journal.clone().codec_tag(C::ID).index_key(move |p| crate::index::key_of(&codec, p));
            // File system calls, all on the blocking thread. The open is
            // known (by the directory's canonical path: the directory is
            // made first) before it can take the lock, so a retry refused
            // by that lock finds it.
            tokio::task::spawn_blocking(move || {
                // As the open would make it: fsynced in its parent, or a
                // power loss may take the directory with every record.
                if let Err(e) = Journal::create_dir(&dir, &options) {
                    return (Err(e), None);
                }
                let opening = writers::Opening::start(&dir);
                let opened = Journal::open(&dir, options);
                // A refused open holds no lock: it ends now, and an open
                // it waits for never waits for it. A journal opened ends it
                // after itself (the tuple's order), so one that nobody
                // takes (this open cut short) has released the lock by then.
                let opening = opened.is_ok().then_some(opening);
                (opened, opening)
            })
        };
        let (journal, report) = match open_journal().await.map_err(Error::Task)?.0 {
            // This process's previous feed on this directory: its last
            // handle was just dropped (or a `close` is under way), and its
            // writer is draining; or an open of it cut short, still running
            // on its blocking thread. Wait for it, then try again.
            Err(JournalError::Locked { .. })
                if writers::wait_for_opening(&self.dir).await || writers::wait_for_closing(&self.dir).await =>
            {
                open_journal().await.map_err(Error::Task)?.0?
            }
            other => other?,
        };
        let reader = Reader::open(&self.dir)?;
        tracing::info!(
            dir = %self.dir.display(),
            epoch = journal.epoch(),
            first = journal.first_seq(),
            last = journal.last_seq(),
            "feed opened"
        );
        let mut shared = Shared::for_writer(self.dir.clone(), &journal, reader);
        shared.checkpoints = self.checkpoints;
        let shared = Arc::new(shared);
        let (tx, rx) = mpsc::channel(self.inbox_capacity);
        let (weak, closing) = (tx.downgrade(), Arc::downgrade(&shared));
        // Not live once a `close` queued its command (cut short, say, with
        // the writer busy in a sync), or its inbox is closed: it will stop
        // once it has journaled what was queued before the command,
        // whatever handles remain. (Only the closed inbox counted: until
        // the writer took the command, an open in this process was refused
        // with `Locked`.)
        writers::register(&self.dir, &shared, move || {
            weak.upgrade().is_some_and(|tx| !tx.is_closed()) && closing.upgrade().is_some_and(|s| !s.is_closing())
        });
        spawn_retention_timer(tx.downgrade(), self.retention_check);
        let recent = Arc::new(Recent::new(self.live_capacity));
        let (sinks, sinks_done) = match sink_set.clone() {
            Some(set) => {
                let (queue, done) = SinkQueue::spawn(set, self.sink_queue, &shared, self.sink_close_wait);
                (Some(queue), Some((done, self.sink_close_wait)))
            }
            None => (None, None),
        };
        let group_commit = self.sync_policy == SyncPolicy::Always;
        let ring = self
            .live_output
            .map(|limits| Arc::new(Ring::new(limits, journal.last_seq(), report.created, journal.open_generation())));
        let writer =
            Writer::new(journal, Arc::clone(&recent), sinks, Arc::clone(&shared), self.codec.clone(), group_commit)
                .max_record_bytes(self.max_record_bytes)
                .dedupe(self.dedupe)
                .ring(ring.clone());
        let on_panic = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("events-writer".into())
            .spawn(move || {
                // The event type's own code runs here too; where it runs
                // (`Serialize`, `stream_id`, the `Drop` of an event let go)
                // a panic is caught and costs that event alone. One that
                // got past those catches ends the writer, and the feed says
                // so instead of looking healthy and open for ever.
                if let Err(Error::EventPanicked { message, .. }) =
                    crate::error::isolated("the writer thread", || writer.run(rx))
                {
                    let cause = crate::writer::writer_panicked(&message);
                    // Recorded before it is logged: a log that panics (a
                    // `tracing` layer's) had left the feed healthy and
                    // open, its `close` and caught-up streams waiting.
                    on_panic.set_failed(cause.clone());
                    on_panic.mark_closed();
                    crate::error::logged(
                        || tracing::error!(error = %cause, "the feed's writer thread panicked; the feed is closed"),
                    );
                }
            })
            .map_err(Error::Spawn)?;
        let codec_for_sessions = self.codec.clone();
        let feed = Feed::from_parts(
            Inbox::new(tx, Arc::clone(&shared), ring.is_some()),
            FeedReader::live(Arc::clone(&shared), self.codec, recent, sink_set)
                .on_expired(self.on_expired)
                .on_undecodable(self.on_undecodable)
                .with_ring(ring),
            shared,
            Arc::new(SessionRegistry::new(
                self.session_capacity,
                self.session_overflow,
                crate::session::encoder(codec_for_sessions, self.max_record_bytes),
            )),
            sinks_done,
        );
        Ok((feed, report))
    }
}

/// Sends `Cmd::Prune` every `every` until the feed is gone. It holds only a
/// weak sender, so it never keeps a dropped feed's writer running.
fn spawn_retention_timer<E: Event>(inbox: mpsc::WeakSender<Cmd<E>>, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; open just pruned
        loop {
            tick.tick().await;
            let Some(tx) = inbox.upgrade() else { return };
            // A full inbox means a busy writer, which rolls and prunes anyway.
            if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Cmd::Prune) {
                return;
            }
        }
    });
}
