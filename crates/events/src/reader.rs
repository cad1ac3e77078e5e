//! [`FeedReader`]: a read-only view of a feed's journal directory, for
//! processes that serve or tail a feed another process writes (an HTTP
//! server, a replicator, the CLI). It takes no lock and never writes.
//!
//! Invariant: the same `stream_from` guarantees as a writer's feed (in
//! order, no gap, no duplicate, explicit `Reset`), with new records found by
//! polling the files, since there is no in-process live tail to subscribe to.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use events_core::{Bincode, Codec, Event, Seq};
use events_journal::Reader;
use parking_lot::Mutex;

use crate::feed::Shared;
use crate::stats::Counters;
use crate::stream::{Cursor, FeedStream};
use crate::{FeedStats, Result};

/// A read-only view of a feed's journal, written by another process (or by
/// a [`Feed`](crate::Feed) in this one).
///
/// # Example
///
/// ```
/// use events::{Event, Feed, FeedItem, FeedReader, Seq};
/// use futures::StreamExt;
/// # #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)] struct Ping(u32);
/// # impl Event for Ping {}
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), events::Error> {
/// # let tmp = tempfile::tempdir().unwrap(); let dir = tmp.path();
/// let feed: Feed<Ping> = Feed::builder(dir).open().await?;
/// let reader: FeedReader<Ping> = FeedReader::open(dir)?;
/// let mut tail = reader.stream_from(Seq::ZERO); // follows the writer
/// feed.append(None, Ping(1)).await?;
/// let Some(Ok(FeedItem::Event(env))) = tail.next().await else { panic!() };
/// assert_eq!(env.event, Ping(1));
/// # feed.close().await }
/// ```
pub struct FeedReader<E, C: Codec = Bincode> {
    shared: Arc<Shared>,
    codec: C,
    poll: Duration,
    _event: std::marker::PhantomData<fn() -> E>,
}

impl<E, C: Codec> Clone for FeedReader<E, C> {
    fn clone(&self) -> Self {
        FeedReader { shared: Arc::clone(&self.shared), codec: self.codec.clone(), poll: self.poll, _event: self._event }
    }
}

impl<E, C: Codec> std::fmt::Debug for FeedReader<E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedReader").field("dir", &self.shared.dir).field("poll", &self.poll).finish()
    }
}

impl<E: Event> FeedReader<E, Bincode> {
    /// Opens a read-only view of the journal in `dir` with the default codec.
    ///
    /// # Errors
    ///
    /// [`Error::Journal`](crate::Error::Journal) when the directory cannot be
    /// read or holds no journal.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_codec(dir, Bincode)
    }
}

impl<E: Event, C: Codec> FeedReader<E, C> {
    /// Opens a read-only view of the journal in `dir` with `codec`.
    ///
    /// # Errors
    ///
    /// As [`open`](FeedReader::open).
    pub fn open_with_codec(dir: impl AsRef<Path>, codec: C) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let reader = Reader::open(&dir)?;
        let epoch = reader.epoch()?;
        let shared = Arc::new(Shared {
            dir,
            epoch,
            latest: AtomicU64::new(0),
            earliest: AtomicU64::new(0),
            counters: Counters::default(),
            reader,
            failure: Mutex::new(None),
            closed: AtomicBool::new(true),
        });
        shared.refresh_from_reader();
        Ok(FeedReader { shared, codec, poll: Duration::from_millis(20), _event: std::marker::PhantomData })
    }

    /// How often a caught-up stream looks for new records. Default: 20 ms.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval;
        self
    }

    /// Every durable event after `cursor`, then new ones as the writer
    /// appends them; never ends on its own. Same guarantees as
    /// [`Feed::stream_from`](crate::Feed::stream_from).
    pub fn stream_from(&self, cursor: impl Into<Cursor>) -> FeedStream<E> {
        FeedStream::new(cursor.into(), None, Arc::clone(&self.shared), self.codec.clone(), Some(self.poll))
    }

    /// The latest journaled seq, read from the files now.
    pub fn latest_seq(&self) -> Seq {
        self.shared.refresh_from_reader();
        self.shared.latest()
    }

    /// The earliest retained seq, read from the files now.
    pub fn earliest_seq(&self) -> Seq {
        self.shared.refresh_from_reader();
        self.shared.earliest()
    }

    /// The journal's epoch.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Counters of this reader's streams (lag fallbacks are always 0: a
    /// reader has no live tail; resets are counted).
    pub fn stats(&self) -> FeedStats {
        self.shared.refresh_from_reader();
        self.shared.stats()
    }
}
