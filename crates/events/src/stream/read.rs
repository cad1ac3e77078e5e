//! Where a replaying stream's next chunk comes from: the writer's kept
//! envelopes (`recent.rs`) when they hold the cursor's next seq, else a
//! journal read on tokio's blocking pool (`replay.rs`), with the next chunk
//! read ahead while the consumer takes this one; and what each read leads
//! the state machine of `mod.rs` to do next ([`Next`]).
//!
//! Invariant: both sources stop at the acknowledged seq and serve only the
//! stream's epoch; the kept envelopes are used only for a cursor whose next
//! seq retention has not removed, so an expired cursor is reported as the
//! journal says.

use std::sync::Arc;
use std::time::Duration;

use events_core::{Codec, Event};
use events_journal::{JournalError, ReadError, Records};
use tokio::task::JoinHandle;

use super::{Out, Pending, Phase, Prefetch, State, Tail};
use crate::bell::STOPPED;
use crate::position::ResetReason;
use crate::recent::Kept;
use crate::replay::{Chunk, ReadOut, joined, read_chunk};
use crate::{Error, Result};

/// A blocking read's outcome, with the earliest retained seq listed before
/// it when asked (`spawn_read`).
pub(super) type Read<E> = (ReadOut<E>, Option<u64>);

/// Where the state machine goes after a journal read.
pub(super) enum Next<E> {
    /// Yield this (`None`: the stream ends).
    Yield(Option<Result<Out<E>>>),
    /// Look at the files again after this long.
    Wait(Duration),
    /// Take the next step at once.
    Again,
}

impl<E: Event, C: Codec> State<E, C> {
    /// Reads up to [`REPLAY_CHUNK`](crate::replay::REPLAY_CHUNK) records after the cursor, off the async
    /// worker threads. After a full chunk it starts reading the next one in
    /// the background, so decoding overlaps with the consumer's work.
    pub(super) async fn read_chunk(&mut self) -> Result<Chunk<E>> {
        let cursor = self.cursor;
        // A bare 0 that reads nothing becomes the position before the
        // earliest event as it was before this read (`caught_up_at_zero`):
        // the writer's own, taken before `latest` is looked at; a
        // follower's, listed by the read before it reads.
        let bare = self.everything && cursor == 0;
        self.earliest_before = (bare && matches!(self.tail, Tail::Live(_))).then(|| self.shared.earliest().get());
        // Before the look: a ring from here on is not missed.
        let heard = self.shared.bell.state();
        if let Some(kept) = self.kept_after(cursor).envelopes() {
            self.heard = heard;
            // A read ahead of the same records is not needed any more.
            self.prefetch = None;
            return Ok(Chunk::Records(kept.into()));
        }
        // Caught up with the writer (a client starting at its newest
        // event): nothing to read. A cursor past the end, or of another
        // journal, is the journal's to report.
        if matches!(self.tail, Tail::Live(_))
            && cursor == self.shared.latest().get()
            && self.cursor_epoch == Some(self.shared.epoch())
        {
            self.heard = heard;
            self.prefetch = None;
            return Ok(Chunk::Records(Vec::new().into()));
        }
        let (heard, read) = match self.prefetch.take() {
            // A read ahead goes on with the iterator of the read before it.
            Some(prefetch) if prefetch.after == cursor => (prefetch.heard, prefetch.read),
            // Any other position (the first read, after a live gap or a lag)
            // starts a new iterator; a read ahead from elsewhere is left to
            // finish and be dropped.
            _ => (heard, self.spawn_read(cursor, None, bare)),
        };
        self.heard = heard;
        let ((chunk, records), listed) = joined(read.await)?;
        if listed.is_some() {
            self.earliest_before = listed;
        }
        // Only a full chunk hands its iterator back: read on from there.
        if let (Chunk::Records(out), Some(records)) = (&chunk, records)
            && let Some(last) = out.last().filter(|last| self.read_ahead(last.seq.get()))
        {
            let after = last.seq.get();
            // The iterator reads what the journal held when the chain's
            // first read made it: the bell as that read found it.
            let heard = self.heard;
            self.prefetch =
                Some(Box::new(Prefetch { after, heard, read: self.spawn_read(after, Some(records), false) }));
        }
        Ok(chunk)
    }

