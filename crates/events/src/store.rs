//! The façade as events-sink's durable store: [`Feed`] implements
//! [`DurableStore`] (append through the writer, like [`Feed::append`]) and
//! both [`Feed`] and [`FeedReader`] implement [`EventLog`] (pages of the
//! journal through the replay read path of `replay.rs`, the same decoder
//! every stream uses), so `reconcile(&feed, last_seen)` closes a lossy
//! sink's gaps from the journal, also after a restart and from another
//! process.
//!
//! Invariant: a page never skips an event silently. It is contiguous from
//! `cursor + 1`, holds nothing the writer has not acknowledged, and comes
//! from the journal the reader opened; events that retention removed
//! ([`Error::Expired`]), that a salvage dropped (a journal gap) or that
//! belong to a recreated directory (an epoch mismatch) are reported as
//! errors.

use std::sync::Arc;

use events_core::{Codec, Envelope, Event, Seq, StreamId};
use events_journal::{JournalError, ReadError};
use events_sink::{DurableStore, EventLog, async_trait};

use crate::replay::{Chunk, joined, read_chunk};
use crate::{Error, Feed, FeedReader, Result};

/// The envelope itself: unwrapped when nobody else holds it any more,
/// copied when the live tail or a sink still does.
fn owned<E: Clone>(env: Arc<Envelope<E>>) -> Envelope<E> {
    Arc::try_unwrap(env).unwrap_or_else(|env| (*env).clone())
}

impl<E: Event, C: Codec> FeedReader<E, C> {
    /// Up to `max` journaled events after `cursor` (at most a replay chunk):
    /// one blocking read of the journal, decoded like every stream's.
    async fn page_after(&self, cursor: Seq, max: usize) -> Result<Vec<Envelope<E>>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Past what the writer's files show (after a failed watermark
        // write, until its next batch): the envelopes it keeps.
        if let Some(recent) = self.recent()
            && cursor >= self.shared.readable()
            && let Some(kept) = recent.after(cursor.get(), max, self.shared.latest().get()).envelopes()
            && !kept.is_empty()
        {
            return Ok(kept.into_iter().map(owned).collect());
        }
        let shared = Arc::clone(&self.shared);
        let codec = self.codec.clone();
        // As a stream: a writer's reader serves only what its writer
        // acknowledged; a follower's journal reader stops at the watermark.
        let follower = self.follower();
        let limit = (!follower).then(|| shared.latest().get());
        // A follower may have taken on a recreated journal's epoch (its
        // streams do, with a reset): a page stays in the journal it opened.
        let epoch = self.opened_epoch;
        let read = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + crate::shared::OPENING_WAIT;
            loop {
                if follower {
                    shared.wait_while_a_writer_opens(deadline)?;
                }
                let (chunk, _) = read_chunk::<E, C>(&shared, &codec, cursor.get(), None, max, limit, epoch)?;
                if !follower {
                    return Ok(chunk);
                }
                let empty = matches!(&chunk, Chunk::Records(records) if records.is_empty());
                // Nothing read, so no header compared: a cursor past a
                // recreated journal's end would say "nothing missed".
                if (empty || matches!(chunk, Chunk::Ahead | Chunk::Expired(_)))
                    && let Ok(now) = shared.reader.epoch()
                    && now != epoch
                {
                    return Ok(Chunk::Epoch(now));
                }
                // A writer that began opening during the read hid the
                // newest segment from it: an empty page would say "the end".
                if !(empty && shared.writer_opening()?) {
                    return Ok(chunk);
                }
            }
        });
        match joined(read.await)? {
            // The writer acknowledged more than its files show and keeps
            // none of it any more (its watermark failed again and again):
            // an empty page would say "the end".
            Chunk::Records(records) if records.is_empty() && limit.is_some_and(|limit| cursor.get() < limit) => {
                let lag = std::io::Error::other("the readers' watermark lags the acknowledged seq");
                Err(JournalError::Io {
                    op: "read past the readers' watermark",
                    path: self.dir().to_path_buf(),
                    source: lag,
                }
                .into())
            }
            Chunk::Records(records) => Ok(records.into_vec().into_iter().map(owned).collect()),
            // A cursor past the end (or at it) has nothing after it, as in
            // every event log.
            Chunk::Ahead => Ok(Vec::new()),
            Chunk::Expired(earliest) => {
                self.shared.raise_earliest(earliest);
                Err(Error::Expired { cursor, earliest: Seq::new(earliest) })
            }
            // What precedes a gap is served; the next page starts at the gap
            // and reports it.
            Chunk::Gap { before, .. } if !before.is_empty() => Ok(before.into_vec().into_iter().map(owned).collect()),
            Chunk::Gap { path, expected, found, .. } => {
                Err(Error::Read(ReadError::Journal(JournalError::Gap { path, expected, found })))
            }
            Chunk::Undecodable { before, .. } if !before.is_empty() => {
                Ok(before.into_vec().into_iter().map(owned).collect())
            }
            // The events before damage are served; the next page reports it.
            Chunk::Failed { before, .. } => Ok(before.into_vec().into_iter().map(owned).collect()),
            Chunk::Undecodable { seq, version, error, .. } => {
                Err(Error::Decode { seq: Seq::new(seq), version, source: error })
            }
            Chunk::Epoch(found) => Err(Error::Read(ReadError::Journal(JournalError::EpochMismatch {
                path: self.dir().to_path_buf(),
                expected: epoch,
                found,
            }))),
        }
    }
}

