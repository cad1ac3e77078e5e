//! What a stream does when the journal cannot give it what it asked for,
//! as its reader's policies say: an expired cursor ([`OnExpired`]) and an
//! event that does not decode ([`OnUndecodable`]). Neighbours: the state
//! machine, whose `after_read` (`read.rs`) calls `expired` when a read
//! reports an expired cursor, and whose `next` (`mod.rs`) reports a pending
//! undecodable record through `undecodable`.
//! Invariant: each case is one explicit item or one typed error, never a
//! silent skip (a bare `Seq::ZERO` asks for everything retained, so
//! nothing it asked for is expired while it is still at 0, until it first
//! catches up; a stream filtered by stream id whose
//! pruned range provably held none of its events is not expired either).

use events_core::{Codec, Event, Seq};

use super::{Out, Phase, State};
use crate::position::{FeedItem, OnExpired, OnUndecodable, ResetReason};
use crate::{Error, Result};

impl<E: Event, C: Codec> State<E, C> {
    /// For a stream filtered by stream id whose cursor was pruned: when the
    /// journal's pruned-segments summary (`PRUNED`) covers every seq
    /// between the cursor and `earliest` and none of those segments held
    /// the stream, nothing the client wants is gone, so instead of a reset
    /// the stream goes on at `earliest` with a checkpoint there.
    fn pruned_elsewhere(&mut self, earliest: u64) -> Option<FeedItem<E>> {
        let key = self.scope.as_ref().map(|scope| &scope.key[..])?;
        let epoch = self.cursor_epoch.unwrap_or_else(|| self.shared.epoch());
        let last_pruned = earliest.checked_sub(1)?;
        let log = events_journal::PrunedLog::read(&self.shared.dir)?;
        if !log.lacks(epoch, key, self.cursor + 1, last_pruned) {
            return None;
        }
        tracing::debug!(cursor = self.cursor, earliest, "only other streams' events were pruned after the cursor");
        self.cursor = last_pruned;
        Some(FeedItem::Checkpoint { seq: Seq::new(last_pruned) })
    }

    /// Whether an undecodable record whose stream id reads as `stream`
    /// (`None`: that part does not decode either) is not this stream's, for
    /// a stream filtered by stream id: then nothing the client wants is in
    /// it, and the policy is not asked. A record whose stream id does not
    /// decode is no stream's: no per-stream index can place it, so every
    /// per-stream read passes over it (`read_stream`, and this filter over
    /// an indexed segment, never see it), whether or not its segment was
    /// indexed yet.
    pub(super) fn not_this_streams(&self, stream: Option<&Option<events_core::StreamId>>) -> bool {
        match (self.scope.as_ref().map(|scope| &scope.key[..]), stream) {
            (Some(key), Some(stream)) => stream.as_ref().is_none_or(|id| id.as_str().as_bytes() != key),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// A record that does not decode: an explicit item and the stream goes
    /// on after it, or the error and the end, as the policy says.
    pub(super) fn undecodable(&mut self, seq: u64, version: u32, error: events_core::CodecError) -> Result<Out<E>> {
        tracing::warn!(seq, version, error = %crate::error_chain(&error), policy = ?self.on_undecodable, "undecodable event");
        match self.on_undecodable {
            OnUndecodable::Skip => {
                self.cursor = seq;
                Ok(Out::Item(FeedItem::Undecodable { seq: Seq::new(seq), version, error: crate::error_chain(&error) }))
            }
            OnUndecodable::Fail => {
                self.phase = Phase::Done;
                Err(Error::Decode { seq: Seq::new(seq), version, source: error })
            }
        }
    }

    /// Retention removed the events after the cursor: what the
    /// [`OnExpired`] policy says (`None`: no item, read on).
    pub(super) fn expired(&mut self, earliest: u64) -> Option<Result<FeedItem<E>>> {
        if self.everything && self.cursor == 0 {
            // "Everything retained": nothing the client asked for is gone.
            self.cursor = earliest.saturating_sub(1);
            return None;
        }
        if let Some(item) = self.pruned_elsewhere(earliest) {
            return Some(Ok(item));
        }
        match self.on_expired {
            OnExpired::Earliest => Some(Ok(self.reset(ResetReason::Expired))),
            OnExpired::Latest => {
                let item = self.reset(ResetReason::Expired);
                if let FeedItem::Reset { latest, .. } = &item {
                    self.cursor = self.cursor.max(latest.get());
                }
                Some(Ok(item))
            }
            OnExpired::Fail => {
                let cursor = Seq::new(self.cursor);
                tracing::info!(cursor = self.cursor, earliest, "stream expired; the policy is to fail");
                Some(Err(Error::Expired { cursor, earliest: Seq::new(earliest) }))
            }
        }
    }
}