    /// The writer's newest envelopes after the cursor, when it still keeps
    /// the next one: no journal read, no decode. Only for a cursor of the
    /// writer's journal whose next event retention has not removed (an
    /// expired cursor is reported as the journal says): any other is
    /// [`Kept::Gone`], as a follower's every cursor.
    pub(super) fn kept_after(&self, cursor: u64) -> Kept<E> {
        let Tail::Live(recent) = &self.tail else { return Kept::Gone };
        if self.cursor_epoch != Some(self.shared.epoch()) || cursor.saturating_add(1) < self.shared.earliest().get() {
            return Kept::Gone;
        }
        recent.after(cursor, self.chunk_len(cursor), self.shared.latest().get())
    }

    /// With `list_first`, a follower's read lists the earliest retained seq
    /// before it reads, and returns it too.
    fn spawn_read(&self, cursor: u64, records: Option<Records>, list_first: bool) -> JoinHandle<Result<Read<E>>> {
        let shared = Arc::clone(&self.shared);
        let codec = self.codec.clone();
        // A writer's feed serves only what its writer acknowledged: the files
        // may already hold a batch whose fsync has not returned (and may
        // fail, in which case the batch is cut back and its seqs reused). A
        // follower gets the same bound from the journal reader, which stops
        // at the watermark the writer publishes.
        let limit = matches!(self.tail, Tail::Live(..)).then(|| self.shared.latest().get());
        let epoch = self.cursor_epoch.unwrap_or_else(|| self.shared.epoch());
        let max = self.chunk_len(cursor);
        let follower = matches!(self.tail, Tail::Poll(_));
        tokio::task::spawn_blocking(move || {
            // Before the read: what it then finds empty was after it. None
            // with no segment listed (emptied to be restored: not known).
            let listed = (follower && list_first)
                .then(|| shared.reader.segments().ok()?.first().map(|(first, _)| *first))
                .flatten();
            let read = read_chunk(&shared, &codec, cursor, records, max, limit, epoch);
            // Caught up with files another process writes: the stream
            // compares the journal's epoch next (`epoch_changed`), looked
            // at here rather than on an async worker.
            if follower && matches!(&read, Ok((Chunk::Records(records), _)) if records.is_empty()) {
                shared.epoch_on_disk();
            }
            read.map(|read| (read, listed))
        })
    }

