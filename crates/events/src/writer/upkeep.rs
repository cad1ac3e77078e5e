//! The writer's upkeep between batches: retention on the timer and an
//! explicit `sync` (`mod.rs` runs the batches).
//!
//! Invariant: neither runs after a journal failure, and a failed retention
//! pass is never fatal (nothing is wrong with the data), except when the
//! directory is no longer the writer's (deleted or replaced); the timer's
//! pass also reports a background fdatasync or seal that failed.

use events_core::{Codec, Event};

use super::Writer;
use crate::{Error, Result, error_chain};

impl<E: Event, C: Codec> Writer<E, C> {
    /// Retention on the timer: a failure is logged and counted, never
    /// fatal (nothing is wrong with the data; the next pass retries),
    /// unless the directory was deleted or replaced under the writer.
    pub(super) fn prune(&mut self) {
        if self.shared.failure().is_some() {
            return;
        }
        // A background fdatasync (`Interval`) or seal (`Never`) that failed
        // since the last append: an idle feed says so now, not at its next
        // append.
        if let Err(e) = self.journal.health() {
            self.fail(e);
            return;
        }
        // Logged (and failures counted) by the journal; FeedStats mirrors it.
        // The unlinks run on the journal's sealer thread, off the append path.
        match self.journal.prune_deferred() {
            // Not this writer's directory any more: the feed stops now, not
            // at its next append.
            Err(e @ events_journal::JournalError::DirectoryReplaced { .. }) => {
                self.fail(e);
                return;
            }
            Err(e) => tracing::debug!(error = %error_chain(&e), "retention failed; retrying at the next pass"),
            Ok(_) => {}
        }
        // Every pass, even one that removed nothing: the failures of the
        // tidy a roll or this pass left to the sealer thread show up here
        // instead of at the next batch (and the pass retries its unlinks).
        self.after_upkeep(self.journal.acked_seq());
    }

    /// The feed's figures after work that published no event (a retention
    /// pass, a `sync`, a watermark brought up for a conditional append),
    /// `latest` the newest seq. When that work rewrote a watermark whose
    /// write had failed, the journal's readers read further now: streams
    /// caught up with the writer, with acknowledged events past what they
    /// could read (more than the kept envelopes hold), hear the bell and
    /// read the journal again. With no append to come they had waited for
    /// ever.
    pub(super) fn after_upkeep(&self, latest: u64) {
        let before = self.shared.readable();
        self.shared.after_batch(0, latest, &self.journal);
        if self.shared.readable() > before {
            self.shared.bell.ring();
        }
    }

    pub(super) fn sync(&mut self) -> Result<()> {
        if let Some(cause) = self.shared.failure() {
            return Err(Error::Unhealthy { cause });
        }
        // Covers the pipelined writes in flight too: they are published first.
        if let Err(e) = self.journal.sync() {
            // The caller gets the journal's own error, as a failed append does.
            let failure = Error::Journal(e);
            let reply =
                super::copy_io_failure(&failure).unwrap_or_else(|| Error::Unhealthy { cause: error_chain(&failure) });
            if let Error::Journal(e) = failure {
                self.fail(e);
            }
            return Err(reply);
        }
        self.publish_acked();
        self.after_upkeep(self.journal.acked_seq());
        Ok(())
    }
}
