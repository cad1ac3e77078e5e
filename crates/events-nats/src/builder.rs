//! [`ReplicatorBuilder`]: the options of a [`Replicator`] (window, poll
//! interval, ack timeout, `start_after`, stream ids) and its start, which
//! opens the journal's reader, ensures the stream (`spec.rs`), resyncs
//! once and spawns the task of `pump.rs`. The running handle is
//! `replicator.rs`.
//!
//! Invariant: a start that fails spawns nothing; in a shared stream the
//! window is 1 whatever was asked (see the module docs of `replicator.rs`).
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::Context;
use events::layers::journal::Reader;
use events::{Codec, Event};
use tokio::sync::{Notify, watch};

use crate::cursors::feed_id_of_epoch;
use crate::pump::{FIRST_BACKOFF, StreamIdFn, Task};
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
            .finish_non_exhaustive()
    }
}

impl ReplicatorBuilder {
    /// Publishes in flight before the oldest acknowledgement is awaited.
    /// Larger windows hide more round-trip time; a crash re-sends at most
    /// this many (and the duplicate window drops them). Ignored (one in
    /// flight) for a shared stream, see the module docs. Default: 256.
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
    /// bound of each request a resync makes. Default: 5 s.
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

    /// Decode each payload as a feed record of `E` with `codec` to put its
    /// stream id in the `Events-Stream` header. Without it the header is
    /// absent (the payload still carries the stream id). Default: off.
    #[must_use]
    pub fn stream_ids<E: Event, C: Codec>(mut self, codec: C) -> Self {
        self.stream_ids = Some(Arc::new(move |payload: &[u8]| {
            let env = events::payload::decode::<E, C>(&codec, 0, 0, payload).ok()?;
            env.stream_str().map(str::to_owned)
        }));
        self
    }

    /// Ensures the stream (creating it when missing), finds where
    /// replication stopped, and spawns the replication task on the current
    /// tokio runtime.
    ///
    /// # Errors
    ///
    /// [`NatsError::Journal`] when the journal directory has no readable
    /// segment; [`NatsError::FeedId`] for a shared spec whose feed id is
    /// not one; [`NatsError::StreamMismatch`] when the stream exists with an
    /// unusable configuration; [`NatsError::EpochMismatch`] when it holds
    /// another journal's events; [`NatsError::BadMessage`] when its last
    /// message was not written by a replicator; [`NatsError::JetStream`]
    /// when the server cannot be reached.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(self) -> Result<Replicator, NatsError> {
        let reader = Reader::open(&self.dir)?;
        let epoch = reader.epoch()?;
        let spec = match self.spec.feed_id() {
            None if self.spec.is_shared() => self.spec.feed(feed_id_of_epoch(epoch)),
            _ => self.spec,
        };
        let stream = spec.ensure(&self.js).await?;
        let subject = spec.subject();
        let shared_stream = spec.is_shared();
        let (progress, progress_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            wake: Arc::new(Notify::new()),
            stop: Notify::new(),
            stop_flag: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            progress: progress_rx,
            reader,
            counters: Counters::default(),
            last_error: Mutex::new(None),
            subject: subject.clone(),
            epoch,
        });
        let mut task = Task {
            js: self.js,
            stream,
            spec,
            subject,
            shared_stream,
            epoch,
            window: if shared_stream { 1 } else { self.window },
            poll_interval: self.poll_interval,
            ack_timeout: self.ack_timeout,
            start_after: self.start_after,
            stream_ids: self.stream_ids,
            shared: Arc::clone(&shared),
            progress,
            follower: None,
            skipped_through: 0,
            waiting_ahead: false,
            stopping: false,
            stall_backoff: FIRST_BACKOFF,
        };
        let position = task.resync().await?;
        task.progress.send_replace(position.seq);
        tracing::info!(
            stream = task.spec.name(),
            subject = task.subject,
            epoch,
            after = position.seq,
            "replication starting"
        );
        let handle = tokio::spawn(task.run(position));
        Ok(Replicator { shared, task: Some(handle) })
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
        }
    }
}
