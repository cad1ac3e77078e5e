//! The writer's checks of conditional and idempotent appends (`append.rs`):
//! each stream's version and the dedupe window of event ids, kept by the
//! writer thread so a check and the seq allocation it guards are one step.
//!
//! - **Versions.** A stream's version is the seq of its latest retained
//!   event. The writer looks a stream up in the per-stream index (`index.rs`:
//!   the active segment's in-memory index, then the sealed segments'
//!   sidecars, newest first, each entry checked against its record) the
//!   first time an append expects something of it, and caches the answer
//!   (also "no version") for at most [`VERSION_CACHE`] streams; every
//!   journaled event of a cached stream updates it. Past that many streams
//!   the cache is emptied and refilled from the index, so memory stays
//!   bounded and a restart loses nothing: the index is the truth. A sealed
//!   segment's sidecar is read once: then a Bloom filter of its stream ids
//!   (`key_filter.rs`, ~10 bits per id) tells which segments a stream
//!   cannot be in, so a new stream's first append reads no sidecar.
//! - **Event ids.** The window ([`Dedupe`]) maps each remembered id to the
//!   seq and timestamp it was journaled with. It is rebuilt when the writer
//!   starts by reading the records of the last `age` (their payload headers
//!   only, `payload.rs`), so a retry after a crash, a SIGKILL or a reopen is
//!   recognised as long as the first append is in the window.
//! - **The events in flight.** Events staged but not yet acknowledged (not
//!   written yet, or written and waiting for the `fdatasync` that covers
//!   them) count too: a second append of an id in flight waits for the
//!   first and shares its outcome; a conditional append sees the events of
//!   its stream in flight.
//!
//! Invariant: nothing here is updated before the journal acknowledged an
//! event ([`Guard::journaled`]), and an event leaves the in-flight state
//! only then ([`Guard::acknowledged`]) or when it is refused
//! ([`Guard::batch_done`]). So a version or an id is never remembered for a
//! record that does not exist.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use events_core::{Codec, EventId, Seq, StreamId};
use events_journal::{IndexEntry, Journal, JournalError, Reader};

use crate::append::Dedupe;
use crate::key_filter::KeyFilter;
use crate::shared::Shared;
use crate::{Result, index, payload};

/// The most streams whose versions the writer caches.
pub(crate) const VERSION_CACHE: usize = 65_536;

/// The writer's state for conditional and idempotent appends.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Stream → the seq of its latest journaled event (`None`: none).
    versions: HashMap<StreamId, Option<u64>>,
    seen: Seen,
    /// The streams of the events in flight → their latest seq; kept only
    /// once a conditional append asked (`None`: not built for them).
    staged_streams: Option<HashMap<StreamId, u64>>,
    /// The ids of the events in flight → their seq and stream.
    staged_ids: HashMap<EventId, (u64, IdStream)>,
    /// Sealed segment (first seq) → the stream ids it may hold.
    filters: HashMap<u64, KeyFilter>,
}

impl Guard {
    pub(crate) fn new(window: Dedupe) -> Self {
        Guard {
            versions: HashMap::new(),
            seen: Seen::new(window),
            staged_streams: None,
            staged_ids: HashMap::new(),
            filters: HashMap::new(),
        }
    }

    /// Rebuilds the dedupe window from the journal's newest records.
    pub(crate) fn rebuild<C: Codec>(&mut self, reader: &Reader, codec: &C, now: u64) {
        if let Err(e) = self.seen.rebuild(reader, codec, now) {
            tracing::warn!(error = %crate::error_chain(&e), "rebuilding the dedupe window failed; the ids of unreadable segments are not remembered");
        }
    }

    /// Where an earlier append of `id` is: in flight (its seq), or
    /// journaled (its seq and timestamp); with its stream.
    pub(crate) fn find_id(&mut self, id: &EventId, now: u64) -> Option<(Earlier, IdStream)> {
        if let Some((seq, stream)) = self.staged_ids.get(id) {
            return Some((Earlier::Staged(*seq), stream.clone()));
        }
        self.seen.get(id, now).map(|(seq, ts, stream)| (Earlier::Journaled { seq, ts }, stream))
    }

