//! Where a replaying stream's next chunk comes from: the writer's kept
//! envelopes (`recent.rs`) when they hold the cursor's next seq, else a
//! journal read on tokio's blocking pool (`replay.rs`), with the next chunk
//! read ahead while the consumer takes this one.
//!
//! Invariant: both sources stop at the acknowledged seq and serve only the
//! stream's epoch; the kept envelopes are used only for a cursor whose next
//! seq retention has not removed, so an expired cursor is reported as the
//! journal says.

use std::sync::Arc;

use events_core::{Codec, Envelope, Event};
use events_journal::Records;
use tokio::task::JoinHandle;

use super::{State, Tail};
use crate::Result;
use crate::replay::{Chunk, ReadOut, joined, read_chunk};

impl<E: Event, C: Codec> State<E, C> {
    /// Reads up to [`REPLAY_CHUNK`](crate::replay::REPLAY_CHUNK) records after the cursor, off the async
    /// worker threads. After a full chunk it starts reading the next one in
    /// the background, so decoding overlaps with the consumer's work.
    pub(super) async fn read_chunk(&mut self) -> Result<Chunk<E>> {
        let cursor = self.cursor;
        if let Some(kept) = self.recent_after(cursor) {
            // A read ahead of the same records is not needed any more.
            self.prefetch = None;
            return Ok(Chunk::Records(kept));
        }
        let read = match self.prefetch.take() {
            Some((after, read)) if after == cursor => read,
            // Any other position (the first read, after a live gap or a lag)
            // starts a new iterator; a read ahead from elsewhere is left to
            // finish and be dropped.
            _ => self.spawn_read(cursor, None),
        };
        let (chunk, records) = joined(read.await)?;
        // Only a full chunk hands its iterator back: read on from there.
        if let (Chunk::Records(out), Some(records)) = (&chunk, records)
            && let Some(last) = out.last().filter(|last| self.read_ahead(last.seq.get()))
        {
            let after = last.seq.get();
            self.prefetch = Some((after, self.spawn_read(after, Some(records))));
        }
        Ok(chunk)
    }

    /// The writer's newest envelopes after the cursor, when it still keeps
    /// the next one: no journal read, no decode. Only for a cursor of the
    /// writer's journal whose next event retention has not removed (an
    /// expired cursor is reported as the journal says).
    fn recent_after(&self, cursor: u64) -> Option<Vec<Arc<Envelope<E>>>> {
        let Tail::Live(_, recent) = &self.tail else { return None };
        if self.cursor_epoch != Some(self.shared.epoch()) || cursor + 1 < self.shared.earliest().get() {
            return None;
        }
        recent.after(cursor, self.chunk_len(cursor), self.shared.latest().get())
    }

    fn spawn_read(&self, cursor: u64, records: Option<Records>) -> JoinHandle<Result<ReadOut<E>>> {
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
        tokio::task::spawn_blocking(move || read_chunk(&shared, &codec, cursor, records, max, limit, epoch))
    }
}
