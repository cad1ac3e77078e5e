//! Per-stream reads: [`StreamEvents`], what
//! [`FeedReader::read_stream`](crate::FeedReader::read_stream) returns: the
//! events of one stream id after a seq, in seq order, read through the
//! per-stream index (`index.rs`) so that only the records of that stream are
//! read and decoded, and a segment whose index lacks the id costs one
//! sidecar lookup. Runs on tokio's blocking pool, like the replay reads of
//! `replay.rs`, handing out one segment's events at a time; the records of
//! the next few sealed segments are read with them (`Read::plan`), under
//! one look at the journal. [`follow`] chains the live tail of `stream.rs`
//! after it.
//!
//! Invariant: a per-stream read yields exactly the events `stream_from(from)`
//! filtered by stream id would yield up to the acknowledged seq taken when
//! the read starts (never a record past it; a `Reset { Gap }` of that
//! stream has no counterpart here): each record is read at the
//! offset its index gives, its frame checked (CRC and seq) by the journal
//! and its stream id compared after decoding; when that fails the index is
//! rebuilt (with a `warn!`), and a segment that cannot be indexed in full is
//! scanned record by record instead.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use events_core::{Codec, Envelope, Event, Seq};
use events_journal::{IndexEntry, JournalError, ReadError};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::error::LetGo;
use crate::index::{self, Origin};
use crate::position::{Cursor, FeedItem, OnUndecodable};
use crate::replay::joined;
use crate::shared::Shared;
use crate::stream::FeedStream;
use crate::{Error, Result, payload};

/// The events of one stream, in seq order: see
/// [`FeedReader::read_stream`](crate::FeedReader::read_stream). Yields
/// `Err` (then ends) when the journal cannot be read or retention removed
/// a segment while it was being read ([`Error::Expired`]). A record of the
/// stream that does not decode is [`Error::Decode`] naming its seq: the
/// end under the reader's [`OnUndecodable::Fail`], and the read goes on
/// after it under [`OnUndecodable::Skip`].
pub struct StreamEvents<E> {
    inner: BoxStream<'static, Result<Batch<E>>>,
    ready: std::vec::IntoIter<Item<E>>,
    limit: Seq,
}

/// One segment's items: its events of the stream, and an `Err` for each
/// of its records that does not decode.
///
/// Let go of one by one wherever it is dropped unconsumed ([`LetGo`]): a
/// read that ends early, a retry, a stream dropped while it reads.
type Batch<E> = LetGo<Item<E>>;

/// One event of the stream, or the error of a record that does not decode.
type Item<E> = Result<Arc<Envelope<E>>>;

impl<E> Drop for StreamEvents<E> {
    /// Lets go of the events read and not handed out one by one, each
    /// `Drop` under a catch (as `FeedStream`'s drop does).
    fn drop(&mut self) {
        crate::error::let_go_each(std::mem::take(&mut self.ready));
    }
}

impl<E> std::fmt::Debug for StreamEvents<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEvents").field("limit", &self.limit).finish_non_exhaustive()
    }
}

impl<E> StreamEvents<E> {
    /// The acknowledged seq the read stops at (taken when it started): a
    /// caller that goes on live resumes `stream_from` there.
    pub fn limit(&self) -> Seq {
        self.limit
    }
}

impl<E> Stream for StreamEvents<E> {
    type Item = Result<Arc<Envelope<E>>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.ready.next() {
                return Poll::Ready(Some(item));
            }
            match std::task::ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(batch)) => this.ready = batch.into_vec().into_iter(),
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(None),
            }
        }
    }
}

/// One per-stream read, segment by segment.
struct Read<C> {
    shared: Arc<Shared>,
    codec: C,
    id: String,
    from: u64,
    /// See [`Span::everything`].
    everything: bool,
    /// The highest seq the read has handed out (an event, or an
    /// undecodable record's error), `from` before the first: where a
    /// caller resumes after an `Expired` end, which names it.
    delivered: u64,
    limit: u64,
    /// Whether rebuilt sidecars are written (not by a follower, which never writes).
    persist: bool,
    on_undecodable: OnUndecodable,
    /// Set at an undecodable record under `OnUndecodable::Fail`: the read ends there.
    failed: std::cell::Cell<bool>,
    segments: Option<Arc<[(u64, PathBuf)]>>,
    next: usize,
    /// The epoch of the journal the read is of (taken when the read was
    /// asked for), which every segment read must still be.
    epoch: u64,
    /// The seq after which every record was retained when the read was
    /// asked for (the earliest retained seq then, less one): retention
    /// that removed records of the stream past it before the read listed
    /// the segments ends the read with `Expired` (see `check_retained`).
    retained_after: u64,
    /// Sealed segments ahead whose records were read with the current
    /// one's (`plan`), oldest first, not decoded yet.
    planned: std::collections::VecDeque<Planned>,
}

