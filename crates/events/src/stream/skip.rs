//! The per-stream index in a filtered catch-up: a stream filtered by stream
//! id (`filter.rs`) that replays the journal jumps over whole sealed
//! segments whose sidecar index (`index.rs`, `docs/FORMAT.md`) holds no
//! record of its stream after its cursor, instead of reading and decoding
//! every record of them; the state machine of `mod.rs` then yields a
//! checkpoint at the last seq jumped over.
//!
//! Invariant: a jump only crosses what the index proves holds nothing of
//! the stream and nothing missing: sealed segments (never the active one)
//! whose sidecar is valid, describes the segment file as it is, belongs to
//! the stream's epoch and covers every seq up to the next segment's first
//! (so no salvage gap hides in it), all at or below the acknowledged seq.
//! Anything else (a sidecar not built yet, damaged or stale, an expired or
//! ahead cursor, another journal) is read record by record as `stream_from`
//! reads it, which reports it.

use std::sync::Arc;

use events_core::{Codec, Event};
use events_journal::{Sidecar, sidecar_path};

use super::{State, Tail};
use crate::replay::REPLAY_CHUNK;
use crate::shared::Shared;

/// Where a look at the index leaves a stream.
struct Look {
    /// The seq to jump to (past the cursor), if any.
    jump: Option<u64>,
    /// No look is worth taking again before the cursor reaches this seq.
    until: u64,
}

impl<E: Event, C: Codec> State<E, C> {
    /// For a stream-id filter replaying the journal: the seq to jump to
    /// over sealed segments without the stream, if any (the cursor is moved
    /// there). Looks at most once per segment the stream reads.
    pub(super) async fn skip_other_streams(&mut self) -> Option<u64> {
        let scope = self.scope.as_ref()?;
        if self.cursor < scope.checked_until {
            return None;
        }
        let key = scope.key.clone();
        let shared = Arc::clone(&self.shared);
        let epoch = self.cursor_epoch.unwrap_or_else(|| self.shared.epoch());
        let (cursor, follower) = (self.cursor, matches!(self.tail, Tail::Poll(_)));
        let look = tokio::task::spawn_blocking(move || look(&shared, &key, cursor, epoch, follower)).await.ok()?;
        if let Some(scope) = &mut self.scope {
            scope.checked_until = look.until;
        }
        let to = look.jump?;
        tracing::trace!(from = cursor, to, "skipped sealed segments without the stream through their sidecars");
        self.cursor = to;
        Some(to)
    }

    /// How many records a replay read after `cursor` takes: up to
    /// [`REPLAY_CHUNK`], but for a stream-id filter no further than the end
    /// of the segment after which the sidecars are looked at again, so a
    /// jump does not come after reading what it could skip.
    pub(super) fn chunk_len(&self, cursor: u64) -> usize {
        match &self.scope {
            Some(scope) if scope.checked_until > cursor => {
                usize::try_from(scope.checked_until - cursor).map_or(REPLAY_CHUNK, |n| n.min(REPLAY_CHUNK))
            }
            _ => REPLAY_CHUNK,
        }
    }

    /// Whether to read ahead after a chunk ending at `after`: not when the
    /// sidecars are to be looked at there first.
    pub(super) fn read_ahead(&self, after: u64) -> bool {
        self.scope.as_ref().is_none_or(|scope| after < scope.checked_until)
    }
}

/// Looks at the sealed segments from the one holding `cursor + 1` on.
fn look(shared: &Shared, key: &[u8], cursor: u64, epoch: u64, follower: bool) -> Look {
    if follower {
        shared.refresh_from_reader();
    }
    let limit = shared.latest().get();
    let nothing = |until| Look { jump: None, until };
    let Ok(segments) = shared.reader.segments() else { return nothing(cursor) };
    // The segment holding `cursor + 1`; none when it was pruned (the read
    // reports that).
    let Some(start) = segments.partition_point(|(first, _)| *first <= cursor.saturating_add(1)).checked_sub(1) else {
        return nothing(cursor);
    };
    let (mut to, mut until) = (cursor, limit);
    for pair in segments[start..].windows(2) {
        let ((first, path), next_first) = (&pair[0], pair[1].0);
        let last = next_first - 1;
        if last > limit || !without(path, *first, next_first, epoch, key, to) {
            // Read this one record by record; look again after it.
            until = last;
            break;
        }
        to = last;
    }
    Look { jump: (to > cursor).then_some(to), until }
}

/// Whether the sealed segment at `path` (`first..next_first`) provably holds
/// no record of `key` after seq `after` and no missing seq.
fn without(path: &std::path::Path, first: u64, next_first: u64, epoch: u64, key: &[u8], after: u64) -> bool {
    let Ok(side) = Sidecar::open(&sidecar_path(path)) else { return false };
    side.describes(path).is_ok()
        && side.epoch() == epoch
        && side.first_seq() == first
        && side.next_seq() == next_first
        && side.entries(key).iter().all(|e| e.seq <= after)
}