/// Reads the journal: see [`EventLog::events_after`]. A page holds at most
/// 4,096 events and about 4 MiB of records (one replay chunk: the record
/// that reaches 4 MiB is its last); [`reconcile`](crate::reconcile) asks
/// again until a page comes back empty.
///
/// # Errors
///
/// [`Error::Expired`] when retention removed events after `cursor`; a
/// journal gap or epoch mismatch as [`Error::Read`]; [`Error::Journal`]
/// when the journal cannot be read (a page ends before the damage or
/// failure; the next page reports it). An event that cannot be decoded (even
/// through [`Event::upcast`](crate::Event::upcast)) ends the page before it;
/// the next page is [`Error::Decode`] naming its seq and version, whatever
/// the reader's [`OnUndecodable`](crate::OnUndecodable) policy: a
/// reconciling consumer must learn it cannot have that event. A cursor at
/// or past the latest acknowledged seq gets an empty page, not an error.
///
/// The cursor is a bare seq of the journal the reader opened. After the
/// directory was recreated under a follower, every page is an epoch
/// mismatch ([`JournalError::EpochMismatch`] in [`Error::Read`]), also
/// when its streams have moved on to the new journal: a seq of the old one
/// means another event there. A new `FeedReader` reads the new journal.
#[async_trait]
impl<E: Event, C: Codec> EventLog<E> for FeedReader<E, C> {
    type Error = Error;

    async fn events_after(&self, cursor: Seq, limit: usize) -> Result<Vec<Envelope<E>>> {
        self.page_after(cursor, limit).await
    }

    /// The latest acknowledged seq ([`FeedReader::latest_seq`]; a
    /// follower's reads the watermark, on the blocking pool, and says
    /// nothing when that fails: an older figure would end `reconcile`
    /// early).
    async fn newest(&self) -> Result<Option<Seq>> {
        if !self.follower() {
            return Ok(Some(self.latest_seq()));
        }
        let shared = Arc::clone(&self.shared);
        let read = move || shared.try_refresh_from_reader().ok().map(|()| shared.latest());
        tokio::task::spawn_blocking(read).await.map_err(Error::Task)
    }
}

/// Reads the journal through the feed's [`FeedReader`]: see its impl.
#[async_trait]
impl<E: Event, C: Codec> EventLog<E> for Feed<E, C> {
    type Error = Error;

    async fn events_after(&self, cursor: Seq, limit: usize) -> Result<Vec<Envelope<E>>> {
        self.reader.page_after(cursor, limit).await
    }

    /// The latest acknowledged seq ([`Feed::latest_seq`]).
    async fn newest(&self) -> Result<Option<Seq>> {
        Ok(Some(self.latest_seq()))
    }
}

/// Appends like [`Feed::append`] and returns the envelope as the writer
/// journaled it: its seq, the batch's timestamp and the stream id that was
/// stored (the caller's, else the event's own). The envelope comes from the
/// writer's acknowledgement, not from a journal read; it is copied only when
/// the live tail or a sink still holds it.
///
/// # Errors
///
/// As [`Feed::append`].
#[async_trait]
impl<E: Event, C: Codec> DurableStore<E> for Feed<E, C> {
    async fn append(&self, stream: Option<StreamId>, event: E) -> Result<Envelope<E>> {
        Ok(owned(self.inbox.append_envelope(stream, event).await?))
    }
}