    /// The version of `stream`, counting the events in flight (`staged`
    /// yields their streams in order, asked once until they are all
    /// acknowledged; the first has seq `next_seq`, the one after the newest
    /// acknowledged).
    pub(crate) fn version<C: Codec>(
        &mut self,
        shared: &Shared,
        journal: &Journal,
        codec: &C,
        stream: &StreamId,
        staged: impl FnOnce() -> Vec<Option<StreamId>>,
        next_seq: u64,
    ) -> Result<Option<Seq>> {
        let overlay = self.staged_streams.get_or_insert_with(|| {
            let mut map = HashMap::new();
            for (i, s) in staged().into_iter().enumerate() {
                if let Some(s) = s {
                    map.insert(s, next_seq + i as u64);
                }
            }
            map
        });
        if let Some(&seq) = overlay.get(stream) {
            return Ok(Some(Seq::new(seq)));
        }
        // The journal's own floor, not the published one: a roll that pruned
        // in a batch still waiting for its fdatasync has not published yet.
        let earliest = journal.first_seq().max(shared.earliest().get());
        let cached = match self.versions.get(stream) {
            Some(&v) => v,
            None => {
                // Read by their paths: not in a directory that is no longer
                // the writer's, whose files may be another journal's (a
                // version from there would admit a lost update).
                journal.check_directory()?;
                let limit = next_seq - 1;
                let segments = journal.segments();
                let found =
                    last_seq_of(shared, &segments, &mut self.filters, codec, stream.as_str().as_bytes(), limit)?;
                // And after: a replacement during the lookup (which may
                // read indexes and scan segments for a while).
                journal.check_directory()?;
                if self.versions.len() >= VERSION_CACHE {
                    self.versions.clear();
                }
                self.versions.insert(stream.clone(), found);
                found
            }
        };
        // Retention may have removed the stream's latest event since.
        Ok(cached.filter(|&seq| seq >= earliest).map(Seq::new))
    }

    /// Notes a staged event (after every check passed): its stream and id
    /// now count until it is acknowledged or refused.
    pub(crate) fn staged(&mut self, stream: Option<&StreamId>, id: Option<&EventId>, seq: u64) {
        if let (Some(map), Some(stream)) = (self.staged_streams.as_mut(), stream) {
            map.insert(stream.clone(), seq);
        }
        // With the window off every append is journaled, twice in one batch too.
        if let Some(id) = id.filter(|_| self.seen.enabled()) {
            self.staged_ids.insert(id.clone(), (seq, IdStream::Known(stream.cloned())));
        }
    }

    /// One event the journal accepted.
    pub(crate) fn journaled(&mut self, stream: Option<&StreamId>, id: Option<&EventId>, seq: u64, ts: u64) {
        if let Some(stream) = stream
            && !self.versions.is_empty()
            && let Some(v) = self.versions.get_mut(stream)
        {
            *v = Some(seq);
        }
        if let Some(id) = id {
            self.seen.insert(id.clone(), seq, ts, IdStream::Known(stream.cloned()));
        }
    }

    /// Every event up to `last` was acknowledged (and passed through
    /// [`journaled`](Self::journaled)): they are no longer in flight.
    pub(crate) fn acknowledged(&mut self, last: u64) {
        if let Some(map) = &mut self.staged_streams {
            map.retain(|_, seq| *seq > last);
        }
        self.staged_ids.retain(|_, (seq, _)| *seq > last);
    }

    /// Every event in flight was acknowledged or refused: forget them.
    pub(crate) fn batch_done(&mut self) {
        self.staged_streams = None;
        self.staged_ids.clear();
    }
}

/// Where an earlier append of the same id is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Earlier {
    /// In flight (staged, or written and not yet acknowledged), with this seq.
    Staged(u64),
    /// Journaled with this seq and timestamp.
    Journaled { seq: u64, ts: u64 },
}

/// The stream of an id's earlier append, which an append of the id again
/// must name to be its retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IdStream {
    /// Its stream (`None`: it had none).
    Known(Option<StreamId>),
    /// A record, rebuilt into the window, whose stream does not decode:
    /// any stream matches it.
    Unknown,
}

impl IdStream {
    /// Whether an append of the id to `stream` is a retry of this one.
    pub(crate) fn admits(&self, stream: Option<&StreamId>) -> bool {
        match self {
            IdStream::Known(known) => known.as_ref() == stream,
            IdStream::Unknown => true,
        }
    }
}

/// The dedupe window: remembered ids, oldest first.
#[derive(Debug)]
struct Seen {
    window: Dedupe,
    /// Id → seq, timestamp, stream.
    by_id: HashMap<EventId, (u64, u64, IdStream)>,
    order: VecDeque<(u64, EventId)>,
}

impl Seen {
    fn new(window: Dedupe) -> Self {
        Seen { window, by_id: HashMap::new(), order: VecDeque::new() }
    }

    fn enabled(&self) -> bool {
        self.window.ids > 0 && !self.window.age.is_zero()
    }

    fn age_nanos(&self) -> u64 {
        u64::try_from(self.window.age.as_nanos()).unwrap_or(u64::MAX)
    }

