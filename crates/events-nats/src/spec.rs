//! [`StreamSpec`]: the JetStream stream a feed replicates into, created when
//! missing and validated when present.
//!
//! Neighbours: used by [`crate::replicator`] at start and by
//! [`crate::consumer`] to find the stream. Invariant: replication only runs
//! against a stream with file storage, limits retention, acknowledgements
//! on, the configured subject, and a duplicate window at least as long as
//! the one asked for; anything else is a [`NatsError::StreamMismatch`]
//! before the first publish, never a silent downgrade.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType, Stream};

use crate::NatsError;

/// The stream a feed replicates into.
///
/// One stream per journal, one subject per stream: the replicator is the
/// only publisher, so stream order is journal order.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    name: String,
    subject: String,
    duplicate_window: Duration,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
    replicas: usize,
}

impl StreamSpec {
    /// A stream called `name` (no spaces, dots, `*` or `>`) capturing
    /// `subject` (a literal subject, no wildcard).
    pub fn new(name: impl Into<String>, subject: impl Into<String>) -> Self {
        StreamSpec {
            name: name.into(),
            subject: subject.into(),
            duplicate_window: Duration::from_secs(120),
            max_messages: None,
            max_bytes: None,
            max_age: None,
            replicas: 1,
        }
    }

    /// How long JetStream remembers a `Nats-Msg-Id` to drop a re-send. It
    /// must exceed the time between a publish and the replicator's restart
    /// for re-sends to stay exactly-once. Default: 2 minutes (the server's
    /// default).
    #[must_use]
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Keep at most this many messages (older ones are discarded; a remote
    /// cursor before them gets a reset). Default: unlimited.
    #[must_use]
    pub fn max_messages(mut self, n: u64) -> Self {
        self.max_messages = Some(n);
        self
    }

    /// Keep at most this many bytes. Default: unlimited.
    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Discard messages older than this. Default: never.
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// JetStream replicas (R3 in a three-node cluster). Default: 1.
    #[must_use]
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n;
        self
    }

    /// The stream name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subject the stream captures and the replicator publishes on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    fn config(&self) -> Config {
        let limit = |n: Option<u64>| n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        Config {
            name: self.name.clone(),
            subjects: vec![self.subject.clone()],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            duplicate_window: self.duplicate_window,
            max_messages: limit(self.max_messages),
            max_bytes: limit(self.max_bytes),
            max_age: self.max_age.unwrap_or_default(),
            num_replicas: self.replicas,
            ..Config::default()
        }
    }

    /// Creates the stream if it does not exist, else checks that the
    /// existing one fits (see the type's invariant); returns a handle.
    ///
    /// # Errors
    ///
    /// [`NatsError::JetStream`] when the server cannot be asked (JetStream
    /// disabled, not connected); [`NatsError::StreamMismatch`] naming the
    /// first field that does not fit.
    pub async fn ensure(&self, js: &Context) -> Result<Stream, NatsError> {
        let stream =
            js.get_or_create_stream(self.config()).await.map_err(|e| NatsError::js("ensuring the stream", e))?;
        self.validate(&stream.cached_info().config)?;
        Ok(stream)
    }

    /// Opens the existing stream without creating or validating it (what a
    /// remote reader does).
    ///
    /// # Errors
    ///
    /// [`NatsError::JetStream`] when it does not exist or the server cannot
    /// be asked.
    pub async fn open(&self, js: &Context) -> Result<Stream, NatsError> {
        js.get_stream(&self.name).await.map_err(|e| NatsError::js("opening the stream", e))
    }

    fn validate(&self, found: &Config) -> Result<(), NatsError> {
        let mismatch = |field: &'static str, expected: String, found: String| {
            Err(NatsError::StreamMismatch { stream: self.name.clone(), field, expected, found })
        };
        if !found.subjects.contains(&self.subject) {
            return mismatch("subjects", format!("to include {}", self.subject), format!("{:?}", found.subjects));
        }
        if found.storage != StorageType::File {
            return mismatch("storage", "file".into(), format!("{:?}", found.storage));
        }
        if found.retention != RetentionPolicy::Limits {
            return mismatch("retention", "limits".into(), format!("{:?}", found.retention));
        }
        if found.no_ack {
            return mismatch("no_ack", "false".into(), "true".into());
        }
        if found.duplicate_window < self.duplicate_window {
            let expected = format!("at least {:?}", self.duplicate_window);
            return mismatch("duplicate_window", expected, format!("{:?}", found.duplicate_window));
        }
        Ok(())
    }
}
