//! Feed ids and [`FeedCursors`]: where a reader of a shared stream stands in
//! each feed, as one value that serializes for an SSE id or a checkpoint.
//!
//! Neighbours: [`crate::spec`] checks feed ids with [`check_feed_id`];
//! [`crate::feeds`] reads every feed of a shared stream from a
//! `FeedCursors` and yields [`FeedsItem`]s that advance it. Invariant: a
//! feed id is one subject token of ASCII letters, digits, `-` and `_`, so
//! `<prefix>.<feed id>` is a literal subject and the text form
//! `<feed>:<epoch>-<seq>,…` parses back unambiguously; every cursor that
//! leaves the process names its epoch when it has one (DESIGN 3.11).
//!
//! # The feed id
//!
//! A replicator into a shared stream publishes on `<prefix>.<feed id>`.
//! The id is chosen by the operator (`StreamSpec::feed`, `events replicate
//! --feed`), or by default **derived from the journal's epoch**: the epoch
//! in decimal. The derived id is unique per journal (a recreated directory
//! gets a new epoch, hence a new subject, so its seqs never mix with the
//! old journal's), and needs no extra state; a chosen id reads better and
//! stays the same across a recreated journal, in which case the replicator
//! refuses to start (`NatsError::EpochMismatch`) until the feed's old
//! messages are purged, exactly as in an exclusive stream. Either way every
//! message also carries its epoch (in its `Nats-Msg-Id`), so a cursor per feed
//! is `(seq, epoch)`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use events::{Cursor, FeedItem, Seq};

use crate::NatsError;

/// Checks that `feed` can be a feed id (see the module docs).
///
/// # Errors
///
/// [`NatsError::FeedId`] naming what is wrong.
pub fn check_feed_id(feed: &str) -> Result<(), NatsError> {
    let bad = |reason: &str| Err(NatsError::FeedId { feed: feed.to_owned(), reason: reason.to_owned() });
    if feed.is_empty() {
        return bad("it is empty");
    }
    if feed.len() > 64 {
        return bad("it is longer than 64 bytes");
    }
    if !feed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return bad("only ASCII letters, digits, '-' and '_' are allowed");
    }
    Ok(())
}

/// The feed id a replicator derives from a journal's epoch when none is
/// chosen: the epoch in decimal.
pub fn feed_id_of_epoch(epoch: u64) -> String {
    epoch.to_string()
}

/// One item of a [`RemoteFeeds`](crate::RemoteFeeds) stream: an item of
/// feed `feed`, with the epoch of the journal it came from.
#[derive(Debug)]
pub struct FeedsItem<E> {
    /// The feed id (the last token of the message's subject).
    pub feed: Arc<str>,
    /// The journal epoch of the feed's events from here on (`None` only on
    /// a reset of a feed the stream holds nothing of).
    pub epoch: Option<u64>,
    /// The event, or a reset of this feed (the other feeds go on).
    pub item: FeedItem<E>,
}

/// A cursor per feed: the last seq (and its epoch) a reader has seen in
/// each feed of a shared stream. A feed it does not name is read from its
/// first message.
///
/// Its text form (`Display` / `FromStr`, and serde as that string) is
/// `<feed>:<epoch>-<seq>` per feed, sorted by feed id, separated by `,`
/// (`<feed>:<seq>` for a cursor without an epoch, `""` for none): short
/// enough for an SSE `id:` line, and what a checkpoint stores.
///
/// # Example
///
/// ```
/// use events::{Cursor, Seq};
/// use events_nats::FeedCursors;
///
/// let mut cursors = FeedCursors::new();
/// cursors.set("eu-1", Cursor::new(Seq::new(42), 7)).unwrap();
/// cursors.set("us-2", Cursor::new(Seq::new(9), 3)).unwrap();
/// let id = cursors.to_string();
/// assert_eq!(id, "eu-1:7-42,us-2:3-9");
/// assert_eq!(id.parse::<FeedCursors>().unwrap(), cursors);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedCursors {
    map: BTreeMap<String, Cursor>,
}

impl FeedCursors {
    /// No cursor: every feed is read from its first message.
    pub fn new() -> Self {
        FeedCursors::default()
    }

    /// The cursor of `feed`, if any.
    pub fn get(&self, feed: &str) -> Option<Cursor> {
        self.map.get(feed).copied()
    }

    /// Sets the cursor of `feed`.
    ///
    /// # Errors
    ///
    /// [`NatsError::FeedId`] when `feed` is not a feed id.
    pub fn set(&mut self, feed: impl Into<String>, cursor: Cursor) -> Result<(), NatsError> {
        let feed = feed.into();
        check_feed_id(&feed)?;
        self.map.insert(feed, cursor);
        Ok(())
    }