    /// What one read's outcome leads to: something to yield, a wait before
    /// the files are looked at again, or another step right away.
    pub(super) fn after_read(&mut self, read: Result<Chunk<E>>) -> Next<E> {
        if let Some(interval) = self.between_journals(&read) {
            // The directory is being recreated: wait for the new journal,
            // whose epoch the next look will compare.
            return Next::Wait(interval);
        }
        match read {
            Err(e) => {
                self.phase = Phase::Done;
                return Next::Yield(Some(Err(e)));
            }
            Ok(Chunk::Records(records)) if !records.is_empty() => {
                return Next::Yield(Some(Ok(self.batch(records.into_vec()))));
            }
            // Caught up: from here on a position, not "everything
            // retained": what is appended next is what the stream needs,
            // and a reset says so if retention takes it first.
            Ok(Chunk::Records(_)) => {
                self.caught_up_at_zero();
                match &self.tail {
                    Tail::Live(_) if self.heard & STOPPED == 0 => self.phase = Phase::Live,
                    Tail::Live(_) => {
                        self.phase = Phase::Done;
                        // Everything durable was delivered. A writer that
                        // stopped after a journal failure (or a replaced
                        // directory) is no clean end: the stream says why.
                        if let Some(cause) = self.shared.failure() {
                            return Next::Yield(Some(Err(crate::Error::Unhealthy { cause })));
                        }
                        return Next::Yield(None);
                    }
                    Tail::Poll(interval) => {
                        // Caught up with files another process writes: look
                        // again later, first checking that they are still
                        // the same journal.
                        let interval = *interval;
                        if let Some(item) = self.epoch_changed(false) {
                            return Next::Yield(Some(Ok(Out::Item(item))));
                        }
                        return Next::Wait(interval);
                    }
                }
            }
            Ok(Chunk::Undecodable { before, seq, stream, .. }) if self.not_this_streams(stream.as_ref()) => {
                // A stream filtered by stream id would pass over this event
                // decoded: it passes over it undecoded too, after what
                // precedes it (consecutive up to it: a gap ends a read).
                debug_assert!(before.last().is_none_or(|env| env.seq.get() + 1 == seq));
                tracing::debug!(seq, "another stream's event does not decode; passed over");
                let preceding = (!before.is_empty()).then(|| self.batch(before.into_vec()));
                self.cursor = seq;
                if let Some(out) = preceding {
                    return Next::Yield(Some(Ok(out)));
                }
            }
            Ok(Chunk::Undecodable { before, seq, version, error, .. }) => {
                // Deliver what precedes it, then what the policy says.
                self.pending = Some(Box::new(Pending::Undecodable { seq, version, error }));
                if !before.is_empty() {
                    return Next::Yield(Some(Ok(self.batch(before.into_vec()))));
                }
            }
            Ok(Chunk::Gap { before, expected, found, .. }) => {
                // Deliver what precedes the gap, then the reset, then go on after it.
                self.pending = Some(Box::new(Pending::Gap { expected, found }));
                if !before.is_empty() {
                    return Next::Yield(Some(Ok(self.batch(before.into_vec()))));
                }
            }
            Ok(Chunk::Failed { before, error }) => {
                // Deliver the good records before the failure, then end with it.
                self.pending = Some(Box::new(Pending::Failed(error)));
                return Next::Yield(Some(Ok(self.batch(before.into_vec()))));
            }
            Ok(Chunk::Epoch(journal_epoch)) => {
                let cursor_epoch = self.cursor_epoch.unwrap_or_else(|| self.shared.epoch());
                if !matches!(self.tail, Tail::Poll(_)) {
                    // Only a follower can see the directory recreated:
                    // a writer owns it. Someone replaced it under us.
                    self.phase = Phase::Done;
                    return Next::Yield(Some(Err(Error::Read(ReadError::Journal(JournalError::EpochMismatch {
                        path: self.shared.dir.clone(),
                        expected: cursor_epoch,
                        found: journal_epoch,
                    })))));
                }
                if journal_epoch != self.shared.epoch() {
                    self.shared.set_epoch(journal_epoch);
                }
                let item = self.reset(ResetReason::EpochMismatch { cursor_epoch, journal_epoch });
                return Next::Yield(Some(Ok(Out::Item(item))));
            }
            Ok(Chunk::Expired(earliest)) => {
                if let Some(item) = self.epoch_changed(true) {
                    return Next::Yield(Some(Ok(Out::Item(item))));
                }
                // The files may be ahead of the shared figure (a prune
                // between the writer's removal and its update).
                self.shared.raise_earliest(earliest);
                match self.expired(earliest) {
                    Some(Ok(item)) => return Next::Yield(Some(Ok(Out::Item(item)))),
                    Some(Err(e)) => {
                        self.phase = Phase::Done;
                        return Next::Yield(Some(Err(e)));
                    }
                    None => {} // nothing to report: read on from the earliest
                }
            }
            Ok(Chunk::Ahead) => {
                let item = self.epoch_changed(true).unwrap_or_else(|| self.reset(ResetReason::Ahead));
                return Next::Yield(Some(Ok(Out::Item(item))));
            }
        }
        Next::Again
    }
}
