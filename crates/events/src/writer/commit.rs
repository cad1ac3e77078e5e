//! The writer's side of pipelined group commit (`events_journal`'s
//! `Journal::write_batch` and `start_sync`): while the fdatasync that covers
//! the batches written so far runs on the journal's sync thread, the writer
//! takes, encodes and writes the next ones; when it completes, the writer
//! publishes what it covered and starts the next one for the rest.
//!
//! Invariants: an event is published (live, sinks, acks) only once
//! `Journal::acked_seq` reached it, which under `SyncPolicy::Always` means
//! an fdatasync that started after its write completed. A failure refuses
//! every event in flight that no completed fdatasync covered. At most
//! [`MAX_IN_FLIGHT`] events wait for an fdatasync (written ones, and the
//! ephemeral events and retries of an id in flight held behind them): past
//! that the writer stops taking commands until it completes, so a slow disk
//! pushes back on producers through the bounded inbox instead of filling
//! memory.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

use events_core::{Codec, Event};
use events_journal::JournalError;
use tokio::sync::mpsc;

use super::{Cmd, Writer};
use crate::batches::{MAX_BATCH_EVENTS, next_commands};
use crate::error_chain;

/// Yields of the CPU before the writer parks while a sync is in flight.
const SPINS: usize = 16;

/// Most events waiting for an fdatasync (written, or held behind written
/// ones) before the writer stops taking commands.
pub(super) const MAX_IN_FLIGHT: usize = MAX_BATCH_EVENTS;

/// Wakes the writer thread, parked in [`Writer::next_or_synced`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The waker of the calling (writer) thread.
pub(super) fn waker() -> Waker {
    Waker::from(Arc::new(Unpark(std::thread::current())))
}

impl<E: Event, C: Codec> Writer<E, C> {
    /// With a sync in flight: waits for the next commands (moved into
    /// `cmds`) or for the sync, whichever comes first, publishing what the
    /// sync covered. `false` once every sender is gone and the inbox is
    /// empty.
    pub(super) fn next_or_synced(
        &mut self,
        rx: &mut mpsc::Receiver<Cmd<E>>,
        cmds: &mut Vec<Cmd<E>>,
        waker: &Waker,
    ) -> bool {
        let mut cx = Context::from_waker(waker);
        let mut spins = 0;
        loop {
            // Tokens and retries wait for the sync too (published after
            // the durable events before them): a stalled fdatasync must
            // not let them pile up unbounded.
            let waiting = self.written + self.ephemerals.len() + self.duplicates.len();
            let done = if waiting >= MAX_IN_FLIGHT {
                // Enough in flight: let the inbox fill and push back.
                Poll::Ready(self.journal.wait_synced())
            } else {
                self.journal.poll_synced(&mut cx)
            };
            if let Poll::Ready(result) = done {
                self.synced(result);
                if !self.journal.syncing() {
                    return next_commands(rx, cmds, || self.acks.deliver_queued());
                }
                // The next sync started: poll it, so that it wakes this thread.
                continue;
            }
            match rx.poll_recv_many(&mut cx, cmds, MAX_BATCH_EVENTS - cmds.len()) {
                Poll::Ready(n) => return n > 0,
                Poll::Pending if spins < SPINS => {
                    spins += 1;
                    std::thread::yield_now();
                }
                // Parked until the sync completes or commands come, but
                // not past the acknowledgements' wait for the task.
                Poll::Pending => match self.acks.deliver_if_stale() {
                    Some(left) => std::thread::park_timeout(left),
                    None => std::thread::park(),
                },
            }
        }
    }

    /// A pipelined sync's outcome: publishes what it covered and starts the
    /// next sync for what was written since.
    fn synced(&mut self, result: Result<u64, JournalError>) {
        // What the group wait measures: one write + fdatasync.
        self.last_write = self.sync_started.elapsed();
        match result.and_then(|_| self.start_sync(Instant::now())) {
            Ok(()) => self.publish_acked(),
            Err(e) => self.fail(e),
        }
    }

    /// Hands the fdatasync of what was written since the last one to the
    /// journal's commit thread, unless one is running; `at` is when its
    /// batch started, which the group wait measures from.
    pub(super) fn start_sync(&mut self, at: Instant) -> Result<(), JournalError> {
        if self.journal.start_sync()? {
            self.sync_started = at;
        }
        Ok(())
    }

    /// Publishes every event in flight the journal acknowledged.
    pub(super) fn publish_acked(&mut self) {
        let acked = self.journal.acked_seq();
        let first = self.first_pending();
        if acked >= first && self.written > 0 {
            let n = ((acked - first + 1) as usize).min(self.written);
            self.last_batch = n;
            self.publish(n);
        }
    }

    /// A journal failure: what a completed fdatasync covered is still
    /// published, everything else in flight is refused, and so is every
    /// later append.
    pub(super) fn fail(&mut self, e: JournalError) {
        // A sync in flight may still cover batches written before the failure.
        if let Err(e) = self.journal.wait_synced() {
            tracing::error!(error = %error_chain(&e), "the fdatasync in flight failed too");
        }
        self.publish_acked();
        let cause = error_chain(&e);
        tracing::error!(error = %cause, "journal append failed; the feed refuses appends until reopened");
        self.shared.set_failed(cause.clone());
        self.reject_pending(Some(e), &cause);
        // What it published is all its streams will get: the bell stops,
        // as at a close, so a caught-up stream reads what is left, then
        // ends with `Error::Unhealthy` naming the cause, while the feed is
        // still open (it had waited, silent, for the close). After the
        // refusal, which puts the tokens recorded before the refused batch
        // into the live-output ring: a live-output stream ending here
        // takes them first.
        self.shared.bell.stop();
    }

    /// Waits until everything written is published or refused.
    pub(super) fn settle(&mut self) {
        while self.journal.syncing() {
            let result = self.journal.wait_synced();
            self.synced(result);
        }
    }
}
