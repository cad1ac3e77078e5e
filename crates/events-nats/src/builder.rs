//! [`ReplicatorBuilder`]: the options of a [`Replicator`] (window, poll
//! interval, ack timeout, `start_after`, stream ids, its consumer
//! registration) and its start, which opens the journal's reader, ensures
//! the stream (`spec.rs`), resyncs once, registers the replicator's
//! consumer checkpoint at the position found (`checkpoint.rs`) and spawns
//! the task of `pump.rs` and the checkpointer. The running handle is
//! `replicator.rs`.
//!
//! Invariant: a start that fails spawns nothing (and registers nothing
//! unless only the checkpoint's own commit failed); in a shared stream the
//! window is 1 whatever was asked (see the module docs of `replicator.rs`).
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::Context;
use events::Codec;
use events::layers::journal::{Reader, validate_consumer_name};
use tokio::sync::{Notify, watch};

use crate::checkpoint::{self, Registration, replicator_consumer_name};
use crate::cursors::feed_id_of_epoch;
use crate::pump::{FIRST_BACKOFF, StreamIdFn, Task};
use crate::replicator::Checkpointer;
use crate::replicator::{Counters, Replicator, Shared};
use crate::{NatsError, StreamSpec};

/// Configures and starts a [`Replicator`]. Created by [`Replicator::builder`].
pub struct ReplicatorBuilder {
    dir: PathBuf,
    js: Context,
    spec: StreamSpec,
    window: usize,
    poll_interval: Duration,
    ack_timeout: Duration,
    start_after: u64,
    stream_ids: Option<StreamIdFn>,
    register_consumer: bool,
    consumer_name: Option<String>,
    checkpoint_interval: Duration,
}

impl std::fmt::Debug for ReplicatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatorBuilder")
            .field("dir", &self.dir)
            .field("spec", &self.spec)
            .field("window", &self.window)
            .field("poll_interval", &self.poll_interval)
            .field("ack_timeout", &self.ack_timeout)
            .field("start_after", &self.start_after)
            .field("stream_ids", &self.stream_ids.is_some())
            .field("register_consumer", &self.register_consumer)
            .field("consumer_name", &self.consumer_name)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .finish_non_exhaustive()
    }
}

impl ReplicatorBuilder {
    /// Publishes in flight before the oldest acknowledgement is awaited.
    /// Larger windows hide more round-trip time; a crash re-sends at most
    /// this many (and the duplicate window drops them). Ignored (one in
    /// flight) for a shared stream, see the module docs. The JetStream
    /// context bounds it too: with fewer free slots for pending
    /// acknowledgements (its `max_ack_inflight`, shared by everything that
    /// publishes through it), a send that has to wait settles the oldest
    /// acknowledgement first. Default: 256.
    #[must_use]
    pub fn window(mut self, n: usize) -> Self {
        self.window = n.max(1);
        self
    }

    /// How often the replicator looks for new records when nothing wakes it
    /// (see [`Replicator::sink`]). Default: 50 ms.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long one acknowledgement may take before the replicator assumes
    /// the connection is gone and resynchronises from the stream; also the
    /// bound of each request a resync makes. Default: 5 s. It is set as
    /// the timeout of the copy of the JetStream context the replicator
    /// publishes through (a context's own timeout bounds every
    /// acknowledgement), never of the caller's, whose request timeout still
    /// bounds the stream's creation and the requests of a resync.
    #[must_use]
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Where to start when the stream holds no message: replicate the
    /// records with a seq above `seq`. Ignored when the stream has messages
    /// (replication resumes after the last one). Default: 0 (everything).
    #[must_use]
    pub fn start_after(mut self, seq: u64) -> Self {
        self.start_after = seq;
        self
    }

    /// Read each payload's stream id with `codec` (the feed's) to put it in
    /// the `Events-Stream` header. Only the stream id is read, not the
    /// event: a record of a newer schema version than this process knows,
    /// or one whose event does not decode, keeps its header. Without it the
    /// header is absent (the payload still carries the stream id). Default:
    /// off.
    #[must_use]
    pub fn stream_ids<C: Codec>(mut self, codec: C) -> Self {
        self.stream_ids = Some(Arc::new(move |payload: &[u8]| {
            events::payload::stream_id(&codec, payload).ok().flatten().map(|id| id.as_str().to_owned())
        }));
        self
    }

