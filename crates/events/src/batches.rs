//! How the writer thread takes commands from the inbox (`writer/` runs
//! them): in batches, spinning briefly before it parks.
//!
//! Invariant: a batch never holds more than [`MAX_BATCH_EVENTS`] commands,
//! and nothing here waits once the inbox is closed and empty.

use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;

/// Most commands taken from the inbox for one batch.
pub(crate) const MAX_BATCH_EVENTS: usize = 4096;

/// Waits for the next commands and moves them into `cmds` (at most
/// [`MAX_BATCH_EVENTS`] in all); `false` once every sender is gone and the
/// inbox is empty. A writer that parks on an empty inbox costs every
/// producer a futex wake-up per event, so it first yields the CPU a few
/// times (tens of microseconds in all) before it parks: under load the next
/// command is almost always there by then, and batches grow. `before_park`
/// runs once, right before it parks.
pub(crate) fn next_commands<T>(rx: &mut mpsc::Receiver<T>, cmds: &mut Vec<T>, before_park: impl FnOnce()) -> bool {
    const SPINS: usize = 32;
    for _ in 0..SPINS {
        match try_recv_many(rx, cmds) {
            Poll::Ready(n) => return n > 0,
            Poll::Pending => std::thread::yield_now(),
        }
    }
    before_park();
    rx.blocking_recv_many(cmds, MAX_BATCH_EVENTS - cmds.len()) > 0
}

/// Takes every queued command without waiting (up to the batch limit):
/// `Ready(0)` when the inbox is closed and empty, `Pending` when it is empty.
///
/// Draining many at once returns their inbox slots to the producers in one
/// step, where a `try_recv` per command takes the channel's semaphore lock
/// once per command.
pub(crate) fn try_recv_many<T>(rx: &mut mpsc::Receiver<T>, cmds: &mut Vec<T>) -> Poll<usize> {
    // Callers stop short of a full batch: a limit of 0 would read as "closed".
    let room = MAX_BATCH_EVENTS - cmds.len();
    debug_assert!(room > 0, "try_recv_many on a full batch");
    // A no-op waker: nothing is woken by it; the caller spins or parks itself.
    rx.poll_recv_many(&mut Context::from_waker(Waker::noop()), cmds, room)
}