    /// Moves the cursor of the item's feed past it: after an event, to the
    /// event's seq and epoch; a reset moves nothing (the events that follow
    /// it do).
    pub fn advance<E>(&mut self, item: &FeedsItem<E>) {
        if let FeedItem::Event(env) = &item.item {
            let cursor = Cursor { seq: env.seq, epoch: item.epoch };
            self.map.insert(item.feed.to_string(), cursor);
        }
    }

    /// Forgets the cursor of `feed` (a feed that is gone: a recreated
    /// journal gets a new feed id when the ids are epochs), returning it.
    /// `advance` adds every feed a reader meets and drops none, and each
    /// named feed costs a resume a plan: a long-lived reader prunes here.
    /// A feed removed while the stream still holds it is read from its
    /// first message again at the next resume.
    pub fn remove(&mut self, feed: &str) -> Option<Cursor> {
        self.map.remove(feed)
    }

    /// Keeps only the feeds for which `keep` returns `true`.
    ///
    /// ```
    /// use events::{Cursor, Seq};
    /// use events_nats::FeedCursors;
    ///
    /// let mut cursors: FeedCursors = "a:1-5,b:2-9,c:3-1".parse().unwrap();
    /// cursors.retain(|feed, _| feed != "b");
    /// assert_eq!(cursors.remove("c"), Some(Cursor::new(Seq::new(1), 3)));
    /// assert_eq!(cursors.to_string(), "a:1-5");
    /// ```
    pub fn retain(&mut self, mut keep: impl FnMut(&str, Cursor) -> bool) {
        self.map.retain(|feed, cursor| keep(feed, *cursor));
    }

    /// The feeds and their cursors, by feed id.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Cursor)> + '_ {
        self.map.iter().map(|(feed, cursor)| (feed.as_str(), *cursor))
    }

    /// How many feeds have a cursor.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no feed has a cursor.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl fmt::Display for FeedCursors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (feed, cursor)) in self.map.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match cursor.epoch {
                Some(epoch) => write!(f, "{feed}:{epoch}-{}", cursor.seq.get())?,
                None => write!(f, "{feed}:{}", cursor.seq.get())?,
            }
        }
        Ok(())
    }
}

impl FromStr for FeedCursors {
    type Err = NatsError;

    /// Parses the text form (see [`FeedCursors`]).
    fn from_str(s: &str) -> Result<Self, NatsError> {
        let mut cursors = FeedCursors::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let bad = |reason: &str| NatsError::BadCursor { text: part.to_owned(), reason: reason.to_owned() };
            let (feed, at) = part.split_once(':').ok_or_else(|| bad("expected <feed>:<epoch>-<seq>"))?;
            let number = |n: &str| crate::headers::decimal(n).ok_or_else(|| bad("not a number"));
            let cursor = match at.split_once('-') {
                Some((epoch, seq)) => Cursor::new(Seq::new(number(seq)?), number(epoch)?),
                None => Cursor::from(Seq::new(number(at)?)),
            };
            if cursors.map.contains_key(feed) {
                return Err(bad("the feed is named twice"));
            }
            cursors.set(feed, cursor)?;
        }
        Ok(cursors)
    }
}

impl serde::Serialize for FeedCursors {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for FeedCursors {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        let mut c = FeedCursors::new();
        assert_eq!(c.to_string(), "");
        assert_eq!("".parse::<FeedCursors>().unwrap(), c);
        c.set("b", Cursor::from(Seq::new(5))).unwrap();
        c.set("a_1", Cursor::new(Seq::new(u64::MAX), u64::MAX)).unwrap();
        let text = c.to_string();
        assert_eq!(text, format!("a_1:{0}-{0},b:5", u64::MAX));
        assert_eq!(text.parse::<FeedCursors>().unwrap(), c);
        // A leading `+` (which `u64`'s `FromStr` takes) is not the text form: `a:+7-+3` had read as `a:7-3`.
        for bad in ["a", "a:x", "a:1-x", "a.b:1-2", "a:1-2,a:1-3", ":1-2", "a:-2", "a:+7-+3", "a:+5", "a: 5"] {
            let err = bad.parse::<FeedCursors>().unwrap_err();
            assert!(matches!(err, NatsError::BadCursor { .. } | NatsError::FeedId { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn feed_ids() {
        assert!(check_feed_id("eu-west_1").is_ok());
        assert!(check_feed_id(&feed_id_of_epoch(u64::MAX)).is_ok());
        for bad in ["", "a.b", "a*", ">", "a b", "é", &"x".repeat(65)] {
            assert!(matches!(check_feed_id(bad), Err(NatsError::FeedId { .. })), "{bad:?}");
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        let mut c = FeedCursors::new();
        c.set("x", Cursor::new(Seq::new(3), 9)).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"x:9-3\"");
        assert_eq!(serde_json::from_str::<FeedCursors>(&json).unwrap(), c);
    }
}
