//! [`StreamSpec`]: the JetStream stream a feed replicates into, created when
//! missing and validated when present, and the subject its messages go to.
//!
//! Neighbours: used by [`crate::replicator`] at start and by
//! [`crate::consumer`] / [`crate::feeds`] to find the stream; feed ids are
//! checked by [`crate::cursors`]. Invariant: replication only runs against a
//! stream with file storage, limits retention, acknowledgements on, a
//! subject that captures the feed's (an exclusive stream: that subject
//! alone), at least the replicas and the duplicate window asked for, that
//! takes new messages for good (not sealed, and not discarding new
//! messages once a limit is reached); anything else is a
//! [`NatsError::StreamMismatch`] before the first publish, never a silent
//! downgrade.
//!
//! # Exclusive and shared streams
//!
//! * [`StreamSpec::new`]: the stream captures one literal subject and holds
//!   one journal. The replicator pipelines its publishes, each guarded by
//!   `Nats-Expected-Last-Sequence` (the stream's last sequence).
//! * [`StreamSpec::shared`]: the stream captures `<prefix>.*` and holds
//!   many journals ("feeds"), each on its own subject `<prefix>.<feed id>`.
//!   The stream-wide guard cannot work there (other feeds' messages land in
//!   between), so each publish is guarded by
//!   `Nats-Expected-Last-Subject-Sequence` instead, and that guard names the
//!   stream sequence of the feed's previous message, known only once that
//!   message is acknowledged: a replicator into a shared stream has one
//!   publish in flight (see [`crate::replicator`] for why nothing weaker
//!   keeps each feed's order on a 2.9 server).

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType, Stream};

use crate::NatsError;

/// The stream a feed replicates into, and the subject its messages use.
///
/// Exclusive ([`StreamSpec::new`]): one journal, one subject; the
/// replicator is the only publisher, so stream order is journal order.
/// Shared ([`StreamSpec::shared`]): one subject per feed under a prefix;
/// each feed's messages keep journal order on their subject.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    name: String,
    /// Exclusive: the one subject. Shared: the prefix.
    subject: String,
    /// `None`: exclusive. `Some(None)`: shared, no feed chosen yet (the
    /// replicator derives it from the journal's epoch). `Some(Some(id))`:
    /// shared, feed `id`.
    shared: Option<Option<String>>,
    duplicate_window: Duration,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    max_age: Option<Duration>,
    replicas: usize,
}

impl StreamSpec {
    /// An exclusive stream called `name` (no spaces, dots, `*` or `>`)
    /// capturing `subject` (a literal subject, no wildcard), for one journal.
    pub fn new(name: impl Into<String>, subject: impl Into<String>) -> Self {
        StreamSpec {
            name: name.into(),
            subject: subject.into(),
            shared: None,
            duplicate_window: Duration::from_secs(120),
            max_messages: None,
            max_bytes: None,
            max_age: None,
            replicas: 1,
        }
    }

    /// A shared stream called `name` capturing `<prefix>.*`: every feed
    /// replicates on its own subject `<prefix>.<feed id>` (see
    /// [`feed`](Self::feed)). A replicator given a shared spec without a
    /// feed id uses the journal's epoch in decimal ([`crate::FeedCursors`]
    /// explains the choice); a [`RemoteFeed`](crate::RemoteFeed) needs the
    /// feed id, a [`RemoteFeeds`](crate::RemoteFeeds) reads every feed.
    pub fn shared(name: impl Into<String>, prefix: impl Into<String>) -> Self {
        StreamSpec { shared: Some(None), ..StreamSpec::new(name, prefix) }
    }