    fn get(&mut self, id: &EventId, now: u64) -> Option<(u64, u64, IdStream)> {
        if !self.enabled() {
            return None;
        }
        self.expire(now);
        self.by_id.get(id).cloned()
    }

    fn insert(&mut self, id: EventId, seq: u64, ts: u64, stream: IdStream) {
        if !self.enabled() {
            return;
        }
        self.by_id.insert(id.clone(), (seq, ts, stream));
        self.order.push_back((seq, id));
        self.expire(ts);
    }

    /// Forgets ids older than the window's age or beyond its count.
    fn expire(&mut self, now: u64) {
        let horizon = now.saturating_sub(self.age_nanos());
        while let Some((seq, id)) = self.order.front() {
            // An id journaled again after it left the window has a newer
            // entry: this one is stale and goes whatever its id's age (its
            // id's newer timestamp held everything behind it in the window).
            if let Some(&(latest, ts, _)) = self.by_id.get(id)
                && latest == *seq
            {
                if self.by_id.len() <= self.window.ids && ts >= horizon {
                    break;
                }
                self.by_id.remove(id);
            }
            self.order.pop_front();
        }
    }

    /// Reads the ids of the records younger than the window's age.
    fn rebuild<C: Codec>(&mut self, reader: &Reader, codec: &C, now: u64) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let horizon = now.saturating_sub(self.age_nanos());
        // The newest segment whose first record is older than the window
        // (or the oldest): the window starts in it.
        let segments = reader.segments()?;
        let mut start = 0;
        for (i, (first, _)) in segments.iter().enumerate().rev() {
            // An unreadable first record (a gap, damage): that segment is
            // in the window, and so may be older ones.
            start = i;
            if let Ok(Some(record)) = first_record(reader, *first)
                && record.ts() < horizon
            {
                break;
            }
        }
        // Segment by segment, so that damage in one loses only its ids, never
        // the newer ones after it.
        let mut failed = None;
        for (i, (first, _)) in segments.iter().enumerate().skip(start) {
            let end = segments.get(i + 1).map_or(u64::MAX, |s| s.0);
            if let Err(e) = self.rebuild_segment(reader, codec, *first, end, horizon) {
                tracing::warn!(segment = first, error = %crate::error_chain(&e), "a segment's ids could not be read for the dedupe window");
                failed = Some(e);
            }
        }
        self.expire(now);
        failed.map_or(Ok(()), Err)
    }

    /// The ids of the records `first..end` younger than `horizon`.
    fn rebuild_segment<C: Codec>(
        &mut self,
        reader: &Reader,
        codec: &C,
        first: u64,
        end: u64,
        horizon: u64,
    ) -> Result<()> {
        let records = match reader.read_since(first - 1) {
            Ok(records) => records,
            Err(events_journal::ReadError::Ahead { .. } | events_journal::ReadError::Expired { .. }) => return Ok(()),
            Err(e) => return Err(crate::Error::Read(e)),
        };
        for record in records {
            let record = match record {
                Ok(record) => record,
                Err(JournalError::Gap { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if record.seq() >= end {
                break;
            }
            if record.ts() >= horizon
                && let Some(id) = payload::event_id(record.payload())
            {
                let stream = payload::stream_id(codec, record.payload()).map_or(IdStream::Unknown, IdStream::Known);
                self.insert(EventId::from(id), record.seq(), record.ts(), stream);
            }
        }
        Ok(())
    }
}

fn first_record(reader: &Reader, first: u64) -> Result<Option<events_journal::Record>> {
    match reader.read_since(first - 1) {
        Ok(mut records) => Ok(records.next().transpose()?),
        Err(events_journal::ReadError::Ahead { .. } | events_journal::ReadError::Expired { .. }) => Ok(None),
        Err(e) => Err(crate::Error::Read(e)),
    }
}

/// The seq of the latest record of stream `key` up to `limit`, from the
/// per-stream index (newest segment first), each answer checked against
/// its record; a segment whose index cannot be trusted is scanned.
/// `segments` is the writer's own list (no directory listing: it cost
/// more than the rest of a lookup). A sealed segment whose [`KeyFilter`]
/// says it does not hold the key is skipped without reading its sidecar;
/// `filters` keeps one per sealed segment, made the first time its index
/// is read (the writer holds the journal's lock, so a sealed segment does
/// not change under it).
fn last_seq_of<C: Codec>(
    shared: &Shared,
    segments: &[(u64, &Path)],
    filters: &mut HashMap<u64, KeyFilter>,
    codec: &C,
    key: &[u8],
    limit: u64,
) -> Result<Option<u64>> {
    // Retention removes the oldest segments: their filters go with them.
    let oldest = segments.first().map_or(u64::MAX, |s| s.0);
    filters.retain(|&first, _| first >= oldest);
    for (i, (first, path)) in segments.iter().enumerate().rev() {
        if *first > limit {
            continue;
        }
        let next_first = segments.get(i + 1).map_or(u64::MAX, |s| s.0);
        let entries = if next_first == u64::MAX {
            // `None` (damage below `limit`): the segment is scanned below.
            shared.active_index.entries(&shared.reader, codec, path, *first, key, limit)?
        } else if filters.get(first).is_some_and(|f| !f.may_contain(key)) {
            continue;
        } else {
            index::sealed_index(codec, path, true, false)?.map(|index| {
                filters.entry(*first).or_insert_with(|| index.filter());
                index.entries(key)
            })
        };
        let found = match entries.as_deref().and_then(|e| e.iter().rev().find(|e| e.seq <= limit)) {
            Some(entry) if points_at(shared, codec, *first, entry, key)? => Some(entry.seq),
            // The index has no entry of the stream here: trusted (it was
            // checked against the segment's length, epoch and first seq).
            None if entries.is_some() => None,
            _ => {
                tracing::warn!(segment = %path.display(), "per-stream index disagrees with its segment; scanning it");
                scan_last(shared, codec, *first, next_first, key, limit, path)?
            }
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Whether `entry` points at a record of stream `key`.
fn points_at<C: Codec>(shared: &Shared, codec: &C, first: u64, entry: &IndexEntry, key: &[u8]) -> Result<bool> {
    let records = shared.reader.records_at(first, std::slice::from_ref(entry)).map_err(crate::Error::Read)?;
    Ok(records
        .first()
        .and_then(Option::as_ref)
        .is_some_and(|r| index::key_of(codec, r.payload()).as_deref() == Some(key)))
}

/// The latest record of `key` in the segment `first..next_first`, by
/// reading every record of it.
fn scan_last<C: Codec>(
    shared: &Shared,
    codec: &C,
    first: u64,
    next_first: u64,
    key: &[u8],
    limit: u64,
    path: &Path,
) -> Result<Option<u64>> {
    let records = match shared.reader.read_since(first - 1) {
        Ok(records) => records,
        Err(events_journal::ReadError::Ahead { .. } | events_journal::ReadError::Expired { .. }) => return Ok(None),
        Err(e) => return Err(crate::Error::Read(e)),
    };
    let mut last = None;
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(JournalError::Gap { .. }) => continue,
            Err(e) => {
                tracing::warn!(segment = %path.display(), error = %e, "scan for a stream's version stopped");
                return Err(e.into());
            }
        };
        if record.seq() >= next_first || record.seq() > limit {
            break;
        }
        if index::key_of(codec, record.payload()).as_deref() == Some(key) {
            last = Some(record.seq());
        }
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// An id in the journal twice (journaled again after the count limit
    /// pushed it out, then the window widened at a reopen): its stale entry
    /// at the front held every id behind it past their age.
    #[test]
    fn an_id_journaled_twice_does_not_keep_older_ids_in_the_window() {
        let mut seen = Seen::new(Dedupe::new(Duration::from_secs(1), 100));
        let (a, b) = (EventId::from("a"), EventId::from("b"));
        seen.insert(a.clone(), 1, 0, IdStream::Known(None));
        seen.insert(b.clone(), 2, SECOND / 10, IdStream::Known(None));
        seen.insert(a.clone(), 3, SECOND * 12 / 10, IdStream::Known(None));
        assert_eq!(seen.get(&b, SECOND * 13 / 10), None, "b is older than the window's age");
        assert_eq!(seen.get(&a, SECOND * 13 / 10), Some((3, SECOND * 12 / 10, IdStream::Known(None))));
    }

    /// `b a c a` (the first `a` stale) in a window of 3 ids: all three ids
    /// stay; counting entries had pushed `b` out as a fourth.
    #[test]
    fn the_count_limit_counts_ids_not_stale_entries() {
        let mut seen = Seen::new(Dedupe::new(Duration::from_secs(60), 3));
        let ids = ["b", "a", "c", "a"].map(EventId::from);
        for (seq, id) in (1..).zip(&ids) {
            seen.insert(id.clone(), seq, seq * SECOND, IdStream::Known(None));
        }
        for (id, seq) in [("b", 1), ("c", 3), ("a", 4)] {
            assert_eq!(seen.get(&EventId::from(id), 5 * SECOND).map(|(s, _, _)| s), Some(seq), "{id}");
        }
    }
}