    /// Register the replicator as a durable consumer of the journal it
    /// replicates (a checkpoint in `<journal dir>/consumers/<name>`, see
    /// [`FeedReader::consumers`](events::FeedReader::consumers)), so the
    /// writer's retention keeps every segment holding seqs JetStream has
    /// not acknowledged yet, up to the journal's
    /// `JournalOptions::consumer_limit` (past it the replicator is cut
    /// loose: the lost seqs are counted in
    /// [`ReplicationStats::skipped`](crate::ReplicationStats::skipped)).
    /// The checkpoint only pins retention and reports lag; replication
    /// still resumes after the stream's last message. It outlives the
    /// replicator: delete it when decommissioning one
    /// ([`Replicator::shutdown`] says how). Registering needs a writable
    /// journal directory: replicate a read-only copy with `false`.
    /// Default: `true`.
    #[must_use]
    pub fn register_consumer(mut self, register: bool) -> Self {
        self.register_consumer = register;
        self
    }

    /// The name to register the replicator's checkpoint under (1 to 64
    /// bytes of `[A-Za-z0-9._-]`, not starting with `.`), for instance
    /// to keep a checkpoint across a change of subject, or to tell apart
    /// two replicators of one journal publishing on the same subject of
    /// two NATS systems. Default: [`replicator_consumer_name`] of the
    /// subject (`replicator.<subject>`).
    #[must_use]
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.consumer_name = Some(name.into());
        self
    }

    /// The shortest time between two commits of the checkpoint: each
    /// commit writes the newest seq JetStream acknowledged and costs one
    /// `fdatasync` on the blocking pool (never in the publish path), so
    /// the checkpoint trails the stream by at most about this much.
    /// Default: 250 ms.
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Ensures the stream (creating it when missing), finds where
    /// replication stopped, and spawns the replication task on the current
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// [`NatsError::Setting`] for a poll interval or an ack timeout of
    /// zero, before anything else; [`NatsError::Journal`] when the journal directory has no readable
    /// segment, when the consumer name is not one
    /// (`JournalError::InvalidConsumerName`, checked before anything
    /// else) or the checkpoint cannot be opened or committed
    /// (`JournalError::ConsumerInUse` while another replicator of the same
    /// journal and subject lives, in this process or another: drop the old
    /// handle, stopped or not, before starting its successor); [`NatsError::FeedId`] for a shared spec whose feed id is
    /// not one; [`NatsError::StreamName`] or [`NatsError::Subject`] for a
    /// stream name or subject JetStream refuses or that is not literal
    /// ([`StreamSpec::check`](crate::StreamSpec::check)); [`NatsError::StreamMismatch`] when the stream exists with an
    /// unusable configuration; [`NatsError::EpochMismatch`] when it holds
    /// another journal's events; [`NatsError::BadMessage`] when its last
    /// message was not written by a replicator; [`NatsError::JetStream`]
    /// when the server cannot be reached.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(self) -> Result<Replicator, NatsError> {
        // Zero had been taken: a poll interval of zero read the journal in
        // a busy loop, an ack timeout of zero timed out every publish (the
        // start succeeded, nothing was ever replicated).
        for (setting, value) in [("poll_interval", self.poll_interval), ("ack_timeout", self.ack_timeout)] {
            if value.is_zero() {
                return Err(NatsError::Setting { setting, reason: "must be above zero".into() });
            }
        }
        // A context's own timeout bounds each publish acknowledgement
        // whatever the replicator waits (5 s unless set): publishes go
        // through a copy whose timeout is the ack timeout. Requests (the
        // stream's handle, a resync's reads) keep the caller's context and
        // its request timeout.
        let mut publisher = self.js.clone();
        publisher.set_timeout(self.ack_timeout);
        let reader = Reader::open(&self.dir)?;
        let epoch = reader.epoch()?;
        let spec = match self.spec.feed_id() {
            None if self.spec.is_shared() => self.spec.feed(feed_id_of_epoch(epoch)),
            _ => self.spec,
        };
        let subject = spec.subject();
        let consumer_name = match (self.register_consumer, self.consumer_name) {
            (false, _) => None,
            (true, Some(name)) => Some(name),
            (true, None) => Some(replicator_consumer_name(&subject)),
        };
        if let Some(name) = &consumer_name {
            validate_consumer_name(name)?;
        }
        let stream = spec.ensure(&self.js).await?;
        // What the checkpoint says a replicator before this start
        // acknowledged (read only: a start that fails leaves no file).
        let replicated_before = match &consumer_name {
            Some(name) => checkpoint::replicated_before(&self.dir, name, epoch).await,
            None => 0,
        };
        let shared_stream = spec.is_shared();
        let (progress, progress_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            wake: Arc::new(Notify::new()),
            stop: Notify::new(),
            stop_flag: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            progress: progress_rx,
            reader,
            counters: Counters::default(),
            last_error: Mutex::new(None),
            fatal: OnceLock::new(),
            unacknowledged: Mutex::new(None),
            subject: subject.clone(),
            epoch,
            consumer: OnceLock::new(),
        });
        let mut task = Task {
            js: self.js,
            publisher,
            stream,
            spec,
            subject,
            shared_stream,
            epoch,
            window: if shared_stream { 1 } else { self.window },
            poll_interval: self.poll_interval,
            ack_timeout: self.ack_timeout,
            request_bound: None,
            start_after: self.start_after,
            stream_ids: self.stream_ids,
            shared: Arc::clone(&shared),
            progress,
            follower: None,
            skipped_through: 0,
            waiting_ahead: false,
            stopping: false,
            stall_backoff: FIRST_BACKOFF,
            stream_created: None,
            stored_through: std::sync::atomic::AtomicU64::new(0),
            abandoned: None,
            lost_through: 0,
            skips_through: 0,
        };
        let position = task.resync().await?;
        task.request_bound = Some(self.ack_timeout);
        // A stream that holds none of this journal's messages (emptied by
        // its limits or a purge, or made again) lost what a replicator
        // before this start acknowledged by design: those seqs, pruned from
        // the journal since, are not counted as pruned before replication.
        // A stream that holds some, but fewer than were acknowledged (a
        // server that lost its last writes), gets no such pass.
        if !position.in_stream {
            task.skipped_through = replicated_before;
        }
        task.progress.send_replace(position.seq);
        let checkpointer = match consumer_name {
            None => None,
            Some(name) => {
                let reader = shared.reader.clone();
                let registration = Registration::open(reader, name, epoch, task.progress.subscribe()).await?;
                registration.write().await?;
                let _ = shared.consumer.set(registration);
                let checkpointer = Checkpointer {
                    shared: Arc::clone(&shared),
                    progress: task.progress.subscribe(),
                    interval: self.checkpoint_interval,
                };
                Some(tokio::spawn(checkpointer.run()))
            }
        };
        // Every line the task logs names its stream and subject (with spans
        // enabled at `info`): several replicators in one process are told
        // apart. Not an error-level span: exported levels would count each
        // replicator as an error.
        let span = tracing::info_span!("replicator", stream = task.spec.name(), subject = %task.subject);
        tracing::info!(
            stream = task.spec.name(),
            subject = task.subject,
            epoch,
            after = position.seq,
            consumer = shared.consumer.get().map(Registration::name),
            "replication starting"
        );
        let handle = tokio::spawn(tracing::Instrument::instrument(task.run(position), span));
        Ok(Replicator { shared, task: Some(handle), checkpointer })
    }
}

impl Replicator {
    /// A builder replicating the journal in `dir` into the stream `spec`.
    pub fn builder(dir: impl AsRef<Path>, js: Context, spec: StreamSpec) -> ReplicatorBuilder {
        ReplicatorBuilder {
            dir: dir.as_ref().to_path_buf(),
            js,
            spec,
            window: 256,
            poll_interval: Duration::from_millis(50),
            ack_timeout: Duration::from_secs(5),
            start_after: 0,
            stream_ids: None,
            register_consumer: true,
            consumer_name: None,
            checkpoint_interval: Duration::from_millis(250),
        }
    }
}