/// The records of the stream in one sealed segment, read ahead through its
/// index: each entry's record, `None` where the entry does not point at one.
struct Planned {
    first: u64,
    records: Vec<Option<events_journal::Record>>,
}

/// Most sealed segments whose records one look at the journal reads
/// (`Read::plan`): the watermark, the lock and the directory listing are
/// read once for them all, not per segment.
const PLAN_SEGMENTS: usize = 8;
/// Most records one plan reads ahead, over all its segments: a bound on
/// what a read holds ahead of its consumer (mapped, not decoded).
const PLAN_RECORDS: usize = 4_096;

/// What a per-stream read is of: after `from`, up to `limit`, in a journal
/// whose earliest retained seq was `earliest` when the read was asked for.
pub(crate) struct Span {
    pub(crate) from: Seq,
    /// Whatever is retained when the read lists the segments (a bare
    /// `Seq::ZERO`): nothing pruned before then is `Expired`.
    pub(crate) everything: bool,
    pub(crate) limit: Seq,
    pub(crate) earliest: Seq,
}

/// Starts a read of `id` over `span` in the journal of `epoch`: a writer's
/// reader's (it writes the sidecars it rebuilds) or a follower's.
pub(crate) fn read<E: Event, C: Codec>(
    shared: Arc<Shared>,
    codec: C,
    id: &str,
    span: Span,
    on_undecodable: OnUndecodable,
    (epoch, follower): (u64, bool),
) -> Result<StreamEvents<E>> {
    let Span { from, everything, limit, earliest } = span;
    index::check_stream_id(id)?;
    let read = Read {
        shared,
        codec,
        id: id.to_owned(),
        from: from.get(),
        everything,
        delivered: from.get(),
        limit: limit.get(),
        persist: !follower,
        on_undecodable,
        failed: std::cell::Cell::new(false),
        segments: None,
        next: 0,
        epoch,
        retained_after: earliest.get().saturating_sub(1),
        planned: std::collections::VecDeque::new(),
    };
    let inner = futures::stream::unfold(Some(read), |read| async move {
        let mut read = read?;
        let step = joined(tokio::task::spawn_blocking(move || read.step().map(|batch| (batch, read))).await);
        match step {
            Ok((Some(batch), read)) => Some((Ok(batch), Some(read))),
            Ok((None, _)) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    // Fused, as `FeedStream`'s: polled after its end, `None` again.
    Ok(StreamEvents { inner: Box::pin(inner.fuse()), ready: Vec::new().into_iter(), limit })
}

/// A per-stream read, then the stream's new events live:
/// [`FeedReader::follow_stream`](crate::FeedReader::follow_stream). An
/// undecodable record of the history is one `Undecodable` item under
/// [`OnUndecodable::Skip`]; any other error of the history ends the stream
/// there (the live part would skip what the history did not deliver).
pub(crate) fn follow<E: Event>(
    history: StreamEvents<E>,
    live: FeedStream<E>,
    id: &str,
    on_undecodable: OnUndecodable,
) -> BoxStream<'static, Result<FeedItem<E>>> {
    let id: Arc<str> = id.into();
    let live = live.filter_map(move |item| {
        let kept = match item {
            Ok(FeedItem::Event(env)) if env.stream.as_ref().is_none_or(|s| s.as_str() != &*id) => {
                // Under a catch: this may be the event's last reference (a
                // follower's decode), and its `Drop` the event type's own.
                crate::error::let_go(env);
                None
            }
            // Where the filtered feed passed over other streams' events:
            // this stream's own events say where it is.
            Ok(FeedItem::Checkpoint { .. }) => None,
            item => Some(item),
        };
        std::future::ready(kept)
    });
    let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let history = history.map({
        let failed = Arc::clone(&failed);
        move |item| match item {
            Ok(env) => Ok(FeedItem::Event(env)),
            Err(Error::Decode { seq, version, source }) if on_undecodable == OnUndecodable::Skip => {
                Ok(FeedItem::Undecodable { seq, version, error: crate::error_chain(&source) })
            }
            Err(e) => {
                failed.store(true, std::sync::atomic::Ordering::Release);
                Err(e)
            }
        }
    });
    let live =
        futures::stream::once(async move { (!failed.load(std::sync::atomic::Ordering::Acquire)).then_some(live) })
            .filter_map(std::future::ready)
            .flatten();
    history.chain(live).boxed()
}

/// The epoch in the header of the segment at `path`; `None` when it
/// cannot be read or decoded.
fn segment_epoch(path: &std::path::Path) -> Option<u64> {
    use events_journal::format::{HEADER_LEN, SegmentHeader};
    use std::io::Read;
    let mut header = [0u8; HEADER_LEN];
    std::fs::File::open(path).ok()?.read_exact(&mut header).ok()?;
    SegmentHeader::decode(&header).ok().map(|h| h.epoch)
}

/// Where the live part of [`follow`] resumes: after the history, or after
/// `from` when that is past it (the history then read nothing; resuming at
/// its limit would hand out events at or before `from` again, and a `from`
/// past the journal's end would get no `Ahead` reset).
pub(crate) fn live_cursor<E>(history: &StreamEvents<E>, from: Seq, epoch: u64) -> Cursor {
    Cursor::new(history.limit.max(from), epoch)
}

impl<C: Codec> Read<C> {
    /// The next non-empty batch (one segment's events), `None` at the end.
    fn step<E: Event>(&mut self) -> Result<Option<Batch<E>>> {
        if self.from >= self.limit || self.failed.get() {
            return Ok(None);
        }
        let segments = match &self.segments {
            Some(s) => s.clone(),
            None => {
                if !self.persist {
                    self.check_codec()?;
                }
                let segments: Arc<[_]> = self.shared.reader.segments()?.into();
                self.check_retained(&segments)?;
                Arc::clone(self.segments.insert(segments))
            }
        };
        while self.next < segments.len() {
            let i = self.next;
            self.next += 1;
            let (first, path) = &segments[i];
            if *first > self.limit {
                break;
            }
            let next_first = segments.get(i + 1).map(|s| s.0);
            if next_first.is_some_and(|n| n - 1 <= self.from) {
                continue; // every record of this segment is at or before `from`
            }
            if self.persist {
                // Not the writer's directory any more (replaced under it):
                // no sidecar of its codec written among another journal's.
                self.check_epoch(path)?;
            }
            let batch = match next_first {
                Some(_) => self.sealed_planned(&segments, i),
                None => self.active(*first, path),
            };
            let batch = batch.or_else(|e| self.vanished(*first, path, e))?;
            self.check_epoch(path)?;
            let last = batch.iter().rev().find_map(|item| match item {
                Ok(env) => Some(env.seq.get()),
                Err(Error::Decode { seq, .. }) => Some(seq.get()),
                Err(_) => None,
            });
            self.delivered = self.delivered.max(last.unwrap_or(0));
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// The directory still holds the journal the read started in.
    /// Recreated or replaced (while this segment was read, or since the
    /// read listed the segments; under a writer too), the files at the
    /// paths the read goes through hold another journal's records: an
    /// error, never a history that mixes the two. The segment at `path`
    /// tells, by its header (one small read); only when it cannot (gone,
    /// or its header unreadable) does the newest segment's header, found
    /// by listing the directory.
    fn check_epoch(&self, path: &std::path::Path) -> Result<()> {
        let expected = self.epoch;
        let found = match segment_epoch(path) {
            Some(found) => found,
            None => self.shared.reader.epoch()?,
        };
        match found {
            found if found != expected => {
                Err(JournalError::EpochMismatch { path: path.to_path_buf(), expected, found }.into())
            }
            _ => Ok(()),
        }
    }

    /// A segment gone between the listing and its read (`e` says it was
    /// not found): the directory recreated or replaced (`EpochMismatch`),
    /// or retention removed it (`Expired`, as a sealed
    /// segment's read says through its scan). Any other error is `e`.
    fn vanished<E>(&self, first: u64, path: &std::path::Path, e: Error) -> Result<Batch<E>> {
        let not_found = matches!(&e, Error::Journal(JournalError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound);
        if !not_found {
            return Err(e);
        }
        self.check_epoch(path)?;
        match self.shared.reader.first_seq() {
            Ok(earliest) if earliest > first => {
                Err(Error::Expired { cursor: Seq::new(self.delivered), earliest: Seq::new(earliest) })
            }
            _ => Err(e),
        }
    }

    /// Retention ran between the call that asked for this read and its
    /// first poll: records after `from` that were retained then are gone
    /// (the first listed segment starts past them). Unless the journal's
    /// pruned-segments summary shows none of them was the stream's, that
    /// is `Expired`: a history without them would look whole. A bare
    /// `Seq::ZERO` asks for whatever is retained, and a cursor already
    /// past retention when the call was made is read from the earliest
    /// retained event, as `read_stream` says.
    fn check_retained(&self, segments: &[(u64, PathBuf)]) -> Result<()> {
        let Some(&(first, _)) = segments.first() else { return Ok(()) };
        let gone_from = self.from.max(self.retained_after) + 1;
        let gone_to = (first - 1).min(self.limit);
        if self.everything || gone_from > gone_to {
            return Ok(());
        }
        let log = events_journal::PrunedLog::read(&self.shared.dir);
        if log.is_some_and(|log| log.lacks(self.epoch, self.id.as_bytes(), gone_from, gone_to)) {
            return Ok(());
        }
        tracing::info!(stream = %self.id, cursor = self.from, earliest = first, "stream expired before its read began");
        Err(Error::Expired { cursor: Seq::new(self.from), earliest: Seq::new(first) })
    }

    /// A follower checked the codec when it opened; a directory recreated
    /// since may hold a journal of another codec, whose payloads it must
    /// not decode (tag 0 names no codec).
    fn check_codec(&self) -> Result<()> {
        crate::reader::newest_header_of::<C>(&self.shared.reader).map(drop)
    }

    fn wanted(&self, entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
        entries.into_iter().filter(|e| e.seq > self.from && e.seq <= self.limit).collect()
    }

    /// The sealed segment `segments[i]`: its records as a plan read them
    /// (one made now, from it on, unless the last one reached it). Where
    /// the plan has nothing to offer for it, or what it read is not all
    /// the stream's, or the segment is gone since, it is read on its own
    /// (`sealed`), which rebuilds a stale index or scans, and meets any
    /// error the plan did; the rest of the plan is let go.
    fn sealed_planned<E: Event>(&mut self, segments: &[(u64, PathBuf)], i: usize) -> Result<Batch<E>> {
        let (first, path) = &segments[i];
        if self.planned.front().is_none_or(|p| p.first != *first) {
            self.planned = self.plan(segments, i);
        }
        // A segment retention removed since the plan read it is read
        // alone, which says `Expired`, as it does when the removal comes
        // before the read: what the plan holds of it is not handed out.
        if let Some(planned) = self.planned.pop_front().filter(|p| p.first == *first)
            && path.exists()
            && let Some(batch) = self.decode(planned.records)
        {
            return Ok(batch);
        }
        self.planned.clear();
        self.sealed(*first, path, segments[i + 1].0)
    }

    /// Reads ahead the records of the stream in the sealed segments from
    /// `segments[i]` on, through their indexes, with one
    /// [`records_in`](events_journal::Reader::records_in) for them all; at
    /// most [`PLAN_SEGMENTS`] segments and about [`PLAN_RECORDS`] records,
    /// up to the read's limit. The plan stops before a segment whose index
    /// cannot be had (or, for a writer's read, which writes the indexes it
    /// rebuilds, whose journal is not the read's); it is empty if the
    /// records cannot be read: those segments are then read one by one, as
    /// they come, with the same checks and errors. Every segment is still
    /// checked against the read's journal when its events are handed out
    /// (`step`). What a plan holds maps the segments it read until their
    /// events are handed out: a consumer that stops taking them keeps up
    /// to [`PLAN_SEGMENTS`] segments mapped, even once retention removed them.
    fn plan(&self, segments: &[(u64, PathBuf)], i: usize) -> std::collections::VecDeque<Planned> {
        let key = self.id.as_bytes();
        let mut plan: Vec<(u64, Vec<IndexEntry>)> = Vec::new();
        let mut records = 0;
        for (j, (first, path)) in segments.iter().enumerate().skip(i) {
            let sealed = j + 1 < segments.len();
            if !sealed || *first > self.limit || plan.len() == PLAN_SEGMENTS || records >= PLAN_RECORDS {
                break;
            }
            // `step` checked the first one before it came here.
            if j > i && self.persist && self.check_epoch(path).is_err() {
                break;
            }
            let Ok(Some((entries, _))) = index::sealed_entries(&self.codec, path, key, self.persist, false) else {
                break;
            };
            let entries = self.wanted(entries);
            records += entries.len();
            plan.push((*first, entries));
        }
        let asked: Vec<(u64, &[IndexEntry])> =
            plan.iter().filter(|(_, entries)| !entries.is_empty()).map(|(first, e)| (*first, e.as_slice())).collect();
        let Ok(read) = self.shared.reader.records_in(&asked) else { return std::collections::VecDeque::new() };
        let mut read = read.into_iter();
        plan.into_iter()
            .map(|(first, entries)| {
                // (`records_in` answers every segment asked for; one it did
                // not would read as a stale index: read again alone.)
                let records = if entries.is_empty() {
                    Vec::new()
                } else {
                    read.next().unwrap_or_else(|| vec![None; entries.len()])
                };
                Planned { first, records }
            })
            .collect()
    }

    fn sealed<E: Event>(&self, first: u64, path: &std::path::Path, next_first: u64) -> Result<Batch<E>> {
        let key = self.id.as_bytes();
        let Some((entries, origin)) = index::sealed_entries(&self.codec, path, key, self.persist, false)? else {
            return Ok(self.scan(first, next_first)?.0);
        };
        if let Some(batch) = self.fetch(first, &self.wanted(entries))? {
            return Ok(batch);
        }
        if origin == Origin::Sidecar {
            tracing::warn!(segment = %path.display(), "sidecar index does not match its segment; rebuilding it");
            if let Some((entries, _)) = index::sealed_entries(&self.codec, path, key, self.persist, true)?
                && let Some(batch) = self.fetch(first, &self.wanted(entries))?
            {
                return Ok(batch);
            }
        }
        Ok(self.scan(first, next_first)?.0)
    }

    fn active<E: Event>(&self, first: u64, path: &std::path::Path) -> Result<Batch<E>> {
        let deadline = std::time::Instant::now() + crate::shared::OPENING_WAIT;
        loop {
            self.shared.wait_while_a_writer_opens(deadline)?;
            let key = self.id.as_bytes();
            let entries =
                self.shared.active_index.entries(&self.shared.reader, &self.codec, path, first, key, self.limit)?;
            // `None`: damage below the limit, which the scan reports.
            if let Some(entries) = entries
                && let Some(batch) = self.fetch(first, &self.wanted(entries))?
            {
                return Ok(batch);
            }
            tracing::warn!(segment = %path.display(), "in-memory index of the active segment is stale or stops at damage; scanning it");
            self.shared.active_index.clear();
            let (batch, reached) = self.scan(first, u64::MAX)?;
            // A writer that began opening during this read hid the newest
            // segment from it: the records up to the limit, acknowledged
            // before, are there once it is open. Read again then.
            let cut = reached < self.limit && !self.failed.get() && self.shared.reader.writer_running() != Some(false);
            if !cut || std::time::Instant::now() >= deadline {
                return Ok(batch);
            }
            std::thread::sleep(crate::shared::OPENING_POLL);
        }
    }

    /// The records at `entries`, decoded; `None` if any entry does not
    /// point at a record of this stream.
    fn fetch<E: Event>(&self, first: u64, entries: &[IndexEntry]) -> Result<Option<Batch<E>>> {
        if entries.is_empty() {
            return Ok(Some(Vec::new().into()));
        }
        let records = self.shared.reader.records_at(first, entries).map_err(|e| self.read_error(e))?;
        Ok(self.decode(records))
    }

    /// The events of `records` (read through the stream's index), decoded;
    /// `None` if any of them is missing or not of this stream. A record
    /// that decodes tells its stream id with its event; only one that does
    /// not is asked for its id alone (`key_of`).
    fn decode<E: Event>(&self, records: Vec<Option<events_journal::Record>>) -> Option<Batch<E>> {
        let mut out = Batch::from(Vec::with_capacity(records.len()));
        for record in records {
            let record = record?;
            match payload::decode_caught(&self.codec, record.seq(), record.ts(), record.payload()) {
                Ok(env) if env.stream.as_ref().is_some_and(|s| s.as_str() == self.id) => out.push(Ok(Arc::new(env))),
                Ok(other) => {
                    crate::error::let_go(other); // another stream's: the index is stale
                    return None;
                }
                Err(_) if index::key_of(&self.codec, record.payload()).as_deref() != Some(self.id.as_bytes()) => {
                    return None;
                }
                Err(source) => {
                    if !self.undecodable(&mut out, &record, source) {
                        break;
                    }
                }
            }
        }
        Some(out)
    }

    /// Decodes a record of the stream into `out`: its event, or the
    /// `Decode` error naming its seq; `false` when the read ends there
    /// (under `OnUndecodable::Fail`).
    fn push<E: Event>(&self, out: &mut Batch<E>, record: &events_journal::Record) -> bool {
        match payload::decode_caught(&self.codec, record.seq(), record.ts(), record.payload()) {
            Ok(env) => {
                out.push(Ok(Arc::new(env)));
                true
            }
            Err(source) => self.undecodable(out, record, source),
        }
    }

    /// Reports a record of the stream that did not decode: the `Decode`
    /// error naming its seq, in `out`; `false` when the read ends there
    /// (under `OnUndecodable::Fail`).
    fn undecodable<E>(
        &self,
        out: &mut Batch<E>,
        record: &events_journal::Record,
        source: events_core::CodecError,
    ) -> bool {
        let (seq, version) = (Seq::new(record.seq()), payload::split_version(record.payload()).0);
        tracing::warn!(seq = seq.get(), version, error = %crate::error_chain(&source), policy = ?self.on_undecodable, "undecodable event");
        out.push(Err(Error::Decode { seq, version, source }));
        if self.on_undecodable == OnUndecodable::Fail {
            self.failed.set(true);
            return false;
        }
        true
    }

    /// The fallback: every record of the segment `first..next_first`,
    /// filtered by stream id (what a full scan would find there), and the
    /// highest seq the scan reached (of any stream).
    fn scan<E: Event>(&self, first: u64, next_first: u64) -> Result<(Batch<E>, u64)> {
        let start = self.from.max(first - 1);
        let records = match self.shared.reader.read_since(start) {
            Ok(records) => records,
            // Past the journal's end: nothing the read could miss.
            Err(ReadError::Ahead { .. }) => return Ok((Vec::new().into(), u64::MAX)),
            Err(e) => return Err(self.read_error(e)),
        };
        let (mut out, mut reached) = (Batch::from(Vec::new()), start);
        for record in records {
            let record = match record {
                Ok(record) => record,
                // Records an operator's salvage dropped: gone for every reader.
                Err(JournalError::Gap { found, .. }) => {
                    reached = reached.max(found - 1);
                    continue;
                }
                // Damage: the stream's events before it, then the error,
                // and the read ends there (as a replay's).
                Err(e) => {
                    out.push(Err(e.into()));
                    self.failed.set(true);
                    break;
                }
            };
            reached = reached.max(record.seq());
            if record.seq() >= next_first || record.seq() > self.limit {
                break;
            }
            if index::key_of(&self.codec, record.payload()).is_some_and(|k| k == self.id.as_bytes())
                && !self.push(&mut out, &record)
            {
                break;
            }
        }
        Ok((out, reached))
    }

    fn read_error(&self, e: ReadError) -> Error {
        match e {
            ReadError::Expired { earliest } => {
                Error::Expired { cursor: Seq::new(self.delivered), earliest: Seq::new(earliest) }
            }
            ReadError::Journal(e) => Error::Journal(e),
            other => Error::Read(other),
        }
    }
}
