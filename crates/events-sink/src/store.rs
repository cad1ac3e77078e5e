//! The durable side: [`EventLog`] (a sequenced log read back by seq),
//! [`DurableStore`] (an event log that also appends, returning the stored
//! envelope with its seq) and [`reconcile`], which gives a consumer of a
//! lossy sink the events it missed. Neighbours: [`MemoryStore`](crate::MemoryStore)
//! implements both traits for tests and examples, [`Watched`](crate::Watched)
//! decorates any store with a sink, and the `events` façade implements them
//! for its `Feed` (both) and `FeedReader` (the log). Invariant: the store's
//! log is the only source of truth; sinks are a freshness hint and
//! `reconcile` is how completeness is restored.

use async_trait::async_trait;
use events_core::{Envelope, Seq, StreamId};

/// A sequenced event log, read back in seq order: the half of a store that
/// [`reconcile`] needs, so a read-only handle (the `events` façade's
/// `FeedReader`, possibly in another process than the writer) can serve it.
#[async_trait]
pub trait EventLog<E: Send + Sync + 'static>: Send + Sync {
    /// What a failed read (or, for a [`DurableStore`], append) reports.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Up to `limit` stored events with `seq > cursor`, in seq order; empty
    /// when the cursor is at (or past) the end of the log. An implementation
    /// may return fewer than `limit` events before the end (a page cap);
    /// only an empty page means "nothing after `cursor`".
    ///
    /// # Errors
    ///
    /// Returns the log's error when it cannot be read, or when events after
    /// `cursor` are gone (removed by retention, lost to damage): a log never
    /// skips them silently.
    async fn events_after(&self, cursor: Seq, limit: usize) -> Result<Vec<Envelope<E>>, Self::Error>;

    /// The seq of the newest event stored ([`Seq::ZERO`] when none), if
    /// the log knows it: [`reconcile`] reads up to the newest when it
    /// starts, not on and on while events keep coming. Default: `None`,
    /// and `reconcile` reads until an empty page.
    ///
    /// # Errors
    ///
    /// Returns the log's error when it cannot be read.
    async fn newest(&self) -> Result<Option<Seq>, Self::Error> {
        Ok(None)
    }
}

/// An append-only, sequenced event log.
///
/// Implementations give each appended event the next seq (contiguous from 1)
/// and return it in an [`Envelope`]; [`EventLog::events_after`] serves the
/// log back in seq order. The `events` façade's `Feed` and its journal are
/// one such store; [`MemoryStore`](crate::MemoryStore) is another.
#[async_trait]
pub trait DurableStore<E: Send + Sync + 'static>: EventLog<E> {
    /// Durably appends `event` under `stream` and returns the stored envelope,
    /// carrying its seq and timestamp.
    ///
    /// # Errors
    ///
    /// Returns the store's error when the event could not be made durable;
    /// the event then has no seq and must not be published.
    async fn append(&self, stream: Option<StreamId>, event: E) -> Result<Envelope<E>, Self::Error>;
}

/// How many events [`reconcile`] asks the store for at a time.
pub const RECONCILE_PAGE: usize = 1024;

/// Every stored event after `last_seen`, in seq order: what a consumer of a
/// best-effort sink calls when it sees a gap (an envelope whose seq is not
/// `last_seen + 1`) or after a restart.
///
/// Reads page by page ([`RECONCILE_PAGE`] events each) up to the log's
/// [`newest`](EventLog::newest) event when it starts (the page that
/// reaches it may hold a few after it), or until the log returns an empty
/// page, so it also works with logs that cap `limit`: on a log that grows
/// as fast as it is read, it returns. Any
/// [`EventLog`] will do: a [`MemoryStore`](crate::MemoryStore), a
/// [`Watched`](crate::Watched) store, or the `events` façade's `Feed` and
/// `FeedReader` (the latter on a journal another process writes).
///
/// # Errors
///
/// Returns the log's error from the first page read that fails; with the
/// `events` façade that includes its expired-cursor error when retention
/// removed events after `last_seen`.
///
/// # Example
///
/// ```
/// use events_core::Seq;
/// use events_sink::{DurableStore, MemoryStore, reconcile};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// for word in ["a", "b", "c"] {
///     store.append(None, word.to_string()).await?;
/// }
/// let missed = reconcile(&store, Seq::new(1)).await?;
/// let seqs: Vec<u64> = missed.iter().map(|e| e.seq.get()).collect();
/// assert_eq!(seqs, [2, 3]);
/// # Ok::<(), events_sink::MemoryStoreError>(())
/// # }).unwrap();
/// ```
pub async fn reconcile<E, S>(store: &S, last_seen: Seq) -> Result<Vec<Envelope<E>>, S::Error>
where
    E: Send + Sync + 'static,
    S: EventLog<E> + ?Sized,
{
    let mut out = Vec::new();
    let mut cursor = last_seen;
    let newest = store.newest().await?;
    loop {
        // One page at least, also for a cursor at or past the newest: the
        // log says what is wrong with it (the `events` façade: a cursor of
        // a journal recreated since).
        let page = store.events_after(cursor, RECONCILE_PAGE).await?;
        let Some(last) = page.last() else { break };
        // A store that hands back a page not past the cursor would loop us
        // forever; stop rather than spin, keeping only what moved forward.
        if last.seq <= cursor {
            break;
        }
        // Only what moved forward of a page that does not start past the
        // cursor either (a log that breaks its contract): its events at or
        // before the cursor were returned already, or were not asked for.
        let after = cursor;
        cursor = last.seq;
        out.extend(page.into_iter().filter(|e| e.seq > after));
        if newest.is_some_and(|newest| cursor >= newest) {
            break;
        }
    }
    Ok(out)
}