    /// The feed this spec publishes or reads, in a shared stream: its
    /// messages go to `<prefix>.<id>`. The id is one subject token of
    /// ASCII letters, digits, `-` and `_` (checked when the spec is used:
    /// [`NatsError::FeedId`]). No effect on an exclusive spec. Default: none
    /// (a replicator uses the journal's epoch).
    #[must_use]
    pub fn feed(mut self, id: impl Into<String>) -> Self {
        if self.shared.is_some() {
            self.shared = Some(Some(id.into()));
        }
        self
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

    /// The subject the replicator publishes on and a reader filters by:
    /// the exclusive stream's subject, or `<prefix>.<feed id>` in a shared
    /// stream (`<prefix>.*`, every feed, when no feed is set).
    pub fn subject(&self) -> String {
        match &self.shared {
            None => self.subject.clone(),
            Some(Some(feed)) => format!("{}.{feed}", self.subject),
            Some(None) => self.stream_subject(),
        }
    }

    /// The subject the stream captures: the exclusive subject, or
    /// `<prefix>.*`.
    pub fn stream_subject(&self) -> String {
        match self.shared {
            None => self.subject.clone(),
            Some(_) => format!("{}.*", self.subject),
        }
    }

    /// The prefix of a shared stream's subjects (`None` when exclusive).
    pub fn prefix(&self) -> Option<&str> {
        self.shared.is_some().then_some(self.subject.as_str())
    }

    /// The feed id of a shared spec, when set.
    pub fn feed_id(&self) -> Option<&str> {
        self.shared.as_ref().and_then(Option::as_deref)
    }

    /// Whether this is a shared stream ([`StreamSpec::shared`]).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The replicas asked for.
    pub fn replica_count(&self) -> usize {
        self.replicas
    }

    /// Checks what can be checked without asking the server: the stream
    /// name is one JetStream takes, the subject (or prefix) a literal
    /// subject, and a shared spec's feed id, if set, one subject token.
    /// [`ensure`](Self::ensure) checks them first, and [`open`](Self::open)
    /// the name (a reader of every feed ignores a feed id); call it to
    /// refuse a configuration before connecting.
    ///
    /// # Errors
    ///
    /// [`NatsError::StreamName`], [`NatsError::Subject`] or
    /// [`NatsError::FeedId`] naming what is wrong.
    pub fn check(&self) -> Result<(), NatsError> {
        self.check_name()?;
        self.check_subject()?;
        self.check_feed()
    }

    /// The subject half of [`check`](Self::check): a literal subject, one
    /// token or more, none empty.
    fn check_subject(&self) -> Result<(), NatsError> {
        let bad = |reason| Err(NatsError::Subject { subject: self.subject.clone(), reason });
        if self.subject.is_empty() {
            return bad("it is empty");
        }
        if self.subject.chars().any(char::is_whitespace) {
            return bad("a subject holds no whitespace");
        }
        // A wildcard is a whole token (`a*b` is a literal one to NATS).
        if self.subject.split('.').any(|token| token == "*" || token == ">") {
            return bad("a wildcard would capture other publishers' messages: give a literal subject");
        }
        if self.subject.split('.').any(str::is_empty) {
            return bad("it has an empty token (a leading, trailing or doubled '.')");
        }
        Ok(())
    }

    /// The stream name half of [`check`](Self::check).
    fn check_name(&self) -> Result<(), NatsError> {
        let bad = |reason| Err(NatsError::StreamName { name: self.name.clone(), reason });
        if self.name.is_empty() {
            return bad("it is empty");
        }
        if self.name.len() > 255 {
            return bad("it is longer than 255 bytes");
        }
        if self.name.chars().any(|c| c.is_whitespace() || ".*>/\\".contains(c)) {
            return bad("JetStream refuses whitespace, '.', '*', '>', '/' and '\\' in a stream name");
        }
        Ok(())
    }

    /// Checks the feed id, if any (see [`feed`](Self::feed)).
    pub(crate) fn check_feed(&self) -> Result<(), NatsError> {
        match self.feed_id() {
            Some(feed) => crate::cursors::check_feed_id(feed),
            None => Ok(()),
        }
    }

    fn config(&self) -> Config {
        let limit = |n: Option<u64>| n.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        Config {
            name: self.name.clone(),
            subjects: vec![self.stream_subject()],
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
    /// disabled, not connected, or it refuses the configuration, for
    /// instance subjects overlapping another stream's);
    /// [`NatsError::StreamMismatch`] naming the first field that does not
    /// fit; [`NatsError::StreamName`] or [`NatsError::FeedId`] as
    /// [`check`](Self::check) says, before any request.
    pub async fn ensure(&self, js: &Context) -> Result<Stream, NatsError> {
        self.check()?;
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
    /// be asked; [`NatsError::StreamName`] for a name JetStream refuses,
    /// before any request.
    pub async fn open(&self, js: &Context) -> Result<Stream, NatsError> {
        self.check_name()?;
        js.get_stream(&self.name).await.map_err(|e| NatsError::js("opening the stream", e))
    }

    pub(crate) fn validate(&self, found: &Config) -> Result<(), NatsError> {
        let mismatch = |field: &'static str, expected: String, found: String| {
            Err(NatsError::StreamMismatch { stream: self.name.clone(), field, expected, found })
        };
        let captured = match self.shared {
            // The replicator relies on being the stream's only publisher.
            None => found.subjects.contains(&self.subject),
            // Any subject that captures every feed of the prefix will do.
            Some(_) => {
                let probe = format!("{}.probe", self.subject);
                found.subjects.iter().any(|s| *s == self.stream_subject() || covers(s, &probe))
            }
        };
        if !captured {
            let expected = format!("to include {}", self.stream_subject());
            return mismatch("subjects", expected, format!("{:?}", found.subjects));
        }
        // Another subject lets another publisher in: its messages break the
        // stream-wide guard of every publish, and once the feed's own expire
        // the resync finds no last message of the feed in a stream that is
        // not empty, retried for ever.
        if self.shared.is_none() && found.subjects.len() > 1 {
            return mismatch("subjects", format!("only {}", self.subject), format!("{:?}", found.subjects));
        }
        // Messages sourced from other streams come in the same way: each
        // moves the stream's last sequence under the guard, and one on the
        // feed's subject reads as another journal's last message.
        if self.shared.is_none() && found.sources.as_ref().is_some_and(|s| !s.is_empty()) {
            let names: Vec<&str> = found.sources.iter().flatten().map(|s| s.name.as_str()).collect();
            return mismatch("sources", "none".into(), format!("{names:?}"));
        }
        if found.sealed {
            return mismatch("sealed", "false".into(), "true".into());
        }
        // Full, such a stream refuses every publish: the replicator would
        // retry for ever while the journal's retention pin held.
        // (A per-subject limit discards new messages only with
        // `discard_new_per_subject`; otherwise it drops the subject's oldest.)
        let per_subject = found.discard_new_per_subject && found.max_messages_per_subject > 0;
        let limited = found.max_messages > 0 || found.max_bytes > 0 || per_subject;
        if found.discard == DiscardPolicy::New && limited {
            return mismatch("discard", "old (or no message or byte limit)".into(), "new".into());
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
        if found.num_replicas.max(1) < self.replicas {
            let expected = format!("at least {}", self.replicas);
            return mismatch("num_replicas", expected, found.num_replicas.max(1).to_string());
        }
        if found.duplicate_window < self.duplicate_window {
            let expected = format!("at least {:?}", self.duplicate_window);
            return mismatch("duplicate_window", expected, format!("{:?}", found.duplicate_window));
        }
        Ok(())
    }
}

/// Whether the subject pattern `pattern` (with `*` and `>` wildcards)
/// matches the literal subject `subject`.
fn covers(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_of_exclusive_and_shared_specs() {
        let spec = StreamSpec::new("S", "feed.one");
        assert_eq!(
            (spec.subject(), spec.stream_subject(), spec.prefix()),
            ("feed.one".into(), "feed.one".into(), None)
        );
        assert_eq!(spec.feed("x").subject(), "feed.one", "feed ids only apply to shared specs");
        let shared = StreamSpec::shared("S", "app");
        assert_eq!((shared.subject(), shared.stream_subject()), ("app.*".into(), "app.*".into()));
        let one = shared.feed("eu-1");
        assert_eq!(
            (one.subject(), one.stream_subject(), one.feed_id()),
            ("app.eu-1".into(), "app.*".into(), Some("eu-1"))
        );
        assert!(one.check_feed().is_ok());
        assert!(matches!(StreamSpec::shared("S", "app").feed("a.b").check_feed(), Err(NatsError::FeedId { .. })));
    }

    /// A subject (or a shared stream's prefix) that is not a literal
    /// subject is refused before any request, naming why: a wildcard had
    /// captured other publishers' messages into the stream, an empty one
    /// or one with a space came back as a failed request.
    #[test]
    fn subjects_that_are_not_literal_are_refused_first() {
        for good in ["events", "feed.one", "a-b_c.d1", "a*b", "$x.y"] {
            assert!(StreamSpec::new("S", good).check().is_ok(), "{good}");
            assert!(StreamSpec::shared("S", good).feed("x").check().is_ok(), "{good}");
        }
        for bad in ["", "events.>", "events.*", "a.*.b", ">", "a b", ".a", "a.", "a..b", "tab\t"] {
            for spec in [StreamSpec::new("S", bad), StreamSpec::shared("S", bad)] {
                let refused = spec.check();
                assert!(
                    matches!(&refused, Err(NatsError::Subject { subject, .. }) if *subject == bad),
                    "{bad:?}: {refused:?}"
                );
            }
        }
    }

    /// Names JetStream refuses are refused before any request, each naming
    /// why; the server's own refusal had been reported as a failed request
    /// (the CLI added "is JetStream enabled?").
    #[test]
    fn stream_names_jetstream_refuses_are_refused_first() {
        for good in ["EVENTS", "feed-1_a", "é", &"x".repeat(255)] {
            assert!(StreamSpec::new(good, "s").check().is_ok(), "{good}");
        }
        for bad in ["", "my.events", "a b", "a*", "a>", "a/b", "a\\b", "tab\t", "line\n", &"x".repeat(256)] {
            let refused = StreamSpec::new(bad, "s").check();
            assert!(matches!(&refused, Err(NatsError::StreamName { name, .. }) if name == bad), "{bad:?}: {refused:?}");
        }
        let shared = StreamSpec::shared("S", "app").feed("a.b");
        assert!(matches!(shared.check(), Err(NatsError::FeedId { .. })));
    }

    #[test]
    fn wildcards_cover_subjects() {
        assert!(covers("app.*", "app.x"));
        assert!(covers("app.>", "app.x"));
        assert!(covers(">", "app.x"));
        assert!(covers("app.x", "app.x"));
        assert!(!covers("app.*", "app.x.y"));
        assert!(!covers("app.*", "app"));
        assert!(!covers("other.*", "app.x"));
        assert!(!covers("app.y", "app.x"));
    }
}
